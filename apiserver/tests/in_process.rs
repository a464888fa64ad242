//! The in-process kube client: kube-rs through the router as a tower service, no sockets.

use futures::{StreamExt, TryStreamExt};
use garrison_apiserver::auth::UserInfo;
use garrison_apiserver::server::{Server, ServerConfig};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_client_reads_writes_and_watches_under_rbac() {
    let server = Server::build(&ServerConfig::default()).unwrap();
    let admin = server.local_client(garrison_apiserver::bootstrap::system_user());
    Api::<Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "inproc"}})).unwrap(),
        )
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), "inproc");
    let mut watch = cms
        .watch(&WatchParams::default().timeout(5), "0")
        .await
        .unwrap()
        .boxed();
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "a"}, "data": {"k": "v"}})).unwrap(),
    )
    .await
    .unwrap();
    match watch.try_next().await.unwrap() {
        Some(WatchEvent::Added(o)) => assert_eq!(o.metadata.name.as_deref(), Some("a")),
        other => panic!("expected ADDED, got {other:?}"),
    }
    assert_eq!(
        cms.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );

    // The identity given to the client is the one RBAC judges.
    let nobody = server.local_client(UserInfo::new("nobody", vec![], "internal"));
    let err = Api::<ConfigMap>::namespaced(nobody, "inproc")
        .list(&ListParams::default())
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => assert_eq!(s.code, 403),
        other => panic!("expected 403, got {other}"),
    }
}

/// A watch that times out ends with a bookmark, and that bookmark never promises a change the
/// watch did not send: a client resuming from it misses nothing, however busy the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_ends_with_a_bookmark_that_skips_no_event() {
    let server = Server::build(&ServerConfig::default()).unwrap();
    let admin = server.local_client(garrison_apiserver::bootstrap::system_user());
    Api::<Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "busy"}})).unwrap(),
        )
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), "busy");
    let params = WatchParams {
        bookmarks: true,
        ..WatchParams::default()
    }
    .timeout(2);
    let mut watch = cms.watch(&params, "0").await.unwrap().boxed();
    // Four writers, faster than the watch is read, so that events wait in its channel when it
    // times out; 6,000 events in all, fewer than a watch's channel holds, so none is dropped.
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..4 {
        let cms = cms.clone();
        writers.spawn(async move {
            for i in 0..1_500 {
                let name = format!("cm-{w}-{i}");
                let cm = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
                cms.create(&PostParams::default(), &cm).await.unwrap();
            }
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut last = None;
    while let Some(ev) = watch.try_next().await.unwrap() {
        match ev {
            WatchEvent::Added(o) => {
                seen.insert(o.metadata.name.unwrap());
                if seen.len() % 20 == 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            }
            WatchEvent::Bookmark(b) => {
                last = Some(b.metadata.resource_version.parse::<u64>().unwrap())
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    writers.abort_all();
    let promised = last.expect("the watch ended with a bookmark");
    // Every ConfigMap written at or before the bookmark's version was sent before it.
    let listed = cms.list(&ListParams::default()).await.unwrap();
    let mut checked = 0;
    for cm in &listed.items {
        let rv: u64 = cm
            .metadata
            .resource_version
            .as_deref()
            .unwrap()
            .parse()
            .unwrap();
        if rv <= promised {
            checked += 1;
            assert!(
                seen.contains(cm.metadata.name.as_deref().unwrap()),
                "{} (rv {rv}) is behind the bookmark ({promised}) but was never sent",
                cm.metadata.name.as_deref().unwrap()
            );
        }
    }
    assert!(checked > 0, "the watch saw writes before its end");
}
