//! A bounded in-memory [`Queue`]: the batches live as long as the process.

use std::collections::VecDeque;

use super::Queue;
use crate::wire::remote_write::EncodedBatch;

/// Keeps at most `max_samples` samples (but always the newest batch), dropping the oldest.
pub struct MemoryQueue {
    /// Batches with their ids, oldest first.
    batches: VecDeque<(u64, EncodedBatch)>,
    next_id: u64,
    samples: usize,
    max_samples: usize,
}

impl MemoryQueue {
    pub fn new(max_samples: usize) -> MemoryQueue {
        MemoryQueue {
            batches: VecDeque::new(),
            next_id: 0,
            samples: 0,
            max_samples,
        }
    }
}

impl Queue for MemoryQueue {
    fn push(&mut self, batch: EncodedBatch) -> usize {
        self.samples += batch.samples;
        self.batches.push_back((self.next_id, batch));
        self.next_id += 1;
        let mut dropped = 0;
        while self.samples > self.max_samples && self.batches.len() > 1 {
            // The loop condition guarantees a front element.
            let (_, old) = self.batches.pop_front().expect("len > 1");
            self.samples -= old.samples;
            dropped += old.samples;
        }
        dropped
    }

    fn front(&mut self) -> Option<(u64, EncodedBatch)> {
        self.batches.front().cloned()
    }

    fn front_id(&self) -> Option<u64> {
        self.batches.front().map(|(id, _)| *id)
    }

    fn peek(&mut self, k: usize) -> Option<(u64, EncodedBatch)> {
        self.batches.get(k).cloned()
    }

    fn samples_at(&self, k: usize) -> Option<usize> {
        self.batches.get(k).map(|(_, b)| b.samples)
    }

    fn bytes(&self) -> u64 {
        self.batches.iter().map(|(_, b)| b.body.len() as u64).sum()
    }

    fn oldest_ms(&self) -> Option<i64> {
        self.batches.front().map(|(_, b)| b.oldest_ms)
    }

    fn full_reason(&self) -> &'static str {
        "queue_full"
    }

    fn commit(&mut self, id: u64) {
        if self.batches.front().is_some_and(|(i, _)| *i == id) {
            let (_, b) = self.batches.pop_front().expect("front exists");
            self.samples -= b.samples;
        }
    }

    fn samples(&self) -> usize {
        self.samples
    }

    fn batches(&self) -> usize {
        self.batches.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn batch(n: usize, tag: u8) -> EncodedBatch {
        EncodedBatch {
            samples: n,
            body: Bytes::from(vec![tag]),
            oldest_ms: tag as i64,
        }
    }

    #[test]
    fn fifo_and_bounded_drop_oldest() {
        let mut q = MemoryQueue::new(10);
        assert_eq!(q.push(batch(4, 1)), 0);
        assert_eq!(q.push(batch(4, 2)), 0);
        assert_eq!(q.push(batch(4, 3)), 4, "oldest batch dropped");
        assert_eq!(q.samples(), 8);
        let (id2, b2) = q.front().unwrap();
        assert_eq!(b2.body[0], 2);
        q.commit(id2);
        let (id3, b3) = q.front().unwrap();
        assert_eq!(b3.body[0], 3);
        q.commit(id2);
        assert_eq!(q.batches(), 1, "a stale id commits nothing");
        q.commit(id3);
        assert!(q.front().is_none());
        assert_eq!(q.samples(), 0);
        // A single batch larger than the bound is still kept.
        assert_eq!(q.push(batch(50, 9)), 0);
        assert_eq!(q.batches(), 1);
    }
}
