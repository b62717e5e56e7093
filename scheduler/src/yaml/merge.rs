//! Mapping keys compared by value, and `<<` merge keys expanded.

use std::collections::HashSet;
use std::fmt;

use super::error::Error;
use super::node::{Node, Value};

/// What makes two mapping keys the same.
#[derive(Debug, Hash, PartialEq, Eq)]
pub(super) enum KeyId {
    Null,
    Bool(bool),
    Int(i128),
    Float(u64),
    Str(String),
    /// A collection or tagged key, written out.
    Other(String),
}

pub(super) fn key_id(node: &Node) -> KeyId {
    match &node.value {
        Value::Null => KeyId::Null,
        Value::Bool(b) => KeyId::Bool(*b),
        Value::Int(i, _) => KeyId::Int(*i),
        Value::Float(f, _) => KeyId::Float(f.to_bits()),
        Value::String(s) => KeyId::Str(s.clone()),
        _ => {
            let mut out = String::new();
            write_canonical(&mut out, node);
            KeyId::Other(out)
        }
    }
}

/// A node written out unambiguously (for comparing collection keys).
fn write_canonical(out: &mut String, node: &Node) {
    use fmt::Write as _;
    // Writing to a String cannot fail.
    let _ = match &node.value {
        Value::Null => write!(out, "~"),
        Value::Bool(b) => write!(out, "b{b}"),
        Value::Int(i, _) => write!(out, "i{i}"),
        Value::Float(f, _) => write!(out, "f{}", f.to_bits()),
        Value::String(s) => write!(out, "s{s:?}"),
        Value::Seq(items) => {
            out.push('[');
            for item in items {
                write_canonical(out, item);
                out.push(',');
            }
            write!(out, "]")
        }
        Value::Map(map) => {
            out.push('{');
            for (k, v) in &map.entries {
                write_canonical(out, k);
                out.push(':');
                write_canonical(out, v);
                out.push(',');
            }
            write!(out, "}}")
        }
        Value::Tagged(tag, inner) => {
            let _ = write!(out, "t{tag:?}");
            write_canonical(out, inner);
            Ok(())
        }
    };
}

/// A repeated key as serde_yaml_ng described it.
pub(super) fn describe_key(node: &Node) -> String {
    match &node.value {
        Value::Null => "with null key".to_owned(),
        Value::Bool(b) => format!("with key `{b}`"),
        Value::Int(_, text) | Value::Float(_, text) => format!("with key {text}"),
        Value::String(s) => format!("with key {s:?}"),
        _ => "in YAML map".to_owned(),
    }
}

/// Expands `<<` merge keys, innermost first, as serde_yaml_ng's `apply_merge` did: the
/// entries of the merged mapping (or of each mapping of a merged list, earlier ones first) are
/// added unless the mapping has their key already.
pub(super) fn apply_merges(node: &mut Node) -> Result<(), Error> {
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().try_for_each(apply_merges),
        Value::Tagged(_, inner) => apply_merges(inner),
        Value::Map(map) => {
            for (_, v) in &mut map.entries {
                apply_merges(v)?;
            }
            let Some(at) = map
                .entries
                .iter()
                .position(|(k, _)| k.as_str() == Some("<<"))
            else {
                return Ok(());
            };
            let (key, value) = map.entries.remove(at);
            let merge_err = |message: &str| Error::Merge {
                pos: key.pos,
                message: message.to_owned(),
            };
            let sources = match value.value {
                Value::Map(m) => vec![m],
                Value::Seq(items) => items
                    .into_iter()
                    .map(|item| match item.value {
                        Value::Map(m) => Ok(m),
                        Value::Seq(_) => Err(merge_err(
                            "expected a mapping for merging, but found sequence",
                        )),
                        Value::Tagged(..) => Err(merge_err("unexpected tagged value in merge")),
                        _ => Err(merge_err(
                            "expected a mapping for merging, but found scalar",
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Value::Tagged(..) => return Err(merge_err("unexpected tagged value in merge")),
                _ => {
                    return Err(merge_err(
                        "expected a mapping or list of mappings for merging, but found scalar",
                    ))
                }
            };
            let mut present: HashSet<KeyId> = map.entries.iter().map(|(k, _)| key_id(k)).collect();
            for source in sources {
                for (k, v) in source.entries {
                    if present.insert(key_id(&k)) {
                        map.entries.push((k, v));
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
