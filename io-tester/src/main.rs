//! io-tester: runs Seastar-format fiber workloads through the scheduler and reports
//! throughput, IOPS, latency percentiles, scheduler statistics and request alignment.
//! See `io-tester --help` and shared/reference/io-tester.md.

mod cli;
mod report;
mod run;

use io_tester::workload;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use scheduler::alignment::AlignmentParams;
use scheduler::cost_model::CostConfig;
use scheduler::engine::{self, TestFile};
use scheduler::io_properties::DiskProperties;
use scheduler::io_properties::IoProperties;
use scheduler::io_queue::IoGroup;
use scheduler::topology::{block_device_from_sysfs, BlockDevice, Coverage, Topology};
use std::os::unix::fs::MetadataExt;

use crate::cli::{Cli, OutputFormat};
use crate::run::files::{is_block_device, Storage};
use crate::run::Settings;

static STOP: AtomicBool = AtomicBool::new(false);

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "--check-conf") {
        return workload::check_conf_cli(&args[1..]);
    }
    let cli = Cli::parse();
    let keep_files = cli.keep_files;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // Interrupted while reading the files: no data file exists yet.
        Err(e)
            if e.is::<BadInput>()
                && STOP.load(Ordering::Relaxed)
                && INTERRUPTED.load(Ordering::Relaxed) =>
        {
            eprintln!("io-tester: {e}");
            ExitCode::from(130)
        }
        Err(_) if STOP.load(Ordering::Relaxed) && INTERRUPTED.load(Ordering::Relaxed) => {
            if keep_files {
                eprintln!("io-tester: interrupted; the data files created so far were kept (--keep-files true)");
            } else {
                eprintln!("io-tester: interrupted; data files removed");
            }
            ExitCode::from(130)
        }
        Err(e) if e.is::<BadInput>() => {
            eprintln!("io-tester: error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("io-tester: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// A job file, scheduling-group file or io-properties that cannot be used: exit status 2.
#[derive(Debug)]
struct BadInput(String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// `e` as a [`BadInput`], with the causes its own message does not already give.
fn bad_input(e: impl std::error::Error) -> anyhow::Error {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    anyhow::Error::new(BadInput(text))
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn run(cli: Cli) -> Result<()> {
    // Ctrl-C stops every shard; they drain their requests (milliseconds) and remove their
    // files on the way out. A second Ctrl-C does not cut that short: named files (unlink jobs)
    // would be left behind.
    let _ = ctrlc::set_handler(|| {
        INTERRUPTED.store(true, Ordering::Relaxed);
        STOP.store(true, Ordering::Relaxed);
    });
    let conf_name = cli.conf.display().to_string();
    // The handler above is in place: SIGINT and SIGTERM stop the reading of large files too.
    let jobs = workload::read_jobs_file(&cli.conf, Some(&STOP)).map_err(bad_input)?;
    let groups = match &cli.sched_groups {
        Some(p) => workload::read_sched_groups_file(p, Some(&STOP)).map_err(bad_input)?,
        None => Vec::new(),
    };
    // (The parser has checked `iov_count` against the ring's limit and `reqsize`.)
    let classes = workload::resolve_job_classes(
        &jobs,
        cli.sched_groups.as_ref().map(|_| groups.as_slice()),
        &conf_name,
    )
    .map_err(bad_input)?;
    // (--smp is 1 to MAX_SHARDS, checked where it is parsed.)
    let cpus = std::thread::available_parallelism()
        .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX));
    let smp = cli.smp.unwrap_or(cpus.min(cli::MAX_SHARDS));
    if smp > cpus {
        eprintln!(
            "WARN: --smp {smp} is above the {cpus} CPU(s) this process may use: shards share \
             CPUs, so the figures show CPU contention as well as the disk"
        );
    }
    workload::check_shards(&jobs, smp, &conf_name).map_err(bad_input)?;
    let (kind, passed_over) = engine::select(cli.engine).context("--engine uring was requested")?;
    if let Some(e) = passed_over {
        eprintln!(
            "WARN: {:#}; falling back to the threads engine (no RWF_NOWAIT retries are counted)",
            anyhow::Error::from(e)
        );
    }

    // Storage: a directory or a block device.
    let meta = std::fs::metadata(&cli.storage)
        .with_context(|| format!("--storage {} cannot be used", cli.storage.display()))?;
    let (storage, topo_dir) = if is_block_device(&cli.storage) {
        let size = TestFile::open_device(&cli.storage, false)?
            .size()
            .context("cannot read the block device's size")?;
        (
            Storage::BlockDevice {
                path: cli.storage.clone(),
                size,
                writable: cli.allow_block_device_writes,
            },
            None,
        )
    } else if meta.is_dir() {
        let dir = cli.storage.canonicalize()?;
        (Storage::Directory(dir.clone()), Some(dir))
    } else {
        bail!(
            "--storage {}: give a directory for the data files, or a block device",
            cli.storage.display()
        );
    };

    // The disk model.
    let cfg = CostConfig {
        latency_goal_ms: cli.io_latency_goal_ms,
        io_groups: 1,
        shards_in_group: smp,
    };
    let props = match (&cli.io_properties_file, &cli.io_properties) {
        (Some(p), _) => Some((
            IoProperties::from_file_with_stop(p, Some(&STOP)).map_err(bad_input)?,
            p.display().to_string(),
        )),
        (None, Some(text)) => Some((
            IoProperties::parse_with_stop(text, "--io-properties", Some(&STOP))
                .map_err(bad_input)?,
            "--io-properties".to_owned(),
        )),
        (None, None) => None,
    };
    let disk = match &props {
        Some(((p, warnings), source)) => {
            for w in warnings {
                eprintln!("WARN: {w}");
            }
            Some(pick_disk(p, source, topo_dir.as_deref(), &cli.storage)?)
        }
        None => None,
    };
    let group = match &disk {
        Some(d) => IoGroup::from_properties(d, &cfg, Instant::now())
            .context("the io-properties cannot be used by the scheduler")?,
        None => IoGroup::unconfigured(&cfg, Instant::now()),
    };
    for w in group.model().warnings() {
        eprintln!("WARN: {w}");
    }

    // How alignment is judged, and the pitfalls worth a warning.
    let physical_override = cli
        .physical_block_size
        .or(disk.as_ref().and_then(|d| d.physical_block_size));
    let topology = match &topo_dir {
        Some(dir) => Some(
            Topology::for_directory(dir)
                .with_context(|| format!("cannot inspect {}", dir.display()))?,
        ),
        None => None,
    };
    let alignment = match &topology {
        Some(t) => {
            warn_pitfalls(t, physical_override);
            AlignmentParams::from_topology(t, physical_override, cli.trace_sample.unwrap_or(1))
        }
        None => AlignmentParams {
            fs_block_size: 4096,
            logical_block_size: 512,
            physical_block_size: physical_override.unwrap_or(4096),
            device_physical_block_size: 4096,
            md_chunk_size: None,
            partition_start: 0,
            sample_every: cli.trace_sample.unwrap_or(1),
        },
    };
    alignment.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let counted = CountedDevices::of(topology.as_ref(), &cli.storage);

    // Named files of runs killed earlier go first; this run's go in a directory of its own.
    let run_dir = match &storage {
        Storage::Directory(dir) => {
            for stale in run::files::remove_stale_run_dirs(dir)? {
                eprintln!(
                    "NOTE: removed {} ({} files), left by an io-tester run that was killed or \
                     crashed",
                    stale.path.display(),
                    stale.files
                );
            }
            let named = jobs
                .iter()
                .any(|j| j.kind == workload::job::JobKind::Unlink);
            if named && !cli.keep_files {
                Some(run::files::RunDir::create(dir)?)
            } else {
                None
            }
        }
        Storage::BlockDevice { .. } => None,
    };
    let settings = Settings {
        storage,
        duration: Duration::from_secs_f64(cli.duration),
        jobs,
        groups,
        classes,
        smp,
        kind,
        keep_files: cli.keep_files,
        run_dir,
        group,
        alignment,
        adaptive_tracing: cli.trace_sample.is_none(),
        counted_devices: counted.devices.clone(),
    };
    let run::RunResult {
        mut shards,
        before,
        after,
    } = run::run(&settings, &STOP)?;
    if INTERRUPTED.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    let served = report::served::judge_run(
        &shards,
        &before,
        &after,
        &counted.coverage,
        counted.write_copies,
    );
    for line in report::served::console(&served) {
        eprintln!("{line}");
    }
    report::served::attach(&mut shards, &served);
    match cli.output_format {
        OutputFormat::Yaml => print!("{}", report::to_yaml(&shards)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&shards)?),
    }
    Ok(())
}

/// The io-properties entry for the storage: for a directory, the entry whose mountpoint holds
/// it (the deepest); for a block device, the only entry. Never a guess: a model of another
/// disk would schedule this one wrongly.
fn pick_disk(
    props: &IoProperties,
    source: &str,
    dir: Option<&std::path::Path>,
    storage: &std::path::Path,
) -> Result<DiskProperties> {
    let mountpoints = || {
        let all: Vec<String> = props
            .disks
            .iter()
            .flat_map(|d| d.mountpoints.iter().map(|m| m.display().to_string()))
            .collect();
        if all.is_empty() {
            "none".to_owned()
        } else {
            all.join(", ")
        }
    };
    match dir {
        Some(dir) => match props.disk_for(dir) {
            Some(d) => Ok(d.clone()),
            None => bail!(
                "{source}: no disk entry has a mountpoint containing the storage directory {} \
                 (mountpoints: {}); add an entry (or a mountpoint) for the disk that holds it",
                dir.display(),
                mountpoints()
            ),
        },
        None => match props.disks.as_slice() {
            [d] => Ok(d.clone()),
            _ => bail!(
                "{source}: {} disk entries (mountpoints: {}), and --storage {} is a block \
                 device, which has no mountpoint to choose one by; give io-properties with only \
                 the entry for this device",
                props.disks.len(),
                mountpoints(),
                storage.display()
            ),
        },
    }
}

/// The devices whose counters account for the storage's I/O, how completely, and how many
/// copies the stack writes.
struct CountedDevices {
    devices: Vec<BlockDevice>,
    coverage: Coverage,
    write_copies: u32,
}

impl CountedDevices {
    /// For a directory, its topology's counted devices; for a block device, the device itself
    /// read from sysfs (a partition counts itself, md and dm their leaves).
    fn of(topology: Option<&Topology>, storage: &std::path::Path) -> CountedDevices {
        if let Some(t) = topology {
            return CountedDevices {
                devices: t.counted_devices().into_iter().cloned().collect(),
                coverage: t.coverage.clone(),
                write_copies: t.write_copies(),
            };
        }
        let sysfs = std::path::Path::new(scheduler::topology::SYSFS_ROOT);
        let found = std::fs::metadata(storage)
            .map_err(|e| format!("cannot stat {}: {e}", storage.display()))
            .and_then(|m| {
                let dev = scheduler::topology::fs::split_dev(m.rdev());
                block_device_from_sysfs(sysfs, dev)
                    .map_err(|e| format!("{:#}", anyhow::Error::from(e)))
            });
        match found {
            Ok((device, _)) => CountedDevices {
                devices: device.counted().into_iter().cloned().collect(),
                coverage: Coverage::Complete,
                write_copies: device.write_copies(),
            },
            Err(reason) => CountedDevices {
                devices: Vec::new(),
                coverage: Coverage::None {
                    reason: format!("the block device could not be read from sysfs ({reason})"),
                },
                write_copies: 1,
            },
        }
    }
}

fn warn_pitfalls(t: &Topology, physical_override: Option<u64>) {
    if t.fs_type != "xfs" {
        eprintln!(
            "WARN: {} is {}, not XFS: Seastar applications are tuned for XFS, results may differ",
            t.mountpoint.display(),
            t.fs_type
        );
    }
    let physical = physical_override.unwrap_or(t.physical_block_size());
    if t.fs_block_size < physical {
        eprintln!(
            "WARN: the filesystem block size ({} B) is smaller than the device's physical block size ({physical} B): \
             files may start at unaligned device offsets and writes cost read-modify-write; see the alignment section",
            t.fs_block_size
        );
    }
}
