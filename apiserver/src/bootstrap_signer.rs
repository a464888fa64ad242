//! The bootstrap signer, kube-controller-manager's controller of that name: keeps a detached
//! JWS signature of `kube-public/cluster-info`'s `kubeconfig` under `jws-kubeconfig-<id>` for
//! every bootstrap token that may sign (`usage-bootstrap-signing: "true"`, not expired), and
//! removes the signatures of every other token.
//!
//! An agent that holds a token reads `cluster-info` without trusting the server yet, checks the
//! signature with its token and the CA in it against its CA pin, and only then connects
//! trusting that CA: kubeadm's token discovery, which upstream OCM's agents and Garrison's share.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::auth::authn::{is_token_part, secret_field};
use crate::error::{ApiError, ApiResult};
use crate::ops::Objects;
use crate::store::Mutation;
use crate::store::watch::WatchEvent;

const CONFIGMAPS: &str = "/configmaps";
const SECRETS: &str = "/secrets";
/// The namespace and name of the signed ConfigMap.
pub const CLUSTER_INFO: (&str, &str) = ("kube-public", "cluster-info");
const SIGNATURE_PREFIX: &str = "jws-kubeconfig-";
const TOKEN_TYPE: &str = "bootstrap.kubernetes.io/token";

/// Starts the signer: it signs again after every write to a token Secret or to `cluster-info`,
/// and every `resync` (tokens expire without a write).
pub fn start(objects: Arc<Objects>, resync: Duration) {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    objects.store.on_write(Arc::new(move |ev: &WatchEvent| {
        let relevant = (ev.key == SECRETS && ev.namespace == "kube-system")
            || (ev.key == CONFIGMAPS
                && ev.namespace == CLUSTER_INFO.0
                && ev.object.pointer("/metadata/name").and_then(Value::as_str)
                    == Some(CLUSTER_INFO.1));
        if relevant {
            let _ = tx.send(());
        }
    }));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(resync);
        loop {
            tokio::select! {
                got = rx.recv() => if got.is_none() { break },
                _ = tick.tick() => {}
            }
            while rx.try_recv().is_ok() {}
            let o = objects.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = sign(&o, jiff::Timestamp::now()) {
                    tracing::warn!(error = %e.message, "cannot sign cluster-info");
                }
            })
            .await;
        }
    });
}

/// The `(id, secret)` of a token Secret that may sign at `now`, as the bootstrap signer judges
/// it: the right type and name, a secret, the signing usage, and not expired (an expiry that
/// does not parse counts as expired).
fn signing_token(secret: &Value, now: jiff::Timestamp) -> Option<(String, String)> {
    if secret["type"].as_str() != Some(TOKEN_TYPE)
        || secret.pointer("/metadata/deletionTimestamp").is_some()
        || secret_field(secret, "usage-bootstrap-signing").as_deref() != Some("true")
    {
        return None;
    }
    let id = secret_field(secret, "token-id")?;
    // Token ids and secrets have kubeadm's form; nothing else goes into a JWS header.
    let token_part = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if !token_part(&id, 6) {
        return None;
    }
    let name = secret.pointer("/metadata/name").and_then(Value::as_str)?;
    if name != format!("bootstrap-token-{id}") {
        return None;
    }
    let token_secret = secret_field(secret, "token-secret").filter(|s| is_token_part(s, 16))?;
    if secret.pointer("/data/expiration").is_some() {
        // Present but unreadable counts as expired.
        let exp: jiff::Timestamp = secret_field(secret, "expiration")?.parse().ok()?;
        if exp <= now {
            return None;
        }
    }
    Some((id, token_secret))
}

/// Brings the signatures of `cluster-info` up to date. Writes only when they changed.
pub fn sign(objects: &Objects, now: jiff::Timestamp) -> ApiResult<()> {
    let (ns, name) = CLUSTER_INFO;
    if objects.store.get(CONFIGMAPS, ns, name)?.is_none() {
        return Ok(());
    }
    let tokens: Vec<(String, String)> = objects
        .store
        .list(SECRETS, Some("kube-system"), None, 0)?
        .items
        .iter()
        .filter_map(|s| signing_token(s, now))
        .collect();
    let out = objects.store.mutate(CONFIGMAPS, ns, name, |current, _| {
        let Some(mut cm) = current else {
            return Err(ApiError::not_found("", "configmaps", name));
        };
        let data = cm["data"].as_object().cloned().unwrap_or_default();
        let Some(kubeconfig) = data.get("kubeconfig").and_then(Value::as_str) else {
            return Ok(Mutation::Keep(cm));
        };
        let mut next: Map<String, Value> = data
            .iter()
            .filter(|(k, _)| !k.starts_with(SIGNATURE_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (id, secret) in &tokens {
            next.insert(
                format!("{SIGNATURE_PREFIX}{id}"),
                json!(garrison_pki::jws::detached_signature(
                    id, secret, kubeconfig
                )),
            );
        }
        if next == data {
            return Ok(Mutation::Keep(cm));
        }
        cm["data"] = Value::Object(next);
        Ok(Mutation::Put(cm))
    });
    match out {
        Ok(_) => Ok(()),
        // Deleted since it was read: nothing to sign.
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn token(id: &str, signing: bool, expiration: &str) -> Value {
        json!({"type": TOKEN_TYPE, "metadata": {"name": format!("bootstrap-token-{id}")},
            "data": {"token-id": b64(id), "token-secret": b64("0123456789abcdef"),
                "expiration": b64(expiration),
                "usage-bootstrap-signing": b64(if signing { "true" } else { "false" })}})
    }

    #[test]
    fn only_unexpired_signing_tokens_sign() {
        let now: jiff::Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        assert!(signing_token(&token("abcdef", true, "2026-06-02T00:00:00Z"), now).is_some());
        assert!(signing_token(&token("abcdef", false, "2026-06-02T00:00:00Z"), now).is_none());
        assert!(signing_token(&token("abcdef", true, "2026-05-31T00:00:00Z"), now).is_none());
        assert!(signing_token(&token("abcdef", true, "tomorrow"), now).is_none());
        let mut renamed = token("abcdef", true, "2026-06-02T00:00:00Z");
        renamed["metadata"]["name"] = json!("bootstrap-token-other0");
        assert!(signing_token(&renamed, now).is_none());
        let mut opaque = token("abcdef", true, "2026-06-02T00:00:00Z");
        opaque["type"] = json!("Opaque");
        assert!(signing_token(&opaque, now).is_none());
    }
}
