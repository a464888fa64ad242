//! Template add-ons: a ClusterManagementAddOn that names an AddOnTemplate (its
//! `supportedConfigs` default for `addon.open-cluster-management.io/addontemplates`, or a
//! ManagedClusterAddOn's own `configs` entry) needs no controller of its own. For each of its
//! ManagedClusterAddOns the hub
//! - renders the template's `agentSpec` into the ManifestWork `addon-<name>-deploy-0` in the
//!   cluster namespace (label `open-cluster-management.io/addon-name`, owned by the
//!   ManagedClusterAddOn), with `{{CLUSTER_NAME}}`, `{{INSTALL_NAMESPACE}}` and
//!   `{{HUB_KUBECONFIG}}` replaced, and, as upstream, those variables as environment variables
//!   of every Deployment and DaemonSet container, and the add-on's hub kubeconfig Secret
//!   mounted at `/managed/hub-kubeconfig`;
//! - turns the template's `registration` into `status.registrations` (KubeClient with
//!   upstream's default subject; CustomSigner as given), which the agent registers as for any
//!   add-on;
//! - grants `hubPermissions` to the add-on's per-cluster group with RoleBindings
//!   `open-cluster-management:<addon>:<clusterrole|role>:agent`;
//! - reports health in Customized mode from the work: `Available` from the work's `Available`
//!   condition, `ManifestApplied` from its `Applied`.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use garrison_api::addon::v1alpha1::{
    AddOnTemplate, HubPermissionsBindingType, RegistrationType, Subject,
};
use garrison_api::status::{condition, find_condition, set_condition};
use garrison_api::{ClusterManagementAddOn, ManagedCluster, ManagedClusterAddOn, ManifestWork};
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::{CLIENT_SIGNER, Error, install_namespace};
use crate::cache::Informers;

const MANAGER: &str = "garrison-addon-template";
const ADDON_GROUP: &str = "addon.open-cluster-management.io";
/// Label naming the add-on on its ManifestWorks.
pub const ADDON_LABEL: &str = "open-cluster-management.io/addon-name";
/// Where the agent's hub kubeconfig is mounted in upstream's template agents.
pub const HUB_KUBECONFIG_PATH: &str = "/managed/hub-kubeconfig/kubeconfig";

/// The name of the work carrying a template add-on's agent.
pub fn work_name(addon: &str) -> String {
    format!("addon-{addon}-deploy-0")
}

/// The AddOnTemplate a ManagedClusterAddOn uses: its own `configs` entry for addontemplates, or
/// the ClusterManagementAddOn's default.
pub fn template_name(cma: &ClusterManagementAddOn, mca: &ManagedClusterAddOn) -> Option<String> {
    let own = serde_json::to_value(&mca.spec.configs).ok().and_then(|v| {
        v.as_array()?.iter().find_map(|c| {
            (c["group"] == ADDON_GROUP && c["resource"] == "addontemplates")
                .then(|| c["name"].as_str().map(String::from))
                .flatten()
        })
    });
    own.or_else(|| {
        let v = serde_json::to_value(&cma.spec.supported_configs).ok()?;
        v.as_array()?.iter().find_map(|c| {
            (c["group"] == ADDON_GROUP && c["resource"] == "addontemplates")
                .then(|| c["defaultConfig"]["name"].as_str().map(String::from))
                .flatten()
        })
    })
}

/// The namespace the agent registers in: the first Deployment's, else the first DaemonSet's,
/// else the ManagedClusterAddOn's install namespace.
pub fn agent_namespace(spec: &Value, fallback: &str) -> String {
    let manifests = spec["workload"]["manifests"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ["Deployment", "DaemonSet"]
        .iter()
        .find_map(|kind| {
            manifests
                .iter()
                .find(|m| m["kind"] == *kind)
                .and_then(|m| m["metadata"]["namespace"].as_str())
                .filter(|n| !n.is_empty())
                .map(String::from)
        })
        .unwrap_or_else(|| fallback.to_string())
}

/// Gives every Deployment and DaemonSet of the agent what upstream's template agents get: the
/// variables as environment variables, and with a KubeClient registration the add-on's hub
/// kubeconfig Secret mounted at `/managed/hub-kubeconfig`.
pub fn inject(spec: &mut Value, addon: &str, vars: &[(&str, String)], kube_client: bool) {
    let Some(manifests) = spec["workload"]["manifests"].as_array_mut() else {
        return;
    };
    for m in manifests {
        if m["kind"] != "Deployment" && m["kind"] != "DaemonSet" {
            continue;
        }
        let pod = &mut m["spec"]["template"]["spec"];
        if !pod.is_object() {
            continue;
        }
        if kube_client {
            let volumes = pod["volumes"].as_array().cloned().unwrap_or_default();
            if !volumes.iter().any(|v| v["name"] == "hub-kubeconfig") {
                let mut volumes = volumes;
                volumes.push(json!({"name": "hub-kubeconfig",
                    "secret": {"secretName": format!("{addon}-hub-kubeconfig")}}));
                pod["volumes"] = Value::Array(volumes);
            }
        }
        for c in pod["containers"].as_array_mut().into_iter().flatten() {
            let mut env = c["env"].as_array().cloned().unwrap_or_default();
            let mut keys: Vec<&(&str, String)> = vars.iter().collect();
            keys.sort_by_key(|(k, _)| *k);
            for (k, v) in keys {
                if !env.iter().any(|e| e["name"] == *k) {
                    env.push(json!({"name": k, "value": v}));
                }
            }
            c["env"] = Value::Array(env);
            if kube_client {
                let mut mounts = c["volumeMounts"].as_array().cloned().unwrap_or_default();
                if !mounts.iter().any(|v| v["name"] == "hub-kubeconfig") {
                    mounts.push(
                        json!({"name": "hub-kubeconfig", "mountPath": "/managed/hub-kubeconfig"}),
                    );
                }
                c["volumeMounts"] = Value::Array(mounts);
            }
        }
    }
}

/// Replaces `{{NAME}}` in every string of `v`.
pub fn substitute(v: &mut Value, vars: &[(&str, String)]) {
    match v {
        Value::String(s) => {
            for (k, val) in vars {
                let pat = format!("{{{{{k}}}}}");
                if s.contains(&pat) {
                    *s = s.replace(&pat, val);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, vars)),
        Value::Object(m) => m.values_mut().for_each(|x| substitute(x, vars)),
        _ => {}
    }
}

/// The subject upstream gives a template add-on's agent when its registration names none:
/// the agent is named `<addon>-agent`.
fn default_subject(cluster: &str, addon: &str) -> Subject {
    Subject {
        user: format!(
            "system:open-cluster-management:cluster:{cluster}:addon:{addon}:agent:{addon}-agent"
        ),
        groups: vec![
            garrison_pki::identity::addon_cluster_group(cluster, addon),
            format!("{}{addon}", garrison_pki::identity::ADDON_GROUP_PREFIX),
        ],
        organization_units: vec![],
    }
}

/// The registrations a template asks for, in a ManagedClusterAddOn's status shape.
pub fn registrations(tpl: &AddOnTemplate, cluster: &str) -> Vec<Value> {
    let addon = &tpl.spec.addon_name;
    let subject = |s: Option<Subject>| {
        serde_json::to_value(s.unwrap_or_else(|| default_subject(cluster, addon)))
            .unwrap_or(Value::Null)
    };
    tpl.spec
        .registration
        .iter()
        .flatten()
        .map(|r| match r.type_ {
            RegistrationType::KubeClient => {
                json!({"signerName": CLIENT_SIGNER, "subject": subject(None)})
            }
            RegistrationType::CustomSigner => {
                let cs = r.custom_signer.clone().unwrap_or_default();
                json!({"signerName": cs.signer_name, "subject": subject(cs.subject)})
            }
        })
        .collect()
}

/// Where a custom signer's CA Secret lives when the template names no namespace, as upstream.
pub const SIGNING_CA_NAMESPACE: &str = "open-cluster-management-hub";

/// A template's CustomSigner registration, for one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomSigner {
    /// The signer's name.
    pub signer_name: String,
    /// The subject the cluster's agent must ask for.
    pub subject: garrison_pki::CustomSubject,
    /// Namespace and name of the Secret (`tls.crt`, `tls.key`) holding the signing CA.
    pub signing_ca: (String, String),
}

/// The template's CustomSigner registration for `signer_name` on `cluster`, if it has one.
pub fn custom_signer(
    tpl: &AddOnTemplate,
    cluster: &str,
    signer_name: &str,
) -> Option<CustomSigner> {
    let cs = tpl
        .spec
        .registration
        .iter()
        .flatten()
        .filter(|r| r.type_ == RegistrationType::CustomSigner)
        .filter_map(|r| r.custom_signer.as_ref())
        .find(|cs| cs.signer_name == signer_name)?;
    let s = cs
        .subject
        .clone()
        .unwrap_or_else(|| default_subject(cluster, &tpl.spec.addon_name));
    Some(CustomSigner {
        signer_name: cs.signer_name.clone(),
        subject: garrison_pki::CustomSubject {
            user: s.user,
            groups: s.groups,
            organizational_units: s.organization_units,
        },
        signing_ca: (
            cs.signing_ca
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| SIGNING_CA_NAMESPACE.into()),
            cs.signing_ca.name.clone(),
        ),
    })
}

/// The AddOnTemplate a ManagedClusterAddOn uses, read from the hub: `None` when the add-on is
/// not a template add-on or its template does not exist.
pub async fn template_of(
    client: &kube::Client,
    cma: &ClusterManagementAddOn,
    mca: &ManagedClusterAddOn,
) -> Result<Option<AddOnTemplate>, kube::Error> {
    let Some(name) = template_name(cma, mca) else {
        return Ok(None);
    };
    Api::<AddOnTemplate>::all(client.clone())
        .get_opt(&name)
        .await
}

/// The hub RoleBindings a template's `hubPermissions` ask for: `(namespace, binding)`.
pub fn hub_bindings(tpl: &AddOnTemplate, mca: &ManagedClusterAddOn) -> Vec<(String, Value)> {
    let addon = &tpl.spec.addon_name;
    let cluster = mca.namespace().unwrap_or_default();
    let group = garrison_pki::identity::addon_cluster_group(&cluster, addon);
    let owner = json!([{"apiVersion": "addon.open-cluster-management.io/v1alpha1",
        "kind": "ManagedClusterAddOn", "name": mca.name_any(), "uid": mca.uid().unwrap_or_default()}]);
    let mut out = vec![];
    for r in tpl.spec.registration.iter().flatten() {
        let Some(kc) = r.kube_client.as_ref() else {
            continue;
        };
        for p in &kc.hub_permissions {
            let (ns, kind, role, suffix) = match p.type_ {
                HubPermissionsBindingType::CurrentCluster => {
                    let Some(cc) = &p.current_cluster else {
                        continue;
                    };
                    (
                        cluster.clone(),
                        "ClusterRole".to_string(),
                        cc.cluster_role_name.clone(),
                        "clusterrole",
                    )
                }
                HubPermissionsBindingType::SingleNamespace => {
                    let Some(sn) = &p.single_namespace else {
                        continue;
                    };
                    let kind = sn.role_ref.kind.clone();
                    let suffix = if kind == "ClusterRole" {
                        "clusterrole"
                    } else {
                        "role"
                    };
                    (sn.namespace.clone(), kind, sn.role_ref.name.clone(), suffix)
                }
            };
            let name = format!("open-cluster-management:{addon}:{suffix}:agent");
            // An owner in another namespace is not allowed; bindings outside the cluster
            // namespace are labelled and removed with the add-on instead.
            let mut meta = json!({"name": name, "namespace": ns,
                "labels": {ADDON_LABEL: addon, "open-cluster-management.io/addon-template-name": "",
                    "open-cluster-management.io/cluster-name": cluster}});
            if ns == cluster {
                meta["ownerReferences"] = owner.clone();
            }
            out.push((
                ns,
                json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": meta,
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}],
                }),
            ));
        }
    }
    out
}

async fn reconcile(
    mca: Arc<ManagedClusterAddOn>,
    client: Arc<kube::Client>,
) -> Result<Action, Error> {
    let name = mca.name_any();
    if mca.metadata.deletion_timestamp.is_some() || super::builtin(&name).is_some() {
        return Ok(Action::await_change());
    }
    let client = (*client).clone();
    let cmas: Api<ClusterManagementAddOn> = Api::all(client.clone());
    let Some(cma) = cmas.get_opt(&name).await? else {
        return Ok(Action::await_change());
    };
    let Some(tpl_name) = template_name(&cma, &mca) else {
        return Ok(Action::await_change());
    };
    let cluster = mca.namespace().unwrap_or_default();
    if Api::<ManagedCluster>::all(client.clone())
        .get_opt(&cluster)
        .await?
        .is_none()
    {
        return Ok(Action::requeue(Duration::from_secs(60)));
    }
    let mcas: Api<ManagedClusterAddOn> = Api::namespaced(client.clone(), &cluster);
    let tpl = match Api::<AddOnTemplate>::all(client.clone())
        .get_opt(&tpl_name)
        .await?
    {
        Some(t) => t,
        None => {
            let mut conditions = mca
                .status
                .as_ref()
                .map(|s| s.conditions.clone())
                .unwrap_or_default();
            set_condition(
                &mut conditions,
                condition(
                    "Configured",
                    "False",
                    "ConfigurationNotFound",
                    &format!("AddOnTemplate {tpl_name} not found"),
                ),
                Time(jiff::Timestamp::now()),
            );
            super::patch_status(&mcas, &mca, json!({"conditions": conditions})).await?;
            return Ok(Action::requeue(Duration::from_secs(10)));
        }
    };
    // The agent's manifests.
    let mut spec = serde_json::to_value(&tpl.spec.agent_spec).unwrap_or(Value::Null);
    let ns = agent_namespace(&spec, &install_namespace(&mca));
    let kube_client = tpl
        .spec
        .registration
        .iter()
        .flatten()
        .any(|r| r.type_ == RegistrationType::KubeClient);
    let mut vars = vec![
        ("CLUSTER_NAME", cluster.clone()),
        ("INSTALL_NAMESPACE", ns.clone()),
    ];
    if kube_client {
        vars.push(("HUB_KUBECONFIG", HUB_KUBECONFIG_PATH.to_string()));
    }
    substitute(&mut spec, &vars);
    inject(&mut spec, &name, &vars, kube_client);
    let works: Api<ManifestWork> = Api::namespaced(client.clone(), &cluster);
    let work = json!({
        "apiVersion": "work.open-cluster-management.io/v1", "kind": "ManifestWork",
        "metadata": {"name": work_name(&name), "namespace": cluster,
            "labels": {ADDON_LABEL: name},
            "ownerReferences": [{"apiVersion": "addon.open-cluster-management.io/v1alpha1",
                "kind": "ManagedClusterAddOn", "name": name, "uid": mca.uid().unwrap_or_default()}]},
        "spec": spec,
    });
    let applied = works
        .patch(
            &work_name(&name),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(work),
        )
        .await?;
    for (bns, binding) in hub_bindings(&tpl, &mca) {
        let api: Api<RoleBinding> = Api::namespaced(client.clone(), &bns);
        let bname = binding["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        api.patch(
            &bname,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(binding),
        )
        .await?;
    }
    // Status: registrations, namespace, health from the work.
    let now = Time(jiff::Timestamp::now());
    let mut conditions = mca
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let work_cond = |t: &str| {
        applied
            .status
            .as_ref()
            .and_then(|s| find_condition(&s.conditions, t))
            .cloned()
    };
    let applied_c = work_cond("Applied");
    let available_c = work_cond("Available");
    set_condition(
        &mut conditions,
        match &applied_c {
            Some(c) if c.status == "True" => condition(
                "ManifestApplied",
                "True",
                "AddonManifestApplied",
                "manifests of addon are applied successfully",
            ),
            _ => condition(
                "ManifestApplied",
                "False",
                "ManifestWorkApplyFailed",
                "the add-on's ManifestWork is not applied yet",
            ),
        },
        now.clone(),
    );
    set_condition(
        &mut conditions,
        match (&applied_c, &available_c) {
            (_, Some(c)) if c.status == "True" => condition(
                "Available",
                "True",
                "ProbeAvailable",
                &format!("{name} add-on is available."),
            ),
            (_, Some(c)) => condition("Available", "False", "WorkNotApplied", &c.message),
            (_, None) => condition(
                "Available",
                "Unknown",
                "WorkNotApplied",
                "Addon manifestWork is not applied yet",
            ),
        },
        now,
    );
    let status = json!({
        "namespace": ns,
        "registrations": registrations(&tpl, &cluster),
        "healthCheck": {"mode": "Customized"},
        "addOnMeta": cma.spec.add_on_meta,
        "relatedObjects": [{"group": ADDON_GROUP, "resource": "clustermanagementaddons", "name": name}],
        "conditions": conditions,
    });
    if !super::patch_status(&mcas, &mca, status).await? {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    Ok(Action::requeue(Duration::from_secs(60)))
}

fn error_policy(_: Arc<ManagedClusterAddOn>, e: &Error, _: Arc<kube::Client>) -> Action {
    tracing::warn!(error = %e, "template add-on reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the template add-on controller until its stream ends; a work of a template add-on
/// wakes its ManagedClusterAddOn.
pub async fn run(informers: Informers) {
    let client = informers.client().clone();
    let controller =
        crate::cache::controller::<ManagedClusterAddOn>(&informers, watcher::Config::default())
            .watches(
                Api::<ManifestWork>::all(client.clone()),
                watcher::Config::default().labels(ADDON_LABEL),
                |w: ManifestWork| {
                    let addon = w.labels().get(ADDON_LABEL)?.clone();
                    Some(ObjectRef::new(&addon).within(&w.namespace()?))
                },
            );
    let probe = crate::metrics::Probe::new("addon-template", &controller);
    controller
        .run(probe.timed(reconcile), error_policy, Arc::new(client))
        .for_each(|_| async {})
        .await;
}
