//! Why a text could not be loaded, with its position.

use saphyr_parser::ScanError;

use super::node::Pos;
use super::{ALIAS_BUDGET, MAX_DEPTH};

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
pub(super) fn syntax_error(text: &str, e: &ScanError) -> Error {
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
