//! The workload description: job files (`--conf`) and scheduling-group files (`--sched-groups`).
//!
//! A job file is a YAML list of jobs, in the reference's format (see
//! `shared/reference/io-tester.md`, "Job file"); Seastar's own `conf.yaml` parses unchanged.
//! Reading follows two steps: the text is loaded leniently into a [`serde_yaml::Value`], then
//! every entry is validated by hand into typed structs ([`Job`], [`SchedGroup`]). Unlike the
//! reference, which reads the keys it knows and ignores the rest, unknown keys are rejected: a
//! misspelt `think_tme` would otherwise run a different benchmark than the one written down.
//!
//! Every error names the file, the entry, the key and the line ([`JobError`]). The text is parsed
//! once into a [`scheduler::yaml`] tree that keeps each node's and key's line; files over 16 MiB
//! ([`scheduler::yaml::MAX_INPUT_BYTES`]) are refused unread, and loading checks the caller's stop
//! flag (SIGINT, SIGTERM) as it goes. Control characters of the file's text are escaped in
//! messages.
//!
//! The hidden `--check-conf FILE` mode of the binary ([`check_conf_cli`]) parses a job file and
//! prints the result as JSON, for tests and for checking a file before a long run.

pub mod job;
mod reader;
pub mod sched_groups;
pub mod units;

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

// The entry points; the types they return live in `job` and `sched_groups`
// (`workload::job::JobKind`, ...), sizes and durations in `units`.
pub use job::{check_shards, parse_jobs, parse_jobs_with_stop, per_shard_data_size, Job};
pub use sched_groups::{
    check_job_classes, parse_sched_groups, parse_sched_groups_with_stop, resolve_job_classes,
    ClassKey, JobClass, SchedGroup,
};

/// Why a job file or a scheduling-group file was rejected.
///
/// The `Display` text is complete and meant for the user (control characters escaped), e.g.
/// `conf.yaml: job 'big_writes' (line 1): key 'shard_info.reqsize' (line 6): must be a multiple
/// of 512 bytes ...`.
#[derive(Debug)]
pub enum JobError {
    /// The file could not be read.
    Read {
        /// The file as named by the user.
        file: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The file has more than [`scheduler::yaml::MAX_INPUT_BYTES`] (16 MiB); it is not read.
    TooLarge {
        /// The file as named by the user.
        file: String,
        /// Its size in bytes, when known (not for a pipe).
        size: Option<u64>,
        /// What it should hold: "jobs", "scheduling groups".
        what: &'static str,
    },
    /// The stop flag was set (SIGINT, SIGTERM) while the file was being read.
    Interrupted {
        /// The file as named by the user.
        file: String,
    },
    /// The text is not valid YAML (bad indentation, unclosed bracket, duplicate key, ...).
    Syntax {
        /// The file (or other source) name.
        file: String,
        /// 1-based line of the problem, when the YAML parser reports one.
        line: Option<usize>,
        /// 1-based column of the problem, when the YAML parser reports one.
        column: Option<usize>,
        /// The parser's description of the problem.
        message: String,
    },
    /// Valid YAML of the wrong overall shape (not a list, an empty list, an entry that is not a
    /// mapping).
    Document {
        /// The file (or other source) name.
        file: String,
        /// 1-based line of the offending node.
        line: usize,
        /// What is wrong and what is expected.
        message: String,
    },
    /// One entry (a job or a scheduling group) has a missing, unknown or invalid key.
    Entry {
        /// The file (or other source) name.
        file: String,
        /// The entry: `job 'name'`, `group 'name'`, or `job #3` (1-based) before its name is
        /// known.
        entry: String,
        /// 1-based line where the entry starts.
        line: usize,
        /// The key, with its section (`shard_info.reqsize`); a list element is shown as
        /// `shards[1]`. Empty when the whole entry is at fault.
        key: String,
        /// 1-based line of the key (the entry's line when the key is missing).
        key_line: usize,
        /// What is wrong and what is expected.
        message: String,
    },
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A name or key with a NUL or an escape sequence must not reach the terminal raw.
        let text = Unescaped(self).to_string();
        f.write_str(&scheduler::yaml::escape_controls(&text))
    }
}

/// The message of a [`JobError`] before control characters are escaped.
struct Unescaped<'a>(&'a JobError);

impl fmt::Display for Unescaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            JobError::Read { file, source } => write!(f, "{file}: cannot read the file: {source}"),
            JobError::TooLarge { file, size, what } => write!(
                f,
                "{file}: {}; that is far more {what} than a run can use: check that this is the \
                 right file",
                scheduler::yaml::ReadError::TooLarge {
                    size: *size,
                    limit: scheduler::yaml::MAX_INPUT_BYTES
                }
            ),
            JobError::Interrupted { file } => write!(f, "{file}: interrupted while reading"),
            JobError::Syntax {
                file,
                line,
                column,
                message,
            } => {
                write!(f, "{file}: ")?;
                match (line, column) {
                    (Some(l), Some(c)) => write!(f, "line {l}, column {c}: ")?,
                    (Some(l), None) => write!(f, "line {l}: ")?,
                    _ => {}
                }
                write!(f, "invalid YAML: {message}")
            }
            JobError::Document {
                file,
                line,
                message,
            } => {
                write!(f, "{file}: line {line}: {message}")
            }
            JobError::Entry {
                file,
                entry,
                line,
                key,
                key_line,
                message,
            } => {
                write!(f, "{file}: {entry} (line {line}): ")?;
                if !key.is_empty() {
                    write!(f, "key '{key}'")?;
                    if key_line != line {
                        write!(f, " (line {key_line})")?;
                    }
                    write!(f, ": ")?;
                }
                write!(f, "{message}")
            }
        }
    }
}

impl std::error::Error for JobError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JobError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Reads a file as UTF-8 text, naming it in the error; refuses more than
/// [`scheduler::yaml::MAX_INPUT_BYTES`] without reading it.
fn read_text(path: &Path, what: &'static str) -> Result<String, JobError> {
    let file = || path.display().to_string();
    scheduler::yaml::read_file(path, scheduler::yaml::MAX_INPUT_BYTES).map_err(|e| match e {
        scheduler::yaml::ReadError::Io(source) => JobError::Read {
            file: file(),
            source,
        },
        scheduler::yaml::ReadError::TooLarge { size, .. } => JobError::TooLarge {
            file: file(),
            size,
            what,
        },
    })
}

/// [`JobError::Interrupted`] once `stop` is set.
fn check_stop(stop: Option<&AtomicBool>, file: &str) -> Result<(), JobError> {
    match stop {
        Some(s) if s.load(Ordering::Relaxed) => Err(JobError::Interrupted {
            file: file.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Reads and parses a job file; see [`parse_jobs`]. `stop` (set on SIGINT or SIGTERM) ends
/// reading as soon as it is set.
///
/// # Errors
///
/// [`JobError::Read`] if the file cannot be read, [`JobError::TooLarge`] over 16 MiB,
/// [`JobError::Interrupted`] once `stop` is set, otherwise as [`parse_jobs`].
pub fn read_jobs_file(path: &Path, stop: Option<&AtomicBool>) -> Result<Vec<Job>, JobError> {
    check_stop(stop, &path.display().to_string())?;
    parse_jobs_with_stop(&read_text(path, "jobs")?, &path.display().to_string(), stop)
}

/// Reads and parses a scheduling-group file; see [`parse_sched_groups`]. `stop` as for
/// [`read_jobs_file`].
///
/// # Errors
///
/// [`JobError::Read`] if the file cannot be read, [`JobError::TooLarge`] over 16 MiB,
/// [`JobError::Interrupted`] once `stop` is set, otherwise as [`parse_sched_groups`].
pub fn read_sched_groups_file(
    path: &Path,
    stop: Option<&AtomicBool>,
) -> Result<Vec<SchedGroup>, JobError> {
    check_stop(stop, &path.display().to_string())?;
    parse_sched_groups_with_stop(
        &read_text(path, "scheduling groups")?,
        &path.display().to_string(),
        stop,
    )
}

/// Usage of the hidden check mode.
const CHECK_CONF_USAGE: &str = "usage: io-tester --check-conf FILE [--sched-groups FILE] [--smp N]";

/// The hidden `--check-conf FILE [--sched-groups FILE] [--smp N]` mode; `args` are the
/// arguments after `--check-conf`.
///
/// Parses the job file (and the scheduling-group file, checking every job's `class` against
/// it), then prints one JSON object on stdout: `jobs` (each job with its durations in
/// nanoseconds and its `data_size_per_shard` for `N` shards, default: the number of CPUs),
/// `smp`, and `sched_groups` when a group file is given. Exits 0, or 2 with the error on stderr.
pub fn check_conf_cli(args: &[OsString]) -> ExitCode {
    match check_conf(args) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("io-tester: {message}");
            ExitCode::from(2)
        }
    }
}

/// [`check_conf_cli`] without the printing: the JSON text, or the error message.
fn check_conf(args: &[OsString]) -> Result<String, String> {
    let mut conf = None;
    let mut groups_file = None;
    let mut smp = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value; {CHECK_CONF_USAGE}"))
        };
        match arg.to_str() {
            Some("--sched-groups") => groups_file = Some(value("--sched-groups")?),
            Some("--smp") => {
                let n = value("--smp")?;
                let n = n
                    .to_str()
                    .and_then(|s| s.parse::<u32>().ok())
                    .filter(|&n| n > 0);
                smp = Some(n.ok_or_else(|| {
                    format!("--smp needs a positive integer; {CHECK_CONF_USAGE}")
                })?);
            }
            _ if conf.is_none() => conf = Some(arg.clone()),
            _ => return Err(format!("unexpected argument {arg:?}; {CHECK_CONF_USAGE}")),
        }
    }
    let conf = conf.ok_or_else(|| CHECK_CONF_USAGE.to_owned())?;
    let smp = smp.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
    });

    let jobs = read_jobs_file(Path::new(&conf), None).map_err(|e| e.to_string())?;
    let groups = match &groups_file {
        Some(path) => {
            Some(read_sched_groups_file(Path::new(path), None).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    check_shards(&jobs, smp, &Path::new(&conf).display().to_string()).map_err(|e| e.to_string())?;
    check_job_classes(
        &jobs,
        groups.as_deref(),
        &Path::new(&conf).display().to_string(),
    )
    .map_err(|e| e.to_string())?;

    #[derive(serde::Serialize)]
    struct CheckedJob<'a> {
        #[serde(flatten)]
        job: &'a Job,
        data_size_per_shard: u64,
    }
    #[derive(serde::Serialize)]
    struct Checked<'a> {
        smp: u32,
        jobs: Vec<CheckedJob<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        sched_groups: Option<&'a [SchedGroup]>,
    }
    let checked = Checked {
        smp,
        jobs: jobs
            .iter()
            .map(|job| CheckedJob {
                job,
                data_size_per_shard: per_shard_data_size(job, smp),
            })
            .collect(),
        sched_groups: groups.as_deref(),
    };
    serde_json::to_string_pretty(&checked).map_err(|e| format!("cannot encode JSON: {e}"))
}
