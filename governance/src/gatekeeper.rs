//! Gatekeeper ConstraintTemplates and Constraints, as upstream writes them, evaluated without
//! Gatekeeper.
//!
//! - A [`Template`] is a `templates.gatekeeper.sh` ConstraintTemplate compiled once: the
//!   constraint kind it defines, the schema of its constraints' parameters, and its Rego (the
//!   `admission.k8s.gatekeeper.sh` target's `rego`/`libs`, or its `code[]` entry of engine
//!   `Rego`, v1 when `source.version` is `v1`, else v0), which must define `violation`.
//! - A [`Constraint`] is a `constraints.gatekeeper.sh` object of that kind: its `match`, its
//!   `parameters` (checked against the template's `openAPIV3Schema`; a mismatch is
//!   [`ConstraintError::Schema`]), and its `enforcementAction` (default `deny`).
//! - A [`Review`] is what is judged: an object, or an `admission.k8s.io` AdmissionReview,
//!   turned into the AdmissionRequest the Rego sees as `input.review`.
//! - The [`Inventory`] is the cluster's objects as `data.inventory.cluster[gv][kind][name]` and
//!   `data.inventory.namespace[ns][gv][kind][name]`; its Namespaces also serve
//!   `namespaceSelector`.
//!
//! Matching follows Gatekeeper's: every `match` field must pass, for the object or its old
//! version; a match that cannot be decided (a namespaced object under a `namespaceSelector`
//! whose Namespace is unknown) is itself a violation, as Gatekeeper's autoreject.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use garrison_api::selector::Selector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Value, json};

use crate::rego::{CompileError, Data, Depends, EvalError, Held, Program, RegoVersion};

/// The Gatekeeper target templates are written for.
pub const TARGET: &str = "admission.k8s.gatekeeper.sh";
/// The API group of ConstraintTemplates.
pub const TEMPLATE_GROUP: &str = "templates.gatekeeper.sh";
/// The API group of Constraints.
pub const CONSTRAINT_GROUP: &str = "constraints.gatekeeper.sh";

/// Why a ConstraintTemplate cannot be used: its author's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The object is not a ConstraintTemplate.
    #[error("not a ConstraintTemplate of {TEMPLATE_GROUP}: {0}")]
    NotATemplate(String),
    /// `spec.crd.spec.names.kind` is missing.
    #[error("spec.crd.spec.names.kind is required")]
    NoKind,
    /// No target `admission.k8s.gatekeeper.sh` with Rego or CEL.
    #[error("no {TARGET} target with Rego or K8sNativeValidation: {0}")]
    NoRego(String),
    /// The template's K8sNativeValidation (CEL) does not compile.
    #[error("the template's K8sNativeValidation does not compile: {0}")]
    Cel(String),
    /// The Rego does not compile.
    #[error("the template's Rego does not compile: {0}")]
    Compile(#[from] CompileError),
}

/// Why a Constraint cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    /// The object is not a Constraint.
    #[error("not a Constraint of {CONSTRAINT_GROUP}: {0}")]
    NotAConstraint(String),
    /// The Constraint's kind is not the template's.
    #[error("constraint kind {got} is not the template's kind {want}")]
    WrongKind {
        /// The template's kind.
        want: String,
        /// The constraint's kind.
        got: String,
    },
    /// The Constraint does not fit its schema (parameters, match, enforcementAction).
    #[error("the constraint is invalid: {}", .0.join("; "))]
    Schema(Vec<String>),
}

/// What a Constraint does with its violations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnforcementAction {
    /// Refuse.
    Deny,
    /// Record only.
    Dryrun,
    /// Allow with a warning.
    Warn,
    /// Another action Gatekeeper knows (`scoped`), recorded as given.
    Other(String),
}

impl EnforcementAction {
    /// Parses `spec.enforcementAction`; empty is `deny`.
    pub fn parse(s: &str) -> Self {
        match s {
            "" | "deny" => EnforcementAction::Deny,
            "dryrun" => EnforcementAction::Dryrun,
            "warn" => EnforcementAction::Warn,
            other => EnforcementAction::Other(other.into()),
        }
    }

    /// As Gatekeeper spells it.
    pub fn as_str(&self) -> &str {
        match self {
            EnforcementAction::Deny => "deny",
            EnforcementAction::Dryrun => "dryrun",
            EnforcementAction::Warn => "warn",
            EnforcementAction::Other(s) => s,
        }
    }
}

/// `apiVersion` split into group and version.
pub fn group_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// The strings of a JSON array (nothing for anything else).
pub(crate) fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The string at `path` (`/a/b`, segments without JSON-pointer escapes), or "". Walks the
/// segments in place: `Value::pointer` allocates per segment, and matching reads these paths
/// for every object against every constraint.
fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    path.split('/')
        .skip(1)
        .try_fold(v, |v, seg| v.get(seg))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A compiled ConstraintTemplate.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    kind: String,
    schema: Option<Value>,
    engine: Engine,
}

/// The engine a template's violations come from.
#[derive(Debug, Clone)]
enum Engine {
    Rego(Box<Program>),
    Cel(crate::cel::Code),
}

impl Template {
    /// Compiles a ConstraintTemplate object.
    pub fn from_object(obj: &Value) -> Result<Template, TemplateError> {
        let (group, _) = group_version(str_at(obj, "/apiVersion"));
        if group != TEMPLATE_GROUP || str_at(obj, "/kind") != "ConstraintTemplate" {
            return Err(TemplateError::NotATemplate(format!(
                "{}/{}",
                str_at(obj, "/apiVersion"),
                str_at(obj, "/kind")
            )));
        }
        let kind = str_at(obj, "/spec/crd/spec/names/kind");
        if kind.is_empty() {
            return Err(TemplateError::NoKind);
        }
        let schema = obj
            .pointer("/spec/crd/spec/validation/openAPIV3Schema")
            .filter(|s| s.is_object())
            .cloned();
        let targets = obj
            .pointer("/spec/targets")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let target = match targets.as_slice() {
            [t] if t["target"] == TARGET => t,
            [t] => {
                return Err(TemplateError::NoRego(format!(
                    "target {} is not supported",
                    t["target"]
                )));
            }
            [] => return Err(TemplateError::NoRego("no targets".into())),
            _ => return Err(TemplateError::NoRego("more than one target".into())),
        };
        // The legacy `rego`/`libs` fields win over `code`, as Gatekeeper reads them. Of
        // `code`, K8sNativeValidation (CEL) is preferred to Rego, as Gatekeeper and gator
        // prefer it.
        let engine = match target["rego"].as_str().filter(|r| !r.is_empty()) {
            Some(r) => Engine::Rego(Box::new(Program::compile(
                r,
                &strings(&target["libs"]),
                RegoVersion::V0,
                "violation",
            )?)),
            None => {
                let code = target["code"].as_array().cloned().unwrap_or_default();
                let cel = code.iter().find(|c| c["engine"] == "K8sNativeValidation");
                let rego = code.iter().find(|c| c["engine"] == "Rego");
                match (cel, rego) {
                    (Some(c), _) => Engine::Cel(
                        crate::cel::Code::from_source(&c["source"]).map_err(TemplateError::Cel)?,
                    ),
                    (None, Some(c)) => {
                        let src = &c["source"];
                        let version = if src["version"] == "v1" {
                            RegoVersion::V1
                        } else {
                            RegoVersion::V0
                        };
                        Engine::Rego(Box::new(Program::compile(
                            src["rego"].as_str().unwrap_or_default(),
                            &strings(&src["libs"]),
                            version,
                            "violation",
                        )?))
                    }
                    (None, None) => {
                        return Err(TemplateError::NoRego(
                            "neither rego nor a code entry of engine Rego or K8sNativeValidation"
                                .into(),
                        ));
                    }
                }
            }
        };
        Ok(Template {
            name: str_at(obj, "/metadata/name").into(),
            kind: kind.into(),
            schema,
            engine,
        })
    }

    /// The template's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The constraint kind it defines.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Why the template's Rego is read in part as regorus reads it rather than as OPA does,
    /// when it is ([`Program::rewrite_note`]).
    pub fn rewrite_note(&self) -> Option<&str> {
        self.program().and_then(Program::rewrite_note)
    }

    /// The compiled Rego, when the template's violations come from Rego.
    pub fn program(&self) -> Option<&Program> {
        match &self.engine {
            Engine::Rego(p) => Some(p),
            Engine::Cel(_) => None,
        }
    }

    /// The template with its whole program alone: constraints that judge one review each
    /// evaluate all of it, sharing nothing ([`Program::without_sharing`]). For comparisons.
    pub fn without_sharing(mut self) -> Self {
        if let Engine::Rego(p) = self.engine {
            self.engine = Engine::Rego(Box::new(p.without_sharing()));
        }
        self
    }
}

/// A label selector as Gatekeeper's `match` writes it.
fn selector(v: &Value, field: &str, errors: &mut Vec<String>) -> Option<Selector> {
    if v.is_null() {
        return None;
    }
    let sel: LabelSelector = match serde_json::from_value(v.clone()) {
        Ok(s) => s,
        Err(e) => {
            errors.push(format!("spec.match.{field}: {e}"));
            return None;
        }
    };
    match Selector::new(&sel) {
        Ok(s) => Some(s),
        Err(e) => {
            errors.push(format!("spec.match.{field}: {e}"));
            None
        }
    }
}

/// A Constraint's `match`.
#[derive(Debug, Clone, Default)]
pub struct Match {
    kinds: Vec<(Vec<String>, Vec<String>)>,
    scope: String,
    namespaces: Vec<String>,
    excluded_namespaces: Vec<String>,
    label_selector: Option<Selector>,
    namespace_selector: Option<Selector>,
    name: String,
}

/// Gatekeeper's wildcard: `*x*` contains, `*x` suffix, `x*` prefix, else equality.
pub fn wildcard(pattern: &str, s: &str) -> bool {
    let (lead, trail) = (pattern.starts_with('*'), pattern.ends_with('*'));
    match (lead, trail) {
        (true, true) if pattern.len() >= 2 => s.contains(&pattern[1..pattern.len() - 1]),
        (true, true) => true,
        (true, false) => s.ends_with(&pattern[1..]),
        (false, true) => s.starts_with(&pattern[..pattern.len() - 1]),
        (false, false) => s == pattern,
    }
}

fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The fields of an object that matching reads, read once: a review is matched against every
/// constraint.
#[derive(Debug, Clone)]
struct Facts {
    group: String,
    kind: String,
    namespace: String,
    name: String,
    generate_name: String,
    is_namespace: bool,
}

impl Facts {
    fn of(obj: &Value) -> Facts {
        let api_version = str_at(obj, "/apiVersion");
        let kind = str_at(obj, "/kind");
        Facts {
            group: group_version(api_version).0.into(),
            kind: kind.into(),
            namespace: str_at(obj, "/metadata/namespace").into(),
            name: str_at(obj, "/metadata/name").into(),
            generate_name: str_at(obj, "/metadata/generateName").into(),
            is_namespace: api_version == "v1" && kind == "Namespace",
        }
    }
}

impl Match {
    /// Reads `spec.match`, collecting what is malformed into `errors`.
    fn parse(m: &Value, errors: &mut Vec<String>) -> Match {
        let kinds = m["kinds"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|k| (strings(&k["apiGroups"]), strings(&k["kinds"])))
                    .collect()
            })
            .unwrap_or_default();
        Match {
            kinds,
            scope: m["scope"].as_str().unwrap_or_default().into(),
            namespaces: strings(&m["namespaces"]),
            excluded_namespaces: strings(&m["excludedNamespaces"]),
            label_selector: selector(&m["labelSelector"], "labelSelector", errors),
            namespace_selector: selector(&m["namespaceSelector"], "namespaceSelector", errors),
            name: m["name"].as_str().unwrap_or_default().into(),
        }
    }

    /// Whether `obj` matches, given its Namespace when known (`namespace`) and the inventory's
    /// Namespaces. `Err` when it cannot be decided.
    pub fn matches(
        &self,
        obj: &Value,
        namespace: Option<&Value>,
        namespaces: &HashMap<String, Value>,
    ) -> Result<bool, String> {
        self.matches_facts(&Facts::of(obj), obj, namespace, namespaces)
    }

    /// [`Match::matches`], with the fields of `obj` that every match reads read once.
    fn matches_facts(
        &self,
        facts: &Facts,
        obj: &Value,
        namespace: Option<&Value>,
        namespaces: &HashMap<String, Value>,
    ) -> Result<bool, String> {
        let (group, kind) = (facts.group.as_str(), facts.kind.as_str());
        if !self.kinds.is_empty()
            && !self.kinds.iter().any(|(groups, kinds)| {
                (kinds.is_empty() || kinds.iter().any(|k| k == "*" || k == kind))
                    && (groups.is_empty() || groups.iter().any(|g| g == "*" || g == group))
            })
        {
            return Ok(false);
        }
        let own_ns = facts.namespace.as_str();
        let has_ns = !own_ns.is_empty() || namespace.is_some();
        match self.scope.as_str() {
            "Cluster" if !facts.is_namespace && has_ns => return Ok(false),
            "Namespaced" if facts.is_namespace || !has_ns => return Ok(false),
            _ => {}
        }
        let ns_name = if facts.is_namespace {
            facts.name.as_str()
        } else {
            namespace
                .map(|n| str_at(n, "/metadata/name"))
                .filter(|n| !n.is_empty())
                .unwrap_or(own_ns)
        };
        if !ns_name.is_empty() {
            if !self.namespaces.is_empty() && !self.namespaces.iter().any(|p| wildcard(p, ns_name))
            {
                return Ok(false);
            }
            if self
                .excluded_namespaces
                .iter()
                .any(|p| wildcard(p, ns_name))
            {
                return Ok(false);
            }
        }
        if let Some(sel) = &self.label_selector
            && !sel.matches(&labels_of(obj))
        {
            return Ok(false);
        }
        if let Some(sel) = &self.namespace_selector {
            let ns_obj = if facts.is_namespace {
                Some(obj)
            } else if let Some(n) = namespace {
                Some(n)
            } else if own_ns.is_empty() {
                None
            } else {
                match namespaces.get(own_ns) {
                    Some(n) => Some(n),
                    None => {
                        return Err(format!(
                            "namespace selector for namespace-scoped object but missing Namespace {own_ns}"
                        ));
                    }
                }
            };
            if let Some(n) = ns_obj
                && !sel.matches(&labels_of(n))
            {
                return Ok(false);
            }
        }
        if !self.name.is_empty() {
            let (name, generate) = (facts.name.as_str(), facts.generate_name.as_str());
            let prefix_like = self.name.ends_with('*');
            if !(wildcard(&self.name, name)
                || (prefix_like && !generate.is_empty() && wildcard(&self.name, generate)))
            {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// A Constraint, checked against its template.
#[derive(Debug, Clone)]
pub struct Constraint {
    kind: String,
    name: String,
    matcher: Match,
    parameters: Value,
    /// The parameters converted once for the engine.
    parameters_rego: regorus::Value,
    /// A hash of the parameters, so that equal parameter sets are found without comparing
    /// every pair.
    parameters_hash: u64,
    /// The parameters as JSON text, which [`Verdicts`] keys on.
    parameters_key: Arc<str>,
    /// The values of its template's batch's terms that read only the parameters, with the id
    /// of the batch program that reads them (`rego::Batch::parameter_terms`), when it has
    /// them.
    batch_terms: Option<(u64, regorus::Value)>,
    action: EnforcementAction,
}

impl Constraint {
    /// Reads a Constraint object of `template`'s kind and checks it against the template's
    /// schema.
    pub fn from_object(obj: &Value, template: &Template) -> Result<Constraint, ConstraintError> {
        let (group, _) = group_version(str_at(obj, "/apiVersion"));
        if group != CONSTRAINT_GROUP {
            return Err(ConstraintError::NotAConstraint(format!(
                "{}/{}",
                str_at(obj, "/apiVersion"),
                str_at(obj, "/kind")
            )));
        }
        let kind = str_at(obj, "/kind");
        if kind != template.kind {
            return Err(ConstraintError::WrongKind {
                want: template.kind.clone(),
                got: kind.into(),
            });
        }
        let mut errors = vec![];
        let parameters = obj
            .pointer("/spec/parameters")
            .cloned()
            .unwrap_or_else(|| json!({}));
        if let Some(schema) = &template.schema {
            let mut causes = vec![];
            garrison_api::structural::validate(schema, &parameters, "spec.parameters", &mut causes);
            errors.extend(
                causes
                    .into_iter()
                    .map(|c| format!("{}: {}", c.field, c.message)),
            );
        }
        let action = match obj.pointer("/spec/enforcementAction") {
            None | Some(Value::Null) => EnforcementAction::Deny,
            Some(Value::String(s)) => EnforcementAction::parse(s),
            Some(other) => {
                errors.push(format!("spec.enforcementAction: {other} is not a string"));
                EnforcementAction::Deny
            }
        };
        let m = obj.pointer("/spec/match").cloned().unwrap_or(Value::Null);
        if !m.is_null() && !m.is_object() {
            errors.push("spec.match: must be an object".into());
        }
        let matcher = Match::parse(&m, &mut errors);
        // Parameters the engine cannot hold would reach the template undefined.
        let parameters_rego = rego_of(&parameters).unwrap_or_else(|e| {
            errors.push(format!("spec.parameters: {e}"));
            regorus::Value::Undefined
        });
        if !errors.is_empty() {
            return Err(ConstraintError::Schema(errors));
        }
        let parameters_key: Arc<str> = parameters.to_string().into();
        // Evaluated here, where the agent builds its constraints, rather than at a work's
        // first check; the batch keeps them for the constraint's next version.
        // Not for a template that reads the clock, randomness or the network, which is never
        // judged in a batch.
        let batch_terms = template
            .program()
            .filter(|p| p.depends() != Depends::Unrepeatable)
            .and_then(Program::batch)
            .and_then(|b| {
                let terms = b.parameter_terms(&parameters_key, &parameters_rego)?;
                Some((b.program.id(), terms))
            });
        Ok(Constraint {
            kind: kind.into(),
            name: str_at(obj, "/metadata/name").into(),
            matcher,
            parameters_rego,
            parameters_hash: hash_of(&parameters),
            parameters_key,
            batch_terms,
            parameters,
            action,
        })
    }

    /// The constraint's kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }
    /// The constraint's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Its enforcement action.
    pub fn action(&self) -> &EnforcementAction {
        &self.action
    }
    /// Its `match`.
    pub fn matcher(&self) -> &Match {
        &self.matcher
    }
    /// Its parameters (`{}` when unset).
    pub fn parameters(&self) -> &Value {
        &self.parameters
    }
}

/// A hash of a JSON value, equal for equal values (objects' keys are hashed in order).
fn hash_of(v: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    fn feed(v: &Value, h: &mut std::collections::hash_map::DefaultHasher) {
        match v {
            Value::Null => 0u8.hash(h),
            Value::Bool(b) => (1u8, b).hash(h),
            Value::Number(n) => (2u8, n.to_string()).hash(h),
            Value::String(s) => (3u8, s).hash(h),
            Value::Array(a) => {
                (4u8, a.len()).hash(h);
                a.iter().for_each(|x| feed(x, h));
            }
            Value::Object(m) => {
                (5u8, m.len()).hash(h);
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort_unstable();
                for k in keys {
                    k.hash(h);
                    feed(&m[k], h);
                }
            }
        }
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    feed(v, &mut h);
    h.finish()
}

/// Why an object could not be turned into a review.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// An AdmissionReview without `request`.
    #[error("the AdmissionReview has no request")]
    NoRequest,
    /// An AdmissionRequest with neither object nor oldObject.
    #[error("the AdmissionReview's request has neither object nor oldObject")]
    NoObject,
    /// A DELETE without oldObject.
    #[error("a DELETE review needs oldObject")]
    DeleteWithoutOldObject,
    /// The object has no apiVersion or kind.
    #[error("the object has no {0}")]
    Missing(&'static str),
}

/// An object under review, as the AdmissionRequest the Rego sees. A review made by
/// [`Review::admission`] borrows the objects it is given (`'a`): the delivery gate reviews a
/// work's manifests where they lie, without copying them.
#[derive(Debug, Clone)]
pub struct Review<'a> {
    /// The AdmissionRequest in the engine's values: made once, for every constraint, when the
    /// first Rego constraint that matches the object is judged. So it is made on the thread
    /// that judges the review, in parallel with the other reviews of a batch, and not at all
    /// when no constraint matches (CEL reads the request as JSON). When it cannot be made
    /// (the heap ceiling), the constraints judged then are violated with the reason (a review
    /// the engine cannot see is not a pass), and the next constraint tries again.
    converted: std::sync::OnceLock<regorus::Value>,
    /// The AdmissionRequest as given, for an AdmissionReview.
    given: Option<Value>,
    operation: String,
    object: Cow<'a, Value>,
    old_object: Option<Cow<'a, Value>>,
    /// What matching reads of the object, and of the old object when there is one.
    facts: Vec<Facts>,
}

impl Review<'static> {
    /// A review of `obj`: an `admission.k8s.io` AdmissionReview as its request (a DELETE's
    /// oldObject standing in for its object), anything else as an AdmissionRequest carrying
    /// the object, its kind, name and namespace.
    pub fn of(obj: &Value) -> Result<Review<'static>, ReviewError> {
        let (group, _) = group_version(str_at(obj, "/apiVersion"));
        if group == "admission.k8s.io" && str_at(obj, "/kind") == "AdmissionReview" {
            let mut request = obj.get("request").cloned().ok_or(ReviewError::NoRequest)?;
            if !request.is_object() {
                return Err(ReviewError::NoRequest);
            }
            let present = |v: &Value| v.is_object();
            let old = request.get("oldObject").filter(|v| present(v)).cloned();
            if request["operation"] == "DELETE" {
                let old = old.clone().ok_or(ReviewError::DeleteWithoutOldObject)?;
                request["object"] = old;
            }
            let object = request
                .get("object")
                .filter(|v| present(v))
                .cloned()
                .or_else(|| old.clone())
                .ok_or(ReviewError::NoObject)?;
            for o in std::iter::once(&object).chain(old.iter()) {
                if str_at(o, "/kind").is_empty() {
                    return Err(ReviewError::Missing("kind"));
                }
            }
            return Ok(Review {
                converted: std::sync::OnceLock::new(),
                operation: str_at(&request, "/operation").into(),
                given: Some(request),
                facts: std::iter::once(&object)
                    .chain(&old)
                    .map(Facts::of)
                    .collect(),
                object: Cow::Owned(object),
                old_object: old.map(Cow::Owned),
            });
        }
        if str_at(obj, "/kind").is_empty() {
            return Err(ReviewError::Missing("kind"));
        }
        if str_at(obj, "/apiVersion").is_empty() {
            return Err(ReviewError::Missing("apiVersion"));
        }
        Ok(Review::made(Cow::Owned(obj.clone()), None, ""))
    }
}

impl<'a> Review<'a> {
    /// A review of a change as an admission webhook sees it: `operation` (`CREATE`, `UPDATE`,
    /// `DELETE`) of `obj`, with its previous version `old`.
    pub fn admission(obj: &'a Value, old: Option<&'a Value>, operation: &str) -> Review<'a> {
        Review::made(Cow::Borrowed(obj), old.map(Cow::Borrowed), operation)
    }

    fn made(object: Cow<'a, Value>, old: Option<Cow<'a, Value>>, operation: &str) -> Review<'a> {
        Review {
            converted: std::sync::OnceLock::new(),
            given: None,
            operation: operation.into(),
            facts: std::iter::once(&*object)
                .chain(old.as_deref())
                .map(Facts::of)
                .collect(),
            object,
            old_object: old,
        }
    }

    /// The AdmissionRequest (`input.review`) in the engine's values, made at the first call
    /// that can make it; why the engine cannot read it, when it cannot.
    fn engine_request(&self) -> Result<&regorus::Value, String> {
        if let Some(r) = self.converted.get() {
            return Ok(r);
        }
        let made = match &self.given {
            Some(r) => rego_of(r)?,
            None => admission_request(&self.object, self.old_object.as_deref(), &self.operation)?,
        };
        // Two threads may both make it; the first one's is kept.
        Ok(self.converted.get_or_init(|| made))
    }

    /// The AdmissionRequest (`input.review`), as JSON.
    pub fn request(&self) -> Value {
        match &self.given {
            Some(r) => r.clone(),
            None => {
                admission_request_json(&self.object, self.old_object.as_deref(), &self.operation)
            }
        }
    }

    /// Text that is equal for two reviews only when their AdmissionRequests are: the request
    /// as given, or else what it is made of (operation, object, old object), as JSON, without
    /// copying the objects. [`Verdicts`] keys on it.
    fn key_text(&self) -> Option<String> {
        match &self.given {
            // One element against three: the two forms never share a text.
            Some(r) => serde_json::to_string(&[r]),
            None => serde_json::to_string(&(&self.operation, &self.object, &self.old_object)),
        }
        .ok()
    }

    /// The object under review.
    pub fn object(&self) -> &Value {
        &self.object
    }
}

/// The fields of the AdmissionRequest Gatekeeper builds for an object, but the object's.
fn request_header(obj: &Value, operation: &str) -> Value {
    let (group, version) = group_version(str_at(obj, "/apiVersion"));
    json!({
        "kind": {"group": group, "version": version, "kind": str_at(obj, "/kind")},
        "name": str_at(obj, "/metadata/name"),
        "namespace": str_at(obj, "/metadata/namespace"),
        "operation": operation,
        "userInfo": {},
    })
}

/// The AdmissionRequest Gatekeeper builds for an object, as JSON (for CEL).
fn admission_request_json(obj: &Value, old: Option<&Value>, operation: &str) -> Value {
    let mut r = request_header(obj, operation);
    r["object"] = obj.clone();
    if let Some(o) = old {
        r["oldObject"] = o.clone();
    }
    r
}

/// The AdmissionRequest Gatekeeper builds for an object, in the engine's values. The object is
/// converted where it lies, not copied first: a review is made for every object an audit
/// covers.
fn admission_request(
    obj: &Value,
    old: Option<&Value>,
    operation: &str,
) -> Result<regorus::Value, String> {
    let mut r = rego_of(&request_header(obj, operation))?;
    let object = rego_of(obj)?;
    let old = old.map(rego_of).transpose()?;
    let m = r
        .as_object_mut()
        .map_err(|e| format!("the AdmissionRequest is not an object: {e}"))?;
    m.insert("object".into(), object);
    if let Some(o) = old {
        m.insert("oldObject".into(), o);
    }
    Ok(r)
}

/// `v` in the engine's values (`rego::from_json`), an error saying the engine cannot read it.
fn rego_of(v: &Value) -> Result<regorus::Value, String> {
    crate::rego::from_json(v).map_err(|e| format!("the engine cannot read the object: {e}"))
}

/// The objects the Rego sees as `data.inventory`. Two inventories are equal when they hold
/// the same objects.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    tree: serde_json::Map<String, Value>,
    namespaces: HashMap<String, Value>,
}

impl PartialEq for Inventory {
    fn eq(&self, other: &Self) -> bool {
        // The Namespaces are read from the tree.
        self.tree == other.tree
    }
}

impl Inventory {
    /// An empty inventory.
    pub fn new() -> Self {
        Inventory::default()
    }

    /// Adds an object under its group-version, kind and name (and namespace, when it has one).
    pub fn add(&mut self, obj: &Value) -> Result<(), String> {
        let gv = str_at(obj, "/apiVersion");
        let kind = str_at(obj, "/kind");
        let name = str_at(obj, "/metadata/name");
        if gv.is_empty() || kind.is_empty() {
            return Err("an inventory object needs apiVersion and kind".into());
        }
        let ns = str_at(obj, "/metadata/namespace");
        let path: Vec<&str> = if ns.is_empty() {
            vec!["cluster", gv, kind]
        } else {
            vec!["namespace", ns, gv, kind]
        };
        let mut node = &mut self.tree;
        for key in path {
            node = node
                .entry(key.to_string())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("inventory nodes are objects");
        }
        node.insert(name.into(), obj.clone());
        if str_at(obj, "/apiVersion") == "v1" && str_at(obj, "/kind") == "Namespace" {
            self.namespaces.insert(name.into(), obj.clone());
        }
        Ok(())
    }

    /// The Namespaces in the inventory, by name.
    pub fn namespaces(&self) -> &HashMap<String, Value> {
        &self.namespaces
    }

    /// The data document: `{"inventory": {...}}`.
    pub fn data(&self) -> Value {
        json!({"inventory": Value::Object(self.tree.clone())})
    }

    /// The data document converted once for many evaluations.
    pub fn prepared(&self) -> Data {
        Data::new(&self.data())
    }
}

/// One violation of a constraint.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// The constraint's kind.
    pub kind: String,
    /// The constraint's name.
    pub constraint: String,
    /// The message.
    pub msg: String,
    /// The details as the template gave them, in the engine's values (undefined when it gave
    /// none): read into JSON only when asked for ([`Violation::details`]), as neither the gate
    /// nor the audit reports them. Violations compare equal by these values, so details of
    /// `{}` and none, equal as JSON, differ here.
    details: regorus::Value,
    /// The constraint's enforcement action.
    pub action: EnforcementAction,
}

impl Violation {
    /// The details, as JSON (`{}` when the template gives none).
    pub fn details(&self) -> Value {
        match &self.details {
            regorus::Value::Undefined => json!({}),
            d => crate::rego::json_of(d).unwrap_or_else(|_| json!({})),
        }
    }
}

fn violation_of(c: &Constraint, msg: String, details: regorus::Value) -> Violation {
    Violation {
        kind: c.kind.clone(),
        constraint: c.name.clone(),
        msg,
        details,
        action: c.action.clone(),
    }
}

/// Whether `constraint` matches the object under review or its old version.
fn matches_review(
    constraint: &Constraint,
    review: &Review,
    inventory: &Inventory,
) -> Result<bool, String> {
    let objects = std::iter::once(&review.object).chain(review.old_object.iter());
    for (o, facts) in objects.zip(&review.facts) {
        if constraint
            .matcher
            .matches_facts(facts, o, None, inventory.namespaces())?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Judges `review` against `constraint` of `template`, with `inventory` as `data.inventory`
/// (`data` is `inventory.prepared()`, passed in so one audit converts it once). A match that
/// cannot be decided, and an evaluation that fails, are violations whose message says why, as
/// Gatekeeper reports them: nothing passes silently.
pub fn judge(
    template: &Template,
    constraint: &Constraint,
    review: &Review,
    inventory: &Inventory,
    data: &Data,
) -> Vec<Violation> {
    judge_all(template, &[constraint], review, inventory, data)
}

/// Judges `review` against several constraints of one `template`, matching each first.
pub fn judge_all(
    template: &Template,
    constraints: &[&Constraint],
    review: &Review,
    inventory: &Inventory,
    data: &Data,
) -> Vec<Violation> {
    judge_on(
        template,
        &mut Lanes::default(),
        None,
        constraints,
        review,
        inventory,
        data,
    )
}

/// The verdicts a judge looks results up in and adds to, for one review.
struct Remember<'a> {
    verdicts: &'a Verdicts,
    review: &'a Review<'a>,
    /// The review's key among the verdicts: its AdmissionRequest as text, written when the
    /// first template that matches it is judged (`None` when it cannot be written).
    key: &'a std::cell::OnceCell<Option<ReviewKey>>,
}

impl Remember<'_> {
    fn key(&self) -> Option<&ReviewKey> {
        self.key
            .get_or_init(|| Some(self.verdicts.review_key(self.review.key_text()?)))
            .as_ref()
    }
}

/// [`judge_all`] on `lane`, a lane of the template's program that is taken at the first
/// evaluation and kept there for the caller's next reviews; with `remember`, results are looked
/// up in and added to the verdicts, under the review's key (written when first needed).
fn judge_on<'t>(
    template: &'t Template,
    lanes: &mut Lanes<'t>,
    remember: Option<&Remember>,
    constraints: &[&Constraint],
    review: &Review,
    inventory: &Inventory,
    data: &Data,
) -> Vec<Violation> {
    let mut out = vec![];
    let mut matched: Vec<&Constraint> = vec![];
    for c in constraints {
        match matches_review(c, review, inventory) {
            Ok(true) => matched.push(c),
            Ok(false) => {}
            Err(e) => out.push(violation_of(c, e, regorus::Value::Undefined)),
        }
    }
    if matched.is_empty() {
        return out;
    }
    let program = match &template.engine {
        Engine::Rego(p) => p,
        Engine::Cel(code) => {
            let request = review.request();
            for c in matched {
                let constraint = json!({"apiVersion": format!("{CONSTRAINT_GROUP}/v1beta1"),
                    "kind": c.kind, "metadata": {"name": c.name},
                    "spec": {"parameters": c.parameters}});
                out.extend(
                    code.violations(&request, &constraint)
                        .into_iter()
                        .map(|msg| violation_of(c, msg, regorus::Value::Undefined)),
                );
            }
            return out;
        }
    };
    let request = match review.engine_request() {
        Ok(r) => r,
        Err(e) => {
            out.extend(
                matched
                    .iter()
                    .map(|c| violation_of(c, e.clone(), regorus::Value::Undefined)),
            );
            return out;
        }
    };
    // The input is the review and the parameters alone, so constraints with equal parameters
    // have the same result: each distinct parameter set is evaluated once, or its result is
    // taken from the verdicts remembered from earlier calls.
    let remember = remember
        .filter(|_| program.depends() != Depends::Unrepeatable)
        .and_then(|r| Some((r.verdicts, r.key()?)));
    let data_id = match program.depends() {
        Depends::InputAndData => data.id(),
        _ => 0,
    };
    // For each matched constraint, the distinct parameter set it has; for each set, its first
    // constraint, its key among the verdicts and its result, when known.
    let mut distinct: Vec<(&Constraint, ResultKey, Option<Judged>)> = vec![];
    let mut sets = vec![];
    for c in &matched {
        let same = |(p, _, _): &(&Constraint, _, _)| {
            p.parameters_hash == c.parameters_hash && p.parameters == c.parameters
        };
        let at = match distinct.iter().position(same) {
            Some(i) => i,
            None => {
                let key = (program.id(), c.parameters_key.clone(), data_id);
                distinct.push((*c, key, None));
                distinct.len() - 1
            }
        };
        sets.push(at);
    }
    // What earlier calls found, looked up at once.
    if let Some((verdicts, r)) = remember {
        let keys: Vec<&ResultKey> = distinct.iter().map(|(_, k, _)| k).collect();
        let kept = verdicts.get_all(r, &keys);
        for (d, kept) in distinct.iter_mut().zip(kept) {
            d.2 = kept.map(Ok);
        }
    }
    // What this call finds, kept at once at the end.
    let mut found_now: Vec<(ResultKey, Found)> = vec![];
    // Several sets to evaluate for one review share the work that does not depend on them;
    // not where that work may read the clock, randomness or the network, which each
    // evaluation reads anew.
    let pending: Vec<usize> = (0..distinct.len())
        .filter(|&i| distinct[i].2.is_none())
        .collect();
    let several = pending.len() > 1 && program.depends() != Depends::Unrepeatable;
    let shared = match program.shared() {
        Some(split) if several => lanes
            .shared_terms(split, request, data)
            .map(|terms| (split, terms)),
        _ => None,
    };
    let inputs = Inputs::of(request, shared.as_ref().map(|(_, terms)| terms));
    // All of them in one evaluation, where the template allows; should it fail, each is
    // evaluated on its own below.
    if let Some(batch) = program
        .batch()
        .filter(|b| several && (!b.shared || shared.is_some()))
    {
        let base = if batch.shared {
            &inputs.split
        } else {
            &inputs.whole
        };
        // A set whose terms the batch cannot read (they failed, or the constraint was built
        // for another version of the template) is judged on its own below.
        let terms_of = |c: &Constraint| match &c.batch_terms {
            _ if !batch.reads_parameter_terms() => Some(None),
            Some((id, terms)) if *id == batch.program.id() => Some(Some(terms.clone())),
            _ => None,
        };
        let (mut batched, mut sets, mut terms) = (vec![], vec![], vec![]);
        for &i in &pending {
            if let Some(t) = terms_of(distinct[i].0) {
                batched.push(i);
                sets.push(distinct[i].0.parameters_rego.clone());
                terms.extend(t);
            }
        }
        let terms = batch.reads_parameter_terms().then_some(terms);
        let found = Some(())
            .filter(|_| !batched.is_empty())
            .and_then(|_| {
                lanes
                    .eval(
                        Slot::Batch,
                        &batch.program,
                        inputs.with_batch(base, sets, terms),
                        data,
                    )
                    .ok()
            })
            .and_then(|v| read_batch(&v, batched.len(), batch.program.late()));
        for (found, &i) in found.into_iter().flatten().zip(&batched) {
            if remember.is_some() {
                found_now.push((distinct[i].1.clone(), found.clone()));
            }
            distinct[i].2 = Some(Ok(found));
        }
    }
    for (c, key, result) in &mut distinct {
        if result.is_some() {
            continue;
        }
        let mut found = None;
        if let Some((split, _)) = &shared {
            let input = inputs.with_parameters(&inputs.split, c);
            // An evaluation that fails is done again whole, so that its message is the
            // program's own (the split one's places differ).
            found = lanes
                .eval(Slot::Split, &split.program, input, data)
                .ok()
                .and_then(|v| read_found(v, split.program.late()).ok());
        }
        let found = match found {
            Some(found) => Ok(found),
            None => lanes
                .eval(
                    Slot::Whole,
                    program,
                    inputs.with_parameters(&inputs.whole, c),
                    data,
                )
                .map_err(|e| e.to_string())
                .and_then(|v| read_found(v, program.late())),
        };
        if let (Ok(found), Some(_)) = (&found, remember) {
            found_now.push((key.clone(), found.clone()));
        }
        *result = Some(found);
    }
    if let Some((verdicts, r)) = remember
        && !found_now.is_empty()
    {
        verdicts.put_all(r, found_now);
    }
    for (c, at) in matched.iter().zip(sets) {
        match &distinct[at].2 {
            Some(Ok(found)) => out.extend(
                found
                    .iter()
                    .map(|(msg, details)| violation_of(c, msg.clone(), details.clone())),
            ),
            Some(Err(e)) => out.push(violation_of(c, e.clone(), regorus::Value::Undefined)),
            None => {}
        }
    }
    out
}

/// The inputs of one review's evaluations, made once: the review alone (`whole`), and with the
/// terms its evaluations share (`split`, when there are any); each evaluation adds its
/// constraint's parameters to a copy.
struct Inputs {
    whole: regorus::Value,
    split: regorus::Value,
    parameters: regorus::Value,
}

impl Inputs {
    fn of(request: &regorus::Value, shared: Option<&regorus::Value>) -> Inputs {
        let mut whole = regorus::Value::new_object();
        if let Ok(m) = whole.as_object_mut() {
            m.insert("review".into(), request.clone());
        }
        let mut split = whole.clone();
        if let (Some(terms), Ok(m)) = (shared, split.as_object_mut()) {
            m.insert(crate::rego::SHARED.into(), terms.clone());
        }
        Inputs {
            whole,
            split,
            parameters: "parameters".into(),
        }
    }

    /// `base` with a batch's parameter sets, in order, and their terms where the batch reads
    /// them (`rego::Batch`).
    fn with_batch(
        &self,
        base: &regorus::Value,
        sets: Vec<regorus::Value>,
        terms: Option<Vec<regorus::Value>>,
    ) -> regorus::Value {
        let mut input = base.clone();
        if let Ok(m) = input.as_object_mut() {
            m.insert(crate::opa::BATCH_INPUT.into(), regorus::Value::from(sets));
            if let Some(terms) = terms {
                m.insert(crate::rego::BATCH_TERMS.into(), regorus::Value::from(terms));
            }
        }
        input
    }

    /// `base` with `constraint`'s parameters.
    fn with_parameters(&self, base: &regorus::Value, constraint: &Constraint) -> regorus::Value {
        let mut input = base.clone();
        if let Ok(m) = input.as_object_mut() {
            m.insert(self.parameters.clone(), constraint.parameters_rego.clone());
        }
        input
    }
}

/// Which of a template's programs a lane of [`Lanes`] holds.
enum Slot {
    Whole,
    Terms,
    Split,
    Batch,
}

/// The lanes of one template's programs that a thread holds from one review to the next: the
/// whole program, and the two of its split ([`crate::rego::Shared`]), each taken at its first
/// evaluation.
#[derive(Default)]
struct Lanes<'t> {
    whole: Option<Held<'t>>,
    terms: Option<Held<'t>>,
    split: Option<Held<'t>>,
    batch: Option<Held<'t>>,
}

impl<'t> Lanes<'t> {
    /// Evaluates `program`'s `violation` (or, for [`Slot::Terms`], its shared terms) on the
    /// lane of `slot`.
    fn eval(
        &mut self,
        slot: Slot,
        program: &'t Program,
        input: regorus::Value,
        data: &Data,
    ) -> Result<regorus::Value, EvalError> {
        let (lane, rule) = match slot {
            Slot::Whole => (&mut self.whole, "violation"),
            Slot::Terms => (&mut self.terms, crate::rego::SHARED),
            Slot::Split => (&mut self.split, "violation"),
            Slot::Batch => (&mut self.batch, "violation"),
        };
        // The results are read once, messages formatted then ([`read_result`]).
        match lane {
            Some(held) => held.eval_unformatted(rule, input, data),
            None => program
                .hold()
                .and_then(|held| lane.insert(held).eval_unformatted(rule, input, data)),
        }
    }

    /// The terms `review`'s evaluations share, or `None` when they could not be evaluated (the
    /// whole program then runs for each).
    fn shared_terms(
        &mut self,
        split: &'t crate::rego::Shared,
        request: &regorus::Value,
        data: &Data,
    ) -> Option<regorus::Value> {
        let mut input = regorus::Value::new_object();
        input
            .as_object_mut()
            .ok()?
            .insert("review".into(), request.clone());
        match self.eval(Slot::Terms, &split.terms, input, data) {
            Ok(terms @ regorus::Value::Object(_)) => Some(terms),
            _ => None,
        }
    }
}

/// What one evaluation of a template's `violation` rule found: each result's message and
/// details.
type Found = Arc<[(String, regorus::Value)]>;

/// What one evaluation found, or why it failed.
type Judged = Result<Found, String>;

/// One result of the `violation` rule, read: its message and details; `None` for a result
/// whose message, left to be formatted after the evaluation ([`crate::rego::late_message`],
/// where the program does so: `late`), would have been undefined; an error for a message past
/// the formatting's output limit.
fn read_result(r: &regorus::Value, late: bool) -> Result<Option<Read<'_>>, String> {
    static DETAILS: std::sync::OnceLock<regorus::Value> = std::sync::OnceLock::new();
    let details = DETAILS.get_or_init(|| "details".into());
    let (msg, late) = match &r[crate::rego::msg_key()] {
        regorus::Value::String(s) => (s.to_string(), false),
        regorus::Value::Undefined | regorus::Value::Null => (String::new(), false),
        other => match late.then(|| crate::rego::late_message(other)).flatten() {
            None => (other.to_string(), false),
            Some(Ok(Some(msg))) => (msg, true),
            Some(Ok(None)) => return Ok(None),
            Some(Err(e)) => return Err(e),
        },
    };
    Ok(Some(Read {
        msg,
        details: r[details].clone(),
        result: r,
        late,
    }))
}

/// A result of the `violation` rule as read ([`read_result`]), with the value it was read from.
struct Read<'a> {
    msg: String,
    details: regorus::Value,
    result: &'a regorus::Value,
    /// Its message was formatted after the evaluation.
    late: bool,
}

/// The results of one evaluation, read from a set in its order, kept as the set of results
/// with their messages formatted would hold them: where a message was formatted after the
/// evaluation, in the order of those results' values, and results equal once formatted as
/// one (messages formatted alike from different arguments, as OPA's set holds them).
fn settled(mut read: Vec<Read<'_>>) -> Vec<(String, regorus::Value)> {
    if read.len() > 1 && read.iter().any(|r| r.late) {
        read.sort_by(|a, b| formatted_cmp(a, b));
        read.dedup_by(|a, b| formatted_cmp(a, b).is_eq());
    }
    read.into_iter().map(|r| (r.msg, r.details)).collect()
}

/// How two results compare as values with their messages formatted: object by object, field
/// by field, a formatted message as the string it is.
fn formatted_cmp(a: &Read<'_>, b: &Read<'_>) -> std::cmp::Ordering {
    use regorus::Value as R;
    let (R::Object(x), R::Object(y)) = (a.result, b.result) else {
        return a.result.cmp(b.result);
    };
    let msg_of = |r: &Read<'_>, v: &R| -> R {
        if r.late {
            R::from(r.msg.as_str())
        } else {
            v.clone()
        }
    };
    let (mut xs, mut ys) = (x.iter(), y.iter());
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some((kx, vx)), Some((ky, vy))) => {
                let order = kx.cmp(ky).then_with(|| {
                    if kx == crate::rego::msg_key() {
                        msg_of(a, vx).cmp(&msg_of(b, vy))
                    } else {
                        vx.cmp(vy)
                    }
                });
                if order.is_ne() {
                    return order;
                }
            }
        }
    }
}

/// The results of a batch's `violation` rule (`rego::Batch`): a set of `[i, result]`, read
/// into what each of its `sets` parameter sets found, in order; `None` for anything else, and
/// for a message that cannot be formatted (each set is then judged alone, and fails so).
fn read_batch(v: &regorus::Value, sets: usize, late: bool) -> Option<Vec<Found>> {
    let mut found: Vec<Vec<Read<'_>>> = (0..sets).map(|_| vec![]).collect();
    let items: Vec<&regorus::Value> = match v {
        regorus::Value::Set(s) => s.iter().collect(),
        regorus::Value::Undefined => vec![],
        _ => return None,
    };
    for item in items {
        let [i, result] = item.as_array().ok()?.as_slice() else {
            return None;
        };
        let i = usize::try_from(i.as_u64().ok()?).ok()?;
        let read = read_result(result, late).ok()?;
        found.get_mut(i)?.extend(read);
    }
    Some(found.into_iter().map(|f| Found::from(settled(f))).collect())
}

/// The results of the `violation` rule, read: a set or array of `{"msg", "details"}`, or
/// nothing when undefined.
fn read_found(v: regorus::Value, late: bool) -> Result<Found, String> {
    fn read<'a>(
        items: impl Iterator<Item = &'a regorus::Value>,
        late: bool,
    ) -> Result<Vec<Read<'a>>, String> {
        let mut out = vec![];
        for r in items {
            out.extend(read_result(r, late)?);
        }
        Ok(out)
    }
    match &v {
        regorus::Value::Set(s) => Ok(settled(read(s.iter(), late)?).into()),
        // An array is no set: its results stay as they are, in order.
        regorus::Value::Array(a) => Ok(read(a.iter(), late)?
            .into_iter()
            .map(|r| (r.msg, r.details))
            .collect()),
        regorus::Value::Undefined => Ok(Arc::new([])),
        other => Err(EvalError::BadResult(format!("violation is not a set: {other}")).to_string()),
    }
}

/// About how many bytes `v` holds: its strings' and numbers' lengths and a word for each value,
/// for [`Verdicts`]'s budget, without writing it out.
fn approx_bytes(v: &regorus::Value) -> usize {
    use regorus::Value as R;
    16 + match v {
        R::String(s) => s.len(),
        R::Number(_) => 16,
        R::Array(a) => a.iter().map(approx_bytes).sum(),
        R::Set(s) => s.iter().map(approx_bytes).sum(),
        R::Object(o) => o
            .iter()
            .map(|(k, x)| approx_bytes(k) + approx_bytes(x))
            .sum(),
        _ => 0,
    }
}

/// Most bytes of reviews and results [`Verdicts::default`] keeps.
pub const VERDICT_BYTES: usize = 16 * 1024 * 1024;

/// Results of templates' evaluations, kept from one call of [`judge_reviews_remembered`] to the
/// next. The agent applies every work again at each resync, and the delivery gate judges it
/// each time: an unchanged manifest is then not evaluated again, nor one of a work whose other
/// manifests changed.
///
/// A result is found again only for an input equal in every byte that the template sees: the
/// AdmissionRequest and the parameters as JSON text (compared whole, not by a hash that two
/// inputs could share), the same compilation of the template, and, for a template that may read
/// `data` (its inventory), the same conversion of it. The matching is done at every call,
/// as are failed evaluations, and a template that reads the clock, randomness or the network
/// ([`Depends::Unrepeatable`]) is always evaluated. Past the byte budget, the reviews least
/// recently used are forgotten first.
pub struct Verdicts {
    budget: usize,
    hasher: std::collections::hash_map::RandomState,
    kept: std::sync::Mutex<Kept>,
    found: AtomicU64,
    evaluated: AtomicU64,
}

/// What [`Verdicts`] keeps: for each review (its AdmissionRequest as JSON text), the results of
/// the evaluations made on it, by program, parameters and data.
#[derive(Default)]
struct Kept {
    reviews: HashMap<ReviewKey, Remembered>,
    /// The reviews in the order they came, for eviction: a review used since it was queued is
    /// queued again once before it may go (a second chance).
    queue: VecDeque<ReviewKey>,
    bytes: usize,
}

/// A review's AdmissionRequest as JSON text, with its hash made once (by the verdicts' own
/// randomly keyed hasher) rather than at each of the review's lookups. Equality is the text's.
#[derive(Clone)]
pub(crate) struct ReviewKey {
    hash: u64,
    text: Arc<str>,
}

impl PartialEq for ReviewKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.text == other.text
    }
}

impl Eq for ReviewKey {}

impl std::hash::Hash for ReviewKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

type ResultKey = (u64, Arc<str>, u64);

struct Remembered {
    results: HashMap<ResultKey, Found>,
    bytes: usize,
    used: bool,
}

impl Default for Verdicts {
    fn default() -> Self {
        Verdicts::new(VERDICT_BYTES)
    }
}

impl std::fmt::Debug for Verdicts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verdicts")
            .field("budget", &self.budget)
            .field("found", &self.found())
            .field("evaluated", &self.evaluated())
            .finish()
    }
}

impl Verdicts {
    /// Verdicts kept within about `budget` bytes.
    pub fn new(budget: usize) -> Self {
        Verdicts {
            budget,
            hasher: Default::default(),
            kept: Default::default(),
            found: AtomicU64::new(0),
            evaluated: AtomicU64::new(0),
        }
    }

    /// About how many bytes the kept reviews and results take.
    pub fn kept_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// How many results were found here rather than evaluated.
    pub fn found(&self) -> u64 {
        self.found.load(Ordering::Relaxed)
    }

    /// How many evaluations were made (and kept, when they succeeded) because no result was
    /// here.
    pub fn evaluated(&self) -> u64 {
        self.evaluated.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key of the review whose AdmissionRequest is `text`.
    fn review_key(&self, text: String) -> ReviewKey {
        use std::hash::BuildHasher;
        ReviewKey {
            hash: self.hasher.hash_one(&text),
            text: text.into(),
        }
    }

    /// The results kept for `review` under each of `keys`, looked up under one lock.
    fn get_all(&self, review: &ReviewKey, keys: &[&ResultKey]) -> Vec<Option<Found>> {
        let mut kept = self.lock();
        let hits: Vec<Option<Found>> = match kept.reviews.get_mut(review) {
            Some(r) => {
                r.used = true;
                keys.iter().map(|k| r.results.get(*k).cloned()).collect()
            }
            None => vec![None; keys.len()],
        };
        drop(kept);
        let found = hits.iter().filter(|h| h.is_some()).count() as u64;
        self.found.fetch_add(found, Ordering::Relaxed);
        self.evaluated
            .fetch_add(hits.len() as u64 - found, Ordering::Relaxed);
        hits
    }

    /// Keeps `found` for `review`, under one lock, and forgets the least used reviews past the
    /// budget.
    fn put_all(&self, review: &ReviewKey, found: Vec<(ResultKey, Found)>) {
        let sized: Vec<(ResultKey, Found, usize)> = found
            .into_iter()
            .map(|(key, found)| {
                let size = 64
                    + key.1.len()
                    + found
                        .iter()
                        .map(|(m, d)| 64 + m.len() + approx_bytes(d))
                        .sum::<usize>();
                (key, found, size)
            })
            .collect();
        let mut kept = self.lock();
        let kept = &mut *kept;
        let entry = match kept.reviews.get_mut(review) {
            Some(e) => e,
            None => {
                kept.queue.push_back(review.clone());
                kept.bytes += review.text.len();
                kept.reviews.entry(review.clone()).or_insert(Remembered {
                    results: HashMap::new(),
                    bytes: review.text.len(),
                    used: false,
                })
            }
        };
        entry.results.reserve(sized.len());
        for (key, found, size) in sized {
            if entry.results.insert(key, found).is_none() {
                entry.bytes += size;
                kept.bytes += size;
            }
        }
        while kept.bytes > self.budget {
            let Some(oldest) = kept.queue.pop_front() else {
                break;
            };
            match kept.reviews.get_mut(&oldest) {
                Some(r) if r.used => {
                    r.used = false;
                    kept.queue.push_back(oldest);
                }
                Some(_) => {
                    if let Some(r) = kept.reviews.remove(&oldest) {
                        kept.bytes -= r.bytes;
                    }
                }
                None => {}
            }
        }
    }
}

/// Fewest evaluations worth a thread of their own: below this, handing a part to another thread
/// costs more than it saves.
const EVALUATIONS_PER_THREAD: usize = 64;

/// Judges every review against every template's constraints, as the delivery gate judges a
/// work's manifests: for each review in order, its violations in the order of `sets`.
///
/// A large batch is shared among the machine's cores, the calling thread and those of a pool
/// kept for the purpose each judging whole reviews. The interpreter counts references at
/// every step, and a count that two cores touch turns each step into a cache miss (two
/// threads on one engine measured no faster than one), so the templates' programs give each
/// concurrent evaluation a lane of its own. The threads share the constraints' parameters,
/// which each evaluation only reads.
pub fn judge_reviews(
    sets: &[(Template, Vec<Constraint>)],
    reviews: &[Review],
    inventory: &Inventory,
    data: &Data,
) -> Vec<Vec<Violation>> {
    judge_in(Pool::Shared, None, sets, reviews, inventory, data)
}

/// [`judge_reviews`], with the results of earlier calls kept in `verdicts` (see [`Verdicts`]):
/// a review judged before is judged again without evaluating. What is found is what
/// [`judge_reviews`] finds. The agent's delivery gate judges with it, on threads of its own,
/// so that a work's check never waits behind an audit's evaluations on [`judge_reviews`]'s.
pub fn judge_reviews_remembered(
    verdicts: &Verdicts,
    sets: &[(Template, Vec<Constraint>)],
    reviews: &[Review],
    inventory: &Inventory,
    data: &Data,
) -> Vec<Vec<Violation>> {
    judge_in(Pool::Gate, Some(verdicts), sets, reviews, inventory, data)
}

/// [`judge_reviews`] on as many threads as the batch is worth.
fn judge_in(
    pool: Pool,
    remember: Option<&Verdicts>,
    sets: &[(Template, Vec<Constraint>)],
    reviews: &[Review],
    inventory: &Inventory,
    data: &Data,
) -> Vec<Vec<Violation>> {
    let constraints: usize = sets.iter().map(|(_, cs)| cs.len()).sum();
    let threads = cores().min(reviews.len() * constraints / EVALUATIONS_PER_THREAD);
    judge_threads(pool, threads, remember, sets, reviews, inventory, data)
}

/// The machine's cores, as many as the threads that judge a batch's parts: the calling thread
/// and its pool's.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// [`judge_reviews`] in `threads` parts (at least one, at most one a review), whatever the
/// batch's size: when there is more than one, the calling thread judges the first and the
/// pool's threads (one a core but the caller's) the others.
pub fn judge_on_threads(
    threads: usize,
    sets: &[(Template, Vec<Constraint>)],
    reviews: &[Review],
    inventory: &Inventory,
    data: &Data,
) -> Vec<Vec<Violation>> {
    judge_threads(Pool::Shared, threads, None, sets, reviews, inventory, data)
}

fn judge_threads(
    pool: Pool,
    threads: usize,
    remember: Option<&Verdicts>,
    sets: &[(Template, Vec<Constraint>)],
    reviews: &[Review],
    inventory: &Inventory,
    data: &Data,
) -> Vec<Vec<Violation>> {
    let threads = threads.min(reviews.len()).max(1);
    let judge_part = |part: &[Review]| {
        let refs: Vec<(&Template, Vec<&Constraint>)> = sets
            .iter()
            .map(|(t, cs)| (t, cs.iter().collect()))
            .collect();
        let mut lanes: Vec<Lanes> = refs.iter().map(|_| Lanes::default()).collect();
        part.iter()
            .map(|r| {
                let key = std::cell::OnceCell::new();
                let remember = remember.map(|verdicts| Remember {
                    verdicts,
                    review: r,
                    key: &key,
                });
                refs.iter()
                    .zip(lanes.iter_mut())
                    .flat_map(|((t, cs), lane)| {
                        judge_on(t, lane, remember.as_ref(), cs, r, inventory, data)
                    })
                    .collect()
            })
            .collect::<Vec<Vec<Violation>>>()
    };
    let pool = if threads > 1 { judges(pool) } else { None };
    let Some(pool) = pool else {
        return judge_part(reviews);
    };
    // The parts share the constraints' values: copies made for each part cost more than the
    // reference counts they would spare. The calling thread judges the first part itself
    // while the pool's threads judge the others: handing every part to the pool left the
    // caller asleep, to be woken, and a core's worth of the pool's threads idle.
    let parts: Vec<&[Review]> = reviews.chunks(reviews.len().div_ceil(threads)).collect();
    let mut judged: Vec<Vec<Vec<Violation>>> = parts.iter().map(|_| vec![]).collect();
    let judge_part = &judge_part;
    pool.in_place_scope(|s| {
        let (first, rest) = judged.split_at_mut(1);
        for (slot, part) in rest.iter_mut().zip(&parts[1..]) {
            s.spawn(move |_| *slot = judge_part(part));
        }
        first[0] = judge_part(parts[0]);
    });
    judged.into_iter().flatten().collect()
}

/// Which threads judge a batch's parts.
#[derive(Clone, Copy)]
enum Pool {
    /// The delivery gate's ([`judge_reviews_remembered`]).
    Gate,
    /// Every other batch's: the audit's and [`judge_reviews`]'s callers'.
    Shared,
}

/// The threads that judge the parts of a batch beside the calling thread, one for each core
/// but the caller's, started once and kept: a thread started for each batch cost a third of
/// what it saved on a work's manifests (its start, an empty allocator heap, cold caches),
/// where the pool's threads stay warm from one work to the next. The gate's pool is its own,
/// so that a work's check never waits behind an audit's evaluations. `None` when the pool's
/// threads cannot be started (the process's thread limit): the batch is then judged on the
/// calling thread, and the pool is tried again with the next batch.
fn judges(pool: Pool) -> Option<&'static rayon::ThreadPool> {
    static GATE: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    static SHARED: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    let (cell, name) = match pool {
        Pool::Gate => (&GATE, "gate-judge"),
        Pool::Shared => (&SHARED, "judge"),
    };
    if let Some(p) = cell.get() {
        return Some(p);
    }
    let built = rayon::ThreadPoolBuilder::new()
        // The calling thread judges a part too (`judge_threads`). A thread more would, idle,
        // take its turns at looking for work from the threads judging.
        .num_threads(cores().saturating_sub(1).max(1))
        .thread_name(move |i| format!("{name}-{i}"))
        .build()
        .ok()?;
    // Two first batches at once may both build one; the other is dropped, its threads ending.
    Some(cell.get_or_init(|| built))
}

/// The most violations a Constraint's status lists, as Gatekeeper's audit stores.
pub const STATUS_VIOLATIONS: usize = 20;

/// The CRD Gatekeeper would make for the constraints of ConstraintTemplate `obj`: cluster-scoped
/// `<lowercase kind>.constraints.gatekeeper.sh`, served as `v1beta1`, with the template's
/// names, its schema for `spec.parameters` when it gives one, and Gatekeeper's columns.
pub fn constraint_crd(obj: &Value) -> Result<Value, String> {
    let names = obj
        .pointer("/spec/crd/spec/names")
        .ok_or("the ConstraintTemplate has no spec.crd.spec.names")?;
    let kind = names["kind"]
        .as_str()
        .filter(|k| !k.is_empty())
        .ok_or("the ConstraintTemplate names no kind")?;
    let plural = kind.to_ascii_lowercase();
    let parameters = obj
        .pointer("/spec/crd/spec/validation/openAPIV3Schema")
        .filter(|s| s.is_object())
        .cloned()
        .map(|mut s| {
            // Gatekeeper keeps what the schema does not name unless the template says otherwise.
            if s.get("x-kubernetes-preserve-unknown-fields").is_none() {
                s["x-kubernetes-preserve-unknown-fields"] = json!(true);
            }
            s
        })
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    Ok(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{CONSTRAINT_GROUP}"),
            "labels": {"gatekeeper.sh/constraint": "yes"}},
        "spec": {
            "group": CONSTRAINT_GROUP,
            "names": {"kind": kind, "listKind": format!("{kind}List"), "plural": plural,
                "singular": plural, "shortNames": names["shortNames"].as_array().cloned().unwrap_or_default(),
                "categories": ["constraint", "constraints"]},
            "scope": "Cluster",
            "versions": [{"name": "v1beta1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "enforcement-action", "type": "string", "jsonPath": ".spec.enforcementAction"},
                    {"name": "total-violations", "type": "integer", "jsonPath": ".status.totalViolations"},
                ],
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                    "metadata": {"type": "object"},
                    "spec": {"type": "object", "properties": {
                        "match": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "enforcementAction": {"type": "string"},
                        "parameters": parameters,
                    }},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                }}},
            }],
        },
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_constraint_crd_is_the_one_gatekeeper_would_make() {
        let crd = super::constraint_crd(&json!({
            "spec": {"crd": {"spec": {"names": {"kind": "K8sRequiredLabels", "shortNames": ["rl"]},
                "validation": {"openAPIV3Schema": {"type": "object",
                    "properties": {"labels": {"type": "array", "items": {"type": "string"}}}}}}}}
        }))
        .unwrap();
        assert_eq!(
            crd["metadata"]["name"],
            "k8srequiredlabels.constraints.gatekeeper.sh"
        );
        assert_eq!(crd["spec"]["scope"], "Cluster");
        assert_eq!(crd["spec"]["names"]["shortNames"][0], "rl");
        let params = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["parameters"];
        assert_eq!(params["properties"]["labels"]["type"], "array");
        assert!(super::constraint_crd(&json!({"spec": {}})).is_err());
    }

    use super::*;

    fn m(v: Value) -> Match {
        let mut errors = vec![];
        let m = Match::parse(&v, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        m
    }

    fn pod(ns: &str, labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": ns, "labels": labels}})
    }

    #[test]
    fn wildcards_are_prefix_suffix_or_contains() {
        assert!(wildcard("kube-*", "kube-system"));
        assert!(!wildcard("kube-*", "my-kube-system"));
        assert!(wildcard("*-system", "kube-system"));
        assert!(wildcard("*sys*", "kube-system"));
        assert!(wildcard("default", "default"));
        assert!(!wildcard("default", "default2"));
    }

    #[test]
    fn kinds_scope_and_namespaces_match_as_gatekeeper() {
        let none = HashMap::new();
        let p = pod("prod", json!({}));
        let kinds = m(json!({"kinds": [{"apiGroups": [""], "kinds": ["Pod"]}]}));
        assert_eq!(kinds.matches(&p, None, &none), Ok(true));
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "prod"}});
        assert_eq!(kinds.matches(&deploy, None, &none), Ok(false));
        let any_group = m(json!({"kinds": [{"apiGroups": ["*"], "kinds": ["Deployment"]}]}));
        assert_eq!(any_group.matches(&deploy, None, &none), Ok(true));
        let ns =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}});
        let cluster = m(json!({"scope": "Cluster"}));
        assert_eq!(cluster.matches(&ns, None, &none), Ok(true));
        assert_eq!(cluster.matches(&p, None, &none), Ok(false));
        let namespaced = m(json!({"scope": "Namespaced"}));
        assert_eq!(namespaced.matches(&ns, None, &none), Ok(false));
        assert_eq!(namespaced.matches(&p, None, &none), Ok(true));
        let excluded = m(json!({"excludedNamespaces": ["kube-*"]}));
        assert_eq!(excluded.matches(&ns, None, &none), Ok(false));
        assert_eq!(excluded.matches(&p, None, &none), Ok(true));
        // A namespaced kind without a namespace matches a namespaces list, as Gatekeeper's.
        let only = m(json!({"namespaces": ["default"]}));
        assert_eq!(only.matches(&pod("", json!({})), None, &none), Ok(true));
        assert_eq!(only.matches(&p, None, &none), Ok(false));
    }

    #[test]
    fn selectors_and_names_match_and_an_unknown_namespace_cannot_be_decided() {
        let p = pod("prod", json!({"app": "web"}));
        let none = HashMap::new();
        let labels = m(json!({"labelSelector": {"matchLabels": {"app": "web"}}}));
        assert_eq!(labels.matches(&p, None, &none), Ok(true));
        assert_eq!(
            labels.matches(&pod("prod", json!({})), None, &none),
            Ok(false)
        );
        let nss = m(json!({"namespaceSelector": {"matchLabels": {"env": "prod"}}}));
        let err = nss.matches(&p, None, &none).unwrap_err();
        assert!(err.contains("missing Namespace prod"), "{err}");
        let mut known = HashMap::new();
        known.insert(
            "prod".to_string(),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod", "labels": {"env": "prod"}}}),
        );
        assert_eq!(nss.matches(&p, None, &known), Ok(true));
        let name = m(json!({"name": "web-*"}));
        assert_eq!(name.matches(&p, None, &none), Ok(true));
        assert_eq!(m(json!({"name": "db"})).matches(&p, None, &none), Ok(false));
    }

    fn template() -> Template {
        Template::from_object(&json!({
            "apiVersion": "templates.gatekeeper.sh/v1", "kind": "ConstraintTemplate",
            "metadata": {"name": "k8srequiredlabels"},
            "spec": {"crd": {"spec": {"names": {"kind": "K8sRequiredLabels"},
                "validation": {"openAPIV3Schema": {"type": "object", "properties": {
                    "labels": {"type": "array", "items": {"type": "string"}}}}}}},
              "targets": [{"target": TARGET, "rego": "package k8srequiredlabels\nviolation[{\"msg\": msg}] {\n  some l\n  l := input.parameters.labels[_]\n  not input.review.object.metadata.labels[l]\n  msg := sprintf(\"missing label %v\", [l])\n}"}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_constraint_is_checked_against_its_template_and_judges_reviews() {
        let t = template();
        let c = Constraint::from_object(
            &json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sRequiredLabels",
                "metadata": {"name": "need-owner"},
                "spec": {"match": {"kinds": [{"apiGroups": [""], "kinds": ["Pod"]}]},
                         "parameters": {"labels": ["owner"]}}}),
            &t,
        )
        .unwrap();
        assert_eq!(c.action(), &EnforcementAction::Deny);
        let inv = Inventory::new();
        let data = inv.prepared();
        let v = judge(
            &t,
            &c,
            &Review::of(&pod("a", json!({}))).unwrap(),
            &inv,
            &data,
        );
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].msg, "missing label owner");
        let ok = pod("a", json!({"owner": "me"}));
        assert!(judge(&t, &c, &Review::of(&ok).unwrap(), &inv, &data).is_empty());
        // Parameters of the wrong type are a schema error.
        let bad = Constraint::from_object(
            &json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sRequiredLabels",
                "metadata": {"name": "bad"}, "spec": {"parameters": {"labels": "owner"}}}),
            &t,
        )
        .unwrap_err();
        assert!(matches!(bad, ConstraintError::Schema(_)), "{bad}");
        let wrong = Constraint::from_object(
            &json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "Other",
                "metadata": {"name": "x"}}),
            &t,
        )
        .unwrap_err();
        assert!(matches!(wrong, ConstraintError::WrongKind { .. }));
    }

    /// With `if` and no `contains`, OPA reads `violation[{"msg": msg}] if { ... }` as a rule of
    /// one value keyed by the object and gives it no name, so Gatekeeper refuses the template
    /// ("missing required rules: [violation]"). regorus refused to say whether the template
    /// declares `violation` ("not a valid ref") for an object key, and took a variable key,
    /// whose object result then failed every evaluation. Each head OPA leaves unnamed is
    /// refused when the template is read, with Gatekeeper's words and the fix; each it names
    /// is taken.
    #[test]
    fn a_violation_rule_that_opa_leaves_unnamed_is_refused_as_gatekeeper_refuses_it() {
        let body = "{\n  msg := sprintf(\"no owner on %v\", [input.review.object.metadata.name])\n  not input.review.object.metadata.labels.owner\n}\n";
        let template = |rego: String, libs: Vec<String>| {
            json!({"apiVersion": "templates.gatekeeper.sh/v1", "kind": "ConstraintTemplate",
                "metadata": {"name": "k8sowner"},
                "spec": {"crd": {"spec": {"names": {"kind": "K8sOwner"}}},
                  "targets": [{"target": TARGET, "rego": rego, "libs": libs}]}})
        };
        let v0 = |import: &str, heads: &[&str]| {
            let rules: Vec<String> = heads.iter().map(|h| format!("{h} if {body}")).collect();
            template(
                format!("package k8sowner\n{import}\n\n{}", rules.join("\n")),
                vec![],
            )
        };
        let v1 = |head: &str| {
            json!({"apiVersion": "templates.gatekeeper.sh/v1", "kind": "ConstraintTemplate",
                "metadata": {"name": "k8sowner"},
                "spec": {"crd": {"spec": {"names": {"kind": "K8sOwner"}}},
                  "targets": [{"target": TARGET, "code": [{"engine": "Rego", "source": {
                    "version": "v1", "rego": format!("package k8sowner\n\n{head} if {body}")}}]}]}})
        };
        let refused = [
            (v0("import rego.v1", &[r#"violation[{"msg": msg}]"#]), 4),
            (
                v0("import future.keywords.if", &[r#"violation[{"msg": msg}]"#]),
                4,
            ),
            (v0("import future.keywords", &["violation[msg]"]), 4),
            (v0("import rego.v1", &["violation.owner"]), 4),
            (
                v0(
                    "import rego.v1",
                    &[r#"violation[msg] contains {"msg": msg}"#],
                ),
                4,
            ),
            // A rule of one value beside a set rule of the same name: OPA fails the mix.
            (
                v0(
                    "import rego.v1",
                    &[
                        r#"violation contains {"msg": msg}"#,
                        r#"violation[{"msg": msg}]"#,
                    ],
                ),
                9,
            ),
            (v1(r#"violation[{"msg": msg}]"#), 3),
            (v1("violation[msg]"), 3),
        ];
        for (t, line) in refused {
            let err = Template::from_object(&t).unwrap_err().to_string();
            assert!(
                err.contains(&format!(
                    "template:{line}:1: missing required rules: [violation]"
                )) && err.contains(r#"write `violation contains {"msg": msg} if { ... }`"#),
                "{err}"
            );
        }
        // Heads OPA names compile: a set rule, and a reference of two terms with a value.
        for heads in [
            &[r#"violation contains {"msg": msg}"#][..],
            &[r#"violation[{"msg": msg}] = true"#],
            &[r#"violation[{"msg": msg}] := true"#],
        ] {
            Template::from_object(&v0("import rego.v1", heads)).unwrap();
        }
        // A library may key a rule by an object: Gatekeeper looks at the template's module.
        let lib = "package lib.owners\nimport rego.v1\n\nviolation[{\"a\": x}] if { x := 1 }\n";
        Template::from_object(&template(
            format!("package k8sowner\nimport rego.v1\nimport data.lib.owners\n\nviolation contains {{\"msg\": msg}} if {body}"),
            vec![lib.into()],
        ))
        .unwrap();
        // With `contains`, the template reports.
        let t = Template::from_object(&v0(
            "import rego.v1",
            &[r#"violation contains {"msg": msg}"#],
        ))
        .unwrap();
        assert_eq!(
            messages(&t, &bare(&t, "owned"), json!({})),
            ["no owner on web-1"]
        );
        // Other programs are read as OPA reads them: a sigstore policy's `isCompliant` so
        // written compiles (its object is then no verdict of compliance).
        crate::rego::Program::compile(
            "package sigstore\nimport rego.v1\nisCompliant[x] if { x := 1 }\n",
            &[],
            RegoVersion::V0,
            "isCompliant",
        )
        .unwrap();
    }

    /// A helper keyed by an object (`owners[{"team": t}] if { ... }`) is a rule OPA compiles
    /// and Gatekeeper takes, though regorus cannot read its head as a path: the template
    /// compiles, and Rego v0's deprecated built-ins it calls are still provided.
    #[test]
    fn a_helper_keyed_by_an_object_compiles_and_keeps_the_deprecated_builtins() {
        let t = rego_template(
            "K8sTeams",
            "package k8steams\nimport future.keywords.if\n\nowners[{\"team\": t}] if {\n  t := input.review.object.metadata.labels.team\n}\n\nviolation[{\"msg\": \"no team\"}] {\n  not any([true | owners[k]; k.team != \"\"])\n}\n",
        );
        let c = bare(&t, "teams");
        assert_eq!(messages(&t, &c, json!({})), ["no team"]);
        assert!(messages(&t, &c, json!({"team": "search"})).is_empty());
    }

    #[test]
    fn several_constraints_judged_together_give_what_each_gives_alone() {
        let t = template();
        let cs: Vec<Constraint> = ["owner", "team", "owner"]
            .iter()
            .enumerate()
            .map(|(i, l)| {
                Constraint::from_object(
                    &json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sRequiredLabels",
                        "metadata": {"name": format!("c{i}")},
                        "spec": {"parameters": {"labels": [l]}}}),
                    &t,
                )
                .unwrap()
            })
            .collect();
        let inv = Inventory::new();
        let data = inv.prepared();
        let review = Review::of(&pod("a", json!({"team": "x"}))).unwrap();
        let refs: Vec<&Constraint> = cs.iter().collect();
        let mut together: Vec<(String, String)> = judge_all(&t, &refs, &review, &inv, &data)
            .into_iter()
            .map(|v| (v.constraint, v.msg))
            .collect();
        let mut alone: Vec<(String, String)> = cs
            .iter()
            .flat_map(|c| judge(&t, c, &review, &inv, &data))
            .map(|v| (v.constraint, v.msg))
            .collect();
        together.sort();
        alone.sort();
        assert_eq!(together, alone);
        assert_eq!(
            together,
            vec![
                ("c0".to_string(), "missing label owner".to_string()),
                ("c2".to_string(), "missing label owner".to_string())
            ]
        );
    }

    /// Judges each of `labels` (a Pod's labels) against every constraint of `t` (one per
    /// entry of `params`, as `spec.parameters`) together, and against each alone: what the
    /// constraints find together, which must be what they find alone.
    fn together_and_alone(t: &Template, params: &[Value], labels: &[Value]) -> Vec<Vec<String>> {
        let cs: Vec<Constraint> = params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Constraint::from_object(
                    &json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": t.kind(),
                        "metadata": {"name": format!("c{i}")}, "spec": {"parameters": p}}),
                    t,
                )
                .unwrap()
            })
            .collect();
        let refs: Vec<&Constraint> = cs.iter().collect();
        let (inv, data) = (Inventory::new(), Data::empty());
        let said = |vs: Vec<Violation>| -> Vec<String> {
            vs.into_iter()
                .map(|v| format!("{}: {}", v.constraint, v.msg))
                .collect()
        };
        labels
            .iter()
            .map(|l| {
                let review = Review::of(&pod("a", l.clone())).unwrap();
                let together = said(judge_all(t, &refs, &review, &inv, &data));
                let alone = said(
                    cs.iter()
                        .flat_map(|c| judge(t, c, &review, &inv, &data))
                        .collect(),
                );
                assert_eq!(together, alone, "labels {l}");
                together
            })
            .collect()
    }

    /// Messages formatted after the evaluation (`rego::late_message`) are read as OPA's set of
    /// formatted results holds them, whether judged together (the batch) or alone: `1` and
    /// `"1"` print alike and are one violation, in the order of the messages.
    #[test]
    fn messages_formatted_alike_are_one_violation_together_and_alone() {
        let t = rego_template(
            "K8sValues",
            "package k\nviolation[{\"msg\": msg}] {\n  v := input.review.object.metadata.labels[_]\n  x := [v, to_number(v)][_]\n  msg := sprintf(\"%v: value %v\", [input.parameters.p, x])\n}",
        );
        let program = t.program().unwrap();
        assert!(program.batch().is_some() && program.on_machine());
        let got = together_and_alone(
            &t,
            &[json!({"p": "b"}), json!({"p": "a"})],
            &[json!({"x": "2", "y": "1"})],
        );
        assert_eq!(
            got,
            [[
                "c0: b: value 1",
                "c0: b: value 2",
                "c1: a: value 1",
                "c1: a: value 2"
            ]]
        );
    }

    #[test]
    fn constraints_of_one_template_share_what_their_parameters_cannot_change() {
        let shared = |t: &Template| t.program().and_then(Program::shared).is_some();
        let batched = |t: &Template| t.program().and_then(Program::batch).is_some();
        // The labels a Pod has do not depend on the parameters: one evaluation serves all.
        let required = rego_template(
            "K8sRequiredLabels",
            "package k8srequiredlabels\nviolation[{\"msg\": msg}] {\n  provided := {label | input.review.object.metadata.labels[label]}\n  required := {label | label := input.parameters.labels[_]}\n  missing := required - provided\n  count(missing) > 0\n  msg := sprintf(\"you must provide labels: %v\", [missing])\n}",
        );
        assert!(shared(&required) && batched(&required));
        // The batch itself answers, on the machine (the fallback would hide a batch that
        // always failed): two sets, their pairs read back per set.
        {
            let program = required.program().unwrap();
            let (split, batch) = (program.shared().unwrap(), program.batch().unwrap());
            assert!(batch.shared && batch.program.on_machine());
            let review = Review::of(&pod("a", json!({"a": "1"}))).unwrap();
            let data = Data::empty();
            let mut input = regorus::Value::new_object();
            input
                .as_object_mut()
                .unwrap()
                .insert("review".into(), review.engine_request().unwrap().clone());
            let terms = split
                .terms
                .eval_value(crate::rego::SHARED, input.clone(), &data)
                .unwrap();
            // The required labels, which only the parameters give, are read from the input:
            // evaluated once per parameter set, not once per review.
            assert!(batch.reads_parameter_terms());
            let sets = [json!({"labels": ["a"]}), json!({"labels": ["b", "c"]})];
            let sets: Vec<regorus::Value> = sets.iter().map(|p| rego_of(p).unwrap()).collect();
            let parameter_terms: Vec<regorus::Value> = sets
                .iter()
                .map(|p| batch.parameter_terms(&p.to_string().into(), p).unwrap())
                .collect();
            let m = input.as_object_mut().unwrap();
            m.insert(crate::rego::SHARED.into(), terms);
            m.insert(crate::rego::BATCH_INPUT.into(), regorus::Value::from(sets));
            m.insert(
                crate::rego::BATCH_TERMS.into(),
                regorus::Value::from(parameter_terms),
            );
            let out = batch.program.eval_value("violation", input, &data).unwrap();
            let found = read_batch(&out, 2, batch.program.late()).unwrap();
            let msgs: Vec<Vec<&str>> = found
                .iter()
                .map(|f| f.iter().map(|(m, _)| m.as_str()).collect())
                .collect();
            assert_eq!(
                msgs,
                vec![vec![], vec!["you must provide labels: {\"b\", \"c\"}"]]
            );
        }
        let params = [
            json!({"labels": ["a"]}),
            json!({"labels": ["b", "a"]}),
            json!({"labels": []}),
        ];
        let pods = [json!({}), json!({"a": "1"}), json!({"a": "1", "b": "2"})];
        assert_eq!(
            together_and_alone(&required, &params, &pods),
            vec![
                vec![
                    "c0: you must provide labels: {\"a\"}".to_string(),
                    "c1: you must provide labels: {\"a\", \"b\"}".into()
                ],
                vec!["c1: you must provide labels: {\"b\"}".to_string()],
                vec![],
            ]
        );
        // Two definitions, a negation and a function given the parameters, batched on the
        // machine.
        let prefixed = rego_template(
            "K8sPrefixed",
            "package k8sprefixed\nhas_prefix(v, p) { startswith(v, p.prefix) }\nviolation[{\"msg\": \"missing\"}] {\n  not input.review.object.metadata.labels[input.parameters.key]\n}\nviolation[{\"msg\": msg}] {\n  v := input.review.object.metadata.labels[input.parameters.key]\n  not has_prefix(v, input.parameters)\n  msg := sprintf(\"bad %v\", [v])\n}",
        );
        assert!(batched(&prefixed));
        assert_eq!(
            together_and_alone(
                &prefixed,
                &[
                    json!({"key": "a", "prefix": "x"}),
                    json!({"key": "b", "prefix": "y"})
                ],
                &[json!({"a": "xy"}), json!({"a": "zz", "b": "yy"}), json!({})],
            ),
            vec![
                vec!["c1: missing".to_string()],
                vec!["c0: bad zz".to_string()],
                vec!["c0: missing".to_string(), "c1: missing".into()],
            ]
        );
        // Gatekeeper's library template: two definitions, and a function given the parameters.
        let library = rego_template(
            "K8sRequiredLabelsLibrary",
            "package k8srequiredlabelslibrary\nget_message(parameters, _default) := _default {\n  not parameters.message\n}\nget_message(parameters, _) := parameters.message\nviolation[{\"msg\": msg, \"details\": {\"missing_labels\": missing}}] {\n  provided := {label | input.review.object.metadata.labels[label]}\n  required := {label | label := input.parameters.labels[_].key}\n  missing := required - provided\n  count(missing) > 0\n  def_msg := sprintf(\"you must provide labels: %v\", [missing])\n  msg := get_message(input.parameters, def_msg)\n}\nviolation[{\"msg\": msg}] {\n  value := input.review.object.metadata.labels[key]\n  expected := input.parameters.labels[_]\n  expected.key == key\n  expected.allowedRegex != \"\"\n  not regex.match(expected.allowedRegex, value)\n  def_msg := sprintf(\"Label <%v: %v> does not satisfy allowed regex: %v\", [key, value, expected.allowedRegex])\n  msg := get_message(input.parameters, def_msg)\n}",
        );
        // On the interpreter (`get_message`'s two definitions may conflict): not batched.
        assert!(shared(&library) && !batched(&library));
        let params = [
            json!({"labels": [{"key": "a", "allowedRegex": "^[0-9]+$"}]}),
            json!({"labels": [{"key": "b"}], "message": "b please"}),
            json!({"labels": [{"key": "a"}, {"key": "b"}]}),
        ];
        let pods = [json!({"a": "x"}), json!({"a": "1", "b": "2"}), json!({})];
        assert_eq!(
            together_and_alone(&library, &params, &pods),
            vec![
                vec![
                    "c0: Label <a: x> does not satisfy allowed regex: ^[0-9]+$".to_string(),
                    "c1: b please".into(),
                    "c2: you must provide labels: {\"b\"}".into()
                ],
                vec![],
                vec![
                    "c0: you must provide labels: {\"a\"}".to_string(),
                    "c1: b please".into(),
                    "c2: you must provide labels: {\"a\", \"b\"}".into()
                ],
            ]
        );
        // A constraint whose parameters leave a key undefined gives no element, and takes
        // none from the others (on the interpreter, where an undefined key dropped the
        // rule's elements, a batch would have let every constraint's go).
        let contact = rego_template(
            "K8sContact",
            "package k8scontact\nimport future.keywords.in\nviolation[{\"msg\": msg, \"details\": {\"contact\": p.contact}}] {\n  p := input.parameters\n  \"x\" in [\"x\"]\n  l := input.review.object.metadata.labels[_]\n  msg := sprintf(\"label value %v\", [l])\n}",
        );
        // On the interpreter (the `in` operator) there is no batch, whose key an undefined
        // part would make drop the other sets' results there.
        assert!(!contact.program().unwrap().on_machine() && !batched(&contact));
        let on_machine = rego_template(
            "K8sContactOnMachine",
            "package k8scontactonmachine\nviolation[{\"msg\": msg, \"details\": {\"contact\": p.contact}}] {\n  p := input.parameters\n  l := input.review.object.metadata.labels[_]\n  msg := sprintf(\"label value %v\", [l])\n}",
        );
        assert!(on_machine.program().unwrap().on_machine() && batched(&on_machine));
        // The same on the interpreter with its key over two lines (where the interpreter's
        // own key binding leaves it in the head): no batch either.
        let across = rego_template(
            "K8sContactAcross",
            "package k8scontactacross\nimport future.keywords.in\nviolation[{\"msg\": msg,\n  \"details\": {\"contact\": p.contact}}] {\n  p := input.parameters\n  \"x\" in [\"x\"]\n  l := input.review.object.metadata.labels[_]\n  msg := sprintf(\"label value %v\", [l])\n}",
        );
        assert!(!batched(&across));
        // The same on the machine with a loop over the review before the parameters are read:
        // the batch iterates over the sets inside that loop (`opa::iteration_point`).
        let after_loop = rego_template(
            "K8sContactAfterLoop",
            "package k8scontactafterloop\nviolation[{\"msg\": msg, \"details\": {\"contact\": p.contact}}] {\n  l := input.review.object.metadata.labels[_]\n  p := input.parameters\n  msg := sprintf(\"label value %v\", [l])\n}",
        );
        assert!(after_loop.program().unwrap().on_machine() && batched(&after_loop));
        for t in [&on_machine, &after_loop] {
            let judged = together_and_alone(
                t,
                &[
                    json!({"contact": "a@x"}),
                    json!({}),
                    json!({"contact": "b@x"}),
                ],
                &[json!({"a": "1", "b": "2"}), json!({})],
            );
            assert_eq!(
                judged,
                vec![
                    vec![
                        "c0: label value 1".to_string(),
                        "c0: label value 2".into(),
                        "c2: label value 1".into(),
                        "c2: label value 2".into()
                    ],
                    vec![]
                ],
                "{}",
                t.kind()
            );
        }
        for t in [&contact, &across, &on_machine, &after_loop] {
            for params in [
                [json!({"contact": "sec@x"}), json!({})],
                [json!({}), json!({"contact": "sec@x"})],
            ] {
                let judged = together_and_alone(t, &params, &[json!({"a": "1"})]);
                let at = params
                    .iter()
                    .position(|p| p.get("contact").is_some())
                    .unwrap();
                assert_eq!(
                    judged,
                    vec![vec![format!("c{at}: label value 1")]],
                    "{}",
                    t.kind()
                );
            }
        }
        // Comprehensions that read the parameters through the package's rules or functions,
        // or a variable of the body around them, are evaluated for each constraint. Shared,
        // they would be evaluated without parameters, and find no banned label: each of these
        // templates would then let every Pod through.
        let banned = [json!({"label": "a"}), json!({"label": "b"})];
        let pods = [json!({"a": "1"}), json!({"b": "1"}), json!({"c": "1"})];
        let want = vec![
            vec!["c0: label a is banned".to_string()],
            vec!["c1: label b is banned".to_string()],
            vec![],
        ];
        for (kind, rego) in [
            (
                "K8sBannedByRule",
                "package k8sbannedbyrule\nbanned := input.parameters.label\nviolation[{\"msg\": msg}] {\n  found := {k | input.review.object.metadata.labels[k]; k == banned}\n  count(found) > 0\n  msg := sprintf(\"label %v is banned\", [banned])\n}",
            ),
            (
                "K8sBannedByFunction",
                "package k8sbannedbyfunction\nis_banned(k) { k == input.parameters.label }\nviolation[{\"msg\": msg}] {\n  found := {k | input.review.object.metadata.labels[k]; is_banned(k)}\n  count(found) > 0\n  msg := sprintf(\"label %v is banned\", [input.parameters.label])\n}",
            ),
            (
                "K8sBannedByVariable",
                "package k8sbannedbyvariable\nviolation[{\"msg\": msg}] {\n  banned := input.parameters.label\n  found := {k | input.review.object.metadata.labels[k]; k == banned}\n  count(found) > 0\n  msg := sprintf(\"label %v is banned\", [banned])\n}",
            ),
            (
                "K8sBannedByImport",
                "package k8sbannedbyimport\nimport input.parameters as params\nviolation[{\"msg\": msg}] {\n  found := {k | input.review.object.metadata.labels[k]; k == params.label}\n  count(found) > 0\n  msg := sprintf(\"label %v is banned\", [params.label])\n}",
            ),
        ] {
            let t = rego_template(kind, rego);
            assert!(!shared(&t), "{kind}");
            // Batched only where the rule's own definitions alone read the parameters.
            assert_eq!(batched(&t), kind == "K8sBannedByVariable", "{kind}");
            assert_eq!(together_and_alone(&t, &banned, &pods), want, "{kind}");
        }
        // A comprehension's name that the body around it binds is that body's variable: here
        // `k` is the required label, and the comprehension holds it when the Pod has it.
        // Evaluated apart, `k` would be any label, and a Pod with any label would pass.
        let captured = rego_template(
            "K8sRequiredByCapture",
            "package k8srequiredbycapture\nviolation[{\"msg\": msg}] {\n  k := input.parameters.label\n  found := {k | input.review.object.metadata.labels[k]}\n  count(found) == 0\n  msg := sprintf(\"label %v is required\", [k])\n}",
        );
        assert!(!shared(&captured) && batched(&captured));
        assert_eq!(
            together_and_alone(&captured, &banned, &pods),
            vec![
                vec!["c1: label b is required".to_string()],
                vec!["c0: label a is required".to_string()],
                vec![
                    "c0: label a is required".to_string(),
                    "c1: label b is required".into()
                ],
            ]
        );
        // The same through a library imported by a bracketed path, whose name is the string.
        let bracketed = Template::from_object(&json!({
            "apiVersion": "templates.gatekeeper.sh/v1", "kind": "ConstraintTemplate",
            "metadata": {"name": "k8sbannedbylibrary"},
            "spec": {"crd": {"spec": {"names": {"kind": "K8sBannedByLibrary"}}},
              "targets": [{"target": TARGET,
                "rego": "package k8sbannedbylibrary\nimport data.lib[\"helpers\"]\nviolation[{\"msg\": msg}] {\n  found := {k | input.review.object.metadata.labels[k]; helpers.banned(k)}\n  count(found) > 0\n  msg := sprintf(\"label %v is banned\", [input.parameters.label])\n}",
                "libs": ["package lib.helpers\nbanned(k) { k == input.parameters.label }"]}]}
        }))
        .unwrap();
        assert!(!shared(&bracketed) && !batched(&bracketed));
        assert_eq!(together_and_alone(&bracketed, &banned, &pods), want);
        // A variable of `every` (or `some`), which the syntax tree gives as a span, is the
        // enclosing scope's too: `l` here is each required label.
        let every = rego_template(
            "K8sRequiredByEvery",
            "package k8srequiredbyevery\nimport future.keywords.every\nviolation[{\"msg\": \"missing a required label\"}] { not has_all }\nhas_all {\n  every l in input.parameters.labels {\n    count({v | v := input.review.object.metadata.labels[l]}) > 0\n  }\n}",
        );
        assert!(!shared(&every) && !batched(&every));
        let some = rego_template(
            "K8sRequiredBySome",
            "package k8srequiredbysome\nviolation[{\"msg\": \"missing a required label\"}] {\n  some l\n  l = input.parameters.labels[_]\n  count({v | v := input.review.object.metadata.labels[l]}) == 0\n}",
        );
        assert!(!shared(&some) && batched(&some));
        let required = [json!({"labels": ["a"]}), json!({"labels": ["b"]})];
        for t in [&every, &some] {
            assert_eq!(
                together_and_alone(t, &required, &pods),
                vec![
                    vec!["c1: missing a required label".to_string()],
                    vec!["c0: missing a required label".to_string()],
                    vec![
                        "c0: missing a required label".to_string(),
                        "c1: missing a required label".into()
                    ],
                ],
                "{}",
                t.kind()
            );
        }
        // Names that reach rules reading the parameters by another way: a package under
        // `inventory` is `data.inventory` to itself; a package written with brackets is the
        // dotted one; regorus resolves `helpers.banned` in a package nested under the
        // template's; and a variable named `data` hides the data document.
        let with_library = |kind: &str, package: &str, rego: &str, lib: &str| {
            Template::from_object(&json!({
                "apiVersion": "templates.gatekeeper.sh/v1", "kind": "ConstraintTemplate",
                "metadata": {"name": kind.to_lowercase()},
                "spec": {"crd": {"spec": {"names": {"kind": kind}}},
                  "targets": [{"target": TARGET,
                    "rego": format!("package {package}\n{rego}"),
                    "libs": [lib]}]}
            }))
            .unwrap()
        };
        let count_banned = "violation[{\"msg\": msg}] {\n  found := {k | input.review.object.metadata.labels[k]; FIND}\n  count(found) > 0\n  msg := sprintf(\"label %v is banned\", [input.parameters.label])\n}";
        for (kind, package, find, lib) in [
            (
                "K8sBannedInInventory",
                "inventory.k8sbanned",
                "k == data.inventory.k8sbanned.banned",
                "package lib.unused\nx := 1",
            ),
            (
                "K8sBannedBracketPackage",
                "lib.k8sb",
                "banned(k)",
                "package lib[\"k8sb\"]\nbanned(k) { k == input.parameters.label }",
            ),
            (
                "K8sBannedNestedPackage",
                "lib",
                "helpers.banned(k)",
                "package lib.helpers\nbanned(k) { k == input.parameters.label }",
            ),
        ] {
            let rego = count_banned.replace("FIND", find);
            let rego = if kind == "K8sBannedInInventory" {
                format!("banned := input.parameters.label\n{rego}")
            } else {
                rego
            };
            let t = with_library(kind, package, &rego, lib);
            assert!(!shared(&t) && !batched(&t), "{kind}");
            assert_eq!(together_and_alone(&t, &banned, &pods), want, "{kind}");
        }
        let rebound = rego_template(
            "K8sBannedByDataVariable",
            "package k8sbannedbydatavariable\nimport future.keywords.every\nviolation[{\"msg\": msg}] {\n  not clean\n  msg := sprintf(\"label %v is banned\", [input.parameters.label])\n}\nclean {\n  every data in [{\"inventory\": {\"banned\": input.parameters.label}}] {\n    count({k | input.review.object.metadata.labels[k]; k == data.inventory.banned}) == 0\n  }\n}",
        );
        assert!(!shared(&rebound) && !batched(&rebound));
        assert_eq!(together_and_alone(&rebound, &banned, &pods), want);
        // A template that may see the input whole, or change it with `with`, is not split.
        for (kind, rego) in [
            (
                "K8sWholeInput",
                "package k8swholeinput\nviolation[{\"msg\": msg}] {\n  keys := {k | input[k]}\n  found := {k | input.review.object.metadata.labels[k]; k == input.parameters.label}\n  count(found) > 0\n  msg := sprintf(\"banned, input has %v\", [keys])\n}",
            ),
            (
                "K8sWith",
                "package k8swith\nlabels := {k | input.review.object.metadata.labels[k]}\nviolation[{\"msg\": \"label a is banned\"}] {\n  found := {k | input.review.object.metadata.labels[k]}\n  labels[input.parameters.label] with input.review.object.metadata.labels as {\"a\": \"1\"}\n  found[input.parameters.label]\n}",
            ),
        ] {
            let t = rego_template(kind, rego);
            assert!(!shared(&t) && !batched(&t), "{kind}");
            together_and_alone(&t, &banned, &pods);
        }
        // A shared term whose evaluation fails (an object comprehension with two values for a
        // key) leaves each constraint to the whole program, which reports the failure.
        let conflict = rego_template(
            "K8sConflictingKeys",
            "package k8sconflictingkeys\nviolation[{\"msg\": msg}] {\n  by := {\"k\": v | v := input.review.object.metadata.labels[_]}\n  by.k == input.parameters.label\n  msg := \"matched\"\n}",
        );
        assert!(shared(&conflict) && batched(&conflict));
        let judged = together_and_alone(
            &conflict,
            &banned,
            &[json!({"x": "a", "y": "b"}), json!({"x": "a"})],
        );
        // The failure is reported where the author wrote it, not where the split put it.
        assert_eq!(judged[0].len(), 2);
        assert!(
            judged[0]
                .iter()
                .all(|m| m.contains("template:3:11") && m.contains("generated multiple times")),
            "{judged:?}"
        );
        assert_eq!(judged[1], vec!["c0: matched".to_string()]);
    }

    #[test]
    fn a_batch_gives_each_review_its_own_violations_in_order() {
        let t = template();
        let cs: Vec<Constraint> = ["owner", "team", "tier"]
            .iter()
            .map(|l| {
                Constraint::from_object(
                    &json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sRequiredLabels",
                        "metadata": {"name": format!("need-{l}")},
                        "spec": {"parameters": {"labels": [l]}}}),
                    &t,
                )
                .unwrap()
            })
            .collect();
        let inv = Inventory::new();
        let data = inv.prepared();
        // 40 reviews × 3 constraints. Each pod lacks a different set of labels.
        let pods: Vec<Value> = (0..40)
            .map(|i| {
                let mut labels = serde_json::Map::new();
                for (bit, l) in ["owner", "team", "tier"].iter().enumerate() {
                    if i & (1 << bit) != 0 {
                        labels.insert(l.to_string(), json!("x"));
                    }
                }
                pod(&format!("ns{i}"), Value::Object(labels))
            })
            .collect();
        let reviews: Vec<Review> = pods.iter().map(|p| Review::of(p).unwrap()).collect();
        let refs: Vec<&Constraint> = cs.iter().collect();
        let each: Vec<Vec<String>> = reviews
            .iter()
            .map(|r| {
                judge_all(&t, &refs, r, &inv, &data)
                    .into_iter()
                    .map(|v| v.constraint)
                    .collect()
            })
            .collect();
        let sets = [(t, cs)];
        let batch: Vec<Vec<String>> = judge_reviews(&sets, &reviews, &inv, &data)
            .into_iter()
            .map(|vs| vs.into_iter().map(|v| v.constraint).collect())
            .collect();
        assert_eq!(batch, each);
        assert_eq!(batch[0], ["need-owner", "need-team", "need-tier"]);
        assert_eq!(batch[7], Vec::<String>::new());
        assert_eq!(batch[5], ["need-team"]);
        // Shared among threads, whatever their number, the reviews keep their order and
        // each its own violations; evaluations that fail on any thread are violations too.
        for threads in [2, 3, 7, 40, 100] {
            let parted: Vec<Vec<String>> = judge_on_threads(threads, &sets, &reviews, &inv, &data)
                .into_iter()
                .map(|vs| vs.into_iter().map(|v| v.constraint).collect())
                .collect();
            assert_eq!(parted, each, "{threads} threads");
        }
        let sets = [conflicting()];
        for threads in [1, 2, 3, 40] {
            let judged = judge_on_threads(threads, &sets, &reviews, &inv, &data);
            for (i, vs) in judged.iter().enumerate() {
                // Pods with an owner label (odd i) make the rule conflict.
                let failed = vs.iter().any(|v| v.msg.starts_with("evaluation failed"));
                assert_eq!(
                    vs.len(),
                    usize::from(i % 2 == 1),
                    "{threads} threads, review {i}: {vs:?}"
                );
                assert_eq!(failed, i % 2 == 1, "{threads} threads, review {i}: {vs:?}");
            }
        }
    }

    /// A review is put in the engine's values when a Rego constraint first matches its
    /// object, on the judging thread, and not at all when none does. (A review the engine
    /// cannot take in, past the heap ceiling, is a violation of every constraint that matches
    /// it: `tests/heap_ceiling_review.rs`, in a process of its own.)
    #[test]
    fn a_review_is_read_into_the_engine_when_a_constraint_first_matches_it() {
        let t = template();
        let constraint = |name: &str, kind: &str| {
            Constraint::from_object(
                &json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sRequiredLabels",
                    "metadata": {"name": name},
                    "spec": {"match": {"kinds": [{"apiGroups": [""], "kinds": [kind]}]},
                             "parameters": {"labels": ["owner"]}}}),
                &t,
            )
            .unwrap()
        };
        let (pods, services) = (constraint("pods", "Pod"), constraint("services", "Service"));
        let inv = Inventory::new();
        let data = inv.prepared();
        // The request is put in the engine's values when a constraint first matches the
        // object, and not at all when none does.
        let service = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s", "namespace": "n"}});
        let review = Review::admission(&service, None, "CREATE");
        assert!(judge_all(&t, &[&pods], &review, &inv, &data).is_empty());
        assert!(review.converted.get().is_none());
        let v = judge_all(&t, &[&pods, &services], &review, &inv, &data);
        assert_eq!(v.len(), 1, "{v:?}");
        let request = review.converted.get().unwrap();
        assert_eq!(request["object"]["metadata"]["name"], "s".into());
    }

    /// CEL sees the request as JSON, numbers as they were given.
    #[test]
    fn the_request_as_json_keeps_the_object_as_given() {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n"}, "spec": {"ratio": 1.0, "count": 3}});
        let old = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let r = Review::admission(&obj, Some(&old), "UPDATE").request();
        assert_eq!(r["object"], obj);
        assert!(r["object"]["spec"]["ratio"].is_f64());
        assert!(r["object"]["spec"]["count"].is_u64());
        assert_eq!(r["oldObject"], old);
        assert_eq!(r["operation"], "UPDATE");
        assert_eq!(
            r["kind"],
            json!({"group": "", "version": "v1", "kind": "ConfigMap"})
        );
        assert_eq!(
            (r["name"].as_str(), r["namespace"].as_str()),
            (Some("c"), Some("n"))
        );
    }

    #[test]
    fn admission_reviews_are_reviewed_as_their_request() {
        let deleted = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"operation": "DELETE", "oldObject": pod("a", json!({}))}});
        let r = Review::of(&deleted).unwrap();
        assert_eq!(r.request()["object"]["kind"], "Pod");
        assert_eq!(r.request()["operation"], "DELETE");
        let no_old = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"operation": "DELETE", "object": pod("a", json!({}))}});
        assert_eq!(
            Review::of(&no_old).unwrap_err(),
            ReviewError::DeleteWithoutOldObject
        );
        let empty = json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"});
        assert_eq!(Review::of(&empty).unwrap_err(), ReviewError::NoRequest);
    }

    #[test]
    fn the_inventory_is_keyed_as_gatekeepers() {
        let mut inv = Inventory::new();
        inv.add(&pod("prod", json!({}))).unwrap();
        inv.add(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}}))
            .unwrap();
        let d = inv.data();
        assert!(
            d.pointer("/inventory/namespace/prod/v1/Pod/web-1")
                .is_some()
        );
        assert!(d.pointer("/inventory/cluster/v1/Namespace/prod").is_some());
        assert!(inv.namespaces().contains_key("prod"));
        assert!(inv.add(&json!({"metadata": {"name": "x"}})).is_err());
    }

    /// A violation's details are the template's, read into JSON when asked for; `{}` where the
    /// template gives none. Alike judged alone, in a batch, and found again among the verdicts.
    #[test]
    fn violations_give_their_details_as_json() {
        let t = rego_template(
            "K8sRequiredDetails",
            "package k8srequireddetails\nviolation[{\"msg\": \"missing\", \"details\": {\"missing_labels\": missing, \"n\": 2}}] {\n  required := {l | l := input.parameters.labels[_]}\n  provided := {l | input.review.object.metadata.labels[l]}\n  missing := required - provided\n  count(missing) > 0\n}\nviolation[{\"msg\": \"none\"}] {\n  input.parameters.labels[_] == \"b\"\n}",
        );
        assert!(
            t.program()
                .and_then(Program::batch)
                .is_some_and(|b| b.reads_parameter_terms())
        );
        let cs: Vec<Constraint> = [json!(["b", "a"]), json!(["a"])]
            .iter()
            .enumerate()
            .map(|(i, labels)| {
                Constraint::from_object(
                    &json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1",
                        "kind": "K8sRequiredDetails", "metadata": {"name": format!("c{i}")},
                        "spec": {"parameters": {"labels": labels}}}),
                    &t,
                )
                .unwrap()
            })
            .collect();
        let (inv, data) = (Inventory::new(), Data::empty());
        let review = Review::of(&pod("x", json!({"c": "1"}))).unwrap();
        let said = |vs: &[Violation]| {
            let mut found: Vec<(String, String, Value)> = vs
                .iter()
                .map(|v| (v.constraint.clone(), v.msg.clone(), v.details()))
                .collect();
            found.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
            found
        };
        let want = vec![
            (
                "c0".to_string(),
                "missing".to_string(),
                json!({"missing_labels": ["a", "b"], "n": 2}),
            ),
            ("c0".to_string(), "none".to_string(), json!({})),
            (
                "c1".to_string(),
                "missing".to_string(),
                json!({"missing_labels": ["a"], "n": 2}),
            ),
        ];
        let alone: Vec<Violation> = cs
            .iter()
            .flat_map(|c| judge(&t, c, &review, &inv, &data))
            .collect();
        assert_eq!(said(&alone), want);
        let sets = vec![(t.clone(), cs)];
        let verdicts = Verdicts::default();
        for _ in 0..2 {
            let judged = judge_reviews_remembered(
                &verdicts,
                &sets,
                std::slice::from_ref(&review),
                &inv,
                &data,
            );
            assert_eq!(said(&judged[0]), want);
        }
        // The second check found both sets' results again, rather than evaluating them.
        assert_eq!((verdicts.evaluated(), verdicts.found()), (2, 2));
    }

    #[test]
    fn what_only_the_parameters_give_is_evaluated_once_per_constraint() {
        let hoists = |t: &Template| {
            t.program()
                .and_then(Program::batch)
                .is_some_and(|b| b.reads_parameter_terms())
        };
        let required = [
            json!({"labels": [{"key": "a"}]}),
            json!({"labels": [{"key": "b"}, {"key": "c"}]}),
            json!({"labels": []}),
        ];
        let pods = [
            json!({}),
            json!({"a": "1"}),
            json!({"b": "1", "c": "2"}),
            json!({"a": "1", "b": "1", "c": "1"}),
        ];
        let want = vec![
            vec![
                "c0: you must provide labels: {\"a\"}".to_string(),
                "c1: you must provide labels: {\"b\", \"c\"}".into(),
            ],
            vec!["c1: you must provide labels: {\"b\", \"c\"}".to_string()],
            vec!["c0: you must provide labels: {\"a\"}".to_string()],
            vec![],
        ];
        // Gatekeeper's library writes the required labels as objects with a key.
        let library_rego = "package k8srequiredlabelkeys\nviolation[{\"msg\": msg}] {\n  provided := {label | input.review.object.metadata.labels[label]}\n  required := {label | label := input.parameters.labels[_].key}\n  missing := required - provided\n  count(missing) > 0\n  msg := sprintf(\"you must provide labels: %v\", [missing])\n}";
        let library = rego_template("K8sRequiredLabelKeys", library_rego);
        assert!(hoists(&library));
        assert_eq!(together_and_alone(&library, &required, &pods), want);
        // A comprehension that names a variable of the body around it reads that variable:
        // here the Pod's namespace, never a required label. Evaluated once for the constraint,
        // it would require the label `a` of the Pods in namespace `a` too.
        let captured = rego_template(
            "K8sRequiredButOwn",
            "package k8srequiredbutown\nviolation[{\"msg\": msg}] {\n  own := input.review.object.metadata.namespace\n  provided := {label | input.review.object.metadata.labels[label]}\n  required := {label | label := input.parameters.labels[_].key; label != own}\n  missing := required - provided\n  count(missing) > 0\n  msg := sprintf(\"you must provide labels: %v\", [missing])\n}",
        );
        assert!(!hoists(&captured));
        let c1 = "c1: you must provide labels: {\"b\", \"c\"}".to_string();
        assert_eq!(
            together_and_alone(&captured, &required, &pods),
            vec![vec![c1.clone()], vec![c1], vec![], vec![]]
        );
        // One that reads the inventory changes with it: not kept.
        let inventory = rego_template(
            "K8sRequiredKnown",
            "package k8srequiredknown\nviolation[{\"msg\": msg}] {\n  provided := {label | input.review.object.metadata.labels[label]}\n  required := {label | label := input.parameters.labels[_].key; not data.inventory.cluster.v1.Namespace[label]}\n  missing := required - provided\n  count(missing) > 0\n  msg := sprintf(\"you must provide labels: %v\", [missing])\n}",
        );
        assert!(!hoists(&inventory));
        assert_eq!(together_and_alone(&inventory, &required, &pods), want);
        // Terms that cannot be evaluated for a set (an object comprehension giving a key two
        // values) leave that set to be judged on its own, which reports why. The object
        // comprehension, which the machine reads otherwise than OPA, runs on the interpreter;
        // the batch, without it, on the machine.
        let named = rego_template(
            "K8sMaxLabels",
            "package k8smaxlabels\nviolation[{\"msg\": msg}] {\n  allowed := {k: v | some i; v := input.parameters.values[i]; k := input.parameters.names[i]}\n  count(input.review.object.metadata.labels) > count(allowed)\n  msg := sprintf(\"more than %v labels\", [count(allowed)])\n}",
        );
        assert!(hoists(&named));
        let limits = [
            json!({"names": ["a", "b", "c", "d"], "values": [1, 2, 3, 4]}),
            json!({"names": ["x", "x"], "values": [1, 2]}),
            json!({"names": ["a"], "values": [1]}),
        ];
        let judged = together_and_alone(&named, &limits, &pods);
        for (i, found) in judged.iter().enumerate() {
            assert!(!found.iter().any(|m| m.starts_with("c0")), "{found:?}");
            assert!(
                found
                    .iter()
                    .any(|m| m.starts_with("c1: ") && m.contains("generated multiple times")),
                "{found:?}"
            );
            let over = "c2: more than 1 labels".to_string();
            assert_eq!(found.contains(&over), i >= 2, "{found:?}");
        }
        // Constraints built for another compilation of the template are judged on their own.
        let again = rego_template("K8sRequiredLabelKeys", library_rego);
        let cs: Vec<Constraint> = required
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Constraint::from_object(
                    &json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1",
                        "kind": "K8sRequiredLabelKeys",
                        "metadata": {"name": format!("c{i}")}, "spec": {"parameters": p}}),
                    &library,
                )
                .unwrap()
            })
            .collect();
        let refs: Vec<&Constraint> = cs.iter().collect();
        let (inv, data) = (Inventory::new(), Data::empty());
        for (pod_labels, want) in pods.iter().zip(&want) {
            let review = Review::of(&pod("a", pod_labels.clone())).unwrap();
            let said: Vec<String> = judge_all(&again, &refs, &review, &inv, &data)
                .into_iter()
                .map(|v| format!("{}: {}", v.constraint, v.msg))
                .collect();
            assert_eq!(&said, want);
        }
    }

    /// A template of `kind` (named after it in lower case) whose Rego is `rego`.
    fn rego_template(kind: &str, rego: &str) -> Template {
        Template::from_object(&json!({
            "apiVersion": "templates.gatekeeper.sh/v1", "kind": "ConstraintTemplate",
            "metadata": {"name": kind.to_lowercase()},
            "spec": {"crd": {"spec": {"names": {"kind": kind}}},
              "targets": [{"target": TARGET, "rego": rego}]}
        }))
        .unwrap()
    }

    /// The messages of the violations `c` of `t` finds in a Pod labelled `labels`, without an
    /// inventory.
    fn messages(t: &Template, c: &Constraint, labels: Value) -> Vec<String> {
        let review = Review::of(&pod("a", labels)).unwrap();
        judge(t, c, &review, &Inventory::new(), &Data::empty())
            .into_iter()
            .map(|v| v.msg)
            .collect()
    }

    /// A constraint of `t` named `name` that matches everything, without parameters.
    fn bare(t: &Template, name: &str) -> Constraint {
        Constraint::from_object(
            &json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": t.kind(),
                "metadata": {"name": name}}),
            t,
        )
        .unwrap()
    }

    /// A template whose rule conflicts (an evaluation error) for objects with an `owner`
    /// label, with its constraint `conflict`.
    fn conflicting() -> (Template, Vec<Constraint>) {
        let t = rego_template(
            "K8sConflict",
            "package k8sconflict\nv := 1 { input.review.object.metadata.labels.owner }\nv := 2 { input.review.object.metadata.labels.owner }\nviolation[{\"msg\": \"never\"}] { v == 3 }",
        );
        let c = bare(&t, "conflict");
        (t, vec![c])
    }

    fn need(t: &Template, name: &str, labels: Value) -> Constraint {
        Constraint::from_object(
            &json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": t.kind(),
                "metadata": {"name": name}, "spec": {"parameters": {"labels": labels}}}),
            t,
        )
        .unwrap()
    }

    fn found(
        verdicts: &Verdicts,
        sets: &[(Template, Vec<Constraint>)],
        objects: &[Value],
        inv: &Inventory,
        data: &Data,
    ) -> Vec<Vec<String>> {
        let reviews: Vec<Review> = objects
            .iter()
            .map(|o| Review::admission(o, None, "CREATE"))
            .collect();
        judge_reviews_remembered(verdicts, sets, &reviews, inv, data)
            .into_iter()
            .map(|vs| {
                vs.into_iter()
                    .map(|v| format!("{}: {}", v.constraint, v.msg))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn remembered_verdicts_are_what_judging_finds_and_spare_the_evaluations() {
        let t = template();
        // Two constraints with equal parameters share one evaluation, remembered or not.
        let cs = vec![
            need(&t, "owner", json!(["owner"])),
            need(&t, "owner-again", json!(["owner"])),
            need(&t, "team", json!(["team"])),
        ];
        let sets = [(t, cs)];
        let inv = Inventory::new();
        let data = inv.prepared();
        let pods = [
            pod("a", json!({})),
            pod("b", json!({"owner": "x"})),
            pod("c", json!({"owner": "x", "team": "y"})),
        ];
        let reviews: Vec<Review> = pods
            .iter()
            .map(|o| Review::admission(o, None, "CREATE"))
            .collect();
        let plain: Vec<Vec<String>> = judge_reviews(&sets, &reviews, &inv, &data)
            .into_iter()
            .map(|vs| {
                vs.into_iter()
                    .map(|v| format!("{}: {}", v.constraint, v.msg))
                    .collect()
            })
            .collect();
        let verdicts = Verdicts::default();
        let first = found(&verdicts, &sets, &pods, &inv, &data);
        assert_eq!(first, plain);
        assert_eq!(
            first[0],
            [
                "owner: missing label owner",
                "owner-again: missing label owner",
                "team: missing label team"
            ]
        );
        assert!(first[2].is_empty());
        assert_eq!((verdicts.found(), verdicts.evaluated()), (0, 6));
        // Judged again: the same verdicts, without one evaluation.
        assert_eq!(found(&verdicts, &sets, &pods, &inv, &data), plain);
        assert_eq!((verdicts.found(), verdicts.evaluated()), (6, 6));
        // One manifest changed: only its evaluations are made again.
        let changed = [
            pods[0].clone(),
            pod("b", json!({"owner": "x", "team": "z"})),
            pods[2].clone(),
        ];
        let again = found(&verdicts, &sets, &changed, &inv, &data);
        assert!(again[1].is_empty());
        assert_eq!(again[0], plain[0]);
        assert_eq!((verdicts.found(), verdicts.evaluated()), (10, 8));
    }

    /// The attacks on a verdict cache: an input that differs from a remembered one in a way
    /// the template sees must never be given the remembered verdict.
    #[test]
    fn a_remembered_verdict_is_never_given_to_another_input() {
        let t = template();
        let inv = Inventory::new();
        let data = inv.prepared();
        let verdicts = Verdicts::default();
        let sets = [(t.clone(), vec![need(&t, "owner", json!(["owner"]))])];
        let good = pod("prod", json!({"owner": "x"}));
        assert!(found(&verdicts, &sets, std::slice::from_ref(&good), &inv, &data)[0].is_empty());
        // The same manifest, name and all, made to violate: judged anew.
        let bad = pod("prod", json!({"owner-": "x"}));
        assert_eq!(
            found(&verdicts, &sets, &[bad], &inv, &data)[0],
            ["owner: missing label owner"]
        );
        // The constraint's parameters changed: judged anew.
        let stricter = [(t.clone(), vec![need(&t, "owner", json!(["owner", "team"]))])];
        assert_eq!(
            found(
                &verdicts,
                &stricter,
                std::slice::from_ref(&good),
                &inv,
                &data
            )[0],
            ["owner: missing label team"]
        );
        // The template changed (the same kind, another rule): another compilation, judged anew.
        let strict = rego_template(
            "K8sRequiredLabels",
            "package k8srequiredlabels\nviolation[{\"msg\": \"no pods\"}] {\n  input.review.object.kind == \"Pod\"\n}",
        );
        let sets = [(
            strict.clone(),
            vec![need(&strict, "owner", json!(["owner"]))],
        )];
        assert_eq!(
            found(&verdicts, &sets, std::slice::from_ref(&good), &inv, &data)[0],
            ["owner: no pods"]
        );
        // Failed evaluations are not remembered: they are tried again.
        let sets = [conflicting()];
        let before = verdicts.evaluated();
        for _ in 0..2 {
            let judged = found(&verdicts, &sets, std::slice::from_ref(&good), &inv, &data);
            assert!(
                judged[0][0].starts_with("conflict: evaluation failed"),
                "{judged:?}"
            );
        }
        assert_eq!(verdicts.evaluated() - before, 2);
    }

    /// A template that reads the inventory is judged anew when the inventory changes: a work
    /// once unique is refused when the cluster gains its duplicate.
    #[test]
    fn a_template_that_reads_the_inventory_is_judged_anew_with_each_inventory() {
        let unique = rego_template(
            "K8sUniqueLabel",
            "package k8suniquelabel\nviolation[{\"msg\": msg}] {\n  app := input.review.object.metadata.labels.app\n  other := data.inventory.namespace[ns][_][\"Pod\"][name]\n  other.metadata.labels.app == app\n  msg := sprintf(\"app %v is taken by %v/%v\", [app, ns, name])\n}",
        );
        assert_eq!(
            unique.program().map(Program::depends),
            Some(Depends::InputAndData)
        );
        assert_eq!(
            template().program().map(Program::depends),
            Some(Depends::Input)
        );
        let sets = [(unique.clone(), vec![bare(&unique, "unique-app")])];
        let verdicts = Verdicts::default();
        let mine = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-2", "namespace": "prod", "labels": {"app": "shop"}}});
        let before = Inventory::new();
        assert!(
            found(
                &verdicts,
                &sets,
                std::slice::from_ref(&mine),
                &before,
                &before.prepared()
            )[0]
            .is_empty()
        );
        let mut after = Inventory::new();
        after.add(&pod("prod", json!({"app": "shop"}))).unwrap();
        assert_eq!(
            found(&verdicts, &sets, &[mine], &after, &after.prepared())[0],
            ["unique-app: app shop is taken by prod/web-1"]
        );
    }

    #[test]
    fn a_template_that_reads_the_clock_is_never_remembered() {
        let clock = rego_template(
            "K8sBusinessHours",
            "package k8sbusinesshours\nviolation[{\"msg\": \"not now\"}] {\n  time.now_ns() < 0\n}",
        );
        assert_eq!(
            clock.program().map(Program::depends),
            Some(Depends::Unrepeatable)
        );
        let sets = [(clock.clone(), vec![bare(&clock, "hours")])];
        let verdicts = Verdicts::default();
        let inv = Inventory::new();
        let data = inv.prepared();
        for _ in 0..3 {
            assert!(found(&verdicts, &sets, &[pod("a", json!({}))], &inv, &data)[0].is_empty());
        }
        assert_eq!((verdicts.found(), verdicts.evaluated()), (0, 0));
    }

    #[test]
    fn verdicts_keep_to_their_budget_and_forget_the_least_used_first() {
        let t = template();
        let sets = [(t.clone(), vec![need(&t, "owner", json!(["owner"]))])];
        let inv = Inventory::new();
        let data = inv.prepared();
        let verdicts = Verdicts::new(4 * 1024);
        let pods: Vec<Value> = (0..40).map(|i| pod(&format!("ns{i}"), json!({}))).collect();
        let hot = pod("hot", json!({}));
        for p in &pods {
            // The hot review is judged with every other, and stays.
            found(&verdicts, &sets, &[hot.clone(), p.clone()], &inv, &data);
        }
        assert!(
            verdicts.kept_bytes() <= 4 * 1024,
            "{}",
            verdicts.kept_bytes()
        );
        let before = verdicts.found();
        found(&verdicts, &sets, &[hot], &inv, &data);
        assert_eq!(verdicts.found(), before + 1, "the hot review is still kept");
        let before = verdicts.evaluated();
        found(&verdicts, &sets, &pods[..1], &inv, &data);
        assert_eq!(
            verdicts.evaluated(),
            before + 1,
            "the oldest cold review went"
        );
    }
}
