//! Every generated CRD schema follows Kubernetes' structural schema rules, so an API server
//! can validate, prune and default objects with it.

use garrison_api::crds;
use serde_json::{Value, json};

/// Formats Kubernetes knows for schema nodes we generate.
const KNOWN_FORMATS: &[&str] = &["int32", "int64", "byte", "date-time", "double", "float"];

/// Walks a schema node, collecting rule violations with the path of the node.
fn check(node: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(map) = node.as_object() else {
        problems.push(format!("{path}: schema node is not an object"));
        return;
    };
    let flag = |key: &str| map.get(key) == Some(&Value::Bool(true));
    let int_or_string = flag("x-kubernetes-int-or-string");
    let preserve = flag("x-kubernetes-preserve-unknown-fields");
    let type_ = map.get("type").and_then(Value::as_str);

    if type_.is_none() && !int_or_string && !preserve {
        problems.push(format!("{path}: has no type"));
    }
    if int_or_string && type_.is_some() {
        problems.push(format!("{path}: int-or-string node must not set a type"));
    }
    if let Some(any_of) = map.get("anyOf") {
        let allowed = json!([{"type": "integer"}, {"type": "string"}]);
        if !int_or_string || *any_of != allowed {
            problems.push(format!("{path}: anyOf other than the int-or-string form"));
        }
    }
    for key in ["oneOf", "allOf", "not", "$ref", "definitions", "$defs"] {
        if map.contains_key(key) {
            problems.push(format!("{path}: uses `{key}`"));
        }
    }
    if flag("x-kubernetes-embedded-resource") && type_ != Some("object") {
        problems.push(format!("{path}: embedded resource is not of type object"));
    }
    if map.contains_key("properties") && map.contains_key("additionalProperties") {
        problems.push(format!(
            "{path}: has both properties and additionalProperties"
        ));
    }
    if type_ == Some("object")
        && !preserve
        && !map.contains_key("properties")
        && !map.contains_key("additionalProperties")
        && !path.ends_with(".metadata")
    {
        problems.push(format!(
            "{path}: object without properties would prune everything"
        ));
    }
    if let Some(format) = map.get("format").and_then(Value::as_str)
        && !KNOWN_FORMATS.contains(&format)
    {
        problems.push(format!("{path}: unknown format `{format}`"));
    }
    if let Some(required) = map.get("required").and_then(Value::as_array) {
        let properties = map.get("properties").and_then(Value::as_object);
        for name in required.iter().filter_map(Value::as_str) {
            if !properties.is_some_and(|p| p.contains_key(name)) {
                problems.push(format!(
                    "{path}: requires `{name}`, which is not a property"
                ));
            }
        }
    }
    if let Some(default) = map.get("default") {
        let fits = match (type_, default) {
            _ if int_or_string => default.is_string() || default.is_i64(),
            (Some("string"), Value::String(_)) => true,
            (Some("integer"), d) => d.is_i64(),
            (Some("boolean"), Value::Bool(_)) => true,
            (Some("object"), Value::Object(_)) => true,
            (Some("array"), Value::Array(_)) => true,
            _ => false,
        };
        if !fits {
            problems.push(format!(
                "{path}: default {default} does not fit type {type_:?}"
            ));
        }
    }
    if let Some(values) = map.get("enum").and_then(Value::as_array)
        && let Some(type_) = type_
        && type_ == "string"
        && values.iter().any(|v| !v.is_string())
    {
        problems.push(format!("{path}: enum has non-string values"));
    }

    if let Some(properties) = map.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            check(child, &format!("{path}.{name}"), problems);
        }
    }
    if let Some(items) = map.get("items") {
        check(items, &format!("{path}[]"), problems);
    }
    if let Some(additional) = map.get("additionalProperties")
        && additional.is_object()
    {
        check(additional, &format!("{path}{{}}"), problems);
    }
}

/// Paths of every node marked `nullable`.
fn nullable_paths(node: &Value, path: &str, found: &mut Vec<String>) {
    let Some(map) = node.as_object() else { return };
    if map.contains_key("nullable") {
        found.push(path.to_string());
    }
    if let Some(properties) = map.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            nullable_paths(child, &format!("{path}.{name}"), found);
        }
    }
    if let Some(items) = map.get("items") {
        nullable_paths(items, &format!("{path}[]"), found);
    }
}

fn schemas() -> Vec<(String, Value)> {
    crds::all()
        .into_iter()
        .flat_map(|crd| {
            let kind = crd.spec.names.kind.clone();
            crd.spec.versions.into_iter().map(move |version| {
                let schema = version
                    .schema
                    .and_then(|s| s.open_api_v3_schema)
                    .unwrap_or_else(|| panic!("{kind} {} has no schema", version.name));
                (
                    kind.clone(),
                    serde_json::to_value(schema).expect("schemas encode"),
                )
            })
        })
        .collect()
}

#[test]
fn every_crd_schema_is_structural() {
    let mut problems = Vec::new();
    for (kind, schema) in schemas() {
        check(&schema, &kind, &mut problems);
    }
    assert!(
        problems.is_empty(),
        "non-structural schema nodes:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn only_fields_upstream_marks_nullable_are_nullable() {
    let mut found = Vec::new();
    for (kind, schema) in schemas() {
        nullable_paths(&schema, &kind, &mut found);
    }
    assert_eq!(found, ["ManagedCluster.spec.taints[].timeAdded"]);
}

#[test]
fn manifests_are_embedded_resources_that_keep_unknown_fields() {
    for (kind, schema) in schemas() {
        let manifests = match kind.as_str() {
            "ManifestWork" => &schema["properties"]["spec"]["properties"]["workload"],
            "ManifestWorkReplicaSet" => {
                &schema["properties"]["spec"]["properties"]["manifestWorkTemplate"]["properties"]["workload"]
            }
            "AddOnTemplate" => {
                &schema["properties"]["spec"]["properties"]["agentSpec"]["properties"]["workload"]
            }
            _ => continue,
        };
        let item = &manifests["properties"]["manifests"]["items"];
        assert_eq!(item["type"], "object", "{kind}");
        assert_eq!(item["x-kubernetes-embedded-resource"], true, "{kind}");
        assert_eq!(item["x-kubernetes-preserve-unknown-fields"], true, "{kind}");
    }
}
