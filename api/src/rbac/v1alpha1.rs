//! `rbac.open-cluster-management.io/v1alpha1`: the `ClusterPermission` kind, in upstream's
//! shape (open-cluster-management-io/cluster-permission).

use k8s_openapi::api::rbac::v1::{PolicyRule, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::lenient::null_as_default;

/// RBAC for one managed cluster: a ClusterRole, Roles and their bindings, created on the
/// cluster whose namespace the ClusterPermission lives in.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "rbac.open-cluster-management.io",
    version = "v1alpha1",
    kind = "ClusterPermission",
    namespaced,
    status = "ClusterPermissionStatus",
    derive = "PartialEq",
    doc = "RBAC written on the hub, in a managed cluster's namespace, and applied on that \
           cluster: a ClusterRole, Roles, and the bindings that grant them."
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPermissionSpec {
    /// Only check that the referenced roles exist on the cluster; create no roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<bool>,

    /// The ClusterRole to create, named after the ClusterPermission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_role: Option<ClusterRoleSpec>,

    /// A ClusterRoleBinding; ignored when `clusterRoleBindings` is not empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_role_binding: Option<ClusterRoleBindingSpec>,

    /// ClusterRoleBindings.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cluster_role_bindings: Vec<ClusterRoleBindingSpec>,

    /// Roles, each in a namespace or in the namespaces a selector picks.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub roles: Vec<RoleSpec>,

    /// RoleBindings, each in a namespace or in the namespaces a selector picks.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub role_bindings: Vec<RoleBindingSpec>,
}

/// The rules of the ClusterRole.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRoleSpec {
    /// The rules.
    #[serde(default, deserialize_with = "null_as_default")]
    pub rules: Vec<PolicyRule>,
}

/// A ClusterRoleBinding.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRoleBindingSpec {
    /// Its name; the ClusterPermission's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// One subject; `subjects` wins when both are set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,

    /// Subjects.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub subjects: Vec<Subject>,

    /// The role bound; the ClusterPermission's ClusterRole when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_ref: Option<RoleRef>,
}

/// A Role.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleSpec {
    /// Namespace of the Role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// Namespaces of the Role, picked by label on the hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// The rules.
    #[serde(default, deserialize_with = "null_as_default")]
    pub rules: Vec<PolicyRule>,
}

/// A RoleBinding.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleBindingSpec {
    /// Its name; the ClusterPermission's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// Namespace of the RoleBinding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// Namespaces of the RoleBinding, picked by label on the hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// One subject; `subjects` wins when both are set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,

    /// Subjects.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub subjects: Vec<Subject>,

    /// The role bound.
    pub role_ref: RoleRef,
}

/// A reference to a Role or ClusterRole.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleRef {
    /// `Role` or `ClusterRole`.
    #[serde(default)]
    pub kind: String,

    /// API group of the role; set together with `name`, or neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,

    /// Name of the role; the ClusterPermission's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Observed state: conditions and the state of each delivered object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPermissionStatus {
    /// `AppliedRBACManifestWork`, `Validation`, `ValidateRolesExist`,
    /// `ValidateClusterRolesExist`, `Applied`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conditions: Vec<Condition>,

    /// The state of each delivered object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_status: Option<ResourceStatus>,
}

/// The state of the delivered objects, by kind.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// ClusterRoles.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cluster_roles: Vec<ResourceStatusEntry>,
    /// ClusterRoleBindings.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cluster_role_bindings: Vec<ResourceStatusEntry>,
    /// Roles.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub roles: Vec<ResourceStatusEntry>,
    /// RoleBindings.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub role_bindings: Vec<ResourceStatusEntry>,
}

/// The state of one delivered object. The key of its conditions is `condition`, singular, as
/// upstream spells it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatusEntry {
    /// Name.
    pub name: String,
    /// Namespace, for namespaced objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Conditions.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub condition: Vec<Condition>,
}
