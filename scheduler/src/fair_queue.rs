//! Share-based ordering of queued requests between classes, one queue per shard.
//!
//! This follows Seastar's `fair_queue` as restated in `shared/reference/scheduler.md` §5; the
//! dispatcher of §6 (`io_queue`) asks it which request goes next ([`FairQueue::peek`]), checks
//! that the disk's token bucket covers it, and takes it ([`FairQueue::pop`]).
//!
//! # Virtual time
//!
//! Each class has `shares` (≥ 1), a FIFO of requests and a virtual time `accumulated` (`u64`,
//! capacity units divided by shares). Dispatching a request of capacity `c` charges its class
//! `max(c / shares, 1)`; the queue always serves the class with the least `accumulated`. A
//! backlogged class therefore receives disk time in proportion to its shares, and a request
//! that costs twice as much counts twice. The `max(.., 1)` keeps zero-capacity requests
//! (an unconfigured disk, §3) from being free: with all costs 0 the classes are served
//! round-robin by count, whatever their shares.
//!
//! Classes with queued work sit in a min-heap keyed *only* on `accumulated`
//! (`BinaryHeap<Reverse<HeapEntry>>`, where `HeapEntry`'s `Ord` ignores everything but the
//! key). Ties are left to the heap, as the reference leaves them to `std::priority_queue`: both
//! pop by moving the hole to the bottom (taking the right child unless it is strictly
//! greater-keyed than the left) and sifting the last element up, so the same sequence of
//! pushes and pops yields the same order among equal keys. The queue performs the reference's
//! sequence: a dispatched class is popped, charged, and pushed back if it still has work.
//!
//! # Idle classes and forgiveness
//!
//! Each heap remembers `last_accumulated`, the key of the most recently dispatched entry
//! (raised to it *before* the charge). A class that wakes from idle (its FIFO was empty, or it
//! was throttled, see below) re-enters at
//! `max(last_accumulated − forgiving_factor / shares, own accumulated)` (saturating at 0): it
//! keeps whatever lead it had, but idleness earns it at most `forgiving_factor` capacity units
//! of credit (default 2^24 × 5 = 5 ms of disk time, the reference's tau), so a newcomer cannot
//! monopolise the disk, and a class that ran alone before cannot be starved for long.
//!
//! # Groups
//!
//! Classes may be grouped into a tree ([`FairQueue::add_group`]). A group is itself an entry in
//! its parent's heap, with its own shares, `accumulated`, heap of children and
//! `last_accumulated`; classes and groups without a parent hang off an implicit root group.
//! Dispatch descends from the root, taking the top entry at each level, until it reaches a
//! class. Every level on that path is then charged `max(c / shares, 1)` with the request's raw
//! capacity `c` and its own shares; groups wake from idle with the same forgiveness rule as
//! classes. Two backlogged groups with shares 1:3 thus split the disk 1:3, and each splits its
//! part among its classes by their shares.
//!
//! # Bandwidth limits
//!
//! A class or group may carry a [`SharedTokenBucket`] counting 512-byte blocks per second
//! ([`bandwidth_bucket`] builds one with the reference's limit of 10 MiB and threshold of
//! 128 KiB). Dispatching a request grabs `bytes / 512` blocks (partial blocks are free) from
//! the bucket of every level on its path. A level whose grab leaves a deficiency is *unplugged*:
//! the request that overdrew still goes out, but the level leaves its parent's heap. Each
//! [`peek`](FairQueue::peek) replenishes the buckets of unplugged levels and plugs back those
//! whose overdraw is covered; a plugged level with work re-enters its parent's heap by the
//! wake-from-idle rule. Several shards may share one bucket through the `Arc`, so a limit can
//! hold across an I/O group.
//!
//! # Numbers
//!
//! All virtual times are `u64`. A single charge is capped at 2^62, and when a charge would
//! lift an entry's `accumulated` to 2^63 − 1 or beyond, that heap is renormalised as in the
//! reference: every queued sibling drops by the dispatched entry's value, every idle sibling
//! (the dispatched one included) restarts at 0, and `last_accumulated` restarts at 0. Order
//! within the heap is unchanged, so nothing observable happens except that the numbers stay
//! far from overflow. Forgiveness subtracts with saturation.
//!
//! # Cost
//!
//! No locks. Per-request work does not allocate once the queue is warm: heaps reserve room for
//! all their children when the tree is built, FIFOs (`VecDeque`) and the list of throttled
//! levels reuse their buffers. `peek` and `pop` are O(depth × log(children)), plus a scan of
//! the throttled levels.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use crate::token_bucket::SharedTokenBucket;

/// Default forgiving factor: 5 ms of disk time in capacity units (2^24 units per ms), §5's tau.
pub const DEFAULT_FORGIVING_FACTOR: u64 = (1 << 24) * 5;

/// Bandwidth buckets count blocks of `1 << BANDWIDTH_BLOCK_SHIFT` = 512 bytes.
pub const BANDWIDTH_BLOCK_SHIFT: u32 = 9;

/// Depth of a bandwidth bucket (bytes): 10 MiB, as in the reference.
pub const BANDWIDTH_LIMIT_BYTES: u64 = 10 << 20;

/// Replenish threshold of a bandwidth bucket (bytes): 128 KiB, as in the reference.
pub const BANDWIDTH_THRESHOLD_BYTES: u64 = 128 << 10;

/// A charge that lifts `accumulated` to this or beyond renormalises the heap (the reference's
/// `numeric_limits<signed_capacity_t>::max()`).
const RENORMALIZE_AT: u64 = i64::MAX as u64;

/// Largest single charge, so that `accumulated + charge` never overflows after renormalising.
const MAX_CHARGE: u64 = 1 << 62;

/// Index of the implicit root group in `FairQueue::groups`.
const ROOT: usize = 0;

/// A bandwidth bucket for [`FairQueue::set_class_bandwidth`] or
/// [`FairQueue::set_group_bandwidth`]: `bytes_per_sec` (bytes/s, at least one block per second)
/// in 512-byte blocks, limit [`BANDWIDTH_LIMIT_BYTES`], threshold
/// [`BANDWIDTH_THRESHOLD_BYTES`]. `now_ns` is the clock later passed to `peek`/`pop`.
pub fn bandwidth_bucket(bytes_per_sec: u64, now_ns: u64) -> SharedTokenBucket {
    SharedTokenBucket::new(
        (bytes_per_sec >> BANDWIDTH_BLOCK_SHIFT).max(1),
        BANDWIDTH_LIMIT_BYTES >> BANDWIDTH_BLOCK_SHIFT,
        BANDWIDTH_THRESHOLD_BYTES >> BANDWIDTH_BLOCK_SHIFT,
        now_ns,
    )
}

/// A priority class of a [`FairQueue`], as returned by [`FairQueue::add_class`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClassId(pub u32);

/// A group of classes (and groups) of a [`FairQueue`], as returned by [`FairQueue::add_group`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupId(pub u32);

/// Tuning of a [`FairQueue`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FairQueueConfig {
    /// Most credit (capacity units, before dividing by shares) a class or group can bring back
    /// from idleness. Default [`DEFAULT_FORGIVING_FACTOR`] (5 ms of disk time).
    pub forgiving_factor: u64,
}

impl Default for FairQueueConfig {
    fn default() -> Self {
        FairQueueConfig {
            forgiving_factor: DEFAULT_FORGIVING_FACTOR,
        }
    }
}

/// A class or a group: what a heap entry points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeRef {
    /// Index into `FairQueue::classes`.
    Class(usize),
    /// Index into `FairQueue::groups` (never `ROOT`).
    Group(usize),
}

/// One entry of a heap: a snapshot of the node's `accumulated` when it was pushed (it does not
/// change while the node is in the heap), and the node.
#[derive(Clone, Copy, Debug)]
struct HeapEntry {
    accumulated: u64,
    node: NodeRef,
}

// Ordered on the key alone: equal keys compare equal and the heap breaks the tie (module docs).
impl PartialEq for HeapEntry {
    fn eq(&self, other: &Self) -> bool {
        self.accumulated == other.accumulated
    }
}
impl Eq for HeapEntry {}
impl PartialOrd for HeapEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapEntry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.accumulated.cmp(&other.accumulated)
    }
}

/// Scheduling state common to classes and groups.
#[derive(Debug)]
struct Sched {
    /// Weight against siblings, ≥ 1.
    shares: u32,
    /// Virtual time: capacity units charged, each divided by the shares at the time.
    accumulated: u64,
    /// Index of the parent group in `FairQueue::groups` (`ROOT` for top-level entries).
    parent: usize,
    /// In its parent's heap right now.
    queued: bool,
    /// Not throttled by its bandwidth bucket.
    plugged: bool,
    /// Optional bandwidth limit (512-byte blocks per second).
    bandwidth: Option<Arc<SharedTokenBucket>>,
    /// While unplugged: the bucket position whose coverage plugs it back.
    pending_position: u64,
}

impl Sched {
    fn new(shares: u32, parent: usize) -> Self {
        Sched {
            shares: shares.max(1),
            accumulated: 0,
            parent,
            queued: false,
            plugged: true,
            bandwidth: None,
            pending_position: 0,
        }
    }

    /// `max(capacity / shares, 1)`, capped at `MAX_CHARGE`.
    fn charge_for(&self, capacity: u64) -> u64 {
        (capacity / u64::from(self.shares)).clamp(1, MAX_CHARGE)
    }
}

/// A queued request.
#[derive(Debug)]
struct Request<T> {
    capacity: u64,
    bytes: u64,
    item: T,
}

#[derive(Debug)]
struct ClassNode<T> {
    sched: Sched,
    queue: VecDeque<Request<T>>,
    activations: u64,
}

#[derive(Debug)]
struct GroupNode {
    sched: Sched,
    /// Children (classes and groups) that are plugged and have work.
    heap: BinaryHeap<Reverse<HeapEntry>>,
    /// Key of the most recently dispatched child (before its charge).
    last_accumulated: u64,
    /// Every child, queued or not (for renormalisation and heap sizing).
    children: Vec<NodeRef>,
}

impl GroupNode {
    fn new(shares: u32, parent: usize) -> Self {
        GroupNode {
            sched: Sched::new(shares, parent),
            heap: BinaryHeap::new(),
            last_accumulated: 0,
            children: Vec::new(),
        }
    }
}

/// The per-shard fair queue of `scheduler.md` §5 (see the module docs).
///
/// `T` is the caller's request handle; the queue stores it and hands it back from
/// [`pop`](Self::pop). Single-threaded: one per shard (bandwidth buckets may be shared).
///
/// ```
/// use scheduler::fair_queue::{FairQueue, FairQueueConfig};
///
/// let mut q = FairQueue::new(FairQueueConfig::default());
/// let a = q.add_class(100, None);
/// let b = q.add_class(200, None);
/// for i in 0..30 {
///     q.push(a, 1000, 4096, ("a", i));
///     q.push(b, 1000, 4096, ("b", i));
/// }
/// let mut served_b = 0;
/// for _ in 0..30 {
///     let (class, _item, _capacity) = q.pop(0).unwrap();
///     served_b += usize::from(class == b);
/// }
/// assert_eq!(served_b, 20); // b has twice the shares
/// ```
#[derive(Debug)]
pub struct FairQueue<T> {
    config: FairQueueConfig,
    classes: Vec<ClassNode<T>>,
    /// `groups[ROOT]` is the implicit root; `GroupId(n)` is `groups[n + 1]`.
    groups: Vec<GroupNode>,
    /// Unplugged classes and groups, in the order they were unplugged.
    throttled: Vec<NodeRef>,
    len: usize,
    /// Sum of queued capacities; u128 so that it cannot overflow.
    queued_capacity: u128,
    /// Clock reading of the last look at throttled levels (see `replug`).
    last_replug_ns: Option<u64>,
}

impl<T> FairQueue<T> {
    /// An empty queue with no classes.
    pub fn new(cfg: FairQueueConfig) -> Self {
        FairQueue {
            config: cfg,
            classes: Vec::new(),
            groups: vec![GroupNode::new(1, ROOT)],
            throttled: Vec::new(),
            len: 0,
            queued_capacity: 0,
            last_replug_ns: None,
        }
    }

    /// The configuration the queue was built with.
    pub fn config(&self) -> FairQueueConfig {
        self.config
    }

    /// Adds a group with `shares` (0 is taken as 1) under `parent` (`None`: top level).
    ///
    /// # Panics
    /// If `parent` was not returned by this queue's `add_group`.
    pub fn add_group(&mut self, shares: u32, parent: Option<GroupId>) -> GroupId {
        let parent = self.parent_index(parent);
        let index = self.groups.len();
        self.groups.push(GroupNode::new(shares, parent));
        self.adopt(parent, NodeRef::Group(index));
        GroupId((index - 1) as u32)
    }

    /// Adds a class with `shares` (0 is taken as 1) under `parent` (`None`: top level).
    ///
    /// # Panics
    /// If `parent` was not returned by this queue's `add_group`.
    pub fn add_class(&mut self, shares: u32, parent: Option<GroupId>) -> ClassId {
        let parent = self.parent_index(parent);
        let index = self.classes.len();
        self.classes.push(ClassNode {
            sched: Sched::new(shares, parent),
            queue: VecDeque::new(),
            activations: 0,
        });
        self.adopt(parent, NodeRef::Class(index));
        ClassId(index as u32)
    }

    /// Changes a class's shares (0 is taken as 1). Its `accumulated` is kept; later charges use
    /// the new shares.
    ///
    /// # Panics
    /// If `class` was not returned by this queue's `add_class`.
    pub fn set_shares(&mut self, class: ClassId, shares: u32) {
        self.classes[class.0 as usize].sched.shares = shares.max(1);
    }

    /// Changes a group's shares (0 is taken as 1), like [`set_shares`](Self::set_shares).
    ///
    /// # Panics
    /// If `group` was not returned by this queue's `add_group`.
    pub fn set_group_shares(&mut self, group: GroupId, shares: u32) {
        let g = Self::group_index(group);
        self.groups[g].sched.shares = shares.max(1);
    }

    /// Sets or clears a class's bandwidth limit, a bucket of 512-byte blocks per second (see
    /// [`bandwidth_bucket`]); the `Arc` lets several shards share one limit. A class throttled
    /// by its previous bucket is plugged back at once.
    ///
    /// # Panics
    /// If `class` was not returned by this queue's `add_class`.
    pub fn set_class_bandwidth(&mut self, class: ClassId, limit: Option<Arc<SharedTokenBucket>>) {
        let node = NodeRef::Class(class.0 as usize);
        self.sched_mut(node).bandwidth = limit;
        self.release(node);
    }

    /// Sets or clears a group's bandwidth limit, like
    /// [`set_class_bandwidth`](Self::set_class_bandwidth); the limit holds for the group's
    /// classes together.
    ///
    /// # Panics
    /// If `group` was not returned by this queue's `add_group`.
    pub fn set_group_bandwidth(&mut self, group: GroupId, limit: Option<Arc<SharedTokenBucket>>) {
        let node = NodeRef::Group(Self::group_index(group));
        self.sched_mut(node).bandwidth = limit;
        self.release(node);
    }

    /// Queues a request of `capacity` units and `bytes` bytes (for bandwidth limits) at the back
    /// of `class`'s FIFO. A class going from no queued request to one counts an activation and,
    /// unless throttled, wakes into its parent's heap by the forgiveness rule.
    ///
    /// # Panics
    /// If `class` was not returned by this queue's `add_class`.
    pub fn push(&mut self, class: ClassId, capacity: u64, bytes: u64, item: T) {
        let c = class.0 as usize;
        let node = &mut self.classes[c];
        if node.queue.is_empty() {
            node.activations += 1;
        }
        node.queue.push_back(Request {
            capacity,
            bytes,
            item,
        });
        self.len += 1;
        self.queued_capacity += u128::from(capacity);
        self.wake(NodeRef::Class(c));
    }

    /// The request that would dispatch next, as (class, capacity), or `None` when nothing is
    /// queued or every class with work is throttled.
    ///
    /// First replenishes the buckets of throttled classes and groups with `now_ns` (the clock
    /// of the buckets) and plugs back those whose overdraw is covered. A later
    /// [`pop`](Self::pop) with the same `now_ns` and no [`push`](Self::push) in between returns
    /// this very request.
    pub fn peek(&mut self, now_ns: u64) -> Option<(ClassId, u64)> {
        self.replug(now_ns);
        let c = self.top_class()?;
        let front = self.classes[c].queue.front()?;
        Some((ClassId(c as u32), front.capacity))
    }

    /// As [`peek`](Self::peek), also lending the request's item: (class, capacity, item).
    pub fn peek_item(&mut self, now_ns: u64) -> Option<(ClassId, u64, &T)> {
        self.replug(now_ns);
        let c = self.top_class()?;
        let front = self.classes[c].queue.front()?;
        Some((ClassId(c as u32), front.capacity, &front.item))
    }

    /// Removes the request [`peek`](Self::peek)`(now_ns)` names without dispatching it: no
    /// level is charged or throttled, as if it had never been queued (for requests the caller
    /// cancelled). Returns it as (class, item, capacity).
    pub fn discard(&mut self, now_ns: u64) -> Option<(ClassId, T, u64)> {
        self.take(now_ns, false)
    }

    /// Dispatches the request [`peek`](Self::peek)`(now_ns)` names and returns it as
    /// (class, item, capacity).
    ///
    /// On the path from the class up to the root, every level is popped from its parent's
    /// heap (raising the parent's `last_accumulated` to its key), charged
    /// `max(capacity / shares, 1)`, and has `bytes / 512` blocks grabbed from its bandwidth
    /// bucket if it has one (a grab that leaves a deficiency unplugs that level). Levels that
    /// are still plugged and have work go back into their parent's heap.
    pub fn pop(&mut self, now_ns: u64) -> Option<(ClassId, T, u64)> {
        self.take(now_ns, true)
    }

    /// `pop` (`charge`) or `discard` (not).
    fn take(&mut self, now_ns: u64, charge: bool) -> Option<(ClassId, T, u64)> {
        self.replug(now_ns);
        let c = self.top_class()?;
        let class = NodeRef::Class(c);

        // Take the path out of the heaps, bottom up (each level is the top of its parent's
        // heap, so the order does not matter).
        let mut node = class;
        loop {
            let (key, parent) = {
                let s = self.sched(node);
                (s.accumulated, s.parent)
            };
            let g = &mut self.groups[parent];
            let popped = g.heap.pop();
            debug_assert_eq!(popped.map(|Reverse(e)| e.node), Some(node));
            g.last_accumulated = g.last_accumulated.max(key);
            self.sched_mut(node).queued = false;
            if parent == ROOT {
                break;
            }
            node = NodeRef::Group(parent);
        }

        let Some(request) = self.classes[c].queue.pop_front() else {
            // Unreachable: a class in a heap has work. Put the path back untouched.
            self.requeue_path(class);
            return None;
        };
        self.len -= 1;
        self.queued_capacity -= u128::from(request.capacity);
        let blocks = request.bytes >> BANDWIDTH_BLOCK_SHIFT;

        // Charge and throttle every level, bottom up (a discarded request charges nothing).
        let mut node = class;
        if charge {
            loop {
                self.charge(node, request.capacity);
                self.consume_bandwidth(node, blocks, now_ns);
                let parent = self.sched(node).parent;
                if parent == ROOT {
                    break;
                }
                node = NodeRef::Group(parent);
            }
        }

        self.requeue_path(class);
        Some((ClassId(c as u32), request.item, request.capacity))
    }

    /// The earliest clock reading (ns, the clock of `peek`) at which a throttled class or
    /// group's bandwidth bucket will cover its overdraw, or `None` when nothing is throttled.
    /// An estimate from each bucket's rate and threshold (see
    /// [`SharedTokenBucket::covered_at_ns`]); asking earlier is harmless.
    pub fn next_replug_ns(&self) -> Option<u64> {
        self.throttled
            .iter()
            .filter_map(|&node| {
                let s = self.sched(node);
                s.bandwidth
                    .as_ref()
                    .map(|b| b.covered_at_ns(s.pending_position))
            })
            .min()
    }

    /// Sum of the capacities of all queued requests (throttled classes included), saturating
    /// at `u64::MAX`; §6 bounds its grab size by it.
    pub fn queued_capacity(&self) -> u64 {
        u64::try_from(self.queued_capacity).unwrap_or(u64::MAX)
    }

    /// Number of queued requests.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No request is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of requests queued in `class`.
    ///
    /// # Panics
    /// If `class` was not returned by this queue's `add_class`.
    pub fn class_len(&self, class: ClassId) -> usize {
        self.classes[class.0 as usize].queue.len()
    }

    /// How many times `class` went from no queued request to one (a push onto its empty
    /// FIFO). Being plugged back after throttling is not an activation.
    ///
    /// # Panics
    /// If `class` was not returned by this queue's `add_class`.
    pub fn activations(&self, class: ClassId) -> u64 {
        self.classes[class.0 as usize].activations
    }

    /// The class's current shares.
    ///
    /// # Panics
    /// If `class` was not returned by this queue's `add_class`.
    pub fn shares(&self, class: ClassId) -> u32 {
        self.classes[class.0 as usize].sched.shares
    }

    /// The class's virtual time (capacity units divided by shares); for diagnostics and tests.
    ///
    /// # Panics
    /// If `class` was not returned by this queue's `add_class`.
    pub fn accumulated(&self, class: ClassId) -> u64 {
        self.classes[class.0 as usize].sched.accumulated
    }

    /// The class is unplugged by its own bandwidth limit (not counting its groups').
    ///
    /// # Panics
    /// If `class` was not returned by this queue's `add_class`.
    pub fn is_throttled(&self, class: ClassId) -> bool {
        !self.classes[class.0 as usize].sched.plugged
    }

    // ----- internals -----

    fn group_index(group: GroupId) -> usize {
        group.0 as usize + 1
    }

    fn parent_index(&self, parent: Option<GroupId>) -> usize {
        match parent {
            None => ROOT,
            Some(g) => {
                let i = Self::group_index(g);
                assert!(i < self.groups.len(), "unknown fair-queue group {g:?}");
                i
            }
        }
    }

    /// Registers `child` with `parent` and reserves room so that per-request pushes never
    /// allocate: a heap holds each child at most once, the throttled list each node at most once.
    fn adopt(&mut self, parent: usize, child: NodeRef) {
        let g = &mut self.groups[parent];
        g.children.push(child);
        let want = g.children.len().saturating_sub(g.heap.len());
        g.heap.reserve(want);
        let nodes = self.classes.len() + self.groups.len();
        self.throttled
            .reserve(nodes.saturating_sub(self.throttled.len()));
    }

    fn sched(&self, node: NodeRef) -> &Sched {
        match node {
            NodeRef::Class(c) => &self.classes[c].sched,
            NodeRef::Group(g) => &self.groups[g].sched,
        }
    }

    fn sched_mut(&mut self, node: NodeRef) -> &mut Sched {
        match node {
            NodeRef::Class(c) => &mut self.classes[c].sched,
            NodeRef::Group(g) => &mut self.groups[g].sched,
        }
    }

    fn has_work(&self, node: NodeRef) -> bool {
        match node {
            NodeRef::Class(c) => !self.classes[c].queue.is_empty(),
            NodeRef::Group(g) => !self.groups[g].heap.is_empty(),
        }
    }

    /// The class at the top of the tree: descend from the root taking each heap's top. Does not
    /// change anything.
    fn top_class(&self) -> Option<usize> {
        let mut g = ROOT;
        loop {
            match self.groups[g].heap.peek()?.0.node {
                NodeRef::Class(c) => return Some(c),
                NodeRef::Group(child) => g = child,
            }
        }
    }

    /// Puts `node` into its parent's heap if it is idle there but plugged with work, starting
    /// at `max(last_accumulated − forgiving_factor / shares, accumulated)`; then does the same
    /// for the parent, which may have just got its first queued child, and so on up.
    fn wake(&mut self, mut node: NodeRef) {
        loop {
            let s = self.sched(node);
            if s.queued || !s.plugged || !self.has_work(node) {
                return;
            }
            let parent = s.parent;
            let deviation = self.config.forgiving_factor / u64::from(s.shares);
            let floor = self.groups[parent]
                .last_accumulated
                .saturating_sub(deviation);
            let key = s.accumulated.max(floor);
            let s = self.sched_mut(node);
            s.accumulated = key;
            s.queued = true;
            self.groups[parent].heap.push(Reverse(HeapEntry {
                accumulated: key,
                node,
            }));
            if parent == ROOT {
                return;
            }
            node = NodeRef::Group(parent);
        }
    }

    /// After a dispatch: from the class up, each level that is plugged and has work goes back
    /// into its parent's heap with its charged `accumulated` (no forgiveness: it never left).
    fn requeue_path(&mut self, class: NodeRef) {
        let mut node = class;
        loop {
            let s = self.sched(node);
            let parent = s.parent;
            if !s.queued && s.plugged && self.has_work(node) {
                let key = s.accumulated;
                self.sched_mut(node).queued = true;
                self.groups[parent].heap.push(Reverse(HeapEntry {
                    accumulated: key,
                    node,
                }));
            }
            if parent == ROOT {
                return;
            }
            node = NodeRef::Group(parent);
        }
    }

    /// Charges `node` for a request of `capacity`, renormalising its parent's heap first when
    /// the charge would approach 2^63.
    fn charge(&mut self, node: NodeRef, capacity: u64) {
        let s = self.sched(node);
        let (cost, accumulated, parent) = (s.charge_for(capacity), s.accumulated, s.parent);
        if accumulated >= RENORMALIZE_AT - cost {
            self.renormalize(parent, node);
        }
        let s = self.sched_mut(node);
        s.accumulated = s.accumulated.saturating_add(cost);
    }

    /// Shifts the virtual times of `group`'s children down by `dispatched`'s (see the module
    /// docs, "Numbers"). `dispatched` is not in the heap at this point.
    fn renormalize(&mut self, group: usize, dispatched: NodeRef) {
        let base = self.sched(dispatched).accumulated;
        let children = std::mem::take(&mut self.groups[group].children);
        for &child in &children {
            let s = self.sched_mut(child);
            s.accumulated = if s.queued {
                s.accumulated.saturating_sub(base)
            } else {
                0
            };
        }
        self.groups[group].children = children;
        self.groups[group].last_accumulated = 0;
        // Refresh the heap's key snapshots. The shift keeps their order, so rebuilding the
        // heap from its own buffer moves nothing and allocates nothing.
        let mut entries = std::mem::take(&mut self.groups[group].heap).into_vec();
        for Reverse(e) in entries.iter_mut() {
            e.accumulated = self.sched(e.node).accumulated;
        }
        self.groups[group].heap = BinaryHeap::from(entries);
    }

    /// Grabs `blocks` from `node`'s bandwidth bucket, if any; unplugs `node` on overdraw.
    fn consume_bandwidth(&mut self, node: NodeRef, blocks: u64, now_ns: u64) {
        let s = self.sched_mut(node);
        let Some(bucket) = &s.bandwidth else {
            return;
        };
        bucket.replenish(now_ns);
        let position = bucket.grab(blocks);
        if bucket.deficiency(position) > 0 {
            s.plugged = false;
            s.pending_position = position;
            self.throttled.push(node);
        }
    }

    /// Plugs back every throttled level whose bucket now covers its overdraw, in the order
    /// they were unplugged. Skipped when called again with the same clock reading, so that a
    /// `peek` and the `pop` after it see the same state even if another shard replenishes a
    /// shared bucket in between.
    fn replug(&mut self, now_ns: u64) {
        if self.last_replug_ns == Some(now_ns) || self.throttled.is_empty() {
            self.last_replug_ns = Some(now_ns);
            return;
        }
        self.last_replug_ns = Some(now_ns);
        let mut kept = 0;
        for i in 0..self.throttled.len() {
            let node = self.throttled[i];
            let s = self.sched(node);
            let covered = match &s.bandwidth {
                Some(bucket) => {
                    bucket.replenish(now_ns);
                    bucket.deficiency(s.pending_position) == 0
                }
                None => true,
            };
            if covered {
                self.sched_mut(node).plugged = true;
                self.wake(node);
            } else {
                self.throttled[kept] = node;
                kept += 1;
            }
        }
        self.throttled.truncate(kept);
    }

    /// Plugs `node` back at once if it is throttled (its bucket was replaced or removed).
    fn release(&mut self, node: NodeRef) {
        if let Some(i) = self.throttled.iter().position(|&n| n == node) {
            self.throttled.remove(i);
            self.sched_mut(node).plugged = true;
            self.wake(node);
        }
    }
}
