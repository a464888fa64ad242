//! The review kinds, answered and never stored: SubjectAccessReview, SelfSubjectAccessReview,
//! SelfSubjectRulesReview, SelfSubjectReview and TokenReview; and TokenRequest, the
//! `serviceaccounts/<name>/token` subresource that issues a ServiceAccount token.

use serde_json::{Value, json};

use super::ApiServer;
use crate::auth::UserInfo;
use crate::auth::rbac::Attributes;
use crate::error::{ApiError, ApiResult, Cause};
use crate::resources::{Builtin, Resource};

fn attributes_of(spec: &Value, res: &Resource) -> ApiResult<Attributes> {
    if let Some(ra) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
        let s = |k: &str| {
            ra.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        return Ok(Attributes {
            verb: s("verb"),
            resource_request: true,
            namespace: s("namespace"),
            api_group: s("group"),
            resource: s("resource"),
            subresource: s("subresource"),
            name: s("name"),
            path: String::new(),
        });
    }
    if let Some(na) = spec.get("nonResourceAttributes").filter(|v| v.is_object()) {
        return Ok(Attributes {
            verb: na["verb"].as_str().unwrap_or_default().into(),
            path: na["path"].as_str().unwrap_or_default().into(),
            ..Default::default()
        });
    }
    Err(ApiError::invalid(
        &res.group,
        &res.kind,
        "",
        vec![Cause::required("spec.resourceAttributes")],
    ))
}

/// Answers a review object created by `user`.
pub fn answer(
    srv: &ApiServer,
    res: &Resource,
    user: &UserInfo,
    _ns: &str,
    mut obj: Value,
) -> ApiResult<Value> {
    let b = res
        .builtin
        .ok_or_else(|| ApiError::internal("review of a custom kind"))?;
    let (normalized, _) = crate::admission::decode(
        res,
        obj.clone(),
        crate::admission::FieldValidation::Ignore,
        None,
    )?;
    obj = normalized;
    let authz = &srv.objects.authz;
    match b {
        Builtin::SubjectAccessReview => {
            let spec = &obj["spec"];
            let name = spec["user"].as_str().unwrap_or_default();
            let groups: Vec<String> = spec["groups"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|g| g.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            if name.is_empty() && groups.is_empty() {
                return Err(ApiError::invalid(
                    &res.group,
                    &res.kind,
                    "",
                    vec![Cause::required("spec.user")],
                ));
            }
            // The subject is exactly as given: no implicit groups are added.
            let subject = UserInfo {
                name: name.into(),
                groups,
                method: "review",
            };
            let attrs = attributes_of(spec, res)?;
            let d = authz.authorize(&subject, &attrs)?;
            obj["status"] = json!({"allowed": d.allowed, "reason": d.reason});
        }
        Builtin::SelfSubjectAccessReview => {
            let attrs = attributes_of(&obj["spec"], res)?;
            let d = authz.authorize(user, &attrs)?;
            obj["status"] = json!({"allowed": d.allowed, "reason": d.reason});
        }
        Builtin::SelfSubjectRulesReview => {
            let ns = obj
                .pointer("/spec/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let rules = if user.is_superuser() {
                vec![
                    json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
                    json!({"verbs": ["*"], "nonResourceURLs": ["*"]}),
                ]
            } else {
                authz
                    .rules_for(user, &ns)?
                    .iter()
                    .map(|r| r.to_json())
                    .collect()
            };
            let (resource, non_resource): (Vec<Value>, Vec<Value>) = rules
                .into_iter()
                .partition(|r| r.get("nonResourceURLs").is_none());
            obj["status"] = json!({"resourceRules": resource, "nonResourceRules": non_resource, "incomplete": false});
        }
        Builtin::SelfSubjectReview => {
            obj["status"] = json!({"userInfo": {"username": user.name, "groups": user.groups}});
        }
        Builtin::TokenReview => {
            let token = obj["spec"]["token"].as_str().unwrap_or_default();
            let audiences = crate::resources::strings(obj["spec"].get("audiences"));
            obj["status"] = token_review_status(srv, token, &audiences);
        }
        _ => return Err(ApiError::internal("not a review kind")),
    }
    if obj.get("metadata").is_none() {
        obj["metadata"] = json!({});
    }
    Ok(obj)
}

/// The status of a TokenReview: ServiceAccount tokens are checked as on a request, with the
/// review's audiences (this server's when none are given); bootstrap tokens carry no audience,
/// so they pass only a review that names none.
fn token_review_status(srv: &ApiServer, token: &str, audiences: &[String]) -> Value {
    let now = jiff::Timestamp::now();
    let refused = |e: String| json!({"authenticated": false, "error": e, "user": {}});
    if crate::auth::tokens::TokenSigner::looks_like_jwt(token) {
        return match srv
            .tokens
            .authenticate(&srv.objects.store, token, audiences, now.as_second())
        {
            Ok(c) => {
                let u = c.user();
                json!({
                    "authenticated": true,
                    "audiences": c.audiences,
                    "user": {"username": u.name, "uid": c.uid, "groups": u.groups,
                        "extra": {"authentication.kubernetes.io/credential-id": []}},
                })
            }
            Err(e) => refused(e.to_string()),
        };
    }
    if !audiences.is_empty()
        && audiences
            .iter()
            .all(|a| !srv.tokens.audiences().contains(a))
    {
        return refused("token audiences are not accepted".into());
    }
    match crate::auth::authn::authenticate_bootstrap_token(&srv.objects.store, token, now) {
        Ok(u) => json!({
            "authenticated": true,
            "audiences": srv.tokens.audiences(),
            "user": {"username": u.name, "groups": u.groups},
        }),
        Err(e) => refused(e.to_string()),
    }
}

/// Answers a TokenRequest for ServiceAccount `ns/name`: a bound token for the requested
/// audiences (this server's when none) and lifetime (an hour when none; at least the server's
/// minimum, at most 2^32 seconds).
pub fn token_request(srv: &ApiServer, ns: &str, name: &str, obj: Value) -> ApiResult<Value> {
    use crate::auth::tokens::{DEFAULT_EXPIRATION_SECS, MAX_EXPIRATION_SECS};
    let invalid = |field: &str, msg: String| {
        ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            name,
            vec![Cause::invalid(field, msg)],
        )
    };
    let kind = obj["kind"].as_str().unwrap_or("TokenRequest");
    if kind != "TokenRequest" {
        return Err(ApiError::bad_request(format!(
            "the body of a token request must be a TokenRequest, not {kind}"
        )));
    }
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    let secs = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECS,
        Some(v) => v.as_i64().ok_or_else(|| {
            invalid(
                "spec.expirationSeconds",
                format!("Invalid value: {v}: must be an integer"),
            )
        })?,
    };
    let min = srv.tokens.min_expiration_secs();
    if secs < min {
        return Err(invalid(
            "spec.expirationSeconds",
            format!("Invalid value: {secs}: may not specify a duration less than {min} seconds"),
        ));
    }
    if secs > MAX_EXPIRATION_SECS {
        return Err(invalid(
            "spec.expirationSeconds",
            format!("Invalid value: {secs}: may not specify a duration larger than 2^32 seconds"),
        ));
    }
    let mut audiences = crate::resources::strings(spec.get("audiences"));
    if audiences.is_empty() {
        audiences = srv.tokens.audiences().to_vec();
    }
    let sa = srv
        .objects
        .store
        .get("/serviceaccounts", ns, name)?
        .filter(|sa| {
            sa.pointer("/metadata/deletionTimestamp")
                .is_none_or(Value::is_null)
        })
        .ok_or_else(|| ApiError::not_found("", "serviceaccounts", name))?;
    let uid = sa
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let now = jiff::Timestamp::now();
    let token = srv
        .tokens
        .issue(ns, name, uid, &audiences, now.as_second(), secs)
        .map_err(ApiError::internal)?;
    let expires = jiff::Timestamp::from_second(now.as_second() + secs)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns,
            "creationTimestamp": jiff::Timestamp::from_second(now.as_second()).map(|t| t.to_string()).unwrap_or_default()},
        "spec": {"audiences": audiences, "expirationSeconds": secs, "boundObjectRef": null},
        "status": {"token": token, "expirationTimestamp": expires.to_string()},
    }))
}
