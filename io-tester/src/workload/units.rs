//! Sizes, durations, counts and flags as they are written in job files.
//!
//! Each `*_value` function turns one YAML scalar into a typed value, or into a message saying
//! what is wrong and what is expected; the caller adds the file, job, key and line.

use std::time::Duration;

use scheduler::io_properties::parse_size;
use scheduler::yaml::{Node, Value};

/// Why a duration (`10us`, `1ms`, `0`) could not be parsed by [`parse_duration`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text is empty.
    #[error("empty duration; expected `0` or an integer with a unit such as `10us`")]
    Empty,
    /// The text starts with a minus sign.
    #[error("`{0}` is negative; durations must be zero or positive")]
    Negative(String),
    /// The text does not start with a decimal digit.
    #[error("`{0}` does not start with digits; expected an integer with a unit such as `10us`")]
    NoDigits(String),
    /// A number other than zero without a unit.
    #[error("`{0}` has no unit; add one of ns, us, ms or s (e.g. `{0}us`); only `0` may be written bare")]
    NoUnit(String),
    /// A fraction or exponent (`1.5ms`); only integers are allowed.
    #[error(
        "`{0}` is not an integer; write a whole number in a smaller unit (e.g. `1500us` for 1.5ms)"
    )]
    NotInteger(String),
    /// The digits are followed by something other than `ns`, `us`, `ms` or `s`.
    #[error("`{text}` has an unknown unit `{unit}`; expected ns, us, ms or s")]
    BadUnit {
        /// The text as given.
        text: String,
        /// The part after the digits.
        unit: String,
    },
    /// The duration does not fit in 64 bits of nanoseconds (about 584 years).
    #[error("`{0}` is too large")]
    Overflow(String),
}

/// Parses a duration: `0`, or a non-negative integer followed by `ns`, `us`, `ms` or `s`
/// (`100ns`, `90us`, `1000us`, `1ms`, `5s`).
///
/// Same grammar as the reference's job-file durations: it too accepts a bare `0`, reads the
/// number as an unsigned integer and rejects any other bare number. No whitespace, sign or
/// fraction is allowed.
///
/// # Errors
///
/// [`DurationError`] naming the text and what is expected.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.starts_with('-') {
        return Err(DurationError::Negative(s.to_owned()));
    }
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(digits_end);
    if digits.is_empty() {
        return Err(DurationError::NoDigits(s.to_owned()));
    }
    let overflow = || DurationError::Overflow(s.to_owned());
    let value: u64 = digits.parse().map_err(|_| overflow())?;
    let nanos_per_unit: u64 = match unit {
        "" if value == 0 => return Ok(Duration::ZERO),
        "" => return Err(DurationError::NoUnit(s.to_owned())),
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        _ if unit.starts_with(['.', 'e', 'E']) => {
            return Err(DurationError::NotInteger(s.to_owned()))
        }
        _ => {
            return Err(DurationError::BadUnit {
                text: s.to_owned(),
                unit: unit.to_owned(),
            })
        }
    };
    let nanos = value.checked_mul(nanos_per_unit).ok_or_else(overflow)?;
    Ok(Duration::from_nanos(nanos))
}

/// How a YAML node is named in error messages ("got a list"); scalars as written.
pub fn describe(v: &Node) -> String {
    match &v.value {
        Value::Null => "an empty value".to_owned(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Int(_, text) | Value::Float(_, text) => format!("`{text}`"),
        Value::String(s) => format!("`{s}`"),
        Value::Seq(_) => "a list".to_owned(),
        Value::Map(_) => "a mapping".to_owned(),
        Value::Tagged(tag, _) => format!("a value tagged `{tag}`"),
    }
}

/// A plain scalar's text: strings as they are, numbers as written, booleans as `true` or
/// `false`. Used for names (`name: 2024` is a valid name, as with the reference's YAML reader,
/// which also keeps `1.50` as written).
pub fn text_value(v: &Node) -> Result<String, String> {
    match &v.value {
        Value::String(s) => Ok(s.clone()),
        Value::Int(_, text) | Value::Float(_, text) => Ok(text.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!("expected a string, got {}", describe(v))),
    }
}

/// A non-negative integer: a YAML integer, or a string of decimal digits (`"10"`).
pub fn u64_value(v: &Node) -> Result<u64, String> {
    match &v.value {
        Value::Int(n, text) => match u64::try_from(*n) {
            Ok(u) => Ok(u),
            Err(_) if *n < 0 => Err(format!(
                "`{text}` is negative; expected a non-negative integer"
            )),
            Err(_) => Err(format!("`{text}` is too large for a 64-bit integer")),
        },
        Value::Float(_, text) => Err(format!(
            "`{text}` is not an integer; expected a non-negative integer"
        )),
        Value::String(s) if s.starts_with('-') => Err(format!(
            "`{s}` is negative; expected a non-negative integer"
        )),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s
            .parse()
            .map_err(|_| format!("`{s}` is too large for a 64-bit integer")),
        _ => Err(format!(
            "expected a non-negative integer, got {}",
            describe(v)
        )),
    }
}

/// A non-negative integer that fits in 32 bits.
pub fn u32_value(v: &Node) -> Result<u32, String> {
    let n = u64_value(v)?;
    u32::try_from(n).map_err(|_| format!("`{n}` is too large; the maximum is {}", u32::MAX))
}

/// A size in bytes: a YAML integer, or digits with a binary suffix (`256kB` = 262144, `1GB`,
/// `4k`, `2MiB`), parsed by [`scheduler::io_properties::parse_size`].
pub fn size_value(v: &Node) -> Result<u64, String> {
    match &v.value {
        Value::String(s) if s.starts_with('-') => {
            Err(format!("`{s}` is negative; expected a size in bytes"))
        }
        Value::String(s) => parse_size(s).map_err(|e| e.to_string()),
        Value::Int(..) | Value::Float(..) => u64_value(v),
        _ => Err(format!(
            "expected a size such as `4096` or `256kB`, got {}",
            describe(v)
        )),
    }
}

/// A duration: the integer `0`, or a string accepted by [`parse_duration`].
pub fn duration_value(v: &Node) -> Result<Duration, String> {
    match &v.value {
        Value::String(s) => parse_duration(s).map_err(|e| e.to_string()),
        Value::Int(n, _) => parse_duration(&n.to_string()).map_err(|e| e.to_string()),
        Value::Float(_, text) => parse_duration(text).map_err(|e| e.to_string()),
        _ => Err(format!(
            "expected a duration such as `0`, `100us` or `1ms`, got {}",
            describe(v)
        )),
    }
}

/// A flag: `true`/`false`, or the YAML 1.1 spellings the reference's YAML reader also takes
/// (`yes`/`no`, `on`/`off`, `y`/`n`, any case).
pub fn bool_value(v: &Node) -> Result<bool, String> {
    match &v.value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "y" => Ok(true),
            "false" | "no" | "off" | "n" => Ok(false),
            _ => Err(format!("expected true or false, got `{s}`")),
        },
        _ => Err(format!("expected true or false, got {}", describe(v))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Node {
        scheduler::yaml::load(s, None).unwrap()
    }

    #[test]
    fn durations() {
        let us = Duration::from_micros;
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("10us"), Ok(us(10)));
        assert_eq!(parse_duration("1000us"), Ok(us(1000)));
        assert_eq!(parse_duration("1ms"), Ok(us(1000)));
        assert_eq!(parse_duration("90us"), Ok(us(90)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("100ns"), Ok(Duration::from_nanos(100)));
    }

    #[test]
    fn bad_durations() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(
            parse_duration("10"),
            Err(DurationError::NoUnit("10".into()))
        );
        assert!(parse_duration("10")
            .unwrap_err()
            .to_string()
            .contains("add one of ns, us, ms or s"));
        assert_eq!(
            parse_duration("-1ms"),
            Err(DurationError::Negative("-1ms".into()))
        );
        assert_eq!(
            parse_duration("1.5ms"),
            Err(DurationError::NotInteger("1.5ms".into()))
        );
        assert_eq!(
            parse_duration("ms"),
            Err(DurationError::NoDigits("ms".into()))
        );
        assert_eq!(
            parse_duration(" 1ms"),
            Err(DurationError::NoDigits(" 1ms".into()))
        );
        assert!(matches!(
            parse_duration("1 ms"),
            Err(DurationError::BadUnit { .. })
        ));
        assert!(matches!(
            parse_duration("1min"),
            Err(DurationError::BadUnit { .. })
        ));
        assert_eq!(
            parse_duration("99999999999999s"),
            Err(DurationError::Overflow("99999999999999s".into()))
        );
    }

    #[test]
    fn sizes_are_binary() {
        assert_eq!(size_value(&yaml("256kB")), Ok(262_144));
        assert_eq!(size_value(&yaml("1GB")), Ok(1 << 30));
        assert_eq!(size_value(&yaml("2MB")), Ok(2 << 20));
        assert_eq!(size_value(&yaml("512")), Ok(512));
        assert_eq!(size_value(&yaml("'4096'")), Ok(4096));
        assert_eq!(size_value(&yaml("4KiB")), Ok(4096));
        assert!(size_value(&yaml("-512")).unwrap_err().contains("negative"));
        assert!(size_value(&yaml("'-4kB'"))
            .unwrap_err()
            .contains("negative"));
        assert!(size_value(&yaml("1.5"))
            .unwrap_err()
            .contains("not an integer"));
        assert!(size_value(&yaml("4XB"))
            .unwrap_err()
            .contains("unknown suffix"));
        assert!(size_value(&yaml("[1]")).unwrap_err().contains("got a list"));
    }

    #[test]
    fn integers_and_flags() {
        assert_eq!(u64_value(&yaml("7")), Ok(7));
        assert_eq!(u64_value(&yaml("'7'")), Ok(7));
        assert!(u64_value(&yaml("-7")).unwrap_err().contains("negative"));
        assert!(u64_value(&yaml("7.5"))
            .unwrap_err()
            .contains("not an integer"));
        assert!(u64_value(&yaml("seven"))
            .unwrap_err()
            .contains("got `seven`"));
        assert!(u32_value(&yaml("4294967296"))
            .unwrap_err()
            .contains("too large"));
        assert_eq!(bool_value(&yaml("true")), Ok(true));
        assert_eq!(bool_value(&yaml("yes")), Ok(true));
        assert_eq!(bool_value(&yaml("Off")), Ok(false));
        assert!(bool_value(&yaml("1")).is_err());
        assert_eq!(duration_value(&yaml("0")), Ok(Duration::ZERO));
        assert!(duration_value(&yaml("5")).unwrap_err().contains("no unit"));
        assert!(duration_value(&yaml("-5"))
            .unwrap_err()
            .contains("negative"));
        assert_eq!(text_value(&yaml("2024")), Ok("2024".to_owned()));
    }
}
