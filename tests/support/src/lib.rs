//! What the workspace's tests share, written once: whether the machine allows a step (root,
//! installed tools), serialised tests, unique directories on the work disk, loop devices and
//! filesystems on them, and child processes that a test waits for by what they print or do
//! (never by a fixed sleep: on a loaded machine a fixed sleep is too short one day).
//!
//! Tests that need root or a tool skip with a printed reason where it is missing.

use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// True when running as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// True when `tool` is on PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Serialises the tests of one test binary that compare throughputs or time themselves: on a
/// 2-core machine two of them running at once would measure each other. Hold the guard for
/// the whole test.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
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

/// Regular files (and anything else that is not a directory) in `dir` and its subdirectories.
pub fn files_below(dir: &Path) -> usize {
    entries(dir)
        .iter()
        .map(|p| if p.is_dir() { files_below(p) } else { 1 })
        .sum()
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

/// The `--help` text of `program` (a path), which must exit 0.
pub fn help(program: &str) -> String {
    let out = run(Command::new(program).arg("--help"));
    assert!(out.status.success(), "{program} --help failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts that `text` (a `--help` page) holds every one of `needles`, wherever its lines
/// were wrapped (runs of white space compare as one space).
#[track_caller]
pub fn assert_mentions(text: &str, needles: &[&str]) {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in needles {
        assert!(flat.contains(needle), "--help lacks {needle:?}:\n{text}");
    }
}

/// Polls `done` every 20 ms until it holds (true) or `timeout` has passed (false).
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    loop {
        if done() {
            return true;
        }
        if t.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` has a thread named `name` (its `/proc/PID/task/*/comm`): a way to see
/// that a program reached the point where it starts that thread.
pub fn has_thread(pid: u32, name: &str) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks
        .filter_map(|t| t.ok())
        .any(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == name))
}

/// What a child printed so far, line by line, and a signal for each new line.
#[derive(Default)]
struct Printed {
    stdout: Mutex<(Vec<String>, bool)>,
    stderr: Mutex<String>,
    new_line: Condvar,
}

/// A program a test runs in the background (stdout and stderr captured), to signal it at a
/// point it has reached and time how long it takes to end. Killed (SIGKILL) if still running
/// when dropped.
pub struct Running {
    child: Child,
    printed: Arc<Printed>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Starts `cmd` with stdout and stderr captured (stdin closed).
    pub fn spawn(cmd: &mut Command) -> Running {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let printed = Arc::new(Printed::default());
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        let p = printed.clone();
        let stdout_reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                p.stdout.lock().unwrap().0.push(line);
                p.new_line.notify_all();
            }
            p.stdout.lock().unwrap().1 = true;
            p.new_line.notify_all();
        });
        let p = printed.clone();
        let stderr_reader = std::thread::spawn(move || {
            let mut text = String::new();
            let mut err = err;
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
                *p.stderr.lock().unwrap() = text.clone();
            }
        });
        Running {
            child,
            printed,
            readers: vec![stdout_reader, stderr_reader],
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a stdout line contains `needle` (true), stdout closes or `timeout` passes
    /// (false).
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut out = self.printed.stdout.lock().unwrap();
        loop {
            if out.0.iter().any(|l| l.contains(needle)) {
                return true;
            }
            let now = Instant::now();
            if out.1 || now >= deadline {
                return false;
            }
            out = self
                .printed
                .new_line
                .wait_timeout(out, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Waits until the child has a thread named `name` (see [`has_thread`]).
    pub fn wait_for_thread(&self, name: &str, timeout: Duration) -> bool {
        wait_until(timeout, || has_thread(self.pid(), name))
    }

    /// Sends signal `sig` (e.g. `libc::SIGINT`) to the child.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill on our own child's pid, which we have not reaped yet.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits up to `timeout` for the child to end: its status and how long the wait took, or
    /// `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<(ExitStatus, Duration)> {
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                return Some((s, t.elapsed()));
            }
            if t.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `sig` and waits up to `timeout` for the child to end: its status and how long
    /// that took. Panics (the child is then killed) if it is still running.
    #[track_caller]
    pub fn signal_and_wait(&mut self, sig: i32, timeout: Duration) -> (ExitStatus, Duration) {
        self.signal(sig);
        match self.wait_exit(timeout) {
            Some(ended) => ended,
            None => panic!(
                "still running {timeout:?} after signal {sig}; stderr: {}",
                self.stderr()
            ),
        }
    }

    /// Stdout so far.
    pub fn stdout(&self) -> String {
        self.printed.stdout.lock().unwrap().0.join("\n")
    }

    /// Stderr so far.
    pub fn stderr(&self) -> String {
        self.printed.stderr.lock().unwrap().clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A loop device over a sparse image file on the work disk (under /var/tmp) with direct I/O.
/// Dropping it detaches the device and removes the image.
pub struct LoopDevice {
    /// The device node, e.g. "/dev/loop0".
    pub device: String,
    _dir: tempfile::TempDir,
}

impl LoopDevice {
    /// A loop device of `size` bytes; `None` (with the reason printed) without root or
    /// losetup, or when attaching fails.
    pub fn new(size: u64) -> Option<LoopDevice> {
        Self::many(1, size).map(|mut v| v.remove(0))
    }

    /// `count` loop devices of `size` bytes each (see [`LoopDevice::new`]).
    pub fn many(count: usize, size: u64) -> Option<Vec<LoopDevice>> {
        if !is_root() {
            println!("skipped: needs root for loop devices");
            return None;
        }
        if !have("losetup") {
            println!("skipped: losetup is not installed (apt-get install util-linux)");
            return None;
        }
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let dir = disk_dir();
            let image = dir.path().join("disk.img");
            if let Err(e) = std::fs::File::create(&image).and_then(|f| f.set_len(size)) {
                println!("skipped: cannot create {}: {e}", image.display());
                return None;
            }
            let made = run(Command::new("losetup")
                .args(["--find", "--show", "--direct-io=on"])
                .arg(&image));
            if !made.status.success() {
                println!(
                    "skipped: losetup failed: {}",
                    String::from_utf8_lossy(&made.stderr).trim()
                );
                return None;
            }
            out.push(LoopDevice {
                device: String::from_utf8_lossy(&made.stdout).trim().to_string(),
                _dir: dir,
            });
        }
        Some(out)
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}

/// A filesystem on one or more loop devices ([`LoopDevice`]), mounted on a temp dir. Dropping
/// it unmounts, detaches every loop device and removes the images, whatever step failed.
/// `None` (with the reason printed) where the machine lacks root, a tool, or permission for
/// one of the steps.
pub struct LoopFs {
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// The loop devices, e.g. ["/dev/loop0", "/dev/loop1"], in the order given to mkfs.
    pub devices: Vec<String>,
    mounted: bool,
    _loops: Vec<LoopDevice>,
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
        for tool in [mkfs[0], "mount", "umount"] {
            if !have(tool) {
                println!(
                    "skipped: {tool} is not installed (apt-get install util-linux xfsprogs \
                     btrfs-progs e2fsprogs)"
                );
                return None;
            }
        }
        let loops = LoopDevice::many(devices, size)?;
        let dir = disk_dir();
        let mountpoint = dir.path().join("mnt");
        let mut fs = LoopFs {
            mountpoint: mountpoint.clone(),
            devices: loops.iter().map(|l| l.device.clone()).collect(),
            mounted: false,
            _loops: loops,
            _dir: dir,
        };
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
            unmount(&self.mountpoint);
        }
        // The loop devices detach when `_loops` drops, after this.
    }
}

/// Unmounts `mountpoint`; a filesystem may stay busy for a moment after the last file closes:
/// retries for 5 s, then detaches lazily.
fn unmount(mountpoint: &Path) {
    for _ in 0..25 {
        // "target is busy" for a moment is expected: quiet until the retries run out.
        if Command::new("umount")
            .arg(mountpoint)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "umount {} kept failing; detaching lazily",
        mountpoint.display()
    );
    let _ = Command::new("umount").arg("-l").arg(mountpoint).status();
}

/// A mount made for a test (a read-only bind mount, a small tmpfs), unmounted on drop.
pub struct Mount {
    /// Where it is mounted.
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mount {
    /// A read-only view of a fresh empty directory; `None` (reason printed) without root.
    pub fn read_only() -> Option<Mount> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (src, path) = (dir.path().join("src"), dir.path().join("ro"));
        std::fs::create_dir(&src)
            .and_then(|()| std::fs::create_dir(&path))
            .expect("dirs");
        Self::make(dir, path, &[&["--bind"], &["-o", "remount,bind,ro"]], &src)
    }

    /// A tmpfs of `bytes` bytes; `None` (reason printed) without root.
    pub fn tmpfs(bytes: u64) -> Option<Mount> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tmpfs");
        std::fs::create_dir(&path).expect("mountpoint");
        let size = format!("size={bytes}");
        Self::make(
            dir,
            path,
            &[&["-t", "tmpfs", "-o", &size]],
            Path::new("tmpfs"),
        )
    }

    /// Mounts `source` on `path` with each argument list in turn (the later ones remount).
    fn make(
        dir: tempfile::TempDir,
        path: PathBuf,
        steps: &[&[&str]],
        source: &Path,
    ) -> Option<Mount> {
        if !is_root() {
            println!("skipped: needs root to mount");
            return None;
        }
        for (i, args) in steps.iter().enumerate() {
            let mut cmd = Command::new("mount");
            cmd.args(*args);
            if i == 0 {
                cmd.arg(source);
            }
            let out = run(cmd.arg(&path));
            if !out.status.success() {
                println!(
                    "skipped: mount {args:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                if i > 0 {
                    unmount(&path);
                }
                return None;
            }
        }
        Some(Mount { path, _dir: dir })
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        unmount(&self.path);
    }
}
