//! What the fleet benchmarks share: an administrator who accepts every cluster, a watch on
//! clusters becoming Available, and ManifestWork dispatch measured create → Applied.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use garrison_api::ManagedCluster;
use garrison_api::work::v1::ManifestWork;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use crate::{pct, proc_stat};

/// Accepts every cluster and approves every undecided CSR, as `garrison accept --yes` does,
/// until aborted.
pub fn accept_everything(admin: &kube::Client) -> tokio::task::JoinHandle<()> {
    let admin = admin.clone();
    tokio::spawn(async move {
        let clusters: Api<ManagedCluster> = Api::all(admin.clone());
        let csrs: Api<CertificateSigningRequest> = Api::all(admin.clone());
        let accept = watcher(clusters.clone(), watcher::Config::default())
            .applied_objects()
            .try_for_each_concurrent(16, |mc| {
                let clusters = clusters.clone();
                async move {
                    if mc.spec.hub_accepts_client != Some(true) {
                        let _ = clusters
                            .patch(
                                &mc.name_any(),
                                &PatchParams::default(),
                                &Patch::Merge(json!({"spec": {"hubAcceptsClient": true}})),
                            )
                            .await;
                    }
                    Ok(())
                }
            });
        let approve = watcher(csrs.clone(), watcher::Config::default())
            .applied_objects()
            .try_for_each_concurrent(16, |csr| {
                let csrs = csrs.clone();
                async move {
                    let decided = csr
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| !c.is_empty());
                    if !decided {
                        let approval = json!({"status": {"conditions": [{"type": "Approved",
                            "status": "True", "reason": "Bench", "message": "benchmark admin"}]}});
                        let _ = csrs
                            .patch_approval(
                                &csr.name_any(),
                                &PatchParams::default(),
                                &Patch::Merge(approval),
                            )
                            .await;
                    }
                    Ok(())
                }
            });
        let _ = tokio::join!(accept, approve);
    })
}

/// When each cluster was first seen on the hub, and when it first showed
/// `ManagedClusterConditionAvailable=True`, watched until `n` are Available or `limit` passes.
pub fn watch_available(
    admin: &kube::Client,
    n: usize,
    limit: Duration,
) -> tokio::task::JoinHandle<(HashMap<String, Instant>, HashMap<String, Instant>)> {
    let clusters: Api<ManagedCluster> = Api::all(admin.clone());
    tokio::spawn(async move {
        let mut seen_at: HashMap<String, Instant> = HashMap::new();
        let mut up_at: HashMap<String, Instant> = HashMap::new();
        let mut events =
            std::pin::pin!(watcher(clusters, watcher::Config::default()).applied_objects());
        let deadline = tokio::time::Instant::now() + limit;
        while up_at.len() < n {
            let Ok(Some(Ok(mc))) = tokio::time::timeout_at(deadline, events.next()).await else {
                break;
            };
            let now = Instant::now();
            seen_at.entry(mc.name_any()).or_insert(now);
            let up = mc
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter().any(|c| {
                        c.type_ == "ManagedClusterConditionAvailable" && c.status == "True"
                    })
                });
            if up {
                up_at.entry(mc.name_any()).or_insert(now);
            }
        }
        (seen_at, up_at)
    })
}

/// What a dispatch measured.
#[derive(Debug)]
pub struct Dispatch {
    /// Works created.
    pub total: usize,
    /// Works seen Applied.
    pub applied: usize,
    /// From the first create to the last create's answer.
    pub created_in: Duration,
    /// From the first create to the last Applied.
    pub elapsed: Duration,
    /// Create → Applied, seconds, sorted.
    pub latencies: Vec<f64>,
    /// The hub's RSS (KiB) before and after, and its CPU seconds over the phase.
    pub rss: (u64, u64),
    /// Hub CPU seconds spent.
    pub cpu: f64,
}

impl Dispatch {
    /// One line for the benchmark's output.
    pub fn summary(&self, clusters: usize, per_cluster: usize) -> String {
        format!(
            "dispatch, {clusters} clusters × {per_cluster} works: {} created in {:.1}s ({:.0}/s), {} Applied in {:.1}s; create→Applied p50 {:.0} ms, p99 {:.0} ms; hub RSS {} → {} MiB, CPU {:.1}s",
            self.total,
            self.created_in.as_secs_f64(),
            self.total as f64 / self.created_in.as_secs_f64().max(1e-3),
            self.applied,
            self.elapsed.as_secs_f64(),
            pct(&self.latencies, 0.5) * 1e3,
            pct(&self.latencies, 0.99) * 1e3,
            self.rss.0 / 1024,
            self.rss.1 / 1024,
            self.cpu,
        )
    }
}

/// Creates a dispatch keeps waiting for an answer at once.
const CREATES_IN_FLIGHT: usize = 16;

/// Creates `per_cluster` ManifestWorks (one ConfigMap each) in every cluster namespace of
/// `clusters`, `rate` a second, and measures each from its create to `Applied=True` seen on
/// the hub through a watch. `pid` is the hub's.
pub async fn dispatch(
    admin: &kube::Client,
    pid: u32,
    clusters: &[String],
    per_cluster: usize,
    rate: usize,
) -> Dispatch {
    let (rss0, cpu0) = proc_stat(pid);
    let total = clusters.len() * per_cluster;
    let works: Api<ManifestWork> = Api::all(admin.clone());
    let seen = tokio::spawn(async move {
        let mut applied: HashMap<String, Instant> = HashMap::new();
        let mut events =
            std::pin::pin!(watcher(works, watcher::Config::default()).applied_objects());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1800);
        while applied.len() < total {
            let Ok(Some(Ok(w))) = tokio::time::timeout_at(deadline, events.next()).await else {
                break;
            };
            let ok = w.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Applied" && c.status == "True")
            });
            if ok {
                let key = format!("{}/{}", w.namespace().unwrap_or_default(), w.name_any());
                applied.entry(key).or_insert_with(Instant::now);
            }
        }
        applied
    });
    let started = Instant::now();
    let mut created: HashMap<String, Instant> = HashMap::new();
    let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    // Creates go out at the pace, several in flight, as a controller creating works for a
    // placement would send them; one at a time, the pace would be bounded by each create's
    // round trip instead.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(CREATES_IN_FLIGHT));
    let mut creates = tokio::task::JoinSet::new();
    for i in 0..per_cluster {
        for cluster in clusters {
            let name = format!("bench-{i}");
            let work: ManifestWork = serde_json::from_value(json!({
                "apiVersion": "work.open-cluster-management.io/v1", "kind": "ManifestWork",
                "metadata": {"name": name, "namespace": cluster},
                "spec": {"workload": {"manifests": [{"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("bench-{i}"), "namespace": "default"},
                    "data": {"work": format!("{i}"), "cluster": cluster}}]}}
            }))
            .expect("a ManifestWork");
            pace.tick().await;
            let permit = in_flight
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore");
            let api: Api<ManifestWork> = Api::namespaced(admin.clone(), cluster);
            created.insert(format!("{cluster}/{name}"), Instant::now());
            creates.spawn(async move {
                api.create(&kube::api::PostParams::default(), &work)
                    .await
                    .expect("the hub accepts the ManifestWork");
                drop(permit);
            });
        }
    }
    while let Some(r) = creates.join_next().await {
        r.expect("a create");
    }
    let created_in = started.elapsed();
    let applied = seen.await.expect("the watch task");
    let elapsed = started.elapsed();
    let (rss1, cpu1) = proc_stat(pid);
    let mut latencies: Vec<f64> = applied
        .iter()
        .map(|(k, at)| at.saturating_duration_since(created[k]).as_secs_f64())
        .collect();
    latencies.sort_by(f64::total_cmp);
    Dispatch {
        total,
        applied: applied.len(),
        created_in,
        elapsed,
        latencies,
        rss: (rss0, rss1),
        cpu: cpu1 - cpu0,
    }
}

/// The hub's live heap in KiB, as its allocator counts it (`garrison_process_heap_bytes` on
/// `/metrics`): with the RSS, it tells the data the hub holds from the allocator's overhead.
pub async fn heap_kib(admin: &kube::Client) -> Option<u64> {
    let req = http::Request::get("/metrics").body(vec![]).ok()?;
    let text = admin.request_text(req).await.ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("garrison_process_heap_bytes "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|b| b as u64 / 1024)
}
