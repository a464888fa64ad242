//! `garrison hub`: run the API server over HTTPS until SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use garrison_apiserver::server::{Server, ServerConfig};
use garrison_apiserver::tls;

use crate::datadir::DataDir;
use crate::init::HubSettings;

/// Arguments of `garrison hub`.
#[derive(Args, Debug)]
pub struct HubArgs {
    /// The hub's data directory, as made by `garrison init`.
    #[arg(long, value_name = "DIR", default_value_os_t = crate::default_data_dir())]
    pub data_dir: PathBuf,
    /// Listen address; overrides the one given to `init`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Number of recent events kept for watches to resume from; older resourceVersions get 410 Gone.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub watch_cache_events: u64,
    /// Seconds between watch bookmarks sent to clients that ask for them.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub watch_bookmark_seconds: u64,
    /// Lifetime of the client certificates issued to agents (10s to 24h). Requests for longer
    /// are shortened to it; requests over 24h are refused. Shorter values are for testing
    /// rotation.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_cert_lifetime)]
    pub cert_lifetime: u64,
    /// How an accepted cluster's certificate renewals are approved: `auto` approves a renewal
    /// that passes every check (same identity, accepted cluster, good key and usages); `manual`
    /// leaves every renewal for an admin (`garrison accept NAME`), while agents keep working on
    /// their current certificate until it expires. Bad requests are denied in both modes.
    #[arg(long, value_enum, default_value_t = RenewalApproval::Auto)]
    pub renewal_approval: RenewalApproval,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Who approves certificate renewals.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenewalApproval {
    /// The hub, when every check passes.
    Auto,
    /// An admin, with `garrison accept`.
    Manual,
}

fn parse_cert_lifetime(s: &str) -> Result<u64, String> {
    crate::token::parse_duration(
        s,
        10,
        garrison_pki::csr::MAX_CLIENT_LIFETIME_SECS,
        "10s to 24h",
    )
}

/// Log output formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Sets up logging on stderr, once per process.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let _ = builder.try_init();
        }
        LogFormat::Json => {
            let _ = builder.json().try_init();
        }
    }
}

fn read(dir: &DataDir, name: &str) -> Result<Vec<u8>> {
    let p = dir.pki_file(name);
    std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))
}

/// Runs `garrison hub`.
pub fn run(args: HubArgs) -> Result<()> {
    // Phase 1: configuration, no side effects.
    let dir = DataDir::new(&args.data_dir);
    dir.require_initialized()?;
    let settings = HubSettings::load(&dir)?;
    let listen = args.listen.unwrap_or(settings.listen);
    init_logging(args.log_format);
    // Phase 2: build — lock, certificates, store, socket.
    let _lock = dir.lock("starting another hub")?;
    let chain = tls::certs_from_pem(
        "serving certificate pki/serving.crt",
        &read(&dir, "serving.crt")?,
    )?;
    let key = tls::key_from_pem("serving key pki/serving.key", &read(&dir, "serving.key")?)?;
    let client_ca_pem = read(&dir, "client-ca.crt")?;
    let client_ca = tls::certs_from_pem("client CA pki/client-ca.crt", &client_ca_pem)?;
    let tls_config = tls::server_config(chain, key, &client_ca).context("bad certificate")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // The socket first: a busy port fails before the store is touched.
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                anyhow::anyhow!("cannot listen on {listen}: the port is already in use (another hub? choose one with --listen)")
            } else {
                anyhow::anyhow!("cannot listen on {listen}: {e}")
            }
        })?;
        let cfg = ServerConfig {
            store_path: Some(dir.store()),
            audit_path: Some(dir.audit_log()),
            watch_cache_events: args.watch_cache_events as usize,
            bookmark_interval: Duration::from_secs(args.watch_bookmark_seconds),
            ..ServerConfig::default()
        };
        let server = Server::build(&cfg)?;
        let crds = garrison_api::crds::all_json();
        server.install_crds(&crds).map_err(|e| anyhow::anyhow!("cannot install the OCM CRDs: {}", e.message))?;
        let bound = listener.local_addr()?;
        tracing::info!(address = %bound, data_dir = %dir.root.display(), crds = crds.len(), "garrison hub serving");
        eprintln!("garrison hub serving on https://{bound} (admin kubeconfig: {})", dir.admin_kubeconfig().display());
        // The embedded signer for agents' client certificates, with the client CA.
        let ca = garrison_pki::ClusterCa::from_pem(
            &String::from_utf8_lossy(&client_ca_pem),
            &String::from_utf8_lossy(&read(&dir, "client-ca.key")?),
        )
        .context("cannot load the client CA from pki/client-ca.crt and pki/client-ca.key")?;
        let hub_client = server.local_client(garrison_apiserver::bootstrap::system_user());
        use garrison_hub::registration::cluster;
        cluster::ensure_shared_rbac(&hub_client)
            .await
            .map_err(|e| anyhow::anyhow!("cannot create the registration RBAC: {e}"))?;
        garrison_hub::clusterset::ensure_builtin_sets(&hub_client)
            .await
            .map_err(|e| anyhow::anyhow!("cannot create the default and global cluster sets: {e}"))?;
        let controllers = start_controllers(&hub_client, ca, &args);
        server
            .health()
            .add("controllers", Arc::new(move || controllers.check()));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let serve = tokio::spawn(tls::serve(
            listener,
            tls_config,
            server.router(),
            stop_rx,
            Some(server.connection_policy.clone()),
        ));
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), serve).await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Starts every hub controller under a supervisor, which restarts any that dies and reports
/// the dead ones to `/readyz`.
fn start_controllers(
    client: &kube::Client,
    ca: garrison_pki::ClusterCa,
    args: &HubArgs,
) -> garrison_hub::supervisor::Supervisor {
    use garrison_hub::registration::{approver, cleaner, cluster, csr_signer};
    let sup = garrison_hub::supervisor::Supervisor::default();
    let signer = Arc::new(csr_signer::Ctx {
        client: client.clone(),
        ca,
        max_lifetime_secs: garrison_pki::csr::MAX_CLIENT_LIFETIME_SECS,
        issue_lifetime_secs: args.cert_lifetime,
    });
    sup.spawn("csr-signer", move || csr_signer::run(signer.clone()));
    let approval = Arc::new(approver::Ctx {
        client: client.clone(),
        auto_approve: args.renewal_approval == RenewalApproval::Auto,
    });
    sup.spawn("csr-approver", move || approver::run(approval.clone()));
    let clean = Arc::new(cleaner::Ctx {
        client: client.clone(),
    });
    sup.spawn("registration-cleaner", move || cleaner::run(clean.clone()));
    let c = client.clone();
    sup.spawn("clusterset", move || {
        garrison_hub::clusterset::run(c.clone())
    });
    let c = client.clone();
    sup.spawn("placement", move || garrison_hub::placement::run(c.clone()));
    let c = client.clone();
    sup.spawn("manifestworkreplicaset", move || {
        garrison_hub::mwrs::run(c.clone())
    });
    let clusters = Arc::new(cluster::Ctx::new(client.clone()));
    sup.spawn("managedcluster", move || cluster::run(clusters.clone()));
    sup
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
