//! `policy.open-cluster-management.io/v1`: Policy and PlacementBinding, in upstream's shape
//! (open-cluster-management-io/governance-policy-propagator).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::lenient::null_as_default;

/// A policy: templates every cluster it is bound to evaluates, and how to remediate.
// The printer columns repeat `type_ = "string"`, which clippy takes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "policy.open-cluster-management.io",
    version = "v1",
    kind = "Policy",
    namespaced,
    status = "PolicyStatus",
    shortname = "plc",
    derive = "PartialEq",
    doc = "Policy templates written once on the hub, replicated to the clusters a \
           PlacementBinding binds it to, evaluated there, and aggregated back.",
    printcolumn(
        name = "Remediation action",
        type_ = "string",
        json_path = ".spec.remediationAction"
    ),
    printcolumn(
        name = "Compliance state",
        type_ = "string",
        json_path = ".status.compliant"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PolicySpec {
    /// Stops propagation: the replicas are removed.
    #[serde(default)]
    pub disabled: bool,

    /// Whether the Policy's labels and annotations are copied to its replicas (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_policy_metadata: Option<bool>,

    /// `Inform` or `Enforce` (any case); overrides the templates' own when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(?:[Ii]nform|[Ee]nforce)$"))]
    pub remediation_action: Option<String>,

    /// The policy templates.
    #[serde(
        default,
        rename = "policy-templates",
        deserialize_with = "null_as_default"
    )]
    pub policy_templates: Vec<PolicyTemplate>,

    /// Policies, PolicySets or templates that must reach a compliance state first.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dependencies: Vec<PolicyDependency>,

    /// Options of hub templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown_object")]
    pub hub_template_options: Option<serde_json::Value>,
}

/// One policy template.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTemplate {
    /// The template object: a ConfigurationPolicy, a Gatekeeper ConstraintTemplate or
    /// Constraint, or another policy kind.
    #[schemars(schema_with = "crate::schema::preserve_unknown_object")]
    pub object_definition: serde_json::Value,

    /// Dependencies of this template only.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub extra_dependencies: Vec<PolicyDependency>,

    /// Whether a Pending template counts as compliant in the Policy's aggregate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_pending: Option<bool>,
}

/// A dependency: the object that must reach `compliance` before a template is evaluated.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyDependency {
    /// API version of the dependency (default the Policy's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the dependency (default Policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name.
    pub name: String,
    /// Namespace (default the Policy's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Compliant, NonCompliant or Pending, as the dependency's `status.compliant` must read
    /// (upstream requires it; a dependency without it waits for Compliant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance: Option<String>,
}

/// Observed state of a Policy: on a root, its placements and per-cluster compliance; on a
/// replica, its templates' details.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    /// The bindings and placements that select this Policy, with their decisions.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub placement: Vec<PlacementStatus>,

    /// Compliance per cluster (on a root Policy).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub status: Vec<CompliancePerClusterStatus>,

    /// Compliant, NonCompliant or Pending; empty while unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliant: Option<String>,

    /// Details per template (on a replica).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub details: Vec<DetailsPerTemplate>,
}

/// A binding that selects the Policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementStatus {
    /// The PlacementBinding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement_binding: Option<String>,
    /// The Placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
    /// The PlacementRule (not served by Garrison).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement_rule: Option<String>,
    /// The PolicySet through which the Policy is bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_set: Option<String>,
    /// The clusters decided.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub decisions: Vec<PlacementDecisionRef>,
}

/// One decided cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementDecisionRef {
    /// The cluster.
    pub cluster_name: String,
    /// Its namespace on the hub.
    #[serde(default)]
    pub cluster_namespace: String,
}

/// Compliance of one cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct CompliancePerClusterStatus {
    /// The cluster.
    #[serde(default)]
    pub clustername: String,
    /// Its namespace on the hub.
    #[serde(default)]
    pub clusternamespace: String,
    /// Its compliance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliant: Option<String>,
}

/// The state of one template, with its history.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DetailsPerTemplate {
    /// The template's apiVersion, kind and name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown_object")]
    pub template_meta: Option<serde_json::Value>,
    /// Its compliance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliant: Option<String>,
    /// Its compliance events, newest first, at most 10.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub history: Vec<ComplianceHistory>,
}

/// One compliance event.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceHistory {
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_timestamp: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// `Compliant; ...` or `NonCompliant; ...`.
    #[serde(default)]
    pub message: String,
    /// The compliance event's name.
    #[serde(default)]
    pub event_name: String,
}

/// A PlacementBinding: which Policies and PolicySets a Placement selects clusters for. As
/// upstream, it has no `spec`: its fields are at the top level.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlacementBinding {
    /// `policy.open-cluster-management.io/v1`.
    #[serde(default)]
    pub api_version: String,
    /// `PlacementBinding`.
    #[serde(default)]
    pub kind: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The Placement (or PlacementRule).
    pub placement_ref: PlacementSubject,
    /// The Policies and PolicySets bound.
    #[serde(default, deserialize_with = "null_as_default")]
    pub subjects: Vec<Subject>,
    /// Overrides for the bound policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding_overrides: Option<BindingOverrides>,
    /// `restricted`: the binding applies only to its subjects, not to what they pull in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_filter: Option<String>,
}

/// The placement of a binding.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlacementSubject {
    /// `cluster.open-cluster-management.io` or `apps.open-cluster-management.io`.
    #[serde(default)]
    pub api_group: String,
    /// `Placement` or `PlacementRule`.
    #[serde(default)]
    pub kind: String,
    /// Its name, in the binding's namespace.
    pub name: String,
}

/// A bound Policy or PolicySet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// `policy.open-cluster-management.io`.
    #[serde(default)]
    pub api_group: String,
    /// `Policy` or `PolicySet`.
    #[serde(default)]
    pub kind: String,
    /// Its name, in the binding's namespace.
    pub name: String,
}

/// Overrides a binding applies to its policies.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BindingOverrides {
    /// `Enforce` (any case) turns the bound policies to enforce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation_action: Option<String>,
}

/// The PlacementBinding CRD, written by hand since the kind has no `spec`.
pub fn placement_binding_crd() -> CustomResourceDefinition {
    let name_ref = |groups: &[&str], kinds: &[&str]| {
        json!({"type": "object", "required": ["name", "apiGroup", "kind"], "properties": {
            "apiGroup": {"type": "string", "enum": groups},
            "kind": {"type": "string", "enum": kinds},
            "name": {"type": "string", "minLength": 1},
        }})
    };
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "placementbindings.policy.open-cluster-management.io"},
        "spec": {
            "group": "policy.open-cluster-management.io",
            "names": {"kind": "PlacementBinding", "listKind": "PlacementBindingList",
                "plural": "placementbindings", "singular": "placementbinding", "shortNames": ["pb"]},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "description": "Binds Policies and PolicySets to a Placement.",
                    "type": "object", "required": ["placementRef", "subjects"],
                    "properties": {
                        "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "placementRef": name_ref(
                            &["cluster.open-cluster-management.io", "apps.open-cluster-management.io"],
                            &["Placement", "PlacementRule"]),
                        "subjects": {"type": "array", "minItems": 1, "items": name_ref(
                            &["policy.open-cluster-management.io"], &["Policy", "PolicySet"])},
                        "bindingOverrides": {"type": "object", "properties": {
                            "remediationAction": {"type": "string", "enum": ["Enforce", "enforce"]}}},
                        "subFilter": {"type": "string", "enum": ["restricted"]},
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    },
                }},
            }],
        },
    }))
    .expect("the PlacementBinding CRD is a CRD")
}

/// The ConfigurationPolicy CRD, for managed clusters: the policy add-on writes each
/// ConfigurationPolicy template of a replicated Policy there, with its evaluation as status
/// (`compliant`, `compliancyDetails`, `relatedObjects`, `lastEvaluated`), as upstream's
/// configuration policy controller does. The add-on parses the spec itself, so the schema
/// keeps what upstream's CRD fixes and preserves the rest.
pub fn configuration_policy_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "configurationpolicies.policy.open-cluster-management.io"},
        "spec": {
            "group": "policy.open-cluster-management.io",
            "names": {"kind": "ConfigurationPolicy", "listKind": "ConfigurationPolicyList",
                "plural": "configurationpolicies", "singular": "configurationpolicy"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Compliance state", "type": "string", "jsonPath": ".status.compliant"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": {
                    "description": "A ConfigurationPolicy template of a replicated Policy, and its evaluation on this cluster.",
                    "type": "object",
                    "properties": {
                        "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                            "properties": {
                                "remediationAction": {"type": "string",
                                    "enum": ["Inform", "inform", "Enforce", "enforce", "InformOnly", "informOnly"]},
                                "severity": {"type": "string",
                                    "enum": ["low", "Low", "medium", "Medium", "high", "High", "critical", "Critical"]},
                                "pruneObjectBehavior": {"type": "string",
                                    "enum": ["DeleteAll", "DeleteIfCreated", "None"]},
                            }},
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    },
                }},
            }],
        },
    }))
    .expect("the ConfigurationPolicy CRD is a CRD")
}

impl kube::Resource for PlacementBinding {
    type DynamicType = ();
    type Scope = kube::core::NamespaceResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        "PlacementBinding".into()
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        super::GROUP.into()
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        "placementbindings".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}
