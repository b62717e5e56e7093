//! Pure parsers for the text of sysfs block-device attributes.
//!
//! Every function takes the file's contents as a `&str` (trailing newline and
//! surrounding blanks allowed) and does no I/O, so each one is table-tested
//! against well-formed and malformed inputs. The readers in the parent module
//! attach the path of the file to any [`ParseError`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why the contents of a sysfs attribute could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse {value:?} as {expected}")]
pub struct ParseError {
    /// The offending contents, trimmed.
    pub value: String,
    /// What the attribute should contain, e.g. "an unsigned integer".
    pub expected: &'static str,
}

impl ParseError {
    fn new(value: &str, expected: &'static str) -> ParseError {
        ParseError {
            value: value.trim().to_owned(),
            expected,
        }
    }
}

/// What `queue/write_cache` reports: whether the kernel treats the device's
/// volatile write cache as present ("write back", it sends flushes) or not
/// ("write through").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteCache {
    /// `write back`: the device acknowledges writes from a volatile cache; the
    /// kernel issues cache flushes for durability.
    WriteBack,
    /// `write through`: writes are durable when acknowledged (no cache, or a
    /// non-volatile one).
    WriteThrough,
}

impl fmt::Display for WriteCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteCache::WriteBack => "write back",
            WriteCache::WriteThrough => "write through",
        })
    }
}

/// Parses an unsigned decimal integer such as `queue/nr_requests` ("256\n").
pub fn parse_u64(s: &str) -> Result<u64, ParseError> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| ParseError::new(s, "an unsigned decimal integer"))
}

/// Parses an unsigned decimal integer that fits 32 bits, such as
/// `queue/nomerges` or `md/raid_disks`.
pub fn parse_u32(s: &str) -> Result<u32, ParseError> {
    s.trim()
        .parse::<u32>()
        .map_err(|_| ParseError::new(s, "an unsigned 32-bit decimal integer"))
}

/// Parses a 0/1 flag such as `queue/rotational`.
pub fn parse_bool(s: &str) -> Result<bool, ParseError> {
    match s.trim() {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(ParseError::new(s, "0 or 1")),
    }
}

/// Parses a device number `MAJ:MIN` as found in a device's `dev` file
/// ("259:1\n") and in `/sys/dev/block` link names.
pub fn parse_dev(s: &str) -> Result<(u32, u32), ParseError> {
    let bad = || ParseError::new(s, "MAJOR:MINOR");
    let (major, minor) = s.trim().split_once(':').ok_or_else(bad)?;
    let major = major.parse::<u32>().map_err(|_| bad())?;
    let minor = minor.parse::<u32>().map_err(|_| bad())?;
    Ok((major, minor))
}

/// Returns the active scheduler from `queue/scheduler`: the `[bracketed]`
/// entry of "none [mq-deadline] kyber bfq", or the sole word when there is no
/// choice (bio-based devices such as md and dm print just "none").
pub fn parse_scheduler(s: &str) -> Result<String, ParseError> {
    const EXPECTED: &str = "a scheduler list with one [active] entry";
    let trimmed = s.trim();
    let bracketed: Vec<&str> = trimmed
        .split_whitespace()
        .filter(|w| w.starts_with('[') || w.ends_with(']'))
        .collect();
    match bracketed.as_slice() {
        [] => {
            let mut words = trimmed.split_whitespace();
            match (words.next(), words.next()) {
                (Some(only), None) => Ok(only.to_owned()),
                _ => Err(ParseError::new(s, EXPECTED)),
            }
        }
        [active] => active
            .strip_prefix('[')
            .and_then(|w| w.strip_suffix(']'))
            .filter(|w| !w.is_empty() && !w.contains(['[', ']']))
            .map(str::to_owned)
            .ok_or_else(|| ParseError::new(s, EXPECTED)),
        _ => Err(ParseError::new(s, EXPECTED)),
    }
}

/// Parses `queue/write_cache`: "write back" or "write through".
pub fn parse_write_cache(s: &str) -> Result<WriteCache, ParseError> {
    match s.trim() {
        "write back" => Ok(WriteCache::WriteBack),
        "write through" => Ok(WriteCache::WriteThrough),
        _ => Err(ParseError::new(s, "\"write back\" or \"write through\"")),
    }
}

/// Parses a one-word string attribute such as `md/level` ("raid0\n") or
/// `dm/name`; rejects an empty file.
pub fn parse_word(s: &str) -> Result<String, ParseError> {
    let t = s.trim();
    if t.is_empty() {
        Err(ParseError::new(s, "a non-empty string"))
    } else {
        Ok(t.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        let table: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("256\n", Some(256)),
            ("  4096 \n", Some(4096)),
            ("18446744073709551615\n", Some(u64::MAX)),
            ("18446744073709551616", None),
            ("-1\n", None),
            ("", None),
            ("\n", None),
            ("4k", None),
            ("0x10", None),
            ("1 2", None),
        ];
        for (input, want) in table {
            assert_eq!(parse_u64(input).ok(), *want, "input {input:?}");
        }
        assert_eq!(parse_u32("2\n"), Ok(2));
        assert!(parse_u32("4294967296").is_err());
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool("0\n"), Ok(false));
        assert_eq!(parse_bool("1\n"), Ok(true));
        for bad in ["2", "", "true", "01"] {
            assert!(parse_bool(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn device_numbers() {
        let table: &[(&str, Option<(u32, u32)>)] = &[
            ("259:1\n", Some((259, 1))),
            ("8:0", Some((8, 0))),
            ("253:0\n", Some((253, 0))),
            ("259", None),
            ("259:", None),
            (":1", None),
            ("a:b", None),
            ("1:2:3", None),
            ("", None),
        ];
        for (input, want) in table {
            assert_eq!(parse_dev(input).ok(), *want, "input {input:?}");
        }
    }

    #[test]
    fn schedulers() {
        let table: &[(&str, Option<&str>)] = &[
            ("mq-deadline kyber [none]\n", Some("none")),
            ("none [mq-deadline] kyber bfq \n", Some("mq-deadline")),
            ("[none] mq-deadline\n", Some("none")),
            ("none\n", Some("none")),
            ("noop deadline [cfq]\n", Some("cfq")),
            ("[noop]\n", Some("noop")),
            ("", None),
            ("\n", None),
            ("none mq-deadline\n", None),
            ("[none] [kyber]\n", None),
            ("[none\n", None),
            ("none]\n", None),
            ("[]\n", None),
        ];
        for (input, want) in table {
            assert_eq!(
                parse_scheduler(input).ok().as_deref(),
                *want,
                "input {input:?}"
            );
        }
    }

    #[test]
    fn write_caches() {
        assert_eq!(parse_write_cache("write back\n"), Ok(WriteCache::WriteBack));
        assert_eq!(
            parse_write_cache("write through\n"),
            Ok(WriteCache::WriteThrough)
        );
        for bad in ["", "writeback", "write", "write  back", "WRITE BACK"] {
            assert!(parse_write_cache(bad).is_err(), "{bad:?}");
        }
        assert_eq!(WriteCache::WriteBack.to_string(), "write back");
    }

    #[test]
    fn words() {
        assert_eq!(parse_word("raid0\n").as_deref(), Ok("raid0"));
        assert!(parse_word(" \n").is_err());
    }

    #[test]
    fn error_names_the_value() {
        let e = parse_u64("abc\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot parse \"abc\" as an unsigned decimal integer"
        );
    }
}
