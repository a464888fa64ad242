//! `cluster.open-cluster-management.io/v1alpha1`: the `ClusterClaim` and
//! `AddOnPlacementScore` kinds, and the rollout strategy types that workload appliers
//! (ManifestWorkReplicaSet, ClusterManagementAddOn) embed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::lenient::{default_when_absent, null_as_default};

/// Pattern of a rollout timeout: a number of hours, minutes or seconds, or `None`.
const ROLLOUT_TIMEOUT_PATTERN: &str = r"^(([0-9])+[h|m|s])|None$";

/// Pattern of a count or percentage of clusters in a rollout, such as `2` or `25%`.
const ROLLOUT_COUNT_PATTERN: &str = r"^((100|[0-9]{1,2})%|[0-9]+)$";

/// Desired state of a cluster claim: the claimed value.
///
/// A missing spec decodes as an empty spec, since upstream marks it optional.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(remote = "Self")]
#[kube(
    group = "cluster.open-cluster-management.io",
    version = "v1alpha1",
    kind = "ClusterClaim",
    derive = "PartialEq",
    doc = "A fact a managed cluster claims about itself, such as its ID (`id.k8s.io`). \
           Cluster-scoped, created on the managed cluster; the agent copies claims into the \
           ManagedCluster's status on the hub."
)]
#[serde(rename_all = "camelCase")]
#[schemars(description = "Desired state of a cluster claim: the claimed value.")]
pub struct ClusterClaimSpec {
    /// The claimed value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub value: Option<String>,
}

default_when_absent!(ClusterClaimSpec);

/// Names of cluster claims the agent reports first, in upstream's order.
pub const RESERVED_CLUSTER_CLAIM_NAMES: [&str; 4] = [
    "id.k8s.io",
    "kubeversion.open-cluster-management.io",
    "platform.open-cluster-management.io",
    "product.open-cluster-management.io",
];

/// An AddOnPlacementScore has no fields besides `metadata` and `status`; upstream defines no
/// spec for it, so this empty type stands in for one and adds nothing on the wire.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "cluster.open-cluster-management.io",
    version = "v1alpha1",
    kind = "AddOnPlacementScore",
    namespaced,
    no_spec,
    status = "AddOnPlacementScoreStatus",
    derive = "PartialEq",
    doc = "Scores of one managed cluster, published by an add-on for placements to rank \
           clusters by. Lives in the cluster's namespace on the hub."
)]
pub struct AddOnPlacementScoreFields {}

/// Observed state of an add-on placement score: the scores and how long they hold.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddOnPlacementScoreStatus {
    /// Conditions of the scores.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(schema_with = "crate::schema::condition_map_list")]
    pub conditions: Vec<Condition>,

    /// Named scores of the cluster.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["name"]
    ))]
    pub scores: Vec<AddOnPlacementScoreItem>,

    /// Time after which placements ignore the scores; never when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<Time>,
}

/// One named score.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddOnPlacementScoreItem {
    /// Name of the score.
    pub name: String,

    /// Value of the score, from -100 to 100.
    #[schemars(range(min = -100, max = 100))]
    pub value: i32,
}

/// How a workload is rolled out to the clusters a placement selects.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStrategy {
    /// Kind of rollout; `All` by default.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "All"))]
    pub type_: Option<RolloutType>,

    /// Settings of an `All` rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<RolloutAll>,

    /// Settings of a `Progressive` rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progressive: Option<RolloutProgressive>,

    /// Settings of a `ProgressivePerGroup` rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progressive_per_group: Option<RolloutProgressivePerGroup>,
}

/// Kind of a rollout.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum RolloutType {
    /// Apply to every selected cluster at once.
    All,
    /// Apply cluster by cluster, moving on as clusters succeed.
    Progressive,
    /// Apply decision group by decision group, moving on when a whole group succeeds.
    ProgressivePerGroup,
}

/// Timing and failure tolerance shared by all rollout kinds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutConfig {
    /// Soak time to wait after a successful step before the next one, such as `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "0"))]
    pub min_success_time: Option<String>,

    /// How long to wait for a cluster to succeed, such as `10m`; `None` waits forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "None"), regex(pattern = ROLLOUT_TIMEOUT_PATTERN))]
    pub progress_deadline: Option<String>,

    /// Number or percentage of failed clusters tolerated before the rollout stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "0", "pattern" = ROLLOUT_COUNT_PATTERN))]
    pub max_failures: Option<IntOrString>,

    /// Deprecated predecessor of `progressDeadline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "None"), regex(pattern = ROLLOUT_TIMEOUT_PATTERN))]
    pub timeout: Option<String>,
}

/// A decision group to roll out to first, named or indexed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MandatoryDecisionGroup {
    /// Group name, as in the `cluster.open-cluster-management.io/decision-group-name` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,

    /// Group index, as in the `cluster.open-cluster-management.io/decision-group-index` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_index: Option<i32>,
}

/// Settings of an `All` rollout.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAll {
    /// Timing and failure tolerance.
    #[serde(flatten)]
    pub config: RolloutConfig,
}

/// Settings of a `ProgressivePerGroup` rollout.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutProgressivePerGroup {
    /// Timing and failure tolerance.
    #[serde(flatten)]
    pub config: RolloutConfig,

    /// Decision groups to roll out to first; the rollout fails if they do not succeed.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub mandatory_decision_groups: Vec<MandatoryDecisionGroup>,
}

/// Settings of a `Progressive` rollout.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutProgressive {
    /// Timing and failure tolerance.
    #[serde(flatten)]
    pub config: RolloutConfig,

    /// Decision groups to roll out to first; the rollout fails if they do not succeed.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub mandatory_decision_groups: Vec<MandatoryDecisionGroup>,

    /// Most clusters to roll out to at once: a number, or a percentage of the selected
    /// clusters. Defaults from the placement's `clustersPerDecisionGroup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = ROLLOUT_COUNT_PATTERN))]
    pub max_concurrency: Option<IntOrString>,
}
