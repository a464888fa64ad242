//! The suites under `testdata/`, run as `garrison policy test` runs them: every case of the
//! suites passes, and the suite with wrong assertions fails exactly where it is wrong.

use std::path::PathBuf;

use garrison_governance::suite::{self, Outcome, Totals};

fn testdata(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(dir)
}

#[test]
fn every_case_of_the_suites_passes() {
    let suites = suite::find(&[testdata("suites")]).unwrap();
    assert_eq!(suites.len(), 9, "{suites:?}");
    let mut totals = Totals::default();
    for s in &suites {
        let r = suite::run(s).unwrap();
        for c in &r.cases {
            assert_eq!(c.outcome, Outcome::Pass, "{}: {c:?}", s.display());
        }
        totals.add(&r);
    }
    assert_eq!(totals.passed, 37);
}

#[test]
fn wrong_assertions_fail_with_the_violations_found() {
    let suites = suite::find(&[testdata("failing")]).unwrap();
    let r = suite::run(&suites[0]).unwrap();
    let failed: Vec<(&str, &str)> = r
        .cases
        .iter()
        .filter_map(|c| match &c.outcome {
            Outcome::Fail(why) => Some((c.case.as_deref().unwrap_or_default(), why.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(failed[0].0, "wrong-count");
    assert!(
        failed[0].1.contains("got 1 violations but want 2"),
        "{}",
        failed[0].1
    );
    assert_eq!(failed[1].0, "wrong-message");
    assert!(failed[1].1.contains("missing labels"), "{}", failed[1].1);
}
