//! [`TopologyWarning`]: non-fatal findings about a directory's device, each
//! with the fix in its `Display`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A non-fatal finding about the filesystem or block devices under an
/// evaluation directory. The library only reports them; the binaries print
/// them (`Display` says what is wrong and what to do).
///
/// The first three mirror the reference's checks of each leaf disk
/// (`queue/scheduler`, `queue/nomerges`, `queue/write_cache`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TopologyWarning {
    /// `queue/scheduler` of a leaf disk is neither `none` nor `noop`: the
    /// scheduler reorders and merges requests and skews the measurement.
    SchedulerNotNone {
        /// Kernel name of the disk, e.g. "vda".
        device: String,
        /// The active scheduler, e.g. "mq-deadline".
        scheduler: String,
    },
    /// `queue/nomerges` of a leaf disk is not 2: the block layer merges
    /// adjacent requests, so sequential results do not reflect the request
    /// size asked for.
    MergesEnabled {
        /// Kernel name of the disk.
        device: String,
        /// The value of `queue/nomerges` (0 = all merges, 1 = simple only, 2 = none).
        nomerges: u32,
    },
    /// `queue/write_cache` of a leaf disk is "write back": some disks
    /// implement it poorly and writes measure erratically.
    WriteBackCache {
        /// Kernel name of the disk.
        device: String,
    },
    /// An optional sysfs attribute is missing; its value is unknown and a
    /// documented fallback is used (e.g. no `queue/nr_requests`: the in-flight
    /// bound is unknown and callers guess 128).
    MissingAttribute {
        /// Kernel name of the device.
        device: String,
        /// The attribute, relative to the device's sysfs directory, e.g.
        /// "queue/nr_requests".
        attribute: String,
    },
    /// An optional sysfs attribute exists but cannot be read or parsed; it is
    /// treated as missing.
    UnreadableAttribute {
        /// Kernel name of the device.
        device: String,
        /// The attribute, relative to the device's sysfs directory.
        attribute: String,
        /// The error, with its causes.
        reason: String,
    },
    /// The filesystem has no block device (tmpfs, overlayfs, FUSE, NFS, ZFS):
    /// the disks under it could not be found, so device limits are unknown
    /// (defaults are used) and no device counters can confirm that a figure
    /// came from a disk: measurements are unverified.
    NoBlockDevice {
        /// Filesystem type, e.g. "tmpfs".
        fs_type: String,
        /// `st_dev` of the directory, "MAJ:MIN" (major 0: anonymous).
        st_dev: String,
        /// The mount source from mountinfo, e.g. "tmpfs", "overlay",
        /// "server:/export", "pool/dataset" ("unknown" when unreadable).
        source: String,
    },
    /// Only some of the filesystem's devices could be found (a btrfs not
    /// listed in sysfs, or another filesystem with an anonymous `st_dev`
    /// whose mount source is a block device): queue depth and device counters
    /// cover what was found, and a figure the found devices did not serve
    /// cannot be told from one served by a missing device.
    DevicesMayBeMissing {
        /// Filesystem type, e.g. "btrfs".
        fs_type: String,
        /// The device that was found (kernel name).
        found: String,
        /// Why the others could not be found.
        reason: String,
    },
    /// The block device could not be read from sysfs at all; the topology was
    /// built without it (see [`Topology::without_device`](super::Topology::without_device)).
    SysfsUnreadable {
        /// The error, with its causes.
        reason: String,
    },
    /// A leaf disk reports `queue/minimum_io_size` below its
    /// `queue/physical_block_size` — firmware that lies. Random writes of
    /// `minimum_io_size` would cost a read-modify-write each.
    MinimumIoSizeBelowPhysical {
        /// Kernel name of the disk.
        device: String,
        /// `queue/minimum_io_size`, bytes.
        minimum_io_size: u64,
        /// `queue/physical_block_size`, bytes.
        physical_block_size: u64,
    },
    /// The filesystem block size is smaller than the device's physical block
    /// size: extents may start off physical-block boundaries, so aligned
    /// file writes become read-modify-writes on the device.
    FsBlockBelowPhysical {
        /// Filesystem type.
        fs_type: String,
        /// `statfs` `f_bsize`, bytes.
        fs_block_size: u64,
        /// Largest physical block size of the device stack, bytes.
        physical_block_size: u64,
    },
    /// A partition does not start on a physical-block boundary of its disk
    /// (`start` × 512 is not a multiple of `queue/physical_block_size`).
    PartitionMisaligned {
        /// Kernel name of the partition, e.g. "sda1".
        device: String,
        /// Offset of the partition on its disk, bytes.
        start_bytes: u64,
        /// `queue/physical_block_size` of the disk, bytes.
        physical_block_size: u64,
    },
}

impl fmt::Display for TopologyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopologyWarning::SchedulerNotNone { device, scheduler } => write!(
                f,
                "I/O scheduler of {device} is {scheduler}, not none: it reorders and merges \
                 requests and skews the results; before measuring run \
                 `echo none > /sys/block/{device}/queue/scheduler`"
            ),
            TopologyWarning::MergesEnabled { device, nomerges } => write!(
                f,
                "nomerges of {device} is {nomerges}, not 2: the block layer merges adjacent \
                 requests and skews the results; before measuring run \
                 `echo 2 > /sys/block/{device}/queue/nomerges`"
            ),
            TopologyWarning::WriteBackCache { device } => write!(
                f,
                "write_cache of {device} is \"write back\": some disks implement this mode \
                 poorly, so check the deviation of the write results; only if the cache is \
                 non-volatile (power-loss protected) may you run \
                 `echo \"write through\" > /sys/block/{device}/queue/write_cache`"
            ),
            TopologyWarning::MissingAttribute { device, attribute } => write!(
                f,
                "sysfs attribute {attribute} of {device} is missing; its value is unknown and \
                 a default is used (override the derived setting on the command line if it \
                 matters)"
            ),
            TopologyWarning::UnreadableAttribute {
                device,
                attribute,
                reason,
            } => write!(
                f,
                "sysfs attribute {attribute} of {device} cannot be used ({reason}); it is \
                 treated as missing and a default is used"
            ),
            TopologyWarning::NoBlockDevice {
                fs_type,
                st_dev,
                source,
            } => write!(
                f,
                "filesystem {fs_type} has no block device: its st_dev {st_dev} is anonymous and \
                 its mount source {source:?} is not a block device, so the disk(s) under it \
                 could not be found; no device counters can confirm that the disk served the \
                 figures, so they are unverified, and queue depth, block sizes and scheduler \
                 are unknown, so defaults are used (4096-byte physical blocks, guessed \
                 in-flight bound); evaluate a directory on the real device to calibrate it"
            ),
            TopologyWarning::DevicesMayBeMissing {
                fs_type,
                found,
                reason,
            } => write!(
                f,
                "{reason}: other devices of this {fs_type} filesystem may be missing, so the \
                 queue depth and device counters cover {found} only; a figure {found} did not \
                 serve is reported as unverified rather than as cached"
            ),
            TopologyWarning::SysfsUnreadable { reason } => write!(
                f,
                "cannot read the block device from sysfs ({reason}): device limits are \
                 unknown and defaults are used; check that /sys is mounted and readable"
            ),
            TopologyWarning::MinimumIoSizeBelowPhysical {
                device,
                minimum_io_size,
                physical_block_size,
            } => write!(
                f,
                "{device} reports minimum_io_size {minimum_io_size} below its physical block \
                 size {physical_block_size} (the firmware may lie): random writes use \
                 {physical_block_size}-byte requests unless a size is forced"
            ),
            TopologyWarning::FsBlockBelowPhysical {
                fs_type,
                fs_block_size,
                physical_block_size,
            } => write!(
                f,
                "{fs_type} block size {fs_block_size} is smaller than the device's physical \
                 block size {physical_block_size}: file extents may be misaligned and writes \
                 cost read-modify-write; recreate the filesystem with \
                 {physical_block_size}-byte blocks (e.g. `mkfs.xfs -b size={physical_block_size}`)"
            ),
            TopologyWarning::PartitionMisaligned {
                device,
                start_bytes,
                physical_block_size,
            } => write!(
                f,
                "partition {device} starts at byte {start_bytes}, not a multiple of the \
                 physical block size {physical_block_size}: every write straddles physical \
                 blocks; repartition with aligned starts (e.g. 1 MiB)"
            ),
        }
    }
}
