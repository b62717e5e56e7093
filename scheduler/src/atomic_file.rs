//! Writing a file so that readers see the old contents or the new, never a part: a temporary
//! file in the same directory (tempfile), written and fsynced, renamed over the target
//! (`persist`), then the directory fsynced so the rename survives a crash.

use std::io::{self, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Mode of a new file: readable like any configuration file (tempfile creates 0600, and a
/// service user must be able to read what root wrote for it).
const NEW_FILE_MODE: u32 = 0o644;

/// A step of [`write_atomically`] that failed. The OS error is its
/// [`source`](std::error::Error::source), not repeated in its message.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}", path.display())]
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
    let (dir, prefix) = temp_name(path)?;
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

/// Checks that [`write_atomically`] could write `path` now, without touching `path`: `path`
/// has a file name and is not a directory, and its directory takes a new file (a temporary
/// file is created there, as `write_atomically` would, and removed). For tools that write
/// their output after a long measurement, so that a missing, read-only or immutable directory
/// is found before it.
///
/// # Errors
///
/// [`AtomicWriteError`] naming the step and the path: `path` has no file name or is a
/// directory, or the directory is missing, read-only, immutable, full or not searchable.
pub fn check_writable(path: &Path) -> Result<(), AtomicWriteError> {
    let (dir, prefix) = temp_name(path)?;
    if path.is_dir() {
        return Err(AtomicWriteError {
            action: "write a file at",
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::IsADirectory, "a directory is there"),
        });
    }
    let mut probe = prefix;
    probe.push(format!("{}.check", std::process::id()));
    let probe = dir.join(probe);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|source| AtomicWriteError {
            action: "create a file in",
            path: dir.to_owned(),
            source,
        })?;
    std::fs::remove_file(&probe).map_err(|source| AtomicWriteError {
        action: "remove",
        path: probe,
        source,
    })
}

/// The directory of `path` (`.` for a bare name) and the prefix of the temporary file written
/// there: `.NAME.`.
fn temp_name(path: &Path) -> Result<(&Path, std::ffi::OsString), AtomicWriteError> {
    let name = path.file_name().ok_or_else(|| AtomicWriteError {
        action: "write",
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    Ok((dir, prefix))
}

/// Makes the rename durable. Filesystems that cannot fsync a directory (EINVAL) are tolerated.
fn sync_dir(dir: &Path) -> io::Result<()> {
    match std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_writable_creates_nothing_and_names_what_fails() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("io-properties.yaml");
        check_writable(&target).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        let missing = dir.path().join("missing/p.yaml");
        let e = check_writable(&missing).unwrap_err();
        assert_eq!(e.action, "create a file in");
        assert_eq!(e.path, dir.path().join("missing"));
        assert_eq!(e.source.kind(), io::ErrorKind::NotFound);

        let e = check_writable(dir.path()).unwrap_err();
        assert_eq!(e.source.kind(), io::ErrorKind::IsADirectory);
        assert!(check_writable(Path::new("/")).is_err());
    }
}
