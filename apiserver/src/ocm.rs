//! The embedded hub's acceptance gate (opt-in, [`crate::server::ServerConfig::agent_gate`]): a
//! managed cluster's agent certificate authenticates only while the cluster exists, is accepted
//! (`hubAcceptsClient: true`) and is not being deleted, so `deny` or deletion cuts access at
//! once, before the certificate expires. It follows the store's writes synchronously, which only
//! an embedded server can; next to kube-apiserver, revocation is the removal of the cluster's
//! RBAC. OCM's admission rules are the hub's webhooks (`garrison_hub::admission`).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::auth::UserInfo;
use crate::error::ApiResult;
use crate::store::Store;
use crate::store::watch::{EventType, WatchEvent};

/// Storage key of ManagedClusters.
pub const MANAGED_CLUSTERS_KEY: &str = "cluster.open-cluster-management.io/managedclusters";

fn accepted(obj: &Value) -> bool {
    obj.pointer("/spec/hubAcceptsClient")
        .and_then(Value::as_bool)
        == Some(true)
        && obj
            .pointer("/metadata/deletionTimestamp")
            .is_none_or(Value::is_null)
}

/// The set of accepted clusters, kept current by a store hook that runs before each write is
/// acknowledged: once a `deny` returns, the cluster's certificates are already refused.
#[derive(Debug)]
pub struct AcceptedClusters {
    names: RwLock<HashSet<String>>,
    /// Bumped each time a cluster stops being accepted, so open connections re-check their
    /// certificate at once instead of at their next request.
    revoked: tokio::sync::watch::Sender<u64>,
}

impl Default for AcceptedClusters {
    fn default() -> Self {
        AcceptedClusters {
            names: RwLock::default(),
            revoked: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl AcceptedClusters {
    /// Loads the accepted clusters from `store` and follows its writes.
    pub fn follow(store: &Store) -> ApiResult<Arc<Self>> {
        let me = Arc::new(AcceptedClusters::default());
        let this = me.clone();
        store.on_write(Arc::new(move |ev: &WatchEvent| {
            if ev.key != MANAGED_CLUSTERS_KEY {
                return;
            }
            let Some(name) = ev.object.pointer("/metadata/name").and_then(Value::as_str) else {
                return;
            };
            let mut names = this.names.write().expect("accepted clusters lock");
            if ev.kind != EventType::Deleted && accepted(&ev.object) {
                names.insert(name.to_string());
            } else if names.remove(name) {
                drop(names);
                this.revoked.send_modify(|n| *n += 1);
            }
        }));
        // Loaded after the hook is installed, so no write falls between the two.
        let mut after: Option<(String, String)> = None;
        loop {
            let page = store.list(
                MANAGED_CLUSTERS_KEY,
                None,
                after.as_ref().map(|(n, m)| (n.as_str(), m.as_str())),
                1000,
            )?;
            let mut names = me.names.write().expect("accepted clusters lock");
            for obj in &page.items {
                if let Some(name) = obj.pointer("/metadata/name").and_then(Value::as_str)
                    && accepted(obj)
                {
                    names.insert(name.to_string());
                }
            }
            drop(names);
            match page.items.last() {
                Some(last) if page.items.len() == 1000 => {
                    let name = last["metadata"]["name"].as_str().unwrap_or_default();
                    after = Some((String::new(), name.to_string()));
                }
                _ => break,
            }
        }
        Ok(me)
    }

    /// Whether `cluster` is accepted now.
    pub fn is_accepted(&self, cluster: &str) -> bool {
        self.names
            .read()
            .expect("accepted clusters lock")
            .contains(cluster)
    }

    /// Changes each time a cluster stops being accepted.
    pub fn revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revoked.subscribe()
    }

    /// Whether a certificate user may authenticate. Users outside the managed-cluster namespace
    /// of names pass; agent and add-on users pass only while their cluster is accepted. A user that claims
    /// the namespace but is not a well-formed agent identity is refused.
    pub fn allows(&self, user: &UserInfo) -> bool {
        if !user.name.starts_with(garrison_pki::identity::PREFIX) {
            return true;
        }
        // An agent, or an add-on of a cluster (`...:cluster:<c>:addon:<a>:agent:<n>`): both
        // only while their cluster is accepted.
        match garrison_pki::Identity::from_user(&user.name, &user.groups) {
            Ok(id) => self.is_accepted(id.cluster().as_str()),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(cluster: &str) -> UserInfo {
        UserInfo::new(
            format!("system:open-cluster-management:{cluster}:agent1"),
            vec![
                format!("system:open-cluster-management:{cluster}"),
                "system:open-cluster-management:managed-clusters".into(),
            ],
            "x509",
        )
    }

    #[test]
    fn the_gate_follows_acceptance_and_refuses_malformed_agent_names() {
        let store = Store::in_memory(100);
        let gate = AcceptedClusters::follow(&store).unwrap();
        assert!(!gate.allows(&agent("a")));
        gate.names.write().unwrap().insert("a".into());
        assert!(gate.allows(&agent("a")));
        assert!(!gate.allows(&agent("b")));
        // Claims the prefix but is not an agent identity: refused.
        let odd = UserInfo::new("system:open-cluster-management:a", vec![], "x509");
        assert!(!gate.allows(&odd));
        // Add-on identities follow their cluster, and must be well formed.
        let addon = |c: &str, groups: Vec<String>| {
            UserInfo::new(
                format!("system:open-cluster-management:cluster:{c}:addon:x:agent:x"),
                groups,
                "x509",
            )
        };
        let groups = |c: &str| {
            vec![
                format!("system:open-cluster-management:cluster:{c}:addon:x"),
                "system:open-cluster-management:addon:x".to_string(),
            ]
        };
        assert!(gate.allows(&addon("a", groups("a"))));
        assert!(!gate.allows(&addon("b", groups("b"))));
        assert!(!gate.allows(&addon("a", groups("b"))));
        assert!(!gate.allows(&addon("a", vec!["system:masters".into()])));
        // Right name, wrong groups: refused.
        let mut forged = agent("a");
        forged.groups = vec!["system:open-cluster-management:b".into()];
        assert!(!gate.allows(&forged));
        // Not an agent at all: not this gate's business.
        assert!(gate.allows(&UserInfo::new("alice", vec![], "x509")));
    }
}
