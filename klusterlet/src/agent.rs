//! The registration agent: join, obtain and rotate the certificate, renew the lease, report
//! status, and re-bootstrap when the hub refuses it.
//!
//! One loop per agent. While it holds a working certificate it renews the lease every
//! `leaseDurationSeconds`, reports the managed cluster's status on the same beat, and rotates
//! the certificate at 80% of its lifetime (less a random jitter of up to 5%). A refusal (401)
//! or an expired certificate sends it back to bootstrap: it asks for a new certificate with the
//! bootstrap token, and meanwhile keeps trying its old one, in case the cluster is accepted
//! again. While the hub is unreachable it backs off exponentially with jitter, up to 30s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use garrison_api::ManagedCluster;
use garrison_api::conditions::{STATUS_FALSE, STATUS_TRUE, managed_cluster as mc};
use garrison_api::labels::{CLUSTER_NAME, MANAGED_CLUSTER_LEASE};
use garrison_api::status::{condition, set_condition};
use garrison_pki::{AgentIdentity, ClusterName, RotationPolicy};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::sync::watch;

use crate::hub::{self, Auth};
use crate::spoke::{Observed, Spoke};
use crate::state::{AgentConfig, AgentDir, Credentials, SpokeSource};
pub use crate::work::Options as WorkOptions;

/// The agent's settings besides its data directory.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// The work agent's.
    pub work: WorkOptions,
    /// Makes the cluster of an agent joined with a simulated spoke; without it such an agent
    /// cannot start. The simulator lives in `garrison-sim`, so this crate links no API server.
    pub simulator: Option<Simulator>,
    /// Told of the agent's progress (for a fleet simulator's progress display).
    pub on_phase: Option<Arc<dyn Fn(Phase) + Send + Sync>>,
    /// The caller holds a lock over a directory that contains the agent's (a fleet simulator
    /// locks its fleet's), so the agent does not lock its own: thousands of agents in one
    /// process would otherwise hold a file open each.
    pub caller_holds_lock: bool,
    /// How images are verified.
    pub image: crate::addon::image::ImageOptions,
    /// Where to serve the agent's metrics, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Names the metrics serving certificate holds besides the host's own.
    pub metrics_cert_hosts: Vec<String>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("work", &self.work)
            .field("simulator", &self.simulator.is_some())
            .field("image", &self.image)
            .field("metrics_listen", &self.metrics_listen)
            .field("metrics_cert_hosts", &self.metrics_cert_hosts)
            .finish_non_exhaustive()
    }
}

/// How far an agent has come, for [`RunOptions::on_phase`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// It holds a certificate the hub signed (after joining, or re-bootstrapping).
    Certified,
    /// It renewed its cluster's lease on the hub: the cluster is accepted and reporting.
    Reporting,
}

/// The simulated cluster an agent asks for.
#[derive(Debug, Clone)]
pub struct SimulatedSpec {
    /// The cluster's name.
    pub cluster: String,
    /// The agent's ID.
    pub agent_id: String,
    /// The agent's directory, where a persistent simulated cluster keeps its objects.
    pub dir: AgentDir,
}

/// Makes simulated clusters.
pub type MakeSpoke =
    dyn Fn(SimulatedSpec) -> futures::future::BoxFuture<'static, Result<Spoke>> + Send + Sync;

/// Makes the cluster of agents joined with a simulated spoke.
#[derive(Clone)]
pub struct Simulator(pub Arc<MakeSpoke>);
use crate::work::WorkAgent;

/// The signer agent certificates are requested from.
pub const SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// Lifetime the agent asks for; the hub may issue less, never more.
pub const REQUESTED_LIFETIME_SECS: i32 = 86_400;
/// Longest pause between retries while the hub is unreachable.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Silences the progress lines `join` prints for a person (for benchmarks running many agents).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

macro_rules! progress {
    ($($arg:tt)*) => {
        if !QUIET.load(std::sync::atomic::Ordering::Relaxed) {
            eprintln!($($arg)*);
        }
    };
}

/// A spinner with the time spent waiting, on stderr when it is a terminal; cleared when dropped.
struct WaitSpinner(indicatif::ProgressBar);

impl WaitSpinner {
    fn new(message: &str) -> WaitSpinner {
        let pb = indicatif::ProgressBar::new_spinner().with_message(message.to_string());
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("      {spinner} {msg} ({elapsed})")
        {
            pb.set_style(style);
        }
        pb.enable_steady_tick(Duration::from_millis(120));
        WaitSpinner(pb)
    }
}

impl Drop for WaitSpinner {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// A uniform random number in [0, 1).
pub fn random_unit() -> f64 {
    let mut b = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .expect("system randomness");
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// Exponential backoff with ±20% jitter.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    base: Duration,
    max: Duration,
}

impl Backoff {
    /// Starting at `base`, doubling to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            next: base,
            base,
            max,
        }
    }
    /// The next pause.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d.mul_f64(0.8 + 0.4 * random_unit())
    }
    /// Back to the base after a success.
    pub fn reset(&mut self) {
        self.next = self.base;
    }
}

/// What `garrison join` was given.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// The hub's URL.
    pub hub_url: String,
    /// The bootstrap token; `Debug` does not print it.
    pub token: garrison_pki::SecretString,
    /// The hub CA pin.
    pub ca_cert_hash: String,
    /// The cluster name.
    pub cluster_name: String,
    /// The managed cluster.
    pub spoke: SpokeSource,
    /// Lease period, seconds.
    pub lease_duration_seconds: u32,
    /// Join again over an existing agent directory.
    pub force: bool,
}

/// Checks a bootstrap token's shape (`[a-z0-9]{6}.[a-z0-9]{16}`) without saying anything about
/// its secret part.
pub fn check_token_shape(token: &str) -> Result<()> {
    let ok = token.split_once('.').is_some_and(|(id, secret)| {
        id.len() == 6
            && secret.len() == 16
            && id
                .bytes()
                .chain(secret.bytes())
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    if !ok {
        bail!(
            "--token must look like abcdef.0123456789abcdef (as printed by garrison token create)"
        );
    }
    Ok(())
}

/// First step of `join`: validate everything, verify the hub CA against the pin, and record the
/// configuration. Nothing secret is sent before the pin matches.
pub async fn prepare_join(dir: &AgentDir, opts: &JoinOptions) -> Result<AgentConfig> {
    let cluster = ClusterName::parse(&opts.cluster_name)
        .map_err(|e| anyhow::anyhow!("--cluster-name: {e}"))?;
    let pin = hub::parse_pin(&opts.ca_cert_hash)?;
    hub::host_port(&opts.hub_url)?;
    check_token_shape(opts.token.expose())?;
    if let SpokeSource::Kubeconfig { path } = &opts.spoke
        && !path.exists()
    {
        bail!("--kubeconfig {} does not exist", path.display());
    }
    if dir.is_joined() && !opts.force {
        bail!(
            "{} already holds a joined klusterlet; restart it with `garrison klusterlet --data-dir {}`, or pass --force to join again",
            dir.root.display(),
            dir.root.display()
        );
    }
    progress!(
        "[1/4] discovering the hub at {}: its signed cluster-info, and its CA against {pin}",
        opts.hub_url
    );
    let ca = hub::discover(&opts.hub_url, opts.token.expose(), &pin).await?;
    progress!("      cluster-info signature and hub CA verified");
    dir.create()?;
    let _lock = dir.lock()?;
    let cfg = AgentConfig {
        hub_url: opts.hub_url.trim_end_matches('/').to_string(),
        ca_cert_hash: pin,
        cluster_name: cluster.to_string(),
        agent_id: garrison_pki::random_alphanumeric(10),
        spoke: opts.spoke.clone(),
        lease_duration_seconds: opts.lease_duration_seconds,
    };
    crate::state::write_file(&dir.hub_ca_file(), ca.as_bytes(), 0o644)?;
    crate::state::write_file(&dir.token_file(), opts.token.expose().as_bytes(), 0o600)?;
    let _ = std::fs::remove_file(dir.client_file());
    let _ = std::fs::remove_file(dir.pending_key_file());
    let _ = std::fs::remove_file(dir.root.join("pending.json"));
    dir.save_config(&cfg)?;
    Ok(cfg)
}

fn identity(cfg: &AgentConfig) -> Result<AgentIdentity> {
    let cluster = ClusterName::parse(&cfg.cluster_name)?;
    Ok(AgentIdentity::new(cluster, &cfg.agent_id)?)
}

fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// The HTTP status of an API error, if the server answered.
pub(crate) fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Whether credentials are usable now: they parse, the key matches, and they have not expired.
pub fn usable(creds: &Credentials, cfg: &AgentConfig) -> Option<garrison_pki::CertInfo> {
    let info = garrison_pki::cert_info(&creds.cert_pem).ok()?;
    let id = identity(cfg).ok()?;
    (info.identity.agent() == Some(&id)
        && info.not_after > now_secs()
        && garrison_pki::agent::key_fingerprint(&creds.key_pem)
            .ok()
            .as_ref()
            == Some(&info.key_fingerprint))
    .then_some(info)
}

/// A CSR waiting for approval.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Pending {
    csr: String,
}

/// How the hub answered while the agent asked for a certificate.
enum Ask {
    /// Issued.
    Issued(Credentials),
    /// Not yet.
    Waiting,
}

/// Creates a CSR for the agent's identity with `client`, remembering its key in `pending.key`.
async fn create_csr(
    client: &kube::Client,
    dir: &AgentDir,
    cfg: &AgentConfig,
) -> Result<String, kube::Error> {
    let id = identity(cfg).map_err(|e| kube::Error::Service(e.into()))?;
    let req = garrison_pki::new_request(&id.clone().into())
        .map_err(|e| kube::Error::Service(e.into()))?;
    crate::state::write_file(&dir.pending_key_file(), req.key_pem.as_bytes(), 0o600)
        .map_err(|e| kube::Error::Service(e.into()))?;
    let csr: CertificateSigningRequest = serde_json::from_value(json!({
        "metadata": {"generateName": format!("{}-", cfg.cluster_name),
            "labels": {CLUSTER_NAME: cfg.cluster_name}},
        "spec": {
            "signerName": SIGNER,
            "request": base64::engine::general_purpose::STANDARD.encode(&req.csr_pem),
            "usages": ["digital signature", "key encipherment", "client auth"],
            "expirationSeconds": REQUESTED_LIFETIME_SECS,
        }
    }))
    .map_err(kube::Error::SerdeError)?;
    let created = Api::<CertificateSigningRequest>::all(client.clone())
        .create(&PostParams::default(), &csr)
        .await?;
    let name = created.metadata.name.unwrap_or_default();
    crate::state::write_file(
        &dir.root.join("pending.json"),
        &serde_json::to_vec(&Pending { csr: name.clone() }).expect("serialises"),
        0o644,
    )
    .map_err(|e| kube::Error::Service(e.into()))?;
    Ok(name)
}

fn forget_pending(dir: &AgentDir) {
    let _ = std::fs::remove_file(dir.pending_key_file());
    let _ = std::fs::remove_file(dir.root.join("pending.json"));
}

/// The pending CSR's name, if any.
pub fn pending_csr(dir: &AgentDir) -> Option<String> {
    let raw = std::fs::read(dir.root.join("pending.json")).ok()?;
    serde_json::from_slice::<Pending>(&raw).ok().map(|p| p.csr)
}

/// The condition by which the hub refused a CSR (`Denied` or `Failed`), if it did.
pub fn refusal(
    status: &k8s_openapi::api::certificates::v1::CertificateSigningRequestStatus,
) -> Option<k8s_openapi::api::certificates::v1::CertificateSigningRequestCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Denied" || c.type_ == "Failed")
        .cloned()
}

/// Checks the pending CSR: issued, still waiting, or gone (denied, failed, deleted).
async fn check_pending(
    client: &kube::Client,
    dir: &AgentDir,
    cfg: &AgentConfig,
) -> Result<Option<Ask>, kube::Error> {
    let Some(name) = pending_csr(dir) else {
        return Ok(None);
    };
    let Ok(key_pem) = std::fs::read_to_string(dir.pending_key_file()) else {
        forget_pending(dir);
        return Ok(None);
    };
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let Some(csr) = api.get_opt(&name).await? else {
        tracing::warn!(csr = %name, "the pending certificate request is gone; asking again");
        forget_pending(dir);
        return Ok(None);
    };
    let status = csr.status.unwrap_or_default();
    if let Some(c) = refusal(&status) {
        tracing::error!(csr = %name, condition = %c.type_, reason = %c.reason.unwrap_or_default(), message = %c.message.unwrap_or_default(), "the hub refused the certificate request");
        forget_pending(dir);
        return Ok(None);
    }
    let Some(cert) = status.certificate else {
        return Ok(Some(Ask::Waiting));
    };
    let creds = Credentials {
        cert_pem: String::from_utf8_lossy(&cert.0).into_owned(),
        key_pem,
    };
    if usable(&creds, cfg).is_none() {
        tracing::error!(csr = %name, "the issued certificate does not match this agent's identity or key; discarding it");
        forget_pending(dir);
        return Ok(None);
    }
    Ok(Some(Ask::Issued(creds)))
}

/// Why obtaining a certificate stopped.
#[derive(Debug, thiserror::Error)]
pub enum ObtainError {
    /// The bootstrap token was refused and there is nothing else to try.
    #[error(
        "the hub refused the bootstrap token (expired or deleted?); create a new one on the hub with `garrison token create` and join again with --force"
    )]
    TokenRefused,
    /// Shut down while waiting.
    #[error("stopped")]
    Stopped,
    /// Something local failed.
    #[error(transparent)]
    Local(#[from] anyhow::Error),
}

/// Obtains working credentials: the old ones if the hub takes them again, or a new certificate
/// through the bootstrap token. With `fail_on_token_refusal`, a refused token ends the attempt
/// (first join); otherwise it is logged and retried, since the old certificate may work again.
pub async fn obtain(
    dir: &AgentDir,
    cfg: &AgentConfig,
    old: Option<Credentials>,
    fail_on_token_refusal: bool,
    stop: &mut watch::Receiver<bool>,
) -> Result<Credentials, ObtainError> {
    let ca = dir.hub_ca()?;
    let mut backoff = Backoff::new(Duration::from_secs(1), MAX_BACKOFF);
    let mut said_waiting = false;
    let mut said_token = false;
    // One connection each for the whole wait, not one per attempt.
    let old_client = match &old {
        Some(c) => Some(hub::client(&cfg.hub_url, &ca, Auth::Cert(c)).await?),
        None => None,
    };
    let token = dir.token();
    let token_client = match &token {
        Some(t) => Some(hub::client(&cfg.hub_url, &ca, Auth::Token(t)).await?),
        None => None,
    };
    // Drawn only on a terminal, and cleared however the wait ends.
    let mut _spinner: Option<WaitSpinner> = None;
    loop {
        let mut unreachable = false;
        let mut waiting_on: Option<String> = None;
        // The old certificate, if the cluster has been accepted again.
        if old.as_ref().is_some_and(|c| usable(c, cfg).is_some())
            && let Some(client) = &old_client
        {
            match Api::<ManagedCluster>::all(client.clone())
                .get(&cfg.cluster_name)
                .await
            {
                Ok(_) => {
                    tracing::info!("the hub accepts this cluster's certificate again");
                    return Ok(old.clone().expect("checked above"));
                }
                Err(e) if status_code(&e).is_some() => {}
                Err(_) => unreachable = true,
            }
        }
        if let Some(client) = &token_client {
            match ask_with_token(client, dir, cfg).await {
                Ok(Ask::Issued(creds)) => {
                    dir.save_credentials(&creds)?;
                    forget_pending(dir);
                    return Ok(creds);
                }
                Ok(Ask::Waiting) => {
                    if !said_waiting {
                        progress!(
                            "      waiting for the hub admin to accept this cluster: on the hub, run `garrison accept {}`",
                            cfg.cluster_name
                        );
                        said_waiting = true;
                        if !QUIET.load(std::sync::atomic::Ordering::Relaxed) {
                            _spinner = Some(WaitSpinner::new("waiting for acceptance"));
                        }
                    }
                    backoff.reset();
                    waiting_on = pending_csr(dir);
                }
                Err(e) if status_code(&e) == Some(401) => {
                    if fail_on_token_refusal {
                        return Err(ObtainError::TokenRefused);
                    }
                    if !said_token {
                        tracing::error!("{}", ObtainError::TokenRefused);
                        said_token = true;
                    }
                }
                Err(e) if status_code(&e).is_some() => {
                    tracing::warn!(error = %e, "the hub refused a bootstrap step");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the hub is unreachable; retrying");
                    unreachable = true;
                }
            }
        } else if fail_on_token_refusal {
            return Err(ObtainError::Local(anyhow::anyhow!(
                "no bootstrap token in {}; join again with --token",
                dir.root.display()
            )));
        }
        if let (Some(csr), Some(client), false) = (&waiting_on, &token_client, unreachable) {
            // Waiting for a human: watch the request rather than poll it. The old certificate
            // is tried again when the watch times out.
            let wait = if old.is_some() { 5 } else { 30 };
            tokio::select! {
                _ = wait_for_csr_change(client, csr, wait) => {}
                _ = stop.changed() => return Err(ObtainError::Stopped),
            }
            continue;
        }
        let pause = if unreachable {
            backoff.next_delay()
        } else {
            Duration::from_millis(500)
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return Err(ObtainError::Stopped),
        }
    }
}

/// Returns when the CSR `name` changes, or after `secs` seconds.
async fn wait_for_csr_change(client: &kube::Client, name: &str, secs: u32) {
    use futures::StreamExt;
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let Ok(current) = api.get(name).await else {
        tokio::time::sleep(Duration::from_secs(1)).await;
        return;
    };
    if current.status.as_ref().is_some_and(|s| {
        s.certificate.is_some() || s.conditions.as_ref().is_some_and(|c| !c.is_empty())
    }) {
        return;
    }
    let rv = current.metadata.resource_version.unwrap_or_default();
    let wp = kube::api::WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(secs);
    match api.watch(&wp, &rv).await {
        Ok(stream) => {
            let mut stream = std::pin::pin!(stream);
            while let Some(ev) = stream.next().await {
                if matches!(
                    ev,
                    Ok(kube::api::WatchEvent::Modified(_) | kube::api::WatchEvent::Deleted(_))
                ) {
                    return;
                }
            }
        }
        Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
    }
}

/// One bootstrap step: make sure the ManagedCluster and a CSR exist, and see whether the CSR
/// has been issued.
async fn ask_with_token(
    client: &kube::Client,
    dir: &AgentDir,
    cfg: &AgentConfig,
) -> Result<Ask, kube::Error> {
    if let Some(ask) = check_pending(client, dir, cfg).await? {
        return Ok(ask);
    }
    let clusters: Api<ManagedCluster> = Api::all(client.clone());
    if clusters.get_opt(&cfg.cluster_name).await?.is_none() {
        let mc: ManagedCluster = serde_json::from_value(json!({
            "apiVersion": "cluster.open-cluster-management.io/v1", "kind": "ManagedCluster",
            "metadata": {"name": cfg.cluster_name},
            "spec": {"hubAcceptsClient": false, "leaseDurationSeconds": cfg.lease_duration_seconds},
        }))
        .map_err(kube::Error::SerdeError)?;
        match clusters.create(&PostParams::default(), &mc).await {
            Ok(_) => progress!("[2/4] created ManagedCluster {}", cfg.cluster_name),
            Err(e) if status_code(&e) == Some(409) => {}
            Err(e) => return Err(e),
        }
    }
    let name = create_csr(client, dir, cfg).await?;
    progress!(
        "[3/4] requested a client certificate (CSR {name}); the private key stays in {}",
        dir.root.display()
    );
    Ok(Ask::Waiting)
}

/// Why the serving loop ended.
enum Ended {
    /// The hub refused the certificate (401).
    Refused,
    /// The certificate expired before it could be rotated.
    Expired,
    /// Asked to stop.
    Stopped,
}

/// Runs a joined agent until `stop` turns true: registration (lease, status, rotation) in this
/// task, the work agent in another, fed the current hub client.
pub async fn run(
    dir: &AgentDir,
    mut stop: watch::Receiver<bool>,
    first_join: bool,
    opts: RunOptions,
) -> Result<()> {
    let work_opts = opts.work;
    let cfg = dir.load_config()?;
    let _lock = if opts.caller_holds_lock {
        None
    } else {
        Some(dir.lock()?)
    };
    let spoke = match &cfg.spoke {
        SpokeSource::Simulated => {
            let Some(simulator) = &opts.simulator else {
                bail!("this agent joined with a simulated cluster, and this build has no simulator")
            };
            (simulator.0)(SimulatedSpec {
                cluster: cfg.cluster_name.clone(),
                agent_id: cfg.agent_id.clone(),
                dir: dir.clone(),
            })
            .await?
        }
        SpokeSource::Kubeconfig { path } => Spoke::from_kubeconfig(path).await?,
        SpokeSource::InCluster => Spoke::in_cluster().await?,
    };
    let metrics_task = match opts.metrics_listen {
        Some(listen) => Some(
            crate::metrics::serve(
                listen,
                &dir.root,
                &opts.metrics_cert_hosts,
                spoke.client.clone(),
                stop.clone(),
            )
            .await?,
        ),
        None => None,
    };
    let (hub_tx, hub_rx) = watch::channel(None);
    // The policy add-on publishes what it enforces; the work gate refuses works against it.
    let enforcement = crate::addon::policy::Enforcement::default();
    // So does the image-verification add-on, for the image gate.
    let images = crate::addon::image::ImageEnforcement::default();
    let work_agent = Arc::new(WorkAgent::new(
        &cfg.cluster_name,
        &cfg.hub_url,
        "",
        spoke.client.clone(),
        // The policy gate judges the manifests as written (tag rules see the tags), before
        // the image gate pins each image to its verified digest.
        vec![
            Arc::new(crate::addon::policy::PolicyGate::new(
                enforcement.clone(),
                Some(spoke.client.clone()),
            )),
            Arc::new(crate::addon::image::ImageGate::new(
                images.clone(),
                opts.image.no_match,
            )),
        ],
        work_opts,
    ));
    let addon_agent = crate::addon::AddonAgent::new(
        &cfg.cluster_name,
        &cfg.agent_id,
        &cfg.hub_url,
        &dir.hub_ca()?,
        spoke.client.clone(),
        spoke.ca_pem.clone(),
    )
    .with_enforcement(enforcement)
    .with_images(images, opts.image);
    let addon_task = tokio::spawn(addon_agent.run(hub_rx.clone(), stop.clone()));
    let work_task = tokio::spawn(work_agent.run(hub_rx, stop.clone()));
    let phase = opts.on_phase.clone();
    let result = run_registration(
        dir,
        &cfg,
        &spoke,
        &mut stop,
        first_join,
        &hub_tx,
        phase.as_deref(),
    )
    .await;
    let _ = hub_tx.send(None);
    work_task.abort();
    addon_task.abort();
    if let Some(t) = metrics_task {
        t.abort();
    }
    result
}

async fn run_registration(
    dir: &AgentDir,
    cfg: &AgentConfig,
    spoke: &Spoke,
    stop: &mut watch::Receiver<bool>,
    first_join: bool,
    hub_tx: &watch::Sender<Option<kube::Client>>,
    on_phase: Option<&(dyn Fn(Phase) + Send + Sync)>,
) -> Result<()> {
    let cfg = cfg.clone();
    let mut creds = dir.credentials();
    let mut refused_once = false;
    loop {
        let current = match creds.clone().filter(|c| usable(c, &cfg).is_some()) {
            Some(c) if !refused_once => c,
            other => match obtain(dir, &cfg, other, first_join && creds.is_none(), stop).await {
                Ok(c) => c,
                Err(ObtainError::Stopped) => return Ok(()),
                Err(e) => return Err(e.into()),
            },
        };
        let info = usable(&current, &cfg).context("the new certificate is not usable")?;
        // A certificate signed just now may be refused for a moment, until the cluster's
        // acceptance lands; one the agent already held is refused only for a reason.
        let fresh = creds.as_ref().map(|c| &c.cert_pem) != Some(&current.cert_pem);
        if let Some(f) = on_phase {
            f(Phase::Certified);
        }
        if first_join && !refused_once {
            progress!(
                "[4/4] joined: certificate serial {} valid until {}; running the agent (Ctrl-C to stop)",
                info.serial,
                jiff::Timestamp::from_second(info.not_after)
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            );
        }
        let cert = Serving {
            creds: current,
            fresh,
        };
        let served = serve(dir, &cfg, spoke, cert, stop, hub_tx, on_phase).await?;
        // The old client is refused or expired: the work agent waits for the next one.
        let _ = hub_tx.send(None);
        match served {
            (Ended::Stopped, _) => return Ok(()),
            (Ended::Refused, latest) => {
                tracing::warn!(
                    "the hub refused this cluster's certificate (denied, deleted, or revoked); re-bootstrapping"
                );
                creds = Some(latest);
                refused_once = true;
            }
            (Ended::Expired, latest) => {
                tracing::warn!(
                    "the certificate expired before it could be rotated; re-bootstrapping"
                );
                creds = Some(latest);
                refused_once = true;
            }
        }
    }
}

/// What one status report found.
struct Reported {
    /// The lease period the hub asks for.
    lease: Option<u64>,
    /// The write lost a race with another writer (the hub's controllers); report again soon
    /// rather than a whole lease period later.
    conflicted: bool,
}

/// Writes the observed state into the ManagedCluster's status if it changed.
async fn report_status(
    client: &kube::Client,
    cfg: &AgentConfig,
    seen: &Observed,
) -> Result<Reported, kube::Error> {
    let api: Api<ManagedCluster> = Api::all(client.clone());
    let mut mc = api.get(&cfg.cluster_name).await?;
    let lease = mc
        .spec
        .lease_duration_seconds
        .filter(|s| *s > 0)
        .map(|s| s as u64);
    let mut status = mc.status.clone().unwrap_or_default();
    let mut conditions = status.conditions.clone().unwrap_or_default();
    let now = Time(jiff::Timestamp::now());
    set_condition(
        &mut conditions,
        condition(
            mc::JOINED,
            STATUS_TRUE,
            mc::REASON_JOINED,
            "Managed cluster joined",
        ),
        now.clone(),
    );
    let available = if seen.healthy {
        condition(
            mc::AVAILABLE,
            STATUS_TRUE,
            mc::REASON_AVAILABLE,
            "Managed cluster is available",
        )
    } else {
        condition(
            mc::AVAILABLE,
            STATUS_FALSE,
            mc::REASON_KUBE_API_SERVER_UNAVAILABLE,
            "The kube-apiserver of the managed cluster is not available",
        )
    };
    set_condition(&mut conditions, available, now);
    status.conditions = Some(conditions);
    if seen.healthy {
        status.capacity = seen.capacity.clone();
        status.allocatable = seen.allocatable.clone();
        status.version = seen.version.clone();
        status.cluster_claims = seen.claims.clone();
    }
    let mut conflicted = false;
    if mc.status.as_ref() != Some(&status) {
        mc.status = Some(status);
        mc.metadata.managed_fields = None;
        match api
            .replace_status(&cfg.cluster_name, &PostParams::default(), &mc)
            .await
        {
            Ok(_) => {}
            Err(e) if status_code(&e) == Some(409) => conflicted = true,
            Err(e) => return Err(e),
        }
    }
    Ok(Reported { lease, conflicted })
}

/// Renews the lease. Returns false while the hub has not created it yet.
///
/// An update with the lease's resourceVersion, as upstream's agent does: upstream's
/// per-cluster RBAC grants leases `get` and `update`, not `patch`. The lease the last update
/// returned is kept in `cached` and updated directly, so a renewal is one request; it is read
/// first only when nothing is kept, or when the update conflicts (another writer got in
/// between), and then written once more.
async fn renew_lease(
    client: &kube::Client,
    cfg: &AgentConfig,
    cached: &mut Option<Lease>,
) -> Result<bool, kube::Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.cluster_name);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut lease = match cached.take() {
            Some(l) => l,
            None => match api.get(MANAGED_CLUSTER_LEASE).await {
                Ok(l) => l,
                // The hub creates the lease on acceptance; until then there is nothing to renew.
                Err(e) if status_code(&e) == Some(404) => return Ok(false),
                Err(e) => return Err(e),
            },
        };
        lease.metadata.managed_fields = None;
        lease.spec.get_or_insert_default().renew_time = Some(MicroTime(jiff::Timestamp::now()));
        match api
            .replace(MANAGED_CLUSTER_LEASE, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                *cached = Some(written);
                return Ok(true);
            }
            Err(e) if status_code(&e) == Some(409) && attempts < 3 => continue,
            Err(e) if status_code(&e) == Some(404) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

/// Where a renewal stands after one step.
enum Renewal {
    /// The new certificate is issued and saved.
    Issued(Credentials),
    /// The request is pending.
    Waiting,
    /// The request was denied, failed, disappeared, or came back unusable: ask again later.
    Refused,
}

/// Longest wait between renewal requests after refusals.
const MAX_RENEWAL_BACKOFF: Duration = Duration::from_secs(300);

/// One step of certificate rotation, which never waits: asks for a new certificate (a new key
/// and CSR for the same identity) if nothing is pending, else looks at the pending request
/// once. Lease renewal and status reporting go on between steps, so a slow approver cannot
/// make a healthy cluster look dead.
async fn rotation_step(
    client: &kube::Client,
    dir: &AgentDir,
    cfg: &AgentConfig,
) -> Result<Renewal, kube::Error> {
    if pending_csr(dir).is_none() {
        let name = create_csr(client, dir, cfg).await?;
        tracing::info!(csr = %name, "requested certificate renewal");
        return Ok(Renewal::Waiting);
    }
    match check_pending(client, dir, cfg).await? {
        Some(Ask::Issued(creds)) => {
            dir.save_credentials(&creds)
                .map_err(|e| kube::Error::Service(e.into()))?;
            forget_pending(dir);
            Ok(Renewal::Issued(creds))
        }
        Some(Ask::Waiting) => Ok(Renewal::Waiting),
        None => Ok(Renewal::Refused),
    }
}

/// Serves one certificate: renews the lease and reports status every lease period, and rotates
/// the certificate from 80% of its lifetime on, as independent schedules in one loop.
async fn serve(
    dir: &AgentDir,
    cfg: &AgentConfig,
    spoke: &Spoke,
    cert: Serving,
    stop: &mut watch::Receiver<bool>,
    hub_tx: &watch::Sender<Option<kube::Client>>,
    on_phase: Option<&(dyn Fn(Phase) + Send + Sync)>,
) -> Result<(Ended, Credentials)> {
    let Serving { mut creds, fresh } = cert;
    let mut reporting = false;
    // Whether the hub has taken this certificate yet (taken for granted for one held before),
    // and since when it is served.
    let mut answered = !fresh;
    let served_since = Instant::now();
    let ca = dir.hub_ca()?;
    let mut client = hub::client(&cfg.hub_url, &ca, Auth::Cert(&creds)).await?;
    // The work and add-on agents get the client once the cluster is known to be accepted (its
    // lease renewed, which needs the RBAC acceptance grants): before, their watches would only
    // be refused, and retried, for as long as the administrator takes.
    let mut handed = !fresh;
    if handed {
        let _ = hub_tx.send(Some(client.clone()));
    }
    let mut info = usable(&creds, cfg).context("certificate not usable")?;
    let policy = RotationPolicy::default();
    let mut lease_secs = u64::from(cfg.lease_duration_seconds.max(1));
    let mut backoff = Backoff::new(Duration::from_secs(1), MAX_BACKOFF);
    let mut renewal_backoff = Backoff::new(Duration::from_secs(2), MAX_RENEWAL_BACKOFF);
    let mut next_rotation =
        epoch_instant(policy.renew_at(info.not_before, info.not_after, random_unit()));
    let mut next_beat = Instant::now();
    let mut kept = Kept::default();
    loop {
        if now_secs() >= info.not_after {
            return Ok((Ended::Expired, creds));
        }
        if Instant::now() >= next_rotation {
            let step = rotation_step(&client, dir, cfg).await;
            next_rotation = match step {
                Ok(Renewal::Issued(new)) => {
                    let new_info = usable(&new, cfg).context("rotated certificate not usable")?;
                    tracing::info!(old_serial = %info.serial, new_serial = %new_info.serial, not_after = new_info.not_after, "rotated the client certificate");
                    creds = new;
                    info = new_info;
                    client = hub::client(&cfg.hub_url, &ca, Auth::Cert(&creds)).await?;
                    if handed {
                        let _ = hub_tx.send(Some(client.clone()));
                    }
                    renewal_backoff.reset();
                    garrison_telemetry::metrics().rotation(true);
                    epoch_instant(policy.renew_at(info.not_before, info.not_after, random_unit()))
                }
                Ok(Renewal::Waiting) => Instant::now() + RENEWAL_POLL,
                Ok(Renewal::Refused) => {
                    garrison_telemetry::metrics().rotation(false);
                    let wait = renewal_backoff.next_delay();
                    tracing::warn!(retry_in = ?wait, "certificate renewal refused; asking again later");
                    Instant::now() + wait
                }
                Err(e) if status_code(&e) == Some(401) => return Ok((Ended::Refused, creds)),
                Err(e) => {
                    tracing::warn!(error = %e, "certificate renewal failed; retrying");
                    Instant::now() + backoff.next_delay()
                }
            };
        }
        if Instant::now() >= next_beat {
            let mut renewed = false;
            let beaten = beat(
                &client,
                cfg,
                spoke,
                &mut lease_secs,
                &mut kept,
                &mut renewed,
            )
            .await;
            // A renewed lease proves the acceptance, whatever the status report did.
            if renewed && !handed {
                handed = true;
                let _ = hub_tx.send(Some(client.clone()));
            }
            let pause = match beaten {
                // A certificate signed a moment before the cluster is accepted is refused
                // until the administrator's acceptance lands (`garrison accept` approves the
                // request and accepts the cluster in two writes; a busy hub applies them
                // seconds apart). Asking for another certificate then would only add a
                // request per refusal; the agent waits for a while instead.
                Err(e)
                    if status_code(&e) == Some(401)
                        && !answered
                        && served_since.elapsed() < NOT_YET_ACCEPTED_GRACE =>
                {
                    tracing::debug!(
                        "the hub refuses the new certificate: not accepted yet; waiting"
                    );
                    backoff.next_delay()
                }
                Err(e) if status_code(&e) == Some(401) => return Ok((Ended::Refused, creds)),
                // The hub makes an accepted cluster's RBAC just after its certificate: the
                // first lease read can come first and be forbidden for a moment.
                Err(e) if status_code(&e) == Some(403) && !answered => {
                    tracing::debug!(error = %e, "the hub does not let this cluster renew its lease yet; retrying");
                    backoff.next_delay()
                }
                Err(e) => {
                    match status_code(&e) {
                        Some(code) => {
                            tracing::warn!(code, error = %e, "the hub refused the lease renewal; retrying")
                        }
                        None => tracing::warn!(error = %e, "cannot reach the hub; retrying"),
                    }
                    backoff.next_delay()
                }
                Ok((renewed, soon)) => {
                    backoff.reset();
                    answered = true;
                    if renewed
                        && !reporting
                        && let Some(f) = on_phase
                    {
                        reporting = true;
                        f(Phase::Reporting);
                    }
                    if soon {
                        Duration::from_secs(1)
                    } else {
                        Duration::from_secs(lease_secs)
                    }
                }
            };
            next_beat = Instant::now() + pause;
        }
        let expiry = epoch_instant(info.not_after);
        let wake = next_beat.min(next_rotation).min(expiry);
        tokio::select! {
            _ = tokio::time::sleep_until(wake.max(Instant::now() + Duration::from_millis(50)).into()) => {}
            _ = stop.changed() => return Ok((Ended::Stopped, creds)),
        }
    }
}

/// The certificate [`serve`] works with.
struct Serving {
    creds: Credentials,
    /// Signed for this run, rather than held from before.
    fresh: bool,
}

/// How long a new certificate's refusals are taken for an acceptance still on its way, before
/// the agent asks for another.
const NOT_YET_ACCEPTED_GRACE: Duration = Duration::from_secs(120);

/// How often a pending renewal is looked at.
const RENEWAL_POLL: Duration = Duration::from_secs(1);

/// One heartbeat: renews the lease and reports status. Returns whether the lease was renewed,
/// and whether the next beat should come soon rather than a whole lease period later: a lease
/// the hub has not made yet (just accepted), or a status write that lost a race.
async fn beat(
    client: &kube::Client,
    cfg: &AgentConfig,
    spoke: &Spoke,
    lease_secs: &mut u64,
    kept: &mut Kept,
    lease_renewed: &mut bool,
) -> Result<(bool, bool), kube::Error> {
    // Anything failing below makes the next beat start from what the hub holds.
    let renewed = match renew_lease(client, cfg, &mut kept.lease).await {
        Ok(r) => {
            *lease_renewed = r;
            r
        }
        Err(e) => {
            *kept = Kept::default();
            return Err(e);
        }
    };
    let seen = spoke.observe().await;
    // The status is read and compared only when something may have changed: what the agent
    // sees, or, every few beats, what the hub holds (its lease period, a status someone else
    // wrote). A steady cluster's beat is then one request: the lease.
    if renewed && kept.reported.as_ref() == Some(&seen) && kept.quiet_beats < FULL_REPORT_EVERY {
        kept.quiet_beats += 1;
        return Ok((true, false));
    }
    let reported = match report_status(client, cfg, &seen).await {
        Ok(r) => r,
        Err(e) => {
            *kept = Kept::default();
            return Err(e);
        }
    };
    if let Some(l) = reported.lease {
        *lease_secs = l;
    }
    kept.quiet_beats = 0;
    kept.reported = (renewed && !reported.conflicted).then_some(seen);
    Ok((renewed, !renewed || reported.conflicted))
}

/// Beats in a row that may skip reading the ManagedCluster while nothing the agent sees
/// changed; the next one reads and reports in full.
const FULL_REPORT_EVERY: u32 = 4;

/// What the heartbeat keeps between beats.
#[derive(Default)]
struct Kept {
    /// The lease as the last renewal wrote it.
    lease: Option<Lease>,
    /// What the last full report found the hub holding, once it held it.
    reported: Option<Observed>,
    /// Beats since the last full report.
    quiet_beats: u32,
}

/// The monotonic instant of a Unix time in seconds (now, if it has passed).
fn epoch_instant(secs: i64) -> Instant {
    let ahead = secs.saturating_sub(now_secs()).max(0) as u64;
    Instant::now() + Duration::from_secs(ahead)
}

/// What `garrison get klusterlet-info` shows.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    /// Cluster name.
    pub cluster_name: String,
    /// Hub URL.
    pub hub_url: String,
    /// The hub CA pin.
    pub ca_cert_hash: String,
    /// The agent's user name.
    pub agent: String,
    /// The managed cluster: `simulated` or a kubeconfig path.
    pub managed_cluster: String,
    /// Lease period asked for.
    pub lease_duration_seconds: u32,
    /// The certificate, if any.
    pub certificate: Option<CertSummary>,
    /// The pending CSR, if any.
    pub pending_csr: Option<String>,
    /// `sha256:` of the pending CSR's public key, for the hub admin to compare with what
    /// `garrison accept` shows.
    pub pending_key_fingerprint: Option<String>,
    /// Whether a bootstrap token is kept.
    pub bootstrap_token_kept: bool,
}

/// A certificate, for display.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertSummary {
    /// Serial, hex.
    pub serial: String,
    /// Start of validity.
    pub not_before: String,
    /// End of validity.
    pub not_after: String,
    /// When it will be rotated (at 80% of its lifetime, at the latest).
    pub rotation_due_by: String,
    /// Whether it is valid now.
    pub valid_now: bool,
    /// `sha256:` of its public key.
    pub key_fingerprint: String,
}

fn ts(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Reads what an agent directory holds, without contacting anything.
pub fn info(dir: &AgentDir) -> Result<Info> {
    let cfg = dir.load_config()?;
    let certificate = dir.credentials().and_then(|c| {
        let i = garrison_pki::cert_info(&c.cert_pem).ok()?;
        let due = RotationPolicy::default().renew_at(i.not_before, i.not_after, 0.0);
        Some(CertSummary {
            serial: i.serial,
            not_before: ts(i.not_before),
            not_after: ts(i.not_after),
            rotation_due_by: ts(due),
            valid_now: usable(&c, &cfg).is_some(),
            key_fingerprint: i.key_fingerprint,
        })
    });
    Ok(Info {
        agent: identity(&cfg)?.user(),
        managed_cluster: match &cfg.spoke {
            SpokeSource::Simulated => "simulated".into(),
            SpokeSource::Kubeconfig { path } => path.display().to_string(),
            SpokeSource::InCluster => "in-cluster".into(),
        },
        cluster_name: cfg.cluster_name,
        hub_url: cfg.hub_url,
        ca_cert_hash: cfg.ca_cert_hash,
        lease_duration_seconds: cfg.lease_duration_seconds,
        certificate,
        pending_csr: pending_csr(dir),
        pending_key_fingerprint: std::fs::read_to_string(dir.pending_key_file())
            .ok()
            .and_then(|k| garrison_pki::agent::key_fingerprint(&k).ok()),
        bootstrap_token_kept: dir.token().is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shapes() {
        check_token_shape("abcdef.0123456789abcdef").unwrap();
        for bad in [
            "",
            "abcdef",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdef",
            "abcdef.0123456789abcde!",
        ] {
            assert!(check_token_shape(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let delays: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        assert!(
            delays[0] >= Duration::from_millis(800) && delays[0] <= Duration::from_millis(1200)
        );
        assert!(
            delays[1] >= Duration::from_millis(1600) && delays[1] <= Duration::from_millis(2400)
        );
        for d in &delays[3..] {
            assert!(
                *d >= Duration::from_millis(6400) && *d <= Duration::from_millis(9600),
                "{d:?}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(1200));
    }
}
