//! Walking a sysfs tree from `dev/block/MAJ:MIN` down to the leaf disks.
//!
//! Every path is taken relative to a caller-given sysfs root and symlinks are
//! resolved by hand (lexically), so a fixture tree under a temporary
//! directory behaves like `/sys`. Nothing is cached.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::sysfs::{self, ParseError};
use super::{BlockDevice, DeviceKind, QueueLimits, TopologyError, TopologyWarning, WriteCache};

/// Deepest device stack accepted (dm over md over partition is 3); more means
/// a `slaves/` loop.
pub(crate) const MAX_DEPTH: usize = 16;

/// Most symlinks followed in a row when resolving one path.
const MAX_LINKS: usize = 40;

/// Reads the device tree of block device `dev` from the sysfs tree at
/// `sysfs_root` (normally `/sys`): resolves `dev/block/MAJ:MIN`, goes from a
/// partition to its disk (the parent directory, whatever its minor), recurses
/// through `slaves/` of md, dm and other stacked devices, and reads each
/// node's `queue/` limits.
///
/// Returns the tree and the warnings about its leaf disks (scheduler,
/// nomerges, write cache, missing or unreadable optional attributes, lying
/// `minimum_io_size`, misaligned partitions), without duplicates.
///
/// # Errors
///
/// [`TopologyError::DeviceNotFound`] when `dev/block/MAJ:MIN` does not lead
/// to a directory; [`TopologyError::ReadAttribute`] or
/// [`TopologyError::ParseAttribute`] when a node's `dev` or
/// `queue/logical_block_size` is missing or malformed;
/// [`TopologyError::ReadDir`] when `slaves/` or one of its links cannot be
/// read; [`TopologyError::TooDeep`] on a `slaves/` loop. Each names the path.
pub fn block_device_from_sysfs(
    sysfs_root: &Path,
    dev: (u32, u32),
) -> Result<(BlockDevice, Vec<TopologyWarning>), TopologyError> {
    let link = sysfs_root
        .join("dev/block")
        .join(format!("{}:{}", dev.0, dev.1));
    let dir = resolve_dir(&link).map_err(|source| TopologyError::DeviceNotFound {
        dev,
        path: link.clone(),
        source,
    })?;
    let mut warnings = Vec::new();
    let device = read_node(&dir, 0, &mut warnings)?;
    Ok((device, unique(warnings)))
}

/// `warnings` without repeats (a disk reached twice warns once), in first-seen order.
pub(crate) fn unique(warnings: Vec<TopologyWarning>) -> Vec<TopologyWarning> {
    let mut out: Vec<TopologyWarning> = Vec::with_capacity(warnings.len());
    for w in warnings {
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// The (major, minor) in the `dev` file of the device directory `dir`.
pub(crate) fn read_dev(dir: &Path) -> Result<(u32, u32), TopologyError> {
    read_attr(dir, "dev", sysfs::parse_dev)
}

/// Follows `path` through symlinks (relative ones resolved against the
/// link's directory, lexically) and checks that it ends at a directory.
pub(crate) fn resolve_dir(path: &Path) -> io::Result<PathBuf> {
    let mut current = normalize(path);
    for _ in 0..MAX_LINKS {
        let meta = fs::symlink_metadata(&current)?;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&current)?;
            current = match current.parent() {
                Some(parent) if target.is_relative() => normalize(&parent.join(target)),
                _ => normalize(&target),
            };
        } else if meta.is_dir() {
            return Ok(current);
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a directory", current.display()),
            ));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("more than {MAX_LINKS} symlinks to follow"),
    ))
}

/// Removes `.` and resolves `..` lexically (sysfs link targets are written
/// so that this is exact).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                // `/..` is `/`.
                Some(Component::RootDir | Component::Prefix(_)) => {}
                // Empty, or already climbing above a relative start.
                _ => out.push(c),
            },
            other => out.push(other),
        }
    }
    out
}

/// Reads and parses `dir/rel`. A missing file is a
/// [`TopologyError::ReadAttribute`] with `NotFound` (see `is_not_found`).
fn read_attr<T>(
    dir: &Path,
    rel: &str,
    parse: fn(&str) -> Result<T, ParseError>,
) -> Result<T, TopologyError> {
    let path = dir.join(rel);
    let text = fs::read_to_string(&path).map_err(|source| TopologyError::ReadAttribute {
        path: path.clone(),
        source,
    })?;
    parse(&text).map_err(|source| TopologyError::ParseAttribute { path, source })
}

/// Reads an attribute that may be absent: `None` when missing or bad, with a
/// warning when `report` is set.
fn read_optional<T>(
    dir: &Path,
    device: &str,
    rel: &str,
    parse: fn(&str) -> Result<T, ParseError>,
    report: bool,
    warnings: &mut Vec<TopologyWarning>,
) -> Option<T> {
    match read_attr(dir, rel, parse) {
        Ok(v) => Some(v),
        Err(e) => {
            if report {
                warnings.push(if e.is_not_found() {
                    TopologyWarning::MissingAttribute {
                        device: device.to_owned(),
                        attribute: rel.to_owned(),
                    }
                } else {
                    TopologyWarning::UnreadableAttribute {
                        device: device.to_owned(),
                        attribute: rel.to_owned(),
                        reason: e.chain(),
                    }
                });
            }
            None
        }
    }
}

/// Reads an attribute that is normally present, falling back to `default`
/// with a warning when it is missing or bad.
fn read_or<T>(
    dir: &Path,
    device: &str,
    rel: &str,
    parse: fn(&str) -> Result<T, ParseError>,
    default: T,
    warnings: &mut Vec<TopologyWarning>,
) -> T {
    read_optional(dir, device, rel, parse, true, warnings).unwrap_or(default)
}

/// Builds the node at sysfs directory `dir` (already resolved).
pub(crate) fn read_node(
    dir: &Path,
    depth: usize,
    warnings: &mut Vec<TopologyWarning>,
) -> Result<BlockDevice, TopologyError> {
    if depth > MAX_DEPTH {
        return Err(TopologyError::TooDeep {
            path: dir.to_owned(),
            max_depth: MAX_DEPTH,
        });
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dev = read_attr(dir, "dev", sysfs::parse_dev)?;
    let size_bytes = read_attr(dir, "size", sysfs::parse_u64)
        .ok()
        .map(|sectors| sectors.saturating_mul(512));

    if dir.join("partition").is_file() {
        return read_partition(dir, name, dev, size_bytes, depth, warnings);
    }

    let slaves = read_slaves(dir, depth, warnings)?;
    let is_leaf = slaves.is_empty();
    let queue = read_queue(dir, &name, is_leaf, warnings)?;
    let kind = if dir.join("md").is_dir() {
        let level = read_or(
            dir,
            &name,
            "md/level",
            sysfs::parse_word,
            String::new(),
            warnings,
        );
        let chunk_size = read_or(dir, &name, "md/chunk_size", sysfs::parse_u64, 0, warnings);
        let raid_disks = read_or(
            dir,
            &name,
            "md/raid_disks",
            sysfs::parse_u32,
            u32::try_from(slaves.len()).unwrap_or(u32::MAX),
            warnings,
        );
        DeviceKind::Md {
            level,
            chunk_size,
            raid_disks,
        }
    } else if dir.join("dm").is_dir() {
        DeviceKind::Dm
    } else if is_leaf {
        DeviceKind::Disk
    } else {
        DeviceKind::Other
    };
    if is_leaf {
        leaf_checks(&name, &queue, warnings);
    }
    Ok(BlockDevice {
        name,
        dev,
        kind,
        queue,
        slaves,
        parent: None,
        size_bytes,
        start_bytes: None,
    })
}

/// A partition: its disk is the parent directory, whose `queue/` it shares.
fn read_partition(
    dir: &Path,
    name: String,
    dev: (u32, u32),
    size_bytes: Option<u64>,
    depth: usize,
    warnings: &mut Vec<TopologyWarning>,
) -> Result<BlockDevice, TopologyError> {
    let disk_dir = dir.parent().ok_or_else(|| TopologyError::ReadDir {
        path: dir.to_owned(),
        source: io::Error::new(
            io::ErrorKind::NotFound,
            "partition without a parent directory",
        ),
    })?;
    let disk = read_node(disk_dir, depth + 1, warnings)?;
    // `start` is in 512-byte units whatever the logical block size.
    let start_bytes = read_attr(dir, "start", sysfs::parse_u64)
        .ok()
        .map(|sectors| sectors.saturating_mul(512));
    let physical = disk.queue.physical_block_size;
    if let Some(start) = start_bytes {
        if physical > 0 && start % physical != 0 {
            warnings.push(TopologyWarning::PartitionMisaligned {
                device: name.clone(),
                start_bytes: start,
                physical_block_size: physical,
            });
        }
    }
    Ok(BlockDevice {
        name,
        dev,
        kind: DeviceKind::Partition,
        queue: disk.queue.clone(),
        slaves: Vec::new(),
        parent: Some(Box::new(disk)),
        size_bytes,
        start_bytes,
    })
}

/// The components listed in `dir/slaves/`, sorted by name; none when the
/// directory is absent (fixture trees cannot keep empty directories).
fn read_slaves(
    dir: &Path,
    depth: usize,
    warnings: &mut Vec<TopologyWarning>,
) -> Result<Vec<BlockDevice>, TopologyError> {
    let Some(targets) = linked_dirs(&dir.join("slaves"))? else {
        return Ok(Vec::new());
    };
    targets
        .iter()
        .map(|target| read_node(target, depth + 1, warnings))
        .collect()
}

/// The entries of `dir`, a sysfs directory of links (`slaves/`, btrfs `devices/`), sorted by
/// name, each resolved to the directory it leads to; `Ok(None)` when `dir` does not exist.
///
/// # Errors
///
/// [`TopologyError::ReadDir`] naming `dir` when it cannot be listed, or the entry that does
/// not lead to a directory.
pub(crate) fn linked_dirs(dir: &Path) -> Result<Option<Vec<PathBuf>>, TopologyError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(TopologyError::ReadDir {
                path: dir.to_owned(),
                source,
            })
        }
    };
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| TopologyError::ReadDir {
            path: dir.to_owned(),
            source,
        })?;
        paths.push(entry.path());
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| resolve_dir(&path).map_err(|source| TopologyError::ReadDir { path, source }))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Reads `dir/queue/`. Warnings about missing optional attributes are only
/// raised for leaves (`report`), whose limits are the ones used.
fn read_queue(
    dir: &Path,
    name: &str,
    report: bool,
    warnings: &mut Vec<TopologyWarning>,
) -> Result<QueueLimits, TopologyError> {
    let logical_block_size = read_attr(dir, "queue/logical_block_size", sysfs::parse_u64)?;
    let physical_block_size = read_or(
        dir,
        name,
        "queue/physical_block_size",
        sysfs::parse_u64,
        logical_block_size,
        warnings,
    );
    let minimum_io_size = read_or(
        dir,
        name,
        "queue/minimum_io_size",
        sysfs::parse_u64,
        physical_block_size,
        warnings,
    );
    let optimal_io_size = read_or(
        dir,
        name,
        "queue/optimal_io_size",
        sysfs::parse_u64,
        0,
        warnings,
    );
    Ok(QueueLimits {
        logical_block_size,
        physical_block_size,
        minimum_io_size,
        optimal_io_size,
        nr_requests: read_optional(
            dir,
            name,
            "queue/nr_requests",
            sysfs::parse_u64,
            report,
            warnings,
        ),
        max_sectors_kb: read_optional(
            dir,
            name,
            "queue/max_sectors_kb",
            sysfs::parse_u64,
            report,
            warnings,
        ),
        rotational: read_optional(
            dir,
            name,
            "queue/rotational",
            sysfs::parse_bool,
            report,
            warnings,
        ),
        scheduler: read_optional(
            dir,
            name,
            "queue/scheduler",
            sysfs::parse_scheduler,
            report,
            warnings,
        ),
        nomerges: read_optional(
            dir,
            name,
            "queue/nomerges",
            sysfs::parse_u32,
            report,
            warnings,
        ),
        write_cache: read_optional(
            dir,
            name,
            "queue/write_cache",
            sysfs::parse_write_cache,
            report,
            warnings,
        ),
    })
}

/// The reference's checks of a leaf disk, plus the lying-firmware one.
fn leaf_checks(name: &str, queue: &QueueLimits, warnings: &mut Vec<TopologyWarning>) {
    if let Some(scheduler) = &queue.scheduler {
        if scheduler != "none" && scheduler != "noop" {
            warnings.push(TopologyWarning::SchedulerNotNone {
                device: name.to_owned(),
                scheduler: scheduler.clone(),
            });
        }
    }
    if let Some(nomerges) = queue.nomerges {
        if nomerges != 2 {
            warnings.push(TopologyWarning::MergesEnabled {
                device: name.to_owned(),
                nomerges,
            });
        }
    }
    if queue.write_cache == Some(WriteCache::WriteBack) {
        warnings.push(TopologyWarning::WriteBackCache {
            device: name.to_owned(),
        });
    }
    if queue.minimum_io_size < queue.physical_block_size {
        warnings.push(TopologyWarning::MinimumIoSizeBelowPhysical {
            device: name.to_owned(),
            minimum_io_size: queue.minimum_io_size,
            physical_block_size: queue.physical_block_size,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_is_lexical() {
        let table = [
            ("/sys/dev/block/../../devices/x", "/sys/devices/x"),
            ("/a/./b/../c", "/a/c"),
            ("rel/../../up", "../up"),
            ("../../x", "../../x"),
            ("a/../../b/../c", "../c"),
            ("/..", "/"),
        ];
        for (input, want) in table {
            assert_eq!(normalize(Path::new(input)), PathBuf::from(want), "{input}");
        }
    }
}
