//! JSON numbers read exactly, and read as a JavaScript server reads them.
//!
//! A JSON number is decimal text of any length. Python and Go read `18446744073709551617` and
//! `0.1000000000000000001` exactly (or refuse them); JavaScript, and any reader that goes
//! through a double, reads the nearest `f64`. toolgate compares under *both* readings: when
//! they agree the answer is certain, and when they disagree the readers of one message would
//! disagree, which the operators treat as "cannot be evaluated" (see `operators.rs`).
//!
//! serde_json is built with `arbitrary_precision`, so a [`serde_json::Number`] keeps the text
//! it was written with and nothing is lost before these functions see it.

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde_json::Number;

/// A decimal number, exactly: `(-1)^negative × digits × 10^exponent`, with `digits` free of
/// leading and trailing zeros (zero has no digits and is never negative), so every value has
/// exactly one representation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exact {
    negative: bool,
    digits: Vec<u8>,
    exponent: i64,
}

/// Exponents beyond this are refused rather than expanded (no JSON reader in practice keeps
/// them; the limit only bounds the work done on hostile text like `1e999999999999`).
const MAX_EXPONENT: i64 = 1_000_000;

impl Exact {
    /// Reads JSON number text (`-12.50e3`). Returns `None` for text that is not a JSON number
    /// or whose exponent is absurd.
    pub fn parse(text: &str) -> Option<Exact> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(i) => {
                let exp_text = &rest[i + 1..];
                let exp_text = exp_text.strip_prefix('+').unwrap_or(exp_text);
                if exp_text.is_empty() || exp_text.len() > 12 {
                    return None;
                }
                (&rest[..i], exp_text.parse::<i64>().ok()?)
            }
            None => (rest, 0),
        };
        let (int_part, frac_part) = match mantissa.split_once('.') {
            Some((i, f)) if !f.is_empty() => (i, f),
            Some(_) => return None,
            None => (mantissa, ""),
        };
        if int_part.is_empty()
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let mut digits: Vec<u8> = int_part.bytes().chain(frac_part.bytes()).collect();
        let mut exponent = exponent.checked_sub(i64::try_from(frac_part.len()).ok()?)?;
        let leading = digits.iter().take_while(|&&d| d == b'0').count();
        digits.drain(..leading);
        while digits.last() == Some(&b'0') {
            digits.pop();
            exponent += 1;
        }
        if digits.is_empty() {
            return Some(Exact {
                negative: false,
                digits,
                exponent: 0,
            });
        }
        if exponent.abs() > MAX_EXPONENT {
            return None;
        }
        Some(Exact {
            negative,
            digits,
            exponent,
        })
    }

    pub fn from_number(n: &Number) -> Option<Exact> {
        Exact::parse(n.as_str())
    }

    /// The position of the most significant digit (`123` → 3, `0.05` → -1).
    fn magnitude(&self) -> i64 {
        self.digits.len() as i64 + self.exponent
    }

    /// The unique text of this value: integers without a fraction or exponent (`5`, not
    /// `5.0` or `5e0`), short decimals in plain notation, the rest in scientific notation.
    pub fn canonical(&self) -> String {
        if self.digits.is_empty() {
            return "0".to_string();
        }
        let mut out = String::with_capacity(self.digits.len() + 8);
        if self.negative {
            out.push('-');
        }
        let digits = std::str::from_utf8(&self.digits).unwrap_or("0");
        let magnitude = self.magnitude();
        if self.exponent >= 0 && magnitude <= 40 {
            out.push_str(digits);
            out.extend(std::iter::repeat_n('0', self.exponent as usize));
        } else if self.exponent < 0 && magnitude > -20 && magnitude <= 40 {
            if magnitude > 0 {
                let (int, frac) = digits.split_at(magnitude as usize);
                let _ = write!(out, "{int}.{frac}");
            } else {
                out.push_str("0.");
                out.extend(std::iter::repeat_n('0', (-magnitude) as usize));
                out.push_str(digits);
            }
        } else {
            let (first, rest) = digits.split_at(1);
            out.push_str(first);
            if !rest.is_empty() {
                let _ = write!(out, ".{rest}");
            }
            let _ = write!(out, "e{}", magnitude - 1);
        }
        out
    }
}

impl Ord for Exact {
    fn cmp(&self, other: &Exact) -> Ordering {
        let sign = |e: &Exact| match (e.digits.is_empty(), e.negative) {
            (true, _) => 0,
            (false, true) => -1,
            (false, false) => 1,
        };
        let (a, b) = (sign(self), sign(other));
        if a != b || a == 0 {
            return a.cmp(&b);
        }
        // Same sign, both non-zero: compare magnitudes, then digits (no trailing zeros, so a
        // shorter digit string that is a prefix is the smaller).
        let by_size = self
            .magnitude()
            .cmp(&other.magnitude())
            .then_with(|| self.digits.cmp(&other.digits));
        if a < 0 {
            by_size.reverse()
        } else {
            by_size
        }
    }
}

impl PartialOrd for Exact {
    fn partial_cmp(&self, other: &Exact) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The number as a reader that goes through a double sees it (overflow is ±infinity, as
/// JavaScript reads it).
pub fn as_double(n: &Number) -> f64 {
    n.as_str().parse::<f64>().unwrap_or(f64::NAN)
}

/// The largest integer below which every integer is a double exactly.
const EXACT_IN_DOUBLE: u64 = 1 << 53;

/// The number as an integer that every reader reads alike (written as an integer, and small
/// enough for a double to hold exactly): the common case, compared without allocating.
pub fn as_plain_integer(n: &Number) -> Option<i64> {
    n.as_i64().filter(|i| i.unsigned_abs() <= EXACT_IN_DOUBLE)
}

/// How two numbers order under both readings; `None` when the readings disagree.
pub fn compare_both(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (as_plain_integer(a), as_plain_integer(b)) {
        return Some(x.cmp(&y));
    }
    let exact = Exact::from_number(a)?.cmp(&Exact::from_number(b)?);
    let double = as_double(a).partial_cmp(&as_double(b))?;
    (exact == double).then_some(exact)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn canonical(text: &str) -> String {
        Exact::parse(text).unwrap().canonical()
    }

    fn num(text: &str) -> Number {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn canonical_text_is_unique_per_value() {
        for (a, b) in [
            ("5", "5.0"),
            ("5", "5e0"),
            ("5", "0.5e1"),
            ("0", "-0.0"),
            ("1.5", "1.50"),
            ("100", "1e2"),
            ("-0.001", "-1e-3"),
        ] {
            assert_eq!(canonical(a), canonical(b), "{a} vs {b}");
        }
        assert_eq!(canonical("1e2"), "100");
        assert_eq!(canonical("-12.50"), "-12.5");
        assert_eq!(canonical("0.05"), "0.05");
        assert_eq!(canonical("1e300"), "1e300");
        assert_eq!(canonical("1.25e-30"), "1.25e-30");
        assert_eq!(
            canonical("18446744073709551617"),
            "18446744073709551617",
            "beyond 2^64 stays exact"
        );
        assert_ne!(canonical("9007199254740993"), canonical("9007199254740992"));
    }

    #[test]
    fn refuses_non_numbers_and_absurd_exponents() {
        for bad in [
            "",
            "-",
            "1.",
            ".5",
            "1e",
            "1e+",
            "abc",
            "1e99999999999999",
            "0x10",
        ] {
            assert!(Exact::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn orders_exactly() {
        let cmp = |a: &str, b: &str| Exact::parse(a).unwrap().cmp(&Exact::parse(b).unwrap());
        assert_eq!(
            cmp("18446744073709551617", "18446744073709551616"),
            Ordering::Greater
        );
        assert_eq!(cmp("0.1000000000000000001", "0.1"), Ordering::Greater);
        assert_eq!(cmp("-5", "-50"), Ordering::Greater);
        assert_eq!(cmp("-0.5", "0"), Ordering::Less);
        assert_eq!(cmp("12", "123"), Ordering::Less);
        assert_eq!(cmp("1e3", "999.999"), Ordering::Greater);
        assert_eq!(cmp("1e400", "1e399"), Ordering::Greater);
    }

    #[test]
    fn both_readings() {
        assert_eq!(
            compare_both(&num("5000"), &num("1000")),
            Some(Ordering::Greater)
        );
        // A double reads 2^64+1 as 2^64: the readings disagree.
        assert_eq!(
            compare_both(&num("18446744073709551617"), &num("18446744073709551616")),
            None
        );
    }
}
