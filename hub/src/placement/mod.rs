//! Placement scheduling on the hub: watches placements and everything they depend on, runs
//! [`schedule::schedule`] over a snapshot of the watch caches, and publishes the result as
//! PlacementDecisions and the placement's status.
//!
//! A placement is scheduled again when it changes, when one of its PlacementDecisions changes,
//! when a cluster it selects or could select changes (labels, claims, taints, status, deletion),
//! when a cluster set or a binding that reaches its namespace changes, when an
//! AddOnPlacementScore it ranks by (or may read through CEL) changes, and when a toleration of
//! one of its clusters or a score it used runs out. Writes happen only when something changed.

pub mod cel;
pub mod schedule;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use garrison_api::cluster::v1alpha1::AddOnPlacementScore;
use garrison_api::cluster::v1beta1::{
    ClusterDecision, DecisionGroupStatus, Placement, PlacementDecision, PlacementDecisionStatus,
    PlacementStatus, ScoreCoordinateType,
};
use garrison_api::cluster::v1beta2::ManagedClusterSet;
use garrison_api::conditions::placement as pc;
use garrison_api::labels::{
    DECISION_GROUP_INDEX, DECISION_GROUP_NAME, PLACEMENT, PLACEMENT_DISABLE_ANNOTATION,
};
use garrison_api::status::{condition, set_condition};
use garrison_api::{ManagedCluster, ManagedClusterSetBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Config};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::cache::{Informers, watched};
use schedule::{Code, DecisionSlice, Outcome, ScoreSource, Snapshot};

const MANAGER: &str = "garrison-placement";

/// Errors of one pass.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API call failed.
    #[error("API call failed: {0}")]
    Kube(#[from] kube::Error),
}

/// The watch caches a pass reads.
#[derive(Clone)]
pub struct Caches {
    /// Placements.
    pub placements: Store<Placement>,
    /// ManagedClusters.
    pub clusters: Store<ManagedCluster>,
    /// ManagedClusterSets.
    pub sets: Store<ManagedClusterSet>,
    /// ManagedClusterSetBindings.
    pub bindings: Store<ManagedClusterSetBinding>,
    /// PlacementDecisions.
    pub decisions: Store<PlacementDecision>,
    /// AddOnPlacementScores.
    pub scores: Store<AddOnPlacementScore>,
}

impl Caches {
    /// Waits until every cache has its first full list.
    pub async fn ready(&self) {
        let _ = futures::join!(
            self.placements.wait_until_ready(),
            self.clusters.wait_until_ready(),
            self.sets.wait_until_ready(),
            self.bindings.wait_until_ready(),
            self.decisions.wait_until_ready(),
            self.scores.wait_until_ready(),
        );
    }
}

impl ScoreSource for Store<AddOnPlacementScore> {
    fn score(&self, cluster: &str, resource: &str) -> Option<Arc<AddOnPlacementScore>> {
        self.get(&ObjectRef::new(resource).within(cluster))
    }
}

/// What the controller needs.
pub struct Ctx {
    /// The API, as the hub.
    pub client: kube::Client,
    /// The watch caches.
    pub caches: Caches,
}

fn placement_key(ns: &str, name: &str) -> ObjectRef<Placement> {
    ObjectRef::new(name).within(ns)
}

/// The decisions of placement `ns/name`, from the cache.
fn decisions_of(caches: &Caches, ns: &str, name: &str) -> Vec<Arc<PlacementDecision>> {
    caches.decisions.state_filter(|d| {
        d.namespace().as_deref() == Some(ns)
            && d.labels().get(PLACEMENT).map(String::as_str) == Some(name)
    })
}

/// Placements in `ns` that may use set `set`: those listing it, and those listing none.
fn placements_using(caches: &Caches, ns: &str, set: &str) -> Vec<ObjectRef<Placement>> {
    caches
        .placements
        .state_filter(|p| {
            p.namespace().as_deref() == Some(ns)
                && (p.spec.cluster_sets.is_empty() || p.spec.cluster_sets.iter().any(|s| s == set))
        })
        .iter()
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// Placements a set's change may affect: those in namespaces where a binding names it.
fn placements_of_set(caches: &Caches, set: &str) -> Vec<ObjectRef<Placement>> {
    let namespaces: BTreeSet<String> = caches
        .bindings
        .state_filter(|b| b.name_any() == set)
        .iter()
        .filter_map(|b| b.namespace())
        .collect();
    namespaces
        .iter()
        .flat_map(|ns| placements_using(caches, ns, set))
        .collect()
}

/// Placements a cluster's change may affect: those that could select it through a set it is in
/// now, and those whose decisions hold it (it may have left their sets).
fn placements_of_cluster(caches: &Caches, cluster: &ManagedCluster) -> Vec<ObjectRef<Placement>> {
    let name = cluster.name_any();
    let mut out: Vec<ObjectRef<Placement>> = Vec::new();
    for set in caches.sets.state() {
        if schedule::set_selects(&set, cluster) {
            out.extend(placements_of_set(caches, &set.name_any()));
        }
    }
    for d in caches.decisions.state() {
        let holds = d
            .status
            .as_ref()
            .is_some_and(|s| s.decisions.iter().any(|e| e.cluster_name == name));
        if holds && let (Some(ns), Some(p)) = (d.namespace(), d.labels().get(PLACEMENT)) {
            out.push(placement_key(&ns, p));
        }
    }
    // The controller's queue removes duplicates.
    out
}

/// Placements that rank by score `resource`, or may read it through CEL.
fn placements_of_score(caches: &Caches, resource: &str) -> Vec<ObjectRef<Placement>> {
    caches
        .placements
        .state_filter(|p| {
            let ranks = p.spec.prioritizer_policy.iter().any(|pp| {
                pp.configurations.iter().any(|c| {
                    c.score_coordinate.type_ == Some(ScoreCoordinateType::AddOn)
                        && c.score_coordinate
                            .add_on
                            .as_ref()
                            .is_some_and(|a| a.resource_name == resource)
                })
            });
            let cel = p.spec.predicates.iter().any(|pr| {
                pr.required_cluster_selector
                    .as_ref()
                    .and_then(|r| r.cel_selector.as_ref())
                    .is_some_and(|c| c.cel_expressions.iter().any(|e| e.contains(resource)))
            });
            ranks || cel
        })
        .iter()
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// Per cluster, how many decision entries of placements other than `ns/name` name it.
fn other_counts(caches: &Caches, ns: &str, name: &str) -> HashMap<String, u32> {
    let mut counts: HashMap<String, u32> = HashMap::new();
    for d in caches.decisions.state() {
        let own = d.namespace().as_deref() == Some(ns)
            && d.labels().get(PLACEMENT).map(String::as_str) == Some(name);
        if own {
            continue;
        }
        for e in d.status.iter().flat_map(|s| s.decisions.iter()) {
            *counts.entry(e.cluster_name.clone()).or_default() += 1;
        }
    }
    counts
}

/// Runs one pass over the caches, without writing anything.
pub fn plan(caches: &Caches, placement: &Placement, now: jiff::Timestamp) -> Outcome {
    let ns = placement.namespace().unwrap_or_default();
    let name = placement.name_any();
    let clusters = caches.clusters.state();
    let sets: BTreeMap<String, Arc<ManagedClusterSet>> = caches
        .sets
        .state()
        .into_iter()
        .map(|s| (s.name_any(), s))
        .collect();
    let bindings = caches
        .bindings
        .state_filter(|b| b.namespace().as_deref() == Some(ns.as_str()));
    let existing: BTreeSet<String> = decisions_of(caches, &ns, &name)
        .iter()
        .flat_map(|d| d.status.iter().flat_map(|s| s.decisions.iter()))
        .map(|e| e.cluster_name.clone())
        .collect();
    let others = other_counts(caches, &ns, &name);
    let snap = Snapshot {
        clusters: &clusters,
        sets: &sets,
        bindings: &bindings,
        existing: &existing,
        others: &others,
        scores: Arc::new(caches.scores.clone()),
        now,
    };
    schedule::schedule(placement, &snap)
}

fn decision_labels(placement: &str, slice: &DecisionSlice) -> BTreeMap<String, String> {
    BTreeMap::from([
        (PLACEMENT.to_string(), placement.to_string()),
        (
            DECISION_GROUP_INDEX.to_string(),
            slice.group_index.to_string(),
        ),
        (DECISION_GROUP_NAME.to_string(), slice.group_name.clone()),
    ])
}

fn decision_status(slice: &DecisionSlice) -> PlacementDecisionStatus {
    PlacementDecisionStatus {
        decisions: slice
            .clusters
            .iter()
            .map(|c| ClusterDecision {
                cluster_name: c.clone(),
                reason: String::new(),
            })
            .collect(),
    }
}

/// Makes the placement's PlacementDecisions those of `outcome`: applies new and changed ones,
/// deletes those no longer wanted.
async fn write_decisions(ctx: &Ctx, placement: &Placement, outcome: &Outcome) -> Result<(), Error> {
    let ns = placement.namespace().unwrap_or_default();
    let name = placement.name_any();
    let api: Api<PlacementDecision> = Api::namespaced(ctx.client.clone(), &ns);
    let wanted = outcome.decisions(&name);
    let owner = placement.controller_owner_ref(&()).map(|mut o| {
        o.block_owner_deletion = Some(true);
        o
    });
    for slice in &wanted {
        let labels = decision_labels(&name, slice);
        let status = decision_status(slice);
        let current = ctx
            .caches
            .decisions
            .get(&ObjectRef::new(&slice.name).within(&ns));
        let meta_ok = current.as_ref().is_some_and(|d| {
            labels.iter().all(|(k, v)| d.labels().get(k) == Some(v))
                && d.labels().len() == labels.len()
        });
        if !meta_ok {
            let body = json!({
                "apiVersion": "cluster.open-cluster-management.io/v1beta1",
                "kind": "PlacementDecision",
                "metadata": {"name": slice.name, "namespace": ns, "labels": labels,
                    "ownerReferences": owner.iter().collect::<Vec<_>>()},
            });
            api.patch(
                &slice.name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await?;
        }
        let status_ok = current
            .as_ref()
            .is_some_and(|d| d.status.as_ref() == Some(&status));
        if !status_ok || !meta_ok {
            let body = json!({"status": status});
            api.patch_status(&slice.name, &PatchParams::default(), &Patch::Merge(&body))
                .await?;
        }
    }
    let keep: BTreeSet<&str> = wanted.iter().map(|s| s.name.as_str()).collect();
    for d in decisions_of(&ctx.caches, &ns, &name) {
        let dname = d.name_any();
        if keep.contains(dname.as_str()) {
            continue;
        }
        match api.delete(&dname, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The status `outcome` gives `placement`, keeping condition times that did not change.
pub fn status_of(placement: &Placement, outcome: &Outcome, now: Time) -> PlacementStatus {
    let mut status = placement.status.clone().unwrap_or_default();
    let name = placement.name_any();
    let slices = outcome.decisions(&name);
    status.number_of_selected_clusters = Some(outcome.selected as i32);
    status.decision_groups = Some(
        outcome
            .groups
            .iter()
            .map(|g| DecisionGroupStatus {
                decision_group_index: Some(g.index as i32),
                decision_group_name: Some(g.name.clone()),
                decisions: Some(
                    slices
                        .iter()
                        .filter(|s| s.group_index == g.index)
                        .map(|s| s.name.clone())
                        .collect(),
                ),
                clusters_count: Some(g.clusters.len() as i32),
            })
            .collect(),
    );
    let mut conditions = status.conditions.take().unwrap_or_default();
    for (type_, c) in [
        (pc::SATISFIED, &outcome.satisfied),
        (pc::MISCONFIGURED, &outcome.misconfigured),
    ] {
        set_condition(
            &mut conditions,
            condition(type_, c.status, c.reason, &c.message),
            now.clone(),
        );
    }
    status.conditions = Some(conditions);
    status
}

async fn reconcile(placement: Arc<Placement>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if placement.metadata.deletion_timestamp.is_some()
        || placement
            .annotations()
            .get(PLACEMENT_DISABLE_ANNOTATION)
            .is_some_and(|v| v == "true")
    {
        return Ok(Action::await_change());
    }
    // Deciding on half-filled caches would drop clusters from decisions.
    ctx.caches.ready().await;
    let ns = placement.namespace().unwrap_or_default();
    let name = placement.name_any();
    let now = jiff::Timestamp::now();
    let outcome = plan(&ctx.caches, &placement, now);
    match outcome.code {
        Code::Success => {}
        Code::Warning => {
            tracing::warn!(placement = %format!("{ns}/{name}"), message = %outcome.message, "scheduled with a warning")
        }
        Code::Error | Code::Misconfigured => {
            tracing::info!(placement = %format!("{ns}/{name}"), message = %outcome.message, "placement not scheduled")
        }
    }
    write_decisions(&ctx, &placement, &outcome).await?;
    let status = status_of(&placement, &outcome, Time(now));
    if placement.status.as_ref() != Some(&status) {
        let api: Api<Placement> = Api::namespaced(ctx.client.clone(), &ns);
        let body = json!({"status": status});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await?;
    }
    Ok(match (outcome.requeue_after, outcome.code) {
        (Some(d), _) => Action::requeue(d + Duration::from_millis(100)),
        (None, Code::Warning) => Action::requeue(Duration::from_secs(60)),
        (None, _) => Action::await_change(),
    })
}

fn error_policy(_: Arc<Placement>, err: &Error, _: Arc<Ctx>) -> Action {
    tracing::warn!(error = %err, "placement pass failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the placement controller until the client's server goes away.
pub async fn run(informers: Informers) {
    let client = informers.client().clone();
    let cfg = watcher::Config::default;
    let (clusters, cluster_events) = watched::<ManagedCluster>(&informers, cfg());
    let (sets, set_events) = watched::<ManagedClusterSet>(&informers, cfg());
    let (bindings, binding_events) = watched::<ManagedClusterSetBinding>(&informers, cfg());
    let (decisions, decision_events) = watched::<PlacementDecision>(&informers, cfg());
    let (scores, score_events) = watched::<AddOnPlacementScore>(&informers, cfg());

    let controller = crate::cache::controller::<Placement>(&informers, cfg())
        .with_config(Config::default().debounce(Duration::from_millis(50)));
    let probe = crate::metrics::Probe::new("placement", &controller);
    let caches = Caches {
        placements: controller.store(),
        clusters,
        sets,
        bindings,
        decisions,
        scores,
    };
    let (c1, c2, c3, c5) = (
        caches.clone(),
        caches.clone(),
        caches.clone(),
        caches.clone(),
    );
    let ctx = Arc::new(Ctx { client, caches });
    controller
        .watches_stream(cluster_events, move |c: ManagedCluster| {
            placements_of_cluster(&c1, &c)
        })
        .watches_stream(set_events, move |s: ManagedClusterSet| {
            placements_of_set(&c2, &s.name_any())
        })
        .watches_stream(binding_events, move |b: ManagedClusterSetBinding| {
            placements_using(&c3, &b.namespace().unwrap_or_default(), &b.name_any())
        })
        .watches_stream(decision_events, move |d: PlacementDecision| {
            d.labels()
                .get(PLACEMENT)
                .map(|p| placement_key(&d.namespace().unwrap_or_default(), p))
        })
        .watches_stream(score_events, move |s: AddOnPlacementScore| {
            placements_of_score(&c5, &s.name_any())
        })
        .run(probe.timed(reconcile), error_policy, ctx)
        .for_each(|_| async {})
        .await;
}
