//! The Rego engine: regorus, wrapped so that a policy is compiled once and evaluated many times,
//! each evaluation bounded in time and memory.
//!
//! A [`Program`] holds one compiled template (its Rego and its libraries), compiled further to
//! bytecode for regorus's virtual machine, which runs a template two to three times faster than
//! its tree-walking interpreter and charges each run's allocations to a budget of its own.
//! Rego the virtual machine's compiler does not take (the `with` keyword, some partial objects)
//! runs on the interpreter instead, with the same time limit and the process-wide heap ceiling
//! [`INTERPRETER_HEAP_CEILING`]. Evaluations share nothing, so one program serves any number of
//! reviews at once. An evaluation that runs past a limit is an error, never a silent pass.

use std::num::{NonZeroU32, NonZeroU64};
use std::sync::Arc;
use std::time::Duration;

use regorus::rvm::vm::{RegoVM, VmError};
use regorus::utils::limits::ExecutionTimerConfig;
use serde_json::Value;

/// The longest one evaluation may run unless configured otherwise.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(2);
/// The most one evaluation on the virtual machine may allocate, unless configured otherwise.
pub const DEFAULT_MEMORY_LIMIT: u64 = 64 * 1024 * 1024;
/// The process's heap, in bytes, beyond which interpreted evaluations fail. The interpreter
/// cannot charge one evaluation alone, so it is stopped by the heap of the whole process; it is
/// set when the first program that needs the interpreter is compiled.
pub const INTERPRETER_HEAP_CEILING: u64 = 1024 * 1024 * 1024;
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
    /// The evaluation allocated more than its memory limit (bytes).
    #[error("evaluation exceeded its memory limit of {} MiB", .0 / (1024 * 1024))]
    Memory(u64),
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

/// What runs one evaluation: a virtual machine loaded with the program's bytecode, or a copy
/// of the prepared interpreter engine.
enum Runner {
    Vm(Box<RegoVM>),
    Interpreter(Box<regorus::Engine>),
}

/// A compiled policy: the main module's package, the prepared interpreter engine and, where the
/// virtual machine's compiler takes the policy, its bytecode. Evaluations run on runners kept
/// for reuse, so a program serves concurrent callers.
pub struct Program {
    engine: regorus::Engine,
    package: String,
    /// The rule the program was compiled for.
    rule: String,
    /// That rule, as `data.<package>.<rule>`.
    entry: String,
    bytecode: Option<Arc<regorus::rvm::program::Program>>,
    time_limit: Duration,
    memory_limit: NonZeroU64,
    spare: std::sync::Mutex<Vec<(Runner, u64)>>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("package", &self.package)
            .field("entry", &self.entry)
            .field("virtual_machine", &self.bytecode.is_some())
            .field("time_limit", &self.time_limit)
            .field("memory_limit", &self.memory_limit)
            .finish()
    }
}

impl Clone for Program {
    fn clone(&self) -> Self {
        Program {
            engine: self.engine.clone(),
            package: self.package.clone(),
            rule: self.rule.clone(),
            entry: self.entry.clone(),
            bytecode: self.bytecode.clone(),
            time_limit: self.time_limit,
            memory_limit: self.memory_limit,
            spare: std::sync::Mutex::new(vec![]),
        }
    }
}

/// Sets the interpreter's heap ceiling once per process.
fn limit_interpreter_heap() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| regorus::set_global_memory_limit(Some(INTERPRETER_HEAP_CEILING)));
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
        let entry = format!("{package}.{rule}");
        let bytecode = to_bytecode(&engine, &entry);
        if bytecode.is_none() {
            limit_interpreter_heap();
        }
        Ok(Program {
            engine,
            package,
            rule: rule.into(),
            entry,
            bytecode,
            time_limit: DEFAULT_TIME_LIMIT,
            memory_limit: NonZeroU64::new(DEFAULT_MEMORY_LIMIT).expect("non-zero"),
            spare: std::sync::Mutex::new(vec![]),
        })
    }

    /// Sets the time limit of each evaluation.
    pub fn with_time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = limit;
        self.spare = std::sync::Mutex::new(vec![]);
        self
    }

    /// Sets the memory limit of each evaluation on the virtual machine, in bytes (at least 1).
    pub fn with_memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = NonZeroU64::new(bytes).unwrap_or(NonZeroU64::MIN);
        self.spare = std::sync::Mutex::new(vec![]);
        self
    }

    /// Whether evaluations run on the virtual machine (else on the interpreter).
    pub fn compiled(&self) -> bool {
        self.bytecode.is_some()
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
        if rule == self.rule {
            self.eval_path(&self.entry, input, data)
        } else {
            self.eval_path(&format!("{}.{rule}", self.package), input, data)
        }
    }

    fn timer(&self) -> ExecutionTimerConfig {
        ExecutionTimerConfig {
            limit: self.time_limit,
            check_interval: NonZeroU32::new(64).expect("non-zero"),
        }
    }

    /// A fresh runner: a virtual machine when `path` is the compiled entry point.
    fn runner(&self, path: &str) -> Runner {
        match &self.bytecode {
            Some(code) if path == self.entry => {
                // Each machine gets bytecode of its own: machines on different threads that
                // share one program contend on the reference counts of its constants, which
                // cost a third of the speed of two threads (measured in the engine benchmark).
                let own = to_bytecode(&self.engine, &self.entry).unwrap_or_else(|| code.clone());
                let mut vm = RegoVM::new();
                vm.load_program(own);
                vm.set_strict_builtin_errors(false);
                // The time limit bounds the work; the default instruction cap (25,000) would
                // stop ordinary audits over an inventory.
                vm.set_max_instructions(usize::MAX);
                vm.set_execution_timer_config(Some(self.timer()));
                vm.set_memory_budget_config(Some(regorus::MemoryBudgetConfig {
                    limit: self.memory_limit,
                }));
                Runner::Vm(Box::new(vm))
            }
            _ => {
                limit_interpreter_heap();
                let mut e = self.engine.clone();
                e.set_execution_timer_config(self.timer());
                Runner::Interpreter(Box::new(e))
            }
        }
    }

    fn eval_path(
        &self,
        path: &str,
        input: regorus::Value,
        data: &Data,
    ) -> Result<regorus::Value, EvalError> {
        let wants_vm = self.bytecode.is_some() && path == self.entry;
        let spare = {
            let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
            let at = spare
                .iter()
                .position(|(r, _)| matches!(r, Runner::Vm(_)) == wants_vm);
            at.map(|i| spare.swap_remove(i))
        };
        let (mut runner, loaded) = spare.unwrap_or_else(|| (self.runner(path), 0));
        let out = match &mut runner {
            Runner::Vm(vm) => {
                if loaded != data.id {
                    vm.set_data(data.value.clone())
                        .map_err(|e| EvalError::Failed(e.to_string()))?;
                }
                vm.set_input(input);
                vm.execute().map_err(|e| self.vm_error(e))?
            }
            Runner::Interpreter(engine) => {
                if loaded != data.id {
                    engine.clear_data();
                    if data.id != 0 {
                        engine
                            .add_data(data.value.clone())
                            .map_err(|e| EvalError::Failed(e.to_string()))?;
                    }
                }
                engine.set_input(input);
                engine
                    .eval_rule(path.into())
                    .map_err(|e| self.interpreter_error(e))?
            }
        };
        // Only a runner that finished cleanly is used again.
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < SPARE_ENGINES {
            spare.push((runner, data.id));
        }
        Ok(out)
    }

    fn vm_error(&self, e: VmError) -> EvalError {
        match e {
            VmError::TimeLimitExceeded { .. } => EvalError::Timeout(self.time_limit),
            VmError::MemoryBudgetExceeded { budget, .. } => EvalError::Memory(budget),
            VmError::MemoryLimitExceeded { limit, .. } => EvalError::Memory(limit),
            other => EvalError::Failed(other.to_string().trim().to_string()),
        }
    }

    fn interpreter_error(&self, e: anyhow::Error) -> EvalError {
        match e.downcast_ref::<regorus::LimitError>() {
            Some(regorus::LimitError::TimeLimitExceeded { .. }) => {
                EvalError::Timeout(self.time_limit)
            }
            Some(regorus::LimitError::MemoryLimitExceeded { limit, .. }) => {
                EvalError::Memory(*limit)
            }
            _ => {
                let msg = e.to_string();
                if msg.contains("exceeded time limit") {
                    EvalError::Timeout(self.time_limit)
                } else if msg.contains("exceeded memory limit") {
                    EvalError::Memory(INTERPRETER_HEAP_CEILING)
                } else {
                    EvalError::Failed(msg.trim().to_string())
                }
            }
        }
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

/// `entry` of the prepared `engine` as bytecode for the virtual machine, or `None` where the
/// virtual machine's compiler does not take the policy.
fn to_bytecode(
    engine: &regorus::Engine,
    entry: &str,
) -> Option<Arc<regorus::rvm::program::Program>> {
    let mut engine = engine.clone();
    let compiled = engine.compile_with_entrypoint(&entry.into()).ok()?;
    regorus::languages::rego::compiler::Compiler::compile_from_policy(&compiled, &[entry]).ok()
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

    /// A template that builds an ever larger value: without a memory limit it takes the
    /// process's heap; with one its evaluation fails and the next review still works.
    #[test]
    fn a_policy_that_allocates_past_its_memory_limit_is_stopped() {
        let greedy = "package p\nviolation[{\"msg\": \"x\"}] { s := [concat(\"\", [input.pad, format_int(i, 10)]) | numbers.range(1, input.n)[i]]; count(s) < 0 }";
        let p = Program::compile(greedy, &[], RegoVersion::V0, "violation")
            .unwrap()
            .with_memory_limit(8 * 1024 * 1024);
        assert!(p.compiled(), "the template runs on the virtual machine");
        let pad = "x".repeat(1024);
        assert_eq!(
            p.eval("violation", &json!({"pad": pad, "n": 100_000}), None),
            Err(EvalError::Memory(8 * 1024 * 1024))
        );
        // The same program, within its limit.
        assert_eq!(
            p.eval("violation", &json!({"pad": "x", "n": 10}), None)
                .unwrap(),
            json!([])
        );
    }

    #[test]
    fn rego_the_virtual_machine_cannot_compile_runs_on_the_interpreter() {
        let with =
            "package p\nviolation[{\"msg\": m}] { m := f with input.x as 2 }\nf := input.x * 10";
        let p = Program::compile(with, &[], RegoVersion::V0, "violation").unwrap();
        assert!(!p.compiled());
        assert_eq!(
            p.eval("violation", &json!({"x": 1}), None).unwrap(),
            json!([{"msg": 20}])
        );
    }

    #[test]
    fn programs_are_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Program>();
    }
}
