//! ServiceAccount tokens against a running hub, as kube-apiserver issues them: `kubectl create
//! token` gets a bound token that authenticates as the ServiceAccount and holds only its RBAC;
//! TokenReview answers for it; a forged, foreign-audience, too-short or orphaned token gets
//! nowhere.

use garrison_e2e::{Hub, api_code, client_from, kubectl_with, ok, token_kubeconfig};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenReview};
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

async fn setup(hub: &Hub) {
    ok(hub.kubectl(&["create", "namespace", "app"]));
    ok(hub.kubectl(&["create", "serviceaccount", "reader", "-n", "app"]));
    ok(hub.kubectl(&[
        "create",
        "role",
        "cm-reader",
        "-n",
        "app",
        "--verb=get,list",
        "--resource=configmaps",
    ]));
    ok(hub.kubectl(&[
        "create",
        "rolebinding",
        "reader",
        "-n",
        "app",
        "--role=cm-reader",
        "--serviceaccount=app:reader",
    ]));
}

fn can_i(hub: &Hub, token: &str, args: &[&str]) -> String {
    let kc = token_kubeconfig(hub, token).unwrap();
    let mut a = vec!["auth", "can-i"];
    a.extend_from_slice(args);
    let out = kubectl_with(&kc, &hub.data_dir().join("kubectl-cache-token"), &a);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn kubectl_create_token_gives_a_token_that_holds_only_its_service_accounts_rbac() {
    let hub = Hub::start().await.unwrap();
    setup(&hub).await;
    let token = ok(hub.kubectl(&["create", "token", "reader", "-n", "app", "--duration=15m"]));
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    assert_eq!(
        can_i(&hub, token, &["list", "configmaps", "-n", "app"]),
        "yes"
    );
    assert_eq!(
        can_i(&hub, token, &["list", "configmaps", "-n", "kube-system"]),
        "no"
    );
    assert_eq!(
        can_i(&hub, token, &["delete", "configmaps", "-n", "app"]),
        "no"
    );
    let kc = token_kubeconfig(&hub, token).unwrap();
    let who = ok(kubectl_with(
        &kc,
        &hub.data_dir().join("kubectl-cache-token"),
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    ));
    assert_eq!(who, "system:serviceaccount:app:reader");

    // TokenReview says the same, and refuses another audience.
    let admin = hub.client().await.unwrap();
    let reviews: Api<TokenReview> = Api::all(admin.clone());
    let review = |audiences: serde_json::Value| {
        serde_json::from_value::<TokenReview>(json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": token, "audiences": audiences}
        }))
        .unwrap()
    };
    let r = reviews
        .create(&PostParams::default(), &review(json!([])))
        .await
        .unwrap();
    let st = r.status.unwrap();
    assert_eq!(st.authenticated, Some(true));
    assert_eq!(
        st.user.unwrap().username.as_deref(),
        Some("system:serviceaccount:app:reader")
    );
    let r = reviews
        .create(&PostParams::default(), &review(json!(["vault"])))
        .await
        .unwrap();
    assert_eq!(r.status.unwrap().authenticated, Some(false));

    // A token for another audience does not authenticate requests here.
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "app");
    let vault: TokenRequest = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": ["vault"], "expirationSeconds": 600}
    }))
    .unwrap();
    let issued = sas
        .create_token_request("reader", &PostParams::default(), &vault)
        .await
        .unwrap();
    let vault_token = issued.status.unwrap().token.unwrap();
    let c = client_from(&token_kubeconfig(&hub, &vault_token).unwrap())
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(c, "app");
    assert_eq!(
        api_code(&cms.list(&Default::default()).await.unwrap_err()),
        401
    );

    // Deleting and recreating the ServiceAccount ends the old token.
    sas.delete("reader", &DeleteParams::default())
        .await
        .unwrap();
    ok(hub.kubectl(&["create", "serviceaccount", "reader", "-n", "app"]));
    let c = client_from(&token_kubeconfig(&hub, token).unwrap())
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(c, "app");
    assert_eq!(
        api_code(&cms.list(&Default::default()).await.unwrap_err()),
        401
    );
}

#[tokio::test]
async fn bad_token_requests_and_forged_tokens_are_refused() {
    let hub = Hub::start().await.unwrap();
    setup(&hub).await;
    // Shorter than kube-apiserver's minimum: 422 naming the field.
    let out = hub.kubectl(&["create", "token", "reader", "-n", "app", "--duration=5m"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spec.expirationSeconds"), "{err}");
    // No such ServiceAccount: 404.
    let out = hub.kubectl(&["create", "token", "nobody", "-n", "app"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    // Only someone who may create serviceaccounts/token gets one: the reader itself may not.
    let token = ok(hub.kubectl(&["create", "token", "reader", "-n", "app"]));
    let kc = token_kubeconfig(&hub, token.trim()).unwrap();
    let out = kubectl_with(
        &kc,
        &hub.data_dir().join("kubectl-cache-token"),
        &["create", "token", "reader", "-n", "app"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("forbidden"));

    // The attacker rewrites the claims of a real token to name another account: refused.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    ok(hub.kubectl(&["create", "serviceaccount", "admin", "-n", "app"]));
    ok(hub.kubectl(&[
        "create",
        "clusterrolebinding",
        "app-admin",
        "--clusterrole=cluster-admin",
        "--serviceaccount=app:admin",
    ]));
    let parts: Vec<&str> = token.trim().split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    let admin_uid = ok(hub.kubectl(&[
        "get",
        "sa",
        "admin",
        "-n",
        "app",
        "-o",
        "jsonpath={.metadata.uid}",
    ]));
    claims["sub"] = json!("system:serviceaccount:app:admin");
    claims["kubernetes.io"]["serviceaccount"] = json!({"name": "admin", "uid": admin_uid});
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(claims.to_string()),
        parts[2]
    );
    let unsigned = format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none"}"#),
        b64.encode(claims.to_string())
    );
    for t in [forged, unsigned] {
        let c = client_from(&token_kubeconfig(&hub, &t).unwrap())
            .await
            .unwrap();
        let sas: Api<ServiceAccount> = Api::namespaced(c, "app");
        assert_eq!(
            api_code(&sas.list(&Default::default()).await.unwrap_err()),
            401
        );
    }
    assert!(!hub.log().contains(token.trim()), "the hub logged a token");

    // serviceaccounts/token takes only POST: reads, writes and deletes there are 405, not the
    // ServiceAccount itself authorized as its token subresource.
    for (method, body) in [("GET", None), ("PUT", Some("{}")), ("DELETE", None)] {
        let mut args = vec![
            "--raw",
            "/api/v1/namespaces/app/serviceaccounts/admin/token",
        ];
        let verb = match method {
            "GET" => "get",
            "PUT" => "replace",
            _ => "delete",
        };
        let file = hub.data_dir().join("empty.json");
        std::fs::write(&file, body.unwrap_or("{}")).unwrap();
        let f = file.to_str().unwrap().to_string();
        let mut cmd = vec![verb];
        cmd.append(&mut args);
        if body.is_some() {
            cmd.extend(["-f", f.as_str()]);
        }
        let out = hub.kubectl(&cmd);
        assert!(!out.status.success(), "{method}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("MethodNotAllowed") || err.contains("not allowed") || err.contains("405"),
            "{method}: {err}"
        );
    }
    ok(hub.kubectl(&["get", "sa", "admin", "-n", "app"]));
}
