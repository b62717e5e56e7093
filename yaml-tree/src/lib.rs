//! One YAML document, parsed once into a tree whose every node and every mapping key keeps its
//! line and column.
//!
//! The project's readers (job files, scheduling groups, io-properties) validate a document by
//! hand so that each error can name the file, the entry, the key and the line. They used to load
//! the text into `serde_yaml::Value`, which keeps no positions, and found lines by parsing the
//! text again for each lookup: quadratic in the file size. Here the YAML grammar is the
//! `saphyr-parser` crate's (a YAML 1.2 parser that reports the span of every event), read once;
//! this crate only builds the tree from its events and resolves scalars.
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

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};

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

/// A position in the text: 1-based line and 1-based column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Pos {
    fn of(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

/// A node of the document.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub value: Value,
    /// Where the node starts: a scalar's first character (its quote, if quoted), a flow
    /// collection's bracket, a block sequence's first `-`, a block mapping's first key.
    pub pos: Pos,
    /// Whether the node was reached through an alias, below the alias itself: `pos` is then
    /// the position in the anchored text. The node an alias stands for has the alias's
    /// position and is not marked; its descendants are.
    pub aliased: bool,
}

/// The value of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `~`, `null`, or nothing.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer, and its text as written (`0x10`, `+5`).
    Int(i128, String),
    /// A float (possibly infinite or NaN), and its text as written.
    Float(f64, String),
    /// A string.
    String(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping.
    Map(Map),
    /// A node with a tag other than the core schema's: the tag (`!x`) and the node.
    Tagged(String, Box<Node>),
}

/// A mapping: its entries in document order, each key a node with its own position.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Map {
    entries: Vec<(Node, Node)>,
}

impl Map {
    /// The value of the string key `key`.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key node and the value of the string key `key`.
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, v)| (k, v))
    }

    /// Whether the string key `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.entry(key).is_some()
    }

    /// The entries in document order (merged entries last).
    pub fn iter(&self) -> impl Iterator<Item = (&Node, &Node)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// The keys in document order.
    pub fn keys(&self) -> impl Iterator<Item = &Node> {
        self.entries.iter().map(|(k, _)| k)
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Node {
    /// The string, if the node is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The mapping, if the node is one.
    pub fn as_map(&self) -> Option<&Map> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The sequence, if the node is one.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the node is null.
    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }
}

/// Why a text could not be loaded. Every variant but [`Error::Interrupted`] has a position.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Not valid YAML; the parser's description.
    #[error("{message}")]
    Syntax {
        /// Where the parser stopped.
        pos: Pos,
        /// What it found wrong.
        message: String,
    },
    /// A key given twice in one mapping.
    #[error("duplicate entry {key}")]
    DuplicateKey {
        /// The second occurrence of the key.
        pos: Pos,
        /// The key as serde_yaml_ng described it: `with key "name"`, `with null key`, ...
        key: String,
    },
    /// A `<<` merge key whose value is not a mapping or a list of mappings.
    #[error("{message}")]
    Merge {
        /// The `<<` key.
        pos: Pos,
        /// What is wrong.
        message: String,
    },
    /// Collections nested more than [`MAX_DEPTH`] levels deep.
    #[error("collections nested more than {MAX_DEPTH} levels deep")]
    TooDeep {
        /// The collection that goes too deep.
        pos: Pos,
    },
    /// Aliases that would expand to more than [`ALIAS_BUDGET`] events.
    #[error("aliases expand to more than {ALIAS_BUDGET} nodes; write the content out or use fewer aliases of large anchors")]
    AliasBudget {
        /// The alias that went over.
        pos: Pos,
    },
    /// An alias inside the very node its anchor names.
    #[error("the alias refers to a node that contains it")]
    RecursiveAlias {
        /// The alias.
        pos: Pos,
    },
    /// A second document in the text.
    #[error("more than one YAML document (`---`); the file must hold one")]
    MultipleDocuments {
        /// The start of the second document.
        pos: Pos,
    },
    /// A scalar that does not fit the core schema tag it was given (`!!int x`).
    #[error("`{text}` is not a valid {expected} (tagged `!!{tag}`)")]
    BadTaggedScalar {
        /// The scalar.
        pos: Pos,
        /// Its text.
        text: String,
        /// The tag's suffix (`int`).
        tag: String,
        /// What the tag asks for ("integer").
        expected: &'static str,
    },
    /// The caller's stop flag was set while loading.
    #[error("interrupted while reading")]
    Interrupted,
}

impl Error {
    /// Where the problem is, if anywhere.
    pub fn pos(&self) -> Option<Pos> {
        match self {
            Error::Syntax { pos, .. }
            | Error::DuplicateKey { pos, .. }
            | Error::Merge { pos, .. }
            | Error::TooDeep { pos }
            | Error::AliasBudget { pos }
            | Error::RecursiveAlias { pos }
            | Error::MultipleDocuments { pos }
            | Error::BadTaggedScalar { pos, .. } => Some(*pos),
            Error::Interrupted => None,
        }
    }
}

impl From<ScanError> for Error {
    fn from(e: ScanError) -> Self {
        Error::Syntax {
            pos: Pos {
                line: e.marker().line(),
                column: e.marker().col() + 1,
            },
            message: e.info().to_owned(),
        }
    }
}

/// A scan error, pointing at the offending tab when the parser complains about one: it reports
/// the start of the token it was scanning, which can be the line before.
fn syntax_error(text: &str, e: &ScanError) -> Error {
    let mut error = Error::from(e.clone());
    if let Error::Syntax { pos, message } = &mut error {
        if message.contains("tab") {
            if let Some(tab) = first_tab_from(text, e.marker().index()) {
                *pos = tab;
            }
        }
    }
    error
}

/// The position of the first tab at or after character `index` of `text`.
fn first_tab_from(text: &str, index: usize) -> Option<Pos> {
    let (mut line, mut column) = (1, 1);
    for (i, c) in text.chars().enumerate() {
        if i >= index && c == '\t' {
            return Some(Pos { line, column });
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    None
}

thread_local! {
    static LOADS: Cell<usize> = const { Cell::new(0) };
}

/// How many texts [`load`] has parsed on this thread: lets tests check that a reader parses
/// its file once, whatever its size.
#[doc(hidden)]
pub fn loads_on_this_thread() -> usize {
    LOADS.with(Cell::get)
}

/// Parses `text` as one YAML document; see the crate documentation for what the tree holds.
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
// ---------------------------------------------------------------------------------------------

/// An event kept for the replay of aliases, with its position. The text is owned: events
/// borrow from the input only for as long as the parser lives.
#[derive(Debug, Clone)]
enum Recorded {
    Scalar(String, ScalarStyle, Option<Tag>),
    SeqStart(Option<Tag>),
    MapStart(Option<Tag>),
    End,
    Alias(usize),
}

/// A collection being built.
struct Frame {
    pos: Pos,
    aliased: bool,
    anchor: usize,
    tag: Option<Tag>,
    kind: FrameKind,
}

enum FrameKind {
    Seq(Vec<Node>),
    Map {
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        seen: HashSet<KeyId>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    /// Events of anchored nodes, kept for aliases: recorded while an anchored node is open.
    recorded: Vec<(Recorded, Pos)>,
    /// How many anchored collections are open.
    recording: usize,
    /// Anchor id -> its range of `recorded`, once the anchored node is complete.
    anchors: HashMap<usize, (usize, usize)>,
    /// Anchor id -> start in `recorded`, for anchored collections still open.
    open_anchors: HashMap<usize, usize>,
    /// Events replayed for aliases so far.
    replayed: usize,
    /// Documents started so far.
    documents: usize,
}

impl Builder {
    /// Takes one parser event; `true` at the end of the stream.
    fn event(
        &mut self,
        event: Event<'_>,
        span: Span,
        stop: Option<&AtomicBool>,
    ) -> Result<bool, Error> {
        let pos = Pos::of(&span);
        let seq = matches!(event, Event::SequenceStart(..));
        match event {
            Event::StreamEnd => return Ok(true),
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(Error::MultipleDocuments { pos });
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let tag = tag.map(std::borrow::Cow::into_owned);
                if self.recording > 0 || anchor > 0 {
                    let at = self.recorded.len();
                    self.recorded
                        .push((Recorded::Scalar(text.to_string(), style, tag.clone()), pos));
                    if anchor > 0 {
                        self.anchors.insert(anchor, (at, at + 1));
                    }
                }
                self.attach(scalar(&text, style, tag.as_ref(), pos, false)?)?;
            }
            Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag) => {
                let tag = tag.map(std::borrow::Cow::into_owned);
                if anchor > 0 {
                    self.open_anchors.insert(anchor, self.recorded.len());
                    self.recording += 1;
                }
                if self.recording > 0 {
                    let start = if seq {
                        Recorded::SeqStart(tag.clone())
                    } else {
                        Recorded::MapStart(tag.clone())
                    };
                    self.recorded.push((start, pos));
                }
                self.open(seq, anchor, tag, pos, false)?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if self.recording > 0 {
                    self.recorded.push((Recorded::End, pos));
                }
                let anchor = self.close()?;
                if anchor > 0 {
                    if let Some(start) = self.open_anchors.remove(&anchor) {
                        self.anchors.insert(anchor, (start, self.recorded.len()));
                    }
                    self.recording = self.recording.saturating_sub(1);
                }
            }
            Event::Alias(id) => {
                if self.recording > 0 {
                    self.recorded.push((Recorded::Alias(id), pos));
                }
                self.replay(id, pos, stop)?;
            }
        }
        Ok(false)
    }

    /// Starts a collection.
    fn open(
        &mut self,
        seq: bool,
        anchor: usize,
        tag: Option<Tag>,
        pos: Pos,
        aliased: bool,
    ) -> Result<(), Error> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(Error::TooDeep { pos });
        }
        let kind = if seq {
            FrameKind::Seq(Vec::new())
        } else {
            FrameKind::Map {
                entries: Vec::new(),
                key: None,
                seen: HashSet::new(),
            }
        };
        self.stack.push(Frame {
            pos,
            aliased,
            anchor,
            tag,
            kind,
        });
        Ok(())
    }

    /// Ends the innermost collection and adds it to its parent; returns its anchor id (0: none).
    fn close(&mut self) -> Result<usize, Error> {
        let Some(frame) = self.stack.pop() else {
            // The parser never ends a collection it did not start.
            return Ok(0);
        };
        let value = match frame.kind {
            FrameKind::Seq(items) => Value::Seq(items),
            FrameKind::Map { entries, key, .. } => {
                let mut entries = entries;
                if let Some(key) = key {
                    // The parser always gives a value after a key; keep the key all the same.
                    let pos = key.pos;
                    entries.push((
                        key,
                        Node {
                            value: Value::Null,
                            pos,
                            aliased: frame.aliased,
                        },
                    ));
                }
                Value::Map(Map { entries })
            }
        };
        let node = Node {
            value,
            pos: frame.pos,
            aliased: frame.aliased,
        };
        self.attach(tagged(node, frame.tag.as_ref()))?;
        Ok(frame.anchor)
    }

    /// Adds a complete node to the collection being built (or makes it the root).
    fn attach(&mut self, node: Node) -> Result<(), Error> {
        let Some(frame) = self.stack.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        match &mut frame.kind {
            FrameKind::Seq(items) => items.push(node),
            FrameKind::Map { entries, key, seen } => match key.take() {
                None => {
                    let id = key_id(&node);
                    if !seen.insert(id) {
                        return Err(Error::DuplicateKey {
                            pos: node.pos,
                            key: describe_key(&node),
                        });
                    }
                    *key = Some(node);
                }
                Some(k) => entries.push((k, node)),
            },
        }
        Ok(())
    }

    /// Adds the node anchored as `id` again, from its recorded events, at `alias_pos`.
    fn replay(
        &mut self,
        id: usize,
        alias_pos: Pos,
        stop: Option<&AtomicBool>,
    ) -> Result<(), Error> {
        let Some(&(start, end)) = self.anchors.get(&id) else {
            return Err(if self.open_anchors.contains_key(&id) {
                Error::RecursiveAlias { pos: alias_pos }
            } else {
                Error::Syntax {
                    pos: alias_pos,
                    message: "unknown anchor".to_owned(),
                }
            });
        };
        let mut cursors = vec![(start, end)];
        let mut first = true;
        while let Some(cursor) = cursors.last_mut() {
            if cursor.0 >= cursor.1 {
                cursors.pop();
                continue;
            }
            let at = cursor.0;
            cursor.0 += 1;
            self.replayed += 1;
            if self.replayed > ALIAS_BUDGET {
                return Err(Error::AliasBudget { pos: alias_pos });
            }
            if self.replayed % STOP_CHECK_EVERY == 0
                && stop.is_some_and(|s| s.load(Ordering::Relaxed))
            {
                return Err(Error::Interrupted);
            }
            let Some((event, recorded_pos)) = self.recorded.get(at).cloned() else {
                break;
            };
            // The node the alias stands for is at the alias; what it contains is where the
            // anchored text has it.
            let (pos, aliased) = if first {
                (alias_pos, false)
            } else {
                (recorded_pos, true)
            };
            first = false;
            match event {
                Recorded::Scalar(text, style, tag) => {
                    self.attach(scalar(&text, style, tag.as_ref(), pos, aliased)?)?;
                }
                Recorded::SeqStart(tag) => self.open(true, 0, tag, pos, aliased)?,
                Recorded::MapStart(tag) => self.open(false, 0, tag, pos, aliased)?,
                Recorded::End => {
                    self.close()?;
                }
                Recorded::Alias(inner) => match self.anchors.get(&inner) {
                    Some(&range) => cursors.push(range),
                    None => return Err(Error::RecursiveAlias { pos: recorded_pos }),
                },
            }
        }
        Ok(())
    }
}

/// Wraps `node` in [`Value::Tagged`] for a tag outside the core schema.
fn tagged(node: Node, tag: Option<&Tag>) -> Node {
    match tag {
        Some(t) if t.handle != CORE_HANDLE => Node {
            pos: node.pos,
            aliased: node.aliased,
            value: Value::Tagged(tag_text(t), Box::new(node)),
        },
        _ => node,
    }
}

/// A tag as written: `!x` for a local tag, the full tag otherwise.
fn tag_text(tag: &Tag) -> String {
    if tag.handle == "!" {
        format!("!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    }
}

/// Resolves a scalar as serde_yaml_ng did (see the crate documentation).
fn scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
    pos: Pos,
    aliased: bool,
) -> Result<Node, Error> {
    let node = |value| Node {
        value,
        pos,
        aliased,
    };
    let plain = style == ScalarStyle::Plain;
    let Some(tag) = tag else {
        return Ok(node(if plain {
            resolve_plain(text)
        } else {
            Value::String(text.to_owned())
        }));
    };
    if tag.handle != CORE_HANDLE {
        let inner = if plain {
            resolve_plain(text)
        } else {
            Value::String(text.to_owned())
        };
        return Ok(node(Value::Tagged(tag_text(tag), Box::new(node(inner)))));
    }
    let bad = |expected| Error::BadTaggedScalar {
        pos,
        text: text.to_owned(),
        tag: tag.suffix.clone(),
        expected,
    };
    let value = match tag.suffix.as_str() {
        "bool" => Value::Bool(parse_bool(text).ok_or_else(|| bad("boolean"))?),
        "int" => Value::Int(
            parse_int(text).ok_or_else(|| bad("integer"))?,
            text.to_owned(),
        ),
        "float" => Value::Float(
            parse_f64(text).ok_or_else(|| bad("float"))?,
            text.to_owned(),
        ),
        "null" if parse_null(text) => Value::Null,
        "null" => return Err(bad("null")),
        _ => Value::String(text.to_owned()),
    };
    Ok(node(value))
}

/// An untagged plain scalar.
fn resolve_plain(text: &str) -> Value {
    if text.is_empty() || parse_null(text) {
        return Value::Null;
    }
    if let Some(b) = parse_bool(text) {
        return Value::Bool(b);
    }
    if let Some(i) = parse_int(text) {
        return Value::Int(i, text.to_owned());
    }
    if !digits_but_not_number(text) {
        if let Some(f) = parse_f64(text) {
            return Value::Float(f, text.to_owned());
        }
    }
    Value::String(text.to_owned())
}

fn parse_null(text: &str) -> bool {
    matches!(text, "null" | "Null" | "NULL" | "~")
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// An integer as serde_yaml_ng read one: optional sign, then decimal digits (not with a
/// leading zero), or `0x`, `0o`, `0b` digits; `None` if it does not fit in an `i128`.
fn parse_int(text: &str) -> Option<i128> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(d) = unsigned.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = unsigned.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = unsigned.strip_prefix("0b") {
        (2, d)
    } else {
        if digits_but_not_number(text) {
            return None;
        }
        (10, unsigned)
    };
    // from_str_radix would take a second sign.
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = i128::from_str_radix(digits, radix).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

fn parse_f64(text: &str) -> Option<f64> {
    let unsigned = match text.strip_prefix('+') {
        Some(u) if u.starts_with(['+', '-']) => return None,
        Some(u) => u,
        None => text,
    };
    match unsigned {
        ".inf" | ".Inf" | ".INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    unsigned.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Leading zeros followed by digits: a string in YAML 1.2.
fn digits_but_not_number(text: &str) -> bool {
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    t.len() > 1 && t.starts_with('0') && t[1..].bytes().all(|b| b.is_ascii_digit())
}

/// What makes two mapping keys the same.
#[derive(Debug, Hash, PartialEq, Eq)]
enum KeyId {
    Null,
    Bool(bool),
    Int(i128),
    Float(u64),
    Str(String),
    /// A collection or tagged key, written out.
    Other(String),
}

fn key_id(node: &Node) -> KeyId {
    match &node.value {
        Value::Null => KeyId::Null,
        Value::Bool(b) => KeyId::Bool(*b),
        Value::Int(i, _) => KeyId::Int(*i),
        Value::Float(f, _) => KeyId::Float(f.to_bits()),
        Value::String(s) => KeyId::Str(s.clone()),
        _ => {
            let mut out = String::new();
            write_canonical(&mut out, node);
            KeyId::Other(out)
        }
    }
}

/// A node written out unambiguously (for comparing collection keys).
fn write_canonical(out: &mut String, node: &Node) {
    use fmt::Write as _;
    // Writing to a String cannot fail.
    let _ = match &node.value {
        Value::Null => write!(out, "~"),
        Value::Bool(b) => write!(out, "b{b}"),
        Value::Int(i, _) => write!(out, "i{i}"),
        Value::Float(f, _) => write!(out, "f{}", f.to_bits()),
        Value::String(s) => write!(out, "s{s:?}"),
        Value::Seq(items) => {
            out.push('[');
            for item in items {
                write_canonical(out, item);
                out.push(',');
            }
            write!(out, "]")
        }
        Value::Map(map) => {
            out.push('{');
            for (k, v) in &map.entries {
                write_canonical(out, k);
                out.push(':');
                write_canonical(out, v);
                out.push(',');
            }
            write!(out, "}}")
        }
        Value::Tagged(tag, inner) => {
            let _ = write!(out, "t{tag:?}");
            write_canonical(out, inner);
            Ok(())
        }
    };
}

/// A repeated key as serde_yaml_ng described it.
fn describe_key(node: &Node) -> String {
    match &node.value {
        Value::Null => "with null key".to_owned(),
        Value::Bool(b) => format!("with key `{b}`"),
        Value::Int(_, text) | Value::Float(_, text) => format!("with key {text}"),
        Value::String(s) => format!("with key {s:?}"),
        _ => "in YAML map".to_owned(),
    }
}

/// Expands `<<` merge keys, innermost first, as serde_yaml_ng's `apply_merge` did: the
/// entries of the merged mapping (or of each mapping of a merged list, earlier ones first) are
/// added unless the mapping has their key already.
fn apply_merges(node: &mut Node) -> Result<(), Error> {
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().try_for_each(apply_merges),
        Value::Tagged(_, inner) => apply_merges(inner),
        Value::Map(map) => {
            for (_, v) in &mut map.entries {
                apply_merges(v)?;
            }
            let Some(at) = map
                .entries
                .iter()
                .position(|(k, _)| k.as_str() == Some("<<"))
            else {
                return Ok(());
            };
            let (key, value) = map.entries.remove(at);
            let merge_err = |message: &str| Error::Merge {
                pos: key.pos,
                message: message.to_owned(),
            };
            let sources = match value.value {
                Value::Map(m) => vec![m],
                Value::Seq(items) => items
                    .into_iter()
                    .map(|item| match item.value {
                        Value::Map(m) => Ok(m),
                        Value::Seq(_) => Err(merge_err(
                            "expected a mapping for merging, but found sequence",
                        )),
                        Value::Tagged(..) => Err(merge_err("unexpected tagged value in merge")),
                        _ => Err(merge_err(
                            "expected a mapping for merging, but found scalar",
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Value::Tagged(..) => return Err(merge_err("unexpected tagged value in merge")),
                _ => {
                    return Err(merge_err(
                        "expected a mapping or list of mappings for merging, but found scalar",
                    ))
                }
            };
            let mut present: HashSet<KeyId> = map.entries.iter().map(|(k, _)| key_id(k)).collect();
            for source in sources {
                for (k, v) in source.entries {
                    if present.insert(key_id(&k)) {
                        map.entries.push((k, v));
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
