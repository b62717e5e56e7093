//! The per-shard I/O queue: a deterministic scheduling core with no I/O.
//!
//! An [`IoQueue`] costs every request when it is queued (the [`CostModel`]), orders requests
//! between priority classes and groups by shares ([`FairQueue`]), lets them out within the
//! IO group's shared token bucket with batched token-fair grabbing, splits requests longer
//! than the model's maximum length, raises costs while the disk completes less than was
//! dispatched (flow-ratio backpressure) and keeps the reference's statistics. It follows
//! Seastar's io_queue (`shared/reference/scheduler.md` §4–7).
//!
//! It performs no I/O, starts no thread, never sleeps and never reads the clock: the caller
//! passes `now` to every call that needs the time, and requests carry a token of the
//! caller's type `T` (its buffer, file, submission entry, waker, ...) that the queue only
//! stores and gives back. Like quinn-proto, the queue answers two questions:
//!
//! - [`poll_dispatch`](IoQueue::poll_dispatch): what may go to the disk now? Each answer is
//!   one part (the whole request unless it was split) with the caller's token; the caller
//!   submits it its own way and reports the result with [`complete`](IoQueue::complete).
//! - [`next_dispatch_at`](IoQueue::next_dispatch_at): when should I ask again? The time the
//!   token bucket will cover the waiting request, so a driver arms a timer instead of
//!   spinning.
//!
//! Drivers sit around it: `ring_queue::RingQueue` (io_uring or threads, used by io-tester;
//! feature `harness`), [`crate::admission`] (an async permit for engines with their own I/O),
//! and the simulated instant device of [`crate::sim`].
//!
//! # Example
//!
//! Two classes at 400 and 100 shares on a slow disk model, on a simulated clock: a driver
//! loop that dispatches, "completes" at once, and sleeps until the next dispatch time.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use scheduler::cost_model::{CostConfig, CostModel};
//! use scheduler::io_queue::{ClassConfig, IoGroup, IoQueue, IoRequest};
//! use scheduler::Direction;
//!
//! let model = CostModel::from_rates(1000, 100 << 20, 1000, 100 << 20, &CostConfig::default())?;
//! let start = Instant::now(); // the only clock read: the simulation's origin
//! let group = IoGroup::new(model, false, start);
//! let mut queue = IoQueue::new(group);
//! let queries = queue.add_class(ClassConfig::new("queries", 400))?;
//! let compaction = queue.add_class(ClassConfig::new("compaction", 100))?;
//!
//! let mut now = start;
//! for i in 0..100u32 {
//!     for class in [queries, compaction] {
//!         queue.queue(IoRequest { class, direction: Direction::Read, len: 4096, token: i }, now)?;
//!     }
//! }
//! let mut served = [0u32; 2];
//! while now < start + Duration::from_millis(50) {
//!     while let Some(d) = queue.poll_dispatch(now) {
//!         let (part, class) = (d.part, d.class);
//!         queue.complete(part, 4096, now)?; // an instant device
//!         served[class.index()] += 1;
//!     }
//!     now = queue.next_dispatch_at(now).unwrap_or(now + Duration::from_millis(1));
//! }
//! // 1000 IOPS for 50 ms (plus the bucket's initial fill), split 4:1 by shares.
//! assert_eq!(served, [39, 10]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod group;
mod handle;
mod slab;
mod stats;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use group::{BandwidthLimit, IoGroup};
pub use handle::{ClassId, GroupId, PartId, QueueError, Rejected, RequestId};
pub use stats::{ClassStats, QueueStats};

use crate::cost_model::{CostModel, CAPACITY_PER_MS};
use crate::fair_queue::{self, FairQueue, FairQueueConfig};
use crate::token_bucket::SharedTokenBucket;
use crate::Direction;
use handle::QueueTag;
use slab::Slab;
use stats::Sums;

/// Capacity units per second of whole-disk time.
const CAPACITY_PER_SEC: u64 = CAPACITY_PER_MS * 1000;

/// Most parts one request may be split into.
pub const MAX_PARTS: u32 = 1 << 16;

/// Flow ratio above which queued requests cost more (scheduler.md §7).
const FLOW_RATIO_THRESHOLD: f64 = 1.1;

/// `errno` ECANCELED (Linux), the result of the parts of a cancelled request that never went
/// out.
const ECANCELED: i64 = 125;

/// A request for [`IoQueue::queue`].
#[derive(Debug)]
pub struct IoRequest<T> {
    /// Its priority class.
    pub class: ClassId,
    /// Read or write.
    pub direction: Direction,
    /// Length, bytes (at least 1).
    pub len: u64,
    /// The caller's token: stored, lent with each dispatched part, returned on completion.
    pub token: T,
}

/// A priority class for [`IoQueue::add_class`]: a name (for statistics), shares, and
/// optionally a parent group and a bandwidth limit.
#[derive(Clone, Debug)]
pub struct ClassConfig {
    name: String,
    shares: u32,
    parent: Option<GroupId>,
    bandwidth: Option<BandwidthLimit>,
}

impl ClassConfig {
    /// A top-level class with `shares` (0 counts as 1) and no bandwidth limit.
    pub fn new(name: impl Into<String>, shares: u32) -> ClassConfig {
        ClassConfig {
            name: name.into(),
            shares: shares.max(1),
            parent: None,
            bandwidth: None,
        }
    }

    /// Places the class inside `group`.
    pub fn parent(mut self, group: GroupId) -> ClassConfig {
        self.parent = Some(group);
        self
    }

    /// Limits the class's reads and writes together to `limit` (from
    /// [`IoGroup::bandwidth_limit`]; share the same limit between shards to limit them all).
    pub fn bandwidth(mut self, limit: BandwidthLimit) -> ClassConfig {
        self.bandwidth = Some(limit);
        self
    }
}

/// One part of a request that may go to the disk now, from [`IoQueue::poll_dispatch`].
#[derive(Debug)]
pub struct Dispatch<'a, T> {
    /// Report its result with [`IoQueue::complete`].
    pub part: PartId,
    /// The request it belongs to.
    pub request: RequestId,
    /// The request's class.
    pub class: ClassId,
    /// Read or write.
    pub direction: Direction,
    /// Where the part starts in the request, bytes (0 unless split).
    pub offset: u64,
    /// Part length, bytes.
    pub len: u64,
    /// How many parts the request has (1: not split).
    pub parts: u32,
    /// The request's token.
    pub token: &'a mut T,
}

/// A finished request, from [`IoQueue::complete`].
#[derive(Debug)]
pub struct Completion<T> {
    /// The request (now stale).
    pub request: RequestId,
    /// Its class.
    pub class: ClassId,
    /// Read or write.
    pub direction: Direction,
    /// The caller's token.
    pub token: T,
    /// Bytes transferred by the parts up to the first short or failed one, or that part's
    /// negative errno when it was the first part.
    pub result: i64,
    /// When it was queued.
    pub queued_at: Instant,
}

/// A request, from queueing until its last part completed (or was discarded).
#[derive(Debug)]
struct Req<T> {
    /// `None` once handed back (a cancel returned it).
    token: Option<T>,
    class: u32,
    direction: Direction,
    len: u64,
    /// Length of every part but the last, bytes.
    part_len: u64,
    queued_at: Instant,
    parts: u32,
    /// Parts still in the fair queue.
    undispatched: u32,
    /// Parts dispatched and not completed.
    in_flight: u32,
    /// The lowest (offset in the request, result) of a part that came back short or failed.
    first_bad: Option<(u64, i64)>,
    cancelled: bool,
}

impl<T> Req<T> {
    /// Bytes up to the first short or failed part; the errno if the very first part failed.
    fn result(&self) -> i64 {
        let len = i64::try_from(self.len).unwrap_or(i64::MAX);
        match self.first_bad {
            None => len,
            Some((0, r)) if r < 0 => r,
            Some((o, r)) if r < 0 => o as i64,
            Some((o, r)) => (o as i64).saturating_add(r),
        }
    }

    fn note_bad(&mut self, offset: u64, result: i64) {
        if self.first_bad.is_none_or(|(o, _)| offset < o) {
            self.first_bad = Some((offset, result));
        }
    }
}

#[derive(Debug)]
struct Part {
    /// Index of the request in `IoQueue::requests`.
    request: u32,
    /// Offset in the request, bytes.
    offset: u64,
    len: u64,
    /// Capacity after flow-ratio adjustment (what the bucket is charged).
    capacity: u64,
    /// Capacity before adjustment (the `consumption` statistic).
    raw_capacity: u64,
    /// Queueing time until dispatched, then dispatch time (ns on the group's clock).
    since_ns: u64,
    dispatched: bool,
}

#[derive(Debug)]
struct Reservation {
    /// Bucket position the reservation waits for.
    position: u64,
    amount: u64,
    used: u64,
}

impl Reservation {
    fn grab(bucket: &SharedTokenBucket, amount: u64) -> Reservation {
        Reservation {
            position: bucket.grab(amount),
            amount,
            used: 0,
        }
    }

    /// Covered and not yet used.
    #[inline]
    fn ready(&self, bucket: &SharedTokenBucket) -> u64 {
        let covered = self.amount - bucket.deficiency(self.position).min(self.amount);
        covered.saturating_sub(self.used)
    }
}

/// One fair queue per bucket: reads and writes share one unless the disk is duplex.
#[derive(Debug)]
struct Stream {
    fq: FairQueue<u32>,
    /// Fair-queue class of each of our classes.
    classes: Vec<fair_queue::ClassId>,
    /// Fair-queue group of each of our groups.
    groups: Vec<fair_queue::GroupId>,
    reservation: Option<Reservation>,
    /// Clock reading of the last replenish from this stream (one per distinct `now`).
    replenished_ns: Option<u64>,
}

#[derive(Debug)]
struct ClassState {
    stats: ClassStats,
    sums: Sums,
    starving_since: Option<Instant>,
}

/// What one stream can do now.
enum Step {
    /// Dispatch this part.
    Part(u32),
    /// Work is queued but waits for tokens (or a bandwidth limit).
    Waiting,
    /// Nothing queued.
    Idle,
}

/// One shard's I/O queue (see the module docs). Single-threaded; make one per shard from a
/// shared [`IoGroup`]. `T` is the caller's per-request token.
#[derive(Debug)]
pub struct IoQueue<T> {
    tag: QueueTag,
    group: Arc<IoGroup>,
    streams: Vec<Stream>,
    /// Stream polled first by the next `poll_dispatch` (alternates after each dispatch).
    cursor: usize,
    classes: Vec<ClassState>,
    /// Number of groups added.
    groups: u32,
    requests: Slab<Req<T>>,
    parts: Slab<Part>,
    /// Parts in the fair queues.
    queued: usize,
    /// Parts dispatched and not completed.
    in_flight: usize,
    flow_ratio: f64,
    flow_dispatched: u64,
    flow_completed: u64,
    flow_next: Option<Instant>,
    flow_period: Duration,
    split_requests: u64,
    /// Last (length, capacity) costed per direction: streams of equal-sized requests skip the
    /// float arithmetic.
    cap_memo: [(u64, u64); 2],
    /// Classes whose starvation clock runs.
    starving: usize,
    /// Cancelled requests with parts still in the fair queues (dispatch skips the check for
    /// cancelled parts while there are none).
    cancelled: usize,
    /// The last `now` turned into the group's clock, and its reading.
    clock_memo: Option<(Instant, u64)>,
}

impl<T> IoQueue<T> {
    /// An empty queue (no classes yet) under `group`'s model and bucket(s).
    pub fn new(group: Arc<IoGroup>) -> IoQueue<T> {
        let streams = (0..group.streams())
            .map(|_| Stream {
                fq: FairQueue::new(FairQueueConfig::default()),
                classes: Vec::new(),
                groups: Vec::new(),
                reservation: None,
                replenished_ns: None,
            })
            .collect();
        // §7: the flow ratio is re-evaluated every latency goal × 100.
        let goal_ms = group.model().effective_latency_goal_ms();
        let flow_period = Duration::try_from_secs_f64(goal_ms * 100.0 / 1000.0)
            .unwrap_or(Duration::from_millis(75))
            .max(Duration::from_millis(1));
        IoQueue {
            tag: QueueTag::next(),
            group,
            streams,
            cursor: 0,
            classes: Vec::new(),
            groups: 0,
            requests: Slab::new(),
            parts: Slab::new(),
            queued: 0,
            in_flight: 0,
            flow_ratio: 1.0,
            flow_dispatched: 0,
            flow_completed: 0,
            flow_next: None,
            flow_period,
            split_requests: 0,
            cap_memo: [(u64::MAX, 0); 2],
            starving: 0,
            cancelled: 0,
            clock_memo: None,
        }
    }

    /// The IO group the queue draws from.
    pub fn group(&self) -> &Arc<IoGroup> {
        &self.group
    }

    /// The cost model.
    pub fn model(&self) -> &CostModel {
        self.group.model()
    }

    /// Adds a group of classes (and groups) with `shares` (0 counts as 1), under `parent`
    /// (`None`: top level), optionally limited to a bandwidth (reads and writes together).
    /// Two backlogged groups split the disk by their shares, and each splits its part among
    /// its members by theirs.
    ///
    /// # Errors
    ///
    /// [`QueueError::ForeignGroup`] if `parent` is another queue's; [`QueueError::Full`] after
    /// 2^32 groups.
    pub fn add_group(
        &mut self,
        shares: u32,
        parent: Option<GroupId>,
        bandwidth: Option<BandwidthLimit>,
    ) -> Result<GroupId, QueueError> {
        if let Some(p) = parent {
            self.check_group(p)?;
        }
        let index = self.groups;
        let next = index.checked_add(1).ok_or(QueueError::Full)?;
        for s in &mut self.streams {
            let p = parent.map(|p| s.groups[p.index as usize]);
            let g = s.fq.add_group(shares, p);
            s.fq.set_group_bandwidth(g, bandwidth.as_ref().map(|b| b.0.clone()));
            s.groups.push(g);
        }
        self.groups = next;
        Ok(GroupId {
            queue: self.tag,
            index,
        })
    }

    /// Adds a priority class.
    ///
    /// # Errors
    ///
    /// [`QueueError::ForeignGroup`] if its parent is another queue's group;
    /// [`QueueError::Full`] after 2^32 classes.
    pub fn add_class(&mut self, cfg: ClassConfig) -> Result<ClassId, QueueError> {
        if let Some(p) = cfg.parent {
            self.check_group(p)?;
        }
        let index = u32::try_from(self.classes.len()).map_err(|_| QueueError::Full)?;
        for s in &mut self.streams {
            let p = cfg.parent.map(|p| s.groups[p.index as usize]);
            let c = s.fq.add_class(cfg.shares, p);
            s.fq.set_class_bandwidth(c, cfg.bandwidth.as_ref().map(|b| b.0.clone()));
            s.classes.push(c);
        }
        self.classes.push(ClassState {
            stats: ClassStats {
                name: cfg.name,
                shares: cfg.shares,
                ..ClassStats::default()
            },
            sums: Sums::default(),
            starving_since: None,
        });
        Ok(ClassId {
            queue: self.tag,
            index,
        })
    }

    /// Changes a class's shares (0 counts as 1); later dispatches are charged with them.
    ///
    /// # Errors
    ///
    /// [`QueueError::ForeignClass`] for another queue's class.
    pub fn set_shares(&mut self, class: ClassId, shares: u32) -> Result<(), QueueError> {
        let c = self.check_class(class)?;
        for s in &mut self.streams {
            s.fq.set_shares(s.classes[c], shares);
        }
        self.classes[c].stats.shares = shares.max(1);
        Ok(())
    }

    /// Queues a request at `now`. It is costed now (with the flow-ratio surcharge in force);
    /// longer than the model's maximum length for its direction, it is split into parts of
    /// that length, which dispatch separately and complete together.
    ///
    /// # Errors
    ///
    /// The token comes back in [`Rejected`] with [`QueueError::ForeignClass`] for another
    /// queue's class, [`QueueError::Empty`] for 0 bytes, [`QueueError::TooLong`] beyond
    /// [`MAX_PARTS`] parts, [`QueueError::Full`] beyond 2^32 live requests or parts.
    #[inline]
    pub fn queue(&mut self, req: IoRequest<T>, now: Instant) -> Result<RequestId, Rejected<T>> {
        let IoRequest {
            class,
            direction,
            len,
            token,
        } = req;
        let c = match self.check_class(class) {
            Ok(c) => c,
            Err(error) => return Err(Rejected { error, token }),
        };
        if len == 0 {
            return Err(Rejected {
                error: QueueError::Empty(direction),
                token,
            });
        }
        let max = self.group.model().max_request_len(direction).max(512);
        let nparts = len.div_ceil(max);
        if nparts > u64::from(MAX_PARTS) {
            return Err(Rejected {
                error: QueueError::TooLong {
                    direction,
                    len,
                    max_len: max,
                    max_parts: MAX_PARTS,
                },
                token,
            });
        }
        let nparts = nparts as u32;
        let now_ns = self.clock_ns(now);
        if self.parts.len() + nparts as usize > u32::MAX as usize {
            return Err(Rejected {
                error: QueueError::Full,
                token,
            });
        }
        let (rid, generation) = match self.requests.insert(Req {
            token: Some(token),
            class: c as u32,
            direction,
            len,
            part_len: max,
            queued_at: now,
            parts: nparts,
            undispatched: nparts,
            in_flight: 0,
            first_bad: None,
            cancelled: false,
        }) {
            Ok(at) => at,
            Err(req) => {
                return Err(Rejected {
                    error: QueueError::Full,
                    token: req.token.expect("just stored"),
                })
            }
        };
        if nparts > 1 {
            self.split_requests += 1;
            self.classes[c].stats.split_requests += 1;
        }
        let stream = self.group.stream_of(direction);
        let mut off = 0;
        while off < len {
            let plen = (len - off).min(max);
            let raw = self.capacity(direction, plen);
            let capacity = if self.flow_ratio > FLOW_RATIO_THRESHOLD {
                ((raw as f64 * self.flow_ratio) as u64).min(self.group.model().limit().max(raw))
            } else {
                raw
            };
            // Cannot fail: room for every part was checked above.
            let Ok((pid, _)) = self.parts.insert(Part {
                request: rid,
                offset: off,
                len: plen,
                capacity,
                raw_capacity: raw,
                since_ns: now_ns,
                dispatched: false,
            }) else {
                break;
            };
            let st = &mut self.streams[stream];
            st.fq.push(st.classes[c], capacity, plen, pid);
            self.queued += 1;
            off += plen;
        }
        Ok(RequestId {
            queue: self.tag,
            index: rid,
            generation,
        })
    }

    /// The next part that may go to the disk at `now`, or `None` when nothing may (nothing
    /// queued, or the bucket or a bandwidth limit does not cover the next request yet: ask
    /// [`next_dispatch_at`](Self::next_dispatch_at) when to try again).
    ///
    /// Follows §6: each stream holds at most one reservation on its shared bucket, grabbed
    /// in batches of up to `per_tick_grab_threshold`; the fair queue picks the class. Call it
    /// until it returns `None` (or until the caller cannot take more in flight). Calls with
    /// the same `now` replenish the bucket once.
    #[inline]
    pub fn poll_dispatch(&mut self, now: Instant) -> Option<Dispatch<'_, T>> {
        let now_ns = self.clock_ns(now);
        let n = self.streams.len();
        let mut waiting = false;
        for k in 0..n {
            let si = (self.cursor + k) % n;
            match self.next_in_stream(si, now_ns) {
                Step::Part(pid) => {
                    self.cursor = (si + 1) % n;
                    return Some(self.dispatch_part(pid, now_ns));
                }
                Step::Waiting => waiting = true,
                Step::Idle => {}
            }
        }
        self.account_starvation(waiting, now);
        None
    }

    /// When [`poll_dispatch`](Self::poll_dispatch) may next return a part, after it returned
    /// `None` at about `now`: `now` itself if it could right away, the time the bucket (or a
    /// throttling bandwidth limit) will cover the waiting request, or `None` when nothing is
    /// queued. An estimate that is never late unless the bucket is shared with shards that
    /// stop replenishing; asking earlier is harmless.
    pub fn next_dispatch_at(&mut self, now: Instant) -> Option<Instant> {
        let now_ns = self.group.clock_ns(now);
        let mut best: Option<u64> = None;
        for (si, st) in self.streams.iter_mut().enumerate() {
            if st.fq.is_empty() {
                continue;
            }
            let at = match st.fq.peek(now_ns) {
                // Every class with work is over its bandwidth limit.
                None => st.fq.next_replug_ns().unwrap_or(now_ns),
                Some((_, cap)) => {
                    let bucket = self.group.bucket(si);
                    match &st.reservation {
                        Some(r) if bucket.deficiency(r.position) > 0 => {
                            // The head request goes once `cap` tokens past the used part
                            // are covered: within this reservation, or (when what is left of
                            // it is smaller) in the one re-grabbed after it.
                            let remaining = r.amount - r.used;
                            let enough = r.position.wrapping_sub(remaining).wrapping_add(cap);
                            bucket.covered_at_ns(enough)
                        }
                        _ => now_ns,
                    }
                }
            };
            best = Some(best.map_or(at, |b| b.min(at)));
        }
        best.map(|ns| self.group.instant_at(ns.max(now_ns)).max(now))
    }

    /// Reports the result of a dispatched part at `now`: bytes transferred, or a negative
    /// errno. When it was the request's last outstanding part, returns the finished request
    /// with its token and assembled result.
    ///
    /// # Errors
    ///
    /// [`QueueError::UnknownPart`] when `part` is not in flight in this queue (completed
    /// already, never dispatched, or another queue's).
    #[inline]
    pub fn complete(
        &mut self,
        part: PartId,
        result: i64,
        now: Instant,
    ) -> Result<Option<Completion<T>>, QueueError> {
        match self.parts.get(part.index, part.generation) {
            Some(p) if p.dispatched => {}
            _ => return Err(QueueError::UnknownPart(part)),
        }
        let now_ns = self.clock_ns(now);
        let p = self.parts.remove_at(part.index).expect("checked above");
        self.in_flight -= 1;
        self.flow_completed += 1;
        let rid = p.request;
        let request_generation = self.requests.generation(rid);
        let req = self.requests.at_mut(rid).expect("a part's request lives");
        let class = req.class as usize;
        self.classes[class].sums.exec_ns += now_ns.saturating_sub(p.since_ns);
        if result < 0 || (result as u64) < p.len {
            req.note_bad(p.offset, result);
        }
        req.in_flight -= 1;
        let done = req.in_flight == 0 && (req.undispatched == 0 || req.cancelled);
        let completion = if done {
            let token = req.token.take();
            let out = token.map(|token| Completion {
                request: RequestId::at(self.tag, rid, request_generation),
                class: ClassId::at(self.tag, class as u32),
                direction: req.direction,
                token,
                result: req.result(),
                queued_at: req.queued_at,
            });
            if req.undispatched == 0 {
                self.requests.remove_at(rid);
            }
            if let Some(c) = &out {
                let st = &mut self.classes[class].stats;
                st.operations += 1;
                st.bytes += c.result.max(0) as u64;
            }
            out
        } else {
            None
        };
        self.update_flow(now);
        Ok(completion)
    }

    /// A part in flight, as [`poll_dispatch`](Self::poll_dispatch) lent it (for a driver
    /// that resubmits it).
    ///
    /// # Errors
    ///
    /// [`QueueError::UnknownPart`] as for [`complete`](Self::complete).
    pub fn in_flight_part(&mut self, part: PartId) -> Result<Dispatch<'_, T>, QueueError> {
        let p = match self.parts.get(part.index, part.generation) {
            Some(p) if p.dispatched => p,
            _ => return Err(QueueError::UnknownPart(part)),
        };
        let (rid, offset, len) = (p.request, p.offset, p.len);
        let request_generation = self.requests.generation(rid);
        let req = self
            .requests
            .at_mut(rid)
            .ok_or(QueueError::UnknownPart(part))?;
        let class = req.class;
        let (direction, parts) = (req.direction, req.parts);
        let token = req.token.as_mut().ok_or(QueueError::UnknownPart(part))?;
        Ok(Dispatch {
            part,
            request: RequestId::at(self.tag, rid, request_generation),
            class: ClassId::at(self.tag, class),
            direction,
            offset,
            len,
            parts,
            token,
        })
    }

    /// Cancels a request. Parts not dispatched yet never will be (they leave the queue
    /// without being charged). Returns the token at once when no part is in flight; otherwise
    /// the request finishes with its last in-flight part, its result counting the bytes before
    /// the first part that did not go out.
    ///
    /// # Errors
    ///
    /// [`QueueError::UnknownRequest`] for a request that completed, was cancelled already, or
    /// is another queue's.
    pub fn cancel(&mut self, request: RequestId) -> Result<Option<T>, QueueError> {
        if request.queue != self.tag {
            return Err(QueueError::UnknownRequest(request));
        }
        let Some(req) = self.requests.get_mut(request.index, request.generation) else {
            return Err(QueueError::UnknownRequest(request));
        };
        if req.cancelled || req.token.is_none() {
            return Err(QueueError::UnknownRequest(request));
        }
        req.cancelled = true;
        if req.undispatched > 0 {
            self.cancelled += 1;
            let first_left = u64::from(req.parts - req.undispatched) * req.part_len;
            req.note_bad(first_left, -ECANCELED);
        }
        if req.in_flight > 0 {
            return Ok(None);
        }
        // Nothing in flight, and something undispatched (else it would have completed): the
        // entry stays until its parts are discarded from the fair queue.
        Ok(req.token.take())
    }

    /// The token of a queued or in-flight request.
    ///
    /// # Errors
    ///
    /// [`QueueError::UnknownRequest`] as for [`cancel`](Self::cancel).
    pub fn token_mut(&mut self, request: RequestId) -> Result<&mut T, QueueError> {
        if request.queue != self.tag {
            return Err(QueueError::UnknownRequest(request));
        }
        self.requests
            .get_mut(request.index, request.generation)
            .and_then(|r| r.token.as_mut())
            .ok_or(QueueError::UnknownRequest(request))
    }

    /// Parts queued and not dispatched.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Parts dispatched and not completed.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Parts queued or in flight.
    pub fn pending(&self) -> usize {
        self.queued + self.in_flight
    }

    /// Statistics of a class.
    ///
    /// # Errors
    ///
    /// [`QueueError::ForeignClass`] for another queue's class.
    pub fn class_stats(&self, class: ClassId) -> Result<ClassStats, QueueError> {
        let ci = self.check_class(class)?;
        let c = &self.classes[ci];
        let mut s = c.stats.clone();
        s.total_exec_sec = c.sums.exec_ns as f64 / 1e9;
        s.total_delay_sec = c.sums.delay_ns as f64 / 1e9;
        s.consumption = c.sums.consumption as f64 / CAPACITY_PER_SEC as f64;
        s.adjusted_consumption = c.sums.adjusted_consumption as f64 / CAPACITY_PER_SEC as f64;
        s.activations = self
            .streams
            .iter()
            .map(|st| st.fq.activations(st.classes[ci]))
            .sum();
        Ok(s)
    }

    /// Statistics of the queue.
    pub fn stats(&self) -> QueueStats {
        QueueStats {
            in_flight: self.in_flight,
            queued: self.queued,
            flow_ratio: self.flow_ratio,
            split_requests: self.split_requests,
        }
    }

    // ----- internals -----

    fn check_class(&self, class: ClassId) -> Result<usize, QueueError> {
        if class.queue != self.tag || class.index as usize >= self.classes.len() {
            return Err(QueueError::ForeignClass(class));
        }
        Ok(class.index as usize)
    }

    fn check_group(&self, group: GroupId) -> Result<usize, QueueError> {
        if group.queue != self.tag || group.index >= self.groups {
            return Err(QueueError::ForeignGroup(group));
        }
        Ok(group.index as usize)
    }

    /// The group's clock at `now`, memoised: calls with the same `now` (a batch) convert once.
    #[inline]
    fn clock_ns(&mut self, now: Instant) -> u64 {
        match self.clock_memo {
            Some((t, ns)) if t == now => ns,
            _ => {
                let ns = self.group.clock_ns(now);
                self.clock_memo = Some((now, ns));
                ns
            }
        }
    }

    /// The model's capacity of a `len`-byte request, memoised per direction.
    #[inline]
    fn capacity(&mut self, direction: Direction, len: u64) -> u64 {
        let memo = &mut self.cap_memo[direction as usize];
        if memo.0 != len {
            *memo = (len, self.group.model().capacity(direction, len).0);
        }
        memo.1
    }

    /// §6 for one stream: the next part its tokens allow, or why there is none. Discards the
    /// parts of cancelled requests on the way.
    #[inline]
    fn next_in_stream(&mut self, si: usize, now_ns: u64) -> Step {
        let Self {
            group,
            streams,
            parts,
            requests,
            queued,
            cancelled,
            ..
        } = self;
        let st = &mut streams[si];
        let bucket = group.bucket(si);
        if st.fq.is_empty() {
            return Step::Idle;
        }
        if st.replenished_ns != Some(now_ns) {
            bucket.replenish(now_ns);
            st.replenished_ns = Some(now_ns);
        }
        let limit = group.model().limit();
        let per_tick = group.model().per_tick_grab_threshold().max(1);
        loop {
            let Some((_, cap, &pid)) = st.fq.peek_item(now_ns) else {
                // Work queued, but every class holding it is over its bandwidth limit.
                return if st.fq.is_empty() {
                    Step::Idle
                } else {
                    Step::Waiting
                };
            };
            if *cancelled > 0 {
                let rid = parts.at(pid).map_or(u32::MAX, |p| p.request);
                if requests.at(rid).is_none_or(|r| r.cancelled) {
                    st.fq.discard(now_ns);
                    parts.remove_at(pid);
                    *queued -= 1;
                    if let Some(r) = requests.at_mut(rid) {
                        r.undispatched -= 1;
                        if r.undispatched == 0 {
                            *cancelled -= 1;
                            if r.in_flight == 0 && r.token.is_none() {
                                requests.remove_at(rid);
                            }
                        }
                    }
                    if st.fq.is_empty() {
                        return Step::Idle;
                    }
                    continue;
                }
            }
            let ready = st.reservation.as_ref().map_or(0, |r| r.ready(bucket));
            if cap == 0 || cap <= ready {
                if let Some(r) = st.reservation.as_mut() {
                    r.used += cap;
                    if r.used >= r.amount {
                        st.reservation = None;
                    }
                }
                let (_, pid, _) = st.fq.pop(now_ns).expect("peeked");
                return Step::Part(pid);
            }
            // Not enough ready tokens for the head request.
            match st.reservation.as_ref() {
                Some(r) => {
                    let deficit = bucket.deficiency(r.position);
                    let remaining = r.amount - r.used;
                    // Still uncovered and either big enough for the head request or already a
                    // full per-tick grab: wait for the bucket to cover it.
                    if deficit > 0 && (remaining >= cap || r.amount >= per_tick) {
                        return Step::Waiting;
                    }
                    // First in line (nothing before our reservation is uncovered): give the
                    // unused part back and reserve enough for the head request anew.
                    if deficit > r.amount {
                        return Step::Waiting;
                    }
                    bucket.refund(remaining);
                    let want = (remaining.saturating_add(per_tick))
                        .min(st.fq.queued_capacity())
                        .min(limit)
                        .max(cap);
                    let r = Reservation::grab(bucket, want);
                    let uncovered = bucket.deficiency(r.position) >= r.amount;
                    st.reservation = Some(r);
                    if uncovered {
                        return Step::Waiting;
                    }
                }
                None => {
                    let want = per_tick.min(st.fq.queued_capacity()).min(limit).max(cap);
                    let r = Reservation::grab(bucket, want);
                    let uncovered = bucket.deficiency(r.position) >= r.amount;
                    st.reservation = Some(r);
                    if uncovered {
                        return Step::Waiting;
                    }
                }
            }
        }
    }

    /// Marks part `pid` dispatched at `now_ns` and lends it out.
    #[inline]
    fn dispatch_part(&mut self, pid: u32, now_ns: u64) -> Dispatch<'_, T> {
        let generation = self.parts.generation(pid);
        let part = self.parts.at_mut(pid).expect("a queued part lives");
        let rid = part.request;
        let request_generation = self.requests.generation(rid);
        let req = self.requests.at_mut(rid).expect("its request lives");
        let class = req.class as usize;
        let sums = &mut self.classes[class].sums;
        sums.delay_ns += now_ns.saturating_sub(part.since_ns);
        sums.adjusted_consumption += part.capacity;
        sums.consumption += part.raw_capacity;
        part.since_ns = now_ns;
        part.dispatched = true;
        req.undispatched -= 1;
        req.in_flight += 1;
        self.queued -= 1;
        self.in_flight += 1;
        self.flow_dispatched += 1;
        Dispatch {
            part: PartId {
                index: pid,
                generation,
            },
            request: RequestId::at(self.tag, rid, request_generation),
            class: ClassId::at(self.tag, class as u32),
            direction: req.direction,
            offset: part.offset,
            len: part.len,
            parts: req.parts,
            token: req
                .token
                .as_mut()
                .expect("uncancelled requests keep their token"),
        }
    }

    /// §7: every period, `flow_ratio = 0.95 × flow_ratio + 0.05 × dispatched/completed`.
    #[inline]
    fn update_flow(&mut self, now: Instant) {
        let next = *self.flow_next.get_or_insert(now + self.flow_period);
        if now < next {
            return;
        }
        self.flow_next = Some(now + self.flow_period);
        // A window without completions (a stall) carries its dispatches into the next one, so
        // the ratio sees them when the disk answers again.
        if self.flow_completed > 0 {
            let ratio = self.flow_dispatched as f64 / self.flow_completed as f64;
            self.flow_ratio = 0.95 * self.flow_ratio + 0.05 * ratio;
            self.flow_dispatched = 0;
            self.flow_completed = 0;
        }
    }

    /// Per class: time with queued work and no dispatch for lack of tokens. No per-class scan
    /// while no class starves or starved.
    fn account_starvation(&mut self, waiting: bool, now: Instant) {
        if !waiting && self.starving == 0 {
            return;
        }
        for (ci, c) in self.classes.iter_mut().enumerate() {
            let has_work = self
                .streams
                .iter()
                .any(|s| s.fq.class_len(s.classes[ci]) > 0);
            match (has_work && waiting, c.starving_since) {
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
}
