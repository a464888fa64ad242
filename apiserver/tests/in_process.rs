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
