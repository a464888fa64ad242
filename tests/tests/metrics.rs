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
    let works: Api<ManifestWork> = Api::namespaced(admin.clone(), "c1");
    let work: ManifestWork = serde_json::from_value(json!({
        "apiVersion": "work.open-cluster-management.io/v1", "kind": "ManifestWork",
        "metadata": {"name": "w1", "namespace": "c1"},
        "spec": {"workload": {"manifests": [{"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "m", "namespace": "default"}, "data": {"a": "1"}}]}},
    }))
    .unwrap();
    works.create(&PostParams::default(), &work).await.unwrap();
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

    // The admin (system:masters) reads them; the SLIs reach their values.
    let text = eventually(60, "both clusters available, the work applied, a rotation, the add-on available", || {
        let admin = admin.clone();
        async move {
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
                ) == Some(1.0);
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
    present(r#"garrison_csr_decisions_total{decision="denied"}"#);
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
    assert_eq!(answer, "1", "the share of available clusters");
    let (_, targets) = prom.get("/api/v1/targets").unwrap();
    assert!(
        targets.contains(r#""health":"up""#),
        "the hub target is not up: {targets}\n{}",
        prom.log()
    );
    drop(agents);
    tokio::time::sleep(Duration::from_millis(100)).await;
}
