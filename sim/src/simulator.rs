//! The status simulator of a simulated cluster, in the spirit of KWOK: nothing runs, but the
//! workload kinds get the status a healthy cluster would give them (ready replicas, completed
//! Jobs, running Pods), so the work agent's availability checks and status feedback see what they
//! would see on a real cluster.
//!
//! A workload can ask to fail, for tests and demos of the Degraded and not-Available paths, with
//! the annotation [`FAIL_ANNOTATION`]; its value is the failure message. A failing Deployment,
//! StatefulSet, DaemonSet or ReplicaSet has no ready replicas, a failing Job exceeds its backoff
//! limit, and a failing Pod crash-loops (or has phase Failed when it never restarts). An object
//! annotated with [`REJECT_ANNOTATION`] is refused by the simulated API server, as an admission
//! webhook would refuse it, so it is never created.

use std::sync::Arc;

use garrison_apiserver::store::watch::{EventType, WatchEvent};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Annotation that makes a simulated workload fail; its value is the message.
pub const FAIL_ANNOTATION: &str = "simulation.garrison.dev/fail";
/// Annotation that makes the simulated API server refuse the object; its value is the message.
pub use garrison_apiserver::ops::SIMULATED_REJECT_ANNOTATION as REJECT_ANNOTATION;

/// The workload kinds whose status is simulated: (group, version, kind, plural).
const KINDS: &[(&str, &str, &str, &str)] = &[
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "StatefulSet", "statefulsets"),
    ("apps", "v1", "DaemonSet", "daemonsets"),
    ("apps", "v1", "ReplicaSet", "replicasets"),
    ("batch", "v1", "Job", "jobs"),
    ("", "v1", "Pod", "pods"),
];

fn api_resource(i: usize) -> ApiResource {
    let (group, version, kind, plural) = KINDS[i];
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn kind_index(store_key: &str) -> Option<usize> {
    KINDS
        .iter()
        .position(|(g, _, _, p)| store_key == format!("{g}/{p}"))
}

/// Starts the simulator on a simulated cluster's server: a write hook queues changed workloads,
/// one task writes their status. Existing workloads (a restarted, persisted cluster) are
/// simulated first.
pub fn start(server: &garrison_apiserver::server::Server, client: kube::Client, nodes: i64) {
    let (tx, rx) = mpsc::unbounded_channel::<(usize, String, String)>();
    server
        .objects
        .store
        .on_write(Arc::new(move |ev: &WatchEvent| {
            if ev.kind == EventType::Deleted {
                return;
            }
            let Some(i) = kind_index(&ev.key) else { return };
            // Status writes change nothing the simulator reads.
            if let Some(old) = &ev.old
                && old.get("spec") == ev.object.get("spec")
                && old.pointer("/metadata/annotations")
                    == ev.object.pointer("/metadata/annotations")
                && old.pointer("/metadata/generation") == ev.object.pointer("/metadata/generation")
            {
                return;
            }
            let name = ev
                .object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let _ = tx.send((i, ev.namespace.clone(), name));
        }));
    tokio::spawn(run(client, rx, nodes));
}

async fn run(
    client: kube::Client,
    mut rx: mpsc::UnboundedReceiver<(usize, String, String)>,
    nodes: i64,
) {
    for i in 0..KINDS.len() {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource(i));
        if let Ok(list) = api.list(&ListParams::default()).await {
            for obj in list.items {
                let ns = obj.metadata.namespace.clone().unwrap_or_default();
                let name = obj.metadata.name.clone().unwrap_or_default();
                settle(&client, i, &ns, &name, nodes).await;
            }
        }
    }
    while let Some((i, ns, name)) = rx.recv().await {
        settle(&client, i, &ns, &name, nodes).await;
    }
}

async fn settle(client: &kube::Client, i: usize, ns: &str, name: &str, nodes: i64) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &api_resource(i));
    let Ok(obj) = api.get(name).await else { return };
    let obj = match serde_json::to_value(&obj) {
        Ok(v) => v,
        Err(_) => return,
    };
    let now = jiff::Timestamp::now().to_string();
    let Some(status) = simulate(KINDS[i].2, &obj, nodes, &now) else {
        return;
    };
    if obj.get("status").is_some_and(|s| same_status(s, &status)) {
        return;
    }
    let patch = json!({ "status": status });
    if let Err(e) = api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::debug!(error = %e, kind = KINDS[i].2, name, "simulator could not write status");
    }
}

/// Compares statuses ignoring timestamps, so a settled workload is not rewritten.
fn same_status(a: &Value, b: &Value) -> bool {
    fn strip(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(k, _)| !k.ends_with("Time") && !k.ends_with("Timestamp"))
                    .map(|(k, v)| (k.clone(), strip(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    strip(a) == strip(b)
}

fn failure(obj: &Value) -> Option<String> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(FAIL_ANNOTATION))
        .and_then(Value::as_str)
        .map(|m| {
            if m.is_empty() {
                "simulated failure".to_string()
            } else {
                m.to_string()
            }
        })
}

fn cond(type_: &str, status: bool, reason: &str, message: &str, now: &str) -> Value {
    json!({
        "type": type_, "status": if status { "True" } else { "False" },
        "reason": reason, "message": message,
        "lastTransitionTime": now, "lastUpdateTime": now,
    })
}

/// The status a healthy (or, when annotated, failing) cluster would give the object.
pub fn simulate(kind: &str, obj: &Value, nodes: i64, now: &str) -> Option<Value> {
    let generation = obj
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    let fail = failure(obj);
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some(match kind {
        "Deployment" => {
            let ready = if fail.is_some() { 0 } else { replicas };
            let mut s = json!({
                "observedGeneration": generation,
                "replicas": replicas, "updatedReplicas": replicas,
                "readyReplicas": ready, "availableReplicas": ready,
            });
            if replicas > ready {
                s["unavailableReplicas"] = json!(replicas - ready);
            }
            s["conditions"] = match &fail {
                None => json!([
                    cond(
                        "Available",
                        true,
                        "MinimumReplicasAvailable",
                        "Deployment has minimum availability.",
                        now
                    ),
                    cond(
                        "Progressing",
                        true,
                        "NewReplicaSetAvailable",
                        &format!("ReplicaSet \"{name}\" has successfully progressed."),
                        now
                    ),
                ]),
                Some(m) => json!([
                    cond(
                        "Available",
                        false,
                        "MinimumReplicasUnavailable",
                        "Deployment does not have minimum availability.",
                        now
                    ),
                    cond(
                        "Progressing",
                        false,
                        "ProgressDeadlineExceeded",
                        &format!("ReplicaSet \"{name}\" has timed out progressing: {m}"),
                        now
                    ),
                ]),
            };
            s
        }
        "StatefulSet" | "ReplicaSet" => {
            let ready = if fail.is_some() { 0 } else { replicas };
            let mut s = json!({
                "observedGeneration": generation, "replicas": replicas,
                "readyReplicas": ready, "availableReplicas": ready,
            });
            if kind == "StatefulSet" {
                s["currentReplicas"] = json!(replicas);
                s["updatedReplicas"] = json!(replicas);
            } else {
                s["fullyLabeledReplicas"] = json!(replicas);
            }
            s
        }
        "DaemonSet" => {
            let ready = if fail.is_some() { 0 } else { nodes };
            let mut s = json!({
                "observedGeneration": generation,
                "desiredNumberScheduled": nodes, "currentNumberScheduled": nodes,
                "updatedNumberScheduled": nodes, "numberMisscheduled": 0,
                "numberReady": ready, "numberAvailable": ready,
            });
            if nodes > ready {
                s["numberUnavailable"] = json!(nodes - ready);
            }
            s
        }
        "Job" => {
            let completions = obj
                .pointer("/spec/completions")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let backoff = obj
                .pointer("/spec/backoffLimit")
                .and_then(Value::as_i64)
                .unwrap_or(6);
            match &fail {
                None => json!({
                    "startTime": now, "completionTime": now, "succeeded": completions,
                    "ready": 0, "terminating": 0,
                    "conditions": [
                        cond("SuccessCriteriaMet", true, "CompletionsReached", "Reached expected number of succeeded pods", now),
                        cond("Complete", true, "CompletionsReached", "Reached expected number of succeeded pods", now),
                    ],
                }),
                Some(m) => json!({
                    "startTime": now, "failed": backoff + 1, "ready": 0, "terminating": 0,
                    "conditions": [
                        cond("FailureTarget", true, "BackoffLimitExceeded", m, now),
                        cond("Failed", true, "BackoffLimitExceeded", &format!("Job has reached the specified backoff limit: {m}"), now),
                    ],
                }),
            }
        }
        "Pod" => {
            let containers: Vec<String> = obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .filter_map(|c| c.get("name").and_then(Value::as_str).map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let never_restarts =
                obj.pointer("/spec/restartPolicy").and_then(Value::as_str) == Some("Never");
            let statuses = |ready: bool, state: Value| -> Value {
                Value::Array(
                    containers
                        .iter()
                        .map(|c| {
                            json!({"name": c, "ready": ready, "restartCount": if ready {0} else {5},
                            "image": "", "imageID": "", "started": ready, "state": state.clone()})
                        })
                        .collect(),
                )
            };
            let base = |phase: &str, ready: bool, state: Value| {
                json!({
                    "phase": phase, "hostIP": "10.0.0.11", "podIP": "10.244.1.7",
                    "podIPs": [{"ip": "10.244.1.7"}], "startTime": now, "qosClass": "BestEffort",
                    "conditions": [
                        cond("PodScheduled", true, "", "", now),
                        cond("Initialized", true, "", "", now),
                        cond("ContainersReady", ready, if ready {""} else {"ContainersNotReady"}, "", now),
                        cond("Ready", ready, if ready {""} else {"ContainersNotReady"}, "", now),
                    ],
                    "containerStatuses": statuses(ready, state),
                })
            };
            match &fail {
                None => base("Running", true, json!({"running": {"startedAt": now}})),
                Some(m) if never_restarts => base(
                    "Failed",
                    false,
                    json!({"terminated": {"exitCode": 1, "reason": "Error", "message": m}}),
                ),
                Some(m) => base(
                    "Running",
                    false,
                    json!({"waiting": {"reason": "CrashLoopBackOff", "message": m}}),
                ),
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-11-24T10:00:00Z";

    #[test]
    fn a_deployment_becomes_ready_unless_told_to_fail() {
        let d = json!({"metadata": {"name": "web", "generation": 3}, "spec": {"replicas": 4}});
        let s = simulate("Deployment", &d, 3, NOW).unwrap();
        assert_eq!(s["readyReplicas"], 4);
        assert_eq!(s["availableReplicas"], 4);
        assert_eq!(s["observedGeneration"], 3);
        assert_eq!(s["conditions"][0]["status"], "True");
        let f = json!({"metadata": {"name": "web", "annotations": {FAIL_ANNOTATION: "image pull"}},
            "spec": {"replicas": 2}});
        let s = simulate("Deployment", &f, 3, NOW).unwrap();
        assert_eq!(s["readyReplicas"], 0);
        assert_eq!(s["unavailableReplicas"], 2);
        assert_eq!(s["conditions"][0]["status"], "False");
        assert!(
            s["conditions"][1]["message"]
                .as_str()
                .unwrap()
                .contains("image pull")
        );
    }

    #[test]
    fn jobs_complete_or_exceed_their_backoff_limit() {
        let j = json!({"metadata": {"name": "migrate"}, "spec": {"completions": 3}});
        let s = simulate("Job", &j, 3, NOW).unwrap();
        assert_eq!(s["succeeded"], 3);
        assert_eq!(s["conditions"][1]["type"], "Complete");
        let f = json!({"metadata": {"name": "m", "annotations": {FAIL_ANNOTATION: ""}},
            "spec": {"backoffLimit": 2}});
        let s = simulate("Job", &f, 3, NOW).unwrap();
        assert_eq!(s["failed"], 3);
        assert_eq!(s["conditions"][1]["type"], "Failed");
    }

    #[test]
    fn daemonsets_run_on_every_node_and_pods_have_phases() {
        let s = simulate("DaemonSet", &json!({"metadata": {"name": "agent"}}), 3, NOW).unwrap();
        assert_eq!(s["desiredNumberScheduled"], 3);
        assert_eq!(s["numberReady"], 3);
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
        assert_eq!(simulate("Pod", &pod, 3, NOW).unwrap()["phase"], "Running");
        let failing = json!({"metadata": {"name": "p", "annotations": {FAIL_ANNOTATION: "boom"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c"}]}});
        assert_eq!(
            simulate("Pod", &failing, 3, NOW).unwrap()["phase"],
            "Failed"
        );
        assert!(simulate("ConfigMap", &pod, 3, NOW).is_none());
    }

    #[test]
    fn timestamps_alone_do_not_count_as_a_change() {
        let d = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1}});
        let a = simulate("Deployment", &d, 3, NOW).unwrap();
        let b = simulate("Deployment", &d, 3, "2026-11-24T11:00:00Z").unwrap();
        assert!(same_status(&a, &b));
        let d2 = json!({"metadata": {"name": "web"}, "spec": {"replicas": 2}});
        assert!(!same_status(
            &a,
            &simulate("Deployment", &d2, 3, NOW).unwrap()
        ));
    }
}
