//! `--fio-jobs DIR`: one fio job file per phase that reproduces it (request size, in-flight
//! depth, jobs = shards, region, ramp, runtime, direct I/O, the engine, buffers refilled with
//! random data on every submit so compression gains nothing), and a README saying how to run
//! them, so anyone can check a figure with fio (seastar#1297, scylla-machine-image PR#709).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use scheduler::engine::{EngineKind, Pattern};
use scheduler::Direction;

use crate::report::{write_atomically, DiskReport, PhaseReport, Report};

/// The README's name inside the directory.
pub const README: &str = "README";

/// The file name of the job reproducing phase number `index` (from 0) of disk `disk` (from 0)
/// of `disks`: "01-sequential-write.fio", or "disk2-01-sequential-write.fio" when several
/// filesystems were measured.
pub fn file_name(disks: usize, disk: usize, index: usize, phase: &str) -> String {
    let slug: String = phase
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let prefix = if disks > 1 {
        format!("disk{}-", disk + 1)
    } else {
        String::new()
    };
    format!("{prefix}{:02}-{slug}.fio", index + 1)
}

/// fio's `rw=` for a phase.
fn rw(direction: Direction, pattern: Pattern) -> &'static str {
    match (direction, pattern) {
        (Direction::Read, Pattern::Sequential) => "read",
        (Direction::Write, Pattern::Sequential) => "write",
        (Direction::Read, Pattern::Random) => "randread",
        (Direction::Write, Pattern::Random) => "randwrite",
    }
}

/// The text of the fio job reproducing `phase` of `disk`, run with `engine`.
pub fn job(report: &Report, disk: &DiskReport, phase: &PhaseReport) -> String {
    let mib = (1u64 << 20) as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "; {} {}: phase \"{}\" on {}\n\
         ; iotune measured {:.0} IOPS, {:.1} MiB/s, p99 {:.0} us, deviation {:.1}%\n\
         ; ({} B requests, {} in flight per shard, {} shard(s), {:.1} s ramp, {:.1} s measured)",
        report.tool,
        report.version,
        phase.name,
        disk.mountpoint.display(),
        phase.total.iops,
        phase.total.bandwidth / mib,
        phase.total.latency.p99_us,
        phase.total.deviation * 100.0,
        phase.request_size,
        phase.in_flight_per_shard,
        phase.shards,
        phase.ramp_s,
        phase.measure_s,
    );
    let (engine, jobs, depth) = match report.engine {
        // One ring per shard, `in_flight` requests in it.
        EngineKind::Uring => ("io_uring", phase.shards, phase.in_flight_per_shard),
        // iotune's threads engine: `in_flight` blocking threads per shard.
        EngineKind::Threads => ("psync", phase.shards * phase.in_flight_per_shard, 1),
    };
    let _ = writeln!(s, "[global]");
    // fio splits `directory` at colons unless escaped.
    let dir = disk.evaluation_directory.display().to_string();
    let _ = writeln!(s, "directory={}", dir.replace(':', "\\:"));
    let _ = writeln!(
        s,
        "; each job its own file, as each iotune shard; deleted afterwards"
    );
    let _ = writeln!(s, "filename_format=iotune-fio.$jobnum");
    let _ = writeln!(s, "unlink=1");
    let _ = writeln!(
        s,
        "size={}",
        phase.region_bytes_per_shard.max(phase.request_size)
    );
    let _ = writeln!(s, "ioengine={engine}");
    let _ = writeln!(s, "direct=1");
    let _ = writeln!(s, "thread");
    let _ = writeln!(s, "group_reporting");
    let _ = writeln!(s, "time_based");
    let _ = writeln!(s, "ramp_time={}", seconds(phase.ramp_s));
    let _ = writeln!(s, "runtime={}", seconds(phase.measure_s.max(1.0)));
    let _ = writeln!(
        s,
        "; random offsets as iotune's: uniform, repeating, not the same each run"
    );
    let _ = writeln!(s, "norandommap");
    let _ = writeln!(s, "randrepeat=0");
    let _ = writeln!(
        s,
        "; new random data in every write: a compressing disk gains nothing"
    );
    let _ = writeln!(s, "refill_buffers");
    let _ = writeln!(s);
    let _ = writeln!(s, "[{}]", phase.name.replace(' ', "-"));
    let _ = writeln!(s, "rw={}", rw(phase.direction, phase.pattern));
    let _ = writeln!(s, "bs={}", phase.request_size);
    let _ = writeln!(s, "iodepth={depth}");
    let _ = writeln!(s, "numjobs={jobs}");
    s
}

/// fio's time: whole milliseconds ("3000ms"), exact for iotune's fractional ramps.
fn seconds(s: f64) -> String {
    format!("{}ms", (s * 1000.0).round() as u64)
}

/// The README: how to run the jobs, and what iotune measured for each.
pub fn readme(report: &Report, files: &[(PathBuf, &PhaseReport)]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Run one job with `fio --output-format=json FILE.fio` (as root if the evaluation \
         directory needs it; each job writes its own files there and deletes them), then \
         compare jobs[0].read or .write .iops and .bw_bytes (bytes/s) with iotune's figures \
         below; `fio --parse-only FILE.fio` checks a file without running it.\n\n\
         Written by {} {} ({}).\n",
        report.tool,
        report.version,
        report.command_line.join(" ")
    );
    for (path, phase) in files {
        let _ = writeln!(
            s,
            "{}: {}: {:.0} IOPS, {:.0} bytes/s",
            path.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            phase.name,
            phase.total.iops,
            phase.total.bandwidth
        );
    }
    s
}

/// Writes one job per phase of every disk into `dir`, and the README (each file atomically).
/// Returns the job files written.
pub fn write_all(dir: &Path, report: &Report) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for (d, disk) in report.disks.iter().enumerate() {
        for (i, phase) in disk.phases.iter().enumerate() {
            let path = dir.join(file_name(report.disks.len(), d, i, &phase.name));
            write_atomically(&path, job(report, disk, phase).as_bytes())?;
            files.push((path, phase));
        }
    }
    write_atomically(&dir.join(README), readme(report, &files).as_bytes())?;
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_numbered_slugs() {
        assert_eq!(
            file_name(1, 0, 0, "sequential write"),
            "01-sequential-write.fio"
        );
        assert_eq!(
            file_name(2, 1, 11, "depth sweep read 4096 x 8"),
            "disk2-12-depth-sweep-read-4096-x-8.fio"
        );
    }

    #[test]
    fn fractional_seconds_are_exact_milliseconds() {
        assert_eq!(seconds(0.5), "500ms");
        assert_eq!(seconds(3.0), "3000ms");
        assert_eq!(rw(Direction::Write, Pattern::Random), "randwrite");
    }
}
