//! The fleet's SLIs, counted from the store's writes: clusters by availability, works by
//! condition and by the gate that refused them, add-ons by availability, replicated policies
//! by compliance, and the decisions on certificate requests (approvals, denials, renewals
//! signed or refused).
//!
//! Each object contributes a few samples (a cluster: its availability). A write takes away the
//! old object's samples and adds the new one's, so the counts cost nothing per scrape and a
//! constant amount per write, however large the fleet. They start from one pass over the
//! stored objects, made with writes held off ([`Store::follow`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use garrison_telemetry::{
    AddonLabels, AvailableLabels, ConditionLabels, GateLabels, StateLabels, metrics, set_all,
};
use serde_json::Value;

use crate::error::ApiResult;
use crate::ocm::MANAGED_CLUSTERS_KEY;
use crate::store::Store;
use crate::store::watch::{EventType, WatchEvent};

const WORKS_KEY: &str = "work.open-cluster-management.io/manifestworks";
const ADDONS_KEY: &str = "addon.open-cluster-management.io/managedclusteraddons";
const POLICIES_KEY: &str = "policy.open-cluster-management.io/policies";
const CSRS_KEY: &str = "certificates.k8s.io/certificatesigningrequests";
/// The label that marks a replicated policy (one cluster's copy of a root policy).
const ROOT_POLICY_LABEL: &str = "policy.open-cluster-management.io/root-policy";
/// The label of an add-on's certificate requests.
const ADDON_NAME_LABEL: &str = "open-cluster-management.io/addon-name";
/// The signer of agents' client certificates.
const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// Reasons agents give for a work a gate refused.
const GATE_REASONS: [&str; 2] = ["ImageVerificationFailed", "PolicyViolation"];

/// One thing an object counts towards.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Sample {
    /// A ManagedCluster and its availability.
    Cluster(String),
    /// A ManifestWork's condition and its status.
    Work(&'static str, String),
    /// A ManifestWork refused by a gate, by reason.
    Refused(String),
    /// A ManagedClusterAddOn's add-on and availability.
    Addon(String, String),
    /// A replicated policy's compliance.
    Compliance(String),
}

/// The status of condition `kind`, if the object has it.
fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

fn status_of(obj: &Value, kind: &str) -> Option<String> {
    let status = condition(obj, kind)?.get("status")?.as_str()?;
    Some(match status {
        "True" | "False" => status.to_string(),
        _ => "Unknown".to_string(),
    })
}

fn samples(key: &str, obj: &Value) -> Vec<Sample> {
    match key {
        MANAGED_CLUSTERS_KEY => vec![Sample::Cluster(
            status_of(obj, "ManagedClusterConditionAvailable").unwrap_or_else(|| "Unknown".into()),
        )],
        WORKS_KEY => {
            let mut out: Vec<Sample> = ["Applied", "Available"]
                .into_iter()
                .map(|c| Sample::Work(c, status_of(obj, c).unwrap_or_else(|| "Unknown".into())))
                .collect();
            // Most works never report Degraded; only those that do are counted.
            if let Some(s) = status_of(obj, "Degraded") {
                out.push(Sample::Work("Degraded", s));
            }
            if let Some(applied) = condition(obj, "Applied")
                && applied.get("status").and_then(Value::as_str) == Some("False")
                && let Some(reason) = applied.get("reason").and_then(Value::as_str)
                && GATE_REASONS.contains(&reason)
            {
                out.push(Sample::Refused(reason.to_string()));
            }
            out
        }
        ADDONS_KEY => {
            let addon = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let available = status_of(obj, "Available").unwrap_or_else(|| "Unknown".into());
            vec![Sample::Addon(addon, available)]
        }
        POLICIES_KEY
            if obj
                .pointer("/metadata/labels")
                .and_then(|l| l.get(ROOT_POLICY_LABEL))
                .is_some() =>
        {
            let state = match obj.pointer("/status/compliant").and_then(Value::as_str) {
                Some(s @ ("Compliant" | "NonCompliant" | "Pending")) => s.to_string(),
                _ => "Unknown".to_string(),
            };
            vec![Sample::Compliance(state)]
        }
        _ => vec![],
    }
}

fn has_condition(obj: Option<&Value>, kind: &str) -> bool {
    obj.and_then(|o| condition(o, kind))
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some("True")
}

/// Counts what a write decided about a certificate request: an approval or a denial, and for
/// an agent's renewal of its own certificate, whether it was signed or refused.
fn count_csr(old: Option<&Value>, new: &Value) {
    let m = metrics();
    let newly = |kind: &str| has_condition(Some(new), kind) && !has_condition(old, kind);
    let approved = newly("Approved");
    let denied = newly("Denied");
    if approved {
        m.csr_decision(true);
    }
    if denied {
        m.csr_decision(false);
    }
    let renewal = new.pointer("/spec/signerName").and_then(Value::as_str) == Some(CLIENT_SIGNER)
        && new
            .pointer("/spec/username")
            .and_then(Value::as_str)
            .is_some_and(|u| u.starts_with(garrison_pki::identity::PREFIX))
        && new
            .pointer("/metadata/labels")
            .and_then(|l| l.get(ADDON_NAME_LABEL))
            .is_none();
    if !renewal {
        return;
    }
    let signed = new
        .pointer("/status/certificate")
        .is_some_and(|c| !c.is_null())
        && old
            .and_then(|o| o.pointer("/status/certificate"))
            .is_none_or(Value::is_null);
    if signed {
        m.rotation(true);
    } else if denied || newly("Failed") {
        m.rotation(false);
    }
}

/// The counts, shared by the store hook and the scrape.
#[derive(Debug, Default)]
pub struct Slis {
    counts: Mutex<HashMap<Sample, i64>>,
}

impl Slis {
    fn add(&self, key: &str, obj: &Value, by: i64) {
        let samples = samples(key, obj);
        if samples.is_empty() {
            return;
        }
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        for s in samples {
            *counts.entry(s).or_default() += by;
        }
    }

    fn apply(&self, ev: &WatchEvent) {
        if ev.key == CSRS_KEY {
            if ev.kind != EventType::Deleted {
                count_csr(ev.old.as_deref(), &ev.object);
            }
            return;
        }
        if let Some(old) = &ev.old {
            self.add(&ev.key, old, -1);
        } else if ev.kind == EventType::Deleted {
            // A delete carries the object's last state as the object itself.
            self.add(&ev.key, &ev.object, -1);
            return;
        }
        if ev.kind != EventType::Deleted {
            self.add(&ev.key, &ev.object, 1);
        }
    }

    /// Counts `store`'s objects, follows its writes, and sets the SLI gauges on each scrape.
    pub fn follow(store: &Store) -> ApiResult<Arc<Slis>> {
        metrics().hub_counters();
        let me = Arc::new(Slis::default());
        let (seed, hook) = (me.clone(), me.clone());
        store.follow(
            &[MANAGED_CLUSTERS_KEY, WORKS_KEY, ADDONS_KEY, POLICIES_KEY],
            |key, obj| seed.add(key, obj, 1),
            Arc::new(move |ev: &WatchEvent| hook.apply(ev)),
        )?;
        let weak = Arc::downgrade(&me);
        garrison_telemetry::on_scrape("fleet slis", move |m| {
            if let Some(slis) = weak.upgrade() {
                slis.publish(m);
            }
        });
        Ok(me)
    }

    /// Sets the gauges to the counts.
    fn publish(&self, m: &garrison_telemetry::Metrics) {
        // The states every fleet can be in show even at zero, so that a query for them finds
        // a series; add-ons show once one exists.
        let mut all: HashMap<Sample, i64> = HashMap::new();
        for st in ["True", "False", "Unknown"] {
            all.insert(Sample::Cluster(st.into()), 0);
            for c in ["Applied", "Available"] {
                all.insert(Sample::Work(c, st.into()), 0);
            }
        }
        for r in GATE_REASONS {
            all.insert(Sample::Refused(r.into()), 0);
        }
        for st in ["Compliant", "NonCompliant", "Pending", "Unknown"] {
            all.insert(Sample::Compliance(st.into()), 0);
        }
        for (s, n) in self.counts.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            if *n != 0 {
                all.insert(s.clone(), *n);
            }
        }
        let counts: Vec<(Sample, i64)> = all.into_iter().collect();
        set_all(
            &m.clusters,
            counts.iter().filter_map(|(s, n)| match s {
                Sample::Cluster(a) => Some((
                    AvailableLabels {
                        available: a.clone(),
                    },
                    *n,
                )),
                _ => None,
            }),
        );
        set_all(
            &m.works,
            counts.iter().filter_map(|(s, n)| match s {
                Sample::Work(c, st) => Some((
                    ConditionLabels {
                        condition: c.to_string(),
                        status: st.clone(),
                    },
                    *n,
                )),
                _ => None,
            }),
        );
        set_all(
            &m.works_refused,
            counts.iter().filter_map(|(s, n)| match s {
                Sample::Refused(r) => Some((GateLabels { reason: r.clone() }, *n)),
                _ => None,
            }),
        );
        set_all(
            &m.addons,
            counts.iter().filter_map(|(s, n)| match s {
                Sample::Addon(a, st) => Some((
                    AddonLabels {
                        addon: a.clone(),
                        available: st.clone(),
                    },
                    *n,
                )),
                _ => None,
            }),
        );
        set_all(
            &m.compliance,
            counts.iter().filter_map(|(s, n)| match s {
                Sample::Compliance(st) => Some((StateLabels { state: st.clone() }, *n)),
                _ => None,
            }),
        );
    }

    #[cfg(test)]
    fn count(&self, s: &Sample) -> i64 {
        self.counts
            .lock()
            .unwrap()
            .get(s)
            .copied()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Mutation;
    use serde_json::json;

    fn cluster(name: &str, available: Option<&str>) -> Value {
        let mut c = json!({"apiVersion": "cluster.open-cluster-management.io/v1", "kind": "ManagedCluster",
            "metadata": {"name": name}, "spec": {"hubAcceptsClient": true}});
        if let Some(a) = available {
            c["status"] =
                json!({"conditions": [{"type": "ManagedClusterConditionAvailable", "status": a}]});
        }
        c
    }

    fn put(store: &Store, key: &str, ns: &str, obj: Value) {
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        store
            .mutate(key, ns, &name, |_, _| Ok(Mutation::Put(obj)))
            .unwrap();
    }

    #[test]
    fn counts_follow_creates_changes_and_deletes_from_a_seeded_start() {
        let store = Store::in_memory(100);
        put(
            &store,
            MANAGED_CLUSTERS_KEY,
            "",
            cluster("c1", Some("True")),
        );
        put(&store, MANAGED_CLUSTERS_KEY, "", cluster("c2", None));
        let slis = Slis::follow(&store).unwrap();
        let avail = |s: &str| slis.count(&Sample::Cluster(s.into()));
        assert_eq!((avail("True"), avail("Unknown")), (1, 1));
        put(
            &store,
            MANAGED_CLUSTERS_KEY,
            "",
            cluster("c2", Some("True")),
        );
        put(
            &store,
            MANAGED_CLUSTERS_KEY,
            "",
            cluster("c1", Some("False")),
        );
        assert_eq!((avail("True"), avail("False"), avail("Unknown")), (1, 1, 0));
        store
            .mutate(MANAGED_CLUSTERS_KEY, "", "c1", |_, _| Ok(Mutation::Delete))
            .unwrap();
        assert_eq!((avail("True"), avail("False")), (1, 0));
    }

    #[test]
    fn works_count_by_condition_and_by_the_gate_that_refused_them() {
        let store = Store::in_memory(100);
        let slis = Slis::follow(&store).unwrap();
        put(
            &store,
            WORKS_KEY,
            "c1",
            json!({"metadata": {"name": "w1", "namespace": "c1"},
            "status": {"conditions": [
                {"type": "Applied", "status": "False", "reason": "ImageVerificationFailed"}]}}),
        );
        put(
            &store,
            WORKS_KEY,
            "c1",
            json!({"metadata": {"name": "w2", "namespace": "c1"},
            "status": {"conditions": [{"type": "Applied", "status": "True", "reason": "AppliedManifestWorkComplete"},
                {"type": "Available", "status": "True"}, {"type": "Degraded", "status": "False"}]}}),
        );
        assert_eq!(slis.count(&Sample::Work("Applied", "False".into())), 1);
        assert_eq!(slis.count(&Sample::Work("Applied", "True".into())), 1);
        assert_eq!(slis.count(&Sample::Work("Available", "Unknown".into())), 1);
        assert_eq!(slis.count(&Sample::Work("Degraded", "False".into())), 1);
        assert_eq!(slis.count(&Sample::Work("Degraded", "Unknown".into())), 0);
        assert_eq!(
            slis.count(&Sample::Refused("ImageVerificationFailed".into())),
            1
        );
    }

    #[test]
    fn only_replicated_policies_count_towards_compliance() {
        let store = Store::in_memory(100);
        let slis = Slis::follow(&store).unwrap();
        put(
            &store,
            POLICIES_KEY,
            "policies",
            json!({"metadata": {"name": "p", "namespace": "policies"},
            "status": {"compliant": "NonCompliant"}}),
        );
        put(
            &store,
            POLICIES_KEY,
            "c1",
            json!({"metadata": {"name": "policies.p", "namespace": "c1",
            "labels": {ROOT_POLICY_LABEL: "policies.p"}}, "status": {"compliant": "NonCompliant"}}),
        );
        put(
            &store,
            POLICIES_KEY,
            "c2",
            json!({"metadata": {"name": "policies.p", "namespace": "c2",
            "labels": {ROOT_POLICY_LABEL: "policies.p"}}}),
        );
        assert_eq!(slis.count(&Sample::Compliance("NonCompliant".into())), 1);
        assert_eq!(slis.count(&Sample::Compliance("Unknown".into())), 1);
    }

    #[test]
    fn a_renewal_counts_once_as_approved_and_once_as_a_rotation() {
        let before = |r: &str| {
            let text = garrison_telemetry::render();
            text.lines()
                .find(|l| l.starts_with(r))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let rot = "garrison_certificate_rotations_total{result=\"succeeded\"}";
        let appr = "garrison_csr_decisions_total{decision=\"approved\"}";
        let (rot0, appr0) = (before(rot), before(appr));
        let csr = json!({"metadata": {"name": "r1"}, "spec": {"signerName": CLIENT_SIGNER,
            "username": "system:open-cluster-management:c1:agent1"}});
        let mut approved = csr.clone();
        approved["status"] = json!({"conditions": [{"type": "Approved", "status": "True"}]});
        let mut signed = approved.clone();
        signed["status"]["certificate"] = json!("LS0t");
        count_csr(None, &csr);
        count_csr(Some(&csr), &approved);
        count_csr(Some(&approved), &signed);
        // A later write that changes nothing of this counts nothing again.
        count_csr(Some(&signed), &signed);
        // No other test of this crate counts certificate requests.
        assert_eq!((before(rot), before(appr)), (rot0 + 1, appr0 + 1));
    }
}
