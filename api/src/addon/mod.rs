//! The `addon.open-cluster-management.io` API group: add-on registrations, per-cluster add-on
//! instances, add-on templates and add-on deployment configurations.

pub mod v1alpha1;
pub mod v1beta1;

/// The API group name.
pub const GROUP: &str = "addon.open-cluster-management.io";
