//! Add-ons end to end: the managed-serviceaccount add-on built into the agent registers with
//! its own certificate, a ManagedServiceAccount's token comes back to the hub and works on the
//! managed cluster with exactly the RBAC a ClusterPermission gives it; and add-on certificates
//! are issued only for enabled add-ons of accepted clusters, and reach nothing else.

use std::path::{Path, PathBuf};

use garrison_api::{ManagedClusterAddOn, ManagedServiceAccount};
use garrison_e2e::{
    Agent, Hub, api_code, client_from, eventually, gone, join_and_accept, kubectl_with, ok,
};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const MCA_YAML: &str = r#"
apiVersion: addon.open-cluster-management.io/v1alpha1
kind: ManagedClusterAddOn
metadata:
  name: managed-serviceaccount
  namespace: c1
spec:
  installNamespace: open-cluster-management-agent-addon
"#;

/// The README's example, a ManagedServiceAccount and a ClusterPermission, for cluster c1.
fn example() -> String {
    std::fs::read_to_string(garrison_e2e::workspace().join("examples/managed-serviceaccount.yaml"))
        .unwrap()
        .replace("namespace: cluster1", "namespace: c1")
}

fn apply(hub: &Hub, yaml: &str) {
    let file = hub.data_dir().join(format!("apply-{}.yaml", yaml.len()));
    std::fs::write(&file, yaml).unwrap();
    ok(hub.kubectl(&["apply", "-f", file.to_str().unwrap()]));
}

/// A kubeconfig for the agent's simulated cluster that authenticates with `token`.
fn spoke_token_kubeconfig(agent: &Agent, token: &str, file: &str) -> PathBuf {
    let admin = agent.dir.join("simulated-cluster.kubeconfig");
    let mut kc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(admin).unwrap()).unwrap();
    let mut user = serde_yaml::Mapping::new();
    user.insert("token".into(), token.into());
    kc["users"][0]["user"] = user.into();
    let path = agent.dir.join(file);
    std::fs::write(&path, serde_yaml::to_string(&kc).unwrap()).unwrap();
    path
}

fn spoke_kubectl(agent: &Agent, args: &[&str]) -> std::process::Output {
    kubectl_with(
        &agent.dir.join("simulated-cluster.kubeconfig"),
        &agent.dir.join("kubectl-cache"),
        args,
    )
}

fn can_i(agent: &Agent, kc: &Path, args: &[&str]) -> String {
    let mut a = vec!["auth", "can-i"];
    a.extend_from_slice(args);
    let out = kubectl_with(kc, &agent.dir.join("kubectl-cache-token"), &a);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn token_of(hub: &Hub) -> String {
    let admin = hub.client().await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(admin, "c1");
    eventually(60, "the token Secret on the hub", || async {
        let s = secrets.get_opt("reader").await.ok()??;
        let t = s.data?.get("token")?.0.clone();
        (!t.is_empty()).then(|| String::from_utf8(t).unwrap())
    })
    .await
}

async fn available(hub: &Hub) {
    let admin = hub.client().await.unwrap();
    let mcas: Api<ManagedClusterAddOn> = Api::namespaced(admin, "c1");
    eventually(60, "the add-on to be Available", || async {
        let m = mcas.get("managed-serviceaccount").await.ok()?;
        m.status?
            .conditions
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "True")
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_cluster_permission_grants_a_managed_service_account_exactly_its_rbac() {
    let hub = Hub::start().await.unwrap();
    let agents = join_and_accept(&hub, &["c1"], &[]).await;
    let agent = &agents[0];
    apply(&hub, MCA_YAML);
    available(&hub).await;

    // The add-on's hub credentials live on the managed cluster, in upstream's shape.
    let spoke = agent.spoke().await;
    let secret = Api::<Secret>::namespaced(spoke.clone(), "open-cluster-management-agent-addon")
        .get("managed-serviceaccount-hub-kubeconfig")
        .await
        .unwrap();
    let data = secret.data.unwrap();
    for key in [
        "tls.crt",
        "tls.key",
        "kubeconfig",
        "cluster-name",
        "agent-name",
    ] {
        assert!(data.contains_key(key), "{key}");
    }
    let info =
        garrison_pki::cert_info(&String::from_utf8(data["tls.crt"].0.clone()).unwrap()).unwrap();
    assert_eq!(
        info.identity.user(),
        "system:open-cluster-management:cluster:c1:addon:managed-serviceaccount:agent:managed-serviceaccount"
    );

    ok(spoke_kubectl(agent, &["create", "namespace", "app"]));
    apply(&hub, &example());
    let token = token_of(&hub).await;
    let admin = hub.client().await.unwrap();
    let msas: Api<ManagedServiceAccount> = Api::namespaced(admin.clone(), "c1");
    // The agent writes the token Secret first and the status after it.
    let st = eventually(30, "SecretCreated and TokenReported on the MSA", || async {
        let st = msas.get("reader").await.ok()?.status?;
        ["SecretCreated", "TokenReported"]
            .iter()
            .all(|ty| {
                st.conditions
                    .iter()
                    .any(|c| c.type_ == *ty && c.status == "True")
            })
            .then_some(st)
    })
    .await;
    assert_eq!(st.token_secret_ref.unwrap().name, "reader");
    let sa =
        Api::<ServiceAccount>::namespaced(spoke.clone(), "open-cluster-management-agent-addon")
            .get("reader")
            .await
            .unwrap();
    assert_eq!(
        sa.metadata.labels.unwrap()["authentication.open-cluster-management.io/is-managed-serviceaccount"],
        "true"
    );

    let kc = spoke_token_kubeconfig(agent, &token, "reader.kubeconfig");
    eventually(60, "the Role and RoleBinding on the cluster", || async {
        (can_i(agent, &kc, &["list", "configmaps", "-n", "app"]) == "yes").then_some(())
    })
    .await;
    assert_eq!(
        can_i(agent, &kc, &["list", "configmaps", "-n", "kube-system"]),
        "no"
    );
    assert_eq!(
        can_i(agent, &kc, &["delete", "configmaps", "-n", "app"]),
        "no"
    );
    let cp = ok(hub.kubectl(&[
        "get",
        "clusterpermission",
        "reader-permission",
        "-n",
        "c1",
        "-o",
        "json",
    ]));
    let cp: serde_json::Value = serde_json::from_str(&cp).unwrap();
    let work = format!(
        "reader-permission-{}",
        &cp["metadata"]["uid"].as_str().unwrap()[..5]
    );
    ok(hub.kubectl(&["get", "manifestwork", &work, "-n", "c1"]));

    // Deleting the ClusterPermission takes the RBAC away.
    ok(hub.kubectl(&[
        "delete",
        "clusterpermission",
        "reader-permission",
        "-n",
        "c1",
    ]));
    eventually(60, "the RBAC to be removed from the cluster", || async {
        (can_i(agent, &kc, &["list", "configmaps", "-n", "app"]) == "no").then_some(())
    })
    .await;

    // Deleting the ManagedServiceAccount removes its ServiceAccount, and so its token.
    msas.delete("reader", &DeleteParams::default())
        .await
        .unwrap();
    let sas =
        Api::<ServiceAccount>::namespaced(spoke.clone(), "open-cluster-management-agent-addon");
    gone(60, "the ServiceAccount to be removed", &sas, "reader").await;
    let c = client_from(&kc).await.unwrap();
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(c, "app");
    assert_eq!(
        api_code(&cms.list(&Default::default()).await.unwrap_err()),
        401
    );

    // Disabling the add-on removes its credentials from the cluster.
    ok(hub.kubectl(&[
        "delete",
        "managedclusteraddon",
        "managed-serviceaccount",
        "-n",
        "c1",
    ]));
    let secrets = Api::<Secret>::namespaced(spoke.clone(), "open-cluster-management-agent-addon");
    gone(
        60,
        "the add-on's hub credentials to be removed",
        &secrets,
        "managed-serviceaccount-hub-kubeconfig",
    )
    .await;
}

/// Writes a CSR for `user`/`groups` as `requester` (a kubeconfig), labelled for `cluster` and
/// `addon`, and returns its name.
async fn request(
    client: &kube::Client,
    cluster: &str,
    addon: &str,
    identity: &garrison_pki::Identity,
) -> Result<String, kube::Error> {
    let req = garrison_pki::new_request(identity).unwrap();
    submit(
        client,
        cluster,
        addon,
        "kubernetes.io/kube-apiserver-client",
        &req.csr_pem,
    )
    .await
}

/// Writes an add-on CSR for `signer` as `client`, labelled for `cluster` and `addon`, and
/// returns its name.
async fn submit(
    client: &kube::Client,
    cluster: &str,
    addon: &str,
    signer: &str,
    csr_pem: &str,
) -> Result<String, kube::Error> {
    use base64::Engine;
    let csr: CertificateSigningRequest = serde_json::from_value(json!({
        "metadata": {"generateName": format!("addon-{cluster}-{addon}-"),
            "labels": {"open-cluster-management.io/cluster-name": cluster,
                       "open-cluster-management.io/addon-name": addon}},
        "spec": {"signerName": signer,
            "request": base64::engine::general_purpose::STANDARD.encode(csr_pem),
            "usages": ["digital signature", "key encipherment", "client auth"]}
    }))
    .unwrap();
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    Ok(api
        .create(&PostParams::default(), &csr)
        .await?
        .metadata
        .name
        .unwrap())
}

/// Waits for the CSR's decision, checks it is a denial, and returns its reason.
async fn denied(hub: &Hub, name: &str) -> String {
    let (ty, why) = decision(hub, name).await;
    assert_eq!(ty, "Denied", "{why}");
    why
}

async fn decision(hub: &Hub, name: &str) -> (String, String) {
    let admin = hub.client().await.unwrap();
    let api: Api<CertificateSigningRequest> = Api::all(admin);
    eventually(30, "a decision on the CSR", || async {
        let c = api.get(name).await.ok()?;
        let cond = c
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Approved" || c.type_ == "Denied")?;
        Some((cond.type_, cond.message.unwrap_or_default()))
    })
    .await
}

fn addon_id(cluster: &str, addon: &str) -> garrison_pki::Identity {
    garrison_pki::AddonIdentity::new(
        garrison_pki::ClusterName::parse(cluster).unwrap(),
        addon,
        addon,
    )
    .unwrap()
    .into()
}

#[tokio::test]
async fn add_on_certificates_go_only_to_enabled_add_ons_of_accepted_clusters_and_reach_nothing_else()
 {
    let hub = Hub::start().await.unwrap();
    let agents = join_and_accept(&hub, &["c1", "c2"], &[]).await;
    let c1 = &agents[0];
    apply(&hub, MCA_YAML);
    available(&hub).await;
    let agent_kc = eventually(30, "the agent's certificate", || async {
        c1.kubeconfig(&hub)
    })
    .await;
    let agent = client_from(&agent_kc).await.unwrap();

    // The attacker holds cluster c1's agent certificate.
    // 1. An add-on identity of another cluster: refused at admission.
    let err = request(
        &agent,
        "c2",
        "managed-serviceaccount",
        &addon_id("c2", "managed-serviceaccount"),
    )
    .await
    .unwrap_err();
    assert_eq!(api_code(&err), 403);
    // 2. An add-on that is not enabled on c1: denied, with the reason recorded.
    let name = request(&agent, "c1", "policy", &addon_id("c1", "policy"))
        .await
        .unwrap();
    let why = denied(&hub, &name).await;
    assert!(why.contains("not registered on the hub"), "{why}");
    // 3. Labels that lie about the add-on: denied.
    let name = request(
        &agent,
        "c1",
        "other",
        &addon_id("c1", "managed-serviceaccount"),
    )
    .await
    .unwrap();
    assert_eq!(decision(&hub, &name).await.0, "Denied");
    // 4. The enabled add-on's identity: approved (the agent asks exactly this).
    let name = request(
        &agent,
        "c1",
        "managed-serviceaccount",
        &addon_id("c1", "managed-serviceaccount"),
    )
    .await
    .unwrap();
    assert_eq!(decision(&hub, &name).await.0, "Approved");

    // 5. A cluster not accepted yet: its add-on requests are denied.
    ok(hub.kubectl(&["create", "namespace", "c3"]));
    let c3_mca = MCA_YAML.replace("namespace: c1", "namespace: c3");
    apply(&hub, &c3_mca);
    let (token, pin) = garrison_e2e::create_token(&hub, "1h");
    let _c3 = Agent::join(&hub, "c3", &token, &pin, &[]);
    let admin = hub.client().await.unwrap();
    let boot_user = eventually(30, "c3 to ask to join", || async {
        let l = Api::<CertificateSigningRequest>::all(admin.clone())
            .list(
                &kube::api::ListParams::default()
                    .labels("open-cluster-management.io/cluster-name=c3"),
            )
            .await
            .ok()?;
        l.items.first()?.spec.username.clone()
    })
    .await;
    assert!(boot_user.starts_with("system:bootstrap:"));
    // A bootstrap token may not ask for an add-on identity at all.
    let boot = garrison_e2e::token_kubeconfig(&hub, &token).unwrap();
    let boot = client_from(&boot).await.unwrap();
    let err = request(
        &boot,
        "c3",
        "managed-serviceaccount",
        &addon_id("c3", "managed-serviceaccount"),
    )
    .await
    .unwrap_err();
    assert_eq!(api_code(&err), 403);

    // The add-on's own certificate reaches only its add-on's objects in its cluster's namespace.
    let spoke = c1.spoke().await;
    let secret = Api::<Secret>::namespaced(spoke, "open-cluster-management-agent-addon")
        .get("managed-serviceaccount-hub-kubeconfig")
        .await
        .unwrap();
    let kc = c1.dir.join("msa-hub.kubeconfig");
    std::fs::write(&kc, &secret.data.unwrap()["kubeconfig"].0).unwrap();
    let addon = client_from(&kc).await.unwrap();
    // Its own namespace: ManagedServiceAccounts readable, Secrets writable.
    Api::<ManagedServiceAccount>::namespaced(addon.clone(), "c1")
        .list(&Default::default())
        .await
        .unwrap();
    // Another cluster's namespace: nothing.
    let err = Api::<Secret>::namespaced(addon.clone(), "c2")
        .list(&Default::default())
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 403);
    // The agent's objects: its ManifestWorks, its ManagedCluster, CSRs: nothing.
    let err = Api::<garrison_api::ManifestWork>::namespaced(addon.clone(), "c1")
        .list(&Default::default())
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 403);
    let err = Api::<garrison_api::ManagedCluster>::all(addon.clone())
        .get("c1")
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 403);
    let err = Api::<CertificateSigningRequest>::all(addon.clone())
        .list(&Default::default())
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 403);
    // And it cannot ask for the agent's identity or any other.
    let own =
        garrison_pki::AgentIdentity::new(garrison_pki::ClusterName::parse("c1").unwrap(), "x1")
            .unwrap();
    let err = request(&addon, "c1", "managed-serviceaccount", &own.into())
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 403);

    // Once c1 is denied, its add-on certificate is refused too.
    ok(garrison_e2e::garrison(&[
        "deny",
        "c1",
        "--data-dir",
        hub.data_dir().to_str().unwrap(),
    ]));
    let err = Api::<ManagedServiceAccount>::namespaced(addon, "c1")
        .list(&Default::default())
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 401);
}

fn claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_short_lived_token_is_refreshed_before_it_expires_and_the_old_one_then_stops_working() {
    let hub = Hub::start().await.unwrap();
    let agents = join_and_accept(&hub, &["c1"], &["--simulated-min-token-expiration=1s"]).await;
    let agent = &agents[0];
    apply(&hub, MCA_YAML);
    available(&hub).await;
    apply(&hub, &example().replace("validity: 24h", "validity: 30s"));
    let first = token_of(&hub).await;
    let c = claims(&first);
    let lifetime = c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 30, "{c}");
    let kc1 = spoke_token_kubeconfig(agent, &first, "first.kubeconfig");
    assert_eq!(
        can_i(agent, &kc1, &["get", "serviceaccounts", "-n", "app"]),
        "no"
    );
    let old = client_from(&kc1).await.unwrap();
    // Authenticated (403, not 401) while valid.
    let probe = |c: kube::Client| async move {
        let r = Api::<Secret>::namespaced(c, "kube-system")
            .list(&Default::default())
            .await;
        api_code(&r.unwrap_err())
    };
    assert_eq!(probe(old.clone()).await, 403);
    // Refreshed at 80% of its lifetime, before it expires.
    let admin = hub.client().await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(admin, "c1");
    let second = eventually(40, "a refreshed token", || async {
        let s = secrets.get_opt("reader").await.ok()??;
        let t = String::from_utf8(s.data?.get("token")?.0.clone()).ok()?;
        (t != first).then_some(t)
    })
    .await;
    // Judged by the new token's issue time, not by when this test got to look: under load
    // the poll above may notice it late.
    let issued = claims(&second)["iat"].as_i64().unwrap();
    assert!(
        issued < c["exp"].as_i64().unwrap(),
        "refreshed only after the old token expired: issued {issued}, old expiry {}",
        c["exp"]
    );
    // The old token works until its expiry, and not after.
    let wait = c["exp"].as_i64().unwrap() - jiff::Timestamp::now().as_second() + 1;
    tokio::time::sleep(std::time::Duration::from_secs(wait.max(0) as u64)).await;
    assert_eq!(probe(old).await, 401);
    let kc2 = spoke_token_kubeconfig(agent, &second, "second.kubeconfig");
    let fresh = client_from(&kc2).await.unwrap();
    assert_eq!(probe(fresh).await, 403);
}

#[tokio::test]
async fn garrison_addon_enable_and_disable_as_clusteradm_does() {
    let hub = Hub::start().await.unwrap();
    let _agents = join_and_accept(&hub, &["c1", "c2"], &[]).await;
    let dir = hub.data_dir().to_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--data-dir", dir.as_str()]);
        garrison_e2e::garrison(&a)
    };
    // Mistakes get one clear line and a non-zero exit.
    let out = run(&["addon", "enable", "no-such-addon", "--clusters", "c1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not registered") && err.contains("managed-serviceaccount"),
        "{err}"
    );
    let out = run(&[
        "addon",
        "enable",
        "managed-serviceaccount",
        "--clusters",
        "c1,nope",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"nope\" not found"));
    let out = run(&["addon", "enable", "managed-serviceaccount"]);
    assert!(!out.status.success());

    let out = ok(run(&[
        "addon",
        "enable",
        "managed-serviceaccount",
        "--clusters",
        "c1,c2",
    ]));
    assert!(
        out.contains("enabled on c1") && out.contains("enabled on c2"),
        "{out}"
    );
    eventually(60, "both add-ons Available", || async {
        let out = run(&["get", "addons", "-o", "wide"]);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        err.contains("2/2 available").then_some(())
    })
    .await;
    let table = ok(run(&[
        "get",
        "addons",
        "managed-serviceaccount",
        "--cluster",
        "c2",
    ]));
    assert!(table.contains("c2") && !table.contains("c1"), "{table}");
    let out = ok(run(&[
        "addon",
        "disable",
        "managed-serviceaccount",
        "--clusters",
        "c1",
    ]));
    assert!(out.contains("disabled on c1"), "{out}");
    let admin = hub.client().await.unwrap();
    let mcas: Api<ManagedClusterAddOn> = Api::namespaced(admin, "c1");
    gone(
        30,
        "the add-on gone from c1",
        &mcas,
        "managed-serviceaccount",
    )
    .await;
}

#[tokio::test]
async fn a_managed_service_account_never_takes_over_an_existing_account_or_secret() {
    let hub = Hub::start().await.unwrap();
    let agents = join_and_accept(&hub, &["c1"], &[]).await;
    let agent = &agents[0];
    apply(&hub, MCA_YAML);
    available(&hub).await;
    // Another add-on's ServiceAccount in the add-on namespace, and a Secret on the hub that
    // someone else wrote in the cluster namespace.
    ok(spoke_kubectl(
        agent,
        &[
            "create",
            "serviceaccount",
            "policy-controller",
            "-n",
            "open-cluster-management-agent-addon",
        ],
    ));
    ok(hub.kubectl(&[
        "create",
        "secret",
        "generic",
        "precious",
        "-n",
        "c1",
        "--from-literal=k=v",
    ]));
    // The attacker names ManagedServiceAccounts after them.
    for name in ["policy-controller", "precious"] {
        apply(
            &hub,
            &format!(
                "apiVersion: authentication.open-cluster-management.io/v1beta1\nkind: ManagedServiceAccount\nmetadata: {{name: {name}, namespace: c1}}\nspec: {{rotation: {{}}}}\n"
            ),
        );
    }
    let admin = hub.client().await.unwrap();
    let msas: Api<ManagedServiceAccount> = Api::namespaced(admin.clone(), "c1");
    for name in ["policy-controller", "precious"] {
        let message = eventually(60, "TokenReportFailed", || async {
            let m = msas.get(name).await.ok()?;
            m.status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "TokenReported" && c.reason == "TokenReportFailed")
                .map(|c| c.message)
        })
        .await;
        assert!(message.contains("refusing"), "{name}: {message}");
    }
    let secrets: Api<Secret> = Api::namespaced(admin, "c1");
    assert!(
        secrets
            .get_opt("policy-controller")
            .await
            .unwrap()
            .is_none()
    );
    let precious = secrets.get("precious").await.unwrap();
    assert_eq!(precious.data.unwrap().keys().collect::<Vec<_>>(), ["k"]);
    assert!(precious.metadata.owner_references.is_none());
}

const INSTALL_YAML: &str = r#"
apiVersion: cluster.open-cluster-management.io/v1beta2
kind: ManagedClusterSetBinding
metadata:
  name: default
  namespace: addons
spec:
  clusterSet: default
---
apiVersion: cluster.open-cluster-management.io/v1beta1
kind: Placement
metadata:
  name: prod
  namespace: addons
spec:
  predicates:
  - requiredClusterSelector:
      labelSelector:
        matchLabels:
          env: prod
---
apiVersion: addon.open-cluster-management.io/v1alpha1
kind: ClusterManagementAddOn
metadata:
  name: managed-serviceaccount
spec:
  addOnMeta:
    displayName: managed-serviceaccount
  installStrategy:
    type: Placements
    placements:
    - name: prod
      namespace: addons
      rolloutStrategy:
        type: Progressive
        progressive:
          maxConcurrency: 1
"#;

#[tokio::test]
async fn an_install_strategy_installs_on_the_placements_clusters_one_at_a_time_and_follows_them() {
    let hub = Hub::start().await.unwrap();
    let _agents = join_and_accept(&hub, &["c1", "c2", "c3"], &[]).await;
    for c in ["c1", "c2"] {
        ok(hub.kubectl(&["label", "managedcluster", c, "env=prod"]));
    }
    ok(hub.kubectl(&["create", "namespace", "addons"]));
    apply(&hub, INSTALL_YAML);
    let admin = hub.client().await.unwrap();
    let get = |c: &str| {
        let api: Api<ManagedClusterAddOn> = Api::namespaced(admin.clone(), c);
        async move { api.get_opt("managed-serviceaccount").await.unwrap() }
    };
    let available_at = |m: &ManagedClusterAddOn| {
        m.status.as_ref().and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "Available" && c.status == "True")
                .map(|c| c.last_transition_time.0)
        })
    };
    let (a, b) = eventually(90, "the add-on Available on c1 and c2", || async {
        let a = get("c1").await?;
        let b = get("c2").await?;
        (available_at(&a).is_some() && available_at(&b).is_some()).then_some((a, b))
    })
    .await;
    assert!(get("c3").await.is_none(), "c3 is not in the placement");
    // maxConcurrency 1: the second cluster started only once the first was Available.
    let (first, second) = if a.metadata.creation_timestamp <= b.metadata.creation_timestamp {
        (a, b)
    } else {
        (b, a)
    };
    assert!(
        available_at(&first).unwrap() <= second.metadata.creation_timestamp.clone().unwrap().0,
        "the second install began before the first was Available"
    );
    assert_eq!(first.owner_references()[0].kind, "ClusterManagementAddOn");
    let cmas: Api<garrison_api::ClusterManagementAddOn> = Api::all(admin.clone());
    let progress = eventually(30, "InstallSucceed", || async {
        let c = cmas.get("managed-serviceaccount").await.ok()?;
        let p = c.status?.install_progressions.into_iter().next()?;
        p.conditions
            .into_iter()
            .find(|c| c.type_ == "Progressing" && c.reason == "InstallSucceed")
    })
    .await;
    assert_eq!(
        progress.message,
        "2/2 completed with no errors, 0 failed 0 timeout."
    );
    // c2 leaves the placement: the add-on the strategy installed there goes.
    ok(hub.kubectl(&["label", "managedcluster", "c2", "env=dev", "--overwrite"]));
    eventually(60, "the add-on removed from c2", || async {
        get("c2").await.is_none().then_some(())
    })
    .await;
    assert!(get("c1").await.is_some());
}

#[tokio::test]
async fn a_template_add_on_delivers_its_agent_registers_it_and_grants_its_hub_permissions() {
    let hub = Hub::start().await.unwrap();
    let agents = join_and_accept(&hub, &["c1", "c2"], &[]).await;
    let example =
        std::fs::read_to_string(garrison_e2e::workspace().join("examples/addon-template.yaml"))
            .unwrap();
    apply(&hub, &example);
    let dir = hub.data_dir().to_str().unwrap().to_string();
    ok(garrison_e2e::garrison(&[
        "addon",
        "enable",
        "hello-template",
        "--clusters",
        "c1",
        "--data-dir",
        &dir,
    ]));
    let admin = hub.client().await.unwrap();
    let mcas: Api<ManagedClusterAddOn> = Api::namespaced(admin.clone(), "c1");
    let mca = eventually(90, "the template add-on Available", || async {
        let m = mcas.get("hello-template").await.ok()?;
        m.status
            .as_ref()?
            .conditions
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "True" && c.reason == "ProbeAvailable")
            .then_some(m)
    })
    .await;
    let st = mca.status.unwrap();
    assert_eq!(
        st.registrations[0].signer_name,
        "kubernetes.io/kube-apiserver-client"
    );
    // Upstream names a template add-on's agent `<addon>-agent`.
    assert_eq!(
        st.registrations[0].subject.as_ref().unwrap().user,
        "system:open-cluster-management:cluster:c1:addon:hello-template:agent:hello-template-agent"
    );
    // The agent's manifests, rendered for c1, are on c1.
    let work = ok(hub.kubectl(&[
        "get",
        "manifestwork",
        "addon-hello-template-deploy-0",
        "-n",
        "c1",
        "-o",
        "json",
    ]));
    assert!(
        work.contains("--cluster-name=c1")
            && work.contains("--hub-kubeconfig=/managed/hub-kubeconfig/kubeconfig"),
        "{work}"
    );
    let spoke = agents[0].spoke().await;
    let deploy = Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(
        spoke.clone(),
        "open-cluster-management-agent-addon",
    )
    .get("hello-template-agent")
    .await
    .unwrap();
    // As upstream: the variables as environment, the hub kubeconfig mounted.
    let pod = deploy.spec.template.spec.unwrap();
    let c = &pod.containers[0];
    let env: Vec<(String, String)> = c
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect();
    assert!(
        env.contains(&("CLUSTER_NAME".into(), "c1".into())),
        "{env:?}"
    );
    assert!(
        c.volume_mounts
            .clone()
            .unwrap_or_default()
            .iter()
            .any(|m| m.mount_path == "/managed/hub-kubeconfig")
    );
    assert!(pod.volumes.unwrap_or_default().iter().any(|v| {
        v.secret
            .as_ref()
            .and_then(|s| s.secret_name.clone())
            .as_deref()
            == Some("hello-template-hub-kubeconfig")
    }));
    // Its credentials, and its hub permissions: ConfigMaps of c1, nothing of c2.
    let secrets = Api::<Secret>::namespaced(spoke, "open-cluster-management-agent-addon");
    let secret = eventually(60, "the add-on's hub kubeconfig", || async {
        secrets
            .get_opt("hello-template-hub-kubeconfig")
            .await
            .ok()?
    })
    .await;
    let kc = agents[0].dir.join("hello-hub.kubeconfig");
    std::fs::write(&kc, &secret.data.unwrap()["kubeconfig"].0).unwrap();
    let addon = client_from(&kc).await.unwrap();
    ok(hub.kubectl(&[
        "get",
        "rolebinding",
        "open-cluster-management:hello-template:clusterrole:agent",
        "-n",
        "c1",
    ]));
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(addon.clone(), "c1")
        .list(&Default::default())
        .await
        .unwrap();
    let err = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(addon, "c2")
        .list(&Default::default())
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 403);
    // Disabling removes the work (and so the agent) and the binding.
    ok(garrison_e2e::garrison(&[
        "addon",
        "disable",
        "hello-template",
        "--clusters",
        "c1",
        "--data-dir",
        &dir,
    ]));
    let works: Api<garrison_api::ManifestWork> = Api::namespaced(admin, "c1");
    gone(
        60,
        "the add-on's work removed",
        &works,
        "addon-hello-template-deploy-0",
    )
    .await;
}

#[tokio::test]
async fn a_managed_service_account_with_a_ttl_is_deleted_and_its_token_stops_working() {
    let hub = Hub::start().await.unwrap();
    let agents = join_and_accept(&hub, &["c1"], &[]).await;
    let agent = &agents[0];
    apply(&hub, MCA_YAML);
    available(&hub).await;
    apply(
        &hub,
        "apiVersion: authentication.open-cluster-management.io/v1beta1\nkind: ManagedServiceAccount\nmetadata: {name: reader, namespace: c1}\nspec: {rotation: {}, ttlSecondsAfterCreation: 15}\n",
    );
    let token = token_of(&hub).await;
    let kc = spoke_token_kubeconfig(agent, &token, "ttl.kubeconfig");
    let c = client_from(&kc).await.unwrap();
    let probe = |c: kube::Client| async move {
        let r = Api::<Secret>::namespaced(c, "kube-system")
            .list(&Default::default())
            .await;
        api_code(&r.unwrap_err())
    };
    assert_eq!(
        probe(c.clone()).await,
        403,
        "the token works before its TTL"
    );
    let admin = hub.client().await.unwrap();
    let msas: Api<ManagedServiceAccount> = Api::namespaced(admin.clone(), "c1");
    gone(
        40,
        "the ManagedServiceAccount deleted at its TTL",
        &msas,
        "reader",
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(admin, "c1");
    gone(30, "its token Secret gone", &secrets, "reader").await;
    eventually(60, "its token refused on the cluster", || async {
        (probe(c.clone()).await == 401).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_validating_cluster_permission_checks_roles_on_the_cluster_and_makes_none() {
    let hub = Hub::start().await.unwrap();
    let agents = join_and_accept(&hub, &["c1"], &[]).await;
    let agent = &agents[0];
    ok(spoke_kubectl(agent, &["create", "namespace", "app"]));
    ok(spoke_kubectl(
        agent,
        &[
            "create",
            "role",
            "existing",
            "-n",
            "app",
            "--verb=get",
            "--resource=configmaps",
        ],
    ));
    apply(
        &hub,
        r#"
apiVersion: rbac.open-cluster-management.io/v1alpha1
kind: ClusterPermission
metadata: {name: check, namespace: c1}
spec:
  validate: true
  clusterRoleBinding:
    subject: {kind: User, apiGroup: rbac.authorization.k8s.io, name: u1}
    roleRef: {kind: ClusterRole, apiGroup: rbac.authorization.k8s.io, name: missing-cr}
  roleBindings:
  - namespace: app
    roleRef: {kind: Role, apiGroup: rbac.authorization.k8s.io, name: existing}
    subject: {kind: User, apiGroup: rbac.authorization.k8s.io, name: u1}
"#,
    );
    let admin = hub.client().await.unwrap();
    let cps: Api<garrison_api::ClusterPermission> = Api::namespaced(admin, "c1");
    let conds = eventually(60, "both validation conditions", || async {
        let c = cps.get("check").await.ok()?.status?.conditions;
        let roles = c
            .iter()
            .find(|c| c.type_ == "ValidateRolesExist" && c.status == "True")?
            .clone();
        let cluster_roles = c
            .iter()
            .find(|c| c.type_ == "ValidateClusterRolesExist" && c.status == "False")?
            .clone();
        Some((roles, cluster_roles))
    })
    .await;
    assert_eq!(conds.0.reason, "AllRolesFound");
    assert_eq!(conds.1.reason, "ClusterRolesNotFound");
    assert!(
        conds.1.message.contains("missing-cr"),
        "{}",
        conds.1.message
    );
    // The bindings are delivered; the missing role is not made.
    ok(spoke_kubectl(
        agent,
        &["get", "rolebinding", "check", "-n", "app"],
    ));
    let out = spoke_kubectl(agent, &["get", "clusterrole", "missing-cr"]);
    assert!(!out.status.success(), "a ReadOnly role was created");
}

const METRICS_YAML: &str = r#"
apiVersion: addon.open-cluster-management.io/v1alpha1
kind: AddOnTemplate
metadata:
  name: metrics-0.1.0
spec:
  addonName: metrics
  agentSpec:
    workload:
      manifests:
        - apiVersion: v1
          kind: ConfigMap
          metadata:
            name: metrics-agent
            namespace: open-cluster-management-agent-addon
          data:
            cluster: "{{CLUSTER_NAME}}"
  registration:
    - type: CustomSigner
      customSigner:
        signerName: example.com/metrics
        subject:
          user: metrics-agent
          groups: [metrics]
          organizationUnit: [fleet]
        signingCA:
          name: metrics-ca
---
apiVersion: addon.open-cluster-management.io/v1alpha1
kind: ClusterManagementAddOn
metadata:
  name: metrics
  annotations:
    addon.open-cluster-management.io/lifecycle: addon-manager
spec:
  addOnMeta:
    displayName: metrics
  supportedConfigs:
    - group: addon.open-cluster-management.io
      resource: addontemplates
      defaultConfig:
        name: metrics-0.1.0
"#;

/// The hub's admin kubeconfig with its user's credentials replaced by `cert`/`key`.
fn with_client_cert(hub: &Hub, cert: &str, key: &str, file: &str) -> PathBuf {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut kc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(hub.kubeconfig()).unwrap()).unwrap();
    kc["users"][0]["user"] = serde_yaml::to_value(json!({
        "client-certificate-data": b64(cert), "client-key-data": b64(key)}))
    .unwrap();
    let path = hub.data_dir().join(file);
    std::fs::write(&path, serde_yaml::to_string(&kc).unwrap()).unwrap();
    path
}

fn metrics_subject(user: &str) -> garrison_pki::CustomSubject {
    garrison_pki::CustomSubject {
        user: user.into(),
        groups: vec!["metrics".into()],
        organizational_units: vec!["fleet".into()],
    }
}

#[tokio::test]
async fn a_custom_signer_issues_the_add_ons_own_certificates_for_its_registered_subject_only() {
    let hub = Hub::start().await.unwrap();
    let agents = join_and_accept(&hub, &["c1", "c2"], &[]).await;
    // The add-on's CA, in upstream's namespace, as `kubectl create secret tls` writes it.
    let now = time::OffsetDateTime::now_utc();
    let ca =
        garrison_pki::ClusterCa::generate("metrics-ca", now, time::Duration::days(30)).unwrap();
    let dir = hub.data_dir().to_path_buf();
    std::fs::write(dir.join("metrics-ca.crt"), ca.cert_pem()).unwrap();
    std::fs::write(dir.join("metrics-ca.key"), ca.key_pem()).unwrap();
    ok(hub.kubectl(&["create", "namespace", "open-cluster-management-hub"]));
    ok(hub.kubectl(&[
        "create",
        "secret",
        "tls",
        "metrics-ca",
        "-n",
        "open-cluster-management-hub",
        "--cert",
        dir.join("metrics-ca.crt").to_str().unwrap(),
        "--key",
        dir.join("metrics-ca.key").to_str().unwrap(),
    ]));
    apply(&hub, METRICS_YAML);
    apply(
        &hub,
        "apiVersion: addon.open-cluster-management.io/v1alpha1\nkind: ManagedClusterAddOn\nmetadata:\n  name: metrics\n  namespace: c1\nspec: {}\n",
    );
    // The agent asks for it and keeps it under upstream's name, without a hub kubeconfig.
    let spoke = agents[0].spoke().await;
    let secrets = Api::<Secret>::namespaced(spoke, "open-cluster-management-agent-addon");
    let secret = eventually(60, "the custom-signer certificate on c1", || async {
        secrets
            .get_opt("metrics-example.com-metrics-client-cert")
            .await
            .ok()?
    })
    .await;
    let data = secret.data.unwrap();
    let cert = String::from_utf8(data["tls.crt"].0.clone()).unwrap();
    let key = String::from_utf8(data["tls.key"].0.clone()).unwrap();
    assert!(garrison_pki::custom::issued_by(&cert, ca.cert_pem()).unwrap());
    let (subject, nb, na) = garrison_pki::custom::cert_subject(&cert).unwrap();
    assert_eq!(subject, metrics_subject("metrics-agent"));
    assert!(na - nb <= 24 * 3600 + 60, "{}", na - nb);
    assert_eq!(data["cluster-name"].0, b"c1");
    assert!(!data.contains_key("kubeconfig"));
    // It is the add-on's, not a hub credential: the hub refuses it in the TLS handshake, as
    // a certificate of an issuer it does not trust.
    let foreign = client_from(&with_client_cert(&hub, &cert, &key, "metrics.kubeconfig"))
        .await
        .unwrap();
    let err = Api::<Secret>::namespaced(foreign, "c1")
        .list(&Default::default())
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("UnknownCA"), "{err:?}");

    // The attacker holds c1's agent certificate.
    let agent_kc = eventually(30, "the agent's certificate", || async {
        agents[0].kubeconfig(&hub)
    })
    .await;
    let agent = client_from(&agent_kc).await.unwrap();
    let custom = |user: &str, addon: &str| {
        garrison_pki::custom::new_request(&metrics_subject(user), addon)
            .unwrap()
            .csr_pem
    };
    // 1. Another subject from the add-on's CA (a name some service trusts): denied.
    let name = submit(
        &agent,
        "c1",
        "metrics",
        "example.com/metrics",
        &custom("admin", "metrics"),
    )
    .await
    .unwrap();
    let why = denied(&hub, &name).await;
    assert!(why.contains("registers"), "{why}");
    // 2. Labelled as another cluster's: denied.
    let name = submit(
        &agent,
        "c2",
        "metrics",
        "example.com/metrics",
        &custom("metrics-agent", "metrics"),
    )
    .await
    .unwrap();
    assert_eq!(decision(&hub, &name).await.0, "Denied");
    // 3. A signer the add-on does not register: denied.
    let name = submit(
        &agent,
        "c1",
        "metrics",
        "example.com/other",
        &custom("metrics-agent", "metrics"),
    )
    .await
    .unwrap();
    let why = denied(&hub, &name).await;
    assert!(why.contains("no custom signer"), "{why}");
    // 4. A well-known Kubernetes signer dressed as an add-on's: denied.
    let name = submit(
        &agent,
        "c1",
        "metrics",
        "kubernetes.io/kubelet-serving",
        &custom("metrics-agent", "metrics"),
    )
    .await
    .unwrap();
    let why = denied(&hub, &name).await;
    assert!(why.contains("not an add-on signer"), "{why}");
    // 5. c2, where the add-on is not enabled, asking for it: denied.
    let c2_kc = eventually(30, "c2's certificate", || async {
        agents[1].kubeconfig(&hub)
    })
    .await;
    let c2 = client_from(&c2_kc).await.unwrap();
    let name = submit(
        &c2,
        "c2",
        "metrics",
        "example.com/metrics",
        &custom("metrics-agent", "metrics"),
    )
    .await
    .unwrap();
    let why = denied(&hub, &name).await;
    assert!(why.contains("not enabled on cluster c2"), "{why}");
    // 6. An admin approving by hand a request for another subject: the signer refuses it.
    let admin = hub.client().await.unwrap();
    let name = submit(
        &admin,
        "c1",
        "metrics",
        "example.com/metrics",
        &custom("admin", "metrics"),
    )
    .await
    .unwrap();
    ok(hub.kubectl(&["certificate", "approve", &name]));
    let csrs: Api<CertificateSigningRequest> = Api::all(admin.clone());
    let failed = eventually(30, "the signer's refusal", || async {
        let c = csrs.get(&name).await.ok()?;
        let st = c.status?;
        assert!(st.certificate.is_none());
        st.conditions?.into_iter().find(|c| c.type_ == "Failed")
    })
    .await;
    assert!(failed.message.unwrap_or_default().contains("registers"));

    // Disabling the add-on removes its certificate.
    ok(hub.kubectl(&["delete", "managedclusteraddon", "metrics", "-n", "c1"]));
    gone(
        60,
        "the custom-signer certificate removed",
        &secrets,
        "metrics-example.com-metrics-client-cert",
    )
    .await;
}
