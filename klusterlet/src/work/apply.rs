//! Applying one manifest to the managed cluster, and releasing it again: kind resolution through
//! discovery, the apply order, the four update strategies, and the owner references that let
//! several works share a resource.

use std::collections::HashMap;
use std::sync::Mutex;

use garrison_api::labels::OBJECT_SPEC_HASH_ANNOTATION;
use garrison_api::work::v1::{
    AppliedManifestResourceMeta, DEFAULT_FIELD_MANAGER, ManifestResourceMeta, UpdateStrategy,
    UpdateStrategyType,
};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions,
    PropagationPolicy,
};
use kube::discovery::Scope;
use serde_json::{Value, json};

/// The apiVersion and kind of the owner the agent writes on applied resources.
pub const OWNER_API_VERSION: &str = "work.open-cluster-management.io/v1";
/// The kind of that owner.
pub const OWNER_KIND: &str = "AppliedManifestWork";

/// Kinds by apply rank, as upstream's work agent orders them: definitions and namespaces, then
/// RBAC, then policy and service accounts, then configuration, services, workloads, and admission
/// webhooks and API services last. Other kinds come after the workloads, before the webhooks.
const RANKS: &[&[&str]] = &[
    &[
        "PriorityClass",
        "Namespace",
        "CustomResourceDefinition",
        "StorageClass",
        "PersistentVolume",
        "PodSecurityPolicy",
    ],
    &["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"],
    &[
        "NetworkPolicy",
        "ResourceQuota",
        "LimitRange",
        "PodDisruptionBudget",
        "ServiceAccount",
    ],
    &["Secret", "ConfigMap", "PersistentVolumeClaim"],
    &["Service"],
    &[
        "DaemonSet",
        "Pod",
        "ReplicationController",
        "ReplicaSet",
        "Deployment",
        "HorizontalPodAutoscaler",
        "StatefulSet",
        "Job",
        "CronJob",
    ],
];
/// Applied after everything else, so they never block the rest of the work.
const LAST: &[&str] = &[
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
];

fn rank(kind: &str) -> usize {
    if let Some(i) = RANKS.iter().position(|r| r.contains(&kind)) {
        i
    } else if LAST.contains(&kind) {
        RANKS.len() + 1
    } else {
        RANKS.len()
    }
}

/// The order in which to apply manifests, as indexes into `manifests`: by kind, stable otherwise.
pub fn apply_order(manifests: &[Value]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..manifests.len()).collect();
    idx.sort_by_key(|&i| rank(manifests[i]["kind"].as_str().unwrap_or_default()));
    idx
}

/// A manifest's kind resolved against the managed cluster.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The resource, for dynamic clients.
    pub api: ApiResource,
    /// Whether objects of this kind live in namespaces.
    pub namespaced: bool,
}

/// Resolves kinds through discovery, caching what it finds. A kind that is not served is asked
/// again next time, so a CRD applied by an earlier manifest becomes usable.
pub struct Resolver {
    client: kube::Client,
    cache: Mutex<HashMap<(String, String), Resolved>>,
}

impl Resolver {
    /// A resolver for one cluster.
    pub fn new(client: kube::Client) -> Self {
        Resolver {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Resolves `apiVersion` and `kind`.
    pub async fn resolve(&self, api_version: &str, kind: &str) -> Result<Resolved, String> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(r) = self.cache.lock().expect("resolver lock").get(&key) {
            return Ok(r.clone());
        }
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        match kube::discovery::pinned_kind(&self.client, &gvk).await {
            Ok((api, caps)) => {
                let r = Resolved {
                    api,
                    namespaced: caps.scope == Scope::Namespaced,
                };
                self.cache
                    .lock()
                    .expect("resolver lock")
                    .insert(key, r.clone());
                Ok(r)
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Err(format!(
                "the managed cluster does not serve {kind} in {api_version}"
            )),
            Err(kube::Error::Discovery(_)) => Err(format!(
                "the managed cluster does not serve {kind} in {api_version}"
            )),
            Err(e) => Err(format!("cannot discover {kind} in {api_version}: {e}")),
        }
    }

    /// Forgets every resolution, after the cluster's served kinds changed.
    pub fn forget(&self) {
        self.cache.lock().expect("resolver lock").clear();
    }
}

/// The agent's owner reference for one AppliedManifestWork: never the controller, never blocking
/// the owner's deletion, so other works and controllers can share the resource.
pub fn owner_ref(amw_name: &str, amw_uid: &str) -> Value {
    json!({
        "apiVersion": OWNER_API_VERSION, "kind": OWNER_KIND,
        "name": amw_name, "uid": amw_uid,
    })
}

fn owner_refs(obj: &Value) -> Vec<Value> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn has_owner(obj: &Value, uid: &str) -> bool {
    owner_refs(obj)
        .iter()
        .any(|r| r["uid"].as_str() == Some(uid))
}

/// Where one manifest lives on the cluster.
#[derive(Debug, Clone)]
pub struct Target {
    /// Resolved kind.
    pub resolved: Resolved,
    /// Namespace ("" for cluster-scoped).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl Target {
    fn api(&self, client: &kube::Client) -> Api<DynamicObject> {
        if self.resolved.namespaced {
            Api::namespaced_with(client.clone(), &self.namespace, &self.resolved.api)
        } else {
            Api::all_with(client.clone(), &self.resolved.api)
        }
    }

    /// Reads the live object.
    pub async fn get(&self, client: &kube::Client) -> Result<Option<Value>, String> {
        self.api(client)
            .get_opt(&self.name)
            .await
            .map(|o| o.map(|o| to_value(&o)))
            .map_err(|e| e.to_string())
    }

    /// The status's description of this manifest.
    pub fn meta(&self, ordinal: usize) -> ManifestResourceMeta {
        ManifestResourceMeta {
            ordinal: ordinal as i32,
            group: Some(self.resolved.api.group.clone()),
            version: Some(self.resolved.api.version.clone()),
            kind: Some(self.resolved.api.kind.clone()),
            resource: Some(self.resolved.api.plural.clone()),
            name: Some(self.name.clone()),
            namespace: Some(self.namespace.clone()),
        }
    }

    /// The AppliedManifestWork's record of this resource.
    pub fn applied(&self, uid: &str) -> AppliedManifestResourceMeta {
        AppliedManifestResourceMeta {
            group: Some(self.resolved.api.group.clone()),
            version: self.resolved.api.version.clone(),
            resource: self.resolved.api.plural.clone(),
            namespace: Some(self.namespace.clone()),
            name: self.name.clone(),
            uid: Some(uid.to_string()),
        }
    }
}

/// Why applying a manifest failed, for the Applied condition's message.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyError(pub String);

fn api_err(verb: &str, t: &Target, e: kube::Error) -> ApplyError {
    let what = format!("{} {}", t.resolved.api.kind, qualified(t));
    match e {
        kube::Error::Api(s) => ApplyError(format!(
            "Failed to apply manifest: cannot {verb} {what}: {}",
            s.message
        )),
        other => ApplyError(format!(
            "Failed to apply manifest: cannot {verb} {what}: {other}"
        )),
    }
}

fn qualified(t: &Target) -> String {
    if t.namespace.is_empty() {
        t.name.clone()
    } else {
        format!("{}/{}", t.namespace, t.name)
    }
}

/// A stable hash of what the work asks for (everything but status), recorded on the object by
/// the Update strategy so a change in the work is always written, even a removed field.
pub fn spec_hash(required: &Value) -> String {
    let mut v = required.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            meta.remove("ownerReferences");
            if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                ann.remove(OBJECT_SPEC_HASH_ANNOTATION);
            }
        }
    }
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        serde_json::to_string(&v).unwrap_or_default().as_bytes(),
    );
    garrison_pki::csr::hex(&digest.as_ref()[..16])
}

/// Whether every field `required` sets has the same value in `live`. Maps may hold more
/// (defaults the cluster added); lists must match element by element.
pub fn covers(live: &Value, required: &Value) -> bool {
    match (live, required) {
        (Value::Object(l), Value::Object(r)) => r
            .iter()
            .all(|(k, rv)| rv.is_null() || l.get(k).is_some_and(|lv| covers(lv, rv))),
        (Value::Array(l), Value::Array(r)) => {
            l.len() == r.len() && l.iter().zip(r).all(|(a, b)| covers(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

/// The live object's owner references with this work's replaced by `owner` (kept in its place,
/// so an unchanged object compares equal), appended if new, or removed when `owner` is None.
fn refs_with(live: &Value, owner: Option<&Value>, owner_uid: &str) -> Vec<Value> {
    let mut refs: Vec<Value> = Vec::new();
    let mut placed = false;
    for r in owner_refs(live) {
        if r["uid"].as_str() == Some(owner_uid) {
            if let Some(o) = owner {
                refs.push(o.clone());
                placed = true;
            }
        } else {
            refs.push(r);
        }
    }
    if let Some(o) = owner
        && !placed
    {
        refs.push(o.clone());
    }
    refs
}

/// What the Update strategy writes over a live object: the work's fields, the live object's
/// status and bookkeeping, labels and annotations merged, the owner reference added or removed.
fn merged(live: &Value, required: &Value, owner: Option<&Value>, owner_uid: &str) -> Value {
    let mut out = required.clone();
    let meta = out["metadata"].as_object_mut().cloned().unwrap_or_default();
    let mut live_meta = live["metadata"].as_object().cloned().unwrap_or_default();
    for field in ["labels", "annotations"] {
        let mut m = live_meta
            .get(field)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(req) = meta.get(field).and_then(Value::as_object) {
            for (k, v) in req {
                m.insert(k.clone(), v.clone());
            }
        }
        live_meta.insert(field.into(), Value::Object(m));
    }
    live_meta.insert(
        "ownerReferences".into(),
        Value::Array(refs_with(live, owner, owner_uid)),
    );
    out["metadata"] = Value::Object(live_meta);
    if let Some(status) = live.get("status") {
        out["status"] = status.clone();
    }
    out
}

/// Applies one manifest with its update strategy. `owner` is the owner reference to hold (None
/// when the resource is orphaned by the delete option). Returns the live object, or None for a
/// ReadOnly manifest whose resource does not exist.
pub async fn apply(
    client: &kube::Client,
    t: &Target,
    manifest: &Value,
    strategy: Option<&UpdateStrategy>,
    owner: Option<&Value>,
    owner_uid: &str,
) -> Result<Option<Value>, ApplyError> {
    let api = t.api(client);
    let kind = strategy
        .and_then(|s| s.type_)
        .unwrap_or(UpdateStrategyType::Update);
    let mut required = manifest.clone();
    if t.resolved.namespaced {
        required["metadata"]["namespace"] = json!(t.namespace);
    }
    if kind == UpdateStrategyType::ServerSideApply {
        let ssa = strategy.and_then(|s| s.server_side_apply.as_ref());
        let manager = ssa
            .and_then(|c| c.field_manager.clone())
            .unwrap_or_else(|| DEFAULT_FIELD_MANAGER.to_string());
        let force = ssa.and_then(|c| c.force).unwrap_or(false);
        if let Some(o) = owner {
            required["metadata"]["ownerReferences"] = json!([o]);
        }
        let mut pp = PatchParams::apply(&manager);
        pp.force = force;
        let obj = api
            .patch(&t.name, &pp, &Patch::Apply(&required))
            .await
            .map_err(|e| match e {
                kube::Error::Api(s) if s.code == 409 => ApplyError(format!(
                    "Failed to apply manifest: server-side apply of {} {} conflicts with another field manager: {}",
                    t.resolved.api.kind,
                    qualified(t),
                    s.message
                )),
                e => api_err("apply", t, e),
            })?;
        if owner.is_none() && has_owner(&to_value(&obj), owner_uid) {
            return set_owner(&api, t, &to_value(&obj), None, owner_uid)
                .await
                .map(Some);
        }
        return Ok(Some(to_value(&obj)));
    }
    let live = match api.get_opt(&t.name).await {
        Ok(v) => v.map(|o| to_value(&o)),
        Err(e) => return Err(api_err("read", t, e)),
    };
    let Some(live) = live else {
        if kind == UpdateStrategyType::ReadOnly {
            return Ok(None);
        }
        let mut create = required.clone();
        if let Some(o) = owner {
            create["metadata"]["ownerReferences"] = json!([o]);
        }
        if kind == UpdateStrategyType::Update {
            create["metadata"]["annotations"][OBJECT_SPEC_HASH_ANNOTATION] =
                json!(spec_hash(&required));
        }
        if let Some(m) = create.as_object_mut() {
            m.remove("status");
        }
        let obj: DynamicObject = serde_json::from_value(create).map_err(|e| {
            ApplyError(format!("Failed to apply manifest: not a valid object: {e}"))
        })?;
        return match api.create(&PostParams::default(), &obj).await {
            Ok(o) => Ok(Some(to_value(&o))),
            // Created meanwhile (another work, or a retry): the next pass updates it.
            Err(kube::Error::Api(s)) if s.code == 409 => Err(ApplyError(format!(
                "Failed to apply manifest: {} {} was created concurrently; retrying",
                t.resolved.api.kind,
                qualified(t)
            ))),
            Err(e) => Err(api_err("create", t, e)),
        };
    };
    match kind {
        UpdateStrategyType::ReadOnly => Ok(Some(live)),
        UpdateStrategyType::CreateOnly => {
            let owned = has_owner(&live, owner_uid);
            match (owner, owned) {
                (Some(_), false) | (None, true) => {
                    set_owner(&api, t, &live, owner, owner_uid).await.map(Some)
                }
                _ => Ok(Some(live)),
            }
        }
        _ => {
            let hash = spec_hash(&required);
            let recorded = live
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(OBJECT_SPEC_HASH_ANNOTATION))
                .and_then(Value::as_str);
            let mut body = required.clone();
            body["metadata"]["annotations"][OBJECT_SPEC_HASH_ANNOTATION] = json!(hash);
            let want = merged(&live, &body, owner, owner_uid);
            let drifted = recorded != Some(hash.as_str()) || !covers(&live, &want);
            if !drifted {
                return Ok(Some(live));
            }
            let mut want = want;
            want["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"].clone();
            let obj: DynamicObject = serde_json::from_value(want).map_err(|e| {
                ApplyError(format!("Failed to apply manifest: not a valid object: {e}"))
            })?;
            api.replace(&t.name, &PostParams::default(), &obj)
                .await
                .map(|o| Some(to_value(&o)))
                .map_err(|e| api_err("update", t, e))
        }
    }
}

fn to_value(o: &DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

/// Writes the live object's owner references with this work's set to `owner` (None removes it),
/// guarded by the live resourceVersion.
async fn set_owner(
    api: &Api<DynamicObject>,
    t: &Target,
    live: &Value,
    owner: Option<&Value>,
    owner_uid: &str,
) -> Result<Value, ApplyError> {
    let patch = json!({"metadata": {"ownerReferences": refs_with(live, owner, owner_uid),
        "resourceVersion": live["metadata"]["resourceVersion"]}});
    api.patch(&t.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|o| to_value(&o))
        .map_err(|e| api_err("update the owners of", t, e))
}

/// What releasing a resource did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// The resource is gone (or was never there, or is another object now).
    Gone,
    /// Deleted; its deletion may still be finishing.
    Deleting,
    /// Another owner still holds it, or it was orphaned: left in place without this work's
    /// owner reference.
    Kept,
}

/// Releases a resource this work applied: removes the work's owner reference and deletes the
/// resource when no other work's AppliedManifestWork holds it. A resource without the work's owner reference was
/// orphaned (delete option) and is left alone.
pub async fn release(
    client: &kube::Client,
    res: &AppliedManifestResourceMeta,
    owner_uid: &str,
) -> Result<Released, ApplyError> {
    // The kind is not recorded, and reads and deletes do not need it.
    let gvk = kube::api::GroupVersionKind::gvk(
        res.group.as_deref().unwrap_or_default(),
        &res.version,
        "",
    );
    let api_resource = ApiResource::from_gvk_with_plural(&gvk, &res.resource);
    let ns = res.namespace.clone().unwrap_or_default();
    let t = Target {
        resolved: Resolved {
            api: api_resource,
            namespaced: !ns.is_empty(),
        },
        namespace: ns,
        name: res.name.clone(),
    };
    let api = t.api(client);
    let live = match api.get_opt(&t.name).await {
        Ok(Some(o)) => to_value(&o),
        Ok(None) => return Ok(Released::Gone),
        Err(e) => return Err(api_err("read", &t, e)),
    };
    if let Some(uid) = &res.uid
        && live["metadata"]["uid"].as_str() != Some(uid.as_str())
    {
        return Ok(Released::Gone);
    }
    if !has_owner(&live, owner_uid) {
        return Ok(Released::Kept);
    }
    if live.pointer("/metadata/deletionTimestamp").is_some() {
        return Ok(Released::Deleting);
    }
    // Another work's AppliedManifestWork still holds it: only let go of it.
    let others = owner_refs(&live)
        .iter()
        .filter(|r| {
            r["uid"].as_str() != Some(owner_uid)
                && r["apiVersion"] == OWNER_API_VERSION
                && r["kind"] == OWNER_KIND
        })
        .count();
    if others > 0 {
        set_owner(&api, &t, &live, None, owner_uid).await?;
        return Ok(Released::Kept);
    }
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            uid: live["metadata"]["uid"].as_str().map(String::from),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&t.name, &dp).await {
        Ok(either) => Ok(if either.is_left() {
            Released::Deleting
        } else {
            Released::Gone
        }),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(Released::Gone),
        Err(e) => Err(api_err("delete", &t, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_and_crds_come_first_and_webhooks_last() {
        let m: Vec<Value> = [
            "ValidatingWebhookConfiguration",
            "Deployment",
            "Widget",
            "CustomResourceDefinition",
            "ConfigMap",
            "Namespace",
            "MutatingWebhookConfiguration",
            "Widget",
        ]
        .iter()
        .map(|k| json!({"kind": k}))
        .collect();
        let order: Vec<&str> = apply_order(&m)
            .into_iter()
            .map(|i| m[i]["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            order,
            [
                "CustomResourceDefinition",
                "Namespace",
                "ConfigMap",
                "Deployment",
                "Widget",
                "Widget",
                // Same rank: the work's order.
                "ValidatingWebhookConfiguration",
                "MutatingWebhookConfiguration"
            ]
        );
    }

    #[test]
    fn covers_tolerates_defaults_but_not_drift() {
        let live = json!({"spec": {"replicas": 2, "revisionHistoryLimit": 10,
            "template": {"spec": {"containers": [{"name": "a", "image": "x", "imagePullPolicy": "Always"}]}}}});
        let req = json!({"spec": {"replicas": 2,
            "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}});
        assert!(covers(&live, &req));
        let drifted = json!({"spec": {"replicas": 5, "revisionHistoryLimit": 10,
            "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}});
        assert!(!covers(&drifted, &req));
        let extra_container = json!({"spec": {"replicas": 2,
            "template": {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}}}});
        assert!(!covers(&extra_container, &req));
    }

    #[test]
    fn the_spec_hash_ignores_status_and_bookkeeping() {
        let a = json!({"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"k": "v"}});
        let mut b = a.clone();
        b["status"] = json!({"x": 1});
        b["metadata"]["resourceVersion"] = json!("9");
        assert_eq!(spec_hash(&a), spec_hash(&b));
        let mut c = a.clone();
        c["data"] = json!({});
        assert_ne!(spec_hash(&a), spec_hash(&c));
    }

    #[test]
    fn merging_keeps_other_owners_and_live_labels() {
        let live = json!({"metadata": {"name": "x", "labels": {"team": "a"},
            "ownerReferences": [{"uid": "other"}, {"uid": "mine", "name": "old"}]},
            "status": {"phase": "Active"}});
        let req = json!({"metadata": {"name": "x", "labels": {"app": "web"}}, "data": {"k": "v"}});
        let own = owner_ref("amw", "mine");
        let out = merged(&live, &req, Some(&own), "mine");
        assert_eq!(
            out["metadata"]["labels"],
            json!({"team": "a", "app": "web"})
        );
        let uids: Vec<&str> = out["metadata"]["ownerReferences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["uid"].as_str().unwrap())
            .collect();
        assert_eq!(uids, ["other", "mine"]);
        assert_eq!(out["status"]["phase"], "Active");
        let orphaned = merged(&live, &req, None, "mine");
        assert_eq!(
            orphaned["metadata"]["ownerReferences"],
            json!([{"uid": "other"}])
        );
    }
}
