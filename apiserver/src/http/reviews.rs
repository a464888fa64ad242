//! The review kinds, answered and never stored: SubjectAccessReview, SelfSubjectAccessReview,
//! SelfSubjectRulesReview and SelfSubjectReview.

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
    let (normalized, _) =
        crate::admission::decode(res, obj.clone(), crate::admission::FieldValidation::Ignore)?;
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
        _ => return Err(ApiError::internal("not a review kind")),
    }
    if obj.get("metadata").is_none() {
        obj["metadata"] = json!({});
    }
    Ok(obj)
}
