//! The ManagedCluster controller: acceptance, denial, deletion, availability and taints.
//!
//! - Every ManagedCluster gets the cleanup finalizer.
//! - Accepted (`hubAcceptsClient: true`): the cluster namespace, its RBAC (see [`super::rbac`]),
//!   the lease `managed-cluster-lease`, and `HubAcceptedManagedCluster=True`.
//! - Denied (`hubAcceptsClient: false` after acceptance): the RBAC is removed and
//!   `HubAcceptedManagedCluster=False`. The API server's acceptance gate refuses the cluster's
//!   certificates from the moment the spec changed.
//! - Deleted: the namespace and everything in it, then the RBAC, then the finalizer.
//! - Lease: once the lease is older than 5 × `leaseDurationSeconds`,
//!   `ManagedClusterConditionAvailable=Unknown` (`ManagedClusterLeaseUpdateStopped`). Each lease
//!   renewal is compared with the hub's clock for `ManagedClusterConditionClockSynced`.
//! - Taints follow availability, as upstream: no condition or Unknown means `unreachable`,
//!   False means `unavailable`, True means neither.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use garrison_api::ManagedCluster;
use garrison_api::cluster::v1::{Taint, TaintEffect};
use garrison_api::conditions::{STATUS_FALSE, STATUS_TRUE, STATUS_UNKNOWN, managed_cluster as mc};
use garrison_api::labels::{
    MANAGED_CLUSTER_FINALIZER, MANAGED_CLUSTER_LEASE, TAINT_UNAVAILABLE, TAINT_UNREACHABLE,
};
use garrison_api::status::{condition, find_condition, set_condition};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::rbac;
use crate::cache::Informers;

const MANAGER: &str = "garrison-registration";
/// Lease periods missed before a cluster is Unknown, as upstream.
pub const LEASE_DURATION_TIMES: i64 = 5;
/// Default lease period when the spec leaves it unset.
pub const DEFAULT_LEASE_SECONDS: i64 = 60;

/// What the controller needs.
pub struct Ctx {
    /// The API, as the hub.
    pub client: kube::Client,
    /// The last lease resourceVersion judged for clock sync, per cluster.
    seen_leases: Mutex<HashMap<String, String>>,
    /// Each cluster's lease as the watch last delivered it (only its renewal time and
    /// resourceVersion), so that judging a renewal costs no read of the lease: at fleet scale
    /// a renewal a second is the hub's steady load.
    watched_leases: Mutex<HashMap<String, Lease>>,
    /// Per cluster uid, whether this controller has ensured its access (true: namespace, RBAC
    /// and lease exist) or its denial (false: RBAC removed) since it started, so lease renewals
    /// and status reports do not repeat that work.
    rbac_done: Mutex<HashMap<String, bool>>,
}

impl Ctx {
    /// A context for `client`.
    pub fn new(client: kube::Client) -> Self {
        Ctx {
            client,
            seen_leases: Mutex::new(HashMap::new()),
            watched_leases: Mutex::new(HashMap::new()),
            rbac_done: Mutex::new(HashMap::new()),
        }
    }
}

impl Ctx {
    /// Remembers that the clock sync of `cluster`'s lease at version `rv` is written.
    fn judged(&self, cluster: &str, rv: Option<String>) {
        if let Some(rv) = rv {
            self.seen_leases
                .lock()
                .expect("lease map")
                .insert(cluster.to_string(), rv);
        }
    }

    /// Keeps what the controller reads of a cluster's lease, as a watch delivered it.
    fn remember_lease(&self, cluster: &str, lease: &Lease) {
        let kept = Lease {
            metadata: kube::api::ObjectMeta {
                resource_version: lease.metadata.resource_version.clone(),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                renew_time: lease.spec.as_ref().and_then(|s| s.renew_time.clone()),
                ..Default::default()
            }),
        };
        self.watched_leases
            .lock()
            .expect("lease map")
            .insert(cluster.to_string(), kept);
    }
}

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API call failed.
    #[error("API call failed: {0}")]
    Kube(#[from] kube::Error),
    /// An object did not convert.
    #[error("bad object: {0}")]
    Json(#[from] serde_json::Error),
}

fn now_time() -> Time {
    Time(jiff::Timestamp::now())
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

async fn apply<K>(api: &Api<K>, obj: Value) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let pp = PatchParams::apply(MANAGER).force();
    api.patch(&name, &pp, &Patch::Apply(&obj)).await?;
    Ok(())
}

async fn delete_if_present<K>(api: &Api<K>, name: &str) -> Result<bool, Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The taints availability calls for, keeping `timeAdded` of those already present and every
/// taint the controller does not own.
pub fn desired_taints(current: &[Taint], available: Option<&Condition>, now: &Time) -> Vec<Taint> {
    let want: &[&str] = match available.map(|c| c.status.as_str()) {
        None | Some(STATUS_UNKNOWN) => &[TAINT_UNREACHABLE],
        Some(STATUS_FALSE) => &[TAINT_UNAVAILABLE],
        _ => &[],
    };
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| {
            (t.key != TAINT_UNREACHABLE && t.key != TAINT_UNAVAILABLE)
                || want.contains(&t.key.as_str())
        })
        .cloned()
        .collect();
    for key in want {
        if !out.iter().any(|t| t.key == *key) {
            out.push(Taint {
                key: (*key).into(),
                value: None,
                effect: TaintEffect::NoSelect,
                time_added: Some(now.clone()),
            });
        }
    }
    out
}

/// Seconds since the lease was last renewed, judged by the hub's clock.
fn lease_age_secs(lease: &Lease, now: jiff::Timestamp) -> Option<i64> {
    let renewed = lease.spec.as_ref()?.renew_time.as_ref()?.0;
    Some(now.as_second() - renewed.as_second())
}

/// Milliseconds since the lease was last renewed, judged by the hub's clock. Whole seconds
/// would count a renewal at x.9 s judged at (x+1).1 s as a second old.
fn lease_age_ms(lease: &Lease, now: jiff::Timestamp) -> Option<i64> {
    let renewed = lease.spec.as_ref()?.renew_time.as_ref()?.0;
    Some(now.as_millisecond() - renewed.as_millisecond())
}

async fn reconcile(cluster: Arc<ManagedCluster>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let name = cluster.name_any();
    let clusters: Api<ManagedCluster> = Api::all(ctx.client.clone());
    if cluster.meta().deletion_timestamp.is_some() {
        return cleanup(&cluster, &ctx).await;
    }
    if !cluster
        .finalizers()
        .iter()
        .any(|f| f == MANAGED_CLUSTER_FINALIZER)
    {
        let mut fins = cluster.finalizers().to_vec();
        fins.push(MANAGED_CLUSTER_FINALIZER.into());
        let rv = cluster.resource_version().unwrap_or_default();
        clusters
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": fins, "resourceVersion": rv}})),
            )
            .await?;
        return Ok(Action::await_change());
    }
    let accepted = cluster.spec.hub_accepts_client == Some(true);
    let mut conditions = cluster
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let now = now_time();
    let lease_secs = cluster
        .spec
        .lease_duration_seconds
        .map(i64::from)
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_LEASE_SECONDS);
    let mut requeue = None;
    let uid = cluster.uid().unwrap_or_default();
    if accepted {
        let done = ctx.rbac_done.lock().expect("rbac state").get(&uid) == Some(&true);
        if !done {
            admit(&name, &ctx).await?;
            ctx.rbac_done.lock().expect("rbac state").insert(uid, true);
        }
        // With the generation of the spec it judged, so that `garrison accept` tells this
        // acceptance from an earlier one.
        let mut admitted = condition(
            mc::HUB_ACCEPTED,
            STATUS_TRUE,
            mc::REASON_HUB_CLUSTER_ADMIN_ACCEPTED,
            "Accepted by hub cluster admin",
        );
        admitted.observed_generation = cluster.metadata.generation;
        set_condition(&mut conditions, admitted, now.clone());
    } else {
        let done = ctx.rbac_done.lock().expect("rbac state").get(&uid) == Some(&false);
        if !done {
            deny(&name, &ctx).await?;
            ctx.rbac_done.lock().expect("rbac state").insert(uid, false);
        }
        if find_condition(&conditions, mc::HUB_ACCEPTED).is_some() {
            set_condition(
                &mut conditions,
                condition(
                    mc::HUB_ACCEPTED,
                    STATUS_FALSE,
                    mc::REASON_HUB_CLUSTER_ADMIN_DENIED,
                    "Denied by hub cluster admin",
                ),
                now.clone(),
            );
        }
    }
    // Availability from the lease, accepted or not: a denied agent cannot renew it either.
    let watched = ctx
        .watched_leases
        .lock()
        .expect("lease map")
        .get(&name)
        .cloned();
    let lease = match watched {
        Some(l) => Some(l),
        // Not delivered by the watch yet (the hub just started): read it.
        None => {
            Api::<Lease>::namespaced(ctx.client.clone(), &name)
                .get_opt(MANAGED_CLUSTER_LEASE)
                .await?
        }
    };
    // The lease version whose renewal this pass judged for clock sync; remembered only once
    // the judgement is written, so a pass that loses a conflict judges it again.
    let mut judged_lease = None;
    if let Some(lease) = lease {
        let grace = LEASE_DURATION_TIMES * lease_secs;
        let age = lease_age_secs(&lease, now.0).unwrap_or(i64::MAX);
        if age > grace {
            set_condition(
                &mut conditions,
                condition(
                    mc::AVAILABLE,
                    STATUS_UNKNOWN,
                    mc::REASON_LEASE_UPDATE_STOPPED,
                    "Registration agent stopped updating its lease.",
                ),
                now.clone(),
            );
        } else {
            requeue = Some(Duration::from_secs((grace - age).max(0) as u64 + 1));
        }
        // Clock sync, judged once per lease renewal.
        let rv = lease.resource_version().unwrap_or_default();
        let fresh = ctx.seen_leases.lock().expect("lease map").get(&name) != Some(&rv);
        if fresh && let Some(age_ms) = lease_age_ms(&lease, now.0) {
            judged_lease = Some(rv);
            let synced = age_ms.abs() < lease_secs * 1000;
            let c = if synced {
                condition(
                    mc::CLOCK_SYNCED,
                    STATUS_TRUE,
                    mc::REASON_CLOCK_SYNCED,
                    "The clock of the managed cluster is synced with the hub.",
                )
            } else {
                condition(
                    mc::CLOCK_SYNCED,
                    STATUS_FALSE,
                    mc::REASON_CLOCK_OUT_OF_SYNC,
                    "The clock of hub and agent is out of sync. This may cause the Unknown status and affect agent functionalities.",
                )
            };
            set_condition(&mut conditions, c, now.clone());
        }
    }
    let old_conditions = cluster
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    if conditions != old_conditions {
        let mut body = (*cluster).clone();
        body.metadata.managed_fields = None;
        body.status.get_or_insert_with(Default::default).conditions = Some(conditions.clone());
        match clusters
            .replace_status(&name, &PostParams::default(), &body)
            .await
        {
            Ok(_) => {
                ctx.judged(&name, judged_lease);
                return Ok(Action::await_change());
            }
            Err(e) if is_conflict(&e) => return Ok(Action::requeue(Duration::from_millis(200))),
            Err(e) => return Err(e.into()),
        }
    }
    ctx.judged(&name, judged_lease);
    let taints = desired_taints(
        &cluster.spec.taints,
        find_condition(&conditions, mc::AVAILABLE),
        &now,
    );
    if taints != cluster.spec.taints {
        let rv = cluster.resource_version().unwrap_or_default();
        match clusters
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"metadata": {"resourceVersion": rv}, "spec": {"taints": taints}}),
                ),
            )
            .await
        {
            Ok(_) => return Ok(Action::await_change()),
            Err(e) if is_conflict(&e) => return Ok(Action::requeue(Duration::from_millis(200))),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(match requeue {
        Some(d) => Action::requeue(d),
        None if accepted => Action::requeue(Duration::from_secs(lease_secs as u64)),
        None => Action::await_change(),
    })
}

/// Gives an accepted cluster its namespace, RBAC and lease.
async fn admit(name: &str, ctx: &Ctx) -> Result<(), Error> {
    let c = &ctx.client;
    apply(
        &Api::<Namespace>::all(c.clone()),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name,
            "labels": {"open-cluster-management.io/cluster-name": name}}}),
    )
    .await?;
    apply(
        &Api::<ClusterRole>::all(c.clone()),
        rbac::cluster_role(name),
    )
    .await?;
    apply(
        &Api::<ClusterRoleBinding>::all(c.clone()),
        rbac::cluster_role_binding(name),
    )
    .await?;
    let bindings: Api<RoleBinding> = Api::namespaced(c.clone(), name);
    for b in rbac::namespace_bindings(name) {
        apply(&bindings, b).await?;
    }
    let leases: Api<Lease> = Api::namespaced(c.clone(), name);
    if leases.get_opt(MANAGED_CLUSTER_LEASE).await?.is_none() {
        let lease: Lease = serde_json::from_value(json!({
            "metadata": {"name": MANAGED_CLUSTER_LEASE, "namespace": name,
                "labels": {"open-cluster-management.io/cluster-name": name}},
            "spec": {"renewTime": MicroTime(jiff::Timestamp::now())},
        }))?;
        match leases.create(&PostParams::default(), &lease).await {
            Ok(_) => {}
            Err(e) if is_conflict(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Takes a denied cluster's RBAC away. The namespace and its contents stay.
async fn deny(name: &str, ctx: &Ctx) -> Result<(), Error> {
    let c = &ctx.client;
    let bindings: Api<RoleBinding> = Api::namespaced(c.clone(), name);
    delete_if_present(&bindings, &rbac::registration_binding_name(name)).await?;
    delete_if_present(&bindings, &rbac::work_binding_name(name)).await?;
    delete_if_present(
        &Api::<ClusterRoleBinding>::all(c.clone()),
        &rbac::cluster_role_name(name),
    )
    .await?;
    delete_if_present(
        &Api::<ClusterRole>::all(c.clone()),
        &rbac::cluster_role_name(name),
    )
    .await?;
    Ok(())
}

/// Removes a deleted cluster's namespace (and so its contents), then its RBAC, then the
/// finalizer, in that order.
async fn cleanup(cluster: &ManagedCluster, ctx: &Ctx) -> Result<Action, Error> {
    let name = cluster.name_any();
    if !cluster
        .finalizers()
        .iter()
        .any(|f| f == MANAGED_CLUSTER_FINALIZER)
    {
        return Ok(Action::await_change());
    }
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    if namespaces.get_opt(&name).await?.is_some() {
        delete_if_present(&namespaces, &name).await?;
        tracing::info!(cluster = %name, "deleting the cluster namespace");
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    deny(&name, ctx).await?;
    let fins: Vec<String> = cluster
        .finalizers()
        .iter()
        .filter(|f| f.as_str() != MANAGED_CLUSTER_FINALIZER)
        .cloned()
        .collect();
    let clusters: Api<ManagedCluster> = Api::all(ctx.client.clone());
    let rv = cluster.resource_version().unwrap_or_default();
    match clusters
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": fins, "resourceVersion": rv}})),
        )
        .await
    {
        Ok(_) => {}
        Err(e) if is_conflict(&e) || is_not_found(&e) => {}
        Err(e) => return Err(e.into()),
    }
    ctx.seen_leases.lock().expect("lease map").remove(&name);
    ctx.watched_leases.lock().expect("lease map").remove(&name);
    if let Some(uid) = cluster.uid() {
        ctx.rbac_done.lock().expect("rbac state").remove(&uid);
    }
    tracing::info!(cluster = %name, "cluster removed: namespace, RBAC and finalizer");
    Ok(Action::await_change())
}

fn error_policy(cluster: Arc<ManagedCluster>, e: &Error, _: Arc<Ctx>) -> Action {
    tracing::warn!(cluster = %cluster.name_any(), error = %e, "managed cluster reconcile failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

/// Ensures the shared registration RBAC exists (bootstrap, registration and work roles).
pub async fn ensure_shared_rbac(client: &kube::Client) -> Result<(), Error> {
    for obj in rbac::shared_objects() {
        if obj["kind"] == "ClusterRole" {
            apply(&Api::<ClusterRole>::all(client.clone()), obj).await?;
        } else {
            apply(&Api::<ClusterRoleBinding>::all(client.clone()), obj).await?;
        }
    }
    Ok(())
}

/// Runs the controller until its streams end.
pub async fn run(ctx: Arc<Ctx>, informers: Informers) {
    let leases: Api<Lease> = Api::all(ctx.client.clone());
    let seen = ctx.clone();
    let controller = crate::cache::controller::<ManagedCluster>(
        &informers,
        watcher::Config::default(),
    )
    .watches(leases, watcher::Config::default(), move |lease: Lease| {
        let ns = lease.namespace().unwrap_or_default();
        if lease.name_any() != MANAGED_CLUSTER_LEASE {
            return None;
        }
        seen.remember_lease(&ns, &lease);
        Some(ObjectRef::<ManagedCluster>::new(&ns))
    });
    let probe = crate::metrics::Probe::new("managedcluster", &controller);
    controller
        .run(probe.timed(reconcile), error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn available(status: &str) -> Condition {
        condition(mc::AVAILABLE, status, "r", "m")
    }

    #[test]
    fn clock_sync_measures_the_lease_age_below_a_second() {
        let at = |ms: i64| jiff::Timestamp::from_millisecond(ms).unwrap();
        let lease = Lease {
            spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                renew_time: Some(MicroTime(at(10_900))),
                ..Default::default()
            }),
            ..Default::default()
        };
        // 200 ms after a renewal across a second boundary: not a second old.
        assert_eq!(lease_age_ms(&lease, at(11_100)), Some(200));
        assert_eq!(lease_age_ms(&lease, at(10_400)), Some(-500));
    }

    #[test]
    fn taints_follow_availability() {
        let now = Time(jiff::Timestamp::from_second(1_000).unwrap());
        let keys = |t: &[Taint]| t.iter().map(|t| t.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&desired_taints(&[], None, &now)), [TAINT_UNREACHABLE]);
        assert_eq!(
            keys(&desired_taints(&[], Some(&available(STATUS_UNKNOWN)), &now)),
            [TAINT_UNREACHABLE]
        );
        let down = desired_taints(&[], Some(&available(STATUS_FALSE)), &now);
        assert_eq!(keys(&down), [TAINT_UNAVAILABLE]);
        assert_eq!(down[0].effect, TaintEffect::NoSelect);
        assert!(desired_taints(&down, Some(&available(STATUS_TRUE)), &now).is_empty());
    }

    #[test]
    fn taints_keep_their_time_and_foreign_taints_stay() {
        let then = Time(jiff::Timestamp::from_second(10).unwrap());
        let now = Time(jiff::Timestamp::from_second(1_000).unwrap());
        let existing = vec![
            Taint {
                key: TAINT_UNREACHABLE.into(),
                value: None,
                effect: TaintEffect::NoSelect,
                time_added: Some(then.clone()),
            },
            Taint {
                key: "example.com/gpu".into(),
                value: Some("none".into()),
                effect: TaintEffect::PreferNoSelect,
                time_added: None,
            },
        ];
        let out = desired_taints(&existing, None, &now);
        assert_eq!(out, existing);
        let healthy = desired_taints(&existing, Some(&available(STATUS_TRUE)), &now);
        assert_eq!(healthy.len(), 1);
        assert_eq!(healthy[0].key, "example.com/gpu");
    }
}
