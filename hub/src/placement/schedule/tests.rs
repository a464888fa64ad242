//! Scenario tests of the scheduler, each worked out by hand from upstream OCM's documented and
//! implemented semantics.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use garrison_api::cluster::v1alpha1::AddOnPlacementScore;
use garrison_api::cluster::v1beta1::Placement;
use garrison_api::cluster::v1beta2::ManagedClusterSet;
use garrison_api::{ManagedCluster, ManagedClusterSetBinding};
use serde_json::{Value, json};

use super::*;

const NOW: i64 = 1_800_000_000;

fn now() -> jiff::Timestamp {
    jiff::Timestamp::from_second(NOW).unwrap()
}

fn at(secs_from_now: i64) -> String {
    jiff::Timestamp::from_second(NOW + secs_from_now)
        .unwrap()
        .to_string()
}

fn cluster(name: &str, extra: Value) -> Arc<ManagedCluster> {
    let mut v = json!({
        "apiVersion": "cluster.open-cluster-management.io/v1", "kind": "ManagedCluster",
        "metadata": {"name": name, "labels": {"cluster.open-cluster-management.io/clusterset": "prod"}},
        "spec": {"hubAcceptsClient": true}
    });
    merge(&mut v, extra);
    Arc::new(serde_json::from_value(v).unwrap())
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

fn set(name: &str, selector: Value) -> (String, Arc<ManagedClusterSet>) {
    let v = json!({
        "apiVersion": "cluster.open-cluster-management.io/v1beta2", "kind": "ManagedClusterSet",
        "metadata": {"name": name}, "spec": {"clusterSelector": selector}
    });
    (
        name.to_string(),
        Arc::new(serde_json::from_value(v).unwrap()),
    )
}

fn binding(set: &str) -> Arc<ManagedClusterSetBinding> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "cluster.open-cluster-management.io/v1beta2", "kind": "ManagedClusterSetBinding",
            "metadata": {"name": set, "namespace": "apps"}, "spec": {"clusterSet": set}
        }))
        .unwrap(),
    )
}

fn placement(spec: Value) -> Placement {
    serde_json::from_value(json!({
        "apiVersion": "cluster.open-cluster-management.io/v1beta1", "kind": "Placement",
        "metadata": {"name": "p", "namespace": "apps"}, "spec": spec
    }))
    .unwrap()
}

#[derive(Default)]
struct Scores(HashMap<(String, String), Arc<AddOnPlacementScore>>);

impl ScoreSource for Scores {
    fn score(&self, cluster: &str, resource: &str) -> Option<Arc<AddOnPlacementScore>> {
        self.0
            .get(&(cluster.to_string(), resource.to_string()))
            .cloned()
    }
}

fn score(
    cluster: &str,
    resource: &str,
    items: Value,
    valid_until: Option<String>,
) -> Arc<AddOnPlacementScore> {
    let mut status = json!({"scores": items});
    if let Some(u) = valid_until {
        status["validUntil"] = json!(u);
    }
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "cluster.open-cluster-management.io/v1alpha1", "kind": "AddOnPlacementScore",
            "metadata": {"name": resource, "namespace": cluster}, "status": status
        }))
        .unwrap(),
    )
}

/// A fleet and what the scheduler reads besides the placement.
struct World {
    clusters: Vec<Arc<ManagedCluster>>,
    sets: BTreeMap<String, Arc<ManagedClusterSet>>,
    bindings: Vec<Arc<ManagedClusterSetBinding>>,
    existing: BTreeSet<String>,
    others: HashMap<String, u32>,
    scores: Scores,
}

impl World {
    /// Clusters in set `prod`, bound in the placement's namespace.
    fn new(clusters: Vec<Arc<ManagedCluster>>) -> Self {
        World {
            clusters,
            sets: [set(
                "prod",
                json!({"selectorType": "ExclusiveClusterSetLabel"}),
            )]
            .into(),
            bindings: vec![binding("prod")],
            existing: BTreeSet::new(),
            others: HashMap::new(),
            scores: Scores::default(),
        }
    }

    fn names(n: usize) -> Self {
        World::new(
            (0..n)
                .map(|i| cluster(&format!("c{i:03}"), json!({})))
                .collect(),
        )
    }

    fn run(self, p: &Placement) -> Outcome {
        let World {
            clusters,
            sets,
            bindings,
            existing,
            others,
            scores,
        } = self;
        let snap = Snapshot {
            clusters: &clusters,
            sets: &sets,
            bindings: &bindings,
            existing: &existing,
            others: &others,
            scores: Arc::new(scores),
            now: now(),
        };
        schedule(p, &snap)
    }
}

fn selected(o: &Outcome) -> Vec<String> {
    let mut v: Vec<String> = o.groups.iter().flat_map(|g| g.clusters.clone()).collect();
    v.sort();
    v
}

fn ranked(o: &Outcome) -> Vec<(&str, i64)> {
    o.scores.iter().map(|(n, s)| (n.as_str(), *s)).collect()
}

// ---- candidates and PlacementSatisfied --------------------------------------------------------

#[test]
fn no_binding_means_no_clusters() {
    let mut w = World::names(2);
    w.bindings.clear();
    let o = w.run(&placement(json!({})));
    assert_eq!(o.satisfied.reason, "NoManagedClusterSetBindings");
    assert_eq!(
        o.satisfied.message,
        "No valid ManagedClusterSetBindings found in placement namespace"
    );
    assert_eq!(o.satisfied.status, "False");
    assert_eq!(o.selected, 0);
    // Still one (empty) decision.
    let d = o.decisions("p");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].name, "p-decision-1");
    assert!(d[0].clusters.is_empty());
}

#[test]
fn a_binding_to_a_missing_set_does_not_count() {
    let mut w = World::names(2);
    w.bindings = vec![binding("gone")];
    let o = w.run(&placement(json!({})));
    assert_eq!(o.satisfied.reason, "NoManagedClusterSetBindings");
}

#[test]
fn cluster_sets_are_intersected_with_the_bound_ones() {
    let w = World::names(2);
    let o = w.run(&placement(json!({"clusterSets": ["dev", "qa"]})));
    assert_eq!(o.satisfied.reason, "NoIntersection");
    assert_eq!(
        o.satisfied.message,
        "None of ManagedClusterSets [dev,qa] is bound to placement namespace"
    );

    let mut w = World::new(vec![
        cluster("a", json!({})),
        cluster(
            "b",
            json!({"metadata": {"labels": {"cluster.open-cluster-management.io/clusterset": "dev"}}}),
        ),
    ]);
    w.sets.extend([set(
        "dev",
        json!({"selectorType": "ExclusiveClusterSetLabel"}),
    )]);
    w.bindings.push(binding("dev"));
    let o = w.run(&placement(json!({"clusterSets": ["dev"]})));
    assert_eq!(selected(&o), ["b"]);
}

#[test]
fn empty_sets_and_deleting_clusters() {
    let w = World::new(vec![cluster(
        "a",
        json!({"metadata": {"deletionTimestamp": at(-5), "finalizers": ["x"]}}),
    )]);
    let o = w.run(&placement(json!({})));
    assert_eq!(o.satisfied.reason, "AllManagedClusterSetsEmpty");
    assert_eq!(
        o.satisfied.message,
        "All ManagedClusterSets [prod] have no member ManagedCluster"
    );
}

#[test]
fn label_selector_sets_and_the_global_set() {
    let clusters = vec![
        cluster("a", json!({"metadata": {"labels": {"env": "prod"}}})),
        cluster(
            "b",
            json!({"metadata": {"labels": {"cluster.open-cluster-management.io/clusterset": "other"}}}),
        ),
    ];
    let world = || {
        let mut w = World::new(clusters.clone());
        w.sets = [
            set(
                "global",
                json!({"selectorType": "LabelSelector", "labelSelector": {}}),
            ),
            set(
                "envprod",
                json!({"selectorType": "LabelSelector", "labelSelector": {"matchLabels": {"env": "prod"}}}),
            ),
        ]
        .into();
        w.bindings = vec![binding("global"), binding("envprod")];
        w
    };
    let o = world().run(&placement(json!({"clusterSets": ["envprod"]})));
    assert_eq!(selected(&o), ["a"]);
    let o = world().run(&placement(json!({"clusterSets": ["global"]})));
    assert_eq!(selected(&o), ["a", "b"]);
    assert_eq!(o.satisfied.reason, "AllDecisionsScheduled");
    assert_eq!(o.satisfied.message, "All cluster decisions scheduled");
    assert_eq!(o.satisfied.status, "True");
    assert_eq!(o.misconfigured.reason, "Succeedconfigured");
    assert_eq!(
        o.misconfigured.message,
        "Placement configurations check pass"
    );
    assert_eq!(o.misconfigured.status, "False");
}

// ---- predicates -------------------------------------------------------------------------------

fn fleet_for_predicates() -> World {
    World::new(vec![
        cluster(
            "a",
            json!({"metadata": {"labels": {"region": "eu", "tier": "gold"}},
            "status": {"clusterClaims": [{"name": "platform.open-cluster-management.io", "value": "AWS"}],
                       "version": {"kubernetes": "v1.30.1"}}}),
        ),
        cluster(
            "b",
            json!({"metadata": {"labels": {"region": "eu"}},
            "status": {"clusterClaims": [{"name": "platform.open-cluster-management.io", "value": "GCP"}],
                       "version": {"kubernetes": "v1.28.0"}}}),
        ),
        cluster(
            "c",
            json!({"metadata": {"labels": {"region": "us", "tier": "gold"}},
            "status": {"clusterClaims": [{"name": "platform.open-cluster-management.io", "value": "AWS"}]}}),
        ),
    ])
}

#[test]
fn selectors_in_one_predicate_are_anded() {
    let o = fleet_for_predicates().run(&placement(
        json!({"predicates": [{"requiredClusterSelector": {
        "labelSelector": {"matchLabels": {"region": "eu"}},
        "claimSelector": {"matchExpressions": [{"key": "platform.open-cluster-management.io", "operator": "In", "values": ["AWS"]}]}
    }}]}),
    ));
    assert_eq!(selected(&o), ["a"]);
}

#[test]
fn predicates_are_ored() {
    let o = fleet_for_predicates().run(&placement(json!({"predicates": [
        {"requiredClusterSelector": {"labelSelector": {"matchLabels": {"region": "us"}}}},
        {"requiredClusterSelector": {"claimSelector": {"matchExpressions": [{"key": "platform.open-cluster-management.io", "operator": "In", "values": ["GCP"]}]}}}
    ]})));
    assert_eq!(selected(&o), ["b", "c"]);
}

#[test]
fn no_match_is_reported() {
    let o = fleet_for_predicates().run(&placement(json!({"predicates": [
        {"requiredClusterSelector": {"labelSelector": {"matchLabels": {"region": "ap"}}}}
    ]})));
    assert_eq!(o.satisfied.reason, "NoManagedClusterMatched");
    assert_eq!(
        o.satisfied.message,
        "No ManagedCluster matches any of the cluster predicate"
    );
}

#[test]
fn cel_selectors_see_the_cluster_and_are_anded_with_labels() {
    let o = fleet_for_predicates().run(&placement(
        json!({"predicates": [{"requiredClusterSelector": {
        "labelSelector": {"matchLabels": {"tier": "gold"}},
        "celSelector": {"celExpressions": [
            "managedCluster.metadata.labels[\"region\"] == \"eu\" || managedCluster.metadata.name == \"zzz\"",
            "managedCluster.status.version.kubernetes.startsWith(\"v1.30\")"
        ]}
    }}]}),
    ));
    assert_eq!(selected(&o), ["a"]);
}

#[test]
fn cel_scores_reads_addon_placement_scores() {
    let mut w = fleet_for_predicates();
    w.scores.0.insert(
        ("a".into(), "resource-usage".into()),
        score(
            "a",
            "resource-usage",
            json!([{"name": "cpuAvailable", "value": 90}]),
            None,
        ),
    );
    w.scores.0.insert(
        ("b".into(), "resource-usage".into()),
        score(
            "b",
            "resource-usage",
            json!([{"name": "cpuAvailable", "value": 50}]),
            None,
        ),
    );
    // c has no score object: scores() fails, so c is not selected.
    let o = w.run(&placement(json!({"predicates": [{"requiredClusterSelector": {"celSelector": {"celExpressions": [
        "managedCluster.scores(\"resource-usage\").filter(s, s.name == 'cpuAvailable').all(e, e.value > 80)"
    ]}}}]})));
    assert_eq!(selected(&o), ["a"]);
}

#[test]
fn bad_cel_is_a_misconfiguration() {
    for (expr, want) in [
        (
            "managedCluster.metadata.name ==",
            "Predicate:compilation failed: ERROR: <input>:",
        ),
        (
            "invalid.test == \"x\"",
            "Predicate:compilation failed: ERROR: <input>: undeclared reference to 'invalid'",
        ),
    ] {
        let o = fleet_for_predicates().run(&placement(json!({"predicates": [{"requiredClusterSelector": {"celSelector": {"celExpressions": [expr]}}}]})));
        assert_eq!(o.code, Code::Misconfigured, "{expr}");
        assert_eq!(o.misconfigured.status, "True");
        assert_eq!(o.misconfigured.reason, "Misconfigured");
        assert!(
            o.misconfigured.message.starts_with(want),
            "{expr}: {}",
            o.misconfigured.message
        );
        assert_eq!(o.selected, 0);
        assert_eq!(o.satisfied.reason, "NoManagedClusterMatched");
    }
}

#[test]
fn a_malformed_label_selector_is_a_misconfiguration() {
    let o = fleet_for_predicates().run(&placement(
        json!({"predicates": [{"requiredClusterSelector": {
        "labelSelector": {"matchExpressions": [{"key": "region", "operator": "In", "values": []}]}
    }}]}),
    ));
    assert_eq!(o.code, Code::Misconfigured);
    assert!(
        o.misconfigured
            .message
            .starts_with("Predicate:values: Invalid value"),
        "{}",
        o.misconfigured.message
    );
}

// ---- taints and tolerations -------------------------------------------------------------------

fn tainted(
    name: &str,
    effect: &str,
    key: &str,
    value: Option<&str>,
    added: i64,
) -> Arc<ManagedCluster> {
    let mut taint = json!({"key": key, "effect": effect, "timeAdded": at(added)});
    if let Some(v) = value {
        taint["value"] = json!(v);
    }
    cluster(name, json!({"spec": {"taints": [taint]}}))
}

#[test]
fn each_taint_effect() {
    let mut w = World::new(vec![
        cluster("clean", json!({})),
        tainted("noselect", "NoSelect", "gpu", None, -10),
        tainted("prefer", "PreferNoSelect", "gpu", None, -10),
        tainted("ifnew-old", "NoSelectIfNew", "gpu", None, -10),
        tainted("ifnew-new", "NoSelectIfNew", "gpu", None, -10),
    ]);
    w.existing.insert("ifnew-old".into());
    let o = w.run(&placement(json!({})));
    // NoSelect keeps it out; PreferNoSelect does not; NoSelectIfNew keeps out only new ones.
    assert_eq!(selected(&o), ["clean", "ifnew-old", "prefer"]);
}

#[test]
fn toleration_operators() {
    let fleet = || {
        World::new(vec![
            tainted("v1", "NoSelect", "gpu", Some("a100"), -10),
            tainted("v2", "NoSelect", "gpu", Some("h100"), -10),
            tainted("other", "NoSelect", "disk", Some("slow"), -10),
        ])
    };
    // Equal: key and value must match.
    let o = fleet().run(&placement(
        json!({"tolerations": [{"key": "gpu", "operator": "Equal", "value": "a100"}]}),
    ));
    assert_eq!(selected(&o), ["v1"]);
    // Operator defaults to Equal.
    let o = fleet().run(&placement(
        json!({"tolerations": [{"key": "gpu", "value": "h100"}]}),
    ));
    assert_eq!(selected(&o), ["v2"]);
    // Exists: any value of the key.
    let o = fleet().run(&placement(
        json!({"tolerations": [{"key": "gpu", "operator": "Exists"}]}),
    ));
    assert_eq!(selected(&o), ["v1", "v2"]);
    // Exists with no key: every taint.
    let o = fleet().run(&placement(json!({"tolerations": [{"operator": "Exists"}]})));
    assert_eq!(selected(&o), ["other", "v1", "v2"]);
    // An effect that does not match tolerates nothing.
    let o = fleet().run(&placement(json!({"tolerations": [
        {"key": "gpu", "operator": "Exists", "effect": "PreferNoSelect"}]})));
    assert!(selected(&o).is_empty());
}

#[test]
fn toleration_seconds_count_from_time_added_and_requeue() {
    let key = "cluster.open-cluster-management.io/unreachable";
    let fleet = || {
        World::new(vec![
            tainted("recent", "NoSelect", key, None, -100),
            tainted("old", "NoSelect", key, None, -400),
        ])
    };
    let p = placement(
        json!({"tolerations": [{"key": key, "operator": "Exists", "tolerationSeconds": 300}]}),
    );
    let o = fleet().run(&p);
    // recent: 100 s of 300 used, tolerated, looked at again in 200 s; old: expired.
    assert_eq!(selected(&o), ["recent"]);
    assert_eq!(o.requeue_after, Some(Duration::from_secs(200)));
    // Once the selected cluster is in the decisions the requeue stays.
    let mut w = fleet();
    w.existing.insert("recent".into());
    assert_eq!(w.run(&p).requeue_after, Some(Duration::from_secs(200)));
}

#[test]
fn malformed_tolerations_are_misconfigurations() {
    let o = World::names(1).run(&placement(
        json!({"tolerations": [{"operator": "Equal", "value": "x"}]}),
    ));
    assert_eq!(
        o.misconfigured.message,
        "TaintToleration:If the key is empty, operator must be Exists."
    );
    let o = World::names(1).run(&placement(
        json!({"tolerations": [{"key": "k", "operator": "Exists", "value": "x"}]}),
    ));
    assert_eq!(
        o.misconfigured.message,
        "TaintToleration:If the operator is Exists, the value should be empty."
    );
}

// ---- prioritizers -----------------------------------------------------------------------------

fn exact(configs: Value) -> Value {
    json!({"prioritizerPolicy": {"mode": "Exact", "configurations": configs}})
}

#[test]
fn balance_arithmetic() {
    let mut w = World::names(4);
    // Other placements chose c000 three times, c001 once, c002 twice; max 3.
    w.others = [("c000".into(), 3), ("c001".into(), 1), ("c002".into(), 2)].into();
    let o = w.run(&placement(exact(
        json!([{"scoreCoordinate": {"builtIn": "Balance"}, "weight": 1}]),
    )));
    // 2 * trunc(100 * (0.5 - n/3)): 3 -> -100, 1 -> 2*16 = 32, 2 -> 2*(-16) = -32, none -> 100.
    assert_eq!(
        ranked(&o),
        [("c003", 100), ("c001", 32), ("c002", -32), ("c000", -100)]
    );
}

#[test]
fn steady_keeps_current_clusters_and_additive_adds_balance() {
    let world = || {
        let mut w = World::names(3);
        w.existing.insert("c002".into());
        w.others = [("c002".into(), 1)].into();
        w
    };
    // Additive default: Balance:1 + Steady:1. c002: -100 + 100 = 0; others 100 + 0.
    let o = world().run(&placement(json!({"numberOfClusters": 1})));
    assert_eq!(ranked(&o), [("c000", 100), ("c001", 100), ("c002", 0)]);
    assert_eq!(selected(&o), ["c000"]);
    // Steady weighted 3 keeps c002: 300 - 100 = 200.
    let o = world().run(&placement(
        json!({"numberOfClusters": 1, "prioritizerPolicy": {"configurations": [
        {"scoreCoordinate": {"builtIn": "Steady"}, "weight": 3}]}}),
    ));
    assert_eq!(selected(&o), ["c002"]);
    assert_eq!(o.scores[0], ("c002".to_string(), 200));
}

fn with_resources(name: &str, cpu: &str, mem: &str, capacity: bool) -> Arc<ManagedCluster> {
    let mut status = json!({"allocatable": {"cpu": cpu, "memory": mem}});
    if capacity {
        status["capacity"] = json!({"cpu": "64", "memory": "256Gi"});
    }
    cluster(name, json!({"status": status}))
}

#[test]
fn resource_allocatable_arithmetic() {
    let fleet = || {
        World::new(vec![
            with_resources("small", "2", "4Gi", true),
            with_resources("medium", "4500m", "8Gi", true),
            with_resources("large", "8", "16Gi", true),
            // No capacity reported: no score (0), and not part of min/max.
            with_resources("unknown", "100", "1Ti", false),
        ])
    };
    let o = fleet().run(&placement(exact(
        json!([{"scoreCoordinate": {"builtIn": "ResourceAllocatableCPU"}, "weight": 1}]),
    )));
    // (v - 2) / (8 - 2): 0 -> -100, 2.5/6 -> trunc(-16.67) = -16, 1 -> 100.
    assert_eq!(
        ranked(&o),
        [
            ("large", 100),
            ("unknown", 0),
            ("medium", -16),
            ("small", -100)
        ]
    );
    let o = fleet().run(&placement(exact(
        json!([{"scoreCoordinate": {"builtIn": "ResourceAllocatableMemory"}, "weight": 2}]),
    )));
    // 4, 8, 16 Gi: -100, trunc(-33.3) = -33, 100; times 2.
    assert_eq!(
        ranked(&o),
        [
            ("large", 200),
            ("unknown", 0),
            ("medium", -66),
            ("small", -200)
        ]
    );
    // All equal: every counted cluster gets 100.
    let w = World::new(vec![
        with_resources("x", "4", "8Gi", true),
        with_resources("y", "4", "8Gi", true),
    ]);
    let o = w.run(&placement(exact(
        json!([{"scoreCoordinate": {"builtIn": "ResourceAllocatableCPU"}}]),
    )));
    assert_eq!(ranked(&o), [("x", 100), ("y", 100)]);
}

#[test]
fn addon_scores_and_expiry() {
    let mut w = World::names(3);
    let sc = |c: &str, v: i64, until: Option<String>| {
        score(
            c,
            "usage",
            json!([{"name": "cpu", "value": v}, {"name": "mem", "value": -v}]),
            until,
        )
    };
    w.scores.0.insert(
        ("c000".into(), "usage".into()),
        sc("c000", 10, Some(at(60))),
    );
    w.scores.0.insert(
        ("c001".into(), "usage".into()),
        sc("c001", 90, Some(at(-60))),
    );
    w.scores
        .0
        .insert(("c002".into(), "usage".into()), sc("c002", 50, None));
    let o = w.run(&placement(exact(json!([{"scoreCoordinate":
        {"type": "AddOn", "addOn": {"resourceName": "usage", "scoreName": "cpu"}}, "weight": 2}]))));
    // c001's score expired: it counts 0, and the pass reports it.
    assert_eq!(ranked(&o), [("c002", 100), ("c000", 20), ("c001", 0)]);
    assert_eq!(o.code, Code::Warning);
    assert_eq!(o.message, "AddOnPlacementScores c001/usage expired");
    assert_eq!(o.satisfied.reason, "AllDecisionsScheduled");
}

#[test]
fn negative_weights_reverse_and_ties_go_by_name() {
    let fleet = || {
        World::new(vec![
            with_resources("b", "2", "1Gi", true),
            with_resources("a", "8", "1Gi", true),
            with_resources("c", "8", "1Gi", true),
        ])
    };
    let o = fleet().run(&placement(exact(
        json!([{"scoreCoordinate": {"builtIn": "ResourceAllocatableCPU"}, "weight": -10}]),
    )));
    assert_eq!(ranked(&o), [("b", 1000), ("a", -1000), ("c", -1000)]);
    let o = fleet().run(&placement(
        json!({"numberOfClusters": 2, "prioritizerPolicy": {"mode": "Exact", "configurations": [
        {"scoreCoordinate": {"builtIn": "ResourceAllocatableCPU"}, "weight": 10}]}}),
    ));
    assert_eq!(selected(&o), ["a", "c"]);
    // Exact with nothing configured: every score 0, so by name.
    let o = fleet().run(&placement(
        json!({"numberOfClusters": 1, "prioritizerPolicy": {"mode": "Exact"}}),
    ));
    assert_eq!(selected(&o), ["a"]);
}

#[test]
fn unknown_prioritizers_are_misconfigurations() {
    let o = World::names(2).run(&placement(exact(
        json!([{"scoreCoordinate": {"builtIn": "Spread"}}]),
    )));
    assert_eq!(
        o.misconfigured.message,
        ":incorrect builtin prioritizer: Spread"
    );
    let o = World::names(2).run(&placement(exact(
        json!([{"scoreCoordinate": {"type": "AddOn"}}]),
    )));
    assert_eq!(o.misconfigured.message, ":addOn should not be empty");
}

#[test]
fn number_of_clusters_short_of_candidates() {
    let o = World::names(3).run(&placement(json!({"numberOfClusters": 5})));
    assert_eq!(o.selected, 3);
    assert_eq!(o.satisfied.reason, "NotAllDecisionsScheduled");
    assert_eq!(o.satisfied.message, "2 cluster decisions unscheduled");
    let o = World::names(3).run(&placement(json!({"numberOfClusters": 0})));
    assert_eq!(o.satisfied.reason, "NoManagedClusterMatched");
}

// ---- decision groups and PlacementDecisions ---------------------------------------------------

#[test]
fn one_hundred_and_one_clusters_take_two_decisions() {
    let o = World::names(101).run(&placement(json!({})));
    let d = o.decisions("p");
    assert_eq!(d.len(), 2);
    assert_eq!(
        (d[0].name.as_str(), d[0].clusters.len()),
        ("p-decision-1", 100)
    );
    assert_eq!(
        (d[1].name.as_str(), d[1].clusters.len()),
        ("p-decision-2", 1)
    );
    assert_eq!(d[1].clusters, ["c100"]);
    assert_eq!((d[0].group_index, d[1].group_index), (0, 0));
    // Sorted by name inside a decision.
    assert!(d[0].clusters.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(o.groups.len(), 1);
    assert_eq!(o.groups[0].clusters.len(), 101);
}

#[test]
fn decision_groups_by_selector_then_size() {
    let clusters = (0..10)
        .map(|i| {
            let canary = if i < 2 { "true" } else { "false" };
            cluster(
                &format!("c{i}"),
                json!({"metadata": {"labels": {"canary": canary}}}),
            )
        })
        .collect();
    let o = World::new(clusters).run(&placement(
        json!({"decisionStrategy": {"groupStrategy": {
        "clustersPerDecisionGroup": "25%",
        "decisionGroups": [
            {"groupName": "canary", "groupClusterSelector": {"labelSelector": {"matchLabels": {"canary": "true"}}}},
            {"groupName": "nobody", "groupClusterSelector": {"labelSelector": {"matchLabels": {"canary": "maybe"}}}}
        ]}}}),
    ));
    // 25% of 10 rounds up to 3: canary (2) is one group; the 8 others make 3 + 3 + 2; the
    // group that matches nothing takes no index.
    let shape: Vec<(usize, &str, usize)> = o
        .groups
        .iter()
        .map(|g| (g.index, g.name.as_str(), g.clusters.len()))
        .collect();
    assert_eq!(
        shape,
        [(0, "canary", 2), (1, "", 3), (2, "", 3), (3, "", 2)]
    );
    assert_eq!(o.groups[0].clusters, ["c0", "c1"]);
    assert_eq!(o.groups[1].clusters, ["c2", "c3", "c4"]);
    let names: Vec<String> = o.decisions("p").iter().map(|d| d.name.clone()).collect();
    assert_eq!(
        names,
        [
            "p-decision-1",
            "p-decision-2",
            "p-decision-3",
            "p-decision-4"
        ]
    );

    let o = World::names(5).run(&placement(
        json!({"decisionStrategy": {"groupStrategy": {"clustersPerDecisionGroup": 2}}}),
    ));
    let sizes: Vec<usize> = o.groups.iter().map(|g| g.clusters.len()).collect();
    assert_eq!(sizes, [2, 2, 1]);
}

#[test]
fn a_bad_group_size_is_a_misconfiguration() {
    let o = World::names(3).run(&placement(
        json!({"decisionStrategy": {"groupStrategy": {"clustersPerDecisionGroup": "abc"}}}),
    ));
    assert_eq!(
        o.misconfigured.message,
        ":abc invalid type: string is not a percentage"
    );
    // The clusters were scheduled; the placement keeps one decision.
    assert_eq!(o.satisfied.reason, "AllDecisionsScheduled");
    assert_eq!(o.decisions("p").len(), 1);
}

#[test]
fn quantities() {
    for (q, v) in [
        ("2", 2.0),
        ("500m", 0.5),
        ("1Ki", 1024.0),
        ("16Gi", 16.0 * 1024.0 * 1024.0 * 1024.0),
        ("1e3", 1000.0),
        ("1.5k", 1500.0),
        ("2E", 2e18),
    ] {
        assert_eq!(quantity(q), Some(v), "{q}");
    }
    for bad in ["", "x", "1Qi", "--1"] {
        assert_eq!(quantity(bad), None, "{bad}");
    }
}
