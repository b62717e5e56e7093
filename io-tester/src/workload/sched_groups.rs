//! Scheduling groups (`--sched-groups FILE`), and which class each job runs in: its own, a
//! group's, or another job's (`shard_info.class`, see [`resolve_job_classes`]).
//!
//! ```yaml
//! - name: background
//!   shares: 100
//! - name: compaction
//!   shares: 50
//!   parent: background     # nests under `background`
//! ```

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

use serde::Serialize;

use super::job::Job;
use super::reader::Seg::Key;
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
/// [`JobError::TooLarge`] for a text over 16 MiB, which is not parsed.
pub fn parse_sched_groups(text: &str, source: &str) -> Result<Vec<SchedGroup>, JobError> {
    parse_sched_groups_with_stop(text, source, None)
}

/// [`parse_sched_groups`], giving up as soon as `stop` is set (it is read while parsing and
/// between groups).
///
/// # Errors
///
/// As [`parse_sched_groups`], and [`JobError::Interrupted`] once `stop` is set.
pub fn parse_sched_groups_with_stop(
    text: &str,
    source: &str,
    stop: Option<&AtomicBool>,
) -> Result<Vec<SchedGroup>, JobError> {
    let entries = load_list(text, source, "scheduling groups", "- name: ...", stop)?;
    let mut groups: Vec<SchedGroup> = Vec::with_capacity(entries.len());
    let mut readers = Vec::with_capacity(entries.len());
    let mut by_name: HashMap<String, usize> = HashMap::new();

    for (index, value) in entries.iter().enumerate() {
        super::check_stop(stop, source)?;
        let mut entry = Entry::new(value, source, index, "group");
        let map = entry.mapping("name: ..., shares: ...")?;
        let name = match map.get("name") {
            None => {
                return Err(entry.err(&[Key("name")], "missing; every group needs a unique `name`"))
            }
            Some(v) => text_value(v).map_err(|m| entry.err(&[Key("name")], m))?,
        };
        if name.is_empty() {
            return Err(entry.err(&[Key("name")], "must not be empty"));
        }
        if name.contains(char::is_control) {
            return Err(entry.err(
                &[Key("name")],
                format!("`{name}` cannot be used: a group name must contain no control character"),
            ));
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
            None => None,
            Some(v) if v.is_null() => None,
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

    // Follow each group's parent chain, once per group in all: a chain that reaches a group
    // already known to end at the top is not walked again. A chain that comes back to a group
    // on itself is a cycle, reported from the first group of the file on it.
    let parent_of: Vec<Option<usize>> = groups
        .iter()
        .map(|g| g.parent.as_ref().and_then(|p| by_name.get(p).copied()))
        .collect();
    if let Some(cycle) = first_cycle(&parent_of) {
        let start = cycle[0];
        let names: Vec<&str> = cycle
            .iter()
            .chain([&start])
            .map(|&i| groups[i].name.as_str())
            .collect();
        return Err(readers[start].err(
            &[Key("parent")],
            format!("parents form a cycle: {}", names.join(" -> ")),
        ));
    }
    Ok(groups)
}

/// The members of the cycle of `next` links that holds the lowest index, starting from that
/// index and in link order; `None` if the links form no cycle. Linear: each index is walked
/// once.
fn first_cycle(next: &[Option<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        OnPath,
        Done,
    }
    let mut state = vec![State::New; next.len()];
    let mut found: Option<Vec<usize>> = None;
    for start in 0..next.len() {
        let mut path = Vec::new();
        let mut at = Some(start);
        while let Some(i) = at {
            match state[i] {
                State::Done => break,
                State::OnPath => {
                    // `i` is on the current path: the cycle is the path from `i` on.
                    let from = path.iter().position(|&p| p == i).unwrap_or(0);
                    let cycle = &path[from..];
                    let low = cycle.iter().copied().min().unwrap_or(i);
                    if found.as_ref().is_none_or(|f| low < f[0]) {
                        let turn = cycle.iter().position(|&p| p == low).unwrap_or(0);
                        let mut ordered = cycle[turn..].to_vec();
                        ordered.extend_from_slice(&cycle[..turn]);
                        found = Some(ordered);
                    }
                    break;
                }
                State::New => {
                    state[i] = State::OnPath;
                    path.push(i);
                    at = next[i];
                }
            }
        }
        for &p in &path {
            state[p] = State::Done;
        }
    }
    found
}

/// The class a job runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClassKey {
    /// The class of a `--sched-groups` group without subgroups (index into the groups).
    Group(usize),
    /// A class of the job `job` (index into the jobs), named after it, with its `shares`:
    /// at the top level, or nested in the group `parent` (one that has subgroups).
    Job {
        /// The owning job.
        job: usize,
        /// The group (index) it nests in.
        parent: Option<usize>,
    },
}

/// Where one job runs: its class, and that class's bandwidth limit (bytes per second, for all
/// shards together) as any of the jobs in the class gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobClass {
    /// The class.
    pub key: ClassKey,
    /// The class's bandwidth limit.
    pub bandwidth: Option<u64>,
}

/// Checks every job's `shard_info.class`; see [`resolve_job_classes`].
///
/// # Errors
///
/// As [`resolve_job_classes`].
pub fn check_job_classes(
    jobs: &[Job],
    groups: Option<&[SchedGroup]>,
    source: &str,
) -> Result<(), JobError> {
    resolve_job_classes(jobs, groups, source).map(|_| ())
}

/// Decides each job's class (in job order). `shard_info.class` may name:
///
/// - a group of the `--sched-groups` file without subgroups: the job runs in that group's
///   class (shared with every other job naming it);
/// - a group with subgroups: the job gets a class of its own, nested in that group, with the
///   job's `shares` (as in Seastar, where a supergroup holds scheduling groups);
/// - another job: the job shares that job's class, whatever that one resolves to (chains are
///   followed; the order of the jobs in the file does not matter).
///
/// A job without `class` gets a class of its own at the top level. `shares` together with
/// `class` is only valid for a group with subgroups; otherwise the class's shares are those of
/// the group or job that owns it. A `bandwidth` applies to the job's class: jobs sharing a class
/// may not give different limits. Errors point at the job and the key; `source` names the job
/// file.
///
/// # Errors
///
/// [`JobError::Entry`] for the first job whose class names nothing, names both a group and a
/// job, closes a cycle of jobs naming each other, comes with `shares` it cannot use, or whose
/// `bandwidth` contradicts that of another job in the same class.
pub fn resolve_job_classes(
    jobs: &[Job],
    groups: Option<&[SchedGroup]>,
    source: &str,
) -> Result<Vec<JobClass>, JobError> {
    let groups = groups.unwrap_or(&[]);
    let group_by_name: HashMap<&str, usize> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.name.as_str(), i))
        .collect();
    let group_index = |name: &str| group_by_name.get(name).copied();
    let mut parents_of_others = vec![false; groups.len()];
    for g in groups {
        if let Some(p) = g.parent.as_deref().and_then(group_index) {
            parents_of_others[p] = true;
        }
    }
    let has_subgroups = |gi: usize| parents_of_others[gi];
    let job_index: HashMap<&str, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.name.as_str(), i))
        .collect();
    let err = |job: &Job, key: &str, key_line: Option<usize>, message: String| JobError::Entry {
        file: source.to_owned(),
        entry: format!("job '{}'", job.name),
        line: job.line,
        key: format!("shard_info.{key}"),
        key_line: key_line.unwrap_or(job.line),
        message,
    };
    let class_err =
        |job: &Job, message: String| err(job, "class", job.shard_info.key_lines.class, message);

    // Each job's own step: a class, or "the class of job k".
    enum Step {
        Class(ClassKey),
        SameAs(usize),
    }
    let mut steps = Vec::with_capacity(jobs.len());
    for (ji, job) in jobs.iter().enumerate() {
        let si = &job.shard_info;
        let step = match &si.class {
            None => Step::Class(ClassKey::Job {
                job: ji,
                parent: None,
            }),
            Some(class) => match (group_index(class), job_index.get(class.as_str())) {
                (Some(_), Some(_)) => {
                    return Err(class_err(
                        job,
                        format!(
                            "`{class}` names both a group of the --sched-groups file and a job; \
                             rename one of them"
                        ),
                    ))
                }
                (Some(gi), None) if has_subgroups(gi) => Step::Class(ClassKey::Job {
                    job: ji,
                    parent: Some(gi),
                }),
                (Some(gi), None) => Step::Class(ClassKey::Group(gi)),
                (None, Some(&k)) if k == ji => {
                    return Err(class_err(
                        job,
                        format!(
                            "`{class}` is this job itself; leave `class` out for a class of its own"
                        ),
                    ))
                }
                (None, Some(&k)) => Step::SameAs(k),
                (None, None) => {
                    let known = if groups.is_empty() {
                        "no job, and no --sched-groups group"
                    } else {
                        "neither a group of the --sched-groups file nor a job"
                    };
                    return Err(class_err(
                        job,
                        format!("unknown class `{class}`: it names {known}"),
                    ));
                }
            },
        };
        if let (Some(class), Some(_)) = (&si.class, si.key_lines.shares) {
            let nested = matches!(
                step,
                Step::Class(ClassKey::Job {
                    parent: Some(_),
                    ..
                })
            );
            if !nested {
                return Err(err(
                    job,
                    "shares",
                    si.key_lines.shares,
                    format!(
                        "cannot be combined with `class: {class}`: the job runs in that existing \
                         class, whose shares are its owner's; `shares` with `class` only applies \
                         when `class` names a --sched-groups group with subgroups (the job then \
                         gets a class of its own nested in that group)"
                    ),
                ));
            }
        }
        steps.push(step);
    }

    // Follow the "same class as" chains; each job's class is found once, so a long chain
    // costs its length, not its length squared.
    let mut resolved: Vec<Option<ClassKey>> = vec![None; jobs.len()];
    let mut on_chain = vec![false; jobs.len()];
    for (ji, job) in jobs.iter().enumerate() {
        let mut chain = vec![ji];
        on_chain[ji] = true;
        let key = loop {
            let last = chain[chain.len() - 1];
            if let Some(key) = resolved[last] {
                break key;
            }
            match steps[last] {
                Step::Class(key) => break key,
                Step::SameAs(k) if on_chain[k] => {
                    let names: Vec<&str> = chain
                        .iter()
                        .chain([&k])
                        .map(|&i| jobs[i].name.as_str())
                        .collect();
                    return Err(class_err(
                        job,
                        format!(
                            "jobs name each other's class in a cycle: {}; one of them needs a \
                             class of its own (no `class`) or a group",
                            names.join(" -> ")
                        ),
                    ));
                }
                Step::SameAs(k) => {
                    on_chain[k] = true;
                    chain.push(k);
                }
            }
        };
        for &c in &chain {
            resolved[c] = Some(key);
            on_chain[c] = false;
        }
    }
    let keys: Vec<ClassKey> = resolved.into_iter().flatten().collect();

    // One bandwidth limit per class.
    let mut limits: HashMap<ClassKey, (u64, usize)> = HashMap::new();
    for (ji, job) in jobs.iter().enumerate() {
        let Some(b) = job.shard_info.bandwidth else {
            continue;
        };
        match limits.get(&keys[ji]) {
            Some(&(other, owner)) if other != b => {
                let name = match keys[ji] {
                    ClassKey::Group(gi) => format!("group `{}`", groups[gi].name),
                    ClassKey::Job { job, .. } => format!("the class of job '{}'", jobs[job].name),
                };
                return Err(err(
                    job,
                    "bandwidth",
                    job.shard_info.key_lines.bandwidth,
                    format!(
                        "{b} bytes/s, but this job runs in {name}, which job '{}' (line {}) \
                         limits to {other} bytes/s; a class has one limit: give the same value, \
                         or give it on one job only",
                        jobs[owner].name, jobs[owner].line
                    ),
                ));
            }
            Some(_) => {}
            None => {
                limits.insert(keys[ji], (b, ji));
            }
        }
    }
    Ok(keys
        .into_iter()
        .map(|key| JobClass {
            key,
            bandwidth: limits.get(&key).map(|&(b, _)| b),
        })
        .collect())
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
        assert!(err.to_string().contains("no --sched-groups group"), "{err}");
        let err = check_job_classes(&jobs[2..], Some(&groups[..]), "j.yaml");
        assert!(err.is_ok());
        let other = parse_sched_groups("- {name: other, shares: 10}\n", "g").unwrap();
        let err = check_job_classes(&jobs[2..], Some(&other), "j.yaml").unwrap_err();
        assert!(err.to_string().contains("neither a group"), "{err}");
    }

    fn resolve(jobs: &str, groups: &str) -> Result<Vec<JobClass>, JobError> {
        let jobs = parse_jobs(jobs, "j.yaml").unwrap();
        let groups = parse_sched_groups(groups, "g").unwrap();
        resolve_job_classes(&jobs, Some(&groups), "j.yaml")
    }

    const GROUPS: &str = "\
- {name: top, shares: 1000}
- {name: leaf, shares: 100, parent: top}
";

    #[test]
    fn classes_resolve_in_any_order() {
        let c = resolve(
            "\
- {name: a, type: randread, shards: all, shard_info: {class: b}}
- {name: b, type: randread, shards: all, shard_info: {class: c, bandwidth: 1MB}}
- {name: c, type: randread, shards: all, shard_info: {class: top, shares: 50}}
- {name: d, type: randread, shards: all, shard_info: {class: leaf}}
- {name: e, type: randread, shards: all}
",
            GROUPS,
        )
        .unwrap();
        let nested_c = ClassKey::Job {
            job: 2,
            parent: Some(0),
        };
        let keys: Vec<ClassKey> = c.iter().map(|c| c.key).collect();
        assert_eq!(
            keys,
            [
                nested_c,
                nested_c,
                nested_c,
                ClassKey::Group(1),
                ClassKey::Job {
                    job: 4,
                    parent: None
                }
            ]
        );
        // b's limit holds for the class a, b and c share.
        let limits: Vec<Option<u64>> = c.iter().map(|c| c.bandwidth).collect();
        assert_eq!(
            limits,
            [Some(1 << 20), Some(1 << 20), Some(1 << 20), None, None]
        );
    }

    #[test]
    fn class_errors() {
        let msg = |jobs: &str| resolve(jobs, GROUPS).unwrap_err().to_string();
        let m = msg("- {name: a, type: randread, shards: all, shard_info: {class: b}}\n- {name: b, type: randread, shards: all, shard_info: {class: a}}\n");
        assert!(
            m.contains("job 'a' (line 1): key 'shard_info.class'"),
            "{m}"
        );
        assert!(m.contains("cycle: a -> b -> a"), "{m}");
        let m = msg("- {name: a, type: randread, shards: all, shard_info: {class: a}}\n");
        assert!(m.contains("this job itself"), "{m}");
        let m =
            msg("- {name: a, type: randread, shards: all, shard_info: {class: leaf, shares: 5}}\n");
        assert!(m.contains("key 'shard_info.shares'"), "{m}");
        assert!(m.contains("cannot be combined with `class: leaf`"), "{m}");
        let m = msg("- {name: a, type: randread, shards: all}\n- {name: b, type: randread, shards: all, shard_info: {class: a, shares: 5}}\n");
        assert!(
            m.contains("job 'b' (line 2): key 'shard_info.shares'"),
            "{m}"
        );
        let m = msg("- {name: top, type: randread, shards: all}\n- {name: b, type: randread, shards: all, shard_info: {class: top}}\n");
        assert!(m.contains("names both a group"), "{m}");
        let m = msg("\
- name: a
  type: randread
  shards: all
  shard_info: {class: leaf, bandwidth: 1MB}
- name: b
  type: randread
  shards: all
  shard_info:
    class: leaf
    bandwidth: 2MB
");
        assert!(
            m.contains("job 'b' (line 5): key 'shard_info.bandwidth' (line 10)"),
            "{m}"
        );
        assert!(
            m.contains("group `leaf`, which job 'a' (line 1) limits to 1048576"),
            "{m}"
        );
        // The same limit twice is fine.
        resolve(
            "- {name: a, type: randread, shards: all, shard_info: {bandwidth: 1MB}}\n- {name: b, type: randread, shards: all, shard_info: {class: a, bandwidth: 1MB}}\n",
            GROUPS,
        )
        .unwrap();
    }

    /// A long chain of parents was walked once per group (quadratic); now each group is
    /// walked once, and a cycle at the end of the chain is still found.
    #[test]
    fn long_parent_chains_are_linear() {
        let n = 20_000;
        let mut text = String::from("- {name: g0, shares: 1}\n");
        for i in 1..n {
            text.push_str(&format!(
                "- {{name: g{i}, shares: 1, parent: g{}}}\n",
                i - 1
            ));
        }
        let t = std::time::Instant::now();
        assert_eq!(parse_sched_groups(&text, "g.yaml").unwrap().len(), n);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
        let cyclic = text.replacen(
            "- {name: g0, shares: 1}",
            "- {name: g0, shares: 1, parent: g3}",
            1,
        );
        fails(
            &cyclic,
            "group 'g0' (line 1)",
            "parent",
            1,
            "cycle: g0 -> g3 -> g2 -> g1 -> g0",
        );
    }

    #[test]
    fn control_characters_are_refused_in_group_names() {
        fails(
            "- {name: \"bg\\n\", shares: 1}\n",
            "group #1",
            "name",
            1,
            "`bg\\n` cannot be used",
        );
    }
}
