//! Test files that never outlive the process.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::EngineError;

/// An O_DIRECT file with no name in the filesystem: created with `O_TMPFILE` where the
/// filesystem supports it, else created and unlinked at once. Nothing is left behind after a
/// crash, Ctrl-C or `kill -9`; its space is freed when the process exits.
#[derive(Debug)]
pub struct TestFile {
    file: File,
    directory: PathBuf,
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
