//! Dynamic admission: the API server calls the webhooks that ValidatingWebhookConfiguration and
//! MutatingWebhookConfiguration objects register, as kube-apiserver does.
//!
//! For each write the server finds the webhooks whose `rules` match the operation, group,
//! version, resource, subresource and scope, and whose `namespaceSelector` and `objectSelector`
//! select the request. Mutating webhooks run first, one after another in configuration-name
//! order, each seeing the previous one's JSON patch applied; validating webhooks then see the
//! final object. A webhook that cannot be reached or answers nonsense fails the request under
//! `failurePolicy: Fail` (the default) and is skipped under `Ignore`; `timeoutSeconds` (default
//! 10) bounds each call. Requests with `dryRun` reach only webhooks that declare
//! `sideEffects: None` or `NoneOnDryRun`.
//!
//! Webhooks are reached over HTTPS (`clientConfig.url`, or a Service's
//! `https://NAME.NAMESPACE.svc:PORT/PATH`), verified against `clientConfig.caBundle`. The
//! embedder may also register webhooks served in this process ([`InProcess`]): the same
//! AdmissionReview goes to a function instead of over the network, so a program that runs
//! beside a real kube-apiserver as a webhook server runs here with no network hop.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::auth::UserInfo;
use crate::error::{ApiError, ApiResult, Cause};
use crate::resources::strings;
use crate::resources::{Builtin, Resource};
use crate::selectors::{label_selector_json_matches, labels_of};

/// Storage key of ValidatingWebhookConfigurations.
pub const VALIDATING_KEY: &str = "admissionregistration.k8s.io/validatingwebhookconfigurations";
/// Storage key of MutatingWebhookConfigurations.
pub const MUTATING_KEY: &str = "admissionregistration.k8s.io/mutatingwebhookconfigurations";

/// Largest AdmissionReview answer read from a webhook.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// The answer of an in-process reviewer: an AdmissionReview with its `response`, or why none.
pub type ReviewFuture = Pin<Box<dyn Future<Output = Result<Value, String>> + Send>>;

/// Webhooks served inside this process: given the webhook's path and an AdmissionReview
/// request, answers the AdmissionReview as the webhook server would over HTTPS.
pub trait InProcess: Send + Sync {
    /// Reviews one request for the webhook at `path`.
    fn review(&self, path: &str, review: Value) -> ReviewFuture;
}

#[derive(Clone)]
enum Endpoint {
    Https {
        url: String,
        host: String,
        port: u16,
        path: String,
        tls: Arc<rustls::ClientConfig>,
    },
    InProcess {
        path: String,
        reviewer: Arc<dyn InProcess>,
    },
    /// A client configuration that cannot be used; calls fail with this reason.
    Unusable(String),
}

#[derive(Debug, Clone, Default)]
struct Rule {
    operations: Vec<String>,
    groups: Vec<String>,
    versions: Vec<String>,
    resources: Vec<String>,
    scope: String,
}

/// One webhook of a configuration.
#[derive(Clone)]
struct Hook {
    name: String,
    rules: Vec<Rule>,
    namespace_selector: Value,
    object_selector: Value,
    fail_closed: bool,
    timeout: Duration,
    dry_run_safe: bool,
    endpoint: Endpoint,
}

/// One admission request, as the server sees it.
pub struct Request<'a> {
    /// `CREATE`, `UPDATE` or `DELETE`.
    pub operation: &'static str,
    /// The resource written.
    pub resource: &'a Resource,
    /// The subresource, or "".
    pub subresource: &'a str,
    /// The namespace, or "".
    pub namespace: &'a str,
    /// The object's name.
    pub name: &'a str,
    /// Who asks.
    pub user: &'a UserInfo,
    /// The object to be stored (none for DELETE).
    pub object: Option<Value>,
    /// The stored object (none for CREATE).
    pub old: Option<&'a Value>,
    /// Whether the request is a dry run.
    pub dry_run: bool,
}

/// Labels of a namespace, looked up when a webhook has a namespaceSelector.
pub type NamespaceLabels<'a> = &'a (dyn Fn(&str) -> ApiResult<BTreeMap<String, String>> + Sync);

/// Which configuration: (mutating, name, source), source 0 for stored configurations and 1 for
/// in-process ones, so both can share a name.
type ConfigKey = (bool, String, u8);

/// The registered webhooks: those of stored configurations, and in-process ones.
#[derive(Default)]
pub struct Webhooks {
    /// Each configuration's webhooks, in order; configurations in name order.
    configs: RwLock<BTreeMap<ConfigKey, Vec<Arc<Hook>>>>,
}

impl Webhooks {
    fn insert(
        &self,
        mutating: bool,
        config: &Value,
        source: u8,
        reviewer: Option<Arc<dyn InProcess>>,
    ) {
        let name = config["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let hooks = parse_hooks(config, reviewer);
        self.configs
            .write()
            .expect("webhooks lock")
            .insert((mutating, name, source), hooks);
    }

    /// Records a stored configuration (created or updated).
    pub fn put_config(&self, mutating: bool, obj: &Value) {
        self.insert(mutating, obj, 0, None);
    }

    /// Forgets a deleted stored configuration.
    pub fn remove_config(&self, mutating: bool, name: &str) {
        self.configs
            .write()
            .expect("webhooks lock")
            .remove(&(mutating, name.to_string(), 0));
    }

    /// Registers a configuration whose webhooks are served by `reviewer` in this process. The
    /// configuration has the same form as a stored one; each webhook's path is its
    /// `clientConfig.url` path or `clientConfig.service.path`.
    pub fn add_in_process(&self, mutating: bool, config: &Value, reviewer: Arc<dyn InProcess>) {
        self.insert(mutating, config, 1, Some(reviewer));
    }

    /// Whether any webhook could match a write of `operation` on this resource and subresource,
    /// before selectors are looked at. Lets the common path skip admission work entirely.
    pub fn may_match(&self, operation: &str, res: &Resource, subresource: &str) -> bool {
        self.configs
            .read()
            .expect("webhooks lock")
            .values()
            .flatten()
            .any(|h| {
                h.rules
                    .iter()
                    .any(|r| rule_matches(r, operation, res, subresource))
            })
    }

    fn matching(
        &self,
        mutating: bool,
        req: &Request<'_>,
        ns_labels: NamespaceLabels<'_>,
    ) -> ApiResult<Vec<Arc<Hook>>> {
        let candidates: Vec<Arc<Hook>> = self
            .configs
            .read()
            .expect("webhooks lock")
            .iter()
            .filter(|((m, _, _), _)| *m == mutating)
            .flat_map(|(_, hooks)| hooks.iter().cloned())
            .filter(|h| {
                h.rules
                    .iter()
                    .any(|r| rule_matches(r, req.operation, req.resource, req.subresource))
            })
            .collect();
        let mut out = Vec::with_capacity(candidates.len());
        for h in candidates {
            if selects(&h, req, ns_labels)? {
                out.push(h);
            }
        }
        Ok(out)
    }

    /// Runs the mutating then the validating webhooks for `req`. Returns the object as the
    /// mutating webhooks left it (unchanged when none matched), or the refusal.
    pub async fn admit(
        &self,
        mut req: Request<'_>,
        ns_labels: NamespaceLabels<'_>,
        warnings: &mut Vec<String>,
    ) -> ApiResult<Option<Value>> {
        for hook in self.matching(true, &req, ns_labels)? {
            let Some(answer) = call(&hook, &req, warnings).await? else {
                continue;
            };
            if let Some(patch) = answer.get("patch").and_then(Value::as_str) {
                if answer.get("patchType").and_then(Value::as_str) != Some("JSONPatch") {
                    return Err(hook_failed(
                        &hook,
                        "the response's patchType must be JSONPatch",
                    ));
                }
                let Some(obj) = req.object.as_mut() else {
                    continue;
                };
                apply_patch(obj, patch).map_err(|e| hook_failed(&hook, &e))?;
            }
        }
        for hook in self.matching(false, &req, ns_labels)? {
            call(&hook, &req, warnings).await?;
        }
        Ok(req.object)
    }
}

fn apply_patch(obj: &mut Value, patch_b64: &str) -> Result<(), String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch_b64)
        .map_err(|e| format!("the response's patch is not base64: {e}"))?;
    let patch: json_patch::Patch = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the response's patch is not a JSON patch: {e}"))?;
    let mut patched = obj.clone();
    json_patch::patch(&mut patched, &patch)
        .map_err(|e| format!("the response's patch does not apply: {e}"))?;
    *obj = patched;
    Ok(())
}

fn parse_hooks(config: &Value, reviewer: Option<Arc<dyn InProcess>>) -> Vec<Arc<Hook>> {
    let Some(list) = config.get("webhooks").and_then(Value::as_array) else {
        return vec![];
    };
    list.iter()
        .map(|w| {
            let rules = w
                .get("rules")
                .and_then(Value::as_array)
                .map(|rs| {
                    rs.iter()
                        .map(|r| Rule {
                            operations: strings(r.get("operations")),
                            groups: strings(r.get("apiGroups")),
                            versions: strings(r.get("apiVersions")),
                            resources: strings(r.get("resources")),
                            scope: r["scope"].as_str().unwrap_or("*").to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let endpoint = match &reviewer {
                Some(r) => Endpoint::InProcess {
                    path: webhook_path(&w["clientConfig"]),
                    reviewer: r.clone(),
                },
                None => https_endpoint(&w["clientConfig"]),
            };
            Arc::new(Hook {
                name: w["name"].as_str().unwrap_or_default().to_string(),
                rules,
                namespace_selector: w.get("namespaceSelector").cloned().unwrap_or(json!({})),
                object_selector: w.get("objectSelector").cloned().unwrap_or(json!({})),
                fail_closed: w["failurePolicy"].as_str() != Some("Ignore"),
                timeout: Duration::from_secs(
                    w["timeoutSeconds"].as_u64().unwrap_or(10).clamp(1, 30),
                ),
                dry_run_safe: matches!(
                    w["sideEffects"].as_str(),
                    Some("None") | Some("NoneOnDryRun")
                ),
                endpoint,
            })
        })
        .collect()
}

/// The path a webhook's client configuration names.
fn webhook_path(cc: &Value) -> String {
    if let Some(url) = cc["url"].as_str() {
        return url
            .parse::<http::Uri>()
            .ok()
            .map(|u| u.path().to_string())
            .unwrap_or_default();
    }
    cc.pointer("/service/path")
        .and_then(Value::as_str)
        .unwrap_or("/")
        .to_string()
}

fn https_endpoint(cc: &Value) -> Endpoint {
    let url = match (
        cc["url"].as_str(),
        cc.get("service").filter(|s| !s.is_null()),
    ) {
        (Some(u), _) => u.to_string(),
        (None, Some(s)) => format!(
            "https://{}.{}.svc:{}{}",
            s["name"].as_str().unwrap_or_default(),
            s["namespace"].as_str().unwrap_or_default(),
            s["port"].as_u64().unwrap_or(443),
            s["path"].as_str().unwrap_or("/")
        ),
        (None, None) => {
            return Endpoint::Unusable("clientConfig names neither a url nor a service".into());
        }
    };
    let uri: http::Uri = match url.parse() {
        Ok(u) => u,
        Err(e) => return Endpoint::Unusable(format!("bad url {url:?}: {e}")),
    };
    if uri.scheme_str() != Some("https") {
        return Endpoint::Unusable(format!("url {url:?} is not https"));
    }
    let Some(host) = uri.host().map(|h| h.trim_matches(['[', ']']).to_string()) else {
        return Endpoint::Unusable(format!("url {url:?} has no host"));
    };
    let tls = match client_tls(cc["caBundle"].as_str()) {
        Ok(t) => t,
        Err(e) => return Endpoint::Unusable(e),
    };
    Endpoint::Https {
        port: uri.port_u16().unwrap_or(443),
        path: uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into()),
        host,
        url,
        tls,
    }
}

/// TLS to a webhook: trusts the caBundle when there is one, the system's roots otherwise.
fn client_tls(ca_bundle: Option<&str>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_bundle.filter(|b| !b.is_empty()) {
        Some(b64) => {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("caBundle is not base64: {e}"))?;
            let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("caBundle is not PEM: {e}"))?;
            if certs.is_empty() {
                return Err("caBundle holds no certificate".into());
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| format!("caBundle holds a bad certificate: {e}"))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for c in native.certs {
                let _ = roots.add(c);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

fn one_matches(list: &[String], value: &str) -> bool {
    list.iter().any(|x| x == "*" || x == value)
}

fn rule_matches(rule: &Rule, operation: &str, res: &Resource, subresource: &str) -> bool {
    // As kube-apiserver: webhook configurations never go to webhooks, so a broken webhook can
    // always be fixed or removed.
    if res.group == "admissionregistration.k8s.io" {
        return false;
    }
    if !one_matches(&rule.operations, operation)
        || !one_matches(&rule.groups, &res.group)
        || !one_matches(&rule.versions, &res.version)
    {
        return false;
    }
    let scope_ok = match rule.scope.as_str() {
        "Cluster" => !res.namespaced,
        "Namespaced" => res.namespaced,
        _ => true,
    };
    scope_ok
        && rule.resources.iter().any(|r| {
            let (r_res, r_sub) = r.split_once('/').unwrap_or((r.as_str(), ""));
            let res_ok = r_res == "*" || r_res == res.plural;
            let sub_ok = if r.contains('/') {
                r_sub == "*" || r_sub == subresource
            } else {
                subresource.is_empty()
            };
            res_ok && sub_ok
        })
}

fn selects(hook: &Hook, req: &Request<'_>, ns_labels: NamespaceLabels<'_>) -> ApiResult<bool> {
    let objects = [req.object.as_ref(), req.old];
    let empty = |s: &Value| s.as_object().is_none_or(|m| m.is_empty());
    if !empty(&hook.object_selector)
        && !objects
            .iter()
            .flatten()
            .any(|o| label_selector_json_matches(&hook.object_selector, &labels_of(o)))
    {
        return Ok(false);
    }
    if empty(&hook.namespace_selector) {
        return Ok(true);
    }
    if req.resource.builtin == Some(Builtin::Namespace) {
        // A namespace is matched by its own labels.
        return Ok(objects
            .iter()
            .flatten()
            .any(|o| label_selector_json_matches(&hook.namespace_selector, &labels_of(o))));
    }
    if !req.resource.namespaced || req.namespace.is_empty() {
        return Ok(true);
    }
    Ok(label_selector_json_matches(
        &hook.namespace_selector,
        &ns_labels(req.namespace)?,
    ))
}

/// The AdmissionReview sent for `req`.
fn review_for(req: &Request<'_>, uid: &str) -> Value {
    let res = req.resource;
    let mut r = json!({
        "uid": uid,
        "kind": {"group": res.group, "version": res.version, "kind": res.kind},
        "resource": {"group": res.group, "version": res.version, "resource": res.plural},
        "requestKind": {"group": res.group, "version": res.version, "kind": res.kind},
        "requestResource": {"group": res.group, "version": res.version, "resource": res.plural},
        "name": req.name,
        "operation": req.operation,
        "userInfo": {"username": req.user.name, "groups": req.user.groups},
        "object": req.object.clone().unwrap_or(Value::Null),
        "oldObject": req.old.cloned().unwrap_or(Value::Null),
        "dryRun": req.dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": match req.operation {
            "CREATE" => "CreateOptions", "UPDATE" => "UpdateOptions", _ => "DeleteOptions"}},
    });
    if !req.namespace.is_empty() {
        r["namespace"] = json!(req.namespace);
    }
    if !req.subresource.is_empty() {
        r["subResource"] = json!(req.subresource);
        r["requestSubResource"] = json!(req.subresource);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": r})
}

fn hook_failed(hook: &Hook, why: &str) -> ApiError {
    ApiError::internal(format!("failed calling webhook \"{}\": {why}", hook.name))
}

/// Calls one webhook. Ok(Some(response)) when it allowed the request, Ok(None) when it could
/// not be called and its failure policy is Ignore, Err when it refused or failed closed.
async fn call(
    hook: &Hook,
    req: &Request<'_>,
    warnings: &mut Vec<String>,
) -> ApiResult<Option<Value>> {
    if req.dry_run && !hook.dry_run_safe {
        return Err(ApiError::bad_request(format!(
            "admission webhook \"{}\" does not support dry run",
            hook.name
        )));
    }
    let uid = uuid::Uuid::new_v4().to_string();
    let review = review_for(req, &uid);
    let sent = tokio::time::timeout(hook.timeout, send(&hook.endpoint, review)).await;
    let answer = match sent {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return fail(hook, format!("failed to call webhook: {e}")),
        Err(_) => {
            return fail(
                hook,
                format!(
                    "failed to call webhook: no answer within {}s",
                    hook.timeout.as_secs()
                ),
            );
        }
    };
    let Some(response) = answer.get("response").filter(|r| r.is_object()) else {
        return fail(hook, "the AdmissionReview has no response".into());
    };
    if response["uid"].as_str() != Some(uid.as_str()) {
        return fail(
            hook,
            format!(
                "expected response.uid={uid:?}, got {:?}",
                response["uid"].as_str().unwrap_or_default()
            ),
        );
    }
    for w in strings(response.get("warnings")) {
        warnings.push(w);
    }
    match response["allowed"].as_bool() {
        Some(true) => Ok(Some(response.clone())),
        Some(false) => Err(denied(&hook.name, &response["status"])),
        None => fail(
            hook,
            "the response does not say whether it is allowed".into(),
        ),
    }
}

fn fail(hook: &Hook, why: String) -> ApiResult<Option<Value>> {
    if hook.fail_closed {
        return Err(hook_failed(hook, &why));
    }
    tracing::warn!(webhook = %hook.name, error = %why, "webhook failed; ignored under failurePolicy Ignore");
    Ok(None)
}

/// The error for a refusal, as kube-apiserver words it: the webhook's code (at least 400) and
/// message, prefixed with who refused.
pub fn denied(webhook: &str, status: &Value) -> ApiError {
    let by = format!("admission webhook \"{webhook}\" denied the request");
    let code = status["code"]
        .as_u64()
        .filter(|c| (400..600).contains(c))
        .unwrap_or(400) as u16;
    let message = status["message"]
        .as_str()
        .filter(|m| !m.is_empty())
        .or_else(|| status["reason"].as_str().filter(|r| !r.is_empty()));
    let message = match message {
        Some(m) => format!("{by}: {m}"),
        None => format!("{by} without explanation"),
    };
    let mut err = ApiError::bad_request(message);
    err.code = code;
    err.reason = reason_for(code, status["reason"].as_str().unwrap_or_default());
    if let Some(details) = status.get("details") {
        if let Some(causes) = details.get("causes").and_then(Value::as_array) {
            err.causes = causes
                .iter()
                .map(|c| Cause {
                    reason: c["reason"].as_str().unwrap_or_default().to_string(),
                    message: c["message"].as_str().unwrap_or_default().to_string(),
                    field: c["field"].as_str().unwrap_or_default().to_string(),
                })
                .collect();
        }
        let s = |k: &str| details[k].as_str().unwrap_or_default().to_string();
        if !s("name").is_empty() || !s("kind").is_empty() {
            err = err.with_subject(&s("group"), &s("kind"), &s("name"));
        }
    }
    err
}

/// kube's StatusReason for a webhook's reason, falling back to the one its code implies.
fn reason_for(code: u16, given: &str) -> &'static str {
    const KNOWN: [&str; 12] = [
        "BadRequest",
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "AlreadyExists",
        "Conflict",
        "Gone",
        "Invalid",
        "Timeout",
        "TooManyRequests",
        "RequestEntityTooLarge",
        "InternalError",
    ];
    if let Some(k) = KNOWN.iter().find(|k| **k == given) {
        return k;
    }
    match code {
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        410 => "Gone",
        422 => "Invalid",
        429 => "TooManyRequests",
        500..=599 => "InternalError",
        _ => "BadRequest",
    }
}

async fn send(endpoint: &Endpoint, review: Value) -> Result<Value, String> {
    match endpoint {
        Endpoint::Unusable(why) => Err(why.clone()),
        Endpoint::InProcess { path, reviewer } => reviewer.review(path, review).await,
        Endpoint::Https {
            url,
            host,
            port,
            path,
            tls,
        } => post(url, host, *port, path, tls.clone(), review)
            .await
            .map_err(|e| format!("Post \"{url}\": {e}")),
    }
}

async fn post(
    url: &str,
    host: &str,
    port: u16,
    path: &str,
    tls: Arc<rustls::ClientConfig>,
    review: Value,
) -> Result<Value, String> {
    use http_body_util::BodyExt;
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("dial tcp {host}:{port}: {e}"))?;
    let server_name = rustls_pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| format!("bad server name {host:?}: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(server_name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let body = serde_json::to_vec(&review).map_err(|e| e.to_string())?;
    let authority = url
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| u.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| host.to_string());
    let request = http::Request::post(path)
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    if !status.is_success() {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).to_string();
        return Err(format!("the server answered {status}: {text}"));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("the answer is not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(group: &str, plural: &str, namespaced: bool) -> Resource {
        let reg = crate::resources::Registry::with_workloads();
        let mut r = (*reg.get("", "v1", "configmaps").unwrap()).clone();
        r.group = group.into();
        r.plural = plural.into();
        r.namespaced = namespaced;
        r.version = "v1".into();
        r
    }

    fn rule(ops: &[&str], resources: &[&str], scope: &str) -> Rule {
        Rule {
            operations: ops.iter().map(|s| s.to_string()).collect(),
            groups: vec!["*".into()],
            versions: vec!["*".into()],
            resources: resources.iter().map(|s| s.to_string()).collect(),
            scope: scope.into(),
        }
    }

    #[test]
    fn rules_match_resources_subresources_and_scope_as_kube_does() {
        let pods = res("", "pods", true);
        let nodes = res("", "nodes", false);
        let r = rule(&["CREATE"], &["pods"], "*");
        assert!(rule_matches(&r, "CREATE", &pods, ""));
        assert!(!rule_matches(&r, "UPDATE", &pods, ""));
        assert!(!rule_matches(&r, "CREATE", &pods, "status"));
        assert!(!rule_matches(&r, "CREATE", &nodes, ""));
        let star = rule(&["*"], &["*"], "*");
        assert!(rule_matches(&star, "DELETE", &nodes, ""));
        assert!(!rule_matches(&star, "UPDATE", &nodes, "status"));
        let mut hooks = res(
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
            false,
        );
        hooks.version = "v1".into();
        assert!(
            !rule_matches(&star, "DELETE", &hooks, ""),
            "never for webhook configurations"
        );
        let all = rule(&["*"], &["*/*"], "*");
        assert!(rule_matches(&all, "UPDATE", &nodes, "status"));
        let status = rule(&["UPDATE"], &["*/status"], "*");
        assert!(rule_matches(&status, "UPDATE", &pods, "status"));
        assert!(!rule_matches(&status, "UPDATE", &pods, ""));
        let cluster = rule(&["*"], &["*"], "Cluster");
        assert!(rule_matches(&cluster, "CREATE", &nodes, ""));
        assert!(!rule_matches(&cluster, "CREATE", &pods, ""));
        let namespaced = rule(&["*"], &["*"], "Namespaced");
        assert!(!rule_matches(&namespaced, "CREATE", &nodes, ""));
    }

    #[test]
    fn a_refusal_keeps_the_webhooks_code_and_names_it() {
        let e = denied(
            "v.example.com",
            &json!({"code": 403, "reason": "Forbidden", "message": "no"}),
        );
        assert_eq!((e.code, e.reason), (403, "Forbidden"));
        assert_eq!(
            e.message,
            "admission webhook \"v.example.com\" denied the request: no"
        );
        // Codes below 400 become 400; no message at all is said so.
        let e = denied("v.example.com", &json!({"code": 200}));
        assert_eq!((e.code, e.reason), (400, "BadRequest"));
        assert!(e.message.ends_with("without explanation"), "{}", e.message);
        let e = denied(
            "v.example.com",
            &json!({"code": 422, "message": "bad", "details": {"causes": [{"field": "spec.x", "message": "m", "reason": "FieldValueInvalid"}]}}),
        );
        assert_eq!((e.code, e.reason), (422, "Invalid"));
        assert_eq!(e.causes[0].field, "spec.x");
    }

    #[test]
    fn a_patch_that_does_not_apply_leaves_the_object_alone() {
        let mut obj = json!({"metadata": {"name": "a"}});
        let good = base64::engine::general_purpose::STANDARD
            .encode(r#"[{"op":"add","path":"/metadata/labels","value":{"x":"y"}}]"#);
        apply_patch(&mut obj, &good).unwrap();
        assert_eq!(obj["metadata"]["labels"]["x"], "y");
        let bad = base64::engine::general_purpose::STANDARD.encode(
            r#"[{"op":"add","path":"/metadata/labels","value":1},{"op":"remove","path":"/nope"}]"#,
        );
        assert!(apply_patch(&mut obj, &bad).is_err());
        assert_eq!(obj["metadata"]["labels"]["x"], "y");
        assert!(apply_patch(&mut obj, "%%%").is_err());
    }
}
