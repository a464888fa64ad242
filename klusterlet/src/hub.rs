//! Reaching the hub: the first contact, which trusts nothing but the CA pin, and the clients
//! built afterwards from the pinned CA.
//!
//! At join, the agent opens a TLS connection and accepts the hub's certificate only if some
//! certificate in the chain the hub presents has the pinned SubjectPublicKeyInfo hash and the
//! serving certificate verifies against it (signature, validity, host name). The handshake is
//! the only thing sent: no request, and so no token, leaves the agent before the pin matches.
//! Every later connection trusts exactly that CA.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow, bail};
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
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

#[derive(Debug)]
struct PinVerifier {
    pin: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
    found: Mutex<Option<CertificateDer<'static>>>,
    seen_pins: Mutex<Vec<String>>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        for cert in intermediates.iter().chain(std::iter::once(end_entity)) {
            let Some(pin) = pin_of(cert) else { continue };
            self.seen_pins.lock().expect("pins").push(pin.clone());
            if pin != self.pin {
                continue;
            }
            let mut roots = rustls::RootCertStore::empty();
            roots.add(cert.clone().into_owned())?;
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                self.provider.clone(),
            )
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
            verifier.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            )?;
            *self.found.lock().expect("found") = Some(cert.clone().into_owned());
            return Ok(ServerCertVerified::assertion());
        }
        Err(rustls::Error::General(
            "no certificate the hub presented matches --ca-cert-hash".into(),
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
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

/// Connects to the hub, checks its CA against `pin`, and returns the CA (PEM). Sends nothing but
/// a TLS handshake.
pub async fn fetch_pinned_ca(url: &str, pin: &str) -> Result<String> {
    let (host, port) = host_port(url)?;
    let provider = garrison_apiserver::tls::provider();
    let verifier = Arc::new(PinVerifier {
        pin: pin.to_string(),
        provider: provider.clone(),
        found: Mutex::new(None),
        seen_pins: Mutex::new(Vec::new()),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS configuration")?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.clone())
        .map_err(|_| anyhow!("--hub host {host:?} is not a valid server name"))?;
    let tcp = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| anyhow!("cannot reach the hub at {url}: connection timed out"))?
    .with_context(|| format!("cannot reach the hub at {url}"))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    match connector.connect(name, tcp).await {
        Ok(_) => {}
        Err(e) => {
            let seen = verifier.seen_pins.lock().expect("pins").clone();
            if !seen.is_empty() && !seen.contains(&pin.to_string()) {
                bail!(
                    "the hub at {url} does not match --ca-cert-hash {pin} (it presented {}); nothing was sent. Check the hash with `garrison get hub-info` on the hub",
                    seen.join(", ")
                );
            }
            bail!("TLS with the hub at {url} failed: {e}; nothing was sent");
        }
    }
    let der = verifier
        .found
        .lock()
        .expect("found")
        .clone()
        .ok_or_else(|| anyhow!("the hub's CA was not found in its chain"))?;
    Ok(pem_of(&der))
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
    cfg.connect_timeout = Some(std::time::Duration::from_secs(10));
    cfg.read_timeout = Some(std::time::Duration::from_secs(60));
    kube::Client::try_from(cfg).context("building the hub client")
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
