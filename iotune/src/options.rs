//! Validated options: everything checkable without touching the filesystem. Ranges of single
//! values are checked where clap parses them (`cli.rs`); what is left here — request sizes,
//! combinations of options — is a bad command line too (exit 2).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::cli::{Cli, OptionsFormat, Rates, Saturation};

/// The run's settings after validation.
#[derive(Debug, Clone)]
pub struct Options {
    pub directories: Vec<PathBuf>,
    pub properties_file: Option<PathBuf>,
    pub options_file: Option<(PathBuf, OptionsFormat)>,
    /// Base duration D.
    pub duration: Duration,
    /// Deviation print threshold, percent.
    pub accuracy: f64,
    pub fs_check: bool,
    pub saturation_read: bool,
    pub saturation_write: bool,
    pub detect_physical_block_size: bool,
    /// Forced random request sizes, bytes (None = `Topology::direct_io_size`).
    pub random_read_size: Option<u64>,
    pub random_write_size: Option<u64>,
    /// Sizes to try for the best IOPS (empty = just the default/forced size).
    pub best_iops_sizes: Vec<u64>,
    /// `--allow-cached`: write figures the disks did not serve (with the warning).
    pub allow_cached: bool,
    pub force_io_depth: Option<u64>,
    pub sequential_read_size: u64,
    pub sequential_write_size: u64,
    pub depths: Depths,
    pub smp: Option<usize>,
    pub engine: Option<scheduler::engine::EngineKind>,
    pub report: Option<PathBuf>,
    /// `--html`: the page.
    pub html: Option<PathBuf>,
    /// `--fio-jobs`: the directory of fio job files.
    pub fio_jobs: Option<PathBuf>,
    pub file_size: Option<u64>,
    pub ramp: Duration,
    /// `--depth-sweep`: directions whose random IOPS are swept over in-flight depth.
    pub depth_sweep_read: bool,
    pub depth_sweep_write: bool,
    /// `--sustained`: the longest measured time per phase (None = fixed windows).
    pub sustained_max: Option<Duration>,
    /// `--mixed`: measure the read/write interference frontier after the four corners.
    pub mixed: bool,
    /// `--write-mixed-model`: write `duplex` / `rate_factor` from the frontier's verdict.
    pub write_mixed_model: bool,
    /// `--latency-target` with its percentile.
    pub latency_target: Option<LatencyTarget>,
    /// `--rates latency-bounded`: write the latency-bounded random IOPS instead of the maximum.
    pub latency_bounded_rates: bool,
}

/// `--latency-target MS --latency-percentile P`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyTarget {
    /// The bound, milliseconds.
    pub target_ms: f64,
    /// The percentile it bounds, percent (99 = p99).
    pub percentile: f64,
}

/// Per-phase in-flight overrides (per shard).
#[derive(Debug, Clone, Copy, Default)]
pub struct Depths {
    pub sequential_write: Option<usize>,
    pub sequential_read: Option<usize>,
    pub random_write: Option<usize>,
    pub random_read: Option<usize>,
}

const MAX_REQUEST: u64 = 1 << 30;

/// Most sizes `--get-best-iops-with-buffer-sizes` may list.
const MAX_BEST_IOPS_SIZES: usize = 16;

fn check_size(name: &str, v: u64) -> Result<()> {
    if v % 512 != 0 || v == 0 || v > MAX_REQUEST {
        bail!(
            "--{name} {v}: a request size must be a non-zero multiple of 512 bytes, at most 1 GiB"
        );
    }
    Ok(())
}

impl Options {
    /// Validates the parsed command line. Errors name the option and say what to do.
    pub fn from_cli(cli: Cli) -> Result<Options> {
        if cli.options_file.is_some() && cli.properties_file.is_none() {
            bail!("--options-file needs --properties-file: the options file points at the properties file");
        }
        let forced = |v: u64| (v != 0).then_some(v);
        let random_read_size = forced(cli.random_read_io_buffer_size);
        let random_write_size = forced(cli.random_write_io_buffer_size);
        if !cli.get_best_iops_with_buffer_sizes.is_empty()
            && (random_read_size.is_some() || random_write_size.is_some())
        {
            bail!(
                "--get-best-iops-with-buffer-sizes conflicts with --random-read-io-buffer-size/--random-write-io-buffer-size: \
                 give either a list of sizes to try or one forced size"
            );
        }
        if cli.detect_physical_block_size && random_write_size.is_some() {
            bail!(
                "--detect-physical-block-size conflicts with --random-write-io-buffer-size: detection chooses the random \
                 write size; drop one of them"
            );
        }
        for (name, v) in [
            ("random-read-io-buffer-size", random_read_size),
            ("random-write-io-buffer-size", random_write_size),
        ] {
            if let Some(v) = v {
                check_size(name, v)?;
            }
        }
        if cli.get_best_iops_with_buffer_sizes.len() > MAX_BEST_IOPS_SIZES {
            bail!(
                "--get-best-iops-with-buffer-sizes: {} sizes; at most {MAX_BEST_IOPS_SIZES} \
                 (each runs both random phases)",
                cli.get_best_iops_with_buffer_sizes.len()
            );
        }
        for &v in &cli.get_best_iops_with_buffer_sizes {
            check_size("get-best-iops-with-buffer-sizes", v)?;
        }
        check_size(
            "sequential-read-buffer-size",
            cli.sequential_read_buffer_size,
        )?;
        check_size(
            "sequential-write-buffer-size",
            cli.sequential_write_buffer_size,
        )?;
        let depths = Depths {
            sequential_write: cli.sequential_write_io_depth,
            sequential_read: cli.sequential_read_io_depth,
            random_write: cli.random_write_io_depth,
            random_read: cli.random_read_io_depth,
        };
        if let Some(s) = cli.file_size {
            if s < 2 * cli
                .sequential_write_buffer_size
                .max(cli.sequential_read_buffer_size)
            {
                bail!(
                    "--file-size {s}: each shard's file must hold at least two sequential requests"
                );
            }
        }
        if cli.write_mixed_model && !cli.mixed {
            bail!(
                "--write-mixed-model needs --mixed: the duplex / rate_factor it writes come from \
                 the mixed frontier; add --mixed, or drop --write-mixed-model"
            );
        }
        if cli.rates == Rates::LatencyBounded && cli.latency_target.is_none() {
            bail!(
                "--rates latency-bounded needs --latency-target MS: the latency-bounded rates are \
                 searched for that target; add e.g. --latency-target 10, or use --rates max"
            );
        }
        let mut dirs: Vec<PathBuf> = Vec::new();
        for d in cli.evaluation_directory {
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        let (saturation_read, saturation_write) = match cli.saturation {
            None => (false, false),
            Some(Saturation::Read) => (true, false),
            Some(Saturation::Write) => (false, true),
            Some(Saturation::Both) => (true, true),
        };
        Ok(Options {
            directories: dirs,
            options_file: cli.options_file.map(|p| (p, cli.format)),
            properties_file: cli.properties_file,
            duration: Duration::from_secs(cli.duration),
            accuracy: cli.accuracy as f64,
            fs_check: cli.fs_check,
            saturation_read,
            saturation_write,
            detect_physical_block_size: cli.detect_physical_block_size,
            random_read_size,
            random_write_size,
            best_iops_sizes: cli.get_best_iops_with_buffer_sizes,
            allow_cached: cli.allow_cached,
            force_io_depth: (cli.force_io_depth != 0).then_some(cli.force_io_depth),
            sequential_read_size: cli.sequential_read_buffer_size,
            sequential_write_size: cli.sequential_write_buffer_size,
            depths,
            smp: cli.smp,
            engine: cli.engine,
            report: cli.report,
            html: cli.html,
            fio_jobs: cli.fio_jobs,
            file_size: cli.file_size,
            ramp: Duration::from_secs_f64(cli.ramp_time),
            depth_sweep_read: matches!(cli.depth_sweep, Some(Saturation::Read | Saturation::Both)),
            depth_sweep_write: matches!(
                cli.depth_sweep,
                Some(Saturation::Write | Saturation::Both)
            ),
            sustained_max: cli
                .sustained
                .then_some(Duration::from_secs(cli.sustained_max)),
            mixed: cli.mixed,
            write_mixed_model: cli.write_mixed_model,
            latency_target: cli.latency_target.map(|target_ms| LatencyTarget {
                target_ms,
                percentile: cli.latency_percentile,
            }),
            latency_bounded_rates: cli.rates == Rates::LatencyBounded,
        })
    }

    /// Warm-up before sequential writes: max(3 s, 5% of D).
    pub fn warmup(&self) -> Duration {
        Duration::from_secs(3).max(self.duration.mul_f64(0.05))
    }

    /// Measured window of the sequential write phase: 0.7 D (all shards at once).
    pub fn sequential_write_window(&self) -> Duration {
        self.duration.mul_f64(0.7)
    }

    /// Measured window of each read and random phase: 0.1 D, at least 1 s so that it holds one
    /// whole per-second sample.
    pub fn short_window(&self) -> Duration {
        self.duration.mul_f64(0.1).max(Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn opts(args: &[&str]) -> Result<Options> {
        let mut v = vec!["iotune", "--evaluation-directory", "/x"];
        v.extend_from_slice(args);
        Options::from_cli(Cli::try_parse_from(v).unwrap())
    }

    #[test]
    fn windows_follow_the_duration() {
        let o = opts(&["--duration", "120"]).unwrap();
        assert_eq!(o.warmup(), Duration::from_secs(6));
        assert_eq!(o.sequential_write_window(), Duration::from_secs(84));
        assert_eq!(o.short_window(), Duration::from_secs(12));
        let o = opts(&["--duration", "4"]).unwrap();
        assert_eq!(o.warmup(), Duration::from_secs(3));
        assert_eq!(o.short_window(), Duration::from_secs(1));
    }

    #[test]
    fn bad_values_name_the_option() {
        for (args, needle) in [
            (
                &["--options-file", "o"][..],
                "--options-file needs --properties-file",
            ),
            (
                &["--random-read-io-buffer-size", "1000"][..],
                "--random-read-io-buffer-size 1000",
            ),
            (
                &[
                    "--get-best-iops-with-buffer-sizes",
                    "4k",
                    "--random-write-io-buffer-size",
                    "4k",
                ][..],
                "conflicts",
            ),
            (
                &[
                    "--detect-physical-block-size",
                    "--random-write-io-buffer-size",
                    "4k",
                ][..],
                "conflicts",
            ),
            (&["--file-size", "1M"][..], "--file-size"),
            (
                &["--write-mixed-model"][..],
                "--write-mixed-model needs --mixed",
            ),
            (
                &["--rates", "latency-bounded"][..],
                "--rates latency-bounded needs --latency-target",
            ),
            (
                &["--get-best-iops-with-buffer-sizes", &["4k"; 17].join(",")][..],
                "at most 16",
            ),
        ] {
            let e = opts(args).unwrap_err().to_string();
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }

    #[test]
    fn mixed_and_latency_options() {
        let o = opts(&[]).unwrap();
        assert!(!o.mixed && !o.write_mixed_model && o.latency_target.is_none());
        assert!(!o.latency_bounded_rates);
        let o = opts(&[
            "--mixed",
            "--write-mixed-model",
            "--latency-target",
            "2.5",
            "--latency-percentile",
            "99.9",
            "--rates",
            "latency-bounded",
        ])
        .unwrap();
        assert!(o.mixed && o.write_mixed_model && o.latency_bounded_rates);
        assert_eq!(
            o.latency_target,
            Some(LatencyTarget {
                target_ms: 2.5,
                percentile: 99.9
            })
        );
    }

    #[test]
    fn saturation_values() {
        let o = opts(&["--saturation", "both"]).unwrap();
        assert!(o.saturation_read && o.saturation_write);
        let o = opts(&["--saturation", "write"]).unwrap();
        assert!(!o.saturation_read && o.saturation_write);
    }
}
