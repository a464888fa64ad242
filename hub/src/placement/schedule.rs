//! One scheduling pass of a Placement, with upstream OCM's semantics, as a pure function of a
//! snapshot: no I/O, so every rule is tested directly.
//!
//! 1. Candidates: the clusters of the cluster sets bound in the placement's namespace (a binding
//!    counts when the set it names exists), intersected with `spec.clusterSets` when given,
//!    without clusters being deleted.
//! 2. Filters: predicates (ORed; within one, label, claim and CEL selectors ANDed), then taints
//!    and tolerations.
//! 3. Prioritizers: Steady, Balance, ResourceAllocatableCPU/Memory and AddOn scores, each in
//!    -100..=100, multiplied by their weights and summed. Additive mode starts from Balance:1 and
//!    Steady:1; Exact uses only what is configured.
//! 4. Selection: by total score, highest first, ties by cluster name; the first
//!    `numberOfClusters`.
//! 5. Decision groups: clusters matching each `decisionGroups[]` selector in turn, then the
//!    rest, each sorted by name and cut into `clustersPerDecisionGroup`; every group then split
//!    into PlacementDecisions of at most 100 entries named `<placement>-decision-<n>` from 1.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use garrison_api::cluster::v1::TaintEffect;
use garrison_api::cluster::v1alpha1::AddOnPlacementScore;
use garrison_api::cluster::v1beta1::{
    ClusterClaimSelector, Placement, PrioritizerPolicyMode, ScoreCoordinateType, Toleration,
    TolerationOperator,
};
use garrison_api::cluster::v1beta2::{ManagedClusterSet, SelectorType};
use garrison_api::conditions::{STATUS_FALSE, STATUS_TRUE, placement as pc};
use garrison_api::labels::CLUSTER_SET;
use garrison_api::selector::Selector;
use garrison_api::{ManagedCluster, ManagedClusterSetBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::cel;

/// Highest score a prioritizer gives.
pub const MAX_SCORE: i64 = 100;
/// Most entries in one PlacementDecision.
pub const MAX_DECISIONS_PER_OBJECT: usize = 100;

/// Where AddOnPlacementScores come from: `(cluster, resource name)` names the score object in
/// the cluster's namespace.
pub trait ScoreSource: Send + Sync {
    /// The AddOnPlacementScore `resource` in namespace `cluster`, if any.
    fn score(&self, cluster: &str, resource: &str) -> Option<Arc<AddOnPlacementScore>>;
}

/// Everything a pass reads.
pub struct Snapshot<'a> {
    /// Every ManagedCluster.
    pub clusters: &'a [Arc<ManagedCluster>],
    /// Every ManagedClusterSet, by name.
    pub sets: &'a BTreeMap<String, Arc<ManagedClusterSet>>,
    /// The ManagedClusterSetBindings in the placement's namespace.
    pub bindings: &'a [Arc<ManagedClusterSetBinding>],
    /// The clusters in this placement's current PlacementDecisions.
    pub existing: &'a BTreeSet<String>,
    /// Per cluster, how many decision entries of other placements name it.
    pub others: &'a HashMap<String, u32>,
    /// AddOnPlacementScores.
    pub scores: Arc<dyn ScoreSource>,
    /// The time of the pass.
    pub now: jiff::Timestamp,
}

/// How a pass ended, as upstream's framework status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Code {
    /// Everything worked.
    Success,
    /// Scheduled, with something to report (expired scores).
    Warning,
    /// Could not schedule.
    Error,
    /// The placement's spec is wrong.
    Misconfigured,
}

/// One decision group of the result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// `decisionGroupIndex`, from 0.
    pub index: usize,
    /// `decisionGroupName`; empty for the clusters no named group took.
    pub name: String,
    /// Its clusters, sorted by name.
    pub clusters: Vec<String>,
}

/// One PlacementDecision to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecisionSlice {
    /// `<placement>-decision-<n>`.
    pub name: String,
    /// The group it belongs to.
    pub group_index: usize,
    /// The group's name.
    pub group_name: String,
    /// Its clusters, sorted by name, at most [`MAX_DECISIONS_PER_OBJECT`].
    pub clusters: Vec<String>,
}

/// A condition to set: status, reason, message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    /// `True` or `False`.
    pub status: &'static str,
    /// The reason.
    pub reason: &'static str,
    /// The message.
    pub message: String,
}

/// The result of a pass.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// How the pass ended.
    pub code: Code,
    /// The ending's message (`<plugin>:<message>` for a misconfiguration).
    pub message: String,
    /// The decision groups, in index order. At least one.
    pub groups: Vec<Group>,
    /// Selected clusters.
    pub selected: usize,
    /// Final scores of the filtered clusters, best first.
    pub scores: Vec<(String, i64)>,
    /// `PlacementSatisfied`.
    pub satisfied: Cond,
    /// `PlacementMisconfigured`.
    pub misconfigured: Cond,
    /// When a toleration of a selected cluster runs out, so the placement is looked at again.
    pub requeue_after: Option<Duration>,
}

impl Outcome {
    /// The PlacementDecisions of this outcome for placement `name`: every group split into
    /// slices of at most 100, numbered from 1 across groups; an empty group still has one.
    pub fn decisions(&self, name: &str) -> Vec<DecisionSlice> {
        let mut out = Vec::new();
        for g in &self.groups {
            let chunks: Vec<&[String]> = if g.clusters.is_empty() {
                vec![&[]]
            } else {
                g.clusters.chunks(MAX_DECISIONS_PER_OBJECT).collect()
            };
            for chunk in chunks {
                out.push(DecisionSlice {
                    name: format!("{name}-decision-{}", out.len() + 1),
                    group_index: g.index,
                    group_name: g.name.clone(),
                    clusters: chunk.to_vec(),
                });
            }
        }
        out
    }
}

/// A failed step: the code, the plugin it came from, and the message.
struct Failure {
    code: Code,
    plugin: &'static str,
    message: String,
}

impl Failure {
    fn misconfigured(plugin: &'static str, message: impl Into<String>) -> Self {
        Failure {
            code: Code::Misconfigured,
            plugin,
            message: message.into(),
        }
    }
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

fn labels_of(c: &ManagedCluster) -> &BTreeMap<String, String> {
    c.metadata.labels.as_ref().unwrap_or(&NO_LABELS)
}

fn claims_of(c: &ManagedCluster) -> BTreeMap<String, String> {
    c.status
        .iter()
        .flat_map(|s| s.cluster_claims.iter())
        .filter_map(|cl| Some((cl.name.clone()?, cl.value.clone().unwrap_or_default())))
        .collect()
}

/// A cluster set's membership rule, checked once.
pub enum SetSelector {
    /// Clusters labelled with the set's name.
    Exclusive(String),
    /// Clusters matching a label selector; None matches nothing (no selector, or a
    /// malformed one).
    Labels(Option<Selector>),
}

impl SetSelector {
    /// The rule of `set`.
    pub fn of(set: &ManagedClusterSet) -> Self {
        let sel = set.spec.cluster_selector.clone().unwrap_or_default();
        match sel
            .selector_type
            .unwrap_or(SelectorType::ExclusiveClusterSetLabel)
        {
            SelectorType::ExclusiveClusterSetLabel => SetSelector::Exclusive(set.name_any()),
            // A set without a selector selects nothing; an empty one selects everything.
            SelectorType::LabelSelector => SetSelector::Labels(
                sel.label_selector
                    .as_ref()
                    .and_then(|ls| Selector::new(ls).ok()),
            ),
        }
    }

    /// Whether `cluster` is a member.
    pub fn selects(&self, cluster: &ManagedCluster) -> bool {
        match self {
            SetSelector::Exclusive(name) => labels_of(cluster).get(CLUSTER_SET) == Some(name),
            SetSelector::Labels(sel) => sel.as_ref().is_some_and(|s| s.matches(labels_of(cluster))),
        }
    }
}

/// Whether `set` selects `cluster`.
pub fn set_selects(set: &ManagedClusterSet, cluster: &ManagedCluster) -> bool {
    SetSelector::of(set).selects(cluster)
}

/// Compiled `requiredClusterSelector` or `groupClusterSelector`.
struct ClusterSelector {
    labels: Selector,
    claims: Selector,
    cel: Option<cel::Expressions>,
}

impl ClusterSelector {
    fn new(
        label: Option<&LabelSelector>,
        claim: Option<&ClusterClaimSelector>,
        cel_exprs: Option<&[String]>,
    ) -> Result<Self, String> {
        let labels = match label {
            Some(l) => Selector::new(l).map_err(|e| e.to_string())?,
            None => Selector::default(),
        };
        let claims = match claim {
            Some(c) => {
                Selector::from_expressions(&c.match_expressions).map_err(|e| e.to_string())?
            }
            None => Selector::default(),
        };
        let cel = match cel_exprs {
            Some(e) if !e.is_empty() => Some(cel::compile(e)?),
            _ => None,
        };
        Ok(ClusterSelector {
            labels,
            claims,
            cel,
        })
    }

    fn matches(
        &self,
        c: &ManagedCluster,
        env: Option<&cel::Env>,
        cel_value: &mut Option<::cel::Value>,
    ) -> bool {
        if !self.labels.matches(labels_of(c))
            || (!self.claims.is_empty() && !self.claims.matches(&claims_of(c)))
        {
            return false;
        }
        let (Some(exprs), Some(env)) = (&self.cel, env) else {
            return true;
        };
        if cel_value.is_none() {
            *cel_value = cel::Env::cluster_value(c);
        }
        cel_value.as_ref().is_some_and(|v| env.matches(exprs, v))
    }
}

fn predicate_filter(
    placement: &Placement,
    clusters: Vec<Arc<ManagedCluster>>,
    scores: &Arc<dyn ScoreSource>,
) -> Result<Vec<Arc<ManagedCluster>>, Failure> {
    let predicates = &placement.spec.predicates;
    if predicates.is_empty() || clusters.is_empty() {
        return Ok(clusters);
    }
    let mut selectors = Vec::with_capacity(predicates.len());
    let mut wants_cel = false;
    for p in predicates {
        let rcs = p.required_cluster_selector.clone().unwrap_or_default();
        let sel = ClusterSelector::new(
            rcs.label_selector.as_ref(),
            rcs.claim_selector.as_ref(),
            rcs.cel_selector
                .as_ref()
                .map(|c| c.cel_expressions.as_slice()),
        )
        .map_err(|m| Failure::misconfigured("Predicate", m))?;
        wants_cel |= sel.cel.is_some();
        selectors.push(sel);
    }
    let env = wants_cel.then(|| cel::Env::new(scores.clone()));
    Ok(clusters
        .into_iter()
        .filter(|c| {
            let mut value = None;
            selectors
                .iter()
                .any(|s| s.matches(c, env.as_ref(), &mut value))
        })
        .collect())
}

fn validate_tolerations(tolerations: &[Toleration]) -> Result<(), Failure> {
    for t in tolerations {
        let key_empty = t.key.as_deref().unwrap_or_default().is_empty();
        if key_empty && t.operator != Some(TolerationOperator::Exists) {
            return Err(Failure::misconfigured(
                "TaintToleration",
                "If the key is empty, operator must be Exists.",
            ));
        }
        if t.operator == Some(TolerationOperator::Exists)
            && !t.value.as_deref().unwrap_or_default().is_empty()
        {
            return Err(Failure::misconfigured(
                "TaintToleration",
                "If the operator is Exists, the value should be empty.",
            ));
        }
    }
    Ok(())
}

/// Whether every taint of `cluster` is tolerated, and the earliest time a toleration used for
/// that runs out.
fn tolerated(
    cluster: &ManagedCluster,
    tolerations: &[Toleration],
    in_decisions: bool,
    now: jiff::Timestamp,
) -> (bool, Option<jiff::Timestamp>) {
    let mut until: Option<jiff::Timestamp> = None;
    for taint in &cluster.spec.taints {
        match taint.effect {
            TaintEffect::PreferNoSelect => continue,
            TaintEffect::NoSelectIfNew if in_decisions => continue,
            _ => {}
        }
        let mut ok = false;
        for t in tolerations {
            if t.effect.is_some_and(|e| e != taint.effect) {
                continue;
            }
            let key = t.key.as_deref().unwrap_or_default();
            if !key.is_empty() && key != taint.key {
                continue;
            }
            let value_ok = match t.operator.unwrap_or(TolerationOperator::Equal) {
                TolerationOperator::Exists => true,
                TolerationOperator::Equal => {
                    t.value.as_deref().unwrap_or_default()
                        == taint.value.as_deref().unwrap_or_default()
                }
            };
            if !value_ok {
                continue;
            }
            match t.toleration_seconds {
                None => {
                    ok = true;
                    break;
                }
                Some(secs) => {
                    let added = taint
                        .time_added
                        .as_ref()
                        .map(|t| t.0)
                        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
                    let expiry = added
                        .checked_add(jiff::SignedDuration::from_secs(secs))
                        .unwrap_or(jiff::Timestamp::MAX);
                    if now < expiry {
                        ok = true;
                        until = Some(until.map_or(expiry, |u| u.min(expiry)));
                        break;
                    }
                }
            }
        }
        if !ok {
            return (false, None);
        }
    }
    (true, until)
}

/// The prioritizers a placement uses, with weights, in a stable order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Prioritizer {
    Balance,
    Steady,
    ResourceAllocatable(&'static str),
    AddOn { resource: String, score: String },
}

fn weights(placement: &Placement) -> Result<Vec<(Prioritizer, i64)>, Failure> {
    let policy = placement
        .spec
        .prioritizer_policy
        .clone()
        .unwrap_or_default();
    let mut w: BTreeMap<Prioritizer, i64> = BTreeMap::new();
    if policy.mode.unwrap_or(PrioritizerPolicyMode::Additive) == PrioritizerPolicyMode::Additive {
        w.insert(Prioritizer::Balance, 1);
        w.insert(Prioritizer::Steady, 1);
    }
    for c in &policy.configurations {
        let weight = i64::from(c.weight.unwrap_or(1));
        let p = match c
            .score_coordinate
            .type_
            .unwrap_or(ScoreCoordinateType::BuiltIn)
        {
            ScoreCoordinateType::BuiltIn => {
                match c.score_coordinate.built_in.as_deref().unwrap_or_default() {
                    "Balance" => Prioritizer::Balance,
                    "Steady" => Prioritizer::Steady,
                    "ResourceAllocatableCPU" => Prioritizer::ResourceAllocatable("cpu"),
                    "ResourceAllocatableMemory" => Prioritizer::ResourceAllocatable("memory"),
                    other => {
                        return Err(Failure::misconfigured(
                            "",
                            format!("incorrect builtin prioritizer: {other}"),
                        ));
                    }
                }
            }
            ScoreCoordinateType::AddOn => match &c.score_coordinate.add_on {
                Some(a) => Prioritizer::AddOn {
                    resource: a.resource_name.clone(),
                    score: a.score_name.clone(),
                },
                None => return Err(Failure::misconfigured("", "addOn should not be empty")),
            },
        };
        w.insert(p, weight);
    }
    Ok(w.into_iter().filter(|(_, w)| *w != 0).collect())
}

/// A Kubernetes quantity ("4", "500m", "16Gi", "1.5e3") as an approximate number.
pub fn quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    // "1e3" is an exponent, "1E" alone is exa: let the float parser decide.
    let (num, suffix) = match num.parse::<f64>() {
        Ok(_) => (num, suffix),
        Err(_) if num.ends_with(['e', 'E']) => (&num[..num.len() - 1], &s[num.len() - 1..]),
        Err(_) => return None,
    };
    let base: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    Some(base * mult)
}

fn resource_of(c: &ManagedCluster, resource: &str) -> Option<f64> {
    let status = c.status.as_ref()?;
    let alloc = status.allocatable.get(resource)?;
    // Upstream counts a cluster only when it reports both allocatable and capacity.
    status.capacity.get(resource)?;
    quantity(&alloc.0)
}

/// Scores of one prioritizer, and a warning if it has one. Clusters it gives no score count 0.
fn score(
    p: &Prioritizer,
    clusters: &[Arc<ManagedCluster>],
    snap: &Snapshot<'_>,
) -> (HashMap<String, i64>, Option<String>) {
    let mut out = HashMap::new();
    match p {
        Prioritizer::Steady => {
            for c in clusters {
                let name = c.name_any();
                let s = if snap.existing.contains(&name) {
                    MAX_SCORE
                } else {
                    0
                };
                out.insert(name, s);
            }
        }
        Prioritizer::Balance => {
            let max = snap.others.values().copied().max().unwrap_or(0);
            for c in clusters {
                let name = c.name_any();
                let s = match snap.others.get(&name) {
                    Some(&n) if n > 0 && max > 0 => {
                        let usage = f64::from(n) / f64::from(max);
                        2 * ((MAX_SCORE as f64) * (0.5 - usage)) as i64
                    }
                    _ => MAX_SCORE,
                };
                out.insert(name, s);
            }
        }
        Prioritizer::ResourceAllocatable(res) => {
            let values: Vec<(String, f64)> = clusters
                .iter()
                .filter_map(|c| resource_of(c, res).map(|v| (c.name_any(), v)))
                .collect();
            let min = values.iter().map(|(_, v)| *v).fold(f64::INFINITY, f64::min);
            let max = values
                .iter()
                .map(|(_, v)| *v)
                .fold(f64::NEG_INFINITY, f64::max);
            for (name, v) in values {
                let s = if max != min {
                    (((v - min) / (max - min) - 0.5) * 2.0 * MAX_SCORE as f64) as i64
                } else {
                    MAX_SCORE
                };
                out.insert(name, s);
            }
        }
        Prioritizer::AddOn { resource, score } => {
            let mut expired = Vec::new();
            for c in clusters {
                let name = c.name_any();
                let mut s = 0;
                if let Some(obj) = snap.scores.score(&name, resource) {
                    let status = obj.status.clone().unwrap_or_default();
                    if status.valid_until.as_ref().is_some_and(|u| snap.now > u.0) {
                        expired.push(format!(" {name}/{resource}"));
                    } else {
                        for item in &status.scores {
                            if item.name == *score {
                                s = i64::from(item.value);
                            }
                        }
                    }
                }
                out.insert(name, s);
            }
            if !expired.is_empty() {
                return (
                    out,
                    Some(format!("AddOnPlacementScores{} expired", expired.concat())),
                );
            }
        }
    }
    (out, None)
}

/// The size of each decision group: a count, or a percentage of the selected clusters rounded
/// up; 0, unset or more than all means one group.
fn group_length(per_group: Option<&IntOrString>, total: usize) -> Result<usize, Failure> {
    let length = match per_group {
        None => 0,
        Some(IntOrString::Int(n)) => (*n).max(0) as usize,
        Some(IntOrString::String(s)) => {
            let pct = s
                .strip_suffix('%')
                .and_then(|p| p.parse::<f64>().ok())
                .ok_or_else(|| {
                    Failure::misconfigured(
                        "",
                        format!("{s} invalid type: string is not a percentage"),
                    )
                })?;
            (pct / 100.0 * total as f64).ceil() as usize
        }
    };
    Ok(if length == 0 || length > total {
        total
    } else {
        length
    })
}

fn decision_groups(
    placement: &Placement,
    selected: &[Arc<ManagedCluster>],
) -> (Vec<Group>, Option<Failure>) {
    let strategy = placement
        .spec
        .decision_strategy
        .clone()
        .unwrap_or_default()
        .group_strategy
        .unwrap_or_default();
    let mut groups: Vec<Group> = Vec::new();
    let mut failure = None;
    let push = |groups: &mut Vec<Group>, name: &str, mut clusters: Vec<String>, length: usize| {
        clusters.sort();
        for chunk in clusters.chunks(length.max(1)) {
            groups.push(Group {
                index: groups.len(),
                name: name.to_string(),
                clusters: chunk.to_vec(),
            });
        }
    };
    match group_length(
        strategy.clusters_per_decision_group.as_ref(),
        selected.len(),
    ) {
        Err(f) => failure = Some(f),
        Ok(length) => {
            let mut remaining: BTreeSet<String> = selected.iter().map(|c| c.name_any()).collect();
            for dg in &strategy.decision_groups {
                let sel = match ClusterSelector::new(
                    dg.group_cluster_selector.label_selector.as_ref(),
                    dg.group_cluster_selector.claim_selector.as_ref(),
                    None,
                ) {
                    Ok(s) => s,
                    Err(m) => {
                        failure = Some(Failure::misconfigured("", m));
                        break;
                    }
                };
                let matched: Vec<String> = selected
                    .iter()
                    .filter(|c| {
                        remaining.contains(&c.name_any()) && sel.matches(c, None, &mut None)
                    })
                    .map(|c| c.name_any())
                    .collect();
                for m in &matched {
                    remaining.remove(m);
                }
                push(&mut groups, &dg.group_name, matched, length);
            }
            if failure.is_none() {
                push(&mut groups, "", remaining.into_iter().collect(), length);
            }
        }
    }
    if groups.is_empty() && failure.is_none() {
        groups.push(Group {
            index: 0,
            name: String::new(),
            clusters: Vec::new(),
        });
    }
    (groups, failure)
}

/// Runs one pass.
pub fn schedule(placement: &Placement, snap: &Snapshot<'_>) -> Outcome {
    // Bindings count when the set they are named after exists.
    let mut valid: BTreeSet<String> = snap
        .bindings
        .iter()
        .map(|b| b.name_any())
        .filter(|n| snap.sets.contains_key(n))
        .collect();
    let bindings = valid.len();
    if !placement.spec.cluster_sets.is_empty() {
        let wanted: BTreeSet<&String> = placement.spec.cluster_sets.iter().collect();
        valid.retain(|n| wanted.contains(n));
    }
    let selectors: Vec<SetSelector> = valid
        .iter()
        .map(|n| SetSelector::of(&snap.sets[n]))
        .collect();
    let mut candidates: BTreeMap<String, Arc<ManagedCluster>> = BTreeMap::new();
    for c in snap.clusters {
        if c.metadata.deletion_timestamp.is_none() && selectors.iter().any(|s| s.selects(c)) {
            candidates.insert(c.name_any(), c.clone());
        }
    }
    let available = candidates.len();
    let candidates: Vec<Arc<ManagedCluster>> = candidates.into_values().collect();

    let mut code = Code::Success;
    let mut plugin = "";
    let mut message = String::new();
    let mut requeue: Option<jiff::Timestamp> = None;
    let fail = |f: Failure, code: &mut Code, plugin: &mut &'static str, message: &mut String| {
        *code = f.code;
        *plugin = f.plugin;
        *message = f.message;
    };

    let tolerations = &placement.spec.tolerations;
    let mut ranked: Vec<(String, i64)> = Vec::new();
    let mut selected: Vec<Arc<ManagedCluster>> = Vec::new();
    // When each kept cluster's toleration runs out, from the one check that kept it.
    let mut tolerated_until: HashMap<String, jiff::Timestamp> = HashMap::new();
    let filtered = predicate_filter(placement, candidates, &snap.scores).and_then(|cs| {
        if cs.is_empty() {
            return Ok(cs);
        }
        validate_tolerations(tolerations)?;
        Ok(cs
            .into_iter()
            .filter(|c| {
                let name = c.name_any();
                let (ok, until) =
                    tolerated(c, tolerations, snap.existing.contains(&name), snap.now);
                if let (true, Some(u)) = (ok, until) {
                    tolerated_until.insert(name, u);
                }
                ok
            })
            .collect::<Vec<_>>())
    });
    match filtered.and_then(|cs| weights(placement).map(|w| (cs, w))) {
        Err(f) => fail(f, &mut code, &mut plugin, &mut message),
        Ok((filtered, weights)) => {
            let mut total: HashMap<String, i64> =
                filtered.iter().map(|c| (c.name_any(), 0)).collect();
            let mut warnings = Vec::new();
            for (p, w) in &weights {
                let (scores, warning) = score(p, &filtered, snap);
                if let Some(m) = warning {
                    warnings.push(m);
                }
                for (name, s) in scores {
                    if let Some(t) = total.get_mut(&name) {
                        *t += s * w;
                    }
                }
            }
            if !warnings.is_empty() {
                code = Code::Warning;
                plugin = "AddOn";
                message = warnings.join(", ");
            }
            let mut order: Vec<Arc<ManagedCluster>> = filtered;
            order.sort_by(|a, b| {
                total[&b.name_any()]
                    .cmp(&total[&a.name_any()])
                    .then_with(|| a.name_any().cmp(&b.name_any()))
            });
            ranked = order
                .iter()
                .map(|c| (c.name_any(), total[&c.name_any()]))
                .collect();
            let n = match placement.spec.number_of_clusters {
                Some(n) => (n.max(0) as usize).min(order.len()),
                None => order.len(),
            };
            order.truncate(n);
            selected = order;
        }
    }
    // Tolerations that run out: the earliest among the placement's current clusters.
    for c in snap.clusters {
        if snap.existing.contains(&c.name_any()) {
            let (ok, until) = tolerated(c, tolerations, true, snap.now);
            if let (true, Some(u)) = (ok, until) {
                requeue = Some(requeue.map_or(u, |r| r.min(u)));
            }
        }
    }
    for u in selected
        .iter()
        .filter_map(|c| tolerated_until.get(&c.name_any()))
    {
        requeue = Some(requeue.map_or(*u, |r| r.min(*u)));
    }

    let unscheduled = placement
        .spec
        .number_of_clusters
        .map(|n| (n.max(0) as usize).saturating_sub(selected.len()))
        .unwrap_or(0);
    let (groups, group_failure) = decision_groups(placement, &selected);
    let scheduler_code = code.clone();
    if let Some(f) = group_failure {
        fail(f, &mut code, &mut plugin, &mut message);
    }
    let groups = if groups.is_empty() {
        vec![Group {
            index: 0,
            name: String::new(),
            clusters: Vec::new(),
        }]
    } else {
        groups
    };

    let joined_sets = placement.spec.cluster_sets.join(",");
    let satisfied = if bindings == 0 {
        Cond {
            status: STATUS_FALSE,
            reason: pc::REASON_NO_MANAGED_CLUSTER_SET_BINDINGS,
            message: "No valid ManagedClusterSetBindings found in placement namespace".into(),
        }
    } else if valid.is_empty() {
        Cond {
            status: STATUS_FALSE,
            reason: pc::REASON_NO_INTERSECTION,
            message: format!(
                "None of ManagedClusterSets [{joined_sets}] is bound to placement namespace"
            ),
        }
    } else if available == 0 {
        Cond {
            status: STATUS_FALSE,
            reason: pc::REASON_ALL_MANAGED_CLUSTER_SETS_EMPTY,
            message: format!(
                "All ManagedClusterSets [{}] have no member ManagedCluster",
                valid.iter().cloned().collect::<Vec<_>>().join(",")
            ),
        }
    } else if scheduler_code == Code::Error {
        Cond {
            status: STATUS_FALSE,
            reason: pc::REASON_NOT_ALL_DECISIONS_SCHEDULED,
            message: message.clone(),
        }
    } else if selected.is_empty() {
        Cond {
            status: STATUS_FALSE,
            reason: pc::REASON_NO_MANAGED_CLUSTER_MATCHED,
            message: "No ManagedCluster matches any of the cluster predicate".into(),
        }
    } else if unscheduled == 0 {
        Cond {
            status: STATUS_TRUE,
            reason: pc::REASON_ALL_DECISIONS_SCHEDULED,
            message: "All cluster decisions scheduled".into(),
        }
    } else {
        Cond {
            status: STATUS_FALSE,
            reason: pc::REASON_NOT_ALL_DECISIONS_SCHEDULED,
            message: format!("{unscheduled} cluster decisions unscheduled"),
        }
    };
    let misconfigured = if code == Code::Misconfigured {
        Cond {
            status: STATUS_TRUE,
            reason: pc::REASON_MISCONFIGURED,
            message: format!("{plugin}:{message}"),
        }
    } else {
        Cond {
            status: STATUS_FALSE,
            reason: pc::REASON_SUCCEED_CONFIGURED,
            message: "Placement configurations check pass".into(),
        }
    };
    let requeue_after = requeue.map(|t| {
        let d = t.duration_since(snap.now);
        Duration::from_millis(d.as_millis().max(0) as u64)
    });
    let message = if code == Code::Misconfigured {
        format!("{plugin}:{message}")
    } else {
        message
    };
    Outcome {
        code,
        message,
        selected: selected.len(),
        groups,
        scores: ranked,
        satisfied,
        misconfigured,
        requeue_after,
    }
}

#[cfg(test)]
mod tests;
