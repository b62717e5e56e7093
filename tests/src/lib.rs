//! Helpers for the end-to-end tests: locate the built binaries, make unique directories on
//! real filesystems, and run commands with a time limit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod throttle;
pub use throttle::{disk_of, throttled_disk, Limits, Throttle, KNOWN};

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

/// One iotune run writing its properties, options and JSON report files into a temporary
/// directory that lives as long as this value (keep it bound, not destructured).
pub struct Reported {
    /// Exit status, stdout and stderr.
    pub out: Output,
    /// stderr as text.
    pub stderr: String,
    /// The parsed `--report` file.
    pub report: serde_json::Value,
    /// Where `--properties-file` pointed (it exists only if iotune wrote it).
    pub props: PathBuf,
    /// Where `--options-file` pointed (likewise).
    pub options: PathBuf,
    _dir: tempfile::TempDir,
}

/// Runs the built iotune with `args` plus `--properties-file`, `--options-file` and `--report`
/// in a fresh temp dir, whatever its exit status; panics if it panicked or left no report.
pub fn iotune_reported(args: &[String]) -> Reported {
    let dir = tempfile::tempdir().expect("temp dir");
    let props = dir.path().join("io-properties.yaml");
    let options = dir.path().join("io.conf");
    let report = dir.path().join("report.json");
    let out = run(Command::new(bin("iotune")).args(args).args([
        "--properties-file",
        props.to_str().expect("UTF-8 temp path"),
        "--options-file",
        options.to_str().expect("UTF-8 temp path"),
        "--report",
        report.to_str().expect("UTF-8 temp path"),
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let text = std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("no report ({e}), exit {:?}:\n{stderr}", out.status));
    Reported {
        out,
        stderr,
        report: serde_json::from_str(&text).expect("the report is JSON"),
        props,
        options,
        _dir: dir,
    }
}

/// Runs the built io-tester on `storage` with the job file text `conf` and `extra` arguments,
/// JSON output; panics with its stderr unless it succeeds. Returns the parsed shards and stderr.
pub fn io_tester_json(storage: &Path, conf: &str, extra: &[&str]) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf_path = dir.path().join("conf.yaml");
    std::fs::write(&conf_path, conf).expect("write the job file");
    let out = run(Command::new(bin("io-tester"))
        .args([
            "--storage",
            storage.to_str().expect("UTF-8 storage path"),
            "--conf",
            conf_path.to_str().expect("UTF-8 temp path"),
            "--output-format",
            "json",
        ])
        .args(extra));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "io-tester failed: {stderr}\n{conf}");
    let shards = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (shards, stderr)
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
