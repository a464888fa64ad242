//! Label and field selectors, parsed from query strings with kube-apiserver's grammar.
//!
//! Selectors come from untrusted clients, so parsing never panics and every failure names the
//! requirement that could not be read.

use std::collections::BTreeMap;

use serde_json::Value;

/// One operator of a label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `key` — the label exists.
    Exists,
    /// `!key` — the label does not exist.
    NotExists,
    /// `key=v`, `key==v`, `key in (v...)`.
    In(Vec<String>),
    /// `key!=v`, `key notin (v...)`.
    NotIn(Vec<String>),
    /// `key>n`.
    Gt(i64),
    /// `key<n`.
    Lt(i64),
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The operator and its values.
    pub op: Op,
}

/// A parsed label selector: all requirements must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// The requirements, ANDed.
    pub requirements: Vec<Requirement>,
}

fn valid_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty() || p.len() > 253 || !crate::validation::is_dns_subdomain(p))
    {
        return false;
    }
    valid_value(name) && !name.is_empty()
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && (v.is_empty()
            || (v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
                && v.starts_with(|c: char| c.is_ascii_alphanumeric())
                && v.ends_with(|c: char| c.is_ascii_alphanumeric())))
}

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced ')'".into());
                }
            }
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".into());
    }
    out.push(&s[start..]);
    Ok(out)
}

fn parse_set(rest: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised set of values, got {rest:?}"))?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
    for v in &values {
        if !valid_value(v) {
            return Err(format!("invalid label value: {v:?}"));
        }
    }
    Ok(values)
}

impl LabelSelector {
    /// Parses a selector string such as `app=web,tier in (a,b),!legacy`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(Self::default());
        }
        let mut requirements = Vec::new();
        for part in split_top(s)? {
            let part = part.trim();
            if part.is_empty() {
                return Err("empty requirement".into());
            }
            let req = Self::parse_requirement(part)
                .map_err(|e| format!("unable to parse requirement {part:?}: {e}"))?;
            requirements.push(req);
        }
        Ok(LabelSelector { requirements })
    }

    fn parse_requirement(part: &str) -> Result<Requirement, String> {
        if let Some(key) = part.strip_prefix('!') {
            let key = key.trim();
            if !valid_key(key) {
                return Err(format!("invalid label key {key:?}"));
            }
            return Ok(Requirement {
                key: key.into(),
                op: Op::NotExists,
            });
        }
        // Set-based forms: `key in (...)`, `key notin (...)`.
        for (word, negate) in [(" notin ", true), (" in ", false)] {
            if let Some(idx) = part.find(word) {
                let key = part[..idx].trim();
                if !valid_key(key) {
                    return Err(format!("invalid label key {key:?}"));
                }
                let values = parse_set(&part[idx + word.len()..])?;
                let op = if negate {
                    Op::NotIn(values)
                } else {
                    Op::In(values)
                };
                return Ok(Requirement {
                    key: key.into(),
                    op,
                });
            }
        }
        for (tok, kind) in [("!=", 0), ("==", 1), ("=", 1), (">", 2), ("<", 3)] {
            if let Some(idx) = part.find(tok) {
                let key = part[..idx].trim();
                let value = part[idx + tok.len()..].trim();
                if !valid_key(key) {
                    return Err(format!("invalid label key {key:?}"));
                }
                let op = match kind {
                    0 | 1 => {
                        if !valid_value(value) {
                            return Err(format!("invalid label value {value:?}"));
                        }
                        if kind == 0 {
                            Op::NotIn(vec![value.into()])
                        } else {
                            Op::In(vec![value.into()])
                        }
                    }
                    _ => {
                        let n: i64 = value
                            .parse()
                            .map_err(|_| format!("{value:?} is not an integer"))?;
                        if kind == 2 { Op::Gt(n) } else { Op::Lt(n) }
                    }
                };
                return Ok(Requirement {
                    key: key.into(),
                    op,
                });
            }
        }
        if !valid_key(part) {
            return Err(format!("invalid label key {part:?}"));
        }
        Ok(Requirement {
            key: part.into(),
            op: Op::Exists,
        })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether a label map satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| {
            let v = labels.get(&r.key);
            match &r.op {
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
                Op::In(vals) => v.is_some_and(|v| vals.contains(v)),
                Op::NotIn(vals) => v.is_none_or(|v| !vals.contains(v)),
                Op::Gt(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|x| x > *n),
                Op::Lt(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|x| x < *n),
            }
        })
    }

    /// Whether an object's `metadata.labels` satisfy the selector.
    pub fn matches_object(&self, obj: &Value) -> bool {
        if self.is_empty() {
            return true;
        }
        self.matches(&labels_of(obj))
    }
}

/// Whether one `matchExpressions` entry of a metav1.LabelSelector holds for `labels`.
pub fn label_expression_matches(expr: &Value, labels: &BTreeMap<String, String>) -> bool {
    let key = expr["key"].as_str().unwrap_or_default();
    let values: Vec<&str> = expr["values"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let v = labels.get(key).map(String::as_str);
    match expr["operator"].as_str() {
        Some("In") => v.is_some_and(|v| values.contains(&v)),
        Some("NotIn") => v.is_none_or(|v| !values.contains(&v)),
        Some("Exists") => v.is_some(),
        Some("DoesNotExist") => v.is_none(),
        _ => false,
    }
}

/// Whether a metav1.LabelSelector (as JSON) selects `labels`. An empty selector selects everything.
pub fn label_selector_json_matches(sel: &Value, labels: &BTreeMap<String, String>) -> bool {
    let ml_ok = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| {
            m.iter()
                .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
        });
    let me_ok = sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .is_none_or(|exprs| exprs.iter().all(|e| label_expression_matches(e, labels)));
    ml_ok && me_ok
}

/// The labels of an object.
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// One field requirement: `field=value` or `field!=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field path, e.g. `metadata.name`.
    pub field: String,
    /// The value compared against.
    pub value: String,
    /// True for `!=`.
    pub negate: bool,
}

/// A parsed field selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// The requirements, ANDed.
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses `a=b,c!=d`, checking each field against the ones the resource supports.
    pub fn parse(s: &str, supported: &dyn Fn(&str) -> bool) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, value, negate) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, false)
            } else {
                return Err(format!("invalid selector: {part:?}; can't understand it"));
            };
            let field = field.trim();
            if !supported(field) {
                return Err(format!("field label not supported: {field}"));
            }
            // kube-apiserver selects an Event's `source` by its component.
            let field = if field == "source" {
                "source.component"
            } else {
                field
            };
            requirements.push(FieldRequirement {
                field: field.into(),
                value: value.trim().into(),
                negate,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// Whether an object satisfies every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let got = field_value(obj, &r.field);
            (got == r.value) != r.negate
        })
    }

    /// The name this selector pins with `metadata.name=`, if any.
    pub fn pinned_name(&self) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == "metadata.name" && !r.negate)
            .map(|r| r.value.as_str())
    }
}

/// The fields beyond `metadata.name` and `metadata.namespace` that a field selector may name,
/// for the kinds kube-apiserver supports them on: Secrets.
pub const SECRET_FIELDS: &[&str] = &["type"];
/// Field selector fields of Namespaces.
pub const NAMESPACE_FIELDS: &[&str] = &["status.phase"];
/// Field selector fields of CertificateSigningRequests.
pub const CSR_FIELDS: &[&str] = &["spec.signerName"];
/// Field selector fields of Events.
pub const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

/// Every field a selector may read of an object: its name, namespace and labels, and the
/// fields of every kind above.
fn selectable_fields() -> impl Iterator<Item = &'static str> {
    ["metadata.name", "metadata.namespace", "metadata.labels"]
        .into_iter()
        .chain(SECRET_FIELDS.iter().copied())
        .chain(NAMESPACE_FIELDS.iter().copied())
        .chain(CSR_FIELDS.iter().copied())
        .chain(EVENT_FIELDS.iter().copied())
}

fn field<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(obj, |cur, seg| cur.get(seg))
}

/// Whether every label and field selector selects `a` exactly when it selects `b`.
pub fn selects_alike(a: &Value, b: &Value) -> bool {
    selectable_fields().all(|path| field(a, path) == field(b, path))
}

/// What label and field selectors read of an object, and nothing else: a selector matches the
/// result exactly when it matches the object.
pub fn selectable(obj: &Value) -> Value {
    let mut out = Value::Object(serde_json::Map::new());
    for path in selectable_fields() {
        let Some(value) = field(obj, path) else {
            continue;
        };
        let mut cur = &mut out;
        let mut segs = path.split('.').peekable();
        while let Some(seg) = segs.next() {
            let Value::Object(map) = cur else {
                break;
            };
            if segs.peek().is_none() {
                map.insert(seg.to_string(), value.clone());
                break;
            }
            cur = map
                .entry(seg.to_string())
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
        }
    }
    out
}

/// The string value of a dotted field path in an object ("" when absent), as field selectors see it.
pub fn field_value(obj: &Value, path: &str) -> String {
    match field(obj, path) {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn equality_set_and_existence_requirements_combine() {
        let s = LabelSelector::parse("app=web, tier in (a, b),!legacy,env!=prod").unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "b")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "c")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "a"), ("legacy", "")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "a"), ("env", "prod")])));
    }

    #[test]
    fn the_selectable_part_of_an_object_selects_as_the_object_does() {
        let event = json!({
            "metadata": {"name": "e", "namespace": "n", "labels": {"app": "web"},
                "annotations": {"big": "x"}},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "reason": "Started",
            "message": "not selectable",
        });
        let kept = selectable(&event);
        assert_eq!(
            kept,
            json!({
                "metadata": {"name": "e", "namespace": "n", "labels": {"app": "web"}},
                "involvedObject": {"kind": "Pod", "name": "p"},
                "reason": "Started",
            })
        );
        for (labels, fields) in [
            ("app=web", "involvedObject.kind=Pod"),
            ("app!=web", "reason=Started"),
            ("", "involvedObject.name!=p"),
            ("app", "metadata.name=e"),
        ] {
            let l = LabelSelector::parse(labels).unwrap();
            let f = FieldSelector::parse(fields, &|_| true).unwrap();
            let on = |o: &Value| l.matches_object(o) && f.matches(o);
            assert_eq!(on(&kept), on(&event), "{labels} / {fields}");
        }
        assert!(selects_alike(&event, &kept));
        let from = json!({"source": {"component": "kubelet", "host": "n1"}});
        let f = FieldSelector::parse("source=kubelet", &|_| true).unwrap();
        assert!(f.matches(&from));
        assert!(f.matches(&selectable(&from)));
        let mut relabelled = event.clone();
        relabelled["metadata"]["labels"]["app"] = json!("db");
        assert!(!selects_alike(&event, &relabelled));
        let mut annotated = event.clone();
        annotated["metadata"]["annotations"]["big"] = json!("y");
        assert!(selects_alike(&event, &annotated));
    }

    #[test]
    fn notin_matches_a_missing_label() {
        let s = LabelSelector::parse("env notin (prod)").unwrap();
        assert!(s.matches(&labels(&[])));
    }

    #[test]
    fn prefixed_keys_parse() {
        let s =
            LabelSelector::parse("cluster.open-cluster-management.io/clusterset=default").unwrap();
        assert_eq!(
            s.requirements[0].key,
            "cluster.open-cluster-management.io/clusterset"
        );
    }

    #[test]
    fn malformed_selectors_are_rejected_with_the_requirement_named() {
        for bad in [
            "app=",
            "=x",
            "a in (b",
            "a in b",
            "Bad Key=x",
            "a=b,,c=d",
            "a>x",
            "-a=b",
            "a=b)",
        ] {
            if bad == "app=" {
                // An empty value is legal: app= selects app with the empty value.
                assert!(LabelSelector::parse(bad).is_ok());
                continue;
            }
            let err = LabelSelector::parse(bad).expect_err(bad);
            assert!(!err.is_empty(), "{bad}");
        }
    }

    #[test]
    fn field_selectors_reject_unsupported_fields() {
        let supported = |f: &str| f == "metadata.name";
        assert!(FieldSelector::parse("metadata.name=x", &supported).is_ok());
        let err = FieldSelector::parse("spec.foo=x", &supported).unwrap_err();
        assert_eq!(err, "field label not supported: spec.foo");
    }

    #[test]
    fn field_selectors_match_nested_values() {
        let all = |_: &str| true;
        let s = FieldSelector::parse("metadata.name=a,type!=Opaque", &all).unwrap();
        assert!(s.matches(&json!({"metadata": {"name": "a"}, "type": "kubernetes.io/tls"})));
        assert!(!s.matches(&json!({"metadata": {"name": "a"}, "type": "Opaque"})));
        assert_eq!(s.pinned_name(), Some("a"));
    }
}
