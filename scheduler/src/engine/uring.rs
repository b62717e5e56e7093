//! io_uring set-up: building a ring the way every shard wants it, probing for io_uring, and
//! the submission sanity check.

use std::io;
use std::os::fd::RawFd;

use io_uring::IoUring;

use super::closed_loop::check;
use super::ring::{Ring, RingRequest};
use super::{Direction, EngineError, EngineKind};

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
    align: usize,
    count: usize,
    size: usize,
) -> Result<(f64, f64), EngineError> {
    let len = u32::try_from(size)
        .map_err(|_| EngineError::InvalidJob(format!("write size {size} exceeds 4 GiB")))?;
    let mut ring = Ring::builder(EngineKind::Uring)
        .slot_size(size)
        .files(&[fd])
        .buffer_align(align)
        .seed(99)
        .build()?;
    let (mut switches, mut would_block) = (0u64, 0u64);
    for i in 0..count {
        let offset = (i * size) as u64;
        // The previous write was reaped below, so the slot is idle.
        ring.stamp(0, i as u64, offset)?;
        let mut flags = libc::RWF_NOWAIT;
        loop {
            ring.push(RingRequest {
                direction: Direction::Write,
                file: 0,
                offset,
                slot: 0,
                slot_offset: 0,
                len,
                user_data: 0,
                rw_flags: flags,
                iovecs: 0,
            })?;
            let before = super::voluntary_switches();
            let submitted = ring.submit_and_wait(0);
            switches += super::voluntary_switches().saturating_sub(before);
            submitted?;
            let mut res = None;
            while res.is_none() {
                ring.submit_and_wait(1)?;
                ring.reap(|c| res = Some(c.result));
            }
            let res = res.unwrap_or(-libc::EIO);
            if flags != 0 && (res == -libc::EAGAIN || res == -libc::EOPNOTSUPP) {
                // EAGAIN: it would have blocked. EOPNOTSUPP: the filesystem cannot say
                // (tmpfs); either way, write it without the flag.
                would_block += u64::from(res == -libc::EAGAIN);
                flags = 0;
                continue;
            }
            if let Some(e) = check(res, size, offset, true) {
                return Err(super::closed_loop::full_filesystem(e, fd));
            }
            break;
        }
    }
    let n = count.max(1) as f64;
    Ok((switches as f64 / n, would_block as f64 / n))
}
