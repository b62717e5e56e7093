//! The per-shard I/O queue: costs every request when queued, orders requests between
//! priority classes with the [`FairQueue`], dispatches them within the group's
//! [`SharedTokenBucket`] with batched token-fair grabbing, submits them through the engine's
//! [`Ring`], and accounts completions.
//!
//! Follows Seastar's io_queue (shared/reference/scheduler.md §6–7): each shard holds at most
//! one reservation on the shared bucket; requests longer than the model's maximum length are
//! split; flow-ratio backpressure raises costs while the disk completes less than was
//! dispatched. Unconfigured groups cost nothing: requests dispatch as soon as they are queued.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cost_model::{CostModel, CAPACITY_PER_MS};
use crate::direction::Direction;
use crate::engine::{EngineError, Ring, RingRequest};
use crate::fair_queue::{bandwidth_bucket, ClassId, FairQueue, FairQueueConfig, GroupId};
use crate::io_properties::DiskProperties;
use crate::token_bucket::SharedTokenBucket;

/// Capacity units per second of whole-disk time.
const CAPACITY_PER_SEC: u64 = CAPACITY_PER_MS * 1000;

/// What all shards of one disk share: the cost model and the token bucket(s).
pub struct IoGroup {
    model: CostModel,
    /// `[read stream, write stream]`; both point at one bucket unless the disk is duplex.
    buckets: [Arc<SharedTokenBucket>; 2],
    duplex: bool,
    origin: Instant,
}

impl IoGroup {
    /// A group for `model`; `duplex` gives reads and writes a full-rate bucket each.
    pub fn new(model: CostModel, duplex: bool) -> Arc<IoGroup> {
        let origin = Instant::now();
        let make = || {
            Arc::new(SharedTokenBucket::new(
                model.rate_per_ms * 1000,
                model.limit,
                model.threshold,
                0,
            ))
        };
        let read = make();
        let write = if duplex { make() } else { read.clone() };
        Arc::new(IoGroup {
            model,
            buckets: [read, write],
            duplex,
            origin,
        })
    }

    /// A group from an io-properties disk entry.
    pub fn from_properties(
        disk: &DiskProperties,
        cfg: &crate::cost_model::CostConfig,
    ) -> Result<Arc<IoGroup>, crate::cost_model::CostError> {
        Ok(IoGroup::new(CostModel::from_disk(disk, cfg)?, disk.duplex))
    }

    /// A bandwidth limit of `bytes_per_sec` for a class or class group, to pass to
    /// [`IoQueue::register_class`] / [`IoQueue::register_group`] on every shard: one bucket
    /// (512-byte blocks, §5) shared by all of them, so the limit holds for the whole group.
    pub fn bandwidth_limit(&self, bytes_per_sec: u64) -> Arc<SharedTokenBucket> {
        Arc::new(bandwidth_bucket(bytes_per_sec, self.now_ns()))
    }

    /// The cost model.
    pub fn model(&self) -> &CostModel {
        &self.model
    }

    /// Nanoseconds since the group was created (the buckets' clock).
    pub fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    fn stream_of(&self, d: Direction) -> usize {
        match (self.duplex, d) {
            (true, Direction::Write) => 1,
            _ => 0,
        }
    }
}

/// A priority class registered with [`IoQueue::register_class`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClassHandle(u32);

/// A class group registered with [`IoQueue::register_group`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupHandle(u32);

/// Statistics of one priority class (the reference's io_queue metrics).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ClassStats {
    /// Class name.
    pub name: String,
    /// Shares.
    pub shares: u32,
    /// Requests completed (a split request counts once).
    pub operations: u64,
    /// Bytes completed.
    pub bytes: u64,
    /// Seconds requests spent in the disk (dispatch to completion), summed.
    pub total_exec_sec: f64,
    /// Seconds requests waited in the queue (queue to dispatch), summed.
    pub total_delay_sec: f64,
    /// Capacity dispatched, in seconds of whole-disk time.
    pub consumption: f64,
    /// Capacity dispatched after flow-ratio adjustment, in seconds of whole-disk time.
    pub adjusted_consumption: f64,
    /// Times the class went from idle to having queued work.
    pub activations: u64,
    /// Seconds the class had queued work but could not dispatch for lack of tokens.
    pub starvation_time_sec: f64,
    /// Requests split because they exceeded the maximum request length.
    pub split_requests: u64,
    /// Writes resubmitted without `RWF_NOWAIT` after the filesystem answered `EAGAIN`
    /// (it would have blocked the submitter).
    pub aio_retries: u64,
}

/// Statistics of the queue.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct QueueStats {
    /// Requests in the disk now.
    pub in_flight: usize,
    /// Requests queued and not dispatched.
    pub queued: usize,
    /// Smoothed dispatched/completed ratio (§7); costs rise while it exceeds 1.1.
    pub flow_ratio: f64,
    /// Requests split because they exceeded the maximum length.
    pub split_requests: u64,
    /// Writes resubmitted without `RWF_NOWAIT` after `EAGAIN`.
    pub aio_retries: u64,
}

/// A request for [`IoQueue::queue_request`].
#[derive(Clone, Copy, Debug)]
pub struct IoRequest {
    /// Priority class.
    pub class: ClassHandle,
    /// Read or write.
    pub direction: Direction,
    /// Index of the file in the ring's file list.
    pub file: usize,
    /// File offset, bytes.
    pub offset: u64,
    /// Length, bytes (at most the ring's slot size).
    pub len: u64,
    /// Ring buffer slot, used from byte 0.
    pub slot: usize,
    /// Returned with the completion.
    pub user_data: u64,
    /// Submit as readv/writev over this many equal pieces of the slot (0 or 1: plain). A
    /// request split for exceeding the maximum length goes out as plain parts.
    pub iovecs: u16,
}

/// A completed request as the caller queued it.
#[derive(Clone, Copy, Debug)]
pub struct IoCompletion {
    /// As given to [`IoQueue::queue`].
    pub user_data: u64,
    /// The class it ran in.
    pub class: ClassHandle,
    /// Bytes transferred (parts up to the first short or failed one), or the first part's
    /// negative errno when that part failed.
    pub result: i64,
    /// When it was queued.
    pub queued_at: Instant,
    /// When it completed (reap time of its last part).
    pub completed_at: Instant,
}

/// Errors of [`IoQueue::queue`].
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The request does not fit the ring's slot.
    #[error(
        "request of {len} bytes at slot offset {slot_offset} does not fit a {slot_size}-byte slot"
    )]
    TooLong {
        /// Request length, bytes.
        len: u64,
        /// Offset in the slot, bytes.
        slot_offset: usize,
        /// Slot size, bytes.
        slot_size: usize,
    },
    /// Unknown class handle.
    #[error("unknown class {0:?}")]
    UnknownClass(ClassHandle),
    /// Slot, file or iovec count out of range.
    #[error("invalid request: {0}")]
    Invalid(String),
}

struct Part {
    request: u32,
    offset: u64,
    slot_offset: usize,
    len: u32,
    capacity: u64,
    /// Capacity before flow-ratio adjustment (for the `consumption` statistic).
    raw_capacity: u64,
    direction: Direction,
    /// Submitted with `RWF_NOWAIT` (writes, when enabled).
    nowait: bool,
}

struct Request {
    user_data: u64,
    class: ClassHandle,
    file: usize,
    slot: usize,
    queued_at: Instant,
    parts_left: u32,
    len: u64,
    /// Pieces for readv/writev (0/1: plain); only unsplit requests go out vectored.
    iovecs: u16,
    /// The lowest part (offset in the request, result) that came back short or failed.
    first_bad: Option<(u64, i32)>,
}

impl Request {
    /// Bytes up to the first short or failed part; the errno if the very first part failed.
    fn result(&self) -> i64 {
        match self.first_bad {
            None => self.len as i64,
            Some((0, r)) if r < 0 => r as i64,
            Some((o, r)) if r < 0 => o as i64,
            Some((o, r)) => (o + r as u64) as i64,
        }
    }
}

struct Reservation {
    position: u64,
    amount: u64,
    used: u64,
}

impl Reservation {
    /// Reserves `amount` tokens of `bucket` (§4 grab).
    fn grab(bucket: &SharedTokenBucket, amount: u64) -> Reservation {
        Reservation {
            position: bucket.grab(amount),
            amount,
            used: 0,
        }
    }

    /// True while the bucket has covered none of it yet.
    fn uncovered(&self, bucket: &SharedTokenBucket) -> bool {
        bucket.deficiency(self.position) >= self.amount
    }
}

struct StreamState {
    fq: FairQueue<u32>,
    classes: Vec<ClassId>,
    reservation: Option<Reservation>,
    /// The group's bucket for this stream. Taken out (moved, no reference-count traffic on
    /// the shared cache line) while `dispatch` works on the stream.
    bucket: Option<Arc<SharedTokenBucket>>,
}

/// Per-request sums kept as integers (nanoseconds, capacity units); `class_stats` converts.
#[derive(Default)]
struct Sums {
    exec_ns: u64,
    delay_ns: u64,
    consumption: u64,
    adjusted_consumption: u64,
}

struct ClassState {
    stats: ClassStats,
    sums: Sums,
    starving_since: Option<Instant>,
}

/// One shard's I/O queue. Single-threaded; create one per shard thread from a shared
/// [`IoGroup`].
pub struct IoQueue {
    group: Arc<IoGroup>,
    ring: Ring,
    streams: Vec<StreamState>,
    classes: Vec<ClassState>,
    groups: Vec<Vec<GroupId>>,
    requests: Vec<Option<Request>>,
    free: Vec<u32>,
    parts: Vec<Option<(Part, Instant)>>,
    free_parts: Vec<u32>,
    flow_ratio: f64,
    flow_dispatched: u64,
    flow_completed: u64,
    flow_next: Instant,
    flow_period: Duration,
    split_requests: u64,
    aio_retries: u64,
    queued: usize,
    nowait_writes: bool,
    /// Parts to resubmit without RWF_NOWAIT after EAGAIN (reused buffer).
    retry: Vec<u32>,
    /// Last (length, capacity) costed per direction: streams of equal-sized requests skip
    /// the float arithmetic.
    cap_memo: [(u64, u64); 2],
    /// Classes whose starvation clock is running.
    starving: usize,
}

impl IoQueue {
    /// A queue submitting through `ring` under `group`'s model and bucket.
    pub fn new(group: Arc<IoGroup>, ring: Ring) -> IoQueue {
        let nstreams = if group.duplex { 2 } else { 1 };
        let cfg = FairQueueConfig::default();
        let streams = (0..nstreams)
            .map(|i| StreamState {
                fq: FairQueue::new(cfg),
                classes: Vec::new(),
                reservation: None,
                bucket: Some(group.buckets[i].clone()),
            })
            .collect();
        // §7: every latency goal × 100.
        let flow_period =
            Duration::from_secs_f64((group.model.latency_goal_ms * 100.0 / 1000.0).max(0.001));
        let slots = ring.slots();
        IoQueue {
            group,
            ring,
            streams,
            classes: Vec::new(),
            groups: Vec::new(),
            requests: Vec::with_capacity(slots),
            free: Vec::with_capacity(slots),
            parts: Vec::with_capacity(slots),
            free_parts: Vec::with_capacity(slots),
            flow_ratio: 1.0,
            flow_dispatched: 0,
            flow_completed: 0,
            flow_next: Instant::now() + flow_period,
            flow_period,
            split_requests: 0,
            aio_retries: 0,
            queued: 0,
            nowait_writes: false,
            retry: Vec::with_capacity(slots),
            cap_memo: [(u64::MAX, 0); 2],
            starving: 0,
        }
    }

    /// The engine ring (for slot sizes and stamping write buffers).
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// The group this queue belongs to.
    pub fn group(&self) -> &Arc<IoGroup> {
        &self.group
    }

    /// Registers a class group (nested under `parent` if given) with `shares` and an optional
    /// bandwidth limit from [`IoGroup::bandwidth_limit`].
    pub fn register_group(
        &mut self,
        shares: u32,
        parent: Option<GroupHandle>,
        bandwidth: Option<Arc<SharedTokenBucket>>,
    ) -> GroupHandle {
        let ids = self
            .streams
            .iter_mut()
            .enumerate()
            .map(|(i, s)| {
                let p = parent.map(|p| self.groups[p.0 as usize][i]);
                let g = s.fq.add_group(shares, p);
                s.fq.set_group_bandwidth(g, bandwidth.clone());
                g
            })
            .collect();
        self.groups.push(ids);
        GroupHandle(self.groups.len() as u32 - 1)
    }

    /// Registers a priority class with `shares` (≥ 1), an optional parent group and an
    /// optional bandwidth limit from [`IoGroup::bandwidth_limit`] (reads and writes together).
    pub fn register_class(
        &mut self,
        name: &str,
        shares: u32,
        parent: Option<GroupHandle>,
        bandwidth: Option<Arc<SharedTokenBucket>>,
    ) -> ClassHandle {
        for (i, s) in self.streams.iter_mut().enumerate() {
            let p = parent.map(|p| self.groups[p.0 as usize][i]);
            let c = s.fq.add_class(shares, p);
            s.fq.set_class_bandwidth(c, bandwidth.clone());
            s.classes.push(c);
        }
        self.classes.push(ClassState {
            stats: ClassStats {
                name: name.to_string(),
                shares: shares.max(1),
                ..Default::default()
            },
            sums: Sums::default(),
            starving_since: None,
        });
        ClassHandle(self.classes.len() as u32 - 1)
    }

    /// Changes a class's shares.
    pub fn set_shares(&mut self, class: ClassHandle, shares: u32) {
        for s in &mut self.streams {
            s.fq.set_shares(s.classes[class.0 as usize], shares);
        }
        self.classes[class.0 as usize].stats.shares = shares.max(1);
    }

    /// Queues a request of `len` bytes at file `offset`, using ring slot `slot` from byte 0.
    /// It is costed now; longer than the model's maximum length, it is split into parts.
    #[allow(clippy::too_many_arguments)] // mirrors the request's fields; see queue_request
    pub fn queue(
        &mut self,
        class: ClassHandle,
        direction: Direction,
        file: usize,
        offset: u64,
        len: u64,
        slot: usize,
        user_data: u64,
    ) -> Result<(), QueueError> {
        self.queue_at(
            Instant::now(),
            class,
            direction,
            file,
            offset,
            len,
            slot,
            user_data,
        )
    }

    /// As [`IoQueue::queue`], with the queueing time given by the caller: one clock read can
    /// serve a whole batch of requests queued together.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn queue_at(
        &mut self,
        now: Instant,
        class: ClassHandle,
        direction: Direction,
        file: usize,
        offset: u64,
        len: u64,
        slot: usize,
        user_data: u64,
    ) -> Result<(), QueueError> {
        self.queue_request(
            now,
            IoRequest {
                class,
                direction,
                file,
                offset,
                len,
                slot,
                user_data,
                iovecs: 0,
            },
        )
    }

    /// Queues `req`, queued at `now`. See [`IoQueue::queue`].
    #[inline]
    pub fn queue_request(&mut self, now: Instant, req: IoRequest) -> Result<(), QueueError> {
        let IoRequest {
            class,
            direction,
            file,
            offset,
            len,
            slot,
            user_data,
            iovecs,
        } = req;
        if class.0 as usize >= self.classes.len() {
            return Err(QueueError::UnknownClass(class));
        }
        if slot >= self.ring.slots() || file >= self.ring.file_count() {
            return Err(QueueError::Invalid(format!(
                "slot {slot} or file {file} out of range ({} slots, {} files)",
                self.ring.slots(),
                self.ring.file_count()
            )));
        }
        if iovecs > crate::engine::MAX_IOVECS
            || (iovecs > 1 && len % (u64::from(iovecs) * 512) != 0)
        {
            return Err(QueueError::Invalid(format!(
                "{iovecs} iovecs must be at most {} and split {len} bytes into 512-byte multiples",
                crate::engine::MAX_IOVECS
            )));
        }
        if len as usize > self.ring.slot_size() || len == 0 {
            return Err(QueueError::TooLong {
                len,
                slot_offset: 0,
                slot_size: self.ring.slot_size(),
            });
        }
        let max = self.group.model.max_request_len(direction).max(512);
        let nparts = if len <= max {
            1
        } else {
            len.div_ceil(max) as u32
        };
        if nparts > 1 {
            self.split_requests += 1;
            self.classes[class.0 as usize].stats.split_requests += 1;
        }
        let req = Request {
            user_data,
            class,
            file,
            slot,
            queued_at: now,
            parts_left: nparts,
            len,
            iovecs: if nparts == 1 { iovecs } else { 0 },
            first_bad: None,
        };
        let rid = match self.free.pop() {
            Some(i) => {
                self.requests[i as usize] = Some(req);
                i
            }
            None => {
                self.requests.push(Some(req));
                self.requests.len() as u32 - 1
            }
        };
        let stream = self.group.stream_of(direction);
        let mut off = 0;
        while off < len {
            let plen = (len - off).min(max);
            let raw = self.capacity(direction, plen);
            let mut cap = raw;
            if self.flow_ratio > 1.1 {
                cap = ((cap as f64 * self.flow_ratio) as u64).min(self.group.model.limit);
            }
            let part = Part {
                request: rid,
                offset: offset + off,
                slot_offset: off as usize,
                len: plen as u32,
                capacity: cap,
                raw_capacity: raw,
                direction,
                nowait: false,
            };
            let pid = match self.free_parts.pop() {
                Some(i) => {
                    self.parts[i as usize] = Some((part, now));
                    i
                }
                None => {
                    self.parts.push(Some((part, now)));
                    self.parts.len() as u32 - 1
                }
            };
            let st = &mut self.streams[stream];
            let fq_class = st.classes[class.0 as usize];
            st.fq.push(fq_class, cap, plen, pid);
            self.queued += 1;
            off += plen;
        }
        Ok(())
    }

    /// Requests queued or in the disk.
    pub fn pending(&self) -> usize {
        self.queued + self.ring.in_flight()
    }

    /// Submits writes with `RWF_NOWAIT` first: a filesystem that would block answers
    /// `EAGAIN`, and the write is resubmitted without the flag and counted in `aio_retries`,
    /// so users see when submissions would block.
    pub fn set_nowait_writes(&mut self, enabled: bool) {
        self.nowait_writes = enabled;
    }

    /// Dispatches what the tokens allow, submits, and reaps completions, calling
    /// `on_complete` for each finished request. With `wait`, blocks until at least one
    /// completion arrives or (when everything is waiting for tokens) the tokens are due.
    /// Returns the number of completed requests.
    pub fn poll(
        &mut self,
        wait: bool,
        on_complete: impl FnMut(IoCompletion),
    ) -> Result<usize, EngineError> {
        self.poll_inner(wait, None, on_complete)
    }

    /// As [`IoQueue::poll`] with `wait`, but waits at most `timeout` (for callers with timers).
    pub fn poll_timeout(
        &mut self,
        timeout: Duration,
        on_complete: impl FnMut(IoCompletion),
    ) -> Result<usize, EngineError> {
        self.poll_inner(true, Some(timeout), on_complete)
    }

    fn poll_inner(
        &mut self,
        wait: bool,
        timeout: Option<Duration>,
        mut on_complete: impl FnMut(IoCompletion),
    ) -> Result<usize, EngineError> {
        let waiting_for_tokens = self.dispatch()?;
        let want = usize::from(wait && self.ring.in_flight() > 0);
        self.ring.submit_and_wait_timeout(want, timeout)?;
        let mut done = 0;
        let now_reap = Instant::now();
        let mut reaped: u64 = 0;
        let (parts, requests, free_parts, free, classes, retry) = (
            &mut self.parts,
            &mut self.requests,
            &mut self.free_parts,
            &mut self.free,
            &mut self.classes,
            &mut self.retry,
        );
        let mut nowait_unsupported = false;
        let nowait_unsupported = &mut nowait_unsupported;
        self.ring.reap(|c| {
            reaped += 1;
            let pid = c.user_data as usize;
            if (c.result == -libc::EAGAIN || c.result == -libc::EOPNOTSUPP)
                && parts[pid].as_ref().is_some_and(|(p, _)| p.nowait)
            {
                // EOPNOTSUPP: the filesystem does not take RWF_NOWAIT at all (tmpfs); stop
                // asking, and do not count it as a retry.
                *nowait_unsupported |= c.result == -libc::EOPNOTSUPP;
                retry.push(pid as u32);
                return;
            }
            let Some((part, dispatched)) = parts[pid].take() else {
                return;
            };
            free_parts.push(pid as u32);
            let rid = part.request as usize;
            let Some(req) = requests[rid].as_mut() else {
                return;
            };
            classes[req.class.0 as usize].sums.exec_ns +=
                now_reap.saturating_duration_since(dispatched).as_nanos() as u64;
            if c.result < 0 || (c.result as u32) < part.len {
                let rel = part.slot_offset as u64;
                if req.first_bad.is_none_or(|(o, _)| rel < o) {
                    req.first_bad = Some((rel, c.result));
                }
            }
            req.parts_left -= 1;
            if req.parts_left == 0 {
                let req = requests[rid].take().expect("present");
                free.push(rid as u32);
                let result = req.result();
                let st = &mut classes[req.class.0 as usize].stats;
                st.operations += 1;
                st.bytes += result.max(0) as u64;
                on_complete(IoCompletion {
                    user_data: req.user_data,
                    class: req.class,
                    result,
                    queued_at: req.queued_at,
                    completed_at: now_reap,
                });
                done += 1;
            }
        });
        // Writes the filesystem would have blocked on: again, without RWF_NOWAIT. Their tokens
        // were paid at dispatch.
        if *nowait_unsupported {
            self.nowait_writes = false;
        }
        for i in 0..self.retry.len() {
            let pid = self.retry[i];
            let (part, _) = self.parts[pid as usize].as_mut().expect("kept for retry");
            part.nowait = false;
            let req = self.requests[part.request as usize]
                .as_ref()
                .expect("live request");
            if !*nowait_unsupported {
                self.aio_retries += 1;
                self.classes[req.class.0 as usize].stats.aio_retries += 1;
            }
            let r = RingRequest {
                direction: part.direction,
                file: req.file,
                offset: part.offset,
                slot: req.slot,
                slot_offset: part.slot_offset,
                len: part.len,
                user_data: pid as u64,
                rw_flags: 0,
                iovecs: req.iovecs,
            };
            if let Err(e) = self.ring.push(r) {
                self.retry.clear();
                return Err(e);
            }
        }
        self.flow_completed += reaped - self.retry.len() as u64;
        self.retry.clear();
        self.update_flow(now_reap);
        if wait && want == 0 && waiting_for_tokens && done == 0 {
            // Everything waits for tokens: sleep a little rather than spin.
            std::thread::sleep(
                timeout
                    .unwrap_or(Duration::from_micros(50))
                    .min(Duration::from_micros(50)),
            );
        }
        Ok(done)
    }

    /// The model's capacity of a `len`-byte request, memoised per direction.
    fn capacity(&mut self, direction: Direction, len: u64) -> u64 {
        let memo = &mut self.cap_memo[direction as usize];
        if memo.0 != len {
            *memo = (len, self.group.model.capacity(direction, len).0);
        }
        memo.1
    }

    fn update_flow(&mut self, now: Instant) {
        if now < self.flow_next {
            return;
        }
        self.flow_next = now + self.flow_period;
        // A window without completions (a stall) carries its dispatches into the next one, so
        // the ratio sees them when the disk answers again.
        if self.flow_completed > 0 {
            let ratio = self.flow_dispatched as f64 / self.flow_completed as f64;
            self.flow_ratio = 0.95 * self.flow_ratio + 0.05 * ratio;
            self.flow_dispatched = 0;
            self.flow_completed = 0;
        }
    }

    /// §6: dispatches from every stream within its tokens. Returns true when requests remain
    /// queued for lack of tokens.
    fn dispatch(&mut self) -> Result<bool, EngineError> {
        let now_ns = self.group.now_ns();
        let now = Instant::now();
        let limit = self.group.model.limit;
        let per_tick = self.group.model.per_tick_grab_threshold.max(1);
        let mut starved = false;
        for si in 0..self.streams.len() {
            let bucket = self.streams[si]
                .bucket
                .take()
                .expect("bucket is put back after each dispatch");
            let result = self.dispatch_stream(si, &bucket, now_ns, now, limit, per_tick);
            self.streams[si].bucket = Some(bucket);
            starved |= result?;
        }
        self.account_starvation(starved, now);
        Ok(starved)
    }

    /// Dispatches from stream `si` within `bucket`'s tokens; true when requests remain queued
    /// for lack of tokens (or every class with work is held by its bandwidth limit).
    #[inline(always)]
    fn dispatch_stream(
        &mut self,
        si: usize,
        bucket: &SharedTokenBucket,
        now_ns: u64,
        now: Instant,
        limit: u64,
        per_tick: u64,
    ) -> Result<bool, EngineError> {
        let mut starved = false;
        {
            bucket.replenish(now_ns);
            loop {
                if self.ring.in_flight() >= self.ring.slots() {
                    break;
                }
                let st = &mut self.streams[si];
                let Some((_, cap)) = st.fq.peek(now_ns) else {
                    // Work queued but every class holding it is over its bandwidth limit: a
                    // wait, not idleness (the poll sleeps instead of spinning).
                    starved |= !st.fq.is_empty();
                    break;
                };
                let ready = st.reservation.as_ref().map_or(0, |r| {
                    r.amount - bucket.deficiency(r.position).min(r.amount) - r.used.min(r.amount)
                });
                if cap == 0 || cap <= ready {
                    if let Some(r) = st.reservation.as_mut() {
                        r.used += cap;
                        if r.used >= r.amount {
                            st.reservation = None;
                        }
                    }
                    let (_, pid, _) = st.fq.pop(now_ns).expect("peeked");
                    self.submit_part(pid, now)?;
                    continue;
                }
                // Not enough ready tokens for the head request.
                match st.reservation.as_ref() {
                    Some(r) => {
                        let deficit = bucket.deficiency(r.position);
                        let remaining = r.amount - r.used;
                        // Still uncovered and either big enough for the head request or already
                        // a full per-tick grab: wait for the bucket to cover it.
                        if deficit > 0 && (remaining >= cap || r.amount >= per_tick) {
                            starved = true;
                            break;
                        }
                        // First in line (nothing before our reservation is uncovered): give the
                        // unused part back and reserve enough for the head request anew.
                        if deficit <= r.amount {
                            bucket.refund(remaining);
                            let want = (remaining + per_tick)
                                .min(st.fq.queued_capacity())
                                .min(limit)
                                .max(cap);
                            let r = Reservation::grab(bucket, want);
                            let uncovered = r.uncovered(bucket);
                            st.reservation = Some(r);
                            if uncovered {
                                starved = true;
                                break;
                            }
                            continue;
                        }
                        starved = true;
                        break;
                    }
                    None => {
                        let want = per_tick.min(st.fq.queued_capacity()).min(limit).max(cap);
                        let r = Reservation::grab(bucket, want);
                        let uncovered = r.uncovered(bucket);
                        st.reservation = Some(r);
                        if uncovered {
                            starved = true;
                            break;
                        }
                    }
                }
            }
        }
        Ok(starved)
    }

    /// Per class: time with queued work and no dispatch. Nothing to do (and no per-class scan)
    /// while no class starves or starved.
    fn account_starvation(&mut self, starved: bool, now: Instant) {
        if !starved && self.starving == 0 {
            return;
        }
        for (ci, c) in self.classes.iter_mut().enumerate() {
            let has_work = self
                .streams
                .iter()
                .any(|s| s.fq.class_len(s.classes[ci]) > 0);
            match (has_work && starved, c.starving_since) {
                (true, None) => {
                    c.starving_since = Some(now);
                    self.starving += 1;
                }
                (false, Some(t)) => {
                    c.stats.starvation_time_sec += now.saturating_duration_since(t).as_secs_f64();
                    c.starving_since = None;
                    self.starving -= 1;
                }
                _ => {}
            }
        }
    }

    fn submit_part(&mut self, pid: u32, now: Instant) -> Result<(), EngineError> {
        let (part, queued) = self.parts[pid as usize].as_mut().expect("queued part");
        part.nowait = self.nowait_writes && part.direction == Direction::Write;
        let req = self.requests[part.request as usize]
            .as_mut()
            .expect("live request");
        let sums = &mut self.classes[req.class.0 as usize].sums;
        sums.delay_ns += now.saturating_duration_since(*queued).as_nanos() as u64;
        sums.adjusted_consumption += part.capacity;
        sums.consumption += part.raw_capacity;
        *queued = now;
        self.queued -= 1;
        self.flow_dispatched += 1;
        self.ring.push(RingRequest {
            direction: part.direction,
            file: req.file,
            offset: part.offset,
            slot: req.slot,
            slot_offset: part.slot_offset,
            len: part.len,
            user_data: pid as u64,
            rw_flags: if part.nowait { libc::RWF_NOWAIT } else { 0 },
            iovecs: req.iovecs,
        })
    }

    /// Statistics of a class.
    pub fn class_stats(&self, class: ClassHandle) -> ClassStats {
        let c = &self.classes[class.0 as usize];
        let mut s = c.stats.clone();
        s.total_exec_sec = c.sums.exec_ns as f64 / 1e9;
        s.total_delay_sec = c.sums.delay_ns as f64 / 1e9;
        s.consumption = c.sums.consumption as f64 / CAPACITY_PER_SEC as f64;
        s.adjusted_consumption = c.sums.adjusted_consumption as f64 / CAPACITY_PER_SEC as f64;
        s.activations = self
            .streams
            .iter()
            .map(|st| st.fq.activations(st.classes[class.0 as usize]))
            .sum();
        s
    }

    /// Statistics of the queue.
    pub fn stats(&self) -> QueueStats {
        QueueStats {
            in_flight: self.ring.in_flight(),
            queued: self.queued,
            flow_ratio: self.flow_ratio,
            split_requests: self.split_requests,
            aio_retries: self.aio_retries,
        }
    }
}
