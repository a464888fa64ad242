//! `rbac.open-cluster-management.io`: ClusterPermission, RBAC written once on the hub and
//! delivered to one managed cluster.

pub mod v1alpha1;
