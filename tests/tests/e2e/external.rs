//! The hub out of process, as it runs next to a real kube-apiserver: `garrison apiserver` (the
//! generic API server alone, no OCM rules or controllers) stands in for kube-apiserver, the hub
//! is installed on it with `garrison install hub | kubectl apply`, and `garrison hub
//! --kubeconfig` replicas run as the hub's ServiceAccount with only the install's ClusterRole.
//! The controllers and the webhooks reach the API server only through its public API. The
//! managed cluster is another `garrison apiserver`, reached by the agent's `--kubeconfig`.

use std::time::{Duration, Instant};

use garrison_api::ManagedCluster;
use garrison_api::cluster::v1beta1::PlacementDecision;
use garrison_api::work::v1::ManifestWork;
use garrison_e2e::{Agent, Hub, TEST_LEASE_SECS, eventually, garrison, ok};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

fn work(name: &str, cluster: &str, manifests: Vec<Value>) -> ManifestWork {
    serde_json::from_value(json!({
        "apiVersion": "work.open-cluster-management.io/v1", "kind": "ManifestWork",
        "metadata": {"name": name, "namespace": cluster},
        "spec": {"workload": {"manifests": manifests}},
    }))
    .unwrap()
}

fn config_map(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"}, "data": {"v": value}})
}

fn applied(w: &ManifestWork) -> bool {
    w.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Applied"))
        .is_some_and(|c| c.status == "True")
}

async fn leader(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("garrison-hub")
        .await
        .ok()??
        .spec?
        .holder_identity
}

/// Which replica (by index) a lease holder identity names: identities carry the process id.
fn replica_of(hub: &Hub, holder: &str, replicas: usize) -> Option<usize> {
    (0..replicas).find(|i| {
        hub.replica_pid(*i)
            .is_some_and(|pid| holder.contains(&format!("_{pid}_")))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_work_and_placement_with_the_hub_out_of_process_and_failover() {
    let mut hub = Hub::start_external(2).await.unwrap();
    let admin = hub.client().await.unwrap();

    // The managed cluster: another API server, on the network, reached by --kubeconfig.
    let (spoke, _agent) = Agent::join_networked(&hub, "edge").await;
    let csrs: Api<CertificateSigningRequest> = Api::all(admin.clone());
    eventually(30, "the agent's certificate request", || async {
        csrs.list(&ListParams::default().labels("open-cluster-management.io/cluster-name=edge"))
            .await
            .ok()
            .filter(|l| !l.items.is_empty())
    })
    .await;
    // The hub's webhooks run over HTTPS here: the agent's CSR passed them, and bad writes do not.
    let clusters: Api<ManagedCluster> = Api::all(admin.clone());
    let mc = clusters.get("edge").await.unwrap();
    assert_eq!(
        mc.metadata.labels.as_ref().unwrap()["cluster.open-cluster-management.io/clusterset"],
        "default",
        "the mutating webhook put the cluster in the default set"
    );
    ok(garrison(&[
        "accept",
        "edge",
        "--yes",
        "--data-dir",
        hub.data_dir().to_str().unwrap(),
    ]));
    // kube-controller-manager's part (here in `garrison apiserver`) signs what the hub approved,
    // for the 24 hours the agent asks.
    let signed = eventually(30, "the approved certificate to be issued", || async {
        csrs.list(&ListParams::default().labels("open-cluster-management.io/cluster-name=edge"))
            .await
            .ok()?
            .items
            .into_iter()
            .find(|c| c.status.as_ref().is_some_and(|s| s.certificate.is_some()))
    })
    .await;
    assert_eq!(signed.spec.expiration_seconds, Some(86400));
    eventually(40, "the cluster to be joined and available", || async {
        let mc = clusters.get("edge").await.ok()?;
        let conds = mc.status?.conditions.unwrap_or_default();
        let ok = |t: &str| conds.iter().any(|c| c.type_ == t && c.status == "True");
        (ok("ManagedClusterJoined") && ok("ManagedClusterConditionAvailable")).then_some(())
    })
    .await;

    // Work delivery to the networked cluster.
    let works: Api<ManifestWork> = Api::namespaced(admin.clone(), "edge");
    works
        .create(
            &PostParams::default(),
            &work("before", "edge", vec![config_map("before", "1")]),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    while !works.get("before").await.is_ok_and(|w| applied(&w)) {
        assert!(
            Instant::now() < deadline,
            "the first work was not applied: {:?}\nagent: {}\n{}",
            works.get("before").await.ok().and_then(|w| w.status),
            std::fs::read_to_string(hub.data_dir().join("agent-edge.log")).unwrap_or_default(),
            hub.replica_logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let spoke_client = spoke.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(spoke_client, "default");
    assert_eq!(cms.get("before").await.unwrap().data.unwrap()["v"], "1");
    let refused = works
        .create(&PostParams::default(), &work("empty", "edge", vec![]))
        .await
        .unwrap_err();
    let msg = refused.to_string();
    assert!(
        msg.contains("admission webhook \"manifestworkvalidators.admission.work.open-cluster-management.io\" denied the request: manifests should not be empty"),
        "{msg}"
    );

    // The add-on kinds served at two versions are converted by the hub's webhook server, as
    // kube-apiserver asks it: the CRD names it, and it answers a ConversionReview.
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(admin.clone());
    let crd = crds
        .get("managedclusteraddons.addon.open-cluster-management.io")
        .await
        .unwrap();
    let conversion = crd.spec.conversion.expect("a conversion webhook");
    assert_eq!(conversion.strategy, "Webhook");
    let client_config = conversion.webhook.unwrap().client_config.unwrap();
    let url: http::Uri = client_config.url.unwrap().parse().unwrap();
    let ca_pem = client_config.ca_bundle.unwrap().0;
    let mut cfg = kube::Config::new(
        format!("https://{}", url.authority().unwrap())
            .parse()
            .unwrap(),
    );
    cfg.root_cert = Some(
        rustls_pemfile::certs(&mut ca_pem.as_slice())
            .map(|c| c.unwrap().to_vec())
            .collect(),
    );
    let webhook = kube::Client::try_from(cfg).unwrap();
    let review = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview", "request": {
        "uid": "u1", "desiredAPIVersion": "addon.open-cluster-management.io/v1beta1",
        "objects": [{"apiVersion": "addon.open-cluster-management.io/v1alpha1", "kind": "ManagedClusterAddOn",
            "metadata": {"name": "a", "namespace": "edge"}, "spec": {"installNamespace": "addons"}}],
    }});
    let req = http::Request::post(url.path())
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&review).unwrap())
        .unwrap();
    let answer: Value = webhook.request(req).await.unwrap();
    assert_eq!(answer["response"]["uid"], "u1");
    assert_eq!(answer["response"]["result"]["status"], "Success");
    let converted = &answer["response"]["convertedObjects"][0];
    assert_eq!(
        converted["apiVersion"],
        "addon.open-cluster-management.io/v1beta1"
    );
    assert_eq!(
        converted["metadata"]["annotations"]["addon.open-cluster-management.io/v1alpha1-install-namespace"],
        "addons"
    );

    // Placement: bind the default set to a namespace and place onto the cluster.
    let place = hub.data_dir().join("placement.yaml");
    std::fs::write(
        &place,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n---\n\
         apiVersion: cluster.open-cluster-management.io/v1beta2\nkind: ManagedClusterSetBinding\n\
         metadata:\n  name: default\n  namespace: apps\nspec:\n  clusterSet: default\n---\n\
         apiVersion: cluster.open-cluster-management.io/v1beta1\nkind: Placement\n\
         metadata:\n  name: everywhere\n  namespace: apps\nspec: {}\n",
    )
    .unwrap();
    ok(hub.kubectl(&["apply", "-f", place.to_str().unwrap()]));
    let decisions: Api<PlacementDecision> = Api::namespaced(admin.clone(), "apps");
    eventually(30, "the placement to choose the cluster", || async {
        let list = decisions
            .list(
                &ListParams::default()
                    .labels("cluster.open-cluster-management.io/placement=everywhere"),
            )
            .await
            .ok()?;
        list.items
            .iter()
            .flat_map(|d| d.status.iter().flat_map(|s| s.decisions.iter()))
            .any(|d| d.cluster_name == "edge")
            .then_some(())
    })
    .await;

    // Failover: kill the leader; the other replica leads within two lease durations, serves
    // the webhooks, and nothing delivered is lost.
    let leases: Api<Lease> = Api::namespaced(admin.clone(), "open-cluster-management-hub");
    let first = leader(&leases).await.expect("a leader");
    let dead = replica_of(&hub, &first, 2).expect("the leader is one of the replicas");
    let killed_at = Instant::now();
    hub.kill_replica(dead);
    let next = eventually(
        4 * TEST_LEASE_SECS,
        "another replica to take the lease",
        || async { leader(&leases).await.filter(|h| *h != first) },
    )
    .await;
    let took = killed_at.elapsed();
    assert!(
        took < Duration::from_secs(2 * TEST_LEASE_SECS),
        "leadership moved after {took:?}, more than two lease durations: {}",
        hub.replica_logs()
    );
    assert_eq!(replica_of(&hub, &next, 2), Some(1 - dead));
    eprintln!("leadership moved in {took:?} (lease {TEST_LEASE_SECS}s)");
    // Writes that need the webhooks work again once the new leader registered its own.
    let after = eventually(30, "a work to be admitted by the new leader", || async {
        works
            .create(
                &PostParams::default(),
                &work("after", "edge", vec![config_map("after", "2")]),
            )
            .await
            .ok()
    })
    .await;
    assert_eq!(after.metadata.name.as_deref(), Some("after"));
    eventually(
        40,
        "the work created after failover to be applied",
        || async { works.get("after").await.ok().filter(applied) },
    )
    .await;
    assert!(
        applied(&works.get("before").await.unwrap()),
        "the first work stays applied"
    );
    assert_eq!(cms.get("before").await.unwrap().data.unwrap()["v"], "1");
    assert_eq!(cms.get("after").await.unwrap().data.unwrap()["v"], "2");
    // The install's ClusterRole was enough: no replica was ever refused anything.
    let logs = hub.replica_logs();
    assert!(
        !logs.to_lowercase().contains("forbidden"),
        "a hub replica lacked a permission: {logs}"
    );
}

/// A webhook configuration `name` for ConfigMap creates, reaching `url`.
fn config_map_hook(name: &str, url: &str, ca: &str, extra: Value) -> Value {
    let mut hook = json!({
        "name": format!("{name}.hooks.example.com"),
        "clientConfig": {"url": url, "caBundle": ca},
        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": 2,
    });
    for (k, v) in extra.as_object().unwrap() {
        hook[k] = v.clone();
    }
    json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name}, "webhooks": [hook]})
}

/// The API server calls the webhooks users register, as kube-apiserver does. The webhook here
/// is the hub's own ManifestWork validator (over HTTPS, trusted through the caBundle), which
/// refuses any ConfigMap for having no manifests; selectors, failure policies, timeouts and
/// dry runs decide whether it is asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_calls_registered_webhooks_as_kube_apiserver_does() {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    use k8s_openapi::api::core::v1::Namespace;
    let hub = Hub::start_external(1).await.unwrap();
    let admin = hub.client().await.unwrap();
    let ours: Api<ValidatingWebhookConfiguration> = Api::all(admin.clone());
    let registered = ours.get("garrison-hub-validators").await.unwrap();
    let cc = &registered.webhooks.unwrap()[0].client_config;
    let base = cc.url.clone().unwrap();
    let base = &base[..base.find("/validate").unwrap()];
    let ca = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        &cc.ca_bundle.clone().unwrap().0,
    );
    let refuser = format!("{base}/validate-manifestworks");
    let create = |v: Value| {
        let admin = admin.clone();
        async move {
            let hooks: Api<ValidatingWebhookConfiguration> = Api::all(admin);
            hooks
                .create(&PostParams::default(), &serde_json::from_value(v).unwrap())
                .await
                .unwrap();
        }
    };
    let cms = |ns: &str| Api::<ConfigMap>::namespaced(admin.clone(), ns);
    let cm = |name: &str, labels: Value| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
    };
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    for (ns, team) in [("team-a", "a"), ("team-b", "b")] {
        let n: Namespace =
            serde_json::from_value(json!({"metadata": {"name": ns, "labels": {"team": team}}}))
                .unwrap();
        namespaces.create(&PostParams::default(), &n).await.unwrap();
    }

    // objectSelector and namespaceSelector: only labelled objects in team-a's namespaces.
    create(config_map_hook(
        "selective",
        &refuser,
        &ca,
        json!({"objectSelector": {"matchLabels": {"checked": "yes"}},
               "namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]}}),
    ))
    .await;
    let pp = PostParams::default();
    let e = cms("team-a")
        .create(&pp, &cm("checked", json!({"checked": "yes"})))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains(
            "admission webhook \"selective.hooks.example.com\" denied the request: manifests should not be empty"
        ),
        "{e}"
    );
    assert_eq!(garrison_e2e::api_code(&e), 400);
    cms("team-a")
        .create(&pp, &cm("unlabelled", json!({})))
        .await
        .unwrap();
    cms("team-b")
        .create(&pp, &cm("other-team", json!({"checked": "yes"})))
        .await
        .unwrap();
    // A dry run reaches a webhook without side effects, and is refused the same way.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    assert!(
        cms("team-a")
            .create(&dry, &cm("dry", json!({"checked": "yes"})))
            .await
            .is_err()
    );
    ours.delete("selective", &Default::default()).await.unwrap();

    // A webhook nobody answers: Fail refuses with 500, Ignore lets the write through.
    let dead = format!("https://127.0.0.1:{}/x", garrison_e2e::free_port());
    create(config_map_hook(
        "ignored",
        &dead,
        &ca,
        json!({"failurePolicy": "Ignore"}),
    ))
    .await;
    cms("team-b")
        .create(&pp, &cm("through", json!({})))
        .await
        .unwrap();
    create(config_map_hook(
        "closed",
        &dead,
        &ca,
        json!({"failurePolicy": "Fail"}),
    ))
    .await;
    let e = cms("team-b")
        .create(&pp, &cm("blocked", json!({})))
        .await
        .unwrap_err();
    assert_eq!(garrison_e2e::api_code(&e), 500);
    assert!(
        e.to_string()
            .contains("failed calling webhook \"closed.hooks.example.com\""),
        "{e}"
    );
    ours.delete("closed", &Default::default()).await.unwrap();
    ours.delete("ignored", &Default::default()).await.unwrap();

    // A DELETE webhook guards labelled objects: a collection delete is reviewed object by
    // object, whatever page size the client asks for, and nothing it refuses is deleted.
    let guard = config_map_hook(
        "guard",
        &dead,
        &ca,
        json!({"failurePolicy": "Fail", "objectSelector": {"matchLabels": {"protected": "yes"}}}),
    );
    let mut guard = guard;
    guard["webhooks"][0]["rules"][0]["operations"] = json!(["DELETE"]);
    create(guard).await;
    cms("team-b")
        .create(&pp, &cm("a-loose", json!({})))
        .await
        .unwrap();
    cms("team-b")
        .create(&pp, &cm("keep", json!({"protected": "yes"})))
        .await
        .unwrap();
    let e = cms("team-b")
        .delete_collection(&Default::default(), &ListParams::default().limit(1))
        .await
        .unwrap_err();
    assert_eq!(garrison_e2e::api_code(&e), 500, "{e}");
    cms("team-b")
        .get("keep")
        .await
        .expect("the guarded object is still there");
    let e = cms("team-b")
        .delete("keep", &Default::default())
        .await
        .unwrap_err();
    assert_eq!(garrison_e2e::api_code(&e), 500, "{e}");
    // As in kube-apiserver, what was reviewed and allowed before the refusal is deleted.
    assert!(cms("team-b").get_opt("a-loose").await.unwrap().is_none());
    ours.delete("guard", &Default::default()).await.unwrap();
    // Webhook configurations never go to webhooks, so even a webhook that refuses everything
    // can be removed.
    let mut everything =
        config_map_hook("everything", &dead, &ca, json!({"failurePolicy": "Fail"}));
    everything["webhooks"][0]["rules"] = json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]);
    create(everything).await;
    ours.delete("everything", &Default::default())
        .await
        .unwrap();

    // A webhook that accepts the connection and never answers: timeoutSeconds bounds the wait.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("https://{}/x", silent.local_addr().unwrap());
    create(config_map_hook(
        "slow",
        &silent_url,
        &ca,
        json!({"timeoutSeconds": 1}),
    ))
    .await;
    let started = Instant::now();
    let e = cms("team-b")
        .create(&pp, &cm("late", json!({})))
        .await
        .unwrap_err();
    assert_eq!(garrison_e2e::api_code(&e), 500);
    assert!(e.to_string().contains("no answer within 1s"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A webhook with side effects is never called for a dry run: the dry run is refused.
    ours.delete("slow", &Default::default()).await.unwrap();
    create(config_map_hook(
        "effects",
        &refuser,
        &ca,
        json!({"sideEffects": "Some"}),
    ))
    .await;
    let e = cms("team-b")
        .create(&dry, &cm("dry2", json!({})))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("does not support dry run"), "{e}");
    // A caBundle that does not sign the webhook's certificate fails the call.
    ours.delete("effects", &Default::default()).await.unwrap();
    let other_ca = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        std::fs::read(hub.data_dir().join("pki").join("ca.crt")).unwrap(),
    );
    create(config_map_hook("untrusted", &refuser, &other_ca, json!({}))).await;
    let e = cms("team-b")
        .create(&pp, &cm("mitm", json!({})))
        .await
        .unwrap_err();
    assert_eq!(garrison_e2e::api_code(&e), 500);
    assert!(e.to_string().contains("tls"), "{e}");
}

/// `garrison install klusterlet` applies with kubectl to a Garrison API server, and keeps the
/// token out of the YAML unless asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_klusterlet_install_yaml_applies_with_kubectl() {
    use k8s_openapi::api::apps::v1::Deployment;
    let cluster = Hub::start_as_apiserver().await.unwrap();
    let pin = format!("sha256:{}", "ab".repeat(32));
    let args = [
        "install",
        "klusterlet",
        "--hub",
        "https://hub.example.com:6443",
        "--ca-cert-hash",
        pin.as_str(),
        "--cluster-name",
        "edge",
    ];
    let without = ok(garrison(&args));
    assert!(without.contains("create secret generic garrison-join"));
    assert!(!without.contains("kind: Secret"));
    let mut with_token = args.to_vec();
    with_token.extend(["--token", "abcdef.0123456789abcdef"]);
    let yaml = ok(garrison(&with_token));
    let path = cluster.data_dir().join("klusterlet.yaml");
    std::fs::write(&path, &yaml).unwrap();
    ok(cluster.kubectl(&["apply", "-f", path.to_str().unwrap()]));
    let client = cluster.client().await.unwrap();
    let dep: Deployment = Api::namespaced(client.clone(), "open-cluster-management-agent")
        .get("garrison-klusterlet")
        .await
        .unwrap();
    let args = dep.spec.template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    assert!(
        args.windows(2).any(|w| w == ["--cluster-name", "edge"]),
        "{args:?}"
    );
    assert!(args.contains(&"--resume".to_string()));
    let secret: k8s_openapi::api::core::v1::Secret =
        Api::namespaced(client, "open-cluster-management-agent")
            .get("garrison-join")
            .await
            .unwrap();
    assert_eq!(
        secret.data.unwrap()["token"].0,
        b"abcdef.0123456789abcdef".to_vec()
    );
    // Bad input is named, and nothing is printed.
    let bad = garrison(&[
        "install",
        "klusterlet",
        "--hub",
        "https://h:1",
        "--ca-cert-hash",
        &pin,
        "--cluster-name",
        "Edge",
    ]);
    assert!(!bad.status.success());
    assert!(bad.stdout.is_empty());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--cluster-name"));
}
