//! Cluster registration with real processes: one hub, three simulated clusters.
//!
//! Double opt-in, availability from the lease, deny and re-accept, an agent's limits, bootstrap
//! rights, expired tokens, a wrong CA pin, ordered deletion, and rotation at 80% of the
//! certificate's lifetime.

use std::time::{Duration, Instant};

use base64::Engine;
use garrison_api::ManagedCluster;
use garrison_e2e::{
    Agent, Hub, api_code, client_from, create_token, eventually, garrison, ok, token_kubeconfig,
};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn condition(c: &ManagedCluster, type_: &str) -> Option<(String, String)> {
    c.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|x| x.type_ == type_)
        .map(|x| (x.status.clone(), x.reason.clone()))
}

async fn cluster(hub: &kube::Client, name: &str) -> Option<ManagedCluster> {
    Api::<ManagedCluster>::all(hub.clone())
        .get_opt(name)
        .await
        .ok()?
}

async fn available(hub: &kube::Client, name: &str) -> Option<()> {
    let c = cluster(hub, name).await?;
    (condition(&c, "ManagedClusterConditionAvailable")?.0 == "True").then_some(())
}

fn csr_for(cluster: &str) -> CertificateSigningRequest {
    let id = garrison_pki::AgentIdentity::new(
        garrison_pki::ClusterName::parse(cluster).unwrap(),
        "intruder",
    )
    .unwrap();
    let pem = garrison_pki::new_request(&id.clone().into())
        .unwrap()
        .csr_pem;
    serde_json::from_value(json!({
        "metadata": {"generateName": "attack-"},
        "spec": {"signerName": "kubernetes.io/kube-apiserver-client",
            "request": base64::engine::general_purpose::STANDARD.encode(pem),
            "usages": ["digital signature", "client auth"]}
    }))
    .unwrap()
}

fn accept(hub: &Hub, names: &[&str]) -> String {
    let mut args = vec!["accept"];
    args.extend_from_slice(names);
    args.extend(["--yes", "--data-dir", hub.data_dir().to_str().unwrap()]);
    ok(garrison(&args))
}

#[tokio::test]
async fn three_clusters_join_two_are_accepted_and_every_boundary_holds() {
    let hub = Hub::start().await.unwrap();
    let admin = hub.client().await.unwrap();
    let (token, pin) = create_token(&hub, "1h");
    let lease = ["--lease-duration", "1s"];
    let mut a = Agent::join(&hub, "alpha", &token, &pin, &lease);
    let mut b = Agent::join(&hub, "bravo", &token, &pin, &lease);
    let c = Agent::join(&hub, "charlie", &token, &pin, &lease);

    // All three ask to join; none is accepted by that alone.
    for name in ["alpha", "bravo", "charlie"] {
        let mc = eventually(30, &format!("ManagedCluster {name}"), || {
            cluster(&admin, name)
        })
        .await;
        assert_eq!(mc.spec.hub_accepts_client, Some(false));
    }
    let csrs: Api<CertificateSigningRequest> = Api::all(admin.clone());
    eventually(30, "three pending CSRs", || async {
        let l = csrs.list(&ListParams::default()).await.ok()?;
        (l.items.len() >= 3).then_some(())
    })
    .await;

    // accept shows who asked and with which key, then approves.
    let out = accept(&hub, &["alpha", "bravo"]);
    assert!(out.contains("requested by:    system:bootstrap:"), "{out}");
    assert!(out.contains("key fingerprint: sha256:"), "{out}");
    assert!(
        out.contains("system:open-cluster-management:alpha:"),
        "{out}"
    );
    // accept returns once the hub has set the clusters up, so what goes into a cluster
    // namespace (an add-on, a work) can be created at once.
    for name in ["alpha", "bravo"] {
        Api::<Namespace>::all(admin.clone())
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("{name}'s namespace right after accept: {e}"));
        let mc = cluster(&admin, name).await.unwrap();
        assert_eq!(
            condition(&mc, "HubAcceptedManagedCluster").unwrap().0,
            "True"
        );
    }
    // An add-on cannot be enabled on a cluster not accepted; the error says what to do.
    let out = garrison(&[
        "addon",
        "enable",
        "managed-serviceaccount",
        "--clusters",
        "charlie",
        "--data-dir",
        hub.data_dir().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cluster charlie is not accepted") && err.contains("garrison accept charlie"),
        "{err}"
    );
    // Without --yes and without a terminal, nothing is approved.
    let refused = garrison(&[
        "accept",
        "charlie",
        "--data-dir",
        hub.data_dir().to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));

    for name in ["alpha", "bravo"] {
        // Available, and (a moment later) the unreachable taint of a new cluster removed and
        // the clock judged: the agent reports availability, the hub judges the lease.
        let mc = eventually(30, &format!("{name} Available and untainted"), || async {
            available(&admin, name).await?;
            let mc = cluster(&admin, name).await?;
            condition(&mc, "ManagedClusterConditionClockSynced")?;
            mc.spec.taints.is_empty().then_some(mc)
        })
        .await;
        assert_eq!(
            condition(&mc, "HubAcceptedManagedCluster").unwrap().0,
            "True"
        );
        assert_eq!(condition(&mc, "ManagedClusterJoined").unwrap().0, "True");
        assert_eq!(
            condition(&mc, "ManagedClusterConditionClockSynced")
                .unwrap()
                .0,
            "True"
        );
        let status = mc.status.unwrap();
        assert_eq!(status.capacity["cpu"].0, "12");
        assert_eq!(status.allocatable["memory"].0, "45Gi");
        assert!(status.version.unwrap().kubernetes.unwrap().starts_with('v'));
        assert_eq!(status.cluster_claims[0].name.as_deref(), Some("id.k8s.io"));
        // What acceptance created.
        Api::<Namespace>::all(admin.clone())
            .get(name)
            .await
            .unwrap();
        Api::<ClusterRole>::all(admin.clone())
            .get(&format!("open-cluster-management:managedcluster:{name}"))
            .await
            .unwrap();
        Api::<Lease>::namespaced(admin.clone(), name)
            .get("managed-cluster-lease")
            .await
            .unwrap();
    }
    // charlie stays unaccepted and has no certificate.
    let ch = cluster(&admin, "charlie").await.unwrap();
    assert_eq!(ch.spec.hub_accepts_client, Some(false));
    assert!(condition(&ch, "ManagedClusterConditionAvailable").is_none());
    assert!(c.kubeconfig(&hub).is_none());
    let info = ok(garrison(&[
        "get",
        "klusterlet-info",
        "--data-dir",
        c.dir.to_str().unwrap(),
    ]));
    assert!(
        info.contains("waiting for `garrison accept charlie`"),
        "{info}"
    );
    let table = ok(garrison(&[
        "get",
        "clusters",
        "--data-dir",
        hub.data_dir().to_str().unwrap(),
    ]));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("alpha") && l.contains("True")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("charlie") && l.contains("false")),
        "{table}"
    );

    // The key never left the spoke, and it is owner-only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(a.dir.join("client.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The unaccepted cluster can do nothing beyond its bootstrap rights.
    let boot = client_from(&token_kubeconfig(&hub, &token).unwrap())
        .await
        .unwrap();
    let e = Api::<Secret>::namespaced(boot.clone(), "kube-system")
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), 403);
    let e = Api::<ConfigMap>::namespaced(boot.clone(), "alpha")
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), 403);
    let e = Api::<ManagedCluster>::all(boot.clone())
        .patch(
            "charlie",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hubAcceptsClient": true}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), 403);
    let pending = csrs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|x| {
            x.status
                .as_ref()
                .and_then(|s| s.certificate.as_ref())
                .is_none()
        })
        .expect("charlie's pending CSR");
    let e = Api::<CertificateSigningRequest>::all(boot.clone())
        .patch_approval(&pending.metadata.name.clone().unwrap(), &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [{"type": "Approved", "status": "True", "reason": "Self"}]}})))
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), 403);
    let evil: ManagedCluster = serde_json::from_value(json!({"apiVersion": "cluster.open-cluster-management.io/v1",
        "kind": "ManagedCluster", "metadata": {"name": "evil"}, "spec": {"hubAcceptsClient": true}})).unwrap();
    let e = Api::<ManagedCluster>::all(boot.clone())
        .create(&PostParams::default(), &evil)
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), 403, "{e}");

    // Cluster alpha's agent, with its own certificate, stays in its lane.
    let alpha = client_from(&a.kubeconfig(&hub).unwrap()).await.unwrap();
    Api::<Lease>::namespaced(alpha.clone(), "alpha")
        .get("managed-cluster-lease")
        .await
        .unwrap();
    let e = Api::<ConfigMap>::namespaced(alpha.clone(), "bravo")
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), 403);
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    let e = Api::<ConfigMap>::namespaced(alpha.clone(), "bravo")
        .create(&PostParams::default(), &cm)
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), 403);
    let e = Api::<Lease>::namespaced(alpha.clone(), "bravo")
        .get("managed-cluster-lease")
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), 403);
    let e = Api::<CertificateSigningRequest>::all(alpha.clone())
        .patch_approval(&pending.metadata.name.clone().unwrap(), &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [{"type": "Approved", "status": "True", "reason": "Peer"}]}})))
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), 403);
    let e = Api::<CertificateSigningRequest>::all(alpha.clone())
        .create(&PostParams::default(), &csr_for("bravo"))
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), 403);
    assert!(
        e.to_string().contains("\"bravo\""),
        "the denial names the cluster: {e}"
    );
    let e = Api::<ManagedCluster>::all(alpha.clone())
        .patch(
            "charlie",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hubAcceptsClient": true}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), 403);
    // Upstream's RBAC lets an agent update (not patch) its own ManagedCluster; admission keeps
    // acceptance out of its reach.
    let mut own = Api::<ManagedCluster>::all(alpha.clone())
        .get("alpha")
        .await
        .unwrap();
    own.spec.hub_accepts_client = Some(false);
    own.metadata.managed_fields = None;
    let e = Api::<ManagedCluster>::all(alpha.clone())
        .replace("alpha", &PostParams::default(), &own)
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), 403);
    assert!(e.to_string().contains("HubAcceptsClient"), "{e}");

    // A stopped agent: Unknown after 5 missed leases, and tainted unreachable.
    b.kill();
    let stopped = Instant::now();
    let mc = eventually(30, "bravo Unknown", || async {
        let mc = cluster(&admin, "bravo").await?;
        (condition(&mc, "ManagedClusterConditionAvailable")?.0 == "Unknown").then_some(mc)
    })
    .await;
    let grace = stopped.elapsed();
    assert!(
        grace >= Duration::from_secs(3),
        "Unknown too early: {grace:?}"
    );
    assert_eq!(
        condition(&mc, "ManagedClusterConditionAvailable")
            .unwrap()
            .1,
        "ManagedClusterLeaseUpdateStopped"
    );
    eventually(10, "bravo tainted unreachable", || async {
        let mc = cluster(&admin, "bravo").await?;
        mc.spec
            .taints
            .iter()
            .any(|t| t.key == "cluster.open-cluster-management.io/unreachable")
            .then_some(())
    })
    .await;
    // Back again: Available, untainted.
    b.restart(&hub);
    eventually(30, "bravo Available again", || async {
        let mc = cluster(&admin, "bravo").await?;
        (condition(&mc, "ManagedClusterConditionAvailable")?.0 == "True"
            && mc.spec.taints.is_empty())
        .then_some(())
    })
    .await;

    // deny: alpha's certificate is refused within seconds; accept restores access.
    let alpha_kc = a.kubeconfig(&hub).unwrap();
    ok(garrison(&[
        "deny",
        "alpha",
        "--data-dir",
        hub.data_dir().to_str().unwrap(),
    ]));
    let denied = Instant::now();
    let alpha = client_from(&alpha_kc).await.unwrap();
    eventually(5, "alpha's certificate refused", || async {
        let e = Api::<Lease>::namespaced(alpha.clone(), "alpha")
            .get("managed-cluster-lease")
            .await
            .err()?;
        (api_code(&e) == 401).then_some(())
    })
    .await;
    eprintln!("deny took effect after {:?}", denied.elapsed());
    eventually(10, "alpha's RBAC removed", || async {
        Api::<ClusterRole>::all(admin.clone())
            .get_opt("open-cluster-management:managedcluster:alpha")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    // The controller removes the RBAC, then records the denial.
    eventually(10, "alpha's denial recorded", || async {
        let mc = cluster(&admin, "alpha").await?;
        (condition(&mc, "HubAcceptedManagedCluster")?
            == ("False".into(), "HubClusterAdminDenied".into()))
            .then_some(())
    })
    .await;
    accept(&hub, &["alpha"]);
    eventually(20, "alpha's agent working again", || async {
        let kc = a.kubeconfig(&hub)?;
        let cl = client_from(&kc).await.ok()?;
        Api::<Lease>::namespaced(cl, "alpha")
            .get("managed-cluster-lease")
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    eventually(30, "alpha Available after re-acceptance", || {
        available(&admin, "alpha")
    })
    .await;

    // Deleting a cluster: its namespace, then its RBAC, then the object.
    b.kill();
    Api::<ManagedCluster>::all(admin.clone())
        .delete("bravo", &Default::default())
        .await
        .unwrap();
    eventually(30, "bravo gone", || async {
        let gone = cluster(&admin, "bravo").await.is_none()
            && Api::<Namespace>::all(admin.clone())
                .get_opt("bravo")
                .await
                .ok()?
                .is_none()
            && Api::<ClusterRole>::all(admin.clone())
                .get_opt("open-cluster-management:managedcluster:bravo")
                .await
                .ok()?
                .is_none();
        gone.then_some(())
    })
    .await;
    a.kill();
}

#[tokio::test]
async fn an_expired_token_and_a_wrong_pin_are_refused_before_anything_is_granted() {
    let hub = Hub::start().await.unwrap();
    let admin = hub.client().await.unwrap();
    let dir = hub.data_dir().to_str().unwrap().to_string();
    let url = format!("https://127.0.0.1:{}", hub.port);
    // An expired token, stored as the hub stores tokens.
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "bootstrap-token-old123", "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "data": {"token-id": b64("old123"), "token-secret": b64("0123456789abcdef"),
            "expiration": b64("2020-01-01T00:00:00Z"), "usage-bootstrap-authentication": b64("true"),
            "auth-extra-groups": b64("system:bootstrappers:managedcluster")}
    }))
    .unwrap();
    Api::<Secret>::namespaced(admin.clone(), "kube-system")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let (_, pin) = create_token(&hub, "1h");
    let agent_dir = format!("{dir}/expired-agent");
    let out = garrison(&[
        "join",
        "--hub",
        &url,
        "--token",
        "old123.0123456789abcdef",
        "--ca-cert-hash",
        &pin,
        "--cluster-name",
        "late",
        "--data-dir",
        &agent_dir,
        "--simulated",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    // Discovery stops it: the hub signs cluster-info only for live tokens, so nothing is sent.
    assert!(err.contains("has not signed its cluster-info"), "{err}");
    assert!(err.lines().last().unwrap().starts_with("error: "), "{err}");
    assert!(cluster(&admin, "late").await.is_none());

    // A wrong pin: join fails before any request, so the token never reaches the hub.
    let (token, _) = create_token(&hub, "1h");
    let wrong = format!("sha256:{}", "0".repeat(64));
    let out = garrison(&[
        "join",
        "--hub",
        &url,
        "--token",
        &token,
        "--ca-cert-hash",
        &wrong,
        "--cluster-name",
        "spoofed",
        "--data-dir",
        &format!("{dir}/pin-agent"),
        "--simulated",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not match --ca-cert-hash") && err.contains("nothing was sent"),
        "{err}"
    );
    let token_user = format!("system:bootstrap:{}", &token[..6]);
    let audit = std::fs::read_to_string(hub.data_dir().join("audit.log")).unwrap();
    assert!(
        !audit.contains(&token_user),
        "the token was used despite the wrong pin"
    );
    assert!(!std::path::Path::new(&format!("{dir}/pin-agent/bootstrap.token")).exists());

    // Bad input gets one-line errors and exit code 1 or 2.
    for (args, needle) in [
        (vec!["--ca-cert-hash", "md5:abc"], "sha256:"),
        (vec!["--ca-cert-hash", &pin, "--token", "nope"], "--token"),
    ] {
        let mut full = vec![
            "join",
            "--hub",
            &url,
            "--cluster-name",
            "x",
            "--data-dir",
            "unused",
            "--simulated",
        ];
        if !args.contains(&"--token") {
            full.extend(["--token", &token]);
        }
        full.extend(args.iter().copied());
        let out = garrison(&full);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = garrison(&[
        "join",
        "--hub",
        &url,
        "--token",
        &token,
        "--ca-cert-hash",
        &pin,
        "--cluster-name",
        "Not_A_Label",
        "--data-dir",
        "unused",
        "--simulated",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cluster-name"));
    let out = garrison(&["accept", "nobody", "--yes", "--data-dir", &dir]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no cluster named \"nobody\""));
    let out = garrison(&["hub", "--data-dir", &dir, "--cert-lifetime", "48h"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn certificates_rotate_at_about_80_percent_and_the_agent_keeps_working() {
    let hub = Hub::start_with(&["--cert-lifetime", "20s"]).await.unwrap();
    let admin = hub.client().await.unwrap();
    let (token, pin) = create_token(&hub, "1h");
    let mut a = Agent::join(&hub, "rotor", &token, &pin, &["--lease-duration", "1s"]);
    eventually(30, "rotor asks to join", || cluster(&admin, "rotor")).await;
    accept(&hub, &["rotor"]);
    eventually(30, "rotor Available", || available(&admin, "rotor")).await;
    let read = |dir: &std::path::Path| {
        let pem = std::fs::read_to_string(dir.join("client.pem")).ok()?;
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
        let cert = p.parse_x509().ok()?;
        Some((
            cert.raw_serial_as_string(),
            cert.validity().not_before.timestamp(),
            cert.validity().not_after.timestamp(),
        ))
    };
    let (first_serial, nb, na) = read(&a.dir).unwrap();
    let rotated = eventually(30, "a rotated certificate", || async {
        let (s, nb2, na2) = read(&a.dir)?;
        (s != first_serial).then_some((nb2, na2))
    })
    .await;
    let at = jiff::Timestamp::now().as_second();
    let share = (at - nb) as f64 / (na - nb) as f64;
    eprintln!("rotated at {:.0}% of the lifetime", share * 100.0);
    assert!(
        (0.70..=0.90).contains(&share),
        "rotated at {share:.2} of the lifetime"
    );
    // Past the old certificate's expiry the agent still renews its lease: it uses the new one.
    tokio::time::sleep(Duration::from_secs((na - at + 2).max(0) as u64)).await;
    let leases: Api<Lease> = Api::namespaced(admin.clone(), "rotor");
    let renewed = |l: Lease| {
        l.spec
            .and_then(|s| s.renew_time)
            .map(|t| t.0.as_second())
            .unwrap_or(0)
    };
    eventually(
        10,
        "a lease renewal after the old certificate expired",
        || async {
            let l = leases.get("managed-cluster-lease").await.ok()?;
            (renewed(l) > na).then_some(())
        },
    )
    .await;
    assert!(rotated.1 > na, "the new certificate outlives the old one");
    let mc = cluster(&admin, "rotor").await.unwrap();
    assert_eq!(
        condition(&mc, "ManagedClusterConditionAvailable")
            .unwrap()
            .0,
        "True"
    );
    a.kill();
}

/// Regression: `garrison accept` approved every pending CSR naming the cluster, so an impostor
/// holding the shared bootstrap token got a certificate for the cluster alongside the agent.
#[tokio::test]
async fn accept_approves_only_the_request_the_admin_chose() {
    let hub = Hub::start().await.unwrap();
    let admin = hub.client().await.unwrap();
    let (token, pin) = create_token(&hub, "1h");
    let agent = Agent::join(&hub, "victim", &token, &pin, &["--lease-duration", "1s"]);
    let pending_file = agent.dir.join("pending.json");
    let legit = eventually(30, "the agent's pending CSR", || async {
        let raw = std::fs::read(&pending_file).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
        v["csr"].as_str().map(str::to_string)
    })
    .await;
    // The impostor asks for the same cluster with the same bootstrap token.
    let as_bootstrap = client_from(&token_kubeconfig(&hub, &token).unwrap())
        .await
        .unwrap();
    let forged = Api::<CertificateSigningRequest>::all(as_bootstrap)
        .create(&PostParams::default(), &csr_for("victim"))
        .await
        .unwrap();
    let forged = forged.metadata.name.unwrap();

    let dir = hub.data_dir().to_str().unwrap().to_string();
    let refused = garrison(&["accept", "victim", "--yes", "--data-dir", &dir]);
    let stdout = String::from_utf8_lossy(&refused.stdout);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "accepted both: {stdout}");
    assert!(
        stdout.contains(&legit) && stdout.contains(&forged),
        "{stdout}"
    );
    assert!(stderr.contains("--csr NAME"), "{stderr}");
    let csrs: Api<CertificateSigningRequest> = Api::all(admin.clone());
    for name in [&legit, &forged] {
        let c = csrs.get(name).await.unwrap();
        assert!(
            c.status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .is_empty(),
            "{name} was decided without the admin's choice"
        );
    }
    let mc = cluster(&admin, "victim").await.unwrap();
    assert_eq!(mc.spec.hub_accepts_client, Some(false));

    // A request that was not shown cannot be chosen.
    let bogus = garrison(&[
        "accept",
        "victim",
        "--yes",
        "--csr",
        "csr-nope",
        "--data-dir",
        &dir,
    ]);
    assert!(!bogus.status.success());
    assert!(
        String::from_utf8_lossy(&bogus.stderr).contains("is not a pending certificate request"),
        "{}",
        String::from_utf8_lossy(&bogus.stderr)
    );

    // The admin compares fingerprints and picks the agent's request.
    let info = ok(garrison(&[
        "get",
        "klusterlet-info",
        "--data-dir",
        agent.dir.to_str().unwrap(),
    ]));
    let agent_fp = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("key fingerprint: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no fingerprint in {info}"))
        .to_string();
    let block = stdout
        .split("CSR ")
        .find(|b| b.starts_with(&legit))
        .unwrap();
    assert!(block.contains(&agent_fp), "{block} vs {agent_fp}");
    let out = ok(garrison(&[
        "accept",
        "victim",
        "--yes",
        "--csr",
        &legit,
        "--data-dir",
        &dir,
    ]));
    assert!(out.contains(&format!("denied CSR {forged}")), "{out}");
    let forged_csr = csrs.get(&forged).await.unwrap();
    let conds = forged_csr.status.unwrap().conditions.unwrap();
    assert!(conds.iter().any(|c| c.type_ == "Denied"));
    assert!(!conds.iter().any(|c| c.type_ == "Approved"));
    eventually(30, "victim Available", || available(&admin, "victim")).await;
    assert!(
        forged_csr_has_no_certificate(&csrs, &forged).await,
        "the impostor got a certificate"
    );
}

async fn forged_csr_has_no_certificate(api: &Api<CertificateSigningRequest>, name: &str) -> bool {
    api.get(name)
        .await
        .unwrap()
        .status
        .and_then(|s| s.certificate)
        .is_none()
}

/// How long a watch opened with `kubeconfig` on its cluster's ManifestWorks stays open, from
/// now; the server closes it at the latest after `limit`.
async fn watch_lifetime(kubeconfig: &std::path::Path, ns: &str, limit: Duration) -> Duration {
    use futures::StreamExt;
    let client = client_from(kubeconfig).await.unwrap();
    let works: Api<garrison_api::work::v1::ManifestWork> = Api::namespaced(client, ns);
    let started = Instant::now();
    let mut stream = works
        .watch(&kube::api::WatchParams::default().timeout(290), "0")
        .await
        .unwrap()
        .boxed();
    let _ = tokio::time::timeout(limit, async {
        while let Some(ev) = stream.next().await {
            if ev.is_err() {
                break;
            }
        }
    })
    .await;
    started.elapsed()
}

/// Regression: a watch opened with a cluster's certificate kept streaming after `garrison deny`
/// and after the certificate expired, since only new requests were checked.
#[tokio::test]
async fn deny_and_expiry_close_connections_opened_before() {
    let hub = Hub::start_with(&["--cert-lifetime", "20s"]).await.unwrap();
    let admin = hub.client().await.unwrap();
    let (token, pin) = create_token(&hub, "1h");
    let lease = ["--lease-duration", "1s"];
    let agents = [
        Agent::join(&hub, "denied", &token, &pin, &lease),
        Agent::join(&hub, "expiring", &token, &pin, &lease),
    ];
    for a in &agents {
        eventually(30, "the cluster asks to join", || cluster(&admin, &a.name)).await;
    }
    accept(&hub, &["denied", "expiring"]);
    for a in &agents {
        eventually(30, "the agent's certificate", || async {
            a.kubeconfig(&hub)
        })
        .await;
    }
    let kubeconfigs: Vec<_> = agents
        .iter()
        .map(|a| {
            let kc = a.kubeconfig(&hub).unwrap();
            // A copy: the agent rewrites its own as it rotates.
            let copy = kc.with_extension("first");
            std::fs::copy(&kc, &copy).unwrap();
            copy
        })
        .collect();
    // The certificate can arrive a moment before the hub grants the accepted cluster its
    // RBAC: both watches below must open.
    for (kc, a) in kubeconfigs.iter().zip(&agents) {
        eventually(30, "the cluster may watch its works", || async {
            let client = client_from(kc).await.ok()?;
            let works: Api<garrison_api::work::v1::ManifestWork> = Api::namespaced(client, &a.name);
            works.list(&Default::default()).await.ok()
        })
        .await;
    }
    let not_after = {
        let pem = std::fs::read_to_string(agents[1].dir.join("client.pem")).unwrap();
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        p.parse_x509().unwrap().validity().not_after.timestamp()
    };

    let denied_watch = tokio::spawn({
        let kc = kubeconfigs[0].clone();
        async move { watch_lifetime(&kc, "denied", Duration::from_secs(30)).await }
    });
    let expiring_watch = tokio::spawn({
        let kc = kubeconfigs[1].clone();
        async move { watch_lifetime(&kc, "expiring", Duration::from_secs(60)).await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    ok(garrison(&[
        "deny",
        "denied",
        "--data-dir",
        hub.data_dir().to_str().unwrap(),
    ]));
    let open_for = denied_watch.await.unwrap();
    eprintln!("the denied cluster's watch was closed after {open_for:?}");
    assert!(
        open_for < Duration::from_secs(5),
        "the watch outlived the deny: {open_for:?}"
    );

    let open_for = expiring_watch.await.unwrap();
    let closed_at = jiff::Timestamp::now().as_second();
    eprintln!(
        "the watch closed {}s after its certificate expired",
        closed_at - not_after
    );
    assert!(
        (not_after - 1..=not_after + 3).contains(&closed_at),
        "watch closed at {closed_at}, certificate expired at {not_after} (open {open_for:?})"
    );
}

/// The renewal requests the agent of `cluster` made with its certificate, oldest first.
async fn renewals(
    api: &Api<CertificateSigningRequest>,
    cluster: &str,
) -> Vec<CertificateSigningRequest> {
    let prefix = format!("system:open-cluster-management:{cluster}:");
    let mut out: Vec<_> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|c| {
            c.spec
                .username
                .as_deref()
                .is_some_and(|u| u.starts_with(&prefix))
        })
        .collect();
    out.sort_by_key(|c| c.metadata.creation_timestamp.clone().map(|t| t.0));
    out
}

/// Regressions: the agent stopped renewing its lease while it waited for a renewal to be
/// approved, so a slow approver made a healthy cluster Unknown; and after a denied renewal it
/// asked again every two seconds.
#[tokio::test]
async fn a_pending_or_denied_renewal_never_stops_the_lease() {
    let hub = Hub::start_with(&["--cert-lifetime", "90s", "--renewal-approval", "manual"])
        .await
        .unwrap();
    let admin = hub.client().await.unwrap();
    let (token, pin) = create_token(&hub, "1h");
    let _agent = Agent::join(&hub, "patient", &token, &pin, &["--lease-duration", "1s"]);
    eventually(30, "patient asks to join", || cluster(&admin, "patient")).await;
    accept(&hub, &["patient"]);
    eventually(30, "patient Available", || available(&admin, "patient")).await;
    let csrs: Api<CertificateSigningRequest> = Api::all(admin.clone());
    // Rotation starts between 75% and 80% of the 90 s lifetime; nobody approves it.
    let first = eventually(90, "a renewal request", || async {
        renewals(&csrs, "patient").await.into_iter().next()
    })
    .await;
    let leases: Api<Lease> = Api::namespaced(admin.clone(), "patient");
    let renew_time = || async {
        leases
            .get("managed-cluster-lease")
            .await
            .unwrap()
            .spec
            .and_then(|s| s.renew_time)
            .map(|t| t.0)
            .unwrap()
    };
    // While the renewal waits, the lease is renewed every second and the cluster stays Available
    // (five missed periods would make it Unknown).
    let mut last = renew_time().await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = renew_time().await;
        assert!(
            now > last,
            "the lease was not renewed while the renewal waited"
        );
        last = now;
        assert!(
            available(&admin, "patient").await.is_some(),
            "patient not Available"
        );
    }
    let still = csrs.get(&first.name_any()).await.unwrap();
    assert!(still.status.and_then(|s| s.certificate).is_none());

    // Deny every renewal for 14 s: the agent asks again with a growing delay (about 2, 4 and
    // 8 s), not every two seconds, and its lease goes on.
    let deny_from = Instant::now();
    let mut denied = std::collections::BTreeSet::new();
    while deny_from.elapsed() < Duration::from_secs(14) {
        for c in renewals(&csrs, "patient").await {
            let name = c.name_any();
            if denied.insert(name.clone()) {
                ok(hub.kubectl(&["certificate", "deny", &name]));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("{} renewal requests in 14 s of denials", denied.len());
    assert!(
        denied.len() <= 4,
        "the agent asked {} times in 14 s",
        denied.len()
    );
    assert!(denied.len() >= 2, "the agent stopped asking");
    let now = renew_time().await;
    assert!(now > last, "the lease stopped during denials");
    assert!(available(&admin, "patient").await.is_some());
}

#[tokio::test]
async fn expired_bootstrap_tokens_are_deleted() {
    let hub = Hub::start().await.unwrap();
    let admin = hub.client().await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "kube-system");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3);
    for (id, exp) in [
        ("soonxx", soon.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
        ("laterx", "2999-01-01T00:00:00Z".to_string()),
    ] {
        let s = json!({"metadata": {"name": format!("bootstrap-token-{id}")}, "type": "bootstrap.kubernetes.io/token",
            "data": {"token-id": b64(id), "token-secret": b64("0123456789abcdef"), "expiration": b64(&exp), "usage-bootstrap-authentication": b64("true")}});
        secrets
            .create(&PostParams::default(), &serde_json::from_value(s).unwrap())
            .await
            .unwrap();
    }
    eventually(15, "the expired token deleted", || async {
        secrets
            .get_opt("bootstrap-token-soonxx")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        secrets
            .get_opt("bootstrap-token-laterx")
            .await
            .unwrap()
            .is_some(),
        "a valid token was deleted"
    );
}
