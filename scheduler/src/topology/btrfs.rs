//! btrfs is its own volume manager: its `st_dev` is anonymous (major 0), its mount source names
//! one member, and the data of one file may sit on all of them. The members are listed in sysfs
//! (Linux 3.14+) under `fs/btrfs/<fsid>/devices/`, each entry a link to the member's block
//! device directory, and `fs/btrfs/<fsid>/allocation/{data,metadata}/` holds one directory per
//! block-group profile in use ("single", "raid0", "raid1", ..).
//!
//! The filesystem holding a directory is found without an ioctl: `statfs` `f_fsid` is the
//! filesystem UUID folded to two words, XORed with the subvolume id (fs/btrfs/super.c,
//! `btrfs_statfs`), which [`fsid_matches`] undoes; failing that, the member that is the mount
//! source is looked up among the listed members.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::device::{linked_dirs, read_dev, read_node};
use super::{BlockDevice, DeviceKind, QueueLimits, TopologyError, TopologyWarning};

/// `fs/btrfs` below the sysfs root.
const BTRFS_DIR: &str = "fs/btrfs";

/// Parses a UUID written as 32 hex digits with or without dashes (the names of the directories
/// under `/sys/fs/btrfs`); `None` for anything else ("features").
pub fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = text.bytes().filter(|&b| b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// True when `f_fsid` (the two `statfs` words) is that of a subvolume of the btrfs filesystem
/// with UUID `uuid`. btrfs sets `val[0] = be32(u[0..4]) ^ be32(u[8..12]) ^ (root id >> 32)` and
/// `val[1] = be32(u[4..8]) ^ be32(u[12..16]) ^ (root id & 0xffffffff)`; subvolume (root) ids
/// are 5 (the top level) or 256 and up and stay far below 2^32, so the first word must match
/// exactly and the second must leave a valid root id.
pub fn fsid_matches(uuid: &[u8; 16], f_fsid: [u32; 2]) -> bool {
    let word = |i: usize| u32::from_be_bytes([uuid[i], uuid[i + 1], uuid[i + 2], uuid[i + 3]]);
    let root_id = f_fsid[1] ^ word(4) ^ word(12);
    f_fsid[0] == word(0) ^ word(8) && (root_id == 5 || root_id >= 256)
}

/// Copies of each byte a btrfs block-group profile keeps ("raid1" keeps 2); `None` for names
/// that are not profiles. Parity profiles (raid5, raid6) count one copy: their parity writes
/// are read-modify-write, which the served check reports as such.
pub fn profile_copies(profile: &str) -> Option<u32> {
    Some(match profile {
        "single" | "raid0" | "raid5" | "raid6" => 1,
        "dup" | "raid1" | "raid10" => 2,
        "raid1c3" => 3,
        "raid1c4" => 4,
        _ => return None,
    })
}

/// The directory `<sysfs_root>/fs/btrfs/<uuid>` of the filesystem whose `statfs` `f_fsid` is
/// `f_fsid` or, when none matches, the one listing the block device `source` (the mount source)
/// among its members. `Ok(None)` when sysfs has no `fs/btrfs` (old kernel, fixture without
/// btrfs) or no filesystem matches.
///
/// # Errors
///
/// [`TopologyError::ReadDir`] when `fs/btrfs` exists but cannot be listed.
pub fn find(
    sysfs_root: &Path,
    f_fsid: [u32; 2],
    source: Option<(u32, u32)>,
) -> Result<Option<PathBuf>, TopologyError> {
    let base = sysfs_root.join(BTRFS_DIR);
    let entries = match fs::read_dir(&base) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(TopologyError::ReadDir { path: base, source }),
    };
    let mut filesystems: Vec<(PathBuf, [u8; 16])> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| TopologyError::ReadDir {
            path: base.clone(),
            source,
        })?;
        if let Some(uuid) = entry.file_name().to_str().and_then(parse_uuid) {
            filesystems.push((entry.path(), uuid));
        }
    }
    filesystems.sort();
    if let Some((dir, _)) = filesystems
        .iter()
        .find(|(_, uuid)| fsid_matches(uuid, f_fsid))
    {
        return Ok(Some(dir.clone()));
    }
    let Some(source) = source else {
        return Ok(None);
    };
    for (dir, _) in &filesystems {
        if member_dirs(dir)?
            .iter()
            .any(|m| read_dev(m).ok() == Some(source))
        {
            return Ok(Some(dir.clone()));
        }
    }
    Ok(None)
}

/// The resolved sysfs directories of the members listed in `<fs_dir>/devices/`, by name.
fn member_dirs(fs_dir: &Path) -> Result<Vec<PathBuf>, TopologyError> {
    let devices = fs_dir.join("devices");
    linked_dirs(&devices)?.ok_or_else(|| TopologyError::ReadDir {
        path: devices,
        source: io::Error::new(io::ErrorKind::NotFound, "no devices/ directory"),
    })
}

/// The profiles in use for `kind` ("data" or "metadata"): the profile-named directories under
/// `<fs_dir>/allocation/<kind>/`, sorted; empty when unreadable.
fn profiles(fs_dir: &Path, kind: &str) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(fs_dir.join("allocation").join(kind))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|name| profile_copies(name).is_some())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Reads the btrfs filesystem at `fs_dir` (found with [`find`]) as one node of kind
/// [`DeviceKind::Btrfs`] whose `slaves` are its members, each read like any block device
/// (partitions resolve to their disks, md and dm to their components). `st_dev` becomes the
/// node's `dev`. Warnings are those of the members' leaf disks.
///
/// # Errors
///
/// [`TopologyError::ReadDir`] when `devices/` or a member link cannot be read, and the errors
/// of reading a member's device tree (see [`block_device_from_sysfs`](super::block_device_from_sysfs)).
pub fn read(
    fs_dir: &Path,
    st_dev: (u32, u32),
) -> Result<(BlockDevice, Vec<TopologyWarning>), TopologyError> {
    let fsid = fs_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut warnings = Vec::new();
    let members = member_dirs(fs_dir)?
        .iter()
        .map(|dir| read_node(dir, 1, &mut warnings))
        .collect::<Result<Vec<_>, _>>()?;
    if members.is_empty() {
        return Err(TopologyError::ReadDir {
            path: fs_dir.join("devices"),
            source: io::Error::new(io::ErrorKind::NotFound, "no member devices listed"),
        });
    }
    let largest = |f: fn(&QueueLimits) -> u64| members.iter().map(|m| f(&m.queue)).max();
    let queue = QueueLimits {
        logical_block_size: largest(|q| q.logical_block_size).unwrap_or(512),
        physical_block_size: largest(|q| q.physical_block_size).unwrap_or(512),
        minimum_io_size: largest(|q| q.minimum_io_size).unwrap_or(512),
        optimal_io_size: 0,
        nr_requests: None,
        max_sectors_kb: None,
        rotational: None,
        scheduler: None,
        nomerges: None,
        write_cache: None,
    };
    let size_bytes = members
        .iter()
        .try_fold(0u64, |sum, m| Some(sum.saturating_add(m.size_bytes?)));
    let node = BlockDevice {
        name: format!("btrfs-{fsid}"),
        dev: st_dev,
        kind: DeviceKind::Btrfs {
            fsid,
            data_profiles: profiles(fs_dir, "data"),
            metadata_profiles: profiles(fs_dir, "metadata"),
        },
        queue,
        slaves: members,
        parent: None,
        size_bytes,
        start_bytes: None,
    };
    Ok((node, super::device::unique(warnings)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids() {
        let u = parse_uuid("f095f929-896d-46e5-b132-f1207c8d6d32").expect("valid");
        assert_eq!(u[0], 0xf0);
        assert_eq!(u[15], 0x32);
        assert_eq!(parse_uuid("f095f929896d46e5b132f1207c8d6d32"), Some(u));
        for bad in [
            "features",
            "",
            "f095f929-896d-46e5-b132-f1207c8d6d3",
            "g095f929-896d-46e5-b132-f1207c8d6d32",
        ] {
            assert_eq!(parse_uuid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn fsid_of_the_top_level_and_of_a_subvolume() {
        // Measured: `stat -f -c %i` of a fresh btrfs with this UUID printed 41a70809f5e02bd2,
        // i.e. val[0] = 0x41a70809, val[1] = 0xf5e02bd2 (root id 5).
        let u = parse_uuid("f095f929-896d-46e5-b132-f1207c8d6d32").unwrap();
        assert!(fsid_matches(&u, [0x41a7_0809, 0xf5e0_2bd2]));
        // Subvolume 257 of the same filesystem: 5 ^ 257 flips bits in the second word.
        assert!(fsid_matches(&u, [0x41a7_0809, 0xf5e0_2bd2 ^ 5 ^ 257]));
        // Another filesystem, or a word that leaves no valid root id.
        assert!(!fsid_matches(&u, [0x41a7_0808, 0xf5e0_2bd2]));
        assert!(!fsid_matches(&u, [0x41a7_0809, 0xf5e0_2bd2 ^ 5 ^ 7]));
        assert!(!fsid_matches(&u, [0, 0]));
    }

    #[test]
    fn profiles_copy_counts() {
        assert_eq!(profile_copies("raid0"), Some(1));
        assert_eq!(profile_copies("raid1"), Some(2));
        assert_eq!(profile_copies("dup"), Some(2));
        assert_eq!(profile_copies("raid1c4"), Some(4));
        assert_eq!(profile_copies("bytes_used"), None);
    }
}
