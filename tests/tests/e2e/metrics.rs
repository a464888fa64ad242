//! The hub's Prometheus metrics, end to end: `/metrics` carries every SLI and the API server,
//! store and controller metrics for a caller who may `get` that path, refuses everyone else,
//! and a real Prometheus server (Debian's `prometheus`) scrapes it and answers a query for the
//! share of available clusters.

use std::time::Duration;

use garrison_api::work::v1::ManifestWork;
use garrison_e2e::{Hub, Prometheus, api_code, client_from, eventually, ok, token_kubeconfig};
use kube::api::{Api, PostParams};
use serde_json::json;

/// The value of the series written exactly as `series` in a text exposition.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Creates ManifestWork `w1` with one ConfigMap in `cluster`'s namespace.
async fn create_work(admin: &kube::Client, cluster: &str) {
    let work: ManifestWork = serde_json::from_value(json!({
        "apiVersion": "work.open-cluster-management.io/v1", "kind": "ManifestWork",
        "metadata": {"name": "w1", "namespace": cluster},
        "spec": {"workload": {"manifests": [{"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "m", "namespace": "default"}, "data": {"a": "1"}}]}},
    }))
    .unwrap();
    Api::<ManifestWork>::namespaced(admin.clone(), cluster)
        .create(&PostParams::default(), &work)
        .await
        .unwrap();
}

async fn scrape(client: &kube::Client) -> Result<String, kube::Error> {
    let req = http::Request::get("/metrics").body(vec![]).unwrap();
    client.request_text(req).await
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_the_slis_refuse_strangers_and_feed_prometheus() {
    // Short certificates, so that each agent rotates once during the test.
    let hub = Hub::start_with(&["--cert-lifetime", "20s"]).await.unwrap();
    let agents = garrison_e2e::join_and_accept(&hub, &["c1", "c2"], &[]).await;
    let admin = hub.client().await.unwrap();
    create_work(&admin, "c1").await;
    let dir = hub.data_dir().display().to_string();
    ok(garrison_e2e::garrison(&[
        "addon",
        "enable",
        "managed-serviceaccount",
        "--clusters",
        "c1",
        "--data-dir",
        &dir,
    ]));

    // A third cluster asks to join and is denied.
    let (token, pin) = garrison_e2e::create_token(&hub, "1h");
    let _c3 = garrison_e2e::Agent::join(&hub, "c3", &token, &pin, &[]);
    // Made-up HTTP methods, each of which would be a series of its own if taken as a label.
    for method in ["FOO1", "FOO2", "FOO3"] {
        let req = http::Request::builder()
            .method(method)
            .uri("/api/v1/namespaces")
            .body(vec![])
            .unwrap();
        assert!(
            admin.request_text(req).await.is_err(),
            "{method} was served"
        );
    }

    // The admin (system:masters) reads them; the SLIs reach their values.
    let text = eventually(60, "both clusters available, the work applied, a rotation, the add-on available, a denial", || {
        let admin = admin.clone();
        let dir = dir.clone();
        async move {
            // Denies c3's request once it is there (before, there is nothing to deny).
            garrison_e2e::garrison(&["deny", "c3", "--data-dir", &dir]);
            let text = scrape(&admin).await.ok()?;
            let ready = value(&text, r#"garrison_managed_clusters{available="True"}"#) == Some(2.0)
                && value(
                    &text,
                    r#"garrison_manifestworks{condition="Applied",status="True"}"#,
                ) == Some(1.0)
                && value(
                    &text,
                    r#"garrison_certificate_rotations_total{result="succeeded"}"#,
                )
                .is_some_and(|n| n >= 1.0)
                && value(
                    &text,
                    r#"garrison_managed_cluster_addons{addon="managed-serviceaccount",available="True"}"#,
                ) == Some(1.0)
                && value(&text, r#"garrison_csr_decisions_total{decision="denied"}"#)
                    .is_some_and(|n| n >= 1.0);
            ready.then_some(text)
        }
    })
    .await;
    let at_least = |series: &str, n: f64| {
        let v = value(&text, series);
        assert!(
            v.is_some_and(|v| v >= n),
            "{series} is {v:?}, expected at least {n}; the scrape:\n{text}"
        );
    };
    let present = |series: &str| {
        assert!(value(&text, series).is_some(), "no {series} in:\n{text}");
    };
    // The SLIs.
    present(r#"garrison_managed_clusters{available="False"}"#);
    present(r#"garrison_manifestworks{condition="Available",status="True"}"#);
    present(r#"garrison_manifestworks_refused{reason="ImageVerificationFailed"}"#);
    present(r#"garrison_certificate_rotations_total{result="failed"}"#);
    // Two acceptances, and each renewal approved automatically.
    at_least(r#"garrison_csr_decisions_total{decision="approved"}"#, 3.0);
    // Methods clients make up are counted together, never one series each.
    assert!(!text.contains(r#"verb="foo1""#), "{text}");
    at_least(
        r#"garrison_apiserver_requests_total{verb="other",group="",resource="",code="405"}"#,
        3.0,
    );
    for state in ["Compliant", "NonCompliant", "Pending", "Unknown"] {
        present(&format!(r#"garrison_policy_compliance{{state="{state}"}}"#));
    }
    // The API server, the store and the controllers.
    let create_works =
        r#"verb="create",group="work.open-cluster-management.io",resource="manifestworks""#;
    at_least(
        &format!("garrison_apiserver_request_duration_seconds_count{{{create_works}}}"),
        1.0,
    );
    at_least(
        &format!("garrison_apiserver_requests_total{{{create_works},code=\"201\"}}"),
        1.0,
    );
    // Each agent watches its works.
    at_least(
        r#"garrison_apiserver_open_watches{group="work.open-cluster-management.io",resource="manifestworks"}"#,
        2.0,
    );
    at_least("garrison_apiserver_watch_cache_events", 1.0);
    at_least("garrison_store_write_duration_seconds_count", 1.0);
    at_least("garrison_store_commit_writes_count", 1.0);
    // The allocator's count of the live heap: a running hub holds megabytes.
    at_least("garrison_process_heap_bytes", 1_000_000.0);
    at_least(
        r#"garrison_controller_reconciles_total{controller="managedcluster",result="success"}"#,
        2.0,
    );
    at_least(
        r#"garrison_controller_reconcile_duration_seconds_count{controller="csr-signer"}"#,
        1.0,
    );
    present(r#"garrison_controller_queue_depth{controller="placement"}"#);

    // Anyone else: an anonymous caller is not let in, and neither a ServiceAccount nor a
    // cluster's own agent may read them without a grant of `get` on /metrics.
    let anonymous = client_from(&hub.anonymous_kubeconfig().unwrap())
        .await
        .unwrap();
    let e = scrape(&anonymous).await.unwrap_err();
    assert_eq!(api_code(&e), 401, "{e}");
    ok(hub.kubectl(&["create", "serviceaccount", "nobody", "-n", "default"]));
    let nobody = ok(hub.kubectl(&["create", "token", "nobody", "-n", "default"]));
    let nobody = client_from(&token_kubeconfig(&hub, nobody.trim()).unwrap())
        .await
        .unwrap();
    let e = scrape(&nobody).await.unwrap_err();
    assert_eq!(api_code(&e), 403, "{e}");
    let agent = client_from(&agents[0].kubeconfig(&hub).unwrap())
        .await
        .unwrap();
    let e = scrape(&agent).await.unwrap_err();
    assert_eq!(api_code(&e), 403, "{e}");

    // Prometheus, as a ServiceAccount bound to system:monitoring, scrapes the hub and answers
    // the share of available clusters.
    ok(hub.kubectl(&["create", "serviceaccount", "prometheus", "-n", "default"]));
    ok(hub.kubectl(&[
        "create",
        "clusterrolebinding",
        "prometheus-monitoring",
        "--clusterrole=system:monitoring",
        "--serviceaccount=default:prometheus",
    ]));
    let token = ok(hub.kubectl(&["create", "token", "prometheus", "-n", "default"]));
    let ca = std::fs::read_to_string(hub.data_dir().join("pki").join("ca.crt")).unwrap();
    let prom = Prometheus::start(hub.port, &ca, token.trim()).unwrap();
    let query = encode(
        r#"sum(garrison_managed_clusters{available="True"}) / sum(garrison_managed_clusters)"#,
    );
    let answer = eventually(
        60,
        "Prometheus's answer for the share of available clusters",
        || {
            let path = format!("/api/v1/query?query={query}");
            let got = prom.get(&path);
            async move {
                let (code, body) = got.ok()?;
                let v: serde_json::Value = serde_json::from_str(&body).ok()?;
                let result = v.pointer("/data/result/0/value/1")?.as_str()?.to_string();
                (code == 200).then_some(result)
            }
        },
    )
    .await;
    // Two of the three clusters (c3 was denied, so it is not available).
    let share: f64 = answer.parse().unwrap();
    assert!(
        (share - 2.0 / 3.0).abs() < 1e-9,
        "the share of available clusters is {answer}"
    );
    let (_, targets) = prom.get("/api/v1/targets").unwrap();
    assert!(
        targets.contains(r#""health":"up""#),
        "the hub target is not up: {targets}\n{}",
        prom.log()
    );
    drop(agents);
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// A kubeconfig for `url` that trusts `ca_file` and carries `token` (or nothing).
fn scrape_kubeconfig(
    dir: &std::path::Path,
    url: &str,
    ca_file: &std::path::Path,
    token: Option<&str>,
) -> std::path::PathBuf {
    let user = match token {
        Some(t) => json!({"token": t}),
        None => json!({}),
    };
    let kc = json!({"apiVersion": "v1", "kind": "Config", "current-context": "m",
        "clusters": [{"name": "m", "cluster": {"server": url, "certificate-authority": ca_file}}],
        "users": [{"name": "m", "user": user}],
        "contexts": [{"name": "m", "context": {"cluster": "m", "user": "m"}}]});
    let path = dir.join(format!("scrape-{}.kubeconfig", token.map_or(0, str::len)));
    std::fs::write(&path, serde_yaml::to_string(&kc).unwrap()).unwrap();
    path
}

/// The agent's own endpoint (`--metrics-listen`): its counters (work reconciles, image
/// verifications, rotations) for a caller the managed cluster vouches for by TokenReview and
/// allows by SubjectAccessReview; everyone else is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_serves_its_metrics_to_whom_its_cluster_allows() {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;

    let hub = Hub::start().await.unwrap();
    let port = garrison_e2e::free_port();
    let listen = format!("127.0.0.1:{port}");
    let agents = garrison_e2e::join_and_accept(&hub, &["c1"], &["--metrics-listen", &listen]).await;
    let admin = hub.client().await.unwrap();
    create_work(&admin, "c1").await;

    // On the managed cluster: one ServiceAccount allowed to read metrics, one not.
    let spoke = agents[0].spoke().await;
    let sas: Api<ServiceAccount> = Api::namespaced(spoke.clone(), "default");
    for name in ["scraper", "stranger"] {
        let sa: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        sas.create(&PostParams::default(), &sa).await.unwrap();
    }
    let bindings: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(spoke.clone());
    let binding = serde_json::from_value(json!({"metadata": {"name": "scraper-monitoring"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:monitoring"},
        "subjects": [{"kind": "ServiceAccount", "name": "scraper", "namespace": "default"}]}))
    .unwrap();
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let token_of = |name: &'static str| {
        let sas = sas.clone();
        async move {
            let req = TokenRequest {
                spec: Some(TokenRequestSpec {
                    expiration_seconds: Some(3600),
                    ..Default::default()
                }),
                ..Default::default()
            };
            sas.create_token_request(name, &PostParams::default(), &req)
                .await
                .unwrap()
                .status
                .unwrap()
                .token
                .unwrap()
        }
    };
    let (scraper, stranger) = (token_of("scraper").await, token_of("stranger").await);

    let url = format!("https://{listen}");
    // The client below trusts only this CA: the serving certificate chains to it and names
    // 127.0.0.1. Its key is the agent's alone.
    let ca = agents[0].dir.join("metrics-ca.crt");
    let key = std::fs::metadata(agents[0].dir.join("metrics-ca.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777,
        0o600
    );
    let tmp = tempfile::tempdir().unwrap();
    let as_scraper = client_from(&scrape_kubeconfig(tmp.path(), &url, &ca, Some(&scraper)))
        .await
        .unwrap();
    let text = eventually(
        30,
        "the agent's reconcile of the work in its metrics",
        || {
            let c = as_scraper.clone();
            async move {
                let text = scrape(&c).await.ok()?;
                value(
                &text,
                r#"garrison_controller_reconciles_total{controller="work-agent",result="success"}"#,
            )
            .is_some_and(|n| n >= 1.0)
            .then_some(text)
            }
        },
    )
    .await;
    for series in [
        r#"garrison_image_verifications_total{outcome="verified"}"#,
        r#"garrison_image_verifications_total{outcome="refused"}"#,
        r#"garrison_certificate_rotations_total{result="succeeded"}"#,
    ] {
        assert!(value(&text, series).is_some(), "no {series} in:\n{text}");
    }
    // The fleet's SLIs are the hub's, not an agent's.
    assert!(!text.contains("garrison_managed_clusters{"), "{text}");

    // No token, a token the cluster does not know (the hub's own admin is a stranger here,
    // and so is garbage), and a ServiceAccount of the cluster without the grant.
    let anonymous = client_from(&scrape_kubeconfig(tmp.path(), &url, &ca, None))
        .await
        .unwrap();
    assert_eq!(api_code(&scrape(&anonymous).await.unwrap_err()), 401);
    let garbage = client_from(&scrape_kubeconfig(
        tmp.path(),
        &url,
        &ca,
        Some("not-a-token"),
    ))
    .await
    .unwrap();
    assert_eq!(api_code(&scrape(&garbage).await.unwrap_err()), 401);
    ok(hub.kubectl(&["create", "serviceaccount", "hub-sa", "-n", "default"]));
    let hub_token = ok(hub.kubectl(&["create", "token", "hub-sa", "-n", "default"]));
    let foreign = client_from(&scrape_kubeconfig(
        tmp.path(),
        &url,
        &ca,
        Some(hub_token.trim()),
    ))
    .await
    .unwrap();
    assert_eq!(api_code(&scrape(&foreign).await.unwrap_err()), 401);
    let refused = client_from(&scrape_kubeconfig(tmp.path(), &url, &ca, Some(&stranger)))
        .await
        .unwrap();
    let e = scrape(&refused).await.unwrap_err();
    assert_eq!(api_code(&e), 403, "{e}");
    assert!(e.to_string().contains("cannot get path"), "{e}");
}
