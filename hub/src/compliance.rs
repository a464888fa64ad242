//! The compliance history's recorder: every change of compliance state of every template of
//! every replicated policy, as its cluster's policy add-on reports it, appended once to the
//! history; and the checkpointer, which signs the history's head at intervals.
//!
//! The recorder keeps the last recorded state of each (cluster, replica, template), read from
//! the history when it starts, so a restart records what changed while it was down and nothing
//! twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use garrison_api::policy::v1::Policy;
use garrison_governance::history::store::History;
use garrison_governance::history::{CheckpointKey, Event, query::normalise_time};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};

/// The label upstream puts on replicated policies: the root, `<namespace>.<name>`.
pub const ROOT_LABEL: &str = "policy.open-cluster-management.io/root-policy";
/// The label naming the replica's cluster.
pub const CLUSTER_LABEL: &str = "policy.open-cluster-management.io/cluster-name";
const ANNOTATIONS: &str = "policy.open-cluster-management.io/";

/// (cluster, replica, template).
type Key = (String, String, String);

/// The last recorded state of a key, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Last {
    /// Compliant, NonCompliant, Pending.
    pub state: String,
    /// RFC 3339.
    pub time: String,
}

/// Text as PostgreSQL and every reader can hold it: no NUL characters.
fn clean(s: &str) -> String {
    s.replace('\0', "")
}

/// What the recorder and the checkpointer share.
pub struct Ctx {
    /// The hub's client.
    pub client: kube::Client,
    /// The history.
    pub history: History,
    /// The hub's checkpoint key.
    pub key: Arc<CheckpointKey>,
    /// How often the head is signed, when it moved.
    pub checkpoint_every: Duration,
    /// Where the newest signed checkpoint is remembered, outside the history's store.
    pub anchor: std::path::PathBuf,
}

fn list_annotation(p: &Policy, name: &str) -> Vec<String> {
    p.annotations()
        .get(&format!("{ANNOTATIONS}{name}"))
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The cluster a replica speaks for: its namespace, which only the cluster's agent and the
/// hub write to. A replica whose cluster label names another cluster is not believed.
pub fn cluster_of(replica: &Policy) -> Option<String> {
    let ns = replica.namespace()?;
    match replica.labels().get(CLUSTER_LABEL) {
        Some(label) if *label != ns => None,
        _ => Some(ns),
    }
}

/// The changes `replica`'s status shows against `last` (the last recorded state per key),
/// stamped with the time its history gives, held between the key's last record and `now` (a
/// cluster cannot move its changes into the past or the future). Updates `last`.
pub fn changes(replica: &Policy, last: &mut HashMap<Key, Last>, now: &str) -> Vec<Event> {
    let Some(root) = replica.labels().get(ROOT_LABEL) else {
        return vec![];
    };
    let Some((root_ns, root_name)) = root.split_once('.') else {
        return vec![];
    };
    let Some(cluster) = cluster_of(replica) else {
        return vec![];
    };
    let Some(status) = &replica.status else {
        return vec![];
    };
    let mut out = vec![];
    for detail in &status.details {
        let Some(state) = detail.compliant.as_deref().filter(|s| !s.is_empty()) else {
            continue;
        };
        let name = detail
            .template_meta
            .as_ref()
            .and_then(|m| m["name"].as_str())
            .unwrap_or_default();
        let definition = replica
            .spec
            .policy_templates
            .iter()
            .map(|t| &t.object_definition)
            .find(|d| d["metadata"]["name"] == name);
        let kind = definition
            .and_then(|d| d["kind"].as_str())
            .or_else(|| {
                detail
                    .template_meta
                    .as_ref()
                    .and_then(|m| m["kind"].as_str())
            })
            .unwrap_or_default();
        let template = format!("{kind}/{name}");
        let key = (cluster.clone(), replica.name_any(), template.clone());
        let previous = last.get(&key);
        if previous.map(|l| l.state.as_str()) == Some(state) {
            continue;
        }
        let newest = detail.history.first();
        let time = newest
            .and_then(|h| h.last_timestamp.as_ref())
            .and_then(|t| normalise_time(&t.0.to_string()).ok())
            .unwrap_or_else(|| now.to_string());
        let floor = previous.map(|l| l.time.as_str()).unwrap_or("");
        let time = time.as_str().clamp(floor.min(now), now).to_string();
        last.insert(
            key,
            Last {
                state: state.to_string(),
                time: time.clone(),
            },
        );
        let list = |name: &str| -> Vec<String> {
            list_annotation(replica, name)
                .iter()
                .map(|s| clean(s))
                .collect()
        };
        out.push(Event {
            time,
            cluster: clean(&cluster),
            policy: clean(&format!("{root_ns}/{root_name}")),
            replica: clean(&replica.name_any()),
            template: clean(&template),
            state: clean(state),
            message: clean(&newest.map(|h| h.message.clone()).unwrap_or_default()),
            severity: clean(
                definition
                    .and_then(|d| d["spec"]["severity"].as_str())
                    .unwrap_or_default(),
            ),
            standards: list("standards"),
            categories: list("categories"),
            controls: list("controls"),
        });
    }
    out
}

/// Clusters and root policies seen to exist.
#[derive(Default)]
struct Known {
    clusters: std::collections::HashSet<String>,
    roots: std::collections::HashSet<(String, String)>,
}

/// Whether `replica` is one the hub would have made: in the namespace of a ManagedCluster, for
/// a root policy that exists. Anything else (a Policy someone labelled by hand) is not
/// recorded. What exists is remembered; what does not is asked again next time.
async fn vouched_for(client: &kube::Client, replica: &Policy, known: &mut Known) -> bool {
    let (Some(cluster), Some((ns, name))) = (
        cluster_of(replica),
        replica
            .labels()
            .get(ROOT_LABEL)
            .and_then(|r| r.split_once('.'))
            .map(|(a, b)| (a.to_string(), b.to_string())),
    ) else {
        return false;
    };
    if !known.clusters.contains(&cluster) {
        let api: Api<garrison_api::ManagedCluster> = Api::all(client.clone());
        match api.get_opt(&cluster).await {
            Ok(Some(_)) => {
                known.clusters.insert(cluster.clone());
            }
            Ok(None) => {
                tracing::warn!(namespace = %cluster, policy = %replica.name_any(), "a replicated policy outside any cluster's namespace; not recorded");
                return false;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot check a replicated policy's cluster; not recorded now");
                return false;
            }
        }
    }
    let root = (ns, name);
    if !known.roots.contains(&root) {
        let api: Api<Policy> = Api::namespaced(client.clone(), &root.0);
        match api.get_opt(&root.1).await {
            Ok(Some(_)) => {
                known.roots.insert(root);
            }
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot check a replicated policy's root; not recorded now");
                return false;
            }
        }
    }
    true
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Records changes until the watch ends (the supervisor restarts it).
pub async fn record(ctx: Arc<Ctx>) {
    let latest = match ctx.history.latest().await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the compliance history; not recording");
            tokio::time::sleep(Duration::from_secs(5)).await;
            return;
        }
    };
    let mut last: HashMap<Key, Last> = latest
        .into_iter()
        .map(|r| {
            (
                (r.event.cluster, r.event.replica, r.event.template),
                Last {
                    state: r.event.state,
                    time: r.event.time,
                },
            )
        })
        .collect();
    let mut known = Known::default();
    let api: Api<Policy> = Api::all(ctx.client.clone());
    let cfg = watcher::Config::default().labels(ROOT_LABEL);
    let mut stream = watcher(api, cfg)
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(item) = stream.next().await {
        let replica = match item {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "watching replicated policies failed; retrying");
                continue;
            }
        };
        if !vouched_for(&ctx.client, &replica, &mut known).await {
            continue;
        }
        let events = changes(&replica, &mut last, &now());
        if events.is_empty() {
            continue;
        }
        let n = events.len();
        match ctx.history.append(events).await {
            Ok(records) => {
                tracing::debug!(
                    records = n,
                    head = records.last().map_or(0, |r| r.seq),
                    "compliance changes recorded"
                );
            }
            Err(e) => {
                // Start over from what was written, so a restart records what this lost.
                tracing::error!(error = %e, "cannot record compliance changes; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
                return;
            }
        }
    }
}

/// Signs the history's head every `checkpoint_every`, when it moved, and remembers the newest
/// checkpoint in `anchor`, outside the store. It signs only a history that still holds the
/// remembered head: one whose newest records were removed, or that was rolled back, is left
/// unsigned (and its verification names the gap) rather than vouched for.
pub async fn checkpoint(ctx: Arc<Ctx>) {
    let mut tick = tokio::time::interval(ctx.checkpoint_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = checkpoint_once(&ctx).await {
            tracing::error!(error = %e, "cannot sign a compliance history checkpoint");
        }
    }
}

/// One round of [`checkpoint`].
pub async fn checkpoint_once(ctx: &Ctx) -> Result<Option<u64>, String> {
    let remembered =
        garrison_governance::history::api::read_anchor(&ctx.anchor).map_err(|e| e.to_string())?;
    if let Some(a) = &remembered {
        let held = ctx.history.get(a.seq).await.map_err(|e| e.to_string())?;
        if held.as_ref().map(|r| r.hash.as_str()) != Some(a.head.as_str()) {
            return Err(format!(
                "the history no longer holds record {} as signed: records were removed or rewritten behind the hub's back; not signing over it (run garrison audit verify)",
                a.seq
            ));
        }
    }
    let Some(c) = ctx
        .history
        .checkpoint(ctx.key.pkcs8().to_vec(), now())
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let text = garrison_governance::history::export::anchor_file(&c, &ctx.key.public_key_pem());
    let tmp = ctx.anchor.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &ctx.anchor))
        .map_err(|e| format!("cannot remember checkpoint {}: {e}", c.seq))?;
    tracing::info!(seq = c.seq, "compliance history checkpoint signed");
    Ok(Some(c.seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn replica(state: &str, message: &str) -> Policy {
        serde_json::from_value(json!({
            "apiVersion": "policy.open-cluster-management.io/v1", "kind": "Policy",
            "metadata": {"name": "policies.ac-2", "namespace": "cluster1",
                "labels": {ROOT_LABEL: "policies.ac-2", CLUSTER_LABEL: "cluster1"},
                "annotations": {
                    "policy.open-cluster-management.io/standards": "NIST SP 800-53",
                    "policy.open-cluster-management.io/categories": "AC Access Control",
                    "policy.open-cluster-management.io/controls": "AC-2, AC-3"}},
            "spec": {"disabled": false, "policy-templates": [{"objectDefinition": {
                "apiVersion": "policy.open-cluster-management.io/v1", "kind": "ConfigurationPolicy",
                "metadata": {"name": "accounts"}, "spec": {"severity": "high"}}}]},
            "status": {"compliant": state, "details": [{
                "templateMeta": {"name": "accounts"}, "compliant": state,
                "history": [{"lastTimestamp": "2026-03-03T10:00:00Z", "message": message, "eventName": "e"}]}]}
        }))
        .unwrap()
    }

    #[test]
    fn each_change_of_state_is_recorded_once_with_the_policys_controls() {
        let mut last = HashMap::new();
        let e = changes(
            &replica("NonCompliant", "NonCompliant; violation"),
            &mut last,
            "now",
        );
        assert_eq!(e.len(), 1);
        let e = &e[0];
        assert_eq!(
            (e.cluster.as_str(), e.policy.as_str(), e.template.as_str()),
            ("cluster1", "policies/ac-2", "ConfigurationPolicy/accounts")
        );
        assert_eq!(e.time, "2026-03-03T10:00:00Z");
        assert_eq!(e.severity, "high");
        assert_eq!(e.controls, vec!["AC-2", "AC-3"]);
        // The same state again, with another message: nothing new.
        assert!(changes(&replica("NonCompliant", "other"), &mut last, "now").is_empty());
        assert_eq!(
            changes(&replica("Compliant", "ok"), &mut last, "now").len(),
            1
        );
    }

    #[test]
    fn a_cluster_cannot_move_its_changes_in_time_or_speak_for_another() {
        let mut last = HashMap::new();
        let first = changes(
            &replica("NonCompliant", "x"),
            &mut last,
            "2026-03-05T00:00:00Z",
        );
        assert_eq!(first[0].time, "2026-03-03T10:00:00Z");
        // A change stamped before the last one is recorded at the last one's time.
        let mut back: Policy = replica("Compliant", "y");
        back.status.as_mut().unwrap().details[0].history[0].last_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "1970-01-01T00:00:00Z".parse().unwrap(),
            ));
        let e = changes(&back, &mut last, "2026-03-05T00:00:00Z");
        assert_eq!(e[0].time, "2026-03-03T10:00:00Z");
        // One stamped in the future is recorded now.
        let mut ahead: Policy = replica("NonCompliant", "z");
        ahead.status.as_mut().unwrap().details[0].history[0].last_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2099-01-01T00:00:00Z".parse().unwrap(),
            ));
        let e = changes(&ahead, &mut last, "2026-03-05T00:00:00Z");
        assert_eq!(e[0].time, "2026-03-05T00:00:00Z");
        // A replica labelled for another cluster than its namespace is not believed.
        let mut other = replica("Compliant", "w");
        other
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(CLUSTER_LABEL.into(), "prod".into());
        assert_eq!(cluster_of(&other), None);
        assert!(changes(&other, &mut HashMap::new(), "now").is_empty());
        // NUL characters are dropped, so every store can hold the text.
        let nul = replica("NonCompliant", "bad\0message");
        assert_eq!(
            changes(&nul, &mut HashMap::new(), "2026-03-05T00:00:00Z")[0].message,
            "badmessage"
        );
    }
}
