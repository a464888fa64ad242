//! Authentication and RBAC against a running hub: unbound users get 403, a Role in one namespace
//! grants nothing in another, SubjectAccessReview answers as kube-apiserver would, bootstrap
//! tokens authenticate until they expire, anonymous requests get 401, and nobody can grant
//! more than they hold.

use base64::Engine;
use garrison_e2e::{Hub, api_code, client_from, kubectl_with, ok};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use serde_json::json;

async fn setup(hub: &Hub) -> kube::Client {
    let admin = hub.client().await.unwrap();
    let ns: Api<Namespace> = Api::all(admin.clone());
    for n in ["team-a", "team-b"] {
        ns.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": n}})).unwrap(),
        )
        .await
        .unwrap();
    }
    let roles: Api<Role> = Api::namespaced(admin.clone(), "team-a");
    roles
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "cm-reader"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]})).unwrap())
        .await
        .unwrap();
    let rbs: Api<RoleBinding> = Api::namespaced(admin.clone(), "team-a");
    rbs.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "alice"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"}, "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}]}))
            .unwrap(),
    )
    .await
    .unwrap();
    admin
}

#[tokio::test]
async fn a_user_without_bindings_gets_403_and_a_role_stays_in_its_namespace() {
    let hub = Hub::start().await.unwrap();
    setup(&hub).await;
    let nobody = client_from(&hub.kubeconfig_for("nobody", &[]).unwrap())
        .await
        .unwrap();
    let err = Api::<ConfigMap>::namespaced(nobody.clone(), "team-a")
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 403, "{err}");
    assert!(
        err.to_string()
            .contains("User \"nobody\" cannot list resource \"configmaps\""),
        "{err}"
    );
    assert_eq!(
        api_code(
            &Api::<Namespace>::all(nobody)
                .list(&ListParams::default())
                .await
                .unwrap_err()
        ),
        403
    );

    let alice = client_from(&hub.kubeconfig_for("alice", &[]).unwrap())
        .await
        .unwrap();
    assert!(
        Api::<ConfigMap>::namespaced(alice.clone(), "team-a")
            .list(&ListParams::default())
            .await
            .is_ok()
    );
    let other = Api::<ConfigMap>::namespaced(alice.clone(), "team-b")
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(api_code(&other), 403);
    let all = Api::<ConfigMap>::all(alice.clone())
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(
        api_code(&all),
        403,
        "a namespaced grant is not a cluster-wide list"
    );
    let write = Api::<ConfigMap>::namespaced(alice.clone(), "team-a")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&write), 403);
    // Discovery is open to every authenticated user.
    assert!(alice.apiserver_version().await.is_ok());
}

#[tokio::test]
async fn subject_access_review_answers_as_kube_apiserver_would() {
    let hub = Hub::start().await.unwrap();
    let admin = setup(&hub).await;
    let sar: Api<SubjectAccessReview> = Api::all(admin.clone());
    let ask = |user: &str, ns: &str, verb: &str| SubjectAccessReview {
        metadata: ObjectMeta::default(),
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(ns.into()),
                verb: Some(verb.into()),
                resource: Some("configmaps".into()),
                group: Some("".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        status: None,
    };
    let yes = sar
        .create(&PostParams::default(), &ask("alice", "team-a", "list"))
        .await
        .unwrap();
    let st = yes.status.unwrap();
    assert!(st.allowed);
    assert_eq!(
        st.reason.as_deref(),
        Some(
            "RBAC: allowed by RoleBinding \"alice/team-a\" of Role \"cm-reader\" to User \"alice\""
        )
    );
    assert!(
        !sar.create(&PostParams::default(), &ask("alice", "team-b", "list"))
            .await
            .unwrap()
            .status
            .unwrap()
            .allowed
    );
    assert!(
        !sar.create(&PostParams::default(), &ask("alice", "team-a", "delete"))
            .await
            .unwrap()
            .status
            .unwrap()
            .allowed
    );
    // Creating a SubjectAccessReview itself needs permission.
    let alice = client_from(&hub.kubeconfig_for("alice", &[]).unwrap())
        .await
        .unwrap();
    let err = Api::<SubjectAccessReview>::all(alice)
        .create(&PostParams::default(), &ask("alice", "team-a", "list"))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 403);
}

#[tokio::test]
async fn nobody_can_grant_more_than_they_hold() {
    let hub = Hub::start().await.unwrap();
    let admin = setup(&hub).await;
    // alice may manage roles in team-a, but holds only get/list on configmaps.
    let roles: Api<Role> = Api::namespaced(admin.clone(), "team-a");
    roles
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "role-admin"}, "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": ["create", "get"]}]})).unwrap())
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), "team-a")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "alice-roles"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "role-admin"}, "subjects": [{"kind": "User", "name": "alice"}]})).unwrap(),
        )
        .await
        .unwrap();
    let alice = client_from(&hub.kubeconfig_for("alice", &[]).unwrap())
        .await
        .unwrap();
    let as_alice: Api<Role> = Api::namespaced(alice.clone(), "team-a");
    let within = json!({"metadata": {"name": "narrow"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]});
    as_alice
        .create(
            &PostParams::default(),
            &serde_json::from_value(within).unwrap(),
        )
        .await
        .unwrap();
    let beyond = json!({"metadata": {"name": "wide"}, "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]});
    let err = as_alice
        .create(
            &PostParams::default(),
            &serde_json::from_value(beyond).unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 403);
    assert!(err.to_string().contains("not currently held"), "{err}");
    // Binding cluster-admin to herself is escalation too.
    let bind = json!({"metadata": {"name": "me-admin"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}, "subjects": [{"kind": "User", "name": "alice"}]});
    let err = Api::<RoleBinding>::namespaced(alice, "team-a")
        .create(
            &PostParams::default(),
            &serde_json::from_value(bind).unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 403);
    // Aggregated ClusterRoles carry the rules of the roles they select.
    let crs: Api<ClusterRole> = Api::all(admin.clone());
    crs.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "agg"}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg": "yes"}}]}, "rules": []})).unwrap()).await.unwrap();
    crs.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "part", "labels": {"agg": "yes"}}, "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}]})).unwrap()).await.unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), "team-b")
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "bob-agg"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "agg"}, "subjects": [{"kind": "User", "name": "bob"}]})).unwrap())
        .await
        .unwrap();
    let bob = client_from(&hub.kubeconfig_for("bob", &[]).unwrap())
        .await
        .unwrap();
    assert!(
        Api::<Secret>::namespaced(bob.clone(), "team-b")
            .list(&ListParams::default())
            .await
            .is_ok()
    );
    assert_eq!(
        api_code(
            &Api::<Secret>::namespaced(bob, "team-a")
                .list(&ListParams::default())
                .await
                .unwrap_err()
        ),
        403
    );
}

/// Regression: a user allowed to edit ClusterRoles could aggregate cluster-wide rules she does
/// not hold through `aggregationRule` with empty `rules`, because only `rules` was checked.
#[tokio::test]
async fn an_aggregation_rule_needs_full_authority() {
    let hub = Hub::start().await.unwrap();
    let admin = setup(&hub).await;
    let crs: Api<ClusterRole> = Api::all(admin.clone());
    // A role the attacker wants: reading every Secret, labelled for aggregation.
    crs.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "secret-reader", "labels": {"example.com/aggregate-to-ops": "true"}}, "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]})).unwrap()).await.unwrap();
    // mallory may manage ClusterRoles, and is bound to one she may edit.
    crs.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "ops"}, "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["get", "list", "create", "update", "patch"]}]})).unwrap()).await.unwrap();
    Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "mallory-ops"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "ops"}, "subjects": [{"kind": "User", "name": "mallory"}]})).unwrap())
        .await
        .unwrap();
    let mallory = hub.kubeconfig_for("mallory", &[]).unwrap();
    let cache = hub.data_dir().join("cache-mallory");
    let file = hub.data_dir().join("ops-aggregating.yaml");
    std::fs::write(
        &file,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: ops\naggregationRule:\n  clusterRoleSelectors:\n  - matchLabels:\n      example.com/aggregate-to-ops: \"true\"\nrules:\n- apiGroups: [rbac.authorization.k8s.io]\n  resources: [clusterroles]\n  verbs: [get, list, create, update, patch]\n",
    )
    .unwrap();
    // The attack: turn her own role into an aggregate of secret-reader.
    let attack = kubectl_with(&mallory, &cache, &["apply", "-f", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&attack.stderr);
    assert!(!attack.status.success(), "aggregation accepted: {stderr}");
    assert!(
        stderr.contains("must have cluster-admin privileges to use the aggregationRule"),
        "{stderr}"
    );
    let secrets = kubectl_with(&mallory, &cache, &["get", "secrets", "-A"]);
    assert!(
        !secrets.status.success(),
        "mallory reads secrets: {}",
        String::from_utf8_lossy(&secrets.stdout)
    );
    // A new aggregating role is refused the same way, even with no rules at all.
    let fresh = json!({"metadata": {"name": "gather"}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"example.com/aggregate-to-ops": "true"}}]}, "rules": []});
    let as_mallory = client_from(&mallory).await.unwrap();
    let err = Api::<ClusterRole>::all(as_mallory.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(fresh.clone()).unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 403, "{err}");
    // Rules she holds are still hers to hand out.
    Api::<ClusterRole>::all(as_mallory)
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "viewer"}, "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["get"]}]})).unwrap())
        .await
        .unwrap();
    // Full authority may aggregate.
    crs.create(
        &PostParams::default(),
        &serde_json::from_value(fresh).unwrap(),
    )
    .await
    .unwrap();
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn bootstrap_tokens_authenticate_until_they_expire_and_anonymous_gets_401() {
    let hub = Hub::start().await.unwrap();
    let admin = hub.client().await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "kube-system");
    for (id, exp) in [
        ("abcdef", "2999-01-01T00:00:00Z"),
        ("expird", "2001-01-01T00:00:00Z"),
    ] {
        let s = json!({"metadata": {"name": format!("bootstrap-token-{id}")}, "type": "bootstrap.kubernetes.io/token",
            "data": {"token-id": b64(id), "token-secret": b64("0123456789abcdef"), "expiration": b64(exp), "usage-bootstrap-authentication": b64("true")}});
        secrets
            .create(&PostParams::default(), &serde_json::from_value(s).unwrap())
            .await
            .unwrap();
    }
    let cache = hub.data_dir().join("cache-token");
    let anon_path = hub.anonymous_kubeconfig().unwrap();
    let who = ok(kubectl_with(
        &anon_path,
        &cache,
        &[
            "--token",
            "abcdef.0123456789abcdef",
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    ));
    assert_eq!(who, "system:bootstrap:abcdef");
    let expired = kubectl_with(
        &anon_path,
        &cache,
        &["--token", "expird.0123456789abcdef", "get", "ns"],
    );
    assert!(!expired.status.success());
    assert!(
        String::from_utf8_lossy(&expired.stderr).contains("provide credentials"),
        "{}",
        String::from_utf8_lossy(&expired.stderr)
    );
    let wrong = kubectl_with(
        &anon_path,
        &cache,
        &["--token", "abcdef.0123456789abcdee", "get", "ns"],
    );
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("provide credentials"));
    // No credentials at all: 401 from kube-rs (kubectl would prompt for a password).
    let anonymous = client_from(&anon_path).await.unwrap();
    let err = Api::<Namespace>::all(anonymous.clone())
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 401, "{err}");
    assert_eq!(
        api_code(&anonymous.apiserver_version().await.unwrap_err()),
        401
    );
    // A bootstrap user holds nothing by default.
    let denied = kubectl_with(
        &anon_path,
        &cache,
        &["--token", "abcdef.0123456789abcdef", "get", "ns"],
    );
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("Forbidden"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
}

#[tokio::test]
async fn approving_a_csr_needs_the_approve_verb_on_its_signer() {
    use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
    let hub = Hub::start().await.unwrap();
    let admin = setup(&hub).await;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "someone");
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    let csrs: Api<CertificateSigningRequest> = Api::all(admin.clone());
    let csr = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": "csr-1"},
        "spec": {"request": b64(&pem), "signerName": "kubernetes.io/kube-apiserver-client", "usages": ["client auth"], "username": "forged"}});
    let created = csrs
        .create(
            &PostParams::default(),
            &serde_json::from_value(csr).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        created.spec.username.as_deref(),
        Some("garrison-admin"),
        "the requester is stamped by the server, not taken from the body"
    );

    // carol may update the approval subresource but holds no approve verb on the signer.
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "csr-approval-only"}, "rules": [{"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests", "certificatesigningrequests/approval"], "verbs": ["get", "list", "update"]}]})).unwrap())
        .await
        .unwrap();
    Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "carol"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "csr-approval-only"}, "subjects": [{"kind": "User", "name": "carol"}]})).unwrap())
        .await
        .unwrap();
    let carol = hub.kubeconfig_for("carol", &[]).unwrap();
    let cache = hub.data_dir().join("cache-carol");
    let denied = kubectl_with(&carol, &cache, &["certificate", "approve", "csr-1"]);
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("not permitted to approve"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
    ok(hub.kubectl(&["certificate", "approve", "csr-1"]));
    let approved = csrs.get("csr-1").await.unwrap();
    let conds = approved.status.unwrap().conditions.unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Approved" && c.status == "True")
    );
    // An approval cannot be turned into a denial.
    let deny = hub.kubectl(&["certificate", "deny", "csr-1"]);
    assert!(!deny.status.success());
}
