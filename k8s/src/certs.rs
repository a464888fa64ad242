//! Certificates for serving the API: a CA, serving certificates, and client certificates for
//! kubeconfigs (`garrison init` makes the hub's; a simulated cluster makes its own). All keys
//! are ECDSA P-256.

use anyhow::{Context, Result};
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// A certificate and its private key, PEM-encoded.
pub struct Pair {
    /// Certificate PEM.
    pub cert_pem: String,
    /// Private key PEM (never logged).
    pub key_pem: String,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

fn new_key() -> Result<KeyPair> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .context("cannot generate an ECDSA P-256 key")
}

fn validity(params: &mut CertificateParams, lifetime: Duration) {
    let now = OffsetDateTime::now_utc();
    // A minute of back-dating tolerates small clock skew between hub and clients.
    params.not_before = now - Duration::minutes(1);
    params.not_after = now + lifetime;
}

/// A self-signed CA with common name `cn`, made by `garrison_pki` (the one place CAs are made).
pub fn new_ca(cn: &str, lifetime: Duration) -> Result<Pair> {
    let ca = garrison_pki::ClusterCa::generate(cn, OffsetDateTime::now_utc(), lifetime)
        .with_context(|| format!("cannot create the {cn} CA"))?;
    Ok(Pair {
        cert_pem: ca.cert_pem().to_string(),
        key_pem: ca.key_pem().to_string(),
    })
}

fn issuer(ca: &Pair) -> Result<Issuer<'static, KeyPair>> {
    let key =
        KeyPair::from_pem(&ca.key_pem).context("the CA key is not a valid PEM private key")?;
    Issuer::from_ca_cert_pem(&ca.cert_pem, key).context("the CA certificate is not valid PEM")
}

/// A serving certificate for the given DNS names and IP addresses.
pub fn new_serving(ca: &Pair, hosts: &[String], lifetime: Duration) -> Result<Pair> {
    let key = new_key()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "garrison-hub");
    for h in hosts {
        match h.parse::<std::net::IpAddr>() {
            Ok(ip) => params.subject_alt_names.push(SanType::IpAddress(ip)),
            Err(_) => params.subject_alt_names.push(SanType::DnsName(
                h.clone()
                    .try_into()
                    .with_context(|| format!("invalid host name {h:?}"))?,
            )),
        }
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut params, lifetime);
    let cert = params.signed_by(&key, &issuer(ca)?)?;
    Ok(Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A client certificate: CN is the user, each O a group.
pub fn new_client(ca: &Pair, user: &str, groups: &[&str], lifetime: Duration) -> Result<Pair> {
    let key = new_key()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, user);
    // rcgen keys distinguished-name entries by type, so a second organization is written under
    // the same OID (2.5.4.10) spelled as a custom type; readers see two O attributes.
    match groups {
        [] => {}
        [a] => params.distinguished_name.push(DnType::OrganizationName, *a),
        [a, b] => {
            params.distinguished_name.push(DnType::OrganizationName, *a);
            params
                .distinguished_name
                .push(DnType::CustomDnType(vec![2, 5, 4, 10]), *b);
        }
        _ => anyhow::bail!("a client certificate can carry at most two groups"),
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    validity(&mut params, lifetime);
    let cert = params.signed_by(&key, &issuer(ca)?)?;
    Ok(Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}
