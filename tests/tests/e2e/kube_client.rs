//! kube-rs against a running hub over real HTTPS: CRUD, optimistic concurrency, watches,
//! `kube::runtime::watcher` and a small `Controller`, server-side apply, and metadata semantics.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use garrison_api::ManagedCluster;
use garrison_e2e::{Hub, api_code, eventually};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::runtime::{Controller, controller::Action, watcher};
use serde_json::json;

fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

async fn namespace(client: &kube::Client, name: &str) {
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

fn rv_of(cm: &ConfigMap) -> String {
    cm.metadata.resource_version.clone().unwrap()
}

#[tokio::test]
async fn configmaps_and_managed_clusters_go_through_create_get_list_update_delete() {
    let hub = Hub::start().await.unwrap();
    let client = hub.client().await.unwrap();
    namespace(&client, "crud").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "crud");
    let created = api
        .create(&PostParams::default(), &cm("a", &[("k", "v")]))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    let got = api.get("a").await.unwrap();
    assert_eq!(got.data.as_ref().unwrap()["k"], "v");
    let mut changed = got.clone();
    changed
        .data
        .as_mut()
        .unwrap()
        .insert("k".into(), "w".into());
    let replaced = api
        .replace("a", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert!(rv_of(&replaced).parse::<u64>().unwrap() > rv_of(&got).parse::<u64>().unwrap());
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    api.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_code(&api.get("a").await.unwrap_err()), 404);

    let clusters: Api<ManagedCluster> = Api::all(client.clone());
    let mc: ManagedCluster = serde_json::from_value(json!({
        "apiVersion": "cluster.open-cluster-management.io/v1", "kind": "ManagedCluster",
        "metadata": {"name": "cluster1"}, "spec": {"hubAcceptsClient": true}
    }))
    .unwrap();
    let created = clusters.create(&PostParams::default(), &mc).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(
        created.spec.lease_duration_seconds,
        Some(60),
        "the CRD default is applied"
    );
    clusters
        .delete("cluster1", &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stale_update_gets_409_conflict() {
    let hub = Hub::start().await.unwrap();
    let client = hub.client().await.unwrap();
    namespace(&client, "occ").await;
    let api: Api<ConfigMap> = Api::namespaced(client, "occ");
    let first = api
        .create(&PostParams::default(), &cm("a", &[("n", "0")]))
        .await
        .unwrap();
    let mut one = first.clone();
    one.data.as_mut().unwrap().insert("n".into(), "1".into());
    api.replace("a", &PostParams::default(), &one)
        .await
        .unwrap();
    let mut stale = first.clone();
    stale.data.as_mut().unwrap().insert("n".into(), "2".into());
    let err = api
        .replace("a", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 409, "{err}");
    assert_eq!(
        api.get("a").await.unwrap().data.unwrap()["n"],
        "1",
        "the stale write changed nothing"
    );
}

#[tokio::test]
async fn a_watch_resumes_from_a_resource_version() {
    let hub = Hub::start().await.unwrap();
    let client = hub.client().await.unwrap();
    namespace(&client, "w").await;
    let api: Api<ConfigMap> = Api::namespaced(client, "w");
    let a = api
        .create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("b", &[]))
        .await
        .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &rv_of(&a))
        .await
        .unwrap()
        .boxed();
    let mut seen = Vec::new();
    while let Some(ev) = stream.try_next().await.unwrap() {
        match ev {
            WatchEvent::Added(o) => seen.push(format!("ADDED {}", o.metadata.name.unwrap())),
            WatchEvent::Deleted(o) => seen.push(format!("DELETED {}", o.metadata.name.unwrap())),
            WatchEvent::Modified(o) => seen.push(format!("MODIFIED {}", o.metadata.name.unwrap())),
            _ => {}
        }
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen, vec!["ADDED b", "DELETED a"]);
}

#[tokio::test]
async fn a_watch_from_a_compacted_resource_version_gets_410_gone() {
    let hub = Hub::start_with(&["--watch-cache-events", "5"])
        .await
        .unwrap();
    let client = hub.client().await.unwrap();
    namespace(&client, "gone").await;
    let api: Api<ConfigMap> = Api::namespaced(client, "gone");
    let first = api
        .create(&PostParams::default(), &cm("first", &[]))
        .await
        .unwrap();
    for i in 0..10 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), &[]))
            .await
            .unwrap();
    }
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &rv_of(&first))
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
        }
        other => panic!("expected a 410 error event, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_bookmarks_carry_the_current_resource_version() {
    let hub = Hub::start_with(&["--watch-bookmark-seconds", "1"])
        .await
        .unwrap();
    let client = hub.client().await.unwrap();
    namespace(&client, "bm").await;
    let api: Api<ConfigMap> = Api::namespaced(client, "bm");
    let a = api
        .create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap();
    let mut stream = api
        .watch(
            &WatchParams {
                bookmarks: true,
                ..WatchParams::default()
            }
            .timeout(10),
            &rv_of(&a),
        )
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(Duration::from_secs(9), stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Bookmark(b)) => assert!(
            b.metadata.resource_version.parse::<u64>().unwrap()
                >= rv_of(&a).parse::<u64>().unwrap()
        ),
        other => panic!("expected a bookmark, got {other:?}"),
    }
}

#[tokio::test]
async fn the_runtime_watcher_sees_changes_and_a_controller_converges() {
    let hub = Hub::start().await.unwrap();
    let client = hub.client().await.unwrap();
    namespace(&client, "ctl").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "ctl");
    for i in 0..5 {
        api.create(
            &PostParams::default(),
            &cm(&format!("item{i}"), &[("want", &format!("{i}"))]),
        )
        .await
        .unwrap();
    }
    // The watcher's initial list and a later event.
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut initial = 0;
    while let Some(ev) = events.try_next().await.unwrap() {
        match ev {
            watcher::Event::InitApply(_) => initial += 1,
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(initial, 5);
    api.create(&PostParams::default(), &cm("late", &[("want", "x")]))
        .await
        .unwrap();
    loop {
        if let Some(watcher::Event::Apply(o)) = events.try_next().await.unwrap()
            && o.metadata.name.as_deref() == Some("late")
        {
            break;
        }
    }

    // A controller that copies data.want into data.done, until every object agrees.
    struct Ctx {
        api: Api<ConfigMap>,
    }
    async fn reconcile(obj: Arc<ConfigMap>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
        let data = obj.data.clone().unwrap_or_default();
        if data.get("done") != data.get("want") {
            let patch = json!({"data": {"done": data.get("want")}});
            ctx.api
                .patch(
                    obj.metadata.name.as_deref().unwrap(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
        }
        Ok(Action::await_change())
    }
    fn error_policy(_: Arc<ConfigMap>, _: &kube::Error, _: Arc<Ctx>) -> Action {
        Action::requeue(Duration::from_millis(200))
    }
    let ctl = Controller::new(api.clone(), watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(Ctx { api: api.clone() }))
        .for_each(|_| async {});
    let handle = tokio::spawn(ctl);
    let converged = async {
        loop {
            let items = api.list(&ListParams::default()).await.unwrap().items;
            if items.iter().all(|c| {
                let d: BTreeMap<String, String> = c.data.clone().unwrap_or_default();
                d.contains_key("done") && d.get("done") == d.get("want")
            }) {
                return items.len();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let n = tokio::time::timeout(Duration::from_secs(30), converged)
        .await
        .expect("controller converges");
    assert_eq!(n, 6);
    handle.abort();
}

#[tokio::test]
async fn generate_name_selectors_and_pages_work_as_in_kubernetes() {
    let hub = Hub::start().await.unwrap();
    let client = hub.client().await.unwrap();
    namespace(&client, "sel").await;
    let api: Api<ConfigMap> = Api::namespaced(client, "sel");
    let generated = api
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    generate_name: Some("gen-".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let name = generated.metadata.name.unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    for i in 0..7 {
        let mut c = cm(&format!("p{i}"), &[]);
        c.metadata.labels = Some(
            [(
                "parity".to_string(),
                if i % 2 == 0 { "even" } else { "odd" }.to_string(),
            )]
            .into(),
        );
        api.create(&PostParams::default(), &c).await.unwrap();
    }
    assert_eq!(
        api.list(&ListParams::default().labels("parity=even"))
            .await
            .unwrap()
            .items
            .len(),
        4
    );
    assert_eq!(
        api.list(&ListParams::default().labels("parity in (odd),!missing"))
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    assert_eq!(
        api.list(&ListParams::default().fields("metadata.name=p3"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(
        api_code(
            &api.list(&ListParams::default().fields("data.x=1"))
                .await
                .unwrap_err()
        ),
        400
    );
    assert_eq!(
        api_code(
            &api.list(&ListParams::default().labels("a in (b"))
                .await
                .unwrap_err()
        ),
        400
    );
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(3);
    let mut first_rv: Option<String> = None;
    loop {
        let page = api.list(&lp).await.unwrap();
        assert!(page.items.len() <= 3);
        // Every page carries the first page's version, even after a write in between, so a
        // watch started from it misses nothing that changed while paging.
        match &first_rv {
            None => {
                first_rv = page.metadata.resource_version.clone();
                let touch = serde_json::json!({"metadata": {"annotations": {"touched": "yes"}}});
                let first = page.items[0].metadata.name.clone().unwrap();
                api.patch(
                    &first,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&touch),
                )
                .await
                .unwrap();
            }
            Some(rv) => assert_eq!(page.metadata.resource_version.as_ref(), Some(rv)),
        }
        names.extend(page.items.into_iter().map(|c| c.metadata.name.unwrap()));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = ListParams::default().limit(3).continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(names.len(), 8, "{names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 8, "no item repeated across pages");
}

#[tokio::test]
async fn server_side_apply_owns_fields_and_reports_conflicts() {
    let hub = Hub::start().await.unwrap();
    let client = hub.client().await.unwrap();
    namespace(&client, "ssa").await;
    let api: Api<ConfigMap> = Api::namespaced(client, "ssa");
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "1", "y": "2"}});
    let created = api
        .patch("a", &PatchParams::apply("alice"), &Patch::Apply(&cfg))
        .await
        .unwrap();
    assert_eq!(created.data.as_ref().unwrap()["x"], "1");
    let mf = created.metadata.managed_fields.unwrap();
    assert_eq!(mf[0].manager.as_deref(), Some("alice"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    let bob = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "changed"}});
    let err = api
        .patch("a", &PatchParams::apply("bob"), &Patch::Apply(&bob))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 409, "{err}");
    assert!(err.to_string().contains("alice"), "{err}");
    let forced = api
        .patch("a", &PatchParams::apply("bob").force(), &Patch::Apply(&bob))
        .await
        .unwrap();
    assert_eq!(forced.data.as_ref().unwrap()["x"], "changed");
    // alice drops y from her configuration: it is removed.
    let alice2 =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {}});
    let after = api
        .patch("a", &PatchParams::apply("alice"), &Patch::Apply(&alice2))
        .await
        .unwrap();
    let data = after.data.unwrap_or_default();
    assert!(!data.contains_key("y"), "{data:?}");
    assert_eq!(data["x"], "changed");
}

#[tokio::test]
async fn status_generation_finalizers_and_garbage_collection_follow_kubernetes() {
    let hub = Hub::start().await.unwrap();
    let client = hub.client().await.unwrap();
    let clusters: Api<ManagedCluster> = Api::all(client.clone());
    let mc: ManagedCluster = serde_json::from_value(json!({"apiVersion": "cluster.open-cluster-management.io/v1", "kind": "ManagedCluster", "metadata": {"name": "c1", "finalizers": ["test/hold"]}, "spec": {"hubAcceptsClient": false}, "status": {"version": {"kubernetes": "ignored"}}})).unwrap();
    let created = clusters.create(&PostParams::default(), &mc).await.unwrap();
    assert!(created.status.is_none(), "status is not set on create");
    // The hub's cluster controller taints a new cluster `unreachable` (a spec write); after
    // that nothing else changes its spec, so the generations below are the test's alone.
    let g = eventually(30, "the unreachable taint", || async {
        let c = clusters.get("c1").await.ok()?;
        (!c.spec.taints.is_empty()).then_some(c.metadata.generation)
    })
    .await;
    // A status write leaves spec and generation alone.
    let st = clusters.patch_status("c1", &PatchParams::default(), &Patch::Merge(json!({"status": {"version": {"kubernetes": "v1.33.0"}}, "spec": {"hubAcceptsClient": true}}))).await.unwrap();
    assert_eq!(st.metadata.generation, g);
    assert_eq!(st.spec.hub_accepts_client, Some(false));
    // A spec write bumps generation and leaves status alone.
    let sp = clusters
        .patch(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hubAcceptsClient": true}, "status": null})),
        )
        .await
        .unwrap();
    assert_eq!(sp.metadata.generation, g.map(|g| g + 1));
    assert!(sp.status.is_some());
    // A label change is not a spec change.
    let lb = clusters
        .patch(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(lb.metadata.generation, g.map(|g| g + 1));
    // Delete with a finalizer only marks the object.
    clusters
        .delete("c1", &DeleteParams::default())
        .await
        .unwrap();
    let marked = clusters.get("c1").await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    clusters
        .patch(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    assert_eq!(api_code(&clusters.get("c1").await.unwrap_err()), 404);

    // ownerReferences: background deletion removes dependents; orphan keeps them.
    namespace(&client, "gc").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "gc");
    for (owner, policy) in [
        ("owner-bg", "Background"),
        ("owner-orphan", "Orphan"),
        ("owner-fg", "Foreground"),
    ] {
        let o = api
            .create(&PostParams::default(), &cm(owner, &[]))
            .await
            .unwrap();
        let mut dep = cm(&format!("{owner}-dep"), &[]);
        dep.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: owner.into(),
                uid: o.metadata.uid.clone().unwrap(),
                block_owner_deletion: Some(true),
                ..Default::default()
            },
        ]);
        api.create(&PostParams::default(), &dep).await.unwrap();
        let dp = DeleteParams {
            propagation_policy: Some(match policy {
                "Background" => kube::api::PropagationPolicy::Background,
                "Orphan" => kube::api::PropagationPolicy::Orphan,
                _ => kube::api::PropagationPolicy::Foreground,
            }),
            ..Default::default()
        };
        api.delete(owner, &dp).await.unwrap();
    }
    let settled = async {
        loop {
            let names: Vec<String> = api
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|c| c.metadata.name.unwrap())
                .collect();
            if names == vec!["owner-orphan-dep".to_string()] {
                let orphan = api.get("owner-orphan-dep").await.unwrap();
                assert!(
                    orphan
                        .metadata
                        .owner_references
                        .unwrap_or_default()
                        .is_empty(),
                    "the orphan lost its owner reference"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), settled)
        .await
        .expect("garbage collection settles");

    // Deleting a namespace deletes what is in it, then the namespace.
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.delete("gc", &DeleteParams::default()).await.unwrap();
    let gone = async {
        loop {
            if let Err(e) = ns.get("gc").await {
                assert_eq!(api_code(&e), 404);
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), gone)
        .await
        .expect("namespace goes away");
    assert!(
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn creating_in_a_missing_or_terminating_namespace_is_refused() {
    let hub = Hub::start().await.unwrap();
    let client = hub.client().await.unwrap();
    let missing: Api<ConfigMap> = Api::namespaced(client.clone(), "nope");
    assert_eq!(
        api_code(
            &missing
                .create(&PostParams::default(), &cm("a", &[]))
                .await
                .unwrap_err()
        ),
        404
    );
    namespace(&client, "t").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "t");
    let mut held = cm("held", &[]);
    held.metadata.finalizers = Some(vec!["test/hold".into()]);
    api.create(&PostParams::default(), &held).await.unwrap();
    Api::<Namespace>::all(client.clone())
        .delete("t", &DeleteParams::default())
        .await
        .unwrap();
    let err = api
        .create(&PostParams::default(), &cm("b", &[]))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 403, "{err}");
    assert!(err.to_string().contains("being terminated"), "{err}");
}

#[tokio::test]
async fn a_new_crd_is_served_validated_defaulted_and_cleaned_up() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let hub = Hub::start().await.unwrap();
    let client = hub.client().await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["size"], "properties": {
                        "size": {"type": "integer", "minimum": 1},
                        "color": {"type": "string", "enum": ["red", "blue"], "default": "red"}}},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}
    });
    let created = crds
        .create(
            &PostParams::default(),
            &serde_json::from_value(crd).unwrap(),
        )
        .await
        .unwrap();
    let established = created
        .status
        .unwrap()
        .conditions
        .unwrap()
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    assert!(established);
    // A non-structural schema is refused.
    let bad = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "gadgets", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"description": "untyped"}}}}}]}});
    assert_eq!(
        api_code(
            &crds
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(bad).unwrap()
                )
                .await
                .unwrap_err()
        ),
        422
    );

    namespace(&client, "shop").await;
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "shop", &ar);
    let w: DynamicObject = serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}})).unwrap();
    let got = widgets.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(
        got.data["spec"]["color"], "red",
        "the schema default is applied"
    );
    let invalid: DynamicObject = serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w2"}, "spec": {"size": 0, "color": "green"}})).unwrap();
    let err = widgets
        .create(&PostParams::default(), &invalid)
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 422, "{err}");
    assert!(
        err.to_string().contains("spec.size") && err.to_string().contains("spec.color"),
        "{err}"
    );
    let missing: DynamicObject = serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w3"}, "spec": {}})).unwrap();
    assert_eq!(
        api_code(
            &widgets
                .create(&PostParams::default(), &missing)
                .await
                .unwrap_err()
        ),
        422
    );

    // Deleting the CRD deletes its objects, then stops serving the kind.
    crds.delete("widgets.example.com", &Default::default())
        .await
        .unwrap();
    let gone = async {
        loop {
            if crds.get("widgets.example.com").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), gone)
        .await
        .expect("CRD cleanup finishes");
    assert_eq!(
        api_code(&widgets.list(&ListParams::default()).await.unwrap_err()),
        404
    );
}

/// A CRD whose schema is tightened keeps its objects writable, as kube-apiserver's validation
/// ratcheting does: a value that no longer passes is accepted on update while it is unchanged
/// (an object's field, or a list-map item found by its keys), and refused once changed, on
/// create, and wherever it is new.
#[tokio::test]
async fn a_tightened_schema_lets_unchanged_values_stand_on_update() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let hub = Hub::start().await.unwrap();
    let client = hub.client().await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = |name_max: u64, size_max: u64, value_max: u64| {
        let item = json!({"type": "object", "required": ["key"], "properties": {
            "key": {"type": "string"}, "value": {"type": "string", "maxLength": value_max}}});
        serde_json::from_value::<CustomResourceDefinition>(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "gizmos.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "gizmos", "kind": "Gizmo"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {
                            "name": {"type": "string", "maxLength": name_max},
                            "size": {"type": "integer", "maximum": size_max},
                            "items": {"type": "array", "x-kubernetes-list-type": "map",
                                "x-kubernetes-list-map-keys": ["key"], "items": item}}}}}}}]}
        }))
        .unwrap()
    };
    crds.create(&PostParams::default(), &crd(64, 1000, 64))
        .await
        .unwrap();
    namespace(&client, "shop").await;
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Gizmo"),
        "gizmos",
    );
    let gizmos: Api<DynamicObject> = Api::namespaced_with(client.clone(), "shop", &ar);
    let gizmo = |name: &str, spec: serde_json::Value| -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Gizmo",
            "metadata": {"name": name}, "spec": spec}))
        .unwrap()
    };
    let stored = json!({"name": "a-long-name", "size": 100,
        "items": [{"key": "a", "value": "long-value"}]});
    eventually(10, "the new kind to be served", || async {
        gizmos
            .create(&PostParams::default(), &gizmo("g1", stored.clone()))
            .await
            .ok()
    })
    .await;
    // Tighter: a name of at most 5 characters, a size of at most 10, values of at most 3.
    let mut tight = crd(5, 10, 3);
    tight.metadata.resource_version = crds
        .get("gizmos.example.com")
        .await
        .unwrap()
        .metadata
        .resource_version;
    crds.replace("gizmos.example.com", &PostParams::default(), &tight)
        .await
        .unwrap();
    let patch = |spec: serde_json::Value| {
        let gizmos = gizmos.clone();
        async move {
            gizmos
                .patch(
                    "g1",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": spec})),
                )
                .await
        }
    };
    // The schema is served once the CRD's new version is read: a new object is refused.
    let err = eventually(10, "the tightened schema to be served", || async {
        gizmos
            .create(&PostParams::default(), &gizmo("g2", stored.clone()))
            .await
            .err()
            .filter(|e| api_code(e) == 422)
    })
    .await;
    for field in ["spec.name", "spec.size", "spec.items[0].value"] {
        assert!(err.to_string().contains(field), "{field}: {err}");
    }

    // An update that leaves the values the schema no longer allows as they are.
    let got = patch(json!({"size": 5}))
        .await
        .expect("unchanged values stand");
    assert_eq!(got.data["spec"]["size"], 5);
    assert_eq!(got.data["spec"]["name"], "a-long-name");
    // The list-map item is found by its key wherever it stands: a new valid item before it.
    let got =
        patch(json!({"items": [{"key": "b", "value": "ok"}, {"key": "a", "value": "long-value"}]}))
            .await
            .expect("an unchanged item stands where it moves");
    assert_eq!(got.data["spec"]["items"][1]["value"], "long-value");
    // A replace (PUT) is ratcheted as a patch is.
    let mut whole = gizmos.get("g1").await.unwrap();
    whole.data["spec"]["size"] = json!(6);
    gizmos
        .replace("g1", &PostParams::default(), &whole)
        .await
        .expect("a replace with unchanged values");

    // Changed values, and new ones, are held to the schema.
    for (what, spec, field) in [
        (
            "a changed name",
            json!({"name": "another-long-name"}),
            "spec.name",
        ),
        ("a size past the maximum", json!({"size": 11}), "spec.size"),
        (
            "a changed item",
            json!({"items": [{"key": "b", "value": "ok"}, {"key": "a", "value": "longer-value"}]}),
            "spec.items[1].value",
        ),
        (
            "a new item",
            json!({"items": [{"key": "b", "value": "too-long"}, {"key": "a", "value": "long-value"}]}),
            "spec.items[0].value",
        ),
    ] {
        let err = patch(spec)
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"));
        assert_eq!(api_code(&err), 422, "{what}: {err}");
        assert!(err.to_string().contains(field), "{what}: {err}");
    }
    let kept = gizmos.get("g1").await.unwrap();
    assert_eq!(kept.data["spec"]["size"], 6);
    assert_eq!(kept.data["spec"]["items"][0]["value"], "ok");
}

/// Patches that race on one object (merge, merge with an empty resourceVersion, strategic, and
/// server-side apply) are each applied to the object as it stands when stored, as
/// kube-apiserver's guaranteed update retries them: none undoes another's change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_patches_lose_no_change() {
    let hub = Hub::start().await.unwrap();
    let client = hub.client().await.unwrap();
    namespace(&client, "race").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "race");
    cms.create(&PostParams::default(), &cm("shared", &[]))
        .await
        .unwrap();
    let writers = 4;
    let each = 40;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let cms = cms.clone();
            tokio::spawn(async move {
                for i in 0..each {
                    let key = format!("w{w}-{i}");
                    let (params, patch) = match w {
                        0 => (
                            PatchParams::default(),
                            Patch::Merge(json!({"data": {key: "x"}})),
                        ),
                        // An empty resourceVersion is no precondition.
                        1 => (
                            PatchParams::default(),
                            Patch::Merge(
                                json!({"metadata": {"resourceVersion": ""}, "data": {key: "x"}}),
                            ),
                        ),
                        2 => (
                            PatchParams::default(),
                            Patch::Strategic(json!({"data": {key: "x"}})),
                        ),
                        // An apply names every key its manager owns.
                        _ => {
                            let owned: serde_json::Map<String, serde_json::Value> =
                                (0..=i).map(|j| (format!("w{w}-{j}"), json!("x"))).collect();
                            (
                                PatchParams::apply("racer"),
                                Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "shared"}, "data": owned})),
                            )
                        }
                    };
                    if let Err(e) = cms.patch("shared", &params, &patch).await {
                        panic!("writer {w}, change {i}: {e}");
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let data = cms.get("shared").await.unwrap().data.unwrap_or_default();
    let lost: Vec<String> = (0..writers)
        .flat_map(|w| (0..each).map(move |i| format!("w{w}-{i}")))
        .filter(|k| !data.contains_key(k))
        .collect();
    assert!(lost.is_empty(), "{} changes lost: {lost:?}", lost.len());
}
