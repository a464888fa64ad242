//! Signed certificate timestamps (RFC 6962), as Fulcio embeds them in the signing certificates
//! it issues: the proof that a certificate transparency log saw the certificate, so that a
//! certificate issued to an identity cannot stay hidden from its owner.
//!
//! An embedded SCT signs the *precertificate*: the certificate's TBS without the SCT list
//! extension, bound to the issuer's key hash. Verifying one takes the certificate, its
//! issuer's public key and the CT logs' keys, all of which a TrustRoot gives offline.

use std::collections::BTreeMap;

use der::{Decode, Encode};
use sigstore::crypto::Signature;

use crate::policy::RekorKey;

/// The X.509 extension holding the SCT list.
pub const SCT_LIST_OID: &str = "1.3.6.1.4.1.11129.2.4.2";

/// The SCT list extension's OID, as arcs.
pub const SCT_LIST_ARCS: &[u64] = &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2];

/// One signed certificate timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sct {
    /// SHA-256 of the log's public key (DER SubjectPublicKeyInfo).
    pub log_id: [u8; 32],
    /// When the log saw the precertificate, in milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// The SCT's extensions, opaque.
    pub extensions: Vec<u8>,
    /// The TLS hash algorithm (4: SHA-256).
    pub hash: u8,
    /// The TLS signature algorithm (3: ECDSA, 1: RSA).
    pub algorithm: u8,
    /// The signature, as the algorithm encodes it (ASN.1 DER for ECDSA).
    pub signature: Vec<u8>,
}

/// A reader of TLS presentation-language structures: lengths big-endian, nothing skipped.
struct Tls<'a>(&'a [u8]);

impl<'a> Tls<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "the SCT list is truncated: {n} bytes wanted, {} left",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn uint(&mut self, n: usize) -> Result<u64, String> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn vector(&mut self, len_bytes: usize) -> Result<&'a [u8], String> {
        let n = self.uint(len_bytes)? as usize;
        self.take(n)
    }
}

/// Reads the SCT list extension's value (a DER OCTET STRING around the TLS-encoded list).
pub fn parse_list(extension_value: &[u8]) -> Result<Vec<Sct>, String> {
    let inner = der::asn1::OctetStringRef::from_der(extension_value)
        .map_err(|e| format!("the SCT list extension is not an OCTET STRING: {e}"))?;
    let mut list = Tls(inner.as_bytes());
    let mut body = Tls(list.vector(2)?);
    if !list.0.is_empty() {
        return Err("the SCT list has trailing bytes".into());
    }
    let mut out = vec![];
    while !body.0.is_empty() {
        let mut s = Tls(body.vector(2)?);
        let version = s.uint(1)?;
        if version != 0 {
            return Err(format!("SCT version {version} is not v1"));
        }
        let log_id: [u8; 32] = s.take(32)?.try_into().expect("32 bytes taken");
        let timestamp = s.uint(8)?;
        let extensions = s.vector(2)?.to_vec();
        let hash = s.uint(1)? as u8;
        let algorithm = s.uint(1)? as u8;
        let signature = s.vector(2)?.to_vec();
        if !s.0.is_empty() {
            return Err("an SCT has trailing bytes".into());
        }
        out.push(Sct {
            log_id,
            timestamp,
            extensions,
            hash,
            algorithm,
            signature,
        });
    }
    if out.is_empty() {
        return Err("the SCT list is empty".into());
    }
    Ok(out)
}

/// Encodes `scts` as the SCT list extension's value.
pub fn encode_list(scts: &[Sct]) -> Vec<u8> {
    let mut body = vec![];
    for s in scts {
        let mut one = vec![0u8];
        one.extend(s.log_id);
        one.extend(s.timestamp.to_be_bytes());
        one.extend((s.extensions.len() as u16).to_be_bytes());
        one.extend(&s.extensions);
        one.extend([s.hash, s.algorithm]);
        one.extend((s.signature.len() as u16).to_be_bytes());
        one.extend(&s.signature);
        body.extend((one.len() as u16).to_be_bytes());
        body.extend(one);
    }
    let mut list = (body.len() as u16).to_be_bytes().to_vec();
    list.extend(body);
    der::asn1::OctetString::new(list)
        .and_then(|o| o.to_der())
        .expect("an SCT list fits a DER length")
}

/// The precertificate's TBS for `cert_der`: its TBSCertificate without the SCT list extension,
/// DER (which is canonical, so this is what the log signed).
pub fn precert_tbs(cert_der: &[u8]) -> Result<Vec<u8>, String> {
    let cert = x509_cert::Certificate::from_der(cert_der)
        .map_err(|e| format!("the certificate does not decode: {e}"))?;
    let mut tbs = cert.tbs_certificate;
    let oid = der::asn1::ObjectIdentifier::new_unwrap(SCT_LIST_OID);
    if let Some(exts) = tbs.extensions.as_mut() {
        exts.retain(|e| e.extn_id != oid);
        if exts.is_empty() {
            tbs.extensions = None;
        }
    }
    tbs.to_der()
        .map_err(|e| format!("the certificate does not re-encode: {e}"))
}

/// The bytes an embedded SCT signs (RFC 6962 §3.2, a `precert_entry`).
pub fn signed_data(sct: &Sct, issuer_key_hash: &[u8; 32], tbs: &[u8]) -> Vec<u8> {
    let mut d = vec![0u8, 0u8]; // v1, certificate_timestamp
    d.extend(sct.timestamp.to_be_bytes());
    d.extend(1u16.to_be_bytes()); // precert_entry
    d.extend(issuer_key_hash);
    let len = (tbs.len() as u32).to_be_bytes();
    d.extend(&len[1..]);
    d.extend(tbs);
    d.extend((sct.extensions.len() as u16).to_be_bytes());
    d.extend(&sct.extensions);
    d
}

/// Checks that `cert_der` (issued by the holder of `issuer_spki_der`) carries an SCT from one
/// of `logs` (keyed by lowercase hex log ID) whose signature verifies. Returns that log's ID.
pub fn verify_embedded(
    cert_der: &[u8],
    issuer_spki_der: &[u8],
    logs: &BTreeMap<String, RekorKey>,
) -> Result<String, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| format!("the certificate does not parse: {e}"))?;
    let ext = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == SCT_LIST_OID)
        .ok_or("the certificate carries no SCT: no CT log has seen it")?;
    let scts = parse_list(ext.value)?;
    let tbs = precert_tbs(cert_der)?;
    let issuer_key_hash: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, issuer_spki_der)
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes");
    let mut why = vec![];
    for sct in &scts {
        let id = crate::reference::hex(&sct.log_id);
        let Some(log) = logs.get(&id) else {
            why.push(format!(
                "an SCT from log {id}, which the TrustRoot does not trust"
            ));
            continue;
        };
        if sct.hash != 4 {
            why.push(format!(
                "an SCT from log {id} hashed with TLS algorithm {}, not SHA-256",
                sct.hash
            ));
            continue;
        }
        let data = signed_data(sct, &issuer_key_hash, &tbs);
        match log
            .key
            .verify_signature(Signature::Raw(&sct.signature), &data)
        {
            Ok(()) => return Ok(id),
            Err(_) => why.push(format!(
                "the SCT from log {id} does not verify for this certificate"
            )),
        }
    }
    Err(why.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Sct {
        Sct {
            log_id: [7; 32],
            timestamp: 1_700_000_000_123,
            extensions: vec![],
            hash: 4,
            algorithm: 3,
            signature: vec![0x30, 0x02, 0x01, 0x00],
        }
    }

    #[test]
    fn a_list_round_trips_through_its_encoding() {
        let two = vec![
            sample(),
            Sct {
                extensions: vec![1, 2, 3],
                ..sample()
            },
        ];
        assert_eq!(parse_list(&encode_list(&two)).unwrap(), two);
    }

    #[test]
    fn truncated_empty_and_padded_lists_are_refused() {
        let good = encode_list(&[sample()]);
        let inner = der::asn1::OctetStringRef::from_der(&good)
            .unwrap()
            .as_bytes()
            .to_vec();
        let wrap = |b: Vec<u8>| der::asn1::OctetString::new(b).unwrap().to_der().unwrap();
        let short = wrap(inner[..inner.len() - 1].to_vec());
        assert!(parse_list(&short).unwrap_err().contains("truncated"));
        let mut long = inner.clone();
        long.push(0);
        assert!(parse_list(&wrap(long)).unwrap_err().contains("trailing"));
        assert!(parse_list(&wrap(vec![0, 0])).unwrap_err().contains("empty"));
        assert!(parse_list(&inner).is_err(), "the OCTET STRING is required");
        let mut v2 = inner;
        v2[4] = 1;
        assert!(parse_list(&wrap(v2)).unwrap_err().contains("version"));
    }
}
