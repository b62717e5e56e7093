//! The disk cost model: from io-properties rates to the integers the scheduler works in.
//!
//! Implements `shared/reference/scheduler.md` §1–3 (Seastar's `io_queue` / `io_group` /
//! `io_throttler` arithmetic, seastar 525fcc86ecd2), step for step, so that the numbers match the
//! reference bit for bit on every input the reference handles correctly (the §2 test vector is
//! reproduced exactly, see `scheduler/tests/cost_model.rs`).
//!
//! # The model
//!
//! One request costs "seconds of whole-disk time" ([`CostModel::tokens`]):
//!
//! ```text
//! tokens = w / req_count_rate + s * (len >> 9) / blocks_count_rate
//! (w, s) = (128, 128) for reads, (write_req_mult, write_blocks_mult) for writes
//! ```
//!
//! and the scheduler's integer unit, [`Capacity`], is 2^-24 ms of that time:
//! `capacity = trunc((tokens * 1000.0) * 2^24)` ([`CostModel::capacity`]). The token bucket is
//! refilled at [`CAPACITY_PER_MS`] units per millisecond, its depth (`limit`) is the latency
//! goal's worth of disk time.
//!
//! # u64-clean (deliberate differences from the reference)
//!
//! The reference left the unconfigured rates at `i32::MAX` until July 2025, which made a 128 KiB
//! request cost about 257000 units and capped throughput near 8.59e9 B/s (§3; the seed bug
//! this project exists for). Here the unconfigured rates are `u64::MAX`, every capacity up to
//! 16 MiB truncates to 0, and nothing in this module overflows or divides by zero for any input:
//!
//! - Integer steps use `u128` intermediates. `req_count_rate = 128 * per(Or)` and the two write
//!   multipliers saturate at `u64::MAX` when the exact result does not fit (only for rates above
//!   about 1.4e17/s, or write rates 128× below read rates that large); `blocks_count_rate` always
//!   fits. The reference silently wraps in those cases, and stores the multipliers in 32-bit
//!   `unsigned`; we keep them as `u64`.
//! - Float-to-integer conversions saturate (Rust `as`), where the reference's behaviour is
//!   undefined.
//! - A zero rate is [`CostError::ZeroRate`]; a read bandwidth so low that `blocks_count_rate`
//!   rounds to 0 (below 4 bytes/s per IO group) is [`CostError::TooSlow`] instead of a
//!   division by zero.
//! - The latency goal must lie in [[`MIN_LATENCY_GOAL_MS`], [`MAX_LATENCY_GOAL_MS`]], and the
//!   bucket limit may not exceed [`MAX_LIMIT`], so the token bucket's wrapping counters stay
//!   meaningful (§4: differences below 2^63).
//!
//! # Floating point
//!
//! The `f64` steps follow the reference's evaluation order exactly
//! (`double(w) / req_count_rate + double(s) * blocks / blocks_count_rate`, each integer
//! converted to `f64` first). The scaling to capacity multiplies by 1000 then by 2^24; since the
//! second factor is a power of two the product rounds the same whatever the order, so the §2
//! vector is matched by plain `f64` without any `f32` step (the only `f32` step in the whole
//! pipeline is `rate_factor`, applied by the io-properties reader).

use serde::Serialize;

use crate::io_properties::DiskProperties;
use crate::Direction;

/// Scheduler capacity: an amount of whole-disk time in units of 2^-24 ms (≈ 59.6 ps).
///
/// A newtype so capacity cannot be mixed up with bytes or block counts. The token bucket refills
/// [`CAPACITY_PER_MS`] of these per millisecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub struct Capacity(pub u64);

impl Capacity {
    /// No disk time at all (every request of an unconfigured model).
    pub const ZERO: Capacity = Capacity(0);

    /// The raw number of 2^-24 ms units.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// This much disk time in milliseconds.
    pub fn as_ms(self) -> f64 {
        self.0 as f64 / CAPACITY_PER_MS as f64
    }
}

impl std::fmt::Display for Capacity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Capacity units per millisecond of disk time (2^24): the token bucket's refill rate.
pub const CAPACITY_PER_MS: u64 = 1 << 24;

/// Weight of a read request and of a read block in the cost formula (the reference's
/// `read_request_base_count`); write weights are expressed relative to it.
pub const READ_BASE_COUNT: u64 = 128;

/// Request sizes are counted in blocks of 2^9 = 512 bytes (`len >> 9`; partial blocks are free).
pub const BLOCK_SIZE_SHIFT: u32 = 9;

/// The largest request length the model allows, bytes (16 MiB; the reference's
/// `request_length_limit`). Also the maximum length of an unconfigured model.
pub const REQUEST_LENGTH_LIMIT: u64 = 16 << 20;

/// Blocks in the request whose cost sets the minimum bucket limit (64 KiB; the reference's
/// `block_count_limit_min`).
pub const BLOCK_COUNT_LIMIT_MIN: u64 = 128;

/// Default latency goal, milliseconds (1.5 × a 0.5 ms task quota).
pub const DEFAULT_LATENCY_GOAL_MS: f64 = 0.75;

/// Smallest accepted latency goal, milliseconds: one capacity unit (2^-24 ms), so the bucket
/// limit is never 0.
pub const MIN_LATENCY_GOAL_MS: f64 = 1.0 / CAPACITY_PER_MS as f64;

/// Largest accepted latency goal, milliseconds (one hour, the token bucket's replenish cap).
pub const MAX_LATENCY_GOAL_MS: f64 = 3_600_000.0;

/// Largest bucket limit, capacity units (2^62 ≈ 8.7 years of disk time), so that every
/// difference of the token bucket's wrapping counters stays below 2^63.
pub const MAX_LIMIT: u64 = 1 << 62;

/// What the cost model is built with besides the disk's rates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostConfig {
    /// Latency goal, milliseconds (default 0.75): the bucket holds this much disk time.
    pub latency_goal_ms: f64,
    /// Number of IO groups sharing the disk, G (default 1): each gets 1/G of the rates.
    pub io_groups: u32,
    /// Shards sharing one IO group (default 1): each may grab `limit / shards_in_group` per tick.
    pub shards_in_group: u32,
}

impl Default for CostConfig {
    fn default() -> Self {
        CostConfig {
            latency_goal_ms: DEFAULT_LATENCY_GOAL_MS,
            io_groups: 1,
            shards_in_group: 1,
        }
    }
}

/// The four queue-level integers of the reference's `io_queue::config`, from which everything
/// else is derived (see [`CostModel::from_queue_rates`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct QueueRates {
    /// Read requests per second of one IO group, times 128.
    pub req_count_rate: u64,
    /// Read 512-byte blocks per second of one IO group, times 128.
    pub blocks_count_rate: u64,
    /// Cost of a write request relative to a read request, times 128 (dimensionless).
    pub write_req_mult: u64,
    /// Cost of a written block relative to a read block, times 128 (dimensionless).
    pub write_blocks_mult: u64,
}

impl QueueRates {
    /// The unconfigured placeholder: both rates `u64::MAX`, both multipliers 128 (writes cost
    /// as much as reads). Every capacity up to 16 MiB is 0. The rates are not divided by the
    /// number of IO groups (as in the reference, which keeps its defaults when unconfigured).
    pub const UNCONFIGURED: QueueRates = QueueRates {
        req_count_rate: u64::MAX,
        blocks_count_rate: u64::MAX,
        write_req_mult: READ_BASE_COUNT,
        write_blocks_mult: READ_BASE_COUNT,
    };

    /// Derives the queue integers from the disk's rates (scheduler.md §2), after `rate_factor`:
    /// `read_iops`, `write_iops` in operations/s, `read_bw`, `write_bw` in bytes/s.
    ///
    /// `per(x) = max(x / G, 1)`; `req_count_rate = 128 * per(Or)`,
    /// `blocks_count_rate = (128 * per(Br)) >> 9`, `write_req_mult = (128 * Or) / Ow`,
    /// `write_blocks_mult = (128 * Br) / Bw`, computed in `u128` and saturated at `u64::MAX`.
    ///
    /// # Errors
    ///
    /// [`CostError::BadGroups`] if `io_groups` is 0, [`CostError::ZeroRate`] for a zero rate,
    /// [`CostError::TooSlow`] if `blocks_count_rate` comes out 0 (read bandwidth below 4 bytes/s
    /// per IO group).
    pub fn from_rates(
        read_iops: u64,
        read_bw: u64,
        write_iops: u64,
        write_bw: u64,
        io_groups: u32,
    ) -> Result<QueueRates, CostError> {
        if io_groups == 0 {
            return Err(CostError::BadGroups {
                io_groups,
                shards_in_group: 1,
            });
        }
        for (field, value) in [
            ("read_iops", read_iops),
            ("read_bandwidth", read_bw),
            ("write_iops", write_iops),
            ("write_bandwidth", write_bw),
        ] {
            if value == 0 {
                return Err(CostError::ZeroRate { field });
            }
        }
        let base = u128::from(READ_BASE_COUNT);
        let per = |x: u64| u128::from((x / u64::from(io_groups)).max(1));
        let sat = |x: u128| u64::try_from(x).unwrap_or(u64::MAX);
        let rates = QueueRates {
            req_count_rate: sat(base * per(read_iops)),
            blocks_count_rate: sat((base * per(read_bw)) >> BLOCK_SIZE_SHIFT),
            write_req_mult: sat(base * u128::from(read_iops) / u128::from(write_iops)),
            write_blocks_mult: sat(base * u128::from(read_bw) / u128::from(write_bw)),
        };
        if rates.blocks_count_rate == 0 {
            return Err(CostError::TooSlow {
                dir: Direction::Read,
                detail: format!(
                    "read_bandwidth {read_bw} B/s over {io_groups} IO group(s) is below 4 B/s per \
                     group, so a 512-byte block would take more than 128 s"
                ),
            });
        }
        Ok(rates)
    }
}

/// Everything the scheduler derives from the disk model: queue integers, token bucket
/// parameters and maximum request lengths (scheduler.md §2).
///
/// Built only by the constructors, which keep its invariants (threshold ≤ limit, limit ≤
/// [`MAX_LIMIT`], every maximum length's cost within the limit); read through the accessors.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CostModel {
    /// `true` when built from io-properties; `false` for the unconfigured placeholder (zero cost).
    configured: bool,
    /// Read requests per second of one IO group, times 128 (`128 * per(Or)`).
    req_count_rate: u64,
    /// Read 512-byte blocks per second of one IO group, times 128 (`(128 * per(Br)) >> 9`).
    blocks_count_rate: u64,
    /// Write/read request cost ratio, times 128 (`(128 * Or) / Ow`), dimensionless.
    write_req_mult: u64,
    /// Write/read block cost ratio, times 128 (`(128 * Br) / Bw`), dimensionless.
    write_blocks_mult: u64,
    /// Token bucket refill rate, capacity units per millisecond (always [`CAPACITY_PER_MS`]).
    rate_per_ms: u64,
    /// Token bucket depth, capacity units: `max(trunc(2^24 * goal_ms), capacity(limit_min_tokens))`.
    limit: u64,
    /// Smallest replenishment worth doing, capacity units: `clamp(capacity(min_tokens), 1, limit)`.
    threshold: u64,
    /// Most a shard grabs at once, capacity units: `limit / shards_in_group`.
    per_tick_grab_threshold: u64,
    /// The configured latency goal, milliseconds.
    latency_goal_ms: f64,
    /// The latency goal the bucket really gives, `limit / rate_per_ms`, milliseconds (larger than
    /// the configured one when a 64 KiB request costs more than the goal).
    effective_latency_goal_ms: f64,
    /// Longest read sent to the disk in one piece, bytes (longer ones are split).
    max_read_len: u64,
    /// Longest write sent to the disk in one piece, bytes (longer ones are split).
    max_write_len: u64,
}

impl CostModel {
    /// The model without io-properties: rates `u64::MAX`, so every request up to 16 MiB costs
    /// capacity 0, the threshold clamps to 1, both maximum lengths are 16 MiB and nothing ever
    /// waits for tokens (scheduler.md §3). The bucket limit still follows the latency goal.
    ///
    /// An invalid `cfg` (zero groups or shards, latency goal out of range) is replaced by the
    /// corresponding default, since an unconfigured model must always exist.
    pub fn unconfigured(cfg: &CostConfig) -> CostModel {
        let defaults = CostConfig::default();
        let cfg = CostConfig {
            latency_goal_ms: if check_latency_goal(cfg.latency_goal_ms).is_ok() {
                cfg.latency_goal_ms
            } else {
                defaults.latency_goal_ms
            },
            io_groups: cfg.io_groups.max(1),
            shards_in_group: cfg.shards_in_group.max(1),
        };
        // Cannot fail: every capacity is 0 and the limit is at most 2^24 ms·h < MAX_LIMIT.
        Self::build(QueueRates::UNCONFIGURED, &cfg, false).unwrap_or_else(|_| unreachable_model())
    }

    /// The model for one disk entry of io-properties (rates already include `rate_factor`).
    /// `duplex` does not change the numbers (a duplex disk gets one bucket per direction, each
    /// with these parameters).
    ///
    /// # Errors
    ///
    /// As [`CostModel::from_rates`].
    pub fn from_disk(disk: &DiskProperties, cfg: &CostConfig) -> Result<CostModel, CostError> {
        Self::from_rates(
            disk.read_iops,
            disk.read_bandwidth,
            disk.write_iops,
            disk.write_bandwidth,
            cfg,
        )
    }

    /// The model for the given rates: IOPS in operations/s, bandwidths in bytes/s (scheduler.md
    /// §2, u64-clean: any rates in `1..=u64::MAX` are accepted).
    ///
    /// # Errors
    ///
    /// [`CostError::ZeroRate`] for a zero rate; [`CostError::BadGroups`] for zero IO groups or
    /// shards; [`CostError::BadLatencyGoal`] for a goal outside
    /// [[`MIN_LATENCY_GOAL_MS`], [`MAX_LATENCY_GOAL_MS`]] or not finite;
    /// [`CostError::TooSlow`] when the rates are so low that a 512-byte request does not fit
    /// the bucket or the bucket would exceed [`MAX_LIMIT`].
    pub fn from_rates(
        read_iops: u64,
        read_bw: u64,
        write_iops: u64,
        write_bw: u64,
        cfg: &CostConfig,
    ) -> Result<CostModel, CostError> {
        check_config(cfg)?;
        let rates =
            QueueRates::from_rates(read_iops, read_bw, write_iops, write_bw, cfg.io_groups)?;
        Self::build(rates, cfg, true)
    }

    /// The model for queue-level integers given directly (the reference's `io_queue::config`),
    /// marked configured. Mostly for tests and comparisons: e.g. the seed bug is
    /// `QueueRates { req_count_rate: i32::MAX, blocks_count_rate: i32::MAX, write_req_mult: 128,
    /// write_blocks_mult: 128 }`. `cfg.io_groups` is not applied (the rates are per group).
    ///
    /// # Errors
    ///
    /// [`CostError::ZeroRate`] if `req_count_rate` or `blocks_count_rate` is 0, otherwise as
    /// [`CostModel::from_rates`].
    pub fn from_queue_rates(rates: QueueRates, cfg: &CostConfig) -> Result<CostModel, CostError> {
        check_config(cfg)?;
        if rates.req_count_rate == 0 {
            return Err(CostError::ZeroRate {
                field: "req_count_rate",
            });
        }
        if rates.blocks_count_rate == 0 {
            return Err(CostError::ZeroRate {
                field: "blocks_count_rate",
            });
        }
        Self::build(rates, cfg, true)
    }

    /// The queue-level integers of this model.
    pub fn queue_rates(&self) -> QueueRates {
        QueueRates {
            req_count_rate: self.req_count_rate,
            blocks_count_rate: self.blocks_count_rate,
            write_req_mult: self.write_req_mult,
            write_blocks_mult: self.write_blocks_mult,
        }
    }

    /// Builds the bucket parameters and maximum lengths; `rates` has non-zero counts and `cfg` is
    /// valid.
    fn build(
        rates: QueueRates,
        cfg: &CostConfig,
        configured: bool,
    ) -> Result<CostModel, CostError> {
        let rc = rates.req_count_rate as f64;
        let bc = rates.blocks_count_rate as f64;
        let base = READ_BASE_COUNT;
        // io_group::configure_throttler: each step as in the reference, integer -> double first.
        let min_weight = base.min(rates.write_req_mult) as f64;
        let min_size = base.min(rates.write_blocks_mult) as f64;
        let min_tokens = min_weight / rc + min_size / bc;
        let limit_min_weight = base.max(rates.write_req_mult) as f64;
        // The reference multiplies in integers, then converts; scaling by 2^7 commutes with
        // rounding, so converting first gives the same double and cannot overflow.
        let limit_min_size =
            base.max(rates.write_blocks_mult) as f64 * BLOCK_COUNT_LIMIT_MIN as f64;
        let limit_min_tokens = limit_min_weight / rc + limit_min_size / bc;

        let goal_units = (CAPACITY_PER_MS as f64 * cfg.latency_goal_ms) as u64;
        let limit = goal_units.max(tokens_capacity(limit_min_tokens).0);
        if limit > MAX_LIMIT {
            let dearer = if rates.write_req_mult > base || rates.write_blocks_mult > base {
                Direction::Write
            } else {
                Direction::Read
            };
            return Err(CostError::TooSlow {
                dir: dearer,
                detail: format!(
                    "a 64 KiB request would cost {limit} capacity units, more than the maximum \
                     bucket limit {MAX_LIMIT}"
                ),
            });
        }
        let threshold = tokens_capacity(min_tokens).0.clamp(1, limit.max(1));
        let per_tick_grab_threshold = limit / u64::from(cfg.shards_in_group);

        let mut model = CostModel {
            configured,
            req_count_rate: rates.req_count_rate,
            blocks_count_rate: rates.blocks_count_rate,
            write_req_mult: rates.write_req_mult,
            write_blocks_mult: rates.write_blocks_mult,
            rate_per_ms: CAPACITY_PER_MS,
            limit,
            threshold,
            per_tick_grab_threshold,
            latency_goal_ms: cfg.latency_goal_ms,
            effective_latency_goal_ms: limit as f64 / CAPACITY_PER_MS as f64,
            max_read_len: REQUEST_LENGTH_LIMIT,
            max_write_len: REQUEST_LENGTH_LIMIT,
        };
        model.max_read_len = model.find_max_len(Direction::Read)?;
        model.max_write_len = model.find_max_len(Direction::Write)?;
        Ok(model)
    }

    /// io_group's `update_max_size`: the largest power of two (from 512 bytes) whose capacity
    /// fits the bucket limit, or 16 MiB.
    fn find_max_len(&self, dir: Direction) -> Result<u64, CostError> {
        let mut len = 1u64 << BLOCK_SIZE_SHIFT;
        // The reference also tries 32 MiB before giving up; the answer is 16 MiB either way.
        while len <= REQUEST_LENGTH_LIMIT {
            let cap = self.capacity(dir, len);
            if cap.0 > self.limit {
                if len == 1 << BLOCK_SIZE_SHIFT {
                    return Err(CostError::TooSlow {
                        dir,
                        detail: format!(
                            "a 512-byte request costs {cap} capacity units, more than the bucket \
                             limit {}",
                            self.limit
                        ),
                    });
                }
                let fitting = len >> 1;
                let fitting_cap = self.capacity(dir, fitting);
                let cap_limit = self.capacity(dir, REQUEST_LENGTH_LIMIT);
                // As in the reference; cannot hold while capacity grows with length.
                if fitting_cap < cap_limit && cap_limit.0 < self.limit {
                    return Ok(REQUEST_LENGTH_LIMIT);
                }
                return Ok(fitting);
            }
            len <<= 1;
        }
        Ok(REQUEST_LENGTH_LIMIT)
    }

    /// Seconds of whole-disk time a request of `len` bytes costs (scheduler.md §2):
    /// `w / req_count_rate + s * (len >> 9) / blocks_count_rate` in `f64`, with
    /// `(w, s) = (128, 128)` for reads and the write multipliers for writes. Partial blocks are
    /// free.
    pub fn tokens(&self, dir: Direction, len: u64) -> f64 {
        let (weight, size) = match dir {
            Direction::Read => (READ_BASE_COUNT, READ_BASE_COUNT),
            Direction::Write => (self.write_req_mult, self.write_blocks_mult),
        };
        let blocks = len >> BLOCK_SIZE_SHIFT;
        weight as f64 / self.req_count_rate as f64
            + size as f64 * blocks as f64 / self.blocks_count_rate as f64
    }

    /// The request's cost in capacity units: `trunc((tokens * 1000.0) * 2^24)`, saturating.
    pub fn capacity(&self, dir: Direction, len: u64) -> Capacity {
        tokens_capacity(self.tokens(dir, len))
    }

    /// `true` when built from io-properties; `false` for the unconfigured placeholder (zero cost).
    pub fn configured(&self) -> bool {
        self.configured
    }

    /// Read requests per second of one IO group, times 128 (`128 * per(Or)`).
    pub fn req_count_rate(&self) -> u64 {
        self.req_count_rate
    }

    /// Read 512-byte blocks per second of one IO group, times 128 (`(128 * per(Br)) >> 9`).
    pub fn blocks_count_rate(&self) -> u64 {
        self.blocks_count_rate
    }

    /// Write/read request cost ratio, times 128 (`(128 * Or) / Ow`), dimensionless.
    pub fn write_req_mult(&self) -> u64 {
        self.write_req_mult
    }

    /// Write/read block cost ratio, times 128 (`(128 * Br) / Bw`), dimensionless.
    pub fn write_blocks_mult(&self) -> u64 {
        self.write_blocks_mult
    }

    /// Token bucket refill rate, capacity units per millisecond (always [`CAPACITY_PER_MS`]).
    pub fn rate_per_ms(&self) -> u64 {
        self.rate_per_ms
    }

    /// Token bucket depth, capacity units (at least 1, at most [`MAX_LIMIT`]).
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Smallest replenishment worth doing, capacity units; in `1..=limit`.
    pub fn threshold(&self) -> u64 {
        self.threshold
    }

    /// Most a shard grabs at once, capacity units: `limit / shards_in_group`.
    pub fn per_tick_grab_threshold(&self) -> u64 {
        self.per_tick_grab_threshold
    }

    /// The configured latency goal, milliseconds.
    pub fn latency_goal_ms(&self) -> f64 {
        self.latency_goal_ms
    }

    /// The latency goal the bucket really gives, `limit / rate_per_ms`, milliseconds (larger
    /// than the configured one when a 64 KiB request costs more than the goal).
    pub fn effective_latency_goal_ms(&self) -> f64 {
        self.effective_latency_goal_ms
    }

    /// Longest request of this direction sent to the disk in one piece, bytes (a power of two
    /// between 512 and 16 MiB).
    pub fn max_request_len(&self, dir: Direction) -> u64 {
        match dir {
            Direction::Read => self.max_read_len,
            Direction::Write => self.max_write_len,
        }
    }

    /// Non-fatal findings about this model, each a sentence with the fix.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.effective_latency_goal_ms > 1.1 * self.latency_goal_ms {
            out.push(format!(
                "the IO queue uses a {:.2} ms latency goal instead of the configured {} ms: a \
                 64 KiB request costs more disk time than the goal; raise --io-latency-goal-ms \
                 or check the io-properties rates",
                self.effective_latency_goal_ms, self.latency_goal_ms
            ));
        }
        if self.configured && self.capacity(Direction::Read, 1 << BLOCK_SIZE_SHIFT).0 == 0 {
            out.push(
                "a 512-byte read costs 0 capacity units: the configured rates are so high that \
                 the scheduler cannot limit small requests; check the io-properties rates"
                    .to_owned(),
            );
        }
        out
    }
}

/// The reference's `tokens_capacity`: seconds of disk time to capacity units, truncating (and
/// saturating at `u64::MAX`; NaN cannot occur since both rates are at least 1).
fn tokens_capacity(tokens: f64) -> Capacity {
    Capacity(((tokens * 1000.0) * CAPACITY_PER_MS as f64) as u64)
}

fn check_latency_goal(goal_ms: f64) -> Result<(), CostError> {
    if goal_ms.is_finite() && (MIN_LATENCY_GOAL_MS..=MAX_LATENCY_GOAL_MS).contains(&goal_ms) {
        Ok(())
    } else {
        Err(CostError::BadLatencyGoal { goal_ms })
    }
}

/// A latency goal written as text (a command-line value such as `0.75`), milliseconds: a
/// finite number in [[`MIN_LATENCY_GOAL_MS`], [`MAX_LATENCY_GOAL_MS`]], checked where it is
/// given even when no model will use it (an unconfigured queue ignores the goal).
///
/// # Errors
///
/// [`CostError::LatencyGoalNotANumber`] for text that is not a number;
/// [`CostError::BadLatencyGoal`] for NaN, an infinity or a number out of range.
pub fn parse_latency_goal_ms(text: &str) -> Result<f64, CostError> {
    let goal_ms: f64 = text
        .trim()
        .parse()
        .map_err(|_| CostError::LatencyGoalNotANumber {
            text: text.to_owned(),
        })?;
    check_latency_goal(goal_ms)?;
    Ok(goal_ms)
}

fn check_config(cfg: &CostConfig) -> Result<(), CostError> {
    check_latency_goal(cfg.latency_goal_ms)?;
    if cfg.io_groups == 0 || cfg.shards_in_group == 0 {
        return Err(CostError::BadGroups {
            io_groups: cfg.io_groups,
            shards_in_group: cfg.shards_in_group,
        });
    }
    Ok(())
}

/// Fallback for [`CostModel::unconfigured`] that cannot be reached; written out so the library
/// never panics.
fn unreachable_model() -> CostModel {
    CostModel {
        configured: false,
        req_count_rate: u64::MAX,
        blocks_count_rate: u64::MAX,
        write_req_mult: READ_BASE_COUNT,
        write_blocks_mult: READ_BASE_COUNT,
        rate_per_ms: CAPACITY_PER_MS,
        limit: (CAPACITY_PER_MS as f64 * DEFAULT_LATENCY_GOAL_MS) as u64,
        threshold: 1,
        per_tick_grab_threshold: (CAPACITY_PER_MS as f64 * DEFAULT_LATENCY_GOAL_MS) as u64,
        latency_goal_ms: DEFAULT_LATENCY_GOAL_MS,
        effective_latency_goal_ms: DEFAULT_LATENCY_GOAL_MS,
        max_read_len: REQUEST_LENGTH_LIMIT,
        max_write_len: REQUEST_LENGTH_LIMIT,
    }
}

/// Why a cost model could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CostError {
    /// One of the four rates is 0 (or, for [`CostModel::from_queue_rates`], a queue rate).
    #[error("{field} is 0; every rate must be at least 1")]
    ZeroRate {
        /// The io-properties key (`read_iops`, `read_bandwidth`, `write_iops`,
        /// `write_bandwidth`) or queue field (`req_count_rate`, `blocks_count_rate`).
        field: &'static str,
    },
    /// The rates are so low that a 512-byte request cannot be scheduled.
    #[error("{} limits too low to fit a 512-byte request: {detail}", .dir)]
    TooSlow {
        /// The direction that does not fit (the read side when the read bandwidth is too low).
        dir: Direction,
        /// What exactly is too small, with the numbers.
        detail: String,
    },
    /// The latency goal's text is not a number.
    #[error("`{text}` is not a number of milliseconds")]
    LatencyGoalNotANumber {
        /// The text as given.
        text: String,
    },
    /// The latency goal is not a finite number of milliseconds in the accepted range.
    #[error("io latency goal {goal_ms} ms is invalid; expected a number of milliseconds between {MIN_LATENCY_GOAL_MS:e} (one capacity unit) and {MAX_LATENCY_GOAL_MS} (one hour)")]
    BadLatencyGoal {
        /// The goal as given, milliseconds.
        goal_ms: f64,
    },
    /// Zero IO groups or zero shards per group.
    #[error("invalid IO grouping: {io_groups} IO group(s) with {shards_in_group} shard(s) each; both must be at least 1")]
    BadGroups {
        /// Number of IO groups as given.
        io_groups: u32,
        /// Shards per IO group as given.
        shards_in_group: u32,
    },
}
