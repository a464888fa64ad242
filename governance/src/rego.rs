//! The Rego engine: regorus, wrapped so that a policy is compiled once and evaluated many times,
//! each evaluation bounded in time.
//!
//! A [`Program`] holds one compiled template (its Rego and its libraries). Evaluating it clones
//! the prepared engine, so evaluations share nothing and one program serves any number of
//! reviews. An evaluation that runs past its time limit is an error, never a silent pass.

use std::num::NonZeroU32;
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;
use serde_json::Value;

/// The longest one evaluation may run unless configured otherwise.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(2);
/// Largest Rego source accepted for one module, in bytes.
pub const MAX_SOURCE_BYTES: usize = 1024 * 1024;

/// Which Rego syntax a module is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegoVersion {
    /// Rego v0: rules without `if`/`contains` unless `import rego.v1` (Gatekeeper's default).
    V0,
    /// Rego v1.
    V1,
}

/// Why Rego could not be compiled: the policy author's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// A module did not parse or compile.
    #[error("{module}: {message}")]
    Invalid {
        /// The module's label (`template` or `libs[i]`).
        module: String,
        /// regorus's message.
        message: String,
    },
    /// A module is larger than [`MAX_SOURCE_BYTES`].
    #[error("{0}: larger than {MAX_SOURCE_BYTES} bytes")]
    TooLarge(String),
    /// A library's package is not under `lib.`, as Gatekeeper requires.
    #[error("{module}: library package {package} must start with data.lib.")]
    LibraryPackage {
        /// The module's label.
        module: String,
        /// Its package.
        package: String,
    },
    /// The template's package is missing the rule it must define.
    #[error("the template's Rego defines no `{0}` rule")]
    MissingRule(String),
}

/// Why an evaluation failed: a runtime error of the policy, or its time limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// The evaluation ran past its time limit.
    #[error("evaluation exceeded its time limit of {0:?}")]
    Timeout(Duration),
    /// The policy failed at run time (a builtin error, a conflict).
    #[error("evaluation failed: {0}")]
    Failed(String),
    /// The rule's result is not the shape the caller needs.
    #[error("unexpected result: {0}")]
    BadResult(String),
}

/// A data document converted once for many evaluations (an audit's inventory, say). Engines
/// that last saw the same document keep it, so it is loaded once per engine, not per review.
#[derive(Debug, Clone)]
pub struct Data {
    id: u64,
    value: regorus::Value,
}

static NEXT_DATA: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Data {
    /// The document `json`.
    pub fn new(json: &Value) -> Data {
        Data {
            id: NEXT_DATA.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            value: regorus::Value::from(json.clone()),
        }
    }

    /// No data.
    pub fn empty() -> Data {
        Data {
            id: 0,
            value: regorus::Value::new_object(),
        }
    }
}

/// Most idle engines a program keeps for reuse.
const SPARE_ENGINES: usize = 8;

/// A compiled policy: the main module's package and the prepared engine. Evaluations run on
/// copies of the prepared engine, kept for reuse, so a program serves concurrent callers.
#[derive(Debug)]
pub struct Program {
    engine: regorus::Engine,
    package: String,
    time_limit: Duration,
    spare: std::sync::Mutex<Vec<(regorus::Engine, u64)>>,
}

impl Clone for Program {
    fn clone(&self) -> Self {
        Program {
            engine: self.engine.clone(),
            package: self.package.clone(),
            time_limit: self.time_limit,
            spare: std::sync::Mutex::new(vec![]),
        }
    }
}

fn label_error(module: &str, e: impl std::fmt::Display) -> CompileError {
    // regorus's messages span lines (source excerpt and caret); keep them, trimmed.
    CompileError::Invalid {
        module: module.into(),
        message: e.to_string().trim().to_string(),
    }
}

impl Program {
    /// Compiles `rego` (the main module) with `libs`, in `version` syntax. Each library's
    /// package must be under `lib.`; the main module must define `rule`.
    pub fn compile(
        rego: &str,
        libs: &[String],
        version: RegoVersion,
        rule: &str,
    ) -> Result<Program, CompileError> {
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(version == RegoVersion::V0);
        engine.set_strict_builtin_errors(false);
        let add = |engine: &mut regorus::Engine, label: &str, src: &str| {
            if src.len() > MAX_SOURCE_BYTES {
                return Err(CompileError::TooLarge(label.into()));
            }
            engine
                .add_policy(label.into(), src.into())
                .map_err(|e| label_error(label, e))
        };
        let package = add(&mut engine, "template", rego)?;
        for (i, lib) in libs.iter().enumerate() {
            let label = format!("libs[{i}]");
            let pkg = add(&mut engine, &label, lib)?;
            if !pkg.starts_with("data.lib.") {
                return Err(CompileError::LibraryPackage {
                    module: label,
                    package: pkg,
                });
            }
        }
        let has_rule = engine
            .has_declared_rule_rooted_at("template", rule)
            .map_err(|e| label_error("template", e))?;
        if !has_rule {
            return Err(CompileError::MissingRule(rule.into()));
        }
        // Preparing once (rule ordering, checks) makes copies start prepared, and a policy
        // that fails those checks fails now, not at its first review. A constant query
        // prepares the engine without running the policy.
        engine
            .eval_query("true".into(), false)
            .map_err(|e| label_error("template", e))?;
        Ok(Program {
            engine,
            package,
            time_limit: DEFAULT_TIME_LIMIT,
            spare: std::sync::Mutex::new(vec![]),
        })
    }

    /// Sets the time limit of each evaluation.
    pub fn with_time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = limit;
        self
    }

    /// The main module's package, as `data.<package>`.
    pub fn package(&self) -> &str {
        &self.package
    }

    /// Evaluates `<package>.<rule>` with `input` and `data` as the data document, in regorus's
    /// values. An undefined result is [`regorus::Value::Undefined`].
    pub fn eval_value(
        &self,
        rule: &str,
        input: regorus::Value,
        data: &Data,
    ) -> Result<regorus::Value, EvalError> {
        self.eval_path(format!("{}.{rule}", self.package), input, data)
    }

    fn eval_path(
        &self,
        path: String,
        input: regorus::Value,
        data: &Data,
    ) -> Result<regorus::Value, EvalError> {
        let spare = self.spare.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let (mut engine, loaded) = spare.unwrap_or_else(|| {
            let mut e = self.engine.clone();
            e.set_execution_timer_config(ExecutionTimerConfig {
                limit: self.time_limit,
                check_interval: NonZeroU32::new(64).expect("non-zero"),
            });
            (e, 0)
        });
        if loaded != data.id {
            engine.clear_data();
            if data.id != 0 {
                engine
                    .add_data(data.value.clone())
                    .map_err(|e| EvalError::Failed(e.to_string()))?;
            }
        }
        engine.set_input(input);
        let out = engine.eval_rule(path).map_err(|e| {
            let msg = e.to_string();
            if msg.contains("exceeded time limit") {
                EvalError::Timeout(self.time_limit)
            } else {
                EvalError::Failed(msg.trim().to_string())
            }
        })?;
        // Only an engine that finished cleanly is used again.
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < SPARE_ENGINES {
            spare.push((engine, data.id));
        }
        Ok(out)
    }

    /// Evaluates `<package>.<rule>` with `input` and, when given, `data` as the data document,
    /// in JSON. An undefined result is JSON `null`.
    pub fn eval(
        &self,
        rule: &str,
        input: &Value,
        data: Option<&Value>,
    ) -> Result<Value, EvalError> {
        let data = data.map(Data::new).unwrap_or_else(Data::empty);
        let out = self.eval_value(rule, regorus::Value::from(input.clone()), &data)?;
        to_json(&out)
    }
}

/// A regorus value as JSON; undefined is `null`.
pub fn to_json(v: &regorus::Value) -> Result<Value, EvalError> {
    if *v == regorus::Value::Undefined {
        return Ok(Value::Null);
    }
    serde_json::to_value(v).map_err(|e| EvalError::BadResult(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const V0: &str = r#"
package k8srequiredlabels

violation[{"msg": msg, "details": {"missing": missing}}] {
  provided := {l | input.review.object.metadata.labels[l]}
  required := {l | l := input.parameters.labels[_]}
  missing := required - provided
  count(missing) > 0
  msg := sprintf("you must provide labels: %v", [missing])
}
"#;

    #[test]
    fn a_v0_template_reports_its_violations() {
        let p = Program::compile(V0, &[], RegoVersion::V0, "violation").unwrap();
        assert_eq!(p.package(), "data.k8srequiredlabels");
        let input = json!({"review": {"object": {"metadata": {"labels": {"a": "1"}}}},
            "parameters": {"labels": ["a", "owner"]}});
        let v = p.eval("violation", &input, None).unwrap();
        let v = v.as_array().unwrap();
        assert_eq!(v.len(), 1);
        assert!(v[0]["msg"].as_str().unwrap().contains("owner"), "{v:?}");
        let ok = json!({"review": {"object": {"metadata": {"labels": {"owner": "x"}}}},
            "parameters": {"labels": ["owner"]}});
        assert_eq!(p.eval("violation", &ok, None).unwrap(), json!([]));
    }

    #[test]
    fn v1_syntax_needs_v1_and_libraries_live_under_lib() {
        let v1 =
            "package p\nviolation contains {\"msg\": m} if { m := data.lib.helpers.say(input.x) }";
        let lib = "package lib.helpers\nsay(x) := sprintf(\"got %v\", [x])".to_string();
        let p =
            Program::compile(v1, std::slice::from_ref(&lib), RegoVersion::V1, "violation").unwrap();
        assert_eq!(
            p.eval("violation", &json!({"x": 3}), None).unwrap(),
            json!([{"msg": "got 3"}])
        );
        // v0 rules (no `if`) are refused in v1.
        let v0 = "package p\nviolation[{\"msg\": \"x\"}] { true }";
        assert!(Program::compile(v0, &[], RegoVersion::V0, "violation").is_ok());
        assert!(matches!(
            Program::compile(v0, &[], RegoVersion::V1, "violation"),
            Err(CompileError::Invalid { .. })
        ));
        let bad_lib = "package helpers\nsay(x) := x".to_string();
        assert!(matches!(
            Program::compile(v1, &[bad_lib], RegoVersion::V1, "violation"),
            Err(CompileError::LibraryPackage { .. })
        ));
    }

    #[test]
    fn a_template_without_the_rule_or_that_does_not_parse_is_refused() {
        assert_eq!(
            Program::compile(
                "package p\nallow { true }",
                &[],
                RegoVersion::V0,
                "violation"
            )
            .unwrap_err(),
            CompileError::MissingRule("violation".into())
        );
        let e = Program::compile("package p\nviolation[{", &[], RegoVersion::V0, "violation")
            .unwrap_err();
        assert!(
            matches!(e, CompileError::Invalid { ref module, .. } if module == "template"),
            "{e}"
        );
    }

    #[test]
    fn data_is_visible_and_a_runaway_policy_is_stopped() {
        let p = Program::compile(
            "package p\nviolation[{\"msg\": n}] { n := count(data.inventory.cluster) }",
            &[],
            RegoVersion::V0,
            "violation",
        )
        .unwrap();
        let data = json!({"inventory": {"cluster": {"v1": {}, "apps/v1": {}}}});
        assert_eq!(
            p.eval("violation", &json!({}), Some(&data)).unwrap(),
            json!([{"msg": 2}])
        );
        let slow = Program::compile(
            "package p\nviolation[{\"msg\": \"x\"}] { r := numbers.range(1, 2000); r[i]; r[j]; r[k]; i + j + k < 0 }",
            &[],
            RegoVersion::V0,
            "violation",
        )
        .unwrap()
        .with_time_limit(Duration::from_millis(50));
        assert_eq!(
            slow.eval("violation", &json!({}), None),
            Err(EvalError::Timeout(Duration::from_millis(50)))
        );
    }
}
