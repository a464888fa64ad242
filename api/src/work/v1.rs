//! `work.open-cluster-management.io/v1`: the `ManifestWork` and `AppliedManifestWork` kinds.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::lenient::null_as_default;

/// Pattern of a service account namespace or name.
const DNS_SUBDOMAIN_PATTERN: &str =
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)$";

/// Desired state of a manifest work: the manifests to apply and how to apply, watch and
/// delete them.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "work.open-cluster-management.io",
    version = "v1",
    kind = "ManifestWork",
    namespaced,
    status = "ManifestWorkStatus",
    derive = "PartialEq",
    doc = "A set of Kubernetes resources the hub asks a managed cluster to apply. Lives in the \
           cluster's namespace on the hub; the work agent on the cluster applies it and \
           reports status back."
)]
#[serde(rename_all = "camelCase")]
pub struct ManifestWorkSpec {
    /// The manifests to apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<ManifestsTemplate>,

    /// How the applied resources are deleted when the work is; all are deleted in the
    /// foreground when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_option: Option<DeleteOption>,

    /// Per-resource settings: status feedback, update strategy, condition rules.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub manifest_configs: Vec<ManifestConfigOption>,

    /// Identity the agent applies the resources as; the agent's own when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<ManifestWorkExecutor>,
}

/// A Kubernetes object to apply on the managed cluster, kept exactly as written.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(transparent)]
pub struct Manifest(
    #[schemars(schema_with = "crate::schema::embedded_resource")] pub serde_json::Value,
);

impl From<serde_json::Value> for Manifest {
    fn from(value: serde_json::Value) -> Self {
        Self(value)
    }
}

/// The manifests of a work.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestsTemplate {
    /// Kubernetes objects to apply on the managed cluster.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub manifests: Vec<Manifest>,
}

/// How the resources of a work are deleted when the work is deleted.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOption {
    /// `Foreground` deletes all resources, `Orphan` keeps all, `SelectivelyOrphan` keeps
    /// the listed ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Foreground"))]
    pub propagation_policy: Option<DeletePropagationPolicyType>,

    /// Resources to keep when the policy is `SelectivelyOrphan`.
    #[serde(
        default,
        rename = "selectivelyOrphans",
        skip_serializing_if = "Option::is_none"
    )]
    pub selectively_orphan: Option<SelectivelyOrphan>,

    /// Seconds after the work completes (by its condition rules) until it is deleted; never
    /// when unset, immediately when 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<i64>,
}

/// Deletion propagation of a manifest work's resources.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum DeletePropagationPolicyType {
    /// Delete every resource, waiting for them to be gone.
    Foreground,
    /// Keep every resource.
    Orphan,
    /// Keep the resources listed in the orphaning rules, delete the rest.
    SelectivelyOrphan,
}

/// Resources to keep when a work is deleted.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelectivelyOrphan {
    /// Each rule names one resource of the work to keep.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub orphaning_rules: Vec<OrphaningRule>,
}

/// Identifies one resource of a work by group, resource, namespace and name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceIdentifier {
    /// API group of the resource; empty for the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,

    /// Resource name (plural), such as `deployments`.
    pub resource: String,

    /// Object name.
    pub name: String,

    /// Object namespace; empty for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A resource of a work to keep when the work is deleted.
pub type OrphaningRule = ResourceIdentifier;

/// Settings for one resource of a work.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestConfigOption {
    /// The resource the settings apply to; ignored if the work does not create it.
    pub resource_identifier: ResourceIdentifier,

    /// Status fields of the resource to report back; none when empty.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub feedback_rules: Vec<FeedbackRule>,

    /// How the resource is updated; `Update` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<UpdateStrategy>,

    /// Rules setting work conditions from the resource's state.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["condition"]
    ))]
    pub condition_rules: Vec<ConditionRule>,
}

/// A rule setting a condition from a resource's state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.type != 'CEL' || self.condition != \"\"",
    "message": "Condition is required for CEL rules",
}]))]
pub struct ConditionRule {
    /// Condition type the rule sets; `Complete` stops further updates of the resource.
    pub condition: String,

    /// How the condition is evaluated.
    #[serde(rename = "type")]
    pub type_: ConditionRuleType,

    /// CEL expressions that must all hold, for the `CEL` type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cel_expressions: Option<Vec<String>>,

    /// Message set on the condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// CEL expression producing the condition's message; overrides `message` when non-empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_expression: Option<String>,
}

/// How a condition rule is evaluated.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ConditionRuleType {
    /// Built-in completion rules for common Kubernetes kinds.
    WellKnownConditions,
    /// User-written CEL expressions.
    #[serde(rename = "CEL")]
    Cel,
}

/// Identity the work agent applies a work's resources as.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestWorkExecutor {
    /// The subject to apply as.
    pub subject: ManifestWorkExecutorSubject,
}

/// Subject identity of a work executor.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestWorkExecutorSubject {
    /// Kind of subject.
    #[serde(rename = "type")]
    pub type_: ManifestWorkExecutorSubjectType,

    /// The service account, when the type is `ServiceAccount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ManifestWorkSubjectServiceAccount>,
}

/// Kind of a work executor subject.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ManifestWorkExecutorSubjectType {
    /// A service account on the managed cluster.
    ServiceAccount,
}

/// A service account on the managed cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestWorkSubjectServiceAccount {
    /// Namespace of the service account.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub namespace: String,

    /// Name of the service account.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
}

/// How a resource of a work is updated.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = require_type)]
pub struct UpdateStrategy {
    /// Update method; upstream requires it but defaults it to `Update`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Update"))]
    pub type_: Option<UpdateStrategyType>,

    /// Server-side apply settings, for the `ServerSideApply` type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_side_apply: Option<ServerSideApplyConfig>,
}

/// Update method of a resource of a work.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum UpdateStrategyType {
    /// Replace the resource with an update call.
    Update,
    /// Create the resource and never update it.
    CreateOnly,
    /// Apply server-side with the work agent as field manager; conflicts fail the apply.
    ServerSideApply,
    /// Only check that the resource exists; feedback rules still report status.
    ReadOnly,
}

/// Server-side apply settings of a resource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerSideApplyConfig {
    /// Whether to force the apply over conflicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,

    /// Field manager name; must start with `work-agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "work-agent"), regex(pattern = "^work-agent"))]
    pub field_manager: Option<String>,

    /// Fields the apply leaves alone under a condition.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["condition"]
    ))]
    pub ignore_fields: Vec<IgnoreField>,
}

/// Fields a server-side apply leaves alone, and when.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = require_condition_and_json_paths)]
pub struct IgnoreField {
    /// When the fields are left alone; upstream requires it but defaults it to
    /// `OnSpokePresent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "OnSpokePresent"))]
    pub condition: Option<IgnoreFieldsCondition>,

    /// JSON paths of the fields.
    #[serde(rename = "jsonPaths", default, deserialize_with = "null_as_default")]
    #[schemars(length(min = 1), transform = crate::schema::no_default)]
    pub json_paths: Vec<String>,
}

/// When ignored fields are left alone.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum IgnoreFieldsCondition {
    /// Whenever the resource exists on the managed cluster.
    OnSpokePresent,
    /// When another actor changed the fields on the managed cluster.
    OnSpokeChange,
}

/// Default field manager of server-side applies.
pub const DEFAULT_FIELD_MANAGER: &str = "work-agent";

/// A rule choosing status fields of a resource to report back.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedbackRule {
    /// Whether to report well-known status fields or the listed JSON paths.
    #[serde(rename = "type")]
    pub type_: FeedBackType,

    /// JSON paths to report, for the `JSONPaths` type.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["name"]
    ))]
    pub json_paths: Vec<JsonPath>,
}

/// Kind of a feedback rule.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum FeedBackType {
    /// Common status fields of well-known Kubernetes and OCM kinds.
    WellKnownStatus,
    /// The listed JSON paths.
    #[serde(rename = "JSONPaths")]
    JsonPaths,
}

/// A status field to report back, under an alias.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JsonPath {
    /// Alias the value is reported under.
    pub name: String,

    /// API version to read the resource at; the preferred version when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,

    /// JSON path of the field under `.status`, pointing at a single value.
    pub path: String,
}

/// Kind and identity of an applied resource, with its position in the work.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestResourceMeta {
    /// Index of the manifest in the work's spec.
    pub ordinal: i32,

    /// API group of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,

    /// API version of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,

    /// Kind of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,

    /// Resource name (plural).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,

    /// Object name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// Object namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A resource applied on a managed cluster, as recorded in an applied manifest work.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedManifestResourceMeta {
    /// API group of the resource; empty for the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,

    /// API version of the resource.
    pub version: String,

    /// Resource name (plural).
    pub resource: String,

    /// Object namespace; empty for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// Object name.
    pub name: String,

    /// UID of the object, set once its deletion has been requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// Observed state of a manifest work, reported by the work agent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestWorkStatus {
    /// Conditions of the work: `Applied`, `Available`, `Progressing`, `Degraded` and others.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conditions: Vec<Condition>,

    /// State of each resource of the work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_status: Option<ManifestResourceStatus>,
}

/// State of each resource of a work.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestResourceStatus {
    /// One entry per resource.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub manifests: Vec<ManifestCondition>,
}

/// State of one resource of a work.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = require_conditions)]
pub struct ManifestCondition {
    /// Which resource this is.
    pub resource_meta: ManifestResourceMeta,

    /// Values of the status fields chosen by the feedback rules.
    #[serde(
        default,
        rename = "statusFeedback",
        skip_serializing_if = "Option::is_none"
    )]
    pub status_feedbacks: Option<StatusFeedbackResult>,

    /// Conditions of the resource on the managed cluster.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schemars(transform = crate::schema::no_default)]
    pub conditions: Vec<Condition>,
}

/// Values of reported status fields.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusFeedbackResult {
    /// One value per alias.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["name"]
    ))]
    pub values: Vec<FeedbackValue>,
}

/// A reported status field.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedbackValue {
    /// Alias of the field, as in the feedback rule.
    pub name: String,

    /// Value of the field.
    #[serde(rename = "fieldValue")]
    pub value: FieldValue,
}

/// A typed status field value; exactly the member matching `type` is set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldValue {
    /// Type of the value.
    #[serde(rename = "type")]
    pub type_: ValueType,

    /// The value, for the `Integer` type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integer: Option<i64>,

    /// The value, for the `String` type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<String>,

    /// The value, for the `Boolean` type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boolean: Option<bool>,

    /// The value as a JSON document, for the `JsonRaw` type (lists and objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub json_raw: Option<String>,
}

/// Type of a reported status field value.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ValueType {
    /// A 64-bit integer.
    Integer,
    /// A string.
    String,
    /// A boolean.
    Boolean,
    /// A JSON document.
    JsonRaw,
}

/// Desired state of an applied manifest work: which hub and which work it records.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "work.open-cluster-management.io",
    version = "v1",
    kind = "AppliedManifestWork",
    status = "AppliedManifestWorkStatus",
    derive = "PartialEq",
    doc = "The managed cluster's record of a manifest work it applied, named \
           `<hub hash>-<manifest work name>`. Cluster-scoped, on the managed cluster; deleting \
           it removes the resources the work applied."
)]
#[serde(rename_all = "camelCase")]
pub struct AppliedManifestWorkSpec {
    /// Hash of the hub's first API server URL, identifying the hub.
    pub hub_hash: String,

    /// ID of the work agent handling the record.
    #[serde(default, rename = "agentID", skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,

    /// Name of the manifest work on the hub.
    pub manifest_work_name: String,
}

/// Observed state of an applied manifest work.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedManifestWorkStatus {
    /// Resources the work applied on the cluster; removed entries are deleted.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub applied_resources: Vec<AppliedManifestResourceMeta>,

    /// When eviction started: the record is evicted after a grace period if its work is
    /// gone from the hub or its hub hash no longer matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_start_time: Option<Time>,
}

fn require_conditions(schema: &mut schemars::Schema) {
    crate::schema::require(schema, &["conditions"]);
}

fn require_condition_and_json_paths(schema: &mut schemars::Schema) {
    crate::schema::require(schema, &["condition", "jsonPaths"]);
}

fn require_type(schema: &mut schemars::Schema) {
    crate::schema::require(schema, &["type"]);
}
