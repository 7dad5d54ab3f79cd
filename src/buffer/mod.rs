//! Where encoded remote-write batches wait to be sent: the queue seam, in memory or on disk.
//!
//! The sender only sees [`Queue`]: it reads the oldest batch with [`Queue::front`], and removes it
//! with [`Queue::commit`] only after the receiver accepted it (2xx) or refused it for good
//! (non-retryable 4xx). [`DiskQueue`] (the default for `run`) keeps batches in append-only
//! segment files under `state_dir/<sink>/` so they survive restarts, crashes and power cuts;
//! [`MemoryQueue`] serves one-shot commands. Only this module touches the disk.

mod disk;
mod memory;

pub use disk::{DiskQueue, DiskQueueOptions, Fsync};
pub use memory::MemoryQueue;

use crate::wire::remote_write::EncodedBatch;

/// A FIFO of encoded batches for one sink.
pub trait Queue: Send {
    /// Appends a batch. If the queue is over its bound afterwards, the oldest batches are removed
    /// (never the one just added) and the number of samples removed is returned.
    fn push(&mut self, batch: EncodedBatch) -> usize;
    /// The oldest batch and its id, still queued. (A disk queue reads it from its segment; a
    /// record found corrupt there is dropped, counted and the next one returned.)
    fn front(&mut self) -> Option<(u64, EncodedBatch)>;
    /// The id of the oldest batch, without reading it.
    fn front_id(&self) -> Option<u64>;
    /// The batch `k` places behind the oldest (`peek(0)` is what [`Queue::front`] returns when
    /// the front can be read) and its id, if it can be read now. The sender merges the small
    /// batches at the front into one request; a batch behind the front that cannot be read is
    /// left for `front` to deal with when it gets there.
    fn peek(&mut self, k: usize) -> Option<(u64, EncodedBatch)>;
    /// Samples batch `k` places behind the oldest holds, without reading it.
    fn samples_at(&self, k: usize) -> Option<usize>;
    /// Removes batch `id` if it is still the oldest: it was delivered or refused for good. (It
    /// may be gone already if a bound pushed it out while it was being sent.)
    fn commit(&mut self, id: u64);
    /// [`Queue::commit`] for each of `ids`, oldest first. A disk queue moves its cursor once,
    /// and writes it at most every 100 ms; the latest position then waits for the next
    /// [`Queue::sync`] ([`Queue::cursor_pending`] says so).
    fn commit_all(&mut self, ids: &[u64]) {
        for &id in ids {
            self.commit(id);
        }
    }
    /// Whether a moved cursor waits for the next [`Queue::sync`] to be written.
    fn cursor_pending(&self) -> bool {
        false
    }
    /// Samples waiting, over all batches.
    fn samples(&self) -> usize;
    /// Batches waiting.
    fn batches(&self) -> usize;
    /// Bytes the waiting batches take (on disk, or in memory).
    fn bytes(&self) -> u64;
    /// Timestamp of the oldest waiting sample, in ms.
    fn oldest_ms(&self) -> Option<i64>;
    /// Makes appended data durable if the sync policy says it is time (or `force`). The owner
    /// calls it on a timer; a queue that syncs every append does so itself.
    fn sync(&mut self, _force: bool) {}
    /// Corrupt records found since the last call.
    fn take_corruptions(&mut self) -> u64 {
        0
    }
    /// The `reason` label for samples dropped because the queue was full.
    fn full_reason(&self) -> &'static str;
    /// Shows `f` the newest `max` queued batches, oldest first, one at a time (a restarted
    /// sink learns from them the last timestamp queued for each series).
    fn newest(&mut self, _max: usize, _f: &mut dyn FnMut(&EncodedBatch)) {}
    /// Whether new batches go to disk (`Some(false)`: held in memory after a disk failure);
    /// `None` for a queue that is never on disk.
    fn on_disk(&self) -> Option<bool> {
        None
    }
}
