//! FIEMAP: where a file's bytes lie on its block device.
//!
//! A safe wrapper over the `FS_IOC_FIEMAP` ioctl (`linux/fiemap.h`,
//! `Documentation/filesystems/fiemap.rst`). The kernel fills a caller-sized array of extents
//! per call; [`extents_in`] loops over batches of [`BATCH`] extents until one carries
//! [`FIEMAP_EXTENT_LAST`] or the requested range is covered.
//!
//! [`Extent`] and the flag constants are defined in [`crate::alignment`] (plain data, so the
//! alignment math never imports the engine) and re-exported here.
//!
//! # Flushing (`FIEMAP_FLAG_SYNC`)
//!
//! Data written through the page cache may not have a physical place yet (delayed
//! allocation: the extent is reported with [`FIEMAP_EXTENT_DELALLOC`], physical 0).
//! [`extents_in`] with `sync = true` sets `FIEMAP_FLAG_SYNC`, which makes the kernel write the
//! file's dirty pages back first (slow: a full `filemap_write_and_wait`). O_DIRECT writes
//! allocate before they complete, so [`extents`] does not sync.
//!
//! # Filesystems without FIEMAP
//!
//! tmpfs (and other filesystems whose inodes have no `fiemap` operation) fail with
//! `EOPNOTSUPP` (`io::ErrorKind::Unsupported`); the functions return that error rather than an
//! empty list, so "no extents" always means "a hole" and never "unknown".

use std::io;
use std::os::fd::RawFd;

pub use crate::alignment::{
    Extent, FIEMAP_EXTENT_DATA_ENCRYPTED, FIEMAP_EXTENT_DATA_INLINE, FIEMAP_EXTENT_DATA_TAIL,
    FIEMAP_EXTENT_DELALLOC, FIEMAP_EXTENT_ENCODED, FIEMAP_EXTENT_LAST, FIEMAP_EXTENT_MERGED,
    FIEMAP_EXTENT_NOT_ALIGNED, FIEMAP_EXTENT_SHARED, FIEMAP_EXTENT_UNKNOWN,
    FIEMAP_EXTENT_UNWRITTEN,
};

/// `fm_flags` bit: write the file's dirty pages back before mapping it.
pub const FIEMAP_FLAG_SYNC: u32 = 0x1;

/// Extents fetched per ioctl call.
pub const BATCH: usize = 256;

/// `_IOWR('f', 11, struct fiemap)`: direction 3 << 30, size 32 << 16, type 'f' << 8, nr 11.
const FS_IOC_FIEMAP: u64 = 0xC020_660B;

/// `struct fiemap` without its flexible array (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapHeader {
    fm_start: u64,
    fm_length: u64,
    fm_flags: u32,
    fm_mapped_extents: u32,
    fm_extent_count: u32,
    fm_reserved: u32,
}

/// `struct fiemap_extent` (56 bytes).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapExtent {
    fe_logical: u64,
    fe_physical: u64,
    fe_length: u64,
    fe_reserved64: [u64; 2],
    fe_flags: u32,
    fe_reserved: [u32; 3],
}

/// A `struct fiemap` with room for [`BATCH`] extents right after the header, as the kernel
/// expects (`fm_extents[]` is a flexible array member at offset 32).
#[repr(C)]
struct FiemapRequest {
    header: FiemapHeader,
    extents: [FiemapExtent; BATCH],
}

const _: () = assert!(std::mem::size_of::<FiemapHeader>() == 32);
const _: () = assert!(std::mem::size_of::<FiemapExtent>() == 56);
const _: () = assert!(std::mem::offset_of!(FiemapRequest, extents) == 32);

/// The one unsafe call: `ioctl(fd, FS_IOC_FIEMAP, req)`.
///
/// `req.header.fm_extent_count` must be at most [`BATCH`]; it is forced here.
fn fiemap_ioctl(fd: RawFd, req: &mut FiemapRequest) -> io::Result<()> {
    req.header.fm_extent_count = req.header.fm_extent_count.min(BATCH as u32);
    // SAFETY: `req` is an exclusively borrowed, live `#[repr(C)]` `struct fiemap` whose
    // flexible array has room for BATCH extents, and fm_extent_count <= BATCH, so the kernel
    // writes only inside `*req`. An invalid or closed `fd` makes the call fail with EBADF
    // (no memory is touched through it); FIEMAP reads the file's mapping, it never changes data.
    let r = unsafe { libc::ioctl(fd, FS_IOC_FIEMAP as _, req as *mut FiemapRequest) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Every extent of the file open as `fd`, sorted by file offset, without syncing (see the
/// module docs). Holes are absent; an empty or fully sparse file gives an empty list.
///
/// # Errors
///
/// The ioctl's: `EOPNOTSUPP` (tmpfs and other filesystems without FIEMAP), `EBADF`, ...
pub fn extents(fd: RawFd) -> io::Result<Vec<Extent>> {
    extents_in(fd, 0, u64::MAX, false)
}

/// The extents overlapping the file range `[start, start + len)` (bytes), sorted by file
/// offset. An extent that straddles `start` is returned whole (its `logical` may be below
/// `start`). `sync` sets [`FIEMAP_FLAG_SYNC`] (write dirty pages back first, so delayed
/// allocations get a physical place). `len` is clamped to the end of the offset space.
///
/// # Errors
///
/// As [`extents`]; `len == 0` gives an empty list without a call.
pub fn extents_in(fd: RawFd, start: u64, len: u64, sync: bool) -> io::Result<Vec<Extent>> {
    let end = start.saturating_add(len);
    let mut out = Vec::new();
    if len == 0 {
        return Ok(out);
    }
    let mut req = Box::new(FiemapRequest {
        header: FiemapHeader::default(),
        extents: [FiemapExtent::default(); BATCH],
    });
    let mut pos = start;
    let mut flags = if sync { FIEMAP_FLAG_SYNC } else { 0 };
    loop {
        req.header = FiemapHeader {
            fm_start: pos,
            fm_length: end - pos,
            fm_flags: flags,
            fm_mapped_extents: 0,
            fm_extent_count: BATCH as u32,
            fm_reserved: 0,
        };
        fiemap_ioctl(fd, &mut req)?;
        flags = 0; // the file is flushed once
        let n = (req.header.fm_mapped_extents as usize).min(BATCH);
        if n == 0 {
            break;
        }
        out.extend(req.extents[..n].iter().map(|e| Extent {
            logical: e.fe_logical,
            physical: e.fe_physical,
            length: e.fe_length,
            flags: e.fe_flags,
        }));
        let last = &req.extents[n - 1];
        let next = last.fe_logical.saturating_add(last.fe_length);
        if last.fe_flags & FIEMAP_EXTENT_LAST != 0 || next <= pos || next >= end {
            break;
        }
        pos = next;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{FileExt, OpenOptionsExt};

    /// A 4096-aligned view of `len` bytes inside a Vec, for O_DIRECT.
    fn aligned(storage: &mut Vec<u8>, len: usize) -> &mut [u8] {
        storage.resize(len + 4096, 0x5a);
        let off = storage.as_ptr().align_offset(4096);
        &mut storage[off..off + len]
    }

    fn direct_file(dir: &std::path::Path) -> Option<std::fs::File> {
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(dir.join("f"))
        {
            Ok(f) => Some(f),
            Err(e) => {
                println!("skipping: O_DIRECT refused in {}: {e}", dir.display());
                None
            }
        }
    }

    #[test]
    fn direct_writes_are_covered() {
        let dir = tempfile::tempdir().unwrap();
        let Some(f) = direct_file(dir.path()) else {
            return;
        };
        let mut storage = Vec::new();
        let buf = aligned(&mut storage, 64 << 10);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        // Two written ranges with a 1 MiB hole between them: [0, 256K) and [1280K, 1344K).
        for k in 0..4u64 {
            f.write_at(buf, k << 16).unwrap();
        }
        f.write_at(buf, 1280 << 10).unwrap();
        let ext = match extents(f.as_raw_fd()) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                println!("skipping: no FIEMAP on the temp dir's filesystem: {e}");
                return;
            }
            Err(e) => panic!("fiemap: {e}"),
        };
        println!("{ext:?}");
        assert!(!ext.is_empty());
        assert!(ext.windows(2).all(|w| w[0].end() <= w[1].logical));
        assert!(ext.last().unwrap().is_last());
        let covered = |lo: u64, hi: u64| {
            let mut pos = lo;
            for e in &ext {
                if e.logical <= pos && pos < e.end() {
                    assert!(e.has_physical(), "written extent without a place: {e:?}");
                    pos = e.end();
                }
            }
            pos >= hi
        };
        assert!(covered(0, 256 << 10));
        assert!(covered(1280 << 10, 1344 << 10));
        // The hole is not mapped.
        assert!(!ext
            .iter()
            .any(|e| e.logical < 1024 << 10 && e.end() > 512 << 10));
        // A sub-range query returns only what overlaps it, straddlers whole.
        let part = extents_in(f.as_raw_fd(), 1300 << 10, 4096, true).unwrap();
        assert_eq!(part.len(), 1, "{part:?}");
        assert!(part[0].logical <= 1300 << 10 && part[0].end() >= (1300 << 10) + 4096);
    }

    #[test]
    fn sparse_file_has_no_extents() {
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(dir.path().join("sparse")).unwrap();
        f.set_len(64 << 20).unwrap();
        match extents(f.as_raw_fd()) {
            Ok(e) => assert!(e.is_empty(), "{e:?}"),
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                println!("skipping: no FIEMAP here: {e}")
            }
            Err(e) => panic!("fiemap: {e}"),
        }
        assert!(extents_in(f.as_raw_fd(), 0, 0, false).unwrap().is_empty());
    }

    /// tmpfs has no `fiemap` inode operation: the ioctl fails with EOPNOTSUPP, which we pass on
    /// as an error (never as an empty list).
    #[test]
    fn tmpfs_is_unsupported() {
        let shm = std::path::Path::new("/dev/shm");
        if !shm.is_dir() {
            println!("skipping: no /dev/shm");
            return;
        }
        let dir = tempfile::tempdir_in(shm).unwrap();
        let f = std::fs::File::create(dir.path().join("t")).unwrap();
        f.write_all_at(&[1u8; 8192], 0).unwrap();
        let r = extents(f.as_raw_fd());
        println!("tmpfs FIEMAP: {r:?}");
        let e = r.expect_err("tmpfs answered FIEMAP");
        assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP), "{e}");
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
    }

    /// More extents than one batch: 600 separate 4 KiB blocks with holes between them.
    #[test]
    fn batches_are_concatenated() {
        let dir = tempfile::tempdir().unwrap();
        let Some(f) = direct_file(dir.path()) else {
            return;
        };
        let mut storage = Vec::new();
        let buf = aligned(&mut storage, 4096);
        let n = 600u64;
        for k in 0..n {
            f.write_at(buf, k * 8192).unwrap();
        }
        let ext = match extents(f.as_raw_fd()) {
            Ok(e) => e,
            Err(e) => {
                println!("skipping: {e}");
                return;
            }
        };
        assert_eq!(ext.len() as u64, n);
        for (k, e) in ext.iter().enumerate() {
            assert_eq!((e.logical, e.length), (k as u64 * 8192, 4096), "{e:?}");
        }
        assert!(ext.last().unwrap().is_last());
        assert_eq!(ext.iter().filter(|e| e.is_last()).count(), 1);
    }

    #[test]
    fn bad_fd_is_an_error() {
        let e = extents(-1).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
    }
}
