//! Parsing and checking certificate signing requests from agents.
//!
//! A CSR is untrusted input. It is parsed (PEM or DER), its self-signature verified, its key
//! checked, its requested extensions checked, and its subject parsed into an [`AgentIdentity`].
//! Only a [`ParsedCsr`] can be signed, so nothing unparsed reaches the CA.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::custom::attribute_strings;
use crate::error::CsrError;
use crate::identity::{AgentIdentity, ClusterName, Identity};

/// The longest an agent client certificate may live: 24 hours.
pub const MAX_CLIENT_LIFETIME_SECS: u64 = 24 * 3600;
/// Largest CSR accepted, in bytes.
pub const MAX_CSR_BYTES: usize = 16 * 1024;

/// The kind of key a CSR carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA on NIST P-256.
    EcdsaP256,
    /// ECDSA on NIST P-384.
    EcdsaP384,
    /// RSA with this many modulus bits (at least 2048).
    Rsa(usize),
}

/// A CSR that parsed, verified and names a well-formed agent identity.
#[derive(Debug, Clone)]
pub struct ParsedCsr {
    identity: Identity,
    /// The requested key's SubjectPublicKeyInfo (DER).
    spki: Vec<u8>,
    der: Vec<u8>,
    key: KeyKind,
    fingerprint: String,
}

impl ParsedCsr {
    /// The identity the CSR asks for.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }
    /// The requested key's SubjectPublicKeyInfo (DER).
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }
    /// The request's DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
    /// The key kind.
    pub fn key(&self) -> KeyKind {
        self.key
    }
    /// `sha256:<hex>` of the request's SubjectPublicKeyInfo, shown to admins before they accept.
    pub fn key_fingerprint(&self) -> &str {
        &self.fingerprint
    }
    /// Fails unless the CSR is for `cluster`.
    pub fn require_cluster(&self, cluster: &ClusterName) -> Result<(), CsrError> {
        if self.identity.cluster() != cluster {
            return Err(CsrError::WrongCluster {
                requested: self.identity.cluster().to_string(),
                expected: cluster.to_string(),
            });
        }
        Ok(())
    }
    /// Fails unless the CSR asks for exactly the requester's own identity (renewals).
    pub fn require_identity(&self, requester: &AgentIdentity) -> Result<(), CsrError> {
        self.require_cluster(requester.cluster())?;
        if self.identity.agent() != Some(requester) {
            return Err(CsrError::WrongIdentity {
                requested: self.identity.user(),
                expected: requester.user(),
            });
        }
        Ok(())
    }
}

/// `sha256:<hex>` of DER bytes.
pub fn sha256_hex(der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    format!("sha256:{}", hex(d.as_ref()))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode(bytes: &[u8]) -> Result<Vec<u8>, CsrError> {
    if bytes.len() > MAX_CSR_BYTES {
        return Err(CsrError::Malformed(format!(
            "larger than {MAX_CSR_BYTES} bytes"
        )));
    }
    let trimmed = bytes.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN") {
        let (_, pem) = x509_parser::pem::parse_x509_pem(trimmed)
            .map_err(|e| CsrError::Malformed(format!("bad PEM: {e}")))?;
        if pem.label != "CERTIFICATE REQUEST" && pem.label != "NEW CERTIFICATE REQUEST" {
            return Err(CsrError::Malformed(format!(
                "PEM block is {:?}, not CERTIFICATE REQUEST",
                pem.label
            )));
        }
        return Ok(pem.contents);
    }
    Ok(bytes.to_vec())
}

fn key_kind(csr: &X509CertificationRequest<'_>) -> Result<KeyKind, CsrError> {
    let spki = &csr.certification_request_info.subject_pki;
    let alg = &spki.algorithm.algorithm;
    if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        return match curve {
            Some(c) if c == OID_EC_P256 => Ok(KeyKind::EcdsaP256),
            Some(c) if c == OID_NIST_EC_P384 => Ok(KeyKind::EcdsaP384),
            Some(c) => Err(CsrError::WeakKey(format!("ECDSA on curve {c}"))),
            None => Err(CsrError::WeakKey("ECDSA without a named curve".into())),
        };
    }
    if *alg == OID_PKCS1_RSAENCRYPTION {
        return match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => {
                let bits = rsa.key_size();
                if bits >= 2048 {
                    Ok(KeyKind::Rsa(bits))
                } else {
                    Err(CsrError::WeakKey(format!("RSA of {bits} bits")))
                }
            }
            _ => Err(CsrError::WeakKey("unreadable RSA key".into())),
        };
    }
    Err(CsrError::WeakKey(format!("of algorithm {alg}")))
}

/// Checks the requested extensions; returns the DNS names of a subjectAltName, which only an
/// add-on request may carry (upstream's agents put `<addon>.addon.open-cluster-management.io`
/// there).
fn check_extensions(csr: &X509CertificationRequest<'_>) -> Result<Vec<String>, CsrError> {
    let mut dns = vec![];
    let Some(exts) = csr.requested_extensions() else {
        return Ok(dns);
    };
    for ext in exts {
        match ext {
            ParsedExtension::ExtendedKeyUsage(eku) => {
                if eku.server_auth {
                    return Err(CsrError::ForbiddenUsage("server auth".into()));
                }
                if eku.any
                    || eku.code_signing
                    || eku.email_protection
                    || eku.time_stamping
                    || eku.ocsp_signing
                    || !eku.other.is_empty()
                {
                    return Err(CsrError::ForbiddenUsage(
                        "extended key usage other than client auth".into(),
                    ));
                }
            }
            ParsedExtension::KeyUsage(ku) if ku.key_cert_sign() || ku.crl_sign() => {
                return Err(CsrError::ForbiddenUsage("certificate signing".into()));
            }
            ParsedExtension::BasicConstraints(bc) if bc.ca => {
                return Err(CsrError::ForbiddenExtension(
                    "basicConstraints CA:true".into(),
                ));
            }
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        x509_parser::extensions::GeneralName::DNSName(d) => dns.push(d.to_string()),
                        _ => {
                            return Err(CsrError::ForbiddenExtension(
                                "subjectAltName other than a DNS name".into(),
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(dns)
}

/// A request that parsed, whose self-signature verified, and whose key and extensions passed
/// the checks; its subject not yet judged.
pub(crate) struct Checked {
    pub(crate) der: Vec<u8>,
    pub(crate) key: KeyKind,
    pub(crate) spki: Vec<u8>,
    pub(crate) common_names: Vec<String>,
    pub(crate) organizations: Vec<String>,
    pub(crate) organizational_units: Vec<String>,
    pub(crate) dns_names: Vec<String>,
}

impl Checked {
    /// The single common name, or why there is not exactly one.
    pub(crate) fn common_name(&self) -> Result<&str, CsrError> {
        match self.common_names.as_slice() {
            [cn] => Ok(cn),
            cns => Err(CsrError::BadCommonName(format!(
                "{} common names",
                cns.len()
            ))),
        }
    }
}

/// Parses a CSR (PEM or DER), verifies its self-signature and checks its key and extensions.
pub(crate) fn check(bytes: &[u8]) -> Result<Checked, CsrError> {
    let der = decode(bytes)?;
    let (rest, csr) =
        X509CertificationRequest::from_der(&der).map_err(|e| CsrError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CsrError::Malformed(format!(
            "{} trailing bytes after the request",
            rest.len()
        )));
    }
    // The key is judged first: a weak key is named as such, and the crypto provider refuses to
    // verify signatures made with keys it considers too weak anyway.
    let key = key_kind(&csr)?;
    csr.verify_signature().map_err(|_| CsrError::BadSignature)?;
    let dns_names = check_extensions(&csr)?;
    let subject = &csr.certification_request_info.subject;
    let common_names = attribute_strings(subject.iter_common_name());
    let organizations = attribute_strings(subject.iter_organization());
    let organizational_units = attribute_strings(subject.iter_organizational_unit());
    let spki = csr.certification_request_info.subject_pki.raw.to_vec();
    Ok(Checked {
        der,
        key,
        spki,
        common_names,
        organizations,
        organizational_units,
        dns_names,
    })
}

/// Parses and checks a CSR (PEM or DER).
pub fn parse(bytes: &[u8]) -> Result<ParsedCsr, CsrError> {
    let checked = check(bytes)?;
    let identity = Identity::from_subject(checked.common_name()?, &checked.organizations)?;
    // Only an add-on request may name a DNS name, and only its add-on's, which the signed
    // certificate leaves out anyway: client certificates carry no names.
    match (&identity, checked.dns_names.as_slice()) {
        (_, []) => {}
        (Identity::Addon(a), [d])
            if *d == format!("{}.addon.open-cluster-management.io", a.addon()) => {}
        _ => return Err(CsrError::ForbiddenExtension("subjectAltName".into())),
    }
    let fingerprint = sha256_hex(&checked.spki);
    Ok(ParsedCsr {
        identity,
        spki: checked.spki,
        der: checked.der,
        key: checked.key,
        fingerprint,
    })
}

/// Checks the usages a Kubernetes CSR object asks for (`spec.usages`): client authentication,
/// with digital signature and key encipherment, and nothing else.
pub fn check_usages(usages: &[String]) -> Result<(), CsrError> {
    for u in usages {
        match u.as_str() {
            "client auth" | "digital signature" | "key encipherment" => {}
            other => return Err(CsrError::ForbiddenUsage(other.to_string())),
        }
    }
    if !usages.iter().any(|u| u == "client auth") {
        return Err(CsrError::ForbiddenUsage("missing \"client auth\"".into()));
    }
    Ok(())
}

/// The lifetime to issue for a request of `requested` seconds (the CSR object's
/// `spec.expirationSeconds`): the maximum when none is given; refused above the maximum.
pub fn check_lifetime(requested: Option<u64>, max_secs: u64) -> Result<u64, CsrError> {
    match requested {
        None => Ok(max_secs),
        Some(r) if r > max_secs => Err(CsrError::LifetimeTooLong {
            requested_secs: r,
            max_secs,
        }),
        Some(r) => Ok(r),
    }
}
