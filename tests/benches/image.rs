//! Image verification against a real registry (Debian's docker-registry over TLS on loopback),
//! in this process (release build):
//!
//! 1. a cached decision: a digest reference whose verdict is cached (no registry request), and
//!    a tag reference whose verdict is cached (the tag is still resolved: one request);
//! 2. an uncached key verification of a tag: resolve, signature manifest, payload blob, verify;
//! 3. a fleet's worth: 1,000 works sharing 10 images across 100 clusters, each cluster with its
//!    own registry client and cache, as each agent has; registry requests made and total time.
//!
//! Run: `cargo bench -p garrison-e2e --bench image` (GARRISON_BENCH_CLUSTERS and
//! GARRISON_BENCH_WORKS_PER_CLUSTER change step 3).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use garrison_e2e::OciRegistry;
use garrison_supply_chain::check::{Cache, NoMatch, check_image};
use garrison_supply_chain::policy::Policies;
use garrison_supply_chain::reference::Reference;
use garrison_supply_chain::registry::{Registry, RegistryConfig};
use garrison_supply_chain::sign::{KeySigner, payload};
use serde_json::json;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn per_op(d: Duration, n: usize) -> String {
    let us = d.as_secs_f64() * 1e6 / n as f64;
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

fn client(reg: &OciRegistry) -> Registry {
    let mut config = RegistryConfig::default();
    config.add_ca_pem(&reg.ca_pem).expect("the registry's CA");
    Registry::new(config).expect("a registry client")
}

#[tokio::main]
async fn main() {
    let reg = OciRegistry::start(false).expect("docker-registry (scripts/test installs it)");
    let registry = client(&reg);
    let key = KeySigner::generate().unwrap();
    let mut images = vec![];
    for i in 0..10 {
        let r = Reference::parse(&format!("{}/shop/app{i}:1.0", reg.host)).unwrap();
        let d = registry
            .push_image(&r, format!("layer {i}").as_bytes())
            .await
            .unwrap();
        let layer = key.layer(payload(&r, &d, &BTreeMap::new())).unwrap();
        registry.push_signatures(&r, &d, &[layer]).await.unwrap();
        images.push((r, d));
    }
    let policies = Policies::load(&[json!({
        "apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": "signed"},
        "spec": {"images": [{"glob": format!("{}/shop/*", reg.host)}],
            "authorities": [{"key": {"data": key.public_key_pem()}}]}})]);
    assert!(policies.broken.is_empty());
    let (tag, digest) = &images[0];
    let by_digest = format!("{}/{}@{digest}", tag.registry(), tag.repository());

    // 1. Cached.
    let cache = Cache::new(10_000, Duration::from_secs(600));
    let warm = check_image(&policies, &registry, &cache, &by_digest, NoMatch::Deny).await;
    assert!(!warm.refused, "{:?}", warm.reasons);
    let n = 20_000;
    let before = registry.requests();
    let start = Instant::now();
    for _ in 0..n {
        let d = check_image(&policies, &registry, &cache, &by_digest, NoMatch::Deny).await;
        assert!(!d.refused);
    }
    let cached_digest = start.elapsed();
    assert_eq!(
        registry.requests(),
        before,
        "a cached digest needs no request"
    );
    let n_tag = 500;
    let start = Instant::now();
    for _ in 0..n_tag {
        let d = check_image(
            &policies,
            &registry,
            &cache,
            &tag.to_string(),
            NoMatch::Deny,
        )
        .await;
        assert!(!d.refused);
    }
    let cached_tag = start.elapsed();
    println!(
        "cached: digest reference {} per decision (0 requests); tag reference {} per decision (1 request: the tag is resolved every time)",
        per_op(cached_digest, n),
        per_op(cached_tag, n_tag)
    );

    // 2. Uncached.
    let rounds = 200;
    let before = registry.requests();
    let start = Instant::now();
    for _ in 0..rounds {
        let fresh = Cache::new(1, Duration::from_secs(600));
        let d = check_image(
            &policies,
            &registry,
            &fresh,
            &tag.to_string(),
            NoMatch::Deny,
        )
        .await;
        assert!(!d.refused);
    }
    let uncached = start.elapsed();
    println!(
        "uncached key verification of a tag: {} per decision ({} requests each: resolve, signature manifest, payload)",
        per_op(uncached, rounds),
        (registry.requests() - before) / rounds as u64
    );

    // 3. The fleet.
    let clusters = env_usize("GARRISON_BENCH_CLUSTERS", 100);
    let works = env_usize("GARRISON_BENCH_WORKS_PER_CLUSTER", 10);
    let agents: Vec<(Registry, Cache)> = (0..clusters)
        .map(|_| (client(&reg), Cache::new(10_000, Duration::from_secs(600))))
        .collect();
    let start = Instant::now();
    let mut latencies = vec![];
    let tasks = agents.iter().enumerate().map(|(c, (registry, cache))| {
        let policies = &policies;
        let images = &images;
        async move {
            let mut own = vec![];
            for w in 0..works {
                let (r, _) = &images[(c + w) % images.len()];
                let t = Instant::now();
                let d = check_image(policies, registry, cache, &r.to_string(), NoMatch::Deny).await;
                assert!(!d.refused, "{:?}", d.reasons);
                own.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            own
        }
    });
    for l in futures::future::join_all(tasks).await {
        latencies.extend(l);
    }
    let total = start.elapsed();
    let requests: u64 = agents.iter().map(|(r, _)| r.requests()).sum();
    latencies.sort_by(|a, b| a.total_cmp(b));
    println!(
        "fleet: {} works on {clusters} clusters sharing {} images in {:.2} s; {requests} registry requests ({:.2} per work); per work p50 {:.2} ms, p99 {:.2} ms",
        clusters * works,
        images.len(),
        total.as_secs_f64(),
        requests as f64 / (clusters * works) as f64,
        garrison_e2e::pct(&latencies, 0.50),
        garrison_e2e::pct(&latencies, 0.99),
    );
}
