//! The agent's metrics endpoint (`--metrics-listen`): Prometheus metrics over HTTPS at
//! `/metrics`, for callers the managed cluster itself vouches for, as kube-rbac-proxy does in
//! front of upstream's agents. A bearer token is checked with a TokenReview and the caller's
//! right to `get` the non-resource URL `/metrics` with a SubjectAccessReview, both on the
//! managed cluster's API server; anything else is refused, and a review that cannot be made
//! refuses too.
//!
//! The serving certificate is made at each start by a CA the agent keeps in its directory
//! (`metrics-ca.crt`, and `metrics-ca.key` readable by the agent alone), so scrapers can trust
//! one CA across restarts. It names localhost, the listen address, the host's name, `$POD_IP`
//! and every `--metrics-cert-host`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use garrison_k8s::error::ApiError;
use garrison_k8s::http::{json_response, metrics_response};
use http::{Method, Request, header};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

/// The path served.
pub const PATH: &str = "/metrics";
/// The CA's lifetime.
const CA_LIFETIME_DAYS: i64 = 10 * 365;
/// The serving certificate's lifetime; the endpoint makes a new one at each start.
const LIFETIME_DAYS: i64 = 365;

/// A refusal as a Kubernetes Status, as the hub answers one.
fn refuse(e: ApiError) -> Response {
    json_response(e.code, &e.to_status())
}

/// Who a token stands for, by the managed cluster's TokenReview; None when it stands for no one.
async fn authenticate(spoke: &kube::Client, token: &str) -> Result<Option<UserInfo>, kube::Error> {
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: token.to_string(),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<TokenReview>::all(spoke.clone())
        .create(&PostParams::default(), &review)
        .await?;
    Ok(answer
        .status
        .filter(|s| s.authenticated == Some(true))
        .and_then(|s| s.user))
}

/// Whether `user` may `get` [`PATH`], by the managed cluster's SubjectAccessReview.
async fn authorize(spoke: &kube::Client, user: &UserInfo) -> Result<bool, kube::Error> {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: user.username.clone(),
            groups: user.groups.clone(),
            uid: user.uid.clone(),
            extra: user.extra.clone(),
            non_resource_attributes: Some(NonResourceAttributes {
                path: Some(PATH.into()),
                verb: Some("get".into()),
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(spoke.clone())
        .create(&PostParams::default(), &review)
        .await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

async fn handle(State(spoke): State<Arc<kube::Client>>, req: Request<Body>) -> Response {
    if req.uri().path() != PATH {
        return refuse(ApiError::no_route("only /metrics is served here"));
    }
    if req.method() != Method::GET {
        return refuse(ApiError::method_not_supported(
            "",
            req.uri().path(),
            req.method().as_str(),
        ));
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return refuse(ApiError::unauthorized());
    };
    let user = match authenticate(&spoke, token).await {
        Ok(Some(u)) => u,
        Ok(None) => return refuse(ApiError::unauthorized()),
        Err(e) => {
            tracing::warn!(error = %e, "cannot review a metrics caller's token; refusing");
            return refuse(ApiError::internal("the cluster could not review the token"));
        }
    };
    let name = user.username.clone().unwrap_or_default();
    match authorize(&spoke, &user).await {
        Ok(true) => metrics_response(),
        Ok(false) => refuse(ApiError::forbidden(format!(
            "forbidden: User \"{name}\" cannot get path \"{PATH}\""
        ))),
        Err(e) => {
            tracing::warn!(error = %e, "cannot review a metrics caller's access; refusing");
            refuse(ApiError::internal(
                "the cluster could not review the access",
            ))
        }
    }
}

/// The CA kept in `dir`, made the first time.
fn load_or_make_ca(dir: &Path) -> Result<garrison_k8s::certs::Pair> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let (cert_file, key_file) = (dir.join("metrics-ca.crt"), dir.join("metrics-ca.key"));
    if let (Ok(cert_pem), Ok(key_pem)) = (
        std::fs::read_to_string(&cert_file),
        std::fs::read_to_string(&key_file),
    ) {
        return Ok(garrison_k8s::certs::Pair { cert_pem, key_pem });
    }
    let ca = garrison_k8s::certs::new_ca(
        "garrison-agent-metrics-ca",
        time::Duration::days(CA_LIFETIME_DAYS),
    )?;
    let mut key = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&key_file)
        .with_context(|| format!("cannot write {}", key_file.display()))?;
    key.write_all(ca.key_pem.as_bytes())
        .with_context(|| format!("cannot write {}", key_file.display()))?;
    std::fs::write(&cert_file, &ca.cert_pem)
        .with_context(|| format!("cannot write {}", cert_file.display()))?;
    Ok(ca)
}

/// The names the serving certificate holds.
fn hosts(listen: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if !listen.ip().is_unspecified() {
        hosts.push(listen.ip().to_string());
    }
    let hostname = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok());
    for h in [hostname, std::env::var("POD_IP").ok()]
        .into_iter()
        .flatten()
        .map(|h| h.trim().to_string())
        .chain(extra.iter().cloned())
    {
        if !h.is_empty() && !hosts.contains(&h) {
            hosts.push(h);
        }
    }
    hosts
}

fn tls_config(
    listen: SocketAddr,
    dir: &Path,
    extra_hosts: &[String],
) -> Result<Arc<rustls::ServerConfig>> {
    use garrison_k8s::{certs, tls};
    let ca = load_or_make_ca(dir)?;
    let serving = certs::new_serving(
        &ca,
        &hosts(listen, extra_hosts),
        time::Duration::days(LIFETIME_DAYS),
    )
    .context("cannot make the metrics serving certificate (is metrics-ca.key intact?)")?;
    let chain = tls::certs_from_pem("metrics certificate", serving.cert_pem.as_bytes())?;
    let key = tls::key_from_pem("metrics key", serving.key_pem.as_bytes())?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Binds `listen` and serves the metrics until `stop` turns true, reviewing callers with
/// `spoke`. The serving CA is kept in `dir`; the certificate also names `extra_hosts`.
pub async fn serve(
    listen: SocketAddr,
    dir: &Path,
    extra_hosts: &[String],
    spoke: kube::Client,
    stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>> {
    garrison_telemetry::metrics().agent_counters();
    let tls = tls_config(listen, dir, extra_hosts)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on --metrics-listen {listen}"))?;
    tracing::info!(%listen, ca = %dir.join("metrics-ca.crt").display(), "serving metrics at /metrics");
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(Arc::new(spoke));
    Ok(tokio::spawn(garrison_k8s::tls::serve_https(
        listener, tls, app, stop,
    )))
}
