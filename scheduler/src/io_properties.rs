//! The io-properties model: a liberal reader and a byte-exact writer for `io_properties.yaml`.
//!
//! This file is the contract between the calibrator (`iotune`) and the scheduler. It follows
//! Seastar's io-properties format (see `shared/reference/io-properties.md`), so files written
//! here are accepted by Seastar's `--io-properties-file`, and files written by Seastar's iotune
//! are read here unchanged:
//!
//! ```yaml
//! disks:
//!   - mountpoint: /var/lib/scylla
//!     read_iops: 314742
//!     read_bandwidth: 3089104896
//!     write_iops: 91662
//!     write_bandwidth: 1764753408
//! ```
//!
//! Reading is done in two steps: the text is parsed once into a [`crate::yaml::Node`] tree, and
//! then validated by hand, so that every error names the file, the entry (`disks[N]`) and the key.
//! Texts over 16 MiB ([`MAX_FILE_BYTES`]) are refused before parsing; a file of that size
//! would already describe about 100000 disks.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use crate::yaml::{escape_controls, Map, Node, Value};

/// The largest io-properties text read: 16 MiB.
pub const MAX_FILE_BYTES: usize = crate::yaml::MAX_INPUT_BYTES;

/// Name used as the source of text parsed without a file (see [`IoProperties::parse`]).
pub const INLINE_SOURCE: &str = "<inline>";

/// The four required rate keys of a disk entry, in the order the writer emits them.
const RATE_KEYS: [&str; 4] = [
    "read_iops",
    "read_bandwidth",
    "write_iops",
    "write_bandwidth",
];

// ---------------------------------------------------------------------------------------------
// Sizes
// ---------------------------------------------------------------------------------------------

/// Why a size or rate value (`545M`, `4096`, ...) could not be parsed by [`parse_size`].
///
/// Every variant carries the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// The text is empty.
    #[error("empty value; expected an integer such as `4096` or `545M`")]
    Empty,
    /// The text does not start with a decimal digit (e.g. `-5`, `M`, `+1`).
    #[error("`{}` is not a non-negative integer; expected digits with an optional suffix such as `545M`", escape_controls(text))]
    NoDigits {
        /// The text as given.
        text: String,
    },
    /// The text is a fractional or exponent number (e.g. `1.5`, `1e3`); only integers are allowed.
    #[error(
        "`{}` is not an integer; only whole numbers are allowed",
        escape_controls(text)
    )]
    NotInteger {
        /// The text as given.
        text: String,
    },
    /// The digits are followed by something other than `k`, `K`, `M`, `G` or `T`, optionally
    /// followed by `i`, `iB` or `B`.
    #[error("`{}` has an unknown suffix `{}`; expected k/K, M, G or T, optionally followed by i, iB or B", escape_controls(text), escape_controls(suffix))]
    BadSuffix {
        /// The text as given.
        text: String,
        /// The part after the digits.
        suffix: String,
    },
    /// The value does not fit in 64 bits.
    #[error(
        "`{}` is too large (it does not fit in 64 bits)",
        escape_controls(text)
    )]
    Overflow {
        /// The text as given.
        text: String,
    },
}

/// Parses a size or rate: decimal digits, then an optional binary multiplier.
///
/// The multiplier is `k`/`K` = 2^10, `M` = 2^20, `G` = 2^30 or `T` = 2^40, optionally followed
/// by `i`, `iB` or `B` (`545M`, `1Gi`, `64kB`, `2KiB`). Multiples are binary even for IOPS, as in
/// the reference. Only integers are accepted; no sign, no whitespace, no bare `B` suffix.
/// Follows Seastar's io-properties format, see `shared/reference/io-properties.md`.
///
/// # Errors
///
/// [`SizeError`] when the text is empty, has no leading digits, is fractional, has an unknown
/// suffix, or overflows `u64` (before or after applying the multiplier).
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    if s.is_empty() {
        return Err(SizeError::Empty);
    }
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, suffix) = s.split_at(digits_end);
    if digits.is_empty() {
        return Err(SizeError::NoDigits { text: s.to_owned() });
    }
    if suffix.starts_with(['.', 'e', 'E']) && looks_like_number(suffix) {
        return Err(SizeError::NotInteger { text: s.to_owned() });
    }
    let shift = suffix_shift(suffix).ok_or_else(|| SizeError::BadSuffix {
        text: s.to_owned(),
        suffix: suffix.to_owned(),
    })?;
    let overflow = || SizeError::Overflow { text: s.to_owned() };
    let value: u64 = digits.parse().map_err(|_| overflow())?;
    value.checked_mul(1u64 << shift).ok_or_else(overflow)
}

/// The power of two a suffix stands for, or `None` if the suffix is not allowed.
fn suffix_shift(suffix: &str) -> Option<u32> {
    let mut chars = suffix.chars();
    let shift = match chars.next() {
        None => return Some(0),
        Some('k' | 'K') => 10,
        Some('M') => 20,
        Some('G') => 30,
        Some('T') => 40,
        Some(_) => return None,
    };
    matches!(chars.as_str(), "" | "i" | "iB" | "B").then_some(shift)
}

/// Whether the text after the integer digits looks like a fraction or exponent (`.5`, `e3`).
fn looks_like_number(rest: &str) -> bool {
    rest.chars().any(|c| c.is_ascii_digit())
        && rest
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
}

// ---------------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------------

/// One entry of the `disks:` list: the measured limits of the device behind one or more
/// mountpoints.
///
/// Follows Seastar's io-properties format, see `shared/reference/io-properties.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskProperties {
    /// Mount points served by this device; from `mountpoint: P` (one) or `mountpoints: [..]`
    /// (several sharing one queue). Never empty in a parsed file.
    pub mountpoints: Vec<PathBuf>,
    /// Random-read rate, operations per second (after `rate_factor`).
    pub read_iops: u64,
    /// Sequential-read rate, bytes per second (after `rate_factor`).
    pub read_bandwidth: u64,
    /// Random-write rate, operations per second (after `rate_factor`).
    pub write_iops: u64,
    /// Sequential-write rate, bytes per second (after `rate_factor`).
    pub write_bandwidth: u64,
    /// Smallest read request size reaching full read bandwidth, bytes.
    pub read_saturation_length: Option<u64>,
    /// Smallest write request size reaching full write bandwidth, bytes.
    pub write_saturation_length: Option<u64>,
    /// Write alignment that avoids device read-modify-write, bytes (for drives that misreport
    /// their sector size).
    pub physical_block_size: Option<u64>,
    /// Reads and writes are separate streams, each with its own full-rate token bucket.
    pub duplex: bool,
    /// The `rate_factor` as read, if present. The four rates above already include it; the
    /// writer never emits it (writing it would apply it twice).
    pub rate_factor: Option<f64>,
}

impl DiskProperties {
    /// An entry for one mountpoint with the four required rates (IOPS in operations/s,
    /// bandwidths in bytes/s) and no optional keys.
    pub fn new(
        mountpoint: impl Into<PathBuf>,
        read_iops: u64,
        read_bandwidth: u64,
        write_iops: u64,
        write_bandwidth: u64,
    ) -> Self {
        DiskProperties {
            mountpoints: vec![mountpoint.into()],
            read_iops,
            read_bandwidth,
            write_iops,
            write_bandwidth,
            read_saturation_length: None,
            write_saturation_length: None,
            physical_block_size: None,
            duplex: false,
            rate_factor: None,
        }
    }
}

/// The content of an `io_properties.yaml` file: one [`DiskProperties`] per measured device.
///
/// Follows Seastar's io-properties format, see `shared/reference/io-properties.md`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IoProperties {
    /// The `disks:` entries, in file order.
    pub disks: Vec<DiskProperties>,
}

/// A non-fatal finding while reading an io-properties file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertiesWarning {
    /// A key inside a disk entry that the format does not define. The reference ignores such
    /// keys, and so do we.
    UnknownKey {
        /// File path, or `<inline>`.
        source: String,
        /// Index of the entry in `disks:` (0-based).
        entry: usize,
        /// The key as written.
        key: String,
    },
}

impl fmt::Display for PropertiesWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PropertiesWarning::UnknownKey { source, entry, key } => write!(
                f,
                "{source}: disks[{entry}]: unknown key `{key}` is ignored (check its spelling)"
            ),
        }
    }
}

/// Why an io-properties file could not be read or written.
///
/// Every variant names its origin (the file path, or `<inline>`) and, where it applies, the
/// entry as `disks[N]` (0-based) and the key.
#[derive(Debug, thiserror::Error)]
pub enum PropertiesError {
    /// Reading or writing the file failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done ("read", "write", "rename into place", ...).
        action: &'static str,
        /// The file (or directory) concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The text is larger than [`MAX_FILE_BYTES`].
    #[error("{origin}: {}; io-properties are a few lines per disk: check that this is the right file", too_large(*size, *limit))]
    TooLarge {
        /// File path, or `<inline>`.
        origin: String,
        /// Its size in bytes, when known (not for a pipe).
        size: Option<u64>,
        /// The limit, [`MAX_FILE_BYTES`].
        limit: usize,
    },
    /// The stop flag given to [`IoProperties::parse_with_stop`] was set while reading.
    #[error("{origin}: reading was interrupted")]
    Interrupted {
        /// File path, or `<inline>`.
        origin: String,
    },
    /// The text is not valid YAML.
    #[error("{origin}{}: malformed YAML: {message}", fmt_location(*line, *column))]
    Yaml {
        /// File path, or `<inline>`.
        origin: String,
        /// 1-based line of the problem, when the YAML parser knows it.
        line: Option<usize>,
        /// 1-based column of the problem, when the YAML parser knows it.
        column: Option<usize>,
        /// The YAML parser's message.
        message: String,
    },
    /// The document is not a map (e.g. a list, a scalar or empty).
    #[error("{origin}: top level must be a map with a `disks` section, found {found}")]
    TopLevelNotMap {
        /// File path, or `<inline>`.
        origin: String,
        /// What was found instead ("a list", "nothing", ...).
        found: &'static str,
    },
    /// A top-level section other than `disks`.
    #[error("{origin}: section `{section}` is not supported; only `disks` is allowed")]
    UnknownSection {
        /// File path, or `<inline>`.
        origin: String,
        /// The section name as written.
        section: String,
    },
    /// A value of the wrong YAML type (e.g. `disks` not a list, `duplex` not a boolean).
    #[error("{origin}: {field}: expected {expected}, found {found}")]
    WrongType {
        /// File path, or `<inline>`.
        origin: String,
        /// Where the value is, e.g. `disks`, `disks[0]`, `disks[1].duplex`.
        field: String,
        /// What was expected.
        expected: &'static str,
        /// What was found.
        found: String,
    },
    /// An entry with neither `mountpoint` nor `mountpoints`.
    #[error("{origin}: disks[{entry}]: needs `mountpoint: PATH` or `mountpoints: [PATH, ...]`")]
    MissingMountpoint {
        /// File path, or `<inline>`.
        origin: String,
        /// Index of the entry in `disks:` (0-based).
        entry: usize,
    },
    /// An entry with both `mountpoint` and `mountpoints`.
    #[error("{origin}: disks[{entry}]: has both `mountpoint` and `mountpoints`; use only one")]
    ConflictingMountpoints {
        /// File path, or `<inline>`.
        origin: String,
        /// Index of the entry in `disks:` (0-based).
        entry: usize,
    },
    /// An empty mountpoint path, or an empty `mountpoints` list.
    #[error("{origin}: disks[{entry}].{field}: must not be empty")]
    EmptyMountpoint {
        /// File path, or `<inline>`.
        origin: String,
        /// Index of the entry in `disks:` (0-based).
        entry: usize,
        /// `mountpoint`, `mountpoints` or `mountpoints[N]`.
        field: String,
    },
    /// The same mountpoint listed twice, in one entry or in two (compared component-wise, so
    /// `/a` and `/a/` are the same).
    #[error("{origin}: disks[{entry}]: mountpoint {} is listed twice (first in disks[{first_entry}])", escape_controls(&mountpoint.display().to_string()))]
    DuplicateMountpoint {
        /// File path, or `<inline>`.
        origin: String,
        /// Index of the entry with the repeated mountpoint (0-based).
        entry: usize,
        /// Index of the entry where it first appeared (may equal `entry`).
        first_entry: usize,
        /// The repeated mountpoint.
        mountpoint: PathBuf,
    },
    /// One of the four required rates is missing.
    #[error("{origin}: disks[{entry}]: required key `{field}` is missing")]
    MissingField {
        /// File path, or `<inline>`.
        origin: String,
        /// Index of the entry in `disks:` (0-based).
        entry: usize,
        /// The missing key.
        field: &'static str,
    },
    /// A rate or size that is zero.
    #[error("{origin}: disks[{entry}].{field}: must not be zero")]
    Zero {
        /// File path, or `<inline>`.
        origin: String,
        /// Index of the entry in `disks:` (0-based).
        entry: usize,
        /// The key.
        field: &'static str,
    },
    /// A rate or size that is not a valid integer with optional suffix.
    #[error("{origin}: disks[{entry}].{field}: {error}")]
    InvalidSize {
        /// File path, or `<inline>`.
        origin: String,
        /// Index of the entry in `disks:` (0-based).
        entry: usize,
        /// The key.
        field: &'static str,
        /// What is wrong with the value.
        error: SizeError,
    },
    /// A `rate_factor` that is not a positive finite number (in 32-bit float precision).
    #[error("{origin}: disks[{entry}].rate_factor: `{value}` must be a positive finite number")]
    InvalidRateFactor {
        /// File path, or `<inline>`.
        origin: String,
        /// Index of the entry in `disks:` (0-based).
        entry: usize,
        /// The value as written.
        value: String,
    },
    /// A rate that becomes zero once `rate_factor` is applied.
    #[error("{origin}: disks[{entry}].{field}: becomes zero after applying rate_factor {factor}")]
    ZeroAfterRateFactor {
        /// File path, or `<inline>`.
        origin: String,
        /// Index of the entry in `disks:` (0-based).
        entry: usize,
        /// The key.
        field: &'static str,
        /// The rate factor as read.
        factor: f64,
    },
}

/// "the file has N bytes (X MiB), more than the 16 MiB limit" (or "the text has ...").
fn too_large(size: Option<u64>, limit: usize) -> String {
    crate::yaml::ReadError::TooLarge { size, limit }.to_string()
}

fn fmt_location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------------

impl IoProperties {
    /// Parses io-properties YAML text. `source` names the text in errors and warnings (a file
    /// path, or [`INLINE_SOURCE`]).
    ///
    /// Follows Seastar's io-properties format, see `shared/reference/io-properties.md`: values
    /// may be YAML integers or strings with a size suffix ([`parse_size`]); unknown keys inside
    /// an entry are ignored and reported as [`PropertiesWarning`]s.
    ///
    /// `rate_factor`, when present, is applied like the reference does, in 32-bit floats to every
    /// rate even when it is 1.0: each rate becomes `(rate as f32 * factor as f32) as u64`, so
    /// `1000000007` with factor 1.0 becomes `1000000000`. Without `rate_factor` rates are exact.
    ///
    /// Slightly stricter than the reference (documented choices): an empty document, an empty
    /// `mountpoints` list and a zero saturation length or physical block size are errors.
    ///
    /// # Errors
    ///
    /// [`PropertiesError::TooLarge`] for a text over [`MAX_FILE_BYTES`]; otherwise
    /// [`PropertiesError`] for malformed YAML (with line and column), a top level that is not a
    /// map, a section other than `disks`, an entry without (or with both) `mountpoint` and
    /// `mountpoints`, a duplicate mountpoint, a missing or zero rate, a non-integer value or bad
    /// suffix, a `duplex` that is not a boolean, or a `rate_factor` that is not positive and
    /// finite or that turns a rate into zero.
    pub fn parse(
        text: &str,
        source: &str,
    ) -> Result<(IoProperties, Vec<PropertiesWarning>), PropertiesError> {
        Self::parse_with_stop(text, source, None)
    }

    /// [`IoProperties::parse`], giving up as soon as `stop` is set (read while parsing).
    ///
    /// # Errors
    ///
    /// As [`IoProperties::parse`], [`PropertiesError::TooLarge`] for a text over
    /// [`MAX_FILE_BYTES`], and [`PropertiesError::Interrupted`] once `stop` is set.
    pub fn parse_with_stop(
        text: &str,
        source: &str,
        stop: Option<&AtomicBool>,
    ) -> Result<(IoProperties, Vec<PropertiesWarning>), PropertiesError> {
        let mut reader = Reader {
            origin: source,
            warnings: Vec::new(),
        };
        let props = reader.document(text, stop)?;
        Ok((props, reader.warnings))
    }

    /// Reads and parses an io-properties file; errors and warnings name `path`.
    ///
    /// # Errors
    ///
    /// [`PropertiesError::Io`] if the file cannot be read (or is not UTF-8),
    /// [`PropertiesError::TooLarge`] if it has more than [`MAX_FILE_BYTES`] (it is not read),
    /// otherwise as [`IoProperties::parse`].
    pub fn from_file(
        path: &Path,
    ) -> Result<(IoProperties, Vec<PropertiesWarning>), PropertiesError> {
        Self::from_file_with_stop(path, None)
    }

    /// [`IoProperties::from_file`], giving up as soon as `stop` is set (read while parsing).
    ///
    /// # Errors
    ///
    /// As [`IoProperties::from_file`], and [`PropertiesError::Interrupted`] once `stop` is set.
    pub fn from_file_with_stop(
        path: &Path,
        stop: Option<&AtomicBool>,
    ) -> Result<(IoProperties, Vec<PropertiesWarning>), PropertiesError> {
        let origin = path.display().to_string();
        let text = crate::yaml::read_file(path, MAX_FILE_BYTES).map_err(|e| match e {
            crate::yaml::ReadError::Io(source) => PropertiesError::Io {
                action: "read",
                path: path.to_owned(),
                source,
            },
            crate::yaml::ReadError::TooLarge { size, limit } => PropertiesError::TooLarge {
                origin: origin.clone(),
                size,
                limit,
            },
        })?;
        Self::parse_with_stop(&text, &origin, stop)
    }

    /// The entry whose mountpoint is the longest prefix of `dir`, compared component-wise (so
    /// `/va` does not match `/var/x`). `dir` should already be canonical (absolute, symlinks
    /// resolved). On a tie (only possible in hand-built values) the first entry wins.
    pub fn disk_for(&self, dir: &Path) -> Option<&DiskProperties> {
        let mut best: Option<(usize, &DiskProperties)> = None;
        for disk in &self.disks {
            for mp in &disk.mountpoints {
                if !dir.starts_with(mp) {
                    continue;
                }
                let depth = mp.components().count();
                if best.is_none_or(|(d, _)| depth > d) {
                    best = Some((depth, disk));
                }
            }
        }
        best.map(|(_, disk)| disk)
    }
}

/// Validation state: the origin used in messages and the warnings collected so far.
struct Reader<'a> {
    origin: &'a str,
    warnings: Vec<PropertiesWarning>,
}

impl Reader<'_> {
    fn origin(&self) -> String {
        self.origin.to_owned()
    }

    fn document(
        &mut self,
        text: &str,
        stop: Option<&AtomicBool>,
    ) -> Result<IoProperties, PropertiesError> {
        if text.len() > MAX_FILE_BYTES {
            return Err(PropertiesError::TooLarge {
                origin: self.origin(),
                size: u64::try_from(text.len()).ok(),
                limit: MAX_FILE_BYTES,
            });
        }
        let root = crate::yaml::load(text, stop).map_err(|e| match e {
            crate::yaml::Error::Interrupted => PropertiesError::Interrupted {
                origin: self.origin(),
            },
            e => PropertiesError::Yaml {
                origin: self.origin(),
                line: e.pos().map(|p| p.line),
                column: e.pos().map(|p| p.column),
                message: e.to_string(),
            },
        })?;
        let top = match &root.value {
            Value::Map(m) => m,
            Value::Null => return Err(self.top_not_map("nothing (empty document)")),
            _ => return Err(self.top_not_map(kind(&root))),
        };
        let mut props = IoProperties::default();
        for (key, section) in top.iter() {
            match key.as_str() {
                Some("disks") => props.disks.extend(self.disks(section)?),
                _ => {
                    return Err(PropertiesError::UnknownSection {
                        origin: self.origin(),
                        section: describe(key),
                    })
                }
            }
        }
        Ok(props)
    }

    fn top_not_map(&self, found: &'static str) -> PropertiesError {
        PropertiesError::TopLevelNotMap {
            origin: self.origin(),
            found,
        }
    }

    fn wrong_type(&self, field: String, expected: &'static str, found: &Node) -> PropertiesError {
        PropertiesError::WrongType {
            origin: self.origin(),
            field,
            expected,
            found: describe(found),
        }
    }

    fn disks(&mut self, section: &Node) -> Result<Vec<DiskProperties>, PropertiesError> {
        let list = section
            .as_seq()
            .ok_or_else(|| self.wrong_type("disks".into(), "a list of disk entries", section))?;
        // Every mountpoint seen so far, with its entry; also catches repeats within one entry.
        // `Path` hashes component-wise, as it compares: `/a` and `/a/` are one key.
        let mut seen: HashMap<PathBuf, usize> = HashMap::new();
        let mut disks = Vec::with_capacity(list.len());
        for (entry, value) in list.iter().enumerate() {
            let map = value
                .as_map()
                .ok_or_else(|| self.wrong_type(format!("disks[{entry}]"), "a map", value))?;
            let disk = self.entry(entry, map)?;
            for mp in &disk.mountpoints {
                if let Some(&first_entry) = seen.get(mp) {
                    return Err(PropertiesError::DuplicateMountpoint {
                        origin: self.origin(),
                        entry,
                        first_entry,
                        mountpoint: mp.clone(),
                    });
                }
                seen.insert(mp.clone(), entry);
            }
            disks.push(disk);
        }
        Ok(disks)
    }

    fn entry(&mut self, entry: usize, map: &Map) -> Result<DiskProperties, PropertiesError> {
        const KNOWN: [&str; 11] = [
            "mountpoint",
            "mountpoints",
            "read_iops",
            "read_bandwidth",
            "write_iops",
            "write_bandwidth",
            "read_saturation_length",
            "write_saturation_length",
            "physical_block_size",
            "duplex",
            "rate_factor",
        ];
        for key in map.keys() {
            if !key.as_str().is_some_and(|k| KNOWN.contains(&k)) {
                self.warnings.push(PropertiesWarning::UnknownKey {
                    source: self.origin(),
                    entry,
                    key: describe(key),
                });
            }
        }
        let mountpoints = self.mountpoints(entry, map)?;
        let mut rates = [0u64; 4];
        for (rate, field) in rates.iter_mut().zip(RATE_KEYS) {
            let value = map
                .get(field)
                .ok_or_else(|| PropertiesError::MissingField {
                    origin: self.origin(),
                    entry,
                    field,
                })?;
            *rate = self.nonzero_size(entry, field, value)?;
        }
        let optional = |field: &'static str| -> Result<Option<u64>, PropertiesError> {
            map.get(field)
                .map(|v| self.nonzero_size(entry, field, v))
                .transpose()
        };
        let read_saturation_length = optional("read_saturation_length")?;
        let write_saturation_length = optional("write_saturation_length")?;
        let physical_block_size = optional("physical_block_size")?;
        let duplex = map
            .get("duplex")
            .map(|v| self.duplex(entry, v))
            .transpose()?
            .unwrap_or(false);
        let rate_factor = map
            .get("rate_factor")
            .map(|v| self.rate_factor(entry, v))
            .transpose()?;
        if let Some(factor) = rate_factor {
            for (rate, field) in rates.iter_mut().zip(RATE_KEYS) {
                *rate = apply_rate_factor(*rate, factor);
                if *rate == 0 {
                    return Err(PropertiesError::ZeroAfterRateFactor {
                        origin: self.origin(),
                        entry,
                        field,
                        factor,
                    });
                }
            }
        }
        let [read_iops, read_bandwidth, write_iops, write_bandwidth] = rates;
        Ok(DiskProperties {
            mountpoints,
            read_iops,
            read_bandwidth,
            write_iops,
            write_bandwidth,
            read_saturation_length,
            write_saturation_length,
            physical_block_size,
            duplex,
            rate_factor,
        })
    }

    fn mountpoints(&self, entry: usize, map: &Map) -> Result<Vec<PathBuf>, PropertiesError> {
        let mountpoints = match (map.get("mountpoint"), map.get("mountpoints")) {
            (Some(_), Some(_)) => {
                return Err(PropertiesError::ConflictingMountpoints {
                    origin: self.origin(),
                    entry,
                })
            }
            (None, None) => {
                return Err(PropertiesError::MissingMountpoint {
                    origin: self.origin(),
                    entry,
                })
            }
            (Some(one), None) => vec![self.path(entry, "mountpoint".into(), one)?],
            (None, Some(many)) => {
                let list = many.as_seq().ok_or_else(|| {
                    self.wrong_type(
                        format!("disks[{entry}].mountpoints"),
                        "a list of paths",
                        many,
                    )
                })?;
                if list.is_empty() {
                    return Err(PropertiesError::EmptyMountpoint {
                        origin: self.origin(),
                        entry,
                        field: "mountpoints".into(),
                    });
                }
                list.iter()
                    .enumerate()
                    .map(|(i, v)| self.path(entry, format!("mountpoints[{i}]"), v))
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        // Duplicates, within this entry or across entries, are caught in `disks`.
        Ok(mountpoints)
    }

    fn path(&self, entry: usize, field: String, value: &Node) -> Result<PathBuf, PropertiesError> {
        match value.as_str() {
            Some("") => Err(PropertiesError::EmptyMountpoint {
                origin: self.origin(),
                entry,
                field,
            }),
            Some(s) => Ok(PathBuf::from(s)),
            None => Err(self.wrong_type(format!("disks[{entry}].{field}"), "a path", value)),
        }
    }

    /// A rate or size: a YAML integer, or a string for [`parse_size`]; zero is rejected.
    fn nonzero_size(
        &self,
        entry: usize,
        field: &'static str,
        value: &Node,
    ) -> Result<u64, PropertiesError> {
        let invalid = |error| PropertiesError::InvalidSize {
            origin: self.origin(),
            entry,
            field,
            error,
        };
        let size = match &value.value {
            Value::Int(n, text) => match u64::try_from(*n) {
                Ok(v) => v,
                Err(_) if *n < 0 => {
                    return Err(invalid(SizeError::NoDigits { text: text.clone() }))
                }
                Err(_) => return Err(invalid(SizeError::Overflow { text: text.clone() })),
            },
            Value::Float(_, text) => {
                return Err(invalid(SizeError::NotInteger { text: text.clone() }))
            }
            Value::String(s) => parse_size(s).map_err(invalid)?,
            _ => {
                return Err(self.wrong_type(
                    format!("disks[{entry}].{field}"),
                    "an integer with optional suffix (e.g. 4096 or 545M)",
                    value,
                ))
            }
        };
        if size == 0 {
            return Err(PropertiesError::Zero {
                origin: self.origin(),
                entry,
                field,
            });
        }
        Ok(size)
    }

    /// `duplex`: a YAML boolean, or one of the spellings yaml-cpp (the reference) accepts.
    fn duplex(&self, entry: usize, value: &Node) -> Result<bool, PropertiesError> {
        let parsed = match &value.value {
            Value::Bool(b) => Some(*b),
            Value::String(s) => match s.as_str() {
                "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On"
                | "ON" => Some(true),
                "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off"
                | "OFF" => Some(false),
                _ => None,
            },
            _ => None,
        };
        parsed.ok_or_else(|| {
            self.wrong_type(format!("disks[{entry}].duplex"), "true or false", value)
        })
    }

    /// `rate_factor`: a number (or numeric string) that is positive and finite as an `f32`.
    fn rate_factor(&self, entry: usize, value: &Node) -> Result<f64, PropertiesError> {
        let factor = match &value.value {
            Value::Int(n, _) => Some(*n as f64),
            Value::Float(f, _) => Some(*f),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match factor {
            Some(f) if f.is_finite() && (f as f32).is_finite() && (f as f32) > 0.0 => Ok(f),
            _ => Err(PropertiesError::InvalidRateFactor {
                origin: self.origin(),
                entry,
                value: describe(value),
            }),
        }
    }
}

/// Applies `rate_factor` like the reference: in 32-bit floats, rounding the rate to f32
/// precision even when the factor is 1.0. Saturates at `u64::MAX`.
fn apply_rate_factor(rate: u64, factor: f64) -> u64 {
    (rate as f32 * factor as f32) as u64
}

/// A short name for a YAML value's type, for messages.
fn kind(node: &Node) -> &'static str {
    match node.value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Int(..) | Value::Float(..) => "a number",
        Value::String(_) => "a string",
        Value::Seq(_) => "a list",
        Value::Map(_) => "a map",
        Value::Tagged(..) => "a tagged value",
    }
}

/// A value as it appears in messages: scalars as written (control characters escaped),
/// collections by their type.
fn describe(node: &Node) -> String {
    match &node.value {
        Value::Bool(b) => b.to_string(),
        Value::Int(_, text) | Value::Float(_, text) => escape_controls(text).into_owned(),
        Value::String(s) => escape_controls(s).into_owned(),
        _ => kind(node).to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

impl IoProperties {
    /// Renders the file exactly as the reference writer does: `disks:`, then one `  - ` item
    /// per entry with keys in the fixed order `mountpoint`, `read_iops`, `read_bandwidth`,
    /// `write_iops`, `write_bandwidth`, then `read_saturation_length`, `write_saturation_length`
    /// and `physical_block_size` when set, then `duplex: true` when set; 2-space indentation,
    /// integers, trailing newline. Follows Seastar's io-properties format, see
    /// `shared/reference/io-properties.md`.
    ///
    /// Not in the reference writer (it never emits them, but its reader accepts them):
    /// an entry with several mountpoints is written as a block list
    /// (`    mountpoints:\n      - /a\n      - /b`), and `duplex: true`. `rate_factor` is never
    /// written, since the rates already include it.
    ///
    /// Paths made only of letters, digits and `/_.-+@~,=` that start with `/` are written plain,
    /// like the reference; any other path is double-quoted so it reads back unchanged. Non-UTF-8
    /// paths are written lossily. No validation is done: zero rates or an empty `mountpoints`
    /// are written as they are (and the reader will reject them). No disks at all is written as
    /// `disks: []` (a bare `disks:` would read back as null).
    pub fn to_yaml(&self) -> String {
        if self.disks.is_empty() {
            return String::from("disks: []\n");
        }
        let mut out = String::from("disks:\n");
        for disk in &self.disks {
            write_entry(&mut out, disk);
        }
        out
    }

    /// Writes [`IoProperties::to_yaml`] to `path` atomically (see
    /// [`crate::atomic_file::write_atomically`]): readers see either the old file or the
    /// complete new one, never a partial file, and no temporary file is left on error.
    ///
    /// # Errors
    ///
    /// [`PropertiesError::Io`] naming the step and path that failed (e.g. the directory does
    /// not exist, or `path` has no file name).
    #[cfg(feature = "harness")]
    pub fn write_atomically(&self, path: &Path) -> Result<(), PropertiesError> {
        crate::atomic_file::write_atomically(path, self.to_yaml().as_bytes()).map_err(|e| {
            PropertiesError::Io {
                action: e.action,
                path: e.path,
                source: e.source,
            }
        })
    }
}

fn write_entry(out: &mut String, disk: &DiskProperties) {
    // `fmt::Write` for `String` never fails, so the results below are safely ignored.
    match disk.mountpoints.as_slice() {
        [one] => {
            let _ = writeln!(out, "  - mountpoint: {}", yaml_path(one));
        }
        [] => out.push_str("  - mountpoints: []\n"),
        many => {
            out.push_str("  - mountpoints:\n");
            for mp in many {
                let _ = writeln!(out, "      - {}", yaml_path(mp));
            }
        }
    }
    let required = [
        disk.read_iops,
        disk.read_bandwidth,
        disk.write_iops,
        disk.write_bandwidth,
    ];
    for (key, value) in RATE_KEYS.iter().zip(required) {
        let _ = writeln!(out, "    {key}: {value}");
    }
    let optional = [
        ("read_saturation_length", disk.read_saturation_length),
        ("write_saturation_length", disk.write_saturation_length),
        ("physical_block_size", disk.physical_block_size),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            let _ = writeln!(out, "    {key}: {value}");
        }
    }
    if disk.duplex {
        out.push_str("    duplex: true\n");
    }
}

/// A path as a YAML scalar: plain when unambiguous, double-quoted otherwise.
fn yaml_path(path: &Path) -> String {
    let s = path.to_string_lossy();
    let plain = s.starts_with('/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_.-+@~,=".contains(c));
    if plain {
        return s.into_owned();
    }
    let mut quoted = String::with_capacity(s.len() + 2);
    quoted.push('"');
    for c in s.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(quoted, "\\u{:04x}", c as u32);
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_suffixes() {
        let cases = [
            ("4096", 4096),
            ("0", 0),
            ("545M", 545 << 20),
            ("1Gi", 1 << 30),
            ("64kB", 64 << 10),
            ("64K", 64 << 10),
            ("2KiB", 2 << 10),
            ("3T", 3 << 40),
            ("1MiB", 1 << 20),
            ("18446744073709551615", u64::MAX),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn size_errors_show_the_text() {
        let cases = [
            ("12X", "unknown suffix `X`"),
            ("1.5", "not an integer"),
            ("1e3", "not an integer"),
            ("M", "not a non-negative integer"),
            ("-5", "not a non-negative integer"),
            ("12m", "unknown suffix `m`"),
            ("12B", "unknown suffix `B`"),
            ("12Mb", "unknown suffix `Mb`"),
            ("12 M", "unknown suffix ` M`"),
            ("18446744073709551616", "too large"),
            ("16777216T", "too large"),
        ];
        for (text, want) in cases {
            let msg = parse_size(text).unwrap_err().to_string();
            assert!(msg.contains(want) && msg.contains(text), "{text}: {msg}");
        }
        assert_eq!(parse_size(""), Err(SizeError::Empty));
    }

    #[test]
    fn rate_factor_rounds_to_f32() {
        assert_eq!(apply_rate_factor(1_000_000_007, 1.0), 1_000_000_000);
        assert_eq!(apply_rate_factor(1000, 0.5), 500);
        assert_eq!(apply_rate_factor(u64::MAX, 2.0), u64::MAX);
    }

    #[test]
    fn paths_are_quoted_only_when_needed() {
        assert_eq!(yaml_path(Path::new("/var/lib/scylla")), "/var/lib/scylla");
        assert_eq!(yaml_path(Path::new("/mnt/a b")), "\"/mnt/a b\"");
        assert_eq!(yaml_path(Path::new("rel")), "\"rel\"");
        assert_eq!(yaml_path(Path::new("/x\"y")), "\"/x\\\"y\"");
    }
}
