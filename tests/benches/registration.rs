//! Registration benchmark (not a test):
//!
//! 1. CSR signing throughput in the hub's signer path: parse and check an agent CSR, then sign
//!    it with the client CA (ECDSA P-256), and the agent's side (key and CSR generation).
//! 2. Fleet join: N simulated clusters (in this process, each with its own in-memory API server
//!    and the real agent code) join a real `garrison hub` process over HTTPS; an admin loop
//!    accepts them as `garrison accept --yes` does. Measured: the time until all N are
//!    Available, per-cluster join-to-Available p50/p99, and the hub's RSS and CPU time.
//!
//! 3. Dispatch: then W ManifestWorks per cluster (one ConfigMap each; W = 10 at 100 clusters, 5
//!    at 1,000, as OCM's performance runs), measured from create on the hub to `Applied=True`
//!    seen on the hub, with the hub's RSS and CPU over that phase.
//!
//! 4. Add-on rollout: the managed-serviceaccount add-on enabled on all N clusters at once (a
//!    ManagedClusterAddOn in each cluster namespace, as `garrison addon enable` writes it),
//!    measured until every one is Available: each agent makes a key, gets its add-on CSR
//!    approved and signed, starts the add-on with its own certificate, and reports its Lease.
//!
//! Run: `cargo bench -p garrison-e2e --bench registration` (N = 100 and 1,000; set
//! GARRISON_BENCH_CLUSTERS=100 for one size, GARRISON_BENCH_WORKS=0 to skip dispatch,
//! GARRISON_BENCH_ADDONS=0 to skip the add-on rollout).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use garrison_e2e::{Hub, create_token, fleet, pct, proc_stat};
use garrison_klusterlet::agent::{self, JoinOptions};
use garrison_klusterlet::state::{AgentDir, SpokeSource};
use garrison_pki::{AgentIdentity, ClusterCa, ClusterName};
use garrison_sim::cluster::Weight;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

fn signing() {
    let now = time::OffsetDateTime::now_utc();
    let ca = ClusterCa::generate("bench-ca", now, time::Duration::days(1)).unwrap();
    let n = 2_000;
    let t = Instant::now();
    let requests: Vec<String> = (0..n)
        .map(|i| {
            let id =
                AgentIdentity::new(ClusterName::parse(&format!("c{i}")).unwrap(), "agent").unwrap();
            garrison_pki::new_request(&id.clone().into())
                .unwrap()
                .csr_pem
        })
        .collect();
    let generation = t.elapsed();
    let t = Instant::now();
    for pem in &requests {
        let parsed = garrison_pki::csr::parse(pem.as_bytes()).unwrap();
        garrison_pki::csr::check_usages(&["digital signature".into(), "client auth".into()])
            .unwrap();
        ca.sign(&parsed, now, time::Duration::hours(24)).unwrap();
    }
    let sign = t.elapsed();
    println!(
        "agent key + CSR generation: {n} in {:.2}s = {:.0}/s",
        generation.as_secs_f64(),
        n as f64 / generation.as_secs_f64()
    );
    println!(
        "hub parse + check + sign:   {n} in {:.2}s = {:.0}/s ({:.0} µs each)",
        sign.as_secs_f64(),
        n as f64 / sign.as_secs_f64(),
        sign.as_secs_f64() * 1e6 / n as f64
    );
}

/// Agents launched per second.
const RATE_PER_SEC: usize = 50;

async fn fleet(n: usize) {
    let hub = Hub::start().await.unwrap();
    let admin = hub.client().await.unwrap();
    let (token, pin) = create_token(&hub, "1h");
    let pid = hub.pid().unwrap();
    let (rss0, cpu0) = proc_stat(pid);
    let root = tempfile::tempdir().unwrap();
    agent::set_quiet(true);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // The admin accepts every cluster and approves its first CSR, as `garrison accept --yes`,
    // concurrently with the launches; who became Available when is watched from before the
    // first launch.
    let admin_loop = fleet::accept_everything(&admin);
    let watch_available = fleet::watch_available(&admin, n, Duration::from_secs(900));
    let started = Instant::now();
    let mut launched: HashMap<String, Instant> = HashMap::new();
    for i in 0..n {
        let name = format!("sim-{i:04}");
        let dir = AgentDir::new(&root.path().join(&name));
        let opts = JoinOptions {
            hub_url: format!("https://127.0.0.1:{}", hub.port),
            token: token.clone().into(),
            ca_cert_hash: pin.clone(),
            cluster_name: name.clone(),
            spoke: SpokeSource::Simulated,
            lease_duration_seconds: 60,
            force: false,
        };
        // Launched at a steady rate: all agents share this process's two cores, and a burst
        // of a thousand in-memory clusters starting at once would starve their own handshakes.
        if i > 0 && i % RATE_PER_SEC == 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        launched.insert(name, Instant::now());
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            agent::prepare_join(&dir, &opts).await.unwrap();
            let opts = agent::RunOptions {
                simulator: Some(garrison_sim::cluster::in_memory(Weight::Full)),
                ..Default::default()
            };
            if let Err(e) = agent::run(&dir, stop, true, opts).await {
                eprintln!("agent failed: {e:#}");
            }
        });
    }
    // The admin loop runs while agents launch.
    let launch_done = started.elapsed();
    let (_, up_at) = watch_available.await.unwrap();
    let available_at: HashMap<String, Duration> = up_at
        .iter()
        .map(|(name, at)| (name.clone(), at.saturating_duration_since(launched[name])))
        .collect();
    let total = started.elapsed();
    let (rss1, cpu1) = proc_stat(pid);
    admin_loop.abort();
    let mut secs: Vec<f64> = available_at.values().map(Duration::as_secs_f64).collect();
    secs.sort_by(f64::total_cmp);
    println!(
        "{n} clusters: {} Available in {:.1}s (agents launched in {:.1}s); join→Available p50 {:.1}s, p99 {:.1}s",
        available_at.len(),
        total.as_secs_f64(),
        launch_done.as_secs_f64(),
        pct(&secs, 0.5),
        pct(&secs, 0.99),
    );
    println!(
        "  hub: RSS {} MiB → {} MiB (+{:.1} KiB per cluster), CPU {:.1}s",
        rss0 / 1024,
        rss1 / 1024,
        (rss1.saturating_sub(rss0)) as f64 / n as f64,
        cpu1 - cpu0
    );
    assert_eq!(available_at.len(), n, "not every cluster became Available");
    let works = works_per_cluster(n);
    if works > 0 {
        let names: Vec<String> = (0..n).map(|i| format!("sim-{i:04}")).collect();
        // Works are created at a steady 200 a second.
        let d = fleet::dispatch(&admin, pid, &names, works, 200).await;
        println!("  {}", d.summary(n, works));
        assert_eq!(d.applied, d.total, "not every work was applied");
    }
    if std::env::var("GARRISON_BENCH_ADDONS").as_deref() != Ok("0") {
        addon_rollout(&admin, pid, n).await;
    }
    let _ = stop_tx.send(true);
}

/// Enables managed-serviceaccount on every cluster and waits until all are Available.
async fn addon_rollout(admin: &kube::Client, pid: u32, n: usize) {
    use garrison_api::ManagedClusterAddOn;
    let (rss0, cpu0) = proc_stat(pid);
    let all: Api<ManagedClusterAddOn> = Api::all(admin.clone());
    let started = Instant::now();
    let watch = tokio::spawn(async move {
        let mut up: HashMap<String, Instant> = HashMap::new();
        let mut events = std::pin::pin!(watcher(all, watcher::Config::default()).applied_objects());
        while up.len() < n {
            let Some(Ok(m)) = events.next().await else {
                break;
            };
            let available = m.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Available" && c.status == "True")
            });
            if available {
                up.entry(m.namespace().unwrap_or_default())
                    .or_insert_with(Instant::now);
            }
        }
        up
    });
    let mut created: HashMap<String, Instant> = HashMap::new();
    let names: Vec<String> = (0..n).map(|i| format!("sim-{i:04}")).collect();
    let mut creates = futures::stream::iter(names.iter().cloned().map(|ns| {
        let api: Api<ManagedClusterAddOn> = Api::namespaced(admin.clone(), &ns);
        async move {
            let mca: ManagedClusterAddOn = serde_json::from_value(json!({
                "metadata": {"name": "managed-serviceaccount", "namespace": ns},
                "spec": {"installNamespace": "open-cluster-management-agent-addon"}
            }))
            .unwrap();
            let at = Instant::now();
            api.create(&Default::default(), &mca).await.unwrap();
            (ns, at)
        }
    }))
    .buffer_unordered(32);
    while let Some((ns, at)) = creates.next().await {
        created.insert(ns, at);
    }
    let creates_done = started.elapsed();
    let up = tokio::time::timeout(Duration::from_secs(900), watch)
        .await
        .expect("every add-on Available within 15 minutes")
        .unwrap();
    let total = started.elapsed();
    let (rss1, cpu1) = proc_stat(pid);
    let mut secs: Vec<f64> = up
        .iter()
        .map(|(ns, at)| at.saturating_duration_since(created[ns]).as_secs_f64())
        .collect();
    secs.sort_by(f64::total_cmp);
    println!(
        "  add-on managed-serviceaccount on {n} clusters: {} Available in {:.1}s (creates took {:.1}s); enable→Available p50 {:.1}s, p99 {:.1}s",
        up.len(),
        total.as_secs_f64(),
        creates_done.as_secs_f64(),
        pct(&secs, 0.5),
        pct(&secs, 0.99),
    );
    println!(
        "  hub during the rollout: RSS {} MiB → {} MiB, CPU {:.1}s",
        rss0 / 1024,
        rss1 / 1024,
        cpu1 - cpu0
    );
    assert_eq!(up.len(), n, "not every add-on became Available");
}

/// Works per cluster in the dispatch phase: 10 for up to 100 clusters, 5 beyond (as OCM's own
/// performance runs), or GARRISON_BENCH_WORKS.
fn works_per_cluster(n: usize) -> usize {
    std::env::var("GARRISON_BENCH_WORKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if n <= 100 { 10 } else { 5 })
}

fn main() {
    signing();
    let sizes: Vec<usize> = match std::env::var("GARRISON_BENCH_CLUSTERS") {
        Ok(v) => v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        Err(_) => vec![100, 1_000],
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for n in sizes {
        rt.block_on(fleet(n));
    }
}
