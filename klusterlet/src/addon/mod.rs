//! Add-ons on the managed cluster: registration, health and the built-in add-ons.
//!
//! For each registration of each ManagedClusterAddOn of the cluster, the agent makes a key
//! here, on the spoke, asks the hub for a certificate with upstream's CSR (generateName
//! `addon-<cluster>-<addon>-`, its two labels, the add-on's DNS name), and keeps the result in
//! a Secret in the add-on's namespace: for `kubernetes.io/kube-apiserver-client`,
//! `<addon>-hub-kubeconfig` (keys `tls.crt`, `tls.key`, `kubeconfig`, `cluster-name`,
//! `agent-name`); for a custom signer, `<addon>-<signer with / as ->-client-cert` (the same keys
//! but `kubeconfig`: the certificate is for the add-on's own services, not the hub). It asks
//! again at 80% of the certificate's lifetime, and removes the Secrets when the add-on is
//! disabled.
//!
//! Health in Lease mode: the add-on renews a Lease named after it in its namespace; the agent
//! reads it and sets the ManagedClusterAddOn's `Available` condition, as upstream's agent does.
//!
//! Built-in add-ons ([`msa`]) run in this process once their Secret exists, each with a hub
//! client made from that Secret alone: they hold their add-on's RBAC and never the agent's.

mod gate;
pub mod image;
pub mod msa;
pub mod policy;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use base64::Engine;
use futures::{FutureExt, StreamExt};
use garrison_api::ManagedClusterAddOn;
use garrison_api::addon::v1alpha1::HealthCheckMode;
use garrison_api::status::{condition, set_condition};
use garrison_pki::{AddonIdentity, ClusterName, Identity};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;
use tokio::sync::watch;

/// The signer of add-on client certificates.
pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// Label of the add-on's name, on CSRs and on the Secrets the agent writes.
pub const ADDON_LABEL: &str = "open-cluster-management.io/addon-name";
/// Label of the cluster's name on add-on CSRs.
pub const CLUSTER_LABEL: &str = "open-cluster-management.io/cluster-name";
/// Marks the Secrets this agent owns, so it removes only its own.
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "garrison-klusterlet");
/// Namespace of add-on agents when none is configured.
pub const DEFAULT_NAMESPACE: &str = "open-cluster-management-agent-addon";
/// How long the Lease of a healthy add-on lasts between renewals, as upstream.
pub const LEASE_SECONDS: i64 = 60;
/// A Lease not renewed for this many periods means the add-on stopped.
const LEASE_STALE_PERIODS: i64 = 5;
/// How long after a refused request the agent asks again.
const REFUSED_BACKOFF: Duration = Duration::from_secs(300);
/// How often a newly enabled add-on is checked until it is Available.
const SETTLE_CHECK: Duration = Duration::from_secs(2);
/// How long a newly enabled add-on counts as new.
const SETTLE_WINDOW: Duration = Duration::from_secs(120);
/// How often everything is checked even without a change on the hub.
const RESYNC: Duration = Duration::from_secs(30);
/// How often the managed cluster is searched for add-on credentials to remove although no
/// add-on was disabled: a safety net for Secrets written behind the agent's back.
const CREDENTIALS_CHECK: Duration = Duration::from_secs(300);

/// The add-ons built into this agent.
pub const BUILTIN: &[&str] = &[msa::ADDON, policy::ADDON, image::ADDON];

/// The Secret holding an add-on's hub credentials.
pub fn secret_name(addon: &str) -> String {
    format!("{addon}-hub-kubeconfig")
}

/// The namespace an add-on's agent lives in on the managed cluster.
pub fn addon_namespace(mca: &ManagedClusterAddOn) -> String {
    mca.status
        .as_ref()
        .and_then(|s| s.namespace.clone())
        .filter(|n| !n.is_empty())
        .or_else(|| mca.spec.install_namespace.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.into())
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The Secret holding an add-on's certificate of a custom signer, as upstream names it.
pub fn custom_secret_name(addon: &str, signer: &str) -> String {
    format!("{addon}-{}-client-cert", signer.replace('/', "-"))
}

/// The certificate one registration asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wanted {
    /// A hub client certificate for the add-on's identity.
    Hub(AddonIdentity),
    /// A certificate of the add-on's own signer, for the registration's subject.
    Custom {
        signer: String,
        subject: garrison_pki::CustomSubject,
    },
}

impl Wanted {
    fn signer(&self) -> &str {
        match self {
            Wanted::Hub(_) => CLIENT_SIGNER,
            Wanted::Custom { signer, .. } => signer,
        }
    }

    fn secret_name(&self, addon: &str) -> String {
        match self {
            Wanted::Hub(_) => secret_name(addon),
            Wanted::Custom { signer, .. } => custom_secret_name(addon, signer),
        }
    }

    /// Whether `cert_pem` is for what is wanted and not yet due for renewal at `now`.
    fn fresh(&self, cert_pem: &str, now: i64) -> bool {
        let (matches, not_before, not_after) = match self {
            Wanted::Hub(id) => match garrison_pki::cert_info(cert_pem) {
                Ok(i) => (
                    i.identity == Identity::Addon(id.clone()),
                    i.not_before,
                    i.not_after,
                ),
                Err(_) => return false,
            },
            Wanted::Custom { subject, .. } => match garrison_pki::custom::cert_subject(cert_pem) {
                Ok((s, nb, na)) => (s.normalized() == subject.normalized(), nb, na),
                Err(_) => return false,
            },
        };
        matches && !garrison_pki::RotationPolicy::default().due(not_before, not_after, now, 0.0)
    }

    fn request(&self, addon: &str) -> Result<garrison_pki::KeyAndRequest, garrison_pki::PkiError> {
        match self {
            Wanted::Hub(id) => garrison_pki::new_request(&Identity::Addon(id.clone())),
            Wanted::Custom { subject, .. } => garrison_pki::custom::new_request(subject, addon),
        }
    }
}

/// A certificate request waiting for the hub.
struct Pending {
    csr: String,
    key_pem: String,
    wanted: Wanted,
}

/// Pending requests and refusals are kept per add-on and signer.
type RegKey = (String, String);

/// A built-in add-on running in this process.
struct Running {
    /// The certificate it was started with; a rotated one restarts it.
    cert_pem: String,
    stop: watch::Sender<bool>,
}

/// The add-on side of the agent.
pub struct AddonAgent {
    cluster: String,
    agent_id: String,
    hub_url: String,
    hub_ca: String,
    spoke: kube::Client,
    spoke_ca: Option<String>,
    pending: HashMap<RegKey, Pending>,
    /// Registrations whose last request the hub refused, and when to ask again.
    refused: HashMap<RegKey, std::time::Instant>,
    /// When each registered add-on was first seen; a new one is checked every few seconds
    /// until it is Available, so enabling takes seconds rather than a resync period.
    first_seen: HashMap<String, std::time::Instant>,
    /// Whether a new add-on is not Available yet.
    settling: bool,
    running: HashMap<String, Running>,
    /// What the policy add-on enforces at delivery, shared with the work gate.
    enforcement: policy::Enforcement,
    /// The image policies the image-verification add-on loads, shared with the work gate.
    images: image::ImageEnforcement,
    /// How the image-verification add-on reaches registries.
    image_options: image::ImageOptions,
    /// The credentials the last pass kept, and when the cluster was last searched for others.
    /// A pass searches again only when an add-on lost a registration, or after
    /// [`CREDENTIALS_CHECK`], so an idle cluster is not listed every resync.
    kept: Option<(BTreeSet<(String, String)>, std::time::Instant)>,
}

impl AddonAgent {
    /// The add-on agent of `cluster`, reaching the hub at `hub_url` (trusting `hub_ca`) and the
    /// managed cluster through `spoke`, whose CA (for the tokens it reports) is `spoke_ca`.
    pub fn new(
        cluster: &str,
        agent_id: &str,
        hub_url: &str,
        hub_ca: &str,
        spoke: kube::Client,
        spoke_ca: Option<String>,
    ) -> Self {
        AddonAgent {
            cluster: cluster.into(),
            agent_id: agent_id.into(),
            hub_url: hub_url.into(),
            hub_ca: hub_ca.into(),
            spoke,
            spoke_ca,
            pending: HashMap::new(),
            refused: HashMap::new(),
            first_seen: HashMap::new(),
            settling: false,
            running: HashMap::new(),
            enforcement: policy::Enforcement::default(),
            images: image::ImageEnforcement::default(),
            image_options: image::ImageOptions::default(),
            kept: None,
        }
    }

    /// Publishes the image policies into `images` (read by the image gate), reaching
    /// registries with `options`.
    pub fn with_images(
        mut self,
        images: image::ImageEnforcement,
        options: image::ImageOptions,
    ) -> Self {
        self.images = images;
        self.image_options = options;
        self
    }

    /// Publishes what the policy add-on enforces into `enforcement` (read by the work gate).
    pub fn with_enforcement(mut self, enforcement: policy::Enforcement) -> Self {
        self.enforcement = enforcement;
        self
    }

    /// Runs until `stop` turns true, with the agent's current hub client from `hub_rx`.
    pub async fn run(
        mut self,
        mut hub_rx: watch::Receiver<Option<kube::Client>>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let hub = hub_rx.borrow_and_update().clone();
            let Some(hub) = hub else {
                tokio::select! {
                    _ = hub_rx.changed() => continue,
                    _ = stop.changed() => break,
                }
            };
            // The cluster's add-ons are read from a watch cache, so a pass costs the hub
            // nothing: any change to them wakes the loop; so do CSR decisions, which are
            // polled while requests are pending, and a resync re-checks health.
            let mcas: Api<ManagedClusterAddOn> = Api::namespaced(hub.clone(), &self.cluster);
            let (cache, writer) = reflector::store::<ManagedClusterAddOn>();
            let mut changes = reflector::reflector(
                writer,
                watcher(mcas, watcher::Config::default()).default_backoff(),
            )
            .boxed();
            let mut ready = false;
            loop {
                if ready {
                    let list: Vec<ManagedClusterAddOn> =
                        cache.state().iter().map(|a| (**a).clone()).collect();
                    if let Err(e) = self.sync(&hub, &list).await {
                        tracing::warn!(error = %e, "add-on sync failed; retrying");
                    }
                }
                let wait = if !self.pending.is_empty() {
                    Duration::from_secs(1)
                } else if self.settling {
                    SETTLE_CHECK
                } else {
                    RESYNC
                };
                let deadline = tokio::time::sleep(wait);
                tokio::pin!(deadline);
                tokio::select! {
                    _ = &mut deadline => {}
                    ev = changes.next() => {
                        if ev.is_none() { tokio::time::sleep(Duration::from_secs(1)).await; }
                        // Coalesce a burst of events into one pass.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        while let Some(Some(_)) = changes.next().now_or_never() {}
                    }
                    _ = hub_rx.changed() => break,
                    _ = stop.changed() => {
                        self.stop_all();
                        return;
                    }
                }
                ready = ready || cache.wait_until_ready().now_or_never().is_some();
            }
        }
        self.stop_all();
    }

    fn stop_all(&mut self) {
        for (_, r) in self.running.drain() {
            let _ = r.stop.send(true);
        }
    }

    /// One pass over the cluster's add-ons, `list` as the watch cache holds them.
    pub async fn sync(
        &mut self,
        hub: &kube::Client,
        list: &[ManagedClusterAddOn],
    ) -> Result<(), kube::Error> {
        // Add-ons with a registration, and their namespaces; the Secrets they keep.
        let mut active: BTreeMap<String, String> = BTreeMap::new();
        let mut keep: BTreeSet<(String, String)> = BTreeSet::new();
        let mut unavailable: Vec<String> = vec![];
        for mca in list {
            let name = mca.name_any();
            if mca.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let ns = addon_namespace(mca);
            let wanted = self.wanted(mca);
            if !wanted.is_empty() {
                active.insert(name.clone(), ns.clone());
            }
            for w in wanted {
                keep.insert((ns.clone(), w.secret_name(&name)));
                if let Err(e) = self.register(hub, &name, &ns, w).await {
                    tracing::warn!(addon = %name, error = %e, "add-on registration failed");
                }
            }
            match self.report_health(hub, mca, &ns).await {
                Ok(true) => {}
                Ok(false) => unavailable.push(name.clone()),
                Err(e) => {
                    tracing::warn!(addon = %name, error = %e, "add-on health report failed")
                }
            }
        }
        self.pending.retain(|(a, _), _| active.contains_key(a));
        self.refused.retain(|(a, _), _| active.contains_key(a));
        self.first_seen.retain(|a, _| active.contains_key(a));
        let now = std::time::Instant::now();
        for a in active.keys() {
            self.first_seen.entry(a.clone()).or_insert(now);
        }
        self.settling = unavailable.iter().any(|a| {
            self.first_seen
                .get(a)
                .is_some_and(|t| now.duration_since(*t) < SETTLE_WINDOW)
        });
        // The work gate learns whether policies may be enforced here.
        let policy_enabled = list
            .iter()
            .any(|m| m.name_any() == policy::ADDON && m.metadata.deletion_timestamp.is_none());
        policy::decided(&self.enforcement, policy_enabled);
        let image_enabled = list
            .iter()
            .any(|m| m.name_any() == image::ADDON && m.metadata.deletion_timestamp.is_none());
        image::decided(&self.images, image_enabled);
        // Every credential on the cluster was kept by some pass, or written since for an add-on
        // that is kept: only a registration gone since the last pass leaves one to remove.
        let searched = match self.kept.take() {
            Some((before, at)) if before.is_subset(&keep) && at.elapsed() < CREDENTIALS_CHECK => at,
            _ => {
                self.remove_disabled(&keep).await?;
                std::time::Instant::now()
            }
        };
        self.kept = Some((keep, searched));
        self.run_builtins(&active).await;
        Ok(())
    }

    /// The certificates an add-on's registrations ask for. A hub registration must name an
    /// identity of this add-on on this cluster, and a custom one a subject that can be issued;
    /// anything else is skipped with a warning.
    fn wanted(&self, mca: &ManagedClusterAddOn) -> Vec<Wanted> {
        let addon = mca.name_any();
        let Ok(cluster) = ClusterName::parse(&self.cluster) else {
            return vec![];
        };
        let Ok(default) = AddonIdentity::new(cluster, &addon, &addon) else {
            return vec![];
        };
        let mut out: Vec<Wanted> = vec![];
        let registrations = mca.status.as_ref().map(|s| s.registrations.as_slice());
        for reg in registrations.unwrap_or_default() {
            // Upstream's defaults for an empty user or group list, as the hub reads them.
            let subject = reg.subject.clone().unwrap_or_default();
            let user = Some(subject.user.clone())
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| default.user());
            let groups = Some(subject.groups.clone())
                .filter(|g| !g.is_empty())
                .unwrap_or_else(|| default.groups().to_vec());
            let w = if reg.signer_name == CLIENT_SIGNER {
                match Identity::from_subject(&user, &groups) {
                    Ok(Identity::Addon(a))
                        if a.cluster().as_str() == self.cluster && a.addon() == addon =>
                    {
                        Wanted::Hub(a)
                    }
                    _ => {
                        tracing::warn!(%addon, %user, "the add-on's registration subject is not an identity of this add-on on this cluster; not requesting it");
                        continue;
                    }
                }
            } else {
                let subject = garrison_pki::CustomSubject {
                    user,
                    groups,
                    organizational_units: subject.organization_units.clone(),
                };
                if let Err(e) = subject.check() {
                    tracing::warn!(%addon, signer = %reg.signer_name, error = %e, "not requesting the add-on's custom-signer certificate");
                    continue;
                }
                Wanted::Custom {
                    signer: reg.signer_name.clone(),
                    subject,
                }
            };
            // One certificate per signer, as upstream.
            if !out.iter().any(|o| o.signer() == w.signer()) {
                out.push(w);
            }
        }
        out
    }

    /// Makes sure the Secret of one registration holds a certificate not due for renewal.
    async fn register(
        &mut self,
        hub: &kube::Client,
        addon: &str,
        ns: &str,
        wanted: Wanted,
    ) -> Result<(), kube::Error> {
        let key: RegKey = (addon.to_string(), wanted.signer().to_string());
        let secrets: Api<Secret> = Api::namespaced(self.spoke.clone(), ns);
        let current = secrets.get_opt(&wanted.secret_name(addon)).await?;
        let now = jiff::Timestamp::now().as_second();
        let fresh = current
            .as_ref()
            .and_then(|s| s.data.as_ref()?.get("tls.crt"))
            .and_then(|c| String::from_utf8(c.0.clone()).ok())
            .is_some_and(|cert| wanted.fresh(&cert, now));
        if fresh {
            return Ok(());
        }
        let csrs: Api<CertificateSigningRequest> = Api::all(hub.clone());
        if let Some(p) = self.pending.get(&key).filter(|p| p.wanted == wanted) {
            let Some(csr) = csrs.get_opt(&p.csr).await? else {
                self.pending.remove(&key);
                return Ok(());
            };
            let status = csr.status.unwrap_or_default();
            if let Some(c) = crate::agent::refusal(&status) {
                tracing::error!(%addon, signer = %key.1, csr = %p.csr, condition = %c.type_, message = %c.message.unwrap_or_default(), "the hub refused the add-on's certificate request; asking again in 5 minutes");
                self.pending.remove(&key);
                self.refused
                    .insert(key, std::time::Instant::now() + REFUSED_BACKOFF);
                return Ok(());
            }
            let Some(cert) = status.certificate else {
                return Ok(());
            };
            let cert_pem = String::from_utf8_lossy(&cert.0).into_owned();
            let p = self.pending.remove(&key).expect("present");
            self.write_secret(ns, addon, &p.wanted, &cert_pem, &p.key_pem)
                .await?;
            tracing::info!(%addon, signer = %key.1, "add-on certificate issued");
            return Ok(());
        }
        if self
            .refused
            .get(&key)
            .is_some_and(|t| std::time::Instant::now() < *t)
        {
            return Ok(());
        }
        let req = wanted
            .request(addon)
            .map_err(|e| kube::Error::Service(e.into()))?;
        let csr: CertificateSigningRequest = serde_json::from_value(json!({
            "metadata": {"generateName": format!("addon-{}-{addon}-", self.cluster),
                "labels": {CLUSTER_LABEL: self.cluster, ADDON_LABEL: addon}},
            "spec": {
                "signerName": wanted.signer(),
                "request": b64(&req.csr_pem),
                "usages": ["digital signature", "key encipherment", "client auth"],
            }
        }))
        .map_err(kube::Error::SerdeError)?;
        let created = csrs.create(&PostParams::default(), &csr).await?;
        tracing::info!(%addon, signer = %key.1, csr = %created.name_any(), "requested an add-on certificate");
        self.pending.insert(
            key,
            Pending {
                csr: created.name_any(),
                key_pem: req.key_pem,
                wanted,
            },
        );
        Ok(())
    }

    async fn ensure_namespace(&self, ns: &str) -> Result<(), kube::Error> {
        let nss: Api<Namespace> = Api::all(self.spoke.clone());
        if nss.get_opt(ns).await?.is_none() {
            let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))
                .map_err(kube::Error::SerdeError)?;
            match nss.create(&PostParams::default(), &n).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn write_secret(
        &self,
        ns: &str,
        addon: &str,
        wanted: &Wanted,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<(), kube::Error> {
        self.ensure_namespace(ns).await?;
        let name = wanted.secret_name(addon);
        let mut data = json!({
            "tls.crt": b64(cert_pem), "tls.key": b64(key_pem),
            "cluster-name": b64(&self.cluster), "agent-name": b64(&self.agent_id),
        });
        if let Wanted::Hub(_) = wanted {
            let kubeconfig = garrison_k8s::kubeconfig::with_client_cert(
                "hub",
                &self.hub_url,
                &self.hub_ca,
                addon,
                cert_pem,
                key_pem,
            );
            data["kubeconfig"] = json!(b64(&kubeconfig));
        }
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": ns,
                "labels": {ADDON_LABEL: addon, MANAGED_BY.0: MANAGED_BY.1}},
            "type": "Opaque",
            "data": data,
        });
        let secrets: Api<Secret> = Api::namespaced(self.spoke.clone(), ns);
        secrets
            .patch(
                &name,
                &PatchParams::apply("garrison-klusterlet").force(),
                &Patch::Apply(secret),
            )
            .await?;
        Ok(())
    }

    /// Removes the Secrets this agent wrote that no registration keeps (`(namespace, name)`).
    async fn remove_disabled(
        &mut self,
        keep: &BTreeSet<(String, String)>,
    ) -> Result<(), kube::Error> {
        let secrets: Api<Secret> = Api::all(self.spoke.clone());
        let mine = secrets
            .list(&ListParams::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1)))
            .await?;
        for s in mine.items {
            let Some(addon) = s.labels().get(ADDON_LABEL).cloned() else {
                continue;
            };
            let ns = s.namespace().unwrap_or_default();
            if keep.contains(&(ns.clone(), s.name_any())) {
                continue;
            }
            tracing::info!(%addon, namespace = %ns, secret = %s.name_any(), "add-on disabled; removing its credentials");
            let api: Api<Secret> = Api::namespaced(self.spoke.clone(), &ns);
            match api.delete(&s.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sets `Available` from the add-on's Lease on the managed cluster (Lease mode only).
    /// Returns whether the add-on is Available (always true in Customized mode, where the
    /// add-on reports itself).
    async fn report_health(
        &self,
        hub: &kube::Client,
        mca: &ManagedClusterAddOn,
        ns: &str,
    ) -> Result<bool, kube::Error> {
        let mode = mca
            .status
            .as_ref()
            .and_then(|s| s.health_check.as_ref())
            .and_then(|h| h.mode)
            .unwrap_or(HealthCheckMode::Lease);
        if mode != HealthCheckMode::Lease {
            return Ok(true);
        }
        let addon = mca.name_any();
        let leases: Api<Lease> = Api::namespaced(self.spoke.clone(), ns);
        let now = jiff::Timestamp::now();
        let cond = match leases.get_opt(&addon).await? {
            None => condition(
                "Available",
                "Unknown",
                "ManagedClusterAddOnLeaseNotFound",
                &format!("The status of {addon} add-on is unknown."),
            ),
            Some(l) => {
                let spec = l.spec.unwrap_or_default();
                let period = spec
                    .lease_duration_seconds
                    .map(i64::from)
                    .filter(|s| *s > 0)
                    .unwrap_or(LEASE_SECONDS);
                let renewed = spec.renew_time.map(|t| t.0.as_second()).unwrap_or(0);
                if now.as_second() - renewed <= period * LEASE_STALE_PERIODS {
                    condition(
                        "Available",
                        "True",
                        "ManagedClusterAddOnLeaseUpdated",
                        &format!("{addon} add-on is available."),
                    )
                } else {
                    condition(
                        "Available",
                        "False",
                        "ManagedClusterAddOnLeaseUpdateStopped",
                        &format!("{addon} add-on is not available."),
                    )
                }
            }
        };
        let mut conditions = mca
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let up = cond.status == "True";
        if !set_condition(&mut conditions, cond, Time(now)) {
            return Ok(up);
        }
        let mcas: Api<ManagedClusterAddOn> = Api::namespaced(hub.clone(), &self.cluster);
        // With the resourceVersion read: a newer status (the hub's add-on manager) wins, and
        // this is written again on the next pass.
        let patch = json!({"metadata": {"resourceVersion": mca.resource_version()},
            "status": {"conditions": conditions}});
        match mcas
            .patch_status(&addon, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => Ok(up),
            // Written again on the next pass, which comes soon while it is not Available.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Starts the built-in add-ons whose credentials are ready, restarts those whose
    /// certificate was rotated, and stops those disabled.
    async fn run_builtins(&mut self, active: &BTreeMap<String, String>) {
        self.running.retain(|name, r| {
            let keep = active.contains_key(name);
            if !keep {
                tracing::info!(addon = %name, "stopping the built-in add-on");
                let _ = r.stop.send(true);
            }
            keep
        });
        for name in BUILTIN {
            let Some(ns) = active.get(*name) else {
                continue;
            };
            let secrets: Api<Secret> = Api::namespaced(self.spoke.clone(), ns);
            let Ok(Some(secret)) = secrets.get_opt(&secret_name(name)).await else {
                continue;
            };
            let field = |k: &str| {
                secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(k))
                    .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                    .unwrap_or_default()
            };
            let (cert_pem, key_pem) = (field("tls.crt"), field("tls.key"));
            if self
                .running
                .get(*name)
                .is_some_and(|r| r.cert_pem == cert_pem)
            {
                continue;
            }
            let hub = match crate::hub::client(
                &self.hub_url,
                &self.hub_ca,
                crate::hub::Auth::Cert(&crate::state::Credentials {
                    cert_pem: cert_pem.clone(),
                    key_pem,
                }),
            )
            .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(addon = %name, error = %e, "cannot build the add-on's hub client");
                    continue;
                }
            };
            if let Some(old) = self.running.remove(*name) {
                let _ = old.stop.send(true);
            }
            let (tx, rx) = watch::channel(false);
            tracing::info!(addon = %name, "starting the built-in add-on with its own hub identity");
            let ctx = msa::Ctx {
                hub,
                spoke: self.spoke.clone(),
                cluster: self.cluster.clone(),
                namespace: ns.clone(),
                spoke_ca: self.spoke_ca.clone(),
            };
            let gates = Gates {
                policy: self.enforcement.clone(),
                images: self.images.clone(),
                image_options: self.image_options.clone(),
            };
            tokio::spawn(run_builtin(name, ctx, gates, rx));
            self.running
                .insert(name.to_string(), Running { cert_pem, stop: tx });
        }
    }
}

/// Runs a built-in add-on: its health Lease, renewed every period, and its own loop. `ctx` is
/// what every built-in add-on is given; each takes the part it needs.
/// What the built-in add-ons share with the work gates.
struct Gates {
    policy: policy::Enforcement,
    images: image::ImageEnforcement,
    image_options: image::ImageOptions,
}

async fn run_builtin(
    name: &'static str,
    ctx: msa::Ctx,
    gates: Gates,
    mut stop: watch::Receiver<bool>,
) {
    let lease_spoke = ctx.spoke.clone();
    let ns = ctx.namespace.clone();
    let mut lease_stop = stop.clone();
    let lease = async move {
        loop {
            if let Err(e) = renew_lease(&lease_spoke, &ns, name).await {
                tracing::warn!(addon = name, error = %e, "cannot renew the add-on's lease");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(LEASE_SECONDS as u64)) => {}
                _ = lease_stop.changed() => return,
            }
        }
    };
    let main = async {
        match name {
            msa::ADDON => msa::run(ctx, stop.clone()).await,
            policy::ADDON => {
                let ctx = policy::Ctx {
                    hub: ctx.hub,
                    spoke: ctx.spoke,
                    cluster: ctx.cluster,
                    enforcement: gates.policy,
                    images: gates.images,
                };
                policy::run(ctx, stop.clone()).await
            }
            image::ADDON => {
                let ctx = image::Ctx {
                    hub: ctx.hub,
                    spoke: ctx.spoke,
                    namespace: ctx.namespace,
                    cluster: ctx.cluster,
                    enforcement: gates.images,
                    options: gates.image_options,
                };
                image::run(ctx, stop.clone()).await
            }
            _ => {
                let _ = stop.changed().await;
            }
        }
    };
    tokio::join!(lease, main);
}

/// Creates or renews the Lease named after the add-on in its namespace.
pub async fn renew_lease(spoke: &kube::Client, ns: &str, name: &str) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(spoke.clone(), ns);
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS,
                 "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(jiff::Timestamp::now())},
    });
    leases
        .patch(
            name,
            &PatchParams::apply(&format!("garrison-addon-{name}")).force(),
            &Patch::Apply(lease),
        )
        .await?;
    Ok(())
}
