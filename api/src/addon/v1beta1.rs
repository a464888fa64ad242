//! `addon.open-cluster-management.io/v1beta1`: `ClusterManagementAddOn` and
//! `ManagedClusterAddOn`, served beside v1alpha1, which stays the stored version.
//!
//! What changed from v1alpha1, and how [`convert`] maps it both ways as upstream's conversion
//! does:
//! - ManagedClusterAddOn `spec.installNamespace` is gone; it travels in the annotation
//!   [`INSTALL_NAMESPACE_ANNOTATION`].
//! - Registrations name their kind: `type: kubeClient` (the `kubernetes.io/kube-apiserver-client`
//!   signer; v1alpha1's `status.kubeClientDriver` becomes its `driver`, `csr` by default) or
//!   `type: customSigner` (any other signer; `organizationUnit` becomes `organizationUnits`).
//! - `status.configReferences[]` lose their deprecated top-level `name` and `namespace`, which
//!   come back from `desiredConfig`.
//! - ClusterManagementAddOn `spec.supportedConfigs[].defaultConfig` becomes
//!   `spec.defaultConfigs[]`; a supported config without a default keeps its place under the
//!   reserved name [`RESERVED_NO_DEFAULT_CONFIG_NAME`]. The deprecated `addOnConfiguration` is
//!   gone, and `status.defaultconfigReferences` is spelled `defaultConfigReferences`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::v1alpha1::{
    AddOnConfig, AddOnMeta, ConfigGroupResource, ConfigSpecHash, DefaultConfigReference,
    HealthCheck, InstallProgression, InstallStrategy, ObjectReference,
};
use crate::lenient::null_as_default;

/// Annotation that carries v1alpha1's `spec.installNamespace` on v1beta1 objects.
pub const INSTALL_NAMESPACE_ANNOTATION: &str =
    "addon.open-cluster-management.io/v1alpha1-install-namespace";

/// Name standing for "no default configuration" in v1beta1 `defaultConfigs`; not a valid
/// object name, so it never names a real configuration.
pub const RESERVED_NO_DEFAULT_CONFIG_NAME: &str = "__reserved_no_default__";

/// The signer of hub client certificates.
const KUBE_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";

/// Desired state of an add-on registration (v1beta1).
// The printer columns repeat `type_ = "string"`, which clippy takes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "addon.open-cluster-management.io",
    version = "v1beta1",
    kind = "ClusterManagementAddOn",
    status = "ClusterManagementAddOnStatus",
    shortname = "cma",
    shortname = "cmas",
    derive = "PartialEq",
    doc = "Registers an add-on with the hub. Cluster-scoped; its name is the name of the \
           ManagedClusterAddOns that install the add-on on single clusters.",
    printcolumn(
        name = "DISPLAY NAME",
        type_ = "string",
        json_path = ".spec.addOnMeta.displayName"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterManagementAddOnSpec {
    /// Display name and description of the add-on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_on_meta: Option<AddOnMeta>,

    /// Default configurations of the add-on, which install strategies and single add-ons
    /// may override.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub default_configs: Vec<AddOnConfig>,

    /// Which clusters get the add-on installed, and with which configurations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_strategy: Option<InstallStrategy>,
}

/// Observed state of an add-on registration (v1beta1).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterManagementAddOnStatus {
    /// Default configurations of the add-on and their desired spec hashes.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub default_config_references: Vec<DefaultConfigReference>,

    /// Rollout progress of configurations per install placement.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub install_progressions: Vec<InstallProgression>,
}

/// Desired state of an add-on on one cluster (v1beta1).
// The printer columns repeat `type_ = "string"`, which clippy takes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "addon.open-cluster-management.io",
    version = "v1beta1",
    kind = "ManagedClusterAddOn",
    namespaced,
    status = "ManagedClusterAddOnStatus",
    shortname = "mca",
    shortname = "mcas",
    derive = "PartialEq",
    doc = "An add-on installed on one managed cluster, holding its current state. Lives in the \
           cluster's namespace on the hub and is named after its ClusterManagementAddOn.",
    printcolumn(
        name = "Available",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Available\")].status"
    ),
    printcolumn(
        name = "Degraded",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Degraded\")].status"
    ),
    printcolumn(
        name = "Progressing",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Progressing\")].status"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ManagedClusterAddOnSpec {
    /// Configurations for this add-on instance, overriding the registration's defaults.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub configs: Vec<AddOnConfig>,
}

/// Observed state of an add-on on one cluster (v1beta1).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedClusterAddOnStatus {
    /// Conditions such as `Available`, `Degraded` and `Progressing`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conditions: Vec<Condition>,

    /// Objects related to the add-on, such as its ClusterManagementAddOn.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub related_objects: Vec<ObjectReference>,

    /// Display name and description, copied from the ClusterManagementAddOn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_on_meta: Option<AddOnMeta>,

    /// Configuration types this instance may override.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["group", "resource"]
    ))]
    pub supported_configs: Vec<ConfigGroupResource>,

    /// Configurations in effect for this instance.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub config_references: Vec<ConfigReference>,

    /// Namespace on the managed cluster holding the agent's registration secrets and lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// How the agent registers with the hub; one credential per entry.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub registrations: Vec<RegistrationConfig>,

    /// How the add-on's health is checked; by lease by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
}

/// A configuration in effect for an add-on instance (v1beta1).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigReference {
    /// API group of the configuration type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = ""))]
    pub group: Option<String>,

    /// Resource name (plural) of the configuration type.
    #[schemars(length(min = 1))]
    pub resource: String,

    /// Deprecated: generation of the object last observed; use `lastAppliedConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_observed_generation: Option<i64>,

    /// The desired configuration and its spec hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_config: Option<ConfigSpecHash>,

    /// The configuration last applied successfully, and its spec hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_config: Option<ConfigSpecHash>,
}

/// How an add-on agent registers with the hub (v1beta1).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationConfig {
    /// `kubeClient` for a hub client credential, `customSigner` for a certificate of
    /// another signer.
    #[serde(rename = "type")]
    pub type_: RegistrationType,

    /// The hub client credential, when `type` is `kubeClient`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_client: Option<KubeClientConfig>,

    /// The certificate, when `type` is `customSigner`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_signer: Option<CustomSignerConfig>,
}

/// Kind of an add-on registration.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RegistrationType {
    /// A credential for the hub's API server.
    #[default]
    #[serde(rename = "kubeClient")]
    KubeClient,
    /// A certificate from another signer.
    #[serde(rename = "customSigner")]
    CustomSigner,
}

/// A hub client credential of an add-on agent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeClientConfig {
    /// Identity of the agent on the hub; a default per add-on and cluster when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<KubeClientSubject>,

    /// How the credential is obtained: `csr` (a client certificate) or `token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
}

/// Identity of an add-on agent on the hub.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeClientSubject {
    /// User name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,

    /// Groups.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub groups: Vec<String>,
}

/// A certificate of another signer for an add-on agent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomSignerConfig {
    /// Signer of the certificate request.
    #[schemars(
        length(min = 5, max = 571),
        regex(pattern = r"^([a-z0-9][a-z0-9-]*[a-z0-9]\.)+[a-z]+\/[a-z0-9-\.]+$")
    )]
    pub signer_name: String,

    /// Subject of the certificate; a default per add-on and cluster when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
}

/// Certificate subject of an add-on agent (v1beta1).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// User name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,

    /// Groups.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub groups: Vec<String>,

    /// Organizational units.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub organization_units: Vec<String>,
}

/// Converts a ClusterManagementAddOn or ManagedClusterAddOn (JSON, either version) to
/// `api_version` (`addon.open-cluster-management.io/v1alpha1` or `/v1beta1`). Fields of one
/// version that the other has no place for are dropped, as upstream drops them.
pub fn convert(obj: &Value, api_version: &str) -> Result<Value, String> {
    let from = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let alpha = format!("{}/v1alpha1", super::GROUP);
    let beta = format!("{}/v1beta1", super::GROUP);
    let mut out = obj.clone();
    match (
        kind,
        from == alpha,
        api_version == beta,
        from == beta,
        api_version == alpha,
    ) {
        ("ManagedClusterAddOn", true, true, _, _) => mca_to_beta(&mut out),
        ("ManagedClusterAddOn", _, _, true, true) => mca_to_alpha(&mut out)?,
        ("ClusterManagementAddOn", true, true, _, _) => cma_to_beta(&mut out),
        ("ClusterManagementAddOn", _, _, true, true) => cma_to_alpha(&mut out),
        _ if from == api_version => {}
        _ => {
            return Err(format!(
                "cannot convert {kind} from {from:?} to {api_version:?}"
            ));
        }
    }
    out["apiVersion"] = json!(api_version);
    Ok(out)
}

fn object_at<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    v.get_mut(key).and_then(Value::as_object_mut)
}

/// Keeps only the entries of `src` named in `keys`, renamed as the pairs say.
fn pick(src: &Value, keys: &[(&str, &str)]) -> Value {
    let mut out = Map::new();
    for (from, to) in keys {
        if let Some(v) = src.get(*from).filter(|v| !v.is_null()) {
            out.insert((*to).to_string(), v.clone());
        }
    }
    Value::Object(out)
}

fn mca_to_beta(obj: &mut Value) {
    if let Some(ns) = object_at(obj, "spec")
        .and_then(|s| s.remove("installNamespace"))
        .and_then(|v| v.as_str().map(str::to_string))
        .filter(|ns| !ns.is_empty())
    {
        if !obj["metadata"]["annotations"].is_object() {
            obj["metadata"]["annotations"] = json!({});
        }
        obj["metadata"]["annotations"][INSTALL_NAMESPACE_ANNOTATION] = json!(ns);
    }
    let Some(status) = object_at(obj, "status") else {
        return;
    };
    let driver = status
        .remove("kubeClientDriver")
        .and_then(|d| d.as_str().map(str::to_string))
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "csr".into());
    status.remove("addOnConfiguration");
    if let Some(regs) = status
        .get_mut("registrations")
        .and_then(Value::as_array_mut)
    {
        for reg in regs.iter_mut() {
            let subject = reg.get("subject").cloned().unwrap_or(json!({}));
            *reg = if reg["signerName"].as_str() == Some(KUBE_CLIENT_SIGNER) {
                json!({"type": "kubeClient", "kubeClient": {
                    "subject": pick(&subject, &[("user", "user"), ("groups", "groups")]),
                    "driver": driver,
                }})
            } else {
                json!({"type": "customSigner", "customSigner": {
                    "signerName": reg["signerName"],
                    "subject": pick(&subject, &[("user", "user"), ("groups", "groups"), ("organizationUnit", "organizationUnits")]),
                }})
            };
        }
    }
    if let Some(refs) = status
        .get_mut("configReferences")
        .and_then(Value::as_array_mut)
    {
        for r in refs.iter_mut().filter_map(Value::as_object_mut) {
            let name = r.remove("name");
            let namespace = r.remove("namespace");
            // An old writer set only the deprecated name and namespace: they are the desired
            // configuration, whose hash nobody has computed yet.
            if !r.get("desiredConfig").is_some_and(Value::is_object)
                && let Some(name) = name.filter(|n| n.as_str().is_some_and(|n| !n.is_empty()))
            {
                let mut desired = json!({"name": name, "specHash": ""});
                if let Some(ns) = namespace.filter(|n| n.as_str().is_some_and(|n| !n.is_empty())) {
                    desired["namespace"] = ns;
                }
                r.insert("desiredConfig".into(), desired);
            }
        }
    }
}

fn mca_to_alpha(obj: &mut Value) -> Result<(), String> {
    let install_ns = obj["metadata"]["annotations"][INSTALL_NAMESPACE_ANNOTATION]
        .as_str()
        .map(str::to_string);
    if let Some(ns) = install_ns {
        if !obj["spec"].is_object() {
            obj["spec"] = json!({});
        }
        obj["spec"]["installNamespace"] = json!(ns);
    }
    let Some(status) = object_at(obj, "status") else {
        return Ok(());
    };
    let mut driver = None;
    if let Some(regs) = status
        .get_mut("registrations")
        .and_then(Value::as_array_mut)
    {
        for (i, reg) in regs.iter_mut().enumerate() {
            let member = match reg["type"].as_str() {
                Some("kubeClient") => "kubeClient",
                _ => "customSigner",
            };
            if !reg[member].is_object() {
                return Err(format!(
                    "status.registrations[{i}]: type {:?} without its {member} settings",
                    reg["type"].as_str().unwrap_or_default()
                ));
            }
            *reg = if member == "kubeClient" {
                let kc = &reg["kubeClient"];
                if driver.is_none() {
                    driver = kc["driver"].as_str().map(str::to_string);
                }
                let subject = pick(&kc["subject"], &[("user", "user"), ("groups", "groups")]);
                json!({"signerName": KUBE_CLIENT_SIGNER, "subject": subject})
            } else {
                let cs = &reg["customSigner"];
                let subject = pick(
                    &cs["subject"],
                    &[
                        ("user", "user"),
                        ("groups", "groups"),
                        ("organizationUnits", "organizationUnit"),
                    ],
                );
                json!({"signerName": cs["signerName"], "subject": subject})
            };
            // v1alpha1 requires `user`; an empty one stands for "the default subject".
            if reg["subject"].as_object().is_some_and(Map::is_empty) {
                reg.as_object_mut().map(|r| r.remove("subject"));
            } else if reg["subject"]["user"].is_null() {
                reg["subject"]["user"] = json!("");
            }
        }
    }
    if let Some(d) = driver {
        status.insert("kubeClientDriver".into(), json!(d));
    }
    if let Some(refs) = status
        .get_mut("configReferences")
        .and_then(Value::as_array_mut)
    {
        for r in refs.iter_mut() {
            let desired = r["desiredConfig"].clone();
            if let (Some(r), Some(name)) = (r.as_object_mut(), desired["name"].as_str()) {
                r.insert("name".into(), json!(name));
                if let Some(ns) = desired["namespace"].as_str() {
                    r.insert("namespace".into(), json!(ns));
                }
            }
        }
    }
    Ok(())
}

fn cma_to_beta(obj: &mut Value) {
    if let Some(spec) = object_at(obj, "spec") {
        spec.remove("addOnConfiguration");
        if let Some(Value::Array(supported)) = spec.remove("supportedConfigs") {
            let defaults: Vec<Value> = supported
                .iter()
                .map(|c| {
                    let mut d = pick(c, &[("group", "group"), ("resource", "resource")]);
                    match c.get("defaultConfig").filter(|d| d.is_object()) {
                        Some(dc) => {
                            d["name"] = dc["name"].clone();
                            if let Some(ns) = dc.get("namespace").filter(|n| !n.is_null()) {
                                d["namespace"] = ns.clone();
                            }
                        }
                        None => d["name"] = json!(RESERVED_NO_DEFAULT_CONFIG_NAME),
                    }
                    d
                })
                .collect();
            if !defaults.is_empty() {
                spec.insert("defaultConfigs".into(), Value::Array(defaults));
            }
        }
    }
    if let Some(status) = object_at(obj, "status")
        && let Some(refs) = status.remove("defaultconfigReferences")
    {
        status.insert("defaultConfigReferences".into(), refs);
    }
}

fn cma_to_alpha(obj: &mut Value) {
    if let Some(spec) = object_at(obj, "spec")
        && let Some(Value::Array(defaults)) = spec.remove("defaultConfigs")
    {
        let supported: Vec<Value> = defaults
            .iter()
            .map(|d| {
                let mut c = pick(d, &[("group", "group"), ("resource", "resource")]);
                let name = d["name"].as_str().unwrap_or_default();
                if !name.is_empty() && name != RESERVED_NO_DEFAULT_CONFIG_NAME {
                    c["defaultConfig"] = pick(d, &[("name", "name"), ("namespace", "namespace")]);
                }
                c
            })
            .collect();
        spec.insert("supportedConfigs".into(), Value::Array(supported));
    }
    if let Some(status) = object_at(obj, "status")
        && let Some(refs) = status.remove("defaultConfigReferences")
    {
        status.insert("defaultconfigReferences".into(), refs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALPHA: &str = "addon.open-cluster-management.io/v1alpha1";
    const BETA: &str = "addon.open-cluster-management.io/v1beta1";

    #[test]
    fn a_managed_cluster_addon_converts_as_upstream_converts_it_and_back() {
        let alpha = json!({
            "apiVersion": ALPHA, "kind": "ManagedClusterAddOn",
            "metadata": {"name": "policy", "namespace": "c1"},
            "spec": {"installNamespace": "addons", "configs": [{"group": "", "resource": "configmaps", "name": "cfg"}]},
            "status": {
                "namespace": "addons",
                "kubeClientDriver": "token",
                "registrations": [
                    {"signerName": "kubernetes.io/kube-apiserver-client", "subject": {"user": "u", "groups": ["g"], "organizationUnit": ["ignored"]}},
                    {"signerName": "example.com/metrics", "subject": {"user": "m", "organizationUnit": ["ou"]}},
                ],
                "configReferences": [{"group": "", "resource": "configmaps", "name": "cfg", "namespace": "c1",
                    "desiredConfig": {"name": "cfg", "namespace": "c1", "specHash": "h"}}],
            },
        });
        let beta = convert(&alpha, BETA).unwrap();
        assert_eq!(
            beta,
            json!({
                "apiVersion": BETA, "kind": "ManagedClusterAddOn",
                "metadata": {"name": "policy", "namespace": "c1", "annotations": {INSTALL_NAMESPACE_ANNOTATION: "addons"}},
                "spec": {"configs": [{"group": "", "resource": "configmaps", "name": "cfg"}]},
                "status": {
                    "namespace": "addons",
                    "registrations": [
                        {"type": "kubeClient", "kubeClient": {"subject": {"user": "u", "groups": ["g"]}, "driver": "token"}},
                        {"type": "customSigner", "customSigner": {"signerName": "example.com/metrics", "subject": {"user": "m", "organizationUnits": ["ou"]}}},
                    ],
                    "configReferences": [{"group": "", "resource": "configmaps", "desiredConfig": {"name": "cfg", "namespace": "c1", "specHash": "h"}}],
                },
            })
        );
        let back = convert(&beta, ALPHA).unwrap();
        let mut expected = alpha.clone();
        // What v1beta1 has no place for is gone; the annotation stays, as upstream keeps it.
        expected["status"]["registrations"][0]["subject"]
            .as_object_mut()
            .unwrap()
            .remove("organizationUnit");
        expected["metadata"]["annotations"] = json!({INSTALL_NAMESPACE_ANNOTATION: "addons"});
        assert_eq!(back, expected);
        // Without a driver, kubeClient's driver is csr.
        let mut no_driver = alpha.clone();
        no_driver["status"]
            .as_object_mut()
            .unwrap()
            .remove("kubeClientDriver");
        let beta = convert(&no_driver, BETA).unwrap();
        assert_eq!(
            beta["status"]["registrations"][0]["kubeClient"]["driver"],
            "csr"
        );
    }

    #[test]
    fn a_cluster_management_addon_keeps_supported_configs_without_defaults() {
        let alpha = json!({
            "apiVersion": ALPHA, "kind": "ClusterManagementAddOn",
            "metadata": {"name": "policy"},
            "spec": {
                "addOnMeta": {"displayName": "Policy"},
                "addOnConfiguration": {"crdName": "x"},
                "supportedConfigs": [
                    {"group": "addon.open-cluster-management.io", "resource": "addondeploymentconfigs", "defaultConfig": {"name": "d", "namespace": "ns"}},
                    {"group": "", "resource": "configmaps"},
                ],
                "installStrategy": {"type": "Manual"},
            },
            "status": {"defaultconfigReferences": [{"group": "", "resource": "configmaps"}]},
        });
        let beta = convert(&alpha, BETA).unwrap();
        assert_eq!(
            beta["spec"],
            json!({
                "addOnMeta": {"displayName": "Policy"},
                "defaultConfigs": [
                    {"group": "addon.open-cluster-management.io", "resource": "addondeploymentconfigs", "name": "d", "namespace": "ns"},
                    {"group": "", "resource": "configmaps", "name": RESERVED_NO_DEFAULT_CONFIG_NAME},
                ],
                "installStrategy": {"type": "Manual"},
            })
        );
        assert_eq!(
            beta["status"],
            json!({"defaultConfigReferences": [{"group": "", "resource": "configmaps"}]})
        );
        let back = convert(&beta, ALPHA).unwrap();
        let mut expected = alpha.clone();
        expected["spec"]
            .as_object_mut()
            .unwrap()
            .remove("addOnConfiguration");
        assert_eq!(back, expected);
    }

    #[test]
    fn old_config_references_and_incomplete_registrations() {
        let alpha = json!({
            "apiVersion": ALPHA, "kind": "ManagedClusterAddOn", "metadata": {"name": "a"},
            "status": {"configReferences": [{"resource": "configmaps", "name": "cfg", "namespace": "c1"}]},
        });
        let beta = convert(&alpha, BETA).unwrap();
        assert_eq!(
            beta["status"]["configReferences"],
            json!([{"resource": "configmaps", "desiredConfig": {"name": "cfg", "namespace": "c1", "specHash": ""}}])
        );
        let incomplete = json!({
            "apiVersion": BETA, "kind": "ManagedClusterAddOn", "metadata": {"name": "a"},
            "status": {"registrations": [{"type": "customSigner"}]},
        });
        let e = convert(&incomplete, ALPHA).unwrap_err();
        assert!(e.contains("without its customSigner settings"), "{e}");
    }

    #[test]
    fn other_kinds_and_versions_are_refused() {
        let obj = json!({"apiVersion": ALPHA, "kind": "AddOnTemplate"});
        assert!(convert(&obj, BETA).is_err());
        let obj = json!({"apiVersion": "addon.open-cluster-management.io/v2", "kind": "ManagedClusterAddOn"});
        assert!(convert(&obj, ALPHA).is_err());
        let same = json!({"apiVersion": BETA, "kind": "ManagedClusterAddOn"});
        assert_eq!(convert(&same, BETA).unwrap(), same);
    }
}
