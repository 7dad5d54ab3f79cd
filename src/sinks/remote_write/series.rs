//! What a remote-write sink admits into a batch: a sample younger than `buffer.max_age`
//! (receivers refuse older ones) and newer than the last sample queued for its series
//! (receivers refuse out-of-order samples, and with them the whole batch: after the wall clock
//! jumps back, a series waits until the clock passes its last sample again).
//!
//! One sender and a FIFO queue send samples in the order they were admitted, so "last queued"
//! is "last sent". The memory is a 64-bit hash per series and its last timestamp (about 20
//! bytes each); a series whose last sample is older than `max_age` is forgotten (any sample
//! still admitted is newer anyway), and past [`MAX_SERIES`] the oldest half is forgotten.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::LazyLock;

use crate::model::Labels;
use crate::wire::remote_write::{for_each_series, EncodedBatch};

/// Series remembered at most (about 10 MiB).
pub const MAX_SERIES: usize = 1 << 19;

/// Why a sample was not admitted: the `reason` of `pushrelay_samples_dropped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooOld,
    OutOfOrder,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::TooOld => "too_old",
            Refusal::OutOfOrder => "out_of_order",
        }
    }
}

/// The last timestamp admitted per series.
pub struct LastSent {
    last: HashMap<u64, i64, SeriesMapHasher>,
    max: usize,
}

/// The hasher of maps keyed by [`series_hash`]es (already well mixed: a fast one is enough).
pub type SeriesMapHasher = foldhash::fast::RandomState;

/// The seed of [`series_hash`]: one per process, drawn at random (the hashes only live in
/// memory, and a scraped target cannot choose series that collide).
static SERIES_HASHER: LazyLock<foldhash::quality::FixedState> = LazyLock::new(|| {
    foldhash::quality::FixedState::with_seed(
        std::collections::hash_map::RandomState::new().hash_one(0u8),
    )
});

/// A 64-bit hash of series `name{labels}`, the same for every sink of a process.
pub fn series_hash(name: &str, labels: &Labels) -> u64 {
    SERIES_HASHER.hash_one((name, labels))
}

impl Default for LastSent {
    fn default() -> Self {
        LastSent::with_capacity_limit(MAX_SERIES)
    }
}

impl LastSent {
    pub fn with_capacity_limit(max: usize) -> LastSent {
        LastSent {
            last: HashMap::default(),
            max: max.max(2),
        }
    }

    /// Admits a sample at `ts` (and remembers it) unless it is older than `cutoff_ms` or not
    /// newer than the last admitted sample of its series.
    pub fn admit(
        &mut self,
        name: &str,
        labels: &Labels,
        ts: i64,
        cutoff_ms: i64,
    ) -> Result<(), Refusal> {
        if ts < cutoff_ms {
            return Err(Refusal::TooOld);
        }
        let h = series_hash(name, labels);
        match self.last.get_mut(&h) {
            Some(t) if *t >= ts => return Err(Refusal::OutOfOrder),
            Some(t) => *t = ts,
            None => {
                if self.last.len() >= self.max {
                    self.forget_oldest_half();
                }
                self.last.insert(h, ts);
            }
        }
        Ok(())
    }

    /// Learns the last timestamp of every series in a batch already queued (at start, from
    /// the queue a previous run left).
    pub fn learn(&mut self, batch: &EncodedBatch) {
        // Borrowed from the decompressed body: one allocation per series (its label set).
        let Ok(raw) = snap::raw::Decoder::new().decompress_vec(&batch.body) else {
            return;
        };
        let mut pairs = Vec::new();
        let _ = for_each_series(&raw, &mut pairs, |name, pairs, newest| {
            let Some(last) = newest else {
                return;
            };
            let Ok(labels) = Labels::from_pairs_in_place(pairs) else {
                return;
            };
            if self.last.len() >= self.max {
                self.forget_oldest_half();
            }
            let t = self.last.entry(series_hash(name, &labels)).or_insert(last);
            *t = (*t).max(last);
        });
    }

    /// Forgets the series whose last sample is older than `cutoff_ms`: every sample admitted
    /// from now on is newer than that anyway.
    pub fn forget_older_than(&mut self, cutoff_ms: i64) {
        self.last.retain(|_, t| *t >= cutoff_ms);
    }

    fn forget_oldest_half(&mut self) {
        let mut ts: Vec<i64> = self.last.values().copied().collect();
        let mid = ts.len() / 2;
        let (_, &mut median, _) = ts.select_nth_unstable(mid);
        self.last.retain(|_, t| *t > median);
        if self.last.len() >= self.max {
            // All at one timestamp: forget arbitrarily.
            let mut kept = 0;
            self.last.retain(|_, _| {
                kept += 1;
                kept <= mid
            });
        }
    }

    /// Series remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.last.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(v: &str) -> Labels {
        Labels::from_pairs([("job", v)]).unwrap()
    }

    #[test]
    fn refuses_old_and_out_of_order_per_series() {
        let mut s = LastSent::default();
        assert_eq!(s.admit("a", &l("x"), 1000, 0), Ok(()));
        assert_eq!(s.admit("a", &l("x"), 1000, 0), Err(Refusal::OutOfOrder));
        assert_eq!(s.admit("a", &l("x"), 900, 0), Err(Refusal::OutOfOrder));
        assert_eq!(s.admit("a", &l("y"), 900, 0), Ok(()), "another series");
        assert_eq!(s.admit("b", &l("x"), 900, 0), Ok(()), "another name");
        assert_eq!(s.admit("a", &l("x"), 1001, 0), Ok(()));
        assert_eq!(s.admit("c", &l("x"), 99, 100), Err(Refusal::TooOld));
        assert_eq!(s.len(), 3, "a refused sample is not remembered");
        s.forget_older_than(1000);
        assert_eq!(s.len(), 1);
        assert_eq!(s.admit("a", &l("y"), 901, 0), Ok(()), "forgotten");
    }

    /// What a previous run queued counts: a restart with the clock set back does not queue
    /// samples older than those.
    #[test]
    fn learns_from_queued_batches() {
        let mut b = crate::wire::remote_write::BatchBuilder::new();
        b.add("a", &l("x"), 1000, 1.0);
        b.add("a", &l("x"), 3000, 1.0);
        b.add("b", &Labels::new(), 2000, 1.0);
        let mut s = LastSent::default();
        s.learn(&b.finish());
        assert_eq!(s.admit("a", &l("x"), 2500, 0), Err(Refusal::OutOfOrder));
        assert_eq!(
            s.admit("b", &Labels::new(), 2000, 0),
            Err(Refusal::OutOfOrder)
        );
        assert_eq!(s.admit("a", &l("x"), 3001, 0), Ok(()));
        assert_eq!(s.admit("a", &l("y"), 1, 0), Ok(()));
    }

    #[test]
    fn bounded() {
        let mut s = LastSent::with_capacity_limit(100);
        for i in 0..1000 {
            s.admit("m", &l(&i.to_string()), i, 0).unwrap();
            assert!(s.len() <= 100);
        }
        // The newest are kept.
        assert_eq!(s.admit("m", &l("999"), 999, 0), Err(Refusal::OutOfOrder));
        let mut same = LastSent::with_capacity_limit(10);
        for i in 0..50 {
            same.admit("m", &l(&i.to_string()), 5, 0).unwrap();
            assert!(same.len() <= 10);
        }
    }
}
