//! One shard: its jobs' fibers multiplexed on one I/O queue (and its ring) by a simple event
//! loop — issue what is due, wait for a completion or the next timer, account.
//!
//! A fiber is a small state machine: idle until `next_at`, then it issues `batch` requests
//! (or runs a cpu step, or unlinks a file), waits for them, and schedules its next step
//! (immediately in a closed loop, after `think_time`, or at the next `rps` tick).
//!
//! Rates are per second of the job's *active time* ([`JobStats::active`]), not of the nominal
//! duration: a job whose fibers all finished early (`limit`, an unlink job out of files) is
//! active from the run's start to its last completion; any other job until the shard stopped
//! issuing (the end of the run, or Ctrl-C), or until its last completion if requests still in
//! flight then completed later (they count, and so does the time they took).
//!
//! Nothing waits past the end of the run (`--duration`) or a stop (Ctrl-C, another shard's
//! error): a `cpu` step spins until its `execution_time` or the end, whichever comes first
//! (a step cut short is not counted); think times, rps ticks and waits for tokens are cut
//! at the end and watch the stop flag; requests still queued at the end — waiting for tokens,
//! a bandwidth limit or room in the ring — are cancelled and not counted. Only requests
//! already in the disk are waited for: they count, with the bytes they moved.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use hdrhistogram::Histogram;
use scheduler::alignment::{AlignmentCounts, AlignmentTracer};
use scheduler::engine::rng::Rng;
use scheduler::engine::{self, fiemap, TestFile};
use scheduler::io_queue::{ClassId, RequestId};
use scheduler::ring_queue::{RingIo, RingQueue};
use scheduler::Direction;

use crate::workload::job::{Job, JobKind, PauseDistribution, SleepType};

/// Per-job state on this shard.
pub struct JobRun {
    /// The job.
    pub job: Job,
    /// Its priority class in this shard's queue.
    pub class: ClassId,
    /// Index of its file in the ring.
    pub file: usize,
    /// First byte of its region.
    pub start: u64,
    /// Bytes of its region (grows for append jobs).
    pub size: u64,
    /// Allocated size of an append file with sloppy growth.
    pub allocated: u64,
    /// Next sequential offset (relative to `start`).
    pub cursor: u64,
    /// Files an unlink job removes.
    pub unlink_files: Vec<PathBuf>,
    /// Next of those to remove.
    pub next_unlink: usize,
    /// What it measured.
    pub stats: JobStats,
    /// Alignment tracer (I/O jobs).
    pub tracer: Option<AlignmentTracer>,
    /// The job's file (for growth and extent maps).
    pub handle: Arc<TestFile>,
    /// Which completions go to the tracer.
    pub trace: TraceSampling,
}

/// Which of a job's completions are handed to its alignment tracer: one in `every` (on top of
/// the tracer's own `--trace-sample` interval).
///
/// Without `--trace-sample`, tracing is adaptive: `every` starts at 1 (every request), and
/// after each extent-map refresh, if the refreshes so far took more than 1% of the time since
/// the run started (judged over at least one second), `every` is multiplied by how far the latest refresh overshot 1% of the time
/// since the one before (at least doubled): refreshes then come rarely enough to cost about 1%.
/// `every` is never lowered again. With `--trace-sample N` it stays 1 and the tracer samples
/// one request in N.
#[derive(Debug)]
pub struct TraceSampling {
    /// Whether `every` may be raised.
    pub adaptive: bool,
    /// One completion in this many is handed to the tracer.
    pub every: u32,
    countdown: u32,
    /// Completions seen, handed over or not.
    pub seen: u64,
    /// The tracer's refresh count, refresh time (ns) and the run time when last checked.
    refreshes_checked: u64,
    refresh_ns_checked: u64,
    checked_at: Duration,
}

/// Largest adaptive interval.
const MAX_TRACE_EVERY: u32 = 1 << 20;

/// Refreshes may take this fraction of the run time before tracing is thinned out.
const TRACE_BUDGET: f64 = 0.01;

impl TraceSampling {
    /// Every completion to the tracer; raised later when `adaptive`.
    pub fn new(adaptive: bool) -> TraceSampling {
        TraceSampling {
            adaptive,
            every: 1,
            countdown: 1,
            seen: 0,
            refreshes_checked: 0,
            refresh_ns_checked: 0,
            checked_at: Duration::ZERO,
        }
    }

    /// Counts a completion; whether it goes to the tracer.
    #[inline]
    fn take(&mut self) -> bool {
        self.seen += 1;
        self.countdown -= 1;
        if self.countdown == 0 {
            self.countdown = self.every;
            true
        } else {
            false
        }
    }

    /// After the tracer recorded a request, `elapsed` into the run: when it refreshed its map
    /// since the last check and its refreshes took more than the budget of `elapsed` in all,
    /// raises `every` (see the type's docs).
    #[inline]
    fn after_record(&mut self, counts: &AlignmentCounts, elapsed: Duration) {
        // A failed refresh disables mapping (no FIEMAP, e.g. tmpfs): nothing more to save.
        if !self.adaptive
            || counts.refreshes == self.refreshes_checked
            || counts.mapping_error.is_some()
        {
            return;
        }
        let spent = counts.refresh_nanos.saturating_sub(self.refresh_ns_checked) as f64;
        let window = elapsed.saturating_sub(self.checked_at).as_nanos() as f64;
        self.refreshes_checked = counts.refreshes;
        self.refresh_ns_checked = counts.refresh_nanos;
        self.checked_at = elapsed;
        // Judged over at least a second: the first refreshes of a run come within
        // milliseconds of its start, and would otherwise always look over budget.
        let horizon = elapsed.max(Duration::from_secs(1));
        if counts.refresh_nanos as f64 > horizon.as_nanos() as f64 * TRACE_BUDGET {
            let factor = (spent / (window * TRACE_BUDGET).max(1.0))
                .ceil()
                .clamp(2.0, f64::from(MAX_TRACE_EVERY)) as u32;
            self.every = self.every.saturating_mul(factor).min(MAX_TRACE_EVERY);
        }
    }
}

/// What one job measured on one shard.
pub struct JobStats {
    /// Latency from queueing to completion, nanoseconds.
    pub latency_ns: Histogram<u64>,
    /// Requests (or cpu steps, or unlinks) completed.
    pub requests: u64,
    /// Bytes completed.
    pub bytes: u64,
    /// Times an append file had to grow beyond its allocated size.
    pub file_size_overflows: u64,
    /// When the last request (or step) completed.
    pub last_completion: Option<Instant>,
    /// The job's active time, which its rates are divided by (see the module docs); set when
    /// the shard's run ends.
    pub active: Duration,
}

impl Default for JobStats {
    fn default() -> Self {
        JobStats {
            latency_ns: engine::latency_histogram(),
            requests: 0,
            bytes: 0,
            file_size_overflows: 0,
            last_completion: None,
            active: Duration::ZERO,
        }
    }
}

impl JobStats {
    fn completed(&mut self, at: Instant) {
        self.requests += 1;
        self.last_completion = Some(self.last_completion.map_or(at, |t| t.max(at)));
    }
}

struct Fiber {
    job: usize,
    /// Ring slots this fiber's requests use (one per request of a batch).
    first_slot: usize,
    in_flight: u32,
    issued: u64,
    next_at: Instant,
    done: bool,
    rng: Rng,
}

/// Slot → (fiber, file offset of the request in it, the request while it is queued or in the
/// disk).
struct SlotInfo {
    fiber: usize,
    offset: u64,
    request: Option<RequestId>,
}

/// Runs the shard until `duration` has passed (or `stop` is raised, or every fiber finished
/// early), then drains. Sets each job's [`JobStats::active`]. Returns the disk queue length
/// samples (every 200 ms).
pub fn run(
    queue: &mut RingQueue,
    jobs: &mut [JobRun],
    duration: Duration,
    stop: &AtomicBool,
    seed: u64,
) -> Result<Histogram<u64>> {
    let start = Instant::now();
    let end = start + duration;
    let clock = RunClock { start, end, stop };
    let mut fibers = Vec::new();
    let mut slot = 0;
    for (ji, j) in jobs.iter().enumerate() {
        for f in 0..j.job.shard_info.parallelism {
            let batch = if j.job.kind.issues_requests() {
                j.job.shard_info.batch.max(1) as usize
            } else {
                0
            };
            fibers.push(Fiber {
                job: ji,
                first_slot: slot,
                in_flight: 0,
                issued: 0,
                next_at: start,
                done: false,
                rng: Rng::new(
                    seed ^ ((ji as u64) << 32 | f as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                ),
            });
            slot += batch;
        }
    }
    let mut slots: Vec<SlotInfo> = (0..slot)
        .map(|_| SlotInfo {
            fiber: 0,
            offset: 0,
            request: None,
        })
        .collect();
    let mut completions = Vec::with_capacity(slot.max(1));
    let mut queue_len = Histogram::<u64>::new_with_bounds(1, 1 << 20, 3).expect("static bounds");
    let mut next_sample = start + Duration::from_millis(200);
    let mut sequence = 0u64;
    let mut error: Option<anyhow::Error> = None;
    // When the shard stopped issuing (the end of the run, Ctrl-C, an error, or every fiber
    // finished).
    let mut stopped_at: Option<Instant> = None;
    let mut cancelled = false;

    loop {
        let now = Instant::now();
        let stopping = now >= end || stop.load(Ordering::Relaxed) || error.is_some();
        if stopping && stopped_at.is_none() {
            stopped_at = Some(now.min(end));
        }
        if stopping && !cancelled {
            // What has not reached the disk yet never will: no wait for tokens past the end.
            cancel_queued(queue, &mut fibers, &mut slots);
            cancelled = true;
        }
        // One pass: start the fibers that are due, and find the next timer (and how to sleep
        // until it) among the idle ones.
        let mut live = false;
        let mut next: Option<(Instant, SleepType)> = None;
        if !stopping {
            for fi in 0..fibers.len() {
                let f = &fibers[fi];
                if f.done {
                    continue;
                }
                if f.in_flight == 0 && f.next_at <= now {
                    if let Err(e) = step(
                        queue,
                        jobs,
                        &mut fibers,
                        &mut slots,
                        fi,
                        now,
                        &mut sequence,
                        &clock,
                    ) {
                        error = Some(e);
                        break;
                    }
                }
                let f = &fibers[fi];
                if f.done {
                    continue;
                }
                live = true;
                if f.in_flight == 0 && next.is_none_or(|(t, _)| f.next_at < t) {
                    next = Some((f.next_at, jobs[f.job].job.options.sleep_type));
                }
            }
        }
        if now >= next_sample {
            queue_len.saturating_record(queue.stats().in_flight as u64);
            next_sample += Duration::from_millis(200);
        }
        // Once stopping, the cancelled requests' parts may linger in the core until a poll
        // discards them: only what is in the disk is waited for.
        let pending = if cancelled {
            queue.in_flight()
        } else {
            queue.pending()
        };
        if pending == 0 && (stopping || !live) {
            // Every fiber finished early: no need to wait for the end of the run.
            stopped_at.get_or_insert(now);
            break;
        }
        // Wait for a completion, or until the next fiber is due.
        let next_timer = if stopping {
            None
        } else {
            Some(next.map_or(end, |(t, _)| t.min(end)))
        };
        if pending > 0 {
            let timeout = next_timer.map_or(Duration::from_millis(100), |t| {
                t.saturating_duration_since(Instant::now())
            });
            completions.clear();
            queue.poll_timeout(timeout.min(Duration::from_millis(200)), |c| {
                completions.push(c)
            })?;
            for c in &completions {
                let s = &mut slots[c.user_data as usize];
                s.request = None;
                let fiber = &mut fibers[s.fiber];
                let j = &mut jobs[fiber.job];
                if c.result < 0 {
                    error.get_or_insert_with(|| {
                        anyhow::anyhow!(
                            "job '{}': request at offset {} failed: {}",
                            j.job.name,
                            s.offset,
                            std::io::Error::from_raw_os_error(-c.result as i32)
                        )
                    });
                } else {
                    let lat = c
                        .completed_at
                        .saturating_duration_since(c.queued_at)
                        .as_nanos() as u64;
                    j.stats.latency_ns.saturating_record(lat.max(1));
                    j.stats.completed(c.completed_at);
                    j.stats.bytes += c.result as u64;
                    if let Some(t) = j.tracer.as_mut() {
                        if j.trace.take() {
                            // Placement is known once the request completed; unplaced requests
                            // are parked and mapped with one FIEMAP of their range.
                            let fd = j.handle.fd();
                            t.record_with(s.offset, c.result as u64, |start, len| {
                                fiemap::extents_in(fd, start, len, false)
                            });
                            j.trace.after_record(
                                t.counts(),
                                c.completed_at.saturating_duration_since(start),
                            );
                        }
                    }
                }
                fiber.in_flight -= 1;
                if fiber.in_flight == 0 {
                    schedule_next(fiber, j, &clock, c.completed_at);
                }
            }
        } else if let Some(t) = next_timer {
            sleep_until(t, next.map_or(SleepType::Steady, |(_, how)| how), stop);
        } else {
            break;
        }
    }
    for j in jobs.iter_mut() {
        let fd = j.handle.fd();
        if let Some(t) = j.tracer.as_mut() {
            t.flush(|start, len| fiemap::extents_in(fd, start, len, false));
        }
    }
    // Active time per job (see the module docs).
    let stopped_at = stopped_at.unwrap_or_else(Instant::now);
    let mut finished = vec![true; jobs.len()];
    for f in &fibers {
        if !(f.done || exhausted(f, &jobs[f.job])) {
            finished[f.job] = false;
        }
    }
    for (j, finished) in jobs.iter_mut().zip(finished) {
        let until = match j.stats.last_completion {
            Some(last) if finished => last,
            Some(last) => last.max(stopped_at),
            None => stopped_at,
        };
        j.stats.active = until.saturating_duration_since(start);
    }
    if let Some(e) = error {
        return Err(e);
    }
    Ok(queue_len)
}

/// Whether fiber `f` of job `j` has nothing left to do: its `limit` is reached, or (unlink)
/// the job's files are all gone.
fn exhausted(f: &Fiber, j: &JobRun) -> bool {
    f.in_flight == 0
        && (j.job.shard_info.limit.is_some_and(|l| f.issued >= l)
            || (j.job.kind == JobKind::Unlink && j.next_unlink >= j.unlink_files.len()))
}

/// The shard's run: it started at `start` and ends at `end`, or earlier once `stop` is raised.
struct RunClock<'a> {
    start: Instant,
    end: Instant,
    stop: &'a AtomicBool,
}

impl RunClock<'_> {
    /// Whether the run is over at `now`.
    #[inline]
    fn reached(&self, now: Instant) -> bool {
        now >= self.end || self.stop.load(Ordering::Relaxed)
    }
}

/// Cancels every request not in the disk yet (see the module docs); their fibers no longer
/// wait for them.
fn cancel_queued(queue: &mut RingQueue, fibers: &mut [Fiber], slots: &mut [SlotInfo]) {
    for s in slots.iter_mut() {
        let Some(request) = s.request else { continue };
        // `Ok(None)`: parts are in the disk; the request completes through `poll`. An error
        // would mean it completed already, which clears `request` first.
        if let Ok(Some(_)) = queue.cancel(request) {
            s.request = None;
            fibers[s.fiber].in_flight -= 1;
        }
    }
}

/// Starts fiber `fi`'s next step at `now`.
#[allow(clippy::too_many_arguments)] // the loop's state a step touches; all plain borrows
fn step(
    queue: &mut RingQueue,
    jobs: &mut [JobRun],
    fibers: &mut [Fiber],
    slots: &mut [SlotInfo],
    fi: usize,
    now: Instant,
    sequence: &mut u64,
    clock: &RunClock<'_>,
) -> Result<()> {
    let f = &mut fibers[fi];
    let j = &mut jobs[f.job];
    let info = &j.job.shard_info;
    if let Some(limit) = info.limit {
        if f.issued >= limit {
            f.done = true;
            return Ok(());
        }
    }
    match j.job.kind {
        JobKind::Cpu => {
            // Spins until the step's execution time is over, or the run is: a step cut short
            // is not counted.
            let done_at = now.checked_add(info.execution_time);
            let mut t = Instant::now();
            loop {
                if done_at.is_some_and(|d| t >= d) {
                    break;
                }
                if clock.reached(t) {
                    f.next_at = clock.end;
                    return Ok(());
                }
                for _ in 0..64 {
                    std::hint::spin_loop();
                }
                t = Instant::now();
            }
            j.stats.completed(t);
            j.stats
                .latency_ns
                .saturating_record(t.saturating_duration_since(now).as_nanos().max(1) as u64);
            f.issued += 1;
            schedule_next(f, j, clock, t);
        }
        JobKind::Unlink => {
            let Some(path) = j.unlink_files.get(j.next_unlink) else {
                f.done = true;
                return Ok(());
            };
            j.next_unlink += 1;
            let t0 = Instant::now();
            std::fs::remove_file(path).map_err(|e| {
                anyhow::anyhow!(
                    "job '{}': cannot unlink {}: {e}",
                    j.job.name,
                    path.display()
                )
            })?;
            let t = Instant::now();
            j.stats.completed(t);
            j.stats
                .latency_ns
                .saturating_record(t.saturating_duration_since(t0).as_nanos().max(1) as u64);
            f.issued += 1;
            schedule_next(f, j, clock, t);
        }
        kind => {
            let size = info.reqsize;
            let direction = match kind {
                JobKind::SeqRead | JobKind::RandRead => Direction::Read,
                _ => Direction::Write,
            };
            // One clock read for the batch: the requests are queued together.
            let queued_at = Instant::now();
            for b in 0..info.batch.max(1) as usize {
                let offset = match kind {
                    JobKind::SeqRead | JobKind::Overwrite => {
                        if j.cursor + size > j.size {
                            j.cursor = 0;
                        }
                        let o = j.cursor;
                        j.cursor += size;
                        j.start + o
                    }
                    JobKind::RandRead | JobKind::RandWrite => {
                        j.start + f.rng.below((j.size / size).max(1)) * size
                    }
                    _ => {
                        // Append: the file grows; with a sloppy size hint it is extended ahead,
                        // doubling, so appends do not change the file size one by one.
                        let o = j.size;
                        j.size += size;
                        if j.job.options.sloppy_size && j.size > j.allocated {
                            let hint = j.job.options.sloppy_size_hint.unwrap_or(1 << 20);
                            let target = (j.allocated * 2).max(j.allocated + hint).max(j.size);
                            let grown = if j.job.options.fallocate {
                                j.handle.allocate(j.allocated, target - j.allocated)
                            } else {
                                j.handle.set_len(target)
                            };
                            grown.map_err(|e| {
                                anyhow::anyhow!("job '{}': cannot grow the file: {e}", j.job.name)
                            })?;
                            j.allocated = target;
                            j.stats.file_size_overflows += 1;
                        }
                        o
                    }
                };
                let slot = f.first_slot + b;
                if direction == Direction::Write {
                    *sequence += 1;
                    // The fiber's slots are idle (its previous batch completed); the ring checks.
                    queue.ring().stamp(slot, *sequence, offset)?;
                }
                slots[slot] = SlotInfo {
                    fiber: fi,
                    offset,
                    request: None,
                };
                let iovecs = if info.vectorized {
                    info.iov_count.max(1) as u16
                } else {
                    0
                };
                let req = RingIo {
                    class: j.class,
                    direction,
                    file: j.file,
                    offset,
                    len: size,
                    slot,
                    user_data: slot as u64,
                    iovecs,
                };
                slots[slot].request = Some(queue.queue(req, queued_at)?);
                f.in_flight += 1;
                f.issued += 1;
            }
        }
    }
    if j.job.kind.issues_requests() && f.in_flight == 0 {
        bail!("job '{}' issued nothing", j.job.name);
    }
    Ok(())
}

/// After a step completes at `now`: done (nothing left), closed loop (at once), think time, or
/// the next rps tick.
fn schedule_next(f: &mut Fiber, j: &JobRun, clock: &RunClock<'_>, now: Instant) {
    if exhausted(f, j) {
        f.done = true;
        return;
    }
    let job = &j.job;
    let info = &job.shard_info;
    if let Some(rps) = info.rps {
        let mean = Duration::from_secs_f64(1.0 / rps as f64);
        let pause = match job.options.pause_distribution {
            PauseDistribution::Uniform => mean,
            PauseDistribution::Poisson => {
                // Exponential inter-arrival times: -ln(U) * mean.
                let u = (f.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                mean.mul_f64(-(1.0 - u).ln())
            }
        };
        // Ticks follow the schedule; a fiber that fell behind issues at once.
        f.next_at = (f.next_at + pause).max(now);
    } else if !info.think_time.is_zero()
        && now.saturating_duration_since(clock.start) >= info.think_after
    {
        // Beyond the clock's range is beyond any run's end.
        f.next_at = now.checked_add(info.think_time).unwrap_or(clock.end);
    } else {
        f.next_at = now;
    }
}

/// Longest sleep between two looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Waits until `t` the way the job asks, returning early once `stop` is raised (looked at
/// every [`STOP_POLL`] at most).
fn sleep_until(t: Instant, how: SleepType, stop: &AtomicBool) {
    loop {
        let now = Instant::now();
        if t <= now || stop.load(Ordering::Relaxed) {
            return;
        }
        match how {
            SleepType::Busyloop => {
                for _ in 0..64 {
                    std::hint::spin_loop();
                }
            }
            // The coarse clock ticks in milliseconds: round the wait up to one.
            SleepType::Lowres => {
                std::thread::sleep((t - now).clamp(Duration::from_millis(1), STOP_POLL))
            }
            SleepType::Steady => std::thread::sleep((t - now).min(STOP_POLL)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracing_thins_out_only_when_refreshes_cost_over_one_percent() {
        let counts = |refreshes, ms: u64| AlignmentCounts {
            refreshes,
            refresh_nanos: ms * 1_000_000,
            ..AlignmentCounts::default()
        };
        let ms = Duration::from_millis;
        let mut t = TraceSampling::new(true);
        t.after_record(&counts(1, 2), ms(50)); // 2 ms, 50 ms in: judged over 1 s, 0.2%
        assert_eq!(t.every, 1);
        t.after_record(&counts(2, 10), ms(2000)); // 0.5% of the run
        assert_eq!(t.every, 1);
        t.after_record(&counts(3, 30), ms(3000)); // 1% overall: not over
        assert_eq!(t.every, 1);
        t.after_record(&counts(4, 90), ms(4000)); // 2.25% overall; 60 ms of 1 s lately: x6
        assert_eq!(t.every, 6);
        t.after_record(&counts(4, 90), ms(5000)); // no new refresh
        assert_eq!(t.every, 6);
        t.after_record(&counts(5, 100), ms(6000)); // 1.7% overall; 10 ms of 2 s: at least x2
        assert_eq!(t.every, 12);
        t.countdown = 1;
        let taken: Vec<bool> = (0..13).map(|_| t.take()).collect();
        assert_eq!(taken.iter().filter(|&&x| x).count(), 2);
        assert!(taken[0] && taken[12]);
        assert_eq!(t.seen, 13);

        let mut fixed = TraceSampling::new(false);
        fixed.after_record(&counts(1, 1000), ms(200));
        assert_eq!(fixed.every, 1);
    }
}
