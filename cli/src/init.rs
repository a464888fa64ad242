//! `garrison init`: create a hub's PKI, admin kubeconfig and settings.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use time::Duration;

use crate::datadir::{DataDir, write_private};
use garrison_apiserver::certs;
use garrison_apiserver::kubeconfig;

/// Arguments of `garrison init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// Directory for the hub's store, PKI and kubeconfig (created, mode 0700).
    #[arg(long, value_name = "DIR", default_value_os_t = crate::default_data_dir())]
    pub data_dir: PathBuf,
    /// Address the hub listens on. Use 0.0.0.0:6443 to accept remote clusters.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// URL clients use to reach the hub; its host goes into the serving certificate.
    /// Defaults to https://<listen address>.
    #[arg(long, value_name = "URL")]
    pub external_url: Option<String>,
    /// Replace an existing hub in DIR. Its CAs are regenerated, so every issued credential stops working.
    #[arg(long)]
    pub force: bool,
    /// Lifetime of the first bootstrap token (1m to 7d). Make more with `garrison token create`.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = crate::token::parse_ttl)]
    pub token_ttl: u64,
}

/// Settings `init` writes for `hub` to read.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HubSettings {
    /// Listen address.
    pub listen: SocketAddr,
    /// External URL.
    pub external_url: String,
}

impl HubSettings {
    /// Reads `hub.json`.
    pub fn load(dir: &DataDir) -> Result<Self> {
        let raw = std::fs::read(dir.config())
            .with_context(|| format!("cannot read {}", dir.config().display()))?;
        serde_json::from_slice(&raw)
            .with_context(|| format!("{} is not valid hub settings", dir.config().display()))
    }
}

/// Lifetime of the CAs.
const CA_LIFETIME: Duration = Duration::days(3650);
/// Lifetime of the serving certificate.
pub const SERVING_LIFETIME: Duration = Duration::days(365);
/// Lifetime of the admin client certificate.
pub const ADMIN_LIFETIME: Duration = Duration::days(365);
/// The admin user name.
pub const ADMIN_USER: &str = "garrison-admin";

fn host_of(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("https://")
        .with_context(|| format!("--external-url {url:?} must start with https://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default().to_string()
    } else {
        authority
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(authority)
            .to_string()
    };
    if host.is_empty() {
        bail!("--external-url {url:?} has no host");
    }
    Ok(host)
}

/// Runs `garrison init`.
pub fn run(args: InitArgs) -> Result<()> {
    let dir = DataDir::new(&args.data_dir);
    if dir.is_initialized() && !args.force {
        bail!(
            "{} already holds a hub; use --force to replace it (this revokes every credential it issued)",
            dir.root.display()
        );
    }
    dir.create()?;
    let _lock = dir.lock("initialising it")?;
    let external_url = args
        .external_url
        .clone()
        .unwrap_or_else(|| format!("https://{}", args.listen));
    let host = host_of(&external_url)?;
    let mut hosts = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !args.listen.ip().is_unspecified() {
        hosts.push(args.listen.ip().to_string());
    }
    if !hosts.contains(&host) {
        hosts.push(host);
    }
    let hub_ca = certs::new_ca("garrison-hub-ca", CA_LIFETIME)?;
    let client_ca = certs::new_ca("garrison-client-ca", CA_LIFETIME)?;
    let serving = certs::new_serving(&hub_ca, &hosts, SERVING_LIFETIME)?;
    let admin = certs::new_client(&client_ca, ADMIN_USER, &["system:masters"], ADMIN_LIFETIME)?;
    write_private(&dir.pki_file("ca.crt"), hub_ca.cert_pem.as_bytes())?;
    write_private(&dir.pki_file("ca.key"), hub_ca.key_pem.as_bytes())?;
    write_private(
        &dir.pki_file("client-ca.crt"),
        client_ca.cert_pem.as_bytes(),
    )?;
    write_private(&dir.pki_file("client-ca.key"), client_ca.key_pem.as_bytes())?;
    write_private(
        &dir.pki_file("serving.crt"),
        format!("{}{}", serving.cert_pem, hub_ca.cert_pem).as_bytes(),
    )?;
    write_private(&dir.pki_file("serving.key"), serving.key_pem.as_bytes())?;
    crate::hub::service_account_key(&dir)?;
    let kc = kubeconfig::with_client_cert(
        "garrison",
        &external_url,
        &hub_ca.cert_pem,
        ADMIN_USER,
        &admin.cert_pem,
        &admin.key_pem,
    );
    write_private(&dir.admin_kubeconfig(), kc.as_bytes())?;
    if args.force && dir.store().exists() {
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", dir.store().display()));
            if p.exists() {
                std::fs::remove_file(&p)
                    .with_context(|| format!("cannot remove old store {}", p.display()))?;
            }
        }
    }
    let settings = HubSettings {
        listen: args.listen,
        external_url: external_url.clone(),
    };
    write_private(
        &dir.config(),
        serde_json::to_string_pretty(&settings)?.as_bytes(),
    )?;
    // The first bootstrap token goes straight into the new store.
    let token = crate::token::new_token(args.token_ttl, "created by garrison init")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let cfg = garrison_apiserver::server::ServerConfig {
            store_path: Some(dir.store()),
            ..Default::default()
        };
        let server = garrison_apiserver::server::Server::build(&cfg)?;
        let client = server.local_client(garrison_apiserver::bootstrap::system_user());
        crate::token::store_token(client, &token).await
    })?;
    let pin = crate::token::ca_pin(&dir)?;
    println!("Initialised a Garrison hub in {}", dir.root.display());
    println!("  hub CA:           {}", dir.pki_file("ca.crt").display());
    println!("  admin kubeconfig: {}", dir.admin_kubeconfig().display());
    println!("  API URL:          {external_url}");
    println!();
    println!("Start it with:");
    println!("  garrison hub --data-dir {}", dir.root.display());
    println!("then, in another terminal:");
    println!(
        "  kubectl --kubeconfig {} get namespaces",
        dir.admin_kubeconfig().display()
    );
    println!();
    crate::token::print_join(&external_url, &token, &pin);
    println!("and accept it on the hub with:");
    println!("  garrison accept NAME --data-dir {}", dir.root.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_taken_from_external_urls() {
        assert_eq!(
            host_of("https://hub.example.com:6443").unwrap(),
            "hub.example.com"
        );
        assert_eq!(host_of("https://10.0.0.1").unwrap(), "10.0.0.1");
        assert_eq!(host_of("https://[::1]:6443/").unwrap(), "::1");
        assert!(host_of("http://hub:6443").is_err());
        assert!(host_of("https://:6443").is_err());
    }
}
