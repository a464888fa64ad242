//! Agent: honours a ManifestWork's `spec.executor`, as upstream OCM's work agent does. Before a
//! manifest is applied, SubjectAccessReviews on the managed cluster ask whether the executor's
//! ServiceAccount may `create`, `update`, `patch` and `get` it (and `delete` it when the work
//! owns it, since the agent will delete it later). RBAC objects are also checked for
//! escalation: the executor must hold every permission a Role or ClusterRole it writes grants
//! (or `escalate` on it), and `bind` on the role a binding references (or every permission of
//! that role). A manifest that fails is not applied and is reported with the permission that
//! is missing; the rest of the work goes on, as upstream's.

use garrison_api::work::v1::ManifestWork;
use garrison_k8s::json::strings;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::Value;

use super::apply::Target;

/// The identity a work is applied for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executor {
    /// `system:serviceaccount:NS:NAME`.
    pub user: String,
    /// The groups a ServiceAccount token carries.
    pub groups: Vec<String>,
}

/// The work's executor: None without one, an error message for one the agent cannot honour
/// (upstream's texts).
pub fn executor_of(work: &ManifestWork) -> Result<Option<Executor>, String> {
    let Some(ex) = &work.spec.executor else {
        return Ok(None);
    };
    // The subject type has one value, ServiceAccount: the API refuses any other.
    let Some(sa) = &ex.subject.service_account else {
        return Err("the executor service account is nil".into());
    };
    Ok(Some(Executor {
        user: format!("system:serviceaccount:{}:{}", sa.namespace, sa.name),
        groups: vec![
            "system:serviceaccounts".into(),
            "system:authenticated".into(),
            format!("system:serviceaccounts:{}", sa.namespace),
        ],
    }))
}

/// One permission: verb on group/resource, in a namespace, optionally on one name.
struct Permission<'a> {
    verb: &'a str,
    group: &'a str,
    resource: &'a str,
    namespace: &'a str,
    name: &'a str,
}

impl<'a> Permission<'a> {
    /// `verb` on the very object `t` names.
    fn on(t: &'a Target, verb: &'a str) -> Self {
        Permission {
            verb,
            group: &t.resolved.api.group,
            resource: &t.resolved.api.plural,
            namespace: &t.namespace,
            name: &t.name,
        }
    }

    fn describe(&self) -> String {
        let what = if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        let named = if self.name.is_empty() {
            String::new()
        } else {
            format!(" {:?}", self.name)
        };
        let place = if self.namespace.is_empty() {
            " cluster-wide".to_string()
        } else {
            format!(" in namespace {}", self.namespace)
        };
        format!("{} {what}{named}{place}", self.verb)
    }
}

async fn allowed(spoke: &kube::Client, ex: &Executor, p: &Permission<'_>) -> Result<bool, String> {
    let sar = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(ex.user.clone()),
            groups: Some(ex.groups.clone()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(p.verb.into()),
                group: Some(p.group.into()),
                resource: Some(p.resource.into()),
                namespace: (!p.namespace.is_empty()).then(|| p.namespace.into()),
                name: (!p.name.is_empty()).then(|| p.name.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(spoke.clone())
        .create(&PostParams::default(), &sar)
        .await
        // A review that cannot be made counts as a refusal: fail closed.
        .map_err(|e| format!("cannot check the executor's permissions: {e}"))?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// A refusal of the manifest `t`, in upstream's words, with why.
fn not_allowed(t: &Target, why: &str) -> String {
    format!(
        "not allowed to apply the resource {} {}, {} {}: {why}",
        t.resolved.api.group, t.resolved.api.plural, t.namespace, t.name
    )
}

async fn require(
    spoke: &kube::Client,
    ex: &Executor,
    p: Permission<'_>,
    t: &Target,
) -> Result<(), String> {
    if allowed(spoke, ex, &p).await? {
        return Ok(());
    }
    Err(not_allowed(
        t,
        &format!("executor {} may not {}", ex.user, p.describe()),
    ))
}

/// Checks that `ex` may apply `manifest` as `target`: the verbs on the object, then escalation
/// for RBAC kinds. Err names the manifest and the first missing permission.
pub async fn check(
    spoke: &kube::Client,
    ex: &Executor,
    target: &Target,
    manifest: &Value,
    owned: bool,
) -> Result<(), String> {
    let api = &target.resolved.api;
    let verbs: &[&str] = if owned {
        &["create", "update", "patch", "get", "delete"]
    } else {
        &["create", "update", "patch", "get"]
    };
    for verb in verbs {
        require(spoke, ex, Permission::on(target, verb), target).await?;
    }
    if api.group != "rbac.authorization.k8s.io" {
        return Ok(());
    }
    match api.kind.as_str() {
        "Role" | "ClusterRole" => {
            if allowed(spoke, ex, &Permission::on(target, "escalate")).await? {
                return Ok(());
            }
            let rules = manifest.get("rules").cloned().unwrap_or(Value::Null);
            require_rules(spoke, ex, &rules, &target.namespace, target).await
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let kind = manifest
                .pointer("/roleRef/kind")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let role = manifest
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let role_api = role_resource(kind);
            let role_ns = if kind == "Role" {
                target.namespace.as_str()
            } else {
                ""
            };
            let bind = Permission {
                verb: "bind",
                group: &api.group,
                resource: &role_api.plural,
                namespace: role_ns,
                name: role,
            };
            if allowed(spoke, ex, &bind).await? {
                return Ok(());
            }
            // Without `bind`, the executor must hold everything the role grants, where the
            // binding grants it.
            let roles: Api<DynamicObject> = if kind == "Role" {
                Api::namespaced_with(spoke.clone(), role_ns, &role_api)
            } else {
                Api::all_with(spoke.clone(), &role_api)
            };
            let Some(obj) = roles
                .get_opt(role)
                .await
                .map_err(|e| format!("cannot read {kind} {role}: {e}"))?
            else {
                return Err(not_allowed(
                    target,
                    &format!(
                        "executor {} may not bind {kind} {role:?}, which does not exist",
                        ex.user
                    ),
                ));
            };
            let rules = obj.data.get("rules").cloned().unwrap_or(Value::Null);
            require_rules(spoke, ex, &rules, &target.namespace, target).await
        }
        _ => Ok(()),
    }
}

fn role_resource(kind: &str) -> kube::api::ApiResource {
    let gvk = kube::api::GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", kind);
    let plural = if kind == "Role" {
        "roles"
    } else {
        "clusterroles"
    };
    kube::api::ApiResource::from_gvk_with_plural(&gvk, plural)
}

/// Requires every permission in `rules` (resource rules; wildcards asked as wildcards, so only
/// a wildcard grant covers them, as kube-apiserver's escalation check).
async fn require_rules(
    spoke: &kube::Client,
    ex: &Executor,
    rules: &Value,
    namespace: &str,
    t: &Target,
) -> Result<(), String> {
    for rule in rules.as_array().into_iter().flatten() {
        let names = strings(rule.get("resourceNames"));
        let names: Vec<&str> = if names.is_empty() {
            vec![""]
        } else {
            names.iter().map(String::as_str).collect()
        };
        if !strings(rule.get("nonResourceURLs")).is_empty() {
            return Err(not_allowed(t, "an executor may not grant nonResourceURLs"));
        }
        for verb in strings(rule.get("verbs")) {
            for group in strings(rule.get("apiGroups")) {
                for resource in strings(rule.get("resources")) {
                    for name in &names {
                        let p = Permission {
                            verb: &verb,
                            group: &group,
                            resource: &resource,
                            namespace,
                            name,
                        };
                        require(spoke, ex, p, t).await?;
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn work(executor: Value) -> ManifestWork {
        serde_json::from_value(
            json!({"metadata": {"name": "w", "namespace": "c1"}, "spec": {"executor": executor}}),
        )
        .unwrap()
    }

    #[test]
    fn a_service_account_executor_gets_its_token_identity() {
        let ex = executor_of(&work(json!({"subject": {"type": "ServiceAccount", "serviceAccount": {"namespace": "apps", "name": "deployer"}}})))
            .unwrap()
            .unwrap();
        assert_eq!(ex.user, "system:serviceaccount:apps:deployer");
        assert!(
            ex.groups
                .contains(&"system:serviceaccounts:apps".to_string())
        );
    }

    #[test]
    fn executors_the_agent_cannot_honour_are_refused() {
        assert_eq!(
            executor_of(&work(json!({"subject": {"type": "ServiceAccount"}}))).unwrap_err(),
            "the executor service account is nil"
        );
        let none: ManifestWork =
            serde_json::from_value(json!({"metadata": {"name": "w"}, "spec": {}})).unwrap();
        assert_eq!(executor_of(&none), Ok(None));
    }
}
