//! The direction of a request, shared by the cost model, the queues and the engine.

use serde::Serialize;

/// Read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// A read (`pread`, `IORING_OP_READ`).
    Read,
    /// A write (`pwrite`, `IORING_OP_WRITE`).
    Write,
}
