//! `policy.open-cluster-management.io/v1beta1`: PolicySet, a group of Policies bound and
//! reported together.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::lenient::null_as_default;

/// A set of Policies in one namespace, bound together by a PlacementBinding.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "policy.open-cluster-management.io",
    version = "v1beta1",
    kind = "PolicySet",
    namespaced,
    status = "PolicySetStatus",
    shortname = "plcset",
    derive = "PartialEq",
    doc = "A group of Policies, bound to placements together and reported together."
)]
#[serde(rename_all = "camelCase")]
pub struct PolicySetSpec {
    /// What the set is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The names of its Policies, in the set's namespace.
    #[serde(default, deserialize_with = "null_as_default")]
    pub policies: Vec<String>,
    /// Clusters left out for single policies.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub exclusions: Vec<PolicySetExclusion>,
}

/// A Policy of the set not applied on some clusters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicySetExclusion {
    /// The Policy.
    pub policy_name: String,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The clusters it is not applied on.
    #[serde(default, deserialize_with = "null_as_default")]
    pub cluster_names: Vec<String>,
}

/// Observed state of a PolicySet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicySetStatus {
    /// The bindings and placements of the set.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub placement: Vec<PolicySetPlacement>,
    /// Compliant, NonCompliant or Pending, aggregated over its Policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliant: Option<String>,
    /// Why the state is what it is (missing or disabled policies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// The exclusions in effect.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub exclusions: Vec<PolicySetExclusionStatus>,
}

/// A binding of the set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicySetPlacement {
    /// The PlacementBinding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement_binding: Option<String>,
    /// The Placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
}

/// An exclusion in effect.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicySetExclusionStatus {
    /// The Policy.
    pub policy_name: String,
    /// The clusters.
    #[serde(default, deserialize_with = "null_as_default")]
    pub clusters: Vec<String>,
}
