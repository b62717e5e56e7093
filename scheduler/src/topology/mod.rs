//! Device topology of an evaluation directory: filesystem, mountpoint,
//! direct-I/O alignment and the tree of block devices beneath it.
//!
//! This is step 2 ("Topology") of the reference iotune, without its defects:
//! a partition's disk is found by walking sysfs (never by assuming minor 0),
//! md/dm stacks are followed through `slaves/` to their leaf disks, the sysfs
//! root is a parameter (so fixture trees under a temporary directory can
//! stand in for `/sys`), nothing is cached, and a missing optional attribute
//! becomes `None` plus a [`TopologyWarning`] instead of a panic.
//!
//! The work is split in two independently testable halves:
//!
//! - [`FilesystemInfo::probe`] asks the real system about a directory
//!   (`stat`, `statfs`, `statx`, mountpoint, mount source);
//! - [`block_device_from_sysfs`] reads a device tree from any sysfs root, and
//!   [`btrfs::find`] / [`btrfs::read`] the members of a btrfs filesystem
//!   (`fs/btrfs/<fsid>/devices/`), which has no block device of its own.
//!
//! [`Topology::coverage`] says whether the devices found are all the devices
//! the data can reach: only then can their counters ([`DeviceCounters`])
//! prove a figure came from the disk ([`served`]).
//!
//! [`Topology::from_filesystem`] joins them; [`Topology::for_directory`] does
//! both against `/sys`.
//!
//! ```no_run
//! use scheduler::topology::Topology;
//! let topo = Topology::for_directory(std::path::Path::new("/var/lib/data"))?;
//! println!("{} leaf disk(s), in-flight bound {:?}", topo.leaf_count(), topo.in_flight_bound());
//! for w in &topo.warnings {
//!     eprintln!("warning: {w}");
//! }
//! # Ok::<(), scheduler::topology::TopologyError>(())
//! ```

pub mod btrfs;
mod device;
mod error;
pub mod fs;
pub mod served;
pub mod stat;
pub mod sysfs;
mod warning;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use device::block_device_from_sysfs;
pub use error::TopologyError;
pub use fs::{mountpoint_of, FilesystemInfo};
pub use served::{Coverage, Served, ServedInput, Verdict};
pub use stat::{CounterSnapshot, DeviceCounters, DeviceDelta};
pub use sysfs::WriteCache;
pub use warning::TopologyWarning;

/// Where sysfs is mounted on a running system.
pub const SYSFS_ROOT: &str = "/sys";

/// Physical block size assumed when there is no block device (tmpfs: the
/// page size on x86-64), bytes.
pub const DEFAULT_PHYSICAL_BLOCK_SIZE: u64 = 4096;

/// Smallest request size ever derived from the topology, bytes (the
/// reference's floor for `minimum_io_size`).
pub const MIN_IO_SIZE: u64 = 512;

/// One node of the block device tree under a filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDevice {
    /// Kernel name, the last component of its sysfs directory, e.g.
    /// "nvme0n1", "nvme0n1p1", "md0", "dm-0", "vda".
    pub name: String,
    /// (major, minor), from the node's `dev` file; for a btrfs filesystem node,
    /// the filesystem's anonymous `st_dev` (it has no `dev` file).
    pub dev: (u32, u32),
    /// What kind of node this is.
    pub kind: DeviceKind,
    /// Request-queue limits from this node's `queue/` directory; for a
    /// partition, a copy of its disk's; for a btrfs filesystem node, the
    /// largest block sizes of its members (the other limits `None`).
    pub queue: QueueLimits,
    /// Components of an md, dm or other stacked device (from `slaves/`,
    /// recursively, sorted by name), or the members of a btrfs filesystem
    /// (from `fs/btrfs/<fsid>/devices/`); empty for disks and partitions.
    pub slaves: Vec<BlockDevice>,
    /// For a partition: the whole disk it belongs to (its parent sysfs
    /// directory). `None` for every other kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<Box<BlockDevice>>,
    /// Capacity from `size` (512-byte units) converted to bytes; `None` if the
    /// file is missing or malformed.
    pub size_bytes: Option<u64>,
    /// For a partition: its offset on the disk from `start` (512-byte units)
    /// converted to bytes. `None` for every other kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_bytes: Option<u64>,
}

/// The kind of a [`BlockDevice`] node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeviceKind {
    /// A whole disk with no components (NVMe namespace, SCSI/SATA disk,
    /// virtio disk, loop device, ...).
    Disk,
    /// A partition: its sysfs directory holds a `partition` file and sits
    /// inside its disk's directory.
    Partition,
    /// A Linux software RAID array (its directory has `md/`).
    Md {
        /// `md/level`, e.g. "raid0", "raid1", "raid10" (empty if unreadable).
        level: String,
        /// `md/chunk_size`, bytes (0 when the level has no chunks or the
        /// file is unreadable).
        chunk_size: u64,
        /// `md/raid_disks`: member count of the array (the number of slaves
        /// if the file is unreadable).
        raid_disks: u32,
    },
    /// A device-mapper device (its directory has `dm/`): LVM, dm-crypt, ...
    Dm,
    /// A stacked device with `slaves/` that is neither md nor dm.
    Other,
    /// A btrfs filesystem spanning its member devices (`slaves`): not a block
    /// device, the node stands for `/sys/fs/btrfs/<fsid>/`.
    Btrfs {
        /// The filesystem UUID, the name of its directory under `/sys/fs/btrfs`.
        fsid: String,
        /// Block-group profiles holding data ("raid0", "raid1", "single", ..;
        /// more than one while converting), from `allocation/data/`.
        data_profiles: Vec<String>,
        /// Block-group profiles holding metadata, from `allocation/metadata/`.
        metadata_profiles: Vec<String>,
    },
}

/// Request-queue limits of a block device, from its sysfs `queue/` directory.
/// Fields are `Option` where the file may be missing on some devices or
/// kernels (a [`TopologyWarning`] then says so for leaf disks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueLimits {
    /// `queue/logical_block_size`, bytes: the smallest unit the device
    /// addresses, hence the O_DIRECT alignment. Required.
    pub logical_block_size: u64,
    /// `queue/physical_block_size`, bytes: the smallest unit the device
    /// writes without read-modify-write (4096 on a 512e drive). Falls back to
    /// `logical_block_size` when missing.
    pub physical_block_size: u64,
    /// `queue/minimum_io_size`, bytes: preferred minimum request size (the
    /// chunk size on md). Falls back to `physical_block_size` when missing.
    pub minimum_io_size: u64,
    /// `queue/optimal_io_size`, bytes: preferred request size for streaming
    /// (stripe width on md), 0 when the device states none or it is missing.
    pub optimal_io_size: u64,
    /// `queue/nr_requests`: requests the block layer queues per hardware
    /// queue (what the reference sums into its in-flight bound).
    pub nr_requests: Option<u64>,
    /// `queue/max_sectors_kb`, KiB: largest request the block layer sends
    /// down; bigger ones are split.
    pub max_sectors_kb: Option<u64>,
    /// `queue/rotational`: true for spinning media.
    pub rotational: Option<bool>,
    /// `queue/scheduler`: the active I/O scheduler (the `[bracketed]` entry),
    /// e.g. "none", "mq-deadline".
    pub scheduler: Option<String>,
    /// `queue/nomerges`: 0 = merges on, 1 = simple merges only, 2 = none.
    pub nomerges: Option<u32>,
    /// `queue/write_cache`: "write back" or "write through".
    pub write_cache: Option<WriteCache>,
}

impl BlockDevice {
    /// The leaf disks of this node, without duplicates (by `dev`): a
    /// partition resolves to its disk's leaves, a stacked device (or btrfs
    /// filesystem) to its components' leaves, anything else is its own leaf.
    pub fn leaves(&self) -> Vec<&BlockDevice> {
        let mut out = Vec::new();
        self.collect_leaves(&mut out);
        out
    }

    /// The devices whose I/O counters (`stat`) account for this node's I/O,
    /// without duplicates: the leaves, except that a partition of a leaf disk
    /// counts itself rather than its whole disk (so I/O on the disk's other
    /// partitions is not counted). Partitions of stacked devices resolve
    /// through them to their leaves.
    pub fn counted(&self) -> Vec<&BlockDevice> {
        let mut out = Vec::new();
        self.collect_counted(&mut out);
        out
    }

    fn collect_counted<'a>(&'a self, out: &mut Vec<&'a BlockDevice>) {
        match &self.parent {
            Some(disk) if !disk.slaves.is_empty() => disk.collect_counted(out),
            _ if !self.slaves.is_empty() => {
                for slave in &self.slaves {
                    slave.collect_counted(out);
                }
            }
            _ => {
                if !out.iter().any(|d| d.dev == self.dev) {
                    out.push(self);
                }
            }
        }
    }

    /// Copies of each written byte this node keeps on its leaves: 1 for a
    /// disk or partition; for md RAID1 the sum over its components, for md
    /// RAID10 twice the components' (the default near-2 layout); for a btrfs
    /// filesystem its data profile's copies (the largest while converting)
    /// times its members'; for anything else (RAID0, linear, parity RAID,
    /// dm) the largest of its components'. Parity and metadata are not
    /// counted: they are extra I/O that the served check may report.
    pub fn write_copies(&self) -> u32 {
        let inner = self
            .slaves
            .iter()
            .map(BlockDevice::write_copies)
            .max()
            .unwrap_or(1);
        match &self.kind {
            DeviceKind::Partition => self.parent.as_ref().map_or(1, |d| d.write_copies()),
            DeviceKind::Md { level, .. } if level == "raid1" => self
                .slaves
                .iter()
                .map(BlockDevice::write_copies)
                .sum::<u32>()
                .max(1),
            DeviceKind::Md { level, .. } if level == "raid10" => 2 * inner,
            DeviceKind::Btrfs { data_profiles, .. } => {
                let copies = data_profiles
                    .iter()
                    .filter_map(|p| btrfs::profile_copies(p))
                    .max()
                    .unwrap_or(1);
                copies * inner
            }
            _ => inner,
        }
    }

    fn collect_leaves<'a>(&'a self, out: &mut Vec<&'a BlockDevice>) {
        if let Some(disk) = &self.parent {
            disk.collect_leaves(out);
        } else if !self.slaves.is_empty() {
            for slave in &self.slaves {
                slave.collect_leaves(out);
            }
        } else if !out.iter().any(|d| d.dev == self.dev) {
            out.push(self);
        }
    }
}

/// Everything iotune needs to know about where an evaluation directory's
/// data goes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Topology {
    /// The evaluation directory, canonicalised.
    pub directory: PathBuf,
    /// Its mountpoint ([`mountpoint_of`]).
    pub mountpoint: PathBuf,
    /// Filesystem type named from the `statfs` `f_type` magic ("ext4", "xfs",
    /// "tmpfs", "btrfs", ...; "0x…" hex when unknown; ext2/3 read as "ext4").
    pub fs_type: String,
    /// `statfs` `f_bsize`, bytes.
    pub fs_block_size: u64,
    /// `statx` `STATX_DIOALIGN` memory alignment for O_DIRECT buffers, bytes;
    /// `None` when not reported (kernel before 6.1, or unsupported).
    pub dio_mem_align: Option<u32>,
    /// `statx` `STATX_DIOALIGN` file offset/length alignment for O_DIRECT,
    /// bytes; `None` when not reported.
    pub dio_offset_align: Option<u32>,
    /// The block device holding the filesystem (for btrfs, a
    /// [`DeviceKind::Btrfs`] node over its members); `None` when it has none
    /// (tmpfs, overlayfs, FUSE, NFS, ZFS: `st_dev` major 0 and no block device
    /// as mount source).
    pub device: Option<BlockDevice>,
    /// Whether `device` covers every device the filesystem's data can reach,
    /// so that their counters can vouch for a measurement ([`served`]).
    pub coverage: Coverage,
    /// Non-fatal findings, to be shown to the user.
    pub warnings: Vec<TopologyWarning>,
}

impl Topology {
    /// The topology of `dir` on this machine, reading `/sys`. Probes the
    /// directory as [`FilesystemInfo::probe`] does (which briefly creates an
    /// unnamed `O_TMPFILE` file in it).
    ///
    /// # Errors
    ///
    /// Those of [`FilesystemInfo::probe`] and [`block_device_from_sysfs`];
    /// [`TopologyError::is_sysfs`] tells the latter apart, after which
    /// [`Topology::without_device`] can still describe the filesystem.
    pub fn for_directory(dir: &Path) -> Result<Topology, TopologyError> {
        Topology::for_directory_with_sysfs(dir, Path::new(SYSFS_ROOT))
    }

    /// The topology of `dir` (probed on the real system) with its block
    /// device read from the sysfs tree at `sysfs_root`.
    ///
    /// # Errors
    ///
    /// As [`Topology::for_directory`].
    pub fn for_directory_with_sysfs(
        dir: &Path,
        sysfs_root: &Path,
    ) -> Result<Topology, TopologyError> {
        let fs = FilesystemInfo::probe(dir)?;
        Topology::from_filesystem(fs, sysfs_root)
    }

    /// Joins an already probed (or hand-made) [`FilesystemInfo`] with the
    /// device tree under it read from `sysfs_root`. This is the sysfs half,
    /// testable on fixture trees with any device number.
    ///
    /// - btrfs: the filesystem is looked up under `fs/btrfs/` ([`btrfs::find`])
    ///   and all its members become the leaves; when it cannot be found, the
    ///   mount source alone is used, with coverage [`Coverage::Partial`] and a
    ///   [`TopologyWarning::DevicesMayBeMissing`].
    /// - `st_dev` a block device: its tree, coverage [`Coverage::Complete`].
    /// - `st_dev` anonymous but the mount source a block device: that device,
    ///   coverage [`Coverage::Partial`] (the filesystem may use others too).
    /// - no block device: sysfs is not read, coverage [`Coverage::None`] and a
    ///   [`TopologyWarning::NoBlockDevice`] naming what could not be found.
    ///
    /// # Errors
    ///
    /// Those of [`block_device_from_sysfs`], [`btrfs::find`] and [`btrfs::read`].
    pub fn from_filesystem(
        fs: FilesystemInfo,
        sysfs_root: &Path,
    ) -> Result<Topology, TopologyError> {
        let st_dev = format!("{}:{}", fs.st_dev.0, fs.st_dev.1);
        let source = fs.mount_source.clone().unwrap_or_else(|| "unknown".into());
        let is_btrfs = fs.fs_type == "btrfs";
        let btrfs_dir = if is_btrfs {
            btrfs::find(sysfs_root, fs.fsid, fs.block_device)?
        } else {
            None
        };
        let (device, warnings, coverage) = if let Some(dir) = btrfs_dir {
            let (device, warnings) = btrfs::read(&dir, fs.st_dev)?;
            (device, warnings, Coverage::Complete)
        } else if let Some(dev) = fs.block_device {
            let (device, mut warnings) = block_device_from_sysfs(sysfs_root, dev)?;
            let coverage = if fs.st_dev.0 != 0 && !is_btrfs {
                Coverage::Complete
            } else {
                let why = if is_btrfs {
                    format!(
                        "btrfs is not listed under {} (kernel before 3.14, or sysfs not \
                         mounted), so only its mount source {} was found",
                        sysfs_root.join("fs/btrfs").display(),
                        device.name
                    )
                } else {
                    format!(
                        "{} has no block device of its own (st_dev {st_dev}), so only its \
                         mount source {} was found",
                        fs.fs_type, device.name
                    )
                };
                warnings.push(TopologyWarning::DevicesMayBeMissing {
                    fs_type: fs.fs_type.clone(),
                    found: device.name.clone(),
                    reason: why.clone(),
                });
                Coverage::Partial {
                    reason: format!("{why}: other devices of the filesystem may be missing"),
                }
            };
            (device, warnings, coverage)
        } else {
            let warning = TopologyWarning::NoBlockDevice {
                fs_type: fs.fs_type.clone(),
                st_dev: st_dev.clone(),
                source: source.clone(),
            };
            let reason = format!(
                "{} has no block device (st_dev {st_dev} is anonymous and the mount source \
                 {source:?} is not a block device), so the disk(s) under it could not be found",
                fs.fs_type
            );
            return Ok(Topology::without_device_with(fs, warning, reason));
        };
        let mut topology = Topology {
            directory: fs.directory,
            mountpoint: fs.mountpoint,
            fs_type: fs.fs_type,
            fs_block_size: fs.fs_block_size,
            dio_mem_align: fs.dio_mem_align,
            dio_offset_align: fs.dio_offset_align,
            device: Some(device),
            coverage,
            warnings,
        };
        let physical = topology.physical_block_size();
        if topology.fs_block_size < physical {
            topology
                .warnings
                .push(TopologyWarning::FsBlockBelowPhysical {
                    fs_type: topology.fs_type.clone(),
                    fs_block_size: topology.fs_block_size,
                    physical_block_size: physical,
                });
        }
        Ok(topology)
    }

    /// A topology without a device, for when sysfs could not be read
    /// ([`TopologyError::is_sysfs`]): the filesystem facts are kept, `device`
    /// is `None`, and `error` becomes a [`TopologyWarning::SysfsUnreadable`].
    /// Coverage is [`Coverage::None`].
    pub fn without_device(fs: FilesystemInfo, error: &TopologyError) -> Topology {
        let reason = error.chain();
        let warning = TopologyWarning::SysfsUnreadable {
            reason: reason.clone(),
        };
        let reason = format!("the block device could not be read from sysfs ({reason})");
        Topology::without_device_with(fs, warning, reason)
    }

    fn without_device_with(
        fs: FilesystemInfo,
        warning: TopologyWarning,
        reason: String,
    ) -> Topology {
        Topology {
            directory: fs.directory,
            mountpoint: fs.mountpoint,
            fs_type: fs.fs_type,
            fs_block_size: fs.fs_block_size,
            dio_mem_align: fs.dio_mem_align,
            dio_offset_align: fs.dio_offset_align,
            device: None,
            coverage: Coverage::None { reason },
            warnings: vec![warning],
        }
    }

    /// The leaf disks under the filesystem, without duplicates: partitions
    /// resolved to their disk, md/dm resolved to their components. Empty when
    /// there is no device.
    pub fn leaves(&self) -> Vec<&BlockDevice> {
        self.device
            .as_ref()
            .map(BlockDevice::leaves)
            .unwrap_or_default()
    }

    /// The devices whose `stat` counters account for the filesystem's I/O
    /// ([`BlockDevice::counted`]): the leaves, with a partition of a plain
    /// disk counted as itself. Empty when there is no device.
    pub fn counted_devices(&self) -> Vec<&BlockDevice> {
        self.device
            .as_ref()
            .map(BlockDevice::counted)
            .unwrap_or_default()
    }

    /// Copies of each written byte the device stack keeps
    /// ([`BlockDevice::write_copies`]); 1 when there is no device.
    pub fn write_copies(&self) -> u32 {
        self.device.as_ref().map_or(1, BlockDevice::write_copies)
    }

    /// The smallest request the filesystem is known to do directly, bytes:
    /// the largest of the physical block size, the `statx` DIO offset
    /// alignment and — when `statx` does not report it (btrfs, older kernels)
    /// — the filesystem block size. Smaller O_DIRECT requests may be served
    /// through the page cache (btrfs) or cost a read-modify-write; this is
    /// the default random request size.
    pub fn direct_io_size(&self) -> u64 {
        self.physical_block_size().max(self.direct_io_alignment())
    }

    /// The alignment (and smallest size) of O_DIRECT requests the filesystem
    /// is known to do directly, bytes: the `statx` DIO offset alignment or,
    /// when `statx` does not report it, the filesystem block size; never below
    /// the logical block size. Probes of smaller requests (physical block
    /// detection, saturation length) would measure the filesystem's fallback.
    pub fn direct_io_alignment(&self) -> u64 {
        let floor = match self.dio_offset_align {
            Some(align) => u64::from(align),
            None => self.fs_block_size,
        };
        self.logical_block_size().max(floor).max(MIN_IO_SIZE)
    }

    /// Sum of the leaves' `queue/nr_requests` (the reference's in-flight
    /// bound, in requests); `None` when there is no device or any leaf lacks
    /// the attribute — the caller then guesses (the reference uses 128).
    pub fn in_flight_bound(&self) -> Option<u64> {
        let leaves = self.leaves();
        if leaves.is_empty() {
            return None;
        }
        leaves.iter().try_fold(0u64, |sum, d| {
            Some(sum.saturating_add(d.queue.nr_requests?))
        })
    }

    /// Largest `queue/physical_block_size` of the top device and its leaves,
    /// bytes; [`DEFAULT_PHYSICAL_BLOCK_SIZE`] (4096, the page size that tmpfs
    /// works in) when there is no device. Writes smaller than this cost a
    /// read-modify-write.
    pub fn physical_block_size(&self) -> u64 {
        self.max_over_stack(|q| q.physical_block_size)
            .unwrap_or(DEFAULT_PHYSICAL_BLOCK_SIZE)
    }

    /// Largest `queue/logical_block_size` of the top device and its leaves,
    /// bytes (the top device counts: a dm-crypt with 4096-byte sectors over a
    /// 512-byte disk needs 4096); without a device, `dio_offset_align` or
    /// else 512. This is the O_DIRECT alignment.
    pub fn logical_block_size(&self) -> u64 {
        self.max_over_stack(|q| q.logical_block_size)
            .unwrap_or_else(|| self.dio_offset_align.map_or(MIN_IO_SIZE, u64::from))
    }

    /// Largest `queue/minimum_io_size` of the leaves (not of the top device,
    /// where md reports its chunk size), bytes, at least 512 — the
    /// reference's random request size. 512 when there is no device.
    pub fn minimum_io_size(&self) -> u64 {
        self.leaves()
            .iter()
            .map(|d| d.queue.minimum_io_size)
            .max()
            .unwrap_or(0)
            .max(MIN_IO_SIZE)
    }

    /// Number of leaf disks (the reference's array width L); 1 when there is
    /// no device.
    pub fn leaf_count(&self) -> usize {
        self.leaves().len().max(1)
    }

    fn max_over_stack(&self, field: impl Fn(&QueueLimits) -> u64) -> Option<u64> {
        let top = self.device.as_ref()?;
        let leaves = top.leaves().into_iter().map(|d| field(&d.queue));
        Some(leaves.fold(field(&top.queue), u64::max))
    }
}
