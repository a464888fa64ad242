//! The CA that signs agents' client certificates (ECDSA P-256).

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::csr::ParsedCsr;
use crate::error::PkiError;

/// A certificate authority: its certificate and signing key. `Debug` never prints the key.
pub struct ClusterCa {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa")
            .field("cert_pem", &self.cert_pem)
            .field("key", &"<redacted>")
            .finish()
    }
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("system randomness");
    bytes[0] &= 0x7f; // a positive INTEGER
    SerialNumber::from_slice(&bytes)
}

impl ClusterCa {
    /// A new self-signed CA with common name `cn`, valid for `lifetime` from `now`.
    pub fn generate(cn: &str, now: OffsetDateTime, lifetime: Duration) -> Result<Self, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - Duration::minutes(1);
        params.not_after = now + lifetime;
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(ClusterCa {
            cert_pem: cert.pem(),
            key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA from PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| PkiError::BadCa(format!("key: {e}")))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)
            .map_err(|e| PkiError::BadCa(format!("certificate: {e}")))?;
        Ok(ClusterCa {
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
            issuer,
        })
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA key (PEM), for storing it. Handle as a secret.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Signs a checked CSR as a client certificate for its agent identity, valid from `now`
    /// for `lifetime`, back-dated for clock skew by a tenth of the lifetime, at most a minute,
    /// so that 80% of the validity stays close to 80% of the lifetime asked for.
    pub fn sign(
        &self,
        csr: &ParsedCsr,
        now: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<String, PkiError> {
        // Only the key is taken from the request: the subject is written from the checked
        // identity, so how the request laid out its names (one attribute per RDN, or several
        // in one RDN as Go writes `O=a+O=b`) does not matter here.
        let id = csr.identity();
        self.sign_key(
            csr.spki(),
            &crate::custom::CustomSubject {
                user: id.user(),
                groups: id.groups().to_vec(),
                organizational_units: vec![],
            },
            now,
            lifetime,
        )
    }

    /// Signs a checked custom-signer request as a client certificate for its subject, as
    /// [`ClusterCa::sign`] does for agent identities.
    pub fn sign_custom(
        &self,
        csr: &crate::custom::CustomCsr,
        now: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<String, PkiError> {
        self.sign_key(csr.spki(), csr.subject(), now, lifetime)
    }

    /// A client certificate for the key `spki` (DER) naming `subject`.
    fn sign_key(
        &self,
        spki: &[u8],
        subject: &crate::custom::CustomSubject,
        now: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<String, PkiError> {
        let public = rcgen::SubjectPublicKeyInfo::from_der(spki)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = crate::custom::distinguished_name(subject);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = now - std::cmp::min(lifetime / 10_i32, Duration::minutes(1));
        params.not_after = now + lifetime;
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&public, &self.issuer)?;
        Ok(cert.pem())
    }

    /// The kubeadm-style pin of this CA: `sha256:` of its SubjectPublicKeyInfo.
    pub fn pin(&self) -> Result<String, PkiError> {
        spki_pin(&self.cert_pem)
    }
}

/// The kubeadm-style pin of a certificate: `sha256:` of its SubjectPublicKeyInfo (DER).
pub fn spki_pin(cert_pem: &str) -> Result<String, PkiError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| PkiError::BadCa(format!("PEM: {e}")))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| PkiError::BadCa(format!("certificate: {e}")))?;
    Ok(crate::csr::sha256_hex(cert.public_key().raw))
}
