//! ClusterPermission on the hub, as upstream's cluster-permission controller: the RBAC a
//! ClusterPermission describes is rendered into one ManifestWork in its cluster's namespace
//! (`<name>-<first 5 characters of its uid>`, owned by it, so deleting it removes the RBAC from
//! the cluster), and the work's state is reported back in its status.
//!
//! ManagedServiceAccount subjects are rewritten to the ServiceAccount the managed-serviceaccount
//! add-on makes on the cluster, in the add-on's namespace there.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use garrison_api::rbac::v1alpha1::{
    ClusterPermission, ClusterPermissionStatus, ClusterRoleBindingSpec, ResourceStatus,
    ResourceStatusEntry, RoleRef,
};
use garrison_api::status::{condition, set_condition};
use garrison_api::{ManagedCluster, ManagedClusterAddOn, ManagedServiceAccount, ManifestWork};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::Subject;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::{MANAGED_SERVICE_ACCOUNT, install_namespace};
use crate::cache::Informers;

const MANAGER: &str = "garrison-cluster-permission";
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const MSA_GROUP: &str = "authentication.open-cluster-management.io";

/// Condition types and reasons, as upstream spells them.
pub mod reasons {
    /// Condition: the ClusterPermission can be delivered.
    pub const VALIDATION: &str = "Validation";
    /// Condition: the RBAC ManifestWork is applied.
    pub const APPLIED_WORK: &str = "AppliedRBACManifestWork";
    /// Not in a ManagedCluster's namespace.
    pub const NOT_IN_CLUSTER_NAMESPACE: &str = "FailedValidationNotInManagedClusterNamespace";
    /// No binding at all.
    pub const NO_BINDINGS: &str = "FailedValidationNoBindingsDefined";
    /// The manifests could not be built.
    pub const BUILD_FAILED: &str = "FailedBuildManifestWork";
    /// The work is not applied yet.
    pub const NOT_COMPLETE: &str = "ApplyRBACManifestWorkNotComplete";
    /// Per resource: applied.
    pub const MANIFEST_COMPLETE: &str = "AppliedManifestComplete";
    /// Per resource: no condition found in the work.
    pub const MANIFEST_FAILED: &str = "FailedGetManifestCondition";
}

/// The name of a ClusterPermission's ManifestWork: `<name>-<first 5 characters of its uid>`.
pub fn work_name(cp: &ClusterPermission) -> String {
    let uid = cp.uid().unwrap_or_default();
    format!(
        "{}-{}",
        cp.name_any(),
        uid.chars().take(5).collect::<String>()
    )
}

/// What the manifests are built from besides the ClusterPermission itself.
#[derive(Debug, Default)]
pub struct World {
    /// Hub namespaces and their labels, for `namespaceSelector`.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// The managed-serviceaccount add-on's namespace on the cluster, if it is enabled there.
    pub msa_namespace: Option<String>,
    /// The ManagedServiceAccounts in the cluster namespace.
    pub msas: Vec<String>,
}

/// Why the manifests cannot be built: `(reason, message)`.
pub type BuildError = (&'static str, String);

fn subjects_of(
    subject: &Option<Subject>,
    subjects: &[Subject],
    world: &World,
) -> Result<Vec<Value>, BuildError> {
    let list: Vec<Subject> = if subjects.is_empty() {
        subject.iter().cloned().collect()
    } else {
        subjects.to_vec()
    };
    list.into_iter()
        .map(|s| {
            if s.kind == "ManagedServiceAccount" && s.api_group.as_deref() == Some(MSA_GROUP) {
                if !world.msas.contains(&s.name) {
                    return Err((
                        reasons::BUILD_FAILED,
                        format!(
                            "ManagedServiceAccount {} not found in the cluster namespace",
                            s.name
                        ),
                    ));
                }
                let ns = world.msa_namespace.clone().ok_or_else(|| {
                    (
                        reasons::BUILD_FAILED,
                        "the managed-serviceaccount add-on is not enabled on the cluster"
                            .to_string(),
                    )
                })?;
                return Ok(json!({"kind": "ServiceAccount", "name": s.name, "namespace": ns}));
            }
            Ok(serde_json::to_value(&s).expect("a Subject serializes"))
        })
        .collect()
}

fn namespaces_of(
    namespace: &Option<String>,
    selector: &Option<LabelSelector>,
    world: &World,
) -> Result<Vec<String>, BuildError> {
    if let Some(sel) = selector {
        let sel = garrison_api::selector::Selector::new(sel)
            .map_err(|e| (reasons::BUILD_FAILED, format!("namespaceSelector: {e}")))?;
        return Ok(world
            .namespaces
            .iter()
            .filter(|(_, labels)| sel.matches(labels))
            .map(|(n, _)| n.clone())
            .collect());
    }
    match namespace.as_deref() {
        Some(ns) if !ns.is_empty() => Ok(vec![ns.to_string()]),
        _ => Err((
            reasons::BUILD_FAILED,
            "a role or role binding needs a namespace or a namespaceSelector".into(),
        )),
    }
}

fn cluster_role_binding(
    cp: &str,
    b: &ClusterRoleBindingSpec,
    world: &World,
) -> Result<Value, BuildError> {
    let role_ref = match &b.role_ref {
        Some(r) => json!({
            "apiGroup": r.api_group.clone().unwrap_or_else(|| RBAC_GROUP.into()),
            "kind": if r.kind.is_empty() { "ClusterRole" } else { r.kind.as_str() },
            "name": r.name.clone().unwrap_or_else(|| cp.into()),
        }),
        None => json!({"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": cp}),
    };
    Ok(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": b.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| cp.into())},
        "roleRef": role_ref,
        "subjects": subjects_of(&b.subject, &b.subjects, world)?,
    }))
}

fn role_ref(cp: &str, r: &RoleRef) -> Result<Value, BuildError> {
    match (&r.api_group, &r.name) {
        (Some(g), Some(n)) => Ok(json!({"apiGroup": g, "kind": r.kind, "name": n})),
        (None, None) => Ok(json!({"apiGroup": RBAC_GROUP, "kind": r.kind, "name": cp})),
        _ => Err((
            reasons::BUILD_FAILED,
            "roleRef: apiGroup and name must be set together".into(),
        )),
    }
}

/// Validates a ClusterPermission and builds the manifests it delivers, in upstream's order and
/// with upstream's names.
pub fn build(cp: &ClusterPermission, world: &World) -> Result<Vec<Value>, BuildError> {
    let name = cp.name_any();
    let spec = &cp.spec;
    if spec.cluster_role_binding.is_none()
        && spec.cluster_role_bindings.is_empty()
        && spec.role_bindings.is_empty()
    {
        return Err((
            reasons::NO_BINDINGS,
            "The cluster permission has no bindings defined".into(),
        ));
    }
    let validate = spec.validate == Some(true);
    let mut out = vec![];
    if let Some(cr) = spec.cluster_role.as_ref().filter(|_| !validate) {
        out.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name}, "rules": cr.rules,
        }));
    }
    if !spec.cluster_role_bindings.is_empty() {
        for b in &spec.cluster_role_bindings {
            out.push(cluster_role_binding(&name, b, world)?);
        }
    } else if let Some(b) = &spec.cluster_role_binding {
        out.push(cluster_role_binding(&name, b, world)?);
    }
    if !validate {
        for r in &spec.roles {
            for ns in namespaces_of(&r.namespace, &r.namespace_selector, world)? {
                out.push(json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": {"name": name, "namespace": ns}, "rules": r.rules,
                }));
            }
        }
    }
    for b in &spec.role_bindings {
        let rb_name = if b.namespace_selector.is_some() {
            name.clone()
        } else {
            b.name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| name.clone())
        };
        let subjects = subjects_of(&b.subject, &b.subjects, world)?;
        let rr = role_ref(&name, &b.role_ref)?;
        for ns in namespaces_of(&b.namespace, &b.namespace_selector, world)? {
            out.push(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": rb_name, "namespace": ns},
                "roleRef": rr, "subjects": subjects,
            }));
        }
    }
    Ok(out)
}

/// The Roles and ClusterRoles the bindings among `manifests` refer to, as ReadOnly stubs.
pub fn referenced_roles(manifests: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = vec![];
    for m in manifests {
        let kind = m["roleRef"]["kind"].as_str().unwrap_or_default();
        let name = m["roleRef"]["name"].as_str().unwrap_or_default();
        let stub = match (m["kind"].as_str(), kind) {
            (Some("ClusterRoleBinding" | "RoleBinding"), "ClusterRole") => json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": name}}),
            (Some("RoleBinding"), "Role") => json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": name, "namespace": m["metadata"]["namespace"]}}),
            _ => continue,
        };
        if !out.contains(&stub) {
            out.push(stub);
        }
    }
    out
}

fn read_only_config(stub: &Value) -> Value {
    let resource = if stub["kind"] == "Role" {
        "roles"
    } else {
        "clusterroles"
    };
    let mut id = json!({"group": RBAC_GROUP, "resource": resource,
        "name": stub["metadata"]["name"]});
    if let Some(ns) = stub["metadata"]["namespace"].as_str() {
        id["namespace"] = json!(ns);
    }
    json!({"resourceIdentifier": id, "updateStrategy": {"type": "ReadOnly"}})
}

/// `ValidateRolesExist` and `ValidateClusterRolesExist` from the work's state of the ReadOnly
/// stubs: a role exists when its manifest is Available.
pub fn validation_conditions(stubs: &[Value], work: &ManifestWork) -> Vec<Condition> {
    let found = work
        .status
        .as_ref()
        .and_then(|s| s.resource_status.as_ref())
        .map(|r| r.manifests.clone())
        .unwrap_or_default();
    let exists = |m: &Value| {
        found.iter().any(|c| {
            c.resource_meta.kind.as_deref() == m["kind"].as_str()
                && c.resource_meta.name.as_deref() == m["metadata"]["name"].as_str()
                && c.resource_meta.namespace.as_deref().unwrap_or_default()
                    == m["metadata"]["namespace"].as_str().unwrap_or_default()
                && garrison_api::status::find_condition(&c.conditions, "Available")
                    .is_some_and(|a| a.status == "True")
        })
    };
    let mut out = vec![];
    for (kind, ty, missing_reason, ok_reason, what) in [
        (
            "Role",
            "ValidateRolesExist",
            "RolesNotFound",
            "AllRolesFound",
            "roles",
        ),
        (
            "ClusterRole",
            "ValidateClusterRolesExist",
            "ClusterRolesNotFound",
            "AllClusterRolesFound",
            "cluster roles",
        ),
    ] {
        let of_kind: Vec<&Value> = stubs.iter().filter(|m| m["kind"] == kind).collect();
        if of_kind.is_empty() {
            continue;
        }
        let missing: Vec<String> = of_kind
            .iter()
            .filter(|m| !exists(m))
            .map(|m| match m["metadata"]["namespace"].as_str() {
                Some(ns) => format!("{ns}/{}", m["metadata"]["name"].as_str().unwrap_or("")),
                None => m["metadata"]["name"].as_str().unwrap_or("").to_string(),
            })
            .collect();
        out.push(if missing.is_empty() {
            condition(ty, "True", ok_reason, &format!("All {what} are found"))
        } else {
            condition(
                ty,
                "False",
                missing_reason,
                &format!("The following {what} are not found: {}", missing.join(", ")),
            )
        });
    }
    out
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// The per-resource status from the work's manifest conditions.
pub fn resource_status(manifests: &[Value], work: Option<&ManifestWork>) -> ResourceStatus {
    let found = work
        .and_then(|w| w.status.as_ref())
        .and_then(|s| s.resource_status.as_ref())
        .map(|r| r.manifests.clone())
        .unwrap_or_default();
    let mut out = ResourceStatus::default();
    for m in manifests {
        let kind = m["kind"].as_str().unwrap_or_default();
        let name = m["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let namespace = m["metadata"]["namespace"].as_str().map(String::from);
        let applied = found.iter().find(|c| {
            c.resource_meta.kind.as_deref() == Some(kind)
                && c.resource_meta.name.as_deref() == Some(name.as_str())
                && c.resource_meta.namespace.as_deref().unwrap_or_default()
                    == namespace.as_deref().unwrap_or_default()
        });
        let cond: Condition = match applied
            .and_then(|c| garrison_api::status::find_condition(&c.conditions, "Applied"))
        {
            Some(c) => Condition {
                reason: if c.status == "True" {
                    reasons::MANIFEST_COMPLETE.into()
                } else {
                    c.reason.clone()
                },
                ..c.clone()
            },
            None => {
                let mut c = condition(
                    "Applied",
                    "False",
                    reasons::MANIFEST_FAILED,
                    "no condition found for the manifest in the ManifestWork",
                );
                c.last_transition_time = now();
                c
            }
        };
        let entry = ResourceStatusEntry {
            name,
            namespace,
            condition: vec![cond],
        };
        match kind {
            "ClusterRole" => out.cluster_roles.push(entry),
            "ClusterRoleBinding" => out.cluster_role_bindings.push(entry),
            "Role" => out.roles.push(entry),
            _ => out.role_bindings.push(entry),
        }
    }
    out
}

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API call failed.
    #[error("API call failed: {0}")]
    Kube(#[from] kube::Error),
}

async fn world(client: &kube::Client, cluster: &str) -> Result<World, kube::Error> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespaces = namespaces
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|n| (n.name_any(), n.labels().clone()))
        .collect();
    let addons: Api<ManagedClusterAddOn> = Api::namespaced(client.clone(), cluster);
    let msa_namespace = addons
        .get_opt(MANAGED_SERVICE_ACCOUNT)
        .await?
        .filter(|a| a.metadata.deletion_timestamp.is_none())
        .map(|a| {
            a.status
                .as_ref()
                .and_then(|s| s.namespace.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| install_namespace(&a))
        });
    let msas: Api<ManagedServiceAccount> = Api::namespaced(client.clone(), cluster);
    let msas = msas
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|m| m.name_any())
        .collect();
    Ok(World {
        namespaces,
        msa_namespace,
        msas,
    })
}

async fn write_status(
    api: &Api<ClusterPermission>,
    cp: &ClusterPermission,
    status: ClusterPermissionStatus,
) -> Result<(), kube::Error> {
    if cp.status.as_ref() == Some(&status) {
        return Ok(());
    }
    api.patch_status(
        &cp.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await?;
    Ok(())
}

async fn reconcile(cp: Arc<ClusterPermission>, client: Arc<kube::Client>) -> Result<Action, Error> {
    if cp.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let client = (*client).clone();
    let cluster = cp.namespace().unwrap_or_default();
    let api: Api<ClusterPermission> = Api::namespaced(client.clone(), &cluster);
    let mut status = cp.status.clone().unwrap_or_default();
    let clusters: Api<ManagedCluster> = Api::all(client.clone());
    let failure = if clusters.get_opt(&cluster).await?.is_none() {
        Some((
            reasons::NOT_IN_CLUSTER_NAMESPACE,
            format!("The namespace {cluster} is not a ManagedCluster namespace"),
        ))
    } else {
        None
    };
    let built = match failure {
        Some(f) => Err(f),
        None => build(&cp, &world(&client, &cluster).await?),
    };
    let manifests = match built {
        Ok(m) => m,
        Err((reason, message)) => {
            let ty = if reason == reasons::BUILD_FAILED {
                reasons::APPLIED_WORK
            } else {
                reasons::VALIDATION
            };
            set_condition(
                &mut status.conditions,
                condition(ty, "False", reason, &message),
                now(),
            );
            write_status(&api, &cp, status).await?;
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
    };
    status.conditions.retain(|c| c.type_ != reasons::VALIDATION);
    let works: Api<ManifestWork> = Api::namespaced(client.clone(), &cluster);
    // With `validate`, the roles the bindings name are only looked at (ReadOnly), never made.
    let stubs = if cp.spec.validate == Some(true) {
        referenced_roles(&manifests)
    } else {
        vec![]
    };
    let read_only: Vec<Value> = stubs.iter().map(read_only_config).collect();
    let delivered: Vec<Value> = manifests.iter().chain(stubs.iter()).cloned().collect();
    let name = work_name(&cp);
    let work = json!({
        "apiVersion": "work.open-cluster-management.io/v1", "kind": "ManifestWork",
        "metadata": {"name": name, "namespace": cluster,
            "ownerReferences": [{"apiVersion": "rbac.open-cluster-management.io/v1alpha1",
                "kind": "ClusterPermission", "name": cp.name_any(),
                "uid": cp.uid().unwrap_or_default(), "controller": true}]},
        "spec": {"workload": {"manifests": delivered}, "manifestConfigs": read_only},
    });
    let applied = works
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(work),
        )
        .await?;
    let work_applied = applied
        .status
        .as_ref()
        .and_then(|s| garrison_api::status::find_condition(&s.conditions, "Applied"))
        .filter(|c| c.status == "True")
        .cloned();
    let c = match work_applied {
        Some(c) => condition(reasons::APPLIED_WORK, "True", &c.reason, &c.message),
        None => condition(
            reasons::APPLIED_WORK,
            "False",
            reasons::NOT_COMPLETE,
            "Apply ClusterPermission RBAC ManifestWork not complete",
        ),
    };
    set_condition(&mut status.conditions, c, now());
    for c in validation_conditions(&stubs, &applied) {
        set_condition(&mut status.conditions, c, now());
    }
    let mut rs = resource_status(&manifests, Some(&applied));
    // Keep the transition times of unchanged per-resource conditions.
    if let Some(old) = cp.status.as_ref().and_then(|s| s.resource_status.as_ref()) {
        for (new, old) in [
            (&mut rs.cluster_roles, &old.cluster_roles),
            (&mut rs.cluster_role_bindings, &old.cluster_role_bindings),
            (&mut rs.roles, &old.roles),
            (&mut rs.role_bindings, &old.role_bindings),
        ] {
            for e in new.iter_mut() {
                if let Some(o) = old
                    .iter()
                    .find(|o| o.name == e.name && o.namespace == e.namespace)
                    && let (Some(n), Some(oc)) = (e.condition.first_mut(), o.condition.first())
                    && n.status == oc.status
                    && n.reason == oc.reason
                {
                    n.last_transition_time = oc.last_transition_time.clone();
                }
            }
        }
    }
    status.resource_status = Some(rs);
    write_status(&api, &cp, status).await?;
    Ok(Action::requeue(Duration::from_secs(60)))
}

fn error_policy(_: Arc<ClusterPermission>, e: &Error, _: Arc<kube::Client>) -> Action {
    tracing::warn!(error = %e, "ClusterPermission reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the controller until its stream ends.
pub async fn run(informers: Informers) {
    let client = informers.client().clone();
    let works: Api<ManifestWork> = Api::all(client.clone());
    let controller =
        crate::cache::controller::<ClusterPermission>(&informers, watcher::Config::default())
            .owns(works, watcher::Config::default());
    let probe = crate::metrics::Probe::new("clusterpermission", &controller);
    controller
        .run(probe.timed(reconcile), error_policy, Arc::new(client))
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(spec: Value) -> ClusterPermission {
        serde_json::from_value(json!({
            "apiVersion": "rbac.open-cluster-management.io/v1alpha1", "kind": "ClusterPermission",
            "metadata": {"name": "perm", "namespace": "c1", "uid": "abcdef-123"}, "spec": spec
        }))
        .unwrap()
    }

    #[test]
    fn upstream_names_and_msa_subjects() {
        let world = World {
            namespaces: [
                (
                    "app".to_string(),
                    [("team".to_string(), "a".to_string())].into(),
                ),
                ("other".to_string(), BTreeMap::new()),
            ]
            .into(),
            msa_namespace: Some("open-cluster-management-agent-addon".into()),
            msas: vec!["reader".into()],
        };
        let p = cp(json!({
            "clusterRole": {"rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]},
            "clusterRoleBinding": {"subject": {"kind": "User", "name": "u", "apiGroup": "rbac.authorization.k8s.io"}},
            "roles": [{"namespaceSelector": {"matchLabels": {"team": "a"}}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]}],
            "roleBindings": [{"namespace": "app", "name": "rb", "roleRef": {"kind": "Role"},
                "subject": {"apiGroup": "authentication.open-cluster-management.io", "kind": "ManagedServiceAccount", "name": "reader"}}]
        }));
        assert_eq!(work_name(&p), "perm-abcde");
        let m = build(&p, &world).unwrap();
        let names: Vec<String> = m
            .iter()
            .map(|o| {
                format!(
                    "{}/{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["namespace"].as_str().unwrap_or(""),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                "ClusterRole//perm",
                "ClusterRoleBinding//perm",
                "Role/app/perm",
                "RoleBinding/app/rb"
            ]
        );
        assert_eq!(
            m[1]["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "perm"})
        );
        assert_eq!(
            m[3]["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "perm"})
        );
        assert_eq!(
            m[3]["subjects"],
            json!([{"kind": "ServiceAccount", "name": "reader", "namespace": "open-cluster-management-agent-addon"}])
        );
    }

    #[test]
    fn invalid_permissions_say_why() {
        let world = World::default();
        assert_eq!(
            build(&cp(json!({"clusterRole": {"rules": []}})), &world)
                .unwrap_err()
                .0,
            reasons::NO_BINDINGS
        );
        let half_ref = cp(
            json!({"roleBindings": [{"namespace": "a", "roleRef": {"kind": "Role", "name": "x"}, "subject": {"kind": "User", "name": "u"}}]}),
        );
        assert_eq!(
            build(&half_ref, &world).unwrap_err().0,
            reasons::BUILD_FAILED
        );
        let missing_msa = cp(
            json!({"clusterRoleBinding": {"subject": {"apiGroup": "authentication.open-cluster-management.io", "kind": "ManagedServiceAccount", "name": "nobody"}}}),
        );
        assert!(
            build(&missing_msa, &world)
                .unwrap_err()
                .1
                .contains("nobody")
        );
    }
}
