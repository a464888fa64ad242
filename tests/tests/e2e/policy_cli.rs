//! `garrison policy test` as a compliance team runs it: one line per case, a last line
//! `N passed, M failed`, and a non-zero exit when any case fails or nothing can be run.

use garrison_e2e::{garrison, workspace};

fn testdata(dir: &str) -> String {
    workspace()
        .join("governance/testdata")
        .join(dir)
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn passing_suites_print_a_line_per_case_and_exit_zero() {
    let out = garrison(&["policy", "test", &testdata("suites")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 38, "{stdout}");
    assert!(
        lines[..37].iter().all(|l| l.starts_with("PASS  ")),
        "{stdout}"
    );
    assert_eq!(lines[37], "37 passed, 0 failed");
}

/// A template whose rewrite to OPA's meaning had to be dropped is named on stderr, in one line;
/// the report on stdout stays as it is.
#[test]
fn a_dropped_rewrite_is_noted_on_stderr() {
    let out = garrison(&["policy", "test", &testdata("noted")]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(
        stdout.lines().last(),
        Some("1 passed, 0 failed"),
        "{stdout}"
    );
    let notes: Vec<&str> = stderr.lines().filter(|l| l.starts_with("note: ")).collect();
    assert_eq!(notes.len(), 1, "{stderr}");
    assert!(
        notes[0]
            .contains("rewrite-dropped: pass 1 of the rewrite to OPA's meaning did not compile")
            && notes[0].contains("__garrison_not0_0__"),
        "{stderr}"
    );
}

#[test]
fn a_wrong_assertion_fails_the_run() {
    let out = garrison(&["policy", "test", &testdata("failing")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert_eq!(
        stdout.lines().last(),
        Some("1 passed, 2 failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL  ") && stdout.contains("wrong-count: got 1 violations but want 2")
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim(), "error: 2 of 3 cases failed");
}

#[test]
fn a_path_that_is_missing_or_not_a_suite_is_one_clear_error() {
    let out = garrison(&["policy", "test", "no/such/dir"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: no/such/dir: "), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1);
    let not_suite = format!("{}/suites/required-labels/template.yaml", testdata(""));
    let out = garrison(&["policy", "test", &not_suite]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Suite"));
}
