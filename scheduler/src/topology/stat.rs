//! Per-device I/O counters from `/sys/dev/block/MAJ:MIN/stat` (Documentation/block/stat.rst):
//! what the device was actually sent, so a tool can tell whether its requests reached the disk
//! whole, merged by the block layer, or split by the device's limits — or never reached it.
//!
//! Every bio that reaches a request-based device either becomes a request of its own (counted
//! in "I/Os" when it completes) or is merged into one already queued (counted in "merges"), so
//! I/Os + merges is the number of bios the device received, however the block layer joined
//! them.

use std::io;
use std::path::Path;

use super::BlockDevice;

/// Completed requests, merges and 512-byte sectors per direction since boot (read/write only;
/// discards and flushes are counted apart by the kernel and ignored here).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceCounters {
    /// Completed read requests (field 1).
    pub read_requests: u64,
    /// Read bios merged into a queued request (field 2).
    pub read_merges: u64,
    /// Sectors (512 bytes) read (field 3).
    pub read_sectors: u64,
    /// Completed write requests (field 5).
    pub write_requests: u64,
    /// Write bios merged into a queued request (field 6).
    pub write_merges: u64,
    /// Sectors (512 bytes) written (field 7).
    pub write_sectors: u64,
}

/// What a device did in one direction between two readings of its counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceDelta {
    /// Requests completed.
    pub requests: u64,
    /// Bios merged into other requests (each was sent to the device, but not counted as a
    /// request of its own).
    pub merges: u64,
    /// Bytes moved.
    pub bytes: u64,
}

impl DeviceCounters {
    /// Reads the counters of device `dev` (major, minor) from `<sysfs_root>/dev/block/MAJ:MIN/stat`.
    ///
    /// # Errors
    ///
    /// The `io::Error` of reading the file (missing, unreadable), or `InvalidData` naming the
    /// file when it has fewer than 7 numeric fields.
    pub fn read(sysfs_root: &Path, dev: (u32, u32)) -> io::Result<DeviceCounters> {
        let path = sysfs_root.join(format!("dev/block/{}:{}/stat", dev.0, dev.1));
        let text = std::fs::read_to_string(&path)?;
        Self::parse(&text).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: expected at least 7 numeric fields", path.display()),
            )
        })
    }

    /// Parses the fields of a `stat` file: 1 read I/Os, 2 read merges, 3 read sectors, 5 write
    /// I/Os, 6 write merges, 7 write sectors (1-based). `None` when one of the first 7 is missing
    /// or not a number.
    pub fn parse(text: &str) -> Option<DeviceCounters> {
        let f: Vec<u64> = text
            .split_whitespace()
            .take(7)
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        (f.len() == 7).then(|| DeviceCounters {
            read_requests: f[0],
            read_merges: f[1],
            read_sectors: f[2],
            write_requests: f[4],
            write_merges: f[5],
            write_sectors: f[6],
        })
    }

    /// Requests, merges and bytes in one direction (`write` or read) between `earlier` and
    /// `self` (counters are monotonic; a reset in between reads as zero).
    pub fn since(&self, earlier: &DeviceCounters, write: bool) -> DeviceDelta {
        let pick = |c: &DeviceCounters| {
            if write {
                (c.write_requests, c.write_merges, c.write_sectors)
            } else {
                (c.read_requests, c.read_merges, c.read_sectors)
            }
        };
        let ((r, m, s), (r0, m0, s0)) = (pick(self), pick(earlier));
        DeviceDelta {
            requests: r.saturating_sub(r0),
            merges: m.saturating_sub(m0),
            bytes: s.saturating_sub(s0).saturating_mul(512),
        }
    }
}

impl std::iter::Sum for DeviceDelta {
    fn sum<I: Iterator<Item = DeviceDelta>>(iter: I) -> DeviceDelta {
        iter.fold(DeviceDelta::default(), |a, b| DeviceDelta {
            requests: a.requests.saturating_add(b.requests),
            merges: a.merges.saturating_add(b.merges),
            bytes: a.bytes.saturating_add(b.bytes),
        })
    }
}

/// The counters of several devices read one after the other, by kernel name, and the devices
/// whose counters could not be read (with the reason).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// (kernel name, counters) of every device that could be read, in the order given.
    pub counters: Vec<(String, DeviceCounters)>,
    /// "name (reason)" of every device that could not be read.
    pub unreadable: Vec<String>,
}

impl CounterSnapshot {
    /// Reads the counters of `devices` (typically
    /// [`Topology::counted_devices`](super::Topology::counted_devices)) from `sysfs_root`. A
    /// device that cannot be read is listed in `unreadable`, never an error: callers judge
    /// with what was read and say what was not.
    pub fn read(sysfs_root: &Path, devices: &[&BlockDevice]) -> CounterSnapshot {
        let mut snapshot = CounterSnapshot::default();
        for d in devices {
            match DeviceCounters::read(sysfs_root, d.dev) {
                Ok(c) => snapshot.counters.push((d.name.clone(), c)),
                Err(e) => snapshot.unreadable.push(format!("{} ({e})", d.name)),
            }
        }
        snapshot
    }

    /// What each device did in one direction since `earlier`, for the devices read both times
    /// (in this snapshot's order), and "name (reason)" of those read only once or never.
    pub fn since(
        &self,
        earlier: &CounterSnapshot,
        write: bool,
    ) -> (Vec<(String, DeviceDelta)>, Vec<String>) {
        let mut unreadable = earlier.unreadable.clone();
        for u in &self.unreadable {
            if !unreadable.contains(u) {
                unreadable.push(u.clone());
            }
        }
        let mut deltas = Vec::with_capacity(self.counters.len());
        for (name, after) in &self.counters {
            match earlier.counters.iter().find(|(n, _)| n == name) {
                Some((_, before)) => deltas.push((name.clone(), after.since(before, write))),
                None => unreadable.push(format!("{name} (not read before)")),
            }
        }
        for (name, _) in &earlier.counters {
            if !self.counters.iter().any(|(n, _)| n == name) {
                unreadable.push(format!("{name} (not read after)"));
            }
        }
        (deltas, unreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernel_format() {
        let line = "  114306     3210  9036346    41452  5503779  1068262 449318864 26413480        0  5321388 26500036        0        0        0        0   117380    45102\n";
        let c = DeviceCounters::parse(line).unwrap();
        assert_eq!(c.read_requests, 114306);
        assert_eq!(c.read_merges, 3210);
        assert_eq!(c.read_sectors, 9036346);
        assert_eq!(c.write_requests, 5503779);
        assert_eq!(c.write_merges, 1068262);
        assert_eq!(c.write_sectors, 449318864);
        let later = DeviceCounters {
            write_requests: c.write_requests + 10,
            write_merges: c.write_merges + 30,
            write_sectors: c.write_sectors + 10 * 2048,
            ..c
        };
        assert_eq!(
            later.since(&c, true),
            DeviceDelta {
                requests: 10,
                merges: 30,
                bytes: 10 << 20
            }
        );
        assert_eq!(later.since(&c, false), DeviceDelta::default());
        assert!(DeviceCounters::parse("1 2 3").is_none());
        assert!(DeviceCounters::parse("1 2 x 4 5 6 7").is_none());
    }

    #[test]
    fn snapshots_pair_devices_by_name() {
        let c = |r: u64, m: u64, s: u64| DeviceCounters {
            read_requests: r,
            read_merges: m,
            read_sectors: s,
            ..DeviceCounters::default()
        };
        let before = CounterSnapshot {
            counters: vec![
                ("loop0".into(), c(10, 1, 80)),
                ("loop1".into(), c(5, 0, 40)),
            ],
            unreadable: vec![],
        };
        let after = CounterSnapshot {
            counters: vec![
                ("loop0".into(), c(20, 3, 160)),
                ("loop2".into(), c(1, 0, 8)),
            ],
            unreadable: vec!["loop3 (gone)".into()],
        };
        let (deltas, missing) = after.since(&before, false);
        assert_eq!(
            deltas,
            vec![(
                "loop0".to_string(),
                DeviceDelta {
                    requests: 10,
                    merges: 2,
                    bytes: 80 * 512
                }
            )]
        );
        assert_eq!(
            missing,
            [
                "loop3 (gone)",
                "loop2 (not read before)",
                "loop1 (not read after)"
            ]
        );
        let total: DeviceDelta = deltas
            .into_iter()
            .map(|(_, d)| d)
            .chain([DeviceDelta {
                requests: 1,
                merges: 1,
                bytes: 512,
            }])
            .sum();
        assert_eq!(
            (total.requests, total.merges, total.bytes),
            (11, 3, 81 * 512)
        );
    }

    #[test]
    fn reads_the_real_sysfs() {
        let Ok(entries) = std::fs::read_dir("/sys/dev/block") else {
            eprintln!("SKIP: no /sys/dev/block on this machine");
            return;
        };
        let mut read = 0;
        for e in entries.flatten() {
            let name = e.file_name().into_string().unwrap();
            let (maj, min) = name.split_once(':').unwrap();
            let dev = (maj.parse().unwrap(), min.parse().unwrap());
            DeviceCounters::read(Path::new("/sys"), dev).expect("every block device has a stat");
            read += 1;
        }
        assert!(read > 0, "no block devices under /sys/dev/block");
    }
}
