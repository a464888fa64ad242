//! `garrison join`, `garrison klusterlet` and `garrison get klusterlet-info`: the agent side.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use garrison_klusterlet::agent::{self, JoinOptions};
use garrison_klusterlet::state::{AgentDir, SpokeSource};

use crate::hub::LogFormat;

/// Longest lease period accepted.
const MAX_LEASE_SECS: u64 = 3600;

/// Parses `--lease-duration`: 1s to 1h.
fn parse_lease(s: &str) -> Result<u64, String> {
    crate::token::parse_duration(s, 1, MAX_LEASE_SECS, "1s to 1h")
}

/// Parses `--status-sync-interval`: 1s to 1h.
fn parse_sync(s: &str) -> Result<u64, String> {
    crate::token::parse_duration(s, 1, 3600, "1s to 1h")
}

/// Parses `--appliedmanifestwork-eviction-grace-period`: 1s to 100 years (which never evicts).
fn parse_grace(s: &str) -> Result<u64, String> {
    crate::token::parse_duration(s, 1, 100 * 365 * 86_400, "1s to 36500d")
}

/// The work agent's settings, shared by `join` and `klusterlet`.
#[derive(Args, Debug, Clone)]
pub struct WorkArgs {
    /// How often every work is re-applied and its status and feedback re-read: the bound on
    /// how long drift on the cluster lasts (1s to 1h).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_sync)]
    pub status_sync_interval: u64,
    /// How long the resources of a work that is gone from the (reachable) hub are kept before
    /// they are deleted. Works deleted on the hub are cleaned up at once; this covers works
    /// removed without the agent's finalizer, or a hub that was replaced.
    #[arg(long, value_name = "DURATION", default_value = "60m", value_parser = parse_grace)]
    pub appliedmanifestwork_eviction_grace_period: u64,
    /// With --simulated: the shortest ServiceAccount token the simulated cluster issues
    /// (kube-apiserver's 10m by default). Shorter values let a demo or test watch the
    /// managed-serviceaccount add-on rotate tokens (1s to 10m).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_min_token)]
    pub simulated_min_token_expiration: u64,
    /// PEM CA certificates trusted for image registries, besides the system's (for the
    /// image-verification add-on). Repeatable.
    #[arg(long = "registry-ca", value_name = "FILE")]
    pub registry_cas: Vec<PathBuf>,
    /// A pull secret's `.dockerconfigjson` with registry credentials for the
    /// image-verification add-on. Repeatable.
    #[arg(long = "pull-secret", value_name = "FILE")]
    pub pull_secrets: Vec<PathBuf>,
    /// What the image-verification add-on does with an image no image policy covers, on a
    /// cluster that has image policies: deny (upstream's default), warn or allow.
    #[arg(long, default_value = "deny", value_name = "ACTION")]
    pub image_no_match: garrison_supply_chain::check::NoMatch,
    /// Serve the agent's Prometheus metrics over HTTPS at ADDR (e.g. 0.0.0.0:8443), path
    /// /metrics. Callers present a bearer token of the managed cluster; it is checked with a
    /// TokenReview, and the caller needs `get` on the non-resource URL /metrics (ClusterRole
    /// system:monitoring) by a SubjectAccessReview. The serving certificate's CA is written to
    /// DIR/metrics-ca.crt. Off unless given.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// A DNS name or IP the metrics serving certificate holds besides localhost, the listen
    /// address, the host's name and $POD_IP (a Service's name, say). Repeatable.
    #[arg(long = "metrics-cert-host", value_name = "NAME")]
    pub metrics_cert_hosts: Vec<String>,
    /// Export traces (each pass over a work, continuing the trace of the write that made it)
    /// over OTLP/HTTP to this collector base URL (`/v1/traces` is appended). Without it, the
    /// standard OTEL_EXPORTER_OTLP_ENDPOINT is read.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

/// Parses `--simulated-min-token-expiration`: 1s to 10m.
fn parse_min_token(s: &str) -> Result<u64, String> {
    crate::token::parse_duration(s, 1, 600, "1s to 10m")
}

impl WorkArgs {
    fn options(&self) -> Result<agent::RunOptions> {
        let mut registry = garrison_supply_chain::registry::RegistryConfig::default();
        for p in &self.registry_cas {
            let pem = std::fs::read_to_string(p)
                .with_context(|| format!("reading --registry-ca {}", p.display()))?;
            registry
                .add_ca_pem(&pem)
                .map_err(|e| anyhow::anyhow!("--registry-ca {}: {e}", p.display()))?;
        }
        for p in &self.pull_secrets {
            let json = std::fs::read(p)
                .with_context(|| format!("reading --pull-secret {}", p.display()))?;
            registry.add_docker_config(&json).map_err(|e| {
                anyhow::anyhow!(
                    "--pull-secret {}: not a .dockerconfigjson: {e}",
                    p.display()
                )
            })?;
        }
        Ok(agent::RunOptions {
            work: agent::WorkOptions {
                resync: Duration::from_secs(self.status_sync_interval),
                eviction_grace: Duration::from_secs(self.appliedmanifestwork_eviction_grace_period),
            },
            simulator: Some(garrison_sim::cluster::persistent(
                self.simulated_min_token_expiration as i64,
            )),
            on_phase: None,
            caller_holds_lock: false,
            image: garrison_klusterlet::addon::image::ImageOptions {
                registry,
                no_match: self.image_no_match,
            },
            metrics_listen: self.metrics_listen,
            metrics_cert_hosts: self.metrics_cert_hosts.clone(),
        })
    }
}

/// Arguments of `garrison join`.
#[derive(Args, Debug)]
pub struct JoinArgs {
    /// The hub's URL, as printed by `garrison init` or `garrison token create`.
    #[arg(long, value_name = "URL")]
    pub hub: String,
    /// A bootstrap token from the hub (`garrison token create`).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "GARRISON_JOIN_TOKEN",
        hide_env_values = true
    )]
    pub token: garrison_pki::SecretString,
    /// The pin of the hub CA (`sha256:...`). The join fails, before anything is sent, if the hub
    /// presents another CA.
    #[arg(long, value_name = "sha256:HEX")]
    pub ca_cert_hash: String,
    /// This cluster's name on the hub: a lowercase DNS label.
    #[arg(long, value_name = "NAME")]
    pub cluster_name: String,
    /// The agent's data directory (created, mode 0700): key, certificate, pinned CA.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Manage a simulated cluster (for demos, tests and benchmarks): an API server kept in the
    /// data directory, whose Deployments, Jobs and Pods get the status a healthy cluster gives.
    #[arg(long, conflicts_with_all = ["kubeconfig", "in_cluster"],
        required_unless_present_any = ["kubeconfig", "in_cluster"])]
    pub simulated: bool,
    /// Manage the real cluster this kubeconfig reaches.
    #[arg(long, value_name = "FILE", conflicts_with = "in_cluster")]
    pub kubeconfig: Option<PathBuf>,
    /// Manage the cluster this runs in, with the pod's ServiceAccount (`garrison install
    /// klusterlet`).
    #[arg(long)]
    pub in_cluster: bool,
    /// If DIR already holds a joined klusterlet, run it instead of joining (the token is then
    /// not used): for a pod that restarts over a persistent volume.
    #[arg(long, conflicts_with = "force")]
    pub resume: bool,
    /// How often the agent renews its lease (1s to 1h). Shorter values are for testing; the
    /// hub marks the cluster Unknown after 5 missed periods.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_lease)]
    pub lease_duration: u64,
    /// Join again over an existing agent directory (a new key and a new request).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub work: WorkArgs,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Arguments of `garrison klusterlet`.
#[derive(Args, Debug)]
pub struct KlusterletArgs {
    /// The agent's data directory, as made by `garrison join`.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub work: WorkArgs,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Arguments of `garrison get klusterlet-info`.
#[derive(Args, Debug)]
pub struct KlusterletInfoArgs {
    /// The agent's data directory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Print JSON.
    #[arg(long, short = 'o', value_parser = ["json"])]
    pub output: Option<String>,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn stop_on_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::hub::wait_for_signal().await;
        let _ = tx.send(true);
    });
    rx
}

/// Runs `garrison join`.
pub fn join(args: JoinArgs) -> Result<()> {
    let spoke = match (&args.kubeconfig, args.simulated, args.in_cluster) {
        (Some(p), false, false) => SpokeSource::Kubeconfig { path: p.clone() },
        (None, true, false) => SpokeSource::Simulated,
        (None, false, true) => SpokeSource::InCluster,
        _ => bail!("give exactly one of --simulated, --kubeconfig FILE or --in-cluster"),
    };
    if args.resume && AgentDir::new(&args.data_dir).is_joined() {
        return klusterlet(KlusterletArgs {
            data_dir: args.data_dir,
            work: args.work,
            log_format: args.log_format,
        });
    }
    let opts = JoinOptions {
        hub_url: args.hub,
        token: args.token,
        ca_cert_hash: args.ca_cert_hash,
        cluster_name: args.cluster_name,
        spoke,
        lease_duration_seconds: args.lease_duration as u32,
        force: args.force,
    };
    let _traces = crate::hub::init_logging(
        args.log_format,
        "garrison-klusterlet",
        args.work.otlp_endpoint.as_deref(),
    )?;
    let dir = AgentDir::new(&args.data_dir);
    let work = args.work.options()?;
    runtime()?.block_on(async {
        agent::prepare_join(&dir, &opts).await?;
        let stop = stop_on_signal();
        agent::run(&dir, stop, true, work).await
    })
}

/// Runs `garrison klusterlet`.
pub fn klusterlet(args: KlusterletArgs) -> Result<()> {
    let dir = AgentDir::new(&args.data_dir);
    dir.load_config()?;
    let options = args.work.options()?;
    let _traces = crate::hub::init_logging(
        args.log_format,
        "garrison-klusterlet",
        args.work.otlp_endpoint.as_deref(),
    )?;
    runtime()?.block_on(async {
        let stop = stop_on_signal();
        let result = agent::run(&dir, stop, false, options).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        result
    })
}

/// Runs `garrison get klusterlet-info`.
pub fn info(args: KlusterletInfoArgs) -> Result<()> {
    let info = agent::info(&AgentDir::new(&args.data_dir))?;
    if args.output.is_some() {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    println!("cluster:           {}", info.cluster_name);
    println!("hub:               {}", info.hub_url);
    println!("ca-cert-hash:      {}", info.ca_cert_hash);
    println!("agent identity:    {}", info.agent);
    println!("managed cluster:   {}", info.managed_cluster);
    println!("lease duration:    {}s", info.lease_duration_seconds);
    match &info.certificate {
        Some(c) => {
            println!(
                "certificate:       serial {} ({})",
                c.serial,
                if c.valid_now {
                    "valid"
                } else {
                    "EXPIRED or unusable"
                }
            );
            println!("  valid from:      {}", c.not_before);
            println!("  valid until:     {}", c.not_after);
            println!("  rotation by:     {}", c.rotation_due_by);
            println!("  key fingerprint: {}", c.key_fingerprint);
        }
        None => println!("certificate:       none yet"),
    }
    match &info.pending_csr {
        Some(csr) => println!(
            "pending request:   CSR {csr} (waiting for `garrison accept {}` on the hub)",
            info.cluster_name
        ),
        None => println!("pending request:   none"),
    }
    if let Some(fp) = &info.pending_key_fingerprint {
        println!("  key fingerprint: {fp} (compare with what `garrison accept` shows)");
    }
    println!(
        "bootstrap token:   {}",
        if info.bootstrap_token_kept {
            "kept (for re-bootstrap)"
        } else {
            "none"
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cmd {
        #[command(flatten)]
        join: JoinArgs,
    }

    /// Regression: `JoinArgs` derived `Debug` with the token as a plain `String`, so any debug
    /// log of the arguments printed the bootstrap token.
    #[test]
    fn join_arguments_debug_without_the_token() {
        let cmd = Cmd::try_parse_from([
            "join",
            "--hub",
            "https://hub.example:6443",
            "--token",
            "abcdef.0123456789abcdef",
            "--ca-cert-hash",
            "sha256:00",
            "--cluster-name",
            "c1",
            "--data-dir",
            "agent",
            "--simulated",
        ])
        .unwrap();
        assert_eq!(cmd.join.token.expose(), "abcdef.0123456789abcdef");
        let shown = format!("{cmd:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains("c1"), "{shown}");
    }
}
