//! The filesystem side of a directory: mountpoint, `statfs(2)`, `statx(2)`
//! direct-I/O alignment and the block device number.
//!
//! Everything here looks at the real system (no sysfs); the sysfs side lives
//! in the parent module so that each can be tested on its own.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::TopologyError;

/// What the filesystem tells about an evaluation directory, before sysfs is
/// consulted. Obtained with [`FilesystemInfo::probe`]; tests build it by hand
/// to drive [`Topology::from_filesystem`](super::Topology::from_filesystem)
/// over a fixture sysfs tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesystemInfo {
    /// The directory, canonicalised.
    pub directory: PathBuf,
    /// Its mountpoint, see [`mountpoint_of`].
    pub mountpoint: PathBuf,
    /// Filesystem type from the `statfs` `f_type` magic (see [`fs_type_name`]).
    pub fs_type: String,
    /// `statfs` `f_bsize`, bytes.
    pub fs_block_size: u64,
    /// `statx` `stx_dio_mem_align` (`STATX_DIOALIGN`, Linux 6.1) of a regular
    /// file in the directory: required alignment of O_DIRECT buffers in
    /// memory, bytes. `None` when not reported (older kernel, filesystem
    /// without support, O_DIRECT unsupported, or the probe file could not be
    /// created).
    pub dio_mem_align: Option<u32>,
    /// `statx` `stx_dio_offset_align`: required alignment of O_DIRECT file
    /// offsets and lengths, bytes. `None` as for `dio_mem_align`.
    pub dio_offset_align: Option<u32>,
    /// `statfs` `f_fsid` as its two 32-bit words (`val[0]`, `val[1]`); `[0, 0]` when the
    /// filesystem gives none. btrfs derives it from its UUID, which is how its members are
    /// found in sysfs (see [`btrfs_fsid_matches`](super::btrfs::fsid_matches)).
    pub fsid: [u32; 2],
    /// `st_dev` of the directory as (major, minor).
    pub st_dev: (u32, u32),
    /// The source of the mount holding the directory, from `/proc/self/mountinfo` (e.g.
    /// "/dev/vda", "tmpfs", "overlay", "server:/export", "pool/dataset"); `None` when
    /// mountinfo cannot be read or has no mount for the directory.
    pub mount_source: Option<String>,
    /// The block device holding the filesystem as (major, minor): `st_dev`
    /// when its major is not 0, otherwise (btrfs and other filesystems with
    /// anonymous device numbers) the block device named as the mount's source
    /// in `/proc/self/mountinfo`, if any. `None` for tmpfs, overlayfs, NFS, ...
    /// For btrfs this is only one member; [`Topology`](super::Topology) lists all.
    pub block_device: Option<(u32, u32)>,
}

impl FilesystemInfo {
    /// Probes `dir` with `stat`, `statfs` and `statx`, and finds its
    /// mountpoint. Creates (and at once drops) an unnamed `O_TMPFILE` file in
    /// `dir` to read the direct-I/O alignment, which filesystems report only
    /// for regular files.
    ///
    /// # Errors
    ///
    /// [`TopologyError::Directory`], [`TopologyError::Mountpoint`] or
    /// [`TopologyError::Statfs`], naming the directory. Failing to learn the
    /// direct-I/O alignment is not an error (the fields are `None`).
    pub fn probe(dir: &Path) -> Result<FilesystemInfo, TopologyError> {
        let directory = fs::canonicalize(dir).map_err(|source| TopologyError::Directory {
            path: dir.to_owned(),
            source,
        })?;
        let meta = fs::metadata(&directory).map_err(|source| TopologyError::Directory {
            path: directory.clone(),
            source,
        })?;
        let mountpoint = mountpoint_of(&directory).map_err(|source| TopologyError::Mountpoint {
            path: directory.clone(),
            source,
        })?;
        let (magic, fs_block_size, fsid) =
            statfs_path(&directory).map_err(|source| TopologyError::Statfs {
                path: directory.clone(),
                source,
            })?;
        let (dio_mem_align, dio_offset_align) = match dio_alignment(&directory) {
            Some((mem, offset)) => (Some(mem), Some(offset)),
            None => (None, None),
        };
        let st_dev = split_dev(meta.dev());
        let mount_source = mount_source(&directory);
        let block_device = if st_dev.0 != 0 {
            Some(st_dev)
        } else {
            mount_source.as_deref().and_then(block_device_at)
        };
        Ok(FilesystemInfo {
            directory,
            mountpoint,
            fs_type: fs_type_name(magic),
            fs_block_size,
            dio_mem_align,
            dio_offset_align,
            fsid,
            st_dev,
            mount_source,
            block_device,
        })
    }
}

/// The mountpoint of `dir`: canonicalise it, then walk up while the parent
/// has the same `st_dev`. (A bind mount of a directory onto the same
/// filesystem is not detected: the walk goes on to that filesystem's top.)
///
/// # Errors
///
/// The `io::Error` of `canonicalize` or of `stat` on `dir` or an ancestor.
pub fn mountpoint_of(dir: &Path) -> io::Result<PathBuf> {
    let mut path = fs::canonicalize(dir)?;
    let dev = fs::metadata(&path)?.dev();
    while let Some(parent) = path.parent() {
        if fs::metadata(parent)?.dev() != dev {
            break;
        }
        path = parent.to_owned();
    }
    Ok(path)
}

/// Splits a Linux `dev_t` into (major, minor), as glibc's `gnu_dev_major`
/// and `gnu_dev_minor` do (12+20-bit major, 20+12-bit minor encoding).
pub fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000);
    let minor = (dev & 0xff) | ((dev >> 12) & 0xffff_ff00);
    // Both masks keep at most 32 bits.
    (major as u32, minor as u32)
}

/// Names a `statfs` `f_type` magic number (from `linux/magic.h`); unknown
/// ones come back as hex, e.g. "0x12345678". ext2, ext3 and ext4 share one
/// magic and are all reported as "ext4".
pub fn fs_type_name(magic: u64) -> String {
    let name = match magic {
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x0102_1994 => "tmpfs",
        0x9123_683E => "btrfs",
        0xCA45_1A4E => "bcachefs",
        0xF2F5_2010 => "f2fs",
        0x2FC1_2FC1 => "zfs",
        0x794C_7630 => "overlayfs",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        0x8584_58F6 => "ramfs",
        0x9584_58F6 => "hugetlbfs",
        0x3153_464A => "jfs",
        0x5265_4973 => "reiserfs",
        0x4D44 => "vfat",
        0x2011_BAB0 => "exfat",
        0x5346_544E => "ntfs",
        0x00C3_6400 => "ceph",
        0xFF53_4D42 => "cifs",
        0xFE53_4D42 => "smb2",
        0x0102_1997 => "9p",
        0x0116_1970 => "gfs2",
        0x7461_636F => "ocfs2",
        0x3434 => "nilfs2",
        0x7371_7368 => "squashfs",
        0x9FA0 => "proc",
        0x6265_6572 => "sysfs",
        _ => return format!("{magic:#x}"),
    };
    name.to_owned()
}

/// `statfs(2)` on `path`: (`f_type` magic, `f_bsize` in bytes, `f_fsid` words).
#[allow(unsafe_code)]
fn statfs_path(path: &Path) -> io::Result<(u64, u64, [u32; 2])> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let mut buf = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call and
    // `buf` is writable memory of the size of `struct statfs`.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), buf.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statfs returned 0, so it filled in the whole struct.
    let buf = unsafe { buf.assume_init() };
    // f_type is a signed word on some targets; the magics are 32-bit.
    #[allow(clippy::unnecessary_cast)]
    let magic = (buf.f_type as i64 as u64) & 0xffff_ffff;
    #[allow(clippy::unnecessary_cast)]
    let bsize = buf.f_bsize as u64;
    // SAFETY: `fsid_t` is the C `struct { int __val[2]; }` (its fields are private in the libc
    // crate): reading it as two C ints reads exactly its bytes, and any bits are valid ints.
    let words = unsafe {
        std::ptr::addr_of!(buf.f_fsid)
            .cast::<[libc::c_int; 2]>()
            .read_unaligned()
    };
    // The kernel fills the words as u32; the C type is int.
    let fsid = words.map(|w| w as u32);
    Ok((magic, bsize, fsid))
}

/// (`stx_dio_mem_align`, `stx_dio_offset_align`) of a fresh `O_TMPFILE` file
/// in `dir`, or `None` when they cannot be learned.
fn dio_alignment(dir: &Path) -> Option<(u32, u32)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(dir)
        .ok()?;
    statx_dioalign(file.as_fd()).ok().flatten()
}

/// `statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN)`: `Ok(None)` when the kernel
/// or filesystem does not report the alignment, or reports 0 (no O_DIRECT).
#[allow(unsafe_code)]
fn statx_dioalign(fd: BorrowedFd<'_>) -> io::Result<Option<(u32, u32)>> {
    let mut buf = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `fd` is an open descriptor borrowed for the call, the path is a
    // static NUL-terminated empty string (allowed with AT_EMPTY_PATH), and
    // `buf` is writable memory of the size of `struct statx`.
    let rc = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_DIOALIGN,
            buf.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `struct statx` consists of integers only, so the zeroed buffer
    // is a valid value whatever the kernel filled in.
    let buf = unsafe { buf.assume_init() };
    if buf.stx_mask & libc::STATX_DIOALIGN == 0
        || buf.stx_dio_mem_align == 0
        || buf.stx_dio_offset_align == 0
    {
        return Ok(None);
    }
    Ok(Some((buf.stx_dio_mem_align, buf.stx_dio_offset_align)))
}

/// One line of `/proc/self/mountinfo` (see `proc_pid_mountinfo(5)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Field 3, `MAJ:MIN` of `st_dev` for files on this mount.
    pub dev: (u32, u32),
    /// Field 5, the mount point (octal escapes decoded).
    pub mount_point: PathBuf,
    /// The filesystem type after the `-` separator, e.g. "ext4".
    pub fs_type: String,
    /// The mount source after the type, e.g. "/dev/vda" or "tmpfs".
    pub source: String,
}

/// Parses one line of `/proc/self/mountinfo`; `None` if malformed.
pub fn parse_mountinfo_line(line: &str) -> Option<MountInfo> {
    let mut fields = line.split(' ');
    let _mount_id = fields.next()?;
    let _parent_id = fields.next()?;
    let dev = super::sysfs::parse_dev(fields.next()?).ok()?;
    let _root = fields.next()?;
    let mount_point = PathBuf::from(std::ffi::OsString::from_vec(unescape_octal(fields.next()?)));
    // Mount options, then optional fields up to the "-" separator.
    fields.by_ref().find(|f| *f == "-")?;
    let fs_type = fields.next()?.to_owned();
    let source = String::from_utf8_lossy(&unescape_octal(fields.next()?)).into_owned();
    Some(MountInfo {
        dev,
        mount_point,
        fs_type,
        source,
    })
}

/// Decodes the `\ooo` escapes mountinfo uses for space, tab, newline and `\`.
fn unescape_octal(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let digits = &b[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(v) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Among `mounts`, the one whose mount point is the deepest ancestor of
/// `dir` (the last such line wins, as later mounts cover earlier ones).
pub fn mount_containing<'a>(mounts: &'a [MountInfo], dir: &Path) -> Option<&'a MountInfo> {
    let mut best: Option<&MountInfo> = None;
    for m in mounts {
        if dir.starts_with(&m.mount_point)
            && best.is_none_or(|b| {
                m.mount_point.components().count() >= b.mount_point.components().count()
            })
        {
            best = Some(m);
        }
    }
    best
}

/// The source of the mount holding `dir` in `/proc/self/mountinfo`.
fn mount_source(dir: &Path) -> Option<String> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mounts: Vec<MountInfo> = text.lines().filter_map(parse_mountinfo_line).collect();
    Some(mount_containing(&mounts, dir)?.source.clone())
}

/// The device number of `source` when it is a block device node (the mount source of a
/// filesystem whose `st_dev` is anonymous, e.g. btrfs); `None` otherwise.
fn block_device_at(source: &str) -> Option<(u32, u32)> {
    if !source.starts_with('/') {
        return None;
    }
    let meta = fs::metadata(source).ok()?;
    if !meta.file_type().is_block_device() {
        return None;
    }
    Some(split_dev(meta.rdev()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_numbers_split_like_glibc() {
        // makedev(254, 0) and makedev(259, 1) in the old compact encoding.
        assert_eq!(split_dev(0xfe00), (254, 0));
        assert_eq!(split_dev((259 << 8) | 1), (259, 1));
        // A minor above 255 and a major above 4095 use the high bits.
        let makedev = |maj: u64, min: u64| {
            ((maj & 0xffff_f000) << 32)
                | ((maj & 0xfff) << 8)
                | ((min & 0xffff_ff00) << 12)
                | (min & 0xff)
        };
        for (maj, min) in [(0, 0), (8, 0), (259, 1), (4096, 300), (0xfffff, 0xfffff)] {
            assert_eq!(split_dev(makedev(maj, min)), (maj as u32, min as u32));
        }
    }

    #[test]
    fn fs_type_names() {
        assert_eq!(fs_type_name(0xEF53), "ext4");
        assert_eq!(fs_type_name(0x5846_5342), "xfs");
        assert_eq!(fs_type_name(0x0102_1994), "tmpfs");
        assert_eq!(fs_type_name(0x9123_683E), "btrfs");
        assert_eq!(fs_type_name(0x1234_5678), "0x12345678");
    }

    #[test]
    fn mountinfo_lines() {
        let line = "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue";
        let m = parse_mountinfo_line(line).expect("valid line");
        assert_eq!(m.dev, (98, 0));
        assert_eq!(m.mount_point, PathBuf::from("/mnt2"));
        assert_eq!(m.fs_type, "ext3");
        assert_eq!(m.source, "/dev/root");

        let line = "29 1 0:26 / /mnt/my\\040disk rw shared:1 - btrfs /dev/vdb rw";
        let m = parse_mountinfo_line(line).expect("valid line");
        assert_eq!(m.mount_point, PathBuf::from("/mnt/my disk"));
        assert_eq!(m.source, "/dev/vdb");

        let line = "30 1 0:27 / /dev/shm rw - tmpfs tmpfs rw";
        assert_eq!(
            parse_mountinfo_line(line).map(|m| m.fs_type),
            Some("tmpfs".into())
        );

        assert_eq!(parse_mountinfo_line(""), None);
        assert_eq!(parse_mountinfo_line("1 2 3:4 / /x rw shared:1"), None);
        assert_eq!(parse_mountinfo_line("1 2 x / /x rw - ext4 /dev/a rw"), None);
    }

    #[test]
    fn octal_escapes() {
        assert_eq!(unescape_octal("a\\040b"), b"a b");
        assert_eq!(unescape_octal("a\\134b"), b"a\\b");
        assert_eq!(unescape_octal("trailing\\04"), b"trailing\\04");
        assert_eq!(unescape_octal("\\"), b"\\");
        assert_eq!(unescape_octal("\\777"), b"\\777");
    }

    #[test]
    fn deepest_mount_wins() {
        let m = |p: &str, src: &str| MountInfo {
            dev: (0, 1),
            mount_point: PathBuf::from(p),
            fs_type: "x".into(),
            source: src.into(),
        };
        let mounts = [
            m("/", "/dev/vda"),
            m("/home", "/dev/vdb"),
            m("/home", "/dev/vdc"),
            m("/ho", "x"),
        ];
        let got = mount_containing(&mounts, Path::new("/home/u/dir"));
        assert_eq!(got.map(|m| m.source.as_str()), Some("/dev/vdc"));
        let got = mount_containing(&mounts, Path::new("/homework"));
        assert_eq!(got.map(|m| m.source.as_str()), Some("/dev/vda"));
    }
}
