//! `cluster.open-cluster-management.io/v1beta1`: the `Placement` and `PlacementDecision`
//! kinds.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    Condition, LabelSelector, LabelSelectorRequirement, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::v1::TaintEffect;
use crate::lenient::null_as_default;

/// Pattern of a taint or toleration key: an optional DNS subdomain prefix and a name.
const TAINT_KEY_PATTERN: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$";

/// Desired selection of a placement: which clusters, how many, and how to rank and group them.
///
/// An empty spec selects every cluster of the cluster sets bound to the placement's namespace.
/// The fields are ANDed.
// The printer columns repeat `type_ = "string"`, which clippy takes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "cluster.open-cluster-management.io",
    version = "v1beta1",
    kind = "Placement",
    namespaced,
    status = "PlacementStatus",
    derive = "PartialEq",
    doc = "A rule selecting managed clusters from the cluster sets bound to the placement's \
           namespace. The selected clusters are published in PlacementDecisions labelled \
           `cluster.open-cluster-management.io/placement=<placement name>`.",
    printcolumn(
        name = "Succeeded",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"PlacementSatisfied\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"PlacementSatisfied\")].reason"
    ),
    printcolumn(
        name = "SelectedClusters",
        type_ = "integer",
        json_path = ".status.numberOfSelectedClusters"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PlacementSpec {
    /// Cluster sets to select from; when empty, all cluster sets bound to the namespace.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cluster_sets: Vec<String>,

    /// How many clusters to select; all matching clusters when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_clusters: Option<i32>,

    /// Predicates selecting clusters; a cluster matching any of them is eligible.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub predicates: Vec<ClusterPredicate>,

    /// How eligible clusters are ranked when only some of them are selected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prioritizer_policy: Option<PrioritizerPolicy>,

    /// How decisions are spread over cluster topologies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread_policy: Option<SpreadPolicy>,

    /// Cluster taints this placement tolerates.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tolerations: Vec<Toleration>,

    /// How the decisions are divided into decision groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_strategy: Option<DecisionStrategy>,

    /// Shortest interval between two updates of recorded scores, such as `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "1m"), regex(pattern = r"^[0-9]+[hms]$"))]
    pub score_rate_limit: Option<String>,

    /// Order of the decisions: by cluster name, or by score then cluster name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "ClusterName"))]
    pub sort_by: Option<DecisionSortBy>,
}

/// Order of the decisions of a placement.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum DecisionSortBy {
    /// Alphanumerically by cluster name.
    ClusterName,
    /// Descending by score, ties broken by cluster name.
    Score,
}

/// A predicate selecting managed clusters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPredicate {
    /// Selector a cluster must match to be selected; a cluster that stops matching is
    /// eventually removed from the decisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_cluster_selector: Option<ClusterSelector>,
}

/// Selector over managed clusters by labels, claims and CEL expressions; all parts are ANDed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSelector {
    /// Selector over the clusters' labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,

    /// Selector over the cluster claims in the clusters' status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_selector: Option<ClusterClaimSelector>,

    /// CEL expressions over the `ManagedCluster` objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cel_selector: Option<ClusterCelSelector>,
}

/// Selector over cluster claims; the requirements are ANDed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterClaimSelector {
    /// Requirements on claim names and values.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// CEL expressions over managed clusters; all must hold.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterCelSelector {
    /// The CEL expressions.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cel_expressions: Vec<String>,
}

/// Policy of the prioritizers that rank eligible clusters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrioritizerPolicy {
    /// `Additive` keeps the default prioritizers and adds the listed ones; `Exact` uses only
    /// the listed ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Additive"))]
    pub mode: Option<PrioritizerPolicyMode>,

    /// Prioritizers and their weights.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub configurations: Vec<PrioritizerConfig>,
}

/// Mode of a prioritizer policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum PrioritizerPolicyMode {
    /// The listed prioritizers are added to the default ones.
    Additive,
    /// Only the listed prioritizers count.
    Exact,
}

/// One prioritizer and its weight.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrioritizerConfig {
    /// Where the prioritizer's scores come from.
    pub score_coordinate: ScoreCoordinate,

    /// Weight of the prioritizer's score, from -10 to 10; 0 disables it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 1), range(min = -10, max = 10))]
    pub weight: Option<i32>,
}

/// Source of a prioritizer's scores.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = require_type)]
pub struct ScoreCoordinate {
    /// Whether the scores come from a built-in prioritizer or from an add-on; upstream
    /// requires it but defaults it to `BuiltIn`, so objects often leave it out.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "BuiltIn"))]
    pub type_: Option<ScoreCoordinateType>,

    /// Name of the built-in prioritizer, such as `Balance`, `Steady`,
    /// `ResourceAllocatableCPU`, `ResourceAllocatableMemory` or `Spread`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_in: Option<String>,

    /// The add-on score to use, when the type is `AddOn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_on: Option<AddOnScore>,
}

/// Kind of score source of a prioritizer.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ScoreCoordinateType {
    /// A prioritizer built into the placement controller.
    BuiltIn,
    /// Scores published by an add-on in `AddOnPlacementScore` objects.
    AddOn,
}

/// An add-on score: which `AddOnPlacementScore` object and which score in it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddOnScore {
    /// Name of the `AddOnPlacementScore` objects to read.
    pub resource_name: String,

    /// Name of the score inside those objects.
    pub score_name: String,
}

/// How decisions are spread over topologies of clusters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpreadPolicy {
    /// Spread constraints, applied in order of importance.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(max = 8))]
    pub spread_constraints: Vec<SpreadConstraintsTerm>,
}

/// One spread constraint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpreadConstraintsTerm {
    /// Label key or claim name whose values form the topologies.
    #[schemars(
        length(max = 316),
        regex(
            pattern = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$"
        )
    )]
    pub topology_key: String,

    /// Whether the topology key is a label or a claim.
    pub topology_key_type: TopologyKeyType,

    /// Largest allowed difference in selected clusters between two topologies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 1), range(min = 1))]
    pub max_skew: Option<i32>,

    /// What to do when the skew cannot be kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "ScheduleAnyway"))]
    pub when_unsatisfiable: Option<UnsatisfiableMaxSkewAction>,
}

/// Kind of a topology key.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum TopologyKeyType {
    /// A cluster label key.
    Label,
    /// A cluster claim name.
    Claim,
}

/// Action when a spread constraint's skew cannot be kept.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum UnsatisfiableMaxSkewAction {
    /// Stop selecting more clusters.
    DoNotSchedule,
    /// Keep selecting clusters.
    ScheduleAnyway,
}

/// A toleration of cluster taints matching key, value and effect.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Toleration {
    /// Taint key to tolerate; empty, with the `Exists` operator, tolerates every taint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 316), regex(pattern = TAINT_KEY_PATTERN))]
    pub key: Option<String>,

    /// How the key relates to the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Equal"))]
    pub operator: Option<TolerationOperator>,

    /// Taint value to tolerate; empty with the `Exists` operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub value: Option<String>,

    /// Taint effect to tolerate; all effects when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,

    /// How long, from the taint's `timeAdded`, a `NoSelect` or `PreferNoSelect` taint is
    /// tolerated; forever when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

/// Operator of a toleration.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum TolerationOperator {
    /// Any value of the key matches.
    Exists,
    /// The value must equal the toleration's value.
    Equal,
}

/// How the decisions of a placement are divided into groups.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionStrategy {
    /// Strategy of dividing the selected clusters into decision groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_strategy: Option<GroupStrategy>,
}

/// Strategy of dividing selected clusters into decision groups.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupStrategy {
    /// Named groups, filled first; remaining clusters go into further groups.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub decision_groups: Vec<DecisionGroup>,

    /// Largest group size: a number of clusters, or a percentage of the selected clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend(
        "default" = "100%",
        "pattern" = r"^((100|[1-9][0-9]{0,1})%|[1-9][0-9]*)$"
    ))]
    pub clusters_per_decision_group: Option<IntOrString>,
}

/// A named group of selected clusters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionGroup {
    /// Group name, set as the `cluster.open-cluster-management.io/decision-group-name` label
    /// of the group's PlacementDecisions.
    #[schemars(regex(pattern = r"^[a-zA-Z0-9][-A-Za-z0-9_.]{0,61}[a-zA-Z0-9]$"))]
    pub group_name: String,

    /// Selector picking the group's clusters among the selected ones.
    pub group_cluster_selector: GroupClusterSelector,
}

/// Selector of a decision group's clusters; the parts are ANDed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupClusterSelector {
    /// Selector over the clusters' labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,

    /// Selector over the cluster claims in the clusters' status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_selector: Option<ClusterClaimSelector>,
}

/// Observed state of a placement.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementStatus {
    /// Number of selected clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_selected_clusters: Option<i32>,

    /// Decision groups the selected clusters were divided into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_groups: Option<Vec<DecisionGroupStatus>>,

    /// Conditions of the placement, such as `PlacementSatisfied` and
    /// `PlacementMisconfigured`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::condition_map_list")]
    pub conditions: Option<Vec<Condition>>,

    /// When the placement's scores were last updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_score_update_time: Option<Time>,
}

/// One decision group of a placement.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionGroupStatus {
    /// Index of the group; 0 when the placement has no decision strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_group_index: Option<i32>,

    /// Name of the group, from the decision strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_group_name: Option<String>,

    /// Names of the PlacementDecisions of the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decisions: Option<Vec<String>>,

    /// Number of clusters in the group.
    #[serde(
        default,
        rename = "clusterCount",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(extend("default" = 0))]
    pub clusters_count: Option<i32>,
}

/// A PlacementDecision has no fields besides `metadata` and `status`; upstream defines no
/// spec for it, so this empty type stands in for one and adds nothing on the wire.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "cluster.open-cluster-management.io",
    version = "v1beta1",
    kind = "PlacementDecision",
    namespaced,
    no_spec,
    status = "PlacementDecisionStatus",
    derive = "PartialEq",
    doc = "A slice of the clusters selected by a placement, labelled \
           `cluster.open-cluster-management.io/placement=<placement name>`. A placement may \
           own several decisions of at most 100 clusters each."
)]
pub struct PlacementDecisionFields {}

/// Observed state of a placement decision: its slice of selected clusters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = require_decisions)]
pub struct PlacementDecisionStatus {
    /// Selected clusters, at most 100.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schemars(transform = crate::schema::no_default)]
    pub decisions: Vec<ClusterDecision>,
}

/// One selected cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterDecision {
    /// Name of the managed cluster; unique over all decisions of the placement.
    pub cluster_name: String,

    /// Why the cluster was selected.
    pub reason: String,
}

fn require_decisions(schema: &mut schemars::Schema) {
    crate::schema::require(schema, &["decisions"]);
}

fn require_type(schema: &mut schemars::Schema) {
    crate::schema::require(schema, &["type"]);
}
