//! What all shards of one disk share: the cost model, the token bucket(s) and the clock origin.

use std::sync::Arc;
use std::time::Instant;

use crate::cost_model::{CostConfig, CostError, CostModel};
use crate::fair_queue::bandwidth_bucket;
use crate::io_properties::DiskProperties;
use crate::token_bucket::SharedTokenBucket;
use crate::Direction;

/// The model and token bucket(s) of one IO group, shared by its shards' queues (`Arc`).
///
/// A duplex disk (io-properties `duplex: true`) gets one full-rate bucket per direction, so
/// reads and writes do not take capacity from each other; otherwise both directions draw from
/// one bucket (scheduler.md §1). The buckets are lock-free ([`SharedTokenBucket`]).
///
/// The group never reads the clock: it is created with an `origin` instant and every call
/// that needs the time takes `now` from the caller. Any instant works as the origin as long as
/// no later `now` is earlier (earlier ones count as the origin).
#[derive(Debug)]
pub struct IoGroup {
    model: CostModel,
    /// `[read stream, write stream]`; both the same bucket unless the disk is duplex.
    buckets: [Arc<SharedTokenBucket>; 2],
    duplex: bool,
    origin: Instant,
}

impl IoGroup {
    /// A group for `model`; `duplex` gives reads and writes a full-rate bucket each. The
    /// buckets start full.
    pub fn new(model: CostModel, duplex: bool, origin: Instant) -> Arc<IoGroup> {
        let make = || {
            Arc::new(SharedTokenBucket::new(
                model.rate_per_ms().saturating_mul(1000),
                model.limit(),
                model.threshold(),
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

    /// A group for one io-properties disk entry (its rates, `duplex`), under `cfg` (latency
    /// goal, IO groups, shards per group).
    ///
    /// # Errors
    ///
    /// As [`CostModel::from_disk`]: zero rates, bad grouping, a latency goal out of range, or
    /// rates too low for a 512-byte request.
    pub fn from_properties(
        disk: &DiskProperties,
        cfg: &CostConfig,
        origin: Instant,
    ) -> Result<Arc<IoGroup>, CostError> {
        Ok(IoGroup::new(
            CostModel::from_disk(disk, cfg)?,
            disk.duplex,
            origin,
        ))
    }

    /// A group without io-properties: every request costs nothing and never waits
    /// (scheduler.md §3); shares then order requests round-robin by count.
    pub fn unconfigured(cfg: &CostConfig, origin: Instant) -> Arc<IoGroup> {
        IoGroup::new(CostModel::unconfigured(cfg), false, origin)
    }

    /// A bandwidth limit of `bytes_per_sec` (bytes/s) for a class or class group: give it to
    /// [`ClassConfig::bandwidth`](super::ClassConfig::bandwidth) /
    /// [`IoQueue::add_group`](super::IoQueue::add_group) on every shard of the group, and the
    /// limit holds for all of them together (one bucket of 512-byte blocks, limit 10 MiB,
    /// threshold 128 KiB, as the reference's; scheduler.md §5).
    pub fn bandwidth_limit(&self, bytes_per_sec: u64) -> BandwidthLimit {
        BandwidthLimit(Arc::new(bandwidth_bucket(bytes_per_sec, 0)))
    }

    /// The cost model.
    pub fn model(&self) -> &CostModel {
        &self.model
    }

    /// Reads and writes have a bucket each.
    pub fn is_duplex(&self) -> bool {
        self.duplex
    }

    /// The instant the group's clock counts from.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// The buckets' clock: nanoseconds from the origin to `now` (0 before it).
    #[inline]
    pub fn clock_ns(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The instant `ns` nanoseconds after the origin (the inverse of [`clock_ns`](Self::clock_ns)).
    pub fn instant_at(&self, ns: u64) -> Instant {
        self.origin
            .checked_add(std::time::Duration::from_nanos(ns))
            .unwrap_or(self.origin)
    }

    /// The bucket of stream `stream` (0: reads, or both directions; 1: writes of a duplex disk).
    #[inline]
    pub(crate) fn bucket(&self, stream: usize) -> &SharedTokenBucket {
        &self.buckets[stream]
    }

    /// Which stream a direction goes to.
    #[inline]
    pub(crate) fn stream_of(&self, d: Direction) -> usize {
        usize::from(self.duplex && d == Direction::Write)
    }

    /// Number of streams (1, or 2 for a duplex disk).
    pub(crate) fn streams(&self) -> usize {
        if self.duplex {
            2
        } else {
            1
        }
    }
}

/// A bandwidth limit shared by every shard that uses it, from [`IoGroup::bandwidth_limit`].
#[derive(Clone, Debug)]
pub struct BandwidthLimit(pub(crate) Arc<SharedTokenBucket>);

impl BandwidthLimit {
    /// The limit, bytes/s (rounded down to whole 512-byte blocks).
    pub fn bytes_per_sec(&self) -> u64 {
        self.0.rate_per_sec() << crate::fair_queue::BANDWIDTH_BLOCK_SHIFT
    }
}
