//! Runs on the hub: the embedded signer for `kubernetes.io/kube-apiserver-client` CSRs.
//!
//! An approved, unsigned CSR for this signer is parsed and checked by `garrison_pki`; only
//! managed-cluster agent identities are signed, as client certificates of at most the maximum
//! lifetime (24 hours). Anything else is marked `Failed` with the reason, and never signed: the
//! signer fails closed. Approval itself is not this controller's business.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use garrison_pki::{ClusterCa, csr};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use serde_json::json;

use crate::cache::Informers;

/// The signer this controller implements.
pub const SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// Field manager of the signer's writes.
const MANAGER: &str = "garrison-csr-signer";

/// What the signer needs.
pub struct Ctx {
    /// The API.
    pub client: kube::Client,
    /// The client CA.
    pub ca: ClusterCa,
    /// The longest lifetime a CSR may ask for, in seconds; longer requests are refused.
    pub max_lifetime_secs: u64,
    /// The longest certificate actually issued, in seconds: requests are shortened to it
    /// (the hub's `--cert-lifetime`, at most `max_lifetime_secs`).
    pub issue_lifetime_secs: u64,
}

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API call failed.
    #[error("API call failed: {0}")]
    Kube(#[from] kube::Error),
    /// Signing failed on the hub's side.
    #[error("signing failed: {0}")]
    Pki(#[from] garrison_pki::PkiError),
}

fn condition(csr: &CertificateSigningRequest, kind: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == kind && c.status == "True"))
}

/// What the signer decides for one CSR.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not this signer's, not approved, already finished: nothing to do.
    Skip,
    /// Refuse with this reason.
    Fail(String),
    /// Sign for this many seconds.
    Sign(u64),
}

/// Decides what to do with a CSR, without side effects.
pub fn decide(
    obj: &CertificateSigningRequest,
    max_lifetime_secs: u64,
) -> (Decision, Option<garrison_pki::ParsedCsr>) {
    if obj.spec.signer_name != SIGNER || !awaits_signing(obj) {
        return (Decision::Skip, None);
    }
    let parsed = match csr::parse(&obj.spec.request.0) {
        Ok(p) => p,
        Err(e) => return (Decision::Fail(e.to_string()), None),
    };
    if let Err(e) = csr::check_usages(obj.spec.usages.as_deref().unwrap_or_default()) {
        return (Decision::Fail(e.to_string()), None);
    }
    let requested = obj.spec.expiration_seconds.map(|s| s.max(0) as u64);
    match csr::check_lifetime(requested, max_lifetime_secs) {
        Ok(secs) => (Decision::Sign(secs), Some(parsed)),
        Err(e) => (Decision::Fail(e.to_string()), None),
    }
}

async fn reconcile(obj: Arc<CertificateSigningRequest>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let name = obj.metadata.name.clone().unwrap_or_default();
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    let mut decision = decide(&obj, ctx.max_lifetime_secs);
    if let (Decision::Sign(secs), Some(parsed)) = &decision {
        // A request the checks passed but the CA cannot sign is failed with the reason, not
        // retried forever: nothing about it will change.
        let secs = (*secs).min(ctx.issue_lifetime_secs);
        match issue(&ctx, parsed, secs) {
            Ok(pem) => return write_certificate(&api, &name, pem, parsed, secs).await,
            Err(e) => decision = (Decision::Fail(e.to_string()), None),
        }
    }
    if let (Decision::Fail(reason), _) = decision {
        tracing::warn!(csr = %name, %reason, "refusing to sign");
        mark_failed(&api, &obj, reason, MANAGER).await?;
    }
    Ok(Action::await_change())
}

fn issue(ctx: &Ctx, parsed: &garrison_pki::ParsedCsr, secs: u64) -> Result<String, Error> {
    Ok(ctx.ca.sign(
        parsed,
        time::OffsetDateTime::now_utc(),
        time::Duration::seconds(secs as i64),
    )?)
}

async fn write_certificate(
    api: &Api<CertificateSigningRequest>,
    name: &str,
    pem: String,
    parsed: &garrison_pki::ParsedCsr,
    secs: u64,
) -> Result<Action, Error> {
    record_certificate(api, name, &pem, MANAGER).await?;
    tracing::info!(csr = %name, identity = %parsed.identity().user(), lifetime_secs = secs, "issued client certificate");
    Ok(Action::await_change())
}

/// Writes an issued certificate (PEM) into a CSR's status, as `manager`.
pub async fn record_certificate(
    api: &Api<CertificateSigningRequest>,
    name: &str,
    pem: &str,
    manager: &str,
) -> Result<(), kube::Error> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
    let pp = PatchParams {
        field_manager: Some(manager.into()),
        ..Default::default()
    };
    api.patch_status(
        name,
        &pp,
        &Patch::Merge(json!({"status": {"certificate": b64}})),
    )
    .await?;
    Ok(())
}

/// Marks a CSR `Failed` (reason `SignerValidationFailure`) with `message`, keeping its other
/// conditions, as `manager`: the signer refuses it for good.
pub async fn mark_failed(
    api: &Api<CertificateSigningRequest>,
    obj: &CertificateSigningRequest,
    message: String,
    manager: &str,
) -> Result<(), kube::Error> {
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
    let mut conditions = obj
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    conditions.push(
        k8s_openapi::api::certificates::v1::CertificateSigningRequestCondition {
            type_: "Failed".into(),
            status: "True".into(),
            reason: Some("SignerValidationFailure".into()),
            message: Some(message),
            last_update_time: Some(now.clone()),
            last_transition_time: Some(now),
        },
    );
    let pp = PatchParams {
        field_manager: Some(manager.into()),
        ..Default::default()
    };
    api.patch_status(
        &obj.name_any(),
        &pp,
        &Patch::Merge(json!({"status": {"conditions": conditions}})),
    )
    .await?;
    Ok(())
}

/// Whether a CSR is approved, not denied or failed, and not yet signed: a signer's to sign.
pub fn awaits_signing(obj: &CertificateSigningRequest) -> bool {
    condition(obj, "Approved")
        && !condition(obj, "Denied")
        && !condition(obj, "Failed")
        && obj
            .status
            .as_ref()
            .and_then(|s| s.certificate.as_ref())
            .is_none()
}

fn error_policy(_: Arc<CertificateSigningRequest>, e: &Error, _: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "CSR signer reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the signer until the stream of CSRs ends.
pub async fn run(ctx: Arc<Ctx>, informers: Informers) {
    let controller = crate::cache::controller::<CertificateSigningRequest>(
        &informers,
        watcher::Config::default(),
    );
    let probe = crate::metrics::Probe::new("csr-signer", &controller);
    controller
        .run(probe.timed(reconcile), error_policy, ctx)
        .for_each(|_| async {})
        .await;
}
