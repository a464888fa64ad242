//! The agent's side of the PKI: a fresh key and a CSR for its identity, and reading back the
//! certificate the hub issued. The private key is generated here, on the spoke, and only its
//! PEM leaves this module, to be stored by the caller with owner-only permissions.

use rcgen::{CertificateParams, KeyPair};

use crate::error::PkiError;
use crate::identity::Identity;

/// A private key and a CSR for it. `Debug` never prints the key.
pub struct KeyAndRequest {
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The CSR, PEM.
    pub csr_pem: String,
}

impl std::fmt::Debug for KeyAndRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAndRequest")
            .field("key_pem", &"<redacted>")
            .field("csr_pem", &self.csr_pem)
            .finish()
    }
}

/// Generates an ECDSA P-256 key and a CSR for `identity` (an agent or an add-on): CN is the
/// user name, O its two groups, and no extensions.
pub fn new_request(identity: &Identity) -> Result<KeyAndRequest, PkiError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = crate::custom::distinguished_name(&crate::CustomSubject {
        user: identity.user(),
        groups: identity.groups().to_vec(),
        organizational_units: vec![],
    });
    let csr = params.serialize_request(&key)?;
    Ok(KeyAndRequest {
        key_pem: key.serialize_pem(),
        csr_pem: csr.pem()?,
    })
}

/// What an agent needs to know about its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// The identity named by the subject.
    pub identity: Identity,
    /// Serial number, hex.
    pub serial: String,
    /// `sha256:<hex>` of the certificate's SubjectPublicKeyInfo.
    pub key_fingerprint: String,
}

/// Reads an agent or add-on client certificate (PEM): its validity, identity and key fingerprint.
pub fn cert_info(cert_pem: &str) -> Result<CertInfo, PkiError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| PkiError::BadCertificate(format!("PEM: {e}")))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| PkiError::BadCertificate(format!("certificate: {e}")))?;
    let subject = cert.subject();
    let cn = crate::custom::attribute_strings(subject.iter_common_name())
        .into_iter()
        .next()
        .unwrap_or_default();
    let orgs = crate::custom::attribute_strings(subject.iter_organization());
    let identity =
        Identity::from_subject(&cn, &orgs).map_err(|e| PkiError::BadCertificate(e.to_string()))?;
    Ok(CertInfo {
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        identity,
        serial: cert.raw_serial_as_string().replace(':', ""),
        key_fingerprint: crate::csr::sha256_hex(cert.public_key().raw),
    })
}

/// `sha256:<hex>` of a private key's SubjectPublicKeyInfo, to compare with
/// [`CertInfo::key_fingerprint`].
pub fn key_fingerprint(key_pem: &str) -> Result<String, PkiError> {
    let key = KeyPair::from_pem(key_pem)?;
    Ok(crate::csr::sha256_hex(
        &rcgen::PublicKeyData::subject_public_key_info(&key),
    ))
}

/// Whether `key_pem` is the private key of the certificate `cert_pem`.
pub fn key_matches(cert_pem: &str, key_pem: &str) -> Result<bool, PkiError> {
    Ok(key_fingerprint(key_pem)? == cert_info(cert_pem)?.key_fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{AddonIdentity, AgentIdentity, ClusterName};
    use crate::{ClusterCa, csr};
    use time::{Duration, OffsetDateTime};

    fn identity(cluster: &str) -> Identity {
        AgentIdentity::new(ClusterName::parse(cluster).unwrap(), "a1b2c3")
            .unwrap()
            .into()
    }

    #[test]
    fn a_new_request_parses_as_the_same_identity_and_signs() {
        let id = identity("edge-1");
        let req = new_request(&id).unwrap();
        assert!(req.key_pem.contains("PRIVATE KEY"));
        assert!(!format!("{req:?}").contains("PRIVATE KEY"));
        let parsed = csr::parse(req.csr_pem.as_bytes()).unwrap();
        assert_eq!(parsed.identity(), &id);
        parsed.require_identity(id.agent().unwrap()).unwrap();
        let now = OffsetDateTime::now_utc();
        let ca = ClusterCa::generate("test-ca", now, Duration::days(1)).unwrap();
        let cert = ca.sign(&parsed, now, Duration::hours(1)).unwrap();
        let info = cert_info(&cert).unwrap();
        assert_eq!(info.identity, id);
        assert_eq!(info.key_fingerprint, parsed.key_fingerprint());
        assert!(info.not_after - info.not_before <= 3600 + 60);
        assert!(key_matches(&cert, &req.key_pem).unwrap());
        let other = new_request(&id).unwrap();
        assert!(!key_matches(&cert, &other.key_pem).unwrap());
    }

    #[test]
    fn an_addon_request_signs_as_the_addon_and_never_as_the_agent() {
        let c = ClusterName::parse("edge-1").unwrap();
        let id: Identity = AddonIdentity::new(c.clone(), "managed-serviceaccount", "msa")
            .unwrap()
            .into();
        let parsed = csr::parse(new_request(&id).unwrap().csr_pem.as_bytes()).unwrap();
        assert_eq!(parsed.identity(), &id);
        let agent = AgentIdentity::new(c, "a1b2c3").unwrap();
        assert!(parsed.require_identity(&agent).is_err());
        let now = OffsetDateTime::now_utc();
        let ca = ClusterCa::generate("test-ca", now, Duration::days(1)).unwrap();
        let info = cert_info(&ca.sign(&parsed, now, Duration::hours(1)).unwrap()).unwrap();
        assert_eq!(info.identity, id);
    }

    #[test]
    fn two_requests_have_different_keys() {
        let id = identity("edge-1");
        let a = csr::parse(new_request(&id).unwrap().csr_pem.as_bytes()).unwrap();
        let b = csr::parse(new_request(&id).unwrap().csr_pem.as_bytes()).unwrap();
        assert_ne!(a.key_fingerprint(), b.key_fingerprint());
    }

    #[test]
    fn cert_info_refuses_garbage_and_non_agent_certificates() {
        assert!(matches!(
            cert_info("not a certificate"),
            Err(PkiError::BadCertificate(_))
        ));
        let now = OffsetDateTime::now_utc();
        let ca = ClusterCa::generate("some-ca", now, Duration::days(1)).unwrap();
        // A CA certificate has no agent identity.
        assert!(matches!(
            cert_info(ca.cert_pem()),
            Err(PkiError::BadCertificate(_))
        ));
    }
}
