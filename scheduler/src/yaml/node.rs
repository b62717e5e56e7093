//! The tree: nodes, their values and positions.

use saphyr_parser::Span;

/// A position in the text: 1-based line and 1-based column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Pos {
    pub(super) fn of(span: &Span) -> Pos {
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
    pub(super) entries: Vec<(Node, Node)>,
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
