//! The scheduling core against an instant device, on a simulated clock: how much the
//! scheduler itself lets through.
//!
//! Every shard keeps enough requests of one direction and size queued; each part it lets out
//! completes at once (a device with no latency and no limit), and the request is queued
//! again. Time jumps from one dispatch opportunity to the next
//! ([`IoQueue::next_dispatch_at`]), so nothing but the scheduler's own machinery — the shared
//! token bucket, its threshold, per-shard batched grabbing, IO groups, splitting — decides
//! the rate. The model allows `rate / cost(request)` requests per second per IO group (the
//! inverse of the request's cost, scheduler.md §1); [`SimPoint::ratio`] says how much of that
//! the scheduler delivered. The reference's 8.5 GB/s plateau was such a shortfall.
//!
//! Deterministic: the same inputs give the same numbers on any machine, however loaded.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cost_model::{CostConfig, CostError, CostModel, CAPACITY_PER_MS};
use crate::io_queue::{ClassConfig, IoGroup, IoQueue, IoRequest, PartId};
use crate::Direction;

/// The rates of a disk, as in io-properties (after `rate_factor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DiskRates {
    /// Read operations per second.
    pub read_iops: u64,
    /// Read bytes per second.
    pub read_bandwidth: u64,
    /// Write operations per second.
    pub write_iops: u64,
    /// Write bytes per second.
    pub write_bandwidth: u64,
    /// Reads and writes have a token bucket each.
    pub duplex: bool,
}

/// How the scheduler is set up and how long to simulate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimConfig {
    /// Shards, all dispatching at once (at least 1).
    pub shards: u32,
    /// IO groups the shards are spread over (at least 1, at most `shards`); each has its own
    /// bucket with 1/groups of the rates.
    pub io_groups: u32,
    /// Latency goal, milliseconds.
    pub latency_goal_ms: f64,
    /// Requests simulated per point (at least); the window grows to fit them.
    pub requests: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            shards: 1,
            io_groups: 1,
            latency_goal_ms: crate::cost_model::DEFAULT_LATENCY_GOAL_MS,
            requests: 20_000,
        }
    }
}

/// What the scheduler let through for one direction and request size.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SimPoint {
    /// Read or write.
    pub direction: Direction,
    /// Request size, bytes.
    pub request_size: u64,
    /// Requests per second the scheduler let through, all shards.
    pub delivered_iops: f64,
    /// The same in bytes per second.
    pub delivered_bandwidth: f64,
    /// Requests per second the cost model allows: the bucket's rate over the request's cost,
    /// summed over IO groups.
    pub model_iops: f64,
    /// The same in bytes per second.
    pub model_bandwidth: f64,
    /// `delivered_iops / model_iops` (1.0: the machinery loses nothing).
    pub ratio: f64,
    /// Simulated seconds measured (after the warm-up).
    pub window_sec: f64,
    /// False when the request costs so little ([`MIN_SIMULATED_COST`]) that no device could
    /// be limited by the scheduler: nothing was simulated, and `delivered_*` equal `model_*`
    /// (infinite when the cost is 0).
    pub simulated: bool,
}

/// Requests cheaper than this many capacity units (about 6 ns of disk time: more than 160M
/// requests per second per IO group) are not simulated: the scheduler cannot be what limits
/// them, and simulating them would take many millions of steps.
pub const MIN_SIMULATED_COST: u64 = 100;

/// Simulates `direction` requests of `len` bytes (see the module docs).
///
/// # Errors
///
/// The cost model's errors for these rates and settings (zero rates, a latency goal out of
/// range, rates too low for a 512-byte request, zero shards or groups).
pub fn simulate(
    rates: &DiskRates,
    cfg: &SimConfig,
    direction: Direction,
    len: u64,
) -> Result<SimPoint, CostError> {
    let shards = cfg.shards.max(1);
    let groups = cfg.io_groups.clamp(1, shards);
    // Shards spread round-robin over the groups; each group's model knows its shard count.
    let origin = Instant::now();
    let mut queues = Vec::with_capacity(shards as usize);
    let mut group_models = Vec::new();
    for g in 0..groups {
        let in_group = shards / groups + u32::from(g < shards % groups);
        let model = CostModel::from_rates(
            rates.read_iops,
            rates.read_bandwidth,
            rates.write_iops,
            rates.write_bandwidth,
            &CostConfig {
                latency_goal_ms: cfg.latency_goal_ms,
                io_groups: groups,
                shards_in_group: in_group,
            },
        )?;
        group_models.push(model.clone());
        let group = IoGroup::new(model, rates.duplex, origin);
        for _ in 0..in_group {
            queues.push(IoQueue::<()>::new(group.clone()));
        }
    }
    let model = &group_models[0];
    let len = len.max(1);
    // The cost of one request as the core charges it: its parts, each at most max length.
    let max = model.max_request_len(direction).max(512);
    let (full, rest) = (len / max, len % max);
    let cost = |m: &CostModel| {
        full * m.capacity(direction, max).0
            + if rest > 0 {
                m.capacity(direction, rest).0
            } else {
                0
            }
    };
    let rate_per_sec = (CAPACITY_PER_MS * 1000) as f64;
    let model_iops: f64 = group_models
        .iter()
        .map(|m| rate_per_sec / cost(m) as f64)
        .sum();
    if cost(model) < MIN_SIMULATED_COST {
        return Ok(SimPoint {
            direction,
            request_size: len,
            delivered_iops: model_iops,
            delivered_bandwidth: model_iops * len as f64,
            model_iops,
            model_bandwidth: model_iops * len as f64,
            ratio: 1.0,
            window_sec: 0.0,
            simulated: false,
        });
    }
    // Enough queued per shard to use a whole grab (or the whole bucket) at once.
    let per_grab = model
        .per_tick_grab_threshold()
        .max(model.limit() / u64::from(shards));
    let depth = (per_grab / cost(model).max(1) + 2).clamp(4, 4096) as usize;
    // The bucket starts full: skip a few bucket depths of burst, then measure long enough
    // for `requests` requests.
    let limit_ns = model.limit() as f64 / CAPACITY_PER_MS as f64 * 1e6;
    let warmup_ns = (4.0 * limit_ns).max(2e6);
    // Reservations and bucket contents at either end of the window (at most a bucket depth
    // each) make the count uncertain by about limit/window: 100 depths keep that within 1%.
    let window_ns = (cfg.requests.max(1) as f64 / model_iops * 1e9).max(100.0 * limit_ns);
    let (warmup, end) = (warmup_ns as u64, (warmup_ns + window_ns) as u64);

    let mut classes = Vec::with_capacity(queues.len());
    for q in &mut queues {
        let class = q
            .add_class(ClassConfig::new("sim", 100))
            .expect("a new queue takes a class");
        for _ in 0..depth {
            let req = IoRequest {
                class,
                direction,
                len,
                token: (),
            };
            let _ = q.queue(req, origin);
        }
        classes.push(class);
    }
    // Shards by their next dispatch time (ns); a shard is polled when its time comes.
    let mut due: BinaryHeap<Reverse<(u64, usize)>> =
        (0..queues.len()).map(|i| Reverse((0, i))).collect();
    let mut parts: Vec<PartId> = Vec::with_capacity(depth);
    let mut counted = 0u64;
    while let Some(Reverse((t, i))) = due.pop() {
        if t >= end {
            break;
        }
        let now = origin + Duration::from_nanos(t);
        let q = &mut queues[i];
        while let Some(d) = q.poll_dispatch(now) {
            parts.push(d.part);
        }
        for p in parts.drain(..) {
            if let Ok(Some(_)) = q.complete(p, len as i64, now) {
                if t >= warmup {
                    counted += 1;
                }
                let req = IoRequest {
                    class: classes[i],
                    direction,
                    len,
                    token: (),
                };
                let _ = q.queue(req, now);
            }
        }
        let next = q
            .next_dispatch_at(now)
            .map_or(end, |at| nanos_since(origin, at))
            .max(t + 1);
        due.push(Reverse((next, i)));
    }
    let window_sec = (end - warmup) as f64 / 1e9;
    let delivered_iops = counted as f64 / window_sec;
    Ok(SimPoint {
        direction,
        request_size: len,
        delivered_iops,
        delivered_bandwidth: delivered_iops * len as f64,
        model_iops,
        model_bandwidth: model_iops * len as f64,
        ratio: delivered_iops / model_iops,
        window_sec,
        simulated: true,
    })
}

fn nanos_since(origin: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX)
}
