//! `authentication.open-cluster-management.io/v1beta1` (the stored version): the
//! `ManagedServiceAccount` kind, in upstream's shape (open-cluster-management-io/managed-serviceaccount).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::lenient::null_as_default;

/// The token validity when none is given: 360 days, as upstream.
pub const DEFAULT_VALIDITY: &str = "8640h0m0s";
/// Label on the ServiceAccount on the managed cluster and on the token Secret on the hub.
pub const MANAGED_LABEL: &str =
    "authentication.open-cluster-management.io/is-managed-serviceaccount";

/// A ServiceAccount on the managed cluster whose namespace holds this object, with a token
/// the agent requests, rotates and reports into a Secret of the same name beside it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "authentication.open-cluster-management.io",
    version = "v1beta1",
    kind = "ManagedServiceAccount",
    namespaced,
    status = "ManagedServiceAccountStatus",
    derive = "PartialEq",
    doc = "A ServiceAccount on the managed cluster whose namespace holds this object; its \
           token is reported to the hub in a Secret of the same name, and rotated."
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

/// Token rotation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// Deprecated: tokens are always rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub enabled: Option<bool>,

    /// The lifetime of each token, a duration such as `8640h0m0s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = DEFAULT_VALIDITY))]
    pub validity: Option<String>,
}

/// Observed state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedServiceAccountStatus {
    /// `SecretCreated` and `TokenReported`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conditions: Vec<Condition>,

    /// When the current token expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_timestamp: Option<Time>,

    /// The Secret holding the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretRef>,
}

/// A reference to the token Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret.
    pub name: String,
    /// When the token was last refreshed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh_timestamp: Option<Time>,
}
