//! One YAML document, parsed once into a tree whose every node and every mapping key keeps its
//! line and column.
//!
//! The project's readers (job files, scheduling groups, io-properties) validate a document by
//! hand so that each error can name the file, the entry, the key and the line. They used to load
//! the text into `serde_yaml::Value`, which keeps no positions, and found lines by parsing the
//! text again for each lookup: quadratic in the file size. Here the YAML grammar is the
//! `saphyr-parser` crate's (a YAML 1.2 parser that reports the span of every event), read once;
//! this module only builds the tree from its events and resolves scalars.
//!
//! What the tree holds is what `serde_yaml_ng` made of the same text, so the readers behave as
//! before:
//!
//! - plain scalars resolve like serde_yaml_ng's: `~`, `null`, `Null`, `NULL` and the empty
//!   scalar are null; `true`/`True`/`TRUE`/`false`/`False`/`FALSE` are booleans; decimal,
//!   `0x`, `0o` and `0b` integers (with a sign) are integers, except digits with a leading zero
//!   (`007`, a string); other numbers, `.inf` and `.nan` are floats; the rest are strings.
//!   Quoted and block scalars are strings. `!!str`, `!!int`, `!!float`, `!!bool` and `!!null`
//!   force a type; any other tag makes a [`Value::Tagged`] node;
//! - a key repeated in a mapping is an error, at the repeated key;
//! - `<<` merge keys are expanded: the entries of the mapping (or list of mappings) it names are
//!   added to the mapping that holds it, unless that mapping has the key already;
//! - one document at most; an empty text is a null document.
//!
//! Where saphyr-parser's grammar differs from libyaml's (serde_yaml_ng's): a tab alone between
//! `:` and a plain value (`key:<TAB>value`) is refused, with its line and column. Syntax errors
//! point where libyaml's did, or at the start of the offending token (an unclosed quote: its
//! opening quote); errors about a tab point at the tab.
//!
//! And what a hostile text cannot do: nest deeper than [`MAX_DEPTH`], expand aliases into more
//! than [`ALIAS_BUDGET`] events (a "billion laughs"), or go on once the caller's stop flag is set
//! (read every few thousand events and every 65536 characters scanned). Nodes reached through an
//! alias are marked ([`Node::aliased`]): their positions are those of the anchored text, not of
//! the alias.
//!
//! Readers refuse texts over [`MAX_INPUT_BYTES`]; [`read_file`] reads at most that much. Time is
//! linear in the text (a 15 MiB job file in block style: 0.3 s of parsing, 18 MB). One flow
//! collection spanning megabytes costs more memory: the parser keeps its tokens until its end,
//! since it could still turn out to be a key (about 100 bytes per token, 1.3 GB for a 15 MiB
//! `[1, 1, ...]`).

mod builder;
mod error;
mod file;
mod merge;
mod node;
mod scalar;

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

use saphyr_parser::Parser;

use self::builder::Builder;
use self::error::syntax_error;
use self::merge::apply_merges;

pub use self::error::Error;
pub use self::file::{escape_controls, read_file, ReadError};
pub use self::node::{Map, Node, Pos, Value};

/// The largest text the project's readers accept: 16 MiB. A job file of that size already
/// holds about 100000 jobs; anything larger is taken for the wrong file.
pub const MAX_INPUT_BYTES: usize = 16 << 20;

/// How deeply collections may nest (the limit serde_yaml_ng applied before).
pub const MAX_DEPTH: usize = 128;

/// How many events the replay of aliases may produce in one document, in all.
pub const ALIAS_BUDGET: usize = 1_000_000;

/// The stop flag is read once per this many events.
const STOP_CHECK_EVERY: usize = 4096;

/// The stop flag is also read once per this many characters scanned.
const STOP_CHECK_CHARS: usize = 1 << 16;

/// The characters of the text, ending early (for good) once the stop flag is set.
struct StopChars<'a> {
    chars: std::str::Chars<'a>,
    stop: Option<&'a AtomicBool>,
    countdown: usize,
    stopped: bool,
}

impl Iterator for StopChars<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        if self.stopped {
            return None;
        }
        if let Some(stop) = self.stop {
            self.countdown -= 1;
            if self.countdown == 0 {
                self.countdown = STOP_CHECK_CHARS;
                if stop.load(Ordering::Relaxed) {
                    self.stopped = true;
                    return None;
                }
            }
        }
        self.chars.next()
    }
}

/// The core schema's tag handle (`!!`).
const CORE_HANDLE: &str = "tag:yaml.org,2002:";

thread_local! {
    static LOADS: Cell<usize> = const { Cell::new(0) };
}

/// How many texts [`load`] has parsed on this thread: lets tests check that a reader parses
/// its file once, whatever its size.
#[doc(hidden)]
pub fn loads_on_this_thread() -> usize {
    LOADS.with(Cell::get)
}

/// Parses `text` as one YAML document; see the module documentation for what the tree holds.
/// `stop`, when given, is read every few thousand events: once it is set, loading ends with
/// [`Error::Interrupted`].
///
/// # Errors
///
/// [`Error`] with the position of the problem: invalid YAML, a duplicate key, a bad merge key,
/// nesting deeper than [`MAX_DEPTH`], aliases over [`ALIAS_BUDGET`], a recursive alias, a second
/// document, a scalar that does not fit its `!!` tag; or [`Error::Interrupted`].
pub fn load(text: &str, stop: Option<&AtomicBool>) -> Result<Node, Error> {
    LOADS.with(|n| n.set(n.get() + 1));
    let stopped = || stop.is_some_and(|s| s.load(Ordering::Relaxed));
    // The parser reads through `StopChars`, which ends the text early once `stop` is set: the
    // scanner reads a flow collection to its end before the first event of it (a flow
    // collection may be a key), and a 16 MiB one takes seconds.
    let mut parser = Parser::new_from_iter(StopChars {
        chars: text.chars(),
        stop,
        countdown: STOP_CHECK_CHARS,
        stopped: false,
    });
    let mut builder = Builder::default();
    let mut count = 0usize;
    while let Some(next) = parser.next_event() {
        let (event, span) = match next {
            Ok(next) => next,
            Err(_) if stopped() => return Err(Error::Interrupted),
            Err(e) => return Err(syntax_error(text, &e)),
        };
        count += 1;
        if count % STOP_CHECK_EVERY == 0 && stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Err(Error::Interrupted);
        }
        if builder.event(event, span, stop)? {
            break;
        }
    }
    if stopped() {
        return Err(Error::Interrupted);
    }
    let mut root = builder.root.unwrap_or(Node {
        value: Value::Null,
        pos: Pos { line: 1, column: 1 },
        aliased: false,
    });
    apply_merges(&mut root)?;
    Ok(root)
}

#[cfg(test)]
mod tests;
