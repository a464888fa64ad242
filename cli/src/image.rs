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
