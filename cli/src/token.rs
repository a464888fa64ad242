//! `garrison token create`: a bootstrap token for joining clusters, stored on the hub as a
//! `bootstrap.kubernetes.io/token` Secret in `kube-system`. Tokens always expire.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use base64::Engine;
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::datadir::DataDir;

/// Arguments of `garrison token`.
#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Create a bootstrap token on the running hub and print it with the hub CA's pin.
    Create(CreateArgs),
}

#[derive(Args, Debug)]
struct CreateArgs {
    /// The hub's data directory (for its admin kubeconfig and CA).
    #[arg(long, value_name = "DIR", default_value_os_t = crate::default_data_dir())]
    data_dir: PathBuf,
    /// How long the token is valid: a number and a unit (s, m, h, d), from 1m to 7d.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_ttl)]
    ttl: u64,
    /// A description stored with the token.
    #[arg(
        long,
        value_name = "TEXT",
        default_value = "created by garrison token create"
    )]
    description: String,
}

/// Shortest token lifetime, in seconds.
const MIN_TTL: u64 = 60;
/// Longest token lifetime, in seconds: tokens never live longer than a week.
const MAX_TTL: u64 = 7 * 86_400;

/// Parses `90s`, `30m`, `24h`, `2d` into seconds, within [1m, 7d].
pub fn parse_ttl(s: &str) -> Result<u64, String> {
    parse_duration(s, MIN_TTL, MAX_TTL, "1m to 7d (tokens always expire)")
}

/// Parses a duration written as a whole number and a unit (s, m, h, d) into seconds, within
/// `[min, max]`; `range` names the bounds in the error.
pub fn parse_duration(s: &str, min: u64, max: u64, range: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} has no unit; use s, m, h or d (e.g. 24h)"))?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} does not start with a whole number"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("unknown unit {other:?}; use s, m, h or d")),
    };
    let secs = n.checked_mul(mult).ok_or("duration too large")?;
    if !(min..=max).contains(&secs) {
        return Err(format!("{s} is outside the allowed range of {range}"));
    }
    Ok(secs)
}

/// Runs `garrison token`.
pub fn run(args: TokenArgs) -> Result<()> {
    match args.command {
        TokenCommand::Create(a) => create(a),
    }
}

/// A new bootstrap token and the Secret that stores it.
pub struct NewToken {
    /// `<id>.<secret>`.
    pub token: String,
    /// RFC 3339 expiry.
    pub expiration: String,
    /// The Secret to create in `kube-system`.
    pub secret: Secret,
}

/// Makes a random token valid for `ttl` seconds, in the `system:bootstrappers:managedcluster`
/// group, usable to authenticate and to sign the hub's `cluster-info` for discovery.
pub fn new_token(ttl: u64, description: &str) -> Result<NewToken> {
    let id = garrison_pki::random_alphanumeric(6);
    let secret = garrison_pki::random_alphanumeric(16);
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(ttl as i64);
    let expiration = expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let obj: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
        "data": {
            "token-id": b64(&id), "token-secret": b64(&secret), "expiration": b64(&expiration),
            "usage-bootstrap-authentication": b64("true"),
            "usage-bootstrap-signing": b64("true"),
            "auth-extra-groups": b64(garrison_hub::registration::rbac::BOOTSTRAP_GROUP),
            "description": b64(description),
        }
    }))?;
    Ok(NewToken {
        token: format!("{id}.{secret}"),
        expiration,
        secret: obj,
    })
}

/// Stores a token's Secret on the hub.
pub async fn store_token(client: kube::Client, token: &NewToken) -> Result<()> {
    let api: Api<Secret> = Api::namespaced(client, "kube-system");
    match api.create(&PostParams::default(), &token.secret).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) => bail!("the hub refused the token: {}", s.message),
        Err(e) => Err(crate::admin::unreachable(e)),
    }
}

/// The hub CA's pin, from the data directory.
pub fn ca_pin(dir: &DataDir) -> Result<String> {
    let ca_pem = std::fs::read_to_string(dir.pki_file("ca.crt"))
        .with_context(|| format!("cannot read {}", dir.pki_file("ca.crt").display()))?;
    garrison_pki::ca::spki_pin(&ca_pem).context("the hub CA pki/ca.crt is not a valid certificate")
}

/// Prints a token, its expiry and the join command that uses it.
pub fn print_join(url: &str, token: &NewToken, pin: &str) {
    println!("token:         {}", token.token);
    println!("ca-cert-hash:  {pin}");
    println!("expires:       {}", token.expiration);
    println!();
    println!("Join a cluster with (choose its name, and --simulated or --kubeconfig FILE):");
    println!(
        "  garrison join --hub {url} --token {} --ca-cert-hash {pin} --cluster-name NAME --data-dir NAME-agent --simulated",
        token.token
    );
}

fn create(args: CreateArgs) -> Result<()> {
    let dir = DataDir::new(&args.data_dir);
    dir.require_initialized()?;
    let pin = ca_pin(&dir)?;
    let token = new_token(args.ttl, &args.description)?;
    let url = crate::admin::runtime()?.block_on(async {
        let (client, url) = crate::admin::client(&crate::admin::Target::dir(&dir)).await?;
        store_token(client, &token).await?;
        anyhow::Ok(url)
    })?;
    print_join(&url, &token, &pin);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_parse_within_bounds() {
        assert_eq!(parse_ttl("24h").unwrap(), 86_400);
        assert_eq!(parse_ttl("90s").unwrap(), 90);
        assert_eq!(parse_ttl("7d").unwrap(), 7 * 86_400);
        for bad in [
            "",
            "0h",
            "59s",
            "8d",
            "1w",
            "h",
            "12",
            "-1h",
            "99999999999999999999d",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn token_parts_have_the_bootstrap_token_shape() {
        for _ in 0..100 {
            let id = garrison_pki::random_alphanumeric(6);
            let secret = garrison_pki::random_alphanumeric(16);
            assert!(id.len() == 6 && secret.len() == 16);
            assert!(
                format!("{id}{secret}")
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            );
        }
    }
}
