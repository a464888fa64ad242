//! ConfigurationPolicy: objects that must (or must not) exist on a cluster, in upstream's shape
//! (`policy.open-cluster-management.io/v1`, config-policy-controller).
//!
//! This module is the judgement without I/O: a ConfigurationPolicy read from its object, the
//! namespaces it applies to, whether an object is as a template says, what enforcing would
//! write, and upstream's messages. The agent lists and writes the objects.
//!
//! Comparison follows upstream: `musthave` needs every field of the template in the object with
//! the same value (maps compared key by key, each list item of the template present in the
//! object's list); `mustonlyhave` needs the fields the template names to equal it exactly;
//! `mustnothave` needs no object that `musthave` would accept.

use garrison_api::selector::Selector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Map, Value};

use crate::gatekeeper::strings;

/// How an object template is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComplianceType {
    /// The object exists with at least the template's fields.
    MustHave,
    /// The object exists with exactly the template's fields.
    MustOnlyHave,
    /// No such object exists.
    MustNotHave,
}

impl ComplianceType {
    /// Parses upstream's spelling, in any case.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "musthave" => Some(ComplianceType::MustHave),
            "mustonlyhave" => Some(ComplianceType::MustOnlyHave),
            "mustnothave" => Some(ComplianceType::MustNotHave),
            _ => None,
        }
    }
}

/// Inform or enforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remediation {
    /// Report only.
    Inform,
    /// Create, update or delete to comply.
    Enforce,
}

impl Remediation {
    /// Parses `inform`/`enforce` in any case; anything else is inform.
    pub fn parse(s: &str) -> Self {
        if s.eq_ignore_ascii_case("enforce") {
            Remediation::Enforce
        } else {
            Remediation::Inform
        }
    }
}

/// One object template.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectTemplate {
    /// How it is judged.
    pub compliance: ComplianceType,
    /// The object as the template gives it.
    pub object: Value,
}

impl ObjectTemplate {
    /// The template's apiVersion.
    pub fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or_default()
    }
    /// The template's kind.
    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }
    /// The template's object name, if it names one.
    pub fn name(&self) -> Option<&str> {
        self.object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
    }
    /// The template's namespace, if it names one.
    pub fn namespace(&self) -> Option<&str> {
        self.object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
    }
}

/// Which namespaces a ConfigurationPolicy's namespaced templates without a namespace apply to.
#[derive(Debug, Clone, Default)]
pub struct NamespaceSelector {
    include: Vec<String>,
    exclude: Vec<String>,
    labels: Option<Selector>,
}

impl NamespaceSelector {
    /// Whether the selector selects anything at all (upstream: include or labels given).
    pub fn is_set(&self) -> bool {
        !self.include.is_empty() || self.labels.is_some()
    }

    /// The namespaces selected among `(name, labels)`.
    pub fn select<'a>(
        &self,
        namespaces: &'a [(String, std::collections::BTreeMap<String, String>)],
    ) -> Vec<&'a str> {
        namespaces
            .iter()
            .filter(|(name, labels)| {
                let included = if self.include.is_empty() {
                    self.labels.is_some()
                } else {
                    self.include.iter().any(|p| glob(p, name))
                };
                included
                    && !self.exclude.iter().any(|p| glob(p, name))
                    && self.labels.as_ref().is_none_or(|s| s.matches(labels))
            })
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

/// Upstream's namespace patterns: `*` anywhere, as a filepath match of one path segment.
fn glob(pattern: &str, s: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == s;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = s;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else if let Some(at) = rest.find(p) {
            rest = &rest[at + p.len()..];
        } else {
            return false;
        }
    }
    true
}

/// A ConfigurationPolicy, read from its object.
#[derive(Debug, Clone)]
pub struct ConfigurationPolicy {
    /// Its name.
    pub name: String,
    /// Inform or enforce.
    pub remediation: Remediation,
    /// low, medium, high or critical.
    pub severity: String,
    /// Namespaces for templates that name none.
    pub namespace_selector: NamespaceSelector,
    /// The object templates.
    pub templates: Vec<ObjectTemplate>,
    /// `DeleteAll`, `DeleteIfCreated` or `None` (default).
    pub prune_object_behavior: String,
    /// When to evaluate again while compliant.
    pub compliant_interval: Interval,
    /// When to evaluate again while not compliant.
    pub noncompliant_interval: Interval,
}

/// When a ConfigurationPolicy is evaluated again (`spec.evaluationInterval`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interval {
    /// On every change and every pass (upstream's `watch`, the default).
    #[default]
    Watch,
    /// Not again until the policy's spec changes.
    Never,
    /// At most once per this long.
    Every(std::time::Duration),
}

impl Interval {
    /// Reads `watch`, `never` or a Go duration such as `10s` or `1h30m`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "" | "watch" => Ok(Interval::Watch),
            "never" => Ok(Interval::Never),
            d => go_duration(d).map(Interval::Every).map_err(|e| {
                format!("evaluationInterval {d:?} is not watch, never or a duration: {e}")
            }),
        }
    }

    /// Whether a policy last evaluated at `last` (seconds since the epoch; `None` when never),
    /// whose spec is unchanged since (`same_spec`), is due at `now`.
    pub fn due(self, last: Option<i64>, same_spec: bool, now: i64) -> bool {
        let Some(last) = last.filter(|_| same_spec) else {
            return true;
        };
        match self {
            Interval::Watch => true,
            Interval::Never => false,
            Interval::Every(d) => now.saturating_sub(last) >= d.as_secs() as i64,
        }
    }
}

/// A Go duration (`300ms`, `10s`, `1h30m`, `2h45m10.5s`): one or more decimal numbers, each
/// with a unit of `ns`, `us`, `µs`, `ms`, `s`, `m` or `h`. Negative durations are refused.
pub fn go_duration(s: &str) -> Result<std::time::Duration, String> {
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(digits);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("{s:?}: expected a number before {tail:?}"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("{s:?}: missing unit after {number}")),
            u => return Err(format!("{s:?}: unknown unit {u:?}")),
        };
        total += value * scale;
        rest = next;
    }
    if !total.is_finite() || total > 1e12 {
        return Err(format!("{s:?} is too long"));
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

impl ConfigurationPolicy {
    /// Reads a ConfigurationPolicy object; `Err` names what is wrong with it.
    pub fn from_object(obj: &Value) -> Result<Self, String> {
        if obj["kind"] != "ConfigurationPolicy" {
            return Err(format!("{} is not a ConfigurationPolicy", obj["kind"]));
        }
        let spec = &obj["spec"];
        if !spec.is_object() {
            return Err("spec must be an object".into());
        }
        let mut templates = vec![];
        for (i, t) in spec["object-templates"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let ct = t["complianceType"].as_str().unwrap_or_default();
            let compliance = ComplianceType::parse(ct).ok_or_else(|| {
                format!("object-templates[{i}].complianceType {ct:?} is not musthave, mustonlyhave or mustnothave")
            })?;
            let object = t["objectDefinition"].clone();
            if object["apiVersion"].as_str().unwrap_or_default().is_empty()
                || object["kind"].as_str().unwrap_or_default().is_empty()
            {
                return Err(format!(
                    "object-templates[{i}].objectDefinition needs apiVersion and kind"
                ));
            }
            templates.push(ObjectTemplate { compliance, object });
        }
        if spec.get("object-templates-raw").is_some() && templates.is_empty() {
            return Err("object-templates-raw is not supported; use object-templates".into());
        }
        let ns = &spec["namespaceSelector"];
        let labels = if ns.get("matchLabels").is_some() || ns.get("matchExpressions").is_some() {
            let sel: LabelSelector = serde_json::from_value(json_labels(ns))
                .map_err(|e| format!("namespaceSelector: {e}"))?;
            Some(Selector::new(&sel).map_err(|e| format!("namespaceSelector: {e}"))?)
        } else {
            None
        };
        Ok(ConfigurationPolicy {
            name: obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .into(),
            remediation: Remediation::parse(spec["remediationAction"].as_str().unwrap_or("inform")),
            severity: spec["severity"].as_str().unwrap_or("low").into(),
            namespace_selector: NamespaceSelector {
                include: strings(&ns["include"]),
                exclude: strings(&ns["exclude"]),
                labels,
            },
            templates,
            prune_object_behavior: spec["pruneObjectBehavior"]
                .as_str()
                .unwrap_or("None")
                .into(),
            compliant_interval: Interval::parse(
                spec.pointer("/evaluationInterval/compliant")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            )?,
            noncompliant_interval: Interval::parse(
                spec.pointer("/evaluationInterval/noncompliant")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            )?,
        })
    }
}

fn json_labels(ns: &Value) -> Value {
    let mut m = Map::new();
    for k in ["matchLabels", "matchExpressions"] {
        if let Some(v) = ns.get(k) {
            m.insert(k.into(), v.clone());
        }
    }
    Value::Object(m)
}

/// Whether `actual` holds `want` as `musthave` reads it: every field of `want` present with an
/// equal value, maps compared key by key and each list item of `want` present in the list.
pub fn contains(want: &Value, actual: &Value) -> bool {
    match (want, actual) {
        (Value::Object(w), Value::Object(a)) => w.iter().all(|(k, wv)| match a.get(k) {
            Some(av) => contains(wv, av),
            None => is_empty(wv),
        }),
        (Value::Array(w), Value::Array(a)) => {
            w.iter().all(|wi| a.iter().any(|ai| contains(wi, ai)))
        }
        (Value::Number(w), Value::Number(a)) => w.as_f64() == a.as_f64(),
        (Value::String(w), Value::Number(a)) | (Value::Number(a), Value::String(w)) => {
            w == &a.to_string()
        }
        _ => want == actual,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// Whether `actual` holds `want` as `mustonlyhave` reads it: the fields `want` names equal it
/// exactly (lists item for item, maps with no extra keys below the top level of the object).
pub fn equals_exactly(want: &Value, actual: &Value) -> bool {
    match (want, actual) {
        (Value::Object(w), Value::Object(a)) => {
            w.iter().all(|(k, wv)| match (k.as_str(), a.get(k)) {
                // Metadata is compared as musthave: the server adds to it.
                ("metadata", Some(av)) => contains(wv, av),
                (_, Some(av)) => exact(wv, av),
                (_, None) => is_empty(wv),
            })
        }
        _ => exact(want, actual),
    }
}

fn exact(want: &Value, actual: &Value) -> bool {
    match (want, actual) {
        (Value::Object(w), Value::Object(a)) => {
            w.len() == a.len()
                && w.iter()
                    .all(|(k, wv)| a.get(k).is_some_and(|av| exact(wv, av)))
        }
        (Value::Array(w), Value::Array(a)) => {
            w.len() == a.len() && w.iter().zip(a).all(|(x, y)| exact(x, y))
        }
        (Value::Number(w), Value::Number(a)) => w.as_f64() == a.as_f64(),
        _ => want == actual,
    }
}

/// What enforcing writes for an object that exists but is not as the template says: for
/// `musthave`, the object with the template's fields merged in (list items added); for
/// `mustonlyhave`, the object with the template's fields replacing its own.
pub fn merged(compliance: ComplianceType, want: &Value, actual: &Value) -> Value {
    let mut out = actual.clone();
    merge_into(&mut out, want, compliance == ComplianceType::MustOnlyHave);
    out
}

fn merge_into(target: &mut Value, want: &Value, replace: bool) {
    match (target, want) {
        (Value::Object(t), Value::Object(w)) => {
            for (k, wv) in w {
                // mustonlyhave replaces whole fields, but metadata, which the server owns in
                // part and which is compared as musthave.
                if replace && k != "metadata" {
                    t.insert(k.clone(), wv.clone());
                    continue;
                }
                match t.get_mut(k) {
                    Some(tv) => merge_into(tv, wv, false),
                    None => {
                        t.insert(k.clone(), wv.clone());
                    }
                }
            }
        }
        (Value::Array(t), Value::Array(w)) if !replace => {
            for wi in w {
                if !t.iter().any(|ti| contains(wi, ti)) {
                    t.push(wi.clone());
                }
            }
        }
        (t, w) => *t = w.clone(),
    }
}

/// The state of one object against one template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Missing.
    Missing,
    /// Present and as the template says.
    AsSpecified,
    /// Present but not as the template says.
    NotAsSpecified,
}

/// Judges an object (or its absence) against a template.
pub fn found(template: &ObjectTemplate, actual: Option<&Value>) -> Found {
    match actual {
        None => Found::Missing,
        Some(a) => {
            let ok = match template.compliance {
                ComplianceType::MustOnlyHave => equals_exactly(&template.object, a),
                _ => contains(&template.object, a),
            };
            if ok {
                Found::AsSpecified
            } else {
                Found::NotAsSpecified
            }
        }
    }
}

/// Whether a state complies with the template.
pub fn complies(compliance: ComplianceType, state: Found) -> bool {
    match compliance {
        ComplianceType::MustNotHave => state != Found::AsSpecified,
        _ => state == Found::AsSpecified,
    }
}

/// Upstream's message for objects of `plural` named `names` in `namespace`, in `state`.
pub fn message(
    compliance: ComplianceType,
    state: Found,
    plural: &str,
    names: &[String],
    namespace: Option<&str>,
) -> String {
    let what = match (compliance, state) {
        (ComplianceType::MustNotHave, Found::Missing | Found::NotAsSpecified) => {
            "missing as expected"
        }
        (ComplianceType::MustNotHave, Found::AsSpecified) => "found",
        (_, Found::Missing) => "not found",
        (_, Found::AsSpecified) => "found as specified",
        (_, Found::NotAsSpecified) => "found but not as specified",
    };
    let ns = namespace
        .map(|n| format!(" in namespace {n}"))
        .unwrap_or_default();
    format!("{plural} [{}] {what}{ns}", names.join(", "))
}

/// Upstream's `relatedObjects[].reason` for an object in `state` (after `verb`, when the
/// policy enforced: `created`, `updated` or `deleted`).
pub fn related_reason(
    compliance: ComplianceType,
    state: Found,
    verb: Option<&str>,
) -> &'static str {
    match (verb, compliance, state) {
        (Some("created"), ..) => "K8s creation success",
        (Some("updated"), ..) => "K8s update success",
        (Some("deleted"), ..) => "K8s deletion success",
        (_, ComplianceType::MustNotHave, Found::AsSpecified) => {
            "Resource found but should not exist"
        }
        (_, ComplianceType::MustNotHave, _) => "Resource not found as expected",
        (_, _, Found::AsSpecified) => "Resource found as expected",
        (_, _, Found::NotAsSpecified) => "Resource found but does not match",
        (_, _, Found::Missing) => "Resource not found but should exist",
    }
}

/// Upstream's `compliancyDetails[].conditions[].reason` for an object template.
pub fn condition_reason(
    compliance: ComplianceType,
    compliant: bool,
    verb: Option<&str>,
) -> &'static str {
    match (verb, compliance, compliant) {
        (Some("created"), ..) => "K8s creation success",
        (Some("updated"), ..) => "K8s update success",
        (Some("deleted"), ..) => "K8s deletion success",
        (_, ComplianceType::MustNotHave, true) => "K8s `must not have` object already missing",
        (_, ComplianceType::MustNotHave, false) => "K8s has a `must not have` object",
        (_, _, true) => "K8s `must have` object already exists",
        (_, _, false) => "K8s does not have a `must have` object",
    }
}

/// The message after enforcing: `created`, `updated` or `deleted`.
pub fn enforced_message(verb: &str, plural: &str, name: &str, namespace: Option<&str>) -> String {
    let ns = namespace
        .map(|n| format!(" in namespace {n}"))
        .unwrap_or_default();
    format!("{plural} [{name}] was {verb} successfully{ns}")
}

/// The compliance line upstream writes into policy status and compliance events:
/// `Compliant; notification - ...` or `NonCompliant; violation - ...`, joined by `; `.
pub fn compliance_message(compliant: bool, details: &[String]) -> String {
    let (state, kind) = if compliant {
        ("Compliant", "notification")
    } else {
        ("NonCompliant", "violation")
    };
    truncate(format!("{state}; {kind} - {}", details.join("; ")))
}

/// Longest compliance message, as upstream's events allow.
pub const MAX_MESSAGE: usize = 4096;

/// `message` cut to [`MAX_MESSAGE`] bytes, ending in `...` when cut.
pub fn truncate(message: String) -> String {
    garrison_api::status::cut_to(message, MAX_MESSAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluation_intervals_read_watch_never_and_go_durations() {
        use std::time::Duration;
        assert_eq!(Interval::parse("").unwrap(), Interval::Watch);
        assert_eq!(Interval::parse("watch").unwrap(), Interval::Watch);
        assert_eq!(Interval::parse("never").unwrap(), Interval::Never);
        assert_eq!(
            Interval::parse("1h30m").unwrap(),
            Interval::Every(Duration::from_secs(5400))
        );
        assert_eq!(go_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(go_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(go_duration("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(go_duration("0").unwrap(), Duration::ZERO);
        for bad in ["10", "s", "-5s", "10x", "1h 30m", "abc", "1e400h"] {
            assert!(Interval::parse(bad).is_err(), "{bad}");
        }
        // Due: never evaluated, or the spec changed, always; otherwise by the interval.
        let every = Interval::Every(Duration::from_secs(60));
        assert!(every.due(None, true, 100));
        assert!(every.due(Some(90), false, 100));
        assert!(!every.due(Some(90), true, 100));
        assert!(every.due(Some(40), true, 100));
        assert!(!Interval::Never.due(Some(0), true, 1_000_000));
        assert!(Interval::Never.due(Some(0), false, 1));
        assert!(Interval::Watch.due(Some(100), true, 100));
    }

    #[test]
    fn a_bad_evaluation_interval_is_named() {
        let e = ConfigurationPolicy::from_object(&serde_json::json!({
            "kind": "ConfigurationPolicy", "metadata": {"name": "p"},
            "spec": {"evaluationInterval": {"compliant": "10 minutes"}, "object-templates": []}
        }))
        .unwrap_err();
        assert!(e.contains("evaluationInterval \"10 minutes\""), "{e}");
    }
    use serde_json::json;

    #[test]
    fn musthave_is_a_subset_and_mustonlyhave_is_exact() {
        let actual = json!({"metadata": {"name": "cm", "labels": {"a": "1", "b": "2"}},
            "data": {"x": "1", "y": "2"}, "list": [{"n": 1, "m": 2}, {"n": 3}]});
        assert!(contains(&json!({"data": {"x": "1"}}), &actual));
        assert!(contains(&json!({"list": [{"n": 3}]}), &actual));
        assert!(!contains(&json!({"data": {"x": "2"}}), &actual));
        assert!(!contains(&json!({"data": {"z": "1"}}), &actual));
        assert!(!equals_exactly(&json!({"data": {"x": "1"}}), &actual));
        assert!(equals_exactly(
            &json!({"metadata": {"labels": {"a": "1"}}, "data": {"x": "1", "y": "2"}}),
            &actual
        ));
    }

    #[test]
    fn enforcing_merges_for_musthave_and_replaces_for_mustonlyhave() {
        let actual = json!({"metadata": {"name": "cm"}, "data": {"x": "1", "y": "2"}});
        let want = json!({"data": {"x": "9"}});
        assert_eq!(
            merged(ComplianceType::MustHave, &want, &actual)["data"],
            json!({"x": "9", "y": "2"})
        );
        assert_eq!(
            merged(ComplianceType::MustOnlyHave, &want, &actual)["data"],
            json!({"x": "9"})
        );
    }

    #[test]
    fn states_comply_and_read_as_upstreams_messages() {
        let t = ObjectTemplate {
            compliance: ComplianceType::MustHave,
            object: json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}}),
        };
        assert_eq!(found(&t, None), Found::Missing);
        assert!(!complies(ComplianceType::MustHave, Found::Missing));
        assert!(complies(ComplianceType::MustNotHave, Found::Missing));
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod", "uid": "x"}});
        assert_eq!(found(&t, Some(&ns)), Found::AsSpecified);
        assert_eq!(
            message(
                ComplianceType::MustHave,
                Found::Missing,
                "namespaces",
                &["prod".into()],
                None
            ),
            "namespaces [prod] not found"
        );
        assert_eq!(
            message(
                ComplianceType::MustNotHave,
                Found::AsSpecified,
                "configmaps",
                &["a".into()],
                Some("app")
            ),
            "configmaps [a] found in namespace app"
        );
        assert_eq!(
            compliance_message(false, &["namespaces [prod] not found".into()]),
            "NonCompliant; violation - namespaces [prod] not found"
        );
        assert_eq!(
            enforced_message("created", "namespaces", "prod", None),
            "namespaces [prod] was created successfully"
        );
    }

    #[test]
    fn a_configuration_policy_reads_as_upstream_writes_it() {
        let p = ConfigurationPolicy::from_object(&json!({
            "apiVersion": "policy.open-cluster-management.io/v1", "kind": "ConfigurationPolicy",
            "metadata": {"name": "cm-must-exist"},
            "spec": {"remediationAction": "Enforce", "severity": "high",
                "namespaceSelector": {"include": ["app-*"], "exclude": ["app-test"]},
                "object-templates": [{"complianceType": "MustHave",
                    "objectDefinition": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}}]}
        }))
        .unwrap();
        assert_eq!(p.remediation, Remediation::Enforce);
        assert_eq!(p.templates[0].compliance, ComplianceType::MustHave);
        let nss: Vec<(String, std::collections::BTreeMap<String, String>)> =
            ["app-a", "app-test", "other"]
                .iter()
                .map(|n| (n.to_string(), Default::default()))
                .collect();
        assert_eq!(p.namespace_selector.select(&nss), vec!["app-a"]);
        let bad = ConfigurationPolicy::from_object(&json!({"kind": "ConfigurationPolicy",
            "spec": {"object-templates": [{"complianceType": "shouldhave", "objectDefinition": {}}]}}));
        assert!(bad.unwrap_err().contains("shouldhave"));
    }

    #[test]
    fn namespace_globs_match_anywhere() {
        assert!(glob("app-*", "app-a"));
        assert!(glob("*-prod", "shop-prod"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
        assert!(glob("default", "default"));
    }
}
