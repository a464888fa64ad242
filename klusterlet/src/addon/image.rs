//! The image-verification add-on, built into the agent with its own hub identity: it reads the
//! ClusterImagePolicies and TrustRoots delivered to its cluster as templates of replicated OCM
//! Policies, and the work gate ([`ImageGate`]) checks every container image of every work
//! against them before anything is applied: the tag resolved to a digest, the digest's cosign
//! signatures verified, and the image pinned to the verified digest in what is applied.
//!
//! A cluster where the add-on is disabled, or to which no image policy is delivered, verifies
//! nothing. While the agent has not learned which policies apply, works wait, then are refused
//! and tried again: the gate fails closed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use garrison_api::policy::v1::Policy;
use garrison_api::policy::{CLUSTER_NAME_LABEL, ROOT_POLICY_LABEL};
use garrison_supply_chain::check::{Cache, NoMatch, check_image};
use garrison_supply_chain::policy::{
    Policies, Secrets, is_cluster_image_policy, is_trust_root, secret_refs,
};
use garrison_supply_chain::registry::{Registry, RegistryConfig};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tokio::sync::watch;

pub use super::gate::{decided, enabled};
use super::gate::{next_owner, set};

/// The add-on's name.
pub const ADDON: &str = "image-verification";

/// How often the policies are read again without a change.
const RELOAD: Duration = Duration::from_secs(60);
/// How long a work waits at the gate for the add-on before it is refused (and tried again).
const GATE_WAIT: Duration = Duration::from_secs(15);
/// The most verified results kept, and for how long.
const CACHE_SIZE: usize = 10_000;
const CACHE_TTL: Duration = Duration::from_secs(600);

/// How the agent reaches registries and treats uncovered images (`garrison join` flags).
#[derive(Debug, Clone)]
pub struct ImageOptions {
    /// CA certificates and credentials.
    pub registry: RegistryConfig,
    /// What happens to an image no policy covers, where image policies exist.
    pub no_match: NoMatch,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            registry: RegistryConfig::default(),
            no_match: NoMatch::Deny,
        }
    }
}

/// What the gate knows: when ready, the policies delivered to this cluster and a registry
/// client for them.
pub type GateState = super::gate::GateState<Arc<Loaded>>;

/// Policies as loaded, with the registry client their insecure registries need.
pub struct Loaded {
    /// The policies.
    pub policies: Policies,
    /// The client.
    pub registry: Registry,
}

/// Shared between the add-on and the work gate.
pub type ImageEnforcement = super::gate::Handle<Arc<Loaded>>;

/// What the add-on runs with.
pub struct Ctx {
    /// The hub, as this add-on on this cluster.
    pub hub: kube::Client,
    /// The managed cluster.
    pub spoke: kube::Client,
    /// The add-on's install namespace on the managed cluster, where the Secrets named by
    /// `key.secretRef` are read.
    pub namespace: String,
    /// The cluster's name.
    pub cluster: String,
    /// Where the policies are published for the gate.
    pub enforcement: ImageEnforcement,
    /// Registry settings.
    pub options: ImageOptions,
}

/// The ClusterImagePolicy and TrustRoot templates of the enabled replicated policies.
pub fn image_objects(policies: &[Policy]) -> Vec<Value> {
    policies
        .iter()
        .filter(|p| !p.spec.disabled)
        .flat_map(|p| p.spec.policy_templates.iter())
        .map(|t| t.object_definition.clone())
        .filter(|o| is_cluster_image_policy(o) || is_trust_root(o))
        .collect()
}

/// Runs the add-on until `stop` turns true.
pub async fn run(ctx: Ctx, mut stop: watch::Receiver<bool>) {
    let owner = next_owner();
    set(&ctx.enforcement, owner, GateState::Starting, true);
    let api: Api<Policy> = Api::namespaced(ctx.hub.clone(), &ctx.cluster);
    let selector = format!("{ROOT_POLICY_LABEL},{CLUSTER_NAME_LABEL}={}", ctx.cluster);
    let mut changes = watcher(api.clone(), watcher::Config::default().labels(&selector))
        .default_backoff()
        .boxed();
    let mut last: Option<(Vec<Value>, SecretsRead)> = None;
    loop {
        match api.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => {
                let objects = image_objects(&list.items);
                let secrets = read_secrets(&ctx.spoke, &ctx.namespace, &objects).await;
                let seen = (objects, secrets);
                if last.as_ref() != Some(&seen) {
                    let policies = Policies::load_with(&seen.0, Secrets::Resolved(&seen.1));
                    let mut config = ctx.options.registry.clone();
                    for p in &policies.policies {
                        config
                            .insecure
                            .extend(p.insecure_registries.iter().cloned());
                    }
                    match Registry::new(config) {
                        Ok(registry) => {
                            tracing::info!(
                                addon = ADDON,
                                policies = policies.policies.len(),
                                unusable = policies.broken.len(),
                                "image policies loaded"
                            );
                            for (_, e) in &policies.broken {
                                tracing::warn!(addon = ADDON, error = %e, "an image policy cannot be used; the images it covers are refused");
                            }
                            set(
                                &ctx.enforcement,
                                owner,
                                GateState::Ready(Arc::new(Loaded { policies, registry })),
                                false,
                            );
                            last = Some(seen);
                        }
                        Err(e) => {
                            tracing::warn!(addon = ADDON, error = %e, "cannot build the registry client")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(addon = ADDON, error = %e, "cannot read the cluster's policies; retrying")
            }
        }
        let deadline = tokio::time::sleep(RELOAD);
        tokio::pin!(deadline);
        tokio::select! {
            _ = &mut deadline => {}
            ev = changes.next() => {
                if ev.is_none() { tokio::time::sleep(Duration::from_secs(1)).await; }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ = stop.changed() => {
                set(&ctx.enforcement, owner, GateState::Undecided, false);
                return;
            }
        }
    }
}

/// Secrets read by name: the PEM key, or why it cannot be used.
type SecretsRead = BTreeMap<String, Result<String, String>>;

/// The Secrets the policies among `objects` name, read from `namespace` on the cluster: each
/// one's single data entry, or why it cannot be used (upstream's rules and messages).
async fn read_secrets(spoke: &kube::Client, namespace: &str, objects: &[Value]) -> SecretsRead {
    let api: Api<Secret> = Api::namespaced(spoke.clone(), namespace);
    let mut out = BTreeMap::new();
    for name in secret_refs(objects) {
        let read = match api.get_opt(&name).await {
            Ok(Some(s)) => {
                let data = s.data.unwrap_or_default();
                match data.len() {
                    0 => Err(format!("secret {name:?} contains no data")),
                    1 => data
                        .into_values()
                        .next()
                        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
                        .ok_or_else(|| format!("secret {name:?} contains no data")),
                    _ => Err(format!(
                        "secret {name:?} contains multiple data entries, only one is supported"
                    )),
                }
            }
            Ok(None) => Err(format!(
                "secret {name:?} not found in namespace {namespace} on the cluster"
            )),
            Err(e) => Err(format!("secret {name:?} cannot be read: {e}")),
        };
        out.insert(name, read);
    }
    out
}

/// Whether the add-on has loaded the ClusterImagePolicy or TrustRoot `name` (`kind`), usable
/// or not. Until it has, the gate does not hold works to it.
pub fn loaded(e: &ImageEnforcement, kind: &str, name: &str) -> bool {
    let s = e.read().unwrap_or_else(|e| e.into_inner());
    let GateState::Ready(l) = &s.state else {
        return false;
    };
    let object = format!("{kind}/{name}");
    let read = match kind {
        "TrustRoot" => l.policies.roots.contains_key(name),
        _ => l.policies.policies.iter().any(|p| p.name == name),
    };
    read || l
        .policies
        .broken
        .iter()
        .any(|(_, err)| err.object() == object)
}

/// The error the add-on found loading ClusterImagePolicy `name`, if it is loaded and broken.
pub fn load_error(e: &ImageEnforcement, name: &str) -> Option<String> {
    let s = e.read().unwrap_or_else(|e| e.into_inner());
    let GateState::Ready(loaded) = &s.state else {
        return None;
    };
    let object = format!("ClusterImagePolicy/{name}");
    loaded
        .policies
        .broken
        .iter()
        .find(|(_, err)| err.object() == object)
        .map(|(_, err)| err.to_string())
}

/// Where the images of a manifest are: JSON pointers to the `image` of every entry of every
/// `containers`, `initContainers` and `ephemeralContainers` list anywhere in it, so that pod
/// templates of any kind are covered (a Pod's spec, `spec.template.spec`, a CronJob's
/// `jobTemplate`, a PodTemplate's `template`, and custom resources).
pub fn image_paths(manifest: &Value) -> Vec<String> {
    fn walk(v: &Value, at: &str, depth: usize, out: &mut Vec<String>) {
        if depth > 32 {
            return;
        }
        match v {
            Value::Object(o) => {
                for (k, child) in o {
                    let path = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                    let is_list = matches!(
                        k.as_str(),
                        "containers" | "initContainers" | "ephemeralContainers"
                    );
                    if is_list && let Value::Array(items) = child {
                        for (i, c) in items.iter().enumerate() {
                            if c.get("image").is_some() {
                                out.push(format!("{path}/{i}/image"));
                            }
                        }
                    }
                    walk(child, &path, depth + 1, out);
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    walk(child, &format!("{at}/{i}"), depth + 1, out);
                }
            }
            _ => {}
        }
    }
    let mut out = vec![];
    walk(manifest, "", 0, &mut out);
    out
}

/// The work gate of the add-on.
pub struct ImageGate {
    enforcement: ImageEnforcement,
    cache: Cache,
    no_match: NoMatch,
}

impl ImageGate {
    /// The gate reading `enforcement`.
    pub fn new(enforcement: ImageEnforcement, no_match: NoMatch) -> ImageGate {
        ImageGate {
            enforcement,
            cache: Cache::new(CACHE_SIZE, CACHE_TTL),
            no_match,
        }
    }

    fn state(&self) -> GateState {
        self.enforcement
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .state
            .clone()
    }
}

impl crate::work::gate::Gate for ImageGate {
    fn name(&self) -> &str {
        "image-verification"
    }

    fn check<'a>(
        &'a self,
        work: &'a garrison_api::work::v1::ManifestWork,
        manifests: &'a mut [Value],
    ) -> futures::future::BoxFuture<'a, Result<(), crate::work::gate::Refusal>> {
        Box::pin(async move {
            let refuse = |message: String| crate::work::gate::Refusal {
                reason: "ImageVerificationFailed".into(),
                message,
            };
            let until = tokio::time::Instant::now() + GATE_WAIT;
            let mut state = self.state();
            while matches!(state, GateState::Undecided | GateState::Starting)
                && tokio::time::Instant::now() < until
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
                state = self.state();
            }
            let loaded = match state {
                GateState::Off => return Ok(()),
                GateState::Ready(l) => l,
                GateState::Undecided => {
                    return Err(refuse(
                        "the agent has not learned yet whether image policies apply here; the work is tried again".into(),
                    ));
                }
                GateState::Starting => {
                    return Err(refuse(
                        "the image-verification add-on has not read its policies yet; the work is tried again".into(),
                    ));
                }
            };
            if loaded.policies.is_empty() {
                return Ok(());
            }
            // Every image once, however many containers use it.
            let mut at: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
            for (i, m) in manifests.iter().enumerate() {
                for path in image_paths(m) {
                    match m.pointer(&path).and_then(Value::as_str) {
                        Some(image) => at.entry(image.to_string()).or_default().push((i, path)),
                        None => {
                            return Err(refuse(format!("manifest {i}: {path} is not a string")));
                        }
                    }
                }
            }
            let decisions = futures::future::join_all(at.keys().map(|image| {
                check_image(
                    &loaded.policies,
                    &loaded.registry,
                    &self.cache,
                    image,
                    self.no_match,
                )
            }))
            .await;
            let mut refused = vec![];
            for d in &decisions {
                garrison_telemetry::metrics().image_verification(if d.refused {
                    "refused"
                } else if d.pinned.is_some() && d.reasons.is_empty() {
                    "verified"
                } else {
                    "allowed"
                });
                if d.refused {
                    refused.push(format!("{}: {}", d.image, d.reasons.join("; ")));
                } else if !d.reasons.is_empty() {
                    tracing::warn!(addon = ADDON, work = ?work.metadata.name, image = %d.image, reasons = %d.reasons.join("; "), "image verification warning; applying the work");
                }
            }
            if !refused.is_empty() {
                return Err(refuse(format!(
                    "refused {} image(s): {}",
                    refused.len(),
                    refused.join(" | ")
                )));
            }
            // What is applied is what was verified: each image pinned to its digest.
            let mut pinned: BTreeSet<String> = BTreeSet::new();
            for d in decisions {
                let Some(p) = d.pinned else { continue };
                for (i, path) in &at[&d.image] {
                    if let Some(slot) = manifests[*i].pointer_mut(path) {
                        *slot = Value::String(p.to_string());
                        pinned.insert(p.to_string());
                    }
                }
            }
            tracing::debug!(addon = ADDON, work = ?work.metadata.name, images = pinned.len(), "images verified and pinned");
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn images_are_found_in_every_pod_template() {
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": {
            "initContainers": [{"image": "a"}], "containers": [{"image": "b"}, {"image": "c"}]}}}});
        assert_eq!(
            image_paths(&deploy),
            [
                "/spec/template/spec/initContainers/0/image",
                "/spec/template/spec/containers/0/image",
                "/spec/template/spec/containers/1/image"
            ]
        );
        let cron = json!({"apiVersion": "batch/v1", "kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"image": "x"}]}}}}}});
        assert_eq!(
            image_paths(&cron),
            ["/spec/jobTemplate/spec/template/spec/containers/0/image"]
        );
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"image": "p"}],
            "ephemeralContainers": [{"image": "debug"}]}});
        assert_eq!(image_paths(&pod).len(), 2);
        // Any kind with a pod template counts, custom ones included.
        let custom = json!({"apiVersion": "example.com/v1", "kind": "Runner", "spec": {"template": {"spec": {
            "containers": [{"image": "r"}]}}}});
        assert_eq!(image_paths(&custom).len(), 1);
        let template = json!({"apiVersion": "v1", "kind": "PodTemplate", "template": {"spec": {
            "containers": [{"image": "t"}]}}});
        assert_eq!(
            image_paths(&template),
            ["/template/spec/containers/0/image"]
        );
        let workflow = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {"templates": [
            {"name": "a", "container": {"image": "x"}}, {"name": "b", "containers": [{"image": "y"}]}]}});
        assert_eq!(
            image_paths(&workflow),
            ["/spec/templates/1/containers/0/image"]
        );
        assert!(image_paths(&json!({"kind": "ConfigMap", "data": {}})).is_empty());
    }
}
