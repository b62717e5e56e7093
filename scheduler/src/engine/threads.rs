//! The fallback engine: for each shard, `in_flight` threads each doing blocking
//! `pread`/`pwrite` on the O_DIRECT file, for machines where io_uring is unavailable (seccomp
//! profiles of container runtimes, `kernel.io_uring_disabled`).

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::buffer::BufferArena;
use super::job::{Direction, JobResult, JobSpec, Pattern, Recorder, Stream};
use super::{thread_cpu_time, EngineError, Live};

pub(crate) fn run_job(
    fd: RawFd,
    job: &JobSpec,
    seed: u64,
    stop: &AtomicBool,
    live: &Live,
) -> Result<JobResult, EngineError> {
    let depth = job.in_flight;
    let size = job.request_size as usize;
    let bufs = BufferArena::new_random(depth, size, 4096, seed).ok_or(EngineError::Alloc {
        bytes: depth * size,
    })?;
    let write = job.direction == Direction::Write;
    let start = Instant::now();
    // Sequential offsets must be handed out in order across the workers: one shared stream.
    let shared = Mutex::new(Stream::new(job, seed));
    let sequence = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let sequential = job.pattern == Pattern::Sequential;

    let outcomes: Vec<Result<(Recorder, Duration), EngineError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..depth)
            .map(|w| {
                let (bufs, shared, sequence, failed) = (&bufs, &shared, &sequence, &failed);
                scope.spawn(move || {
                    let cpu0 = thread_cpu_time();
                    let mut own = Stream::new(job, seed ^ (w as u64 + 1).wrapping_mul(0x9e37_79b9));
                    let mut rec = Recorder::new(job, start);
                    let end = rec.end();
                    let ptr = bufs.slot_ptr(w);
                    loop {
                        let now = Instant::now();
                        if live.finish.load(Ordering::Relaxed) {
                            rec.cut(now);
                            break;
                        }
                        if now >= end
                            || stop.load(Ordering::Relaxed)
                            || failed.load(Ordering::Relaxed)
                        {
                            break;
                        }
                        let offset = if sequential {
                            shared
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .next_offset()
                        } else {
                            own.next_offset()
                        };
                        if write {
                            // SAFETY: slot w is this worker's alone and idle between its calls.
                            unsafe {
                                bufs.stamp(w, sequence.fetch_add(1, Ordering::Relaxed), offset)
                            };
                        }
                        // SAFETY: slot w belongs to this worker alone and lives as long as `bufs`.
                        let n = unsafe {
                            if write {
                                libc::pwrite(fd, ptr.cast(), size, offset as libc::off_t)
                            } else {
                                libc::pread(fd, ptr.cast(), size, offset as libc::off_t)
                            }
                        };
                        let res = if n < 0 {
                            -io::Error::last_os_error()
                                .raw_os_error()
                                .unwrap_or(libc::EIO)
                        } else {
                            n as i32
                        };
                        if res == -libc::EINTR {
                            continue;
                        }
                        if let Some(e) = super::uring::check(res, size, offset, write) {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                        rec.complete(now, Instant::now(), offset, write);
                        live.completed.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((rec, thread_cpu_time().saturating_sub(cpu0)))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(EngineError::InvalidJob("a worker thread panicked".into()))
                })
            })
            .collect()
    });

    let mut total: Option<Recorder> = None;
    let mut cpu = Duration::ZERO;
    for outcome in outcomes {
        let (rec, c) = outcome?;
        cpu += c;
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
    Ok(total.finish(job, cursor, cpu, false))
}
