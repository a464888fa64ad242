//! The policy add-on, built into the agent: it evaluates the policies the hub replicated into
//! its cluster's namespace and reports their compliance back, with no Gatekeeper and no
//! policy controllers on the cluster.
//!
//! For each replicated Policy, each template is judged against the cluster:
//! - a ConfigurationPolicy's object templates (`musthave`, `mustonlyhave`, `mustnothave`),
//!   enforced when the Policy or the template says `enforce`: missing objects created,
//!   mismatched ones updated, forbidden ones deleted;
//! - a Gatekeeper ConstraintTemplate is compiled (NonCompliant with the error if it does not);
//! - a Gatekeeper Constraint audits every existing object its `match.kinds` name (every kind
//!   the cluster serves when it names none, or `*`), with those objects as `data.inventory`; the Policy's remediation overrides the constraint's
//!   enforcement action (inform: `warn`, enforce: `deny`), as upstream.
//!
//! A template waits (Pending, or Compliant with `ignorePending`) until the Policy's
//! `dependencies` and its own `extraDependencies` reach the compliance they ask for.
//!
//! The replica's status gets one `details` entry per template, with upstream's messages and a
//! history of changes (newest first, 10 at most), and the aggregate `compliant`. On the cluster
//! the add-on keeps what upstream's framework keeps there ([`spoke`]): a copy of the replica,
//! each ConfigurationPolicy with its evaluation (`relatedObjects`, `compliancyDetails`,
//! `lastEvaluated`) as status, and one compliance Event per history entry. That status also
//! carries `evaluationInterval` and `pruneObjectBehavior` across restarts. The add-on talks to
//! the hub only with its own certificate: policies of its own cluster's namespace.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use futures::StreamExt;
use garrison_api::policy::v1::{ComplianceHistory, DetailsPerTemplate, Policy, PolicyDependency};
use garrison_api::policy::{CLUSTER_NAME_LABEL, POLICY_LABEL, ROOT_POLICY_LABEL};
use garrison_api::status::CONDITION_MESSAGE_MAX;
use garrison_governance::config_policy::{
    self, ComplianceType, ConfigurationPolicy, Found, Remediation,
};
use garrison_governance::dependencies;
use garrison_governance::gatekeeper::{self, Constraint, Inventory, Review, Template};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use tokio::sync::watch;

pub use super::gate::decided;
use super::gate::{next_owner, set as set_gate, waiting};

mod spoke;

/// The add-on's name, as upstream's policy framework add-on.
pub const ADDON: &str = "governance-policy-framework";
/// How often policies are evaluated again without a change on the hub.
pub const EVALUATION_INTERVAL: Duration = Duration::from_secs(10);
/// At most this many history entries are kept per template.
const HISTORY: usize = 10;
const MANAGER: &str = "garrison-policy-framework";

/// What the add-on works with.
pub struct Ctx {
    /// The hub, as this add-on on this cluster.
    pub hub: kube::Client,
    /// The managed cluster.
    pub spoke: kube::Client,
    /// The cluster's name (its namespace on the hub).
    pub cluster: String,
    /// Where the enforced rules are published for the work gate.
    pub enforcement: Enforcement,
    /// Whether the image-verification add-on runs here (it enforces image policy templates).
    pub images: super::image::ImageEnforcement,
}

/// The label selector of this cluster's replicated policies.
fn replicas_of(cluster: &str) -> String {
    format!("{ROOT_POLICY_LABEL},{CLUSTER_NAME_LABEL}={cluster}")
}

/// Runs the add-on until `stop` turns true.
pub async fn run(ctx: Ctx, mut stop: watch::Receiver<bool>) {
    // Until the first pass is published, the gate refuses works: it cannot tell yet what the
    // policies forbid. A run replaced by a newer one (a rotated certificate) leaves the newer
    // one's state alone.
    let owner = next_owner();
    set_gate(&ctx.enforcement, owner, GateState::Starting, true);
    let policies: Api<Policy> = Api::namespaced(ctx.hub.clone(), &ctx.cluster);
    let mut changes = watcher(
        policies,
        watcher::Config::default().labels(&replicas_of(&ctx.cluster)),
    )
    .default_backoff()
    .boxed();
    let kinds = Kinds::default();
    let mut memory = Memory::default();
    loop {
        if let Err(e) = pass(&ctx, &kinds, &mut memory, owner).await {
            tracing::warn!(addon = ADDON, error = %e, "policy evaluation failed; retrying");
        }
        let deadline = tokio::time::sleep(EVALUATION_INTERVAL);
        tokio::pin!(deadline);
        tokio::select! {
            _ = &mut deadline => {}
            ev = changes.next() => {
                if ev.is_none() { tokio::time::sleep(Duration::from_secs(1)).await; }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ = stop.changed() => {
                // A stopped run does not know why it stops (disabled, a new certificate, a
                // lost registration): works wait until the add-on manager decides again.
                set_gate(&ctx.enforcement, owner, GateState::Undecided, false);
                return;
            }
        }
    }
}

/// How long a work waits at the gate for the add-on's decision before it is refused (and
/// tried again later).
const GATE_WAIT: Duration = Duration::from_secs(15);

/// API resources of the cluster by apiVersion and kind, found by discovery and kept.
#[derive(Default)]
struct Kinds {
    known: std::sync::Mutex<HashMap<(String, String), (ApiResource, bool)>>,
}

impl Kinds {
    /// The resource of `api_version`/`kind` and whether it is namespaced.
    async fn resolve(
        &self,
        spoke: &kube::Client,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, bool), String> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(r) = self
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(r.clone());
        }
        let (group, version) = gatekeeper::group_version(api_version);
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (ar, caps) = kube::discovery::pinned_kind(spoke, &gvk)
            .await
            .map_err(|e| format!("the cluster does not serve {api_version} {kind}: {e}"))?;
        let r = (ar, caps.scope == Scope::Namespaced);
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, r.clone());
        Ok(r)
    }
}

/// A template's compliance state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Compliant,
    NonCompliant,
    Pending,
}

impl State {
    fn of(compliant: bool) -> Self {
        if compliant {
            State::Compliant
        } else {
            State::NonCompliant
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            State::Compliant => "Compliant",
            State::NonCompliant => "NonCompliant",
            State::Pending => "Pending",
        }
    }

    /// The state a status message starts with, as upstream's status sync reads it.
    fn of_message(message: &str) -> Self {
        let m = message.to_ascii_lowercase();
        if m.starts_with("compliant") {
            State::Compliant
        } else if m.starts_with("pending") {
            State::Pending
        } else {
            State::NonCompliant
        }
    }
}

/// The judgement of one template.
struct Judged {
    meta: Value,
    state: State,
    message: String,
    /// The compliance event's reason: `policy: <namespace>/<name>` or `policy: <name>`.
    reason: String,
}

/// What one pass works with, besides the add-on's context.
struct Pass<'a> {
    ctx: &'a Ctx,
    kinds: &'a Kinds,
    /// The cluster's Namespaces.
    namespaces: Vec<Value>,
    /// ConstraintTemplates by the kind they define.
    templates: HashMap<String, Result<Template, String>>,
    /// Whether the cluster keeps the policy copies and ConfigurationPolicies.
    mirror: bool,
    /// The add-on's ConfigurationPolicies on the cluster, by name.
    written: BTreeMap<String, DynamicObject>,
    /// The names of the replicas evaluated this pass.
    current: BTreeSet<String>,
    /// Compliance as last reported, for dependencies: replicas by name, templates by
    /// `(kind, name)`.
    replica_states: HashMap<String, String>,
    template_states: HashMap<(String, String), String>,
    now: jiff::Timestamp,
    /// Whether the cluster keeps Gatekeeper's objects from the add-on (no Gatekeeper there).
    gatekeeper: bool,
    /// Constraint kinds whose CRD is in place.
    constraint_kinds: BTreeSet<String>,
    /// Constraint kinds the policies' templates define (their CRDs stay).
    defined_kinds: BTreeSet<String>,
    /// Gatekeeper objects written this pass: template names, constraint names by kind.
    kept_templates: std::sync::Mutex<BTreeSet<String>>,
    kept_constraints: std::sync::Mutex<BTreeMap<String, BTreeSet<String>>>,
    /// The cluster's listable resources, discovered once per pass when an audit covers any
    /// kind.
    discovered: tokio::sync::OnceCell<Result<Vec<ApiResource>, String>>,
    /// What the pass's audits listed, by the resources listed (group-version and kind, sorted):
    /// constraints that cover the same resources share one listing, its reviews and its
    /// inventory. A pass judges one snapshot: what the pass itself enforces (a
    /// ConfigurationPolicy that creates an object) is seen by the next pass's audits.
    listed: std::sync::Mutex<HashMap<Listing, std::sync::Arc<Listed>>>,
    /// The Constraints the pass will audit, by kind, as their audits judge them (with their
    /// policy's remediation): a kind's constraints that cover the same resources are judged
    /// together (`audit_together`).
    constraints: HashMap<String, Vec<Value>>,
    /// What those joint audits found, by kind and listing: each constraint's violations by its
    /// name, taken by the constraint's audits, with the constraint as judged.
    together: std::sync::Mutex<HashMap<(String, Listing), Together>>,
    /// What the audit of a `match.kinds` lists (`listing_of`), found once per pass.
    listings: std::sync::Mutex<HashMap<String, ListingFound>>,
    /// The TrustRoots delivered to this cluster, which ClusterImagePolicy templates may name.
    image_roots: BTreeMap<String, garrison_supply_chain::policy::TrustRoot>,
}

/// What the add-on remembers from pass to pass.
#[derive(Default)]
struct Memory {
    /// The policy CRDs and the cluster's namespace are in place.
    prepared: bool,
    /// The constraint CRDs installed, as written.
    constraint_crds: HashMap<String, Value>,
    /// The ConstraintTemplates of the last pass that compiled, by their object as JSON text:
    /// an unchanged template is not compiled again (a program's identity also keys the gate's
    /// remembered verdicts). One that failed is tried again at every pass, as a limit (the
    /// heap) may have failed it.
    compiled: HashMap<String, Template>,
}

async fn pass(
    ctx: &Ctx,
    kinds: &Kinds,
    memory: &mut Memory,
    owner: u64,
) -> Result<(), kube::Error> {
    let api: Api<Policy> = Api::namespaced(ctx.hub.clone(), &ctx.cluster);
    let all: Vec<Policy> = api
        .list(&ListParams::default().labels(&replicas_of(&ctx.cluster)))
        .await?
        .items;
    let mut replica_states = HashMap::new();
    let mut template_states = HashMap::new();
    for p in &all {
        let Some(st) = &p.status else { continue };
        if let Some(c) = &st.compliant {
            replica_states.insert(p.name_any(), c.clone());
        }
        for d in &st.details {
            if let (Some(meta), Some(c)) = (&d.template_meta, &d.compliant) {
                let key = (
                    meta["kind"].as_str().unwrap_or_default().to_string(),
                    meta["name"].as_str().unwrap_or_default().to_string(),
                );
                template_states.insert(key, c.clone());
            }
        }
    }
    let policies: Vec<Policy> = all
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && !p.spec.disabled)
        .collect();
    // The copies on the cluster: best effort. A cluster that cannot take them is still
    // evaluated and reported to the hub.
    if !memory.prepared {
        match spoke::prepare(&ctx.spoke, &ctx.cluster).await {
            Ok(()) => memory.prepared = true,
            Err(e) => {
                tracing::warn!(addon = ADDON, error = %format!("{e:#}"), "cannot keep policy copies on the cluster; evaluating without them")
            }
        }
    }
    let mut mirror = memory.prepared;
    let mut written = BTreeMap::new();
    if mirror {
        match spoke::list_configuration_policies(&ctx.spoke, &ctx.cluster).await {
            Ok(w) => written = w,
            Err(e) => {
                tracing::warn!(addon = ADDON, error = %e, "cannot list the ConfigurationPolicies on the cluster");
                mirror = false;
                memory.prepared = false;
            }
        }
    }
    // Templates first: a Constraint may come in another Policy than its template.
    let mut templates: HashMap<String, Result<Template, String>> = HashMap::new();
    let mut last = std::mem::take(&mut memory.compiled);
    for p in &policies {
        for t in &p.spec.policy_templates {
            let o = &t.object_definition;
            if o["kind"] == "ConstraintTemplate" {
                let text = o.to_string();
                let kept = memory.compiled.get(&text).cloned();
                let compiled = match kept.or_else(|| last.remove(&text)) {
                    Some(t) => Ok(t),
                    None => {
                        let fresh = Template::from_object(o).map_err(|e| e.to_string());
                        if let Some(note) = fresh.as_ref().ok().and_then(Template::rewrite_note) {
                            let name = o.pointer("/metadata/name").and_then(Value::as_str);
                            tracing::warn!(
                                addon = ADDON,
                                template = name.unwrap_or_default(),
                                note,
                                "a ConstraintTemplate is read in part as regorus reads it"
                            );
                        }
                        fresh
                    }
                };
                if let Ok(t) = &compiled {
                    memory.compiled.insert(text, t.clone());
                }
                let kind = o
                    .pointer("/spec/crd/spec/names/kind")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                templates.insert(kind, compiled);
            }
        }
    }
    // The cluster's Namespaces, read once per pass: ConfigurationPolicies select by them,
    // audits and the delivery gate serve namespaceSelectors with them.
    let namespaces: Vec<Value> = Api::<Namespace>::all(ctx.spoke.clone())
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|n| {
            with_type(
                serde_json::to_value(n).unwrap_or(Value::Null),
                "v1",
                "Namespace",
            )
        })
        .collect();
    // Gatekeeper's objects, with the audit as constraint status, where Gatekeeper is absent.
    let gatekeeper = mirror
        && match spoke::gatekeeper_ours(&ctx.spoke).await {
            Ok(ours) => ours,
            Err(e) => {
                tracing::warn!(addon = ADDON, error = %format!("{e:#}"), "cannot keep Gatekeeper objects on the cluster");
                false
            }
        };
    let mut constraint_kinds = BTreeSet::new();
    let mut defined_kinds = BTreeSet::new();
    if gatekeeper {
        for p in &policies {
            for t in &p.spec.policy_templates {
                let o = &t.object_definition;
                if o["kind"] != "ConstraintTemplate" {
                    continue;
                }
                let Ok(crd) = gatekeeper::constraint_crd(o) else {
                    continue;
                };
                let kind = crd["spec"]["names"]["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let name = crd["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                defined_kinds.insert(kind.clone());
                if memory.constraint_crds.get(&name) == Some(&crd) {
                    constraint_kinds.insert(kind);
                    continue;
                }
                match spoke::constraint_crd(&ctx.spoke, crd.clone()).await {
                    Ok(()) => {
                        memory.constraint_crds.insert(name, crd);
                        constraint_kinds.insert(kind);
                    }
                    Err(e) => {
                        tracing::warn!(addon = ADDON, kind = %kind, error = %format!("{e:#}"), "cannot install a constraint CRD on the cluster")
                    }
                }
            }
        }
    }
    let mut run = Pass {
        ctx,
        kinds,
        namespaces,
        templates,
        mirror,
        written,
        current: policies.iter().map(|p| p.name_any()).collect(),
        replica_states,
        template_states,
        now: jiff::Timestamp::now(),
        gatekeeper,
        constraint_kinds,
        defined_kinds,
        kept_templates: Default::default(),
        kept_constraints: Default::default(),
        discovered: Default::default(),
        listed: Default::default(),
        constraints: HashMap::new(),
        together: Default::default(),
        listings: Default::default(),
        image_roots: garrison_supply_chain::policy::Policies::load(&super::image::image_objects(
            &policies,
        ))
        .roots,
    };
    run.constraints = run.audited_constraints(&policies);
    // ConfigurationPolicies being deleted prune their objects first.
    let terminating: Vec<DynamicObject> = run
        .written
        .values()
        .filter(|o| o.metadata.deletion_timestamp.is_some())
        .cloned()
        .collect();
    for o in &terminating {
        run.written.remove(&o.name_any());
        finish_deletion(&run, o).await;
    }
    let mut enforced = Enforced::default();
    let mut judged_all = vec![];
    let mut audited: Vec<Value> = run.namespaces.clone();
    let mut owners: HashMap<String, String> = HashMap::new();
    let mut kept: std::collections::BTreeSet<String> = Default::default();
    for p in &policies {
        let name = p.name_any();
        if run.mirror {
            match spoke::copy_policy(&ctx.spoke, &ctx.cluster, p).await {
                Ok(uid) => {
                    owners.insert(name.clone(), uid);
                }
                Err(e) => {
                    tracing::warn!(addon = ADDON, policy = %name, error = %e, "cannot copy the policy to the cluster")
                }
            }
        }
        let remediation = p.spec.remediation_action.as_deref();
        let mut judged = vec![];
        for t in &p.spec.policy_templates {
            let o = &t.object_definition;
            let meta = template_meta(o);
            let reason = event_reason(&ctx.cluster, o);
            let waiting = match dependencies::merge(&p.spec.dependencies, &t.extra_dependencies) {
                Ok(deps) => {
                    let pending = dependencies::unsatisfied(&deps, |d| run.state_of(d));
                    (!pending.is_empty()).then(|| Ok(dependencies::pending_message(&pending)))
                }
                Err(e) => Some(Err(e)),
            };
            match waiting {
                Some(Ok(msg)) if t.ignore_pending == Some(true) => judged.push(Judged {
                    meta,
                    state: State::Compliant,
                    message: format!("Compliant; {msg} but ignorePending is true"),
                    reason,
                }),
                Some(Ok(msg)) => judged.push(Judged {
                    meta,
                    state: State::Pending,
                    message: format!("Pending; {msg}"),
                    reason,
                }),
                Some(Err(e)) => judged.push(Judged {
                    meta,
                    state: State::NonCompliant,
                    message: format!("NonCompliant; template-error; {e}"),
                    reason,
                }),
                None => {
                    collect_enforced(&mut enforced, &run.templates, &name, o, remediation);
                    let owner_uid = owners.get(&name).map(String::as_str);
                    let (j, objects) = run.judge(p, owner_uid, o, remediation, &mut kept).await;
                    audited.extend(objects);
                    judged.push(Judged { reason, ..j });
                }
            }
        }
        judged_all.push(judged);
    }
    // What the joint audits found for constraints that were not audited after all.
    run.together = Default::default();
    // The inventory is built off the async runtime. Only deny constraints read it as data;
    // converting it (about 0.4 s for 10,000 objects) is skipped when there are none.
    // An inventory equal to the one the gate holds keeps its conversion, and with it the
    // gate's remembered verdicts for templates that read it.
    let previous = ctx.enforcement.clone();
    let enforced = tokio::task::spawn_blocking(move || {
        for o in &audited {
            let _ = enforced.inventory.add(o);
        }
        if !enforced.constraints.is_empty() {
            let shared = super::gate::read(&previous);
            let same = match &shared.state {
                GateState::Ready(e) if e.inventory == enforced.inventory => e.data.clone(),
                _ => None,
            };
            drop(shared);
            enforced.data = Some(same.unwrap_or_else(|| enforced.inventory.prepared()));
        }
        enforced
    })
    .await;
    // A panic is the agent's bug, and goes on as one; a task cancelled means the runtime is
    // stopping. Either way the gate keeps its last state.
    let enforced = match enforced {
        Ok(e) => e,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => return Ok(()),
    };
    // What is enforced is published before anything is reported, so that a report that
    // fails does not leave the gate behind.
    set_gate(
        &ctx.enforcement,
        owner,
        GateState::Ready(Box::new(enforced)),
        false,
    );
    for (p, judged) in policies.iter().zip(judged_all) {
        let uid = owners.get(&p.name_any()).map(String::as_str);
        if let Err(e) = report(ctx, &api, p, uid, judged).await {
            tracing::warn!(addon = ADDON, policy = %p.name_any(), error = %e, "cannot report the policy's compliance");
        }
    }
    if run.mirror {
        run.tidy(&policies, &kept).await;
    }
    if run.gatekeeper {
        run.tidy_gatekeeper(memory).await;
    }
    Ok(())
}

/// `policy: <cluster>/<name>` for a ConfigurationPolicy (it lives in the cluster's namespace),
/// `policy: <name>` for the cluster-scoped Gatekeeper objects.
fn event_reason(cluster: &str, o: &Value) -> String {
    let name = o
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if o["kind"] == "ConfigurationPolicy" {
        format!("policy: {cluster}/{name}")
    } else {
        format!("policy: {name}")
    }
}

impl Pass<'_> {
    /// The `status.compliant` of a dependency, as last reported.
    /// The Constraints of `policies` that the pass audits, by kind, as their audits judge them:
    /// those whose dependencies are met (a template pending on them is not audited).
    fn audited_constraints(&self, policies: &[Policy]) -> HashMap<String, Vec<Value>> {
        let mut constraints: HashMap<String, Vec<Value>> = HashMap::new();
        for p in policies {
            let remediation = p.spec.remediation_action.as_deref();
            for t in &p.spec.policy_templates {
                let o = &t.object_definition;
                let (group, _) =
                    gatekeeper::group_version(o["apiVersion"].as_str().unwrap_or_default());
                let Some(kind) = o["kind"].as_str() else {
                    continue;
                };
                if group != gatekeeper::CONSTRAINT_GROUP {
                    continue;
                }
                let met = dependencies::merge(&p.spec.dependencies, &t.extra_dependencies)
                    .is_ok_and(|deps| {
                        dependencies::unsatisfied(&deps, |d| self.state_of(d)).is_empty()
                    });
                if met {
                    constraints
                        .entry(kind.to_string())
                        .or_default()
                        .push(with_remediation(o, remediation));
                }
            }
        }
        constraints
    }

    fn state_of(&self, d: &PolicyDependency) -> Option<String> {
        let kind = d.kind.as_deref().unwrap_or("Policy");
        match kind {
            "Policy" => self.replica_states.get(&d.name).cloned(),
            "ConstraintTemplate" => {
                // A template reported (compiled: Compliant) counts as it was reported; one that
                // is missing satisfies only a dependency that does not want it Compliant, as
                // upstream.
                let wanted = d.compliance.as_deref().unwrap_or("Compliant");
                match self
                    .template_states
                    .get(&("ConstraintTemplate".to_string(), d.name.clone()))
                {
                    Some(s) => Some(s.clone()),
                    None if wanted != "Compliant" => Some(wanted.into()),
                    None => None,
                }
            }
            _ => self
                .template_states
                .get(&(kind.to_string(), d.name.clone()))
                .cloned(),
        }
    }

    async fn judge(
        &mut self,
        p: &Policy,
        owner_uid: Option<&str>,
        o: &Value,
        remediation: Option<&str>,
        kept: &mut std::collections::BTreeSet<String>,
    ) -> (Judged, Vec<Value>) {
        let meta = template_meta(o);
        let mut audited = vec![];
        let (group, _) = gatekeeper::group_version(o["apiVersion"].as_str().unwrap_or_default());
        let (compliant, message) = match (group, o["kind"].as_str().unwrap_or_default()) {
            (_, "ConfigurationPolicy") => {
                return (
                    self.configuration(p, owner_uid, o, remediation, kept).await,
                    vec![],
                );
            }
            (gatekeeper::TEMPLATE_GROUP, "ConstraintTemplate") => {
                let kind = o
                    .pointer("/spec/crd/spec/names/kind")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if self.gatekeeper {
                    self.keep_template(p, kind, o).await;
                }
                match self.templates.get(kind) {
                    Some(Ok(_)) => (
                        true,
                        format!("Compliant; notification - ConstraintTemplate {kind} compiled"),
                    ),
                    Some(Err(e)) => (false, format!("NonCompliant; violation - {e}")),
                    None => (
                        false,
                        "NonCompliant; violation - the template has no kind".into(),
                    ),
                }
            }
            (gatekeeper::CONSTRAINT_GROUP, kind) => match self.templates.get(kind) {
                Some(Ok(t)) => {
                    let found = audit(self, t, o, remediation).await;
                    if self.gatekeeper {
                        self.keep_constraint(p, kind, o, remediation, &found).await;
                    }
                    audited = found.objects;
                    (found.compliant, found.message)
                }
                Some(Err(e)) => (
                    false,
                    format!(
                        "NonCompliant; violation - the ConstraintTemplate for {kind} does not compile: {e}"
                    ),
                ),
                None => (
                    false,
                    format!("NonCompliant; violation - no ConstraintTemplate defines kind {kind}"),
                ),
            },
            (garrison_supply_chain::policy::GROUP, kind @ ("ClusterImagePolicy" | "TrustRoot")) => {
                image_template(self, kind, o)
            }
            (_, kind) => (
                false,
                format!("NonCompliant; violation - policy template kind {kind} is not supported"),
            ),
        };
        (
            Judged {
                meta,
                state: State::of(compliant),
                message,
                reason: String::new(),
            },
            audited,
        )
    }

    /// Judges (and with enforce, applies) a ConfigurationPolicy template of replica `p`. On a
    /// cluster that keeps copies, the template is written as a ConfigurationPolicy of its own
    /// first; its status says when it was last evaluated (so `evaluationInterval` holds across
    /// restarts) and which objects it created.
    async fn configuration(
        &mut self,
        p: &Policy,
        owner_uid: Option<&str>,
        o: &Value,
        remediation: Option<&str>,
        kept: &mut std::collections::BTreeSet<String>,
    ) -> Judged {
        let meta = template_meta(o);
        let judged = |compliant: bool, message: String| Judged {
            meta: meta.clone(),
            state: State::of(compliant),
            message,
            reason: String::new(),
        };
        let mut cp = match ConfigurationPolicy::from_object(o) {
            Ok(cp) => cp,
            Err(e) => return judged(false, config_policy::compliance_message(false, &[e])),
        };
        if let Some(r) = remediation {
            cp.remediation = Remediation::parse(r);
        }
        let name = p.name_any();
        let mut written: Option<DynamicObject> = None;
        if self.mirror {
            // Template names are unique on the cluster: a name another template of this pass
            // took, or a current policy's ConfigurationPolicy holds, is refused.
            let holder = self
                .written
                .get(&cp.name)
                .and_then(|w| w.labels().get(POLICY_LABEL).cloned());
            if kept.contains(&cp.name)
                || holder
                    .as_ref()
                    .is_some_and(|h| *h != name && self.current.contains(h))
            {
                return judged(
                    false,
                    format!(
                        "NonCompliant; template-error; another policy template on this cluster is already named {}",
                        cp.name
                    ),
                );
            }
            // One left by a policy that is gone is not taken over: it is deleted (and pruned
            // as its own spec says) first, and this template written on a later pass.
            if holder.is_none_or(|h| h == name) {
                // Reserved before the write: a write that fails never gets the
                // ConfigurationPolicy deleted (and its objects pruned).
                kept.insert(cp.name.clone());
                let mut obj = o.clone();
                if let (Some(r), Some(spec)) = (
                    remediation,
                    obj.get_mut("spec").and_then(Value::as_object_mut),
                ) {
                    spec.insert("remediationAction".into(), json!(r.to_ascii_lowercase()));
                }
                let prunes = matches!(
                    cp.prune_object_behavior.as_str(),
                    "DeleteAll" | "DeleteIfCreated"
                );
                if let Some(uid) = owner_uid {
                    match spoke::write_configuration_policy(
                        &self.ctx.spoke,
                        &self.ctx.cluster,
                        &name,
                        uid,
                        &obj,
                        prunes,
                    )
                    .await
                    {
                        Ok(w) => written = Some(w),
                        Err(e) => {
                            tracing::warn!(addon = ADDON, policy = %name, template = %cp.name, error = %e, "cannot write the ConfigurationPolicy to the cluster")
                        }
                    }
                }
            }
        }
        let status = written
            .as_ref()
            .map(|w| w.data["status"].clone())
            .unwrap_or(Value::Null);
        // evaluationInterval: a policy evaluated recently enough keeps its last result.
        let last_state = status["compliant"].as_str().unwrap_or_default();
        let interval = match last_state {
            "Compliant" => cp.compliant_interval,
            "NonCompliant" => cp.noncompliant_interval,
            _ => config_policy::Interval::Watch,
        };
        let last = status["lastEvaluated"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_second());
        let same_spec = written.as_ref().and_then(|w| w.metadata.generation)
            == status["lastEvaluatedGeneration"].as_i64();
        if !interval.due(last, same_spec, self.now.as_second())
            && let Some(prev) = previous(p, &meta)
        {
            return Judged {
                meta,
                state: State::of_message(&prev),
                message: prev,
                reason: String::new(),
            };
        }
        let before = status["relatedObjects"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let evaluation = configuration(self, &cp, &before).await;
        if let Some(w) = &written {
            let stopped = match interval_after(&cp, evaluation.compliant) {
                config_policy::Interval::Never => format!(
                    ". This policy will not be evaluated again due to spec.evaluationInterval.{} being set to \"never\"",
                    if evaluation.compliant {
                        "compliant"
                    } else {
                        "noncompliant"
                    }
                ),
                _ => String::new(),
            };
            let details: Vec<Value> = evaluation
                .details
                .iter()
                .map(|(ok, reason, msg)| {
                    json!({"Compliant": State::of(*ok).as_str(), "Validity": {},
                        "conditions": [{"type": if *ok { "notification" } else { "violation" },
                            "status": "True", "lastTransitionTime": self.now.to_string(),
                            "reason": reason, "message": format!("{msg}{stopped}")}]})
                })
                .collect();
            let mut related: Vec<Value> = evaluation.related.iter().map(Related::to_json).collect();
            // An evaluation that failed somewhere did not see every object: what it did not
            // judge stays related (with what the policy created), and nothing is pruned.
            if !evaluation.complete {
                related.extend(
                    before
                        .iter()
                        .filter(|b| !evaluation.related.iter().any(|r| r.same_object(b)))
                        .cloned(),
                );
            }
            let status = json!({
                "compliant": State::of(evaluation.compliant).as_str(),
                "compliancyDetails": details,
                "relatedObjects": related,
                "lastEvaluated": self.now.to_string(),
                "lastEvaluatedGeneration": w.metadata.generation,
            });
            if let Err(e) =
                spoke::configuration_status(&self.ctx.spoke, &self.ctx.cluster, &cp.name, status)
                    .await
            {
                tracing::warn!(addon = ADDON, template = %cp.name, error = %e, "cannot write the ConfigurationPolicy's status");
            }
            // Objects no longer related are pruned as on deletion.
            if cp.remediation == Remediation::Enforce && evaluation.complete {
                let gone: Vec<Value> = before
                    .into_iter()
                    .filter(|b| !evaluation.related.iter().any(|r| r.same_object(b)))
                    .collect();
                if let Err(e) = prune(self, &cp.prune_object_behavior, &gone).await {
                    tracing::warn!(addon = ADDON, template = %cp.name, error = %e, "cannot prune objects no longer related");
                }
            }
        }
        judged(evaluation.compliant, evaluation.message)
    }

    /// Writes ConstraintTemplate `o` (defining `kind`) of replica `p` to the cluster.
    async fn keep_template(&self, p: &Policy, kind: &str, o: &Value) {
        let name = o
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let status = match self.templates.get(kind) {
            Some(Ok(_)) => json!({"created": true}),
            Some(Err(e)) => json!({"created": false, "byPod": [{"id": ADDON,
                "errors": [{"code": "ingest_error", "message": e}]}]}),
            None => json!({"created": false}),
        };
        match spoke::write_gatekeeper(
            &self.ctx.spoke,
            &spoke::constraint_templates(),
            &p.name_any(),
            o,
            status,
        )
        .await
        {
            Ok(()) => {
                lock(&self.kept_templates).insert(name);
            }
            Err(e) => {
                tracing::warn!(addon = ADDON, template = %name, error = %e, "cannot write the ConstraintTemplate to the cluster")
            }
        }
    }

    /// Writes Constraint `o` of `kind` (the Policy's remediation in its enforcement action)
    /// of replica `p` to the cluster, with its audit as status: `auditTimestamp`,
    /// `totalViolations` and the first 20 violations, as Gatekeeper's audit writes it.
    async fn keep_constraint(
        &self,
        p: &Policy,
        kind: &str,
        o: &Value,
        remediation: Option<&str>,
        found: &Audited,
    ) {
        if !self.constraint_kinds.contains(kind) {
            return;
        }
        let name = o
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let status = json!({
            "auditTimestamp": self.now.to_string(),
            "totalViolations": found.violations.len(),
            "violations": found.violations.iter().take(gatekeeper::STATUS_VIOLATIONS).collect::<Vec<_>>(),
        });
        let obj = with_remediation(o, remediation);
        match spoke::write_gatekeeper(
            &self.ctx.spoke,
            &spoke::constraints(kind),
            &p.name_any(),
            &obj,
            status,
        )
        .await
        {
            Ok(()) => {
                lock(&self.kept_constraints)
                    .entry(kind.to_string())
                    .or_default()
                    .insert(name);
            }
            Err(e) => {
                tracing::warn!(addon = ADDON, constraint = %name, error = %e, "cannot write the Constraint to the cluster")
            }
        }
    }

    /// Deletes Gatekeeper objects no policy has any more, and the CRDs of kinds no template
    /// defines.
    async fn tidy_gatekeeper(&self, memory: &mut Memory) {
        let spoke = &self.ctx.spoke;
        let kept_templates = lock(&self.kept_templates).clone();
        let kept_constraints = lock(&self.kept_constraints).clone();
        if let Err(e) =
            spoke::drop_gatekeeper(spoke, &spoke::constraint_templates(), &kept_templates).await
        {
            tracing::warn!(addon = ADDON, error = %e, "cannot delete ConstraintTemplates no policy has");
        }
        let none = BTreeSet::new();
        for kind in &self.constraint_kinds {
            let kept = kept_constraints.get(kind).unwrap_or(&none);
            if let Err(e) = spoke::drop_gatekeeper(spoke, &spoke::constraints(kind), kept).await {
                tracing::warn!(addon = ADDON, kind = %kind, error = %e, "cannot delete Constraints no policy has");
            }
        }
        match spoke::drop_constraint_crds(spoke, &self.defined_kinds).await {
            Ok(()) => memory.constraint_crds.retain(|_, crd| {
                crd["spec"]["names"]["kind"]
                    .as_str()
                    .is_some_and(|k| self.defined_kinds.contains(k))
            }),
            Err(e) => {
                tracing::warn!(addon = ADDON, error = %e, "cannot delete constraint CRDs no template defines")
            }
        }
    }

    /// Deletes the copies and ConfigurationPolicies of replicas and templates that are gone;
    /// a ConfigurationPolicy that prunes keeps its finalizer until a later pass pruned.
    async fn tidy(&self, policies: &[Policy], kept: &std::collections::BTreeSet<String>) {
        let spoke = &self.ctx.spoke;
        let cluster = &self.ctx.cluster;
        for name in self.written.keys().filter(|n| !kept.contains(*n)) {
            if let Err(e) = spoke::delete_configuration_policy(spoke, cluster, name).await {
                tracing::warn!(addon = ADDON, template = %name, error = %e, "cannot delete a ConfigurationPolicy no policy has");
            }
        }
        let current: std::collections::BTreeSet<String> =
            policies.iter().map(|p| p.name_any()).collect();
        match spoke::copies(spoke, cluster).await {
            Ok(copies) => {
                for c in copies.iter().filter(|c| !current.contains(*c)) {
                    if let Err(e) = spoke::delete_copy(spoke, cluster, c).await {
                        tracing::warn!(addon = ADDON, policy = %c, error = %e, "cannot delete the copy of a policy that is gone");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(addon = ADDON, error = %e, "cannot list the policy copies on the cluster")
            }
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The interval that follows an evaluation with this outcome.
fn interval_after(cp: &ConfigurationPolicy, compliant: bool) -> config_policy::Interval {
    if compliant {
        cp.compliant_interval
    } else {
        cp.noncompliant_interval
    }
}

/// The message last reported for template `meta` of `p`.
fn previous(p: &Policy, meta: &Value) -> Option<String> {
    p.status
        .as_ref()?
        .details
        .iter()
        .find(|d| d.template_meta.as_ref() == Some(meta))?
        .history
        .first()
        .map(|h| h.message.clone())
}

/// Prunes the objects of a ConfigurationPolicy being deleted (when it enforces and its
/// `pruneObjectBehavior` says so), then lets its deletion complete. A prune that fails keeps
/// the finalizer: the next pass tries again.
async fn finish_deletion(run: &Pass<'_>, o: &DynamicObject) {
    let spec = &o.data["spec"];
    let enforce = spec["remediationAction"]
        .as_str()
        .is_some_and(|r| r.eq_ignore_ascii_case("enforce"));
    if enforce {
        let behavior = spec["pruneObjectBehavior"].as_str().unwrap_or("None");
        let related = o.data["status"]["relatedObjects"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Err(e) = prune(run, behavior, &related).await {
            tracing::warn!(addon = ADDON, template = %o.name_any(), error = %e, "cannot prune the objects of a deleted ConfigurationPolicy; trying again");
            return;
        }
    }
    if o.finalizers().iter().any(|f| f == spoke::PRUNE_FINALIZER)
        && let Err(e) = spoke::release(&run.ctx.spoke, &run.ctx.cluster, o).await
    {
        tracing::warn!(addon = ADDON, template = %o.name_any(), error = %e, "cannot release a pruned ConfigurationPolicy");
    }
}

/// Deletes `related` objects as `behavior` says: `DeleteAll` every one, `DeleteIfCreated`
/// those the policy created and that are still the very object it created (same uid).
async fn prune(run: &Pass<'_>, behavior: &str, related: &[Value]) -> Result<(), String> {
    if !matches!(behavior, "DeleteAll" | "DeleteIfCreated") {
        return Ok(());
    }
    for r in related {
        let created = r
            .pointer("/properties/createdByPolicy")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if behavior == "DeleteIfCreated" && !created {
            continue;
        }
        let obj = &r["object"];
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if name.is_empty() || name == "-" {
            continue;
        }
        let (ar, _) = run
            .kinds
            .resolve(
                &run.ctx.spoke,
                obj["apiVersion"].as_str().unwrap_or_default(),
                obj["kind"].as_str().unwrap_or_default(),
            )
            .await?;
        let api: Api<DynamicObject> =
            match obj.pointer("/metadata/namespace").and_then(Value::as_str) {
                Some(ns) => Api::namespaced_with(run.ctx.spoke.clone(), ns, &ar),
                None => Api::all_with(run.ctx.spoke.clone(), &ar),
            };
        let Some(current) = api.get_opt(name).await.map_err(|e| e.to_string())? else {
            continue;
        };
        if behavior == "DeleteIfCreated"
            && current.uid().as_deref() != r.pointer("/properties/uid").and_then(Value::as_str)
        {
            continue;
        }
        if spoke::delete_if_present(&api, name)
            .await
            .map_err(|e| e.to_string())?
        {
            tracing::info!(addon = ADDON, object = %name, kind = %ar.kind, behavior, "pruned an object of a policy");
        }
    }
    Ok(())
}

/// An object a ConfigurationPolicy judged, as `status.relatedObjects` lists it.
struct Related {
    api_version: String,
    kind: String,
    name: String,
    namespace: Option<String>,
    compliant: bool,
    reason: &'static str,
    created: bool,
    uid: Option<String>,
}

impl Related {
    fn to_json(&self) -> Value {
        let mut metadata = json!({"name": self.name});
        if let Some(ns) = &self.namespace {
            metadata["namespace"] = json!(ns);
        }
        let mut properties = json!({"createdByPolicy": self.created});
        if let Some(uid) = &self.uid {
            properties["uid"] = json!(uid);
        }
        json!({
            "object": {"apiVersion": self.api_version, "kind": self.kind, "metadata": metadata},
            "compliant": State::of(self.compliant).as_str(),
            "reason": self.reason,
            "properties": properties,
        })
    }

    fn same_object(&self, v: &Value) -> bool {
        let o = &v["object"];
        o["kind"].as_str() == Some(self.kind.as_str())
            && o.pointer("/metadata/name").and_then(Value::as_str) == Some(self.name.as_str())
            && o.pointer("/metadata/namespace").and_then(Value::as_str) == self.namespace.as_deref()
    }

    /// Whether the policy created this object: now, or earlier and it is still that object.
    fn created_before(&self, before: &[Value]) -> bool {
        before.iter().any(|b| {
            self.same_object(b)
                && b.pointer("/properties/createdByPolicy")
                    .and_then(Value::as_bool)
                    == Some(true)
                && b.pointer("/properties/uid").and_then(Value::as_str) == self.uid.as_deref()
        })
    }
}

/// A ConfigurationPolicy's evaluation.
struct Evaluation {
    /// Whether every object template could be judged (no API or resolution error).
    complete: bool,
    compliant: bool,
    message: String,
    /// Per object template: compliant, reason, message.
    details: Vec<(bool, &'static str, String)>,
    related: Vec<Related>,
}

/// Judges (and with enforce, applies) a ConfigurationPolicy; `before` is the
/// `relatedObjects` of its last evaluation.
async fn configuration(run: &Pass<'_>, cp: &ConfigurationPolicy, before: &[Value]) -> Evaluation {
    let mut messages = vec![];
    let mut details = vec![];
    let mut related = vec![];
    let mut compliant = true;
    let mut complete = true;
    let spoke_nss: Vec<(String, BTreeMap<String, String>)> = run
        .namespaces
        .iter()
        .map(|n| {
            let labels = n
                .pointer("/metadata/labels")
                .and_then(|l| serde_json::from_value(l.clone()).ok())
                .unwrap_or_default();
            let name = n
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            (name.to_string(), labels)
        })
        .collect();
    for t in &cp.templates {
        let mut ok_t = true;
        let mut msgs = vec![];
        let mut verb_t = None;
        let resolved = run
            .kinds
            .resolve(&run.ctx.spoke, t.api_version(), t.kind())
            .await;
        let namespaces: Result<(ApiResource, Vec<Option<String>>), String> =
            resolved.and_then(|(ar, namespaced)| {
                if !namespaced {
                    Ok((ar, vec![None]))
                } else if let Some(ns) = t.namespace() {
                    Ok((ar, vec![Some(ns.to_string())]))
                } else if cp.namespace_selector.is_set() {
                    let nss = cp
                        .namespace_selector
                        .select(&spoke_nss)
                        .into_iter()
                        .map(|n| Some(n.to_string()))
                        .collect();
                    Ok((ar, nss))
                } else {
                    Err(format!(
                        "{} has no namespace, and the policy has no namespaceSelector",
                        ar.plural
                    ))
                }
            });
        match namespaces {
            Err(e) => {
                ok_t = false;
                complete = false;
                msgs.push(e);
            }
            Ok((ar, nss)) => {
                for ns in nss {
                    match object_template(run.ctx, cp, t, &ar, ns.as_deref(), before).await {
                        Ok((ok, msg, verb, rel)) => {
                            ok_t &= ok;
                            verb_t = verb_t.or(verb);
                            msgs.push(msg);
                            related.extend(rel);
                        }
                        Err(e) => {
                            ok_t = false;
                            complete = false;
                            msgs.push(e.to_string());
                        }
                    }
                }
            }
        }
        compliant &= ok_t;
        details.push((
            ok_t,
            config_policy::condition_reason(t.compliance, ok_t, verb_t),
            msgs.join("; "),
        ));
        messages.extend(msgs);
    }
    Evaluation {
        complete,
        compliant,
        message: config_policy::compliance_message(compliant, &messages),
        details,
        related,
    }
}

/// Judges one object template in one namespace (and enforces it): compliant, message, what
/// was done (`created`, `updated`, `deleted`), and the objects judged.
async fn object_template(
    ctx: &Ctx,
    cp: &ConfigurationPolicy,
    t: &config_policy::ObjectTemplate,
    ar: &ApiResource,
    ns: Option<&str>,
    before: &[Value],
) -> Result<(bool, String, Option<&'static str>, Vec<Related>), kube::Error> {
    let api: Api<DynamicObject> = match ns {
        Some(n) => Api::namespaced_with(ctx.spoke.clone(), n, ar),
        None => Api::all_with(ctx.spoke.clone(), ar),
    };
    let enforce = cp.remediation == Remediation::Enforce;
    let pp = PostParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let related = |name: &str, ok: bool, state: Found, verb: Option<&str>, uid: Option<String>| {
        let mut r = Related {
            api_version: ar.api_version.clone(),
            kind: ar.kind.clone(),
            name: name.to_string(),
            namespace: ns.map(str::to_string),
            compliant: ok,
            reason: config_policy::related_reason(t.compliance, state, verb),
            created: false,
            uid,
        };
        r.created = verb == Some("created") || r.created_before(before);
        r
    };
    let Some(name) = t.name() else {
        // Unnamed: any object of the kind (in the namespace) decides.
        let list = api.list(&ListParams::default()).await?.items;
        let matching: Vec<(String, Option<String>)> = list
            .iter()
            .filter_map(|o| {
                let v = serde_json::to_value(o).ok()?;
                (config_policy::found(t, Some(&v)) == Found::AsSpecified)
                    .then(|| (o.name_any(), o.uid()))
            })
            .collect();
        let names: Vec<String> = matching.iter().map(|(n, _)| n.clone()).collect();
        if enforce && t.compliance == ComplianceType::MustNotHave && !matching.is_empty() {
            for n in &names {
                api.delete(n, &DeleteParams::default()).await?;
            }
            let rel = matching
                .into_iter()
                .map(|(n, uid)| related(&n, true, Found::AsSpecified, Some("deleted"), uid))
                .collect();
            return Ok((
                true,
                config_policy::enforced_message("deleted", &ar.plural, &names.join(", "), ns),
                Some("deleted"),
                rel,
            ));
        }
        let state = if matching.is_empty() {
            Found::Missing
        } else {
            Found::AsSpecified
        };
        let ok = config_policy::complies(t.compliance, state);
        let rel = if matching.is_empty() {
            vec![related("-", ok, state, None, None)]
        } else {
            matching
                .into_iter()
                .map(|(n, uid)| related(&n, ok, state, None, uid))
                .collect()
        };
        let shown = if names.is_empty() {
            vec!["-".to_string()]
        } else {
            names
        };
        return Ok((
            ok,
            config_policy::message(t.compliance, state, &ar.plural, &shown, ns),
            None,
            rel,
        ));
    };
    let current = api.get_opt(name).await?;
    let uid = current.as_ref().and_then(|c| c.uid());
    let current_v = current.as_ref().and_then(|c| serde_json::to_value(c).ok());
    let state = config_policy::found(t, current_v.as_ref());
    let ok = config_policy::complies(t.compliance, state);
    if ok || !enforce {
        return Ok((
            ok,
            config_policy::message(t.compliance, state, &ar.plural, &[name.to_string()], ns),
            None,
            vec![related(name, ok, state, None, uid)],
        ));
    }
    let (verb, uid) = match (t.compliance, current_v) {
        (ComplianceType::MustNotHave, _) => {
            api.delete(name, &DeleteParams::default()).await?;
            ("deleted", uid)
        }
        (_, None) => {
            let mut obj = t.object.clone();
            if let Some(n) = ns {
                obj["metadata"]["namespace"] = json!(n);
            }
            let obj: DynamicObject =
                serde_json::from_value(obj).map_err(kube::Error::SerdeError)?;
            let made = api.create(&pp, &obj).await?;
            ("created", made.uid())
        }
        (c, Some(actual)) => {
            let want = config_policy::merged(c, &t.object, &actual);
            let obj: DynamicObject =
                serde_json::from_value(want).map_err(kube::Error::SerdeError)?;
            api.replace(name, &pp, &obj).await?;
            ("updated", uid)
        }
    };
    tracing::info!(addon = ADDON, policy = %cp.name, object = %name, verb, "enforced a configuration policy");
    Ok((
        true,
        config_policy::enforced_message(verb, &ar.plural, name, ns),
        Some(verb),
        vec![related(name, true, state, Some(verb), uid)],
    ))
}

fn with_type(mut v: Value, api_version: &str, kind: &str) -> Value {
    v["apiVersion"] = json!(api_version);
    v["kind"] = json!(kind);
    v
}

/// Adds what template `o` of policy `policy` enforces at delivery: a Constraint whose effective
/// action is `deny`, or the `mustnothave` object templates of an enforced ConfigurationPolicy.
/// A deny Constraint that cannot be built (no template, a template that does not compile,
/// parameters that do not fit) is recorded as broken: the gate then refuses every work, since
/// it cannot tell what the constraint forbids.
fn collect_enforced(
    enforced: &mut Enforced,
    templates: &HashMap<String, Result<Template, String>>,
    policy: &str,
    o: &Value,
    remediation: Option<&str>,
) {
    let (group, _) = gatekeeper::group_version(o["apiVersion"].as_str().unwrap_or_default());
    let kind = o["kind"].as_str().unwrap_or_default();
    if group == gatekeeper::CONSTRAINT_GROUP {
        let obj = with_remediation(o, remediation);
        let action = obj
            .pointer("/spec/enforcementAction")
            .and_then(Value::as_str)
            .unwrap_or("deny");
        let built = match templates.get(kind) {
            Some(Ok(t)) => Constraint::from_object(&obj, t)
                .map(|c| (t, c))
                .map_err(|e| e.to_string()),
            Some(Err(e)) => Err(format!("its ConstraintTemplate does not compile: {e}")),
            None => Err(format!("no ConstraintTemplate defines kind {kind}")),
        };
        match built {
            Ok((t, c)) if *c.action() == gatekeeper::EnforcementAction::Deny => {
                match enforced
                    .constraints
                    .iter_mut()
                    .find(|(tt, _)| tt.kind() == t.kind())
                {
                    Some((_, cs)) => cs.push(c),
                    None => enforced.constraints.push((t.clone(), vec![c])),
                }
            }
            Ok(_) => {}
            Err(e) if action == "deny" => {
                let name = o
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                enforced
                    .broken
                    .push(format!("policy {policy}: constraint {kind} {name}: {e}"));
            }
            Err(_) => {}
        }
    } else if kind == "ConfigurationPolicy" {
        let enforce = remediation
            .or_else(|| o.pointer("/spec/remediationAction").and_then(Value::as_str))
            .is_some_and(|r| r.eq_ignore_ascii_case("enforce"));
        let mut cp = match ConfigurationPolicy::from_object(o) {
            Ok(cp) => cp,
            Err(e) => {
                // What it forbids cannot be told: an enforced one refuses every work.
                if enforce {
                    let name = o
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    enforced
                        .broken
                        .push(format!("policy {policy}: ConfigurationPolicy {name}: {e}"));
                }
                return;
            }
        };
        if let Some(r) = remediation {
            cp.remediation = Remediation::parse(r);
        }
        if cp.remediation == Remediation::Enforce {
            for t in cp.templates {
                if t.compliance == ComplianceType::MustNotHave {
                    enforced
                        .forbidden
                        .push((cp.name.clone(), cp.namespace_selector.clone(), t));
                }
            }
        }
    }
}

/// A Constraint with the Policy's remediation in place of its enforcement action, as upstream:
/// inform is `warn`, enforce is `deny`.
fn with_remediation(o: &Value, remediation: Option<&str>) -> Value {
    let mut obj = o.clone();
    let action = match remediation.map(str::to_ascii_lowercase).as_deref() {
        Some("inform") => "warn",
        Some("enforce") => "deny",
        _ => return obj,
    };
    // A constraint whose spec is no object is refused when it is built.
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("enforcementAction".into(), json!(action));
    }
    obj
}

fn template_meta(o: &Value) -> Value {
    json!({"apiVersion": o["apiVersion"], "kind": o["kind"],
        "name": o.pointer("/metadata/name").cloned().unwrap_or(Value::Null)})
}

/// A ClusterImagePolicy or TrustRoot template: compliant when it can be used and the
/// image-verification add-on, which enforces it at delivery, runs on this cluster.
fn image_template(run: &Pass<'_>, kind: &str, o: &Value) -> (bool, String) {
    use garrison_supply_chain::policy::{Secrets, image_policy_with, trust_root};
    let name = o
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let read = if kind == "TrustRoot" {
        trust_root(o).map(|_| ())
    } else {
        // Secrets are the image-verification add-on's to read; what it found is reported.
        image_policy_with(o, &run.image_roots, Secrets::Deferred).map(|_| ())
    };
    let read = read.map_err(|e| e.to_string()).and_then(|()| {
        match super::image::load_error(&run.ctx.images, name) {
            Some(e) if kind == "ClusterImagePolicy" => Err(e),
            _ => Ok(()),
        }
    });
    match read {
        Err(e) => (false, format!("NonCompliant; violation - {e}")),
        Ok(()) if !super::image::enabled(&run.ctx.images) => (
            false,
            format!(
                "NonCompliant; violation - {kind} {name} is not enforced: the {} add-on is not enabled on this cluster",
                super::image::ADDON
            ),
        ),
        // Enabled, but what it enforces is what it has loaded: a policy it has not read yet
        // holds no work, and saying otherwise would be a false record.
        Ok(()) if !super::image::loaded(&run.ctx.images, kind, name) => (
            false,
            format!(
                "NonCompliant; violation - {kind} {name} is not enforced yet: the {} add-on has not loaded it",
                super::image::ADDON
            ),
        ),
        Ok(()) => (
            true,
            format!(
                "Compliant; notification - {kind} {name} is enforced: images are verified before works are applied"
            ),
        ),
    }
}

/// What a Constraint's audit found.
struct Audited {
    compliant: bool,
    message: String,
    /// The objects listed, for the pass's inventory: only from the audit that listed them
    /// first in the pass (others that share the listing give none).
    objects: Vec<Value>,
    /// The violations as Gatekeeper's Constraint status lists them.
    violations: Vec<Value>,
}

impl Audited {
    fn failed(why: impl std::fmt::Display) -> Self {
        Audited {
            compliant: false,
            message: format!("NonCompliant; violation - {why}"),
            objects: vec![],
            violations: vec![],
        }
    }
}

/// Audits the existing objects a Constraint matches.
async fn audit(
    run: &Pass<'_>,
    template: &Template,
    o: &Value,
    remediation: Option<&str>,
) -> Audited {
    // The Policy's remediation overrides the constraint's action, as upstream.
    let judged_as = with_remediation(o, remediation);
    let constraint = match Constraint::from_object(&judged_as, template) {
        Ok(c) => c,
        Err(e) => return Audited::failed(e),
    };
    // An audit that cannot list what the constraint covers is not a pass.
    let (targets, key) = match listing_of(run, o).await {
        Ok(t) => t,
        Err(e) => return Audited::failed(e),
    };
    let cached = run
        .listed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned();
    let (listed, fresh) = match cached {
        Some(listed) => (listed, false),
        None => {
            // Listed in the key's order, so that the violations a status keeps (the first 20)
            // do not depend on which constraint listed first.
            let mut targets: Vec<&ApiResource> = targets.iter().collect();
            targets.sort_by(|a, b| (&a.api_version, &a.kind).cmp(&(&b.api_version, &b.kind)));
            let mut objects: Vec<Value> = vec![];
            for ar in targets {
                let api: Api<DynamicObject> = Api::all_with(run.ctx.spoke.clone(), ar);
                match api.list(&ListParams::default()).await {
                    Ok(l) => {
                        for item in l.items {
                            objects.push(with_type(
                                serde_json::to_value(&item).unwrap_or(Value::Null),
                                &ar.api_version,
                                &ar.kind,
                            ));
                        }
                    }
                    Err(e) => {
                        return Audited::failed(format!(
                            "cannot list {} {}: {e}",
                            ar.api_version, ar.kind
                        ));
                    }
                }
            }
            let listed = match Listed::of(run.namespaces.clone(), objects).await {
                Ok(l) => std::sync::Arc::new(l),
                Err(e) => return Audited::failed(e),
            };
            run.listed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.clone(), listed.clone());
            (listed, true)
        }
    };
    // The objects go to the pass's inventory with the listing that first finds them, whatever
    // this constraint's audit comes to.
    let for_inventory = if fresh {
        listed.reviews.iter().map(|r| r.object().clone()).collect()
    } else {
        vec![]
    };
    let together = audit_together(run, template, &judged_as, &key, &listed).await;
    let judged = match together {
        Some(found) => Ok(found),
        None => listed.clone().judge(template.clone(), constraint).await,
    };
    let judged = match judged {
        Ok(j) => j,
        Err(e) => {
            return Audited {
                objects: for_inventory,
                ..Audited::failed(e)
            };
        }
    };
    let objects: &[Review] = &listed.reviews;
    let mut violations = vec![];
    let mut found_all = vec![];
    for (at, found) in judged {
        let v = objects[at].object();
        let ns = v
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = v["kind"].as_str().unwrap_or_default();
        violations.push(format!(
            "{} - {} (on {kind} {ns}/{name})",
            found.action.as_str(),
            found.msg,
        ));
        let (group, version) =
            gatekeeper::group_version(v["apiVersion"].as_str().unwrap_or_default());
        let mut entry = json!({"group": group, "version": version, "kind": kind,
            "name": name, "message": found.msg, "enforcementAction": found.action.as_str()});
        if !ns.is_empty() {
            entry["namespace"] = json!(ns);
        }
        found_all.push(entry);
    }
    let (compliant, message) = if violations.is_empty() {
        (
            true,
            "Compliant; The constraint has no violations".to_string(),
        )
    } else {
        (
            false,
            config_policy::truncate(format!("NonCompliant; {}", violations.join("; "))),
        )
    };
    Audited {
        compliant,
        message,
        objects: for_inventory,
        violations: found_all,
    }
}

/// The resources an audit lists, as `(apiVersion, kind)`, sorted.
type Listing = Vec<(String, String)>;

/// What an audit lists: the resources, and them as a [`Listing`]; or why it cannot list them.
type ListingFound = Result<(Vec<ApiResource>, Listing), String>;

/// What the audit of constraint `o` lists (`audit_targets` of its `match.kinds`), and that as a
/// [`Listing`].
async fn listing_of(run: &Pass<'_>, o: &Value) -> ListingFound {
    let wanted = o
        .pointer("/spec/match/kinds")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let text = Value::Array(wanted.clone()).to_string();
    let known = run
        .listings
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&text)
        .cloned();
    if let Some(known) = known {
        return known;
    }
    let found = audit_targets(run, &wanted).await.map(|targets| {
        let mut listing: Listing = targets
            .iter()
            .map(|ar| (ar.api_version.clone(), ar.kind.clone()))
            .collect();
        listing.sort();
        listing.dedup();
        (targets, listing)
    });
    run.listings
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(text, found.clone());
    found
}

/// What the joint audit of a kind's constraints over one listing found: by constraint name, the
/// constraint as judged, how many audits are still to take it (the same constraint may come in
/// several policies), and its violations with the index of their review.
type Together = HashMap<String, (Value, usize, Vec<(usize, KeptViolation)>)>;

/// The violations of constraint `judged_as` (its template `template`) among the reviews of
/// `listed` (listing `key`), found by judging at once every constraint of its kind that the
/// pass audits and that covers the same resources, as the delivery gate judges a work: the
/// constraints of one template share what their parameters cannot change, and one evaluation
/// of a review judges all their parameters (`gatekeeper::judge_reviews`). The first constraint
/// of a kind and listing judges them all; the others take what was found for them. `None`
/// where the constraint was not judged so: its name is shared by constraints that differ, it
/// stands alone, its listing differed when they were judged, or the joint judging failed. Its
/// audit then judges it alone.
async fn audit_together(
    run: &Pass<'_>,
    template: &Template,
    judged_as: &Value,
    key: &Listing,
    listed: &std::sync::Arc<Listed>,
) -> Option<Vec<(usize, KeptViolation)>> {
    let kind = judged_as["kind"].as_str()?.to_string();
    let name = judged_as.pointer("/metadata/name")?.as_str()?.to_string();
    // A kind with one constraint to audit has nothing to share.
    if run.constraints.get(&kind).is_none_or(|c| c.len() < 2) {
        return None;
    }
    let at = (kind, key.clone());
    let computed = run
        .together
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key(&at);
    if !computed {
        let found = judge_together(run, template, &at.0, key, listed).await;
        run.together
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(at.clone(), found);
    }
    let mut together = run.together.lock().unwrap_or_else(|e| e.into_inner());
    let found = together.get_mut(&at)?;
    let (object, takers, _) = found.get_mut(&name)?;
    if *object != *judged_as {
        return None;
    }
    // The last audit to take it takes it whole; the ones before, a copy.
    *takers -= 1;
    if *takers > 0 {
        return found
            .get(&name)
            .map(|(_, _, violations)| violations.clone());
    }
    found.remove(&name).map(|(_, _, violations)| violations)
}

/// Judges together the constraints of `kind` that the pass audits and whose audits list `key`:
/// those with a name of their own (constraints of one name that differ are left to be judged
/// alone) and that build. Nothing when fewer than two are left, or when the judging fails.
async fn judge_together(
    run: &Pass<'_>,
    template: &Template,
    kind: &str,
    key: &Listing,
    listed: &std::sync::Arc<Listed>,
) -> Together {
    // Each name's constraint, and how many times it comes; `None` when two of a name differ.
    let mut by_name: BTreeMap<String, Option<(Value, usize)>> = BTreeMap::new();
    for o in run.constraints.get(kind).into_iter().flatten() {
        let Some(name) = o.pointer("/metadata/name").and_then(Value::as_str) else {
            continue;
        };
        by_name
            .entry(name.to_string())
            .and_modify(|kept| match kept {
                Some((same, times)) if same == o => *times += 1,
                _ => *kept = None,
            })
            .or_insert_with(|| Some((o.clone(), 1)));
    }
    let mut members = vec![];
    for (name, kept) in by_name {
        let Some((o, times)) = kept else { continue };
        match listing_of(run, &o).await {
            Ok((_, listing)) if listing == *key => {}
            _ => continue,
        }
        if let Ok(c) = Constraint::from_object(&o, template) {
            members.push((name, o, times, c));
        }
    }
    if members.len() < 2 {
        return Together::new();
    }
    tracing::debug!(
        addon = ADDON,
        kind,
        constraints = members.len(),
        objects = listed.reviews.len(),
        "auditing constraints together"
    );
    let constraints = members.iter().map(|(_, _, _, c)| c.clone()).collect();
    let mut judged = match listed
        .clone()
        .judge_all(template.clone(), constraints)
        .await
    {
        Ok(judged) => judged,
        Err(e) => {
            tracing::warn!(addon = ADDON, kind, error = %e, "the joint audit failed; each constraint is audited alone");
            return Together::new();
        }
    };
    members
        .into_iter()
        .map(|(name, o, times, _)| {
            let found = judged.remove(&name).unwrap_or_default();
            (name, (o, times, found))
        })
        .collect()
}

/// What an audit listed, ready for every constraint that covers the same resources: a review of
/// each object, and the objects with the cluster's Namespaces as the inventory.
struct Listed {
    reviews: Vec<Review<'static>>,
    inventory: Inventory,
    data: garrison_governance::rego::Data,
}

impl Listed {
    /// Reviews `objects` and builds the inventory, off the async runtime. Objects that cannot
    /// be reviewed (no kind) are left out.
    async fn of(namespaces: Vec<Value>, objects: Vec<Value>) -> Result<Listed, String> {
        tokio::task::spawn_blocking(move || {
            let mut inventory = Inventory::new();
            for o in namespaces.iter().chain(&objects) {
                let _ = inventory.add(o);
            }
            let data = inventory.prepared();
            let reviews = objects.iter().filter_map(|o| Review::of(o).ok()).collect();
            Listed {
                reviews,
                inventory,
                data,
            }
        })
        .await
        .map_err(|e| format!("the audit stopped: {e}"))
    }

    /// Judges the reviews against `constraint`, off the async runtime and on the node's cores:
    /// each violation with the index of its review, in the reviews' order.
    async fn judge(
        self: std::sync::Arc<Self>,
        template: Template,
        constraint: Constraint,
    ) -> Result<Vec<(usize, KeptViolation)>, String> {
        let name = constraint.name().to_string();
        let mut found = self.judge_all(template, vec![constraint]).await?;
        Ok(found.remove(&name).unwrap_or_default())
    }

    /// [`Listed::judge`] for several constraints of one template at once, whose names differ:
    /// the violations of each, by the constraint's name. The reviews are judged `AUDIT_PART` at
    /// a time, and each part's violations read into what the audit keeps of them before the
    /// next part.
    async fn judge_all(
        self: std::sync::Arc<Self>,
        template: Template,
        constraints: Vec<Constraint>,
    ) -> Result<HashMap<String, Vec<(usize, KeptViolation)>>, String> {
        tokio::task::spawn_blocking(move || {
            let sets = [(template, constraints)];
            let mut found: HashMap<String, Vec<(usize, KeptViolation)>> = HashMap::new();
            for (part, reviews) in self.reviews.chunks(AUDIT_PART).enumerate() {
                let judged = gatekeeper::judge_reviews(&sets, reviews, &self.inventory, &self.data);
                for (i, violations) in judged.into_iter().enumerate() {
                    for v in violations {
                        let kept = (
                            part * AUDIT_PART + i,
                            KeptViolation {
                                msg: v.msg,
                                action: v.action,
                            },
                        );
                        match found.get_mut(&v.constraint) {
                            Some(list) => list.push(kept),
                            None => {
                                found.insert(v.constraint, vec![kept]);
                            }
                        }
                    }
                }
            }
            found
        })
        .await
        .map_err(|e| format!("the audit stopped: {e}"))
    }
}

/// What an audit keeps of a violation: its message, and the constraint's action.
#[derive(Clone)]
struct KeptViolation {
    msg: String,
    action: gatekeeper::EnforcementAction,
}

/// How many reviews an audit judges at once. Each part's violations are read into what the
/// audit keeps of them (`KeptViolation`) before the next part is judged: an audit whose every object
/// breaks every constraint of a template judged together holds their messages, not the
/// engine's results.
const AUDIT_PART: usize = 512;

/// The resources a Constraint's `match.kinds` covers on this cluster, as Gatekeeper's audit
/// lists them. Named groups and kinds are listed at their group's preferred version, and one
/// the cluster does not serve is an error. An empty `match.kinds`, an entry without `apiGroups`
/// or `kinds`, and `*` stand for every listable resource that discovery finds.
async fn audit_targets(run: &Pass<'_>, wanted: &[Value]) -> Result<Vec<ApiResource>, String> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let entries: Vec<(Vec<String>, Vec<String>)> = wanted
        .iter()
        .map(|k| (strings(&k["apiGroups"]), strings(&k["kinds"])))
        .collect();
    let any = |names: &Vec<String>| names.is_empty() || names.iter().any(|n| n == "*");
    let open = entries.is_empty() || entries.iter().any(|(g, k)| any(g) || any(k));
    let mut out: Vec<ApiResource> = vec![];
    if open {
        let listable = run
            .discovered
            .get_or_init(|| discover_listable(&run.ctx.spoke))
            .await
            .clone()?;
        for ar in listable {
            let covered = entries.is_empty()
                || entries.iter().any(|(g, k)| {
                    (any(g) || g.contains(&ar.group)) && (any(k) || k.contains(&ar.kind))
                });
            if covered {
                out.push(ar);
            }
        }
    }
    // Groups and kinds named outright must be served.
    for (groups, kinds) in entries.iter().filter(|(g, k)| !any(g) && !any(k)) {
        for g in groups {
            for kind in kinds {
                let api_version = if g.is_empty() {
                    "v1".to_string()
                } else {
                    match preferred_version(&run.ctx.spoke, g).await {
                        Some(v) => format!("{g}/{v}"),
                        None => return Err(format!("the cluster does not serve API group {g}")),
                    }
                };
                let (ar, _) = run
                    .kinds
                    .resolve(&run.ctx.spoke, &api_version, kind)
                    .await?;
                if !out.iter().any(|o| o.group == ar.group && o.kind == ar.kind) {
                    out.push(ar);
                }
            }
        }
    }
    Ok(out)
}

/// Every resource of the cluster that can be listed, at its group's preferred version.
async fn discover_listable(spoke: &kube::Client) -> Result<Vec<ApiResource>, String> {
    let discovery = kube::discovery::Discovery::new(spoke.clone())
        .run()
        .await
        .map_err(|e| format!("cannot discover the cluster's resources: {e}"))?;
    Ok(discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .filter(|(_, caps)| caps.supports_operation(kube::discovery::verbs::LIST))
        .map(|(ar, _)| ar)
        .collect())
}

async fn preferred_version(spoke: &kube::Client, group: &str) -> Option<String> {
    let g = kube::discovery::group(spoke, group).await.ok()?;
    Some(g.preferred_version_or_latest().to_string())
}

/// Writes the replica's status: details per template with history, and the aggregate; each
/// change is also a compliance event on the replica's copy on the cluster (`uid`), whose
/// status follows the replica's.
async fn report(
    ctx: &Ctx,
    api: &Api<Policy>,
    p: &Policy,
    uid: Option<&str>,
    judged: Vec<Judged>,
) -> Result<(), kube::Error> {
    let old = p.status.clone().unwrap_or_default();
    let now = jiff::Timestamp::now();
    let name = p.name_any();
    let mut details = vec![];
    let mut events = vec![];
    for (i, j) in judged.iter().enumerate() {
        let prev = old
            .details
            .iter()
            .find(|d| d.template_meta.as_ref() == Some(&j.meta))
            .or_else(|| old.details.get(i))
            .cloned()
            .unwrap_or_default();
        let mut history = prev.history.clone();
        if history.first().map(|h| h.message.as_str()) != Some(j.message.as_str()) {
            let event_name = format!("{name}.{:x}", now.as_nanosecond() + i as i128);
            history.insert(
                0,
                ComplianceHistory {
                    last_timestamp: Some(Time(now)),
                    message: j.message.clone(),
                    event_name: event_name.clone(),
                },
            );
            history.truncate(HISTORY);
            events.push((event_name, j));
        }
        details.push(DetailsPerTemplate {
            template_meta: Some(j.meta.clone()),
            compliant: Some(j.state.as_str().into()),
            history,
        });
    }
    let states: Vec<State> = judged.iter().map(|j| j.state).collect();
    let compliant = if states.is_empty() {
        None
    } else if states.contains(&State::NonCompliant) {
        Some(State::NonCompliant.as_str().to_string())
    } else if states.contains(&State::Pending) {
        Some(State::Pending.as_str().to_string())
    } else {
        Some(State::Compliant.as_str().to_string())
    };
    let status = json!({"details": details, "compliant": compliant});
    if old.details != details || old.compliant != compliant {
        if old.compliant != compliant {
            tracing::info!(addon = ADDON, cluster = %ctx.cluster, policy = %name, compliant = compliant.as_deref().unwrap_or(""), "policy compliance changed");
        }
        api.patch_status(
            &name,
            &PatchParams {
                field_manager: Some(MANAGER.into()),
                ..Default::default()
            },
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    }
    let Some(uid) = uid else { return Ok(()) };
    for (event_name, j) in events {
        let ev = spoke::ComplianceEvent {
            name: &event_name,
            policy: &name,
            uid,
            reason: &j.reason,
            message: &j.message,
            compliant: j.state == State::Compliant,
            time: now,
        };
        if let Err(e) = spoke::record(&ctx.spoke, &ctx.cluster, &ev).await {
            tracing::warn!(addon = ADDON, policy = %name, error = %e, "cannot record a compliance event on the cluster");
        }
    }
    // The copy's status follows; written every pass, since the copy may have been rewritten.
    spoke::copy_status(&ctx.spoke, &ctx.cluster, &name, &status).await
}

/// What the policy add-on enforces at delivery: the `deny` constraints of its policies (with
/// their templates and the inventory of its last pass), the `mustnothave` object templates of
/// enforced ConfigurationPolicies, and the deny constraints it could not build.
#[derive(Default)]
pub struct Enforced {
    /// Deny constraints, grouped by template so that each template runs once per manifest.
    constraints: Vec<(Template, Vec<Constraint>)>,
    /// `mustnothave` templates, with their policy's name and namespaceSelector.
    forbidden: Vec<(
        String,
        config_policy::NamespaceSelector,
        config_policy::ObjectTemplate,
    )>,
    broken: Vec<String>,
    inventory: Inventory,
    /// The inventory converted once for the engine.
    data: Option<garrison_governance::rego::Data>,
}

/// Where the policy add-on stands, for the work gate: when ready, what its last pass found.
pub type GateState = super::gate::GateState<Box<Enforced>>;

/// The shared, current enforcement state.
pub type Enforcement = super::gate::Handle<Box<Enforced>>;

/// The work gate of the policy add-on: every manifest of a work is judged against the enforced
/// constraints (as a CREATE admission review) and the forbidden object templates before
/// anything is applied. Any `deny` violation refuses the whole work with reason
/// `PolicyViolation` and a message listing every violation; `warn` and `dryrun` violations
/// are logged and the work is applied. While the add-on has not evaluated its policies yet,
/// or when one of its deny constraints cannot be built, works are refused: the gate fails
/// closed.
pub struct PolicyGate {
    enforcement: Enforcement,
    spoke: Option<kube::Client>,
    kinds: Kinds,
    /// The verdicts of earlier checks: the agent applies every work again at each resync, and
    /// an unchanged manifest is not evaluated again (`gatekeeper::Verdicts`).
    verdicts: std::sync::Arc<gatekeeper::Verdicts>,
}

impl PolicyGate {
    /// A gate reading `enforcement`; with `spoke`, manifests without a namespace are judged in
    /// `default` when their kind is namespaced, as they are applied.
    pub fn new(enforcement: Enforcement, spoke: Option<kube::Client>) -> Self {
        PolicyGate {
            enforcement,
            spoke,
            kinds: Kinds::default(),
            verdicts: Default::default(),
        }
    }

    /// Whether `api_version`/`kind` is namespaced on the cluster (`None` when unknown).
    async fn namespaced(&self, api_version: &str, kind: &str) -> Option<bool> {
        let spoke = self.spoke.as_ref()?;
        let (_, namespaced) = self.kinds.resolve(spoke, api_version, kind).await.ok()?;
        Some(namespaced)
    }

    /// The violations of `manifests`: `(deny, line)`. Evaluations whose results are in
    /// `verdicts` are not made again; those made are added.
    pub fn violations(
        enforcement: &Enforcement,
        verdicts: &gatekeeper::Verdicts,
        manifests: &[Value],
    ) -> Vec<(bool, String)> {
        let shared = enforcement.read().unwrap_or_else(|e| e.into_inner());
        let enforced = match &shared.state {
            GateState::Off => return vec![],
            GateState::Undecided => {
                return vec![(
                    true,
                    "the agent has not learned yet whether policies are enforced here; the work is tried again"
                        .into(),
                )];
            }
            GateState::Starting => {
                return vec![(
                    true,
                    "the policy add-on has not evaluated its policies yet; the work is tried again"
                        .into(),
                )];
            }
            GateState::Ready(e) => e,
        };
        let mut out: Vec<(bool, String)> = enforced
            .broken
            .iter()
            .map(|b| (true, format!("cannot enforce {b}")))
            .collect();
        // The work's own Namespaces count for namespaceSelectors.
        let own_namespaces: Vec<&Value> = manifests
            .iter()
            .filter(|m| m["apiVersion"] == "v1" && m["kind"] == "Namespace")
            .collect();
        let extended;
        let inventory = if own_namespaces.is_empty() {
            &enforced.inventory
        } else {
            let mut inv = enforced.inventory.clone();
            for n in own_namespaces {
                let _ = inv.add(n);
            }
            extended = inv;
            &extended
        };
        let prepared;
        let data = match &enforced.data {
            Some(d) => d,
            None => {
                prepared = if enforced.constraints.is_empty() {
                    garrison_governance::rego::Data::empty()
                } else {
                    enforced.inventory.prepared()
                };
                &prepared
            }
        };
        let reviews: Vec<Review> = manifests
            .iter()
            .map(|m| Review::admission(m, None, "CREATE"))
            .collect();
        let judged = gatekeeper::judge_reviews_remembered(
            verdicts,
            &enforced.constraints,
            &reviews,
            inventory,
            data,
        );
        for (m, found) in manifests.iter().zip(judged) {
            let kind = m["kind"].as_str().unwrap_or_default();
            let ns = m
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let name = m
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            for v in found {
                let deny = v.action == gatekeeper::EnforcementAction::Deny;
                out.push((
                    deny,
                    format!(
                        "{} {}: {} (on {kind} {ns}/{name})",
                        v.kind, v.constraint, v.msg
                    ),
                ));
            }
            let (group, _) =
                gatekeeper::group_version(m["apiVersion"].as_str().unwrap_or_default());
            for (policy, selector, t) in &enforced.forbidden {
                // Any version of the same group and kind. A template without a namespace
                // applies in the namespaces its policy's namespaceSelector selects (all, when it
                // has none: the gate errs on the side of refusing).
                let (t_group, _) = gatekeeper::group_version(t.api_version());
                let selected = || {
                    t.namespace().is_some()
                        || ns.is_empty()
                        || !selector.is_set()
                        || !selector
                            .select(&[(ns.to_string(), namespace_labels(inventory, ns))])
                            .is_empty()
                };
                let same_target = t_group == group
                    && t.kind() == kind
                    && t.name().is_none_or(|n| n == name)
                    && t.namespace().is_none_or(|n| n == ns)
                    && selected();
                let mut fields = t.object.clone();
                if let Some(meta) = fields.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.remove("namespace");
                }
                fields.as_object_mut().map(|o| o.remove("apiVersion"));
                if same_target && config_policy::contains(&fields, m) {
                    out.push((
                        true,
                        format!("ConfigurationPolicy {policy}: mustnothave {kind} {ns}/{name}"),
                    ));
                }
            }
        }
        out
    }
}

/// The refusal of a work with the `denied` violations: every one, in order, as long as they fit
/// in a condition's message; then how many more there are. A single violation longer than
/// the message can hold is cut (at a character boundary, with `...`).
fn refusal_message(denied: &[&str]) -> String {
    let mut out = format!("refused by {} policy violation(s): ", denied.len());
    // Room kept for the longest ending: "; ... and N more not listed (...)".
    let tail = |more: usize| {
        format!(
            "; ... and {more} more not listed (a condition's message holds {CONDITION_MESSAGE_MAX} bytes)"
        )
    };
    let room = CONDITION_MESSAGE_MAX - tail(denied.len()).len();
    for (i, line) in denied.iter().enumerate() {
        let sep = if i == 0 { "" } else { "; " };
        if out.len() + sep.len() + line.len() <= room {
            out.push_str(sep);
            out.push_str(line);
            continue;
        }
        if i == 0 {
            let fits = room.saturating_sub(out.len());
            out.push_str(&garrison_api::status::cut_to(line.to_string(), fits));
            if denied.len() == 1 {
                return out;
            }
            out.push_str(&tail(denied.len() - 1));
        } else {
            out.push_str(&tail(denied.len() - i));
        }
        return out;
    }
    out
}

/// The labels of Namespace `ns` as the inventory (the cluster's, and the work's own) has them.
fn namespace_labels(inventory: &Inventory, ns: &str) -> BTreeMap<String, String> {
    inventory
        .namespaces()
        .get(ns)
        .and_then(|n| n.pointer("/metadata/labels"))
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default()
}

impl crate::work::gate::Gate for PolicyGate {
    fn name(&self) -> &str {
        "policy"
    }

    fn check<'a>(
        &'a self,
        work: &'a garrison_api::work::v1::ManifestWork,
        manifests: &'a mut [Value],
    ) -> futures::future::BoxFuture<'a, Result<(), crate::work::gate::Refusal>> {
        Box::pin(async move {
            // Without the policy add-on there is nothing to judge: no copies, no thread.
            if matches!(super::gate::read(&self.enforcement).state, GateState::Off) {
                return Ok(());
            }
            // Manifests are judged as they are applied: a namespaced one without a namespace
            // goes to `default`.
            let mut judged: Vec<Value> = manifests.to_vec();
            for m in &mut judged {
                let has_ns = m
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .is_some_and(|n| !n.is_empty());
                let (api_version, kind) = (
                    m["apiVersion"].as_str().unwrap_or_default().to_string(),
                    m["kind"].as_str().unwrap_or_default().to_string(),
                );
                if !has_ns
                    && m["metadata"].is_object()
                    && self.namespaced(&api_version, &kind).await == Some(true)
                {
                    m["metadata"]["namespace"] = json!("default");
                }
            }
            // A gate still waiting for the add-on waits a little before it refuses: the agent
            // has just started, or the add-on is on its first pass.
            let until = tokio::time::Instant::now() + GATE_WAIT;
            while waiting(&self.enforcement) && tokio::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // Rego is CPU work: off the async threads.
            let enforcement = self.enforcement.clone();
            let verdicts = self.verdicts.clone();
            let found = tokio::task::spawn_blocking(move || {
                PolicyGate::violations(&enforcement, &verdicts, &judged)
            })
            .await
            .unwrap_or_else(|e| vec![(true, format!("the policy check failed: {e}"))]);
            for (_, line) in found.iter().filter(|(deny, _)| !deny) {
                tracing::warn!(addon = ADDON, work = ?work.metadata.name, violation = %line, "policy warning; applying the work");
            }
            let denied: Vec<&str> = found
                .iter()
                .filter(|(deny, _)| *deny)
                .map(|(_, l)| l.as_str())
                .collect();
            if denied.is_empty() {
                return Ok(());
            }
            Err(crate::work::gate::Refusal {
                reason: "PolicyViolation".into(),
                message: refusal_message(&denied),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Verdicts shared by every gate check of these tests, as the agent's gate keeps them
    /// across works: a verdict given to the wrong check would show as a failed test.
    static VERDICTS: std::sync::LazyLock<gatekeeper::Verdicts> =
        std::sync::LazyLock::new(Default::default);

    #[test]
    fn malformed_templates_are_refused_not_panicked_on_and_an_unreadable_enforced_one_breaks_the_gate()
     {
        for bad in [json!({"spec": "x"}), json!({"spec": []}), json!({})] {
            assert_eq!(with_remediation(&bad, Some("enforce")), bad);
        }
        let mut enforced = Enforced::default();
        let unreadable = json!({"apiVersion": "policy.open-cluster-management.io/v1",
            "kind": "ConfigurationPolicy", "metadata": {"name": "cp", "labels": "x"},
            "spec": {"remediationAction": "enforce", "evaluationInterval": {"compliant": "soon"},
                "object-templates": []}});
        collect_enforced(&mut enforced, &HashMap::new(), "p", &unreadable, None);
        assert_eq!(enforced.broken.len(), 1, "{:?}", enforced.broken);
        assert!(enforced.broken[0].contains("ConfigurationPolicy cp"));
        // Informing, it enforces nothing and breaks nothing.
        let mut informing = Enforced::default();
        collect_enforced(
            &mut informing,
            &HashMap::new(),
            "p",
            &unreadable,
            Some("inform"),
        );
        assert!(informing.broken.is_empty());
        let not_object =
            json!({"kind": "ConfigurationPolicy", "metadata": {"name": "cp"}, "spec": "x"});
        collect_enforced(
            &mut informing,
            &HashMap::new(),
            "p",
            &not_object,
            Some("enforce"),
        );
        assert_eq!(informing.broken.len(), 1);
    }

    #[test]
    fn a_refusal_lists_every_violation_that_fits_in_a_condition_message_and_counts_the_rest() {
        assert_eq!(
            refusal_message(&["K a: x (on Pod n/p)", "K b: y (on Pod n/p)"]),
            "refused by 2 policy violation(s): K a: x (on Pod n/p); K b: y (on Pod n/p)"
        );
        // 480 violations of about 150 bytes each, as a work whose ten manifests break 48
        // constraints: what fits is listed in order, and the rest counted.
        let lines: Vec<String> = (0..480)
            .map(|i| format!("K8sRequiredLabels c{i}: you must provide labels: {{\"label-{i}\"}} and more text to make it long (on Deployment ns/d{})", i % 10))
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let m = refusal_message(&refs);
        assert!(m.len() <= CONDITION_MESSAGE_MAX, "{}", m.len());
        assert!(m.starts_with("refused by 480 policy violation(s): K8sRequiredLabels c0: "));
        let listed = m.matches("K8sRequiredLabels c").count();
        assert!(listed > 100 && listed < 480, "{listed}");
        assert!(
            m.ends_with(&format!(
                "; ... and {} more not listed (a condition's message holds 32768 bytes)",
                480 - listed
            )),
            "{}",
            &m[m.len() - 120..]
        );
        assert!(m.contains(&lines[listed - 1]) && !m.contains(&lines[listed]));
        // One violation longer than a message: cut at a character boundary, alone or first.
        let long = format!("K c: {} (on Pod n/p)", "é".repeat(40_000));
        let m = refusal_message(&[&long]);
        assert!(
            m.len() <= CONDITION_MESSAGE_MAX && m.ends_with("..."),
            "{}",
            m.len()
        );
        let m = refusal_message(&[&long, "K d: short (on Pod n/q)"]);
        assert!(m.len() <= CONDITION_MESSAGE_MAX, "{}", m.len());
        assert!(
            m.contains("é...; ... and 1 more not listed"),
            "{}",
            &m[m.len() - 120..]
        );
    }

    #[test]
    fn the_gate_denies_forbidden_objects_and_deny_constraints_but_only_warns_otherwise() {
        let mut templates = HashMap::new();
        let tpl = json!({"apiVersion": "templates.gatekeeper.sh/v1", "kind": "ConstraintTemplate",
            "metadata": {"name": "nolatest"},
            "spec": {"crd": {"spec": {"names": {"kind": "NoLatest"}}},
                "targets": [{"target": "admission.k8s.gatekeeper.sh",
                    "rego": "package nolatest\nviolation[{\"msg\": \"latest tag\"}] { endswith(input.review.object.spec.containers[_].image, \":latest\") }"}]}});
        templates.insert(
            "NoLatest".to_string(),
            Template::from_object(&tpl).map_err(|e| e.to_string()),
        );
        let constraint = json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "NoLatest",
            "metadata": {"name": "no-latest"}, "spec": {"enforcementAction": "dryrun"}});
        let forbid = json!({"apiVersion": "policy.open-cluster-management.io/v1", "kind": "ConfigurationPolicy",
            "metadata": {"name": "no-debug"},
            "spec": {"remediationAction": "inform", "object-templates": [{"complianceType": "mustnothave",
                "objectDefinition": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "debug"}}}]}});
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "a"},
            "spec": {"containers": [{"name": "c", "image": "nginx:latest"}]}});
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "debug", "namespace": "a"}});

        // Dryrun constraint and inform ConfigurationPolicy: nothing denied.
        let enforcement = Enforcement::default();
        let mut e = Enforced::default();
        collect_enforced(&mut e, &templates, "p", &constraint, None);
        collect_enforced(&mut e, &templates, "p", &forbid, None);
        assert!(e.constraints.is_empty() && e.forbidden.is_empty() && e.broken.is_empty());
        // The Policy's enforce makes both deny.
        collect_enforced(&mut e, &templates, "p", &constraint, Some("Enforce"));
        collect_enforced(&mut e, &templates, "p", &forbid, Some("enforce"));
        set_gate(&enforcement, 1, GateState::Ready(Box::new(e)), true);
        let v = PolicyGate::violations(&enforcement, &VERDICTS, &[pod.clone(), cm.clone()]);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v.iter().all(|(deny, _)| *deny));
        assert_eq!(v[0].1, "NoLatest no-latest: latest tag (on Pod a/p)");
        assert_eq!(
            v[1].1,
            "ConfigurationPolicy no-debug: mustnothave ConfigMap a/debug"
        );
        // Judged again, as at each resync, with verdicts of its own: the same findings, the
        // constraint's two evaluations (the pod, the ConfigMap) found rather than made again.
        let own = gatekeeper::Verdicts::default();
        for round in 0..3 {
            let again = PolicyGate::violations(&enforcement, &own, &[pod.clone(), cm.clone()]);
            assert_eq!(again, v);
            assert_eq!(
                (own.found(), own.evaluated()),
                (2 * round, 2),
                "round {round}"
            );
        }
        let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "a"}});
        assert!(PolicyGate::violations(&enforcement, &VERDICTS, &[other]).is_empty());
        // Another version of the same group and kind is forbidden too.
        let mut cm_v2 = cm.clone();
        cm_v2["apiVersion"] = json!("v2");
        assert_eq!(
            PolicyGate::violations(&enforcement, &VERDICTS, &[cm_v2]).len(),
            1
        );
        // With a namespaceSelector, only in the namespaces it selects: by name, or by the
        // labels of a Namespace the work brings along.
        let scoped = json!({"apiVersion": "policy.open-cluster-management.io/v1", "kind": "ConfigurationPolicy",
            "metadata": {"name": "no-debug-in-prod"},
            "spec": {"remediationAction": "enforce",
                "namespaceSelector": {"include": ["prod-*"], "matchLabels": {"tier": "prod"}},
                "object-templates": [{"complianceType": "mustnothave",
                "objectDefinition": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "trace"}}}]}});
        let scoped_gate = Enforcement::default();
        let mut e = Enforced::default();
        collect_enforced(&mut e, &templates, "p", &scoped, None);
        set_gate(&scoped_gate, 1, GateState::Ready(Box::new(e)), true);
        let trace = |ns: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "trace", "namespace": ns}});
        let prod_ns = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "prod-a", "labels": {"tier": "prod"}}});
        assert!(PolicyGate::violations(&scoped_gate, &VERDICTS, &[trace("dev")]).is_empty());
        assert!(
            PolicyGate::violations(&scoped_gate, &VERDICTS, &[trace("prod-a")]).is_empty(),
            "unlabelled"
        );
        let v = PolicyGate::violations(&scoped_gate, &VERDICTS, &[prod_ns, trace("prod-a")]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].1.contains("mustnothave ConfigMap prod-a/trace"));
        let gate_state = |state: GateState| {
            let e = Enforcement::default();
            set_gate(&e, 1, state, true);
            PolicyGate::violations(&e, &VERDICTS, std::slice::from_ref(&cm))
        };
        // Without the add-on nothing is enforced; before its first pass, or before the agent
        // knows whether it runs, everything waits.
        assert!(gate_state(GateState::Off).is_empty());
        assert!(
            gate_state(GateState::Undecided)[0]
                .1
                .contains("has not learned yet whether policies are enforced")
        );
        let fresh = Enforcement::default();
        decided(&fresh, false);
        assert!(PolicyGate::violations(&fresh, &VERDICTS, std::slice::from_ref(&cm)).is_empty());
        decided(&fresh, true);
        assert!(matches!(fresh.read().unwrap().state, GateState::Starting));
        let running = Enforcement::default();
        set_gate(&running, 3, GateState::Ready(Box::default()), true);
        decided(&running, true);
        assert!(matches!(running.read().unwrap().state, GateState::Ready(_)));
        // A run that stops leaves the gate undecided, not off: works wait for the manager.
        set_gate(&running, 3, GateState::Undecided, false);
        assert!(!PolicyGate::violations(&running, &VERDICTS, std::slice::from_ref(&cm)).is_empty());
        decided(&running, false);
        assert!(matches!(running.read().unwrap().state, GateState::Off));
        let stuck = Enforcement::default();
        set_gate(&stuck, 4, GateState::Starting, true);
        decided(&stuck, false);
        assert!(matches!(stuck.read().unwrap().state, GateState::Off));
        assert!(
            gate_state(GateState::Starting)[0]
                .1
                .contains("not evaluated its policies yet")
        );
        // A deny constraint without its template cannot be enforced: every work is refused.
        let mut broken = Enforced::default();
        collect_enforced(
            &mut broken,
            &HashMap::new(),
            "p",
            &constraint,
            Some("enforce"),
        );
        let v = gate_state(GateState::Ready(Box::new(broken)));
        assert!(
            v[0].0
                && v[0]
                    .1
                    .contains("no ConstraintTemplate defines kind NoLatest"),
            "{v:?}"
        );
        // A run replaced by a newer one cannot switch the gate off.
        set_gate(&enforcement, 2, GateState::Starting, true);
        set_gate(&enforcement, 1, GateState::Off, false);
        assert!(matches!(
            enforcement.read().unwrap().state,
            GateState::Starting
        ));
    }
}
