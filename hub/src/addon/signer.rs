//! Runs on the hub: the signer of add-on custom signers. A template add-on may register a
//! signer of its own (`customSigner{signerName, subject, signingCA}`); its agents' approved
//! CSRs for that signer are signed here with the CA in the `signingCA` Secret (`tls.crt`,
//! `tls.key`; namespace `open-cluster-management-hub` unless the template names one).
//!
//! Only what the template registers is signed: an approved request whose subject is not the
//! registration's, or that does not parse, is marked `Failed`, so a CSR approved by hand does
//! not widen what the add-on's CA vouches for. Certificates live at most as long as the hub's
//! own client certificates (24 hours), and are for client authentication only. A CSR for a
//! signer no template of its add-on registers is left for whichever signer owns it; a missing
//! or broken CA Secret is retried, since an admin may still create it.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use garrison_api::{ClusterManagementAddOn, ManagedClusterAddOn};
use garrison_pki::{ClusterCa, csr};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::watcher;

use crate::cache::Informers;
use crate::registration::approver::{ADDON_LABEL, CLUSTER_LABEL};
use crate::registration::csr_signer::{self, SIGNER, awaits_signing};

const MANAGER: &str = "garrison-addon-signer";

/// What the signer needs.
pub struct Ctx {
    /// The API, as the hub.
    pub client: kube::Client,
    /// The longest lifetime a CSR may ask for, in seconds; longer requests are refused.
    pub max_lifetime_secs: u64,
    /// The longest certificate issued, in seconds: requests are shortened to it.
    pub issue_lifetime_secs: u64,
}

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API call failed.
    #[error("API call failed: {0}")]
    Kube(#[from] kube::Error),
    /// The signing CA Secret is missing or unusable (the hub's configuration, retried).
    #[error("signing CA {namespace}/{name}: {why}")]
    SigningCa {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// What is wrong with it.
        why: String,
    },
}

/// Loads the CA from a `signingCA` Secret's `tls.crt` and `tls.key`.
pub fn signing_ca(secret: &Secret) -> Result<ClusterCa, String> {
    let field = |k: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .ok_or_else(|| format!("has no {k}"))
    };
    ClusterCa::from_pem(&field("tls.crt")?, &field("tls.key")?).map_err(|e| e.to_string())
}

async fn reconcile(obj: Arc<CertificateSigningRequest>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if obj.spec.signer_name == SIGNER || !awaits_signing(&obj) {
        return Ok(Action::await_change());
    }
    let labels = obj.labels();
    let (Some(cluster), Some(addon)) = (labels.get(CLUSTER_LABEL), labels.get(ADDON_LABEL)) else {
        return Ok(Action::await_change());
    };
    let client = &ctx.client;
    let Some(cma) = Api::<ClusterManagementAddOn>::all(client.clone())
        .get_opt(addon)
        .await?
    else {
        return Ok(Action::await_change());
    };
    let Some(mca) = Api::<ManagedClusterAddOn>::namespaced(client.clone(), cluster)
        .get_opt(addon)
        .await?
    else {
        return Ok(Action::await_change());
    };
    let Some(reg) = super::template::template_of(client, &cma, &mca)
        .await?
        .and_then(|t| super::template::custom_signer(&t, cluster, &obj.spec.signer_name))
    else {
        // Not a signer of this add-on's template: some other signer's business.
        return Ok(Action::await_change());
    };
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let name = obj.name_any();
    let checked = garrison_pki::custom::parse(&obj.spec.request.0, addon)
        .and_then(|p| {
            csr::check_usages(obj.spec.usages.as_deref().unwrap_or_default())?;
            let requested = obj.spec.expiration_seconds.map(|s| s.max(0) as u64);
            Ok((p, csr::check_lifetime(requested, ctx.max_lifetime_secs)?))
        })
        .map_err(|e| e.to_string())
        .and_then(|(p, secs)| {
            if p.subject().normalized() == reg.subject.normalized() {
                Ok((p, secs))
            } else {
                Err(format!(
                    "the request is for subject {:?}, but the add-on registers {:?} for signer {}",
                    p.subject().user,
                    reg.subject.user,
                    reg.signer_name
                ))
            }
        });
    let (parsed, secs) = match checked {
        Ok(v) => v,
        Err(reason) => {
            tracing::warn!(csr = %name, %reason, "refusing to sign an add-on custom-signer request");
            csr_signer::mark_failed(&api, &obj, reason, MANAGER).await?;
            return Ok(Action::await_change());
        }
    };
    let (ns, secret_name) = &reg.signing_ca;
    let ca_error = |why: String| Error::SigningCa {
        namespace: ns.clone(),
        name: secret_name.clone(),
        why,
    };
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(secret_name)
        .await?
        .ok_or_else(|| ca_error("not found".into()))?;
    let ca = signing_ca(&secret).map_err(ca_error)?;
    let secs = secs.min(ctx.issue_lifetime_secs);
    let pem = ca
        .sign_custom(
            &parsed,
            time::OffsetDateTime::now_utc(),
            time::Duration::seconds(secs as i64),
        )
        .map_err(|e| ca_error(e.to_string()))?;
    csr_signer::record_certificate(&api, &name, &pem, MANAGER).await?;
    tracing::info!(csr = %name, %cluster, %addon, signer = %reg.signer_name, subject = %parsed.subject().user, lifetime_secs = secs, "issued add-on custom-signer certificate");
    Ok(Action::await_change())
}

fn error_policy(obj: Arc<CertificateSigningRequest>, e: &Error, _: Arc<Ctx>) -> Action {
    tracing::warn!(csr = %obj.name_any(), error = %e, "add-on signer cannot sign yet; retrying");
    match e {
        Error::SigningCa { .. } => Action::requeue(Duration::from_secs(15)),
        Error::Kube(_) => Action::requeue(Duration::from_secs(2)),
    }
}

/// Runs the signer until the stream of CSRs ends.
pub async fn run(ctx: Arc<Ctx>, informers: Informers) {
    let controller = crate::cache::controller::<CertificateSigningRequest>(
        &informers,
        watcher::Config::default().labels(ADDON_LABEL),
    );
    let probe = crate::metrics::Probe::new("addon-signer", &controller);
    controller
        .run(probe.timed(reconcile), error_policy, ctx)
        .for_each(|_| async {})
        .await;
}
