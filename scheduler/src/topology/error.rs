//! [`TopologyError`]: what stops the topology from being read.

use std::io;
use std::path::{Path, PathBuf};

use super::sysfs::ParseError;

/// Why the topology of a directory could not be determined.
///
/// Every variant names the path involved; the underlying cause is the
/// [`source`](std::error::Error::source) (print with `{:#}` through anyhow to
/// see the whole chain). Missing *optional* sysfs attributes are not errors:
/// they become [`TopologyWarning::MissingAttribute`](super::TopologyWarning::MissingAttribute).
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// The evaluation directory cannot be resolved or stat'ed.
    #[error("cannot access directory {path}")]
    Directory {
        /// The directory as given.
        path: PathBuf,
        /// The error from `canonicalize`/`stat`.
        #[source]
        source: io::Error,
    },
    /// Walking up from the directory to find its mountpoint failed.
    #[error("cannot find the mountpoint of {path}")]
    Mountpoint {
        /// The directory whose mountpoint was looked for.
        path: PathBuf,
        /// The error from `stat` on an ancestor.
        #[source]
        source: io::Error,
    },
    /// `statfs(2)` failed on the directory.
    #[error("statfs failed on {path}")]
    Statfs {
        /// The directory passed to `statfs`.
        path: PathBuf,
        /// The error from `statfs`.
        #[source]
        source: io::Error,
    },
    /// `<sysfs>/dev/block/MAJ:MIN` is missing or does not lead to a directory.
    #[error("block device {}:{} not found in sysfs at {path}", dev.0, dev.1)]
    DeviceNotFound {
        /// The device number looked up.
        dev: (u32, u32),
        /// The link (or directory) that could not be resolved.
        path: PathBuf,
        /// The error from `readlink`/`stat`.
        #[source]
        source: io::Error,
    },
    /// A required sysfs attribute (`dev`, `queue/logical_block_size`) is
    /// missing or unreadable.
    #[error("cannot read sysfs attribute {path}")]
    ReadAttribute {
        /// The attribute file.
        path: PathBuf,
        /// The error from reading it.
        #[source]
        source: io::Error,
    },
    /// A required sysfs attribute has contents that cannot be parsed.
    #[error("malformed sysfs attribute {path}")]
    ParseAttribute {
        /// The attribute file.
        path: PathBuf,
        /// What was found and what was expected.
        #[source]
        source: ParseError,
    },
    /// A sysfs directory (`slaves/`) cannot be listed, or one of its entries
    /// cannot be resolved.
    #[error("cannot read sysfs directory {path}")]
    ReadDir {
        /// The directory or entry.
        path: PathBuf,
        /// The error from `readdir`/`readlink`.
        #[source]
        source: io::Error,
    },
    /// Devices nest deeper than any real stack does (a `slaves/` loop).
    #[error("block devices nest more than {max_depth} levels deep at {path} (a slaves/ loop?)")]
    TooDeep {
        /// The device directory at which the limit was hit.
        path: PathBuf,
        /// The nesting limit.
        max_depth: usize,
    },
}

impl TopologyError {
    /// True when the directory itself was fine but its block device could not
    /// be read from sysfs. A caller can then go on without device limits, as
    /// the reference does ("warn and guess an in-flight bound of 128"), e.g.
    /// with [`Topology::without_device`](super::Topology::without_device).
    pub fn is_sysfs(&self) -> bool {
        matches!(
            self,
            TopologyError::DeviceNotFound { .. }
                | TopologyError::ReadAttribute { .. }
                | TopologyError::ParseAttribute { .. }
                | TopologyError::ReadDir { .. }
                | TopologyError::TooDeep { .. }
        )
    }

    /// The path this error is about.
    pub fn path(&self) -> &Path {
        match self {
            TopologyError::Directory { path, .. }
            | TopologyError::Mountpoint { path, .. }
            | TopologyError::Statfs { path, .. }
            | TopologyError::DeviceNotFound { path, .. }
            | TopologyError::ReadAttribute { path, .. }
            | TopologyError::ParseAttribute { path, .. }
            | TopologyError::ReadDir { path, .. }
            | TopologyError::TooDeep { path, .. } => path,
        }
    }

    /// True when the error is a missing file (as opposed to an unreadable or
    /// malformed one).
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(
            self,
            TopologyError::ReadAttribute { source, .. } if source.kind() == io::ErrorKind::NotFound
        )
    }

    /// This error and its causes on one line, "a: b: c".
    pub(crate) fn chain(&self) -> String {
        let mut s = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            s.push_str(": ");
            s.push_str(&c.to_string());
            cause = c.source();
        }
        s
    }
}
