//! `garrison hub`: run the API server over HTTPS until SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use garrison_apiserver::server::{Server, ServerConfig};
use garrison_apiserver::tls;
use garrison_hub::cache::Informers;

use crate::datadir::DataDir;
use crate::init::HubSettings;

/// Arguments of `garrison hub`.
#[derive(Args, Debug)]
pub struct HubArgs {
    /// Run the hub's controllers and admission webhooks against the existing Kubernetes API
    /// server this kubeconfig reaches, instead of an embedded one. The hub installs or updates
    /// the OCM CRDs and its webhook configurations there, and elects a leader with a Lease so
    /// several replicas can run. kube-controller-manager signs the agents' certificates; the hub
    /// only approves them. Without it, the hub embeds its own API server (DIR is used).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Like --kubeconfig, with the credentials of the pod's ServiceAccount: for the hub
    /// installed in a cluster (`garrison install hub`).
    #[arg(long, conflicts_with = "kubeconfig")]
    pub in_cluster: bool,
    #[command(flatten)]
    pub external: crate::hub_external::ExternalArgs,
    /// The hub's data directory, as made by `garrison init`.
    #[arg(long, value_name = "DIR", default_value_os_t = crate::default_data_dir())]
    pub data_dir: PathBuf,
    /// Listen address; overrides the one given to `init`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Number of recent events kept for watches to resume from; older resourceVersions get 410 Gone.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub watch_cache_events: u64,
    /// Most MiB those events may hold (their JSON); the oldest leave first.
    #[arg(long, value_name = "MIB", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub watch_cache_mib: u64,
    /// Seconds between watch bookmarks sent to clients that ask for them.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub watch_bookmark_seconds: u64,
    /// Seconds an Event is kept after it was last written, as kube-apiserver's --event-ttl;
    /// at most 20,000 Events are kept in all, the oldest going first.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=30 * 24 * 3600))]
    pub event_ttl: u64,
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
    /// How often the hub signs the compliance history's head with its checkpoint key, when
    /// the history grew (10s to 1d). An exported history verifies offline up to its last
    /// checkpoint with the hub's public key alone.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_checkpoint_interval)]
    pub checkpoint_interval: u64,
    /// Keep the compliance history in PostgreSQL (`postgres://user@127.0.0.1:5432/db`, or a
    /// Unix socket directory as host) instead of DIR/compliance-history.db, for long retention
    /// at fleet scale. Loopback or Unix sockets only: the connection is not encrypted.
    #[arg(
        long,
        value_name = "URL",
        env = "GARRISON_HISTORY_DATABASE",
        hide_env_values = true
    )]
    pub history_database: Option<String>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Export traces (API requests, controller reconciles) over OTLP/HTTP to this collector
    /// base URL, e.g. http://127.0.0.1:4318 (`/v1/traces` is appended). Without it, the
    /// standard OTEL_EXPORTER_OTLP_ENDPOINT is read; with neither, nothing is exported.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

/// Who approves certificate renewals.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenewalApproval {
    /// The hub, when every check passes.
    Auto,
    /// An admin, with `garrison accept`.
    Manual,
}

fn parse_checkpoint_interval(s: &str) -> Result<u64, String> {
    crate::token::parse_duration(s, 10, 86_400, "10s to 1d")
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

/// Sets up logging on stderr, once per process, and with an OTLP endpoint (`otlp`, or the
/// standard `OTEL_EXPORTER_OTLP_ENDPOINT`) the export of spans as `service`; the guard, held
/// to the end of the command, flushes them.
pub fn init_logging(
    format: LogFormat,
    service: &str,
    otlp: Option<&str>,
) -> Result<Option<garrison_telemetry::traces::Guard>> {
    init_logging_filtered(format, service, otlp, "info")
}

/// [`init_logging`] printing what `default_filter` selects when `$RUST_LOG` is not set.
pub fn init_logging_filtered(
    format: LogFormat,
    service: &str,
    otlp: Option<&str>,
    default_filter: &str,
) -> Result<Option<garrison_telemetry::traces::Guard>> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    // The log filter ($RUST_LOG) decides what is printed; spans are exported from info up
    // whatever it says, and kube's own debug spans (with URLs) never are.
    let (otel, guard) = match garrison_telemetry::traces::endpoint(otlp) {
        Some(endpoint) => match garrison_telemetry::traces::start(service, &endpoint) {
            Ok((layer, guard)) => (
                Some(layer.with_filter(tracing_subscriber::filter::LevelFilter::INFO)),
                Some(guard),
            ),
            // A bad flag is the user's to fix now; a stray variable in the environment must
            // not stop a daemon.
            Err(e) if otlp.is_some() => return Err(anyhow::anyhow!("--otlp-endpoint: {e}")),
            Err(e) => {
                eprintln!("warning: OTEL_EXPORTER_OTLP_ENDPOINT: {e}; not exporting traces");
                (None, None)
            }
        },
        None => (None, None),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(otel)
        .with(fmt.with_filter(filter))
        .try_init();
    Ok(guard)
}

/// The hub's ServiceAccount token signing key (`pki/sa.key`), made on first use so data
/// directories from before it existed keep working.
pub fn service_account_key(dir: &DataDir) -> Result<String> {
    let p = dir.pki_file("sa.key");
    match std::fs::read_to_string(&p) {
        Ok(pem) => Ok(pem),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let pem = garrison_apiserver::auth::tokens::generate_key_pem()
                .map_err(|e| anyhow::anyhow!(e))?;
            crate::datadir::write_private(&p, pem.as_bytes())?;
            Ok(pem)
        }
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", p.display())),
    }
}

/// The hub's compliance history checkpoint key (`pki/history.key`), made on first use.
pub fn history_key(dir: &DataDir) -> Result<garrison_governance::history::CheckpointKey> {
    use garrison_governance::history::CheckpointKey;
    let p = dir.pki_file("history.key");
    match std::fs::read_to_string(&p) {
        Ok(pem) => {
            CheckpointKey::from_pem(&pem).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = CheckpointKey::generate().map_err(|e| anyhow::anyhow!(e))?;
            crate::datadir::write_private(&p, key.to_pem().as_bytes())?;
            Ok(key)
        }
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", p.display())),
    }
}

/// Opens the compliance history and its key, serves its API from `server`, and returns what
/// its recorder and checkpointer need.
async fn open_history(
    dir: &DataDir,
    server: &Server,
    client: &kube::Client,
    args: &HubArgs,
) -> Result<Arc<garrison_hub::compliance::Ctx>> {
    let history = garrison_governance::history::store::History::open(
        args.history_database.as_deref(),
        &dir.history(),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    let key = Arc::new(history_key(dir)?);
    server.add_extension(Arc::new(crate::compliance::HistoryApi::new(
        history.clone(),
        &key,
        dir.history_anchor(),
    )));
    Ok(Arc::new(garrison_hub::compliance::Ctx {
        client: client.clone(),
        history,
        key,
        checkpoint_every: Duration::from_secs(args.checkpoint_interval),
        anchor: garrison_hub::compliance::Anchor::File(dir.history_anchor()),
    }))
}

fn read(dir: &DataDir, name: &str) -> Result<Vec<u8>> {
    let p = dir.pki_file(name);
    std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))
}

/// Arguments of `garrison apiserver`.
#[derive(Args, Debug)]
pub struct ApiServerArgs {
    /// The data directory, as made by `garrison init` (CAs, serving certificate, admin kubeconfig).
    #[arg(long, value_name = "DIR", default_value_os_t = crate::default_data_dir())]
    pub data_dir: PathBuf,
    /// Listen address; overrides the one given to `init`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Lifetime of the client certificates the signer issues for
    /// `kubernetes.io/kube-apiserver-client` (10s to 24h); a request's `expirationSeconds` may
    /// ask for less.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_cert_lifetime)]
    pub cert_lifetime: u64,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// What an embedded server runs besides the API.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The OCM hub: CRDs, admission webhooks in process, the acceptance gate, every controller.
    Hub,
    /// The API server alone, with kube-controller-manager's client-certificate signer.
    ApiServer,
}

/// Runs `garrison apiserver`: the generic API server alone, as a stand-in for kube-apiserver
/// (with kube-controller-manager's signer for client certificates): no OCM CRDs, admission
/// rules or controllers.
pub fn run_apiserver(args: ApiServerArgs) -> Result<()> {
    let hub = HubArgs {
        kubeconfig: None,
        in_cluster: false,
        external: Default::default(),
        data_dir: args.data_dir,
        listen: args.listen,
        watch_cache_events: 10_000,
        watch_cache_mib: 16,
        watch_bookmark_seconds: 30,
        event_ttl: 3600,
        cert_lifetime: args.cert_lifetime,
        renewal_approval: RenewalApproval::Manual,
        checkpoint_interval: 300,
        history_database: None,
        log_format: args.log_format,
        otlp_endpoint: None,
    };
    serve(hub, Role::ApiServer)
}

/// Runs `garrison hub`.
pub fn run(args: HubArgs) -> Result<()> {
    if args.kubeconfig.is_some() || args.in_cluster {
        return crate::hub_external::run(&args);
    }
    serve(args, Role::Hub)
}

/// Open files a hub may use: one socket per connected agent (one HTTP/2 connection each),
/// and the store's and history's files. Below the second figure, a warning.
const HUB_OPEN_FILES: (u64, u64) = (65_536, 4_096);

fn serve(args: HubArgs, role: Role) -> Result<()> {
    crate::limits::raise_open_files(HUB_OPEN_FILES.0, HUB_OPEN_FILES.1);
    // Phase 1: configuration, no side effects.
    let dir = DataDir::new(&args.data_dir);
    dir.require_initialized()?;
    let settings = HubSettings::load(&dir)?;
    let listen = args.listen.unwrap_or(settings.listen);
    garrison_governance::history::store::History::check(args.history_database.as_deref())
        .map_err(|e| anyhow::anyhow!(e))?;
    let _traces = init_logging(
        args.log_format,
        "garrison-hub",
        args.otlp_endpoint.as_deref(),
    )?;
    // Phase 2: build — lock, certificates, store, socket.
    let _lock = dir.lock("starting another hub")?;
    let mut chain = tls::certs_from_pem(
        "serving certificate pki/serving.crt",
        &read(&dir, "serving.crt")?,
    )?;
    // Only the leaf is presented, as kube-apiserver presents it: clients learn the CA from a
    // kubeconfig or from the signed cluster-info, never from the connection itself.
    chain.truncate(1);
    let cluster_info = cluster_info_kubeconfig(
        &std::fs::read_to_string(dir.admin_kubeconfig())
            .with_context(|| format!("cannot read {}", dir.admin_kubeconfig().display()))?,
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
            watch_cache_bytes: (args.watch_cache_mib as usize) << 20,
            bookmark_interval: Duration::from_secs(args.watch_bookmark_seconds),
            event_ttl: Duration::from_secs(args.event_ttl),
            agent_gate: role == Role::Hub,
            metrics: true,
            // kube-apiserver serves the workload kinds too; the stand-in does likewise.
            workloads: role == Role::ApiServer,
            service_account_key: Some(service_account_key(&dir)?),
            ..ServerConfig::default()
        };
        let server = Server::build(&cfg)?;
        let hub_client = server.local_client(garrison_apiserver::bootstrap::system_user());
        let bound = listener.local_addr()?;
        let ca = garrison_pki::ClusterCa::from_pem(
            &String::from_utf8_lossy(&client_ca_pem),
            &String::from_utf8_lossy(&read(&dir, "client-ca.key")?),
        )
        .context("cannot load the client CA from pki/client-ca.crt and pki/client-ca.key")?;
        publish_cluster_info(&hub_client, &cluster_info).await?;
        let controllers = if role == Role::Hub {
            crate::webhook::register_in_process(&server, garrison_hub::admission::Admission::new(hub_client.clone()));
            crate::webhook::register_conversions(&server);
            let crds = garrison_api::crds::all_json();
            server.install_crds(&crds).map_err(|e| anyhow::anyhow!("cannot install the OCM CRDs: {}", e.message))?;
            tracing::info!(address = %bound, data_dir = %dir.root.display(), crds = crds.len(), "garrison hub serving");
            eprintln!("garrison hub serving on https://{bound} (admin kubeconfig: {})", dir.admin_kubeconfig().display());
            prepare_hub(&hub_client).await?;
            let history = open_history(&dir, &server, &hub_client, &args).await?;
            start_controllers(&hub_client, Some(ca), Some(history), &args)
        } else {
            tracing::info!(address = %bound, data_dir = %dir.root.display(), "garrison apiserver serving");
            eprintln!("garrison apiserver serving on https://{bound} (admin kubeconfig: {})", dir.admin_kubeconfig().display());
            start_signer(&hub_client, &Informers::new(hub_client.clone()), ca, &args)
        };
        server
            .health()
            .add("controllers", Arc::new(move || controllers.check()));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let serve = tokio::spawn(tls::serve(
            listener,
            tls_config,
            server.router(),
            stop_rx,
            server.connection_policy.clone(),
        ));
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), serve).await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// The kubeconfig published in `kube-public/cluster-info`, as kubeadm writes it: the admin
/// kubeconfig's server and CA under a cluster named "", and nothing else.
fn cluster_info_kubeconfig(admin: &str) -> Result<String> {
    let cfg: serde_json::Value =
        serde_yaml::from_str(admin).context("the admin kubeconfig is not valid YAML")?;
    let cluster = cfg
        .pointer("/clusters/0/cluster")
        .context("the admin kubeconfig has no cluster")?;
    let info = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "", "cluster": {
            "server": cluster["server"],
            "certificate-authority-data": cluster["certificate-authority-data"],
        }}],
        "contexts": [], "users": [],
    });
    Ok(serde_yaml::to_string(&info)?)
}

/// Writes `kube-public/cluster-info`; the API server's bootstrap signer signs it for every
/// signing token.
async fn publish_cluster_info(client: &kube::Client, kubeconfig: &str) -> Result<()> {
    use k8s_openapi::api::core::v1::ConfigMap;
    let (ns, name) = garrison_apiserver::bootstrap_signer::CLUSTER_INFO;
    let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns}, "data": {"kubeconfig": kubeconfig}});
    kube::Api::<ConfigMap>::namespaced(client.clone(), ns)
        .patch(
            name,
            &kube::api::PatchParams::apply("garrison-hub").force(),
            &kube::api::Patch::Apply(&cm),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot publish {ns}/{name}: {e}"))?;
    Ok(())
}

/// The objects the hub's controllers expect: the registration RBAC and the built-in sets.
pub async fn prepare_hub(client: &kube::Client) -> Result<()> {
    garrison_hub::registration::cluster::ensure_shared_rbac(client)
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the registration RBAC: {e}"))?;
    garrison_hub::clusterset::ensure_builtin_sets(client)
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the default and global cluster sets: {e}"))
}

/// The signer for agents' client certificates (`kubernetes.io/kube-apiserver-client`), under a
/// supervisor: the hub's own when it embeds the API server, and kube-controller-manager's part
/// in `garrison apiserver`.
fn start_signer(
    client: &kube::Client,
    informers: &Informers,
    ca: garrison_pki::ClusterCa,
    args: &HubArgs,
) -> garrison_hub::supervisor::Supervisor {
    use garrison_hub::registration::csr_signer;
    let sup = garrison_hub::supervisor::Supervisor::default();
    let signer = Arc::new(csr_signer::Ctx {
        client: client.clone(),
        ca,
        max_lifetime_secs: garrison_pki::csr::MAX_CLIENT_LIFETIME_SECS,
        issue_lifetime_secs: args.cert_lifetime,
    });
    let i = informers.clone();
    sup.spawn("csr-signer", move || {
        csr_signer::run(signer.clone(), i.clone())
    });
    sup
}

/// Starts every hub controller under a supervisor, which restarts any that dies and reports
/// the dead ones to `/readyz`. With `signer_ca` the hub also signs the certificates it
/// approves; without, kube-controller-manager does.
pub fn start_controllers(
    client: &kube::Client,
    signer_ca: Option<garrison_pki::ClusterCa>,
    history: Option<Arc<garrison_hub::compliance::Ctx>>,
    args: &HubArgs,
) -> garrison_hub::supervisor::Supervisor {
    use garrison_hub::registration::{approver, cleaner, cluster};
    // One watch and one cache per resource for every controller below.
    let informers = Informers::new(client.clone());
    let sup = match signer_ca {
        Some(ca) => start_signer(client, &informers, ca, args),
        None => garrison_hub::supervisor::Supervisor::default(),
    };
    let custom = Arc::new(garrison_hub::addon::signer::Ctx {
        client: client.clone(),
        max_lifetime_secs: garrison_pki::csr::MAX_CLIENT_LIFETIME_SECS,
        issue_lifetime_secs: args.cert_lifetime,
    });
    let i = informers.clone();
    sup.spawn("addon-signer", move || {
        garrison_hub::addon::signer::run(custom.clone(), i.clone())
    });
    let approval = Arc::new(approver::Ctx {
        client: client.clone(),
        auto_approve: args.renewal_approval == RenewalApproval::Auto,
    });
    let i = informers.clone();
    sup.spawn("csr-approver", move || {
        approver::run(approval.clone(), i.clone())
    });
    let clean = Arc::new(cleaner::Ctx {
        client: client.clone(),
    });
    let i = informers.clone();
    sup.spawn("registration-cleaner", move || {
        cleaner::run(clean.clone(), i.clone())
    });
    let c = informers.clone();
    sup.spawn("clusterset", move || {
        garrison_hub::clusterset::run(c.clone())
    });
    let c = informers.clone();
    sup.spawn("placement", move || garrison_hub::placement::run(c.clone()));
    let c = informers.clone();
    sup.spawn("manifestworkreplicaset", move || {
        garrison_hub::mwrs::run(c.clone())
    });
    let clusters = Arc::new(cluster::Ctx::new(client.clone()));
    let i = informers.clone();
    sup.spawn("managedcluster", move || {
        cluster::run(clusters.clone(), i.clone())
    });
    let c = informers.clone();
    sup.spawn("addon-manager", move || garrison_hub::addon::run(c.clone()));
    let c = informers.clone();
    sup.spawn("managedserviceaccount-ttl", move || {
        garrison_hub::addon::msa_ttl::run(c.clone())
    });
    let c = informers.clone();
    sup.spawn("addon-template", move || {
        garrison_hub::addon::template::run(c.clone())
    });
    let c = informers.clone();
    sup.spawn("addon-install", move || {
        garrison_hub::addon::install::run(c.clone())
    });
    let c = informers.clone();
    sup.spawn("policy-propagator", move || {
        garrison_hub::policy::run(c.clone())
    });
    let c = client.clone();
    sup.spawn("policyreports", move || {
        garrison_hub::policy::report::run(c.clone())
    });
    let c = informers.clone();
    sup.spawn("clusterpermission", move || {
        garrison_hub::addon::cluster_permission::run(c.clone())
    });
    if let Some(h) = history {
        start_history(&sup, h);
    }
    sup
}

/// Starts the compliance history's recorder and checkpointer under `sup`.
pub fn start_history(
    sup: &garrison_hub::supervisor::Supervisor,
    h: Arc<garrison_hub::compliance::Ctx>,
) {
    let recorder = h.clone();
    sup.spawn("compliance-recorder", move || {
        garrison_hub::compliance::record(recorder.clone())
    });
    sup.spawn("compliance-checkpointer", move || {
        garrison_hub::compliance::checkpoint(h.clone())
    });
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
