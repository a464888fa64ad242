//! The add-on manager on the hub, for the add-ons built into Garrison's agent.
//!
//! Each built-in add-on has a ClusterManagementAddOn (made at start when missing) and a
//! ClusterRole with exactly the hub rights its agent needs. Enabling it on a cluster is
//! creating a ManagedClusterAddOn of its name in the cluster's namespace (by kubectl, by
//! `garrison addon enable`, or by an install strategy). For each such ManagedClusterAddOn the
//! manager writes what the cluster's agent needs to register the add-on (`status.registrations`
//! with upstream's default subject, `status.namespace`, lease health) and binds the ClusterRole
//! in the cluster's namespace to the add-on's per-cluster group only, so one cluster's add-on
//! certificate reaches nothing of another cluster. The binding is owned by the
//! ManagedClusterAddOn: disabling the add-on removes it.

pub mod cluster_permission;
pub mod install;
pub mod msa_ttl;
pub mod signer;
pub mod template;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use garrison_api::{ClusterManagementAddOn, ManagedCluster, ManagedClusterAddOn};
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use serde_json::{Value, json};

use crate::cache::Informers;

/// Field manager of the add-on manager's writes.
const MANAGER: &str = "garrison-addon-manager";
/// The namespace add-on agents use on the managed cluster unless told otherwise.
pub const DEFAULT_INSTALL_NAMESPACE: &str = "open-cluster-management-agent-addon";
/// The client signer add-on certificates are issued by.
pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// The managed-serviceaccount add-on.
pub const MANAGED_SERVICE_ACCOUNT: &str = "managed-serviceaccount";

/// An add-on built into the agent.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinAddon {
    /// Its name (of the ClusterManagementAddOn and every ManagedClusterAddOn).
    pub name: &'static str,
    /// Display name.
    pub display_name: &'static str,
    /// Description.
    pub description: &'static str,
    /// The hub rules its agent holds, in its cluster's namespace only.
    pub rules: fn() -> Value,
}

fn msa_rules() -> Value {
    // Upstream's managed-serviceaccount agent role.
    json!([
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch", "create", "update"]},
        {"apiGroups": ["authentication.open-cluster-management.io"], "resources": ["managedserviceaccounts"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["authentication.open-cluster-management.io"], "resources": ["managedserviceaccounts/status"], "verbs": ["get", "update", "patch"]}
    ])
}

fn policy_rules() -> Value {
    // Upstream's policy framework agent: replicated policies of its cluster and their status.
    json!([
        {"apiGroups": ["policy.open-cluster-management.io"], "resources": ["policies"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["policy.open-cluster-management.io"], "resources": ["policies/status"], "verbs": ["get", "update", "patch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch", "update"]}
    ])
}

fn image_rules() -> Value {
    // Reads the replicated policies of its cluster, for their image policy templates.
    json!([
        {"apiGroups": ["policy.open-cluster-management.io"], "resources": ["policies"], "verbs": ["get", "list", "watch"]}
    ])
}

/// The policy add-on.
pub const POLICY_FRAMEWORK: &str = "governance-policy-framework";
/// The image-verification add-on.
pub const IMAGE_VERIFICATION: &str = "image-verification";

/// The add-ons built into Garrison's agent.
pub const BUILTIN: &[BuiltinAddon] = &[
    BuiltinAddon {
        name: MANAGED_SERVICE_ACCOUNT,
        display_name: "managed-serviceaccount",
        description: "ServiceAccounts on managed clusters whose tokens are projected to the hub",
        rules: msa_rules,
    },
    BuiltinAddon {
        name: POLICY_FRAMEWORK,
        display_name: "governance-policy-framework",
        description: "Evaluates the policies replicated to a cluster (ConfigurationPolicy, \
                      Gatekeeper constraints with a built-in Rego engine) and reports compliance",
        rules: policy_rules,
    },
    BuiltinAddon {
        name: IMAGE_VERIFICATION,
        display_name: "image-verification",
        description: "Verifies the cosign signatures of every image in a work against the \
                      ClusterImagePolicies delivered to the cluster, and pins each image to its \
                      verified digest, before anything is applied",
        rules: image_rules,
    },
];

/// The built-in add-on of this name.
pub fn builtin(name: &str) -> Option<&'static BuiltinAddon> {
    BUILTIN.iter().find(|a| a.name == name)
}

/// Name of a built-in add-on's hub ClusterRole.
pub fn cluster_role_name(addon: &str) -> String {
    format!("open-cluster-management:addon:{addon}")
}

/// Name of the RoleBinding of an add-on's ClusterRole in a cluster namespace, as upstream names
/// the bindings of template add-ons.
pub fn binding_name(addon: &str) -> String {
    format!("open-cluster-management:{addon}:clusterrole:agent")
}

/// The install namespace of a ManagedClusterAddOn: `spec.installNamespace`, the v1beta1
/// annotation, or the default.
pub fn install_namespace(mca: &ManagedClusterAddOn) -> String {
    mca.spec
        .install_namespace
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            mca.annotations()
                .get(garrison_api::addon::v1beta1::INSTALL_NAMESPACE_ANNOTATION)
                .cloned()
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_INSTALL_NAMESPACE.into())
}

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API call failed.
    #[error("API call failed: {0}")]
    Kube(#[from] kube::Error),
}

/// Makes each built-in add-on's ClusterManagementAddOn (when missing: an admin's changes stay)
/// and its ClusterRole (always as the binary says).
pub async fn ensure_builtins(client: &kube::Client) -> Result<(), Error> {
    let cmas: Api<ClusterManagementAddOn> = Api::all(client.clone());
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let pp = PatchParams::apply(MANAGER).force();
    for a in BUILTIN {
        if cmas.get_opt(a.name).await?.is_none() {
            let cma: ClusterManagementAddOn = serde_json::from_value(json!({
                "apiVersion": "addon.open-cluster-management.io/v1alpha1",
                "kind": "ClusterManagementAddOn",
                "metadata": {"name": a.name, "labels": {"app.kubernetes.io/managed-by": "garrison"}},
                "spec": {"addOnMeta": {"displayName": a.display_name, "description": a.description},
                         "installStrategy": {"type": "Manual"}}
            }))
            .expect("a well-formed ClusterManagementAddOn");
            match cmas.create(&PostParams::default(), &cma).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        let role = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": cluster_role_name(a.name), "labels": {"app.kubernetes.io/managed-by": "garrison"}},
            "rules": (a.rules)(),
        });
        roles
            .patch(&cluster_role_name(a.name), &pp, &Patch::Apply(role))
            .await?;
    }
    Ok(())
}

/// What the manager writes into a built-in add-on's status: its registration with upstream's
/// default subject, its namespace, lease health, and its metadata.
pub fn desired_status(addon: &BuiltinAddon, mca: &ManagedClusterAddOn) -> Value {
    let cluster = mca.namespace().unwrap_or_default();
    let user = format!(
        "system:open-cluster-management:cluster:{cluster}:addon:{0}:agent:{0}",
        addon.name
    );
    json!({
        "namespace": install_namespace(mca),
        "registrations": [{
            "signerName": CLIENT_SIGNER,
            "subject": {"user": user, "groups": [
                garrison_pki::identity::addon_cluster_group(&cluster, addon.name),
                format!("{}{}", garrison_pki::identity::ADDON_GROUP_PREFIX, addon.name),
            ]},
        }],
        "healthCheck": {"mode": "Lease"},
        "addOnMeta": {"displayName": addon.display_name, "description": addon.description},
        "relatedObjects": [{"group": "addon.open-cluster-management.io",
            "resource": "clustermanagementaddons", "name": addon.name}],
    })
}

async fn reconcile(
    mca: Arc<ManagedClusterAddOn>,
    client: Arc<kube::Client>,
) -> Result<Action, Error> {
    let Some(addon) = builtin(&mca.name_any()) else {
        return Ok(Action::await_change());
    };
    if mca.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let cluster = mca.namespace().unwrap_or_default();
    let clusters: Api<ManagedCluster> = Api::all((*client).clone());
    if clusters.get_opt(&cluster).await?.is_none() {
        // Not a cluster namespace: nothing to register, and no RBAC is handed out.
        return Ok(Action::requeue(Duration::from_secs(60)));
    }
    let mut status = desired_status(addon, &mca);
    let mut conditions = mca
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    garrison_api::status::set_condition(
        &mut conditions,
        garrison_api::status::condition(
            "RegistrationApplied",
            "True",
            "SetPermissionApplied",
            "Registration of the add-on agent is configured",
        ),
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
    );
    status["conditions"] = json!(conditions);
    let mcas: Api<ManagedClusterAddOn> = Api::namespaced((*client).clone(), &cluster);
    if !patch_status(&mcas, &mca, status).await? {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let bindings: Api<RoleBinding> = Api::namespaced((*client).clone(), &cluster);
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": binding_name(addon.name), "namespace": cluster,
            "labels": {"app.kubernetes.io/managed-by": "garrison",
                       "open-cluster-management.io/addon-name": addon.name},
            "ownerReferences": [{"apiVersion": "addon.open-cluster-management.io/v1alpha1",
                "kind": "ManagedClusterAddOn", "name": mca.name_any(),
                "uid": mca.uid().unwrap_or_default()}]},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
            "name": cluster_role_name(addon.name)},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
            "name": garrison_pki::identity::addon_cluster_group(&cluster, addon.name)}],
    });
    bindings
        .patch(
            &binding_name(addon.name),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(binding),
        )
        .await?;
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// Writes the status fields in `want` when they change the ManagedClusterAddOn's status, against
/// the resourceVersion read, so that what another writer (the agent's health report) wrote since
/// is not dropped. Compared as typed statuses, so defaults and empty fields are no difference (a
/// difference that never goes away would write forever). Returns false on a conflict: read again.
pub async fn patch_status(
    api: &Api<ManagedClusterAddOn>,
    mca: &ManagedClusterAddOn,
    want: Value,
) -> Result<bool, Error> {
    let mut merged = serde_json::to_value(&mca.status).unwrap_or(Value::Null);
    if !merged.is_object() {
        merged = json!({});
    }
    for (k, v) in want.as_object().into_iter().flatten() {
        merged[k] = v.clone();
    }
    let merged: Option<garrison_api::addon::v1alpha1::ManagedClusterAddOnStatus> =
        serde_json::from_value(merged).ok();
    if merged.as_ref() == mca.status.as_ref() {
        return Ok(true);
    }
    let patch = json!({"metadata": {"resourceVersion": mca.resource_version()}, "status": want});
    match api
        .patch_status(
            &mca.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn error_policy(_: Arc<ManagedClusterAddOn>, e: &Error, _: Arc<kube::Client>) -> Action {
    tracing::warn!(error = %e, "add-on manager reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the manager until its stream ends.
pub async fn run(informers: Informers) {
    let client = informers.client().clone();
    while let Err(e) = ensure_builtins(&client).await {
        tracing::warn!(error = %e, "cannot install the built-in add-ons; retrying");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let controller =
        crate::cache::controller::<ManagedClusterAddOn>(&informers, watcher::Config::default());
    let probe = crate::metrics::Probe::new("addon-manager", &controller);
    controller
        .run(probe.timed(reconcile), error_policy, Arc::new(client))
        .for_each(|_| async {})
        .await;
}
