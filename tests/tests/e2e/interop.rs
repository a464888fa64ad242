//! Interoperability with upstream OCM: each test drives one place where Garrison differed from
//! kube-apiserver or from upstream OCM, through the real API with kube-rs and kubectl, the
//! way upstream's agent (client-go) does it.

use garrison_e2e::{Hub, api_code, client_from, create_token, kubectl_with, token_kubeconfig};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, ListParams, PostParams, WatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

fn managed_clusters(client: kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("cluster.open-cluster-management.io", "v1", "ManagedCluster");
    Api::all_with(client, &ApiResource::from_gvk(&gvk))
}

/// Upstream's agent creates its ManagedCluster with `status.conditions: null`; kube-apiserver
/// drops status on create (status subresource) and prunes nulls the schema does not allow.
#[tokio::test]
async fn a_create_carrying_status_and_nulls_is_accepted_as_kube_apiserver_accepts_it() {
    let hub = Hub::start().await.unwrap();
    let admin = hub.client().await.unwrap();
    let api = managed_clusters(admin.clone());
    let body: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cluster.open-cluster-management.io/v1", "kind": "ManagedCluster",
        "metadata": {"name": "upstream-one"},
        "spec": {"hubAcceptsClient": false, "managedClusterClientConfigs": null, "taints": null},
        "status": {"conditions": null, "version": {}}
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &body).await.unwrap();
    assert!(
        created.data.pointer("/status/conditions").is_none(),
        "status is not taken from a create: {:?}",
        created.data.get("status")
    );
    assert!(created.data.pointer("/spec/taints").is_none());

    // An update of the main resource ignores status too: whatever it carries, nothing fails
    // and the stored status stays.
    // The hub's controllers write the new cluster too; a conflict means read and try again.
    let mut attempts = 0;
    let updated = loop {
        attempts += 1;
        let mut next = api.get("upstream-one").await.unwrap();
        next.data["status"] = json!({"conditions": [{"type": "Forged", "status": "True"}]});
        next.data["spec"]["leaseDurationSeconds"] = json!(null);
        match api
            .replace("upstream-one", &PostParams::default(), &next)
            .await
        {
            Ok(u) => break u,
            Err(e) if api_code(&e) == 409 && attempts < 10 => continue,
            Err(e) => panic!("{e}"),
        }
    };
    assert!(updated.data.pointer("/status/conditions").is_none());
    // kubectl sends the same shape from YAML.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mc.yaml");
    std::fs::write(
        &file,
        "apiVersion: cluster.open-cluster-management.io/v1\nkind: ManagedCluster\nmetadata:\n  name: upstream-two\nspec:\n  hubAcceptsClient: false\nstatus:\n  conditions: null\n",
    )
    .unwrap();
    let out = hub.kubectl(&["create", "-f", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A null where the schema wants a value and says nothing of null is still refused when
    // it is an array item: only object fields are pruned.
    let bad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cluster.open-cluster-management.io/v1", "kind": "ManagedCluster",
        "metadata": {"name": "upstream-three"},
        "spec": {"hubAcceptsClient": false, "managedClusterClientConfigs": [null]}
    }))
    .unwrap();
    let e = api.create(&PostParams::default(), &bad).await.unwrap_err();
    assert_eq!(api_code(&e), 422, "{e}");
}

/// A bootstrap kubeconfig as `clusteradm` makes it: group `system:bootstrappers:managedcluster`,
/// which may list and watch ManagedClusters and follow CSRs, and nothing more.
#[tokio::test]
async fn a_bootstrap_token_has_upstreams_group_and_rights() {
    let hub = Hub::start().await.unwrap();
    let (token, _) = create_token(&hub, "1h");
    let kc = token_kubeconfig(&hub, &token).unwrap();
    let cache = hub.data_dir().join("kubectl-cache-boot");
    let who = kubectl_with(&kc, &cache, &["auth", "whoami", "-o", "json"]);
    assert!(
        who.status.success(),
        "{}",
        String::from_utf8_lossy(&who.stderr)
    );
    let who: serde_json::Value = serde_json::from_slice(&who.stdout).unwrap();
    let groups = who["status"]["userInfo"]["groups"].to_string();
    assert!(
        groups.contains("system:bootstrappers:managedcluster"),
        "{groups}"
    );
    for (verb, resource, allowed) in [
        (
            "list",
            "managedclusters.cluster.open-cluster-management.io",
            true,
        ),
        (
            "watch",
            "managedclusters.cluster.open-cluster-management.io",
            true,
        ),
        (
            "create",
            "managedclusters.cluster.open-cluster-management.io",
            true,
        ),
        (
            "update",
            "managedclusters.cluster.open-cluster-management.io",
            false,
        ),
        (
            "delete",
            "managedclusters.cluster.open-cluster-management.io",
            false,
        ),
        (
            "create",
            "certificatesigningrequests.certificates.k8s.io",
            true,
        ),
        (
            "watch",
            "certificatesigningrequests.certificates.k8s.io",
            true,
        ),
        ("list", "configmaps", false),
        ("list", "secrets", false),
    ] {
        let out = kubectl_with(&kc, &cache, &["auth", "can-i", verb, resource]);
        assert_eq!(
            out.status.success(),
            allowed,
            "{verb} {resource}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let client = client_from(&kc).await.unwrap();
    managed_clusters(client)
        .list(&ListParams::default())
        .await
        .unwrap();
}

/// An informer scoped to one object (`fieldSelector=metadata.name=NAME`) is authorized against
/// a Role's `resourceNames`, as kube-apiserver does; other names and plain lists are not.
#[tokio::test]
async fn list_and_watch_by_name_are_authorized_by_resource_names() {
    let hub = Hub::start().await.unwrap();
    let out = hub.kubectl(&["create", "configmap", "mine", "-n", "default"]);
    assert!(out.status.success());
    let out = hub.kubectl(&["create", "configmap", "theirs", "-n", "default"]);
    assert!(out.status.success());
    let out = hub.kubectl(&[
        "create",
        "role",
        "one",
        "-n",
        "default",
        "--verb=get,list,watch",
        "--resource=configmaps",
        "--resource-name=mine",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = hub.kubectl(&[
        "create",
        "rolebinding",
        "one",
        "-n",
        "default",
        "--role=one",
        "--user=scoped",
    ]);
    assert!(out.status.success());
    let scoped = client_from(&hub.kubeconfig_for("scoped", &[]).unwrap())
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(scoped, "default");
    let mine = ListParams::default().fields("metadata.name=mine");
    let listed = cms.list(&mine).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    for selector in [
        "metadata.name==mine",
        "metadata.name=mine,metadata.namespace=default",
    ] {
        cms.list(&ListParams::default().fields(selector))
            .await
            .unwrap_or_else(|e| panic!("{selector}: {e}"));
    }
    let mut stream = cms
        .watch(
            &WatchParams::default()
                .fields("metadata.name=mine")
                .timeout(2),
            "0",
        )
        .await
        .unwrap()
        .boxed();
    use futures::StreamExt;
    assert!(stream.next().await.is_some(), "the watch by name delivers");
    for selector in [
        "",
        "metadata.name=theirs",
        "metadata.name!=theirs",
        "metadata.name=mine/../theirs",
    ] {
        let e = cms
            .list(&ListParams::default().fields(selector))
            .await
            .unwrap_err();
        assert_eq!(api_code(&e), 403, "{selector:?}: {e}");
    }
    let e = cms
        .watch(&WatchParams::default().fields("metadata.name=theirs"), "0")
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(api_code(&e), 403, "{e}");
}

/// The hub publishes `kube-public/cluster-info` as kubeadm does: readable without credentials,
/// signed per signing token with a detached JWS an agent checks with its token. Nothing else
/// is served without credentials.
#[tokio::test]
async fn cluster_info_is_public_signed_per_token_and_alone_anonymous() {
    let hub = Hub::start().await.unwrap();
    let (token, _) = create_token(&hub, "1h");
    let (id, secret) = token.split_once('.').unwrap();
    let anon = client_from(&hub.anonymous_kubeconfig().unwrap())
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(anon.clone(), "kube-public");
    let info = garrison_e2e::eventually(10, "cluster-info signed for the new token", || {
        let cms = cms.clone();
        let key = format!("jws-kubeconfig-{id}");
        async move {
            let cm = cms.get("cluster-info").await.ok()?;
            let data = cm.data?;
            data.contains_key(&key).then_some(data)
        }
    })
    .await;
    let kubeconfig = &info["kubeconfig"];
    let sig = &info[&format!("jws-kubeconfig-{id}")];
    assert!(garrison_pki::jws::verify_detached(
        sig, id, secret, kubeconfig
    ));
    assert!(!garrison_pki::jws::verify_detached(
        sig,
        id,
        "0000000000000000",
        kubeconfig
    ));
    assert!(kubeconfig.contains("certificate-authority-data"));
    // Anonymous requests for anything else: 401.
    for e in [
        Api::<ConfigMap>::namespaced(anon.clone(), "kube-public")
            .list(&ListParams::default())
            .await
            .unwrap_err(),
        Api::<ConfigMap>::namespaced(anon.clone(), "kube-system")
            .get("cluster-info")
            .await
            .unwrap_err(),
    ] {
        assert_eq!(api_code(&e), 401, "{e}");
    }
    // A deleted token's signature goes.
    let out = hub.kubectl(&[
        "delete",
        "secret",
        "-n",
        "kube-system",
        &format!("bootstrap-token-{id}"),
    ]);
    assert!(out.status.success());
    garrison_e2e::eventually(10, "the deleted token's signature removed", || {
        let cms = cms.clone();
        let key = format!("jws-kubeconfig-{id}");
        async move {
            let cm = cms.get("cluster-info").await.ok()?;
            (!cm.data?.contains_key(&key)).then_some(())
        }
    })
    .await;
}

/// Joining trusts only what discovery proved: a token that is not the hub's (wrong secret)
/// fails the signature check before any credential is sent.
#[tokio::test]
async fn discovery_refuses_a_cluster_info_not_signed_with_the_token() {
    let hub = Hub::start().await.unwrap();
    let (token, pin) = create_token(&hub, "1h");
    let forged = format!("{}.{}", &token[..6], "0123456789abcdef");
    let dir = tempfile::tempdir().unwrap();
    let out = garrison_e2e::garrison(&[
        "join",
        "--hub",
        &format!("https://127.0.0.1:{}", hub.port),
        "--token",
        &forged,
        "--ca-cert-hash",
        &pin,
        "--cluster-name",
        "forged",
        "--data-dir",
        dir.path().join("agent").to_str().unwrap(),
        "--simulated",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not signed with this token") && err.contains("nothing was sent"),
        "{err}"
    );
    let audit = std::fs::read_to_string(hub.data_dir().join("audit.log")).unwrap();
    assert!(
        !audit.contains(&format!("system:bootstrap:{}", &token[..6])),
        "the forged token reached the hub"
    );
}

/// `events.k8s.io/v1` is served from the same storage as core Events, with kube-apiserver's
/// field mapping and create checks, and Events expire after `--event-ttl`.
#[tokio::test]
async fn events_v1_are_served_beside_core_events_and_expire() {
    let hub = Hub::start_with(&["--event-ttl", "10"]).await.unwrap();
    let admin = hub.client().await.unwrap();
    let v1: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(admin.clone(), "default");
    let ev: k8s_openapi::api::events::v1::Event = serde_json::from_value(json!({
        "metadata": {"name": "c1.available"},
        "eventTime": "2026-11-30T10:00:00.000000Z",
        "reportingController": "klusterlet-agent", "reportingInstance": "c1",
        "action": "StatusUpdate", "reason": "Available", "type": "Normal",
        "note": "managed cluster is available",
        "regarding": {"kind": "ManagedCluster", "name": "c1"}
    }))
    .unwrap();
    v1.create(&PostParams::default(), &ev).await.unwrap();
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(admin.clone(), "default");
    let as_core = core.get("c1.available").await.unwrap();
    assert_eq!(
        as_core.message.as_deref(),
        Some("managed cluster is available")
    );
    assert_eq!(as_core.involved_object.name.as_deref(), Some("c1"));
    assert_eq!(
        as_core.reporting_component.as_deref(),
        Some("klusterlet-agent")
    );
    let back = v1.get("c1.available").await.unwrap();
    assert_eq!(back.note.as_deref(), Some("managed cluster is available"));
    let out = hub.kubectl(&["get", "events", "-n", "default", "-o", "name"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("c1.available"));

    // kube-apiserver's create checks: an Event without eventTime or action is refused.
    let mut bad = ev.clone();
    bad.metadata.name = Some("bad".into());
    bad.action = None;
    let e = v1.create(&PostParams::default(), &bad).await.unwrap_err();
    assert_eq!(api_code(&e), 422, "{e}");
    assert!(e.to_string().contains("action"), "{e}");

    // Retention by the server's clock (not the client's eventTime): gone 10 s after its write.
    garrison_e2e::eventually(40, "the expired event deleted", || {
        let core = core.clone();
        async move {
            core.get_opt("c1.available")
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
}

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// A body in Kubernetes' protobuf form, built with the k8s-pb types generated from
/// Kubernetes' own `.proto` files, as client-go builds it.
fn protobuf_body(api_version: &str, kind: &str, msg: &impl prost::Message) -> Vec<u8> {
    use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
    use prost::Message;
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(msg.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    [b"k8s\0".as_slice(), &unknown.encode_to_vec()].concat()
}

/// The object in a protobuf answer, with the apiVersion and kind of its envelope.
fn from_protobuf<M: prost::Message + Default>(body: &[u8]) -> (String, String, M) {
    use prost::Message;
    let rest = body
        .strip_prefix(b"k8s\0")
        .expect("the protobuf magic number");
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown::decode(rest).unwrap();
    let tm = unknown.type_meta.unwrap_or_default();
    let msg = M::decode(unknown.raw.unwrap_or_default().as_slice()).unwrap();
    (
        tm.api_version.unwrap_or_default(),
        tm.kind.unwrap_or_default(),
        msg,
    )
}

/// Sends a request as client-go's protobuf clients do: protobuf body, protobuf first in Accept.
async fn send_protobuf(
    client: &kube::Client,
    method: &str,
    path: &str,
    body: Vec<u8>,
    accept: &str,
) -> (u16, String, Vec<u8>) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Content-Type", PROTOBUF)
        .header("Accept", accept)
        .body(body)
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (code, ct, bytes)
}

/// client-go writes built-in kinds in protobuf: a Lease update made with the generated types is
/// stored, answered in protobuf when protobuf is asked for first, and a write that changes
/// nothing (the same update again, or the same status) writes nothing.
#[tokio::test]
async fn protobuf_lease_updates_renew_and_writes_that_change_nothing_are_not_writes() {
    use k8s_pb::api::coordination::v1 as pb;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    let hub = Hub::start().await.unwrap();
    let admin = hub.client().await.unwrap();
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(admin.clone(), "default");
    leases
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "agent"}, "spec": {"holderIdentity": "agent", "leaseDurationSeconds": 60}}))
                .unwrap(),
        )
        .await
        .unwrap();
    let rv = leases
        .get("agent")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();

    // The update as Go's encoder writes it: every non-pointer field present, zero or not.
    let lease = pb::Lease {
        metadata: Some(meta::ObjectMeta {
            name: Some("agent".into()),
            namespace: Some("default".into()),
            generate_name: Some(String::new()),
            resource_version: Some(rv),
            generation: Some(0),
            creation_timestamp: Some(meta::Time::default()),
            ..Default::default()
        }),
        spec: Some(pb::LeaseSpec {
            holder_identity: Some("agent".into()),
            lease_duration_seconds: Some(60),
            renew_time: Some(meta::MicroTime {
                seconds: Some(1_796_000_000),
                nanos: Some(250_000_000),
            }),
            ..Default::default()
        }),
    };
    let path = "/apis/coordination.k8s.io/v1/namespaces/default/leases/agent";
    let body = protobuf_body("coordination.k8s.io/v1", "Lease", &lease);
    let accept = format!("{PROTOBUF}, application/json");
    let (code, ct, answer) = send_protobuf(&admin, "PUT", path, body, &accept).await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(ct, PROTOBUF);
    let (api_version, kind, stored): (_, _, pb::Lease) = from_protobuf(&answer);
    assert_eq!(
        (api_version.as_str(), kind.as_str()),
        ("coordination.k8s.io/v1", "Lease")
    );
    let renewed = stored.spec.unwrap().renew_time.unwrap();
    assert_eq!(
        (renewed.seconds, renewed.nanos),
        (Some(1_796_000_000), Some(250_000_000))
    );
    let after = stored.metadata.unwrap();
    assert!(after.creation_timestamp.unwrap().seconds.unwrap() > 1_700_000_000);
    let rv = after.resource_version.unwrap();

    // JSON readers see the same renewal.
    let json_view = leases.get("agent").await.unwrap();
    assert_eq!(
        serde_json::to_value(json_view.spec.unwrap().renew_time.unwrap()).unwrap(),
        json!("2026-11-30T00:53:20.250000Z")
    );

    // The same update again changes nothing, so it writes nothing.
    let mut again = lease.clone();
    again.metadata.as_mut().unwrap().resource_version = Some(rv.clone());
    let body = protobuf_body("coordination.k8s.io/v1", "Lease", &again);
    let (code, _, answer) = send_protobuf(&admin, "PUT", path, body, &accept).await;
    assert_eq!(code, 200);
    let (_, _, same): (_, _, pb::Lease) = from_protobuf(&answer);
    assert_eq!(same.metadata.unwrap().resource_version, Some(rv.clone()));

    // A list asked for in protobuf alone comes back as a LeaseList.
    let (code, ct, answer) = send_protobuf(
        &admin,
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/default/leases",
        vec![],
        PROTOBUF,
    )
    .await;
    assert_eq!((code, ct.as_str()), (200, PROTOBUF));
    let (_, kind, list): (_, _, pb::LeaseList) = from_protobuf(&answer);
    assert_eq!(kind, "LeaseList");
    assert_eq!(list.items.len(), 1);
    assert_eq!(
        list.items[0].metadata.as_ref().unwrap().name.as_deref(),
        Some("agent")
    );

    // A watch asked for with protobuf first streams its events as they happen (in JSON, which
    // client-go also accepts), rather than being held back as a whole answer would be.
    let req = http::Request::builder()
        .uri("/apis/coordination.k8s.io/v1/namespaces/default/leases?watch=1")
        .header("Accept", &accept)
        .body(vec![])
        .unwrap();
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let resp = admin.send(req.map(kube::client::Body::from)).await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let mut body = resp.into_body();
        http_body_util::BodyExt::frame(&mut body).await
    })
    .await
    .expect("the first watch event arrives while the watch is open")
    .unwrap()
    .unwrap();
    let event = String::from_utf8_lossy(first.data_ref().unwrap()).to_string();
    assert!(
        event.contains("\"ADDED\"") && event.contains("agent"),
        "{event}"
    );

    // A body that is not what it claims to be is a 400 naming the problem, and nothing changes.
    let mut bad = protobuf_body("coordination.k8s.io/v1", "Lease", &again);
    bad.truncate(bad.len() - 3);
    let (code, _, answer) = send_protobuf(&admin, "PUT", path, bad, &accept).await;
    assert_eq!(code, 400, "{}", String::from_utf8_lossy(&answer));
    assert!(String::from_utf8_lossy(&answer).contains("cannot decode the protobuf body"));
    assert_eq!(
        leases.get("agent").await.unwrap().metadata.resource_version,
        Some(rv)
    );

    // A status write that changes nothing is not a write: the cluster's resourceVersion stays.
    let clusters = managed_clusters(admin.clone());
    clusters
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"apiVersion": "cluster.open-cluster-management.io/v1", "kind": "ManagedCluster", "metadata": {"name": "c1"}, "spec": {"hubAcceptsClient": true}})).unwrap(),
        )
        .await
        .unwrap();
    // Written back as read: nothing changes, so nothing is written and the resourceVersion
    // stays. The hub's controllers also write the cluster; a write of theirs in between makes
    // ours a 409 conflict, and then the read and write are tried again.
    garrison_e2e::eventually(30, "a status write without a conflict", || {
        let clusters = clusters.clone();
        async move {
            let current = clusters.get("c1").await.ok()?;
            match clusters
                .replace_status("c1", &PostParams::default(), &current)
                .await
            {
                Ok(after) => {
                    assert_eq!(
                        after.metadata.resource_version,
                        current.metadata.resource_version
                    );
                    Some(())
                }
                Err(e) if api_code(&e) == 409 => None,
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
}

/// kubectl's typed commands send protobuf and ask for it first; they get protobuf back.
#[tokio::test]
async fn kubectl_typed_commands_talk_protobuf_both_ways() {
    let hub = Hub::start().await.unwrap();
    let out = hub.kubectl(&[
        "create",
        "configmap",
        "pb",
        "-n",
        "default",
        "--from-literal=k=v",
        "-v=8",
    ]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    // kubectl 1.32 logs "Response Headers:", 1.33 logs "Response" status=...: split at either.
    let (request, response) = log
        .split_once("Response")
        .unwrap_or_else(|| panic!("kubectl -v=8 logs headers: {log}"));
    assert!(
        request.contains("Content-Type: application/vnd.kubernetes.protobuf"),
        "{log}"
    );
    assert!(
        response.contains("Content-Type: application/vnd.kubernetes.protobuf"),
        "{log}"
    );
    let got = hub.kubectl(&[
        "get",
        "configmap",
        "pb",
        "-n",
        "default",
        "-o",
        "jsonpath={.data.k}",
    ]);
    assert_eq!(String::from_utf8_lossy(&got.stdout), "v");
}

fn addons(client: kube::Client, version: &str, kind: &str, ns: Option<&str>) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("addon.open-cluster-management.io", version, kind);
    let plural = format!("{}s", kind.to_lowercase());
    let ar = ApiResource::from_gvk_with_plural(&gvk, &plural);
    match ns {
        Some(ns) => Api::namespaced_with(client, ns, &ar),
        None => Api::all_with(client, &ar),
    }
}

/// The add-on kinds are served at v1beta1 beside v1alpha1 (stored), converted both ways as
/// upstream converts them; v1beta1 is the group's preferred version, as kube-apiserver would
/// make it.
#[tokio::test]
async fn addons_are_served_at_v1beta1_converted_as_upstream_converts_them() {
    let hub = Hub::start().await.unwrap();
    let admin = hub.client().await.unwrap();
    let out = hub.kubectl(&["create", "namespace", "c1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An add-on written at v1alpha1, as Garrison's hub and older tools write it.
    let alpha = addons(admin.clone(), "v1alpha1", "ManagedClusterAddOn", Some("c1"));
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "addon.open-cluster-management.io/v1alpha1", "kind": "ManagedClusterAddOn",
        "metadata": {"name": "policy"},
        "spec": {"installNamespace": "addons"},
    }))
    .unwrap();
    alpha.create(&PostParams::default(), &obj).await.unwrap();
    let status = json!({"status": {
        "kubeClientDriver": "token",
        "registrations": [
            {"signerName": "kubernetes.io/kube-apiserver-client", "subject": {"user": "u", "groups": ["g"]}},
            {"signerName": "example.com/metrics", "subject": {"user": "m", "organizationUnit": ["ou"]}},
        ],
    }});
    alpha
        .patch_status(
            "policy",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&status),
        )
        .await
        .unwrap();

    // The upstream agent lists v1beta1 at start.
    let beta = addons(admin.clone(), "v1beta1", "ManagedClusterAddOn", Some("c1"));
    let listed = beta.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    let got = serde_json::to_value(&listed.items[0]).unwrap();
    assert_eq!(
        got["apiVersion"],
        "addon.open-cluster-management.io/v1beta1"
    );
    assert_eq!(
        got["metadata"]["annotations"]["addon.open-cluster-management.io/v1alpha1-install-namespace"],
        "addons"
    );
    assert!(got["spec"].get("installNamespace").is_none(), "{got}");
    assert_eq!(
        got["status"]["registrations"],
        json!([
            {"type": "kubeClient", "kubeClient": {"subject": {"user": "u", "groups": ["g"]}, "driver": "token"}},
            {"type": "customSigner", "customSigner": {"signerName": "example.com/metrics", "subject": {"user": "m", "organizationUnits": ["ou"]}}},
        ])
    );

    // A write at v1beta1 is stored at v1alpha1: the annotation becomes installNamespace.
    let mut b = beta.get("policy").await.unwrap();
    b.metadata.annotations.get_or_insert_default().insert(
        "addon.open-cluster-management.io/v1alpha1-install-namespace".into(),
        "other".into(),
    );
    beta.replace("policy", &PostParams::default(), &b)
        .await
        .unwrap();
    let a = serde_json::to_value(alpha.get("policy").await.unwrap()).unwrap();
    assert_eq!(a["spec"]["installNamespace"], "other");
    assert_eq!(a["status"]["kubeClientDriver"], "token");

    // kubectl sees v1beta1 as the preferred version, and both by their full names.
    let out = hub.kubectl(&["api-versions"]);
    let versions = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        versions.contains("addon.open-cluster-management.io/v1beta1"),
        "{versions}"
    );
    let out = hub.kubectl(&[
        "get",
        "mca",
        "-n",
        "c1",
        "policy",
        "-o",
        "jsonpath={.apiVersion}",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "addon.open-cluster-management.io/v1beta1"
    );
    let out = hub.kubectl(&[
        "get",
        "managedclusteraddons.v1alpha1.addon.open-cluster-management.io",
        "-n",
        "c1",
        "policy",
        "-o",
        "jsonpath={.spec.installNamespace}",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "other");

    // A ClusterManagementAddOn's supported configs become default configs, and one without a
    // default keeps its place under the reserved name.
    let cma = addons(admin.clone(), "v1alpha1", "ClusterManagementAddOn", None);
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "addon.open-cluster-management.io/v1alpha1", "kind": "ClusterManagementAddOn",
        "metadata": {"name": "policy"},
        "spec": {"supportedConfigs": [
            {"group": "addon.open-cluster-management.io", "resource": "addondeploymentconfigs", "defaultConfig": {"name": "d", "namespace": "c1"}},
            {"resource": "configmaps"},
        ]},
    }))
    .unwrap();
    cma.create(&PostParams::default(), &obj).await.unwrap();
    let beta_cma = addons(admin.clone(), "v1beta1", "ClusterManagementAddOn", None);
    let got = serde_json::to_value(beta_cma.get("policy").await.unwrap()).unwrap();
    assert_eq!(
        got["spec"]["defaultConfigs"],
        json!([
            {"group": "addon.open-cluster-management.io", "resource": "addondeploymentconfigs", "name": "d", "namespace": "c1"},
            {"group": "", "resource": "configmaps", "name": "__reserved_no_default__"},
        ])
    );
}
