//! `work.open-cluster-management.io/v1alpha1`: the `ManifestWorkReplicaSet` kind.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::v1::ManifestWorkSpec;
use crate::cluster::v1alpha1::RolloutStrategy;
use crate::lenient::null_as_default;

/// Desired state of a manifest work replica set: the work template and the placements whose
/// clusters get a copy.
// The printer columns repeat `type_ = "string"`, which clippy takes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "work.open-cluster-management.io",
    version = "v1alpha1",
    kind = "ManifestWorkReplicaSet",
    namespaced,
    status = "ManifestWorkReplicaSetStatus",
    shortname = "mwrs",
    derive = "PartialEq",
    doc = "Creates a ManifestWork from one template in the namespace of every cluster its \
           placements select, follows the placement decisions as they change, and removes the \
           works when deleted.",
    printcolumn(
        name = "Placement",
        type_ = "string",
        description = "Reason",
        json_path = ".status.conditions[?(@.type==\"PlacementVerified\")].reason"
    ),
    printcolumn(
        name = "Found",
        type_ = "string",
        description = "Configured",
        json_path = ".status.conditions[?(@.type==\"PlacementVerified\")].status"
    ),
    printcolumn(
        name = "ManifestWorks",
        type_ = "string",
        description = "Reason",
        json_path = ".status.conditions[?(@.type==\"ManifestworkApplied\")].reason"
    ),
    printcolumn(
        name = "Applied",
        type_ = "string",
        description = "Applied",
        json_path = ".status.conditions[?(@.type==\"ManifestworkApplied\")].status"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = require_placement_refs)]
pub struct ManifestWorkReplicaSetSpec {
    /// Spec of the ManifestWork created for each selected cluster.
    pub manifest_work_template: ManifestWorkSpec,

    /// Placements in the same namespace whose selected clusters get the work.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schemars(length(min = 1), transform = crate::schema::no_default)]
    pub placement_refs: Vec<LocalPlacementReference>,

    /// Whether the replica set is deleted before (`Background`) or after (`Foreground`) its
    /// ManifestWorks are gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Background"))]
    pub cascade_deletion_policy: Option<CascadeDeletionPolicy>,
}

/// Order of deleting a replica set and its ManifestWorks.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum CascadeDeletionPolicy {
    /// The replica set is gone once its ManifestWorks are.
    Foreground,
    /// The replica set is gone without waiting for its ManifestWorks.
    Background,
}

/// A placement in the replica set's namespace, and how to roll the work out to its clusters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalPlacementReference {
    /// Name of the placement.
    #[schemars(length(min = 1))]
    pub name: String,

    /// How the work is rolled out to the placement's clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = {"type": "All", "all": {"progressDeadline": "None"}}))]
    pub rollout_strategy: Option<RolloutStrategy>,
}

/// Observed state of a manifest work replica set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestWorkReplicaSetStatus {
    /// Conditions: `PlacementVerified`, `PlacementRolledOut` and `ManifestworkApplied`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conditions: Vec<Condition>,

    /// Counts of the ManifestWorks over all placements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<ManifestWorkReplicaSetSummary>,

    /// Counts per placement.
    #[serde(
        default,
        rename = "placementSummary",
        skip_serializing_if = "Option::is_none"
    )]
    pub placements_summary: Option<Vec<PlacementSummary>>,
}

/// Counts of ManifestWorks and decision groups of one placement.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementSummary {
    /// Name of the placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// Decision groups whose works are all available, out of all groups, such as `2/4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_decision_groups: Option<String>,

    /// Counts of the placement's ManifestWorks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<ManifestWorkReplicaSetSummary>,
}

/// Counts of ManifestWorks by state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestWorkReplicaSetSummary {
    /// All ManifestWorks of the replica set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,

    /// ManifestWorks whose `Progressing` condition is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progressing: Option<i64>,

    /// ManifestWorks whose `Available` condition is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<i64>,

    /// ManifestWorks whose `Degraded` condition is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded: Option<i64>,

    /// ManifestWorks whose `Applied` condition is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<i64>,
}

fn require_placement_refs(schema: &mut schemars::Schema) {
    crate::schema::require(schema, &["placementRefs"]);
}
