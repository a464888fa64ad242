//! `authentication.open-cluster-management.io/v1alpha1`, still served: the same shape as
//! v1beta1, so the versions convert by their `apiVersion` alone.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::v1beta1::{ManagedServiceAccountStatus, Rotation, SecretRef};

/// A ServiceAccount on a managed cluster, at the older version.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "authentication.open-cluster-management.io",
    version = "v1alpha1",
    kind = "ManagedServiceAccount",
    namespaced,
    status = "ManagedServiceAccountStatus",
    derive = "PartialEq",
    doc = "A ServiceAccount on the managed cluster whose namespace holds this object (the \
           older version of the same kind)."
)]
#[serde(rename_all = "camelCase")]
pub struct ManagedServiceAccountSpec {
    /// How the token is rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,

    /// Seconds after creation when the ManagedServiceAccount is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub ttl_seconds_after_creation: Option<i32>,
}
