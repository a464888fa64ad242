//! Bad input to the API: malformed JSON and YAML, schema violations, unknown fields, oversized
//! bodies, invalid names, wrong content types, failed preconditions. Each gets the Status
//! kube-apiserver would send, and leaves nothing behind.

use garrison_e2e::{Hub, api_code};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::{Value, json};

/// (what, path, content type, body, expected code, expected reason)
type Case<'a> = (&'a str, &'a str, &'a str, Vec<u8>, u16, &'a str);

async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, String) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Content-Type", content_type)
        .body(body)
        .unwrap();
    match client.request::<Value>(req).await {
        Ok(_) => (200, String::new()),
        Err(kube::Error::Api(s)) => (s.code, s.reason.clone()),
        Err(e) => panic!("transport error: {e}"),
    }
}

#[tokio::test]
async fn every_kind_of_bad_request_gets_its_status_and_leaves_no_state() {
    let hub = Hub::start().await.unwrap();
    let client = hub.client().await.unwrap();
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "bad"}})).unwrap(),
        )
        .await
        .unwrap();
    let cms = "/api/v1/namespaces/bad/configmaps";
    let mcs = "/apis/cluster.open-cluster-management.io/v1/managedclusters";
    let cm = |name: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})
            .to_string()
            .into_bytes()
    };
    let cases: Vec<Case> = vec![
        ("malformed JSON", cms, "application/json", b"{not json".to_vec(), 400, "BadRequest"),
        ("malformed YAML", cms, "application/yaml", b"metadata: [unclosed".to_vec(), 400, "BadRequest"),
        ("a JSON array", cms, "application/json", b"[1,2]".to_vec(), 400, "BadRequest"),
        ("an empty body", cms, "application/json", vec![], 400, "BadRequest"),
        ("a wrong content type", cms, "text/plain", cm("ct"), 415, "UnsupportedMediaType"),
        ("an invalid name", cms, "application/json", cm("Bad_Name"), 422, "Invalid"),
        ("a kind that does not match the path", cms, "application/json", json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k"}}).to_string().into_bytes(), 400, "BadRequest"),
        ("a wrongly typed field", mcs, "application/json", json!({"apiVersion": "cluster.open-cluster-management.io/v1", "kind": "ManagedCluster", "metadata": {"name": "c1"}, "spec": {"leaseDurationSeconds": "sixty"}}).to_string().into_bytes(), 422, "Invalid"),
        ("a wrongly typed built-in field", cms, "application/json", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "t"}, "data": {"k": 1}}).to_string().into_bytes(), 400, "BadRequest"),
        ("an oversized body", cms, "application/json", { let mut b = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"k":""#.to_vec(); b.extend(std::iter::repeat_n(b'x', 4 * 1024 * 1024)); b.extend_from_slice(b"\"}}"); b }, 413, "RequestEntityTooLarge"),
        ("an invalid label", cms, "application/json", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "l", "labels": {"bad key!": "v"}}}).to_string().into_bytes(), 422, "Invalid"),
    ];
    for (what, path, ct, body, code, reason) in cases {
        let (got, got_reason) = send(&client, "POST", path, ct, body).await;
        assert_eq!((got, got_reason.as_str()), (code, reason), "{what}");
    }
    // Unknown fields: refused under Strict, dropped with a warning otherwise.
    let unknown = json!({"apiVersion": "cluster.open-cluster-management.io/v1", "kind": "ManagedCluster", "metadata": {"name": "u"}, "spec": {"bogus": 1}}).to_string().into_bytes();
    assert_eq!(
        send(
            &client,
            "POST",
            &format!("{mcs}?fieldValidation=Strict"),
            "application/json",
            unknown.clone()
        )
        .await,
        (400, "BadRequest".into())
    );
    assert_eq!(
        send(
            &client,
            "POST",
            &format!("{mcs}?fieldValidation=Nonsense"),
            "application/json",
            unknown
        )
        .await,
        (400, "BadRequest".into())
    );

    // Nothing was stored by any of them.
    assert!(
        Api::<ConfigMap>::namespaced(client.clone(), "bad")
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let mc: Api<garrison_api::ManagedCluster> = Api::all(client.clone());
    assert!(
        mc.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Unknown paths and verbs.
    assert_eq!(
        send(
            &client,
            "GET",
            "/apis/nope.example.com/v1/things",
            "application/json",
            vec![]
        )
        .await
        .0,
        404
    );
    assert_eq!(
        send(&client, "PUT", cms, "application/json", cm("x"))
            .await
            .0,
        405
    );
}

#[tokio::test]
async fn failed_preconditions_and_patches_change_nothing() {
    let hub = Hub::start().await.unwrap();
    let client = hub.client().await.unwrap();
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "pre"}})).unwrap(),
        )
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "pre");
    let c = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "a"}, "data": {"k": "v"}}))
                .unwrap(),
        )
        .await
        .unwrap();
    let rv = c.metadata.resource_version.clone().unwrap();
    let wrong_uid = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    assert_eq!(
        api_code(&api.delete("a", &wrong_uid).await.unwrap_err()),
        409
    );
    let failing_test = json!([{"op": "test", "path": "/data/k", "value": "other"}, {"op": "replace", "path": "/data/k", "value": "changed"}]);
    let err = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::<Value>::Json(serde_json::from_value(failing_test).unwrap()),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 422, "{err}");
    let stale = json!({"metadata": {"resourceVersion": "1"}, "data": {"k": "stale"}});
    assert_eq!(
        api_code(
            &api.patch("a", &PatchParams::default(), &Patch::Merge(&stale))
                .await
                .unwrap_err()
        ),
        409
    );
    let now = api.get("a").await.unwrap();
    assert_eq!(
        now.metadata.resource_version.unwrap(),
        rv,
        "nothing was written"
    );
    assert_eq!(now.data.unwrap()["k"], "v");
    // A duplicate create is 409 AlreadyExists.
    let dup = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "a"}})).unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&dup), 409);
}

#[tokio::test]
async fn dry_run_writes_answer_but_store_nothing() {
    let hub = Hub::start().await.unwrap();
    let client = hub.client().await.unwrap();
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "dry"}})).unwrap(),
        )
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "dry");
    let dry_post = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let answered = api
        .create(
            &dry_post,
            &serde_json::from_value(json!({"metadata": {"name": "ghost"}})).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(answered.metadata.name.as_deref(), Some("ghost"));
    assert_eq!(api_code(&api.get("ghost").await.unwrap_err()), 404);

    let real = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "a", "finalizers": ["test/hold"]}, "data": {"k": "v"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let rv = real.metadata.resource_version.clone().unwrap();
    let patched = api
        .patch(
            "a",
            &PatchParams::default().dry_run(),
            &Patch::Merge(json!({"data": {"k": "changed"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.data.unwrap()["k"],
        "changed",
        "the answer shows the result"
    );
    let marked = api
        .delete(
            "a",
            &DeleteParams {
                dry_run: true,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .left()
        .unwrap();
    assert!(
        marked.metadata.deletion_timestamp.is_some(),
        "the answer shows the object marked for deletion"
    );
    let stored = api.get("a").await.unwrap();
    assert_eq!(
        stored.metadata.resource_version.unwrap(),
        rv,
        "nothing was written"
    );
    assert!(stored.metadata.deletion_timestamp.is_none());
    assert_eq!(stored.data.unwrap()["k"], "v");
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    api.delete(
        "a",
        &DeleteParams {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        api.get("a").await.is_ok(),
        "a dry-run delete of a finalizer-free object keeps it"
    );
}

/// A status whose conditions break `metav1.Condition`'s rules (a message past 32768
/// characters, an empty or spaced reason, a status other than True, False or Unknown) is
/// refused as kube-apiserver refuses it with upstream's CRDs, and the status kept is the last
/// good one.
#[tokio::test]
async fn conditions_are_held_to_the_rules_of_upstreams_crds() {
    let hub = Hub::start().await.unwrap();
    let client = hub.client().await.unwrap();
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "c1"}})).unwrap(),
        )
        .await
        .unwrap();
    let works: Api<garrison_api::work::v1::ManifestWork> = Api::namespaced(client.clone(), "c1");
    works
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"apiVersion": "work.open-cluster-management.io/v1",
                "kind": "ManifestWork", "metadata": {"name": "w", "namespace": "c1"},
                "spec": {"workload": {"manifests": [{"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "cm", "namespace": "default"}}]}}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let condition = |reason: &str, status: &str, message: &str| {
        json!({"status": {"conditions": [{"type": "Applied", "status": status, "reason": reason,
            "message": message, "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
    };
    let patch = |body: Value| {
        let works = works.clone();
        async move {
            works
                .patch_status("w", &PatchParams::default(), &Patch::Merge(body))
                .await
        }
    };
    patch(condition("PolicyViolation", "False", &"x".repeat(32768)))
        .await
        .expect("a message of 32768 characters fits");
    for (what, body) in [
        (
            "a message too long",
            condition("PolicyViolation", "False", &"x".repeat(32769)),
        ),
        ("an empty reason", condition("", "False", "m")),
        (
            "a reason with a space",
            condition("Policy Violation", "False", "m"),
        ),
        (
            "a status not True, False or Unknown",
            condition("Applied", "Maybe", "m"),
        ),
    ] {
        let err = patch(body)
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"));
        assert_eq!(api_code(&err), 422, "{what}: {err}");
    }
    let kept = works.get("w").await.unwrap().status.unwrap();
    assert_eq!(kept.conditions[0].message.len(), 32768);
    assert_eq!(kept.conditions[0].reason, "PolicyViolation");
}
