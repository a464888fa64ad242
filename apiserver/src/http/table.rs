//! Server-side printing: `Table` responses for kubectl, with built-in columns for the built-in
//! kinds and `additionalPrinterColumns` (evaluated with a small JSONPath subset) for custom
//! resources.

use serde_json::{Value, json};

use crate::resources::{Builtin, PrinterColumn, Resource};

/// Evaluates a kubectl-style JSONPath (`.a.b`, `.a[0]`, `.a[*].b`, `.a[?(@.k=="v")].b`) and
/// returns every match.
pub fn jsonpath<'a>(obj: &'a Value, path: &str) -> Vec<&'a Value> {
    let path = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim();
    let mut cur: Vec<&Value> = vec![obj];
    let mut rest = path.strip_prefix('$').unwrap_or(path);
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            if !key.is_empty() {
                cur = cur.into_iter().filter_map(|v| v.get(key)).collect();
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = find_bracket_end(r) else {
                return vec![];
            };
            let inner = &r[..end];
            rest = &r[end + 1..];
            if inner == "*" {
                cur = cur
                    .into_iter()
                    .flat_map(|v| {
                        v.as_array()
                            .map(|a| a.iter().collect::<Vec<_>>())
                            .unwrap_or_default()
                    })
                    .collect();
            } else if let Ok(i) = inner.parse::<usize>() {
                cur = cur.into_iter().filter_map(|v| v.get(i)).collect();
            } else if let Some(filter) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')'))
            {
                let Some((lhs, rhs)) = filter.split_once("==") else {
                    return vec![];
                };
                let field = lhs.trim().trim_start_matches('@');
                let want = rhs.trim().trim_matches(|c| c == '"' || c == '\'');
                cur = cur
                    .into_iter()
                    .flat_map(|v| {
                        v.as_array()
                            .map(|a| a.iter().collect::<Vec<_>>())
                            .unwrap_or_default()
                    })
                    .filter(|item| {
                        jsonpath(item, field)
                            .first()
                            .is_some_and(|x| as_text(x) == want)
                    })
                    .collect();
            } else {
                let key = inner.trim_matches(|c| c == '"' || c == '\'');
                cur = cur.into_iter().filter_map(|v| v.get(key)).collect();
            }
        } else {
            return vec![];
        }
    }
    cur
}

fn find_bracket_end(s: &str) -> Option<usize> {
    let mut depth = 0;
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"') | (None, '\'') => quote = Some(c),
            (None, '[') | (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ']') if depth == 0 => return Some(i),
            (None, ']') => depth -= 1,
            _ => {}
        }
    }
    None
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A duration since `ts` in kubectl's short form: `45s`, `12m`, `3h`, `5d`.
pub fn age(ts: &str) -> String {
    let Ok(t) = ts.parse::<jiff::Timestamp>() else {
        return "<unknown>".into();
    };
    let secs = (jiff::Timestamp::now().as_second() - t.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 3 => format!("{}m", s / 60),
        s if s < 86400 * 2 => format!("{}h", s / 3600),
        s if s < 86400 * 365 * 2 => format!("{}d", s / 86400),
        s => format!("{}y", s / (86400 * 365)),
    }
}

fn col(name: &str, type_: &str, priority: i64) -> PrinterColumn {
    PrinterColumn {
        name: name.into(),
        type_: type_.into(),
        json_path: String::new(),
        priority,
        description: String::new(),
    }
}

fn builtin_columns(b: Builtin) -> Vec<PrinterColumn> {
    match b {
        Builtin::Namespace => vec![col("Status", "string", 0)],
        Builtin::Secret => vec![col("Type", "string", 0), col("Data", "integer", 0)],
        Builtin::ConfigMap => vec![col("Data", "integer", 0)],
        Builtin::ServiceAccount => vec![col("Secrets", "integer", 0)],
        Builtin::Lease => vec![col("Holder", "string", 0)],
        Builtin::CertificateSigningRequest => vec![
            col("SignerName", "string", 0),
            col("Requestor", "string", 0),
            col("RequestedDuration", "string", 0),
            col("Condition", "string", 0),
        ],
        Builtin::RoleBinding | Builtin::ClusterRoleBinding => vec![
            col("Role", "string", 0),
            col("Users", "string", 1),
            col("Groups", "string", 1),
        ],
        Builtin::Event => vec![
            col("Type", "string", 0),
            col("Reason", "string", 0),
            col("Object", "string", 0),
            col("Message", "string", 0),
        ],
        _ => vec![],
    }
}

fn builtin_cell(b: Builtin, name: &str, obj: &Value) -> Value {
    let count = |k: &str| {
        json!(
            obj.get(k)
                .and_then(Value::as_object)
                .map(|m| m.len())
                .unwrap_or(0)
        )
    };
    let subjects = |kind: &str| {
        let names: Vec<&str> = obj["subjects"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|s| s["kind"] == kind)
                    .filter_map(|s| s["name"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        json!(names.join(", "))
    };
    match (b, name) {
        (Builtin::Namespace, "Status") => {
            obj.pointer("/status/phase").cloned().unwrap_or(json!(""))
        }
        (Builtin::Secret, "Type") => obj.get("type").cloned().unwrap_or(json!("")),
        (Builtin::Secret | Builtin::ConfigMap, "Data") => {
            let n = obj
                .get("data")
                .and_then(Value::as_object)
                .map(|m| m.len())
                .unwrap_or(0)
                + obj
                    .get("binaryData")
                    .and_then(Value::as_object)
                    .map(|m| m.len())
                    .unwrap_or(0);
            json!(n)
        }
        (Builtin::ServiceAccount, "Secrets") => {
            json!(obj["secrets"].as_array().map(Vec::len).unwrap_or(0))
        }
        (Builtin::Lease, "Holder") => obj
            .pointer("/spec/holderIdentity")
            .cloned()
            .unwrap_or(json!("")),
        (Builtin::CertificateSigningRequest, "SignerName") => obj
            .pointer("/spec/signerName")
            .cloned()
            .unwrap_or(json!("")),
        (Builtin::CertificateSigningRequest, "Requestor") => {
            obj.pointer("/spec/username").cloned().unwrap_or(json!(""))
        }
        (Builtin::CertificateSigningRequest, "RequestedDuration") => {
            json!(
                obj.pointer("/spec/expirationSeconds")
                    .and_then(Value::as_i64)
                    .map(|s| format!("{}h", s / 3600))
                    .unwrap_or_else(|| "<none>".into())
            )
        }
        (Builtin::CertificateSigningRequest, "Condition") => {
            let mut conds: Vec<String> = obj
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c["type"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            if obj.pointer("/status/certificate").is_some() {
                conds.push("Issued".into());
            }
            json!(if conds.is_empty() {
                "Pending".to_string()
            } else {
                conds.join(",")
            })
        }
        (Builtin::RoleBinding | Builtin::ClusterRoleBinding, "Role") => {
            json!(format!(
                "{}/{}",
                obj.pointer("/roleRef/kind")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                obj.pointer("/roleRef/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            ))
        }
        (Builtin::RoleBinding | Builtin::ClusterRoleBinding, "Users") => subjects("User"),
        (Builtin::RoleBinding | Builtin::ClusterRoleBinding, "Groups") => subjects("Group"),
        (Builtin::Event, "Type") => obj.get("type").cloned().unwrap_or(json!("")),
        (Builtin::Event, "Reason") => obj.get("reason").cloned().unwrap_or(json!("")),
        (Builtin::Event, "Object") => json!(format!(
            "{}/{}",
            obj.pointer("/involvedObject/kind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_lowercase(),
            obj.pointer("/involvedObject/name")
                .and_then(Value::as_str)
                .unwrap_or("")
        )),
        (Builtin::Event, "Message") => obj.get("message").cloned().unwrap_or(json!("")),
        _ => count(""),
    }
}

/// Builds a `meta.k8s.io/v1` Table of `items`.
pub fn to_table(
    res: &Resource,
    items: &[Value],
    include: Option<&str>,
    rv: Option<u64>,
    cont: Option<String>,
) -> Value {
    let custom = res.is_custom();
    let extra: Vec<PrinterColumn> = if custom {
        res.columns.clone()
    } else {
        res.builtin.map(builtin_columns).unwrap_or_default()
    };
    let has_age = extra
        .iter()
        .any(|c| c.json_path == ".metadata.creationTimestamp");
    let mut defs = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    for c in &extra {
        defs.push(json!({"name": c.name, "type": if c.type_ == "date" { "string" } else { c.type_.as_str() }, "format": "", "description": c.description, "priority": c.priority}));
    }
    if !has_age {
        defs.push(json!({"name": "Age", "type": "string", "format": "", "description": "Time since the object was created.", "priority": 0}));
    }
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let mut cells = vec![obj.pointer("/metadata/name").cloned().unwrap_or(json!(""))];
            for c in &extra {
                let cell = if custom {
                    let found: Vec<String> = jsonpath(obj, &c.json_path).into_iter().map(as_text).collect();
                    let text = found.join(",");
                    match (c.type_.as_str(), found.len()) {
                        (_, 0) => Value::Null,
                        ("date", _) => json!(age(&text)),
                        ("integer", 1) => text.parse::<i64>().map(|n| json!(n)).unwrap_or(json!(text)),
                        _ => json!(text),
                    }
                } else {
                    builtin_cell(res.builtin.expect("built-in"), &c.name, obj)
                };
                cells.push(cell);
            }
            if !has_age {
                cells.push(json!(age(obj.pointer("/metadata/creationTimestamp").and_then(Value::as_str).unwrap_or(""))));
            }
            let object = match include {
                Some("None") => Value::Null,
                Some("Object") => obj.clone(),
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))}),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    let mut meta = json!({});
    if let Some(rv) = rv {
        meta["resourceVersion"] = json!(rv.to_string());
    }
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": defs, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_filters_conditions_by_type() {
        let obj = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "HubAcceptedManagedCluster", "status": "True"}]}});
        let got = jsonpath(
            &obj,
            r#".status.conditions[?(@.type=="HubAcceptedManagedCluster")].status"#,
        );
        assert_eq!(got, vec![&json!("True")]);
        assert_eq!(jsonpath(&obj, ".status.conditions[*].type").len(), 2);
        assert_eq!(
            jsonpath(&obj, ".status.conditions[0].type"),
            vec![&json!("A")]
        );
        assert!(jsonpath(&obj, ".status.missing").is_empty());
    }

    #[test]
    fn malformed_jsonpaths_match_nothing() {
        let obj = json!({"a": [1]});
        for p in [".a[", ".a[?(@.x)]", "a"] {
            assert!(jsonpath(&obj, p).is_empty(), "{p}");
        }
    }

    #[test]
    fn ages_are_short() {
        let ts = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(7200)).to_string();
        assert_eq!(age(&ts), "120m");
        assert_eq!(age("nonsense"), "<unknown>");
    }
}
