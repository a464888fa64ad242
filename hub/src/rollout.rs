//! Rollout strategies over a placement's decision groups, with the semantics of OCM's rollout
//! helper (the one ManifestWorkReplicaSet and add-ons use): which clusters get the current
//! version now, given each cluster's state.
//!
//! - **All**: every cluster at once; `progressDeadline` turns a cluster stuck in Progressing or
//!   Failed into TimeOut.
//! - **Progressive**: mandatory decision groups first (no failure tolerated there), then the
//!   other clusters by name, at most `maxConcurrency` in flight (count or percentage of those
//!   clusters, rounded up). A cluster stays in flight while Progressing, while Failed within its
//!   deadline, and while Succeeded for less than `minSuccessTime`. Once more than `maxFailures`
//!   clusters (count or percentage of all clusters) are Failed or TimeOut, no new cluster
//!   starts.
//! - **ProgressivePerGroup**: mandatory groups first, then group by group in index order: the
//!   next group starts only when nothing of the earlier ones is in flight except failures within
//!   `maxFailures` (of the group's size).
//!
//! Clusters with a state but no longer in any decision are returned as removed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use garrison_api::cluster::v1alpha1::{
    MandatoryDecisionGroup, RolloutConfig, RolloutStrategy, RolloutType,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// A cluster's rollout state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Should get the current version.
    ToApply,
    /// Applying or becoming healthy.
    Progressing,
    /// Healthy on the current version.
    Succeeded,
    /// Unhealthy on the current version.
    Failed,
    /// Progressing or Failed past its deadline.
    TimeOut,
    /// Left alone.
    Skip,
}

/// A decision group: index and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GroupKey {
    /// `decision-group-index`.
    pub index: i32,
    /// `decision-group-name`.
    pub name: String,
}

/// One cluster's state, and when it last changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterStatus {
    /// The cluster.
    pub cluster: String,
    /// Its decision group.
    pub group: GroupKey,
    /// Its state.
    pub status: Status,
    /// When the condition the state comes from last changed.
    pub last_transition: Option<jiff::Timestamp>,
    /// When the state should be looked at again (a soak or a deadline ending).
    pub recheck: Option<jiff::Timestamp>,
}

impl ClusterStatus {
    /// A state without a time.
    pub fn new(cluster: &str, status: Status) -> Self {
        ClusterStatus {
            cluster: cluster.into(),
            group: GroupKey::default(),
            status,
            last_transition: None,
            recheck: None,
        }
    }
}

/// The placement's decisions, by group.
pub type Groups = BTreeMap<GroupKey, BTreeSet<String>>;

/// The decision groups of a placement's PlacementDecisions, by their group labels.
pub fn groups_of<'a>(
    decisions: impl IntoIterator<Item = &'a garrison_api::cluster::v1beta1::PlacementDecision>,
) -> Groups {
    use garrison_api::labels::{DECISION_GROUP_INDEX, DECISION_GROUP_NAME};
    use kube::ResourceExt;
    let mut groups = Groups::new();
    for d in decisions {
        let key = GroupKey {
            index: d
                .labels()
                .get(DECISION_GROUP_INDEX)
                .and_then(|i| i.parse().ok())
                .unwrap_or(0),
            name: d
                .labels()
                .get(DECISION_GROUP_NAME)
                .cloned()
                .unwrap_or_default(),
        };
        let entry = groups.entry(key).or_default();
        for e in d.status.iter().flat_map(|s| s.decisions.iter()) {
            entry.insert(e.cluster_name.clone());
        }
    }
    groups
}

/// What to do now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RolloutResult {
    /// Clusters in flight; those with [`Status::ToApply`] should get the current version.
    pub to_rollout: Vec<ClusterStatus>,
    /// Clusters past their deadline.
    pub timed_out: Vec<ClusterStatus>,
    /// Clusters with a state that are no longer chosen.
    pub removed: Vec<ClusterStatus>,
    /// More failures than allowed: nothing new starts.
    pub max_failure_breach: bool,
    /// When to look again.
    pub recheck_after: Option<Duration>,
}

/// A Go-style duration (`90s`, `5m`, `1h30m`, `250ms`, `0`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(format!("invalid duration {s:?}"));
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("invalid duration {s:?}: missing unit"))?;
        let (num, tail) = rest.split_at(num_len);
        let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let secs = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(format!("invalid duration {s:?}: unknown unit {unit:?}")),
        };
        total += n * secs;
        rest = tail;
    }
    Ok(Duration::from_secs_f64(total))
}

/// `progressDeadline`: `None` (or unset) is forever.
pub fn parse_deadline(s: Option<&str>) -> Result<Option<Duration>, String> {
    match s.map(str::trim) {
        None | Some("") | Some("None") => Ok(None),
        Some(v) => {
            let ok = v.len() > 1
                && v[..v.len() - 1].chars().all(|c| c.is_ascii_digit())
                && v.ends_with(['h', 'm', 's']);
            if !ok {
                return Err("invalid timeout format".into());
            }
            parse_duration(v).map(Some)
        }
    }
}

/// A count or percentage of `total` (rounded up); out of 1..=total means `default`.
pub fn rollout_size(
    value: Option<&IntOrString>,
    total: usize,
    default: usize,
) -> Result<usize, String> {
    let length: i64 =
        match value {
            None => 0,
            Some(IntOrString::Int(n)) => i64::from(*n),
            // A string is a percentage or a plain number, as the CRD's pattern and its default
            // ("0") allow.
            Some(IntOrString::String(s)) => match s.strip_suffix('%') {
                Some(p) => {
                    let pct = p.parse::<f64>().map_err(|_| {
                        format!("'{s}' is an invalid maximum threshold value: string is not a number or percentage")
                    })?;
                    (pct / 100.0 * total as f64).ceil() as i64
                }
                None => s.parse::<i64>().map_err(|_| {
                    format!("'{s}' is an invalid maximum threshold value: string is not a number or percentage")
                })?,
            },
        };
    Ok(if length <= 0 || length as usize > total {
        default
    } else {
        length as usize
    })
}

struct Clock {
    now: jiff::Timestamp,
    min_success: Duration,
    deadline: Option<Duration>,
}

fn add(t: jiff::Timestamp, d: Duration) -> jiff::Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(jiff::Timestamp::MAX)
}

impl Clock {
    /// The clock of a progressive strategy's settings.
    fn of(config: &RolloutConfig, now: jiff::Timestamp) -> Result<Self, String> {
        Ok(Clock {
            now,
            min_success: parse_duration(config.min_success_time.as_deref().unwrap_or("0"))?,
            deadline: parse_deadline(config.progress_deadline.as_deref())?,
        })
    }

    /// Sorts one known state into in-flight or timed out; returns the state after a timeout.
    fn judge(
        &self,
        mut st: ClusterStatus,
        rollout: &mut Vec<ClusterStatus>,
        timed_out: &mut Vec<ClusterStatus>,
    ) -> Status {
        let since = st.last_transition.unwrap_or(self.now);
        match st.status {
            Status::ToApply => rollout.push(st.clone()),
            Status::Succeeded => {
                let soak_end = add(since, self.min_success);
                if self.now < soak_end {
                    st.recheck = Some(soak_end);
                    rollout.push(st.clone());
                }
            }
            Status::TimeOut | Status::Skip => {}
            Status::Progressing | Status::Failed => match self.deadline {
                None => {
                    st.recheck = None;
                    rollout.push(st.clone());
                }
                Some(d) => {
                    let deadline = add(since, d);
                    st.recheck = Some(deadline);
                    if self.now < deadline {
                        rollout.push(st.clone());
                    } else {
                        st.status = Status::TimeOut;
                        timed_out.push(st.clone());
                    }
                }
            },
        }
        st.status
    }

    fn recheck_after(&self, rollout: &[ClusterStatus]) -> Option<Duration> {
        rollout
            .iter()
            .filter_map(|c| c.recheck)
            .filter(|t| *t > self.now)
            .map(|t| {
                let d = t.duration_since(self.now);
                Duration::from_millis(d.as_millis().max(0) as u64)
            })
            .min()
    }
}

fn all_clusters(groups: &Groups) -> BTreeMap<String, GroupKey> {
    let mut out = BTreeMap::new();
    for (k, cs) in groups {
        for c in cs {
            out.entry(c.clone()).or_insert_with(|| k.clone());
        }
    }
    out
}

fn per_cluster(
    clock: &Clock,
    groups: &Groups,
    size: usize,
    max_failures: usize,
    existing: &[ClusterStatus],
) -> RolloutResult {
    let mut existing: Vec<ClusterStatus> = existing.to_vec();
    existing.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    let mut rollout = Vec::new();
    let mut timed_out = Vec::new();
    let mut known = BTreeSet::new();
    let mut failures = 0;
    let mut breach = false;
    for st in existing.into_iter().filter(|s| !s.cluster.is_empty()) {
        known.insert(st.cluster.clone());
        if breach && st.status == Status::ToApply {
            continue;
        }
        let status = clock.judge(st, &mut rollout, &mut timed_out);
        if matches!(status, Status::Failed | Status::TimeOut) {
            failures += 1;
            breach = failures > max_failures;
        }
        if rollout.len() >= size {
            let recheck_after = clock.recheck_after(&rollout);
            return RolloutResult {
                to_rollout: rollout,
                timed_out,
                removed: Vec::new(),
                max_failure_breach: breach,
                recheck_after,
            };
        }
    }
    if !breach {
        for (cluster, group) in all_clusters(groups) {
            if rollout.len() >= size {
                break;
            }
            if known.contains(&cluster) {
                continue;
            }
            rollout.push(ClusterStatus {
                cluster,
                group,
                status: Status::ToApply,
                last_transition: None,
                recheck: None,
            });
        }
    }
    let recheck_after = clock.recheck_after(&rollout);
    RolloutResult {
        to_rollout: rollout,
        timed_out,
        removed: Vec::new(),
        max_failure_breach: breach,
        recheck_after,
    }
}

fn per_group(
    clock: &Clock,
    groups: &Groups,
    max_failures: Option<&IntOrString>,
    existing: &[ClusterStatus],
) -> Result<RolloutResult, String> {
    let mut rollout = Vec::new();
    let mut timed_out = Vec::new();
    let mut recorded: BTreeMap<String, Status> = BTreeMap::new();
    for st in existing
        .iter()
        .filter(|s| !s.cluster.is_empty() && s.status != Status::ToApply)
    {
        let status = clock.judge(st.clone(), &mut rollout, &mut timed_out);
        recorded.insert(st.cluster.clone(), status);
    }
    let mut total_failures = 0;
    let mut breach = false;
    for (key, clusters) in groups {
        let max_group = rollout_size(max_failures, clusters.len(), 0)?;
        let mut group_failures = 0;
        for c in clusters {
            if let Some(status) = recorded.get(c) {
                if matches!(status, Status::Failed | Status::TimeOut) {
                    group_failures += 1;
                    breach = group_failures > max_group;
                }
                continue;
            }
            rollout.push(ClusterStatus {
                cluster: c.clone(),
                group: key.clone(),
                status: Status::ToApply,
                last_transition: None,
                recheck: None,
            });
        }
        total_failures += group_failures;
        if rollout.len() > total_failures || breach {
            break;
        }
    }
    let recheck_after = clock.recheck_after(&rollout);
    Ok(RolloutResult {
        to_rollout: rollout,
        timed_out,
        removed: Vec::new(),
        max_failure_breach: breach,
        recheck_after,
    })
}

/// The mandatory groups' step, while it is not done: they go first and tolerate no failure.
fn mandatory_first(
    clock: &Clock,
    mandatory: &Groups,
    current: &[ClusterStatus],
) -> Result<Option<RolloutResult>, String> {
    if mandatory.is_empty() {
        return Ok(None);
    }
    let r = per_group(clock, mandatory, None, current)?;
    Ok((!r.to_rollout.is_empty() || !r.timed_out.is_empty()).then_some(r))
}

fn select(groups: &Groups, mandatory: &[MandatoryDecisionGroup]) -> (Groups, Groups) {
    let is_mandatory = |k: &GroupKey| {
        mandatory.iter().any(|m| match m.group_name.as_deref() {
            Some(name) if !name.is_empty() => k.name == name,
            _ => m.group_index == Some(k.index),
        })
    };
    let (mut yes, mut no) = (Groups::new(), Groups::new());
    for (k, v) in groups {
        if is_mandatory(k) {
            yes.insert(k.clone(), v.clone());
        } else {
            no.insert(k.clone(), v.clone());
        }
    }
    (yes, no)
}

/// Decides the next step of a rollout of `strategy` over `groups`, given the clusters' states.
pub fn rollout(
    strategy: &RolloutStrategy,
    groups: &Groups,
    existing: &[ClusterStatus],
    now: jiff::Timestamp,
) -> Result<RolloutResult, String> {
    let chosen = all_clusters(groups);
    let (current, removed): (Vec<ClusterStatus>, Vec<ClusterStatus>) = existing
        .iter()
        .cloned()
        .partition(|s| chosen.contains_key(&s.cluster));
    let kind = strategy.type_.unwrap_or(RolloutType::All);
    let mut result = match kind {
        RolloutType::All => {
            let cfg = strategy.all.clone().unwrap_or_default().config;
            let clock = Clock {
                now,
                min_success: Duration::ZERO,
                deadline: parse_deadline(cfg.progress_deadline.as_deref())?,
            };
            per_cluster(&clock, groups, chosen.len(), chosen.len(), &current)
        }
        RolloutType::Progressive => {
            let p = strategy.progressive.clone().unwrap_or_default();
            let clock = Clock::of(&p.config, now)?;
            let max_failures = rollout_size(p.config.max_failures.as_ref(), chosen.len(), 0)
                .map_err(|e| format!("failed to parse the provided maxFailures: {e}"))?;
            let (mandatory, rest) = select(groups, &p.mandatory_decision_groups);
            match mandatory_first(&clock, &mandatory, &current)? {
                Some(r) => r,
                None => {
                    let rest_total = all_clusters(&rest).len();
                    let size = rollout_size(p.max_concurrency.as_ref(), rest_total, rest_total)
                        .map_err(|e| format!("failed to parse the provided maxConcurrency: {e}"))?;
                    per_cluster(&clock, &rest, size, max_failures, &current)
                }
            }
        }
        RolloutType::ProgressivePerGroup => {
            let p = strategy.progressive_per_group.clone().unwrap_or_default();
            let clock = Clock::of(&p.config, now)?;
            rollout_size(p.config.max_failures.as_ref(), chosen.len(), 0)
                .map_err(|e| format!("failed to parse the provided maxFailures: {e}"))?;
            let (mandatory, rest) = select(groups, &p.mandatory_decision_groups);
            match mandatory_first(&clock, &mandatory, &current)? {
                Some(r) => r,
                None => per_group(&clock, &rest, p.config.max_failures.as_ref(), &current)?,
            }
        }
    };
    result.removed = removed;
    Ok(result)
}

#[cfg(test)]
mod tests;
