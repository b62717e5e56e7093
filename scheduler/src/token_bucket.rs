//! A lock-free token bucket that several shards reserve from at once.
//!
//! This follows Seastar's `shared_token_bucket` as restated in
//! `shared/reference/scheduler.md` §4. The disk's capacity bucket (one per I/O group, rate
//! 2^24 × 1000 capacity units per second) and the optional per-class bandwidth buckets of
//! [`crate::fair_queue`] (512-byte blocks per second) are both this type.
//!
//! # Model
//!
//! The bucket is two counters that only ever grow (modulo 2^64):
//!
//! - `tail`: every token ever reserved. [`SharedTokenBucket::grab`] adds to it and returns the
//!   new value, the *position* the reservation waits for.
//! - `head`: every token ever made available. [`SharedTokenBucket::replenish`] adds what the
//!   rate produced since the last replenish; [`SharedTokenBucket::refund`] gives tokens back.
//!
//! A reservation at position `p` is covered once `head` has reached `p`:
//! [`SharedTokenBucket::deficiency`] is `max(p − head, 0)`. Reservations are served strictly
//! in the order they were made, whichever shard made them, so the bucket is fair between
//! shards without any lock. Both counters wrap: differences are read as `i64` and clamped at
//! zero, which is exact while every live difference stays below 2^63. The rate clamp
//! ([`MAX_RATE_PER_SEC`]) and the limit clamp ([`MAX_LIMIT`]) keep it so.
//!
//! # Where this differs from the reference
//!
//! The reference computes `extra = round(rate × elapsed)` and moves its replenish timestamp to
//! `now`, so the fraction of a token lost or won by the rounding is gone for good; with a small
//! threshold and frequent callers that error adds up (one token per call at most, so a bucket
//! replenished every half token's worth of time could run at up to twice its rate). Here
//! `extra = floor(rate × elapsed)` and the timestamp moves forward only by the time those
//! `extra` tokens took to accrue (rounded up to the next nanosecond), so the remainder is
//! carried over to the next replenish. Over any span the bucket delivers `rate × span` tokens
//! to within one token and one nanosecond per replenish, never more. Beyond one hour of idleness
//! the clamp of §4 applies as in the reference: one hour's worth is produced and the rest of
//! the time is dropped.
//!
//! Timestamps, like the counters, are compared by wrapping difference, so the "one day in the
//! past" start works with a clock that starts at 0 (the reference saturates, which would leave
//! such a bucket nearly empty at first). Everything else (threshold, limit, CAS on the
//! timestamp) is as in §4.
//!
//! # Memory orderings
//!
//! The counters carry no data for anyone: no thread publishes memory through them, a shard
//! only learns "my reservation is covered" and then submits I/O of its own. All operations are
//! therefore `Relaxed`; each one explains beside it why that is enough. What `Relaxed` still
//! guarantees, and what the bucket relies on, is that every read-modify-write on one atomic
//! takes part in that atomic's single modification order: no two `grab`s get the same
//! position, no `refund` or `replenish` is lost, and exactly one of two racing replenishers
//! wins the timestamp.

use std::sync::atomic::{AtomicU64, Ordering};

/// Nanoseconds in one second.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Longest idle time (ns) a single replenish turns into tokens: one hour, as in §4.
pub const MAX_REPLENISH_DELTA_NS: u64 = 3_600 * NANOS_PER_SEC;

/// Largest accepted rate (tokens/s): one hour's worth of tokens stays within `u64::MAX / 2`.
///
/// This is §4's `(u64::MAX / 2) / (1 hour in ms)` for a per-millisecond rate, expressed per
/// second.
pub const MAX_RATE_PER_SEC: u64 = (u64::MAX / 2) / 3_600;

/// Largest accepted limit (tokens): 2^62, so that `tail + limit − head` never reaches 2^63.
pub const MAX_LIMIT: u64 = 1 << 62;

/// How far (ns) before its creation the replenish timestamp starts, so that the first
/// replenish fills the bucket: one day, as in the reference. Subtracted with wrapping, like
/// every timestamp difference here, so a clock whose origin is "now" (readings near 0) works.
const START_BACKDATE_NS: u64 = 24 * 3_600 * NANOS_PER_SEC;

/// `max(a − b, 0)` with `a − b` read as a signed (wrapping) difference.
#[inline]
fn wrapping_difference(a: u64, b: u64) -> u64 {
    let d = a.wrapping_sub(b) as i64;
    if d > 0 {
        d as u64
    } else {
        0
    }
}

/// A token bucket shared by several threads without locks (`scheduler.md` §4).
///
/// Tokens are whatever unit the owner chooses: capacity units (2^-24 ms of disk time) for the
/// disk's bucket, 512-byte blocks for a bandwidth limit. All methods take `&self`; share the
/// bucket with an `Arc`.
///
/// ```
/// use scheduler::token_bucket::SharedTokenBucket;
///
/// let day_ns = 24 * 3600 * 1_000_000_000u64;
/// // 1000 tokens/s, at most 100 in the bucket, replenish in steps of at least 10.
/// let b = SharedTokenBucket::new(1000, 100, 10, day_ns);
/// b.replenish(day_ns); // the first replenish fills the bucket
/// assert_eq!(b.available(), 100);
/// let pos = b.grab(150); // reserve more than there is
/// assert_eq!(b.deficiency(pos), 50);
/// b.replenish(day_ns + 50_000_000); // 50 ms later: 50 more tokens
/// assert_eq!(b.deficiency(pos), 0);
/// ```
#[derive(Debug)]
pub struct SharedTokenBucket {
    /// All tokens ever made available (wrapping).
    head: AtomicU64,
    /// All tokens ever reserved (wrapping).
    tail: AtomicU64,
    /// Caller's clock (ns) up to which the rate has been turned into tokens.
    last_replenish_ns: AtomicU64,
    /// Tokens per second, in `1..=MAX_RATE_PER_SEC`.
    rate_per_sec: u64,
    /// Most tokens the bucket holds unreserved, in `0..=MAX_LIMIT`.
    limit: u64,
    /// Fewest tokens a replenish adds; smaller amounts wait for a later call. In `1..=max(limit, 1)`.
    threshold: u64,
}

impl SharedTokenBucket {
    /// A bucket producing `rate_per_sec` tokens per second, holding at most `limit`
    /// unreserved tokens, replenished in steps of at least `threshold` tokens.
    ///
    /// `now_ns` is the caller's monotonic clock in nanoseconds, the same clock later passed to
    /// [`replenish`](Self::replenish); any origin works, zero included. Both counters start at
    /// 0 and the replenish timestamp one day before `now_ns`, so the first replenish fills the
    /// bucket (to `min(limit, rate × 1 hour)`). Timestamps are compared by their wrapping
    /// difference read as signed (like the counters), so "a day before" a reading near 0 is a
    /// value near `u64::MAX` and still counts as earlier; the reference saturates at 0 instead,
    /// which would leave a bucket on a clock started at 0 nearly empty.
    ///
    /// Out-of-range parameters are clamped rather than rejected: a `rate_per_sec` of 0 is
    /// treated as 1 (callers never build a zero-rate bucket; 1 token/s keeps every division
    /// defined), a rate above [`MAX_RATE_PER_SEC`] becomes that, `limit` is capped at
    /// [`MAX_LIMIT`], and `threshold` is clamped to `1..=max(limit, 1)` like the reference's
    /// `clamp(threshold, 1, limit)`.
    pub fn new(rate_per_sec: u64, limit: u64, threshold: u64, now_ns: u64) -> Self {
        Self::with_counters(rate_per_sec, limit, threshold, now_ns, 0)
    }

    /// Like [`new`](Self::new), but with `head` and `tail` both starting at `start`, so tests
    /// can run the counters across the `u64` wrap-around.
    pub fn with_counters(
        rate_per_sec: u64,
        limit: u64,
        threshold: u64,
        now_ns: u64,
        start: u64,
    ) -> Self {
        let rate_per_sec = rate_per_sec.clamp(1, MAX_RATE_PER_SEC);
        let limit = limit.min(MAX_LIMIT);
        let threshold = threshold.clamp(1, limit.max(1));
        SharedTokenBucket {
            head: AtomicU64::new(start),
            tail: AtomicU64::new(start),
            last_replenish_ns: AtomicU64::new(now_ns.wrapping_sub(START_BACKDATE_NS)),
            rate_per_sec,
            limit,
            threshold,
        }
    }

    /// Reserves `n` tokens: `tail += n` (wrapping). Returns the new tail, the position this
    /// reservation waits for; it is covered once [`deficiency`](Self::deficiency) of it is 0.
    #[inline]
    pub fn grab(&self, n: u64) -> u64 {
        // Relaxed: the fetch_add alone decides the order of reservations (the modification
        // order of `tail`), which is all the bucket needs; no other memory is published or
        // acquired through it.
        self.tail.fetch_add(n, Ordering::Relaxed).wrapping_add(n)
    }

    /// Tokens still missing before the reservation at `position` is covered:
    /// `max(position − head, 0)`, the difference read as signed.
    #[inline]
    pub fn deficiency(&self, position: u64) -> u64 {
        // Relaxed: `head` only grows, so a stale value can only overstate the deficiency
        // (the caller waits a little longer, never dispatches early); coherence makes the
        // newer value visible to later loads on this thread.
        wrapping_difference(position, self.head.load(Ordering::Relaxed))
    }

    /// Gives `n` tokens back: `head += n` (wrapping). Used to return a reservation that will
    /// not be used, in full, in the order of the reservation queue.
    #[inline]
    pub fn refund(&self, n: u64) {
        // Relaxed: an atomic add on one location; it cannot be lost, and nothing else is
        // synchronised through it.
        self.head.fetch_add(n, Ordering::Relaxed);
    }

    /// Turns the time since the last replenish into tokens.
    ///
    /// `extra = floor(rate × min(now − last, 1 hour))`; nothing happens when
    /// `extra < threshold` (the time keeps accruing) or when `now_ns` is not past the
    /// timestamp (the wrapping difference `now − last` read as signed is ≤ 0). Otherwise one caller wins a compare-and-swap on the timestamp and adds
    /// `min(extra, tail + limit − head)` to `head`: tokens that would lift the bucket above its
    /// limit are lost. See the module docs for how the timestamp advances.
    pub fn replenish(&self, now_ns: u64) {
        // Relaxed: a stale timestamp only makes this call compute a delta that another thread
        // has already claimed, and then its CAS below fails and it returns.
        let last = self.last_replenish_ns.load(Ordering::Relaxed);
        let delta = now_ns.wrapping_sub(last);
        if delta as i64 <= 0 {
            return; // not later than the timestamp (or the clock went back)
        }
        let (extra, new_ts) = if delta >= MAX_REPLENISH_DELTA_NS {
            // One hour's worth; the rest of the idle time is dropped. No overflow: the rate
            // clamp keeps this below u64::MAX / 2.
            (
                self.rate_per_sec * (MAX_REPLENISH_DELTA_NS / NANOS_PER_SEC),
                now_ns,
            )
        } else {
            let rate = u128::from(self.rate_per_sec);
            let nanos = u128::from(NANOS_PER_SEC);
            // Below rate × 3600 ≤ u64::MAX / 2, so the cast is lossless.
            let extra = (rate * u128::from(delta) / nanos) as u64;
            // Time those tokens took, rounded up: extra × 1e9 / rate ≤ delta, and delta is an
            // integer, so the ceiling is ≤ delta too and the timestamp never passes `now_ns`.
            let used = (u128::from(extra) * nanos).div_ceil(rate) as u64;
            (extra, last.wrapping_add(used))
        };
        if extra < self.threshold {
            return;
        }
        // Relaxed on success and failure: the CAS only has to make exactly one thread own the
        // interval [last, new_ts), which the timestamp's modification order guarantees; the
        // tokens themselves are added by a separate RMW below that needs no ordering with it.
        if self
            .last_replenish_ns
            .compare_exchange(last, new_ts, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return; // another thread replenished this interval (or part of it): its tokens.
        }
        // Relaxed loads: a stale `tail` (smaller) understates the room and loses a few tokens;
        // a stale `head` (smaller, possible only if a refund is racing with us) overstates it
        // by at most that refund. Both are bounded and harmless; the reference reads them the
        // same way.
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Relaxed);
        let room = wrapping_difference(tail.wrapping_add(self.limit), head);
        // Relaxed: see `refund`.
        self.head.fetch_add(extra.min(room), Ordering::Relaxed);
    }

    /// The clock reading (ns, the clock of [`replenish`](Self::replenish)) at which a
    /// replenish will cover the reservation at `position`, if no refund comes first: the
    /// replenish timestamp plus the time the rate takes to produce the deficiency (at least
    /// `threshold` tokens, the smallest step a replenish takes), rounded up. The current
    /// timestamp when it is covered already. For drivers that arm a timer instead of polling.
    pub fn covered_at_ns(&self, position: u64) -> u64 {
        // Relaxed: a snapshot; a stale `head` or timestamp only makes the answer late, and a
        // later replenish covers the reservation whenever it runs.
        let last = self.last_replenish_ns.load(Ordering::Relaxed);
        let missing = self.deficiency(position);
        if missing == 0 {
            return last;
        }
        let tokens = u128::from(missing.max(self.threshold));
        let ns = (tokens * u128::from(NANOS_PER_SEC)).div_ceil(u128::from(self.rate_per_sec));
        last.wrapping_add(u64::try_from(ns).unwrap_or(u64::MAX / 4).min(u64::MAX / 4))
    }

    /// All tokens ever made available (wrapping counter).
    pub fn head(&self) -> u64 {
        // Relaxed: a diagnostic snapshot.
        self.head.load(Ordering::Relaxed)
    }

    /// All tokens ever reserved (wrapping counter).
    pub fn tail(&self) -> u64 {
        // Relaxed: a diagnostic snapshot.
        self.tail.load(Ordering::Relaxed)
    }

    /// Tokens per second after clamping.
    pub fn rate_per_sec(&self) -> u64 {
        self.rate_per_sec
    }

    /// Most unreserved tokens the bucket holds, after clamping.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Fewest tokens a replenish adds, after clamping.
    pub fn threshold(&self) -> u64 {
        self.threshold
    }

    /// Tokens available and not yet reserved: `max(head − tail, 0)`, read as signed. A
    /// snapshot; under concurrency it may already be stale when returned.
    pub fn available(&self) -> u64 {
        // Relaxed: a snapshot of two independent counters; no consistency between them is
        // promised to the caller.
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Relaxed);
        wrapping_difference(head, tail)
    }
}
