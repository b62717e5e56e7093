//! Command line (clap derive), with the reference io_tester's option names.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Runs concurrent "fiber" workloads from a YAML job file (Seastar's io_tester format) through
/// the scheduler, and reports throughput, IOPS, exact latency percentiles, scheduler statistics
/// and where requests land on the device (alignment tracing).
///
/// Units: sizes in job files and options are bytes with optional binary suffixes (4096, 4kB,
/// 1MB, 1GiB); durations are seconds here, and `0`/`10us`/`1ms`/`2s` in job files. Output:
/// throughput in KiB/s ("kB/s", as the reference), latencies in microseconds.
#[derive(Debug, Parser)]
#[command(name = "io-tester", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    /// Directory for the jobs' files, or a block device (split evenly between shards).
    #[arg(long, value_name = "PATH", default_value = ".")]
    pub storage: PathBuf,

    /// Run time, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub duration: f64,

    /// Job file (YAML list of jobs).
    #[arg(long, value_name = "FILE", default_value = "./conf.yaml")]
    pub conf: PathBuf,

    /// Leave the data files behind (true/false). Without it, files have no name while the
    /// run lasts, so nothing is left even after a crash.
    #[arg(long = "keep-files", value_name = "BOOL", default_value_t = false, action = clap::ArgAction::Set)]
    pub keep_files: bool,

    /// io-properties file describing the disk; without it (and --io-properties) the scheduler
    /// is unconfigured: requests cost nothing and dispatch at once.
    #[arg(
        long = "io-properties-file",
        value_name = "FILE",
        conflicts_with = "io_properties"
    )]
    pub io_properties_file: Option<PathBuf>,

    /// io-properties as inline YAML.
    #[arg(long = "io-properties", value_name = "YAML")]
    pub io_properties: Option<String>,

    /// Scheduler latency goal, milliseconds.
    #[arg(long = "io-latency-goal-ms", value_name = "MS", default_value_t = 0.75)]
    pub io_latency_goal_ms: f64,

    /// Shards (threads, each with its own io_uring and queue); default: all CPUs.
    #[arg(short = 'c', long, value_name = "N")]
    pub smp: Option<u32>,

    /// YAML list of scheduling groups `{name, shares, parent}`; jobs name them with `class`.
    #[arg(long = "sched-groups", value_name = "FILE")]
    pub sched_groups: Option<PathBuf>,

    /// Output format on stdout.
    #[arg(long = "output-format", value_enum, default_value_t = OutputFormat::Yaml)]
    pub output_format: OutputFormat,

    /// I/O engine; default io_uring, falling back to threads (with a warning) when unavailable.
    #[arg(long, value_name = "uring|threads")]
    pub engine: Option<scheduler::engine::EngineKind>,

    /// Allow write jobs on a block device. They DESTROY the data on it.
    #[arg(long = "allow-block-device-writes")]
    pub allow_block_device_writes: bool,

    /// Physical block size to judge alignment against, bytes (default: io-properties
    /// `physical_block_size`, else sysfs). Drives misreport it: 4K drives often claim 512.
    #[arg(long = "physical-block-size", value_name = "SIZE", value_parser = scheduler::io_properties::parse_size)]
    pub physical_block_size: Option<u64>,

    /// Trace one request in N for alignment (1 = every request), a fixed interval. Without
    /// it, tracing is adaptive: every request is traced, but after each extent-map refresh
    /// (FIEMAP), if refreshes so far took more than 1% of the run time, the interval doubles.
    /// The interval in effect at the end is reported per job as `alignment_sampled_every` (with
    /// a NOTE on stderr when it was raised).
    #[arg(long = "trace-sample", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub trace_sample: Option<u32>,
}

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// The reference's YAML document.
    Yaml,
    /// The same content as JSON.
    Json,
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
    fn keep_files_takes_a_bool() {
        let c = Cli::try_parse_from(["io-tester", "--keep-files", "true"]).unwrap();
        assert!(c.keep_files);
        assert!(Cli::try_parse_from(["io-tester", "--keep-files", "maybe"]).is_err());
    }

    #[test]
    fn trace_sample_is_adaptive_unless_given() {
        assert_eq!(
            Cli::try_parse_from(["io-tester"]).unwrap().trace_sample,
            None
        );
        let c = Cli::try_parse_from(["io-tester", "--trace-sample", "8"]).unwrap();
        assert_eq!(c.trace_sample, Some(8));
        assert!(Cli::try_parse_from(["io-tester", "--trace-sample", "0"]).is_err());
    }
}
