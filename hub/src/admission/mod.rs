//! Open Cluster Management's admission rules, as the hub's admission webhooks.
//!
//! The rules are answered as `admission.k8s.io/v1` AdmissionReviews, whoever asks: the embedded
//! API server calls [`Admission::review`] in process, and next to a real kube-apiserver the
//! hub's webhook server answers the same reviews over HTTPS. Permission checks are
//! SubjectAccessReviews through the hub's client, so both ways ask the API server's own
//! authorizer.
//!
//! - `hubAcceptsClient` can be set to true, or changed, only by users allowed to `update`
//!   `managedclusters/accept`, as upstream's webhook requires;
//! - a ManagedCluster without a set label joins `default`, and its taints get `timeAdded`
//!   (mutating, as upstream's);
//! - putting a cluster into a set or taking it out needs `create` on `managedclustersets/join`
//!   for that set (old and new); a ManagedClusterSetBinding must be named after its set, and
//!   creating one needs `create` on `managedclustersets/bind` for the set;
//! - ManifestWorks are validated as upstream's webhook does: manifests present, at most 500 KiB
//!   in all, each named (no `generateName`), no two for the same object, and an `executor` only
//!   from users allowed to `execute-as` that service account. A ManifestWorkReplicaSet's
//!   template passes the same rules, and its executor needs `execute-as` in every namespace;
//! - a CSR for the `kubernetes.io/kube-apiserver-client` signer from an agent may only ask for
//!   that agent's own cluster, and one from a bootstrap token only for a well-formed agent
//!   identity.

mod rules;

pub use rules::{MAX_MANIFESTS_SIZE, validate_manifests};

use base64::Engine;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

/// The OCM cluster API group.
pub const CLUSTER_GROUP: &str = "cluster.open-cluster-management.io";
/// The OCM work API group.
pub const WORK_GROUP: &str = "work.open-cluster-management.io";

/// Name of the ValidatingWebhookConfiguration holding the hub's validating webhooks.
pub const VALIDATING_CONFIGURATION: &str = "garrison-hub-validators";
/// Name of the MutatingWebhookConfiguration holding the hub's mutating webhooks.
pub const MUTATING_CONFIGURATION: &str = "garrison-hub-mutators";

/// One webhook: its name (which refusals quote), its path, and what it reviews.
struct Hook {
    name: &'static str,
    path: &'static str,
    mutating: bool,
    group: &'static str,
    resource: &'static str,
    operations: &'static [&'static str],
}

const HOOKS: [Hook; 6] = [
    Hook {
        name: "managedclustermutators.admission.cluster.open-cluster-management.io",
        path: "/mutate-managedclusters",
        mutating: true,
        group: CLUSTER_GROUP,
        resource: "managedclusters",
        operations: &["CREATE", "UPDATE"],
    },
    Hook {
        name: "managedclustervalidators.admission.cluster.open-cluster-management.io",
        path: "/validate-managedclusters",
        mutating: false,
        group: CLUSTER_GROUP,
        resource: "managedclusters",
        operations: &["CREATE", "UPDATE"],
    },
    Hook {
        name: "managedclustersetbindingvalidators.admission.cluster.open-cluster-management.io",
        path: "/validate-managedclustersetbindings",
        mutating: false,
        group: CLUSTER_GROUP,
        resource: "managedclustersetbindings",
        operations: &["CREATE", "UPDATE"],
    },
    Hook {
        name: "manifestworkvalidators.admission.work.open-cluster-management.io",
        path: "/validate-manifestworks",
        mutating: false,
        group: WORK_GROUP,
        resource: "manifestworks",
        operations: &["CREATE", "UPDATE"],
    },
    Hook {
        name: "manifestworkreplicasetvalidators.admission.work.open-cluster-management.io",
        path: "/validate-manifestworkreplicasets",
        mutating: false,
        group: WORK_GROUP,
        resource: "manifestworkreplicasets",
        operations: &["CREATE", "UPDATE"],
    },
    Hook {
        name: "agentcsrvalidators.admission.garrison-ocm.io",
        path: "/validate-agent-csrs",
        mutating: false,
        group: "certificates.k8s.io",
        resource: "certificatesigningrequests",
        operations: &["CREATE"],
    },
];

/// Which CSRs the agent-CSR webhook reviews.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrScope {
    /// Every CSR: for the embedded server, where the webhook cannot be down while the API
    /// server is up.
    All,
    /// Only CSRs labelled with a cluster name (agents label theirs): next to kube-apiserver, so
    /// the cluster's other CSRs (kubelets' among them) never wait on the hub. An unlabelled
    /// request is not the hub's to approve either: the approver checks every request's
    /// identity whether or not this webhook saw it.
    Labelled,
}

/// The hub's webhook configuration of one kind (`mutating` or validating), each webhook's
/// `clientConfig` made by `client_config` from its path: a URL with a caBundle, or a Service.
pub fn webhook_configuration(
    mutating: bool,
    csrs: CsrScope,
    client_config: &dyn Fn(&str) -> Value,
) -> Value {
    let webhooks: Vec<Value> = HOOKS
        .iter()
        .filter(|h| h.mutating == mutating)
        .map(|h| {
            let version = if h.group == "certificates.k8s.io" {
                "v1"
            } else {
                "*"
            };
            let mut w = json!({
                "name": h.name,
                "clientConfig": client_config(h.path),
                "rules": [{
                    "operations": h.operations,
                    "apiGroups": [h.group],
                    "apiVersions": [version],
                    "resources": [h.resource],
                    "scope": "*",
                }],
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10,
            });
            if mutating {
                w["reinvocationPolicy"] = json!("Never");
            }
            if h.resource == "certificatesigningrequests" && csrs == CsrScope::Labelled {
                w["objectSelector"] = json!({"matchExpressions": [
                    {"key": garrison_api::labels::CLUSTER_NAME, "operator": "Exists"}]});
            }
            w
        })
        .collect();
    let (kind, name) = if mutating {
        ("MutatingWebhookConfiguration", MUTATING_CONFIGURATION)
    } else {
        ("ValidatingWebhookConfiguration", VALIDATING_CONFIGURATION)
    };
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "garrison-hub"}},
        "webhooks": webhooks,
    })
}

/// A refusal: the Status a webhook answers with.
#[derive(Debug, Clone, PartialEq)]
pub struct Denial {
    /// HTTP code the API server answers with.
    pub code: u16,
    /// Kubernetes StatusReason.
    pub reason: &'static str,
    /// What is wrong, in one line.
    pub message: String,
    /// Field causes, as `details.causes` entries.
    pub causes: Vec<Value>,
}

impl Denial {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Denial {
            code,
            reason,
            message: message.into(),
            causes: vec![],
        }
    }
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }
    pub(crate) fn invalid(message: impl Into<String>, field: &str) -> Self {
        let message = message.into();
        let mut d = Self::new(422, "Invalid", message.clone());
        d.causes = vec![json!({"reason": "FieldValueInvalid", "message": message, "field": field})];
        d
    }
    fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    fn status(&self) -> Value {
        let mut s = json!({"status": "Failure", "code": self.code, "reason": self.reason, "message": self.message});
        if !self.causes.is_empty() {
            s["details"] = json!({"causes": self.causes});
        }
        s
    }
}

/// The requester of a reviewed write, from the AdmissionReview's `userInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requester {
    /// The user name.
    pub name: String,
    /// The groups.
    pub groups: Vec<String>,
}

/// A permission the rules ask about, answered by SubjectAccessReview.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ask {
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
    pub subresource: &'static str,
    pub namespace: String,
    pub name: String,
}

/// OCM's admission rules, with the client their permission checks go through.
#[derive(Clone)]
pub struct Admission {
    client: kube::Client,
}

impl Admission {
    /// Rules whose SubjectAccessReviews go through `client`, which may create them.
    pub fn new(client: kube::Client) -> Self {
        Admission { client }
    }

    /// Whether `who` may do `ask`. A review that cannot be made refuses the write.
    pub(crate) async fn may(&self, who: &Requester, ask: Ask) -> Result<bool, Denial> {
        let sar = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(who.name.clone()),
                groups: Some(who.groups.clone()),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(ask.verb.into()),
                    group: Some(ask.group.into()),
                    resource: Some(ask.resource.into()),
                    subresource: (!ask.subresource.is_empty()).then(|| ask.subresource.into()),
                    namespace: (!ask.namespace.is_empty()).then_some(ask.namespace),
                    name: (!ask.name.is_empty()).then_some(ask.name),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &sar)
            .await
            .map_err(|e| {
                Denial::internal(format!("cannot check the requester's permissions: {e}"))
            })?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }

    /// Answers an AdmissionReview for the webhook at `path`. Malformed reviews get a refusal
    /// that says what is wrong; the answer always carries the request's uid.
    pub async fn review(&self, path: &str, review: Value) -> Value {
        let request = review.get("request").cloned().unwrap_or(Value::Null);
        let uid = request["uid"].clone();
        let outcome = match HOOKS.iter().find(|h| h.path == path) {
            None => Err(Denial::new(
                404,
                "NotFound",
                format!("no webhook is served at {path}"),
            )),
            Some(_) if !request.is_object() => {
                Err(Denial::bad_request("the AdmissionReview has no request"))
            }
            Some(hook) => self.decide(hook, &request).await,
        };
        let mut response = json!({"uid": uid, "allowed": outcome.is_ok()});
        match outcome {
            Ok(Some(patch)) => {
                response["patchType"] = json!("JSONPatch");
                response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(patch));
            }
            Ok(None) => {}
            Err(d) => response["status"] = d.status(),
        }
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
    }

    /// Allows (with a JSON patch for mutations) or refuses one request.
    async fn decide(&self, hook: &Hook, request: &Value) -> Result<Option<Vec<u8>>, Denial> {
        let operation = request["operation"].as_str().unwrap_or_default();
        let who = Requester {
            name: request
                .pointer("/userInfo/username")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            groups: request
                .pointer("/userInfo/groups")
                .and_then(Value::as_array)
                .map(|g| {
                    g.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
        };
        let object = request.get("object").filter(|o| o.is_object());
        let old = request.get("oldObject").filter(|o| o.is_object());
        let Some(object) = object else {
            // Only writes are reviewed; a DELETE has nothing to check.
            return Ok(None);
        };
        let old = if operation == "UPDATE" { old } else { None };
        match hook.path {
            "/mutate-managedclusters" => {
                let mut mutated = object.clone();
                rules::default_cluster_set(&mut mutated);
                rules::stamp_taints(old, &mut mutated);
                let patch = json_patch::diff(object, &mutated);
                if patch.0.is_empty() {
                    return Ok(None);
                }
                serde_json::to_vec(&patch)
                    .map(Some)
                    .map_err(|e| Denial::internal(e.to_string()))
            }
            "/validate-managedclusters" => {
                self.check_cluster(&who, old, object).await.map(|_| None)
            }
            "/validate-managedclustersetbindings" => {
                rules::check_binding_name(object)?;
                if old.is_none() {
                    self.check_bind(&who, object).await?;
                }
                Ok(None)
            }
            "/validate-manifestworks" => self.check_work(&who, old, object).await.map(|_| None),
            "/validate-manifestworkreplicasets" => self
                .check_replica_set(&who, old, object)
                .await
                .map(|_| None),
            "/validate-agent-csrs" => rules::check_agent_csr(&who, object).map(|_| None),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_webhook_is_in_one_configuration_with_upstreams_name() {
        let cc = |p: &str| json!({"url": format!("https://127.0.0.1:9443{p}"), "caBundle": "Y2E="});
        let validating = webhook_configuration(false, CsrScope::All, &cc);
        let mutating = webhook_configuration(true, CsrScope::All, &cc);
        let names = |c: &Value| -> Vec<String> {
            c["webhooks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            names(&mutating),
            ["managedclustermutators.admission.cluster.open-cluster-management.io"]
        );
        assert_eq!(names(&validating).len(), 5);
        assert!(
            names(&validating).contains(
                &"manifestworkvalidators.admission.work.open-cluster-management.io".into()
            )
        );
        // Every webhook fails closed, has no side effects and reaches its own path.
        for w in validating["webhooks"].as_array().unwrap() {
            assert_eq!(w["failurePolicy"], "Fail");
            assert_eq!(w["sideEffects"], "None");
            assert!(
                HOOKS
                    .iter()
                    .any(|h| w["clientConfig"]["url"].as_str().unwrap().ends_with(h.path))
            );
        }
    }
}
