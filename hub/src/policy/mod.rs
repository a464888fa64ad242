//! Governance on the hub: the policy propagator.
//!
//! For each root Policy (one without the `root-policy` label) the propagator finds the
//! PlacementBindings of its namespace that bind it, directly or through a PolicySet, reads the
//! decisions of their Placements, and keeps one replica `<rootNs>.<rootName>` in the namespace
//! of every cluster decided, labelled as upstream labels replicas. A binding with
//! `subFilter: restricted` selects no cluster of its own: its `bindingOverrides` apply only to
//! clusters other bindings select. `bindingOverrides.remediationAction: enforce` makes the
//! replicas of its clusters enforce. PolicySet exclusions leave their clusters out. A disabled
//! Policy has no replicas. Replicas of clusters no longer decided, and of deleted roots, are
//! deleted. Policies in a cluster's namespace are never roots.
//!
//! The root's status lists its bindings and their decisions (`placement`), each cluster's
//! compliance as its replica reports it (`status`), and the aggregate (`compliant`):
//! NonCompliant if any cluster is, else Pending if any is, else unknown if any is, else
//! Compliant. A PolicySet's status aggregates its Policies the same way, names those deleted
//! or disabled, and lists its bindings and exclusions.

pub mod report;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use garrison_api::ManagedCluster;
use garrison_api::cluster::v1beta1::PlacementDecision;
use garrison_api::labels::PLACEMENT;
use garrison_api::policy::v1::{
    CompliancePerClusterStatus, PlacementBinding, PlacementDecisionRef, PlacementStatus, Policy,
    PolicyDependency, PolicySpec,
};
use garrison_api::policy::v1beta1::{
    PolicySet, PolicySetExclusionStatus, PolicySetPlacement, PolicySetStatus,
};
use garrison_api::policy::{
    CLUSTER_NAME_LABEL, CLUSTER_NAMESPACE_LABEL, ROOT_POLICY_LABEL, replicated_name,
};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use serde_json::{Value, json};

use crate::cache::{Informers, watched};

const MANAGER: &str = "garrison-policy-propagator";

/// Compliance states as upstream spells them.
pub const COMPLIANT: &str = "Compliant";
/// Compliance states as upstream spells them.
pub const NON_COMPLIANT: &str = "NonCompliant";
/// Compliance states as upstream spells them.
pub const PENDING: &str = "Pending";

/// Upstream's aggregate: NonCompliant if any is, else Pending if any is, else unknown (`None`)
/// if any is unknown, else Compliant; `None` for nothing.
pub fn aggregate<'a>(states: impl IntoIterator<Item = Option<&'a str>>) -> Option<String> {
    let states: Vec<Option<&str>> = states.into_iter().collect();
    if states.is_empty() {
        return None;
    }
    let any = |s: &str| states.contains(&Some(s));
    if any(NON_COMPLIANT) {
        Some(NON_COMPLIANT.into())
    } else if any(PENDING) {
        Some(PENDING.into())
    } else if states.iter().any(|x| !matches!(x, Some(COMPLIANT))) {
        None
    } else {
        Some(COMPLIANT.into())
    }
}

/// What one binding does for one root Policy.
#[derive(Debug, Clone, PartialEq)]
pub struct BindingEffect {
    /// The binding's status entry.
    pub status: PlacementStatus,
    /// Whether it only overrides (`subFilter: restricted`).
    pub restricted: bool,
    /// Whether it turns its clusters to enforce.
    pub enforce: bool,
    /// The clusters it applies to (after PolicySet exclusions).
    pub clusters: BTreeSet<String>,
}

/// The clusters a root Policy goes to, and which of them enforce: `(cluster, enforce)`.
pub fn selection(effects: &[BindingEffect], disabled: bool) -> BTreeMap<String, bool> {
    let mut out: BTreeMap<String, bool> = BTreeMap::new();
    if disabled {
        return out;
    }
    for e in effects.iter().filter(|e| !e.restricted) {
        for c in &e.clusters {
            out.entry(c.clone()).or_insert(false);
        }
    }
    for e in effects.iter().filter(|e| e.enforce) {
        for c in &e.clusters {
            if let Some(enforce) = out.get_mut(c) {
                *enforce = true;
            }
        }
    }
    out
}

/// The effects of the namespace's bindings on the root Policy `name`.
pub fn effects(
    name: &str,
    bindings: &[Arc<PlacementBinding>],
    sets: &[Arc<PolicySet>],
    decided: impl Fn(&str) -> BTreeSet<String>,
) -> Vec<BindingEffect> {
    let mut out = vec![];
    for b in bindings {
        let placement = &b.placement_ref;
        if placement.kind != "Placement" {
            continue;
        }
        // Directly, or through each PolicySet of the binding that holds the Policy.
        let mut vias: Vec<Option<&PolicySet>> = vec![];
        for s in &b.subjects {
            match s.kind.as_str() {
                "Policy" if s.name == name => vias.push(None),
                "PolicySet" => {
                    if let Some(set) = sets.iter().find(|p| p.name_any() == s.name)
                        && set.spec.policies.iter().any(|p| p == name)
                    {
                        vias.push(Some(set));
                    }
                }
                _ => {}
            }
        }
        for via in vias {
            let mut clusters = decided(&placement.name);
            if let Some(set) = via {
                for ex in set.spec.exclusions.iter().filter(|e| e.policy_name == name) {
                    for c in &ex.cluster_names {
                        clusters.remove(c);
                    }
                }
            }
            out.push(BindingEffect {
                status: PlacementStatus {
                    placement_binding: Some(b.name_any()),
                    placement: Some(placement.name.clone()),
                    placement_rule: None,
                    policy_set: via.map(|s| s.name_any()),
                    decisions: clusters
                        .iter()
                        .map(|c| PlacementDecisionRef {
                            cluster_name: c.clone(),
                            cluster_namespace: c.clone(),
                        })
                        .collect(),
                },
                restricted: b.sub_filter.as_deref() == Some("restricted"),
                enforce: b
                    .binding_overrides
                    .as_ref()
                    .and_then(|o| o.remediation_action.as_deref())
                    .is_some_and(|a| a.eq_ignore_ascii_case("enforce")),
                clusters,
            });
        }
    }
    out
}

/// The replica of `root` for `cluster`: the root's spec (enforcing when `enforce`), its labels
/// and annotations unless `copyPolicyMetadata: false`, and upstream's replica labels.
///
/// Dependencies are rewritten as upstream's propagator does, so that the cluster finds them
/// among its replicas: a Policy `name` (in `namespace`, by default the root's) becomes the
/// replica `<namespace>.<name>`, and a PolicySet becomes one such dependency per Policy of the
/// set (`sets` resolves it; an unknown set stays as written and is never satisfied).
pub fn replica(
    root: &Policy,
    cluster: &str,
    enforce: bool,
    sets: &dyn Fn(&str, &str) -> Option<Vec<String>>,
) -> Value {
    let ns = root.namespace().unwrap_or_default();
    let name = root.name_any();
    let copy = root.spec.copy_policy_metadata.unwrap_or(true);
    let mut labels: BTreeMap<String, String> = if copy {
        root.labels().clone()
    } else {
        BTreeMap::new()
    };
    labels.insert(CLUSTER_NAME_LABEL.into(), cluster.into());
    labels.insert(CLUSTER_NAMESPACE_LABEL.into(), cluster.into());
    labels.insert(ROOT_POLICY_LABEL.into(), replicated_name(&ns, &name));
    let mut annotations = if copy {
        root.annotations().clone()
    } else {
        BTreeMap::new()
    };
    annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    let mut root_spec = root.spec.clone();
    root_spec.dependencies = canonical_dependencies(&root_spec.dependencies, &ns, sets);
    for t in &mut root_spec.policy_templates {
        t.extra_dependencies = canonical_dependencies(&t.extra_dependencies, &ns, sets);
    }
    let mut spec = serde_json::to_value(&root_spec).unwrap_or_else(|_| json!({}));
    if enforce {
        spec["remediationAction"] = json!("enforce");
    }
    json!({
        "apiVersion": "policy.open-cluster-management.io/v1", "kind": "Policy",
        "metadata": {"name": replicated_name(&ns, &name), "namespace": cluster,
            "labels": labels, "annotations": annotations},
        "spec": spec,
    })
}

/// Dependencies as the cluster resolves them: Policies by replica name, PolicySets expanded.
pub fn canonical_dependencies(
    deps: &[PolicyDependency],
    root_ns: &str,
    sets: &dyn Fn(&str, &str) -> Option<Vec<String>>,
) -> Vec<PolicyDependency> {
    let mut out = vec![];
    for d in deps {
        let ns = d
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| root_ns.to_string());
        let api_version = d
            .api_version
            .as_deref()
            .unwrap_or("policy.open-cluster-management.io/v1");
        match (api_version, d.kind.as_deref().unwrap_or("Policy")) {
            ("policy.open-cluster-management.io/v1", "Policy") => {
                let name = if d.name.split('.').count() == 2 {
                    d.name.clone()
                } else {
                    replicated_name(&ns, &d.name)
                };
                out.push(PolicyDependency {
                    api_version: Some(api_version.into()),
                    kind: Some("Policy".into()),
                    name,
                    namespace: None,
                    compliance: d.compliance.clone(),
                });
            }
            ("policy.open-cluster-management.io/v1beta1", "PolicySet") => {
                match sets(&ns, &d.name) {
                    Some(policies) => out.extend(policies.into_iter().map(|p| PolicyDependency {
                        api_version: Some("policy.open-cluster-management.io/v1".into()),
                        kind: Some("Policy".into()),
                        name: replicated_name(&ns, &p),
                        namespace: None,
                        compliance: d.compliance.clone(),
                    })),
                    None => out.push(PolicyDependency {
                        namespace: Some(ns),
                        ..d.clone()
                    }),
                }
            }
            _ => out.push(d.clone()),
        }
    }
    out
}

struct Ctx {
    client: kube::Client,
    roots: Store<Policy>,
    replicas: Store<Policy>,
    bindings: Store<PlacementBinding>,
    sets: Store<PolicySet>,
    decisions: Store<PlacementDecision>,
    /// When each root's status was last written: a root whose clusters report in a burst
    /// gets one status write per [`STATUS_EVERY`], not one per report.
    written: std::sync::Mutex<HashMap<ObjectRef<Policy>, std::time::Instant>>,
}

/// How often at most a root's status is written.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// Errors of one pass.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API call failed.
    #[error("API call failed: {0}")]
    Kube(#[from] kube::Error),
}

fn decided(ctx: &Ctx, ns: &str, placement: &str) -> BTreeSet<String> {
    ctx.decisions
        .state_filter(|d| {
            d.namespace().as_deref() == Some(ns)
                && d.labels().get(PLACEMENT).map(String::as_str) == Some(placement)
        })
        .iter()
        .flat_map(|d| {
            d.status
                .as_ref()
                .map(|s| s.decisions.clone())
                .unwrap_or_default()
        })
        .map(|d| d.cluster_name)
        .collect()
}

/// Waits until every cache has its first full list: deciding from a partial one (replicas
/// known, decisions not yet) would delete replicas that should stay.
async fn caches_ready(ctx: &Ctx) -> bool {
    let all = async {
        ctx.replicas.wait_until_ready().await.is_ok()
            && ctx.bindings.wait_until_ready().await.is_ok()
            && ctx.sets.wait_until_ready().await.is_ok()
            && ctx.decisions.wait_until_ready().await.is_ok()
            && ctx.roots.wait_until_ready().await.is_ok()
    };
    tokio::time::timeout(Duration::from_secs(30), all)
        .await
        .unwrap_or(false)
}

/// Whether replica `c` already has the wanted spec, labels and annotations.
fn is_current(
    c: &Policy,
    spec: Option<&PolicySpec>,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> bool {
    spec == Some(&c.spec) && c.labels() == labels && c.annotations() == annotations
}

/// Replica writes in flight per root policy.
const PARALLEL_WRITES: usize = 16;

/// The longest replica name: it is a label value (`root-policy`), at most 63 characters.
const MAX_REPLICA_NAME: usize = 63;

async fn reconcile(root: Arc<Policy>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if root.labels().contains_key(ROOT_POLICY_LABEL) {
        return Ok(Action::await_change());
    }
    if !caches_ready(&ctx).await {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let ns = root.namespace().unwrap_or_default();
    let name = root.name_any();
    // A cluster's namespace holds replicas, never roots, as upstream: a Policy written there
    // is not propagated.
    if Api::<ManagedCluster>::all(ctx.client.clone())
        .get_opt(&ns)
        .await?
        .is_some()
    {
        tracing::warn!(policy = %name, namespace = %ns, "a Policy in a cluster namespace is not propagated; write root policies in another namespace");
        return Ok(Action::await_change());
    }
    let key = replicated_name(&ns, &name);
    if key.len() > MAX_REPLICA_NAME {
        tracing::warn!(policy = %name, namespace = %ns, "the replica name {key} is longer than {MAX_REPLICA_NAME} characters; not propagated");
        return Ok(Action::await_change());
    }
    // The root's replicas by cluster.
    let existing: HashMap<String, Arc<Policy>> = ctx
        .replicas
        .state_filter(|p| p.labels().get(ROOT_POLICY_LABEL) == Some(&key))
        .into_iter()
        .map(|r| (r.namespace().unwrap_or_default(), r))
        .collect();
    let pp = PatchParams::apply(MANAGER).force();
    let bindings = ctx
        .bindings
        .state_filter(|b| b.namespace().as_deref() == Some(ns.as_str()));
    let sets = ctx
        .sets
        .state_filter(|s| s.namespace().as_deref() == Some(ns.as_str()));
    let effects = effects(&name, &bindings, &sets, |p| decided(&ctx, &ns, p));
    let chosen = selection(&effects, root.spec.disabled);
    // The replica is the same for every cluster but for its namespace, its cluster labels and
    // whether it enforces: built once per remediation, compared typed.
    let members = |set_ns: &str, set: &str| {
        ctx.sets
            .get(&ObjectRef::new(set).within(set_ns))
            .map(|s| s.spec.policies.clone())
    };
    let base: Vec<(Value, Option<PolicySpec>)> = [false, true]
        .iter()
        .map(|enforce| {
            let v = replica(&root, "", *enforce, &members);
            let spec = serde_json::from_value(v["spec"].clone()).ok();
            (v, spec)
        })
        .collect();
    let annotations: BTreeMap<String, String> =
        serde_json::from_value(base[0].0["metadata"]["annotations"].clone()).unwrap_or_default();
    let mut writes = vec![];
    for (cluster, enforce) in &chosen {
        let (template, spec) = &base[usize::from(*enforce)];
        let mut labels: BTreeMap<String, String> =
            serde_json::from_value(template["metadata"]["labels"].clone()).unwrap_or_default();
        labels.insert(CLUSTER_NAME_LABEL.into(), cluster.clone());
        labels.insert(CLUSTER_NAMESPACE_LABEL.into(), cluster.clone());
        let cached = existing.get(cluster);
        if cached.is_some_and(|c| is_current(c, spec.as_ref(), &labels, &annotations)) {
            continue;
        }
        let mut want = template.clone();
        want["metadata"]["namespace"] = json!(cluster);
        want["metadata"]["labels"] = json!(labels);
        // Not in the cache: new, or the cache has not seen it yet (a watch that fell behind
        // relists). It is read before it is written, so that a lagging cache costs reads, not a
        // storm of writes whose events keep the watch behind.
        writes.push((cluster.clone(), want, labels, *enforce, cached.is_none()));
    }
    // Written a few at a time; one cluster that cannot take its replica does not hold up the
    // others.
    let failures: Vec<kube::Error> = futures::stream::iter(writes)
        .map(|(cluster, want, labels, enforce, read_first)| {
            let api = Api::<Policy>::namespaced(ctx.client.clone(), &cluster);
            let (pp, key, base, annotations) = (&pp, &key, &base, &annotations);
            async move {
                if read_first
                    && let Ok(Some(c)) = api.get_opt(key).await
                    && is_current(
                        &c,
                        base[usize::from(enforce)].1.as_ref(),
                        &labels,
                        annotations,
                    )
                {
                    return None;
                }
                api.patch(key, pp, &Patch::Apply(want)).await.err().map(|e| {
                    tracing::warn!(policy = %key, %cluster, error = %e, "cannot write the replicated policy");
                    e
                })
            }
        })
        .buffer_unordered(PARALLEL_WRITES)
        .filter_map(futures::future::ready)
        .collect()
        .await;
    let failed = failures.into_iter().next();
    for (cluster, r) in &existing {
        if !chosen.contains_key(cluster)
            && let Err(e) = delete_replica(&ctx, r).await
        {
            tracing::warn!(policy = %key, %cluster, error = %e, "cannot remove the replicated policy");
        }
    }
    // Status: bindings, per-cluster compliance, aggregate.
    let per_cluster: Vec<CompliancePerClusterStatus> = chosen
        .keys()
        .map(|c| CompliancePerClusterStatus {
            clustername: c.clone(),
            clusternamespace: c.clone(),
            compliant: existing
                .get(c)
                .and_then(|r| r.status.as_ref()?.compliant.clone())
                .filter(|s| !s.is_empty()),
        })
        .collect();
    let compliant = aggregate(per_cluster.iter().map(|s| s.compliant.as_deref()));
    let placement: Vec<PlacementStatus> = effects.into_iter().map(|e| e.status).collect();
    let status = json!({
        "placement": placement,
        "status": per_cluster,
        "compliant": compliant,
    });
    let current = root.status.clone().unwrap_or_default();
    let unchanged = serde_json::to_value(&current.placement).ok()
        == Some(status["placement"].clone())
        && serde_json::to_value(&current.status).ok() == Some(status["status"].clone())
        && current.compliant == compliant;
    if !unchanged {
        let me = ObjectRef::from_obj(root.as_ref());
        let since = ctx
            .written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&me)
            .map(std::time::Instant::elapsed);
        if let Some(since) = since.filter(|s| *s < STATUS_EVERY) {
            return Ok(Action::requeue(STATUS_EVERY - since));
        }
        Api::<Policy>::namespaced(ctx.client.clone(), &ns)
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await?;
        let mut written = ctx.written.lock().unwrap_or_else(|e| e.into_inner());
        written.insert(me, std::time::Instant::now());
        // Forget roots not written for a while, so the map does not grow with deleted ones.
        if written.len() > 1024 {
            written.retain(|_, t| t.elapsed() < STATUS_EVERY * 10);
        }
    }
    if let Some(e) = failed {
        return Err(e.into());
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// A PolicySet's status from its namespace's root Policies and bindings: its placements, the
/// aggregate of its Policies' compliance, which of them are missing or disabled, and the
/// exclusions in effect.
pub fn set_status(
    set: &PolicySet,
    roots: &[Arc<Policy>],
    bindings: &[Arc<PlacementBinding>],
) -> PolicySetStatus {
    let name = set.name_any();
    let placement = bindings
        .iter()
        .filter(|b| {
            b.subjects
                .iter()
                .any(|s| s.kind == "PolicySet" && s.name == name)
        })
        .map(|b| PolicySetPlacement {
            placement_binding: Some(b.name_any()),
            placement: Some(b.placement_ref.name.clone()),
        })
        .collect();
    let (mut missing, mut disabled, mut states) = (vec![], vec![], vec![]);
    for p in &set.spec.policies {
        match roots.iter().find(|r| &r.name_any() == p) {
            None => missing.push(p.clone()),
            Some(r) if r.spec.disabled => disabled.push(p.clone()),
            Some(r) => states.push(r.status.as_ref().and_then(|s| s.compliant.clone())),
        }
    }
    let mut message = vec![];
    if !missing.is_empty() {
        message.push(format!("Deleted policies: {}", missing.join(", ")));
    }
    if !disabled.is_empty() {
        message.push(format!("Disabled policies: {}", disabled.join(", ")));
    }
    PolicySetStatus {
        placement,
        compliant: aggregate(
            states
                .iter()
                .map(|s| s.as_deref().filter(|s| !s.is_empty())),
        ),
        status_message: (!message.is_empty()).then(|| message.join("; ")),
        exclusions: set
            .spec
            .exclusions
            .iter()
            .map(|e| PolicySetExclusionStatus {
                policy_name: e.policy_name.clone(),
                clusters: e.cluster_names.clone(),
            })
            .collect(),
    }
}

/// Writes every PolicySet's status that changed.
async fn set_statuses(ctx: &Ctx) {
    for set in ctx.sets.state() {
        let ns = set.namespace().unwrap_or_default();
        let roots = ctx
            .roots
            .state_filter(|r| r.namespace().as_deref() == Some(ns.as_str()));
        let bindings = ctx
            .bindings
            .state_filter(|b| b.namespace().as_deref() == Some(ns.as_str()));
        let want = set_status(&set, &roots, &bindings);
        if set.status.as_ref() == Some(&want) {
            continue;
        }
        let api: Api<PolicySet> = Api::namespaced(ctx.client.clone(), &ns);
        if let Err(e) = api
            .patch_status(
                &set.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": want})),
            )
            .await
        {
            tracing::warn!(policyset = %set.name_any(), error = %e, "cannot write the PolicySet's status");
        }
    }
}

/// Every few seconds: deletes replicas whose root Policy is gone (deleted, or never a root;
/// a deleted root is no longer reconciled, so its replicas are found from their label), and
/// brings PolicySets' status up to date.
async fn sweep(ctx: Arc<Ctx>) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        if !caches_ready(&ctx).await {
            continue;
        }
        set_statuses(&ctx).await;
        for r in ctx.replicas.state() {
            let Some((ns, name)) = r
                .labels()
                .get(ROOT_POLICY_LABEL)
                .and_then(|k| k.split_once('.'))
            else {
                continue;
            };
            let root = ObjectRef::<Policy>::new(name).within(ns);
            if ctx.roots.get(&root).is_some() {
                continue;
            }
            // Confirm with the API, not only the cache, before deleting.
            match Api::<Policy>::namespaced(ctx.client.clone(), ns)
                .get_opt(name)
                .await
            {
                Ok(Some(p)) if !p.labels().contains_key(ROOT_POLICY_LABEL) => continue,
                Ok(_) => {
                    if let Err(e) = delete_replica(&ctx, &r).await {
                        tracing::warn!(replica = %r.name_any(), error = %e, "cannot remove an orphaned replica");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot check a replica's root policy"),
            }
        }
    }
}

async fn delete_replica(ctx: &Ctx, r: &Policy) -> Result<(), Error> {
    let api: Api<Policy> = Api::namespaced(ctx.client.clone(), &r.namespace().unwrap_or_default());
    match api.delete(&r.name_any(), &DeleteParams::default()).await {
        Ok(_) => {
            tracing::info!(replica = %r.name_any(), cluster = %r.namespace().unwrap_or_default(), "removed a replicated policy");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn error_policy(_: Arc<Policy>, e: &Error, _: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "policy propagation failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// The root Policies of a namespace, to reconcile when something of the namespace changes.
fn roots_in(store: &Store<Policy>, ns: &str) -> Vec<ObjectRef<Policy>> {
    store
        .state_filter(|p| p.namespace().as_deref() == Some(ns))
        .iter()
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// Roots outside `ns` with a dependency on PolicySet `ns`/`name`, which expands into the set's
/// Policies.
fn depending_on_set(store: &Store<Policy>, ns: &str, name: &str) -> Vec<ObjectRef<Policy>> {
    store
        .state_filter(|p| {
            p.namespace().as_deref() != Some(ns)
                && p.spec
                    .dependencies
                    .iter()
                    .chain(
                        p.spec
                            .policy_templates
                            .iter()
                            .flat_map(|t| &t.extra_dependencies),
                    )
                    .any(|d| {
                        d.kind.as_deref() == Some("PolicySet")
                            && d.name == name
                            && d.namespace.as_deref() == Some(ns)
                    })
        })
        .iter()
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// Runs the propagator until its streams end.
pub async fn run(informers: Informers) {
    let client = informers.client().clone();
    let cfg = watcher::Config::default;
    let (replicas, replica_events) = watched::<Policy>(&informers, cfg().labels(ROOT_POLICY_LABEL));
    let (bindings, binding_events) = watched::<PlacementBinding>(&informers, cfg());
    let (sets, set_events) = watched::<PolicySet>(&informers, cfg());
    let (decisions, decision_events) = watched::<PlacementDecision>(&informers, cfg());
    let controller = crate::cache::controller::<Policy>(
        &informers,
        cfg().labels(&format!("!{ROOT_POLICY_LABEL}")),
    );
    let probe = crate::metrics::Probe::new("policy-propagator", &controller);
    let roots = controller.store();
    let (r1, r2, r3) = (roots.clone(), roots.clone(), roots.clone());
    let ctx = Arc::new(Ctx {
        client,
        roots: roots.clone(),
        replicas,
        bindings,
        sets,
        decisions,
        written: Default::default(),
    });
    let sweeper = sweep(ctx.clone());
    let propagator = controller
        .watches_stream(replica_events, |r: Policy| {
            let (ns, name) = r.labels().get(ROOT_POLICY_LABEL)?.split_once('.')?;
            Some(ObjectRef::new(name).within(ns))
        })
        .watches_stream(binding_events, move |b: PlacementBinding| {
            roots_in(&r1, &b.namespace().unwrap_or_default())
        })
        .watches_stream(set_events, move |s: PolicySet| {
            // The set's own namespace binds through it; roots elsewhere may depend on it.
            let ns = s.namespace().unwrap_or_default();
            let mut roots = roots_in(&r2, &ns);
            roots.extend(depending_on_set(&r2, &ns, &s.name_any()));
            roots
        })
        .watches_stream(decision_events, move |d: PlacementDecision| {
            roots_in(&r3, &d.namespace().unwrap_or_default())
        })
        .run(probe.timed(reconcile), error_policy, ctx)
        .for_each(|_| async {});
    // The sweeper never ends; the propagator ends with its streams, and takes it along.
    tokio::select! {
        _ = propagator => {}
        _ = sweeper => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compliance_aggregates_as_upstream() {
        let agg = |v: &[Option<&str>]| aggregate(v.iter().copied());
        assert_eq!(agg(&[]), None);
        assert_eq!(
            agg(&[Some(COMPLIANT), Some(COMPLIANT)]).as_deref(),
            Some(COMPLIANT)
        );
        assert_eq!(
            agg(&[Some(COMPLIANT), None, Some(PENDING)]).as_deref(),
            Some(PENDING)
        );
        assert_eq!(
            agg(&[Some(PENDING), Some(NON_COMPLIANT)]).as_deref(),
            Some(NON_COMPLIANT)
        );
        assert_eq!(agg(&[Some(COMPLIANT), None]), None);
    }

    fn binding(v: Value) -> Arc<PlacementBinding> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn bindings_select_clusters_restricted_ones_only_override_and_sets_exclude() {
        let direct = binding(json!({"metadata": {"name": "b1", "namespace": "p"},
            "placementRef": {"apiGroup": "cluster.open-cluster-management.io", "kind": "Placement", "name": "prod"},
            "subjects": [{"apiGroup": "policy.open-cluster-management.io", "kind": "Policy", "name": "pol"}]}));
        let restricted = binding(json!({"metadata": {"name": "b2", "namespace": "p"},
            "placementRef": {"apiGroup": "cluster.open-cluster-management.io", "kind": "Placement", "name": "all"},
            "subjects": [{"apiGroup": "policy.open-cluster-management.io", "kind": "Policy", "name": "pol"}],
            "bindingOverrides": {"remediationAction": "Enforce"}, "subFilter": "restricted"}));
        let via_set = binding(json!({"metadata": {"name": "b3", "namespace": "p"},
            "placementRef": {"apiGroup": "cluster.open-cluster-management.io", "kind": "Placement", "name": "dev"},
            "subjects": [{"apiGroup": "policy.open-cluster-management.io", "kind": "PolicySet", "name": "set"}]}));
        let set: Arc<PolicySet> = Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "set", "namespace": "p"},
                "spec": {"policies": ["pol"], "exclusions": [{"policyName": "pol", "clusterNames": ["d2"]}]}}))
            .unwrap(),
        );
        let decided = |p: &str| -> BTreeSet<String> {
            match p {
                "prod" => ["c1", "c2"].iter().map(|s| s.to_string()).collect(),
                "all" => ["c1", "c3"].iter().map(|s| s.to_string()).collect(),
                "dev" => ["d1", "d2"].iter().map(|s| s.to_string()).collect(),
                _ => BTreeSet::new(),
            }
        };
        let e = effects("pol", &[direct, restricted, via_set], &[set], decided);
        assert_eq!(e.len(), 3);
        assert_eq!(e[2].status.policy_set.as_deref(), Some("set"));
        let chosen = selection(&e, false);
        // c3 comes only from the restricted binding: not selected. c1 is enforced by it.
        assert_eq!(
            chosen,
            BTreeMap::from([
                ("c1".to_string(), true),
                ("c2".to_string(), false),
                ("d1".to_string(), false),
            ])
        );
        assert!(selection(&e, true).is_empty());
        assert!(effects("other", &[], &[], decided).is_empty());
    }

    #[test]
    fn a_policy_sets_status_aggregates_its_policies_and_names_the_missing_ones() {
        let root = |name: &str, disabled: bool, compliant: Option<&str>| -> Arc<Policy> {
            Arc::new(
                serde_json::from_value(json!({
                    "metadata": {"name": name, "namespace": "p"},
                    "spec": {"disabled": disabled, "policy-templates": []},
                    "status": {"compliant": compliant}
                }))
                .unwrap(),
            )
        };
        let set: PolicySet = serde_json::from_value(json!({
            "metadata": {"name": "set", "namespace": "p"},
            "spec": {"policies": ["a", "b", "c", "d"],
                     "exclusions": [{"policyName": "a", "clusterNames": ["c9"]}]}
        }))
        .unwrap();
        let bound = binding(json!({"metadata": {"name": "b1", "namespace": "p"},
            "placementRef": {"apiGroup": "cluster.open-cluster-management.io", "kind": "Placement", "name": "prod"},
            "subjects": [{"apiGroup": "policy.open-cluster-management.io", "kind": "PolicySet", "name": "set"}]}));
        let roots = [
            root("a", false, Some(COMPLIANT)),
            root("b", false, Some(NON_COMPLIANT)),
            root("c", true, None),
        ];
        let st = set_status(&set, &roots, &[bound]);
        assert_eq!(st.compliant.as_deref(), Some(NON_COMPLIANT));
        assert_eq!(
            st.status_message.as_deref(),
            Some("Deleted policies: d; Disabled policies: c")
        );
        assert_eq!(st.placement[0].placement.as_deref(), Some("prod"));
        assert_eq!(st.exclusions[0].clusters, ["c9"]);
        let all_ok = set_status(&set, &roots[..1], &[]);
        assert_eq!(all_ok.compliant.as_deref(), Some(COMPLIANT));
    }

    #[test]
    fn dependencies_name_replicas_and_policy_sets_expand_into_their_policies() {
        let root: Policy = serde_json::from_value(json!({
            "apiVersion": "policy.open-cluster-management.io/v1", "kind": "Policy",
            "metadata": {"name": "pol", "namespace": "p"},
            "spec": {"disabled": false, "dependencies": [
                {"apiVersion": "policy.open-cluster-management.io/v1", "kind": "Policy",
                    "name": "base", "compliance": "Compliant"},
                {"apiVersion": "policy.open-cluster-management.io/v1", "kind": "Policy",
                    "name": "other", "namespace": "q", "compliance": "NonCompliant"},
                {"apiVersion": "policy.open-cluster-management.io/v1", "kind": "Policy",
                    "name": "r.already", "compliance": "Compliant"},
                {"apiVersion": "policy.open-cluster-management.io/v1beta1", "kind": "PolicySet",
                    "name": "set", "compliance": "Compliant"},
                {"apiVersion": "policy.open-cluster-management.io/v1beta1", "kind": "PolicySet",
                    "name": "unknown", "compliance": "Compliant"},
                {"apiVersion": "policy.open-cluster-management.io/v1", "kind": "ConfigurationPolicy",
                    "name": "cp", "compliance": "Compliant"}],
              "policy-templates": [{"objectDefinition": {"kind": "ConfigurationPolicy"},
                "extraDependencies": [{"apiVersion": "policy.open-cluster-management.io/v1",
                    "kind": "Policy", "name": "extra", "compliance": "Compliant"}]}]}
        }))
        .unwrap();
        let sets = |ns: &str, name: &str| {
            (ns == "p" && name == "set").then(|| vec!["a".to_string(), "b".to_string()])
        };
        let r = replica(&root, "c1", false, &sets);
        let names: Vec<(&str, &str)> = r["spec"]["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["kind"].as_str().unwrap(), d["name"].as_str().unwrap()))
            .collect();
        assert_eq!(
            names,
            [
                ("Policy", "p.base"),
                ("Policy", "q.other"),
                ("Policy", "r.already"),
                ("Policy", "p.a"),
                ("Policy", "p.b"),
                ("PolicySet", "unknown"),
                ("ConfigurationPolicy", "cp"),
            ]
        );
        assert_eq!(r["spec"]["dependencies"][5]["namespace"], "p");
        assert!(r["spec"]["dependencies"][0].get("namespace").is_none());
        assert_eq!(
            r["spec"]["policy-templates"][0]["extraDependencies"][0]["name"],
            "p.extra"
        );
    }

    #[test]
    fn a_replica_is_labelled_as_upstreams_and_carries_the_override() {
        let root: Policy = serde_json::from_value(json!({
            "apiVersion": "policy.open-cluster-management.io/v1", "kind": "Policy",
            "metadata": {"name": "pol", "namespace": "p",
                "annotations": {"policy.open-cluster-management.io/standards": "NIST SP 800-53"}},
            "spec": {"disabled": false, "remediationAction": "inform", "policy-templates": []}
        }))
        .unwrap();
        let none = |_: &str, _: &str| None;
        let r = replica(&root, "c1", true, &none);
        assert_eq!(r["metadata"]["name"], "p.pol");
        assert_eq!(r["metadata"]["namespace"], "c1");
        assert_eq!(r["metadata"]["labels"][ROOT_POLICY_LABEL], "p.pol");
        assert_eq!(r["metadata"]["labels"][CLUSTER_NAME_LABEL], "c1");
        assert_eq!(
            r["metadata"]["annotations"]["policy.open-cluster-management.io/standards"],
            "NIST SP 800-53"
        );
        assert_eq!(r["spec"]["remediationAction"], "enforce");
        assert_eq!(
            replica(&root, "c1", false, &none)["spec"]["remediationAction"],
            "inform"
        );
    }
}
