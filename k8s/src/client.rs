//! Helpers for clients of any Kubernetes API server (this one over the network, or
//! kube-apiserver): configuration from a kubeconfig file, and CRD installation.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::Value;

/// How long an applied CRD may take to become Established.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// The client configuration in a kubeconfig file (its current context), with errors naming the
/// file.
pub async fn config_from_kubeconfig(path: &Path) -> Result<kube::Config> {
    let kc = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
    kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .with_context(|| format!("the kubeconfig {} is not usable", path.display()))
}

/// A client from a kubeconfig file, with errors naming the file.
pub async fn client_from_kubeconfig(path: &Path) -> Result<kube::Client> {
    let cfg = config_from_kubeconfig(path).await?;
    traced_client(cfg)
}

fn with_traceparent(
    mut req: http::Request<kube::client::Body>,
) -> http::Request<kube::client::Body> {
    garrison_telemetry::traces::inject(req.headers_mut());
    req
}

/// A client whose requests carry the caller's trace context (`traceparent`) when this process
/// exports traces, so the server's spans join the caller's trace.
pub fn traced_client(cfg: kube::Config) -> Result<kube::Client> {
    Ok(kube::client::ClientBuilder::try_from(cfg)
        .context("cannot build a client")?
        .with_layer(&tower::util::MapRequestLayer::new(with_traceparent))
        .build())
}

/// Creates or updates each CRD by server-side apply as `manager` (taking over conflicting
/// fields), then waits until every one is Established, at most a minute.
pub async fn apply_crds(client: &kube::Client, crds: &[Value], manager: &str) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name_of = |crd: &Value| {
        crd["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    for crd in crds {
        let name = name_of(crd);
        api.patch(
            &name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(crd),
        )
        .await
        .with_context(|| format!("cannot install the CRD {name}"))?;
    }
    let deadline = tokio::time::Instant::now() + ESTABLISH_TIMEOUT;
    for crd in crds {
        let name = name_of(crd);
        loop {
            let established = api
                .get(&name)
                .await?
                .status
                .and_then(|s| s.conditions)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "the CRD {name} was not established within {}s",
                    ESTABLISH_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(())
}
