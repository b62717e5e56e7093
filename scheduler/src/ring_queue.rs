//! The [`IoQueue`] driven over the engine's [`Ring`] (io_uring, or worker threads): what
//! io-tester runs its fibers on.
//!
//! The core decides what may go to the disk; this driver owns everything that touches the
//! kernel: it pushes each dispatched part into the ring (slot, file and offset from the
//! request's [`RingToken`]), submits and reaps in batches, resubmits writes that the
//! filesystem refused with `RWF_NOWAIT` (`EAGAIN`: it would have blocked the submitter), and,
//! when everything waits for tokens, waits on the ring or sleeps until the core's
//! [`next_dispatch_at`](IoQueue::next_dispatch_at) instead of spinning.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::{EngineError, Ring, RingRequest, MAX_IOVECS};
use crate::io_queue::{
    ClassConfig, ClassId, ClassStats, Dispatch, GroupId, IoGroup, IoQueue, IoRequest, PartId,
    QueueError, QueueStats, RequestId,
};
use crate::Direction;

/// A request for [`RingQueue::queue`]: where its bytes are (a slot of the ring's buffer
/// arena, from byte 0) and where they go (a file of the ring, an offset).
#[derive(Clone, Copy, Debug)]
pub struct RingIo {
    /// Priority class.
    pub class: ClassId,
    /// Read or write.
    pub direction: Direction,
    /// Index of the file in the ring's file list.
    pub file: usize,
    /// File offset, bytes.
    pub offset: u64,
    /// Length, bytes (at most the ring's slot size).
    pub len: u64,
    /// Ring buffer slot.
    pub slot: usize,
    /// Returned with the completion.
    pub user_data: u64,
    /// Submit as readv/writev over this many equal pieces of the slot (0 or 1: plain). A
    /// request split for exceeding the maximum length goes out as plain parts.
    pub iovecs: u16,
}

/// What the core keeps for each request of this driver.
#[derive(Clone, Copy, Debug)]
pub struct RingToken {
    file: usize,
    offset: u64,
    slot: usize,
    user_data: u64,
    iovecs: u16,
    /// A part went out with `RWF_NOWAIT`.
    nowait: bool,
}

/// A finished request.
#[derive(Clone, Copy, Debug)]
pub struct RingCompletion {
    /// As given in [`RingIo::user_data`].
    pub user_data: u64,
    /// The class it ran in.
    pub class: ClassId,
    /// Bytes transferred (parts up to the first short or failed one), or the first part's
    /// negative errno when that part failed.
    pub result: i64,
    /// When it was queued.
    pub queued_at: Instant,
    /// When it completed (reap time of its last part).
    pub completed_at: Instant,
}

/// One shard's queue over its ring (see the module docs). Not `Send`, like the ring: make it
/// on the shard's thread.
pub struct RingQueue {
    core: IoQueue<RingToken>,
    ring: Ring,
    nowait_writes: bool,
    /// Parts to resubmit without `RWF_NOWAIT` (reused buffer).
    retry: Vec<PartId>,
    /// Writes resubmitted after `EAGAIN`, per class index.
    aio_retries: Vec<u64>,
}

impl RingQueue {
    /// A queue under `group` submitting through `ring`.
    pub fn new(group: Arc<IoGroup>, ring: Ring) -> RingQueue {
        RingQueue {
            core: IoQueue::new(group),
            ring,
            nowait_writes: false,
            retry: Vec::new(),
            aio_retries: Vec::new(),
        }
    }

    /// The scheduling core (classes, groups, statistics).
    pub fn core(&self) -> &IoQueue<RingToken> {
        &self.core
    }

    /// The ring (buffers, files).
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Adds a priority class (see [`IoQueue::add_class`]).
    ///
    /// # Errors
    ///
    /// As [`IoQueue::add_class`].
    pub fn add_class(&mut self, cfg: ClassConfig) -> Result<ClassId, QueueError> {
        let c = self.core.add_class(cfg)?;
        self.aio_retries.push(0);
        Ok(c)
    }

    /// Adds a class group (see [`IoQueue::add_group`]).
    ///
    /// # Errors
    ///
    /// As [`IoQueue::add_group`].
    pub fn add_group(
        &mut self,
        shares: u32,
        parent: Option<GroupId>,
        bandwidth: Option<crate::io_queue::BandwidthLimit>,
    ) -> Result<GroupId, QueueError> {
        self.core.add_group(shares, parent, bandwidth)
    }

    /// Submits writes with `RWF_NOWAIT` first: a filesystem that would block answers
    /// `EAGAIN`, and the write is resubmitted without the flag and counted in
    /// [`aio_retries`](Self::aio_retries), so users see when submissions would block.
    pub fn set_nowait_writes(&mut self, enabled: bool) {
        self.nowait_writes = enabled;
    }

    /// Queues `io`, queued at `now`; longer than the model's maximum length, it is split.
    ///
    /// # Errors
    ///
    /// [`QueueError`] from the core, or `Invalid` for a slot, file or iovec count the ring
    /// does not have, or a length beyond the slot.
    pub fn queue(&mut self, io: RingIo, now: Instant) -> Result<RequestId, RingQueueError> {
        let ring = &self.ring;
        if io.slot >= ring.slots() || io.file >= ring.file_count() {
            return Err(RingQueueError::Invalid(format!(
                "slot {} or file {} out of range ({} slots, {} files)",
                io.slot,
                io.file,
                ring.slots(),
                ring.file_count()
            )));
        }
        if io.len > ring.slot_size() as u64 {
            return Err(RingQueueError::Invalid(format!(
                "a request of {} bytes does not fit a {}-byte slot",
                io.len,
                ring.slot_size()
            )));
        }
        if io.iovecs > MAX_IOVECS || (io.iovecs > 1 && io.len % (u64::from(io.iovecs) * 512) != 0) {
            return Err(RingQueueError::Invalid(format!(
                "{} iovecs must be at most {MAX_IOVECS} and split {} bytes into 512-byte \
                 multiples",
                io.iovecs, io.len
            )));
        }
        let req = IoRequest {
            class: io.class,
            direction: io.direction,
            len: io.len,
            token: RingToken {
                file: io.file,
                offset: io.offset,
                slot: io.slot,
                user_data: io.user_data,
                iovecs: io.iovecs,
                nowait: false,
            },
        };
        self.core
            .queue(req, now)
            .map_err(|r| RingQueueError::Queue(r.error))
    }

    /// Cancels `request` (from [`queue`](Self::queue)), as [`IoQueue::cancel`]: parts not
    /// pushed into the ring yet never will be, and cost no tokens. Returns the request's
    /// [`RingIo::user_data`] when none of its parts is in the ring: it will not complete, and
    /// its slot is free again. Returns `None` when parts are in the ring: the request completes
    /// through [`poll`](Self::poll) once they do, its result counting the bytes before the
    /// first part that did not go out (`-ECANCELED` if that was the first part).
    ///
    /// This is how a caller with a deadline ends at it: requests still waiting for tokens (or
    /// a bandwidth limit, or room in the ring) are cancelled, and only what is in the disk is
    /// waited for ([`in_flight`](Self::in_flight)).
    ///
    /// # Errors
    ///
    /// [`QueueError::UnknownRequest`] for a request that completed, was cancelled already, or
    /// is another queue's.
    pub fn cancel(&mut self, request: RequestId) -> Result<Option<u64>, QueueError> {
        Ok(self.core.cancel(request)?.map(|t| t.user_data))
    }

    /// Requests queued or in the disk. Parts of cancelled requests count until the next
    /// [`poll`](Self::poll) discards them (not while their class is over its bandwidth
    /// limit); after cancelling, wait for [`in_flight`](Self::in_flight) instead.
    pub fn pending(&self) -> usize {
        self.core.pending()
    }

    /// Parts in the ring (dispatched and not completed): what a caller that cancelled the
    /// rest still has to wait for.
    pub fn in_flight(&self) -> usize {
        self.core.in_flight()
    }

    /// Dispatches what the tokens allow, submits, and reaps completions, calling
    /// `on_complete` for each finished request. With `wait`, blocks until at least one
    /// completion arrives or, when everything waits for tokens, until they are due. Returns
    /// the number of finished requests.
    ///
    /// # Errors
    ///
    /// The ring's submission errors.
    pub fn poll(
        &mut self,
        wait: bool,
        on_complete: impl FnMut(RingCompletion),
    ) -> Result<usize, EngineError> {
        self.poll_inner(wait, None, on_complete)
    }

    /// As [`poll`](Self::poll) with `wait`, but waits at most `timeout` (for callers with
    /// timers and deadlines).
    ///
    /// # Errors
    ///
    /// The ring's submission errors.
    pub fn poll_timeout(
        &mut self,
        timeout: Duration,
        on_complete: impl FnMut(RingCompletion),
    ) -> Result<usize, EngineError> {
        self.poll_inner(true, Some(timeout), on_complete)
    }

    fn poll_inner(
        &mut self,
        wait: bool,
        timeout: Option<Duration>,
        mut on_complete: impl FnMut(RingCompletion),
    ) -> Result<usize, EngineError> {
        let now = Instant::now();
        self.dispatch(now)?;
        // Everything left waits for tokens: when are they due?
        let tokens_due = if self.core.queued() > 0 && self.ring.in_flight() < self.ring.slots() {
            self.core
                .next_dispatch_at(now)
                .map(|t| t.saturating_duration_since(now))
        } else {
            None
        };
        let limit = match (timeout, tokens_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let want = usize::from(wait && self.ring.in_flight() > 0);
        if want > 0 {
            self.ring.submit_and_wait_timeout(want, limit)?;
        } else {
            self.ring.submit_and_wait(0)?;
        }
        let done = self.reap(&mut on_complete)?;
        if wait && want == 0 && done == 0 {
            if let Some(d) = limit {
                // Nothing in the disk, and the next request waits for tokens.
                std::thread::sleep(d);
            }
        }
        Ok(done)
    }

    /// Pushes every part the core lets out while the ring has room.
    fn dispatch(&mut self, now: Instant) -> Result<(), EngineError> {
        let slots = self.ring.slots();
        while self.ring.in_flight() < slots {
            let Some(d) = self.core.poll_dispatch(now) else {
                break;
            };
            let nowait = self.nowait_writes && d.direction == Direction::Write;
            d.token.nowait |= nowait;
            self.ring.push(ring_request(&d, nowait))?;
        }
        Ok(())
    }

    /// Reaps what completed, resubmits refused `RWF_NOWAIT` writes, reports finished
    /// requests.
    fn reap(&mut self, on_complete: &mut impl FnMut(RingCompletion)) -> Result<usize, EngineError> {
        let now = Instant::now();
        let mut done = 0;
        let mut nowait_unsupported = false;
        let (core, retry) = (&mut self.core, &mut self.retry);
        self.ring.reap(|c| {
            let part = PartId::from_u64(c.user_data);
            let result = i64::from(c.result);
            if c.result == -libc::EAGAIN || c.result == -libc::EOPNOTSUPP {
                if let Ok(d) = core.in_flight_part(part) {
                    if d.direction == Direction::Write && d.token.nowait {
                        // EOPNOTSUPP: the filesystem does not take RWF_NOWAIT at all
                        // (tmpfs); stop asking, and do not count it as a retry.
                        nowait_unsupported |= c.result == -libc::EOPNOTSUPP;
                        retry.push(part);
                        return;
                    }
                }
            }
            // A part the core does not know cannot come from this driver's pushes.
            if let Ok(Some(f)) = core.complete(part, result, now) {
                on_complete(RingCompletion {
                    user_data: f.token.user_data,
                    class: f.class,
                    result: f.result,
                    queued_at: f.queued_at,
                    completed_at: now,
                });
                done += 1;
            }
        });
        if nowait_unsupported {
            self.nowait_writes = false;
        }
        // Again, without RWF_NOWAIT; their tokens were paid at dispatch.
        for i in 0..self.retry.len() {
            let part = self.retry[i];
            let Ok(d) = self.core.in_flight_part(part) else {
                continue;
            };
            if !nowait_unsupported {
                if let Some(n) = self.aio_retries.get_mut(d.class.index()) {
                    *n += 1;
                }
            }
            let req = ring_request(&d, false);
            if let Err(e) = self.ring.push(req) {
                self.retry.clear();
                return Err(e);
            }
        }
        self.retry.clear();
        Ok(done)
    }

    /// Statistics of a class.
    ///
    /// # Errors
    ///
    /// [`QueueError::ForeignClass`] for another queue's class.
    pub fn class_stats(&self, class: ClassId) -> Result<ClassStats, QueueError> {
        self.core.class_stats(class)
    }

    /// Writes of `class` resubmitted without `RWF_NOWAIT` after `EAGAIN` (the filesystem
    /// would have blocked the submitter).
    ///
    /// # Errors
    ///
    /// [`QueueError::ForeignClass`] for another queue's class.
    pub fn aio_retries(&self, class: ClassId) -> Result<u64, QueueError> {
        self.core.class_stats(class)?;
        Ok(self.aio_retries.get(class.index()).copied().unwrap_or(0))
    }

    /// Statistics of the queue.
    pub fn stats(&self) -> QueueStats {
        self.core.stats()
    }

    /// Writes resubmitted after `EAGAIN`, all classes.
    pub fn total_aio_retries(&self) -> u64 {
        self.aio_retries.iter().sum()
    }
}

/// The ring request for part `d` (a split request's parts go out plain, not vectored).
#[inline]
fn ring_request(d: &Dispatch<'_, RingToken>, nowait: bool) -> RingRequest {
    let t = &*d.token;
    RingRequest {
        direction: d.direction,
        file: t.file,
        offset: t.offset + d.offset,
        slot: t.slot,
        slot_offset: d.offset as usize,
        len: d.len as u32,
        user_data: d.part.to_u64(),
        rw_flags: if nowait { libc::RWF_NOWAIT } else { 0 },
        iovecs: if d.parts == 1 { t.iovecs } else { 0 },
    }
}

/// Errors of [`RingQueue::queue`].
#[derive(Debug, thiserror::Error)]
pub enum RingQueueError {
    /// The core refused the request.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// Slot, file, length or iovec count the ring cannot take.
    #[error("invalid request: {0}")]
    Invalid(String),
}
