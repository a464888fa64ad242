//! Certificates of add-on custom signers: an add-on registration may name a signer of its own
//! (`customSigner{signerName, subject}`), whose CA is the add-on's, not the hub's. The subject
//! is then the registration's, not an identity of the hub's shape, so it is parsed and checked
//! here on its own terms; the key, signature and extension checks are the same as for agents.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

use crate::agent::KeyAndRequest;
use crate::csr::{KeyKind, sha256_hex};
use crate::error::{CsrError, PkiError};

/// Longest user name or group a custom subject may carry, in bytes.
const MAX_NAME_BYTES: usize = 256;
/// Most organizations, and most organizational units, a custom subject may carry.
pub const MAX_VALUES: usize = 2;

/// The subject of a custom-signer certificate: common name, organizations, organizational
/// units, in upstream's registration terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomSubject {
    /// The common name.
    pub user: String,
    /// The organizations.
    pub groups: Vec<String>,
    /// The organizational units.
    pub organizational_units: Vec<String>,
}

impl CustomSubject {
    /// Checks that the subject can be issued: a non-empty user, at most two groups and two
    /// units, none empty, none longer than 256 bytes.
    pub fn check(&self) -> Result<(), CsrError> {
        let bad = |why: String| Err(CsrError::BadCustomSubject(why));
        if self.user.is_empty() {
            return bad("the user (common name) is empty".into());
        }
        for (what, values) in [
            ("groups", &self.groups),
            ("organizational units", &self.organizational_units),
        ] {
            if values.len() > MAX_VALUES {
                return bad(format!(
                    "{} {what}; at most {MAX_VALUES} are issued",
                    values.len()
                ));
            }
            if values.iter().any(String::is_empty) {
                return bad(format!("one of the {what} is empty"));
            }
        }
        let long = std::iter::once(&self.user)
            .chain(&self.groups)
            .chain(&self.organizational_units)
            .find(|v| v.len() > MAX_NAME_BYTES);
        if let Some(v) = long {
            return bad(format!(
                "{:?}... is longer than {MAX_NAME_BYTES} bytes",
                v.chars().take(40).collect::<String>()
            ));
        }
        Ok(())
    }

    /// The same subject with groups and units in sorted order, for comparing subjects whose
    /// attributes came in another order.
    pub fn normalized(&self) -> CustomSubject {
        let mut s = self.clone();
        s.groups.sort();
        s.organizational_units.sort();
        s
    }
}

/// A custom-signer CSR that parsed, verified and names a subject that can be issued.
#[derive(Debug, Clone)]
pub struct CustomCsr {
    subject: CustomSubject,
    spki: Vec<u8>,
    dns_names: Vec<String>,
    key: KeyKind,
    fingerprint: String,
}

impl CustomCsr {
    /// The subject the CSR asks for.
    pub fn subject(&self) -> &CustomSubject {
        &self.subject
    }
    /// The requested key's SubjectPublicKeyInfo (DER).
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }
    /// The DNS names of the request's subjectAltName (never issued).
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }
    /// The key kind.
    pub fn key(&self) -> KeyKind {
        self.key
    }
    /// `sha256:<hex>` of the requested key's SubjectPublicKeyInfo.
    pub fn key_fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// Parses and checks a custom-signer CSR (PEM or DER) of the add-on `addon`: the key, signature
/// and extensions as for any agent request, exactly one common name, a subject that
/// [`CustomSubject::check`] accepts, and no subjectAltName but the add-on's own DNS name.
pub fn parse(bytes: &[u8], addon: &str) -> Result<CustomCsr, CsrError> {
    let checked = crate::csr::check(bytes)?;
    let subject = CustomSubject {
        user: checked.common_name()?.to_string(),
        groups: checked.organizations.clone(),
        organizational_units: checked.organizational_units.clone(),
    };
    subject.check()?;
    let own = addon_dns_name(addon);
    if checked.dns_names.iter().any(|d| *d != own) {
        return Err(CsrError::ForbiddenExtension("subjectAltName".into()));
    }
    Ok(CustomCsr {
        subject,
        fingerprint: sha256_hex(&checked.spki),
        spki: checked.spki,
        dns_names: checked.dns_names,
        key: checked.key,
    })
}

/// The DNS name upstream's add-on agents put in their requests.
pub fn addon_dns_name(addon: &str) -> String {
    format!("{addon}.addon.open-cluster-management.io")
}

/// A new P-256 key and a CSR for `subject`, with the add-on's DNS name as upstream's agents
/// write it.
pub fn new_request(subject: &CustomSubject, addon: &str) -> Result<KeyAndRequest, PkiError> {
    subject
        .check()
        .map_err(|e| PkiError::BadCertificate(e.to_string()))?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(vec![addon_dns_name(addon)])?;
    params.distinguished_name = distinguished_name(subject);
    let csr = params.serialize_request(&key)?;
    Ok(KeyAndRequest {
        key_pem: key.serialize_pem(),
        csr_pem: csr.pem()?,
    })
}

/// The distinguished name of `subject`: its common name, organizations and units. rcgen keys
/// name entries by type; a second organization (or unit) is written under the same OID spelled
/// as a custom type, so the name carries two attributes. [`CustomSubject::check`] refuses more
/// than two of either.
pub(crate) fn distinguished_name(subject: &CustomSubject) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, subject.user.as_str());
    for (values, oid, first) in [
        (&subject.groups, 10, DnType::OrganizationName),
        (
            &subject.organizational_units,
            11,
            DnType::OrganizationalUnitName,
        ),
    ] {
        for (i, v) in values.iter().enumerate() {
            let ty = if i == 0 {
                first.clone()
            } else {
                DnType::CustomDnType(vec![2, 5, 4, oid])
            };
            dn.push(ty, v.as_str());
        }
    }
    dn
}

/// The string values of a name's attributes of one type.
pub(crate) fn attribute_strings<'a>(
    it: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
) -> Vec<String> {
    it.filter_map(|a| a.as_str().ok())
        .map(String::from)
        .collect()
}

/// A custom-signer certificate's subject and validity (Unix seconds).
pub fn cert_subject(cert_pem: &str) -> Result<(CustomSubject, i64, i64), PkiError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| PkiError::BadCertificate(format!("PEM: {e}")))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| PkiError::BadCertificate(format!("certificate: {e}")))?;
    let s = cert.subject();
    let subject = CustomSubject {
        user: attribute_strings(s.iter_common_name())
            .into_iter()
            .next()
            .unwrap_or_default(),
        groups: attribute_strings(s.iter_organization()),
        organizational_units: attribute_strings(s.iter_organizational_unit()),
    };
    Ok((
        subject,
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    ))
}

/// Whether `cert_pem` was signed by the CA certificate `ca_pem`.
pub fn issued_by(cert_pem: &str, ca_pem: &str) -> Result<bool, PkiError> {
    let parse = |pem_text: &str| {
        x509_parser::pem::parse_x509_pem(pem_text.as_bytes())
            .map(|(_, p)| p)
            .map_err(|e| PkiError::BadCertificate(format!("PEM: {e}")))
    };
    let (cert, ca) = (parse(cert_pem)?, parse(ca_pem)?);
    let cert = cert
        .parse_x509()
        .map_err(|e| PkiError::BadCertificate(format!("certificate: {e}")))?;
    let ca = ca
        .parse_x509()
        .map_err(|e| PkiError::BadCertificate(format!("CA certificate: {e}")))?;
    Ok(cert.issuer() == ca.subject() && cert.verify_signature(Some(ca.public_key())).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::{Duration, OffsetDateTime};

    fn subject() -> CustomSubject {
        CustomSubject {
            user: "metrics-agent".into(),
            groups: vec!["metrics".into(), "readers".into()],
            organizational_units: vec!["fleet".into()],
        }
    }

    #[test]
    fn a_custom_request_round_trips_through_parse_sign_and_read() {
        let req = new_request(&subject(), "metrics").unwrap();
        let csr = parse(req.csr_pem.as_bytes(), "metrics").unwrap();
        assert_eq!(csr.subject(), &subject());
        assert_eq!(
            csr.dns_names(),
            ["metrics.addon.open-cluster-management.io"]
        );
        let now = OffsetDateTime::now_utc();
        let ca = crate::ClusterCa::generate("metrics-ca", now, Duration::days(10)).unwrap();
        let cert = ca.sign_custom(&csr, now, Duration::hours(1)).unwrap();
        let (got, nb, na) = cert_subject(&cert).unwrap();
        assert_eq!(got, subject());
        assert_eq!(na - nb, 3600 + 60);
        assert!(issued_by(&cert, ca.cert_pem()).unwrap());
        let other = crate::ClusterCa::generate("metrics-ca", now, Duration::days(1)).unwrap();
        assert!(!issued_by(&cert, other.cert_pem()).unwrap());
        // Issued for client authentication only, with no names.
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).unwrap();
        let x = pem.parse_x509().unwrap();
        let eku = x.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert!(x.subject_alternative_name().unwrap().is_none());
    }

    #[test]
    fn subjects_that_cannot_be_issued_are_refused() {
        let mut s = subject();
        s.user.clear();
        assert!(matches!(s.check(), Err(CsrError::BadCustomSubject(_))));
        let mut s = subject();
        s.groups.push("third".into());
        let e = s.check().unwrap_err().to_string();
        assert!(e.contains("3 groups"), "{e}");
        let mut s = subject();
        s.organizational_units = vec![String::new()];
        assert!(s.check().is_err());
        let mut s = subject();
        s.user = "x".repeat(300);
        assert!(s.check().is_err());
    }

    #[test]
    fn a_request_naming_another_add_on_or_a_foreign_name_is_refused() {
        let req = new_request(&subject(), "other").unwrap();
        assert_eq!(
            parse(req.csr_pem.as_bytes(), "metrics").unwrap_err(),
            CsrError::ForbiddenExtension("subjectAltName".into())
        );
        assert!(parse(b"not a request", "metrics").is_err());
    }
}
