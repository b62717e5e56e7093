//! Shared first step of reading a YAML list file, and per-entry helpers that build errors
//! naming the file, the entry, the key and the line.

use serde_yaml::{Mapping, Value};

use super::locate::{self, Seg};
use super::units::describe;
use super::JobError;

/// Loads `text` as one YAML document that must be a non-empty list, and returns its entries.
///
/// `what` names the entries in messages ("jobs"), `example` shows the first line of one.
/// Merge keys (`<<: *defaults`) are expanded, so entries may share settings through anchors.
pub fn load_list(
    text: &str,
    file: &str,
    what: &str,
    example: &str,
) -> Result<Vec<Value>, JobError> {
    let mut doc: Value = serde_yaml::from_str(text).map_err(|err| {
        let mut position = err.location().map(|l| (l.line(), l.column()));
        let mut message = err.to_string();
        // The parser appends " at line L column C"; the position is printed separately.
        if let Some(at) = message.find(" at line ") {
            message.truncate(at);
        }
        if message.contains("duplicate entry") {
            // Reported at the start of the mapping; point at the repeated key instead.
            position = locate::first_duplicate_key(text).or(position);
            if let Some(colon) = message.find(": duplicate entry") {
                message.drain(..colon + 2); // drop the parser's path (`.[0]`)
            }
        }
        JobError::Syntax {
            file: file.to_owned(),
            line: position.map(|(l, _)| l),
            column: position.map(|(_, c)| c),
            message,
        }
    })?;
    let root_line = || locate::line(text, &[]).unwrap_or(1);
    doc.apply_merge().map_err(|err| JobError::Document {
        file: file.to_owned(),
        line: root_line(),
        message: format!("cannot expand a `<<` merge key: {err}"),
    })?;
    match doc {
        Value::Sequence(entries) if !entries.is_empty() => Ok(entries),
        Value::Sequence(_) => Err(JobError::Document {
            file: file.to_owned(),
            line: root_line(),
            message: format!("the list is empty; expected at least one of the {what}"),
        }),
        Value::Null => Err(JobError::Document {
            file: file.to_owned(),
            line: 1,
            message: format!(
                "the file has no content; expected a YAML list of {what} (`{example}`)"
            ),
        }),
        other => Err(JobError::Document {
            file: file.to_owned(),
            line: root_line(),
            message: format!(
                "expected a YAML list of {what}, each starting with `{example}`; got {}",
                describe(&other)
            ),
        }),
    }
}

/// One entry of a list file while it is being validated.
pub struct Entry<'a> {
    text: &'a str,
    file: &'a str,
    index: usize,
    /// 1-based line where the entry starts.
    pub line: usize,
    kind: &'static str,
    desc: String,
}

impl<'a> Entry<'a> {
    /// Entry `index` (0-based) of the list in `text`; `kind` is "job" or "group".
    pub fn new(text: &'a str, file: &'a str, index: usize, kind: &'static str) -> Self {
        Entry {
            text,
            file,
            index,
            line: locate::line(text, &[Seg::Index(index)]).unwrap_or(1),
            kind,
            desc: format!("{kind} #{}", index + 1),
        }
    }

    /// Names the entry in later messages (`job 'big_writes'` instead of `job #1`).
    pub fn set_name(&mut self, name: &str) {
        self.desc = format!("{} '{name}'", self.kind);
    }

    /// 1-based line of the key at `path` inside this entry; the closest enclosing node that
    /// can be found when the key itself cannot (it is missing, or came from a merge key).
    pub fn key_line(&self, path: &[Seg<'_>]) -> usize {
        let mut full = Vec::with_capacity(path.len() + 1);
        full.push(Seg::Index(self.index));
        full.extend_from_slice(path);
        while full.len() > 1 {
            if let Some(line) = locate::line(self.text, &full) {
                return line;
            }
            full.pop();
        }
        self.line
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
    pub fn mapping<'v>(&self, value: &'v Value, example: &str) -> Result<&'v Mapping, JobError> {
        let map = value.as_mapping().ok_or_else(|| {
            self.err(
                &[],
                format!(
                    "expected a mapping of keys (`{example}`), got {}",
                    describe(value)
                ),
            )
        })?;
        self.check_string_keys(map, &[])?;
        Ok(map)
    }

    /// The section `key` of `map` (at `path`): `None` when absent or empty.
    pub fn section<'v>(
        &self,
        map: &'v Mapping,
        path: &[Seg<'_>],
        key: &str,
    ) -> Result<Option<&'v Mapping>, JobError> {
        let mut at = path.to_vec();
        at.push(Seg::Key(key));
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Mapping(section)) => {
                self.check_string_keys(section, &at)?;
                Ok(Some(section))
            }
            Some(other) => Err(self.err(
                &at,
                format!("expected a mapping of settings, got {}", describe(other)),
            )),
        }
    }

    /// Rejects keys of `map` (at `path`) that are not in `allowed`; `hint` may explain where a
    /// misplaced key belongs.
    pub fn check_keys(
        &self,
        map: &Mapping,
        path: &[Seg<'_>],
        allowed: &[&str],
        hint: impl Fn(&str) -> Option<String>,
    ) -> Result<(), JobError> {
        for key in map.keys().filter_map(Value::as_str) {
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

    fn check_string_keys(&self, map: &Mapping, path: &[Seg<'_>]) -> Result<(), JobError> {
        match map.keys().find(|k| !k.is_string()) {
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
        JobError::Read { .. } => None,
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
        let err =
            load_list("- name: a\n  type: [cpu\n", "f.yaml", "jobs", "- name: x").unwrap_err();
        let JobError::Syntax { line, column, .. } = &err else {
            panic!("{err}")
        };
        assert!(line.is_some() && column.is_some(), "{err}");
        assert!(err.to_string().starts_with("f.yaml: line "), "{err}");
        assert!(!err.to_string().contains(" at line "), "{err}");

        let err = load_list("- name: a\n  name: b\n", "f.yaml", "jobs", "- name: x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.yaml: line 2, column 3: invalid YAML: duplicate entry with key \"name\""
        );
    }

    #[test]
    fn wrong_shapes() {
        let err = |t: &str| {
            load_list(t, "f", "jobs", "- name: x")
                .unwrap_err()
                .to_string()
        };
        assert!(err("").contains("no content"));
        assert!(err("# only a comment\n").contains("no content"));
        assert!(err("[]").contains("empty"));
        assert!(err("\n\nname: x\n").contains("line 3: expected a YAML list of jobs"));
    }
}
