//! The io_uring engine: one ring per shard thread, `in_flight` slots, each with its own buffer.
//!
//! Per loop turn: one `io_uring_enter` submits every re-armed slot and waits for at least one
//! completion; completions are reaped in a batch with a single clock read. The file and the
//! buffer arena are registered with the ring when the kernel allows it (fixed file/buffers
//! save a file-table lookup and page pinning per request).

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use io_uring::{opcode, squeue, types, IoUring};

use super::buffer::BufferArena;
use super::job::{Direction, JobResult, JobSpec, Recorder, Stream};
use super::ring::{sqe, RingRequest};
use super::{thread_cpu_time, EngineError, Live};

/// Builds a ring with `entries` submission slots, preferring the single-issuer / deferred
/// task-run setup (Linux 6.1+), falling back to a plain ring on older kernels.
pub(crate) fn build_ring(entries: u32) -> io::Result<IoUring> {
    let entries = entries.clamp(1, 4096).next_power_of_two();
    IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_coop_taskrun()
        .build(entries)
        .or_else(|_| IoUring::builder().setup_coop_taskrun().build(entries))
        .or_else(|_| IoUring::new(entries))
}

/// Tells whether io_uring can be used by this process (not disabled by sysctl or seccomp).
pub fn probe() -> Result<(), EngineError> {
    build_ring(2)
        .map(drop)
        .map_err(|source| EngineError::UringUnavailable { source })
}

struct Slot {
    submitted: Instant,
    offset: u64,
}

pub(crate) fn run_job(
    fd: RawFd,
    job: &JobSpec,
    seed: u64,
    stop: &AtomicBool,
    live: &Live,
) -> Result<JobResult, EngineError> {
    let depth = job.in_flight;
    let size = job.request_size as usize;
    let len = u32::try_from(size)
        .map_err(|_| EngineError::InvalidJob(format!("request size {size} exceeds 4 GiB")))?;
    let bufs = BufferArena::new_random(depth, size, 4096, seed).ok_or(EngineError::Alloc {
        bytes: depth * size,
    })?;
    // Declared after `bufs`, so the ring is dropped first; every request is reaped before return.
    let mut ring =
        build_ring(depth as u32).map_err(|source| EngineError::UringUnavailable { source })?;
    let fixed_file = ring.submitter().register_files(&[fd]).is_ok();
    // SAFETY: the arena outlives the ring (declared before it), and its memory is never freed
    // or moved while registered.
    let fixed_bufs = bufs.registrable(size)
        && unsafe { ring.submitter().register_buffers(&[bufs.iovec()]) }.is_ok();

    let write = job.direction == Direction::Write;
    let cpu_start = thread_cpu_time();
    let start = Instant::now();
    let mut stream = Stream::new(job, seed);
    let mut rec = Recorder::new(job, start);
    let mut end = rec.end();
    let mut slots: Vec<Slot> = (0..depth)
        .map(|_| Slot {
            submitted: start,
            offset: 0,
        })
        .collect();
    let mut sequence = 0u64;
    let mut error: Option<EngineError> = None;

    let (submitter, mut sq, mut cq) = ring.split();
    let direction = job.direction;
    let make = |slot: usize, offset: u64| -> squeue::Entry {
        let req = RingRequest {
            direction,
            file: 0,
            offset,
            slot,
            slot_offset: 0,
            len,
            user_data: slot as u64,
            rw_flags: 0,
            iovecs: 0,
        };
        sqe(req, fd, bufs.slot_ptr(slot), fixed_file, fixed_bufs)
    };

    let mut in_flight = 0usize;
    #[allow(clippy::needless_range_loop)] // slot is also the buffer index and user_data
    for slot in 0..depth {
        let offset = stream.next_offset();
        if write {
            sequence += 1;
            // SAFETY: the slot has not been submitted yet.
            unsafe { bufs.stamp(slot, sequence, offset) };
        }
        slots[slot] = Slot {
            submitted: start,
            offset,
        };
        // SAFETY: the slot's buffer stays valid and untouched until its completion is reaped.
        unsafe { sq.push(&make(slot, offset)) }.expect("ring has at least `depth` entries");
        in_flight += 1;
    }
    sq.sync();

    while in_flight > 0 {
        match submitter.submit_and_wait(1) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) => {}
            Err(source) => {
                // The ring is in an unknown state and requests may still be in the kernel:
                // leak the buffers rather than free memory the device might still write into.
                drop((submitter, sq, cq));
                std::mem::forget(ring);
                std::mem::forget(bufs);
                return Err(EngineError::Submit { source });
            }
        }
        cq.sync();
        // Refresh the submission queue's view of the kernel's head, so reaped slots can be
        // re-armed into the entries the kernel consumed.
        sq.sync();
        let now = Instant::now();
        if now < end && live.finish.load(Ordering::Relaxed) {
            rec.cut(now);
            end = now;
        }
        let stopping = now >= end || error.is_some() || stop.load(Ordering::Relaxed);
        for cqe in &mut cq {
            let slot = cqe.user_data() as usize;
            let s = &slots[slot];
            if let Some(e) = check(cqe.result(), size, s.offset, write) {
                error.get_or_insert(e);
            } else {
                rec.complete(s.submitted, now, s.offset, write);
            }
            if stopping || error.is_some() {
                in_flight -= 1;
                continue;
            }
            let offset = stream.next_offset();
            if write {
                sequence += 1;
                // SAFETY: the slot was just reaped; nothing uses it.
                unsafe { bufs.stamp(slot, sequence, offset) };
            }
            slots[slot] = Slot {
                submitted: now,
                offset,
            };
            // SAFETY: as above; the slot was just reaped, so its buffer is free.
            unsafe { sq.push(&make(slot, offset)) }.expect("a reaped slot frees a ring entry");
        }
        sq.sync();
        live.completed.store(rec.seen(), Ordering::Relaxed);
    }
    drop((submitter, sq, cq));
    if let Some(e) = error {
        return Err(e);
    }
    if stop.load(Ordering::Relaxed) {
        return Err(EngineError::Interrupted);
    }
    let cpu = thread_cpu_time().saturating_sub(cpu_start);
    Ok(rec.finish(job, stream.cursor(), cpu, fixed_file && fixed_bufs))
}

/// Turns a completion result into an error: negative errno, or a short transfer.
pub(crate) fn check(res: i32, size: usize, offset: u64, write: bool) -> Option<EngineError> {
    let op = if write { "write" } else { "read" };
    if res < 0 {
        Some(EngineError::Io {
            op,
            offset,
            len: size as u64,
            source: io::Error::from_raw_os_error(-res),
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

/// Submits `count` appending writes of `size` bytes one at a time (depth 1), first with
/// `RWF_NOWAIT`, and returns the voluntary context switches per submission (only the submit
/// call is measured, not the wait) and the share of writes the filesystem answered with
/// `EAGAIN` (it would have blocked; they are resubmitted without the flag).
///
/// Follows the reference iotune's sanity check. Under io_uring a write that would block is
/// handed to a kernel worker instead of blocking the submitter, so the switch count stays low
/// on any filesystem; the would-block share is what tells a filesystem that allocates
/// synchronously (extra latency per request) from one that does not.
pub(crate) fn submission_check(
    fd: RawFd,
    count: usize,
    size: usize,
) -> Result<(f64, f64), EngineError> {
    let bufs =
        BufferArena::new_random(1, size, 4096, 99).ok_or(EngineError::Alloc { bytes: size })?;
    let mut ring = build_ring(2).map_err(|source| EngineError::UringUnavailable { source })?;
    let (mut switches, mut would_block) = (0u64, 0u64);
    for i in 0..count {
        let offset = (i * size) as u64;
        // SAFETY: the previous write was reaped before this one starts.
        unsafe { bufs.stamp(0, i as u64, offset) };
        let mut flags = libc::RWF_NOWAIT;
        loop {
            let e = opcode::Write::new(types::Fd(fd), bufs.slot_ptr(0), size as u32)
                .offset(offset)
                .rw_flags(flags)
                .build();
            // SAFETY: the single buffer is not reused until this write is reaped below.
            unsafe { ring.submission().push(&e) }
                .map_err(|_| EngineError::InvalidJob("probe ring full".into()))?;
            let before = super::voluntary_switches();
            let submitted = ring.submit();
            switches += super::voluntary_switches().saturating_sub(before);
            if let Err(source) = submitted {
                // Nothing was taken: no write is in flight on the buffer.
                return Err(EngineError::Submit { source });
            }
            let res = loop {
                match ring.submit_and_wait(1) {
                    Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                    Err(source) => {
                        // The write may still be in flight: keep its buffer alive.
                        std::mem::forget(bufs);
                        return Err(EngineError::Submit { source });
                    }
                    Ok(_) => {}
                }
                if let Some(cqe) = ring.completion().next() {
                    break cqe.result();
                }
            };
            if flags != 0 && (res == -libc::EAGAIN || res == -libc::EOPNOTSUPP) {
                // EAGAIN: it would have blocked. EOPNOTSUPP: the filesystem cannot say
                // (tmpfs); either way, write it without the flag.
                would_block += u64::from(res == -libc::EAGAIN);
                flags = 0;
                continue;
            }
            if let Some(e) = check(res, size, offset, true) {
                return Err(e);
            }
            break;
        }
    }
    let n = count.max(1) as f64;
    Ok((switches as f64 / n, would_block as f64 / n))
}
