//! Signatures in cosign's format, made here: simple-signing payloads signed with a key, and
//! keyless signatures from a local Fulcio-style CA with a local Rekor log key (certificates
//! with the code-signing usage, an OIDC issuer extension, a SAN identity and an embedded SCT
//! from a local CT log key; Rekor bundles with a signed entry timestamp over a `hashedrekord`
//! entry).
//!
//! This is how Garrison's tests and offline fixtures make what cosign makes, with no network:
//! the CA and the log are only as trusted as the TrustRoot that names them.

use std::collections::BTreeMap;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};

use crate::reference::{Digest, Reference};
use crate::verify::{
    BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, SIGNATURE_ANNOTATION, SIGNATURE_TYPE, SignatureLayer,
};

/// Why signing failed: the crypto library or a bad input of the caller.
#[derive(Debug, thiserror::Error)]
#[error("signing failed: {0}")]
pub struct SignError(String);

fn err(e: impl std::fmt::Display) -> SignError {
    SignError(e.to_string())
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The simple-signing payload for `digest` of `image`, with `annotations` as `optional`.
pub fn payload(
    image: &Reference,
    digest: &Digest,
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    let optional = if annotations.is_empty() {
        Value::Null
    } else {
        json!(annotations)
    };
    serde_json::to_vec(&json!({
        "critical": {
            "identity": {"docker-reference": image.name()},
            "image": {"docker-manifest-digest": digest.to_string()},
            "type": SIGNATURE_TYPE,
        },
        "optional": optional,
    }))
    .expect("JSON of strings")
}

/// An in-toto statement (v0.1, as cosign writes it) about `digest` of `image`.
pub fn statement(
    image: &Reference,
    digest: &Digest,
    predicate_type: &str,
    predicate: Value,
) -> Value {
    json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "subject": [{"name": image.name(), "digest": {"sha256": digest.hex()}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    })
}

/// An ECDSA P-256 key, as `cosign generate-key-pair` makes.
pub struct KeySigner {
    pair: EcdsaKeyPair,
    spki_der: Vec<u8>,
}

impl KeySigner {
    /// A new key.
    pub fn generate() -> Result<KeySigner, SignError> {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).map_err(err)?;
        KeySigner::from_pkcs8(pkcs8.as_ref())
    }

    /// The key in PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8]) -> Result<KeySigner, SignError> {
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der, &SystemRandom::new())
                .map_err(err)?;
        let key = KeyPair::try_from(der).map_err(err)?;
        Ok(KeySigner {
            pair,
            spki_der: rcgen::PublicKeyData::subject_public_key_info(&key),
        })
    }

    /// The public key, PEM (`-----BEGIN PUBLIC KEY-----`), as a policy's `key.data` takes it.
    pub fn public_key_pem(&self) -> String {
        pem::encode(&pem::Pem::new("PUBLIC KEY", self.spki_der.clone()))
    }

    /// The public key, DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Signs `msg`: an ASN.1 DER ECDSA signature over its SHA-256.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        Ok(self
            .pair
            .sign(&SystemRandom::new(), msg)
            .map_err(err)?
            .as_ref()
            .to_vec())
    }

    /// An attestation layer: `statement` (an in-toto statement) in a DSSE envelope signed with
    /// this key, annotated with its predicate type, as `cosign attest` writes it.
    pub fn attestation(&self, statement: &Value) -> Result<SignatureLayer, SignError> {
        let payload = serde_json::to_vec(statement).map_err(err)?;
        let sig = self.sign(&crate::verify::pae(crate::verify::IN_TOTO, &payload))?;
        let envelope = json!({
            "payloadType": crate::verify::IN_TOTO,
            "payload": b64(&payload),
            "signatures": [{"keyid": "", "sig": b64(&sig)}],
        });
        Ok(SignatureLayer {
            payload: serde_json::to_vec(&envelope).map_err(err)?,
            annotations: BTreeMap::from([
                (
                    "predicateType".to_string(),
                    statement["predicateType"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                ),
                (SIGNATURE_ANNOTATION.to_string(), String::new()),
            ]),
        })
    }

    /// A signature layer for `payload`, signed with this key.
    pub fn layer(&self, payload: Vec<u8>) -> Result<SignatureLayer, SignError> {
        let sig = b64(&self.sign(&payload)?);
        Ok(SignatureLayer {
            payload,
            annotations: BTreeMap::from([(SIGNATURE_ANNOTATION.to_string(), sig)]),
        })
    }
}

/// A certificate issued to a signer by [`LocalSigstore`], with its key.
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate's key.
    pub key: KeySigner,
    /// The SCT list extension's value embedded in the certificate, if any.
    pub sct_list: Option<Vec<u8>>,
}

/// Which certificate transparency proof a certificate issued by [`LocalSigstore`] carries.
pub enum Ct<'a> {
    /// An SCT from the local CT log, over this certificate: what Fulcio issues.
    Logged,
    /// No SCT.
    Unlogged,
    /// An SCT over this certificate signed by another log's key.
    LoggedBy(&'a KeySigner),
    /// Another certificate's SCT list, copied.
    Copied(&'a Issued),
}

/// A Fulcio-style CA, a Rekor-style log key and a CT log key, local.
pub struct LocalSigstore {
    ca_cert_pem: String,
    ca_spki: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
    log: KeySigner,
    ct: KeySigner,
}

/// Fulcio's OIDC issuer extension, v2 (a DER UTF8String).
const ISSUER_V2: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 8];

impl LocalSigstore {
    /// A new CA (self-signed, valid a year from `now`) and a new log key.
    pub fn generate(now: time::OffsetDateTime) -> Result<LocalSigstore, SignError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params
            .distinguished_name
            .push(DnType::OrganizationName, "garrison.test");
        params
            .distinguished_name
            .push(DnType::CommonName, "garrison test fulcio");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(365);
        let cert = params.self_signed(&key).map_err(err)?;
        Ok(LocalSigstore {
            ca_cert_pem: cert.pem(),
            ca_spki: rcgen::PublicKeyData::subject_public_key_info(&key),
            issuer: Issuer::new(params, key),
            log: KeySigner::generate()?,
            ct: KeySigner::generate()?,
        })
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// The log's ID: hex SHA-256 of its public key's DER.
    pub fn log_id(&self) -> String {
        Digest::sha256_of(self.log.public_key_der())
            .hex()
            .to_string()
    }

    /// A TrustRoot object (`sigstoreKeys`) naming this CA and log, as policy-controller takes it.
    pub fn trust_root(&self, name: &str) -> Value {
        json!({
            "apiVersion": "policy.sigstore.dev/v1alpha1",
            "kind": "TrustRoot",
            "metadata": {"name": name},
            "spec": {"sigstoreKeys": {
                "certificateAuthorities": [{
                    "subject": {"organization": "garrison.test", "commonName": "garrison test fulcio"},
                    "uri": "https://fulcio.garrison.test",
                    "certChain": b64(self.ca_cert_pem.as_bytes()),
                }],
                "tLogs": [{
                    "baseURL": "https://rekor.garrison.test",
                    "hashAlgorithm": "sha-256",
                    "publicKey": b64(self.log.public_key_pem().as_bytes()),
                }],
                "ctLogs": [{
                    "baseURL": "https://ctfe.garrison.test",
                    "hashAlgorithm": "sha-256",
                    "publicKey": b64(self.ct.public_key_pem().as_bytes()),
                }],
            }},
        })
    }

    /// A short-lived signing certificate for `subject` (an email) from OIDC `issuer`, valid
    /// from `not_before` to `not_after`, with a fresh key and an SCT from the local CT log.
    pub fn issue(
        &self,
        subject: &str,
        issuer: &str,
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> Result<Issued, SignError> {
        self.issue_with(subject, issuer, not_before, not_after, Ct::Logged)
    }

    /// As [`LocalSigstore::issue`], with the certificate transparency proof `ct`.
    pub fn issue_with(
        &self,
        subject: &str,
        issuer: &str,
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
        ct: Ct<'_>,
    ) -> Result<Issued, SignError> {
        let key = KeySigner::generate()?;
        let public = rcgen::SubjectPublicKeyInfo::from_der(key.public_key_der()).map_err(err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.subject_alt_names = vec![SanType::Rfc822Name(subject.try_into().map_err(err)?)];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        params.not_before = not_before;
        params.not_after = not_after;
        // The issuer as a DER UTF8String, as Fulcio writes its v2 extension.
        let mut value = vec![0x0c];
        let bytes = issuer.as_bytes();
        if bytes.len() < 128 {
            value.push(bytes.len() as u8);
        } else {
            let len = (bytes.len() as u16).to_be_bytes();
            value.extend([0x82, len[0], len[1]]);
        }
        value.extend(bytes);
        params.custom_extensions = vec![CustomExtension::from_oid_content(ISSUER_V2, value)];
        // Both the precertificate and the certificate have the same serial number.
        let mut serial = [0u8; 16];
        ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut serial).map_err(err)?;
        serial[0] &= 0x7f;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let precert = params.signed_by(&public, &self.issuer).map_err(err)?;
        let sct_list = match ct {
            Ct::Unlogged => None,
            Ct::Logged => Some(self.sct_list(&self.ct, precert.der(), not_before)?),
            Ct::LoggedBy(log) => Some(self.sct_list(log, precert.der(), not_before)?),
            Ct::Copied(other) => other.sct_list.clone(),
        };
        let cert = match &sct_list {
            None => precert,
            Some(list) => {
                params
                    .custom_extensions
                    .push(CustomExtension::from_oid_content(
                        crate::sct::SCT_LIST_ARCS,
                        list.clone(),
                    ));
                params.signed_by(&public, &self.issuer).map_err(err)?
            }
        };
        Ok(Issued {
            cert_pem: cert.pem(),
            key,
            sct_list,
        })
    }

    /// An SCT list with one SCT from `log` over the precertificate `precert_der`, as a CT log
    /// returns it to Fulcio, which embeds it.
    fn sct_list(
        &self,
        log: &KeySigner,
        precert_der: &[u8],
        at: time::OffsetDateTime,
    ) -> Result<Vec<u8>, SignError> {
        let (_, cert) = x509_parser::parse_x509_certificate(precert_der).map_err(err)?;
        let tbs = cert.tbs_certificate.as_ref();
        let sha256 = |b: &[u8]| -> [u8; 32] {
            ring::digest::digest(&ring::digest::SHA256, b)
                .as_ref()
                .try_into()
                .expect("SHA-256 is 32 bytes")
        };
        let key_hash = sha256(&self.ca_spki);
        let log_id = sha256(log.public_key_der());
        let mut sct = crate::sct::Sct {
            log_id,
            timestamp: (at.unix_timestamp_nanos() / 1_000_000) as u64,
            extensions: vec![],
            hash: 4,
            algorithm: 3,
            signature: vec![],
        };
        sct.signature = log.sign(&crate::sct::signed_data(&sct, &key_hash, tbs))?;
        Ok(crate::sct::encode_list(&[sct]))
    }

    /// A keyless signature layer: `payload` signed with `cert`'s key, the certificate, and a
    /// Rekor bundle logged at `logged_at` (Unix seconds).
    pub fn layer(
        &self,
        cert: &Issued,
        payload: Vec<u8>,
        logged_at: i64,
    ) -> Result<SignatureLayer, SignError> {
        let signature = b64(&cert.key.sign(&payload)?);
        let bundle = self.bundle(&signature, &cert.cert_pem, &payload, logged_at)?;
        Ok(SignatureLayer {
            payload,
            annotations: BTreeMap::from([
                (SIGNATURE_ANNOTATION.to_string(), signature),
                (CERTIFICATE_ANNOTATION.to_string(), cert.cert_pem.clone()),
                (BUNDLE_ANNOTATION.to_string(), bundle),
            ]),
        })
    }

    /// A keyless attestation layer: `statement` in a DSSE envelope signed with `cert`'s key,
    /// with the certificate and a Rekor bundle of a `dsse` entry logged at `logged_at`, as
    /// `cosign attest` writes it.
    pub fn attestation(
        &self,
        cert: &Issued,
        statement: &Value,
        logged_at: i64,
    ) -> Result<SignatureLayer, SignError> {
        let mut layer = cert.key.attestation(statement)?;
        let envelope: Value = serde_json::from_slice(&layer.payload).map_err(err)?;
        let entry = json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": Digest::sha256_of(&layer.payload).hex()},
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": Digest::sha256_of(&serde_json::to_vec(statement).map_err(err)?).hex(),
                },
                "signatures": [{
                    "signature": envelope["signatures"][0]["sig"],
                    "verifier": b64(cert.cert_pem.as_bytes()),
                }],
            },
        });
        let bundle = self.log_entry(&entry, logged_at)?;
        layer
            .annotations
            .insert(CERTIFICATE_ANNOTATION.to_string(), cert.cert_pem.clone());
        layer
            .annotations
            .insert(BUNDLE_ANNOTATION.to_string(), bundle);
        Ok(layer)
    }

    /// A Rekor bundle for a `hashedrekord` entry of `signature` (base64), `cert_pem` and
    /// `payload`, signed by the log.
    pub fn bundle(
        &self,
        signature: &str,
        cert_pem: &str,
        payload: &[u8],
        logged_at: i64,
    ) -> Result<String, SignError> {
        let entry = json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": Digest::sha256_of(payload).hex()}},
                "signature": {"content": signature, "publicKey": {"content": b64(cert_pem.as_bytes())}},
            },
        });
        self.log_entry(&entry, logged_at)
    }

    /// A Rekor bundle of `entry` logged at `logged_at`, with the log's signed entry timestamp.
    pub fn log_entry(&self, entry: &Value, logged_at: i64) -> Result<String, SignError> {
        let body = b64(&serde_json::to_vec(entry).map_err(err)?);
        let log_id = self.log_id();
        let canonical = format!(
            "{{\"body\":{},\"integratedTime\":{logged_at},\"logID\":{},\"logIndex\":{}}}",
            Value::from(body.as_str()),
            Value::from(log_id.as_str()),
            1
        );
        let set = b64(&self.log.sign(canonical.as_bytes())?);
        Ok(json!({
            "SignedEntryTimestamp": set,
            "Payload": {"body": body, "integratedTime": logged_at, "logIndex": 1, "logID": log_id},
        })
        .to_string())
    }
}
