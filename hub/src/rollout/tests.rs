//! Rollout scenarios, worked out from the rollout helper's documented behaviour.

use super::*;

const NOW: i64 = 1_800_000_000;

fn now() -> jiff::Timestamp {
    jiff::Timestamp::from_second(NOW).unwrap()
}

fn ago(secs: i64) -> Option<jiff::Timestamp> {
    Some(jiff::Timestamp::from_second(NOW - secs).unwrap())
}

fn groups(spec: &[(&str, &[&str])]) -> Groups {
    spec.iter()
        .enumerate()
        .map(|(i, (name, cs))| {
            (
                GroupKey {
                    index: i as i32,
                    name: name.to_string(),
                },
                cs.iter().map(|c| c.to_string()).collect(),
            )
        })
        .collect()
}

fn st(cluster: &str, status: Status, since: Option<jiff::Timestamp>) -> ClusterStatus {
    ClusterStatus {
        last_transition: since,
        ..ClusterStatus::new(cluster, status)
    }
}

fn strategy(v: serde_json::Value) -> RolloutStrategy {
    serde_json::from_value(v).unwrap()
}

fn to_apply(r: &RolloutResult) -> Vec<&str> {
    r.to_rollout
        .iter()
        .filter(|c| c.status == Status::ToApply)
        .map(|c| c.cluster.as_str())
        .collect()
}

const FIVE: &[&str] = &["a", "b", "c", "d", "e"];

#[test]
fn all_applies_everywhere_at_once() {
    let g = groups(&[("", FIVE)]);
    let r = rollout(
        &strategy(serde_json::json!({"type": "All"})),
        &g,
        &[],
        now(),
    )
    .unwrap();
    assert_eq!(to_apply(&r), FIVE);
    // Succeeded clusters are done; progressing ones stay in flight.
    let r = rollout(
        &strategy(serde_json::json!({"type": "All"})),
        &g,
        &[
            st("a", Status::Succeeded, ago(5)),
            st("b", Status::Progressing, ago(5)),
        ],
        now(),
    )
    .unwrap();
    assert_eq!(to_apply(&r), ["c", "d", "e"]);
    assert!(r.to_rollout.iter().any(|c| c.cluster == "b"));
}

#[test]
fn all_with_a_deadline_times_out() {
    let g = groups(&[("", FIVE)]);
    let s = strategy(serde_json::json!({"type": "All", "all": {"progressDeadline": "60s"}}));
    let r = rollout(
        &s,
        &g,
        &[
            st("a", Status::Progressing, ago(90)),
            st("b", Status::Progressing, ago(30)),
        ],
        now(),
    )
    .unwrap();
    assert_eq!(r.timed_out.len(), 1);
    assert_eq!(r.timed_out[0].cluster, "a");
    assert_eq!(r.timed_out[0].status, Status::TimeOut);
    // b is looked at again when its deadline comes: in 30 s.
    assert_eq!(r.recheck_after, Some(Duration::from_secs(30)));
}

#[test]
fn progressive_keeps_max_concurrency_in_flight() {
    let g = groups(&[("", FIVE)]);
    let s =
        strategy(serde_json::json!({"type": "Progressive", "progressive": {"maxConcurrency": 2}}));
    let r = rollout(&s, &g, &[], now()).unwrap();
    assert_eq!(to_apply(&r), ["a", "b"]);
    // a done, b still progressing: one slot, for c.
    let r = rollout(
        &s,
        &g,
        &[
            st("a", Status::Succeeded, ago(1)),
            st("b", Status::Progressing, ago(1)),
        ],
        now(),
    )
    .unwrap();
    assert_eq!(to_apply(&r), ["c"]);
    // A percentage of the clusters, rounded up: 30% of 5 is 2.
    let s = strategy(
        serde_json::json!({"type": "Progressive", "progressive": {"maxConcurrency": "30%"}}),
    );
    assert_eq!(to_apply(&rollout(&s, &g, &[], now()).unwrap()), ["a", "b"]);
}

#[test]
fn min_success_time_holds_the_slot() {
    let g = groups(&[("", FIVE)]);
    let s = strategy(
        serde_json::json!({"type": "Progressive", "progressive": {"maxConcurrency": 1, "minSuccessTime": "5m"}}),
    );
    // Succeeded 60 s ago: still soaking, nothing new; recheck when the soak ends.
    let r = rollout(&s, &g, &[st("a", Status::Succeeded, ago(60))], now()).unwrap();
    assert!(to_apply(&r).is_empty());
    assert_eq!(r.recheck_after, Some(Duration::from_secs(240)));
    // Soaked: the next one.
    let r = rollout(&s, &g, &[st("a", Status::Succeeded, ago(301))], now()).unwrap();
    assert_eq!(to_apply(&r), ["b"]);
}

#[test]
fn progressive_stops_at_max_failures_and_resumes_on_recovery() {
    let g = groups(&[("", FIVE)]);
    let s = strategy(
        serde_json::json!({"type": "Progressive", "progressive": {"maxConcurrency": 1, "maxFailures": 0}}),
    );
    // a failed: over the limit of 0; nothing new starts.
    let failed = [st("a", Status::Failed, ago(10))];
    let r = rollout(&s, &g, &failed, now()).unwrap();
    assert!(r.max_failure_breach);
    assert!(to_apply(&r).is_empty());
    // a recovers: the rollout goes on with b.
    let r = rollout(&s, &g, &[st("a", Status::Succeeded, ago(1))], now()).unwrap();
    assert!(!r.max_failure_breach);
    assert_eq!(to_apply(&r), ["b"]);
    // With one failure allowed it goes on past a, but not past a second.
    let s = strategy(
        serde_json::json!({"type": "Progressive", "progressive": {"maxConcurrency": 2, "maxFailures": 1}}),
    );
    let r = rollout(&s, &g, &failed, now()).unwrap();
    assert_eq!(to_apply(&r), ["b"]);
    let r = rollout(
        &s,
        &g,
        &[
            st("a", Status::Failed, ago(10)),
            st("b", Status::Failed, ago(5)),
        ],
        now(),
    )
    .unwrap();
    assert!(r.max_failure_breach);
    assert!(to_apply(&r).is_empty());
}

#[test]
fn a_timeout_counts_as_a_failure() {
    let g = groups(&[("", FIVE)]);
    let s = strategy(
        serde_json::json!({"type": "Progressive", "progressive": {"maxConcurrency": 1, "progressDeadline": "30s"}}),
    );
    let r = rollout(&s, &g, &[st("a", Status::Progressing, ago(60))], now()).unwrap();
    assert!(r.max_failure_breach);
    assert_eq!(r.timed_out[0].cluster, "a");
    assert!(to_apply(&r).is_empty());
}

#[test]
fn mandatory_groups_go_first_and_tolerate_no_failure() {
    let g = groups(&[("canary", &["x", "y"]), ("", FIVE)]);
    let s = strategy(serde_json::json!({"type": "Progressive", "progressive": {
        "mandatoryDecisionGroups": [{"groupName": "canary"}], "maxConcurrency": 2, "maxFailures": 3}}));
    let r = rollout(&s, &g, &[], now()).unwrap();
    assert_eq!(to_apply(&r), ["x", "y"]);
    // Canary still progressing: the rest waits.
    let r = rollout(
        &s,
        &g,
        &[
            st("x", Status::Succeeded, ago(1)),
            st("y", Status::Progressing, ago(1)),
        ],
        now(),
    )
    .unwrap();
    assert!(to_apply(&r).is_empty());
    // Canary done: the rest, two at a time.
    let done = [
        st("x", Status::Succeeded, ago(1)),
        st("y", Status::Succeeded, ago(1)),
    ];
    assert_eq!(
        to_apply(&rollout(&s, &g, &done, now()).unwrap()),
        ["a", "b"]
    );
    // By index too.
    let s = strategy(
        serde_json::json!({"type": "Progressive", "progressive": {"mandatoryDecisionGroups": [{"groupIndex": 1}], "maxConcurrency": 1}}),
    );
    assert_eq!(to_apply(&rollout(&s, &g, &[], now()).unwrap()), FIVE);
}

#[test]
fn progressive_per_group_goes_group_by_group() {
    let g = groups(&[("", &["a", "b"]), ("", &["c", "d"]), ("", &["e"])]);
    let s = strategy(serde_json::json!({"type": "ProgressivePerGroup"}));
    assert_eq!(to_apply(&rollout(&s, &g, &[], now()).unwrap()), ["a", "b"]);
    let r = rollout(
        &s,
        &g,
        &[
            st("a", Status::Succeeded, ago(1)),
            st("b", Status::Progressing, ago(1)),
        ],
        now(),
    )
    .unwrap();
    assert!(to_apply(&r).is_empty());
    let first_done = [
        st("a", Status::Succeeded, ago(1)),
        st("b", Status::Succeeded, ago(1)),
    ];
    assert_eq!(
        to_apply(&rollout(&s, &g, &first_done, now()).unwrap()),
        ["c", "d"]
    );
    // A failure within the group's budget (50% of 2 = 1) lets the next group start.
    let s = strategy(
        serde_json::json!({"type": "ProgressivePerGroup", "progressivePerGroup": {"maxFailures": "50%"}}),
    );
    let r = rollout(
        &s,
        &g,
        &[
            st("a", Status::Succeeded, ago(1)),
            st("b", Status::Failed, ago(1)),
        ],
        now(),
    )
    .unwrap();
    assert_eq!(to_apply(&r), ["c", "d"]);
    // Over it, nothing further.
    let s = strategy(serde_json::json!({"type": "ProgressivePerGroup"}));
    let r = rollout(
        &s,
        &g,
        &[
            st("a", Status::Succeeded, ago(1)),
            st("b", Status::Failed, ago(1)),
        ],
        now(),
    )
    .unwrap();
    assert!(r.max_failure_breach);
    assert!(to_apply(&r).is_empty());
}

#[test]
fn clusters_no_longer_chosen_are_removed() {
    let g = groups(&[("", &["a"])]);
    let r = rollout(
        &strategy(serde_json::json!({})),
        &g,
        &[st("gone", Status::Succeeded, ago(1))],
        now(),
    )
    .unwrap();
    assert_eq!(r.removed.len(), 1);
    assert_eq!(r.removed[0].cluster, "gone");
    assert_eq!(to_apply(&r), ["a"]);
}

#[test]
fn sizes_and_durations() {
    assert_eq!(
        rollout_size(Some(&IntOrString::String("25%".into())), 10, 0),
        Ok(3)
    );
    assert_eq!(rollout_size(Some(&IntOrString::Int(5)), 3, 7), Ok(7));
    assert_eq!(rollout_size(None, 3, 3), Ok(3));
    // The CRDs default maxFailures to the string "0", and their pattern allows plain numbers.
    assert_eq!(
        rollout_size(Some(&IntOrString::String("0".into())), 3, 0),
        Ok(0)
    );
    assert_eq!(
        rollout_size(Some(&IntOrString::String("2".into())), 3, 0),
        Ok(2)
    );
    assert!(rollout_size(Some(&IntOrString::String("five".into())), 3, 0).is_err());
    assert!(rollout_size(Some(&IntOrString::String("x%".into())), 3, 0).is_err());
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert!(parse_duration("5 minutes").is_err());
    assert_eq!(parse_deadline(Some("None")), Ok(None));
    assert_eq!(
        parse_deadline(Some("90s")),
        Ok(Some(Duration::from_secs(90)))
    );
    assert!(parse_deadline(Some("1h30m")).is_err());
    let bad = strategy(
        serde_json::json!({"type": "Progressive", "progressive": {"maxConcurrency": "x"}}),
    );
    let e = rollout(&bad, &groups(&[("", &["a"])]), &[], now()).unwrap_err();
    assert!(e.contains("maxConcurrency"), "{e}");
}
