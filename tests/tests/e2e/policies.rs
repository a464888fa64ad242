//! Governance end to end: upstream-shaped Policies with a ConfigurationPolicy and a Gatekeeper
//! constraint, bound to a Placement, reach three simulated clusters through the policy
//! propagator; the built-in policy add-on evaluates them on each cluster and reports back; the
//! root policy aggregates; enforce creates what is missing.

use garrison_api::policy::v1::Policy;
use garrison_e2e::{Hub, eventually, gone, join_and_accept, ok};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::json;

fn compliant(p: &Policy) -> Option<String> {
    p.status.as_ref()?.compliant.clone()
}

/// Waits until the root policy `name` reports `state`.
async fn root_becomes(roots: &Api<Policy>, name: &str, state: &str) {
    eventually(60, &format!("{name} {state}"), || async {
        let p = roots.get(name).await.ok()?;
        (compliant(&p).as_deref() == Some(state)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn policies_reach_the_clusters_and_report_compliance_back_to_the_root() {
    let hub = Hub::start().await.unwrap();
    let agents = join_and_accept(&hub, &["c1", "c2", "c3"], &[]).await;
    let dir = hub.data_dir().to_str().unwrap().to_string();
    ok(garrison_e2e::garrison(&[
        "addon",
        "enable",
        "governance-policy-framework",
        "--clusters",
        "c1,c2,c3",
        "--data-dir",
        &dir,
    ]));
    // `prod` exists, labelled, on c1 and c2; not on c3.
    for a in &agents[..2] {
        let ns: Namespace = serde_json::from_value(
            json!({"metadata": {"name": "prod", "labels": {"owner": "platform"}}}),
        )
        .unwrap();
        Api::<Namespace>::all(a.spoke().await)
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    let example = garrison_e2e::workspace().join("examples/policies.yaml");
    ok(hub.kubectl(&["apply", "-f", example.to_str().unwrap()]));

    let admin = hub.client().await.unwrap();
    let roots: Api<Policy> = Api::namespaced(admin.clone(), "policies");
    // Replicas in each cluster namespace, labelled as upstream's.
    let replica = eventually(60, "the replica on c3", || async {
        Api::<Policy>::namespaced(admin.clone(), "c3")
            .get_opt("policies.policy-namespace")
            .await
            .ok()?
    })
    .await;
    let labels = replica.metadata.labels.unwrap();
    assert_eq!(
        labels["policy.open-cluster-management.io/root-policy"],
        "policies.policy-namespace"
    );
    assert_eq!(
        labels["policy.open-cluster-management.io/cluster-name"],
        "c3"
    );

    // c3 lacks the namespace: the root is NonCompliant, with upstream's message on c3.
    let root = eventually(90, "policy-namespace NonCompliant", || async {
        let p = roots.get("policy-namespace").await.ok()?;
        let st = p.status.as_ref()?;
        (compliant(&p).as_deref() == Some("NonCompliant")
            && st.status.len() == 3
            && st.status.iter().all(|s| s.compliant.is_some()))
        .then_some(p)
    })
    .await;
    let per_cluster = root.status.unwrap().status;
    let state = |c: &str| {
        per_cluster
            .iter()
            .find(|s| s.clustername == c)
            .and_then(|s| s.compliant.clone())
    };
    assert_eq!(state("c1").as_deref(), Some("Compliant"));
    assert_eq!(state("c3").as_deref(), Some("NonCompliant"));
    let c3: Api<Policy> = Api::namespaced(admin.clone(), "c3");
    let detail = c3
        .get("policies.policy-namespace")
        .await
        .unwrap()
        .status
        .unwrap()
        .details;
    assert_eq!(
        detail[0].history[0].message,
        "NonCompliant; violation - namespaces [prod] not found"
    );

    // Fixing c3 without the label: the namespace policy turns Compliant, the Gatekeeper one
    // reports the violation (inform makes the constraint warn).
    let spoke3 = agents[2].spoke().await;
    let nss = Api::<Namespace>::all(spoke3.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "prod"}})).unwrap(),
    )
    .await
    .unwrap();
    root_becomes(&roots, "policy-namespace", "Compliant").await;
    let history = c3
        .get("policies.policy-namespace")
        .await
        .unwrap()
        .status
        .unwrap()
        .details[0]
        .history
        .clone();
    assert_eq!(history.len(), 2);
    assert_eq!(
        history[0].message,
        "Compliant; notification - namespaces [prod] found as specified"
    );
    let labels_msg = eventually(60, "the required-labels violation on c3", || async {
        let p = c3.get("policies.policy-required-labels").await.ok()?;
        let st = p.status?;
        (st.compliant.as_deref() == Some("NonCompliant")).then(|| {
            st.details
                .iter()
                .map(|d| d.history[0].message.clone())
                .collect::<Vec<_>>()
        })
    })
    .await;
    assert!(
        labels_msg.iter().any(
            |m| m.starts_with("NonCompliant; warn - you must provide labels")
                && m.ends_with("(on Namespace /prod)")
        ),
        "{labels_msg:?}"
    );
    // Without Gatekeeper on c3, the add-on keeps Gatekeeper's objects there, the audit as
    // the constraint's status, as Gatekeeper's audit writes it.
    let required = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("constraints.gatekeeper.sh", "v1beta1", "K8sRequiredLabels"),
        "k8srequiredlabels",
    );
    let constraints: Api<DynamicObject> = Api::all_with(spoke3.clone(), &required);
    let audited = eventually(30, "the constraint's audit on c3", || async {
        let c = constraints.get_opt("prod-must-have-owner").await.ok()??;
        (c.data["status"]["totalViolations"] == 1).then_some(c)
    })
    .await;
    assert_eq!(audited.data["spec"]["enforcementAction"], "warn");
    let v = &audited.data["status"]["violations"][0];
    assert_eq!(
        (
            &v["kind"],
            &v["name"],
            &v["enforcementAction"],
            &v["version"]
        ),
        (
            &json!("Namespace"),
            &json!("prod"),
            &json!("warn"),
            &json!("v1")
        )
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("you must provide labels")
    );
    let templates = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("templates.gatekeeper.sh", "v1", "ConstraintTemplate"),
        "constrainttemplates",
    );
    let template = Api::<DynamicObject>::all_with(spoke3.clone(), &templates)
        .get("k8srequiredlabels")
        .await
        .unwrap();
    assert_eq!(template.data["status"]["created"], true);
    nss.patch(
        "prod",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"owner": "payments"}}})),
    )
    .await
    .unwrap();
    root_becomes(&roots, "policy-required-labels", "Compliant").await;
    eventually(30, "the constraint's audit clean on c3", || async {
        let c = constraints.get_opt("prod-must-have-owner").await.ok()??;
        (c.data["status"]["totalViolations"] == 0).then_some(())
    })
    .await;

    // A PolicySet reports its Policies together and names the missing one.
    let set = hub.data_dir().join("set.yaml");
    std::fs::write(
        &set,
        "apiVersion: policy.open-cluster-management.io/v1beta1\nkind: PolicySet\nmetadata:\n  name: baseline\n  namespace: policies\nspec:\n  policies: [policy-required-labels, policy-namespace, not-written-yet]\n",
    )
    .unwrap();
    ok(hub.kubectl(&["apply", "-f", set.to_str().unwrap()]));
    let sets: Api<garrison_api::policy::v1beta1::PolicySet> =
        Api::namespaced(admin.clone(), "policies");
    eventually(30, "the PolicySet's status", || async {
        let st = sets.get("baseline").await.ok()?.status?;
        (st.compliant.as_deref() == Some("Compliant")
            && st.status_message.as_deref() == Some("Deleted policies: not-written-yet"))
        .then_some(())
    })
    .await;

    // Enforce created the ConfigMap everywhere and reports Compliant.
    root_becomes(&roots, "policy-cluster-settings", "Compliant").await;
    let cm = Api::<ConfigMap>::namespaced(spoke3, "default")
        .get("cluster-settings")
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["audit"], "enabled");
    let msg = Api::<Policy>::namespaced(admin.clone(), "c1")
        .get("policies.policy-cluster-settings")
        .await
        .unwrap()
        .status
        .unwrap()
        .details[0]
        .history
        .iter()
        .map(|h| h.message.clone())
        .collect::<Vec<_>>();
    assert!(
        msg.iter().any(|m| m == "Compliant; notification - configmaps [cluster-settings] was created successfully in namespace default"),
        "{msg:?}"
    );

    // What compliance teams read from the CLI.
    let out = ok(garrison_e2e::garrison(&[
        "get",
        "policies",
        "-n",
        "policies",
        "-o",
        "wide",
        "--data-dir",
        &dir,
    ]));
    let row = out
        .lines()
        .find(|l| l.contains("policy-namespace"))
        .unwrap_or_default()
        .to_string();
    assert!(
        row.contains("inform")
            && row.contains("Compliant")
            && row.contains("3/3")
            && row.contains("c1=Compliant,c2=Compliant,c3=Compliant")
            && row.contains("NIST SP 800-53"),
        "{out}"
    );
    // `-A`, as kubectl users type it: every namespace, which is also the default.
    let all = ok(garrison_e2e::garrison(&[
        "get",
        "policies",
        "-A",
        "--data-dir",
        &dir,
    ]));
    assert!(
        all.lines()
            .any(|l| l.starts_with("policies") && l.contains("policy-namespace")),
        "{all}"
    );
    let both = garrison_e2e::garrison(&[
        "get",
        "policies",
        "-A",
        "-n",
        "policies",
        "--data-dir",
        &dir,
    ]);
    assert!(!both.status.success());
    assert!(
        String::from_utf8_lossy(&both.stderr).contains("cannot be used with"),
        "{}",
        String::from_utf8_lossy(&both.stderr)
    );
    let out = ok(garrison_e2e::garrison(&[
        "get",
        "compliance",
        "--cluster",
        "c3",
        "--data-dir",
        &dir,
    ]));
    assert!(
        out.lines().any(|l| l.contains("policies.policy-namespace")
            && l.contains("ConfigurationPolicy/policy-namespace-example")
            && l.contains("namespaces [prod] found as specified")),
        "{out}"
    );
    let missing =
        garrison_e2e::garrison(&["get", "compliance", "--cluster", "nope", "--data-dir", &dir]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cluster \"nope\" not found"));

    // Deleting a root removes its replicas.
    ok(hub.kubectl(&["delete", "policy", "policy-namespace", "-n", "policies"]));
    gone(
        60,
        "the deleted root's replicas removed",
        &c3,
        "policies.policy-namespace",
    )
    .await;
    // Unbinding removes the replicas.
    ok(hub.kubectl(&[
        "delete",
        "placementbinding",
        "binding-policies",
        "-n",
        "policies",
    ]));
    gone(
        60,
        "the replicas removed",
        &c3,
        "policies.policy-required-labels",
    )
    .await;
    // With them, the Gatekeeper objects on the cluster and the constraint kind's CRD.
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(agents[2].spoke().await);
    gone(
        60,
        "the constraint CRD removed from c3",
        &crds,
        "k8srequiredlabels.constraints.gatekeeper.sh",
    )
    .await;
}

fn work(name: &str, image: &str) -> serde_json::Value {
    json!({
        "apiVersion": "work.open-cluster-management.io/v1", "kind": "ManifestWork",
        "metadata": {"name": name, "namespace": "c1"},
        "spec": {"workload": {"manifests": [
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": format!("{name}-config"), "namespace": "default"}, "data": {"a": "1"}},
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": name, "namespace": "default"},
             "spec": {"selector": {"matchLabels": {"app": name}},
                      "template": {"metadata": {"labels": {"app": name}},
                                   "spec": {"containers": [{"name": "web", "image": image}]}}}},
        ]}}
    })
}

/// Waits until the work `name` reports `Applied` with `status`; returns the condition.
async fn applied(
    works: &Api<garrison_api::ManifestWork>,
    name: &str,
    status: &str,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    eventually(60, &format!("work {name} Applied={status}"), || async {
        let w = works.get(name).await.ok()?;
        w.status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Applied" && c.status == status)
    })
    .await
}

/// Creates the work `name` on c1 with a Deployment of `image`.
async fn deliver(works: &Api<garrison_api::ManifestWork>, name: &str, image: &str) {
    works
        .create(
            &PostParams::default(),
            &serde_json::from_value(work(name, image)).unwrap(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn an_enforced_constraint_refuses_a_violating_work_before_anything_is_applied() {
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
    // The README's example, as a user applies it.
    let example = garrison_e2e::workspace().join("examples/delivery-gate.yaml");
    ok(hub.kubectl(&["apply", "-f", example.to_str().unwrap()]));
    let admin = hub.client().await.unwrap();
    let roots: Api<Policy> = Api::namespaced(admin.clone(), "policies");
    root_becomes(&roots, "internal-registries", "Compliant").await;

    // A work with an image from elsewhere: refused whole, with every violation named.
    let works: Api<garrison_api::ManifestWork> = Api::namespaced(admin.clone(), "c1");
    deliver(&works, "web", "docker.io/library/nginx:1.27").await;
    let applied_cond = applied(&works, "web", "False").await;
    assert_eq!(applied_cond.reason, "PolicyViolation");
    assert!(
        applied_cond.message.contains("K8sAllowedRepos internal-only: container <web> has an invalid image repo <docker.io/library/nginx:1.27>")
            && applied_cond.message.contains("(on Deployment default/web)"),
        "{}",
        applied_cond.message
    );
    let spoke = agents[0].spoke().await;
    assert!(
        Api::<ConfigMap>::namespaced(spoke.clone(), "default")
            .get_opt("web-config")
            .await
            .unwrap()
            .is_none(),
        "nothing of a refused work is applied"
    );

    // An allowed image goes through.
    deliver(&works, "api", "registry.example.com/shop/api:2.0").await;
    applied(&works, "api", "True").await;

    // The gate remembers its verdicts between resyncs, but a verdict is never given to other
    // parameters: once the constraint allows another registry only, the same unchanged work
    // is refused at its next resync; allowed again, it applies again.
    let repos = |r: &str| {
        json!([{"op": "replace",
            "path": "/spec/policy-templates/1/objectDefinition/spec/parameters/repos",
            "value": [r]}])
    };
    for (allowed, status) in [
        ("registry.internal.example/", "False"),
        ("registry.example.com/", "True"),
    ] {
        ok(hub.kubectl(&[
            "patch",
            "policy",
            "internal-registries",
            "-n",
            "policies",
            "--type=json",
            "-p",
            &repos(allowed).to_string(),
        ]));
        let cond = applied(&works, "api", status).await;
        if status == "False" {
            assert_eq!(cond.reason, "PolicyViolation");
            assert!(
                cond.message
                    .contains("allowed repos are [\"registry.internal.example/\"]"),
                "{}",
                cond.message
            );
        }
    }

    // With inform, the same violation is applied and reported by the audit.
    roots
        .patch(
            "internal-registries",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"remediationAction": "inform"}})),
        )
        .await
        .unwrap();
    let c1: Api<Policy> = Api::namespaced(admin.clone(), "c1");
    eventually(60, "the replica informing", || async {
        let p = c1.get("policies.internal-registries").await.ok()?;
        (p.spec.remediation_action.as_deref() == Some("inform")).then_some(())
    })
    .await;
    // The refused work is tried again and now applies; so does a new one.
    applied(&works, "web", "True").await;
    deliver(&works, "web2", "docker.io/library/nginx:1.27").await;
    applied(&works, "web2", "True").await;
    let msg = eventually(60, "the audit reporting the violation", || async {
        let p = c1.get("policies.internal-registries").await.ok()?;
        let st = p.status?;
        let m = st.details[1].history[0].message.clone();
        // The refused work is retried once the policy informs, so both may be reported.
        (st.compliant.as_deref() == Some("NonCompliant")
            && m.contains("(on Deployment default/web2)"))
        .then_some(m)
    })
    .await;
    assert!(
        msg.starts_with("NonCompliant; warn - container <web> has an invalid image repo"),
        "{msg}"
    );
}

const FLAGGED_POLICY: &str = r#"
apiVersion: cluster.open-cluster-management.io/v1beta2
kind: ManagedClusterSetBinding
metadata:
  name: default
  namespace: policies
spec:
  clusterSet: default
---
apiVersion: cluster.open-cluster-management.io/v1beta1
kind: Placement
metadata:
  name: all-clusters
  namespace: policies
spec:
  clusterSets: [default]
---
apiVersion: policy.open-cluster-management.io/v1
kind: Policy
metadata:
  name: nothing-flagged
  namespace: policies
spec:
  remediationAction: inform
  disabled: false
  policy-templates:
    - objectDefinition:
        apiVersion: templates.gatekeeper.sh/v1
        kind: ConstraintTemplate
        metadata:
          name: k8snoflag
        spec:
          crd:
            spec:
              names:
                kind: K8sNoFlag
          targets:
            - target: admission.k8s.gatekeeper.sh
              rego: |
                package k8snoflag

                violation[{"msg": msg}] {
                  input.review.object.metadata.labels.flagged == "yes"
                  msg := sprintf("%v %v is flagged", [input.review.kind.kind, input.review.object.metadata.name])
                }
    - objectDefinition:
        apiVersion: constraints.gatekeeper.sh/v1beta1
        kind: K8sNoFlag
        metadata:
          name: anywhere
        spec: {}
    - objectDefinition:
        apiVersion: constraints.gatekeeper.sh/v1beta1
        kind: K8sNoFlag
        metadata:
          name: any-group-configmaps
        spec:
          match:
            kinds:
              - apiGroups: ["*"]
                kinds: ["ConfigMap"]
    - objectDefinition:
        apiVersion: constraints.gatekeeper.sh/v1beta1
        kind: K8sNoFlag
        metadata:
          name: configmaps-elsewhere
        spec:
          match:
            kinds:
              - apiGroups: [""]
                kinds: ["ConfigMap"]
            namespaces: ["elsewhere"]
---
apiVersion: policy.open-cluster-management.io/v1
kind: PlacementBinding
metadata:
  name: flagged
  namespace: policies
placementRef:
  apiGroup: cluster.open-cluster-management.io
  kind: Placement
  name: all-clusters
subjects:
  - apiGroup: policy.open-cluster-management.io
    kind: Policy
    name: nothing-flagged
"#;

/// A constraint without `match.kinds` audits every kind the cluster serves, as Gatekeeper's
/// audit does; `*` in `apiGroups` covers the kind in every group.
#[tokio::test(flavor = "multi_thread")]
async fn a_constraint_without_kinds_audits_every_kind_on_the_cluster() {
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
    // Three flagged objects of three kinds on the cluster, one of them cluster-scoped.
    let spoke = agents[0].spoke().await;
    let flagged = json!({"flagged": "yes"});
    Api::<Namespace>::all(spoke.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "team-a", "labels": flagged}}))
                .unwrap(),
        )
        .await
        .unwrap();
    Api::<ConfigMap>::namespaced(spoke.clone(), "team-a")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "settings", "labels": flagged}}))
                .unwrap(),
        )
        .await
        .unwrap();
    Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(spoke.clone(), "team-a")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "runner", "labels": flagged}}))
                .unwrap(),
        )
        .await
        .unwrap();
    ok(hub.kubectl(&["create", "namespace", "policies"]));
    let file = hub.data_dir().join("flagged.yaml");
    std::fs::write(&file, FLAGGED_POLICY).unwrap();
    ok(hub.kubectl(&["apply", "-f", file.to_str().unwrap()]));

    let kind = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("constraints.gatekeeper.sh", "v1beta1", "K8sNoFlag"),
        // Gatekeeper's constraint CRDs are named by the lowercase kind, without a plural.
        "k8snoflag",
    );
    let constraints: Api<DynamicObject> = Api::all_with(spoke.clone(), &kind);
    let kinds_of = |c: &DynamicObject| -> Vec<String> {
        let mut k: Vec<String> = c.data["status"]["violations"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| {
                        format!(
                            "{} {}",
                            v["kind"].as_str().unwrap_or(""),
                            v["name"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        k.sort();
        k
    };
    let anywhere = eventually(90, "the audit of every kind", || async {
        let c = constraints.get_opt("anywhere").await.ok()??;
        c.data["status"]["totalViolations"].is_number().then_some(c)
    })
    .await;
    assert_eq!(
        kinds_of(&anywhere),
        [
            "ConfigMap settings",
            "Namespace team-a",
            "ServiceAccount runner"
        ],
        "{:?}",
        anywhere.data["status"]
    );
    let configmaps = eventually(30, "the audit of ConfigMaps in any group", || async {
        let c = constraints.get_opt("any-group-configmaps").await.ok()??;
        c.data["status"]["totalViolations"].is_number().then_some(c)
    })
    .await;
    assert_eq!(kinds_of(&configmaps), ["ConfigMap settings"]);
    // The same ConfigMaps, listed once in the pass for both constraints, judged each by its
    // own match.
    let elsewhere = eventually(30, "the audit of ConfigMaps elsewhere", || async {
        let c = constraints.get_opt("configmaps-elsewhere").await.ok()??;
        c.data["status"]["totalViolations"].is_number().then_some(c)
    })
    .await;
    assert_eq!(
        elsewhere.data["status"]["totalViolations"], 0,
        "{:?}",
        elsewhere.data["status"]
    );

    // The replica reports the violations, as the root does.
    let admin = hub.client().await.unwrap();
    let roots: Api<Policy> = Api::namespaced(admin.clone(), "policies");
    root_becomes(&roots, "nothing-flagged", "NonCompliant").await;
    let c1: Api<Policy> = Api::namespaced(admin, "c1");
    let st = c1
        .get("policies.nothing-flagged")
        .await
        .unwrap()
        .status
        .unwrap();
    let messages: Vec<&str> = st
        .details
        .iter()
        .map(|d| d.history[0].message.as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m
            .contains("warn - ServiceAccount runner is flagged (on ServiceAccount team-a/runner)")),
        "{messages:?}"
    );
    // The constraint that shares the ConfigMaps' listing was audited, and found nothing.
    let elsewhere = st
        .details
        .iter()
        .find(|d| {
            d.template_meta
                .as_ref()
                .is_some_and(|m| m["name"] == "configmaps-elsewhere")
        })
        .expect("the replica reports configmaps-elsewhere");
    assert_eq!(
        elsewhere.history[0].message,
        "Compliant; The constraint has no violations"
    );
}
