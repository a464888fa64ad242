//! `authentication.open-cluster-management.io`: ManagedServiceAccount, a ServiceAccount on a
//! managed cluster whose token is projected back to the hub.

pub mod v1alpha1;
pub mod v1beta1;
