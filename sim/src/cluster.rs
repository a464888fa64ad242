//! One simulated cluster.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result};
use garrison_api::cluster::v1alpha1::ClusterClaim;
use garrison_apiserver::server::{Server, ServerConfig};
use garrison_klusterlet::agent::{SimulatedSpec, Simulator};
use garrison_klusterlet::spoke::Spoke;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, PostParams};
use serde_json::json;

/// Nodes in a simulated cluster.
pub const NODES: i64 = 3;

/// The CRDs a light cluster serves: the agent's own, as upstream's klusterlet installs them.
const AGENT_CRDS: [&str; 2] = [
    "appliedmanifestworks.work.open-cluster-management.io",
    "clusterclaims.cluster.open-cluster-management.io",
];

/// Events a light cluster keeps for watch resumption. Its agent is its only watcher and reads
/// each event as it comes, so a short history is enough; the default ring (10,000 events
/// reserved up front) is most of an idle cluster's memory.
const LIGHT_WATCH_EVENTS: usize = 64;

/// How much of a cluster is simulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Weight {
    /// Every CRD Garrison knows (policies, Gatekeeper, add-on APIs), so every add-on can run
    /// on it, and the default watch history. What `garrison join --simulated` gets.
    #[default]
    Full,
    /// Only the agent's own CRDs and a short watch history: registration, lease, status and
    /// ManifestWorks of built-in kinds, at a small fraction of the memory. For fleets.
    Light,
}

/// A simulated cluster: its API server, and a client acting as its administrator.
pub struct SimulatedCluster {
    server: Server,
    client: kube::Client,
    serving: Option<tokio::sync::watch::Sender<bool>>,
    ca_pem: Option<String>,
}

impl SimulatedCluster {
    /// A cluster named `cluster` run by agent `agent_id`: an API server serving the workload
    /// kinds, with three Nodes, the well-known ClusterClaims and the status simulator. With
    /// `store`, its objects persist there (and its ServiceAccount signing key beside it), so
    /// workloads survive an agent restart as they would on a real cluster; without, it lives in
    /// memory. Its TokenRequest API issues tokens no shorter than `min_token_secs`.
    pub async fn start(
        cluster: &str,
        agent_id: &str,
        store: Option<&Path>,
        min_token_secs: i64,
        weight: Weight,
    ) -> Result<Self> {
        let service_account_key = match store {
            Some(p) => Some(persistent_key(p)?),
            None => None,
        };
        let mut cfg = ServerConfig {
            store_path: store.map(Path::to_path_buf),
            service_account_key,
            min_token_expiration_secs: min_token_secs,
            workloads: true,
            ..Default::default()
        };
        if weight == Weight::Light {
            cfg.watch_cache_events = LIGHT_WATCH_EVENTS;
        }
        let server = Server::build(&cfg).context("cannot start the simulated cluster")?;
        server
            .install_crds(crds(weight))
            .map_err(|e| anyhow::anyhow!("simulated cluster: {}", e.message))?;
        let client = server.local_client(garrison_apiserver::bootstrap::system_user());
        add_nodes(&client, cluster).await?;
        add_claims(&client, cluster, agent_id).await?;
        crate::simulator::start(&server, client.clone(), NODES);
        Ok(SimulatedCluster {
            server,
            client,
            serving: None,
            ca_pem: None,
        })
    }

    /// A client acting as the cluster's administrator.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// Serves the cluster's API over HTTPS on a loopback port, so kubectl can look at it (and
    /// tests can change it behind the agent's back), and writes an admin kubeconfig for it to
    /// `kubeconfig` (mode 0600). Fresh certificates each start. Returns the URL.
    pub async fn expose(&mut self, cluster: &str, kubeconfig: &Path) -> Result<String> {
        use garrison_apiserver::{certs, tls};
        let lifetime = time::Duration::days(7);
        let ca = certs::new_ca(&format!("{cluster}-simulated-ca"), lifetime)?;
        let serving = certs::new_serving(&ca, &["127.0.0.1".into(), "localhost".into()], lifetime)?;
        let admin = certs::new_client(
            &ca,
            "simulated-cluster-admin",
            &["system:masters"],
            lifetime,
        )?;
        let chain =
            tls::certs_from_pem("simulated serving certificate", serving.cert_pem.as_bytes())?;
        let key = tls::key_from_pem("simulated serving key", serving.key_pem.as_bytes())?;
        let roots = tls::certs_from_pem("simulated CA", ca.cert_pem.as_bytes())?;
        let config = tls::server_config(chain, key, &roots)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot listen on a loopback port for the simulated cluster")?;
        let url = format!("https://{}", listener.local_addr()?);
        let kc = garrison_apiserver::kubeconfig::with_client_cert(
            &format!("{cluster}-simulated"),
            &url,
            &ca.cert_pem,
            "simulated-cluster-admin",
            &admin.cert_pem,
            &admin.key_pem,
        );
        garrison_klusterlet::state::write_file(kubeconfig, kc.as_bytes(), 0o600)?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(tls::serve(listener, config, self.server.router(), rx, None));
        self.serving = Some(tx);
        self.ca_pem = Some(ca.cert_pem.clone());
        Ok(url)
    }

    /// The agent's view of this cluster; the server lives as long as the spoke.
    pub fn into_spoke(self) -> Spoke {
        let SimulatedCluster {
            server,
            client,
            serving,
            ca_pem,
        } = self;
        Spoke::held(client, ca_pem, Box::new((server, serving)))
    }
}

/// The CRDs a cluster of `weight` serves, made once per process.
fn crds(weight: Weight) -> &'static [serde_json::Value] {
    static ALL: OnceLock<Vec<serde_json::Value>> = OnceLock::new();
    static AGENT: OnceLock<Vec<serde_json::Value>> = OnceLock::new();
    let all = ALL.get_or_init(garrison_api::crds::all_json);
    match weight {
        Weight::Full => all,
        Weight::Light => AGENT.get_or_init(|| {
            all.iter()
                .filter(|c| {
                    AGENT_CRDS.contains(&c["metadata"]["name"].as_str().unwrap_or_default())
                })
                .cloned()
                .collect()
        }),
    }
}

/// The ServiceAccount signing key kept beside a persistent cluster's store, so tokens outlive
/// an agent restart when the cluster does; made on first use.
fn persistent_key(store: &Path) -> Result<String> {
    let key_file = store.with_extension("sa.key");
    if let Ok(pem) = std::fs::read_to_string(&key_file) {
        return Ok(pem);
    }
    let pem =
        garrison_apiserver::auth::tokens::generate_key_pem().map_err(|e| anyhow::anyhow!(e))?;
    garrison_klusterlet::state::write_file(&key_file, pem.as_bytes(), 0o600)?;
    Ok(pem)
}

async fn add_nodes(client: &kube::Client, cluster: &str) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    for i in 1..=NODES {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": format!("{cluster}-node-{i}"),
                "labels": {"kubernetes.io/os": "linux", "node-role.kubernetes.io/worker": ""}},
            "status": {
                "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                "allocatable": {"cpu": "3800m", "memory": "15Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                "nodeInfo": {"kubeletVersion": "v1.32.0-garrison-sim"}
            }
        }))?;
        let created = match nodes.create(&PostParams::default(), &node).await {
            Ok(n) => n,
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(e.into()),
        };
        // Status is a subresource: written separately, as a kubelet would.
        let mut with_status = created.clone();
        with_status.status = node.status.clone();
        nodes
            .replace_status(
                &created.metadata.name.clone().unwrap_or_default(),
                &PostParams::default(),
                &with_status,
            )
            .await?;
    }
    Ok(())
}

async fn add_claims(client: &kube::Client, cluster: &str, agent_id: &str) -> Result<()> {
    let claims: Api<ClusterClaim> = Api::all(client.clone());
    for (name, value) in [
        ("id.k8s.io", format!("{cluster}-{agent_id}")),
        ("platform.open-cluster-management.io", "Simulated".into()),
        ("product.open-cluster-management.io", "Garrison".into()),
    ] {
        let claim: ClusterClaim = serde_json::from_value(json!({
            "apiVersion": "cluster.open-cluster-management.io/v1alpha1", "kind": "ClusterClaim",
            "metadata": {"name": name}, "spec": {"value": value}
        }))?;
        match claims.create(&PostParams::default(), &claim).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The simulator of `garrison join --simulated` and `garrison klusterlet`: a full cluster
/// persisted in the agent's directory and served on a loopback port with an admin kubeconfig
/// beside it. Its TokenRequest API issues tokens no shorter than `min_token_secs`.
pub fn persistent(min_token_secs: i64) -> Simulator {
    Simulator(Arc::new(move |spec: SimulatedSpec| {
        Box::pin(async move {
            let mut cluster = SimulatedCluster::start(
                &spec.cluster,
                &spec.agent_id,
                Some(&spec.dir.simulated_store_file()),
                min_token_secs,
                Weight::Full,
            )
            .await?;
            let kubeconfig = spec.dir.simulated_kubeconfig_file();
            let url = cluster.expose(&spec.cluster, &kubeconfig).await?;
            tracing::info!(%url, kubeconfig = %kubeconfig.display(), "serving the simulated cluster");
            Ok(cluster.into_spoke())
        })
    }))
}

/// The simulator of a fleet: clusters of `weight` in memory, not served.
pub fn in_memory(weight: Weight) -> Simulator {
    Simulator(Arc::new(move |spec: SimulatedSpec| {
        Box::pin(async move {
            let cluster = SimulatedCluster::start(
                &spec.cluster,
                &spec.agent_id,
                None,
                garrison_apiserver::auth::tokens::MIN_EXPIRATION_SECS,
                weight,
            )
            .await?;
            Ok(cluster.into_spoke())
        })
    }))
}
