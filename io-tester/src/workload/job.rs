//! Jobs: the typed, validated form of one entry of a job file.
//!
//! ```yaml
//! - name: latency_reads        # unique
//!   type: randread             # seqread, overwrite (alias seqwrite), randread, randwrite,
//!                              # append, cpu, unlink
//!   shards: [0]                # or `all`
//!   data_size: 1GB             # total for the job, split between its shards
//!   shard_info:
//!     parallelism: 1
//!     reqsize: 512
//!     shares: 100
//!     think_time: 1000us
//!   options:
//!     sleep_type: steady
//! ```
//!
//! Sizes are bytes, written as integers or with a binary suffix (`256kB` = 262144, `1GB`, the
//! io-properties suffixes `k`/`M`/`G`/`T` with optional `i`/`iB`/`B`). Durations are `0` or an
//! integer with `ns`, `us`, `ms` or `s`. Defaults are given on each field.
//!
//! Beyond the reference's own checks, a key that has no effect for the job's type (or without
//! another key it depends on) is an error rather than a silent no-op: `reqsize`, `vectorized`
//! and `iov_count` for `cpu` and `unlink` jobs, `execution_time` except for `cpu`,
//! `files_count` except for `unlink`, `data_size` and the file options for `cpu`, `batch` and
//! `pause_distribution` without `rps`, `iov_count` without `vectorized: true`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use scheduler::yaml::{Map, Node, Value};
use serde::{Serialize, Serializer};

use super::reader::Seg::{self, Index, Key};
use super::reader::{load_list, Entry};
use super::units::{
    bool_value, describe, duration_value, size_value, text_value, u32_value, u64_value,
};
use super::JobError;

/// Alignment and granularity of direct I/O requests, in bytes: `reqsize` must be a multiple.
pub const IO_ALIGNMENT: u64 = 512;

/// Per-shard data sizes are rounded up to a multiple of this many bytes (1 MiB), as in the
/// reference (which aligns file sizes to its extent-size-hint alignment).
pub const DATA_SIZE_ROUNDING: u64 = 1 << 20;

/// Per-shard file size when `data_size` is absent: 1 GiB (append jobs start empty instead).
pub const DEFAULT_DATA_SIZE_PER_SHARD: u64 = 1 << 30;

/// Most buffers a vectorized request may use: what the engine's ring gives a slot
/// ([`scheduler::engine::MAX_IOVECS`]).
pub const MAX_IOV_COUNT: u32 = scheduler::engine::MAX_IOVECS as u32;

/// Keys allowed at the top of a job. `extent_allocation_size_hint` is also accepted here (the
/// reference reads it at this level) as well as under `options`.
const JOB_KEYS: &[&str] = &[
    "name",
    "type",
    "shards",
    "data_size",
    "files_count",
    "shard_info",
    "options",
    "extent_allocation_size_hint",
];

/// Keys allowed under `shard_info`.
const SHARD_INFO_KEYS: &[&str] = &[
    "parallelism",
    "reqsize",
    "shares",
    "class",
    "rps",
    "batch",
    "limit",
    "bandwidth",
    "think_time",
    "think_after",
    "execution_time",
    "vectorized",
    "iov_count",
];

/// Keys allowed under `options`.
const OPTIONS_KEYS: &[&str] = &[
    "dsync",
    "sleep_type",
    "pause_distribution",
    "extent_allocation_size_hint",
    "sloppy_size",
    "sloppy_size_hint",
    "fallocate",
];

/// What a job does. Serialized in lower case, as in job files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// `seqread`: read the file sequentially, wrapping around at its end.
    SeqRead,
    /// `overwrite` (old name `seqwrite`): write sequentially over an existing file, wrapping
    /// around at its end.
    Overwrite,
    /// `randread`: read at uniformly random multiples of `reqsize` within the file.
    RandRead,
    /// `randwrite`: overwrite at uniformly random multiples of `reqsize` within the file.
    RandWrite,
    /// `append`: write sequentially past the end, growing the file.
    Append,
    /// `cpu`: busy-loop for `execution_time` per step; no I/O.
    Cpu,
    /// `unlink`: create `files_count` files per shard, then unlink them, timing the unlinks.
    Unlink,
}

impl JobKind {
    /// Every spelling accepted for `type`, with its kind.
    const NAMES: &'static [(&'static str, JobKind)] = &[
        ("seqread", JobKind::SeqRead),
        ("overwrite", JobKind::Overwrite),
        ("seqwrite", JobKind::Overwrite),
        ("randread", JobKind::RandRead),
        ("randwrite", JobKind::RandWrite),
        ("append", JobKind::Append),
        ("cpu", JobKind::Cpu),
        ("unlink", JobKind::Unlink),
    ];

    /// The kind named `name` in a job file (`seqwrite` is an alias of `overwrite`).
    pub fn from_name(name: &str) -> Option<JobKind> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
    }

    /// Whether the job issues read or write requests of `reqsize` bytes against a data file.
    pub fn issues_requests(self) -> bool {
        !matches!(self, JobKind::Cpu | JobKind::Unlink)
    }
}

/// The shards a job runs on. Serialized as `"all"` or a list of shard ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shards {
    /// `shards: all`: every shard of the run.
    All,
    /// `shards: [0, 2]`: these shards (distinct, in file order). Every id must be below the
    /// run's shard count ([`check_shards`]); the reference silently runs nothing for the
    /// others, which can drop a whole job.
    List(Vec<u32>),
}

impl Shards {
    /// How many of a run's `nshards` shards the job runs on.
    pub fn count_in(&self, nshards: u32) -> u32 {
        match self {
            Shards::All => nshards,
            Shards::List(ids) => {
                u32::try_from(ids.iter().filter(|&&id| id < nshards).count()).unwrap_or(u32::MAX)
            }
        }
    }
}

impl Serialize for Shards {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Shards::All => s.serialize_str("all"),
            Shards::List(ids) => ids.serialize(s),
        }
    }
}

/// How a rate-driven (`rps`) job waits until its next request (`options.sleep_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SleepType {
    /// `lowres`: a timer on the coarse clock (cheap, but with millisecond-scale granularity).
    Lowres,
    /// `steady`: a timer on the monotonic clock.
    Steady,
    /// `busyloop`: spin (yielding) until the time is reached.
    Busyloop,
}

/// The spacing of a rate-driven job's requests (`options.pause_distribution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PauseDistribution {
    /// `uniform`: exactly `1/rps` between requests.
    Uniform,
    /// `poisson`: exponentially distributed pauses with mean `1/rps` (a Poisson arrival process).
    Poisson,
}

/// Per-shard settings of a job (`shard_info`). Durations serialize as `*_ns` integers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardInfo {
    /// `parallelism`: concurrent request loops (fibers) per shard. Default 1; must be at least
    /// 1. (The reference's default is 0, which would issue nothing.)
    pub parallelism: u32,
    /// `reqsize`: bytes per request. Default 4096; a non-zero multiple of 512. Only for jobs
    /// that issue requests.
    pub reqsize: u64,
    /// `shares`: scheduling shares of the job's own class. Default 10; at least 1. Together
    /// with `class` only when the class names a `--sched-groups` group that has subgroups
    /// (the job then gets a class of its own nested in that group; see `resolve_job_classes`).
    pub shares: u32,
    /// `class`: run in this class instead of one of the job's own: a group of the
    /// `--sched-groups` file, or another job, whose class this job shares (see
    /// `resolve_job_classes`). Default none.
    pub class: Option<String>,
    /// `rps`: requests per second per fiber (open loop). Default none: closed loop, each fiber
    /// issues its next request when the previous one completes. At least 1.
    pub rps: Option<u64>,
    /// `batch`: requests issued together at each `rps` tick. Default 1; at least 1; needs `rps`.
    pub batch: u32,
    /// `limit`: stop after this many requests. Default none (run for the whole duration).
    pub limit: Option<u64>,
    /// `bandwidth`: bandwidth limit of the job's class (the one it shares with `class`, if
    /// any), bytes per second, for all the class's shards together. Default none. Jobs sharing
    /// a class may not give different limits.
    pub bandwidth: Option<u64>,
    /// `think_time`: pause after each request. Default 0.
    #[serde(rename = "think_time_ns", serialize_with = "nanos")]
    pub think_time: Duration,
    /// `think_after`: run without pauses for this long, then alternate `think_time` pauses and
    /// pause-free stretches of this length. Default 0 (pause from the start).
    #[serde(rename = "think_after_ns", serialize_with = "nanos")]
    pub think_after: Duration,
    /// `execution_time`: busy time per step of a `cpu` job. Default 1 ms; non-zero; `cpu` only.
    #[serde(rename = "execution_time_ns", serialize_with = "nanos")]
    pub execution_time: Duration,
    /// `vectorized`: submit each request as a readv/writev. Default false.
    pub vectorized: bool,
    /// `iov_count`: buffers per vectorized request, each `reqsize / iov_count` bytes (a
    /// multiple of 512). Default 1; 1 to [`MAX_IOV_COUNT`] (64); needs `vectorized: true`.
    pub iov_count: u32,
    /// Lines of some keys, for errors found after parsing (class resolution). Not serialized.
    #[serde(skip)]
    pub key_lines: KeyLines,
}

/// 1-based lines of the `shard_info` keys that are checked against other jobs and the
/// scheduling groups after parsing; `None` when the key is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyLines {
    /// `shard_info.shares`.
    pub shares: Option<usize>,
    /// `shard_info.class`.
    pub class: Option<usize>,
    /// `shard_info.bandwidth`.
    pub bandwidth: Option<usize>,
    /// Each id of a `shards` list (empty for `all`), which is checked against the run's
    /// shard count (not a `shard_info` key).
    pub shards: Vec<usize>,
}

impl Default for ShardInfo {
    fn default() -> Self {
        ShardInfo {
            parallelism: 1,
            reqsize: 4096,
            shares: 10,
            class: None,
            rps: None,
            batch: 1,
            limit: None,
            bandwidth: None,
            think_time: Duration::ZERO,
            think_after: Duration::ZERO,
            execution_time: Duration::from_millis(1),
            vectorized: false,
            iov_count: 1,
            key_lines: KeyLines::default(),
        }
    }
}

/// How the job's file is opened and sized, and how rate-driven jobs wait (`options`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobOptions {
    /// `dsync`: open the file with `O_DSYNC`. Default false.
    pub dsync: bool,
    /// `sleep_type`: `lowres`, `steady` or `busyloop`. Default `steady`. (The reference
    /// defaults to `lowres`, whose coarse clock distorts the spacing of fast `rps` jobs.)
    pub sleep_type: SleepType,
    /// `pause_distribution`: `uniform` or `poisson`. Default `uniform`; needs `rps`.
    pub pause_distribution: PauseDistribution,
    /// `extent_allocation_size_hint`: bytes; the file system's extent size hint. Default none:
    /// the file size is used, as in the reference. Also accepted at the job's top level.
    pub extent_allocation_size_hint: Option<u64>,
    /// `sloppy_size`: let the file grow in large steps rather than request by request. Default
    /// false, or true when `sloppy_size_hint` is given.
    pub sloppy_size: bool,
    /// `sloppy_size_hint`: bytes; grow the file by doubling, at least by this much. Default
    /// none. Contradicts `sloppy_size: false`.
    pub sloppy_size_hint: Option<u64>,
    /// `fallocate`: allocate the file's space up front. Default false.
    pub fallocate: bool,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            dsync: false,
            sleep_type: SleepType::Steady,
            pause_distribution: PauseDistribution::Uniform,
            extent_allocation_size_hint: None,
            sloppy_size: false,
            sloppy_size_hint: None,
            fallocate: false,
        }
    }
}

/// One validated job of a job file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    /// `name`: unique within the file; used in file names and the report, so it may not be
    /// empty or contain `/` or NUL. Required.
    pub name: String,
    /// `type`. Required.
    #[serde(rename = "type")]
    pub kind: JobKind,
    /// `shards`: `all` or a non-empty list of distinct shard ids. Required, as in the reference.
    pub shards: Shards,
    /// `data_size`: bytes for the whole job, split between its shards; see
    /// [`per_shard_data_size`] for the split and the default. Non-zero except for `append`;
    /// not for `cpu`.
    pub data_size: Option<u64>,
    /// `files_count`: files each shard of an `unlink` job creates and unlinks. Required for
    /// `unlink` (at least 1), not allowed otherwise.
    pub files_count: Option<u64>,
    /// `shard_info`: per-shard settings; all optional.
    pub shard_info: ShardInfo,
    /// `options`: file and pacing options; all optional.
    pub options: JobOptions,
    /// 1-based line of the job in its file.
    pub line: usize,
}

/// The bytes of data each shard of `job` works on when the run has `nshards` shards.
///
/// `data_size` is the job's total: it is divided between the shards the job runs on (see
/// [`Shards::count_in`]) and rounded up to a multiple of 1 MiB. Without `data_size`, each shard
/// gets 1 GiB, except `append` jobs (which start from an empty file: 0) and `cpu` jobs (no
/// file: 0). For `unlink` jobs this is the total over the shard's `files_count` files.
///
/// The reference divides `data_size` by the run's shard count even for a job pinned to a
/// shard list, so such a job gets less data than written; here `data_size` is always the
/// job's total.
pub fn per_shard_data_size(job: &Job, nshards: u32) -> u64 {
    match (job.kind, job.data_size) {
        (JobKind::Cpu, _) | (JobKind::Append, None) => 0,
        (_, None) => DEFAULT_DATA_SIZE_PER_SHARD,
        (_, Some(total)) => {
            let shards = u64::from(job.shards.count_in(nshards).max(1));
            total
                .div_ceil(shards)
                .div_ceil(DATA_SIZE_ROUNDING)
                .saturating_mul(DATA_SIZE_ROUNDING)
        }
    }
}

/// Checks that every shard id a job lists exists in a run of `nshards` shards (`--smp`).
///
/// # Errors
///
/// [`JobError::Entry`] for the first id at or beyond `nshards`, naming the job, the id, its
/// line and the shard count: the job would otherwise run on fewer shards than written, or on
/// none at all and vanish from the report.
pub fn check_shards(jobs: &[Job], nshards: u32, source: &str) -> Result<(), JobError> {
    for job in jobs {
        let Shards::List(ids) = &job.shards else {
            continue;
        };
        let Some(i) = ids.iter().position(|&id| id >= nshards) else {
            continue;
        };
        let consequence = if ids.iter().all(|&id| id >= nshards) {
            "the job would run on no shard"
        } else {
            "the job would not run there"
        };
        let ids_range = match nshards {
            0 => "none".to_owned(),
            1 => "only 0".to_owned(),
            n => format!("0 to {}", n - 1),
        };
        return Err(JobError::Entry {
            file: source.to_owned(),
            entry: format!("job '{}'", job.name),
            line: job.line,
            key: format!("shards[{i}]"),
            key_line: job
                .shard_info
                .key_lines
                .shards
                .get(i)
                .copied()
                .unwrap_or(job.line),
            message: format!(
                "shard {} does not exist: the run has {nshards} shard{} (--smp {nshards}; ids {ids_range}), \
                 so {consequence}; list existing shards, write `shards: all`, or raise --smp",
                ids[i],
                if nshards == 1 { "" } else { "s" },
            ),
        });
    }
    Ok(())
}

/// Parses and validates a job file: a YAML list of jobs. `source` names the file in errors.
///
/// # Errors
///
/// The first problem found, as a [`JobError`] naming `source`, the job, the key and the line:
/// invalid YAML, a document that is not a non-empty list, and for each job an unknown key, a
/// missing or invalid `name` or `type`, a duplicate name, a bad value, or a combination of keys
/// that cannot work (see the module documentation). [`JobError::TooLarge`] for a text over
/// 16 MiB, which is not parsed.
pub fn parse_jobs(text: &str, source: &str) -> Result<Vec<Job>, JobError> {
    parse_jobs_with_stop(text, source, None)
}

/// [`parse_jobs`], giving up as soon as `stop` is set (it is read while parsing and between
/// jobs).
///
/// # Errors
///
/// As [`parse_jobs`], and [`JobError::Interrupted`] once `stop` is set.
pub fn parse_jobs_with_stop(
    text: &str,
    source: &str,
    stop: Option<&AtomicBool>,
) -> Result<Vec<Job>, JobError> {
    let entries = load_list(text, source, "jobs", "- name: ...", stop)?;
    let mut jobs: Vec<Job> = Vec::with_capacity(entries.len());
    let mut names: HashMap<String, usize> = HashMap::new();
    for (index, value) in entries.iter().enumerate() {
        super::check_stop(stop, source)?;
        let entry = &mut Entry::new(value, source, index, "job");
        let job = read_job(entry)?;
        if let Some(&first) = names.get(&job.name) {
            return Err(entry.err(
                &[Key("name")],
                format!(
                    "duplicate job name: the job at line {} already uses it; names must be unique",
                    jobs[first].line
                ),
            ));
        }
        names.insert(job.name.clone(), jobs.len());
        jobs.push(job);
    }
    Ok(jobs)
}

/// Validates one job.
fn read_job(entry: &mut Entry<'_>) -> Result<Job, JobError> {
    let map = entry.mapping("name: ..., type: ..., shards: ...")?;

    let name = match map.get("name") {
        None => return Err(entry.err(&[Key("name")], "missing; every job needs a unique `name`")),
        Some(v) => text_value(v).map_err(|m| entry.err(&[Key("name")], m))?,
    };
    if name.is_empty() || name.contains('/') || name.contains(char::is_control) {
        return Err(entry.err(
            &[Key("name")],
            format!(
                "`{name}` cannot be used: a job name must be non-empty and contain no `/` and no \
                 control character (it names files and report entries)"
            ),
        ));
    }
    entry.set_name(&name);

    entry.check_keys(map, &[], JOB_KEYS, |key| {
        if SHARD_INFO_KEYS.contains(&key) {
            Some(format!("`{key}` belongs under `shard_info:`"))
        } else if OPTIONS_KEYS.contains(&key) {
            Some(format!("`{key}` belongs under `options:`"))
        } else {
            None
        }
    })?;

    let kind = match map.get("type") {
        None => return Err(entry.err(&[Key("type")], format!("missing; {}", type_list()))),
        Some(node) => match &node.value {
            Value::String(t) => JobKind::from_name(t).ok_or_else(|| {
                entry.err(
                    &[Key("type")],
                    format!("unknown job type `{t}`; {}", type_list()),
                )
            })?,
            _ => {
                return Err(entry.err(
                    &[Key("type")],
                    format!("got {}; {}", describe(node), type_list()),
                ))
            }
        },
    };

    let (shards, shard_lines) = read_shards(entry, map)?;

    let data_size = get(entry, map, &[], "data_size", size_value)?;
    if data_size.is_some() {
        if kind == JobKind::Cpu {
            return Err(not_for(
                entry,
                &[Key("data_size")],
                "cpu jobs, which use no file",
            ));
        }
        if data_size == Some(0) && kind != JobKind::Append {
            return Err(entry.err(
                &[Key("data_size")],
                "must be greater than 0 (only append jobs may start from an empty file)",
            ));
        }
    }

    let files_count = get(entry, map, &[], "files_count", u64_value)?;
    match (kind, files_count) {
        (JobKind::Unlink, None) => {
            return Err(entry.err(
                &[Key("files_count")],
                "missing; an unlink job needs the number of files each shard creates and unlinks",
            ))
        }
        (JobKind::Unlink, Some(0)) => {
            return Err(entry.err(&[Key("files_count")], "must be at least 1"))
        }
        (JobKind::Unlink, Some(_)) | (_, None) => {}
        (_, Some(_)) => {
            return Err(not_for(
                entry,
                &[Key("files_count")],
                "jobs other than unlink",
            ))
        }
    }

    let mut shard_info = match entry.section(map, &[], "shard_info")? {
        Some(section) => read_shard_info(entry, kind, section)?,
        None => ShardInfo::default(),
    };
    shard_info.key_lines.shards = shard_lines;

    let mut options = match entry.section(map, &[], "options")? {
        Some(section) => read_options(entry, kind, &shard_info, section)?,
        None => JobOptions::default(),
    };
    let top_hint = get(entry, map, &[], "extent_allocation_size_hint", size_value)?;
    if let Some(hint) = top_hint {
        if options.extent_allocation_size_hint.is_some() {
            return Err(entry.err(
                &[Key("extent_allocation_size_hint")],
                format!(
                    "also given under `options:` (line {}); give it once",
                    entry.key_line(&[Key("options"), Key("extent_allocation_size_hint")])
                ),
            ));
        }
        if kind == JobKind::Cpu {
            return Err(not_for(
                entry,
                &[Key("extent_allocation_size_hint")],
                "cpu jobs, which use no file",
            ));
        }
        options.extent_allocation_size_hint = Some(hint);
    }

    Ok(Job {
        name,
        kind,
        shards,
        data_size,
        files_count,
        shard_info,
        options,
        line: entry.line,
    })
}

/// "expected one of ..." for `type`.
fn type_list() -> String {
    "expected one of seqread, overwrite (or its old name seqwrite), randread, randwrite, append, cpu, unlink"
        .to_owned()
}

/// Reads `shards`, with the line of each listed id.
fn read_shards(entry: &Entry<'_>, map: &Map) -> Result<(Shards, Vec<usize>), JobError> {
    const EXPECTED: &str = "expected `all` or a list of shard ids such as `[0, 1]`";
    let Some(node) = map.get("shards") else {
        return Err(entry.err(&[Key("shards")], format!("missing; {EXPECTED}")));
    };
    match &node.value {
        Value::String(s) if s == "all" => Ok((Shards::All, Vec::new())),
        Value::Seq(items) if items.is_empty() => {
            Err(entry.err(&[Key("shards")], format!("the list is empty; {EXPECTED}")))
        }
        Value::Seq(items) => {
            let mut ids = Vec::with_capacity(items.len());
            let mut lines = Vec::with_capacity(items.len());
            let mut seen = HashSet::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let at = [Key("shards"), Index(i)];
                let id = u32_value(item).map_err(|m| {
                    entry.err(&at, format!("{m}; shard ids are non-negative integers"))
                })?;
                if !seen.insert(id) {
                    return Err(entry.err(&at, format!("shard {id} is listed twice")));
                }
                ids.push(id);
                lines.push(entry.key_line(&at));
            }
            Ok((Shards::List(ids), lines))
        }
        _ => Err(entry.err(
            &[Key("shards")],
            format!("got {}; {EXPECTED}", describe(node)),
        )),
    }
}

/// Reads `shard_info`.
fn read_shard_info(entry: &Entry<'_>, kind: JobKind, map: &Map) -> Result<ShardInfo, JobError> {
    const S: &[Seg<'static>] = &[Key("shard_info")];
    let at = |key: &'static str| [Key("shard_info"), Key(key)];
    entry.check_keys(map, S, SHARD_INFO_KEYS, |key| {
        OPTIONS_KEYS
            .contains(&key)
            .then(|| format!("`{key}` belongs under `options:`"))
    })?;
    let mut si = ShardInfo::default();

    if let Some(n) = get(entry, map, S, "parallelism", u32_value)? {
        at_least_one(
            entry,
            &at("parallelism"),
            n.into(),
            "concurrent request loops per shard",
        )?;
        si.parallelism = n;
    }
    if let Some(n) = get(entry, map, S, "reqsize", size_value)? {
        if !kind.issues_requests() {
            return Err(not_for(
                entry,
                &at("reqsize"),
                "cpu and unlink jobs, which issue no read or write requests",
            ));
        }
        if n == 0 || n % IO_ALIGNMENT != 0 {
            return Err(entry.err(
                &at("reqsize"),
                format!(
                    "must be a non-zero multiple of {IO_ALIGNMENT} bytes for direct I/O, got {n}"
                ),
            ));
        }
        si.reqsize = n;
    }
    if let Some(n) = get(entry, map, S, "shares", u32_value)? {
        at_least_one(entry, &at("shares"), n.into(), "scheduling shares")?;
        si.shares = n;
        si.key_lines.shares = Some(entry.key_line(&at("shares")));
    }
    // `class` with `shares` is checked against the scheduling groups later
    // (`resolve_job_classes`): it is valid only for a group that has subgroups.
    if let Some(class) = get(entry, map, S, "class", text_value)? {
        if class.is_empty() {
            return Err(entry.err(&at("class"), "must name a scheduling group or another job"));
        }
        si.class = Some(class);
        si.key_lines.class = Some(entry.key_line(&at("class")));
    }
    if let Some(n) = get(entry, map, S, "rps", u64_value)? {
        at_least_one(entry, &at("rps"), n, "requests per second per fiber")?;
        si.rps = Some(n);
    }
    if let Some(n) = get(entry, map, S, "batch", u32_value)? {
        at_least_one(entry, &at("batch"), n.into(), "requests per rps tick")?;
        if si.rps.is_none() {
            return Err(entry.err(&at("batch"), "only applies with `rps` (requests issued together at each tick); add `rps` or remove `batch`"));
        }
        si.batch = n;
    }
    if let Some(n) = get(entry, map, S, "limit", u64_value)? {
        at_least_one(entry, &at("limit"), n, "requests before the job stops")?;
        si.limit = Some(n);
    }
    if let Some(n) = get(entry, map, S, "bandwidth", size_value)? {
        at_least_one(entry, &at("bandwidth"), n, "bytes per second")?;
        si.bandwidth = Some(n);
        si.key_lines.bandwidth = Some(entry.key_line(&at("bandwidth")));
    }
    if let Some(d) = get(entry, map, S, "think_time", duration_value)? {
        si.think_time = d;
    }
    if let Some(d) = get(entry, map, S, "think_after", duration_value)? {
        si.think_after = d;
    }
    if let Some(d) = get(entry, map, S, "execution_time", duration_value)? {
        if kind != JobKind::Cpu {
            return Err(not_for(entry, &at("execution_time"), "jobs other than cpu"));
        }
        if d.is_zero() {
            return Err(entry.err(
                &at("execution_time"),
                "must be greater than 0 (the busy time per step)",
            ));
        }
        si.execution_time = d;
    }
    if let Some(v) = get(entry, map, S, "vectorized", bool_value)? {
        if !kind.issues_requests() {
            return Err(not_for(
                entry,
                &at("vectorized"),
                "cpu and unlink jobs, which issue no read or write requests",
            ));
        }
        si.vectorized = v;
    }
    if let Some(n) = get(entry, map, S, "iov_count", u32_value)? {
        if !kind.issues_requests() {
            return Err(not_for(
                entry,
                &at("iov_count"),
                "cpu and unlink jobs, which issue no read or write requests",
            ));
        }
        if !si.vectorized {
            return Err(entry.err(&at("iov_count"), "only applies with `vectorized: true`"));
        }
        if n == 0 || n > MAX_IOV_COUNT {
            return Err(entry.err(
                &at("iov_count"),
                format!("must be between 1 and {MAX_IOV_COUNT}, got {n}"),
            ));
        }
        let n64 = u64::from(n);
        if si.reqsize % n64 != 0 || (si.reqsize / n64) % IO_ALIGNMENT != 0 {
            return Err(entry.err(
                &at("iov_count"),
                format!(
                    "must split reqsize ({} bytes) into equal buffers that are multiples of {IO_ALIGNMENT} bytes, got {n}",
                    si.reqsize
                ),
            ));
        }
        si.iov_count = n;
    }
    Ok(si)
}

/// Reads `options`.
fn read_options(
    entry: &Entry<'_>,
    kind: JobKind,
    shard_info: &ShardInfo,
    map: &Map,
) -> Result<JobOptions, JobError> {
    const S: &[Seg<'static>] = &[Key("options")];
    let at = |key: &'static str| [Key("options"), Key(key)];
    entry.check_keys(map, S, OPTIONS_KEYS, |key| {
        SHARD_INFO_KEYS
            .contains(&key)
            .then(|| format!("`{key}` belongs under `shard_info:`"))
    })?;
    if kind == JobKind::Cpu {
        let file_option = [
            "dsync",
            "extent_allocation_size_hint",
            "sloppy_size",
            "sloppy_size_hint",
            "fallocate",
        ]
        .into_iter()
        .find(|k| map.contains_key(k));
        if let Some(key) = file_option {
            return Err(not_for(entry, &at(key), "cpu jobs, which use no file"));
        }
    }
    let mut op = JobOptions::default();
    if let Some(v) = get(entry, map, S, "dsync", bool_value)? {
        op.dsync = v;
    }
    if let Some(v) = get(entry, map, S, "sleep_type", text_value)? {
        op.sleep_type = match v.as_str() {
            "lowres" => SleepType::Lowres,
            "steady" => SleepType::Steady,
            "busyloop" => SleepType::Busyloop,
            _ => {
                return Err(entry.err(
                    &at("sleep_type"),
                    format!("unknown sleep type `{v}`; expected lowres, steady or busyloop"),
                ))
            }
        };
    }
    if let Some(v) = get(entry, map, S, "pause_distribution", text_value)? {
        op.pause_distribution = match v.as_str() {
            "uniform" => PauseDistribution::Uniform,
            "poisson" => PauseDistribution::Poisson,
            _ => {
                return Err(entry.err(
                    &at("pause_distribution"),
                    format!("unknown pause distribution `{v}`; expected uniform or poisson"),
                ))
            }
        };
        if shard_info.rps.is_none() {
            return Err(entry.err(
                &at("pause_distribution"),
                "only applies with `shard_info.rps` (it spaces rate-driven requests); add `rps` or remove it",
            ));
        }
    }
    op.extent_allocation_size_hint = get(entry, map, S, "extent_allocation_size_hint", size_value)?;
    let sloppy = get(entry, map, S, "sloppy_size", bool_value)?;
    op.sloppy_size_hint = get(entry, map, S, "sloppy_size_hint", size_value)?;
    op.sloppy_size = match (sloppy, op.sloppy_size_hint) {
        (Some(false), Some(_)) => {
            return Err(entry.err(
                &at("sloppy_size_hint"),
                format!(
                    "contradicts `sloppy_size: false` (line {}); the hint only applies to sloppy sizing",
                    entry.key_line(&at("sloppy_size"))
                ),
            ))
        }
        (Some(v), _) => v,
        (None, hint) => hint.is_some(),
    };
    if let Some(v) = get(entry, map, S, "fallocate", bool_value)? {
        op.fallocate = v;
    }
    Ok(op)
}

/// Serializes a duration as whole nanoseconds.
fn nanos<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_nanos())
}

/// Reads `key` of `map` (at `path`) with `parse`, naming the key in the error.
fn get<T>(
    entry: &Entry<'_>,
    map: &Map,
    path: &[Seg<'static>],
    key: &'static str,
    parse: impl Fn(&Node) -> Result<T, String>,
) -> Result<Option<T>, JobError> {
    let Some(value) = map.get(key) else {
        return Ok(None);
    };
    let mut at = path.to_vec();
    at.push(Key(key));
    parse(value).map(Some).map_err(|m| entry.err(&at, m))
}

/// Rejects 0 for a count or rate.
fn at_least_one(entry: &Entry<'_>, at: &[Seg<'_>], n: u64, what: &str) -> Result<(), JobError> {
    if n == 0 {
        Err(entry.err(at, format!("must be at least 1 ({what}), got 0")))
    } else {
        Ok(())
    }
}

/// "has no effect for ..." for a key that does not apply to the job.
fn not_for(entry: &Entry<'_>, at: &[Seg<'_>], jobs: &str) -> JobError {
    entry.err(at, format!("has no effect for {jobs}; remove it"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::reader::line_of;

    const COMPAT: &str = include_str!("testdata/seastar-io_tester-conf.yaml");

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn one(text: &str) -> Job {
        let mut jobs = parse_jobs(text, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(jobs.len(), 1);
        jobs.remove(0)
    }

    /// Parses `text`, expecting an error; checks that the message names the job (or entry),
    /// the key and the line.
    fn fails(text: &str, entry: &str, key: &str, line: usize, what: &str) -> JobError {
        let err = parse_jobs(text, "t.yaml").expect_err(text);
        let msg = err.to_string();
        assert!(msg.starts_with("t.yaml: "), "{msg}");
        assert!(msg.contains(entry), "no `{entry}` in: {msg}");
        assert!(
            msg.contains(&format!("key '{key}'")),
            "no key `{key}` in: {msg}"
        );
        assert_eq!(line_of(&err), Some(line), "{msg}");
        assert!(
            msg.contains(&format!("line {line}")),
            "no line {line} in: {msg}"
        );
        assert!(msg.contains(what), "no `{what}` in: {msg}");
        err
    }

    #[test]
    fn compat_file() {
        let jobs = parse_jobs(COMPAT, "conf.yaml").unwrap();
        assert_eq!(jobs.len(), 4);

        let j = &jobs[0];
        assert_eq!(
            (j.name.as_str(), j.kind, j.line),
            ("big_writes", JobKind::Overwrite, 1)
        );
        assert_eq!(j.shards, Shards::All);
        assert_eq!(j.data_size, None);
        assert_eq!(j.shard_info.parallelism, 10);
        assert_eq!(j.shard_info.reqsize, 262_144);
        assert_eq!(j.shard_info.shares, 10);
        assert_eq!(j.shard_info.think_time, Duration::ZERO);
        assert_eq!(j.options, JobOptions::default());
        assert_eq!(per_shard_data_size(j, 4), 1 << 30);

        let j = &jobs[1];
        assert_eq!(
            (j.name.as_str(), j.kind, j.line),
            ("latency_reads", JobKind::RandRead, 10)
        );
        assert_eq!(j.shards, Shards::List(vec![0]));
        assert_eq!(j.data_size, Some(1 << 30));
        assert_eq!(j.shard_info.parallelism, 1);
        assert_eq!(j.shard_info.reqsize, 512);
        assert_eq!(j.shard_info.shares, 100);
        assert_eq!(j.shard_info.think_time, Duration::from_millis(1));
        assert_eq!(per_shard_data_size(j, 4), 1 << 30);

        let j = &jobs[2];
        assert_eq!(
            (j.name.as_str(), j.kind, j.line),
            ("cpu_hog", JobKind::Cpu, 20)
        );
        assert_eq!(j.shard_info.execution_time, us(90));
        assert_eq!(j.shard_info.think_time, us(10));
        assert_eq!(per_shard_data_size(j, 4), 0);

        let j = &jobs[3];
        assert_eq!(
            (j.name.as_str(), j.kind, j.line),
            ("unlinking", JobKind::Unlink, 28)
        );
        assert_eq!(j.shards, Shards::All);
        assert_eq!(j.files_count, Some(5000));
        assert_eq!(j.data_size, Some(2 << 30));
        assert_eq!(j.shard_info.parallelism, 10);
        assert_eq!(j.shard_info.think_time, us(10));
        assert_eq!(per_shard_data_size(j, 4), 512 << 20);
    }

    #[test]
    fn defaults() {
        let j = one("- name: r\n  type: seqread\n  shards: all\n");
        assert_eq!(j.shard_info, ShardInfo::default());
        assert_eq!(j.shard_info.parallelism, 1);
        assert_eq!(j.shard_info.reqsize, 4096);
        assert_eq!(j.shard_info.execution_time, Duration::from_millis(1));
        assert_eq!(j.options.sleep_type, SleepType::Steady);
        assert_eq!(j.options.pause_distribution, PauseDistribution::Uniform);
        // Empty sections are the same as absent ones.
        let k = one("- name: r\n  type: seqread\n  shards: all\n  shard_info:\n  options:\n");
        assert_eq!((k.shard_info, k.options), (j.shard_info, j.options));
    }

    #[test]
    fn seqwrite_is_overwrite() {
        assert_eq!(
            one("- {name: w, type: seqwrite, shards: all}").kind,
            JobKind::Overwrite
        );
        assert_eq!(
            one("- {name: w, type: overwrite, shards: all}").kind,
            JobKind::Overwrite
        );
        for (t, k) in [
            ("randwrite", JobKind::RandWrite),
            ("append", JobKind::Append),
        ] {
            assert_eq!(
                one(&format!("- {{name: w, type: {t}, shards: all}}")).kind,
                k
            );
        }
    }

    #[test]
    fn every_option_key() {
        let j = one("\
- name: everything
  type: randwrite
  shards: [1, 0]
  data_size: 3MB
  shard_info:
    parallelism: 4
    reqsize: 64kB
    class: background
    rps: 200
    batch: 3
    limit: 10000
    bandwidth: 100MB
    think_time: 5us
    think_after: 5s
    vectorized: true
    iov_count: 16
  options:
    dsync: true
    sleep_type: busyloop
    pause_distribution: poisson
    extent_allocation_size_hint: 32MB
    sloppy_size: true
    sloppy_size_hint: 16MB
    fallocate: yes
");
        assert_eq!(j.shards, Shards::List(vec![1, 0]));
        assert_eq!(j.data_size, Some(3 << 20));
        let si = &j.shard_info;
        assert_eq!(si.parallelism, 4);
        assert_eq!(si.reqsize, 65_536);
        assert_eq!(si.class.as_deref(), Some("background"));
        assert_eq!(si.shares, 10);
        assert_eq!((si.rps, si.batch, si.limit), (Some(200), 3, Some(10_000)));
        assert_eq!(si.bandwidth, Some(100 << 20));
        assert_eq!(
            (si.think_time, si.think_after),
            (us(5), Duration::from_secs(5))
        );
        assert_eq!((si.vectorized, si.iov_count), (true, 16));
        let op = &j.options;
        assert!(op.dsync && op.sloppy_size && op.fallocate);
        assert_eq!(op.sleep_type, SleepType::Busyloop);
        assert_eq!(op.pause_distribution, PauseDistribution::Poisson);
        assert_eq!(op.extent_allocation_size_hint, Some(32 << 20));
        assert_eq!(op.sloppy_size_hint, Some(16 << 20));
        // 3 MiB over 2 shards = 1.5 MiB, rounded up to 2 MiB.
        assert_eq!(per_shard_data_size(&j, 8), 2 << 20);
        // Shard 1 does not exist in a one-shard run: the whole size goes to shard 0.
        assert_eq!(per_shard_data_size(&j, 1), 3 << 20);

        let j = one("- {name: l, type: seqread, shards: all, options: {sleep_type: lowres}}");
        assert_eq!(j.options.sleep_type, SleepType::Lowres);
        let j = one("- {name: s, type: append, shards: all, options: {sloppy_size_hint: 1MB}}");
        assert!(j.options.sloppy_size, "a hint implies sloppy_size");
        // The reference reads extent_allocation_size_hint at the job's top level.
        let j = one("- {name: e, type: append, shards: all, extent_allocation_size_hint: 1MB}");
        assert_eq!(j.options.extent_allocation_size_hint, Some(1 << 20));
    }

    #[test]
    fn per_shard_sizes() {
        let job = |t: &str| one(&format!("- {{name: j, type: {t}, shards: all}}"));
        assert_eq!(per_shard_data_size(&job("append"), 4), 0);
        assert_eq!(per_shard_data_size(&job("randread"), 4), 1 << 30);
        assert_eq!(
            per_shard_data_size(&job("unlink, files_count: 3"), 4),
            1 << 30
        );
        let j = one("- {name: j, type: seqread, shards: all, data_size: 1000}");
        assert_eq!(per_shard_data_size(&j, 3), 1 << 20);
        let j = one("- {name: j, type: append, shards: all, data_size: 0}");
        assert_eq!(per_shard_data_size(&j, 3), 0);
        let j = one("- {name: j, type: seqread, shards: all, data_size: 10GB}");
        assert_eq!(per_shard_data_size(&j, 3), 3414 << 20);
    }

    #[test]
    fn line_numbers_follow_comments_and_flow_style() {
        let text = "# header\n\n- {name: a, type: cpu, shards: all}\n# between\n-   name: b\n    type: cpu\n    shards: all\n";
        let jobs = parse_jobs(text, "t").unwrap();
        assert_eq!((jobs[0].line, jobs[1].line), (3, 5));
    }

    // ---- errors: each names the job, the key and the line ----------------------------------

    #[test]
    fn unknown_keys_are_rejected_at_every_level() {
        let base = "- name: j\n  type: randread\n  shards: all\n";
        fails(
            &format!("{base}  think_time: 1ms\n"),
            "job 'j' (line 1)",
            "think_time",
            4,
            "belongs under `shard_info:`",
        );
        fails(
            &format!("{base}  dsync: true\n"),
            "job 'j' (line 1)",
            "dsync",
            4,
            "belongs under `options:`",
        );
        fails(
            &format!("{base}  colour: red\n"),
            "job 'j'",
            "colour",
            4,
            "expected one of: name, type",
        );
        fails(
            &format!("{base}  shard_info:\n    think_tme: 1ms\n"),
            "job 'j'",
            "shard_info.think_tme",
            5,
            "did you mean `think_time`?",
        );
        fails(
            &format!("{base}  shard_info:\n    dsync: true\n"),
            "job 'j'",
            "shard_info.dsync",
            5,
            "belongs under `options:`",
        );
        fails(
            &format!("{base}  options:\n\n    slepp_type: steady\n"),
            "job 'j'",
            "options.slepp_type",
            6,
            "did you mean `sleep_type`?",
        );
        fails(
            &format!("{base}  options:\n    reqsize: 4kB\n"),
            "job 'j'",
            "options.reqsize",
            5,
            "belongs under `shard_info:`",
        );
    }

    #[test]
    fn missing_name_or_type() {
        let err = fails(
            "- {name: a, type: cpu, shards: all}\n- type: cpu\n  shards: all\n",
            "job #2 (line 2)",
            "name",
            2,
            "missing",
        );
        assert!(matches!(err, JobError::Entry { .. }));
        fails(
            "- name: a\n  shards: all\n",
            "job 'a' (line 1)",
            "type",
            1,
            "missing; expected one of seqread",
        );
        fails(
            "- name: ''\n  type: cpu\n",
            "job #1",
            "name",
            1,
            "non-empty",
        );
        fails("- name: a/b\n  type: cpu\n", "job #1", "name", 1, "no `/`");
        fails(
            "- name: [a]\n  type: cpu\n",
            "job #1",
            "name",
            1,
            "got a list",
        );
    }

    #[test]
    fn duplicate_names() {
        let text = "- name: a\n  type: cpu\n  shards: all\n\n- name: b\n  type: cpu\n  shards: all\n- name: a\n  type: cpu\n  shards: all\n";
        fails(
            text,
            "job 'a' (line 8)",
            "name",
            8,
            "the job at line 1 already uses it",
        );
    }

    #[test]
    fn unknown_type() {
        fails(
            "- name: a\n  shards: all\n  type: seqwrites\n",
            "job 'a' (line 1)",
            "type",
            3,
            "unknown job type `seqwrites`",
        );
        fails(
            "- name: a\n  shards: all\n  type: 3\n",
            "job 'a'",
            "type",
            3,
            "got `3`",
        );
    }

    #[test]
    fn bad_shards() {
        let job = |shards: &str| format!("- name: s\n  type: cpu\n  shards: {shards}\n");
        fails(
            &job("some"),
            "job 's'",
            "shards",
            3,
            "expected `all` or a list of shard ids",
        );
        fails(&job("[]"), "job 's'", "shards", 3, "the list is empty");
        fails(&job("[0, -1]"), "job 's'", "shards[1]", 3, "negative");
        fails(
            &job("[0, x]"),
            "job 's'",
            "shards[1]",
            3,
            "non-negative integer",
        );
        fails(&job("[0, 1, 0]"), "job 's'", "shards[2]", 3, "listed twice");
        fails(
            &job("\n    - 0\n    - 1.5"),
            "job 's'",
            "shards[1]",
            5,
            "not an integer",
        );
        fails(
            "- name: s\n  type: cpu\n",
            "job 's'",
            "shards",
            1,
            "missing",
        );
    }

    #[test]
    fn bad_reqsize() {
        let job = |v: &str| {
            format!("- name: r\n  type: randread\n  shards: all\n  shard_info:\n    reqsize: {v}\n")
        };
        fails(
            &job("0"),
            "job 'r' (line 1)",
            "shard_info.reqsize",
            5,
            "non-zero multiple of 512",
        );
        fails(&job("1000"), "job 'r'", "shard_info.reqsize", 5, "got 1000");
        fails(
            &job("-4096"),
            "job 'r'",
            "shard_info.reqsize",
            5,
            "negative",
        );
        fails(
            &job("4kX"),
            "job 'r'",
            "shard_info.reqsize",
            5,
            "unknown suffix",
        );
        fails(
            "- name: c\n  type: cpu\n  shards: all\n  shard_info:\n    reqsize: 4096\n",
            "job 'c'",
            "shard_info.reqsize",
            5,
            "has no effect for cpu and unlink jobs",
        );
    }

    #[test]
    fn bad_counts_and_rates() {
        let job = |body: &str| {
            format!("- name: n\n  type: randread\n  shards: all\n  shard_info:\n{body}")
        };
        fails(
            &job("    parallelism: 0\n"),
            "job 'n'",
            "shard_info.parallelism",
            5,
            "at least 1",
        );
        fails(
            &job("    parallelism: -2\n"),
            "job 'n'",
            "shard_info.parallelism",
            5,
            "negative",
        );
        fails(
            &job("    rps: 0\n"),
            "job 'n'",
            "shard_info.rps",
            5,
            "at least 1",
        );
        fails(
            &job("    shares: 0\n"),
            "job 'n'",
            "shard_info.shares",
            5,
            "at least 1",
        );
        fails(
            &job("    shares: -10\n"),
            "job 'n'",
            "shard_info.shares",
            5,
            "negative",
        );
        fails(
            &job("    limit: 0\n"),
            "job 'n'",
            "shard_info.limit",
            5,
            "at least 1",
        );
        fails(
            &job("    bandwidth: -1MB\n"),
            "job 'n'",
            "shard_info.bandwidth",
            5,
            "negative",
        );
        fails(
            &job("    batch: 2\n"),
            "job 'n'",
            "shard_info.batch",
            5,
            "only applies with `rps`",
        );
        fails(
            &job("    rps: 10\n    batch: 0\n"),
            "job 'n'",
            "shard_info.batch",
            6,
            "at least 1",
        );
        fails(
            &job("    think_time: 10\n"),
            "job 'n'",
            "shard_info.think_time",
            5,
            "add one of ns, us, ms or s",
        );
        fails(
            &job("    think_after: -1ms\n"),
            "job 'n'",
            "shard_info.think_after",
            5,
            "negative",
        );
        fails(
            &job("    iov_count: 4\n"),
            "job 'n'",
            "shard_info.iov_count",
            5,
            "vectorized: true",
        );
        fails(
            &job("    vectorized: true\n    iov_count: 3\n"),
            "job 'n'",
            "shard_info.iov_count",
            6,
            "equal buffers",
        );
        fails(
            &job("    vectorized: maybe\n"),
            "job 'n'",
            "shard_info.vectorized",
            5,
            "expected true or false",
        );
        fails(
            &job("    execution_time: 1ms\n"),
            "job 'n'",
            "shard_info.execution_time",
            5,
            "jobs other than cpu",
        );
        fails(
            "- name: c\n  type: cpu\n  shards: all\n  shard_info: {execution_time: 0}\n",
            "job 'c'",
            "shard_info.execution_time",
            4,
            "greater than 0",
        );
    }

    #[test]
    fn class_and_shares_together_parse_and_keep_their_lines() {
        // Whether `shares` fits the class is decided against the scheduling groups later.
        let j = one(
            "- name: c\n  type: randread\n  shards: all\n  shard_info:\n    shares: 10\n    class: bg\n    bandwidth: 1MB\n",
        );
        assert_eq!(j.shard_info.class.as_deref(), Some("bg"));
        assert_eq!(
            j.shard_info.key_lines,
            KeyLines {
                shares: Some(5),
                class: Some(6),
                bandwidth: Some(7),
                shards: Vec::new(),
            }
        );
    }

    #[test]
    fn iov_count_is_bounded_by_the_ring() {
        let job = |body: &str| {
            format!("- name: n\n  type: randread\n  shards: all\n  shard_info:\n    reqsize: 1MB\n    vectorized: true\n{body}")
        };
        assert_eq!(one(&job("    iov_count: 64\n")).shard_info.iov_count, 64);
        fails(
            &job("    iov_count: 128\n"),
            "job 'n' (line 1)",
            "shard_info.iov_count",
            7,
            "must be between 1 and 64, got 128",
        );
    }

    #[test]
    fn bad_options() {
        let job = |body: &str| {
            format!("- name: o\n  type: randread\n  shards: all\n  shard_info: {{rps: 10}}\n  options:\n{body}")
        };
        fails(
            &job("    sleep_type: fast\n"),
            "job 'o'",
            "options.sleep_type",
            6,
            "expected lowres, steady or busyloop",
        );
        fails(
            &job("    pause_distribution: gauss\n"),
            "job 'o'",
            "options.pause_distribution",
            6,
            "expected uniform or poisson",
        );
        fails(
            &job("    dsync: 2\n"),
            "job 'o'",
            "options.dsync",
            6,
            "expected true or false",
        );
        fails(
            &job("    sloppy_size: false\n    sloppy_size_hint: 1MB\n"),
            "job 'o'",
            "options.sloppy_size_hint",
            7,
            "(line 6)",
        );
        fails(
            &job("    extent_allocation_size_hint: -1\n"),
            "job 'o'",
            "options.extent_allocation_size_hint",
            6,
            "negative",
        );
        fails(
            "- name: o\n  type: randread\n  shards: all\n  options:\n    pause_distribution: poisson\n",
            "job 'o'",
            "options.pause_distribution",
            5,
            "only applies with `shard_info.rps`",
        );
        fails(
            "- name: o\n  type: cpu\n  shards: all\n  options:\n    dsync: true\n",
            "job 'o'",
            "options.dsync",
            5,
            "cpu jobs, which use no file",
        );
        fails(
            "- name: o\n  type: append\n  shards: all\n  extent_allocation_size_hint: 1MB\n  options:\n    extent_allocation_size_hint: 2MB\n",
            "job 'o'",
            "extent_allocation_size_hint",
            4,
            "also given under `options:` (line 6)",
        );
        fails(
            "- name: o\n  type: cpu\n  shards: all\n  options: fast\n",
            "job 'o'",
            "options",
            4,
            "expected a mapping",
        );
    }

    #[test]
    fn bad_sizes_and_files() {
        fails(
            "- name: d\n  type: randread\n  shards: all\n  data_size: -1GB\n",
            "job 'd'",
            "data_size",
            4,
            "negative",
        );
        fails(
            "- name: d\n  type: randread\n  shards: all\n  data_size: 0\n",
            "job 'd'",
            "data_size",
            4,
            "greater than 0",
        );
        fails(
            "- name: d\n  type: cpu\n  shards: all\n  data_size: 1GB\n",
            "job 'd'",
            "data_size",
            4,
            "cpu jobs",
        );
        fails(
            "- name: u\n  type: unlink\n  shards: all\n",
            "job 'u' (line 1)",
            "files_count",
            1,
            "missing",
        );
        fails(
            "- name: u\n  type: unlink\n  shards: all\n  files_count: 0\n",
            "job 'u'",
            "files_count",
            4,
            "at least 1",
        );
        fails(
            "- name: u\n  type: unlink\n  shards: all\n  files_count: -3\n",
            "job 'u'",
            "files_count",
            4,
            "negative",
        );
        fails(
            "- name: u\n  type: seqread\n  shards: all\n  files_count: 3\n",
            "job 'u'",
            "files_count",
            4,
            "jobs other than unlink",
        );
    }

    #[test]
    fn entry_shape_errors() {
        let err = parse_jobs("- just a string\n", "t").unwrap_err();
        assert!(
            err.to_string()
                .contains("job #1 (line 1): expected a mapping"),
            "{err}"
        );
        let err = parse_jobs("- name: a\n  type: cpu\n  shards: all\n  1: x\n", "t").unwrap_err();
        assert!(err.to_string().contains("keys must be names"), "{err}");
    }

    #[test]
    fn merge_keys_share_settings() {
        let text = "\
- &base
  name: a
  type: randread
  shards: all
  shard_info: {reqsize: 8kB}
- <<: *base
  name: b
";
        let jobs = parse_jobs(text, "t").unwrap();
        assert_eq!(jobs[1].shard_info.reqsize, 8192);
        assert_eq!(jobs[1].line, 6);
    }

    /// `n` jobs in block style, 9 lines each; the last one has a bad `reqsize`.
    fn jobs_last_bad(n: usize) -> String {
        let mut text = String::new();
        for i in 1..=n {
            let reqsize = if i == n { "1000" } else { "4kB" };
            text.push_str(&format!(
                "- name: job{i}\n  type: randread\n  shards: all\n  data_size: 1GB\n  shard_info:\n    parallelism: 2\n    reqsize: {reqsize}\n    shares: 100\n    think_time: 10us\n"
            ));
        }
        text
    }

    /// The regression of the quadratic loading, judged by counting: however many jobs and
    /// whichever is bad, the text is parsed once (it was parsed again for every job and every
    /// key reported: 204 s at 8000 jobs). The time bound is 40 times what it takes on a loaded
    /// machine, far below the old 204 s.
    #[test]
    fn a_job_file_is_parsed_once_whatever_its_size() {
        for n in [1, 100, 8000] {
            let text = jobs_last_bad(n);
            let before = scheduler::yaml::loads_on_this_thread();
            let t = std::time::Instant::now();
            let err = parse_jobs(&text, "big.yaml").unwrap_err();
            let elapsed = t.elapsed();
            assert_eq!(
                scheduler::yaml::loads_on_this_thread() - before,
                1,
                "{n} jobs"
            );
            let line = 9 * (n - 1) + 1;
            assert_eq!(
                err.to_string(),
                format!(
                    "big.yaml: job 'job{n}' (line {line}): key 'shard_info.reqsize' (line {}): \
                     must be a non-zero multiple of 512 bytes for direct I/O, got 1000",
                    line + 6
                )
            );
            assert!(elapsed < Duration::from_secs(5), "{n} jobs: {elapsed:?}");
        }
    }

    /// Long `shards` lists and long chains of jobs naming each other's class were quadratic
    /// (a list search per id, a chain walk per job); they are linear now.
    #[test]
    fn long_shard_lists_and_class_chains_are_linear() {
        let ids: Vec<String> = (0..100_000).map(|i| i.to_string()).collect();
        let j = one(&format!(
            "- {{name: s, type: cpu, shards: [{}]}}\n",
            ids.join(", ")
        ));
        assert!(matches!(&j.shards, Shards::List(l) if l.len() == 100_000));
        let err = parse_jobs(
            &format!(
                "- {{name: s, type: cpu, shards: [{}, 5]}}\n",
                ids.join(", ")
            ),
            "t.yaml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("key 'shards[100000]'"), "{err}");
        assert!(err.to_string().contains("shard 5 is listed twice"), "{err}");

        let n = 20_000;
        let mut text = String::from("- {name: j0, type: cpu, shards: all}\n");
        for i in 1..n {
            text.push_str(&format!(
                "- {{name: j{i}, type: cpu, shards: all, shard_info: {{class: j{}}}}}\n",
                i - 1
            ));
        }
        let jobs = parse_jobs(&text, "t.yaml").unwrap();
        let t = std::time::Instant::now();
        let classes = crate::workload::resolve_job_classes(&jobs, None, "t.yaml").unwrap();
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(classes.iter().all(|c| c.key == classes[0].key));
    }

    #[test]
    fn oversized_text_is_refused_unparsed() {
        let before = scheduler::yaml::loads_on_this_thread();
        let text = "#".repeat(scheduler::yaml::MAX_INPUT_BYTES + 1);
        let err = parse_jobs(&text, "huge.yaml").unwrap_err();
        assert_eq!(scheduler::yaml::loads_on_this_thread(), before);
        assert_eq!(
            err.to_string(),
            "huge.yaml: the file has 16777217 bytes (16.0 MiB), more than the 16 MiB limit; \
             that is far more jobs than a run can use: check that this is the right file"
        );
    }

    #[test]
    fn a_set_stop_flag_ends_reading() {
        let stop = std::sync::atomic::AtomicBool::new(true);
        let err = parse_jobs_with_stop(&jobs_last_bad(3000), "s.yaml", Some(&stop)).unwrap_err();
        assert!(matches!(err, JobError::Interrupted { .. }), "{err:?}");
        assert_eq!(err.to_string(), "s.yaml: interrupted while reading");
        // Also between jobs, for a text too small to reach the parser's check.
        let err = parse_jobs_with_stop(&jobs_last_bad(2), "s.yaml", Some(&stop)).unwrap_err();
        assert!(matches!(err, JobError::Interrupted { .. }), "{err:?}");
    }

    /// A job listing a shard the run does not have used to vanish from the report (exit 0,
    /// empty output); it is an error naming the job, the id's line and the shard count.
    #[test]
    fn shards_beyond_the_run_are_errors() {
        let jobs = parse_jobs(
            "- {name: ok, type: cpu, shards: all}\n- name: far\n  type: cpu\n  shards:\n    - 1\n    - 99\n",
            "j.yaml",
        )
        .unwrap();
        check_shards(&jobs, 100, "j.yaml").unwrap();
        let err = check_shards(&jobs, 2, "j.yaml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "j.yaml: job 'far' (line 2): key 'shards[1]' (line 6): shard 99 does not exist: the \
             run has 2 shards (--smp 2; ids 0 to 1), so the job would not run there; list \
             existing shards, write `shards: all`, or raise --smp"
        );
        let err = check_shards(&jobs, 1, "j.yaml").unwrap_err();
        assert!(
            err.to_string().contains(
                "key 'shards[0]' (line 5): shard 1 does not exist: the run has 1 shard \
                 (--smp 1; ids only 0), so the job would run on no shard"
            ),
            "{err}"
        );
    }

    /// A NUL or escape sequence in a name was echoed raw; names with control characters are
    /// refused, and messages escape them.
    #[test]
    fn control_characters_are_refused_in_names_and_escaped_in_messages() {
        let err = fails(
            "- name: \"a\\0b\\e[31m\"\n  type: cpu\n  shards: all\n",
            "job #1 (line 1)",
            "name",
            1,
            "`a\\u{0}b\\u{1b}[31m` cannot be used",
        );
        assert!(!err.to_string().contains(char::is_control), "{err:?}");
        assert!(err.to_string().contains("no control character"), "{err}");
        let msg = parse_jobs(
            "- name: a\n  type: cpu\n  shards: all\n  \"col\\tour\": 1\n",
            "t.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("key 'col\\tour' (line 4)"), "{msg}");
    }
}
