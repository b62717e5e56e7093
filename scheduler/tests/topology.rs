//! Tests of `scheduler::topology`: fixture sysfs trees (checked in under
//! `tests/fixtures/sysfs/<case>/`, see its README), one-off trees built in
//! temporary directories for error cases, and live checks on this machine.

use std::fs;
use std::path::{Path, PathBuf};

use scheduler::topology::{
    block_device_from_sysfs, btrfs, mountpoint_of, sysfs, BlockDevice, Coverage, DeviceKind,
    FilesystemInfo, Topology, TopologyError, TopologyWarning, WriteCache,
};

// ---------------------------------------------------------------- helpers

/// The checked-in fixture tree `case`.
fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sysfs")
        .join(case)
}

/// Reads device `dev` from fixture `case`, failing the test with the error chain.
fn device(case: &str, dev: (u32, u32)) -> (BlockDevice, Vec<TopologyWarning>) {
    match block_device_from_sysfs(&fixture(case), dev) {
        Ok(found) => found,
        Err(e) => panic!("{case} {dev:?}: {}", chain(&e)),
    }
}

/// Filesystem facts as if a filesystem lived on block device `dev`.
fn fs_on(dev: Option<(u32, u32)>, fs_block_size: u64) -> FilesystemInfo {
    FilesystemInfo {
        directory: PathBuf::from("/data/iotune"),
        mountpoint: PathBuf::from("/data"),
        fs_type: if dev.is_some() { "xfs" } else { "tmpfs" }.to_owned(),
        fs_block_size,
        dio_mem_align: None,
        dio_offset_align: None,
        fsid: [0, 0],
        st_dev: dev.unwrap_or((0, 42)),
        mount_source: Some(if dev.is_some() { "/dev/x" } else { "tmpfs" }.to_owned()),
        block_device: dev,
    }
}

/// The topology of a filesystem on `dev` of fixture `case`.
fn topology(case: &str, dev: (u32, u32)) -> Topology {
    match Topology::from_filesystem(fs_on(Some(dev), 4096), &fixture(case)) {
        Ok(t) => t,
        Err(e) => panic!("{case} {dev:?}: {}", chain(&e)),
    }
}

fn names(devices: &[&BlockDevice]) -> Vec<String> {
    devices.iter().map(|d| d.name.clone()).collect()
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s = format!("{s}: {c}");
        cause = c.source();
    }
    s
}

/// A one-off sysfs tree in a temporary directory.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        Tree {
            dir: tempfile::tempdir().expect("create temp dir"),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, rel: &str, content: &str) -> &Tree {
        let path = self.root().join(rel);
        fs::create_dir_all(path.parent().expect("file has a parent")).expect("mkdir");
        fs::write(&path, format!("{content}\n")).expect("write attribute");
        self
    }

    /// A relative symlink at `rel` pointing to `target` (both relative to the root),
    /// as sysfs writes them.
    fn link(&self, rel: &str, target: &str) -> &Tree {
        let path = self.root().join(rel);
        fs::create_dir_all(path.parent().expect("link has a parent")).expect("mkdir");
        let ups = Path::new(rel).components().count() - 1;
        let relative = format!("{}{target}", "../".repeat(ups));
        std::os::unix::fs::symlink(relative, &path).expect("symlink");
        self
    }

    /// A device directory with `dev`, `queue/logical_block_size` (unless `None`)
    /// and its `dev/block/MAJ:MIN` link.
    fn device(&self, dir: &str, dev: &str, lbs: Option<&str>) -> &Tree {
        self.file(&format!("{dir}/dev"), dev);
        if let Some(lbs) = lbs {
            self.file(&format!("{dir}/queue/logical_block_size"), lbs);
        }
        self.link(&format!("dev/block/{dev}"), dir)
    }
}

// ------------------------------------------------- (1) whole NVMe disk

#[test]
fn nvme_whole_disk() {
    let (disk, warnings) = device("nvme", (259, 0));
    assert_eq!(disk.name, "nvme0n1");
    assert_eq!(disk.dev, (259, 0));
    assert_eq!(disk.kind, DeviceKind::Disk);
    assert!(disk.slaves.is_empty());
    assert!(disk.parent.is_none());
    assert_eq!(disk.size_bytes, Some(7814037168 * 512));
    let q = &disk.queue;
    assert_eq!(q.logical_block_size, 4096);
    assert_eq!(q.physical_block_size, 4096);
    assert_eq!(q.minimum_io_size, 4096);
    assert_eq!(q.optimal_io_size, 0);
    assert_eq!(q.nr_requests, Some(1023));
    assert_eq!(q.max_sectors_kb, Some(128));
    assert_eq!(q.rotational, Some(false));
    assert_eq!(q.scheduler.as_deref(), Some("none"));
    assert_eq!(q.nomerges, Some(2));
    assert_eq!(q.write_cache, Some(WriteCache::WriteThrough));
    assert_eq!(warnings, vec![], "a clean disk gives no warnings");

    let t = topology("nvme", (259, 0));
    assert_eq!(names(&t.leaves()), ["nvme0n1"]);
    assert_eq!(t.leaf_count(), 1);
    assert_eq!(t.in_flight_bound(), Some(1023));
    assert_eq!(t.physical_block_size(), 4096);
    assert_eq!(t.logical_block_size(), 4096);
    assert_eq!(t.minimum_io_size(), 4096);
    assert_eq!(t.warnings, vec![]);
}

// ------------------------------------- (2) partition, minor not 0-based

#[test]
fn nvme_partition_resolves_to_its_disk_not_minor_zero() {
    for (minor, name, start_sector) in [(1, "nvme0n1p1", 2048u64), (2, "nvme0n1p2", 2099200)] {
        let (part, warnings) = device("nvme", (259, minor));
        assert_eq!(part.name, name);
        assert_eq!(part.dev, (259, minor));
        assert_eq!(part.kind, DeviceKind::Partition);
        assert_eq!(part.start_bytes, Some(start_sector * 512));
        let disk = part.parent.as_deref().expect("a partition has its disk");
        assert_eq!(disk.name, "nvme0n1");
        assert_eq!(disk.dev, (259, 0));
        assert_eq!(disk.kind, DeviceKind::Disk);
        assert_eq!(
            part.queue, disk.queue,
            "a partition uses its disk's queue limits"
        );
        assert_eq!(names(&part.leaves()), ["nvme0n1"]);
        assert_eq!(warnings, vec![]);

        let t = topology("nvme", (259, minor));
        assert_eq!(names(&t.leaves()), ["nvme0n1"]);
        assert_eq!(t.in_flight_bound(), Some(1023));
        assert_eq!(t.leaf_count(), 1);
    }
}

// ------------------------------------------------------- (3) md RAID0

#[test]
fn md_raid0_of_four_nvme() {
    let (md, warnings) = device("md_raid0", (9, 0));
    assert_eq!(md.name, "md0");
    assert_eq!(
        md.kind,
        DeviceKind::Md {
            level: "raid0".into(),
            chunk_size: 1 << 20,
            raid_disks: 4
        }
    );
    assert_eq!(md.queue.minimum_io_size, 1 << 20);
    assert_eq!(md.queue.optimal_io_size, 4 << 20);
    let slaves: Vec<&str> = md.slaves.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(slaves, ["nvme0n1", "nvme1n1", "nvme2n1", "nvme3n1"]);
    assert!(md.slaves.iter().all(|s| s.kind == DeviceKind::Disk));
    assert_eq!(
        warnings,
        vec![],
        "md0's own nomerges 0 and write back are not leaf settings"
    );

    let t = topology("md_raid0", (9, 0));
    assert_eq!(t.leaves().len(), 4);
    assert_eq!(t.leaf_count(), 4);
    assert_eq!(t.in_flight_bound(), Some(1023 * 3 + 255));
    assert_eq!(
        t.minimum_io_size(),
        4096,
        "leaves' minimum_io_size, not md's chunk"
    );
    assert_eq!(t.physical_block_size(), 4096);
    assert_eq!(t.logical_block_size(), 4096);
}

// ------------------------------------------- (4) 512e SATA, lying firmware

#[test]
fn sata_512e_reports_physical_4096_and_the_three_warnings() {
    let (sda, warnings) = device("sata_512e", (8, 0));
    assert_eq!(sda.queue.logical_block_size, 512);
    assert_eq!(sda.queue.physical_block_size, 4096);
    assert_eq!(sda.queue.minimum_io_size, 512);
    assert_eq!(sda.queue.rotational, Some(true));
    assert_eq!(sda.queue.scheduler.as_deref(), Some("mq-deadline"));

    let expected = [
        TopologyWarning::SchedulerNotNone {
            device: "sda".into(),
            scheduler: "mq-deadline".into(),
        },
        TopologyWarning::MergesEnabled {
            device: "sda".into(),
            nomerges: 0,
        },
        TopologyWarning::WriteBackCache {
            device: "sda".into(),
        },
        TopologyWarning::MinimumIoSizeBelowPhysical {
            device: "sda".into(),
            minimum_io_size: 512,
            physical_block_size: 4096,
        },
    ];
    assert_eq!(warnings, expected);
    let text: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert!(
        text[0].contains("echo none > /sys/block/sda/queue/scheduler"),
        "{}",
        text[0]
    );
    assert!(
        text[1].contains("echo 2 > /sys/block/sda/queue/nomerges"),
        "{}",
        text[1]
    );
    assert!(text[2].contains("write back"), "{}", text[2]);
    assert!(text[3].contains("4096"), "{}", text[3]);

    let t = topology("sata_512e", (8, 0));
    assert_eq!(t.physical_block_size(), 4096);
    assert_eq!(t.logical_block_size(), 512);
    assert_eq!(t.minimum_io_size(), 512);
    assert_eq!(t.in_flight_bound(), Some(64));
}

#[test]
fn sata_partitions_aligned_and_misaligned() {
    let (sda1, warnings) = device("sata_512e", (8, 1));
    assert_eq!(sda1.parent.as_ref().map(|d| d.name.as_str()), Some("sda"));
    assert!(
        !warnings
            .iter()
            .any(|w| matches!(w, TopologyWarning::PartitionMisaligned { .. })),
        "{warnings:?}"
    );
    // The leaf's settings are still reported through the partition.
    assert!(warnings.contains(&TopologyWarning::WriteBackCache {
        device: "sda".into()
    }));

    let (_, warnings) = device("sata_512e", (8, 2));
    assert!(warnings.contains(&TopologyWarning::PartitionMisaligned {
        device: "sda2".into(),
        start_bytes: 63 * 512,
        physical_block_size: 4096,
    }));
}

#[test]
fn small_fs_blocks_on_4k_device_warn() {
    let t = Topology::from_filesystem(fs_on(Some((8, 1)), 1024), &fixture("sata_512e"))
        .expect("fixture reads");
    let w = TopologyWarning::FsBlockBelowPhysical {
        fs_type: "xfs".into(),
        fs_block_size: 1024,
        physical_block_size: 4096,
    };
    assert!(t.warnings.contains(&w), "{:?}", t.warnings);
    assert!(w.to_string().contains("mkfs.xfs -b size=4096"));
    // 4096-byte blocks: no such warning.
    let t = topology("sata_512e", (8, 1));
    assert!(!t
        .warnings
        .iter()
        .any(|w| matches!(w, TopologyWarning::FsBlockBelowPhysical { .. })));
}

// ---------------------------------------------- (5) dm over partition and md

#[test]
fn dm_over_md_and_partition_recurses_to_leaf_disks() {
    let (dm, warnings) = device("dm_stack", (253, 0));
    assert_eq!(dm.name, "dm-0");
    assert_eq!(dm.kind, DeviceKind::Dm);
    assert_eq!(dm.slaves.len(), 2);
    let md = &dm.slaves[0];
    assert_eq!(md.name, "md0");
    assert_eq!(
        md.kind,
        DeviceKind::Md {
            level: "raid1".into(),
            chunk_size: 0,
            raid_disks: 2
        }
    );
    let md_slaves: Vec<&str> = md.slaves.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(md_slaves, ["nvme0n1", "nvme1n1"]);
    let part = &dm.slaves[1];
    assert_eq!(part.name, "sda2");
    assert_eq!(part.kind, DeviceKind::Partition);
    assert_eq!(part.parent.as_ref().map(|d| d.dev), Some((8, 0)));
    assert_eq!(warnings, vec![]);

    let t = topology("dm_stack", (253, 0));
    assert_eq!(names(&t.leaves()), ["nvme0n1", "nvme1n1", "sda"]);
    assert_eq!(t.leaf_count(), 3);
    assert_eq!(t.in_flight_bound(), Some(1023 + 1023 + 64));
    assert_eq!(t.physical_block_size(), 4096);
    assert_eq!(t.minimum_io_size(), 4096);
    assert_eq!(
        t.logical_block_size(),
        4096,
        "dm-0 and the NVMe leaves use 4096"
    );
}

#[test]
fn dm_logical_block_size_of_the_top_device_counts() {
    // dm-1 (4096-byte sectors, like dm-crypt) over sda1 on a 512-byte-logical disk.
    let t = topology("dm_stack", (253, 1));
    assert_eq!(names(&t.leaves()), ["sda"]);
    assert_eq!(t.leaves()[0].queue.logical_block_size, 512);
    assert_eq!(t.logical_block_size(), 4096);
}

#[test]
fn one_disk_reached_twice_counts_once() {
    let t = topology("dm_stack", (253, 2));
    let dm = t.device.as_ref().expect("device");
    assert_eq!(dm.slaves.len(), 2, "sda3 and sda4");
    assert_eq!(names(&t.leaves()), ["sda"]);
    assert_eq!(t.leaf_count(), 1);
    assert_eq!(t.in_flight_bound(), Some(64));
}

// ------------------------------------ (6) missing optional attributes

#[test]
fn missing_optional_attributes_are_warnings_not_errors() {
    let (vdb, warnings) = device("missing_attrs", (254, 16));
    assert_eq!(vdb.queue.nr_requests, None);
    assert_eq!(vdb.queue.write_cache, None);
    assert_eq!(vdb.queue.rotational, None, "\"yes\" is not a 0/1 flag");
    assert_eq!(vdb.queue.scheduler.as_deref(), Some("none"));
    assert_eq!(vdb.queue.max_sectors_kb, Some(1280));
    assert_eq!(warnings.len(), 3, "{warnings:#?}");
    assert!(warnings.contains(&TopologyWarning::MissingAttribute {
        device: "vdb".into(),
        attribute: "queue/nr_requests".into(),
    }));
    assert!(warnings.contains(&TopologyWarning::MissingAttribute {
        device: "vdb".into(),
        attribute: "queue/write_cache".into(),
    }));
    let unreadable = warnings
        .iter()
        .find_map(|w| match w {
            TopologyWarning::UnreadableAttribute {
                attribute, reason, ..
            } => Some((attribute.as_str(), reason.as_str())),
            _ => None,
        })
        .expect("rotational is malformed");
    assert_eq!(unreadable.0, "queue/rotational");
    assert!(unreadable.1.contains("\"yes\""), "{}", unreadable.1);

    let t = topology("missing_attrs", (254, 16));
    assert_eq!(t.in_flight_bound(), None, "unknown: the caller guesses");
    assert_eq!(t.leaf_count(), 1);
    assert_eq!(t.minimum_io_size(), 512);
}

#[test]
fn fallbacks_for_missing_block_sizes() {
    let tree = Tree::new();
    tree.device("devices/virtual/block/loop0", "7:0", Some("512"));
    let (d, warnings) = block_device_from_sysfs(tree.root(), (7, 0)).expect("reads");
    assert_eq!(d.queue.physical_block_size, 512, "falls back to logical");
    assert_eq!(d.queue.minimum_io_size, 512, "falls back to physical");
    assert_eq!(d.queue.optimal_io_size, 0);
    assert_eq!(d.size_bytes, None);
    let missing: Vec<&str> = warnings
        .iter()
        .filter_map(|w| match w {
            TopologyWarning::MissingAttribute { attribute, .. } => Some(attribute.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        missing,
        [
            "queue/physical_block_size",
            "queue/minimum_io_size",
            "queue/optimal_io_size",
            "queue/nr_requests",
            "queue/max_sectors_kb",
            "queue/rotational",
            "queue/scheduler",
            "queue/nomerges",
            "queue/write_cache",
        ]
    );
}

#[test]
fn md_without_attributes_falls_back() {
    let tree = Tree::new();
    tree.device("devices/virtual/block/nvme0n1", "259:0", Some("4096"))
        .device("devices/virtual/block/md0", "9:0", Some("4096"))
        .file("devices/virtual/block/md0/md/array_state", "inactive")
        .link(
            "devices/virtual/block/md0/slaves/nvme0n1",
            "devices/virtual/block/nvme0n1",
        );
    let (md, warnings) = block_device_from_sysfs(tree.root(), (9, 0)).expect("reads");
    assert_eq!(
        md.kind,
        DeviceKind::Md {
            level: String::new(),
            chunk_size: 0,
            raid_disks: 1
        }
    );
    for attr in ["md/level", "md/chunk_size", "md/raid_disks"] {
        assert!(
            warnings.contains(&TopologyWarning::MissingAttribute {
                device: "md0".into(),
                attribute: attr.into()
            }),
            "{attr}: {warnings:#?}"
        );
    }
}

// ------------------------------------------------------------ errors

#[test]
fn unknown_device_number_is_a_typed_error_naming_the_link() {
    let err = block_device_from_sysfs(&fixture("sata_512e"), (8, 99)).expect_err("no 8:99");
    assert!(
        matches!(err, TopologyError::DeviceNotFound { dev: (8, 99), .. }),
        "{err:?}"
    );
    assert!(err.is_sysfs());
    assert!(
        err.path().ends_with("dev/block/8:99"),
        "{}",
        err.path().display()
    );
    assert!(err.to_string().contains("8:99"), "{err}");
}

#[test]
fn missing_logical_block_size_is_a_typed_error() {
    let tree = Tree::new();
    tree.device("devices/virtual/block/vdz", "254:32", None);
    let err = block_device_from_sysfs(tree.root(), (254, 32)).expect_err("required attribute");
    assert!(
        matches!(err, TopologyError::ReadAttribute { .. }),
        "{err:?}"
    );
    assert!(err.path().ends_with("vdz/queue/logical_block_size"));
    assert!(
        err.to_string().contains("queue/logical_block_size"),
        "{err}"
    );
    let source = std::error::Error::source(&err).expect("io error attached");
    assert!(source.to_string().contains("No such file"), "{source}");
}

#[test]
fn malformed_required_attribute_is_a_parse_error() {
    let tree = Tree::new();
    tree.device("devices/virtual/block/vdz", "254:32", Some("lots"));
    let err = block_device_from_sysfs(tree.root(), (254, 32)).expect_err("malformed");
    assert!(
        matches!(err, TopologyError::ParseAttribute { .. }),
        "{err:?}"
    );
    assert!(chain(&err).contains("\"lots\""), "{}", chain(&err));

    let tree = Tree::new();
    tree.device("devices/virtual/block/vdz", "254:32", Some("512"))
        .file("devices/virtual/block/vdz/dev", "garbage");
    let err = block_device_from_sysfs(tree.root(), (254, 32)).expect_err("bad dev");
    assert!(err.path().ends_with("vdz/dev"), "{err:?}");
}

#[test]
fn slaves_loop_is_an_error_not_a_hang() {
    let tree = Tree::new();
    tree.device("devices/virtual/block/dm-0", "253:0", Some("512"))
        .device("devices/virtual/block/dm-1", "253:1", Some("512"))
        .file("devices/virtual/block/dm-0/dm/name", "a")
        .file("devices/virtual/block/dm-1/dm/name", "b")
        .link(
            "devices/virtual/block/dm-0/slaves/dm-1",
            "devices/virtual/block/dm-1",
        )
        .link(
            "devices/virtual/block/dm-1/slaves/dm-0",
            "devices/virtual/block/dm-0",
        );
    let err = block_device_from_sysfs(tree.root(), (253, 0)).expect_err("loop");
    assert!(matches!(err, TopologyError::TooDeep { .. }), "{err:?}");
}

#[test]
fn dangling_slave_link_names_the_link() {
    let tree = Tree::new();
    tree.device("devices/virtual/block/dm-0", "253:0", Some("512"))
        .file("devices/virtual/block/dm-0/dm/name", "a")
        .link(
            "devices/virtual/block/dm-0/slaves/sdq",
            "devices/nowhere/sdq",
        );
    let err = block_device_from_sysfs(tree.root(), (253, 0)).expect_err("dangling");
    assert!(matches!(err, TopologyError::ReadDir { .. }), "{err:?}");
    assert!(
        err.path().ends_with("slaves/sdq"),
        "{}",
        err.path().display()
    );
}

#[test]
fn partition_of_an_md_array_resolves_through_the_array() {
    // md0p1 lives inside md0's directory like any partition.
    let tree = Tree::new();
    tree.device("devices/virtual/block/nvme0n1", "259:0", Some("4096"))
        .file("devices/virtual/block/nvme0n1/queue/nr_requests", "100")
        .device("devices/virtual/block/nvme1n1", "259:1", Some("4096"))
        .file("devices/virtual/block/nvme1n1/queue/nr_requests", "28")
        .device("devices/virtual/block/md0", "9:0", Some("4096"))
        .file("devices/virtual/block/md0/md/level", "raid0")
        .file("devices/virtual/block/md0/md/chunk_size", "524288")
        .file("devices/virtual/block/md0/md/raid_disks", "2")
        .link(
            "devices/virtual/block/md0/slaves/nvme0n1",
            "devices/virtual/block/nvme0n1",
        )
        .link(
            "devices/virtual/block/md0/slaves/nvme1n1",
            "devices/virtual/block/nvme1n1",
        )
        .device("devices/virtual/block/md0/md0p1", "259:7", None)
        .file("devices/virtual/block/md0/md0p1/partition", "1")
        .file("devices/virtual/block/md0/md0p1/start", "2048");
    let (part, _) = block_device_from_sysfs(tree.root(), (259, 7)).expect("reads");
    assert_eq!(part.kind, DeviceKind::Partition);
    assert_eq!(part.parent.as_ref().map(|d| d.name.as_str()), Some("md0"));
    assert_eq!(names(&part.leaves()), ["nvme0n1", "nvme1n1"]);
    let t = Topology::from_filesystem(fs_on(Some((259, 7)), 4096), tree.root()).expect("reads");
    assert_eq!(t.in_flight_bound(), Some(128));
}

// ------------------------------------------- btrfs: members from fs/btrfs/<fsid>/devices

/// A btrfs filesystem as probed: anonymous `st_dev`, `f_fsid` and the mount source.
fn btrfs_on(fsid: [u32; 2], source: Option<(u32, u32)>) -> FilesystemInfo {
    FilesystemInfo {
        fs_type: "btrfs".into(),
        fsid,
        st_dev: (0, 40),
        mount_source: Some("/dev/loop0".into()),
        block_device: source,
        ..fs_on(None, 4096)
    }
}

/// `statfs` `f_fsid` of the top-level subvolume of fixture filesystem
/// f095f929-896d-46e5-b132-f1207c8d6d32 (as measured on a live btrfs with that UUID).
const RAID0_FSID: [u32; 2] = [0x41a7_0809, 0xf5e0_2bd2];

#[test]
fn btrfs_raid0_over_two_loop_devices_lists_both_members() {
    // The mount source is loop0 only; the fsid finds the filesystem and both members.
    let t = Topology::from_filesystem(btrfs_on(RAID0_FSID, Some((7, 0))), &fixture("btrfs"))
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    let d = t.device.as_ref().expect("a btrfs node");
    assert_eq!(d.name, "btrfs-f095f929-896d-46e5-b132-f1207c8d6d32");
    assert_eq!(d.dev, (0, 40), "the anonymous st_dev");
    assert_eq!(
        d.kind,
        DeviceKind::Btrfs {
            fsid: "f095f929-896d-46e5-b132-f1207c8d6d32".into(),
            data_profiles: vec!["raid0".into()],
            metadata_profiles: vec!["raid1".into()],
        }
    );
    assert_eq!(names(&t.leaves()), ["loop0", "loop1"]);
    assert_eq!(names(&t.counted_devices()), ["loop0", "loop1"]);
    assert_eq!(t.leaf_count(), 2, "the sequential depth is 4 x 2");
    assert_eq!(t.in_flight_bound(), Some(256));
    assert_eq!(
        t.write_copies(),
        1,
        "raid0 data: one copy (metadata is not data)"
    );
    assert_eq!(t.coverage, Coverage::Complete);
    assert_eq!(t.physical_block_size(), 512);
    assert_eq!(d.size_bytes, Some(2 * 4194304 * 512));
    // statx does not report DIO alignment on btrfs: the 4096-byte filesystem block is the
    // smallest request it does directly, not the loop devices' 512-byte sectors.
    assert_eq!(t.direct_io_size(), 4096);
    assert_eq!(t.warnings, vec![], "clean loop devices");
    // A subvolume (root id 257) of the same filesystem matches too, and no mount source is
    // needed.
    let sub = [RAID0_FSID[0], RAID0_FSID[1] ^ 5 ^ 257];
    let t = Topology::from_filesystem(btrfs_on(sub, None), &fixture("btrfs")).expect("reads");
    assert_eq!(names(&t.leaves()), ["loop0", "loop1"]);
}

#[test]
fn btrfs_found_by_its_mount_source_counts_partitions_and_mirrors() {
    // An fsid that matches nothing: the member that is the mount source (nvme1n1) finds
    // the raid1 filesystem over a partition and a whole disk.
    let t = Topology::from_filesystem(btrfs_on([1, 2], Some((259, 1))), &fixture("btrfs"))
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    let d = t.device.as_ref().expect("a btrfs node");
    match &d.kind {
        DeviceKind::Btrfs {
            fsid,
            data_profiles,
            metadata_profiles,
        } => {
            assert_eq!(fsid, "3d0c3f4e-1b2a-4c5d-8e9f-0a1b2c3d4e5f");
            assert_eq!(data_profiles, &["raid1", "single"]);
            assert_eq!(metadata_profiles, &["raid1c3"]);
        }
        other => panic!("{other:?}"),
    }
    let members: Vec<&BlockDevice> = d.slaves.iter().collect();
    assert_eq!(names(&members), ["nvme0n1p2", "nvme1n1"]);
    assert_eq!(names(&t.leaves()), ["nvme0n1", "nvme1n1"]);
    assert_eq!(
        names(&t.counted_devices()),
        ["nvme0n1p2", "nvme1n1"],
        "the partition counts its own I/O, not its disk's"
    );
    assert_eq!(t.write_copies(), 2, "raid1 data (converting from single)");
    assert_eq!(t.physical_block_size(), 4096);
    assert_eq!(t.coverage, Coverage::Complete);
}

#[test]
fn btrfs_not_in_sysfs_is_partial_coverage() {
    // The nvme fixture has no fs/btrfs (a kernel before 3.14): only the mount source is known.
    let t = Topology::from_filesystem(btrfs_on(RAID0_FSID, Some((259, 0))), &fixture("nvme"))
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert_eq!(names(&t.leaves()), ["nvme0n1"]);
    match &t.coverage {
        Coverage::Partial { reason } => assert!(reason.contains("fs/btrfs"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let w = t
        .warnings
        .iter()
        .find(|w| matches!(w, TopologyWarning::DevicesMayBeMissing { .. }))
        .expect("a warning");
    let text = w.to_string();
    assert!(
        text.contains("nvme0n1") && text.contains("unverified"),
        "{text}"
    );
    // Another filesystem with an anonymous st_dev over a block device: partial as well.
    let mut fs = btrfs_on([0, 0], Some((259, 0)));
    fs.fs_type = "bcachefs".into();
    let t = Topology::from_filesystem(fs, &fixture("btrfs")).expect("reads");
    assert!(
        matches!(t.coverage, Coverage::Partial { .. }),
        "{:?}",
        t.coverage
    );
    // btrfs whose filesystem matches nothing and whose mount source is no block device.
    let t = Topology::from_filesystem(btrfs_on([1, 2], None), &fixture("btrfs")).expect("reads");
    assert!(t.device.is_none());
    assert!(matches!(t.coverage, Coverage::None { .. }));
}

#[test]
fn btrfs_sysfs_parsers() {
    assert_eq!(btrfs::parse_uuid("features"), None);
    let u = btrfs::parse_uuid("f095f929-896d-46e5-b132-f1207c8d6d32").expect("uuid");
    assert!(btrfs::fsid_matches(&u, RAID0_FSID));
    assert_eq!(btrfs::profile_copies("raid1c3"), Some(3));
}

#[test]
fn counted_devices_and_write_copies_of_stacks() {
    let t = topology("nvme", (259, 1));
    assert_eq!(names(&t.leaves()), ["nvme0n1"]);
    assert_eq!(names(&t.counted_devices()), ["nvme0n1p1"]);
    assert_eq!(t.coverage, Coverage::Complete);
    assert_eq!(t.write_copies(), 1);
    // RAID0 stripes: one copy, four counted disks.
    let t = topology("md_raid0", (9, 0));
    assert_eq!(t.write_copies(), 1);
    assert_eq!(t.counted_devices().len(), 4);
    // dm over (md RAID1 of two disks, a partition): the mirror writes twice.
    let t = topology("dm_stack", (253, 0));
    assert_eq!(t.write_copies(), 2);
    assert_eq!(names(&t.counted_devices()), ["nvme0n1", "nvme1n1", "sda2"]);
}

// ------------------------------------------------------ no block device

#[test]
fn filesystem_without_block_device() {
    let t = Topology::from_filesystem(fs_on(None, 4096), Path::new("/nonexistent-sysfs"))
        .expect("sysfs not consulted");
    assert!(t.device.is_none());
    assert_eq!(
        t.warnings,
        [TopologyWarning::NoBlockDevice {
            fs_type: "tmpfs".into(),
            st_dev: "0:42".into(),
            source: "tmpfs".into(),
        }]
    );
    let text = t.warnings[0].to_string();
    assert!(
        text.contains("st_dev 0:42") && text.contains("\"tmpfs\"") && text.contains("unverified"),
        "{text}"
    );
    match &t.coverage {
        Coverage::None { reason } => assert!(reason.contains("could not be found"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(t.leaves().is_empty());
    assert!(t.counted_devices().is_empty());
    assert_eq!(t.write_copies(), 1);
    assert_eq!(t.leaf_count(), 1);
    assert_eq!(t.in_flight_bound(), None);
    assert_eq!(t.physical_block_size(), 4096);
    assert_eq!(t.logical_block_size(), 512);
    assert_eq!(t.minimum_io_size(), 512);

    let mut fs = fs_on(None, 4096);
    fs.dio_offset_align = Some(4096);
    let t = Topology::from_filesystem(fs, Path::new("/nonexistent-sysfs")).expect("no sysfs");
    assert_eq!(
        t.logical_block_size(),
        4096,
        "O_DIRECT alignment from statx"
    );
}

#[test]
fn sysfs_failure_can_degrade_to_no_device() {
    let fs = fs_on(Some((8, 99)), 4096);
    let err = Topology::from_filesystem(fs.clone(), &fixture("sata_512e")).expect_err("no 8:99");
    assert!(err.is_sysfs());
    let t = Topology::without_device(fs, &err);
    assert!(t.device.is_none());
    match &t.warnings[..] {
        [TopologyWarning::SysfsUnreadable { reason }] => {
            assert!(reason.contains("8:99"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn data_types_serialize() {
    fn is_serialize<T: serde::Serialize>(_: &T) {}
    let t = topology("dm_stack", (253, 0));
    is_serialize(&t);
    is_serialize(&t.warnings);
    is_serialize(&fs_on(None, 4096));
}

// ---------------------------------------------------------- parsers

proptest::proptest! {
    #[test]
    fn parsers_never_panic(s in "\\PC*") {
        let _ = sysfs::parse_u64(&s);
        let _ = sysfs::parse_dev(&s);
        let _ = sysfs::parse_scheduler(&s);
        let _ = sysfs::parse_write_cache(&s);
    }

    #[test]
    fn scheduler_picks_the_bracketed_entry(
        names in proptest::collection::vec("[a-z][a-z0-9-]{0,11}", 1..6),
        pick in 0usize..6,
    ) {
        let pick = pick % names.len();
        let line: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| if i == pick { format!("[{n}]") } else { n.clone() })
            .collect();
        let line = format!("{} \n", line.join(" "));
        proptest::prop_assert_eq!(sysfs::parse_scheduler(&line), Ok(names[pick].clone()));
    }

    #[test]
    fn integers_round_trip(n: u64) {
        proptest::prop_assert_eq!(sysfs::parse_u64(&format!("{n}\n")), Ok(n));
    }
}

// ------------------------------------------------------ this machine

/// Prints the topology like a report would, for the test log.
fn describe(t: &Topology) -> String {
    let mut s = format!(
        "dir {} on {} ({}, block {} B, dio mem/offset align {:?}/{:?})",
        t.directory.display(),
        t.mountpoint.display(),
        t.fs_type,
        t.fs_block_size,
        t.dio_mem_align,
        t.dio_offset_align
    );
    match &t.device {
        Some(d) => s += &format!(
            "\n  device {} {}:{} {:?}; leaves {:?}; logical {} physical {} min_io {} in-flight {:?}",
            d.name,
            d.dev.0,
            d.dev.1,
            d.kind,
            names(&t.leaves()),
            t.logical_block_size(),
            t.physical_block_size(),
            t.minimum_io_size(),
            t.in_flight_bound()
        ),
        None => s += "\n  no block device",
    }
    for w in &t.warnings {
        s += &format!("\n  warning: {w}");
    }
    s
}

#[test]
fn live_temp_dir() {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("temp dir");
    let t = match Topology::for_directory(dir.path()) {
        Ok(t) => t,
        Err(e) => panic!("{}", chain(&e)),
    };
    println!("{}", describe(&t));
    let canonical = fs::canonicalize(dir.path()).expect("canonicalize");
    assert_eq!(t.directory, canonical);
    assert!(canonical.starts_with(&t.mountpoint), "{:?}", t.mountpoint);
    assert_eq!(mountpoint_of(dir.path()).expect("mountpoint"), t.mountpoint);
    assert!(!t.fs_type.is_empty());
    assert!(t.fs_block_size >= 512);
    if let Some(d) = &t.device {
        assert!(d.queue.logical_block_size >= 512);
        assert!(!t.leaves().is_empty());
        assert!(t.logical_block_size() >= 512);
        assert!(t.physical_block_size() >= t.logical_block_size());
        assert!(t
            .leaves()
            .iter()
            .all(|l| l.slaves.is_empty() && l.parent.is_none()));
    }
    if let Some(align) = t.dio_offset_align {
        assert!(align.is_power_of_two());
    }
}

#[test]
fn live_dev_shm_is_tmpfs_without_device() {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        println!("skipped: /dev/shm does not exist");
        return;
    }
    let dir = match tempfile::tempdir_in(shm) {
        Ok(d) => d,
        Err(e) => {
            println!("skipped: cannot create a directory in /dev/shm: {e}");
            return;
        }
    };
    let t = match Topology::for_directory(dir.path()) {
        Ok(t) => t,
        Err(e) => panic!("{}", chain(&e)),
    };
    println!("{}", describe(&t));
    if t.fs_type != "tmpfs" {
        println!("skipped: /dev/shm is {} here, not tmpfs", t.fs_type);
        return;
    }
    assert!(t.device.is_none());
    assert!(
        t.warnings.iter().any(
            |w| matches!(w, TopologyWarning::NoBlockDevice { fs_type, .. } if fs_type == "tmpfs")
        ),
        "{:?}",
        t.warnings
    );
    assert!(matches!(t.coverage, Coverage::None { .. }));
    assert_eq!(t.leaf_count(), 1);
    assert_eq!(t.physical_block_size(), 4096);
}

#[test]
fn live_sysfs_matches_the_reported_device() {
    // Cross-check: the device found for the temp dir is the one /sys/dev/block names.
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("temp dir");
    let fs = match FilesystemInfo::probe(dir.path()) {
        Ok(fs) => fs,
        Err(e) => panic!("{}", chain(&e)),
    };
    let Some(dev) = fs.block_device else {
        println!("skipped: {} has no block device", fs.fs_type);
        return;
    };
    let (device, _) = match block_device_from_sysfs(Path::new("/sys"), dev) {
        Ok(found) => found,
        Err(e) => panic!("{}", chain(&e)),
    };
    assert_eq!(device.dev, dev);
    // The kernel resolves `..` after following the link: a partition's disk.
    let node = PathBuf::from(format!("/sys/dev/block/{}:{}", dev.0, dev.1));
    let queue_dir = if node.join("partition").exists() {
        node.join("../queue")
    } else {
        node.join("queue")
    };
    let lbs = fs::read_to_string(queue_dir.join("logical_block_size")).expect("read lbs");
    assert_eq!(sysfs::parse_u64(&lbs), Ok(device.queue.logical_block_size));
}
