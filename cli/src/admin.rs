//! The admin verbs on a running hub: `accept`, `deny`, `get clusters`, `get hub-info`.
//! They talk to the hub over HTTPS with the admin kubeconfig, like any other client.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueEnum};
use garrison_api::ManagedCluster;
use garrison_api::conditions::managed_cluster as mc;
use garrison_api::status::find_condition;
use garrison_hub::registration::approver;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::datadir::DataDir;

/// Where the admin's credentials come from: `--kubeconfig`, then `--data-dir` (or
/// `$GARRISON_DATA_DIR`), then `$KUBECONFIG` as kubectl reads it, then `./garrison-data`.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// The hub's data directory, whose admin.kubeconfig is used. Without it (and without
    /// --kubeconfig), $KUBECONFIG is used when set, else ./garrison-data.
    #[arg(long, value_name = "DIR", env = "GARRISON_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// A kubeconfig for the hub, used before anything else.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

impl Target {
    /// The admin kubeconfig of a data directory.
    pub fn dir(dir: &DataDir) -> Self {
        Target {
            data_dir: Some(dir.root.clone()),
            kubeconfig: None,
        }
    }
}

/// Where a [`Target`] leads.
#[derive(Debug, PartialEq, Eq)]
enum Source {
    /// This kubeconfig file.
    File(PathBuf),
    /// `$KUBECONFIG`, one or more files joined by `:`, merged as kubectl does.
    Env,
}

fn resolve(target: &Target, kubeconfig_env: Option<&std::ffi::OsStr>) -> Result<Source> {
    if let Some(p) = &target.kubeconfig {
        return Ok(Source::File(p.clone()));
    }
    let dir = match &target.data_dir {
        Some(d) => {
            let dir = DataDir::new(d);
            dir.require_initialized()?;
            dir
        }
        None if kubeconfig_env.is_some_and(|v| !v.is_empty()) => return Ok(Source::Env),
        None => {
            let dir = DataDir::new(&crate::default_data_dir());
            if !dir.is_initialized() {
                bail!(
                    "no hub to talk to: give --kubeconfig FILE, --data-dir DIR or $KUBECONFIG (there is no ./garrison-data here)"
                );
            }
            dir
        }
    };
    Ok(Source::File(dir.admin_kubeconfig()))
}

/// A current-thread runtime for one admin command.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The error for a hub that did not answer.
pub fn unreachable(e: kube::Error) -> anyhow::Error {
    match e {
        kube::Error::Api(s) => anyhow!("the hub refused: {}", s.message),
        other => anyhow!("cannot reach the hub (is `garrison hub` running?): {other}"),
    }
}

/// The kubeconfig `$KUBECONFIG` names, as kubectl reads it: the files of the `:`-joined list
/// that exist, merged in order (the first to set a value wins); files that do not exist are
/// skipped, and a list with none that does is an error.
fn kubeconfig_from_env(value: &std::ffi::OsStr) -> Result<kube::config::Kubeconfig> {
    let paths: Vec<PathBuf> = std::env::split_paths(value)
        .filter(|p| !p.as_os_str().is_empty() && p.exists())
        .collect();
    let mut merged: Option<kube::config::Kubeconfig> = None;
    for p in &paths {
        let kc = kube::config::Kubeconfig::read_from(p)
            .with_context(|| format!("cannot read {} (named by $KUBECONFIG)", p.display()))?;
        merged = Some(match merged {
            None => kc,
            Some(m) => m
                .merge(kc)
                .with_context(|| format!("cannot merge {} (named by $KUBECONFIG)", p.display()))?,
        });
    }
    merged.with_context(|| {
        format!(
            "$KUBECONFIG names no file that exists: {}",
            value.to_string_lossy()
        )
    })
}

/// A client for the hub with the admin's credentials, and the hub's URL.
pub async fn client(target: &Target) -> Result<(kube::Client, String)> {
    let cfg = match resolve(target, std::env::var_os("KUBECONFIG").as_deref())? {
        Source::File(path) => garrison_apiserver::client::config_from_kubeconfig(&path).await?,
        Source::Env => {
            let kc = kubeconfig_from_env(&std::env::var_os("KUBECONFIG").unwrap_or_default())?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .context("the kubeconfig in $KUBECONFIG is not usable")?
        }
    };
    let url = cfg
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_string();
    Ok((garrison_apiserver::client::traced_client(cfg)?, url))
}

/// Arguments of `garrison accept`.
#[derive(Args, Debug)]
pub struct AcceptArgs {
    /// The clusters to accept.
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
    /// Approve without asking. Without it, each request is shown and confirmation is read from
    /// the terminal.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Approve only this certificate request. Needed when a cluster has requests from more than
    /// one key or requester (someone else may have asked with the same bootstrap token); the
    /// cluster's `garrison get klusterlet-info` shows which key is the agent's. The other
    /// requests are denied.
    #[arg(long, value_name = "CSR")]
    pub csr: Option<String>,
    #[command(flatten)]
    target: Target,
}

/// Arguments of `garrison deny`.
#[derive(Args, Debug)]
pub struct DenyArgs {
    /// The cluster to deny.
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    target: Target,
}

/// A pending CSR of a cluster, as shown before acceptance.
struct PendingRequest {
    csr: CertificateSigningRequest,
    requester: String,
    identity: String,
    fingerprint: String,
}

/// The pending client-certificate requests for `cluster`, judged by the subject the CSR really
/// carries (not by its labels, which the requester chose).
async fn pending_for(client: &kube::Client, cluster: &str) -> Result<Vec<PendingRequest>> {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(unreachable)?;
    let mut out = Vec::new();
    for csr in list.items {
        if csr.spec.signer_name != garrison_hub::registration::csr_signer::SIGNER
            || approver::is_decided(&csr)
        {
            continue;
        }
        let Ok(parsed) = garrison_pki::csr::parse(&csr.spec.request.0) else {
            continue;
        };
        // Add-on certificates are the add-on registration's business, never an admin's
        // approval of a cluster.
        if parsed.identity().cluster().as_str() != cluster || parsed.identity().agent().is_none() {
            continue;
        }
        out.push(PendingRequest {
            requester: csr.spec.username.clone().unwrap_or_default(),
            identity: parsed.identity().user(),
            fingerprint: parsed.key_fingerprint().to_string(),
            csr,
        });
    }
    out.sort_by_key(|p| p.csr.name_any());
    Ok(out)
}

/// Field manager of the admin verbs' writes.
const MANAGER: &str = "garrison-admin";

fn confirm(question: &str) -> Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("not approving without confirmation: stdin is not a terminal; pass --yes to approve");
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// Which of a cluster's pending requests `garrison accept` approves and which it denies.
#[derive(Debug, PartialEq, Eq)]
struct Choice {
    approve: Vec<usize>,
    deny: Vec<usize>,
}

/// Decides what to approve among the requests shown, failing closed: with requests from more
/// than one (requester, key) pair, the admin must name the one to trust; nothing that was not
/// shown is ever approved.
fn choose(cluster: &str, pending: &[PendingRequest], chosen: Option<&str>) -> Result<Choice> {
    let all: Vec<usize> = (0..pending.len()).collect();
    let Some(name) = chosen else {
        let mut origins: Vec<(&str, &str)> = pending
            .iter()
            .map(|p| (p.requester.as_str(), p.fingerprint.as_str()))
            .collect();
        origins.sort_unstable();
        origins.dedup();
        if origins.len() > 1 {
            bail!(
                "cluster {cluster} has {} pending certificate requests from {} different keys or requesters, so someone else may have asked with the same bootstrap token; compare the fingerprints above with `garrison get klusterlet-info` on the cluster and run `garrison accept {cluster} --csr NAME`",
                pending.len(),
                origins.len()
            );
        }
        return Ok(Choice {
            approve: all,
            deny: vec![],
        });
    };
    let Some(i) = pending.iter().position(|p| p.csr.name_any() == name) else {
        bail!(
            "{name:?} is not a pending certificate request of cluster {cluster}; the pending ones are listed above"
        );
    };
    Ok(Choice {
        approve: vec![i],
        deny: all.into_iter().filter(|&j| j != i).collect(),
    })
}

/// Records a decision on a request exactly as it was shown: the write carries the
/// resourceVersion that was read, so a request changed or replaced since is not touched.
async fn decide_shown(
    client: &kube::Client,
    p: &PendingRequest,
    approve: bool,
    reason: &str,
    message: &str,
) -> Result<()> {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    match approver::record_decision(&api, &p.csr, approve, reason, message, MANAGER).await {
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => bail!(
            "certificate request {} changed after it was shown; nothing was decided for it; run `garrison accept` again",
            p.csr.name_any()
        ),
        other => other.map_err(unreachable),
    }
}

/// Runs `garrison accept`.
pub fn accept(args: AcceptArgs) -> Result<()> {
    for name in &args.names {
        garrison_pki::ClusterName::parse(name).map_err(|e| anyhow!("{e}"))?;
    }
    if args.csr.is_some() && args.names.len() != 1 {
        bail!("--csr names one request of one cluster: give exactly one cluster name with it");
    }
    runtime()?.block_on(async {
        let (client, _) = client(&args.target).await?;
        let clusters: Api<ManagedCluster> = Api::all(client.clone());
        for name in &args.names {
            let Some(cluster) = clusters.get_opt(name).await.map_err(unreachable)? else {
                bail!("no cluster named {name:?} has asked to join; list them with `garrison get clusters`");
            };
            let pending = pending_for(&client, name).await?;
            if pending.is_empty() {
                println!("cluster {name}: no pending certificate requests");
            } else {
                println!("cluster {name}: {} pending certificate request(s)", pending.len());
                for p in &pending {
                    println!("  CSR {}", p.csr.name_any());
                    println!("    requested by:    {}", p.requester);
                    println!("    for identity:    {}", p.identity);
                    println!("    key fingerprint: {}", p.fingerprint);
                }
            }
            let choice = choose(name, &pending, args.csr.as_deref())?;
            if !args.yes && !confirm(&format!("Accept cluster {name}?"))? {
                bail!("cluster {name} was not accepted");
            }
            if cluster.spec.hub_accepts_client != Some(true) {
                clusters
                    .patch(
                        name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"spec": {"hubAcceptsClient": true}})),
                    )
                    .await
                    .map_err(unreachable)?;
            }
            for &i in &choice.deny {
                decide_shown(
                    &client,
                    &pending[i],
                    false,
                    "GarrisonAcceptNotChosen",
                    "denied: the hub admin approved another request of this cluster with garrison accept --csr",
                )
                .await?;
                println!("  denied CSR {}", pending[i].csr.name_any());
            }
            for &i in &choice.approve {
                decide_shown(
                    &client,
                    &pending[i],
                    true,
                    "GarrisonAccept",
                    "approved by the hub admin with garrison accept",
                )
                .await?;
            }
            println!(
                "accepted {name}: hubAcceptsClient=true, {} certificate request(s) approved",
                choice.approve.len()
            );
        }
        wait_admitted(&client, &args.names, ADMIT_TIMEOUT).await
    })
}

/// How long `garrison accept` waits for the hub to set an accepted cluster up.
const ADMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Waits until the hub has set accepted clusters up: `HubAcceptedManagedCluster` is True for
/// the cluster's current spec (its `observedGeneration`, so an acceptance from before a deny
/// does not count) and the cluster namespace exists. Until then nothing can be created in a
/// cluster namespace (add-ons, works), so `garrison accept` returns only once it is done.
/// `timeout` runs from the last cluster found set up, so a large fleet that the hub sets up
/// steadily is waited for.
pub(crate) async fn wait_admitted(
    client: &kube::Client,
    names: &[String],
    timeout: std::time::Duration,
) -> Result<()> {
    let clusters: Api<ManagedCluster> = Api::all(client.clone());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    // A few clusters are read one by one; a fleet is listed, less often.
    let few = names.len() <= 10;
    let every = std::time::Duration::from_millis(if few { 200 } else { 1000 });
    let mut progress = std::time::Instant::now();
    let mut waiting: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut told = false;
    loop {
        let listed: HashMap<String, ManagedCluster> = if few {
            let mut m = HashMap::new();
            for name in &waiting {
                if let Some(c) = clusters.get_opt(name).await.map_err(unreachable)? {
                    m.insert(name.to_string(), c);
                }
            }
            m
        } else {
            clusters
                .list(&ListParams::default())
                .await
                .map_err(unreachable)?
                .items
                .into_iter()
                .map(|c| (c.name_any(), c))
                .collect()
        };
        let mut still = Vec::new();
        for name in waiting.iter().copied() {
            let Some(cluster) = listed.get(name) else {
                bail!("cluster {name:?} no longer exists");
            };
            if cluster.metadata.deletion_timestamp.is_some() {
                bail!("cluster {name} is being deleted");
            }
            if cluster.spec.hub_accepts_client != Some(true) {
                bail!(
                    "cluster {name} is not accepted (hubAcceptsClient is not true); accept it with `garrison accept {name}`"
                );
            }
            let admitted = cluster
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_deref())
                .and_then(|cs| find_condition(cs, mc::HUB_ACCEPTED))
                .is_some_and(|c| {
                    c.status == "True"
                        && c.observed_generation.unwrap_or(0)
                            >= cluster.metadata.generation.unwrap_or(0)
                });
            if !admitted
                || namespaces
                    .get_opt(name)
                    .await
                    .map_err(unreachable)?
                    .is_none()
            {
                still.push(name);
            }
        }
        if still.len() < waiting.len() {
            progress = std::time::Instant::now();
        }
        waiting = still;
        if waiting.is_empty() {
            return Ok(());
        }
        if progress.elapsed() >= timeout {
            let shown: Vec<&str> = waiting.iter().take(10).copied().collect();
            let more = waiting.len() - shown.len();
            bail!(
                "the acceptance is recorded (hubAcceptsClient=true), but the hub has not set up the namespace and RBAC of {}{} within {} s (condition {} is not True for the current spec); see the hub's log",
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                },
                timeout.as_secs(),
                mc::HUB_ACCEPTED
            );
        }
        if !told && progress.elapsed() >= std::time::Duration::from_secs(2) {
            eprintln!(
                "waiting for the hub to set up {} accepted cluster(s)...",
                waiting.len()
            );
            told = true;
        }
        tokio::time::sleep(every).await;
    }
}

/// Runs `garrison deny`.
pub fn deny(args: DenyArgs) -> Result<()> {
    garrison_pki::ClusterName::parse(&args.name).map_err(|e| anyhow!("{e}"))?;
    runtime()?.block_on(async {
        let (client, _) = client(&args.target).await?;
        let clusters: Api<ManagedCluster> = Api::all(client.clone());
        if clusters.get_opt(&args.name).await.map_err(unreachable)?.is_none() {
            bail!(
                "no cluster named {:?}; list them with `garrison get clusters`",
                args.name
            );
        }
        clusters
            .patch(
                &args.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"hubAcceptsClient": false}})),
            )
            .await
            .map_err(unreachable)?;
        let pending = pending_for(&client, &args.name).await?;
        for p in &pending {
            decide_shown(
                &client,
                p,
                false,
                "GarrisonDeny",
                "denied by the hub admin with garrison deny",
            )
            .await?;
        }
        println!(
            "denied {}: its certificates are refused from now on, its RBAC is removed, and {} pending request(s) were denied",
            args.name,
            pending.len()
        );
        Ok(())
    })
}

/// Output formats of `get`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A table.
    Table,
    /// A wider table.
    Wide,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Arguments of `garrison get clusters`.
#[derive(Args, Debug)]
pub struct GetClustersArgs {
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(flatten)]
    target: Target,
}

fn condition_status(c: &ManagedCluster, type_: &str) -> String {
    c.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .and_then(|cs| find_condition(cs, type_))
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

/// Age as kubectl prints it.
pub fn age(t: Option<&Time>) -> String {
    t.map(|t| garrison_apiserver::http::table::age(&t.0.to_string()))
        .unwrap_or_default()
}

/// Prints objects as a `v1` List in JSON or YAML, as `kubectl get -o json|yaml` does.
pub fn print_list<T: serde::Serialize>(items: &[T], output: Output) -> Result<()> {
    let value = json!({"apiVersion": "v1", "kind": "List", "items": items});
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", serde_yaml::to_string(&value)?);
    }
    Ok(())
}

/// Prints rows as aligned columns.
pub fn print_table(rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
}

/// Runs `garrison get clusters`.
pub fn get_clusters(args: GetClustersArgs) -> Result<()> {
    runtime()?.block_on(async {
        let (client, _) = client(&args.target).await?;
        let list = Api::<ManagedCluster>::all(client)
            .list(&ListParams::default())
            .await
            .map_err(unreachable)?;
        match args.output {
            Output::Json | Output::Yaml => print_list(&list.items, args.output)?,
            Output::Table | Output::Wide => {
                let wide = args.output == Output::Wide;
                let mut header = vec!["NAME", "HUB ACCEPTED", "JOINED", "AVAILABLE", "AGE"];
                if wide {
                    header.extend(["VERSION", "CPU", "MEMORY", "TAINTS", "LEASE"]);
                }
                let mut rows = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
                for c in &list.items {
                    let mut row = vec![
                        c.name_any(),
                        c.spec.hub_accepts_client.unwrap_or(false).to_string(),
                        condition_status(c, mc::JOINED),
                        condition_status(c, mc::AVAILABLE),
                        age(c.metadata.creation_timestamp.as_ref()),
                    ];
                    if wide {
                        let status = c.status.clone().unwrap_or_default();
                        row.push(
                            status
                                .version
                                .and_then(|v| v.kubernetes)
                                .unwrap_or_default(),
                        );
                        row.push(status.capacity.get("cpu").map(|q| q.0.clone()).unwrap_or_default());
                        row.push(
                            status.capacity.get("memory").map(|q| q.0.clone()).unwrap_or_default(),
                        );
                        let taints: Vec<String> = c
                            .spec
                            .taints
                            .iter()
                            .map(|t| t.key.rsplit('/').next().unwrap_or_default().to_string())
                            .collect();
                        row.push(taints.join(","));
                        row.push(format!("{}s", c.spec.lease_duration_seconds.unwrap_or(60)));
                    }
                    rows.push(row);
                }
                if list.items.is_empty() {
                    eprintln!("No clusters have joined yet. Create a token with `garrison token create` and run the join command it prints.");
                } else {
                    print_table(&rows);
                }
            }
        }
        Ok(())
    })
}

/// Arguments of `garrison get hub-info`.
#[derive(Args, Debug)]
pub struct HubInfoArgs {
    /// The hub's data directory.
    #[arg(long, value_name = "DIR", default_value_os_t = crate::default_data_dir())]
    pub data_dir: PathBuf,
}

/// Runs `garrison get hub-info`: what a spoke admin needs to join, and the fleet at a glance.
pub fn hub_info(args: HubInfoArgs) -> Result<()> {
    let dir = DataDir::new(&args.data_dir);
    dir.require_initialized()?;
    let settings = crate::init::HubSettings::load(&dir)?;
    let pin = crate::token::ca_pin(&dir)?;
    println!("hub URL:           {}", settings.external_url);
    println!("listen address:    {}", settings.listen);
    println!("ca-cert-hash:      {pin}");
    println!("admin kubeconfig:  {}", dir.admin_kubeconfig().display());
    let summary = runtime()?.block_on(async {
        let (client, _) = client(&Target::dir(&dir)).await?;
        let list = Api::<ManagedCluster>::all(client)
            .list(&ListParams::default())
            .await
            .map_err(unreachable)?;
        let accepted = list
            .items
            .iter()
            .filter(|c| c.spec.hub_accepts_client == Some(true))
            .count();
        let available = list
            .items
            .iter()
            .filter(|c| condition_status(c, mc::AVAILABLE) == "True")
            .count();
        anyhow::Ok((list.items.len(), accepted, available))
    });
    match summary {
        Ok((total, accepted, available)) => println!(
            "clusters:          {total} joined, {accepted} accepted, {available} available"
        ),
        Err(e) => println!("clusters:          unknown ({e})"),
    }
    println!(
        "new join token:    garrison token create --data-dir {}",
        dir.root.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn target(data_dir: Option<&std::path::Path>, kubeconfig: Option<&str>) -> Target {
        Target {
            data_dir: data_dir.map(PathBuf::from),
            kubeconfig: kubeconfig.map(PathBuf::from),
        }
    }

    #[test]
    fn the_hub_is_found_as_kubectl_would_with_flags_first() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        dir.create().unwrap();
        std::fs::write(dir.config(), "{}").unwrap();
        let env = Some(OsStr::new("/elsewhere/config"));
        // --kubeconfig before all.
        assert_eq!(
            resolve(&target(Some(tmp.path()), Some("k.yaml")), env).unwrap(),
            Source::File("k.yaml".into())
        );
        // --data-dir (or $GARRISON_DATA_DIR) before $KUBECONFIG.
        assert_eq!(
            resolve(&target(Some(tmp.path()), None), env).unwrap(),
            Source::File(dir.admin_kubeconfig())
        );
        // $KUBECONFIG before the default directory; an empty one does not count.
        assert_eq!(resolve(&target(None, None), env).unwrap(), Source::Env);
        let e = resolve(&target(None, None), Some(OsStr::new(""))).unwrap_err();
        assert!(e.to_string().contains("--kubeconfig"), "{e}");
        // A named directory that holds no hub is an error naming it.
        let empty = tempfile::tempdir().unwrap();
        let e = resolve(&target(Some(empty.path()), None), env).unwrap_err();
        assert!(e.to_string().contains("garrison init"), "{e}");
    }
}
