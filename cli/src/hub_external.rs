//! `garrison hub --kubeconfig FILE`: the hub's controllers and admission webhooks next to an
//! existing Kubernetes API server, one active replica elected with a Lease.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::hub::HubArgs;

/// The namespace the hub's Lease (and, installed in a cluster, the hub itself) lives in.
pub const HUB_NAMESPACE: &str = "open-cluster-management-hub";
/// The Lease replicas elect their leader with.
pub const LEASE_NAME: &str = "garrison-hub";
/// Field manager of what the hub installs.
const MANAGER: &str = "garrison-hub";

/// Flags that apply with `--kubeconfig` only.
#[derive(Args, Debug, Default)]
pub struct ExternalArgs {
    /// With --kubeconfig: where the admission webhooks listen. Port 0 picks a free port; the
    /// leader registers whatever address it got.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub webhook_listen: Option<SocketAddr>,
    /// With --kubeconfig, inside a cluster: the Service (NAMESPACE/NAME:PORT) kube-apiserver
    /// reaches the webhooks through. Without it the webhooks are registered by URL.
    #[arg(long, value_name = "NS/NAME:PORT", value_parser = parse_service)]
    pub webhook_service: Option<(String, String, u16)>,
    /// With --kubeconfig: how long the leader's Lease is good for after each renewal. Another
    /// replica takes over at most this long after the leader stops renewing (plus one retry).
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_secs)]
    pub leader_lease_duration: Option<u64>,
    /// With --kubeconfig: how long the leader keeps failing to renew before it stops (must be
    /// shorter than the lease duration).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_secs)]
    pub leader_renew_deadline: Option<u64>,
    /// With --kubeconfig: time between attempts to take or renew the Lease.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_secs)]
    pub leader_retry_period: Option<u64>,
}

fn parse_secs(s: &str) -> Result<u64, String> {
    crate::token::parse_duration(s, 1, 3600, "1s to 1h")
}

fn parse_service(s: &str) -> Result<(String, String, u16), String> {
    let bad = || {
        format!(
            "{s:?} is not NAMESPACE/NAME:PORT (for example open-cluster-management-hub/garrison-hub-webhook:443)"
        )
    };
    let (ns, rest) = s.split_once('/').ok_or_else(bad)?;
    let (name, port) = rest.split_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if ns.is_empty() || name.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((ns.into(), name.into(), port))
}

/// This replica's name in the election: host name, process id and a random suffix.
fn identity() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "garrison-hub".into());
    format!(
        "{host}_{}_{}",
        std::process::id(),
        garrison_pki::random_alphanumeric(6).to_lowercase()
    )
}

/// Runs the hub against the API server its `--kubeconfig` reaches, or the one it runs in.
pub fn run(args: &HubArgs) -> Result<()> {
    let _traces = crate::hub::init_logging(
        args.log_format,
        "garrison-hub",
        args.otlp_endpoint.as_deref(),
    )?;
    let ext = &args.external;
    let mut election = garrison_hub::leader::Config::new(HUB_NAMESPACE, LEASE_NAME, &identity());
    election.lease_duration = Duration::from_secs(ext.leader_lease_duration.unwrap_or(15));
    election.renew_deadline = Duration::from_secs(ext.leader_renew_deadline.unwrap_or(10));
    election.retry_period = Duration::from_secs(ext.leader_retry_period.unwrap_or(2));
    election.validate().map_err(anyhow::Error::msg)?;
    garrison_governance::history::store::History::check(args.history_database.as_deref())
        .map_err(|e| anyhow::anyhow!(e))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let (client, source) = match &args.kubeconfig {
            Some(path) => (
                garrison_apiserver::client::client_from_kubeconfig(path).await?,
                path.display().to_string(),
            ),
            None => {
                let cfg = kube::Config::incluster()
                    .context("--in-cluster: not running in a pod with a ServiceAccount")?;
                (kube::Client::try_from(cfg)?, "the in-cluster config".to_string())
            }
        };
        let version = client
            .apiserver_version()
            .await
            .with_context(|| format!("cannot reach the API server of {source}"))?;
        tracing::info!(server = %format!("{}.{}", version.major, version.minor), "connected to the API server");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let controllers: Arc<OnceLock<garrison_hub::supervisor::Supervisor>> = Arc::default();
        let c = controllers.clone();
        let ready = Arc::new(move || match c.get() {
            Some(sup) => sup.check(),
            None => Ok(()),
        });
        ensure_namespace(&client, HUB_NAMESPACE).await?;
        let admission = garrison_hub::admission::Admission::new(client.clone());
        let listen = ext.webhook_listen.unwrap_or(([127, 0, 0, 1], 0).into());
        let ca = crate::webhook::shared_ca(&client, HUB_NAMESPACE).await?;
        let (served, webhooks) = crate::webhook::serve(
            admission,
            ca,
            listen,
            ext.webhook_service.clone(),
            ready,
            stop_rx,
        )
        .await?;
        let identity = election.identity.clone();
        let mut elector = garrison_hub::leader::Elector::new(client.clone(), election);
        eprintln!("garrison hub {identity}: waiting to lead (Lease {HUB_NAMESPACE}/{LEASE_NAME})");
        tokio::select! {
            _ = elector.acquire() => {}
            _ = crate::hub::wait_for_signal() => {
                let _ = stop_tx.send(true);
                return Ok(());
            }
        }
        eprintln!("garrison hub {identity}: leading; installing CRDs and webhooks");
        tracing::info!(identity = %identity, "became the leader");
        // The lease is renewed from now on, while the set-up below runs too.
        let mut lost = tokio::spawn(async move { elector.hold().await });
        let setup = async {
            install_crds(&client, &crate::webhook::crds_converted_by(&served)).await?;
            served.register(&client).await?;
            crate::hub::prepare_hub(&client).await?;
            anyhow::Ok(crate::hub::start_controllers(&client, None, None, args))
        };
        let sup = tokio::select! {
            r = setup => r?,
            why = &mut lost => return Err(lost_lease(why)),
            _ = crate::hub::wait_for_signal() => return Ok(()),
        };
        let _ = controllers.set(sup);
        eprintln!("garrison hub {identity}: controllers running");
        // The history joins when its database answers: an outage of the database stops the
        // history, not the hub (whose webhooks fail closed while it is down).
        match args.history_database.clone() {
            Some(url) => {
                let (client, controllers) = (client.clone(), controllers.clone());
                let every = Duration::from_secs(args.checkpoint_interval);
                tokio::spawn(async move {
                    let mut wait = Duration::from_secs(1);
                    loop {
                        match open_history(&client, &url, every).await {
                            Ok(ctx) => {
                                if let Some(sup) = controllers.get() {
                                    crate::hub::start_history(sup, ctx);
                                }
                                return;
                            }
                            Err(e) => {
                                tracing::error!(error = %format!("{e:#}"), retry_in = ?wait, "cannot open the compliance history; not recording until it opens");
                                tokio::time::sleep(wait).await;
                                wait = (wait * 2).min(Duration::from_secs(60));
                            }
                        }
                    }
                });
            }
            None => tracing::info!(
                "compliance history off: give --history-database postgres://… (or GARRISON_HISTORY_DATABASE) to keep it"
            ),
        }
        tokio::select! {
            // Leadership lost: stop at once, before another replica acts, without waiting for
            // anything to wind down.
            why = &mut lost => Err(lost_lease(why)),
            _ = crate::hub::wait_for_signal() => {
                let _ = stop_tx.send(true);
                let _ = tokio::time::timeout(Duration::from_secs(5), webhooks).await;
                Ok(())
            }
        }
    })
}

/// The Secret holding the compliance history's checkpoint key, which every replica signs with.
pub const HISTORY_KEY_SECRET: &str = "garrison-compliance-history-key";
/// Its key.
const HISTORY_KEY_ENTRY: &str = "history.key";

/// The compliance history of a hub next to Kubernetes: in the PostgreSQL database of
/// `--history-database` (the replicas share nothing else that lasts), signed with the key in
/// [`HISTORY_KEY_SECRET`], its public key and newest checkpoint published in the ConfigMap
/// [`garrison_hub::compliance::HISTORY_CONFIGMAP`]. Without `--history-database` it is off.
async fn open_history(
    client: &kube::Client,
    url: &str,
    checkpoint_every: Duration,
) -> Result<Arc<garrison_hub::compliance::Ctx>> {
    use garrison_hub::compliance::{Anchor, Ctx, HISTORY_CONFIGMAP, PUBLIC_KEY_ENTRY};
    let history = garrison_governance::history::store::History::open(Some(url), "".as_ref())
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let key = shared_history_key(client, HUB_NAMESPACE, &history).await?;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": HISTORY_CONFIGMAP, "namespace": HUB_NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": "garrison"}},
        "data": {PUBLIC_KEY_ENTRY: key.public_key_pem()}});
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), HUB_NAMESPACE)
        .patch(
            HISTORY_CONFIGMAP,
            &kube::api::PatchParams::apply(MANAGER).force(),
            &kube::api::Patch::Apply(&cm),
        )
        .await
        .with_context(|| format!("cannot publish the history's public key in ConfigMap {HUB_NAMESPACE}/{HISTORY_CONFIGMAP}"))?;
    tracing::info!("compliance history kept in PostgreSQL");
    Ok(Arc::new(Ctx {
        client: client.clone(),
        history,
        key: Arc::new(key),
        checkpoint_every,
        anchor: Anchor::ConfigMap {
            client: client.clone(),
            namespace: HUB_NAMESPACE.into(),
        },
    }))
}

/// The history's checkpoint key from [`HISTORY_KEY_SECRET`], made and stored by the first
/// replica to need it. A history that already holds checkpoints was signed with a key that
/// is gone: a new one would leave them unverifiable, so none is made.
async fn shared_history_key(
    client: &kube::Client,
    namespace: &str,
    history: &garrison_governance::history::store::History,
) -> Result<garrison_governance::history::CheckpointKey> {
    use garrison_governance::history::CheckpointKey;
    use k8s_openapi::api::core::v1::Secret;
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let read = |s: &Secret| -> Result<CheckpointKey> {
        let pem = s
            .data
            .as_ref()
            .and_then(|d| d.get(HISTORY_KEY_ENTRY))
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .with_context(|| {
                format!("the Secret {namespace}/{HISTORY_KEY_SECRET} holds no {HISTORY_KEY_ENTRY}")
            })?;
        CheckpointKey::from_pem(&pem)
            .map_err(|e| anyhow::anyhow!("the Secret {namespace}/{HISTORY_KEY_SECRET}: {e}"))
    };
    if let Some(s) = api
        .get_opt(HISTORY_KEY_SECRET)
        .await
        .context("cannot read the compliance history's key Secret")?
    {
        return read(&s);
    }
    let signed = history
        .checkpoints()
        .await
        .map_err(|e| anyhow::anyhow!(e))?
        .len();
    if signed > 0 {
        anyhow::bail!(
            "the history holds {signed} checkpoints but the Secret {namespace}/{HISTORY_KEY_SECRET} with the key that signed them is gone; restore it (a new key would leave them unverifiable)"
        );
    }
    let key = CheckpointKey::generate().map_err(|e| anyhow::anyhow!(e))?;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": HISTORY_KEY_SECRET, "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "garrison"}},
        "type": "Opaque",
        "stringData": {HISTORY_KEY_ENTRY: key.to_pem()},
    }))?;
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(key),
        // Another replica stored one first: sign with that.
        Err(kube::Error::Api(s)) if s.code == 409 => read(&api.get(HISTORY_KEY_SECRET).await?),
        Err(e) => Err(e).context("cannot store the compliance history's key Secret"),
    }
}

fn lost_lease(why: Result<String, tokio::task::JoinError>) -> anyhow::Error {
    let why = why.unwrap_or_else(|e| format!("the lease keeper failed: {e}"));
    anyhow::anyhow!("lost the leader lease ({why}); stopping so that no two replicas act at once")
}

async fn ensure_namespace(client: &kube::Client, name: &str) -> Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot create the namespace {name}")),
    }
}

/// Creates or updates the CRDs given (server-side apply), and waits until each is established.
pub async fn install_crds(client: &kube::Client, crds: &[Value]) -> Result<()> {
    garrison_apiserver::client::apply_crds(client, crds, MANAGER).await?;
    tracing::info!(crds = crds.len(), "OCM CRDs installed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_is_namespace_name_and_port() {
        assert_eq!(
            parse_service("ocm/hook:443").unwrap(),
            ("ocm".into(), "hook".into(), 443)
        );
        for bad in [
            "hook:443",
            "ocm/hook",
            "ocm/hook:x",
            "/hook:443",
            "ocm/:443",
            "ocm/hook:0",
        ] {
            assert!(parse_service(bad).is_err(), "{bad}");
        }
    }
}
