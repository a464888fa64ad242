//! Kubernetes' protobuf wire form (`application/vnd.kubernetes.protobuf`) for the built-in kinds
//! the API server serves. client-go sends built-in kinds this way (the OCM agent's Lease updates
//! and CSRs, kubectl's typed commands), and asks for it back.
//!
//! A body is the magic `k8s\0` followed by a `runtime.Unknown` whose `typeMeta` names the kind
//! and whose `raw` holds the object. The wire codec is k8s-pb's, generated with prost from
//! Kubernetes' own `.proto` files; `generated.rs` (made by `scripts/gen-protobuf-json`) maps each
//! message's fields to their JSON names, so an object decodes into the JSON the JSON path would
//! have produced and everything after decoding is shared. The few messages whose JSON form is
//! not an object of their fields (times, quantities, int-or-string, embedded JSON, the schema
//! unions of CRDs) are mapped here by hand.
//!
//! Go writes the zero value of every non-pointer field. Decoding follows Go's JSON encoder for
//! them: empty strings, lists and maps and the zero time are left out; numbers and booleans that
//! were sent are kept. Bodies are untrusted: prost bounds every length and nests at most 100
//! messages deep, and any error is a clean one naming the field.

use base64::Engine;
use prost::Message;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The protobuf media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

/// A message and its JSON form.
pub(crate) trait Obj: Sized {
    /// The JSON form; None for a zero value that Go's JSON encoder leaves out.
    fn to_json(&self) -> Result<Option<Value>, String>;
    /// The message read from its JSON form (never null: a null field is an absent one).
    fn from_json(v: &Value) -> Result<Self, String>;
}

/// A field of a message: how it is written into and read from its parent's JSON object.
trait Field: Sized + Default {
    fn to_json(&self) -> Result<Option<Value>, String>;
    fn from_json(v: &Value) -> Result<Self, String>;
}

/// Puts the segment `seg` in front of the field path of an error.
fn within(seg: &str, e: String) -> String {
    if e.starts_with(':') || e.starts_with('[') {
        format!("{seg}{e}")
    } else {
        format!("{seg}.{e}")
    }
}

fn put<F: Field>(m: &mut Map<String, Value>, name: &str, f: &F) -> Result<(), String> {
    if let Some(v) = f.to_json().map_err(|e| within(name, e))? {
        m.insert(name.to_string(), v);
    }
    Ok(())
}

fn get<F: Field>(m: &Map<String, Value>, name: &str) -> Result<F, String> {
    match m.get(name) {
        None | Some(Value::Null) => Ok(F::default()),
        Some(v) => F::from_json(v).map_err(|e| within(name, e)),
    }
}

/// A Go struct embedded inline: its fields are the parent's in JSON.
fn put_inline<M: Obj>(m: &mut Map<String, Value>, f: &Option<M>) -> Result<(), String> {
    if let Some(Value::Object(inner)) = f.as_ref().map(Obj::to_json).transpose()?.flatten() {
        m.extend(inner);
    }
    Ok(())
}

fn get_inline<M: Obj>(parent: &Value) -> Result<Option<M>, String> {
    M::from_json(parent).map(Some)
}

fn object(v: &Value) -> Result<&Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| ": expected an object".to_string())
}

/// Implements [`Obj`] for a message whose JSON form is an object of its fields, each named by
/// its JSON name or `inline` for an embedded struct. Used by `generated.rs`.
macro_rules! message {
    (@put $m:ident, $v:expr, inline) => { super::put_inline(&mut $m, &$v) };
    (@put $m:ident, $v:expr, $name:literal) => { super::put(&mut $m, $name, &$v) };
    (@get $v:ident, $m:ident, inline) => { super::get_inline($v) };
    (@get $v:ident, $m:ident, $name:literal) => { super::get($m, $name) };
    ($ty:path { $($field:ident : $name:tt),* $(,)? }) => {
        impl Obj for $ty {
            fn to_json(&self) -> Result<Option<Value>, String> {
                #[allow(unused_mut)]
                let mut m = serde_json::Map::new();
                $( message!(@put m, self.$field, $name)?; )*
                Ok(Some(Value::Object(m)))
            }
            fn from_json(v: &Value) -> Result<Self, String> {
                #[allow(unused_variables)]
                let m = super::object(v)?;
                Ok(Self { $( $field: message!(@get v, m, $name)?, )* })
            }
        }
    };
}

mod generated;

fn expected(what: &str) -> String {
    format!(": expected {what}")
}

impl Field for Option<String> {
    fn to_json(&self) -> Result<Option<Value>, String> {
        Ok(self
            .as_ref()
            .filter(|s| !s.is_empty())
            .map(|s| Value::String(s.clone())))
    }
    fn from_json(v: &Value) -> Result<Self, String> {
        v.as_str()
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| expected("a string"))
    }
}

impl Field for Option<bool> {
    fn to_json(&self) -> Result<Option<Value>, String> {
        Ok(self.map(Value::Bool))
    }
    fn from_json(v: &Value) -> Result<Self, String> {
        v.as_bool().map(Some).ok_or_else(|| expected("a boolean"))
    }
}

impl Field for Option<i64> {
    fn to_json(&self) -> Result<Option<Value>, String> {
        Ok(self.map(Value::from))
    }
    fn from_json(v: &Value) -> Result<Self, String> {
        v.as_i64().map(Some).ok_or_else(|| expected("an integer"))
    }
}

impl Field for Option<i32> {
    fn to_json(&self) -> Result<Option<Value>, String> {
        Ok(self.map(Value::from))
    }
    fn from_json(v: &Value) -> Result<Self, String> {
        v.as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| expected("a 32-bit integer"))
    }
}

impl Field for Option<f64> {
    fn to_json(&self) -> Result<Option<Value>, String> {
        // NaN and infinities have no JSON form.
        Ok(self.and_then(|n| serde_json::Number::from_f64(n).map(Value::Number)))
    }
    fn from_json(v: &Value) -> Result<Self, String> {
        v.as_f64().map(Some).ok_or_else(|| expected("a number"))
    }
}

fn base64_of(b: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(b))
}

fn bytes_of(v: &Value) -> Result<Vec<u8>, String> {
    let s = v.as_str().ok_or_else(|| expected("a base64 string"))?;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| format!(": not base64: {e}"))
}

impl Field for Option<Vec<u8>> {
    fn to_json(&self) -> Result<Option<Value>, String> {
        Ok(self.as_deref().filter(|b| !b.is_empty()).map(base64_of))
    }
    fn from_json(v: &Value) -> Result<Self, String> {
        bytes_of(v).map(Some)
    }
}

/// The items of a repeated field, each converted by `each`.
fn list_to_json<T>(
    items: &[T],
    each: impl Fn(&T) -> Result<Option<Value>, String>,
) -> Result<Option<Value>, String> {
    if items.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        out.push(
            each(item)
                .map_err(|e| within(&format!("[{i}]"), e))?
                .unwrap_or(Value::Null),
        );
    }
    Ok(Some(Value::Array(out)))
}

fn list_from_json<T>(
    v: &Value,
    each: impl Fn(&Value) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let items = v.as_array().ok_or_else(|| expected("an array"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| each(item).map_err(|e| within(&format!("[{i}]"), e)))
        .collect()
}

impl Field for Vec<String> {
    fn to_json(&self) -> Result<Option<Value>, String> {
        list_to_json(self, |s| Ok(Some(Value::String(s.clone()))))
    }
    fn from_json(v: &Value) -> Result<Self, String> {
        list_from_json(v, |s| {
            s.as_str()
                .map(str::to_string)
                .ok_or_else(|| expected("a string"))
        })
    }
}

impl Field for Vec<i32> {
    fn to_json(&self) -> Result<Option<Value>, String> {
        list_to_json(self, |n| Ok(Some(Value::from(*n))))
    }
    fn from_json(v: &Value) -> Result<Self, String> {
        list_from_json(v, |n| {
            <Option<i32> as Field>::from_json(n).map(Option::unwrap_or_default)
        })
    }
}

impl Field for Vec<i64> {
    fn to_json(&self) -> Result<Option<Value>, String> {
        list_to_json(self, |n| Ok(Some(Value::from(*n))))
    }
    fn from_json(v: &Value) -> Result<Self, String> {
        list_from_json(v, |n| n.as_i64().ok_or_else(|| expected("an integer")))
    }
}

impl<M: Obj> Field for Vec<M> {
    fn to_json(&self) -> Result<Option<Value>, String> {
        list_to_json(self, Obj::to_json)
    }
    fn from_json(v: &Value) -> Result<Self, String> {
        list_from_json(v, M::from_json)
    }
}

impl<M: Obj> Field for Option<M> {
    fn to_json(&self) -> Result<Option<Value>, String> {
        self.as_ref()
            .map(Obj::to_json)
            .transpose()
            .map(Option::flatten)
    }
    fn from_json(v: &Value) -> Result<Self, String> {
        M::from_json(v).map(Some)
    }
}

impl<M: Obj> Obj for Box<M> {
    fn to_json(&self) -> Result<Option<Value>, String> {
        M::to_json(self)
    }
    fn from_json(v: &Value) -> Result<Self, String> {
        M::from_json(v).map(Box::new)
    }
}

/// The entries of a map field, each value converted by `each`.
fn map_to_json<T>(
    entries: &BTreeMap<String, T>,
    each: impl Fn(&T) -> Result<Option<Value>, String>,
) -> Result<Option<Value>, String> {
    if entries.is_empty() {
        return Ok(None);
    }
    let mut out = Map::new();
    for (k, v) in entries {
        let v = each(v).map_err(|e| within(&format!("[{k:?}]"), e))?;
        out.insert(k.clone(), v.unwrap_or(Value::Null));
    }
    Ok(Some(Value::Object(out)))
}

fn map_from_json<T>(
    v: &Value,
    each: impl Fn(&Value) -> Result<T, String>,
) -> Result<BTreeMap<String, T>, String> {
    let entries = object(v)?;
    entries
        .iter()
        .map(|(k, v)| {
            each(v)
                .map(|v| (k.clone(), v))
                .map_err(|e| within(&format!("[{k:?}]"), e))
        })
        .collect()
}

impl Field for BTreeMap<String, String> {
    fn to_json(&self) -> Result<Option<Value>, String> {
        map_to_json(self, |s| Ok(Some(Value::String(s.clone()))))
    }
    fn from_json(v: &Value) -> Result<Self, String> {
        map_from_json(v, |s| {
            s.as_str()
                .map(str::to_string)
                .ok_or_else(|| expected("a string"))
        })
    }
}

impl Field for BTreeMap<String, Vec<u8>> {
    fn to_json(&self) -> Result<Option<Value>, String> {
        map_to_json(self, |b| Ok(Some(base64_of(b))))
    }
    fn from_json(v: &Value) -> Result<Self, String> {
        map_from_json(v, bytes_of)
    }
}

impl<M: Obj> Field for BTreeMap<String, M> {
    fn to_json(&self) -> Result<Option<Value>, String> {
        map_to_json(self, Obj::to_json)
    }
    fn from_json(v: &Value) -> Result<Self, String> {
        map_from_json(v, M::from_json)
    }
}

// The messages mapped by hand.

use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;

/// A time as Kubernetes writes it: RFC 3339 in UTC, with `digits` fractional digits (0 or 6).
fn time_to_json(
    seconds: Option<i64>,
    nanos: Option<i32>,
    digits: usize,
) -> Result<Option<Value>, String> {
    if seconds.is_none() && nanos.is_none() {
        // Go's zero time, written as an empty message and left out of JSON.
        return Ok(None);
    }
    let seconds = seconds.unwrap_or(0);
    // RFC 3339 has four-digit years: 0000-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
    if !(-62_167_219_200..=253_402_300_799).contains(&seconds) {
        return Err(format!(
            ": {seconds} seconds is outside the years 0000 to 9999"
        ));
    }
    let t = jiff::Timestamp::new(seconds, nanos.unwrap_or(0))
        .map_err(|e| format!(": not a time: {e}"))?;
    let base = t.strftime("%Y-%m-%dT%H:%M:%S");
    Ok(Some(Value::String(if digits == 0 {
        format!("{base}Z")
    } else {
        // Before 1970 jiff's sub-second part is negative; the written fraction never is.
        format!("{base}.{:06}Z", t.as_microsecond().rem_euclid(1_000_000))
    })))
}

fn time_from_json(v: &Value) -> Result<(Option<i64>, Option<i32>), String> {
    let t: jiff::Timestamp = v
        .as_str()
        .ok_or_else(|| expected("an RFC 3339 time"))?
        .parse()
        .map_err(|e| format!(": not an RFC 3339 time: {e}"))?;
    Ok((Some(t.as_second()), Some(t.subsec_nanosecond())))
}

impl Obj for meta::Time {
    fn to_json(&self) -> Result<Option<Value>, String> {
        time_to_json(self.seconds, self.nanos, 0)
    }
    fn from_json(v: &Value) -> Result<Self, String> {
        // Time has second precision.
        let (seconds, _) = time_from_json(v)?;
        Ok(Self {
            seconds,
            nanos: Some(0),
        })
    }
}

impl Obj for meta::MicroTime {
    fn to_json(&self) -> Result<Option<Value>, String> {
        time_to_json(self.seconds, self.nanos, 6)
    }
    fn from_json(v: &Value) -> Result<Self, String> {
        let (seconds, nanos) = time_from_json(v)?;
        Ok(Self {
            seconds,
            nanos: nanos.map(|n| n / 1000 * 1000),
        })
    }
}

/// Embedded JSON carried as bytes (`RawExtension`, `FieldsV1`, `apiextensions.JSON`).
fn raw_to_json(raw: &Option<Vec<u8>>) -> Result<Option<Value>, String> {
    match raw.as_deref() {
        None | Some([]) => Ok(None),
        Some(b) => serde_json::from_slice(b)
            .map(Some)
            .map_err(|e| format!(": the embedded object is not JSON: {e}")),
    }
}

fn raw_from_json(v: &Value) -> Result<Option<Vec<u8>>, String> {
    serde_json::to_vec(v)
        .map(Some)
        .map_err(|e| format!(": {e}"))
}

/// Messages whose one field `raw` carries embedded JSON.
macro_rules! embedded_json {
    ($($ty:path),*) => {$(
        impl Obj for $ty {
            fn to_json(&self) -> Result<Option<Value>, String> {
                raw_to_json(&self.raw)
            }
            fn from_json(v: &Value) -> Result<Self, String> {
                Ok(Self {
                    raw: raw_from_json(v)?,
                })
            }
        }
    )*};
}
embedded_json!(
    k8s_pb::apimachinery::pkg::runtime::RawExtension,
    meta::FieldsV1,
    apiext::Json
);

impl Obj for k8s_pb::apimachinery::pkg::api::resource::Quantity {
    fn to_json(&self) -> Result<Option<Value>, String> {
        Field::to_json(&self.string)
    }
    fn from_json(v: &Value) -> Result<Self, String> {
        // A quantity may be written as a bare number in JSON.
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(expected("a quantity")),
        };
        Ok(Self { string: Some(s) })
    }
}

impl Obj for k8s_pb::apimachinery::pkg::util::intstr::IntOrString {
    fn to_json(&self) -> Result<Option<Value>, String> {
        Ok(Some(match self.r#type {
            Some(1) => Value::String(self.str_val.clone().unwrap_or_default()),
            _ => Value::from(self.int_val.unwrap_or(0)),
        }))
    }
    fn from_json(v: &Value) -> Result<Self, String> {
        match v {
            Value::String(s) => Ok(Self {
                r#type: Some(1),
                int_val: Some(0),
                str_val: Some(s.clone()),
            }),
            n => Ok(Self {
                r#type: Some(0),
                int_val: <Option<i32> as Field>::from_json(n)?,
                str_val: Some(String::new()),
            }),
        }
    }
}

impl Obj for apiext::JsonSchemaPropsOrArray {
    fn to_json(&self) -> Result<Option<Value>, String> {
        if !self.j_son_schemas.is_empty() {
            return Field::to_json(&self.j_son_schemas);
        }
        Field::to_json(&self.schema)
    }
    fn from_json(v: &Value) -> Result<Self, String> {
        Ok(if v.is_array() {
            Self {
                schema: None,
                j_son_schemas: Field::from_json(v)?,
            }
        } else {
            Self {
                schema: Field::from_json(v)?,
                j_son_schemas: vec![],
            }
        })
    }
}

impl Obj for apiext::JsonSchemaPropsOrBool {
    fn to_json(&self) -> Result<Option<Value>, String> {
        match &self.schema {
            Some(s) => s.to_json(),
            None => Ok(Some(Value::Bool(self.allows.unwrap_or(false)))),
        }
    }
    fn from_json(v: &Value) -> Result<Self, String> {
        Ok(match v {
            Value::Bool(b) => Self {
                allows: Some(*b),
                schema: None,
            },
            _ => Self {
                allows: Some(true),
                schema: Field::from_json(v)?,
            },
        })
    }
}

impl Obj for apiext::JsonSchemaPropsOrStringArray {
    fn to_json(&self) -> Result<Option<Value>, String> {
        if !self.property.is_empty() {
            return Field::to_json(&self.property);
        }
        Field::to_json(&self.schema)
    }
    fn from_json(v: &Value) -> Result<Self, String> {
        Ok(if v.is_array() {
            Self {
                schema: None,
                property: Field::from_json(v)?,
            }
        } else {
            Self {
                schema: Field::from_json(v)?,
                property: vec![],
            }
        })
    }
}

/// Go's `ExtraValue` is a list of strings, a message of one repeated field on the wire.
macro_rules! string_list {
    ($($ty:path),*) => {$(
        impl Obj for $ty {
            fn to_json(&self) -> Result<Option<Value>, String> {
                Ok(Some(Field::to_json(&self.items)?.unwrap_or_else(|| Value::Array(vec![]))))
            }
            fn from_json(v: &Value) -> Result<Self, String> {
                Ok(Self { items: Field::from_json(v)? })
            }
        }
    )*};
}
string_list!(
    k8s_pb::api::authentication::v1::ExtraValue,
    k8s_pb::api::authorization::v1::ExtraValue,
    k8s_pb::api::certificates::v1::ExtraValue
);

fn dec<M: Obj + Message + Default>(raw: &[u8]) -> Result<Value, String> {
    let msg = M::decode(raw).map_err(|e| e.to_string())?;
    let json = msg
        .to_json()
        .map_err(|e| e.trim_start_matches(": ").to_string())?;
    Ok(json.unwrap_or_else(|| Value::Object(Map::new())))
}

fn enc<M: Obj + Message>(obj: &Value) -> Result<Vec<u8>, String> {
    M::from_json(obj)
        .map(|m| m.encode_to_vec())
        .map_err(|e| e.trim_start_matches(": ").to_string())
}

/// Decodes a protobuf request body into the object's JSON form.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or("the protobuf body does not start with the Kubernetes magic number")?;
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown::decode(rest)
        .map_err(|e| format!("not a runtime.Unknown: {e}"))?;
    if let Some(enc) = unknown
        .content_encoding
        .as_deref()
        .filter(|e| !e.is_empty())
    {
        return Err(format!("content encoding {enc:?} is not supported"));
    }
    let tm = unknown.type_meta.unwrap_or_default();
    let api_version = tm.api_version.unwrap_or_default();
    let kind = tm.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let mut obj = generated::decode(&api_version, &kind, &raw)
        .ok_or_else(|| format!("protobuf is not supported for {api_version} {kind}; send JSON"))?
        .map_err(|e| format!("{api_version} {kind}: {e}"))?;
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(api_version));
        m.insert("kind".into(), Value::String(kind));
    }
    Ok(obj)
}

/// Encodes an object (or a list) that carries its apiVersion and kind into a protobuf body;
/// None when its kind has no protobuf form here.
pub fn encode(obj: &Value) -> Option<Result<Vec<u8>, String>> {
    let api_version = obj.get("apiVersion")?.as_str()?;
    let kind = obj.get("kind")?.as_str()?;
    let raw = match generated::encode(api_version, kind, obj)? {
        Ok(raw) => raw,
        Err(e) => return Some(Err(format!("{api_version} {kind}: {e}"))),
    };
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown {
        type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
            api_version: Some(api_version.to_string()),
            kind: Some(kind.to_string()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    Some(Ok([MAGIC, &unknown.encode_to_vec()].concat()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::api::coordination::v1 as coordination;
    use k8s_pb::api::core::v1 as core;
    use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
    use serde_json::json;

    fn body(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            ..Default::default()
        };
        [MAGIC, &unknown.encode_to_vec()].concat()
    }

    fn meta(name: &str, namespace: &str) -> meta::ObjectMeta {
        // As Go writes it: every non-pointer field present, zero or not.
        meta::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            generate_name: Some(String::new()),
            uid: Some(String::new()),
            resource_version: Some("42".into()),
            generation: Some(0),
            creation_timestamp: Some(meta::Time::default()),
            ..Default::default()
        }
    }

    #[test]
    fn a_lease_update_as_client_go_sends_it_decodes_to_its_json_form() {
        let lease = coordination::Lease {
            metadata: Some(meta("cluster-lease-c1", "c1")),
            spec: Some(coordination::LeaseSpec {
                holder_identity: Some("agent".into()),
                lease_duration_seconds: Some(60),
                renew_time: Some(meta::MicroTime {
                    seconds: Some(1_780_000_000),
                    nanos: Some(123_456_789),
                }),
                ..Default::default()
            }),
        };
        let obj = decode(&body(
            "coordination.k8s.io/v1",
            "Lease",
            lease.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(
            obj,
            json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": "cluster-lease-c1", "namespace": "c1", "resourceVersion": "42", "generation": 0},
                "spec": {"holderIdentity": "agent", "leaseDurationSeconds": 60, "renewTime": "2026-05-28T20:26:40.123456Z"},
            })
        );
        // And back: the encoded form decodes to the same JSON.
        let again = decode(&encode(&obj).unwrap().unwrap()).unwrap();
        assert_eq!(again, obj);
    }

    #[test]
    fn names_go_and_json_disagree_on_and_embedded_structs_map_as_kube_apiserver_maps_them() {
        let role = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "r", "creationTimestamp": "2026-01-02T03:04:05Z", "labels": {"a": "b"}},
            "rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}],
        });
        assert_eq!(decode(&encode(&role).unwrap().unwrap()).unwrap(), role);
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "n"},
            "spec": {
                "containers": [{
                    "name": "c", "image": "registry.example/app:1",
                    "envFrom": [{"configMapRef": {"name": "cm", "optional": true}}],
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
                    "livenessProbe": {"httpGet": {"path": "/", "port": "http"}},
                }],
                "volumes": [{"name": "v", "configMap": {"name": "cm"}}],
            },
        });
        assert_eq!(decode(&encode(&pod).unwrap().unwrap()).unwrap(), pod);
        let sar = json!({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "metadata": {},
            "spec": {"user": "u", "groups": ["g"], "extra": {"scopes": ["a", "b"]}, "resourceAttributes": {"verb": "get", "resource": "leases"}},
        });
        assert_eq!(decode(&encode(&sar).unwrap().unwrap()).unwrap(), sar);
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "AAEC"}, "type": "Opaque"});
        assert_eq!(decode(&encode(&secret).unwrap().unwrap()).unwrap(), secret);
    }

    #[test]
    fn a_crd_schema_with_its_unions_and_embedded_json_round_trips() {
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "things.example.com"},
            "spec": {
                "group": "example.com", "scope": "Namespaced",
                "names": {"plural": "things", "kind": "Thing"},
                "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true,
                    "properties": {
                        "list": {"type": "array", "items": {"type": "string"}},
                        "map": {"type": "object", "additionalProperties": {"type": "integer"}},
                        "closed": {"type": "object", "additionalProperties": false},
                        "mode": {"type": "string", "default": "fast", "enum": ["fast", "slow"]},
                    },
                    "required": ["mode"],
                }}}],
            },
        });
        assert_eq!(decode(&encode(&crd).unwrap().unwrap()).unwrap(), crd);
    }

    #[test]
    fn times_before_1970_and_outside_four_digit_years() {
        let t = |seconds, nanos| meta::MicroTime {
            seconds: Some(seconds),
            nanos: Some(nanos),
        };
        // 1969-12-31T23:59:59.5: one second before the epoch plus half a second.
        assert_eq!(
            Obj::to_json(&t(-1, 500_000_000)).unwrap(),
            Some(json!("1969-12-31T23:59:59.500000Z"))
        );
        assert!(Obj::to_json(&t(253_402_300_800, 0)).is_err());
        assert!(Obj::to_json(&t(-62_167_219_201, 0)).is_err());
    }

    #[test]
    fn a_list_encodes_with_its_items() {
        let list = json!({
            "apiVersion": "v1", "kind": "ConfigMapList",
            "metadata": {"resourceVersion": "7"},
            "items": [{"metadata": {"name": "a"}, "data": {"k": "v"}}],
        });
        assert_eq!(decode(&encode(&list).unwrap().unwrap()).unwrap(), list);
    }

    #[test]
    fn bad_bodies_are_clean_errors() {
        assert!(decode(b"").is_err());
        assert!(decode(b"not protobuf").is_err());
        assert!(decode(b"k8s\0\x0a\xff").is_err());
        let e = decode(&body("apps/v1", "ControllerRevision", vec![])).unwrap_err();
        assert!(e.contains("not supported"), "{e}");
        // A length that runs past the end of the object.
        let e = decode(&body("v1", "ConfigMap", vec![0x0a, 0x7f])).unwrap_err();
        assert!(e.starts_with("v1 ConfigMap: "), "{e}");
        // metadata written as a varint.
        assert!(decode(&body("v1", "ConfigMap", vec![0x08, 0x01])).is_err());
        // Embedded JSON that is not JSON.
        let w = k8s_pb::api::admissionregistration::v1::ValidatingWebhookConfiguration {
            metadata: Some(meta::ObjectMeta {
                managed_fields: vec![meta::ManagedFieldsEntry {
                    fields_v1: Some(meta::FieldsV1 {
                        raw: Some(b"{nope".to_vec()),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            webhooks: vec![],
        };
        let e = decode(&body(
            "admissionregistration.k8s.io/v1",
            "ValidatingWebhookConfiguration",
            w.encode_to_vec(),
        ))
        .unwrap_err();
        assert!(
            e.contains("metadata.managedFields[0].fieldsV1: the embedded object is not JSON"),
            "{e}"
        );
        // A body nested deeper than prost allows.
        let mut deep = core::ConfigMap::default().encode_to_vec();
        for _ in 0..200 {
            let mut wrapped = vec![0x0a];
            prost::encoding::encode_varint(deep.len() as u64, &mut wrapped);
            wrapped.extend(deep);
            deep = wrapped;
        }
        assert!(
            decode(&body(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                deep
            ))
            .is_err()
        );
    }

    #[test]
    fn json_that_does_not_fit_the_message_is_an_error_naming_the_field() {
        let bad = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": 3}});
        assert_eq!(
            encode(&bad).unwrap().unwrap_err(),
            "v1 ConfigMap: metadata.name: expected a string"
        );
        let bad = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"ports": [{"containerPort": 1e10}]}]}});
        let e = encode(&bad).unwrap().unwrap_err();
        assert_eq!(
            e,
            "v1 Pod: spec.containers[0].ports[0].containerPort: expected a 32-bit integer"
        );
        assert!(encode(&json!({"apiVersion": "example.com/v1", "kind": "Thing"})).is_none());
    }
}
