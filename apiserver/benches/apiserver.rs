//! API server benchmark (not a test): throughput of create, get and list over real HTTPS with
//! kube-rs, watch fan-out with 1,000 watchers each on its own namespace, and memory per 10,000
//! stored objects. Run with `cargo bench -p garrison-apiserver --bench apiserver`; figures go in
//! BENCHMARKS.md. Sizes can be scaled down with GARRISON_BENCH_SCALE=0.1 for a quick look.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use garrison_apiserver::server::{Server, ServerConfig};
use garrison_apiserver::store::watch::{EventType, WatchCache, WatchEvent};
use garrison_apiserver::tls;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams, WatchEvent as KubeEvent, WatchParams};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use serde_json::json;

fn scale(n: usize) -> usize {
    let f: f64 = std::env::var("GARRISON_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * f) as usize).max(1)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

struct Pki {
    ca_pem: String,
    chain: String,
    key: String,
    client_ca: String,
    admin_cert: String,
    admin_key: String,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "bench-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut sp = CertificateParams::new(Vec::<String>::new()).unwrap();
    sp.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
    sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving = sp.signed_by(&key, &issuer).unwrap();
    let akey = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ap = CertificateParams::new(Vec::<String>::new()).unwrap();
    ap.distinguished_name
        .push(DnType::CommonName, "bench-admin");
    ap.distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    ap.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin = ap.signed_by(&akey, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        chain: serving.pem(),
        key: key.serialize_pem(),
        client_ca: ca_cert.pem(),
        admin_cert: admin.pem(),
        admin_key: akey.serialize_pem(),
    }
}

async fn client(port: u16, p: &Pki) -> kube::Client {
    use base64::Engine;
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let kc = json!({"apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "b", "cluster": {"server": format!("https://127.0.0.1:{port}"), "certificate-authority-data": b(&p.ca_pem)}}],
        "users": [{"name": "a", "user": {"client-certificate-data": b(&p.admin_cert), "client-key-data": b(&p.admin_key)}}],
        "contexts": [{"name": "c", "context": {"cluster": "b", "user": "a"}}], "current-context": "c"});
    let kc: kube::config::Kubeconfig = serde_json::from_value(kc).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"bench": "yes"}}, "data": {"key": "value-of-about-thirty-two-bytes"}})).unwrap()
}

async fn parallel<F, Fut>(total: usize, workers: usize, f: F) -> Duration
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < total {
                f(i).await;
                i += workers;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ServerConfig {
        store_path: Some(dir.path().join("store.db")),
        watch_cache_events: 20_000,
        ..Default::default()
    };
    let server = Server::build(&cfg).unwrap();
    let p = pki();
    let tls_cfg = tls::server_config(
        tls::certs_from_pem("chain", p.chain.as_bytes()).unwrap(),
        tls::key_from_pem("key", p.key.as_bytes()).unwrap(),
        &tls::certs_from_pem("ca", p.client_ca.as_bytes()).unwrap(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(tls::serve(
        listener,
        tls_cfg,
        server.router(),
        stop_rx,
        server.connection_policy.clone(),
    ));
    let c = client(port, &p).await;
    let ns: Api<Namespace> = Api::all(c.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "bench"}})).unwrap(),
    )
    .await
    .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), "bench");

    println!("garrison apiserver benchmark (HTTPS + mTLS, kube-rs client, 16 concurrent requests)");
    // One create at a time pays a whole fsync each; sixteen at once share commits (the
    // store's group commit), so the ratio of the two lines is what grouping buys.
    let serial = scale(300);
    let a = api.clone();
    let t = parallel(serial, 1, move |i| {
        let a = a.clone();
        async move {
            a.create(&PostParams::default(), &cm(&format!("one-{i}")))
                .await
                .unwrap();
        }
    })
    .await;
    println!(
        "create, 1 in flight: {serial} objects in {:.2}s = {:.0} creates/s",
        t.as_secs_f64(),
        serial as f64 / t.as_secs_f64()
    );
    let n = scale(2000);
    let a = api.clone();
    let t = parallel(n, 16, move |i| {
        let a = a.clone();
        async move {
            a.create(&PostParams::default(), &cm(&format!("cm-{i}")))
                .await
                .unwrap();
        }
    })
    .await;
    println!(
        "create, 16 in flight: {n} objects in {:.2}s = {:.0} creates/s",
        t.as_secs_f64(),
        n as f64 / t.as_secs_f64()
    );
    let g = scale(10_000);
    let a = api.clone();
    let t = parallel(g, 16, move |i| {
        let a = a.clone();
        async move {
            a.get(&format!("cm-{}", i % n)).await.unwrap();
        }
    })
    .await;
    println!(
        "get:     {g} reads in {:.2}s = {:.0} gets/s",
        t.as_secs_f64(),
        g as f64 / t.as_secs_f64()
    );
    let l = scale(50);
    let start = Instant::now();
    let mut items = 0;
    for _ in 0..l {
        items = api.list(&ListParams::default()).await.unwrap().items.len();
    }
    let t = start.elapsed();
    println!(
        "list:    {l} lists of {items} objects in {:.2}s = {:.1} lists/s ({:.0} objects/s)",
        t.as_secs_f64(),
        l as f64 / t.as_secs_f64(),
        (l * items) as f64 / t.as_secs_f64()
    );

    // Watch fan-out: W watchers, each on its own namespace, over HTTPS.
    let w = scale(1000);
    for i in 0..w {
        ns.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": format!("w{i}")}})).unwrap(),
        )
        .await
        .unwrap();
    }
    let event_latency = |watchers: usize| {
        let c = c.clone();
        async move {
            let mut streams = Vec::new();
            for i in 0..watchers {
                let a: Api<ConfigMap> = Api::namespaced(c.clone(), &format!("w{i}"));
                streams.push(
                    a.watch(&WatchParams::default().timeout(600), "0")
                        .await
                        .unwrap()
                        .boxed(),
                );
            }
            let rss = rss_kib();
            let events = 200;
            let mut total = Duration::ZERO;
            for e in 0..events {
                let target = e % watchers;
                let a: Api<ConfigMap> = Api::namespaced(c.clone(), &format!("w{target}"));
                let start = Instant::now();
                a.create(&PostParams::default(), &cm(&format!("e{watchers}-{e}")))
                    .await
                    .unwrap();
                loop {
                    match streams[target].try_next().await.unwrap() {
                        Some(KubeEvent::Added(o))
                            if o.metadata.name.as_deref() == Some(&format!("e{watchers}-{e}")) =>
                        {
                            break;
                        }
                        Some(_) => continue,
                        None => panic!("watch ended"),
                    }
                }
                total += start.elapsed();
            }
            (total / events as u32, rss)
        }
    };
    let rss0 = rss_kib();
    let (one, _) = event_latency(1).await;
    let (many, rss_many) = event_latency(w).await;
    println!(
        "watch:   one event, write to delivery: {:.2} ms with 1 watcher, {:.2} ms with {w} watchers on {w} namespaces (ratio {:.2})",
        one.as_secs_f64() * 1e3,
        many.as_secs_f64() * 1e3,
        many.as_secs_f64() / one.as_secs_f64()
    );
    println!(
        "watch:   {w} open watches hold {} KiB of RSS ({:.1} KiB each)",
        rss_many.saturating_sub(rss0),
        rss_many.saturating_sub(rss0) as f64 / w as f64
    );

    // The cost of publishing one event into the watch index, in-process.
    for watchers in [1usize, 1000, 10_000] {
        let cache = WatchCache::new(10_000, 0);
        let subs: Vec<_> = (0..watchers)
            .map(|i| {
                cache
                    .subscribe("/configmaps", Some(&format!("ns{i}")), 0)
                    .unwrap()
            })
            .collect();
        let obj = json!({"metadata": {"name": "x"}});
        let rounds = 100_000u64;
        let start = Instant::now();
        for r in 0..rounds {
            cache.publish(WatchEvent::new(
                r + 1,
                "/configmaps",
                "ns0",
                EventType::Modified,
                obj.clone(),
                None,
            ));
        }
        let per = start.elapsed().as_nanos() as f64 / rounds as f64;
        println!("publish: {per:.0} ns per event with {watchers} watchers on other namespaces");
        drop(subs);
    }

    // Memory per 10,000 stored objects, through the same write path (in-process).
    let objects = server.objects.clone();
    let admin = garrison_apiserver::bootstrap::system_user();
    let res = objects.registry.get("", "v1", "configmaps").unwrap();
    let before = rss_kib();
    let size_before = std::fs::metadata(dir.path().join("store.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    let m = scale(10_000);
    let start = Instant::now();
    let h = tokio::task::spawn_blocking(move || {
        for i in 0..m {
            let mut ctx = garrison_apiserver::ops::WriteCtx {
                user: &admin,
                manager: "bench".into(),
                dry_run: false,
                field_validation: garrison_apiserver::admission::FieldValidation::Strict,
                warnings: vec![],
            };
            let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("mem-{i}"), "namespace": "bench"}, "data": {"key": "value-of-about-thirty-two-bytes"}});
            objects.create(&res, "bench", obj, &mut ctx).unwrap();
        }
    });
    h.await.unwrap();
    let t = start.elapsed();
    let after = rss_kib();
    let size_after = std::fs::metadata(dir.path().join("store.db"))
        .map(|m| m.len())
        .unwrap_or(0)
        + std::fs::metadata(dir.path().join("store.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    println!(
        "memory:  {m} more objects: RSS {} KiB -> {} KiB (+{} KiB, {:.0} bytes/object); store file +{} KiB; {:.0} in-process creates/s",
        before,
        after,
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 * 1024.0 / m as f64,
        size_after.saturating_sub(size_before) / 1024,
        m as f64 / t.as_secs_f64()
    );
}
