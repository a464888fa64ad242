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
//! than ` `, and format characters are escaped); `%x` and `%X` of a `float64` are refused
//! with an error, not formatted.

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
/// the empty set `set()`.
pub fn rego_text(v: &regorus::Value) -> String {
    let mut out = String::new();
    write_rego(v, &mut out);
    out
}

fn write_rego(v: &regorus::Value, out: &mut String) {
    use regorus::Value as V;
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
        V::String(s) => out.push_str(&quote(s, false)),
        V::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_rego(x, out);
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
            }
            out.push('}');
        }
        V::Undefined => out.push_str("undefined"),
    }
}

/// Whether Go's `strconv.IsPrint` holds for `c`, approximated: not a control, not a space
/// other than ` `, not a format character.
fn printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
        || ('\u{e000}'..='\u{f8ff}').contains(&c))
}

/// `s` quoted as Go's `strconv.Quote` (`ascii`: `QuoteToASCII`) quotes it.
fn quote(s: &str, ascii: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
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
    out.push('"');
    out
}

/// The most a width or a precision may be, as in Go (a larger one is ignored).
const MAX_WIDTH: usize = 1_000_000;

/// One verb's flags, width and precision.
#[derive(Debug, Default, Clone, Copy)]
struct Spec {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// `format` formatted with `args`, as Go's `fmt.Sprintf` formats it; an error only for what
/// Garrison does not format (`%x` of a `float64`).
pub fn sprintf(format: &str, args: &[Arg]) -> Result<String, String> {
    let chars: Vec<char> = format.chars().collect();
    let mut out = String::with_capacity(format.len() + 16 * args.len());
    let mut next = 0usize;
    let mut reordered = false;
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '%' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        i += 1;
        let mut spec = Spec::default();
        while let Some(&c) = chars.get(i) {
            match c {
                '#' => spec.sharp = true,
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
        let mut good_index = true;
        // An argument's index, `[n]`, before the width, the precision or the verb.
        let mut index = |i: &mut usize, next: &mut usize, good: &mut bool| {
            if chars.get(*i) != Some(&'[') {
                return;
            }
            reordered = true;
            let close = chars[*i..].iter().position(|&c| c == ']');
            let parsed = close.and_then(|c| {
                let digits: String = chars[*i + 1..*i + c].iter().collect();
                digits.parse::<usize>().ok().map(|n| (n, c))
            });
            match parsed {
                Some((n, c)) if n >= 1 && n <= args.len() => {
                    *next = n - 1;
                    *i += c + 1;
                }
                Some((_, c)) => {
                    *good = false;
                    *i += c + 1;
                }
                None => {
                    *good = false;
                    *i += close.map_or(1, |c| c + 1);
                }
            }
        };
        index(&mut i, &mut next, &mut good_index);
        if chars.get(i) == Some(&'*') {
            i += 1;
            match args.get(next).and_then(int_of) {
                Some(w) => {
                    if w < 0 {
                        spec.minus = true;
                        spec.zero = false;
                    }
                    let w = w.unsigned_abs();
                    spec.width = usize::try_from(w).ok().filter(|w| *w <= MAX_WIDTH);
                    if spec.width.is_none() {
                        out.push_str("%!(BADWIDTH)");
                    }
                }
                None => out.push_str("%!(BADWIDTH)"),
            }
            next += 1;
        } else {
            let (w, after) = number(&chars, i);
            spec.width = w;
            i = after;
        }
        if chars.get(i) == Some(&'.') {
            i += 1;
            index(&mut i, &mut next, &mut good_index);
            if chars.get(i) == Some(&'*') {
                i += 1;
                match args.get(next).and_then(int_of) {
                    Some(p) if p >= 0 => {
                        spec.prec = usize::try_from(p).ok().filter(|p| *p <= MAX_WIDTH);
                        if spec.prec.is_none() {
                            out.push_str("%!(BADPREC)");
                        }
                    }
                    _ => out.push_str("%!(BADPREC)"),
                }
                next += 1;
            } else {
                let (p, after) = number(&chars, i);
                spec.prec = Some(p.unwrap_or(0));
                i = after;
            }
        }
        index(&mut i, &mut next, &mut good_index);
        let Some(&verb) = chars.get(i) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += 1;
        if verb == '%' {
            out.push('%');
        } else if !good_index {
            let _ = write!(out, "%!{verb}(BADINDEX)");
        } else if let Some(arg) = args.get(next) {
            format_arg(&mut out, arg, verb, spec)?;
            next += 1;
        } else {
            let _ = write!(out, "%!{verb}(MISSING)");
        }
    }
    if !reordered && next < args.len() {
        out.push_str("%!(EXTRA ");
        for (n, arg) in args[next..].iter().enumerate() {
            if n > 0 {
                out.push_str(", ");
            }
            out.push_str(arg.type_name());
            out.push('=');
            format_arg(&mut out, arg, 'v', Spec::default())?;
        }
        out.push(')');
    }
    Ok(out)
}

/// The decimal number at `chars[i..]`, and where it ends. As in Go, a number that grows past
/// [`MAX_WIDTH`] ends the format there (what follows prints `%!(NOVERB)`).
fn number(chars: &[char], mut i: usize) -> (Option<usize>, usize) {
    let start = i;
    let mut n: usize = 0;
    while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
        if n > MAX_WIDTH {
            return (None, chars.len());
        }
        n = n * 10 + d as usize;
        i += 1;
    }
    ((i > start).then_some(n), i)
}

fn int_of(arg: &Arg) -> Option<i64> {
    match arg {
        Arg::Int(i) => i64::try_from(i).ok(),
        _ => None,
    }
}

fn format_arg(out: &mut String, arg: &Arg, verb: char, spec: Spec) -> Result<(), String> {
    match arg {
        Arg::Int(i) => format_int(out, i, verb, spec),
        Arg::Float(f) => format_float(out, *f, verb, spec)?,
        Arg::Str(s) => format_str(out, s, verb, spec),
    }
    Ok(())
}

/// `body` padded to the width with spaces, on the left unless `-`.
fn pad(out: &mut String, body: &str, spec: Spec) {
    let len = body.chars().count();
    let fill = spec.width.map_or(0, |w| w.saturating_sub(len));
    if spec.minus {
        out.push_str(body);
        out.extend(std::iter::repeat_n(' ', fill));
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(body);
    }
}

/// `%!verb(type=value)`, Go's report of a verb that does not fit its argument.
fn bad_verb(out: &mut String, arg: &Arg, verb: char) {
    let _ = write!(out, "%!{verb}({}=", arg.type_name());
    let _ = format_arg(out, arg, 'v', Spec::default());
    out.push(')');
}

fn format_int(out: &mut String, i: &BigInt, verb: char, spec: Spec) {
    let big = i64::try_from(i).is_err();
    let (base, upper) = match verb {
        'd' | 'v' => (10, false),
        's' if big => (10, false),
        'b' => (2, false),
        'o' | 'O' => (8, false),
        'x' => (16, false),
        'X' => (16, true),
        'c' | 'q' | 'U' if !big => {
            let code = u32::try_from(i).ok();
            let c = code.and_then(char::from_u32).unwrap_or('\u{fffd}');
            let body = match verb {
                'c' => c.to_string(),
                'q' => quote_rune(c, spec),
                _ => {
                    let mut u = format!("U+{:04X}", code.unwrap_or(0xfffd));
                    if spec.sharp && printable(c) {
                        let _ = write!(u, " '{c}'");
                    }
                    u
                }
            };
            pad(out, &body, spec);
            return;
        }
        _ if big => {
            let _ = write!(out, "%!{verb}(big.Int={i})");
            return;
        }
        _ => {
            bad_verb(out, &Arg::Int(i.clone()), verb);
            return;
        }
    };
    let negative = i.sign() == num_bigint::Sign::Minus;
    let mut digits = i.magnitude().to_str_radix(base);
    if upper {
        digits.make_ascii_uppercase();
    }
    let zero_value = i.sign() == num_bigint::Sign::NoSign;
    // The precision is the least number of digits; zero with a precision of zero prints none.
    let least = match spec.prec {
        Some(0) if zero_value => {
            pad(out, "", spec);
            return;
        }
        Some(p) => p,
        None if spec.zero && !spec.minus => spec.width.map_or(0, |w| {
            w.saturating_sub(usize::from(negative || spec.plus || spec.space))
        }),
        None => 0,
    };
    let mut body = String::new();
    if negative {
        body.push('-');
    } else if spec.plus {
        body.push('+');
    } else if spec.space {
        body.push(' ');
    }
    match (verb, base) {
        ('O', _) => body.push_str("0o"),
        (_, 16) if spec.sharp => body.push_str(if upper { "0X" } else { "0x" }),
        (_, 2) if spec.sharp => body.push_str("0b"),
        (_, 8) if spec.sharp && least <= digits.len() && !digits.starts_with('0') => body.push('0'),
        _ => {}
    }
    body.extend(std::iter::repeat_n('0', least.saturating_sub(digits.len())));
    body.push_str(&digits);
    pad(out, &body, spec);
}

/// A rune quoted as Go's `%q` quotes it: `'a'`.
fn quote_rune(c: char, spec: Spec) -> String {
    let quoted = match c {
        '\'' => "\\'".to_string(),
        '"' => "\"".to_string(),
        c => {
            let q = quote(&c.to_string(), spec.plus);
            q[1..q.len() - 1].to_string()
        }
    };
    format!("'{quoted}'")
}

fn format_str(out: &mut String, s: &str, verb: char, spec: Spec) {
    // The precision cuts the string to as many characters.
    let cut: String;
    let s = match spec.prec {
        Some(p) => {
            cut = s.chars().take(p).collect();
            cut.as_str()
        }
        None => s,
    };
    match verb {
        's' | 'v' if !(verb == 'v' && spec.sharp) => pad(out, s, spec),
        'v' | 'q' => {
            let body = if spec.sharp
                && verb == 'q'
                && !s.contains('`')
                && s.chars().all(|c| c == '\t' || printable(c))
            {
                format!("`{s}`")
            } else {
                quote(s, spec.plus && verb == 'q')
            };
            pad(out, &body, spec);
        }
        'x' | 'X' => {
            let mut body = String::new();
            for (n, b) in s.bytes().enumerate() {
                if spec.space && n > 0 {
                    body.push(' ');
                }
                if spec.sharp && (spec.space || n == 0) {
                    body.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                let _ = if verb == 'x' {
                    write!(body, "{b:02x}")
                } else {
                    write!(body, "{b:02X}")
                };
            }
            pad(out, &body, spec);
        }
        _ => bad_verb(out, &Arg::Str(s.to_string()), verb),
    }
}

fn format_float(out: &mut String, f: f64, verb: char, spec: Spec) -> Result<(), String> {
    if !f.is_finite() {
        let body = if f.is_nan() {
            "NaN"
        } else if f > 0.0 {
            if spec.plus { "+Inf" } else { "Inf" }
        } else {
            "-Inf"
        };
        pad(out, body, spec);
        return Ok(());
    }
    let magnitude = match verb {
        'e' | 'E' => exponent_form(f.abs(), spec.prec.unwrap_or(6), verb == 'E'),
        'f' | 'F' => format!("{:.*}", spec.prec.unwrap_or(6), f.abs()),
        'g' | 'G' | 'v' => general_form(f.abs(), spec.prec, verb == 'G'),
        'b' => {
            let bits = f.abs().to_bits();
            let exp = ((bits >> 52) & 0x7ff) as i64;
            let mut mant = bits & ((1 << 52) - 1);
            let exp = if exp == 0 {
                -1074
            } else {
                mant |= 1 << 52;
                exp - 1075
            };
            format!("{mant}p{}{}", if exp < 0 { '-' } else { '+' }, exp.abs())
        }
        'x' | 'X' => {
            return Err(format!(
                "sprintf: %{verb} of a number with a fraction ({f}) is not supported"
            ));
        }
        _ => {
            bad_verb(out, &Arg::Float(f), verb);
            return Ok(());
        }
    };
    let sign = if f.is_sign_negative() {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    if spec.zero && !spec.minus {
        let len = sign.len() + magnitude.chars().count();
        let zeros = spec.width.map_or(0, |w| w.saturating_sub(len));
        out.push_str(sign);
        out.extend(std::iter::repeat_n('0', zeros));
        out.push_str(&magnitude);
    } else {
        pad(out, &format!("{sign}{magnitude}"), spec);
    }
    Ok(())
}

/// `f` (not negative) as Go's `%e` writes it: `1.234560e+03`.
fn exponent_form(f: f64, prec: usize, upper: bool) -> String {
    let rust = format!("{f:.prec$e}");
    go_exponent(&rust, upper)
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
        Some(p) => format!("{f:.*e}", p.max(1) - 1),
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

#[cfg(test)]
mod tests {
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

    #[test]
    fn a_hexadecimal_fraction_is_an_error_not_a_guess() {
        assert!(
            sprintf("%x", &[Arg::Float(1.5)])
                .unwrap_err()
                .contains("not supported")
        );
    }
}
