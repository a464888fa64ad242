//! A fleet of simulated clusters in one process, each joined and run by the real agent.
//!
//! Agents are launched at a steady rate (a burst of thousands starting at once would starve
//! their own TLS handshakes and the hub's), each with its own data directory under the fleet's,
//! its own key and certificate, and one HTTP/2 connection to the hub. A directory that already
//! holds a joined agent is resumed rather than joined again, so a stopped fleet comes back
//! with the same identities. The administrator still accepts every cluster on the hub: the
//! simulator holds no hub credentials beyond the bootstrap token.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use garrison_klusterlet::agent::{self, JoinOptions, Phase, RunOptions};
use garrison_klusterlet::state::{AgentDir, SpokeSource};
use garrison_pki::{ClusterName, SecretString};
use tokio::sync::watch;

use crate::cluster::Weight;

/// What to simulate, and where the hub is.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// The hub's URL.
    pub hub_url: String,
    /// The bootstrap token.
    pub token: SecretString,
    /// The pin of the hub's CA.
    pub ca_cert_hash: String,
    /// How many clusters.
    pub clusters: usize,
    /// The index of the first (so fleets side by side do not collide).
    pub first: usize,
    /// Cluster names are this prefix and a zero-padded index.
    pub prefix: String,
    /// Agents launched per second.
    pub rate: u32,
    /// The lease period the agents ask for, seconds.
    pub lease_duration_seconds: u32,
    /// How often each agent re-applies its works and re-reads their status.
    pub status_sync_interval: Duration,
    /// The fleet's directory: one agent directory per cluster in it.
    pub data_dir: PathBuf,
    /// How much of each cluster is simulated.
    pub weight: Weight,
}

/// How far the fleet has come; every count only grows.
#[derive(Debug, Default)]
pub struct Counts {
    /// Agents started.
    pub launched: AtomicUsize,
    /// Agents that hold a signed certificate.
    pub certified: AtomicUsize,
    /// Agents that renewed their lease: accepted and reporting.
    pub reporting: AtomicUsize,
    /// Agents that stopped with an error.
    pub failed: AtomicUsize,
}

impl Counts {
    /// (launched, certified, reporting, failed).
    pub fn get(&self) -> (usize, usize, usize, usize) {
        (
            self.launched.load(Ordering::Relaxed),
            self.certified.load(Ordering::Relaxed),
            self.reporting.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

impl FleetOptions {
    /// The name of the `i`-th cluster of the fleet (0-based, before `first`).
    pub fn name(&self, i: usize) -> String {
        let last = self.first + self.clusters.saturating_sub(1);
        let width = last.to_string().len().max(4);
        format!("{}{:0width$}", self.prefix, self.first + i)
    }

    /// Checks everything that can be checked before the first agent starts.
    pub fn check(&self) -> Result<()> {
        if self.clusters == 0 {
            bail!("--clusters must be at least 1");
        }
        if self.rate == 0 {
            bail!("--rate must be at least 1 agent per second");
        }
        for name in [self.name(0), self.name(self.clusters - 1)] {
            ClusterName::parse(&name).map_err(|e| {
                anyhow::anyhow!(
                    "--prefix {:?} makes the cluster name {name:?}: {e}",
                    self.prefix
                )
            })?;
        }
        garrison_klusterlet::hub::parse_pin(&self.ca_cert_hash)?;
        garrison_klusterlet::hub::host_port(&self.hub_url)?;
        agent::check_token_shape(self.token.expose())?;
        Ok(())
    }
}

/// Runs the fleet until `stop` turns true: launches every agent, then keeps them running.
/// Progress goes to `counts` as it happens. Returns once every agent has stopped (at most a few
/// seconds after `stop`).
pub async fn run(
    opts: FleetOptions,
    stop: watch::Receiver<bool>,
    counts: Arc<Counts>,
) -> Result<()> {
    opts.check()?;
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("cannot create {}", opts.data_dir.display()))?;
    // One lock for the whole fleet: a second simulator over the same directory is refused,
    // and the agents inside need no lock (and no open file) each.
    let _lock = AgentDir::new(&opts.data_dir).lock()?;
    agent::set_quiet(true);
    let simulator = crate::cluster::in_memory(opts.weight);
    let period = Duration::from_secs_f64(1.0 / f64::from(opts.rate));
    let mut pace = tokio::time::interval(period);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tasks = tokio::task::JoinSet::new();
    let mut halt = stop.clone();
    for i in 0..opts.clusters {
        tokio::select! {
            _ = pace.tick() => {}
            _ = halt.wait_for(|s| *s) => break,
        }
        let name = opts.name(i);
        let dir = AgentDir::new(&opts.data_dir.join(&name));
        let join = JoinOptions {
            hub_url: opts.hub_url.clone(),
            token: opts.token.clone(),
            ca_cert_hash: opts.ca_cert_hash.clone(),
            cluster_name: name.clone(),
            spoke: SpokeSource::Simulated,
            lease_duration_seconds: opts.lease_duration_seconds,
            force: false,
        };
        let run_opts = RunOptions {
            simulator: Some(simulator.clone()),
            on_phase: Some(phase_counter(counts.clone())),
            caller_holds_lock: true,
            work: garrison_klusterlet::work::Options {
                resync: opts.status_sync_interval,
                ..Default::default()
            },
            ..Default::default()
        };
        counts.launched.fetch_add(1, Ordering::Relaxed);
        let counts = counts.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            if let Err(e) = run_one(&dir, &join, stop, run_opts).await {
                counts.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(cluster = %join.cluster_name, error = format!("{e:#}"), "simulated cluster stopped");
            }
        });
    }
    let mut halt = stop.clone();
    let _ = halt.wait_for(|s| *s).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Some(_)) = tokio::time::timeout_at(deadline, tasks.join_next()).await {}
    tasks.abort_all();
    Ok(())
}

/// Attempts at joining before a simulated cluster gives up.
const JOIN_ATTEMPTS: u32 = 8;

/// Joins (or resumes) one agent and runs it.
async fn run_one(
    dir: &AgentDir,
    join: &JoinOptions,
    stop: watch::Receiver<bool>,
    opts: RunOptions,
) -> Result<()> {
    let first = !dir.is_joined();
    if first {
        // A hub busy with thousands of joins drops handshakes; a simulated cluster tries
        // again, as a person would, before giving up.
        let mut backoff = agent::Backoff::new(Duration::from_secs(2), agent::MAX_BACKOFF);
        let mut attempt = 1;
        while let Err(e) = agent::prepare_join(dir, join).await {
            if attempt == JOIN_ATTEMPTS {
                return Err(e);
            }
            tracing::debug!(cluster = %join.cluster_name, error = format!("{e:#}"), "join failed; trying again");
            attempt += 1;
            tokio::time::sleep(backoff.next_delay()).await;
        }
    } else {
        let cfg = dir.load_config()?;
        if cfg.hub_url != join.hub_url || cfg.cluster_name != join.cluster_name {
            bail!(
                "{} holds an agent of cluster {} joined to {}; use another --data-dir",
                dir.root.display(),
                cfg.cluster_name,
                cfg.hub_url
            );
        }
    }
    agent::run(dir, stop, first, opts).await
}

/// Counts an agent's first certificate and first lease renewal.
fn phase_counter(counts: Arc<Counts>) -> Arc<dyn Fn(Phase) + Send + Sync> {
    let certified = AtomicBool::new(false);
    let reporting = AtomicBool::new(false);
    Arc::new(move |phase| {
        let (flag, count) = match phase {
            Phase::Certified => (&certified, &counts.certified),
            Phase::Reporting => (&reporting, &counts.reporting),
        };
        if !flag.swap(true, Ordering::Relaxed) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    })
}

/// This process's resident memory (KiB) and CPU time (seconds) so far.
pub fn own_usage() -> (u64, f64) {
    usage_of("/proc/self")
}

/// A process's resident memory (KiB) and CPU time (seconds) so far, read from its `/proc`
/// directory (`/proc/self`, `/proc/PID`); zeros where it is not readable.
pub fn usage_of(proc_dir: &str) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("{proc_dir}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("{proc_dir}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of stat(5); after the ")" they are 11 and 12.
    let ticks: u64 = fields.get(11).and_then(|s| s.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (rss, ticks as f64 / 100.0)
}
