//! The `work.open-cluster-management.io` API group: manifest works, their applied records on
//! managed clusters, and replica sets that fan manifest works out over placements.

pub mod v1;
pub mod v1alpha1;

/// The API group name.
pub const GROUP: &str = "work.open-cluster-management.io";
