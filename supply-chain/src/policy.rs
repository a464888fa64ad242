//! ClusterImagePolicy (`policy.sigstore.dev/v1beta1`) and TrustRoot (`v1alpha1`) in upstream's
//! shape, read into what verification needs, plus two fields of Garrison's own:
//! `spec.threshold` (at least N distinct authorities must be satisfied) and
//! `authorities[].annotations` (what the satisfying signature's payload must carry).
//!
//! Verification here is offline: a keyless authority names a TrustRoot (`trustRootRef`) with
//! the Fulcio certificate chain and the Rekor keys, and each signature must carry its Rekor
//! bundle. What cannot be verified offline (KMS keys, online Rekor lookups, remote TUF roots)
//! is refused when the policy is read, so that no image passes a check that was not made.

use std::collections::BTreeMap;

use serde_json::Value;
use sigstore::crypto::CosignVerificationKey;

use crate::error::PolicyError;
use crate::glob::Glob;

/// API group and versions of upstream's objects.
pub const GROUP: &str = "policy.sigstore.dev";
/// ClusterImagePolicy's kind.
pub const CLUSTER_IMAGE_POLICY: &str = "ClusterImagePolicy";
/// TrustRoot's kind.
pub const TRUST_ROOT: &str = "TrustRoot";

/// Enforce (refuse) or warn (apply and report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Refuse the work.
    Enforce,
    /// Apply the work and report.
    Warn,
}

/// A string matched exactly or by an unanchored regular expression, as cosign matches
/// identities.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Equal to.
    Exact(String),
    /// Matches somewhere (anchor with `^…$`).
    Regex(regex::Regex),
}

impl Matcher {
    /// Whether `s` matches.
    pub fn matches(&self, s: &str) -> bool {
        match self {
            Matcher::Exact(e) => e == s,
            Matcher::Regex(r) => r.is_match(s),
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Matcher::Exact(e) => write!(f, "{e:?}"),
            Matcher::Regex(r) => write!(f, "/{}/", r.as_str()),
        }
    }
}

/// A keyless identity: the OIDC issuer and the subject (a SAN) that a certificate must carry.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The issuer.
    pub issuer: Matcher,
    /// The subject.
    pub subject: Matcher,
}

/// Offline roots of trust for keyless signatures.
#[derive(Debug, Clone)]
pub struct TrustRoot {
    /// The TrustRoot's name.
    pub name: String,
    /// Fulcio CA certificates (DER): roots (self-signed) and intermediates.
    pub certificates: Vec<Vec<u8>>,
    /// Rekor public keys by log ID (lowercase hex SHA-256 of the key's DER SPKI).
    pub rekor_keys: BTreeMap<String, RekorKey>,
    /// Certificate transparency log public keys by log ID (as for Rekor), for the SCTs of
    /// keyless certificates.
    pub ct_keys: BTreeMap<String, RekorKey>,
    /// SHA-256 of the TrustRoot's spec, hex.
    pub content_hash: String,
}

/// A transparency log's public key.
#[derive(Debug, Clone)]
pub struct RekorKey {
    /// The key, for checking signed entry timestamps.
    pub key: CosignVerificationKey,
}

/// A public key and its ID (hex SHA-256 of its DER SubjectPublicKeyInfo): the signer a
/// signature made with it counts as.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// The key.
    pub key: CosignVerificationKey,
    /// Its ID.
    pub id: String,
}

/// How an authority is satisfied.
#[derive(Debug, Clone)]
pub enum AuthorityKind {
    /// A signature made with one of these keys.
    Key(Vec<PublicKey>),
    /// A Fulcio certificate with one of these identities, chaining to `root`, logged in Rekor.
    Keyless {
        /// Accepted identities; any one suffices.
        identities: Vec<Identity>,
        /// The TrustRoot's name, resolved when the policies are loaded.
        trust_root: String,
        /// Whether the certificate must carry an SCT from one of the TrustRoot's CT logs
        /// (unless the policy sets `insecureIgnoreSCT: true`).
        check_sct: bool,
    },
    /// Passes or fails without looking at signatures.
    Static {
        /// Whether it passes.
        pass: bool,
        /// The message of a failing static authority.
        message: String,
    },
}

/// An attestation an authority requires: an in-toto statement of this predicate type about the
/// image, signed as the authority requires, whose content passes the Rego policy.
#[derive(Debug, Clone)]
pub struct AttestationRule {
    /// Its name.
    pub name: String,
    /// The predicate type URI (aliases such as `slsaprovenance` resolved).
    pub predicate_type: String,
    /// The Rego policy (`data.sigstore.isCompliant` with the statement as input), if any.
    pub policy: Option<std::sync::Arc<garrison_governance::rego::Program>>,
}

/// One authority of a policy.
#[derive(Debug, Clone)]
pub struct Authority {
    /// Its name (`authority-<i>` when unnamed).
    pub name: String,
    /// How it is satisfied.
    pub kind: AuthorityKind,
    /// Annotations the satisfying signature's payload must carry (Garrison's own field).
    pub annotations: BTreeMap<String, String>,
    /// Attestations required instead of a signature: every one must be satisfied.
    pub attestations: Vec<AttestationRule>,
}

impl ImagePolicy {
    /// Whether any authority needs the image's attestations.
    pub fn needs_attestations(&self) -> bool {
        self.authorities.iter().any(|a| !a.attestations.is_empty())
    }
}

/// The predicate type URI an attestation's `predicateType` names: cosign's aliases, or the URI
/// itself.
pub fn predicate_uri(t: &str) -> &str {
    match t {
        "custom" => "https://cosign.sigstore.dev/attestation/v1",
        "slsaprovenance" | "slsaprovenance02" => "https://slsa.dev/provenance/v0.2",
        "slsaprovenance1" => "https://slsa.dev/provenance/v1",
        "spdx" | "spdxjson" => "https://spdx.dev/Document",
        "cyclonedx" => "https://cyclonedx.org/bom",
        "link" => "https://in-toto.io/Link/v1",
        "vuln" => "https://cosign.sigstore.dev/attestation/vuln/v1",
        "openvex" => "https://openvex.dev/ns",
        other => other,
    }
}

/// A ClusterImagePolicy, read.
#[derive(Debug, Clone)]
pub struct ImagePolicy {
    /// Its name.
    pub name: String,
    /// The images it covers.
    pub images: Vec<Glob>,
    /// Its authorities.
    pub authorities: Vec<Authority>,
    /// How many distinct authorities must be satisfied (1 when unset, as upstream's "any").
    pub threshold: usize,
    /// Enforce or warn.
    pub mode: Mode,
    /// Registries (`host[:port]`) this policy lets be reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// SHA-256 of the policy's spec (and of the TrustRoots it names), hex: the cache key's
    /// policy part, so a changed policy never reuses an old decision.
    pub content_hash: String,
}

struct Reader<'a> {
    object: String,
    spec: &'a Value,
    secrets: Secrets<'a>,
}

/// How `key.secretRef` is resolved. As upstream reads such Secrets from the policy
/// controller's own namespace, the image-verification add-on reads them from its install
/// namespace on the managed cluster; each must have exactly one data entry, the PEM key.
#[derive(Debug, Clone, Copy)]
pub enum Secrets<'a> {
    /// Not available here (`garrison image verify`): a secretRef is refused.
    Unavailable,
    /// Checked for shape only; the key is read by whoever verifies (the policy add-on's report).
    Deferred,
    /// The Secrets read, by name: the PEM, or why it could not be read.
    Resolved(&'a BTreeMap<String, Result<String, String>>),
}

/// The Secrets the ClusterImagePolicies among `objects` name in `key.secretRef`.
pub fn secret_refs(objects: &[Value]) -> std::collections::BTreeSet<String> {
    objects
        .iter()
        .filter(|o| is_cluster_image_policy(o))
        .flat_map(|o| {
            o["spec"]["authorities"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|a| a["key"]["secretRef"]["name"].as_str().map(String::from))
        .collect()
}

impl Reader<'_> {
    fn invalid(&self, field: &str, message: impl Into<String>) -> PolicyError {
        PolicyError::Invalid {
            object: self.object.clone(),
            field: field.into(),
            message: message.into(),
        }
    }

    fn unsupported(&self, field: &str, message: impl Into<String>) -> PolicyError {
        PolicyError::Unsupported {
            object: self.object.clone(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Refuses any field of `obj` (at `at`) not in `known`: a misspelt field would otherwise be
/// ignored, and a check it asks for silently not made.
fn only(r: &Reader<'_>, obj: &Value, at: &str, known: &[&str]) -> Result<(), PolicyError> {
    if let Some(o) = obj.as_object()
        && let Some(k) = o.keys().find(|k| !known.contains(&k.as_str()))
    {
        let field = if at.is_empty() {
            k.clone()
        } else {
            format!("{at}.{k}")
        };
        return Err(r.invalid(
            &field,
            format!("unknown field; known here: {}", known.join(", ")),
        ));
    }
    Ok(())
}

fn name_of(obj: &Value) -> String {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Whether `obj` is a ClusterImagePolicy.
pub fn is_cluster_image_policy(obj: &Value) -> bool {
    kind_is(obj, CLUSTER_IMAGE_POLICY)
}

/// Whether `obj` is a TrustRoot.
pub fn is_trust_root(obj: &Value) -> bool {
    kind_is(obj, TRUST_ROOT)
}

fn kind_is(obj: &Value, kind: &str) -> bool {
    obj["kind"] == kind
        && obj["apiVersion"]
            .as_str()
            .and_then(|v| v.split_once('/'))
            .is_some_and(|(g, _)| g == GROUP)
}

/// Reads a TrustRoot. Only the `sigstoreKeys` form is taken: the others fetch a TUF
/// repository, which offline verification cannot.
pub fn trust_root(obj: &Value) -> Result<TrustRoot, PolicyError> {
    let name = name_of(obj);
    let r = Reader {
        object: format!("{TRUST_ROOT}/{name}"),
        spec: &obj["spec"],
        secrets: Secrets::Unavailable,
    };
    if name.is_empty() {
        return Err(r.invalid("metadata.name", "a TrustRoot needs a name"));
    }
    only(
        &r,
        r.spec,
        "spec",
        &["sigstoreKeys", "remote", "repository", "trustedRootJSON"],
    )?;
    let keys = &r.spec["sigstoreKeys"];
    only(
        &r,
        keys,
        "spec.sigstoreKeys",
        &[
            "certificateAuthorities",
            "tLogs",
            "ctLogs",
            "timestampAuthorities",
        ],
    )?;
    if !keys.is_object() {
        let other = ["remote", "repository", "trustedRootJSON"]
            .into_iter()
            .find(|k| !r.spec[k].is_null());
        return Err(match other {
            Some(k) => r.unsupported(
                &format!("spec.{k}"),
                "only spec.sigstoreKeys is verified offline; give the CA chain and Rekor keys there",
            ),
            None => r.invalid("spec", "missing field(s): sigstoreKeys"),
        });
    }
    let mut certificates = vec![];
    let cas = keys["certificateAuthorities"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if cas.is_empty() {
        return Err(r.invalid(
            "spec.sigstoreKeys.certificateAuthorities",
            "at least one certificate authority is needed",
        ));
    }
    for (i, ca) in cas.iter().enumerate() {
        only(
            &r,
            ca,
            &format!("spec.sigstoreKeys.certificateAuthorities[{i}]"),
            &["subject", "uri", "certChain"],
        )?;
        let field = format!("spec.sigstoreKeys.certificateAuthorities[{i}].certChain");
        let pem = base64_field(&r, &ca["certChain"], &field)?;
        let blocks =
            pem::parse_many(&pem).map_err(|e| r.invalid(&field, format!("not PEM: {e}")))?;
        let certs: Vec<Vec<u8>> = blocks
            .into_iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .map(|b| b.into_contents())
            .collect();
        if certs.is_empty() {
            return Err(r.invalid(&field, "holds no certificate"));
        }
        for c in &certs {
            x509_parser::parse_x509_certificate(c)
                .map_err(|e| r.invalid(&field, format!("not an X.509 certificate: {e}")))?;
        }
        certificates.extend(certs);
    }
    let rekor_keys = log_keys(&r, keys, "tLogs")?;
    if rekor_keys.is_empty() {
        return Err(r.invalid(
            "spec.sigstoreKeys.tLogs",
            "at least one Rekor log key is needed: keyless signatures are checked against their Rekor bundle",
        ));
    }
    let ct_keys = log_keys(&r, keys, "ctLogs")?;
    let spec = serde_json::to_vec(r.spec).unwrap_or_default();
    Ok(TrustRoot {
        name,
        certificates,
        rekor_keys,
        ct_keys,
        content_hash: crate::reference::hex(
            ring::digest::digest(&ring::digest::SHA256, &spec).as_ref(),
        ),
    })
}

/// The public keys of a TrustRoot's transparency logs (`tLogs` or `ctLogs`), by log ID.
fn log_keys(
    r: &Reader<'_>,
    keys: &Value,
    list: &str,
) -> Result<BTreeMap<String, RekorKey>, PolicyError> {
    let mut out = BTreeMap::new();
    for (i, t) in keys[list]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let at = format!("spec.sigstoreKeys.{list}[{i}]");
        only(r, t, &at, &["baseURL", "hashAlgorithm", "publicKey"])?;
        let field = format!("{at}.publicKey");
        let pem = base64_field(r, &t["publicKey"], &field)?;
        let block = pem::parse(&pem).map_err(|e| r.invalid(&field, format!("not PEM: {e}")))?;
        let der = block.contents().to_vec();
        let key = CosignVerificationKey::try_from_der(&der)
            .map_err(|e| r.invalid(&field, format!("not a public key: {e}")))?;
        out.insert(
            crate::reference::hex(ring::digest::digest(&ring::digest::SHA256, &der).as_ref()),
            RekorKey { key },
        );
    }
    Ok(out)
}

fn base64_field(r: &Reader<'_>, v: &Value, field: &str) -> Result<Vec<u8>, PolicyError> {
    use base64::Engine;
    let s = v
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| r.invalid(field, "missing field(s)"))?;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| r.invalid(field, format!("not base64: {e}")))
}

/// Reads a ClusterImagePolicy. `roots` are the TrustRoots it may name; a policy whose
/// `trustRootRef` names none of them is refused.
pub fn image_policy(
    obj: &Value,
    roots: &BTreeMap<String, TrustRoot>,
) -> Result<ImagePolicy, PolicyError> {
    image_policy_with(obj, roots, Secrets::Unavailable)
}

/// Reads a ClusterImagePolicy, resolving `key.secretRef` with `secrets`.
pub fn image_policy_with(
    obj: &Value,
    roots: &BTreeMap<String, TrustRoot>,
    secrets: Secrets<'_>,
) -> Result<ImagePolicy, PolicyError> {
    let name = name_of(obj);
    let r = Reader {
        object: format!("{CLUSTER_IMAGE_POLICY}/{name}"),
        spec: &obj["spec"],
        secrets,
    };
    if name.is_empty() {
        return Err(r.invalid("metadata.name", "a ClusterImagePolicy needs a name"));
    }
    if !r.spec.is_object() {
        return Err(r.invalid("spec", "missing field(s): spec"));
    }
    only(
        &r,
        r.spec,
        "spec",
        &[
            "images",
            "authorities",
            "mode",
            "policy",
            "match",
            "threshold",
            "insecureRegistries",
        ],
    )?;
    let images = r.spec["images"].as_array().cloned().unwrap_or_default();
    if images.is_empty() {
        return Err(r.invalid("spec.images", "missing field(s): images"));
    }
    let images = images
        .iter()
        .enumerate()
        .map(|(i, im)| {
            only(&r, im, &format!("spec.images[{i}]"), &["glob"])?;
            let field = format!("spec.images[{i}].glob");
            let g = im["glob"]
                .as_str()
                .ok_or_else(|| r.invalid(&field, "missing field(s): glob"))?;
            Glob::new(g).map_err(|e| r.invalid(&field, e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mode = match r.spec["mode"].as_str() {
        None | Some("enforce") => Mode::Enforce,
        Some("warn") => Mode::Warn,
        Some(other) => {
            return Err(r.invalid(
                "spec.mode",
                format!("unsupported mode {other:?}: use enforce or warn"),
            ));
        }
    };
    for field in ["policy", "match"] {
        if !r.spec[field].is_null() {
            return Err(r.unsupported(
                &format!("spec.{field}"),
                "not verified by Garrison yet; remove it, or the policy would pass a check that was not made",
            ));
        }
    }
    let list = r.spec["authorities"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // An empty authority list would let everything through: upstream's fail-on-empty-authorities.
    if list.is_empty() {
        return Err(r.invalid("spec.authorities", "missing field(s): authorities"));
    }
    // The name counts: a cached verdict reports the policy that made it.
    let mut hashed = name.as_bytes().to_vec();
    hashed.push(0);
    hashed.extend(serde_json::to_vec(r.spec).unwrap_or_default());
    let mut authorities = vec![];
    for (i, a) in list.iter().enumerate() {
        let at = format!("spec.authorities[{i}]");
        let name = a["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map_or_else(|| format!("authority-{i}"), String::from);
        only(
            &r,
            a,
            &at,
            &[
                "name",
                "key",
                "keyless",
                "static",
                "source",
                "ctlog",
                "rfc3161timestamp",
                "attestations",
                "signatureFormat",
                "annotations",
            ],
        )?;
        let present: Vec<&str> = ["key", "keyless", "static", "rfc3161timestamp"]
            .into_iter()
            .filter(|k| !a[k].is_null())
            .collect();
        if present.is_empty() {
            return Err(r.invalid(
                &at,
                "expected exactly one, got neither: key, keyless, static",
            ));
        }
        if present.len() > 1 {
            return Err(r.invalid(
                &at,
                format!("expected exactly one, got both: {}", present.join(", ")),
            ));
        }
        for field in ["source", "ctlog", "rfc3161timestamp", "signatureFormat"] {
            if !a[field].is_null() {
                return Err(r.unsupported(
                    &format!("{at}.{field}"),
                    "not verified by Garrison yet; remove it, or the authority would pass a check that was not made",
                ));
            }
        }
        let kind = match present[0] {
            "key" => {
                // A key read from a Secret counts in the content hash: a rotated key never
                // reuses a verdict of the old one.
                if let (Some(n), Secrets::Resolved(m)) =
                    (a["key"]["secretRef"]["name"].as_str(), r.secrets)
                    && let Some(Ok(pem)) = m.get(n)
                {
                    hashed.extend(pem.as_bytes());
                }
                key_authority(&r, &a["key"], &format!("{at}.key"))?
            }
            "keyless" => {
                let (kind, root_hash) =
                    keyless_authority(&r, &a["keyless"], &format!("{at}.keyless"), roots)?;
                hashed.extend(root_hash.as_bytes());
                kind
            }
            _ => {
                let s = &a["static"];
                only(&r, s, &format!("{at}.static"), &["action", "message"])?;
                let pass = match s["action"].as_str() {
                    Some("pass") => true,
                    Some("fail") => false,
                    Some(other) => {
                        return Err(r.invalid(
                            &format!("{at}.static.action"),
                            format!("unsupported action {other:?}: use pass or fail"),
                        ));
                    }
                    None => {
                        return Err(r.invalid(&format!("{at}.static"), "missing field(s): action"));
                    }
                };
                AuthorityKind::Static {
                    pass,
                    message: s["message"].as_str().unwrap_or_default().to_string(),
                }
            }
        };
        let mut annotations = BTreeMap::new();
        if let Some(m) = a["annotations"].as_object() {
            for (k, v) in m {
                let v = v.as_str().ok_or_else(|| {
                    r.invalid(
                        &format!("{at}.annotations.{k}"),
                        "annotation values are strings",
                    )
                })?;
                annotations.insert(k.clone(), v.to_string());
            }
        } else if !a["annotations"].is_null() {
            return Err(r.invalid(&format!("{at}.annotations"), "a map of strings"));
        }
        if matches!(kind, AuthorityKind::Static { .. }) && !annotations.is_empty() {
            return Err(r.invalid(
                &format!("{at}.annotations"),
                "a static authority has no signature to carry annotations",
            ));
        }
        let attestations =
            attestation_rules(&r, &a["attestations"], &format!("{at}.attestations"))?;
        if !attestations.is_empty() {
            match kind {
                AuthorityKind::Static { .. } => {
                    return Err(
                        r.invalid(&at, "expected exactly one, got both: static, attestations")
                    );
                }
                AuthorityKind::Keyless { .. } | AuthorityKind::Key(_) => {}
            }
            if !annotations.is_empty() {
                return Err(r.invalid(
                    &format!("{at}.annotations"),
                    "annotations are checked on signatures; an authority with attestations checks attestations",
                ));
            }
        }
        authorities.push(Authority {
            name,
            kind,
            annotations,
            attestations,
        });
    }
    let mut names: Vec<&str> = authorities.iter().map(|a| a.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(r.invalid(
            "spec.authorities",
            format!("two authorities are named {:?}", w[0]),
        ));
    }
    let threshold = match &r.spec["threshold"] {
        Value::Null => 1,
        v => match v.as_u64() {
            Some(n) if n >= 1 && (n as usize) <= authorities.len() => n as usize,
            _ => {
                return Err(r.invalid(
                    "spec.threshold",
                    format!(
                        "must be a whole number from 1 to the number of authorities ({})",
                        authorities.len()
                    ),
                ));
            }
        },
    };
    let insecure_registries = match &r.spec["insecureRegistries"] {
        Value::Null => vec![],
        Value::Array(a) => a
            .iter()
            .map(|v| {
                v.as_str().map(String::from).ok_or_else(|| {
                    r.invalid("spec.insecureRegistries", "a list of host[:port] strings")
                })
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(r.invalid("spec.insecureRegistries", "a list of host[:port] strings")),
    };
    Ok(ImagePolicy {
        name,
        images,
        authorities,
        threshold,
        mode,
        insecure_registries,
        content_hash: crate::reference::hex(
            ring::digest::digest(&ring::digest::SHA256, &hashed).as_ref(),
        ),
    })
}

fn attestation_rules(
    r: &Reader<'_>,
    v: &Value,
    at: &str,
) -> Result<Vec<AttestationRule>, PolicyError> {
    let list = match v {
        Value::Null => return Ok(vec![]),
        Value::Array(a) => a,
        _ => return Err(r.invalid(at, "a list of attestations")),
    };
    let mut out = vec![];
    for (i, a) in list.iter().enumerate() {
        let at = format!("{at}[{i}]");
        only(r, a, &at, &["name", "predicateType", "policy"])?;
        let name = a["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| r.invalid(&at, "missing field(s): name"))?;
        let predicate_type = a["predicateType"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| r.invalid(&at, "missing field(s): predicateType"))?;
        let policy = match &a["policy"] {
            Value::Null => None,
            p => {
                only(
                    r,
                    p,
                    &format!("{at}.policy"),
                    &["type", "data", "configMapRef", "url", "remote"],
                )?;
                match p["type"].as_str() {
                    Some("rego") => {}
                    Some("cue") => {
                        return Err(r.unsupported(
                            &format!("{at}.policy.type"),
                            "CUE policies are not evaluated; write the policy in Rego",
                        ));
                    }
                    _ => {
                        return Err(r.invalid(
                            &format!("{at}.policy.type"),
                            "only [cue,rego] are supported at the moment",
                        ));
                    }
                }
                for field in ["configMapRef", "url", "remote"] {
                    if !p[field].is_null() {
                        return Err(r.unsupported(
                            &format!("{at}.policy.{field}"),
                            "give the Rego in policy.data",
                        ));
                    }
                }
                let data = p["data"]
                    .as_str()
                    .filter(|d| !d.trim().is_empty())
                    .ok_or_else(|| r.invalid(&format!("{at}.policy"), "missing field(s): data"))?;
                // Upstream parses these policies as Rego v0 and asks `data.sigstore.isCompliant`.
                let program = garrison_governance::rego::Program::compile(
                    data,
                    &[],
                    garrison_governance::rego::RegoVersion::V0,
                    "isCompliant",
                )
                .map_err(|e| r.invalid(&format!("{at}.policy.data"), e.to_string()))?;
                if program.package() != "data.sigstore" {
                    return Err(r.invalid(
                        &format!("{at}.policy.data"),
                        format!(
                            "the policy's package must be sigstore, not {}",
                            program.package().trim_start_matches("data.")
                        ),
                    ));
                }
                Some(std::sync::Arc::new(program))
            }
        };
        out.push(AttestationRule {
            name: name.to_string(),
            predicate_type: predicate_uri(predicate_type).to_string(),
            policy,
        });
    }
    Ok(out)
}

fn key_authority(r: &Reader<'_>, key: &Value, at: &str) -> Result<AuthorityKind, PolicyError> {
    only(r, key, at, &["data", "kms", "secretRef", "hashAlgorithm"])?;
    if !key["kms"].is_null() {
        return Err(r.unsupported(
            &format!("{at}.kms"),
            "KMS keys are not fetched; put the public key in key.data",
        ));
    }
    let from_secret;
    let data_field = if key["secretRef"].is_null() {
        &key["data"]
    } else {
        if !key["data"].is_null() {
            return Err(r.invalid(at, "expected exactly one, got both: data, secretref"));
        }
        only(
            r,
            &key["secretRef"],
            &format!("{at}.secretRef"),
            &["name", "namespace"],
        )?;
        let name = key["secretRef"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| r.invalid(&format!("{at}.secretRef"), "missing field(s): name"))?;
        match r.secrets {
            Secrets::Unavailable => {
                return Err(r.unsupported(
                    &format!("{at}.secretRef"),
                    "Secrets are read by the image-verification add-on on the cluster; here, put the public key in key.data",
                ));
            }
            Secrets::Deferred => return Ok(AuthorityKind::Key(vec![])),
            Secrets::Resolved(m) => match m.get(name) {
                Some(Ok(pem)) => {
                    from_secret = Value::String(pem.clone());
                    &from_secret
                }
                Some(Err(e)) => return Err(r.invalid(&format!("{at}.secretRef"), e.clone())),
                None => {
                    return Err(r.invalid(
                        &format!("{at}.secretRef"),
                        format!("secret {name:?} was not read"),
                    ));
                }
            },
        }
    };
    match key["hashAlgorithm"]
        .as_str()
        .map(|h| h.trim().to_ascii_lowercase())
    {
        None => {}
        Some(h) if h == "sha256" => {}
        Some(h) => {
            return Err(r.unsupported(
                &format!("{at}.hashAlgorithm"),
                format!("{h} is not verified; use sha256"),
            ));
        }
    }
    let data = data_field
        .as_str()
        .filter(|d| !d.trim().is_empty())
        .ok_or_else(|| {
            r.invalid(
                at,
                "expected exactly one, got neither: data, kms, secretref",
            )
        })?;
    let blocks = pem::parse_many(data)
        .map_err(|e| r.invalid(&format!("{at}.data"), format!("not PEM: {e}")))?;
    let keys = blocks
        .iter()
        .filter(|b| b.tag() == "PUBLIC KEY")
        .map(|b| {
            CosignVerificationKey::try_from_der(b.contents())
                .map(|key| PublicKey {
                    key,
                    id: crate::reference::hex(
                        ring::digest::digest(&ring::digest::SHA256, b.contents()).as_ref(),
                    ),
                })
                .map_err(|e| r.invalid(&format!("{at}.data"), format!("invalid value: data: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(r.invalid(
            &format!("{at}.data"),
            "invalid value: data: no PUBLIC KEY block",
        ));
    }
    Ok(AuthorityKind::Key(keys))
}

fn matcher(
    r: &Reader<'_>,
    id: &Value,
    exact: &str,
    regexp: &str,
    at: &str,
) -> Result<Matcher, PolicyError> {
    match (id[exact].as_str(), id[regexp].as_str()) {
        (Some(e), None) if !e.is_empty() => Ok(Matcher::Exact(e.to_string())),
        (None, Some(re)) if !re.is_empty() => regex::Regex::new(re)
            .map(Matcher::Regex)
            .map_err(|e| r.invalid(&format!("{at}.{regexp}"), format!("regex is invalid: {e}"))),
        (Some(_), Some(_)) => Err(r.invalid(
            at,
            format!("expected exactly one, got both: {exact}, {regexp}"),
        )),
        _ => Err(r.invalid(
            at,
            format!("expected exactly one, got neither: {exact}, {regexp}"),
        )),
    }
}

fn keyless_authority(
    r: &Reader<'_>,
    k: &Value,
    at: &str,
    roots: &BTreeMap<String, TrustRoot>,
) -> Result<(AuthorityKind, String), PolicyError> {
    only(
        r,
        k,
        at,
        &[
            "url",
            "ca-cert",
            "identities",
            "trustRootRef",
            "insecureIgnoreSCT",
        ],
    )?;
    let check_sct = match &k["insecureIgnoreSCT"] {
        Value::Null => true,
        Value::Bool(ignore) => !ignore,
        other => {
            return Err(r.invalid(
                &format!("{at}.insecureIgnoreSCT"),
                format!("expected a boolean, got {other}"),
            ));
        }
    };
    let ids = k["identities"].as_array().cloned().unwrap_or_default();
    if ids.is_empty() {
        return Err(r.invalid(&format!("{at}.identities"), "missing field(s): identities"));
    }
    let identities = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let at = format!("{at}.identities[{i}]");
            only(
                r,
                id,
                &at,
                &["issuer", "issuerRegExp", "subject", "subjectRegExp"],
            )?;
            Ok(Identity {
                issuer: matcher(r, id, "issuer", "issuerRegExp", &at)?,
                subject: matcher(r, id, "subject", "subjectRegExp", &at)?,
            })
        })
        .collect::<Result<Vec<_>, PolicyError>>()?;
    if !k["ca-cert"].is_null() {
        return Err(r.unsupported(
            &format!("{at}.ca-cert"),
            "give the Fulcio CA chain in a TrustRoot and name it with trustRootRef",
        ));
    }
    let root = k["trustRootRef"].as_str().filter(|s| !s.is_empty()).ok_or_else(|| {
        r.unsupported(
            &format!("{at}.trustRootRef"),
            "keyless signatures are verified offline: name a TrustRoot (sigstoreKeys) with trustRootRef",
        )
    })?;
    let trust = roots.get(root).ok_or_else(|| {
        r.invalid(
            &format!("{at}.trustRootRef"),
            format!("no TrustRoot named {root:?}"),
        )
    })?;
    // As upstream: certificates must have been seen by a CT log unless the policy opts out, so
    // a TrustRoot without CT log keys cannot satisfy such an authority.
    if check_sct && trust.ct_keys.is_empty() {
        return Err(r.invalid(
            &format!("{at}.trustRootRef"),
            format!(
                "TrustRoot {root:?} has no spec.sigstoreKeys.ctLogs, so certificates' SCTs cannot be verified; add the CT log's key, or set insecureIgnoreSCT: true"
            ),
        ));
    }
    Ok((
        AuthorityKind::Keyless {
            identities,
            trust_root: root.to_string(),
            check_sct,
        },
        trust.content_hash.clone(),
    ))
}

/// The image policies of a cluster: the policies that could be read, the TrustRoots they name,
/// and the policies that could not be read (with the globs they cover, when those could be
/// read), which refuse the images they cover.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    /// Policies that could be read.
    pub policies: Vec<ImagePolicy>,
    /// TrustRoots by name.
    pub roots: BTreeMap<String, TrustRoot>,
    /// Policies or TrustRoots that could not be read: the images they cover (all when their
    /// globs could not be read either) and why.
    pub broken: Vec<(Option<Vec<Glob>>, PolicyError)>,
}

impl Policies {
    /// Reads `objects` (ClusterImagePolicies and TrustRoots, in any order; others ignored).
    pub fn load(objects: &[Value]) -> Policies {
        Policies::load_with(objects, Secrets::Unavailable)
    }

    /// Reads `objects`, resolving `key.secretRef` with `secrets`.
    pub fn load_with(objects: &[Value], secrets: Secrets<'_>) -> Policies {
        let mut out = Policies::default();
        for o in objects.iter().filter(|o| is_trust_root(o)) {
            match trust_root(o) {
                Ok(t) => {
                    out.roots.insert(t.name.clone(), t);
                }
                // A broken TrustRoot breaks the policies naming it, which then fail to load.
                Err(e) => note_broken_root(&mut out, e),
            }
        }
        for o in objects.iter().filter(|o| is_cluster_image_policy(o)) {
            match image_policy_with(o, &out.roots, secrets) {
                Ok(p) => out.policies.push(p),
                Err(e) => {
                    let globs = o["spec"]["images"].as_array().and_then(|a| {
                        a.iter()
                            .map(|i| i["glob"].as_str().and_then(|g| Glob::new(g).ok()))
                            .collect::<Option<Vec<_>>>()
                    });
                    out.broken.push((globs.filter(|g| !g.is_empty()), e));
                }
            }
        }
        out
    }

    /// Whether there is any image policy at all (a cluster without one verifies nothing).
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty() && self.broken.is_empty()
    }
}

/// A TrustRoot that cannot be read refuses nothing by itself; the policies that name it
/// fail to load ("no TrustRoot named …"), and its own error is kept for reports.
fn note_broken_root(out: &mut Policies, e: PolicyError) {
    out.broken.push((Some(vec![]), e));
}
