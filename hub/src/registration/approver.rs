//! Automatic approval of certificate renewals, under the hub's rules.
//!
//! A pending CSR for the client signer is approved without a human only when all hold:
//! the requester is a managed cluster's agent (by its current certificate), the CSR asks for
//! exactly the requester's identity, the cluster exists, is accepted and is not being deleted,
//! and the key and usages pass the PKI's checks. A CSR from an agent for any other identity,
//! or with a bad key or usage, is denied with the reason. Everything else, including every
//! first CSR made with a bootstrap token, is left pending for `garrison accept`. With
//! `--renewal-approval manual`, renewals that pass every check wait for an admin too.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use garrison_api::ManagedCluster;
use garrison_pki::{AgentIdentity, csr};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use serde_json::json;

use super::csr_signer::SIGNER;
use crate::cache::Informers;

const MANAGER: &str = "garrison-csr-approver";
/// Reason recorded on automatic approvals, as upstream.
pub const REASON_AUTO_APPROVED: &str = "AutoApprovedByHubCSRApprovingController";
/// Reason recorded on automatic denials.
pub const REASON_DENIED: &str = "GarrisonRenewalPolicy";

/// What the approver needs.
pub struct Ctx {
    /// The API, as the hub.
    pub client: kube::Client,
    /// Whether renewals that pass every check are approved; when false they wait for an admin
    /// (bad requests are denied either way).
    pub auto_approve: bool,
}

/// What the approver decides for one CSR.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not an agent renewal, or already decided: leave it.
    Leave,
    /// An agent renewal whose cluster must be checked; approve if it is accepted.
    ApproveIfAccepted(String),
    /// An add-on CSR made by a cluster's agent for an add-on of that cluster: approve if the
    /// cluster is accepted and the add-on is enabled there with a registration for exactly this
    /// subject; deny otherwise.
    ApproveIfAddonRegistered(garrison_pki::AddonIdentity),
    /// A custom-signer CSR made by a cluster's agent for an add-on of that cluster: approve if
    /// the add-on is enabled on the accepted cluster and its template registers exactly this
    /// signer and subject; deny otherwise.
    ApproveIfCustomSignerRegistered(CustomRequest),
    /// Deny with this message.
    Deny(String),
}

/// Label naming the cluster of an add-on CSR, as upstream sets it.
pub const CLUSTER_LABEL: &str = "open-cluster-management.io/cluster-name";
/// Label naming the add-on of an add-on CSR, as upstream sets it.
pub const ADDON_LABEL: &str = "open-cluster-management.io/addon-name";
/// Reason recorded on denied add-on CSRs.
pub const REASON_ADDON_DENIED: &str = "GarrisonAddOnRegistrationPolicy";

fn has_condition(obj: &CertificateSigningRequest, kind: &str) -> bool {
    obj.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == kind))
}

/// Judges a CSR without side effects; the cluster's acceptance is checked by the caller.
pub fn judge(obj: &CertificateSigningRequest) -> Verdict {
    let custom = obj.spec.signer_name != SIGNER;
    let labels = obj.metadata.labels.clone().unwrap_or_default();
    // Of the other signers, only add-on custom signers are this approver's business.
    if is_decided(obj) || (custom && !labels.contains_key(ADDON_LABEL)) {
        return Verdict::Leave;
    }
    let username = obj.spec.username.as_deref().unwrap_or_default();
    if !username.starts_with(garrison_pki::identity::PREFIX) {
        return Verdict::Leave;
    }
    let groups = obj.spec.groups.clone().unwrap_or_default();
    let requester = match AgentIdentity::from_user(username, &groups) {
        Ok(r) => r,
        Err(e) => return Verdict::Deny(format!("the requester is not a valid agent: {e}")),
    };
    if custom {
        return judge_custom(obj, &requester, &labels);
    }
    let parsed = match csr::parse(&obj.spec.request.0) {
        Ok(p) => p,
        Err(e) => return Verdict::Deny(e.to_string()),
    };
    if let Err(e) = csr::check_usages(obj.spec.usages.as_deref().unwrap_or_default()) {
        return Verdict::Deny(e.to_string());
    }
    if let Some(addon) = parsed.identity().addon() {
        if let Err(e) = parsed.require_cluster(requester.cluster()) {
            return Verdict::Deny(e.to_string());
        }
        let labels = obj.metadata.labels.clone().unwrap_or_default();
        if labels.get(CLUSTER_LABEL).map(String::as_str) != Some(addon.cluster().as_str())
            || labels.get(ADDON_LABEL).map(String::as_str) != Some(addon.addon())
        {
            return Verdict::Deny(format!(
                "an add-on CSR must be labelled {CLUSTER_LABEL}={} and {ADDON_LABEL}={}",
                addon.cluster(),
                addon.addon()
            ));
        }
        return Verdict::ApproveIfAddonRegistered(addon.clone());
    }
    if let Err(e) = parsed.require_identity(&requester) {
        return Verdict::Deny(e.to_string());
    }
    Verdict::ApproveIfAccepted(requester.cluster().to_string())
}

/// A request of a cluster's agent for an add-on's custom signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomRequest {
    /// The requester's cluster.
    pub cluster: String,
    /// The add-on the request is labelled with.
    pub addon: String,
    /// The signer asked for.
    pub signer_name: String,
    /// The subject asked for.
    pub subject: garrison_pki::CustomSubject,
}

/// Judges a CSR of a cluster's agent for a signer other than the hub's: an add-on's custom
/// signer. The request must be labelled with the requester's own cluster, name no well-known
/// Kubernetes signer, and be a well-formed client request for the add-on.
fn judge_custom(
    obj: &CertificateSigningRequest,
    requester: &AgentIdentity,
    labels: &std::collections::BTreeMap<String, String>,
) -> Verdict {
    let addon = labels.get(ADDON_LABEL).cloned().unwrap_or_default();
    if labels.get(CLUSTER_LABEL).map(String::as_str) != Some(requester.cluster().as_str()) {
        return Verdict::Deny(format!(
            "an add-on CSR of cluster {} must be labelled {CLUSTER_LABEL}={}",
            requester.cluster(),
            requester.cluster()
        ));
    }
    if obj.spec.signer_name.starts_with("kubernetes.io/") {
        return Verdict::Deny(format!(
            "signer {} is not an add-on signer",
            obj.spec.signer_name
        ));
    }
    let parsed = match garrison_pki::custom::parse(&obj.spec.request.0, &addon) {
        Ok(p) => p,
        Err(e) => return Verdict::Deny(e.to_string()),
    };
    if let Err(e) = csr::check_usages(obj.spec.usages.as_deref().unwrap_or_default()) {
        return Verdict::Deny(e.to_string());
    }
    Verdict::ApproveIfCustomSignerRegistered(CustomRequest {
        cluster: requester.cluster().to_string(),
        addon,
        signer_name: obj.spec.signer_name.clone(),
        subject: parsed.subject().clone(),
    })
}

/// Why no certificate of any signer may be approved now for `addon` on `cluster`, or `None`
/// when the add-on is known to the hub and enabled on the accepted cluster.
fn enabled_refusal(
    cluster: Option<&ManagedCluster>,
    registered_on_hub: bool,
    mca: Option<&garrison_api::ManagedClusterAddOn>,
    cluster_name: &str,
    addon: &str,
) -> Option<String> {
    // The agent may write its add-ons' status, registrations included; an add-on the hub
    // does not know (no ClusterManagementAddOn) gets no certificate whatever they say.
    if !registered_on_hub {
        return Some(format!(
            "add-on {addon} is not registered on the hub (no ClusterManagementAddOn)"
        ));
    }
    let accepted = cluster.is_some_and(|c| {
        c.spec.hub_accepts_client == Some(true) && c.metadata.deletion_timestamp.is_none()
    });
    if !accepted {
        return Some(format!("cluster {cluster_name} is not accepted"));
    }
    if mca.is_none_or(|a| a.metadata.deletion_timestamp.is_some()) {
        return Some(format!(
            "add-on {addon} is not enabled on cluster {cluster_name}"
        ));
    }
    None
}

/// Why a custom-signer CSR may not be approved now, or `None` when the add-on is enabled on the
/// accepted cluster and its AddOnTemplate, on the hub, registers exactly this signer and
/// subject. The template is the authority here, not the ManagedClusterAddOn's status, which
/// the cluster's agent may write.
pub fn custom_signer_refusal(
    cluster: Option<&ManagedCluster>,
    registered_on_hub: bool,
    mca: Option<&garrison_api::ManagedClusterAddOn>,
    template: Option<&garrison_api::addon::v1alpha1::AddOnTemplate>,
    req: &CustomRequest,
) -> Option<String> {
    if let Some(why) = enabled_refusal(cluster, registered_on_hub, mca, &req.cluster, &req.addon) {
        return Some(why);
    }
    let Some(tpl) = template else {
        return Some(format!(
            "add-on {} has no AddOnTemplate, so no custom signer",
            req.addon
        ));
    };
    let Some(reg) = crate::addon::template::custom_signer(tpl, &req.cluster, &req.signer_name)
    else {
        return Some(format!(
            "add-on {} registers no custom signer {}",
            req.addon, req.signer_name
        ));
    };
    if reg.subject.normalized() != req.subject.normalized() {
        return Some(format!(
            "the request is for subject {:?}, but add-on {} registers {:?} for signer {}",
            req.subject.user, req.addon, reg.subject.user, req.signer_name
        ));
    }
    None
}

/// Why an add-on CSR may not be approved now, or `None` when the add-on is enabled on the
/// accepted cluster with a kube-apiserver-client registration for exactly this subject.
pub fn addon_refusal(
    cluster: Option<&ManagedCluster>,
    registered_on_hub: bool,
    addon: Option<&garrison_api::ManagedClusterAddOn>,
    id: &garrison_pki::AddonIdentity,
) -> Option<String> {
    if let Some(why) = enabled_refusal(
        cluster,
        registered_on_hub,
        addon,
        id.cluster().as_str(),
        id.addon(),
    ) {
        return Some(why);
    }
    let addon = addon?;
    let registered = addon
        .status
        .as_ref()
        .map(|s| s.registrations.as_slice())
        .unwrap_or_default()
        .iter()
        .any(|r| {
            let subject = r.subject.clone().unwrap_or_default();
            let user = Some(subject.user)
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| default_addon_user(id));
            let mut groups: Vec<String> = Some(subject.groups)
                .filter(|g| !g.is_empty())
                .unwrap_or_else(|| id.groups().to_vec())
                .into_iter()
                .filter(|g| g != "system:authenticated")
                .collect();
            groups.sort();
            let mut want = id.groups().to_vec();
            want.sort();
            r.signer_name == SIGNER && user == id.user() && groups == want
        });
    if !registered {
        return Some(format!(
            "add-on {} on cluster {} has no registration for {}",
            id.addon(),
            id.cluster(),
            id.user()
        ));
    }
    None
}

/// The user upstream's add-on agents take when a registration names none: the agent is named
/// after the add-on.
fn default_addon_user(id: &garrison_pki::AddonIdentity) -> String {
    garrison_pki::AddonIdentity::new(id.cluster().clone(), id.addon(), id.addon())
        .map(|d| d.user())
        .unwrap_or_default()
}

/// Whether a CSR has been approved, denied or has failed.
pub fn is_decided(obj: &CertificateSigningRequest) -> bool {
    ["Approved", "Denied", "Failed"]
        .iter()
        .any(|c| has_condition(obj, c))
}

/// Approves or denies a CSR through its approval subresource, keeping its other conditions,
/// as `manager` — but only if the request is still exactly as `obj` was read (same
/// resourceVersion): the new condition list is built from `obj`, so writing it over a newer
/// copy would drop what changed since, and a person's decision must be about the request they
/// saw. Otherwise the server answers 409 and nothing is decided.
pub async fn record_decision(
    api: &Api<CertificateSigningRequest>,
    obj: &CertificateSigningRequest,
    approved: bool,
    reason: &str,
    message: &str,
    manager: &str,
) -> Result<(), kube::Error> {
    let mut conditions = obj
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let now = Time(jiff::Timestamp::now());
    conditions.push(CertificateSigningRequestCondition {
        type_: if approved { "Approved" } else { "Denied" }.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    });
    let pp = PatchParams {
        field_manager: Some(manager.into()),
        ..Default::default()
    };
    let patch = json!({
        "metadata": {"resourceVersion": obj.resource_version()},
        "status": {"conditions": conditions},
    });
    api.patch_approval(&obj.name_any(), &pp, &Patch::Merge(patch))
        .await?;
    Ok(())
}

async fn reconcile(
    obj: Arc<CertificateSigningRequest>,
    ctx: Arc<Ctx>,
) -> Result<Action, kube::Error> {
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    match judge(&obj) {
        Verdict::Leave => {}
        Verdict::Deny(why) => {
            tracing::warn!(csr = %obj.name_any(), reason = %why, "denying agent CSR");
            record_decision(&api, &obj, false, REASON_DENIED, &why, MANAGER).await?;
        }
        Verdict::ApproveIfAddonRegistered(id) => {
            let clusters: Api<ManagedCluster> = Api::all(ctx.client.clone());
            let cluster = clusters.get_opt(id.cluster().as_str()).await?;
            let addons: Api<garrison_api::ManagedClusterAddOn> =
                Api::namespaced(ctx.client.clone(), id.cluster().as_str());
            let addon = addons.get_opt(id.addon()).await?;
            let cmas: Api<garrison_api::ClusterManagementAddOn> = Api::all(ctx.client.clone());
            let known = cmas.get_opt(id.addon()).await?.is_some();
            match addon_refusal(cluster.as_ref(), known, addon.as_ref(), &id) {
                Some(why) => {
                    tracing::warn!(csr = %obj.name_any(), reason = %why, "denying add-on CSR");
                    record_decision(&api, &obj, false, REASON_ADDON_DENIED, &why, MANAGER).await?;
                }
                None => {
                    tracing::info!(csr = %obj.name_any(), cluster = %id.cluster(), addon = id.addon(), "approving add-on certificate");
                    record_decision(
                        &api,
                        &obj,
                        true,
                        REASON_AUTO_APPROVED,
                        &format!(
                            "Auto approving add-on {} agent certificate for cluster {}.",
                            id.addon(),
                            id.cluster()
                        ),
                        MANAGER,
                    )
                    .await?;
                }
            }
        }
        Verdict::ApproveIfCustomSignerRegistered(req) => {
            let cluster = Api::<ManagedCluster>::all(ctx.client.clone())
                .get_opt(&req.cluster)
                .await?;
            let mca = Api::<garrison_api::ManagedClusterAddOn>::namespaced(
                ctx.client.clone(),
                &req.cluster,
            )
            .get_opt(&req.addon)
            .await?;
            let cma = Api::<garrison_api::ClusterManagementAddOn>::all(ctx.client.clone())
                .get_opt(&req.addon)
                .await?;
            let template = match (&cma, &mca) {
                (Some(cma), Some(mca)) => {
                    crate::addon::template::template_of(&ctx.client, cma, mca).await?
                }
                _ => None,
            };
            match custom_signer_refusal(
                cluster.as_ref(),
                cma.is_some(),
                mca.as_ref(),
                template.as_ref(),
                &req,
            ) {
                Some(why) => {
                    tracing::warn!(csr = %obj.name_any(), reason = %why, "denying add-on CSR");
                    record_decision(&api, &obj, false, REASON_ADDON_DENIED, &why, MANAGER).await?;
                }
                None => {
                    tracing::info!(csr = %obj.name_any(), cluster = %req.cluster, addon = %req.addon, signer = %req.signer_name, "approving add-on custom-signer certificate");
                    record_decision(
                        &api,
                        &obj,
                        true,
                        REASON_AUTO_APPROVED,
                        &format!(
                            "Auto approving add-on {} certificate of signer {} for cluster {}.",
                            req.addon, req.signer_name, req.cluster
                        ),
                        MANAGER,
                    )
                    .await?;
                }
            }
        }
        Verdict::ApproveIfAccepted(cluster) => {
            let clusters: Api<ManagedCluster> = Api::all(ctx.client.clone());
            let accepted = clusters.get_opt(&cluster).await?.is_some_and(|c| {
                c.spec.hub_accepts_client == Some(true) && c.metadata.deletion_timestamp.is_none()
            });
            if accepted && !ctx.auto_approve {
                tracing::info!(csr = %obj.name_any(), %cluster, "renewal waits for an admin: garrison accept {cluster}");
            } else if accepted {
                tracing::info!(csr = %obj.name_any(), %cluster, "approving certificate renewal");
                record_decision(
                    &api,
                    &obj,
                    true,
                    REASON_AUTO_APPROVED,
                    "Auto approving Managed cluster agent certificate after SubjectAccessReview.",
                    MANAGER,
                )
                .await?;
            } else {
                tracing::info!(csr = %obj.name_any(), %cluster, "renewal left pending: the cluster is not accepted");
                return Ok(Action::requeue(Duration::from_secs(30)));
            }
        }
    }
    Ok(Action::await_change())
}

fn error_policy(_: Arc<CertificateSigningRequest>, e: &kube::Error, _: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "CSR approver reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the approver until its stream ends.
pub async fn run(ctx: Arc<Ctx>, informers: Informers) {
    let controller = crate::cache::controller::<CertificateSigningRequest>(
        &informers,
        watcher::Config::default(),
    );
    let probe = crate::metrics::Probe::new("csr-approver", &controller);
    controller
        .run(probe.timed(reconcile), error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use garrison_pki::{ClusterName, new_request};
    use k8s_openapi::ByteString;

    fn agent(cluster: &str, id: &str) -> AgentIdentity {
        AgentIdentity::new(ClusterName::parse(cluster).unwrap(), id).unwrap()
    }

    fn csr_obj(
        requester: Option<&AgentIdentity>,
        subject: &AgentIdentity,
    ) -> CertificateSigningRequest {
        let req = new_request(&subject.clone().into()).unwrap();
        let (username, groups) = match requester {
            Some(r) => {
                let mut g = r.groups().to_vec();
                g.push("system:authenticated".into());
                (r.user(), g)
            }
            None => (
                "system:bootstrap:abcdef".to_string(),
                vec!["system:bootstrappers".into(), "system:authenticated".into()],
            ),
        };
        serde_json::from_value(json!({
            "metadata": {"name": "x"},
            "spec": {
                "signerName": SIGNER,
                "request": ByteString(req.csr_pem.into_bytes()),
                "usages": ["digital signature", "client auth"],
                "username": username,
                "groups": groups,
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_renewal_of_the_same_identity_is_approved_if_accepted() {
        let a = agent("a", "one");
        assert_eq!(
            judge(&csr_obj(Some(&a), &a)),
            Verdict::ApproveIfAccepted("a".into())
        );
    }

    #[test]
    fn bootstrap_csrs_wait_for_a_human() {
        assert_eq!(judge(&csr_obj(None, &agent("a", "one"))), Verdict::Leave);
    }

    #[test]
    fn another_clusters_identity_is_denied_with_the_reason() {
        let a = agent("a", "one");
        let Verdict::Deny(why) = judge(&csr_obj(Some(&a), &agent("b", "one"))) else {
            panic!("not denied");
        };
        assert!(why.contains("\"b\""), "{why}");
    }

    #[test]
    fn another_agent_of_the_same_cluster_is_denied() {
        let a = agent("a", "one");
        assert!(matches!(
            judge(&csr_obj(Some(&a), &agent("a", "two"))),
            Verdict::Deny(_)
        ));
    }

    #[test]
    fn server_usage_is_denied() {
        let a = agent("a", "one");
        let mut obj = csr_obj(Some(&a), &a);
        obj.spec.usages = Some(vec!["digital signature".into(), "server auth".into()]);
        assert!(matches!(judge(&obj), Verdict::Deny(w) if w.contains("server auth")));
    }

    #[test]
    fn a_forged_group_list_is_denied() {
        let a = agent("a", "one");
        let mut obj = csr_obj(Some(&a), &a);
        obj.spec.groups = Some(vec!["system:masters".into()]);
        assert!(matches!(judge(&obj), Verdict::Deny(_)));
    }

    #[test]
    fn decided_csrs_and_other_signers_are_left() {
        let a = agent("a", "one");
        let mut obj = csr_obj(Some(&a), &a);
        obj.spec.signer_name = "example.com/x".into();
        assert_eq!(judge(&obj), Verdict::Leave);
    }

    fn addon(cluster: &str, name: &str) -> garrison_pki::AddonIdentity {
        garrison_pki::AddonIdentity::new(ClusterName::parse(cluster).unwrap(), name, name).unwrap()
    }

    fn mc(accepted: bool) -> ManagedCluster {
        serde_json::from_value(
            json!({"metadata": {"name": "c1"}, "spec": {"hubAcceptsClient": accepted}}),
        )
        .unwrap()
    }

    fn mca(registrations: serde_json::Value) -> garrison_api::ManagedClusterAddOn {
        serde_json::from_value(json!({
            "metadata": {"name": "msa", "namespace": "c1"},
            "spec": {},
            "status": {"registrations": registrations}
        }))
        .unwrap()
    }

    #[test]
    fn add_on_certificates_need_an_accepted_cluster_an_enabled_add_on_and_a_matching_registration()
    {
        let id = addon("c1", "msa");
        let good = mca(json!([{"signerName": SIGNER, "subject": {
            "user": id.user(), "groups": [id.groups()[0].clone(), id.groups()[1].clone(), "system:authenticated"]}}]));
        assert_eq!(addon_refusal(Some(&mc(true)), true, Some(&good), &id), None);
        assert!(
            addon_refusal(Some(&mc(true)), false, Some(&good), &id)
                .unwrap()
                .contains("not registered on the hub")
        );
        // A registration with no subject means upstream's default one.
        let default = mca(json!([{"signerName": SIGNER}]));
        assert_eq!(
            addon_refusal(Some(&mc(true)), true, Some(&default), &id),
            None
        );
        let why = |c: Option<&ManagedCluster>, a: Option<&garrison_api::ManagedClusterAddOn>| {
            addon_refusal(c, true, a, &id).unwrap()
        };
        assert!(why(Some(&mc(false)), Some(&good)).contains("not accepted"));
        assert!(why(None, Some(&good)).contains("not accepted"));
        assert!(why(Some(&mc(true)), None).contains("not enabled"));
        let mut deleting = good.clone();
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        assert!(why(Some(&mc(true)), Some(&deleting)).contains("not enabled"));
        // Registered for another signer, or another subject: refused.
        let other_signer = mca(json!([{"signerName": "example.com/custom"}]));
        assert!(why(Some(&mc(true)), Some(&other_signer)).contains("no registration"));
        let other_user = mca(json!([{"signerName": SIGNER, "subject": {"user": "someone-else"}}]));
        assert!(why(Some(&mc(true)), Some(&other_user)).contains("no registration"));
    }

    #[test]
    fn an_add_on_request_must_come_from_its_own_clusters_agent_with_upstreams_labels() {
        let a = agent("c1", "one");
        let id: garrison_pki::Identity = addon("c1", "msa").into();
        let mut obj = csr_obj(Some(&a), &a);
        let req = new_request(&id).unwrap();
        obj.spec.request = ByteString(req.csr_pem.into_bytes());
        assert!(matches!(judge(&obj), Verdict::Deny(w) if w.contains("labelled")));
        obj.metadata.labels = Some(
            [
                (CLUSTER_LABEL.to_string(), "c1".to_string()),
                (ADDON_LABEL.to_string(), "msa".to_string()),
            ]
            .into(),
        );
        assert!(matches!(judge(&obj), Verdict::ApproveIfAddonRegistered(_)));
        // Another cluster's agent asking for it: denied.
        let b = agent("c2", "two");
        let mut from_b = obj.clone();
        from_b.spec.username = Some(b.user());
        from_b.spec.groups = Some(b.groups().to_vec());
        assert!(matches!(judge(&from_b), Verdict::Deny(_)));
    }

    fn metrics_subject() -> garrison_pki::CustomSubject {
        garrison_pki::CustomSubject {
            user: "metrics-agent".into(),
            groups: vec!["metrics".into()],
            organizational_units: vec!["fleet".into()],
        }
    }

    fn custom_obj(requester: &AgentIdentity, cluster_label: &str) -> CertificateSigningRequest {
        let a = requester;
        let mut obj = csr_obj(Some(a), a);
        let req = garrison_pki::custom::new_request(&metrics_subject(), "metrics").unwrap();
        obj.spec.request = ByteString(req.csr_pem.into_bytes());
        obj.spec.signer_name = "example.com/metrics".into();
        obj.metadata.labels = Some(
            [
                (CLUSTER_LABEL.to_string(), cluster_label.to_string()),
                (ADDON_LABEL.to_string(), "metrics".to_string()),
            ]
            .into(),
        );
        obj
    }

    #[test]
    fn a_custom_signer_request_must_be_its_own_clusters_and_name_no_kubernetes_signer() {
        let a = agent("c1", "one");
        let obj = custom_obj(&a, "c1");
        assert_eq!(
            judge(&obj),
            Verdict::ApproveIfCustomSignerRegistered(CustomRequest {
                cluster: "c1".into(),
                addon: "metrics".into(),
                signer_name: "example.com/metrics".into(),
                subject: metrics_subject(),
            })
        );
        // Labelled for another cluster: denied.
        assert!(matches!(judge(&custom_obj(&a, "c2")), Verdict::Deny(w) if w.contains("labelled")));
        // A well-known signer dressed as an add-on's: denied.
        let mut kubelet = obj.clone();
        kubelet.spec.signer_name = "kubernetes.io/kubelet-serving".into();
        assert!(matches!(judge(&kubelet), Verdict::Deny(w) if w.contains("not an add-on signer")));
        // Server usage: denied.
        let mut server = obj.clone();
        server.spec.usages = Some(vec!["server auth".into()]);
        assert!(matches!(judge(&server), Verdict::Deny(_)));
        // Another signer's CSR without an add-on label, or from a bootstrap token: left.
        let mut plain = obj.clone();
        plain.metadata.labels = None;
        assert_eq!(judge(&plain), Verdict::Leave);
        let mut boot = obj.clone();
        boot.spec.username = Some("system:bootstrap:abcdef".into());
        assert_eq!(judge(&boot), Verdict::Leave);
    }

    #[test]
    fn a_custom_signer_certificate_needs_the_templates_registration_of_that_signer_and_subject() {
        let tpl: garrison_api::addon::v1alpha1::AddOnTemplate = serde_json::from_value(json!({
            "metadata": {"name": "metrics-0.1"},
            "spec": {"addonName": "metrics", "agentSpec": {"workload": {"manifests": []}},
                "registration": [{"type": "CustomSigner", "customSigner": {
                    "signerName": "example.com/metrics",
                    "subject": {"user": "metrics-agent", "groups": ["metrics"], "organizationUnit": ["fleet"]},
                    "signingCA": {"name": "metrics-ca"}}}]}
        }))
        .unwrap();
        let m = mca(json!([]));
        let req = CustomRequest {
            cluster: "c1".into(),
            addon: "metrics".into(),
            signer_name: "example.com/metrics".into(),
            subject: metrics_subject(),
        };
        let refusal =
            |r: &CustomRequest, t: Option<&garrison_api::addon::v1alpha1::AddOnTemplate>| {
                custom_signer_refusal(Some(&mc(true)), true, Some(&m), t, r)
            };
        assert_eq!(refusal(&req, Some(&tpl)), None);
        assert!(refusal(&req, None).unwrap().contains("no AddOnTemplate"));
        let mut other_signer = req.clone();
        other_signer.signer_name = "example.com/other".into();
        assert!(
            refusal(&other_signer, Some(&tpl))
                .unwrap()
                .contains("no custom signer")
        );
        let mut other_user = req.clone();
        other_user.subject.user = "system:masters".into();
        assert!(
            refusal(&other_user, Some(&tpl))
                .unwrap()
                .contains("registers")
        );
        let mut extra_group = req.clone();
        extra_group.subject.groups.push("system:masters".into());
        assert!(refusal(&extra_group, Some(&tpl)).is_some());
        assert!(
            custom_signer_refusal(Some(&mc(false)), true, Some(&m), Some(&tpl), &req)
                .unwrap()
                .contains("not accepted")
        );
        assert!(
            custom_signer_refusal(Some(&mc(true)), true, None, Some(&tpl), &req)
                .unwrap()
                .contains("not enabled")
        );
    }
}
