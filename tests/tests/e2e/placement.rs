//! Cluster sets and placement against a real hub process, with kube-rs and kubectl: the built-in
//! sets, set membership and its permission, bindings and theirs, scheduling and rescheduling,
//! PlacementDecisions as Argo CD's cluster-decision-resource generator reads them, 101 clusters
//! across two decisions, misconfiguration, and cleanup.

use std::collections::BTreeSet;

use garrison_api::cluster::v1beta1::{Placement, PlacementDecision};
use garrison_api::{ManagedCluster, ManagedClusterSet, ManagedClusterSetBinding};
use garrison_e2e::{Hub, api_code, eventually, kubectl_with, ok};
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use serde_json::{Value, json};

const SET_LABEL: &str = "cluster.open-cluster-management.io/clusterset";

async fn add_cluster(client: &kube::Client, name: &str, labels: Value) {
    let api: Api<ManagedCluster> = Api::all(client.clone());
    let mc: ManagedCluster = serde_json::from_value(json!({
        "apiVersion": "cluster.open-cluster-management.io/v1", "kind": "ManagedCluster",
        "metadata": {"name": name, "labels": labels}, "spec": {"hubAcceptsClient": false}
    }))
    .unwrap();
    api.create(&PostParams::default(), &mc).await.unwrap();
}

async fn namespace(client: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    api.create(&PostParams::default(), &ns).await.unwrap();
}

fn apply(hub: &Hub, yaml: &str) -> String {
    let path = hub.data_dir().join(format!("apply-{}.yaml", rand_suffix()));
    std::fs::write(&path, yaml).unwrap();
    ok(hub.kubectl(&["apply", "-f", path.to_str().unwrap()]))
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

fn condition<'a>(conds: Option<&'a Vec<Value>>, t: &str) -> Option<&'a Value> {
    conds?.iter().find(|c| c["type"] == t)
}

/// Decisions of `ns/placement` read the way Argo CD's cluster-decision-resource generator reads
/// them: a dynamic list of `placementdecisions` by label, `status.decisions` as a list, every
/// field of every entry cast to a string, `clusterName` as the match key.
async fn argo_decisions(client: &kube::Client, ns: &str, placement: &str) -> BTreeSet<String> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(
            "cluster.open-cluster-management.io",
            "v1beta1",
            "PlacementDecision",
        ),
        "placementdecisions",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let list = api
        .list(&ListParams::default().labels(&format!(
            "cluster.open-cluster-management.io/placement={placement}"
        )))
        .await
        .unwrap();
    assert!(!list.items.is_empty(), "at least one PlacementDecision");
    let mut out = BTreeSet::new();
    for item in list.items {
        let status = item.data.get("status").expect("a status");
        let decisions = status["decisions"]
            .as_array()
            .expect("status.decisions is always a list");
        for entry in decisions {
            let entry = entry.as_object().expect("an object per decision");
            for (k, v) in entry {
                assert!(v.is_string(), "decision field {k} is not a string: {v}");
            }
            out.insert(entry["clusterName"].as_str().unwrap().to_string());
        }
    }
    out
}

async fn placement_status(client: &kube::Client, ns: &str, name: &str) -> Value {
    let api: Api<Placement> = Api::namespaced(client.clone(), ns);
    serde_json::to_value(api.get(name).await.unwrap().status).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_sets_bindings_and_placements() {
    let hub = Hub::start().await.unwrap();
    let client = hub.client().await.unwrap();
    let sets: Api<ManagedClusterSet> = Api::all(client.clone());

    // The built-in sets exist and say they are empty.
    for name in ["default", "global"] {
        let set = eventually(20, "the built-in sets' conditions", || {
            let sets = sets.clone();
            async move {
                let s = sets.get(name).await.ok()?;
                let v = serde_json::to_value(&s.status).ok()?;
                condition(v["conditions"].as_array(), "ClusterSetEmpty").cloned()
            }
        })
        .await;
        assert_eq!(set["status"], "True", "{name}");
        assert_eq!(set["reason"], "NoClusterMatched");
        assert_eq!(set["message"], "No ManagedCluster selected");
    }
    let global = sets.get("global").await.unwrap();
    assert_eq!(
        serde_json::to_value(&global.spec).unwrap()["clusterSelector"],
        json!({"selectorType": "LabelSelector", "labelSelector": {}})
    );

    // Clusters: two in prod, one in no set (so in default).
    add_cluster(&client, "east", json!({SET_LABEL: "prod", "region": "eu"})).await;
    add_cluster(&client, "west", json!({SET_LABEL: "prod", "region": "us"})).await;
    add_cluster(&client, "lab", json!({"region": "eu"})).await;
    let clusters: Api<ManagedCluster> = Api::all(client.clone());
    assert_eq!(
        clusters.get("lab").await.unwrap().labels()[SET_LABEL],
        "default"
    );
    apply(
        &hub,
        "apiVersion: cluster.open-cluster-management.io/v1beta2\nkind: ManagedClusterSet\nmetadata:\n  name: prod\nspec:\n  clusterSelector:\n    selectorType: ExclusiveClusterSetLabel\n",
    );
    let prod_empty = eventually(20, "prod's ClusterSetEmpty", || {
        let sets = sets.clone();
        async move {
            let v = serde_json::to_value(sets.get("prod").await.ok()?.status).ok()?;
            condition(v["conditions"].as_array(), "ClusterSetEmpty")
                .filter(|c| c["status"] == "False")
                .cloned()
        }
    })
    .await;
    assert_eq!(prod_empty["reason"], "ClustersSelected");
    assert_eq!(prod_empty["message"], "2 ManagedClusters selected");

    // Bindings: named after their set, Bound while the set exists.
    namespace(&client, "apps").await;
    let path = hub.data_dir().join("bad-binding.yaml");
    std::fs::write(
        &path,
        "apiVersion: cluster.open-cluster-management.io/v1beta2\nkind: ManagedClusterSetBinding\nmetadata:\n  name: other\n  namespace: apps\nspec:\n  clusterSet: prod\n",
    )
    .unwrap();
    let out = hub.kubectl(&["apply", "-f", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("must have the same name as the target ManagedClusterSet"),
        "{err}"
    );
    for set in ["prod", "nope"] {
        apply(
            &hub,
            &format!(
                "apiVersion: cluster.open-cluster-management.io/v1beta2\nkind: ManagedClusterSetBinding\nmetadata:\n  name: {set}\n  namespace: apps\nspec:\n  clusterSet: {set}\n"
            ),
        );
    }
    let bindings: Api<ManagedClusterSetBinding> = Api::namespaced(client.clone(), "apps");
    for (set, status, reason) in [
        ("prod", "True", "ClusterSetBound"),
        ("nope", "False", "ClusterSetNotFound"),
    ] {
        eventually(20, "a binding's Bound condition", || {
            let bindings = bindings.clone();
            async move {
                let v = serde_json::to_value(bindings.get(set).await.ok()?.status).ok()?;
                condition(v["conditions"].as_array(), "Bound")
                    .filter(|c| c["status"] == status && c["reason"] == reason)
                    .cloned()
            }
        })
        .await;
    }

    // A placement over prod, EU only: east.
    apply(
        &hub,
        r#"apiVersion: cluster.open-cluster-management.io/v1beta1
kind: Placement
metadata:
  name: eu
  namespace: apps
spec:
  clusterSets: [prod]
  tolerations:
  - key: cluster.open-cluster-management.io/unreachable
    operator: Exists
  predicates:
  - requiredClusterSelector:
      labelSelector:
        matchLabels:
          region: eu
"#,
    );
    let decided = eventually(20, "the eu placement to decide east", || {
        let client = client.clone();
        async move {
            let v = placement_status(&client, "apps", "eu").await;
            (v["numberOfSelectedClusters"] == 1).then_some(v)
        }
    })
    .await;
    let satisfied = condition(decided["conditions"].as_array(), "PlacementSatisfied").unwrap();
    assert_eq!(satisfied["status"], "True");
    assert_eq!(satisfied["reason"], "AllDecisionsScheduled");
    let mis = condition(decided["conditions"].as_array(), "PlacementMisconfigured").unwrap();
    assert_eq!(mis["reason"], "Succeedconfigured");
    assert_eq!(
        decided["decisionGroups"],
        json!([{"decisionGroupIndex": 0, "decisionGroupName": "", "decisions": ["eu-decision-1"], "clusterCount": 1}])
    );
    assert_eq!(
        argo_decisions(&client, "apps", "eu").await,
        BTreeSet::from(["east".to_string()])
    );
    let pds: Api<PlacementDecision> = Api::namespaced(client.clone(), "apps");
    let pd = pds.get("eu-decision-1").await.unwrap();
    assert_eq!(
        pd.labels()["cluster.open-cluster-management.io/placement"],
        "eu"
    );
    assert_eq!(
        pd.labels()["cluster.open-cluster-management.io/decision-group-index"],
        "0"
    );
    assert_eq!(
        pd.labels()["cluster.open-cluster-management.io/decision-group-name"],
        ""
    );
    let owner = &pd.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("Placement", "eu", Some(true))
    );

    // Rescheduled when a cluster's labels change: west moves to the EU.
    ok(hub.kubectl(&[
        "label",
        "managedcluster",
        "west",
        "region=eu",
        "--overwrite",
    ]));
    eventually(20, "west to join the eu decisions", || {
        let client = client.clone();
        async move {
            let d = argo_decisions(&client, "apps", "eu").await;
            (d.len() == 2).then_some(d)
        }
    })
    .await;
    // And when a cluster leaves the set (by the admin): east drops out.
    ok(hub.kubectl(&[
        "label",
        "managedcluster",
        "east",
        &format!("{SET_LABEL}=default"),
        "--overwrite",
    ]));
    eventually(20, "east to leave the eu decisions", || {
        let client = client.clone();
        async move {
            let d = argo_decisions(&client, "apps", "eu").await;
            (d == BTreeSet::from(["west".to_string()])).then_some(())
        }
    })
    .await;

    // Joining a set and binding one need their permissions.
    ok(hub.kubectl(&["create", "clusterrole", "cluster-editor", "--verb=get,list,update,patch,create",
        "--resource=managedclusters.cluster.open-cluster-management.io,managedclustersetbindings.cluster.open-cluster-management.io"]));
    ok(hub.kubectl(&[
        "create",
        "clusterrolebinding",
        "alice-edits",
        "--clusterrole=cluster-editor",
        "--user=alice",
    ]));
    let alice = hub.kubeconfig_for("alice", &[]).unwrap();
    let cache = hub.data_dir().join("alice-cache");
    let out = kubectl_with(
        &alice,
        &cache,
        &[
            "label",
            "managedcluster",
            "lab",
            &format!("{SET_LABEL}=prod"),
            "--overwrite",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // The old set is checked first.
    assert!(
        err.contains("user \"alice\" cannot add/remove a ManagedCluster to/from ManagedClusterSet \"default\""),
        "{err}"
    );
    ok(hub.kubectl(&[
        "create",
        "clusterrole",
        "join-default",
        "--verb=create",
        "--resource=managedclustersets/join",
        "--resource-name=default",
    ]));
    ok(hub.kubectl(&[
        "create",
        "clusterrolebinding",
        "alice-join-default",
        "--clusterrole=join-default",
        "--user=alice",
    ]));
    let out = kubectl_with(
        &alice,
        &cache,
        &[
            "label",
            "managedcluster",
            "lab",
            &format!("{SET_LABEL}=prod"),
            "--overwrite",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ManagedClusterSet \"prod\""), "{err}");
    ok(hub.kubectl(&[
        "create",
        "clusterrole",
        "join-prod",
        "--verb=create",
        "--resource=managedclustersets/join,managedclustersets/bind",
        "--resource-name=prod",
    ]));
    ok(hub.kubectl(&[
        "create",
        "clusterrolebinding",
        "alice-join-prod",
        "--clusterrole=join-prod",
        "--user=alice",
    ]));
    ok(kubectl_with(
        &alice,
        &cache,
        &[
            "label",
            "managedcluster",
            "lab",
            &format!("{SET_LABEL}=prod"),
            "--overwrite",
        ],
    ));
    // lab is in the EU and now in prod.
    eventually(20, "lab to join the eu decisions", || {
        let client = client.clone();
        async move {
            let d = argo_decisions(&client, "apps", "eu").await;
            (d.len() == 2 && d.contains("lab")).then_some(())
        }
    })
    .await;
    let alice_client = garrison_e2e::client_from(&alice).await.unwrap();
    namespace(&client, "team").await;
    let binding = |set: &str| -> ManagedClusterSetBinding {
        serde_json::from_value(json!({
            "apiVersion": "cluster.open-cluster-management.io/v1beta2", "kind": "ManagedClusterSetBinding",
            "metadata": {"name": set, "namespace": "team"}, "spec": {"clusterSet": set}
        }))
        .unwrap()
    };
    let team: Api<ManagedClusterSetBinding> = Api::namespaced(alice_client, "team");
    let e = team
        .create(&PostParams::default(), &binding("global"))
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), 403);
    assert!(
        e.to_string()
            .contains("is not allowed to bind cluster set \"global\""),
        "{e}"
    );
    team.create(&PostParams::default(), &binding("prod"))
        .await
        .unwrap();

    // A misconfigured placement says why, and still has one (empty) decision.
    apply(
        &hub,
        r#"apiVersion: cluster.open-cluster-management.io/v1beta1
kind: Placement
metadata:
  name: broken
  namespace: apps
spec:
  predicates:
  - requiredClusterSelector:
      celSelector:
        celExpressions: ["nosuch.field == 1"]
"#,
    );
    let broken = eventually(20, "the broken placement's conditions", || {
        let client = client.clone();
        async move {
            let v = placement_status(&client, "apps", "broken").await;
            condition(v["conditions"].as_array(), "PlacementMisconfigured")
                .filter(|c| c["status"] == "True")
                .cloned()
        }
    })
    .await;
    assert!(
        broken["message"]
            .as_str()
            .unwrap()
            .starts_with("Predicate:compilation failed:"),
        "{broken}"
    );
    assert!(argo_decisions(&client, "apps", "broken").await.is_empty());

    // 101 clusters in one set: two decisions, 100 and 1.
    for i in 0..101 {
        add_cluster(&client, &format!("fleet-{i:03}"), json!({SET_LABEL: "big"})).await;
    }
    apply(
        &hub,
        "apiVersion: cluster.open-cluster-management.io/v1beta2\nkind: ManagedClusterSet\nmetadata:\n  name: big\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: scale\n---\napiVersion: cluster.open-cluster-management.io/v1beta2\nkind: ManagedClusterSetBinding\nmetadata:\n  name: big\n  namespace: scale\nspec:\n  clusterSet: big\n---\napiVersion: cluster.open-cluster-management.io/v1beta1\nkind: Placement\nmetadata:\n  name: all\n  namespace: scale\nspec:\n  tolerations:\n  - operator: Exists\n",
    );
    let scale: Api<PlacementDecision> = Api::namespaced(client.clone(), "scale");
    let sizes = eventually(30, "two decisions for 101 clusters", || {
        let scale = scale.clone();
        async move {
            let mut sizes: Vec<(String, usize)> = scale
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .iter()
                .map(|d| {
                    (
                        d.name_any(),
                        d.status.as_ref().map_or(0, |s| s.decisions.len()),
                    )
                })
                .collect();
            sizes.sort();
            (sizes.iter().map(|s| s.1).sum::<usize>() == 101).then_some(sizes)
        }
    })
    .await;
    assert_eq!(
        sizes,
        [
            ("all-decision-1".to_string(), 100),
            ("all-decision-2".to_string(), 1)
        ]
    );
    assert_eq!(argo_decisions(&client, "scale", "all").await.len(), 101);

    // Deleting a placement takes its decisions with it.
    let placements: Api<Placement> = Api::namespaced(client.clone(), "scale");
    placements
        .delete("all", &DeleteParams::default())
        .await
        .unwrap();
    eventually(20, "the decisions to be collected", || {
        let scale = scale.clone();
        async move {
            scale
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .is_empty()
                .then_some(())
        }
    })
    .await;

    // The built-in set comes back after deletion, selector restored after a change.
    sets.delete("global", &DeleteParams::default())
        .await
        .unwrap();
    eventually(30, "global to be recreated", || {
        let sets = sets.clone();
        async move { sets.get("global").await.ok() }
    })
    .await;
    sets.patch(
        "default",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"clusterSelector": {"selectorType": "LabelSelector", "labelSelector": {"matchLabels": {"x": "y"}}}}})),
    )
    .await
    .unwrap();
    eventually(30, "default's selector to be restored", || {
        let sets = sets.clone();
        async move {
            let s = sets.get("default").await.ok()?;
            (serde_json::to_value(&s.spec).ok()?["clusterSelector"]
                == json!({"selectorType": "ExclusiveClusterSetLabel"}))
            .then_some(())
        }
    })
    .await;
}
