//! ServiceAccount tokens as kube-apiserver issues them: bound JWTs (ES256) signed with the
//! server's own service-account key, issued through TokenRequest and checked on every request
//! that carries one.
//!
//! A token authenticates only when its signature verifies with this server's key, its issuer
//! is this server's, one of its audiences is one this server accepts, it is inside its validity
//! window, and the ServiceAccount it names still exists with the same uid. Deleting and
//! recreating a ServiceAccount therefore invalidates every token issued for the old one.

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, UnparsedPublicKey};
use serde_json::{Value, json};

use super::authn::UserInfo;
use crate::store::Store;

/// The issuer (and default audience) kubeadm clusters use.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Group of every ServiceAccount.
pub const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";
/// The shortest lifetime a TokenRequest may ask for, as kube-apiserver enforces.
pub const MIN_EXPIRATION_SECS: i64 = 600;
/// The longest lifetime a TokenRequest may ask for: 2^32 seconds, as kube-apiserver enforces.
pub const MAX_EXPIRATION_SECS: i64 = 1 << 32;
/// The lifetime of a TokenRequest that names none.
pub const DEFAULT_EXPIRATION_SECS: i64 = 3600;
/// Clock skew tolerated on `nbf` and `iat`.
const LEEWAY_SECS: i64 = 60;
/// Longest token looked at: anything larger is not one of ours.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a ServiceAccount token was refused. Never carries the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts with an ES256 header.
    #[error("the token is not a service account token")]
    Malformed,
    /// The signature does not verify with this server's key.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// Issued by someone else.
    #[error("the token's issuer is not this server")]
    WrongIssuer,
    /// None of its audiences is accepted here.
    #[error("the token is not valid for any accepted audience")]
    WrongAudience,
    /// Past its expiry.
    #[error("the token has expired")]
    Expired,
    /// Not valid yet.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The ServiceAccount is gone, being deleted, or was recreated with another uid.
    #[error("the token's service account no longer exists")]
    AccountGone,
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// Namespace of the ServiceAccount.
    pub namespace: String,
    /// Name of the ServiceAccount.
    pub name: String,
    /// uid of the ServiceAccount at issue time.
    pub uid: String,
    /// The token's audiences.
    pub audiences: Vec<String>,
    /// Expiry, in seconds since the epoch.
    pub expires: i64,
}

impl TokenClaims {
    /// The user the token authenticates as, with kube-apiserver's groups.
    pub fn user(&self) -> UserInfo {
        UserInfo::new(
            service_account_user(&self.namespace, &self.name),
            vec![
                SERVICE_ACCOUNTS_GROUP.into(),
                format!("{SERVICE_ACCOUNTS_GROUP}:{}", self.namespace),
            ],
            "serviceaccount-token",
        )
    }
}

/// `system:serviceaccount:<ns>:<name>`.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(s: &str) -> Result<Vec<u8>, TokenError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| TokenError::Malformed)
}

/// The server's service-account signing key and the audiences it accepts.
pub struct TokenSigner {
    key: EcdsaKeyPair,
    verifier: UnparsedPublicKey<Vec<u8>>,
    kid: String,
    issuer: String,
    audiences: Vec<String>,
    min_expiration_secs: i64,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// A new P-256 signing key, as PKCS#8 PEM, for [`TokenSigner::from_pem`].
pub fn generate_key_pem() -> Result<String, String> {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map(|k| k.serialize_pem())
        .map_err(|e| format!("cannot generate the service-account key: {e}"))
}

impl TokenSigner {
    /// A signer with the P-256 key in `pem` (PKCS#8), issuing as `issuer` and accepting the
    /// issuer as audience. Tokens may be asked for no shorter than `min_expiration_secs`.
    pub fn from_pem(pem: &str, issuer: &str, min_expiration_secs: i64) -> Result<Self, String> {
        let parsed = rcgen::KeyPair::from_pem(pem)
            .map_err(|e| format!("the service-account key is not a PKCS#8 PEM key: {e}"))?;
        let key = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &parsed.serialize_der(),
            &SystemRandom::new(),
        )
        .map_err(|_| "the service-account key is not a P-256 key".to_string())?;
        let public = key.public_key().as_ref().to_vec();
        let kid = b64(ring::digest::digest(&ring::digest::SHA256, &public).as_ref());
        Ok(TokenSigner {
            verifier: UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, public),
            key,
            kid,
            issuer: issuer.into(),
            audiences: vec![issuer.into()],
            min_expiration_secs,
        })
    }

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audiences this server accepts when a request names none.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// The shortest lifetime a TokenRequest may ask for.
    pub fn min_expiration_secs(&self) -> i64 {
        self.min_expiration_secs
    }

    /// Issues a token for ServiceAccount `ns/name` (uid `uid`), valid from `now` for `secs`.
    pub fn issue(
        &self,
        ns: &str,
        name: &str,
        uid: &str,
        audiences: &[String],
        now: i64,
        secs: i64,
    ) -> Result<String, String> {
        let header = b64(json!({"alg": "ES256", "kid": self.kid})
            .to_string()
            .as_bytes());
        let claims = json!({
            "aud": audiences,
            "exp": now + secs,
            "iat": now,
            "nbf": now,
            "iss": self.issuer,
            "jti": uuid::Uuid::new_v4().to_string(),
            "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": name, "uid": uid}},
            "sub": service_account_user(ns, name),
        });
        let signing_input = format!("{header}.{}", b64(claims.to_string().as_bytes()));
        let sig = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| "signing the token failed".to_string())?;
        Ok(format!("{signing_input}.{}", b64(sig.as_ref())))
    }

    /// Whether `token` looks like a JWT (three parts, a JSON header), so that a bearer token is
    /// judged by this module rather than as a bootstrap token.
    pub fn looks_like_jwt(token: &str) -> bool {
        token.len() <= MAX_TOKEN_BYTES
            && token.split('.').count() == 3
            && token
                .split('.')
                .next()
                .and_then(|h| unb64(h).ok())
                .is_some_and(|h| serde_json::from_slice::<Value>(&h).is_ok_and(|v| v.is_object()))
    }

    /// Verifies signature, issuer, audience (one of `audiences`, or this server's when empty)
    /// and validity window; the ServiceAccount's existence is [`Self::authenticate`]'s.
    pub fn verify(
        &self,
        token: &str,
        audiences: &[String],
        now: i64,
    ) -> Result<TokenClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Value =
            serde_json::from_slice(&unb64(h)?).map_err(|_| TokenError::Malformed)?;
        // Only ES256: `none` and HMAC algorithms are never accepted, whatever the header says.
        if header["alg"] != "ES256" {
            return Err(TokenError::Malformed);
        }
        let sig = unb64(s)?;
        self.verifier
            .verify(format!("{h}.{c}").as_bytes(), &sig)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Value =
            serde_json::from_slice(&unb64(c)?).map_err(|_| TokenError::Malformed)?;
        if claims["iss"].as_str() != Some(self.issuer.as_str()) {
            return Err(TokenError::WrongIssuer);
        }
        let token_aud: Vec<String> = match &claims["aud"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => vec![],
        };
        let accepted = if audiences.is_empty() {
            &self.audiences
        } else {
            audiences
        };
        if !token_aud.iter().any(|a| accepted.contains(a)) {
            return Err(TokenError::WrongAudience);
        }
        let exp = claims["exp"].as_i64().ok_or(TokenError::Malformed)?;
        if now >= exp {
            return Err(TokenError::Expired);
        }
        if let Some(nbf) = claims["nbf"].as_i64()
            && now + LEEWAY_SECS < nbf
        {
            return Err(TokenError::NotYetValid);
        }
        let k = &claims["kubernetes.io"];
        let field = |v: &Value| {
            v.as_str()
                .filter(|s| !s.is_empty())
                .map(String::from)
                .ok_or(TokenError::Malformed)
        };
        let out = TokenClaims {
            namespace: field(&k["namespace"])?,
            name: field(&k["serviceaccount"]["name"])?,
            uid: field(&k["serviceaccount"]["uid"])?,
            audiences: token_aud
                .into_iter()
                .filter(|a| accepted.contains(a))
                .collect(),
            expires: exp,
        };
        if claims["sub"].as_str() != Some(service_account_user(&out.namespace, &out.name).as_str())
        {
            return Err(TokenError::Malformed);
        }
        Ok(out)
    }

    /// Verifies a token and checks its ServiceAccount still exists with the uid it was issued
    /// for.
    pub fn authenticate(
        &self,
        store: &Store,
        token: &str,
        audiences: &[String],
        now: i64,
    ) -> Result<TokenClaims, TokenError> {
        let claims = self.verify(token, audiences, now)?;
        let sa = store
            .get("/serviceaccounts", &claims.namespace, &claims.name)
            .ok()
            .flatten()
            .ok_or(TokenError::AccountGone)?;
        if sa.pointer("/metadata/uid").and_then(Value::as_str) != Some(claims.uid.as_str())
            || sa
                .pointer("/metadata/deletionTimestamp")
                .is_some_and(|v| !v.is_null())
        {
            return Err(TokenError::AccountGone);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Mutation;

    fn signer() -> TokenSigner {
        TokenSigner::from_pem(&generate_key_pem().unwrap(), DEFAULT_ISSUER, 600).unwrap()
    }

    fn store_with_sa(uid: &str) -> std::sync::Arc<Store> {
        let store = Store::in_memory(10);
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "reader", "namespace": "app", "uid": uid}});
        store
            .mutate("/serviceaccounts", "app", "reader", |_, _| {
                Ok(Mutation::Put(sa))
            })
            .unwrap();
        store
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn an_issued_token_authenticates_as_its_service_account() {
        let s = signer();
        let t = s
            .issue("app", "reader", "u1", &[DEFAULT_ISSUER.into()], NOW, 600)
            .unwrap();
        let c = s
            .authenticate(&store_with_sa("u1"), &t, &[], NOW + 1)
            .unwrap();
        let u = c.user();
        assert_eq!(u.name, "system:serviceaccount:app:reader");
        assert!(u.groups.contains(&"system:serviceaccounts:app".to_string()));
        assert_eq!(c.expires, NOW + 600);
    }

    #[test]
    fn expiry_audience_issuer_and_key_are_all_checked() {
        let s = signer();
        let store = store_with_sa("u1");
        let t = s
            .issue("app", "reader", "u1", &[DEFAULT_ISSUER.into()], NOW, 600)
            .unwrap();
        assert_eq!(
            s.authenticate(&store, &t, &[], NOW + 600),
            Err(TokenError::Expired)
        );
        assert_eq!(
            s.authenticate(&store, &t, &[], NOW - 3600),
            Err(TokenError::NotYetValid)
        );
        let other_aud = s
            .issue("app", "reader", "u1", &["vault".into()], NOW, 600)
            .unwrap();
        assert_eq!(
            s.authenticate(&store, &other_aud, &[], NOW),
            Err(TokenError::WrongAudience)
        );
        assert!(
            s.authenticate(&store, &other_aud, &["vault".into()], NOW)
                .is_ok()
        );
        let foreign = TokenSigner::from_pem(&generate_key_pem().unwrap(), DEFAULT_ISSUER, 600)
            .unwrap()
            .issue("app", "reader", "u1", &[DEFAULT_ISSUER.into()], NOW, 600)
            .unwrap();
        assert_eq!(
            s.authenticate(&store, &foreign, &[], NOW),
            Err(TokenError::BadSignature)
        );
        let other_issuer =
            TokenSigner::from_pem(&generate_key_pem().unwrap(), "https://x", 600).unwrap();
        let t2 = other_issuer
            .issue("app", "reader", "u1", &[DEFAULT_ISSUER.into()], NOW, 600)
            .unwrap();
        assert_eq!(
            other_issuer.verify(&t2, &[], NOW),
            Err(TokenError::WrongAudience)
        );
    }

    #[test]
    fn a_recreated_or_deleted_account_invalidates_old_tokens() {
        let s = signer();
        let t = s
            .issue("app", "reader", "u1", &[DEFAULT_ISSUER.into()], NOW, 600)
            .unwrap();
        assert_eq!(
            s.authenticate(&store_with_sa("u2"), &t, &[], NOW),
            Err(TokenError::AccountGone)
        );
        assert_eq!(
            s.authenticate(&Store::in_memory(1), &t, &[], NOW),
            Err(TokenError::AccountGone)
        );
    }

    #[test]
    fn forged_tokens_are_refused() {
        let s = signer();
        let store = store_with_sa("u1");
        let t = s
            .issue("app", "reader", "u1", &[DEFAULT_ISSUER.into()], NOW, 600)
            .unwrap();
        let parts: Vec<&str> = t.split('.').collect();
        // Claims swapped for another account's, signature kept.
        let claims: Value = serde_json::from_slice(&unb64(parts[1]).unwrap()).unwrap();
        let mut evil = claims.clone();
        evil["kubernetes.io"]["serviceaccount"]["name"] = json!("admin");
        evil["sub"] = json!("system:serviceaccount:app:admin");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64(evil.to_string().as_bytes()),
            parts[2]
        );
        assert_eq!(s.verify(&forged, &[], NOW), Err(TokenError::BadSignature));
        // alg none with no signature.
        let none = format!(
            "{}.{}.",
            b64(br#"{"alg":"none"}"#),
            b64(evil.to_string().as_bytes())
        );
        assert_eq!(s.verify(&none, &[], NOW), Err(TokenError::Malformed));
        // Garbage of every shape is refused.
        for bad in ["", "a.b", "a.b.c.d", &"x".repeat(MAX_TOKEN_BYTES + 1)] {
            assert!(s.authenticate(&store, bad, &[], NOW).is_err(), "{bad}");
        }
        assert!(TokenSigner::looks_like_jwt(&t));
        assert!(!TokenSigner::looks_like_jwt("abcdef.0123456789abcdef"));
    }
}
