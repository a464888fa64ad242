//! Rust types for the Open Cluster Management (OCM) APIs served and used by Garrison.
//!
//! The crate mirrors upstream OCM's Go API packages (`open-cluster-management.io/api`):
//! one module per API group and version, each holding the custom resource kinds of that
//! version together with their spec and status types.
//!
//! | Group | Versions |
//! | --- | --- |
//! | `cluster.open-cluster-management.io` | [`cluster::v1`], [`cluster::v1beta1`], [`cluster::v1beta2`], [`cluster::v1alpha1`] |
//! | `work.open-cluster-management.io` | [`work::v1`], [`work::v1alpha1`] |
//! | `addon.open-cluster-management.io` | [`addon::v1alpha1`], [`addon::v1beta1`] |
//! | `policy.open-cluster-management.io` | [`policy::v1`], [`policy::v1beta1`] |
//! | `rbac.open-cluster-management.io` | [`rbac::v1alpha1`] |
//! | `authentication.open-cluster-management.io` | [`authentication::v1beta1`], [`authentication::v1alpha1`] |
//!
//! Besides the types, the crate holds
//! - [`conditions`]: well-known condition types and reasons as string constants,
//! - [`labels`]: well-known labels, annotations, taints, finalizers and object names,
//! - [`status`]: helpers to find and set entries of a status condition list,
//! - [`crds`]: every `CustomResourceDefinition` the crate defines, and their YAML form,
//! - [`schema`]: schema functions for fields that hold arbitrary embedded objects,
//! - [`selector`]: `metav1.LabelSelector` checked and matched as apimachinery does,
//! - [`structural`]: structural-schema pruning, defaulting and validation, as kube-apiserver
//!   applies a CustomResourceDefinition's schema.
//!
//! The types are written so that objects in the shape upstream writes them deserialize and
//! serialize back without loss: optional fields are `Option`s or empty-skipping collections,
//! and defaults live only in the generated CRD schemas, never as Rust-side values. The crate
//! does no I/O.

pub mod addon;
pub mod authentication;
pub mod cluster;
pub mod conditions;
pub mod crds;
pub mod labels;
pub mod policy;
pub mod rbac;
pub mod schema;
pub mod selector;
pub mod status;
pub mod structural;
pub mod work;

mod lenient;

pub use addon::v1alpha1::{
    AddOnDeploymentConfig, AddOnTemplate, ClusterManagementAddOn, ManagedClusterAddOn,
};
pub use authentication::v1beta1::ManagedServiceAccount;
pub use cluster::v1::ManagedCluster;
pub use cluster::v1alpha1::{AddOnPlacementScore, ClusterClaim};
pub use cluster::v1beta1::{Placement, PlacementDecision};
pub use cluster::v1beta2::{ManagedClusterSet, ManagedClusterSetBinding};
pub use rbac::v1alpha1::ClusterPermission;
pub use work::v1::{AppliedManifestWork, ManifestWork};
pub use work::v1alpha1::ManifestWorkReplicaSet;
