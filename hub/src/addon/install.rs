//! Install strategies of ClusterManagementAddOns: with `installStrategy.type: Placements`, the
//! add-on is installed (a ManagedClusterAddOn created, owned by the ClusterManagementAddOn) on
//! every cluster the listed Placements decide, paced by each placement's `rolloutStrategy`
//! with the rollout library ManifestWorkReplicaSets use: a cluster counts as Succeeded once its
//! add-on is Available, Failed while it is not, Progressing until it reports. A cluster that
//! leaves every placement loses the add-on, if the strategy installed it. `Manual` (the
//! default) leaves ManagedClusterAddOns to admins.
//!
//! Progress is reported per placement in `status.installProgressions`, with upstream's
//! `Progressing` condition (`Installing`, then `InstallSucceed`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use garrison_api::addon::v1alpha1::{
    ClusterManagementAddOnStatus, InstallProgression, InstallStrategyType,
};
use garrison_api::cluster::v1beta1::PlacementDecision;
use garrison_api::labels::PLACEMENT;
use garrison_api::status::{condition, find_condition, set_condition};
use garrison_api::{ClusterManagementAddOn, ManagedClusterAddOn};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use serde_json::json;

use super::{DEFAULT_INSTALL_NAMESPACE, Error};
use crate::cache::Informers;
use crate::rollout::{self, ClusterStatus, Groups, Status};

/// The state of one cluster's add-on for a rollout.
pub fn addon_status(mca: &ManagedClusterAddOn) -> ClusterStatus {
    let cluster = mca.namespace().unwrap_or_default();
    let available = mca
        .status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, "Available"))
        .cloned();
    let mut st = ClusterStatus::new(&cluster, Status::Progressing);
    if let Some(c) = available {
        st.status = match c.status.as_str() {
            "True" => Status::Succeeded,
            "False" => Status::Failed,
            _ => Status::Progressing,
        };
        st.last_transition = Some(c.last_transition_time.0);
    }
    st
}

fn owned_by(mca: &ManagedClusterAddOn, cma: &ClusterManagementAddOn) -> bool {
    mca.owner_references()
        .iter()
        .any(|o| o.kind == "ClusterManagementAddOn" && Some(&o.uid) == cma.metadata.uid.as_ref())
}

async fn groups_of(client: &kube::Client, ns: &str, placement: &str) -> Result<Groups, Error> {
    let api: Api<PlacementDecision> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default().labels(&format!("{PLACEMENT}={placement}")))
        .await?;
    Ok(rollout::groups_of(&list.items))
}

async fn reconcile(
    cma: Arc<ClusterManagementAddOn>,
    client: Arc<kube::Client>,
) -> Result<Action, Error> {
    let strategy = cma.spec.install_strategy.clone().unwrap_or_default();
    if strategy.type_ != Some(InstallStrategyType::Placements)
        || cma.metadata.deletion_timestamp.is_some()
    {
        return Ok(Action::await_change());
    }
    let client = (*client).clone();
    let name = cma.name_any();
    let all: Api<ManagedClusterAddOn> = Api::all(client.clone());
    let existing: BTreeMap<String, ManagedClusterAddOn> = all
        .list(&ListParams::default().fields(&format!("metadata.name={name}")))
        .await?
        .items
        .into_iter()
        .filter(|m| m.metadata.deletion_timestamp.is_none())
        .map(|m| (m.namespace().unwrap_or_default(), m))
        .collect();
    let mut chosen: BTreeSet<String> = BTreeSet::new();
    let mut progressions = vec![];
    let mut requeue = Duration::from_secs(30);
    let now = jiff::Timestamp::now();
    for p in &strategy.placements {
        let groups = groups_of(&client, &p.namespace, &p.name).await?;
        let members: BTreeSet<String> = groups.values().flatten().cloned().collect();
        chosen.extend(members.iter().cloned());
        let states: Vec<ClusterStatus> = members
            .iter()
            .filter_map(|c| existing.get(c))
            .map(addon_status)
            .collect();
        let rollout_strategy = p.rollout_strategy.clone().unwrap_or_default();
        let message;
        let reason;
        match rollout::rollout(&rollout_strategy, &groups, &states, now) {
            Ok(result) => {
                if let Some(d) = result.recheck_after {
                    requeue = requeue.min(d);
                }
                for c in result
                    .to_rollout
                    .iter()
                    .filter(|c| c.status == Status::ToApply)
                {
                    if existing.contains_key(&c.cluster) {
                        continue;
                    }
                    let mca: ManagedClusterAddOn = serde_json::from_value(json!({
                        "apiVersion": "addon.open-cluster-management.io/v1alpha1",
                        "kind": "ManagedClusterAddOn",
                        "metadata": {"name": name, "namespace": c.cluster,
                            "ownerReferences": [{"apiVersion": "addon.open-cluster-management.io/v1alpha1",
                                "kind": "ClusterManagementAddOn", "name": name,
                                "uid": cma.uid().unwrap_or_default()}]},
                        "spec": {"installNamespace": DEFAULT_INSTALL_NAMESPACE},
                    }))
                    .expect("a well-formed ManagedClusterAddOn");
                    let api: Api<ManagedClusterAddOn> = Api::namespaced(client.clone(), &c.cluster);
                    match api.create(&PostParams::default(), &mca).await {
                        Ok(_) => {
                            tracing::info!(addon = %name, cluster = %c.cluster, "installing the add-on (install strategy)")
                        }
                        Err(kube::Error::Api(s)) if s.code == 409 => {}
                        // A decided cluster whose namespace is gone: nothing to install into.
                        Err(kube::Error::Api(s)) if s.code == 404 => {}
                        Err(e) => return Err(e.into()),
                    }
                    requeue = requeue.min(Duration::from_secs(5));
                }
                let succeeded = states
                    .iter()
                    .filter(|s| s.status == Status::Succeeded)
                    .count();
                let failed = states.iter().filter(|s| s.status == Status::Failed).count();
                let timed_out = result.timed_out.len();
                let total = members.len();
                if total > 0 && succeeded == total {
                    reason = "InstallSucceed";
                } else {
                    reason = "Installing";
                    requeue = requeue.min(Duration::from_secs(5));
                }
                message = format!(
                    "{succeeded}/{total} completed with no errors, {failed} failed {timed_out} timeout."
                );
            }
            Err(e) => {
                reason = "ConfigurationUnsupported";
                message = format!("placement {}/{}: {e}", p.namespace, p.name);
            }
        }
        let old = cma
            .status
            .as_ref()
            .and_then(|s| {
                s.install_progressions
                    .iter()
                    .find(|ip| ip.name == p.name && ip.namespace == p.namespace)
            })
            .cloned();
        let mut conditions = old.map(|o| o.conditions).unwrap_or_default();
        set_condition(
            &mut conditions,
            condition(
                "Progressing",
                if reason == "Installing" {
                    "True"
                } else {
                    "False"
                },
                reason,
                &message,
            ),
            Time(now),
        );
        progressions.push(InstallProgression {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            conditions,
            ..Default::default()
        });
    }
    // Clusters no placement decides any more lose the add-on the strategy installed.
    for (cluster, mca) in &existing {
        if !chosen.contains(cluster) && owned_by(mca, &cma) {
            let api: Api<ManagedClusterAddOn> = Api::namespaced(client.clone(), cluster);
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {
                    tracing::info!(addon = %name, %cluster, "removing the add-on: the cluster left the install placements")
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let mut status: ClusterManagementAddOnStatus = cma.status.clone().unwrap_or_default();
    status.install_progressions = progressions;
    if cma.status.as_ref() != Some(&status) {
        let api: Api<ClusterManagementAddOn> = Api::all(client.clone());
        let patch = json!({"metadata": {"resourceVersion": cma.resource_version()},
            "status": {"installProgressions": status.install_progressions}});
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {
                return Ok(Action::requeue(Duration::from_millis(200)));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::requeue(requeue))
}

fn error_policy(_: Arc<ClusterManagementAddOn>, e: &Error, _: Arc<kube::Client>) -> Action {
    tracing::warn!(error = %e, "add-on install strategy reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the install-strategy controller until its stream ends. A change of any
/// ManagedClusterAddOn or PlacementDecision wakes the ClusterManagementAddOns it may concern.
pub async fn run(informers: Informers) {
    let client = informers.client().clone();
    let controller =
        crate::cache::controller::<ClusterManagementAddOn>(&informers, watcher::Config::default());
    let probe = crate::metrics::Probe::new("addon-install", &controller);
    let store = controller.store();
    let by_decision = store.clone();
    controller
        .watches(
            Api::<ManagedClusterAddOn>::all(client.clone()),
            watcher::Config::default(),
            |mca: ManagedClusterAddOn| Some(ObjectRef::new(&mca.name_any())),
        )
        .watches(
            Api::<PlacementDecision>::all(client.clone()),
            watcher::Config::default(),
            move |d: PlacementDecision| {
                let ns = d.namespace().unwrap_or_default();
                let placement = d.labels().get(PLACEMENT).cloned().unwrap_or_default();
                by_decision
                    .state()
                    .into_iter()
                    .filter(|c| {
                        c.spec.install_strategy.as_ref().is_some_and(|s| {
                            s.placements
                                .iter()
                                .any(|p| p.namespace == ns && p.name == placement)
                        })
                    })
                    .map(|c| ObjectRef::from_obj(&*c))
                    .collect::<Vec<_>>()
            },
        )
        .run(probe.timed(reconcile), error_policy, Arc::new(client))
        .for_each(|_| async {})
        .await;
}
