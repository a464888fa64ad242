//! Every `CustomResourceDefinition` of the crate, in the form Garrison installs and serves.
//!
//! [`all`] is the canonical source: it takes each kind's derived CRD and adjusts the schema
//! to match upstream where the derive cannot express it (see [`all`]). The YAML files under
//! `deploy/crds/` are [`to_yaml`] of these, named by [`file_name`]; regenerate them with
//! `cargo run -p garrison-api --example gen_crds`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, ValidationRule,
};
use kube::CustomResourceExt;
use serde_json::{Map, Value, json};

use crate::{addon, authentication, cluster, policy, rbac, work};

/// Every CRD of the crate, ordered by group, then kind; last the PlacementBinding and
/// PolicyReport CRDs, which are written by hand since their kinds have no `spec`.
///
/// Compared with each kind's `crd()`, the schemas here
/// - name their list kind (`<Kind>List`) and carry `apiVersion`, `kind` and `metadata`
///   properties at the root, as upstream's do;
/// - have no `nullable`, except where upstream marks a field nullable, so the API server
///   drops explicit nulls and applies defaults as it does for upstream's CRDs;
/// - carry upstream's CEL rules that the derive cannot express.
pub fn all() -> Vec<CustomResourceDefinition> {
    [
        addon::v1alpha1::AddOnDeploymentConfig::crd(),
        addon::v1alpha1::AddOnTemplate::crd(),
        served_both(
            addon::v1alpha1::ClusterManagementAddOn::crd(),
            addon::v1beta1::ClusterManagementAddOn::crd(),
        ),
        served_both(
            addon::v1alpha1::ManagedClusterAddOn::crd(),
            addon::v1beta1::ManagedClusterAddOn::crd(),
        ),
        served_both(
            authentication::v1beta1::ManagedServiceAccount::crd(),
            authentication::v1alpha1::ManagedServiceAccount::crd(),
        ),
        cluster::v1alpha1::AddOnPlacementScore::crd(),
        cluster::v1alpha1::ClusterClaim::crd(),
        cluster::v1::ManagedCluster::crd(),
        cluster::v1beta2::ManagedClusterSet::crd(),
        cluster::v1beta2::ManagedClusterSetBinding::crd(),
        cluster::v1beta1::Placement::crd(),
        cluster::v1beta1::PlacementDecision::crd(),
        policy::v1::Policy::crd(),
        policy::v1beta1::PolicySet::crd(),
        rbac::v1alpha1::ClusterPermission::crd(),
        work::v1::AppliedManifestWork::crd(),
        work::v1::ManifestWork::crd(),
        work::v1alpha1::ManifestWorkReplicaSet::crd(),
    ]
    .into_iter()
    .map(finish)
    .chain([
        policy::v1::placement_binding_crd(),
        policy::report::policy_report_crd(),
    ])
    .collect()
}

/// Every CRD as JSON, ready to be installed.
pub fn all_json() -> Vec<Value> {
    all()
        .iter()
        .map(|c| serde_json::to_value(c).expect("a CustomResourceDefinition serializes"))
        .collect()
}

/// The CRD as a YAML document.
pub fn to_yaml(crd: &CustomResourceDefinition) -> String {
    serde_yaml::to_string(crd).expect("a CustomResourceDefinition serializes to YAML")
}

/// File name of the CRD's YAML document: `<plural>.<group>.yaml`, such as
/// `managedclusters.cluster.open-cluster-management.io.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.{}.yaml", crd.spec.names.plural, crd.spec.group)
}

/// Schema paths, below the root, of fields upstream marks `+nullable`, per kind.
const NULLABLE_FIELDS: &[(&str, &[&str])] =
    &[("ManagedCluster", &["spec", "taints", "items", "timeAdded"])];

/// One CRD serving a kind at two versions, stored at the first (as upstream stores add-ons
/// at v1alpha1 and serves v1beta1 beside it).
fn served_both(
    stored: CustomResourceDefinition,
    also: CustomResourceDefinition,
) -> CustomResourceDefinition {
    let version = stored.spec.versions[0].name.clone();
    kube::core::crd::merge_crds(vec![stored, also], &version)
        .expect("two versions of one kind merge into one CRD")
}

fn finish(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let kind = crd.spec.names.kind.clone();
    crd.spec.names.list_kind = Some(format!("{kind}List"));
    for version in &mut crd.spec.versions {
        let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        let mut value = serde_json::to_value(&*schema).expect("a schema serializes to JSON");
        strip_nullable(&mut value);
        if let Some(root) = value.as_object_mut() {
            root.remove("title");
            add_object_meta_properties(root);
        }
        for (nullable_kind, path) in NULLABLE_FIELDS {
            if *nullable_kind == kind {
                mark_nullable(&mut value, path);
            }
        }
        *schema = serde_json::from_value::<JSONSchemaProps>(value)
            .expect("an adjusted schema is still a schema");
        if kind == "ManagedClusterSetBinding" {
            schema.x_kubernetes_validations = Some(vec![ValidationRule {
                rule: cluster::v1beta2::BINDING_NAME_RULE.into(),
                message: Some(cluster::v1beta2::BINDING_NAME_RULE_MESSAGE.into()),
                ..Default::default()
            }]);
        }
    }
    crd
}

/// Removes every `nullable` keyword from a schema.
fn strip_nullable(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("nullable");
            map.values_mut().for_each(strip_nullable);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nullable),
        _ => {}
    }
}

/// Adds the `apiVersion`, `kind` and `metadata` properties every object has.
fn add_object_meta_properties(root: &mut Map<String, Value>) {
    let properties = root
        .entry("properties")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("a root schema's properties are an object");
    properties.insert(
        "apiVersion".into(),
        json!({
            "description": "Versioned schema of this representation of the object.",
            "type": "string",
        }),
    );
    properties.insert(
        "kind".into(),
        json!({
            "description": "Kind of REST resource this object represents.",
            "type": "string",
        }),
    );
    properties.insert("metadata".into(), json!({"type": "object"}));
}

/// Marks the schema at `path` nullable. Each path step names a property, or `items` for the
/// item schema of an array.
fn mark_nullable(root: &mut Value, path: &[&str]) {
    let mut node = root;
    for step in path {
        node = if *step == "items" {
            &mut node["items"]
        } else {
            &mut node["properties"][*step]
        };
    }
    if let Some(map) = node.as_object_mut() {
        map.insert("nullable".into(), Value::Bool(true));
    }
}
