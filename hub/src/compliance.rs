//! The compliance history's recorder: every change of compliance state of every template of
//! every replicated policy, as its cluster's policy add-on reports it, appended once to the
//! history; and the checkpointer, which signs the history's head at intervals.
//!
//! The recorder keeps the last recorded state of each (cluster, replica, template), read from
//! the history when it starts, so a restart records what changed while it was down and nothing
//! twice.
//!
//! What goes away is recorded too, as upstream's status sync records it: a template removed
//! from its policy, and a replicated policy removed from its cluster (the policy deleted or
//! disabled, the cluster no longer placed, the binding or the cluster gone), each get a
//! `Disabled` record with upstream's message, so that no report keeps a removed template's last
//! state in force. A removal while the hub was down is found when the recorder starts again:
//! whatever the history holds in force for a replica that no longer exists.

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

/// The states a cluster's status may report for a template.
pub const REPORTED_STATES: [&str; 3] = ["Compliant", "NonCompliant", "Pending"];
/// The state a removed template is recorded with, as upstream records it.
pub const DISABLED: &str = "Disabled";
/// Upstream's message for a template removed from its policy.
pub const TEMPLATE_REMOVED: &str = "The policy was removed from the parent policy";
/// Upstream's message for a replicated policy removed from its cluster.
pub const REPLICA_REMOVED: &str =
    "The policy was removed because the parent policy no longer applies to this cluster";

/// The last recorded state of a template, when, and the record that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Last {
    /// Compliant, NonCompliant, Pending, Disabled.
    pub state: String,
    /// RFC 3339.
    pub time: String,
    /// The record's position in the history; 0 until it is appended.
    pub seq: u64,
}

/// The last recorded state of every template the recorder knows: (cluster, replica) to
/// template (`<kind>/<name>`) to its last record.
pub type Ledger = HashMap<(String, String), HashMap<String, Last>>;

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
    pub anchor: Anchor,
}

/// The ConfigMap beside a hub on a real Kubernetes that publishes the history's public key
/// (`public-key.pem`) and remembers its newest signed checkpoint (`checkpoint`). Both are public:
/// a checkpoint is signed, and proves nothing to whoever cannot verify the signature.
pub const HISTORY_CONFIGMAP: &str = "garrison-compliance-history";
/// Its key for the public key.
pub const PUBLIC_KEY_ENTRY: &str = "public-key.pem";
/// Its key for the newest checkpoint (an anchor file's text).
pub const CHECKPOINT_ENTRY: &str = "checkpoint";

/// Where the newest signed checkpoint is remembered, outside the history's store, so that a
/// history whose newest records were removed together with the checkpoints that signed them is
/// still caught.
#[derive(Clone)]
pub enum Anchor {
    /// A file in the hub's data directory (the embedded hub).
    File(std::path::PathBuf),
    /// [`HISTORY_CONFIGMAP`] in `namespace`, where the replicas of a hub on a real Kubernetes
    /// share it.
    ConfigMap {
        /// The hub's client.
        client: kube::Client,
        /// The hub's namespace.
        namespace: String,
    },
}

impl Anchor {
    /// The remembered checkpoint (`None` when none is remembered yet). One that is there but
    /// cannot be read is an error: nothing is signed over it.
    pub async fn read(&self) -> Result<Option<garrison_governance::history::Checkpoint>, String> {
        match self {
            // The file is read as the history's API reads it for verification.
            Anchor::File(path) => {
                garrison_governance::history::api::read_anchor(path).map_err(|e| e.to_string())
            }
            Anchor::ConfigMap { client, namespace } => {
                let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
                    Api::namespaced(client.clone(), namespace);
                let cm = api.get_opt(HISTORY_CONFIGMAP).await.map_err(|e| {
                    format!("cannot read ConfigMap {namespace}/{HISTORY_CONFIGMAP}: {e}")
                })?;
                match cm
                    .and_then(|c| c.data)
                    .and_then(|mut d| d.remove(CHECKPOINT_ENTRY))
                {
                    Some(text) => garrison_governance::history::export::newest_checkpoint(&text)
                        .map_err(|e| format!("the remembered checkpoint is unreadable: {e}")),
                    None => Ok(None),
                }
            }
        }
    }

    /// Remembers `text` (an anchor file's) in place of what was remembered.
    pub async fn write(&self, text: String) -> Result<(), String> {
        match self {
            Anchor::File(path) => {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, text)
                    .and_then(|()| std::fs::rename(&tmp, path))
                    .map_err(|e| e.to_string())
            }
            Anchor::ConfigMap { client, namespace } => {
                let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
                    Api::namespaced(client.clone(), namespace);
                let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": HISTORY_CONFIGMAP, "namespace": namespace},
                    "data": {CHECKPOINT_ENTRY: text}});
                api.patch(
                    HISTORY_CONFIGMAP,
                    &kube::api::PatchParams::apply("garrison-compliance-checkpoint").force(),
                    &kube::api::Patch::Apply(&cm),
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
            }
        }
    }
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

/// The changes `replica`'s status shows against `ledger` (the last recorded state per template),
/// stamped with the time its history gives, held between the template's last record and `now`
/// (a cluster cannot move its changes into the past or the future). A status entry for a
/// template the policy no longer has is stale, and not recorded. Updates `ledger`.
pub fn changes(replica: &Policy, ledger: &mut Ledger, now: &str) -> Vec<Event> {
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
        // Only the states a cluster reports; `Disabled` is the hub's to record, so a cluster
        // cannot make a template look removed.
        let Some(state) = detail
            .compliant
            .as_deref()
            .filter(|s| REPORTED_STATES.contains(s))
        else {
            continue;
        };
        let name = detail
            .template_meta
            .as_ref()
            .and_then(|m| m["name"].as_str())
            .unwrap_or_default();
        let Some(definition) = replica
            .spec
            .policy_templates
            .iter()
            .map(|t| &t.object_definition)
            .find(|d| d["metadata"]["name"] == name)
        else {
            continue;
        };
        let template = template_key(definition);
        let last = ledger
            .entry((cluster.clone(), replica.name_any()))
            .or_default();
        let previous = last.get(&template);
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
            template.clone(),
            Last {
                state: state.to_string(),
                time: time.clone(),
                seq: 0,
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
            severity: clean(definition["spec"]["severity"].as_str().unwrap_or_default()),
            standards: list("standards"),
            categories: list("categories"),
            controls: list("controls"),
        });
    }
    out
}

/// A template's key in the history: `<kind>/<name>`.
fn template_key(definition: &serde_json::Value) -> String {
    format!(
        "{}/{}",
        definition["kind"].as_str().unwrap_or_default(),
        definition["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// A removal to record: the template's last record (by its position) is followed by a
/// `Disabled` one with `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// (cluster, replica, template).
    pub key: (String, String, String),
    /// The position of the template's last record.
    pub seq: u64,
    /// Why, in upstream's words.
    pub message: &'static str,
}

/// The templates of replica `name` of `cluster` that the ledger holds in force and `gone`
/// picks, each to be followed by a `Disabled` record with `message`, in key order.
fn removals(
    cluster: &str,
    name: &str,
    ledger: &Ledger,
    message: &'static str,
    gone: impl Fn(&str) -> bool,
) -> Vec<Removal> {
    let Some(known) = ledger.get(&(cluster.to_string(), name.to_string())) else {
        return vec![];
    };
    let mut out: Vec<Removal> = known
        .iter()
        .filter(|(t, l)| l.state != DISABLED && gone(t))
        .map(|(t, l)| Removal {
            key: (cluster.to_string(), name.to_string(), t.clone()),
            seq: l.seq,
            message,
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// The templates of `replica` the ledger holds in force that its spec no longer has.
pub fn removed_templates(replica: &Policy, ledger: &Ledger) -> Vec<Removal> {
    let Some(cluster) = cluster_of(replica) else {
        return vec![];
    };
    let current: std::collections::HashSet<String> = replica
        .spec
        .policy_templates
        .iter()
        .map(|t| template_key(&t.object_definition))
        .collect();
    removals(
        &cluster,
        &replica.name_any(),
        ledger,
        TEMPLATE_REMOVED,
        |t| !current.contains(t),
    )
}

/// Every template the ledger holds in force for replica `name` of `cluster`, which is gone.
pub fn removed_replica(cluster: &str, name: &str, ledger: &Ledger) -> Vec<Removal> {
    removals(cluster, name, ledger, REPLICA_REMOVED, |_| true)
}

/// Every template the ledger holds in force for a replica that a full list (`seen`: cluster and
/// name of each replica listed) no longer shows: those removed while no watch was open.
pub fn removed_unseen(
    ledger: &Ledger,
    seen: &std::collections::HashSet<(String, String)>,
) -> Vec<Removal> {
    let mut gone: Vec<Removal> = ledger
        .keys()
        .filter(|k| !seen.contains(*k))
        .flat_map(|(c, n)| removed_replica(c, n, ledger))
        .collect();
    gone.sort_by(|a, b| a.key.cmp(&b.key));
    gone
}

/// The `Disabled` record that follows `last`, the template's last record, at `now` (never
/// before `last`): the same cluster, policy, template and controls, so that it takes the
/// template out of the very cells of a report that `last` counted it in. Updates `ledger`.
pub fn disabled(last: &Event, message: &str, now: &str, ledger: &mut Ledger) -> Event {
    let time = if last.time.as_str() > now {
        last.time.clone()
    } else {
        now.to_string()
    };
    disabled_in(
        ledger,
        &(
            last.cluster.clone(),
            last.replica.clone(),
            last.template.clone(),
        ),
        &time,
    );
    Event {
        time,
        state: DISABLED.into(),
        message: message.into(),
        ..last.clone()
    }
}

/// Notes in `ledger` that template `key` is no longer in force, from `time`.
fn disabled_in(ledger: &mut Ledger, key: &(String, String, String), time: &str) {
    ledger
        .entry((key.0.clone(), key.1.clone()))
        .or_default()
        .insert(
            key.2.clone(),
            Last {
                state: DISABLED.into(),
                time: time.to_string(),
                seq: 0,
            },
        );
}

/// Notes the positions of appended `records` in `ledger`.
fn note_appended(records: &[garrison_governance::history::Record], ledger: &mut Ledger) {
    for r in records {
        let e = &r.event;
        if let Some(l) = ledger
            .get_mut(&(e.cluster.clone(), e.replica.clone()))
            .and_then(|m| m.get_mut(&e.template))
        {
            l.seq = r.seq;
        }
    }
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

/// The `Disabled` records for `removals`, each following the template's last record as the
/// history holds it. A last record the history no longer holds as the ledger knew it (the
/// store was edited behind the hub's back) is not followed: `garrison audit verify` names it.
/// A store that cannot be read is an error: the recorder starts over, and its first list
/// finds the removal again.
async fn disabled_records(
    ctx: &Ctx,
    removals: Vec<Removal>,
    ledger: &mut Ledger,
) -> Result<Vec<Event>, garrison_governance::history::HistoryError> {
    let mut out = vec![];
    let now = now();
    for r in removals {
        let held = ctx.history.get(r.seq).await?;
        match held {
            Some(last)
                if (
                    &last.event.cluster,
                    &last.event.replica,
                    &last.event.template,
                ) == (&r.key.0, &r.key.1, &r.key.2) =>
            {
                out.push(disabled(&last.event, r.message, &now, ledger));
            }
            _ => {
                tracing::error!(seq = r.seq, cluster = %r.key.0, policy = %r.key.1, template = %r.key.2,
                    "the history no longer holds a removed template's last record; its removal is not recorded (run garrison audit verify)");
                // Said once: the ledger no longer holds the template in force.
                disabled_in(ledger, &r.key, &now);
            }
        }
    }
    Ok(out)
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
    let mut ledger: Ledger = HashMap::new();
    for r in latest {
        ledger
            .entry((r.event.cluster, r.event.replica))
            .or_default()
            .insert(
                r.event.template,
                Last {
                    state: r.event.state,
                    time: r.event.time,
                    seq: r.seq,
                },
            );
    }
    let mut known = Known::default();
    // The replicas a (re)list showed, to find those removed while no watch was open.
    let mut listed: Option<std::collections::HashSet<(String, String)>> = None;
    let api: Api<Policy> = Api::all(ctx.client.clone());
    let cfg = watcher::Config::default().labels(ROOT_LABEL);
    let mut stream = watcher(api, cfg).default_backoff().boxed();
    while let Some(item) = stream.next().await {
        let (mut events, removals) = match item {
            Err(e) => {
                tracing::warn!(error = %e, "watching replicated policies failed; retrying");
                continue;
            }
            Ok(watcher::Event::Init) => {
                listed = Some(Default::default());
                continue;
            }
            Ok(watcher::Event::InitApply(replica)) | Ok(watcher::Event::Apply(replica)) => {
                if let (Some(listed), Some(cluster)) = (listed.as_mut(), cluster_of(&replica)) {
                    listed.insert((cluster, replica.name_any()));
                }
                if !vouched_for(&ctx.client, &replica, &mut known).await {
                    continue;
                }
                let events = changes(&replica, &mut ledger, &now());
                (events, removed_templates(&replica, &ledger))
            }
            // Only what the ledger holds is followed by a removal: it was vouched for when
            // it was recorded.
            Ok(watcher::Event::Delete(replica)) => match cluster_of(&replica) {
                Some(cluster) => (
                    vec![],
                    removed_replica(&cluster, &replica.name_any(), &ledger),
                ),
                None => continue,
            },
            Ok(watcher::Event::InitDone) => {
                // Only a list seen from its start says what no longer exists.
                let Some(seen) = listed.take() else {
                    continue;
                };
                (vec![], removed_unseen(&ledger, &seen))
            }
        };
        if !removals.is_empty() {
            match disabled_records(&ctx, removals, &mut ledger).await {
                Ok(disabled) => events.extend(disabled),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the compliance history to record a removal; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    return;
                }
            }
        }
        if events.is_empty() {
            continue;
        }
        let n = events.len();
        match ctx.history.append(events).await {
            Ok(records) => {
                note_appended(&records, &mut ledger);
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
    let remembered = ctx.anchor.read().await?;
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
    ctx.anchor
        .write(text)
        .await
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
        let mut last = Ledger::new();
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
        let mut last = Ledger::new();
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
        assert!(changes(&other, &mut Ledger::new(), "now").is_empty());
        // A cluster cannot report a template removed, or a state of its own invention.
        for forged in ["Disabled", "Whatever", ""] {
            assert!(
                changes(&replica(forged, "removed"), &mut Ledger::new(), "now").is_empty(),
                "{forged}"
            );
        }
        // NUL characters are dropped, so every store can hold the text.
        let nul = replica("NonCompliant", "bad\0message");
        assert_eq!(
            changes(&nul, &mut Ledger::new(), "2026-03-05T00:00:00Z")[0].message,
            "badmessage"
        );
    }

    #[test]
    fn a_removed_template_or_replica_is_followed_by_one_disabled_record_in_its_cells() {
        let mut ledger = Ledger::new();
        let first = changes(
            &replica("NonCompliant", "x"),
            &mut ledger,
            "2026-03-05T00:00:00Z",
        );
        assert_eq!(first.len(), 1);
        let appended = garrison_governance::history::Record::next(None, first[0].clone());
        note_appended(std::slice::from_ref(&appended), &mut ledger);
        let key = (
            "cluster1".to_string(),
            "policies.ac-2".to_string(),
            "ConfigurationPolicy/accounts".to_string(),
        );

        // The template leaves the policy; its stale status entry is not recorded again.
        let mut without = replica("Compliant", "stale");
        without.spec.policy_templates.clear();
        assert!(changes(&without, &mut ledger, "2026-03-06T00:00:00Z").is_empty());
        let removed = removed_templates(&without, &ledger);
        assert_eq!(
            removed,
            vec![Removal {
                key: key.clone(),
                seq: appended.seq,
                message: TEMPLATE_REMOVED
            }]
        );
        // A template still there is not removed.
        assert!(removed_templates(&replica("Compliant", "ok"), &ledger).is_empty());

        let d = disabled(
            &first[0],
            TEMPLATE_REMOVED,
            "2026-03-06T00:00:00Z",
            &mut ledger,
        );
        assert_eq!(d.state, DISABLED);
        assert_eq!(d.message, "The policy was removed from the parent policy");
        assert_eq!(d.time, "2026-03-06T00:00:00Z");
        // The same cells as the record it follows.
        assert_eq!(
            (&d.cluster, &d.policy, &d.template, &d.controls, &d.severity),
            (
                &first[0].cluster,
                &first[0].policy,
                &first[0].template,
                &first[0].controls,
                &first[0].severity
            )
        );
        // Recorded once: nothing is in force any more.
        assert!(removed_templates(&without, &ledger).is_empty());
        assert!(removed_replica("cluster1", "policies.ac-2", &ledger).is_empty());
        // A clock behind the last record does not put the removal before it.
        let mut ledger2 = Ledger::new();
        let early = disabled(
            &first[0],
            REPLICA_REMOVED,
            "2000-01-01T00:00:00Z",
            &mut ledger2,
        );
        assert_eq!(early.time, first[0].time);

        // The template comes back: its state is recorded again, after the removal.
        let back = changes(
            &replica("Compliant", "ok"),
            &mut ledger,
            "2026-03-07T00:00:00Z",
        );
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].time, "2026-03-06T00:00:00Z");
        // Then the whole replica goes.
        let gone = removed_replica("cluster1", "policies.ac-2", &ledger);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].message, REPLICA_REMOVED);
        assert_eq!(gone[0].key, key);
        // A replica the ledger never held has nothing to remove.
        assert!(removed_replica("cluster2", "policies.ac-2", &ledger).is_empty());

        // After a restart, a list that no longer shows the replica removes what is in force;
        // one that shows it removes nothing.
        let listed: std::collections::HashSet<(String, String)> =
            [("cluster1".to_string(), "policies.ac-2".to_string())].into();
        assert!(removed_unseen(&ledger, &listed).is_empty());
        let unseen = removed_unseen(&ledger, &Default::default());
        assert_eq!(unseen.len(), 1);
        assert_eq!(unseen[0].message, REPLICA_REMOVED);
    }
}
