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
///
/// Exit status: 0 success, 1 error (the message says what and where), 2 bad command line (a
/// value out of its range is refused before any work), 130 interrupted (Ctrl-C).
///
/// Files left behind: data files have no name while the run lasts (O_TMPFILE, or created and
/// unlinked at once), so they never outlive the process. Unlink jobs need named files; they
/// live in STORAGE/io-tester-run.PID/, removed at the end and on Ctrl-C. After kill -9, a
/// crash or a power loss that directory stays, with the files the unlink jobs had not removed
/// yet; the next io-tester run on the same storage removes it and says so on stderr (a
/// directory whose run is still going is left alone). On a filesystem without O_TMPFILE a
/// data file has a name, .iotune-PID-*, for the microseconds between its creation and its
/// removal: a kill in that instant leaves it. With --keep-files true the data files
/// (io-tester-JOB-SHARD.data) and the unlink jobs' directories (io-tester-JOB-SHARD/) are
/// kept on purpose; a kept unlink directory must be removed before a run of the same job.
#[derive(Debug, Parser)]
#[command(name = "io-tester", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    /// Directory for the jobs' files, or a block device (split evenly between shards).
    #[arg(long, value_name = "PATH", default_value = ".")]
    pub storage: PathBuf,

    /// Run time, seconds: more than 0, at most 604800 (a week). Every job ends then (or at once
    /// on Ctrl-C): cpu steps, think times and waits for tokens are cut, requests not yet in the
    /// disk are cancelled and not counted.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = parse_duration)]
    pub duration: f64,

    /// Job file (YAML list of jobs).
    #[arg(long, value_name = "FILE", default_value = "./conf.yaml")]
    pub conf: PathBuf,

    /// Leave the data files behind (true/false). Without it, data files have no name while
    /// the run lasts, and the unlink jobs' files go in a directory of the run (see "Files
    /// left behind" above).
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

    /// Scheduler latency goal, milliseconds: from 2^-24 (one capacity unit) to 3600000 (an
    /// hour); checked with or without io-properties.
    #[arg(
        long = "io-latency-goal-ms",
        value_name = "MS",
        default_value_t = 0.75,
        value_parser = parse_latency_goal
    )]
    pub io_latency_goal_ms: f64,

    /// Shards (threads, each with its own io_uring and queue), 1 to 1024; default: all CPUs.
    /// More shards than CPUs get a warning: they share CPUs.
    #[arg(short = 'c', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_SHARDS as i64))]
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

    /// Physical block size to judge alignment against, bytes: a power of two from 512 to 1 MiB
    /// (default: io-properties `physical_block_size`, else sysfs). Drives misreport it: 4K
    /// drives often claim 512.
    #[arg(long = "physical-block-size", value_name = "SIZE", value_parser = parse_block_size)]
    pub physical_block_size: Option<u64>,

    /// Trace one request in N for alignment (1 to 4294967295; 1 = every request), a fixed
    /// interval. Without it, tracing is adaptive: every request is traced, but after each
    /// extent-map refresh (FIEMAP), if refreshes so far took more than 1% of the run time, the
    /// interval doubles.
    /// The interval in effect at the end is reported per job as `alignment_sampled_every` (with
    /// a NOTE on stderr when it was raised).
    #[arg(long = "trace-sample", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub trace_sample: Option<u32>,
}

/// Most shards (`--smp`).
pub const MAX_SHARDS: u32 = 1024;

/// Longest run (`--duration`), seconds: a week.
pub const MAX_DURATION_SECS: f64 = 604_800.0;

/// `--duration`: seconds, more than 0 and at most [`MAX_DURATION_SECS`].
fn parse_duration(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= MAX_DURATION_SECS => Ok(secs),
        Ok(secs) if !secs.is_finite() => Err(format!("`{text}` is not a finite number of seconds")),
        Ok(_) => Err(format!(
            "{text} is out of range: a run lasts more than 0 and at most {MAX_DURATION_SECS} \
             seconds (a week)"
        )),
        Err(_) => Err(format!("`{text}` is not a number of seconds")),
    }
}

/// `--io-latency-goal-ms`: milliseconds in the range the scheduler accepts.
fn parse_latency_goal(text: &str) -> Result<f64, String> {
    scheduler::cost_model::parse_latency_goal_ms(text).map_err(|e| e.to_string())
}

/// `--physical-block-size`: a power of two from 512 bytes to 1 MiB.
fn parse_block_size(text: &str) -> Result<u64, String> {
    let size = scheduler::io_properties::parse_size(text).map_err(|e| e.to_string())?;
    if size.is_power_of_two() && (512..=1 << 20).contains(&size) {
        Ok(size)
    } else {
        Err(format!(
            "{size} bytes is not a power of two from 512 to 1048576 (1 MiB)"
        ))
    }
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

    /// Issue 9: every numeric option is bounded where it is parsed (clap exits 2): 1.9e19 s
    /// panicked converting to a Duration, 1e19 s overflowed the clock in the shards, and a
    /// latency goal of 0 or NaN was accepted without io-properties.
    #[test]
    fn out_of_range_values_are_refused_at_parse_time() {
        for (option, bad, good) in [
            (
                "--duration",
                &[
                    "0", "-1", "NaN", "inf", "1.9e19", "1e300", "1e19", "604801", "x",
                ][..],
                "604800",
            ),
            ("--smp", &["0", "1025", "100000"], "1024"),
            (
                "--io-latency-goal-ms",
                &["0", "NaN", "-1", "inf", "3600001", "x"],
                "3600000",
            ),
            (
                "--physical-block-size",
                &["0", "256", "1000", "2M", "4096X"],
                "1M",
            ),
            ("--trace-sample", &["0", "4294967296"], "4294967295"),
        ] {
            for v in bad {
                let e = Cli::try_parse_from(["io-tester", option, v])
                    .expect_err(&format!("{option} {v} was accepted"));
                assert_eq!(e.exit_code(), 2, "{option} {v}");
            }
            assert!(
                Cli::try_parse_from(["io-tester", option, good]).is_ok(),
                "{option} {good}"
            );
        }
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
