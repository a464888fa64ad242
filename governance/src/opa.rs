//! Where regorus reads or evaluates Rego otherwise than OPA, each module's source is rewritten
//! to OPA's meaning before it is compiled. Five differences are settled here, a sixth is
//! refused as OPA refuses it (a `_` under `not`, `unsafe_var`), and, for
//! regorus's virtual machine only, the source it runs is guarded (`guard_assignments`) or
//! refused (`may_conflict`, `unguarded_forms`) where the machine differs from its interpreter.
//!
//! **What OPA evaluates before a `not`.** OPA's compiler binds the dynamic terms of every
//! expression to variables of their own before the expression (its stages RewriteExprTerms and
//! RewriteDynamicTerms, after RewriteEquals has turned `==` into `=`). In a negated expression
//! those bindings stay outside the negation: `not f(input.x)` is evaluated as
//! `__local0__ = input.x; not f(__local0__)`, so when `input.x` is undefined the rule body
//! fails, where a plain reading of `not` (regorus's) makes it succeed. Gatekeeper's library
//! depends on this, e.g. `not accept(rule, value, params.ranges)` with no ranges given must not
//! report a violation. Which terms are bound follows OPA:
//!
//! - a call, a comparison other than `==` (`!=`, `<`, `<=`, `>`, `>=`), arithmetic, set
//!   operations and `in` bind every argument that is a reference (a bare rule or import name
//!   included), a call or a comprehension, and look inside arrays, objects and sets for them;
//! - `==` and `=` (unification) and a lone reference bind only a reference's dynamic keys
//!   (`obj[input.k]` binds `input.k`), not the reference itself: `not input.x == 3` holds
//!   when `input.x` is undefined, as in OPA.
//!
//! The rewrite inserts `__garrison_not<pass>_<n>__ := (<term>); ` before the `not`, on the same
//! line, so that line numbers in messages stay those of the author's source. A negation
//! carrying `with` modifiers is left as written (regorus's reading reports more, not less).
//!
//! **The `in` operator.** OPA calls `internal.member_2` for `x in xs`, and a call with an
//! undefined argument is undefined; regorus answers `false`, so `b := input.missing in xs`
//! went on with `false`. A statement's `in` operands are bound before it as a negation's are
//! (`membership`), so that an undefined one ends the body.
//!
//! **Where a statement ends.** OPA ends a term at the end of its line, so a line that starts
//! with `(` begins a new statement, where regorus reads it as a call of the term before
//! (`input.parameters.spread` then `(a - b) >= c`). A `;` is put after such a function.
//!
//! **Partial set rules with several bodies.** OPA's v0 reads `p[x] { a } { b }` as two rules;
//! regorus's parser refuses a second body of a set rule. The head is written again before each
//! further body, on the same line (`split_set_rule_bodies`).
//!
//! **`sprintf`.** OPA formats with Go's `fmt`, which never fails: `%!v(MISSING)` for a verb
//! without an argument, `%!(EXTRA string=a)` for arguments left over, `%!d(string=a)` for a
//! verb that does not fit, and every flag, width and precision. regorus fails on many of these,
//! which ends the rule, so the violation is lost, and misreads flags. A call whose value only
//! a `violation` result's message takes is left to be formatted after the evaluation
//! (`late_calls`); other calls that regorus would not format as Go does call Garrison's
//! `sprintf` (`go_formatted`, `gofmt`).

use std::collections::HashSet;

use serde_json::Value;

/// The names a bare variable may stand for in a module besides local variables: the rules of
/// its package (`names` of its package's modules) and its imports. OPA resolves these to
/// references, which it binds like any other.
fn globals(ast: &Value, source: &str, package_rules: &HashSet<String>) -> HashSet<String> {
    let mut names = package_rules.clone();
    for import in ast["imports"].as_array().into_iter().flatten() {
        names.extend(import_name(import, source));
    }
    names
}

/// The name an import gives: its alias, else the last term of its path, a field
/// (`import data.lib.helpers`) or a string (`import data.lib["helpers"]`); `None` for a path
/// read otherwise.
fn import_name(import: &Value, source: &str) -> Option<String> {
    if let Some((s, e)) = span_of(&import["as"]) {
        return source.get(s..e).map(str::to_string);
    }
    match node(&import["refr"])? {
        ("RefDot", r) => r["field"][1].as_str().map(str::to_string),
        ("RefBrack", r) => match node(&r["index"])? {
            ("String", x) => x["value"].as_str().map(str::to_string),
            _ => None,
        },
        _ => None,
    }
}

/// A module's package, as written after `package`, and the names of the rules it defines.
pub(crate) fn rules(ast: &Value, source: &str) -> (String, HashSet<String>) {
    let package = span(
        &ast["package"]["refr"]
            .as_object()
            .and_then(|m| m.values().next())
            .cloned()
            .unwrap_or_default(),
    )
    .and_then(|(s, e)| source.get(s..e))
    .unwrap_or_default()
    .to_string();
    let mut names = HashSet::new();
    for rule in ast["rules"].as_array().into_iter().flatten() {
        let refr = match node(rule) {
            Some(("Spec", r)) => node(&r["head"]).map(|(_, h)| &h["refr"]),
            Some(("Default", r)) => Some(&r["refr"]),
            _ => None,
        };
        // The rule's name is the root of its head's reference.
        names.extend(refr.and_then(head_ref).map(|(_, name)| name.to_string()));
    }
    (package, names)
}

/// The number of terms of a rule head's reference (`p` 1, `p[x]` and `p.a` 2, `p[x].a` 3) and
/// its root, the rule's name.
fn head_ref(refr: &Value) -> Option<(usize, &str)> {
    let mut terms = 1;
    let mut at = refr;
    loop {
        match node(at)? {
            ("Var", body) => return Some((terms, body["value"].as_str()?)),
            ("RefDot" | "RefBrack", body) => {
                terms += 1;
                at = &body["refr"];
            }
            _ => return None,
        }
    }
}

/// Where a Gatekeeper template's main module defines `violation` so that Gatekeeper refuses
/// it: the line and column of the head to blame.
///
/// Gatekeeper looks for a rule whose OPA `Head.Name` is `violation`, and refuses the template
/// otherwise ("missing required rules: [violation]"). OPA names a rule whose head is the name
/// alone (`violation`, `violation contains x`, and the Rego v0 `violation[x] { ... }`, a set
/// rule), or a reference of two terms with a value (`violation[x] = v`) or, without `if`, a
/// Rego v0 rule. It gives no name to a longer reference, nor to a reference of two terms
/// without a value after `if` (`violation[{"msg": msg}] if { ... }` or `violation.a if`, which
/// it reads as a rule of one value, `true`, keyed by the reference) nor with `contains`
/// (`violation[k] contains x`). regorus's syntax tree gives a head without a value as
/// `assign: null`, and a set rule's reference without its key. A definition without a name
/// beside a set rule of the same name is also refused: OPA fails the mix of a rule of one
/// value and a rule of many.
pub(crate) fn unnamed_violation(ast: &Value) -> Option<(u64, u64)> {
    let place = |head: &Value| {
        let span = &head["span"];
        (
            span["line"].as_u64().unwrap_or(0),
            span["col"].as_u64().unwrap_or(0),
        )
    };
    // Each definition of `violation`: whether OPA names it, whether it is a set rule, and
    // where its head is.
    let mut defs = vec![];
    for r in ast["rules"].as_array().into_iter().flatten() {
        let (kind, head) = match node(r) {
            Some(("Spec", spec)) => match node(&spec["head"]) {
                Some(h) => h,
                None => continue,
            },
            Some(("Default", d)) => ("Default", d),
            _ => continue,
        };
        let Some((terms, name)) = head_ref(&head["refr"]) else {
            continue;
        };
        if name != "violation" {
            continue;
        }
        let named = terms == 1
            || (terms == 2
                && match kind {
                    "Set" => head["key"].is_null(),
                    "Compr" | "Func" => !head["assign"].is_null(),
                    "Default" => true,
                    _ => false,
                });
        defs.push((named, kind == "Set", place(head)));
    }
    let first_unnamed = defs.iter().find(|(named, _, _)| !named).map(|d| d.2)?;
    let any_named = defs.iter().any(|(named, _, _)| *named);
    let a_set = defs.iter().any(|(named, set, _)| *named && *set);
    (!any_named || a_set).then_some(first_unnamed)
}

/// What regorus's parser says of a set rule with a second body.
pub(crate) const SET_RULE_BODIES: &str = "else cannot be used with set rules";

/// `source` with the head of the set rule that regorus refused (`message`, its error, which
/// points at the second body's `{`) written again before that body: `head { a } { b }` becomes
/// `head { a } head { b }`. `None` when the error does not point at a body that follows a body
/// of a rule whose head can be read.
pub(crate) fn split_set_rule_bodies(source: &str, message: &str) -> Option<String> {
    // "--> <module>:<line>:<col>" on the error's first line.
    let at = message.lines().next()?.rsplit(':').collect::<Vec<_>>();
    let (col, line) = (
        at.first()?.trim().parse::<usize>().ok()?,
        at.get(1)?.trim().parse::<usize>().ok()?,
    );
    let line_start: usize = source
        .split_inclusive('\n')
        .take(line.checked_sub(1)?)
        .map(str::len)
        .sum();
    let offset = line_start
        + source
            .get(line_start..)?
            .char_indices()
            .nth(col.checked_sub(1)?)?
            .0;
    if !source.get(offset..)?.starts_with('{') || !source.get(..offset)?.trim_end().ends_with('}') {
        return None;
    }
    // The rule starts at the last line before that begins at its first column with neither
    // `}` nor a comment.
    let rule_start = source
        .get(..line_start)?
        .split_inclusive('\n')
        .scan(0usize, |pos, l| {
            let start = *pos;
            *pos += l.len();
            Some((start, l))
        })
        .filter(|(_, l)| {
            l.chars()
                .next()
                .is_some_and(|c| !c.is_whitespace() && c != '}' && c != '#')
        })
        .map(|(start, _)| start)
        .last()?;
    // The head runs to its first `{` outside brackets and strings.
    let mut depth = 0i32;
    let mut quoted = false;
    let mut escaped = false;
    let mut head_end = None;
    for (i, c) in source.get(rule_start..offset)?.char_indices() {
        if quoted {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => quoted = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            '[' | '(' => depth += 1,
            ']' | ')' => depth -= 1,
            '{' if depth == 0 => {
                head_end = Some(rule_start + i);
                break;
            }
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
    }
    let head = source.get(rule_start..head_end?)?.trim_end();
    if head.is_empty() || head.contains('\n') {
        return None;
    }
    Some(format!(
        "{} {head} {}",
        source.get(..offset)?,
        source.get(offset..)?
    ))
}

/// An edit of a module's source: `source[start..end]` replaced by the text.
type Edit = (usize, usize, String);

/// A module's source rewritten, or `None` when nothing in it needed binding. `ast` is the
/// module's entry of regorus's AST (`Engine::get_ast_as_json`), `source` the text its spans
/// index, `package_rules` the rules its package defines (in all its modules), and `pass`
/// numbers the names it binds, distinct from an earlier pass's. `late`: the module is a
/// template's main module whose `violation` results nothing but the caller reads
/// ([`late_allowed`]), so that its messages may be formatted after the evaluation.
pub(crate) fn rewrite(
    ast: &Value,
    source: &str,
    package_rules: &HashSet<String>,
    pass: usize,
    late: bool,
) -> Option<String> {
    let names = globals(ast, source, package_rules);
    let mut found = vec![];
    walk(ast, source, &names, &mut found);
    let mut edits: Vec<Edit> = vec![];
    let mut next = 0;
    for n in found {
        let mut prefix = String::new();
        let mut literal = String::new();
        let mut pos = n.start;
        for (s, e) in &n.bind {
            let name = format!("__garrison_not{pass}_{next}__");
            next += 1;
            prefix.push_str(&format!("{name} := ({}); ", source.get(*s..*e)?));
            literal.push_str(source.get(pos..*s)?);
            literal.push_str(&name);
            pos = *e;
        }
        literal.push_str(source.get(pos..n.end)?);
        let text = if n.unbraced {
            format!("{{ {prefix}{literal} }}")
        } else {
            format!("{prefix}{literal}")
        };
        edits.push((n.start, n.end, text));
    }
    let mut splits = vec![];
    each_call(ast, &mut |call| {
        call_across_lines(call, source, &mut splits)
    });
    // Statement ends change what the AST is: a pass that finds any makes only them, and the
    // next pass reads the statements as OPA does.
    if !splits.is_empty() {
        edits.clear();
    }
    edits.extend(splits.into_iter().map(|p| (p, p, ";".to_string())));
    // A module that replaces `sprintf` (`with sprintf as ...`) keeps calling it by its name.
    let mocked = source
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .any(|w| w[0] == "with" && w[1] == "sprintf");
    if !mocked {
        // A message only the head reads is formatted after the evaluation (`late_calls`);
        // any other call that regorus would not format as Go does calls Garrison's `sprintf`.
        let mut late_at = HashSet::new();
        for call in late.then(|| late_calls(ast, source)).into_iter().flatten() {
            if let (Some(at), Some(made)) = (span(call), late_edits(call, source)) {
                late_at.insert(at);
                edits.extend(made);
            }
        }
        each_call(ast, &mut |call| {
            if !span(call).is_some_and(|at| late_at.contains(&at)) {
                go_formatted(call, &mut edits)
            }
        });
    }
    if edits.is_empty() {
        return None;
    }
    // An edit inside an earlier one's text (a negation in a comprehension of another, a call
    // inside a negation) is left to the next pass, which reads the rewritten source again.
    edits.sort_by_key(|(s, e, _)| (*s, *e));
    let mut out = String::with_capacity(source.len() + edits.len() * 48);
    let mut at = 0;
    for (start, end, text) in edits {
        if start < at {
            continue;
        }
        // Spans that do not fall on the text's characters leave the module as written.
        out.push_str(source.get(at..start)?);
        out.push_str(&text);
        at = end;
    }
    out.push_str(source.get(at..)?);
    Some(out)
}

/// `sprintf` that regorus would not format as Go does (OPA's formatting): regorus reads flags
/// as verbs (`%-10s` prints `10s`), fails on others (`%+d`, `%8.3f`, `%#v`, a verb without an
/// argument, arguments left over), which ends the rule and loses the violation, and prints
/// `%s` of a number as `%v` would. Such a call is made to Garrison's `sprintf` instead
/// (`gofmt`, an extension of the interpreter: the template then runs there). regorus keeps
/// only a literal format whose verbs are all `%v` (and `%%`), given a literal array of as
/// many arguments, which keeps the template on the virtual machine. Its `%v` differs from
/// OPA's in edge cases only: `{}` for an empty set (OPA: `set()`), a fraction in full decimal
/// (OPA: Go's `%g`), and strings inside collections escaped as JSON.
fn go_formatted(call: &Value, edits: &mut Vec<Edit>) {
    let Some(("Var", fcn)) = node(&call["fcn"]) else {
        return;
    };
    if fcn["value"] != "sprintf" {
        return;
    }
    let params = call["params"].as_array();
    let format = params.and_then(|p| p.first()).and_then(node);
    let args = params.and_then(|p| p.get(1)).and_then(node);
    let plain = match (format, args) {
        (Some(("String" | "RawString", f)), Some(("Array", a))) => f["value"]
            .as_str()
            .and_then(crate::gofmt::plain_verbs)
            .is_some_and(|verbs| Some(verbs) == a["items"].as_array().map(Vec::len)),
        _ => false,
    };
    if let (false, Some((s, e))) = (plain, span(fcn)) {
        edits.push((s, e, crate::rego::GO_SPRINTF.to_string()));
    }
}

/// The string in the set that is the first element of the array standing, in a `violation`
/// result's `msg`, for a message formatted after the evaluation: `[{LATE}, format, args]`
/// (`late_calls`, `rego::late_message`). No JSON input holds a set, so no reviewed object or
/// parameter can pass for one.
pub(crate) const LATE: &str = "__garrison_late";

/// Whether a template's main module may have its messages formatted after the evaluation: the
/// program's entry rule is `violation`, and no library names `violation` (a library's own
/// `violation` rules keep their messages as strings for whoever reads them). The main module
/// is checked by [`late_calls`].
pub(crate) fn late_allowed(rule: &str, libs: &[String]) -> bool {
    rule == "violation" && libs.iter().all(|l| word_count(l, "violation") == 0)
}

/// How many times `word` stands in `text` as a name of its own, not inside a longer name
/// (what comes before may be a `.`, as in `data.k.violation`). Comments and strings count.
fn word_count(text: &str, word: &str) -> usize {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word)
        .filter(|(at, _)| {
            !text[..*at].chars().next_back().is_some_and(ident)
                && !text[at + word.len()..].chars().next().is_some_and(ident)
        })
        .count()
}

/// The calls of `sprintf` whose value is only ever a `violation` result's message: the call
/// is the value of the `msg` field of a set rule's key (`violation[{"msg": sprintf(...)}]`), or
/// that value is a variable that the rule's one body declares from the call (`msg :=
/// sprintf(...)`; not `=`, which compares where `msg` names a rule) and that nothing else in
/// the rule names. Nothing else in the module may name `violation` in any form
/// (`data.k.violation`, an import, even a comment): its text names it once per definition.
///
/// Such a call is written as the array `[{LATE}, format, args]` (`late_edits`), and the
/// message formatted from it when the results are read, with OPA's formatting (`gofmt`);
/// results then formatted alike are one, as OPA's set would hold them. regorus's own
/// `sprintf` took about an eighth of the instructions of a work whose every manifest violates
/// (480 messages), and prints `%v` otherwise than OPA in edge cases (an empty set as `{}`);
/// calls with other verbs no longer send the template to the interpreter.
fn late_calls<'a>(ast: &'a Value, source: &str) -> Vec<&'a Value> {
    let rules: Vec<&Value> = ast["rules"].as_array().into_iter().flatten().collect();
    let mut heads = 0;
    let mut calls = vec![];
    for r in &rules {
        let Some(("Spec", spec)) = node(r) else {
            continue;
        };
        let Some((_, head)) = node(&spec["head"]) else {
            continue;
        };
        if !matches!(node(&head["refr"]), Some(("Var", v)) if v["value"] == "violation") {
            continue;
        }
        heads += 1;
        let Some(("Object", key)) = node(&head["key"]) else {
            continue;
        };
        let msg = key["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| matches!(node(&f[1]), Some(("String", k)) if k["value"] == "msg"))
            .map(|f| &f[2]);
        match msg.and_then(node) {
            Some(("Call", call)) if is_sprintf(call) => calls.push(call),
            Some(("Var", v)) => {
                let Some(name) = v["value"].as_str() else {
                    continue;
                };
                let bodies = spec["bodies"].as_array().map(Vec::as_slice);
                let Some([body]) = bodies else {
                    continue;
                };
                let assigned: Vec<&Value> = body["query"]["stmts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|stmt| stmt.get("with_mods").is_none())
                    .filter_map(|stmt| match node(&stmt["literal"]) {
                        Some(("Expr", e)) => match node(&e["expr"]) {
                            Some(("AssignExpr", a)) if a["op"] == "ColEq" => Some(a),
                            _ => None,
                        },
                        _ => None,
                    })
                    .filter(|a| matches!(node(&a["lhs"]), Some(("Var", l)) if l["value"] == name))
                    .filter_map(|a| match node(&a["rhs"]) {
                        Some(("Call", call)) if is_sprintf(call) => Some(call),
                        _ => None,
                    })
                    .collect();
                if let [call] = assigned.as_slice()
                    && var_count(r, name) == 2
                {
                    calls.push(call);
                }
            }
            _ => {}
        }
    }
    // Each variable `violation` is a word of the text, the heads' included: a text that names
    // it only once per head has no other reference to it.
    if word_count(source, "violation") != heads {
        return vec![];
    }
    calls
}

/// Whether `call` (a `Call` node's body) calls `sprintf` with two arguments.
fn is_sprintf(call: &Value) -> bool {
    matches!(node(&call["fcn"]), Some(("Var", f)) if f["value"] == "sprintf")
        && call["params"].as_array().is_some_and(|p| p.len() == 2)
}

/// How many variables named `name` the syntax tree `v` holds.
fn var_count(v: &Value, name: &str) -> usize {
    match v {
        Value::Object(m) => match node(v) {
            Some(("Var", x)) if x["value"] == name => 1,
            _ => m.values().map(|x| var_count(x, name)).sum(),
        },
        Value::Array(a) => a.iter().map(|x| var_count(x, name)).sum(),
        _ => 0,
    }
}

/// The edits that write the call `sprintf(format, args)` as `[LATE, format, args]`: its name
/// and opening parenthesis, and its closing one. `None` where the text is not as the syntax
/// tree says (the call is then left as it is).
fn late_edits(call: &Value, source: &str) -> Option<[Edit; 2]> {
    let (start, end) = span(call)?;
    let (name_start, name_end) = node(&call["fcn"]).and_then(|(_, f)| span(f))?;
    let after = source.get(name_end..end)?;
    let open = name_end + after.len() - after.trim_start().len();
    let inner = source
        .get(open..end)?
        .strip_prefix('(')?
        .strip_suffix(')')?;
    // A line's end before `(` ends the statement in OPA (`call_across_lines`).
    if name_start != start
        || source[name_end..open].contains('\n')
        || inner.trim_end().ends_with(',')
    {
        return None;
    }
    Some([
        (name_start, open + 1, format!("[{{\"{LATE}\"}}, ")),
        (end - 1, end, "]".to_string()),
    ])
}

/// Whether `call` is a statement end that regorus reads on as a call: OPA ends a term at a
/// line's end, so `input.parameters.spread` followed by a line `(a - b) >= c` is two
/// statements, where regorus calls `input.parameters.spread` with `a - b`. Such a call's
/// function ends a statement: the rewrite puts a `;` after it.
fn call_across_lines(call: &Value, source: &str, splits: &mut Vec<usize>) {
    let fcn_end = node(&call["fcn"])
        .and_then(|(_, f)| span(f))
        .map(|(_, e)| e);
    let open = call["params"]
        .as_array()
        .and_then(|p| p.first())
        .and_then(|p| node(p))
        .and_then(|(_, b)| span(b))
        .map(|(s, _)| s);
    if let (Some(end), Some(open)) = (fcn_end, open) {
        // Between the function and its first argument only whitespace and `(`, and a line's
        // end before the first `(`.
        if source.get(end..open).is_some_and(|gap| {
            gap.chars().all(|c| c.is_whitespace() || c == '(')
                && gap.find('(').is_some_and(|p| gap[..p].contains('\n'))
        }) {
            splits.push(end);
        }
    }
}

/// Every call of the AST, depth first.
fn each_call(v: &Value, f: &mut impl FnMut(&Value)) {
    match v {
        Value::Object(m) => {
            if let Some(call) = m.get("Call") {
                f(call);
            }
            m.values().for_each(|x| each_call(x, f));
        }
        Value::Array(a) => a.iter().for_each(|x| each_call(x, f)),
        _ => {}
    }
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
    span_of(v.get("span")?)
}

fn span_of(s: &Value) -> Option<(usize, usize)> {
    Some((
        usize::try_from(s.get("start")?.as_u64()?).ok()?,
        usize::try_from(s.get("end")?.as_u64()?).ok()?,
    ))
}

/// Every statement of the AST, depth first: negated literals are collected.
fn walk(v: &Value, source: &str, names: &HashSet<String>, found: &mut Vec<Negation>) {
    match v {
        Value::Object(m) => {
            // A rule body written without braces (`p if not f(x)`) holds one literal; its
            // rewrite needs braces around the bindings and the literal.
            if let (Some(query), true) = (m.get("query"), m.contains_key("is_else")) {
                let unbraced = span(query)
                    .and_then(|(s, e)| source.get(s..e))
                    .is_some_and(|t| !t.trim_start().starts_with('{'));
                for stmt in query["stmts"].as_array().into_iter().flatten() {
                    statement(stmt, source, names, unbraced, found);
                }
                for (k, x) in m {
                    if k != "query" {
                        walk(x, source, names, found);
                    }
                }
                for stmt in query["stmts"].as_array().into_iter().flatten() {
                    walk(&stmt["literal"], source, names, found);
                }
                return;
            }
            if let Some(stmts) = m.get("stmts").and_then(Value::as_array) {
                for stmt in stmts {
                    statement(stmt, source, names, false, found);
                }
            }
            for x in m.values() {
                walk(x, source, names, found);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| walk(x, source, names, found)),
        _ => {}
    }
}

/// A statement of a query: a negated literal without `with` modifiers is collected.
fn statement(
    stmt: &Value,
    source: &str,
    names: &HashSet<String>,
    unbraced: bool,
    found: &mut Vec<Negation>,
) {
    let plain = stmt
        .get("with_mods")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if let (Some(not), true) = (stmt["literal"].get("NotExpr"), plain) {
        negation(not, source, names, unbraced, found);
    }
    if let (Some(expr), true) = (stmt["literal"].get("Expr"), plain) {
        membership(expr, source, names, unbraced, found);
    }
}

/// A statement that uses the `in` operator: OPA calls `internal.member_2` (or `_3`), and a
/// call with an undefined argument is undefined, which ends the body; regorus answers
/// `false` and goes on (`b := input.missing in xs` binds `false`). The operands are bound
/// before the statement, as a negation's are, so that an undefined one ends the body.
fn membership(
    literal: &Value,
    source: &str,
    names: &HashSet<String>,
    unbraced: bool,
    found: &mut Vec<Negation>,
) {
    fn each<'v>(v: &'v Value, out: &mut Vec<&'v Value>) {
        match node(v) {
            Some(("ArrayCompr" | "SetCompr" | "ObjectCompr", _)) => {}
            Some(("Membership", body)) => {
                out.push(body);
                body.as_object()
                    .into_iter()
                    .flat_map(|m| m.values())
                    .for_each(|x| each(x, out));
            }
            _ => match v {
                Value::Object(m) => m.values().for_each(|x| each(x, out)),
                Value::Array(a) => a.iter().for_each(|x| each(x, out)),
                _ => {}
            },
        }
    }
    let Some((start, end)) = span(literal) else {
        return;
    };
    let mut uses = vec![];
    each(literal, &mut uses);
    let mut bind = vec![];
    let mut binder = Binder {
        names,
        bind: &mut bind,
    };
    for term in uses.into_iter().flat_map(operands) {
        binder.argument(term);
    }
    settle(start, end, bind, source, unbraced, found);
}

fn negation(
    not: &Value,
    source: &str,
    names: &HashSet<String>,
    unbraced: bool,
    found: &mut Vec<Negation>,
) {
    let (Some((start, end)), Some(expr)) = (span(not), not.get("expr")) else {
        return;
    };
    let mut bind = vec![];
    Binder {
        names,
        bind: &mut bind,
    }
    .expression(expr);
    settle(start, end, bind, source, unbraced, found);
}

/// The terms `bind` of the statement at `start..end`, to be bound before it, when they lie
/// inside it and apart (a term inside another is bound by a later pass).
fn settle(
    start: usize,
    end: usize,
    mut bind: Vec<(usize, usize)>,
    source: &str,
    unbraced: bool,
    found: &mut Vec<Negation>,
) {
    bind.sort_unstable();
    bind.dedup();
    // A string's span leaves out its quotes: a statement that starts or ends with one starts
    // or ends at the quote (`"a" in xs`, `p if x == "a"`).
    let (Some(start), Some(end)) = (opening_quote(source, start), closing_quote(source, end))
    else {
        return;
    };
    let inside = bind.iter().all(|(s, e)| start <= *s && s <= e && *e <= end);
    let disjoint = bind.windows(2).all(|w| w[0].1 <= w[1].0);
    if bind.is_empty() || !inside || !disjoint || end > source.len() {
        return;
    }
    found.push(Negation {
        start,
        end,
        bind,
        unbraced,
    });
}

/// Whether `term` has a variable as a bracketed key, or `_`, outside comprehensions (which
/// bind their own).
fn iterates(term: &Value) -> bool {
    let Some((kind, body)) = node(term) else {
        return match term {
            Value::Array(a) => a.iter().any(iterates),
            _ => false,
        };
    };
    match kind {
        "ArrayCompr" | "SetCompr" | "ObjectCompr" => false,
        "Var" => body["value"] == "_",
        "RefBrack" => {
            matches!(node(&body["index"]), Some(("Var", _)))
                || iterates(&body["refr"])
                || iterates(&body["index"])
        }
        _ => body.as_object().is_some_and(|m| m.values().any(iterates)),
    }
}

/// Where a statement whose span starts at `start` starts in the text: before the opening quote
/// that a string's span leaves out; `None` off the text's characters.
fn opening_quote(source: &str, start: usize) -> Option<usize> {
    let before = source.get(..start)?;
    Some(match before.chars().next_back() {
        Some(q @ ('"' | '`')) => start - q.len_utf8(),
        _ => start,
    })
}

/// Where a statement whose span ends at `end` ends in the text: after the closing quote that a
/// string's span leaves out; `None` off the text's characters.
fn closing_quote(source: &str, end: usize) -> Option<usize> {
    let after = source.get(end..)?;
    Some(match after.chars().next() {
        Some(q @ ('"' | '`')) => end + q.len_utf8(),
        _ => end,
    })
}

/// The one-key object `{"Kind": {...}}` a node of the AST is.
fn node(v: &Value) -> Option<(&str, &Value)> {
    let m = v.as_object()?;
    if m.len() != 1 {
        return None;
    }
    m.iter().next().map(|(k, v)| (k.as_str(), v))
}

/// What one negated expression binds: byte ranges of terms, and the module's global names.
struct Binder<'a> {
    names: &'a HashSet<String>,
    bind: &'a mut Vec<(usize, usize)>,
}

impl Binder<'_> {
    /// The negated expression itself: what OPA binds before it.
    fn expression(&mut self, expr: &Value) {
        let Some((kind, body)) = node(expr) else {
            return;
        };
        match kind {
            "Call" => {
                for p in body["params"].as_array().into_iter().flatten() {
                    self.argument(p);
                }
            }
            // `==` becomes unification in OPA, and unification binds only dynamic keys.
            "BoolExpr" if body["op"] == "Eq" => {
                self.in_term(&body["lhs"]);
                self.in_term(&body["rhs"]);
            }
            "AssignExpr" if body["op"] == "Eq" => {
                self.in_term(&body["lhs"]);
                self.in_term(&body["rhs"]);
            }
            "BoolExpr" | "ArithExpr" | "BinExpr" => {
                self.argument(&body["lhs"]);
                self.argument(&body["rhs"]);
            }
            "Membership" => {
                if !body["key"].is_null() {
                    self.argument(&body["key"]);
                }
                self.argument(&body["value"]);
                self.argument(&body["collection"]);
            }
            _ => self.in_term(expr),
        }
    }

    /// A term that OPA binds whole when it needs evaluating (its `rewriteDynamicsOne`, with the
    /// nested calls that RewriteExprTerms binds before).
    fn argument(&mut self, term: &Value) {
        let Some((kind, body)) = node(term) else {
            return;
        };
        match kind {
            "RefDot" | "RefBrack" | "Call" | "ArithExpr" | "BinExpr" | "BoolExpr"
            | "Membership" | "UnaryExpr" | "ArrayCompr" | "SetCompr" | "ObjectCompr" => {
                // A term with a variable as a key (`xs[_]`, `xs[i]`) may iterate over
                // values the negation alone binds (OPA refuses such a negation as unsafe):
                // binding it first would turn "none is" into "one is not". It stays.
                if iterates(term) {
                    return;
                }
                if let Some(s) = span(body) {
                    self.bind.push(s);
                }
            }
            "Array" | "Set" => {
                for x in body["items"].as_array().into_iter().flatten() {
                    self.argument(x);
                }
            }
            "Object" => {
                for field in body["fields"].as_array().into_iter().flatten() {
                    // [span, key, value]
                    if let Some(f) = field.as_array() {
                        f.iter().skip(1).for_each(|x| self.argument(x));
                    }
                }
            }
            // A rule or an import named bare is a reference to OPA; a local variable is bound
            // already and stays.
            "Var"
                if body["value"]
                    .as_str()
                    .is_some_and(|v| self.names.contains(v)) =>
            {
                if let Some(s) = span(body) {
                    self.bind.push(s);
                }
            }
            _ => {}
        }
    }

    /// A term whose reference stays in place, its dynamic keys bound (OPA's
    /// `rewriteDynamicsInTerm`): a reference's bracketed keys, a reference's head when it is not a
    /// variable; a comprehension is left (its body is a body of its own); anything else is bound
    /// as an argument is.
    fn in_term(&mut self, term: &Value) {
        let Some((kind, body)) = node(term) else {
            return;
        };
        match kind {
            "RefDot" | "RefBrack" => {
                let mut at = (kind, body);
                loop {
                    let (k, b) = at;
                    if k == "RefBrack" {
                        self.argument(&b["index"]);
                    }
                    match node(&b["refr"]) {
                        Some(next @ ("RefDot" | "RefBrack", _)) => at = next,
                        // A name at the head (a local, a rule, an import) stays: OPA binds
                        // only the keys after it.
                        Some(("Var", _)) | None => break,
                        Some(_) => {
                            self.argument(&b["refr"]);
                            break;
                        }
                    }
                }
            }
            // A comprehension's body is a body of its own; a bare name is a reference (to a
            // rule or an import) without keys, or a local variable: neither is bound.
            "ArrayCompr" | "SetCompr" | "ObjectCompr" | "Var" => {}
            _ => self.argument(term),
        }
    }
}

/// A module's source could not be guarded exactly (a span that does not fall on its text):
/// the virtual machine must not run it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unguarded;

/// An edit of a module's source: `source[start..end]` replaced by the text (an insertion when
/// `start == end`).
type Guard = (usize, usize, String);

/// A module's source guarded for regorus's virtual machine, or `None` when nothing in it needs
/// a guard.
///
/// In regorus 0.14.1 the virtual machine lets an undefined value through where Rego ends the
/// body, in three places this settles:
///
/// - an assignment (`:=`, or `=` that binds) whose value is undefined does not end the body: a
///   helper such as `exempt(c) { img := c.image; ... }` holds for a container without an
///   image, so `not exempt(c)` lets it through. Each variable such a statement binds is
///   checked after it with `_ = <var>`, which the machine compiles to a test that the value is
///   defined;
/// - an array comprehension keeps an undefined term as an element (`[c.limits.cpu | c := ...]`
///   counts a container without a limit): the term is checked at the end of the
///   comprehension's body, `_ = (<term>)`;
/// - a function's argument written `_` is not checked to be defined: it is named
///   (`__garrison_arg<n>__`), as a named argument is checked.
///
/// The guards go on the statement's own line, so line numbers in messages stay the author's. A
/// statement with `with` modifiers is left (the machine does not take them; such a program runs
/// on the interpreter). `package_rules` are the rules of the module's package: with `=`, a name
/// among them is a reference, not a variable the statement binds (`:=` always declares a new
/// one). Should a span not fall on the text, the module is [`Unguarded`].
pub(crate) fn guard_assignments(
    ast: &Value,
    source: &str,
    package_rules: &HashSet<String>,
) -> Result<Option<String>, Unguarded> {
    let names = globals(ast, source, package_rules);
    let mut edits: Vec<Guard> = vec![];
    let mut ok = true;
    let mut g = Guarder {
        source,
        names: &names,
        edits: &mut edits,
        ok: &mut ok,
        args: 0,
    };
    g.walk(ast);
    if !ok {
        return Err(Unguarded);
    }
    if edits.is_empty() {
        return Ok(None);
    }
    // Stable: a statement's opening brace and its guards keep their order at one position.
    edits.sort_by_key(|(start, _, _)| *start);
    apply_edits(source, edits).map(Some)
}

/// `source` with `edits` (byte range, new text), sorted, made; [`Unguarded`] where two
/// overlap or a range does not fall on the text's characters.
pub(crate) fn apply_edits(source: &str, edits: Vec<Edit>) -> Result<String, Unguarded> {
    let added: usize = edits.iter().map(|(_, _, text)| text.len()).sum();
    let mut out = String::with_capacity(source.len() + added);
    let mut at = 0;
    for (start, end, text) in edits {
        if start < at {
            return Err(Unguarded);
        }
        out.push_str(source.get(at..start).ok_or(Unguarded)?);
        out.push_str(&text);
        at = end;
    }
    out.push_str(source.get(at..).ok_or(Unguarded)?);
    Ok(out)
}

struct Guarder<'a> {
    source: &'a str,
    names: &'a HashSet<String>,
    edits: &'a mut Vec<Guard>,
    ok: &'a mut bool,
    args: usize,
}

impl Guarder<'_> {
    /// Where a node ends in the text: its span's end, past the closing quote that a string's
    /// span leaves out (nothing else can follow a term without a space or a separator).
    fn end_of(&mut self, v: &Value) -> Option<usize> {
        let end = span(v)
            .filter(|(start, _)| self.source.is_char_boundary(*start))
            .and_then(|(_, end)| closing_quote(self.source, end));
        *self.ok &= end.is_some();
        end
    }

    /// Where a statement starts in the text: its span's start, before the opening quote that a
    /// string's span leaves out (a statement `"a" == x` starts at the quote).
    fn start_of(&mut self, v: &Value) -> Option<usize> {
        let start = span(v).and_then(|(start, _)| opening_quote(self.source, start));
        *self.ok &= start.is_some();
        start
    }

    fn walk(&mut self, v: &Value) {
        match v {
            Value::Object(m) => {
                // A rule's body: its query's statements are guarded here, and the walk goes on
                // into everything else and into each statement (not into the query again).
                if let (Some(query), true) = (m.get("query"), m.contains_key("is_else")) {
                    // A body written without braces (`p if x := f(y)`) holds one statement; its
                    // guard needs braces around it.
                    let unbraced = span(query)
                        .and_then(|(s, e)| self.source.get(s..e))
                        .is_some_and(|t| !t.trim_start().starts_with('{'));
                    for stmt in query["stmts"].as_array().into_iter().flatten() {
                        self.statement(stmt, unbraced);
                        self.walk(&stmt["literal"]);
                    }
                    for (k, x) in m {
                        if k != "query" {
                            self.walk(x);
                        }
                    }
                    return;
                }
                match node(v) {
                    Some(("ArrayCompr", c)) => {
                        self.comprehension_loop(c);
                        self.comprehension_term(c);
                    }
                    Some(("SetCompr", c)) => self.comprehension_loop(c),
                    Some(("Func", head)) => self.function_arguments(head),
                    _ => {}
                }
                if let Some(stmts) = m.get("stmts").and_then(Value::as_array) {
                    for stmt in stmts {
                        self.statement(stmt, false);
                    }
                }
                for x in m.values() {
                    self.walk(x);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| self.walk(x)),
            _ => {}
        }
    }

    fn statement(&mut self, stmt: &Value, unbraced: bool) {
        let plain = stmt
            .get("with_mods")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        let Some(("AssignExpr", assign)) =
            stmt["literal"].get("Expr").and_then(|e| node(&e["expr"]))
        else {
            return;
        };
        if !plain {
            return;
        }
        // A comprehension or a literal always has a value: no guard is needed.
        let defined = matches!(
            node(&assign["rhs"]),
            Some((
                "ArrayCompr"
                    | "SetCompr"
                    | "ObjectCompr"
                    | "String"
                    | "RawString"
                    | "Number"
                    | "Bool"
                    | "Null",
                _
            ))
        );
        // Nor does a message left to be formatted (`late_calls`): the machine gives no result
        // where an element of the array is undefined (tested on both engines), and its
        // compiler refuses any later reading of a variable assigned an array that holds one.
        let late = matches!(node(&assign["rhs"]), Some(("Array", a))
            if matches!(a["items"].get(0).and_then(node), Some(("Set", set))
                if matches!(set["items"].get(0).and_then(node), Some(("String", s)) if s["value"] == LATE)));
        let declares = assign["op"] == "ColEq";
        if declares && (defined || late) {
            return;
        }
        let none = HashSet::new();
        // `:=` declares new variables, whatever rules share their names.
        let names = if declares { &none } else { self.names };
        let mut vars = vec![];
        bound_vars(&assign["lhs"], names, &mut vars);
        if !declares {
            bound_vars(&assign["rhs"], names, &mut vars);
        }
        if vars.is_empty() {
            return;
        }
        let Some(end) = self.end_of(stmt) else {
            return;
        };
        let mut guard: String = vars.iter().map(|v| format!("; _ = {v}")).collect();
        if unbraced {
            let Some(start) = self.start_of(stmt) else {
                return;
            };
            self.edits.push((start, start, "{ ".to_string()));
            guard.push_str(" }");
        }
        self.edits.push((end, end, guard));
    }

    /// An array comprehension's term, checked at the end of its body.
    fn comprehension_term(&mut self, c: &Value) {
        let term = &c["term"];
        // A literal has a value; a variable is bound in the body, by a statement that is
        // guarded or by a loop, which yields only what is there.
        if matches!(
            node(term),
            Some((
                "String" | "RawString" | "Number" | "Bool" | "Null" | "Var",
                _
            ))
        ) {
            return;
        }
        // A term that iterates, or holds a comprehension, would be evaluated again by the
        // guard with loops of its own: such a program runs on the interpreter.
        if iterates(term) || holds_comprehension(term) {
            *self.ok = false;
            return;
        }
        let Some(last) = c["query"]["stmts"].as_array().and_then(|s| s.last()) else {
            *self.ok = false;
            return;
        };
        let with = last
            .get("with_mods")
            .and_then(Value::as_array)
            .is_some_and(|w| !w.is_empty());
        if with {
            *self.ok = false;
            return;
        }
        let Some((start, _)) = node(term).and_then(|(_, t)| span(t)) else {
            *self.ok = false;
            return;
        };
        let (Some(term_end), Some(end)) = (
            node(term).and_then(|(_, t)| self.end_of(t)),
            self.end_of(last),
        ) else {
            return;
        };
        let Some(text) = self.source.get(start..term_end) else {
            *self.ok = false;
            return;
        };
        self.edits.push((end, end, format!("; _ = ({text})")));
    }

    /// A loop of one turn, `[true][_]; `, first in a comprehension's body. After a comprehension
    /// whose body has no loop and fails, the machine runs on without end at the next body that
    /// fails outside a loop (`[y | y := input.n; y > 5]`, then `input.n > 5` in another rule);
    /// a comprehension with a loop does not.
    fn comprehension_loop(&mut self, c: &Value) {
        let Some(first) = c["query"]["stmts"].as_array().and_then(|s| s.first()) else {
            *self.ok = false;
            return;
        };
        let Some(start) = self.start_of(first) else {
            return;
        };
        self.edits.push((start, start, "[true][_]; ".to_string()));
    }

    /// A function's arguments written `_`, named.
    fn function_arguments(&mut self, head: &Value) {
        let args = head["args"].as_array().map_or(0, Vec::len);
        // The machine passes at most 8 arguments to a function, and checks nothing of an
        // argument written `{}`: such a program runs on the interpreter.
        let empty_object = head["args"].as_array().into_iter().flatten().any(|a| {
            matches!(node(a), Some(("Object", o)) if o["fields"].as_array().is_none_or(Vec::is_empty))
        });
        if args > 8 || empty_object {
            *self.ok = false;
            return;
        }
        for arg in head["args"].as_array().into_iter().flatten() {
            if let Some(("Var", var)) = node(arg)
                && var["value"] == "_"
            {
                let Some((start, end)) = span(var) else {
                    *self.ok = false;
                    return;
                };
                if self.source.get(start..end) != Some("_") {
                    *self.ok = false;
                    return;
                }
                self.edits
                    .push((start, end, format!("__garrison_arg{}__", self.args)));
                self.args += 1;
            }
        }
    }
}

/// The variables a side of an assignment binds: the side itself when it is a variable, and the
/// variables of an array's items and an object's values, as destructuring binds them. `_`,
/// rules and imports are not bound; references, calls and comprehensions bind nothing.
fn bound_vars<'a>(term: &'a Value, names: &HashSet<String>, vars: &mut Vec<&'a str>) {
    let Some((kind, body)) = node(term) else {
        return;
    };
    match kind {
        "Var" => {
            if let Some(v) = body["value"].as_str()
                && v != "_"
                && !names.contains(v)
                && !vars.contains(&v)
            {
                vars.push(v);
            }
        }
        "Array" => {
            for x in body["items"].as_array().into_iter().flatten() {
                bound_vars(x, names, vars);
            }
        }
        "Object" => {
            for field in body["fields"].as_array().into_iter().flatten() {
                if let Some(value) = field.as_array().and_then(|f| f.get(2)) {
                    bound_vars(value, names, vars);
                }
            }
        }
        _ => {}
    }
}

/// One definition of a complete rule, a function or a partial object rule, as far as a
/// conflict goes: the values its head and `else` branches give (`None` for one computed), and
/// whether a body may succeed more than once (it iterates).
#[derive(Debug, Clone)]
pub(crate) struct Definition {
    values: Vec<Option<String>>,
    iterates: bool,
    object: bool,
    /// Bodies, `else` branches included.
    bodies: usize,
}

/// The definitions of `ast`'s complete rules, functions and partial object rules, by the
/// rule's name within `package`, added to `groups`.
pub(crate) fn definitions(
    ast: &Value,
    source: &str,
    package: &str,
    groups: &mut std::collections::HashMap<String, Vec<Definition>>,
) {
    for rule in ast["rules"].as_array().into_iter().flatten() {
        let Some(("Spec", spec)) = node(rule) else {
            continue;
        };
        let Some((kind, head)) = node(&spec["head"]) else {
            continue;
        };
        if kind == "Set" {
            continue;
        }
        let refr = &head["refr"];
        let object = kind == "Compr" && matches!(node(refr), Some(("RefBrack", _)));
        let name = span(&node(refr).map(|(_, r)| r.clone()).unwrap_or_default())
            .and_then(|(s, e)| source.get(s..e))
            .unwrap_or_default()
            .to_string();
        let constant = |assign: &Value| -> Option<String> {
            if assign.is_null() {
                return Some("true".into());
            }
            match node(&assign["value"]) {
                Some(("Bool" | "Number" | "String" | "RawString" | "Null", v)) => {
                    Some(v["value"].to_string())
                }
                _ => None,
            }
        };
        let mut values = vec![constant(&head["assign"])];
        // A head's value (or key) that iterates gives as many values as its iterations.
        let mut repeats = iterates(&head["assign"]["value"]) || iterates(refr);
        let bodies = spec["bodies"].as_array().map_or(0, Vec::len);
        for body in spec["bodies"].as_array().into_iter().flatten() {
            if !body["assign"].is_null() {
                values.push(constant(&body["assign"]));
                repeats |= iterates(&body["assign"]["value"]);
            }
            for stmt in body["query"]["stmts"].as_array().into_iter().flatten() {
                repeats |= may_iterate(&stmt["literal"]);
            }
        }
        groups
            .entry(format!("{package}.{name}"))
            .or_default()
            .push(Definition {
                values,
                iterates: repeats,
                object,
                bodies,
            });
    }
}

/// Whether rules so defined may be answered otherwise on regorus's virtual machine than in OPA.
/// Where OPA fails the evaluation because a rule gives two values ("complete rules must not
/// produce multiple outputs", "object keys must be unique"), the machine makes the rule
/// undefined or keeps one value, silently; and after a body that iterates and finds nothing it
/// skips the definition's `else` branches. Read conservatively: a computed value that may be
/// given more than once (several definitions, or a head or body that iterates), any partial
/// object rule, constants that differ between definitions, or an `else` after a body of a
/// definition that iterates.
pub(crate) fn may_conflict(groups: &std::collections::HashMap<String, Vec<Definition>>) -> bool {
    groups.values().any(|defs| {
        let computed = defs.iter().any(|d| d.values.iter().any(Option::is_none));
        let object = defs.iter().any(|d| d.object);
        // After a body that succeeds with an undefined value, the machine skips the `else`
        // too: a definition with `else` branches and a computed value stays off it.
        let else_skipped = defs
            .iter()
            .any(|d| d.bodies > 1 && (d.iterates || d.values.iter().any(Option::is_none)));
        if object || else_skipped {
            return true;
        }
        let again = defs.len() > 1 || defs.iter().any(|d| d.iterates);
        // A definition's `else` branches are alternatives, never in conflict; definitions of
        // the same rule are not.
        let mut constants = defs.iter().flat_map(|d| d.values.iter().flatten());
        let first = constants.next();
        let differ = defs.len() > 1 && constants.any(|c| Some(c) != first);
        (computed && again) || differ
    })
}

/// Whether a statement may succeed more than once: it declares or iterates variables (`some`,
/// `x in xs`, a reference with a variable or `_` as a key). Comprehensions iterate within
/// themselves and are not counted; a variable key already bound counts (the scan does not
/// track bindings).
fn may_iterate(literal: &Value) -> bool {
    match node(literal) {
        Some(("SomeVars" | "SomeIn", _)) => true,
        // The body of `every` is a query of its own; its domain may iterate outside it.
        Some(("Every", body)) => iterates(&body["domain"]),
        Some(_) => iterates(literal),
        None => false,
    }
}

/// A variable that OPA's safety check refuses: its name, line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnsafeVar {
    pub name: String,
    pub line: u64,
    pub col: u64,
}

/// The first variable of a module that OPA's safety check refuses in a negated expression: a
/// `_`, or a name that nothing else in its rule mentions, outside the comprehensions and the
/// nested calls that OPA evaluates before the negation. `source` is the text the spans index,
/// `package_rules` the rules of the module's package.
///
/// A negated expression binds no variable, so OPA refuses `not xs[_] == "a"` (`var _ is
/// unsafe`: each `_` is a variable of its own) and `not xs[i] == "a"` with `i` bound nowhere
/// else, and the template is never used. regorus compiles both, and iterates outside the
/// `not`: it reads "some element is not `"a"`" where an author may mean "no element is", which
/// lets an empty `xs` through. Garrison refuses them as OPA does. A nested call is evaluated
/// first in OPA (its stage RewriteExprTerms), so its variables are bound: `not f(g(xs[_]))`
/// and `not xs[_] + 1 == 3` compile, and iterate outside the negation in both. A name that
/// the rule mentions elsewhere is let through even where OPA would find it unbound there
/// (only in another negation, say): this check refuses nothing OPA compiles.
pub(crate) fn unsafe_var(
    ast: &Value,
    source: &str,
    package_rules: &HashSet<String>,
) -> Option<UnsafeVar> {
    let globals = globals(ast, source, package_rules);
    for rule in ast["rules"].as_array().into_iter().flatten() {
        let mut mentioned = HashSet::new();
        let mut negated = vec![];
        mentions(rule, source, &mut mentioned, &mut negated);
        let unsafe_var = negated.into_iter().find(|v| {
            v.name == "_"
                || !(mentioned.contains(&v.name)
                    || globals.contains(&v.name)
                    || v.name == "input"
                    || v.name == "data")
        });
        if unsafe_var.is_some() {
            return unsafe_var;
        }
    }
    None
}

/// The variables of `v`: those in the operands of negated expressions (`negated`), and every
/// other (`mentioned`).
fn mentions(
    v: &Value,
    source: &str,
    mentioned: &mut HashSet<String>,
    negated: &mut Vec<UnsafeVar>,
) {
    match v {
        Value::Object(m) => {
            if let Some(("Var", var)) = node(v) {
                mentioned.extend(var["value"].as_str().map(str::to_string));
                return;
            }
            // `every k, v in xs` binds its key and value, which the AST gives as spans.
            if let Some(("Every", every)) = node(v) {
                for name in [&every["key"], &every["value"]] {
                    if let Some((s, e)) = span_of(name) {
                        mentioned.extend(source.get(s..e).map(str::to_string));
                    }
                }
            }
            if let Some(expr) = m.get("NotExpr").and_then(|n| n.get("expr")) {
                match node(expr) {
                    Some((kind, body)) if is_call(kind) => {
                        for o in operands(body) {
                            negated_operand(o, source, mentioned, negated);
                        }
                    }
                    _ => negated_operand(expr, source, mentioned, negated),
                }
                return;
            }
            m.values()
                .for_each(|x| mentions(x, source, mentioned, negated));
        }
        Value::Array(a) => a
            .iter()
            .for_each(|x| mentions(x, source, mentioned, negated)),
        _ => {}
    }
}

/// The variables of an operand of a negated expression: those OPA leaves inside the negation
/// go to `negated`; those of comprehensions (bodies of their own) and nested calls (evaluated
/// before the negation) are `mentioned`.
fn negated_operand(
    term: &Value,
    source: &str,
    mentioned: &mut HashSet<String>,
    negated: &mut Vec<UnsafeVar>,
) {
    let Some((kind, body)) = node(term) else {
        return;
    };
    match kind {
        "Var" => negated.extend(body["value"].as_str().map(|name| UnsafeVar {
            name: name.to_string(),
            line: body["span"]["line"].as_u64().unwrap_or(0),
            col: body["span"]["col"].as_u64().unwrap_or(0),
        })),
        "RefBrack" => {
            negated_operand(&body["refr"], source, mentioned, negated);
            negated_operand(&body["index"], source, mentioned, negated);
        }
        "RefDot" => negated_operand(&body["refr"], source, mentioned, negated),
        "Array" | "Set" => {
            for x in body["items"].as_array().into_iter().flatten() {
                negated_operand(x, source, mentioned, negated);
            }
        }
        "Object" => {
            for field in body["fields"].as_array().into_iter().flatten() {
                // [span, key, value]
                for x in field.as_array().into_iter().flatten().skip(1) {
                    negated_operand(x, source, mentioned, negated);
                }
            }
        }
        _ => mentions(term, source, mentioned, negated),
    }
}

/// Whether a node of `kind` is a call in OPA: a function, an operator, `=` or `:=`.
fn is_call(kind: &str) -> bool {
    matches!(
        kind,
        "Call" | "BoolExpr" | "ArithExpr" | "BinExpr" | "Membership" | "AssignExpr" | "UnaryExpr"
    )
}

/// The operands of a call's node (not a function's name).
fn operands(body: &Value) -> Vec<&Value> {
    let mut out: Vec<&Value> = body["params"].as_array().into_iter().flatten().collect();
    for key in ["lhs", "rhs", "key", "value", "collection", "expr"] {
        if let Some(v) = body.get(key).filter(|v| !v.is_null()) {
            out.push(v);
        }
    }
    out
}

/// Whether `ast` uses a form regorus's virtual machine evaluates otherwise than OPA, which no
/// guard settles: an object comprehension (the machine keeps the last value of a key OPA fails
/// on, and undefined keys and values); the `in` operator (the machine answers `false` where
/// OPA's answer is undefined, and ignores the key of `k, v in xs`); arithmetic on what may not
/// be numbers (the machine fails the whole body, every turn of its loops included, where OPA
/// makes the one expression undefined, so a badly typed first element hides the elements
/// after it), except the difference of two variables that only ever hold sets; `every` (the
/// machine lets it hold when its body fails on an undefined reference, `every l in ls {
/// labels[l] }`); a rule with neither body nor value (`bare_rule`). `some ... in` is a loop,
/// not the operator.
pub(crate) fn unguarded_forms(ast: &Value) -> bool {
    let sets = set_variables(ast);
    bare_rule(ast) || forms(ast, &sets)
}

/// Whether a module defines a rule with neither a body nor a value (Rego v0's `q`, which is
/// `q = true`, or `f("a")`): the machine's compiler emits nothing for it, so it is undefined
/// there.
fn bare_rule(ast: &Value) -> bool {
    ast["rules"].as_array().into_iter().flatten().any(|rule| {
        matches!(node(rule), Some(("Spec", r))
            if r["bodies"].as_array().is_none_or(Vec::is_empty)
                && matches!(node(&r["head"]), Some((_, h)) if h["assign"].is_null()))
    })
}

fn forms(v: &Value, sets: &HashSet<String>) -> bool {
    match v {
        Value::Object(m) => {
            let refused = match node(v) {
                Some(("ObjectCompr" | "Membership" | "UnaryExpr" | "Every", _)) => true,
                Some(("ArithExpr", a)) => {
                    let set = |t: &Value| matches!(node(t), Some(("Var", x)) if x["value"].as_str().is_some_and(|n| sets.contains(n)));
                    !(a["op"] == "Sub" && set(&a["lhs"]) && set(&a["rhs"]))
                }
                _ => false,
            };
            refused || m.values().any(|x| forms(x, sets))
        }
        Value::Array(a) => a.iter().any(|x| forms(x, sets)),
        _ => false,
    }
}

/// The variables of a module that only ever hold sets: every binding of the name, anywhere in
/// the module, is `name := {...}` or `name := {x | ...}`. A name also bound otherwise (another
/// assignment, a destructuring, a function's argument, `some`, a loop's key) is not one.
fn set_variables(ast: &Value) -> HashSet<String> {
    let mut sets = HashSet::new();
    let mut other = HashSet::new();
    bindings(ast, &mut sets, &mut other);
    sets.retain(|n| !other.contains(n));
    sets
}

fn bindings(v: &Value, sets: &mut HashSet<String>, other: &mut HashSet<String>) {
    let names = |t: &Value, out: &mut HashSet<String>| {
        let mut vars = vec![];
        collect_vars(t, &mut vars);
        out.extend(vars);
    };
    match node(v) {
        Some(("AssignExpr", a)) => {
            let lhs = node(&a["lhs"]);
            let set_rhs =
                matches!(node(&a["rhs"]), Some(("Set" | "SetCompr", _))) || shared_set(&a["rhs"]);
            match lhs {
                Some(("Var", x)) if a["op"] == "ColEq" && set_rhs => {
                    if let Some(n) = x["value"].as_str() {
                        sets.insert(n.to_string());
                    }
                }
                _ => {
                    names(&a["lhs"], other);
                    if a["op"] == "Eq" {
                        names(&a["rhs"], other);
                    }
                }
            }
        }
        Some(("Func", head)) => names(&head["args"], other),
        Some(("SomeVars" | "SomeIn" | "Every", body)) => {
            for k in ["vars", "key", "value"] {
                names(&body[k], other);
            }
        }
        Some(("RefBrack", r)) => names(&r["index"], other),
        _ => {}
    }
    match v {
        Value::Object(m) => m.values().for_each(|x| bindings(x, sets, other)),
        Value::Array(a) => a.iter().for_each(|x| bindings(x, sets, other)),
        _ => {}
    }
}

/// Every variable name in a term, at any depth.
fn collect_vars(v: &Value, out: &mut Vec<String>) {
    if let Some(("Var", x)) = node(v)
        && let Some(n) = x["value"].as_str()
    {
        out.push(n.to_string());
    }
    match v {
        Value::Object(m) => m.values().for_each(|x| collect_vars(x, out)),
        Value::Array(a) => a.iter().for_each(|x| collect_vars(x, out)),
        _ => {}
    }
}

/// Whether a term holds a comprehension anywhere.
fn holds_comprehension(term: &Value) -> bool {
    match term {
        Value::Object(m) => {
            matches!(
                node(term),
                Some(("ArrayCompr" | "SetCompr" | "ObjectCompr", _))
            ) || m.values().any(holds_comprehension)
        }
        Value::Array(a) => a.iter().any(holds_comprehension),
        _ => false,
    }
}

/// The comprehensions of a module (`ast`, whose spans index `source`) whose value is the same
/// for every constraint of a template that judges one review, as byte ranges in `source`,
/// outermost only, in order. The rules of the module's package are `package_rules`.
///
/// A comprehension qualifies when everything it reads is the same for all of them:
/// - `input` only as `input.review`, and `data` only as `data.inventory`; never
///   `input.parameters`, nor `input` or `data` whole;
/// - no rule, function or import of the module (they may read the parameters), only built-ins;
///   a module with an import whose name cannot be read (`import data.lib[x]`) has none;
/// - no variable of an enclosing scope: a name it uses (as a variable, or declared by `some`
///   or `every`) may stand elsewhere in its rule only inside a comprehension that does not
///   enclose it, where it is that comprehension's own.
///   Rego binds a name in a comprehension to the enclosing body's variable of that name wherever
///   in that body it is bound, so a name of the rule's head, of a function's arguments, or of
///   the body around it disqualifies it.
///
/// The caller makes sure no `with` changes `input` or `data` on the way (`rego::split_shared`).
pub(crate) fn shared_terms(
    ast: &Value,
    source: &str,
    package_rules: &HashSet<String>,
) -> Vec<SharedTerm> {
    terms_reading(ast, source, package_rules, Reads::Review)
}

/// The comprehensions of a module (as [`shared_terms`]) whose value is the same for every
/// review a constraint judges: everything they read is the constraint's own. The same rules
/// as for [`shared_terms`], but that `input` may be read only as `input.parameters`, and
/// `data` not at all (the inventory changes from one review to the next). The batch
/// (`batch_edits`) reads their values from its input, evaluated once per parameter set.
pub(crate) fn parameter_terms(
    ast: &Value,
    source: &str,
    package_rules: &HashSet<String>,
) -> Vec<SharedTerm> {
    terms_reading(ast, source, package_rules, Reads::Parameters)
}

/// What a term may read of `input` and `data` to be the same for many evaluations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reads {
    /// `input.review` and `data.inventory`: the same for every constraint judging a review.
    Review,
    /// `input.parameters` alone: the same for every review a constraint judges.
    Parameters,
}

fn terms_reading(
    ast: &Value,
    source: &str,
    package_rules: &HashSet<String>,
    reads: Reads,
) -> Vec<SharedTerm> {
    let imports = ast["imports"].as_array().into_iter().flatten();
    // A name that cannot be told from a local variable would be read as one; and where a
    // variable is named `input` or `data`, `data.inventory` may be that variable.
    if imports.clone().any(|i| import_name(i, source).is_none()) || binds_roots(ast, source) {
        return vec![];
    }
    let names = globals(ast, source, package_rules);
    let mut out = vec![];
    for rule in ast["rules"].as_array().into_iter().flatten() {
        let mut places = vec![];
        var_places(rule, source, &mut vec![], &mut places);
        find_shared(rule, &names, reads, &places, &mut out);
    }
    out.sort_unstable_by_key(|t| t.at);
    out
}

/// Whether a module names a variable `input` or `data`: either word as a term of its own
/// rather than the root of a reference (`data := ...`, `some input in ...`, a function's
/// argument), or declared by `some` or `every`.
pub(crate) fn binds_roots(v: &Value, source: &str) -> bool {
    let root = |n: &str| matches!(n, "input" | "data");
    let spans_root = |spans: Vec<&Value>| {
        spans.into_iter().any(|s| {
            span_of(s)
                .and_then(|(a, b)| source.get(a..b))
                .is_some_and(root)
        })
    };
    match node(v) {
        Some(("Var", x)) => x["value"].as_str().is_some_and(root),
        Some(("RefDot" | "RefBrack", r)) => {
            let from_root = matches!(node(&r["refr"]), Some(("Var", _)));
            (!from_root && binds_roots(&r["refr"], source))
                || (!r["index"].is_null() && binds_roots(&r["index"], source))
        }
        Some(("SomeVars", x)) => {
            spans_root(x["vars"].as_array().into_iter().flatten().collect())
                || binds_roots_in(v, source)
        }
        Some(("Every", x)) => spans_root(vec![&x["key"], &x["value"]]) || binds_roots_in(v, source),
        _ => binds_roots_in(v, source),
    }
}

fn binds_roots_in(v: &Value, source: &str) -> bool {
    match v {
        Value::Object(m) => m.values().any(|x| binds_roots(x, source)),
        Value::Array(a) => a.iter().any(|x| binds_roots(x, source)),
        _ => false,
    }
}

/// A comprehension that a review's evaluations share ([`shared_terms`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SharedTerm {
    /// Its byte range in the module's text.
    pub at: (usize, usize),
    /// It is a set comprehension: its value is a set.
    pub set: bool,
}

/// The key under [`crate::rego::SHARED`] of the shared term `i`: `set<i>` for a set (so that
/// the machine's checks read a variable bound to it as a set, `set_variables`), else `term<i>`.
pub(crate) fn shared_key(i: usize, term: &SharedTerm) -> String {
    if term.set {
        format!("set{i}")
    } else {
        format!("term{i}")
    }
}

/// Whether `v` is `input.__garrison_shared.set<i>`, a shared set comprehension's value, or
/// `input.__garrison_parameter_terms[__garrison_at].set<i>`, a hoisted one's (`batch_edits`).
fn shared_set(v: &Value) -> bool {
    let Some(("RefDot", outer)) = node(v) else {
        return false;
    };
    let is_set = outer["field"][1].as_str().is_some_and(|k| {
        k.strip_prefix("set")
            .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
    });
    let input_field = |r: &Value, name: &str| {
        matches!(node(r), Some(("RefDot", inner))
            if matches!(node(&inner["refr"]), Some(("Var", x)) if x["value"] == "input")
                && inner["field"][1] == name)
    };
    let read = match node(&outer["refr"]) {
        Some(("RefDot", _)) => input_field(&outer["refr"], crate::rego::SHARED),
        Some(("RefBrack", b)) => {
            input_field(&b["refr"], BATCH_TERMS)
                && matches!(node(&b["index"]), Some(("Var", x)) if x["value"] == BATCH_AT)
        }
        _ => false,
    };
    is_set && read
}

/// Where a variable stands in a rule: its name, its span, and the span of the innermost
/// comprehension around it (`None` at the rule's own level).
struct VarPlace<'a> {
    name: &'a str,
    at: (usize, usize),
    scope: Option<(usize, usize)>,
}

fn is_comprehension(kind: &str) -> bool {
    matches!(kind, "ArrayCompr" | "SetCompr" | "ObjectCompr")
}

fn var_places<'a>(
    v: &'a Value,
    source: &'a str,
    scopes: &mut Vec<(usize, usize)>,
    out: &mut Vec<VarPlace<'a>>,
) {
    let kind = node(v);
    let scope_here = scopes.last().copied();
    let mut place = |name: Option<&'a str>, at: Option<(usize, usize)>| {
        if let (Some(name), Some(at)) = (name, at) {
            out.push(VarPlace {
                name,
                at,
                scope: scope_here,
            });
        }
    };
    match kind {
        Some(("Var", body)) => place(body["value"].as_str(), span(body)),
        // `some x, y` and `every k, v in ...` give their variables as spans, not as `Var`s.
        Some(("SomeVars", body)) => {
            for s in body["vars"].as_array().into_iter().flatten() {
                let at = span_of(s);
                place(at.and_then(|(a, b)| source.get(a..b)), at);
            }
        }
        Some(("Every", body)) => {
            for s in [&body["key"], &body["value"]] {
                let at = span_of(s);
                place(at.and_then(|(a, b)| source.get(a..b)), at);
            }
        }
        _ => {}
    }
    let scope = kind
        .filter(|(k, _)| is_comprehension(k))
        .and_then(|(_, body)| span(body));
    if let Some(s) = scope {
        scopes.push(s);
    }
    match v {
        // A call's function is a name, not a variable: only its arguments are read.
        _ if matches!(kind, Some(("Call", _))) => {
            let args = kind.and_then(|(_, body)| body["params"].as_array());
            args.into_iter()
                .flatten()
                .for_each(|x| var_places(x, source, scopes, out));
        }
        Value::Object(m) => m.values().for_each(|x| var_places(x, source, scopes, out)),
        Value::Array(a) => a.iter().for_each(|x| var_places(x, source, scopes, out)),
        _ => {}
    }
    if scope.is_some() {
        scopes.pop();
    }
}

fn find_shared(
    v: &Value,
    names: &HashSet<String>,
    reads: Reads,
    places: &[VarPlace],
    out: &mut Vec<SharedTerm>,
) {
    if let Some((kind, body)) = node(v)
        && is_comprehension(kind)
        && let Some(at) = span(body)
        && reads_only(v, names, reads)
        && !captures(at, places)
    {
        out.push(SharedTerm {
            at,
            set: kind == "SetCompr",
        });
        return;
    }
    match v {
        Value::Object(m) => m
            .values()
            .for_each(|x| find_shared(x, names, reads, places, out)),
        Value::Array(a) => a
            .iter()
            .for_each(|x| find_shared(x, names, reads, places, out)),
        _ => {}
    }
}

/// Whether the comprehension at `at` uses a name that a scope around it also uses (see
/// [`shared_terms`]).
fn captures(at: (usize, usize), places: &[VarPlace]) -> bool {
    let inside = |p: (usize, usize)| at.0 <= p.0 && p.1 <= at.1;
    let own: HashSet<&str> = places
        .iter()
        .filter(|p| inside(p.at) && !matches!(p.name, "_" | "input" | "data"))
        .map(|p| p.name)
        .collect();
    places.iter().any(|p| {
        !inside(p.at)
            && own.contains(p.name)
            // Outside, the name is the enclosing scope's unless a comprehension that does not
            // enclose `at` holds it.
            && p.scope.is_none_or(|s| s.0 <= at.0 && at.1 <= s.1)
    })
}

/// Whether a term reads nothing but built-ins, its own variables and what `reads` allows: the
/// review and the inventory, or the parameters.
fn reads_only(v: &Value, names: &HashSet<String>, reads: Reads) -> bool {
    match node(v) {
        Some(("RefDot", body)) => {
            if let Some(("Var", root)) = node(&body["refr"]) {
                let field = body["field"][1].as_str();
                match (root["value"].as_str(), reads) {
                    (Some("input"), Reads::Review) => return field == Some("review"),
                    (Some("data"), Reads::Review) => return field == Some("inventory"),
                    (Some("input"), Reads::Parameters) => return field == Some("parameters"),
                    (Some("data"), Reads::Parameters) => return false,
                    _ => {}
                }
            }
            reads_only(&body["refr"], names, reads)
        }
        Some(("Var", body)) => match body["value"].as_str() {
            Some("input" | "data") | None => false,
            Some(name) => !names.contains(name),
        },
        Some(("Call", body)) => {
            // A built-in's name (`count`, `strings.any_suffix_match`) is read as such; a name
            // of the module's own may read the parameters.
            let mut root = &body["fcn"];
            while let Some(("RefDot", r)) = node(root) {
                root = &r["refr"];
            }
            let builtin = match node(root) {
                Some(("Var", r)) => r["value"]
                    .as_str()
                    .is_some_and(|n| n != "input" && n != "data" && !names.contains(n)),
                _ => false,
            };
            builtin
                && body["params"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().all(|p| reads_only(p, names, reads)))
        }
        _ => match v {
            Value::Object(m) => m.values().all(|x| reads_only(x, names, reads)),
            Value::Array(a) => a.iter().all(|x| reads_only(x, names, reads)),
            _ => true,
        },
    }
}

/// The variable a batch's rule body binds to the place of its parameters in the batch
/// (`batch_edits`).
pub(crate) const BATCH_AT: &str = "__garrison_at";

/// The key of the input that holds a batch's parameters, in order.
pub(crate) const BATCH_INPUT: &str = "__garrison_parameters";

/// The key of the input that holds, for each parameter set of a batch in order, the values of
/// the comprehensions that read only the parameters (`batch_edits`); and the name of the rule
/// that gives them for one set.
pub(crate) const BATCH_TERMS: &str = "__garrison_parameter_terms";

/// `source` (a module, whose syntax tree is `ast`) edited so that its set rule `rule` judges
/// every parameter set of a batch in one evaluation: each of its definitions iterates over
/// `input.__garrison_parameters` (`_ = input.__garrison_parameters[__garrison_at]`, from its
/// first statement that reads the parameters: `iteration_point`), reads
/// `input.__garrison_parameters[__garrison_at]` where it read `input.parameters` (a variable
/// bound to them would move the template off the machine: an assignment of a variable to a
/// variable is not guarded), and gives `[__garrison_at, x]` for each `x` it gave. `None`
/// where that would change what it gives: some `input.parameters` stands outside the rule's
/// definitions (a helper rule or function reading it is evaluated once for all), a
/// definition is not a set rule whose body is in braces, or two edits overlap.
///
/// Each of `hoist` (comprehensions of `source` that read only the parameters,
/// [`parameter_terms`]) that stands in a definition's body is read from the input instead,
/// as `input.__garrison_parameter_terms[__garrison_at].<key>`, its value for that parameter
/// set, which the caller evaluates once per set; the others are left. Returns the edited
/// source and the terms read so, in order: the `i`-th has key `shared_key(i, term)`.
///
/// A pass whose key is undefined must give nothing, whatever the other sets give: regorus's
/// machine does so for `[__garrison_at, key]`, as OPA; its interpreter drops the rule's other
/// elements instead (`set_keys`), so the caller keeps a batch only on the machine.
///
/// The caller makes sure nothing else can read the parameters (`rego::split_batch`): no
/// library names them, no `with`, no `input` read whole, no variable named `input`.
pub(crate) fn batch_edits(
    ast: &Value,
    source: &str,
    rule: &str,
    hoist: &[SharedTerm],
) -> Option<(String, Vec<SharedTerm>)> {
    let mut definitions = vec![];
    let mut bodies = vec![];
    let mut edits = vec![];
    for r in ast["rules"].as_array().into_iter().flatten() {
        let (kind, body) = node(r)?;
        let head = match kind {
            "Spec" => &body["head"],
            _ => &body["refr"],
        };
        let named = match node(head) {
            Some((_, h)) if kind == "Spec" => head_ref(&h["refr"]).map(|(_, n)| n),
            _ => head_ref(head).map(|(_, n)| n),
        };
        if named != Some(rule) {
            continue;
        }
        // A default, a rule of one value, or a set rule without a key of its own.
        let Some(("Set", h)) = node(head).filter(|_| kind == "Spec") else {
            return None;
        };
        let Some(("Var", name)) = node(&h["refr"]) else {
            return None;
        };
        let key = set_key(span(h)?, span(name)?, source)?;
        edits.push((
            key.0,
            key.1,
            format!("[{BATCH_AT}, {}]", source.get(key.0..key.1)?),
        ));
        let [b] = body["bodies"].as_array()?.as_slice() else {
            return None;
        };
        let (open, close) = braced(b, source)?;
        let statements: Vec<(usize, usize)> = b["query"]["stmts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(span)
            .collect();
        definitions.push(span(body)?);
        bodies.push((open, close, statements));
    }
    if definitions.is_empty() {
        return None;
    }
    let within = |spans: &[(usize, usize)], at: (usize, usize)| {
        spans.iter().any(|d| d.0 <= at.0 && at.1 <= d.1)
    };
    let braces: Vec<(usize, usize)> = bodies.iter().map(|(o, c, _)| (*o, *c)).collect();
    let hoisted: Vec<SharedTerm> = hoist
        .iter()
        .filter(|t| within(&braces, t.at))
        .copied()
        .collect();
    for (i, t) in hoisted.iter().enumerate() {
        let key = shared_key(i, t);
        edits.push((
            t.at.0,
            t.at.1,
            format!("input.{BATCH_TERMS}[{BATCH_AT}].{key}"),
        ));
    }
    let mut parameters = vec![];
    parameter_refs(ast, &mut parameters);
    for at in parameters {
        if !within(&definitions, at) {
            return None;
        }
        // Inside a hoisted term, the term's value is read instead.
        if hoisted.iter().any(|t| t.at.0 <= at.0 && at.1 <= t.at.1) {
            continue;
        }
        edits.push((at.0, at.1, format!("input.{BATCH_INPUT}[{BATCH_AT}]")));
    }
    // Each body iterates over the sets from its first statement that reads them: the
    // statements before it are evaluated once for all sets.
    let read_at: Vec<usize> = edits.iter().map(|(start, _, _)| *start).collect();
    for (open, _, statements) in &bodies {
        let at = iteration_point(*open, statements, &read_at, source);
        edits.push((at, at, format!(" _ = input.{BATCH_INPUT}[{BATCH_AT}]; ")));
    }
    edits.sort_by_key(|(s, e, _)| (*s, *e));
    Some((apply_edits(source, edits).ok()?, hoisted))
}

/// Where a batch's body (its opening brace at `open`, its statements' spans `statements`)
/// starts to iterate over the parameter sets: before the first statement that holds one of
/// `reads` (where the parameters are read), when that statement starts a line or follows a
/// `;`; else at the body's start. A conjunction's value does not depend on the order of its
/// statements, so the place changes only how often the statements before it are evaluated
/// (regorus schedules statements in their order where their variables allow: one before the
/// point that needs a variable bound after it still runs for each set).
fn iteration_point(
    open: usize,
    statements: &[(usize, usize)],
    reads: &[usize],
    source: &str,
) -> usize {
    let first = statements
        .iter()
        .find(|(start, end)| reads.iter().any(|r| start <= r && r < end));
    match first {
        Some(&(start, _)) if start > open => {
            let before = source
                .get(open + 1..start)
                .map(|t| t.trim_end_matches([' ', '\t', '\r']));
            match before {
                Some(b) if b.is_empty() || b.ends_with(['\n', ';']) => start,
                _ => open + 1,
            }
        }
        _ => open + 1,
    }
}

/// `source` (a module, whose syntax tree is `ast`) with each set rule's key bound at the end
/// of its body (`set_keys`), for regorus's interpreter; `None` when no key needs it.
pub(crate) fn bind_set_keys(
    ast: &Value,
    source: &str,
    _package_rules: &HashSet<String>,
) -> Result<Option<String>, Unguarded> {
    let mut edits = vec![];
    set_keys(ast, source, &mut edits);
    if edits.is_empty() {
        return Ok(None);
    }
    edits.sort_by_key(|(s, e, _)| (*s, *e));
    apply_edits(source, edits).map(Some)
}

/// The variable a set rule's key is bound to at the end of its body (`set_keys`).
const SET_KEY: &str = "__garrison_key";

/// Edits that bind each set rule's key, where it is not a variable, at the end of its body:
/// `p[{"msg": m, "x": c.extra}] { ... }` becomes `p[__garrison_key] { ...
/// __garrison_key := ({"msg": m, "x": c.extra}) }`. In OPA a pass of the body whose key is
/// undefined gives no element; regorus's interpreter instead drops every element the
/// definition gave before it (or fails the evaluation), so one object without `extra` hid
/// the violations of all the others. The machine gives no element, as OPA; this is for the
/// interpreter's source alone (`rego::Program::assemble`). A key spanning lines, or holding a
/// comment or a raw string, is left as written (moving it would move the lines after it), as
/// are bodies without braces.
fn set_keys(ast: &Value, source: &str, edits: &mut Vec<Edit>) {
    for r in ast["rules"].as_array().into_iter().flatten() {
        let Some(("Spec", body)) = node(r) else {
            continue;
        };
        let Some(("Set", h)) = node(&body["head"]) else {
            continue;
        };
        let Some(("Var", name)) = node(&h["refr"]) else {
            continue;
        };
        if matches!(node(&h["key"]), Some(("Var", _)) | None) {
            continue;
        }
        let (Some(head), Some(name)) = (span(h), span(name)) else {
            continue;
        };
        let Some(key) = set_key(head, name, source) else {
            continue;
        };
        let Some(text) = source.get(key.0..key.1).and_then(movable) else {
            continue;
        };
        let bodies: Vec<&Value> = body["bodies"].as_array().into_iter().flatten().collect();
        let [only] = bodies.as_slice() else {
            continue;
        };
        let Some((_, close)) = braced(only, source) else {
            continue;
        };
        edits.push((key.0, key.1, SET_KEY.to_string()));
        edits.push(bind_at(close, source, SET_KEY, text));
    }
}

/// A key's text, when it can be moved into the body without moving the lines after it: on
/// one line, without a comment or a raw string.
fn movable(text: &str) -> Option<&str> {
    (!text.contains(['\n', '#', '`'])).then_some(text)
}

/// The byte offsets of a rule body's opening and closing braces, when it is written in braces
/// and holds statements (not a v1 `if` followed by one braced term).
fn braced(body: &Value, source: &str) -> Option<(usize, usize)> {
    let (start, end) = span(&body["query"])?;
    let bytes = source.as_bytes();
    if bytes.get(start) != Some(&b'{') || end == 0 || bytes.get(end - 1) != Some(&b'}') {
        return None;
    }
    let first = span(body["query"]["stmts"].as_array()?.first()?)?;
    (first.0 > start).then_some((start, end - 1))
}

/// The edit that binds `var` to `(key)` just before a body's closing brace at `close`: on the
/// brace's line when it has one of its own, else after a `;`.
fn bind_at(close: usize, source: &str, var: &str, key: &str) -> Edit {
    let before = source[..close].trim_end_matches([' ', '\t', '\r']);
    let sep = if before.ends_with('\n') || before.ends_with('{') {
        ""
    } else {
        "; "
    };
    (close, close, format!("{sep}{var} := ({key}) "))
}

/// The byte range of a set rule's key, read from the text of its head (`head`) after its name
/// (`name`): `name[key]` or `name contains key`. (regorus's span of an object key may start
/// at its last field.)
fn set_key(head: (usize, usize), name: (usize, usize), source: &str) -> Option<(usize, usize)> {
    let text = source.get(name.1..head.1)?;
    let lead = text.len() - text.trim_start().len();
    let rest = text.trim_start();
    let start = name.1 + lead;
    if let Some(inner) = rest.strip_prefix('[') {
        let inner = inner.trim_end().strip_suffix(']')?;
        return Some((start + 1, start + 1 + inner.len()));
    }
    let after = rest.strip_prefix("contains")?;
    if !after.starts_with(char::is_whitespace) {
        return None;
    }
    let key = after.trim_start();
    let key_start = head.1 - key.len();
    Some((key_start, key_start + key.trim_end().len()))
}

/// The spans of every `input.parameters` in a syntax tree.
fn parameter_refs(v: &Value, out: &mut Vec<(usize, usize)>) {
    if let Some(("RefDot", r)) = node(v)
        && matches!(node(&r["refr"]), Some(("Var", x)) if x["value"] == "input")
        && r["field"][1] == "parameters"
        && let Some(at) = span(r)
    {
        out.push(at);
        return;
    }
    match v {
        Value::Object(m) => m.values().for_each(|x| parameter_refs(x, out)),
        Value::Array(a) => a.iter().for_each(|x| parameter_refs(x, out)),
        _ => {}
    }
}
