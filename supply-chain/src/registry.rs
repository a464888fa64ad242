//! A client of the OCI distribution API, for what verification needs: resolve a tag to a
//! digest, and read cosign's signature manifest and its layers, each blob checked against its
//! digest. It also pushes blobs and manifests, which is how tests put images and signatures in
//! a registry.
//!
//! HTTPS with the system's roots plus any CA bundles given; plain HTTP only to registries
//! marked insecure. Credentials come from pull secrets (`.dockerconfigjson`) and are sent as
//! Basic, or exchanged for a Bearer token where the registry asks for one. Every request has a
//! deadline. Credentials and tokens are never logged.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value;

use crate::error::RegistryError;
use crate::reference::{Digest, Reference};
use crate::verify::{DSSE_ENVELOPE, SIMPLE_SIGNING, SignatureLayer};

/// The OCI image manifest's media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The OCI image index's media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker's image manifest (schema 2).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker's manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Every manifest type asked for: registries answer 404 or 400 to a type not accepted.
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
/// The largest manifest read.
const MAX_MANIFEST: usize = 4 * 1024 * 1024;
/// The largest signature payload read.
const MAX_PAYLOAD: usize = 1024 * 1024;
/// The most signature layers read for one image.
const MAX_LAYERS: usize = 64;

/// How to reach registries.
#[derive(Clone, Default)]
pub struct RegistryConfig {
    /// CA certificates (DER) trusted besides the system's.
    pub ca_roots: Vec<Vec<u8>>,
    /// Credentials by registry host: `(user, password)`.
    pub credentials: BTreeMap<String, (String, String)>,
    /// Registries reached over plain HTTP.
    pub insecure: BTreeSet<String>,
    /// Deadline of each request (10 s when zero).
    pub timeout: Duration,
}

impl std::fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryConfig")
            .field("ca_roots", &self.ca_roots.len())
            .field(
                "credentials_for",
                &self.credentials.keys().collect::<Vec<_>>(),
            )
            .field("insecure", &self.insecure)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RegistryConfig {
    /// Adds the CA certificates of a PEM bundle.
    pub fn add_ca_pem(&mut self, pem_text: &str) -> Result<(), String> {
        let blocks = pem::parse_many(pem_text).map_err(|e| format!("not PEM: {e}"))?;
        let before = self.ca_roots.len();
        self.ca_roots.extend(
            blocks
                .into_iter()
                .filter(|b| b.tag() == "CERTIFICATE")
                .map(|b| b.into_contents()),
        );
        if self.ca_roots.len() == before {
            return Err("no CERTIFICATE block".into());
        }
        Ok(())
    }

    /// Adds the credentials of a `.dockerconfigjson` document (`{"auths": {host: {auth} or
    /// {username, password}}}`).
    pub fn add_docker_config(&mut self, json: &[u8]) -> Result<(), String> {
        let v: Value = serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))?;
        let auths = v["auths"].as_object().ok_or("no auths")?;
        for (host, a) in auths {
            let host = host
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .trim_end_matches("/v1")
                .to_string();
            let host = if host == "docker.io" || host == "index.docker.io/v1" {
                crate::reference::DOCKER_HUB.to_string()
            } else {
                host
            };
            let pair = match (
                a["username"].as_str(),
                a["password"].as_str(),
                a["auth"].as_str(),
            ) {
                (Some(u), Some(p), _) => (u.to_string(), p.to_string()),
                (_, _, Some(auth)) => {
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(auth)
                        .map_err(|_| format!("the auth of {host} is not base64"))?;
                    let raw = String::from_utf8(raw)
                        .map_err(|_| format!("the auth of {host} is not text"))?;
                    let (u, p) = raw
                        .split_once(':')
                        .ok_or_else(|| format!("the auth of {host} is not user:password"))?;
                    (u.to_string(), p.to_string())
                }
                _ => return Err(format!("{host} has neither auth nor username and password")),
            };
            self.credentials.insert(host, pair);
        }
        Ok(())
    }
}

/// A registry client; cheap to share.
pub struct Registry {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    config: RegistryConfig,
    tokens: std::sync::Mutex<HashMap<(String, String), String>>,
    requests: AtomicU64,
}

struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Registry {
    /// A client for `config`.
    pub fn new(config: RegistryConfig) -> Result<Registry, String> {
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(c);
        }
        for der in &config.ca_roots {
            roots
                .add(rustls_pki_types::CertificateDer::from(der.clone()))
                .map_err(|e| format!("a registry CA is not usable: {e}"))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
        Ok(Registry {
            client,
            config,
            tokens: Default::default(),
            requests: AtomicU64::new(0),
        })
    }

    /// Requests sent so far (for benchmarks and reports).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn base(&self, registry: &str) -> String {
        let scheme = if self.config.insecure.contains(registry) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{registry}")
    }

    /// Sends one request with a deadline.
    async fn send(
        &self,
        registry: &str,
        method: Method,
        url: &str,
        headers: &[(header::HeaderName, String)],
        body: Bytes,
        limit: usize,
    ) -> Result<Response, RegistryError> {
        let unreachable = |message: String| RegistryError::Unreachable {
            registry: registry.to_string(),
            message,
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e| unreachable(format!("bad URL: {e}")))?;
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if self.config.insecure.contains(registry) => {}
            Some("http") => return Err(RegistryError::InsecureRefused(registry.to_string())),
            _ => return Err(unreachable("only https URLs are followed".into())),
        }
        let mut req = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| unreachable(format!("bad request: {e}")))?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let timeout = if self.config.timeout.is_zero() {
            Duration::from_secs(10)
        } else {
            self.config.timeout
        };
        let work = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| unreachable(error_chain(&e)))?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, limit)
                .collect()
                .await
                .map_err(|e| unreachable(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok(Response {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| unreachable(format!("no answer within {timeout:?}")))?
    }

    /// Sends a request to `path` of `registry`, authenticating as the registry asks.
    async fn call(
        &self,
        scope: Scope<'_>,
        method: Method,
        path_or_url: &str,
        headers: Vec<(header::HeaderName, String)>,
        body: Bytes,
        limit: usize,
    ) -> Result<Response, RegistryError> {
        let Scope {
            registry,
            repository,
            push,
        } = scope;
        let url = if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.base(registry))
        };
        // Credentials go to the registry's own host only.
        let host = url
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| u.authority().map(|a| a.as_str().to_ascii_lowercase()));
        if host.as_deref() != Some(registry) {
            let host = host.unwrap_or_default();
            return self.send(&host, method, &url, &headers, body, limit).await;
        }
        let scope = format!(
            "repository:{repository}:{}",
            if push { "pull,push" } else { "pull" }
        );
        let mut with_auth = headers.clone();
        let cached = self
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(registry.to_string(), scope.clone()))
            .cloned();
        if let Some(t) = &cached {
            with_auth.push((header::AUTHORIZATION, format!("Bearer {t}")));
        } else if let Some(basic) = self.basic(registry) {
            with_auth.push((header::AUTHORIZATION, basic));
        }
        let first = self
            .send(
                registry,
                method.clone(),
                &url,
                &with_auth,
                body.clone(),
                limit,
            )
            .await?;
        if first.status != StatusCode::UNAUTHORIZED {
            return Ok(first);
        }
        let challenge = first
            .headers
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let unauthorized = |message: String| RegistryError::Unauthorized {
            registry: registry.to_string(),
            message,
        };
        if !challenge.to_ascii_lowercase().starts_with("bearer") {
            return Err(unauthorized(if self.basic(registry).is_some() {
                "the registry refused the pull secret's credentials".into()
            } else {
                "the registry asks for credentials and no pull secret has any for it".into()
            }));
        }
        let params = challenge_params(&challenge);
        let realm = params
            .get("realm")
            .ok_or_else(|| unauthorized("the Bearer challenge names no realm".into()))?;
        let mut token_url = format!(
            "{realm}?scope={}",
            url_encode(params.get("scope").map_or(scope.as_str(), String::as_str))
        );
        if let Some(service) = params.get("service") {
            token_url.push_str(&format!("&service={}", url_encode(service)));
        }
        let mut token_headers = vec![];
        if let Some(basic) = self.basic(registry) {
            token_headers.push((header::AUTHORIZATION, basic));
        }
        let realm_host = token_url
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| u.authority().map(|a| a.to_string()))
            .unwrap_or_default();
        let answer = self
            .send(
                &realm_host,
                Method::GET,
                &token_url,
                &token_headers,
                Bytes::new(),
                64 * 1024,
            )
            .await?;
        if !answer.status.is_success() {
            return Err(unauthorized(format!(
                "the token service answered {}",
                answer.status
            )));
        }
        let v: Value = serde_json::from_slice(&answer.body)
            .map_err(|_| unauthorized("the token service's answer is not JSON".into()))?;
        let token = v["token"]
            .as_str()
            .or(v["access_token"].as_str())
            .ok_or_else(|| unauthorized("the token service gave no token".into()))?
            .to_string();
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((registry.to_string(), scope), token.clone());
        let mut retry = headers;
        retry.push((header::AUTHORIZATION, format!("Bearer {token}")));
        let second = self
            .send(registry, method, &url, &retry, body, limit)
            .await?;
        if second.status == StatusCode::UNAUTHORIZED {
            return Err(unauthorized("the registry refused the token".into()));
        }
        Ok(second)
    }

    fn basic(&self, registry: &str) -> Option<String> {
        self.config.credentials.get(registry).map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        })
    }

    fn protocol(registry: &str, message: String) -> RegistryError {
        RegistryError::Protocol {
            registry: registry.to_string(),
            message,
        }
    }

    /// The digest `image` names: its own digest, or what its tag points at now.
    pub async fn resolve(&self, image: &Reference) -> Result<Digest, RegistryError> {
        if let Some(d) = image.digest() {
            return Ok(d.clone());
        }
        let path = format!("/v2/{}/manifests/{}", image.repository(), image.target());
        let r = self
            .call(
                Scope::pull(image),
                Method::HEAD,
                &path,
                vec![(header::ACCEPT, ACCEPT.into())],
                Bytes::new(),
                0,
            )
            .await?;
        match r.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(Self::protocol(
                    image.registry(),
                    format!("{image} does not exist"),
                ));
            }
            s => {
                return Err(Self::protocol(
                    image.registry(),
                    format!("resolving {image}: the registry answered {s}"),
                ));
            }
        }
        if let Some(d) = r
            .headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            return Digest::parse(d)
                .map_err(|e| Self::protocol(image.registry(), format!("resolving {image}: {e}")));
        }
        // No digest header: hash the manifest itself.
        let r = self
            .call(
                Scope::pull(image),
                Method::GET,
                &path,
                vec![(header::ACCEPT, ACCEPT.into())],
                Bytes::new(),
                MAX_MANIFEST,
            )
            .await?;
        if r.status != StatusCode::OK {
            return Err(Self::protocol(
                image.registry(),
                format!("resolving {image}: the registry answered {}", r.status),
            ));
        }
        Ok(Digest::sha256_of(&r.body))
    }

    /// The manifest `reference` names, or `None` when there is none.
    async fn manifest(&self, image: &Reference) -> Result<Option<Value>, RegistryError> {
        let path = format!("/v2/{}/manifests/{}", image.repository(), image.target());
        let r = self
            .call(
                Scope::pull(image),
                Method::GET,
                &path,
                vec![(header::ACCEPT, ACCEPT.into())],
                Bytes::new(),
                MAX_MANIFEST,
            )
            .await?;
        match r.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            s => {
                return Err(Self::protocol(
                    image.registry(),
                    format!("reading {image}: the registry answered {s}"),
                ));
            }
        }
        if let Some(d) = image.digest()
            && !d.matches(&r.body)
        {
            return Err(RegistryError::DigestMismatch {
                registry: image.registry().to_string(),
                what: format!("manifest {image}"),
                digest: d.to_string(),
            });
        }
        serde_json::from_slice(&r.body).map(Some).map_err(|e| {
            Self::protocol(
                image.registry(),
                format!("{image}: the manifest is not JSON: {e}"),
            )
        })
    }

    /// The blob `digest` of `image`'s repository, checked against its digest.
    async fn blob(
        &self,
        image: &Reference,
        digest: &Digest,
        limit: usize,
    ) -> Result<Bytes, RegistryError> {
        let mut url = format!("/v2/{}/blobs/{digest}", image.repository());
        // Registries may redirect blobs to storage; follow a few redirects, sending the
        // registry's credentials to none of them.
        for _ in 0..5 {
            let r = if url.starts_with('/') {
                self.call(
                    Scope::pull(image),
                    Method::GET,
                    &url,
                    vec![],
                    Bytes::new(),
                    limit,
                )
                .await?
            } else {
                let host = url
                    .parse::<http::Uri>()
                    .ok()
                    .and_then(|u| u.authority().map(|a| a.to_string()))
                    .unwrap_or_default();
                self.send(&host, Method::GET, &url, &[], Bytes::new(), limit)
                    .await?
            };
            if r.status.is_redirection() {
                url = r
                    .headers
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        Self::protocol(image.registry(), "a redirect without Location".into())
                    })?
                    .to_string();
                continue;
            }
            if r.status != StatusCode::OK {
                return Err(Self::protocol(
                    image.registry(),
                    format!("blob {digest}: the registry answered {}", r.status),
                ));
            }
            if !digest.matches(&r.body) {
                return Err(RegistryError::DigestMismatch {
                    registry: image.registry().to_string(),
                    what: "a blob".into(),
                    digest: digest.to_string(),
                });
            }
            return Ok(r.body);
        }
        Err(Self::protocol(
            image.registry(),
            format!("blob {digest}: too many redirects"),
        ))
    }

    /// cosign's signature layers for `digest` of `image` (none when it has no signature
    /// manifest). Layers of other media types are skipped.
    pub async fn signatures(
        &self,
        image: &Reference,
        digest: &Digest,
    ) -> Result<Vec<SignatureLayer>, RegistryError> {
        self.layers(image, digest, "sig", SIMPLE_SIGNING).await
    }

    /// cosign's attestation layers (DSSE envelopes) for `digest` of `image`.
    pub async fn attestations(
        &self,
        image: &Reference,
        digest: &Digest,
    ) -> Result<Vec<SignatureLayer>, RegistryError> {
        self.layers(image, digest, "att", DSSE_ENVELOPE).await
    }

    async fn layers(
        &self,
        image: &Reference,
        digest: &Digest,
        suffix: &str,
        media_type: &str,
    ) -> Result<Vec<SignatureLayer>, RegistryError> {
        let tag = image.cosign_tag(digest, suffix);
        let Some(manifest) = self.manifest(&tag).await? else {
            return Ok(vec![]);
        };
        let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
        if layers.len() > MAX_LAYERS {
            return Err(Self::protocol(
                image.registry(),
                format!("{tag} has more than {MAX_LAYERS} signature layers"),
            ));
        }
        let mut out = vec![];
        for l in layers.iter().filter(|l| l["mediaType"] == media_type) {
            let d = l["digest"]
                .as_str()
                .and_then(|d| Digest::parse(d).ok())
                .ok_or_else(|| {
                    Self::protocol(
                        image.registry(),
                        format!("{tag}: a layer without a valid digest"),
                    )
                })?;
            let payload = self.blob(image, &d, MAX_PAYLOAD).await?;
            let annotations = l["annotations"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            out.push(SignatureLayer {
                payload: payload.to_vec(),
                annotations,
            });
        }
        Ok(out)
    }

    /// Uploads `bytes` as a blob of `image`'s repository (POST, then PUT with the digest).
    pub async fn push_blob(
        &self,
        image: &Reference,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let digest = Digest::sha256_of(bytes);
        let path = format!("/v2/{}/blobs/uploads/", image.repository());
        let r = self
            .call(
                Scope::push(image),
                Method::POST,
                &path,
                vec![],
                Bytes::new(),
                64 * 1024,
            )
            .await?;
        if r.status != StatusCode::ACCEPTED {
            return Err(Self::protocol(
                image.registry(),
                format!("starting an upload: the registry answered {}", r.status),
            ));
        }
        let location = r
            .headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Self::protocol(image.registry(), "an upload without Location".into()))?;
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{sep}digest={digest}");
        let r = self
            .call(
                Scope::push(image),
                Method::PUT,
                &put,
                vec![(header::CONTENT_TYPE, "application/octet-stream".into())],
                Bytes::copy_from_slice(bytes),
                64 * 1024,
            )
            .await?;
        if r.status != StatusCode::CREATED {
            return Err(Self::protocol(
                image.registry(),
                format!(
                    "uploading a blob: the registry answered {}: {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ),
            ));
        }
        Ok(digest)
    }

    /// Puts `manifest` (of `media_type`) at `image`'s tag; returns its digest.
    pub async fn push_manifest(
        &self,
        image: &Reference,
        media_type: &str,
        manifest: &[u8],
    ) -> Result<Digest, RegistryError> {
        let path = format!("/v2/{}/manifests/{}", image.repository(), image.target());
        let r = self
            .call(
                Scope::push(image),
                Method::PUT,
                &path,
                vec![(header::CONTENT_TYPE, media_type.into())],
                Bytes::copy_from_slice(manifest),
                64 * 1024,
            )
            .await?;
        if r.status != StatusCode::CREATED {
            return Err(Self::protocol(
                image.registry(),
                format!(
                    "putting {image}: the registry answered {}: {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ),
            ));
        }
        Ok(Digest::sha256_of(manifest))
    }

    /// Pushes a small image (a config and one layer of `content`) to `image`'s tag; returns
    /// the manifest's digest.
    pub async fn push_image(
        &self,
        image: &Reference,
        content: &[u8],
    ) -> Result<Digest, RegistryError> {
        let layer = self.push_blob(image, content).await?;
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer.to_string()]},
        }))
        .expect("JSON");
        let config_digest = self.push_blob(image, &config).await?;
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.to_string(), "size": content.len()}],
        }))
        .expect("JSON");
        self.push_manifest(image, OCI_MANIFEST, &manifest).await
    }

    /// Pushes `layers` as cosign's signature manifest for `digest` of `image`, replacing any.
    pub async fn push_signatures(
        &self,
        image: &Reference,
        digest: &Digest,
        layers: &[SignatureLayer],
    ) -> Result<(), RegistryError> {
        self.push_layers(image, digest, "sig", SIMPLE_SIGNING, layers)
            .await
    }

    /// Pushes `layers` (DSSE envelopes) as cosign's attestation manifest for `digest`.
    pub async fn push_attestations(
        &self,
        image: &Reference,
        digest: &Digest,
        layers: &[SignatureLayer],
    ) -> Result<(), RegistryError> {
        self.push_layers(image, digest, "att", DSSE_ENVELOPE, layers)
            .await
    }

    async fn push_layers(
        &self,
        image: &Reference,
        digest: &Digest,
        suffix: &str,
        media_type: &str,
        layers: &[SignatureLayer],
    ) -> Result<(), RegistryError> {
        let mut descriptors = vec![];
        let mut diff_ids = vec![];
        for l in layers {
            let d = self.push_blob(image, &l.payload).await?;
            diff_ids.push(d.to_string());
            descriptors.push(serde_json::json!({
                "mediaType": media_type, "digest": d.to_string(), "size": l.payload.len(),
                "annotations": l.annotations,
            }));
        }
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "", "os": "", "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .expect("JSON");
        let config_digest = self.push_blob(image, &config).await?;
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
            "layers": descriptors,
        }))
        .expect("JSON");
        self.push_manifest(&image.cosign_tag(digest, suffix), OCI_MANIFEST, &manifest)
            .await
            .map(|_| ())
    }
}

/// Which repository a request is for, and whether it pushes (the token scope it needs).
struct Scope<'a> {
    registry: &'a str,
    repository: &'a str,
    push: bool,
}

impl Scope<'_> {
    fn pull(image: &Reference) -> Scope<'_> {
        Scope {
            registry: image.registry(),
            repository: image.repository(),
            push: false,
        }
    }

    fn push(image: &Reference) -> Scope<'_> {
        Scope {
            push: true,
            ..Scope::pull(image)
        }
    }
}

/// The parameters of a `Bearer realm="…",service="…",scope="…"` challenge.
fn challenge_params(challenge: &str) -> HashMap<String, String> {
    let rest = challenge.split_once(' ').map_or("", |(_, r)| r);
    let mut out = HashMap::new();
    let mut s = rest;
    while let Some((key, after)) = s.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            match q.split_once('"') {
                Some((v, n)) => (v.to_string(), n),
                None => (q.to_string(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v.trim().to_string(), n),
                None => (after.trim().to_string(), ""),
            }
        };
        out.insert(key, value);
        s = next;
    }
    out
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An error with its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_are_read() {
        let p = challenge_params(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull""#,
        );
        assert_eq!(p["realm"], "https://auth.example.com/token");
        assert_eq!(p["service"], "registry.example.com");
        assert_eq!(p["scope"], "repository:a/b:pull");
    }

    #[test]
    fn docker_configs_give_credentials_by_host() {
        let mut c = RegistryConfig::default();
        let auth = base64::engine::general_purpose::STANDARD.encode("bob:s3cret");
        c.add_docker_config(
            format!(r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{auth}"}}, "ghcr.io": {{"username": "u", "password": "p"}}}}}}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            c.credentials["index.docker.io"],
            ("bob".into(), "s3cret".into())
        );
        assert_eq!(c.credentials["ghcr.io"], ("u".into(), "p".into()));
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "credentials are not in Debug output"
        );
        assert!(
            c.add_docker_config(br#"{"auths": {"x": {"auth": "!!"}}}"#)
                .is_err()
        );
    }

    #[tokio::test]
    async fn plain_http_is_refused_to_registries_not_marked_insecure() {
        let r = Registry::new(RegistryConfig::default()).unwrap();
        let e = r
            .send(
                "127.0.0.1:9",
                Method::GET,
                "http://127.0.0.1:9/v2/",
                &[],
                Bytes::new(),
                0,
            )
            .await
            .err()
            .unwrap();
        assert_eq!(e, RegistryError::InsecureRefused("127.0.0.1:9".into()));
    }
}
