//! The server's own controllers: garbage collection of `ownerReferences` (background, foreground
//! and orphan propagation), namespace termination, and CRD cleanup.
//!
//! The store's write hook feeds a queue; a worker reconciles each item, and a periodic resync
//! catches anything missed (including work left over from before a restart). Every step is a
//! normal store mutation, so watchers see the same events kube-apiserver would send.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::admission::CRD_CLEANUP_FINALIZER;
use crate::error::ApiResult;
use crate::ops::{DeleteOptions, FOREGROUND_FINALIZER, ORPHAN_FINALIZER, Objects};
use crate::store::Mutation;
use crate::store::watch::{EventType, WatchEvent};

const NAMESPACES: &str = "/namespaces";
const CRDS: &str = "apiextensions.k8s.io/customresourcedefinitions";

/// One object to look at: (key, namespace, name).
type Item = (String, String, String);

/// Starts the collector. The returned task runs until the queue's senders are gone.
pub fn start(objects: Arc<Objects>, resync: Duration) -> tokio::task::JoinHandle<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Item>();
    objects.store.on_write(Arc::new(move |ev: &WatchEvent| {
        for item in items_for(ev) {
            let _ = tx.send(item);
        }
    }));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(resync);
        loop {
            tokio::select! {
                item = rx.recv() => {
                    let Some(item) = item else { break };
                    let o = objects.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        if let Err(e) = reconcile(&o, &item) {
                            tracing::warn!(key = %item.0, namespace = %item.1, name = %item.2, error = %e, "garbage collection step failed");
                        }
                    }).await;
                }
                _ = tick.tick() => {
                    let o = objects.clone();
                    let _ = tokio::task::spawn_blocking(move || resync_all(&o)).await;
                }
            }
        }
    })
}

/// What a write makes worth looking at.
fn items_for(ev: &WatchEvent) -> Vec<Item> {
    let obj = &ev.object;
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut out = Vec::new();
    match ev.kind {
        EventType::Deleted => {
            // Its dependents may now be dangling; owners waiting in the foreground may be done.
            if let Some(uid) = obj.pointer("/metadata/uid").and_then(Value::as_str) {
                out.push(("uid".to_string(), String::new(), uid.to_string()));
            }
            if !ev.namespace.is_empty() {
                out.push((NAMESPACES.into(), String::new(), ev.namespace.clone()));
            }
            if let Some(refs) = obj
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
            {
                for r in refs.iter().filter_map(|r| r["uid"].as_str()) {
                    out.push(("owner-uid".to_string(), String::new(), r.to_string()));
                }
            }
            if let Some((group, plural)) = ev.key.split_once('/') {
                out.push((CRDS.into(), String::new(), format!("{plural}.{group}")));
            }
        }
        kind => {
            if obj.pointer("/metadata/deletionTimestamp").is_some() {
                out.push((ev.key.clone(), ev.namespace.clone(), name.clone()));
            }
            // A new object may name owners that do not exist (any more): collect it now
            // rather than at the next resync.
            let owned = obj
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|r| !r.is_empty());
            // So may one whose references changed.
            let refs_changed = ev.old.as_ref().is_some_and(|old| {
                old.pointer("/metadata/ownerReferences") != obj.pointer("/metadata/ownerReferences")
            });
            if owned && (kind == EventType::Added || refs_changed) {
                out.push((format!("dependent:{}", ev.key), ev.namespace.clone(), name));
            }
        }
    }
    out
}

fn resync_all(o: &Objects) {
    let work = o.store.deleting().and_then(|mut d| {
        d.extend(
            o.store
                .dangling_dependents()?
                .into_iter()
                .map(|(k, ns, n)| (format!("dependent:{k}"), ns, n)),
        );
        Ok(d)
    });
    match work {
        Ok(items) => {
            for item in items {
                if let Err(e) = reconcile(o, &item) {
                    tracing::warn!(key = %item.0, name = %item.2, error = %e, "garbage collection resync step failed");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "garbage collection resync failed"),
    }
}

fn reconcile(o: &Objects, (key, ns, name): &Item) -> ApiResult<()> {
    match key.as_str() {
        "uid" => {
            for (k, dns, dname) in o.store.dependents(name)? {
                reconcile_dependent(o, &k, &dns, &dname)?;
            }
            Ok(())
        }
        "owner-uid" => {
            // An owner waiting for this dependent: find it by uid among deleting objects.
            for (k, ons, oname) in o.store.deleting()? {
                if let Some(owner) = o.store.get(&k, &ons, &oname)?
                    && owner.pointer("/metadata/uid").and_then(Value::as_str) == Some(name.as_str())
                {
                    reconcile_deleting(o, &k, &ons, &oname)?;
                }
            }
            Ok(())
        }
        k if k.starts_with("dependent:") => {
            reconcile_dependent(o, &k["dependent:".len()..], ns, name)
        }
        _ => reconcile_deleting(o, key, ns, name),
    }
}

/// Deletes a dependent whose owners are all gone, or drops its dangling references.
fn reconcile_dependent(o: &Objects, key: &str, ns: &str, name: &str) -> ApiResult<()> {
    let Some(obj) = o.store.get(key, ns, name)? else {
        return Ok(());
    };
    let refs = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if refs.is_empty() {
        return Ok(());
    }
    let mut alive = Vec::new();
    for r in &refs {
        // A reference without a uid names no object the collector could look up: it is never
        // taken for dangling.
        let alive_ref = match r["uid"].as_str().filter(|u| !u.is_empty()) {
            Some(uid) => o.store.uid_exists(uid)?,
            None => true,
        };
        if alive_ref {
            alive.push(r.clone());
        }
    }
    if alive.len() == refs.len() {
        return Ok(());
    }
    let Some(res) = o.registry.by_key(key) else {
        return Ok(());
    };
    if alive.is_empty() {
        tracing::debug!(key, ns, name, "deleting dependent whose owners are gone");
        return match o.delete(
            &res,
            ns,
            name,
            // Only the object judged here: one recreated or changed since is left to the next
            // event about it.
            &DeleteOptions {
                propagation: Some("Background".into()),
                uid: obj
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .map(String::from),
                resource_version: obj
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .map(String::from),
                ..Default::default()
            },
        ) {
            Err(e) if e.code == 404 || e.code == 409 => Ok(()),
            other => other.map(|_| ()),
        };
    }
    let uid = obj.pointer("/metadata/uid").cloned();
    o.store.mutate(key, ns, name, |cur, _| {
        let Some(mut cur) = cur else {
            return Ok(Mutation::Keep(json!({})));
        };
        if cur.pointer("/metadata/uid") != uid.as_ref() {
            return Ok(Mutation::Keep(cur));
        }
        cur["metadata"]["ownerReferences"] = json!(alive);
        Ok(Mutation::Put(cur))
    })?;
    Ok(())
}

fn remove_finalizer(
    o: &Objects,
    key: &str,
    ns: &str,
    name: &str,
    finalizer: &str,
) -> ApiResult<()> {
    o.store.mutate(key, ns, name, |cur, _| {
        let Some(mut cur) = cur else {
            return Ok(Mutation::Keep(json!({})));
        };
        let list: Vec<Value> = cur
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if !list.iter().any(|f| f == finalizer) {
            return Ok(Mutation::Keep(cur));
        }
        let rest: Vec<Value> = list.into_iter().filter(|f| f != finalizer).collect();
        let ns_pending = key == NAMESPACES
            && cur
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty());
        if rest.is_empty() && cur.pointer("/metadata/deletionTimestamp").is_some() && !ns_pending {
            return Ok(Mutation::Delete);
        }
        cur["metadata"]["finalizers"] = json!(rest);
        Ok(Mutation::Put(cur))
    })?;
    Ok(())
}

fn reconcile_deleting(o: &Objects, key: &str, ns: &str, name: &str) -> ApiResult<()> {
    let Some(obj) = o.store.get(key, ns, name)? else {
        return Ok(());
    };
    if obj.pointer("/metadata/deletionTimestamp").is_none() {
        return Ok(());
    }
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let finalizers: Vec<String> = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if key == NAMESPACES {
        return finish_namespace(o, name);
    }
    if key == CRDS && finalizers.iter().any(|f| f == CRD_CLEANUP_FINALIZER) {
        let (group, plural) = match (
            obj.pointer("/spec/group").and_then(Value::as_str),
            obj.pointer("/spec/names/plural").and_then(Value::as_str),
        ) {
            (Some(g), Some(p)) => (g.to_string(), p.to_string()),
            _ => return remove_finalizer(o, key, ns, name, CRD_CLEANUP_FINALIZER),
        };
        let ckey = format!("{group}/{plural}");
        let remaining = o.store.list(&ckey, None, None, 0)?.items;
        if remaining.is_empty() {
            return remove_finalizer(o, key, ns, name, CRD_CLEANUP_FINALIZER);
        }
        if let Some(res) = o.registry.by_key(&ckey) {
            for item in remaining {
                let ins = item
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let iname = item
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let _ = o.delete(&res, &ins, &iname, &DeleteOptions::default());
            }
        }
        return Ok(());
    }
    if finalizers.iter().any(|f| f == ORPHAN_FINALIZER) {
        for (k, dns, dname) in o.store.dependents(&uid)? {
            o.store.mutate(&k, &dns, &dname, |cur, _| {
                let Some(mut cur) = cur else {
                    return Ok(Mutation::Keep(json!({})));
                };
                let refs: Vec<Value> = cur
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let kept: Vec<Value> = refs
                    .iter()
                    .filter(|r| r["uid"].as_str() != Some(uid.as_str()))
                    .cloned()
                    .collect();
                if kept.len() == refs.len() {
                    return Ok(Mutation::Keep(cur));
                }
                let meta = cur["metadata"].as_object_mut().expect("metadata");
                if kept.is_empty() {
                    meta.remove("ownerReferences");
                } else {
                    meta.insert("ownerReferences".into(), json!(kept));
                }
                Ok(Mutation::Put(cur))
            })?;
        }
        return remove_finalizer(o, key, ns, name, ORPHAN_FINALIZER);
    }
    if finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) {
        let deps = o.store.dependents(&uid)?;
        let mut blocking = 0;
        for (k, dns, dname) in &deps {
            let Some(dep) = o.store.get(k, dns, dname)? else {
                continue;
            };
            let blocks = dep
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter().any(|r| {
                        r["uid"].as_str() == Some(uid.as_str())
                            && r["blockOwnerDeletion"].as_bool() == Some(true)
                    })
                });
            if blocks {
                blocking += 1;
            }
            if dep.pointer("/metadata/deletionTimestamp").is_none()
                && let Some(res) = o.registry.by_key(k)
            {
                let _ = o.delete(
                    &res,
                    dns,
                    dname,
                    &DeleteOptions {
                        propagation: Some("Foreground".into()),
                        ..Default::default()
                    },
                );
            }
        }
        if blocking == 0 {
            return remove_finalizer(o, key, ns, name, FOREGROUND_FINALIZER);
        }
    }
    Ok(())
}

/// Deletes everything in a terminating namespace, then lets the namespace go.
fn finish_namespace(o: &Objects, name: &str) -> ApiResult<()> {
    let keys = o.store.keys_in_namespace(name)?;
    let mut remaining = 0;
    for key in keys {
        let Some(res) = o.registry.by_key(&key) else {
            // Objects of a kind no longer served (its CRD is gone) are removed directly.
            for item in o.store.list(&key, Some(name), None, 0)?.items {
                let iname = item
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                o.store.mutate(&key, name, &iname, |cur, _| {
                    Ok(if cur.is_some() {
                        Mutation::Delete
                    } else {
                        Mutation::Keep(json!({}))
                    })
                })?;
            }
            continue;
        };
        for item in o.store.list(&key, Some(name), None, 0)?.items {
            remaining += 1;
            if item.pointer("/metadata/deletionTimestamp").is_none() {
                let iname = item
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let _ = o.delete(
                    &res,
                    name,
                    &iname,
                    &DeleteOptions {
                        propagation: Some("Background".into()),
                        ..Default::default()
                    },
                );
            }
        }
    }
    if remaining > 0 && !o.store.keys_in_namespace(name)?.is_empty() {
        return Ok(());
    }
    o.store.mutate(NAMESPACES, "", name, |cur, _| {
        let Some(mut cur) = cur else {
            return Ok(Mutation::Keep(json!({})));
        };
        if cur.pointer("/metadata/deletionTimestamp").is_none() {
            return Ok(Mutation::Keep(cur));
        }
        let fins_empty = cur
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty());
        if fins_empty {
            return Ok(Mutation::Delete);
        }
        cur["spec"]["finalizers"] = json!([]);
        Ok(Mutation::Put(cur))
    })?;
    Ok(())
}
