//! Fuzz targets for the parsers that see untrusted bytes. Each target takes raw bytes and must
//! never panic, whatever they are; the logic lives in the library crates, the targets only feed
//! it. They run under the smoke fuzzer in `src/bin/smoke.rs` (stable toolchain, in CI), and are
//! plain `fn(&[u8])` so a coverage-guided driver (cargo-fuzz, AFL++) can call them unchanged.

use garrison_apiserver::resources::Builtin;
use garrison_apiserver::{http::request_info, http::table, patch, protobuf, schema, selectors};
use serde_json::Value;

/// A named target.
pub struct Target {
    /// Name, for reports.
    pub name: &'static str,
    /// The function under test.
    pub run: fn(&[u8]),
    /// Seed inputs the mutator starts from.
    pub seeds: &'static [&'static [u8]],
}

fn text(data: &[u8]) -> &str {
    std::str::from_utf8(data).unwrap_or("")
}

/// Kubernetes protobuf request bodies, and the protobuf answer made from what they decode to.
pub fn protobuf_body(data: &[u8]) {
    if let Ok(obj) = protobuf::decode(data) {
        let _ = protobuf::encode(&obj);
    }
}

/// Bearer tokens that look like JWTs, checked as ServiceAccount tokens by a fixed key.
pub fn service_account_token(data: &[u8]) {
    use garrison_apiserver::auth::tokens::{TokenSigner, generate_key_pem};
    static SIGNER: std::sync::OnceLock<TokenSigner> = std::sync::OnceLock::new();
    let signer = SIGNER.get_or_init(|| {
        TokenSigner::from_pem(&generate_key_pem().expect("key"), "https://fuzz", 600)
            .expect("signer")
    });
    let token = text(data);
    let _ = TokenSigner::looks_like_jwt(token);
    let _ = signer.verify(token, &[], 1_800_000_000);
}

/// Label selectors from `?labelSelector=`.
pub fn label_selector(data: &[u8]) {
    if let Ok(sel) = selectors::LabelSelector::parse(text(data)) {
        let _ = sel.matches(&[("app".to_string(), "web".to_string())].into());
    }
}

/// Field selectors from `?fieldSelector=`.
pub fn field_selector(data: &[u8]) {
    let all = |_: &str| true;
    if let Ok(sel) = selectors::FieldSelector::parse(text(data), &all) {
        let _ = sel.matches(&serde_json::json!({"metadata": {"name": "a"}}));
    }
}

/// Request paths.
pub fn request_path(data: &[u8]) {
    let _ = request_info::parse(text(data));
}

/// Printer-column JSONPaths (from CRDs, written by admins but evaluated on every table).
pub fn jsonpath(data: &[u8]) {
    let obj = serde_json::json!({"a": [{"b": 1, "type": "X"}, {"b": "two"}], "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    let _ = table::jsonpath(&obj, text(data));
}

/// Strategic merge, merge and JSON patches: the first half of the input is the live object,
/// the second the patch.
pub fn patches(data: &[u8]) {
    let mid = data.len() / 2;
    let (Ok(live), Ok(p)) = (
        serde_json::from_slice::<Value>(&data[..mid]),
        serde_json::from_slice::<Value>(&data[mid..]),
    ) else {
        return;
    };
    let _ = patch::strategic_merge_patch(Builtin::ConfigMap, &live, &p);
    let _ = patch::merge_patch(&live, &p);
    let _ = patch::json_patch(&live, &p);
}

/// Structural-schema validation of objects against schemas: first half schema, second object.
pub fn schema_validation(data: &[u8]) {
    let mid = data.len() / 2;
    let (Ok(s), Ok(mut v)) = (
        serde_json::from_slice::<Value>(&data[..mid]),
        serde_json::from_slice::<Value>(&data[mid..]),
    ) else {
        return;
    };
    let mut unknown = vec![];
    schema::prune(&s, &mut v, "", &mut unknown);
    schema::apply_defaults(&s, &mut v);
    let mut causes = vec![];
    schema::validate(&s, &v, "", &mut causes);
}

/// Agents' certificate signing requests (PEM or DER), read both as an agent or add-on
/// identity and as a custom signer's subject.
pub fn csr(data: &[u8]) {
    let _ = garrison_pki::parse_csr(data);
    let _ = garrison_pki::custom::parse(data, "metrics");
}

/// Policy templates as the policy add-on receives them from the hub: the bytes are one JSON
/// object, read as a ConstraintTemplate, a ConfigurationPolicy, a K8sNativeValidation (CEL)
/// source (evaluated against itself as the request) and an object under review, and judged
/// against a fixed constraint; the object is also matched and compared as a
/// ConfigurationPolicy object template.
pub fn policy_objects(data: &[u8]) {
    use garrison_governance::{config_policy, gatekeeper};
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    // Read into the engine's values directly, the object is what regorus's own conversion
    // makes of it; but for serde_json's private number marker, which regorus reads as a number
    // and Garrison, as OPA, as the object it is.
    const MARKER: &str = "$serde_json::private::Number";
    if let (Ok(ours), Ok(theirs)) = (
        garrison_governance::rego::from_json(&v),
        regorus::Value::from_json_str(&v.to_string()),
    ) && !v.to_string().contains(MARKER)
    {
        assert_eq!(ours, theirs, "the conversions disagree on {v}");
    }
    let _ = gatekeeper::Template::from_object(&v);
    let _ = config_policy::ConfigurationPolicy::from_object(&v);
    if let Ok(code) = garrison_governance::cel::Code::from_source(&v) {
        let _ = code.violations(&serde_json::json!({"object": v, "operation": "CREATE"}), &v);
    }
    let template = gatekeeper::Template::from_object(&serde_json::json!({
        "apiVersion": "templates.gatekeeper.sh/v1", "kind": "ConstraintTemplate",
        "metadata": {"name": "t"},
        "spec": {"crd": {"spec": {"names": {"kind": "T"}}},
            "targets": [{"target": "admission.k8s.gatekeeper.sh",
                "rego": "package t\nviolation[{\"msg\": m}] { m := sprintf(\"%v\", [input.review.object.metadata.name]) }"}]}
    }))
    .expect("the fixed template compiles");
    let constraint = match gatekeeper::Constraint::from_object(&v, &template) {
        Ok(c) => c,
        Err(_) => gatekeeper::Constraint::from_object(
            &serde_json::json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "T",
                "metadata": {"name": "c"}, "spec": {"match": {"namespaceSelector": {"matchLabels": {"a": "b"}}}}}),
            &template,
        )
        .expect("the fixed constraint fits"),
    };
    if let Ok(review) = gatekeeper::Review::of(&v) {
        let mut inventory = gatekeeper::Inventory::new();
        let _ = inventory.add(&v);
        let data = inventory.prepared();
        let _ = gatekeeper::judge(&template, &constraint, &review, &inventory, &data);
    }
    let t = config_policy::ObjectTemplate {
        compliance: config_policy::ComplianceType::MustOnlyHave,
        object: v.clone(),
    };
    let _ = config_policy::found(&t, Some(&v));
    let _ = config_policy::merged(config_policy::ComplianceType::MustHave, &v, &v);
}

/// Rego as a ConstraintTemplate carries it: compiled (which rewrites its negations as OPA
/// evaluates them, from regorus's AST, and guards it for the virtual machine) and evaluated
/// once, in Rego v1, and in v0 when it uses none of v1's keywords (regorus's v0 parser prints a
/// warning for each, to stderr). Where both engines answer, they answer alike.
pub fn rego_source(data: &[u8]) {
    use garrison_governance::rego::{Program, RegoVersion};
    let src = text(data);
    let v1_words = ["if", "contains", "in", "every"];
    let v0 = !src
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .any(|w| v1_words.contains(&w));
    let versions: &[RegoVersion] = if v0 {
        &[RegoVersion::V0, RegoVersion::V1]
    } else {
        &[RegoVersion::V1]
    };
    for &version in versions {
        // Without the library, whose rules read the parameters, the program may be made to
        // judge a batch of parameter sets (`rego::Batch`), which `shared_split_agrees` checks.
        if let Ok(p) = Program::compile(src, &[], version, "violation") {
            shared_split_agrees(
                &p.with_time_limit(std::time::Duration::from_millis(50)),
                src,
            );
        }
        if let Ok(p) = Program::compile(src, &[HELPERS.into()], version, "violation") {
            let p = p.with_time_limit(std::time::Duration::from_millis(50));
            let input = serde_json::json!({"a": {"b": 1}});
            let machine = p.eval("violation", &input, None);
            // The virtual machine, where it runs the program, answers as the interpreter.
            if p.on_machine()
                && let Ok(found) = &machine
            {
                let interpreted = p.clone().interpreted().eval("violation", &input, None);
                if let Ok(reference) = interpreted {
                    assert_eq!(found, &reference, "the engines disagree on {src:?}");
                }
            }
            shared_split_agrees(&p, src);
        }
    }
}

/// A library every `rego_source` program is compiled with, whose rules read the parameters,
/// for programs that import it (`import data.lib.helpers`, `import data.lib["helpers"]`).
const HELPERS: &str =
    "package lib.helpers\nbanned(k) := k == input.parameters.k\nlabels := input.parameters.labels";

/// Where `p` is split for constraints that share a review (`rego::Shared`), the split program
/// with the shared terms in its input answers as the whole program; where it is made to judge
/// a batch of parameter sets (`rego::Batch`), the batch answers for each set as the whole
/// program does; for a review and two sets of parameters shaped as Gatekeeper's.
fn shared_split_agrees(p: &garrison_governance::rego::Program, src: &str) {
    use garrison_governance::rego::{BATCH_INPUT, BATCH_TERMS, Data, SHARED};
    let review = serde_json::json!({"object": {"metadata": {"name": "n", "labels": {"a": "1", "b": "2"}}}, "a": {"b": 1}, "l": [1, {"z": 2}]});
    let sets = [
        serde_json::json!({"labels": ["a", "c"], "a": {"b": 1}, "k": "a"}),
        serde_json::json!({"labels": ["b"], "k": "z"}),
    ];
    let terms = p.shared().map(|split| {
        split.terms.eval_value(
            SHARED,
            regorus::Value::from(serde_json::json!({"review": review})),
            &Data::empty(),
        )
    });
    let terms = match terms {
        Some(Ok(terms @ regorus::Value::Object(_))) => Some(terms),
        _ => None,
    };
    let with_terms = |input: serde_json::Value| {
        let mut input = regorus::Value::from(input);
        if let (Some(terms), Ok(m)) = (&terms, input.as_object_mut()) {
            m.insert(SHARED.into(), terms.clone());
        }
        input
    };
    let mut wholes = vec![];
    for parameters in &sets {
        let input = serde_json::json!({"review": review, "parameters": parameters});
        let whole = p.eval_value(
            "violation",
            regorus::Value::from(input.clone()),
            &Data::empty(),
        );
        if let (Some(split), Some(_), Ok(whole)) = (p.shared(), &terms, &whole)
            && let Ok(found) =
                split
                    .program
                    .eval_value("violation", with_terms(input), &Data::empty())
        {
            assert_eq!(&found, whole, "the split program disagrees on {src:?}");
        }
        wholes.push(whole);
    }
    let Some(batch) = p.batch() else {
        return;
    };
    if batch.shared && terms.is_none() {
        return;
    }
    // Each set's terms that read only the parameters, where the batch reads them; a set
    // without them is judged on its own, not in the batch (as `gatekeeper::judge_on` does).
    let mut batched: Vec<usize> = (0..sets.len()).collect();
    let mut parameter_terms = vec![];
    if batch.reads_parameter_terms() {
        batched.retain(|&i| {
            let terms = garrison_governance::rego::from_json(&sets[i])
                .ok()
                .and_then(|value| batch.parameter_terms(&sets[i].to_string().into(), &value));
            parameter_terms.extend(terms.clone());
            terms.is_some()
        });
    }
    let in_batch: Vec<&serde_json::Value> = batched.iter().map(|&i| &sets[i]).collect();
    let mut input = with_terms(serde_json::json!({"review": review, BATCH_INPUT: in_batch}));
    if batch.reads_parameter_terms()
        && let Ok(m) = input.as_object_mut()
    {
        m.insert(BATCH_TERMS.into(), regorus::Value::from(parameter_terms));
    }
    let Ok(found) = batch.program.eval_value("violation", input, &Data::empty()) else {
        return;
    };
    for (i, &set) in batched.iter().enumerate() {
        let whole = &wholes[set];
        let Ok(whole) = whole else {
            continue;
        };
        // The batch's results for set `i`, in the set's order: the whole program's.
        let mine: Vec<regorus::Value> = match &found {
            regorus::Value::Set(s) => s
                .iter()
                .filter_map(|pair| match pair.as_array().map(|a| a.as_slice()) {
                    Ok([at, x]) if at.as_u64().ok() == Some(i as u64) => Some(x.clone()),
                    _ => None,
                })
                .collect(),
            _ => vec![],
        };
        let theirs: Vec<regorus::Value> = match whole {
            regorus::Value::Set(s) => s.iter().cloned().collect(),
            _ => vec![],
        };
        assert_eq!(mine, theirs, "the batch disagrees on {src:?}");
    }
}

/// A `sprintf` format as a template carries it, with arguments of each kind OPA passes (an
/// integer, a big integer, a fraction, a string): Go's formatting never fails, so neither does
/// Garrison's but past its output limit, which it keeps. The short path for formats of `%v`
/// alone gives what reading every verb gives.
pub fn go_format(data: &[u8]) {
    use garrison_governance::gofmt::{Arg, sprintf, sprintf_verbs};
    let format = text(data);
    let big: num_bigint::BigInt = "-123456789012345678901234567890"
        .parse()
        .unwrap_or_default();
    let args = [
        Arg::Int(42.into()),
        Arg::Int(big),
        Arg::Float(-0.000123),
        Arg::Str("é\"\n\u{200b}".into()),
        Arg::Int((-7).into()),
    ];
    for n in 0..=args.len() {
        assert_eq!(
            sprintf(format, &args[..n]),
            sprintf_verbs(format, &args[..n]),
            "{format:?} with {n} arguments"
        );
        match sprintf(format, &args[..n]) {
            Ok(out) => assert!(
                out.len() <= garrison_governance::gofmt::MAX_OUTPUT,
                "{format:?} printed {} bytes",
                out.len()
            ),
            Err(e) => assert!(e.contains("would pass"), "{format:?}: {e}"),
        }
    }
}

/// Resource quantities as a reviewed object carries them (`resources.limits.memory`), read by
/// CEL's `quantity()`. A quantity that parses equals itself plus zero, compares consistently
/// with another, and keeps its sign when negated.
pub fn quantity(data: &[u8]) {
    use garrison_governance::quantity::Quantity;
    let s = text(data);
    let (a, b) = s.split_once('|').unwrap_or((s, "1"));
    let Ok(q) = Quantity::parse(a) else { return };
    let zero = Quantity::from_int(0);
    assert_eq!(q.add(&zero), q, "{a} + 0");
    assert_eq!(q.sub(&q).sign(), 0, "{a} - {a}");
    assert_eq!(zero.sub(&q).sign(), -q.sign(), "-{a}");
    let _ = (q.as_integer(), q.as_approximate_float());
    if let Ok(r) = Quantity::parse(b) {
        assert_eq!(q.cmp(&r), r.cmp(&q).reverse(), "{a} against {b}");
        assert_eq!(q.add(&r), r.add(&q), "{a} + {b}");
        assert_eq!(q.add(&r).sub(&r), q, "{a} + {b} - {b}");
    }
}

/// Image references as a work's container specs name them, and ClusterImagePolicy globs. A
/// reference that parses must print as one that parses to the same reference.
pub fn image_reference(data: &[u8]) {
    use garrison_supply_chain::{glob::Glob, reference::Reference};
    let s = text(data);
    if let Ok(r) = Reference::parse(s) {
        let again = Reference::parse(&r.to_string()).expect("a parsed reference prints as one");
        assert_eq!(again, r, "{s:?} does not survive printing");
        let _ = r.qualified();
    }
    if let Ok(g) = Glob::new(s) {
        let r = Reference::parse("registry.example.com/team/app:1.0").expect("a fixed reference");
        let _ = g.matches(&r, s);
    }
}

/// What a registry serves as cosign signatures, and image policies as the hub delivers them:
/// the bytes are JSON, read as a ClusterImagePolicy or TrustRoot, and as a list of signature
/// layers (`{"payload": string, "annotations": {string: string}}`) verified against fixed key
/// and keyless policies.
pub fn signature_layers(data: &[u8]) {
    use garrison_supply_chain::policy::Policies;
    use garrison_supply_chain::reference::Digest;
    use garrison_supply_chain::verify::{SignatureLayer, verify};
    static FIXTURE: std::sync::OnceLock<Policies> = std::sync::OnceLock::new();
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let _ = Policies::load(std::slice::from_ref(&v));
    let policies = FIXTURE.get_or_init(|| {
        let now = time::OffsetDateTime::now_utc();
        let sigstore =
            garrison_supply_chain::sign::LocalSigstore::generate(now).expect("a local CA");
        let key = garrison_supply_chain::sign::KeySigner::generate().expect("a key");
        Policies::load(&[
            sigstore.trust_root("local"),
            serde_json::json!({"apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
                "metadata": {"name": "p"}, "spec": {"images": [{"glob": "**"}], "threshold": 2,
                "authorities": [
                    {"key": {"data": key.public_key_pem()}, "annotations": {"env": "prod"}},
                    {"keyless": {"trustRootRef": "local", "insecureIgnoreSCT": true, "identities": [{"issuer": "https://i", "subjectRegExp": ".*"}]}}]}}),
        ])
    });
    let layers: Vec<SignatureLayer> = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| SignatureLayer {
                    payload: l["payload"]
                        .as_str()
                        .unwrap_or_default()
                        .as_bytes()
                        .to_vec(),
                    annotations: l["annotations"]
                        .as_object()
                        .map(|o| {
                            o.iter()
                                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let digest = Digest::sha256_of(b"image");
    for p in &policies.policies {
        let _ = verify(p, &policies.roots, &digest, &layers);
    }
}

/// SCT lists embedded in keyless certificates (the extension's value), and certificates whose
/// SCTs are checked: the bytes are read as both.
pub fn sct_list(data: &[u8]) {
    use garrison_supply_chain::sct;
    if let Ok(list) = sct::parse_list(data) {
        assert_eq!(
            sct::parse_list(&sct::encode_list(&list)).ok(),
            Some(list),
            "an SCT list re-read differs"
        );
    }
    let _ = sct::precert_tbs(data);
    let _ = sct::verify_embedded(data, data, &std::collections::BTreeMap::new());
}

/// Exported compliance histories, as an auditor receives them, verified with a fixed key; and
/// the API's query strings.
pub fn history_export(data: &[u8]) {
    use garrison_governance::history::{self, api, export};
    static KEY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| {
        history::CheckpointKey::generate()
            .expect("a key")
            .public_key()
            .to_vec()
    });
    if let Ok(e) = export::read(text(data)) {
        let _ = history::verify(&e.records, &e.checkpoints, key);
        for r in &e.records {
            let _ = export::csv_line(r, true);
        }
    }
    let _ = history::parse_public_key_pem(text(data));
    let _ = api::parse_query(Some(text(data)), false);
    let _ = api::parse_report_query(Some(text(data)));
}

/// Every target.
pub fn targets() -> Vec<Target> {
    vec![
        Target { name: "csr", run: csr, seeds: &[include_bytes!("../../pki/tests/fixtures/rsa2048.csr"), include_bytes!("../../pki/tests/fixtures/rsa1024.csr")] },
        Target { name: "protobuf_body", run: protobuf_body, seeds: &[
            b"k8s\0\x0a\x0c\x0a\x02v1\x12\x06Secret\x12\x0a\x0a\x08\x0a\x02s1\x1a\x02ns",
            // A Lease with a renewTime, as client-go writes it.
            b"k8s\0\x0a\x1f\x0a\x16coordination.k8s.io/v1\x12\x05Lease\x12\x15\x0a\x07\x0a\x05agent\x12\x0a\x22\x08\x08\x80\xe1\xb1\xd7\x06\x10\x00",
        ] },
        Target { name: "service_account_token", run: service_account_token, seeds: &[
            b"eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJodHRwczovL2Z1enoiLCJhdWQiOlsiaHR0cHM6Ly9mdXp6Il0sImV4cCI6MTkwMDAwMDAwMH0.AAAA",
            b"eyJhbGciOiJub25lIn0.e30.",
        ] },
        Target { name: "policy_objects", run: policy_objects, seeds: &[
            b"{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"prod\",\"labels\":{\"a\":\"b\"}}}",
            b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"operation\":\"DELETE\",\"oldObject\":{\"kind\":\"Pod\",\"metadata\":{\"namespace\":\"x\"}}}}",
            b"{\"apiVersion\":\"constraints.gatekeeper.sh/v1beta1\",\"kind\":\"T\",\"spec\":{\"match\":{\"kinds\":[{\"apiGroups\":[\"*\"]}],\"name\":\"*a*\",\"excludedNamespaces\":[\"*\"]}}}",
            b"{\"validations\":[{\"expression\":\"object.validations.all(v, has(v.expression))\",\"messageExpression\":\"variables.n.join(',')\"}],\"variables\":[{\"name\":\"n\",\"expression\":\"object.validations.map(v, v.expression)\"}],\"failurePolicy\":\"Fail\"}",
            b"{\"kind\":\"ConfigurationPolicy\",\"spec\":{\"namespaceSelector\":{\"include\":[\"a*b*\"]},\"object-templates\":[{\"complianceType\":\"MustHave\",\"objectDefinition\":{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\"}}]}}",
        ] },
        Target { name: "rego_source", run: rego_source, seeds: &[
            b"package p\nf(x) { x == 1 }\nobj := {\"a\": 1}\nviolation[{\"msg\": \"m\"}] { not f(input.a.b); not obj[input.k]; not input.x != 2; xs := [y | y := input.l[_]; not f(y.z)] }",
            b"package p\nviolation contains \"v\" if not startswith(lower(input.s), \"a\")\nviolation contains \"w\" if { not \"a\" in input.l; not [input.q][0] }",
            b"package p\nviolation contains \"m\" if { not clean }\nclean if { every data in [{\"inventory\": {\"k\": input.parameters.k}}] { count({k | input.review.object.metadata.labels[k]; k == data.inventory.k}) == 0 } }",
            b"package p\nimport data.lib[\"helpers\"]\nviolation contains {\"msg\": \"m\"} if { not all_set }\nall_set if { every l in input.parameters.labels { count({v | v := input.review.object.metadata.labels[l]}) > 0 } }\nviolation contains {\"msg\": \"b\"} if { count({k | input.review.object.metadata.labels[k]; helpers.banned(k)}) > 0 }\nviolation contains {\"msg\": \"s\"} if { some x; x = input.parameters.labels[_]; count({y | y := input.review.object.metadata.labels[x]}) == 0 }",
            b"package p\nviolation[{\"msg\": msg}] {\n  provided := {l | input.review.object.metadata.labels[l]}\n  required := {l | l := input.parameters.labels[_]}\n  missing := required - provided\n  count(missing) > 0\n  n := count([x | x := input.review.l[_]; x.z > 1])\n  k := input.parameters.k\n  found := {k | input.review.object.metadata.labels[k]}\n  msg := sprintf(\"%v %v %v\", [missing, n, found])\n}",
            // Terms of the parameters alone, read from the batch's input: sets, an object (on
            // the interpreter, while the batch runs on the machine), one naming the body's
            // variable (not read so), an array.
            b"package p\nviolation contains {\"msg\": m} if {\n  own := input.review.object.metadata.name\n  req := {l | l := input.parameters.labels[_]}\n  named := {k: 1 | k := input.parameters.labels[_]}\n  mine := {l | l := input.parameters.labels[_]; l != own}\n  has := {k | input.review.object.metadata.labels[k]}\n  count(req - has) > 0\n  m := sprintf(\"%v %v %v\", [req - has, count(named), mine])\n}",
            b"package p\nviolation[{\"msg\": m, \"details\": {\"ks\": ks}}] {\n  ks := [k | k := input.parameters.labels[_]; startswith(k, input.parameters.k)]\n  not input.review.object.metadata.labels[ks[0]]\n  m := concat(\",\", ks)\n}",
        ] },
        Target { name: "go_format", run: go_format, seeds: &[
            b"%v %-10s|%+05d|%8.3f|%#x|%q|%[2]*d|%.*e|%!|%", b"%x %X % x %#o %O %b %c %U %#U %g %G %E %t",
            b"%[9]v %[0]d %.[2]f %*s %99999999999d", b"you must provide labels: %v, 100%% %v%v",
        ] },
        Target { name: "quantity", run: quantity, seeds: &[
            b"1.5Gi|1610612736", b"-0.1n|200m", b"9999999999999999999999999999999999999G|8Ei", b"1e3|.5",
            b"123456789012345678|1e-9", b"+7Ki|1E18",
        ] },
        Target { name: "image_reference", run: image_reference, seeds: &[
            b"nginx", b"docker.io/library/nginx:1.27", b"127.0.0.1:5000/team/app:v1@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            b"[::1]:5000/a/b__c-d.e:tag", b"ghcr.io/org/**", b"*/*",
        ] },
        Target { name: "signature_layers", run: signature_layers, seeds: &[
            b"[{\"payload\":\"{\\\"critical\\\":{\\\"image\\\":{\\\"docker-manifest-digest\\\":\\\"sha256:6a8a\\\"},\\\"type\\\":\\\"cosign container image signature\\\"}}\",\"annotations\":{\"dev.cosignproject.cosign/signature\":\"MEUCIQ==\",\"dev.sigstore.cosign/bundle\":\"{\\\"Payload\\\":{\\\"body\\\":\\\"e30=\\\",\\\"integratedTime\\\":1,\\\"logIndex\\\":1,\\\"logID\\\":\\\"00\\\"},\\\"SignedEntryTimestamp\\\":\\\"AA==\\\"}\",\"dev.sigstore.cosign/certificate\":\"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\"}}]",
            b"{\"apiVersion\":\"policy.sigstore.dev/v1beta1\",\"kind\":\"ClusterImagePolicy\",\"metadata\":{\"name\":\"x\"},\"spec\":{\"images\":[{\"glob\":\"**\"}],\"threshold\":3,\"authorities\":[{\"static\":{\"action\":\"pass\"}}]}}",
            b"{\"apiVersion\":\"policy.sigstore.dev/v1alpha1\",\"kind\":\"TrustRoot\",\"metadata\":{\"name\":\"t\"},\"spec\":{\"sigstoreKeys\":{\"certificateAuthorities\":[{\"certChain\":\"LS0t\"}],\"tLogs\":[{\"publicKey\":\"!!\"}]}}}",
        ] },
        Target { name: "sct_list", run: sct_list, seeds: &[
            b"\x04\x35\x00\x33\x00\x31\x00\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x00\x00\x01\x8b\xcf\xe5\x68\x00\x00\x00\x04\x03\x00\x02\x30\x00",
        ] },
        Target { name: "history_export", run: history_export, seeds: &[
            b"{\"kind\":\"GarrisonComplianceHistory\",\"version\":1,\"publicKey\":\"\"}\n{\"record\":{\"seq\":1,\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"hash\":\"ab\",\"time\":\"2026-03-03T10:00:00Z\",\"cluster\":\"c1\",\"policy\":\"p/a\",\"replica\":\"p.a\",\"template\":\"ConfigurationPolicy/x\",\"state\":\"Compliant\",\"message\":\"=1\",\"severity\":\"low\",\"standards\":[\"NIST\"],\"categories\":[],\"controls\":[\"AC-2\"]}}\n{\"checkpoint\":{\"seq\":1,\"head\":\"ab\",\"time\":\"t\",\"signature\":\"3045\"}}",
            b"cluster.name=c1,c2&parent_policy.controls=AC-2&event.timestamp_after=2026-03-03T10:00:00Z&sort=id&direction=asc&page=2&per_page=5",
            b"control=AC-2&since=2026-03-01&until=2026-03-31",
        ] },
        Target { name: "label_selector", run: label_selector, seeds: &[b"app=web,tier in (a,b),!legacy", b"a.b/c notin (x),n>3"] },
        Target { name: "field_selector", run: field_selector, seeds: &[b"metadata.name=a,type!=Opaque"] },
        Target { name: "request_path", run: request_path, seeds: &[b"/apis/g/v1/namespaces/a/things/x/status", b"/api/v1/namespaces/a/finalize"] },
        Target { name: "jsonpath", run: jsonpath, seeds: &[b".status.conditions[?(@.type==\"Ready\")].status", b"{.a[*].b}"] },
        Target { name: "patches", run: patches, seeds: &[b"{\"metadata\":{\"finalizers\":[\"a\"]}}{\"metadata\":{\"$patch\":\"replace\"}}"] },
        Target { name: "schema_validation", run: schema_validation, seeds: &[b"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"maximum\":3}}}{\"a\":5,\"b\":[1]}"] },
    ]
}
