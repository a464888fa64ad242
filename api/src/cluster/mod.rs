//! The `cluster.open-cluster-management.io` API group: managed clusters, cluster sets,
//! placements and their decisions, cluster claims, add-on scores and rollout strategies.

pub mod v1;
pub mod v1alpha1;
pub mod v1beta1;
pub mod v1beta2;

/// The API group name.
pub const GROUP: &str = "cluster.open-cluster-management.io";
