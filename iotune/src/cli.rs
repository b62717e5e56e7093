//! Command-line definition (clap derive). Names follow the reference iotune; its underscore
//! spellings are accepted as aliases.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Calibrates the disk under one or more directories and writes io-properties.yaml, the file
/// Seastar applications (ScyllaDB, Redpanda) and the `scheduler` crate read.
///
/// Units: sizes are bytes and accept binary suffixes (4096, 4k, 4KiB, 1M, 1MiB); durations are
/// seconds; bandwidth is printed in MiB/s and written in bytes/s; IOPS are requests per second.
/// Depths are requests in flight per shard. Each option's range is given with it; a value out of
/// range is refused before any work.
///
/// Exit status: 0 success, 1 error (the message says what and where) or a figure the disk did
/// not serve (nothing written), 2 bad command line, 130 interrupted (nothing written).
///
/// One calibration per disk: iotune holds an exclusive lock per disk for the whole run
/// (/run/lock/iotune-MAJ:MIN.lock, or $IOTUNE_LOCK_DIR), and a second iotune on the same disk
/// exits 1 naming the first's pid. Other I/O on the disk during a phase is reported with the
/// phase: its figure is then low.
#[derive(Debug, Parser)]
#[command(name = "iotune", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    /// Directory on the filesystem to measure (repeatable; directories on one filesystem are
    /// measured once). Test files are created there, unlinked at once, so nothing is left behind.
    #[arg(
        long = "evaluation-directory",
        alias = "evaluation_directory",
        value_name = "DIR",
        required = true
    )]
    pub evaluation_directory: Vec<PathBuf>,

    /// Write the io-properties YAML here (atomically: temp file + rename). Without it the YAML is
    /// printed on stdout.
    #[arg(
        long = "properties-file",
        alias = "properties_file",
        value_name = "PATH"
    )]
    pub properties_file: Option<PathBuf>,

    /// Also write a one-line options file pointing at the properties file (needs --properties-file).
    #[arg(long = "options-file", alias = "options_file", value_name = "PATH")]
    pub options_file: Option<PathBuf>,

    /// Format of the options file.
    #[arg(long, value_enum, default_value_t = OptionsFormat::Seastar)]
    pub format: OptionsFormat,

    /// Base duration, seconds, 1 to 86400 (a day): sequential write runs 0.7x, each read/random
    /// phase 0.1x (at least 1 s) after its ramp.
    #[arg(long, value_name = "SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=MAX_DURATION_SECS))]
    pub duration: u64,

    /// Print a phase's deviation only when above this, percent (0 to 100).
    #[arg(long, value_name = "PCT", default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub accuracy: u32,

    /// Run the filesystem sanity checks only (O_DIRECT, non-blocking submission, free space), then exit.
    #[arg(long = "fs-check", alias = "fs_check")]
    pub fs_check: bool,

    /// Also measure the saturation length (smallest request size reaching full bandwidth) for
    /// this direction.
    #[arg(long, value_enum, value_name = "DIR")]
    pub saturation: Option<Saturation>,

    /// Also sweep the in-flight depth for random requests in this direction (1, 2, 4, .. up to
    /// twice the random depth per shard, all shards) and report the knee: the smallest depth
    /// reaching 95% of the best IOPS, past which more concurrency only adds latency (Little's
    /// law). Figures per depth go to the report; io-properties.yaml is unchanged.
    #[arg(long = "depth-sweep", value_enum, value_name = "DIR")]
    pub depth_sweep: Option<Saturation>,

    /// Probe random-write IOPS at 512..8192-byte requests to find the real physical block size
    /// (drives misreport it); the result is written as `physical_block_size`.
    #[arg(
        long = "detect-physical-block-size",
        alias = "detect_physical_block_size"
    )]
    pub detect_physical_block_size: bool,

    /// Random read request size, bytes: 0, or a multiple of 512 up to 1 GiB; 0 = the smallest
    /// the filesystem does directly: the largest of the disk's physical block size, the statx
    /// DIO alignment and (when statx does not report it) the filesystem block size.
    #[arg(long = "random-read-io-buffer-size", alias = "random_read_io_buffer_size", value_name = "SIZE", value_parser = scheduler::io_properties::parse_size, default_value = "0")]
    pub random_read_io_buffer_size: u64,

    /// Random write request size, bytes: 0, or a multiple of 512 up to 1 GiB; 0 = as the read
    /// size (or the detected physical block size).
    #[arg(long = "random-write-io-buffer-size", alias = "random_write_io_buffer_size", value_name = "SIZE", value_parser = scheduler::io_properties::parse_size, default_value = "0")]
    pub random_write_io_buffer_size: u64,

    /// Write the properties file even when a figure came from a cache instead of the disk (the
    /// disks' own counters served clearly less than iotune completed, e.g. btrfs serving
    /// requests smaller than its block size from its page cache). The warning stays on stderr
    /// and in the report. Without it such a run exits 1 and writes no properties or options file.
    #[arg(long = "allow-cached")]
    pub allow_cached: bool,

    /// Run the random phases once per size (comma-separated, at most 16 sizes, each a multiple
    /// of 512 up to 1 GiB) and keep the best IOPS per direction.
    #[arg(long = "get-best-iops-with-buffer-sizes", alias = "get_best_iops_with_buffer_sizes", value_name = "SIZES", value_delimiter = ',', value_parser = scheduler::io_properties::parse_size)]
    pub get_best_iops_with_buffer_sizes: Vec<u64>,

    /// Override the disk's in-flight bound, requests (1 to 1048576; 0 = the sum of the leaf
    /// disks' queue/nr_requests).
    #[arg(
        long = "force-io-depth",
        alias = "force_io_depth",
        value_name = "N",
        default_value_t = 0,
        value_parser = clap::value_parser!(u64).range(0..=1 << 20)
    )]
    pub force_io_depth: u64,

    /// Sequential read request size, bytes (a multiple of 512 up to 1 GiB).
    #[arg(long = "sequential-read-buffer-size", alias = "sequential_read_buffer_size", value_name = "SIZE", value_parser = scheduler::io_properties::parse_size, default_value = "1MiB")]
    pub sequential_read_buffer_size: u64,

    /// Sequential write request size, bytes (a multiple of 512 up to 1 GiB).
    #[arg(long = "sequential-write-buffer-size", alias = "sequential_write_buffer_size", value_name = "SIZE", value_parser = scheduler::io_properties::parse_size, default_value = "1MiB")]
    pub sequential_write_buffer_size: u64,

    /// In flight per shard for sequential writes, 1 to 4096 (default 4 x leaf disks).
    #[arg(long = "sequential-write-io-depth", value_name = "N", value_parser = depth())]
    pub sequential_write_io_depth: Option<usize>,

    /// In flight per shard for sequential reads, 1 to 4096 (default 4 x leaf disks).
    #[arg(long = "sequential-read-io-depth", value_name = "N", value_parser = depth())]
    pub sequential_read_io_depth: Option<usize>,

    /// In flight per shard for random writes, 1 to 4096 (default min(128, in-flight bound /
    /// shards)).
    #[arg(long = "random-write-io-depth", value_name = "N", value_parser = depth())]
    pub random_write_io_depth: Option<usize>,

    /// In flight per shard for random reads, 1 to 4096 (default min(128, in-flight bound /
    /// shards)).
    #[arg(long = "random-read-io-depth", value_name = "N", value_parser = depth())]
    pub random_read_io_depth: Option<usize>,

    /// Number of shards (threads, one test file each), 1 to 1024; default: all CPUs this
    /// process may use. More shards than CPUs get a warning: they share CPUs.
    #[arg(short = 'c', long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_SHARDS as u64))]
    pub smp: Option<usize>,

    /// I/O engine; default io_uring, falling back to threads (with a warning) when unavailable.
    #[arg(long, value_name = "uring|threads")]
    pub engine: Option<scheduler::engine::EngineKind>,

    /// Write a JSON report (topology, every phase's settings, per-second samples, latency
    /// percentiles, results); rewritten after each phase so an aborted run keeps its data.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Write a self-contained HTML page (inline SVG plots, nothing fetched from the network,
    /// readable without JavaScript): command line, topology, warnings with their fixes, per
    /// phase the per-second throughput with its trend and the latency percentiles, the depth
    /// sweep, the io-properties written. Rewritten atomically after each phase. Its directory
    /// must exist and be writable (else exit 2 before measuring).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Write one fio job file per phase into this existing, writable directory (else exit 2
    /// before measuring), reproducing the phase (request size, depth, jobs = shards, region,
    /// ramp, runtime, O_DIRECT, the engine, incompressible buffers), and a README saying how to
    /// run them and what iotune measured for each.
    #[arg(long = "fio-jobs", value_name = "DIR")]
    pub fio_jobs: Option<PathBuf>,

    /// Size of each shard's test file, bytes: at least two sequential requests, at most the
    /// free space / shards (default: free space / (2 x shards)). Reads only touch what this
    /// run wrote.
    #[arg(long = "file-size", value_name = "SIZE", value_parser = scheduler::io_properties::parse_size)]
    pub file_size: Option<u64>,

    /// Seconds dropped at the start of each read and random phase, 0 to 600 (the warm-up before
    /// sequential writes is max(3 s, 5% of --duration)).
    #[arg(long = "ramp-time", value_name = "SECS", default_value_t = 3.0, value_parser = parse_ramp)]
    pub ramp_time: f64,

    /// Measure what the disk sustains, not its peak: each measured phase runs on until its last
    /// window (the phase's usual measured time, at least 5 s) drifts by no more than
    /// --accuracy, and that window gives the figure. Bounded by --sustained-max.
    #[arg(long)]
    pub sustained: bool,

    /// With --sustained: the longest a phase may measure before settling for its last window
    /// (with a warning), seconds, 1 to 86400.
    #[arg(
        long = "sustained-max",
        value_name = "SECS",
        default_value_t = 600,
        requires = "sustained",
        value_parser = clap::value_parser!(u64).range(1..=MAX_DURATION_SECS)
    )]
    pub sustained_max: u64,

    /// After the four corners, measure the read/write interference frontier: sequential
    /// writes paced (open loop) at 25, 50 and 75% of the measured write bandwidth while random
    /// reads run as fast as the disk allows, and the mirror (random reads paced at 25, 50, 75%
    /// of the read IOPS, writes flat out). Each point gives the achieved IOPS and bandwidth
    /// (bytes/s), what the linear model (reads/read_iops + writes/write_bandwidth <= 1)
    /// predicts, and the read and write p99. The verdict (linear, better than linear,
    /// duplex-like or worse than linear) goes to stderr and the report; io-properties.yaml is
    /// unchanged unless --write-mixed-model. Adds 6 points of max(2 s, 5% of --duration) plus
    /// a ramp of up to 1 s each.
    #[arg(long)]
    pub mixed: bool,

    /// With --mixed: write the verdict into io-properties.yaml: `duplex: true` for a
    /// duplex-like disk, `rate_factor: F` (F < 1, the measured rates stay as they are) when
    /// the disk delivers less than the linear model promises at some point, so that the model
    /// is safe at every measured point.
    #[arg(long = "write-mixed-model")]
    pub write_mixed_model: bool,

    /// Per random direction, search the highest IOPS whose latency percentile
    /// (--latency-percentile) stays under this target, milliseconds (more than 0, at most
    /// 3600000): in-flight depths per shard 1, 2, 4, .. up to the random depth, then bisection;
    /// every step goes to the report. Printed on stderr beside the throughput-maximal figure.
    #[arg(long = "latency-target", value_name = "MS", value_parser = parse_latency_target, allow_negative_numbers = true)]
    pub latency_target: Option<f64>,

    /// The completion-latency percentile --latency-target bounds, percent (more than 0, at
    /// most 100; 99 = p99).
    #[arg(long = "latency-percentile", value_name = "P", default_value_t = 99.0, value_parser = parse_percentile, allow_negative_numbers = true, requires = "latency_target")]
    pub latency_percentile: f64,

    /// Which random IOPS go into io-properties.yaml: `max` (throughput-maximal, the default)
    /// or `latency-bounded` (the --latency-target figures; needs --latency-target).
    #[arg(long, value_enum, value_name = "KIND", default_value_t = Rates::Max)]
    pub rates: Rates,
}

/// `--rates`: which random IOPS are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Rates {
    /// The highest IOPS measured (throughput-maximal).
    Max,
    /// The highest IOPS whose latency percentile stays under --latency-target.
    LatencyBounded,
}

/// Largest `--latency-target`, milliseconds (an hour).
pub const MAX_LATENCY_TARGET_MS: f64 = 3_600_000.0;

/// `--latency-target`: milliseconds, more than 0, at most an hour.
fn parse_latency_target(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(ms) if ms.is_finite() && ms > 0.0 && ms <= MAX_LATENCY_TARGET_MS => Ok(ms),
        Ok(ms) if ms.is_nan() || ms.is_infinite() => {
            Err(format!("`{text}` is not a finite number of milliseconds"))
        }
        Ok(_) => Err(format!(
            "{text} ms is out of range: give a latency target above 0 ms, at most {MAX_LATENCY_TARGET_MS} ms (e.g. --latency-target 10)"
        )),
        Err(_) => Err(format!("`{text}` is not a number of milliseconds (e.g. 10 or 2.5)")),
    }
}

/// `--latency-percentile`: percent, more than 0, at most 100.
fn parse_percentile(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 100.0 => Ok(p),
        Ok(_) => Err(format!(
            "{text} is out of range: a percentile above 0, at most 100 (e.g. 99 or 99.9)"
        )),
        Err(_) => Err(format!("`{text}` is not a percentile (e.g. 99 or 99.9)")),
    }
}

/// Most shards (`--smp`).
pub const MAX_SHARDS: usize = 1024;

/// Longest `--duration` and `--sustained-max`, seconds: a day.
pub const MAX_DURATION_SECS: u64 = 86_400;

/// Deepest in-flight depth per shard an option may ask for.
pub const MAX_DEPTH: u64 = 4096;

/// Parser of an in-flight depth per shard, 1 to [`MAX_DEPTH`].
fn depth() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_DEPTH)
}

/// `--ramp-time`: seconds, 0 to 600.
fn parse_ramp(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(secs) if (0.0..=600.0).contains(&secs) => Ok(secs),
        Ok(secs) if !secs.is_finite() => Err(format!("`{text}` is not a finite number of seconds")),
        Ok(_) => Err(format!("{text} is out of range: 0 to 600 seconds")),
        Err(_) => Err(format!("`{text}` is not a number of seconds")),
    }
}

/// Options-file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptionsFormat {
    /// `io-properties-file=PATH`
    Seastar,
    /// `SEASTAR_IO="--io-properties-file=PATH"`
    Envfile,
}

/// Which directions an optional probe (saturation length, depth sweep) covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Saturation {
    /// Reads only.
    Read,
    /// Writes only.
    Write,
    /// Both directions.
    Both,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn underscore_and_dash_spellings() {
        let a = Cli::try_parse_from([
            "iotune",
            "--evaluation-directory",
            "/x",
            "--sequential_read_buffer_size",
            "128k",
        ])
        .unwrap();
        assert_eq!(a.sequential_read_buffer_size, 128 << 10);
        let b = Cli::try_parse_from([
            "iotune",
            "--evaluation-directory",
            "/x",
            "--sequential-write-buffer-size",
            "2MiB",
        ])
        .unwrap();
        assert_eq!(b.sequential_write_buffer_size, 2 << 20);
        let c = Cli::try_parse_from([
            "iotune",
            "--evaluation-directory",
            "/x",
            "--get-best-iops-with-buffer-sizes",
            "512,4k",
        ])
        .unwrap();
        assert_eq!(c.get_best_iops_with_buffer_sizes, vec![512, 4096]);
    }

    /// Issue 9: every numeric option is bounded where it is parsed (clap exits 2), so that
    /// absurd values never reach the measurement (u64::MAX seconds panicked in the shards,
    /// 10^10 s tried to allocate 112 GB of samples).
    #[test]
    fn out_of_range_values_are_refused_at_parse_time() {
        for (option, bad, good) in [
            (
                "--duration",
                &["0", "86401", "10000000000", "18446744073709551615"][..],
                "86400",
            ),
            ("--accuracy", &["101", "-1"], "100"),
            ("--smp", &["0", "1025"], "1024"),
            ("--force-io-depth", &["1048577"], "1048576"),
            ("--sequential-write-io-depth", &["0", "4097"], "4096"),
            ("--sequential-read-io-depth", &["0", "4097"], "1"),
            ("--random-write-io-depth", &["0", "4097"], "4096"),
            ("--random-read-io-depth", &["0", "4097"], "4096"),
            ("--ramp-time", &["-1", "601", "NaN", "inf"], "600"),
        ] {
            let args = |v: &str| {
                Cli::try_parse_from(["iotune", "--evaluation-directory", "/x", option, v])
            };
            for v in bad {
                let e = args(v).expect_err(&format!("{option} {v} was accepted"));
                assert_eq!(e.exit_code(), 2, "{option} {v}");
            }
            assert!(args(good).is_ok(), "{option} {good}");
        }
        let sustained = |v: &str| {
            Cli::try_parse_from([
                "iotune",
                "--evaluation-directory",
                "/x",
                "--sustained",
                "--sustained-max",
                v,
            ])
        };
        assert!(sustained("0").is_err() && sustained("86401").is_err());
        assert!(sustained("86400").is_ok());
    }

    /// Issue 10: a latency target of 0 or below, a percentile out of (0, 100], an unknown
    /// --rates value and a lone --latency-percentile are refused at parse time (exit 2).
    #[test]
    fn latency_options_are_bounded() {
        let args = |extra: &[&str]| {
            let mut v = vec!["iotune", "--evaluation-directory", "/x"];
            v.extend_from_slice(extra);
            Cli::try_parse_from(v)
        };
        for bad in [
            &["--latency-target", "0"][..],
            &["--latency-target", "-5"],
            &["--latency-target", "NaN"],
            &["--latency-target", "3600001"],
            &["--latency-target", "ten"],
            &["--latency-target", "5", "--latency-percentile", "0"],
            &["--latency-target", "5", "--latency-percentile", "100.5"],
            &["--latency-percentile", "99"],
            &["--rates", "fastest"],
        ] {
            let e = args(bad).expect_err(&format!("{bad:?} was accepted"));
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
        let e = args(&["--latency-target", "-5"]).unwrap_err().to_string();
        assert!(e.contains("above 0 ms"), "{e}");
        let ok = args(&["--latency-target", "0.5", "--latency-percentile", "100"]).unwrap();
        assert_eq!(
            (ok.latency_target, ok.latency_percentile),
            (Some(0.5), 100.0)
        );
        assert_eq!(args(&[]).unwrap().rates, Rates::Max);
    }

    #[test]
    fn rejects_unknown_saturation_and_bad_size() {
        assert!(Cli::try_parse_from([
            "iotune",
            "--evaluation-directory",
            "/x",
            "--saturation",
            "sideways"
        ])
        .is_err());
        assert!(Cli::try_parse_from([
            "iotune",
            "--evaluation-directory",
            "/x",
            "--random-read-io-buffer-size",
            "4X"
        ])
        .is_err());
    }
}
