//! `metav1.LabelSelector` as a checked matcher, with the validation and meaning of
//! apimachinery's `LabelSelectorAsSelector`: `matchLabels` and `matchExpressions` are ANDed, an
//! empty selector selects everything, and a malformed requirement is an error rather than a
//! selector that silently matches nothing.
//!
//! Placements use it for label and claim selectors, cluster sets for `LabelSelector` sets.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// One requirement of a checked selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A label selector that passed validation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// Why a selector is malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(String);

fn check_key(key: &str) -> Result<(), SelectorError> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part.len() <= 63
                    && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && part.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
    });
    if name_ok && prefix_ok {
        Ok(())
    } else {
        Err(SelectorError(format!(
            "key: Invalid value: {key:?}: a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, with an optional DNS subdomain prefix and '/'"
        )))
    }
}

fn requirement(expr: &LabelSelectorRequirement) -> Result<Requirement, SelectorError> {
    check_key(&expr.key)?;
    let values = expr.values.clone().unwrap_or_default();
    match expr.operator.as_str() {
        "In" | "NotIn" if values.is_empty() => Err(SelectorError(
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty".into(),
        )),
        "Exists" | "DoesNotExist" if !values.is_empty() => Err(SelectorError(format!(
            "values: Invalid value: {values:?}: values set must be empty for exists and does not exist"
        ))),
        "In" => Ok(Requirement::In(expr.key.clone(), values)),
        "NotIn" => Ok(Requirement::NotIn(expr.key.clone(), values)),
        "Exists" => Ok(Requirement::Exists(expr.key.clone())),
        "DoesNotExist" => Ok(Requirement::DoesNotExist(expr.key.clone())),
        other => Err(SelectorError(format!(
            "{other:?} is not a valid label selector operator"
        ))),
    }
}

impl Selector {
    /// Checks `sel` and turns it into a matcher.
    pub fn new(sel: &LabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            check_key(k)?;
            requirements.push(Requirement::In(k.clone(), vec![v.clone()]));
        }
        for expr in sel.match_expressions.iter().flatten() {
            requirements.push(requirement(expr)?);
        }
        Ok(Selector { requirements })
    }

    /// A selector from bare `matchExpressions` (a claim selector's shape).
    pub fn from_expressions(exprs: &[LabelSelectorRequirement]) -> Result<Self, SelectorError> {
        Ok(Selector {
            requirements: exprs.iter().map(requirement).collect::<Result<_, _>>()?,
        })
    }

    /// A selector of exactly one `key=value`.
    pub fn equals(key: &str, value: &str) -> Self {
        Selector {
            requirements: vec![Requirement::In(key.into(), vec![value.into()])],
        }
    }

    /// Whether this selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn empty_selects_everything() {
        let s = Selector::new(&LabelSelector::default()).unwrap();
        assert!(s.is_empty());
        assert!(s.matches(&labels(&[])));
        assert!(s.matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn labels_and_expressions_are_anded() {
        let s = Selector::new(&LabelSelector {
            match_labels: Some([("env".to_string(), "prod".to_string())].into()),
            match_expressions: Some(vec![
                expr("region", "In", &["eu", "us"]),
                expr("legacy", "DoesNotExist", &[]),
                expr("tier", "NotIn", &["db"]),
                expr("owner", "Exists", &[]),
            ]),
        })
        .unwrap();
        assert!(s.matches(&labels(&[
            ("env", "prod"),
            ("region", "eu"),
            ("owner", "x")
        ])));
        assert!(!s.matches(&labels(&[("env", "dev"), ("region", "eu"), ("owner", "x")])));
        assert!(!s.matches(&labels(&[
            ("env", "prod"),
            ("region", "ap"),
            ("owner", "x")
        ])));
        assert!(!s.matches(&labels(&[
            ("env", "prod"),
            ("region", "eu"),
            ("owner", "x"),
            ("legacy", "")
        ])));
        assert!(!s.matches(&labels(&[
            ("env", "prod"),
            ("region", "eu"),
            ("owner", "x"),
            ("tier", "db")
        ])));
        assert!(!s.matches(&labels(&[("env", "prod"), ("region", "eu")])));
    }

    #[test]
    fn malformed_requirements_are_errors() {
        let bad = [
            expr("a", "In", &[]),
            expr("a", "NotIn", &[]),
            expr("a", "Exists", &["x"]),
            expr("a", "Like", &["x"]),
            expr("-a", "Exists", &[]),
            expr("Bad_Prefix/a", "Exists", &[]),
            expr("", "Exists", &[]),
        ];
        for e in bad {
            let err = Selector::from_expressions(std::slice::from_ref(&e)).unwrap_err();
            assert!(!err.to_string().is_empty(), "{e:?}");
        }
        assert!(Selector::from_expressions(&[expr("example.com/a_b.c", "Exists", &[])]).is_ok());
    }
}
