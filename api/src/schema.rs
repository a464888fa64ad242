//! Schema functions for fields whose content the API does not model.
//!
//! Use them with `#[schemars(schema_with = "...")]`. Each returns a structural schema node:
//! it has a `type`, and tells the API server to keep the unknown fields under it.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// Schema of an embedded Kubernetes object (such as a ManifestWork manifest): an object
/// whose fields are kept as given, and which the API server checks for `apiVersion`,
/// `kind` and `metadata`.
pub fn embedded_resource(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-embedded-resource": true,
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Schema of an arbitrary JSON object whose fields are kept as given.
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Schema of a list of condition entries keyed by `type`, as upstream marks
/// `+listType=map` / `+listMapKey=type` condition lists.
pub fn condition_map_list(generator: &mut SchemaGenerator) -> Schema {
    let mut schema =
        <Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>::json_schema(generator);
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema
}

/// Schema of base64-encoded bytes (Go `[]byte`), such as a CA bundle.
pub fn base64_bytes(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "format": "byte",
    })
}

/// Pattern a resource quantity (such as `500m` or `4Gi`) must match, as Kubernetes writes it.
pub const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// Schema of a resource list: a map from resource name to quantity, each quantity an
/// integer or a string.
///
/// Upstream also lists `anyOf: [{type: integer}, {type: string}]`; it is left out because
/// kube's structural rewrite would strip the types out of it, and
/// `x-kubernetes-int-or-string` alone means the same.
pub fn resource_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": {
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": true,
        },
    })
}

/// Schema transform removing a `default` keyword, for fields that decode leniently with
/// `#[serde(default)]` but that upstream requires and does not default.
pub fn no_default(schema: &mut Schema) {
    schema.remove("default");
}

/// Adds properties to a schema's `required` list: for fields that decode leniently with
/// `#[serde(default)]` (so the derive leaves them optional) but that upstream requires.
pub(crate) fn require(schema: &mut Schema, names: &[&str]) {
    let required = schema
        .ensure_object()
        .entry("required")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    if let serde_json::Value::Array(list) = required {
        for name in names {
            if !list.iter().any(|v| v == name) {
                list.push((*name).into());
            }
        }
        list.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    }
}
