//! `addon.open-cluster-management.io/v1alpha1`: the `ClusterManagementAddOn`,
//! `ManagedClusterAddOn`, `AddOnTemplate` and `AddOnDeploymentConfig` kinds.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::api::rbac::v1::RoleRef;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cluster::v1alpha1::RolloutStrategy;
use crate::lenient::null_as_default;
use crate::work::v1::ManifestWorkSpec;

/// Namespace add-on agents are installed in unless configured otherwise.
pub const DEFAULT_AGENT_INSTALL_NAMESPACE: &str = "open-cluster-management-agent-addon";

/// Desired state of an add-on registration: its description, configuration types and
/// install strategy.
// The printer columns repeat `type_ = "string"`, which clippy takes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "addon.open-cluster-management.io",
    version = "v1alpha1",
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
    ),
    printcolumn(
        name = "CRD NAME",
        type_ = "string",
        json_path = ".spec.addOnConfiguration.crdName"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterManagementAddOnSpec {
    /// Display name and description of the add-on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_on_meta: Option<AddOnMeta>,

    /// Deprecated: the CRD and object configuring the add-on; use `supportedConfigs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_on_configuration: Option<ConfigCoordinates>,

    /// Configuration types the add-on supports, with optional default configurations.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["group", "resource"]
    ))]
    pub supported_configs: Vec<ConfigMeta>,

    /// Which clusters get the add-on installed automatically; none (`Manual`) by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = {"type": "Manual"}))]
    pub install_strategy: Option<InstallStrategy>,
}

/// Display name and description of an add-on.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddOnMeta {
    /// Name shown for the add-on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,

    /// Description of the add-on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Deprecated location of an add-on's configuration CRD and object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigCoordinates {
    /// Name of the CRD configuring the add-on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crd_name: Option<String>,

    /// Name of the object configuring the add-on, when it is the same on every cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cr_name: Option<String>,

    /// Generation of the configuring object last observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_observed_generation: Option<i64>,
}

/// A configuration type supported by an add-on.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMeta {
    /// API group of the configuration type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = ""))]
    pub group: Option<String>,

    /// Resource name (plural) of the configuration type.
    #[schemars(length(min = 1))]
    pub resource: String,

    /// Configuration used by every add-on instance that sets none of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_config: Option<ConfigReferent>,
}

/// Group and resource of a configuration type.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigGroupResource {
    /// API group of the configuration type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = ""))]
    pub group: Option<String>,

    /// Resource name (plural) of the configuration type.
    #[schemars(length(min = 1))]
    pub resource: String,
}

/// Namespace and name of a configuration object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigReferent {
    /// Namespace of the object; unset for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// Name of the object.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// A configuration object of an add-on: its type and its namespace and name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddOnConfig {
    /// API group of the configuration type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = ""))]
    pub group: Option<String>,

    /// Resource name (plural) of the configuration type.
    #[schemars(length(min = 1))]
    pub resource: String,

    /// Namespace of the object; unset for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// Name of the object.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// A configuration object with the hash of its spec.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigSpecHash {
    /// Namespace of the object; unset for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// Name of the object.
    #[schemars(length(min = 1))]
    pub name: String,

    /// Hash of the object's spec.
    pub spec_hash: String,
}

/// Which clusters get an add-on installed automatically.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstallStrategy {
    /// `Manual` installs nothing; `Placements` installs on the clusters the placements select.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Manual"))]
    pub type_: Option<InstallStrategyType>,

    /// Placements whose clusters get the add-on; for a cluster in several, the last wins.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["namespace", "name"]
    ))]
    pub placements: Vec<PlacementStrategy>,
}

/// Kind of add-on install strategy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum InstallStrategyType {
    /// No automatic installation.
    Manual,
    /// Install on the clusters selected by the listed placements.
    Placements,
}

/// A placement whose clusters get an add-on, with configurations and rollout for them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementStrategy {
    /// Namespace of the placement.
    #[schemars(length(min = 1))]
    pub namespace: String,

    /// Name of the placement.
    #[schemars(length(min = 1))]
    pub name: String,

    /// Configurations for the add-on on these clusters.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub configs: Vec<AddOnConfig>,

    /// How configuration changes are rolled out to these clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = {"type": "All"}))]
    pub rollout_strategy: Option<RolloutStrategy>,
}

/// Observed state of an add-on registration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterManagementAddOnStatus {
    /// Default configurations of the add-on and their desired spec hashes.
    #[serde(
        default,
        rename = "defaultconfigReferences",
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

/// A default configuration of an add-on and its desired spec hash.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefaultConfigReference {
    /// API group of the configuration type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = ""))]
    pub group: Option<String>,

    /// Resource name (plural) of the configuration type.
    #[schemars(length(min = 1))]
    pub resource: String,

    /// The configuration object and its desired spec hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_config: Option<ConfigSpecHash>,
}

/// Rollout progress of configurations for one install placement.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstallProgression {
    /// Namespace of the placement.
    #[schemars(length(min = 1))]
    pub namespace: String,

    /// Name of the placement.
    #[schemars(length(min = 1))]
    pub name: String,

    /// Configurations being rolled out and how far they got.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub config_references: Vec<InstallConfigReference>,

    /// Conditions of the rollout.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conditions: Vec<Condition>,
}

/// A configuration being rolled out, with its desired, last known good and last applied
/// spec hashes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstallConfigReference {
    /// API group of the configuration type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = ""))]
    pub group: Option<String>,

    /// Resource name (plural) of the configuration type.
    #[schemars(length(min = 1))]
    pub resource: String,

    /// The desired configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_config: Option<ConfigSpecHash>,

    /// The last configuration known to work (on the canary clusters, for canary rollouts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_known_good_config: Option<ConfigSpecHash>,

    /// The configuration last applied to every cluster of the placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_config: Option<ConfigSpecHash>,
}

/// Desired state of an add-on on one cluster: where to install it and how to configure it.
// The printer columns repeat `type_ = "string"`, which clippy takes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "addon.open-cluster-management.io",
    version = "v1alpha1",
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
    /// Namespace on the managed cluster to install the agent in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        extend("default" = DEFAULT_AGENT_INSTALL_NAMESPACE),
        length(max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub install_namespace: Option<String>,

    /// Configurations for this add-on instance, overriding the registration's defaults.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub configs: Vec<AddOnConfig>,
}

/// Observed state of an add-on on one cluster.
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

    /// Deprecated: the CRD and object configuring the add-on; use `configReferences`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_on_configuration: Option<ConfigCoordinates>,

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

    /// How the agent registers with the hub; one certificate request per entry.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub registrations: Vec<RegistrationConfig>,

    /// How the add-on's health is checked; by lease by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,

    /// How the agent's hub client credentials are obtained for the
    /// `kubernetes.io/kube-apiserver-client` registration: `csr` or `token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_client_driver: Option<String>,
}

/// Reference to an object related to an add-on.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// API group of the object.
    pub group: String,

    /// Resource name (plural) of the object.
    pub resource: String,

    /// Namespace of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// Name of the object.
    pub name: String,
}

/// A configuration in effect for an add-on instance.
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

    /// Deprecated: namespace of the object; use `desiredConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// Deprecated: name of the object; use `desiredConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

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

/// How an add-on agent registers with the hub: one certificate signing request.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationConfig {
    /// Signer of the agent's certificate request.
    #[schemars(
        length(min = 5, max = 571),
        regex(pattern = r"^([a-z0-9][a-z0-9-]*[a-z0-9]\.)+[a-z]+\/[a-z0-9-\.]+$")
    )]
    pub signer_name: String,

    /// Subject of the agent's certificate; a default per add-on and cluster when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
}

/// Certificate subject of an add-on agent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// User name.
    pub user: String,

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
        rename = "organizationUnit",
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub organization_units: Vec<String>,
}

/// How an add-on's health is checked.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// Health check mode; `Lease` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Lease"))]
    pub mode: Option<HealthCheckMode>,
}

/// Mode of an add-on health check.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum HealthCheckMode {
    /// The agent renews a lease in its namespace, and the registration agent watches it.
    Lease,
    /// The add-on reports its health itself.
    Customized,
}

/// Desired state of an add-on template: the agent's manifests and its registrations.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "addon.open-cluster-management.io",
    version = "v1alpha1",
    kind = "AddOnTemplate",
    derive = "PartialEq",
    doc = "Describes how to deploy an add-on's agent and how the agent registers with the hub, \
           so the add-on needs no controller of its own. Cluster-scoped, used on the hub only.",
    printcolumn(name = "ADDON NAME", type_ = "string", json_path = ".spec.addonName")
)]
#[serde(rename_all = "camelCase")]
pub struct AddOnTemplateSpec {
    /// Name of the add-on the template belongs to.
    pub addon_name: String,

    /// Manifests of the agent and how to apply them, as in a ManifestWork.
    pub agent_spec: ManifestWorkSpec,

    /// How the agent registers with the hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration: Option<Vec<RegistrationSpec>>,
}

/// How an add-on agent from a template registers with the hub.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationSpec {
    /// Kind of registration.
    #[serde(rename = "type")]
    pub type_: RegistrationType,

    /// Settings of a `KubeClient` registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_client: Option<KubeClientRegistrationConfig>,

    /// Settings of a `CustomSigner` registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_signer: Option<CustomSignerRegistrationConfig>,
}

/// Kind of add-on agent registration.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum RegistrationType {
    /// A client certificate for the hub API server, signed by
    /// `kubernetes.io/kube-apiserver-client`.
    KubeClient,
    /// A client certificate from a custom signer, for endpoints of the add-on's own.
    CustomSigner,
}

/// Settings of a `KubeClient` registration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeClientRegistrationConfig {
    /// Permissions the agent gets on the hub.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub hub_permissions: Vec<HubPermissionConfig>,
}

/// A permission of an add-on agent on the hub: a role bound to the agent's group.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HubPermissionConfig {
    /// Where the role is bound.
    #[serde(rename = "type")]
    pub type_: HubPermissionsBindingType,

    /// Settings of a `CurrentCluster` binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_cluster: Option<CurrentClusterBindingConfig>,

    /// Settings of a `SingleNamespace` binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_namespace: Option<SingleNamespaceBindingConfig>,
}

/// Where an add-on agent's hub permission is bound.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum HubPermissionsBindingType {
    /// In the managed cluster's namespace on the hub.
    CurrentCluster,
    /// In one given namespace on the hub.
    SingleNamespace,
}

/// Settings of a `CurrentCluster` hub permission.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CurrentClusterBindingConfig {
    /// Cluster role bound in each cluster namespace; it must exist on the hub.
    pub cluster_role_name: String,
}

/// Settings of a `SingleNamespace` hub permission.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SingleNamespaceBindingConfig {
    /// Namespace the role is bound in.
    pub namespace: String,

    /// Role or cluster role to bind; it must exist on the hub.
    pub role_ref: RoleRef,
}

/// Settings of a `CustomSigner` registration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomSignerRegistrationConfig {
    /// Signer of the agent's certificate request.
    #[schemars(
        length(min = 5, max = 571),
        regex(pattern = r"^([a-z0-9-]+\.)+[a-z]+\/[a-z0-9-\.]+$")
    )]
    pub signer_name: String,

    /// Subject of the agent's certificate; a default per add-on and cluster when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,

    /// Secret holding the CA that signs the requests.
    #[serde(rename = "signingCA")]
    pub signing_ca: SigningCaRef,
}

/// Reference to a `kubernetes.io/tls` secret holding a signing CA.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigningCaRef {
    /// Namespace of the secret; the add-on manager's namespace when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// Name of the secret.
    pub name: String,
}

/// Desired deployment settings of an add-on's agents.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "addon.open-cluster-management.io",
    version = "v1alpha1",
    kind = "AddOnDeploymentConfig",
    namespaced,
    derive = "PartialEq",
    doc = "Settings that customize how an add-on's agents are deployed: variables, node \
           placement, image mirrors, proxy, install namespace, resources and replicas."
)]
#[serde(rename_all = "camelCase")]
pub struct AddOnDeploymentConfigSpec {
    /// Name-value variables the add-on renders its agent with.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["name"]
    ))]
    pub customized_variables: Vec<CustomizedVariable>,

    /// Node selection and tolerations for the agent pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_placement: Option<NodePlacement>,

    /// Image registry mirrors applied to the agent's images.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub registries: Vec<ImageMirror>,

    /// Proxy settings for the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_config: Option<ProxyConfig>,

    /// Namespace to install the agent in; an empty string keeps a template's own namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        extend("default" = DEFAULT_AGENT_INSTALL_NAMESPACE),
        length(max = 63),
        regex(pattern = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$")
    )]
    pub agent_install_namespace: Option<String>,

    /// Resource requirements of the agent's containers; the last match wins.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["containerID"]
    ))]
    pub resource_requirements: Vec<ContainerResourceRequirements>,

    /// Replica counts of the agent's workloads; the last match wins.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub replica_configs: Vec<ReplicaConfig>,
}

/// A named variable for rendering an add-on's agent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomizedVariable {
    /// Name of the variable.
    #[schemars(length(max = 255), regex(pattern = r"^[a-zA-Z_][_a-zA-Z0-9]*$"))]
    pub name: String,

    /// Value of the variable.
    #[schemars(length(max = 1024))]
    pub value: String,
}

/// Node selection and tolerations for an add-on's agent pods.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodePlacement {
    /// Node labels the pods must be scheduled on; all nodes when empty.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub node_selector: BTreeMap<String, String>,

    /// Node taints the pods tolerate.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tolerations: Vec<Toleration>,
}

/// An image registry mirror.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageMirror {
    /// Registry or image to use instead of the source.
    pub mirror: String,

    /// Registry or image to replace; every registry when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Proxy settings of an add-on's agent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxyConfig {
    /// Proxy URL for HTTP requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_proxy: Option<String>,

    /// Proxy URL for HTTPS requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_proxy: Option<String>,

    /// CA bundle to verify an HTTPS proxy with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::base64_bytes")]
    pub ca_bundle: Option<ByteString>,

    /// Comma-separated hosts, CIDRs and IPs to reach without the proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_proxy: Option<String>,
}

/// Resource requirements of matching agent containers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerResourceRequirements {
    /// `<resource type>:<resource name>:<container name>`, each part possibly `*`.
    #[serde(rename = "containerID")]
    #[schemars(regex(
        pattern = r"^(deployments|daemonsets|statefulsets|replicasets|jobs|cronjobs|pods|\*):.+:.+$"
    ))]
    pub container_id: String,

    /// Compute resources of the matching containers.
    pub resources: ResourceRequirements,
}

/// Replica count of matching agent workloads.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaConfig {
    /// `<resource type>:<resource name>`, each part possibly `*`.
    #[serde(rename = "workloadID")]
    #[schemars(regex(pattern = r"^(deployments|statefulsets|\*):.+$"))]
    pub workload_id: String,

    /// Number of replicas.
    #[schemars(range(min = 0))]
    pub replicas: i32,
}
