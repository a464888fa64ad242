//! The HTTP front of the API server: request parsing, authentication, authorization, dispatch to
//! the verbs, response encoding and the audit record.

pub mod discovery;
pub mod request_info;
pub mod reviews;
pub mod table;
pub mod watch;
pub mod web;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};

pub use garrison_k8s::http::{json_response, metrics_response};

use crate::admission::FieldValidation;
use crate::audit::{AuditEntry, AuditLog};
use crate::auth::UserInfo;
use crate::auth::authn::authenticate_bootstrap_token;
use crate::auth::rbac::Attributes;
use crate::error::{ApiError, ApiResult, qualified};
use crate::ops::{DeleteOptions, ListOptions, Objects, WriteCtx};
use crate::resources::Resource;
use crate::selectors::{FieldSelector, LabelSelector};
use request_info::{ResourcePath, Target};

/// The identity a TLS connection proved with its client certificate, attached to each request
/// on that connection by the listener.
#[derive(Debug, Clone, Default)]
pub struct PeerIdentity {
    /// The certificate's user, if a valid client certificate was presented.
    pub user: Option<UserInfo>,
    /// The remote address.
    pub addr: String,
}

/// Decides, per request, whether a certificate-authenticated user may still use its certificate
/// (for example, a denied cluster's agent). Returning false answers 401.
pub type CertificateGate = Arc<dyn Fn(&UserInfo) -> bool + Send + Sync>;

/// What the listener needs to cut live connections whose certificate stopped being good: the
/// gate, and a signal that changes whenever the gate may have started refusing someone.
#[derive(Clone)]
pub struct ConnectionPolicy {
    /// The same gate requests pass.
    pub gate: CertificateGate,
    /// Changes when a certificate user may have been revoked.
    pub revocations: tokio::sync::watch::Receiver<u64>,
}

/// The API server's shared state.
pub struct ApiServer {
    /// The verbs and the state they need.
    pub objects: Arc<Objects>,
    /// The audit log, when enabled.
    pub audit: Option<AuditLog>,
    /// Largest accepted request body, in bytes.
    pub max_body: usize,
    /// Seconds between watch bookmarks.
    pub bookmark_interval: std::time::Duration,
    /// Extra check on certificate users, if any.
    pub certificate_gate: Option<CertificateGate>,
    /// The checks `/readyz` and `/healthz` run.
    pub health: crate::health::Health,
    /// The admission webhooks writes pass.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// Issues and checks ServiceAccount tokens.
    pub tokens: Arc<crate::auth::tokens::TokenSigner>,
    /// Read-only APIs served beside Kubernetes' under their own paths.
    pub extensions: std::sync::RwLock<Vec<Arc<dyn Extension>>>,
}

/// Who asks an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user's name (`system:anonymous` on a public path).
    pub user: String,
    /// The ManagedClusters the user may `get` (`None`: all of them).
    pub visible_clusters: Option<std::collections::BTreeSet<String>>,
    /// Whether the user came with a browser session (see [`web`]), and so can sign out.
    pub session: bool,
}

/// A read-only API served beside Kubernetes' under paths of its own (such as the compliance
/// history's), authenticated like every request, or by a browser session for GETs. It answers
/// GETs only, and learns which ManagedClusters the caller may `get`, to filter by them.
pub trait Extension: Send + Sync + 'static {
    /// Whether `path` is served here.
    fn serves(&self, path: &str) -> bool;
    /// Whether `path` is served to anyone, signed in or not (a login form, a stylesheet).
    fn public(&self, _path: &str) -> bool {
        false
    }
    /// Answers a GET of `path?query` for `caller`.
    fn get<'a>(
        &'a self,
        path: &'a str,
        query: Option<&'a str>,
        caller: Caller,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ExtensionAnswer> + Send + 'a>>;
}

/// A body an extension sends as it produces it.
pub type ExtensionStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// An extension's answer.
pub struct ExtensionAnswer {
    /// HTTP status.
    pub code: u16,
    /// Content type.
    pub content_type: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// The body as a stream instead (then `body` is not sent): a failure midway ends the
    /// answer short, which the client sees as a broken transfer.
    pub stream: Option<ExtensionStream>,
}

/// The ManagedClusters `user` may `get`: `None` when all (a grant without resource names).
fn visible_clusters(
    srv: &ApiServer,
    user: &UserInfo,
) -> ApiResult<Option<std::collections::BTreeSet<String>>> {
    const GROUP: &str = "cluster.open-cluster-management.io";
    let attrs = |name: &str| Attributes {
        verb: "get".into(),
        resource_request: true,
        api_group: GROUP.into(),
        resource: "managedclusters".into(),
        name: name.into(),
        ..Default::default()
    };
    if srv.objects.authz.authorize(user, &attrs(""))?.allowed {
        return Ok(None);
    }
    let Some(res) = srv.objects.registry.get(GROUP, "v1", "managedclusters") else {
        return Ok(Some(Default::default()));
    };
    let (clusters, _, _) = srv
        .objects
        .list(&res, None, &crate::ops::ListOptions::default())?;
    let mut out = std::collections::BTreeSet::new();
    for c in clusters {
        let name = c["metadata"]["name"].as_str().unwrap_or_default();
        if srv.objects.authz.authorize(user, &attrs(name))?.allowed {
            out.insert(name.to_string());
        }
    }
    Ok(Some(out))
}

async fn serve_extension(
    srv: &ApiServer,
    ext: Arc<dyn Extension>,
    method: Method,
    path: String,
    query: Option<String>,
    user: &UserInfo,
    session: bool,
) -> ApiResult<Response> {
    if method != Method::GET {
        return Err(ApiError::method_not_supported("", &path, method.as_str()));
    }
    let visible_clusters = if user.name == crate::bootstrap::ANONYMOUS {
        Some(Default::default())
    } else {
        visible_clusters(srv, user)?
    };
    let caller = Caller {
        user: user.name.clone(),
        visible_clusters,
        session,
    };
    let answer = ext.get(&path, query.as_deref(), caller).await;
    let body = match answer.stream {
        Some(s) => Body::from_stream(s),
        None => Body::from(answer.body),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() =
        StatusCode::from_u16(answer.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(&answer.content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    for (k, v) in answer.headers {
        if let (Ok(k), Ok(v)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    if web::is_page(&path) {
        web::harden(&mut resp);
    } else if !resp.headers().contains_key(header::CACHE_CONTROL) {
        // What a browser may fetch with a session is not kept in its cache.
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(resp)
}

/// kube-apiserver's request body limit: 3 MiB.
pub const DEFAULT_MAX_BODY: usize = 3 * 1024 * 1024;

/// The router serving the whole API.
pub fn router(server: Arc<ApiServer>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(server)
}

/// Query parameters, first value wins.
pub struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> ApiResult<Self> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q.unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?;
        Ok(Query(pairs))
    }
    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    /// Whether `key` is `true` or `1`.
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true") | Some("1"))
    }
}

fn error_response(e: &ApiError) -> Response {
    let mut resp = json_response(e.code, &e.to_status());
    if let Some(s) = e.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    resp
}

fn add_warnings(resp: &mut Response, warnings: &[String]) {
    for w in warnings {
        let text = format!("299 - {:?}", w);
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append("Warning", v);
        }
    }
}

async fn handle(State(srv): State<Arc<ApiServer>>, req: Request<Body>) -> Response {
    let started = Instant::now();
    let peer = req
        .extensions()
        .get::<PeerIdentity>()
        .cloned()
        .unwrap_or_default();
    let mut entry = AuditEntry {
        time: crate::admission::now_rfc3339(),
        user: "system:anonymous".into(),
        source_ip: peer.addr.clone(),
        verb: req.method().to_string().to_lowercase(),
        path: req.uri().path().to_string(),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect(),
        ..Default::default()
    };
    let wants_protobuf = prefers_protobuf(req.headers());
    // A span per request, named once the verb and resource are known, continuing the
    // caller's trace; health checks and scrapes make none.
    let span = if is_health(&entry.path) || entry.path == METRICS_PATH {
        tracing::Span::none()
    } else {
        tracing::info_span!(
            "request",
            otel.name = span_name(&srv, req.method(), req.uri()),
            otel.kind = "server",
            http.request.method = %req.method(),
            http.response.status_code = tracing::field::Empty,
        )
    };
    garrison_telemetry::traces::set_parent_from_headers(&span, req.headers());
    let mut resp =
        match tracing::Instrument::instrument(serve(&srv, req, &peer, &mut entry), span.clone())
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let mut resp = error_response(&e);
                if web::is_page(&entry.path) {
                    web::harden(&mut resp);
                }
                resp
            }
        };
    if wants_protobuf {
        resp = into_protobuf(resp).await;
    }
    entry.code = resp.status().as_u16();
    let took = started.elapsed();
    entry.latency_ms = took.as_millis() as u64;
    span.record("http.response.status_code", entry.code);
    garrison_telemetry::metrics().request(
        verb_label(&entry.verb),
        &entry.api_group,
        &entry.resource,
        entry.code,
        took,
    );
    // Health checks, and scrapes that were let in, would flood the log every few seconds.
    let routine = is_health(&entry.path) || (entry.path == METRICS_PATH && entry.code == 200);
    if let Some(log) = &srv.audit
        && !routine
    {
        log.record(&entry);
    }
    resp
}

/// Whether the client's Accept header puts Kubernetes' protobuf before JSON and YAML, as
/// client-go does for built-in kinds (`application/vnd.kubernetes.protobuf, */*`).
fn prefers_protobuf(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut ranges: Vec<(f32, String)> = accept
        .split(',')
        .map(|r| {
            let mut parts = r.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            (q, media)
        })
        .filter(|(q, _)| *q > 0.0)
        .collect();
    // Stable: among equal weights the first listed wins.
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
    ranges
        .iter()
        .find(|(_, m)| {
            matches!(
                m.as_str(),
                crate::protobuf::MEDIA_TYPE
                    | "application/json"
                    | "application/yaml"
                    | "application/*"
                    | "*/*"
            )
        })
        .is_some_and(|(_, m)| m == crate::protobuf::MEDIA_TYPE)
}

/// Re-encodes a successful JSON answer as protobuf when its kind has a protobuf form; any
/// other answer (errors, custom resources, watch streams, tables) stays as it is, which
/// client-go accepts because it always offers JSON as well.
async fn into_protobuf(resp: Response) -> Response {
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/json");
    // A body of unknown length is a stream (a watch): it goes out as it comes, in JSON.
    let complete = axum::body::HttpBody::size_hint(resp.body())
        .exact()
        .is_some();
    if !resp.status().is_success() || !is_json || !complete {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read an answer to encode as protobuf");
            return error_response(&ApiError::internal("cannot read the answer"));
        }
    };
    let encoded = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| crate::protobuf::encode(&v));
    match encoded {
        Some(Ok(pb)) => {
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(crate::protobuf::MEDIA_TYPE),
            );
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(pb))
        }
        Some(Err(e)) => {
            tracing::warn!(error = %e, "answering in JSON: the object has no protobuf form");
            Response::from_parts(parts, Body::from(bytes))
        }
        None => Response::from_parts(parts, Body::from(bytes)),
    }
}

/// Answers a health endpoint: `/livez` says the process answers; `/readyz` and `/healthz`
/// run the registered checks (`/readyz/NAME` one of them) and answer 500 when one fails, with
/// the per-check lines when `verbose` is asked or something failed.
fn health(srv: &ApiServer, path: &str, query: Option<&str>) -> ApiResult<Response> {
    let (code, body) = if path == "/livez" || path.starts_with("/livez/") {
        (StatusCode::OK, "ok".to_string())
    } else {
        let only = path
            .strip_prefix("/readyz/")
            .or_else(|| path.strip_prefix("/healthz/"))
            .filter(|n| !n.is_empty());
        let Some(report) = srv.health.run(only) else {
            return Err(ApiError::no_route(format!("no health check at {path}")));
        };
        let verbose = query.is_some_and(|q| {
            q.split('&')
                .any(|p| p == "verbose" || p.starts_with("verbose="))
        });
        if report.healthy {
            (
                StatusCode::OK,
                if verbose { report.text } else { "ok".into() },
            )
        } else {
            (StatusCode::INTERNAL_SERVER_ERROR, report.text)
        }
    };
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(r)
}

/// A request's span name, known before it is served: its Kubernetes verb and resource
/// (`create manifestworks`, `get managedclusters/status`), or the method alone for other
/// paths, so that names stay few.
fn span_name(srv: &ApiServer, method: &Method, uri: &http::Uri) -> String {
    let fallback = || verb_label(&method.as_str().to_ascii_lowercase()).to_string();
    let Ok(Target::Resource(rp)) = request_info::parse(uri.path()) else {
        return fallback();
    };
    // Only resources this server serves name a span: a caller cannot make up names.
    let Some(res) = srv
        .objects
        .registry
        .get(&rp.group, &rp.version, &rp.resource)
    else {
        return fallback();
    };
    if let Some(sub) = &rp.subresource
        && !res.subresources.contains(&sub.as_str())
    {
        return fallback();
    }
    let Ok(q) = Query::parse(uri.query()) else {
        return fallback();
    };
    let Ok(verb) = verb_for(method, &rp, &q) else {
        return fallback();
    };
    match &rp.subresource {
        Some(sub) => format!("{verb} {}/{sub}", rp.resource),
        None => format!("{verb} {}", rp.resource),
    }
}

/// The verb label of a request's metrics: a Kubernetes verb, a standard HTTP method (for
/// paths that are not resources), or `other`. Clients choose the method, so it is never used
/// as it came: each made-up method would be a new series.
fn verb_label(verb: &str) -> &'static str {
    const KNOWN: [&str; 13] = [
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
        "post",
        "put",
        "head",
        "options",
        "connect",
    ];
    KNOWN.into_iter().find(|k| *k == verb).unwrap_or("other")
}

/// Where the Prometheus metrics are served, to callers who may `get` this non-resource URL
/// (the `system:monitoring` group, by default), as kube-apiserver does.
pub const METRICS_PATH: &str = "/metrics";

fn is_health(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz")
        || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

fn authenticate(
    srv: &ApiServer,
    path: &str,
    headers: &HeaderMap,
    peer: &PeerIdentity,
) -> ApiResult<UserInfo> {
    if let Some(user) = &peer.user {
        if let Some(gate) = &srv.certificate_gate
            && !gate(user)
        {
            return Err(ApiError::unauthorized());
        }
        return Ok(user.clone());
    }
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|s| s.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(ApiError::unauthorized)?;
        if crate::auth::tokens::TokenSigner::looks_like_jwt(token) {
            return service_account_user(srv, token).map_err(|e| {
                tracing::info!(reason = %e, "service account token refused");
                ApiError::unauthorized()
            });
        }
        return authenticate_bootstrap_token(&srv.objects.store, token, jiff::Timestamp::now())
            .map_err(|e| {
                tracing::info!(reason = %e, "bearer token refused");
                ApiError::unauthorized()
            });
    }
    if crate::bootstrap::ANONYMOUS_PATHS.contains(&path) {
        return Ok(UserInfo {
            name: crate::bootstrap::ANONYMOUS.into(),
            groups: vec![crate::bootstrap::UNAUTHENTICATED.into()],
            method: "anonymous",
        });
    }
    Err(ApiError::unauthorized())
}

/// The user a ServiceAccount token stands for, checked now against this server's key and
/// audiences and the account's existence: for bearer tokens and browser sessions alike.
fn service_account_user(
    srv: &ApiServer,
    token: &str,
) -> Result<UserInfo, crate::auth::tokens::TokenError> {
    srv.tokens
        .authenticate(
            &srv.objects.store,
            token,
            &[],
            jiff::Timestamp::now().as_second(),
        )
        .map(|c| c.user())
}

/// Applies `Impersonate-User`/`Impersonate-Group` headers, when the caller may `impersonate`
/// that user and those groups, as kube-apiserver does.
fn impersonate(srv: &ApiServer, headers: &HeaderMap, user: UserInfo) -> ApiResult<UserInfo> {
    let Some(target) = headers.get("Impersonate-User") else {
        if headers.get("Impersonate-Group").is_some() {
            return Err(ApiError::bad_request(
                "Impersonate-Group requires Impersonate-User",
            ));
        }
        return Ok(user);
    };
    let target = target
        .to_str()
        .map_err(|_| ApiError::bad_request("Impersonate-User is not valid text"))?
        .to_string();
    let groups: Vec<String> = headers
        .get_all("Impersonate-Group")
        .iter()
        .filter_map(|v| v.to_str().ok().map(String::from))
        .collect();
    let check = |resource: &str, name: &str| -> ApiResult<()> {
        let attrs = Attributes {
            verb: "impersonate".into(),
            resource_request: true,
            resource: resource.into(),
            name: name.into(),
            ..Default::default()
        };
        if srv.objects.authz.authorize(&user, &attrs)?.allowed {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "{resource} \"{name}\" is forbidden: User \"{}\" cannot impersonate resource \"{resource}\" in API group \"\" at the cluster scope",
                user.name
            )))
        }
    };
    check("users", &target)?;
    for g in &groups {
        check("groups", g)?;
    }
    Ok(UserInfo::new(target, groups, "impersonation"))
}

fn verb_for(method: &Method, rp: &ResourcePath, q: &Query) -> ApiResult<&'static str> {
    Ok(match (method.as_str(), rp.name.is_some()) {
        ("GET", _) if q.flag("watch") => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", false) => "create",
        // TokenRequest is a create on a subresource of a named ServiceAccount.
        ("POST", true) if rp.subresource.as_deref() == Some("token") => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        (m, _) => return Err(ApiError::method_not_supported(&rp.group, &rp.resource, m)),
    })
}

/// The name a list or watch is limited to by `fieldSelector=metadata.name=NAME`, which
/// kube-apiserver authorizes as a request for that name, so a Role's `resourceNames` allows an
/// informer scoped to one object. Empty when the selector does not pin one valid name.
fn name_from_field_selector(selector: &str) -> String {
    // The parser the list itself filters with, so both read the selector the same way.
    crate::selectors::FieldSelector::parse(selector, &|_| true)
        .ok()
        .and_then(|fs| {
            fs.requirements
                .into_iter()
                .find(|r| r.field == "metadata.name" && !r.negate)
        })
        .map(|r| r.value)
        .filter(|name| {
            !name.is_empty() && !matches!(name.as_str(), "." | "..") && !name.contains(['/', '%'])
        })
        .unwrap_or_default()
}

fn forbidden_message(user: &UserInfo, attrs: &Attributes) -> String {
    if !attrs.resource_request {
        return format!(
            "forbidden: User \"{}\" cannot {} path \"{}\"",
            user.name, attrs.verb, attrs.path
        );
    }
    let res = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    let subject = if attrs.name.is_empty() {
        res.clone()
    } else {
        format!(
            "{} \"{}\"",
            qualified(&attrs.api_group, &attrs.resource),
            attrs.name
        )
    };
    let scope = if attrs.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", attrs.namespace)
    };
    format!(
        "{subject} is forbidden: User \"{}\" cannot {} resource \"{res}\" in API group \"{}\" {scope}",
        user.name, attrs.verb, attrs.api_group
    )
}

async fn read_body(srv: &ApiServer, body: Body) -> ApiResult<Bytes> {
    // Past the limit the rest of the body is read and dropped (up to a bound), so the client,
    // still sending, receives the 413 instead of a reset stream.
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::bad_request(format!("error reading the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= srv.max_body {
                buf.extend_from_slice(&data);
            } else if seen > srv.max_body.saturating_mul(8) {
                break;
            }
        }
    }
    if seen > srv.max_body {
        return Err(ApiError::too_large(srv.max_body));
    }
    Ok(buf.freeze())
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// A ManifestWork created, or replaced with a new spec, while this server exports traces
/// carries the writer's trace context and the generation it writes in annotations, so that the
/// agent's pass over that generation, in another process and reached through a watch rather
/// than a request, continues the same trace. A replacement that keeps the spec keeps the
/// stored annotations (so a no-op PUT stays a no-op). Patches are not stamped; the agent then
/// sees a generation the annotations do not name and starts a trace of its own. None when
/// there is nothing to change.
fn with_trace_annotation(
    srv: &ApiServer,
    write: (&Resource, &str, &str, &str),
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<(HeaderMap, Bytes)> {
    use garrison_telemetry::traces::{ANNOTATION, GENERATION_ANNOTATION};
    let (res, verb, ns, sub) = write;
    if res.group != "work.open-cluster-management.io"
        || res.plural != "manifestworks"
        || !sub.is_empty()
        || !matches!(verb, "create" | "update")
        || !garrison_telemetry::traces::enabled()
    {
        return None;
    }
    let mut obj = decode_object(headers, body).ok()?;
    let stamp: Vec<(&str, Option<String>)> = if verb == "create" {
        vec![
            (
                ANNOTATION,
                garrison_telemetry::traces::current_traceparent(),
            ),
            (GENERATION_ANNOTATION, Some("1".into())),
        ]
    } else {
        let name = obj.pointer("/metadata/name")?.as_str()?.to_string();
        let old = srv.objects.get(res, ns, &name).ok()?;
        if old.get("spec") == obj.get("spec") {
            let kept = |k: &str| {
                old.pointer("/metadata/annotations")
                    .and_then(|a| a.get(k))
                    .and_then(Value::as_str)
                    .map(String::from)
            };
            vec![
                (ANNOTATION, kept(ANNOTATION)),
                (GENERATION_ANNOTATION, kept(GENERATION_ANNOTATION)),
            ]
        } else {
            let next = old.pointer("/metadata/generation")?.as_i64()? + 1;
            vec![
                (
                    ANNOTATION,
                    garrison_telemetry::traces::current_traceparent(),
                ),
                (GENERATION_ANNOTATION, Some(next.to_string())),
            ]
        }
    };
    let meta = obj.get_mut("metadata")?.as_object_mut()?;
    let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
    let annotations = annotations.as_object_mut()?;
    for (k, v) in stamp {
        match v {
            Some(v) => annotations.insert(k.into(), json!(v)),
            None => annotations.remove(k),
        };
    }
    let mut headers = headers.clone();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Some((headers, Bytes::from(serde_json::to_vec(&obj).ok()?)))
}

/// Media types accepted for create and update bodies.
const OBJECT_TYPES: &str =
    "application/json, application/yaml, application/vnd.kubernetes.protobuf";

/// Decodes a create/update body by content type.
fn decode_object(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    let ct = media_type(headers);
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    let v: Value = match ct.as_str() {
        "application/json" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?,
        crate::protobuf::MEDIA_TYPE => crate::protobuf::decode(body)
            .map_err(|e| ApiError::bad_request(format!("cannot decode the protobuf body: {e}")))?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_yaml::from_slice(body)
            .map_err(|e| {
                ApiError::bad_request(format!("couldn't get version/kind; yaml parse error: {e}"))
            })?,
        other => return Err(ApiError::unsupported_media_type(other, OBJECT_TYPES)),
    };
    if !v.is_object() {
        return Err(ApiError::bad_request("the request body must be an object"));
    }
    Ok(v)
}

async fn serve(
    srv: &Arc<ApiServer>,
    req: Request<Body>,
    peer: &PeerIdentity,
    entry: &mut AuditEntry,
) -> ApiResult<Response> {
    let path = req.uri().path().to_string();
    if is_health(&path) {
        return health(srv, &path, req.uri().query());
    }
    let extension = srv
        .extensions
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .find(|e| e.serves(&path))
        .cloned();
    if extension.is_some() && req.method() == Method::POST {
        match path.as_str() {
            web::LOGIN => {
                let (resp, user) = web::login(srv, req).await;
                if let Some(u) = user {
                    entry.user = u.name;
                    entry.groups = u.groups;
                }
                return Ok(resp);
            }
            web::LOGOUT => return Ok(web::logout(req).await),
            _ => {}
        }
    }
    let mut session = false;
    let user = match (authenticate(srv, &path, req.headers(), peer), &extension) {
        (Ok(user), _) => user,
        // No certificate and no bearer token: an extension's GET may come from a browser.
        (Err(e), Some(ext))
            if peer.user.is_none() && !req.headers().contains_key(header::AUTHORIZATION) =>
        {
            if let Some(user) = web::session_user(srv, req.method(), req.headers()) {
                session = true;
                user
            } else if ext.public(&path) {
                UserInfo {
                    name: crate::bootstrap::ANONYMOUS.into(),
                    groups: vec![crate::bootstrap::UNAUTHENTICATED.into()],
                    method: "anonymous",
                }
            } else if web::is_page(&path) && req.method() == Method::GET {
                let why = if web::session_token(req.headers()).is_some() {
                    "?error=expired"
                } else {
                    ""
                };
                return Ok(web::redirect(&format!("{}{why}", web::LOGIN)));
            } else {
                return Err(e);
            }
        }
        (Err(e), _) => return Err(e),
    };
    let user = impersonate(srv, req.headers(), user)?;
    entry.user = user.name.clone();
    entry.groups = user.groups.clone();
    if let Some(ext) = extension {
        let query = req.uri().query().map(String::from);
        return serve_extension(srv, ext, req.method().clone(), path, query, &user, session).await;
    }
    let q = Query::parse(req.uri().query())?;
    let target = request_info::parse(&path).map_err(ApiError::no_route)?;
    let rp = match target {
        Target::NonResource => {
            let attrs = Attributes {
                verb: req.method().as_str().to_lowercase(),
                path: path.clone(),
                ..Default::default()
            };
            if !srv.objects.authz.authorize(&user, &attrs)?.allowed {
                return Err(ApiError::forbidden(forbidden_message(&user, &attrs)));
            }
            if req.method() != Method::GET {
                return Err(ApiError::method_not_supported(
                    "",
                    &path,
                    req.method().as_str(),
                ));
            }
            if path == METRICS_PATH {
                return Ok(metrics_response());
            }
            return discovery::serve(srv, &path, req.headers());
        }
        Target::Resource(rp) => rp,
    };
    let res = srv
        .objects
        .registry
        .get(&rp.group, &rp.version, &rp.resource)
        .ok_or_else(|| ApiError::no_route("the server could not find the requested resource"))?;
    if let Some(sub) = &rp.subresource
        && !res.subresources.contains(&sub.as_str())
    {
        return Err(ApiError::no_route(
            "the server could not find the requested resource",
        ));
    }
    if rp.namespace.is_some() && !res.namespaced {
        return Err(ApiError::no_route(
            "the server could not find the requested resource",
        ));
    }
    let verb = verb_for(req.method(), &rp, &q)?;
    // `serviceaccounts/<name>/token` is TokenRequest, a create; nothing else is served there.
    if rp.subresource.as_deref() == Some("token") && verb != "create" {
        return Err(ApiError::method_not_supported(
            &res.group,
            &format!("{}/token", res.plural),
            req.method().as_str(),
        ));
    }
    if res.virtual_only && verb != "create" {
        return Err(ApiError::method_not_supported(
            &res.group,
            &res.plural,
            req.method().as_str(),
        ));
    }
    let ns = rp.namespace.clone().unwrap_or_default();
    if res.namespaced && ns.is_empty() && !matches!(verb, "list" | "watch") {
        return Err(ApiError::no_route(
            "the server could not find the requested resource",
        ));
    }
    let name = rp.name.clone().unwrap_or_default();
    let sub = rp.subresource.clone().unwrap_or_default();
    entry.verb = verb.into();
    entry.api_group = res.group.clone();
    entry.resource = if sub.is_empty() {
        res.plural.clone()
    } else {
        format!("{}/{sub}", res.plural)
    };
    entry.namespace = ns.clone();
    entry.name = name.clone();
    entry.path.clear();
    let attrs = Attributes {
        verb: verb.into(),
        resource_request: true,
        namespace: ns.clone(),
        api_group: res.group.clone(),
        resource: res.plural.clone(),
        subresource: sub.clone(),
        name: if matches!(verb, "list" | "watch") {
            name_from_field_selector(q.get("fieldSelector").unwrap_or(""))
        } else {
            name.clone()
        },
        path: String::new(),
    };
    if !srv.objects.authz.authorize(&user, &attrs)?.allowed {
        return Err(
            ApiError::forbidden(forbidden_message(&user, &attrs)).with_subject(
                &res.group,
                &res.plural,
                &name,
            ),
        );
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let wants_table = accept.contains("as=Table");
    let wants_meta = accept.contains("as=PartialObjectMetadata");
    match verb {
        "get" => {
            let obj = srv.objects.get(&res, &ns, &name)?;
            if wants_table {
                return Ok(json_response(
                    200,
                    &table::to_table(&res, &[obj], q.get("includeObject"), None, None),
                ));
            }
            if wants_meta {
                return Ok(json_response(200, &partial_metadata(&obj)));
            }
            Ok(json_response(200, &obj))
        }
        "list" => {
            let opts = list_options(&res, &q)?;
            let (items, rv, cont) = srv.objects.list(&res, rp.namespace.as_deref(), &opts)?;
            if wants_table {
                return Ok(json_response(
                    200,
                    &table::to_table(&res, &items, q.get("includeObject"), Some(rv), cont),
                ));
            }
            let mut meta = json!({"resourceVersion": rv.to_string()});
            if let Some(c) = cont {
                meta["continue"] = json!(c);
            }
            if wants_meta {
                let items: Vec<Value> = items.iter().map(partial_metadata).collect();
                return Ok(json_response(
                    200,
                    &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items}),
                ));
            }
            Ok(json_response(
                200,
                &json!({"kind": res.list_kind, "apiVersion": res.api_version(), "metadata": meta, "items": items}),
            ))
        }
        "watch" => {
            let opts = list_options(&res, &q)?;
            watch::serve(
                srv.clone(),
                res,
                rp.namespace.clone(),
                opts,
                &q,
                wants_table,
            )
        }
        "create" | "update" | "patch" => {
            let headers = req.headers().clone();
            let body = read_body(srv, req.into_body()).await?;
            let mut ctx = WriteCtx {
                user: &user,
                manager: field_manager(&q, &headers, verb)?,
                dry_run: dry_run(&q)?,
                field_validation: FieldValidation::parse(q.get("fieldValidation"))?,
                warnings: vec![],
            };
            if verb == "create" && sub == "token" {
                let obj = decode_object(&headers, &body)?;
                let answered = reviews::token_request(srv, &ns, &name, obj)?;
                return Ok(json_response(201, &answered));
            }
            if verb == "create" && res.virtual_only {
                let obj = decode_object(&headers, &body)?;
                let answered = reviews::answer(srv, &res, &user, &ns, obj)?;
                return Ok(json_response(201, &answered));
            }
            let stamped = with_trace_annotation(srv, (&res, verb, &ns, &sub), &headers, &body);
            let (headers, body) = match stamped {
                Some(stamped) => stamped,
                None => (headers, body),
            };
            let write = Write {
                res: &res,
                ns: &ns,
                name: &name,
                sub: &sub,
                verb,
                headers: &headers,
                body: &body,
                force: q.flag("force"),
            };
            let hooked = match verb {
                "create" => srv.webhooks.may_match("CREATE", &res, &sub),
                "update" => srv.webhooks.may_match("UPDATE", &res, &sub),
                _ => {
                    srv.webhooks.may_match("UPDATE", &res, &sub)
                        || srv.webhooks.may_match("CREATE", &res, &sub)
                }
            };
            let (code, obj) = if hooked {
                write_through_webhooks(srv, &write, &mut ctx).await?
            } else {
                write.run(srv, &mut ctx)?
            };
            let mut resp = json_response(code, &obj);
            add_warnings(&mut resp, &ctx.warnings);
            Ok(resp)
        }
        "delete" | "deletecollection" => {
            let headers = req.headers().clone();
            let body = read_body(srv, req.into_body()).await?;
            let opts = delete_options(&q, &headers, &body)?;
            if srv.webhooks.may_match("DELETE", &res, "") {
                return delete_through_webhooks(srv, &res, &rp, &name, &q, &user, opts).await;
            }
            if verb == "delete" {
                let obj = srv.objects.delete(&res, &ns, &name, &opts)?;
                return Ok(json_response(200, &obj));
            }
            let list = list_options(&res, &q)?;
            let items =
                srv.objects
                    .delete_collection(&res, rp.namespace.as_deref(), &list, &opts)?;
            let rv = srv.objects.store.current_rv()?;
            Ok(json_response(
                200,
                &json!({"kind": res.list_kind, "apiVersion": res.api_version(), "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
            ))
        }
        _ => Err(ApiError::method_not_supported(
            &res.group,
            &res.plural,
            verb,
        )),
    }
}

/// One create, update or patch request, decoded from the wire.
struct Write<'a> {
    res: &'a Resource,
    ns: &'a str,
    name: &'a str,
    sub: &'a str,
    verb: &'a str,
    headers: &'a HeaderMap,
    body: &'a Bytes,
    force: bool,
}

impl Write<'_> {
    /// Runs the write against the store (or as a dry run, per `ctx`).
    fn run(&self, srv: &ApiServer, ctx: &mut WriteCtx<'_>) -> ApiResult<(u16, Value)> {
        let (res, ns, name, sub) = (self.res, self.ns, self.name, self.sub);
        match self.verb {
            "create" => {
                let obj = decode_object(self.headers, self.body)?;
                Ok((201, srv.objects.create(res, ns, obj, ctx)?))
            }
            "update" => {
                let obj = decode_object(self.headers, self.body)?;
                Ok((200, srv.objects.update(res, ns, name, sub, obj, ctx)?))
            }
            _ => {
                let ct = media_type(self.headers);
                if !matches!(
                    ct.as_str(),
                    "application/json-patch+json"
                        | "application/merge-patch+json"
                        | "application/strategic-merge-patch+json"
                        | "application/apply-patch+yaml"
                ) {
                    let accepted = if res.is_custom() {
                        crate::ops::PATCH_TYPES_CUSTOM
                    } else {
                        crate::ops::PATCH_TYPES
                    };
                    return Err(ApiError::unsupported_media_type(&ct, accepted));
                }
                srv.objects
                    .patch(res, ns, name, sub, &ct, self.body, self.force, ctx)
            }
        }
    }
}

/// How many times a write is prepared again when its object changes while webhooks review it.
const ADMISSION_ATTEMPTS: usize = 5;

/// A write that admission webhooks must see, in kube-apiserver's order: the server prepares the
/// object (decoding, defaults, its own admission) as a dry run, the webhooks review and may
/// patch it, and it is stored only if the object it was prepared from is still current;
/// otherwise it is prepared and reviewed again, as kube-apiserver retries a guaranteed update.
async fn write_through_webhooks(
    srv: &ApiServer,
    write: &Write<'_>,
    ctx: &mut WriteCtx<'_>,
) -> ApiResult<(u16, Value)> {
    let res = write.res;
    let dry_run = ctx.dry_run;
    for _ in 0..ADMISSION_ATTEMPTS {
        // Warnings of an attempt that is made again are not given twice.
        let warned = ctx.warnings.len();
        let old = if write.verb == "create" {
            None
        } else {
            srv.objects.store.get(&res.key(), write.ns, write.name)?
        };
        ctx.dry_run = true;
        let prepared = write.run(srv, ctx);
        ctx.dry_run = dry_run;
        let (code, prepared) = prepared?;
        let prepared_warnings = ctx.warnings.len();
        // A server-side apply of a missing object creates it.
        let old = old.filter(|_| code != 201);
        let old_rv = old
            .as_ref()
            .and_then(|o| o["metadata"]["resourceVersion"].as_str())
            .map(String::from);
        if old_rv.is_some() && old_rv.as_deref() != prepared["metadata"]["resourceVersion"].as_str()
        {
            ctx.warnings.truncate(warned);
            continue;
        }
        let old = old.map(|o| srv.objects.present(res, o));
        let name = prepared["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let req = crate::webhooks::Request {
            operation: if old.is_some() { "UPDATE" } else { "CREATE" },
            resource: res,
            subresource: write.sub,
            namespace: write.ns,
            name: &name,
            user: ctx.user,
            object: Some(prepared.clone()),
            old: old.as_ref(),
            dry_run,
        };
        let labels = |n: &str| namespace_labels(srv, n);
        let admitted = srv
            .webhooks
            .admit(req, &labels, &mut ctx.warnings)
            .await?
            .unwrap_or_else(|| prepared.clone());
        if dry_run {
            return Ok((code, admitted));
        }
        if admitted != prepared {
            // A webhook changed the object: it goes through the server's whole write path
            // again (type, decoding, its own admission, the status-only rule of subresources,
            // generation), pinned to the version it was prepared from, as kube-apiserver
            // validates after mutating admission. That path gives the decoding's warnings
            // again; the webhooks' stay.
            ctx.warnings.drain(warned..prepared_warnings);
            let written = match &old_rv {
                None => srv.objects.create(res, write.ns, admitted, ctx),
                Some(rv) => {
                    let mut body = admitted;
                    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                        meta.insert("resourceVersion".into(), json!(rv));
                    }
                    srv.objects
                        .update(res, write.ns, &name, write.sub, body, ctx)
                }
            };
            match written {
                Err(e)
                    if e.code == 409
                        && old_rv.is_some()
                        && e.message.contains("has been modified") =>
                {
                    ctx.warnings.truncate(warned);
                    continue;
                }
                r => return Ok((code, r?)),
            }
        }
        if let Some(stored) =
            srv.objects
                .commit_admitted(res, write.ns, old_rv.as_deref(), admitted)?
        {
            return Ok((code, stored));
        }
        ctx.warnings.truncate(warned);
    }
    Err(ApiError::conflict(
        &res.group,
        &res.plural,
        write.name,
        "the object kept changing while admission webhooks reviewed the write; please try again",
    ))
}

/// A delete (or each delete of a collection) that DELETE webhooks must see: each object is
/// reviewed as stored, then deleted only if it is still that version (a changed object is left
/// for the client to retry, as a resourceVersion precondition would).
async fn delete_through_webhooks(
    srv: &ApiServer,
    res: &Resource,
    rp: &ResourcePath,
    name: &str,
    q: &Query,
    user: &UserInfo,
    opts: crate::ops::DeleteOptions,
) -> ApiResult<Response> {
    let single = rp.name.is_some();
    let doomed = if single {
        vec![
            srv.objects
                .get(res, rp.namespace.as_deref().unwrap_or_default(), name)?,
        ]
    } else {
        let mut list = list_options(res, q)?;
        list.limit = 0;
        list.continue_token = None;
        srv.objects.list(res, rp.namespace.as_deref(), &list)?.0
    };
    let mut deleted = Vec::with_capacity(doomed.len());
    let mut warnings = vec![];
    for old in &doomed {
        let item_ns = old["metadata"]["namespace"].as_str().unwrap_or_default();
        let item_name = old["metadata"]["name"].as_str().unwrap_or_default();
        let req = crate::webhooks::Request {
            operation: "DELETE",
            resource: res,
            subresource: "",
            namespace: item_ns,
            name: item_name,
            user,
            object: None,
            old: Some(old),
            dry_run: opts.dry_run,
        };
        let labels = |n: &str| namespace_labels(srv, n);
        srv.webhooks.admit(req, &labels, &mut warnings).await?;
        let mut pinned = opts.clone();
        let reviewed_rv = old["metadata"]["resourceVersion"]
            .as_str()
            .map(String::from);
        if let (Some(wanted), Some(have)) = (&opts.resource_version, &reviewed_rv)
            && wanted != have
        {
            return Err(ApiError::conflict(
                &res.group,
                &res.plural,
                item_name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        pinned.resource_version = reviewed_rv;
        match srv.objects.delete(res, item_ns, item_name, &pinned) {
            Ok(v) => deleted.push(v),
            Err(e) if !single && (e.code == 404 || e.code == 409) => {}
            Err(e) => return Err(e),
        }
    }
    let mut resp = if single {
        json_response(200, &deleted.pop().unwrap_or(Value::Null))
    } else {
        let rv = srv.objects.store.current_rv()?;
        json_response(
            200,
            &json!({"kind": res.list_kind, "apiVersion": res.api_version(), "metadata": {"resourceVersion": rv.to_string()}, "items": deleted}),
        )
    };
    add_warnings(&mut resp, &warnings);
    Ok(resp)
}

/// The labels of namespace `ns`, for webhooks' namespaceSelectors.
fn namespace_labels(
    srv: &ApiServer,
    ns: &str,
) -> ApiResult<std::collections::BTreeMap<String, String>> {
    Ok(srv
        .objects
        .store
        .get("/namespaces", "", ns)?
        .map(|n| crate::selectors::labels_of(&n))
        .unwrap_or_default())
}

fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
}

fn dry_run(q: &Query) -> ApiResult<bool> {
    match q.get("dryRun") {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "dryRun: unsupported value {other:?}: supported values: \"All\""
        ))),
    }
}

fn field_manager(q: &Query, headers: &HeaderMap, verb: &str) -> ApiResult<String> {
    if let Some(m) = q.get("fieldManager") {
        if m.is_empty() || m.len() > 128 || m.chars().any(|c| c.is_control()) {
            return Err(ApiError::bad_request(
                "fieldManager: must be a non-empty string of printable characters, at most 128 long",
            ));
        }
        return Ok(m.to_string());
    }
    if verb == "patch" && media_type(headers) == "application/apply-patch+yaml" {
        return Ok(String::new());
    }
    // kube-apiserver derives the default manager from the user agent's program name.
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    let prog = ua.split('/').next().unwrap_or("unknown").trim();
    Ok(if prog.is_empty() {
        "unknown".into()
    } else {
        prog.chars().take(128).collect()
    })
}

/// Builds list options from the query, refusing unsupported field selectors.
pub fn list_options(res: &Resource, q: &Query) -> ApiResult<ListOptions> {
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("unable to parse labelSelector: {e}")))?;
    let supported = |f: &str| supported_field(res, f);
    let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), &supported)
        .map_err(ApiError::bad_request)?;
    let limit = match q.get("limit") {
        None | Some("") => 0,
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("limit: invalid value {l:?}")))?
            .max(0) as usize,
    };
    Ok(ListOptions {
        labels,
        fields,
        limit,
        continue_token: q
            .get("continue")
            .filter(|c| !c.is_empty())
            .map(String::from),
    })
}

/// Whether a resource's field selectors may name `field`. The watch history keeps these fields
/// of an object's previous state (`selectors::selectable`), so the lists live there.
fn supported_field(res: &Resource, field: &str) -> bool {
    use crate::resources::Builtin as B;
    use crate::selectors::{CSR_FIELDS, EVENT_FIELDS, NAMESPACE_FIELDS, SECRET_FIELDS};
    if field == "metadata.name" || (field == "metadata.namespace" && res.namespaced) {
        return true;
    }
    let fields = match res.builtin {
        Some(B::Secret) => SECRET_FIELDS,
        Some(B::Namespace) => NAMESPACE_FIELDS,
        Some(B::CertificateSigningRequest) => CSR_FIELDS,
        Some(B::Event) => EVENT_FIELDS,
        _ => &[],
    };
    fields.contains(&field)
}

fn delete_options(q: &Query, headers: &HeaderMap, body: &[u8]) -> ApiResult<DeleteOptions> {
    let mut opts = DeleteOptions {
        propagation: q.get("propagationPolicy").map(String::from),
        dry_run: dry_run(q)?,
        ..Default::default()
    };
    if !body.is_empty() {
        let ct = media_type(headers);
        let v: Value = match ct.as_str() {
            "application/json" | "" => serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?,
            "application/yaml" => serde_yaml::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?,
            other => {
                return Err(ApiError::unsupported_media_type(
                    other,
                    "application/json, application/yaml",
                ));
            }
        };
        if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
            opts.propagation = Some(p.into());
        }
        if v.get("orphanDependents").and_then(Value::as_bool) == Some(true)
            && opts.propagation.is_none()
        {
            opts.propagation = Some("Orphan".into());
        }
        opts.uid = v
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(String::from);
        opts.resource_version = v
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(String::from);
        if let Some(d) = v.get("dryRun").and_then(Value::as_array) {
            opts.dry_run |= d.iter().any(|x| x == "All");
        }
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_verbs_are_a_fixed_set() {
        assert_eq!(verb_label("deletecollection"), "deletecollection");
        assert_eq!(verb_label("post"), "post");
        for made_up in ["foo1", "GET", "", "get ", "trace"] {
            assert_eq!(verb_label(made_up), "other", "{made_up:?}");
        }
    }
}
