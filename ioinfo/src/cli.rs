//! Command line of `ioinfo` (see `shared/reference/io-tester.md`, section "ioinfo").

use std::path::PathBuf;

use clap::{value_parser, CommandFactory, Parser, ValueEnum};
use scheduler::io_properties::parse_size;

/// Smallest request size the scheduler knows (one 512-byte block).
const MIN_REQSIZE: u64 = 512;

/// Largest `--max-reqsize`, bytes (1 GiB, the largest request iotune measures).
const MAX_REQSIZE: u64 = 1 << 30;

/// Most shards, and most IO groups.
pub const MAX_SHARDS: u32 = 1024;

/// Prints the I/O scheduler's numbers for a disk: the cost model, token bucket and maximum
/// request lengths derived from io-properties (Seastar's ioinfo), as one YAML (or JSON)
/// document. Without io-properties it prints the unconfigured placeholder (zero cost).
///
/// With --check it instead prints a table of the read/write IOPS and bandwidths implied by the
/// scheduler's integers beside the configured ones, then drives the scheduler itself (all
/// --smp shards in --num-io-groups groups) against an instant device on a simulated clock and
/// prints, per direction and request size from 512 bytes to the maximum length, the IOPS it
/// lets through beside what its cost model allows and what io-properties say; it exits 1 if
/// any figure falls short by more than --tolerance.
///
/// Exit status: 0 success, 1 failed --check, 2 bad input (file, directory, option; a value out
/// of its range is refused before any work).
#[derive(Debug, Clone, Parser)]
#[command(name = "ioinfo", version)]
pub struct Cli {
    /// io-properties YAML file describing the disks.
    #[arg(long, value_name = "FILE", conflicts_with = "io_properties")]
    pub io_properties_file: Option<PathBuf>,

    /// io-properties YAML given inline (e.g. "disks: [{mountpoint: /, read_iops: ...}]").
    #[arg(long, value_name = "YAML")]
    pub io_properties: Option<String>,

    /// Directory whose disk to describe: picks the io-properties entry whose mountpoint holds
    /// it, and gives the printed `device` (its st_dev).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub directory: PathBuf,

    /// Largest request size listed under `capacities`, bytes, 512 to 1 GiB; suffixes k/K, M, G,
    /// T allowed (binary). Every power of two from 512 up to it is listed.
    #[arg(long, value_name = "SIZE", default_value = "128K", value_parser = parse_reqsize)]
    pub max_reqsize: u64,

    /// Latency goal of the I/O scheduler, milliseconds: from 2^-24 (one capacity unit) to
    /// 3600000 (an hour).
    #[arg(long, value_name = "MS", default_value_t = 0.75, value_parser = parse_latency_goal)]
    pub io_latency_goal_ms: f64,

    /// Number of IO groups sharing the disk, 1 to 1024 (each gets 1/N of its rates); more
    /// groups than shards get a warning: some groups would have no shard.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = value_parser!(u32).range(1..=i64::from(MAX_SHARDS)))]
    pub num_io_groups: u32,

    /// Number of shards, 1 to 1024 (default: all available CPUs); shards per IO group = smp /
    /// groups.
    #[arg(short = 'c', long, value_name = "N", value_parser = value_parser!(u32).range(1..=i64::from(MAX_SHARDS)))]
    pub smp: Option<u32>,

    /// Output format.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = OutputFormat::Yaml)]
    pub output_format: OutputFormat,

    /// Check that the scheduler's integers reproduce the configured rates (needs io-properties);
    /// prints a table instead of the document, exits 1 on failure.
    #[arg(long)]
    pub check: bool,

    /// Largest accepted relative error for --check, percent (0 to 100).
    #[arg(long, value_name = "PCT", default_value_t = 5.0, value_parser = parse_tolerance)]
    pub tolerance: f64,
}

/// How the document (or the check result) is written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// One YAML document, keys in the reference's order.
    Yaml,
    /// The same content as JSON.
    Json,
}

impl Cli {
    /// Shards sharing one IO group: `smp / groups`, at least 1; `smp` defaults to the CPUs this
    /// process may run on.
    pub fn shards_in_group(&self) -> u32 {
        (self.smp() / self.num_io_groups).max(1)
    }

    /// Shards: `--smp`, or the CPUs this process may run on (at most [`MAX_SHARDS`]).
    pub fn smp(&self) -> u32 {
        self.smp.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
                .min(MAX_SHARDS)
        })
    }
}

/// The clap command, for `--help` and the consistency test.
pub fn build_command() -> clap::Command {
    Cli::command()
}

fn parse_reqsize(s: &str) -> Result<u64, String> {
    let size = parse_size(s).map_err(|e| e.to_string())?;
    if size < MIN_REQSIZE {
        return Err(format!(
            "{size} is below the smallest request size, {MIN_REQSIZE} bytes"
        ));
    }
    if size > MAX_REQSIZE {
        return Err(format!(
            "{size} is above the largest listed request size, {MAX_REQSIZE} bytes (1 GiB)"
        ));
    }
    Ok(size)
}

fn parse_latency_goal(s: &str) -> Result<f64, String> {
    scheduler::cost_model::parse_latency_goal_ms(s).map_err(|e| e.to_string())
}

fn parse_tolerance(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(t) if (0.0..=100.0).contains(&t) => Ok(t),
        _ => Err(format!("`{s}` is not a percentage from 0 to 100")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_is_consistent() {
        build_command().debug_assert();
    }

    #[test]
    fn defaults() {
        let cli = Cli::try_parse_from(["ioinfo"]).unwrap();
        assert_eq!(cli.max_reqsize, 128 << 10);
        assert_eq!(cli.io_latency_goal_ms, 0.75);
        assert_eq!(cli.num_io_groups, 1);
        assert_eq!(cli.directory, PathBuf::from("."));
        assert_eq!(cli.output_format, OutputFormat::Yaml);
        assert_eq!(cli.tolerance, 5.0);
        assert!(!cli.check);
        assert!(cli.shards_in_group() >= 1);
    }

    #[test]
    fn sizes_and_shards() {
        let cli = Cli::try_parse_from([
            "ioinfo",
            "--max-reqsize",
            "1M",
            "-c",
            "7",
            "--num-io-groups",
            "2",
        ])
        .unwrap();
        assert_eq!(cli.max_reqsize, 1 << 20);
        assert_eq!(cli.shards_in_group(), 3);
        let cli = Cli::try_parse_from(["ioinfo", "--smp", "2", "--num-io-groups", "4"]).unwrap();
        assert_eq!(cli.shards_in_group(), 1);
    }

    #[test]
    fn bad_values_are_rejected() {
        for args in [
            &["ioinfo", "--max-reqsize", "256"][..],
            &["ioinfo", "--max-reqsize", "12X"],
            &["ioinfo", "--io-latency-goal-ms", "0"],
            &["ioinfo", "--io-latency-goal-ms", "nan"],
            &["ioinfo", "--num-io-groups", "0"],
            &["ioinfo", "--smp", "0"],
            &["ioinfo", "--tolerance", "-1"],
            &["ioinfo", "--tolerance", "101"],
            &["ioinfo", "--max-reqsize", "2G"],
            &["ioinfo", "--smp", "1025"],
            &["ioinfo", "--num-io-groups", "1025"],
            &["ioinfo", "--io-latency-goal-ms", "3600001"],
            &["ioinfo", "--output-format", "xml"],
            &[
                "ioinfo",
                "--io-properties",
                "x",
                "--io-properties-file",
                "f",
            ],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }
}
