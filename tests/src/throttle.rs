//! A device whose truth is known: a cgroup v1 blkio throttle (see
//! shared/reference/test-environment.md). Processes moved into it get at most the configured
//! rates on one whole disk; each limit binds on its own.

use std::path::{Path, PathBuf};

use scheduler::topology::{DeviceKind, Topology};

/// A blkio cgroup with throttle limits; the limits are reset and the group removed on drop.
pub struct Throttle {
    /// The cgroup's directory (write a pid to its `cgroup.procs` to move a process in).
    pub dir: PathBuf,
    dev: (u32, u32),
}

impl Throttle {
    /// A new cgroup throttling device `dev` (MAJ, MIN) with `limits`: (file suffix, value),
    /// e.g. `("read_bps_device", 80 << 20)`.
    ///
    /// # Errors
    ///
    /// The cgroup cannot be created or a limit written (not root, no blkio controller).
    pub fn new(dev: (u32, u32), limits: &[(&str, u64)]) -> std::io::Result<Throttle> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = Path::new("/sys/fs/cgroup/blkio")
            .join(format!("iotune-e2e-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir)?;
        let t = Throttle { dir, dev };
        for (file, v) in limits {
            t.set(file, *v)?;
        }
        Ok(t)
    }

    fn set(&self, file: &str, v: u64) -> std::io::Result<()> {
        std::fs::write(
            self.dir.join(format!("blkio.throttle.{file}")),
            format!("{}:{} {v}\n", self.dev.0, self.dev.1),
        )
    }

    /// Why a throttle cannot be used here, if it cannot: not root, or no cgroup v1 blkio.
    pub fn unavailable() -> Option<&'static str> {
        if !crate::is_root() {
            return Some("needs root to create a blkio cgroup");
        }
        if !Path::new("/sys/fs/cgroup/blkio/blkio.throttle.read_bps_device").exists() {
            return Some("no cgroup v1 blkio controller at /sys/fs/cgroup/blkio");
        }
        None
    }

    /// A `sh -c` script that moves itself into the cgroup and then runs its arguments.
    pub fn run_inside_script(&self) -> String {
        format!(
            "echo $$ > {}/cgroup.procs && exec \"$@\"",
            self.dir.display()
        )
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        for f in [
            "read_bps_device",
            "write_bps_device",
            "read_iops_device",
            "write_iops_device",
        ] {
            let _ = self.set(f, 0);
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Throttle limits: bytes/s and requests/s per direction.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Read bytes per second.
    pub read_bps: u64,
    /// Write bytes per second.
    pub write_bps: u64,
    /// Read requests per second.
    pub read_iops: u64,
    /// Write requests per second.
    pub write_iops: u64,
}

/// The known device of the fidelity and latency-isolation tests: 80 MiB/s and 3000 IOPS of
/// reads, 60 MiB/s and 2000 IOPS of writes.
pub const KNOWN: Limits = Limits {
    read_bps: 80 << 20,
    write_bps: 60 << 20,
    read_iops: 3000,
    write_iops: 2000,
};

impl Limits {
    /// io-properties equal to the limits, for a disk mounted at `mountpoint`.
    pub fn io_properties(&self, mountpoint: &str) -> String {
        format!(
            "disks:\n  - mountpoint: {mountpoint}\n    read_iops: {}\n    read_bandwidth: {}\n    \
             write_iops: {}\n    write_bandwidth: {}\n",
            self.read_iops, self.read_bps, self.write_iops, self.write_bps
        )
    }
}

/// A throttle with `limits` on the whole disk under `dir`, or `None` with the reason printed
/// ("skipped: ...") where this machine cannot make one.
pub fn throttled_disk(dir: &Path, limits: &Limits) -> Option<Throttle> {
    if let Some(why) = Throttle::unavailable() {
        println!("skipped: {why}");
        return None;
    }
    let Some(dev) = disk_of(dir) else {
        println!(
            "skipped: {} is not on a plain disk or partition",
            dir.display()
        );
        return None;
    };
    let set = [
        ("read_bps_device", limits.read_bps),
        ("write_bps_device", limits.write_bps),
        ("read_iops_device", limits.read_iops),
        ("write_iops_device", limits.write_iops),
    ];
    match Throttle::new(dev, &set) {
        Ok(t) => Some(t),
        Err(e) => {
            println!("skipped: cannot set up a blkio throttle: {e}");
            None
        }
    }
}

/// The whole-disk device number under `dir` (blkio throttles whole disks), if it is a plain
/// disk or a partition of one.
pub fn disk_of(dir: &Path) -> Option<(u32, u32)> {
    let t = Topology::for_directory(dir).ok()?;
    let d = t.device?;
    match d.kind {
        DeviceKind::Partition => d.parent.map(|p| p.dev),
        DeviceKind::Disk => Some(d.dev),
        _ => None,
    }
}
