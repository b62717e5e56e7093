//! Did the disk serve it? Compares what a tool completed with what the devices under the
//! filesystem counted (`/sys/dev/block/MAJ:MIN/stat`, see [`DeviceCounters`](super::DeviceCounters))
//! over the same interval, and says whether the figure is the disk's.
//!
//! O_DIRECT is a request, not a guarantee: btrfs serves direct I/O that is not aligned to its
//! blocks through the page cache, tmpfs has no disk at all, a loop device without
//! `--direct-io=on` caches below the filesystem. The one witness that cannot be fooled by the
//! layers above is the block layer's own count of what the devices completed. This module is
//! the arithmetic only (no I/O), so that it can be tested exactly:
//!
//! - bytes are judged, and requests only as the bios the devices received (requests plus
//!   merges): the block layer merges adjacent requests and splits large ones, so request counts
//!   differ while bytes agree (both are reported), but every request a disk served reached it
//!   as at least one bio, merged or not;
//! - the devices served **clearly less** than was completed (below [`CACHED_BELOW`] of the
//!   bytes, or received fewer bios than [`CACHED_BELOW`] of the requests completed): the figure
//!   came from a cache — unless some devices may be missing from the count
//!   ([`Coverage::Partial`]), when nobody can tell and the figure is unverified. The bio count
//!   catches what bytes alone miss: a cache that fills in units larger than the requests (btrfs
//!   reads whole 4 KiB pages for 512-byte requests) can move more bytes than were completed
//!   while serving most requests from memory;
//! - the devices served **clearly more** (above [`MORE_ABOVE`] times what the completed bytes
//!   and the requests still in flight at the end could explain, times the copies each write
//!   makes on mirrors): other I/O on the devices, or read-modify-write below the filesystem;
//!   the figure is real but may be pessimistic or the disk was shared;
//! - writes may legitimately reach the devices more than once (RAID1 mirrors: `write_copies`;
//!   filesystem metadata and journals: the [`MORE_ABOVE`] margin), never less than once.

use serde::Serialize;

/// Below this fraction of the completed bytes the devices did not serve the figure: a cache
/// did (0.9: counters are exact, so 10% covers requests counted on either side of the window,
/// not measurement noise).
pub const CACHED_BELOW: f64 = 0.9;

/// Above this multiple of what the completed requests explain (mirror copies and requests in
/// flight at the end included) the devices served clearly more than the tool asked for.
pub const MORE_ABOVE: f64 = 1.25;

/// How completely a topology's counted devices cover the devices a filesystem's data can reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Coverage {
    /// Every device the data can reach is counted: `st_dev` is a block device (followed through
    /// partitions, md and dm to its leaves), or all members of a btrfs filesystem were listed.
    Complete,
    /// Some devices were found, but others may hold data too (e.g. btrfs whose members could
    /// not be listed, so only its mount source is counted): "served more" can still be seen,
    /// "served less" cannot be told from a missing device.
    Partial {
        /// Which devices may be missing and why.
        reason: String,
    },
    /// No device was found (tmpfs, overlayfs, FUSE, NFS, ZFS, or unreadable sysfs): nothing can
    /// vouch for the figures.
    None {
        /// Which device could not be found and why.
        reason: String,
    },
}

impl Coverage {
    /// This coverage, made [`Coverage::Partial`] when the counters of some counted devices
    /// (`unreadable`: "name (reason)") could not be read: their share is then unknown.
    pub fn with_unreadable(&self, unreadable: &[String]) -> Coverage {
        match self {
            Coverage::Complete if !unreadable.is_empty() => Coverage::Partial {
                reason: format!(
                    "the counters of {} could not be read",
                    unreadable.join(", ")
                ),
            },
            other => other.clone(),
        }
    }
}

/// What a tool completed in one direction during an interval, and what the devices counted in
/// the same direction over the same interval (summed over every counted device).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServedInput {
    /// True for writes, false for reads.
    pub write: bool,
    /// Requests the tool completed (ramp included: the counters cover the whole interval).
    pub completed_requests: u64,
    /// Bytes those requests moved.
    pub completed_bytes: u64,
    /// Bytes of requests that may have reached the devices without being counted as completed
    /// (in flight when the measured window closed), at most.
    pub uncounted_bytes: u64,
    /// Requests the devices completed (`stat` fields 1 or 5), summed.
    pub device_requests: u64,
    /// Bios the devices merged into queued requests (`stat` fields 2 or 6), summed.
    pub device_merges: u64,
    /// Bytes the devices moved (`stat` fields 3 or 7, times 512), summed.
    pub device_bytes: u64,
    /// Copies of each written byte the device stack keeps (1 plain, 2 on RAID1 or btrfs
    /// raid1/dup/raid10 data, 3 on raid1c3, ..); ignored for reads, which come from one copy.
    pub write_copies: u32,
}

/// The verdict on one interval's figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The devices served what was completed.
    Served,
    /// The devices served clearly less: the figure came from a cache, not from the disk.
    Cached,
    /// The devices served clearly more: other I/O on them, or read-modify-write below the
    /// filesystem.
    More,
    /// No verdict is possible: no device was counted, some may be missing, or nothing was
    /// completed. `reason` says which.
    Unverified,
}

/// Completed against device-counted requests and bytes in one direction, with the verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Served {
    /// Requests completed by the tool.
    pub completed_requests: u64,
    /// Bytes completed by the tool.
    pub completed_bytes: u64,
    /// Requests the devices completed (differs from `completed_requests` when requests were
    /// merged or split on the way).
    pub device_requests: u64,
    /// Bios the devices merged into other requests.
    pub device_merges: u64,
    /// Bytes the devices moved.
    pub device_bytes: u64,
    /// `device_bytes / completed_bytes`; `None` when nothing was completed or no device was
    /// counted.
    pub fraction: Option<f64>,
    /// `(device_requests + device_merges) / completed_requests`: bios received per request
    /// completed (above 1 when requests were split or other I/O shared the devices); `None` as
    /// for `fraction`.
    pub request_fraction: Option<f64>,
    /// Largest `fraction` still taken as served: [`MORE_ABOVE`] × copies × (completed +
    /// uncounted) / completed.
    pub fraction_limit: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why the verdict is [`Verdict::Unverified`]; `None` otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Judges one interval: see the module docs for the rules.
pub fn judge(input: &ServedInput, coverage: &Coverage) -> Served {
    let mut served = Served {
        completed_requests: input.completed_requests,
        completed_bytes: input.completed_bytes,
        device_requests: input.device_requests,
        device_merges: input.device_merges,
        device_bytes: input.device_bytes,
        fraction: None,
        request_fraction: None,
        fraction_limit: None,
        verdict: Verdict::Unverified,
        reason: None,
    };
    if let Coverage::None { reason } = coverage {
        served.reason = Some(reason.clone());
        return served;
    }
    if input.completed_bytes == 0 || input.completed_requests == 0 {
        served.reason = Some("nothing was completed".to_owned());
        return served;
    }
    let completed = input.completed_bytes as f64;
    let fraction = input.device_bytes as f64 / completed;
    let bios = input.device_requests.saturating_add(input.device_merges);
    let request_fraction = bios as f64 / input.completed_requests as f64;
    let copies = if input.write {
        f64::from(input.write_copies.max(1))
    } else {
        1.0
    };
    let limit = MORE_ABOVE * copies * (completed + input.uncounted_bytes as f64) / completed;
    served.fraction = Some(fraction);
    served.request_fraction = Some(request_fraction);
    served.fraction_limit = Some(limit);
    served.verdict = if fraction < CACHED_BELOW || request_fraction < CACHED_BELOW {
        match coverage {
            Coverage::Partial { reason } => {
                served.reason = Some(format!(
                    "the devices found served {:.0}% of the bytes and received {:.0}% of the \
                     requests, but {reason}",
                    fraction * 100.0,
                    request_fraction * 100.0
                ));
                Verdict::Unverified
            }
            _ => Verdict::Cached,
        }
    } else if fraction > limit {
        Verdict::More
    } else {
        Verdict::Served
    };
    served
}

impl Served {
    /// The console line for a verdict worth a warning ([`Verdict::Cached`],
    /// [`Verdict::More`]), about `what` (e.g. "random read 512"); `None` otherwise.
    pub fn warning(&self, what: &str) -> Option<String> {
        let fraction = self.fraction?;
        let numbers = format!(
            "{what}: completed {} in {} requests, the disks served {} ({:.1}%) in {} requests \
             and {} merges ({:.1}% of the requests)",
            bytes(self.completed_bytes),
            self.completed_requests,
            bytes(self.device_bytes),
            fraction * 100.0,
            self.device_requests,
            self.device_merges,
            self.request_fraction.unwrap_or(0.0) * 100.0
        );
        match self.verdict {
            Verdict::Cached => Some(format!(
                "{numbers}: the figure came from a cache, not from the disk (the filesystem \
                 served these O_DIRECT requests from memory, e.g. btrfs for requests smaller \
                 than its block size; under {:.0}% of the bytes or requests reached the disks)",
                CACHED_BELOW * 100.0
            )),
            Verdict::More => {
                let limit = self.fraction_limit.unwrap_or(MORE_ABOVE);
                // What the requests explain: the limit without its tolerance.
                let explained = (limit / MORE_ABOVE * self.completed_bytes as f64) as u64;
                Some(format!(
                    "{numbers}: {} more than these requests explain (over the {:.0}% allowed). \
                     Other I/O ran on the disks during {what} (another program, or another \
                     calibration of the same disks), or the layers below the filesystem turned \
                     requests into read-modify-write; if it was other I/O, the figure is low: \
                     it is what the disks had left for these requests",
                    bytes(self.device_bytes.saturating_sub(explained)),
                    limit * 100.0
                ))
            }
            Verdict::Served | Verdict::Unverified => None,
        }
    }
}

/// Bytes in the largest binary unit that keeps them above 1, e.g. "2.4 GiB".
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// `completed` reads of `size` bytes; the devices completed `requests` requests, merged
    /// `merges` more bios into them and moved `bytes`.
    fn read(completed: u64, size: u64, requests: u64, merges: u64, bytes: u64) -> ServedInput {
        ServedInput {
            write: false,
            completed_requests: completed,
            completed_bytes: completed * size,
            uncounted_bytes: 0,
            device_requests: requests,
            device_merges: merges,
            device_bytes: bytes,
            write_copies: 1,
        }
    }

    fn verdict(input: &ServedInput) -> Verdict {
        judge(input, &Coverage::Complete).verdict
    }

    #[test]
    fn reads_served_by_the_disk() {
        // 100 000 reads of 4 KiB, all counted by the disk.
        let s = judge(
            &read(100_000, 4096, 100_000, 0, 100_000 * 4096),
            &Coverage::Complete,
        );
        assert_eq!(s.verdict, Verdict::Served);
        assert_eq!((s.fraction, s.request_fraction), (Some(1.0), Some(1.0)));
        assert_eq!(s.fraction_limit, Some(MORE_ABOVE));
        assert!(s.warning("random read 4096").is_none());
    }

    #[test]
    fn merged_requests_are_judged_on_bytes_and_bios() {
        // The block layer merged four adjacent 4 KiB reads into each 16 KiB request: a quarter
        // of the requests, all of the bytes, and every bio counted (as request or merge).
        let s = judge(
            &read(4000, 4096, 1000, 3000, 4000 * 4096),
            &Coverage::Complete,
        );
        assert_eq!(s.verdict, Verdict::Served);
        assert_eq!((s.completed_requests, s.device_requests), (4000, 1000));
        assert_eq!(s.request_fraction, Some(1.0));
        // Split: 1 MiB requests reached the disk as 128 KiB ones.
        let s = judge(&read(100, MIB, 800, 0, 100 * MIB), &Coverage::Complete);
        assert_eq!(s.verdict, Verdict::Served);
        assert_eq!((s.device_requests, s.request_fraction), (800, Some(8.0)));
    }

    #[test]
    fn the_btrfs_reproduction_is_cached() {
        // 512-byte reads on btrfs (4096-byte blocks): 4.7 million completed, 54 367 requests of
        // about 5 KiB reached the loop device — 11% of the bytes.
        let s = judge(
            &read(4_710_664, 512, 54_367, 0, 270_651_392),
            &Coverage::Complete,
        );
        assert_eq!(s.verdict, Verdict::Cached);
        let f = s.fraction.unwrap();
        assert!((0.11..0.12).contains(&f), "{f}");
        let w = s.warning("random read 512").unwrap();
        assert!(w.contains("came from a cache"), "{w}");
        assert!(
            w.contains("2.2 GiB") && w.contains("258.1 MiB") && w.contains("11.2%"),
            "{w}"
        );
    }

    #[test]
    fn a_cache_filling_in_pages_is_caught_by_the_bio_count() {
        // Measured on the same btrfs with a fresh page cache: 687 182 reads of 512 bytes, the
        // loops completed 106 319 requests of about 5 KiB (each miss read whole pages): 152% of
        // the bytes, yet 85% of the requests never reached a disk.
        let s = judge(
            &read(687_182, 512, 106_319, 0, 535_185_408),
            &Coverage::Complete,
        );
        assert!(s.fraction.unwrap() > 1.5);
        assert_eq!(s.verdict, Verdict::Cached);
        let r = s.request_fraction.unwrap();
        assert!((0.15..0.16).contains(&r), "{r}");
    }

    #[test]
    fn thresholds() {
        let at = |bytes: u64| verdict(&read(1000, 1000, 1000, 0, bytes));
        assert_eq!(at(899_999), Verdict::Cached);
        assert_eq!(at(900_000), Verdict::Served);
        assert_eq!(at(1_250_000), Verdict::Served);
        assert_eq!(at(1_250_001), Verdict::More);
        // Bios: 899 of 1000 requests is cached, 900 is served (requests and merges add up).
        assert_eq!(
            verdict(&read(1000, 4096, 899, 0, 1000 * 4096)),
            Verdict::Cached
        );
        assert_eq!(
            verdict(&read(1000, 4096, 600, 300, 1000 * 4096)),
            Verdict::Served
        );
    }

    #[test]
    fn requests_in_flight_at_the_end_are_allowed_for() {
        // A slow disk, few requests, a deep queue: 128 requests were still in flight when the
        // window closed and completed uncounted, but the disk counted them.
        let mut input = read(400, 4096, 528, 0, 528 * 4096);
        assert_eq!(verdict(&input), Verdict::More);
        input.uncounted_bytes = 128 * 4096;
        assert_eq!(verdict(&input), Verdict::Served);
    }

    #[test]
    fn other_io_on_the_disk_is_more() {
        let s = judge(&read(1000, MIB, 1500, 0, 1500 * MIB), &Coverage::Complete);
        assert_eq!(s.verdict, Verdict::More);
        let w = s.warning("sequential read").unwrap();
        assert!(w.contains("other I/O") && w.contains("150.0%"), "{w}");
        // Issue 9: says that other I/O ran during the phase, how much, and that the figure is
        // low.
        for needle in [
            "500.0 MiB more than these requests explain",
            "Other I/O ran on the disks during sequential read",
            "the figure is low",
        ] {
            assert!(w.contains(needle), "{needle:?} not in {w}");
        }
    }

    fn write(completed_mib: u64, device_mib: u64, copies: u32) -> ServedInput {
        ServedInput {
            write: true,
            completed_requests: completed_mib,
            completed_bytes: completed_mib * MIB,
            uncounted_bytes: 0,
            device_requests: device_mib,
            device_merges: 0,
            device_bytes: device_mib * MIB,
            write_copies: copies,
        }
    }

    #[test]
    fn raid1_metadata_on_writes_is_served() {
        // btrfs -d raid0 -m raid1: data once, metadata twice (a few percent).
        assert_eq!(verdict(&write(1000, 1000 + 2 * 30, 1)), Verdict::Served);
        // Data mirrored (-d raid1, or md raid1): every byte twice.
        let s = judge(&write(1000, 2000 + 2 * 30, 2), &Coverage::Complete);
        assert_eq!(s.verdict, Verdict::Served);
        assert_eq!(s.fraction_limit, Some(2.0 * MORE_ABOVE));
        // The same mirror traffic without knowing about the mirror looks like more.
        assert_eq!(verdict(&write(1000, 2060, 1)), Verdict::More);
        // Copies never excuse less: writes that never reached the disk are cached.
        assert_eq!(verdict(&write(1000, 500, 2)), Verdict::Cached);
        // Reads come from one copy, whatever the mirror.
        let mut r = write(1000, 2000, 2);
        r.write = false;
        assert_eq!(verdict(&r), Verdict::More);
    }

    #[test]
    fn coverage_limits_the_verdict() {
        let partial = Coverage::Partial {
            reason: "other members may be missing".into(),
        };
        // Half the bytes on the one device found: a missing member or a cache — unknown.
        let s = judge(&read(1000, MIB, 500, 0, 500 * MIB), &partial);
        assert_eq!(s.verdict, Verdict::Unverified);
        assert!(s.reason.as_deref().unwrap().contains("50%"), "{s:?}");
        assert!(s.warning("x").is_none());
        // More is more, however many devices are missing.
        let more = read(1000, MIB, 2000, 0, 2000 * MIB);
        assert_eq!(judge(&more, &partial).verdict, Verdict::More);
        let all = read(1000, MIB, 1000, 0, 1000 * MIB);
        assert_eq!(judge(&all, &partial).verdict, Verdict::Served);
        // No device at all: nothing to judge, say why.
        let none = Coverage::None {
            reason: "tmpfs has no block device".into(),
        };
        let s = judge(&read(1000, MIB, 0, 0, 0), &none);
        assert_eq!(s.verdict, Verdict::Unverified);
        assert_eq!(s.fraction, None);
        assert_eq!(s.reason.as_deref(), Some("tmpfs has no block device"));
        // Nothing completed.
        let s = judge(&read(0, MIB, 10, 0, 10 * MIB), &Coverage::Complete);
        assert_eq!((s.verdict, s.fraction), (Verdict::Unverified, None));
    }

    #[test]
    fn unreadable_counters_make_coverage_partial() {
        let c = Coverage::Complete.with_unreadable(&["loop1 (gone)".into()]);
        assert_eq!(
            c,
            Coverage::Partial {
                reason: "the counters of loop1 (gone) could not be read".into()
            }
        );
        assert_eq!(Coverage::Complete.with_unreadable(&[]), Coverage::Complete);
        let none = Coverage::None { reason: "r".into() };
        assert_eq!(none.with_unreadable(&["x".into()]), none);
    }

    #[test]
    fn serializes_with_snake_case_names() {
        let s = judge(&read(10, 4096, 1, 0, 4096), &Coverage::Complete);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["verdict"], "cached");
        assert_eq!(v["completed_bytes"], 40960);
        assert!(v.get("reason").is_none());
        let c = serde_json::to_value(Coverage::None { reason: "r".into() }).unwrap();
        assert_eq!(c["state"], "none");
    }

    #[test]
    fn byte_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }
}
