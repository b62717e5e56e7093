//! The `--mixed` frontier's report types (issue 10), in the library so the report and the
//! page can read them; the measurement is the binary's `mixed` module.

use scheduler::Direction;
use serde::{Deserialize, Serialize};

/// The solo figures the frontier is judged against (the four corners' random read IOPS and
/// sequential write bandwidth) and the requests the points use.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Corners {
    /// Random read IOPS alone, requests/s (R).
    pub read_iops: f64,
    /// Sequential write bandwidth alone, bytes/s (W).
    pub write_bandwidth: f64,
    /// Random read request size, bytes.
    pub read_request_size: u64,
    /// Sequential write request size, bytes.
    pub write_request_size: u64,
}

/// One point of the frontier.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MixedPoint {
    /// The direction held at a paced rate (the other runs closed loop, flat out).
    pub paced: Direction,
    /// Its pace as a fraction of its solo rate (0.25, 0.5, 0.75).
    pub pace_fraction: f64,
    /// The rate it was paced at: read IOPS, or write bytes/s (it may achieve less).
    pub paced_target: f64,
    /// Random reads achieved, requests/s.
    pub read_iops: f64,
    /// Sequential writes achieved, bytes/s.
    pub write_bandwidth: f64,
    /// Sequential writes achieved, requests/s.
    pub write_iops: f64,
    /// What the linear model predicts for the free direction given the paced one's achieved
    /// rate: R (1 - w/W) read IOPS, or W (1 - r/R) write bytes/s.
    pub predicted: f64,
    /// The free direction's achieved rate, in the same unit as `predicted`.
    pub achieved: f64,
    /// `achieved / predicted` (1 = on the model's line).
    pub vs_model: f64,
    /// The free direction's achieved rate over its solo rate.
    pub free_kept: f64,
    /// r/R + w/W: 1 on the model's line, below 1 = worse than linear.
    pub load: f64,
    /// 99th percentile read completion latency, microseconds.
    pub read_p99_us: f64,
    /// 99th percentile write completion latency, microseconds.
    pub write_p99_us: f64,
}

/// The frontier's verdict on the linear model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every point within `--accuracy` of the model.
    Linear,
    /// No point below the model, some above it by more than `--accuracy`, but a direction
    /// loses more than 10% under the other: the model is safe and conservative.
    BetterThanLinear,
    /// Each direction keeps at least 90% of its solo rate under the other: the model under-uses
    /// this disk; `duplex: true` fits it.
    DuplexLike,
    /// Some point below the model by more than `--accuracy`: `rate_factor` makes it safe.
    WorseThanLinear,
}

/// The `mixed` section of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MixedReport {
    /// The solo figures and request sizes.
    pub corners: Corners,
    /// Measured time per point (after a ramp of `ramp_s`), seconds.
    pub point_measure_s: f64,
    /// Dropped start of each point, seconds.
    pub ramp_s: f64,
    /// The six points: writes paced, then reads paced.
    pub points: Vec<MixedPoint>,
    /// The verdict.
    pub verdict: Verdict,
    /// Smallest `load` over the points.
    pub min_load: f64,
    /// Smallest `free_kept` over the points.
    pub min_free_kept: f64,
    /// The `rate_factor` that makes the model safe at every measured point (None: 1 fits).
    pub rate_factor: Option<f64>,
    /// Whether `duplex: true` fits the disk.
    pub duplex: bool,
    /// The verdict with its figures, as printed.
    pub summary: String,
    /// Whether `--write-mixed-model` wrote `duplex` / `rate_factor` into io-properties.
    pub written: bool,
    /// Wall time the frontier took, seconds.
    pub elapsed_s: f64,
}
