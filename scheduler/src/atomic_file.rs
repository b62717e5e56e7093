//! Writing a file so that readers see the old contents or the new, never a part: a temporary
//! file in the same directory (tempfile), written and fsynced, renamed over the target
//! (`persist`), then the directory fsynced so the rename survives a crash.

use std::io::{self, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Mode of a new file: readable like any configuration file (tempfile creates 0600, and a
/// service user must be able to read what root wrote for it).
const NEW_FILE_MODE: u32 = 0o644;

/// A step of [`write_atomically`] that failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {source}", path.display())]
pub struct AtomicWriteError {
    /// What was being done ("create a temporary file in", "write", "rename into place", ...).
    pub action: &'static str,
    /// The file or directory concerned.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: io::Error,
}

/// Writes `contents` to `path` atomically. The file keeps the mode of the file it replaces
/// (0644 when new). On error nothing changes at `path` and no temporary file is left.
///
/// # Errors
///
/// [`AtomicWriteError`] naming the step and the path: the directory is missing or not
/// writable, the disk is full, `path` has no file name.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), AtomicWriteError> {
    let err = |action, path: &Path| {
        let path = path.to_owned();
        move |source| AtomicWriteError {
            action,
            path,
            source,
        }
    };
    let name = path.file_name().ok_or_else(|| {
        err("write", path)(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path has no file name",
        ))
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(err("create a temporary file in", dir))?;
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(NEW_FILE_MODE);
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(err("set the mode of", tmp.path()))?;
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(err("write", tmp.path()))?;
    // On failure `persist` hands the temporary file back, and dropping it removes it.
    tmp.persist(path)
        .map_err(|e| err("rename into place", path)(e.error))?;
    sync_dir(dir).map_err(err("sync directory", dir))
}

/// Makes the rename durable. Filesystems that cannot fsync a directory (EINVAL) are tolerated.
fn sync_dir(dir: &Path) -> io::Result<()> {
    match std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(()),
        other => other,
    }
}
