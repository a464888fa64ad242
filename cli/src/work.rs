//! `garrison create work`, `garrison get works` and `garrison delete work`: ManifestWorks from
//! plain manifests, their state across the fleet, and their removal.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use garrison_api::conditions::work as wc;
use garrison_api::status::find_condition;
use garrison_api::work::v1::{ManifestWork, ValueType};
use garrison_klusterlet::work::status::well_known;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::admin::{Output, Target, age, client, print_list, print_table, runtime, unreachable};

/// Arguments of `garrison create work`.
#[derive(Args, Debug)]
pub struct CreateWorkArgs {
    /// The work's name (a DNS subdomain).
    pub name: String,
    /// A YAML file of plain manifests (several documents, or a List), or a whole ManifestWork;
    /// `-` reads standard input.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: PathBuf,
    /// The cluster to deliver it to.
    #[arg(
        long,
        value_name = "CLUSTER",
        conflicts_with_all = ["clusters", "placement"],
        required_unless_present_any = ["clusters", "placement"]
    )]
    pub cluster: Option<String>,
    /// Several clusters, comma-separated: one work in each cluster's namespace.
    #[arg(
        long,
        value_name = "A,B,...",
        value_delimiter = ',',
        conflicts_with = "placement"
    )]
    pub clusters: Vec<String>,
    /// The clusters a placement chooses, now and as its decisions change: creates a
    /// ManifestWorkReplicaSet named NAME in the placement's namespace (rolled out to all at once).
    #[arg(long, value_name = "NAMESPACE/PLACEMENT")]
    pub placement: Option<String>,
    /// Do not ask for WellKnownStatus feedback (asked by default for Deployments, DaemonSets,
    /// Jobs and Pods).
    #[arg(long)]
    pub no_feedback: bool,
    /// Replace the work's manifests if it exists already (otherwise that is an error).
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    target: Target,
}

/// Arguments of `garrison get works`.
#[derive(Args, Debug)]
pub struct GetWorksArgs {
    /// Only this cluster's works.
    #[arg(long, value_name = "CLUSTER")]
    pub cluster: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(flatten)]
    target: Target,
}

/// Arguments of `garrison delete work`.
#[derive(Args, Debug)]
pub struct DeleteWorkArgs {
    /// The work's name.
    pub name: String,
    /// The cluster it was delivered to.
    #[arg(
        long,
        value_name = "CLUSTER",
        conflicts_with = "clusters",
        required_unless_present = "clusters"
    )]
    pub cluster: Option<String>,
    /// Several clusters, comma-separated.
    #[arg(long, value_name = "A,B,...", value_delimiter = ',')]
    pub clusters: Vec<String>,
    /// How long to wait for the agents to remove the work's resources (0s: do not wait). A work
    /// on a cluster that is offline is removed when the cluster returns.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_wait)]
    pub wait: u64,
    #[command(flatten)]
    target: Target,
}

fn parse_wait(s: &str) -> Result<u64, String> {
    if s == "0" || s == "0s" {
        return Ok(0);
    }
    crate::token::parse_duration(s, 1, 3600, "0s to 1h")
}

fn clusters_of(one: &Option<String>, many: &[String]) -> Result<Vec<String>> {
    let list: Vec<String> = match one {
        Some(c) => vec![c.clone()],
        None => many
            .iter()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect(),
    };
    if list.is_empty() {
        bail!("name at least one cluster with --cluster or --clusters");
    }
    for c in &list {
        garrison_pki::ClusterName::parse(c)
            .map_err(|e| anyhow!("{c:?} is not a cluster name: {e}"))?;
    }
    Ok(list)
}

/// Reads manifests from a multi-document YAML. A `List` is expanded; a ManifestWork is returned
/// as such. Each problem names the document.
pub fn read_manifests(text: &str, source: &str) -> Result<Loaded> {
    let mut manifests = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let n = i + 1;
        let value = Value::deserialize(doc)
            .with_context(|| format!("{source}: document {n} is not valid YAML"))?;
        if value.is_null() {
            continue;
        }
        let Value::Object(_) = &value else {
            bail!("{source}: document {n} is not a mapping (an object with apiVersion and kind)");
        };
        match value["kind"].as_str() {
            Some("ManifestWork")
                if value["apiVersion"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("work.open-cluster-management.io/")) =>
            {
                if !manifests.is_empty() || text.matches("\nkind:").count() > 1 {
                    bail!("{source}: a ManifestWork must be the file's only document");
                }
                let work: ManifestWork = serde_json::from_value(value).with_context(|| {
                    format!("{source}: document {n} is not a valid ManifestWork")
                })?;
                return Ok(Loaded::Work(Box::new(work)));
            }
            Some(k) if k.ends_with("List") && value["items"].is_array() => {
                for (j, item) in value["items"].as_array().into_iter().flatten().enumerate() {
                    check_manifest(item, &format!("{source}: document {n}, item {}", j + 1))?;
                    manifests.push(item.clone());
                }
            }
            _ => {
                check_manifest(&value, &format!("{source}: document {n}"))?;
                manifests.push(value);
            }
        }
    }
    if manifests.is_empty() {
        bail!("{source} holds no manifests");
    }
    Ok(Loaded::Manifests(manifests))
}

fn check_manifest(m: &Value, at: &str) -> Result<()> {
    for (field, ptr) in [
        ("apiVersion", "/apiVersion"),
        ("kind", "/kind"),
        ("metadata.name", "/metadata/name"),
    ] {
        if m.pointer(ptr)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            bail!("{at}: {field} is missing");
        }
    }
    Ok(())
}

/// What a file held.
#[derive(Debug)]
pub enum Loaded {
    /// Plain manifests.
    Manifests(Vec<Value>),
    /// A whole ManifestWork.
    Work(Box<ManifestWork>),
}

/// Builds the ManifestWork: the manifests, and WellKnownStatus feedback for the kinds that have it.
pub fn build_work(
    name: &str,
    cluster: &str,
    loaded: &Loaded,
    feedback: bool,
) -> Result<ManifestWork> {
    let mut work: Value = match loaded {
        Loaded::Work(w) => serde_json::to_value(w)?,
        Loaded::Manifests(ms) => {
            let mut configs = Vec::new();
            if feedback {
                for m in ms {
                    let kind = m["kind"].as_str().unwrap_or_default();
                    if well_known(kind).is_empty() {
                        continue;
                    }
                    let api_version = m["apiVersion"].as_str().unwrap_or_default();
                    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
                    configs.push(json!({
                        "resourceIdentifier": {
                            "group": group,
                            "resource": format!("{}s", kind.to_lowercase()),
                            "name": m["metadata"]["name"],
                            "namespace": m["metadata"]["namespace"].as_str().unwrap_or("default"),
                        },
                        "feedbackRules": [{"type": "WellKnownStatus"}],
                    }));
                }
            }
            json!({"spec": {"workload": {"manifests": ms}, "manifestConfigs": configs}})
        }
    };
    work["apiVersion"] = json!("work.open-cluster-management.io/v1");
    work["kind"] = json!("ManifestWork");
    let meta = work["metadata"].as_object().cloned().unwrap_or_default();
    let mut meta = Value::Object(meta);
    meta["name"] = json!(name);
    meta["namespace"] = json!(cluster);
    for f in [
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "generation",
        "managedFields",
    ] {
        if let Some(m) = meta.as_object_mut() {
            m.remove(f);
        }
    }
    work["metadata"] = meta;
    if let Some(m) = work.as_object_mut() {
        m.remove("status");
    }
    Ok(serde_json::from_value(work)?)
}

fn read_file(path: &Path) -> Result<(String, String)> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read standard input")?;
        return Ok((s, "standard input".into()));
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok((text, path.display().to_string()))
}

/// Runs `garrison create work`.
pub fn create(args: CreateWorkArgs) -> Result<()> {
    if let Some(p) = &args.placement {
        return create_replica_set(&args, p);
    }
    let clusters = clusters_of(&args.cluster, &args.clusters)?;
    let (text, source) = read_file(&args.file)?;
    let loaded = read_manifests(&text, &source)?;
    let count = match &loaded {
        Loaded::Manifests(m) => m.len(),
        Loaded::Work(w) => w.spec.workload.as_ref().map_or(0, |w| w.manifests.len()),
    };
    runtime()?.block_on(async {
        let (client, _) = client(&args.target).await?;
        let mut failed = 0;
        for cluster in &clusters {
            let work = build_work(&args.name, cluster, &loaded, !args.no_feedback)?;
            let api: Api<ManifestWork> = Api::namespaced(client.clone(), cluster);
            match api.create(&PostParams::default(), &work).await {
                Ok(_) => println!("manifestwork {cluster}/{} created ({count} manifests)", args.name),
                Err(kube::Error::Api(s)) if s.code == 409 && args.replace => {
                    let mut current = api.get(&args.name).await.map_err(unreachable)?;
                    current.spec = work.spec.clone();
                    api.replace(&args.name, &PostParams::default(), &current)
                        .await
                        .map_err(unreachable)?;
                    println!("manifestwork {cluster}/{} replaced ({count} manifests)", args.name);
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    eprintln!("error: manifestwork {cluster}/{} exists already; use --replace to change it, or `garrison delete work {} --cluster {cluster}`", args.name, args.name);
                    failed += 1;
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    eprintln!("error: cluster {cluster} has no namespace on the hub; has it joined and been accepted? (`garrison get clusters`)");
                    failed += 1;
                }
                Err(e) => {
                    eprintln!("error: {cluster}: {}", unreachable(e));
                    failed += 1;
                }
            }
        }
        if failed > 0 {
            bail!("{failed} of {} clusters did not get the work", clusters.len());
        }
        let first = &clusters[0];
        eprintln!("Follow it with: garrison get works --cluster {first}");
        Ok(())
    })
}

/// `create work --placement NS/NAME`: a ManifestWorkReplicaSet over that placement.
fn create_replica_set(args: &CreateWorkArgs, placement: &str) -> Result<()> {
    let (ns, pname) = placement
        .split_once('/')
        .filter(|(n, p)| !n.is_empty() && !p.is_empty() && !p.contains('/'))
        .ok_or_else(|| anyhow!("--placement: expected NAMESPACE/PLACEMENT, got {placement:?}"))?;
    let (text, source) = read_file(&args.file)?;
    let loaded = read_manifests(&text, &source)?;
    // The template is the work a cluster would get; its namespace is filled per cluster.
    let work = build_work(&args.name, ns, &loaded, !args.no_feedback)?;
    let mwrs = json!({
        "apiVersion": "work.open-cluster-management.io/v1alpha1", "kind": "ManifestWorkReplicaSet",
        "metadata": {"name": args.name, "namespace": ns},
        "spec": {"manifestWorkTemplate": work.spec, "placementRefs": [{"name": pname}]}
    });
    let mwrs: garrison_api::work::v1alpha1::ManifestWorkReplicaSet = serde_json::from_value(mwrs)?;
    runtime()?.block_on(async {
        let (client, _) = client(&args.target).await?;
        let placements: Api<garrison_api::cluster::v1beta1::Placement> =
            Api::namespaced(client.clone(), ns);
        if placements.get_opt(pname).await.map_err(unreachable)?.is_none() {
            bail!("placement {ns}/{pname} not found; create it with `garrison create placement {pname} -n {ns}`");
        }
        let api: Api<garrison_api::work::v1alpha1::ManifestWorkReplicaSet> =
            Api::namespaced(client, ns);
        match api.create(&PostParams::default(), &mwrs).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 && args.replace => {
                let mut current = api.get(&args.name).await.map_err(unreachable)?;
                current.spec.manifest_work_template = mwrs.spec.manifest_work_template.clone();
                api.replace(&args.name, &PostParams::default(), &current)
                    .await
                    .map_err(unreachable)?;
                println!("manifestworkreplicaset {ns}/{} replaced", args.name);
                return Ok(());
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                bail!("manifestworkreplicaset {ns}/{} exists already; use --replace to change it", args.name)
            }
            Err(e) => return Err(unreachable(e)),
        }
        println!("manifestworkreplicaset {ns}/{} created over placement {pname}", args.name);
        eprintln!("Follow it with: garrison get works, or kubectl get manifestworkreplicasets -n {ns}");
        Ok(())
    })
}

fn cond_status(w: &ManifestWork, t: &str) -> String {
    w.status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, t))
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

fn cond_message(w: &ManifestWork) -> String {
    let Some(st) = &w.status else {
        return "waiting for the cluster's agent".into();
    };
    for t in [wc::APPLIED, wc::DEGRADED, wc::AVAILABLE] {
        if let Some(c) = find_condition(&st.conditions, t) {
            let bad = if t == wc::DEGRADED {
                c.status == "True"
            } else {
                c.status != "True"
            };
            if bad {
                return format!("{}: {}", c.reason, c.message);
            }
        }
    }
    String::new()
}

/// Feedback values as `Kind/name: A=1 B=2`, one group per manifest.
pub fn feedback_summary(w: &ManifestWork) -> String {
    let Some(rs) = w.status.as_ref().and_then(|s| s.resource_status.as_ref()) else {
        return String::new();
    };
    let mut parts = Vec::new();
    for m in &rs.manifests {
        let Some(fb) = &m.status_feedbacks else {
            continue;
        };
        if fb.values.is_empty() {
            continue;
        }
        let values: Vec<String> = fb
            .values
            .iter()
            .map(|v| {
                let val = match v.value.type_ {
                    ValueType::Integer => v.value.integer.map(|i| i.to_string()),
                    ValueType::String => v.value.string.clone(),
                    ValueType::Boolean => v.value.boolean.map(|b| b.to_string()),
                    ValueType::JsonRaw => v.value.json_raw.clone(),
                };
                format!("{}={}", v.name, val.unwrap_or_default())
            })
            .collect();
        parts.push(format!(
            "{}/{}: {}",
            m.resource_meta.kind.as_deref().unwrap_or(""),
            m.resource_meta.name.as_deref().unwrap_or(""),
            values.join(" ")
        ));
    }
    parts.join("; ")
}

/// Runs `garrison get works`.
pub fn get(args: GetWorksArgs) -> Result<()> {
    runtime()?.block_on(async {
        let (client, _) = client(&args.target).await?;
        let api: Api<ManifestWork> = match &args.cluster {
            Some(c) => Api::namespaced(client, c),
            None => Api::all(client),
        };
        let list = api.list(&ListParams::default()).await.map_err(unreachable)?;
        match args.output {
            Output::Json | Output::Yaml => print_list(&list.items, args.output)?,
            Output::Table | Output::Wide => {
                if list.items.is_empty() {
                    eprintln!("No works{}. Create one with `garrison create work NAME -f FILE --cluster CLUSTER`.",
                        args.cluster.as_ref().map(|c| format!(" for cluster {c}")).unwrap_or_default());
                    return Ok(());
                }
                let wide = args.output == Output::Wide;
                let mut header = vec!["CLUSTER", "NAME", "MANIFESTS", "APPLIED", "AVAILABLE", "DEGRADED", "AGE", "FEEDBACK"];
                if wide {
                    header.push("MESSAGE");
                }
                let mut rows = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
                for w in &list.items {
                    let mut row = vec![
                        w.namespace().unwrap_or_default(),
                        w.name_any(),
                        w.spec.workload.as_ref().map_or(0, |m| m.manifests.len()).to_string(),
                        if w.metadata.deletion_timestamp.is_some() { "Deleting".into() } else { cond_status(w, wc::APPLIED) },
                        cond_status(w, wc::AVAILABLE),
                        cond_status(w, wc::DEGRADED),
                        age(w.metadata.creation_timestamp.as_ref()),
                        feedback_summary(w),
                    ];
                    if wide {
                        row.push(cond_message(w));
                    }
                    rows.push(row);
                }
                print_table(&rows);
            }
        }
        Ok(())
    })
}

/// Runs `garrison delete work`.
pub fn delete(args: DeleteWorkArgs) -> Result<()> {
    let clusters = clusters_of(&args.cluster, &args.clusters)?;
    runtime()?.block_on(async {
        let (client, _) = client(&args.target).await?;
        let mut pending = Vec::new();
        let mut failed = 0;
        for cluster in &clusters {
            let api: Api<ManifestWork> = Api::namespaced(client.clone(), cluster);
            match api.delete(&args.name, &DeleteParams::default()).await {
                Ok(_) => pending.push(cluster.clone()),
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    eprintln!("error: manifestwork {cluster}/{} not found", args.name);
                    failed += 1;
                }
                Err(e) => {
                    eprintln!("error: {cluster}: {}", unreachable(e));
                    failed += 1;
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(args.wait);
        let bar = (args.wait > 0 && !pending.is_empty()).then(|| {
            eprintln!("waiting for the agents to remove the resources of {} ...", args.name);
            crate::progress::counter(pending.len() as u64, "clusters cleaned up")
        });
        loop {
            let mut still = Vec::new();
            for cluster in &pending {
                let api: Api<ManifestWork> = Api::namespaced(client.clone(), cluster);
                match api.get_opt(&args.name).await {
                    Ok(None) => {
                        let line = format!("manifestwork {cluster}/{} deleted", args.name);
                        match &bar {
                            Some(b) => {
                                b.suspend(|| println!("{line}"));
                                b.inc(1);
                            }
                            None => println!("{line}"),
                        }
                    }
                    Ok(Some(_)) | Err(_) => still.push(cluster.clone()),
                }
            }
            pending = still;
            if pending.is_empty() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        for cluster in &pending {
            println!("manifestwork {cluster}/{} is being deleted: its agent removes the resources, then the work goes (a cluster that is offline does this when it returns)", args.name);
        }
        if failed > 0 {
            bail!("{failed} of {} works could not be deleted", clusters.len());
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_becomes_manifests() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: demo\nspec:\n  replicas: 2\n";
        let Loaded::Manifests(ms) = read_manifests(text, "f.yaml").unwrap() else {
            panic!("expected manifests")
        };
        assert_eq!(ms.len(), 2);
        let w = build_work("web", "east", &Loaded::Manifests(ms), true).unwrap();
        assert_eq!(w.metadata.namespace.as_deref(), Some("east"));
        assert_eq!(w.spec.manifest_configs.len(), 1);
        assert_eq!(
            w.spec.manifest_configs[0].resource_identifier.resource,
            "deployments"
        );
        assert_eq!(
            w.spec.manifest_configs[0]
                .resource_identifier
                .group
                .as_deref(),
            Some("apps")
        );
    }

    #[test]
    fn bad_documents_are_named() {
        let e = read_manifests("kind: ConfigMap\nmetadata:\n  name: x\n", "f.yaml").unwrap_err();
        assert_eq!(e.to_string(), "f.yaml: document 1: apiVersion is missing");
        let e = read_manifests(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n---\n- a\n",
            "f.yaml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("document 2 is not a mapping"));
        let e = read_manifests("a: [unclosed\n", "f.yaml").unwrap_err();
        assert!(e.to_string().contains("document 1 is not valid YAML"));
        assert!(
            read_manifests("", "f.yaml")
                .unwrap_err()
                .to_string()
                .contains("holds no manifests")
        );
    }

    #[test]
    fn a_whole_manifest_work_is_taken_as_is() {
        let text = "apiVersion: work.open-cluster-management.io/v1\nkind: ManifestWork\nmetadata:\n  name: ignored\n  namespace: other\nspec:\n  workload:\n    manifests:\n    - apiVersion: v1\n      kind: ConfigMap\n      metadata:\n        name: c\n        namespace: default\n";
        let loaded = read_manifests(text, "w.yaml").unwrap();
        let w = build_work("mine", "east", &loaded, true).unwrap();
        assert_eq!(w.metadata.name.as_deref(), Some("mine"));
        assert_eq!(w.metadata.namespace.as_deref(), Some("east"));
        assert_eq!(w.spec.workload.unwrap().manifests.len(), 1);
    }
}
