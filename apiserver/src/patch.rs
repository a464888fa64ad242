//! The three client-computed patch formats: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and
//! Kubernetes strategic merge patch for the built-in kinds.
//!
//! Strategic merge needs to know, per list, whether it is merged by a key, merged as a set of
//! primitives, or replaced. The built-in kinds served here have few such lists; their strategies
//! are listed in [`list_strategy`], taken from the upstream Go types' `patchStrategy` tags.

use serde_json::{Map, Value};

use crate::resources::Builtin;

/// How a list is merged by strategic merge patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// The patch's list replaces the live list.
    Replace,
    /// Elements are maps merged by this key.
    MergeByKey(&'static str),
    /// Elements are primitives merged as a set.
    MergePrimitives,
}

/// The strategic-merge strategy of the list at `path` (dot-separated field names) in `kind`.
pub fn list_strategy(kind: Builtin, path: &str) -> ListStrategy {
    match (kind, path) {
        (_, "metadata.finalizers") => ListStrategy::MergePrimitives,
        (_, "metadata.ownerReferences") => ListStrategy::MergeByKey("uid"),
        (Builtin::ServiceAccount, "secrets") => ListStrategy::MergeByKey("name"),
        (Builtin::ServiceAccount, "imagePullSecrets") => ListStrategy::MergeByKey("name"),
        (Builtin::Namespace, "status.conditions") => ListStrategy::MergeByKey("type"),
        (_, p) if p.ends_with("containers") || p.ends_with("initContainers") => {
            ListStrategy::MergeByKey("name")
        }
        (_, p) if p.ends_with(".env") => ListStrategy::MergeByKey("name"),
        (_, p) if p.ends_with(".volumeMounts") => ListStrategy::MergeByKey("mountPath"),
        (_, p) if p.ends_with(".volumes") => ListStrategy::MergeByKey("name"),
        (_, p) if p.ends_with(".ports") && !p.starts_with("spec.ports") => {
            ListStrategy::MergeByKey("containerPort")
        }
        (Builtin::Service, "spec.ports") => ListStrategy::MergeByKey("port"),
        (_, "status.conditions") => ListStrategy::MergeByKey("type"),
        _ => ListStrategy::Replace,
    }
}

/// Applies an RFC 6902 JSON patch.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, String> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| format!("invalid JSON patch: {e}"))?;
    let mut out = target.clone();
    json_patch::patch(&mut out, &ops)
        .map_err(|e| format!("the JSON patch could not be applied: {e}"))?;
    Ok(out)
}

/// Applies an RFC 7386 JSON merge patch.
pub fn merge_patch(target: &Value, patch: &Value) -> Result<Value, String> {
    if !patch.is_object() {
        return Err("a merge patch must be a JSON object".into());
    }
    let mut out = target.clone();
    json_patch::merge(&mut out, patch);
    Ok(out)
}

/// Applies a strategic merge patch to a built-in object.
pub fn strategic_merge_patch(
    kind: Builtin,
    target: &Value,
    patch: &Value,
) -> Result<Value, String> {
    let Value::Object(p) = patch else {
        return Err("a strategic merge patch must be a JSON object".into());
    };
    let mut out = target.clone();
    if !out.is_object() {
        out = Value::Object(Map::new());
    }
    merge_map(kind, "", out.as_object_mut().expect("object"), p)?;
    Ok(out)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn merge_map(
    kind: Builtin,
    path: &str,
    target: &mut Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<(), String> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            target.clear();
            for (k, v) in patch.iter().filter(|(k, _)| *k != "$patch") {
                target.insert(k.clone(), strip_directives(v));
            }
            return Ok(());
        }
        Some("delete") => {
            target.clear();
            return Ok(());
        }
        Some(other) => return Err(format!("unknown patch directive {other:?} at {path}")),
        None => {}
    }
    if let Some(keep) = patch.get("$retainKeys") {
        let keep: Vec<&str> = keep
            .as_array()
            .ok_or("$retainKeys must be a list")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        target.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, v) in patch {
        if k == "$retainKeys" || k == "$patch" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let remove = v
                .as_array()
                .ok_or("$deleteFromPrimitiveList needs a list")?;
            if let Some(Value::Array(list)) = target.get_mut(field) {
                list.retain(|x| !remove.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            return Err(format!("unknown patch directive {k:?}"));
        }
        let child_path = join(path, k);
        if v.is_null() {
            target.remove(k);
            continue;
        }
        match (target.get_mut(k), v) {
            (Some(Value::Object(t)), Value::Object(p)) => merge_map(kind, &child_path, t, p)?,
            (Some(Value::Array(t)), Value::Array(p)) => merge_list(kind, &child_path, t, p)?,
            (_, Value::Object(p)) => {
                let mut fresh = Map::new();
                merge_map(kind, &child_path, &mut fresh, p)?;
                target.insert(k.clone(), Value::Object(fresh));
            }
            (_, other) => {
                target.insert(k.clone(), strip_directives(other));
            }
        }
    }
    Ok(())
}

fn merge_list(
    kind: Builtin,
    path: &str,
    target: &mut Vec<Value>,
    patch: &[Value],
) -> Result<(), String> {
    if patch
        .iter()
        .any(|e| e.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *target = patch
            .iter()
            .filter(|e| e.get("$patch").is_none())
            .map(strip_directives)
            .collect();
        return Ok(());
    }
    match list_strategy(kind, path) {
        ListStrategy::Replace => *target = patch.iter().map(strip_directives).collect(),
        ListStrategy::MergePrimitives => {
            for e in patch {
                if !target.contains(e) {
                    target.push(e.clone());
                }
            }
        }
        ListStrategy::MergeByKey(key) => {
            for e in patch {
                let Value::Object(pe) = e else {
                    return Err(format!("{path}: elements must be objects"));
                };
                let id = pe
                    .get(key)
                    .ok_or_else(|| format!("{path}: element is missing merge key {key:?}"))?;
                let pos = target.iter().position(|t| t.get(key) == Some(id));
                if pe.get("$patch").and_then(Value::as_str) == Some("delete") {
                    if let Some(i) = pos {
                        target.remove(i);
                    }
                    continue;
                }
                match pos {
                    Some(i) => {
                        if let Value::Object(t) = &mut target[i] {
                            merge_map(kind, path, t, pe)?;
                        }
                    }
                    None => target.push(strip_directives(e)),
                }
            }
        }
    }
    Ok(())
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_unions_finalizers_and_merges_owner_references_by_uid() {
        let live = json!({"metadata": {"finalizers": ["a"], "ownerReferences": [{"uid": "1", "name": "x"}], "labels": {"k": "v", "gone": "y"}}});
        let patch = json!({"metadata": {"finalizers": ["b"], "ownerReferences": [{"uid": "1", "name": "renamed"}, {"uid": "2", "name": "z"}], "labels": {"gone": null}}});
        let out = strategic_merge_patch(Builtin::ConfigMap, &live, &patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(
            out["metadata"]["ownerReferences"],
            json!([{"uid": "1", "name": "renamed"}, {"uid": "2", "name": "z"}])
        );
        assert_eq!(out["metadata"]["labels"], json!({"k": "v"}));
    }

    #[test]
    fn strategic_merge_honours_delete_and_replace_directives() {
        let live = json!({"metadata": {"ownerReferences": [{"uid": "1"}, {"uid": "2"}]}, "data": {"a": "1", "b": "2"}});
        let patch = json!({"metadata": {"ownerReferences": [{"uid": "1", "$patch": "delete"}]}, "data": {"$patch": "replace", "c": "3"}});
        let out = strategic_merge_patch(Builtin::ConfigMap, &live, &patch).unwrap();
        assert_eq!(out["metadata"]["ownerReferences"], json!([{"uid": "2"}]));
        assert_eq!(out["data"], json!({"c": "3"}));
    }

    #[test]
    fn rbac_rules_are_replaced_not_merged() {
        let live = json!({"rules": [{"verbs": ["get"]}]});
        let out = strategic_merge_patch(
            Builtin::Role,
            &live,
            &json!({"rules": [{"verbs": ["list"]}]}),
        )
        .unwrap();
        assert_eq!(out["rules"], json!([{"verbs": ["list"]}]));
    }

    #[test]
    fn unknown_directives_are_errors() {
        assert!(
            strategic_merge_patch(Builtin::ConfigMap, &json!({}), &json!({"$bogus": 1})).is_err()
        );
        assert!(
            strategic_merge_patch(
                Builtin::ConfigMap,
                &json!({}),
                &json!({"data": {"$patch": "merge-ish"}})
            )
            .is_err()
        );
    }

    #[test]
    fn json_patch_test_failures_are_reported() {
        let err = json_patch(
            &json!({"a": 1}),
            &json!([{"op": "test", "path": "/a", "value": 2}]),
        )
        .unwrap_err();
        assert!(err.contains("could not be applied"), "{err}");
        assert!(json_patch(&json!({}), &json!({"not": "a list"})).is_err());
    }
}
