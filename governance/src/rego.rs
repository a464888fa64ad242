//! The Rego engine: regorus, wrapped so that a policy is compiled once and evaluated many times,
//! each evaluation bounded in time, and all of them by the process's heap.
//!
//! A [`Program`] holds one compiled template (its Rego and its libraries). Its entry rule (a
//! template's `violation`) runs on regorus's bytecode virtual machine, two to three times faster
//! than regorus's tree-walking interpreter, with a time limit and a memory budget
//! ([`DEFAULT_MEMORY_LIMIT`]) per evaluation. Any other rule, and a program the machine's
//! compiler does not take (the `with` keyword, say), runs on the interpreter, with the same time
//! limit and the process-wide heap ceiling [`HEAP_CEILING`]. The ceiling is the whole
//! process's: while the heap is above it (a greedy template, or the rest of the process), every
//! evaluation fails, and fails closed. An evaluation takes one of the program's lanes, copies
//! compiled each from source that share no compiled policy with each other (only the data
//! document given to them), so one program serves any number of reviews at once, on as many
//! threads. An evaluation that runs past a limit is an error, never a silent pass.
//!
//! In regorus 0.14.1 the virtual machine does not end a rule's body at an assignment whose
//! value is undefined, as Rego says it must: a helper such as `exempt(c) { img := c.image; ...
//! }` would hold for a container without an image, and `not exempt(c)` let it through. The
//! source the machine runs is therefore guarded first (`opa::guard_assignments`): each variable
//! an assignment binds is checked to be defined after it. The tests run every semantic case
//! on both engines and require the same answer; [`Program::interpreted`] and
//! [`set_interpreter_only`] put a program, or every program, on the interpreter, the reference.

use std::num::{NonZeroU32, NonZeroU64};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use regorus::rvm::vm::{RegoVM, VmError};
use regorus::utils::limits::ExecutionTimerConfig;
use serde_json::Value;

/// The longest one evaluation may run unless configured otherwise.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(2);
/// The process's heap, in bytes, beyond which evaluations fail. The interpreter cannot charge
/// one evaluation alone, so it is stopped by the heap of the whole process; the ceiling is set
/// when the first program is compiled.
pub const HEAP_CEILING: u64 = 1024 * 1024 * 1024;
/// The most one evaluation on the virtual machine may allocate, in bytes.
pub const DEFAULT_MEMORY_LIMIT: u64 = 64 * 1024 * 1024;
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
    /// The template defines `violation` only by heads that OPA gives no name, so Gatekeeper
    /// refuses it (`opa::unnamed_violation`).
    #[error(
        "template:{line}:{col}: missing required rules: [violation]: OPA gives a rule headed by a reference without a value after `if`, such as `violation[{{\"msg\": msg}}] if` (a rule of one value keyed by the brackets' term), no name, so Gatekeeper refuses the template; write `violation contains {{\"msg\": msg}} if {{ ... }}`"
    )]
    UnnamedViolation {
        /// The head's line in the main module.
        line: u64,
        /// Its column.
        col: u64,
    },
    /// Compiling passed a limit (the process's heap): not the policy author's fault.
    #[error("{module}: compiling passed a limit: {message}")]
    Limit {
        /// The module's label.
        module: String,
        /// regorus's message.
        message: String,
    },
}

/// Why an evaluation failed: a runtime error of the policy, or its time limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// The evaluation ran past its time limit.
    #[error("evaluation exceeded its time limit of {0:?}")]
    Timeout(Duration),
    /// The evaluation allocated past its budget, or the process's heap passed
    /// [`HEAP_CEILING`] (bytes).
    #[error("evaluation exceeded the memory limit of {} MiB", .0 / (1024 * 1024))]
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
    /// The document `json`, converted where it lies (regorus's own conversion, without the
    /// copy that `regorus::Value::from` needs: an inventory can be large).
    pub fn new(json: &Value) -> Data {
        Data {
            id: NEXT_DATA.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            value: from_json(json).unwrap_or(regorus::Value::Undefined),
        }
    }

    /// This conversion's identity (0 for no data): documents converted apart have different
    /// ids, even when equal.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// No data.
    pub fn empty() -> Data {
        Data {
            id: 0,
            value: regorus::Value::new_object(),
        }
    }
}

/// Most idle lanes a program keeps for reuse.
const SPARE_LANES: usize = 8;

/// What a program is compiled from, kept to compile it again for another lane.
#[derive(Debug, Clone)]
struct Source {
    rego: String,
    libs: Vec<String>,
    version: RegoVersion,
    rule: String,
}

impl Source {
    /// The text of the module `build` labelled `label` (`template` or `libs[i]`).
    fn module_mut(&mut self, label: &str) -> Option<&mut String> {
        if label == "template" {
            return Some(&mut self.rego);
        }
        label
            .strip_prefix("libs[")
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| self.libs.get_mut(i))
    }
}

/// One compiled copy of a program, used by one evaluation at a time: `proto`, prepared and
/// never evaluated, and `work`, its copy that evaluates, with the id of the data it holds. A
/// copy shares its compiled policy, by reference count, with the copy it was made from, and
/// the interpreter touches those counts at every step; lanes are therefore compiled each from
/// source, so that evaluations on two threads touch no count in common (two threads on copies
/// of one engine measured no faster than one).
///
/// `vm` is the lane's virtual machine for the entry rule, loaded with bytecode of its own (for
/// the same reason), with the id of the data it holds; made at the lane's first evaluation of
/// the entry rule, and dropped after an evaluation that failed.
struct Lane {
    proto: regorus::Engine,
    work: Option<(regorus::Engine, u64)>,
    vm: Option<(Box<RegoVM>, u64)>,
}

/// The data id of a machine not yet given any: a fresh machine's data is `null`, not the empty
/// object every other evaluation sees.
const NO_DATA_YET: u64 = u64::MAX;

/// Whether programs compiled from now on run on the interpreter alone.
static INTERPRETER_ONLY: AtomicBool = AtomicBool::new(false);

/// Puts every program compiled from now on (`on`), or none, on regorus's interpreter alone: the
/// reference engine, slower. For comparing the engines (`garrison policy test --engine`).
pub fn set_interpreter_only(on: bool) {
    INTERPRETER_ONLY.store(on, Ordering::Relaxed);
}

/// What a program's result depends on besides its input, read conservatively from its source:
/// a word the scan cannot rule out counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depends {
    /// The input alone: equal inputs give equal results.
    Input,
    /// The input and the data document (`data.inventory`, say).
    InputAndData,
    /// Something that changes from one evaluation to the next: the clock, randomness, the
    /// network.
    Unrepeatable,
}

/// The namespaces of built-ins whose result is not a function of their arguments (the clock,
/// randomness, the network, the runtime; certificate and token checks read the clock), and
/// Gatekeeper's external data. Deterministic built-ins of the same namespaces (`time.parse_ns`,
/// `crypto.sha256`) count too: the scan reads names, not calls, so that no spelling of a call
/// (`time["now_ns"]()`) escapes it.
const UNREPEATABLE: [&str; 9] = [
    "time",
    "rand",
    "uuid",
    "http",
    "opa",
    "net",
    "crypto",
    "io",
    "external_data",
];

/// The keys at the root of the data document the engine is given (`gatekeeper::Inventory`).
const DATA_ROOTS: [&str; 1] = ["inventory"];

/// What the program compiled from `source`, whose main module's package is `package`
/// (`data.…`), depends on.
fn depends(source: &Source, package: &str) -> Depends {
    let modules = || std::iter::once(&source.rego).chain(&source.libs);
    // A bare name in a module resolves in the data document under the module's package: a
    // template in package `inventory` reads the inventory without saying `data`.
    let in_data = DATA_ROOTS.iter().any(|root| {
        package
            .strip_prefix("data.")
            .is_some_and(|p| p == *root || p.starts_with(&format!("{root}.")))
    });
    if modules().any(|m| {
        UNREPEATABLE
            .iter()
            .any(|w| root_words(m, w).next().is_some())
    }) {
        Depends::Unrepeatable
    } else if in_data || modules().any(|m| reads_data(m)) {
        Depends::InputAndData
    } else {
        Depends::Input
    }
}

/// Where `word` stands in `module` as a name of its own: not part of a longer name, and not a
/// field (`x.word`). Comments and strings count too: the scan errs towards depending.
fn root_words<'a>(module: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    let b = module.as_bytes();
    let ident = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
    module.match_indices(word).filter_map(move |(i, _)| {
        let before = i.checked_sub(1).and_then(|j| b.get(j));
        let after = b.get(i + word.len());
        (!(ident(before) || ident(after) || before == Some(&b'.'))).then_some(i)
    })
}

/// Whether `module` may read the data document beyond the libraries (`data.lib.`): whether it
/// names `data` other than as `data.lib.`.
fn reads_data(module: &str) -> bool {
    root_words(module, "data").any(|i| !module[i + 4..].starts_with(".lib."))
}

static NEXT_PROGRAM: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A compiled policy: the main module's package, and lanes of the prepared interpreter engine
/// kept for reuse; an evaluation takes a lane and gives it back, so a program serves concurrent
/// callers. Clones share their lanes.
#[derive(Clone)]
pub struct Program {
    /// Unique among the process's compilations; clones keep it.
    id: u64,
    depends: Depends,
    source: std::sync::Arc<Source>,
    package: String,
    /// The path of the rule the program was compiled for, `data.<package>.<rule>`, made once
    /// rather than at every evaluation.
    entry: String,
    time_limit: Duration,
    lanes: std::sync::Arc<std::sync::Mutex<Vec<Lane>>>,
    /// The source guarded for the virtual machine (`opa::guard_assignments`), when the
    /// machine's compiler takes it: the entry rule then runs on the machine.
    vm_source: Option<Arc<Source>>,
    /// Why part of the rewrite to OPA's meaning was dropped, when it was.
    note: Option<std::sync::Arc<str>>,
    /// The program split for evaluations that judge one input's review against several
    /// parameters, when its source allows (`split_shared`).
    shared: Option<Arc<Shared>>,
    /// The program made to judge a batch of parameter sets in one evaluation, when its source
    /// allows (`split_batch`).
    batch: Option<Arc<Batch>>,
    /// Its entry rule's messages may be formatted after the evaluation (`opa::late_calls`,
    /// [`format_late`]).
    late: bool,
}

/// A program that judges one review against a batch of parameter sets in one evaluation: its
/// entry rule gives `[i, x]` for each `x` the entry rule gives with the `i`-th parameter set of
/// `input.__garrison_parameters` as `input.parameters` (`opa::batch_edits`).
///
/// Where the template computes from the parameters alone (`{l | l := input.parameters.labels[_]}`),
/// the batch reads those values from `input.__garrison_parameter_terms`, the `i`-th set's at
/// `i` ([`Batch::parameter_terms`]), rather than computing them again for every review.
#[derive(Clone)]
pub struct Batch {
    /// The batch program.
    pub program: Program,
    /// It is made from the split program ([`Shared`]): its input holds the shared terms too.
    pub shared: bool,
    /// Evaluates [`BATCH_TERMS`] (an object of the comprehensions the batch reads from its
    /// input) from an input holding one parameter set, when the batch reads any.
    terms: Option<Program>,
    /// The values of `terms` for each parameter set evaluated so far, by the set's JSON text,
    /// or when they could not be evaluated, when they failed. Clones share it.
    kept: Arc<std::sync::Mutex<std::collections::HashMap<Arc<str>, KeptTerms>>>,
}

/// What a [`Batch`] keeps of a parameter set's terms: their values, or when they failed.
type KeptTerms = Result<regorus::Value, std::time::Instant>;

/// How long a [`Batch`] remembers that a parameter set's terms failed before it evaluates them
/// again: a limit may have been passed because of what else the process ran then (the heap is
/// the whole process's), and a set that fails each time should not cost its time limit at
/// every pass of the agent.
const RETRY_FAILED_TERMS: Duration = Duration::from_secs(600);

/// The input's key, and the rule, for the values of a batch's comprehensions that read only the
/// parameters ([`Batch`]).
pub const BATCH_TERMS: &str = crate::opa::BATCH_TERMS;

/// How many parameter sets' terms a [`Batch`] keeps before it forgets them all: constraints
/// come and go, and each set is evaluated again at its next use.
const KEPT_PARAMETER_TERMS: usize = 4096;

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("program", &self.program)
            .field("shared", &self.shared)
            .field("terms", &self.terms)
            .finish_non_exhaustive()
    }
}

impl Batch {
    fn new(program: Program, shared: bool, terms: Option<Program>) -> Batch {
        Batch {
            program,
            shared,
            terms,
            kept: Default::default(),
        }
    }

    /// Whether each parameter set must come with the values of its terms
    /// ([`Batch::parameter_terms`]) to be judged in the batch.
    pub fn reads_parameter_terms(&self) -> bool {
        self.terms.is_some()
    }

    /// The values of the batch's comprehensions that read only the parameters, for the
    /// parameter set `parameters` (whose JSON text is `key`), evaluated at its first use and
    /// kept; `None` when the batch reads none, or they cannot be evaluated (the set is then
    /// judged on its own, whose program reports why; a failure is remembered for
    /// [`RETRY_FAILED_TERMS`]).
    pub fn parameter_terms(
        &self,
        key: &Arc<str>,
        parameters: &regorus::Value,
    ) -> Option<regorus::Value> {
        let terms = self.terms.as_ref()?;
        let lock = || self.kept.lock().unwrap_or_else(|e| e.into_inner());
        match lock().get(key) {
            Some(Ok(value)) => return Some(value.clone()),
            Some(Err(at)) if at.elapsed() < RETRY_FAILED_TERMS => return None,
            _ => {}
        }
        let mut input = regorus::Value::new_object();
        input
            .as_object_mut()
            .ok()?
            .insert("parameters".into(), parameters.clone());
        let value = match terms.eval_value(BATCH_TERMS, input, &Data::empty()) {
            Ok(v @ regorus::Value::Object(_)) => Ok(v),
            _ => Err(std::time::Instant::now()),
        };
        let mut kept = lock();
        if kept.len() >= KEPT_PARAMETER_TERMS {
            kept.clear();
        }
        kept.insert(key.clone(), value.clone());
        value.ok()
    }
}

/// A program split in two for evaluations of one review against several parameters (several
/// constraints of one template): `terms` evaluates, once per review, the comprehensions whose
/// value does not depend on the parameters ([`SHARED`], an object of them), and `program` is
/// the program with each of those comprehensions read from the input instead
/// (`input.__garrison_shared.set<i>`, or `term<i>`). With the object in its input, `program`
/// gives what the whole program gives (within its time limit, which the whole program may pass
/// where the split does not), and skips their work.
#[derive(Debug)]
pub struct Shared {
    /// Evaluates [`SHARED`], the object of the shared terms, from an input holding the review.
    pub terms: Program,
    /// The program with each shared term read from `input.__garrison_shared`.
    pub program: Program,
}

/// The name of the rule that gives the terms a review's evaluations share, and of the input's
/// key that holds them.
pub const SHARED: &str = "__garrison_shared";

/// The input's key that holds a batch's parameter sets, in order ([`Batch`]).
pub const BATCH_INPUT: &str = crate::opa::BATCH_INPUT;

/// Where `module` reads `input`: the parts it names after it (`review`, `parameters`), or
/// `None` where it reads it otherwise (whole, or with brackets).
fn input_parts(module: &str) -> Option<Vec<&str>> {
    root_words(module, "input")
        .map(|i| {
            let rest = &module[i + "input".len()..];
            ["review", "parameters"].into_iter().find(|part| {
                rest.strip_prefix('.')
                    .and_then(|r| r.strip_prefix(part))
                    .is_some_and(|after| {
                        !after
                            .chars()
                            .next()
                            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                    })
            })
        })
        .collect()
}

/// Whether a program may be split at all ([`Shared`], [`Batch`]): no module uses `with`
/// (which may change `input` or `data` under a term), reads `input` otherwise than as
/// `input.review` or `input.parameters` (it would see the keys the split adds), or names
/// Garrison's own keys and variables.
fn splittable(source: &Source) -> bool {
    let own = [
        SHARED,
        crate::opa::BATCH_INPUT,
        crate::opa::BATCH_AT,
        crate::opa::BATCH_TERMS,
    ];
    std::iter::once(&source.rego).chain(&source.libs).all(|m| {
        own.iter().all(|w| !m.contains(w))
            && root_words(m, "with").next().is_none()
            && input_parts(m).is_some()
    })
}

/// `source` with a rule `rule` added to its main module, whose text is `text`: an object of
/// `terms` (comprehensions of `text`), each under its key (`opa::shared_key`); `rule` is the
/// source's entry rule.
fn terms_rule(source: &Source, text: &str, terms: &[crate::opa::SharedTerm], rule: &str) -> Source {
    let fields: Vec<String> = terms
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let key = crate::opa::shared_key(i, t);
            format!("\"{key}\": {}", &text[t.at.0..t.at.1])
        })
        .collect();
    Source {
        rego: format!("{}\n{rule} := {{{}}}\n", source.rego, fields.join(", ")),
        rule: rule.into(),
        ..source.clone()
    }
}

/// The program of `source` (whose syntax tree is `ast`) made to judge a batch of parameter
/// sets in one evaluation ([`Batch`], `opa::batch_edits`), or `None` where it cannot be:
/// where a library reads the parameters, a variable is named `input` or `data`, or the main
/// module reads them outside its entry rule's definitions. `source` is the program as
/// written, or its split ([`Shared`]); the caller checks that the program as written is
/// [`splittable`].
///
/// Where `hoist`, the comprehensions of the entry rule's bodies that read only the parameters
/// (`opa::parameter_terms`) are read from the input, and the second source evaluates them
/// for one parameter set ([`BATCH_TERMS`], an object of them); `None` when there are none.
fn split_batch(ast: &Value, source: &Source, hoist: bool) -> Option<(Source, Option<Source>)> {
    if source
        .libs
        .iter()
        .any(|l| input_parts(l).is_none_or(|parts| parts.contains(&"parameters")))
    {
        return None;
    }
    let read = modules_of(ast);
    let main = read.modules.iter().find(|m| m.label == "template")?;
    if main.text != source.rego || crate::opa::binds_roots(main.ast, main.text) {
        return None;
    }
    let candidates = match hoist {
        true => crate::opa::parameter_terms(main.ast, main.text, read.rules_of(main)),
        false => vec![],
    };
    let (rego, hoisted) = crate::opa::batch_edits(main.ast, main.text, &source.rule, &candidates)?;
    let terms = (!hoisted.is_empty()).then(|| terms_rule(source, main.text, &hoisted, BATCH_TERMS));
    Some((
        Source {
            rego,
            ..source.clone()
        },
        terms,
    ))
}

/// `source` split for evaluations that share a review ([`Shared`]): the source with a rule
/// [`SHARED`] added to the main module, an object of its shared comprehensions
/// (`opa::shared_terms`), and the source with each of them read from the input; `None` when it
/// has none, or may see the difference:
/// - a `with` anywhere may change `input` or `data` under a comprehension;
/// - a module that reads `input` otherwise than as `input.review` or `input.parameters` would
///   see the added key;
/// - a module that names [`SHARED`] itself;
/// - a package whose rules the main module could reach by another name than the one its
///   package is read by (see below).
///
/// `ast` is the syntax tree of `source` compiled.
fn split_shared(ast: &Value, source: &Source) -> Option<(Source, Source)> {
    if !splittable(source) {
        return None;
    }
    let read = modules_of(ast);
    let main = read.modules.iter().find(|m| m.label == "template")?;
    if main.text != source.rego {
        return None;
    }
    // The module's names must be all its package's rules and imports. A package is matched by
    // its text, so each must be written as plain dotted names (`lib["x"]` is `lib.x`); a
    // package under `inventory` is read as `data.inventory`; and regorus resolves a call
    // `helpers.f(x)` in a package nested under the template's own.
    let plain = |p: &str| {
        p.split('.').all(|part| {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
    };
    let nested = format!("{}.", main.package);
    if read.modules.iter().any(|m| {
        !plain(&m.package)
            || m.package == "inventory"
            || m.package.starts_with("inventory.")
            || m.package.starts_with(&nested)
    }) {
        return None;
    }
    let shared = crate::opa::shared_terms(main.ast, main.text, read.rules_of(main));
    if shared.is_empty() {
        return None;
    }
    let terms = terms_rule(source, main.text, &shared, SHARED);
    let mut edits: Vec<(usize, usize, String)> = shared
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let key = crate::opa::shared_key(i, t);
            (t.at.0, t.at.1, format!("input.{SHARED}.{key}"))
        })
        .collect();
    edits.sort_by_key(|(s, e, _)| (*s, *e));
    let split = Source {
        rego: crate::opa::apply_edits(&source.rego, edits).ok()?,
        ..source.clone()
    };
    Some((terms, split))
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("package", &self.package)
            .field("virtual_machine", &self.vm_source.is_some())
            .field("time_limit", &self.time_limit)
            .finish()
    }
}

/// Sets the heap ceiling once per process.
fn limit_heap() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| regorus::set_global_memory_limit(Some(HEAP_CEILING)));
}

fn label_error(module: &str, e: anyhow::Error) -> CompileError {
    // regorus's messages span lines (source excerpt and caret); keep them, trimmed.
    let message = e.to_string().trim().to_string();
    if e.downcast_ref::<regorus::LimitError>().is_some() {
        return CompileError::Limit {
            module: module.into(),
            message,
        };
    }
    CompileError::Invalid {
        module: module.into(),
        message,
    }
}

/// The name under which templates call Garrison's `sprintf` (`gofmt`), where regorus's would
/// not format as OPA does (`opa::rewrite`).
pub(crate) const GO_SPRINTF: &str = "__garrison_sprintf";

/// OPA's `sprintf(format, args)`: Go's formatting of the arguments as OPA converts them.
/// Operands of the wrong type make the call undefined, as OPA's built-ins are when their errors
/// are not strict (as Gatekeeper runs them, and as regorus's own `sprintf` was here); an output
/// past `gofmt::MAX_OUTPUT` fails the evaluation.
fn go_sprintf(params: Vec<regorus::Value>) -> anyhow::Result<regorus::Value> {
    let [regorus::Value::String(format), regorus::Value::Array(args)] = params.as_slice() else {
        return Ok(regorus::Value::Undefined);
    };
    let args: Vec<crate::gofmt::Arg> = args.iter().map(crate::gofmt::Arg::of).collect();
    crate::gofmt::sprintf(format, &args)
        .map(|s| regorus::Value::from(s.as_str()))
        .map_err(anyhow::Error::msg)
}

/// The key of a `violation` result's message.
pub(crate) fn msg_key() -> &'static regorus::Value {
    static MSG: std::sync::OnceLock<regorus::Value> = std::sync::OnceLock::new();
    MSG.get_or_init(|| regorus::Value::from("msg"))
}

/// The format and arguments of a message left to be formatted after the evaluation:
/// `[{opa::LATE}, format, args]` (`opa::late_calls`); `None` for any other value.
fn late_parts(v: &regorus::Value) -> Option<(&regorus::Value, &regorus::Value)> {
    use regorus::Value as R;
    let R::Array(parts) = v else {
        return None;
    };
    let [R::Set(mark), format, args] = parts.as_slice() else {
        return None;
    };
    let marked = mark.len() == 1
        && matches!(mark.first(), Some(R::String(s)) if s.as_ref() == crate::opa::LATE);
    marked.then_some((format, args))
}

/// Whether `v` is a message left to be formatted after the evaluation ([`late_parts`]).
fn is_late(v: &regorus::Value) -> bool {
    late_parts(v).is_some()
}

/// A `violation` result's message left to be formatted after the evaluation ([`late_parts`]),
/// formatted as OPA's `sprintf` would have: `None` when `v` is not one; `Ok(None)` when the
/// call would have been undefined (a format that is not a string, arguments that are not an
/// array or hold an undefined value), and the result with it; an error for a message past `gofmt::MAX_OUTPUT`, which fails the evaluation as the
/// call would have.
pub(crate) fn late_message(v: &regorus::Value) -> Option<Result<Option<String>, String>> {
    use regorus::Value as R;
    fn undefined_within(v: &R) -> bool {
        match v {
            R::Undefined => true,
            R::Array(a) => a.iter().any(undefined_within),
            R::Set(s) => s.iter().any(undefined_within),
            R::Object(o) => o
                .iter()
                .any(|(k, x)| undefined_within(k) || undefined_within(x)),
            _ => false,
        }
    }
    let (format, args) = late_parts(v)?;
    let (R::String(format), R::Array(args)) = (format, args) else {
        return Some(Ok(None));
    };
    if args.iter().any(undefined_within) {
        return Some(Ok(None));
    }
    let args: Vec<crate::gofmt::Arg> = args.iter().map(crate::gofmt::Arg::of).collect();
    Some(crate::gofmt::sprintf(format, &args).map(Some))
}

/// The entry rule's results with each message left to be formatted ([`late_message`])
/// formatted: a set of results (or of a batch's `[i, result]`) is made again, so that results
/// formatted alike are one, in the order of their values, as the set would have held them. A
/// result whose message would have been undefined is dropped; a message past the output limit
/// fails the evaluation.
fn format_late(v: regorus::Value) -> Result<regorus::Value, EvalError> {
    use regorus::Value as R;
    fn has_late(item: &R) -> bool {
        match item {
            R::Object(o) => o.get(msg_key()).is_some_and(is_late),
            R::Array(a) if a.len() == 2 => has_late(&a[1]),
            _ => false,
        }
    }
    // One result (or `[i, result]`) with its message formatted; `None` when dropped.
    fn formatted(item: &R) -> Result<Option<R>, EvalError> {
        match item {
            R::Array(a) if a.len() == 2 => {
                Ok(formatted(&a[1])?.map(|r| R::from(vec![a[0].clone(), r])))
            }
            R::Object(o) => match o.get(msg_key()).and_then(late_message) {
                None => Ok(Some(item.clone())),
                Some(Ok(None)) => Ok(None),
                Some(Err(e)) => Err(EvalError::Failed(e)),
                Some(Ok(Some(msg))) => {
                    let mut out = item.clone();
                    if let Ok(fields) = out.as_object_mut() {
                        fields.insert(msg_key().clone(), R::from(msg.as_str()));
                    }
                    Ok(Some(out))
                }
            },
            _ => Ok(Some(item.clone())),
        }
    }
    match &v {
        R::Set(items) if items.iter().any(has_late) => {
            let mut out = std::collections::BTreeSet::new();
            for item in items.iter() {
                out.extend(formatted(item)?);
            }
            Ok(R::from(out))
        }
        R::Array(items) if items.iter().any(has_late) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items.iter() {
                out.extend(formatted(item)?);
            }
            Ok(R::from(out))
        }
        _ => Ok(v),
    }
}

/// Compiles `source` into a prepared engine, and names the main module's package.
fn build(source: &Source) -> Result<(regorus::Engine, String), CompileError> {
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(source.version == RegoVersion::V0);
    engine.set_strict_builtin_errors(false);
    engine
        .add_extension(GO_SPRINTF.into(), 2, Box::new(go_sprintf))
        .map_err(|e| label_error("template", e))?;
    let add = |engine: &mut regorus::Engine, label: &str, src: &str| {
        if src.len() > MAX_SOURCE_BYTES {
            return Err(CompileError::TooLarge(label.into()));
        }
        engine
            .add_policy(label.into(), src.into())
            .map_err(|e| label_error(label, e))
    };
    let package = add(&mut engine, "template", &source.rego)?;
    let mut modules = vec![(
        "template".to_string(),
        package.clone(),
        source.rego.as_str(),
    )];
    for (i, lib) in source.libs.iter().enumerate() {
        let label = format!("libs[{i}]");
        let pkg = add(&mut engine, &label, lib)?;
        if !pkg.starts_with("data.lib.") {
            return Err(CompileError::LibraryPackage {
                module: label,
                package: pkg,
            });
        }
        modules.push((label, pkg, lib.as_str()));
    }
    if source.version == RegoVersion::V0 {
        for (label, src) in deprecated_builtins(&engine, &modules) {
            add(&mut engine, &label, &src)?;
        }
    }
    let has_rule = match engine.has_declared_rule_rooted_at("template", &source.rule) {
        Ok(found) => found,
        // regorus 0.14.1 reads every rule head as a path there, and refuses a head keyed by
        // a term that is not a scalar (`helper[{"a": x}] if { ... }`), which OPA and
        // regorus's evaluation read as a rule of one value keyed by the object. The rules
        // are then read from the syntax tree.
        Err(e) if e.to_string().contains(NOT_A_PATH) => {
            roots_of(&syntax_tree(&engine)?, "template").contains(&source.rule)
        }
        Err(e) => return Err(label_error("template", e)),
    };
    if !has_rule {
        return Err(CompileError::MissingRule(source.rule.clone()));
    }
    // Preparing once (rule ordering, checks) makes copies start prepared, and a policy
    // that fails those checks fails now, not at its first review. A constant query
    // prepares the engine without running the policy.
    engine
        .eval_query("true".into(), false)
        .map_err(|e| label_error("template", e))?;
    Ok((engine, package))
}

/// What regorus says of a rule head it cannot read as a path.
const NOT_A_PATH: &str = "not a valid ref";

/// The names of the rules that the module `label` of `ast` (a syntax tree) defines.
fn roots_of(ast: &Value, label: &str) -> std::collections::HashSet<String> {
    modules_of(ast)
        .modules
        .iter()
        .filter(|m| m.label == label)
        .flat_map(|m| crate::opa::rules(m.ast, m.text).1)
        .collect()
}

/// Most set-rule bodies written apart in one program (`opa::split_set_rule_bodies`).
const MAX_BODY_SPLITS: usize = 64;

/// Most passes of the rewrite to OPA's meaning (`opa`): a pass leaves an edit nested in
/// another's text (a negation in a comprehension of another) to the next.
const OPA_PASSES: usize = 4;

/// What the rewrite to OPA's meaning made of a source.
struct Rewritten {
    /// The source rewritten and compiled, or `None` when no module needed it.
    done: Option<(regorus::Engine, Source)>,
    /// Why a pass of the rewrite was dropped, when one was: its text did not compile.
    dropped: Option<String>,
    /// The syntax tree of the program as it stands (rewritten or not), when the rewrite read
    /// it last; `None` when the last pass compiled a new one unread.
    ast: Option<Value>,
}

/// `source` compiled with each module rewritten to OPA's meaning (`opa`: negations, statement
/// ends, `sprintf` with arguments missing). A pass whose rewrite does not compile is dropped,
/// with the reason, and the source stands as the passes before it left it. `engine` holds
/// `source` compiled; its AST gives the spans. A limit reached on the way (the process's heap)
/// is an error, not a reason to keep the author's reading: the program would then differ from
/// one compiled a moment later.
fn read_as_opa(engine: &regorus::Engine, source: &Source) -> Result<Rewritten, CompileError> {
    let mut done: Option<(regorus::Engine, Source)> = None;
    let mut dropped = None;
    let first = syntax_tree(engine)?;
    let read = modules_of(&first);
    refuse_unsafe_vars(&read)?;
    refuse_unnamed_violation(&read, &source.rule)?;
    // The syntax tree of the engine the rewrite stands at (`done`'s, else `engine`'s).
    let mut ast = Some(first);
    for pass in 0..OPA_PASSES {
        let tree = match (ast.take(), &done) {
            (Some(tree), _) => tree,
            (None, Some((e, _))) => syntax_tree(e)?,
            (None, None) => syntax_tree(engine)?,
        };
        let from = done.as_ref().map_or(source, |(_, s)| s);
        let Some(bound) = read_as_opa_once(&tree, from, pass) else {
            ast = Some(tree);
            break;
        };
        match build(&bound) {
            Ok((e, _)) => done = Some((e, bound)),
            Err(e @ CompileError::Limit { .. }) => return Err(e),
            Err(e) => {
                let why = e
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                dropped = Some(format!(
                    "pass {} of the rewrite to OPA's meaning did not compile, so the template is read as regorus reads it from there, and its answers may differ from OPA's: {why}",
                    pass + 1
                ));
                ast = Some(tree);
                break;
            }
        }
    }
    Ok(Rewritten { done, dropped, ast })
}

/// One pass of the rewrite over every module of `source` (whose syntax tree is `ast`), or
/// `None` when nothing changed.
fn read_as_opa_once(ast: &Value, source: &Source, pass: usize) -> Option<Source> {
    let late = crate::opa::late_allowed(&source.rule, &source.libs);
    each_module(ast, source, false, |ast, text, rules| {
        let main = late && text == source.rego;
        Ok(crate::opa::rewrite(ast, text, rules, pass, main))
    })
    .unwrap_or(None)
}

/// A template or library that OPA refuses for a variable under `not` that nothing binds
/// (`opa::unsafe_var`) is refused, with OPA's reason and where: regorus would read it
/// otherwise than its author.
fn refuse_unsafe_vars(read: &Modules) -> Result<(), CompileError> {
    for m in &read.modules {
        if m.label.starts_with(DEPRECATED_LABEL) {
            continue;
        }
        if let Some(v) = crate::opa::unsafe_var(m.ast, m.text, read.rules_of(m)) {
            let label = m.label;
            let hint = if v.name == "_" {
                "a `_` under `not` is bound by nothing"
            } else {
                "a variable under `not` must be bound by another expression of its rule"
            };
            return Err(CompileError::Invalid {
                module: label.into(),
                message: format!(
                    "{label}:{}:{}: rego_unsafe_var_error: var {} is unsafe: {hint}, so OPA refuses it; to say that no element matches, define a rule that holds when one does and negate the rule",
                    v.line, v.col, v.name
                ),
            });
        }
    }
    Ok(())
}

/// A Gatekeeper template (entry rule `violation`) whose main module defines `violation` only
/// by heads that OPA gives no name (`opa::unnamed_violation`) is refused, as Gatekeeper refuses
/// it, with the head's place and the fix. Other programs (a sigstore policy's `isCompliant`)
/// are read as OPA reads them.
fn refuse_unnamed_violation(read: &Modules, rule: &str) -> Result<(), CompileError> {
    if rule != "violation" {
        return Ok(());
    }
    for m in read.modules.iter().filter(|m| m.label == "template") {
        if let Some((line, col)) = crate::opa::unnamed_violation(m.ast) {
            return Err(CompileError::UnnamedViolation { line, col });
        }
    }
    Ok(())
}

/// A module as regorus read it: its label, the text its spans index, its AST and its package.
struct Module<'a> {
    label: &'a str,
    text: &'a str,
    ast: &'a Value,
    package: String,
}

/// The modules of a syntax tree (`syntax_tree`), with the rules of each package over all its
/// modules (a bare name may be any of them).
struct Modules<'a> {
    modules: Vec<Module<'a>>,
    packages: std::collections::HashMap<String, std::collections::HashSet<String>>,
    /// Every module had its label and text (a tree that is not a list has none).
    complete: bool,
}

impl Modules<'_> {
    fn rules_of(&self, m: &Module<'_>) -> &std::collections::HashSet<String> {
        static NONE: std::sync::LazyLock<std::collections::HashSet<String>> =
            std::sync::LazyLock::new(Default::default);
        self.packages.get(&m.package).unwrap_or(&NONE)
    }
}

/// The modules of `ast`, those without a label or text left out (and `complete` false).
fn modules_of(ast: &Value) -> Modules<'_> {
    let mut read = Modules {
        modules: vec![],
        packages: Default::default(),
        complete: ast.is_array(),
    };
    for m in ast.as_array().into_iter().flatten() {
        let label = m.pointer("/source/file").and_then(Value::as_str);
        let text = m.pointer("/source/contents").and_then(Value::as_str);
        let (Some(label), Some(text)) = (label, text) else {
            read.complete = false;
            continue;
        };
        let (package, names) = crate::opa::rules(&m["ast"], text);
        read.packages
            .entry(package.clone())
            .or_default()
            .extend(names);
        read.modules.push(Module {
            label,
            text,
            ast: &m["ast"],
            package,
        });
    }
    read
}

/// The syntax tree of every module compiled in `engine`, as regorus gives it in JSON.
fn syntax_tree(engine: &regorus::Engine) -> Result<Value, CompileError> {
    engine
        .get_ast_as_json()
        .map_err(|e| e.to_string())
        .and_then(|json| serde_json::from_str(&json).map_err(|e| e.to_string()))
        .map_err(|message| CompileError::Limit {
            module: "template".into(),
            message: format!("reading the syntax tree: {message}"),
        })
}

/// `source` with each module rewritten by `f` (the module's AST, the text its spans index, the
/// rules of its package), or `None` when `f` changed none. `ast` is the syntax tree of
/// `source` compiled (`syntax_tree`).
/// Where `strict`, a module `f` cannot rewrite, or whose text regorus read otherwise, makes the
/// whole source [`opa::Unguarded`](crate::opa::Unguarded); else such a module is left as
/// written. Garrison's own modules of deprecated built-ins are not in `source` and are left.
fn each_module(
    ast: &Value,
    source: &Source,
    strict: bool,
    f: impl Fn(
        &Value,
        &str,
        &std::collections::HashSet<String>,
    ) -> Result<Option<String>, crate::opa::Unguarded>,
) -> Result<Option<Source>, crate::opa::Unguarded> {
    use crate::opa::Unguarded;
    let read = modules_of(ast);
    if strict && !read.complete {
        return Err(Unguarded);
    }
    let mut bound = source.clone();
    let mut changed = false;
    for m in &read.modules {
        let Some(target) = bound.module_mut(m.label) else {
            if strict && !m.label.starts_with(DEPRECATED_LABEL) {
                return Err(Unguarded);
            }
            continue;
        };
        // Spans index the text regorus read; a module it read otherwise is left as written.
        if m.text != target.as_str() {
            if strict {
                return Err(Unguarded);
            }
            continue;
        }
        match f(m.ast, m.text, read.rules_of(m)) {
            Ok(Some(rewritten)) => {
                *target = rewritten;
                changed = true;
            }
            Ok(None) => {}
            Err(e) if strict => return Err(e),
            Err(_) => {}
        }
    }
    Ok(changed.then_some(bound))
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
        let mut source = Source {
            rego: rego.into(),
            libs: libs.to_vec(),
            version,
            rule: rule.into(),
        };
        // A partial set rule with several bodies, which OPA's v0 reads as as many rules and
        // regorus's parser refuses, is written as those rules (`opa`), one body at a time.
        let mut splits = 0;
        let (proto, package) = loop {
            match build(&source) {
                Ok(built) => break built,
                Err(CompileError::Invalid { module, message })
                    if splits < MAX_BODY_SPLITS
                        && message.contains(crate::opa::SET_RULE_BODIES) =>
                {
                    match source.module_mut(&module).and_then(|t| {
                        crate::opa::split_set_rule_bodies(t, &message).map(|s| (t, s))
                    }) {
                        Some((t, split)) => *t = split,
                        None => return Err(CompileError::Invalid { module, message }),
                    }
                    splits += 1;
                }
                Err(e) => return Err(e),
            }
        };
        // Where regorus reads Rego otherwise than OPA, the source is rewritten to OPA's meaning
        // (`opa`). Should the rewritten source not compile, which would be Garrison's fault,
        // the author's stands, and the program says so (`rewrite_note`).
        let rewritten = read_as_opa(&proto, &source)?;
        let note = rewritten.dropped;
        let (proto, source) = rewritten.done.unwrap_or((proto, source));
        let ast = match rewritten.ast {
            Some(ast) => ast,
            None => syntax_tree(&proto)?,
        };
        // The splits are new text: should one not compile (a `default` value whose
        // comprehension became a reference, say), the program is not split so.
        let shared = split_shared(&ast, &source).and_then(|(terms, split)| {
            let terms = Program::assemble(terms, None, None).ok()?;
            let (proto, package) = build(&split).ok()?;
            let split_ast = syntax_tree(&proto).ok()?;
            let program = Program::assemble(
                split.clone(),
                Some((proto, package, split_ast.clone())),
                None,
            )
            .ok()?;
            Some((Arc::new(Shared { terms, program }), split, split_ast))
        });
        // The batch is made from the split where there is one, and reads its shared terms.
        let (base, base_ast) = match &shared {
            Some((_, split, split_ast)) => (split, split_ast),
            None => (&source, &ast),
        };
        // With the terms that read only the parameters read from the input where the template
        // has any and both programs compile, else without.
        let batch_of = |hoist: bool| {
            let (batch, terms) = split_batch(base_ast, base, hoist)?;
            let program = Program::assemble(batch, None, None)
                .ok()
                // On the machine alone: regorus's interpreter lets an undefined key of one set
                // drop the results of the others (`opa::batch_edits`).
                .filter(Program::on_machine)?;
            let terms = match terms {
                Some(t) => Some(Program::assemble(t, None, None).ok()?),
                None => None,
            };
            Some(Arc::new(Batch::new(program, shared.is_some(), terms)))
        };
        let batch = Some(())
            .filter(|_| splittable(&source))
            .and_then(|_| batch_of(true).or_else(|| batch_of(false)));
        let mut program = Program::assemble(source, Some((proto, package, ast)), note)?;
        program.shared = shared.map(|(s, _, _)| s);
        program.batch = batch;
        Ok(program)
    }

    /// The program of `source`, already read as OPA reads it: `built` is its prepared engine,
    /// package and syntax tree when the caller has them.
    fn assemble(
        source: Source,
        built: Option<(regorus::Engine, String, Value)>,
        note: Option<String>,
    ) -> Result<Program, CompileError> {
        let (proto, package, ast) = match built {
            Some((proto, package, ast)) => (proto, package, ast),
            None => {
                let (proto, package) = build(&source)?;
                let ast = syntax_tree(&proto)?;
                (proto, package, ast)
            }
        };
        limit_heap();
        let entry = format!("{package}.{}", source.rule);
        let machine = if INTERPRETER_ONLY.load(Ordering::Relaxed) {
            None
        } else {
            for_machine(&proto, Some(ast.clone()), &source, &entry)?
        };
        // The interpreter evaluates the source with each set rule's key bound in its body
        // (`opa::bind_set_keys`): an undefined key there dropped the rule's other elements.
        let (proto, source) = match each_module(&ast, &source, false, crate::opa::bind_set_keys)
            .ok()
            .flatten()
        {
            Some(bound) => match build(&bound) {
                Ok((engine, _)) => (engine, bound),
                Err(e @ CompileError::Limit { .. }) => return Err(e),
                Err(_) => (proto, source),
            },
            None => (proto, source),
        };
        let (vm_source, vm) = match machine {
            Some((guarded, code)) => (Some(Arc::new(guarded)), Some((code, NO_DATA_YET))),
            None => (None, None),
        };
        let late = source.rego.contains(crate::opa::LATE);
        Ok(Program {
            id: NEXT_PROGRAM.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            depends: depends(&source, &package),
            source: std::sync::Arc::new(source),
            package,
            entry,
            time_limit: DEFAULT_TIME_LIMIT,
            lanes: std::sync::Arc::new(std::sync::Mutex::new(vec![Lane {
                proto,
                work: None,
                vm: vm.map(|(code, id)| (Box::new(machine_of(code)), id)),
            }])),
            vm_source,
            note: note.map(std::sync::Arc::from),
            shared: None,
            batch: None,
            late,
        })
    }

    /// Sets the time limit of each evaluation.
    pub fn with_time_limit(mut self, limit: Duration) -> Self {
        self.batch = self.batch.map(|b| {
            Arc::new(Batch {
                program: b.program.clone().with_time_limit(limit),
                terms: b.terms.clone().map(|t| t.with_time_limit(limit)),
                ..(*b).clone()
            })
        });
        self.shared = self.shared.map(|s| {
            Arc::new(Shared {
                terms: s.terms.clone().with_time_limit(limit),
                program: s.program.clone().with_time_limit(limit),
            })
        });
        self.time_limit = limit;
        self
    }

    /// The program on regorus's interpreter alone, the reference engine (slower).
    pub fn interpreted(mut self) -> Self {
        // A batch runs on the machine alone (`split_batch`).
        self.batch = None;
        self.shared = self.shared.map(|s| {
            Arc::new(Shared {
                terms: s.terms.clone().interpreted(),
                program: s.program.clone().interpreted(),
            })
        });
        self.vm_source = None;
        // Lanes are compiled again from source as evaluations need them.
        self.lanes = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
        self
    }

    /// Whether the entry rule runs on regorus's virtual machine (else on the interpreter).
    pub fn on_machine(&self) -> bool {
        self.vm_source.is_some()
    }

    /// Whether the entry rule's messages may be left to be formatted after the evaluation
    /// ([`Held::eval_unformatted`], [`late_message`]).
    pub(crate) fn late(&self) -> bool {
        self.late
    }

    /// The main module's package, as `data.<package>`.
    pub fn package(&self) -> &str {
        &self.package
    }

    /// This compilation's identity: two programs with the same id are clones of one
    /// compilation, and give equal results for equal inputs where [`Program::depends`] allows.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Why the program reads part of its source as regorus does rather than as OPA does, when
    /// it does: a pass of the rewrite to OPA's meaning (`opa`) that did not compile, which is
    /// Garrison's fault, not the author's. Such a program may answer otherwise than
    /// Gatekeeper would.
    pub fn rewrite_note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// What the program's results depend on besides the input.
    pub fn depends(&self) -> Depends {
        self.depends
    }

    /// The program split for evaluations that share a review, when its source allows.
    pub fn shared(&self) -> Option<&Shared> {
        self.shared.as_deref()
    }

    /// The program made to judge a batch of parameter sets in one evaluation, when its source
    /// allows.
    pub fn batch(&self) -> Option<&Batch> {
        self.batch.as_deref()
    }

    /// The program without its splits ([`Program::shared`], [`Program::batch`]): every
    /// evaluation runs it whole.
    pub fn without_sharing(mut self) -> Self {
        self.shared = None;
        self.batch = None;
        self
    }

    /// A lane for one evaluation: an idle one, or else one compiled now.
    fn take_lane(&self) -> Result<Lane, EvalError> {
        let idle = self.lanes.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(lane) => Ok(lane),
            None => {
                // The source compiled once already, so only a limit can stop it now.
                let (proto, _) = build(&self.source)
                    .map_err(|e| EvalError::Failed(format!("cannot compile the policy: {e}")))?;
                Ok(Lane {
                    proto,
                    work: None,
                    vm: None,
                })
            }
        }
    }

    /// Evaluates `<package>.<rule>` with `input` and `data` as the data document, in regorus's
    /// values. An undefined result is [`regorus::Value::Undefined`].
    pub fn eval_value(
        &self,
        rule: &str,
        input: regorus::Value,
        data: &Data,
    ) -> Result<regorus::Value, EvalError> {
        self.hold()?.eval_value(rule, input, data)
    }

    /// Holds one lane of the program for many evaluations in a row, on one thread, and gives it
    /// back when dropped.
    pub fn hold(&self) -> Result<Held<'_>, EvalError> {
        Ok(Held {
            program: self,
            lane: Some(self.take_lane()?),
        })
    }

    fn run(
        &self,
        engine: &mut regorus::Engine,
        loaded: u64,
        rule: &str,
        input: regorus::Value,
        data: &Data,
    ) -> Result<regorus::Value, EvalError> {
        if loaded != data.id {
            engine.clear_data();
            if data.id != 0 {
                engine
                    .add_data(data.value.clone())
                    .map_err(|e| self.interpreter_error(e))?;
            }
        }
        engine.set_execution_timer_config(timer(self.time_limit));
        engine.set_input(input);
        let path = if rule == self.source.rule {
            self.entry.clone()
        } else {
            format!("{}.{rule}", self.package)
        };
        engine
            .eval_rule(path)
            .map_err(|e| self.interpreter_error(e))
    }

    /// Evaluates the entry rule on `lane`'s virtual machine, made first from `guarded` when the
    /// lane has none. A machine whose evaluation failed is dropped.
    fn run_machine(
        &self,
        lane: &mut Lane,
        guarded: &Source,
        input: regorus::Value,
        data: &Data,
    ) -> Result<regorus::Value, EvalError> {
        let (mut vm, loaded) = match lane.vm.take() {
            Some(held) => held,
            None => {
                // The guarded source compiled once already, so only a limit can stop it now.
                let code = build(guarded)
                    .ok()
                    .and_then(|(engine, _)| bytecode(&engine, &self.entry))
                    .ok_or_else(|| {
                        EvalError::Failed("cannot compile the policy to bytecode".into())
                    })?;
                (Box::new(machine_of(code)), NO_DATA_YET)
            }
        };
        // The interpreter refuses a data document that is not an object; so does the machine,
        // which would read it as empty (an inventory that failed to convert, say).
        if !matches!(data.value, regorus::Value::Object(_)) {
            return Err(EvalError::Failed(
                "the data document is not an object".into(),
            ));
        }
        if loaded != data.id {
            vm.set_data(data.value.clone())
                .map_err(|e| EvalError::Failed(e.to_string()))?;
        }
        vm.set_execution_timer_config(Some(timer(self.time_limit)));
        vm.set_input(input);
        let out = vm.execute().map_err(|e| self.vm_error(e))?;
        lane.vm = Some((vm, data.id));
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
                    EvalError::Memory(HEAP_CEILING)
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
        // It refuses only past the heap ceiling.
        let input = from_json(input).map_err(|_| EvalError::Memory(HEAP_CEILING))?;
        let out = self.eval_value(rule, input, &data)?;
        to_json(&out)
    }
}

/// A lane of a [`Program`], held for evaluations in a row (see [`Program::hold`]).
pub struct Held<'a> {
    program: &'a Program,
    lane: Option<Lane>,
}

impl Held<'_> {
    /// Evaluates as [`Program::eval_value`] does, on the held lane.
    pub fn eval_value(
        &mut self,
        rule: &str,
        input: regorus::Value,
        data: &Data,
    ) -> Result<regorus::Value, EvalError> {
        let out = self.eval_unformatted(rule, input, data);
        match out {
            Ok(v) if self.program.late && rule == self.program.source.rule => format_late(v),
            other => other,
        }
    }

    /// Evaluates as [`Held::eval_value`] does, but leaves the entry rule's messages to be
    /// formatted by the caller ([`late_message`]), which reads them once into its own results.
    pub(crate) fn eval_unformatted(
        &mut self,
        rule: &str,
        input: regorus::Value,
        data: &Data,
    ) -> Result<regorus::Value, EvalError> {
        let lane = self.lane.as_mut().expect("a held lane until dropped");
        if let Some(guarded) = &self.program.vm_source
            && rule == self.program.source.rule
        {
            return self.program.run_machine(lane, guarded, input, data);
        }
        let (mut engine, loaded) = lane.work.take().unwrap_or_else(|| (lane.proto.clone(), 0));
        let out = self.program.run(&mut engine, loaded, rule, input, data);
        // Only an engine that finished cleanly evaluates again; the lane's prototype is
        // untouched either way.
        if out.is_ok() {
            lane.work = Some((engine, data.id));
        }
        out
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(lane) = self.lane.take() {
            let mut lanes = self.program.lanes.lock().unwrap_or_else(|e| e.into_inner());
            if lanes.len() < SPARE_LANES {
                lanes.push(lane);
            }
        }
    }
}

/// The label of the module of deprecated built-ins Garrison adds to a package, before the
/// package's name.
const DEPRECATED_LABEL: &str = "garrison:deprecated-builtins:";

/// OPA's built-ins that Rego v0 still has and regorus does not, as Rego: `any` and `all` (is
/// any, or every, element of an array or set `true`; undefined for anything else, as OPA's
/// type error is outside strict mode) and `re_match` (the old name of `regex.match`).
/// Gatekeeper's library still calls them.
const DEPRECATED_BUILTINS: [(&str, &str); 3] = [
    (
        "any",
        "any(xs) := count([x | x := xs[_]; x == true]) > 0 { {\"array\", \"set\"}[type_name(xs)] }",
    ),
    (
        "all",
        "all(xs) := count([x | x := xs[_]; x != true]) == 0 { {\"array\", \"set\"}[type_name(xs)] }",
    ),
    (
        "re_match",
        "re_match(pattern, value) := regex.match(pattern, value)",
    ),
];

/// For each package among Rego v0 `modules` (label, package as `data.…`, source) whose modules
/// call deprecated built-ins that none of them declares, a module of that package defining them
/// ([`DEPRECATED_BUILTINS`]), with its label. A call is the name followed by `(`, not part of a
/// longer name; what is declared is read from the parsed modules.
fn deprecated_builtins(
    engine: &regorus::Engine,
    modules: &[(String, String, &str)],
) -> Vec<(String, String)> {
    let called = |src: &str, name: &str| {
        src.match_indices(name).any(|(at, _)| {
            let before = src[..at].chars().next_back();
            let after = src[at + name.len()..].trim_start().starts_with('(');
            after && !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
        })
    };
    let mut packages: Vec<&str> = modules.iter().map(|(_, p, _)| p.as_str()).collect();
    packages.sort_unstable();
    packages.dedup();
    // The syntax tree, read once and only for a module whose heads regorus cannot read as
    // paths (`helper[{"a": x}] if { ... }`).
    let tree = std::cell::OnceCell::new();
    let declared = |label: &str, name: &str| match engine.has_declared_rule_rooted_at(label, name) {
        Ok(found) => found,
        Err(e) if e.to_string().contains(NOT_A_PATH) => tree
            .get_or_init(|| syntax_tree(engine).ok())
            .as_ref()
            .is_none_or(|ast| roots_of(ast, label).contains(name)),
        // A module that cannot even be asked keeps whatever it has.
        Err(_) => true,
    };
    let mut out = vec![];
    for package in packages {
        let same: Vec<&(String, String, &str)> =
            modules.iter().filter(|(_, p, _)| p == package).collect();
        let wanted: Vec<&str> = DEPRECATED_BUILTINS
            .iter()
            .filter(|(name, _)| {
                same.iter().any(|(_, _, src)| called(src, name))
                    && !same.iter().any(|(label, _, _)| declared(label, name))
            })
            .map(|(_, def)| *def)
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let package = package.strip_prefix("data.").unwrap_or(package);
        out.push((
            format!("{DEPRECATED_LABEL}{package}"),
            format!("package {package}\n\n{}\n", wanted.join("\n")),
        ));
    }
    out
}

/// The entry rule `entry` of a program compiled from `source` (`proto`, whose syntax tree is
/// `ast` when it has been read already), as the virtual machine runs it: the source guarded (`opa::guard_assignments`) and its bytecode. `None` when the
/// machine's compiler does not take the program (the `with` keyword, some partial objects) or
/// the guarded source does not compile: the program then runs on the interpreter. A limit
/// reached on the way is an error, as in `read_as_opa`.
fn for_machine(
    proto: &regorus::Engine,
    ast: Option<Value>,
    source: &Source,
    entry: &str,
) -> Result<Option<(Source, Arc<regorus::rvm::program::Program>)>, CompileError> {
    // One reading of the syntax tree serves the refusals and the guards: the rewrite's last,
    // when it read `proto`'s.
    let ast = match ast {
        Some(ast) => ast,
        None => syntax_tree(proto)?,
    };
    if machine_differs(&ast) {
        return Ok(None);
    }
    let Ok(guarded) = guard_once(&ast, source) else {
        return Ok(None);
    };
    let engine = match build(&guarded) {
        Ok((engine, _)) => engine,
        Err(e @ CompileError::Limit { .. }) => return Err(e),
        Err(_) => return Ok(None),
    };
    Ok(bytecode(&engine, entry).map(|code| (guarded, code)))
}

/// Whether the virtual machine may answer the program whose syntax tree is `ast` otherwise than OPA
/// in a way no guard settles: rules that may conflict or skip an `else`
/// (`opa::may_conflict`), object comprehensions or the `in` operator (`opa::unguarded_forms`).
/// OPA and the interpreter agree there; such a program runs on the interpreter. A module that
/// cannot be read counts.
fn machine_differs(ast: &Value) -> bool {
    let mut groups = std::collections::HashMap::new();
    for m in ast.as_array().into_iter().flatten() {
        let Some(text) = m.pointer("/source/contents").and_then(Value::as_str) else {
            return true;
        };
        if crate::opa::unguarded_forms(&m["ast"]) {
            return true;
        }
        let (package, _) = crate::opa::rules(&m["ast"], text);
        crate::opa::definitions(&m["ast"], text, &package, &mut groups);
    }
    crate::opa::may_conflict(&groups)
}

/// `source` with every module guarded for the virtual machine (`opa::guard_assignments`), or
/// `Unguarded` when a module could not be. `ast` is `source`'s syntax tree.
fn guard_once(ast: &Value, source: &Source) -> Result<Source, crate::opa::Unguarded> {
    each_module(ast, source, true, crate::opa::guard_assignments)
        .map(|guarded| guarded.unwrap_or_else(|| source.clone()))
}

/// `entry` of the prepared `engine` as bytecode, or `None` where the machine's compiler does
/// not take it.
fn bytecode(engine: &regorus::Engine, entry: &str) -> Option<Arc<regorus::rvm::program::Program>> {
    let compiled = engine.clone().compile_with_entrypoint(&entry.into()).ok()?;
    regorus::languages::rego::compiler::Compiler::compile_from_policy(&compiled, &[entry]).ok()
}

/// A virtual machine loaded with `code`: builtin errors make a value undefined, as on the
/// interpreter (and in OPA outside strict mode); a memory budget per evaluation; no instruction
/// cap (the time limit bounds the work; the default cap would stop audits over an inventory).
fn machine_of(code: Arc<regorus::rvm::program::Program>) -> RegoVM {
    let mut vm = RegoVM::new();
    vm.load_program(code);
    vm.set_strict_builtin_errors(false);
    vm.set_max_instructions(usize::MAX);
    vm.set_memory_budget_config(Some(regorus::MemoryBudgetConfig {
        limit: NonZeroU64::new(DEFAULT_MEMORY_LIMIT).expect("non-zero"),
    }));
    vm
}

fn timer(limit: Duration) -> ExecutionTimerConfig {
    ExecutionTimerConfig {
        limit,
        check_interval: NonZeroU32::new(64).expect("non-zero"),
    }
}

/// JSON as a regorus value, read in place, without the copy that `regorus::Value::from`
/// needs, built directly: about two thirds of the time of regorus's own conversion
/// (`Deserialize`), as each string is copied once, not twice. It gives the value that
/// conversion gives, but for an object whose first key is serde_json's private number marker
/// (`$serde_json::private::Number`), which regorus reads as the number it names and this
/// keeps as the object it is, as OPA does; every path from JSON into the engine goes through
/// here, so one document reads alike everywhere. A number that is not an integer goes
/// through regorus's conversion, whose reading of floats it keeps. Refused past the heap
/// ceiling, which is checked after each array and each object is read (regorus checks after
/// each element): a soft limit, passed by at most one container's size.
pub fn from_json(v: &Value) -> Result<regorus::Value, String> {
    use regorus::Value as R;
    let heap = || regorus::utils::limits::check_memory_limit_if_needed().map_err(|e| e.to_string());
    Ok(match v {
        Value::Null => R::Null,
        Value::Bool(b) => R::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => R::from(u),
            (None, Some(i)) => R::from(i),
            (None, None) => {
                use serde::Deserialize;
                R::deserialize(v).map_err(|e| e.to_string())?
            }
        },
        Value::String(s) => R::String(s.as_str().into()),
        Value::Array(a) => {
            let items = a.iter().map(from_json).collect::<Result<Vec<_>, _>>()?;
            heap()?;
            R::from(items)
        }
        Value::Object(m) => {
            let mut fields = std::collections::BTreeMap::new();
            for (k, x) in m {
                fields.insert(R::String(k.as_str().into()), from_json(x)?);
            }
            heap()?;
            R::from(fields)
        }
    })
}

/// A regorus value as JSON; undefined is `null`.
pub fn to_json(v: &regorus::Value) -> Result<Value, EvalError> {
    if *v == regorus::Value::Undefined {
        return Ok(Value::Null);
    }
    json_of(v)
}

/// `v` as JSON, as regorus's own serialization writes it (objects and sets in sorted order, a
/// set as an array, a key that is not a string as its JSON text, undefined as `"<undefined>"`),
/// built directly: serialization through serde took a third of a Gatekeeper case's time on the
/// virtual machine, reading each violation's details.
pub fn json_of(v: &regorus::Value) -> Result<Value, EvalError> {
    use regorus::Value as R;
    const EXACT: u64 = 1 << 53;
    Ok(match v {
        R::Null => Value::Null,
        R::Bool(b) => Value::Bool(*b),
        R::String(s) => Value::String(s.to_string()),
        // An integral value within 2^53, where a float's shortest decimal is its exact value
        // (regorus writes 2.0 as `2`); not zero, which a float writes as `-0` when negative.
        R::Number(n)
            if n.as_i64()
                .is_some_and(|i| i != 0 && i.unsigned_abs() < EXACT) =>
        {
            Value::from(n.as_i64().unwrap_or_default())
        }
        R::Number(n) => n
            .format_decimal()
            .parse::<serde_json::Number>()
            .map(Value::Number)
            .map_err(|_| EvalError::BadResult(format!("a number JSON cannot hold: {v}")))?,
        R::Array(a) => Value::Array(a.iter().map(json_of).collect::<Result<_, _>>()?),
        R::Set(s) => Value::Array(s.iter_sorted().map(json_of).collect::<Result<_, _>>()?),
        R::Object(o) => {
            let mut map = serde_json::Map::with_capacity(o.len());
            for (k, x) in o.iter_sorted() {
                let key = match k {
                    R::String(s) => s.to_string(),
                    other => serde_json::to_string(other)
                        .map_err(|e| EvalError::BadResult(e.to_string()))?,
                };
                map.insert(key, json_of(x)?);
            }
            Value::Object(map)
        }
        R::Undefined => Value::String("<undefined>".into()),
    })
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

    /// The messages of `p`'s violations for `input`, sorted; where `p` runs on the virtual
    /// machine, the same as on the interpreter.
    fn messages(p: &Program, input: &Value) -> Vec<String> {
        let read = |p: &Program| {
            let mut got: Vec<String> = p
                .eval("violation", input, None)
                .unwrap()
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["msg"].as_str().unwrap().to_string())
                .collect();
            got.sort();
            got
        };
        let machine = read(p);
        if p.on_machine() {
            let interpreter = read(&p.clone().interpreted());
            assert_eq!(
                machine, interpreter,
                "the virtual machine and the interpreter agree"
            );
        }
        machine
    }

    /// A batch iterates over the parameter sets from the first statement that reads them, so
    /// the statements before it (what the review alone gives) are evaluated once for all.
    #[test]
    fn a_batch_iterates_from_the_first_statement_that_reads_the_parameters() {
        let iterate = "_ = input.__garrison_parameters[__garrison_at]";
        for (template, reads) in [
            (V0.to_string(), "required :="),
            // Statements after `;` on one line.
            (
                V0.replace("\n  required :=", "; required :="),
                "required :=",
            ),
            // The parameters read by the first statement: the body's start.
            (
                V0.replace("  provided :=", "  input.parameters.labels\n  provided :="),
                "input.__garrison_parameters[__garrison_at].labels\n",
            ),
        ] {
            let p = Program::compile(&template, &[], RegoVersion::V0, "violation").unwrap();
            let batch = &p.batch().expect("a batch").program.source.rego;
            let at = batch.find(iterate).expect(batch);
            assert_eq!(batch.matches(iterate).count(), 1, "{batch}");
            let first = batch[at..].find(reads).expect(batch) + at;
            assert!(
                batch[at + iterate.len()..first].trim() == ";",
                "iterates just before the first read: {batch}"
            );
        }
        // A statement whose span starts after its first character (a string's opening quote)
        // does not show where it starts: the body's start, as before.
        let quoted = V0.replace(
            "  required :=",
            "  \"owner\" != input.parameters.skip\n  required :=",
        );
        let p = Program::compile(&quoted, &[], RegoVersion::V0, "violation").unwrap();
        let batch = &p.batch().expect("a batch").program.source.rego;
        let at = batch.find(iterate).expect(batch);
        assert!(batch[..at].trim_end().ends_with('{'), "{batch}");
    }

    #[test]
    fn a_v0_template_reports_its_violations() {
        let p = Program::compile(V0, &[], RegoVersion::V0, "violation").unwrap();
        // The set difference of two set comprehensions keeps it on the virtual machine.
        assert!(p.on_machine());
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

    #[test]
    fn the_with_keyword_replaces_input_for_one_expression() {
        let with =
            "package p\nviolation[{\"msg\": m}] { m := f with input.x as 2 }\nf := input.x * 10";
        let p = Program::compile(with, &[], RegoVersion::V0, "violation").unwrap();
        assert_eq!(
            p.eval("violation", &json!({"x": 1}), None).unwrap(),
            json!([{"msg": 20}])
        );
    }

    /// An assignment of an undefined value ends its rule's body, as in OPA. regorus's virtual
    /// machine (0.14.1) goes on instead, and so lets `not exempt(c)` pass a container without
    /// an image: this is why Garrison evaluates on the interpreter.
    /// OPA refuses a `_` under `not` (`var _ is unsafe`); regorus compiles it and iterates
    /// outside the negation, so `not c.ports[_].name == "http"` read "some port is not named
    /// http": a container without ports passed, and one with an http port among others was
    /// reported. Such a template is refused, with OPA's reason and where.
    #[test]
    fn an_unbound_variable_under_not_is_refused_as_opa_refuses_it() {
        for (version, body) in [
            (RegoVersion::V1, r#"not input.xs[_] == "a""#),
            (RegoVersion::V1, r#"not input.xs[_]"#),
            (RegoVersion::V1, r#"not input.xs[_].name == "a""#),
            (RegoVersion::V1, r#"not input.xs[_] = "a""#),
            (RegoVersion::V1, r#"not startswith(input.xs[_], "a")"#),
            (RegoVersion::V1, r#"not input.xs[_] > 3"#),
            (RegoVersion::V1, r#"not "a" in input.xs[_]"#),
            (RegoVersion::V1, r#"not [input.xs[_]] == ["a"]"#),
            (RegoVersion::V1, r#"not {"k": input.xs[_]} == {}"#),
            (RegoVersion::V1, r#"x := input.xs; not x[_] == "a""#),
        ] {
            let src =
                format!("package t\nviolation contains {{\"msg\": \"none\"}} if {{ {body} }}\n");
            let err = Program::compile(&src, &[], version, "violation")
                .err()
                .unwrap_or_else(|| panic!("{body} compiles"))
                .to_string();
            // The body starts at column 41; the message names the first `_`.
            let at = 41 + body.find('_').unwrap();
            assert!(
                err.contains(&format!(
                    "template:2:{at}: rego_unsafe_var_error: var _ is unsafe"
                )),
                "{body}: {err}"
            );
        }
        // In v0, in a helper rule, and in a library.
        let v0 = "package t\nviolation[{\"msg\": \"m\"}] { ok }\nok { not input.xs[_].name == \"http\" }\n";
        let err = Program::compile(v0, &[], RegoVersion::V0, "violation")
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("template:3:19: rego_unsafe_var_error"),
            "{err}"
        );
        // A named variable that nothing else in its rule binds.
        for (body, at) in [
            (
                r#"not input.xs[i] == "a""#,
                "2:54: rego_unsafe_var_error: var i is unsafe",
            ),
            (
                r#"some i; not input.xs[i].name == "a""#,
                "2:62: rego_unsafe_var_error: var i is unsafe",
            ),
        ] {
            let src =
                format!("package t\nviolation contains {{\"msg\": \"none\"}} if {{ {body} }}\n");
            let err = Program::compile(&src, &[], RegoVersion::V1, "violation")
                .err()
                .unwrap();
            assert!(
                err.to_string().contains(&format!("template:{at}")),
                "{body}: {err}"
            );
        }
        let lib = "package lib.x\nnone(xs) { not xs[_] == 1 }\n".to_string();
        let main =
            "package t\nimport data.lib.x\nviolation[{\"msg\": \"m\"}] { x.none(input.xs) }\n";
        let err = Program::compile(main, &[lib], RegoVersion::V0, "violation")
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("libs[0]:2:19: rego_unsafe_var_error"),
            "{err}"
        );
    }

    /// What OPA accepts stays: a wildcard in a comprehension (a body of its own) or in a nested
    /// call (evaluated before the negation, in OPA as in regorus), and the helper rule that says
    /// "no element is".
    #[test]
    fn wildcards_that_opa_binds_are_kept_with_its_meaning() {
        let src = r#"package t
has_http(c) if c.ports[_].name == "http"
violation contains {"msg": sprintf("%v has no http port", [c.name])} if {
  some c in input.containers
  not has_http(c)
}
violation contains {"msg": "none of them"} if { not count([p | p := input.containers[_].ports[_]]) > 0 }
violation contains {"msg": sprintf("%v: not a small port", [p])} if {
  p := input.containers[_].ports[_].port
  not p + 0 < 1024
}
violation contains {"msg": "some name is not a"} if { not upper(lower(input.containers[_].name)) == "A" }
violation contains {"msg": sprintf("%v: no port %v", [c.name, i])} if {
  some i in [0, 1]
  c := input.containers[_]
  not c.ports[i]
}
names contains n if n := input.containers[_].name
violation contains {"msg": sprintf("%v lacks a port", [n])} if { some n in names; not input.containers[j].ports[0]; input.containers[j].name == n }
violation contains {"msg": "every key is good"} if { every k, v in {"a": 1} { not startswith(k, "x"); not v == 2 } }
"#;
        let p = Program::compile(src, &[], RegoVersion::V1, "violation").unwrap();
        let input = json!({"containers": [
            {"name": "a", "ports": []},
            {"name": "b", "ports": [{"name": "metrics", "port": 9090}, {"name": "http", "port": 80}]},
        ]});
        assert_eq!(
            messages(&p, &input),
            [
                "9090: not a small port",
                "a has no http port",
                "a lacks a port",
                "a: no port 0",
                "a: no port 1",
                "every key is good",
                "some name is not a",
            ]
        );
        let empty = json!({"containers": []});
        assert_eq!(messages(&p, &empty), ["every key is good", "none of them"]);
    }

    #[test]
    fn an_undefined_assignment_ends_the_rule_as_in_opa() {
        let src = r#"
package p

exempt(c) {
  img := c.image
  true
}

allowed {
  x := input.missing
}

violation[{"msg": "not exempt"}] {
  c := input.containers[_]
  not exempt(c)
}

violation[{"msg": "not allowed"}] {
  not allowed
}

violation[{"msg": "assigned nothing"}] {
  params := object.get(input, "parameters", {})
  users := object.get(params[input.name], "users", [])
  true
}
"#;
        let p = Program::compile(src, &[], RegoVersion::V0, "violation").unwrap();
        assert!(p.on_machine());
        let input = json!({"containers": [{"name": "no-image"}], "name": "absent",
            "parameters": {"present": {"users": ["a"]}}});
        let got = messages(&p, &input);
        assert_eq!(got, ["not allowed", "not exempt"]);
    }

    /// OPA binds a negated expression's dynamic terms before the negation (see `opa`):
    /// each of these rules is the answer OPA gives, with `input.missing` undefined.
    #[test]
    fn negated_expressions_bind_their_terms_first_as_in_opa() {
        let src = r#"
package p

import future.keywords.in
import input.review

f(x) { x == "yes" }
accept("any", _, _)
obj := {"a": true}

violation[{"msg": "call with undefined argument"}] { not f(input.missing) }
violation[{"msg": "call with defined argument"}] { not f(input.no) }
violation[{"msg": "function of params"}] { params := input.params; not accept("other", 1, params.ranges) }
violation[{"msg": "nested call"}] { not startswith(lower(input.missing), "a") }
violation[{"msg": "dynamic key"}] { not obj[input.missing] }
violation[{"msg": "absent key"}] { not obj[input.no] }
violation[{"msg": "equal"}] { not input.missing == 3 }
violation[{"msg": "unify"}] { not input.missing = 3 }
violation[{"msg": "not equal"}] { not input.missing != 3 }
violation[{"msg": "greater"}] { not input.missing > 3 }
violation[{"msg": "membership"}] { not "a" in input.missing }
violation[{"msg": "lone ref"}] { not input.missing }
violation[{"msg": "in array"}] { not f([input.missing][0]) }
violation[{"msg": "comprehension"}] { xs := [y | y := input.list[_]; not f(y.missing)]; count(xs) == 2 }
violation[{"msg": "one line"}] { true; not f(input.missing) ; true }
violation[{"msg": "undefined rule"}] { not f(nothing) }
violation[{"msg": "defined rule"}] { not f(no) }
violation[{"msg": "imported"}] { not f(review.missing) }
violation[{"msg": "nested"}] { not count([y | y := input.list[_]; not f(y.missing)]) > 1 }
violation[{"msg": "local variable"}] { x := input.no; not f(x) }

violation[{"msg": "undefined head"}] { not nothing.x }
violation[{"msg": "comment before"}] {
  x := 1 # only if
  not f(input.missing)
}

nothing := input.missing
no := "no"
"#;
        let p = Program::compile(src, &[], RegoVersion::V0, "violation").unwrap();
        let input = json!({"no": "no", "params": {}, "list": [{}, {"missing": "no"}],
            "review": {}});
        let got = messages(&p, &input);
        // Undefined arguments end the body; a defined one is negated as written.
        assert_eq!(
            got,
            [
                "absent key",
                "call with defined argument",
                "defined rule",
                "equal",
                "local variable",
                "lone ref",
                "nested",
                "undefined head",
                "unify",
            ]
        );
        // Rego v1, with a body of one literal after `if`.
        let v1 = "package p\nf(x) if x == 1\nviolation contains \"unbound\" if not f(input.missing)\nviolation contains \"bound\" if not f(input.two)";
        let p = Program::compile(v1, &[], RegoVersion::V1, "violation").unwrap();
        assert_eq!(
            p.eval("violation", &json!({"two": 2}), None).unwrap(),
            json!(["bound"])
        );
    }

    /// OPA's `in` is a call, undefined when an operand is; regorus answered `false` and went
    /// on, so each of these rules held for an input without `missing` (in OPA none does). A
    /// defined operand is read as written.
    #[test]
    fn the_in_operator_with_an_undefined_operand_is_undefined_as_in_opa() {
        let src = r#"package t
violation contains "assigned" if { b := input.missing in [1]; b == false }
violation contains "compared" if { (input.missing in [1]) == false }
violation contains "collection" if { b := 1 in input.missing; b == false }
violation contains "in an array" if { x := [input.missing in [1]]; count(x) == 1 }
violation contains "key" if { b := input.missing, 1 in [1]; b == false }
violation contains "call" if { b := lower(input.missing) in ["a"]; b == false }
violation contains "defined, false" if { b := input.two in [1]; b == false }
violation contains "defined, true" if { b := input.two in {2}; b == true }
violation contains "key and value" if { b := 0, input.two in [2]; b }
violation contains sprintf("%v is one", [x]) if { some x in input.list; x in [1] }
violation contains "unbraced" if input.two in [2]
violation contains "string first" if { b := "a" in input.missing; b == false }
violation contains "string first, unbraced" if "a" in input.letters
violation contains "string last, unbraced" if not input.missing == "a"
violation contains "raw string first" if { `b` in input.letters; not `b` in input.missing }
"#;
        let p = Program::compile(src, &[], RegoVersion::V1, "violation").unwrap();
        assert_eq!(p.rewrite_note(), None, "the rewrite compiled");
        let mut got: Vec<String> = p
            .eval(
                "violation",
                &json!({"two": 2, "list": [1, 2], "letters": ["a", "b"]}),
                None,
            )
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                "1 is one",
                "defined, false",
                "defined, true",
                "key and value",
                "string first, unbraced",
                "string last, unbraced",
                "unbraced"
            ]
        );
    }

    /// OPA ends a term at the end of its line: a line that starts with `(` is a statement of
    /// its own, not a call of the line before (Gatekeeper's horizontalpodautoscaler).
    #[test]
    fn a_line_that_starts_with_a_parenthesis_is_a_statement_of_its_own() {
        let src = "package p\nviolation[{\"msg\": \"spread\"}] {\n  input.spread\n  (input.max - input.min) >= input.spread\n}\nviolation[{\"msg\": \"call\"}] { x := count(\n  input.list); x > 1 }";
        let p = Program::compile(src, &[], RegoVersion::V0, "violation").unwrap();
        let mut got = p
            .eval(
                "violation",
                &json!({"spread": 2, "max": 5, "min": 1, "list": [1, 2]}),
                None,
            )
            .unwrap();
        got.as_array_mut()
            .unwrap()
            .sort_by_key(|v| v["msg"].to_string());
        assert_eq!(got, json!([{"msg": "call"}, {"msg": "spread"}]));
        assert_eq!(
            p.eval(
                "violation",
                &json!({"spread": 9, "max": 5, "min": 1, "list": []}),
                None
            )
            .unwrap(),
            json!([])
        );
    }

    /// OPA's `sprintf` is Go's `fmt`, which never fails; regorus failed on a verb without an
    /// argument, arguments left over, and flags such as `+`, which ended the rule and lost the
    /// violation (Gatekeeper's horizontalpodautoscaler has a verb too many), and printed
    /// `%-10s` as `10s`. A message only the head reads is formatted so after the evaluation
    /// (`opa::late_calls`), and the template stays on the machine; any other such call runs
    /// Garrison's `sprintf` (on the interpreter); a format of `%v` alone, with as many
    /// arguments, stays with regorus's (on the machine).
    #[test]
    fn sprintf_formats_as_go_does() {
        let src = r#"package p
violation[{"msg": msg}] { msg := sprintf("%v of %v, 100%% of %d", [input.a]) }
violation[{"msg": msg}] { msg := sprintf("%v and %v", [input.a, input.a, input.a]) }
violation[{"msg": msg}] { msg := sprintf("%-4s|%+d|%5.1f|%s|%t", [input.a, input.n, input.f, input.n, true]) }
violation[{"msg": msg}] { args := [input.a]; msg := sprintf("computed %v", args) }
violation[{"msg": msg}] { msg := sprintf(input.format, [input.a]) }"#;
        let want = [
            "\"x\"",
            "computed x",
            "x   |+7|  2.2|%!s(int=7)|%!t(string=true)",
            "x and x%!(EXTRA string=x)",
            "x of %!v(MISSING), 100% of %!d(MISSING)",
        ];
        let input = json!({"a": "x", "n": 7, "f": 2.25, "format": "%q"});
        let p = Program::compile(src, &[], RegoVersion::V0, "violation").unwrap();
        assert!(p.on_machine());
        assert_eq!(messages(&p, &input), want);
        // Each message read again in the body: Garrison's `sprintf`, on the interpreter.
        let read = src.replace("]) }", "]); count(msg) >= 0 }").replace(
            "sprintf(\"computed %v\", args) }",
            "sprintf(\"computed %v\", args); count(msg) >= 0 }",
        );
        assert_eq!(read.matches("count(msg)").count(), 5, "{read}");
        let p = Program::compile(&read, &[], RegoVersion::V0, "violation").unwrap();
        assert!(!p.on_machine());
        assert_eq!(messages(&p, &input), want);
        // Operands of the wrong type make the call undefined, not the evaluation an error.
        let typed = "package p\nviolation[{\"msg\": msg}] { msg := sprintf(\"%d\", \"x\") }\nviolation[{\"msg\": \"after\"}] { true }";
        let p = Program::compile(typed, &[], RegoVersion::V0, "violation").unwrap();
        assert_eq!(messages(&p, &json!({})), ["after"]);
        assert_eq!(messages(&p.clone().interpreted(), &json!({})), ["after"]);
        // `%v` alone, with as many literal arguments: regorus's, on the machine.
        let plain = "package p\nviolation[{\"msg\": msg}] { msg := sprintf(\"%v is %v, 100%%\", [input.a, input.n]) }";
        let p = Program::compile(plain, &[], RegoVersion::V0, "violation").unwrap();
        assert!(p.on_machine());
        assert_eq!(messages(&p, &json!({"a": "x", "n": 7})), ["x is 7, 100%"]);
    }

    /// A message that only the head of a `violation` rule reads is formatted after the
    /// evaluation, with OPA's formatting, on both engines: regorus's `%v` printed an empty set
    /// as `{}` and a large number in full. Results formatted alike are one, as in OPA's set; a
    /// result whose arguments are undefined is none; a message past the output limit fails the
    /// evaluation, as the call does; a message read elsewhere is formatted in the evaluation.
    #[test]
    fn a_message_only_the_head_reads_is_formatted_after_the_evaluation() {
        let src = r#"package p
violation[{"msg": msg, "details": {}}] { msg := sprintf("empty %v", [{x | x := input.none[_]}]) }
violation[{"msg": msg}] { msg := sprintf("big %v", [input.big]) }
violation[{"msg": sprintf("same %v", [x])}] { x := input.same[_] }
violation[{"msg": msg}] { msg := sprintf("gone %v", [input.missing]) }
violation[{"msg": msg}] { x := input.same[_]; msg := sprintf("%v", [x]); x == 1 }"#;
        let input = json!({"big": 1e21, "same": [1, "1"], "none": []});
        let p = Program::compile(src, &[], RegoVersion::V0, "violation").unwrap();
        assert!(p.on_machine());
        assert_eq!(
            p.source.rego.matches(crate::opa::LATE).count(),
            5,
            "{}",
            p.source.rego
        );
        assert_eq!(
            messages(&p, &input),
            ["1", "big 1e+21", "empty set()", "same 1"]
        );
        // v1, with `contains`.
        let v1 = "package p\nviolation contains {\"msg\": msg} if {\n  some x in input.same\n  msg := sprintf(\"v1 %v\", [x])\n}\n";
        let p = Program::compile(v1, &[], RegoVersion::V1, "violation").unwrap();
        assert!(
            p.source.rego.contains(crate::opa::LATE),
            "{}",
            p.source.rego
        );
        assert_eq!(messages(&p, &input), ["v1 1"]);
        // A message read elsewhere, or a rule that reads `violation`, is formatted as before.
        for kept in [
            "package p\nviolation[{\"msg\": msg, \"details\": {\"m\": msg}}] { msg := sprintf(\"%v\", [input.big]) }",
            "package p\nviolation[{\"msg\": msg}] { msg := sprintf(\"%v\", [input.big]) }\nviolation[{\"msg\": \"n\"}] { count(violation) > 5 }",
        ] {
            let p = Program::compile(kept, &[], RegoVersion::V0, "violation").unwrap();
            assert!(
                !p.source.rego.contains(crate::opa::LATE),
                "{}",
                p.source.rego
            );
        }
        // A library's own `violation` keeps its messages: the template reads them as text.
        let lib =
            "package lib.x\nviolation[{\"msg\": msg}] { msg := sprintf(\"bad %v\", [input.name]) }"
                .to_string();
        let main = "package k\nviolation[{\"msg\": m}] { v := data.lib.x.violation[_]; m := concat(\"\", [\"lib: \", v.msg]) }";
        let p = Program::compile(main, &[lib], RegoVersion::V0, "violation").unwrap();
        assert!(
            !p.source.libs[0].contains(crate::opa::LATE),
            "{:?}",
            p.source.libs
        );
        assert_eq!(messages(&p, &json!({"name": "n"})), ["lib: bad n"]);
        // A program whose entry is another rule, which reads `violation` itself.
        let other = "package sigstore\nviolation[{\"msg\": msg}] { input.kind != \"x\"; msg := sprintf(\"unexpected %v\", [input.kind]) }\ndefault isCompliant = false\nisCompliant { not blocked }\nblocked { v := data.sigstore.violation[_]; startswith(v.msg, \"unexpected\") }";
        let p = Program::compile(other, &[], RegoVersion::V0, "isCompliant").unwrap();
        assert!(
            !p.source.rego.contains(crate::opa::LATE),
            "{}",
            p.source.rego
        );
        assert_eq!(
            p.eval("isCompliant", &json!({"kind": "y"}), None).unwrap(),
            json!(false)
        );
        // `=` compares where the name is a rule: `msg = sprintf(...)` holds only where the
        // message is the rule's value.
        let compare = "package p\nmsg := \"forbidden\"\nviolation[{\"msg\": msg}] { x := input.mode; msg = sprintf(\"%v\", [x]) }";
        let p = Program::compile(compare, &[], RegoVersion::V0, "violation").unwrap();
        assert!(
            !p.source.rego.contains(crate::opa::LATE),
            "{}",
            p.source.rego
        );
        assert_eq!(messages(&p, &json!({"mode": "forbidden"})), ["forbidden"]);
        assert!(messages(&p, &json!({"mode": "other"})).is_empty());
        // A line's end between the name and `(` ends the statement in OPA: not rewritten.
        let split = "package p\nviolation[{\"msg\": msg}] {\n  msg := sprintf\n  (\"%v\", [1])\n}";
        if let Ok(p) = Program::compile(split, &[], RegoVersion::V0, "violation") {
            assert!(
                !p.source.rego.contains(crate::opa::LATE),
                "{}",
                p.source.rego
            );
        }
        // A reviewed value shaped like the old marker is only a value: its text is the message.
        let copied = "package p\nviolation[{\"msg\": input.m}] { true }\nviolation[{\"msg\": msg}] { msg := sprintf(\"%v\", [input.n]) }";
        let p = Program::compile(copied, &[], RegoVersion::V0, "violation").unwrap();
        assert!(p.source.rego.contains(crate::opa::LATE));
        let got = p
            .eval(
                "violation",
                &json!({"m": ["__garrison_late", "%v", []], "n": 1}),
                None,
            )
            .unwrap();
        assert_eq!(
            got,
            json!([{"msg": 1.to_string()}, {"msg": ["__garrison_late", "%v", []]}])
        );
        // Past the output limit: the evaluation fails, on both engines.
        let long = "package p\nviolation[{\"msg\": msg}] { msg := sprintf(\"%2000000d\", [1]) }";
        let p = Program::compile(long, &[], RegoVersion::V0, "violation").unwrap();
        assert!(p.source.rego.contains(crate::opa::LATE));
        assert!(p.eval("violation", &json!({}), None).is_err());
        assert!(p.interpreted().eval("violation", &json!({}), None).is_err());
    }

    /// OPA's v0 reads a partial set rule with several bodies as as many rules (Gatekeeper's
    /// noupdateserviceaccount); regorus's parser refuses it.
    #[test]
    fn a_set_rule_with_several_bodies_is_as_many_rules() {
        let src = "package p\n\nviolation[{\"msg\": msg}] {\n  input.a == 1\n  msg := \"first\"\n} {\n  input.b == 2\n  msg := \"second\"\n} {\n  input.c\n  msg := sprintf(\"third %v\", [input.c])\n}\n";
        let p = Program::compile(src, &[], RegoVersion::V0, "violation").unwrap();
        let mut got = p.eval("violation", &json!({"a": 1, "b": 2}), None).unwrap();
        got.as_array_mut()
            .unwrap()
            .sort_by_key(|v| v["msg"].to_string());
        assert_eq!(got, json!([{"msg": "first"}, {"msg": "second"}]));
        assert_eq!(
            p.eval("violation", &json!({"c": 3}), None).unwrap(),
            json!([{"msg": "third 3"}])
        );
        // Another error in the template is still named, at its own line.
        let broken = src.replace("input.c\n", "input.c\n  y == 1\n");
        let e = Program::compile(&broken, &[], RegoVersion::V0, "violation").unwrap_err();
        assert!(matches!(e, CompileError::Invalid { .. }), "{e}");
        assert!(e.to_string().contains(":11:"), "{e}");
    }

    #[test]
    fn opas_deprecated_builtins_work_in_v0_as_gatekeepers_library_calls_them() {
        let src = r#"
package k8sallowedrepos

violation[{"msg": msg}] {
  container := input.review.object.spec.containers[_]
  satisfied := [good | repo = input.parameters.repos[_] ; good = startswith(container.image, repo)]
  not any(satisfied)
  msg := sprintf("container <%v> has an invalid image repo <%v>", [container.name, container.image])
}

violation[{"msg": "every tag numeric"}] {
  tags := [ok | t := input.tags[_]; ok := re_match("^[0-9]+$", t)]
  all(tags)
}
"#;
        let p = Program::compile(src, &[], RegoVersion::V0, "violation").unwrap();
        assert!(p.on_machine());
        let input = |image: &str, tags: Value| {
            json!({"review": {"object": {"spec": {"containers": [{"name": "c", "image": image}]}}},
                "parameters": {"repos": ["good.example/"]}, "tags": tags})
        };
        assert_eq!(
            messages(&p, &input("good.example/a:1", json!(["1", "x"]))),
            Vec::<String>::new()
        );
        assert_eq!(
            messages(&p, &input("bad.example/a:1", json!(["1", "22"]))),
            vec![
                "container <c> has an invalid image repo <bad.example/a:1>".to_string(),
                "every tag numeric".to_string()
            ]
        );
        // `all` of nothing is true, as in OPA.
        assert_eq!(
            messages(&p, &input("good.example/a", json!([]))),
            vec!["every tag numeric".to_string()]
        );
        // Not an array or a set: undefined, as OPA's type error.
        let typed = "package p\nviolation[{\"msg\": \"none\"}] { not any(input.xs) }\nviolation[{\"msg\": \"all\"}] { all(input.xs) }";
        let p = Program::compile(typed, &[], RegoVersion::V0, "violation").unwrap();
        for xs in [json!(null), json!("s"), json!(5), json!({"a": true})] {
            assert_eq!(
                p.eval("violation", &json!({"xs": xs}), None).unwrap(),
                json!([{"msg": "none"}]),
                "{xs}"
            );
        }
        // A library that defines `any` for its package keeps it, and the package's other
        // module that calls it gets no second definition.
        let libs = [
            "package lib.helpers\n  any(x) = true { x == 7 }".to_string(),
            "package lib.helpers\nseven(n) { any(n) }".to_string(),
        ];
        let p = Program::compile(
            "package p\nimport data.lib.helpers\nviolation[{\"msg\": \"seven\"}] { helpers.seven(input.n) }",
            &libs,
            RegoVersion::V0,
            "violation",
        )
        .unwrap();
        assert_eq!(
            p.eval("violation", &json!({"n": 7}), None).unwrap(),
            json!([{"msg": "seven"}])
        );
        // A template that defines its own `any` keeps it.
        let own =
            "package p\nany(x) = true { x == 7 }\nviolation[{\"msg\": \"seven\"}] { any(input.n) }";
        let p = Program::compile(own, &[], RegoVersion::V0, "violation").unwrap();
        assert_eq!(
            p.eval("violation", &json!({"n": 7}), None).unwrap(),
            json!([{"msg": "seven"}])
        );
        // Rego v1 has no such built-ins: nothing is added, and a call fails.
        let v1 = "package p\nviolation contains {\"msg\": \"x\"} if { any(input.xs) }";
        let p = Program::compile(v1, &[], RegoVersion::V1, "violation").unwrap();
        assert!(matches!(
            p.eval("violation", &json!({"xs": [true]}), None),
            Err(EvalError::Failed(_))
        ));
    }

    #[test]
    fn a_rewrite_that_does_not_compile_is_dropped_with_a_note() {
        // The author took the rewrite's own name in the body, so binding it again before the
        // `not` declares it twice.
        let src = "package p\nf(x) { x == 1 }\nviolation[{\"msg\": \"m\"}] { __garrison_not0_0__ := 2; not f(input.a) }";
        let p = Program::compile(src, &[], RegoVersion::V0, "violation").unwrap();
        let note = p.rewrite_note().expect("the rewrite could not compile");
        assert!(note.starts_with("pass 1 of the rewrite"), "{note}");
        assert!(p.on_machine());
        // As regorus reads it: `not f(undefined)` holds.
        assert_eq!(messages(&p, &json!({})), ["m"]);
        let plain = "package p\nf(x) { x == 1 }\nviolation[{\"msg\": \"m\"}] { not f(input.a) }";
        let p = Program::compile(plain, &[], RegoVersion::V0, "violation").unwrap();
        assert_eq!(p.rewrite_note(), None);
        assert!(p.on_machine());
        assert!(messages(&p, &json!({})).is_empty());
    }

    #[test]
    fn what_a_program_depends_on_is_read_conservatively_from_its_source() {
        let src = |rego: &str, libs: &[&str]| Source {
            rego: rego.into(),
            libs: libs.iter().map(|l| l.to_string()).collect(),
            version: RegoVersion::V0,
            rule: "violation".into(),
        };
        for input_only in [
            "import data.lib.helpers\nv { input.review.object.metadata.name }",
            "v { input.review.object.data.key }",
            "v { input.review.object.metadata.labels.metadata_owner }",
            "v { mydata := input.x; datapoint := mydata }",
        ] {
            assert_eq!(
                depends(&src(input_only, &[]), "data.p"),
                Depends::Input,
                "{input_only}"
            );
        }
        for reads in [
            "v { data.inventory.cluster[_] }",
            "import data.inventory\nv { inventory }",
            "v { x := data[\"inventory\"] }",
            // A comment or a string counts: the scan errs towards depending.
            "# data\nv { true }",
            "v { data.lib }",
        ] {
            assert_eq!(
                depends(&src(reads, &[]), "data.p"),
                Depends::InputAndData,
                "{reads}"
            );
        }
        // A library that reads the inventory counts for the template.
        assert_eq!(
            depends(
                &src("v { true }", &["package lib.x\nf { data.inventory }"]),
                "data.p"
            ),
            Depends::InputAndData
        );
        // A template whose package is under the inventory reads it by bare names.
        for package in ["data.inventory", "data.inventory.x"] {
            assert_eq!(
                depends(&src("v { namespace[_] }", &[]), package),
                Depends::InputAndData
            );
        }
        assert_eq!(
            depends(&src("v { true }", &[]), "data.inventoryish"),
            Depends::Input
        );
        for unrepeatable in [
            "v { time.now_ns() > 0 }",
            "v { rand.intn(\"x\", 10) == 1 }",
            "v { uuid.rfc4122(\"x\") }",
            "v { http.send({}) }",
            // Every spelling of a call names its namespace.
            "v { time[\"now_ns\"]() > 0 }",
            "v { x := opa[\"runtime\"](); x }",
            "v { t := time .now_ns(); t }",
        ] {
            assert_eq!(
                depends(&src(unrepeatable, &[]), "data.p"),
                Depends::Unrepeatable,
                "{unrepeatable}"
            );
        }
    }

    /// OPA fails an evaluation where a complete rule or a function gives two values, or an
    /// object two values for one key; regorus's virtual machine would answer undefined, or one
    /// of them, silently. Programs whose rules may conflict run on the interpreter, which fails
    /// as OPA does; rules that cannot (constant values, one computed value given once) stay on
    /// the machine.
    #[test]
    fn rules_that_may_conflict_run_on_the_interpreter_which_fails_them_as_opa_does() {
        let conflicting = [
            "v := x { x := input.xs[_] }\nviolation[{\"msg\": \"v\"}] { v > 5 }",
            "v := 1 { input.a }\nv := 2 { input.b }\nviolation[{\"msg\": \"v\"}] { v == 3 }",
            "f(a) := a.x { true }\nf(a) := a.y { true }\nviolation[{\"msg\": \"f\"}] { f(input) == 9 }",
            "o[k] := v { some k, v in input.m }\nviolation[{\"msg\": \"o\"}] { o.a == 9 }",
        ];
        for body in conflicting {
            let src = format!("package p\nimport future.keywords.in\n{body}");
            let p = Program::compile(&src, &[], RegoVersion::V0, "violation").unwrap();
            assert!(!p.on_machine(), "{body}");
        }
        let input = json!({"xs": [1, 2], "a": true, "b": true, "x": 1, "y": 2});
        let p = Program::compile(
            &format!("package p\n{}", conflicting[0]),
            &[],
            RegoVersion::V0,
            "violation",
        )
        .unwrap();
        assert!(matches!(
            p.eval("violation", &input, None),
            Err(EvalError::Failed(_))
        ));
        let safe = [
            "ok { input.a }\nok { input.b }\nviolation[{\"msg\": \"ok\"}] { ok }",
            "has(o, k) { o[k] }\nhas(o, k) { o[k] == false }\nviolation[{\"msg\": \"has\"}] { has(input, \"a\") }",
            "msg(p) := m { m := p.message }\nviolation[{\"msg\": msg(input)}] { input.a }",
        ];
        for body in safe {
            let src = format!("package p\n{body}");
            let p = Program::compile(&src, &[], RegoVersion::V0, "violation").unwrap();
            assert!(p.on_machine(), "{body}");
            let input = json!({"a": true, "b": true, "message": "ok"});
            assert!(!messages(&p, &input).is_empty(), "{body}");
        }
    }

    /// The guards the virtual machine's source gets stay out of strings, and a rule body
    /// written without braces gets them inside braces of its own.
    #[test]
    fn guards_keep_strings_and_unbraced_bodies_whole() {
        let src = r#"package p
import rego.v1

label := "a; b"
undefined_head if x := input.missing
violation contains {"msg": "no label"} if not undefined_head
violation contains {"msg": label} if input.yes
violation contains {"msg": m} if {
  m := `raw "text"`
  input.yes
}
"#;
        let p = Program::compile(src, &[], RegoVersion::V1, "violation").unwrap();
        assert!(p.on_machine());
        assert_eq!(
            messages(&p, &json!({"yes": true})),
            ["a; b", "no label", "raw \"text\""]
        );
    }

    /// Undefined values end a body, as in OPA, wherever they appear: in calls of functions and
    /// built-ins, composite values, comparisons, arithmetic, keys, and assignments of each; on
    /// the virtual machine as on the interpreter.
    #[test]
    fn undefined_values_end_bodies_on_both_engines() {
        let src = r#"
package p

import future.keywords.every
import future.keywords.in

f(x) { true }
g(x) := y { y := x }

violation[{"msg": "function of undefined"}] { f(input.missing) }
violation[{"msg": "function value of undefined"}] { g(input.missing) == g(input.missing) }
violation[{"msg": "array with undefined"}] { x := [input.missing]; count(x) >= 0 }
violation[{"msg": "object with undefined"}] { x := {"a": input.missing}; x == x }
violation[{"msg": "undefined key"}] { x := {input.missing: 1}; x == x }
violation[{"msg": "set with undefined"}] { x := {input.missing}; x == x }
violation[{"msg": "sprintf of undefined"}] { msg := sprintf("%v", [input.missing]); msg != "" }
violation[{"msg": "builtin of undefined"}] { x := lower(input.missing); x == x }
violation[{"msg": "comparison"}] { input.missing == input.missing }
violation[{"msg": "inequality"}] { input.missing != 1 }
violation[{"msg": "destructuring"}] { [a, b] := input.missing; a == b }
violation[{"msg": "unification"}] { x = input.missing; x == x }
violation[{"msg": "nested ref"}] { x := input.obj[input.missing]; x == x }
violation[{"msg": "defined"}] { x := [input.n]; count(x) == 1 }
violation[{"msg": msg}] { msg := input.missing }
violation[{"msg": "else"}] { h == 1 }
h := 1 { input.missing } else := 2 { true }
violation[{"msg": "comprehension"}] { x := [y | y := input.missing]; count(x) == 0 }
violation[{"msg": "some"}] { some y in input.missing; y == y }
violation[{"msg": "filtered"}] { x := [y | y := input.n; y > 5]; count(x) == 0 }
violation[{"msg": "fails after"}] { input.n > 5 }
violation[{"msg": "string first"}] { x := [s | "admin" == input.role; s := input.list[_]]; count(x) > 0 }
k(_) { true }
violation[{"msg": "argument written _"}] { k(input.missing) }
violation[{"msg": "term of a comprehension"}] { x := [c.cpu | c := input.cs[_]]; count(x) == 2 }
"#;
        let p = Program::compile(src, &[], RegoVersion::V0, "violation").unwrap();
        let input = json!({"n": 1, "obj": {"a": 1}, "list": [1], "cs": [{"cpu": 1}, {}],
            "role": "admin"});
        assert!(p.on_machine());
        assert_eq!(
            messages(&p, &input),
            ["comprehension", "defined", "filtered", "string first"]
        );
    }

    /// Forms the virtual machine answers otherwise than OPA, which no guard settles, keep a
    /// program on the interpreter: the `in` operator, object comprehensions, an `else` after a
    /// body that iterates, a head that iterates, partial objects.
    #[test]
    fn forms_the_machine_answers_otherwise_stay_on_the_interpreter() {
        let forms: [(&str, &[&str]); 12] = [
            // A term that iterates would be evaluated again by its guard, with loops of its own.
            (
                r#"violation[{"msg": "ports"}] { p := [c.ports[_] | c := input.cs[_]]; count(p) == 2 }"#,
                &["ports"],
            ),
            // An `else` after a body whose value is computed: the machine skips the `else` when
            // the value is undefined. Kept off it; the interpreter's answer stands.
            (
                "limit(p) = p.max { true } else = 3 { true }\nviolation[{\"msg\": \"limit\"}] { 5 > limit(input) }",
                &[],
            ),
            // Arithmetic on a string: OPA's expression is undefined; the machine drops the body
            // with every turn of its loop, the interpreter fails the evaluation (closed).
            (
                r#"violation[{"msg": "big"}] { c := input.cs[_]; c.v + 1 > 1 }"#,
                &["evaluation failed"],
            ),
            // The machine passes at most 8 arguments to a function.
            (
                "f(a, b, c, d, e, g, h, i, j) { true }\nviolation[{\"msg\": \"nine\"}] { f(1, 2, 3, 4, 5, 6, 7, 8, 9) }",
                &["nine"],
            ),
            // The machine checks nothing of an argument written `{}`.
            (
                "f({}) { true }\nviolation[{\"msg\": \"empty\"}] { f(input.missing) }",
                &[],
            ),
            // The machine ignores the key: `"b", 1 in {"a": 1}` holds there.
            (r#"violation[{"msg": "in"}] { "b", 1 in {"a": 1} }"#, &[]),
            // The machine keeps one value of a duplicate key; OPA fails.
            (
                r#"violation[{"msg": "object"}] { m := {c.n: c.v | c := input.cs[_]}; m.a == 2 }"#,
                &["evaluation failed"],
            ),
            // After a body that iterates and finds nothing, the machine skips the `else`.
            (
                "p(c) { some x in c.caps; x == \"ADMIN\" } else { c.priv == true }\nviolation[{\"msg\": \"else\"}] { p(input.c) }",
                &["else"],
            ),
            // A head that iterates gives two values: OPA fails; the machine keeps one.
            (
                "img := input.cs[_].v\nviolation[{\"msg\": \"head\"}] { img == 1 }",
                &["evaluation failed"],
            ),
            (
                "o[k] := v { some c in input.cs; k := c.n; v := c.v }\nviolation[{\"msg\": \"object rule\"}] { o.a == 2 }",
                &["evaluation failed"],
            ),
            // A rule written as its name alone is `true`; the machine reads it as undefined.
            // Found by the fuzz target `rego_source`.
            ("q\nviolation[{\"msg\": \"bare\"}] { q }", &["bare"]),
            // An `every` whose body fails for an element holds on the machine (fails open):
            // here `input.c["a"]` is undefined, so `named` is, and `not named` holds.
            (
                "named { every c in input.cs { input.c[c.n] } }\nviolation[{\"msg\": \"every\"}] { not named }",
                &["every"],
            ),
        ];
        let input = json!({"cs": [{"n": "a", "v": "x", "ports": [1]}, {"n": "a", "v": 2, "ports": [2]}],
            "c": {"caps": [], "priv": true}});
        for (body, want) in forms {
            let src = format!(
                "package p\nimport future.keywords.every\nimport future.keywords.in\n{body}"
            );
            let p = Program::compile(&src, &[], RegoVersion::V0, "violation").unwrap();
            assert!(!p.on_machine(), "{body}");
            let got: Vec<String> = match p.eval("violation", &input, None) {
                Ok(v) => v
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v["msg"].as_str().unwrap().to_string())
                    .collect(),
                Err(EvalError::Failed(_)) => vec!["evaluation failed".into()],
                Err(e) => panic!("{body}: {e}"),
            };
            assert_eq!(got, want, "{body}");
        }
    }

    /// A pass of a set rule's body whose key is undefined gives no element, as in OPA; on
    /// regorus's interpreter it dropped the elements given before it (or failed), so one
    /// container without `extra` hid the others' violations.
    #[test]
    fn an_undefined_key_drops_only_its_own_element_on_both_engines() {
        let src = "package k\nviolation[{\"msg\": msg, \"details\": {\"x\": c.extra}}] {\n  c := input.cs[_]\n  msg := sprintf(\"container %v\", [c.name])\n}\n";
        let p = Program::compile(src, &[], RegoVersion::V0, "violation").unwrap();
        assert!(p.on_machine());
        for cs in [
            json!([{"name": "a", "extra": 1}, {"name": "b"}]),
            json!([{"name": "b"}, {"name": "a", "extra": 1}]),
        ] {
            let input = json!({"cs": cs});
            for engine in [p.clone(), p.clone().interpreted()] {
                assert_eq!(
                    engine.eval("violation", &input, None).unwrap(),
                    json!([{"details": {"x": 1}, "msg": "container a"}]),
                    "{input}"
                );
            }
        }
    }

    /// Results are read into JSON directly, exactly as regorus's serialization writes them.
    #[test]
    fn results_read_as_regorus_serializes_them() {
        let src = r#"package p
r := {"set": {3, 1, "b", {"z": 1}}, 3: 2.5, "big": 123456789012345678901234567890, "float": 2.0,
  "neg": -7, "tiny": 0.000001, "nested": [{"y": [true, null]}, "s"], [1]: "array key",
  "huge": 1e300, "third": 1 / 3, "z": "last", "a": "first", "zero": 0, "minus zero": -0.0,
  "u": 18446744073709551615, "f": 1e20, "2^60": 1152921504606846976.0,
  "2^63": 9223372036854775808.0, "2^64": 18446744073709551616.0, "i2^60": 1152921504606846976}
"#;
        let p = Program::compile(src, &[], RegoVersion::V0, "r").unwrap();
        let v = p
            .eval_value("r", regorus::Value::new_object(), &Data::empty())
            .unwrap();
        let direct = json_of(&v).unwrap();
        assert_eq!(direct, serde_json::to_value(&v).unwrap());
        // The same text too: object order and number forms.
        assert_eq!(
            direct.to_string(),
            serde_json::to_value(&v).unwrap().to_string()
        );
        assert_eq!(
            json_of(&regorus::Value::Undefined).unwrap(),
            json!("<undefined>")
        );
    }

    /// JSON is read into the engine's values directly, giving what regorus's own conversion
    /// gives: the same value, compared as values and as the text they serialize to.
    #[test]
    fn json_read_as_regorus_reads_it() {
        use serde::Deserialize;
        let docs = [
            json!(null),
            json!({}),
            json!([]),
            json!({"z": 1, "a": [1, -2, 2.5, 0.1, -0.0, 1e300, 18446744073709551615u64,
                -9223372036854775808i64, 2.0, 1e-7], "m": {"": "", "é": "ü\u{0000}"},
                "b": [true, false, null, [], {}], "n": {"n": {"n": [{"n": "deep"}]}}}),
            serde_json::from_str(r#"{"big": 123456789012345678901234567890, "f": 1.0e20}"#)
                .unwrap(),
        ];
        for doc in docs {
            let ours = from_json(&doc).unwrap();
            let theirs = regorus::Value::deserialize(&doc).unwrap();
            assert_eq!(ours, theirs, "{doc}");
            assert_eq!(
                serde_json::to_string(&ours).unwrap(),
                serde_json::to_string(&theirs).unwrap(),
                "{doc}"
            );
        }
        // serde_json's private number marker is an object like any other here, as in OPA;
        // regorus's conversion reads it as the number it names.
        let marker = json!({"$serde_json::private::Number": "1"});
        assert_eq!(
            serde_json::to_value(from_json(&marker).unwrap()).unwrap(),
            marker
        );
        assert_eq!(
            regorus::Value::deserialize(&marker).unwrap(),
            regorus::Value::from(1u64)
        );
    }

    #[test]
    fn programs_are_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Program>();
        // Four threads at once, each with its own input, get their own answers; the program
        // compiled a lane for each concurrent evaluation, and keeps them.
        let p = Program::compile(V0, &[], RegoVersion::V0, "violation").unwrap();
        let barrier = std::sync::Barrier::new(4);
        std::thread::scope(|s| {
            for i in 0..4 {
                let (p, barrier) = (p.clone(), &barrier);
                s.spawn(move || {
                    let mut held = p.hold().unwrap();
                    barrier.wait();
                    for _ in 0..50 {
                        let input = json!({"review": {"object": {"metadata": {"labels": {}}}},
                            "parameters": {"labels": [format!("l{i}")]}});
                        let v = held
                            .eval_value("violation", regorus::Value::from(input), &Data::empty())
                            .unwrap();
                        let v = to_json(&v).unwrap();
                        assert_eq!(v[0]["details"]["missing"], json!([format!("l{i}")]));
                    }
                });
            }
        });
        assert_eq!(p.lanes.lock().unwrap().len(), 4);
    }

    #[test]
    fn a_failed_evaluation_leaves_its_lane_usable() {
        let src = "package p\nviolation[{\"msg\": \"x\"}] { r := numbers.range(1, input.n); r[i] < r[j]; r[j] < r[k]; r[k] < 0 }\nviolation[{\"msg\": \"small\"}] { input.n < 10 }";
        let p = Program::compile(src, &[], RegoVersion::V0, "violation")
            .unwrap()
            .with_time_limit(Duration::from_millis(50));
        assert!(p.on_machine());
        // On the machine, and on the interpreter: what the lane keeps for the next evaluation.
        let machine = |l: &Lane| l.vm.is_some();
        let engine = |l: &Lane| l.work.is_some();
        let interpreted = p.clone().interpreted();
        for (p, kept) in [
            (&p, &machine as &dyn Fn(&Lane) -> bool),
            (&interpreted, &engine),
        ] {
            let mut held = p.hold().unwrap();
            let data = Data::empty();
            for _ in 0..2 {
                assert_eq!(
                    held.eval_value("violation", regorus::Value::from(json!({"n": 2000})), &data),
                    Err(EvalError::Timeout(Duration::from_millis(50)))
                );
                // What failed is dropped; the next evaluation makes another.
                assert!(!kept(held.lane.as_ref().unwrap()));
                let v = held
                    .eval_value("violation", regorus::Value::from(json!({"n": 3})), &data)
                    .unwrap();
                assert_eq!(to_json(&v).unwrap(), json!([{"msg": "small"}]));
                assert!(kept(held.lane.as_ref().unwrap()));
            }
            drop(held);
            assert_eq!(p.lanes.lock().unwrap().len(), 1);
        }
    }
}
