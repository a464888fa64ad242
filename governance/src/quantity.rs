//! Kubernetes resource quantities (`1.5Gi`, `200m`, `3e6`), as the apiserver's
//! `resource.ParseQuantity` reads them, for CEL's Kubernetes `quantity` library
//! ([`crate::cel`]).
//!
//! A quantity is a signed decimal number with a suffix: binary SI (`Ki` … `Ei`, powers of
//! 1024), decimal SI (`n`, `u`, `m`, none, `k`, `M`, `G`, `T`, `P`, `E`) or a decimal exponent
//! (`e6`, `E-3`). What Kubernetes does, and Garrison with it:
//!
//! - a value more precise than a nano-unit is rounded up, away from zero (`0.1n` is `1n`);
//! - a binary-SI value is capped at 2^63 − 1;
//! - a quantity is kept either as a 64-bit integer times a power of ten (when it fits, and has
//!   no binary suffix with a fraction) or as an arbitrary-precision decimal; only the first can
//!   be an integer (`isInteger`, `asInteger`), so `quantity("1.0").isInteger()` is false, as in
//!   Kubernetes;
//! - sums stay integers while they fit, and comparisons are exact whatever the form.
//!
//! Where Garrison is stricter, it errs (so a CEL validation fails closed):
//! - a number needs a digit (`Mi` alone is an error, as the Kubernetes CEL library documents);
//! - a quantity of more than [`MAX_LEN`] characters past its sign and leading zeros, or with
//!   an exponent beyond ±[`MAX_EXPONENT`], is refused rather than expanded. Kubernetes takes
//!   it, so it is [`QuantityError::Refused`], not malformed: `isQuantity` cannot say no to it
//!   either, and fails.

use std::cmp::Ordering;

use num_bigint::BigInt;
use num_traits::Zero;

/// Longest quantity text read.
pub const MAX_LEN: usize = 256;
/// Largest decimal exponent (`e…` or implied by a suffix) read.
pub const MAX_EXPONENT: i64 = 1000;

/// The error Kubernetes gives for a quantity of the wrong shape.
const FORMAT_WRONG: &str = "quantities must match the regular expression \
                            '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
const SUFFIX_WRONG: &str = "unable to parse quantity's suffix";

/// Why a text is not a quantity here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// It is not a quantity, for Kubernetes either.
    #[error("{0}")]
    Malformed(String),
    /// Kubernetes would read it, but it is beyond what Garrison expands.
    #[error("{0}")]
    Refused(String),
}

/// A parsed quantity.
#[derive(Debug, Clone)]
pub enum Quantity {
    /// `value` × 10^`exp`, in 64 bits.
    Scaled {
        /// The digits.
        value: i64,
        /// The power of ten.
        exp: i32,
    },
    /// `value` × 10^`exp`, of any size.
    Decimal {
        /// The digits.
        value: BigInt,
        /// The power of ten.
        exp: i32,
    },
}

/// How the suffix scales the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suffix {
    /// × 10^n: decimal SI or a decimal exponent.
    Decimal(i64),
    /// × 2^n: binary SI.
    Binary(u32),
}

fn suffix(s: &str) -> Result<Suffix, QuantityError> {
    let named = match s {
        "n" => Some(Suffix::Decimal(-9)),
        "u" => Some(Suffix::Decimal(-6)),
        "m" => Some(Suffix::Decimal(-3)),
        "" => Some(Suffix::Decimal(0)),
        "k" => Some(Suffix::Decimal(3)),
        "M" => Some(Suffix::Decimal(6)),
        "G" => Some(Suffix::Decimal(9)),
        "T" => Some(Suffix::Decimal(12)),
        "P" => Some(Suffix::Decimal(15)),
        "E" => Some(Suffix::Decimal(18)),
        "Ki" => Some(Suffix::Binary(10)),
        "Mi" => Some(Suffix::Binary(20)),
        "Gi" => Some(Suffix::Binary(30)),
        "Ti" => Some(Suffix::Binary(40)),
        "Pi" => Some(Suffix::Binary(50)),
        "Ei" => Some(Suffix::Binary(60)),
        _ => None,
    };
    if let Some(named) = named {
        return Ok(named);
    }
    let exponent = s
        .strip_prefix(['e', 'E'])
        .filter(|rest| !rest.is_empty())
        .and_then(|rest| rest.parse::<i64>().ok())
        .ok_or_else(|| QuantityError::Malformed(SUFFIX_WRONG.into()))?;
    if exponent.abs() > MAX_EXPONENT {
        return Err(QuantityError::Refused(format!(
            "the quantity's exponent {exponent} is beyond ±{MAX_EXPONENT}"
        )));
    }
    Ok(Suffix::Decimal(exponent))
}

fn pow10(n: u32) -> BigInt {
    num_traits::pow(BigInt::from(10), n as usize)
}

/// `value` × 10^`from` as a multiple of 10^`to` (`to` ≤ `from`).
fn rescale(value: BigInt, from: i32, to: i32) -> BigInt {
    value * pow10(from.abs_diff(to))
}

impl Quantity {
    /// Reads `s` as Kubernetes does (see the module's documentation for where Garrison is
    /// stricter). The error is one line, Kubernetes' own where it has one.
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        let malformed = |m: &str| QuantityError::Malformed(m.into());
        if s.is_empty() {
            return Err(malformed(FORMAT_WRONG));
        }
        if s.trim_start_matches(['+', '-'])
            .trim_start_matches('0')
            .len()
            > MAX_LEN
        {
            return Err(QuantityError::Refused(format!(
                "a quantity is at most {MAX_LEN} characters past its sign and leading zeros"
            )));
        }
        let b = s.as_bytes();
        let mut pos = 0;
        let negative = match b[0] {
            b'-' => {
                pos = 1;
                true
            }
            b'+' => {
                pos = 1;
                false
            }
            _ => false,
        };
        let digits =
            |from: usize| from + b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
        let int_end = digits(pos);
        let mut int = s[pos..int_end].trim_start_matches('0');
        let (frac, number_end) = if b.get(int_end) == Some(&b'.') {
            let end = digits(int_end + 1);
            (&s[int_end + 1..end], end)
        } else {
            ("", int_end)
        };
        if int_end == pos && frac.is_empty() {
            return Err(malformed(FORMAT_WRONG));
        }
        // The suffix: letters, then an optional sign and digits, to the end.
        let rest = &s[number_end..];
        let letters = rest
            .bytes()
            .take_while(|c| b"eEinumkKMGTP".contains(c))
            .count();
        let tail = rest[letters..]
            .strip_prefix(['+', '-'])
            .unwrap_or(&rest[letters..]);
        if !tail.bytes().all(|c| c.is_ascii_digit()) {
            return Err(malformed(FORMAT_WRONG));
        }
        let suffix = suffix(rest)?;
        if int.is_empty() {
            int = "0";
        }
        // Small enough for 64 bits, as Kubernetes keeps it.
        let digit_count = int.len() + frac.len();
        let fast = match suffix {
            Suffix::Decimal(e) => 18 >= digit_count as i64 && e - frac.len() as i64 >= -9,
            Suffix::Binary(e) => frac.is_empty() && 15 > int.len() as i64 + i64::from(e) * 3 / 10,
        };
        if fast {
            let shifted: i64 = format!("{int}{frac}")
                .parse()
                .map_err(|_| malformed("unable to parse numeric part of quantity"))?;
            let (mantissa, exp) = match suffix {
                Suffix::Decimal(e) => (1i64, e - frac.len() as i64),
                Suffix::Binary(e) => (1i64 << e, 0),
            };
            if let (Some(v), Ok(exp)) = (shifted.checked_mul(mantissa), i32::try_from(exp)) {
                let value = if negative { -v } else { v };
                return Ok(Quantity::Scaled { value, exp });
            }
        }
        // Any size: the digits scaled by the suffix, rounded up to a nano-unit.
        let digits: BigInt = format!("{int}{frac}")
            .parse()
            .map_err(|_| malformed("unable to parse numeric part of quantity"))?;
        let mut exp = -(frac.len() as i64);
        let mut value = match suffix {
            Suffix::Decimal(e) => {
                exp += e;
                digits
            }
            Suffix::Binary(e) => digits << e,
        };
        // `exp` is within ±(MAX_LEN + MAX_EXPONENT).
        let mut exp = exp as i32;
        if !value.is_zero() {
            if exp < -9 {
                let divisor = pow10((-9 - exp) as u32);
                let (q, r) = (&value / &divisor, &value % &divisor);
                value = if r.is_zero() { q } else { q + 1 };
            } else {
                value = rescale(value, exp, -9);
            }
            exp = -9;
        }
        if matches!(suffix, Suffix::Binary(_)) && value > rescale(BigInt::from(i64::MAX), 0, exp) {
            value = BigInt::from(i64::MAX);
            exp = 0;
        }
        if negative {
            value = -value;
        }
        Ok(Quantity::Decimal { value, exp })
    }

    /// The value as an exact decimal: digits × 10^exp.
    fn exact(&self) -> (BigInt, i32) {
        match self {
            Quantity::Scaled { value, exp } => (BigInt::from(*value), *exp),
            Quantity::Decimal { value, exp } => (value.clone(), *exp),
        }
    }

    /// Both values as multiples of the same power of ten.
    fn aligned(&self, other: &Quantity) -> (BigInt, BigInt, i32) {
        let ((a, ae), (b, be)) = (self.exact(), other.exact());
        let exp = ae.min(be);
        (rescale(a, ae, exp), rescale(b, be, exp), exp)
    }

    /// -1, 0 or 1 as the quantity is below, at or above zero.
    pub fn sign(&self) -> i64 {
        match self {
            Quantity::Scaled { value, .. } => value.signum(),
            Quantity::Decimal { value, .. } => match value.sign() {
                num_bigint::Sign::Minus => -1,
                num_bigint::Sign::NoSign => 0,
                num_bigint::Sign::Plus => 1,
            },
        }
    }

    /// The value as a 64-bit integer, when the quantity is held as one (see the module's
    /// documentation) and it fits.
    pub fn as_integer(&self) -> Option<i64> {
        match *self {
            Quantity::Scaled { value: 0, exp } if exp >= 0 => Some(0),
            Quantity::Scaled { value, exp } if exp >= 0 => u32::try_from(exp)
                .ok()
                .and_then(|e| 10i64.checked_pow(e))
                .and_then(|f| value.checked_mul(f)),
            _ => None,
        }
    }

    /// The nearest double (±infinity beyond its range).
    pub fn as_approximate_float(&self) -> f64 {
        let (value, exp) = self.exact();
        format!("{value}e{exp}").parse().unwrap_or(f64::NAN)
    }

    /// `self + other`: an integer while both are and the sum fits, as Kubernetes adds.
    pub fn add(&self, other: &Quantity) -> Quantity {
        if let (Quantity::Scaled { value: a, exp: ae }, Quantity::Scaled { value: b, exp: be }) =
            (self, other)
        {
            if *b == 0 {
                return self.clone();
            }
            if *a == 0 {
                return other.clone();
            }
            let exp = (*ae).min(*be);
            let scaled = |v: i64, e: i32| {
                u32::try_from(e - exp)
                    .ok()
                    .and_then(|d| 10i64.checked_pow(d))
                    .and_then(|f| v.checked_mul(f))
            };
            if let Some(value) = scaled(*a, *ae)
                .zip(scaled(*b, *be))
                .and_then(|(a, b)| a.checked_add(b))
            {
                return Quantity::Scaled { value, exp };
            }
        }
        let (a, b, exp) = self.aligned(other);
        Quantity::Decimal { value: a + b, exp }
    }

    /// `self - other`.
    pub fn sub(&self, other: &Quantity) -> Quantity {
        let negated = match other {
            Quantity::Scaled { value, exp } => match value.checked_neg() {
                Some(value) => Quantity::Scaled { value, exp: *exp },
                None => Quantity::Decimal {
                    value: -BigInt::from(*value),
                    exp: *exp,
                },
            },
            Quantity::Decimal { value, exp } => Quantity::Decimal {
                value: -value,
                exp: *exp,
            },
        };
        self.add(&negated)
    }

    /// The integer `n` as a quantity.
    pub fn from_int(n: i64) -> Quantity {
        Quantity::Scaled { value: n, exp: 0 }
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b, _) = self.aligned(other);
        a.cmp(&b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn quantities_read_as_kubernetes_reads_them() {
        for (a, b) in [
            ("200M", "0.2G"),
            ("1Ki", "1024"),
            ("1.5Gi", "1610612736"),
            ("1e3", "1k"),
            ("1E3", "1000"),
            ("100m", "0.1"),
            ("0.1n", "1n"),
            ("-0.1n", "-1n"),
            ("1.", "1"),
            (".5", "500m"),
            ("+7", "7"),
            ("-000", "0"),
            ("8Ei", "9223372036854775807"),
            ("50000000G", "5e16"),
        ] {
            assert_eq!(q(a), q(b), "{a} = {b}");
        }
        assert!(q("50M") < q("50Mi"));
        assert!(q("150Mi") > q("100Mi"));
        assert!(q("-1") < q("0"));
        assert!(q("9999999999999999999999999999999999999G") > q("8Ei"));
    }

    #[test]
    fn malformed_quantities_are_one_line_errors() {
        for bad in [
            "",
            "200K",
            "Three",
            "Mi",
            "1,3G",
            "1.1.M",
            "1+1.0M",
            "0.1mi",
            "1e",
            "1e+",
            "1e3k",
            "1 Ki",
            "++1",
            "1-",
            "0x10",
            "Inf",
            "NaN",
            "-",
            "+",
            ".",
            "1ki",
            "1KiB",
            "1Zi",
            "1e99999999999999999999",
        ] {
            let e = Quantity::parse(bad).expect_err(bad);
            assert!(matches!(e, QuantityError::Malformed(_)), "{bad}: {e:?}");
            assert!(!e.to_string().contains('\n'), "{bad}: {e}");
        }
        // What Kubernetes reads but Garrison will not expand is refused, not malformed.
        for refused in [
            "1e1001".to_string(),
            "1e-1001".into(),
            "1".repeat(MAX_LEN + 1),
        ] {
            let e = Quantity::parse(&refused).expect_err(&refused);
            assert!(matches!(e, QuantityError::Refused(_)), "{refused}: {e:?}");
        }
        // Leading zeros do not count against the length.
        assert_eq!(q(&format!("{}2Gi", "0".repeat(MAX_LEN))), q("2Gi"));
        // Within the limits, large and tiny values are exact.
        assert_eq!(q("1e1000").sign(), 1);
        assert_eq!(q("1e-1000"), q("1n"));
    }

    #[test]
    fn integers_are_the_quantities_kubernetes_holds_as_integers() {
        assert_eq!(q("50k").as_integer(), Some(50_000));
        assert_eq!(q("50000000G").as_integer(), Some(50_000_000_000_000_000));
        assert_eq!(q("2Gi").as_integer(), Some(2 << 30));
        assert_eq!(q("0").as_integer(), Some(0));
        // Kubernetes keeps these as decimals or with a fraction's scale: not integers.
        for not in [
            "9999999999999999999999999999999999999G",
            "1.0",
            "1000m",
            "1.5Gi",
            "0.5",
        ] {
            assert_eq!(q(not).as_integer(), None, "{not}");
        }
        assert_eq!(
            q("50k").sub(&Quantity::from_int(20_000)).as_integer(),
            Some(30_000)
        );
        assert_eq!(q("1e100").as_integer(), None);
        assert_eq!(q("0e1000").as_integer(), Some(0));
    }

    #[test]
    fn sums_and_differences_are_exact() {
        assert_eq!(q("50k").add(&q("20k")), q("70k"));
        assert_eq!(q("50k").add(&Quantity::from_int(20)), q("50020"));
        assert_eq!(q("50k").sub(&q("20k")), q("30k"));
        assert_eq!(
            q("50k")
                .add(&Quantity::from_int(20))
                .sub(&q("100k"))
                .sub(&Quantity::from_int(-50_000)),
            q("20")
        );
        let big = Quantity::from_int(i64::MAX).add(&Quantity::from_int(1));
        assert!(matches!(big, Quantity::Decimal { .. }));
        assert_eq!(
            big.sub(&Quantity::from_int(1)),
            Quantity::from_int(i64::MAX)
        );
        assert_eq!(
            Quantity::from_int(i64::MIN)
                .sub(&Quantity::from_int(i64::MIN))
                .sign(),
            0
        );
        assert_eq!(q("1.5Gi").as_approximate_float(), 1610612736.0);
        assert_eq!(q("-2m").sign(), -1);
        assert_eq!(q("1e1000").as_approximate_float(), f64::INFINITY);
    }
}
