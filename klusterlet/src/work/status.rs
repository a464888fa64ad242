//! What the agent reports about a work: per-manifest conditions (Applied, Available,
//! StatusFeedbackSynced and the condition rules' conditions), status feedback values, and the
//! work's own Applied, Available, Progressing and Degraded conditions.

use garrison_api::conditions::{STATUS_FALSE, STATUS_TRUE, STATUS_UNKNOWN, work as wc};
use garrison_api::status::condition;
use garrison_api::work::v1::{
    ConditionRuleType, FeedBackType, FeedbackValue, FieldValue, JsonPath as PathRule,
    ManifestCondition, ManifestConfigOption, ManifestResourceMeta, ManifestResourceStatus,
    ManifestWork, ManifestWorkStatus, StatusFeedbackResult, ValueType,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::Value;

use super::apply::{ApplyError, Target};
use super::gate::Refusal;
use super::jsonpath::JsonPath;

/// Largest JSON value reported raw, in bytes.
pub const MAX_RAW: usize = 1024;

/// The manifest config whose resource identifier names this target, if any.
pub fn config_for<'w>(work: &'w ManifestWork, t: &Target) -> Option<&'w ManifestConfigOption> {
    work.spec.manifest_configs.iter().find(|c| {
        let r = &c.resource_identifier;
        r.group.as_deref().unwrap_or("") == t.resolved.api.group
            && r.resource == t.resolved.api.plural
            && r.name == t.name
            && r.namespace.as_deref().unwrap_or("") == t.namespace
    })
}

/// The result of one manifest's pass.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Which manifest.
    pub meta: ManifestResourceMeta,
    /// Err with the message when applying failed.
    pub applied: Result<(), String>,
    /// The UID of the applied resource (None for ReadOnly and failures).
    pub applied_uid: Option<String>,
    /// The live object after the apply (or the read, for ReadOnly).
    pub live: Option<Value>,
    /// Why the resource could not be read back, when it could not.
    pub fetch_error: Option<String>,
    /// Whether the manifest is ReadOnly.
    pub read_only: bool,
    /// The manifest's feedback rules and condition rules.
    pub config: Option<ManifestConfigOption>,
}

impl Outcome {
    /// A manifest that failed before reaching the cluster.
    pub fn failed(meta: ManifestResourceMeta, message: String) -> Self {
        Outcome {
            meta,
            applied: Err(format!("Failed to apply manifest: {message}")),
            applied_uid: None,
            live: None,
            fetch_error: None,
            read_only: false,
            config: None,
        }
    }

    /// The outcome of an apply.
    pub fn from_apply(
        meta: ManifestResourceMeta,
        result: Result<Option<Value>, ApplyError>,
        read_only: bool,
        config: Option<&ManifestConfigOption>,
    ) -> Self {
        let (applied, live) = match result {
            Ok(live) => (Ok(()), live),
            Err(e) => (Err(e.0), None),
        };
        let applied_uid = if read_only {
            None
        } else {
            live.as_ref()
                .and_then(|l| l.pointer("/metadata/uid"))
                .and_then(Value::as_str)
                .map(String::from)
        };
        Outcome {
            meta,
            applied,
            applied_uid,
            live,
            fetch_error: None,
            read_only,
            config: config.cloned(),
        }
    }
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

fn cond(type_: &str, status: &str, reason: &str, message: impl Into<String>) -> Condition {
    let mut c = condition(type_, status, reason, &message.into());
    c.last_transition_time = now();
    c
}

/// The WellKnownStatus feedback of a kind: (name, path).
pub fn well_known(kind: &str) -> &'static [(&'static str, &'static str)] {
    match kind {
        "Deployment" => &[
            ("ReadyReplicas", ".status.readyReplicas"),
            ("Replicas", ".status.replicas"),
            ("AvailableReplicas", ".status.availableReplicas"),
        ],
        "DaemonSet" => &[
            ("NumberReady", ".status.numberReady"),
            ("DesiredNumberScheduled", ".status.desiredNumberScheduled"),
            ("NumberAvailable", ".status.numberAvailable"),
        ],
        "Job" => &[
            (
                "JobComplete",
                r#".status.conditions[?(@.type=="Complete")].status"#,
            ),
            ("JobSucceeded", ".status.succeeded"),
        ],
        "Pod" => &[
            ("PodPhase", ".status.phase"),
            (
                "PodReady",
                r#".status.conditions[?(@.type=="Ready")].status"#,
            ),
        ],
        _ => &[],
    }
}

/// Turns a selected JSON value into a feedback value. Objects and arrays are reported raw when
/// their JSON is at most [`MAX_RAW`] bytes.
pub fn field_value(v: &Value) -> Result<FieldValue, String> {
    let mut fv = FieldValue {
        type_: ValueType::String,
        integer: None,
        string: None,
        boolean: None,
        json_raw: None,
    };
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => {
                fv.type_ = ValueType::Integer;
                fv.integer = Some(i);
            }
            None => fv.string = Some(n.to_string()),
        },
        Value::String(s) => fv.string = Some(s.clone()),
        Value::Bool(b) => {
            fv.type_ = ValueType::Boolean;
            fv.boolean = Some(*b);
        }
        Value::Null => return Err("the value is null".into()),
        other => {
            let raw = serde_json::to_string(other).unwrap_or_default();
            if raw.len() > MAX_RAW {
                return Err(format!(
                    "the value is {} bytes of JSON, more than the {MAX_RAW} allowed",
                    raw.len()
                ));
            }
            fv.type_ = ValueType::JsonRaw;
            fv.json_raw = Some(raw);
        }
    }
    Ok(fv)
}

/// Evaluates a manifest's feedback rules against its live object. Returns the values and the
/// errors, each naming the rule.
pub fn feedback(
    kind: &str,
    config: &ManifestConfigOption,
    live: &Value,
) -> (Vec<FeedbackValue>, Vec<String>) {
    let mut values = Vec::new();
    let mut errors = Vec::new();
    let live_version = live
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(|v| v.rsplit('/').next().unwrap_or(v));
    for rule in &config.feedback_rules {
        let paths: Vec<PathRule> = match rule.type_ {
            FeedBackType::WellKnownStatus => {
                let known = well_known(kind);
                if known.is_empty() {
                    errors.push(format!(
                        "cannot find the wellknown statuses for resource with kind {kind}"
                    ));
                }
                known
                    .iter()
                    .map(|(n, p)| PathRule {
                        name: n.to_string(),
                        version: None,
                        path: p.to_string(),
                    })
                    .collect()
            }
            FeedBackType::JsonPaths => rule.json_paths.clone(),
        };
        for p in paths {
            if let Some(v) = &p.version
                && Some(v.as_str()) != live_version
            {
                errors.push(format!(
                    "{}: the path is for version {v}, the resource is {}",
                    p.name,
                    live_version.unwrap_or("")
                ));
                continue;
            }
            let parsed = match JsonPath::parse(&p.path) {
                Ok(j) => j,
                Err(e) => {
                    errors.push(format!("{}: {e}", p.name));
                    continue;
                }
            };
            let found = parsed.select(live);
            let picked = match found.as_slice() {
                [] => continue,
                [one] => (*one).clone(),
                many => Value::Array(many.iter().map(|v| (*v).clone()).collect()),
            };
            match field_value(&picked) {
                Ok(v) => {
                    values.retain(|x: &FeedbackValue| x.name != p.name);
                    values.push(FeedbackValue {
                        name: p.name.clone(),
                        value: v,
                    });
                }
                Err(e) => errors.push(format!("{}: {e}", p.name)),
            }
        }
    }
    (values, errors)
}

/// Well-known health of a kind: Some(Ok) healthy, Some(Err(msg)) degraded, None not judged yet
/// or not a kind with well-known health.
fn health(kind: &str, live: &Value) -> Option<Result<String, String>> {
    let st = live.get("status")?;
    let int = |p: &str| st.pointer(p).and_then(Value::as_i64);
    let cond_status = |t: &str| {
        st.get("conditions")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == t))
            .map(|c| {
                (
                    c["status"].as_str().unwrap_or_default().to_string(),
                    c["message"].as_str().unwrap_or_default().to_string(),
                )
            })
    };
    let gen_seen = live
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .is_none_or(|g| int("/observedGeneration").is_none_or(|o| o >= g));
    match kind {
        "Deployment" | "StatefulSet" | "ReplicaSet" => {
            if !gen_seen {
                return None;
            }
            let want = live
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let ready = int("/readyReplicas").unwrap_or(0);
            if let Some((s, m)) = cond_status("Progressing")
                && s == STATUS_FALSE
            {
                return Some(Err(m));
            }
            if ready >= want {
                Some(Ok(format!("{ready}/{want} replicas ready")))
            } else if int("/replicas").is_some() {
                Some(Err(format!("{ready}/{want} replicas ready")))
            } else {
                None
            }
        }
        "DaemonSet" => {
            let want = int("/desiredNumberScheduled")?;
            let ready = int("/numberReady").unwrap_or(0);
            if ready >= want {
                Some(Ok(format!("{ready}/{want} pods ready")))
            } else {
                Some(Err(format!("{ready}/{want} pods ready")))
            }
        }
        "Job" => {
            if let Some((s, _)) = cond_status("Complete")
                && s == STATUS_TRUE
            {
                return Some(Ok("Job is finished".into()));
            }
            if let Some((s, m)) = cond_status("Failed")
                && s == STATUS_TRUE
            {
                return Some(Err(format!("Job failed: {m}")));
            }
            None
        }
        "Pod" => match st.get("phase").and_then(Value::as_str) {
            Some("Failed") => Some(Err("Pod is in phase Failed".into())),
            Some("Succeeded") => Some(Ok("Pod is in phase Succeeded".into())),
            Some("Running") => match cond_status("Ready") {
                Some((s, _)) if s == STATUS_TRUE => Some(Ok("Pod is running and ready".into())),
                _ => {
                    let why = st
                        .pointer("/containerStatuses/0/state/waiting/reason")
                        .and_then(Value::as_str)
                        .unwrap_or("containers not ready");
                    Some(Err(format!("Pod is not ready: {why}")))
                }
            },
            _ => None,
        },
        _ => None,
    }
}

/// Kinds with built-in Progressing and Degraded rules.
const WORKLOADS: &[&str] = &[
    "Deployment",
    "StatefulSet",
    "ReplicaSet",
    "DaemonSet",
    "Job",
    "Pod",
];

/// The conditions and feedback of one manifest.
pub fn manifest_condition(o: &Outcome, generation: Option<i64>) -> ManifestCondition {
    let kind = o.meta.kind.clone().unwrap_or_default();
    let mut conditions = Vec::new();
    match &o.applied {
        Ok(()) => conditions.push(cond(
            wc::APPLIED,
            STATUS_TRUE,
            wc::REASON_APPLIED_MANIFEST_COMPLETE,
            "Apply manifest complete",
        )),
        Err(m) => conditions.push(cond(
            wc::APPLIED,
            STATUS_FALSE,
            wc::REASON_APPLIED_MANIFEST_FAILED,
            m.clone(),
        )),
    }
    let incomplete = o.meta.resource.as_deref().unwrap_or("").is_empty()
        || o.meta.name.as_deref().unwrap_or("").is_empty();
    let available = if o.live.is_some() {
        cond(
            wc::AVAILABLE,
            STATUS_TRUE,
            wc::REASON_RESOURCE_AVAILABLE,
            "Resource is available",
        )
    } else if incomplete {
        cond(
            wc::AVAILABLE,
            STATUS_UNKNOWN,
            wc::REASON_INCOMPLETED_RESOURCE_META,
            "Resource meta is incompleted",
        )
    } else if let Some(e) = &o.fetch_error {
        cond(
            wc::AVAILABLE,
            STATUS_UNKNOWN,
            wc::REASON_FETCHING_RESOURCE_FAILED,
            format!("Failed to fetch resource: {e}"),
        )
    } else {
        cond(
            wc::AVAILABLE,
            STATUS_FALSE,
            wc::REASON_RESOURCE_NOT_AVAILABLE,
            "Resource is not available",
        )
    };
    conditions.push(available);
    let mut feedback_values = None;
    if let Some(live) = &o.live {
        let rules = o.config.as_ref().filter(|c| !c.feedback_rules.is_empty());
        conditions.push(match rules {
            None => cond(
                wc::STATUS_FEEDBACK_SYNCED,
                STATUS_TRUE,
                wc::REASON_NO_STATUS_FEEDBACK_SYNCED,
                "",
            ),
            Some(config) => {
                let (values, errors) = feedback(&kind, config, live);
                feedback_values = Some(StatusFeedbackResult { values });
                if errors.is_empty() {
                    cond(
                        wc::STATUS_FEEDBACK_SYNCED,
                        STATUS_TRUE,
                        wc::REASON_STATUS_FEEDBACK_SYNCED,
                        "",
                    )
                } else {
                    cond(
                        wc::STATUS_FEEDBACK_SYNCED,
                        STATUS_FALSE,
                        wc::REASON_STATUS_FEEDBACK_SYNC_FAILED,
                        format!(
                            "Sync status feedback failed with error {}",
                            errors.join("; ")
                        ),
                    )
                }
            }
        });
        conditions.extend(rule_conditions(&kind, o.config.as_ref(), live));
    }
    for c in &mut conditions {
        c.observed_generation = generation;
    }
    ManifestCondition {
        resource_meta: o.meta.clone(),
        status_feedbacks: feedback_values,
        conditions,
    }
}

fn rule_cond(type_: &str, ok: bool, message: impl Into<String>) -> Condition {
    cond(
        type_,
        if ok { STATUS_TRUE } else { STATUS_FALSE },
        wc::REASON_CONDITION_RULE_EVALUATED,
        message,
    )
}

/// The rule-set conditions of a manifest. Workloads get built-in Progressing and Degraded rules
/// from their well-known status (Garrison's addition; upstream leaves these to CEL rules);
/// `conditionRules` add upstream's WellKnownConditions (`Complete` for Jobs and Pods).
fn rule_conditions(
    kind: &str,
    config: Option<&ManifestConfigOption>,
    live: &Value,
) -> Vec<Condition> {
    let mut out = Vec::new();
    if WORKLOADS.contains(&kind) {
        match health(kind, live) {
            Some(Ok(m)) => {
                out.push(rule_cond(wc::PROGRESSING, false, m.clone()));
                out.push(rule_cond(wc::DEGRADED, false, m));
            }
            // A failing workload has not reached its desired state: still progressing, and
            // degraded. Rollouts (ManifestWorkReplicaSet) count Progressing with Degraded as a
            // failure, and Progressing=False as done.
            Some(Err(m)) => {
                out.push(rule_cond(wc::PROGRESSING, true, m.clone()));
                out.push(rule_cond(wc::DEGRADED, true, m));
            }
            None => {
                let m = format!("{kind} has not settled yet");
                out.push(rule_cond(wc::PROGRESSING, true, m.clone()));
                out.push(rule_cond(wc::DEGRADED, false, m));
            }
        }
    }
    let Some(config) = config else { return out };
    for rule in &config.condition_rules {
        let c = match rule.type_ {
            ConditionRuleType::WellKnownConditions => {
                if rule.condition != wc::COMPLETE || !matches!(kind, "Job" | "Pod") {
                    // Upstream: a kind and condition without a well-known rule yields nothing.
                    continue;
                }
                let (done, default_msg) = match kind {
                    "Job" => {
                        let finished = live
                            .pointer("/status/conditions")
                            .and_then(Value::as_array)
                            .is_some_and(|cs| {
                                cs.iter().any(|c| {
                                    (c["type"] == "Complete" || c["type"] == "Failed")
                                        && c["status"] == STATUS_TRUE
                                })
                            });
                        let m = if finished {
                            "Job is finished"
                        } else {
                            "Job is not finished"
                        };
                        (finished, m.to_string())
                    }
                    _ => {
                        let phase = live
                            .pointer("/status/phase")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        (
                            matches!(phase, "Succeeded" | "Failed"),
                            format!("Pod is in phase {phase}"),
                        )
                    }
                };
                rule_cond(
                    wc::COMPLETE,
                    done,
                    rule.message.clone().unwrap_or(default_msg),
                )
            }
            ConditionRuleType::Cel => cond(
                &rule.condition,
                STATUS_UNKNOWN,
                wc::REASON_CONDITION_RULE_INVALID,
                "CEL condition rules are not evaluated by this agent",
            ),
        };
        // A rule naming a type no condition may have (spaces, say) would get the whole
        // status refused: it is left out, and said.
        if !garrison_api::status::valid_condition_type(&c.type_) {
            tracing::warn!(condition = %c.type_, "a condition rule names an invalid condition type; left out of the status");
            continue;
        }
        out.retain(|x| x.type_ != c.type_);
        out.push(c);
    }
    out
}

fn find<'a>(cs: &'a [Condition], t: &str) -> Option<&'a Condition> {
    cs.iter().find(|c| c.type_ == t)
}

/// Aggregates one rule-set condition type over the manifests that have it, as upstream does:
/// Progressing is True when any is, other types False when any is; then Unknown; then True.
/// Degraded is Garrison's: one degraded resource degrades the work.
fn aggregate(manifests: &[ManifestCondition], t: &str) -> Option<Condition> {
    let found: Vec<&Condition> = manifests
        .iter()
        .filter_map(|m| find(&m.conditions, t).filter(|c| c.reason.starts_with("ConditionRule")))
        .collect();
    if found.is_empty() {
        return None;
    }
    let any = |s: &str| found.iter().any(|c| c.status == s);
    let status = if t == wc::PROGRESSING || t == wc::DEGRADED {
        if any(STATUS_TRUE) {
            STATUS_TRUE
        } else if any(STATUS_UNKNOWN) {
            STATUS_UNKNOWN
        } else {
            STATUS_FALSE
        }
    } else if any(STATUS_FALSE) {
        STATUS_FALSE
    } else if any(STATUS_UNKNOWN) || !any(STATUS_TRUE) {
        STATUS_UNKNOWN
    } else {
        STATUS_TRUE
    };
    let matching: Vec<&&Condition> = found.iter().filter(|c| c.status == status).collect();
    let message = if found.len() == 1 {
        found[0].message.clone()
    } else if matching.len() == 1 {
        matching[0].message.clone()
    } else {
        format!("Aggregated from {} manifest conditions", found.len())
    };
    Some(cond(
        t,
        status,
        wc::REASON_CONDITION_RULES_AGGREGATED,
        message,
    ))
}

/// The status of a work after a pass.
pub fn compute(work: &ManifestWork, outcomes: &[Outcome]) -> ManifestWorkStatus {
    let generation = work.metadata.generation;
    let manifests: Vec<ManifestCondition> = outcomes
        .iter()
        .map(|o| manifest_condition(o, generation))
        .collect();
    let total = manifests.len();
    let count = |t: &str, s: &str| {
        manifests
            .iter()
            .filter(|m| find(&m.conditions, t).is_some_and(|c| c.status == s))
            .count()
    };
    let mut conditions = Vec::new();
    if total > 0 {
        let failed = count(wc::APPLIED, STATUS_FALSE);
        conditions.push(if failed == 0 {
            cond(
                wc::APPLIED,
                STATUS_TRUE,
                wc::REASON_APPLIED_MANIFEST_WORK_COMPLETE,
                "Apply manifest work complete",
            )
        } else {
            let first = manifests
                .iter()
                .filter_map(|m| {
                    find(&m.conditions, wc::APPLIED).filter(|c| c.status == STATUS_FALSE)
                })
                .map(|c| c.message.clone())
                .next()
                .unwrap_or_default();
            cond(
                wc::APPLIED,
                STATUS_FALSE,
                wc::REASON_APPLIED_MANIFEST_WORK_FAILED,
                format!(
                    "Failed to apply manifest work: {failed} of {total} manifests failed. {first}"
                ),
            )
        });
    }
    let unavailable = count(wc::AVAILABLE, STATUS_FALSE);
    let unknown = count(wc::AVAILABLE, STATUS_UNKNOWN);
    let available = count(wc::AVAILABLE, STATUS_TRUE);
    conditions.push(if unavailable > 0 {
        cond(
            wc::AVAILABLE,
            STATUS_FALSE,
            wc::REASON_RESOURCES_NOT_AVAILABLE,
            format!("{unavailable} of {total} resources are not available"),
        )
    } else if unknown > 0 {
        cond(
            wc::AVAILABLE,
            STATUS_UNKNOWN,
            wc::REASON_RESOURCES_STATUS_UNKNOWN,
            format!("{unknown} of {total} resources have unknown status"),
        )
    } else if available == 0 {
        cond(
            wc::AVAILABLE,
            STATUS_UNKNOWN,
            wc::REASON_RESOURCES_STATUS_UNKNOWN,
            "cannot get any available resource ",
        )
    } else {
        cond(
            wc::AVAILABLE,
            STATUS_TRUE,
            wc::REASON_RESOURCES_AVAILABLE,
            "All resources are available",
        )
    });
    let mut rule_types: Vec<String> = Vec::new();
    for m in &manifests {
        for c in &m.conditions {
            if c.reason.starts_with("ConditionRule") && !rule_types.contains(&c.type_) {
                rule_types.push(c.type_.clone());
            }
        }
    }
    for t in rule_types {
        conditions.extend(aggregate(&manifests, &t));
    }
    for c in &mut conditions {
        c.observed_generation = generation;
    }
    ManifestWorkStatus {
        conditions,
        resource_status: Some(ManifestResourceStatus { manifests }),
    }
}
/// The status of a work a gate refused: Applied=False with the gate's reason; the manifests'
/// last reported state is kept.
pub fn refused(work: &ManifestWork, r: &Refusal) -> ManifestWorkStatus {
    let mut st = work.status.clone().unwrap_or_default();
    let mut c = cond(wc::APPLIED, STATUS_FALSE, &r.reason, r.message.clone());
    c.observed_generation = work.metadata.generation;
    st.conditions.retain(|x| x.type_ != wc::APPLIED);
    st.conditions.insert(0, c);
    st
}

/// Keeps each condition's lastTransitionTime when its status did not change, as upstream's
/// condition helpers do, so an unchanged status compares equal and is not rewritten.
pub fn carry_transition_times(old: &ManifestWorkStatus, new: &mut ManifestWorkStatus) {
    fn carry(old: &[Condition], new: &mut [Condition]) {
        for c in new.iter_mut() {
            if let Some(o) = old.iter().find(|o| o.type_ == c.type_)
                && o.status == c.status
            {
                c.last_transition_time = o.last_transition_time.clone();
            }
        }
    }
    carry(&old.conditions, &mut new.conditions);
    let old_m = old
        .resource_status
        .as_ref()
        .map(|r| r.manifests.as_slice())
        .unwrap_or(&[]);
    if let Some(rs) = new.resource_status.as_mut() {
        for m in rs.manifests.iter_mut() {
            if let Some(o) = old_m
                .iter()
                .find(|o| o.resource_meta.ordinal == m.resource_meta.ordinal)
            {
                carry(&o.conditions, &mut m.conditions);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_condition_rule_with_a_type_no_condition_may_have_is_left_out() {
        let config: ManifestConfigOption = serde_json::from_value(json!({
            "resourceIdentifier": {"resource": "configmaps", "name": "c", "namespace": "default"},
            "conditionRules": [
                {"condition": "my check", "type": "CEL", "celExpressions": ["true"]},
                {"condition": "-lead", "type": "CEL", "celExpressions": ["true"]},
                {"condition": "example.com/MyCheck", "type": "CEL", "celExpressions": ["true"]}]
        }))
        .unwrap();
        let types: Vec<String> = rule_conditions("ConfigMap", Some(&config), &json!({}))
            .into_iter()
            .map(|c| c.type_)
            .collect();
        assert_eq!(types, ["example.com/MyCheck"]);
    }

    #[test]
    fn well_known_feedback_of_a_deployment() {
        let config: ManifestConfigOption = serde_json::from_value(json!({
            "resourceIdentifier": {"group": "apps", "resource": "deployments", "name": "web", "namespace": "default"},
            "feedbackRules": [{"type": "WellKnownStatus"},
                {"type": "JSONPaths", "jsonPaths": [{"name": "image", "path": ".spec.template.spec.containers[0].image"},
                    {"name": "conds", "path": ".status.conditions"},
                    {"name": "bad", "path": ".status["}]}]
        })).unwrap();
        let live = json!({"spec": {"template": {"spec": {"containers": [{"image": "nginx:1.27"}]}}},
            "status": {"replicas": 3, "readyReplicas": 2, "availableReplicas": 2,
                "conditions": [{"type": "Available", "status": "True"}]}});
        let (values, errors) = feedback("Deployment", &config, &live);
        let get = |n: &str| values.iter().find(|v| v.name == n).map(|v| v.value.clone());
        assert_eq!(get("ReadyReplicas").unwrap().integer, Some(2));
        assert_eq!(get("Replicas").unwrap().integer, Some(3));
        assert_eq!(get("image").unwrap().string.as_deref(), Some("nginx:1.27"));
        let raw = get("conds").unwrap();
        assert_eq!(raw.type_, ValueType::JsonRaw);
        assert!(raw.json_raw.unwrap().contains("Available"));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("bad: invalid JSONPath"));
    }

    #[test]
    fn raw_values_over_one_kib_are_refused() {
        let big = json!({"x": "a".repeat(2000)});
        assert!(field_value(&big).unwrap_err().contains("1024"));
        assert_eq!(field_value(&json!(true)).unwrap().boolean, Some(true));
        assert!(field_value(&Value::Null).is_err());
    }

    #[test]
    fn failing_workloads_are_degraded() {
        let ok = json!({"metadata": {"generation": 1}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "replicas": 2, "readyReplicas": 2}});
        assert!(matches!(health("Deployment", &ok), Some(Ok(_))));
        let bad = json!({"metadata": {"generation": 1}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "replicas": 2, "readyReplicas": 0}});
        assert!(matches!(health("Deployment", &bad), Some(Err(_))));
        let stale = json!({"metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "replicas": 2, "readyReplicas": 2}});
        assert!(health("Deployment", &stale).is_none());
        let job = json!({"status": {"conditions": [{"type": "Failed", "status": "True", "message": "x"}]}});
        assert!(matches!(health("Job", &job), Some(Err(_))));
        assert!(health("ConfigMap", &json!({"status": {}})).is_none());
    }

    fn manifest(t: &str, status: &str) -> ManifestCondition {
        ManifestCondition {
            conditions: vec![cond(t, status, wc::REASON_CONDITION_RULE_EVALUATED, "m")],
            ..Default::default()
        }
    }

    #[test]
    fn rule_conditions_aggregate_as_upstream() {
        let ms = [
            manifest(wc::PROGRESSING, STATUS_FALSE),
            manifest(wc::PROGRESSING, STATUS_TRUE),
        ];
        assert_eq!(aggregate(&ms, wc::PROGRESSING).unwrap().status, STATUS_TRUE);
        let ms = [
            manifest(wc::COMPLETE, STATUS_TRUE),
            manifest(wc::COMPLETE, STATUS_FALSE),
        ];
        let c = aggregate(&ms, wc::COMPLETE).unwrap();
        assert_eq!(c.status, STATUS_FALSE);
        assert_eq!(c.reason, wc::REASON_CONDITION_RULES_AGGREGATED);
        let ms = [
            manifest(wc::DEGRADED, STATUS_FALSE),
            manifest(wc::DEGRADED, STATUS_TRUE),
        ];
        assert_eq!(aggregate(&ms, wc::DEGRADED).unwrap().status, STATUS_TRUE);
        assert!(aggregate(&ms, "Other").is_none());
    }
}
