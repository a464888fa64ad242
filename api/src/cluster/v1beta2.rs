//! `cluster.open-cluster-management.io/v1beta2`: the `ManagedClusterSet` and
//! `ManagedClusterSetBinding` kinds.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::v1::ManagedNamespaceConfig;
use crate::lenient::{default_when_absent, null_as_default};

/// Desired state of a cluster set: how it selects its member clusters.
///
/// A missing spec decodes as the default spec, since upstream fills it in by default.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(remote = "Self")]
#[kube(
    group = "cluster.open-cluster-management.io",
    version = "v1beta2",
    kind = "ManagedClusterSet",
    status = "ManagedClusterSetStatus",
    shortname = "mclset",
    shortname = "mclsets",
    derive = "PartialEq",
    doc = "A group of managed clusters that workloads can be placed on. Cluster-scoped. \
           Workloads bound to a cluster set may run on its member clusters only.",
    printcolumn(
        name = "Empty",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"ClusterSetEmpty\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(
    description = "Desired state of a cluster set: how it selects its member clusters.",
    extend("default" = {"clusterSelector": {"selectorType": "ExclusiveClusterSetLabel"}})
)]
pub struct ManagedClusterSetSpec {
    /// How the set selects its member clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = {"selectorType": "ExclusiveClusterSetLabel"}))]
    pub cluster_selector: Option<ManagedClusterSelector>,

    /// Namespaces to manage on every member cluster.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["name"]
    ))]
    pub managed_namespaces: Vec<ManagedNamespaceConfig>,
}

default_when_absent!(ManagedClusterSetSpec);

/// How a cluster set selects its member clusters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedClusterSelector {
    /// Selection method; `ExclusiveClusterSetLabel` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "ExclusiveClusterSetLabel"))]
    pub selector_type: Option<SelectorType>,

    /// Label selector over managed clusters, used when the selector type is `LabelSelector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
}

/// Method a cluster set uses to select its member clusters.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum SelectorType {
    /// Members carry the label `cluster.open-cluster-management.io/clusterset=<set name>`;
    /// a cluster belongs to at most one such set.
    ExclusiveClusterSetLabel,
    /// Members match the set's label selector.
    LabelSelector,
}

/// Observed state of a cluster set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedClusterSetStatus {
    /// Conditions of the set, such as `ClusterSetEmpty`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

/// Desired state of a cluster set binding: which cluster set it binds into its namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "cluster.open-cluster-management.io",
    version = "v1beta2",
    kind = "ManagedClusterSetBinding",
    namespaced,
    status = "ManagedClusterSetBindingStatus",
    shortname = "mclsetbinding",
    shortname = "mclsetbindings",
    derive = "PartialEq",
    doc = "Makes a cluster set usable from a namespace: placements in the namespace may select \
           clusters of the bound set. Creating one needs the `managedclustersets/bind` permission."
)]
#[serde(rename_all = "camelCase")]
pub struct ManagedClusterSetBindingSpec {
    /// Name of the cluster set to bind; must equal the binding's own name and cannot change.
    #[schemars(length(min = 1))]
    pub cluster_set: String,
}

/// Observed state of a cluster set binding.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedClusterSetBindingStatus {
    /// Conditions of the binding, such as `Bound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

/// CEL rule upstream puts on `ManagedClusterSetBinding`: the binding's name must equal the
/// name of the cluster set it binds.
pub const BINDING_NAME_RULE: &str = "self.metadata.name == self.spec.clusterSet";

/// Message of [`BINDING_NAME_RULE`] when it fails.
pub const BINDING_NAME_RULE_MESSAGE: &str =
    "The ManagedClusterSetBinding must have the same name as the target ManagedClusterSet";
