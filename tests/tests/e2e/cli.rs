//! The `garrison` CLI on bad input and its lifecycle verbs: every failure is one line naming the
//! cause with a non-zero exit; SIGTERM stops the hub gracefully; backup and restore round-trip a
//! running hub.

use std::net::TcpListener;

use garrison_e2e::{Hub, free_port, garrison, ok};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, PostParams};
use serde_json::json;

/// Asserts failure with exactly one line on stderr, containing `needle`.
fn fails_with(out: std::process::Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "expected failure, got success: {err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn init_refuses_bad_directories_and_existing_hubs() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    fails_with(
        garrison(&["init", "--data-dir", file.to_str().unwrap()]),
        "not a directory",
    );
    fails_with(
        garrison(&["init", "--data-dir", "/proc/garrison-cannot-exist"]),
        "cannot create data directory",
    );
    let dir = tmp.path().join("hub");
    let d = dir.to_str().unwrap();
    ok(garrison(&["init", "--data-dir", d]));
    fails_with(garrison(&["init", "--data-dir", d]), "--force");
    ok(garrison(&["init", "--data-dir", d, "--force"]));
    fails_with(
        garrison(&[
            "init",
            "--data-dir",
            d,
            "--force",
            "--external-url",
            "http://insecure:6443",
        ]),
        "must start with https://",
    );
    let key = std::fs::metadata(dir.join("pki/ca.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777,
        0o600
    );
}

#[test]
fn hub_reports_missing_dirs_corrupt_stores_bad_certificates_and_busy_ports() {
    let tmp = tempfile::tempdir().unwrap();
    fails_with(
        garrison(&[
            "hub",
            "--data-dir",
            tmp.path().join("missing").to_str().unwrap(),
        ]),
        "does not exist",
    );
    fails_with(
        garrison(&["hub", "--data-dir", tmp.path().to_str().unwrap()]),
        "not a Garrison hub data directory",
    );

    let port = free_port();
    let dir = tmp.path().join("hub");
    let d = dir.to_str().unwrap();
    ok(garrison(&[
        "init",
        "--data-dir",
        d,
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]));
    let busy = TcpListener::bind(("127.0.0.1", port)).unwrap();
    fails_with(garrison(&["hub", "--data-dir", d]), "already in use");
    drop(busy);

    for stale in ["store.db-wal", "store.db-shm"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    std::fs::write(dir.join("store.db"), vec![0x42u8; 8192]).unwrap();
    fails_with(
        garrison(&["hub", "--data-dir", d]),
        "not a valid Garrison database",
    );
    std::fs::remove_file(dir.join("store.db")).unwrap();

    let good = std::fs::read(dir.join("pki/serving.crt")).unwrap();
    std::fs::write(
        dir.join("pki/serving.crt"),
        b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    fails_with(garrison(&["hub", "--data-dir", d]), "serving certificate");
    std::fs::write(dir.join("pki/serving.crt"), good).unwrap();

    let usage = garrison(&["hub", "--data-dir", d, "--watch-cache-events", "0"]);
    assert_eq!(usage.status.code(), Some(2), "usage errors exit 2");
}

#[tokio::test]
async fn sigterm_stops_the_hub_gracefully() {
    let mut hub = Hub::start().await.unwrap();
    let status = hub.terminate().unwrap();
    assert!(status.success(), "exit status {status}: {}", hub.log());
    assert!(hub.log().contains("stopped"), "{}", hub.log());
}

#[tokio::test]
async fn a_backup_of_a_running_hub_restores_into_a_new_directory() {
    let hub = Hub::start().await.unwrap();
    let client = hub.client().await.unwrap();
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "keep"}})).unwrap(),
        )
        .await
        .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), "keep")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "precious"}, "data": {"k": "v"}}))
                .unwrap(),
        )
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("hub.backup");
    let out = ok(garrison(&[
        "backup",
        "--data-dir",
        hub.data_dir().to_str().unwrap(),
        "--to",
        file.to_str().unwrap(),
    ]));
    assert!(out.contains("Backed up"), "{out}");
    fails_with(
        garrison(&[
            "backup",
            "--data-dir",
            hub.data_dir().to_str().unwrap(),
            "--to",
            file.to_str().unwrap(),
        ]),
        "already exists",
    );
    // Restoring over a running hub is refused.
    fails_with(
        garrison(&[
            "restore",
            "--from",
            file.to_str().unwrap(),
            "--data-dir",
            hub.data_dir().to_str().unwrap(),
            "--force",
        ]),
        "another garrison process",
    );
    let not_backup = tmp.path().join("junk");
    std::fs::write(&not_backup, b"junk").unwrap();
    fails_with(
        garrison(&[
            "restore",
            "--from",
            not_backup.to_str().unwrap(),
            "--data-dir",
            tmp.path().join("x").to_str().unwrap(),
        ]),
        "not a usable backup",
    );

    let restored = tmp.path().join("restored");
    ok(garrison(&[
        "restore",
        "--from",
        file.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
    ]));
    let port = free_port();
    let mut child = std::process::Command::new(garrison_e2e::garrison_bin())
        .args([
            "hub",
            "--data-dir",
            restored.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The restored admin kubeconfig points at the old port; talk to the new one.
    let kc = std::fs::read_to_string(restored.join("admin.kubeconfig"))
        .unwrap()
        .replace(&format!(":{}", hub.port), &format!(":{port}"));
    let kc_path = tmp.path().join("restored.kubeconfig");
    std::fs::write(&kc_path, kc).unwrap();
    let mut got = None;
    for _ in 0..100 {
        if let Ok(c) = garrison_e2e::client_from(&kc_path).await
            && let Ok(cm) = Api::<ConfigMap>::namespaced(c, "keep")
                .get("precious")
                .await
        {
            got = Some(cm);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        got.expect("restored hub serves the backup").data.unwrap()["k"],
        "v"
    );
}

#[tokio::test]
async fn token_create_makes_an_expiring_bootstrap_token_and_prints_the_ca_pin() {
    let mut hub = Hub::start().await.unwrap();
    let dir = hub.data_dir().to_str().unwrap().to_string();
    let d = dir.as_str();
    let out = ok(garrison(&[
        "token",
        "create",
        "--data-dir",
        d,
        "--ttl",
        "1h",
    ]));
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("token:"))
        .unwrap()
        .trim()
        .to_string();
    let pin = out
        .lines()
        .find_map(|l| l.strip_prefix("ca-cert-hash:"))
        .unwrap()
        .trim()
        .to_string();
    assert!(token.len() == 23 && token.as_bytes()[6] == b'.', "{token}");
    assert!(pin.starts_with("sha256:") && pin.len() == 71, "{pin}");
    // The pin is the SHA-256 of the hub CA's public key info.
    let ca = std::fs::read(hub.data_dir().join("pki/ca.crt")).unwrap();
    let (_, p) = x509_parser::pem::parse_x509_pem(&ca).unwrap();
    let cert = p.parse_x509().unwrap();
    let digest = sha256_hex_via_coreutils(cert.public_key().raw);
    assert_eq!(pin, format!("sha256:{digest}"));
    // The token authenticates as its bootstrap user.
    let anon_path = hub.anonymous_kubeconfig().unwrap();
    let who = ok(garrison_e2e::kubectl_with(
        &anon_path,
        &hub.data_dir().join("c"),
        &[
            "--token",
            &token,
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    ));
    assert_eq!(who, format!("system:bootstrap:{}", &token[..6]));

    for bad in ["0h", "8d", "soon", "10"] {
        let out = garrison(&["token", "create", "--data-dir", d, "--ttl", bad]);
        assert_eq!(out.status.code(), Some(2), "--ttl {bad} is a usage error");
    }
    hub.kill();
    fails_with(
        garrison(&["token", "create", "--data-dir", d]),
        "is `garrison hub` running?",
    );
}

/// SHA-256 of `data` as hex, computed by coreutils' sha256sum: an implementation independent of
/// the one under test (the hub uses ring).
fn sha256_hex_via_coreutils(data: &[u8]) -> String {
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn serial_of(pem: &str) -> String {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    p.parse_x509().unwrap().raw_serial_as_string()
}

fn admin_serial(hub: &Hub) -> String {
    let kc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(hub.kubeconfig()).unwrap()).unwrap();
    let data = kc["users"][0]["user"]["client-certificate-data"]
        .as_str()
        .unwrap();
    use base64::Engine;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    serial_of(&String::from_utf8(pem).unwrap())
}

#[tokio::test]
async fn certs_check_expiration_and_renew_keep_the_hub_reachable() {
    let mut hub = Hub::start().await.unwrap();
    let dir = hub.data_dir().to_str().unwrap().to_string();
    let table = ok(garrison(&["certs", "check-expiration", "--data-dir", &dir]));
    // Time left is shown in whole days, rounded down: a second after init, 365 days is 364d.
    for (row, days) in [
        ("hub CA", 3650),
        ("client CA", 3650),
        ("serving", 365),
        ("admin", 365),
    ] {
        let line = table
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no {row} row in {table}"));
        assert!(
            line.contains(&format!(" {days}d ")) || line.contains(&format!(" {}d ", days - 1)),
            "{row}: expected about {days} days left: {table}"
        );
    }

    let old_admin = admin_serial(&hub);
    let out = ok(garrison(&["certs", "renew", "admin", "--data-dir", &dir]));
    assert!(out.contains("it works at once"), "{out}");
    assert_ne!(admin_serial(&hub), old_admin);
    ok(hub.kubectl(&["get", "namespaces"]));

    let serving = |hub: &Hub| {
        serial_of(&std::fs::read_to_string(hub.data_dir().join("pki/serving.crt")).unwrap())
    };
    let old_serving = serving(&hub);
    let out = ok(garrison(&["certs", "renew", "serving", "--data-dir", &dir]));
    assert!(out.contains("restart the hub"), "{out}");
    assert_ne!(serving(&hub), old_serving);
    hub.restart().await.unwrap();
    ok(hub.kubectl(&["get", "namespaces"]));

    let bad = garrison(&["certs", "renew", "everything", "--data-dir", &dir]);
    assert_eq!(bad.status.code(), Some(2));
}

/// Admin verbs find the hub as kubectl would: `--kubeconfig`, then `--data-dir`, then
/// `$KUBECONFIG` (one file or several joined by `:`), and say what to give when nothing leads
/// to a hub.
#[tokio::test]
async fn admin_verbs_find_the_hub_through_kubeconfig_like_kubectl() {
    let hub = Hub::start().await.unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(garrison_e2e::garrison_bin());
        cmd.args(args)
            .current_dir(elsewhere.path())
            .env_remove("KUBECONFIG")
            .env_remove("GARRISON_DATA_DIR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let kubeconfig = hub.kubeconfig().display().to_string();
    // Nothing leads to a hub: one line naming the ways.
    fails_with(
        run(&["get", "clusters"], &[]),
        "--kubeconfig FILE, --data-dir DIR or $KUBECONFIG",
    );
    // $KUBECONFIG alone.
    // (The verb lists clusters from the hub; it fails when it cannot reach one.)
    ok(run(&["get", "clusters"], &[("KUBECONFIG", &kubeconfig)]));
    // Several files, merged as kubectl merges them: the first names the current context.
    let other = elsewhere.path().join("other.kubeconfig");
    std::fs::write(
        &other,
        "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n",
    )
    .unwrap();
    let joined = format!("{kubeconfig}:{}", other.display());
    ok(run(&["get", "clusters"], &[("KUBECONFIG", &joined)]));
    // A file of the list that does not exist is skipped, as kubectl skips it.
    let with_missing = format!("/nonexistent/config:{kubeconfig}");
    ok(run(&["get", "clusters"], &[("KUBECONFIG", &with_missing)]));
    // A flag beats the environment: a --data-dir without a hub is an error, whatever
    // $KUBECONFIG says; --kubeconfig beats both.
    let empty = elsewhere.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let empty = empty.display().to_string();
    fails_with(
        run(
            &["get", "clusters", "--data-dir", &empty],
            &[("KUBECONFIG", &kubeconfig)],
        ),
        "not a Garrison hub data directory",
    );
    fails_with(
        run(
            &["get", "clusters"],
            &[("KUBECONFIG", &kubeconfig), ("GARRISON_DATA_DIR", &empty)],
        ),
        "not a Garrison hub data directory",
    );
    ok(run(
        &[
            "get",
            "clusters",
            "--data-dir",
            &empty,
            "--kubeconfig",
            &kubeconfig,
        ],
        &[],
    ));
    // A $KUBECONFIG that names no readable file is named.
    fails_with(
        run(
            &["get", "clusters"],
            &[("KUBECONFIG", "/nonexistent/kubeconfig")],
        ),
        "KUBECONFIG",
    );
}
