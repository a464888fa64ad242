//! The API server's accept loop, which turns a verified client certificate into the
//! connection's identity and cuts connections whose certificate expires or is revoked. The
//! TLS configuration itself lives in `garrison-k8s`, shared with the agent and the CLI.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use garrison_k8s::tls::{
    TlsError, certs_from_pem, key_from_pem, provider, serve_https, server_config,
};

use crate::auth::UserInfo;
use crate::auth::authn::{parse_certificate, user_from_certificate};
use crate::http::{ConnectionPolicy, PeerIdentity};

/// Serves `app` over TLS on `listener` until `shutdown` turns true, then stops accepting and
/// gives open connections a few seconds to finish.
///
/// A connection made with a client certificate lives no longer than the certificate: it is
/// closed when the certificate expires and, with a `policy`, as soon as the policy's gate stops
/// admitting its user (a denied or deleted cluster). Watches on it end with it, so a revoked
/// agent cannot keep reading through a connection opened before the revocation.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: axum::Router,
    mut shutdown: watch::Receiver<bool>,
    policy: Option<ConnectionPolicy>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let (conn_stop_tx, conn_stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let (tcp, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let mut stop = conn_stop_rx.clone();
        let policy = policy.clone();
        tasks.spawn(async move {
            let stream = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %addr, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let (identity, not_after) = identity_of(&stream, addr);
            let user = identity.user.clone();
            let svc = tower::ServiceBuilder::new().layer(axum::extract::Extension(identity)).service(app);
            let svc = hyper_util::service::TowerToHyperService::new(svc);
            let builder = connection_builder();
            let conn = builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), svc);
            tokio::pin!(conn);
            let expired = until_expiry(not_after);
            let revoked = revoked(user, policy);
            tokio::select! {
                r = conn.as_mut() => { if let Err(e) = r { tracing::debug!(peer = %addr, error = %e, "connection ended with an error"); } }
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                }
                // Dropping the connection closes it at once, with every stream on it.
                _ = expired => tracing::info!(peer = %addr, "closed a connection: its client certificate expired"),
                user = revoked => tracing::info!(peer = %addr, %user, "closed a connection: its client certificate was revoked"),
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    let _ = conn_stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(6), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
}

/// How long an HTTP/2 peer may leave a ping unanswered before its connection is dropped, and
/// how often idle connections are pinged.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// The most a stream may queue for a peer that does not read (h2's default is 400 KiB): a
/// fleet's agents hold thousands of watches, and a slow reader should wait, not grow the hub.
const MAX_SEND_BUFFER: usize = 64 * 1024;

/// The per-connection HTTP server. Each agent keeps one HTTP/2 connection open with its
/// watches on it, so at fleet scale what an idle connection holds is multiplied by the fleet:
/// dead peers (gone without a FIN) are found by pings and dropped, and a stream's send queue is
/// bounded.
fn connection_builder() -> hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor> {
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(Some(KEEPALIVE_INTERVAL))
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .max_send_buf_size(MAX_SEND_BUFFER);
    builder
}

/// Resolves when the certificate that authenticated a connection expires; never without one.
async fn until_expiry(not_after: Option<i64>) {
    let Some(not_after) = not_after else {
        return std::future::pending().await;
    };
    let now = jiff::Timestamp::now().as_second();
    tokio::time::sleep(Duration::from_secs(
        not_after.saturating_sub(now).max(0) as u64
    ))
    .await;
}

/// Resolves, with the user's name, once `policy`'s gate refuses the connection's certificate
/// user; never for a connection without one or a server without a policy.
async fn revoked(user: Option<UserInfo>, policy: Option<ConnectionPolicy>) -> String {
    let (Some(user), Some(mut policy)) = (user, policy) else {
        return std::future::pending().await;
    };
    // A connection whose user is refused from the start is left to the per-request gate, which
    // answers 401 as kube-apiserver does; only a revocation from now on cuts it. (The receiver
    // is a clone and would otherwise report every revocation since the server started.) This
    // runs at the connection's first poll, before any request on it is admitted.
    policy.revocations.borrow_and_update();
    loop {
        if policy.revocations.changed().await.is_err() {
            return std::future::pending().await;
        }
        if !(policy.gate)(&user) {
            return user.name;
        }
    }
}

/// The connection's identity, and the expiry (Unix seconds) of the certificate that proved it.
fn identity_of(
    stream: &tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    addr: SocketAddr,
) -> (PeerIdentity, Option<i64>) {
    let (_, conn) = stream.get_ref();
    let leaf = conn.peer_certificates().and_then(|certs| certs.first());
    let parsed = leaf.map(|leaf| parse_certificate(leaf));
    let not_after = parsed
        .as_ref()
        .and_then(|c| c.as_ref().ok())
        .map(|c| c.validity().not_after.timestamp());
    let user = parsed.and_then(|c| match c.and_then(|c| user_from_certificate(&c)) {
        Ok(u) => Some(u),
        Err(e) => {
            tracing::info!(peer = %addr, reason = %e, "client certificate not usable");
            None
        }
    });
    (
        PeerIdentity {
            user,
            addr: addr.ip().to_string(),
        },
        not_after,
    )
}
