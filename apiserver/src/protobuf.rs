//! Decoding of Kubernetes' protobuf request encoding for the built-in kinds that kubectl's
//! typed clients send as protobuf (`kubectl create namespace|configmap|secret|role|...`,
//! `kubectl auth can-i`, `kubectl certificate approve`).
//!
//! The body is the magic `k8s\0` followed by a `runtime.Unknown` message whose `raw` field holds
//! the object. Objects are decoded by a small table of field numbers (from Kubernetes'
//! `generated.proto` files) into the same JSON the JSON path would produce, so everything after
//! decoding is shared. Bodies are untrusted: every length is bounds-checked and nesting is
//! limited.

use base64::Engine;
use serde_json::{Map, Value, json};

/// The protobuf media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";
const MAX_DEPTH: usize = 32;

#[derive(Clone, Copy)]
enum Kind {
    Str,
    /// Bytes, rendered base64 as in JSON.
    Bytes,
    Int,
    Bool,
    Time,
    Msg(&'static [F]),
    MapStr,
    MapBytes,
}

#[derive(Clone, Copy)]
struct F {
    num: u64,
    name: &'static str,
    kind: Kind,
    repeated: bool,
}

const fn f(num: u64, name: &'static str, kind: Kind) -> F {
    F {
        num,
        name,
        kind,
        repeated: false,
    }
}
const fn r(num: u64, name: &'static str, kind: Kind) -> F {
    F {
        num,
        name,
        kind,
        repeated: true,
    }
}

use Kind::*;

const OWNER_REF: &[F] = &[
    f(1, "kind", Str),
    f(3, "name", Str),
    f(4, "uid", Str),
    f(5, "apiVersion", Str),
    f(6, "controller", Bool),
    f(7, "blockOwnerDeletion", Bool),
];
const OBJECT_META: &[F] = &[
    f(1, "name", Str),
    f(2, "generateName", Str),
    f(3, "namespace", Str),
    f(5, "uid", Str),
    f(6, "resourceVersion", Str),
    f(7, "generation", Int),
    f(8, "creationTimestamp", Time),
    f(11, "labels", MapStr),
    f(12, "annotations", MapStr),
    r(13, "ownerReferences", Msg(OWNER_REF)),
    r(14, "finalizers", Str),
];
const NAMESPACE: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(&[r(1, "finalizers", Str)])),
    f(3, "status", Msg(&[f(1, "phase", Str)])),
];
const CONFIGMAP: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "data", MapStr),
    f(3, "binaryData", MapBytes),
    f(4, "immutable", Bool),
];
const SECRET: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "data", MapBytes),
    f(3, "type", Str),
    f(4, "stringData", MapStr),
    f(5, "immutable", Bool),
];
const OBJECT_REF: &[F] = &[
    f(1, "kind", Str),
    f(2, "namespace", Str),
    f(3, "name", Str),
    f(4, "uid", Str),
    f(5, "apiVersion", Str),
    f(6, "resourceVersion", Str),
    f(7, "fieldPath", Str),
];
const SERVICE_ACCOUNT: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    r(2, "secrets", Msg(OBJECT_REF)),
    r(3, "imagePullSecrets", Msg(&[f(1, "name", Str)])),
    f(4, "automountServiceAccountToken", Bool),
];
const POLICY_RULE: &[F] = &[
    r(1, "verbs", Str),
    r(2, "apiGroups", Str),
    r(3, "resources", Str),
    r(4, "resourceNames", Str),
    r(5, "nonResourceURLs", Str),
];
const LABEL_SELECTOR: &[F] = &[
    f(1, "matchLabels", MapStr),
    r(
        2,
        "matchExpressions",
        Msg(&[f(1, "key", Str), f(2, "operator", Str), r(3, "values", Str)]),
    ),
];
const ROLE: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    r(2, "rules", Msg(POLICY_RULE)),
];
const CLUSTER_ROLE: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    r(2, "rules", Msg(POLICY_RULE)),
    f(
        3,
        "aggregationRule",
        Msg(&[r(1, "clusterRoleSelectors", Msg(LABEL_SELECTOR))]),
    ),
];
const BINDING: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    r(
        2,
        "subjects",
        Msg(&[
            f(1, "kind", Str),
            f(2, "apiGroup", Str),
            f(3, "name", Str),
            f(4, "namespace", Str),
        ]),
    ),
    f(
        3,
        "roleRef",
        Msg(&[f(1, "apiGroup", Str), f(2, "kind", Str), f(3, "name", Str)]),
    ),
];
const RESOURCE_ATTRS: &[F] = &[
    f(1, "namespace", Str),
    f(2, "verb", Str),
    f(3, "group", Str),
    f(4, "version", Str),
    f(5, "resource", Str),
    f(6, "subresource", Str),
    f(7, "name", Str),
];
const NON_RESOURCE_ATTRS: &[F] = &[f(1, "path", Str), f(2, "verb", Str)];
const SSAR: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(
        2,
        "spec",
        Msg(&[
            f(1, "resourceAttributes", Msg(RESOURCE_ATTRS)),
            f(2, "nonResourceAttributes", Msg(NON_RESOURCE_ATTRS)),
        ]),
    ),
];
const SAR: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(
        2,
        "spec",
        Msg(&[
            f(1, "resourceAttributes", Msg(RESOURCE_ATTRS)),
            f(2, "nonResourceAttributes", Msg(NON_RESOURCE_ATTRS)),
            f(3, "user", Str),
            r(4, "groups", Str),
            f(6, "uid", Str),
        ]),
    ),
];
const SSRR: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(&[f(1, "namespace", Str)])),
];
const SELF_SUBJECT_REVIEW: &[F] = &[f(1, "metadata", Msg(OBJECT_META))];
const CSR_CONDITION: &[F] = &[
    f(1, "type", Str),
    f(6, "status", Str),
    f(2, "reason", Str),
    f(3, "message", Str),
    f(4, "lastUpdateTime", Time),
    f(5, "lastTransitionTime", Time),
];
const CSR: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(
        2,
        "spec",
        Msg(&[
            f(1, "request", Bytes),
            f(2, "username", Str),
            f(3, "uid", Str),
            r(4, "groups", Str),
            r(5, "usages", Str),
            f(7, "signerName", Str),
            f(8, "expirationSeconds", Int),
        ]),
    ),
    f(
        3,
        "status",
        Msg(&[
            r(1, "conditions", Msg(CSR_CONDITION)),
            f(2, "certificate", Bytes),
        ]),
    ),
];

fn table_for(api_version: &str, kind: &str) -> Option<&'static [F]> {
    Some(match (api_version, kind) {
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ConfigMap") => CONFIGMAP,
        ("v1", "Secret") => SECRET,
        ("v1", "ServiceAccount") => SERVICE_ACCOUNT,
        ("rbac.authorization.k8s.io/v1", "Role") => ROLE,
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => CLUSTER_ROLE,
        ("rbac.authorization.k8s.io/v1", "RoleBinding" | "ClusterRoleBinding") => BINDING,
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => SSAR,
        ("authorization.k8s.io/v1", "SubjectAccessReview") => SAR,
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => SSRR,
        ("certificates.k8s.io/v1", "CertificateSigningRequest") => CSR,
        ("authentication.k8s.io/v1", "SelfSubjectReview") => SELF_SUBJECT_REVIEW,
        _ => return None,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err("varint longer than 10 bytes".into())
    }
    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.buf.len())
            .ok_or("length beyond the end of the message")?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn skip(&mut self, wire: u64) -> Result<(), String> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.advance(8),
            2 => self.bytes().map(|_| ()),
            5 => self.advance(4),
            w => Err(format!("unsupported wire type {w}")),
        }
    }
    fn advance(&mut self, n: usize) -> Result<(), String> {
        if self.pos + n > self.buf.len() {
            return Err("truncated fixed-width field".into());
        }
        self.pos += n;
        Ok(())
    }
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

fn string(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "string field is not UTF-8".to_string())
}

fn decode_map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), String> {
    let mut rd = Reader { buf: b, pos: 0 };
    let (mut k, mut v) = (String::new(), json!(""));
    while !rd.done() {
        let key = rd.varint()?;
        match (key >> 3, key & 7) {
            (1, 2) => k = string(rd.bytes()?)?,
            (2, 2) => {
                let raw = rd.bytes()?;
                v = if bytes_value {
                    json!(base64::engine::general_purpose::STANDARD.encode(raw))
                } else {
                    json!(string(raw)?)
                };
            }
            (_, w) => rd.skip(w)?,
        }
    }
    Ok((k, v))
}

fn decode_time(b: &[u8]) -> Result<Value, String> {
    let mut rd = Reader { buf: b, pos: 0 };
    let mut secs = 0i64;
    while !rd.done() {
        let key = rd.varint()?;
        match (key >> 3, key & 7) {
            (1, 0) => secs = rd.varint()? as i64,
            (_, w) => rd.skip(w)?,
        }
    }
    let ts = jiff::Timestamp::from_second(secs).map_err(|_| "timestamp out of range")?;
    Ok(json!(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

fn decode_msg(b: &[u8], table: &[F], depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("message nested too deeply".into());
    }
    let mut rd = Reader { buf: b, pos: 0 };
    let mut out = Map::new();
    while !rd.done() {
        let key = rd.varint()?;
        let (num, wire) = (key >> 3, key & 7);
        let Some(field) = table.iter().find(|f| f.num == num) else {
            rd.skip(wire)?;
            continue;
        };
        let value = match (field.kind, wire) {
            (Str, 2) => json!(string(rd.bytes()?)?),
            (Bytes, 2) => json!(base64::engine::general_purpose::STANDARD.encode(rd.bytes()?)),
            (Int, 0) => json!(rd.varint()? as i64),
            (Bool, 0) => json!(rd.varint()? != 0),
            (Time, 2) => decode_time(rd.bytes()?)?,
            (Msg(t), 2) => decode_msg(rd.bytes()?, t, depth + 1)?,
            (MapStr | MapBytes, 2) => {
                let (k, v) = decode_map_entry(rd.bytes()?, matches!(field.kind, MapBytes))?;
                let m = out.entry(field.name).or_insert_with(|| json!({}));
                m[k] = v;
                continue;
            }
            (_, w) => {
                return Err(format!(
                    "field {} ({}) has wire type {w}, which does not match its type",
                    field.name, field.num
                ));
            }
        };
        // Go's protobuf encoder writes zero values of optional scalars; JSON omits them.
        let zero = matches!(&value, Value::String(s) if s.is_empty())
            || value == json!(0)
            || value == json!(false);
        if zero && !field.repeated {
            continue;
        }
        if field.repeated {
            let list = out.entry(field.name).or_insert_with(|| json!([]));
            if let Value::Array(a) = list {
                a.push(value);
            }
        } else {
            out.insert(field.name.into(), value);
        }
    }
    Ok(Value::Object(out))
}

/// Decodes a protobuf request body into the object's JSON form.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or("the protobuf body does not start with the Kubernetes magic number")?;
    let mut rd = Reader { buf: rest, pos: 0 };
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), None);
    while !rd.done() {
        let key = rd.varint()?;
        match (key >> 3, key & 7) {
            (1, 2) => {
                let tm = rd.bytes()?;
                let mut t = Reader { buf: tm, pos: 0 };
                while !t.done() {
                    let k = t.varint()?;
                    match (k >> 3, k & 7) {
                        (1, 2) => api_version = string(t.bytes()?)?,
                        (2, 2) => kind = string(t.bytes()?)?,
                        (_, w) => t.skip(w)?,
                    }
                }
            }
            (2, 2) => raw = Some(rd.bytes()?),
            (_, w) => rd.skip(w)?,
        }
    }
    let table = table_for(&api_version, &kind)
        .ok_or_else(|| format!("protobuf is not supported for {api_version} {kind}; send JSON"))?;
    let mut obj = decode_msg(raw.unwrap_or_default(), table, 0)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn field(num: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(num << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }
    fn wrap(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = vec![];
        field(1, api_version.as_bytes(), &mut tm);
        field(2, kind.as_bytes(), &mut tm);
        let mut unknown = vec![];
        field(1, &tm, &mut unknown);
        field(2, raw, &mut unknown);
        [MAGIC, &unknown].concat()
    }

    #[test]
    fn a_configmap_decodes_to_its_json_form() {
        let mut meta = vec![];
        field(1, b"c1", &mut meta);
        field(3, b"demo", &mut meta);
        let mut entry = vec![];
        field(1, b"a", &mut entry);
        field(2, b"b", &mut entry);
        let mut raw = vec![];
        field(1, &meta, &mut raw);
        field(2, &entry, &mut raw);
        let obj = decode(&wrap("v1", "ConfigMap", &raw)).unwrap();
        assert_eq!(
            obj,
            json!({"metadata": {"name": "c1", "namespace": "demo"}, "data": {"a": "b"}, "apiVersion": "v1", "kind": "ConfigMap"})
        );
    }

    #[test]
    fn truncated_and_foreign_bodies_are_errors() {
        assert!(decode(b"").is_err());
        assert!(decode(b"k8s\0\x0a\xff").is_err());
        assert!(decode(b"not protobuf").is_err());
        assert!(
            decode(&wrap("apps/v1", "Deployment", b""))
                .unwrap_err()
                .contains("not supported")
        );
        // A length that runs past the end.
        let mut raw = vec![];
        varint(1 << 3 | 2, &mut raw);
        varint(1000, &mut raw);
        assert!(decode(&wrap("v1", "ConfigMap", &raw)).is_err());
    }

    #[test]
    fn a_wire_type_that_does_not_match_the_field_is_an_error() {
        let mut raw = vec![];
        varint(4 << 3, &mut raw); // immutable as varint is fine
        varint(1, &mut raw);
        assert!(decode(&wrap("v1", "ConfigMap", &raw)).is_ok());
        let mut bad = vec![];
        varint(1 << 3, &mut bad); // metadata as a varint
        varint(1, &mut bad);
        assert!(decode(&wrap("v1", "ConfigMap", &bad)).is_err());
    }
}
