//! Fleet benchmark (not a test): one `garrison hub` process and one `garrison sim` process
//! with N simulated clusters (default 10,000), each run by the real agent over its own mTLS
//! connection.
//!
//! 1. Join: the simulator starts agents at a steady rate; an administrator loop accepts every
//!    cluster and approves its CSR, as `garrison accept --yes` does. Measured: the time until
//!    all N are Available, the join rate, the per-cluster latency from the ManagedCluster's
//!    creation (first seen by a watch) to `ManagedClusterConditionAvailable=True`, and the
//!    hub's RSS and CPU time.
//! 2. Steady state: the hub's CPU over several lease periods (every agent renews its lease and
//!    reports status each period, 60 s by default) and its RSS; the simulator's RSS per cluster.
//! 3. Dispatch: W ManifestWorks per cluster (one ConfigMap each; 5 by default), created at a
//!    steady rate; create → `Applied=True` seen on the hub, p50 and p99. Then the steady state
//!    again, with every work in place.
//!
//! Run: `cargo bench -p garrison-e2e --bench fleet`. Settings: GARRISON_BENCH_CLUSTERS (10000),
//! GARRISON_BENCH_RATE (agents started a second, 20: what two cores shared by the hub and the
//! simulator absorb), GARRISON_BENCH_STEADY_SECS (180),
//! GARRISON_BENCH_WORKS (5 per cluster; 0 skips dispatch), GARRISON_BENCH_WORK_RATE (creates a
//! second, 50), GARRISON_BENCH_STATUS_SYNC_SECS (how often each simulated agent re-applies its
//! works, 300: upstream's work agent re-applies every 4 to 6 minutes. A pass that changes
//! nothing asks nothing of the hub, but at 10,000 clusters with 5 works each, passes every 10 s
//! would take the simulator alone past the machine's two cores).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use garrison_e2e::{Hub, create_token, fleet, garrison_bin, pct, proc_stat};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().replace(['_', ','], "").parse().ok())
        .unwrap_or(default)
}

fn mib(kib: u64) -> u64 {
    kib / 1024
}

async fn run() {
    let n = setting("GARRISON_BENCH_CLUSTERS", 10_000);
    let rate = setting("GARRISON_BENCH_RATE", 20);
    let steady = setting("GARRISON_BENCH_STEADY_SECS", 180);
    let works = setting("GARRISON_BENCH_WORKS", 5);
    let work_rate = setting("GARRISON_BENCH_WORK_RATE", 50);
    let status_sync = setting("GARRISON_BENCH_STATUS_SYNC_SECS", 300);
    let hub = Hub::start().await.expect("the hub starts");
    let admin = hub.client().await.expect("an admin client");
    let (token, pin) = create_token(&hub, "4h");
    let pid = hub.pid().expect("the hub's pid");
    let (rss_idle, _) = proc_stat(pid);
    let heap_idle = fleet::heap_kib(&admin).await.unwrap_or_default();
    println!(
        "{n} clusters, started {rate} a second, agents re-applying every {status_sync}s; hub idle RSS {} MiB, heap {} MiB",
        mib(rss_idle),
        mib(heap_idle)
    );

    let acceptor = fleet::accept_everything(&admin);
    let available = fleet::watch_available(&admin, n, Duration::from_secs(3 * 3600));
    let (_, cpu0) = proc_stat(pid);
    let root = tempfile::tempdir().expect("a temporary directory");
    let log = std::fs::File::create(root.path().join("sim.log")).expect("the simulator's log");
    let started = Instant::now();
    let mut sim = Command::new(garrison_bin())
        .args(["sim", "--hub", &format!("https://127.0.0.1:{}", hub.port)])
        .args(["--ca-cert-hash", &pin, "--clusters", &n.to_string()])
        .args(["--rate", &rate.to_string()])
        .args(["--status-sync-interval", &format!("{status_sync}s")])
        .arg("--data-dir")
        .arg(root.path().join("fleet"))
        .env("GARRISON_JOIN_TOKEN", &token)
        .stdout(log.try_clone().expect("the log"))
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("garrison sim starts");
    let sim_pid = sim.id();
    let (seen_at, up_at) = available.await.expect("the watch task");
    let joined = started.elapsed();
    let (rss_joined, cpu_joined) = proc_stat(pid);
    let heap_joined = fleet::heap_kib(&admin).await.unwrap_or_default();
    acceptor.abort();
    let mut secs: Vec<f64> = up_at
        .iter()
        .filter_map(|(name, up)| Some(up.saturating_duration_since(*seen_at.get(name)?)))
        .map(|d| d.as_secs_f64())
        .collect();
    secs.sort_by(f64::total_cmp);
    println!(
        "join: {} of {n} Available in {:.1}s ({:.1} clusters/s); created → Available p50 {:.1}s, p99 {:.1}s",
        up_at.len(),
        joined.as_secs_f64(),
        up_at.len() as f64 / joined.as_secs_f64(),
        pct(&secs, 0.5),
        pct(&secs, 0.99),
    );
    println!(
        "  hub: RSS {} → {} MiB ({:.0} KiB per cluster), heap {} → {} MiB ({:.0} KiB per cluster), CPU {:.1}s ({:.1} ms per cluster)",
        mib(rss_idle),
        mib(rss_joined),
        rss_joined.saturating_sub(rss_idle) as f64 / n as f64,
        mib(heap_idle),
        mib(heap_joined),
        heap_joined.saturating_sub(heap_idle) as f64 / n as f64,
        cpu_joined - cpu0,
        (cpu_joined - cpu0) * 1e3 / n as f64,
    );

    let (_, cpu_a) = proc_stat(pid);
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(steady as u64)).await;
    let (rss_steady, cpu_b) = proc_stat(pid);
    let (sim_rss, sim_cpu) = proc_stat(sim_pid);
    let window = t.elapsed().as_secs_f64();
    let heap_steady = fleet::heap_kib(&admin).await.unwrap_or_default();
    println!(
        "steady state over {window:.0}s: hub CPU {:.3} cores ({:.1}s), RSS {} MiB, heap {} MiB ({:.0} KiB per cluster); simulator RSS {} MiB ({:.0} KiB per cluster), CPU {:.0}s so far",
        (cpu_b - cpu_a) / window,
        cpu_b - cpu_a,
        mib(rss_steady),
        mib(heap_steady),
        heap_steady.saturating_sub(heap_idle) as f64 / n as f64,
        mib(sim_rss),
        sim_rss as f64 / n as f64,
        sim_cpu,
    );

    if works > 0 {
        let names: Vec<String> = (0..n)
            .map(|i| format!("sim-{i:0w$}", w = (n - 1).to_string().len().max(4)))
            .collect();
        let d = fleet::dispatch(&admin, pid, &names, works, work_rate).await;
        println!("{}", d.summary(n, works));
        // The same window again with every work in place: each agent re-applies its works
        // and re-reads their status every resync, and reports only what changed.
        let (_, hub_a) = proc_stat(pid);
        let (_, sim_a) = proc_stat(sim_pid);
        let t = Instant::now();
        tokio::time::sleep(Duration::from_secs(steady as u64)).await;
        let (rss, hub_b) = proc_stat(pid);
        let (sim_rss, sim_b) = proc_stat(sim_pid);
        let window = t.elapsed().as_secs_f64();
        println!(
            "steady state with {} works over {window:.0}s: hub CPU {:.3} cores, RSS {} MiB; simulator CPU {:.3} cores, RSS {} MiB",
            n * works,
            (hub_b - hub_a) / window,
            mib(rss),
            (sim_b - sim_a) / window,
            mib(sim_rss),
        );
    }
    // What the agents' connections and watches hold on the hub: its RSS once they are gone.
    let (rss_before, _) = proc_stat(pid);
    let _ = sim.kill();
    let _ = sim.wait();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let (rss_after, _) = proc_stat(pid);
    let heap_after = fleet::heap_kib(&admin).await.unwrap_or_default();
    println!(
        "simulator stopped: hub RSS {} → {} MiB ({:.0} KiB per disconnected agent), heap {} MiB",
        mib(rss_before),
        mib(rss_after),
        rss_before.saturating_sub(rss_after) as f64 / n as f64,
        mib(heap_after)
    );
    assert_eq!(up_at.len(), n, "not every cluster became Available");
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(run());
}
