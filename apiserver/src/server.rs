//! Assembling the API server: store, registry, authorizer, audit log, the server's own
//! controllers, and the default objects.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::audit::AuditLog;
use crate::auth::rbac::Authorizer;
use crate::bootstrap;
use crate::error::ApiResult;
use crate::http::{ApiServer, CertificateGate, ConnectionPolicy, DEFAULT_MAX_BODY};
use crate::ops::Objects;
use crate::resources::Registry;
use crate::store::watch::{EventType, WatchEvent};
use crate::store::{Store, StoreError, watch};

/// Storage key of CustomResourceDefinitions.
const CRD_KEY: &str = "apiextensions.k8s.io/customresourcedefinitions";

/// How to build a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The SQLite file; `None` keeps everything in memory.
    pub store_path: Option<PathBuf>,
    /// The audit log file, if any.
    pub audit_path: Option<PathBuf>,
    /// Events kept for watch resumption.
    pub watch_cache_events: usize,
    /// The most bytes those events may hold.
    pub watch_cache_bytes: usize,
    /// Interval between watch bookmarks.
    pub bookmark_interval: Duration,
    /// Largest request body.
    pub max_body: usize,
    /// Garbage-collector resync period.
    pub gc_resync: Duration,
    /// How long an Event is kept after it was last written (kube-apiserver's `--event-ttl`).
    pub event_ttl: Duration,
    /// Serve the workload kinds (Pods, Deployments, Jobs, ...) and refuse objects annotated
    /// for refusal, as a simulated cluster does.
    pub workloads: bool,
    /// Refuse a managed cluster's agent certificates unless the cluster is accepted
    /// (`hubAcceptsClient: true`) and not being deleted, and cut its live connections when it
    /// stops being accepted. An embedded OCM hub turns this on; kube-apiserver has no such gate,
    /// so `garrison apiserver` leaves it off.
    pub agent_gate: bool,
    /// Feed the process's metrics: this server's watch cache, and the fleet SLIs counted from
    /// its objects. One server per process does (a hub, not the simulated clusters beside it).
    pub metrics: bool,
    /// The ServiceAccount token signing key (P-256, PKCS#8 PEM). `None` makes a fresh one, so
    /// tokens last only as long as the process.
    pub service_account_key: Option<String>,
    /// The issuer of ServiceAccount tokens, also the audience accepted by default.
    pub service_account_issuer: String,
    /// The shortest lifetime a TokenRequest may ask for, in seconds (kube-apiserver: 600).
    pub min_token_expiration_secs: i64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            store_path: None,
            audit_path: None,
            watch_cache_events: watch::DEFAULT_CAPACITY,
            watch_cache_bytes: watch::DEFAULT_CAPACITY_BYTES,
            bookmark_interval: Duration::from_secs(30),
            max_body: DEFAULT_MAX_BODY,
            gc_resync: Duration::from_secs(30),
            event_ttl: Duration::from_secs(3600),
            workloads: false,
            agent_gate: false,
            metrics: false,
            service_account_key: None,
            service_account_issuer: crate::auth::tokens::DEFAULT_ISSUER.into(),
            min_token_expiration_secs: crate::auth::tokens::MIN_EXPIRATION_SECS,
        }
    }
}

/// Errors building a server.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit log could not be opened.
    #[error("cannot open the audit log {path}: {source}")]
    Audit {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Writing the default objects failed.
    #[error("cannot create the default objects: {0}")]
    Defaults(String),
    /// The fleet SLIs could not be counted from the store.
    #[error("cannot count the fleet's SLIs from the store: {0}")]
    Metrics(crate::error::ApiError),
}

/// A running API server's state.
pub struct Server {
    /// The HTTP-facing state.
    pub api: Arc<ApiServer>,
    /// The verbs, shared with the controllers.
    pub objects: Arc<Objects>,
    /// For the listener: which live connections to cut when a certificate is revoked.
    pub connection_policy: Option<ConnectionPolicy>,
}

impl Server {
    /// Opens the store, loads served CRDs, writes the default objects and starts the server's
    /// controllers. Must run inside a tokio runtime.
    pub fn build(cfg: &ServerConfig) -> Result<Self, BuildError> {
        let store = match &cfg.store_path {
            Some(p) => Store::open(p, cfg.watch_cache_events)?,
            None => Store::in_memory(cfg.watch_cache_events),
        };
        store.watch().limit_bytes(cfg.watch_cache_bytes);
        let audit = match &cfg.audit_path {
            Some(p) => Some(AuditLog::open(p).map_err(|source| BuildError::Audit {
                path: p.clone(),
                source,
            })?),
            None => None,
        };
        let registry = Arc::new(if cfg.workloads {
            Registry::with_workloads()
        } else {
            Registry::new()
        });
        let crds = store
            .list(
                "apiextensions.k8s.io/customresourcedefinitions",
                None,
                None,
                0,
            )
            .map_err(|e| BuildError::Defaults(e.message))?;
        for crd in &crds.items {
            registry.install_crd(crd);
        }
        // The served kinds follow the stored CRDs, whoever writes them (a client, or the garbage
        // collector finishing a CRD's deletion). The hook runs before the write is answered, so
        // a kind is servable as soon as its CRD's create returns.
        let reg = registry.clone();
        store.on_write(Arc::new(move |ev: &WatchEvent| {
            if ev.key == CRD_KEY {
                match ev.kind {
                    EventType::Deleted => {
                        if let Some(name) =
                            ev.object.pointer("/metadata/name").and_then(Value::as_str)
                        {
                            reg.remove_crd(name);
                        }
                    }
                    _ => reg.install_crd(&ev.object),
                }
            }
        }));
        // Agent certificates authenticate only while their cluster is accepted.
        let (certificate_gate, connection_policy) = if cfg.agent_gate {
            let accepted = crate::ocm::AcceptedClusters::follow(&store)
                .map_err(|e| BuildError::Defaults(e.message))?;
            let revocations = accepted.revocations();
            let gate: CertificateGate = Arc::new(move |u| accepted.allows(u));
            let policy = ConnectionPolicy {
                gate: gate.clone(),
                revocations,
            };
            (Some(gate), Some(policy))
        } else {
            (None, None)
        };
        let webhooks = follow_webhooks(&store)?;
        let authz = Authorizer::new(store.clone());
        let objects = Arc::new(Objects {
            store,
            registry,
            authz,
            conversions: Default::default(),
            simulated_rejections: cfg.workloads,
        });
        bootstrap::ensure_defaults(&objects).map_err(|e| BuildError::Defaults(e.message))?;
        crate::gc::start(objects.clone(), cfg.gc_resync);
        crate::bootstrap_signer::start(objects.clone(), Duration::from_secs(60));
        crate::events::start(
            objects.clone(),
            cfg.event_ttl,
            (cfg.event_ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(60)),
        );
        if cfg.metrics {
            crate::slis::Slis::follow(&objects.store).map_err(BuildError::Metrics)?;
            follow_watch_cache(&objects.store);
        }
        let health = crate::health::Health::default();
        health.add("store", store_probe(objects.store.clone()));
        let key = match &cfg.service_account_key {
            Some(pem) => pem.clone(),
            None => crate::auth::tokens::generate_key_pem().map_err(BuildError::Defaults)?,
        };
        let tokens = crate::auth::tokens::TokenSigner::from_pem(
            &key,
            &cfg.service_account_issuer,
            cfg.min_token_expiration_secs,
        )
        .map_err(BuildError::Defaults)?;
        let api = Arc::new(ApiServer {
            tokens: Arc::new(tokens),
            objects: objects.clone(),
            audit,
            max_body: cfg.max_body,
            bookmark_interval: cfg.bookmark_interval,
            certificate_gate,
            health,
            webhooks,
            extensions: Default::default(),
        });
        Ok(Server {
            api,
            objects,
            connection_policy,
        })
    }

    /// Serves `ext` beside the Kubernetes API.
    pub fn add_extension(&self, ext: Arc<dyn crate::http::Extension>) {
        self.api
            .extensions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(ext);
    }

    /// The checks behind `/readyz`, to add the embedder's own.
    pub fn health(&self) -> &crate::health::Health {
        &self.api.health
    }

    /// The admission webhooks, to register in-process ones.
    pub fn webhooks(&self) -> &crate::webhooks::Webhooks {
        &self.api.webhooks
    }

    /// The router serving the API.
    pub fn router(&self) -> axum::Router {
        crate::http::router(self.api.clone())
    }

    /// Creates or updates each CustomResourceDefinition, so the served kinds follow the binary.
    pub fn install_crds(&self, crds: &[Value]) -> ApiResult<()> {
        for crd in crds {
            bootstrap::ensure_object(&self.objects, crd.clone(), true)?;
        }
        Ok(())
    }

    /// A kube client served in-process by this server, through the router as a tower service
    /// with no TLS hop, acting as `user`. Controllers use it in embedded mode; the same code
    /// runs against a real kube-apiserver with a network client.
    pub fn local_client(&self, user: crate::auth::UserInfo) -> kube::Client {
        let identity = crate::http::PeerIdentity {
            user: Some(user),
            addr: "in-process".into(),
        };
        let svc = tower::ServiceBuilder::new()
            .map_request(move |mut req: http::Request<kube::client::Body>| {
                req.extensions_mut().insert(identity.clone());
                req
            })
            .service(self.router());
        kube::Client::new(svc, "default")
    }

    /// Copies the store to `dest` while serving.
    pub fn backup_to(&self, dest: &std::path::Path) -> Result<(), StoreError> {
        self.objects.store.backup_to(dest)
    }
}

/// The registered admission webhooks, following the stored configurations. The hook runs before
/// a configuration's write is answered, so a webhook is called from the next request on.
fn follow_webhooks(store: &Store) -> Result<Arc<crate::webhooks::Webhooks>, BuildError> {
    use crate::webhooks::{MUTATING_KEY, VALIDATING_KEY, Webhooks};
    let hooks = Arc::new(Webhooks::default());
    let h = hooks.clone();
    store.on_write(Arc::new(move |ev: &WatchEvent| {
        let mutating = match ev.key.as_str() {
            MUTATING_KEY => true,
            VALIDATING_KEY => false,
            _ => return,
        };
        match ev.kind {
            EventType::Deleted => h.remove_config(
                mutating,
                ev.object["metadata"]["name"].as_str().unwrap_or_default(),
            ),
            _ => h.put_config(mutating, &ev.object),
        }
    }));
    for (key, mutating) in [(MUTATING_KEY, true), (VALIDATING_KEY, false)] {
        let list = store
            .list(key, None, None, 0)
            .map_err(|e| BuildError::Defaults(e.message))?;
        for obj in &list.items {
            hooks.put_config(mutating, obj);
        }
    }
    Ok(hooks)
}

/// The store's health check: a real write, at most once a second whoever asks (the health
/// endpoints answer anonymous callers, who must not be able to make the store fsync at will).
fn store_probe(store: Arc<Store>) -> crate::health::Check {
    let last: std::sync::Mutex<Option<(std::time::Instant, Result<(), String>)>> =
        std::sync::Mutex::new(None);
    Arc::new(move || {
        let mut last = last.lock().expect("probe lock");
        if let Some((at, r)) = last.as_ref()
            && at.elapsed() < std::time::Duration::from_secs(1)
        {
            return r.clone();
        }
        let r = store.probe_write();
        *last = Some((std::time::Instant::now(), r.clone()));
        r
    })
}

/// Sets the watch cache's gauges on each scrape.
fn follow_watch_cache(store: &Arc<crate::store::Store>) {
    let watch_cache = Arc::downgrade(store.watch());
    garrison_telemetry::on_scrape("watch cache", move |m| {
        let Some(cache) = watch_cache.upgrade() else {
            return;
        };
        let stats = cache.stats();
        m.watch_cache_events.set(stats.events as i64);
        m.watch_cache_capacity.set(stats.capacity as i64);
        m.watch_cache_bytes.set(stats.bytes as i64);
        m.watch_cache_capacity_bytes
            .set(stats.capacity_bytes as i64);
        garrison_telemetry::set_all(
            &m.open_watches,
            stats.watches.into_iter().map(|(key, n)| {
                let (group, resource) = key.split_once('/').unwrap_or(("", &key));
                let labels = garrison_telemetry::ResourceLabels {
                    group: group.into(),
                    resource: resource.into(),
                };
                (labels, n as i64)
            }),
        );
    });
}
