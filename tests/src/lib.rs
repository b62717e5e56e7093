//! Helpers for the end-to-end tests: locate the built binaries, make unique directories on
//! real filesystems, and run commands with a time limit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod throttle;
pub use throttle::{disk_of, Throttle};

/// Path of a workspace binary built in the same profile as the running test
/// (`target/<profile>/<name>`). `cargo test --workspace` builds them, because each binary
/// package has an integration test of its own.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = dir.join(name);
    assert!(path.is_file(), "{} is missing: run `cargo test --workspace` (it builds every binary) or `cargo build --workspace`", path.display());
    path
}

/// Path of an example of the `scheduler` crate built in the same profile as the running test
/// (`target/<profile>/examples/<name>`); `cargo test --workspace` builds the examples.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = dir.join("examples").join(name);
    assert!(path.is_file(), "{} is missing: run `cargo test --workspace` (it builds the examples) or `cargo build -p scheduler --features tokio --examples`", path.display());
    path
}

/// A fresh directory on the machine's real disk (under /var/tmp, else the temp dir).
pub fn disk_dir() -> tempfile::TempDir {
    let base = if Path::new("/var/tmp").is_dir() {
        PathBuf::from("/var/tmp")
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix("iotune-e2e-")
        .tempdir_in(base)
        .expect("temp dir on disk")
}

/// Runs a command and returns its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Entries in `dir` (to check nothing was left behind).
pub fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// True when running as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// An XFS filesystem on a loop device over a sparse image, mounted on a temp dir; unmounted,
/// detached and removed on drop. `None` (with the reason printed) where the machine lacks
/// root, `losetup`, `mkfs.xfs` or mount permission.
pub struct XfsLoop {
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    device: String,
    _dir: tempfile::TempDir,
}

impl XfsLoop {
    /// Creates a `size`-byte image, a 512-byte-sector loop device with direct I/O, and XFS
    /// with `block_size`-byte blocks on it.
    pub fn new(block_size: u32, size: u64) -> Option<XfsLoop> {
        if !is_root() {
            println!("skipped: needs root for loop devices and mount");
            return None;
        }
        for tool in ["losetup", "mkfs.xfs", "mount", "umount"] {
            if Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .map(|o| !o.status.success())
                .unwrap_or(true)
            {
                println!("skipped: {tool} is not installed (apt-get install xfsprogs util-linux)");
                return None;
            }
        }
        let dir = disk_dir();
        let image = dir.path().join("xfs.img");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(size))
            .ok()?;
        let out = run(Command::new("losetup")
            .args(["--find", "--show", "--direct-io=on"])
            .arg(&image));
        if !out.status.success() {
            println!(
                "skipped: losetup failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        let device = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let mountpoint = dir.path().join("mnt");
        let fs = XfsLoop {
            mountpoint: mountpoint.clone(),
            device,
            _dir: dir,
        };
        let mkfs = run(Command::new("mkfs.xfs").args([
            "-f",
            "-q",
            "-b",
            &format!("size={block_size}"),
            &fs.device,
        ]));
        if !mkfs.status.success() {
            println!(
                "skipped: mkfs.xfs failed: {}",
                String::from_utf8_lossy(&mkfs.stderr).trim()
            );
            return None;
        }
        std::fs::create_dir(&mountpoint).ok()?;
        let mount = run(Command::new("mount").arg(&fs.device).arg(&mountpoint));
        if !mount.status.success() {
            println!(
                "skipped: mount failed: {}",
                String::from_utf8_lossy(&mount.stderr).trim()
            );
            return None;
        }
        Some(fs)
    }
}

impl Drop for XfsLoop {
    fn drop(&mut self) {
        // XFS may stay busy for a moment after the last file closes: retry, then detach lazily.
        let mut unmounted = false;
        for _ in 0..25 {
            if Command::new("umount")
                .arg(&self.mountpoint)
                .status()
                .is_ok_and(|s| s.success())
            {
                unmounted = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        if !unmounted {
            eprintln!(
                "umount {} kept failing; detaching lazily",
                self.mountpoint.display()
            );
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.mountpoint)
                .status();
        }
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}

/// Serialises the tests that compare throughputs: on a 2-core machine two of them running at
/// once would measure each other. Hold the guard for the whole test.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Asserts that `dir` holds nothing: no test file was left behind.
#[track_caller]
pub fn assert_empty(dir: &Path) {
    let left = entries(dir);
    assert!(
        left.is_empty(),
        "left behind in {}: {left:?}",
        dir.display()
    );
}
