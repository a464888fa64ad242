//! The hub's embedded signer for `kubernetes.io/kube-apiserver-client`: approved agent CSRs get
//! a client certificate of at most 24 hours; anything else is marked Failed and never signed.

use std::time::Duration;

use base64::Engine;
use garrison_e2e::{Hub, ok};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, PostParams};
use serde_json::json;

fn csr_pem(cn: &str, orgs: &[&str]) -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    if let Some(o) = orgs.first() {
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, *o);
    }
    if let Some(o) = orgs.get(1) {
        params
            .distinguished_name
            .push(rcgen::DnType::CustomDnType(vec![2, 5, 4, 10]), *o);
    }
    params.serialize_request(&key).unwrap().pem().unwrap()
}

async fn submit(
    api: &Api<CertificateSigningRequest>,
    name: &str,
    pem: &str,
    expiration: Option<i64>,
) {
    let mut spec = json!({"request": base64::engine::general_purpose::STANDARD.encode(pem), "signerName": "kubernetes.io/kube-apiserver-client", "usages": ["client auth", "digital signature"]});
    if let Some(e) = expiration {
        spec["expirationSeconds"] = json!(e);
    }
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap(),
    )
    .await
    .unwrap();
}

async fn settle(api: &Api<CertificateSigningRequest>, name: &str) -> CertificateSigningRequest {
    for _ in 0..100 {
        let c = api.get(name).await.unwrap();
        let st = c.status.clone().unwrap_or_default();
        let failed = st
            .conditions
            .as_ref()
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Failed"));
        if st.certificate.is_some() || failed {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("CSR {name} was neither signed nor failed");
}

#[tokio::test]
async fn approved_agent_csrs_are_signed_for_at_most_24_hours_and_others_fail_closed() {
    let hub = Hub::start().await.unwrap();
    let api: Api<CertificateSigningRequest> = Api::all(hub.client().await.unwrap());
    let agent_orgs = [
        "system:open-cluster-management:c1",
        "system:open-cluster-management:managed-clusters",
    ];
    submit(
        &api,
        "agent",
        &csr_pem("system:open-cluster-management:c1:agent-1", &agent_orgs),
        None,
    )
    .await;
    submit(
        &api,
        "masters",
        &csr_pem("mallory", &["system:masters"]),
        None,
    )
    .await;
    submit(
        &api,
        "too-long",
        &csr_pem("system:open-cluster-management:c1:agent-2", &agent_orgs),
        Some(48 * 3600),
    )
    .await;
    submit(
        &api,
        "unapproved",
        &csr_pem("system:open-cluster-management:c1:agent-3", &agent_orgs),
        None,
    )
    .await;
    for name in ["agent", "masters", "too-long"] {
        ok(hub.kubectl(&["certificate", "approve", name]));
    }

    let signed = settle(&api, "agent").await;
    let pem = signed.status.unwrap().certificate.unwrap().0;
    let (cn, life) = cn_and_lifetime(&pem);
    assert_eq!(cn, "system:open-cluster-management:c1:agent-1");
    assert!(life <= 24 * 3600 + 60, "lifetime {life}s");

    for (name, why) in [
        ("masters", "common name"),
        ("too-long", "exceeds the maximum"),
    ] {
        let failed = settle(&api, name).await;
        let st = failed.status.unwrap();
        assert!(st.certificate.is_none(), "{name} must not be signed");
        let msg = st
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Failed")
            .unwrap()
            .message
            .unwrap();
        assert!(msg.contains(why), "{name}: {msg}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        api.get("unapproved")
            .await
            .unwrap()
            .status
            .and_then(|s| s.certificate)
            .is_none(),
        "an unapproved CSR is never signed"
    );
}

/// The common name and lifetime (seconds) of a PEM certificate.
fn cn_and_lifetime(pem: &[u8]) -> (String, i64) {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem).unwrap();
    let cert = p.parse_x509().unwrap();
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    (
        cn,
        cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp(),
    )
}
