//! What the policy add-on keeps on the managed cluster, as upstream's policy framework does:
//! in the namespace named after the cluster, a copy of each replicated Policy (with its status),
//! each ConfigurationPolicy template as an object of its own (labelled with its Policy, owned by
//! the copy, with its evaluation as status), and compliance Events on the Policy copies.
//!
//! The ConfigurationPolicy status is also the add-on's memory across restarts: when it was last
//! evaluated (for `evaluationInterval`) and which objects it created (for
//! `pruneObjectBehavior: DeleteIfCreated`).

use std::collections::BTreeMap;

use garrison_api::policy::POLICY_LABEL;
use garrison_api::policy::v1::Policy;
use k8s_openapi::api::core::v1::{Event, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

use super::{ADDON, MANAGER};

/// Finalizer on a ConfigurationPolicy that prunes objects: its objects are deleted before it is.
pub const PRUNE_FINALIZER: &str = "policy.open-cluster-management.io/delete-related-objects";

/// The ConfigurationPolicy resource.
pub fn configuration_policies() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(garrison_api::policy::GROUP, "v1", "ConfigurationPolicy"),
        "configurationpolicies",
    )
}

/// Installs the Policy and ConfigurationPolicy CRDs where the cluster has none (a cluster that
/// already serves them, from upstream's add-on for instance, keeps its own), and the cluster's
/// namespace.
pub async fn prepare(spoke: &kube::Client, cluster: &str) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(spoke.clone());
    let mut missing = vec![];
    for crd in [
        <Policy as kube::CustomResourceExt>::crd(),
        garrison_api::policy::v1::configuration_policy_crd(),
    ] {
        if crds.get_opt(&crd.name_any()).await?.is_none() {
            missing.push(serde_json::to_value(&crd)?);
        }
    }
    if !missing.is_empty() {
        garrison_k8s::client::apply_crds(spoke, &missing, MANAGER).await?;
        tracing::info!(
            addon = ADDON,
            crds = missing.len(),
            "installed the policy CRDs on the cluster"
        );
    }
    let nss: Api<Namespace> = Api::all(spoke.clone());
    if nss.get_opt(cluster).await?.is_none() {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": cluster}}))?;
        match nss.create(&Default::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The labels of template `o` with `POLICY_LABEL` naming `policy`; labels that are not a
/// map of strings are dropped rather than trusted.
fn labels_of(o: &Value, policy: &str) -> Value {
    let mut labels = string_map(o.pointer("/metadata/labels"));
    labels.insert(POLICY_LABEL.into(), json!(policy));
    Value::Object(labels)
}

/// The annotations of template `o`, when they are a map of strings.
fn annotations_of(o: &Value) -> Value {
    Value::Object(string_map(o.pointer("/metadata/annotations")))
}

/// The string entries of `v`, when it is a map.
fn string_map(v: Option<&Value>) -> serde_json::Map<String, Value> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(_, v)| v.is_string())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Merges `status` into the status of `name`, as the add-on.
async fn merge_status<K>(api: &Api<K>, name: &str, status: &Value) -> kube::Result<()>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch_status(
        name,
        &PatchParams {
            field_manager: Some(MANAGER.into()),
            ..Default::default()
        },
        &Patch::Merge(json!({ "status": status })),
    )
    .await?;
    Ok(())
}

/// Deletes `name`; whether it was there (already gone is no error).
pub async fn delete_if_present<K>(api: &Api<K>, name: &str) -> kube::Result<bool>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

fn apply() -> PatchParams {
    PatchParams::apply(MANAGER).force()
}

/// Writes the copy of replica `p` and returns its uid on the cluster.
pub async fn copy_policy(spoke: &kube::Client, cluster: &str, p: &Policy) -> kube::Result<String> {
    let api: Api<Policy> = Api::namespaced(spoke.clone(), cluster);
    let copy = json!({
        "apiVersion": "policy.open-cluster-management.io/v1", "kind": "Policy",
        "metadata": {"name": p.name_any(), "namespace": cluster,
            "labels": p.labels(), "annotations": p.annotations()},
        "spec": p.spec,
    });
    let written = api
        .patch(&p.name_any(), &apply(), &Patch::Apply(&copy))
        .await?;
    Ok(written.uid().unwrap_or_default())
}

/// Writes the status of the copy of replica `name`.
pub async fn copy_status(
    spoke: &kube::Client,
    cluster: &str,
    name: &str,
    status: &Value,
) -> kube::Result<()> {
    let api: Api<Policy> = Api::namespaced(spoke.clone(), cluster);
    merge_status(&api, name, status).await
}

/// The ConfigurationPolicies of the add-on on the cluster, by name.
pub async fn list_configuration_policies(
    spoke: &kube::Client,
    cluster: &str,
) -> kube::Result<BTreeMap<String, DynamicObject>> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(spoke.clone(), cluster, &configuration_policies());
    Ok(api
        .list(&ListParams::default().labels(POLICY_LABEL))
        .await?
        .items
        .into_iter()
        .map(|o| (o.name_any(), o))
        .collect())
}

/// Writes ConfigurationPolicy template `o` (with the Policy's remediation in place) for replica
/// `policy`, whose copy has `owner_uid`; returns it as the cluster has it.
pub async fn write_configuration_policy(
    spoke: &kube::Client,
    cluster: &str,
    policy: &str,
    owner_uid: &str,
    o: &Value,
    prunes: bool,
) -> kube::Result<DynamicObject> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(spoke.clone(), cluster, &configuration_policies());
    let name = o
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let labels = labels_of(o, policy);
    let finalizers: Vec<&str> = if prunes {
        vec![PRUNE_FINALIZER]
    } else {
        vec![]
    };
    let obj = json!({
        "apiVersion": "policy.open-cluster-management.io/v1", "kind": "ConfigurationPolicy",
        "metadata": {
            "name": name, "namespace": cluster, "labels": labels,
            "annotations": annotations_of(o),
            "finalizers": finalizers,
            "ownerReferences": [{"apiVersion": "policy.open-cluster-management.io/v1",
                "kind": "Policy", "name": policy, "uid": owner_uid,
                "controller": true, "blockOwnerDeletion": false}],
        },
        "spec": o["spec"],
    });
    api.patch(name, &apply(), &Patch::Apply(&obj)).await
}

/// Writes the status of ConfigurationPolicy `name`.
pub async fn configuration_status(
    spoke: &kube::Client,
    cluster: &str,
    name: &str,
    status: Value,
) -> kube::Result<()> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(spoke.clone(), cluster, &configuration_policies());
    merge_status(&api, name, &status).await
}

/// Removes the prune finalizer of ConfigurationPolicy `name`, so that its deletion completes.
pub async fn release(spoke: &kube::Client, cluster: &str, o: &DynamicObject) -> kube::Result<()> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(spoke.clone(), cluster, &configuration_policies());
    let rest: Vec<String> = o
        .finalizers()
        .iter()
        .filter(|f| *f != PRUNE_FINALIZER)
        .cloned()
        .collect();
    let rv = o.resource_version().unwrap_or_default();
    api.patch(
        &o.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": rest, "resourceVersion": rv}})),
    )
    .await?;
    Ok(())
}

/// Deletes ConfigurationPolicy `name` (its finalizer, if any, keeps it until pruned).
pub async fn delete_configuration_policy(
    spoke: &kube::Client,
    cluster: &str,
    name: &str,
) -> kube::Result<()> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(spoke.clone(), cluster, &configuration_policies());
    delete_if_present(&api, name).await.map(|_| ())
}

/// Deletes the copy of a replica that is gone.
pub async fn delete_copy(spoke: &kube::Client, cluster: &str, name: &str) -> kube::Result<()> {
    let api: Api<Policy> = Api::namespaced(spoke.clone(), cluster);
    delete_if_present(&api, name).await.map(|_| ())
}

/// The names of the Policy copies on the cluster.
pub async fn copies(spoke: &kube::Client, cluster: &str) -> kube::Result<Vec<String>> {
    let api: Api<Policy> = Api::namespaced(spoke.clone(), cluster);
    Ok(api
        .list(&ListParams::default().labels(garrison_api::policy::ROOT_POLICY_LABEL))
        .await?
        .items
        .iter()
        .map(|p| p.name_any())
        .collect())
}

/// A compliance event in upstream's shape, on the copy of replica `policy` (uid `uid`).
pub struct ComplianceEvent<'a> {
    /// The event's name, `<policy>.<hex unix nanos>`, as the history entry names it.
    pub name: &'a str,
    /// The replica.
    pub policy: &'a str,
    /// The replica copy's uid on the cluster.
    pub uid: &'a str,
    /// `policy: <namespace>/<template>` or `policy: <template>`.
    pub reason: &'a str,
    /// The compliance message.
    pub message: &'a str,
    /// Whether the template complies (a Warning otherwise).
    pub compliant: bool,
    /// When.
    pub time: jiff::Timestamp,
}

/// Records `ev` in the cluster's namespace.
pub async fn record(
    spoke: &kube::Client,
    cluster: &str,
    ev: &ComplianceEvent<'_>,
) -> kube::Result<()> {
    let api: Api<Event> = Api::namespaced(spoke.clone(), cluster);
    let time = ev.time.to_string();
    let event: Event = serde_json::from_value(json!({
        "metadata": {"name": ev.name, "namespace": cluster},
        "involvedObject": {"apiVersion": "policy.open-cluster-management.io/v1", "kind": "Policy",
            "name": ev.policy, "namespace": cluster, "uid": ev.uid},
        "reason": ev.reason,
        "message": ev.message,
        "type": if ev.compliant { "Normal" } else { "Warning" },
        "action": "ComplianceStateUpdate",
        "source": {"component": ADDON},
        "reportingComponent": ADDON,
        "firstTimestamp": time, "lastTimestamp": time, "count": 1,
    }))
    .map_err(kube::Error::SerdeError)?;
    match api.create(&Default::default(), &event).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Gatekeeper's ConstraintTemplate CRD.
const TEMPLATE_CRD: &str = "constrainttemplates.templates.gatekeeper.sh";
/// The CRD of Gatekeeper's own configuration, which only Gatekeeper installs.
const GATEKEEPER_CONFIG_CRD: &str = "configs.config.gatekeeper.sh";
/// The label on the CRDs the add-on installed for Gatekeeper's kinds.
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "garrison");

/// The ConstraintTemplate resource.
pub fn constraint_templates() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("templates.gatekeeper.sh", "v1", "ConstraintTemplate"),
        "constrainttemplates",
    )
}

/// The resource of Constraints of `kind`.
pub fn constraints(kind: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("constraints.gatekeeper.sh", "v1beta1", kind),
        &kind.to_ascii_lowercase(),
    )
}

fn ours(crd: &CustomResourceDefinition) -> bool {
    crd.labels().get(MANAGED_BY.0).map(String::as_str) == Some(MANAGED_BY.1)
}

/// Whether the add-on keeps Gatekeeper's objects on the cluster (templates, and constraints
/// with their audit as status): only where Gatekeeper is not installed, so that the add-on
/// never hands Gatekeeper constraints to enforce. The ConstraintTemplate CRD is installed
/// when missing.
pub async fn gatekeeper_ours(spoke: &kube::Client) -> anyhow::Result<bool> {
    let crds: Api<CustomResourceDefinition> = Api::all(spoke.clone());
    // Gatekeeper's own Config CRD says it is installed, whoever made the template CRD.
    if crds.get_opt(GATEKEEPER_CONFIG_CRD).await?.is_some() {
        return Ok(false);
    }
    match crds.get_opt(TEMPLATE_CRD).await? {
        Some(crd) => Ok(ours(&crd)),
        None => {
            let crd = json!({
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": TEMPLATE_CRD, "labels": {MANAGED_BY.0: MANAGED_BY.1}},
                "spec": {"group": "templates.gatekeeper.sh",
                    "names": {"kind": "ConstraintTemplate", "listKind": "ConstraintTemplateList",
                        "plural": "constrainttemplates", "singular": "constrainttemplate"},
                    "scope": "Cluster",
                    "versions": [{"name": "v1", "served": true, "storage": true,
                        "subresources": {"status": {}},
                        "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                            "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                            "metadata": {"type": "object"},
                            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        }}}}]},
            });
            garrison_k8s::client::apply_crds(spoke, &[crd], MANAGER).await?;
            Ok(true)
        }
    }
}

/// Installs (or updates) the add-on's CRD for a constraint kind; a CRD someone else made for
/// the kind is left alone.
pub async fn constraint_crd(spoke: &kube::Client, mut crd: Value) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(spoke.clone());
    let name = crd["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if let Some(existing) = crds.get_opt(&name).await?
        && !ours(&existing)
    {
        return Ok(());
    }
    crd["metadata"]["labels"][MANAGED_BY.0] = json!(MANAGED_BY.1);
    garrison_k8s::client::apply_crds(spoke, &[crd], MANAGER).await
}

/// Deletes the add-on's constraint CRDs (and so their constraints) of kinds not in `kept`.
pub async fn drop_constraint_crds(
    spoke: &kube::Client,
    kept: &std::collections::BTreeSet<String>,
) -> kube::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(spoke.clone());
    for crd in crds
        .list(&ListParams::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1)))
        .await?
        .items
    {
        if crd.spec.group == "constraints.gatekeeper.sh" && !kept.contains(&crd.spec.names.kind) {
            crds.delete(&crd.name_any(), &DeleteParams::default())
                .await?;
        }
    }
    Ok(())
}

/// Writes cluster-scoped Gatekeeper object `o` of replica `policy`, and its `status`.
pub async fn write_gatekeeper(
    spoke: &kube::Client,
    ar: &ApiResource,
    policy: &str,
    o: &Value,
    status: Value,
) -> kube::Result<()> {
    let api: Api<DynamicObject> = Api::all_with(spoke.clone(), ar);
    let name = o
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let obj = json!({
        "apiVersion": ar.api_version, "kind": ar.kind,
        "metadata": {"name": name, "labels": labels_of(o, policy),
            "annotations": annotations_of(o)},
        "spec": o["spec"],
    });
    api.patch(name, &apply(), &Patch::Apply(&obj)).await?;
    merge_status(&api, name, &status).await
}

/// Deletes the add-on's objects of `ar` whose names are not in `kept`.
pub async fn drop_gatekeeper(
    spoke: &kube::Client,
    ar: &ApiResource,
    kept: &std::collections::BTreeSet<String>,
) -> kube::Result<()> {
    let api: Api<DynamicObject> = Api::all_with(spoke.clone(), ar);
    let list = match api.list(&ListParams::default().labels(POLICY_LABEL)).await {
        Ok(l) => l.items,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(e),
    };
    for o in list.iter().filter(|o| !kept.contains(&o.name_any())) {
        delete_if_present(&api, &o.name_any()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_from_a_template_are_strings_only_and_name_the_policy() {
        let o = json!({"metadata": {"labels": {"team": "a", "n": 1}, "annotations": "x"}});
        assert_eq!(
            labels_of(&o, "p.pol"),
            json!({"team": "a", POLICY_LABEL: "p.pol"})
        );
        assert_eq!(
            labels_of(&json!({"metadata": {"labels": "x"}}), "p.pol"),
            json!({POLICY_LABEL: "p.pol"})
        );
        assert_eq!(annotations_of(&o), json!({}));
    }
}
