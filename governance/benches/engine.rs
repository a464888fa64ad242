//! The policy engine, in this process (release build):
//!
//! 1. One Gatekeeper case (required labels, a violating Namespace) through `gatekeeper::judge`
//!    (match, review shaping, evaluation on regorus's virtual machine, result reading) against
//!    the bare call on the virtual machine (input, `execute`), to show what Garrison's layer
//!    costs; and the bare call on regorus's interpreter (input, `eval_rule`), the reference
//!    engine. The bare interpreter call again with a Namespace of 1 and of 50 labels, which the
//!    template iterates.
//! 2. The delivery gate's work: 10 manifests against 50 deny constraints, as the work gate
//!    judges a ManifestWork before applying it (on the machine's cores), on one thread, and on
//!    the interpreter alone: a work whose every manifest violates every constraint, and a work
//!    that complies (every manifest carries all 50 required labels). Each also with the
//!    template's whole program alone (`Template::without_sharing`), so that the constraints of
//!    one review share nothing: what the split of the program (`rego::Shared`) saves.
//!    The same gate with the verdicts of earlier checks kept (`judge_reviews_remembered`, as
//!    the agent's gate runs): a work's first check (each round with no verdicts kept), the same
//!    work again (each resync), a work
//!    with one manifest of ten changed; and the compiling of the template, which the agent
//!    does once per template version.
//! 3. An audit: 10,000 objects against 50 constraints, with the objects as inventory, as the
//!    agent runs it (the constraints of the template judged together, 512 reviews at a time,
//!    on the machine's cores), constraint by constraint as it ran before, and on one thread;
//!    time and the process's peak RSS (after the agent's way, before the others).
//!
//! Run: `cargo bench -p garrison-governance --bench engine` (GARRISON_BENCH_OBJECTS and
//! GARRISON_BENCH_CONSTRAINTS change the audit's size).

use std::time::{Duration, Instant};

use garrison_governance::gatekeeper::{
    Constraint, EnforcementAction, Inventory, Review, Template, Verdicts, Violation, judge,
    judge_on_threads, judge_reviews, judge_reviews_remembered,
};
use serde_json::{Value, json};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const REGO: &str = r#"package k8srequiredlabels

violation[{"msg": msg, "details": {"missing_labels": missing}}] {
  provided := {label | input.review.object.metadata.labels[label]}
  required := {label | label := input.parameters.labels[_]}
  missing := required - provided
  count(missing) > 0
  msg := sprintf("you must provide labels: %v", [missing])
}
"#;

fn template(kind: &str) -> Template {
    Template::from_object(&template_object(kind)).expect("template compiles")
}

fn template_object(kind: &str) -> Value {
    json!({
        "apiVersion": "templates.gatekeeper.sh/v1", "kind": "ConstraintTemplate",
        "metadata": {"name": kind.to_lowercase()},
        "spec": {"crd": {"spec": {"names": {"kind": kind},
            "validation": {"openAPIV3Schema": {"type": "object", "properties": {
                "labels": {"type": "array", "items": {"type": "string"}}}}}}},
          "targets": [{"target": "admission.k8s.gatekeeper.sh", "rego": REGO}]}
    })
}

fn constraint(t: &Template, i: usize, kinds: Value) -> Constraint {
    Constraint::from_object(
        &json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": t.kind(),
            "metadata": {"name": format!("c{i}")},
            "spec": {"match": {"kinds": kinds}, "parameters": {"labels": [format!("label-{i}")]}}}),
        t,
    )
    .expect("constraint fits")
}

/// `n` constraints of `t` that match Deployments, each requiring a label of its own.
fn on_deployments(t: &Template, n: usize) -> Vec<Constraint> {
    (0..n)
        .map(|i| {
            constraint(
                t,
                i,
                json!([{"apiGroups": ["apps"], "kinds": ["Deployment"]}]),
            )
        })
        .collect()
}

fn deployment(i: usize) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": format!("d{i}"), "namespace": format!("ns{}", i % 50),
            "labels": {"app": format!("a{i}"), "label-1": "x", "label-3": "y"}},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "registry.example.com/a:1"}]}}}})
}

/// Judges `works` (each a manifest of the work) `rounds` times as the gate does, reviews made
/// each round, with `judge`: the time taken, the violations found and the manifests that
/// passed, over all rounds.
fn time_gate(
    rounds: usize,
    works: &[Value],
    judge: impl Fn(&[Review]) -> Vec<Vec<Violation>>,
) -> (Duration, usize, usize) {
    let start = Instant::now();
    let (mut found, mut passed) = (0, 0);
    for _ in 0..rounds {
        let reviews: Vec<Review> = works
            .iter()
            .map(|m| Review::admission(m, None, "CREATE"))
            .collect();
        let verdicts = judge(&reviews);
        found += verdicts.iter().map(Vec::len).sum::<usize>();
        passed += verdicts.iter().filter(|v| v.is_empty()).count();
    }
    (start.elapsed(), found, passed)
}

fn per_op(d: Duration, n: usize) -> String {
    let us = d.as_secs_f64() * 1e6 / n as f64;
    format!("{us:.1} µs")
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn main() {
    // 1. One case: Garrison's judge against the bare regorus call.
    let t = template("K8sRequiredLabels");
    assert!(
        t.program().is_some_and(|p| p.on_machine()),
        "the template runs on the machine"
    );
    // The same template on the interpreter alone, the reference engine, for the gate's figures.
    garrison_governance::rego::set_interpreter_only(true);
    let on_interpreter = template("K8sRequiredLabels");
    garrison_governance::rego::set_interpreter_only(false);
    let c = constraint(&t, 0, json!([{"apiGroups": [""], "kinds": ["Namespace"]}]));
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod", "labels": {"a": "b"}}});
    let review = Review::of(&ns).unwrap();
    let inv = Inventory::new();
    let data = inv.prepared();
    let n = 20_000;
    assert_eq!(judge(&t, &c, &review, &inv, &data).len(), 1);
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(judge(&t, &c, &review, &inv, &data));
    }
    let ours = start.elapsed();
    let input =
        regorus::Value::from(json!({"review": review.request(), "parameters": c.parameters()}));
    let entry = "data.k8srequiredlabels.violation";
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(true);
    engine.add_policy("t.rego".into(), REGO.into()).unwrap();
    engine.eval_query("true".into(), false).unwrap();
    let compiled = engine
        .clone()
        .compile_with_entrypoint(&entry.into())
        .unwrap();
    let code =
        regorus::languages::rego::compiler::Compiler::compile_from_policy(&compiled, &[entry])
            .unwrap();
    let mut vm = regorus::rvm::vm::RegoVM::new();
    vm.load_program(code);
    let start = Instant::now();
    for _ in 0..n {
        vm.set_input(input.clone());
        std::hint::black_box(vm.execute().unwrap());
    }
    let raw = start.elapsed();
    let start = Instant::now();
    for _ in 0..n {
        engine.set_input(input.clone());
        std::hint::black_box(engine.eval_rule(entry.into()).unwrap());
    }
    let interpreted = start.elapsed();
    println!(
        "one case, {n} times: judge {} per case (on the virtual machine), the bare call on regorus's virtual machine {} per case (ratio {:.2}); the bare call on regorus's interpreter {} per case (ratio to the machine {:.2})",
        per_op(ours, n),
        per_op(raw, n),
        ours.as_secs_f64() / raw.as_secs_f64(),
        per_op(interpreted, n),
        interpreted.as_secs_f64() / raw.as_secs_f64(),
    );

    // 1b. What a case costs as the object grows: the template iterates over the object's labels.
    let mut costs = vec![];
    for labels in [1usize, 50] {
        let mut obj = ns.clone();
        for l in 0..labels {
            obj["metadata"]["labels"][format!("l{l}")] = json!("x");
        }
        let r = Review::of(&obj).unwrap();
        let input =
            regorus::Value::from(json!({"review": r.request(), "parameters": {"labels": ["l0"]}}));
        let n = 5_000;
        let start = Instant::now();
        for _ in 0..n {
            engine.set_input(input.clone());
            std::hint::black_box(engine.eval_rule(entry.into()).unwrap());
        }
        costs.push(format!("{labels} label(s) {}", per_op(start.elapsed(), n)));
    }
    println!(
        "bare regorus interpreter by the object's labels: {}",
        costs.join(", ")
    );

    // 2. The gate: 10 manifests, 50 deny constraints.
    let constraints = on_deployments(&t, 50);
    let manifests: Vec<Value> = (0..10).map(deployment).collect();
    let rounds = 200;
    let start = Instant::now();
    let mut found = 0;
    for _ in 0..rounds {
        for m in &manifests {
            let r = Review::admission(m, None, "CREATE");
            for c in &constraints {
                found += judge(&t, c, &r, &inv, &data).len();
            }
        }
    }
    let one_by_one = start.elapsed();
    let sets = vec![(t.clone(), constraints.clone())];
    let all_cores = |r: &[Review]| judge_reviews(&sets, r, &inv, &data);
    let one_core = |r: &[Review]| judge_on_threads(1, &sets, r, &inv, &data);
    let (gate, gated, _) = time_gate(rounds, &manifests, all_cores);
    assert_eq!(gated, found);
    let (one_thread, serial, _) = time_gate(rounds, &manifests, one_core);
    assert_eq!(serial, found);
    let interpreted_sets = vec![(on_interpreter.clone(), on_deployments(&on_interpreter, 50))];
    let (gate_interpreted, interpreted_found, _) = time_gate(rounds, &manifests, |r| {
        judge_reviews(&interpreted_sets, r, &inv, &data)
    });
    assert_eq!(interpreted_found, found);
    assert!(
        t.program().and_then(|p| p.shared()).is_some(),
        "the template is split"
    );
    let whole_sets = vec![(t.clone().without_sharing(), constraints.clone())];
    let (gate_whole, whole_found, _) = time_gate(rounds, &manifests, |r| {
        judge_reviews(&whole_sets, r, &inv, &data)
    });
    assert_eq!(whole_found, found);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "gate: 10 manifests x 50 constraints of one template = {} per work through judge_reviews, as the gate runs them ({cores} cores); {} on one thread (ratio {:.2}); {} with one judge call per case ({} violations per work); {} with the whole program for each constraint, sharing nothing (ratio {:.2}); {} on the interpreter alone, as the gate runs them (ratio to the machine {:.2})",
        per_op(gate, rounds),
        per_op(one_thread, rounds),
        one_thread.as_secs_f64() / gate.as_secs_f64(),
        per_op(one_by_one, rounds),
        found / rounds,
        per_op(gate_whole, rounds),
        gate_whole.as_secs_f64() / gate.as_secs_f64(),
        per_op(gate_interpreted, rounds),
        gate_interpreted.as_secs_f64() / gate.as_secs_f64(),
    );

    // 2b. The same gate for a work that complies: every manifest carries every required label.
    // This is the delay the gate adds to a work it lets through.
    let compliant: Vec<Value> = (0..10)
        .map(|i| {
            let mut m = deployment(i);
            for c in 0..50 {
                m["metadata"]["labels"][format!("label-{c}")] = json!("x");
            }
            m
        })
        .collect();
    let (clean, _, passed) = time_gate(rounds, &compliant, all_cores);
    assert_eq!(
        passed,
        rounds * compliant.len(),
        "every compliant manifest passes"
    );
    let (clean_one, _, _) = time_gate(rounds, &compliant, one_core);
    let (clean_interpreted, _, passed) = time_gate(rounds, &compliant, |r| {
        judge_reviews(&interpreted_sets, r, &inv, &data)
    });
    assert_eq!(passed, rounds * compliant.len());
    let (clean_whole, _, passed) = time_gate(rounds, &compliant, |r| {
        judge_reviews(&whole_sets, r, &inv, &data)
    });
    assert_eq!(passed, rounds * compliant.len());
    println!(
        "gate, compliant work: 10 manifests x 50 constraints = {} per work as the gate runs them, {} on one thread (ratio {:.2}), 0 violations; {} with the whole program for each constraint (ratio {:.2}); {} on the interpreter alone (ratio to the machine {:.2})",
        per_op(clean, rounds),
        per_op(clean_one, rounds),
        clean_one.as_secs_f64() / clean.as_secs_f64(),
        per_op(clean_whole, rounds),
        clean_whole.as_secs_f64() / clean.as_secs_f64(),
        per_op(clean_interpreted, rounds),
        clean_interpreted.as_secs_f64() / clean.as_secs_f64(),
    );

    // 2c. The gate with the verdicts of earlier checks, as the agent runs it: every work is
    // applied again at each resync, unchanged, and a new version of a work often changes one
    // manifest of ten.
    let first_check =
        |r: &[Review]| judge_reviews_remembered(&Verdicts::default(), &sets, r, &inv, &data);
    let (first, first_found, _) = time_gate(rounds, &manifests, first_check);
    assert_eq!(first_found, found);
    let verdicts = Verdicts::default();
    let remembered = |r: &[Review]| judge_reviews_remembered(&verdicts, &sets, r, &inv, &data);
    time_gate(1, &manifests, remembered);
    let (again, again_found, _) = time_gate(rounds, &manifests, remembered);
    assert_eq!(again_found, found);
    let changed: Vec<Vec<Value>> = (0..rounds)
        .map(|round| {
            let mut work = manifests.clone();
            work[round % 10]["metadata"]["labels"]["revision"] = json!(round.to_string());
            work
        })
        .collect();
    let start = Instant::now();
    let mut changed_found = 0;
    for work in &changed {
        changed_found += remembered(
            &work
                .iter()
                .map(|m| Review::admission(m, None, "CREATE"))
                .collect::<Vec<_>>(),
        )
        .iter()
        .map(Vec::len)
        .sum::<usize>();
    }
    let one_changed = start.elapsed();
    assert_eq!(changed_found, found);
    let (clean_first, _, _) = time_gate(rounds, &compliant, first_check);
    time_gate(1, &compliant, remembered);
    let (clean_again, _, passed) = time_gate(rounds, &compliant, remembered);
    assert_eq!(passed, rounds * compliant.len());
    // A work refused as most are: one manifest lacks one label, the rest comply.
    let mut one_short = compliant.clone();
    one_short[0]["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("label-7");
    let (short_first, short_found, _) = time_gate(rounds, &one_short, first_check);
    assert_eq!(short_found, rounds, "one violation per work");
    println!(
        "gate with remembered verdicts: first check {} ({} evaluations), the same work again {} per work, one manifest of ten changed {} per work; the compliant work: first check {}, again {} per work; a work with one violation (one manifest lacking one label): first check {}; {} results found, {} evaluated",
        per_op(first, rounds),
        10 * 50,
        per_op(again, rounds),
        per_op(one_changed, rounds),
        per_op(clean_first, rounds),
        per_op(clean_again, rounds),
        per_op(short_first, rounds),
        verdicts.found(),
        verdicts.evaluated(),
    );

    // 2d. Compiling the template, which the agent now does once per template, not every pass.
    let object = template_object("K8sRequiredLabels");
    let n = 200;
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(Template::from_object(&object).expect("template compiles"));
    }
    println!(
        "compiling the template: {} per compilation",
        per_op(start.elapsed(), n)
    );

    // 3. Audit.
    let objects = env_usize("GARRISON_BENCH_OBJECTS", 10_000);
    let count = env_usize("GARRISON_BENCH_CONSTRAINTS", 50);
    let constraints = on_deployments(&t, count);
    let rss_before = peak_rss_mib();
    let start = Instant::now();
    let all: Vec<Value> = (0..objects).map(deployment).collect();
    let mut inventory = Inventory::new();
    for o in &all {
        inventory.add(o).unwrap();
    }
    let data = inventory.prepared();
    let built = start.elapsed();
    // As the agent audits: the constraints cover the same kind, so they share one listing, its
    // inventory and a review of each object, and the constraints of one template that cover
    // the same resources are judged together, on the machine's cores.
    let reviews: Vec<Review> = all.iter().map(|o| Review::of(o).unwrap()).collect();
    let reviewed = start.elapsed();
    // The reviews are judged 512 at a time, and each part's violations read into what the
    // audit keeps (the review, the message and the action, by constraint) before the next.
    let together = [(t.clone(), constraints.clone())];
    let mut kept: std::collections::HashMap<String, Vec<(usize, String, EnforcementAction)>> =
        Default::default();
    for (part, chunk) in reviews.chunks(512).enumerate() {
        for (i, found) in judge_reviews(&together, chunk, &inventory, &data)
            .into_iter()
            .enumerate()
        {
            for v in found {
                kept.entry(v.constraint)
                    .or_default()
                    .push((part * 512 + i, v.msg, v.action));
            }
        }
    }
    let violations: usize = kept.values().map(Vec::len).sum();
    let audit = start.elapsed();
    let peak = peak_rss_mib();
    // As the agent audited before: constraint by constraint. Each finds what it found
    // together, in the same order.
    let start = Instant::now();
    let mut alone = vec![];
    for c in &constraints {
        let sets = [(t.clone(), vec![c.clone()])];
        alone.push(judge_reviews(&sets, &reviews, &inventory, &data));
    }
    let one_by_one = start.elapsed();
    for (c, judged) in constraints.iter().zip(&alone) {
        let found: Vec<(usize, &str, &EnforcementAction)> = judged
            .iter()
            .enumerate()
            .flat_map(|(i, vs)| vs.iter().map(move |v| (i, v.msg.as_str(), &v.action)))
            .collect();
        let together: Vec<(usize, &str, &EnforcementAction)> = kept
            .get(c.name())
            .into_iter()
            .flatten()
            .map(|(i, msg, action)| (*i, msg.as_str(), action))
            .collect();
        assert_eq!(found, together, "constraint {}", c.name());
    }
    drop((alone, kept));
    // The same evaluations on one thread, one judge call per case.
    let start = Instant::now();
    let mut serial = 0;
    for r in &reviews {
        for c in &constraints {
            serial += judge(&t, c, r, &inventory, &data).len();
        }
    }
    let one_thread = start.elapsed();
    assert_eq!(serial, violations);
    println!(
        "audit: {objects} objects x {count} constraints in {:.2} s as the agent runs it (inventory built in {:.2} s, reviews made in {:.2} s, then {} per evaluation), {violations} violations, peak RSS {:.0} -> {:.0} MiB; the evaluations constraint by constraint, as the agent judged them before: {:.2} s (ratio {:.2}); on one thread, one judge call per case: {:.2} s (ratio {:.2})",
        audit.as_secs_f64(),
        built.as_secs_f64(),
        (reviewed - built).as_secs_f64(),
        per_op(audit - reviewed, objects * count),
        rss_before,
        peak,
        one_by_one.as_secs_f64(),
        one_by_one.as_secs_f64() / (audit - reviewed).as_secs_f64(),
        one_thread.as_secs_f64(),
        one_thread.as_secs_f64() / (audit - reviewed).as_secs_f64(),
    );
}
