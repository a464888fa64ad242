//! Cluster sets on the hub, as upstream OCM keeps them:
//!
//! - the `default` set (clusters labelled `cluster.open-cluster-management.io/clusterset=default`,
//!   which the API server gives every cluster without a set) and the `global` set (an empty
//!   label selector: every cluster) always exist. They are recreated within 10 s of being
//!   deleted, and their selector is put back if changed, unless they carry the annotation
//!   `cluster.open-cluster-management.io/autoupdate: "false"`;
//! - every set has `ClusterSetEmpty`: `True`/`NoClusterMatched` with no member,
//!   `False`/`ClustersSelected` with "N ManagedClusters selected" otherwise;
//! - every ManagedClusterSetBinding has `Bound`: `True`/`ClusterSetBound` while its set exists,
//!   `False`/`ClusterSetNotFound` otherwise.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use garrison_api::cluster::v1beta2::{
    ManagedClusterSelector, ManagedClusterSetBindingStatus, ManagedClusterSetSpec,
    ManagedClusterSetStatus, SelectorType,
};
use garrison_api::conditions::{
    STATUS_FALSE, STATUS_TRUE, managed_cluster_set as cs, managed_cluster_set_binding as csb,
};
use garrison_api::status::{condition, set_condition};
use garrison_api::{ManagedCluster, ManagedClusterSet, ManagedClusterSetBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use serde_json::json;

use crate::cache::{Informers, watched};
use crate::placement::schedule::SetSelector;

/// The set clusters without a set label are in.
pub const DEFAULT_SET: &str = "default";
/// The set of every cluster.
pub const GLOBAL_SET: &str = "global";
/// Annotation that stops Garrison from keeping a built-in set's selector.
pub const AUTO_UPDATE_ANNOTATION: &str = "cluster.open-cluster-management.io/autoupdate";

/// Errors of one pass.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API call failed.
    #[error("API call failed: {0}")]
    Kube(#[from] kube::Error),
}

/// The selector a built-in set must have, or None for other sets.
pub fn builtin_selector(name: &str) -> Option<ManagedClusterSelector> {
    match name {
        DEFAULT_SET => Some(ManagedClusterSelector {
            selector_type: Some(SelectorType::ExclusiveClusterSetLabel),
            label_selector: None,
        }),
        GLOBAL_SET => Some(ManagedClusterSelector {
            selector_type: Some(SelectorType::LabelSelector),
            label_selector: Some(LabelSelector::default()),
        }),
        _ => None,
    }
}

/// A merge patch that makes a set's selector exactly `want` (fields `want` lacks are removed).
fn selector_patch(want: &ManagedClusterSelector) -> serde_json::Value {
    let mut sel = json!(want);
    if want.label_selector.is_none() {
        sel["labelSelector"] = serde_json::Value::Null;
    }
    json!({"spec": {"clusterSelector": sel}})
}

fn auto_update(set: &ManagedClusterSet) -> bool {
    set.annotations()
        .get(AUTO_UPDATE_ANNOTATION)
        .is_none_or(|v| v != "false")
}

/// Creates the built-in sets that are missing, and puts their selectors back.
pub async fn ensure_builtin_sets(client: &kube::Client) -> Result<(), Error> {
    let api: Api<ManagedClusterSet> = Api::all(client.clone());
    for name in [DEFAULT_SET, GLOBAL_SET] {
        let want = builtin_selector(name).expect("a built-in set");
        match api.get_opt(name).await? {
            None => {
                let set = ManagedClusterSet::new(
                    name,
                    ManagedClusterSetSpec {
                        cluster_selector: Some(want),
                        managed_namespaces: Vec::new(),
                    },
                );
                match api.create(&PostParams::default(), &set).await {
                    Ok(_) => tracing::info!(set = name, "created the built-in cluster set"),
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Some(set) if auto_update(&set) && set.spec.cluster_selector.as_ref() != Some(&want) => {
                let patch = selector_patch(&want);
                api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                tracing::info!(set = name, "put the built-in cluster set's selector back");
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The `ClusterSetEmpty` condition for a set with `members` clusters.
pub fn empty_condition(members: usize) -> (&'static str, &'static str, String) {
    if members == 0 {
        (
            STATUS_TRUE,
            cs::REASON_NO_CLUSTER_MATCHED,
            "No ManagedCluster selected".into(),
        )
    } else {
        (
            STATUS_FALSE,
            cs::REASON_CLUSTERS_SELECTED,
            format!("{members} ManagedClusters selected"),
        )
    }
}

struct SetCtx {
    client: kube::Client,
    clusters: Store<ManagedCluster>,
}

async fn reconcile_set(set: Arc<ManagedClusterSet>, ctx: Arc<SetCtx>) -> Result<Action, Error> {
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = set.name_any();
    let api: Api<ManagedClusterSet> = Api::all(ctx.client.clone());
    if let Some(want) = builtin_selector(&name)
        && auto_update(&set)
        && set.spec.cluster_selector.as_ref() != Some(&want)
    {
        let patch = selector_patch(&want);
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        return Ok(Action::await_change());
    }
    let selector = SetSelector::of(&set);
    let members = ctx
        .clusters
        .state()
        .iter()
        .filter(|c| selector.selects(c))
        .count();
    let mut status: ManagedClusterSetStatus = set.status.clone().unwrap_or_default();
    let mut conditions = status.conditions.take().unwrap_or_default();
    let (st, reason, message) = empty_condition(members);
    let changed = set_condition(
        &mut conditions,
        condition(cs::EMPTY, st, reason, &message),
        Time(jiff::Timestamp::now()),
    );
    if changed {
        status.conditions = Some(conditions);
        let body = json!({"status": status});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await?;
    }
    Ok(Action::await_change())
}

struct BindingCtx {
    client: kube::Client,
    sets: Store<ManagedClusterSet>,
}

async fn reconcile_binding(
    binding: Arc<ManagedClusterSetBinding>,
    ctx: Arc<BindingCtx>,
) -> Result<Action, Error> {
    if binding.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let set = &binding.spec.cluster_set;
    let exists = ctx.sets.get(&ObjectRef::new(set)).is_some();
    let (st, reason) = if exists {
        (STATUS_TRUE, csb::REASON_CLUSTER_SET_BOUND)
    } else {
        (STATUS_FALSE, csb::REASON_CLUSTER_SET_NOT_FOUND)
    };
    let mut status: ManagedClusterSetBindingStatus = binding.status.clone().unwrap_or_default();
    let mut conditions = status.conditions.take().unwrap_or_default();
    let changed = set_condition(
        &mut conditions,
        condition(csb::BOUND, st, reason, ""),
        Time(jiff::Timestamp::now()),
    );
    if changed {
        status.conditions = Some(conditions);
        let api: Api<ManagedClusterSetBinding> =
            Api::namespaced(ctx.client.clone(), &binding.namespace().unwrap_or_default());
        let body = json!({"status": status});
        api.patch_status(
            &binding.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&body),
        )
        .await?;
    }
    Ok(Action::await_change())
}

fn retry<K>(_: Arc<K>, err: &Error, _: Arc<impl Send + Sync>) -> Action {
    tracing::warn!(error = %err, "cluster set pass failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the cluster-set and binding controllers, and keeps the built-in sets.
pub async fn run(informers: Informers) {
    let client = informers.client().clone();
    let cfg = watcher::Config::default;
    let (clusters, cluster_events) = watched::<ManagedCluster>(&informers, cfg());
    let (sets, set_events) = watched::<ManagedClusterSet>(&informers, cfg());

    let set_controller = crate::cache::controller::<ManagedClusterSet>(&informers, cfg())
        .with_config(Config::default().debounce(Duration::from_millis(200)));
    let set_probe = crate::metrics::Probe::new("clusterset", &set_controller);
    let all_sets = set_controller.store();
    let sets_run = set_controller
        .watches_stream(cluster_events, move |_: ManagedCluster| {
            all_sets
                .state()
                .iter()
                .map(|s| ObjectRef::from_obj(s.as_ref()))
                .collect::<Vec<_>>()
        })
        .run(
            set_probe.timed(reconcile_set),
            retry,
            Arc::new(SetCtx {
                client: client.clone(),
                clusters,
            }),
        )
        .for_each(|_| async {});

    let binding_controller =
        crate::cache::controller::<ManagedClusterSetBinding>(&informers, cfg());
    let binding_probe = crate::metrics::Probe::new("clustersetbinding", &binding_controller);
    let all_bindings = binding_controller.store();
    let bindings_run = binding_controller
        .watches_stream(set_events, move |s: ManagedClusterSet| {
            let name = s.name_any();
            all_bindings
                .state()
                .iter()
                .filter(|b| b.spec.cluster_set == name)
                .map(|b| ObjectRef::from_obj(b.as_ref()))
                .collect::<Vec<_>>()
        })
        .run(
            binding_probe.timed(reconcile_binding),
            retry,
            Arc::new(BindingCtx {
                client: client.clone(),
                sets,
            }),
        )
        .for_each(|_| async {});

    let keep_builtins = async {
        loop {
            if let Err(e) = ensure_builtin_sets(&client).await {
                tracing::warn!(error = %e, "cannot ensure the built-in cluster sets; retrying");
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    };
    tokio::join!(sets_run, bindings_run, keep_builtins);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::schedule::set_selects;

    #[test]
    fn empty_condition_counts_members() {
        assert_eq!(
            empty_condition(0),
            (
                STATUS_TRUE,
                "NoClusterMatched",
                "No ManagedCluster selected".into()
            )
        );
        assert_eq!(
            empty_condition(3),
            (
                STATUS_FALSE,
                "ClustersSelected",
                "3 ManagedClusters selected".into()
            )
        );
    }

    #[test]
    fn built_in_sets_select_as_upstream() {
        let mut c = ManagedCluster::new("c1", Default::default());
        let default = ManagedClusterSet::new(
            DEFAULT_SET,
            ManagedClusterSetSpec {
                cluster_selector: builtin_selector(DEFAULT_SET),
                managed_namespaces: vec![],
            },
        );
        let global = ManagedClusterSet::new(
            GLOBAL_SET,
            ManagedClusterSetSpec {
                cluster_selector: builtin_selector(GLOBAL_SET),
                managed_namespaces: vec![],
            },
        );
        assert!(!set_selects(&default, &c));
        assert!(set_selects(&global, &c));
        c.labels_mut()
            .insert(garrison_api::labels::CLUSTER_SET.into(), DEFAULT_SET.into());
        assert!(set_selects(&default, &c));
        assert!(builtin_selector("prod").is_none());
    }
}
