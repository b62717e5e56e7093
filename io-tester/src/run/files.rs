//! Data files of one job on one shard: created, sized and filled as the job's options say, and
//! removed afterwards unless `--keep-files true`.

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

fn name(job: &Job, shard: u32) -> String {
    let safe: String = job
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("io-tester-{safe}-{shard}")
}

/// Creates and prepares the file for `job` on `shard`: read jobs get `size` bytes written
/// (so reads never touch holes), overwrite jobs a sparse or fallocated file, append jobs an
/// empty file, unlink jobs `files_count` files. `keep` names files so they stay after the run.
/// Raising `stop` (Ctrl-C) ends the preparation early with [`super::Stopped`].
#[allow(clippy::too_many_arguments)] // the run's settings a file needs; all plain values
pub fn prepare(
    storage: &Storage,
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
                let sub = base;
                match std::fs::create_dir(&sub) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
                        "job '{}': the directory {} already exists, probably left by an earlier \
                         run that crashed or was killed; remove it (rm -r {}) and run again",
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
