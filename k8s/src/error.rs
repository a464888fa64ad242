//! Errors the API server answers with, rendered as Kubernetes `Status` objects.
//!
//! Every failure a client can see goes through [`ApiError`], so the HTTP code, the `reason` and the
//! `details` always agree with what kube-apiserver would send for the same fault.

use serde_json::{Value, json};

pub use garrison_api::structural::Cause;

/// What the object an error refers to is: its group, kind and name, as `Status.details` carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    /// API group, empty for the core group.
    pub group: String,
    /// Resource plural or kind, as kube-apiserver puts it in `details.kind`.
    pub kind: String,
    /// Object name, when there is one.
    pub name: String,
}

/// An error answered to an API client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Kubernetes `StatusReason`, e.g. `NotFound`.
    pub reason: &'static str,
    /// One-line message naming the problem.
    pub message: String,
    /// The object concerned, when known.
    pub subject: Option<Subject>,
    /// Field-level causes.
    pub causes: Vec<Cause>,
    /// Seconds after which the client may retry, for 429 and 500-class answers.
    pub retry_after: Option<u32>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            subject: None,
            causes: vec![],
            retry_after: None,
        }
    }

    /// 400: the request could not be decoded or is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    /// 401: no or bad credentials.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }
    /// 403: authenticated but not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }
    /// 404 for a named object of a resource.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let mut e = Self::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", qualified(group, resource), name),
        );
        e.subject = Some(Subject {
            group: group.into(),
            kind: resource.into(),
            name: name.into(),
        });
        e
    }
    /// 404 for a path that names no resource.
    pub fn no_route(message: impl Into<String>) -> Self {
        Self::new(404, "NotFound", message)
    }
    /// 405: the resource does not support the verb.
    pub fn method_not_supported(group: &str, resource: &str, verb: &str) -> Self {
        let mut e = Self::new(
            405,
            "MethodNotAllowed",
            format!(
                "{verb} is not supported on resources of kind \"{}\"",
                qualified(group, resource)
            ),
        );
        e.subject = Some(Subject {
            group: group.into(),
            kind: resource.into(),
            name: String::new(),
        });
        e
    }
    /// 409: the object already exists.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        let mut e = Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", qualified(group, resource), name),
        );
        e.subject = Some(Subject {
            group: group.into(),
            kind: resource.into(),
            name: name.into(),
        });
        e
    }
    /// 409: an optimistic-concurrency or precondition conflict.
    pub fn conflict(group: &str, resource: &str, name: &str, why: impl Into<String>) -> Self {
        let mut e = Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": {}",
                qualified(group, resource),
                name,
                why.into()
            ),
        );
        e.subject = Some(Subject {
            group: group.into(),
            kind: resource.into(),
            name: name.into(),
        });
        e
    }
    /// 410: the requested resourceVersion is no longer available.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }
    /// 413: the request body is too large.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }
    /// 415: the content type is not accepted for this request; `accepted` lists what is.
    pub fn unsupported_media_type(content_type: &str, accepted: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({content_type:?}) - accepted media types include: {accepted}"
            ),
        )
    }
    /// 422: the object failed validation.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let listed: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let mut e = Self::new(
            422,
            "Invalid",
            format!(
                "{} \"{}\" is invalid: {}",
                qualified(group, kind),
                name,
                listed.join(", ")
            ),
        );
        e.subject = Some(Subject {
            group: group.into(),
            kind: kind.into(),
            name: name.into(),
        });
        e.causes = causes;
        e
    }
    /// 429: the server is busy.
    pub fn too_many_requests(message: impl Into<String>) -> Self {
        let mut e = Self::new(429, "TooManyRequests", message);
        e.retry_after = Some(1);
        e
    }
    /// 500: something failed inside the server. The message must not carry secrets.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }
    /// 504 on a timeout.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    /// Attaches the object this error concerns.
    pub fn with_subject(mut self, group: &str, kind: &str, name: &str) -> Self {
        self.subject = Some(Subject {
            group: group.into(),
            kind: kind.into(),
            name: name.into(),
        });
        self
    }

    /// The `Status` object kube-apiserver would send for this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        let mut details = serde_json::Map::new();
        if let Some(s) = &self.subject {
            if !s.name.is_empty() {
                details.insert("name".into(), json!(s.name));
            }
            if !s.group.is_empty() {
                details.insert("group".into(), json!(s.group));
            }
            if !s.kind.is_empty() {
                details.insert("kind".into(), json!(s.kind));
            }
        }
        if !self.causes.is_empty() {
            let causes: Vec<Value> = self
                .causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(r) = self.retry_after {
            details.insert("retryAfterSeconds".into(), json!(r));
        }
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

/// `resource.group`, or `resource` for the core group, as kube-apiserver names things in messages.
pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// A `Status` of success, as delete answers when it does not return the object.
pub fn success_status(group: &str, kind: &str, name: &str, uid: &str) -> Value {
    let mut details = json!({"name": name, "kind": kind, "uid": uid});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

/// Shorthand for results inside the server.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_status_matches_kube_apiserver() {
        let s = ApiError::not_found("", "configmaps", "x").to_status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["message"], "configmaps \"x\" not found");
        assert_eq!(s["details"]["kind"], "configmaps");
        assert!(s["details"].get("group").is_none());
    }

    #[test]
    fn invalid_lists_every_cause_in_the_message() {
        let e = ApiError::invalid(
            "cluster.open-cluster-management.io",
            "ManagedCluster",
            "a",
            vec![
                Cause::required("spec.x"),
                Cause::invalid("metadata.name", "bad"),
            ],
        );
        assert_eq!(e.code, 422);
        assert!(e.message.contains("spec.x: Required value"));
        assert!(e.message.contains("metadata.name: bad"));
        assert_eq!(
            e.to_status()["details"]["causes"].as_array().unwrap().len(),
            2
        );
    }
}
