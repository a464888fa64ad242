//! `policy.open-cluster-management.io`: OCM's governance API. A Policy carries policy templates
//! (ConfigurationPolicies, Gatekeeper ConstraintTemplates and Constraints); PlacementBindings
//! bind Policies and PolicySets to Placements; the hub replicates each bound Policy into the
//! namespace of every cluster the Placement decides, and aggregates their compliance.

pub mod report;
pub mod v1;
pub mod v1beta1;

/// The API group.
pub const GROUP: &str = "policy.open-cluster-management.io";
/// Label on a replicated Policy naming its cluster.
pub const CLUSTER_NAME_LABEL: &str = "policy.open-cluster-management.io/cluster-name";
/// Label on a replicated Policy naming its cluster's namespace.
pub const CLUSTER_NAMESPACE_LABEL: &str = "policy.open-cluster-management.io/cluster-namespace";
/// Label on a replicated Policy naming its root policy, as `<namespace>.<name>`.
pub const ROOT_POLICY_LABEL: &str = "policy.open-cluster-management.io/root-policy";
/// Label on a template object on the managed cluster naming its replicated Policy.
pub const POLICY_LABEL: &str = "policy.open-cluster-management.io/policy";
/// Annotation listing a Policy's standards, comma-separated.
pub const STANDARDS_ANNOTATION: &str = "policy.open-cluster-management.io/standards";
/// Annotation listing a Policy's categories, comma-separated.
pub const CATEGORIES_ANNOTATION: &str = "policy.open-cluster-management.io/categories";
/// Annotation listing a Policy's controls, comma-separated.
pub const CONTROLS_ANNOTATION: &str = "policy.open-cluster-management.io/controls";

/// The name of a root Policy's replica in a cluster namespace: `<namespace>.<name>`.
pub fn replicated_name(root_namespace: &str, root_name: &str) -> String {
    format!("{root_namespace}.{root_name}")
}
