//! Scheduling groups (`--sched-groups FILE`) and the jobs' `class` references to them.
//!
//! ```yaml
//! - name: background
//!   shares: 100
//! - name: compaction
//!   shares: 50
//!   parent: background     # nests under `background`
//! ```

use std::collections::HashMap;

use serde::Serialize;

use super::job::Job;
use super::locate::Seg::Key;
use super::reader::{load_list, Entry};
use super::units::{text_value, u32_value};
use super::JobError;

/// Keys allowed in a scheduling group.
const GROUP_KEYS: &[&str] = &["name", "shares", "parent"];

/// One scheduling group of a `--sched-groups` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchedGroup {
    /// `name`: unique within the file, non-empty. Required. Jobs join the group with
    /// `shard_info.class: <name>`.
    pub name: String,
    /// `shares`: the group's share of its parent's (or the whole disk's) capacity. Required;
    /// at least 1.
    pub shares: u32,
    /// `parent`: the group this one nests under; must be defined in the same file (before or
    /// after), and parents may not form a cycle. Default none (a top-level group).
    pub parent: Option<String>,
    /// 1-based line of the group in its file.
    pub line: usize,
}

/// Parses and validates a scheduling-group file: a YAML list of `{name, shares, parent}`.
/// `source` names the file in errors.
///
/// # Errors
///
/// The first problem found, as a [`JobError`] naming `source`, the group, the key and the line:
/// invalid YAML, not a non-empty list, an unknown key, a missing or invalid `name` or `shares`,
/// a duplicate name, a `parent` that names no group, or parents that form a cycle.
pub fn parse_sched_groups(text: &str, source: &str) -> Result<Vec<SchedGroup>, JobError> {
    let entries = load_list(text, source, "scheduling groups", "- name: ...")?;
    let mut groups: Vec<SchedGroup> = Vec::with_capacity(entries.len());
    let mut readers = Vec::with_capacity(entries.len());
    let mut by_name: HashMap<String, usize> = HashMap::new();

    for (index, value) in entries.iter().enumerate() {
        let mut entry = Entry::new(text, source, index, "group");
        let map = entry.mapping(value, "name: ..., shares: ...")?;
        let name = match map.get("name") {
            None => {
                return Err(entry.err(&[Key("name")], "missing; every group needs a unique `name`"))
            }
            Some(v) => text_value(v).map_err(|m| entry.err(&[Key("name")], m))?,
        };
        if name.is_empty() {
            return Err(entry.err(&[Key("name")], "must not be empty"));
        }
        entry.set_name(&name);
        entry.check_keys(map, &[], GROUP_KEYS, |_| None)?;
        let shares = match map.get("shares") {
            None => {
                return Err(entry.err(
                    &[Key("shares")],
                    "missing; expected the group's shares, at least 1",
                ))
            }
            Some(v) => u32_value(v).map_err(|m| entry.err(&[Key("shares")], m))?,
        };
        if shares == 0 {
            return Err(entry.err(&[Key("shares")], "must be at least 1, got 0"));
        }
        let parent = match map.get("parent") {
            None | Some(serde_yaml::Value::Null) => None,
            Some(v) => Some(text_value(v).map_err(|m| entry.err(&[Key("parent")], m))?),
        };
        if let Some(&first) = by_name.get(&name) {
            return Err(entry.err(
                &[Key("name")],
                format!(
                    "duplicate group name: the group at line {} already uses it; names must be unique",
                    groups[first].line
                ),
            ));
        }
        by_name.insert(name.clone(), groups.len());
        groups.push(SchedGroup {
            name,
            shares,
            parent,
            line: entry.line,
        });
        readers.push(entry);
    }

    for (group, entry) in groups.iter().zip(&readers) {
        if let Some(parent) = &group.parent {
            if !by_name.contains_key(parent) {
                return Err(entry.err(
                    &[Key("parent")],
                    format!(
                        "unknown group `{parent}`; a parent must be one of the groups of this file"
                    ),
                ));
            }
        }
    }

    // Follow each group's parent chain; a chain longer than the number of groups loops.
    for (start, entry) in readers.iter().enumerate() {
        let mut chain = vec![start];
        let mut at = start;
        while let Some(parent) = &groups[at].parent {
            at = by_name[parent];
            if at == start {
                let names: Vec<&str> = chain
                    .iter()
                    .chain([&start])
                    .map(|&i| groups[i].name.as_str())
                    .collect();
                return Err(entry.err(
                    &[Key("parent")],
                    format!("parents form a cycle: {}", names.join(" -> ")),
                ));
            }
            if chain.len() > groups.len() {
                break; // a cycle that does not pass through `start`; reported from a member
            }
            chain.push(at);
        }
    }
    Ok(groups)
}

/// Checks that every job's `shard_info.class` names an existing class: a group of the
/// `--sched-groups` file (when given), or another job without `class` (the reference gives
/// each such job a class named after it, which other jobs may share). Errors point at the job's
/// line. `source` names the job file.
///
/// # Errors
///
/// [`JobError::Entry`] for the first job whose class names nothing.
pub fn check_job_classes(
    jobs: &[Job],
    groups: Option<&[SchedGroup]>,
    source: &str,
) -> Result<(), JobError> {
    for job in jobs {
        let Some(class) = &job.shard_info.class else {
            continue;
        };
        let in_groups = groups.is_some_and(|g| g.iter().any(|g| &g.name == class));
        let own_class = jobs
            .iter()
            .any(|j| &j.name == class && j.shard_info.class.is_none());
        if !in_groups && !own_class {
            let known = match groups {
                Some(_) => "neither a group of the --sched-groups file nor a job without `class`",
                None => "no job without `class`, and no --sched-groups file was given",
            };
            return Err(JobError::Entry {
                file: source.to_owned(),
                entry: format!("job '{}'", job.name),
                line: job.line,
                key: "shard_info.class".to_owned(),
                key_line: job.line,
                message: format!("unknown class `{class}`: it names {known}"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::parse_jobs;
    use crate::workload::reader::line_of;

    fn fails(text: &str, entry: &str, key: &str, line: usize, what: &str) {
        let err = parse_sched_groups(text, "g.yaml").expect_err(text);
        let msg = err.to_string();
        assert!(msg.starts_with("g.yaml: "), "{msg}");
        assert!(msg.contains(entry), "no `{entry}` in: {msg}");
        assert!(
            msg.contains(&format!("key '{key}'")),
            "no key `{key}` in: {msg}"
        );
        assert_eq!(line_of(&err), Some(line), "{msg}");
        assert!(msg.contains(what), "no `{what}` in: {msg}");
    }

    #[test]
    fn groups_parse() {
        let text = "\
- name: child
  shares: 50
  parent: top
- name: top
  shares: 200
- {name: grandchild, shares: 1, parent: child}
";
        let g = parse_sched_groups(text, "g.yaml").unwrap();
        assert_eq!(g.len(), 3);
        assert_eq!(
            g[0],
            SchedGroup {
                name: "child".into(),
                shares: 50,
                parent: Some("top".into()),
                line: 1
            }
        );
        assert_eq!(
            (
                g[1].name.as_str(),
                g[1].shares,
                g[1].parent.as_ref(),
                g[1].line
            ),
            ("top", 200, None, 4)
        );
        assert_eq!((g[2].parent.as_deref(), g[2].line), (Some("child"), 6));
    }

    #[test]
    fn group_errors() {
        fails(
            "- name: a\n  shares: 1\n  parent: nowhere\n",
            "group 'a' (line 1)",
            "parent",
            3,
            "unknown group `nowhere`",
        );
        fails(
            "- name: a\n  shares: 1\n- name: b\n  shares: 2\n- name: a\n  shares: 3\n",
            "group 'a' (line 5)",
            "name",
            5,
            "the group at line 1 already uses it",
        );
        fails(
            "- name: a\n  shares: 1\n  parent: c\n- name: b\n  shares: 1\n  parent: a\n- name: c\n  shares: 1\n  parent: b\n",
            "group 'a' (line 1)",
            "parent",
            3,
            "cycle: a -> c -> b -> a",
        );
        fails(
            "- {name: a, shares: 1}\n- {name: s, shares: 1, parent: s}\n",
            "group 's' (line 2)",
            "parent",
            2,
            "cycle: s -> s",
        );
        fails(
            "- name: a\n  shares: 0\n",
            "group 'a'",
            "shares",
            2,
            "at least 1",
        );
        fails(
            "- name: a\n  shares: -5\n",
            "group 'a'",
            "shares",
            2,
            "negative",
        );
        fails("- name: a\n", "group 'a'", "shares", 1, "missing");
        fails("- shares: 1\n", "group #1", "name", 1, "missing");
        fails(
            "- name: a\n  shares: 1\n  weight: 3\n",
            "group 'a'",
            "weight",
            3,
            "unknown key",
        );
    }

    #[test]
    fn job_classes() {
        let jobs = parse_jobs(
            "\
- {name: main, type: randread, shards: all, shard_info: {shares: 100}}
- {name: helper, type: randread, shards: all, shard_info: {class: main}}
- {name: bg, type: randread, shards: all, shard_info: {class: background}}
",
            "j.yaml",
        )
        .unwrap();
        let groups = parse_sched_groups("- {name: background, shares: 10}\n", "g").unwrap();
        check_job_classes(&jobs, Some(&groups), "j.yaml").unwrap();
        let err = check_job_classes(&jobs, None, "j.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("j.yaml: job 'bg' (line 3): key 'shard_info.class'"),
            "{err}"
        );
        assert!(err.contains("unknown class `background`"), "{err}");
        let err = check_job_classes(&jobs[2..], Some(&groups[..0]), "j.yaml").unwrap_err();
        assert!(err.to_string().contains("neither a group"), "{err}");
    }
}
