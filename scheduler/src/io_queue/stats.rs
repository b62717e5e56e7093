//! The reference's io_queue statistics, per class and per queue.

use serde::Serialize;

/// Statistics of one priority class on one queue (the reference's io_queue metrics).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ClassStats {
    /// Class name.
    pub name: String,
    /// Shares.
    pub shares: u32,
    /// Requests completed (a split request counts once; cancelled requests do not count).
    pub operations: u64,
    /// Bytes completed.
    pub bytes: u64,
    /// Seconds parts spent in the disk (dispatch to completion), summed.
    pub total_exec_sec: f64,
    /// Seconds parts waited in the queue (queue to dispatch), summed.
    pub total_delay_sec: f64,
    /// Capacity dispatched, in seconds of whole-disk time.
    pub consumption: f64,
    /// Capacity dispatched after flow-ratio adjustment, in seconds of whole-disk time.
    pub adjusted_consumption: f64,
    /// Times the class went from nothing queued to something queued.
    pub activations: u64,
    /// Seconds the class had queued work that could not dispatch for lack of tokens.
    pub starvation_time_sec: f64,
    /// Requests split because they exceeded the model's maximum length.
    pub split_requests: u64,
}

/// Statistics of one queue.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct QueueStats {
    /// Parts dispatched and not completed.
    pub in_flight: usize,
    /// Parts queued and not dispatched.
    pub queued: usize,
    /// Smoothed dispatched/completed ratio (scheduler.md §7); costs rise while it exceeds 1.1.
    pub flow_ratio: f64,
    /// Requests split because they exceeded the model's maximum length.
    pub split_requests: u64,
}

/// Per-class sums kept as integers (nanoseconds, capacity units); converted on reading.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sums {
    pub(crate) exec_ns: u64,
    pub(crate) delay_ns: u64,
    pub(crate) consumption: u64,
    pub(crate) adjusted_consumption: u64,
}
