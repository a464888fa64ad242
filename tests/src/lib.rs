//! Harness for end-to-end tests: start the real `garrison` binary on a free port, and talk to it
//! with kube-rs and kubectl.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub mod fleet;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The `garrison` binary, built once per test process in the same profile as the tests.
pub fn garrison_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join("target"));
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-q", "-p", "garrison", "--bin", "garrison"])
            .current_dir(workspace());
        // Variables cargo sets for this test process would make the nested build see a changed
        // environment and rebuild dependencies; drop them.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("CARGO_PKG_")
                || k.starts_with("CARGO_MANIFEST_")
                || k.starts_with("CARGO_CRATE_")
                || k.starts_with("CARGO_BIN_")
                || k == "CARGO_PRIMARY_PACKAGE"
                || k == "CARGO_TARGET_TMPDIR"
                || k == "OUT_DIR"
                || k == "CARGO_RUSTC_CURRENT_DIR"
            {
                cmd.env_remove(&k);
            }
        }
        // Benchmarks are built without debug assertions: they drive a release hub.
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            cmd.arg("--release");
            "release"
        };
        let status = cmd.status().expect("cargo build runs");
        assert!(status.success(), "building garrison failed");
        target.join(profile).join("garrison")
    })
    .clone()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Runs `garrison` with arguments and returns its output.
pub fn garrison(args: &[&str]) -> Output {
    Command::new(garrison_bin())
        .args(args)
        .output()
        .expect("garrison runs")
}

/// A running hub in a temporary data directory, killed on drop.
pub struct Hub {
    /// The data directory's owner.
    pub dir: tempfile::TempDir,
    /// The listen port.
    pub port: u16,
    child: Option<Child>,
    extra_args: Vec<String>,
    /// `hub` (the embedded hub) or `apiserver` (the API server alone).
    command: &'static str,
    /// Out-of-process hub replicas (`garrison hub --kubeconfig`), by index.
    replicas: Vec<Option<Child>>,
    /// Extra arguments of every out-of-process replica.
    replica_args: Vec<String>,
}

/// Lease timing the out-of-process replicas run with in tests: leadership must move within
/// two lease durations of the leader's death.
pub const TEST_LEASE_SECS: u64 = 4;

impl Hub {
    /// Initialises and starts a hub.
    pub async fn start() -> Result<Hub> {
        Self::start_with(&[]).await
    }

    /// Initialises and starts a hub with extra `garrison hub` arguments.
    pub async fn start_with(extra: &[&str]) -> Result<Hub> {
        Self::start_as("hub", extra).await
    }

    /// Starts `garrison apiserver` as a stand-in for kube-apiserver, installs the hub on it
    /// with `garrison install hub | kubectl apply -f -`, and runs `replicas` hub replicas out
    /// of process (`garrison hub --kubeconfig`), as the hub's ServiceAccount: only the
    /// ClusterRole the install grants. Returns once a leader runs the controllers and serves
    /// the webhooks.
    pub async fn start_external(replicas: usize) -> Result<Hub> {
        Self::start_external_with(replicas, &[]).await
    }

    /// [`Hub::start_external`] with extra `garrison hub --kubeconfig` arguments.
    pub async fn start_external_with(replicas: usize, extra: &[&str]) -> Result<Hub> {
        let mut hub = Self::start_as("apiserver", &[]).await?;
        hub.replica_args = extra.iter().map(|s| s.to_string()).collect();
        let yaml = garrison(&["install", "hub"]);
        if !yaml.status.success() {
            bail!(
                "install hub failed: {}",
                String::from_utf8_lossy(&yaml.stderr)
            );
        }
        let manifest = hub.data_dir().join("hub.yaml");
        std::fs::write(&manifest, &yaml.stdout)?;
        let applied = hub.kubectl(&["apply", "--server-side", "-f", manifest.to_str().unwrap()]);
        if !applied.status.success() {
            bail!(
                "kubectl apply of the install YAML failed: {}",
                String::from_utf8_lossy(&applied.stderr)
            );
        }
        hub.kubeconfig_for(
            "system:serviceaccount:open-cluster-management-hub:garrison-hub",
            &["system:serviceaccounts"],
        )?;
        for i in 0..replicas {
            hub.replicas.push(None);
            hub.start_replica(i)?;
        }
        let admin = hub.client().await?;
        let hooks: kube::Api<
            k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration,
        > = kube::Api::all(admin.clone());
        let sets: kube::Api<garrison_api::ManagedClusterSet> = kube::Api::all(admin);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let by_url = hooks
                .get_opt("garrison-hub-mutators")
                .await
                .ok()
                .flatten()
                .and_then(|h| h.webhooks?.first()?.client_config.url.clone())
                .is_some_and(|u| u.starts_with("https://127.0.0.1:"));
            if by_url && sets.get_opt("default").await.ok().flatten().is_some() {
                return Ok(hub);
            }
            if Instant::now() > deadline {
                bail!("no hub replica took the lead: {}", hub.replica_logs());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Starts `garrison apiserver` alone in a fresh data directory: a networked API server to
    /// stand in for a Kubernetes cluster.
    pub async fn start_as_apiserver() -> Result<Hub> {
        Self::start_as("apiserver", &[]).await
    }

    /// Starts (or restarts) out-of-process replica `i`.
    pub fn start_replica(&mut self, i: usize) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir().join(format!("hub-replica-{i}.log")))?;
        let kubeconfig = self
            .data_dir()
            .join("system_serviceaccount_open-cluster-management-hub_garrison-hub.kubeconfig");
        let lease = format!("{TEST_LEASE_SECS}s");
        let child = Command::new(garrison_bin())
            .args(["hub", "--kubeconfig", kubeconfig.to_str().unwrap()])
            .args([
                "--leader-lease-duration",
                &lease,
                "--leader-renew-deadline",
                "3s",
            ])
            .args(["--leader-retry-period", "1s"])
            .args(&self.replica_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawn hub replica")?;
        self.replicas[i] = Some(child);
        Ok(())
    }

    /// The process id of out-of-process replica `i`, while it runs.
    pub fn replica_pid(&self, i: usize) -> Option<u32> {
        self.replicas.get(i)?.as_ref().map(Child::id)
    }

    /// Kills out-of-process replica `i` with SIGKILL.
    pub fn kill_replica(&mut self, i: usize) {
        if let Some(mut c) = self.replicas.get_mut(i).and_then(Option::take) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The logs of the out-of-process replicas.
    pub fn replica_logs(&self) -> String {
        (0..self.replicas.len())
            .map(|i| {
                let log =
                    std::fs::read_to_string(self.data_dir().join(format!("hub-replica-{i}.log")))
                        .unwrap_or_default();
                format!("--- replica {i} ---\n{log}")
            })
            .collect()
    }

    async fn start_as(command: &'static str, extra: &[&str]) -> Result<Hub> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let out = garrison(&[
            "init",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ]);
        if !out.status.success() {
            bail!("init failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let mut hub = Hub {
            dir,
            port,
            child: None,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            command,
            replicas: vec![],
            replica_args: vec![],
        };
        hub.restart().await?;
        Ok(hub)
    }

    /// The hub process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The admin kubeconfig path.
    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir().join("admin.kubeconfig")
    }

    /// Starts the hub process again and waits until it answers. A hub still running is
    /// stopped first (SIGTERM), or the old process would answer for the new one, which cannot
    /// take the data directory, and outlive the test.
    pub async fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            self.terminate()?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir().join("hub.log"))?;
        let mut cmd = Command::new(garrison_bin());
        cmd.args([
            self.command,
            "--data-dir",
            self.data_dir().to_str().unwrap(),
        ])
        .args(&self.extra_args)
        .stdout(Stdio::null())
        .stderr(log);
        self.child = Some(cmd.spawn().context("spawn hub")?);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(c) = self.client().await
                && c.apiserver_version().await.is_ok()
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("hub exited with {status}: {}", self.log());
            }
            if Instant::now() > deadline {
                bail!("hub did not become ready: {}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The hub's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("hub.log")).unwrap_or_default()
    }

    /// Kills the hub with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits for a graceful exit, returning its status.
    pub fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let mut c = self.child.take().context("hub not running")?;
        let st = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()?;
        if !st.success() {
            bail!("kill -TERM failed");
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = c.try_wait()? {
                return Ok(s);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                bail!("hub did not stop within 20s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A kube client as the admin.
    pub async fn client(&self) -> Result<kube::Client> {
        client_from(&self.kubeconfig()).await
    }

    /// Writes a kubeconfig for `user` in `groups`, with a certificate from the hub's client CA.
    pub fn kubeconfig_for(&self, user: &str, groups: &[&str]) -> Result<PathBuf> {
        let pki = self.data_dir().join("pki");
        let ca_cert = std::fs::read_to_string(pki.join("client-ca.crt"))?;
        let ca_key =
            rcgen::KeyPair::from_pem(&std::fs::read_to_string(pki.join("client-ca.key"))?)?;
        let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_cert, ca_key)?;
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, user);
        if let Some(g) = groups.first() {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, *g);
        }
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &issuer)?;
        let mut creds = serde_yaml::Mapping::new();
        creds.insert("client-certificate-data".into(), b64(&cert.pem()).into());
        creds.insert("client-key-data".into(), b64(&key.serialize_pem()).into());
        kubeconfig_with_user(
            self,
            &format!("{}.kubeconfig", user.replace(':', "_")),
            creds.into(),
        )
    }

    /// Writes a kubeconfig that trusts the hub but carries no credentials (for tokens, or to be
    /// anonymous).
    pub fn anonymous_kubeconfig(&self) -> Result<PathBuf> {
        kubeconfig_with_user(
            self,
            "anonymous.kubeconfig",
            serde_yaml::Value::Mapping(Default::default()),
        )
    }

    /// Runs kubectl with the admin kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        kubectl_with(
            &self.kubeconfig(),
            &self.data_dir().join("kubectl-cache"),
            args,
        )
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        for i in 0..self.replicas.len() {
            self.kill_replica(i);
        }
        self.kill();
    }
}

/// Writes `file` in the hub's data directory: the admin kubeconfig (same server and CA) with
/// its user's credentials replaced by `user`.
fn kubeconfig_with_user(hub: &Hub, file: &str, user: serde_yaml::Value) -> Result<PathBuf> {
    let mut kc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(hub.kubeconfig())?)?;
    kc["users"][0]["user"] = user;
    let path = hub.data_dir().join(file);
    std::fs::write(&path, serde_yaml::to_string(&kc)?)?;
    Ok(path)
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A kube client from a kubeconfig file.
pub async fn client_from(path: &Path) -> Result<kube::Client> {
    let kc = Kubeconfig::read_from(path)?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(cfg)?)
}

/// Runs kubectl with a kubeconfig and a private discovery cache.
pub fn kubectl_with(kubeconfig: &Path, cache: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .expect("kubectl runs")
}

/// stdout of a successful command, or a panic with its stderr.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The HTTP code of a kube API error, or 0.
pub fn api_code(e: &kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        _ => 0,
    }
}

/// Waits up to `secs` until `name` is gone from `api`.
pub async fn gone<K>(secs: u64, what: &str, api: &kube::Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(secs, what, || async {
        api.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await;
}

/// Polls `f` every 100ms until it returns `Some`, or fails after `secs` seconds with `what`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {secs}s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A bootstrap token and the CA pin, from `garrison token create`.
pub fn create_token(hub: &Hub, ttl: &str) -> (String, String) {
    let out = ok(garrison(&[
        "token",
        "create",
        "--data-dir",
        hub.data_dir().to_str().unwrap(),
        "--ttl",
        ttl,
    ]));
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    };
    (field("token:"), field("ca-cert-hash:"))
}

/// A `garrison join` agent process managing a simulated cluster, killed on drop.
pub struct Agent {
    /// The cluster name.
    pub name: String,
    /// The agent's data directory.
    pub dir: PathBuf,
    child: Option<Child>,
}

impl Agent {
    /// Starts `garrison join` for `name` with a data directory inside the hub's.
    pub fn join(hub: &Hub, name: &str, token: &str, pin: &str, extra: &[&str]) -> Agent {
        Self::join_cluster(hub, name, token, pin, &["--simulated"], extra)
    }

    /// Starts `garrison join` for `name`, managing the cluster `target` names (`--simulated`, or
    /// `--kubeconfig FILE`).
    pub fn join_cluster(
        hub: &Hub,
        name: &str,
        token: &str,
        pin: &str,
        target: &[&str],
        extra: &[&str],
    ) -> Agent {
        let url = format!("https://127.0.0.1:{}", hub.port);
        Self::join_at(hub, &url, name, token, pin, target, extra)
    }

    /// A cluster on the network: another Garrison API server, which a `garrison join` agent
    /// for `name` manages through `--kubeconfig`, with a 2 s lease and 1 s status syncs. The
    /// agent's request still waits for approval.
    pub async fn join_networked(hub: &Hub, name: &str) -> (Hub, Agent) {
        let spoke = Hub::start_as_apiserver()
            .await
            .expect("the cluster's API server");
        let (token, pin) = create_token(hub, "1h");
        let spoke_kc = spoke.kubeconfig();
        let agent = Self::join_cluster(
            hub,
            name,
            &token,
            &pin,
            &["--kubeconfig", spoke_kc.to_str().expect("a UTF-8 path")],
            &["--lease-duration", "2s", "--status-sync-interval", "1s"],
        );
        (spoke, agent)
    }

    /// Starts `garrison join` for `name`, reaching the hub at `hub_url` (a proxy in front of
    /// it, say).
    pub fn join_at(
        hub: &Hub,
        hub_url: &str,
        name: &str,
        token: &str,
        pin: &str,
        target: &[&str],
        extra: &[&str],
    ) -> Agent {
        let dir = hub.data_dir().join(format!("agent-{name}"));
        let log = std::fs::File::create(hub.data_dir().join(format!("agent-{name}.log")))
            .expect("agent log");
        let child = Command::new(garrison_bin())
            .args([
                "join",
                "--hub",
                hub_url,
                "--token",
                token,
                "--ca-cert-hash",
                pin,
                "--cluster-name",
                name,
                "--data-dir",
                dir.to_str().unwrap(),
            ])
            .args(target)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn garrison join");
        Agent {
            name: name.into(),
            dir,
            child: Some(child),
        }
    }

    /// Restarts a stopped agent with `garrison klusterlet`.
    pub fn restart(&mut self, hub: &Hub) {
        self.restart_with(hub, &[]);
    }

    /// Restarts a stopped agent with `garrison klusterlet` and extra flags.
    pub fn restart_with(&mut self, hub: &Hub, extra: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(hub.data_dir().join(format!("agent-{}.log", self.name)))
            .expect("agent log");
        self.child = Some(
            Command::new(garrison_bin())
                .args(["klusterlet", "--data-dir", self.dir.to_str().unwrap()])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn garrison klusterlet"),
        );
    }

    /// Kills the agent with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A client for the agent's simulated cluster, once the agent serves it.
    pub async fn spoke(&self) -> kube::Client {
        let path = self.dir.join("simulated-cluster.kubeconfig");
        eventually(30, "the simulated cluster's kubeconfig", || {
            let path = path.clone();
            async move {
                let c = client_from(&path).await.ok()?;
                c.apiserver_version().await.ok()?;
                Some(c)
            }
        })
        .await
    }

    /// A kubeconfig for the hub with the agent's current certificate, or None before it has one.
    pub fn kubeconfig(&self, hub: &Hub) -> Option<PathBuf> {
        let pem = std::fs::read_to_string(self.dir.join("client.pem")).ok()?;
        let key_at = pem.find("-----BEGIN PRIVATE KEY")?;
        let (cert, key) = pem.split_at(key_at);
        let mut creds = serde_yaml::Mapping::new();
        creds.insert("client-certificate-data".into(), b64(cert).into());
        creds.insert("client-key-data".into(), b64(key).into());
        kubeconfig_with_user(
            hub,
            &format!("agent-{}.kubeconfig", self.name),
            creds.into(),
        )
        .ok()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A kubeconfig for the hub that authenticates with a bearer token.
pub fn token_kubeconfig(hub: &Hub, token: &str) -> Result<PathBuf> {
    let mut creds = serde_yaml::Mapping::new();
    creds.insert("token".into(), token.into());
    kubeconfig_with_user(
        hub,
        // The end of a token differs from token to token (a JWT's start never does).
        &format!(
            "token-{}.kubeconfig",
            &token[token.len().saturating_sub(8)..].replace(['/', '.'], "_")
        ),
        creds.into(),
    )
}

/// A process's resident memory (KiB) and CPU time used so far (seconds), from /proc.
pub fn proc_stat(pid: u32) -> (u64, f64) {
    garrison_sim::fleet::usage_of(&format!("/proc/{pid}"))
}

/// The `p` quantile (0..=1) of sorted samples.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Joins agents `names` (simulated clusters, with `extra` flags) and accepts them with
/// `garrison accept --yes` once each has asked.
pub async fn join_and_accept(hub: &Hub, names: &[&str], extra: &[&str]) -> Vec<Agent> {
    let url = format!("https://127.0.0.1:{}", hub.port);
    join_and_accept_at(hub, &url, names, extra).await
}

/// [`join_and_accept`] with agents that reach the hub at `hub_url`.
pub async fn join_and_accept_at(
    hub: &Hub,
    hub_url: &str,
    names: &[&str],
    extra: &[&str],
) -> Vec<Agent> {
    let (token, pin) = create_token(hub, "1h");
    let agents: Vec<Agent> = names
        .iter()
        .map(|n| Agent::join_at(hub, hub_url, n, &token, &pin, &["--simulated"], extra))
        .collect();
    let admin = hub.client().await.unwrap();
    for n in names {
        eventually(30, "the cluster to ask to join", || async {
            kube::Api::<k8s_openapi::api::certificates::v1::CertificateSigningRequest>::all(
                admin.clone(),
            )
            .list(
                &kube::api::ListParams::default()
                    .labels(&format!("open-cluster-management.io/cluster-name={n}")),
            )
            .await
            .ok()
            .filter(|l| !l.items.is_empty())
        })
        .await;
    }
    let mut args = vec!["accept"];
    args.extend_from_slice(names);
    args.extend(["--yes", "--data-dir", hub.data_dir().to_str().unwrap()]);
    ok(garrison(&args));
    // The hub makes each cluster's namespace once it is accepted, a moment later: work for the
    // cluster can be created only then.
    for n in names {
        eventually(30, "the cluster's namespace", || async {
            kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(admin.clone())
                .get(n)
                .await
                .ok()
        })
        .await;
    }
    agents
}

/// A TCP proxy on loopback in front of a port, which can cut every connection passing through
/// it at once with a reset, as a load balancer or a dying API server does; new connections keep
/// being accepted.
pub struct CuttingProxy {
    /// The port it listens on.
    pub port: u16,
    live: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl CuttingProxy {
    /// Starts a proxy to `127.0.0.1:target`.
    pub async fn start(target: u16) -> CuttingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let live: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> =
            Default::default();
        let tracked = live.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                // A cut resets the connection (RST), as a dying peer or a load balancer does,
                // rather than closing it cleanly.
                let _ = inbound.set_zero_linger();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tracked.lock().unwrap().push(task.abort_handle());
            }
        });
        CuttingProxy { port, live, accept }
    }

    /// The proxy's HTTPS URL.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Closes every connection open through the proxy; returns how many there were.
    pub fn cut(&self) -> usize {
        let handles: Vec<_> = std::mem::take(&mut *self.live.lock().unwrap());
        let open = handles.iter().filter(|h| !h.is_finished()).count();
        handles.iter().for_each(tokio::task::AbortHandle::abort);
        open
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// A real OCI registry (Debian's `docker-registry`, the distribution project's registry) on a
/// loopback port, serving HTTPS with a certificate from a CA of its own, storing in a
/// temporary directory. Stopped when dropped.
pub struct OciRegistry {
    child: Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:<port>`.
    pub host: String,
    /// The CA that signed the registry's certificate, PEM.
    pub ca_pem: String,
    /// The user and password the registry asks for, when it asks for one.
    pub credentials: Option<(String, String)>,
}

impl OciRegistry {
    /// Starts a registry; with `auth` it asks for Basic auth (htpasswd) of a user it makes
    /// itself (`credentials`).
    pub fn start(auth: bool) -> Result<OciRegistry> {
        let dir = tempfile::tempdir()?;
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "garrison test registry CA");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])?;
        params.subject_alt_names.push(rcgen::SanType::IpAddress(
            std::net::Ipv4Addr::LOCALHOST.into(),
        ));
        let cert = params.signed_by(&key, &issuer)?;
        std::fs::write(dir.path().join("tls.crt"), cert.pem())?;
        std::fs::write(dir.path().join("tls.key"), key.serialize_pem())?;
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n  tls:\n    certificate: {crt}\n    key: {key}\n",
            root = dir.path().join("data").display(),
            crt = dir.path().join("tls.crt").display(),
            key = dir.path().join("tls.key").display(),
        );
        if auth {
            // A missing file makes the registry provision a user, whose password it logs.
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: garrison-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config)?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting docker-registry (Debian's docker-registry package; scripts/test installs it)")?;
        let mut registry = OciRegistry {
            child,
            dir,
            host,
            ca_pem: ca_cert.pem(),
            credentials: None,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(registry.dir.path().join("registry.log"))
                    .unwrap_or_default();
                bail!("docker-registry did not listen on {port} within 20 s: {log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if auth {
            let log = std::fs::read_to_string(registry.dir.path().join("registry.log"))?;
            let field = |name: &str| {
                log.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{name}=")))
                    .map(String::from)
            };
            match (field("user"), field("password")) {
                (Some(u), Some(p)) => registry.credentials = Some((u, p)),
                _ => bail!("docker-registry logged no provisioned user: {log}"),
            }
        }
        Ok(registry)
    }

    /// The CA's PEM written to a file, for `--registry-ca`.
    pub fn ca_file(&self) -> PathBuf {
        let p = self.dir.path().join("ca.pem");
        let _ = std::fs::write(&p, &self.ca_pem);
        p
    }

    /// A directory for the test's own files, removed with the registry.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for OciRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PostgreSQL server of its own (Debian's postgresql), in a temporary directory, on a
/// loopback port, with a `garrison` superuser trusted locally. Stopped when dropped. As root, it
/// runs as the `postgres` user, which PostgreSQL requires.
pub struct Postgres {
    child: Child,
    dir: tempfile::TempDir,
    /// The port on 127.0.0.1.
    pub port: u16,
}

impl Postgres {
    fn bin(name: &str) -> Result<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .context("no /usr/lib/postgresql: install Debian's postgresql (scripts/test does)")?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
            .filter(|p| p.exists())
            .collect();
        found.sort();
        found
            .pop()
            .with_context(|| format!("no PostgreSQL {name} under /usr/lib/postgresql"))
    }

    /// Starts a server.
    pub fn start() -> Result<Postgres> {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir()?;
        let owner = |c: &mut Command| -> Result<()> {
            let id = |flag: &str| -> Result<Option<u32>> {
                let out = Command::new("id").arg(flag).output()?;
                Ok(String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            };
            if id("-u")? == Some(0) {
                let user = |flag: &str| -> Result<u32> {
                    let out = Command::new("id").args([flag, "postgres"]).output()?;
                    String::from_utf8_lossy(&out.stdout)
                        .trim()
                        .parse()
                        .context("as root, PostgreSQL needs the postgres user (Debian's postgresql makes it)")
                };
                c.uid(user("-u")?).gid(user("-g")?);
            }
            Ok(())
        };
        if Command::new("id")
            .arg("-u")
            .output()?
            .stdout
            .starts_with(b"0")
        {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()?
                .success();
            if !ok {
                bail!("cannot give {} to the postgres user", dir.path().display());
            }
        }
        let data = dir.path().join("data");
        let mut init = Command::new(Self::bin("initdb")?);
        init.arg("-D").arg(&data).args([
            "-U",
            "garrison",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-instructions",
        ]);
        owner(&mut init)?;
        let out = init.output().context("running initdb")?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("postgres.log"))?;
        let mut run = Command::new(Self::bin("postgres")?);
        run.arg("-D")
            .arg(&data)
            .args([
                "-p",
                &port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-k",
            ])
            .arg(dir.path())
            .stdout(log.try_clone()?)
            .stderr(log);
        owner(&mut run)?;
        let child = run.spawn().context("starting postgres")?;
        let pg = Postgres { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(Self::bin("pg_isready")?)
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-U",
                    "garrison",
                    "-d",
                    "postgres",
                ])
                .output()?
                .status
                .success();
            if ready {
                return Ok(pg);
            }
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(pg.dir.path().join("postgres.log")).unwrap_or_default();
                bail!("PostgreSQL did not accept connections on {port} within 30 s: {log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A URL for the `postgres` database as `garrison`.
    pub fn url(&self) -> String {
        format!("postgres://garrison@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // A fast shutdown (SIGINT) ends the backends too.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real Prometheus server (Debian's `prometheus`) on a loopback port, scraping the hub's
/// `/metrics` every second over HTTPS with a bearer token, storing in a temporary directory.
/// Stopped when dropped.
pub struct Prometheus {
    child: Child,
    dir: tempfile::TempDir,
    /// The port of its web API on 127.0.0.1.
    pub port: u16,
}

impl Prometheus {
    /// Starts a server that scrapes `https://127.0.0.1:<hub_port>/metrics`, trusting `ca_pem`
    /// and presenting `token`.
    pub fn start(hub_port: u16, ca_pem: &str, token: &str) -> Result<Prometheus> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("ca.crt"), ca_pem)?;
        std::fs::write(dir.path().join("token"), token)?;
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n- job_name: garrison-hub\n  scheme: https\n  metrics_path: /metrics\n\
             \x20 static_configs:\n  - targets: ['127.0.0.1:{hub_port}']\n\
             \x20 tls_config:\n    ca_file: {ca}\n\
             \x20 authorization:\n    credentials_file: {token}\n",
            ca = dir.path().join("ca.crt").display(),
            token = dir.path().join("token").display(),
        );
        std::fs::write(dir.path().join("prometheus.yml"), config)?;
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting prometheus: install Debian's prometheus (scripts/test does)")?;
        Ok(Prometheus { child, dir, port })
    }

    /// GETs `path_and_query` from its web API: the status code and the body.
    pub fn get(&self, path_and_query: &str) -> Result<(u16, String)> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n",
            self.port
        )?;
        let mut raw = String::new();
        s.read_to_string(&mut raw)?;
        let (head, body) = raw
            .split_once("\r\n\r\n")
            .context("an HTTP answer without a body")?;
        let code = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .context("an HTTP answer without a status")?;
        Ok((code, body.to_string()))
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
