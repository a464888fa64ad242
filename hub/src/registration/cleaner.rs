//! Hub: removes registration leftovers, as kube-controller-manager's CSR cleaner and token
//! cleaner do.
//!
//! - A CertificateSigningRequest is deleted an hour after it was approved, denied or failed,
//!   a day after it was created if nobody decided, and as soon as the certificate it carries
//!   has expired. What it holds is public, but a store full of old requests slows every list
//!   and hides the pending ones an admin must look at.
//! - A bootstrap-token Secret is deleted once its `expiration` has passed: an expired token
//!   authenticates nobody, and keeping its secret part around serves no one.
//!
//! Each object is requeued for the moment its deadline falls, so nothing polls.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;

use crate::cache::Informers;

/// How long a decided (approved, denied or failed) request is kept, as kube's cleaner.
pub const DECIDED_TTL_SECS: i64 = 3600;
/// How long an undecided request is kept, as kube's cleaner.
pub const PENDING_TTL_SECS: i64 = 24 * 3600;

/// The Unix time at which a CSR should be deleted.
pub fn csr_deadline(csr: &CertificateSigningRequest) -> i64 {
    let created = csr
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .unwrap_or(0);
    let status = csr.status.as_ref();
    let decided = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| matches!(c.type_.as_str(), "Approved" | "Denied" | "Failed"))
        .map(|c| {
            c.last_update_time
                .as_ref()
                .or(c.last_transition_time.as_ref())
                .map(|t| t.0.as_second())
                .unwrap_or(created)
        })
        .min();
    let mut deadline = match decided {
        Some(at) => at + DECIDED_TTL_SECS,
        None => created + PENDING_TTL_SECS,
    };
    if let Some(not_after) = status
        .and_then(|s| s.certificate.as_ref())
        .and_then(|c| garrison_pki::cert_info(&String::from_utf8_lossy(&c.0)).ok())
        .map(|i| i.not_after)
    {
        deadline = deadline.min(not_after);
    }
    deadline
}

/// The Unix time at which a bootstrap-token Secret should be deleted, or None when it is not
/// a bootstrap token or never expires. An unreadable expiration counts as expired: such a
/// token authenticates nobody either.
pub fn token_deadline(secret: &Secret) -> Option<i64> {
    if secret.type_.as_deref() != Some("bootstrap.kubernetes.io/token") {
        return None;
    }
    let raw = secret.data.as_ref()?.get("expiration")?;
    let text = String::from_utf8_lossy(&raw.0);
    Some(
        text.trim()
            .parse::<jiff::Timestamp>()
            .map(|t| t.as_second())
            .unwrap_or(0),
    )
}

/// What the cleaners need.
pub struct Ctx {
    /// The API, as the hub.
    pub client: kube::Client,
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Deletes `name` if it is still the object that was judged (same uid).
async fn delete_exact<K>(api: &Api<K>, name: &str, uid: Option<String>) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The wait until `deadline`, or None when it has passed.
fn until(deadline: i64) -> Option<Duration> {
    let left = deadline - now();
    (left > 0).then(|| Duration::from_secs(left as u64 + 1))
}

async fn reconcile_csr(
    obj: Arc<CertificateSigningRequest>,
    ctx: Arc<Ctx>,
) -> Result<Action, kube::Error> {
    if let Some(wait) = until(csr_deadline(&obj)) {
        return Ok(Action::requeue(wait));
    }
    tracing::info!(csr = %obj.name_any(), "deleting an old certificate signing request");
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    delete_exact(&api, &obj.name_any(), obj.uid()).await?;
    Ok(Action::await_change())
}

async fn reconcile_token(obj: Arc<Secret>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    let Some(deadline) = token_deadline(&obj) else {
        return Ok(Action::await_change());
    };
    if let Some(wait) = until(deadline) {
        return Ok(Action::requeue(wait));
    }
    let id = obj
        .data
        .as_ref()
        .and_then(|d| d.get("token-id"))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .unwrap_or_default();
    tracing::info!(secret = %obj.name_any(), token_id = %id, "deleting an expired bootstrap token");
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), "kube-system");
    delete_exact(&api, &obj.name_any(), obj.uid()).await?;
    Ok(Action::await_change())
}

fn error_policy<K>(_: Arc<K>, e: &kube::Error, _: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "cleanup failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Runs both cleaners until their streams end.
pub async fn run(ctx: Arc<Ctx>, informers: Informers) {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), "kube-system");
    let csr_controller = crate::cache::controller::<CertificateSigningRequest>(
        &informers,
        watcher::Config::default(),
    );
    let csr_probe = crate::metrics::Probe::new("csr-cleaner", &csr_controller);
    let csr_cleaner = csr_controller
        .run(csr_probe.timed(reconcile_csr), error_policy, ctx.clone())
        .for_each(|_| async {});
    let token_controller = Controller::new(
        secrets,
        watcher::Config::default().fields("type=bootstrap.kubernetes.io/token"),
    );
    let token_probe = crate::metrics::Probe::new("bootstrap-token-cleaner", &token_controller);
    let token_cleaner = token_controller
        .run(token_probe.timed(reconcile_token), error_policy, ctx)
        .for_each(|_| async {});
    futures::join!(csr_cleaner, token_cleaner);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn csr(created: i64, conditions: serde_json::Value) -> CertificateSigningRequest {
        let ts = |s: i64| jiff::Timestamp::from_second(s).unwrap().to_string();
        let conds: Vec<serde_json::Value> = conditions
            .as_array()
            .unwrap()
            .iter()
            .map(|c| json!({"type": c[0], "status": "True", "lastUpdateTime": ts(c[1].as_i64().unwrap())}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": "c", "creationTimestamp": ts(created)},
            "spec": {"request": "", "signerName": "kubernetes.io/kube-apiserver-client"},
            "status": {"conditions": conds}
        }))
        .unwrap()
    }

    #[test]
    fn a_pending_request_is_kept_for_a_day() {
        let t = 1_800_000_000;
        assert_eq!(csr_deadline(&csr(t, json!([]))), t + 24 * 3600);
    }

    #[test]
    fn a_decided_request_is_kept_for_an_hour_after_the_decision() {
        let t = 1_800_000_000;
        for kind in ["Approved", "Denied", "Failed"] {
            assert_eq!(
                csr_deadline(&csr(t, json!([[kind, t + 600]]))),
                t + 600 + 3600,
                "{kind}"
            );
        }
        // Approved and then failed: the first decision counts.
        assert_eq!(
            csr_deadline(&csr(t, json!([["Approved", t + 10], ["Failed", t + 20]]))),
            t + 10 + 3600
        );
    }

    #[test]
    fn a_request_whose_certificate_expired_goes_at_once() {
        let now = time::OffsetDateTime::now_utc();
        let ca =
            garrison_pki::ClusterCa::generate("test-ca", now, time::Duration::days(1)).unwrap();
        let id = garrison_pki::AgentIdentity::new(
            garrison_pki::ClusterName::parse("c1").unwrap(),
            "agent",
        )
        .unwrap();
        let req = garrison_pki::new_request(&id.clone().into()).unwrap();
        let parsed = garrison_pki::parse_csr(req.csr_pem.as_bytes()).unwrap();
        let cert = ca.sign(&parsed, now, time::Duration::seconds(60)).unwrap();
        let not_after = garrison_pki::cert_info(&cert).unwrap().not_after;
        let t = not_after - 120;
        let mut c = csr(t, json!([["Approved", t]]));
        c.status.as_mut().unwrap().certificate = Some(k8s_openapi::ByteString(cert.into_bytes()));
        assert_eq!(csr_deadline(&c), not_after);
    }

    fn b64(s: &str) -> k8s_openapi::ByteString {
        k8s_openapi::ByteString(s.as_bytes().to_vec())
    }

    fn token(expiration: Option<&str>, type_: &str) -> Secret {
        let mut data = std::collections::BTreeMap::new();
        data.insert("token-id".to_string(), b64("abcdef"));
        if let Some(e) = expiration {
            data.insert("expiration".to_string(), b64(e));
        }
        Secret {
            type_: Some(type_.into()),
            data: Some(data),
            ..Default::default()
        }
    }

    #[test]
    fn bootstrap_tokens_go_at_their_expiration() {
        let at = "2030-01-01T00:00:00Z".parse::<jiff::Timestamp>().unwrap();
        assert_eq!(
            token_deadline(&token(
                Some("2030-01-01T00:00:00Z"),
                "bootstrap.kubernetes.io/token"
            )),
            Some(at.as_second())
        );
        assert_eq!(
            token_deadline(&token(Some("not a time"), "bootstrap.kubernetes.io/token")),
            Some(0),
            "an unreadable expiration counts as expired"
        );
        assert_eq!(
            token_deadline(&token(None, "bootstrap.kubernetes.io/token")),
            None
        );
        assert_eq!(
            token_deadline(&token(Some("2000-01-01T00:00:00Z"), "Opaque")),
            None
        );
    }
}
