//! A greedy policy is stopped: on the virtual machine by its evaluation's memory budget, on the
//! interpreter by the process's heap ceiling. In a process of its own: while the heap is above
//! the ceiling every evaluation in the process fails, so this cannot share one with other tests.

use garrison_governance::rego::{
    DEFAULT_MEMORY_LIMIT, EvalError, HEAP_CEILING, Program, RegoVersion,
};
use serde_json::json;

/// A template that builds an ever larger value: without a limit it takes the process's heap;
/// with one its evaluation fails, and once the memory is freed the next review works.
#[test]
fn a_policy_that_allocates_past_its_limit_is_stopped_on_either_engine() {
    let greedy = "package p\nviolation[{\"msg\": \"x\"}] { s := [concat(\"\", [input.pad, format_int(i, 10)]) | numbers.range(1, input.n)[i]]; count(s) < 0 }";
    let p = Program::compile(greedy, &[], RegoVersion::V0, "violation")
        .unwrap()
        .with_time_limit(std::time::Duration::from_secs(60));
    assert!(p.on_machine());
    let interpreted = p.clone().interpreted();
    // 1 MiB a step: the budget (64 MiB) is passed after some 64 steps, the ceiling (1 GiB)
    // after some 1,000 of 4,000.
    let pad = "x".repeat(1024 * 1024);
    for (p, limit) in [(&p, DEFAULT_MEMORY_LIMIT), (&interpreted, HEAP_CEILING)] {
        assert_eq!(
            p.eval("violation", &json!({"pad": pad, "n": 4_000}), None),
            Err(EvalError::Memory(limit))
        );
        assert_eq!(
            p.eval("violation", &json!({"pad": "x", "n": 10}), None)
                .unwrap(),
            json!([])
        );
    }
}
