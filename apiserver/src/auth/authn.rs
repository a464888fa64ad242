//! Authentication: client certificates signed by the hub's client CA (CN is the user, O the
//! groups) and bootstrap tokens (`<id>.<secret>`, stored as Secrets in `kube-system`).
//!
//! The TLS layer has already verified the certificate chain against the client CA and the
//! validity period before anything here runs; this module only maps a verified certificate to a
//! user. Anything else is anonymous, and anonymous requests are refused beyond the health paths.

use base64::Engine;
use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::store::Store;

/// Group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The superuser group.
pub const MASTERS: &str = "system:masters";
/// Group of every bootstrap-token user.
pub const BOOTSTRAPPERS: &str = "system:bootstrappers";

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    /// The user name.
    pub name: String,
    /// The groups, including `system:authenticated`.
    pub groups: Vec<String>,
    /// How the user authenticated, for the audit log: `x509`, `bootstrap-token` or `internal`.
    pub method: &'static str,
}

impl UserInfo {
    /// A user with the given name and groups; `system:authenticated` is added.
    pub fn new(name: impl Into<String>, groups: Vec<String>, method: &'static str) -> Self {
        let mut groups = groups;
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.into());
        }
        UserInfo {
            name: name.into(),
            groups,
            method,
        }
    }
    /// Whether the user is in `system:masters`.
    pub fn is_superuser(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS)
    }
}

/// Why a credential was refused. Never carries the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthnError {
    /// The client certificate has no common name.
    #[error("client certificate has no common name")]
    NoCommonName,
    /// The certificate could not be parsed.
    #[error("client certificate could not be parsed")]
    BadCertificate,
    /// The token is not of the form `<6 chars>.<16 chars>`.
    #[error("bearer token is not a bootstrap token")]
    NotABootstrapToken,
    /// No Secret holds the token id, or its secret part differs.
    #[error("bootstrap token is unknown or wrong")]
    UnknownToken,
    /// The token's Secret is not usable for authentication.
    #[error("bootstrap token is not valid for authentication")]
    NotForAuthentication,
    /// The token expired.
    #[error("bootstrap token has expired")]
    Expired,
}

/// Parses a verified client certificate (DER), for [`user_from_certificate`] and its expiry.
pub fn parse_certificate(
    der: &[u8],
) -> Result<x509_parser::certificate::X509Certificate<'_>, AuthnError> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|_| AuthnError::BadCertificate)
}

/// Maps a verified client certificate to its user: CN is the user, each O a group.
pub fn user_from_certificate(
    cert: &x509_parser::certificate::X509Certificate<'_>,
) -> Result<UserInfo, AuthnError> {
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .filter(|s| !s.is_empty())
        .ok_or(AuthnError::NoCommonName)?;
    let groups = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .map(String::from)
        .collect();
    Ok(UserInfo::new(cn, groups, "x509"))
}

pub(crate) fn is_token_part(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Splits a bootstrap token into id and secret, checking its shape.
pub fn parse_bootstrap_token(token: &str) -> Result<(&str, &str), AuthnError> {
    let (id, secret) = token
        .split_once('.')
        .ok_or(AuthnError::NotABootstrapToken)?;
    if !is_token_part(id, 6) || !is_token_part(secret, 16) {
        return Err(AuthnError::NotABootstrapToken);
    }
    Ok((id, secret))
}

pub(crate) fn secret_field(secret: &Value, key: &str) -> Option<String> {
    let b64 = secret.get("data")?.get(key)?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    String::from_utf8(bytes).ok()
}

/// Authenticates a bootstrap token against the Secrets in `kube-system`, as kube-apiserver's
/// bootstrap-token authenticator does.
pub fn authenticate_bootstrap_token(
    store: &Store,
    token: &str,
    now: jiff::Timestamp,
) -> Result<UserInfo, AuthnError> {
    let (id, secret) = parse_bootstrap_token(token)?;
    let obj = store
        .get("/secrets", "kube-system", &format!("bootstrap-token-{id}"))
        .ok()
        .flatten()
        .ok_or(AuthnError::UnknownToken)?;
    if obj["type"].as_str() != Some("bootstrap.kubernetes.io/token") {
        return Err(AuthnError::UnknownToken);
    }
    if obj.pointer("/metadata/deletionTimestamp").is_some() {
        return Err(AuthnError::UnknownToken);
    }
    let stored_id = secret_field(&obj, "token-id").unwrap_or_default();
    let stored_secret = secret_field(&obj, "token-secret").unwrap_or_default();
    let id_ok: bool = stored_id.as_bytes().ct_eq(id.as_bytes()).into();
    let secret_ok: bool = stored_secret.as_bytes().ct_eq(secret.as_bytes()).into();
    if !(id_ok && secret_ok) {
        return Err(AuthnError::UnknownToken);
    }
    if secret_field(&obj, "usage-bootstrap-authentication").as_deref() != Some("true") {
        return Err(AuthnError::NotForAuthentication);
    }
    // A token without an expiry never expires in Kubernetes; Garrison always writes one, and an
    // unreadable expiry fails closed.
    if let Some(exp) = secret_field(&obj, "expiration") {
        let exp: jiff::Timestamp = exp.parse().map_err(|_| AuthnError::Expired)?;
        if exp <= now {
            return Err(AuthnError::Expired);
        }
    }
    let mut groups = vec![BOOTSTRAPPERS.to_string()];
    if let Some(extra) = secret_field(&obj, "auth-extra-groups") {
        for g in extra.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            // Only bootstrapper groups may be added, so a token cannot claim system:masters.
            if g.starts_with("system:bootstrappers:") {
                groups.push(g.to_string());
            }
        }
    }
    Ok(UserInfo::new(
        format!("system:bootstrap:{id}"),
        groups,
        "bootstrap-token",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Mutation;
    use serde_json::json;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn store_with_token(expiration: &str, extra: &str) -> std::sync::Arc<Store> {
        let store = Store::in_memory(10);
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
            "data": {"token-id": b64("abcdef"), "token-secret": b64("0123456789abcdef"),
                     "usage-bootstrap-authentication": b64("true"), "expiration": b64(expiration),
                     "auth-extra-groups": b64(extra)}
        });
        store
            .mutate(
                "/secrets",
                "kube-system",
                "bootstrap-token-abcdef",
                |_, _| Ok(Mutation::Put(secret)),
            )
            .unwrap();
        store
    }

    fn now() -> jiff::Timestamp {
        "2026-06-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_valid_token_authenticates_as_its_bootstrap_user() {
        let s = store_with_token("2026-06-02T00:00:00Z", "system:bootstrappers:garrison");
        let u = authenticate_bootstrap_token(&s, "abcdef.0123456789abcdef", now()).unwrap();
        assert_eq!(u.name, "system:bootstrap:abcdef");
        assert!(
            u.groups
                .contains(&"system:bootstrappers:garrison".to_string())
        );
        assert!(u.groups.contains(&AUTHENTICATED.to_string()));
    }

    #[test]
    fn an_expired_token_is_refused() {
        let s = store_with_token("2026-05-31T00:00:00Z", "");
        assert_eq!(
            authenticate_bootstrap_token(&s, "abcdef.0123456789abcdef", now()),
            Err(AuthnError::Expired)
        );
    }

    #[test]
    fn a_wrong_secret_is_refused() {
        let s = store_with_token("2026-06-02T00:00:00Z", "");
        assert_eq!(
            authenticate_bootstrap_token(&s, "abcdef.0123456789abcdee", now()),
            Err(AuthnError::UnknownToken)
        );
        assert_eq!(
            authenticate_bootstrap_token(&s, "zzzzzz.0123456789abcdef", now()),
            Err(AuthnError::UnknownToken)
        );
    }

    #[test]
    fn a_token_cannot_claim_groups_outside_bootstrappers() {
        let s = store_with_token(
            "2026-06-02T00:00:00Z",
            "system:masters,system:bootstrappers:x",
        );
        let u = authenticate_bootstrap_token(&s, "abcdef.0123456789abcdef", now()).unwrap();
        assert!(!u.is_superuser());
    }

    #[test]
    fn malformed_tokens_are_not_bootstrap_tokens() {
        for t in [
            "",
            "abcdef",
            "abcdef.short",
            "ABCDEF.0123456789abcdef",
            "abcdef.0123456789abcdef.x",
        ] {
            assert_eq!(
                parse_bootstrap_token(t).err(),
                Some(AuthnError::NotABootstrapToken),
                "{t}"
            );
        }
    }
}
