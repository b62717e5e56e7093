//! Line numbers for nodes of a YAML document, found by a failing probe.
//!
//! `serde_yaml::Value` keeps no source positions, but serde_yaml_ng stamps every error raised
//! by a visitor with the position of the YAML event being deserialized (the start of the scalar,
//! mapping or sequence). A probe exploits that: it deserializes the text again, walks down a
//! path of list indexes and mapping keys while skipping everything else, and deliberately fails
//! at the target node with a marker message. The error's [`serde_yaml::Location`] is then the
//! target's position. This is exact for any YAML layout (block or flow style, comments,
//! multi-line scalars, anchors), unlike scanning the text for `- name:` and `key:` lines.
//!
//! Each lookup re-parses the document, so a lookup costs one parse. Job files are small (tens of
//! jobs), so [`line`] is only called once per job plus once per reported error.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a path into a YAML document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg<'a> {
    /// The element at this index of a sequence (0-based).
    Index(usize),
    /// The entry with this (string) key of a mapping.
    Key(&'a str),
}

/// The text that tells a probe failure from any other error. It contains control characters,
/// so it cannot come from a YAML file's own content.
const MARKER: &str = "\u{1}iotune-rs location probe\u{1}";

/// The 1-based line of the node at `path` in `text`, or `None` if there is no such node.
///
/// When the last step is a [`Seg::Key`], the line is the key's own line (so `shard_info:` is
/// found on its own line, not on the line of its first nested key). When it is a
/// [`Seg::Index`], it is the line where that element starts; for a block mapping in a block
/// sequence (`- name: x`) that is the line of the dash. An empty path gives the document root.
/// Keys merged in with `<<` or reached through an alias are not found (`None`): callers fall
/// back to the enclosing node's line.
pub fn line(text: &str, path: &[Seg<'_>]) -> Option<usize> {
    let de = serde_yaml::Deserializer::from_str(text);
    match (Probe { path }).deserialize(de) {
        Ok(()) => None,
        Err(err) if err.to_string().contains(MARKER) => err.location().map(|l| l.line()),
        Err(_) => None,
    }
}

/// The 1-based line and column of the first mapping key in `text` that repeats an earlier key
/// of the same mapping, if any. serde_yaml_ng rejects such documents but reports the position
/// of the whole mapping; this finds the repeated key itself.
pub fn first_duplicate_key(text: &str) -> Option<(usize, usize)> {
    let de = serde_yaml::Deserializer::from_str(text);
    match DupWalk.deserialize(de) {
        Err(err) if err.to_string().contains(MARKER) => {
            err.location().map(|l| (l.line(), l.column()))
        }
        _ => None,
    }
}

/// Walks a whole document, failing at the first repeated key of a mapping.
struct DupWalk;

impl<'de> DeserializeSeed<'de> for DupWalk {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DupWalk {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        Ok(())
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(DupWalk)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = Vec::new();
        while map.next_key_seed(DupKey { seen: &mut seen })?.is_some() {
            map.next_value_seed(DupWalk)?;
        }
        Ok(())
    }
}

/// One mapping key: fails with the marker if it repeats a string key in `seen`.
struct DupKey<'s> {
    seen: &'s mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for DupKey<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DupKey<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar mapping key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if self.seen.iter().any(|k| k == v) {
            return Err(E::custom(MARKER));
        }
        self.seen.push(v.to_owned());
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Walks `path` and fails at its end.
struct Probe<'p> {
    path: &'p [Seg<'p>],
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        match self.path.split_first() {
            None => de.deserialize_any(Fail),
            Some((Seg::Index(index), rest)) => de.deserialize_seq(SeqProbe {
                index: *index,
                rest,
            }),
            Some((Seg::Key(key), rest)) => de.deserialize_map(MapProbe { key, rest }),
        }
    }
}

/// A visitor that rejects whatever it is given. Every default `visit_*` method reports an
/// "invalid type" error whose text includes [`Visitor::expecting`], hence the marker.
struct Fail;

impl<'de> Visitor<'de> for Fail {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MARKER)
    }
}

/// Skips to element `index` of a sequence and probes the rest of the path inside it.
struct SeqProbe<'p> {
    index: usize,
    rest: &'p [Seg<'p>],
}

impl<'de> Visitor<'de> for SeqProbe<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        for _ in 0..self.index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Probe { path: self.rest })?;
        // Not found below (or the probe returned normally): leave the rest unread; whatever
        // error that causes carries no marker.
        Ok(())
    }
}

/// Finds the entry `key` of a mapping; fails at the key itself if the path ends there,
/// otherwise probes the rest of the path inside its value.
struct MapProbe<'p> {
    key: &'p str,
    rest: &'p [Seg<'p>],
}

impl<'de> Visitor<'de> for MapProbe<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let seed = KeySeed {
            key: self.key,
            fail_on_match: self.rest.is_empty(),
        };
        while let Some(matched) = map.next_key_seed(seed)? {
            if matched {
                return map.next_value_seed(Probe { path: self.rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

/// Deserializes one mapping key: `true` if it is the wanted string key, or an error carrying the
/// marker (and the key's position) if the probe ends at this key.
#[derive(Clone, Copy)]
struct KeySeed<'p> {
    key: &'p str,
    fail_on_match: bool,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<bool, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar mapping key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        if v != self.key {
            Ok(false)
        } else if self.fail_on_match {
            Err(E::custom(MARKER))
        } else {
            Ok(true)
        }
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::{first_duplicate_key, line, Seg::*};

    const BLOCK: &str = "\
# a comment
- name: first
  shards: all
  shard_info:
    reqsize: 4kB

    think_time: 0

-
  name: second
  type: cpu
";

    #[test]
    fn block_style() {
        assert_eq!(line(BLOCK, &[]), Some(2));
        assert_eq!(line(BLOCK, &[Index(0)]), Some(2));
        assert_eq!(line(BLOCK, &[Index(0), Key("name")]), Some(2));
        assert_eq!(line(BLOCK, &[Index(0), Key("shard_info")]), Some(4));
        assert_eq!(
            line(BLOCK, &[Index(0), Key("shard_info"), Key("think_time")]),
            Some(7)
        );
        assert_eq!(line(BLOCK, &[Index(1), Key("type")]), Some(11));
        // The element starts at its first key when the dash stands alone.
        assert_eq!(line(BLOCK, &[Index(1)]), Some(10));
    }

    #[test]
    fn missing_nodes_are_none() {
        assert_eq!(line(BLOCK, &[Index(2)]), None);
        assert_eq!(line(BLOCK, &[Index(0), Key("type")]), None);
        assert_eq!(line(BLOCK, &[Index(0), Key("shards"), Key("x")]), None);
        assert_eq!(line(BLOCK, &[Key("x")]), None);
    }

    #[test]
    fn flow_style_and_multiline_scalars() {
        let text = "- {name: a, type: cpu,\n   shards: [0,\n     1]}\n- name: |\n    long\n    text\n  type: seqread\n";
        assert_eq!(line(text, &[Index(0), Key("type")]), Some(1));
        assert_eq!(line(text, &[Index(0), Key("shards"), Index(1)]), Some(3));
        assert_eq!(line(text, &[Index(1), Key("type")]), Some(7));
    }

    #[test]
    fn duplicate_keys() {
        assert_eq!(
            first_duplicate_key("- name: a\n  type: x\n  name: b\n"),
            Some((3, 3))
        );
        assert_eq!(
            first_duplicate_key("- a: {x: 1, y: {x: 2}}\n- {x: 1, y: 2, y: 3}\n"),
            Some((2, 16))
        );
        assert_eq!(first_duplicate_key(BLOCK), None);
    }

    #[test]
    fn key_named_like_a_value_elsewhere() {
        // A value equal to the key name must not be taken for the key.
        let text = "- name: type\n  shards: all\n  type: cpu\n";
        assert_eq!(line(text, &[Index(0), Key("type")]), Some(3));
    }
}
