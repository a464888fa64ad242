//! Structural-schema validation, defaulting and pruning for custom resources, following the
//! OpenAPI v3 subset kube-apiserver accepts in CustomResourceDefinitions.
//!
//! The order is kube-apiserver's: prune unknown fields, apply defaults, then validate. Unknown
//! fields are reported to the caller so `fieldValidation=Strict` can refuse them and `Warn` can
//! warn about them.

use serde_json::{Map, Value};

/// One field-level cause inside a `Status`'s `details.causes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Machine-readable cause, e.g. `FieldValueInvalid`.
    pub reason: String,
    /// Human-readable explanation.
    pub message: String,
    /// The field path the cause refers to, e.g. `metadata.name`.
    pub field: String,
}

impl Cause {
    /// A cause for an invalid field value.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueInvalid".into(),
            message: message.into(),
            field: field.into(),
        }
    }
    /// A cause for a missing required field.
    pub fn required(field: impl Into<String>) -> Self {
        let field = field.into();
        Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value".into(),
            field,
        }
    }
    /// A cause for a value outside an allowed set.
    pub fn not_supported(field: impl Into<String>, message: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueNotSupported".into(),
            message: message.into(),
            field: field.into(),
        }
    }
    /// A cause for a field that is not allowed to be set or changed.
    pub fn forbidden(field: impl Into<String>, message: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueForbidden".into(),
            message: message.into(),
            field: field.into(),
        }
    }
    /// A cause for a value of the wrong type.
    pub fn type_invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueTypeInvalid".into(),
            message: message.into(),
            field: field.into(),
        }
    }
}

/// Removes fields the schema does not declare, recording their paths in `unknown`.
pub fn prune(schema: &Value, value: &mut Value, path: &str, unknown: &mut Vec<String>) {
    if preserves_unknown(schema)
        && schema.get("properties").is_none()
        && schema.get("items").is_none()
    {
        return;
    }
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let embedded = schema
                .get("x-kubernetes-embedded-resource")
                .and_then(Value::as_bool)
                == Some(true);
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let child_path = join(path, &k);
                let child_schema = props
                    .and_then(|p| p.get(&k))
                    .or(additional.filter(|a| a.is_object()));
                if let Some(p) = child_schema
                    && map.get(&k).is_some_and(Value::is_null)
                    && !nullable(p)
                {
                    // As kube-apiserver does, a null where the schema does not allow one is
                    // dropped (and defaulted later, if the schema has a default).
                    map.remove(&k);
                    continue;
                }
                if let Some(p) = props.and_then(|p| p.get(&k)) {
                    if let Some(child) = map.get_mut(&k) {
                        prune(p, child, &child_path, unknown);
                    }
                } else if let Some(add) = additional.filter(|a| a.is_object()) {
                    if let Some(child) = map.get_mut(&k) {
                        prune(add, child, &child_path, unknown);
                    }
                } else if additional.and_then(Value::as_bool) == Some(true)
                    || preserves_unknown(schema)
                {
                    // Kept as is.
                } else if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    // Embedded resources keep their type and object metadata.
                } else {
                    map.remove(&k);
                    unknown.push(child_path);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune(item_schema, item, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// Whether the schema allows `null`.
pub fn nullable(schema: &Value) -> bool {
    schema.get("nullable").and_then(Value::as_bool) == Some(true)
}

fn preserves_unknown(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Fills in `default` values for missing properties, recursively.
pub fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, p) in props {
                    if !map.contains_key(k)
                        && let Some(d) = p.get("default")
                    {
                        map.insert(k.clone(), d.clone());
                    }
                    if let Some(child) = map.get_mut(k) {
                        apply_defaults(p, child);
                    }
                }
            }
            if let Some(add) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for (_, child) in map.iter_mut() {
                    apply_defaults(add, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    apply_defaults(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Validates `value` against `schema`, collecting every violation.
pub fn validate(schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    validate_update(schema, value, None, path, causes);
}

/// Validates `value`, an update of `old` (the value stored at the same place, `None` on create
/// or where nothing correlates), against `schema`, as kube-apiserver's validation ratcheting
/// does: a value equal to its old one is not checked, so that a schema made stricter leaves the
/// objects stored before it writable while they keep what it no longer allows. Old values are
/// found through object fields, maps, list-map items (by their keys) and the items of lists
/// without a list type (by their index); items of sets and atomic lists correlate with
/// nothing, so such a list is ratcheted only whole. Every value that changed, and everything
/// new, is checked in full.
pub fn validate_update(
    schema: &Value,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    if old == Some(value) {
        return;
    }
    let field = if path.is_empty() {
        "<root>".to_string()
    } else {
        path.to_string()
    };
    if value.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) == Some(true)
            || schema.get("type").is_none()
        {
            return;
        }
        causes.push(Cause::type_invalid(
            field,
            format!(
                "Invalid value: \"null\": {path} in body must be of type {}",
                schema["type"].as_str().unwrap_or("object")
            ),
        ));
        return;
    }
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true);
    if int_or_string {
        if !matches!(type_name(value), "integer" | "string") {
            causes.push(Cause::type_invalid(
                field,
                format!(
                    "Invalid value: {}: {path} in body must be of type integer-or-string",
                    short(value)
                ),
            ));
            return;
        }
    } else if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(value);
        let ok = t == actual || (t == "number" && actual == "integer");
        if !ok {
            causes.push(Cause::type_invalid(
                field,
                format!(
                    "Invalid value: \"{actual}\": {path} in body must be of type {t}: \"{actual}\""
                ),
            ));
            return;
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array)
        && !e.contains(value)
    {
        let allowed: Vec<String> = e.iter().map(|v| v.to_string()).collect();
        causes.push(Cause::not_supported(
            field.clone(),
            format!(
                "Unsupported value: {}: supported values: {}",
                short(value),
                allowed.join(", ")
            ),
        ));
    }
    match value {
        Value::String(s) => check_string(schema, s, &field, causes),
        Value::Number(_) => check_number(schema, value, &field, causes),
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && n < min
            {
                causes.push(Cause::invalid(
                    field.clone(),
                    format!("Invalid value: {n}: {path} in body should have at least {min} items"),
                ));
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && n > max
            {
                causes.push(Cause::invalid(
                    field.clone(),
                    format!("Too many: {n}: must have at most {max} items"),
                ));
            }
            if let Some(item_schema) = schema.get("items") {
                let old_items = old.and_then(Value::as_array).map(Vec::as_slice);
                for (i, item) in items.iter().enumerate() {
                    let was = old_items.and_then(|o| old_item(schema, i, item, o));
                    validate_update(item_schema, item, was, &format!("{path}[{i}]"), causes);
                }
            }
            check_list_type(schema, items, &field, causes);
        }
        Value::Object(map) => check_object(
            schema,
            map,
            old.and_then(Value::as_object),
            path,
            &field,
            causes,
        ),
        _ => {}
    }
    for combinator in ["allOf", "anyOf", "oneOf"] {
        if let Some(subs) = schema.get(combinator).and_then(Value::as_array) {
            let passing = subs
                .iter()
                .filter(|s| {
                    let mut c = vec![];
                    validate_update(s, value, old, path, &mut c);
                    c.is_empty()
                })
                .count();
            let ok = match combinator {
                "allOf" => passing == subs.len(),
                "anyOf" => passing > 0,
                _ => passing == 1,
            };
            if !ok {
                causes.push(Cause::invalid(
                    field.clone(),
                    format!(
                        "Invalid value: {}: {path} in body must validate {combinator} its schemas",
                        short(value)
                    ),
                ));
            }
        }
    }
    if let Some(not) = schema.get("not") {
        let mut c = vec![];
        validate(not, value, path, &mut c);
        if c.is_empty() {
            causes.push(Cause::invalid(
                field,
                format!(
                    "Invalid value: {}: {path} in body must not validate the schema (not)",
                    short(value)
                ),
            ));
        }
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 64 {
        format!("{}...", &s[..s.floor_char_boundary(61)])
    } else {
        s
    }
}

/// The compiled `pattern` of a schema. Patterns are compiled once and kept (every condition of
/// every status carries two); should the schemas in use bring more than a few hundred, the kept
/// ones are dropped and compiled again as needed.
fn pattern(p: &str) -> Result<regex::Regex, regex::Error> {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    static KEPT: LazyLock<Mutex<HashMap<String, regex::Regex>>> = LazyLock::new(Default::default);
    if let Some(re) = KEPT.lock().unwrap_or_else(|e| e.into_inner()).get(p) {
        return Ok(re.clone());
    }
    let re = regex::Regex::new(p)?;
    let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    if kept.len() >= 512 {
        kept.clear();
    }
    kept.insert(p.to_string(), re.clone());
    Ok(re)
}

fn check_string(schema: &Value, s: &str, field: &str, causes: &mut Vec<Cause>) {
    let n = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && n > max
    {
        causes.push(Cause::invalid(
            field,
            format!("Too long: may not be more than {max} bytes"),
        ));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && n < min
    {
        causes.push(Cause::invalid(
            field,
            format!("Invalid value: {s:?}: {field} in body should be at least {min} chars long"),
        ));
    }
    if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
        match pattern(p) {
            Ok(re) if !re.is_match(s) => causes.push(Cause::invalid(
                field,
                format!("Invalid value: {s:?}: {field} in body should match '{p}'"),
            )),
            Ok(_) => {}
            Err(_) => causes.push(Cause::invalid(
                field,
                format!("schema pattern {p:?} does not compile"),
            )),
        }
    }
    if let Some(f) = schema.get("format").and_then(Value::as_str) {
        let ok = match f {
            "date-time" => s.parse::<jiff::Timestamp>().is_ok(),
            "date" => s.parse::<jiff::civil::Date>().is_ok(),
            "byte" => base64::Engine::decode(&base64::engine::general_purpose::STANDARD, s).is_ok(),
            "int32" | "int64" => true,
            _ => true,
        };
        if !ok {
            causes.push(Cause::invalid(
                field,
                format!("Invalid value: {s:?}: {field} in body must be of type {f}"),
            ));
        }
    }
}

fn check_number(schema: &Value, v: &Value, field: &str, causes: &mut Vec<Cause>) {
    let x = v.as_f64().unwrap_or(0.0);
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        let exclusive = schema.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true);
        if x > max || (exclusive && x >= max) {
            causes.push(Cause::invalid(
                field,
                format!(
                    "Invalid value: {v}: {field} in body should be less than or equal to {max}"
                ),
            ));
        }
    }
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        let exclusive = schema.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true);
        if x < min || (exclusive && x <= min) {
            causes.push(Cause::invalid(
                field,
                format!(
                    "Invalid value: {v}: {field} in body should be greater than or equal to {min}"
                ),
            ));
        }
    }
    match schema.get("format").and_then(Value::as_str) {
        Some("int32")
            if v.as_i64()
                .is_none_or(|i| i < i32::MIN as i64 || i > i32::MAX as i64) =>
        {
            causes.push(Cause::invalid(
                field,
                format!("Invalid value: {v}: {field} in body must be of type int32"),
            ));
        }
        _ => {}
    }
}

/// The item of `old`, the old value of a list whose schema is `schema`, that `item` (at
/// `index`) updates, as kube-apiserver correlates them: for a list-map, the item with the same
/// keys; for a list without a list type, the item at the same index; for sets and atomic
/// lists, none.
fn old_item<'a>(schema: &Value, index: usize, item: &Value, old: &'a [Value]) -> Option<&'a Value> {
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("map") => {
            let keys = list_map_keys(schema);
            if keys.is_empty() {
                return None;
            }
            // An item without every key correlates with nothing.
            let wanted: Vec<&Value> = keys.iter().map(|k| item.get(*k)).collect::<Option<_>>()?;
            old.iter()
                .find(|o| keys.iter().zip(&wanted).all(|(k, w)| o.get(*k) == Some(*w)))
        }
        Some(_) => None,
        None => old.get(index),
    }
}

/// The keys of a list-map's items (`x-kubernetes-list-map-keys`).
fn list_map_keys(schema: &Value) -> Vec<&str> {
    schema
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|k| k.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn check_list_type(schema: &Value, items: &[Value], field: &str, causes: &mut Vec<Cause>) {
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => {
            for (i, a) in items.iter().enumerate() {
                if items[..i].contains(a) {
                    causes.push(Cause {
                        reason: "FieldValueDuplicate".into(),
                        message: format!("Duplicate value: {a}"),
                        field: format!("{field}[{i}]"),
                    });
                }
            }
        }
        Some("map") => {
            let keys = list_map_keys(schema);
            let key_of = |v: &Value| {
                keys.iter()
                    .map(|k| v.get(*k).cloned().unwrap_or(Value::Null))
                    .collect::<Vec<_>>()
            };
            for (i, a) in items.iter().enumerate() {
                let ka = key_of(a);
                if items[..i].iter().any(|b| key_of(b) == ka) {
                    causes.push(Cause {
                        reason: "FieldValueDuplicate".into(),
                        message: format!("Duplicate value: {}", Value::Array(ka)),
                        field: format!("{field}[{i}]"),
                    });
                }
            }
        }
        _ => {}
    }
}

fn check_object(
    schema: &Value,
    map: &Map<String, Value>,
    old: Option<&Map<String, Value>>,
    path: &str,
    field: &str,
    causes: &mut Vec<Cause>,
) {
    if let Some(req) = schema.get("required").and_then(Value::as_array) {
        for r in req.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                causes.push(Cause::required(join(path, r)));
            }
        }
    }
    let n = map.len() as u64;
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && n > max
    {
        causes.push(Cause::invalid(
            field,
            format!("Too many: {n}: must have at most {max} items"),
        ));
    }
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
        && n < min
    {
        causes.push(Cause::invalid(
            field,
            format!("Invalid value: {n}: {field} in body should have at least {min} properties"),
        ));
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (k, v) in map {
        let child_path = join(path, k);
        let was = old.and_then(|o| o.get(k));
        if let Some(p) = props.and_then(|p| p.get(k)) {
            validate_update(p, v, was, &child_path, causes);
        } else if let Some(add) = additional {
            validate_update(add, v, was, &child_path, causes);
        }
    }
    if schema
        .get("x-kubernetes-embedded-resource")
        .and_then(Value::as_bool)
        == Some(true)
    {
        for k in ["apiVersion", "kind"] {
            if map.get(k).and_then(Value::as_str).is_none_or(str::is_empty) {
                causes.push(Cause::required(join(path, k)));
            }
        }
    }
}

/// Checks that a CRD version schema is structural: every node names a type, or is int-or-string,
/// or preserves unknown fields. Returns the paths that are not.
pub fn non_structural_nodes(schema: &Value, path: &str, out: &mut Vec<String>) {
    let has_type = schema
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty());
    let ios = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true);
    if !has_type && !ios && !preserves_unknown(schema) {
        out.push(if path.is_empty() {
            "<root>".into()
        } else {
            path.into()
        });
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            non_structural_nodes(p, &join(path, k), out);
        }
    }
    if let Some(items) = schema.get("items") {
        non_structural_nodes(items, &format!("{path}[*]"), out);
    }
    if let Some(add) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        non_structural_nodes(add, &format!("{path}[*]"), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["size"], "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 10},
                "mode": {"type": "string", "enum": ["A", "B"], "default": "A"},
                "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5},
                "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                "port": {"x-kubernetes-int-or-string": true},
                "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}}
            }}
        }})
    }

    fn check(v: Value) -> Vec<Cause> {
        let mut v = v;
        let mut unknown = vec![];
        prune(&schema(), &mut v, "", &mut unknown);
        apply_defaults(&schema(), &mut v);
        let mut causes = vec![];
        validate(&schema(), &v, "", &mut causes);
        causes
    }

    #[test]
    fn a_valid_object_passes_and_gets_its_defaults() {
        let mut v = json!({"spec": {"size": 3, "port": "http", "raw": {"anything": [1]}}});
        apply_defaults(&schema(), &mut v);
        assert_eq!(v["spec"]["mode"], "A");
        assert!(check(v).is_empty());
    }

    #[test]
    fn each_violation_is_reported_with_its_field() {
        let causes = check(
            json!({"spec": {"size": 11, "mode": "C", "name": "ABCDEFG", "tags": ["a", "a"], "port": 1.5, "labels": {"x": 1}}}),
        );
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        for f in [
            "spec.size",
            "spec.mode",
            "spec.name",
            "spec.tags[1]",
            "spec.port",
            "spec.labels.x",
        ] {
            assert!(fields.contains(&f), "missing {f} in {fields:?}");
        }
    }

    #[test]
    fn a_missing_required_field_is_required() {
        let causes = check(json!({"spec": {}}));
        assert_eq!(causes[0].field, "spec.size");
        assert_eq!(causes[0].reason, "FieldValueRequired");
    }

    #[test]
    fn unknown_fields_are_pruned_except_where_preserved() {
        let mut v = json!({"spec": {"size": 1, "extra": true, "raw": {"kept": 1}}, "junk": 1});
        let mut unknown = vec![];
        prune(&schema(), &mut v, "", &mut unknown);
        assert_eq!(unknown, vec!["spec.extra".to_string(), "junk".to_string()]);
        assert_eq!(v["spec"]["raw"]["kept"], 1);
    }

    #[test]
    fn a_wrongly_typed_value_is_a_type_error() {
        let causes = check(json!({"spec": {"size": "three"}}));
        assert_eq!(causes[0].reason, "FieldValueTypeInvalid");
    }

    #[test]
    fn a_schema_node_without_a_type_is_not_structural() {
        let mut out = vec![];
        non_structural_nodes(
            &json!({"type": "object", "properties": {"a": {"description": "x"}}}),
            "",
            &mut out,
        );
        assert_eq!(out, vec!["a".to_string()]);
    }

    /// Ratcheting: on update, a value equal to the one stored at the same place is not checked;
    /// list-maps correlate their items by keys, lists without a list type by index, sets and
    /// atomic lists nothing but the whole list.
    #[test]
    fn an_update_checks_only_what_it_changes() {
        let schema = json!({"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 2},
            "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 2}},
            "tags": {"type": "array", "x-kubernetes-list-type": "set",
                "items": {"type": "string", "maxLength": 2}},
            "words": {"type": "array", "x-kubernetes-list-type": "atomic",
                "items": {"type": "string", "maxLength": 2}},
            "lines": {"type": "array", "items": {"type": "string", "maxLength": 2}},
            "ports": {"type": "array", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name", "protocol"],
                "items": {"type": "object", "properties": {
                    "name": {"type": "string"}, "protocol": {"type": "string"},
                    "port": {"type": "integer", "maximum": 10}}}}}});
        let old = json!({"name": "long", "labels": {"a": "long"}, "tags": ["long"],
            "words": ["long"], "lines": ["long"],
            "ports": [{"name": "p", "protocol": "TCP", "port": 80}]});
        let fields = |new: Value, old: Option<&Value>| {
            let mut causes = vec![];
            validate_update(&schema, &new, old, "", &mut causes);
            causes.into_iter().map(|c| c.field).collect::<Vec<_>>()
        };
        let all = [
            "name",
            "labels.a",
            "tags[0]",
            "words[0]",
            "lines[0]",
            "ports[0].port",
        ];
        assert_eq!(fields(old.clone(), None), all, "a create checks everything");
        assert!(
            fields(old.clone(), Some(&old)).is_empty(),
            "nothing changed"
        );
        // Unchanged values moved within their lists, beside new valid ones.
        let moved = json!({"name": "long", "labels": {"a": "long", "b": "ok"},
            "tags": ["long", "ok"], "words": ["long", "ok"], "lines": ["long", "ok"],
            "ports": [{"name": "q", "protocol": "TCP", "port": 1},
                {"name": "p", "protocol": "TCP", "port": 80}]});
        assert_eq!(
            fields(moved, Some(&old)),
            ["tags[0]", "words[0]"],
            "the items of sets and atomic lists correlate with nothing; of other lists, by index"
        );
        let shifted = json!({"lines": ["ok", "long"]});
        assert_eq!(
            fields(shifted, Some(&json!({"lines": ["long"]}))),
            ["lines[1]"]
        );
        // Changed values, and a list-map item whose keys changed, are checked.
        let changed = json!({"name": "longer", "labels": {"a": "longer"}, "tags": ["longer"],
            "words": ["long"], "lines": ["long"],
            "ports": [{"name": "p", "protocol": "UDP", "port": 80}]});
        assert_eq!(
            fields(changed, Some(&old)),
            ["name", "labels.a", "tags[0]", "ports[0].port"]
        );
    }
}
