//! Server-side apply and field ownership (`metadata.managedFields`).
//!
//! Each write records which manager owns which fields. An apply by manager M sets the fields in
//! M's configuration; a field owned by another manager with a different live value is a conflict
//! (409) unless the apply is forced, in which case ownership moves to M. Fields M applied before
//! and no longer applies are removed when nobody else owns them. A non-apply write moves the
//! fields it changes to its manager, without conflicts, as kube-apiserver does.
//!
//! Field sets are tracked at the leaves: scalars, lists and empty maps. Lists are atomic (owned as
//! a whole), which is kube-apiserver's behaviour for lists without a `x-kubernetes-list-type: map`
//! declaration; keyed list merging is not tracked per element.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// A field path: object keys from the root.
pub type FieldPath = Vec<String>;

/// One manager's entry in `metadata.managedFields`.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedEntry {
    /// The field manager's name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The apiVersion the fields were written with.
    pub api_version: String,
    /// When the entry last changed.
    pub time: String,
    /// The subresource written through (`status`), or empty.
    pub subresource: String,
    /// The owned leaf fields.
    pub fields: BTreeSet<FieldPath>,
}

/// A conflict between an apply and another manager's field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The manager that owns the field.
    pub manager: String,
    /// The field, written `.a.b`.
    pub field: String,
}

/// Metadata fields that the server owns and no manager tracks.
const UNTRACKED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "generateName",
];

/// The leaf fields set in an object.
pub fn leaf_fields(obj: &Value) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    if let Value::Object(m) = obj {
        for (k, v) in m {
            if k == "apiVersion" || k == "kind" {
                continue;
            }
            if k == "metadata" {
                if let Value::Object(meta) = v {
                    for (mk, mv) in meta {
                        if !UNTRACKED_META.contains(&mk.as_str()) {
                            collect(mv, vec!["metadata".into(), mk.clone()], &mut out);
                        }
                    }
                }
                continue;
            }
            collect(v, vec![k.clone()], &mut out);
        }
    }
    out
}

fn collect(v: &Value, path: FieldPath, out: &mut BTreeSet<FieldPath>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let mut p = path.clone();
                p.push(k.clone());
                collect(child, p, out);
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

fn get_path<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for seg in path {
        cur = cur.get(seg)?;
    }
    Some(cur)
}

fn remove_path(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for seg in parents {
        match cur.get_mut(seg) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Value::Object(m) = cur {
        m.remove(last);
    }
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

fn dotted(path: &[String]) -> String {
    path.iter().map(|s| format!(".{s}")).collect()
}

fn deep_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        deep_merge(existing, v)
                    }
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Parses `metadata.managedFields` of an object.
pub fn read_managed(obj: &Value) -> Vec<ManagedEntry> {
    let Some(list) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return vec![];
    };
    list.iter()
        .map(|e| {
            let mut fields = BTreeSet::new();
            if let Some(f) = e.get("fieldsV1") {
                decode_fields(f, vec![], &mut fields);
            }
            ManagedEntry {
                manager: e["manager"].as_str().unwrap_or_default().into(),
                operation: e["operation"].as_str().unwrap_or("Update").into(),
                api_version: e["apiVersion"].as_str().unwrap_or_default().into(),
                time: e["time"].as_str().unwrap_or_default().into(),
                subresource: e["subresource"].as_str().unwrap_or_default().into(),
                fields,
            }
        })
        .collect()
}

fn decode_fields(node: &Value, path: FieldPath, out: &mut BTreeSet<FieldPath>) {
    let Value::Object(m) = node else { return };
    let children: Vec<(&String, &Value)> = m.iter().filter(|(k, _)| k.starts_with("f:")).collect();
    if children.is_empty() {
        if !path.is_empty() {
            out.insert(path);
        }
        return;
    }
    for (k, v) in children {
        let mut p = path.clone();
        p.push(k[2..].to_string());
        decode_fields(v, p, out);
    }
}

fn encode_fields(fields: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut cur = &mut root;
        for seg in path {
            let entry = cur
                .entry(format!("f:{seg}"))
                .or_insert_with(|| Value::Object(Map::new()));
            cur = entry.as_object_mut().expect("field node");
        }
    }
    Value::Object(root)
}

/// Writes entries back into `metadata.managedFields`, dropping empty ones.
pub fn write_managed(obj: &mut Value, entries: &[ManagedEntry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": encode_fields(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Value::Object(root) = obj
        && !root.contains_key("metadata")
        && !list.is_empty()
    {
        root.insert("metadata".into(), json!({}));
    }
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// The request context of a write, for field ownership.
pub struct Writer<'a> {
    /// Field manager name.
    pub manager: &'a str,
    /// apiVersion of the request.
    pub api_version: &'a str,
    /// Subresource written through, or "".
    pub subresource: &'a str,
    /// RFC 3339 time of the write.
    pub now: &'a str,
}

/// Records a non-apply write: fields that changed between `old` and `new` move to the writer.
pub fn record_update(old: Option<&Value>, new: &mut Value, w: &Writer<'_>) {
    let mut entries = old.map(read_managed).unwrap_or_default();
    let new_fields = leaf_fields(new);
    let changed: BTreeSet<FieldPath> = new_fields
        .iter()
        .filter(|p| old.and_then(|o| get_path(o, p)) != get_path(new, p))
        .cloned()
        .collect();
    // Fields that vanished are no longer owned by anyone.
    for e in &mut entries {
        e.fields
            .retain(|p| new_fields.iter().any(|n| overlaps(n, p)) && get_path(new, p).is_some());
        if e.manager != w.manager || e.operation != "Update" || e.subresource != w.subresource {
            e.fields.retain(|p| !changed.iter().any(|c| overlaps(c, p)));
        }
    }
    if !changed.is_empty() {
        match entries.iter_mut().find(|e| {
            e.manager == w.manager && e.operation == "Update" && e.subresource == w.subresource
        }) {
            Some(e) => {
                e.fields.extend(changed);
                e.time = w.now.into();
                e.api_version = w.api_version.into();
            }
            None => entries.push(ManagedEntry {
                manager: w.manager.into(),
                operation: "Update".into(),
                api_version: w.api_version.into(),
                time: w.now.into(),
                subresource: w.subresource.into(),
                fields: changed,
            }),
        }
    }
    write_managed(new, &entries);
}

/// Applies `config` over `live` for manager `w.manager`. Returns the merged object, or the
/// conflicts when another manager owns a field with a different value and `force` is false.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    w: &Writer<'_>,
    force: bool,
) -> Result<Value, Vec<Conflict>> {
    let mut entries = live.map(read_managed).unwrap_or_default();
    let applied = leaf_fields(config);
    let mut conflicts = Vec::new();
    if let Some(live) = live {
        for e in &entries {
            if e.manager == w.manager && e.subresource == w.subresource {
                continue;
            }
            for owned in &e.fields {
                for a in &applied {
                    // An empty map applied above another manager's field only asserts that the map
                    // exists; it does not contend for the field.
                    let asserts_map = a.len() < owned.len()
                        && get_path(config, a)
                            .and_then(Value::as_object)
                            .is_some_and(Map::is_empty);
                    // A field applied inside a map another manager owns as a whole (one it
                    // made empty) leaves that map a map: the two paths differ, and neither
                    // contends, as in Kubernetes's structured merge.
                    let inside_map = owned.len() < a.len()
                        && get_path(live, owned).is_some_and(Value::is_object);
                    if overlaps(owned, a)
                        && !asserts_map
                        && !inside_map
                        && get_path(live, a) != get_path(config, a)
                    {
                        conflicts.push(Conflict {
                            manager: e.manager.clone(),
                            field: dotted(owned),
                        });
                    }
                }
            }
        }
    }
    conflicts.sort_by(|a, b| (&a.manager, &a.field).cmp(&(&b.manager, &b.field)));
    conflicts.dedup();
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    let mut merged = live.cloned().unwrap_or_else(|| json!({}));
    // Fields this manager applied before and no longer applies are removed unless someone else
    // still owns them.
    let previous: BTreeSet<FieldPath> = entries
        .iter()
        .find(|e| {
            e.manager == w.manager && e.operation == "Apply" && e.subresource == w.subresource
        })
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    // A previously owned leaf stays when the new configuration still sets it (or something under
    // it); an empty map applied above it does not keep it.
    for gone in previous
        .iter()
        .filter(|p| !applied.iter().any(|a| a.starts_with(p)))
    {
        let owned_elsewhere = entries.iter().any(|e| {
            !(e.manager == w.manager && e.operation == "Apply" && e.subresource == w.subresource)
                && e.fields.iter().any(|f| overlaps(f, gone))
        });
        if !owned_elsewhere {
            remove_path(&mut merged, gone);
        }
    }
    deep_merge(&mut merged, config);
    for e in &mut entries {
        if !(e.manager == w.manager && e.operation == "Apply" && e.subresource == w.subresource) {
            // Forced or equal-valued shared fields: an equal value is shared ownership, a forced
            // one moves to the applier.
            e.fields.retain(|p| {
                !conflicts
                    .iter()
                    .any(|c| c.manager == e.manager && c.field == dotted(p))
            });
        }
    }
    match entries.iter_mut().find(|e| {
        e.manager == w.manager && e.operation == "Apply" && e.subresource == w.subresource
    }) {
        Some(e) => {
            e.fields = applied;
            e.time = w.now.into();
            e.api_version = w.api_version.into();
        }
        None => entries.push(ManagedEntry {
            manager: w.manager.into(),
            operation: "Apply".into(),
            api_version: w.api_version.into(),
            time: w.now.into(),
            subresource: w.subresource.into(),
            fields: applied,
        }),
    }
    write_managed(&mut merged, &entries);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            api_version: "v1",
            subresource: "",
            now: "2026-01-01T00:00:00Z",
        }
    }

    #[test]
    fn applying_twice_with_a_field_removed_removes_it() {
        let first = apply(
            None,
            &json!({"metadata": {"name": "a"}, "data": {"x": "1", "y": "2"}}),
            &w("m"),
            false,
        )
        .unwrap();
        let second = apply(
            Some(&first),
            &json!({"metadata": {"name": "a"}, "data": {"x": "1"}}),
            &w("m"),
            false,
        )
        .unwrap();
        assert_eq!(second["data"], json!({"x": "1"}));
    }

    #[test]
    fn another_managers_field_with_a_different_value_conflicts() {
        let first = apply(
            None,
            &json!({"metadata": {"name": "a"}, "data": {"x": "1"}}),
            &w("alice"),
            false,
        )
        .unwrap();
        let err = apply(Some(&first), &json!({"data": {"x": "2"}}), &w("bob"), false).unwrap_err();
        assert_eq!(
            err,
            vec![Conflict {
                manager: "alice".into(),
                field: ".data.x".into()
            }]
        );
        // The same value is shared ownership, not a conflict.
        assert!(apply(Some(&first), &json!({"data": {"x": "1"}}), &w("bob"), false).is_ok());
    }

    /// A map another manager made empty is its as a whole; a key applied inside it is a field
    /// of its own, which does not contend with the map. A scalar another manager owns does.
    #[test]
    fn a_key_applied_inside_an_empty_map_of_another_manager_does_not_conflict() {
        let mut made = json!({"metadata": {"name": "a"}, "data": {}, "spec": {"x": "1"}});
        record_update(None, &mut made, &w("creator"));
        let applied = apply(
            Some(&made),
            &json!({"metadata": {"name": "a"}, "data": {"k": "v"}}),
            &w("applier"),
            false,
        )
        .expect("no conflict inside the empty map");
        assert_eq!(applied["data"], json!({"k": "v"}));
        let err = apply(
            Some(&made),
            &json!({"spec": {"x": {"y": "2"}}}),
            &w("applier"),
            false,
        )
        .unwrap_err();
        assert_eq!(err[0].field, ".spec.x");
    }

    #[test]
    fn force_takes_ownership() {
        let first = apply(None, &json!({"data": {"x": "1"}}), &w("alice"), false).unwrap();
        let forced = apply(Some(&first), &json!({"data": {"x": "2"}}), &w("bob"), true).unwrap();
        assert_eq!(forced["data"]["x"], "2");
        let entries = read_managed(&forced);
        let alice = entries.iter().find(|e| e.manager == "alice");
        assert!(alice.is_none(), "alice lost her only field: {entries:?}");
        // Now alice conflicts with bob.
        assert!(
            apply(
                Some(&forced),
                &json!({"data": {"x": "1"}}),
                &w("alice"),
                false
            )
            .is_err()
        );
    }

    #[test]
    fn a_field_still_owned_by_another_manager_is_not_removed() {
        let first = apply(None, &json!({"data": {"x": "1"}}), &w("alice"), false).unwrap();
        let shared = apply(Some(&first), &json!({"data": {"x": "1"}}), &w("bob"), false).unwrap();
        let dropped = apply(Some(&shared), &json!({"data": {}}), &w("alice"), false).unwrap();
        assert_eq!(dropped["data"]["x"], "1");
    }

    #[test]
    fn an_update_moves_changed_fields_to_the_updater() {
        let first = apply(None, &json!({"data": {"x": "1"}}), &w("alice"), false).unwrap();
        let mut edited = first.clone();
        edited["data"]["x"] = json!("9");
        record_update(Some(&first), &mut edited, &w("kubectl-edit"));
        let entries = read_managed(&edited);
        assert!(entries.iter().any(|e| {
            e.manager == "kubectl-edit"
                && e.fields
                    .contains(&vec!["data".to_string(), "x".to_string()])
        }));
        // alice no longer owns it, so alice re-applying her value conflicts with kubectl-edit.
        let err = apply(
            Some(&edited),
            &json!({"data": {"x": "1"}}),
            &w("alice"),
            false,
        )
        .unwrap_err();
        assert_eq!(err[0].manager, "kubectl-edit");
    }

    #[test]
    fn fields_v1_round_trips() {
        let fields: BTreeSet<FieldPath> = [
            vec!["spec".to_string(), "a".to_string()],
            vec![
                "metadata".to_string(),
                "labels".to_string(),
                "x".to_string(),
            ],
        ]
        .into();
        let mut out = BTreeSet::new();
        decode_fields(&encode_fields(&fields), vec![], &mut out);
        assert_eq!(out, fields);
    }
}
