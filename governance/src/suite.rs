//! Gatekeeper's `gator verify` test suites, run with Garrison's engine.
//!
//! A suite is a YAML file of `apiVersion: test.gatekeeper.sh/v1alpha1`, `kind: Suite`:
//! `tests[{name, template, constraint, invalid, skip, cases[{name, object, inventory[], skip,
//! assertions[{violations, message}]}]}]`, paths relative to the suite file. For each case the
//! object (or AdmissionReview) is judged against the constraint with the case's inventory, and
//! every assertion must hold: `violations` is an exact count, `yes` (at least one, the default)
//! or `no`, counted among the violations whose message `message` (a regular expression, not
//! anchored) matches. A test marked `invalid` passes only when its constraint does not fit the
//! template's schema.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::gatekeeper::{Constraint, ConstraintError, Inventory, Review, Template, judge};

/// Why suites could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// A path given could not be read.
    #[error("{path}: {err}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        err: std::io::Error,
    },
    /// A file named explicitly is not a suite.
    #[error("{0}: not a Suite of test.gatekeeper.sh")]
    NotASuite(String),
    /// A suite file does not parse.
    #[error("{path}: {err}")]
    Parse {
        /// The path.
        path: String,
        /// The error.
        err: String,
    },
}

#[derive(Debug, Deserialize)]
struct SuiteFile {
    #[serde(default)]
    skip: bool,
    #[serde(default)]
    tests: Vec<TestSpec>,
}

#[derive(Debug, Deserialize)]
struct TestSpec {
    #[serde(default)]
    name: String,
    #[serde(default)]
    template: String,
    #[serde(default)]
    constraint: String,
    #[serde(default)]
    invalid: bool,
    #[serde(default)]
    skip: bool,
    #[serde(default)]
    cases: Vec<CaseSpec>,
}

#[derive(Debug, Deserialize)]
struct CaseSpec {
    #[serde(default)]
    name: String,
    #[serde(default)]
    object: String,
    #[serde(default)]
    inventory: Vec<String>,
    #[serde(default)]
    skip: bool,
    #[serde(default)]
    assertions: Vec<Assertion>,
}

#[derive(Debug, Deserialize)]
struct Assertion {
    #[serde(default)]
    violations: Option<Value>,
    #[serde(default)]
    message: Option<String>,
}

/// How one case (or a test without cases) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every assertion held.
    Pass,
    /// Why it failed.
    Fail(String),
    /// Skipped.
    Skip,
}

/// One line of a suite's report: a case of a test, or a test that has no cases to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// The test's name.
    pub test: String,
    /// The case's name, `None` for the test itself.
    pub case: Option<String>,
    /// The outcome.
    pub outcome: Outcome,
}

/// What one suite file gave.
#[derive(Debug, Clone)]
pub struct SuiteResult {
    /// The suite file.
    pub path: PathBuf,
    /// One entry per case, in order.
    pub cases: Vec<CaseResult>,
    /// What the reader should know about how the suite ran, by test: a template whose Rego
    /// is read in part as regorus reads it ([`crate::gatekeeper::Template::rewrite_note`]).
    pub notes: Vec<(String, String)>,
}

/// Whether `doc` is a gator Suite.
fn is_suite(doc: &Value) -> bool {
    let api = doc["apiVersion"].as_str().unwrap_or_default();
    api.split('/').next() == Some("test.gatekeeper.sh") && doc["kind"] == "Suite"
}

fn read(path: &Path) -> Result<String, SuiteError> {
    std::fs::read_to_string(path).map_err(|err| SuiteError::Io {
        path: path.display().to_string(),
        err,
    })
}

/// The YAML documents of `text`, without empty ones.
fn documents(text: &str) -> Result<Vec<Value>, String> {
    let mut out = vec![];
    for de in serde_yaml::Deserializer::from_str(text) {
        let v = Value::deserialize(de).map_err(|e| e.to_string())?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

/// The suite files under `paths`: files as given (each must be a suite), directories searched
/// recursively for `.yaml`/`.yml` files that are suites; sorted by path.
pub fn find(paths: &[PathBuf]) -> Result<Vec<PathBuf>, SuiteError> {
    let mut out = vec![];
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|err| SuiteError::Io {
            path: p.display().to_string(),
            err,
        })?;
        if meta.is_dir() {
            walk(p, &mut out)?;
        } else {
            let docs = documents(&read(p)?).map_err(|err| SuiteError::Parse {
                path: p.display().to_string(),
                err,
            })?;
            if !docs.first().is_some_and(is_suite) {
                return Err(SuiteError::NotASuite(p.display().to_string()));
            }
            out.push(p.clone());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SuiteError> {
    let entries = std::fs::read_dir(dir).map_err(|err| SuiteError::Io {
        path: dir.display().to_string(),
        err,
    })?;
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml")
            && let Ok(text) = std::fs::read_to_string(&p)
            && documents(&text).is_ok_and(|d| d.first().is_some_and(is_suite))
        {
            out.push(p);
        }
    }
    Ok(())
}

/// Reads the file `rel` of a suite in `dir` (relative paths only), as YAML documents.
fn load(dir: &Path, rel: &str) -> Result<Vec<Value>, String> {
    if rel.is_empty() {
        return Err("no path given".into());
    }
    if Path::new(rel).is_absolute() {
        return Err(format!("{rel}: paths must be relative to the suite"));
    }
    let path = dir.join(rel);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{rel}: {e}"))?;
    let docs = documents(&text).map_err(|e| format!("{rel}: {e}"))?;
    if docs.is_empty() {
        return Err(format!("{rel}: no objects"));
    }
    Ok(docs)
}

fn load_one(dir: &Path, rel: &str) -> Result<Value, String> {
    let mut docs = load(dir, rel)?;
    if docs.len() > 1 {
        return Err(format!(
            "{rel}: {} objects where one is expected",
            docs.len()
        ));
    }
    Ok(docs.remove(0))
}

/// Runs one suite file.
pub fn run(path: &Path) -> Result<SuiteResult, SuiteError> {
    let text = read(path)?;
    let parse_err = |err: String| SuiteError::Parse {
        path: path.display().to_string(),
        err,
    };
    let docs = documents(&text).map_err(parse_err)?;
    let doc = docs
        .into_iter()
        .next()
        .filter(is_suite)
        .ok_or_else(|| SuiteError::NotASuite(path.display().to_string()))?;
    let suite: SuiteFile = serde_json::from_value(doc).map_err(|e| parse_err(e.to_string()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut cases = vec![];
    let mut notes = vec![];
    for test in &suite.tests {
        let line = |case: Option<&str>, outcome: Outcome| CaseResult {
            test: test.name.clone(),
            case: case.map(String::from),
            outcome,
        };
        let names: Vec<Option<&str>> = if test.cases.is_empty() || test.invalid {
            vec![None]
        } else {
            test.cases.iter().map(|c| Some(c.name.as_str())).collect()
        };
        if suite.skip || test.skip {
            cases.extend(names.into_iter().map(|n| line(n, Outcome::Skip)));
            continue;
        }
        let prepared = load_one(dir, &test.template)
            .and_then(|t| Template::from_object(&t).map_err(|e| e.to_string()))
            .and_then(|t| Ok((t, load_one(dir, &test.constraint)?)));
        let (template, constraint_obj) = match prepared {
            Ok(v) => v,
            Err(why) => {
                cases.extend(
                    names
                        .into_iter()
                        .map(|n| line(n, Outcome::Fail(why.clone()))),
                );
                continue;
            }
        };
        if let Some(note) = template.rewrite_note() {
            notes.push((test.name.clone(), note.to_string()));
        }
        let constraint = Constraint::from_object(&constraint_obj, &template);
        if test.invalid {
            cases.push(line(
                None,
                match constraint {
                    Err(ConstraintError::Schema(_)) => Outcome::Pass,
                    Err(e) => Outcome::Fail(format!(
                        "the constraint was expected to be invalid for its schema, but: {e}"
                    )),
                    Ok(_) => Outcome::Fail(
                        "the constraint was expected to be invalid, but it was accepted".into(),
                    ),
                },
            ));
            continue;
        }
        let constraint = match constraint {
            Ok(c) => c,
            Err(e) => {
                let why = e.to_string();
                cases.extend(
                    names
                        .into_iter()
                        .map(|n| line(n, Outcome::Fail(why.clone()))),
                );
                continue;
            }
        };
        if test.cases.is_empty() {
            cases.push(line(None, Outcome::Pass));
            continue;
        }
        for case in &test.cases {
            let outcome = if case.skip {
                Outcome::Skip
            } else {
                match run_case(dir, &template, &constraint, case) {
                    Ok(()) => Outcome::Pass,
                    Err(why) => Outcome::Fail(why),
                }
            };
            cases.push(line(Some(&case.name), outcome));
        }
    }
    Ok(SuiteResult {
        path: path.to_path_buf(),
        cases,
        notes,
    })
}

fn run_case(
    dir: &Path,
    template: &Template,
    constraint: &Constraint,
    case: &CaseSpec,
) -> Result<(), String> {
    if case.object.is_empty() {
        return Err("the case must name an object".into());
    }
    if case.assertions.is_empty() {
        return Err("the case must have assertions".into());
    }
    let object = load_one(dir, &case.object)?;
    let review = Review::of(&object).map_err(|e| format!("{}: {e}", case.object))?;
    let mut inventory = Inventory::new();
    for rel in &case.inventory {
        for obj in load(dir, rel)? {
            inventory.add(&obj).map_err(|e| format!("{rel}: {e}"))?;
        }
    }
    let data = inventory.prepared();
    let results = judge(template, constraint, &review, &inventory, &data);
    for a in &case.assertions {
        let re = match &a.message {
            Some(m) => Some(
                regex::Regex::new(m)
                    .map_err(|e| format!("message {m:?} is not a valid regex: {e}"))?,
            ),
            None => None,
        };
        let matching = results
            .iter()
            .filter(|r| re.as_ref().is_none_or(|re| re.is_match(&r.msg)))
            .count();
        let containing = a
            .message
            .as_ref()
            .map(|m| format!(" containing {m:?}"))
            .unwrap_or_default();
        let (ok, want) = match &a.violations {
            None => (matching >= 1, "at least 1".to_string()),
            Some(Value::String(s)) if s == "yes" => (matching >= 1, "at least 1".to_string()),
            Some(Value::String(s)) if s == "no" => (matching == 0, "0".to_string()),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(n) => (matching as u64 == n, n.to_string()),
                None => return Err(format!("violations {n} must be a count of 0 or more")),
            },
            Some(other) => {
                return Err(format!(
                    "violations {other} must be a count, \"yes\" or \"no\""
                ));
            }
        };
        if !ok {
            let msgs: Vec<&str> = results.iter().map(|r| r.msg.as_str()).collect();
            return Err(format!(
                "got {matching} violations{containing} but want {want}: {msgs:?}"
            ));
        }
    }
    Ok(())
}

/// Counts of a run: cases passed, failed and skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped.
    pub skipped: usize,
}

impl Totals {
    /// Adds a suite's cases.
    pub fn add(&mut self, r: &SuiteResult) {
        for c in &r.cases {
            match c.outcome {
                Outcome::Pass => self.passed += 1,
                Outcome::Fail(_) => self.failed += 1,
                Outcome::Skip => self.skipped += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8srequiredlabels
spec:
  crd:
    spec:
      names:
        kind: K8sRequiredLabels
      validation:
        openAPIV3Schema:
          type: object
          properties:
            labels:
              type: array
              items:
                type: string
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8srequiredlabels
        violation[{"msg": msg}] {
          l := input.parameters.labels[_]
          not input.review.object.metadata.labels[l]
          msg := sprintf("missing label %v", [l])
        }
"#;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn fixture(suite: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "template.yaml", TEMPLATE);
        write(
            d.path(),
            "constraint.yaml",
            "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sRequiredLabels\nmetadata:\n  name: owner\nspec:\n  parameters:\n    labels: [owner]\n",
        );
        write(
            d.path(),
            "bad-constraint.yaml",
            "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sRequiredLabels\nmetadata:\n  name: owner\nspec:\n  parameters:\n    labels: owner\n",
        );
        write(
            d.path(),
            "good.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  labels:\n    owner: me\n",
        );
        write(
            d.path(),
            "bad.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n",
        );
        write(d.path(), "suite.yaml", suite);
        let p = d.path().join("suite.yaml");
        (d, p)
    }

    #[test]
    fn a_suite_passes_and_a_wrong_assertion_fails_with_the_reason() {
        let (_d, p) = fixture(
            r#"
apiVersion: test.gatekeeper.sh/v1alpha1
kind: Suite
tests:
  - name: required-labels
    template: template.yaml
    constraint: constraint.yaml
    cases:
      - name: allowed
        object: good.yaml
        assertions: [{violations: no}]
      - name: disallowed
        object: bad.yaml
        assertions: [{violations: 1, message: "missing label owner"}, {violations: "yes"}]
      - name: wrong
        object: bad.yaml
        assertions: [{violations: no}]
      - name: skipped
        skip: true
        object: bad.yaml
        assertions: [{violations: no}]
  - name: invalid-parameters
    template: template.yaml
    constraint: bad-constraint.yaml
    invalid: true
  - name: invalid-but-valid
    template: template.yaml
    constraint: constraint.yaml
    invalid: true
"#,
        );
        let r = run(&p).unwrap();
        let outcomes: Vec<(&str, Option<&str>, &Outcome)> = r
            .cases
            .iter()
            .map(|c| (c.test.as_str(), c.case.as_deref(), &c.outcome))
            .collect();
        assert_eq!(
            outcomes[0],
            ("required-labels", Some("allowed"), &Outcome::Pass)
        );
        assert_eq!(outcomes[1].2, &Outcome::Pass);
        assert!(
            matches!(outcomes[2].2, Outcome::Fail(w) if w.contains("got 1 violations but want 0")),
            "{:?}",
            outcomes[2]
        );
        assert_eq!(outcomes[3].2, &Outcome::Skip);
        assert_eq!(outcomes[4], ("invalid-parameters", None, &Outcome::Pass));
        assert!(matches!(outcomes[5].2, Outcome::Fail(_)));
        let mut t = Totals::default();
        t.add(&r);
        assert_eq!(
            t,
            Totals {
                passed: 3,
                failed: 2,
                skipped: 1
            }
        );
    }

    #[test]
    fn directories_are_searched_for_suites_and_a_named_file_must_be_one() {
        let (d, p) = fixture("apiVersion: test.gatekeeper.sh/v1alpha1\nkind: Suite\ntests: []\n");
        assert_eq!(find(&[d.path().to_path_buf()]).unwrap(), vec![p]);
        let e = find(&[d.path().join("good.yaml")]).unwrap_err();
        assert!(matches!(e, SuiteError::NotASuite(_)));
        assert!(find(&[d.path().join("missing.yaml")]).is_err());
    }

    #[test]
    fn a_case_without_object_or_assertions_and_absolute_paths_fail() {
        let (_d, p) = fixture(
            r#"
apiVersion: test.gatekeeper.sh/v1alpha1
kind: Suite
tests:
  - name: t
    template: template.yaml
    constraint: constraint.yaml
    cases:
      - name: no-assertions
        object: good.yaml
      - name: no-object
        assertions: [{violations: no}]
      - name: absolute
        object: /etc/hostname
        assertions: [{violations: no}]
"#,
        );
        let r = run(&p).unwrap();
        assert!(
            r.cases
                .iter()
                .all(|c| matches!(c.outcome, Outcome::Fail(_))),
            "{r:?}"
        );
    }
}
