//! The I/O engine: one thread per shard, each keeping a fixed number of O_DIRECT requests in
//! flight on its own file.
//!
//! Everything submits through [`Ring`], which has two back ends:
//! - [`EngineKind::Uring`]: one io_uring per shard thread, submissions and completions batched
//!   per `io_uring_enter`, registered file and buffers; no allocation, lock or extra syscall per
//!   request.
//! - [`EngineKind::Threads`]: blocking `pread`/`pwrite` in threads; for when io_uring is
//!   forbidden (seccomp, `kernel.io_uring_disabled`).
//!
//! The closed-loop job ([`JobSpec`] → [`JobResult`], [`run_shards`]) is one loop over a ring,
//! whichever the back end.
//!
//! Completion latency goes into an HDR histogram (ns); completions are also counted per whole
//! second of the measured window, so callers can judge how steady a run was.

mod buffer;
mod closed_loop;
pub mod fiemap;
mod file;
mod job;
mod ring;
pub mod rng;
mod uring;

use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::Direction;
pub use file::{available_space, TestFile};
pub use job::{JobResult, JobSpec, Pattern, SecondSample};
pub use ring::{Ring, RingBuilder, RingCompletion, RingRequest, MAX_IOVECS};
pub use uring::probe as probe_uring;

/// Which back end submits the requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// io_uring (Linux 5.6+; registered buffers and deferred task-run used where available).
    Uring,
    /// Blocking `pread`/`pwrite` from `in_flight` threads per shard.
    Threads,
}

impl std::str::FromStr for EngineKind {
    type Err = String;

    /// `uring` or `threads` (command-line spelling).
    fn from_str(s: &str) -> Result<EngineKind, String> {
        match s {
            "uring" => Ok(EngineKind::Uring),
            "threads" => Ok(EngineKind::Threads),
            other => Err(format!("unknown engine {other:?}: use uring or threads")),
        }
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EngineKind::Uring => "uring",
            EngineKind::Threads => "threads",
        })
    }
}

/// Errors of the engine. Each names the operation and the offset or path involved; the OS
/// error is its [`source`](std::error::Error::source), not repeated in its message, so a
/// chain printed as "a: b: c" (anyhow's `{:#}`) names each cause once.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// io_uring could not be set up (disabled by sysctl, forbidden by seccomp, too old a kernel).
    #[error("io_uring is unavailable (use the threads engine)")]
    UringUnavailable {
        /// The `io_uring_setup` error.
        #[source]
        source: io::Error,
    },
    /// The filesystem refused O_DIRECT.
    #[error("the filesystem holding {} does not support O_DIRECT", path.display())]
    DirectIoUnsupported {
        /// Directory where the test file was to be created.
        path: PathBuf,
        /// The `open` error.
        #[source]
        source: io::Error,
    },
    /// Creating or sizing a test file failed.
    #[error("cannot create a test file in {}", path.display())]
    File {
        /// Directory or file path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A request completed with an error.
    #[error("{op} of {len} bytes at offset {offset} failed")]
    Io {
        /// "read" or "write".
        op: &'static str,
        /// File offset, bytes.
        offset: u64,
        /// Request size, bytes.
        len: u64,
        /// The errno the request completed with.
        #[source]
        source: io::Error,
    },
    /// A request transferred fewer bytes than asked (e.g. a read past the end of the file).
    #[error("short {op}: {done} of {len} bytes at offset {offset}")]
    Short {
        /// "read" or "write".
        op: &'static str,
        /// File offset, bytes.
        offset: u64,
        /// Request size, bytes.
        len: u64,
        /// Bytes transferred.
        done: u64,
    },
    /// A write stored only part of its bytes because the filesystem is full (tmpfs ends a
    /// write short at its size limit; the next one fails with `ENOSPC`).
    #[error(
        "the filesystem is full: a write of {len} bytes at offset {offset} stored only {done} \
         (no space left on the device, {free} bytes free)"
    )]
    NoSpace {
        /// File offset, bytes.
        offset: u64,
        /// Request size, bytes.
        len: u64,
        /// Bytes stored.
        done: u64,
        /// Bytes the filesystem had free after it (statvfs `f_bavail * f_frsize`).
        free: u64,
    },
    /// `io_uring_enter` failed.
    #[error("io_uring submission failed")]
    Submit {
        /// The `io_uring_enter` error.
        #[source]
        source: io::Error,
    },
    /// A shard thread could not be started.
    #[error("cannot start a shard thread")]
    Thread {
        /// The spawn error.
        #[source]
        source: io::Error,
    },
    /// Buffer memory could not be allocated.
    #[error("cannot allocate {bytes} bytes of I/O buffers")]
    Alloc {
        /// Bytes asked for.
        bytes: usize,
    },
    /// The job makes no sense (zero depth, request larger than the region, ...).
    #[error("invalid job: {0}")]
    InvalidJob(String),
    /// A ring slot was to be written (stamped) while requests on it were in flight.
    #[error("buffer slot {slot} has {in_flight} request(s) in flight")]
    SlotBusy {
        /// The slot.
        slot: usize,
        /// Requests pushed on it and not yet reaped.
        in_flight: usize,
    },
    /// The stop flag was raised (Ctrl-C); in-flight requests were drained first.
    #[error("interrupted")]
    Interrupted,
}

/// Picks the engine: `requested` if given (io_uring is probed first, with its error when it
/// cannot be used), else io_uring when available, else the threads engine. The second value
/// is the reason io_uring was passed over, for the caller to print as a warning.
pub fn select(
    requested: Option<EngineKind>,
) -> Result<(EngineKind, Option<EngineError>), EngineError> {
    match requested {
        Some(EngineKind::Threads) => Ok((EngineKind::Threads, None)),
        Some(EngineKind::Uring) => probe_uring().map(|()| (EngineKind::Uring, None)),
        None => Ok(match probe_uring() {
            Ok(()) => (EngineKind::Uring, None),
            Err(e) => (EngineKind::Threads, Some(e)),
        }),
    }
}

/// A latency histogram in nanoseconds: 1 ns to 1 hour at 3 significant digits (values beyond
/// are clamped by `saturating_record`).
pub fn latency_histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
        .expect("static bounds are valid")
}

/// Deepest queue a job may ask for (the ring's submission queue size).
pub const MAX_IN_FLIGHT: usize = 4096;

/// One shard's work in a phase: a file and a job.
#[derive(Debug)]
pub struct ShardPlan<'a> {
    /// The shard's O_DIRECT file.
    pub file: &'a TestFile,
    /// What to run on it.
    pub job: JobSpec,
}

/// A running job's link to its caller: completions so far (published once per reap batch, or
/// per request by the threads engine) and a request to end the measured window early.
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub(crate) completed: AtomicU64,
    pub(crate) finish: AtomicBool,
}

/// Runs every plan on its own thread (pinned to a CPU when possible), all starting together,
/// and returns the results in plan order.
///
/// `tick` is called on the calling thread about every 100 ms with the time since the start,
/// for progress display. Raising `stop` makes every shard stop submitting, drain its in-flight
/// requests and return [`EngineError::Interrupted`].
pub fn run_shards(
    kind: EngineKind,
    plans: &[ShardPlan<'_>],
    stop: &AtomicBool,
    tick: &mut dyn FnMut(Duration),
) -> Result<Vec<JobResult>, EngineError> {
    run_shards_until(kind, plans, stop, &mut |t, _| {
        tick(t);
        false
    })
}

/// [`run_shards`] whose `tick` also sees the requests completed so far over all shards (ramp
/// included) and can end the measured window early by returning `true`: every shard then stops
/// submitting, drains, and returns its result for the whole seconds measured until then
/// (`JobResult::measured` says how long; `samples` holds them). This is how a caller measures
/// until a condition holds, e.g. a steady state, with `JobSpec::measure` as the upper bound.
pub fn run_shards_until(
    kind: EngineKind,
    plans: &[ShardPlan<'_>],
    stop: &AtomicBool,
    tick: &mut dyn FnMut(Duration, u64) -> bool,
) -> Result<Vec<JobResult>, EngineError> {
    for p in plans {
        validate(&p.job)?;
    }
    let cpus = allowed_cpus();
    // Shards wait for `go` so that all start together; a failed spawn releases them with
    // `abort` raised, so they return at once and the spawn error is reported.
    let go = AtomicBool::new(false);
    let abort = AtomicBool::new(false);
    let lives: Vec<Live> = plans.iter().map(|_| Live::default()).collect();
    let results: Vec<Result<JobResult, EngineError>> = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(plans.len());
        let mut spawn_error = None;
        for (shard, plan) in plans.iter().enumerate() {
            let (go, abort, cpus, live) = (&go, &abort, &cpus, &lives[shard]);
            let spawned = std::thread::Builder::new()
                .name(format!("shard-{shard}"))
                .spawn_scoped(scope, move || {
                    if !cpus.is_empty() {
                        pin_to_cpu(cpus[shard % cpus.len()]);
                    }
                    while !go.load(Ordering::Acquire) {
                        std::thread::yield_now();
                    }
                    if abort.load(Ordering::Acquire) {
                        return Err(EngineError::Interrupted);
                    }
                    let seed = rng::seed_for(shard);
                    let (fd, align) = (plan.file.fd(), plan.file.buffer_align());
                    run_job_live(kind, fd, &plan.job, seed, align, stop, live)
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(source) => {
                    spawn_error = Some(EngineError::Thread { source });
                    abort.store(true, Ordering::Release);
                    break;
                }
            }
        }
        go.store(true, Ordering::Release);
        let start = Instant::now();
        let mut finishing = false;
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(100));
            let completed = lives
                .iter()
                .map(|l| l.completed.load(Ordering::Relaxed))
                .sum();
            if tick(start.elapsed(), completed) && !finishing {
                finishing = true;
                for l in &lives {
                    l.finish.store(true, Ordering::Relaxed);
                }
            }
        }
        let mut out: Vec<_> = handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(EngineError::InvalidJob("a shard thread panicked".into()))
                })
            })
            .collect();
        if let Some(e) = spawn_error {
            out.insert(0, Err(e));
        }
        out
    });
    results.into_iter().collect()
}

/// Runs one job on the calling thread (the threads engine starts its threads from it), with
/// 4096-byte aligned buffers; [`run_shards`] takes the alignment from each [`TestFile`].
pub fn run_job(
    kind: EngineKind,
    fd: RawFd,
    job: &JobSpec,
    seed: u64,
    stop: &AtomicBool,
) -> Result<JobResult, EngineError> {
    run_job_live(kind, fd, job, seed, 4096, stop, &Live::default())
}

fn run_job_live(
    kind: EngineKind,
    fd: RawFd,
    job: &JobSpec,
    seed: u64,
    align: usize,
    stop: &AtomicBool,
    live: &Live,
) -> Result<JobResult, EngineError> {
    validate(job)?;
    closed_loop::run_job(kind, fd, job, seed, align, stop, live)
}

fn validate(job: &JobSpec) -> Result<(), EngineError> {
    if job.in_flight == 0 {
        return Err(EngineError::InvalidJob(
            "in-flight depth must be at least 1".into(),
        ));
    }
    if job.request_size == 0 || job.request_size % 512 != 0 {
        return Err(EngineError::InvalidJob(format!(
            "request size {} is not a multiple of 512 bytes",
            job.request_size
        )));
    }
    if job.request_size > u64::from(u32::MAX) {
        return Err(EngineError::InvalidJob(format!(
            "request size {} exceeds 4 GiB",
            job.request_size
        )));
    }
    if job.region_len < job.request_size {
        return Err(EngineError::InvalidJob(format!(
            "region of {} bytes is smaller than one {}-byte request",
            job.region_len, job.request_size
        )));
    }
    if let Some(rate) = job.rate {
        if !(rate.is_finite() && rate >= 1e-3) {
            return Err(EngineError::InvalidJob(format!(
                "paced rate {rate} requests/s must be finite and at least 0.001"
            )));
        }
    }
    if job.measure.is_zero() {
        return Err(EngineError::InvalidJob(
            "measured window must be longer than zero".into(),
        ));
    }
    // A year is far beyond any run; past it the clock arithmetic could overflow.
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    if job.ramp > YEAR || job.measure > YEAR {
        return Err(EngineError::InvalidJob(
            "ramp and measured window must each be shorter than a year".into(),
        ));
    }
    Ok(())
}

/// What the submission sanity check found (see [`submission_check`]).
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct SubmissionCheck {
    /// Voluntary context switches per submit call; above 0.1 the submitter blocks.
    pub context_switches_per_write: f64,
    /// Share of appending writes the filesystem answered `RWF_NOWAIT` with `EAGAIN` (would
    /// have blocked; io_uring hands those to kernel workers, which costs latency).
    pub would_block_share: f64,
}

/// The reference iotune's sanity check, done with our engine: `count` appending `size`-byte
/// writes at depth 1 through io_uring. `None` for the threads engine, whose calls block by
/// design in worker threads.
pub fn submission_check(
    kind: EngineKind,
    file: &TestFile,
    count: usize,
    size: usize,
) -> Result<Option<SubmissionCheck>, EngineError> {
    match kind {
        EngineKind::Uring => uring::submission_check(file.fd(), file.buffer_align(), count, size)
            .map(|(context_switches_per_write, would_block_share)| {
                Some(SubmissionCheck {
                    context_switches_per_write,
                    would_block_share,
                })
            }),
        EngineKind::Threads => Ok(None),
    }
}

fn rusage_thread() -> libc::rusage {
    // SAFETY: getrusage fills the zeroed struct; RUSAGE_THREAD is valid on Linux.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        ru
    }
}

/// CPU time (user + system) of the calling thread.
pub fn thread_cpu_time() -> Duration {
    let ru = rusage_thread();
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Time the calling thread has spent ready to run but waiting for a CPU, from
/// `/proc/thread-self/schedstat` (its second field, nanoseconds); zero where the kernel does
/// not keep it.
pub fn thread_runqueue_wait() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// Voluntary context switches of the calling thread so far.
pub(crate) fn voluntary_switches() -> u64 {
    rusage_thread().ru_nvcsw as u64
}

/// CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it for pid 0 (this thread).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

fn pin_to_cpu(cpu: usize) {
    // SAFETY: as above; failure to pin only costs locality, so the result is ignored.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Writes `[start, start + len)` of `file` fully with sequential `request_size`-byte writes
/// (`depth` in flight) of incompressible data, so later reads touch real data, never holes.
/// `len` is rounded up to whole requests. Raising `stop` ends it early with
/// [`EngineError::Interrupted`] (after the requests in flight complete).
pub fn fill(
    kind: EngineKind,
    file: &TestFile,
    start: u64,
    len: u64,
    request_size: usize,
    depth: usize,
    stop: &AtomicBool,
) -> Result<(), EngineError> {
    let depth = depth.max(1);
    let req_len = u32::try_from(request_size).map_err(|_| {
        EngineError::InvalidJob(format!("request size {request_size} exceeds 4 GiB"))
    })?;
    let mut ring = Ring::builder(kind)
        .slots(depth)
        .slot_size(request_size)
        .files(&[file.fd()])
        .buffer_align(file.buffer_align())
        .build()?;
    let end = start + len;
    let mut next = start;
    let mut free: Vec<usize> = (0..depth).collect();
    let mut first_error = None;
    let mut sequence = 0;
    while (next < end && first_error.is_none()) || ring.in_flight() > 0 {
        if stop.load(Ordering::Relaxed) && first_error.is_none() {
            first_error = Some(EngineError::Interrupted);
        }
        while next < end && first_error.is_none() {
            let Some(slot) = free.pop() else { break };
            sequence += 1;
            // `slot` came off the free list: its last write was reaped, so this cannot fail.
            ring.stamp(slot, sequence, next)?;
            let req = RingRequest {
                direction: Direction::Write,
                file: 0,
                offset: next,
                slot,
                slot_offset: 0,
                len: req_len,
                user_data: (slot as u64) << 48 | next,
                rw_flags: 0,
                iovecs: 0,
            };
            ring.push(req)?;
            next += request_size as u64;
        }
        ring.submit_and_wait(1)?;
        ring.reap(|c| {
            let slot = (c.user_data >> 48) as usize;
            let offset = c.user_data & ((1 << 48) - 1);
            if let Some(e) = closed_loop::check(c.result, request_size, offset, true) {
                first_error.get_or_insert(e);
            }
            free.push(slot);
        });
    }
    first_error.map_or(Ok(()), |e| Err(closed_loop::full_filesystem(e, file.fd())))
}
