//! Verification against policies, attack by attack: each test builds what an attacker would
//! push (signature layers in cosign's format) and checks the verdict.

use std::collections::BTreeMap;

use garrison_supply_chain::error::PolicyError;
use garrison_supply_chain::policy::Policies;
use garrison_supply_chain::reference::{Digest, Reference};
use garrison_supply_chain::sign::{Ct, KeySigner, LocalSigstore, payload};
use garrison_supply_chain::verify::{SignatureLayer, Verdict, verify, verify_with};
use serde_json::{Value, json};

const ISSUER: &str = "https://accounts.garrison.test";

fn image() -> (Reference, Digest) {
    let r = Reference::parse("registry.garrison.test/shop/web:1.0").unwrap();
    (r, Digest::sha256_of(b"the image manifest"))
}

fn key_policy(name: &str, keys: &[&KeySigner], extra: Value) -> Value {
    let authorities: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| json!({"name": format!("signer-{i}"), "key": {"data": k.public_key_pem()}}))
        .collect();
    let mut p = json!({
        "apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": name},
        "spec": {"images": [{"glob": "registry.garrison.test/**"}], "authorities": authorities},
    });
    if let Some(o) = extra.as_object() {
        for (k, v) in o {
            p["spec"][k] = v.clone();
        }
    }
    p
}

fn judge(objects: &[Value], layers: &[SignatureLayer]) -> Verdict {
    let policies = Policies::load(objects);
    assert!(policies.broken.is_empty(), "{:?}", policies.broken);
    let (_, digest) = image();
    verify(&policies.policies[0], &policies.roots, &digest, layers)
}

fn signed(key: &KeySigner, annotations: &[(&str, &str)]) -> SignatureLayer {
    let (r, d) = image();
    let a: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    key.layer(payload(&r, &d, &a)).unwrap()
}

#[test]
fn a_signature_by_the_trusted_key_passes_and_nothing_else_does() {
    let trusted = KeySigner::generate().unwrap();
    let other = KeySigner::generate().unwrap();
    let policy = key_policy("p", &[&trusted], json!({}));
    let v = judge(std::slice::from_ref(&policy), &[signed(&trusted, &[])]);
    assert!(v.passed, "{}", v.summary());
    // No signature at all.
    let v = judge(std::slice::from_ref(&policy), &[]);
    assert!(!v.passed);
    assert!(
        v.summary().contains("the image has no signatures"),
        "{}",
        v.summary()
    );
    // A signature by another key.
    let v = judge(std::slice::from_ref(&policy), &[signed(&other, &[])]);
    assert!(!v.passed);
    assert!(
        v.summary()
            .contains("does not verify with the authority's key"),
        "{}",
        v.summary()
    );
    // The trusted key's signature of another image, replayed.
    let (r, _) = image();
    let replayed = trusted
        .layer(payload(
            &r,
            &Digest::sha256_of(b"another image"),
            &BTreeMap::new(),
        ))
        .unwrap();
    let v = judge(std::slice::from_ref(&policy), &[replayed]);
    assert!(!v.passed);
    assert!(
        v.summary().contains("the payload is for sha256:"),
        "{}",
        v.summary()
    );
    // A payload edited after signing.
    let mut edited = signed(&trusted, &[]);
    edited.payload.push(b' ');
    assert!(!judge(std::slice::from_ref(&policy), &[edited]).passed);
}

#[test]
fn a_required_annotation_must_be_on_the_layer_the_key_signed() {
    let trusted = KeySigner::generate().unwrap();
    let attacker = KeySigner::generate().unwrap();
    let mut policy = key_policy("p", &[&trusted], json!({}));
    policy["spec"]["authorities"][0]["annotations"] = json!({"env": "prod"});
    // The trusted key signed without the annotation; the attacker's layer carries it.
    let layers = [signed(&trusted, &[]), signed(&attacker, &[("env", "prod")])];
    let v = judge(std::slice::from_ref(&policy), &layers);
    assert!(
        !v.passed,
        "a layer borrowed another layer's proof: {}",
        v.summary()
    );
    assert!(
        v.summary().contains("annotation env=prod is missing"),
        "{}",
        v.summary()
    );
    // A wrong value is named.
    let v = judge(
        std::slice::from_ref(&policy),
        &[signed(&trusted, &[("env", "dev")])],
    );
    assert!(
        v.summary()
            .contains("annotation env is \"dev\", not \"prod\""),
        "{}",
        v.summary()
    );
    // The same layer with both passes.
    assert!(
        judge(
            std::slice::from_ref(&policy),
            &[signed(&trusted, &[("env", "prod")])]
        )
        .passed
    );
}

#[test]
fn a_threshold_needs_that_many_distinct_signers() {
    let keys: Vec<KeySigner> = (0..3).map(|_| KeySigner::generate().unwrap()).collect();
    let refs: Vec<&KeySigner> = keys.iter().collect();
    let policy = key_policy("two-of-three", &refs, json!({"threshold": 2}));
    let one = judge(std::slice::from_ref(&policy), &[signed(&keys[0], &[])]);
    assert!(!one.passed);
    assert!(
        one.summary()
            .contains("1 of 2 required authorities satisfied"),
        "{}",
        one.summary()
    );
    // The same signer twice is still one signer.
    let twice = judge(
        std::slice::from_ref(&policy),
        &[signed(&keys[0], &[]), signed(&keys[0], &[])],
    );
    assert!(!twice.passed, "{}", twice.summary());
    let two = judge(
        std::slice::from_ref(&policy),
        &[signed(&keys[0], &[]), signed(&keys[2], &[])],
    );
    assert!(two.passed, "{}", two.summary());
    // Two authorities with the same key cannot both count one signature.
    let same = key_policy(
        "same-key-twice",
        &[&keys[0], &keys[0]],
        json!({"threshold": 2}),
    );
    let v = judge(std::slice::from_ref(&same), &[signed(&keys[0], &[])]);
    assert!(!v.passed, "one signature counted for two authorities");
    assert!(
        v.summary().contains("already count for other authorities"),
        "{}",
        v.summary()
    );
    // Nor two signatures by that key, or one layer pushed twice: one signer is one signer.
    let copy = signed(&keys[0], &[]);
    assert!(
        !judge(
            std::slice::from_ref(&same),
            &[signed(&keys[0], &[]), signed(&keys[0], &[])]
        )
        .passed
    );
    assert!(!judge(std::slice::from_ref(&same), &[copy.clone(), copy]).passed);
}

#[test]
fn policies_that_would_pass_without_checking_are_refused_when_read() {
    let key = KeySigner::generate().unwrap();
    let mut empty = key_policy("empty", &[], json!({}));
    empty["spec"]["authorities"] = json!([]);
    let too_many = key_policy("too-many", &[&key], json!({"threshold": 2}));
    let mut kms = key_policy("kms", &[&key], json!({}));
    kms["spec"]["authorities"][0]["key"] = json!({"kms": "awskms:///alias/x"});
    let mut attest = key_policy("attest", &[&key], json!({}));
    attest["spec"]["authorities"][0]["attestations"] = json!([{"name": "sbom", "predicateType": "spdx", "policy": {"type": "cue", "data": "predicateType: \"x\""}}]);
    let mut both = key_policy("both", &[&key], json!({}));
    both["spec"]["authorities"][0]["static"] = json!({"action": "pass"});
    let mut misspelt = key_policy("misspelt", &[&key], json!({"threshhold": 2}));
    misspelt["spec"]["authorities"][0]["annotation"] = json!({"env": "prod"});
    let mut no_sct = key_policy("no-sct", &[], json!({}));
    no_sct["spec"]["authorities"] = json!([{"keyless": {"trustRootRef": "local",
        "identities": [{"issuer": ISSUER, "subject": "a@b"}]}}]);
    let mut keyless_online = key_policy("online", &[], json!({}));
    keyless_online["spec"]["authorities"] = json!([{"keyless": {"url": "https://fulcio.sigstore.dev",
        "identities": [{"issuer": ISSUER, "subject": "a@b"}]}}]);
    for p in [
        empty,
        too_many,
        kms,
        attest,
        both,
        keyless_online,
        misspelt,
        no_sct,
    ] {
        let loaded = Policies::load(std::slice::from_ref(&p));
        assert!(
            loaded.policies.is_empty(),
            "{} was accepted",
            p["metadata"]["name"]
        );
        let (globs, e) = &loaded.broken[0];
        assert_eq!(globs.as_ref().map(Vec::len), Some(1), "{e}");
        assert!(
            matches!(
                e,
                PolicyError::Invalid { .. } | PolicyError::Unsupported { .. }
            ),
            "{e}"
        );
    }
}

#[test]
fn static_authorities_pass_or_fail_without_signatures() {
    let pass = json!({"apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": "allow"}, "spec": {"images": [{"glob": "**"}],
        "authorities": [{"static": {"action": "pass"}}]}});
    assert!(judge(&[pass], &[]).passed);
    let fail = json!({"apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": "deny"}, "spec": {"images": [{"glob": "**"}], "mode": "warn",
        "authorities": [{"static": {"action": "fail", "message": "frozen"}}]}});
    let v = judge(&[fail], &[]);
    assert!(!v.passed && v.warn_only);
    assert!(v.summary().contains("disallowed by static policy: frozen"));
}

struct Keyless {
    sigstore: LocalSigstore,
    now: time::OffsetDateTime,
}

impl Keyless {
    fn new() -> Keyless {
        let now = time::OffsetDateTime::now_utc();
        Keyless {
            sigstore: LocalSigstore::generate(now).unwrap(),
            now,
        }
    }

    fn policy(&self, subject: &str) -> Vec<Value> {
        vec![
            self.sigstore.trust_root("local"),
            json!({"apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
                "metadata": {"name": "keyless"}, "spec": {"images": [{"glob": "registry.garrison.test/**"}],
                "authorities": [{"name": "release", "keyless": {"url": "https://fulcio.sigstore.dev",
                    "trustRootRef": "local",
                    "identities": [{"issuer": ISSUER, "subject": subject}]}}]}}),
        ]
    }

    /// A layer signed by `subject`'s 10-minute certificate, logged `after` seconds after issue.
    fn layer(&self, subject: &str, after: i64) -> SignatureLayer {
        let cert = self
            .sigstore
            .issue(
                subject,
                ISSUER,
                self.now,
                self.now + time::Duration::minutes(10),
            )
            .unwrap();
        let (r, d) = image();
        self.sigstore
            .layer(
                &cert,
                payload(&r, &d, &BTreeMap::new()),
                self.now.unix_timestamp() + after,
            )
            .unwrap()
    }
}

#[test]
fn a_keyless_signature_passes_with_the_right_identity_logged_in_time() {
    let k = Keyless::new();
    let v = judge(
        &k.policy("release@garrison.test"),
        &[k.layer("release@garrison.test", 60)],
    );
    assert!(v.passed, "{}", v.summary());
    // A regexp identity, unanchored as cosign's.
    let mut p = k.policy("x");
    p[1]["spec"]["authorities"][0]["keyless"]["identities"] = json!([{"issuerRegExp": "^https://accounts\\.garrison\\.test$", "subjectRegExp": "@garrison\\.test$"}]);
    assert!(judge(&p, &[k.layer("ci@garrison.test", 60)]).passed);
}

#[test]
fn keyless_attacks_are_refused() {
    let k = Keyless::new();
    let policy = k.policy("release@garrison.test");
    // Another identity.
    let v = judge(&policy, &[k.layer("intruder@garrison.test", 60)]);
    assert!(!v.passed);
    assert!(
        v.summary().contains("the certificate's identity"),
        "{}",
        v.summary()
    );
    // Logged after the certificate expired.
    let v = judge(&policy, &[k.layer("release@garrison.test", 3600)]);
    assert!(!v.passed);
    assert!(
        v.summary()
            .contains("was not valid when the signature was logged"),
        "{}",
        v.summary()
    );
    // A certificate from another CA, logged in the trusted log.
    let rogue = LocalSigstore::generate(k.now).unwrap();
    let cert = rogue
        .issue(
            "release@garrison.test",
            ISSUER,
            k.now,
            k.now + time::Duration::minutes(10),
        )
        .unwrap();
    let (r, d) = image();
    let p = payload(&r, &d, &BTreeMap::new());
    let mut layer = k
        .sigstore
        .layer(&cert, p.clone(), k.now.unix_timestamp() + 60)
        .unwrap();
    let v = judge(&policy, std::slice::from_ref(&layer));
    assert!(
        v.summary().contains("does not chain to TrustRoot local"),
        "{}",
        v.summary()
    );
    // The same layer with a bundle from an untrusted log.
    layer = rogue
        .layer(&cert, p.clone(), k.now.unix_timestamp() + 60)
        .unwrap();
    let v = judge(&policy, &[layer]);
    assert!(
        v.summary().contains("which TrustRoot local does not trust"),
        "{}",
        v.summary()
    );
    // A trusted certificate on a signature its key did not make (made by another key), with a
    // log entry for that signature: the certificate is borrowed.
    let good = k
        .sigstore
        .issue(
            "release@garrison.test",
            ISSUER,
            k.now,
            k.now + time::Duration::minutes(10),
        )
        .unwrap();
    let attacker = KeySigner::generate().unwrap();
    let forged = garrison_supply_chain::sign::Issued {
        cert_pem: good.cert_pem.clone(),
        key: attacker,
        sct_list: None,
    };
    let v = judge(
        &policy,
        &[k.sigstore
            .layer(&forged, p.clone(), k.now.unix_timestamp() + 60)
            .unwrap()],
    );
    assert!(!v.passed);
    assert!(
        v.summary().contains("not made by the certificate's key"),
        "{}",
        v.summary()
    );
    // A genuine layer whose bundle was swapped for another signature's.
    let mut one = k.layer("release@garrison.test", 60);
    let two = k.layer("release@garrison.test", 61);
    let bundle = "dev.sigstore.cosign/bundle".to_string();
    one.annotations
        .insert(bundle.clone(), two.annotations[&bundle].clone());
    let v = judge(&policy, &[one]);
    assert!(
        v.summary().contains("the Rekor entry is for another"),
        "{}",
        v.summary()
    );
    // A tampered signed entry timestamp (the log time moved back into the validity window).
    let mut late = k.layer("release@garrison.test", 3600);
    let mut b: Value = serde_json::from_str(&late.annotations[&bundle]).unwrap();
    b["Payload"]["integratedTime"] = json!(k.now.unix_timestamp() + 60);
    late.annotations.insert(bundle.clone(), b.to_string());
    let v = judge(&policy, &[late]);
    assert!(
        v.summary()
            .contains("signed entry timestamp does not verify"),
        "{}",
        v.summary()
    );
    // No bundle at all.
    let mut unlogged = k.layer("release@garrison.test", 60);
    unlogged.annotations.remove(&bundle);
    let v = judge(&policy, &[unlogged]);
    assert!(v.summary().contains("no Rekor bundle"), "{}", v.summary());
}

#[test]
fn keyless_certificates_must_have_been_seen_by_a_trusted_ct_log() {
    let k = Keyless::new();
    let policy = k.policy("release@garrison.test");
    let (r, d) = image();
    let with = |ct: Ct<'_>| {
        let cert = k
            .sigstore
            .issue_with(
                "release@garrison.test",
                ISSUER,
                k.now,
                k.now + time::Duration::minutes(10),
                ct,
            )
            .unwrap();
        k.sigstore
            .layer(
                &cert,
                payload(&r, &d, &BTreeMap::new()),
                k.now.unix_timestamp() + 60,
            )
            .unwrap()
    };
    assert!(judge(&policy, &[with(Ct::Logged)]).passed);
    // A certificate no CT log saw: issued in secret.
    let v = judge(&policy, &[with(Ct::Unlogged)]);
    assert!(!v.passed);
    assert!(v.summary().contains("carries no SCT"), "{}", v.summary());
    // An SCT from a log the TrustRoot does not name.
    let rogue_log = KeySigner::generate().unwrap();
    let v = judge(&policy, &[with(Ct::LoggedBy(&rogue_log))]);
    assert!(!v.passed);
    assert!(
        v.summary().contains("which the TrustRoot does not trust"),
        "{}",
        v.summary()
    );
    // A genuine SCT of another certificate, copied into this one.
    let seen = k
        .sigstore
        .issue(
            "release@garrison.test",
            ISSUER,
            k.now,
            k.now + time::Duration::minutes(10),
        )
        .unwrap();
    let v = judge(&policy, &[with(Ct::Copied(&seen))]);
    assert!(!v.passed);
    assert!(
        v.summary().contains("does not verify for this certificate"),
        "{}",
        v.summary()
    );
    // A policy may opt out, as upstream's insecureIgnoreSCT.
    let mut lax = policy.clone();
    lax[1]["spec"]["authorities"][0]["keyless"]["insecureIgnoreSCT"] = json!(true);
    assert!(judge(&lax, &[with(Ct::Unlogged)]).passed);
    // A TrustRoot without CT logs cannot back a policy that checks SCTs.
    let mut no_ct = policy.clone();
    no_ct[0]["spec"]["sigstoreKeys"]
        .as_object_mut()
        .unwrap()
        .remove("ctLogs");
    let loaded = Policies::load(&no_ct);
    assert!(loaded.policies.is_empty());
    assert!(
        loaded.broken[0]
            .1
            .to_string()
            .contains("has no spec.sigstoreKeys.ctLogs"),
        "{}",
        loaded.broken[0].1
    );
    let mut not_bool = policy;
    not_bool[1]["spec"]["authorities"][0]["keyless"]["insecureIgnoreSCT"] = json!("yes");
    assert!(Policies::load(&not_bool).policies.is_empty());
}

fn scan_policy(key: &KeySigner) -> Value {
    let mut p = key_policy("scanned", &[key], json!({}));
    p["spec"]["authorities"][0]["attestations"] = json!([{
        "name": "no-criticals", "predicateType": "vuln",
        "policy": {"type": "rego", "data": "package sigstore\n\nisCompliant[{\"result\": ok, \"error\": msg}] {\n  n := input.predicate.scanner.result.summary.CRITICAL\n  ok := n == 0\n  msg := sprintf(\"%d critical vulnerabilities\", [n])\n}\n"}}]);
    p
}

fn scan(key: &KeySigner, critical: u64, digest: &Digest, predicate_type: &str) -> SignatureLayer {
    let (r, _) = image();
    key.attestation(&garrison_supply_chain::sign::statement(
        &r,
        digest,
        predicate_type,
        json!({"scanner": {"uri": "https://scanner.garrison.test", "result": {"summary": {"CRITICAL": critical}}}}),
    ))
    .unwrap()
}

const VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";

fn judge_attested(objects: &[Value], attestations: &[SignatureLayer]) -> Verdict {
    let policies = Policies::load(objects);
    assert!(policies.broken.is_empty(), "{:?}", policies.broken);
    let (_, digest) = image();
    verify_with(
        &policies.policies[0],
        &policies.roots,
        &digest,
        &[],
        attestations,
    )
}

#[test]
fn an_attestation_passes_when_signed_about_this_image_and_its_policy_holds() {
    let key = KeySigner::generate().unwrap();
    let policy = scan_policy(&key);
    let (_, digest) = image();
    let v = judge_attested(
        std::slice::from_ref(&policy),
        &[scan(&key, 0, &digest, VULN)],
    );
    assert!(v.passed, "{}", v.summary());
    assert_eq!(v.satisfied[0].1, "attestation layer 0");
    // The policy's verdict, with its own message.
    let v = judge_attested(
        std::slice::from_ref(&policy),
        &[scan(&key, 2, &digest, VULN)],
    );
    assert!(!v.passed);
    assert!(
        v.summary().contains("2 critical vulnerabilities"),
        "{}",
        v.summary()
    );
}

#[test]
fn attestation_attacks_are_refused() {
    let key = KeySigner::generate().unwrap();
    let attacker = KeySigner::generate().unwrap();
    let policy = scan_policy(&key);
    let (_, digest) = image();
    let one = |layer: SignatureLayer| judge_attested(std::slice::from_ref(&policy), &[layer]);
    // Signed by another key.
    let v = one(scan(&attacker, 0, &digest, VULN));
    assert!(
        v.summary()
            .contains("no signature of the envelope verifies"),
        "{}",
        v.summary()
    );
    // About another image.
    let v = one(scan(&key, 0, &Digest::sha256_of(b"other"), VULN));
    assert!(
        v.summary().contains("the statement is not about"),
        "{}",
        v.summary()
    );
    // Of another predicate type.
    let v = one(scan(&key, 0, &digest, "https://spdx.dev/Document"));
    assert!(
        v.summary().contains("the predicate type is"),
        "{}",
        v.summary()
    );
    // A statement edited after signing (the critical count zeroed).
    let bad = scan(&key, 3, &digest, VULN);
    let mut envelope: Value = serde_json::from_slice(&bad.payload).unwrap();
    let good = scan(&attacker, 0, &digest, VULN);
    let good_envelope: Value = serde_json::from_slice(&good.payload).unwrap();
    envelope["payload"] = good_envelope["payload"].clone();
    let edited = SignatureLayer {
        payload: serde_json::to_vec(&envelope).unwrap(),
        annotations: bad.annotations.clone(),
    };
    assert!(!one(edited).passed);
    // A signature alone does not stand in for an attestation.
    let policies = Policies::load(std::slice::from_ref(&policy));
    let v = verify_with(
        &policies.policies[0],
        &policies.roots,
        &digest,
        &[signed(&key, &[])],
        &[],
    );
    assert!(!v.passed);
    assert!(
        v.summary().contains("the image has no attestations"),
        "{}",
        v.summary()
    );
}

#[test]
fn attestation_policies_are_checked_when_read() {
    let key = KeySigner::generate().unwrap();
    let mut bad_rego = scan_policy(&key);
    bad_rego["spec"]["authorities"][0]["attestations"][0]["policy"]["data"] =
        json!("package sigstore\nisCompliant {");
    let mut wrong_package = scan_policy(&key);
    wrong_package["spec"]["authorities"][0]["attestations"][0]["policy"]["data"] =
        json!("package other\nisCompliant { true }");
    let mut no_type = scan_policy(&key);
    no_type["spec"]["authorities"][0]["attestations"][0]
        .as_object_mut()
        .unwrap()
        .remove("predicateType");
    for p in [bad_rego, wrong_package, no_type] {
        let loaded = Policies::load(std::slice::from_ref(&p));
        assert!(loaded.policies.is_empty());
        assert!(
            matches!(loaded.broken[0].1, PolicyError::Invalid { .. }),
            "{}",
            loaded.broken[0].1
        );
    }
}

#[test]
fn keys_from_secrets_are_used_as_read_and_unreadable_ones_are_named() {
    use garrison_supply_chain::policy::Secrets;
    let key = KeySigner::generate().unwrap();
    let mut policy = key_policy("from-secret", &[&key], json!({}));
    policy["spec"]["authorities"][0]["key"] = json!({"secretRef": {"name": "release-key"}});
    // Where no Secrets can be read (the CLI), the policy is refused, not passed.
    assert!(
        Policies::load(std::slice::from_ref(&policy))
            .policies
            .is_empty()
    );
    let read =
        std::collections::BTreeMap::from([("release-key".to_string(), Ok(key.public_key_pem()))]);
    let loaded = Policies::load_with(std::slice::from_ref(&policy), Secrets::Resolved(&read));
    let (_, digest) = image();
    let v = verify(
        &loaded.policies[0],
        &loaded.roots,
        &digest,
        &[signed(&key, &[])],
    );
    assert!(v.passed, "{}", v.summary());
    // A rotated key is another policy content: no cached verdict of the old key applies.
    let other = KeySigner::generate().unwrap();
    let rotated =
        std::collections::BTreeMap::from([("release-key".to_string(), Ok(other.public_key_pem()))]);
    let reloaded = Policies::load_with(std::slice::from_ref(&policy), Secrets::Resolved(&rotated));
    assert_ne!(
        reloaded.policies[0].content_hash,
        loaded.policies[0].content_hash
    );
    let broken = std::collections::BTreeMap::from([(
        "release-key".to_string(),
        Err(
            "secret \"release-key\" contains multiple data entries, only one is supported"
                .to_string(),
        ),
    )]);
    let loaded = Policies::load_with(std::slice::from_ref(&policy), Secrets::Resolved(&broken));
    assert!(loaded.policies.is_empty());
    assert!(
        loaded.broken[0]
            .1
            .to_string()
            .contains("multiple data entries"),
        "{}",
        loaded.broken[0].1
    );
    // Both data and secretRef is refused.
    policy["spec"]["authorities"][0]["key"]["data"] = json!(key.public_key_pem());
    assert!(
        Policies::load_with(std::slice::from_ref(&policy), Secrets::Resolved(&read))
            .policies
            .is_empty()
    );
}

/// A keyless policy requiring a vulnerability scan with no criticals, attested by `subject`.
fn keyless_scan_policy(k: &Keyless, subject: &str) -> Vec<Value> {
    let mut objects = k.policy(subject);
    let key = KeySigner::generate().unwrap();
    objects[1]["spec"]["authorities"][0]["attestations"] =
        scan_policy(&key)["spec"]["authorities"][0]["attestations"].clone();
    objects
}

fn keyless_scan(
    k: &Keyless,
    cert: &garrison_supply_chain::sign::Issued,
    critical: u64,
) -> SignatureLayer {
    let (r, digest) = image();
    let statement = garrison_supply_chain::sign::statement(
        &r,
        &digest,
        VULN,
        json!({"scanner": {"result": {"summary": {"CRITICAL": critical}}}}),
    );
    k.sigstore
        .attestation(cert, &statement, k.now.unix_timestamp() + 60)
        .unwrap()
}

#[test]
fn keyless_attestations_pass_when_their_certificate_and_log_entry_hold() {
    let k = Keyless::new();
    let policy = keyless_scan_policy(&k, "ci@garrison.test");
    let issue = |subject: &str| {
        k.sigstore
            .issue(subject, ISSUER, k.now, k.now + time::Duration::minutes(10))
            .unwrap()
    };
    let ci = issue("ci@garrison.test");
    let v = judge_attested(&policy, &[keyless_scan(&k, &ci, 0)]);
    assert!(v.passed, "{}", v.summary());
    assert!(!judge_attested(&policy, &[keyless_scan(&k, &ci, 1)]).passed);
    // Another identity.
    let v = judge_attested(
        &policy,
        &[keyless_scan(&k, &issue("intruder@garrison.test"), 0)],
    );
    assert!(
        v.summary().contains("the certificate's identity"),
        "{}",
        v.summary()
    );
    // The CI's certificate on an envelope another key signed, logged with that certificate.
    let borrowed = garrison_supply_chain::sign::Issued {
        cert_pem: ci.cert_pem.clone(),
        key: KeySigner::generate().unwrap(),
        sct_list: None,
    };
    let v = judge_attested(&policy, &[keyless_scan(&k, &borrowed, 0)]);
    assert!(!v.passed);
    assert!(
        v.summary()
            .contains("no signature of the envelope was made by the certificate's key"),
        "{}",
        v.summary()
    );
    // A passing envelope's bundle on a failing envelope: the log entry is for other bytes.
    let mut bad = keyless_scan(&k, &ci, 5);
    let good = keyless_scan(&k, &ci, 0);
    let bundle = "dev.sigstore.cosign/bundle".to_string();
    bad.annotations
        .insert(bundle.clone(), good.annotations[&bundle].clone());
    let v = judge_attested(&policy, &[bad]);
    assert!(v.summary().contains("another envelope"), "{}", v.summary());
    // An envelope that was never logged.
    let mut unlogged = keyless_scan(&k, &ci, 0);
    unlogged.annotations.remove(&bundle);
    assert!(!judge_attested(&policy, &[unlogged]).passed);
    // A hashedrekord entry (a signature's) does not log an envelope.
    let mut sig_entry = keyless_scan(&k, &ci, 0);
    let signature = k.layer("ci@garrison.test", 60);
    sig_entry
        .annotations
        .insert(bundle.clone(), signature.annotations[&bundle].clone());
    let v = judge_attested(&policy, &[sig_entry]);
    assert!(
        v.summary().contains("not a dsse or intoto"),
        "{}",
        v.summary()
    );
}
