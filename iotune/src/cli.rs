//! Command-line definition (clap derive). Names follow the reference iotune; its underscore
//! spellings are accepted as aliases.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Calibrates the disk under one or more directories and writes io-properties.yaml, the file
/// Seastar applications (ScyllaDB, Redpanda) and the `scheduler` crate read.
///
/// Units: sizes are bytes and accept binary suffixes (4096, 4k, 4KiB, 1M, 1MiB); durations are
/// seconds; bandwidth is printed in MiB/s and written in bytes/s; IOPS are requests per second.
/// Depths are requests in flight per shard.
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

    /// Base duration, seconds: sequential write runs 0.7x, each read/random phase 0.1x (at least
    /// 1 s) after its ramp.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub duration: u64,

    /// Print a phase's deviation only when above this, percent.
    #[arg(long, value_name = "PCT", default_value_t = 3)]
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

    /// Random read request size, bytes; 0 = the smallest the filesystem does directly: the
    /// largest of the disk's physical block size, the statx DIO alignment and (when statx does
    /// not report it) the filesystem block size.
    #[arg(long = "random-read-io-buffer-size", alias = "random_read_io_buffer_size", value_name = "SIZE", value_parser = scheduler::io_properties::parse_size, default_value = "0")]
    pub random_read_io_buffer_size: u64,

    /// Random write request size, bytes; 0 = as the read size (or the detected physical block
    /// size).
    #[arg(long = "random-write-io-buffer-size", alias = "random_write_io_buffer_size", value_name = "SIZE", value_parser = scheduler::io_properties::parse_size, default_value = "0")]
    pub random_write_io_buffer_size: u64,

    /// Write the properties file even when a figure came from a cache instead of the disk (the
    /// disks' own counters served clearly less than iotune completed, e.g. btrfs serving
    /// requests smaller than its block size from its page cache). The warning stays on stderr
    /// and in the report. Without it such a run exits 1 and writes no properties or options file.
    #[arg(long = "allow-cached")]
    pub allow_cached: bool,

    /// Run the random phases once per size (comma-separated) and keep the best IOPS per direction.
    #[arg(long = "get-best-iops-with-buffer-sizes", alias = "get_best_iops_with_buffer_sizes", value_name = "SIZES", value_delimiter = ',', value_parser = scheduler::io_properties::parse_size)]
    pub get_best_iops_with_buffer_sizes: Vec<u64>,

    /// Override the disk's in-flight bound (default: sum of the leaf disks' queue/nr_requests).
    #[arg(
        long = "force-io-depth",
        alias = "force_io_depth",
        value_name = "N",
        default_value_t = 0
    )]
    pub force_io_depth: u64,

    /// Sequential read request size, bytes.
    #[arg(long = "sequential-read-buffer-size", alias = "sequential_read_buffer_size", value_name = "SIZE", value_parser = scheduler::io_properties::parse_size, default_value = "1MiB")]
    pub sequential_read_buffer_size: u64,

    /// Sequential write request size, bytes.
    #[arg(long = "sequential-write-buffer-size", alias = "sequential_write_buffer_size", value_name = "SIZE", value_parser = scheduler::io_properties::parse_size, default_value = "1MiB")]
    pub sequential_write_buffer_size: u64,

    /// In flight per shard for sequential writes (default 4 x leaf disks).
    #[arg(long = "sequential-write-io-depth", value_name = "N")]
    pub sequential_write_io_depth: Option<usize>,

    /// In flight per shard for sequential reads (default 4 x leaf disks).
    #[arg(long = "sequential-read-io-depth", value_name = "N")]
    pub sequential_read_io_depth: Option<usize>,

    /// In flight per shard for random writes (default min(128, in-flight bound / shards)).
    #[arg(long = "random-write-io-depth", value_name = "N")]
    pub random_write_io_depth: Option<usize>,

    /// In flight per shard for random reads (default min(128, in-flight bound / shards)).
    #[arg(long = "random-read-io-depth", value_name = "N")]
    pub random_read_io_depth: Option<usize>,

    /// Number of shards (threads, one test file each); default: all CPUs this process may use.
    #[arg(short = 'c', long, value_name = "N")]
    pub smp: Option<usize>,

    /// I/O engine; default io_uring, falling back to threads (with a warning) when unavailable.
    #[arg(long, value_name = "uring|threads")]
    pub engine: Option<scheduler::engine::EngineKind>,

    /// Write a JSON report (topology, every phase's settings, per-second samples, latency
    /// percentiles, results); rewritten after each phase so an aborted run keeps its data.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Size of each shard's test file, bytes (default: free space / (2 x shards)). Reads only
    /// touch what this run wrote.
    #[arg(long = "file-size", value_name = "SIZE", value_parser = scheduler::io_properties::parse_size)]
    pub file_size: Option<u64>,

    /// Seconds dropped at the start of each read and random phase (the warm-up before sequential
    /// writes is max(3 s, 5% of --duration)).
    #[arg(long = "ramp-time", value_name = "SECS", default_value_t = 3.0)]
    pub ramp_time: f64,

    /// Measure what the disk sustains, not its peak: each measured phase runs on until its last
    /// window (the phase's usual measured time, at least 5 s) drifts by no more than
    /// --accuracy, and that window gives the figure. Bounded by --sustained-max.
    #[arg(long)]
    pub sustained: bool,

    /// With --sustained: the longest a phase may measure before settling for its last window
    /// (with a warning), seconds.
    #[arg(
        long = "sustained-max",
        value_name = "SECS",
        default_value_t = 600,
        requires = "sustained"
    )]
    pub sustained_max: u64,
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
