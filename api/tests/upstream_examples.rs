//! Objects written the way upstream OCM's documentation writes them decode into the typed
//! API and encode back without losing or adding anything.

use std::path::Path;

use garrison_api::addon::v1alpha1::{
    AddOnDeploymentConfig, AddOnTemplate, ClusterManagementAddOn, HubPermissionsBindingType,
    InstallStrategyType, ManagedClusterAddOn, RegistrationType,
};
use garrison_api::cluster::v1::{ManagedCluster, TaintEffect};
use garrison_api::cluster::v1alpha1::{AddOnPlacementScore, ClusterClaim, RolloutType};
use garrison_api::cluster::v1beta1::{
    Placement, PlacementDecision, PrioritizerPolicyMode, ScoreCoordinateType, TolerationOperator,
};
use garrison_api::cluster::v1beta2::{ManagedClusterSet, ManagedClusterSetBinding, SelectorType};
use garrison_api::work::v1::{
    AppliedManifestWork, DeletePropagationPolicyType, FeedBackType, ManifestWork,
    UpdateStrategyType, ValueType,
};
use garrison_api::work::v1alpha1::{CascadeDeletionPolicy, ManifestWorkReplicaSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The fixture as a JSON value.
fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name} is not valid YAML: {e}"))
}

/// Decodes the fixture into `T`, checks that encoding gives back exactly the fixture, and
/// returns the typed object for further checks.
fn round_trip<T: DeserializeOwned + Serialize>(name: &str) -> T {
    let original = fixture(name);
    let typed: T = serde_json::from_value(original.clone())
        .unwrap_or_else(|e| panic!("{name} does not decode: {e}"));
    let encoded = serde_json::to_value(&typed).expect("typed objects encode");
    assert!(
        encoded == original,
        "{name} changed in a round trip\n--- fixture ---\n{}\n--- encoded ---\n{}",
        serde_yaml::to_string(&original).unwrap(),
        serde_yaml::to_string(&encoded).unwrap(),
    );
    typed
}

/// Decoding `value` into `T` fails, with an error mentioning `needle`.
fn rejects<T: DeserializeOwned + std::fmt::Debug>(value: Value, needle: &str) {
    let err = serde_json::from_value::<T>(value).expect_err("the object should not decode");
    assert!(
        err.to_string().contains(needle),
        "error `{err}` does not mention `{needle}`"
    );
}

#[test]
fn a_managed_cluster_round_trips_without_loss() {
    let cluster: ManagedCluster = round_trip("managedcluster.yaml");
    assert_eq!(cluster.spec.hub_accepts_client, Some(true));
    assert_eq!(cluster.spec.taints[0].effect, TaintEffect::NoSelect);
    assert_eq!(
        cluster.spec.managed_cluster_client_configs[0]
            .ca_bundle
            .as_ref()
            .map(|b| b.0.as_slice()),
        Some(b"-----BEGIN CERTIFICATE-----\n".as_slice())
    );
    let status = cluster.status.expect("the fixture has a status");
    assert_eq!(status.capacity["memory"].0, "8052904Ki");
}

#[test]
fn a_cluster_set_with_the_exclusive_label_selector_round_trips_without_loss() {
    let set: ManagedClusterSet = round_trip("managedclusterset-exclusive.yaml");
    let selector = set
        .spec
        .cluster_selector
        .expect("the fixture has a selector");
    assert_eq!(
        selector.selector_type,
        Some(SelectorType::ExclusiveClusterSetLabel)
    );
}

#[test]
fn a_cluster_set_with_a_label_selector_round_trips_without_loss() {
    let set: ManagedClusterSet = round_trip("managedclusterset-labelselector.yaml");
    let selector = set
        .spec
        .cluster_selector
        .expect("the fixture has a selector");
    assert_eq!(selector.selector_type, Some(SelectorType::LabelSelector));
    assert!(selector.label_selector.is_some());
}

#[test]
fn a_cluster_set_written_without_spec_decodes_with_the_default_spec() {
    let set: ManagedClusterSet = serde_json::from_value(json!({
        "apiVersion": "cluster.open-cluster-management.io/v1beta2",
        "kind": "ManagedClusterSet",
        "metadata": {"name": "prod"},
    }))
    .expect("a cluster set without spec decodes");
    assert_eq!(set.spec, Default::default());
}

#[test]
fn a_cluster_set_binding_round_trips_without_loss() {
    let binding: ManagedClusterSetBinding = round_trip("managedclustersetbinding.yaml");
    assert_eq!(binding.spec.cluster_set, "app1");
}

#[test]
fn a_placement_round_trips_without_loss() {
    let placement: Placement = round_trip("placement.yaml");
    let spec = &placement.spec;
    assert_eq!(spec.number_of_clusters, Some(3));
    let policy = spec.prioritizer_policy.as_ref().expect("a policy");
    assert_eq!(policy.mode, Some(PrioritizerPolicyMode::Exact));
    assert_eq!(policy.configurations[0].score_coordinate.type_, None);
    assert_eq!(
        policy.configurations[2].score_coordinate.type_,
        Some(ScoreCoordinateType::AddOn)
    );
    assert_eq!(
        spec.tolerations[1].operator,
        Some(TolerationOperator::Exists)
    );
    let cel = spec.predicates[1]
        .required_cluster_selector
        .as_ref()
        .and_then(|s| s.cel_selector.as_ref())
        .expect("a CEL selector");
    assert_eq!(cel.cel_expressions.len(), 2);
    let groups = spec
        .decision_strategy
        .as_ref()
        .and_then(|d| d.group_strategy.as_ref())
        .expect("a group strategy");
    assert_eq!(
        groups.clusters_per_decision_group,
        Some(IntOrString::String("25%".into()))
    );
    assert_eq!(groups.decision_groups.len(), 2);
}

#[test]
fn a_placement_decision_round_trips_without_loss() {
    let decision: PlacementDecision = round_trip("placementdecision.yaml");
    let status = decision.status.expect("the fixture has a status");
    assert_eq!(status.decisions[1].cluster_name, "cluster2");
}

#[test]
fn an_add_on_placement_score_round_trips_without_loss() {
    let score: AddOnPlacementScore = round_trip("addonplacementscore.yaml");
    let status = score.status.expect("the fixture has a status");
    assert_eq!(status.scores[0].value, 66);
    assert!(status.valid_until.is_some());
}

#[test]
fn a_cluster_claim_round_trips_without_loss() {
    let claim: ClusterClaim = round_trip("clusterclaim.yaml");
    assert_eq!(claim.spec.value.as_deref(), Some("cluster1"));
}

#[test]
fn a_manifest_work_round_trips_without_loss() {
    let work: ManifestWork = round_trip("manifestwork.yaml");
    let spec = &work.spec;
    let manifests = &spec.workload.as_ref().expect("a workload").manifests;
    assert_eq!(manifests[1].0["kind"], "Deployment");
    let delete = spec.delete_option.as_ref().expect("a delete option");
    assert_eq!(
        delete.propagation_policy,
        Some(DeletePropagationPolicyType::SelectivelyOrphan)
    );
    let config = &spec.manifest_configs[0];
    assert_eq!(
        config.feedback_rules[0].type_,
        FeedBackType::WellKnownStatus
    );
    assert_eq!(config.feedback_rules[1].type_, FeedBackType::JsonPaths);
    assert_eq!(
        config.update_strategy.as_ref().and_then(|u| u.type_),
        Some(UpdateStrategyType::ServerSideApply)
    );
    let status = work.status.expect("the fixture has a status");
    let feedback = status.resource_status.expect("a resource status").manifests[1]
        .status_feedbacks
        .clone()
        .expect("feedback values");
    let types: Vec<ValueType> = feedback.values.iter().map(|v| v.value.type_).collect();
    assert_eq!(
        types,
        [
            ValueType::Integer,
            ValueType::String,
            ValueType::Boolean,
            ValueType::JsonRaw
        ]
    );
}

#[test]
fn an_applied_manifest_work_round_trips_without_loss() {
    let applied: AppliedManifestWork = round_trip("appliedmanifestwork.yaml");
    assert_eq!(applied.spec.manifest_work_name, "hello-work-demo");
    let status = applied.status.expect("the fixture has a status");
    assert_eq!(status.applied_resources.len(), 2);
}

#[test]
fn a_manifest_work_replica_set_with_a_progressive_rollout_round_trips_without_loss() {
    let set: ManifestWorkReplicaSet = round_trip("manifestworkreplicaset.yaml");
    let refs = &set.spec.placement_refs;
    let progressive = refs[1].rollout_strategy.as_ref().expect("a rollout");
    assert_eq!(progressive.type_, Some(RolloutType::Progressive));
    let settings = progressive
        .progressive
        .as_ref()
        .expect("progressive settings");
    assert_eq!(settings.config.min_success_time.as_deref(), Some("5m"));
    assert_eq!(
        settings.config.max_failures,
        Some(IntOrString::String("5%".into()))
    );
    let per_group = refs[2]
        .rollout_strategy
        .as_ref()
        .and_then(|r| r.progressive_per_group.as_ref())
        .expect("per-group settings");
    assert_eq!(per_group.config.max_failures, Some(IntOrString::Int(2)));
    assert_eq!(
        set.spec.cascade_deletion_policy,
        Some(CascadeDeletionPolicy::Foreground)
    );
}

#[test]
fn a_cluster_management_add_on_round_trips_without_loss() {
    let addon: ClusterManagementAddOn = round_trip("clustermanagementaddon.yaml");
    let strategy = addon.spec.install_strategy.expect("an install strategy");
    assert_eq!(strategy.type_, Some(InstallStrategyType::Placements));
    let rollout = strategy.placements[0]
        .rollout_strategy
        .as_ref()
        .and_then(|r| r.progressive.as_ref())
        .expect("a progressive rollout");
    assert_eq!(rollout.max_concurrency, Some(IntOrString::Int(1)));
}

#[test]
fn a_managed_cluster_add_on_round_trips_without_loss() {
    let addon: ManagedClusterAddOn = round_trip("managedclusteraddon.yaml");
    assert_eq!(addon.spec.install_namespace.as_deref(), Some("helloworld"));
    let status = addon.status.expect("the fixture has a status");
    assert_eq!(
        status.registrations[0].signer_name,
        "kubernetes.io/kube-apiserver-client"
    );
}

#[test]
fn an_add_on_template_round_trips_without_loss() {
    let template: AddOnTemplate = round_trip("addontemplate.yaml");
    let registration = template.spec.registration.expect("registrations");
    assert_eq!(registration[0].type_, RegistrationType::KubeClient);
    let permissions = &registration[0]
        .kube_client
        .as_ref()
        .expect("kube client settings")
        .hub_permissions;
    assert_eq!(
        permissions[1].type_,
        HubPermissionsBindingType::SingleNamespace
    );
    assert_eq!(registration[1].type_, RegistrationType::CustomSigner);
}

#[test]
fn an_add_on_deployment_config_round_trips_without_loss() {
    let config: AddOnDeploymentConfig = round_trip("addondeploymentconfig.yaml");
    assert_eq!(config.spec.customized_variables[0].name, "LOG_LEVEL");
    assert_eq!(config.spec.replica_configs[0].replicas, 2);
}

#[test]
fn a_taint_with_an_unknown_effect_is_rejected() {
    let mut cluster = fixture("managedcluster.yaml");
    cluster["spec"]["taints"][0]["effect"] = json!("NoSchedule");
    rejects::<ManagedCluster>(cluster, "NoSchedule");
}

#[test]
fn a_cluster_set_with_an_unknown_selector_type_is_rejected() {
    let mut set = fixture("managedclusterset-labelselector.yaml");
    set["spec"]["clusterSelector"]["selectorType"] = json!("LegacyClusterSetLabel");
    rejects::<ManagedClusterSet>(set, "LegacyClusterSetLabel");
}

#[test]
fn a_feedback_rule_type_in_the_wrong_case_is_rejected() {
    let mut work = fixture("manifestwork.yaml");
    work["spec"]["manifestConfigs"][0]["feedbackRules"][1]["type"] = json!("JsonPaths");
    rejects::<ManifestWork>(work, "JsonPaths");
}

#[test]
fn an_unknown_update_strategy_type_is_rejected() {
    let mut work = fixture("manifestwork.yaml");
    work["spec"]["manifestConfigs"][0]["updateStrategy"]["type"] = json!("Patch");
    rejects::<ManifestWork>(work, "Patch");
}

#[test]
fn an_unknown_rollout_type_is_rejected() {
    let mut set = fixture("manifestworkreplicaset.yaml");
    set["spec"]["placementRefs"][0]["rolloutStrategy"]["type"] = json!("Canary");
    rejects::<ManifestWorkReplicaSet>(set, "Canary");
}

#[test]
fn a_prioritizer_mode_outside_additive_and_exact_is_rejected() {
    let mut placement = fixture("placement.yaml");
    placement["spec"]["prioritizerPolicy"]["mode"] = json!("Balanced");
    rejects::<Placement>(placement, "Balanced");
}

#[test]
fn null_lists_written_by_go_clients_decode_as_empty() {
    let placement: Placement = serde_json::from_value(json!({
        "apiVersion": "cluster.open-cluster-management.io/v1beta1",
        "kind": "Placement",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"clusterSets": null, "predicates": null, "tolerations": null},
        "status": {"numberOfSelectedClusters": 0, "decisionGroups": null, "conditions": null},
    }))
    .expect("null lists decode");
    assert!(placement.spec.cluster_sets.is_empty());
    let status = placement.status.expect("a status");
    assert_eq!(status.conditions, None);
}
