//! PolicyReports: one `wgpolicyk8s.io/v1alpha2` PolicyReport per cluster, `<cluster>-policyreport`
//! in the cluster's namespace, with a result per template of every policy replicated there, so
//! tools that read PolicyReports (Policy Reporter) show Garrison's compliance.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use garrison_api::policy::v1::Policy;
use garrison_api::policy::{
    CATEGORIES_ANNOTATION, CONTROLS_ANNOTATION, ROOT_POLICY_LABEL, STANDARDS_ANNOTATION,
};
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

/// The `source` of every result.
pub const SOURCE: &str = "garrison-governance";

/// The report's name for `cluster`.
pub fn name_for(cluster: &str) -> String {
    format!("{cluster}-policyreport")
}

fn result_of(state: &str) -> &'static str {
    match state {
        "Compliant" => "pass",
        "NonCompliant" => "fail",
        "Pending" => "skip",
        _ => "error",
    }
}

/// The report for `cluster` from its replicated policies.
pub fn report(cluster: &str, replicas: &[&Policy]) -> Value {
    let mut results = vec![];
    let mut summary: BTreeMap<&str, u64> = ["pass", "fail", "warn", "error", "skip"]
        .into_iter()
        .map(|k| (k, 0))
        .collect();
    for p in replicas {
        let Some(status) = &p.status else { continue };
        let annotation = |k: &str| p.annotations().get(k).cloned().unwrap_or_default();
        for detail in &status.details {
            let Some(state) = detail.compliant.as_deref().filter(|s| !s.is_empty()) else {
                continue;
            };
            let name = detail
                .template_meta
                .as_ref()
                .and_then(|m| m["name"].as_str())
                .unwrap_or_default();
            // A status entry for a template the policy no longer has is stale.
            let Some(definition) = p
                .spec
                .policy_templates
                .iter()
                .map(|t| &t.object_definition)
                .find(|d| d["metadata"]["name"] == name)
            else {
                continue;
            };
            let newest = detail.history.first();
            let result = result_of(state);
            *summary.entry(result).or_default() += 1;
            let mut r = json!({
                "source": SOURCE,
                "policy": p.name_any(),
                "rule": name,
                "result": result,
                "scored": true,
                "message": newest.map(|h| h.message.clone()).unwrap_or_default(),
                "resources": [{"apiVersion": "policy.open-cluster-management.io/v1", "kind": "Policy",
                    "name": p.name_any(), "namespace": p.namespace().unwrap_or_default(),
                    "uid": p.uid().unwrap_or_default()}],
                "properties": {
                    "standards": annotation(STANDARDS_ANNOTATION),
                    "controls": annotation(CONTROLS_ANNOTATION),
                    "templateKind": definition["kind"].as_str().unwrap_or_default(),
                },
            });
            let category = annotation(CATEGORIES_ANNOTATION);
            if !category.is_empty() {
                r["category"] = json!(category);
            }
            let severity = definition["spec"]["severity"]
                .as_str()
                .map(str::to_lowercase)
                .filter(|s| ["critical", "high", "medium", "low", "info"].contains(&s.as_str()));
            if let Some(s) = severity {
                r["severity"] = json!(s);
            }
            if let Some(t) = newest.and_then(|h| h.last_timestamp.as_ref()) {
                r["timestamp"] =
                    json!({"seconds": t.0.as_second(), "nanos": t.0.subsec_nanosecond()});
            }
            results.push(r);
        }
    }
    results.sort_by(|a, b| {
        (a["policy"].as_str(), a["rule"].as_str()).cmp(&(b["policy"].as_str(), b["rule"].as_str()))
    });
    json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
        "metadata": {"name": name_for(cluster), "namespace": cluster,
            "labels": {"app.kubernetes.io/managed-by": "garrison"}},
        "scope": {"apiVersion": "cluster.open-cluster-management.io/v1", "kind": "ManagedCluster",
            "name": cluster},
        "summary": summary,
        "results": results,
    })
}

/// The replica's cluster: its namespace (a replica labelled for another is ignored).
fn cluster_of(p: &Policy) -> Option<String> {
    crate::compliance::cluster_of(p)
}

/// Keeps every cluster's PolicyReport until the watch ends (the supervisor restarts it).
pub async fn run(client: kube::Client) {
    let policies: Api<Policy> = Api::all(client.clone());
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("wgpolicyk8s.io", "v1alpha2", "PolicyReport"),
        "policyreports",
    );
    let mut replicas: BTreeMap<String, BTreeMap<String, Policy>> = BTreeMap::new();
    let mut written: BTreeMap<String, Value> = BTreeMap::new();
    let mut initial: Option<BTreeMap<String, BTreeMap<String, Policy>>> = None;
    let mut stream = watcher(
        policies,
        watcher::Config::default().labels(ROOT_POLICY_LABEL),
    )
    .default_backoff()
    .boxed();
    while let Some(event) = stream.next().await {
        let mut dirty: BTreeSet<String> = BTreeSet::new();
        match event {
            Ok(watcher::Event::Apply(p)) => {
                if let Some(c) = cluster_of(&p) {
                    replicas
                        .entry(c.clone())
                        .or_default()
                        .insert(p.name_any(), p);
                    dirty.insert(c);
                }
            }
            Ok(watcher::Event::Delete(p)) => {
                if let Some(c) = cluster_of(&p) {
                    replicas.entry(c.clone()).or_default().remove(&p.name_any());
                    dirty.insert(c);
                }
            }
            Ok(watcher::Event::Init) => initial = Some(BTreeMap::new()),
            Ok(watcher::Event::InitApply(p)) => {
                if let (Some(c), Some(init)) = (cluster_of(&p), initial.as_mut()) {
                    init.entry(c).or_default().insert(p.name_any(), p);
                }
            }
            Ok(watcher::Event::InitDone) => {
                let fresh = initial.take().unwrap_or_default();
                dirty.extend(replicas.keys().cloned());
                dirty.extend(fresh.keys().cloned());
                replicas = fresh;
            }
            Err(e) => {
                tracing::warn!(error = %e, "watching replicated policies for PolicyReports failed; retrying");
                continue;
            }
        }
        for cluster in dirty {
            let list: Vec<&Policy> = replicas
                .get(&cluster)
                .map(|m| m.values().collect())
                .unwrap_or_default();
            let want = report(&cluster, &list);
            if written.get(&cluster) == Some(&want) {
                continue;
            }
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &cluster, &resource);
            match api
                .patch(
                    &name_for(&cluster),
                    &PatchParams::apply("garrison-policyreports").force(),
                    &Patch::Apply(&want),
                )
                .await
            {
                Ok(_) => {
                    written.insert(cluster, want);
                }
                // The cluster's namespace is gone with the cluster: nothing to report.
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    written.remove(&cluster);
                }
                Err(e) => {
                    tracing::warn!(cluster = %cluster, error = %e, "cannot write the PolicyReport; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use garrison_api::policy::CLUSTER_NAME_LABEL;

    #[test]
    fn each_template_is_a_result_with_upstreams_fields_and_the_summary_counts_them() {
        let p: Policy = serde_json::from_value(json!({
            "apiVersion": "policy.open-cluster-management.io/v1", "kind": "Policy",
            "metadata": {"name": "policies.ac-2", "namespace": "c1",
                "labels": {ROOT_POLICY_LABEL: "policies.ac-2", CLUSTER_NAME_LABEL: "c1"},
                "annotations": {STANDARDS_ANNOTATION: "NIST SP 800-53",
                    CATEGORIES_ANNOTATION: "AC Access Control", CONTROLS_ANNOTATION: "AC-2"}},
            "spec": {"disabled": false, "policy-templates": [
                {"objectDefinition": {"apiVersion": "policy.open-cluster-management.io/v1",
                    "kind": "ConfigurationPolicy", "metadata": {"name": "accounts"},
                    "spec": {"severity": "High"}}},
                {"objectDefinition": {"apiVersion": "policy.open-cluster-management.io/v1",
                    "kind": "ConfigurationPolicy", "metadata": {"name": "audit"}, "spec": {}}}]},
            "status": {"compliant": "NonCompliant", "details": [
                {"templateMeta": {"name": "accounts"}, "compliant": "NonCompliant",
                    "history": [{"lastTimestamp": "2026-03-03T10:00:00Z",
                        "message": "NonCompliant; violation", "eventName": "e"}]},
                {"templateMeta": {"name": "audit"}, "compliant": "Compliant", "history": []}]}
        }))
        .unwrap();
        let r = report("c1", &[&p]);
        assert_eq!(r["metadata"]["name"], "c1-policyreport");
        assert_eq!(r["summary"]["fail"], 1);
        assert_eq!(r["summary"]["pass"], 1);
        let first = &r["results"][0];
        assert_eq!(first["policy"], "policies.ac-2");
        assert_eq!(first["rule"], "accounts");
        assert_eq!(first["result"], "fail");
        assert_eq!(first["severity"], "high");
        assert_eq!(first["category"], "AC Access Control");
        assert_eq!(first["timestamp"]["seconds"], 1_772_532_000);
        assert_eq!(first["resources"][0]["kind"], "Policy");
        assert_eq!(first["properties"]["controls"], "AC-2");
        assert!(r["results"][1].get("severity").is_none());
    }
}
