//! The work agent: applies the ManifestWorks of this cluster's namespace on the hub to the
//! managed cluster, records what it applied in an AppliedManifestWork, reports status back, and
//! cleans up when works are deleted or evicted.
//!
//! One pass over a work ([`WorkAgent::reconcile`]):
//! 1. a work being deleted is cleaned up per its delete option, then its finalizer is removed;
//! 2. otherwise the finalizer is added, and the AppliedManifestWork created;
//! 3. the gates run over the manifests ([`gate`]); a refusal stops the work here;
//! 4. manifests are applied in kind order with their update strategies ([`apply`]);
//! 5. resources the work no longer names are released (deleted unless another owner holds them
//!    or the delete option orphans them);
//! 6. conditions and status feedback are written back ([`status`]).
//!
//! Every pass is idempotent, so a pass cut short (the agent killed mid-apply) is finished by the
//! next one. Passes run on every watch event and every resync period, which also restores
//! resources changed or deleted on the cluster. While the hub cannot be reached nothing is
//! deleted: works are re-applied from the last copy seen.

pub mod apply;
pub mod executor;
pub mod gate;
pub mod jsonpath;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use garrison_api::labels::{APPLIED_MANIFEST_WORK_FINALIZER, MANIFEST_WORK_FINALIZER};
use garrison_api::work::v1::{
    AppliedManifestResourceMeta, AppliedManifestWork, AppliedManifestWorkSpec,
    DeletePropagationPolicyType, ManifestResourceMeta, ManifestWork, ManifestWorkStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::watch;

use self::apply::{Released, Resolver, Target};
use self::gate::Gate;
use self::status::Outcome;
use crate::agent::status_code;

/// Default period between full passes (drift correction and status feedback).
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(10);
/// How often the AppliedManifestWorks are looked at for works gone from the hub when no
/// deletion or relist said one might be: a safety net for records written behind the agent's
/// back.
const FULL_EVICTION_CHECK: Duration = Duration::from_secs(300);
/// Default time an AppliedManifestWork whose work is gone from the hub is kept before its
/// resources are deleted.
pub const DEFAULT_EVICTION_GRACE: Duration = Duration::from_secs(60 * 60);

/// The hash of a hub's URL that prefixes AppliedManifestWork names, so two hubs managing one
/// cluster never collide: hex SHA-256.
pub fn hub_hash(hub_url: &str) -> String {
    garrison_pki::csr::hex(ring::digest::digest(&ring::digest::SHA256, hub_url.as_bytes()).as_ref())
}

/// The AppliedManifestWork name for a work: `<hub hash>-<work name>`.
pub fn applied_name(hub_hash: &str, work: &str) -> String {
    format!("{hub_hash}-{work}")
}

/// Tunables.
#[derive(Debug, Clone)]
pub struct Options {
    /// Period between full passes.
    pub resync: Duration,
    /// Grace period before evicting the resources of a work that is gone from the hub.
    pub eviction_grace: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            resync: DEFAULT_RESYNC,
            eviction_grace: DEFAULT_EVICTION_GRACE,
        }
    }
}

/// The work agent of one managed cluster.
pub struct WorkAgent {
    cluster: String,
    hub_hash: String,
    agent_id: String,
    spoke: kube::Client,
    resolver: Resolver,
    gates: Vec<Arc<dyn Gate>>,
    opts: Options,
    /// The generation of each work whose first pass joined the writer's trace: later passes
    /// (resyncs) are traces of their own, so a work's trace does not grow for as long as it lives.
    traced: std::sync::Mutex<BTreeMap<String, i64>>,
}

/// Whether a watcher error is one the watcher recovers from by itself without the hub being
/// unreachable: an established watch that broke (resumed from its resourceVersion) or one the
/// hub expired with 410 Gone (relisted).
fn watch_resumes(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::WatchFailed(_) => true,
        watcher::Error::WatchError(status) => status.code == 410,
        _ => false,
    }
}

/// A watch that could not (re)start because the request never got an answer: a connection
/// refused, reset or closed under it, rather than a Status from the hub.
fn transport_failure(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) => {
            !matches!(e, kube::Error::Api(_))
        }
        _ => false,
    }
}

/// Whether the hub answers a one-item list of this cluster's works within a few seconds.
async fn hub_answers(api: &Api<ManifestWork>) -> bool {
    let one = ListParams::default().limit(1);
    let probe = api.list_metadata(&one);
    matches!(
        tokio::time::timeout(Duration::from_secs(10), probe).await,
        Ok(Ok(_))
    )
}

impl WorkAgent {
    /// An agent for `cluster`, applying to `spoke`, for the hub at `hub_url`.
    pub fn new(
        cluster: &str,
        hub_url: &str,
        agent_id: &str,
        spoke: kube::Client,
        gates: Vec<Arc<dyn Gate>>,
        opts: Options,
    ) -> Self {
        WorkAgent {
            cluster: cluster.into(),
            hub_hash: hub_hash(hub_url),
            agent_id: if agent_id.is_empty() {
                hub_hash(hub_url)
            } else {
                agent_id.into()
            },
            resolver: Resolver::new(spoke.clone()),
            traced: Default::default(),
            spoke,
            gates,
            opts,
        }
    }

    /// Runs until `stop` turns true. `hub` carries the current hub client; a new one (after a
    /// certificate rotation) restarts the watch with it.
    pub async fn run(
        self: Arc<Self>,
        mut hub: watch::Receiver<Option<kube::Client>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut cache: BTreeMap<String, ManifestWork> = BTreeMap::new();
        let mut synced = false;
        // Whether the AppliedManifestWorks need a look for works gone from the hub: a work
        // leaves the cache only by a deletion or a relist, and an eviction in its grace period
        // is looked at every resync; otherwise only every FULL_EVICTION_CHECK.
        let mut evict_due = true;
        let mut evicted_at = tokio::time::Instant::now();
        let mut ticker = tokio::time::interval(self.opts.resync);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let client = hub.borrow_and_update().clone();
            let Some(client) = client else {
                tokio::select! {
                    r = hub.changed() => if r.is_err() { return },
                    _ = stop.changed() => return,
                }
                continue;
            };
            let api: Api<ManifestWork> = Api::namespaced(client.clone(), &self.cluster);
            let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
            let mut initial: BTreeMap<String, ManifestWork> = BTreeMap::new();
            let mut reachable = true;
            let mut failures = 0u32;
            let mut backoff =
                crate::agent::Backoff::new(Duration::from_millis(500), crate::agent::MAX_BACKOFF);
            loop {
                tokio::select! {
                    ev = stream.next() => match ev {
                        Some(Ok(ev)) => {
                            reachable = true;
                            failures = 0;
                            backoff.reset();
                            match ev {
                                watcher::Event::Apply(w) => {
                                    let name = w.name_any();
                                    // The agent's own status writes come back as events; only a
                                    // new spec, deletion or finalizer change needs a pass now.
                                    let newer = if cache.get(&name).is_none_or(|old| needs_pass(old, &w)) {
                                        self.reconcile(&client, &w).await
                                    } else {
                                        None
                                    };
                                    cache.insert(name, newer.unwrap_or(w));
                                }
                                watcher::Event::Delete(w) => {
                                    cache.remove(&w.name_any());
                                    evict_due = true;
                                }
                                watcher::Event::Init => initial.clear(),
                                watcher::Event::InitApply(w) => {
                                    initial.insert(w.name_any(), w);
                                }
                                watcher::Event::InitDone => {
                                    cache = std::mem::take(&mut initial);
                                    synced = true;
                                    self.reconcile_all(&client, &mut cache).await;
                                    evict_due = self.evict(&cache).await;
                                    evicted_at = tokio::time::Instant::now();
                                }
                            }
                        }
                        // A watch the hub ended (timeout, reset stream, HTTP/2 GOAWAY) resumes
                        // from the last resourceVersion; 410 Gone relists. Both are routine.
                        Some(Err(e)) if watch_resumes(&e) => {
                            tracing::debug!(error = %e, "ManifestWork watch ended; resuming");
                        }
                        // A failed restart often only raced a connection the hub or a proxy
                        // had just closed: the first is retried quietly, and from the second
                        // on, a transport failure asks the hub directly before calling it out
                        // of reach. An answer with a Status is the hub refusing, not a race.
                        Some(Err(e)) => {
                            failures += 1;
                            tokio::select! {
                                _ = tokio::time::sleep(backoff.next_delay()) => {}
                                _ = stop.changed() => return,
                            }
                            let out_of_reach = failures >= 2
                                && (!transport_failure(&e) || !hub_answers(&api).await);
                            if !out_of_reach {
                                tracing::debug!(error = %e, "ManifestWork watch did not restart; retrying");
                            } else {
                                if reachable {
                                    tracing::warn!(error = %e, "cannot watch ManifestWorks on the hub; applying from the last copy");
                                }
                                reachable = false;
                            }
                        }
                        None => break,
                    },
                    _ = ticker.tick() => {
                        self.reconcile_all(&client, &mut cache).await;
                        // Evict only on what a reachable hub said is gone.
                        if synced && reachable
                            && (evict_due || evicted_at.elapsed() >= FULL_EVICTION_CHECK)
                        {
                            evict_due = self.evict(&cache).await;
                            evicted_at = tokio::time::Instant::now();
                        }
                    }
                    r = hub.changed() => {
                        if r.is_err() { return }
                        break;
                    }
                    _ = stop.changed() => return,
                }
            }
        }
    }

    fn applied_api(&self) -> Api<AppliedManifestWork> {
        Api::all(self.spoke.clone())
    }

    /// A pass over every cached work; each keeps the copy its pass wrote, if newer.
    async fn reconcile_all(&self, hub: &kube::Client, cache: &mut BTreeMap<String, ManifestWork>) {
        for w in cache.values_mut() {
            if let Some(newer) = self.reconcile(hub, w).await {
                *w = newer;
            }
        }
    }

    /// One idempotent pass over a work. Failures are reported in the work's status or logged;
    /// the next pass retries. Answers the copy of the work the pass itself wrote last (its
    /// finalizer or its status), so that the watch events of the pass's own writes, which
    /// carry no news, start no further pass.
    pub async fn reconcile(&self, hub: &kube::Client, work: &ManifestWork) -> Option<ManifestWork> {
        let name = work.name_any();
        let started = std::time::Instant::now();
        // The pass continues the trace of the write that made the work, when it carries one.
        let generation = work.meta().generation.unwrap_or_default();
        let span = tracing::info_span!(
            "reconcile work",
            otel.kind = "consumer",
            work = %name,
            cluster = %self.cluster,
            generation,
        );
        let stamped_for = work
            .annotations()
            .get(garrison_telemetry::traces::GENERATION_ANNOTATION)
            .and_then(|g| g.parse::<i64>().ok());
        if let Some(tp) = work
            .annotations()
            .get(garrison_telemetry::traces::ANNOTATION)
            .filter(|_| stamped_for == Some(generation))
        {
            let first = self
                .traced
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.clone(), generation)
                != Some(generation);
            if first {
                garrison_telemetry::traces::set_parent(&span, tp);
            }
        }
        let pass = async {
            if work.meta().deletion_timestamp.is_some() {
                self.finalize(hub, work).await.map(|()| None)
            } else {
                self.apply_work(hub, work).await
            }
        };
        let result = tracing::Instrument::instrument(pass, span).await;
        garrison_telemetry::metrics().reconcile("work-agent", result.is_ok(), started.elapsed());
        match result {
            Ok(newer) => newer,
            Err(e) => {
                tracing::debug!(work = %name, error = %e, "work pass incomplete; retrying on the next pass");
                None
            }
        }
    }

    /// Applies a work and reports its status; answers the last copy of the work it wrote.
    async fn apply_work(
        &self,
        hub: &kube::Client,
        work: &ManifestWork,
    ) -> anyhow::Result<Option<ManifestWork>> {
        let name = work.name_any();
        let works: Api<ManifestWork> = Api::namespaced(hub.clone(), &self.cluster);
        let mut finalized = None;
        if !work
            .finalizers()
            .iter()
            .any(|f| f == MANIFEST_WORK_FINALIZER)
        {
            let mut finalizers = work.finalizers().to_vec();
            finalizers.push(MANIFEST_WORK_FINALIZER.to_string());
            let patch = json!({"metadata": {"finalizers": finalizers,
                "resourceVersion": work.resource_version()}});
            // A conflict means a newer copy is on its way through the watch.
            finalized = Some(
                works
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?,
            );
        }
        let work = finalized.as_ref().unwrap_or(work);
        let amw = self.ensure_applied(&name).await?;
        let amw_name = amw.name_any();
        let amw_uid = amw.uid().unwrap_or_default();
        let owner = apply::owner_ref(&amw_name, &amw_uid);
        let mut manifests: Vec<Value> = work
            .spec
            .workload
            .as_ref()
            .map(|w| w.manifests.iter().map(|m| m.0.clone()).collect())
            .unwrap_or_default();

        if let Err(refusal) = gate::run_gates(&self.gates, work, &mut manifests).await {
            let st = status::refused(work, &refusal);
            let written = self.write_status(hub, work, st).await?;
            return Ok(written.filter(|w| !needs_pass(work, w)).or(finalized));
        }

        let mut outcomes: Vec<Option<Outcome>> = vec![None; manifests.len()];
        let mut targets: Vec<Option<Target>> = vec![None; manifests.len()];
        for i in apply::apply_order(&manifests) {
            let (outcome, target) = self
                .apply_manifest(i, &manifests[i], work, &owner, &amw_uid)
                .await;
            outcomes[i] = Some(outcome);
            targets[i] = target;
        }
        let outcomes: Vec<Outcome> = outcomes.into_iter().flatten().collect();

        // What is applied now, what was applied before and is still named, and what is stale.
        let previous = amw
            .status
            .as_ref()
            .map(|s| s.applied_resources.clone())
            .unwrap_or_default();
        let mut applied: Vec<AppliedManifestResourceMeta> = Vec::new();
        for (o, t) in outcomes.iter().zip(&targets) {
            if let (Some(t), Some(uid)) = (t, o.applied_uid.as_deref()) {
                applied.push(t.applied(uid));
            }
        }
        let mut stale = Vec::new();
        for p in previous {
            let now_applied = applied.iter().any(|a| same_resource(a, &p));
            if now_applied {
                continue;
            }
            if still_named(&p, &manifests, &targets) {
                // Named but not applied this pass (an error): keep the record.
                applied.push(p);
            } else {
                stale.push(p);
            }
        }
        for p in stale {
            match apply::release(&self.spoke, &p, &amw_uid).await {
                Ok(Released::Gone | Released::Deleting | Released::Kept) => {
                    tracing::info!(work = %name, resource = %p.resource, name = %p.name, "released a resource the work no longer names");
                }
                Err(e) => {
                    tracing::warn!(work = %name, error = %e.0, "cannot release a removed resource; retrying");
                    applied.push(p);
                }
            }
        }
        applied.sort_by(|a, b| {
            (&a.group, &a.resource, &a.namespace, &a.name).cmp(&(
                &b.group,
                &b.resource,
                &b.namespace,
                &b.name,
            ))
        });
        self.record_applied(&amw, applied).await?;
        let st = status::compute(work, &outcomes);
        // The status patch has no precondition: the copy it answers carries any change made
        // to the work during the pass (a new spec, a deletion). That copy would make the
        // change's own event look like old news, so it is kept only if nothing changed.
        let written = self.write_status(hub, work, st).await?;
        Ok(written.filter(|w| !needs_pass(work, w)).or(finalized))
    }

    async fn apply_manifest(
        &self,
        ordinal: usize,
        manifest: &Value,
        work: &ManifestWork,
        owner: &Value,
        owner_uid: &str,
    ) -> (Outcome, Option<Target>) {
        let api_version = manifest["apiVersion"].as_str().unwrap_or_default();
        let kind = manifest["kind"].as_str().unwrap_or_default();
        let name = manifest
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let ns = manifest
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let mut meta = ManifestResourceMeta {
            ordinal: ordinal as i32,
            group: Some(group.into()),
            version: Some(version.into()),
            kind: Some(kind.into()),
            resource: Some(String::new()),
            name: Some(name.into()),
            namespace: Some(ns.into()),
        };
        if kind.is_empty() || api_version.is_empty() || name.is_empty() {
            let msg = "the manifest needs apiVersion, kind and metadata.name".to_string();
            return (Outcome::failed(meta, msg), None);
        }
        let resolved = match self.resolver.resolve(api_version, kind).await {
            Ok(r) => r,
            Err(msg) => return (Outcome::failed(meta, msg), None),
        };
        let target = Target {
            namespace: if resolved.namespaced {
                if ns.is_empty() {
                    "default".into()
                } else {
                    ns.into()
                }
            } else {
                String::new()
            },
            resolved,
            name: name.into(),
        };
        meta = target.meta(ordinal);
        let config = status::config_for(work, &target);
        let strategy = config.and_then(|c| c.update_strategy.as_ref());
        let orphaned = is_orphaned(work, &target);
        match executor::executor_of(work) {
            Ok(None) => {}
            Ok(Some(ex)) => {
                if let Err(msg) =
                    executor::check(&self.spoke, &ex, &target, manifest, !orphaned).await
                {
                    return (Outcome::failed(meta, msg), Some(target));
                }
            }
            Err(msg) => return (Outcome::failed(meta, msg), Some(target)),
        }
        let result = apply::apply(
            &self.spoke,
            &target,
            manifest,
            strategy,
            if orphaned { None } else { Some(owner) },
            owner_uid,
        )
        .await;
        if target.resolved.api.kind == "CustomResourceDefinition" && result.is_ok() {
            // The kinds it defines are resolved afresh.
            self.resolver.forget();
        }
        let read_only = strategy.and_then(|s| s.type_)
            == Some(garrison_api::work::v1::UpdateStrategyType::ReadOnly);
        let mut outcome = Outcome::from_apply(meta, result, read_only, config);
        if outcome.applied.is_err() {
            // Availability is whether the resource exists, whatever the apply did.
            match target.get(&self.spoke).await {
                Ok(live) => outcome.live = live,
                Err(e) => outcome.fetch_error = Some(e),
            }
        }
        (outcome, Some(target))
    }

    async fn ensure_applied(&self, work: &str) -> anyhow::Result<AppliedManifestWork> {
        let api = self.applied_api();
        let name = applied_name(&self.hub_hash, work);
        if let Some(a) = api.get_opt(&name).await? {
            if a.status
                .as_ref()
                .and_then(|s| s.eviction_start_time.as_ref())
                .is_some()
            {
                // The work is back: cancel the eviction.
                let patch = json!({"status": {"evictionStartTime": null}});
                return Ok(api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?);
            }
            return Ok(a);
        }
        let mut amw = AppliedManifestWork::new(
            &name,
            AppliedManifestWorkSpec {
                hub_hash: self.hub_hash.clone(),
                agent_id: Some(self.agent_id.clone()),
                manifest_work_name: work.into(),
            },
        );
        amw.metadata.finalizers = Some(vec![APPLIED_MANIFEST_WORK_FINALIZER.into()]);
        match api.create(&PostParams::default(), &amw).await {
            Ok(a) => Ok(a),
            Err(e) if status_code(&e) == Some(409) => Ok(api.get(&name).await?),
            Err(e) => Err(e.into()),
        }
    }

    async fn record_applied(
        &self,
        amw: &AppliedManifestWork,
        applied: Vec<AppliedManifestResourceMeta>,
    ) -> anyhow::Result<()> {
        let current = amw
            .status
            .as_ref()
            .map(|s| s.applied_resources.clone())
            .unwrap_or_default();
        if current == applied {
            return Ok(());
        }
        let patch = json!({"status": {"appliedResources": applied}});
        self.applied_api()
            .patch_status(
                &amw.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        Ok(())
    }

    /// Writes a work's status unless it is already so; answers the copy written.
    async fn write_status(
        &self,
        hub: &kube::Client,
        work: &ManifestWork,
        mut st: ManifestWorkStatus,
    ) -> anyhow::Result<Option<ManifestWork>> {
        let old = work.status.clone().unwrap_or_default();
        status::carry_transition_times(&old, &mut st);
        if old == st {
            return Ok(None);
        }
        let works: Api<ManifestWork> = Api::namespaced(hub.clone(), &self.cluster);
        let patch = json!({"status": st});
        let written = works
            .patch_status(
                &work.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        Ok(Some(written))
    }

    /// Cleans up a work being deleted: releases its resources (waiting for their deletion to
    /// finish), deletes the AppliedManifestWork and removes the work's finalizer.
    async fn finalize(&self, hub: &kube::Client, work: &ManifestWork) -> anyhow::Result<()> {
        let name = work.name_any();
        if !work
            .finalizers()
            .iter()
            .any(|f| f == MANIFEST_WORK_FINALIZER)
        {
            return Ok(());
        }
        let amw_name = applied_name(&self.hub_hash, &name);
        if let Some(amw) = self.applied_api().get_opt(&amw_name).await? {
            let done = self.clean_applied(&amw).await?;
            if !done {
                anyhow::bail!("resources of {name} are still being deleted");
            }
        }
        let works: Api<ManifestWork> = Api::namespaced(hub.clone(), &self.cluster);
        let finalizers: Vec<String> = work
            .finalizers()
            .iter()
            .filter(|f| *f != MANIFEST_WORK_FINALIZER)
            .cloned()
            .collect();
        let patch = json!({"metadata": {"finalizers": finalizers,
            "resourceVersion": work.resource_version()}});
        works
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        tracing::info!(work = %name, "cleaned up a deleted work");
        Ok(())
    }

    /// Releases every resource an AppliedManifestWork records, waiting briefly for deletions to
    /// finish; once all are gone, deletes the AppliedManifestWork. Returns whether it is gone.
    async fn clean_applied(&self, amw: &AppliedManifestWork) -> anyhow::Result<bool> {
        let uid = amw.uid().unwrap_or_default();
        let mut remaining: Vec<AppliedManifestResourceMeta> = amw
            .status
            .as_ref()
            .map(|s| s.applied_resources.clone())
            .unwrap_or_default();
        for attempt in 0..20 {
            let mut next = Vec::new();
            for r in remaining {
                match apply::release(&self.spoke, &r, &uid).await {
                    Ok(Released::Gone | Released::Kept) => {}
                    Ok(Released::Deleting) => next.push(r),
                    Err(e) => {
                        tracing::warn!(error = %e.0, "cannot release a resource; retrying");
                        next.push(r);
                    }
                }
            }
            remaining = next;
            if remaining.is_empty() || attempt == 19 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !remaining.is_empty() {
            self.record_applied(amw, remaining).await?;
            return Ok(false);
        }
        let api = self.applied_api();
        let name = amw.name_any();
        let patch = json!({"metadata": {"finalizers": null}});
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if status_code(&e) == Some(404) => return Ok(true),
            Err(e) => return Err(e.into()),
        }
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(true),
            Err(e) if status_code(&e) == Some(404) => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    /// Evicts AppliedManifestWorks whose work a reachable hub no longer has: the grace period
    /// starts when that is first seen, and the resources go when it ends. Answers whether
    /// anything is left to evict (or the list failed), so the next resync looks again.
    async fn evict(&self, works: &BTreeMap<String, ManifestWork>) -> bool {
        self.traced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|name, _| works.contains_key(name));
        let api = self.applied_api();
        let list = match api.list(&ListParams::default()).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list AppliedManifestWorks");
                return true;
            }
        };
        let now = jiff::Timestamp::now();
        let mut left = false;
        for amw in list.items {
            if amw.spec.hub_hash != self.hub_hash
                || works.contains_key(&amw.spec.manifest_work_name)
            {
                continue;
            }
            left = true;
            let name = amw.name_any();
            let started = amw
                .status
                .as_ref()
                .and_then(|s| s.eviction_start_time.as_ref())
                .map(|t| t.0);
            match started {
                None => {
                    let patch = json!({"status": {"evictionStartTime": Time(now)}});
                    if let Err(e) = api
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        tracing::warn!(error = %e, "cannot start an eviction");
                    } else {
                        tracing::info!(applied = %name, grace = ?self.opts.eviction_grace, "the work is gone from the hub; its resources will be evicted after the grace period");
                    }
                }
                Some(start) => {
                    let elapsed = now.duration_since(start).unsigned_abs();
                    if elapsed >= self.opts.eviction_grace {
                        match self.clean_applied(&amw).await {
                            Ok(true) => {
                                tracing::info!(applied = %name, "evicted the resources of a work gone from the hub")
                            }
                            Ok(false) => {}
                            Err(e) => tracing::warn!(error = %e, "eviction incomplete; retrying"),
                        }
                    }
                }
            }
        }
        left
    }

    /// The AppliedManifestWorks of this hub on the cluster, by work name (for tests and info).
    pub async fn applied(&self) -> anyhow::Result<BTreeSet<String>> {
        let list = self.applied_api().list(&ListParams::default()).await?;
        Ok(list
            .items
            .into_iter()
            .filter(|a| a.spec.hub_hash == self.hub_hash)
            .map(|a| a.spec.manifest_work_name)
            .collect())
    }
}

/// Whether a changed copy of a work differs from the last in what a pass acts on.
fn needs_pass(old: &ManifestWork, new: &ManifestWork) -> bool {
    old.metadata.generation != new.metadata.generation
        || old.spec != new.spec
        || old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
        || old.metadata.finalizers != new.metadata.finalizers
}

fn same_resource(a: &AppliedManifestResourceMeta, b: &AppliedManifestResourceMeta) -> bool {
    a.group.as_deref().unwrap_or("") == b.group.as_deref().unwrap_or("")
        && a.resource == b.resource
        && a.namespace.as_deref().unwrap_or("") == b.namespace.as_deref().unwrap_or("")
        && a.name == b.name
}

/// Whether a previously applied resource is still named by the work, including manifests whose
/// kind could not be resolved this pass (so a discovery hiccup deletes nothing).
fn still_named(
    p: &AppliedManifestResourceMeta,
    manifests: &[Value],
    targets: &[Option<Target>],
) -> bool {
    manifests.iter().zip(targets).any(|(m, t)| match t {
        Some(t) => {
            t.resolved.api.group == p.group.as_deref().unwrap_or("")
                && t.resolved.api.plural == p.resource
                && t.namespace == p.namespace.as_deref().unwrap_or("")
                && t.name == p.name
        }
        None => m.pointer("/metadata/name").and_then(Value::as_str) == Some(p.name.as_str()),
    })
}

/// Whether the work's delete option orphans this resource.
fn is_orphaned(work: &ManifestWork, t: &Target) -> bool {
    let Some(opt) = &work.spec.delete_option else {
        return false;
    };
    match opt.propagation_policy {
        Some(DeletePropagationPolicyType::Orphan) => true,
        Some(DeletePropagationPolicyType::SelectivelyOrphan) => {
            opt.selectively_orphan.as_ref().is_some_and(|s| {
                s.orphaning_rules.iter().any(|r| {
                    r.group.as_deref().unwrap_or("") == t.resolved.api.group
                        && r.resource == t.resolved.api.plural
                        && r.namespace.as_deref().unwrap_or("") == t.namespace
                        && r.name == t.name
                })
            })
        }
        _ => false,
    }
}
