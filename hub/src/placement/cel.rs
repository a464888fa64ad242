//! CEL cluster selectors, as upstream's placement evaluates them: each expression sees the
//! ManagedCluster as `managedCluster` (its JSON form, so `managedCluster.metadata.labels["x"]`,
//! `managedCluster.status.version.kubernetes`), may call `managedCluster.scores("<resource>")` for
//! the AddOnPlacementScore of that name in the cluster's namespace (a list of `{name, value}`),
//! and selects the cluster only when it yields `true`. An evaluation error selects nothing.
//!
//! Compilation catches what the parser and a reference check can: syntax errors and references
//! to any variable but `managedCluster`, reported like upstream's `compilation failed: ...`.

use std::collections::HashMap;
use std::sync::Arc;

use cel::extractors::This;
use cel::objects::{Key, Map};
use cel::{Context, ExecutionError, Program, Value};
use garrison_api::ManagedCluster;

use super::schedule::ScoreSource;

/// The variable an expression sees the cluster as.
pub const VARIABLE: &str = "managedCluster";

/// Compiled expressions of one cluster selector.
pub struct Expressions {
    programs: Vec<Program>,
}

fn macro_binding() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(
            r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,",
        )
        .expect("a valid pattern")
    })
}

/// Compiles `sources`, failing on the first that does not compile.
pub fn compile(sources: &[String]) -> Result<Expressions, String> {
    let mut programs = Vec::with_capacity(sources.len());
    for src in sources {
        let program = Program::compile(src).map_err(|e| {
            let detail = e.to_string().replace('\n', " ");
            format!("compilation failed: ERROR: <input>: {}", detail.trim())
        })?;
        // Names bound by macros (`list.all(x, ...)`) are the expression's own.
        let bound: Vec<&str> = macro_binding()
            .captures_iter(src)
            .filter_map(|c| c.get(1).map(|m| m.as_str()))
            .collect();
        if let Some(other) = program
            .references()
            .variables()
            .into_iter()
            .find(|v| *v != VARIABLE && !bound.contains(v))
        {
            return Err(format!(
                "compilation failed: ERROR: <input>: undeclared reference to '{other}' (in container '')"
            ));
        }
        programs.push(program);
    }
    Ok(Expressions { programs })
}

/// The evaluation environment of one scheduling pass: the standard library plus `scores()`.
pub struct Env {
    root: Context<'static, 'static>,
}

fn str_key(s: &str) -> Key {
    Key::String(Arc::new(s.to_string()))
}

fn cluster_name(this: &Value) -> Option<String> {
    let Value::Map(m) = this else { return None };
    let Value::Map(meta) = m.map.get(&str_key("metadata"))? else {
        return None;
    };
    match meta.map.get(&str_key("name"))? {
        Value::String(s) => Some(s.to_string()),
        _ => None,
    }
}

impl Env {
    /// An environment whose `scores()` reads from `scores`.
    pub fn new(scores: Arc<dyn ScoreSource>) -> Self {
        let mut root = Context::default();
        root.add_function(
            "scores",
            move |This(this): This<Value>, resource: Arc<String>| -> Result<Value, ExecutionError> {
                let cluster = cluster_name(&this).ok_or_else(|| {
                    ExecutionError::function_error("scores", "failed to get cluster name")
                })?;
                let score = scores.score(&cluster, &resource).ok_or_else(|| {
                    ExecutionError::function_error(
                        "scores",
                        format!(
                            "failed to get score: addonplacementscores.cluster.open-cluster-management.io \"{resource}\" not found"
                        ),
                    )
                })?;
                let items: Vec<Value> = score
                    .status
                    .iter()
                    .flat_map(|s| s.scores.iter())
                    .map(|item| {
                        let mut m: HashMap<Key, Value> = HashMap::new();
                        m.insert(str_key("name"), Value::String(Arc::new(item.name.clone())));
                        m.insert(str_key("value"), Value::Int(i64::from(item.value)));
                        Value::Map(Map { map: Arc::new(m) })
                    })
                    .collect();
                Ok(Value::List(Arc::new(items)))
            },
        )
        .expect("scores is not a standard CEL function");
        Env { root }
    }

    /// The cluster in the form expressions see it.
    pub fn cluster_value(cluster: &ManagedCluster) -> Option<Value> {
        cel::to_value(cluster).ok()
    }

    /// Whether every expression yields `true` for `cluster` (given as [`Env::cluster_value`]).
    pub fn matches(&self, exprs: &Expressions, cluster: &Value) -> bool {
        if exprs.programs.is_empty() {
            return true;
        }
        let mut ctx = self.root.new_inner_scope();
        ctx.add_variable_from_value(VARIABLE, cluster.clone());
        exprs.programs.iter().all(|p| match p.execute(&ctx) {
            Ok(Value::Bool(b)) => b,
            Ok(other) => {
                tracing::debug!(result = ?other, "CEL selector did not yield a bool");
                false
            }
            Err(e) => {
                tracing::debug!(error = %e, "CEL selector failed");
                false
            }
        })
    }
}
