//! What auditors ask of the history: filters, sorting and paging of records, and the
//! compliance per control at a point in time or over a range, with the records behind it.
//! Shared by every store, so that SQLite and PostgreSQL answer alike.

use std::collections::{BTreeMap, BTreeSet};

use super::Record;

/// Which records: every field narrows; empty lists and `None` do not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only these clusters, whatever else is asked: what the caller may see. `None`: all.
    pub visible: Option<BTreeSet<String>>,
    /// Clusters asked for.
    pub clusters: Vec<String>,
    /// Root policies asked for, by name (`name`) or by namespace and name (`ns/name`).
    pub policies: Vec<String>,
    /// Namespaces of root policies.
    pub namespaces: Vec<String>,
    /// Templates, by name (the policy templates' own names, of any kind).
    pub templates: Vec<String>,
    /// Compliance states.
    pub states: Vec<String>,
    /// Standards (any of).
    pub standards: Vec<String>,
    /// Categories (any of).
    pub categories: Vec<String>,
    /// Controls (any of).
    pub controls: Vec<String>,
    /// At or after this time (RFC 3339, UTC).
    pub since: Option<String>,
    /// At or before this time (RFC 3339, UTC).
    pub until: Option<String>,
}

impl Filter {
    /// This filter without its standards, categories and controls, and those alone.
    pub fn split_tags(&self) -> (Filter, Filter) {
        let tags = Filter {
            standards: self.standards.clone(),
            categories: self.categories.clone(),
            controls: self.controls.clone(),
            ..Filter::default()
        };
        let base = Filter {
            standards: vec![],
            categories: vec![],
            controls: vec![],
            ..self.clone()
        };
        (base, tags)
    }

    /// Whether `r` passes, as the stores' queries decide.
    pub fn matches(&self, r: &Record) -> bool {
        let e = &r.event;
        let any = |wanted: &[String], have: &[String]| {
            wanted.is_empty() || wanted.iter().any(|w| have.contains(w))
        };
        let (ns, name) = e.policy.split_once('/').unwrap_or(("", &e.policy));
        self.visible.as_ref().is_none_or(|v| v.contains(&e.cluster))
            && (self.clusters.is_empty() || self.clusters.contains(&e.cluster))
            && (self.policies.is_empty()
                || self.policies.iter().any(|p| *p == e.policy || p == name))
            && (self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == ns))
            && (self.templates.is_empty()
                || self.templates.iter().any(|t| {
                    e.template
                        .split_once('/')
                        .map_or(e.template.as_str(), |(_, n)| n)
                        == t
                }))
            && (self.states.is_empty() || self.states.contains(&e.state))
            && any(&self.standards, &e.standards)
            && any(&self.categories, &e.categories)
            && any(&self.controls, &e.controls)
            && self.since.as_ref().is_none_or(|s| e.time >= *s)
            && self.until.as_ref().is_none_or(|u| e.time <= *u)
    }
}

/// What records are sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Time of the change (then position).
    #[default]
    Time,
    /// Cluster.
    Cluster,
    /// Root policy.
    Policy,
    /// Compliance state.
    State,
    /// Position in the history.
    Id,
}

impl SortKey {
    /// Reads a sort key by its API name.
    pub fn parse(s: &str) -> Result<SortKey, String> {
        Ok(match s {
            "event.timestamp" | "timestamp" | "time" => SortKey::Time,
            "cluster.name" | "cluster" => SortKey::Cluster,
            "policy.name" | "parent_policy.name" | "policy" => SortKey::Policy,
            "event.compliance" | "compliance" | "state" => SortKey::State,
            "id" => SortKey::Id,
            other => {
                return Err(format!(
                    "invalid sort {other:?}: expected one of event.timestamp, cluster.name, policy.name, event.compliance, id"
                ));
            }
        })
    }

    /// The column, as the stores name it.
    pub fn column(self) -> &'static str {
        match self {
            SortKey::Time => "time",
            SortKey::Cluster => "cluster",
            SortKey::Policy => "policy",
            SortKey::State => "state",
            SortKey::Id => "seq",
        }
    }
}

/// A page of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// From 1.
    pub page: u64,
    /// Records per page.
    pub per_page: u64,
    /// Sorted by.
    pub sort: SortKey,
    /// Newest (largest) first.
    pub descending: bool,
}

/// The most records a page holds.
pub const MAX_PER_PAGE: u64 = 100_000;

impl Default for Paging {
    fn default() -> Self {
        Paging {
            page: 1,
            per_page: 20,
            sort: SortKey::Time,
            descending: true,
        }
    }
}

/// One page of records and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The records.
    pub records: Vec<Record>,
    /// Which page.
    pub page: u64,
    /// Records per page.
    pub per_page: u64,
    /// How many match in all.
    pub total: u64,
}

impl Page {
    /// How many pages there are.
    pub fn pages(&self) -> u64 {
        self.total.div_ceil(self.per_page.max(1))
    }
}

/// When: a point, or a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// The state in force at this time (the last change at or before it).
    At(String),
    /// The changes in this range, and the state in force at its end.
    Range {
        /// Start, inclusive.
        since: String,
        /// End, inclusive.
        until: String,
    },
}

/// One cell of a report: a control on a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// The state in force (at the time, or at the range's end): NonCompliant when any template
    /// behind the control is, else Pending when any is, else Compliant when any is; Disabled
    /// when every template behind it was removed (from its policy, or its policy from the
    /// cluster); `None` when nothing was recorded yet.
    pub state: Option<String>,
    /// Over a range: whether any template was NonCompliant at some point in it.
    pub ever_noncompliant: bool,
    /// The records behind it: positions in the history.
    pub evidence: Vec<u64>,
}

/// A compliance report: per (standard, category, control), per cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// The rows: `(standard, category, control)` to cluster to cell.
    pub rows: BTreeMap<(String, String, String), BTreeMap<String, Cell>>,
}

fn worse(a: Option<&str>, b: &str) -> String {
    // A removed template counts least; a state Garrison does not know, less than Compliant.
    let rank = |s: &str| match s {
        "NonCompliant" => 4,
        "Pending" => 3,
        "Compliant" => 2,
        "Disabled" => 0,
        _ => 1,
    };
    match a {
        Some(a) if rank(a) >= rank(b) => a.to_string(),
        _ => b.to_string(),
    }
}

/// Builds a report from `in_force` (the last record per template and cluster at the time, or
/// at the range's end) and `changes` (over a range, the records in it).
pub fn report(in_force: &[Record], changes: &[Record]) -> Report {
    let mut out = Report::default();
    let keys = |r: &Record| -> Vec<(String, String, String)> {
        let e = &r.event;
        let or_none = |v: &[String]| -> Vec<String> {
            if v.is_empty() {
                vec![String::new()]
            } else {
                v.to_vec()
            }
        };
        let mut k = vec![];
        for s in or_none(&e.standards) {
            for c in or_none(&e.categories) {
                for x in or_none(&e.controls) {
                    k.push((s.clone(), c.clone(), x.clone()));
                }
            }
        }
        k
    };
    for r in in_force {
        for key in keys(r) {
            let cell = out
                .rows
                .entry(key)
                .or_default()
                .entry(r.event.cluster.clone())
                .or_insert(Cell {
                    state: None,
                    ever_noncompliant: false,
                    evidence: vec![],
                });
            cell.state = Some(worse(cell.state.as_deref(), &r.event.state));
            cell.ever_noncompliant |= r.event.state == "NonCompliant";
            cell.evidence.push(r.seq);
        }
    }
    for r in changes {
        for key in keys(r) {
            let cell = out
                .rows
                .entry(key)
                .or_default()
                .entry(r.event.cluster.clone())
                .or_insert(Cell {
                    state: None,
                    ever_noncompliant: false,
                    evidence: vec![],
                });
            cell.ever_noncompliant |= r.event.state == "NonCompliant";
            if !cell.evidence.contains(&r.seq) {
                cell.evidence.push(r.seq);
            }
        }
    }
    for cells in out.rows.values_mut() {
        for cell in cells.values_mut() {
            cell.evidence.sort_unstable();
        }
    }
    out
}

/// The last record per (cluster, replica, template) among `records` at or before `at`: the
/// reference for what the stores compute in SQL.
pub fn in_force_at<'a>(records: impl IntoIterator<Item = &'a Record>, at: &str) -> Vec<Record> {
    let mut last: BTreeMap<(String, String, String), &Record> = BTreeMap::new();
    for r in records {
        if r.event.time.as_str() > at {
            continue;
        }
        let k = (
            r.event.cluster.clone(),
            r.event.replica.clone(),
            r.event.template.clone(),
        );
        match last.get(&k) {
            Some(l) if (l.event.time.as_str(), l.seq) >= (r.event.time.as_str(), r.seq) => {}
            _ => {
                last.insert(k, r);
            }
        }
    }
    let mut out: Vec<Record> = last.into_values().cloned().collect();
    out.sort_by_key(|r| r.seq);
    out
}

/// Normalises a time given by a user or a reporter to the stored form, RFC 3339 in UTC with
/// whole seconds (`2026-03-03T10:00:00Z`), which sorts as text in time order.
pub fn normalise_time(s: &str) -> Result<String, String> {
    let t: jiff::Timestamp = s
        .trim()
        .parse()
        .or_else(|_| {
            // A date alone means its first second, UTC.
            s.trim()
                .parse::<jiff::civil::Date>()
                .map_err(|e| e.to_string())
                .and_then(|d| {
                    d.to_zoned(jiff::tz::TimeZone::UTC)
                        .map(|z| z.timestamp())
                        .map_err(|e| e.to_string())
                })
        })
        .map_err(|e| {
            format!("invalid time {s:?}: expected RFC 3339 (2026-03-03T10:00:00Z) or a date ({e})")
        })?;
    Ok(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Event;

    fn rec(seq: u64, time: &str, cluster: &str, state: &str) -> Record {
        Record {
            seq,
            prev: String::new(),
            hash: String::new(),
            event: Event {
                time: time.into(),
                cluster: cluster.into(),
                policy: "policies/ac-2".into(),
                replica: "policies.ac-2".into(),
                template: "ConfigurationPolicy/accounts".into(),
                state: state.into(),
                standards: vec!["NIST SP 800-53".into()],
                categories: vec!["AC Access Control".into()],
                controls: vec!["AC-2".into()],
                ..Event::default()
            },
        }
    }

    #[test]
    fn the_state_in_force_is_the_last_change_at_or_before_the_time() {
        let all = [
            rec(1, "2026-03-01T00:00:00Z", "c1", "Compliant"),
            rec(2, "2026-03-02T00:00:00Z", "c1", "NonCompliant"),
            rec(3, "2026-03-04T00:00:00Z", "c1", "Compliant"),
            rec(4, "2026-03-05T00:00:00Z", "c2", "NonCompliant"),
        ];
        let at = in_force_at(&all, "2026-03-03T00:00:00Z");
        assert_eq!(at.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2]);
        let r = report(&at, &[]);
        let cells = &r.rows[&(
            "NIST SP 800-53".to_string(),
            "AC Access Control".to_string(),
            "AC-2".to_string(),
        )];
        assert_eq!(cells["c1"].state.as_deref(), Some("NonCompliant"));
        assert_eq!(cells["c1"].evidence, vec![2]);
        assert!(!cells.contains_key("c2"), "nothing recorded for c2 yet");
        let later = in_force_at(&all, "2026-03-09T00:00:00Z");
        assert_eq!(later.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3, 4]);
    }

    #[test]
    fn a_removed_template_counts_least_and_a_cell_of_removed_templates_is_disabled() {
        let key = (
            "NIST SP 800-53".to_string(),
            "AC Access Control".to_string(),
            "AC-2".to_string(),
        );
        let state = |states: &[&str]| {
            let recs: Vec<Record> = states
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let mut r = rec(i as u64 + 1, "2026-03-01T00:00:00Z", "c1", s);
                    r.event.template = format!("ConfigurationPolicy/t{i}");
                    r
                })
                .collect();
            report(&recs, &[]).rows[&key]["c1"].state.clone()
        };
        // In either order, whatever else is in force outranks a removal.
        for (a, b) in [("Disabled", "Compliant"), ("Compliant", "Disabled")] {
            assert_eq!(state(&[a, b]).as_deref(), Some("Compliant"));
        }
        assert_eq!(
            state(&["Disabled", "Unknown"]).as_deref(),
            Some("Unknown"),
            "a state Garrison does not know is not hidden by a removal"
        );
        assert_eq!(
            state(&["Compliant", "Unknown"]).as_deref(),
            Some("Compliant")
        );
        assert_eq!(
            state(&["Disabled", "NonCompliant", "Compliant"]).as_deref(),
            Some("NonCompliant")
        );
        assert_eq!(
            state(&["Disabled", "Disabled"]).as_deref(),
            Some("Disabled")
        );
    }

    #[test]
    fn filters_narrow_and_visibility_always_applies() {
        let r = rec(1, "2026-03-01T00:00:00Z", "c1", "Compliant");
        assert!(Filter::default().matches(&r));
        let f = Filter {
            visible: Some(["c2".to_string()].into()),
            ..Filter::default()
        };
        assert!(!f.matches(&r));
        let f = Filter {
            controls: vec!["AC-3".into(), "AC-2".into()],
            policies: vec!["ac-2".into()],
            namespaces: vec!["policies".into()],
            since: Some("2026-03-01T00:00:00Z".into()),
            ..Filter::default()
        };
        assert!(f.matches(&r));
        let f = Filter {
            policies: vec!["other/ac-2".into()],
            ..Filter::default()
        };
        assert!(!f.matches(&r));
    }

    #[test]
    fn times_are_normalised_or_refused() {
        assert_eq!(
            normalise_time("2026-03-03T11:00:00+01:00").unwrap(),
            "2026-03-03T10:00:00Z"
        );
        assert_eq!(
            normalise_time("2026-03-03").unwrap(),
            "2026-03-03T00:00:00Z"
        );
        assert!(
            normalise_time("yesterday")
                .unwrap_err()
                .contains("invalid time")
        );
    }
}
