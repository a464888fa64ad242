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

/// The changes `replica`'s status shows against `last` (the last recorded state per key),
/// stamped with the time its history gives (else `now`). Updates `last`.
pub fn changes(replica: &Policy, last: &mut HashMap<Key, String>, now: &str) -> Vec<Event> {
    let Some(root) = replica.labels().get(ROOT_LABEL) else {
        return vec![];
    };
    let Some((root_ns, root_name)) = root.split_once('.') else {
        return vec![];
    };
    let cluster = replica
        .labels()
        .get(CLUSTER_LABEL)
        .cloned()
        .or_else(|| replica.namespace())
        .unwrap_or_default();
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
        if last.get(&key).map(String::as_str) == Some(state) {
            continue;
        }
        let newest = detail.history.first();
        let time = newest
            .and_then(|h| h.last_timestamp.as_ref())
            .and_then(|t| normalise_time(&t.0.to_string()).ok())
            .unwrap_or_else(|| now.to_string());
        out.push(Event {
            time,
            cluster: cluster.clone(),
            policy: format!("{root_ns}/{root_name}"),
            replica: replica.name_any(),
            template,
            state: state.to_string(),
            message: newest.map(|h| h.message.clone()).unwrap_or_default(),
            severity: definition
                .and_then(|d| d["spec"]["severity"].as_str())
                .unwrap_or_default()
                .to_string(),
            standards: list_annotation(replica, "standards"),
            categories: list_annotation(replica, "categories"),
            controls: list_annotation(replica, "controls"),
        });
        last.insert(key, state.to_string());
    }
    out
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
    let mut last: HashMap<Key, String> = latest
        .into_iter()
        .map(|r| {
            (
                (r.event.cluster, r.event.replica, r.event.template),
                r.event.state,
            )
        })
        .collect();
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

/// Signs the history's head every `checkpoint_every`, when it moved.
pub async fn checkpoint(ctx: Arc<Ctx>) {
    let mut tick = tokio::time::interval(ctx.checkpoint_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match ctx
            .history
            .checkpoint(ctx.key.pkcs8().to_vec(), now())
            .await
        {
            Ok(Some(c)) => tracing::info!(seq = c.seq, "compliance history checkpoint signed"),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "cannot sign a compliance history checkpoint"),
        }
    }
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
}
