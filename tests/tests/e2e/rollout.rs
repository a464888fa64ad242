//! ManifestWorkReplicaSet with real agents and simulated clusters: a progressive rollout that
//! stops at `maxFailures` when a cluster's workload fails, resumes when it recovers, and
//! follows the placement's decisions afterwards.

use garrison_api::work::v1::ManifestWork;
use garrison_api::work::v1alpha1::ManifestWorkReplicaSet;
use garrison_e2e::{Hub, eventually, join_and_accept, ok};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const SYNC: [&str; 4] = ["--lease-duration", "1s", "--status-sync-interval", "1s"];

fn deployment(annotations: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "annotations": annotations},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}})
}

async fn work_on(client: &kube::Client, cluster: &str) -> Option<ManifestWork> {
    Api::<ManifestWork>::namespaced(client.clone(), cluster)
        .get_opt("shop")
        .await
        .unwrap()
}

fn condition(m: &ManifestWorkReplicaSet, t: &str) -> Option<(String, String)> {
    m.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progressive_rollout_stops_at_max_failures_and_resumes_on_recovery() {
    let hub = Hub::start().await.unwrap();
    let client = hub.client().await.unwrap();
    let agents = join_and_accept(&hub, &["r1", "r2", "r3"], &SYNC).await;
    for c in ["r1", "r2", "r3"] {
        ok(hub.kubectl(&[
            "label",
            "managedcluster",
            c,
            "cluster.open-cluster-management.io/clusterset=prod",
            "--overwrite",
        ]));
    }
    let yaml = r#"apiVersion: cluster.open-cluster-management.io/v1beta2
kind: ManagedClusterSet
metadata:
  name: prod
---
apiVersion: v1
kind: Namespace
metadata:
  name: apps
---
apiVersion: cluster.open-cluster-management.io/v1beta2
kind: ManagedClusterSetBinding
metadata:
  name: prod
  namespace: apps
spec:
  clusterSet: prod
---
apiVersion: cluster.open-cluster-management.io/v1beta1
kind: Placement
metadata:
  name: all
  namespace: apps
spec:
  clusterSets: [prod]
  tolerations:
  - key: cluster.open-cluster-management.io/unreachable
    operator: Exists
"#;
    let path = hub.data_dir().join("rollout.yaml");
    std::fs::write(&path, yaml).unwrap();
    ok(hub.kubectl(&["apply", "-f", path.to_str().unwrap()]));

    // r1's workload will fail: its Deployment exists there already, marked to fail by the
    // simulated cluster. The agent's apply keeps annotations it does not set.
    let r1 = agents[0].spoke().await;
    Api::<Namespace>::all(r1.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "shop"}})).unwrap(),
        )
        .await
        .unwrap();
    let r1_deploys: Api<Deployment> = Api::namespaced(r1.clone(), "shop");
    r1_deploys
        .create(
            &PostParams::default(),
            &serde_json::from_value(deployment(
                json!({"simulation.garrison.dev/fail": "image pull back-off"}),
            ))
            .unwrap(),
        )
        .await
        .unwrap();

    let mwrs: ManifestWorkReplicaSet = serde_json::from_value(json!({
        "apiVersion": "work.open-cluster-management.io/v1alpha1", "kind": "ManifestWorkReplicaSet",
        "metadata": {"name": "shop", "namespace": "apps"},
        "spec": {
            "manifestWorkTemplate": {"workload": {"manifests": [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
                deployment(json!({}))
            ]}},
            "placementRefs": [{"name": "all", "rolloutStrategy": {"type": "Progressive",
                "progressive": {"maxConcurrency": 1, "maxFailures": 0}}}]
        }
    }))
    .unwrap();
    let sets: Api<ManifestWorkReplicaSet> = Api::namespaced(client.clone(), "apps");
    sets.create(&PostParams::default(), &mwrs).await.unwrap();

    // r1 first (clusters go by name); its workload fails, so the rollout stops there.
    let w = eventually(60, "r1's work to report Degraded", || {
        let client = client.clone();
        async move {
            let w = work_on(&client, "r1").await?;
            let degraded = w
                .status
                .as_ref()?
                .conditions
                .iter()
                .any(|c| c.type_ == "Degraded" && c.status == "True");
            degraded.then_some(w)
        }
    })
    .await;
    assert!(
        w.labels()
            .get("work.open-cluster-management.io/manifestworkreplicaset")
            .is_some_and(|v| v == "apps.shop")
    );
    // Several passes later, still nobody else.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert!(work_on(&client, "r2").await.is_none(), "r2 must wait");
    assert!(work_on(&client, "r3").await.is_none(), "r3 must wait");
    let m = sets.get("shop").await.unwrap();
    assert_eq!(
        condition(&m, "PlacementRolledOut"),
        Some(("False".into(), "Progressing".into()))
    );
    // Degraded somewhere: not as expected.
    assert_eq!(
        condition(&m, "ManifestworkApplied"),
        Some(("False".into(), "NotAsExpected".into()))
    );
    let summary = m.status.as_ref().unwrap().summary.clone().unwrap();
    assert_eq!((summary.total, summary.degraded), (Some(1), Some(1)));

    // r1 recovers: the rollout goes on to r2, then r3, and completes.
    r1_deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"simulation.garrison.dev/fail": null}}}),
            ),
        )
        .await
        .unwrap();
    eventually(90, "the rollout to complete", || {
        let sets = sets.clone();
        async move {
            let m = sets.get("shop").await.ok()?;
            (condition(&m, "PlacementRolledOut") == Some(("True".into(), "Complete".into())))
                .then_some(())
        }
    })
    .await;
    for c in ["r1", "r2", "r3"] {
        assert!(work_on(&client, c).await.is_some(), "{c} has the work");
    }
    let m = sets.get("shop").await.unwrap();
    let summary = m.status.as_ref().unwrap().summary.clone().unwrap();
    assert_eq!(
        (summary.total, summary.available, summary.degraded),
        (Some(3), Some(3), Some(0))
    );
    assert_eq!(
        condition(&m, "ManifestworkApplied"),
        Some(("True".into(), "AsExpected".into()))
    );

    // Works follow the decisions: r3 leaves the set, so its work goes.
    ok(hub.kubectl(&[
        "label",
        "managedcluster",
        "r3",
        "cluster.open-cluster-management.io/clusterset=default",
        "--overwrite",
    ]));
    eventually(30, "r3's work to be removed", || {
        let client = client.clone();
        async move { work_on(&client, "r3").await.is_none().then_some(()) }
    })
    .await;
    let summary = eventually(30, "the summary to count two clusters", || {
        let sets = sets.clone();
        async move {
            let s = sets.get("shop").await.ok()?.status?.summary?;
            (s.total == Some(2)).then_some(s)
        }
    })
    .await;
    assert_eq!(summary.available, Some(2));
    assert!(work_on(&client, "r1").await.is_some() && work_on(&client, "r2").await.is_some());
    drop(agents);
}
