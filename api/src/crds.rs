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
        constrain_conditions(&mut value);
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

/// The properties of `metav1.Condition`, in its schema.
const CONDITION_PROPERTIES: [&str; 6] = [
    "lastTransitionTime",
    "message",
    "observedGeneration",
    "reason",
    "status",
    "type",
];

/// Gives every `metav1.Condition` in a schema the validation upstream's CRDs carry (the
/// markers of the Go type, which the derive does not know): `type` a qualified name of at most
/// 316 characters, `status` one of True, False and Unknown, `reason` a CamelCase identifier of
/// 1 to 1024 characters, `message` at most 32768 characters, `observedGeneration` not negative.
/// kube-apiserver with upstream's CRDs refuses a status that breaks them; so does Garrison's.
fn constrain_conditions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let is_condition = map
                .get("properties")
                .and_then(Value::as_object)
                .is_some_and(|p| {
                    p.len() == CONDITION_PROPERTIES.len()
                        && CONDITION_PROPERTIES.iter().all(|k| p.contains_key(*k))
                });
            if is_condition {
                let p = map["properties"]
                    .as_object_mut()
                    .expect("checked to be an object");
                let mut add = |field: &str, extra: Value| {
                    if let (Some(f), Value::Object(extra)) =
                        (p.get_mut(field).and_then(Value::as_object_mut), extra)
                    {
                        f.extend(extra);
                    }
                };
                add(
                    "type",
                    json!({"maxLength": 316, "pattern": crate::status::CONDITION_TYPE_PATTERN}),
                );
                add("status", json!({"enum": ["True", "False", "Unknown"]}));
                add(
                    "reason",
                    json!({"minLength": 1, "maxLength": 1024, "pattern": crate::status::CONDITION_REASON_PATTERN}),
                );
                add("message", json!({"maxLength": 32768}));
                add("observedGeneration", json!({"minimum": 0}));
            }
            map.values_mut().for_each(constrain_conditions);
        }
        Value::Array(items) => items.iter_mut().for_each(constrain_conditions),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the condition schemas under `v`, and those that carry upstream's rules.
    fn conditions(v: &Value, found: &mut (usize, usize)) {
        match v {
            Value::Object(m) => {
                if let Some(p) = m.get("properties").and_then(Value::as_object)
                    && p.contains_key("lastTransitionTime")
                    && p.contains_key("reason")
                {
                    found.0 += 1;
                    if p["message"]["maxLength"] == 32768
                        && p["reason"]["minLength"] == 1
                        && p["status"]["enum"] == json!(["True", "False", "Unknown"])
                        && p["type"]["maxLength"] == 316
                    {
                        found.1 += 1;
                    }
                }
                m.values().for_each(|x| conditions(x, found));
            }
            Value::Array(a) => a.iter().for_each(|x| conditions(x, found)),
            _ => {}
        }
    }

    #[test]
    fn every_condition_carries_the_rules_of_metav1_condition() {
        let mut found = (0, 0);
        for crd in all_json() {
            conditions(&crd, &mut found);
        }
        assert!(found.0 >= 20, "{found:?}");
        assert_eq!(found.0, found.1, "{found:?}");
        // The patterns compile and judge as kube-apiserver does.
        let reason = regex::Regex::new(crate::status::CONDITION_REASON_PATTERN).unwrap();
        assert!(reason.is_match("PolicyViolation") && reason.is_match("A_b,c:D"));
        assert!(
            !reason.is_match("Policy Violation")
                && !reason.is_match("1st")
                && !reason.is_match("x-y")
        );
        let type_ = regex::Regex::new(crate::status::CONDITION_TYPE_PATTERN).unwrap();
        assert!(type_.is_match("Applied") && type_.is_match("example.com/Ready-1"));
        assert!(!type_.is_match("Has space") && !type_.is_match("-lead"));
    }
}
