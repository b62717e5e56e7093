//! Shared first step of reading a YAML list file, and per-entry helpers that build errors
//! naming the file, the entry, the key and the line.
//!
//! The text is parsed once into a [`scheduler::yaml::Node`] tree that keeps every node's and key's
//! line, so finding the line of a key is a walk down the entry's own nodes.

use std::sync::atomic::AtomicBool;

use scheduler::yaml::{Map, Node, Value};

use super::units::describe;
use super::JobError;

/// One step of a path into an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg<'a> {
    /// The element at this index of a sequence (0-based).
    Index(usize),
    /// The entry with this (string) key of a mapping.
    Key(&'a str),
}

/// Loads `text` as one YAML document that must be a non-empty list, and returns its entries.
///
/// `what` names the entries in messages ("jobs"), `example` shows the first line of one.
/// Merge keys (`<<: *defaults`) are expanded, so entries may share settings through anchors.
/// Texts over [`scheduler::yaml::MAX_INPUT_BYTES`] are refused; `stop` ends loading once set.
pub fn load_list(
    text: &str,
    file: &str,
    what: &'static str,
    example: &str,
    stop: Option<&AtomicBool>,
) -> Result<Vec<Node>, JobError> {
    if text.len() > scheduler::yaml::MAX_INPUT_BYTES {
        return Err(JobError::TooLarge {
            file: file.to_owned(),
            size: u64::try_from(text.len()).ok(),
            what,
        });
    }
    let doc = scheduler::yaml::load(text, stop).map_err(|err| match err {
        scheduler::yaml::Error::Interrupted => JobError::Interrupted {
            file: file.to_owned(),
        },
        scheduler::yaml::Error::Merge { pos, message } => JobError::Document {
            file: file.to_owned(),
            line: pos.line,
            message: format!("cannot expand a `<<` merge key: {message}"),
        },
        err => JobError::Syntax {
            file: file.to_owned(),
            line: err.pos().map(|p| p.line),
            column: err.pos().map(|p| p.column),
            message: err.to_string(),
        },
    })?;
    let root_line = doc.pos.line;
    match doc.value {
        Value::Seq(entries) if !entries.is_empty() => Ok(entries),
        Value::Seq(_) => Err(JobError::Document {
            file: file.to_owned(),
            line: root_line,
            message: format!("the list is empty; expected at least one of the {what}"),
        }),
        Value::Null => Err(JobError::Document {
            file: file.to_owned(),
            line: 1,
            message: format!(
                "the file has no content; expected a YAML list of {what} (`{example}`)"
            ),
        }),
        _ => Err(JobError::Document {
            file: file.to_owned(),
            line: root_line,
            message: format!(
                "expected a YAML list of {what}, each starting with `{example}`; got {}",
                describe(&doc)
            ),
        }),
    }
}

/// One entry of a list file while it is being validated.
pub struct Entry<'a> {
    node: &'a Node,
    file: &'a str,
    /// 1-based line where the entry starts.
    pub line: usize,
    kind: &'static str,
    desc: String,
}

impl<'a> Entry<'a> {
    /// Entry `index` (0-based) of the list, `node`; `kind` is "job" or "group".
    pub fn new(node: &'a Node, file: &'a str, index: usize, kind: &'static str) -> Self {
        Entry {
            node,
            file,
            line: node.pos.line,
            kind,
            desc: format!("{kind} #{}", index + 1),
        }
    }

    /// Names the entry in later messages (`job 'big_writes'` instead of `job #1`).
    pub fn set_name(&mut self, name: &str) {
        self.desc = format!("{} '{name}'", self.kind);
    }

    /// 1-based line of the key at `path` inside this entry; the closest enclosing node that
    /// can be found when the key itself cannot (it is missing, or it came through an alias or
    /// a merge key, whose text is elsewhere).
    pub fn key_line(&self, path: &[Seg<'_>]) -> usize {
        let mut line = self.line;
        let mut node = self.node;
        for seg in path {
            let (at, next) = match seg {
                Seg::Key(k) => match node.as_map().and_then(|m| m.entry(k)) {
                    Some((key, value)) => (key, value),
                    None => break,
                },
                Seg::Index(i) => match node.as_seq().and_then(|s| s.get(*i)) {
                    Some(item) => (item, item),
                    None => break,
                },
            };
            if at.aliased {
                break;
            }
            line = at.pos.line;
            node = next;
        }
        line
    }

    /// An error about the key at `path` (empty: the whole entry).
    pub fn err(&self, path: &[Seg<'_>], message: impl Into<String>) -> JobError {
        JobError::Entry {
            file: self.file.to_owned(),
            entry: self.desc.clone(),
            line: self.line,
            key: key_name(path),
            key_line: self.key_line(path),
            message: message.into(),
        }
    }

    /// The entry as a mapping with string keys.
    pub fn mapping(&self, example: &str) -> Result<&'a Map, JobError> {
        let map = self.node.as_map().ok_or_else(|| {
            self.err(
                &[],
                format!(
                    "expected a mapping of keys (`{example}`), got {}",
                    describe(self.node)
                ),
            )
        })?;
        self.check_string_keys(map, &[])?;
        Ok(map)
    }

    /// The section `key` of `map` (at `path`): `None` when absent or empty.
    pub fn section<'v>(
        &self,
        map: &'v Map,
        path: &[Seg<'_>],
        key: &str,
    ) -> Result<Option<&'v Map>, JobError> {
        let mut at = path.to_vec();
        at.push(Seg::Key(key));
        match map.get(key) {
            None => Ok(None),
            Some(node) => match &node.value {
                Value::Null => Ok(None),
                Value::Map(section) => {
                    self.check_string_keys(section, &at)?;
                    Ok(Some(section))
                }
                _ => Err(self.err(
                    &at,
                    format!("expected a mapping of settings, got {}", describe(node)),
                )),
            },
        }
    }

    /// Rejects keys of `map` (at `path`) that are not in `allowed`; `hint` may explain where a
    /// misplaced key belongs.
    pub fn check_keys(
        &self,
        map: &Map,
        path: &[Seg<'_>],
        allowed: &[&str],
        hint: impl Fn(&str) -> Option<String>,
    ) -> Result<(), JobError> {
        for key in map.keys().filter_map(Node::as_str) {
            if allowed.contains(&key) {
                continue;
            }
            let mut at = path.to_vec();
            at.push(Seg::Key(key));
            let message = match hint(key).or_else(|| closest(key, allowed)) {
                Some(h) => format!("unknown key; {h}"),
                None => format!("unknown key; expected one of: {}", allowed.join(", ")),
            };
            return Err(self.err(&at, message));
        }
        Ok(())
    }

    fn check_string_keys(&self, map: &Map, path: &[Seg<'_>]) -> Result<(), JobError> {
        match map.keys().find(|k| k.as_str().is_none()) {
            Some(k) => Err(self.err(path, format!("keys must be names, got {}", describe(k)))),
            None => Ok(()),
        }
    }
}

/// `shard_info.reqsize`, `shards[1]`.
fn key_name(path: &[Seg<'_>]) -> String {
    let mut name = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !name.is_empty() {
                    name.push('.');
                }
                name.push_str(k);
            }
            Seg::Index(i) => name.push_str(&format!("[{i}]")),
        }
    }
    name
}

/// "did you mean `x`?" for a key within two edits of an allowed one.
fn closest(key: &str, allowed: &[&str]) -> Option<String> {
    allowed
        .iter()
        .map(|a| (edit_distance(key, a), a))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, a)| format!("did you mean `{a}`?"))
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            cur.push(subst.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The most precise line an error points at (for tests).
#[cfg(test)]
pub fn line_of(err: &JobError) -> Option<usize> {
    match err {
        JobError::Read { .. } | JobError::TooLarge { .. } | JobError::Interrupted { .. } => None,
        JobError::Syntax { line, .. } => *line,
        JobError::Document { line, .. } => Some(*line),
        JobError::Entry { key_line, .. } => Some(*key_line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_and_names() {
        assert_eq!(edit_distance("think_tme", "think_time"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(
            closest("reqsise", &["reqsize", "shares"]),
            Some("did you mean `reqsize`?".into())
        );
        assert_eq!(closest("zzz", &["reqsize"]), None);
        assert_eq!(
            key_name(&[Seg::Key("a"), Seg::Key("b"), Seg::Index(2)]),
            "a.b[2]"
        );
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let err = load_list(
            "- name: a\n  type: [cpu\n",
            "f.yaml",
            "jobs",
            "- name: x",
            None,
        )
        .unwrap_err();
        let JobError::Syntax { line, column, .. } = &err else {
            panic!("{err}")
        };
        assert!(line.is_some() && column.is_some(), "{err}");
        assert!(err.to_string().starts_with("f.yaml: line "), "{err}");
        assert!(!err.to_string().contains(" at line "), "{err}");

        let err = load_list(
            "- name: a\n  name: b\n",
            "f.yaml",
            "jobs",
            "- name: x",
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.yaml: line 2, column 3: invalid YAML: duplicate entry with key \"name\""
        );
    }

    #[test]
    fn wrong_shapes() {
        let err = |t: &str| {
            load_list(t, "f", "jobs", "- name: x", None)
                .unwrap_err()
                .to_string()
        };
        assert!(err("").contains("no content"));
        assert!(err("# only a comment\n").contains("no content"));
        assert!(err("[]").contains("empty"));
        assert!(err("\n\nname: x\n").contains("line 3: expected a YAML list of jobs"));
    }
}
