//! Reaching the hub: discovery, which trusts nothing but the token and the CA pin, and the
//! clients built afterwards from the discovered CA.
//!
//! At join, the agent reads the hub's `kube-public/cluster-info` without credentials, checks
//! its JWS signature with the bootstrap token and the CA it names against the pin, and from
//! then on trusts exactly that CA. This is kubeadm's token discovery, so a Garrison hub and a
//! kube-apiserver (which presents only its leaf certificate) are joined the same way. No
//! credential leaves the agent before the signature and the pin match.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;

use crate::state::Credentials;

/// Parses and normalises a `--ca-cert-hash`: `sha256:` and 64 hex digits.
pub fn parse_pin(pin: &str) -> Result<String> {
    let hex = pin.strip_prefix("sha256:").ok_or_else(|| {
        anyhow!("--ca-cert-hash must start with sha256: (as printed by garrison init or garrison token create)")
    })?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--ca-cert-hash must be sha256: followed by 64 hex digits");
    }
    Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
}

/// The pin of a DER certificate: `sha256:` of its SubjectPublicKeyInfo.
pub fn pin_of(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(garrison_pki::csr::sha256_hex(cert.public_key().raw))
}

/// Host and port of an `https://` URL.
pub fn host_port(url: &str) -> Result<(String, u16)> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| anyhow!("--hub {url:?} is not a URL (expected https://HOST:PORT)"))?;
    if uri.scheme_str() != Some("https") {
        bail!("--hub {url:?} must be an https:// URL");
    }
    let host = uri
        .host()
        .ok_or_else(|| anyhow!("--hub {url:?} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok((host, uri.port_u16().unwrap_or(443)))
}

/// How long discovery waits for the hub to sign `cluster-info` for a token just made.
const SIGNATURE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads `kube-public/cluster-info` anonymously; returns its `kubeconfig` and the signature
/// for `token_id`, if any.
async fn read_cluster_info(
    client: kube::Client,
    token_id: &str,
) -> Result<(String, Option<String>)> {
    use k8s_openapi::api::core::v1::ConfigMap;
    let cm = kube::Api::<ConfigMap>::namespaced(client, "kube-public")
        .get("cluster-info")
        .await?;
    let data = cm.data.unwrap_or_default();
    let kubeconfig = data
        .get("kubeconfig")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| anyhow!("kube-public/cluster-info has no kubeconfig"))?
        .clone();
    Ok((
        kubeconfig,
        data.get(&format!("jws-kubeconfig-{token_id}")).cloned(),
    ))
}

/// The CA certificates (PEM) a cluster-info kubeconfig names.
fn cluster_info_cas(kubeconfig: &str) -> Result<Vec<String>> {
    use base64::Engine;
    let cfg: serde_json::Value = serde_yaml::from_str(kubeconfig)
        .map_err(|e| anyhow!("cluster-info's kubeconfig does not parse: {e}"))?;
    let mut out = Vec::new();
    for c in cfg["clusters"].as_array().into_iter().flatten() {
        let Some(data) = c
            .pointer("/cluster/certificate-authority-data")
            .and_then(|d| d.as_str())
        else {
            continue;
        };
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|_| anyhow!("cluster-info's certificate-authority-data is not base64"))?;
        for item in x509_parser::pem::Pem::iter_from_buffer(&pem) {
            let item = item.map_err(|e| anyhow!("cluster-info's CA is not PEM: {e}"))?;
            if item.label == "CERTIFICATE" {
                out.push(pem_of(&item.contents));
            }
        }
    }
    Ok(out)
}

/// Token discovery, as kubeadm does it: reads `kube-public/cluster-info` without trusting the
/// server and without credentials, checks its JWS signature with the token (so it was written
/// by someone who knows the token) and the CA in it against `pin`, then reads it again trusting
/// that CA and requires the same content. Returns the CA (PEM). Nothing secret is sent: the
/// token leaves the agent only on connections that trust the pinned CA.
pub async fn discover(url: &str, token: &str, pin: &str) -> Result<String> {
    let (token_id, token_secret) = token
        .split_once('.')
        .ok_or_else(|| anyhow!("the token is not of the form <id>.<secret>"))?;
    let mut cfg = kube::Config::new(
        url.parse()
            .map_err(|e| anyhow!("--hub {url} is not a valid URL: {e}"))?,
    );
    cfg.accept_invalid_certs = true;
    cfg.connect_timeout = Some(std::time::Duration::from_secs(10));
    cfg.read_timeout = Some(std::time::Duration::from_secs(30));
    let insecure = kube::Client::try_from(cfg).context("building the discovery client")?;
    let deadline = tokio::time::Instant::now() + SIGNATURE_WAIT;
    let (kubeconfig, signature) = loop {
        let (kubeconfig, signature) =
            read_retrying(&insecure, token_id).await.with_context(|| {
                format!("cannot read kube-public/cluster-info from the hub at {url}")
            })?;
        match signature {
            Some(sig) => break (kubeconfig, sig),
            None if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            None => bail!(
                "the hub at {url} has not signed its cluster-info for token id {token_id:?}: the token is unknown, expired or not made for signing (usage-bootstrap-signing); nothing was sent"
            ),
        }
    };
    if !garrison_pki::jws::verify_detached(&signature, token_id, token_secret, &kubeconfig) {
        bail!(
            "the cluster-info of the hub at {url} is not signed with this token: the hub does not know the token, or someone between is not the hub; nothing was sent"
        );
    }
    let cas = cluster_info_cas(&kubeconfig)?;
    let pinned: Vec<(String, String)> = cas
        .iter()
        .filter_map(|pem| {
            let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
            Some((pin_of(&p.contents)?, pem.clone()))
        })
        .collect();
    let pins: Vec<String> = pinned.iter().map(|(p, _)| p.clone()).collect();
    // Only the pinned CA is trusted: another CA in the same cluster-info (added by whoever can
    // write it, or by another holder of a shared token) must not become a trust anchor.
    let ca: String = pinned
        .iter()
        .filter(|(p, _)| p == pin)
        .map(|(_, pem)| pem.as_str())
        .collect();
    if ca.is_empty() {
        bail!(
            "the hub at {url} does not match --ca-cert-hash {pin} (its cluster-info names {}); nothing was sent. Check the hash with `garrison get hub-info` on the hub",
            if pins.is_empty() {
                "no CA".to_string()
            } else {
                pins.join(", ")
            }
        );
    }
    let trusted = client(url, &ca, Auth::Anonymous).await?;
    let (again, _) = match read_retrying(&trusted, token_id).await {
        Ok(v) => v,
        Err(e) if is_untrusted_certificate(&e) => {
            return Err(e).with_context(|| {
                format!(
                    "the hub at {url} does not present a certificate of the CA in its cluster-info"
                )
            });
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!("cannot read kube-public/cluster-info again from the hub at {url}, trusting the pinned CA")
            });
        }
    };
    if again != kubeconfig {
        bail!("the hub at {url} changed its cluster-info between two reads; try again");
    }
    Ok(ca)
}

/// Whether an error is the server's certificate failing verification (as opposed to the
/// connection failing).
fn is_untrusted_certificate(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}");
    text.contains("invalid peer certificate") || text.contains("certificate verify failed")
}

/// Reads `cluster-info`, retrying a few times (about 15 s in all) when the connection fails
/// rather than the server answering: a busy hub may drop a handshake, and a join should not fail
/// for it. A certificate that fails verification, or an answer, is returned at once.
async fn read_retrying(client: &kube::Client, token_id: &str) -> Result<(String, Option<String>)> {
    let mut delay = std::time::Duration::from_millis(500);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match read_cluster_info(client.clone(), token_id).await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < 5 && !is_untrusted_certificate(&e) && is_connection_error(&e) => {
                tracing::info!(error = %format!("{e:#}"), attempt, "cannot reach the hub; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether an error is the connection failing, with no answer from the server.
fn is_connection_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<kube::Error>(),
            Some(kube::Error::HyperError(_) | kube::Error::Service(_))
        )
    })
}

fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// How the agent authenticates to the hub.
pub enum Auth<'a> {
    /// A bootstrap token.
    Token(&'a str),
    /// Its client certificate.
    Cert(&'a Credentials),
    /// No credentials: only for reading `cluster-info`.
    Anonymous,
}

/// A kube client for the hub at `url`, trusting exactly `ca_pem`.
pub async fn client(url: &str, ca_pem: &str, auth: Auth<'_>) -> Result<kube::Client> {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let user = match auth {
        Auth::Token(t) => json!({"token": t}),
        Auth::Cert(c) => json!({
            "client-certificate-data": b64(&c.cert_pem),
            "client-key-data": b64(&c.key_pem),
        }),
        Auth::Anonymous => json!({}),
    };
    let kubeconfig: kube::config::Kubeconfig = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "hub", "cluster": {"server": url, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": "agent", "user": user}],
        "contexts": [{"name": "hub", "context": {"cluster": "hub", "user": "agent"}}],
        "current-context": "hub",
    }))
    .context("building the hub client configuration")?;
    let mut cfg = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .context("building the hub client configuration")?;
    cfg.connect_timeout = Some(CONNECT_TIMEOUT);
    multiplexed_client(&cfg).context("building the hub client")
}

/// How long a connection to the hub may take to open (TCP and TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request may wait for its response to start (connection and TLS included), as
/// kube's client waited for a read. Pings find dead connections; this finds a hub that holds
/// a request without answering, so a heartbeat never hangs.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How often an HTTP/2 connection is pinged, and how long an answer may take before the
/// connection counts as dead (a hub gone without a FIN, a cut network).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A client that carries all of the agent's requests and watches to the hub over one HTTP/2
/// connection (ALPN `h2`, falling back to HTTP/1.1 for a server without it), with the caller's
/// trace context on each request.
///
/// kube's own client speaks HTTP/1.1 only, so each open watch holds a connection of its own:
/// three to four per agent (works, add-ons, the policy add-on, requests), each a socket, a TLS
/// session and a connection task on the hub. Multiplexed, a fleet of N clusters costs the hub N
/// connections, and an agent cut off by the hub (its certificate revoked) loses everything at
/// once. Dead connections are found by HTTP/2 pings rather than read timeouts, so a quiet watch
/// is not cut.
fn multiplexed_client(cfg: &kube::Config) -> Result<kube::Client> {
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    use kube::client::ConfigExt;
    let tls = cfg.rustls_client_config()?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_all_versions()
        .wrap_connector(http);
    let client: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .http2_keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .http2_keep_alive_while_idle(true)
            .build(https);
    let service = tower::ServiceBuilder::new()
        .layer(cfg.base_uri_layer())
        .option_layer(cfg.auth_layer()?)
        .map_request(|mut req: http::Request<kube::client::Body>| {
            garrison_telemetry::traces::inject(req.headers_mut());
            req
        })
        // Until the response's headers: a watch's body streams on past it.
        .layer(tower::timeout::TimeoutLayer::new(REQUEST_TIMEOUT))
        .service(client);
    Ok(kube::Client::new(service, cfg.default_namespace.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_must_be_sha256_hex() {
        let good = format!("sha256:{}", "AB".repeat(32));
        assert_eq!(
            parse_pin(&good).unwrap(),
            format!("sha256:{}", "ab".repeat(32))
        );
        for bad in [
            "",
            "ab",
            "sha1:abcd",
            "sha256:xyz",
            &format!("sha256:{}", "a".repeat(63)),
        ] {
            assert!(parse_pin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hub_urls_must_be_https_with_a_host() {
        assert_eq!(
            host_port("https://127.0.0.1:6443").unwrap(),
            ("127.0.0.1".into(), 6443)
        );
        assert_eq!(
            host_port("https://hub.example.com").unwrap(),
            ("hub.example.com".into(), 443)
        );
        assert!(host_port("http://127.0.0.1:6443").is_err());
        assert!(host_port("not a url").is_err());
    }
}
