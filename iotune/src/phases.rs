//! The calibration procedure for one filesystem: warm-up, sequential write and read
//! bandwidth, random write and read IOPS, and the optional saturation-length and
//! physical-block-size probes. Follows the reference iotune (shared/reference/iotune.md) with
//! its defects fixed: all shards write at once, reads only touch data this run wrote, random
//! requests default to the physical block size, write buffers are incompressible.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use scheduler::engine::{self, EngineKind, JobResult, JobSpec, Pattern, ShardPlan, TestFile};
use scheduler::io_properties::DiskProperties;
use scheduler::topology::served::{self, Coverage, Served, ServedInput, Verdict};
use scheduler::topology::{CounterSnapshot, Topology};
use scheduler::Direction;

use crate::options::Options;
use crate::progress::Progress;
use crate::report::{
    CachedFigure, DepthPoint, DepthSweep, DeviceRequests, DiskReport, PhaseReport, Results,
    Sustained,
};
use crate::steady::SteadyMonitor;

const KIB: u64 = 1024;
const MIB: f64 = 1024.0 * 1024.0;

/// In-flight defaults derived from the topology (reference: 4·L sequential, min(128, Q/S) random).
#[derive(Debug, Clone, Copy)]
pub struct Depths {
    pub sequential_write: usize,
    pub sequential_read: usize,
    pub random_write: usize,
    pub random_read: usize,
}

impl Depths {
    /// `in_flight_bound` is Q (None when sysfs did not say; the reference then guesses 128).
    pub fn derive(
        opts: &Options,
        leaves: usize,
        in_flight_bound: Option<u64>,
        shards: usize,
    ) -> Depths {
        let seq = 4 * leaves.max(1);
        let random = match opts.force_io_depth {
            Some(q) => (q as usize / shards).clamp(1, scheduler::engine::MAX_IN_FLIGHT),
            None => (in_flight_bound.unwrap_or(128) as usize / shards).clamp(1, 128),
        };
        let d = opts.depths;
        Depths {
            sequential_write: d.sequential_write.unwrap_or(seq),
            sequential_read: d.sequential_read.unwrap_or(seq),
            random_write: d.random_write.unwrap_or(random),
            random_read: d.random_read.unwrap_or(random),
        }
    }
}

/// One filesystem being calibrated.
pub struct Calibration<'a> {
    pub opts: &'a Options,
    pub kind: EngineKind,
    pub stop: &'a AtomicBool,
    pub progress: &'a Progress,
    pub topology: &'a Topology,
    pub files: Vec<TestFile>,
    pub depths: Depths,
    /// Per shard: one past the last byte written by this run (reads stay below it).
    pub written_end: Vec<u64>,
    pub file_size: u64,
    /// The "figures are unverified" line was printed (once per filesystem).
    said_unverified: bool,
}

/// A phase's outcome: the summed figures, the largest per-shard deviation, and whether the
/// disks served it.
pub struct Outcome {
    pub iops: f64,
    pub bandwidth: f64,
    pub deviation: f64,
    pub served: Served,
}

impl Outcome {
    /// True when the disks served clearly less than the phase completed: a cache did.
    pub fn cached(&self) -> bool {
        self.served.verdict == Verdict::Cached
    }

    /// The io-properties `figure` measured by phase `phase`, when a cache served it.
    pub fn cached_figure(&self, figure: &str, phase: &str) -> Option<CachedFigure> {
        cached_figure(&self.served, figure, phase)
    }

    /// True when `self` should replace `best` as the figure of a direction: a served figure
    /// beats a cached one, then the higher IOPS wins.
    pub fn beats(&self, best: &Outcome) -> bool {
        match (self.cached(), best.cached()) {
            (false, true) => true,
            (true, false) => false,
            _ => self.iops > best.iops,
        }
    }
}

/// The io-properties `figure` measured by phase `phase`, when `served` says a cache served it.
pub fn cached_figure(served: &Served, figure: &str, phase: &str) -> Option<CachedFigure> {
    (served.verdict == Verdict::Cached).then(|| CachedFigure {
        figure: figure.to_owned(),
        phase: phase.to_owned(),
        fraction: served.fraction.unwrap_or(0.0),
        request_fraction: served.request_fraction.unwrap_or(0.0),
    })
}

impl<'a> Calibration<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        opts: &'a Options,
        kind: EngineKind,
        stop: &'a AtomicBool,
        progress: &'a Progress,
        topology: &'a Topology,
        files: Vec<TestFile>,
        depths: Depths,
        file_size: u64,
    ) -> Self {
        let n = files.len();
        Calibration {
            opts,
            kind,
            stop,
            progress,
            topology,
            files,
            depths,
            written_end: vec![0; n],
            file_size,
            said_unverified: false,
        }
    }

    fn run(
        &mut self,
        name: &str,
        shards: usize,
        job: impl Fn(usize) -> JobSpec,
        dropped: bool,
        report: &mut DiskReport,
    ) -> Result<Outcome> {
        self.run_announcing(name, shards, job, dropped, report, None)
    }

    /// Runs a phase; `announce` is printed on stdout when the ramp ends (the reference's
    /// "Starting Evaluation" line after the warm-up).
    fn run_announcing(
        &mut self,
        name: &str,
        shards: usize,
        job: impl Fn(usize) -> JobSpec,
        dropped: bool,
        report: &mut DiskReport,
        announce: Option<&str>,
    ) -> Result<Outcome> {
        let mut jobs: Vec<JobSpec> = (0..shards).map(&job).collect();
        // --sustained: measure up to the bound, ending once the last window is steady.
        let mut monitor = self.opts.sustained_max.filter(|_| !dropped).map(|max| {
            let window = (jobs[0].measure.as_secs_f64().ceil() as usize).max(5);
            for j in &mut jobs {
                j.measure = max.max(Duration::from_secs(window as u64));
            }
            SteadyMonitor::new(jobs[0].ramp, window, self.opts.accuracy / 100.0)
        });
        let plans: Vec<ShardPlan<'_>> = jobs
            .iter()
            .zip(&self.files)
            .map(|(j, f)| ShardPlan {
                file: f,
                job: j.clone(),
            })
            .collect();
        let total = jobs[0].ramp + jobs[0].measure;
        let mut bar = self.progress.phase(name, total);
        let ramp = jobs[0].ramp;
        let mut pending = announce;
        let before = self.device_counters();
        let mut results: Vec<JobResult> =
            engine::run_shards_until(self.kind, &plans, self.stop, &mut |t, completed| {
                bar.tick(t);
                if t >= ramp {
                    if let Some(line) = pending.take() {
                        println!("{line}");
                    }
                }
                monitor.as_mut().is_some_and(|m| m.tick(t, completed))
            })
            .with_context(|| format!("{name} phase failed"))?;
        if let Some(line) = pending {
            println!("{line}");
        }
        for (i, r) in results.iter().enumerate() {
            self.written_end[i] = self.written_end[i].max(r.written_end);
        }
        let sustained = monitor.map(|m| {
            // The figure is the last window; what came before it counts as ramp.
            let measured = results.iter().map(|r| r.samples.len()).min().unwrap_or(0);
            for r in &mut results {
                r.keep_last(m.window());
            }
            Sustained {
                steady: m.reached_after().is_some(),
                settling_s: m
                    .reached_after()
                    .unwrap_or(measured.saturating_sub(m.window()))
                    as f64,
                window_s: m.window() as f64,
            }
        });
        let mut phase = PhaseReport::new(name, dropped, &jobs, &results);
        let (device_requests, unreadable) = self.device_requests(&before, jobs[0].direction);
        phase.device_requests = device_requests;
        let served = self.served(&jobs, &results, &phase.device_requests, &unreadable);
        if let Some(s) = &sustained {
            phase.ramp_s += s.settling_s;
            phase.measure_s = results[0].measured.as_secs_f64();
            if s.steady {
                eprintln!(
                    "iotune: {name}: steady after {:.0} s of measuring; the figure is the last {:.0} s",
                    s.settling_s, s.window_s
                );
            } else {
                let w = format!(
                    "{name}: no steady state within --sustained-max ({:.0} s measured); the figure is the last {:.0} s, which still drift beyond --accuracy",
                    s.settling_s + s.window_s,
                    s.window_s
                );
                eprintln!("WARN: {w}");
                report.warnings.push(w);
            }
        }
        phase.sustained = sustained;
        let out = Outcome {
            iops: phase.total.iops,
            bandwidth: phase.total.bandwidth,
            deviation: phase.total.deviation,
            served: served.clone(),
        };
        bar.finish(&format!(
            "{name}: {shards} shard(s) x {} in flight x {} B, {:.1} s measured: {:.0} MiB/s, {:.0} IOPS, p99 {:.0} us, deviation {:.1}%",
            jobs[0].in_flight,
            jobs[0].request_size,
            phase.measure_s,
            out.bandwidth / MIB,
            out.iops,
            phase.total.latency.p99_us,
            out.deviation * 100.0
        ));
        if let Some(w) = request_shape_warning(&phase, self.topology) {
            eprintln!("WARN: {w}");
            report.warnings.push(w);
        }
        if let Some(w) = served.warning(name) {
            eprintln!("WARN: {w}");
            report.warnings.push(w);
        } else if served.verdict == Verdict::Unverified {
            self.say_unverified(name, &served);
        }
        phase.served = Some(served);
        let drift = phase.trend.drift;
        if !dropped && phase.trend.unsteady(self.opts.accuracy / 100.0) {
            let w = format!(
                "{name}: throughput {} {:.1}% across the {:.0} s measured (per-second trend): the disk is not in a steady state, so this figure is not what it sustains; measure longer (--duration)",
                if drift < 0.0 { "fell" } else { "rose" },
                drift.abs() * 100.0,
                phase.measure_s
            );
            eprintln!("WARN: {w}");
            report.warnings.push(w);
        }
        report.phases.push(phase);
        Ok(out)
    }

    /// Counters of every counted device ([`Topology::counted_devices`]: the leaves, a partition
    /// of a plain disk as itself; none without a block device).
    pub(crate) fn device_counters(&self) -> CounterSnapshot {
        CounterSnapshot::read(Path::new("/sys"), &self.topology.counted_devices())
    }

    /// What each counted device served in `direction` since `before`, and the devices whose
    /// counters could not be read before or after.
    pub(crate) fn device_requests(
        &self,
        before: &CounterSnapshot,
        direction: Direction,
    ) -> (Vec<DeviceRequests>, Vec<String>) {
        let (deltas, unreadable) = self
            .device_counters()
            .since(before, direction == Direction::Write);
        let out = deltas
            .into_iter()
            .map(|(device, d)| DeviceRequests {
                device,
                requests: d.requests,
                merges: d.merges,
                bytes: d.bytes,
                average_request_bytes: d.bytes.checked_div(d.requests).unwrap_or(0),
            })
            .collect();
        (out, unreadable)
    }

    /// The served-by-the-disk verdict of a phase: every request it completed (ramp included,
    /// as the counters cover the whole phase) against the bytes the counted devices moved.
    /// Requests in flight when the window closed complete uncounted; they are allowed for.
    fn served(
        &self,
        jobs: &[JobSpec],
        results: &[JobResult],
        devices: &[DeviceRequests],
        unreadable: &[String],
    ) -> Served {
        let job = &jobs[0];
        let completed_requests: u64 = results.iter().map(|r| r.requests + r.ramp_requests).sum();
        let in_flight: u64 = jobs.iter().map(|j| j.in_flight as u64).sum();
        let input = ServedInput {
            write: job.direction == Direction::Write,
            completed_requests,
            completed_bytes: completed_requests * job.request_size,
            uncounted_bytes: in_flight * job.request_size,
            device_requests: devices.iter().map(|d| d.requests).sum(),
            device_merges: devices.iter().map(|d| d.merges).sum(),
            device_bytes: devices.iter().map(|d| d.bytes).sum(),
            write_copies: self.topology.write_copies(),
        };
        served::judge(&input, &self.topology.coverage.with_unreadable(unreadable))
    }

    /// The served-by-the-disk check of one direction of a phase run outside
    /// [`run`](Self::run) (a mixed point runs both directions at once): fills the phase's
    /// device counts and verdict, and says what run does when the verdict is not `served`.
    pub(crate) fn check_served(
        &mut self,
        before: &CounterSnapshot,
        jobs: &[JobSpec],
        results: &[JobResult],
        phase: &mut PhaseReport,
        report: &mut DiskReport,
    ) -> Served {
        let (devices, unreadable) = self.device_requests(before, jobs[0].direction);
        let served = self.served(jobs, results, &devices, &unreadable);
        phase.device_requests = devices;
        if let Some(w) = served.warning(&phase.name) {
            eprintln!("WARN: {w}");
            report.warnings.push(w);
        } else if served.verdict == Verdict::Unverified {
            self.say_unverified(&phase.name.clone(), &served);
        }
        phase.served = Some(served.clone());
        served
    }

    /// Says why a phase could not be checked: once per filesystem when no device was found,
    /// every time when only some were (the numbers then differ per phase).
    fn say_unverified(&mut self, name: &str, served: &Served) {
        let reason = served.reason.as_deref().unwrap_or("unknown");
        match &self.topology.coverage {
            Coverage::None { .. } if self.said_unverified => {}
            Coverage::None { .. } => {
                eprintln!(
                    "WARN: {}: {reason}: the served-by-the-disk check cannot run, so the \
                     figures are unverified (a cache may have served them)",
                    self.topology.mountpoint.display()
                );
                self.said_unverified = true;
            }
            _ if served.completed_bytes == 0 => {}
            _ => eprintln!("WARN: {name}: figure unverified: {reason}"),
        }
    }

    fn shards(&self) -> usize {
        self.files.len()
    }

    /// Sequential write bandwidth, all shards at once. The warm-up, max(3 s, 5% of D), is the
    /// dropped ramp of the same run: no idle gap between them lets a device (or a throttle)
    /// bank credit that would flatter the first measured seconds.
    pub fn sequential_write(&mut self, report: &mut DiskReport) -> Result<Outcome> {
        let (size, depth, window, file) = (
            self.opts.sequential_write_size,
            self.depths.sequential_write,
            self.opts.sequential_write_window(),
            self.file_size,
        );
        let warmup = self.opts.warmup();
        self.run_announcing(
            "sequential write",
            self.shards(),
            |_| seq_job(Direction::Write, size, depth, file, 0, warmup, window),
            false,
            report,
            Some("Starting Evaluation. This may take a while..."),
        )
    }

    fn region_check(&self, size: u64) -> Result<()> {
        if let Some((i, &end)) = self.written_end.iter().enumerate().find(|(_, &e)| e < size) {
            bail!("shard {i} wrote only {end} bytes, less than one {size}-byte request: raise --duration or --file-size");
        }
        Ok(())
    }

    /// Sequential read bandwidth over what this run wrote, all shards at once.
    pub fn sequential_read(&mut self, report: &mut DiskReport) -> Result<Outcome> {
        let (size, depth) = (self.opts.sequential_read_size, self.depths.sequential_read);
        self.region_check(size)?;
        let (ramp, window, ends) = (
            self.opts.ramp,
            self.opts.short_window(),
            self.written_end.clone(),
        );
        self.run(
            "sequential read",
            self.shards(),
            |i| seq_job(Direction::Read, size, depth, ends[i], 0, ramp, window),
            false,
            report,
        )
    }

    /// Random IOPS in one direction at `size`, all shards, inside the written region.
    pub fn random(
        &mut self,
        direction: Direction,
        size: u64,
        name: &str,
        dropped: bool,
        report: &mut DiskReport,
    ) -> Result<Outcome> {
        self.region_check(size)?;
        let depth = match direction {
            Direction::Read => self.depths.random_read,
            Direction::Write => self.depths.random_write,
        };
        let (ramp, window, ends) = (
            self.opts.ramp,
            self.opts.short_window(),
            self.written_end.clone(),
        );
        self.run(
            name,
            self.shards(),
            |i| random_job(direction, size, depth, ends[i], ramp, window),
            dropped,
            report,
        )
    }

    /// Random-write IOPS at 512..8192-byte requests (from the size the filesystem does directly
    /// up, see [`Topology::direct_io_alignment`]): the first size whose successor gains no more
    /// than 5% is the write size that avoids read-modify-write. Also returns whether any probe
    /// was served by a cache (the figure is then not the disk's).
    pub fn detect_physical_block_size(
        &mut self,
        report: &mut DiskReport,
    ) -> Result<(u64, Option<CachedFigure>)> {
        let floor = self.topology.direct_io_alignment();
        let sizes: Vec<u64> = [512, 1024, 2048, 4096, 8192]
            .into_iter()
            .filter(|&s| s >= floor)
            .collect();
        let sizes = if sizes.is_empty() { vec![floor] } else { sizes };
        let mut iops = Vec::new();
        let mut cached = None;
        for &s in &sizes {
            let name = format!("block size probe {s}");
            let o = self.random(Direction::Write, s, &name, true, report)?;
            iops.push(o.iops);
            if cached.is_none() {
                cached = o.cached_figure("physical_block_size", &name);
            }
        }
        Ok((pick_block_size(&sizes, &iops), cached))
    }

    /// Smallest request size (halving from 512 KiB, not below what the filesystem does directly)
    /// whose bandwidth on one shard stays within the deviation of the bandwidth at the
    /// sequential size; a probe a cache served ends the search. Also returns whether the
    /// sequential-size base was served by a cache (the figure is then not the disk's).
    pub fn saturation_length(
        &mut self,
        direction: Direction,
        report: &mut DiskReport,
    ) -> Result<(u64, Option<CachedFigure>)> {
        let (size, depth) = match direction {
            Direction::Read => (self.opts.sequential_read_size, self.depths.sequential_read),
            Direction::Write => (
                self.opts.sequential_write_size,
                self.depths.sequential_write,
            ),
        };
        self.region_check(size)?;
        let ramp = self.opts.ramp.min(Duration::from_secs(1));
        let window = self.opts.duration.mul_f64(0.05).max(Duration::from_secs(1));
        let end = self.written_end[0];
        let dir_name = direction.name();
        let job = |s: u64| move |_| seq_job(direction, s, depth, end, 0, ramp, window);
        let base = self.run(
            &format!("saturation {dir_name} {size}"),
            1,
            job(size),
            true,
            report,
        )?;
        let floor = base.bandwidth * (1.0 - base.deviation.max(self.opts.accuracy / 100.0));
        let mut best = size;
        let mut len = (512 * KIB).min(size / 2);
        while len >= self.topology.direct_io_alignment() {
            let o = self.run(
                &format!("saturation {dir_name} {len}"),
                1,
                job(len),
                true,
                report,
            )?;
            if o.bandwidth < floor || o.cached() {
                break;
            }
            best = len;
            len /= 2;
        }
        let figure = match direction {
            Direction::Read => "read_saturation_length",
            Direction::Write => "write_saturation_length",
        };
        let cached = base.cached_figure(figure, &format!("saturation {dir_name} {size}"));
        Ok((best, cached))
    }

    /// Random IOPS at in-flight depths 1, 2, 4, .. up to twice the random depth per shard (all
    /// shards; shorter windows, as the saturation probe), and the knee of the curve.
    pub fn depth_sweep(
        &mut self,
        direction: Direction,
        size: u64,
        report: &mut DiskReport,
    ) -> Result<DepthSweep> {
        self.region_check(size)?;
        let top = 2 * match direction {
            Direction::Read => self.depths.random_read,
            Direction::Write => self.depths.random_write,
        };
        let ramp = self.opts.ramp.min(Duration::from_secs(1));
        let window = self.opts.duration.mul_f64(0.05).max(Duration::from_secs(1));
        let ends = self.written_end.clone();
        let dir_name = direction.name();
        let mut points = Vec::new();
        let mut depth = 1;
        while depth <= top.min(scheduler::engine::MAX_IN_FLIGHT) {
            self.run(
                &format!("depth sweep {dir_name} {size} x {depth}"),
                self.shards(),
                |i| random_job(direction, size, depth, ends[i], ramp, window),
                true,
                report,
            )?;
            let phase = report.phases.last().expect("just run");
            let (iops, lat) = (phase.total.iops, &phase.total.latency);
            points.push(DepthPoint {
                in_flight_per_shard: depth,
                iops,
                mean_us: lat.mean_us,
                p99_us: lat.p99_us,
                littles_law_in_flight: iops * lat.mean_us / 1e6,
            });
            depth *= 2;
        }
        let knee = knee(&points);
        Ok(DepthSweep {
            direction,
            request_size: size,
            shards: self.shards(),
            points,
            knee_in_flight_per_shard: knee,
            knee_in_flight: knee * self.shards(),
        })
    }

    /// Random IOPS in one direction at `size` with `depth` in flight per shard, all shards,
    /// a `ramp` then `window` measured (a dropped phase, for searches like --latency-target).
    #[allow(clippy::too_many_arguments)]
    pub fn random_at_depth(
        &mut self,
        direction: Direction,
        size: u64,
        depth: usize,
        ramp: Duration,
        window: Duration,
        name: &str,
        report: &mut DiskReport,
    ) -> Result<Outcome> {
        self.region_check(size)?;
        let ends = self.written_end.clone();
        self.run(
            name,
            self.shards(),
            |i| random_job(direction, size, depth, ends[i], ramp, window),
            true,
            report,
        )
    }

    /// Bytes of written data summed over shards.
    pub fn working_set(&self) -> u64 {
        self.written_end.iter().sum()
    }
}

fn seq_job(
    direction: Direction,
    size: u64,
    depth: usize,
    region: u64,
    start: u64,
    ramp: Duration,
    measure: Duration,
) -> JobSpec {
    JobSpec {
        direction,
        pattern: Pattern::Sequential,
        request_size: size,
        in_flight: depth,
        region_start: 0,
        region_len: region,
        sequential_start: start,
        ramp,
        measure,
        rate: None,
    }
}

fn random_job(
    direction: Direction,
    size: u64,
    depth: usize,
    region: u64,
    ramp: Duration,
    measure: Duration,
) -> JobSpec {
    JobSpec {
        pattern: Pattern::Random,
        ..seq_job(direction, size, depth, region, 0, ramp, measure)
    }
}

/// The knee of an IOPS-against-depth curve: the smallest depth reaching 95% of the best IOPS
/// (beyond it, by Little's law, more requests in flight only lengthen the queue). 1 when empty.
pub fn knee(points: &[DepthPoint]) -> usize {
    let best = points.iter().map(|p| p.iops).fold(0.0, f64::max);
    points
        .iter()
        .find(|p| p.iops >= 0.95 * best)
        .map_or(1, |p| p.in_flight_per_shard)
}

/// The first size whose successor gains no more than 5% IOPS; the last size if all gain.
pub fn pick_block_size(sizes: &[u64], iops: &[f64]) -> u64 {
    for i in 0..sizes.len().saturating_sub(1) {
        if iops[i + 1] <= iops[i] * 1.05 {
            return sizes[i];
        }
    }
    sizes.last().copied().unwrap_or(4096)
}

/// Formats the reference's console line: "… 1683 MiB/s (deviation 5%)" (suffix only above
/// the accuracy).
pub fn with_deviation(value: String, deviation: f64, accuracy_pct: f64) -> String {
    let pct = (deviation * 100.0).round();
    if pct > accuracy_pct {
        format!("{value} (deviation {pct:.0}%)")
    } else {
        value
    }
}

/// Rounds a measured rate to the integer written in io-properties (at least 1).
pub fn as_rate(v: f64) -> u64 {
    (v.round() as u64).max(1)
}

/// The io-properties entry of `mountpoint` from the four corners' outcomes (no optional keys)
/// and the random request sizes that measured them.
pub fn results(mountpoint: &Path, corners: &Corners) -> Results {
    Results {
        properties: DiskProperties::new(
            mountpoint,
            as_rate(corners.random_read.0.iops),
            as_rate(corners.sequential_read.bandwidth),
            as_rate(corners.random_write.0.iops),
            as_rate(corners.sequential_write.bandwidth),
        ),
        random_read_request_size: corners.random_read.1,
        random_write_request_size: corners.random_write.1,
    }
}

/// The four phases whose figures io-properties holds.
pub struct Corners {
    /// Sequential write: `write_bandwidth`.
    pub sequential_write: Outcome,
    /// Sequential read: `read_bandwidth`.
    pub sequential_read: Outcome,
    /// Random write and its request size, bytes: `write_iops`.
    pub random_write: (Outcome, u64),
    /// Random read and its request size, bytes: `read_iops`.
    pub random_read: (Outcome, u64),
}

/// A warning when a phase's requests did not reach the disk at the size it claims to measure:
/// merged (average more than 10% above the request size: the block layer joined adjacent
/// requests, `nomerges` is not 2) or, on a single disk, split (more than 10% below: the
/// device's `max_sectors_kb` or segment limits, or other I/O on the disk meanwhile). With
/// several leaf disks, a striped device splits requests by design, so only merges are reported.
fn request_shape_warning(phase: &PhaseReport, topology: &Topology) -> Option<String> {
    let size = phase.request_size as f64;
    let single = phase.device_requests.len() == 1;
    let d = phase.device_requests.iter().find(|d| {
        // Too few requests to judge (the phase barely ran, or the disk is not ours).
        let avg = d.average_request_bytes as f64;
        d.requests >= 100 && (avg > size * 1.1 || (single && avg < size * 0.9))
    })?;
    let avg = d.average_request_bytes;
    // Every merged bio is counted: without merges, larger requests came from above the block
    // layer (a filesystem reading or writing whole blocks through its page cache).
    let merged = d.merges * 10 >= d.requests;
    let how = if avg as f64 > size && !merged && topology.fs_block_size > phase.request_size {
        format!(
            "enlarged above the block layer, with {} merges: the filesystem sent whole blocks \
             ({} bytes) instead of the requests (its page cache, or read-modify-write)",
            d.merges, topology.fs_block_size
        )
    } else if avg as f64 > size && !merged {
        format!(
            "larger requests, with only {} merges: other I/O shared the disk meanwhile",
            d.merges
        )
    } else if avg as f64 > size {
        let nomerges = topology
            .counted_devices()
            .iter()
            .find(|l| l.name == d.device)
            .and_then(|l| l.queue.nomerges)
            .map_or("unknown".to_string(), |n| n.to_string());
        format!(
            "merged by the block layer ({} merges; nomerges is {nomerges}; 2 disables merging)",
            d.merges
        )
    } else {
        "split on the way (the device's max_sectors_kb or segment limits), or other I/O shared the disk".to_string()
    };
    Some(format!(
        "{}: {} B requests reached {} as {avg} B on average ({} requests): {how}; the figure is for those",
        phase.name, phase.request_size, d.device, d.requests
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(depth: usize, iops: f64) -> DepthPoint {
        DepthPoint {
            in_flight_per_shard: depth,
            iops,
            mean_us: depth as f64 * 1e6 / iops,
            p99_us: 0.0,
            littles_law_in_flight: depth as f64,
        }
    }

    #[test]
    fn knee_is_the_first_depth_near_the_best() {
        let curve = [
            (1, 10e3),
            (2, 20e3),
            (4, 38e3),
            (8, 61e3),
            (16, 79e3),
            (32, 82e3),
            (64, 81e3),
        ];
        let pts: Vec<_> = curve.iter().map(|&(d, i)| point(d, i)).collect();
        assert_eq!(
            knee(&pts),
            16,
            "79k is within 5% of the best 82k; 61k is not"
        );
        let flat: Vec<_> = [1, 2, 4].iter().map(|&d| point(d, 5e3)).collect();
        assert_eq!(knee(&flat), 1, "a disk that needs no concurrency");
        assert_eq!(knee(&[]), 1);
    }

    #[test]
    fn block_size_pick() {
        let sizes = [512, 1024, 2048, 4096, 8192];
        // RMW below 4 KiB: IOPS jump at 4096, then flat.
        assert_eq!(
            pick_block_size(&sizes, &[10e3, 11e3, 12e3, 40e3, 39e3]),
            4096
        );
        // Honest 512-byte device: flat from the start.
        assert_eq!(
            pick_block_size(&sizes, &[50e3, 49e3, 48e3, 45e3, 40e3]),
            512
        );
        assert_eq!(pick_block_size(&[4096], &[1.0]), 4096);
    }

    /// An outcome of `iops` whose phase the disks served (`device_bytes` of 1000 completed).
    fn outcome(iops: f64, device_bytes: u64) -> Outcome {
        let input = ServedInput {
            write: false,
            completed_requests: 1000,
            completed_bytes: 1000,
            uncounted_bytes: 0,
            device_requests: 1000,
            device_merges: 0,
            device_bytes,
            write_copies: 1,
        };
        Outcome {
            iops,
            bandwidth: 0.0,
            deviation: 0.0,
            served: served::judge(&input, &Coverage::Complete),
        }
    }

    #[test]
    fn a_served_candidate_beats_a_faster_cached_one() {
        let (served, cached) = (outcome(80e3, 1000), outcome(2.3e6, 100));
        assert!(cached.cached() && !served.cached());
        assert!(served.beats(&cached));
        assert!(!cached.beats(&served));
        assert!(outcome(90e3, 1000).beats(&served), "then the higher IOPS");
        assert!(outcome(3e6, 100).beats(&cached));
        let figure = cached
            .cached_figure("read_iops", "random read 512")
            .unwrap();
        assert_eq!(
            (figure.figure.as_str(), figure.phase.as_str()),
            ("read_iops", "random read 512")
        );
        assert!((figure.fraction - 0.1).abs() < 1e-12);
        assert!(served
            .cached_figure("read_iops", "random read 4096")
            .is_none());
    }

    #[test]
    fn deviation_suffix() {
        assert_eq!(
            with_deviation("1683 MiB/s".into(), 0.05, 3.0),
            "1683 MiB/s (deviation 5%)"
        );
        assert_eq!(with_deviation("1683 MiB/s".into(), 0.02, 3.0), "1683 MiB/s");
        assert_eq!(with_deviation("9 IOPS".into(), 0.031, 3.0), "9 IOPS");
    }
}
