//! iotune: measures the disk under one or more directories and writes io-properties.yaml.
//! See `iotune --help` and the README for units and options.

mod cli;
mod disk_lock;
mod extras;
mod latency_target;
mod mixed;
mod options;
mod phases;
mod progress;
mod report;
mod stats;
mod steady;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use clap::Parser;
use scheduler::engine::{self, EngineKind, TestFile};
use scheduler::io_properties::{DiskProperties, IoProperties};
use scheduler::topology::Topology;
use scheduler::Direction;

use crate::cli::{Cli, OptionsFormat};
use crate::options::Options;
use crate::phases::{with_deviation, Calibration, Depths};
use crate::progress::Progress;
use crate::report::{write_atomically, CachedFigure, DiskReport, Report};

static STOP: AtomicBool = AtomicBool::new(false);

const GIB: u64 = 1 << 30;

fn main() -> ExitCode {
    // Values out of range are refused by clap (exit 2); so are bad combinations and sizes.
    let opts = match Options::from_cli(Cli::parse()) {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("iotune: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) if STOP.load(Ordering::Relaxed) => {
            eprintln!("iotune: interrupted; no properties file was written and no test file is left behind");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("iotune: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(opts: Options) -> Result<()> {
    // First Ctrl-C: stop submitting, drain, exit 130. Test files have no name, so even a second
    // Ctrl-C (immediate exit) leaves nothing behind.
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::Relaxed) {
            std::process::exit(130);
        }
    });
    for (option, path) in [
        ("--properties-file", opts.properties_file.as_deref()),
        (
            "--options-file",
            opts.options_file.as_ref().map(|(p, _)| p.as_path()),
        ),
        ("--report", opts.report.as_deref()),
    ] {
        if let Some(path) = path {
            check_output_dir(option, path)?;
        }
    }
    let kind = choose_engine(opts.engine)?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let shards = opts.smp.unwrap_or(cpus.min(cli::MAX_SHARDS));
    if shards > cpus {
        eprintln!(
            "WARN: --smp {shards} is above the {cpus} CPU(s) this process may use: shards share \
             CPUs, so the figures may be the CPUs' limit rather than the disk's"
        );
    }

    let targets = resolve_targets(&opts.directories)?;
    // One calibration per disk: held until the run ends.
    let _locks = disk_lock::lock_disks(&targets)?;
    let progress = Progress::new();
    let mut report = Report {
        tool: "iotune-rs",
        version: env!("CARGO_PKG_VERSION"),
        engine: kind,
        shards,
        duration_s: opts.duration.as_secs_f64(),
        status: "running",
        disks: Vec::new(),
    };
    let mut properties = IoProperties { disks: Vec::new() };
    for (dir, topology) in targets {
        for w in &topology.warnings {
            eprintln!("WARN: {}: {w}", topology.mountpoint.display());
        }
        let outcome = measure(&opts, kind, shards, &dir, topology, &progress, &mut report);
        if let Err(e) = outcome {
            report.status = if STOP.load(Ordering::Relaxed) {
                "interrupted"
            } else {
                "failed"
            };
            if let Some(path) = &opts.report {
                // Keep what was measured; a failure to save must not hide the real error.
                if let Err(save) = report.save(path) {
                    eprintln!("WARN: could not save the report: {save:#}");
                }
            }
            return Err(e);
        }
        if let Some(d) = outcome? {
            properties.disks.push(d);
        }
    }
    let cached: Vec<(&Path, &CachedFigure)> = report
        .disks
        .iter()
        .flat_map(|d| d.cached_figures.iter().map(|c| (d.mountpoint.as_path(), c)))
        .collect();
    if !cached.is_empty() {
        let list = cached
            .iter()
            .map(|(mountpoint, c)| {
                format!(
                    "{} of {} (phase \"{}\": the disks served {:.1}% of the bytes and received \
                     {:.1}% of the requests iotune completed)",
                    c.figure,
                    mountpoint.display(),
                    c.phase,
                    c.fraction * 100.0,
                    c.request_fraction * 100.0
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        if !opts.allow_cached {
            report.status = "refused";
            if let Some(path) = &opts.report {
                report.save(path)?;
            }
            bail!(
                "refusing to write io-properties: {list} came from a cache, not from the disk, \
                 so no properties or options file was written; measure with requests the \
                 filesystem does directly (leave --random-read-io-buffer-size and \
                 --random-write-io-buffer-size at their defaults), or give --allow-cached to \
                 write these figures anyway"
            );
        }
        eprintln!(
            "WARN: writing figures the disk did not serve, as --allow-cached asks: {list} came \
             from a cache"
        );
    }
    report.status = "complete";
    if let Some(path) = &opts.report {
        report.save(path)?;
    }
    if opts.fs_check {
        return Ok(());
    }
    let yaml = mixed::properties_yaml(&properties);
    match &opts.properties_file {
        Some(path) => {
            println!("Writing result to {}", path.display());
            write_atomically(path, yaml.as_bytes())?;
            if let Some((opt_path, format)) = &opts.options_file {
                println!("Writing result to {}", opt_path.display());
                write_atomically(opt_path, options_line(path, *format).as_bytes())?;
            }
        }
        None => print!("{yaml}"),
    }
    Ok(())
}

/// The options-file line (ScyllaDB's io.conf).
fn options_line(properties: &Path, format: OptionsFormat) -> String {
    match format {
        OptionsFormat::Seastar => format!("io-properties-file={}\n", properties.display()),
        OptionsFormat::Envfile => format!(
            "SEASTAR_IO=\"--io-properties-file={}\"\n",
            properties.display()
        ),
    }
}

/// Fails before measuring when the output file `path` of `option` could not be written
/// afterwards: its directory is missing, read-only or immutable, or the path is a directory.
fn check_output_dir(option: &str, path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!(
            "{option} {}: cannot be written: directory {} does not exist",
            path.display(),
            dir.display()
        );
    }
    // A read-only or immutable directory is found now, not after the measurement.
    scheduler::atomic_file::check_writable(path)
        .with_context(|| format!("{option} {}: cannot be written", path.display()))
}

fn choose_engine(requested: Option<EngineKind>) -> Result<EngineKind> {
    let (kind, passed_over) = engine::select(requested).context("--engine uring was requested")?;
    if let Some(e) = passed_over {
        eprintln!(
            "WARN: {:#}; falling back to the threads engine (blocking pread/pwrite)",
            anyhow::Error::from(e)
        );
    }
    Ok(kind)
}

/// Checks each directory, finds its filesystem, keeps one directory per mountpoint.
fn resolve_targets(dirs: &[PathBuf]) -> Result<Vec<(PathBuf, Topology)>> {
    let mut out: Vec<(PathBuf, Topology)> = Vec::new();
    for dir in dirs {
        let meta = std::fs::metadata(dir).with_context(|| {
            format!(
                "evaluation directory {} cannot be used (create it, or fix the path)",
                dir.display()
            )
        })?;
        if !meta.is_dir() {
            bail!("evaluation directory {} is not a directory: give the directory the test files should go in", dir.display());
        }
        let canonical = dir
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", dir.display()))?;
        let topology = Topology::for_directory(&canonical).with_context(|| {
            format!("cannot find the block device under {}", canonical.display())
        })?;
        if out.iter().any(|(_, t)| t.mountpoint == topology.mountpoint) {
            eprintln!(
                "iotune: {} is on {}, already measured; skipping it",
                dir.display(),
                topology.mountpoint.display()
            );
            continue;
        }
        out.push((canonical, topology));
    }
    Ok(out)
}

/// Memory alignment for the O_DIRECT buffers, bytes: the filesystem's DIO memory alignment
/// (statx), at least 512; 4096 when the kernel does not say (before Linux 6.1).
fn buffer_align(topology: &Topology) -> usize {
    topology
        .dio_mem_align
        .map_or(4096, |a| (a as usize).max(512))
}

/// Sanity checks, then (unless --fs-check) the phases; returns the disk entry.
fn measure(
    opts: &Options,
    kind: EngineKind,
    shards: usize,
    dir: &Path,
    topology: Topology,
    progress: &Progress,
    report: &mut Report,
) -> Result<Option<DiskProperties>> {
    let mountpoint = topology.mountpoint.clone();
    let mut warnings: Vec<String> = topology.warnings.iter().map(|w| w.to_string()).collect();

    // Sanity: O_DIRECT, non-blocking submission, free space.
    let align = buffer_align(&topology);
    let probe = TestFile::create_unlinked(dir, 0)
        .with_context(|| format!("sanity check on {}", mountpoint.display()))?
        .with_buffer_align(align);
    let check = engine::submission_check(
        kind,
        &probe,
        1000,
        topology.logical_block_size().max(4096) as usize,
    )
    .with_context(|| format!("sanity check on {}", mountpoint.display()))?;
    drop(probe);
    if let Some(c) = check {
        if c.context_switches_per_write > 0.1 {
            bail!(
                "async I/O is not supported on {}: submissions block ({:.2} context switches per write); \
                 use XFS or ext4 on a local disk",
                mountpoint.display(),
                c.context_switches_per_write
            );
        }
        if c.would_block_share > 0.1 {
            let w = format!(
                "{:.0}% of appending writes on {} would have blocked (the filesystem allocates synchronously; \
                 io_uring hands them to kernel workers, which adds latency); XFS allocates without blocking",
                c.would_block_share * 100.0,
                mountpoint.display()
            );
            eprintln!("WARN: {w}");
            warnings.push(w);
        }
    }
    let free = engine::available_space(dir)
        .with_context(|| format!("cannot read free space of {}", dir.display()))?;
    if free < 10 * GIB {
        let w = format!(
            "only {:.1} GiB free in {}: results on a nearly full filesystem may be pessimistic",
            free as f64 / GIB as f64,
            dir.display()
        );
        eprintln!("WARN: {w}");
        warnings.push(w);
    }
    let min_file = 2 * opts.sequential_write_size.max(opts.sequential_read_size);
    let file_size = match opts.file_size {
        Some(s) => {
            let need = s.saturating_mul(shards as u64);
            if need > free {
                bail!(
                    "the test files need {need} bytes ({shards} x {s}) but only {free} bytes are free in {}: lower --file-size or --smp, or free space",
                    dir.display()
                );
            }
            s
        }
        None => free / (2 * shards as u64) / (1 << 20) * (1 << 20),
    };
    if file_size < min_file {
        bail!("not enough free space in {}: {free} bytes free, each of {shards} shards needs at least {min_file}", dir.display());
    }
    let leaves = topology.leaf_count();
    let bound = topology.in_flight_bound();
    if bound.is_none() && opts.force_io_depth.is_none() {
        let w = "the disk's in-flight bound (queue/nr_requests) is unknown: assuming 128; use --force-io-depth to set it".to_string();
        eprintln!("WARN: {w}");
        warnings.push(w);
    }
    let depths = Depths::derive(opts, leaves, bound, shards);
    let logical = topology.logical_block_size().max(512);
    // The smallest random request the filesystem does directly (btrfs serves smaller direct
    // I/O from its page cache).
    let direct = topology.direct_io_size().max(logical);
    let forced = [
        ("random-read-io-buffer-size", opts.random_read_size),
        ("random-write-io-buffer-size", opts.random_write_size),
    ]
    .into_iter()
    .filter_map(|(name, size)| Some((name, size?)))
    .chain(
        opts.best_iops_sizes
            .iter()
            .map(|&s| ("get-best-iops-with-buffer-sizes", s)),
    );
    for (name, s) in forced {
        if s % logical != 0 {
            bail!(
                "--{name} {s} is not a multiple of the logical block size {logical} of {}",
                mountpoint.display()
            );
        }
        if s < direct {
            let w = small_request_warning(name, s, direct, &topology);
            eprintln!("WARN: {w}");
            warnings.push(w);
        }
    }
    report.disks.push(DiskReport {
        evaluation_directory: dir.to_path_buf(),
        mountpoint: mountpoint.clone(),
        topology: topology.clone(),
        warnings,
        submission_check: check,
        free_bytes: free,
        file_size_per_shard: file_size,
        read_working_set_bytes: 0,
        phases: Vec::new(),
        results: None,
        depth_sweeps: Vec::new(),
        cached_figures: Vec::new(),
        mixed: None,
        latency_targets: Vec::new(),
    });
    if opts.fs_check {
        println!(
            "{}: O_DIRECT supported, submissions do not block{}, {:.1} GiB free",
            mountpoint.display(),
            check
                .map(|c| format!(
                    " ({:.2} context switches per write, {:.0}% of appending writes would have blocked)",
                    c.context_switches_per_write,
                    c.would_block_share * 100.0
                ))
                .unwrap_or_default(),
            free as f64 / GIB as f64
        );
        return Ok(None);
    }

    let files = (0..shards)
        .map(|_| TestFile::create_unlinked(dir, file_size).map(|f| f.with_buffer_align(align)))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("cannot create the test files in {}", dir.display()))?;
    if topology.fs_type == "xfs" {
        // As the reference: one extent per file, so writes never wait on allocation.
        for f in &files {
            if let Err(e) = f.set_extent_size_hint(file_size.min(u32::MAX as u64 / 4096 * 4096)) {
                eprintln!("WARN: cannot set the XFS extent size hint on a test file: {e}");
                break;
            }
        }
    }
    let mut cal = Calibration::new(
        opts, kind, &STOP, progress, &topology, files, depths, file_size,
    );
    let save = |report: &Report| -> Result<()> {
        opts.report
            .as_ref()
            .map(|p| report.save(p))
            .unwrap_or(Ok(()))
    };
    macro_rules! disk {
        () => {
            report.disks.last_mut().expect("pushed above")
        };
    }
    let acc = opts.accuracy;

    // Figures for io-properties whose phase a cache served (see served.rs in the library).
    let mut cached_figures: Vec<CachedFigure> = Vec::new();
    println!("Warming up the disk for sequential write job...");
    let sw = cal.sequential_write(disk!())?;
    cached_figures.extend(sw.cached_figure("write_bandwidth", "sequential write"));
    println!(
        "Measuring sequential write bandwidth: {}",
        with_deviation(
            format!("{:.0} MiB/s", sw.bandwidth / (1 << 20) as f64),
            sw.deviation,
            acc
        )
    );
    save(report)?;
    let sr = cal.sequential_read(disk!())?;
    cached_figures.extend(sr.cached_figure("read_bandwidth", "sequential read"));
    println!(
        "Measuring sequential read bandwidth: {}",
        with_deviation(
            format!("{:.0} MiB/s", sr.bandwidth / (1 << 20) as f64),
            sr.deviation,
            acc
        )
    );
    disk!().read_working_set_bytes = cal.working_set();
    save(report)?;

    let mut detected = None;
    if opts.detect_physical_block_size {
        let (size, cached) = cal.detect_physical_block_size(disk!())?;
        cached_figures.extend(cached);
        println!("Detected physical block size: {size} bytes");
        if size != topology.physical_block_size() {
            let w = format!(
                "measured physical block size {size} differs from the {} bytes sysfs reports: the disk may be lying",
                topology.physical_block_size()
            );
            eprintln!("WARN: {w}");
            disk!().warnings.push(w);
        }
        detected = Some(size);
        save(report)?;
    }

    let write_sizes: Vec<u64> = if !opts.best_iops_sizes.is_empty() {
        opts.best_iops_sizes.clone()
    } else {
        vec![opts.random_write_size.or(detected).unwrap_or(direct)]
    };
    let read_sizes: Vec<u64> = if !opts.best_iops_sizes.is_empty() {
        opts.best_iops_sizes.clone()
    } else {
        vec![opts.random_read_size.unwrap_or(direct)]
    };
    let mut best_write: Option<(phases::Outcome, u64)> = None;
    for &s in &write_sizes {
        let o = cal.random(
            Direction::Write,
            s,
            &format!("random write {s}"),
            false,
            disk!(),
        )?;
        if best_write.as_ref().is_none_or(|(b, _)| o.beats(b)) {
            best_write = Some((o, s));
        }
        save(report)?;
    }
    let (rw, rw_size) = best_write.expect("at least one size");
    cached_figures.extend(rw.cached_figure("write_iops", &format!("random write {rw_size}")));
    println!(
        "Measuring random write IOPS: {}",
        with_deviation(format!("{:.0} IOPS", rw.iops), rw.deviation, acc)
    );
    let mut best_read: Option<(phases::Outcome, u64)> = None;
    for &s in &read_sizes {
        let o = cal.random(
            Direction::Read,
            s,
            &format!("random read {s}"),
            false,
            disk!(),
        )?;
        if best_read.as_ref().is_none_or(|(b, _)| o.beats(b)) {
            best_read = Some((o, s));
        }
        save(report)?;
    }
    let (rr, rr_size) = best_read.expect("at least one size");
    cached_figures.extend(rr.cached_figure("read_iops", &format!("random read {rr_size}")));
    println!(
        "Measuring random read IOPS: {}",
        with_deviation(format!("{:.0} IOPS", rr.iops), rr.deviation, acc)
    );

    let mut results = phases::results(&sw, &sr, &rw, &rr, rw_size, rr_size);
    results.physical_block_size = detected;
    if opts.saturation_read {
        let (l, cached) = cal.saturation_length(Direction::Read, disk!())?;
        cached_figures.extend(cached);
        println!("Measuring read saturation length: {l} bytes");
        results.read_saturation_length = Some(l);
    }
    if opts.saturation_write {
        let (l, cached) = cal.saturation_length(Direction::Write, disk!())?;
        cached_figures.extend(cached);
        println!("Measuring write saturation length: {l} bytes");
        results.write_saturation_length = Some(l);
    }
    for (on, direction, size) in [
        (opts.depth_sweep_read, Direction::Read, rr_size),
        (opts.depth_sweep_write, Direction::Write, rw_size),
    ] {
        if !on {
            continue;
        }
        let sweep = cal.depth_sweep(direction, size, disk!())?;
        let best = sweep.points.iter().map(|p| p.iops).fold(0.0, f64::max);
        println!(
            "Measuring random {} knee: {} in flight ({} per shard), {:.0} IOPS of the best {best:.0}",
            direction,
            sweep.knee_in_flight,
            sweep.knee_in_flight_per_shard,
            sweep
                .points
                .iter()
                .find(|p| p.in_flight_per_shard == sweep.knee_in_flight_per_shard)
                .map_or(0.0, |p| p.iops),
        );
        disk!().depth_sweeps.push(sweep);
        save(report)?;
    }
    extras::after_corners(&mut cal, &mut results, disk!(), &mut cached_figures)?;
    disk!().results = Some(results.clone());
    disk!().cached_figures = cached_figures;
    save(report)?;

    let mut d = DiskProperties::new(
        mountpoint,
        results.read_iops,
        results.read_bandwidth,
        results.write_iops,
        results.write_bandwidth,
    );
    d.read_saturation_length = results.read_saturation_length;
    d.write_saturation_length = results.write_saturation_length;
    d.physical_block_size = results.physical_block_size;
    extras::apply(disk!(), opts.write_mixed_model, &mut d);
    Ok(Some(d))
}

/// The warning for a forced random request size below what the filesystem does directly.
fn small_request_warning(option: &str, size: u64, direct: u64, topology: &Topology) -> String {
    let dio = topology
        .dio_offset_align
        .map_or("not reported by statx".to_owned(), |a| format!("{a} bytes"));
    format!(
        "--{option} {size} is smaller than {direct} bytes, the smallest request {} on {} is \
         known to do directly (filesystem block size {} bytes, direct-I/O alignment {dio}, \
         physical block size {} bytes): the filesystem may serve it from its page cache (btrfs \
         does) or turn it into read-modify-write; the served-by-the-disk check of each phase \
         tells which",
        topology.fs_type,
        topology.mountpoint.display(),
        topology.fs_block_size,
        topology.physical_block_size()
    )
}
