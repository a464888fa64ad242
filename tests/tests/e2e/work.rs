//! Work delivery with real processes: a hub, simulated clusters served over HTTPS, and
//! ManifestWorks created with kube-rs and kubectl.
//!
//! Admission, upstream-style YAML applied unchanged, kind order, the four update strategies,
//! owner references shared between works, removal from the spec, delete options, conditions,
//! status feedback, simulated failures, drift correction, an unreachable hub, eviction, a work
//! deleted while its cluster is offline, and SIGKILL in the middle of an apply.

use std::collections::BTreeMap;
use std::time::Duration;

use garrison_api::work::v1::{AppliedManifestWork, ManifestCondition, ManifestWork};
use garrison_e2e::{Agent, Hub, eventually, garrison, ok};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const SYNC: [&str; 6] = [
    "--lease-duration",
    "1s",
    "--status-sync-interval",
    "1s",
    "--appliedmanifestwork-eviction-grace-period",
    "3s",
];

fn cm(name: &str, ns: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data})
}

fn work(name: &str, cluster: &str, manifests: Vec<Value>, extra: Value) -> ManifestWork {
    let mut spec = json!({"workload": {"manifests": manifests}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({
        "apiVersion": "work.open-cluster-management.io/v1", "kind": "ManifestWork",
        "metadata": {"name": name, "namespace": cluster}, "spec": spec,
    }))
    .unwrap()
}

fn cond<'a>(
    w: &'a ManifestWork,
    t: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    w.status.as_ref()?.conditions.iter().find(|c| c.type_ == t)
}

fn is(w: &ManifestWork, t: &str, status: &str) -> bool {
    cond(w, t).is_some_and(|c| c.status == status && c.observed_generation == w.metadata.generation)
}

async fn wait_work(
    api: &Api<ManifestWork>,
    name: &str,
    what: &str,
    check: impl Fn(&ManifestWork) -> bool,
) -> ManifestWork {
    eventually(30, what, || async {
        api.get_opt(name).await.ok().flatten().filter(|w| check(w))
    })
    .await
}

fn manifest(w: &ManifestWork, ordinal: i32) -> Option<&ManifestCondition> {
    w.status
        .as_ref()?
        .resource_status
        .as_ref()?
        .manifests
        .iter()
        .find(|m| m.resource_meta.ordinal == ordinal)
}

fn manifest_conds(w: &ManifestWork, ordinal: i32) -> BTreeMap<String, (String, String, String)> {
    manifest(w, ordinal)
        .map(|m| {
            m.conditions
                .iter()
                .map(|c| {
                    (
                        c.type_.clone(),
                        (c.status.clone(), c.reason.clone(), c.message.clone()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn feedback(w: &ManifestWork, ordinal: i32) -> BTreeMap<String, Value> {
    manifest(w, ordinal)
        .and_then(|m| m.status_feedbacks.as_ref())
        .map(|f| {
            f.values
                .iter()
                .map(|v| (v.name.clone(), serde_json::to_value(&v.value).unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

fn hub_hash(hub: &Hub) -> String {
    let url = format!("https://127.0.0.1:{}", hub.port);
    let d = ring::digest::digest(&ring::digest::SHA256, url.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

async fn setup(hub: &Hub, names: &[&str]) -> Vec<Agent> {
    garrison_e2e::join_and_accept(hub, names, &SYNC).await
}

fn dyn_api(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    ns: Option<&str>,
) -> Api<DynamicObject> {
    let ar = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk(group, version, kind),
        plural,
    );
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

fn rv(o: &DynamicObject) -> u64 {
    o.metadata
        .resource_version
        .as_deref()
        .unwrap_or("0")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn admission_rules_name_the_manifest_and_the_executor_needs_execute_as() {
    let hub = Hub::start().await.unwrap();
    let admin = hub.client().await.unwrap();
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "east"}})).unwrap(),
    )
    .await
    .unwrap();
    let works: Api<ManifestWork> = Api::namespaced(admin.clone(), "east");
    let refuse = |w: ManifestWork| {
        let works = works.clone();
        async move {
            match works.create(&PostParams::default(), &w).await {
                Err(kube::Error::Api(s)) => (s.code, s.message),
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
    };
    let mut unnamed = cm("x", "default", json!({}));
    unnamed["metadata"] = json!({"generateName": "x-", "namespace": "default"});
    let (code, msg) = refuse(work(
        "w",
        "east",
        vec![cm("a", "default", json!({})), unnamed],
        json!({}),
    ))
    .await;
    assert_eq!(code, 400);
    assert!(
        msg.contains("spec.workload.manifests[1] (ConfigMap): generateName must not be set"),
        "{msg}"
    );
    let (_, msg) = refuse(work(
        "w",
        "east",
        vec![
            cm("a", "default", json!({})),
            cm("a", "default", json!({"k": "v"})),
        ],
        json!({}),
    ))
    .await;
    assert!(
        msg.contains("manifests[1] duplicates spec.workload.manifests[0]"),
        "{msg}"
    );
    let (_, msg) = refuse(work(
        "w",
        "east",
        vec![cm("big", "default", json!({"k": "x".repeat(520 * 1024)}))],
        json!({}),
    ))
    .await;
    assert!(msg.contains("exceeds the 512000 limit"), "{msg}");
    let (_, msg) = refuse(work("w", "east", vec![], json!({}))).await;
    assert!(msg.contains("manifests should not be empty"), "{msg}");

    // bob may create works in east, but not execute as the deployer service account until he
    // is granted execute-as on it.
    let rbac = |v: Value| serde_json::from_value::<DynamicObject>(v).unwrap();
    let cr = dyn_api(
        &admin,
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        None,
    );
    cr.create(&PostParams::default(), &rbac(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "work-editor"},
        "rules": [{"apiGroups": ["work.open-cluster-management.io"], "resources": ["manifestworks"], "verbs": ["create", "get", "update"]}]})))
        .await
        .unwrap();
    let rb = dyn_api(
        &admin,
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        Some("east"),
    );
    rb.create(&PostParams::default(), &rbac(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "bob-works", "namespace": "east"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "work-editor"},
        "subjects": [{"kind": "User", "name": "bob"}]})))
        .await
        .unwrap();
    let bob = garrison_e2e::client_from(&hub.kubeconfig_for("bob", &[]).unwrap())
        .await
        .unwrap();
    let bob_works: Api<ManifestWork> = Api::namespaced(bob, "east");
    let exec = json!({"executor": {"subject": {"type": "ServiceAccount", "serviceAccount": {"namespace": "apps", "name": "deployer"}}}});
    let w = work(
        "as-deployer",
        "east",
        vec![cm("a", "default", json!({}))],
        exec,
    );
    match bob_works.create(&PostParams::default(), &w).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403);
            assert!(s.message.contains("user bob cannot manipulate the Manifestwork with executor apps/deployer in namespace east"), "{}", s.message);
        }
        other => panic!("expected 403, got {other:?}"),
    }
    cr.create(&PostParams::default(), &rbac(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "execute-as-deployer"},
        "rules": [{"apiGroups": ["work.open-cluster-management.io"], "resources": ["manifestworks"], "verbs": ["execute-as"],
            "resourceNames": ["system:serviceaccount:apps:deployer"]}]})))
        .await
        .unwrap();
    rb.create(&PostParams::default(), &rbac(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "bob-exec", "namespace": "east"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "execute-as-deployer"},
        "subjects": [{"kind": "User", "name": "bob"}]})))
        .await
        .unwrap();
    bob_works
        .create(&PostParams::default(), &w)
        .await
        .expect("execute-as granted");

    // Regression: ManifestWorkReplicaSets skipped the executor check, so a user who could create
    // one made agents act as any service account. Its works may land in any cluster namespace,
    // so execute-as in east alone is not enough.
    cr.create(&PostParams::default(), &rbac(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "mwrs-editor"},
        "rules": [{"apiGroups": ["work.open-cluster-management.io"], "resources": ["manifestworkreplicasets"], "verbs": ["create", "get"]}]})))
        .await
        .unwrap();
    rb.create(&PostParams::default(), &rbac(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "bob-mwrs", "namespace": "east"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "mwrs-editor"},
        "subjects": [{"kind": "User", "name": "bob"}]})))
        .await
        .unwrap();
    let bob_kc = hub.kubeconfig_for("bob", &[]).unwrap();
    let mwrs_file = hub.data_dir().join("mwrs-executor.yaml");
    std::fs::write(
        &mwrs_file,
        serde_yaml::to_string(&json!({"apiVersion": "work.open-cluster-management.io/v1alpha1", "kind": "ManifestWorkReplicaSet",
            "metadata": {"name": "as-deployer", "namespace": "east"},
            "spec": {"placementRefs": [{"name": "all"}], "manifestWorkTemplate": {
                "workload": {"manifests": [cm("a", "default", json!({}))]},
                "executor": {"subject": {"type": "ServiceAccount", "serviceAccount": {"namespace": "apps", "name": "deployer"}}}}}}))
        .unwrap(),
    )
    .unwrap();
    let cache = hub.data_dir().join("cache-bob");
    let refused = garrison_e2e::kubectl_with(
        &bob_kc,
        &cache,
        &["create", "-f", mwrs_file.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "replica set with an executor admitted"
    );
    assert!(
        stderr.contains(
            "user bob cannot manipulate the ManifestWorkReplicaSet with executor apps/deployer"
        ),
        "{stderr}"
    );
    let crb = dyn_api(
        &admin,
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        None,
    );
    crb.create(&PostParams::default(), &rbac(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "bob-exec-everywhere"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "execute-as-deployer"},
        "subjects": [{"kind": "User", "name": "bob"}]})))
        .await
        .unwrap();
    ok(garrison_e2e::kubectl_with(
        &bob_kc,
        &cache,
        &["create", "-f", mwrs_file.to_str().unwrap()],
    ));
}

/// Regression: the agent ignored `spec.executor` and applied everything with its own rights.
/// Now each manifest is checked with SubjectAccessReviews for the executor on the managed
/// cluster, RBAC objects for escalation too.
#[tokio::test]
async fn the_agent_applies_only_what_the_executor_may() {
    let hub = Hub::start().await.unwrap();
    let admin = hub.client().await.unwrap();
    let agents = setup(&hub, &["east"]).await;
    let spoke = agents[0].spoke().await;
    let rbac = |v: Value| serde_json::from_value::<DynamicObject>(v).unwrap();
    Api::<k8s_openapi::api::core::v1::Namespace>::all(spoke.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "apps"}})).unwrap(),
        )
        .await
        .unwrap();
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "secret-reader", "namespace": "apps"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]});
    let works: Api<ManifestWork> = Api::namespaced(admin.clone(), "east");
    let exec = json!({"executor": {"subject": {"type": "ServiceAccount", "serviceAccount": {"namespace": "apps", "name": "deployer"}}}});
    works
        .create(
            &PostParams::default(),
            &work(
                "limited",
                "east",
                vec![cm("settings", "apps", json!({"k": "v"})), role],
                exec,
            ),
        )
        .await
        .unwrap();
    let message = |w: &ManifestWork, i: i32| {
        manifest_conds(w, i)
            .get("Applied")
            .map(|c| c.2.clone())
            .unwrap_or_default()
    };
    // The executor holds nothing: nothing is applied, and each manifest says what is missing.
    let w = wait_work(&works, "limited", "both manifests refused", |w| {
        is(w, "Applied", "False")
            && message(w, 0).contains("may not")
            && message(w, 1).contains("may not")
    })
    .await;
    assert!(
        message(&w, 0).contains("executor system:serviceaccount:apps:deployer may not create configmaps \"settings\" in namespace apps"),
        "{}",
        message(&w, 0)
    );
    assert_eq!(manifest_conds(&w, 0)["Applied"].1, "AppliedManifestFailed");
    let cms: Api<ConfigMap> = Api::namespaced(spoke.clone(), "apps");
    assert!(
        cms.get_opt("settings").await.unwrap().is_none(),
        "applied without permission"
    );

    // Grant the ConfigMap and the right to write Roles, but not what the Role grants.
    let roles = dyn_api(
        &spoke,
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        Some("apps"),
    );
    roles.create(&PostParams::default(), &rbac(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "deployer", "namespace": "apps"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]},
                  {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["create", "update", "patch", "get", "delete"]}]})))
        .await
        .unwrap();
    let bindings = dyn_api(
        &spoke,
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        Some("apps"),
    );
    bindings
        .create(
            &PostParams::default(),
            &rbac(
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "deployer", "namespace": "apps"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
        "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": "apps"}]}),
            ),
        )
        .await
        .unwrap();
    let w = wait_work(
        &works,
        "limited",
        "the ConfigMap applied, the Role refused",
        |w| {
            manifest_conds(w, 0)
                .get("Applied")
                .is_some_and(|c| c.0 == "True")
        },
    )
    .await;
    assert!(
        message(&w, 1).contains(
            "executor system:serviceaccount:apps:deployer may not get secrets in namespace apps"
        ),
        "{}",
        message(&w, 1)
    );
    assert!(cms.get_opt("settings").await.unwrap().is_some());
    assert!(
        roles.get_opt("secret-reader").await.unwrap().is_none(),
        "escalation applied"
    );

    // Once the executor holds what the Role grants, the whole work applies.
    roles
        .create(
            &PostParams::default(),
            &rbac(
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "deployer-secrets", "namespace": "apps"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}),
            ),
        )
        .await
        .unwrap();
    bindings.create(&PostParams::default(), &rbac(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "deployer-secrets", "namespace": "apps"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer-secrets"},
        "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": "apps"}]})))
        .await
        .unwrap();
    wait_work(&works, "limited", "the whole work applied", |w| {
        is(w, "Applied", "True")
    })
    .await;
    assert!(roles.get_opt("secret-reader").await.unwrap().is_some());
}

#[tokio::test]
async fn works_apply_report_share_drift_back_and_clean_up() {
    let hub = Hub::start().await.unwrap();
    let admin = hub.client().await.unwrap();
    let mut agents = setup(&hub, &["east"]).await;
    let spoke = agents[0].spoke().await;
    let works: Api<ManifestWork> = Api::namespaced(admin.clone(), "east");

    // Upstream's documentation example, applied unchanged with kubectl.
    let upstream = r#"apiVersion: work.open-cluster-management.io/v1
kind: ManifestWork
metadata:
  namespace: east
  name: hello-work-demo
spec:
  workload:
    manifests:
      - apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: hello-work
          namespace: default
          labels:
            app: hello-work
        spec:
          replicas: 3
          selector:
            matchLabels:
              app: hello-work
          template:
            metadata:
              labels:
                app: hello-work
            spec:
              containers:
                - name: hello
                  image: quay.io/asmacdo/busybox
                  command: ["sh", "-c", 'echo "Hello, Kubernetes!" && sleep 3600']
  manifestConfigs:
    - resourceIdentifier:
        group: apps
        resource: deployments
        namespace: default
        name: hello-work
      feedbackRules:
        - type: WellKnownStatus
        - type: JSONPaths
          jsonPaths:
            - name: isAvailable
              path: '.status.conditions[?(@.type=="Available")].status'
"#;
    let file = hub.data_dir().join("upstream-work.yaml");
    std::fs::write(&file, upstream).unwrap();
    ok(hub.kubectl(&["apply", "-f", file.to_str().unwrap()]));
    let w = wait_work(
        &works,
        "hello-work-demo",
        "the upstream example Applied with feedback",
        |w| is(w, "Applied", "True") && is(w, "Available", "True") && feedback(w, 0).len() == 4,
    )
    .await;
    let fb = feedback(&w, 0);
    assert_eq!(
        fb["ReadyReplicas"],
        json!({"type": "Integer", "integer": 3})
    );
    assert_eq!(
        fb["isAvailable"],
        json!({"type": "String", "string": "True"})
    );
    let m = manifest_conds(&w, 0);
    assert_eq!(m["Applied"].1, "AppliedManifestComplete");
    assert_eq!(m["Available"].1, "ResourceAvailable");
    assert_eq!(m["StatusFeedbackSynced"].1, "StatusFeedbackSynced");
    assert_eq!(
        m["Degraded"],
        (
            "False".into(),
            "ConditionRuleEvaluated".into(),
            "3/3 replicas ready".into()
        )
    );
    assert_eq!(
        cond(&w, "Applied").unwrap().reason,
        "AppliedManifestWorkComplete"
    );
    assert_eq!(
        cond(&w, "Degraded").unwrap().reason,
        "ConditionRulesAggregated"
    );
    assert!(
        w.finalizers()
            .iter()
            .any(|f| f == "cluster.open-cluster-management.io/manifest-work-cleanup")
    );

    // The AppliedManifestWork: named after the hub URL's hash, with the resources and UIDs.
    let amws: Api<AppliedManifestWork> = Api::all(spoke.clone());
    let amw_name = format!("{}-hello-work-demo", hub_hash(&hub));
    let amw = amws.get(&amw_name).await.unwrap();
    assert_eq!(amw.spec.manifest_work_name, "hello-work-demo");
    let deploys: Api<Deployment> = Api::namespaced(spoke.clone(), "default");
    let d = deploys.get("hello-work").await.unwrap();
    let applied = &amw.status.as_ref().unwrap().applied_resources;
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].uid, d.metadata.uid);
    let owner = &d.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("AppliedManifestWork", amw_name.as_str())
    );
    assert_eq!(
        owner.controller, None,
        "owner references are never the controller"
    );

    // Kind order: one pass creates a namespace, a CRD and its custom resource, a Service in that
    // namespace and a webhook, whatever the order written.
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    let ordered = vec![
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "ordered-hook"}, "webhooks": []}),
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": "ordered"}, "spec": {"size": 3}}),
        // A Service, not a workload: the simulated cluster writes workloads' status, which would
        // move their resourceVersion past the objects created after them.
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "ordered"},
            "spec": {"selector": {"app": "api"}, "ports": [{"port": 80}]}}),
        crd,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ordered"}}),
    ];
    works
        .create(
            &PostParams::default(),
            &work("ordered", "east", ordered, json!({})),
        )
        .await
        .unwrap();
    wait_work(&works, "ordered", "the ordered work Applied", |w| {
        is(w, "Applied", "True")
    })
    .await;
    let ns = dyn_api(&spoke, "", "v1", "Namespace", "namespaces", None)
        .get("ordered")
        .await
        .unwrap();
    let crd = dyn_api(
        &spoke,
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        None,
    )
    .get("widgets.example.com")
    .await
    .unwrap();
    let widget = dyn_api(
        &spoke,
        "example.com",
        "v1",
        "Widget",
        "widgets",
        Some("ordered"),
    )
    .get("w1")
    .await
    .unwrap();
    let svc = dyn_api(&spoke, "", "v1", "Service", "services", Some("ordered"))
        .get("api")
        .await
        .unwrap();
    let hook = dyn_api(
        &spoke,
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        None,
    )
    .get("ordered-hook")
    .await
    .unwrap();
    assert!(rv(&crd) < rv(&ns), "same rank: the work's order");
    assert!(
        rv(&ns) < rv(&svc) && rv(&svc) < rv(&widget) && rv(&widget) < rv(&hook),
        "namespace {}, service {}, widget {}, webhook {}",
        rv(&ns),
        rv(&svc),
        rv(&widget),
        rv(&hook)
    );

    // Feedback for DaemonSets, Jobs and Pods, a raw value, one too large, and simulated failures.
    let big = "x".repeat(2000);
    let kinds = vec![
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}),
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": "default"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "single", "namespace": "default", "labels": {"app": "single"}, "annotations": {"big": big}},
            "spec": {"containers": [{"name": "c", "image": "x"}]}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "broken", "namespace": "default",
            "annotations": {"simulation.garrison.dev/fail": "image pull back-off"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "refused", "namespace": "default",
            "annotations": {"simulation.garrison.dev/reject": "policy says no"}}}),
    ];
    let rule = |group: &str, resource: &str, name: &str, rules: Value| {
        json!({
        "resourceIdentifier": {"group": group, "resource": resource, "name": name, "namespace": "default"}, "feedbackRules": rules})
    };
    let configs = json!({"manifestConfigs": [
        rule("apps", "daemonsets", "agent", json!([{"type": "WellKnownStatus"}])),
        rule("batch", "jobs", "migrate", json!([{"type": "WellKnownStatus"}])),
        rule("", "pods", "single", json!([{"type": "WellKnownStatus"}, {"type": "JSONPaths", "jsonPaths": [
            {"name": "labels", "path": ".metadata.labels"},
            {"name": "tooBig", "path": ".metadata.annotations"}]}])),
    ]});
    works
        .create(
            &PostParams::default(),
            &work("kinds", "east", kinds, configs),
        )
        .await
        .unwrap();
    let w = wait_work(&works, "kinds", "feedback from every kind", |w| {
        feedback(w, 0).contains_key("NumberReady")
            && feedback(w, 1).contains_key("JobSucceeded")
            && feedback(w, 2).contains_key("PodPhase")
    })
    .await;
    assert_eq!(feedback(&w, 0)["DesiredNumberScheduled"]["integer"], 3);
    assert_eq!(feedback(&w, 1)["JobComplete"]["string"], "True");
    assert_eq!(feedback(&w, 2)["PodPhase"]["string"], "Running");
    assert_eq!(
        feedback(&w, 2)["labels"],
        json!({"type": "JsonRaw", "jsonRaw": "{\"app\":\"single\"}"})
    );
    assert!(!feedback(&w, 2).contains_key("tooBig"));
    let pod = manifest_conds(&w, 2);
    assert_eq!(pod["StatusFeedbackSynced"].0, "False");
    assert!(
        pod["StatusFeedbackSynced"]
            .2
            .contains("more than the 1024 allowed"),
        "{:?}",
        pod["StatusFeedbackSynced"]
    );
    let broken = manifest_conds(&w, 3);
    assert_eq!(broken["Degraded"].0, "True");
    assert!(broken["Degraded"].2.contains("image pull back-off"));
    let refused = manifest_conds(&w, 4);
    assert_eq!(refused["Applied"].1, "AppliedManifestFailed");
    assert!(refused["Applied"].2.contains("policy says no"));
    assert_eq!(
        refused["Available"],
        (
            "False".into(),
            "ResourceNotAvailable".into(),
            "Resource is not available".into()
        )
    );
    assert_eq!(
        cond(&w, "Applied").unwrap().reason,
        "AppliedManifestWorkFailed"
    );
    assert_eq!(
        cond(&w, "Available").unwrap().reason,
        "ResourcesNotAvailable"
    );
    assert_eq!(cond(&w, "Degraded").unwrap().status, "True");
    // The CLI shows the same.
    let table = ok(garrison(&[
        "get",
        "works",
        "--cluster",
        "east",
        "-o",
        "wide",
        "--data-dir",
        hub.data_dir().to_str().unwrap(),
    ]));
    assert!(
        table.contains("Deployment/hello-work: ReadyReplicas=3"),
        "{table}"
    );
    assert!(table.contains("AppliedManifestWorkFailed"), "{table}");

    // Drift: a changed and a deleted resource are restored.
    deploys
        .patch(
            "hello-work",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(spoke.clone(), "default");
    works
        .create(
            &PostParams::default(),
            &work(
                "shared-a",
                "east",
                vec![
                    cm("shared", "default", json!({"from": "a"})),
                    cm("only-a", "default", json!({})),
                ],
                json!({}),
            ),
        )
        .await
        .unwrap();
    wait_work(&works, "shared-a", "shared-a applied", |w| {
        is(w, "Applied", "True")
    })
    .await;
    cms.delete("only-a", &DeleteParams::default())
        .await
        .unwrap();
    eventually(15, "drift restored", || async {
        let d = deploys.get("hello-work").await.ok()?;
        let c = cms.get_opt("only-a").await.ok()??;
        (d.spec.replicas == Some(3)).then_some(c)
    })
    .await;

    // Two works share a ConfigMap: two owner references; removing it from one keeps it.
    works
        .create(
            &PostParams::default(),
            &work(
                "shared-b",
                "east",
                vec![cm("shared", "default", json!({"from": "a"}))],
                json!({}),
            ),
        )
        .await
        .unwrap();
    wait_work(&works, "shared-b", "shared-b applied", |w| {
        is(w, "Applied", "True")
    })
    .await;
    let owners = |c: &ConfigMap| c.metadata.owner_references.as_ref().map_or(0, Vec::len);
    eventually(10, "two owners", || async {
        cms.get("shared").await.ok().filter(|c| owners(c) == 2)
    })
    .await;
    let mut a = works.get("shared-a").await.unwrap();
    a.spec
        .workload
        .as_mut()
        .unwrap()
        .manifests
        .retain(|m| m.0["metadata"]["name"] != "shared");
    works
        .replace("shared-a", &PostParams::default(), &a)
        .await
        .unwrap();
    eventually(10, "shared-a lets go of shared", || async {
        cms.get("shared").await.ok().filter(|c| owners(c) == 1)
    })
    .await;
    // Removing only-a from the spec deletes it (nobody else owns it).
    let mut a = works.get("shared-a").await.unwrap();
    a.spec.workload.as_mut().unwrap().manifests = vec![cm("a-next", "default", json!({})).into()];
    works
        .replace("shared-a", &PostParams::default(), &a)
        .await
        .unwrap();
    eventually(10, "only-a deleted", || async {
        cms.get_opt("only-a").await.ok()?.is_none().then_some(())
    })
    .await;
    // Deleting shared-b deletes shared (its last owner); the work goes after the agent's cleanup.
    works
        .delete("shared-b", &DeleteParams::default())
        .await
        .unwrap();
    eventually(15, "shared deleted with its last work", || async {
        let gone = cms.get_opt("shared").await.ok()?.is_none()
            && works.get_opt("shared-b").await.ok()?.is_none();
        gone.then_some(())
    })
    .await;

    // Update strategies: CreateOnly keeps cluster changes, ReadOnly observes without owning,
    // ServerSideApply reports a conflict with another manager.
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "observed", "namespace": "default"}, "data": {"k": "v"}}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    cms.patch("ssa-target", &PatchParams::apply("someone-else"), &Patch::Apply(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "ssa-target", "namespace": "default"}, "data": {"owned": "by-someone-else"}}))).await.unwrap();
    let strat = |name: &str, s: Value| json!({"resourceIdentifier": {"group": "", "resource": "configmaps", "name": name, "namespace": "default"}, "updateStrategy": s});
    let configs = json!({"manifestConfigs": [
        strat("create-only", json!({"type": "CreateOnly"})),
        {"resourceIdentifier": {"group": "", "resource": "configmaps", "name": "observed", "namespace": "default"},
            "updateStrategy": {"type": "ReadOnly"}, "feedbackRules": [{"type": "JSONPaths", "jsonPaths": [{"name": "k", "path": ".data.k"}]}]},
        strat("ssa-target", json!({"type": "ServerSideApply"})),
        strat("ssa-free", json!({"type": "ServerSideApply", "serverSideApply": {"fieldManager": "work-agent-custom"}})),
    ]});
    let manifests = vec![
        cm("create-only", "default", json!({"k": "first"})),
        cm("observed", "default", json!({})),
        cm("ssa-target", "default", json!({"owned": "by-work"})),
        cm("ssa-free", "default", json!({"k": "v"})),
    ];
    works
        .create(
            &PostParams::default(),
            &work("strategies", "east", manifests, configs),
        )
        .await
        .unwrap();
    let w = wait_work(&works, "strategies", "strategies reported", |w| {
        manifest_conds(w, 3)
            .get("Applied")
            .is_some_and(|c| c.0 == "True")
    })
    .await;
    let ssa = manifest_conds(&w, 2);
    assert_eq!(ssa["Applied"].0, "False");
    assert!(
        ssa["Applied"]
            .2
            .contains("conflicts with another field manager"),
        "{:?}",
        ssa["Applied"]
    );
    assert_eq!(feedback(&w, 1)["k"]["string"], "v");
    let observed = cms.get("observed").await.unwrap();
    assert!(
        observed.metadata.owner_references.is_none(),
        "ReadOnly never owns"
    );
    let free = cms.get("ssa-free").await.unwrap();
    assert!(
        free.metadata
            .managed_fields
            .unwrap()
            .iter()
            .any(|f| f.manager.as_deref() == Some("work-agent-custom"))
    );
    cms.patch(
        "create-only",
        &PatchParams::default(),
        &Patch::Merge(&json!({"data": {"k": "changed-on-cluster"}})),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        cms.get("create-only").await.unwrap().data.unwrap()["k"],
        "changed-on-cluster"
    );

    // Delete options: Orphan keeps everything, SelectivelyOrphan what it lists.
    works
        .create(
            &PostParams::default(),
            &work(
                "orphan",
                "east",
                vec![cm("kept-1", "default", json!({}))],
                json!({"deleteOption": {"propagationPolicy": "Orphan"}}),
            ),
        )
        .await
        .unwrap();
    works.create(&PostParams::default(), &work("selective", "east", vec![cm("kept-2", "default", json!({})), cm("gone-2", "default", json!({}))],
        json!({"deleteOption": {"propagationPolicy": "SelectivelyOrphan", "selectivelyOrphans": {"orphaningRules": [
            {"group": "", "resource": "configmaps", "namespace": "default", "name": "kept-2"}]}}}))).await.unwrap();
    wait_work(&works, "selective", "selective applied", |w| {
        is(w, "Applied", "True")
    })
    .await;
    wait_work(&works, "orphan", "orphan applied", |w| {
        is(w, "Applied", "True")
    })
    .await;
    works
        .delete("orphan", &DeleteParams::default())
        .await
        .unwrap();
    works
        .delete("selective", &DeleteParams::default())
        .await
        .unwrap();
    eventually(15, "both works gone", || async {
        (works.get_opt("orphan").await.ok()?.is_none()
            && works.get_opt("selective").await.ok()?.is_none())
        .then_some(())
    })
    .await;
    assert!(cms.get_opt("gone-2").await.unwrap().is_none());
    for kept in ["kept-1", "kept-2"] {
        let c = cms.get(kept).await.unwrap();
        assert!(
            c.metadata.owner_references.unwrap_or_default().is_empty(),
            "{kept} orphaned"
        );
    }

    // A work deleted while its cluster is offline: the finalizer holds it; the returning agent
    // cleans up.
    agents[0].kill();
    works
        .delete("ordered", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pending = works.get("ordered").await.unwrap();
    assert!(pending.metadata.deletion_timestamp.is_some());
    agents[0].restart_with(&hub, &SYNC[2..]);
    let spoke = agents[0].spoke().await;
    eventually(30, "the offline deletion finished", || async {
        let gone = works.get_opt("ordered").await.ok()?.is_none();
        let svc = dyn_api(&spoke, "", "v1", "Service", "services", Some("ordered"))
            .get_opt("api")
            .await
            .ok()?;
        (gone && svc.is_none()).then_some(())
    })
    .await;

    // The hub goes away: nothing is deleted, drift is still corrected from the last copy.
    let deploys: Api<Deployment> = Api::namespaced(spoke.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(spoke.clone(), "default");
    let mut hub = hub;
    hub.kill();
    cms.delete("a-next", &DeleteParams::default())
        .await
        .unwrap();
    eventually(15, "drift corrected while the hub is down", || async {
        cms.get_opt("a-next").await.ok()?
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        deploys.get_opt("hello-work").await.unwrap().is_some(),
        "workloads keep running"
    );
    assert!(cms.get_opt("create-only").await.unwrap().is_some());
    hub.restart().await.unwrap();
    let admin = hub.client().await.unwrap();
    let works: Api<ManifestWork> = Api::namespaced(admin.clone(), "east");

    // Eviction: a work that vanished from the hub without the agent's cleanup is evicted after
    // the grace period (3s here).
    agents[0].kill();
    works
        .patch(
            "hello-work-demo",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    works
        .delete("hello-work-demo", &DeleteParams::default())
        .await
        .unwrap();
    agents[0].restart_with(&hub, &SYNC[2..]);
    let spoke = agents[0].spoke().await;
    let deploys: Api<Deployment> = Api::namespaced(spoke.clone(), "default");
    let amws: Api<AppliedManifestWork> = Api::all(spoke.clone());
    let started = eventually(15, "the eviction to start", || async {
        amws.get_opt(&amw_name)
            .await
            .ok()??
            .status?
            .eviction_start_time
    })
    .await;
    eventually(20, "the evicted work's resources removed", || async {
        (deploys.get_opt("hello-work").await.ok()?.is_none()
            && amws.get_opt(&amw_name).await.ok()?.is_none())
        .then_some(())
    })
    .await;
    let _ = started;
}

#[tokio::test]
async fn sigkill_mid_apply_converges_with_nothing_duplicated_or_orphaned() {
    let hub = Hub::start().await.unwrap();
    let admin = hub.client().await.unwrap();
    let mut agents = setup(&hub, &["west"]).await;
    let spoke = agents[0].spoke().await;
    let works: Api<ManifestWork> = Api::namespaced(admin.clone(), "west");
    let cms: Api<ConfigMap> = Api::namespaced(spoke.clone(), "bulk");
    let mut manifests =
        vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bulk"}})];
    for i in 0..300 {
        manifests.push(cm(
            &format!("cm-{i:03}"),
            "bulk",
            json!({"i": i.to_string()}),
        ));
    }
    works
        .create(
            &PostParams::default(),
            &work("bulk", "west", manifests, json!({})),
        )
        .await
        .unwrap();
    // Kill the agent once the apply is under way, not finished.
    let seen = eventually(30, "the apply to start", || async {
        let n = cms.list(&ListParams::default()).await.ok()?.items.len();
        (n > 0).then_some(n)
    })
    .await;
    // The simulated cluster lives in the agent's process: what it holds is what was applied
    // before the kill.
    assert!(seen < 300, "killed mid-apply ({seen} of 300 applied)");
    agents[0].kill();
    agents[0].restart_with(&hub, &SYNC[2..]);
    let spoke = agents[0].spoke().await;
    let cms: Api<ConfigMap> = Api::namespaced(spoke.clone(), "bulk");
    wait_work(&works, "bulk", "bulk Applied after the restart", |w| {
        is(w, "Applied", "True")
    })
    .await;
    let list = cms.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(list.len(), 300, "no duplicates, none missing");
    let amws: Api<AppliedManifestWork> = Api::all(spoke.clone());
    let amw = eventually(10, "all 301 resources recorded", || async {
        amws.list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|a| {
                a.spec.manifest_work_name == "bulk"
                    && a.status
                        .as_ref()
                        .is_some_and(|s| s.applied_resources.len() == 301)
            })
    })
    .await;
    let uid = amw.metadata.uid.clone().unwrap();
    for c in &list {
        let refs = c.metadata.owner_references.as_ref().unwrap();
        assert_eq!(refs.len(), 1, "{} has exactly one owner", c.name_any());
        assert_eq!(refs[0].uid, uid, "{} is owned by the work", c.name_any());
    }
    // And deleting the work leaves nothing behind.
    works
        .delete("bulk", &DeleteParams::default())
        .await
        .unwrap();
    eventually(30, "bulk cleaned up", || async {
        let left = cms.list(&ListParams::default()).await.ok()?.items.len();
        (left == 0
            && works.get_opt("bulk").await.ok()?.is_none()
            && amws.get_opt(&amw.name_any()).await.ok()?.is_none())
        .then_some(())
    })
    .await;
}

/// Watches that end are routine: a connection the hub (or a load balancer in front of it)
/// closes mid-watch is resumed from the last resourceVersion, quietly, and works keep
/// applying. Before, every cut logged "cannot watch ManifestWorks on the hub".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifestwork_watch_the_connection_drops_under_resumes_quietly() {
    let hub = Hub::start().await.unwrap();
    let proxy = garrison_e2e::CuttingProxy::start(hub.port).await;
    let _agents = garrison_e2e::join_and_accept_at(&hub, &proxy.url(), &["c1"], &SYNC).await;
    let admin = hub.client().await.unwrap();
    let works: Api<ManifestWork> = Api::namespaced(admin.clone(), "c1");
    works
        .create(
            &PostParams::default(),
            &work(
                "before",
                "c1",
                vec![cm("before", "default", json!({"a": "1"}))],
                json!({}),
            ),
        )
        .await
        .unwrap();
    wait_work(&works, "before", "the first work applied", |w| {
        is(w, "Applied", "True")
    })
    .await;

    let mut cut = 0;
    for _ in 0..3 {
        cut += proxy.cut();
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    assert!(
        cut >= 3,
        "the agent kept connections open through the proxy ({cut} cut)"
    );

    works
        .create(
            &PostParams::default(),
            &work(
                "after",
                "c1",
                vec![cm("after", "default", json!({"b": "2"}))],
                json!({}),
            ),
        )
        .await
        .unwrap();
    wait_work(
        &works,
        "after",
        "a work created after the cuts applied",
        |w| is(w, "Applied", "True"),
    )
    .await;
    let log = std::fs::read_to_string(hub.data_dir().join("agent-c1.log")).unwrap();
    assert!(
        !log.contains("cannot watch ManifestWorks"),
        "a watch that ended was reported as a failure:\n{log}"
    );

    // The quiet retry must not hide a hub that is really gone: with the proxy closed, every
    // connection is refused and the agent says so.
    drop(proxy);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(hub.data_dir().join("agent-c1.log")).unwrap();
        if log.contains("cannot watch ManifestWorks on the hub") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "an unreachable hub went unreported for 30 s:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
