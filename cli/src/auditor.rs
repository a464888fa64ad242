//! `garrison auditor token|revoke`: short-lived, read-only credentials for auditors.
//!
//! An auditor is a ServiceAccount in `garrison-auditors`, bound to a ClusterRole of its own
//! that grants `get` on ManagedClusters (all of them, or the ones named) and nothing else:
//! exactly what the compliance history's API and web view ask, which show an auditor only
//! the clusters it may get. Tokens come from the TokenRequest API, so they expire on their
//! own and die at once when the auditor is revoked.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::admin::{Target, client, runtime, unreachable};

/// Where auditors' ServiceAccounts live.
pub const NAMESPACE: &str = "garrison-auditors";
const MANAGER: &str = "garrison-auditor";

/// `garrison auditor`.
#[derive(Subcommand, Debug)]
pub enum AuditorCommand {
    /// Issue a short-lived read-only token for the compliance web view (https://HUB/ui/) and
    /// API. Prints the token alone on stdout; what it grants goes to stderr.
    ///
    /// The auditor (a ServiceAccount in garrison-auditors) is created first: it may get the
    /// ManagedClusters named by --cluster, or all of them, and nothing else. Issuing again for
    /// the same auditor with other --cluster values is refused without --update, since it
    /// changes what the auditor's earlier tokens see too.
    Token(TokenArgs),
    /// Revoke an auditor: its ServiceAccount and role are deleted, so every token it was given
    /// stops working at once.
    Revoke(RevokeArgs),
}

/// Arguments of `auditor token`.
#[derive(Args, Debug)]
pub struct TokenArgs {
    /// The auditor's name (a DNS label), as audit logs will show it:
    /// system:serviceaccount:garrison-auditors:NAME.
    #[arg(long, value_name = "NAME", default_value = "auditor", value_parser = dns_label)]
    pub name: String,
    /// How long the token is valid: a number and a unit (s, m, h, d), from 10m to 24h.
    #[arg(long, value_name = "DURATION", default_value = "8h", value_parser = parse_ttl)]
    pub ttl: u64,
    /// Let the auditor see only these clusters (repeat, or separate with commas). Without it,
    /// the auditor sees every cluster and may verify and export the whole history.
    #[arg(long = "cluster", value_name = "CLUSTER", value_delimiter = ',', value_parser = cluster_name)]
    pub clusters: Vec<String>,
    /// Change an existing auditor's clusters to the ones given now (its earlier tokens see
    /// the new set).
    #[arg(long)]
    pub update: bool,
    #[command(flatten)]
    target: Target,
}

/// Arguments of `auditor revoke`.
#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// The auditor to revoke.
    #[arg(value_name = "NAME", value_parser = dns_label)]
    pub name: String,
    #[command(flatten)]
    target: Target,
}

fn parse_ttl(s: &str) -> Result<u64, String> {
    crate::token::parse_duration(
        s,
        600,
        86_400,
        "10m to 24h (auditor tokens are short-lived)",
    )
}

fn dns_label(s: &str) -> Result<String, String> {
    if garrison_apiserver::validation::is_dns_label(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a valid name: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
        ))
    }
}

fn cluster_name(s: &str) -> Result<String, String> {
    if garrison_apiserver::validation::is_dns_subdomain(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a valid cluster name: lowercase letters, digits, '-' and '.', at most 253"
        ))
    }
}

/// The ClusterRole and binding's name for auditor `name`.
fn role_name(name: &str) -> String {
    format!("garrison:auditor:{name}")
}

/// What auditor `name` may do: get ManagedClusters, the named ones or all.
fn role(name: &str, clusters: &[String]) -> Value {
    let rule = if clusters.is_empty() {
        json!({"apiGroups": ["cluster.open-cluster-management.io"],
            "resources": ["managedclusters"], "verbs": ["get"]})
    } else {
        json!({"apiGroups": ["cluster.open-cluster-management.io"],
            "resources": ["managedclusters"], "resourceNames": clusters, "verbs": ["get"]})
    };
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": role_name(name), "labels": {"garrison.io/auditor": name}},
        "rules": [rule]})
}

/// Runs `garrison auditor`.
pub fn run(cmd: AuditorCommand) -> Result<()> {
    runtime()?.block_on(async {
        match cmd {
            AuditorCommand::Token(a) => token(a).await,
            AuditorCommand::Revoke(a) => revoke(a).await,
        }
    })
}

async fn apply<K>(api: &Api<K>, name: &str, v: Value) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&v),
    )
    .await
    .map_err(unreachable)
    .with_context(|| format!("cannot write {name}"))?;
    Ok(())
}

async fn token(a: TokenArgs) -> Result<()> {
    let (hub, url) = client(&a.target).await?;
    let name = &a.name;
    let wanted = role(name, &a.clusters);
    let roles = Api::<ClusterRole>::all(hub.clone());
    if let Some(existing) = roles.get_opt(&role_name(name)).await.map_err(unreachable)? {
        let had = serde_json::to_value(&existing.rules)?;
        if had != wanted["rules"] && !a.update {
            bail!(
                "auditor {name} exists and sees {}; issuing for {} would change what its earlier tokens see: pass --update to change it, or choose another --name",
                scope(&existing),
                if a.clusters.is_empty() {
                    "every cluster".to_string()
                } else {
                    format!("clusters {}", a.clusters.join(", "))
                }
            );
        }
    }
    apply(
        &Api::<Namespace>::all(hub.clone()),
        NAMESPACE,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
    )
    .await?;
    apply(&roles, &role_name(name), wanted).await?;
    apply(
        &Api::<ServiceAccount>::namespaced(hub.clone(), NAMESPACE),
        name,
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": NAMESPACE,
                "labels": {"garrison.io/auditor": name}}}),
    )
    .await?;
    apply(
        &Api::<ClusterRoleBinding>::all(hub.clone()),
        &role_name(name),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": role_name(name), "labels": {"garrison.io/auditor": name}},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                "name": role_name(name)},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]}),
    )
    .await?;
    let request = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"expirationSeconds": a.ttl}});
    let answer: Value = Api::<ServiceAccount>::namespaced(hub, NAMESPACE)
        .create_subresource("token", name, &PostParams::default(), &request)
        .await
        .map_err(unreachable)
        .context("cannot issue the token")?;
    let Some(token) = answer["status"]["token"].as_str() else {
        bail!("the hub answered the token request without a token");
    };
    let expires = answer["status"]["expirationTimestamp"]
        .as_str()
        .unwrap_or("unknown");
    let sees = if a.clusters.is_empty() {
        "every cluster".to_string()
    } else {
        format!("clusters {}", a.clusters.join(", "))
    };
    eprintln!(
        "auditor {name} (system:serviceaccount:{NAMESPACE}:{name}) may read the compliance history of {sees}; the token expires at {expires}"
    );
    eprintln!(
        "sign in at {url}/ui/login, or send it as a bearer token; revoke with `garrison auditor revoke {name}`"
    );
    println!("{token}");
    Ok(())
}

async fn revoke(a: RevokeArgs) -> Result<()> {
    let (hub, _) = client(&a.target).await?;
    let name = &a.name;
    let dp = DeleteParams::default();
    let mut found = false;
    // The account first: its tokens stop working with it.
    found |= gone(
        Api::<ServiceAccount>::namespaced(hub.clone(), NAMESPACE)
            .delete(name, &dp)
            .await,
        "the auditor's ServiceAccount",
    )?;
    found |= gone(
        Api::<ClusterRoleBinding>::all(hub.clone())
            .delete(&role_name(name), &dp)
            .await,
        "the auditor's ClusterRoleBinding",
    )?;
    found |= gone(
        Api::<ClusterRole>::all(hub)
            .delete(&role_name(name), &dp)
            .await,
        "the auditor's ClusterRole",
    )?;
    if !found {
        bail!("there is no auditor {name}");
    }
    println!("auditor {name} revoked: its tokens no longer authenticate");
    Ok(())
}

/// What an auditor's ClusterRole lets it see, in words.
fn scope(role: &ClusterRole) -> String {
    let names: Vec<String> = role
        .rules
        .iter()
        .flatten()
        .flat_map(|r| r.resource_names.iter().flatten().cloned())
        .collect();
    if names.is_empty() {
        "every cluster".into()
    } else {
        format!("clusters {}", names.join(", "))
    }
}

/// Whether a delete removed something (`false`: it was not there).
fn gone<T>(r: Result<T, kube::Error>, what: &str) -> Result<bool> {
    match r {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(unreachable(e)).with_context(|| format!("cannot delete {what}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_auditor_may_get_clusters_and_nothing_else() {
        let all = role("ann", &[]);
        assert_eq!(all["rules"].as_array().unwrap().len(), 1);
        assert_eq!(all["rules"][0]["resources"], json!(["managedclusters"]));
        assert_eq!(all["rules"][0]["verbs"], json!(["get"]));
        let some = role("ann", &["c1".into()]);
        assert_eq!(some["rules"][0]["resourceNames"], json!(["c1"]));
        assert_eq!(some["rules"][0]["verbs"], json!(["get"]));
    }

    #[test]
    fn names_and_lifetimes_are_checked() {
        assert!(dns_label("ann-1").is_ok());
        for bad in ["", "Ann", "-a", "a-", "a_b", &"a".repeat(64)] {
            assert!(dns_label(bad).is_err(), "{bad}");
        }
        assert!(cluster_name("prod.eu-1").is_ok());
        assert!(cluster_name("Prod").is_err());
        assert_eq!(parse_ttl("8h"), Ok(28_800));
        assert!(parse_ttl("5m").is_err());
        assert!(parse_ttl("2d").is_err());
    }
}
