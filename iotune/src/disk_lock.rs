//! One calibration per disk: an exclusive `flock` per disk, held for the whole run.
//!
//! Two iotune runs on one disk would each measure about half of it, and both would write their
//! half as the disk's figures. Each run locks a file per leaf disk, `iotune-MAJ:MIN.lock` in
//! `/run/lock` (or the temp dir where there is none; `IOTUNE_LOCK_DIR` overrides both), and a
//! second run refuses to start, naming the first's pid (written into the file). The kernel drops
//! a lock with its process, so a run killed with SIGKILL never blocks the next one: what its
//! file still says is overwritten.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use scheduler::topology::Topology;

/// Environment variable naming the directory for the lock files.
pub const LOCK_DIR_VAR: &str = "IOTUNE_LOCK_DIR";

/// Held locks; dropping releases them (as does the process ending, however it ends).
#[derive(Debug)]
pub struct DiskLocks {
    _files: Vec<File>,
}

/// The directory for lock files: `$IOTUNE_LOCK_DIR`, else `/run/lock`, else the temp dir.
fn lock_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(LOCK_DIR_VAR) {
        return PathBuf::from(dir);
    }
    let run_lock = Path::new("/run/lock");
    if run_lock.is_dir() {
        return run_lock.to_path_buf();
    }
    std::env::temp_dir()
}

/// What is locked for one filesystem: its leaf disks as (name, MAJ:MIN); without a block
/// device (tmpfs, NFS, ...), the filesystem's own device number.
fn keys(dir: &Path, topology: &Topology) -> Vec<(String, (u32, u32))> {
    let leaves = topology.leaves();
    if !leaves.is_empty() {
        return leaves.iter().map(|d| (d.name.clone(), d.dev)).collect();
    }
    match std::fs::metadata(dir) {
        Ok(m) => {
            let dev = scheduler::topology::fs::split_dev(m.dev());
            vec![(
                format!("the filesystem on {}", topology.mountpoint.display()),
                dev,
            )]
        }
        Err(_) => Vec::new(),
    }
}

/// Locks every disk under `targets` (directory, topology) for this process.
///
/// # Errors
///
/// Another process holds the lock of one of the disks: the message names the disk, its
/// MAJ:MIN, the other process's pid and the lock file. A lock file that cannot be created or
/// locked (a read-only lock directory, a filesystem without `flock`) is only a warning: the
/// run goes on without that protection.
pub fn lock_disks(targets: &[(PathBuf, Topology)]) -> Result<DiskLocks> {
    let dir = lock_dir();
    let mut seen = Vec::new();
    let mut files = Vec::new();
    for (target, topology) in targets {
        for (name, dev) in keys(target, topology) {
            if seen.contains(&dev) {
                continue;
            }
            seen.push(dev);
            let path = dir.join(format!("iotune-{}:{}.lock", dev.0, dev.1));
            match lock_one(&path) {
                Ok(Some(f)) => files.push(f),
                Ok(None) => bail!(
                    "another iotune ({}) is calibrating {name} ({}:{}), which holds {}: two \
                     calibrations of one disk at once each measure about half of it; wait for \
                     it to finish (lock file {})",
                    holder(&path),
                    dev.0,
                    dev.1,
                    target.display(),
                    path.display()
                ),
                Err(e) => eprintln!(
                    "WARN: cannot lock {name} ({}:{}) for this calibration ({e:#}): another \
                     iotune on the same disk would not be noticed",
                    dev.0, dev.1
                ),
            }
        }
    }
    Ok(DiskLocks { _files: files })
}

/// Opens (creating) and locks `path` without waiting: the file with the lock held and this
/// process's pid written into it, or `None` when another process holds it.
fn lock_one(path: &Path) -> Result<Option<File>> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    loop {
        // SAFETY: flock on a descriptor we own; no memory is passed.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(None),
            Some(libc::EINTR) => continue,
            _ => return Err(e).with_context(|| format!("cannot lock {}", path.display())),
        }
    }
    f.set_len(0)
        .and_then(|()| f.rewind())
        .and_then(|()| writeln!(f, "{}", std::process::id()))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Some(f))
}

/// "pid N" of the process holding `path`, as it wrote there (it writes just after locking:
/// waits up to 1 s for it), or "pid unknown".
fn holder(path: &Path) -> String {
    let t = Instant::now();
    loop {
        let mut text = String::new();
        let pid = File::open(path)
            .and_then(|mut f| f.read_to_string(&mut text))
            .ok()
            .and_then(|_| text.trim().parse::<u32>().ok());
        if let Some(pid) = pid {
            return format!("pid {pid}");
        }
        if t.elapsed() > Duration::from_secs(1) {
            return "pid unknown".to_owned();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
