//! Placement at fleet scale, against a real hub process (release build, SQLite store, TLS).
//!
//! 1. The scheduler alone, in this process: one pass of a placement over N clusters.
//! 2. The hub: N ManagedClusters in one bound set; the time from creating a placement to its
//!    status showing the choice (watch, schedule, PlacementDecisions and status written), five
//!    placements one after another.
//! 3. The hub: P placements that all select the clusters labelled `pick=me` (one cluster at
//!    first); then a second cluster gets the label, and the clock runs until every placement's
//!    status shows two clusters.
//!
//! Hub RSS and CPU are read from /proc around each phase.
//!
//! Run: `cargo bench -p garrison-e2e --bench placement` (N = 10,000, P = 1,000; set
//! GARRISON_BENCH_CLUSTERS and GARRISON_BENCH_PLACEMENTS for other sizes).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use garrison_api::cluster::v1beta1::Placement;
use garrison_api::{ManagedCluster, ManagedClusterSet, ManagedClusterSetBinding};
use garrison_e2e::{Hub, pct, proc_stat};
use garrison_hub::placement::schedule::{self, ScoreSource, Snapshot};
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

const SET_LABEL: &str = "cluster.open-cluster-management.io/clusterset";
const REGIONS: [&str; 4] = ["eu", "us", "ap", "sa"];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cluster(i: usize) -> ManagedCluster {
    serde_json::from_value(json!({
        "apiVersion": "cluster.open-cluster-management.io/v1", "kind": "ManagedCluster",
        "metadata": {"name": format!("c{i:05}"), "labels": {
            SET_LABEL: "fleet", "region": REGIONS[i % REGIONS.len()], "index": i.to_string()}},
        "spec": {"hubAcceptsClient": false},
        "status": {"allocatable": {"cpu": format!("{}", 2 + i % 30), "memory": format!("{}Gi", 4 + i % 60)},
                   "capacity": {"cpu": "64", "memory": "256Gi"}}
    }))
    .unwrap()
}

fn placement(name: &str, spec: serde_json::Value) -> Placement {
    serde_json::from_value(json!({
        "apiVersion": "cluster.open-cluster-management.io/v1beta1", "kind": "Placement",
        "metadata": {"name": name, "namespace": "bench"}, "spec": spec
    }))
    .unwrap()
}

struct NoScores;
impl ScoreSource for NoScores {
    fn score(
        &self,
        _: &str,
        _: &str,
    ) -> Option<Arc<garrison_api::cluster::v1alpha1::AddOnPlacementScore>> {
        None
    }
}

/// Phase 1: the scheduler's own cost, no I/O.
fn in_process(n: usize) {
    let clusters: Vec<Arc<ManagedCluster>> = (0..n).map(|i| Arc::new(cluster(i))).collect();
    let set: ManagedClusterSet = serde_json::from_value(json!({
        "apiVersion": "cluster.open-cluster-management.io/v1beta2", "kind": "ManagedClusterSet",
        "metadata": {"name": "fleet"}, "spec": {"clusterSelector": {"selectorType": "ExclusiveClusterSetLabel"}}
    }))
    .unwrap();
    let sets: BTreeMap<String, Arc<ManagedClusterSet>> =
        [("fleet".to_string(), Arc::new(set))].into();
    let binding: ManagedClusterSetBinding = serde_json::from_value(json!({
        "apiVersion": "cluster.open-cluster-management.io/v1beta2", "kind": "ManagedClusterSetBinding",
        "metadata": {"name": "fleet", "namespace": "bench"}, "spec": {"clusterSet": "fleet"}
    }))
    .unwrap();
    let bindings = vec![Arc::new(binding)];
    let existing = BTreeSet::new();
    let others: HashMap<String, u32> = (0..n)
        .step_by(3)
        .map(|i| (format!("c{i:05}"), (i % 7) as u32))
        .collect();
    let cases = [
        ("all clusters, default prioritizers", json!({})),
        (
            "label predicate, 100 clusters",
            json!({"numberOfClusters": 100,
            "predicates": [{"requiredClusterSelector": {"labelSelector": {"matchExpressions": [{"key": "region", "operator": "In", "values": ["eu", "us"]}]}}}]}),
        ),
        (
            "CPU + memory prioritizers, 10 clusters",
            json!({"numberOfClusters": 10, "prioritizerPolicy": {"configurations": [
            {"scoreCoordinate": {"builtIn": "ResourceAllocatableCPU"}, "weight": 2},
            {"scoreCoordinate": {"builtIn": "ResourceAllocatableMemory"}, "weight": 1}]}}),
        ),
        (
            "CEL predicate, 100 clusters",
            json!({"numberOfClusters": 100, "predicates": [{"requiredClusterSelector": {"celSelector": {"celExpressions": [
            "managedCluster.metadata.labels[\"region\"] == \"eu\""]}}}]}),
        ),
    ];
    for (what, spec) in cases {
        let p = placement("p", spec);
        let snap = Snapshot {
            clusters: &clusters,
            sets: &sets,
            bindings: &bindings,
            existing: &existing,
            others: &others,
            scores: Arc::new(NoScores),
            now: jiff::Timestamp::now(),
        };
        let runs = 10;
        let mut secs = Vec::new();
        let mut selected = 0;
        for _ in 0..runs {
            let t = Instant::now();
            let o = schedule::schedule(&p, &snap);
            secs.push(t.elapsed().as_secs_f64());
            selected = o.selected;
        }
        secs.sort_by(f64::total_cmp);
        println!(
            "scheduler alone, {n} clusters, {what}: {selected} selected; median {:.1} ms (min {:.1}, max {:.1}, {runs} runs)",
            pct(&secs, 0.5) * 1e3,
            secs[0] * 1e3,
            secs[runs - 1] * 1e3
        );
    }
}

async fn selected_of(api: &Api<Placement>, name: &str) -> Option<i32> {
    api.get(name)
        .await
        .ok()?
        .status?
        .number_of_selected_clusters
}

async fn on_hub(n: usize, placements: usize) {
    let hub = Hub::start().await.unwrap();
    let pid = hub.pid().unwrap();
    let client = hub.client().await.unwrap();
    let (rss0, _) = proc_stat(pid);

    // The fleet, created 32 at a time.
    let t = Instant::now();
    let clusters: Api<ManagedCluster> = Api::all(client.clone());
    futures::stream::iter(0..n)
        .map(|i| {
            let clusters = clusters.clone();
            async move {
                clusters
                    .create(&PostParams::default(), &cluster(i))
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    let sets: Api<ManagedClusterSet> = Api::all(client.clone());
    sets.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "cluster.open-cluster-management.io/v1beta2", "kind": "ManagedClusterSet",
            "metadata": {"name": "fleet"}}))
        .unwrap(),
    )
    .await
    .unwrap();
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "bench"}})).unwrap(),
    )
    .await
    .unwrap();
    let bindings: Api<ManagedClusterSetBinding> = Api::namespaced(client.clone(), "bench");
    bindings
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "cluster.open-cluster-management.io/v1beta2", "kind": "ManagedClusterSetBinding",
                "metadata": {"name": "fleet", "namespace": "bench"}, "spec": {"clusterSet": "fleet"}}))
            .unwrap(),
        )
        .await
        .unwrap();
    // Let the hub's controllers settle (finalizers, taints, set conditions).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (rss1, cpu1) = proc_stat(pid);
    println!(
        "hub: {n} clusters created in {:.1}s; RSS {} MiB → {} MiB",
        t.elapsed().as_secs_f64(),
        rss0 / 1024,
        rss1 / 1024
    );

    // Phase 2: one placement at a time over the whole fleet.
    let api: Api<Placement> = Api::namespaced(client.clone(), "bench");
    let tolerate = json!([{"operator": "Exists"}]);
    let mut secs = Vec::new();
    for i in 0..5 {
        let name = format!("single-{i}");
        let spec = json!({"numberOfClusters": 100, "tolerations": tolerate,
            "predicates": [{"requiredClusterSelector": {"labelSelector": {"matchLabels": {"region": REGIONS[i % 4]}}}}]});
        let t = Instant::now();
        api.create(&PostParams::default(), &placement(&name, spec))
            .await
            .unwrap();
        loop {
            if selected_of(&api, &name).await == Some(100) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        secs.push(t.elapsed().as_secs_f64());
    }
    secs.sort_by(f64::total_cmp);
    println!(
        "hub: one placement over {n} clusters, create → status (100 chosen): median {:.0} ms, min {:.0}, max {:.0} (5 runs)",
        pct(&secs, 0.5) * 1e3,
        secs[0] * 1e3,
        secs[4] * 1e3
    );

    // Phase 3: many placements, then one label change that concerns all of them.
    clusters
        .patch(
            "c00000",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"pick": "me"}}})),
        )
        .await
        .unwrap();
    let t = Instant::now();
    for i in 0..placements {
        let spec = json!({"tolerations": tolerate,
            "predicates": [{"requiredClusterSelector": {"labelSelector": {"matchLabels": {"pick": "me"}}}}]});
        api.create(
            &PostParams::default(),
            &placement(&format!("many-{i:04}"), spec),
        )
        .await
        .unwrap();
    }
    let counts = |want: i32| {
        let api = api.clone();
        async move {
            let mut seen: HashMap<String, i32> = HashMap::new();
            let mut events =
                std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
            while seen.values().filter(|v| **v == want).count() < placements {
                let Ok(Some(Ok(p))) =
                    tokio::time::timeout(Duration::from_secs(600), events.next()).await
                else {
                    panic!("placements not rescheduled in time");
                };
                if p.name_any().starts_with("many-") {
                    let n = p
                        .status
                        .as_ref()
                        .and_then(|s| s.number_of_selected_clusters)
                        .unwrap_or(-1);
                    seen.insert(p.name_any(), n);
                }
            }
        }
    };
    counts(1).await;
    let (rss2, cpu2) = proc_stat(pid);
    println!(
        "hub: {placements} placements created and scheduled in {:.1}s; RSS {} MiB, CPU {:.1}s",
        t.elapsed().as_secs_f64(),
        rss2 / 1024,
        cpu2 - cpu1
    );
    let watching = tokio::spawn(counts(2));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    clusters
        .patch(
            "c00001",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"pick": "me"}}})),
        )
        .await
        .unwrap();
    watching.await.unwrap();
    let (rss3, cpu3) = proc_stat(pid);
    println!(
        "hub: one cluster's labels changed → all {placements} placements rescheduled in {:.2}s; hub CPU {:.1}s; RSS {} MiB",
        t.elapsed().as_secs_f64(),
        cpu3 - cpu2,
        rss3 / 1024
    );
}

fn main() {
    let n = env_usize("GARRISON_BENCH_CLUSTERS", 10_000);
    let p = env_usize("GARRISON_BENCH_PLACEMENTS", 1_000);
    in_process(n);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(on_hub(n, p));
}
