//! Test files that never outlive the process.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::EngineError;

/// Buffer alignment when the file's DIO memory alignment is not known: one page.
const DEFAULT_BUFFER_ALIGN: usize = 4096;

/// An O_DIRECT file with no name in the filesystem: created with `O_TMPFILE` where the
/// filesystem supports it, else created and unlinked at once. Nothing is left behind after a
/// crash, Ctrl-C or `kill -9`; its space is freed when the process exits.
///
/// It also carries the memory alignment the engine gives the buffers of its requests
/// ([`TestFile::with_buffer_align`]; 4096 bytes unless set).
#[derive(Debug)]
pub struct TestFile {
    file: File,
    directory: PathBuf,
    buffer_align: usize,
}

impl TestFile {
    /// Creates an unlinked O_DIRECT file in `dir` and sizes it (sparse) to `size` bytes.
    ///
    /// Errors: `DirectIoUnsupported` when the filesystem refuses O_DIRECT (`EINVAL`), `File`
    /// with the directory for anything else (missing, not a directory, no permission, ENOSPC).
    pub fn create_unlinked(dir: &Path, size: u64) -> Result<TestFile, EngineError> {
        let file_err = |source: io::Error| EngineError::File {
            path: dir.to_path_buf(),
            source,
        };
        let cdir =
            CString::new(dir.as_os_str().as_bytes()).map_err(|e| file_err(io::Error::other(e)))?;
        let flags = libc::O_RDWR | libc::O_DIRECT | libc::O_CLOEXEC;
        // SAFETY: cdir is a valid NUL-terminated path; open returns a new fd or -1.
        let fd = unsafe {
            libc::open(
                cdir.as_ptr(),
                libc::O_TMPFILE | flags,
                0o600 as libc::c_uint,
            )
        };
        let fd = if fd >= 0 {
            fd
        } else {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                // O_TMPFILE unsupported by this filesystem: fall back to create + unlink.
                Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) => {
                    Self::create_then_unlink(dir, flags)?
                }
                Some(libc::EINVAL) => return Err(Self::classify_einval(dir, err)),
                _ => return Err(file_err(err)),
            }
        };
        // SAFETY: fd is a freshly opened descriptor that nothing else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        file.set_len(size).map_err(file_err)?;
        Ok(TestFile {
            file,
            directory: dir.to_path_buf(),
            buffer_align: DEFAULT_BUFFER_ALIGN,
        })
    }

    fn create_then_unlink(dir: &Path, flags: i32) -> Result<RawFd, EngineError> {
        let name = dir.join(format!(
            ".iotune-{}-{:x}",
            std::process::id(),
            super::rng::seed_for(0)
        ));
        let cname = CString::new(name.as_os_str().as_bytes()).map_err(|e| EngineError::File {
            path: name.clone(),
            source: io::Error::other(e),
        })?;
        // SAFETY: valid C string; O_EXCL makes sure we never open someone else's file.
        let fd = unsafe {
            libc::open(
                cname.as_ptr(),
                flags | libc::O_CREAT | libc::O_EXCL,
                0o600 as libc::c_uint,
            )
        };
        if fd < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINVAL) {
                return Err(Self::classify_einval(dir, err));
            }
            return Err(EngineError::File {
                path: name,
                source: err,
            });
        }
        // SAFETY: valid C string; removing the name we just created.
        if unsafe { libc::unlink(cname.as_ptr()) } != 0 {
            let err = io::Error::last_os_error();
            // SAFETY: fd is ours and not used after this.
            unsafe { libc::close(fd) };
            return Err(EngineError::File {
                path: name,
                source: err,
            });
        }
        Ok(fd)
    }

    fn classify_einval(dir: &Path, source: io::Error) -> EngineError {
        EngineError::DirectIoUnsupported {
            path: dir.to_path_buf(),
            source,
        }
    }

    /// Opens `path` for O_DIRECT I/O as a named file (created or truncated to `size`, sparse),
    /// or, with `named == false`, creates an unlinked file in directory `path` like
    /// [`TestFile::create_unlinked`]. `dsync` adds O_DSYNC (every write is durable on return).
    ///
    /// Named files stay after the process ends; the caller removes them.
    pub fn create(
        path: &Path,
        named: bool,
        size: u64,
        dsync: bool,
    ) -> Result<TestFile, EngineError> {
        if !named {
            let f = Self::create_unlinked(path, size)?;
            if dsync {
                // O_DSYNC cannot be added with fcntl(F_SETFL); reopen through /proc.
                let proc = PathBuf::from(format!("/proc/self/fd/{}", f.fd()));
                let file = Self::open_raw(
                    &proc,
                    libc::O_RDWR | libc::O_DIRECT | libc::O_CLOEXEC | libc::O_DSYNC,
                    0,
                )?;
                return Ok(TestFile {
                    file,
                    directory: path.to_path_buf(),
                    buffer_align: DEFAULT_BUFFER_ALIGN,
                });
            }
            return Ok(f);
        }
        let mut flags =
            libc::O_RDWR | libc::O_DIRECT | libc::O_CLOEXEC | libc::O_CREAT | libc::O_TRUNC;
        if dsync {
            flags |= libc::O_DSYNC;
        }
        let file = Self::open_raw(path, flags, 0o644)?;
        file.set_len(size).map_err(|source| EngineError::File {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(TestFile {
            file,
            directory: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            buffer_align: DEFAULT_BUFFER_ALIGN,
        })
    }

    /// Opens an existing block device (or file) for O_DIRECT I/O, read-only unless `writable`.
    pub fn open_device(path: &Path, writable: bool) -> Result<TestFile, EngineError> {
        let mode = if writable {
            libc::O_RDWR
        } else {
            libc::O_RDONLY
        };
        let file = Self::open_raw(path, mode | libc::O_DIRECT | libc::O_CLOEXEC, 0)?;
        Ok(TestFile {
            file,
            directory: path.to_path_buf(),
            buffer_align: DEFAULT_BUFFER_ALIGN,
        })
    }

    fn open_raw(path: &Path, flags: i32, mode: u32) -> Result<File, EngineError> {
        let err = |source: io::Error| EngineError::File {
            path: path.to_path_buf(),
            source,
        };
        let c = CString::new(path.as_os_str().as_bytes()).map_err(|e| err(io::Error::other(e)))?;
        // SAFETY: c is a valid NUL-terminated path; open returns a new fd or -1.
        let fd = unsafe { libc::open(c.as_ptr(), flags, mode as libc::c_uint) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) {
                return Err(Self::classify_einval(path, e));
            }
            return Err(err(e));
        }
        // SAFETY: fd is freshly opened and owned by nobody else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Size in bytes: the file's length, or a block device's capacity.
    pub fn size(&self) -> io::Result<u64> {
        use std::io::Seek;
        (&self.file).seek(std::io::SeekFrom::End(0))
    }

    /// Sets the file's length (sparse growth or truncation).
    pub fn set_len(&self, size: u64) -> io::Result<()> {
        self.file.set_len(size)
    }

    /// Allocates `len` bytes at `offset` (`fallocate` mode 0: blocks reserved, reads return
    /// zeros, the file grows if needed).
    pub fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
        // SAFETY: plain syscall on our own descriptor.
        let r = unsafe { libc::fallocate(self.fd(), 0, offset as libc::off_t, len as libc::off_t) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Sets XFS's extent size hint (`FS_IOC_FSSETXATTR` with `FS_XFLAG_EXTSIZE`), as the
    /// reference does for its test files; filesystems without the attribute return an error
    /// the caller may ignore.
    pub fn set_extent_size_hint(&self, bytes: u64) -> io::Result<()> {
        #[repr(C)]
        #[derive(Default)]
        struct FsXattr {
            xflags: u32,
            extsize: u32,
            nextents: u32,
            projid: u32,
            cowextsize: u32,
            pad: [u8; 8],
        }
        const FS_IOC_FSGETXATTR: libc::c_ulong = 0x801c_581f;
        const FS_IOC_FSSETXATTR: libc::c_ulong = 0x401c_5820;
        const FS_XFLAG_EXTSIZE: u32 = 0x0000_0800;
        let mut attr = FsXattr::default();
        // SAFETY: the ioctls read/write exactly one struct fsxattr (28 bytes, repr(C)).
        unsafe {
            if libc::ioctl(self.fd(), FS_IOC_FSGETXATTR, &mut attr) != 0 {
                return Err(io::Error::last_os_error());
            }
            attr.xflags |= FS_XFLAG_EXTSIZE;
            attr.extsize = u32::try_from(bytes).unwrap_or(u32::MAX);
            if libc::ioctl(self.fd(), FS_IOC_FSSETXATTR, &attr) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// Sets the memory alignment of the buffers the engine uses for this file's requests, bytes:
    /// its DIO memory alignment (statx `stx_dio_mem_align`). Every buffer starts at a multiple
    /// of it, and at a page boundary when its size is a multiple of a page (see
    /// [`crate::engine::RingBuilder::buffer_align`]).
    pub fn with_buffer_align(mut self, bytes: usize) -> TestFile {
        self.buffer_align = bytes;
        self
    }

    /// The memory alignment asked for this file's buffers, bytes (4096 unless set).
    pub fn buffer_align(&self) -> usize {
        self.buffer_align
    }

    /// The raw descriptor for the engines.
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// The directory the file lives in (it has no name of its own).
    pub fn directory(&self) -> &Path {
        &self.directory
    }
}

/// Bytes available to unprivileged users on the filesystem holding `dir` (statvfs
/// `f_bavail * f_frsize`).
pub fn available_space(dir: &Path) -> io::Result<u64> {
    let cdir = CString::new(dir.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: statvfs fills the zeroed struct for a valid C path.
    let st = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(cdir.as_ptr(), &mut st) != 0 {
            return Err(io::Error::last_os_error());
        }
        st
    };
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Bytes available to unprivileged users on the filesystem holding the open file `fd`
/// (fstatvfs `f_bavail * f_frsize`).
pub(crate) fn available_space_fd(fd: RawFd) -> io::Result<u64> {
    // SAFETY: fstatvfs fills the zeroed struct for a descriptor the caller keeps open.
    let st = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::fstatvfs(fd, &mut st) != 0 {
            return Err(io::Error::last_os_error());
        }
        st
    };
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}
