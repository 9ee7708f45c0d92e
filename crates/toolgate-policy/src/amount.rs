//! Exact decimal amounts for counters: call counts and spend.
//!
//! Counters hold fixed-point decimals with six fractional digits in an `i64`
//! (`Amount(1_000_000)` is 1). That is exact for every amount a policy or an argument
//! writes with up to six decimals (cents, and far beyond), adds without rounding in every
//! store (SQLite integers, Redis `INCRBY`), and never goes near a float. An amount with more
//! precision than that, or out of range, is refused rather than truncated.

use std::fmt;

use serde::{Serialize, Serializer};

/// Fractional digits an amount keeps.
pub const SCALE_DIGITS: u32 = 6;
const SCALE: i64 = 10i64.pow(SCALE_DIGITS);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(i64);

/// Why a number cannot be an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("{0:?} is not a decimal number")]
    NotANumber(String),
    #[error("{0} has more than {SCALE_DIGITS} decimal places")]
    TooPrecise(String),
    #[error("{0} is too large")]
    OutOfRange(String),
}

impl Amount {
    pub const ZERO: Amount = Amount(0);
    pub const ONE: Amount = Amount(SCALE);
    /// The smallest step between two amounts.
    pub const EPSILON: Amount = Amount(1);

    pub fn from_units(units: i64) -> Option<Amount> {
        units.checked_mul(SCALE).map(Amount)
    }

    /// The raw fixed-point value (millionths), as stores keep it.
    pub fn to_micros(self) -> i64 {
        self.0
    }

    pub fn from_micros(micros: i64) -> Amount {
        Amount(micros)
    }

    pub fn is_integer(self) -> bool {
        self.0 % SCALE == 0
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    pub fn saturating_add(self, other: Amount) -> Amount {
        Amount(self.0.saturating_add(other.0))
    }

    /// Parses decimal text: `12`, `-3.25`, `1e3`, `2.5E-2`.
    pub fn parse(text: &str) -> Result<Amount, AmountError> {
        let invalid = || AmountError::NotANumber(text.to_string());
        let (mantissa, exponent) = match text.find(['e', 'E']) {
            Some(i) => {
                let exp: i32 = text[i + 1..].parse().map_err(|_| invalid())?;
                (&text[..i], exp)
            }
            None => (text, 0),
        };
        let (negative, digits) = match mantissa.as_bytes().first() {
            Some(b'-') => (true, &mantissa[1..]),
            Some(b'+') => (false, &mantissa[1..]),
            _ => (false, mantissa),
        };
        let (int_part, frac_part) = match digits.split_once('.') {
            Some((i, f)) => (i, f),
            None => (digits, ""),
        };
        if int_part.is_empty() && frac_part.is_empty()
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(invalid());
        }
        // All significant digits as one integer, and where the decimal point sits.
        let all_digits = format!("{int_part}{frac_part}");
        let all_digits = all_digits.trim_start_matches('0');
        let point_shift = exponent as i64 - frac_part.len() as i64 + SCALE_DIGITS as i64;
        let trimmed = all_digits.trim_end_matches('0');
        let trailing_zeros = (all_digits.len() - trimmed.len()) as i64;
        let shift = point_shift + trailing_zeros;
        if trimmed.is_empty() {
            return Ok(Amount::ZERO);
        }
        if shift < 0 {
            return Err(AmountError::TooPrecise(text.to_string()));
        }
        if trimmed.len() as i64 + shift > 19 {
            return Err(AmountError::OutOfRange(text.to_string()));
        }
        let base: i64 = trimmed
            .parse()
            .map_err(|_| AmountError::OutOfRange(text.to_string()))?;
        let value = 10i64
            .checked_pow(shift as u32)
            .and_then(|p| base.checked_mul(p))
            .ok_or_else(|| AmountError::OutOfRange(text.to_string()))?;
        Ok(Amount(if negative { -value } else { value }))
    }

    /// Reads a JSON number exactly. Floats are read through their shortest round-trip
    /// text, which is the decimal the sender wrote for any value with ≤ 15 significant digits.
    pub fn from_json_number(number: &serde_json::Number) -> Result<Amount, AmountError> {
        if let Some(i) = number.as_i64() {
            return Amount::from_units(i).ok_or_else(|| AmountError::OutOfRange(i.to_string()));
        }
        if let Some(u) = number.as_u64() {
            return Err(AmountError::OutOfRange(u.to_string()));
        }
        Amount::parse(&number.to_string())
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let int = abs / SCALE as u64;
        let frac = abs % SCALE as u64;
        if frac == 0 {
            write!(f, "{sign}{int}")
        } else {
            let frac = format!("{frac:06}");
            write!(f, "{sign}{int}.{}", frac.trim_end_matches('0'))
        }
    }
}

/// Serialized as a JSON number when it is an integer, else as a decimal string, so that
/// JSON readers never see a rounded float.
impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.is_integer() {
            serializer.serialize_i64(self.0 / SCALE)
        } else {
            serializer.collect_str(self)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_decimal_forms_exactly() {
        assert_eq!(Amount::parse("12").unwrap(), Amount(12_000_000));
        assert_eq!(Amount::parse("-3.25").unwrap(), Amount(-3_250_000));
        assert_eq!(Amount::parse("1e3").unwrap(), Amount(1_000_000_000));
        assert_eq!(Amount::parse("2.5E-2").unwrap(), Amount(25_000));
        assert_eq!(Amount::parse("0.000001").unwrap(), Amount(1));
        assert_eq!(Amount::parse("0.10").unwrap(), Amount(100_000));
        assert_eq!(Amount::parse("000").unwrap(), Amount::ZERO);
        assert_eq!(Amount::parse("1.").unwrap(), Amount::ONE);
    }

    #[test]
    fn refuses_what_it_cannot_hold_exactly() {
        assert!(matches!(
            Amount::parse("0.0000001"),
            Err(AmountError::TooPrecise(_))
        ));
        assert!(matches!(
            Amount::parse("1e30"),
            Err(AmountError::OutOfRange(_))
        ));
        assert!(matches!(
            Amount::parse("abc"),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            Amount::parse("."),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(Amount::parse(""), Err(AmountError::NotANumber(_))));
    }

    #[test]
    fn json_floats_keep_their_written_decimals() {
        let n: serde_json::Number = serde_json::from_str("19.99").unwrap();
        assert_eq!(Amount::from_json_number(&n).unwrap(), Amount(19_990_000));
        let n: serde_json::Number = serde_json::from_str("0.1").unwrap();
        assert_eq!(Amount::from_json_number(&n).unwrap().to_string(), "0.1");
    }

    #[test]
    fn displays_without_trailing_zeros() {
        assert_eq!(Amount(1_500_000).to_string(), "1.5");
        assert_eq!(Amount(-2_000_000).to_string(), "-2");
        assert_eq!(Amount(1).to_string(), "0.000001");
    }

    proptest! {
        #[test]
        fn display_parse_round_trips(micros in any::<i64>()) {
            let a = Amount(micros);
            prop_assert_eq!(Amount::parse(&a.to_string()).unwrap(), a);
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,40}") {
            let _ = Amount::parse(&text);
        }
    }
}
