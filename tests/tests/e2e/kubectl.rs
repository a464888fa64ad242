//! kubectl against a running hub with the admin kubeconfig: get, describe, apply -f, patch,
//! delete, get -w, -o yaml and auth can-i, on OCM objects written as upstream's docs write them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use garrison_e2e::{Hub, ok, workspace};

fn fixtures() -> std::path::PathBuf {
    workspace().join("api/tests/fixtures")
}

fn fixture_namespaces() -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
            if let Some(ns) = v["metadata"]["namespace"].as_str()
                && !out.contains(&ns.to_string())
            {
                out.push(ns.to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn kubectl_applies_gets_describes_patches_and_deletes_upstream_ocm_objects() {
    let hub = Hub::start().await.unwrap();
    for ns in fixture_namespaces().into_iter().filter(|n| n != "default") {
        ok(hub.kubectl(&["create", "namespace", &ns]));
    }
    let out = ok(hub.kubectl(&["apply", "-f", fixtures().to_str().unwrap()]));
    assert_eq!(
        out.lines().filter(|l| l.ends_with(" created")).count(),
        15,
        "{out}"
    );
    // Applying the same files again changes nothing. (Files that carry a status are reported
    // "configured", as with kube-apiserver: status is only written through its subresource.)
    let again = ok(hub.kubectl(&["apply", "-f", fixtures().to_str().unwrap()]));
    for kind in [
        "addondeploymentconfig.addon",
        "addontemplate.addon",
        "clusterclaim.cluster",
    ] {
        let line = again
            .lines()
            .find(|l| l.starts_with(&format!("{kind}.open-cluster-management.io/")))
            .unwrap_or_else(|| panic!("{kind} in {again}"));
        assert!(line.ends_with(" unchanged"), "{line}");
    }

    let table = ok(hub.kubectl(&["get", "managedclusters"]));
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("HUB ACCEPTED"),
        "printer columns are served: {table}"
    );
    let placements = ok(hub.kubectl(&["get", "placements", "-A", "-o", "wide"]));
    assert!(placements.lines().count() >= 2, "{placements}");

    // -o yaml returns what was applied, with server metadata added.
    let yaml = ok(hub.kubectl(&[
        "get",
        "manifestwork",
        "-n",
        "cluster1",
        "hello-work-demo",
        "-o",
        "yaml",
    ]));
    let got: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    let want: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(fixtures().join("manifestwork.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        got["spec"], want["spec"],
        "the ManifestWork spec round-trips unchanged"
    );
    assert!(got["metadata"]["uid"].as_str().is_some());

    let described = ok(hub.kubectl(&["describe", "managedcluster", "cluster1"]));
    assert!(
        described.contains("Name:") && described.contains("cluster1"),
        "{described}"
    );

    ok(hub.kubectl(&[
        "patch",
        "managedcluster",
        "cluster1",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"labels":{"env":"prod"}}}"#,
    ]));
    let labelled = ok(hub.kubectl(&["get", "managedclusters", "-l", "env=prod", "-o", "name"]));
    assert_eq!(
        labelled.trim(),
        "managedcluster.cluster.open-cluster-management.io/cluster1"
    );
    ok(hub.kubectl(&[
        "patch",
        "managedcluster",
        "cluster1",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/hubAcceptsClient","value":false}]"#,
    ]));
    let accepts = || {
        ok(hub.kubectl(&[
            "get",
            "managedcluster",
            "cluster1",
            "-o",
            "jsonpath={.spec.hubAcceptsClient}",
        ]))
    };
    assert_eq!(accepts(), "false");
    // A JSON patch that names a resourceVersion other than the current one is refused, as a
    // merge patch that names one is: the version is its precondition.
    for (kind, p) in [
        (
            "json",
            r#"[{"op":"replace","path":"/metadata/resourceVersion","value":"1"},
                {"op":"replace","path":"/spec/hubAcceptsClient","value":true}]"#,
        ),
        (
            "merge",
            r#"{"metadata":{"resourceVersion":"1"},"spec":{"hubAcceptsClient":true}}"#,
        ),
    ] {
        let stale = hub.kubectl(&[
            "patch",
            "managedcluster",
            "cluster1",
            "--type",
            kind,
            "-p",
            p,
        ]);
        let err = String::from_utf8_lossy(&stale.stderr);
        assert!(
            !stale.status.success() && err.contains("the object has been modified"),
            "{kind}: {err}"
        );
    }
    assert_eq!(accepts(), "false", "a refused patch changes nothing");
    // Custom resources refuse strategic merge patch, as kube-apiserver does.
    let smp = hub.kubectl(&[
        "patch",
        "managedcluster",
        "cluster1",
        "-p",
        r#"{"metadata":{"labels":{"x":"y"}}}"#,
    ]);
    assert!(!smp.status.success());
    assert!(
        String::from_utf8_lossy(&smp.stderr).contains("is not supported by"),
        "{}",
        String::from_utf8_lossy(&smp.stderr)
    );

    ok(hub.kubectl(&[
        "delete",
        "-f",
        fixtures().join("placement.yaml").to_str().unwrap(),
    ]));
    let after = hub.kubectl(&["get", "placement", "-n", "default", "placement1"]);
    assert!(!after.status.success());

    assert_eq!(
        ok(hub.kubectl(&["auth", "can-i", "create", "managedclusters"])).trim(),
        "yes"
    );
}

#[tokio::test]
async fn kubectl_works_with_built_in_kinds_through_protobuf_and_strategic_merge() {
    let hub = Hub::start().await.unwrap();
    ok(hub.kubectl(&["create", "namespace", "demo"]));
    ok(hub.kubectl(&[
        "-n",
        "demo",
        "create",
        "configmap",
        "c1",
        "--from-literal=a=b",
    ]));
    ok(hub.kubectl(&[
        "-n",
        "demo",
        "create",
        "secret",
        "generic",
        "s1",
        "--from-literal=pw=hunter2",
    ]));
    ok(hub.kubectl(&[
        "-n",
        "demo",
        "create",
        "role",
        "reader",
        "--verb=get,list",
        "--resource=configmaps",
    ]));
    ok(hub.kubectl(&[
        "-n",
        "demo",
        "create",
        "rolebinding",
        "alice-reads",
        "--role=reader",
        "--user=alice",
    ]));
    ok(hub.kubectl(&["-n", "demo", "create", "serviceaccount", "robot"]));
    let secret_type = ok(hub.kubectl(&[
        "-n",
        "demo",
        "get",
        "secret",
        "s1",
        "-o",
        "jsonpath={.type}",
    ]));
    assert_eq!(secret_type, "Opaque");
    ok(hub.kubectl(&[
        "-n",
        "demo",
        "patch",
        "configmap",
        "c1",
        "-p",
        r#"{"data":{"x":"y"}}"#,
    ]));
    let data = ok(hub.kubectl(&["-n", "demo", "get", "cm", "c1", "-o", "jsonpath={.data}"]));
    assert!(
        data.contains("\"a\":\"b\"") && data.contains("\"x\":\"y\""),
        "{data}"
    );
    let described = ok(hub.kubectl(&["-n", "demo", "describe", "configmap", "c1"]));
    assert!(described.contains("Data"), "{described}");
    // The admin may impersonate; alice's Role answers in demo and nowhere else.
    assert_eq!(
        ok(hub.kubectl(&[
            "-n",
            "demo",
            "auth",
            "can-i",
            "list",
            "configmaps",
            "--as",
            "alice"
        ]))
        .trim(),
        "yes"
    );
    let elsewhere = hub.kubectl(&[
        "-n",
        "default",
        "auth",
        "can-i",
        "list",
        "configmaps",
        "--as",
        "alice",
    ]);
    assert_eq!(String::from_utf8_lossy(&elsewhere.stdout).trim(), "no");
    let delete = hub.kubectl(&[
        "-n",
        "demo",
        "auth",
        "can-i",
        "delete",
        "configmaps",
        "--as",
        "alice",
    ]);
    assert_eq!(String::from_utf8_lossy(&delete.stdout).trim(), "no");
    ok(hub.kubectl(&["-n", "demo", "delete", "configmap", "c1"]));
    assert!(
        !hub.kubectl(&["-n", "demo", "get", "configmap", "c1"])
            .status
            .success()
    );
}

#[tokio::test]
async fn kubectl_get_watch_streams_changes() {
    let hub = Hub::start().await.unwrap();
    ok(hub.kubectl(&["create", "namespace", "w"]));
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(hub.kubeconfig())
        .arg("--cache-dir")
        .arg(hub.data_dir().join("kubectl-cache"))
        .args(["-n", "w", "get", "configmaps", "-w", "--no-headers"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    ok(hub.kubectl(&[
        "-n",
        "w",
        "create",
        "configmap",
        "watched",
        "--from-literal=a=b",
    ]));
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = false;
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200))
            && line.starts_with("watched")
        {
            seen = true;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen, "kubectl get -w printed the new configmap");
}
