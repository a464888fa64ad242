//! `garrison certs`: what the hub's long-lived credentials are and when they expire, and how to
//! renew them, as `kubeadm certs` does. The CAs live ten years and are not renewed here (a new
//! CA is a new trust root: every agent would need a new pin); the serving certificate and the
//! admin kubeconfig live a year and are renewed in place, with new keys.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use base64::Engine;
use clap::{Args, Subcommand, ValueEnum};
use garrison_apiserver::certs::{self, Pair};

use crate::datadir::{DataDir, write_private};

/// `garrison certs` subcommands.
#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// List the hub's certificates with their expiry and the time left. Exits 1 when one has
    /// expired, so it can run from cron or a monitoring check.
    CheckExpiration(CheckArgs),
    /// Issue a new serving certificate, admin kubeconfig, or both, with new keys, valid for a
    /// year from now. Restart the hub afterwards to serve the new serving certificate.
    Renew(RenewArgs),
}

/// Arguments of `garrison certs check-expiration`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The hub's data directory.
    #[arg(long, value_name = "DIR", default_value_os_t = crate::default_data_dir())]
    pub data_dir: PathBuf,
}

/// What `garrison certs renew` renews.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewable {
    /// The API server's serving certificate (pki/serving.crt).
    Serving,
    /// The admin kubeconfig's client certificate (admin.kubeconfig).
    Admin,
    /// Both.
    All,
}

/// Arguments of `garrison certs renew`.
#[derive(Args, Debug)]
pub struct RenewArgs {
    /// What to renew.
    #[arg(value_enum)]
    pub what: Renewable,
    /// The hub's data directory.
    #[arg(long, value_name = "DIR", default_value_os_t = crate::default_data_dir())]
    pub data_dir: PathBuf,
}

/// Runs `garrison certs`.
pub fn run(cmd: CertsCommand) -> Result<()> {
    match cmd {
        CertsCommand::CheckExpiration(a) => check(a),
        CertsCommand::Renew(a) => renew(a),
    }
}

/// One certificate as shown.
struct Row {
    name: &'static str,
    file: String,
    not_after: i64,
    signed_by: &'static str,
}

/// What `certs` needs of a certificate.
struct Facts {
    /// Unix seconds.
    not_after: i64,
    /// Its DNS and IP subject alternative names.
    hosts: Vec<String>,
}

fn inspect(pem: &str, what: &str) -> Result<Facts> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("{what}: not a PEM certificate ({e})"))?;
    let cert = p
        .parse_x509()
        .map_err(|e| anyhow::anyhow!("{what}: unreadable certificate ({e})"))?;
    let mut hosts = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                x509_parser::extensions::GeneralName::DNSName(d) => hosts.push(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    let ip: Option<std::net::IpAddr> = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).ok().map(Into::into),
                        16 => <[u8; 16]>::try_from(*b).ok().map(Into::into),
                        _ => None,
                    };
                    hosts.extend(ip.map(|i| i.to_string()));
                }
                _ => {}
            }
        }
    }
    Ok(Facts {
        not_after: cert.validity().not_after.timestamp(),
        hosts,
    })
}

fn read(dir: &DataDir, file: &str) -> Result<String> {
    let p = dir.pki_file(file);
    std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))
}

/// The admin kubeconfig's client certificate, PEM.
fn admin_cert(dir: &DataDir) -> Result<String> {
    let path = dir.admin_kubeconfig();
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let kc: serde_yaml::Value = serde_yaml::from_str(&text)
        .with_context(|| format!("{} is not a kubeconfig", path.display()))?;
    let data = kc["users"][0]["user"]["client-certificate-data"]
        .as_str()
        .with_context(|| format!("{} holds no embedded client certificate", path.display()))?;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(data)
        .with_context(|| format!("{}: client-certificate-data is not base64", path.display()))?;
    Ok(String::from_utf8_lossy(&pem).into_owned())
}

fn rows(dir: &DataDir) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for (name, file, signed_by) in [
        ("hub CA", "ca.crt", "self"),
        ("client CA", "client-ca.crt", "self"),
        ("serving", "serving.crt", "hub CA"),
    ] {
        let not_after = inspect(&read(dir, file)?, file)?.not_after;
        out.push(Row {
            name,
            file: format!("pki/{file}"),
            not_after,
            signed_by,
        });
    }
    let not_after = inspect(&admin_cert(dir)?, "admin.kubeconfig")?.not_after;
    out.push(Row {
        name: "admin",
        file: "admin.kubeconfig".into(),
        not_after,
        signed_by: "client CA",
    });
    Ok(out)
}

/// The hub data directory at `path`, or a one-line error when there is none.
fn hub_dir(path: &std::path::Path) -> Result<DataDir> {
    let dir = DataDir::new(path);
    if !dir.is_initialized() {
        bail!(
            "{} holds no hub; create one with `garrison init`",
            dir.root.display()
        );
    }
    Ok(dir)
}

fn residual(secs: i64) -> String {
    if secs <= 0 {
        return "EXPIRED".into();
    }
    let days = secs / 86_400;
    if days >= 1 {
        format!("{days}d")
    } else {
        format!("{}h", secs / 3600)
    }
}

fn check(args: CheckArgs) -> Result<()> {
    let dir = hub_dir(&args.data_dir)?;
    let now = jiff::Timestamp::now().as_second();
    let rows = rows(&dir)?;
    let mut table = vec![vec![
        "CERTIFICATE".to_string(),
        "FILE".into(),
        "EXPIRES".into(),
        "RESIDUAL TIME".into(),
        "SIGNED BY".into(),
    ]];
    for r in &rows {
        table.push(vec![
            r.name.into(),
            r.file.clone(),
            jiff::Timestamp::from_second(r.not_after)
                .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default(),
            residual(r.not_after - now),
            r.signed_by.into(),
        ]);
    }
    crate::admin::print_table(&table);
    let expired: Vec<&str> = rows
        .iter()
        .filter(|r| r.not_after <= now)
        .map(|r| r.name)
        .collect();
    let soon: Vec<&str> = rows
        .iter()
        .filter(|r| r.not_after > now && r.not_after - now < 30 * 86_400)
        .map(|r| r.name)
        .collect();
    if !soon.is_empty() {
        println!(
            "\nexpiring within 30 days: {}; renew with `garrison certs renew all`",
            soon.join(", ")
        );
    }
    if !expired.is_empty() {
        bail!("expired: {}", expired.join(", "));
    }
    Ok(())
}

fn ca(dir: &DataDir, cert: &str, key: &str) -> Result<Pair> {
    Ok(Pair {
        cert_pem: read(dir, cert)?,
        key_pem: read(dir, key)?,
    })
}

fn renew(args: RenewArgs) -> Result<()> {
    let dir = hub_dir(&args.data_dir)?;
    let settings = crate::init::HubSettings::load(&dir)?;
    if matches!(args.what, Renewable::Serving | Renewable::All) {
        let hub_ca = ca(&dir, "ca.crt", "ca.key")?;
        // The same names as before, so every client that reached the hub still does.
        let mut hosts = inspect(&read(&dir, "serving.crt")?, "serving.crt")?.hosts;
        let mut seen = std::collections::BTreeSet::new();
        hosts.retain(|h| seen.insert(h.clone()));
        if hosts.is_empty() {
            bail!("pki/serving.crt names no host; run `garrison init --force` to start over");
        }
        let serving = certs::new_serving(&hub_ca, &hosts, crate::init::SERVING_LIFETIME)?;
        // Both written aside first, then swapped in, so a failure leaves the old pair whole.
        write_private(&dir.pki_file("serving.key.new"), serving.key_pem.as_bytes())?;
        write_private(
            &dir.pki_file("serving.crt.new"),
            format!("{}{}", serving.cert_pem, hub_ca.cert_pem).as_bytes(),
        )?;
        for f in ["serving.key", "serving.crt"] {
            std::fs::rename(dir.pki_file(&format!("{f}.new")), dir.pki_file(f))
                .with_context(|| format!("cannot replace pki/{f}"))?;
        }
        let not_after = inspect(&serving.cert_pem, "serving")?.not_after;
        println!(
            "renewed the serving certificate for {} until {}; restart the hub to serve it",
            hosts.join(", "),
            jiff::Timestamp::from_second(not_after)
                .map(|t| t.to_string())
                .unwrap_or_default()
        );
    }
    if matches!(args.what, Renewable::Admin | Renewable::All) {
        let client_ca = ca(&dir, "client-ca.crt", "client-ca.key")?;
        let admin = certs::new_client(
            &client_ca,
            crate::init::ADMIN_USER,
            &["system:masters"],
            crate::init::ADMIN_LIFETIME,
        )?;
        let kc = garrison_apiserver::kubeconfig::with_client_cert(
            "garrison",
            &settings.external_url,
            &read(&dir, "ca.crt")?,
            crate::init::ADMIN_USER,
            &admin.cert_pem,
            &admin.key_pem,
        );
        write_private(&dir.admin_kubeconfig(), kc.as_bytes())?;
        let not_after = inspect(&admin.cert_pem, "admin")?.not_after;
        println!(
            "renewed {} until {}; it works at once",
            dir.admin_kubeconfig().display(),
            jiff::Timestamp::from_second(not_after)
                .map(|t| t.to_string())
                .unwrap_or_default()
        );
    }
    Ok(())
}
