//! The cluster the agent manages: a real one through a kubeconfig or the pod's ServiceAccount,
//! or a simulated one held in memory (made by `garrison-sim`). The agent reads all of them
//! through the same `kube::Client`, so a simulated cluster runs the real agent code path.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use garrison_api::cluster::v1::{ManagedClusterClaim, ManagedClusterVersion};
use garrison_api::cluster::v1alpha1::{ClusterClaim, RESERVED_CLUSTER_CLAIM_NAMES};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, ListParams};

/// What the agent reports about the managed cluster.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    /// Summed node capacity (cpu, memory, pods).
    pub capacity: BTreeMap<String, Quantity>,
    /// Summed node allocatable (cpu, memory, pods).
    pub allocatable: BTreeMap<String, Quantity>,
    /// The Kubernetes version, if the API server answered.
    pub version: Option<ManagedClusterVersion>,
    /// Cluster claims, reserved names first, then by name.
    pub claims: Vec<ManagedClusterClaim>,
    /// Whether the cluster's API server answered.
    pub healthy: bool,
}

/// A managed cluster.
pub struct Spoke {
    /// The client to its API server.
    pub client: kube::Client,
    /// Whatever must live as long as the spoke: a simulated cluster's in-memory API server and
    /// its listener.
    _keep: Option<Box<dyn std::any::Any + Send + Sync>>,
    /// The CA that signs the cluster API server's certificate (PEM), when known: reported
    /// beside the ServiceAccount tokens add-ons hand to the hub.
    pub ca_pem: Option<String>,
}

/// The CA of the current context's cluster in a kubeconfig, as PEM.
fn kubeconfig_ca(path: &Path) -> Option<String> {
    use base64::Engine;
    let kc = kube::config::Kubeconfig::read_from(path).ok()?;
    let ctx_name = kc.current_context.clone()?;
    let ctx = kc
        .contexts
        .iter()
        .find(|c| c.name == ctx_name)?
        .context
        .clone()?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)?
        .cluster
        .clone()?;
    if let Some(data) = cluster.certificate_authority_data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .ok()?;
        return String::from_utf8(bytes).ok();
    }
    std::fs::read_to_string(cluster.certificate_authority?).ok()
}

/// The CRDs the agent itself uses on its cluster, as upstream's klusterlet installs them.
const AGENT_CRDS: [&str; 2] = [
    "appliedmanifestworks.work.open-cluster-management.io",
    "clusterclaims.cluster.open-cluster-management.io",
];

/// Creates or updates the agent's CRDs on a real cluster (server-side apply), and waits until
/// they are served.
async fn install_agent_crds(client: &kube::Client) -> Result<()> {
    let crds: Vec<serde_json::Value> = garrison_api::crds::all_json()
        .into_iter()
        .filter(|c| AGENT_CRDS.contains(&c["metadata"]["name"].as_str().unwrap_or_default()))
        .collect();
    garrison_k8s::client::apply_crds(client, &crds, "garrison-klusterlet").await
}

impl Spoke {
    /// A real cluster, from a kubeconfig.
    pub async fn from_kubeconfig(path: &Path) -> Result<Self> {
        let client = garrison_k8s::client::client_from_kubeconfig(path).await?;
        install_agent_crds(&client).await.with_context(|| {
            format!(
                "cannot install the agent's CRDs on the cluster of {}",
                path.display()
            )
        })?;
        Ok(Spoke {
            client,
            _keep: None,
            ca_pem: kubeconfig_ca(path),
        })
    }

    /// The cluster this agent runs in, with its pod's ServiceAccount.
    pub async fn in_cluster() -> Result<Self> {
        let cfg = kube::Config::incluster()
            .context("--in-cluster: not running in a pod with a ServiceAccount")?;
        let client = kube::Client::try_from(cfg)?;
        install_agent_crds(&client)
            .await
            .context("cannot install the agent's CRDs on this cluster")?;
        Ok(Spoke {
            client,
            _keep: None,
            ca_pem: std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
                .ok(),
        })
    }

    /// A cluster served by something this process holds (a simulated cluster): `keep` lives as
    /// long as the spoke.
    pub fn held(
        client: kube::Client,
        ca_pem: Option<String>,
        keep: Box<dyn std::any::Any + Send + Sync>,
    ) -> Self {
        Spoke {
            client,
            _keep: Some(keep),
            ca_pem,
        }
    }

    /// Reads what the agent reports. A cluster whose API server does not answer is reported
    /// unhealthy with nothing else.
    pub async fn observe(&self) -> Observed {
        let version = match self.client.apiserver_version().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "the managed cluster's API server does not answer");
                return Observed::default();
            }
        };
        let mut out = Observed {
            healthy: true,
            version: Some(ManagedClusterVersion {
                kubernetes: Some(version.git_version),
            }),
            ..Default::default()
        };
        match Api::<Node>::all(self.client.clone())
            .list(&ListParams::default())
            .await
        {
            Ok(nodes) => {
                let (cap, alloc) = sum_nodes(&nodes.items);
                out.capacity = cap;
                out.allocatable = alloc;
            }
            Err(e) => tracing::warn!(error = %e, "cannot list nodes on the managed cluster"),
        }
        match Api::<ClusterClaim>::all(self.client.clone())
            .list(&ListParams::default())
            .await
        {
            Ok(list) => out.claims = order_claims(&list.items),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => tracing::warn!(error = %e, "cannot list cluster claims"),
        }
        out
    }
}

/// Orders claims as upstream: reserved names first, in their order, then the rest by name.
pub fn order_claims(items: &[ClusterClaim]) -> Vec<ManagedClusterClaim> {
    let mut claims: Vec<(usize, String, Option<String>)> = items
        .iter()
        .map(|c| {
            let name = c.metadata.name.clone().unwrap_or_default();
            let rank = RESERVED_CLUSTER_CLAIM_NAMES
                .iter()
                .position(|r| *r == name)
                .unwrap_or(RESERVED_CLUSTER_CLAIM_NAMES.len());
            (rank, name, c.spec.value.clone())
        })
        .collect();
    claims.sort();
    claims
        .into_iter()
        .map(|(_, name, value)| ManagedClusterClaim {
            name: Some(name),
            value,
        })
        .collect()
}

/// Sums the cpu, memory and pods of nodes' capacity and allocatable.
pub fn sum_nodes(nodes: &[Node]) -> (BTreeMap<String, Quantity>, BTreeMap<String, Quantity>) {
    let mut cap: BTreeMap<&str, i128> = BTreeMap::new();
    let mut alloc: BTreeMap<&str, i128> = BTreeMap::new();
    for node in nodes {
        let Some(status) = &node.status else { continue };
        for (target, source) in [
            (&mut cap, &status.capacity),
            (&mut alloc, &status.allocatable),
        ] {
            let Some(source) = source else { continue };
            for key in ["cpu", "memory", "pods"] {
                if let Some(q) = source.get(key).and_then(|q| parse_milli(&q.0)) {
                    *target.entry(key).or_default() += q;
                }
            }
        }
    }
    let render = |m: BTreeMap<&str, i128>| {
        m.into_iter()
            .map(|(k, v)| (k.to_string(), Quantity(format_milli(k, v))))
            .collect()
    };
    (render(cap), render(alloc))
}

/// Parses a Kubernetes quantity into thousandths (so `3800m` is 3800 and `1Ki` is 1,024,000).
/// Returns None for anything malformed or absurdly large.
pub fn parse_milli(s: &str) -> Option<i128> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    if num.is_empty() || num.len() > 30 {
        return None;
    }
    let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
    let negative = int_part.starts_with('-');
    let int_digits = int_part
        .strip_prefix('-')
        .or_else(|| int_part.strip_prefix('+'))
        .unwrap_or(int_part);
    if !int_digits.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
        || (int_digits.is_empty() && frac_part.is_empty())
    {
        return None;
    }
    // Value × 1000 × multiplier, computed in integers from the decimal digits.
    let (mult_num, mult_den): (i128, i128) = match suffix {
        "" => (1, 1),
        "m" => (1, 1000),
        "k" => (1_000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        _ => return None,
    };
    let frac_len = frac_part.len().min(9) as u32;
    let digits: i128 = format!("{int_digits}{}", &frac_part[..frac_len as usize])
        .parse()
        .ok()?;
    let scale = 10i128.pow(frac_len);
    let value = digits.checked_mul(1000)?.checked_mul(mult_num)? / scale / mult_den;
    Some(if negative { -value } else { value })
}

/// Renders thousandths as a quantity: cpu in cores or millicores, memory in the largest binary
/// unit that divides it, anything else as a whole number.
pub fn format_milli(resource: &str, milli: i128) -> String {
    if resource == "cpu" {
        return if milli % 1000 == 0 {
            (milli / 1000).to_string()
        } else {
            format!("{milli}m")
        };
    }
    let whole = milli / 1000;
    if resource == "memory" {
        for (unit, size) in [
            ("Ti", 1i128 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
        ] {
            if whole != 0 && whole % size == 0 {
                return format!("{}{unit}", whole / size);
            }
        }
    }
    whole.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_parse_as_kubernetes_writes_them() {
        assert_eq!(parse_milli("4"), Some(4000));
        assert_eq!(parse_milli("3800m"), Some(3800));
        assert_eq!(parse_milli("0.5"), Some(500));
        assert_eq!(parse_milli("1Ki"), Some(1_024_000));
        assert_eq!(parse_milli("16Gi"), Some(16 * (1i128 << 30) * 1000));
        assert_eq!(parse_milli("2k"), Some(2_000_000));
        for bad in ["", "Gi", "4x", "1.2.3", "--1", "1e3"] {
            assert_eq!(parse_milli(bad), None, "{bad}");
        }
    }

    #[test]
    fn nodes_sum_and_render() {
        let node = |cpu: &str, mem: &str| -> Node {
            serde_json::from_value(json!({"metadata": {"name": "n"},
                "status": {"capacity": {"cpu": cpu, "memory": mem, "pods": "110"},
                           "allocatable": {"cpu": "500m", "memory": "1Gi"}}}))
            .unwrap()
        };
        let (cap, alloc) = sum_nodes(&[node("4", "16Gi"), node("2", "8Gi")]);
        assert_eq!(cap["cpu"].0, "6");
        assert_eq!(cap["memory"].0, "24Gi");
        assert_eq!(cap["pods"].0, "220");
        assert_eq!(alloc["cpu"].0, "1");
        assert_eq!(alloc["memory"].0, "2Gi");
        assert_eq!(format_milli("cpu", 7600), "7600m");
    }

    #[test]
    fn reserved_claims_come_first() {
        let claim = |n: &str| -> ClusterClaim {
            serde_json::from_value(
                json!({"apiVersion": "cluster.open-cluster-management.io/v1alpha1",
                "kind": "ClusterClaim", "metadata": {"name": n}, "spec": {"value": "v"}}),
            )
            .unwrap()
        };
        let out = order_claims(&[
            claim("zone.example.com"),
            claim("platform.open-cluster-management.io"),
            claim("id.k8s.io"),
        ]);
        let names: Vec<_> = out.iter().map(|c| c.name.clone().unwrap()).collect();
        assert_eq!(names[2], "zone.example.com");
        assert_eq!(names[0], "id.k8s.io");
    }
}
