//! Image verification against a real registry (Debian's docker-registry over HTTPS on
//! loopback): images and cosign-format signatures pushed by the test, then checked with
//! `garrison image verify` as a security admin would, attack by attack.

use std::collections::BTreeMap;

use garrison_e2e::{OciRegistry, garrison};
use garrison_supply_chain::reference::Reference;
use garrison_supply_chain::registry::{Registry, RegistryConfig};
use garrison_supply_chain::sign::{KeySigner, LocalSigstore, payload};
use serde_json::json;

const ISSUER: &str = "https://accounts.garrison.test";

fn client(reg: &OciRegistry) -> Registry {
    let mut config = RegistryConfig::default();
    config.add_ca_pem(&reg.ca_pem).unwrap();
    Registry::new(config).unwrap()
}

fn write_yaml(reg: &OciRegistry, name: &str, docs: &[serde_json::Value]) -> String {
    let text: Vec<String> = docs
        .iter()
        .map(|d| serde_yaml::to_string(d).unwrap())
        .collect();
    let path = reg.scratch().join(name);
    std::fs::write(&path, text.join("---\n")).unwrap();
    path.to_str().unwrap().to_string()
}

fn key_policy(reg: &OciRegistry, key: &KeySigner) -> serde_json::Value {
    json!({"apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": "shop-signed"},
        "spec": {"images": [{"glob": format!("{}/shop/**", reg.host)}],
            "authorities": [{"name": "release-key", "key": {"data": key.public_key_pem()}}]}})
}

/// Runs `garrison image verify`; returns (success, stdout + stderr).
fn verify(reg: &OciRegistry, image: &str, policy: &str) -> (bool, String) {
    let ca = reg.ca_file();
    let out = garrison(&[
        "image",
        "verify",
        image,
        "--policy",
        policy,
        "--registry-ca",
        ca.to_str().unwrap(),
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_images_verify_and_everything_else_is_refused() {
    let reg = OciRegistry::start(false).unwrap();
    let registry = client(&reg);
    let web = Reference::parse(&format!("{}/shop/web:1.0", reg.host)).unwrap();
    let digest = registry.push_image(&web, b"web layer").await.unwrap();
    assert_eq!(registry.resolve(&web).await.unwrap(), digest);
    let key = KeySigner::generate().unwrap();
    let layer = key.layer(payload(&web, &digest, &BTreeMap::new())).unwrap();
    registry
        .push_signatures(&web, &digest, std::slice::from_ref(&layer))
        .await
        .unwrap();
    let fetched = registry.signatures(&web, &digest).await.unwrap();
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].payload, layer.payload);

    let policy = write_yaml(&reg, "key.yaml", &[key_policy(&reg, &key)]);
    let (ok, text) = verify(&reg, &web.to_string(), &policy);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("verified: {}/shop/web@{digest}", reg.host)),
        "{text}"
    );
    assert!(
        text.contains("PASS    policy shop-signed: satisfied by release-key"),
        "{text}"
    );

    // An unsigned image.
    let api = Reference::parse(&format!("{}/shop/api:1.0", reg.host)).unwrap();
    registry.push_image(&api, b"api layer").await.unwrap();
    let (ok, text) = verify(&reg, &api.to_string(), &policy);
    assert!(!ok);
    assert!(text.contains("the image has no signatures"), "{text}");
    assert!(
        text.contains("error: ") && text.contains("is refused"),
        "{text}"
    );

    // Signed, but by another key.
    let other = KeySigner::generate().unwrap();
    let (ok, text) = verify(
        &reg,
        &web.to_string(),
        &write_yaml(&reg, "other.yaml", &[key_policy(&reg, &other)]),
    );
    assert!(!ok);
    assert!(
        text.contains("does not verify with the authority's key"),
        "{text}"
    );

    // The tag re-pointed to another image after it was signed: the new digest is unsigned.
    let moved = registry.push_image(&web, b"something else").await.unwrap();
    assert_ne!(moved, digest);
    let (ok, text) = verify(&reg, &web.to_string(), &policy);
    assert!(!ok, "{text}");
    assert!(text.contains(&format!("digest  {moved}")), "{text}");
    // The verified digest itself still verifies.
    let (ok, text) = verify(&reg, &format!("{}/shop/web@{digest}", reg.host), &policy);
    assert!(ok, "{text}");

    // An image no policy covers is refused by default.
    let (ok, text) = verify(&reg, &format!("{}/other/app:1", reg.host), &policy);
    assert!(!ok);
    assert!(text.contains("no image policy covers it"), "{text}");

    // A policy with no authorities refuses what it covers.
    let mut empty = key_policy(&reg, &key);
    empty["spec"]["authorities"] = json!([]);
    let (ok, text) = verify(
        &reg,
        &web.to_string(),
        &write_yaml(&reg, "empty.yaml", &[empty]),
    );
    assert!(!ok);
    assert!(text.contains("missing field(s): authorities"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn attestations_are_read_from_the_registry_and_their_predicates_judged_with_rego() {
    let reg = OciRegistry::start(false).unwrap();
    let registry = client(&reg);
    let image = Reference::parse(&format!("{}/shop/scanned:3.1", reg.host)).unwrap();
    let digest = registry.push_image(&image, b"scanned layer").await.unwrap();
    let key = KeySigner::generate().unwrap();
    let scan = |critical: u64| {
        key.attestation(&garrison_supply_chain::sign::statement(
            &image,
            &digest,
            "https://cosign.sigstore.dev/attestation/vuln/v1",
            json!({"scanner": {"result": {"summary": {"CRITICAL": critical}}}}),
        ))
        .unwrap()
    };
    let mut policy = key_policy(&reg, &key);
    policy["spec"]["authorities"][0]["attestations"] = json!([{
        "name": "no-criticals", "predicateType": "vuln",
        "policy": {"type": "rego", "data": "package sigstore\nisCompliant { input.predicate.scanner.result.summary.CRITICAL == 0 }"}}]);
    let file = write_yaml(&reg, "scan.yaml", &[policy]);
    // No attestation yet.
    let (ok, text) = verify(&reg, &image.to_string(), &file);
    assert!(!ok);
    assert!(text.contains("the image has no attestations"), "{text}");
    // A scan with a critical finding.
    registry
        .push_attestations(&image, &digest, &[scan(4)])
        .await
        .unwrap();
    let (ok, text) = verify(&reg, &image.to_string(), &file);
    assert!(!ok);
    assert!(text.contains("policy is not compliant"), "{text}");
    // A clean scan.
    registry
        .push_attestations(&image, &digest, &[scan(0)])
        .await
        .unwrap();
    let (ok, text) = verify(&reg, &image.to_string(), &file);
    assert!(ok, "{text}");
    assert!(text.contains("satisfied by release-key"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn keyless_signatures_verify_offline_against_a_trust_root() {
    let reg = OciRegistry::start(false).unwrap();
    let registry = client(&reg);
    let image = Reference::parse(&format!("{}/shop/keyless:2.0", reg.host)).unwrap();
    let digest = registry.push_image(&image, b"keyless layer").await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    let sigstore = LocalSigstore::generate(now).unwrap();
    let cert = sigstore
        .issue(
            "release@garrison.test",
            ISSUER,
            now,
            now + time::Duration::minutes(10),
        )
        .unwrap();
    let layer = sigstore
        .layer(
            &cert,
            payload(&image, &digest, &BTreeMap::new()),
            now.unix_timestamp() + 30,
        )
        .unwrap();
    registry
        .push_signatures(&image, &digest, &[layer])
        .await
        .unwrap();
    let policy = |subject: &str| {
        json!({"apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
            "metadata": {"name": "keyless"},
            "spec": {"images": [{"glob": format!("{}/shop/*", reg.host)}],
                "authorities": [{"name": "release", "keyless": {"url": "https://fulcio.sigstore.dev",
                    "trustRootRef": "local", "identities": [{"issuer": ISSUER, "subject": subject}]}}]}})
    };
    let file = write_yaml(
        &reg,
        "keyless.yaml",
        &[
            sigstore.trust_root("local"),
            policy("release@garrison.test"),
        ],
    );
    let (ok, text) = verify(&reg, &image.to_string(), &file);
    assert!(ok, "{text}");
    assert!(text.contains(&format!("@{digest}")), "{text}");
    let wrong = write_yaml(
        &reg,
        "wrong.yaml",
        &[
            sigstore.trust_root("local"),
            policy("someone@garrison.test"),
        ],
    );
    let (ok, text) = verify(&reg, &image.to_string(), &wrong);
    assert!(!ok);
    assert!(text.contains("the certificate's identity"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_wants_credentials_gets_the_pull_secrets() {
    let reg = OciRegistry::start(true).unwrap();
    let (user, password) = reg.credentials.clone().unwrap();
    let mut anonymous = RegistryConfig::default();
    anonymous.add_ca_pem(&reg.ca_pem).unwrap();
    let image = Reference::parse(&format!("{}/shop/private:1", reg.host)).unwrap();
    let e = Registry::new(anonymous.clone())
        .unwrap()
        .resolve(&image)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("no pull secret has any for it"),
        "{e}"
    );
    let secret = |user: &str, password: &str| {
        json!({"auths": {reg.host.clone(): {"username": user, "password": password}}}).to_string()
    };
    let mut wrong = anonymous.clone();
    wrong
        .add_docker_config(secret(&user, "not-the-password").as_bytes())
        .unwrap();
    let e = Registry::new(wrong)
        .unwrap()
        .resolve(&image)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("refused the pull secret's credentials"),
        "{e}"
    );
    assert!(!e.to_string().contains("not-the-password"));

    // With the pull secret: push, sign, and verify through the CLI with --pull-secret.
    let mut config = anonymous;
    config
        .add_docker_config(secret(&user, &password).as_bytes())
        .unwrap();
    let registry = Registry::new(config).unwrap();
    let digest = registry.push_image(&image, b"private layer").await.unwrap();
    let key = KeySigner::generate().unwrap();
    registry
        .push_signatures(
            &image,
            &digest,
            &[key
                .layer(payload(&image, &digest, &BTreeMap::new()))
                .unwrap()],
        )
        .await
        .unwrap();
    let policy = write_yaml(&reg, "key.yaml", &[key_policy(&reg, &key)]);
    let secret_file = reg.scratch().join("pull-secret.json");
    std::fs::write(&secret_file, secret(&user, &password)).unwrap();
    let ca = reg.ca_file();
    let out = garrison(&[
        "image",
        "verify",
        &image.to_string(),
        "--policy",
        &policy,
        "--registry-ca",
        ca.to_str().unwrap(),
        "--pull-secret",
        secret_file.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&format!("@{digest}")), "{text}");
    assert!(!text.contains(&password), "the password is never printed");
}

fn work(name: &str, image: &str) -> serde_json::Value {
    json!({
        "apiVersion": "work.open-cluster-management.io/v1", "kind": "ManifestWork",
        "metadata": {"name": name, "namespace": "c1"},
        "spec": {"workload": {"manifests": [
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": format!("{name}-config"), "namespace": "default"}, "data": {"a": "1"}},
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": name, "namespace": "default"},
             "spec": {"selector": {"matchLabels": {"app": name}},
                      "template": {"metadata": {"labels": {"app": name}},
                                   "spec": {"containers": [{"name": "main", "image": image}]}}}},
        ]}}
    })
}

async fn applied(
    works: &kube::Api<garrison_api::ManifestWork>,
    name: &str,
    status: &str,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    garrison_e2e::eventually(60, &format!("work {name} Applied={status}"), || async {
        let w = works.get(name).await.ok()?;
        w.status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Applied" && c.status == status)
    })
    .await
}

/// The whole path: an image policy written once on the hub as an OCM Policy template, placed
/// on a cluster; the cluster's agent verifies every image of every work before applying it,
/// and applies the verified digest.
#[tokio::test(flavor = "multi_thread")]
async fn works_apply_only_verified_images_pinned_to_their_digest() {
    use garrison_api::policy::v1::Policy;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, PostParams};

    let reg = OciRegistry::start(false).unwrap();
    let registry = client(&reg);
    let signed = Reference::parse(&format!("{}/shop/web:1.0", reg.host)).unwrap();
    let digest = registry.push_image(&signed, b"web layer").await.unwrap();
    let key = KeySigner::generate().unwrap();
    registry
        .push_signatures(
            &signed,
            &digest,
            &[key
                .layer(payload(&signed, &digest, &BTreeMap::new()))
                .unwrap()],
        )
        .await
        .unwrap();
    let unsigned = Reference::parse(&format!("{}/shop/api:1.0", reg.host)).unwrap();
    registry.push_image(&unsigned, b"api layer").await.unwrap();
    // Signed, by a key the policy does not trust.
    let stranger = Reference::parse(&format!("{}/shop/stranger:1.0", reg.host)).unwrap();
    let stranger_digest = registry
        .push_image(&stranger, b"stranger layer")
        .await
        .unwrap();
    let other_key = KeySigner::generate().unwrap();
    registry
        .push_signatures(
            &stranger,
            &stranger_digest,
            &[other_key
                .layer(payload(&stranger, &stranger_digest, &BTreeMap::new()))
                .unwrap()],
        )
        .await
        .unwrap();
    // Keyless: one signed in time by the release identity, one logged after its certificate
    // expired, one by another identity.
    let now = time::OffsetDateTime::now_utc();
    let sigstore = LocalSigstore::generate(now).unwrap();
    let mut keyless = BTreeMap::new();
    for (name, subject, logged_after) in [
        ("good", "release@garrison.test", 30),
        ("expired", "release@garrison.test", 3600),
        ("intruder", "intruder@garrison.test", 30),
    ] {
        let r = Reference::parse(&format!("{}/keyless/{name}:1", reg.host)).unwrap();
        let d = registry.push_image(&r, name.as_bytes()).await.unwrap();
        let cert = sigstore
            .issue(subject, ISSUER, now, now + time::Duration::minutes(10))
            .unwrap();
        let layer = sigstore
            .layer(
                &cert,
                payload(&r, &d, &BTreeMap::new()),
                now.unix_timestamp() + logged_after,
            )
            .unwrap();
        registry.push_signatures(&r, &d, &[layer]).await.unwrap();
        keyless.insert(name, (r, d));
    }

    let hub = garrison_e2e::Hub::start().await.unwrap();
    let ca = reg.ca_file();
    let agents =
        garrison_e2e::join_and_accept(&hub, &["c1"], &["--registry-ca", ca.to_str().unwrap()])
            .await;
    let dir = hub.data_dir().to_str().unwrap().to_string();
    for addon in ["image-verification", "governance-policy-framework"] {
        garrison_e2e::ok(garrison(&[
            "addon",
            "enable",
            addon,
            "--clusters",
            "c1",
            "--data-dir",
            &dir,
        ]));
    }
    garrison_e2e::ok(hub.kubectl(&["create", "namespace", "policies"]));
    let policy = json!({
        "apiVersion": "policy.open-cluster-management.io/v1", "kind": "Policy",
        "metadata": {"name": "signed-images", "namespace": "policies"},
        "spec": {"remediationAction": "enforce", "disabled": false, "policy-templates": [
            {"objectDefinition": key_policy(&reg, &key)},
            {"objectDefinition": sigstore.trust_root("local")},
            {"objectDefinition": {"apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
                "metadata": {"name": "keyless-release"},
                "spec": {"images": [{"glob": format!("{}/keyless/*", reg.host)}],
                    "authorities": [{"name": "release", "keyless": {"url": "https://fulcio.sigstore.dev",
                        "trustRootRef": "local",
                        "identities": [{"issuer": ISSUER, "subject": "release@garrison.test"}]}}]}}}]}});
    let docs = [
        json!({"apiVersion": "cluster.open-cluster-management.io/v1beta2", "kind": "ManagedClusterSetBinding",
            "metadata": {"name": "default", "namespace": "policies"}, "spec": {"clusterSet": "default"}}),
        json!({"apiVersion": "cluster.open-cluster-management.io/v1beta1", "kind": "Placement",
            "metadata": {"name": "all", "namespace": "policies"}, "spec": {"clusterSets": ["default"]}}),
        policy,
        json!({"apiVersion": "policy.open-cluster-management.io/v1", "kind": "PlacementBinding",
            "metadata": {"name": "signed-images", "namespace": "policies"},
            "placementRef": {"apiGroup": "cluster.open-cluster-management.io", "kind": "Placement", "name": "all"},
            "subjects": [{"apiGroup": "policy.open-cluster-management.io", "kind": "Policy", "name": "signed-images"}]}),
    ];
    let file = write_yaml(&reg, "policy.yaml", &docs);
    garrison_e2e::ok(hub.kubectl(&["apply", "-f", &file]));
    let admin = hub.client().await.unwrap();
    // The template reports that it is enforced on the cluster.
    let replicas: Api<Policy> = Api::namespaced(admin.clone(), "c1");
    let message = garrison_e2e::eventually(90, "the image policy reported Compliant", || async {
        let p = replicas.get("policies.signed-images").await.ok()?;
        let st = p.status?;
        (st.compliant.as_deref() == Some("Compliant"))
            .then(|| st.details[0].history[0].message.clone())
    })
    .await;
    assert!(
        message.contains("ClusterImagePolicy shop-signed is enforced"),
        "{message}"
    );
    let listed = garrison_e2e::ok(garrison(&[
        "get",
        "imagepolicies",
        "-o",
        "wide",
        "--data-dir",
        &dir,
    ]));
    let row = listed
        .lines()
        .find(|l| l.contains("shop-signed"))
        .unwrap_or_else(|| panic!("{listed}"));
    for cell in [
        "policies",
        "signed-images",
        "release-key(key)",
        "enforce",
        "1/1",
        "c1=Compliant",
    ] {
        assert!(row.contains(cell), "{cell} missing from {row}");
    }

    // A signed image by tag: applied, pinned to the verified digest.
    let works: Api<garrison_api::ManifestWork> = Api::namespaced(admin.clone(), "c1");
    works
        .create(
            &PostParams::default(),
            &serde_json::from_value(work("web", &signed.to_string())).unwrap(),
        )
        .await
        .unwrap();
    applied(&works, "web", "True").await;
    let spoke = agents[0].spoke().await;
    let deployed = Api::<Deployment>::namespaced(spoke.clone(), "default")
        .get("web")
        .await
        .unwrap();
    let image = deployed.spec.template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap();
    assert_eq!(image, format!("{}/shop/web@{digest}", reg.host));

    // The tag re-pointed to an unsigned image after the work was applied: the cluster keeps
    // running the verified digest, and the work's next sync resolves the tag again and is
    // refused (deleting nothing it applied).
    let moved = registry
        .push_image(&signed, b"swapped layer")
        .await
        .unwrap();
    assert_ne!(moved, digest);
    let refused = applied(&works, "web", "False").await;
    assert_eq!(refused.reason, "ImageVerificationFailed");
    assert!(
        refused.message.contains("the image has no signatures"),
        "{}",
        refused.message
    );
    let still = Api::<Deployment>::namespaced(spoke.clone(), "default")
        .get("web")
        .await
        .unwrap();
    assert_eq!(
        still.spec.template.spec.unwrap().containers[0]
            .image
            .clone()
            .unwrap(),
        format!("{}/shop/web@{digest}", reg.host),
        "what runs is still exactly what was verified"
    );

    // An unsigned image: the whole work is refused, nothing of it applied.
    works
        .create(
            &PostParams::default(),
            &serde_json::from_value(work("api", &unsigned.to_string())).unwrap(),
        )
        .await
        .unwrap();
    let refused = applied(&works, "api", "False").await;
    assert_eq!(refused.reason, "ImageVerificationFailed");
    assert!(
        refused.message.contains(&unsigned.to_string())
            && refused
                .message
                .contains("authority release-key: the image has no signatures"),
        "{}",
        refused.message
    );
    assert!(
        Api::<ConfigMap>::namespaced(spoke.clone(), "default")
            .get_opt("api-config")
            .await
            .unwrap()
            .is_none(),
        "nothing of a refused work is applied"
    );

    // Signed by a key the policy does not trust.
    works
        .create(
            &PostParams::default(),
            &serde_json::from_value(work("stranger", &stranger.to_string())).unwrap(),
        )
        .await
        .unwrap();
    let refused = applied(&works, "stranger", "False").await;
    assert_eq!(refused.reason, "ImageVerificationFailed");
    assert!(
        refused
            .message
            .contains("does not verify with the authority's key"),
        "{}",
        refused.message
    );

    // Keyless: the release identity's image is applied pinned; an expired certificate and
    // another identity are refused.
    let (good, good_digest) = &keyless["good"];
    works
        .create(
            &PostParams::default(),
            &serde_json::from_value(work("good", &good.to_string())).unwrap(),
        )
        .await
        .unwrap();
    applied(&works, "good", "True").await;
    let deployed = Api::<Deployment>::namespaced(spoke.clone(), "default")
        .get("good")
        .await
        .unwrap();
    assert_eq!(
        deployed.spec.template.spec.unwrap().containers[0]
            .image
            .clone()
            .unwrap(),
        format!("{}/keyless/good@{good_digest}", reg.host)
    );
    for (name, why) in [
        ("expired", "was not valid when the signature was logged"),
        ("intruder", "the certificate's identity"),
    ] {
        let (r, _) = &keyless[name];
        works
            .create(
                &PostParams::default(),
                &serde_json::from_value(work(name, &r.to_string())).unwrap(),
            )
            .await
            .unwrap();
        let refused = applied(&works, name, "False").await;
        assert_eq!(refused.reason, "ImageVerificationFailed");
        assert!(refused.message.contains(why), "{name}: {}", refused.message);
    }
}

/// `key.secretRef`: the key is read from a Secret in the add-on's namespace on the cluster, as
/// upstream reads it from the policy controller's namespace.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_in_a_secret_on_the_cluster_verifies_works() {
    use garrison_api::policy::v1::Policy;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, PostParams};

    let reg = OciRegistry::start(false).unwrap();
    let registry = client(&reg);
    let image = Reference::parse(&format!("{}/shop/web:2.0", reg.host)).unwrap();
    let digest = registry.push_image(&image, b"web 2").await.unwrap();
    let key = KeySigner::generate().unwrap();
    registry
        .push_signatures(
            &image,
            &digest,
            &[key
                .layer(payload(&image, &digest, &BTreeMap::new()))
                .unwrap()],
        )
        .await
        .unwrap();
    let hub = garrison_e2e::Hub::start().await.unwrap();
    let ca = reg.ca_file();
    let agents =
        garrison_e2e::join_and_accept(&hub, &["c1"], &["--registry-ca", ca.to_str().unwrap()])
            .await;
    let dir = hub.data_dir().to_str().unwrap().to_string();
    for addon in ["image-verification", "governance-policy-framework"] {
        garrison_e2e::ok(garrison(&[
            "addon",
            "enable",
            addon,
            "--clusters",
            "c1",
            "--data-dir",
            &dir,
        ]));
    }
    // The key, in the add-on's namespace on the cluster (made when the add-on registers).
    let spoke = agents[0].spoke().await;
    let secrets: Api<Secret> =
        Api::namespaced(spoke.clone(), "open-cluster-management-agent-addon");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(spoke.clone());
    garrison_e2e::eventually(60, "the add-on namespace", || async {
        namespaces
            .get_opt("open-cluster-management-agent-addon")
            .await
            .ok()
            .flatten()
    })
    .await;
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "release-key"},
                "stringData": {"cosign.pub": key.public_key_pem()}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let mut cip = key_policy(&reg, &key);
    cip["spec"]["authorities"][0]["key"] = json!({"secretRef": {"name": "release-key"}});
    garrison_e2e::ok(hub.kubectl(&["create", "namespace", "policies"]));
    let docs = [
        json!({"apiVersion": "cluster.open-cluster-management.io/v1beta2", "kind": "ManagedClusterSetBinding",
            "metadata": {"name": "default", "namespace": "policies"}, "spec": {"clusterSet": "default"}}),
        json!({"apiVersion": "cluster.open-cluster-management.io/v1beta1", "kind": "Placement",
            "metadata": {"name": "all", "namespace": "policies"}, "spec": {"clusterSets": ["default"]}}),
        json!({"apiVersion": "policy.open-cluster-management.io/v1", "kind": "Policy",
            "metadata": {"name": "signed-images", "namespace": "policies"},
            "spec": {"remediationAction": "enforce", "disabled": false,
                "policy-templates": [{"objectDefinition": cip}]}}),
        json!({"apiVersion": "policy.open-cluster-management.io/v1", "kind": "PlacementBinding",
            "metadata": {"name": "signed-images", "namespace": "policies"},
            "placementRef": {"apiGroup": "cluster.open-cluster-management.io", "kind": "Placement", "name": "all"},
            "subjects": [{"apiGroup": "policy.open-cluster-management.io", "kind": "Policy", "name": "signed-images"}]}),
    ];
    let file = write_yaml(&reg, "policy.yaml", &docs);
    garrison_e2e::ok(hub.kubectl(&["apply", "-f", &file]));
    let admin = hub.client().await.unwrap();
    let replicas: Api<Policy> = Api::namespaced(admin.clone(), "c1");
    garrison_e2e::eventually(90, "the image policy reported Compliant", || async {
        let p = replicas.get("policies.signed-images").await.ok()?;
        (p.status?.compliant.as_deref() == Some("Compliant")).then_some(())
    })
    .await;
    let works: Api<garrison_api::ManifestWork> = Api::namespaced(admin.clone(), "c1");
    works
        .create(
            &PostParams::default(),
            &serde_json::from_value(work("web", &image.to_string())).unwrap(),
        )
        .await
        .unwrap();
    applied(&works, "web", "True").await;
}
