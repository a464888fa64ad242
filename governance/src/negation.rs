//! What OPA evaluates before a `not`, made explicit for regorus.
//!
//! OPA's compiler binds the dynamic terms of every expression to variables of their own before
//! the expression (its stages RewriteExprTerms and RewriteDynamicTerms, after RewriteEquals has
//! turned `==` into `=`). In a negated expression those bindings stay outside the negation:
//! `not f(input.x)` is evaluated as `__local0__ = input.x; not f(__local0__)`, so when
//! `input.x` is undefined the rule body fails, where a plain reading of `not` (regorus's) makes
//! it succeed. Gatekeeper's library depends on this, e.g. `not accept(rule, value,
//! params.ranges)` with no ranges given must not report a violation.
//!
//! This module rewrites the source of each module the same way, for negated expressions only
//! (elsewhere binding first changes nothing). Which terms are bound follows OPA:
//!
//! - a call, a comparison other than `==` (`!=`, `<`, `<=`, `>`, `>=`), arithmetic, set
//!   operations and `in` bind every argument that is a reference, a call or a comprehension,
//!   and look inside arrays, objects and sets for them;
//! - `==` and `=` (unification) and a lone reference bind only a reference's dynamic keys
//!   (`obj[input.k]` binds `input.k`), not the reference itself: `not input.x == 3` holds
//!   when `input.x` is undefined, as in OPA.
//!
//! The rewrite inserts `__garrison_not<n>__ := (<term>); ` before the `not`, on the same line,
//! so that line numbers in messages stay those of the author's source. A negation carrying
//! `with` modifiers is left as written.

use serde_json::Value;

/// A module's source rewritten, or `None` when nothing in it needed binding. `ast` is the
/// module's entry of regorus's AST (`Engine::get_ast_as_json`), `source` the text its spans
/// index.
pub(crate) fn rewrite(ast: &Value, source: &str) -> Option<String> {
    let mut found = vec![];
    walk(ast, source, &mut found);
    if found.is_empty() {
        return None;
    }
    found.sort_by_key(|n| n.start);
    let mut out = String::with_capacity(source.len() + found.len() * 48);
    let mut at = 0;
    let mut next = 0;
    for n in found {
        // Negations do not nest inside one another's text except through comprehensions,
        // whose bodies are rewritten as bodies of their own: a negation inside an earlier
        // one's span is left alone.
        if n.start < at {
            continue;
        }
        // Spans that do not fall on the text's characters leave the module as written.
        out.push_str(source.get(at..n.start)?);
        let mut prefix = String::new();
        let mut literal = String::new();
        let mut pos = n.start;
        for (s, e) in &n.bind {
            let name = format!("__garrison_not{next}__");
            next += 1;
            prefix.push_str(&format!("{name} := ({}); ", source.get(*s..*e)?));
            literal.push_str(source.get(pos..*s)?);
            literal.push_str(&name);
            pos = *e;
        }
        literal.push_str(source.get(pos..n.end)?);
        if n.unbraced {
            out.push_str(&format!("{{ {prefix}{literal} }}"));
        } else {
            out.push_str(&prefix);
            out.push_str(&literal);
        }
        at = n.end;
    }
    out.push_str(source.get(at..)?);
    Some(out)
}

/// A negated literal whose terms need binding first.
struct Negation {
    start: usize,
    end: usize,
    /// Byte ranges of the terms to bind, in order, disjoint.
    bind: Vec<(usize, usize)>,
    /// The literal stands alone after `if`, without braces: the rewrite adds them.
    unbraced: bool,
}

fn span(v: &Value) -> Option<(usize, usize)> {
    let s = v.get("span")?;
    Some((
        usize::try_from(s.get("start")?.as_u64()?).ok()?,
        usize::try_from(s.get("end")?.as_u64()?).ok()?,
    ))
}

/// Every statement of the AST, depth first: negated literals are collected.
fn walk(v: &Value, source: &str, found: &mut Vec<Negation>) {
    match v {
        Value::Object(m) => {
            if let Some(stmt) = m.get("literal") {
                let plain = m
                    .get("with_mods")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty);
                if let (Some(not), true) = (stmt.get("NotExpr"), plain) {
                    negation(not, source, found);
                }
            }
            for x in m.values() {
                walk(x, source, found);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| walk(x, source, found)),
        _ => {}
    }
}

fn negation(not: &Value, source: &str, found: &mut Vec<Negation>) {
    let (Some((start, end)), Some(expr)) = (span(not), not.get("expr")) else {
        return;
    };
    let mut bind = vec![];
    expression(expr, &mut bind);
    bind.sort_unstable();
    let inside = bind.iter().all(|(s, e)| start <= *s && s <= e && *e <= end);
    let disjoint = bind.windows(2).all(|w| w[0].1 <= w[1].0);
    let Some(before) = source
        .get(..start)
        .filter(|_| inside && disjoint && !bind.is_empty())
    else {
        return;
    };
    let before = before.trim_end();
    let unbraced = before.ends_with("if")
        && !before[..before.len() - 2]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
    found.push(Negation {
        start,
        end,
        bind,
        unbraced,
    });
}

/// The one-key object `{"Kind": {...}}` a node of the AST is.
fn node(v: &Value) -> Option<(&str, &Value)> {
    let m = v.as_object()?;
    if m.len() != 1 {
        return None;
    }
    m.iter().next().map(|(k, v)| (k.as_str(), v))
}

/// The negated expression itself: what OPA binds before it.
fn expression(expr: &Value, bind: &mut Vec<(usize, usize)>) {
    let Some((kind, body)) = node(expr) else {
        return;
    };
    match kind {
        "Call" => {
            for p in body["params"].as_array().into_iter().flatten() {
                argument(p, bind);
            }
        }
        // `==` becomes unification in OPA, and unification binds only dynamic keys.
        "BoolExpr" if body["op"] == "Eq" => {
            in_term(&body["lhs"], bind);
            in_term(&body["rhs"], bind);
        }
        "AssignExpr" if body["op"] == "Eq" => {
            in_term(&body["lhs"], bind);
            in_term(&body["rhs"], bind);
        }
        "BoolExpr" | "ArithExpr" | "BinExpr" => {
            argument(&body["lhs"], bind);
            argument(&body["rhs"], bind);
        }
        "Membership" => {
            if !body["key"].is_null() {
                argument(&body["key"], bind);
            }
            argument(&body["value"], bind);
            argument(&body["collection"], bind);
        }
        _ => in_term(expr, bind),
    }
}

/// A term that OPA binds whole when it needs evaluating (its `rewriteDynamicsOne`, with the
/// nested calls that RewriteExprTerms binds before).
fn argument(term: &Value, bind: &mut Vec<(usize, usize)>) {
    let Some((kind, body)) = node(term) else {
        return;
    };
    match kind {
        "RefDot" | "RefBrack" | "Call" | "ArithExpr" | "BinExpr" | "BoolExpr" | "Membership"
        | "UnaryExpr" | "ArrayCompr" | "SetCompr" | "ObjectCompr" => {
            if let Some(s) = span(body) {
                bind.push(s);
            }
        }
        "Array" | "Set" => {
            for x in body["items"].as_array().into_iter().flatten() {
                argument(x, bind);
            }
        }
        "Object" => {
            for field in body["fields"].as_array().into_iter().flatten() {
                // [span, key, value]
                if let Some(f) = field.as_array() {
                    f.iter().skip(1).for_each(|x| argument(x, bind));
                }
            }
        }
        _ => {}
    }
}

/// A term whose reference stays in place, its dynamic keys bound (OPA's
/// `rewriteDynamicsInTerm`): a reference's bracketed keys, a reference's head when it is not a
/// variable; a comprehension is left (its body is a body of its own); anything else is bound
/// as an argument is.
fn in_term(term: &Value, bind: &mut Vec<(usize, usize)>) {
    let Some((kind, body)) = node(term) else {
        return;
    };
    match kind {
        "RefDot" | "RefBrack" => {
            let mut at = (kind, body);
            loop {
                let (k, b) = at;
                if k == "RefBrack" {
                    argument(&b["index"], bind);
                }
                match node(&b["refr"]) {
                    Some(next @ ("RefDot" | "RefBrack", _)) => at = next,
                    Some(_) => {
                        argument(&b["refr"], bind);
                        break;
                    }
                    None => break,
                }
            }
        }
        "ArrayCompr" | "SetCompr" | "ObjectCompr" => {}
        _ => argument(term, bind),
    }
}
