//! The tree built from the parser's events, with aliases replayed and bounded.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use saphyr_parser::{Event, ScalarStyle, Span, Tag};

use super::error::Error;
use super::merge::{describe_key, key_id, KeyId};
use super::node::{Map, Node, Pos, Value};
use super::scalar::scalar;
use super::{ALIAS_BUDGET, CORE_HANDLE, MAX_DEPTH, STOP_CHECK_EVERY};

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
pub(super) struct Builder {
    stack: Vec<Frame>,
    pub(super) root: Option<Node>,
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
    pub(super) fn event(
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
pub(super) fn tag_text(tag: &Tag) -> String {
    if tag.handle == "!" {
        format!("!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    }
}
