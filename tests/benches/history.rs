//! The compliance history at fleet scale, in the embedded store (SQLite) and in PostgreSQL
//! (Debian's postgresql, its own server on loopback), side by side, through the same store
//! calls the hub's API makes (release build):
//!
//! 1. ingest: records appended one change at a time (as the recorder sees a replica's status),
//!    and in batches of 1,000;
//! 2. with N records (default 10 million: about two years of daily changes for 3,000 clusters
//!    and 30 policies): a query by control over one month (a page of 100 and the total), a
//!    point-in-time report over the fleet (the state in force per cluster and template), a CSV
//!    export of one month, the full export as the API streams it (time, and the peak memory it
//!    adds), and a full verification of the chain and its checkpoints;
//! 3. disk per million records.
//!
//! Run: `cargo bench -p garrison-e2e --bench history` (GARRISON_BENCH_RECORDS changes N).

use std::time::{Duration, Instant};

use garrison_governance::history::query::{Filter, Paging, SortKey};
use garrison_governance::history::store::History;
use garrison_governance::history::{CheckpointKey, Event, export};

const CLUSTERS: u64 = 3_000;
const POLICIES: u64 = 30;
const DAYS: u64 = 730;
const CONTROLS: [&str; 10] = [
    "AC-2", "AC-3", "AC-6", "AU-2", "AU-6", "CM-2", "CM-6", "CM-7", "SC-7", "SI-4",
];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A deterministic generator (SplitMix64), so both stores hold the same history.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn time_of(day: u64, second: u64) -> String {
    let base = jiff::Timestamp::from_second(1_735_689_600).unwrap(); // 2025-01-01
    let t = base
        .checked_add(jiff::SignedDuration::from_secs(
            (day * 86_400 + second) as i64,
        ))
        .unwrap();
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The `i`-th of `n` changes, spread evenly over two years.
fn event(i: u64, n: u64, rng: &mut Rng) -> Event {
    let day = i * DAYS / n;
    let second = (i * DAYS * 86_400 / n) % 86_400;
    let cluster = rng.next() % CLUSTERS;
    let policy = rng.next() % POLICIES;
    let compliant = !rng.next().is_multiple_of(4);
    Event {
        time: time_of(day, second),
        cluster: format!("cluster-{cluster:04}"),
        policy: format!("policies/policy-{policy:02}"),
        replica: format!("policies.policy-{policy:02}"),
        template: format!("ConfigurationPolicy/template-{policy:02}"),
        state: if compliant {
            "Compliant"
        } else {
            "NonCompliant"
        }
        .into(),
        message: if compliant {
            "Compliant; notification - namespaces [audited] found as specified".into()
        } else {
            "NonCompliant; violation - namespaces [audited] not found".into()
        },
        severity: "high".into(),
        standards: vec!["NIST SP 800-53".into()],
        categories: vec![format!("{} family", &CONTROLS[(policy % 10) as usize][..2])],
        controls: vec![CONTROLS[(policy % 10) as usize].into()],
    }
}

fn rate(n: u64, d: Duration) -> String {
    format!("{:.0} records/s", n as f64 / d.as_secs_f64())
}

fn ms(d: Duration) -> String {
    if d.as_secs_f64() >= 10.0 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

fn disk(path: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let m = e.metadata().unwrap();
            total += if m.is_dir() { disk(&e.path()) } else { m.len() };
        }
    }
    total
}

async fn run(name: &str, history: &History, n: u64, key: &CheckpointKey, size: impl Fn() -> u64) {
    println!("== {name}");
    let mut rng = Rng(7);
    // 1. One change at a time, as the recorder appends a replica's changes.
    let single = 2_000.min(n);
    let started = Instant::now();
    for i in 0..single {
        history.append(vec![event(i, n, &mut rng)]).await.unwrap();
    }
    let d = started.elapsed();
    println!(
        "ingest, one record per append: {} ({single} records in {})",
        rate(single, d),
        ms(d)
    );
    // Batches of 1,000 up to N, with a checkpoint every million.
    let started = Instant::now();
    let mut i = single;
    let mut last_report = Instant::now();
    while i < n {
        let batch: Vec<Event> = (i..(i + 1_000).min(n))
            .map(|j| event(j, n, &mut rng))
            .collect();
        i += batch.len() as u64;
        history.append(batch).await.unwrap();
        if i % 1_000_000 < 1_000 {
            history
                .checkpoint(key.pkcs8().to_vec(), time_of(i * DAYS / n, 0))
                .await
                .unwrap();
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            eprintln!("  {i} of {n} records");
            last_report = Instant::now();
        }
    }
    history
        .checkpoint(key.pkcs8().to_vec(), time_of(DAYS, 0))
        .await
        .unwrap();
    let d = started.elapsed();
    println!(
        "ingest, batches of 1,000: {} ({} records in {})",
        rate(n - single, d),
        n - single,
        ms(d)
    );
    // 2. Queries.
    let month = Filter {
        controls: vec!["AC-2".into()],
        since: Some(time_of(400, 0)),
        until: Some(time_of(430, 0)),
        ..Filter::default()
    };
    let started = Instant::now();
    let page = history
        .query(
            month.clone(),
            Paging {
                per_page: 100,
                ..Paging::default()
            },
        )
        .await
        .unwrap();
    println!(
        "query by control over one month (page of 100 of {}): {}",
        page.total,
        ms(started.elapsed())
    );
    let started = Instant::now();
    let at = history
        .in_force_at(Filter::default(), time_of(500, 43_200))
        .await
        .unwrap();
    let report = garrison_governance::history::query::report(&at, &[]);
    println!(
        "point-in-time report over the fleet ({} cluster-templates in force, {} controls): {}",
        at.len(),
        report.rows.len(),
        ms(started.elapsed())
    );
    let started = Instant::now();
    let all_month = Filter {
        since: Some(time_of(400, 0)),
        until: Some(time_of(430, 0)),
        ..Filter::default()
    };
    let rows = history
        .query(
            all_month,
            Paging {
                per_page: garrison_governance::history::query::MAX_PER_PAGE,
                sort: SortKey::Time,
                descending: false,
                page: 1,
            },
        )
        .await
        .unwrap();
    let mut csv = export::csv_header();
    for r in &rows.records {
        csv.push_str(&export::csv_line(r, true));
    }
    println!(
        "CSV export of one month ({} rows shown of {}, {} MB): {}",
        rows.records.len(),
        rows.total,
        csv.len() / 1_000_000,
        ms(started.elapsed())
    );
    // The whole history as `garrison audit export` receives it: the API's answer, streamed
    // page by page; the bytes are counted, not kept, and the peak memory it added is read
    // from the kernel (VmHWM, reset first).
    let api = garrison_governance::history::api::ComplianceApi::new(history.clone(), key);
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = status_kib("VmRSS:");
    let started = Instant::now();
    let answer = api.get("/api/v1/audit/export", None, None).await;
    let mut stream = answer.stream.expect("the export is streamed");
    let (mut bytes, mut lines) = (0u64, 0u64);
    {
        use futures::StreamExt;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            bytes += chunk.len() as u64;
            lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        }
    }
    let took = started.elapsed();
    let peak = status_kib("VmHWM:");
    println!(
        "full export, streamed ({lines} lines, {} MB): {}; peak memory added: {} MB",
        bytes / 1_000_000,
        ms(took),
        peak.saturating_sub(before) / 1024
    );
    let started = Instant::now();
    let verified = history
        .verify(key.public_key(), None)
        .await
        .unwrap()
        .unwrap();
    println!(
        "full verification ({} records, {} checkpoints): {}",
        verified.records,
        verified.checkpoints,
        ms(started.elapsed())
    );
    // 3. Disk.
    let bytes = size();
    println!(
        "disk: {:.0} MB in all, {:.0} MB per million records",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / (n as f64 / 1e6)
    );
}

/// A `/proc/self/status` figure, in KiB (0 where there is none).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let n = env_u64("GARRISON_BENCH_RECORDS", 10_000_000);
    let key = CheckpointKey::generate().unwrap();
    println!("{n} records: {CLUSTERS} clusters, {POLICIES} policies, {DAYS} days");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("compliance-history.db");
    let sqlite = History::open(None, &path).await.unwrap();
    let d = dir.path().to_path_buf();
    run("embedded store (SQLite)", &sqlite, n, &key, || disk(&d)).await;
    drop(sqlite);
    let pg = garrison_e2e::Postgres::start().expect("PostgreSQL (scripts/test installs it)");
    let history = History::open(Some(&pg.url()), &path).await.unwrap();
    let data = pg.data_dir();
    run("PostgreSQL", &history, n, &key, || disk(&data)).await;
}
