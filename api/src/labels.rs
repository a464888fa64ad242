//! Well-known labels, annotations, taint keys, finalizers and object names of OCM.

/// Label on a ManagedCluster naming the (exclusive) cluster set it belongs to.
pub const CLUSTER_SET: &str = "cluster.open-cluster-management.io/clusterset";

/// Label on a PlacementDecision naming the placement that owns it.
pub const PLACEMENT: &str = "cluster.open-cluster-management.io/placement";

/// Label on a PlacementDecision holding the index of its decision group.
pub const DECISION_GROUP_INDEX: &str = "cluster.open-cluster-management.io/decision-group-index";

/// Label on a PlacementDecision holding the name of its decision group.
pub const DECISION_GROUP_NAME: &str = "cluster.open-cluster-management.io/decision-group-name";

/// Label naming the managed cluster a hub object belongs to, such as the cluster namespace.
pub const CLUSTER_NAME: &str = "open-cluster-management.io/cluster-name";

/// Label on hub objects naming the add-on they relate to.
pub const ADDON_NAME: &str = "open-cluster-management.io/addon-name";

/// Label on hub objects naming the namespace of the ManagedClusterAddOn they relate to.
pub const ADDON_NAMESPACE: &str = "open-cluster-management.io/addon-namespace";

/// Label on a ManifestWork naming the replica set (`<namespace>.<name>`) that created it.
pub const MANIFEST_WORK_REPLICA_SET: &str =
    "work.open-cluster-management.io/manifestworkreplicaset";

/// Label on a ManifestWork naming the placement of the replica set that selected its cluster.
pub const MANIFEST_WORK_REPLICA_SET_PLACEMENT_NAME: &str =
    "work.open-cluster-management.io/placementname";

/// Annotation on a Placement that stops the placement controller from scheduling it.
pub const PLACEMENT_DISABLE_ANNOTATION: &str =
    "cluster.open-cluster-management.io/experimental-scheduling-disable";

/// Annotation on a ManagedCluster holding image registry overrides for its add-ons, as JSON.
pub const CLUSTER_IMAGE_REGISTRIES_ANNOTATION: &str = "open-cluster-management.io/image-registries";

/// Annotation on objects in a cluster namespace ordering their cleanup (0 to 100, lower first).
pub const CLEANUP_PRIORITY_ANNOTATION: &str = "open-cluster-management.io/cleanup-priority";

/// Annotation on a ManifestWork holding the hash of the configurations it was built from.
pub const MANIFEST_CONFIG_SPEC_HASH_ANNOTATION: &str =
    "open-cluster-management.io/config-spec-hash";

/// Annotation on applied resources holding the hash of their manifest.
pub const OBJECT_SPEC_HASH_ANNOTATION: &str = "open-cluster-management.io/object-hash";

/// Annotation on a ClusterManagementAddOn saying who installs and upgrades the add-on.
pub const ADDON_LIFECYCLE_ANNOTATION: &str = "addon.open-cluster-management.io/lifecycle";

/// Value of [`ADDON_LIFECYCLE_ANNOTATION`]: the general add-on manager handles the add-on.
pub const ADDON_LIFECYCLE_ADDON_MANAGER: &str = "addon-manager";

/// Value of [`ADDON_LIFECYCLE_ANNOTATION`]: the add-on handles itself.
pub const ADDON_LIFECYCLE_SELF: &str = "self";

/// Annotation on a ManagedClusterAddOn that turns off its automatic installation.
pub const DISABLE_ADDON_AUTOMATIC_INSTALLATION_ANNOTATION: &str =
    "addon.open-cluster-management.io/disable-automatic-installation";

/// Annotation on an add-on manifest marking it as a pre-delete hook.
pub const ADDON_PRE_DELETE_HOOK_ANNOTATION: &str =
    "addon.open-cluster-management.io/addon-pre-delete";

/// Annotation on a ManagedClusterAddOn naming its hosting cluster (hosted mode).
pub const HOSTING_CLUSTER_NAME_ANNOTATION: &str =
    "addon.open-cluster-management.io/hosting-cluster-name";

/// Annotation on an add-on manifest that keeps it when the add-on is deleted.
pub const DELETION_ORPHAN_ANNOTATION: &str = "addon.open-cluster-management.io/deletion-orphan";

/// Annotation on an add-on manifest saying where it goes in hosted mode: `managed`,
/// `hosting` or `none`.
pub const HOSTED_MANIFEST_LOCATION_ANNOTATION: &str =
    "addon.open-cluster-management.io/hosted-manifest-location";

/// Taint key added to a ManagedCluster whose `ManagedClusterConditionAvailable` is false.
pub const TAINT_UNAVAILABLE: &str = "cluster.open-cluster-management.io/unavailable";

/// Taint key added to a ManagedCluster whose availability is unknown or missing.
pub const TAINT_UNREACHABLE: &str = "cluster.open-cluster-management.io/unreachable";

/// Taint key added to a ManagedCluster that is being deleted.
pub const TAINT_TERMINATING: &str = "cluster.open-cluster-management.io/terminating";

/// Finalizer on a ManagedCluster, removing its hub resources before it goes.
pub const MANAGED_CLUSTER_FINALIZER: &str =
    "cluster.open-cluster-management.io/api-resource-cleanup";

/// Finalizer on a ManifestWork, removing its AppliedManifestWork before it goes.
pub const MANIFEST_WORK_FINALIZER: &str =
    "cluster.open-cluster-management.io/manifest-work-cleanup";

/// Finalizer on an AppliedManifestWork, removing its applied resources before it goes.
pub const APPLIED_MANIFEST_WORK_FINALIZER: &str =
    "cluster.open-cluster-management.io/applied-manifest-work-cleanup";

/// Finalizer on a ManifestWorkReplicaSet, removing its ManifestWorks before it goes.
pub const MANIFEST_WORK_REPLICA_SET_FINALIZER: &str =
    "work.open-cluster-management.io/manifest-work-cleanup";

/// Finalizer on a ManagedClusterAddOn that has deployed pre-delete hook objects.
pub const ADDON_PRE_DELETE_HOOK_FINALIZER: &str =
    "addon.open-cluster-management.io/addon-pre-delete";

/// Finalizer on a ManagedClusterAddOn with pre-delete hooks on its hosting cluster.
pub const ADDON_HOSTING_PRE_DELETE_HOOK_FINALIZER: &str =
    "addon.open-cluster-management.io/hosting-addon-pre-delete";

/// Finalizer on a ManagedClusterAddOn with manifests on its hosting cluster.
pub const ADDON_HOSTING_MANIFEST_FINALIZER: &str =
    "addon.open-cluster-management.io/hosting-manifests-cleanup";

/// Name of the Lease, in the cluster namespace on the hub, that a managed cluster's agent
/// renews.
pub const MANAGED_CLUSTER_LEASE: &str = "managed-cluster-lease";
