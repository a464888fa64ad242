//! The policy add-on, built into the agent: it evaluates the policies the hub replicated into
//! its cluster's namespace and reports their compliance back, with no Gatekeeper and no
//! policy controllers on the cluster.
//!
//! For each replicated Policy, each template is judged against the cluster:
//! - a ConfigurationPolicy's object templates (`musthave`, `mustonlyhave`, `mustnothave`),
//!   enforced when the Policy or the template says `enforce`: missing objects created,
//!   mismatched ones updated, forbidden ones deleted;
//! - a Gatekeeper ConstraintTemplate is compiled (NonCompliant with the error if it does not);
//! - a Gatekeeper Constraint audits every existing object its `match.kinds` name, with those
//!   objects as `data.inventory`; the Policy's remediation overrides the constraint's
//!   enforcement action (inform: `warn`, enforce: `deny`), as upstream.
//!
//! The replica's status gets one `details` entry per template, with upstream's messages and a
//! history of changes (newest first, 10 at most), and the aggregate `compliant`. The add-on
//! talks to the hub only with its own certificate: policies of its own cluster's namespace.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::StreamExt;
use garrison_api::policy::v1::{ComplianceHistory, DetailsPerTemplate, Policy};
use garrison_api::policy::{CLUSTER_NAME_LABEL, ROOT_POLICY_LABEL};
use garrison_governance::config_policy::{
    self, ComplianceType, ConfigurationPolicy, Found, Remediation,
};
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
}

/// The label selector of this cluster's replicated policies.
fn replicas_of(cluster: &str) -> String {
    format!("{ROOT_POLICY_LABEL},{CLUSTER_NAME_LABEL}={cluster}")
}

static NEXT_OWNER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Runs the add-on until `stop` turns true.
pub async fn run(ctx: Ctx, mut stop: watch::Receiver<bool>) {
    // Until the first pass is published, the gate refuses works: it cannot tell yet what the
    // policies forbid. A run replaced by a newer one (a rotated certificate) leaves the newer
    // one's state alone.
    let owner = NEXT_OWNER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    set_gate(&ctx.enforcement, owner, GateState::Starting, true);
    let policies: Api<Policy> = Api::namespaced(ctx.hub.clone(), &ctx.cluster);
    let mut changes = watcher(
        policies,
        watcher::Config::default().labels(&replicas_of(&ctx.cluster)),
    )
    .default_backoff()
    .boxed();
    let kinds = Kinds::default();
    loop {
        if let Err(e) = pass(&ctx, &kinds, owner).await {
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
                // A disabled add-on enforces nothing any more.
                set_gate(&ctx.enforcement, owner, GateState::Off, false);
                return;
            }
        }
    }
}

/// Sets the gate's state as run `owner`; `take` makes `owner` the current run, otherwise
/// only the current run's state is changed.
fn set_gate(enforcement: &Enforcement, owner: u64, state: GateState, take: bool) {
    let mut shared = enforcement.write().unwrap_or_else(|e| e.into_inner());
    if take || shared.owner == owner {
        shared.owner = owner;
        shared.state = state;
    }
}

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

/// The judgement of one template.
struct Judged {
    meta: Value,
    compliant: bool,
    message: String,
}

async fn pass(ctx: &Ctx, kinds: &Kinds, owner: u64) -> Result<(), kube::Error> {
    let api: Api<Policy> = Api::namespaced(ctx.hub.clone(), &ctx.cluster);
    let policies: Vec<Policy> = api
        .list(&ListParams::default().labels(&replicas_of(&ctx.cluster)))
        .await?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && !p.spec.disabled)
        .collect();
    // Templates first: a Constraint may come in another Policy than its template.
    let mut templates: HashMap<String, Result<Template, String>> = HashMap::new();
    for p in &policies {
        for t in &p.spec.policy_templates {
            let o = &t.object_definition;
            if o["kind"] == "ConstraintTemplate" {
                let compiled = Template::from_object(o).map_err(|e| e.to_string());
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
    let mut enforced = Enforced::default();
    let mut judged_all = vec![];
    let mut audited: Vec<Value> = namespaces.clone();
    for p in &policies {
        let remediation = p.spec.remediation_action.as_deref();
        let mut judged = vec![];
        for t in &p.spec.policy_templates {
            let o = &t.object_definition;
            collect_enforced(&mut enforced, &templates, &p.name_any(), o, remediation);
            let (j, objects) = judge(ctx, kinds, &namespaces, &templates, o, remediation).await;
            audited.extend(objects);
            judged.push(j);
        }
        judged_all.push(judged);
    }
    for o in &audited {
        let _ = enforced.inventory.add(o);
    }
    enforced.data = Some(enforced.inventory.prepared());
    // What is enforced is published before anything is reported, so that a report that
    // fails does not leave the gate behind.
    set_gate(
        &ctx.enforcement,
        owner,
        GateState::Ready(Box::new(enforced)),
        false,
    );
    for (p, judged) in policies.iter().zip(judged_all) {
        if let Err(e) = report(ctx, &api, p, judged).await {
            tracing::warn!(addon = ADDON, policy = %p.name_any(), error = %e, "cannot report the policy's compliance");
        }
    }
    Ok(())
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
    } else if kind == "ConfigurationPolicy"
        && let Ok(mut cp) = ConfigurationPolicy::from_object(o)
    {
        if let Some(r) = remediation {
            cp.remediation = Remediation::parse(r);
        }
        if cp.remediation == Remediation::Enforce {
            for t in cp.templates {
                if t.compliance == ComplianceType::MustNotHave {
                    enforced.forbidden.push((cp.name.clone(), t));
                }
            }
        }
    }
}

/// A Constraint with the Policy's remediation in place of its enforcement action, as upstream:
/// inform is `warn`, enforce is `deny`.
fn with_remediation(o: &Value, remediation: Option<&str>) -> Value {
    let mut obj = o.clone();
    match remediation.map(str::to_ascii_lowercase).as_deref() {
        Some("inform") => obj["spec"]["enforcementAction"] = json!("warn"),
        Some("enforce") => obj["spec"]["enforcementAction"] = json!("deny"),
        _ => {}
    }
    obj
}

fn template_meta(o: &Value) -> Value {
    json!({"apiVersion": o["apiVersion"], "kind": o["kind"],
        "name": o.pointer("/metadata/name").cloned().unwrap_or(Value::Null)})
}

async fn judge(
    ctx: &Ctx,
    kinds: &Kinds,
    namespaces: &[Value],
    templates: &HashMap<String, Result<Template, String>>,
    o: &Value,
    remediation: Option<&str>,
) -> (Judged, Vec<Value>) {
    let meta = template_meta(o);
    let mut audited = vec![];
    let (group, _) = gatekeeper::group_version(o["apiVersion"].as_str().unwrap_or_default());
    let (compliant, message) = match (group, o["kind"].as_str().unwrap_or_default()) {
        (_, "ConfigurationPolicy") => match ConfigurationPolicy::from_object(o) {
            Ok(mut cp) => {
                if let Some(r) = remediation {
                    cp.remediation = Remediation::parse(r);
                }
                configuration(ctx, kinds, namespaces, &cp).await
            }
            Err(e) => (false, config_policy::compliance_message(false, &[e])),
        },
        (gatekeeper::TEMPLATE_GROUP, "ConstraintTemplate") => {
            let kind = o
                .pointer("/spec/crd/spec/names/kind")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match templates.get(kind) {
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
        (gatekeeper::CONSTRAINT_GROUP, kind) => match templates.get(kind) {
            Some(Ok(t)) => {
                let (ok, msg, objects) = audit(ctx, kinds, namespaces, t, o, remediation).await;
                audited = objects;
                (ok, msg)
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
        (_, kind) => (
            false,
            format!("NonCompliant; violation - policy template kind {kind} is not supported"),
        ),
    };
    (
        Judged {
            meta,
            compliant,
            message,
        },
        audited,
    )
}

/// Judges (and with enforce, applies) a ConfigurationPolicy.
async fn configuration(
    ctx: &Ctx,
    kinds: &Kinds,
    namespaces: &[Value],
    cp: &ConfigurationPolicy,
) -> (bool, String) {
    let mut details = vec![];
    let mut compliant = true;
    let spoke_nss: Vec<(String, BTreeMap<String, String>)> = namespaces
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
        let (ar, namespaced) = match kinds.resolve(&ctx.spoke, t.api_version(), t.kind()).await {
            Ok(r) => r,
            Err(e) => {
                compliant = false;
                details.push(e);
                continue;
            }
        };
        let namespaces: Vec<Option<String>> = if !namespaced {
            vec![None]
        } else if let Some(ns) = t.namespace() {
            vec![Some(ns.to_string())]
        } else if cp.namespace_selector.is_set() {
            cp.namespace_selector
                .select(&spoke_nss)
                .into_iter()
                .map(|n| Some(n.to_string()))
                .collect()
        } else {
            compliant = false;
            details.push(format!(
                "{} has no namespace, and the policy has no namespaceSelector",
                ar.plural
            ));
            continue;
        };
        for ns in namespaces {
            match object_template(ctx, cp, t, &ar, ns.as_deref()).await {
                Ok((ok, msg)) => {
                    compliant &= ok;
                    details.push(msg);
                }
                Err(e) => {
                    compliant = false;
                    details.push(e.to_string());
                }
            }
        }
    }
    (
        compliant,
        config_policy::compliance_message(compliant, &details),
    )
}

async fn object_template(
    ctx: &Ctx,
    cp: &ConfigurationPolicy,
    t: &config_policy::ObjectTemplate,
    ar: &ApiResource,
    ns: Option<&str>,
) -> Result<(bool, String), kube::Error> {
    let api: Api<DynamicObject> = match ns {
        Some(n) => Api::namespaced_with(ctx.spoke.clone(), n, ar),
        None => Api::all_with(ctx.spoke.clone(), ar),
    };
    let enforce = cp.remediation == Remediation::Enforce;
    let pp = PostParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let Some(name) = t.name() else {
        // Unnamed: any object of the kind (in the namespace) decides.
        let list = api.list(&ListParams::default()).await?.items;
        let matching: Vec<String> = list
            .iter()
            .filter_map(|o| {
                let v = serde_json::to_value(o).ok()?;
                (config_policy::found(t, Some(&v)) == Found::AsSpecified).then(|| o.name_any())
            })
            .collect();
        let state = if matching.is_empty() {
            Found::Missing
        } else {
            Found::AsSpecified
        };
        if enforce && t.compliance == ComplianceType::MustNotHave && !matching.is_empty() {
            for n in &matching {
                api.delete(n, &DeleteParams::default()).await?;
            }
            return Ok((
                true,
                config_policy::enforced_message("deleted", &ar.plural, &matching.join(", "), ns),
            ));
        }
        let names = if matching.is_empty() {
            vec!["-".to_string()]
        } else {
            matching
        };
        return Ok((
            config_policy::complies(t.compliance, state),
            config_policy::message(t.compliance, state, &ar.plural, &names, ns),
        ));
    };
    let current = api.get_opt(name).await?;
    let current_v = current.as_ref().and_then(|c| serde_json::to_value(c).ok());
    let state = config_policy::found(t, current_v.as_ref());
    let ok = config_policy::complies(t.compliance, state);
    if ok || !enforce {
        return Ok((
            ok,
            config_policy::message(t.compliance, state, &ar.plural, &[name.to_string()], ns),
        ));
    }
    let verb = match (t.compliance, current_v) {
        (ComplianceType::MustNotHave, _) => {
            api.delete(name, &DeleteParams::default()).await?;
            "deleted"
        }
        (_, None) => {
            let mut obj = t.object.clone();
            if let Some(n) = ns {
                obj["metadata"]["namespace"] = json!(n);
            }
            let obj: DynamicObject =
                serde_json::from_value(obj).map_err(kube::Error::SerdeError)?;
            api.create(&pp, &obj).await?;
            "created"
        }
        (c, Some(actual)) => {
            let want = config_policy::merged(c, &t.object, &actual);
            let obj: DynamicObject =
                serde_json::from_value(want).map_err(kube::Error::SerdeError)?;
            api.replace(name, &pp, &obj).await?;
            "updated"
        }
    };
    tracing::info!(addon = ADDON, policy = %cp.name, object = %name, verb, "enforced a configuration policy");
    Ok((
        true,
        config_policy::enforced_message(verb, &ar.plural, name, ns),
    ))
}

/// Audits the existing objects a Constraint matches.
async fn audit(
    ctx: &Ctx,
    kinds: &Kinds,
    namespaces: &[Value],
    template: &Template,
    o: &Value,
    remediation: Option<&str>,
) -> (bool, String, Vec<Value>) {
    // The Policy's remediation overrides the constraint's action, as upstream.
    let constraint = match Constraint::from_object(&with_remediation(o, remediation), template) {
        Ok(c) => c,
        Err(e) => return (false, format!("NonCompliant; violation - {e}"), vec![]),
    };
    let mut objects: Vec<Value> = vec![];
    let mut inventory = Inventory::new();
    let wanted = o
        .pointer("/spec/match/kinds")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // An audit that cannot list what the constraint covers is not a pass.
    let cannot = |why: String| (false, format!("NonCompliant; violation - {why}"), vec![]);
    if wanted.is_empty() {
        return cannot(
            "auditing needs match.kinds to name the groups and kinds the constraint covers".into(),
        );
    }
    for k in &wanted {
        let groups: Vec<&str> = k["apiGroups"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let names: Vec<&str> = k["kinds"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if groups.is_empty() || names.is_empty() {
            return cannot(
                "auditing needs each match.kinds entry to name apiGroups and kinds".into(),
            );
        }
        for g in &groups {
            for kind in &names {
                if *g == "*" || *kind == "*" {
                    return cannot(
                        "auditing needs match.kinds to name groups and kinds, not *".into(),
                    );
                }
                let api_version = if g.is_empty() {
                    "v1".to_string()
                } else {
                    match preferred_version(&ctx.spoke, g).await {
                        Some(v) => format!("{g}/{v}"),
                        None => {
                            return cannot(format!("the cluster does not serve API group {g}"));
                        }
                    }
                };
                let (ar, _) = match kinds.resolve(&ctx.spoke, &api_version, kind).await {
                    Ok(r) => r,
                    Err(e) => return cannot(e),
                };
                let api: Api<DynamicObject> = Api::all_with(ctx.spoke.clone(), &ar);
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
                    Err(e) => return (false, format!("NonCompliant; violation - {e}"), vec![]),
                }
            }
        }
    }
    for n in namespaces {
        let _ = inventory.add(n);
    }
    for v in &objects {
        let _ = inventory.add(v);
    }
    let data = inventory.prepared();
    let mut violations = vec![];
    for v in &objects {
        let Ok(review) = Review::of(v) else { continue };
        for found in gatekeeper::judge(template, &constraint, &review, &inventory, &data) {
            let ns = v
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let name = v
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            violations.push(format!(
                "{} - {} (on {} {ns}/{name})",
                found.action.as_str(),
                found.msg,
                v["kind"].as_str().unwrap_or_default()
            ));
        }
    }
    if violations.is_empty() {
        (
            true,
            "Compliant; The constraint has no violations".into(),
            objects,
        )
    } else {
        (
            false,
            config_policy::truncate(format!("NonCompliant; {}", violations.join("; "))),
            objects,
        )
    }
}

async fn preferred_version(spoke: &kube::Client, group: &str) -> Option<String> {
    let g = kube::discovery::group(spoke, group).await.ok()?;
    Some(g.preferred_version_or_latest().to_string())
}

/// Writes the replica's status: details per template with history, and the aggregate.
async fn report(
    ctx: &Ctx,
    api: &Api<Policy>,
    p: &Policy,
    judged: Vec<Judged>,
) -> Result<(), kube::Error> {
    let old = p.status.clone().unwrap_or_default();
    let now = jiff::Timestamp::now();
    let mut details = vec![];
    for (i, j) in judged.iter().enumerate() {
        let prev = old
            .details
            .iter()
            .find(|d| d.template_meta.as_ref() == Some(&j.meta))
            .or_else(|| old.details.get(i))
            .cloned()
            .unwrap_or_default();
        let state = if j.compliant {
            "Compliant"
        } else {
            "NonCompliant"
        };
        let mut history = prev.history.clone();
        if history.first().map(|h| h.message.as_str()) != Some(j.message.as_str()) {
            history.insert(
                0,
                ComplianceHistory {
                    last_timestamp: Some(Time(now)),
                    message: j.message.clone(),
                    event_name: format!("{}.{:x}", p.name_any(), now.as_nanosecond()),
                },
            );
            history.truncate(HISTORY);
        }
        details.push(DetailsPerTemplate {
            template_meta: Some(j.meta.clone()),
            compliant: Some(state.into()),
            history,
        });
    }
    let compliant = if judged.is_empty() {
        None
    } else if judged.iter().all(|j| j.compliant) {
        Some("Compliant".to_string())
    } else {
        Some("NonCompliant".to_string())
    };
    if old.details == details && old.compliant == compliant {
        return Ok(());
    }
    if old.compliant != compliant {
        tracing::info!(addon = ADDON, cluster = %ctx.cluster, policy = %p.name_any(), compliant = compliant.as_deref().unwrap_or(""), "policy compliance changed");
    }
    let patch = json!({"status": {"details": details, "compliant": compliant}});
    api.patch_status(
        &p.name_any(),
        &PatchParams {
            field_manager: Some(MANAGER.into()),
            ..Default::default()
        },
        &Patch::Merge(patch),
    )
    .await?;
    Ok(())
}

/// What the policy add-on enforces at delivery: the `deny` constraints of its policies (with
/// their templates and the inventory of its last pass), the `mustnothave` object templates of
/// enforced ConfigurationPolicies, and the deny constraints it could not build.
#[derive(Default)]
pub struct Enforced {
    /// Deny constraints, grouped by template so that each template runs once per manifest.
    constraints: Vec<(Template, Vec<Constraint>)>,
    forbidden: Vec<(String, config_policy::ObjectTemplate)>,
    broken: Vec<String>,
    inventory: Inventory,
    /// The inventory converted once for the engine.
    data: Option<garrison_governance::rego::Data>,
}

/// Where the policy add-on stands, for the work gate.
#[derive(Default)]
pub enum GateState {
    /// The add-on does not run here: nothing is enforced.
    #[default]
    Off,
    /// The add-on runs but has not evaluated its policies yet: works wait.
    Starting,
    /// What its last pass found.
    Ready(Box<Enforced>),
}

/// The gate's state and the add-on run that owns it.
#[derive(Default)]
pub struct Shared {
    owner: u64,
    state: GateState,
}

/// The shared, current enforcement state.
pub type Enforcement = std::sync::Arc<std::sync::RwLock<Shared>>;

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
}

impl PolicyGate {
    /// A gate reading `enforcement`; with `spoke`, manifests without a namespace are judged in
    /// `default` when their kind is namespaced, as they are applied.
    pub fn new(enforcement: Enforcement, spoke: Option<kube::Client>) -> Self {
        PolicyGate {
            enforcement,
            spoke,
            kinds: Kinds::default(),
        }
    }

    /// Whether `api_version`/`kind` is namespaced on the cluster (`None` when unknown).
    async fn namespaced(&self, api_version: &str, kind: &str) -> Option<bool> {
        let spoke = self.spoke.as_ref()?;
        let (_, namespaced) = self.kinds.resolve(spoke, api_version, kind).await.ok()?;
        Some(namespaced)
    }

    /// The violations of `manifests`: `(deny, line)`.
    pub fn violations(enforcement: &Enforcement, manifests: &[Value]) -> Vec<(bool, String)> {
        let shared = enforcement.read().unwrap_or_else(|e| e.into_inner());
        let enforced = match &shared.state {
            GateState::Off => return vec![],
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
                prepared = enforced.inventory.prepared();
                &prepared
            }
        };
        for m in manifests {
            let kind = m["kind"].as_str().unwrap_or_default();
            let ns = m
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let name = m
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let review = Review::admission(m, None, "CREATE");
            for (t, cs) in &enforced.constraints {
                let cs: Vec<&Constraint> = cs.iter().collect();
                for v in gatekeeper::judge_all(t, &cs, &review, inventory, data) {
                    let deny = v.action == gatekeeper::EnforcementAction::Deny;
                    out.push((
                        deny,
                        format!(
                            "{} {}: {} (on {kind} {ns}/{name})",
                            v.kind, v.constraint, v.msg
                        ),
                    ));
                }
            }
            let (group, _) =
                gatekeeper::group_version(m["apiVersion"].as_str().unwrap_or_default());
            for (policy, t) in &enforced.forbidden {
                // Any version of the same group and kind.
                let (t_group, _) = gatekeeper::group_version(t.api_version());
                let same_target = t_group == group
                    && t.kind() == kind
                    && t.name().is_none_or(|n| n == name)
                    && t.namespace().is_none_or(|n| n == ns);
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
            // Rego is CPU work: off the async threads.
            let enforcement = self.enforcement.clone();
            let found =
                tokio::task::spawn_blocking(move || PolicyGate::violations(&enforcement, &judged))
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
                message: format!(
                    "refused by {} policy violation(s): {}",
                    denied.len(),
                    denied.join("; ")
                ),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let v = PolicyGate::violations(&enforcement, &[pod.clone(), cm.clone()]);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v.iter().all(|(deny, _)| *deny));
        assert_eq!(v[0].1, "NoLatest no-latest: latest tag (on Pod a/p)");
        assert_eq!(
            v[1].1,
            "ConfigurationPolicy no-debug: mustnothave ConfigMap a/debug"
        );
        let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "a"}});
        assert!(PolicyGate::violations(&enforcement, &[other]).is_empty());
        // Another version of the same group and kind is forbidden too.
        let mut cm_v2 = cm.clone();
        cm_v2["apiVersion"] = json!("v2");
        assert_eq!(PolicyGate::violations(&enforcement, &[cm_v2]).len(), 1);
        let gate_state = |state: GateState| {
            let e = Enforcement::default();
            set_gate(&e, 1, state, true);
            PolicyGate::violations(&e, std::slice::from_ref(&cm))
        };
        // Without the add-on nothing is enforced; before its first pass everything waits.
        assert!(gate_state(GateState::Off).is_empty());
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
