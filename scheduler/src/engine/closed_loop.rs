//! The closed-loop job ([`JobSpec`] → [`JobResult`]) on [`Ring`], for both engines.
//!
//! One loop, [`run_loop`]. Each turn it stamps (writes) and pushes every free slot — all of
//! them at first, then those just reaped — makes one [`Ring::submit_and_wait`] for at least one
//! completion (io_uring: a single `io_uring_enter` that submits them all and waits), reads the
//! clock once, and reaps the whole batch at that time: the latency of a request runs from the
//! clock read before it was pushed to the one after its completion arrived.
//!
//! - io_uring: one ring with `in_flight` slots on the shard thread, with the file and the
//!   buffers registered when the kernel allows.
//! - threads: `in_flight` threads, each running the same loop on a blocking ring of one slot,
//!   so each request is a `pread`/`pwrite` made by the thread that also sees it complete and
//!   issues the next one — no hand-over between threads, whose wake-ups would count in the
//!   latency and cap the rate. Their recorders are merged; sequential offsets come from one
//!   shared stream, in order.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::job::{JobResult, JobSpec, Pattern, Recorder, Stream};
use super::ring::{Ring, RingRequest};
use super::{thread_cpu_time, thread_runqueue_wait, EngineError, EngineKind, Live};
use crate::Direction;

/// Runs `job` on file `fd` with buffers aligned to `align` bytes.
pub(crate) fn run_job(
    kind: EngineKind,
    fd: RawFd,
    job: &JobSpec,
    seed: u64,
    align: usize,
    stop: &AtomicBool,
    live: &Live,
) -> Result<JobResult, EngineError> {
    match kind {
        EngineKind::Uring => uring_job(fd, job, seed, align, stop, live),
        EngineKind::Threads => threads_job(fd, job, seed, align, stop, live),
    }
}

/// What ends a loop early besides its own errors: Ctrl-C, the caller's early finish, and a
/// failure of a sibling loop of the same job (threads engine).
struct Signals<'a> {
    stop: &'a AtomicBool,
    live: &'a Live,
    halt: &'a AtomicBool,
}

fn uring_job(
    fd: RawFd,
    job: &JobSpec,
    seed: u64,
    align: usize,
    stop: &AtomicBool,
    live: &Live,
) -> Result<JobResult, EngineError> {
    let mut ring = Ring::builder(EngineKind::Uring)
        .slots(job.in_flight)
        .slot_size(job.request_size as usize)
        .files(&[fd])
        .buffer_align(align)
        .seed(seed)
        .build()?;
    let cpu_start = thread_cpu_time();
    let wait_start = thread_runqueue_wait();
    let start = Instant::now();
    let mut stream = Stream::new(job, seed);
    let halt = AtomicBool::new(false);
    let signals = Signals {
        stop,
        live,
        halt: &halt,
    };
    let rec = run_loop(&mut ring, job, start, 0, || stream.next_offset(), &signals)
        .map_err(|e| full_filesystem(e, fd))?;
    if stop.load(Ordering::Relaxed) {
        return Err(EngineError::Interrupted);
    }
    let cpu = thread_cpu_time().saturating_sub(cpu_start);
    let mut result = rec.finish(job, stream.cursor(), cpu, ring.registered());
    result.runqueue_wait = thread_runqueue_wait().saturating_sub(wait_start);
    Ok(result)
}

fn threads_job(
    fd: RawFd,
    job: &JobSpec,
    seed: u64,
    align: usize,
    stop: &AtomicBool,
    live: &Live,
) -> Result<JobResult, EngineError> {
    let depth = job.in_flight;
    // Sequential offsets must be handed out in order across the threads: one shared stream.
    let shared = Mutex::new(Stream::new(job, seed));
    let sequential = job.pattern == Pattern::Sequential;
    let halt = AtomicBool::new(false);
    let signals = Signals {
        stop,
        live,
        halt: &halt,
    };
    let start = Instant::now();

    let outcomes: Vec<Result<(Recorder, Duration, Duration), EngineError>> =
        std::thread::scope(|scope| {
            let mut handles = Vec::with_capacity(depth);
            let mut spawn_error = None;
            for w in 0..depth {
                let (shared, signals) = (&shared, &signals);
                let worker_seed = seed ^ (w as u64 + 1).wrapping_mul(0x9e37_79b9);
                let spawned = std::thread::Builder::new()
                    .name(format!("job-worker-{w}"))
                    .spawn_scoped(scope, move || {
                        let outcome = (|| {
                            let mut ring = Ring::builder(EngineKind::Threads)
                                .slot_size(job.request_size as usize)
                                .files(&[fd])
                                .buffer_align(align)
                                .seed(worker_seed)
                                .build_blocking()?;
                            let cpu_start = thread_cpu_time();
                            let wait_start = thread_runqueue_wait();
                            // Stamps stay unique across the threads: each counts in its own range.
                            let first_sequence = (w as u64 + 1) << 40;
                            let per_worker;
                            let job = match job.rate {
                                Some(rate) => {
                                    per_worker = JobSpec {
                                        rate: Some(rate / depth as f64),
                                        ..job.clone()
                                    };
                                    &per_worker
                                }
                                None => job,
                            };
                            let rec = if sequential {
                                let next = || {
                                    shared
                                        .lock()
                                        .unwrap_or_else(|p| p.into_inner())
                                        .next_offset()
                                };
                                run_loop(&mut ring, job, start, first_sequence, next, signals)?
                            } else {
                                let mut own = Stream::new(job, worker_seed);
                                let next = || own.next_offset();
                                run_loop(&mut ring, job, start, first_sequence, next, signals)?
                            };
                            Ok((
                                rec,
                                thread_cpu_time().saturating_sub(cpu_start),
                                thread_runqueue_wait().saturating_sub(wait_start),
                            ))
                        })();
                        if outcome.is_err() {
                            signals.halt.store(true, Ordering::Relaxed);
                        }
                        outcome
                    });
                match spawned {
                    Ok(h) => handles.push(h),
                    Err(source) => {
                        halt.store(true, Ordering::Relaxed);
                        spawn_error = Some(EngineError::Thread { source });
                        break;
                    }
                }
            }
            let mut out: Vec<_> = handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(EngineError::InvalidJob("a worker thread panicked".into()))
                    })
                })
                .collect();
            if let Some(e) = spawn_error {
                out.insert(0, Err(e));
            }
            out
        });

    let mut total: Option<Recorder> = None;
    let (mut cpu, mut waited) = (Duration::ZERO, Duration::ZERO);
    for outcome in outcomes {
        let (rec, c, w) = outcome.map_err(|e| full_filesystem(e, fd))?;
        cpu += c;
        waited += w;
        match &mut total {
            None => total = Some(rec),
            Some(t) => t.merge(&rec),
        }
    }
    if stop.load(Ordering::Relaxed) {
        return Err(EngineError::Interrupted);
    }
    let total =
        total.ok_or_else(|| EngineError::InvalidJob("in_flight must be at least 1".into()))?;
    let cursor = shared
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .cursor();
    let mut result = total.finish(job, cursor, cpu, false);
    result.runqueue_wait = waited;
    Ok(result)
}

/// How often a loop adds its completions to the job's `Live` count.
const PUBLISH_EVERY: Duration = Duration::from_millis(1);

/// Where a slot's request went, and when it was pushed (nanoseconds since the job's start).
#[derive(Clone, Copy)]
struct Armed {
    submitted_ns: u64,
    offset: u64,
}

/// The closed loop: keeps every slot of `ring` busy with a `job.request_size`-byte request at
/// the offsets `next_offset` gives, until the measured window ends (or `signals` say stop),
/// then drains. Write slots are stamped with sequence numbers from `first_sequence + 1` on.
/// Completions are recorded against `start` (the job's, shared by sibling loops).
///
/// Returns the first failed or short request's error once everything in flight has been
/// reaped; a failing `submit_and_wait` returns at once (the ring's drop then drains or leaks).
fn run_loop(
    ring: &mut Ring,
    job: &JobSpec,
    start: Instant,
    first_sequence: u64,
    mut next_offset: impl FnMut() -> u64,
    signals: &Signals<'_>,
) -> Result<Recorder, EngineError> {
    let size = job.request_size as usize;
    let len = u32::try_from(size)
        .map_err(|_| EngineError::InvalidJob(format!("request size {size} exceeds 4 GiB")))?;
    let direction = job.direction;
    let write = direction == Direction::Write;
    let mut rec = Recorder::new(job, start);
    let mut end = rec.end();
    let mut now = Instant::now();
    let mut now_ns = rec.ns(now);
    let mut armed = vec![
        Armed {
            submitted_ns: now_ns,
            offset: 0
        };
        ring.slots()
    ];
    // Slots to arm this turn: every one at first, then those reaped in the last batch.
    let mut free: Vec<usize> = (0..ring.slots()).collect();
    // Paced jobs: free slots wait here for their request's due time.
    let mut pace = job.rate.map(|rate| Pace::new(rate, now));
    let mut idle: Vec<usize> = Vec::new();
    let mut done = false;
    let mut sequence = first_sequence;
    let mut error: Option<EngineError> = None;
    // Completions are published to `signals.live` at most once a millisecond (and at the end):
    // the threads engine's loops share it, and an atomic add per request on one cache line
    // costs them more than the rest of the loop.
    let (mut published, mut next_publish) = (0, now);

    loop {
        if let Some(p) = &mut pace {
            idle.append(&mut free);
            while !done && !idle.is_empty() && p.due(now) {
                free.extend(idle.pop());
            }
        }
        for &slot in &free {
            let offset = next_offset();
            let stamped = if write {
                sequence += 1;
                ring.stamp(slot, sequence, offset)
            } else {
                Ok(())
            };
            armed[slot] = Armed {
                submitted_ns: now_ns,
                offset,
            };
            let pushed = stamped.and_then(|()| {
                ring.push(RingRequest {
                    direction,
                    file: 0,
                    offset,
                    slot,
                    slot_offset: 0,
                    len,
                    user_data: slot as u64,
                    rw_flags: 0,
                    iovecs: 0,
                })
            });
            if let Err(e) = pushed {
                error.get_or_insert(e);
                break;
            }
        }
        free.clear();
        let waiting = pace
            .as_ref()
            .filter(|_| !done && !idle.is_empty() && error.is_none());
        if ring.in_flight() == 0 {
            let Some(p) = waiting else { break };
            // Nothing in flight: sleep until the next request is due (in slices, to see a
            // stop or an early finish), then arm it.
            let nap = p.until(Instant::now()).min(Duration::from_millis(10));
            std::thread::sleep(nap);
            now = Instant::now();
            now_ns = rec.ns(now);
            if now < end && signals.live.finish.load(Ordering::Relaxed) {
                rec.cut(now);
                end = now;
            }
            done = now >= end
                || signals.stop.load(Ordering::Relaxed)
                || signals.halt.load(Ordering::Relaxed);
            continue;
        }
        match waiting {
            Some(p) => ring.submit_and_wait_timeout(1, Some(p.until(Instant::now())))?,
            None => ring.submit_and_wait(1)?,
        }
        now = Instant::now();
        if now < end && signals.live.finish.load(Ordering::Relaxed) {
            rec.cut(now);
            end = now;
        }
        let stopping = now >= end
            || error.is_some()
            || signals.stop.load(Ordering::Relaxed)
            || signals.halt.load(Ordering::Relaxed);
        done |= stopping;
        // Where the batch falls in the job, once for all its completions.
        let at = rec.moment(now);
        now_ns = at.ns;
        ring.reap_at(now, |c| {
            let slot = c.user_data as usize;
            let Some(a) = armed.get(slot) else { return };
            match check(c.result, size, a.offset, write) {
                Some(e) => {
                    error.get_or_insert(e);
                }
                None => rec.complete_at(at, a.submitted_ns, a.offset, write),
            }
            if !stopping && error.is_none() {
                free.push(slot);
            }
        });
        if now >= next_publish {
            let seen = rec.seen();
            signals
                .live
                .completed
                .fetch_add(seen - published, Ordering::Relaxed);
            published = seen;
            next_publish = now + PUBLISH_EVERY;
        }
    }
    signals
        .live
        .completed
        .fetch_add(rec.seen() - published, Ordering::Relaxed);
    match error {
        Some(e) => Err(e),
        None => Ok(rec),
    }
}

/// The schedule of a paced job: one request due every `1 / rate` seconds.
struct Pace {
    interval: Duration,
    next: Instant,
}

impl Pace {
    fn new(rate: f64, start: Instant) -> Pace {
        Pace {
            interval: Duration::from_secs_f64(1.0 / rate),
            next: start,
        }
    }

    /// True when a request is due at `now`; it is then counted as issued. A backlog (all slots
    /// were busy) is caught up by at most one second's worth of requests.
    fn due(&mut self, now: Instant) -> bool {
        if self.next > now {
            return false;
        }
        if let Some(late) = now.checked_sub(Duration::from_secs(1)) {
            self.next = self.next.max(late);
        }
        self.next += self.interval;
        true
    }

    /// Time from `now` until the next request is due (zero when one is due).
    fn until(&self, now: Instant) -> Duration {
        self.next.saturating_duration_since(now)
    }
}

/// A short write on a filesystem with less free space than the write missed is the
/// filesystem being full: [`EngineError::NoSpace`] (free space from fstatvfs of `fd`). Any
/// other error passes through.
pub(crate) fn full_filesystem(e: EngineError, fd: RawFd) -> EngineError {
    match e {
        EngineError::Short {
            op: "write",
            offset,
            len,
            done,
        } => match super::file::available_space_fd(fd) {
            Ok(free) if free < len - done => EngineError::NoSpace {
                offset,
                len,
                done,
                free,
            },
            _ => e,
        },
        e => e,
    }
}

/// Turns a completion result into an error: negative errno, or a short transfer.
pub(crate) fn check(res: i32, size: usize, offset: u64, write: bool) -> Option<EngineError> {
    let op = if write { "write" } else { "read" };
    if res < 0 {
        Some(EngineError::Io {
            op,
            offset,
            len: size as u64,
            source: std::io::Error::from_raw_os_error(-res),
        })
    } else if res as usize != size {
        Some(EngineError::Short {
            op,
            offset,
            len: size as u64,
            done: res as u64,
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::io;
    use std::os::fd::AsRawFd as _;

    use super::*;

    /// Issue 9: the OS error is the source, not repeated in the message, so a chain printed
    /// as "a: b" names it once.
    #[test]
    fn messages_do_not_repeat_their_source() {
        let os = || io::Error::from_raw_os_error(libc::EROFS);
        let path = std::path::PathBuf::from("/x");
        for e in [
            EngineError::UringUnavailable { source: os() },
            EngineError::DirectIoUnsupported {
                path: path.clone(),
                source: os(),
            },
            EngineError::File { path, source: os() },
            EngineError::Io {
                op: "write",
                offset: 0,
                len: 4096,
                source: os(),
            },
            EngineError::Submit { source: os() },
            EngineError::Thread { source: os() },
        ] {
            let source = e.source().expect("a source").to_string();
            assert!(!e.to_string().contains(&source), "{e}");
        }
    }

    /// A short write where space is left is not a full filesystem.
    #[test]
    fn a_short_write_with_space_left_stays_short() {
        let f = tempfile::tempfile().unwrap();
        let short = EngineError::Short {
            op: "write",
            offset: 0,
            len: 4096,
            done: 512,
        };
        let e = full_filesystem(short, f.as_raw_fd());
        assert!(matches!(e, EngineError::Short { .. }), "{e}");
    }
}
