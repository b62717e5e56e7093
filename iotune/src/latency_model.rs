//! The `--latency-target` search's report types (issue 10), in the library so the report can
//! hold them; the search is the binary's `latency_target` module.

use scheduler::Direction;
use serde::{Deserialize, Serialize};

/// One step of the search.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Step {
    /// Requests in flight per shard.
    pub in_flight_per_shard: usize,
    /// Random IOPS over all shards, requests/s.
    pub iops: f64,
    /// The searched percentile of completion latency, microseconds.
    pub percentile_us: f64,
    /// 99th percentile completion latency, microseconds.
    pub p99_us: f64,
    /// Whether `percentile_us` stayed under the target.
    pub under_target: bool,
}

/// The search in one direction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencySearch {
    /// Read or write.
    pub direction: Direction,
    /// Request size, bytes.
    pub request_size: u64,
    /// The target, milliseconds.
    pub target_ms: f64,
    /// The bounded percentile, percent.
    pub percentile: f64,
    /// Every step, in the order measured.
    pub steps: Vec<Step>,
    /// The step giving the latency-bounded figure: the highest IOPS under the target (None:
    /// even one request in flight per shard missed it).
    pub bounded: Option<Step>,
    /// The throughput-maximal random IOPS of the four corners, requests/s.
    pub max_iops: f64,
    /// What `--rates latency-bounded` writes, requests/s: `bounded`'s IOPS, or (no step met the
    /// target) the depth-1 IOPS, the lowest rate the depth search measures; at most `max_iops`
    /// (a short step above the longer corner phase measured a burst, not a sustained rate).
    pub latency_bounded_iops: f64,
}
