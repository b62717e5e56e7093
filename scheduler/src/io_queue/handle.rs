//! Typed handles of an [`IoQueue`](super::IoQueue) and the errors of using them.
//!
//! Class and group handles carry the identity of the queue that issued them; request and part
//! handles carry a generation. A handle from another queue, or to a request that has already
//! completed, is an error ([`QueueError`]), never a panic and never another request.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::Direction;

/// Identity of one queue, so that handles from another queue are recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct QueueTag(u32);

impl QueueTag {
    /// A tag no other queue of this process has (until 2^32 queues were made).
    pub(crate) fn next() -> QueueTag {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        // Relaxed: only uniqueness matters, which the RMW's modification order gives.
        QueueTag(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// A priority class of one [`IoQueue`](super::IoQueue), from
/// [`IoQueue::add_class`](super::IoQueue::add_class). Cannot be forged; valid only with the
/// queue that issued it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClassId {
    pub(crate) queue: QueueTag,
    pub(crate) index: u32,
}

impl ClassId {
    pub(crate) fn at(queue: QueueTag, index: u32) -> ClassId {
        ClassId { queue, index }
    }

    /// The class's position among its queue's classes (0, 1, ... in registration order): for
    /// the caller's own per-class tables.
    pub fn index(self) -> usize {
        self.index as usize
    }
}

/// A group of classes (and groups) of one [`IoQueue`](super::IoQueue), from
/// [`IoQueue::add_group`](super::IoQueue::add_group).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupId {
    pub(crate) queue: QueueTag,
    pub(crate) index: u32,
}

/// A queued request, from [`IoQueue::queue`](super::IoQueue::queue); stale once the request
/// completed or was cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestId {
    pub(crate) queue: QueueTag,
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl RequestId {
    pub(crate) fn at(queue: QueueTag, index: u32, generation: u32) -> RequestId {
        RequestId {
            queue,
            index,
            generation,
        }
    }
}

/// One dispatched piece of a request (the whole request unless it was split), from
/// [`IoQueue::poll_dispatch`](super::IoQueue::poll_dispatch); report its result with
/// [`IoQueue::complete`](super::IoQueue::complete).
///
/// Fits in a `u64` ([`to_u64`](Self::to_u64)), e.g. an io_uring `user_data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PartId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl PartId {
    /// The handle as one integer, for the caller's completion tags.
    pub fn to_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    /// The handle [`to_u64`](Self::to_u64) gave. Any integer is accepted here; one that names
    /// no dispatched part is rejected by the queue it is used with.
    pub fn from_u64(raw: u64) -> PartId {
        PartId {
            index: raw as u32,
            generation: (raw >> 32) as u32,
        }
    }
}

/// What was wrong with a call to an [`IoQueue`](super::IoQueue).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// A class handle from another queue.
    #[error("class {0:?} does not belong to this queue")]
    ForeignClass(ClassId),
    /// A group handle from another queue.
    #[error("group {0:?} does not belong to this queue")]
    ForeignGroup(GroupId),
    /// A request handle from another queue, or of a request that completed or was cancelled.
    #[error("request {0:?} is not queued or in flight in this queue (completed, cancelled, or from another queue)")]
    UnknownRequest(RequestId),
    /// A part handle that names no dispatched part of this queue (already completed, never
    /// dispatched, or from another queue).
    #[error(
        "part {0:?} is not in flight in this queue (already completed, or from another queue)"
    )]
    UnknownPart(PartId),
    /// A request of zero bytes.
    #[error("a {0} request of 0 bytes cannot be queued")]
    Empty(Direction),
    /// A request that would split into more parts than the queue accepts.
    #[error("a {direction} request of {len} bytes would split into more than {max_parts} parts of at most {max_len} bytes")]
    TooLong {
        /// Read or write.
        direction: Direction,
        /// Request length, bytes.
        len: u64,
        /// The model's maximum length for the direction, bytes.
        max_len: u64,
        /// The most parts one request may have.
        max_parts: u32,
    },
    /// More than 2^32 requests, parts or classes at once.
    #[error("the queue is full: 2^32 live requests, parts or classes")]
    Full,
}

/// A request [`IoQueue::queue`](super::IoQueue::queue) refused, with the caller's token back.
#[derive(Debug)]
pub struct Rejected<T> {
    /// Why.
    pub error: QueueError,
    /// The token that came with the request.
    pub token: T,
}

impl<T> std::fmt::Display for Rejected<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl<T: std::fmt::Debug> std::error::Error for Rejected<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}
