//! Plausibility checks: figures no disk would produce, or that cannot be trusted, found from
//! the report alone (so the console, the JSON and the HTML say the same), each with what to do.
//!
//! - a collapsed phase: random IOPS × request size far from the sequential phase's bandwidth in
//!   the same direction, in a way no disk does (PR#961's Azure run, where read_bandwidth /
//!   read_iops was exactly 262144 because an IOPS phase had collapsed);
//! - a CPU-bound shard: its CPU time close to the phase's wall time, so the figure is the CPU's;
//! - a deviation too high to trust;
//! - random IOPS below the depth-1 IOPS of the depth sweep;
//! - more shards than CPUs.

use std::fmt;

use scheduler::engine::{EngineKind, Pattern};
use scheduler::Direction;
use serde::{Deserialize, Serialize};

use crate::report::{DepthSweep, DiskReport, PhaseReport};

/// Which check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Random IOPS × request size far from the sequential bandwidth in the same direction.
    CollapsedPhase,
    /// A shard's CPU time was close to its phase's wall time.
    CpuBound,
    /// A phase's per-second deviation is too high for its figure to be trusted.
    HighDeviation,
    /// The random phase delivered fewer IOPS than the depth sweep's depth 1.
    BelowDepthOne,
    /// More shards than CPUs this process may use.
    MoreShardsThanCpus,
}

impl Check {
    /// A short title for a person ("CPU-bound shard").
    pub fn title(self) -> &'static str {
        match self {
            Check::CollapsedPhase => "Collapsed phase",
            Check::CpuBound => "CPU-bound shard",
            Check::HighDeviation => "Deviation too high to trust",
            Check::BelowDepthOne => "Random IOPS below depth 1",
            Check::MoreShardsThanCpus => "More shards than CPUs",
        }
    }
}

/// A failed check: what was seen and what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Implausible {
    /// Which check.
    pub check: Check,
    /// The phase it concerns, when one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// What was measured, with the figures.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl fmt::Display for Implausible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.message, self.fix)
    }
}

/// A shard whose CPU time (user + system) plus the time it waited for a CPU reached this share
/// of its phase's wall time (ramp and measured window) never waited for the disk: the figure
/// is what its CPU could submit. Counting the run-queue wait keeps the verdict when other
/// work shares the CPU.
pub const CPU_BOUND_SHARE: f64 = 0.9;

/// A phase deviation (population std / mean of per-second completions) above this is too
/// high to trust the phase's figure: 0.3 = 30%.
pub const HIGH_DEVIATION: f64 = 0.3;

/// Random IOPS × request size above this multiple of the sequential bandwidth: the random
/// phase moved more bytes than large sequential requests did, so the sequential phase
/// collapsed (no disk is faster at small random requests than at large sequential ones).
pub const RANDOM_ABOVE_SEQUENTIAL: f64 = 2.0;

/// Random IOPS × request size at or below this share of the sequential bandwidth on a
/// non-rotational disk: fewer requests than the sequential bandwidth would carry at 64 times
/// the request size (256 KiB for 4 KiB requests: PR#961's exact ratio), so the random phase
/// collapsed. Spinning disks do this honestly (seeks), so they are not judged.
pub const RANDOM_BELOW_SEQUENTIAL: f64 = 1.0 / 64.0;

/// Random IOPS below this share of the depth sweep's depth-1 IOPS: more requests in flight
/// delivered less.
pub const BELOW_DEPTH_ONE: f64 = 0.9;

/// The run-level check: `shards` above `cpus` (the CPUs this process may use).
pub fn more_shards_than_cpus(shards: usize, cpus: usize) -> Option<Implausible> {
    (shards > cpus).then(|| Implausible {
        check: Check::MoreShardsThanCpus,
        phase: None,
        message: format!(
            "--smp {shards} is above the {cpus} CPU(s) this process may use: shards share \
             CPUs, so the figures may be the CPUs' limit rather than the disk's"
        ),
        fix: format!("run with --smp {cpus} or fewer"),
    })
}

/// The per-disk checks over what `disk` holds so far (phases, results, sweeps), measured with
/// `engine`.
pub fn check_disk(disk: &DiskReport, engine: EngineKind) -> Vec<Implausible> {
    let mut out = Vec::new();
    for phase in disk.phases.iter().filter(|p| !p.dropped) {
        // The threads engine runs `in_flight` threads per shard, each on its own clock.
        let threads = match engine {
            EngineKind::Uring => 1,
            EngineKind::Threads => phase.in_flight_per_shard.max(1),
        };
        out.extend(cpu_bound(phase, threads));
        out.extend(high_deviation(phase));
    }
    out.extend(collapsed(disk, Direction::Read));
    out.extend(collapsed(disk, Direction::Write));
    out.extend(below_depth_one(disk));
    out
}

/// `threads`: the threads a shard ran (their times add up).
fn cpu_bound(phase: &PhaseReport, threads: usize) -> Option<Implausible> {
    let wall = (phase.ramp_s + phase.measure_s) * threads as f64;
    let busy = |s: &crate::report::ShardFigures| s.cpu_s + s.runqueue_wait_s;
    let (i, shard) = phase
        .per_shard
        .iter()
        .enumerate()
        .max_by(|a, b| busy(a.1).total_cmp(&busy(b.1)))?;
    let share = busy(shard) / wall;
    // Mostly waiting for a CPU rather than running: other work held it.
    let starved = shard.runqueue_wait_s > shard.cpu_s;
    (wall > 0.0 && share >= CPU_BOUND_SHARE).then(|| Implausible {
        check: Check::CpuBound,
        phase: Some(phase.name.clone()),
        message: format!(
            "{}: shard {i} ran on its CPU for {:.1} s and waited for it {:.1} s of the phase's \
             {:.1} s{} ({:.0}%): it {}, never waiting for the disk, so {:.0} IOPS is what {} \
             could submit, not what the disk can do",
            phase.name,
            shard.cpu_s,
            shard.runqueue_wait_s,
            wall,
            if threads > 1 {
                format!(" ({threads} threads)")
            } else {
                String::new()
            },
            share * 100.0,
            if starved {
                "was starved of CPU by other work"
            } else {
                "was CPU-bound"
            },
            phase.total.iops,
            if starved {
                "the CPU time left to it"
            } else {
                "its CPU"
            },
        ),
        fix: if starved {
            "free the CPUs other work is using (or run iotune where nothing else runs), and \
             measure again"
        } else {
            "add shards (--smp, up to the CPUs), or free the CPUs other work is using, and \
             measure again"
        }
        .to_string(),
    })
}

fn high_deviation(phase: &PhaseReport) -> Option<Implausible> {
    let d = phase.total.deviation;
    (d > HIGH_DEVIATION).then(|| Implausible {
        check: Check::HighDeviation,
        phase: Some(phase.name.clone()),
        message: format!(
            "{}: deviation {:.0}% (per-second completions vary by more than {:.0}% of their \
             mean): the figure is too unsteady to trust",
            phase.name,
            d * 100.0,
            HIGH_DEVIATION * 100.0
        ),
        fix: "stop other I/O on the disk, then measure again, longer (--duration) or until \
              steady (--sustained); check the figure with the fio job of this phase \
              (--fio-jobs)"
            .to_string(),
    })
}

/// The random phase that gave `direction`'s IOPS figure and the sequential one that gave its
/// bandwidth.
fn figure_phases(disk: &DiskReport, direction: Direction) -> Option<(&PhaseReport, &PhaseReport)> {
    let results = disk.results.as_ref()?;
    let (size, iops) = match direction {
        Direction::Read => (
            results.random_read_request_size,
            results.properties.read_iops,
        ),
        Direction::Write => (
            results.random_write_request_size,
            results.properties.write_iops,
        ),
    };
    let counted = |p: &&PhaseReport| !p.dropped && p.direction == direction;
    let random = disk.phases.iter().filter(counted).find(|p| {
        p.pattern == Pattern::Random
            && p.request_size == size
            && (p.total.iops.round() as u64).max(1) == iops
    })?;
    let sequential = disk
        .phases
        .iter()
        .filter(counted)
        .find(|p| p.pattern == Pattern::Sequential)?;
    Some((random, sequential))
}

fn collapsed(disk: &DiskReport, direction: Direction) -> Option<Implausible> {
    let (random, sequential) = figure_phases(disk, direction)?;
    let rotational = disk
        .topology
        .counted_devices()
        .iter()
        .any(|d| d.queue.rotational == Some(true));
    judge_collapse(random, sequential, rotational)
}

/// The collapsed-phase check of a random and a sequential phase in one direction.
fn judge_collapse(
    random: &PhaseReport,
    sequential: &PhaseReport,
    rotational: bool,
) -> Option<Implausible> {
    let bw = sequential.total.bandwidth;
    let random_bytes = random.total.iops * random.request_size as f64;
    if bw <= 0.0 && random_bytes <= 0.0 {
        return None;
    }
    let ratio = random_bytes / bw;
    let mib = |b: f64| b / (1u64 << 20) as f64;
    let seen = format!(
        "{} at {:.0} IOPS x {} B moved {:.1} MiB/s, {:.3} times the {:.1} MiB/s of {}",
        random.name,
        random.total.iops,
        random.request_size,
        mib(random_bytes),
        ratio,
        mib(bw),
        sequential.name
    );
    let (message, fix) = if ratio > RANDOM_ABOVE_SEQUENTIAL {
        (
            format!(
                "{seen}: no disk moves more bytes in small random requests than in large \
                 sequential ones, so {} collapsed (or its request size or depth was too small)",
                sequential.name
            ),
            format!(
                "measure again; if it repeats, check {} alone with its fio job (--fio-jobs) and \
                 its request size and depth",
                sequential.name
            ),
        )
    } else if !rotational && ratio <= RANDOM_BELOW_SEQUENTIAL {
        (
            format!(
                "{seen}: fewer requests than the sequential bandwidth carries at {}x the request \
                 size, which a solid-state disk does not do, so {} collapsed",
                (1.0 / RANDOM_BELOW_SEQUENTIAL) as u64,
                random.name
            ),
            format!(
                "measure again; if it repeats, check {} alone with its fio job (--fio-jobs), \
                 and look for throttling or other I/O on the disk",
                random.name
            ),
        )
    } else {
        return None;
    };
    Some(Implausible {
        check: Check::CollapsedPhase,
        phase: Some(random.name.clone()),
        message,
        fix,
    })
}

fn below_depth_one(disk: &DiskReport) -> Vec<Implausible> {
    let Some(results) = &disk.results else {
        return Vec::new();
    };
    disk.depth_sweeps
        .iter()
        .filter_map(|sweep| {
            let iops = match sweep.direction {
                Direction::Read => results.properties.read_iops,
                Direction::Write => results.properties.write_iops,
            };
            judge_depth_one(sweep, iops as f64)
        })
        .collect()
}

/// The below-depth-1 check of a sweep against the random phase's `iops` in its direction.
fn judge_depth_one(sweep: &DepthSweep, iops: f64) -> Option<Implausible> {
    let one = sweep.points.iter().find(|p| p.in_flight_per_shard == 1)?;
    let depth = match sweep.direction {
        Direction::Read => "--random-read-io-depth",
        Direction::Write => "--random-write-io-depth",
    };
    (iops < BELOW_DEPTH_ONE * one.iops).then(|| Implausible {
        check: Check::BelowDepthOne,
        phase: None,
        message: format!(
            "random {} IOPS {iops:.0} are below the {:.0} IOPS of depth 1 in the depth sweep: \
             more requests in flight delivered less (a collapsed phase, a queue that thrashes, \
             or CPU contention)",
            sweep.direction, one.iops
        ),
        fix: format!(
            "measure again; if it repeats, set {depth} to the sweep's knee ({} per shard)",
            sweep.knee_in_flight_per_shard
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Figures, ShardFigures};
    use crate::stats::{Latency, Trend};

    fn phase(name: &str, pattern: Pattern, size: u64, iops: f64) -> PhaseReport {
        PhaseReport {
            name: name.into(),
            dropped: false,
            direction: Direction::Read,
            pattern,
            request_size: size,
            in_flight_per_shard: 8,
            shards: 1,
            ramp_s: 1.0,
            measure_s: 4.0,
            region_bytes_per_shard: 1 << 30,
            total: Figures {
                iops,
                bandwidth: iops * size as f64,
                requests: (iops * 4.0) as u64,
                deviation: 0.02,
                latency: Latency::default(),
            },
            per_shard: vec![ShardFigures {
                figures: Figures {
                    iops,
                    bandwidth: iops * size as f64,
                    requests: 0,
                    deviation: 0.02,
                    latency: Latency::default(),
                },
                samples: Vec::new(),
                cpu_s: 1.0,
                runqueue_wait_s: 0.1,
                registered_buffers: true,
            }],
            trend: Trend::default(),
            latency_distribution: Vec::new(),
            sustained: None,
            device_requests: Vec::new(),
            served: None,
            latency_ns: None,
        }
    }

    #[test]
    fn a_collapsed_random_phase_is_pr961s_ratio() {
        // 2 GiB/s sequential; 4 KiB random at exactly bandwidth / 262144 IOPS.
        let seq = phase("sequential read", Pattern::Sequential, 1 << 20, 2048.0);
        let bad = phase("random read 4096", Pattern::Random, 4096, 2048.0 * 4.0);
        let w = judge_collapse(&bad, &seq, false).expect("collapsed");
        assert_eq!(w.check, Check::CollapsedPhase);
        assert!(w.message.contains("random read 4096 collapsed"), "{w}");
        assert!(
            judge_collapse(&bad, &seq, true).is_none(),
            "a spinning disk seeks"
        );
        // A healthy NVMe: 4 KiB random at 500k IOPS against 3 GiB/s.
        let seq = phase("sequential read", Pattern::Sequential, 1 << 20, 3072.0);
        let good = phase("random read 4096", Pattern::Random, 4096, 500e3);
        assert!(judge_collapse(&good, &seq, false).is_none());
    }

    #[test]
    fn a_sequential_phase_that_moved_nothing_collapsed() {
        let seq = phase("sequential write", Pattern::Sequential, 1 << 20, 0.0);
        let rand = phase("random write 4096", Pattern::Random, 4096, 80e3);
        let w = judge_collapse(&rand, &seq, true).expect("collapsed");
        assert!(w.message.contains("so sequential write collapsed"), "{w}");
    }

    #[test]
    fn random_above_sequential_means_the_sequential_phase_collapsed() {
        let seq = phase("sequential read", Pattern::Sequential, 1 << 20, 10.0);
        let rand = phase("random read 4096", Pattern::Random, 4096, 80e3);
        let w = judge_collapse(&rand, &seq, false).expect("collapsed");
        assert!(w.message.contains("so sequential read collapsed"), "{w}");
        assert!(w.fix.contains("--fio-jobs"), "{w}");
    }

    #[test]
    fn cpu_bound_and_deviation() {
        let mut p = phase("random read 4096", Pattern::Random, 4096, 1e5);
        assert!(cpu_bound(&p, 1).is_none() && high_deviation(&p).is_none());
        p.per_shard[0].cpu_s = 3.2;
        p.per_shard[0].runqueue_wait_s = 1.5;
        let w = cpu_bound(&p, 1).expect("5 s wall, 3.2 s on the CPU, 1.5 s waiting for it");
        assert!(
            w.message.contains(
                "shard 0 ran on its CPU for 3.2 s and waited for it 1.5 s of the phase's 5.0 s (94%)"
            ),
            "{w}"
        );
        assert!(w.message.contains("it was CPU-bound"), "{w}");
        assert!(w.fix.contains("--smp"));
        p.per_shard[0].cpu_s = 0.1;
        p.per_shard[0].runqueue_wait_s = 4.9;
        let w = cpu_bound(&p, 1).expect("runnable throughout");
        assert!(w.message.contains("starved of CPU by other work"), "{w}");
        assert!(w.fix.starts_with("free the CPUs"), "{w}");
        p.total.deviation = 0.43;
        let w = high_deviation(&p).expect("43%");
        assert_eq!(w.check, Check::HighDeviation);
        assert!(w.message.contains("deviation 43%"), "{w}");
    }

    #[test]
    fn random_iops_below_depth_one() {
        let point = |d: usize, iops: f64| crate::report::DepthPoint {
            in_flight_per_shard: d,
            iops,
            mean_us: 0.0,
            p99_us: 0.0,
            littles_law_in_flight: 0.0,
        };
        let sweep = DepthSweep {
            direction: Direction::Read,
            request_size: 4096,
            shards: 2,
            points: vec![point(1, 30e3), point(2, 50e3), point(4, 80e3)],
            knee_in_flight_per_shard: 4,
            knee_in_flight: 8,
        };
        assert!(judge_depth_one(&sweep, 85e3).is_none());
        assert!(judge_depth_one(&sweep, 28e3).is_none(), "within 10%");
        let w = judge_depth_one(&sweep, 12e3).expect("below depth 1");
        assert_eq!(w.check, Check::BelowDepthOne);
        assert!(
            w.message
                .contains("random read IOPS 12000 are below the 30000 IOPS of depth 1"),
            "{w}"
        );
        assert!(
            w.fix
                .contains("--random-read-io-depth to the sweep's knee (4 per shard)"),
            "{w}"
        );
    }

    #[test]
    fn shards_above_cpus() {
        assert!(more_shards_than_cpus(2, 2).is_none());
        let w = more_shards_than_cpus(3, 2).unwrap();
        assert!(
            w.message.starts_with("--smp 3 is above the 2 CPU(s)"),
            "{w}"
        );
        assert_eq!(w.fix, "run with --smp 2 or fewer");
    }
}
