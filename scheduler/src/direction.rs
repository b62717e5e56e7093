//! The direction of a request, shared by the cost model, the queues and the engine.

use serde::{Deserialize, Serialize};

/// Read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// A read (`pread`, `IORING_OP_READ`).
    Read,
    /// A write (`pwrite`, `IORING_OP_WRITE`).
    Write,
}

impl Direction {
    /// "read" or "write", as in reports and messages.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Read => "read",
            Direction::Write => "write",
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
