//! The hub's admission webhooks, both ways: registered in process with the embedded API server,
//! or served over HTTPS for a kube-apiserver and registered with it.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::body::Bytes;
use garrison_apiserver::certs;
use garrison_apiserver::webhooks::{InProcess, ReviewFuture};
use garrison_hub::admission::{self, Admission};
use serde_json::{Value, json};

/// Lifetime of the webhook serving certificate, made afresh at each start.
const WEBHOOK_CERT_LIFETIME: time::Duration = time::Duration::days(365);
/// Lifetime of the webhooks' private CA, shared by the replicas through a Secret and trusted
/// only through the webhook configurations' caBundle.
const WEBHOOK_CA_LIFETIME: time::Duration = time::Duration::days(3650);
/// The Secret holding the webhooks' CA in the hub's namespace.
pub const WEBHOOK_CA_SECRET: &str = "garrison-hub-webhook-ca";

/// The webhooks' CA, shared by every replica so that any of them can answer behind one
/// Service with the caBundle the leader registers: read from its Secret, or made and stored
/// by whichever replica comes first.
pub async fn shared_ca(
    client: &kube::Client,
    namespace: &str,
) -> Result<garrison_apiserver::certs::Pair> {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, PostParams};
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let read = |s: &Secret| -> Option<garrison_apiserver::certs::Pair> {
        let data = s.data.as_ref()?;
        Some(garrison_apiserver::certs::Pair {
            cert_pem: String::from_utf8(data.get("tls.crt")?.0.clone()).ok()?,
            key_pem: String::from_utf8(data.get("tls.key")?.0.clone()).ok()?,
        })
    };
    if let Some(s) = api
        .get_opt(WEBHOOK_CA_SECRET)
        .await
        .context("cannot read the webhook CA Secret")?
    {
        return read(&s).with_context(|| {
            format!("the Secret {namespace}/{WEBHOOK_CA_SECRET} holds no tls.crt and tls.key")
        });
    }
    let ca = garrison_apiserver::certs::new_ca("garrison-hub-webhook-ca", WEBHOOK_CA_LIFETIME)?;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": WEBHOOK_CA_SECRET, "namespace": namespace},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": ca.cert_pem, "tls.key": ca.key_pem},
    }))?;
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(ca),
        // Another replica stored one first: use that.
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let s = api.get(WEBHOOK_CA_SECRET).await?;
            read(&s).context("the webhook CA Secret holds no tls.crt and tls.key")
        }
        Err(e) => Err(e).context("cannot store the webhook CA Secret"),
    }
}

struct InProcessReviewer(Admission);

impl InProcess for InProcessReviewer {
    fn review(&self, path: &str, review: Value) -> ReviewFuture {
        let admission = self.0.clone();
        let path = path.to_string();
        Box::pin(async move { Ok(admission.review(&path, review).await) })
    }
}

/// Registers the hub's webhooks with the embedded server, answered in this process through
/// the same configurations `hub --kubeconfig` registers with kube-apiserver.
pub fn register_in_process(server: &garrison_apiserver::server::Server, admission: Admission) {
    let reviewer: Arc<dyn InProcess> = Arc::new(InProcessReviewer(admission));
    let in_process = |path: &str| json!({"url": format!("https://in-process.invalid{path}")});
    for mutating in [true, false] {
        let config =
            admission::webhook_configuration(mutating, admission::CsrScope::All, &in_process);
        server
            .webhooks()
            .add_in_process(mutating, &config, reviewer.clone());
    }
}

/// Registers the conversions of the add-on kinds served at two versions with the embedded
/// server: stored at v1alpha1, served at v1beta1 too, converted as upstream converts them.
pub fn register_conversions(server: &garrison_apiserver::server::Server) {
    for kind in ["ManagedClusterAddOn", "ClusterManagementAddOn"] {
        server.objects.conversions.add(
            garrison_api::addon::GROUP,
            kind,
            Arc::new(garrison_api::addon::v1beta1::convert),
        );
    }
}

/// Path of the conversion webhook of the add-on kinds served at two versions.
pub const CONVERT_PATH: &str = "/convert";

/// Answers a `ConversionReview` (apiextensions.k8s.io/v1) as kube-apiserver asks a CRD's
/// conversion webhook: every object converted to `desiredAPIVersion`, or a failure naming why.
pub fn conversion_review(review: &Value) -> Value {
    let request = &review["request"];
    let uid = request["uid"].clone();
    let desired = request["desiredAPIVersion"].as_str().unwrap_or_default();
    let converted: Result<Vec<Value>, String> = match request["objects"].as_array() {
        None => Err("the ConversionReview has no request.objects".into()),
        Some(objects) => objects
            .iter()
            .map(|o| garrison_api::addon::v1beta1::convert(o, desired))
            .collect(),
    };
    let response = match converted {
        Ok(objects) => {
            json!({"uid": uid, "convertedObjects": objects, "result": {"status": "Success"}})
        }
        Err(message) => {
            json!({"uid": uid, "convertedObjects": [], "result": {"status": "Failure", "message": message}})
        }
    };
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview", "response": response})
}

/// The CRDs to install when the hub runs against kube-apiserver: those serving two versions
/// are converted by this webhook server.
pub fn crds_converted_by(served: &Served) -> Vec<Value> {
    let mut crds = garrison_api::crds::all_json();
    for crd in &mut crds {
        if crd["spec"]["versions"]
            .as_array()
            .is_some_and(|v| v.len() > 1)
        {
            crd["spec"]["conversion"] = json!({
                "strategy": "Webhook",
                "webhook": {
                    "clientConfig": served.client_config(CONVERT_PATH),
                    "conversionReviewVersions": ["v1"],
                },
            });
        }
    }
    crds
}

/// How kube-apiserver reaches this webhook server.
#[derive(Debug, Clone)]
pub enum Reach {
    /// Directly, by URL: the hub runs outside the cluster.
    Url(String),
    /// Through a Service: the hub runs in the cluster behind it.
    Service {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Its port.
        port: u16,
    },
}

/// A running webhook server: what to register so kube-apiserver reaches and trusts it.
pub struct Served {
    /// How it is reached.
    pub reach: Reach,
    /// PEM of the CA that signed its serving certificate.
    pub ca_pem: String,
}

impl Served {
    /// The `clientConfig` for the webhook at `path`.
    pub fn client_config(&self, path: &str) -> Value {
        let ca = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            self.ca_pem.as_bytes(),
        );
        match &self.reach {
            Reach::Url(base) => json!({"url": format!("{base}{path}"), "caBundle": ca}),
            Reach::Service {
                namespace,
                name,
                port,
            } => {
                json!({"service": {"namespace": namespace, "name": name, "port": port, "path": path}, "caBundle": ca})
            }
        }
    }

    /// Creates or replaces the hub's webhook configurations, pointing at this server.
    pub async fn register(&self, client: &kube::Client) -> Result<()> {
        use kube::api::{Api, DynamicObject, Patch, PatchParams};
        use kube::discovery::ApiResource;
        for (mutating, kind, plural) in [
            (
                true,
                "MutatingWebhookConfiguration",
                "mutatingwebhookconfigurations",
            ),
            (
                false,
                "ValidatingWebhookConfiguration",
                "validatingwebhookconfigurations",
            ),
        ] {
            let config =
                admission::webhook_configuration(mutating, admission::CsrScope::Labelled, &|p| {
                    self.client_config(p)
                });
            let ar = ApiResource {
                group: "admissionregistration.k8s.io".into(),
                version: "v1".into(),
                api_version: "admissionregistration.k8s.io/v1".into(),
                kind: kind.into(),
                plural: plural.into(),
            };
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
            let name = config["metadata"]["name"].as_str().unwrap_or_default();
            api.patch(
                name,
                &PatchParams::apply("garrison-hub").force(),
                &Patch::Apply(&config),
            )
            .await
            .with_context(|| format!("cannot register the {kind} {name}"))?;
        }
        Ok(())
    }
}

/// Starts serving the hub's webhooks (and `/healthz`, `/readyz`) over HTTPS on `listen`, with a
/// serving certificate from `ca`. `service` names the Service in front of it when the hub runs
/// in a cluster; otherwise it is registered by URL. `ready` answers `/readyz`.
pub async fn serve(
    admission: Admission,
    ca: certs::Pair,
    listen: SocketAddr,
    service: Option<(String, String, u16)>,
    ready: Arc<dyn Fn() -> Result<(), String> + Send + Sync>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(Served, tokio::task::JoinHandle<()>)> {
    use garrison_apiserver::tls;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen for webhooks on {listen}"))?;
    let bound = listener.local_addr()?;
    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if !bound.ip().is_unspecified() {
        hosts.push(bound.ip().to_string());
    }
    if let Some((ns, name, _)) = &service {
        hosts.push(format!("{name}.{ns}.svc"));
        hosts.push(format!("{name}.{ns}.svc.cluster.local"));
    }
    let serving = certs::new_serving(&ca, &hosts, WEBHOOK_CERT_LIFETIME)?;
    let chain = tls::certs_from_pem("webhook serving certificate", serving.cert_pem.as_bytes())?;
    let key = tls::key_from_pem("webhook serving key", serving.key_pem.as_bytes())?;
    let ca_der = tls::certs_from_pem("webhook CA", ca.cert_pem.as_bytes())?;
    let tls_config = tls::server_config(chain, key, &ca_der).context("bad webhook certificate")?;
    let reach = match service {
        Some((namespace, name, port)) => Reach::Service {
            namespace,
            name,
            port,
        },
        None => {
            let host = if bound.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                bound.ip().to_string()
            };
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            Reach::Url(format!("https://{host}:{}", bound.port()))
        }
    };
    let app = router(admission, ready);
    tracing::info!(address = %bound, "serving the hub's admission webhooks");
    let task = tokio::spawn(tls::serve(listener, tls_config, app, stop, None));
    Ok((
        Served {
            reach,
            ca_pem: ca.cert_pem,
        },
        task,
    ))
}

/// Largest AdmissionReview accepted: two objects of kube-apiserver's 3 MiB limit, and room.
const MAX_REVIEW: usize = 8 * 1024 * 1024;

fn router(
    admission: Admission,
    ready: Arc<dyn Fn() -> Result<(), String> + Send + Sync>,
) -> axum::Router {
    use axum::http::StatusCode;
    use axum::routing::get;
    let review = move |uri: axum::http::Uri, body: Bytes| {
        let admission = admission.clone();
        async move {
            let reply = |code: StatusCode, v: Value| {
                (
                    code,
                    [("content-type", "application/json")],
                    serde_json::to_vec(&v).unwrap_or_default(),
                )
            };
            match serde_json::from_slice::<Value>(&body) {
                Ok(v) if uri.path() == CONVERT_PATH => reply(StatusCode::OK, conversion_review(&v)),
                Ok(v) => reply(StatusCode::OK, admission.review(uri.path(), v).await),
                Err(e) => reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": format!("the body is not an AdmissionReview: {e}")}),
                ),
            }
        }
    };
    axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    match ready() {
                        Ok(()) => (StatusCode::OK, "ok".to_string()),
                        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e),
                    }
                }
            }),
        )
        .fallback(axum::routing::post(review))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REVIEW))
}
