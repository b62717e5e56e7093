//! Data files of one job on one shard: created, sized and filled as the job's options say, and
//! removed afterwards unless `--keep-files true`.
//!
//! Data files have no name (`O_TMPFILE`, or created and unlinked at once), so they never
//! outlive the process. Unlink jobs need named files: unless they are kept, those live in the
//! run's own directory, [`RunDir`] (`STORAGE/io-tester-run.PID`), which the run holds an
//! `flock` on while it lives. A run killed with SIGKILL (or crashed) leaves that directory
//! behind; the next run on the same storage removes it ([`remove_stale_run_dirs`]): a lock
//! nobody holds belongs to a process that is gone, whatever its pid now names (the kernel
//! drops the lock with the process, also across pid namespaces sharing the storage).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use scheduler::engine::{self, EngineKind, TestFile};

use crate::workload::job::{Job, JobKind};

/// Where the jobs' data lives.
#[derive(Debug, Clone)]
pub enum Storage {
    /// A directory: one file per job and shard.
    Directory(PathBuf),
    /// A block device, split evenly between shards.
    BlockDevice {
        /// Device node.
        path: PathBuf,
        /// Capacity, bytes.
        size: u64,
        /// Whether write jobs may run (`--allow-block-device-writes`).
        writable: bool,
    },
}

/// One job's file on one shard.
pub struct JobFile {
    /// The open file.
    pub file: Arc<TestFile>,
    /// First byte requests may touch.
    pub start: u64,
    /// Bytes requests may touch (the file's size; 0 for a fresh append file).
    pub size: u64,
    /// Files an unlink job removes while it runs.
    pub unlink_files: Vec<PathBuf>,
}

/// Removes named files and directories when dropped (also on error and Ctrl-C paths).
#[derive(Default)]
pub struct Cleanup {
    paths: Vec<PathBuf>,
}

impl Cleanup {
    /// Remembers `p` for removal.
    pub fn add(&mut self, p: PathBuf) {
        self.paths.push(p);
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Files first, then the directories that held them.
        for p in self.paths.iter().rev() {
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(p);
            } else {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Prefix of a run's own directory; the process id (and, should that name be taken by a
/// live run in another pid namespace, `-N`) follows.
const RUN_DIR_PREFIX: &str = "io-tester-run.";

/// The run's own directory for named files (unlink jobs' files, unless kept):
/// `STORAGE/io-tester-run.PID`, locked (`flock`) while the run lives, removed with everything
/// in it when dropped (at the end of the run, on errors and Ctrl-C).
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    /// The directory itself, opened and locked: the lock tells other runs it is in use.
    _lock: File,
}

impl RunDir {
    /// Creates and locks the run's directory in `storage`.
    ///
    /// # Errors
    ///
    /// The directory cannot be created, opened or locked (the message names it).
    pub fn create(storage: &Path) -> Result<RunDir> {
        // Shared lock on the storage directory: a sweep (exclusive) never sees this directory
        // between its creation and its lock.
        let _storage = lock(storage, libc::LOCK_SH)?;
        let pid = std::process::id();
        for n in 0u32.. {
            let name = match n {
                0 => format!("{RUN_DIR_PREFIX}{pid}"),
                n => format!("{RUN_DIR_PREFIX}{pid}-{n}"),
            };
            let path = storage.join(name);
            match std::fs::create_dir(&path) {
                Ok(()) => {}
                // A live run elsewhere with our pid (the sweep before us removed stale ones).
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", path.display()))
                }
            }
            let _lock = lock(&path, libc::LOCK_EX)?;
            return Ok(RunDir { path, _lock });
        }
        unreachable!("the loop returns")
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Opens `path` (a directory) and takes `flock` `how` on it, waiting for it.
fn lock(path: &Path, how: libc::c_int) -> Result<File> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    flock(&f, how).with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(f)
}

fn flock(f: &File, how: libc::c_int) -> std::io::Result<()> {
    loop {
        // SAFETY: flock on a descriptor we own; no memory is passed.
        if unsafe { libc::flock(f.as_raw_fd(), how) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A directory an earlier run left in the storage, removed by [`remove_stale_run_dirs`].
#[derive(Debug)]
pub struct StaleRunDir {
    /// Where it was.
    pub path: PathBuf,
    /// Files it held (in all its subdirectories).
    pub files: u64,
}

/// Removes the run directories ([`RunDir`]) in `storage` whose lock nobody holds: their runs
/// were killed or crashed. Directories of runs still going are left alone. Returns what was
/// removed, for the caller to say so.
///
/// # Errors
///
/// The storage directory cannot be read or locked, or a stale directory cannot be removed
/// (the message names it and says what to do).
pub fn remove_stale_run_dirs(storage: &Path) -> Result<Vec<StaleRunDir>> {
    let _storage = lock(storage, libc::LOCK_EX)?;
    let mut removed = Vec::new();
    let entries =
        std::fs::read_dir(storage).with_context(|| format!("cannot read {}", storage.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", storage.display()))?;
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(RUN_DIR_PREFIX)) else {
            continue;
        };
        if rest.is_empty() || !rest.chars().all(|c| c.is_ascii_digit() || c == '-') {
            continue;
        }
        let path = entry.path();
        let Ok(dir) = File::open(&path) else { continue };
        // Held: a run is using it.
        if flock(&dir, libc::LOCK_EX | libc::LOCK_NB).is_err() {
            continue;
        }
        let files = count_files(&path);
        std::fs::remove_dir_all(&path).with_context(|| {
            format!(
                "cannot remove {}, left by an earlier io-tester run that was killed; remove it \
                 (rm -r {})",
                path.display(),
                path.display()
            )
        })?;
        removed.push(StaleRunDir { path, files });
    }
    Ok(removed)
}

/// Files below `dir`, in every subdirectory.
fn count_files(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok())
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => count_files(&e.path()),
                _ => 1,
            })
            .sum()
    })
}

/// The job's name with everything but ASCII letters, digits, `-` and `_` replaced by `_`.
fn safe_name(job: &Job) -> String {
    job.name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `io-tester-JOB-SHARD`: the name of a kept file (`.data`) or unlink directory.
fn name(job: &Job, shard: u32) -> String {
    format!("io-tester-{}-{shard}", safe_name(job))
}

/// Creates and prepares the file for `job` on `shard`: read jobs get `size` bytes written
/// (so reads never touch holes), overwrite jobs a sparse or fallocated file, append jobs an
/// empty file, unlink jobs `files_count` files (in `run_dir`, unless `keep`). `keep` names
/// files so they stay after the run. Raising `stop` (Ctrl-C) ends the preparation early with
/// [`super::Stopped`].
#[allow(clippy::too_many_arguments)] // the run's settings a file needs; all plain values
pub fn prepare(
    storage: &Storage,
    run_dir: Option<&Path>,
    job: &Job,
    shard: u32,
    nshards: u32,
    size: u64,
    keep: bool,
    kind: EngineKind,
    cleanup: &mut Cleanup,
    stop: &AtomicBool,
) -> Result<JobFile> {
    let dsync = job.options.dsync;
    match storage {
        Storage::BlockDevice {
            path,
            size: dev_size,
            writable,
        } => {
            let writes = matches!(
                job.kind,
                JobKind::Overwrite | JobKind::RandWrite | JobKind::Append
            );
            if writes && !writable {
                bail!(
                    "job '{}' writes, and {} is a block device: writing DESTROYS its data; pass --allow-block-device-writes if that is intended",
                    job.name,
                    path.display()
                );
            }
            if matches!(job.kind, JobKind::Append | JobKind::Unlink) {
                bail!(
                    "job '{}': {:?} jobs need a directory, not the block device {}",
                    job.name,
                    job.kind,
                    path.display()
                );
            }
            let per = dev_size / nshards as u64 / (1 << 20) * (1 << 20);
            let file = TestFile::open_device(path, writes)
                .with_context(|| format!("cannot open {}", path.display()))?;
            Ok(JobFile {
                file: Arc::new(file),
                start: per * shard as u64,
                size: per,
                unlink_files: Vec::new(),
            })
        }
        Storage::Directory(dir) => {
            let base = dir.join(name(job, shard));
            if job.kind == JobKind::Unlink {
                let count = job.files_count.unwrap_or(0);
                // Kept files go where the user will look for them; the others in the run's
                // directory, which the next run removes if this one is killed.
                let sub = match run_dir {
                    Some(run_dir) if !keep => run_dir.join(format!("{}-{shard}", safe_name(job))),
                    _ => base,
                };
                match std::fs::create_dir(&sub) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
                        "job '{}': the directory {} already exists, kept by an earlier run with \
                         --keep-files true (or made by another program); remove it (rm -r {}) \
                         and run again",
                        job.name,
                        sub.display(),
                        sub.display()
                    ),
                    Err(e) => {
                        return Err(e).with_context(|| format!("cannot create {}", sub.display()))
                    }
                }
                if !keep {
                    cleanup.add(sub.clone());
                }
                let each = size.checked_div(count).unwrap_or(0);
                let mut files = Vec::with_capacity(count as usize);
                for i in 0..count {
                    if stop.load(Ordering::Relaxed) {
                        return Err(super::Stopped.into());
                    }
                    let p = sub.join(i.to_string());
                    let f = std::fs::File::create(&p)
                        .with_context(|| format!("cannot create {}", p.display()))?;
                    f.set_len(each)
                        .with_context(|| format!("cannot size {}", p.display()))?;
                    files.push(p);
                }
                // A placeholder descriptor: unlink jobs submit no reads or writes.
                let file = TestFile::create_unlinked(dir, 0)?;
                return Ok(JobFile {
                    file: Arc::new(file),
                    start: 0,
                    size: 0,
                    unlink_files: files,
                });
            }
            let path = if keep {
                base.with_extension("data")
            } else {
                dir.to_path_buf()
            };
            let initial = if job.kind == JobKind::Append { 0 } else { size };
            let file = TestFile::create(&path, keep, initial, dsync)
                .with_context(|| format!("cannot create the data file of job '{}'", job.name))?;
            if let Some(hint) = job.options.extent_allocation_size_hint {
                if let Err(e) = file.set_extent_size_hint(hint) {
                    eprintln!(
                        "WARN: job '{}': extent size hint not applied ({e}); it needs XFS",
                        job.name
                    );
                }
            }
            match job.kind {
                JobKind::SeqRead | JobKind::RandRead => {
                    engine::fill(
                        kind,
                        &file,
                        0,
                        size,
                        (1 << 20).min(size.max(4096)) as usize,
                        4,
                        stop,
                    )
                    .map_err(|e| match e {
                        engine::EngineError::Interrupted => super::Stopped.into(),
                        e => anyhow::Error::new(e)
                            .context(format!("cannot write the data job '{}' reads", job.name)),
                    })?;
                }
                _ if job.options.fallocate && initial > 0 => {
                    file.allocate(0, initial)
                        .with_context(|| format!("fallocate failed for job '{}'", job.name))?;
                }
                _ => {}
            }
            Ok(JobFile {
                file: Arc::new(file),
                start: 0,
                size: initial,
                unlink_files: Vec::new(),
            })
        }
    }
}

/// Whether `p` is a block device.
pub fn is_block_device(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p)
        .map(|m| m.file_type().is_block_device())
        .unwrap_or(false)
}
