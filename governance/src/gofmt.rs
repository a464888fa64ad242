//! OPA's `sprintf`: Go's `fmt.Sprintf` over the arguments as OPA hands them to it.
//!
//! OPA converts each element of the argument array before formatting: a number whose text is
//! an integer becomes a Go `int` (a `*big.Int` past 64 bits), any other number a `float64`, a
//! string a Go `string`, and anything else (arrays, objects, sets, booleans, `null`) the
//! string of its Rego text (`["a", 1]`, `{"k": 1}`, `set()`). Go's `fmt` then formats, and
//! never fails: a verb that does not fit its argument prints `%!d(string=abc)`, a verb
//! without an argument `%!v(MISSING)`, arguments left over `%!(EXTRA int=1, string=a)`.
//!
//! regorus's own `sprintf` reads flags as verbs (`%-10s` prints `10s`), and fails on others
//! (`%+d`, `%8.3f`, `%-5v`, `%#v`, `%d` of a fraction), which ends the rule and loses the
//! violation. Templates whose calls it would not format as Go does call this one instead
//! (`opa::rewrite`).
//!
//! Where this differs from Go: numbers are known by value, not by their text, so `2.0` is an
//! `int` here and a `float64` in OPA, and a fraction inside an array prints in its shortest
//! decimal form where OPA keeps the text it was given; a string inside an array is quoted as
//! Go quotes it, with unicode's printable characters approximated (controls, spaces other
//! than ` `, format characters, private use and noncharacters are escaped; unassigned code
//! points are not); and one call prints at most [`MAX_OUTPUT`] bytes, where Go has no limit.

use std::fmt::Write as _;

use num_bigint::BigInt;

/// An argument as Go's `fmt` receives it from OPA.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// An integer: Go's `int` within 64 bits, `*big.Int` past them.
    Int(BigInt),
    /// A number with a fraction: Go's `float64`.
    Float(f64),
    /// A string, or the Rego text of any other value.
    Str(String),
}

impl Arg {
    /// The argument OPA makes of `v`.
    pub fn of(v: &regorus::Value) -> Arg {
        match v {
            regorus::Value::Number(n) if n.is_integer() => match n.as_i64() {
                Some(i) => Arg::Int(BigInt::from(i)),
                None => match n.to_big() {
                    Ok(b) => Arg::Int((*b).clone()),
                    Err(_) => Arg::Float(n.as_f64().unwrap_or(f64::NAN)),
                },
            },
            regorus::Value::Number(n) => Arg::Float(n.as_f64().unwrap_or(f64::NAN)),
            regorus::Value::String(s) => Arg::Str(s.to_string()),
            other => Arg::Str(rego_text(other)),
        }
    }

    /// Go's name of the argument's type, as `%!` messages print it.
    fn type_name(&self) -> &'static str {
        match self {
            Arg::Int(i) if i64::try_from(i).is_ok() => "int",
            Arg::Int(_) => "*big.Int",
            Arg::Float(_) => "float64",
            Arg::Str(_) => "string",
        }
    }
}

/// The Rego text of `v`, as OPA's `String()` writes it: strings quoted as Go quotes them,
/// collections with `, ` between elements, objects' keys and sets' elements in order, and
/// the empty set `set()`. The writing stops once past [`MAX_OUTPUT`] (the text is then cut,
/// and no `sprintf` takes it): formatting runs outside an evaluation's memory budget.
pub fn rego_text(v: &regorus::Value) -> String {
    let mut out = String::with_capacity(32);
    write_rego(v, &mut out);
    out
}

fn write_rego(v: &regorus::Value, out: &mut String) {
    use regorus::Value as V;
    if out.len() > MAX_OUTPUT {
        return;
    }
    match v {
        V::Null => out.push_str("null"),
        V::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        V::Number(n) => match n.as_i64() {
            Some(i) if n.is_integer() => {
                let _ = write!(out, "{i}");
            }
            _ if n.is_integer() => out.push_str(&n.format_decimal()),
            _ => match n.as_f64() {
                Some(f) => {
                    let _ = write!(out, "{f}");
                }
                None => out.push_str(&n.format_decimal()),
            },
        },
        V::String(s) => quote_into(s, false, out),
        V::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_rego(x, out);
                if out.len() > MAX_OUTPUT {
                    return;
                }
            }
            out.push(']');
        }
        V::Set(s) if s.is_empty() => out.push_str("set()"),
        V::Set(s) => {
            out.push('{');
            for (i, x) in s.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_rego(x, out);
                if out.len() > MAX_OUTPUT {
                    return;
                }
            }
            out.push('}');
        }
        V::Object(o) => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_rego(k, out);
                out.push_str(": ");
                write_rego(x, out);
                if out.len() > MAX_OUTPUT {
                    return;
                }
            }
            out.push('}');
        }
        V::Undefined => out.push_str("undefined"),
    }
}

/// Whether Go's `strconv.IsPrint` holds for `c`, approximated without unicode's tables: not a
/// control, not a space other than ` `, not a format character, not for private use, not a
/// noncharacter (code points unassigned in unicode are taken as printable).
fn printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c,
            '\u{ad}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}'
            | '\u{890}'..='\u{891}' | '\u{8e2}' | '\u{180e}' | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206f}'
            | '\u{e000}'..='\u{f8ff}' | '\u{fdd0}'..='\u{fdef}' | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}' | '\u{fffe}'..='\u{ffff}' | '\u{110bd}' | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}' | '\u{1bca0}'..='\u{1bca3}' | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0001}' | '\u{e0020}'..='\u{e007f}' | '\u{f0000}'..='\u{10ffff}'))
}

/// `s` quoted as Go's `strconv.Quote` (`ascii`: `QuoteToASCII`) quotes it.
fn quote(s: &str, ascii: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    quote_into(s, ascii, &mut out);
    out
}

/// [`quote`], written at the end of `out`.
fn quote_into(s: &str, ascii: bool, out: &mut String) {
    out.push('"');
    // Printable ASCII but the quote and the backslash stands as it is: most strings are that.
    if s.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        out.push_str(s);
    } else {
        for c in s.chars() {
            escape(c, '"', ascii, out);
        }
    }
    out.push('"');
}

/// One character of a Go quoted literal delimited by `delim`.
fn escape(c: char, delim: char, ascii: bool, out: &mut String) {
    match c {
        c if c == delim || c == '\\' => {
            out.push('\\');
            out.push(c);
        }
        c if printable(c) && (!ascii || c.is_ascii()) => out.push(c),
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c == '\u{7f}' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if (c as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// Whether Go's `strconv.CanBackquote` holds: no backquote, no control but tab, no BOM.
fn can_backquote(s: &str) -> bool {
    s.chars().all(|c| {
        if c.len_utf8() > 1 {
            c != '\u{feff}'
        } else {
            (c >= ' ' || c == '\t') && c != '`' && c != '\u{7f}'
        }
    })
}

/// Past this, a width, precision or argument index is a number Go does not read (its
/// `tooLarge`).
const MAX_WIDTH: usize = 1_000_000;

/// The most bytes one call prints. Go has no such limit; past it the call fails (an
/// evaluation error, which fails the template closed) rather than filling the agent's memory:
/// a width of ten million characters is a few bytes of format.
pub const MAX_OUTPUT: usize = 1 << 20;

fn too_long(len: usize) -> Result<(), String> {
    if len > MAX_OUTPUT {
        Err(format!("sprintf: the result would pass {MAX_OUTPUT} bytes"))
    } else {
        Ok(())
    }
}

/// One verb's flags, width and precision, as Go's `fmt` keeps them.
#[derive(Debug, Default, Clone, Copy)]
struct Spec {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    /// `%+v`: the plus flag of a `v` verb.
    plus_v: bool,
    /// `%#v`: Go syntax.
    sharp_v: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// `format` formatted with `args`, as Go's `fmt.Sprintf` formats it (its `doPrintf`, verb by
/// verb); an error only past [`MAX_OUTPUT`].
pub fn sprintf(format: &str, args: &[Arg]) -> Result<String, String> {
    plain_sprintf(format, args).unwrap_or_else(|| sprintf_verbs(format, args))
}

/// [`sprintf`], reading every verb's flags, width, precision and index, even where the
/// format is of `%v` alone (public for the fuzz target that compares the two).
#[doc(hidden)]
pub fn sprintf_verbs(format: &str, args: &[Arg]) -> Result<String, String> {
    let chars: Vec<char> = format.chars().collect();
    let end = chars.len();
    let mut out = String::with_capacity(format.len() + 16 * args.len());
    let mut arg_num = 0usize;
    let mut reordered = false;
    let mut i = 0;
    while i < end {
        let literal = i;
        while i < end && chars[i] != '%' {
            i += 1;
        }
        out.extend(&chars[literal..i]);
        if i >= end {
            break;
        }
        i += 1;
        let mut spec = Spec::default();
        while i < end {
            match chars[i] {
                '#' => spec.sharp = true,
                // Zero padding is allowed only to the left.
                '0' => spec.zero = !spec.minus,
                '+' => spec.plus = true,
                '-' => {
                    spec.minus = true;
                    spec.zero = false;
                }
                ' ' => spec.space = true,
                _ => break,
            }
            i += 1;
        }
        let mut good = true;
        let mut index = |i: &mut usize, arg_num: &mut usize, good: &mut bool| -> bool {
            if chars.get(*i) != Some(&'[') {
                return false;
            }
            reordered = true;
            let (n, width, ok) = arg_index(&chars[*i..]);
            *i += width;
            match n {
                Some(n) if ok && n < args.len() => {
                    *arg_num = n;
                    true
                }
                _ => {
                    *good = false;
                    ok
                }
            }
        };
        let mut after_index = index(&mut i, &mut arg_num, &mut good);
        if i < end && chars[i] == '*' {
            i += 1;
            let (w, ok) = int_from_arg(args, &mut arg_num);
            if !ok {
                out.push_str("%!(BADWIDTH)");
            }
            if w < 0 {
                spec.minus = true;
                spec.zero = false;
            }
            spec.width = ok.then(|| w.unsigned_abs() as usize);
            after_index = false;
        } else {
            let (w, next) = parse_num(&chars, i, end);
            spec.width = w;
            i = next;
            if after_index && spec.width.is_some() {
                good = false;
            }
        }
        if i + 1 < end && chars[i] == '.' {
            i += 1;
            if after_index {
                good = false;
            }
            after_index = index(&mut i, &mut arg_num, &mut good);
            if i < end && chars[i] == '*' {
                i += 1;
                let (p, ok) = int_from_arg(args, &mut arg_num);
                spec.prec = (ok && p >= 0).then_some(p as usize);
                if spec.prec.is_none() {
                    out.push_str("%!(BADPREC)");
                }
                after_index = false;
            } else {
                let (p, next) = parse_num(&chars, i, end);
                spec.prec = Some(p.unwrap_or(0));
                i = next;
            }
        }
        if !after_index {
            index(&mut i, &mut arg_num, &mut good);
        }
        if i >= end {
            out.push_str("%!(NOVERB)");
            break;
        }
        let verb = chars[i];
        i += 1;
        if verb == '%' {
            out.push('%');
        } else if !good {
            let _ = write!(out, "%!{verb}(BADINDEX)");
        } else if let Some(arg) = args.get(arg_num) {
            // `%w` is `%v` to Sprintf, which wraps no error.
            if verb == 'v' || verb == 'w' {
                spec.sharp_v = std::mem::take(&mut spec.sharp);
                spec.plus_v = std::mem::take(&mut spec.plus);
            }
            format_arg(&mut out, arg, verb, spec)?;
            arg_num += 1;
        } else {
            let _ = write!(out, "%!{verb}(MISSING)");
        }
        too_long(out.len())?;
    }
    if !reordered && arg_num < args.len() {
        out.push_str("%!(EXTRA ");
        for (n, arg) in args[arg_num..].iter().enumerate() {
            if n > 0 {
                out.push_str(", ");
            }
            out.push_str(arg.type_name());
            out.push('=');
            format_arg(&mut out, arg, 'v', Spec::default())?;
            too_long(out.len())?;
        }
        out.push(')');
    }
    too_long(out.len())?;
    Ok(out)
}

/// The number of `%v` verbs of `format` when it has no other (`%%` aside), and no `%` ends it.
pub(crate) fn plain_verbs(format: &str) -> Option<usize> {
    let mut verbs = 0;
    let mut bytes = format.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            match bytes.next()? {
                b'%' => {}
                b'v' => verbs += 1,
                _ => return None,
            }
        }
    }
    Some(verbs)
}

/// [`sprintf`] of a format whose verbs are all `%v` (or `%%`), given as many arguments: each
/// argument as `%v` formats it alone, the text between as it is. `None` for any other format.
/// Most messages are made so; this spares them the reading of flags, widths and indices.
fn plain_sprintf(format: &str, args: &[Arg]) -> Option<Result<String, String>> {
    if plain_verbs(format)? != args.len() {
        return None;
    }
    let mut out = String::with_capacity(format.len() + 16 * args.len());
    let mut args = args.iter();
    let mut rest = format;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        if rest.as_bytes()[at + 1] == b'%' {
            out.push('%');
        } else if let Some(arg) = args.next()
            && let Err(e) = format_arg(&mut out, arg, 'v', Spec::default())
        {
            return Some(Err(e));
        }
        rest = &rest[at + 2..];
        if let Err(e) = too_long(out.len()) {
            return Some(Err(e));
        }
    }
    out.push_str(rest);
    Some(too_long(out.len()).map(|()| out))
}

/// An argument index `[n]` at the start of `s`: the argument (zero-based), how many characters
/// it takes, and whether it parsed (Go's `parseArgNumber`).
fn arg_index(s: &[char]) -> (Option<usize>, usize, bool) {
    if s.len() < 3 {
        return (None, 1, false);
    }
    match s.iter().position(|&c| c == ']') {
        Some(close) => match parse_num(s, 1, close) {
            (Some(n), next) if next == close => (n.checked_sub(1), close + 1, true),
            _ => (None, close + 1, false),
        },
        None => (None, 1, false),
    }
}

/// The decimal number at `chars[start..end]`, and where it ends (Go's `parsenum`): a number
/// that grows past [`MAX_WIDTH`] is no number, and ends the format's reading at `end`.
fn parse_num(chars: &[char], start: usize, end: usize) -> (Option<usize>, usize) {
    if start >= end {
        return (None, end);
    }
    let mut n: usize = 0;
    let mut i = start;
    while i < end {
        let Some(d) = chars[i].to_digit(10) else {
            break;
        };
        if n > MAX_WIDTH {
            return (None, end);
        }
        n = n * 10 + d as usize;
        i += 1;
    }
    ((i > start).then_some(n), i)
}

/// A width or precision given as an argument (`*`): Go reads an `int` of at most
/// [`MAX_WIDTH`], and moves past the argument when there is one.
fn int_from_arg(args: &[Arg], arg_num: &mut usize) -> (i64, bool) {
    let Some(arg) = args.get(*arg_num) else {
        return (0, false);
    };
    *arg_num += 1;
    match arg {
        Arg::Int(i) => match i64::try_from(i) {
            Ok(n) if n.unsigned_abs() <= MAX_WIDTH as u64 => (n, true),
            _ => (0, false),
        },
        _ => (0, false),
    }
}

fn format_arg(out: &mut String, arg: &Arg, verb: char, spec: Spec) -> Result<(), String> {
    // A precision is checked where it makes as many characters (it may cut, or be ignored).
    if spec.width.is_some_and(|w| w > MAX_OUTPUT) {
        return too_long(MAX_OUTPUT + 1);
    }
    if verb == 'T' {
        return format_str(out, arg.type_name(), 's', spec);
    }
    match arg {
        Arg::Int(i) if i64::try_from(i).is_ok() => format_int(out, i, verb, spec),
        Arg::Int(i) => format_big(out, i, verb, spec),
        Arg::Float(f) => format_float(out, *f, verb, spec),
        Arg::Str(s) => format_str(out, s, verb, spec),
    }
}

/// `body` padded to the width, on the left with spaces (zeros with `0`), or on the right with
/// spaces with `-` (Go's `pad`).
fn pad(out: &mut String, body: &str, spec: Spec) -> Result<(), String> {
    let len = body.chars().count();
    let fill = spec.width.map_or(0, |w| w.saturating_sub(len));
    too_long(out.len() + body.len() + fill)?;
    if spec.minus {
        out.push_str(body);
        out.extend(std::iter::repeat_n(' ', fill));
    } else {
        out.extend(std::iter::repeat_n(if spec.zero { '0' } else { ' ' }, fill));
        out.push_str(body);
    }
    Ok(())
}

/// `%!verb(type=value)`, Go's report of a verb that does not fit its argument; the value is
/// printed with the verb's flags, width and precision, as Go prints it.
fn bad_verb(out: &mut String, arg: &Arg, verb: char, spec: Spec) -> Result<(), String> {
    let _ = write!(out, "%!{verb}({}=", arg.type_name());
    format_arg(out, arg, 'v', spec)?;
    out.push(')');
    Ok(())
}

/// A Go `int` (Go's `fmtInteger`, `fmtC`, `fmtQc`, `fmtUnicode`).
fn format_int(out: &mut String, i: &BigInt, verb: char, spec: Spec) -> Result<(), String> {
    let (base, upper) = match verb {
        'd' | 'v' => (10, false),
        'b' => (2, false),
        'o' | 'O' => (8, false),
        'x' => (16, false),
        'X' => (16, true),
        'c' | 'q' | 'U' => {
            // Go converts to uint64: a negative number is past the last rune.
            let u = i64::try_from(i).map_or(u64::MAX, |n| n as u64);
            let c = u32::try_from(u)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{fffd}');
            let mut body = String::new();
            match verb {
                'c' => body.push(c),
                'q' => {
                    body.push('\'');
                    if c == '"' {
                        body.push(c);
                    } else {
                        escape(c, '\'', spec.plus, &mut body);
                    }
                    body.push('\'');
                }
                _ => {
                    let hex = format!("{u:X}");
                    let digits = spec.prec.filter(|p| *p > 4).unwrap_or(4);
                    body.push_str("U+");
                    body.extend(std::iter::repeat_n('0', digits.saturating_sub(hex.len())));
                    body.push_str(&hex);
                    too_long(out.len() + digits)?;
                    let point = u32::try_from(u).ok().and_then(char::from_u32);
                    if spec.sharp && point.is_some_and(printable) {
                        let _ = write!(body, " '{c}'");
                    }
                    return pad(
                        out,
                        &body,
                        Spec {
                            zero: false,
                            ..spec
                        },
                    );
                }
            }
            return pad(out, &body, spec);
        }
        _ => return bad_verb(out, &Arg::Int(i.clone()), verb, spec),
    };
    let negative = i.sign() == num_bigint::Sign::Minus;
    let mut digits = i.magnitude().to_str_radix(base);
    if upper {
        digits.make_ascii_uppercase();
    }
    // Two ways to ask for leading zeros: `%.3d`, or `%03d` without a precision.
    let least = match spec.prec {
        Some(0) if i.sign() == num_bigint::Sign::NoSign => {
            return pad(
                out,
                "",
                Spec {
                    zero: false,
                    ..spec
                },
            );
        }
        Some(p) => p,
        None if spec.zero && !spec.minus => spec.width.map_or(0, |w| {
            w.saturating_sub(usize::from(negative || spec.plus || spec.space))
        }),
        None => 0,
    };
    too_long(out.len() + least)?;
    let mut number = "0".repeat(least.saturating_sub(digits.len()));
    number.push_str(&digits);
    let mut prefix = String::new();
    if negative {
        prefix.push('-');
    } else if spec.plus {
        prefix.push('+');
    } else if spec.space {
        prefix.push(' ');
    }
    if verb == 'O' {
        prefix.push_str("0o");
    }
    if spec.sharp {
        match base {
            2 => prefix.push_str("0b"),
            8 if !number.starts_with('0') => prefix.push('0'),
            16 => prefix.push_str(if upper { "0X" } else { "0x" }),
            _ => {}
        }
    }
    prefix.push_str(&number);
    pad(
        out,
        &prefix,
        Spec {
            zero: false,
            ..spec
        },
    )
}

/// A Go `*big.Int`, which formats itself (its `Format`): no `%c`, `%q` or `%U`, and its own
/// report of a verb it does not take.
fn format_big(out: &mut String, i: &BigInt, verb: char, spec: Spec) -> Result<(), String> {
    let (base, upper) = match verb {
        'b' => (2, false),
        'o' | 'O' => (8, false),
        'd' | 's' | 'v' => (10, false),
        'x' => (16, false),
        'X' => (16, true),
        _ => {
            let _ = write!(out, "%!{verb}(big.Int={i})");
            return Ok(());
        }
    };
    // fmt's `Flag` answers for `%+v` and `%#v` as for `+` and `#`.
    let (plus, sharp) = (spec.plus || spec.plus_v, spec.sharp || spec.sharp_v);
    let sign = if i.sign() == num_bigint::Sign::Minus {
        "-"
    } else if plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    let prefix = match verb {
        'O' => "0o",
        'b' if sharp => "0b",
        'o' if sharp => "0",
        'x' if sharp => "0x",
        'X' if sharp => "0X",
        _ => "",
    };
    let mut digits = i.magnitude().to_str_radix(base);
    if upper {
        digits.make_ascii_uppercase();
    }
    let mut zeros = 0;
    if let Some(p) = spec.prec {
        if digits.len() < p {
            zeros = p - digits.len();
        } else if digits == "0" && p == 0 {
            return Ok(());
        }
    }
    let length = sign.len() + prefix.len() + zeros + digits.len();
    let (mut left, mut right) = (0, 0);
    if let Some(w) = spec.width.filter(|w| length < *w) {
        let d = w - length;
        if spec.minus {
            right = d;
        } else if spec.zero && spec.prec.is_none() {
            zeros = d;
        } else {
            left = d;
        }
    }
    too_long(out.len() + length + left + right + zeros)?;
    out.extend(std::iter::repeat_n(' ', left));
    out.push_str(sign);
    out.push_str(prefix);
    out.extend(std::iter::repeat_n('0', zeros));
    out.push_str(&digits);
    out.extend(std::iter::repeat_n(' ', right));
    Ok(())
}

/// A Go `string` (Go's `fmtString`: `fmtS`, `fmtQ`, `fmtSbx`).
fn format_str(out: &mut String, s: &str, verb: char, spec: Spec) -> Result<(), String> {
    // The precision cuts a string to as many characters (`%x`: bytes).
    let cut: std::borrow::Cow<'_, str> = match spec.prec {
        Some(p) => s.chars().take(p).collect(),
        None => s.into(),
    };
    match verb {
        'v' if spec.sharp_v => quoted(
            out,
            &cut,
            Spec {
                sharp: false,
                ..spec
            },
        ),
        's' | 'v' => pad(out, &cut, spec),
        'q' => quoted(out, &cut, spec),
        'x' | 'X' => {
            let bytes = &s.as_bytes()[..spec.prec.map_or(s.len(), |p| p.min(s.len()))];
            if bytes.is_empty() {
                return pad(out, "", spec);
            }
            let x = if verb == 'x' { "0x" } else { "0X" };
            let mut body = String::with_capacity(bytes.len() * 5);
            if spec.sharp {
                body.push_str(x);
            }
            for (n, b) in bytes.iter().enumerate() {
                if spec.space && n > 0 {
                    body.push(' ');
                    if spec.sharp {
                        body.push_str(x);
                    }
                }
                let _ = if verb == 'x' {
                    write!(body, "{b:02x}")
                } else {
                    write!(body, "{b:02X}")
                };
            }
            pad(out, &body, spec)
        }
        _ => bad_verb(out, &Arg::Str(s.to_string()), verb, spec),
    }
}

/// `%q` of a string: backquoted with `#` where Go can, else quoted (`+`: ASCII only).
fn quoted(out: &mut String, s: &str, spec: Spec) -> Result<(), String> {
    if spec.sharp && can_backquote(s) {
        return pad(out, &format!("`{s}`"), spec);
    }
    pad(out, &quote(s, spec.plus), spec)
}

/// A Go `float64` (Go's `fmtFloat`, with `strconv.AppendFloat`).
fn format_float(out: &mut String, f: f64, verb: char, spec: Spec) -> Result<(), String> {
    let (kind, default_prec) = match verb {
        'v' => ('g', None),
        'b' | 'g' | 'G' | 'x' | 'X' => (verb, None),
        'e' | 'E' | 'f' | 'F' => (verb, Some(6)),
        _ => return bad_verb(out, &Arg::Float(f), verb, spec),
    };
    let prec = spec.prec.or(default_prec);
    let sign = if f.is_sign_negative() {
        '-'
    } else if spec.plus {
        '+'
    } else if spec.space {
        ' '
    } else {
        '+'
    };
    if !f.is_finite() {
        // strconv writes `+Inf`, `-Inf` and `NaN`; fmt keeps the sign of an infinity, and
        // gives NaN one only when asked.
        let body = match (f.is_nan(), f.is_sign_negative()) {
            (true, _) if spec.plus => "+NaN",
            (true, _) if spec.space => " NaN",
            (true, _) => "NaN",
            (false, true) => "-Inf",
            (false, false) if spec.space && !spec.plus => " Inf",
            (false, false) => "+Inf",
        };
        return pad(
            out,
            body,
            Spec {
                zero: false,
                ..spec
            },
        );
    }
    if matches!(kind, 'e' | 'E' | 'f' | 'F' | 'x' | 'X') || spec.sharp {
        too_long(out.len() + prec.unwrap_or(0))?;
    }
    let a = f.abs();
    let mut num = match kind {
        'e' | 'E' => exponent_form(a, prec.unwrap_or(6), kind == 'E'),
        'f' | 'F' => fixed_form(a, prec.unwrap_or(6)),
        'g' | 'G' => general_form(a, prec, kind == 'G'),
        'x' | 'X' => hex_form(a, prec, kind == 'X'),
        _ => binary_form(a),
    };
    if spec.sharp && kind != 'b' {
        num = with_point(&num, kind, prec);
    }
    let show_sign = spec.plus || sign != '+';
    let len = num.chars().count() + usize::from(show_sign);
    if spec.zero && !spec.minus && spec.width.is_some_and(|w| w > len) {
        let zeros = spec.width.unwrap_or(0) - len;
        too_long(out.len() + zeros + len)?;
        if show_sign {
            out.push(sign);
        }
        out.extend(std::iter::repeat_n('0', zeros));
        out.push_str(&num);
        return Ok(());
    }
    if show_sign {
        num.insert(0, sign);
    }
    pad(out, &num, spec)
}

/// Go's `#` on a float: a decimal point always, and for `%g` (and `%x`) the trailing zeros up
/// to the precision (6 when none is given).
fn with_point(num: &str, kind: char, prec: Option<usize>) -> String {
    let mut digits: i64 = match kind {
        'g' | 'G' | 'x' => prec.map_or(6, |p| p as i64),
        _ => 0,
    };
    let (mut body, tail) = match num.find(|c: char| {
        matches!(c, 'p' | 'P') || (matches!(c, 'e' | 'E') && !matches!(kind, 'x' | 'X'))
    }) {
        Some(at) => (num[..at].to_string(), num[at..].to_string()),
        None => (num.to_string(), String::new()),
    };
    let mut point = false;
    let mut nonzero = false;
    for c in body.chars() {
        if c == '.' {
            point = true;
        } else {
            nonzero |= c != '0';
            if nonzero {
                digits -= 1;
            }
        }
    }
    if !point {
        // A leading 0 counts once.
        if body == "0" {
            digits -= 1;
        }
        body.push('.');
    }
    while digits > 0 {
        body.push('0');
        digits -= 1;
    }
    body + &tail
}

/// Digits after the point past which a `float64`'s exact decimal expansion has only zeros (it
/// has at most 1074), and below Rust's limit on a formatting precision.
const EXACT_DIGITS: usize = 1100;

/// `f` with `prec` digits after the point, exactly rounded (`%f`).
fn fixed_form(f: f64, prec: usize) -> String {
    let mut s = format!("{f:.*}", prec.min(EXACT_DIGITS));
    s.extend(std::iter::repeat_n('0', prec.saturating_sub(EXACT_DIGITS)));
    s
}

/// `f` (not negative) as Go's `%e` writes it: `1.234560e+03`.
fn exponent_form(f: f64, prec: usize, upper: bool) -> String {
    let rust = format!("{f:.*e}", prec.min(EXACT_DIGITS));
    let (mantissa, exp) = rust.split_once('e').unwrap_or((&rust, "0"));
    let zeros = "0".repeat(prec.saturating_sub(EXACT_DIGITS));
    go_exponent(&format!("{mantissa}{zeros}e{exp}"), upper)
}

/// Rust's exponent form (`1.5e3`, `1e-7`) in Go's (`1.5e+03`, `1e-07`).
fn go_exponent(rust: &str, upper: bool) -> String {
    let (mantissa, exp) = rust.split_once('e').unwrap_or((rust, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let e = if upper { 'E' } else { 'e' };
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}{e}{sign}{:02}", exp.abs())
}

/// `f` (not negative) as Go's `%g` writes it with precision `prec` (`None`: the fewest digits
/// that read back as `f`): the exponent form when the exponent is below -4 or at least the
/// precision (6 for the fewest digits), the plain form otherwise, without trailing zeros.
fn general_form(f: f64, prec: Option<usize>, upper: bool) -> String {
    let rust = match prec {
        None => format!("{f:e}"),
        // Trailing zeros go: digits past the exact expansion change nothing.
        Some(p) => format!("{f:.*e}", (p.max(1) - 1).min(EXACT_DIGITS)),
    };
    let (mantissa, exp) = rust.split_once('e').unwrap_or((&rust, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let eprec = match prec {
        None => 6,
        Some(p) => {
            let p = p.max(1) as i64;
            let nd = digits.len() as i64;
            if p > nd && nd > exp { nd } else { p }
        }
    };
    if exp < -4 || exp >= eprec {
        let mut m = digits[..1].to_string();
        if digits.len() > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        return go_exponent(&format!("{m}e{exp}"), upper);
    }
    // The plain form: the point after exp + 1 digits.
    if exp < 0 {
        let zeros = "0".repeat(usize::try_from(-exp - 1).unwrap_or(0));
        format!("0.{zeros}{digits}")
    } else {
        let point = usize::try_from(exp + 1).unwrap_or(0);
        if digits.len() <= point {
            format!("{digits}{}", "0".repeat(point - digits.len()))
        } else {
            format!("{}.{}", &digits[..point], &digits[point..])
        }
    }
}

/// `f` (not negative, finite) as Go's `%b` writes it: `4503599627370496p-52`.
fn binary_form(f: f64) -> String {
    let bits = f.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i64;
    let mut mant = bits & ((1 << 52) - 1);
    let exp = if biased == 0 {
        -1074
    } else {
        mant |= 1 << 52;
        biased - 1075
    };
    format!("{mant}p{}{}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

/// `f` (not negative, finite) as Go's `%x` writes it: `0x1.8p+00`; `prec` hexadecimal digits
/// after the point, rounded to even (`None`: as many as it takes).
fn hex_form(f: f64, prec: Option<usize>, upper: bool) -> String {
    let bits = f.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i64;
    let mut mant = bits & ((1 << 52) - 1);
    let mut exp = if biased == 0 {
        -1022
    } else {
        mant |= 1 << 52;
        biased - 1023
    };
    if mant == 0 {
        exp = 0;
    }
    // The leading 1, if any, at bit 60.
    mant <<= 8;
    while mant != 0 && mant & (1 << 60) == 0 {
        mant <<= 1;
        exp -= 1;
    }
    if let Some(p) = prec.filter(|p| *p < 15) {
        let shift = (p * 4) as u32;
        let extra = mant.wrapping_shl(shift) & ((1 << 60) - 1);
        mant >>= 60 - shift;
        if extra | (mant & 1) > 1 << 59 {
            mant += 1;
        }
        mant <<= 60 - shift;
        if mant & (1 << 61) != 0 {
            mant >>= 1;
            exp += 1;
        }
    }
    let hex: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut out = String::from(if upper { "0X" } else { "0x" });
    out.push(if (mant >> 60) & 1 == 1 { '1' } else { '0' });
    mant <<= 4;
    match prec {
        None if mant != 0 => {
            out.push('.');
            while mant != 0 {
                out.push(char::from(hex[((mant >> 60) & 15) as usize]));
                mant <<= 4;
            }
        }
        Some(p) if p > 0 => {
            out.push('.');
            for _ in 0..p {
                out.push(char::from(hex[((mant >> 60) & 15) as usize]));
                mant <<= 4;
            }
        }
        _ => {}
    }
    out.push(if upper { 'P' } else { 'p' });
    out.push(if exp < 0 { '-' } else { '+' });
    let _ = write!(out, "{:02}", exp.abs());
    out
}

#[cfg(test)]
mod tests {
    /// A value's text stops once past the output limit, so a huge argument costs no more than
    /// the limit, and its `sprintf` fails as any output past it does.
    #[test]
    fn a_huge_argument_is_written_only_to_the_limit() {
        let big: std::collections::BTreeSet<regorus::Value> = (0..200_000)
            .map(|i| regorus::Value::from(format!("element-{i:08}")))
            .collect();
        let text = rego_text(&regorus::Value::from(big.clone()));
        assert!(
            text.len() > MAX_OUTPUT && text.len() < MAX_OUTPUT + 64,
            "{}",
            text.len()
        );
        assert!(text.starts_with("{\"element-00000000\", \"element-00000001\""));
        let arg = [Arg::of(&regorus::Value::from(big))];
        assert!(sprintf("%v", &arg).unwrap_err().contains("would pass"));
        // A precision cuts it as it would cut the whole text.
        assert_eq!(sprintf("%.12v", &arg).unwrap(), "{\"element-00");
    }

    /// The path for formats of `%v` alone gives what the reading of every verb gives.
    #[test]
    fn plain_formats_read_as_every_verb_is_read() {
        let set = regorus::Value::from(std::collections::BTreeSet::from([
            regorus::Value::from("a\"b"),
            regorus::Value::from("é\u{1}"),
        ]));
        let args = [
            Arg::Str("x".into()),
            Arg::Int(BigInt::from(-7)),
            Arg::Float(1e21),
            Arg::Float(0.5),
            Arg::of(&set),
            Arg::of(&regorus::Value::new_set()),
            Arg::Str("ünï %v".into()),
        ];
        let formats = [
            "", "%v", "%v%v", "a %v b", "100%% %v", "%v%%", "%%", "é %v ü", "%v %v %v",
        ];
        for format in formats {
            for n in 0..=3 {
                for start in 0..args.len() - n {
                    let a = &args[start..start + n];
                    let general = sprintf_verbs(format, a);
                    assert_eq!(sprintf(format, a), general, "{format:?} {a:?}");
                    if format.matches("%v").count() == n {
                        assert!(plain_sprintf(format, a).is_some(), "{format:?}");
                    }
                }
            }
        }
        // Not plain: another verb, a verb missing or one too many, a `%` at the end.
        for (format, n) in [("%s", 1), ("%v", 0), ("%v", 2), ("a %", 0), ("%-v", 1)] {
            assert!(plain_sprintf(format, &args[..n]).is_none(), "{format:?}");
        }
        assert_eq!(quote("plain text", false), "\"plain text\"");
        assert_eq!(quote("a\"b\\c\u{1}", false), "\"a\\\"b\\\\c\\x01\"");
    }

    use super::*;

    fn int(i: i64) -> Arg {
        Arg::Int(BigInt::from(i))
    }

    fn s(x: &str) -> Arg {
        Arg::Str(x.into())
    }

    fn go(format: &str, args: &[Arg]) -> String {
        sprintf(format, args).unwrap()
    }

    /// Each line is what Go's `fmt.Sprintf` prints for the same format and arguments.
    #[test]
    fn formats_as_go_does() {
        let cases: Vec<(&str, Vec<Arg>, &str)> = vec![
            ("%v and %s", vec![s("a"), s("b")], "a and b"),
            ("%-10s|", vec![s("x")], "x         |"),
            ("%10v|", vec![s("ab")], "        ab|"),
            ("%.2s|%3s|", vec![s("abcdef"), s("abcdef")], "ab|abcdef|"),
            (
                "%q %+q %#q",
                vec![s("a\"é\n"), s("é"), s("x")],
                "\"a\\\"é\\n\" \"\\u00e9\" `x`",
            ),
            (
                "%x % X %#x",
                vec![s("hi"), s("hi"), s("hi")],
                "6869 68 69 0x6869",
            ),
            (
                "%d %5d| %-5d| %05d %+d % d",
                vec![int(42), int(42), int(42), int(42), int(5), int(5)],
                "42    42| 42   | 00042 +5  5",
            ),
            (
                "%05d %+05d %.3d %8.3d|",
                vec![int(-42), int(42), int(7), int(-7)],
                "-0042 +0042 007     -007|",
            ),
            (
                "%x %X %#x %o %#o %O %b %#b",
                vec![
                    int(255),
                    int(255),
                    int(255),
                    int(8),
                    int(8),
                    int(8),
                    int(5),
                    int(5),
                ],
                "ff FF 0xff 10 010 0o10 101 0b101",
            ),
            (
                "%c %q %U %#U",
                vec![int(65), int(65), int(0x1F600), int(65)],
                "A 'A' U+1F600 U+0041 'A'",
            ),
            ("%.0d|%5.0d|", vec![int(0), int(0)], "|     |"),
            (
                "%v %.2f %8.3f| %-8.2f| %08.3f %+.1f",
                vec![
                    Arg::Float(1.5),
                    Arg::Float(3.14259),
                    Arg::Float(3.14259),
                    Arg::Float(2.5),
                    Arg::Float(-3.14259),
                    Arg::Float(2.0),
                ],
                "1.5 3.14    3.143| 2.50    | -003.143 +2.0",
            ),
            (
                "%e %E %.2e %g %G",
                vec![
                    Arg::Float(1234.5678),
                    Arg::Float(0.000123),
                    Arg::Float(1234.5678),
                    Arg::Float(1234.5678),
                    Arg::Float(1e-7),
                ],
                "1.234568e+03 1.230000E-04 1.23e+03 1234.5678 1E-07",
            ),
            (
                "%v %v %v %v %v",
                vec![
                    Arg::Float(1234567.5),
                    Arg::Float(123456.5),
                    Arg::Float(0.0001),
                    Arg::Float(0.00001),
                    Arg::Float(1e21),
                ],
                "1.2345675e+06 123456.5 0.0001 1e-05 1e+21",
            ),
            (
                "%.3g %.3g %.10g %g",
                vec![
                    Arg::Float(1234.5678),
                    Arg::Float(0.00012345),
                    Arg::Float(1.5),
                    Arg::Float(100.0),
                ],
                "1.23e+03 0.000123 1.5 100",
            ),
            ("%b", vec![Arg::Float(1.0)], "4503599627370496p-52"),
            ("%v", vec![Arg::Float(-0.5)], "-0.5"),
            // What does not fit.
            (
                "%d|%s|%t",
                vec![s("a"), int(1), s("true")],
                "%!d(string=a)|%!s(int=1)|%!t(string=true)",
            ),
            (
                "%d %f",
                vec![Arg::Float(1.5), int(2)],
                "%!d(float64=1.5) %!f(int=2)",
            ),
            (
                "%v of %v, 100%% of %d",
                vec![s("x")],
                "x of %!v(MISSING), 100% of %!d(MISSING)",
            ),
            (
                "%v",
                vec![s("x"), int(1), Arg::Float(0.5)],
                "x%!(EXTRA int=1, float64=0.5)",
            ),
            ("end %", vec![], "end %!(NOVERB)"),
            ("%[2]v %[1]v %v", vec![s("a"), s("b")], "b a b"),
            ("%[3]v", vec![s("a")], "%!v(BADINDEX)"),
            (
                "%*d|%-*d|",
                vec![int(4), int(7), int(3), int(8)],
                "   7|8  |",
            ),
            ("%.*f", vec![int(1), Arg::Float(2.25)], "2.2"),
            ("%*d", vec![s("x"), int(1)], "%!(BADWIDTH)1"),
            ("%99999999999d|", vec![int(1)], "%!(NOVERB)%!(EXTRA int=1)"),
        ];
        for (format, args, want) in cases {
            assert_eq!(go(format, &args), want, "{format}");
        }
    }

    #[test]
    fn big_integers_format_as_go_formats_a_big_int() {
        let big: BigInt = "100000000000000000000000".parse().unwrap();
        assert_eq!(
            go("%v %x", &[Arg::Int(big.clone()), Arg::Int(big.clone())]),
            "100000000000000000000000 152d02c7e14af6800000"
        );
        assert_eq!(
            go("%c", &[Arg::Int(big.clone())]),
            "%!c(big.Int=100000000000000000000000)"
        );
        assert_eq!(
            go("", &[Arg::Int(big)]),
            "%!(EXTRA *big.Int=100000000000000000000000)"
        );
    }

    #[test]
    fn other_values_are_their_rego_text() {
        let v = regorus::Value::from_json_str(r#"{"b": [1, "x\u007f", null, true, 1.5], "a": {}}"#)
            .unwrap();
        assert_eq!(
            Arg::of(&v),
            Arg::Str(r#"{"a": {}, "b": [1, "x\x7f", null, true, 1.5]}"#.into())
        );
        assert_eq!(rego_text(&regorus::Value::new_set()), "set()");
        assert_eq!(Arg::of(&regorus::Value::from(2)), int(2));
        assert_eq!(Arg::of(&regorus::Value::from(2.5)), Arg::Float(2.5));
        assert_eq!(Arg::of(&regorus::Value::from("s")), s("s"));
    }

    /// What a review of the first version found Go to print otherwise.
    #[test]
    fn flags_indexes_and_verbs_as_go_reads_them() {
        let f = Arg::Float;
        let cases: Vec<(&str, Vec<Arg>, &str)> = vec![
            ("%+v %+v %#v", vec![int(5), f(1.5), int(5)], "5 1.5 5"),
            (
                "%05s|%08q|%03c",
                vec![s("abc"), s("abc"), int(65)],
                "00abc|000\"abc\"|00A",
            ),
            (
                "%5d|%.2f",
                vec![s("a"), int(2)],
                "%!d(string=    a)|%!f(int=02)",
            ),
            (
                "%[1]5d %[1].2f",
                vec![int(1)],
                "%!d(BADINDEX) %!f(BADINDEX)",
            ),
            ("%[1][2]d", vec![int(1), int(2)], "%![(int=1)2]d"),
            ("%[+1]v", vec![int(1)], "%!v(BADINDEX)"),
            ("x%.", vec![], "x%!.(MISSING)"),
            (
                "%T %T %10T|",
                vec![int(1), s("a"), f(0.5)],
                "int string    float64|",
            ),
            (
                "%U %.6U %#O",
                vec![int(-1), int(65), int(8)],
                "U+FFFFFFFFFFFFFFFF U+000041 0o010",
            ),
            ("%.1x|%.2s", vec![s("日本語"), s("日本語")], "e6|日本"),
            (
                "%#.0f %#g %#.0e %#v",
                vec![f(1.0), f(1.1), f(1.0), f(1.0)],
                "1. 1.10000 1.e+00 1",
            ),
            (
                "%x %X %.2x %x %x",
                vec![f(1.5), f(1.0), f(1.0 / 3.0), f(0.0), f(-2.5)],
                "0x1.8p+00 0X1P+00 0x1.55p-02 0x0p+00 -0x1.4p+01",
            ),
            (
                "% d|% .1f|%+q",
                vec![int(3), f(2.25), s("é")],
                " 3| 2.2|\"\\u00e9\"",
            ),
            (
                "%#q|%#q|%q",
                vec![s("a\tb"), s("a`b"), int(39)],
                "`a\tb`|\"a`b\"|'\\''",
            ),
        ];
        for (format, args, want) in cases {
            assert_eq!(go(format, &args), want, "{format}");
        }
        let big: BigInt = "-100000000000000000000000".parse().unwrap();
        assert_eq!(
            go("%+v|%30d|", &[Arg::Int(-big.clone()), Arg::Int(big)]),
            "+100000000000000000000000|     -100000000000000000000000|"
        );
    }

    /// Precisions past Rust's formatting limit (65,535), found by fuzzing: the digits past a
    /// `float64`'s exact expansion are zeros.
    #[test]
    fn precisions_past_rusts_limit_print_their_zeros() {
        let out = go(
            "%.99999f|%.70000e|%.70000g|%.70000U",
            &[Arg::Float(0.5), Arg::Float(0.5), Arg::Float(0.5), int(65)],
        );
        let parts: Vec<&str> = out.split('|').collect();
        assert_eq!(parts[0].len(), 2 + 99_999);
        assert!(parts[0].starts_with("0.5000") && parts[0].ends_with('0'));
        assert_eq!(parts[1].len(), 2 + 70_000 + 4);
        assert!(parts[1].ends_with("0e-01"));
        assert_eq!(parts[2], "0.5");
        assert_eq!(parts[3].len(), 2 + 70_000);
        assert!(parts[3].ends_with("041"));
    }

    /// What a second review found: `%w` moves flags as `%v` does, `%#U` quotes only a
    /// printable code point, infinities keep their sign, and a large precision that prints
    /// nothing of its size is no error.
    #[test]
    fn a_second_reading_of_gos_fmt() {
        let f = Arg::Float;
        assert_eq!(
            go("%#w|%+w|%+w", &[s("a"), int(5), f(1.5)]),
            "%!w(string=\"a\")|%!w(int=5)|%!w(float64=1.5)"
        );
        assert_eq!(go("%#U|%#U", &[int(0xd800), int(65)]), "U+D800|U+0041 'A'");
        assert_eq!(
            go(
                "%f|%v|% v|%+f|%v",
                &[
                    f(f64::INFINITY),
                    f(f64::NEG_INFINITY),
                    f(f64::INFINITY),
                    f(f64::NAN),
                    f(-f64::NAN)
                ]
            ),
            "+Inf|-Inf| Inf|+NaN|NaN"
        );
        assert_eq!(
            go(
                "%.5000000s|%.5000000g|%.5000000q",
                &[s("abc"), f(0.5), s("a")]
            ),
            "abc|0.5|\"a\""
        );
        assert!(sprintf("%.5000000f", &[f(0.5)]).is_err());
    }

    /// A few bytes of format may ask for a width of millions: past [`MAX_OUTPUT`] the call
    /// fails, as an evaluation past its memory limit does.
    #[test]
    fn output_past_the_limit_is_an_error() {
        assert!(
            sprintf("%9999999d", &[int(1)])
                .unwrap_err()
                .contains("would pass")
        );
        let many = "%999999d".repeat(3);
        assert!(sprintf(&many, &[int(1), int(2), int(3)]).is_err());
        assert_eq!(sprintf("%999999d", &[int(1)]).unwrap().len(), 999_999);
        // Text after the last verb counts too.
        let tail = format!("%1048000d{}", "x".repeat(1000));
        assert!(sprintf(&tail, &[int(1)]).is_err());
    }
}
