//! One shard: its jobs' fibers multiplexed on one I/O queue (and its ring) by a simple event
//! loop — issue what is due, wait for a completion or the next timer, account.
//!
//! A fiber is a small state machine: idle until `next_at`, then it issues `batch` requests
//! (or runs a cpu step, or unlinks a file), waits for them, and schedules its next step
//! (immediately in a closed loop, after `think_time`, or at the next `rps` tick).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use hdrhistogram::Histogram;
use scheduler::alignment::AlignmentTracer;
use scheduler::engine::rng::Rng;
use scheduler::engine::{fiemap, TestFile};
use scheduler::io_queue::{ClassHandle, IoQueue, IoRequest};
use scheduler::Direction;

use crate::workload::job::{Job, JobKind, PauseDistribution, SleepType};

/// Per-job state on this shard.
pub struct JobRun {
    /// The job.
    pub job: Job,
    /// Its priority class in this shard's queue.
    pub class: ClassHandle,
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
}

impl Default for JobStats {
    fn default() -> Self {
        JobStats {
            latency_ns: Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("static bounds"),
            requests: 0,
            bytes: 0,
            file_size_overflows: 0,
        }
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

/// Slot → (fiber, file offset of the request in it).
struct SlotInfo {
    fiber: usize,
    offset: u64,
}

/// Runs the shard until `duration` has passed (or `stop` is raised), then drains.
/// Returns the disk queue length samples (every 200 ms).
pub fn run(
    queue: &mut IoQueue,
    jobs: &mut [JobRun],
    duration: Duration,
    stop: &AtomicBool,
    seed: u64,
) -> Result<Histogram<u64>> {
    let start = Instant::now();
    let end = start + duration;
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
        })
        .collect();
    let mut completions = Vec::with_capacity(slot.max(1));
    let mut queue_len = Histogram::<u64>::new_with_bounds(1, 1 << 20, 3).expect("static bounds");
    let mut next_sample = start + Duration::from_millis(200);
    let mut sequence = 0u64;
    let mut error: Option<anyhow::Error> = None;

    loop {
        let now = Instant::now();
        let stopping = now >= end || stop.load(Ordering::Relaxed) || error.is_some();
        if !stopping {
            for fi in 0..fibers.len() {
                let f = &fibers[fi];
                if f.done || f.in_flight > 0 || f.next_at > now {
                    continue;
                }
                if let Err(e) = step(queue, jobs, &mut fibers, &mut slots, fi, now, &mut sequence) {
                    error = Some(e);
                    break;
                }
            }
        }
        if now >= next_sample {
            queue_len.saturating_record(queue.stats().in_flight as u64);
            next_sample += Duration::from_millis(200);
        }
        let pending = queue.pending();
        if stopping && pending == 0 {
            break;
        }
        // Wait for a completion, or until the next fiber is due.
        let next_timer = if stopping {
            None
        } else {
            fibers
                .iter()
                .filter(|f| !f.done && f.in_flight == 0)
                .map(|f| f.next_at)
                .min()
                .map(|t| t.min(end))
                .or(Some(end))
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
                let s = &slots[c.user_data as usize];
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
                    j.stats.requests += 1;
                    j.stats.bytes += c.result as u64;
                    if let Some(t) = j.tracer.as_mut() {
                        // Placement is known once the request completed; unplaced requests are
                        // parked and mapped with one FIEMAP of their range.
                        let fd = j.handle.fd();
                        t.record_with(s.offset, c.result as u64, |start, len| {
                            fiemap::extents_in(fd, start, len, false)
                        });
                    }
                }
                fiber.in_flight -= 1;
                if fiber.in_flight == 0 {
                    schedule_next(fiber, &j.job, start, c.completed_at);
                }
            }
        } else if let Some(t) = next_timer {
            let sleep_type = fibers
                .iter()
                .filter(|f| !f.done && f.in_flight == 0)
                .min_by_key(|f| f.next_at)
                .map(|f| jobs[f.job].job.options.sleep_type)
                .unwrap_or(SleepType::Steady);
            sleep_until(t, sleep_type);
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
    if let Some(e) = error {
        return Err(e);
    }
    Ok(queue_len)
}

/// Starts fiber `fi`'s next step at `now`.
fn step(
    queue: &mut IoQueue,
    jobs: &mut [JobRun],
    fibers: &mut [Fiber],
    slots: &mut [SlotInfo],
    fi: usize,
    now: Instant,
    sequence: &mut u64,
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
            let until = now + info.execution_time;
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            let t = Instant::now();
            j.stats.requests += 1;
            j.stats
                .latency_ns
                .saturating_record(t.saturating_duration_since(now).as_nanos().max(1) as u64);
            f.issued += 1;
            schedule_next(f, &j.job, now, t);
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
            j.stats.requests += 1;
            j.stats
                .latency_ns
                .saturating_record(t.saturating_duration_since(t0).as_nanos().max(1) as u64);
            f.issued += 1;
            schedule_next(f, &j.job, now, t);
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
                    queue.ring().stamp(slot, *sequence, offset);
                }
                slots[slot] = SlotInfo { fiber: fi, offset };
                let iovecs = if info.vectorized {
                    info.iov_count.max(1) as u16
                } else {
                    0
                };
                let req = IoRequest {
                    class: j.class,
                    direction,
                    file: j.file,
                    offset,
                    len: size,
                    slot,
                    user_data: slot as u64,
                    iovecs,
                };
                queue.queue_request(queued_at, req)?;
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

/// After a step completes at `now`: closed loop (at once), think time, or the next rps tick.
fn schedule_next(f: &mut Fiber, job: &Job, run_start: Instant, now: Instant) {
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
        && now.saturating_duration_since(run_start) >= info.think_after
    {
        f.next_at = now + info.think_time;
    } else {
        f.next_at = now;
    }
}

fn sleep_until(t: Instant, how: SleepType) {
    let now = Instant::now();
    if t <= now {
        return;
    }
    match how {
        SleepType::Busyloop => {
            while Instant::now() < t {
                std::hint::spin_loop();
            }
        }
        // The coarse clock ticks in milliseconds: round the wait up to one.
        SleepType::Lowres => std::thread::sleep((t - now).max(Duration::from_millis(1))),
        SleepType::Steady => std::thread::sleep(t - now),
    }
}
