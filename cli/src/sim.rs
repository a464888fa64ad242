//! `garrison sim`: a fleet of simulated clusters joined to a hub.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use garrison_sim::cluster::Weight;
use garrison_sim::fleet::{self, Counts, FleetOptions};

/// How much of each simulated cluster there is.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum WeightArg {
    /// The agent's own CRDs and a short watch history: registration, leases, status and
    /// ManifestWorks of built-in kinds, at a fraction of the memory. For large fleets.
    Light,
    /// Every CRD Garrison knows, so the policy and other add-ons can run on each cluster.
    Full,
}

/// Arguments of `garrison sim`.
#[derive(Args, Debug)]
pub struct SimArgs {
    /// The hub's URL, as printed by `garrison init` or `garrison token create`.
    #[arg(long, value_name = "URL")]
    pub hub: String,
    /// A bootstrap token from the hub (`garrison token create`), shared by every cluster.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "GARRISON_JOIN_TOKEN",
        hide_env_values = true
    )]
    pub token: garrison_pki::SecretString,
    /// The pin of the hub CA (`sha256:...`); nothing is sent to a hub that presents another.
    #[arg(long, value_name = "sha256:HEX")]
    pub ca_cert_hash: String,
    /// How many clusters to simulate.
    #[arg(long, short = 'n', value_name = "N", default_value_t = 10)]
    pub clusters: usize,
    /// Cluster names: this prefix, then the index zero-padded to at least 4 digits.
    #[arg(long, value_name = "PREFIX", default_value = "sim-")]
    pub prefix: String,
    /// The index of the first cluster, so that fleets side by side do not collide.
    #[arg(long, value_name = "I", default_value_t = 0)]
    pub first: usize,
    /// Agents started per second. Each makes a key, reads the hub's cluster-info twice and
    /// opens its connection, so a burst of thousands would only time out.
    #[arg(long, value_name = "PER_SECOND", default_value_t = 50)]
    pub rate: u32,
    /// How often each agent renews its lease (1s to 1h).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_lease)]
    pub lease_duration: u64,
    /// How often each agent re-applies its works and re-reads their status (1s to 1h), as
    /// the agent's own flag. A pass that changes nothing asks nothing of the hub, so a longer
    /// period leaves more of a shared machine to the hub.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_lease)]
    pub status_sync_interval: u64,
    /// How much of each cluster is simulated.
    #[arg(long, value_enum, default_value_t = WeightArg::Light)]
    pub weight: WeightArg,
    /// The fleet's directory: one agent directory (key, certificate, pinned CA) per cluster.
    /// A second run over it resumes the same clusters instead of joining new ones.
    #[arg(long, value_name = "DIR", default_value = "garrison-sim")]
    pub data_dir: PathBuf,
    /// Stop after this long (for example 10m); by default run until Ctrl-C.
    #[arg(long, value_name = "DURATION", value_parser = parse_run_for)]
    pub duration: Option<u64>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = crate::hub::LogFormat::Text)]
    pub log_format: crate::hub::LogFormat,
}

fn parse_lease(s: &str) -> Result<u64, String> {
    crate::token::parse_duration(s, 1, 3600, "1s to 1h")
}

fn parse_run_for(s: &str) -> Result<u64, String> {
    crate::token::parse_duration(s, 1, 365 * 86_400, "1s to 365d")
}

/// Runs `garrison sim`.
pub fn run(args: SimArgs) -> Result<()> {
    let opts = FleetOptions {
        hub_url: args.hub,
        token: args.token,
        ca_cert_hash: args.ca_cert_hash,
        clusters: args.clusters,
        first: args.first,
        prefix: args.prefix,
        rate: args.rate,
        lease_duration_seconds: args.lease_duration as u32,
        status_sync_interval: std::time::Duration::from_secs(args.status_sync_interval),
        data_dir: args.data_dir,
        weight: match args.weight {
            WeightArg::Light => Weight::Light,
            WeightArg::Full => Weight::Full,
        },
    };
    opts.check()?;
    // Per agent: its hub connection; its cluster holds no file.
    let n = args.clusters as u64;
    crate::limits::raise_open_files(n * 2 + 1024, n + 256);
    // Thousands of agents: warnings only by default, and not kube's notice that discovery's
    // first read of cluster-info (checked against the pin, not a CA) skips verification.
    let _traces = crate::hub::init_logging_filtered(
        args.log_format,
        "garrison-sim",
        None,
        "warn,kube_client::client::tls=error",
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (tx, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            match args.duration {
                Some(secs) => {
                    tokio::select! {
                        _ = crate::hub::wait_for_signal() => {}
                        _ = tokio::time::sleep(Duration::from_secs(secs)) => {}
                    }
                }
                None => crate::hub::wait_for_signal().await,
            }
            let _ = tx.send(true);
        });
        let counts = Arc::new(Counts::default());
        let total = opts.clusters;
        eprintln!(
            "simulating {total} clusters ({}) against {}, {} agents a second; clusters join as the hub's administrator accepts them (garrison accept)",
            opts.name(0),
            opts.hub_url,
            opts.rate
        );
        let display = tokio::spawn(show_progress(counts.clone(), total, stop.clone()));
        let (rss0, cpu0) = fleet::own_usage();
        let started = Instant::now();
        let result = fleet::run(opts, stop, counts.clone()).await;
        display.abort();
        let (rss1, cpu1) = fleet::own_usage();
        let (launched, certified, reporting, failed) = counts.get();
        println!(
            "{launched} launched, {certified} certified, {reporting} reporting, {failed} failed in {:.0}s",
            started.elapsed().as_secs_f64()
        );
        if launched > 0 {
            println!(
                "simulator: RSS {} MiB ({:.0} KiB per cluster), CPU {:.1}s",
                rss1 / 1024,
                rss1.saturating_sub(rss0) as f64 / launched as f64,
                cpu1 - cpu0
            );
        }
        result
    })
}

/// Bars for launched, certified and reporting agents on a terminal; a line every 10 seconds
/// otherwise (logs, CI).
async fn show_progress(
    counts: Arc<Counts>,
    total: usize,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use std::io::IsTerminal;
    let bars = indicatif::MultiProgress::new();
    let make = |what: &str| {
        let pb = bars.add(crate::progress::counter(total as u64, what.to_string()));
        pb.set_position(0);
        pb
    };
    let terminal = std::io::stderr().is_terminal();
    let (launched, certified, reporting) = (make("launched"), make("certified"), make("reporting"));
    let failed = bars.add(crate::progress::spinner("failed: 0"));
    let mut tick =
        tokio::time::interval(Duration::from_millis(if terminal { 200 } else { 10_000 }));
    let started = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let (l, c, r, f) = counts.get();
        if terminal {
            launched.set_position(l as u64);
            certified.set_position(c as u64);
            reporting.set_position(r as u64);
            failed.set_message(format!("failed: {f}"));
        } else {
            eprintln!(
                "{:>6.0}s  launched {l}/{total}  certified {c}  reporting {r}  failed {f}",
                started.elapsed().as_secs_f64()
            );
        }
    }
    for pb in [launched, certified, reporting, failed] {
        pb.finish_and_clear();
    }
}
