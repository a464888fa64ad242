//! `garrison sim`: a fleet of simulated clusters joins a real hub through the production agent,
//! waits for the administrator, and resumes from its directory; bad settings are refused.

use std::process::Command;
use std::time::Duration;

use garrison_e2e::{Hub, create_token, fleet, garrison, garrison_bin};

#[tokio::test]
async fn a_simulated_fleet_joins_once_accepted_and_resumes_from_its_directory() {
    let hub = Hub::start().await.unwrap();
    let admin = hub.client().await.unwrap();
    let (token, pin) = create_token(&hub, "1h");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("https://127.0.0.1:{}", hub.port);
    let fleet_dir = dir.path().join("fleet");
    let run = move |secs: &str| {
        Command::new(garrison_bin())
            .args(["sim", "--hub", &url, "--ca-cert-hash", &pin, "-n", "3"])
            .args(["--prefix", "fleet-", "--duration", secs, "--data-dir"])
            .arg(&fleet_dir)
            .env("GARRISON_JOIN_TOKEN", &token)
            .output()
            .unwrap()
    };
    // Nobody accepts yet: the agents get no certificate.
    let out = run("5s");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("3 launched, 0 certified, 0 reporting, 0 failed"),
        "{stdout}"
    );
    // Accepted, the same three clusters (resumed from the directory) become Available.
    let acceptor = fleet::accept_everything(&admin);
    let available = fleet::watch_available(&admin, 3, Duration::from_secs(120));
    let out = tokio::task::spawn_blocking(move || run("30s"))
        .await
        .unwrap();
    let (_, up) = available.await.unwrap();
    acceptor.abort();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("3 launched, 3 certified, 3 reporting, 0 failed"),
        "{stdout}"
    );
    assert!(stdout.contains("KiB per cluster"), "{stdout}");
    let mut names: Vec<String> = up.into_keys().collect();
    names.sort();
    assert_eq!(names, ["fleet-0000", "fleet-0001", "fleet-0002"]);
}

#[test]
fn bad_settings_are_refused_with_one_line_before_anything_starts() {
    let base = [
        "sim",
        "--hub",
        "https://127.0.0.1:1",
        "--token",
        "abcdef.0123456789abcdef",
        "--ca-cert-hash",
    ];
    let pin = format!("sha256:{}", "0".repeat(64));
    for (extra, expected) in [
        (vec!["--clusters", "0"], "--clusters must be at least 1"),
        (vec!["--prefix", "Bad_"], "--prefix"),
        (vec!["--rate", "0"], "--rate must be at least 1"),
    ] {
        let mut args: Vec<&str> = base.to_vec();
        args.push(&pin);
        args.extend(extra);
        let out = garrison(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
    let out = garrison(&[
        "sim",
        "--hub",
        "https://127.0.0.1:1",
        "--token",
        "not-a-token",
        "--ca-cert-hash",
        &pin,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token must look like"));
}
