//! ManagedServiceAccount `spec.ttlSecondsAfterCreation`: the hub deletes a ManagedServiceAccount
//! that many seconds after it was created. Its token Secret goes with it (owned by it), and the
//! add-on then removes its ServiceAccount from the cluster, so the token stops working.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use garrison_api::ManagedServiceAccount;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::watcher;

use super::Error;
use crate::cache::Informers;

/// When a ManagedServiceAccount expires, if it has a TTL: Unix seconds.
pub fn expires_at(msa: &ManagedServiceAccount) -> Option<i64> {
    let ttl = msa.spec.ttl_seconds_after_creation.filter(|t| *t > 0)?;
    let created = msa.metadata.creation_timestamp.as_ref()?.0.as_second();
    Some(created + i64::from(ttl))
}

async fn reconcile(
    msa: Arc<ManagedServiceAccount>,
    client: Arc<kube::Client>,
) -> Result<Action, Error> {
    let Some(at) = expires_at(&msa) else {
        return Ok(Action::await_change());
    };
    if msa.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let now = jiff::Timestamp::now().as_second();
    if now < at {
        return Ok(Action::requeue(Duration::from_secs((at - now) as u64)));
    }
    let api: Api<ManagedServiceAccount> =
        Api::namespaced((*client).clone(), &msa.namespace().unwrap_or_default());
    // Only the object whose TTL ran out: a recreated one of the same name has its own clock.
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: msa.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&msa.name_any(), &dp).await {
        Ok(_) => {
            tracing::info!(namespace = %msa.namespace().unwrap_or_default(), name = %msa.name_any(), "ManagedServiceAccount reached its ttlSecondsAfterCreation; deleted");
        }
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

fn error_policy(_: Arc<ManagedServiceAccount>, e: &Error, _: Arc<kube::Client>) -> Action {
    tracing::warn!(error = %e, "ManagedServiceAccount TTL reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the TTL controller until its stream ends.
pub async fn run(informers: Informers) {
    let client = informers.client().clone();
    let controller =
        crate::cache::controller::<ManagedServiceAccount>(&informers, watcher::Config::default());
    let probe = crate::metrics::Probe::new("managedserviceaccount-ttl", &controller);
    controller
        .run(probe.timed(reconcile), error_policy, Arc::new(client))
        .for_each(|_| async {})
        .await;
}
