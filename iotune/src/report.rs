//! The JSON report (`--report FILE`): one serde struct, written atomically after every phase
//! so an aborted run keeps what it measured.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use scheduler::engine::{EngineKind, JobResult, JobSpec, Pattern, SecondSample};
use scheduler::io_properties::DiskProperties;
use scheduler::topology::{Served, Topology};
use scheduler::Direction;
use serde::{Deserialize, Serialize};

use crate::plausibility::Implausible;
use crate::stats::{deviation, latency_distribution, Latency, LatencyPoint, Trend};

/// Everything a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// "iotune-rs".
    pub tool: String,
    /// Crate version.
    pub version: String,
    /// The command line, program first (absent in reports of older versions).
    #[serde(default)]
    pub command_line: Vec<String>,
    /// When the run started, RFC 3339, UTC, seconds.
    #[serde(default)]
    pub started: String,
    /// I/O engine used.
    pub engine: EngineKind,
    /// Shards (threads, one test file each).
    pub shards: usize,
    /// CPUs this process may use (its affinity mask).
    #[serde(default)]
    pub cpus: usize,
    /// Base duration, seconds.
    pub duration_s: f64,
    /// Where the run is.
    pub status: Status,
    /// Checks of the run as a whole that failed (e.g. more shards than CPUs); the per-disk
    /// ones are in each disk's `plausibility`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plausibility: Vec<Implausible>,
    /// One entry per measured filesystem.
    pub disks: Vec<DiskReport>,
}

/// Where a run is (the report is rewritten after every phase).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Measuring.
    Running,
    /// Every phase ran; the properties file was written (unless `--fs-check`).
    Complete,
    /// Stopped by a signal; nothing written.
    Interrupted,
    /// Stopped by an error; nothing written.
    Failed,
    /// A figure came from a cache and `--allow-cached` was not given; nothing written.
    Refused,
}

/// One filesystem's measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiskReport {
    /// The directory the test files were created in.
    pub evaluation_directory: PathBuf,
    /// Mount point written to io-properties.yaml.
    pub mountpoint: PathBuf,
    /// Device tree, block sizes, queue limits.
    pub topology: Topology,
    /// Pitfalls found (scheduler, merges, write cache, free space, ...).
    pub warnings: Vec<String>,
    /// The submission sanity check: context switches per write and the share of appending
    /// writes that would have blocked (null: threads engine).
    pub submission_check: Option<scheduler::engine::SubmissionCheck>,
    /// Free space in the evaluation directory before the run, bytes.
    pub free_bytes: u64,
    /// Each shard's test file size, bytes.
    pub file_size_per_shard: u64,
    /// Bytes this run wrote and later phases read from (sum over shards): reads never touch
    /// holes, which would measure the filesystem, not the disk.
    pub read_working_set_bytes: u64,
    /// Phases in the order they ran.
    pub phases: Vec<PhaseReport>,
    /// The figures written to io-properties.yaml, once known.
    pub results: Option<Results>,
    /// `--depth-sweep`: random IOPS and latency against in-flight depth, per direction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depth_sweeps: Vec<DepthSweep>,
    /// io-properties figures whose phase the disks did not serve (a cache did): they stop the
    /// properties file from being written unless `--allow-cached` is given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cached_figures: Vec<CachedFigure>,
    /// Figures no disk would produce, or that cannot be trusted (a collapsed phase, a CPU-bound
    /// shard, ...), each with what to do; recomputed after every phase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plausibility: Vec<Implausible>,
    /// `--mixed`: the read/write interference frontier and its verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mixed: Option<crate::mixed_model::MixedReport>,
    /// `--latency-target`: the latency-bounded random IOPS per direction, every search step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency_targets: Vec<crate::latency_model::LatencySearch>,
}

/// An io-properties figure that came from a cache, not from the disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedFigure {
    /// The io-properties key, e.g. "read_iops".
    pub figure: String,
    /// The phase that measured it, e.g. "random read 512".
    pub phase: String,
    /// `device_bytes / completed_bytes` of that phase.
    pub fraction: f64,
    /// `(device_requests + device_merges) / completed_requests` of that phase.
    pub request_fraction: f64,
}

/// Random IOPS against in-flight depth in one direction, and the knee.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DepthSweep {
    /// Read or write.
    pub direction: Direction,
    /// Bytes per request.
    pub request_size: u64,
    /// Shards that ran at once.
    pub shards: usize,
    /// One point per depth, in increasing order.
    pub points: Vec<DepthPoint>,
    /// Smallest depth per shard reaching 95% of the best IOPS.
    pub knee_in_flight_per_shard: usize,
    /// That depth times the shards: the concurrency the disk needs.
    pub knee_in_flight: usize,
}

/// One depth of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepthPoint {
    /// Requests in flight per shard.
    pub in_flight_per_shard: usize,
    /// Summed over shards, requests/s.
    pub iops: f64,
    /// Completion latency over all shards, microseconds.
    pub mean_us: f64,
    /// 99th percentile completion latency, microseconds.
    pub p99_us: f64,
    /// Little's law, IOPS x mean latency: the concurrency the disk actually held. Well below
    /// the depth submitted means requests waited outside the disk (submission, queue limits).
    pub littles_law_in_flight: f64,
}

/// A phase: its settings and what each shard measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseReport {
    /// e.g. "sequential write", "random read 4096".
    pub name: String,
    /// True when the phase's figures are not used (warm-up, candidates that lost).
    pub dropped: bool,
    /// Read or write.
    pub direction: Direction,
    /// Sequential or random.
    pub pattern: Pattern,
    /// Bytes per request.
    pub request_size: u64,
    /// Requests in flight per shard.
    pub in_flight_per_shard: usize,
    /// Shards that ran at once.
    pub shards: usize,
    /// Seconds dropped at the start.
    pub ramp_s: f64,
    /// Seconds measured.
    pub measure_s: f64,
    /// Bytes of file each shard's requests could touch.
    pub region_bytes_per_shard: u64,
    /// Sum over shards.
    pub total: Figures,
    /// Per shard.
    pub per_shard: Vec<ShardFigures>,
    /// Trend of the per-second totals across the measured window (`drift`: -0.08 means
    /// throughput fell 8% from the first to the last second; `drift_t`: that over its standard
    /// error, |t| >= 3 being a trend rather than noise).
    #[serde(flatten)]
    pub trend: Trend,
    /// Completion latency over all shards at percentiles from 0 to as many nines as the
    /// requests resolve (at most 99.99), then the maximum as 100.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency_distribution: Vec<LatencyPoint>,
    /// With `--sustained`: how the steady window was found (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sustained: Option<Sustained>,
    /// What each counted device (the leaves; a partition of a plain disk as itself) was sent in
    /// this phase's direction, ramp included (empty without a block device, e.g. on tmpfs).
    /// Other I/O on the disk meanwhile is counted too.
    pub device_requests: Vec<DeviceRequests>,
    /// Served by the disk: every request the phase completed (ramp included) against the
    /// bytes the devices above moved, and the verdict (`served`, `cached`: the figure came
    /// from a cache, `more`: other I/O or read-modify-write, `unverified` with a `reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served: Option<Served>,
    /// Completion latency of every shard's measured requests, nanoseconds (for percentiles
    /// other than those in `total.latency`; not in the JSON).
    #[serde(skip)]
    pub latency_ns: Option<hdrhistogram::Histogram<u64>>,
}

/// How a `--sustained` phase ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sustained {
    /// True when the last window drifted within the accuracy; false when `--sustained-max` ran
    /// out first (the figure is then the last window all the same).
    pub steady: bool,
    /// Seconds measured before the steady window (counted as ramp in `ramp_s`).
    pub settling_s: f64,
    /// Length of the window that gives the figure, seconds.
    pub window_s: f64,
}

/// Requests a leaf disk completed during a phase, from its sysfs `stat` counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRequests {
    /// Kernel name of the disk, e.g. "nvme0n1".
    pub device: String,
    /// Requests completed in the phase's direction.
    pub requests: u64,
    /// Bios merged into those requests by the block layer (each reached the device).
    pub merges: u64,
    /// Bytes they moved.
    pub bytes: u64,
    /// bytes / requests: equal to the request size when requests reached the disk whole,
    /// larger when the block layer merged them, smaller when they were split.
    pub average_request_bytes: u64,
}

/// Rates of a phase or a shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figures {
    /// Requests per second.
    pub iops: f64,
    /// Bytes per second.
    pub bandwidth: f64,
    /// Requests completed in the measured window.
    pub requests: u64,
    /// Population std / mean of per-second requests (largest shard's for the total).
    pub deviation: f64,
    /// Completion latency.
    pub latency: Latency,
}

/// One shard's figures, samples and CPU use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardFigures {
    /// Rates.
    #[serde(flatten)]
    pub figures: Figures,
    /// Completions per whole second of the measured window.
    pub samples: Vec<SecondSample>,
    /// CPU seconds (user + system) used by the shard.
    pub cpu_s: f64,
    /// Seconds the shard was ready to run but waited for a CPU (other work had it).
    #[serde(default)]
    pub runqueue_wait_s: f64,
    /// io_uring with registered file and buffers.
    pub registered_buffers: bool,
}

/// The io-properties figures and the random request sizes that measured them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// The entry written to io-properties.yaml (rates in operations/s and bytes/s, lengths in
    /// bytes), flattened: `read_iops`, `read_bandwidth`, ... sit beside the request sizes.
    #[serde(flatten)]
    pub properties: DiskProperties,
    /// Random read request size used, bytes.
    pub random_read_request_size: u64,
    /// Random write request size used, bytes.
    pub random_write_request_size: u64,
}

impl PhaseReport {
    /// Builds a phase entry from the jobs and their results.
    pub fn new(name: &str, dropped: bool, jobs: &[JobSpec], results: &[JobResult]) -> PhaseReport {
        let job = &jobs[0];
        let per_shard: Vec<ShardFigures> = results
            .iter()
            .map(|r| ShardFigures {
                figures: Figures {
                    iops: r.iops(),
                    bandwidth: r.bandwidth(),
                    requests: r.requests,
                    deviation: deviation(&r.samples.iter().map(|s| s.requests).collect::<Vec<_>>()),
                    latency: Latency::from_ns(&r.latency_ns),
                },
                samples: r.samples.clone(),
                cpu_s: r.cpu.as_secs_f64(),
                runqueue_wait_s: r.runqueue_wait.as_secs_f64(),
                registered_buffers: r.registered,
            })
            .collect();
        let mut all = results[0].latency_ns.clone();
        for r in &results[1..] {
            let _ = all.add(&r.latency_ns);
        }
        let total = Figures {
            iops: per_shard.iter().map(|s| s.figures.iops).sum(),
            bandwidth: per_shard.iter().map(|s| s.figures.bandwidth).sum(),
            requests: per_shard.iter().map(|s| s.figures.requests).sum(),
            deviation: phase_deviation(job.pattern, &per_shard, results),
            latency: Latency::from_ns(&all),
        };
        let latency_distribution = latency_distribution(&all);
        let trend = Trend::of(&per_second_totals(results));
        PhaseReport {
            name: name.to_string(),
            dropped,
            direction: job.direction,
            pattern: job.pattern,
            request_size: job.request_size,
            in_flight_per_shard: job.in_flight,
            shards: jobs.len(),
            ramp_s: job.ramp.as_secs_f64(),
            measure_s: job.measure.as_secs_f64(),
            region_bytes_per_shard: job.region_len,
            total,
            trend,
            per_shard,
            latency_distribution,
            sustained: None,
            device_requests: Vec::new(),
            served: None,
            latency_ns: Some(all),
        }
    }
}

/// Requests per second summed over shards, for the seconds every shard measured.
fn per_second_totals(results: &[JobResult]) -> Vec<u64> {
    let seconds = results.iter().map(|r| r.samples.len()).min().unwrap_or(0);
    (0..seconds)
        .map(|i| results.iter().map(|r| r.samples[i].requests).sum())
        .collect()
}

/// The phase's deviation: for sequential phases, of the per-second totals over all shards
/// (shards sharing one disk trade throughput second by second while the sum stays steady);
/// for random phases, the largest shard's, as the reference reports it.
fn phase_deviation(pattern: Pattern, per_shard: &[ShardFigures], results: &[JobResult]) -> f64 {
    match pattern {
        Pattern::Sequential => deviation(&per_second_totals(results)),
        Pattern::Random => per_shard
            .iter()
            .map(|s| s.figures.deviation)
            .fold(0.0, f64::max),
    }
}

/// Writes `bytes` to `path` atomically (the library's one writer: temp file, fsync, rename,
/// directory fsync, mode kept). A failure leaves neither a partial file nor the temp file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    scheduler::atomic_file::write_atomically(path, bytes)?;
    Ok(())
}

impl Report {
    /// Reads a report written by [`Report::save`].
    pub fn load(path: &Path) -> Result<Report> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the report {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not an iotune report", path.display()))
    }

    /// Writes the report as pretty JSON to `path` (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self).context("cannot serialise the report")?;
        bytes.push(b'\n');
        write_atomically(path, &bytes)
    }
}
