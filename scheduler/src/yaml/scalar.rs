//! Scalars resolved to null, booleans, integers, floats or strings, as serde_yaml_ng did.

use saphyr_parser::{ScalarStyle, Tag};

use super::builder::tag_text;
use super::error::Error;
use super::node::{Node, Pos, Value};
use super::CORE_HANDLE;

/// Resolves a scalar as serde_yaml_ng did (see the crate documentation).
pub(super) fn scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
    pos: Pos,
    aliased: bool,
) -> Result<Node, Error> {
    let node = |value| Node {
        value,
        pos,
        aliased,
    };
    let plain = style == ScalarStyle::Plain;
    let Some(tag) = tag else {
        return Ok(node(if plain {
            resolve_plain(text)
        } else {
            Value::String(text.to_owned())
        }));
    };
    if tag.handle != CORE_HANDLE {
        let inner = if plain {
            resolve_plain(text)
        } else {
            Value::String(text.to_owned())
        };
        return Ok(node(Value::Tagged(tag_text(tag), Box::new(node(inner)))));
    }
    let bad = |expected| Error::BadTaggedScalar {
        pos,
        text: text.to_owned(),
        tag: tag.suffix.clone(),
        expected,
    };
    let value = match tag.suffix.as_str() {
        "bool" => Value::Bool(parse_bool(text).ok_or_else(|| bad("boolean"))?),
        "int" => Value::Int(
            parse_int(text).ok_or_else(|| bad("integer"))?,
            text.to_owned(),
        ),
        "float" => Value::Float(
            parse_f64(text).ok_or_else(|| bad("float"))?,
            text.to_owned(),
        ),
        "null" if parse_null(text) => Value::Null,
        "null" => return Err(bad("null")),
        _ => Value::String(text.to_owned()),
    };
    Ok(node(value))
}

/// An untagged plain scalar.
fn resolve_plain(text: &str) -> Value {
    if text.is_empty() || parse_null(text) {
        return Value::Null;
    }
    if let Some(b) = parse_bool(text) {
        return Value::Bool(b);
    }
    if let Some(i) = parse_int(text) {
        return Value::Int(i, text.to_owned());
    }
    if !digits_but_not_number(text) {
        if let Some(f) = parse_f64(text) {
            return Value::Float(f, text.to_owned());
        }
    }
    Value::String(text.to_owned())
}

fn parse_null(text: &str) -> bool {
    matches!(text, "null" | "Null" | "NULL" | "~")
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// An integer as serde_yaml_ng read one: optional sign, then decimal digits (not with a
/// leading zero), or `0x`, `0o`, `0b` digits; `None` if it does not fit in an `i128`.
fn parse_int(text: &str) -> Option<i128> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(d) = unsigned.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = unsigned.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = unsigned.strip_prefix("0b") {
        (2, d)
    } else {
        if digits_but_not_number(text) {
            return None;
        }
        (10, unsigned)
    };
    // from_str_radix would take a second sign.
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = i128::from_str_radix(digits, radix).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

fn parse_f64(text: &str) -> Option<f64> {
    let unsigned = match text.strip_prefix('+') {
        Some(u) if u.starts_with(['+', '-']) => return None,
        Some(u) => u,
        None => text,
    };
    match unsigned {
        ".inf" | ".Inf" | ".INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    unsigned.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Leading zeros followed by digits: a string in YAML 1.2.
fn digits_but_not_number(text: &str) -> bool {
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    t.len() > 1 && t.starts_with('0') && t[1..].bytes().all(|b| b.is_ascii_digit())
}
