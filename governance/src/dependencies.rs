//! Policy dependencies, judged as upstream's template sync judges them: a template is evaluated
//! only once every dependency's `status.compliant` reads as the dependency asks; until then it
//! is Pending (or, with `ignorePending`, Compliant), and its message names what it waits for.

use std::collections::BTreeMap;

use garrison_api::policy::v1::PolicyDependency;

/// What a dependency needs and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// `<Kind> <name>` as messages name it.
    pub label: String,
    /// The compliance it must reach.
    pub compliance: String,
}

/// The dependencies of a template: the Policy's own, then the template's extra ones. The same
/// object asked for two different states is an error, as upstream.
pub fn merge(
    policy: &[PolicyDependency],
    extra: &[PolicyDependency],
) -> Result<Vec<(PolicyDependency, Wanted)>, String> {
    let mut seen: BTreeMap<(String, String, String), String> = BTreeMap::new();
    let mut out = vec![];
    for d in policy.iter().chain(extra) {
        let kind = d.kind.clone().unwrap_or_else(|| "Policy".into());
        let compliance = d.compliance.clone().unwrap_or_else(|| "Compliant".into());
        let key = (
            kind.clone(),
            d.namespace.clone().unwrap_or_default(),
            d.name.clone(),
        );
        match seen.get(&key) {
            Some(c) if *c != compliance => {
                return Err(format!(
                    "dependency on {kind} {} has conflicting compliance states",
                    d.name
                ));
            }
            Some(_) => continue,
            None => {
                seen.insert(key, compliance.clone());
            }
        }
        out.push((
            d.clone(),
            Wanted {
                label: format!("{kind} {}", d.name),
                compliance,
            },
        ));
    }
    Ok(out)
}

/// The dependencies not satisfied, given each one's current `status.compliant` (`None` when
/// the object is missing or has no state: never satisfied).
pub fn unsatisfied(
    deps: &[(PolicyDependency, Wanted)],
    state_of: impl Fn(&PolicyDependency) -> Option<String>,
) -> Vec<&Wanted> {
    deps.iter()
        .filter(|(d, w)| state_of(d).as_deref() != Some(w.compliance.as_str()))
        .map(|(_, w)| w)
        .collect()
}

/// Upstream's message for a template waiting on `pending`:
/// `Dependencies were not satisfied: 1 is still pending (Policy p.base)`.
pub fn pending_message(pending: &[&Wanted]) -> String {
    let mut labels: Vec<&str> = pending.iter().map(|w| w.label.as_str()).collect();
    labels.sort_unstable();
    let verb = if labels.len() == 1 { "is" } else { "are" };
    format!(
        "Dependencies were not satisfied: {} {verb} still pending ({})",
        labels.len(),
        labels.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(kind: &str, name: &str, compliance: Option<&str>) -> PolicyDependency {
        PolicyDependency {
            api_version: Some("policy.open-cluster-management.io/v1".into()),
            kind: Some(kind.into()),
            name: name.into(),
            namespace: None,
            compliance: compliance.map(Into::into),
        }
    }

    #[test]
    fn a_template_waits_for_every_dependency_in_the_state_it_asks_for() {
        let deps = merge(
            &[
                dep("Policy", "p.base", Some("Compliant")),
                dep("Policy", "p.audit", Some("NonCompliant")),
            ],
            &[
                dep("ConfigurationPolicy", "cp", None),
                dep("Policy", "p.base", Some("Compliant")),
            ],
        )
        .unwrap();
        assert_eq!(deps.len(), 3);
        let states = |d: &PolicyDependency| match d.name.as_str() {
            "p.base" => Some("Compliant".to_string()),
            "p.audit" => Some("Compliant".to_string()),
            _ => None,
        };
        let pending = unsatisfied(&deps, states);
        assert_eq!(
            pending_message(&pending),
            "Dependencies were not satisfied: 2 are still pending (ConfigurationPolicy cp, Policy p.audit)"
        );
        let all = |d: &PolicyDependency| {
            Some(
                if d.name == "p.audit" {
                    "NonCompliant"
                } else {
                    "Compliant"
                }
                .to_string(),
            )
        };
        assert!(unsatisfied(&deps, all).is_empty());
        let one = unsatisfied(&deps[..1], |_| Some("Pending".into()));
        assert_eq!(
            pending_message(&one),
            "Dependencies were not satisfied: 1 is still pending (Policy p.base)"
        );
    }

    #[test]
    fn the_same_dependency_in_two_states_is_an_error() {
        let e = merge(
            &[dep("Policy", "p.base", Some("Compliant"))],
            &[dep("Policy", "p.base", Some("NonCompliant"))],
        )
        .unwrap_err();
        assert_eq!(
            e,
            "dependency on Policy p.base has conflicting compliance states"
        );
    }
}
