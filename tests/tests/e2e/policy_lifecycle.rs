//! The policy add-on on the managed cluster, end to end: it keeps upstream's objects there
//! (a copy of each replicated Policy, each ConfigurationPolicy with its evaluation as status,
//! compliance Events), holds templates back until their dependencies are satisfied, honours
//! `evaluationInterval: never`, and prunes what an enforced policy created when the policy goes
//! (`pruneObjectBehavior: DeleteIfCreated`), leaving alone what it found.

use garrison_api::policy::v1::Policy;
use garrison_e2e::{Hub, eventually, gone, join_and_accept, ok};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

const POLICIES: &str = r#"
apiVersion: cluster.open-cluster-management.io/v1beta2
kind: ManagedClusterSetBinding
metadata: {name: default, namespace: policies}
spec: {clusterSet: default}
---
apiVersion: cluster.open-cluster-management.io/v1beta1
kind: Placement
metadata: {name: all-clusters, namespace: policies}
spec: {clusterSets: [default]}
---
apiVersion: policy.open-cluster-management.io/v1
kind: Policy
metadata: {name: settings, namespace: policies}
spec:
  remediationAction: enforce
  disabled: false
  policy-templates:
    - objectDefinition:
        apiVersion: policy.open-cluster-management.io/v1
        kind: ConfigurationPolicy
        metadata: {name: app-settings}
        spec:
          remediationAction: inform
          pruneObjectBehavior: DeleteIfCreated
          object-templates:
            - complianceType: musthave
              objectDefinition:
                apiVersion: v1
                kind: ConfigMap
                metadata: {name: app-settings, namespace: default}
                data: {tier: gold}
            - complianceType: musthave
              objectDefinition:
                apiVersion: v1
                kind: ConfigMap
                metadata: {name: shared, namespace: default}
---
apiVersion: policy.open-cluster-management.io/v1
kind: Policy
metadata: {name: once, namespace: policies}
spec:
  remediationAction: inform
  disabled: false
  policy-templates:
    - objectDefinition:
        apiVersion: policy.open-cluster-management.io/v1
        kind: ConfigurationPolicy
        metadata: {name: later-namespace}
        spec:
          evaluationInterval: {compliant: watch, noncompliant: never}
          object-templates:
            - complianceType: musthave
              objectDefinition: {apiVersion: v1, kind: Namespace, metadata: {name: later}}
---
apiVersion: policy.open-cluster-management.io/v1
kind: Policy
metadata: {name: after-once, namespace: policies}
spec:
  remediationAction: inform
  disabled: false
  dependencies:
    - apiVersion: policy.open-cluster-management.io/v1
      kind: Policy
      name: once
      compliance: Compliant
  policy-templates:
    - objectDefinition:
        apiVersion: policy.open-cluster-management.io/v1
        kind: ConfigurationPolicy
        metadata: {name: default-namespace}
        spec:
          object-templates:
            - complianceType: musthave
              objectDefinition: {apiVersion: v1, kind: Namespace, metadata: {name: default}}
    - ignorePending: true
      objectDefinition:
        apiVersion: policy.open-cluster-management.io/v1
        kind: ConfigurationPolicy
        metadata: {name: kube-system-namespace}
        spec:
          object-templates:
            - complianceType: musthave
              objectDefinition: {apiVersion: v1, kind: Namespace, metadata: {name: kube-system}}
---
apiVersion: policy.open-cluster-management.io/v1
kind: PlacementBinding
metadata: {name: binding, namespace: policies}
placementRef: {apiGroup: cluster.open-cluster-management.io, kind: Placement, name: all-clusters}
subjects:
  - {apiGroup: policy.open-cluster-management.io, kind: Policy, name: settings}
  - {apiGroup: policy.open-cluster-management.io, kind: Policy, name: once}
  - {apiGroup: policy.open-cluster-management.io, kind: Policy, name: after-once}
"#;

/// A policy whose ConfigurationPolicy has the name `settings`'s already has on the cluster.
const COPYCAT: &str = r#"
apiVersion: policy.open-cluster-management.io/v1
kind: Policy
metadata: {name: copycat, namespace: policies}
spec:
  remediationAction: enforce
  disabled: false
  policy-templates:
    - objectDefinition:
        apiVersion: policy.open-cluster-management.io/v1
        kind: ConfigurationPolicy
        metadata: {name: app-settings}
        spec:
          pruneObjectBehavior: DeleteAll
          object-templates:
            - complianceType: musthave
              objectDefinition:
                apiVersion: v1
                kind: ConfigMap
                metadata: {name: copycat, namespace: default}
---
apiVersion: policy.open-cluster-management.io/v1
kind: PlacementBinding
metadata: {name: copycat, namespace: policies}
placementRef: {apiGroup: cluster.open-cluster-management.io, kind: Placement, name: all-clusters}
subjects:
  - {apiGroup: policy.open-cluster-management.io, kind: Policy, name: copycat}
"#;

fn configuration_policies() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(
            "policy.open-cluster-management.io",
            "v1",
            "ConfigurationPolicy",
        ),
        "configurationpolicies",
    )
}

/// The replica `name` on c1 once it reports `state`.
async fn replica_becomes(replicas: &Api<Policy>, name: &str, state: &str) -> Policy {
    eventually(60, &format!("{name} {state}"), || async {
        let p = replicas.get(name).await.ok()?;
        (p.status.as_ref()?.compliant.as_deref() == Some(state)).then_some(p)
    })
    .await
}

fn history(p: &Policy, template: usize) -> Vec<(String, String)> {
    p.status.as_ref().unwrap().details[template]
        .history
        .iter()
        .map(|h| (h.message.clone(), h.event_name.clone()))
        .collect()
}

fn related(cp: &DynamicObject, name: &str) -> Value {
    cp.data["status"]["relatedObjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["object"]["metadata"]["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no related object {name}: {:?}", cp.data["status"]))
}

#[tokio::test]
async fn the_cluster_keeps_upstreams_objects_dependencies_wait_and_enforced_objects_are_pruned() {
    let hub = Hub::start().await.unwrap();
    let agents = join_and_accept(&hub, &["c1"], &[]).await;
    let dir = hub.data_dir().to_str().unwrap().to_string();
    ok(garrison_e2e::garrison(&[
        "addon",
        "enable",
        "governance-policy-framework",
        "--clusters",
        "c1",
        "--data-dir",
        &dir,
    ]));
    let spoke = agents[0].spoke().await;
    // `shared` exists before any policy: the policy finds it, it did not create it.
    let cms: Api<ConfigMap> = Api::namespaced(spoke.clone(), "default");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "shared"}, "data": {"owner": "ops"}}))
            .unwrap(),
    )
    .await
    .unwrap();
    ok(hub.kubectl(&["create", "namespace", "policies"]));
    let file = hub.data_dir().join("lifecycle.yaml");
    std::fs::write(&file, POLICIES).unwrap();
    ok(hub.kubectl(&["apply", "-f", file.to_str().unwrap()]));
    let admin = hub.client().await.unwrap();
    let replicas: Api<Policy> = Api::namespaced(admin.clone(), "c1");

    // Enforce created app-settings; the ConfigurationPolicy on the cluster says so.
    let settings = replica_becomes(&replicas, "policies.settings", "Compliant").await;
    assert_eq!(
        cms.get("app-settings").await.unwrap().data.unwrap()["tier"],
        "gold"
    );
    let cps: Api<DynamicObject> =
        Api::namespaced_with(spoke.clone(), "c1", &configuration_policies());
    let cp = eventually(30, "app-settings evaluated on the cluster", || async {
        let cp = cps.get_opt("app-settings").await.ok()??;
        (cp.data["status"]["compliant"] == "Compliant").then_some(cp)
    })
    .await;
    assert_eq!(
        cp.metadata.labels.as_ref().unwrap()["policy.open-cluster-management.io/policy"],
        "policies.settings"
    );
    assert_eq!(cp.data["spec"]["remediationAction"], "enforce");
    assert_eq!(
        cp.metadata.owner_references.as_ref().unwrap()[0].name,
        "policies.settings"
    );
    assert!(
        cp.metadata
            .finalizers
            .as_ref()
            .unwrap()
            .iter()
            .any(|f| f == "policy.open-cluster-management.io/delete-related-objects")
    );
    let created = related(&cp, "app-settings");
    assert_eq!(created["properties"]["createdByPolicy"], true);
    assert_eq!(
        created["properties"]["uid"].as_str(),
        cms.get("app-settings")
            .await
            .unwrap()
            .metadata
            .uid
            .as_deref()
    );
    let found = related(&cp, "shared");
    assert_eq!(found["properties"]["createdByPolicy"], false);
    assert_eq!(found["reason"], "Resource found as expected");
    assert_eq!(
        cp.data["status"]["compliancyDetails"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(cp.data["status"]["lastEvaluated"].is_string());

    // A later policy whose template takes the same name is refused; it takes over nothing.
    let copycat = hub.data_dir().join("copycat.yaml");
    std::fs::write(&copycat, COPYCAT).unwrap();
    ok(hub.kubectl(&["apply", "-f", copycat.to_str().unwrap()]));
    let refused = replica_becomes(&replicas, "policies.copycat", "NonCompliant").await;
    assert_eq!(
        history(&refused, 0)[0].0,
        "NonCompliant; template-error; another policy template on this cluster is already named app-settings"
    );
    let still = cps.get("app-settings").await.unwrap();
    assert_eq!(
        still.metadata.labels.as_ref().unwrap()["policy.open-cluster-management.io/policy"],
        "policies.settings"
    );
    ok(hub.kubectl(&["delete", "-f", copycat.to_str().unwrap()]));

    // The replica's copy on the cluster, and a compliance event in upstream's format for
    // each history entry.
    let copies: Api<Policy> = Api::namespaced(spoke.clone(), "c1");
    eventually(30, "the copy's status", || async {
        let c = copies.get_opt("policies.settings").await.ok()??;
        (c.status?.compliant.as_deref() == Some("Compliant")).then_some(())
    })
    .await;
    let events: Api<Event> = Api::namespaced(spoke.clone(), "c1");
    let (message, event_name) = history(&settings, 0)[0].clone();
    let ev = eventually(30, "the compliance event", || async {
        events.get_opt(&event_name).await.ok()?
    })
    .await;
    assert_eq!(ev.reason.as_deref(), Some("policy: c1/app-settings"));
    assert_eq!(ev.message.as_deref(), Some(message.as_str()));
    assert_eq!(ev.action.as_deref(), Some("ComplianceStateUpdate"));
    assert_eq!(ev.type_.as_deref(), Some("Normal"));
    assert_eq!(ev.involved_object.kind.as_deref(), Some("Policy"));
    assert_eq!(
        ev.involved_object.name.as_deref(),
        Some("policies.settings")
    );

    // `once` is NonCompliant and, with `noncompliant: never`, stays so although the namespace
    // appears; `after-once` waits for it.
    let once = replica_becomes(&replicas, "policies.once", "NonCompliant").await;
    let after = replica_becomes(&replicas, "policies.after-once", "Pending").await;
    assert_eq!(
        history(&after, 0)[0].0,
        "Pending; Dependencies were not satisfied: 1 is still pending (Policy policies.once)"
    );
    assert_eq!(
        history(&after, 1)[0].0,
        "Compliant; Dependencies were not satisfied: 1 is still pending (Policy policies.once) but ignorePending is true"
    );
    assert!(
        cps.get_opt("default-namespace").await.unwrap().is_none(),
        "a pending template is not written to the cluster"
    );
    let evaluated =
        cps.get("later-namespace").await.unwrap().data["status"]["lastEvaluated"].clone();
    Api::<Namespace>::all(spoke.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "later"}})).unwrap(),
        )
        .await
        .unwrap();
    // Two passes of the add-on go by (one every 10 s) without evaluating it again.
    tokio::time::sleep(std::time::Duration::from_secs(22)).await;
    let again = cps.get("later-namespace").await.unwrap();
    assert_eq!(again.data["status"]["lastEvaluated"], evaluated);
    assert_eq!(again.data["status"]["compliant"], "NonCompliant");
    assert_eq!(
        history(&replicas.get("policies.once").await.unwrap(), 0),
        history(&once, 0)
    );
    let msg = again.data["status"]["compliancyDetails"][0]["conditions"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.ends_with("being set to \"never\""), "{msg}");

    // A spec change is evaluated: `once` turns Compliant, and `after-once` runs.
    ok(hub.kubectl(&[
        "patch",
        "policy",
        "once",
        "-n",
        "policies",
        "--type",
        "json",
        "-p",
        r#"[{"op": "replace", "path": "/spec/policy-templates/0/objectDefinition/spec/evaluationInterval/noncompliant", "value": "watch"}]"#,
    ]));
    replica_becomes(&replicas, "policies.once", "Compliant").await;
    let after = replica_becomes(&replicas, "policies.after-once", "Compliant").await;
    assert_eq!(
        history(&after, 0)[0].0,
        "Compliant; notification - namespaces [default] found as specified"
    );
    assert!(cps.get_opt("default-namespace").await.unwrap().is_some());

    assert!(cms.get_opt("copycat").await.unwrap().is_none());
    assert!(cms.get_opt("app-settings").await.unwrap().is_some());
    // Deleting `settings` prunes what it created and leaves what it found.
    ok(hub.kubectl(&["delete", "policy", "settings", "-n", "policies"]));
    gone(60, "app-settings pruned", &cms, "app-settings").await;
    gone(30, "the ConfigurationPolicy removed", &cps, "app-settings").await;
    gone(30, "the copy removed", &copies, "policies.settings").await;
    assert_eq!(
        cms.get("shared").await.unwrap().data.unwrap()["owner"],
        "ops"
    );
}
