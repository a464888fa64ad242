//! Policy propagation at fleet scale, against a real hub process (release build, SQLite store,
//! TLS): P root Policies bound to a Placement that chooses all N clusters.
//!
//! 1. Propagation: from creating the PlacementBinding to all N × P replicas existing.
//! 2. Reporting: every replica gets the status a cluster's policy add-on writes (one status
//!    patch per replica, written by this benchmark through the API, 64 at a time, in place of
//!    N agents), and the clock runs until every root's status shows N clusters Compliant.
//!
//! Hub RSS and CPU are read from /proc around each phase.
//!
//! Run: `cargo bench -p garrison-e2e --bench policy` (N = 1,000 clusters, P = 100 policies;
//! set GARRISON_BENCH_CLUSTERS and GARRISON_BENCH_POLICIES for other sizes).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use garrison_api::cluster::v1beta1::Placement;
use garrison_api::policy::v1::Policy;
use garrison_e2e::{Hub, proc_stat};
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cluster(i: usize) -> Value {
    json!({
        "apiVersion": "cluster.open-cluster-management.io/v1", "kind": "ManagedCluster",
        "metadata": {"name": format!("c{i:05}"),
            "labels": {"cluster.open-cluster-management.io/clusterset": "fleet"}},
        "spec": {"hubAcceptsClient": true},
    })
}

fn policy(i: usize) -> Value {
    json!({
        "apiVersion": "policy.open-cluster-management.io/v1", "kind": "Policy",
        "metadata": {"name": format!("pol-{i:03}"), "namespace": "policies", "annotations": {
            "policy.open-cluster-management.io/standards": "NIST SP 800-53",
            "policy.open-cluster-management.io/categories": "CM Configuration Management",
            "policy.open-cluster-management.io/controls": "CM-2 Baseline Configuration"}},
        "spec": {"remediationAction": "inform", "disabled": false, "policy-templates": [{
            "objectDefinition": {
                "apiVersion": "policy.open-cluster-management.io/v1", "kind": "ConfigurationPolicy",
                "metadata": {"name": format!("namespace-{i:03}")},
                "spec": {"severity": "low", "object-templates": [{"complianceType": "musthave",
                    "objectDefinition": {"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": format!("ns-{i:03}")}}}]}}}]}
    })
}

/// What a cluster's add-on reports for policy `i`.
fn report(i: usize) -> Value {
    let now = jiff::Timestamp::now();
    json!({"status": {"compliant": "Compliant", "details": [{
        "templateMeta": {"apiVersion": "policy.open-cluster-management.io/v1",
            "kind": "ConfigurationPolicy", "name": format!("namespace-{i:03}")},
        "compliant": "Compliant",
        "history": [{"lastTimestamp": now.to_string(), "eventName": format!("x.{:x}", now.as_nanosecond()),
            "message": format!("Compliant; notification - namespaces [ns-{i:03}] found as specified")}]}]}})
}

async fn create_all(client: &kube::Client, objects: Vec<(Option<String>, Value)>) {
    futures::stream::iter(objects)
        .map(|(ns, o)| {
            let client = client.clone();
            async move {
                let gvk = kube::core::GroupVersionKind::try_from(
                    &serde_json::from_value::<kube::core::TypeMeta>(o.clone()).unwrap(),
                )
                .unwrap();
                let (ar, _) = kube::discovery::pinned_kind(&client, &gvk).await?;
                let api: Api<kube::api::DynamicObject> = match ns {
                    Some(ns) => Api::namespaced_with(client, &ns, &ar),
                    None => Api::all_with(client, &ar),
                };
                api.create(&PostParams::default(), &serde_json::from_value(o).unwrap())
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
}

async fn on_hub(n: usize, p: usize) {
    let hub = Hub::start().await.unwrap();
    let pid = hub.pid().unwrap();
    let client = hub.client().await.unwrap();
    let (rss0, _) = proc_stat(pid);

    // The fleet: N accepted clusters (their namespaces made by the hub) in one bound set, and
    // a Placement choosing them all.
    let t = Instant::now();
    create_all(&client, (0..n).map(|i| (None, cluster(i))).collect()).await;
    let setup = vec![
        (
            None,
            json!({"apiVersion": "cluster.open-cluster-management.io/v1beta2",
            "kind": "ManagedClusterSet", "metadata": {"name": "fleet"}}),
        ),
        (
            None,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "policies"}}),
        ),
    ];
    create_all(&client, setup).await;
    let rest = vec![
        (
            Some("policies".to_string()),
            json!({"apiVersion": "cluster.open-cluster-management.io/v1beta2",
            "kind": "ManagedClusterSetBinding", "metadata": {"name": "fleet", "namespace": "policies"},
            "spec": {"clusterSet": "fleet"}}),
        ),
        (
            Some("policies".to_string()),
            json!({"apiVersion": "cluster.open-cluster-management.io/v1beta1",
            "kind": "Placement", "metadata": {"name": "all", "namespace": "policies"},
            "spec": {"tolerations": [{"operator": "Exists"}]}}),
        ),
    ];
    create_all(&client, rest).await;
    let nss: Api<Namespace> = Api::all(client.clone());
    let placements: Api<Placement> = Api::namespaced(client.clone(), "policies");
    loop {
        let namespaces = nss.list(&ListParams::default()).await.unwrap().items;
        let cluster_nss = namespaces
            .iter()
            .filter(|ns| ns.name_any().starts_with('c'))
            .count();
        let chosen = placements
            .get("all")
            .await
            .ok()
            .and_then(|p| p.status?.number_of_selected_clusters);
        if cluster_nss >= n && chosen == Some(n as i32) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (rss1, cpu1) = proc_stat(pid);
    println!(
        "hub: {n} clusters accepted and chosen by one placement in {:.1}s; RSS {} MiB → {} MiB",
        t.elapsed().as_secs_f64(),
        rss0 / 1024,
        rss1 / 1024
    );

    // 1. Propagation.
    create_all(
        &client,
        (0..p)
            .map(|i| (Some("policies".into()), policy(i)))
            .collect(),
    )
    .await;
    let all: Api<Policy> = Api::all(client.clone());
    let replicas_seen = {
        let all = all.clone();
        let want = n * p;
        tokio::spawn(async move {
            let mut seen: HashSet<(String, String)> = HashSet::new();
            let cfg =
                watcher::Config::default().labels("policy.open-cluster-management.io/root-policy");
            let mut events = std::pin::pin!(watcher(all, cfg).default_backoff().applied_objects());
            while seen.len() < want {
                match tokio::time::timeout(Duration::from_secs(900), events.next()).await {
                    Ok(Some(Ok(r))) => {
                        seen.insert((r.namespace().unwrap_or_default(), r.name_any()));
                    }
                    // The watcher starts over by itself; what it saw stays counted.
                    Ok(Some(Err(e))) => eprintln!("watch of replicas: {e}"),
                    _ => panic!(
                        "replicas not all propagated in time: {} of {want}",
                        seen.len()
                    ),
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    let subjects: Vec<Value> = (0..p)
        .map(|i| json!({"apiGroup": "policy.open-cluster-management.io", "kind": "Policy", "name": format!("pol-{i:03}")}))
        .collect();
    create_all(
        &client,
        vec![(
            Some("policies".into()),
            json!({"apiVersion": "policy.open-cluster-management.io/v1", "kind": "PlacementBinding",
                "metadata": {"name": "all", "namespace": "policies"},
                "placementRef": {"apiGroup": "cluster.open-cluster-management.io", "kind": "Placement", "name": "all"},
                "subjects": subjects}),
        )],
    )
    .await;
    replicas_seen.await.unwrap();
    let propagated = t.elapsed().as_secs_f64();
    let (rss2, cpu2) = proc_stat(pid);
    println!(
        "hub: {p} policies × {n} clusters: {} replicas propagated in {propagated:.1}s ({:.0}/s); hub CPU {:.1}s; RSS {} MiB",
        n * p,
        (n * p) as f64 / propagated,
        cpu2 - cpu1,
        rss2 / 1024
    );

    // 2. Reporting: every replica reports Compliant; the roots aggregate.
    let roots: Api<Policy> = Api::namespaced(client.clone(), "policies");
    let roots_done = {
        let roots = roots.clone();
        tokio::spawn(async move {
            let mut done: HashSet<String> = HashSet::new();
            let mut events = std::pin::pin!(
                watcher(roots, watcher::Config::default())
                    .default_backoff()
                    .applied_objects()
            );
            while done.len() < p {
                let r = match tokio::time::timeout(Duration::from_secs(900), events.next()).await {
                    Ok(Some(Ok(r))) => r,
                    Ok(Some(Err(e))) => {
                        eprintln!("watch of roots: {e}");
                        continue;
                    }
                    _ => panic!("roots not all Compliant in time: {} of {p}", done.len()),
                };
                let complete = r.status.as_ref().is_some_and(|s| {
                    s.compliant.as_deref() == Some("Compliant")
                        && s.status.len() == n
                        && s.status
                            .iter()
                            .all(|c| c.compliant.as_deref() == Some("Compliant"))
                });
                if complete {
                    done.insert(r.name_any());
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    let pp = PatchParams::default();
    futures::stream::iter((0..n).flat_map(|c| (0..p).map(move |i| (c, i))))
        .map(|(c, i)| {
            let api: Api<Policy> = Api::namespaced(client.clone(), &format!("c{c:05}"));
            let pp = pp.clone();
            async move {
                api.patch_status(
                    &format!("policies.pol-{i:03}"),
                    &pp,
                    &Patch::Merge(report(i)),
                )
                .await
                .map(|_| ())
            }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    let written = t.elapsed().as_secs_f64();
    roots_done.await.unwrap();
    let reported = t.elapsed().as_secs_f64();
    let (rss3, cpu3) = proc_stat(pid);
    println!(
        "hub: {} replica reports written in {written:.1}s ({:.0}/s); all {p} roots Compliant on {n} clusters after {reported:.1}s; hub CPU {:.1}s; RSS {} MiB",
        n * p,
        (n * p) as f64 / written,
        cpu3 - cpu2,
        rss3 / 1024
    );
    println!(
        "propagating {p} policies to {n} clusters until all report: {:.1}s",
        propagated + reported
    );
}

fn main() {
    let n = env_usize("GARRISON_BENCH_CLUSTERS", 1_000);
    let p = env_usize("GARRISON_BENCH_POLICIES", 100);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(on_hub(n, p));
}
