//! The managed-serviceaccount add-on, built into the agent, with upstream's behaviour: for each
//! ManagedServiceAccount in the cluster's namespace on the hub, a ServiceAccount of the same
//! name in the add-on's namespace here, a token for it from the cluster's own TokenRequest API
//! with the requested validity, and the hub Secret of the same name holding `token` and
//! `ca.crt`. The token is refreshed when less than 20% of its lifetime is left, when it names
//! another account, or when the cluster no longer accepts it.
//!
//! It talks to the hub only with its own add-on certificate, so it can touch Secrets and
//! ManagedServiceAccounts of its own cluster's namespace and nothing else.

use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use garrison_api::ManagedServiceAccount;
use garrison_api::authentication::v1beta1::{DEFAULT_VALIDITY, MANAGED_LABEL};
use garrison_api::status::{condition, set_condition};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenReview};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::watch;

/// The add-on's name.
pub const ADDON: &str = "managed-serviceaccount";
const MANAGER: &str = "garrison-managed-serviceaccount";

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    }
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    }
}

/// What the add-on works with.
pub struct Ctx {
    /// The hub, as this add-on on this cluster.
    pub hub: kube::Client,
    /// The managed cluster.
    pub spoke: kube::Client,
    /// The cluster's name (its namespace on the hub).
    pub cluster: String,
    /// The add-on's namespace on the managed cluster, where the ServiceAccounts live.
    pub namespace: String,
    /// The managed cluster's CA, reported beside each token.
    pub spoke_ca: Option<String>,
}

/// Parses a Go duration such as `8640h0m0s`, `90m` or `45s` into seconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let mut total: f64 = 0.0;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += value * factor;
    }
    (total.is_finite() && total < i64::MAX as f64).then_some(total as i64)
}

/// When a token issued at `last` and expiring at `expires` is refreshed: once 80% of its
/// lifetime has passed.
pub fn refresh_at(last: i64, expires: i64) -> i64 {
    last + (expires - last) * 4 / 5
}

/// How long to sleep, from a moment within the whole second `now`, to be past the whole
/// second `at`. Sleeping `at - now` seconds from anywhere within `now` wakes at or after `at`;
/// the quarter second more covers the timer's rounding. Nothing longer is added: a 30 s token
/// is refreshed at 24 s, and slack here is taken from the 6 s it has left.
fn wait_until(at: i64, now: i64) -> Duration {
    Duration::from_secs((at - now).max(0) as u64) + Duration::from_millis(250)
}

/// The `sub` claim of a JWT, unverified: only compared with the account it should name.
fn token_subject(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v["sub"].as_str().map(String::from)
}

/// Runs the add-on until `stop` turns true.
pub async fn run(ctx: Ctx, mut stop: watch::Receiver<bool>) {
    let msas: Api<ManagedServiceAccount> = Api::namespaced(ctx.hub.clone(), &ctx.cluster);
    let mut changes = watcher(msas, watcher::Config::default()).boxed();
    loop {
        let wait = match pass(&ctx).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(addon = ADDON, error = %e, "managed service account pass failed; retrying");
                Duration::from_secs(5)
            }
        };
        let deadline = tokio::time::sleep(wait);
        tokio::pin!(deadline);
        tokio::select! {
            _ = &mut deadline => {}
            ev = changes.next() => {
                if ev.is_none() { tokio::time::sleep(Duration::from_secs(1)).await; }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ = stop.changed() => return,
        }
    }
}

/// One pass over the cluster's ManagedServiceAccounts; returns how long until the next token
/// is due.
async fn pass(ctx: &Ctx) -> Result<Duration, kube::Error> {
    let msas: Api<ManagedServiceAccount> = Api::namespaced(ctx.hub.clone(), &ctx.cluster);
    let list = msas.list(&ListParams::default()).await?.items;
    let mut next = Duration::from_secs(300);
    for msa in &list {
        if msa.metadata.deletion_timestamp.is_some() {
            continue;
        }
        match reconcile(ctx, msa).await {
            Ok(due) => next = next.min(due),
            Err(e) => {
                tracing::warn!(addon = ADDON, msa = %msa.name_any(), error = %e, "cannot report the token");
                report_failure(ctx, msa, &e.to_string()).await;
                next = next.min(Duration::from_secs(10));
            }
        }
    }
    // ServiceAccounts whose ManagedServiceAccount is gone; only those this add-on made.
    let sas: Api<ServiceAccount> = Api::namespaced(ctx.spoke.clone(), &ctx.namespace);
    for sa in sas
        .list(&ListParams::default().labels(&format!("{MANAGED_LABEL}=true")))
        .await?
        .items
    {
        if !list.iter().any(|m| m.name_any() == sa.name_any()) {
            tracing::info!(addon = ADDON, serviceaccount = %sa.name_any(), "ManagedServiceAccount deleted; removing its ServiceAccount");
            match sas.delete(&sa.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(next)
}

fn refuse(message: String) -> kube::Error {
    kube::Error::Service(message.into())
}

/// Makes the ServiceAccount, or finds the one this add-on made. A ServiceAccount that exists
/// without the add-on's label is someone else's (another add-on's, a system one): its token is
/// never requested, whatever a ManagedServiceAccount is named.
async fn ensure_service_account(ctx: &Ctx, name: &str) -> Result<(), kube::Error> {
    let sas: Api<ServiceAccount> = Api::namespaced(ctx.spoke.clone(), &ctx.namespace);
    if let Some(sa) = sas.get_opt(name).await? {
        if sa.labels().get(MANAGED_LABEL).map(String::as_str) != Some("true") {
            return Err(refuse(format!(
                "ServiceAccount {}/{name} exists on the cluster and was not made for a ManagedServiceAccount; refusing to hand out its token",
                ctx.namespace
            )));
        }
        return Ok(());
    }
    let sa: ServiceAccount = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ctx.namespace, "labels": {MANAGED_LABEL: "true"}}
    }))
    .map_err(kube::Error::SerdeError)?;
    match sas.create(&PostParams::default(), &sa).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether the cluster accepts `token` now, by TokenReview.
async fn accepted(ctx: &Ctx, token: &str) -> Result<bool, kube::Error> {
    let reviews: Api<TokenReview> = Api::all(ctx.spoke.clone());
    let review: TokenReview = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token}
    }))
    .map_err(kube::Error::SerdeError)?;
    let r = reviews.create(&PostParams::default(), &review).await?;
    Ok(r.status.and_then(|s| s.authenticated) == Some(true))
}

async fn reconcile(ctx: &Ctx, msa: &ManagedServiceAccount) -> Result<Duration, kube::Error> {
    let name = msa.name_any();
    ensure_service_account(ctx, &name).await?;
    let validity = msa
        .spec
        .rotation
        .as_ref()
        .and_then(|r| r.validity.clone())
        .unwrap_or_else(|| DEFAULT_VALIDITY.into());
    let secs = parse_duration(&validity)
        .filter(|s| *s > 0)
        .ok_or_else(|| {
            kube::Error::Service(
                format!("spec.rotation.validity {validity:?} is not a duration").into(),
            )
        })?;
    let secrets: Api<Secret> = Api::namespaced(ctx.hub.clone(), &ctx.cluster);
    let existing = secrets.get_opt(&name).await?;
    // Only a Secret this add-on wrote for this very ManagedServiceAccount is overwritten.
    if let Some(s) = &existing {
        let ours = s.labels().get(MANAGED_LABEL).map(String::as_str) == Some("true")
            && s.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == msa.metadata.uid.as_ref());
        if !ours {
            return Err(refuse(format!(
                "Secret {}/{name} on the hub was not written for this ManagedServiceAccount; refusing to overwrite it",
                ctx.cluster
            )));
        }
    }
    let token = existing.as_ref().and_then(|s| {
        s.data.as_ref().and_then(|d| {
            d.get("token")
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        })
    });
    let status = msa.status.clone().unwrap_or_default();
    let now = jiff::Timestamp::now().as_second();
    let last = status
        .token_secret_ref
        .as_ref()
        .and_then(|r| r.last_refresh_timestamp.as_ref())
        .map(|t| t.0.as_second());
    let expires = status
        .expiration_timestamp
        .as_ref()
        .map(|t| t.0.as_second());
    let want_sub = format!("system:serviceaccount:{}:{name}", ctx.namespace);
    let due = match (&token, last, expires) {
        (Some(t), Some(last), Some(exp)) => {
            now >= refresh_at(last, exp)
                || token_subject(t).as_deref() != Some(want_sub.as_str())
                || !accepted(ctx, t).await?
        }
        _ => true,
    };
    if !due {
        return Ok(wait_until(
            refresh_at(last.unwrap_or(now), expires.unwrap_or(now)),
            now,
        ));
    }
    let sas: Api<ServiceAccount> = Api::namespaced(ctx.spoke.clone(), &ctx.namespace);
    let request: TokenRequest = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": [], "expirationSeconds": secs}
    }))
    .map_err(kube::Error::SerdeError)?;
    let issued = sas
        .create_token_request(&name, &PostParams::default(), &request)
        .await?;
    let issued = issued.status.unwrap_or_default();
    let token = issued.token.unwrap_or_default();
    let expires = issued
        .expiration_timestamp
        .map(|t| t.0)
        .unwrap_or_else(|| jiff::Timestamp::from_second(now + secs).unwrap_or_default());
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": ctx.cluster,
            "labels": {MANAGED_LABEL: "true"},
            "ownerReferences": [{"apiVersion": "authentication.open-cluster-management.io/v1beta1",
                "kind": "ManagedServiceAccount", "name": name, "uid": msa.uid().unwrap_or_default()}]},
        "type": "Opaque",
        "data": {"token": b64(&token), "ca.crt": b64(ctx.spoke_ca.as_deref().unwrap_or_default())},
    }))
    .map_err(kube::Error::SerdeError)?;
    // create and update only, as upstream's add-on role allows.
    match existing {
        Some(old) => {
            secret.metadata.resource_version = old.metadata.resource_version;
            secrets
                .replace(&name, &PostParams::default(), &secret)
                .await?;
        }
        None => {
            secrets.create(&post_params(), &secret).await?;
        }
    }
    let now_t = Time(jiff::Timestamp::now());
    let mut conditions = status.conditions.clone();
    set_condition(
        &mut conditions,
        condition("SecretCreated", "True", "SecretCreated", "Secret created"),
        now_t.clone(),
    );
    set_condition(
        &mut conditions,
        condition("TokenReported", "True", "TokenReported", "Token refreshed"),
        now_t.clone(),
    );
    let msas: Api<ManagedServiceAccount> = Api::namespaced(ctx.hub.clone(), &ctx.cluster);
    msas.patch_status(
        &name,
        &patch_params(),
        &Patch::Merge(json!({"status": {
            "conditions": conditions,
            "expirationTimestamp": Time(expires),
            "tokenSecretRef": {"name": name, "lastRefreshTimestamp": now_t},
        }})),
    )
    .await?;
    tracing::info!(addon = ADDON, msa = %name, expires = %expires, "token reported");
    let at = refresh_at(now_t.0.as_second(), expires.as_second());
    Ok(wait_until(at, now_t.0.as_second()))
}

async fn report_failure(ctx: &Ctx, msa: &ManagedServiceAccount, message: &str) {
    let mut conditions = msa
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    if !set_condition(
        &mut conditions,
        condition("TokenReported", "False", "TokenReportFailed", message),
        Time(jiff::Timestamp::now()),
    ) {
        return;
    }
    let msas: Api<ManagedServiceAccount> = Api::namespaced(ctx.hub.clone(), &ctx.cluster);
    let _ = msas
        .patch_status(
            &msa.name_any(),
            &patch_params(),
            &Patch::Merge(json!({"status": {"conditions": conditions}})),
        )
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_duration("8640h0m0s"), Some(8640 * 3600));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("45s"), Some(45));
        assert_eq!(parse_duration("1500ms"), Some(1));
        for bad in ["", "10", "5d", "h", "-1h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn refresh_is_at_four_fifths_of_the_lifetime() {
        assert_eq!(refresh_at(1000, 2000), 1800);
        assert_eq!(refresh_at(0, 8640 * 3600), 8640 * 3600 * 4 / 5);
    }

    #[test]
    fn the_wait_ends_just_past_the_refresh_time_and_never_near_expiry() {
        // A 30 s token reported at 1000 is due at 1024: the wait ends within a second of it,
        // far from its expiry at 1030.
        let wait = wait_until(refresh_at(1000, 1030), 1000);
        assert!(wait >= Duration::from_secs(24), "{wait:?}");
        assert!(wait < Duration::from_secs(25), "{wait:?}");
        // Already due: at once, not in some seconds.
        assert!(wait_until(1000, 1003) < Duration::from_secs(1));
    }
}
