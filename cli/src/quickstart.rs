//! `garrison quickstart`: a hub and three simulated clusters on this machine, joined and accepted
//! through the real flow, with a sample workload delivered by a ManifestWork.
//!
//! Everything runs as child processes of this one (the same binary: `init`, `hub`, `join`,
//! `accept`, `klusterlet`), with their logs in DIR/logs, so what a user sees here is what they
//! would see running the commands by hand. A second run reuses DIR: the hub and agents restart
//! from their data; `--fresh` starts over.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use garrison_api::ManagedCluster;
use garrison_api::conditions::{STATUS_TRUE, managed_cluster as mc, work as wc};
use garrison_api::labels::CLUSTER_NAME;
use garrison_api::status::find_condition;
use garrison_api::work::v1::ManifestWork;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, ListParams, PostParams};

use crate::admin::Target;
use crate::datadir::DataDir;

/// Arguments of `garrison quickstart`.
#[derive(Args, Debug)]
pub struct QuickstartArgs {
    /// Where the hub, the agents and the logs live. Reused on the next run.
    #[arg(long, value_name = "DIR", default_value = "garrison-quickstart")]
    pub data_dir: PathBuf,
    /// Delete DIR first (only a directory an earlier quickstart made) and start over.
    #[arg(long)]
    pub fresh: bool,
    /// Run the steps, print the summary, then stop everything instead of running until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
}

/// The simulated clusters, named as OCM's own quickstart names them.
const CLUSTERS: [&str; 3] = ["cluster1", "cluster2", "cluster3"];
/// The sample work.
const SAMPLE_WORK: &str = "hello-world";
/// The sample workload: a namespace, a Deployment and its configuration.
const SAMPLE: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: hello
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: hello-config
  namespace: hello
data:
  greeting: Hello from Garrison
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
  namespace: hello
  labels: {app: hello}
spec:
  replicas: 2
  selector:
    matchLabels: {app: hello}
  template:
    metadata:
      labels: {app: hello}
    spec:
      containers:
      - name: hello
        image: quay.io/nginx/nginx-unprivileged:1.27
        ports:
        - containerPort: 8080
        envFrom:
        - configMapRef: {name: hello-config}
"#;

/// Marker that DIR was made by quickstart (so --fresh may delete it).
const MARKER: &str = ".garrison-quickstart";

struct Children {
    procs: Vec<(String, Child)>,
}

impl Children {
    fn stop(&mut self) {
        for (_, c) in &self.procs {
            // A graceful stop: the hub and agents finish what they are doing on SIGTERM.
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (_, c) in &mut self.procs {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.procs.clear();
    }

    /// The first child that has exited, with its log file.
    fn exited(&mut self) -> Option<String> {
        for (name, c) in &mut self.procs {
            if let Ok(Some(status)) = c.try_wait() {
                return Some(format!("{name} exited ({status})"));
            }
        }
        None
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot find a free loopback port")?;
    Ok(l.local_addr()?.port())
}

fn exe() -> Result<PathBuf> {
    std::env::current_exe().context("cannot find the garrison binary")
}

fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("logs").join(format!("{name}.log"))
}

/// This binary with `args`, its output appended to DIR/logs/NAME.log.
fn command(dir: &Path, name: &str, args: &[&str]) -> Result<Command> {
    let path = log_path(dir, name);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut cmd = Command::new(exe()?);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    Ok(cmd)
}

fn spawn(
    children: &mut Children,
    dir: &Path,
    name: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<()> {
    let mut cmd = command(dir, name, args)?;
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    children.procs.push((name.to_string(), child));
    Ok(())
}

fn run_to_log(dir: &Path, name: &str, args: &[&str]) -> Result<()> {
    let status = command(dir, name, args)?
        .status()
        .with_context(|| format!("cannot run {name}"))?;
    if !status.success() {
        bail!("{name} failed; see {}", log_path(dir, name).display());
    }
    Ok(())
}

fn step(n: usize, msg: &str) {
    println!("[{n}/6] {msg}");
}

async fn wait_for<T, F, Fut>(
    children: &mut Children,
    what: &str,
    timeout: Duration,
    mut f: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if let Some(e) = children.exited() {
            bail!("{e} while waiting for {what}; its log is in the logs directory");
        }
        if Instant::now() >= deadline {
            bail!("timed out after {}s waiting for {what}", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn available(c: &ManagedCluster) -> bool {
    c.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .and_then(|cs| find_condition(cs, mc::AVAILABLE))
        .is_some_and(|c| c.status == STATUS_TRUE)
}

fn work_ready(w: &ManifestWork) -> bool {
    let Some(st) = &w.status else { return false };
    let ok = |t: &str| {
        find_condition(&st.conditions, t).is_some_and(|c| {
            c.status == STATUS_TRUE && c.observed_generation == w.metadata.generation
        })
    };
    ok(wc::APPLIED) && ok(wc::AVAILABLE) && !crate::work::feedback_summary(w).is_empty()
}

/// Runs `garrison quickstart`.
pub fn run(args: QuickstartArgs) -> Result<()> {
    let root = args.data_dir.clone();
    if args.fresh && root.exists() {
        if !root.join(MARKER).exists() {
            bail!(
                "{} was not made by quickstart; not deleting it (choose another --data-dir)",
                root.display()
            );
        }
        std::fs::remove_dir_all(&root)
            .with_context(|| format!("cannot delete {}", root.display()))?;
    }
    let reuse = root.join("hub").join("hub.json").exists();
    if root.exists()
        && !reuse
        && std::fs::read_dir(&root)?.next().is_some()
        && !root.join(MARKER).exists()
    {
        bail!(
            "{} exists and is not a quickstart directory; choose another --data-dir",
            root.display()
        );
    }
    std::fs::create_dir_all(root.join("logs"))
        .with_context(|| format!("cannot create {}", root.display()))?;
    std::fs::write(root.join(MARKER), b"made by garrison quickstart\n")?;
    let hub_dir = root.join("hub");
    let hub_arg = hub_dir.to_string_lossy().to_string();
    let mut children = Children { procs: Vec::new() };

    if reuse {
        println!(
            "Reusing {} (its hub, clusters and works). To start over: garrison quickstart --fresh",
            root.display()
        );
        step(1, "hub already initialised");
    } else {
        let listen = format!("127.0.0.1:{}", free_port()?);
        run_to_log(
            &root,
            "init",
            &["init", "--data-dir", &hub_arg, "--listen", &listen],
        )?;
        step(
            1,
            &format!(
                "initialised a hub in {} (CAs, serving certificate, admin kubeconfig)",
                hub_dir.display()
            ),
        );
    }
    spawn(
        &mut children,
        &root,
        "hub",
        &["hub", "--data-dir", &hub_arg],
        &[],
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let target = Target::dir(&DataDir::new(&hub_dir));
        let (client, url) = crate::admin::client(&target).await?;
        wait_for(&mut children, "the hub to answer", Duration::from_secs(30), || {
            let c = client.clone();
            async move { c.apiserver_version().await.ok() }
        })
        .await?;
        step(2, &format!("hub running at {url}"));

        let pin = crate::token::ca_pin(&DataDir::new(&hub_dir))?;
        let clusters: Api<ManagedCluster> = Api::all(client.clone());
        for name in CLUSTERS {
            let agent_dir = root.join("agents").join(name);
            let agent_arg = agent_dir.to_string_lossy().to_string();
            let sync = ["--status-sync-interval", "5s"];
            if agent_dir.join("klusterlet.json").exists() {
                let mut a = vec!["klusterlet", "--data-dir", &agent_arg];
                a.extend(sync);
                spawn(&mut children, &root, name, &a, &[])?;
                println!("      {name}: agent restarted from {}", agent_dir.display());
                continue;
            }
            let token = crate::token::new_token(3600, &format!("quickstart join of {name}"))?;
            crate::token::store_token(client.clone(), &token).await?;
            let mut a = vec![
                "join", "--hub", &url, "--ca-cert-hash", &pin, "--cluster-name", name,
                "--data-dir", &agent_arg, "--simulated",
            ];
            a.extend(sync);
            // The token goes through the environment, not the command line.
            spawn(&mut children, &root, name, &a, &[("GARRISON_JOIN_TOKEN", &token.token)])?;
            println!("      {name}: joining with a bootstrap token (pinned hub CA {}…)", &pin[..19.min(pin.len())]);
            // Accept only once the cluster's certificate request is there to be approved.
            let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
            let selector = format!("{CLUSTER_NAME}={name}");
            wait_for(&mut children, &format!("{name} to ask to join"), Duration::from_secs(60), || {
                let (api, csrs, selector) = (clusters.clone(), csrs.clone(), selector.clone());
                async move {
                    api.get_opt(name).await.ok().flatten()?;
                    let pending = csrs.list(&ListParams::default().labels(&selector)).await.ok()?;
                    (!pending.items.is_empty()).then_some(())
                }
            })
            .await?;
            run_to_log(&root, &format!("accept-{name}"), &["accept", name, "--yes", "--data-dir", &hub_arg])?;
            println!("      {name}: certificate request approved and cluster accepted (garrison accept {name})");
        }
        step(3, "3 simulated clusters joined through the real bootstrap, CSR and accept flow");

        wait_for(&mut children, "all clusters to be Available", Duration::from_secs(120), || {
            let api = clusters.clone();
            async move {
                let list = api.list(&Default::default()).await.ok()?;
                let n = list.items.iter().filter(|c| CLUSTERS.contains(&c.metadata.name.as_deref().unwrap_or("")) && available(c)).count();
                (n == CLUSTERS.len()).then_some(())
            }
        })
        .await?;
        step(4, "all clusters Available (leases renewed, capacity reported)");

        let loaded = crate::work::read_manifests(SAMPLE, "the sample workload")?;
        for name in CLUSTERS {
            let api: Api<ManifestWork> = Api::namespaced(client.clone(), name);
            if api.get_opt(SAMPLE_WORK).await.map_err(crate::admin::unreachable)?.is_none() {
                let work = crate::work::build_work(SAMPLE_WORK, name, &loaded, true)?;
                api.create(&PostParams::default(), &work).await.map_err(crate::admin::unreachable)?;
            }
        }
        step(5, &format!("created ManifestWork {SAMPLE_WORK} (Namespace, ConfigMap, Deployment) in each cluster's namespace"));
        let mut ready = Vec::new();
        for name in CLUSTERS {
            let api: Api<ManifestWork> = Api::namespaced(client.clone(), name);
            let w = wait_for(&mut children, &format!("{SAMPLE_WORK} on {name}"), Duration::from_secs(120), || {
                let api = api.clone();
                async move { api.get_opt(SAMPLE_WORK).await.ok().flatten().filter(work_ready) }
            })
            .await?;
            ready.push(w);
        }
        step(6, "the work is Applied and Available everywhere; status feedback from each cluster:");
        for w in &ready {
            println!(
                "      {}: Applied=True Available=True  {}",
                w.metadata.namespace.as_deref().unwrap_or(""),
                crate::work::feedback_summary(w)
            );
        }
        let kc = DataDir::new(&hub_dir).admin_kubeconfig();
        let spoke_kc = root.join("agents").join(CLUSTERS[0]).join("simulated-cluster.kubeconfig");
        println!();
        println!("Admin kubeconfig: {}", kc.display());
        println!("Try:");
        println!("  kubectl --kubeconfig {} get managedclusters", kc.display());
        println!("  kubectl --kubeconfig {} get manifestworks -A", kc.display());
        println!("  kubectl --kubeconfig {} get deployments,configmaps -n hello", spoke_kc.display());
        println!("or: garrison get works --data-dir {}   (logs: {})", hub_dir.display(), root.join("logs").display());
        anyhow::Ok(())
    });
    if let Err(e) = result {
        children.stop();
        return Err(e);
    }
    if args.exit {
        children.stop();
        return Ok(());
    }
    println!();
    println!(
        "Running; Ctrl-C stops the hub and the clusters (their data stays in {}).",
        root.display()
    );
    let stopped = rt.block_on(async {
        loop {
            tokio::select! {
                _ = crate::hub::wait_for_signal() => return None,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    if let Some(e) = children.exited() {
                        return Some(e);
                    }
                }
            }
        }
    });
    children.stop();
    match stopped {
        None => {
            println!("stopped.");
            Ok(())
        }
        Some(e) => Err(anyhow!(
            "{e}; see the logs in {}",
            root.join("logs").display()
        )),
    }
}
