//! `garrison image`: what security admins check about images before any cluster runs them.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use garrison_supply_chain::check::{Cache, NoMatch, check_image};
use garrison_supply_chain::policy::Policies;
use garrison_supply_chain::registry::{Registry, RegistryConfig};
use serde_json::Value;

use crate::admin::runtime;

/// Image commands.
#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Verify an image's cosign signatures against image policies, as the work agent does
    /// before it applies a work.
    ///
    /// Reads ClusterImagePolicies (`policy.sigstore.dev/v1beta1`) and the TrustRoots they name
    /// (`v1alpha1`, `sigstoreKeys`) from --policy, resolves IMAGE's tag to a digest in its
    /// registry, reads the signatures of that digest, and prints each covering policy's verdict:
    /// the authorities satisfied, or every authority not satisfied and why. On success prints
    /// the reference pinned to the verified digest, which is what the agent applies. Exits
    /// non-zero when the image is refused, as `cosign verify` does.
    Verify(VerifyArgs),
}

/// Arguments of `image verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The image, as a container spec names it (`registry/repository:tag` or `@sha256:…`).
    pub image: String,
    /// A YAML file of ClusterImagePolicies and TrustRoots (several documents allowed).
    /// Repeatable.
    #[arg(long = "policy", value_name = "FILE", required = true)]
    pub policies: Vec<PathBuf>,
    /// PEM CA certificates trusted for registries, besides the system's. Repeatable.
    #[arg(long = "registry-ca", value_name = "FILE")]
    pub registry_cas: Vec<PathBuf>,
    /// A pull secret's `.dockerconfigjson` with registry credentials. Repeatable.
    #[arg(long = "pull-secret", value_name = "FILE")]
    pub pull_secrets: Vec<PathBuf>,
    /// What to do with an image no policy covers: deny (upstream's default), warn or allow.
    #[arg(long, default_value = "deny", value_name = "ACTION")]
    pub no_match: NoMatch,
    /// How long each registry request may take, in seconds.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub timeout: u64,
}

/// Runs an image command.
pub fn run(cmd: ImageCommand) -> Result<()> {
    match cmd {
        ImageCommand::Verify(a) => verify(a),
    }
}

/// Every YAML document of `path`, as JSON.
fn documents(path: &PathBuf) -> Result<Vec<Value>> {
    use serde::Deserialize;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = vec![];
    for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let v = Value::deserialize(doc)
            .with_context(|| format!("{}: document {} is not valid YAML", path.display(), i + 1))?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

fn verify(args: VerifyArgs) -> Result<()> {
    let mut objects = vec![];
    for p in &args.policies {
        objects.extend(documents(p)?);
    }
    let policies = Policies::load(&objects);
    if policies.is_empty() {
        bail!(
            "no ClusterImagePolicy (policy.sigstore.dev/v1beta1) in {}",
            args.policies
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut config = RegistryConfig {
        timeout: Duration::from_secs(args.timeout.max(1)),
        ..Default::default()
    };
    for p in &args.registry_cas {
        let pem = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        config
            .add_ca_pem(&pem)
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    }
    for p in &args.pull_secrets {
        let json = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        config
            .add_docker_config(&json)
            .map_err(|e| anyhow::anyhow!("{}: not a .dockerconfigjson: {e}", p.display()))?;
    }
    for p in &policies.policies {
        config
            .insecure
            .extend(p.insecure_registries.iter().cloned());
    }
    let registry = Registry::new(config).map_err(|e| anyhow::anyhow!(e))?;
    let cache = Cache::new(1, Duration::from_secs(1));
    let decision = runtime()?.block_on(check_image(
        &policies,
        &registry,
        &cache,
        &args.image,
        args.no_match,
    ));
    println!("image   {}", decision.image);
    if let Some(d) = &decision.digest {
        println!("digest  {d}");
    }
    for v in &decision.verdicts {
        let mark = if v.passed {
            "PASS"
        } else if v.warn_only {
            "WARN"
        } else {
            "FAIL"
        };
        println!("{mark}    {}", v.summary());
    }
    for r in decision.reasons.iter().filter(|r| {
        !decision
            .verdicts
            .iter()
            .any(|v| !v.passed && v.summary() == **r)
    }) {
        println!("note    {r}");
    }
    if decision.refused {
        bail!("{} is refused", decision.image);
    }
    if let Some(p) = &decision.pinned {
        println!("verified: {p}");
    } else {
        println!("allowed without verification: no image policy covers it");
    }
    Ok(())
}

/// Arguments of `get imagepolicies`.
#[derive(Args, Debug)]
pub struct GetImagePoliciesArgs {
    /// Only the policies of this namespace.
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Every namespace's (the default without `-n`; accepted as kubectl accepts it).
    // Refused beside `-n` by clap, so no code needs to read it.
    #[arg(long, short = 'A', conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Output format; `wide` adds each cluster's state.
    #[arg(long, short = 'o', value_enum, default_value_t = crate::admin::Output::Table)]
    pub output: crate::admin::Output,
    #[command(flatten)]
    target: crate::admin::Target,
}

/// `garrison get imagepolicies`: the ClusterImagePolicies carried by the hub's policies, what
/// they cover and require, and on how many clusters they are enforced.
pub fn get(args: GetImagePoliciesArgs) -> Result<()> {
    use crate::admin::{Output, client, print_table, unreachable};
    use garrison_api::policy::ROOT_POLICY_LABEL;
    use garrison_api::policy::v1::Policy;
    use kube::ResourceExt;
    use kube::api::{Api, ListParams};
    runtime()?.block_on(async {
        let (client, _) = client(&args.target).await?;
        let roots: Api<Policy> = match &args.namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let mut items = roots
            .list(&ListParams::default().labels(&format!("!{ROOT_POLICY_LABEL}")))
            .await
            .map_err(unreachable)?
            .items;
        items.sort_by_key(|p| (p.namespace().unwrap_or_default(), p.name_any()));
        let replicas = Api::<Policy>::all(client.clone())
            .list(&ListParams::default().labels(ROOT_POLICY_LABEL))
            .await
            .map_err(unreachable)?
            .items;
        let mut found = vec![];
        for p in &items {
            let root = format!("{}.{}", p.namespace().unwrap_or_default(), p.name_any());
            for t in &p.spec.policy_templates {
                let o = &t.object_definition;
                if !garrison_supply_chain::policy::is_cluster_image_policy(o) {
                    continue;
                }
                let name = o["metadata"]["name"].as_str().unwrap_or_default().to_string();
                let mut clusters = std::collections::BTreeMap::new();
                for r in replicas.iter().filter(|r| r.name_any() == root) {
                    let state = r
                        .status
                        .as_ref()
                        .and_then(|s| {
                            s.details.iter().find(|d| {
                                d.template_meta.as_ref().is_some_and(|m| {
                                    m["kind"] == "ClusterImagePolicy" && m["name"] == name.as_str()
                                })
                            })
                        })
                        .and_then(|d| d.compliant.clone())
                        .unwrap_or_else(|| "Pending".into());
                    clusters.insert(r.namespace().unwrap_or_default(), state);
                }
                let spec = &o["spec"];
                let globs: Vec<&str> = spec["images"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|i| i["glob"].as_str()).collect())
                    .unwrap_or_default();
                let authorities: Vec<String> = spec["authorities"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .enumerate()
                            .map(|(i, a)| {
                                let kind = ["key", "keyless", "static"]
                                    .into_iter()
                                    .find(|k| !a[k].is_null())
                                    .unwrap_or("?");
                                let name = a["name"].as_str().map_or_else(|| format!("authority-{i}"), String::from);
                                let attested = a["attestations"].as_array().map_or(0, Vec::len);
                                if attested > 0 {
                                    format!("{name}({kind}, {attested} attestations)")
                                } else {
                                    format!("{name}({kind})")
                                }
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                found.push(serde_json::json!({
                    "namespace": p.namespace().unwrap_or_default(),
                    "policy": p.name_any(),
                    "name": name,
                    "images": globs,
                    "authorities": authorities,
                    "threshold": spec["threshold"].as_u64().unwrap_or(1),
                    "mode": spec["mode"].as_str().unwrap_or("enforce"),
                    "disabled": p.spec.disabled,
                    "clusters": clusters,
                }));
            }
        }
        match args.output {
            Output::Json => {
                println!("{}", serde_json::to_string_pretty(&found)?);
                return Ok(());
            }
            Output::Yaml => {
                print!("{}", serde_yaml::to_string(&found)?);
                return Ok(());
            }
            _ => {}
        }
        if found.is_empty() {
            eprintln!(
                "No image policies. Put a ClusterImagePolicy (policy.sigstore.dev/v1beta1) in a Policy's policy-templates and bind it with a PlacementBinding."
            );
            return Ok(());
        }
        let wide = args.output == Output::Wide;
        let mut header = vec!["NAMESPACE", "POLICY", "IMAGE POLICY", "IMAGES", "AUTHORITIES", "NEEDS", "MODE", "ENFORCED"];
        if wide {
            header.push("PER CLUSTER");
        }
        let mut rows = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
        for f in &found {
            let clusters = f["clusters"].as_object().cloned().unwrap_or_default();
            let enforced = clusters.values().filter(|s| *s == "Compliant").count();
            let list = |k: &str| {
                f[k].as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
                    .unwrap_or_default()
            };
            let mut row = vec![
                f["namespace"].as_str().unwrap_or_default().to_string(),
                f["policy"].as_str().unwrap_or_default().to_string(),
                f["name"].as_str().unwrap_or_default().to_string(),
                list("images"),
                list("authorities"),
                format!("{}", f["threshold"]),
                if f["disabled"] == true { "disabled".into() } else { f["mode"].as_str().unwrap_or_default().to_string() },
                format!("{enforced}/{}", clusters.len()),
            ];
            if wide {
                let per: Vec<String> = clusters
                    .iter()
                    .map(|(c, s)| format!("{c}={}", s.as_str().unwrap_or_default()))
                    .collect();
                row.push(if per.is_empty() { "-".into() } else { per.join(",") });
            }
            rows.push(row);
        }
        print_table(&rows);
        Ok(())
    })
}
