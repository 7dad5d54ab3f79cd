//! Where encoded remote-write batches wait to be sent: the queue seam.
//!
//! The sender only sees [`Queue`]: it reads the oldest batch with [`Queue::front`], and removes it
//! with [`Queue::commit`] only after the receiver accepted it (2xx) or refused it for good
//! (non-retryable 4xx). The in-memory [`MemoryQueue`] is bounded and drops the oldest batches when
//! full; the durable on-disk queue (a later issue) implements the same trait, and is the only
//! code that will touch the disk.

mod memory;

pub use memory::MemoryQueue;

use crate::wire::remote_write::EncodedBatch;

/// A FIFO of encoded batches for one sink.
pub trait Queue: Send {
    /// Appends a batch. If the queue is over its bound afterwards, the oldest batches are removed
    /// (never the one just added) and the number of samples removed is returned.
    fn push(&mut self, batch: EncodedBatch) -> usize;
    /// The oldest batch and its id, still queued (cheap: the body is reference-counted).
    fn front(&self) -> Option<(u64, EncodedBatch)>;
    /// Removes batch `id` if it is still the oldest: it was delivered or refused for good. (It
    /// may be gone already if the bound pushed it out while it was being sent.)
    fn commit(&mut self, id: u64);
    /// Samples waiting, over all batches.
    fn samples(&self) -> usize;
    /// Batches waiting.
    fn batches(&self) -> usize;
}
