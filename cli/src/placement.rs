//! `garrison clusterset set|bind`, `garrison create placement` and `garrison get placements`:
//! choosing clusters for workloads.

use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use garrison_api::cluster::v1beta1::{Placement, PlacementDecision};
use garrison_api::conditions::placement as pc;
use garrison_api::labels::{CLUSTER_SET, PLACEMENT};
use garrison_api::status::find_condition;
use garrison_api::{ManagedCluster, ManagedClusterSet, ManagedClusterSetBinding};
use garrison_apiserver::selectors::{LabelSelector, Op};
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::admin::{Output, Target, age, client, print_list, print_table, runtime, unreachable};

/// `garrison clusterset ...`.
#[derive(Subcommand, Debug)]
pub enum ClusterSetCommand {
    /// Put clusters into a cluster set (label `cluster.open-cluster-management.io/clusterset`),
    /// creating the set if needed. A cluster is in one such set at a time.
    Set(SetArgs),
    /// Bind a cluster set to a namespace, so placements there may choose its clusters. Creates
    /// the namespace if needed.
    Bind(BindArgs),
}

/// Arguments of `garrison clusterset set`.
#[derive(Args, Debug)]
pub struct SetArgs {
    /// The cluster set.
    pub name: String,
    /// The clusters to put into it, comma-separated.
    #[arg(long, value_name = "A,B,...", value_delimiter = ',', required = true)]
    pub clusters: Vec<String>,
    #[command(flatten)]
    target: Target,
}

/// Arguments of `garrison clusterset bind`.
#[derive(Args, Debug)]
pub struct BindArgs {
    /// The cluster set.
    pub name: String,
    /// The namespace to bind it to.
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    pub namespace: String,
    #[command(flatten)]
    target: Target,
}

/// Arguments of `garrison create placement`.
#[derive(Args, Debug)]
pub struct CreatePlacementArgs {
    /// The placement's name.
    pub name: String,
    /// Its namespace (where the cluster sets it may use are bound).
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    pub namespace: String,
    /// Only these of the bound cluster sets, comma-separated (default: all bound).
    #[arg(long, value_name = "A,B,...", value_delimiter = ',')]
    pub clustersets: Vec<String>,
    /// Only clusters whose labels match, in kubectl's syntax: `env=prod,region in (eu,us),!legacy`.
    #[arg(long, short = 'l', value_name = "SELECTOR")]
    pub label_selector: Option<String>,
    /// Prioritizers with weights (-10..10), comma-separated: `BuiltIn:NAME:WEIGHT` (Balance,
    /// Steady, ResourceAllocatableCPU, ResourceAllocatableMemory) or
    /// `AddOn:RESOURCE:SCORE:WEIGHT`. Added to the defaults (Balance:1, Steady:1).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub prioritizers: Vec<String>,
    /// How many clusters to choose (default: every matching cluster).
    #[arg(long, value_name = "N")]
    pub count: Option<u32>,
    /// Also choose clusters whose agent is not reporting (tainted unreachable or unavailable).
    #[arg(long)]
    pub include_unavailable: bool,
    #[command(flatten)]
    target: Target,
}

/// Arguments of `garrison get placements`.
#[derive(Args, Debug)]
pub struct GetPlacementsArgs {
    /// Only this namespace's placements.
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Every namespace's (the default without `-n`; accepted as kubectl accepts it).
    // Refused beside `-n` by clap, so no code needs to read it.
    #[arg(long, short = 'A', conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(flatten)]
    target: Target,
}

/// A kubectl-style selector as a metav1.LabelSelector.
pub fn label_selector(s: &str) -> Result<Value> {
    let parsed = LabelSelector::parse(s).map_err(|e| anyhow!("--label-selector: {e}"))?;
    let mut exprs = Vec::new();
    for r in parsed.requirements {
        let (op, values): (&str, Vec<String>) = match r.op {
            Op::In(v) => ("In", v),
            Op::NotIn(v) => ("NotIn", v),
            Op::Exists => ("Exists", vec![]),
            Op::NotExists => ("DoesNotExist", vec![]),
            Op::Gt(_) | Op::Lt(_) => {
                bail!(
                    "--label-selector: {}: placements do not support > and <",
                    r.key
                )
            }
        };
        let mut e = json!({"key": r.key, "operator": op});
        if !values.is_empty() {
            e["values"] = json!(values);
        }
        exprs.push(e);
    }
    Ok(json!({"matchExpressions": exprs}))
}

/// `--prioritizers` as prioritizer configurations.
pub fn prioritizers(list: &[String]) -> Result<Vec<Value>> {
    let weight = |w: &str, item: &str| -> Result<i32> {
        let n: i32 = w
            .parse()
            .map_err(|_| anyhow!("--prioritizers: {item}: the weight {w:?} is not a number"))?;
        if !(-10..=10).contains(&n) {
            bail!("--prioritizers: {item}: the weight must be between -10 and 10");
        }
        Ok(n)
    };
    let mut out = Vec::new();
    for item in list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let parts: Vec<&str> = item.split(':').collect();
        match parts.as_slice() {
            ["BuiltIn", name, w] => {
                const KNOWN: [&str; 4] = [
                    "Balance",
                    "Steady",
                    "ResourceAllocatableCPU",
                    "ResourceAllocatableMemory",
                ];
                if !KNOWN.contains(name) {
                    bail!(
                        "--prioritizers: {item}: unknown built-in prioritizer {name:?} (one of {})",
                        KNOWN.join(", ")
                    );
                }
                out.push(json!({"scoreCoordinate": {"type": "BuiltIn", "builtIn": name}, "weight": weight(w, item)?}));
            }
            ["AddOn", resource, score, w] => {
                out.push(json!({"scoreCoordinate": {"type": "AddOn", "addOn": {"resourceName": resource, "scoreName": score}}, "weight": weight(w, item)?}));
            }
            _ => bail!(
                "--prioritizers: {item}: expected BuiltIn:NAME:WEIGHT or AddOn:RESOURCE:SCORE:WEIGHT"
            ),
        }
    }
    Ok(out)
}

/// Builds the Placement `create placement` asks for.
pub fn placement_of(args: &CreatePlacementArgs) -> Result<Placement> {
    let mut spec = json!({});
    if !args.clustersets.is_empty() {
        spec["clusterSets"] = json!(args.clustersets);
    }
    if let Some(sel) = &args.label_selector {
        spec["predicates"] =
            json!([{"requiredClusterSelector": {"labelSelector": label_selector(sel)?}}]);
    }
    let prios = prioritizers(&args.prioritizers)?;
    if !prios.is_empty() {
        spec["prioritizerPolicy"] = json!({"mode": "Additive", "configurations": prios});
    }
    if let Some(n) = args.count {
        spec["numberOfClusters"] = json!(n);
    }
    if args.include_unavailable {
        spec["tolerations"] = json!([
            {"key": garrison_api::labels::TAINT_UNREACHABLE, "operator": "Exists"},
            {"key": garrison_api::labels::TAINT_UNAVAILABLE, "operator": "Exists"}
        ]);
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "cluster.open-cluster-management.io/v1beta1", "kind": "Placement",
        "metadata": {"name": args.name, "namespace": args.namespace}, "spec": spec
    }))?)
}

/// Runs `garrison clusterset ...`.
pub fn clusterset(cmd: ClusterSetCommand) -> Result<()> {
    match cmd {
        ClusterSetCommand::Set(a) => set(a),
        ClusterSetCommand::Bind(a) => bind(a),
    }
}

fn set(args: SetArgs) -> Result<()> {
    runtime()?.block_on(async {
        let (client, _) = client(&args.target).await?;
        let sets: Api<ManagedClusterSet> = Api::all(client.clone());
        if sets.get_opt(&args.name).await.map_err(unreachable)?.is_none() {
            let set: ManagedClusterSet = serde_json::from_value(json!({
                "apiVersion": "cluster.open-cluster-management.io/v1beta2", "kind": "ManagedClusterSet",
                "metadata": {"name": args.name},
                "spec": {"clusterSelector": {"selectorType": "ExclusiveClusterSetLabel"}}
            }))?;
            sets.create(&PostParams::default(), &set)
                .await
                .map_err(unreachable)?;
            eprintln!("managedclusterset {} created", args.name);
        } else if args.name == "global" {
            bail!("the global set holds every cluster; clusters cannot be put into it");
        }
        let clusters: Api<ManagedCluster> = Api::all(client);
        let mut failed = 0;
        for c in args.clusters.iter().map(|c| c.trim()).filter(|c| !c.is_empty()) {
            let patch = json!({"metadata": {"labels": {CLUSTER_SET: args.name}}});
            match clusters
                .patch(c, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => println!("managedcluster {c} is in set {}", args.name),
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    eprintln!("error: managedcluster {c} not found");
                    failed += 1;
                }
                Err(kube::Error::Api(s)) => {
                    eprintln!("error: managedcluster {c}: {}", s.message);
                    failed += 1;
                }
                Err(e) => return Err(unreachable(e)),
            }
        }
        if failed > 0 {
            bail!("{failed} cluster(s) not moved");
        }
        Ok(())
    })
}

fn bind(args: BindArgs) -> Result<()> {
    runtime()?.block_on(async {
        let (client, _) = client(&args.target).await?;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        if namespaces
            .get_opt(&args.namespace)
            .await
            .map_err(unreachable)?
            .is_none()
        {
            let ns: Namespace =
                serde_json::from_value(json!({"metadata": {"name": args.namespace}}))?;
            namespaces
                .create(&PostParams::default(), &ns)
                .await
                .map_err(unreachable)?;
            eprintln!("namespace {} created", args.namespace);
        }
        let sets: Api<ManagedClusterSet> = Api::all(client.clone());
        if sets.get_opt(&args.name).await.map_err(unreachable)?.is_none() {
            eprintln!(
                "warning: cluster set {} does not exist yet; placements cannot use it until it does",
                args.name
            );
        }
        let api: Api<ManagedClusterSetBinding> = Api::namespaced(client, &args.namespace);
        let binding: ManagedClusterSetBinding = serde_json::from_value(json!({
            "apiVersion": "cluster.open-cluster-management.io/v1beta2", "kind": "ManagedClusterSetBinding",
            "metadata": {"name": args.name, "namespace": args.namespace},
            "spec": {"clusterSet": args.name}
        }))?;
        match api.create(&PostParams::default(), &binding).await {
            Ok(_) => println!(
                "managedclustersetbinding {}/{} created",
                args.namespace, args.name
            ),
            Err(kube::Error::Api(s)) if s.code == 409 => println!(
                "managedclustersetbinding {}/{} exists already",
                args.namespace, args.name
            ),
            Err(e) => return Err(unreachable(e)),
        }
        Ok(())
    })
}

/// Runs `garrison create placement`.
pub fn create(args: CreatePlacementArgs) -> Result<()> {
    let placement = placement_of(&args)?;
    runtime()?.block_on(async {
        let (client, _) = client(&args.target).await?;
        let api: Api<Placement> = Api::namespaced(client, &args.namespace);
        match api.create(&PostParams::default(), &placement).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                bail!("placement {}/{} exists already", args.namespace, args.name)
            }
            Err(e) => return Err(unreachable(e)),
        }
        println!("placement {}/{} created", args.namespace, args.name);
        // The scheduler answers within moments; show its first answer.
        for _ in 0..50 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let p = api.get(&args.name).await.map_err(unreachable)?;
            let conds = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            if let Some(c) = find_condition(&conds, pc::SATISFIED) {
                let n = p
                    .status
                    .as_ref()
                    .and_then(|s| s.number_of_selected_clusters)
                    .unwrap_or(0);
                println!("{n} cluster(s) selected ({}: {})", c.reason, c.message);
                if let Some(m) =
                    find_condition(&conds, pc::MISCONFIGURED).filter(|m| m.status == "True")
                {
                    println!("misconfigured: {}", m.message);
                }
                return Ok(());
            }
        }
        println!(
            "not scheduled yet; see `garrison get placements -n {}`",
            args.namespace
        );
        Ok(())
    })
}

/// Runs `garrison get placements`.
pub fn get(args: GetPlacementsArgs) -> Result<()> {
    runtime()?.block_on(async {
        let (client, _) = client(&args.target).await?;
        let (placements, decisions): (Api<Placement>, Api<PlacementDecision>) =
            match &args.namespace {
                Some(ns) => (
                    Api::namespaced(client.clone(), ns),
                    Api::namespaced(client, ns),
                ),
                None => (Api::all(client.clone()), Api::all(client)),
            };
        let list = placements
            .list(&ListParams::default())
            .await
            .map_err(unreachable)?;
        if matches!(args.output, Output::Json | Output::Yaml) {
            return print_list(&list.items, args.output);
        }
        if list.items.is_empty() {
            eprintln!(
                "No placements. Create one with `garrison create placement NAME -n NAMESPACE`."
            );
            return Ok(());
        }
        let all_decisions = decisions
            .list(&ListParams::default())
            .await
            .map_err(unreachable)?;
        let wide = args.output == Output::Wide;
        let mut header = vec![
            "NAMESPACE",
            "NAME",
            "SATISFIED",
            "REASON",
            "SELECTED",
            "AGE",
            "DECISIONS",
        ];
        if wide {
            header.push("MESSAGE");
        }
        let mut rows = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
        for p in &list.items {
            let conds = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            let satisfied = find_condition(&conds, pc::SATISFIED);
            let misconfigured =
                find_condition(&conds, pc::MISCONFIGURED).filter(|c| c.status == "True");
            let mut chosen: Vec<String> = all_decisions
                .items
                .iter()
                .filter(|d| {
                    d.namespace() == p.namespace()
                        && d.labels().get(PLACEMENT) == Some(&p.name_any())
                })
                .flat_map(|d| d.status.iter().flat_map(|s| s.decisions.iter()))
                .map(|e| e.cluster_name.clone())
                .collect();
            chosen.sort();
            let shown = if chosen.len() > 8 && !wide {
                format!("{},... ({} in all)", chosen[..8].join(","), chosen.len())
            } else {
                chosen.join(",")
            };
            let mut row = vec![
                p.namespace().unwrap_or_default(),
                p.name_any(),
                satisfied.map_or("-".into(), |c| c.status.clone()),
                match misconfigured {
                    Some(_) => "Misconfigured".into(),
                    None => satisfied.map_or("-".into(), |c| c.reason.clone()),
                },
                p.status
                    .as_ref()
                    .and_then(|s| s.number_of_selected_clusters)
                    .unwrap_or(0)
                    .to_string(),
                age(p.metadata.creation_timestamp.as_ref()),
                if shown.is_empty() {
                    "<none>".into()
                } else {
                    shown
                },
            ];
            if wide {
                row.push(
                    misconfigured
                        .or(satisfied)
                        .map_or(String::new(), |c| c.message.clone()),
                );
            }
            rows.push(row);
        }
        print_table(&rows);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_in_kubectl_syntax() {
        let v = label_selector("env=prod,region in (eu,us),!legacy,gpu").unwrap();
        assert_eq!(
            v,
            json!({"matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod"]},
                {"key": "region", "operator": "In", "values": ["eu", "us"]},
                {"key": "legacy", "operator": "DoesNotExist"},
                {"key": "gpu", "operator": "Exists"}
            ]})
        );
        assert!(
            label_selector("cpu>4")
                .unwrap_err()
                .to_string()
                .contains("> and <")
        );
        assert!(label_selector("a in (b").is_err());
    }

    #[test]
    fn prioritizer_lists() {
        let p = prioritizers(&["BuiltIn:Steady:3".into(), "AddOn:usage:cpu:-2".into()]).unwrap();
        assert_eq!(
            p[0],
            json!({"scoreCoordinate": {"type": "BuiltIn", "builtIn": "Steady"}, "weight": 3})
        );
        assert_eq!(
            p[1]["scoreCoordinate"]["addOn"],
            json!({"resourceName": "usage", "scoreName": "cpu"})
        );
        assert_eq!(p[1]["weight"], -2);
        for bad in [
            "BuiltIn:Spread:1",
            "BuiltIn:Steady:11",
            "BuiltIn:Steady:x",
            "Steady",
            "AddOn:a:1",
        ] {
            assert!(prioritizers(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
