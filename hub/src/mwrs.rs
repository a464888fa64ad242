//! ManifestWorkReplicaSet: one ManifestWork template rolled out to the clusters its placements
//! choose, as upstream OCM does it.
//!
//! - Each chosen cluster gets a ManifestWork named after the replica set in the cluster's
//!   namespace, labelled `work.open-cluster-management.io/manifestworkreplicaset=<ns>.<name>`
//!   and `work.open-cluster-management.io/placementname=<placement>`.
//! - Which clusters get the current template now is up to the placement's rollout strategy
//!   ([`crate::rollout`]): a work counts as on the current template when its spec equals it, and
//!   its rollout state comes from its conditions (Progressing and Degraded when the agent
//!   reports them for the current generation, else Available). Works on an older template stay
//!   as they are until the rollout reaches their cluster.
//! - Works of clusters no longer chosen, and of placements no longer referenced, are deleted;
//!   so are all the replica set's works when it is deleted (finalizer
//!   `work.open-cluster-management.io/manifest-work-cleanup`).
//! - Status: `summary` and `placementSummary` count the current works Applied, Available,
//!   Progressing and Degraded; conditions `PlacementVerified`, `PlacementRolledOut` and
//!   `ManifestworkApplied` with upstream's reasons.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use garrison_api::cluster::v1beta1::{Placement, PlacementDecision};
use garrison_api::conditions::{
    STATUS_FALSE, STATUS_TRUE, manifest_work_replica_set as mc, work as wc,
};
use garrison_api::labels::{
    MANIFEST_WORK_REPLICA_SET, MANIFEST_WORK_REPLICA_SET_FINALIZER,
    MANIFEST_WORK_REPLICA_SET_PLACEMENT_NAME, PLACEMENT,
};
use garrison_api::status::{condition, find_condition, set_condition};
use garrison_api::work::v1::ManifestWork;
use garrison_api::work::v1alpha1::{
    ManifestWorkReplicaSet, ManifestWorkReplicaSetStatus, ManifestWorkReplicaSetSummary,
    PlacementSummary,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use serde_json::json;

use crate::cache::{Informers, watched};
use crate::rollout::{self, ClusterStatus, Groups, Status};

/// Longest wait before a replica set is looked at again.
const MAX_REQUEUE: Duration = Duration::from_secs(30 * 60);

/// Errors of one pass.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API call failed.
    #[error("API call failed: {0}")]
    Kube(#[from] kube::Error),
    /// A work did not convert.
    #[error("bad object: {0}")]
    Json(#[from] serde_json::Error),
}

struct Ctx {
    client: kube::Client,
    works: Store<ManifestWork>,
    placements: Store<Placement>,
    decisions: Store<PlacementDecision>,
}

/// The owner label's value for replica set `ns/name`.
pub fn owner_key(ns: &str, name: &str) -> String {
    format!("{ns}.{name}")
}

/// The rollout state of a work, from its conditions (upstream's mapping).
pub fn work_status(work: &ManifestWork) -> ClusterStatus {
    let cluster = work.namespace().unwrap_or_default();
    let generation = work.metadata.generation;
    let conds = work
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let current =
        |t: &str| find_condition(conds, t).filter(|c| c.observed_generation == generation);
    let lt = |c: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition| {
        Some(c.last_transition_time.0)
    };
    let mut st = ClusterStatus::new(&cluster, Status::ToApply);
    let applied = current(wc::APPLIED);
    let progressing = current(wc::PROGRESSING);
    let available = current(wc::AVAILABLE);
    let degraded = find_condition(conds, wc::DEGRADED);
    if applied.is_none_or(|c| c.status != STATUS_TRUE)
        || (progressing.is_none() && available.is_none())
        || degraded.is_some_and(|d| d.observed_generation != generation)
    {
        return st;
    }
    let degraded_true = degraded.filter(|d| d.status == STATUS_TRUE);
    match progressing {
        None => {
            if let Some(d) = degraded_true {
                st.status = Status::Failed;
                st.last_transition = lt(d);
            } else if let Some(a) = available {
                st.status = if a.status == STATUS_TRUE {
                    Status::Succeeded
                } else {
                    Status::Progressing
                };
                st.last_transition = lt(a);
            } else {
                st.status = Status::Progressing;
            }
        }
        Some(p) => {
            if p.status == STATUS_TRUE {
                if let Some(d) = degraded_true {
                    st.status = Status::Failed;
                    st.last_transition = lt(d);
                } else {
                    st.status = Status::Progressing;
                    st.last_transition = lt(p);
                }
            } else if p.status == STATUS_FALSE {
                st.status = Status::Succeeded;
                st.last_transition = lt(p);
            } else {
                st.status = Status::Progressing;
                st.last_transition = lt(p);
            }
        }
    }
    st
}

fn is_true(work: &ManifestWork, t: &str) -> bool {
    work.status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, t))
        .is_some_and(|c| c.status == STATUS_TRUE)
}

fn groups_of(ctx: &Ctx, ns: &str, placement: &str) -> Groups {
    let decisions = ctx.decisions.state_filter(|d| {
        d.namespace().as_deref() == Some(ns)
            && d.labels().get(PLACEMENT).map(String::as_str) == Some(placement)
    });
    rollout::groups_of(decisions.iter().map(|d| &**d))
}

fn set(
    conds: &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    t: &str,
    reason: &str,
) {
    let ok = matches!(
        (t, reason),
        (mc::PLACEMENT_VERIFIED, mc::REASON_AS_EXPECTED)
            | (mc::PLACEMENT_ROLLED_OUT, mc::REASON_COMPLETE)
            | (mc::MANIFESTWORK_APPLIED, mc::REASON_AS_EXPECTED)
    );
    set_condition(
        conds,
        condition(t, if ok { STATUS_TRUE } else { STATUS_FALSE }, reason, ""),
        Time(jiff::Timestamp::now()),
    );
}

async fn delete_work(api: &Api<ManifestWork>, name: &str) -> Result<(), Error> {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn reconcile(mwrs: Arc<ManifestWorkReplicaSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    // Deciding on half-filled caches would delete works of clusters not yet seen.
    let _ = futures::join!(
        ctx.works.wait_until_ready(),
        ctx.placements.wait_until_ready(),
        ctx.decisions.wait_until_ready()
    );
    let ns = mwrs.namespace().unwrap_or_default();
    let name = mwrs.name_any();
    let key = owner_key(&ns, &name);
    let api: Api<ManifestWorkReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let ours: Vec<Arc<ManifestWork>> = ctx
        .works
        .state_filter(|w| w.labels().get(MANIFEST_WORK_REPLICA_SET) == Some(&key));

    if mwrs.metadata.deletion_timestamp.is_some() {
        for w in &ours {
            let works: Api<ManifestWork> =
                Api::namespaced(ctx.client.clone(), &w.namespace().unwrap_or_default());
            delete_work(&works, &w.name_any()).await?;
        }
        let fins: Vec<String> = mwrs
            .finalizers()
            .iter()
            .filter(|f| *f != MANIFEST_WORK_REPLICA_SET_FINALIZER)
            .cloned()
            .collect();
        if fins.len() != mwrs.finalizers().len() {
            let patch = json!({"metadata": {"finalizers": fins, "resourceVersion": mwrs.resource_version()}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        return Ok(Action::await_change());
    }
    if !mwrs
        .finalizers()
        .iter()
        .any(|f| f == MANIFEST_WORK_REPLICA_SET_FINALIZER)
    {
        let mut fins = mwrs.finalizers().to_vec();
        fins.push(MANIFEST_WORK_REPLICA_SET_FINALIZER.into());
        let patch =
            json!({"metadata": {"finalizers": fins, "resourceVersion": mwrs.resource_version()}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        return Ok(Action::await_change());
    }

    let template = &mwrs.spec.manifest_work_template;
    let refs: BTreeSet<&str> = mwrs
        .spec
        .placement_refs
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    let mut status: ManifestWorkReplicaSetStatus = mwrs.status.clone().unwrap_or_default();
    let mut conds = std::mem::take(&mut status.conditions);
    let mut errors: Vec<String> = Vec::new();
    let mut requeue = MAX_REQUEUE;

    // Works of placements no longer referenced go.
    for w in &ours {
        let p = w.labels().get(MANIFEST_WORK_REPLICA_SET_PLACEMENT_NAME);
        if p.is_none_or(|p| !refs.contains(p.as_str())) {
            let works: Api<ManifestWork> =
                Api::namespaced(ctx.client.clone(), &w.namespace().unwrap_or_default());
            delete_work(&works, &w.name_any()).await?;
        }
    }

    let mut summaries = Vec::new();
    let (mut selected_total, mut current_total, mut succeeded_total) = (0i64, 0i64, 0i64);
    let mut totals = ManifestWorkReplicaSetSummary::default();
    for pref in &mwrs.spec.placement_refs {
        let Some(placement) = ctx.placements.get(&ObjectRef::new(&pref.name).within(&ns)) else {
            set(
                &mut conds,
                mc::PLACEMENT_VERIFIED,
                mc::REASON_PLACEMENT_DECISION_NOT_FOUND,
            );
            status.conditions = conds;
            patch_status(&api, &mwrs, status).await?;
            return Ok(Action::requeue(MAX_REQUEUE));
        };
        let mine: Vec<&Arc<ManifestWork>> = ours
            .iter()
            .filter(|w| {
                w.labels().get(MANIFEST_WORK_REPLICA_SET_PLACEMENT_NAME) == Some(&pref.name)
            })
            .collect();
        let is_current = |w: &ManifestWork| &w.spec == template;
        let existing: Vec<ClusterStatus> = mine
            .iter()
            .filter(|w| is_current(w))
            .map(|w| work_status(w))
            .collect();
        let mut applied: BTreeSet<String> = existing.iter().map(|s| s.cluster.clone()).collect();
        let succeeded = existing
            .iter()
            .filter(|s| s.status == Status::Succeeded)
            .count() as i64;
        let groups = groups_of(&ctx, &ns, &pref.name);
        let strategy = pref.rollout_strategy.clone().unwrap_or_default();
        let result = match rollout::rollout(&strategy, &groups, &existing, jiff::Timestamp::now()) {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("placement {}: {e}", pref.name));
                set(
                    &mut conds,
                    mc::PLACEMENT_VERIFIED,
                    mc::REASON_NOT_AS_EXPECTED,
                );
                continue;
            }
        };
        if let Some(d) = result.recheck_after {
            requeue = requeue.min(d);
        }
        for c in result
            .to_rollout
            .iter()
            .filter(|c| c.status == Status::ToApply)
        {
            let works: Api<ManifestWork> = Api::namespaced(ctx.client.clone(), &c.cluster);
            let mut labels = mwrs.labels().clone();
            labels.insert(MANIFEST_WORK_REPLICA_SET.into(), key.clone());
            labels.insert(
                MANIFEST_WORK_REPLICA_SET_PLACEMENT_NAME.into(),
                pref.name.clone(),
            );
            let body = json!({
                "apiVersion": "work.open-cluster-management.io/v1", "kind": "ManifestWork",
                "metadata": {"name": name, "namespace": c.cluster, "labels": labels},
                "spec": template,
            });
            match ctx.works.get(&ObjectRef::new(&name).within(&c.cluster)) {
                Some(w) if is_current(&w) => {}
                Some(_) => {
                    let patch = json!({"metadata": {"labels": body["metadata"]["labels"]}, "spec": template});
                    works
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await?;
                }
                None => {
                    let work: ManifestWork = serde_json::from_value(body)?;
                    match works.create(&PostParams::default(), &work).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(s)) if s.code == 409 => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            applied.insert(c.cluster.clone());
        }
        for c in &result.removed {
            let works: Api<ManifestWork> = Api::namespaced(ctx.client.clone(), &c.cluster);
            delete_work(&works, &name).await?;
            applied.remove(&c.cluster);
        }
        // Counts over the works on the current template.
        let mut s = ManifestWorkReplicaSetSummary::default();
        let current: Vec<&&Arc<ManifestWork>> = mine
            .iter()
            .filter(|w| is_current(w) && w.metadata.deletion_timestamp.is_none())
            .collect();
        let count = |t: &str| current.iter().filter(|w| is_true(w, t)).count() as i64;
        s.total = Some(applied.len() as i64);
        s.applied = Some(count(wc::APPLIED));
        s.available = Some(count(wc::AVAILABLE));
        s.progressing = Some(count(wc::PROGRESSING));
        s.degraded = Some(count(wc::DEGRADED));
        let chosen = placement
            .status
            .as_ref()
            .and_then(|s| s.number_of_selected_clusters)
            .unwrap_or(0);
        let group_count = placement
            .status
            .as_ref()
            .and_then(|s| s.decision_groups.as_ref())
            .map_or(0, Vec::len);
        summaries.push(PlacementSummary {
            name: Some(pref.name.clone()),
            available_decision_groups: Some(format!(
                "{group_count} ({} / {chosen} clusters applied)",
                applied.len()
            )),
            summary: Some(s.clone()),
        });
        selected_total += i64::from(chosen);
        current_total += applied.len() as i64;
        succeeded_total += succeeded;
        for (t, v) in [
            (&mut totals.applied, s.applied),
            (&mut totals.available, s.available),
            (&mut totals.progressing, s.progressing),
            (&mut totals.degraded, s.degraded),
        ] {
            *t = Some(t.unwrap_or(0) + v.unwrap_or(0));
        }
    }
    totals.total = Some(current_total);
    status.placements_summary = Some(summaries);
    if current_total == 0 {
        set(
            &mut conds,
            mc::PLACEMENT_VERIFIED,
            mc::REASON_PLACEMENT_DECISION_EMPTY,
        );
        set(
            &mut conds,
            mc::MANIFESTWORK_APPLIED,
            mc::REASON_PLACEMENT_DECISION_EMPTY,
        );
    } else if errors.is_empty() {
        set(&mut conds, mc::PLACEMENT_VERIFIED, mc::REASON_AS_EXPECTED);
    }
    set(
        &mut conds,
        mc::PLACEMENT_ROLLED_OUT,
        if selected_total == succeeded_total {
            mc::REASON_COMPLETE
        } else {
            mc::REASON_PROGRESSING
        },
    );
    if current_total > 0 {
        let (avail, prog, degr) = (
            totals.available.unwrap_or(0),
            totals.progressing.unwrap_or(0),
            totals.degraded.unwrap_or(0),
        );
        let reason = if avail == current_total && prog == 0 && degr == 0 {
            mc::REASON_AS_EXPECTED
        } else if prog > 0 && degr == 0 {
            mc::REASON_PROCESSING
        } else {
            mc::REASON_NOT_AS_EXPECTED
        };
        set(&mut conds, mc::MANIFESTWORK_APPLIED, reason);
    }
    status.summary = Some(totals);
    status.conditions = conds;
    patch_status(&api, &mwrs, status).await?;
    if !errors.is_empty() {
        tracing::warn!(replicaset = %format!("{ns}/{name}"), errors = %errors.join("; "), "rollout not possible");
    }
    Ok(Action::requeue(requeue))
}

async fn patch_status(
    api: &Api<ManifestWorkReplicaSet>,
    mwrs: &ManifestWorkReplicaSet,
    status: ManifestWorkReplicaSetStatus,
) -> Result<(), Error> {
    if mwrs.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let body = json!({"status": status});
    api.patch_status(
        &mwrs.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&body),
    )
    .await?;
    Ok(())
}

fn error_policy(_: Arc<ManifestWorkReplicaSet>, err: &Error, _: Arc<Ctx>) -> Action {
    tracing::warn!(error = %err, "ManifestWorkReplicaSet pass failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the ManifestWorkReplicaSet controller.
pub async fn run(informers: Informers) {
    let client = informers.client().clone();
    let cfg = watcher::Config::default;
    let (works, work_events) =
        watched::<ManifestWork>(&informers, cfg().labels(MANIFEST_WORK_REPLICA_SET));
    let (placements, placement_events) = watched::<Placement>(&informers, cfg());
    let (decisions, decision_events) = watched::<PlacementDecision>(&informers, cfg());
    let controller = crate::cache::controller::<ManifestWorkReplicaSet>(&informers, cfg());
    let probe = crate::metrics::Probe::new("manifestworkreplicaset", &controller);
    let sets = controller.store();
    let (s1, s2) = (sets.clone(), sets);
    let by_placement = move |store: &Store<ManifestWorkReplicaSet>, ns: &str, placement: &str| {
        store
            .state_filter(|m| {
                m.namespace().as_deref() == Some(ns)
                    && m.spec.placement_refs.iter().any(|r| r.name == placement)
            })
            .iter()
            .map(|m| ObjectRef::from_obj(m.as_ref()))
            .collect::<Vec<_>>()
    };
    let ctx = Arc::new(Ctx {
        client,
        works,
        placements,
        decisions,
    });
    controller
        .watches_stream(work_events, |w: ManifestWork| {
            w.labels()
                .get(MANIFEST_WORK_REPLICA_SET)
                .and_then(|k| k.split_once('.'))
                .map(|(ns, name)| ObjectRef::new(name).within(ns))
        })
        .watches_stream(placement_events, move |p: Placement| {
            by_placement(&s1, &p.namespace().unwrap_or_default(), &p.name_any())
        })
        .watches_stream(decision_events, move |d: PlacementDecision| {
            match d.labels().get(PLACEMENT) {
                Some(p) => by_placement(&s2, &d.namespace().unwrap_or_default(), p),
                None => Vec::new(),
            }
        })
        .run(probe.timed(reconcile), error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(generation: i64, conds: serde_json::Value) -> ManifestWork {
        serde_json::from_value(json!({
            "apiVersion": "work.open-cluster-management.io/v1", "kind": "ManifestWork",
            "metadata": {"name": "w", "namespace": "c1", "generation": generation},
            "spec": {}, "status": {"conditions": conds}
        }))
        .unwrap()
    }

    fn c(t: &str, s: &str, g: i64) -> serde_json::Value {
        json!({"type": t, "status": s, "reason": "r", "message": "", "observedGeneration": g,
               "lastTransitionTime": "2026-01-01T00:00:00Z"})
    }

    #[test]
    fn work_conditions_map_to_rollout_states() {
        // Nothing reported yet, or for an older generation: to apply.
        assert_eq!(work_status(&work(2, json!([]))).status, Status::ToApply);
        assert_eq!(
            work_status(&work(
                2,
                json!([c("Applied", "True", 1), c("Available", "True", 1)])
            ))
            .status,
            Status::ToApply
        );
        // Available only (no Progressing rule): available is success.
        assert_eq!(
            work_status(&work(
                2,
                json!([c("Applied", "True", 2), c("Available", "True", 2)])
            ))
            .status,
            Status::Succeeded
        );
        assert_eq!(
            work_status(&work(
                2,
                json!([c("Applied", "True", 2), c("Available", "False", 2)])
            ))
            .status,
            Status::Progressing
        );
        // Progressing decides when present; Degraded while progressing is a failure.
        let st = work_status(&work(
            2,
            json!([
                c("Applied", "True", 2),
                c("Progressing", "True", 2),
                c("Degraded", "True", 2)
            ]),
        ));
        assert_eq!(st.status, Status::Failed);
        assert!(st.last_transition.is_some());
        assert_eq!(
            work_status(&work(
                2,
                json!([
                    c("Applied", "True", 2),
                    c("Progressing", "True", 2),
                    c("Degraded", "False", 2)
                ])
            ))
            .status,
            Status::Progressing
        );
        assert_eq!(
            work_status(&work(
                2,
                json!([c("Applied", "True", 2), c("Progressing", "False", 2)])
            ))
            .status,
            Status::Succeeded
        );
        // A Degraded condition of an older generation: not judged yet.
        assert_eq!(
            work_status(&work(
                2,
                json!([
                    c("Applied", "True", 2),
                    c("Progressing", "False", 2),
                    c("Degraded", "True", 1)
                ])
            ))
            .status,
            Status::ToApply
        );
    }
}
