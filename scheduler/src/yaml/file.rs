//! Reading a file for the readers, bounded in size; echoing its text safely.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Reads the file at `path` as UTF-8 text, refusing more than `limit` bytes without reading
/// them (a regular file is judged by its size, anything else stops after `limit + 1` bytes).
///
/// # Errors
///
/// [`ReadError::Io`] if the file cannot be read or is not UTF-8 (the error `read_to_string`
/// gives), [`ReadError::TooLarge`] if it holds more than `limit` bytes.
pub fn read_file(path: &Path, limit: usize) -> Result<String, ReadError> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    let limit64 = u64::try_from(limit).unwrap_or(u64::MAX);
    if meta.is_file() && meta.len() > limit64 {
        return Err(ReadError::TooLarge {
            size: Some(meta.len()),
            limit,
        });
    }
    let mut bytes = Vec::new();
    file.take(limit64.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() > limit {
        return Err(ReadError::TooLarge { size: None, limit });
    }
    String::from_utf8(bytes).map_err(|_| {
        ReadError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ))
    })
}

/// Why [`read_file`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Opening or reading failed, or the content is not UTF-8.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// More than `limit` bytes.
    #[error("{} {}", describe_size(*size), describe_limit(*limit))]
    TooLarge {
        /// The file's size when known (a regular file), `None` for a pipe or device.
        size: Option<u64>,
        /// The limit it exceeds.
        limit: usize,
    },
}

/// "the file has 52428800 bytes (50.0 MiB)," or, when its size is unknown, "the file has".
fn describe_size(size: Option<u64>) -> String {
    match size {
        Some(n) => format!(
            "the file has {n} bytes ({:.1} MiB),",
            n as f64 / f64::from(1u32 << 20)
        ),
        None => "the file has".to_owned(),
    }
}

/// "more than the 16 MiB limit" in whole MiB when it is a whole number of MiB.
fn describe_limit(limit: usize) -> String {
    if limit % (1 << 20) == 0 {
        format!("more than the {} MiB limit", limit >> 20)
    } else {
        format!("more than the {limit}-byte limit")
    }
}

/// `text` with every control character escaped (`\u{0}`, `\n`, `\u{1b}`), for messages that
/// quote a document's or the user's text: a name with a NUL or an escape sequence must not
/// reach a terminal or a log raw.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

// ---------------------------------------------------------------------------------------------
// Building the tree from events
