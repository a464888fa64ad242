//! `garrison addon enable|disable` and `garrison get addons`, as `clusteradm addon enable`
//! does it: enabling an add-on on a cluster is creating its ManagedClusterAddOn in the cluster's
//! namespace; disabling is deleting it.

use std::collections::BTreeSet;

use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use garrison_api::cluster::v1beta1::PlacementDecision;
use garrison_api::labels::PLACEMENT;
use garrison_api::status::find_condition;
use garrison_api::{ClusterManagementAddOn, ManagedCluster, ManagedClusterAddOn};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

use crate::admin::{
    Output, Target, age, client, print_list, print_table, runtime, unreachable, wait_admitted,
};

/// How long `garrison addon enable` waits for the hub to set up a cluster just accepted.
const ADMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// `garrison addon ...`.
#[derive(Subcommand, Debug)]
pub enum AddonCommand {
    /// Enable an add-on on clusters: create its ManagedClusterAddOn in each cluster's
    /// namespace. The add-on's agent then registers with its own certificate and reports
    /// Available (see `garrison get addons`).
    ///
    /// Every cluster must be accepted first (`garrison accept NAME`); one that is not is
    /// refused, and nothing is created. A cluster accepted a moment ago is waited for until
    /// the hub has set it up, up to 30 s.
    Enable(EnableArgs),
    /// Disable an add-on on clusters: delete its ManagedClusterAddOn. The agent removes the
    /// add-on's credentials from the cluster.
    Disable(DisableArgs),
}

/// Which clusters.
#[derive(Args, Debug)]
pub struct Clusters {
    /// Comma-separated cluster names.
    #[arg(
        long,
        value_name = "A,B",
        value_delimiter = ',',
        required_unless_present = "placement"
    )]
    pub clusters: Vec<String>,
    /// The clusters a Placement has decided on, as NAMESPACE/NAME.
    #[arg(long, value_name = "NS/NAME", conflicts_with = "clusters")]
    pub placement: Option<String>,
}

/// Arguments of `garrison addon enable`.
#[derive(Args, Debug)]
pub struct EnableArgs {
    /// The add-on (the name of its ClusterManagementAddOn), e.g. managed-serviceaccount.
    pub name: String,
    #[command(flatten)]
    clusters: Clusters,
    /// The namespace of the add-on's agent on the managed clusters.
    #[arg(
        long,
        value_name = "NS",
        default_value = "open-cluster-management-agent-addon"
    )]
    pub install_namespace: String,
    #[command(flatten)]
    target: Target,
}

/// Arguments of `garrison addon disable`.
#[derive(Args, Debug)]
pub struct DisableArgs {
    /// The add-on.
    pub name: String,
    #[command(flatten)]
    clusters: Clusters,
    #[command(flatten)]
    target: Target,
}

/// Arguments of `garrison get addons`.
#[derive(Args, Debug)]
pub struct GetAddonsArgs {
    /// Only this add-on.
    pub name: Option<String>,
    /// Only this cluster.
    #[arg(long, value_name = "CLUSTER")]
    pub cluster: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(flatten)]
    target: Target,
}

/// The clusters named, or decided by the placement; each must exist.
async fn resolve(client: &kube::Client, c: &Clusters) -> Result<Vec<String>> {
    let names: BTreeSet<String> = match &c.placement {
        Some(p) => {
            let (ns, name) = p
                .split_once('/')
                .filter(|(n, m)| !n.is_empty() && !m.is_empty())
                .ok_or_else(|| anyhow!("--placement {p:?}: expected NAMESPACE/NAME"))?;
            let decisions: Api<PlacementDecision> = Api::namespaced(client.clone(), ns);
            let list = decisions
                .list(&ListParams::default().labels(&format!("{PLACEMENT}={name}")))
                .await
                .map_err(unreachable)?;
            let chosen: BTreeSet<String> = list
                .items
                .iter()
                .flat_map(|d| d.status.iter().flat_map(|s| s.decisions.iter()))
                .map(|d| d.cluster_name.clone())
                .collect();
            if chosen.is_empty() {
                bail!(
                    "placement {ns}/{name} has decided on no clusters (see `garrison get placements -n {ns}`)"
                );
            }
            chosen
        }
        None => c
            .clusters
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    };
    if names.is_empty() {
        bail!("no clusters given: use --clusters A,B or --placement NS/NAME");
    }
    let clusters: Api<ManagedCluster> = Api::all(client.clone());
    for n in &names {
        if clusters.get_opt(n).await.map_err(unreachable)?.is_none() {
            bail!("cluster {n:?} not found (see `garrison get clusters`)");
        }
    }
    Ok(names.into_iter().collect())
}

/// Runs `garrison addon enable|disable`.
pub fn run(cmd: AddonCommand) -> Result<()> {
    match cmd {
        AddonCommand::Enable(a) => enable(a),
        AddonCommand::Disable(a) => disable(a),
    }
}

fn enable(args: EnableArgs) -> Result<()> {
    runtime()?.block_on(async {
        let (client, _) = client(&args.target).await?;
        let cmas: Api<ClusterManagementAddOn> = Api::all(client.clone());
        if cmas
            .get_opt(&args.name)
            .await
            .map_err(unreachable)?
            .is_none()
        {
            let known: Vec<String> = cmas
                .list(&ListParams::default())
                .await
                .map_err(unreachable)?
                .items
                .iter()
                .map(|c| c.name_any())
                .collect();
            bail!(
                "add-on {:?} is not registered on the hub (no ClusterManagementAddOn); known: {}",
                args.name,
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            );
        }
        let names = resolve(&client, &args.clusters).await?;
        // The ManagedClusterAddOn lives in the cluster namespace, which the hub creates once
        // the cluster is accepted.
        wait_admitted(&client, &names, ADMIT_WAIT).await?;
        for cluster in names {
            let mcas: Api<ManagedClusterAddOn> = Api::namespaced(client.clone(), &cluster);
            if mcas
                .get_opt(&args.name)
                .await
                .map_err(unreachable)?
                .is_some()
            {
                println!("{}: already enabled on {cluster}", args.name);
                continue;
            }
            let mca: ManagedClusterAddOn = serde_json::from_value(json!({
                "apiVersion": "addon.open-cluster-management.io/v1alpha1",
                "kind": "ManagedClusterAddOn",
                "metadata": {"name": args.name, "namespace": cluster},
                "spec": {"installNamespace": args.install_namespace},
            }))?;
            mcas.create(&PostParams::default(), &mca)
                .await
                .map_err(unreachable)?;
            println!("{}: enabled on {cluster}", args.name);
        }
        Ok(())
    })
}

fn disable(args: DisableArgs) -> Result<()> {
    runtime()?.block_on(async {
        let (client, _) = client(&args.target).await?;
        for cluster in resolve(&client, &args.clusters).await? {
            let mcas: Api<ManagedClusterAddOn> = Api::namespaced(client.clone(), &cluster);
            match mcas.delete(&args.name, &DeleteParams::default()).await {
                Ok(_) => println!("{}: disabled on {cluster}", args.name),
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    println!("{}: not enabled on {cluster}", args.name)
                }
                Err(e) => return Err(unreachable(e)),
            }
        }
        Ok(())
    })
}

/// Runs `garrison get addons`.
pub fn get(args: GetAddonsArgs) -> Result<()> {
    runtime()?.block_on(async {
        let (client, _) = client(&args.target).await?;
        let api: Api<ManagedClusterAddOn> = match &args.cluster {
            Some(c) => Api::namespaced(client.clone(), c),
            None => Api::all(client.clone()),
        };
        let mut items: Vec<ManagedClusterAddOn> = api
            .list(&ListParams::default())
            .await
            .map_err(unreachable)?
            .items
            .into_iter()
            .filter(|m| args.name.as_ref().is_none_or(|n| &m.name_any() == n))
            .collect();
        items.sort_by_key(|m| (m.name_any(), m.namespace().unwrap_or_default()));
        if matches!(args.output, Output::Json | Output::Yaml) {
            return print_list(&items, args.output);
        }
        if items.is_empty() {
            eprintln!(
                "No add-ons enabled. Enable one with `garrison addon enable NAME --clusters A,B`."
            );
            return Ok(());
        }
        let wide = args.output == Output::Wide;
        let mut header = vec![
            "NAME",
            "CLUSTER",
            "AVAILABLE",
            "DEGRADED",
            "PROGRESSING",
            "AGE",
        ];
        if wide {
            header.extend(["NAMESPACE", "REGISTRATIONS", "MESSAGE"]);
        }
        let mut rows = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
        let (mut total, mut up) = (0, 0);
        for m in &items {
            let st = m.status.clone().unwrap_or_default();
            let cond = |t: &str| {
                find_condition(&st.conditions, t).map_or("-".to_string(), |c| c.status.clone())
            };
            total += 1;
            if cond("Available") == "True" {
                up += 1;
            }
            let mut row = vec![
                m.name_any(),
                m.namespace().unwrap_or_default(),
                cond("Available"),
                cond("Degraded"),
                cond("Progressing"),
                age(m.metadata.creation_timestamp.as_ref()),
            ];
            if wide {
                row.push(st.namespace.clone().unwrap_or_else(|| "-".into()));
                row.push(
                    st.registrations
                        .iter()
                        .map(|r| r.signer_name.clone())
                        .collect::<Vec<_>>()
                        .join(","),
                );
                row.push(
                    find_condition(&st.conditions, "Available")
                        .map_or(String::new(), |c| c.message.clone()),
                );
            }
            rows.push(row);
        }
        print_table(&rows);
        eprintln!("{up}/{total} available");
        Ok(())
    })
}
