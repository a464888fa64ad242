//! Well-known condition types and reasons, as upstream OCM's controllers write them.
//!
//! Each submodule covers one kind (or family of kinds). Condition types are named
//! `*_TYPE` or after the condition; reasons are plain constants next to the condition they
//! explain.

/// Status value of a condition that holds.
pub const STATUS_TRUE: &str = "True";
/// Status value of a condition that does not hold.
pub const STATUS_FALSE: &str = "False";
/// Status value of a condition whose state is not known.
pub const STATUS_UNKNOWN: &str = "Unknown";

/// Conditions of `ManagedCluster`.
pub mod managed_cluster {
    /// The hub admin accepted the cluster (`spec.hubAcceptsClient` is true).
    pub const HUB_ACCEPTED: &str = "HubAcceptedManagedCluster";
    /// The hub admin denied the cluster.
    pub const HUB_DENIED: &str = "HubDeniedManagedCluster";
    /// The cluster's agent joined the hub.
    pub const JOINED: &str = "ManagedClusterJoined";
    /// The cluster's API server is healthy and its agent keeps renewing its lease.
    pub const AVAILABLE: &str = "ManagedClusterConditionAvailable";
    /// The clocks of the hub and the agent agree.
    pub const CLOCK_SYNCED: &str = "ManagedClusterConditionClockSynced";
    /// The cluster is being deleted.
    pub const DELETING: &str = "Deleting";

    /// Reason of [`HUB_ACCEPTED`] true: a hub admin accepted the cluster.
    pub const REASON_HUB_CLUSTER_ADMIN_ACCEPTED: &str = "HubClusterAdminAccepted";
    /// Reason of [`HUB_ACCEPTED`] false: a hub admin denied the cluster.
    pub const REASON_HUB_CLUSTER_ADMIN_DENIED: &str = "HubClusterAdminDenied";
    /// Reason of [`JOINED`] true.
    pub const REASON_JOINED: &str = "ManagedClusterJoined";
    /// Reason of [`AVAILABLE`] true.
    pub const REASON_AVAILABLE: &str = "ManagedClusterAvailable";
    /// Reason of [`AVAILABLE`] false: the cluster's API server is not healthy.
    pub const REASON_KUBE_API_SERVER_UNAVAILABLE: &str = "ManagedClusterKubeAPIServerUnavailable";
    /// Reason of [`AVAILABLE`] unknown: the agent stopped renewing its lease.
    pub const REASON_LEASE_UPDATE_STOPPED: &str = "ManagedClusterLeaseUpdateStopped";
    /// Reason of [`CLOCK_SYNCED`] true.
    pub const REASON_CLOCK_SYNCED: &str = "ManagedClusterClockSynced";
    /// Reason of [`CLOCK_SYNCED`] false.
    pub const REASON_CLOCK_OUT_OF_SYNC: &str = "ManagedClusterClockOutOfSync";
    /// Reason of [`DELETING`]: resources remain in the cluster namespace.
    pub const REASON_RESOURCE_REMAINING: &str = "ResourceRemaining";
    /// Reason of [`DELETING`]: no resources remain in the cluster namespace.
    pub const REASON_NO_RESOURCE: &str = "NoResource";
    /// Reason of [`DELETING`]: deleting the remaining resources failed.
    pub const REASON_DELETING_ERROR: &str = "DeletingError";
}

/// Conditions of `ManagedClusterSet`.
pub mod managed_cluster_set {
    /// The set selects no cluster.
    pub const EMPTY: &str = "ClusterSetEmpty";

    /// Reason of [`EMPTY`] true.
    pub const REASON_NO_CLUSTER_MATCHED: &str = "NoClusterMatched";
    /// Reason of [`EMPTY`] false.
    pub const REASON_CLUSTERS_SELECTED: &str = "ClustersSelected";
}

/// Conditions of `ManagedClusterSetBinding`.
pub mod managed_cluster_set_binding {
    /// The bound cluster set exists.
    pub const BOUND: &str = "Bound";

    /// Reason of [`BOUND`] true.
    pub const REASON_CLUSTER_SET_BOUND: &str = "ClusterSetBound";
    /// Reason of [`BOUND`] false: the cluster set does not exist.
    pub const REASON_CLUSTER_SET_NOT_FOUND: &str = "ClusterSetNotFound";
}

/// Conditions of `Placement`.
pub mod placement {
    /// The placement selected as many clusters as it asks for.
    pub const SATISFIED: &str = "PlacementSatisfied";
    /// The placement's configuration is wrong, for example it names unknown prioritizers.
    pub const MISCONFIGURED: &str = "PlacementMisconfigured";

    /// Reason of [`SATISFIED`] true.
    pub const REASON_ALL_DECISIONS_SCHEDULED: &str = "AllDecisionsScheduled";
    /// Reason of [`SATISFIED`] false: fewer clusters than asked for were selected.
    pub const REASON_NOT_ALL_DECISIONS_SCHEDULED: &str = "NotAllDecisionsScheduled";
    /// Reason of [`SATISFIED`] false: no cluster set is bound to the namespace.
    pub const REASON_NO_MANAGED_CLUSTER_SET_BINDINGS: &str = "NoManagedClusterSetBindings";
    /// Reason of [`SATISFIED`] false: none of the placement's cluster sets is bound.
    pub const REASON_NO_INTERSECTION: &str = "NoIntersection";
    /// Reason of [`SATISFIED`] false: the eligible cluster sets have no clusters.
    pub const REASON_ALL_MANAGED_CLUSTER_SETS_EMPTY: &str = "AllManagedClusterSetsEmpty";
    /// Reason of [`SATISFIED`] false: no cluster matches the predicates.
    pub const REASON_NO_MANAGED_CLUSTER_MATCHED: &str = "NoManagedClusterMatched";
    /// Reason of [`MISCONFIGURED`] false (upstream's spelling).
    pub const REASON_SUCCEED_CONFIGURED: &str = "Succeedconfigured";
    /// Reason of [`MISCONFIGURED`] true.
    pub const REASON_MISCONFIGURED: &str = "Misconfigured";
}

/// Conditions of `ManifestWork`, at the work level and per manifest.
pub mod work {
    /// Every manifest was applied.
    pub const APPLIED: &str = "Applied";
    /// Every applied resource exists on the cluster.
    pub const AVAILABLE: &str = "Available";
    /// Resources are being applied.
    pub const PROGRESSING: &str = "Progressing";
    /// The resources have not matched the desired state for a while.
    pub const DEGRADED: &str = "Degraded";
    /// The work completed (by its condition rules) and is no longer updated.
    pub const COMPLETE: &str = "Complete";
    /// The agent is deleting the work.
    pub const DELETING: &str = "Deleting";
    /// Per manifest: the status feedback values were read.
    pub const STATUS_FEEDBACK_SYNCED: &str = "StatusFeedbackSynced";

    /// Reason of work [`APPLIED`] true.
    pub const REASON_APPLIED_MANIFEST_WORK_COMPLETE: &str = "AppliedManifestWorkComplete";
    /// Reason of work [`APPLIED`] false.
    pub const REASON_APPLIED_MANIFEST_WORK_FAILED: &str = "AppliedManifestWorkFailed";
    /// Reason of manifest [`APPLIED`] true.
    pub const REASON_APPLIED_MANIFEST_COMPLETE: &str = "AppliedManifestComplete";
    /// Reason of manifest [`APPLIED`] false.
    pub const REASON_APPLIED_MANIFEST_FAILED: &str = "AppliedManifestFailed";
    /// Reason of work [`AVAILABLE`] true.
    pub const REASON_RESOURCES_AVAILABLE: &str = "ResourcesAvailable";
    /// Reason of work [`AVAILABLE`] false: some resources do not exist.
    pub const REASON_RESOURCES_NOT_AVAILABLE: &str = "ResourcesNotAvailable";
    /// Reason of work [`AVAILABLE`] unknown.
    pub const REASON_RESOURCES_STATUS_UNKNOWN: &str = "ResourcesStatusUnknown";
    /// Reason of manifest [`AVAILABLE`] true.
    pub const REASON_RESOURCE_AVAILABLE: &str = "ResourceAvailable";
    /// Reason of manifest [`AVAILABLE`] false: the resource does not exist.
    pub const REASON_RESOURCE_NOT_AVAILABLE: &str = "ResourceNotAvailable";
    /// Reason of manifest [`AVAILABLE`] unknown: reading the resource failed.
    pub const REASON_FETCHING_RESOURCE_FAILED: &str = "FetchingResourceFailed";
    /// Reason of manifest [`AVAILABLE`] unknown: the resource meta is incomplete.
    pub const REASON_INCOMPLETED_RESOURCE_META: &str = "IncompletedResourceMeta";
    /// Reason of [`STATUS_FEEDBACK_SYNCED`] true with values.
    pub const REASON_STATUS_FEEDBACK_SYNCED: &str = "StatusFeedbackSynced";
    /// Reason of [`STATUS_FEEDBACK_SYNCED`] true without values.
    pub const REASON_NO_STATUS_FEEDBACK_SYNCED: &str = "NoStatusFeedbackSynced";
    /// Reason of [`STATUS_FEEDBACK_SYNCED`] false.
    pub const REASON_STATUS_FEEDBACK_SYNC_FAILED: &str = "StatusFeedbackSyncFailed";
    /// Reason of [`COMPLETE`]: every completable manifest completed.
    pub const REASON_MANIFESTS_COMPLETE: &str = "ManifestsComplete";
    /// Reason of [`PROGRESSING`]: resources are being applied.
    pub const REASON_APPLYING: &str = "Applying";
    /// Reason of [`PROGRESSING`]: every resource is applied and available.
    pub const REASON_COMPLETED: &str = "Completed";
    /// Reason of [`PROGRESSING`]: applying failed.
    pub const REASON_FAILED: &str = "Failed";
    /// Reason of a rule-set condition: the rule was evaluated.
    pub const REASON_CONDITION_RULE_EVALUATED: &str = "ConditionRuleEvaluated";
    /// Reason of a rule-set condition: the rule is invalid.
    pub const REASON_CONDITION_RULE_INVALID: &str = "ConditionRuleInvalid";
    /// Reason of a rule-set condition: an expression failed.
    pub const REASON_CONDITION_RULE_EXPRESSION_ERROR: &str = "ConditionRuleExpressionError";
    /// Reason of a rule-set condition: evaluation failed for another cause.
    pub const REASON_CONDITION_RULE_INTERNAL_ERROR: &str = "ConditionRuleInternalError";
    /// Reason of a work-level condition aggregated from its manifests' rule-set conditions.
    pub const REASON_CONDITION_RULES_AGGREGATED: &str = "ConditionRulesAggregated";
}

/// Conditions of `ManifestWorkReplicaSet`.
pub mod manifest_work_replica_set {
    /// The referenced placements exist and have decisions.
    pub const PLACEMENT_VERIFIED: &str = "PlacementVerified";
    /// The rollout to the placements' clusters finished.
    pub const PLACEMENT_ROLLED_OUT: &str = "PlacementRolledOut";
    /// A ManifestWork exists for every selected cluster (upstream's spelling).
    pub const MANIFESTWORK_APPLIED: &str = "ManifestworkApplied";

    /// Reason of [`PLACEMENT_VERIFIED`] or [`MANIFESTWORK_APPLIED`] true.
    pub const REASON_AS_EXPECTED: &str = "AsExpected";
    /// Reason of [`PLACEMENT_VERIFIED`] or [`MANIFESTWORK_APPLIED`] false.
    pub const REASON_NOT_AS_EXPECTED: &str = "NotAsExpected";
    /// Reason of [`PLACEMENT_VERIFIED`] false: no placement decision was found.
    pub const REASON_PLACEMENT_DECISION_NOT_FOUND: &str = "PlacementDecisionNotFound";
    /// Reason of [`PLACEMENT_VERIFIED`] false: the placement decisions are empty.
    pub const REASON_PLACEMENT_DECISION_EMPTY: &str = "PlacementDecisionEmpty";
    /// Reason of [`MANIFESTWORK_APPLIED`]: the ManifestWorks are being processed.
    pub const REASON_PROCESSING: &str = "Processing";
    /// Reason of [`PLACEMENT_ROLLED_OUT`] false: the rollout is under way.
    pub const REASON_PROGRESSING: &str = "Progressing";
    /// Reason of [`PLACEMENT_ROLLED_OUT`] true: the rollout finished.
    pub const REASON_COMPLETE: &str = "Complete";
}

/// Conditions of `ManagedClusterAddOn`.
pub mod managed_cluster_addon {
    /// The add-on agent runs on the cluster.
    pub const AVAILABLE: &str = "Available";
    /// The add-on agent serves in a degraded way.
    pub const DEGRADED: &str = "Degraded";
    /// The add-on's configuration is being applied.
    pub const PROGRESSING: &str = "Progressing";
    /// Deprecated: the agent is configured; see [`PROGRESSING`].
    pub const CONFIGURED: &str = "Configured";
    /// The add-on's manifests were applied.
    pub const MANIFEST_APPLIED: &str = "ManifestApplied";
    /// The add-on's pre-delete hook completed.
    pub const HOOK_MANIFEST_COMPLETED: &str = "HookManifestCompleted";
    /// The add-on's manifests were applied on the hosting cluster (hosted mode).
    pub const HOSTING_MANIFEST_APPLIED: &str = "HostingManifestApplied";
    /// The hosting cluster is valid (hosted mode).
    pub const HOSTING_CLUSTER_VALIDITY: &str = "HostingClusterValidity";
    /// The agent's registration is configured.
    pub const REGISTRATION_APPLIED: &str = "RegistrationApplied";

    /// Reason of [`AVAILABLE`]: the add-on's ManifestWorks are not found.
    pub const REASON_WORK_NOT_FOUND: &str = "WorkNotFound";
    /// Reason of [`AVAILABLE`]: applying the add-on's ManifestWorks failed.
    pub const REASON_WORK_APPLY_FAILED: &str = "WorkApplyFailed";
    /// Reason of [`AVAILABLE`]: the add-on's ManifestWorks are not applied.
    pub const REASON_WORK_NOT_APPLIED: &str = "WorkNotApplied";
    /// Reason of [`AVAILABLE`]: the add-on's ManifestWorks are applied.
    pub const REASON_WORK_APPLIED: &str = "WorkApplied";
    /// Reason of [`AVAILABLE`]: no probe result was found.
    pub const REASON_NO_PROBE_RESULT: &str = "NoProbeResult";
    /// Reason of [`AVAILABLE`] false: the probe result fails the health check.
    pub const REASON_PROBE_UNAVAILABLE: &str = "ProbeUnavailable";
    /// Reason of [`AVAILABLE`] true: the probe result passes the health check.
    pub const REASON_PROBE_AVAILABLE: &str = "ProbeAvailable";
    /// Reason of [`AVAILABLE`] unknown: the add-on's lease stopped being renewed.
    pub const REASON_LEASE_UPDATE_STOPPED: &str = "ManagedClusterAddOnLeaseUpdateStopped";
    /// Reason of [`AVAILABLE`]: the add-on's lease was not found.
    pub const REASON_LEASE_NOT_FOUND: &str = "ManagedClusterAddOnLeaseNotFound";
    /// Reason of [`AVAILABLE`] true: the add-on's lease is renewed.
    pub const REASON_LEASE_UPDATED: &str = "ManagedClusterAddOnLeaseUpdated";
    /// Reason of [`MANIFEST_APPLIED`] false: applying the ManifestWork failed.
    pub const REASON_MANIFEST_WORK_APPLY_FAILED: &str = "ManifestWorkApplyFailed";
    /// Reason of [`MANIFEST_APPLIED`] true.
    pub const REASON_ADDON_MANIFEST_APPLIED: &str = "AddonManifestApplied";
    /// Reason of [`MANIFEST_APPLIED`] false: applying the manifests failed.
    pub const REASON_ADDON_MANIFEST_APPLIED_FAILED: &str = "AddonManifestAppliedFailed";
    /// Reason of [`HOSTING_CLUSTER_VALIDITY`] true.
    pub const REASON_HOSTING_CLUSTER_VALID: &str = "HostingClusterValid";
    /// Reason of [`HOSTING_CLUSTER_VALIDITY`] false.
    pub const REASON_HOSTING_CLUSTER_INVALID: &str = "HostingClusterInvalid";
    /// Reason of [`PROGRESSING`] true: configuration is being applied.
    pub const REASON_PROGRESSING: &str = "Progressing";
    /// Reason of [`PROGRESSING`] false: configuration was applied.
    pub const REASON_COMPLETED: &str = "Completed";
    /// Reason of [`PROGRESSING`] false: applying configuration failed.
    pub const REASON_FAILED: &str = "Failed";
    /// Reason of [`PROGRESSING`]: the upgrade waits for the canary clusters.
    pub const REASON_WAITING_FOR_CANARY: &str = "WaitingForCanary";
    /// Reason of [`PROGRESSING`]: the configuration is not supported.
    pub const REASON_CONFIGURATION_UNSUPPORTED: &str = "ConfigurationUnsupported";
    /// Reason of [`REGISTRATION_APPLIED`]: the add-on has no registration.
    pub const REASON_NIL_REGISTRATION: &str = "NilRegistration";
    /// Reason of [`REGISTRATION_APPLIED`] false: setting up the agent's permissions failed.
    pub const REASON_SET_PERMISSION_FAILED: &str = "SetPermissionFailed";
    /// Reason of [`REGISTRATION_APPLIED`] true: the agent's permissions are set up.
    pub const REASON_SET_PERMISSION_APPLIED: &str = "SetPermissionApplied";
}
