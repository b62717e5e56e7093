//! Helpers for the end-to-end tests: locate the built binaries, make unique directories on
//! real filesystems, and run commands with a time limit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// True when `tool` is on PATH.
fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A filesystem on one or more loop devices, each over a sparse image on the work disk (under
/// /var/tmp) with direct I/O, mounted on a temp dir. Dropping it unmounts, detaches every loop
/// device and removes the images, whatever step failed. `None` (with the reason printed) where
/// the machine lacks root, a tool, or permission for one of the steps.
pub struct LoopFs {
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// The loop devices, e.g. ["/dev/loop0", "/dev/loop1"], in the order given to mkfs.
    pub devices: Vec<String>,
    mounted: bool,
    _dir: tempfile::TempDir,
}

impl LoopFs {
    /// XFS with `block_size`-byte blocks on one 512-byte-sector loop device of `size` bytes.
    pub fn xfs(block_size: u32, size: u64) -> Option<LoopFs> {
        let block = format!("size={block_size}");
        LoopFs::new(&["mkfs.xfs", "-f", "-q", "-b", &block], 1, size)
    }

    /// Runs `mkfs` (the program and its arguments; the device paths are appended) over
    /// `devices` fresh loop devices of `size` bytes each, and mounts the first of them.
    pub fn new(mkfs: &[&str], devices: usize, size: u64) -> Option<LoopFs> {
        if !is_root() {
            println!("skipped: needs root for loop devices and mount");
            return None;
        }
        for tool in ["losetup", mkfs[0], "mount", "umount"] {
            if !have(tool) {
                println!(
                    "skipped: {tool} is not installed (apt-get install util-linux xfsprogs \
                     btrfs-progs e2fsprogs)"
                );
                return None;
            }
        }
        let dir = disk_dir();
        let mountpoint = dir.path().join("mnt");
        let mut fs = LoopFs {
            mountpoint: mountpoint.clone(),
            devices: Vec::new(),
            mounted: false,
            _dir: dir,
        };
        for i in 0..devices {
            let image = fs._dir.path().join(format!("disk{i}.img"));
            if let Err(e) = std::fs::File::create(&image).and_then(|f| f.set_len(size)) {
                println!("skipped: cannot create {}: {e}", image.display());
                return None;
            }
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
            fs.devices
                .push(String::from_utf8_lossy(&out.stdout).trim().to_string());
        }
        let made = run(Command::new(mkfs[0]).args(&mkfs[1..]).args(&fs.devices));
        if !made.status.success() {
            println!(
                "skipped: {} failed: {}",
                mkfs[0],
                String::from_utf8_lossy(&made.stderr).trim()
            );
            return None;
        }
        if let Err(e) = std::fs::create_dir(&mountpoint) {
            println!("skipped: cannot create {}: {e}", mountpoint.display());
            return None;
        }
        let mount = run(Command::new("mount").arg(&fs.devices[0]).arg(&mountpoint));
        if !mount.status.success() {
            println!(
                "skipped: mount failed: {}",
                String::from_utf8_lossy(&mount.stderr).trim()
            );
            return None;
        }
        fs.mounted = true;
        Some(fs)
    }

    /// Kernel names of the loop devices ("loop0", ..), as sysfs and the topology name them.
    pub fn names(&self) -> Vec<String> {
        self.devices
            .iter()
            .map(|d| d.trim_start_matches("/dev/").to_string())
            .collect()
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        if self.mounted {
            // A filesystem may stay busy for a moment after the last file closes: retry, then
            // detach lazily.
            let mut unmounted = false;
            for _ in 0..25 {
                // "target is busy" for a moment is expected: quiet until the retries run out.
                if Command::new("umount")
                    .arg(&self.mountpoint)
                    .stderr(std::process::Stdio::null())
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
        }
        for device in &self.devices {
            let _ = Command::new("losetup").args(["-d", device]).status();
        }
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
