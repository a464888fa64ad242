//! Verification of one image digest's cosign signatures against one policy, with no I/O.
//!
//! The rules, each fail-closed:
//! - a policy with no authorities, or an image with no signature layers, does not pass;
//! - an authority is satisfied by one signature layer that meets every one of its conditions
//!   itself: the payload names the image's digest, the layer's signature verifies with the
//!   authority's key (or with the certificate that meets the keyless conditions), and the
//!   payload carries the required annotations. A layer never borrows another layer's proof;
//! - keyless: the certificate chains to the TrustRoot's CA, has the code-signing usage and a
//!   required identity (issuer and subject), and was valid at the time Rekor logged the
//!   signature; the Rekor bundle's signed entry timestamp verifies with the TrustRoot's log key,
//!   and its entry is for this very signature, certificate and payload;
//! - a policy passes when at least `threshold` distinct authorities are satisfied, each by a
//!   different signer (a key, or a keyless identity): one signer never counts twice, however
//!   many signatures or copies of one it pushes.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::Value;
use sigstore::crypto::{CosignVerificationKey, Signature};

use crate::policy::{Authority, AuthorityKind, ImagePolicy, Mode, TrustRoot};
use crate::reference::Digest;

/// The layer media type of a cosign signature.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The payload type cosign writes.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";
/// The annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The annotation holding the signing certificate (PEM).
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// The annotation holding the certificate chain (PEM).
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// The annotation holding the Rekor bundle (JSON).
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// The layer media type of a cosign attestation (a DSSE envelope).
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The payload type of an in-toto statement in a DSSE envelope.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";

/// DSSE's pre-authentication encoding of `payload` of `payload_type`: what is signed.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Fulcio's OIDC issuer extension (v2, a DER UTF8String).
const ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
/// Fulcio's OIDC issuer extension (v1, the raw string).
const ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";

/// One signature layer as fetched: its payload blob (whose digest the fetcher checked against
/// the layer descriptor) and the descriptor's annotations.
#[derive(Debug, Clone)]
pub struct SignatureLayer {
    /// The payload bytes, exactly as signed.
    pub payload: Vec<u8>,
    /// The layer descriptor's annotations.
    pub annotations: BTreeMap<String, String>,
}

/// What one policy decided for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The policy's name.
    pub policy: String,
    /// Whether it passed.
    pub passed: bool,
    /// The policy's mode.
    pub warn_only: bool,
    /// Authorities satisfied, with the layer that satisfied each (`static` for static ones).
    pub satisfied: Vec<(String, String)>,
    /// Authorities not satisfied, with why.
    pub failures: Vec<(String, String)>,
    /// The threshold that applied.
    pub threshold: usize,
}

impl Verdict {
    /// One line: what passed, or every authority not satisfied and why.
    pub fn summary(&self) -> String {
        if self.passed {
            let names: Vec<&str> = self.satisfied.iter().map(|(a, _)| a.as_str()).collect();
            return format!("policy {}: satisfied by {}", self.policy, names.join(", "));
        }
        let mut s = format!(
            "policy {}: {} of {} required authorities satisfied",
            self.policy,
            self.satisfied.len(),
            self.threshold
        );
        for (a, why) in &self.failures {
            s.push_str(&format!("; authority {a}: {why}"));
        }
        s
    }
}

/// Verifies `digest`'s signature `layers` against `policy`, which needs no attestations.
/// `roots` are the TrustRoots by name.
pub fn verify(
    policy: &ImagePolicy,
    roots: &BTreeMap<String, TrustRoot>,
    digest: &Digest,
    layers: &[SignatureLayer],
) -> Verdict {
    verify_with(policy, roots, digest, layers, &[])
}

/// Verifies `digest`'s signature `layers` and attestation layers (`attestations`, DSSE
/// envelopes) against `policy`. An authority with attestations is satisfied when each of them
/// is satisfied by an attestation layer of its own signer.
pub fn verify_with(
    policy: &ImagePolicy,
    roots: &BTreeMap<String, TrustRoot>,
    digest: &Digest,
    layers: &[SignatureLayer],
    attestations: &[SignatureLayer],
) -> Verdict {
    let mut verdict = Verdict {
        policy: policy.name.clone(),
        passed: false,
        warn_only: policy.mode == Mode::Warn,
        satisfied: vec![],
        failures: vec![],
        threshold: policy.threshold,
    };
    // Which layers satisfy which authority; static ones need none.
    // Per authority, the signers that satisfy it, and the layer that showed it first.
    let mut signers: Vec<String> = vec![];
    let mut shown: BTreeMap<(usize, usize), String> = BTreeMap::new();
    let mut candidates: Vec<Vec<usize>> = vec![];
    let mut signer_index = |id: String| match signers.iter().position(|s| *s == id) {
        Some(i) => i,
        None => {
            signers.push(id);
            signers.len() - 1
        }
    };
    let mut statics: Vec<usize> = vec![];
    for (i, authority) in policy.authorities.iter().enumerate() {
        if let AuthorityKind::Static { pass, message } = &authority.kind {
            candidates.push(vec![]);
            if *pass {
                statics.push(i);
            } else {
                verdict.failures.push((
                    authority.name.clone(),
                    format!("disallowed by static policy: {message}"),
                ));
            }
            continue;
        }
        if !authority.attestations.is_empty() {
            match attested(authority, roots, digest, attestations) {
                Ok((l, signer)) => {
                    let s = signer_index(signer);
                    shown.insert((i, s), format!("attestation layer {l}"));
                    candidates.push(vec![s]);
                }
                Err(why) => {
                    candidates.push(vec![]);
                    verdict.failures.push((authority.name.clone(), why));
                }
            }
            continue;
        }
        if layers.is_empty() {
            candidates.push(vec![]);
            verdict
                .failures
                .push((authority.name.clone(), "the image has no signatures".into()));
            continue;
        }
        let mut ok = vec![];
        let mut why = vec![];
        for (l, layer) in layers.iter().enumerate() {
            match satisfies(authority, roots, digest, layer) {
                Ok(signer) => {
                    let s = signer_index(signer);
                    shown.entry((i, s)).or_insert_with(|| format!("layer {l}"));
                    if !ok.contains(&s) {
                        ok.push(s);
                    }
                }
                Err(e) => why.push(format!("layer {l}: {e}")),
            }
        }
        if ok.is_empty() {
            verdict
                .failures
                .push((authority.name.clone(), why.join(", ")));
        }
        candidates.push(ok);
    }
    // Each satisfied authority is matched to a signer of its own.
    let assignment = distinct_layers(&candidates);
    for (i, authority) in policy.authorities.iter().enumerate() {
        if statics.contains(&i) {
            verdict
                .satisfied
                .push((authority.name.clone(), "static".into()));
        } else if let Some(s) = assignment[i] {
            let which = shown.get(&(i, s)).cloned().unwrap_or_default();
            verdict.satisfied.push((authority.name.clone(), which));
        } else if !candidates[i].is_empty() {
            verdict.failures.push((
                authority.name.clone(),
                "its only signers already count for other authorities".into(),
            ));
        }
    }
    verdict.passed = !policy.authorities.is_empty() && verdict.satisfied.len() >= policy.threshold;
    verdict
}

/// A maximum matching of authorities to distinct signers (augmenting paths; both sides are
/// small).
fn distinct_layers(candidates: &[Vec<usize>]) -> Vec<Option<usize>> {
    let layers = candidates
        .iter()
        .flatten()
        .copied()
        .max()
        .map_or(0, |m| m + 1);
    let mut owner: Vec<Option<usize>> = vec![None; layers];
    fn augment(
        a: usize,
        candidates: &[Vec<usize>],
        owner: &mut [Option<usize>],
        seen: &mut [bool],
    ) -> bool {
        for &l in &candidates[a] {
            if seen[l] {
                continue;
            }
            seen[l] = true;
            if owner[l].is_none_or(|other| augment(other, candidates, owner, seen)) {
                owner[l] = Some(a);
                return true;
            }
        }
        false
    }
    for a in 0..candidates.len() {
        let mut seen = vec![false; layers];
        augment(a, candidates, &mut owner, &mut seen);
    }
    let mut out = vec![None; candidates.len()];
    for (l, a) in owner.iter().enumerate() {
        if let Some(a) = a {
            out[*a] = Some(l);
        }
    }
    out
}

/// Whether every attestation `authority` requires is satisfied, each by one attestation layer
/// that meets all its conditions; returns the first rule's layer.
fn attested(
    authority: &Authority,
    roots: &BTreeMap<String, TrustRoot>,
    digest: &Digest,
    layers: &[SignatureLayer],
) -> Result<(usize, String), String> {
    if let AuthorityKind::Static { .. } = authority.kind {
        return Err("attestations need a key or keyless authority".into());
    }
    if layers.is_empty() {
        return Err("the image has no attestations".into());
    }
    let mut first = None;
    for rule in &authority.attestations {
        let mut why = vec![];
        let mut found = None;
        for (l, layer) in layers.iter().enumerate() {
            match attestation(rule, &authority.kind, roots, digest, layer) {
                Ok(signer) => {
                    found = Some((l, signer));
                    break;
                }
                Err(e) => why.push(format!("attestation layer {l}: {e}")),
            }
        }
        match found {
            Some(hit) => {
                first.get_or_insert(hit);
            }
            None => return Err(format!("attestation {}: {}", rule.name, why.join(", "))),
        }
    }
    first.ok_or_else(|| "no attestation rule".to_string())
}

/// Whether `layer` (a DSSE envelope) is an in-toto statement about `digest` of the rule's
/// predicate type, signed by the authority (one of its keys, or a certificate meeting its
/// keyless conditions), whose content passes the rule's policy.
fn attestation(
    rule: &crate::policy::AttestationRule,
    kind: &AuthorityKind,
    roots: &BTreeMap<String, TrustRoot>,
    digest: &Digest,
    layer: &SignatureLayer,
) -> Result<String, String> {
    let envelope: Value = serde_json::from_slice(&layer.payload)
        .map_err(|e| format!("the envelope is not JSON: {e}"))?;
    let payload_type = envelope["payloadType"].as_str().unwrap_or_default();
    if payload_type != IN_TOTO {
        return Err(format!(
            "the payload type is {payload_type:?}, not {IN_TOTO}"
        ));
    }
    let payload = envelope["payload"]
        .as_str()
        .map(dsse_b64)
        .ok_or("the envelope has no payload")??;
    let signed = pae(payload_type, &payload);
    let sigs = envelope["signatures"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let sigs: Vec<Vec<u8>> = sigs
        .iter()
        .filter_map(|s| s["sig"].as_str().and_then(|x| dsse_b64(x).ok()))
        .collect();
    let signer = match kind {
        AuthorityKind::Key(keys) => sigs
            .iter()
            .find_map(|sig| {
                keys.iter()
                    .find(|k| k.key.verify_signature(Signature::Raw(sig), &signed).is_ok())
                    .map(|k| format!("key {}", k.id))
            })
            .ok_or("no signature of the envelope verifies with the authority's key")?,
        AuthorityKind::Keyless {
            identities,
            trust_root,
            check_sct,
        } => {
            let root = roots
                .get(trust_root)
                .ok_or_else(|| format!("TrustRoot {trust_root} is not loaded"))?;
            let (key, signer) = keyless_envelope(identities, root, *check_sct, layer)?;
            if !sigs
                .iter()
                .any(|sig| key.verify_signature(Signature::Raw(sig), &signed).is_ok())
            {
                return Err(
                    "no signature of the envelope was made by the certificate's key".into(),
                );
            }
            signer
        }
        AuthorityKind::Static { .. } => return Err("a static authority has no layer".into()),
    };
    let statement: Value =
        serde_json::from_slice(&payload).map_err(|e| format!("the statement is not JSON: {e}"))?;
    let about = statement["subject"].as_array().is_some_and(|subjects| {
        subjects.iter().any(|s| {
            s["digest"][match digest.algorithm() {
                crate::reference::Algorithm::Sha256 => "sha256",
                crate::reference::Algorithm::Sha384 => "sha384",
                crate::reference::Algorithm::Sha512 => "sha512",
            }] == digest.hex()
        })
    });
    if !about {
        return Err(format!("the statement is not about {digest}"));
    }
    let predicate_type = statement["predicateType"].as_str().unwrap_or_default();
    if predicate_type != rule.predicate_type {
        return Err(format!(
            "the predicate type is {predicate_type:?}, not {:?}",
            rule.predicate_type
        ));
    }
    let Some(program) = &rule.policy else {
        return Ok(signer);
    };
    match program.eval("isCompliant", &statement, None) {
        Ok(Value::Bool(true)) => Ok(signer),
        Ok(Value::Array(results)) => {
            let mut errors = vec![];
            for r in &results {
                if r["result"] == true {
                    return Ok(signer);
                }
                if let Some(e) = r["error"].as_str() {
                    errors.push(e.to_string());
                }
            }
            Err(format!(
                "the policy is not compliant for query 'data.sigstore.isCompliant' with errors: {}",
                errors.join(", ")
            ))
        }
        Ok(_) => Err("the policy is not compliant for query 'data.sigstore.isCompliant'".into()),
        Err(e) => Err(format!("the policy failed: {e}")),
    }
}

/// DSSE's base64: standard or URL-safe, padded or not.
fn dsse_b64(s: &str) -> Result<Vec<u8>, String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let s = s.trim();
    STANDARD
        .decode(s)
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .or_else(|_| URL_SAFE.decode(s))
        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
        .map_err(|e| format!("not base64: {e}"))
}

/// Whether `layer` alone satisfies `authority`.
fn satisfies(
    authority: &Authority,
    roots: &BTreeMap<String, TrustRoot>,
    digest: &Digest,
    layer: &SignatureLayer,
) -> Result<String, String> {
    let payload = read_payload(&layer.payload, digest)?;
    let signature = layer
        .annotations
        .get(SIGNATURE_ANNOTATION)
        .filter(|s| !s.is_empty())
        .ok_or("no signature annotation")?;
    let signer = match &authority.kind {
        AuthorityKind::Key(keys) => keys
            .iter()
            .find(|k| {
                k.key
                    .verify_signature(
                        Signature::Base64Encoded(signature.as_bytes()),
                        &layer.payload,
                    )
                    .is_ok()
            })
            .map(|k| format!("key {}", k.id))
            .ok_or("the signature does not verify with the authority's key")?,
        AuthorityKind::Keyless {
            identities,
            trust_root,
            check_sct,
        } => {
            let root = roots
                .get(trust_root)
                .ok_or_else(|| format!("TrustRoot {trust_root} is not loaded"))?;
            keyless(identities, root, *check_sct, signature, layer)?
        }
        AuthorityKind::Static { .. } => return Err("a static authority has no layer".into()),
    };
    for (k, v) in &authority.annotations {
        match payload.annotations.get(k) {
            Some(got) if got == v => {}
            Some(got) => return Err(format!("annotation {k} is {got:?}, not {v:?}")),
            None => return Err(format!("annotation {k}={v} is missing")),
        }
    }
    Ok(signer)
}

struct Payload {
    annotations: BTreeMap<String, String>,
}

/// Reads a simple-signing payload and checks that it is for `digest`.
fn read_payload(bytes: &[u8], digest: &Digest) -> Result<Payload, String> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("the payload is not JSON: {e}"))?;
    let critical = &v["critical"];
    if critical["type"] != SIGNATURE_TYPE {
        return Err(format!("the payload's type is not {SIGNATURE_TYPE:?}"));
    }
    let signed = critical
        .pointer("/image/docker-manifest-digest")
        .and_then(Value::as_str)
        .ok_or("the payload names no image digest")?;
    if signed != digest.to_string() {
        return Err(format!("the payload is for {signed}, not {digest}"));
    }
    let mut annotations = BTreeMap::new();
    if let Some(o) = v["optional"].as_object() {
        for (k, v) in o {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => continue,
            };
            annotations.insert(k.clone(), s);
        }
    }
    Ok(Payload { annotations })
}

fn b64(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| format!("not base64: {e}"))
}

fn pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let blocks = pem::parse_many(pem).map_err(|e| format!("not PEM: {e}"))?;
    Ok(blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.into_contents())
        .collect())
}

/// The keyless conditions of a signature layer, all on this layer.
fn keyless(
    identities: &[crate::policy::Identity],
    root: &TrustRoot,
    check_sct: bool,
    signature: &str,
    layer: &SignatureLayer,
) -> Result<String, String> {
    let (leaf_der, bundle) = keyless_material(layer)?;
    let (logged_at, entry) = logged_entry(bundle, root)?;
    binds_signature(&entry, signature, &leaf_der, &layer.payload)?;
    let (key, signer) = certificate(identities, root, check_sct, &leaf_der, logged_at)?;
    key.verify_signature(
        Signature::Base64Encoded(signature.as_bytes()),
        &layer.payload,
    )
    .map_err(|_| "the signature was not made by the certificate's key".to_string())?;
    Ok(signer)
}

/// The keyless conditions of an attestation layer (a DSSE envelope) but its signature: the
/// certificate's checks and the Rekor entry logging this very envelope with this certificate.
/// Returns the certificate's key, to verify the envelope's signature with, and the signer.
fn keyless_envelope(
    identities: &[crate::policy::Identity],
    root: &TrustRoot,
    check_sct: bool,
    layer: &SignatureLayer,
) -> Result<(CosignVerificationKey, String), String> {
    let (leaf_der, bundle) = keyless_material(layer)?;
    let (logged_at, entry) = logged_entry(bundle, root)?;
    binds_envelope(&entry, &leaf_der, &layer.payload)?;
    certificate(identities, root, check_sct, &leaf_der, logged_at)
}

/// A keyless layer's certificate (DER) and Rekor bundle.
fn keyless_material(layer: &SignatureLayer) -> Result<(Vec<u8>, &str), String> {
    let cert_pem = layer
        .annotations
        .get(CERTIFICATE_ANNOTATION)
        .ok_or("no certificate: the layer is not a keyless signature")?;
    let leaf_der = pem_certificates(cert_pem)?
        .into_iter()
        .next()
        .ok_or("the certificate annotation holds no certificate")?;
    let bundle = layer
        .annotations
        .get(BUNDLE_ANNOTATION)
        .ok_or("no Rekor bundle: keyless signatures must have been logged")?;
    Ok((leaf_der, bundle))
}

/// The certificate's conditions: valid when logged (at `logged_at`), chaining to the
/// TrustRoot, seen by a CT log (when `check_sct`), for code signing, and with one of
/// `identities`. Returns its public key and the signer it names.
fn certificate(
    identities: &[crate::policy::Identity],
    root: &TrustRoot,
    check_sct: bool,
    leaf_der: &[u8],
    logged_at: i64,
) -> Result<(CosignVerificationKey, String), String> {
    let (_, leaf) = x509_parser::parse_x509_certificate(leaf_der)
        .map_err(|e| format!("the certificate does not parse: {e}"))?;
    if leaf.is_ca() {
        return Err("the signing certificate is a CA certificate".into());
    }
    let validity = leaf.validity();
    if logged_at < validity.not_before.timestamp() || logged_at > validity.not_after.timestamp() {
        return Err(format!(
            "the certificate was not valid when the signature was logged (at {logged_at}; valid {} to {})",
            validity.not_before, validity.not_after
        ));
    }
    let issuer_spki = chain_to_root(&leaf, root, logged_at)?;
    if check_sct {
        crate::sct::verify_embedded(leaf_der, &issuer_spki, &root.ct_keys)
            .map_err(|e| format!("certificate transparency: {e}"))?;
    }
    let code_signing = leaf
        .extended_key_usage()
        .ok()
        .flatten()
        .is_some_and(|e| e.value.code_signing);
    if !code_signing {
        return Err("the certificate lacks the code-signing usage".into());
    }
    let issuer = oidc_issuer(&leaf).ok_or("the certificate names no OIDC issuer")?;
    let subjects = sans(&leaf);
    let matched = subjects.iter().find(|s| {
        identities
            .iter()
            .any(|id| id.issuer.matches(&issuer) && id.subject.matches(s))
    });
    let Some(subject) = matched else {
        let wanted: Vec<String> = identities
            .iter()
            .map(|id| format!("issuer {} subject {}", id.issuer, id.subject))
            .collect();
        return Err(format!(
            "the certificate's identity (issuer {issuer:?}, subject {}) is none of: {}",
            subjects.join(", "),
            wanted.join("; ")
        ));
    };
    let key = CosignVerificationKey::try_from_der(leaf.public_key().raw)
        .map_err(|e| format!("the certificate's key is not usable: {e}"))?;
    // A keyless signer is its identity: each signature has a certificate of its own.
    Ok((key, format!("identity {issuer} {subject}")))
}

/// Checks the Rekor bundle's signed entry timestamp with the TrustRoot's key for its log.
/// Returns the time the entry was logged (Unix seconds) and the entry.
fn logged_entry(bundle: &str, root: &TrustRoot) -> Result<(i64, Value), String> {
    let b: Value =
        serde_json::from_str(bundle).map_err(|e| format!("the Rekor bundle is not JSON: {e}"))?;
    let p = &b["Payload"];
    let body = p["body"].as_str().ok_or("the Rekor bundle has no body")?;
    let integrated = p["integratedTime"]
        .as_i64()
        .ok_or("the Rekor bundle has no integratedTime")?;
    let index = p["logIndex"]
        .as_i64()
        .ok_or("the Rekor bundle has no logIndex")?;
    let log_id = p["logID"].as_str().ok_or("the Rekor bundle has no logID")?;
    let set = b["SignedEntryTimestamp"]
        .as_str()
        .ok_or("the Rekor bundle has no SignedEntryTimestamp")?;
    let log = root.rekor_keys.get(log_id).ok_or_else(|| {
        format!(
            "the Rekor bundle is from log {log_id}, which TrustRoot {} does not trust",
            root.name
        )
    })?;
    // RFC 8785 canonical JSON of the payload: keys sorted, no spaces; all values are plain
    // strings (base64, hex) and integers.
    let canonical = format!(
        "{{\"body\":{},\"integratedTime\":{integrated},\"logID\":{},\"logIndex\":{index}}}",
        Value::from(body),
        Value::from(log_id)
    );
    log.key
        .verify_signature(
            Signature::Base64Encoded(set.as_bytes()),
            canonical.as_bytes(),
        )
        .map_err(|_| {
            "the Rekor bundle's signed entry timestamp does not verify with the log's key"
                .to_string()
        })?;
    let entry: Value = serde_json::from_slice(&b64(body)?)
        .map_err(|e| format!("the Rekor entry is not JSON: {e}"))?;
    Ok((integrated, entry))
}

/// Whether the logged certificate (base64 of its PEM) is `leaf_der`.
fn same_certificate(logged: Option<&Value>, leaf_der: &[u8]) -> Result<(), String> {
    let logged = b64(logged.and_then(Value::as_str).unwrap_or_default())?;
    let logged = pem_certificates(&String::from_utf8_lossy(&logged))?;
    if logged.first().map(Vec::as_slice) != Some(leaf_der) {
        return Err("the Rekor entry is for another certificate".into());
    }
    Ok(())
}

/// Whether a logged SHA-256 (`{algorithm, value}`) is the hash of `bytes`.
fn same_hash(hash: &Value, bytes: &[u8], what: &str) -> Result<(), String> {
    if hash["algorithm"] != "sha256"
        || hash["value"].as_str() != Some(Digest::sha256_of(bytes).hex())
    {
        return Err(format!("the Rekor entry is for another {what}"));
    }
    Ok(())
}

/// Whether the logged entry is a `hashedrekord` of this signature, certificate and payload.
fn binds_signature(
    entry: &Value,
    signature: &str,
    leaf_der: &[u8],
    payload: &[u8],
) -> Result<(), String> {
    if entry["kind"] != "hashedrekord" {
        return Err(format!(
            "the Rekor entry is a {}, not a hashedrekord",
            entry["kind"]
        ));
    }
    let spec = &entry["spec"];
    let logged_sig = b64(spec
        .pointer("/signature/content")
        .and_then(Value::as_str)
        .unwrap_or_default())?;
    if logged_sig != b64(signature)? {
        return Err("the Rekor entry is for another signature".into());
    }
    same_certificate(spec.pointer("/signature/publicKey/content"), leaf_der)?;
    same_hash(&spec["data"]["hash"], payload, "payload")
}

/// Whether the logged entry records this DSSE envelope (its exact bytes) signed with this
/// certificate: a `dsse` entry (cosign 2.2 and later), or an `intoto` entry (v0.0.2, or
/// v0.0.1).
fn binds_envelope(entry: &Value, leaf_der: &[u8], envelope: &[u8]) -> Result<(), String> {
    let spec = &entry["spec"];
    let (hash, cert) = match (entry["kind"].as_str(), entry["apiVersion"].as_str()) {
        (Some("dsse"), _) => {
            let sigs = spec["signatures"].as_array().map_or(0, Vec::len);
            if sigs != 1 {
                return Err(format!("the Rekor entry has {sigs} signatures, not one"));
            }
            (
                &spec["envelopeHash"],
                spec.pointer("/signatures/0/verifier"),
            )
        }
        (Some("intoto"), Some("0.0.2")) => {
            let sigs = spec
                .pointer("/content/envelope/signatures")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if sigs != 1 {
                return Err(format!("the Rekor entry has {sigs} signatures, not one"));
            }
            (
                &spec["content"]["hash"],
                spec.pointer("/content/envelope/signatures/0/publicKey"),
            )
        }
        (Some("intoto"), Some("0.0.1")) => (&spec["content"]["hash"], spec.get("publicKey")),
        (kind, version) => {
            return Err(format!(
                "the Rekor entry is a {} {}, not a dsse or intoto entry",
                kind.unwrap_or("(no kind)"),
                version.unwrap_or("(no version)")
            ));
        }
    };
    same_certificate(cert, leaf_der)?;
    same_hash(hash, envelope, "envelope")
}

/// Builds a path from `leaf` to a self-signed certificate of the TrustRoot, each link's
/// signature verified and each CA valid at `at`. Returns the leaf's issuer's public key (DER
/// SubjectPublicKeyInfo).
fn chain_to_root(
    leaf: &x509_parser::certificate::X509Certificate<'_>,
    root: &TrustRoot,
    at: i64,
) -> Result<Vec<u8>, String> {
    let cas: Vec<x509_parser::certificate::X509Certificate<'_>> = root
        .certificates
        .iter()
        .filter_map(|d| x509_parser::parse_x509_certificate(d).ok().map(|(_, c)| c))
        .collect();
    let mut current = leaf.clone();
    let mut leaf_issuer = None;
    for _ in 0..8 {
        let issuer = cas.iter().find(|ca| {
            ca.subject() == current.issuer()
                && ca.is_ca()
                && ca
                    .key_usage()
                    .ok()
                    .flatten()
                    .is_none_or(|ku| ku.value.key_cert_sign())
                && ca.validity().not_before.timestamp() <= at
                && at <= ca.validity().not_after.timestamp()
                && current.verify_signature(Some(ca.public_key())).is_ok()
        });
        let Some(issuer) = issuer else {
            return Err(format!(
                "the certificate does not chain to TrustRoot {}'s certificate authorities",
                root.name
            ));
        };
        let spki = leaf_issuer.get_or_insert_with(|| issuer.public_key().raw.to_vec());
        if issuer.subject() == issuer.issuer() && issuer.verify_signature(None).is_ok() {
            return Ok(spki.clone());
        }
        current = issuer.clone();
    }
    Err("the certificate chain is too long".into())
}

/// The certificate's OIDC issuer: Fulcio's v2 extension (a DER UTF8String), else v1's raw
/// string.
fn oidc_issuer(cert: &x509_parser::certificate::X509Certificate<'_>) -> Option<String> {
    let find = |oid: &str| {
        cert.extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == oid)
            .map(|e| e.value)
    };
    if let Some(v) = find(ISSUER_V2) {
        // UTF8String: tag 0x0c, a short or long length, then the bytes.
        if let Ok((_, any)) = x509_parser::der_parser::der::parse_der_utf8string(v)
            && let Ok(s) = any.as_str()
        {
            return Some(s.to_string());
        }
        return None;
    }
    find(ISSUER_V1).and_then(|v| std::str::from_utf8(v).ok().map(String::from))
}

/// The certificate's subject alternative names: emails, URIs, DNS names.
fn sans(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    cert.subject_alternative_name()
        .ok()
        .flatten()
        .map(|s| {
            s.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::RFC822Name(e) => Some(e.to_string()),
                    GeneralName::URI(u) => Some(u.to_string()),
                    GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}
