//! The durable queue: encoded batches in append-only segment files, a committed read position.
//!
//! Layout under the sink's directory (`state_dir/<sink>/`):
//! - `<20-digit sequence>.seg`: segments of about `segment_bytes`, written append-only, never
//!   rewritten. Each record is `[u32 LE payload length][u32 LE CRC32C of payload][payload]`,
//!   payload = `[u32 LE samples][i64 LE oldest sample ms][snappy remote-write body]`.
//! - `cursor`: `<segment> <offset>` of the first record not yet delivered, replaced atomically
//!   (write a temporary file, rename) each time the front moves.
//! - `lock`: held (`flock`) while a relay uses the directory, so two relays never share it.
//!
//! On open, the segments after the cursor are scanned record by record; a torn or corrupt tail
//! (power cut mid-write) is cut off, counted and logged once, and the queue goes on with what was
//! good. Only small per-record index entries stay in memory; bodies are read back from disk one
//! batch at a time. If the directory cannot be written (disk full, read-only), batches are kept in
//! memory from then on (within the same bounds), said once in the log.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;

use super::Queue;
use crate::wire::remote_write::EncodedBatch;

/// Record header: payload length and CRC32C.
const HEADER: u64 = 8;
/// Payload prefix: samples and oldest timestamp.
const META: usize = 12;
/// A record claiming to be larger than this is corrupt (batches are far smaller).
const MAX_RECORD: u32 = 64 << 20;

/// When appended data is forced to the storage device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// After every append and cursor move: nothing acknowledged is lost on a power cut.
    Always,
    /// At most this long after an append: a power cut loses at most that much.
    Every(Duration),
}

/// Bounds and durability of a [`DiskQueue`].
#[derive(Debug, Clone)]
pub struct DiskQueueOptions {
    /// Over this, the oldest batches are dropped.
    pub max_bytes: u64,
    /// Over this many samples, too (a bound for the in-memory fallback, mostly).
    pub max_samples: usize,
    /// Size at which a new segment is started.
    pub segment_bytes: u64,
    pub fsync: Fsync,
}

/// Where a queued batch lives.
enum Loc {
    Disk { seg: u64, offset: u64 },
    Memory(Bytes),
}

/// One queued batch: what the sender needs without reading its body.
struct Entry {
    id: u64,
    loc: Loc,
    /// Bytes it takes: the whole record on disk, or the body in memory.
    size: u64,
    samples: usize,
    oldest_ms: i64,
}

/// The segment being appended to.
struct Writer {
    seq: u64,
    file: File,
    size: u64,
}

pub struct DiskQueue {
    dir: PathBuf,
    opts: DiskQueueOptions,
    entries: VecDeque<Entry>,
    /// (id, oldest_ms) of the entries that are the oldest of everything queued after them, in
    /// queue order: its front is the oldest sample queued, kept in O(1) amortized per change.
    min_oldest: VecDeque<(u64, i64)>,
    next_id: u64,
    /// Live entries per segment, so a segment is deleted once all its batches are gone.
    live: BTreeMap<u64, usize>,
    writer: Option<Writer>,
    /// Sequence number the next new segment gets.
    next_seg_seq: u64,
    /// Held for the queue's lifetime; dropping it releases the directory.
    _lock: Option<File>,
    /// False once the disk failed: new batches then stay in memory.
    disk_ok: bool,
    dirty: bool,
    last_sync: Instant,
    samples: usize,
    bytes: u64,
    corruptions: u64,
    /// A read handle on the segment the front batch is in.
    reader: Option<(u64, File)>,
}

fn seg_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.seg"))
}

/// Why a record could not be read.
enum Bad {
    /// Fewer bytes than the header or the payload needs: a torn tail.
    Short,
    /// A length out of range: the records after it cannot be found.
    Corrupt(&'static str),
    /// The payload does not match its CRC; the record (of this many bytes) can be skipped.
    Checksum(u64),
}

/// One record read back.
struct Record {
    samples: usize,
    oldest_ms: i64,
    body: Vec<u8>,
    /// Bytes it takes in the segment, header included.
    size: u64,
}

/// Reads the record at the reader's position; `None` at a clean end of the segment.
fn read_record(r: &mut impl Read) -> Result<Option<Record>, Bad> {
    let mut h = [0u8; HEADER as usize];
    let mut got = 0;
    while got < h.len() {
        match r.read(&mut h[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(_) => return Err(Bad::Short),
        }
    }
    if got == 0 {
        return Ok(None);
    }
    if got < h.len() {
        return Err(Bad::Short);
    }
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    if !(META as u32..=MAX_RECORD).contains(&len) {
        return Err(Bad::Corrupt("impossible record length"));
    }
    let mut payload = vec![0u8; len as usize];
    if r.read_exact(&mut payload).is_err() {
        return Err(Bad::Short);
    }
    if crc32c::crc32c(&payload) != crc {
        return Err(Bad::Checksum(HEADER + len as u64));
    }
    let samples = u32::from_le_bytes(payload[0..4].try_into().expect("4 bytes")) as usize;
    let oldest = i64::from_le_bytes(payload[4..12].try_into().expect("8 bytes"));
    let body = payload.split_off(META);
    Ok(Some(Record {
        samples,
        oldest_ms: oldest,
        body,
        size: HEADER + len as u64,
    }))
}

/// Encodes one record.
fn encode_record(b: &EncodedBatch) -> Vec<u8> {
    let len = META + b.body.len();
    let mut payload = Vec::with_capacity(len);
    payload.extend_from_slice(&(b.samples.min(u32::MAX as usize) as u32).to_le_bytes());
    payload.extend_from_slice(&b.oldest_ms.to_le_bytes());
    payload.extend_from_slice(&b.body);
    let mut rec = Vec::with_capacity(HEADER as usize + len);
    rec.extend_from_slice(&(len as u32).to_le_bytes());
    rec.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    rec.extend_from_slice(&payload);
    rec
}

impl DiskQueue {
    /// Opens (or creates) the queue in `dir`, recovering what a previous run left. Fails only if
    /// another relay holds the directory; any other disk problem falls back to memory.
    pub fn open(dir: &Path, opts: DiskQueueOptions) -> anyhow::Result<DiskQueue> {
        let mut q = DiskQueue {
            dir: dir.to_path_buf(),
            opts,
            entries: VecDeque::new(),
            min_oldest: VecDeque::new(),
            next_id: 0,
            live: BTreeMap::new(),
            writer: None,
            next_seg_seq: 0,
            _lock: None,
            disk_ok: true,
            dirty: false,
            last_sync: Instant::now(),
            samples: 0,
            bytes: 0,
            corruptions: 0,
            reader: None,
        };
        if let Err(e) = fs::create_dir_all(dir) {
            q.disk_failed(&format!("cannot create {}: {e}", dir.display()));
            return Ok(q);
        }
        match OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))
        {
            Ok(f) => {
                if f.try_lock().is_err() {
                    anyhow::bail!(
                        "the queue directory {} is in use by another pushrelay",
                        dir.display()
                    );
                }
                q._lock = Some(f);
            }
            Err(e) => {
                q.disk_failed(&format!("cannot lock {}: {e}", dir.display()));
                return Ok(q);
            }
        }
        if let Err(e) = q.recover() {
            q.disk_failed(&format!("cannot read the queue in {}: {e}", dir.display()));
        }
        Ok(q)
    }

    fn disk_failed(&mut self, why: &str) {
        if self.disk_ok {
            tracing::error!(
                "{why}; keeping queued batches in memory from now on (they will not survive a restart)"
            );
        }
        self.disk_ok = false;
        self.writer = None;
    }

    /// Rebuilds the index from the segments after the cursor.
    fn recover(&mut self) -> std::io::Result<()> {
        let (cur_seg, cur_off) = fs::read_to_string(self.dir.join("cursor"))
            .ok()
            .and_then(|s| {
                let mut it = s.split_whitespace();
                Some((
                    it.next()?.parse::<u64>().ok()?,
                    it.next()?.parse::<u64>().ok()?,
                ))
            })
            .unwrap_or((0, 0));
        let mut segs: Vec<u64> = Vec::new();
        for e in fs::read_dir(&self.dir)? {
            let name = e?.file_name();
            let name = name.to_string_lossy();
            if let Some(seq) = name
                .strip_suffix(".seg")
                .and_then(|s| s.parse::<u64>().ok())
            {
                segs.push(seq);
            }
        }
        segs.sort_unstable();
        let last = segs.last().copied();
        let mut next_seq = 0;
        for seq in segs {
            next_seq = seq + 1;
            if seq < cur_seg {
                let _ = fs::remove_file(seg_path(&self.dir, seq));
                continue;
            }
            let start = if seq == cur_seg { cur_off } else { 0 };
            let path = seg_path(&self.dir, seq);
            let mut f = File::open(&path)?;
            let file_len = f.metadata()?.len();
            f.seek(SeekFrom::Start(start.min(file_len)))?;
            let mut r = std::io::BufReader::new(f);
            let mut off = start.min(file_len);
            let mut count = 0;
            let mut damaged = false;
            loop {
                match read_record(&mut r) {
                    Ok(None) => break,
                    Ok(Some(rec)) => {
                        let loc = Loc::Disk {
                            seg: seq,
                            offset: off,
                        };
                        self.index(loc, rec.size, rec.samples, rec.oldest_ms);
                        count += 1;
                        off += rec.size;
                    }
                    Err(Bad::Checksum(size)) if !damaged => {
                        // The frame is intact: lose only this record and read on. A second
                        // failure in the same segment means the frames cannot be trusted.
                        damaged = true;
                        self.corruptions += 1;
                        tracing::warn!(
                            "queue segment {} has a record failing its checksum at byte {off}; dropped that record ({size} bytes) and going on",
                            path.display()
                        );
                        off += size;
                    }
                    Err(bad) => {
                        let what = match bad {
                            Bad::Short => "a torn record (cut off mid-write)",
                            Bad::Corrupt(w) => w,
                            Bad::Checksum(_) => "a second bad record",
                        };
                        if !damaged {
                            self.corruptions += 1;
                        }
                        tracing::warn!(
                            "queue segment {} has {what} at byte {off}; dropped the rest of that segment ({} bytes) and going on",
                            path.display(),
                            file_len.saturating_sub(off)
                        );
                        if Some(seq) == last {
                            // A torn tail: cut it off so the file ends on a whole record.
                            if let Ok(f) = OpenOptions::new().write(true).open(&path) {
                                let _ = f.set_len(off);
                            }
                        }
                        break;
                    }
                }
            }
            if count == 0 {
                let _ = fs::remove_file(&path);
            }
        }
        // Always append to a fresh segment: never after a tail that was cut.
        self.next_seg_seq = next_seq.max(cur_seg + 1);
        if !self.entries.is_empty() {
            tracing::info!(
                "recovered {} queued samples in {} batches from {}",
                self.samples,
                self.entries.len(),
                self.dir.display()
            );
        }
        Ok(())
    }

    /// Adds an index entry at the back.
    fn index(&mut self, loc: Loc, size: u64, samples: usize, oldest_ms: i64) {
        if let Loc::Disk { seg, .. } = loc {
            *self.live.entry(seg).or_default() += 1;
        }
        while self.min_oldest.back().is_some_and(|&(_, t)| t >= oldest_ms) {
            self.min_oldest.pop_back();
        }
        self.min_oldest.push_back((self.next_id, oldest_ms));
        self.entries.push_back(Entry {
            id: self.next_id,
            loc,
            size,
            samples,
            oldest_ms,
        });
        self.next_id += 1;
        self.samples += samples;
        self.bytes += size;
    }

    /// Appends a record to the current segment, starting a new one when it is full.
    fn append(&mut self, rec: &[u8]) -> std::io::Result<(u64, u64)> {
        let full = self
            .writer
            .as_ref()
            .is_some_and(|w| w.size >= self.opts.segment_bytes);
        if full || self.writer.is_none() {
            if let Some(mut w) = self.writer.take() {
                w.file.flush()?;
                if self.dirty {
                    w.file.sync_data()?;
                }
                if self.live.get(&w.seq).copied().unwrap_or(0) == 0 {
                    let _ = fs::remove_file(seg_path(&self.dir, w.seq));
                }
            }
            let seq = self.next_seg_seq;
            self.next_seg_seq += 1;
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(seg_path(&self.dir, seq))?;
            self.writer = Some(Writer { seq, file, size: 0 });
        }
        let w = self.writer.as_mut().expect("writer set above");
        let offset = w.size;
        if let Err(e) = w.file.write_all(rec) {
            // Leave no half record behind for the next append.
            let _ = w.file.set_len(offset);
            return Err(e);
        }
        w.size += rec.len() as u64;
        Ok((w.seq, offset))
    }

    /// Removes the front entry (delivered, refused or dropped) and moves the cursor past it.
    fn pop_front(&mut self) -> Option<Entry> {
        let e = self.entries.pop_front()?;
        if self.min_oldest.front().is_some_and(|&(id, _)| id == e.id) {
            self.min_oldest.pop_front();
        }
        self.samples -= e.samples;
        self.bytes -= e.size;
        if let Loc::Disk { seg, .. } = e.loc {
            let n = self.live.entry(seg).or_default();
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.live.remove(&seg);
                if self.writer.as_ref().is_none_or(|w| w.seq != seg) {
                    let _ = fs::remove_file(seg_path(&self.dir, seg));
                    if self.reader.as_ref().is_some_and(|(s, _)| *s == seg) {
                        self.reader = None;
                    }
                }
            }
        }
        self.write_cursor();
        Some(e)
    }

    /// Records the position of the first queued disk record (or the end of what was written).
    fn write_cursor(&mut self) {
        if !self.disk_ok {
            return;
        }
        let pos = self.entries.iter().find_map(|e| match e.loc {
            Loc::Disk { seg, offset } => Some((seg, offset)),
            Loc::Memory(_) => None,
        });
        let (seg, off) = match (pos, &self.writer) {
            (Some(p), _) => p,
            (None, Some(w)) => (w.seq, w.size),
            (None, None) => (self.next_seg_seq, 0),
        };
        let tmp = self.dir.join("cursor.tmp");
        let res = (|| -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(format!("{seg} {off}\n").as_bytes())?;
            if self.opts.fsync == Fsync::Always {
                f.sync_data()?;
            }
            fs::rename(&tmp, self.dir.join("cursor"))
        })();
        if let Err(e) = res {
            self.disk_failed(&format!(
                "cannot write the queue cursor in {}: {e}",
                self.dir.display()
            ));
        }
    }

    /// Reads the body of a disk entry.
    fn read_at(&mut self, seg: u64, offset: u64) -> Result<Record, Bad> {
        if self.reader.as_ref().is_none_or(|(s, _)| *s != seg) {
            let f = File::open(seg_path(&self.dir, seg)).map_err(|_| Bad::Short)?;
            self.reader = Some((seg, f));
        }
        let (_, f) = self.reader.as_mut().expect("reader set above");
        f.seek(SeekFrom::Start(offset)).map_err(|_| Bad::Short)?;
        read_record(f)?.ok_or(Bad::Short)
    }
}

impl Queue for DiskQueue {
    fn push(&mut self, batch: EncodedBatch) -> usize {
        let mut stored = false;
        if self.disk_ok {
            let rec = encode_record(&batch);
            match self.append(&rec) {
                Ok((seg, offset)) => {
                    self.index(
                        Loc::Disk { seg, offset },
                        rec.len() as u64,
                        batch.samples,
                        batch.oldest_ms,
                    );
                    self.dirty = true;
                    // With "always" the batch is on the device before push returns; with an
                    // interval, the owner's timer calls `sync` (see `Queue::sync`).
                    if self.opts.fsync == Fsync::Always {
                        self.sync(true);
                    }
                    stored = true;
                }
                Err(e) => self.disk_failed(&format!(
                    "cannot append to the queue in {}: {e}",
                    self.dir.display()
                )),
            }
        }
        if !stored {
            let size = batch.body.len() as u64;
            self.index(
                Loc::Memory(batch.body),
                size,
                batch.samples,
                batch.oldest_ms,
            );
        }
        let mut dropped = 0;
        while (self.bytes > self.opts.max_bytes || self.samples > self.opts.max_samples)
            && self.entries.len() > 1
        {
            dropped += self.pop_front().map(|e| e.samples).unwrap_or(0);
        }
        dropped
    }

    fn front(&mut self) -> Option<(u64, EncodedBatch)> {
        loop {
            let e = self.entries.front()?;
            let (id, oldest_ms) = (e.id, e.oldest_ms);
            match &e.loc {
                Loc::Memory(body) => {
                    return Some((
                        id,
                        EncodedBatch {
                            samples: e.samples,
                            body: body.clone(),
                            oldest_ms,
                        },
                    ))
                }
                Loc::Disk { seg, offset } => {
                    let (seg, offset) = (*seg, *offset);
                    match self.read_at(seg, offset) {
                        Ok(rec) => {
                            return Some((
                                id,
                                EncodedBatch {
                                    samples: rec.samples,
                                    body: Bytes::from(rec.body),
                                    oldest_ms: rec.oldest_ms,
                                },
                            ))
                        }
                        Err(_) => {
                            self.corruptions += 1;
                            tracing::warn!(
                                "queued batch at byte {offset} of segment {seg} in {} cannot be read back; dropped it",
                                self.dir.display()
                            );
                            self.pop_front();
                        }
                    }
                }
            }
        }
    }

    fn commit(&mut self, id: u64) {
        if self.entries.front().is_some_and(|e| e.id == id) {
            self.pop_front();
        }
    }

    fn drop_older_than(&mut self, cutoff_ms: i64) -> usize {
        let mut dropped = 0;
        while self
            .entries
            .front()
            .is_some_and(|e| e.oldest_ms < cutoff_ms)
        {
            dropped += self.pop_front().map(|e| e.samples).unwrap_or(0);
        }
        dropped
    }

    fn samples(&self) -> usize {
        self.samples
    }

    fn batches(&self) -> usize {
        self.entries.len()
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }

    fn oldest_ms(&self) -> Option<i64> {
        self.min_oldest.front().map(|&(_, t)| t)
    }

    fn sync(&mut self, force: bool) {
        if !self.dirty || !self.disk_ok {
            return;
        }
        let due = match self.opts.fsync {
            Fsync::Always => true,
            Fsync::Every(d) => self.last_sync.elapsed() >= d,
        };
        if !(force || due) {
            return;
        }
        if let Some(w) = self.writer.as_mut() {
            if let Err(e) = w.file.sync_data() {
                self.disk_failed(&format!(
                    "cannot sync the queue in {}: {e}",
                    self.dir.display()
                ));
                return;
            }
        }
        self.dirty = false;
        self.last_sync = Instant::now();
    }

    fn take_corruptions(&mut self) -> u64 {
        std::mem::take(&mut self.corruptions)
    }

    fn full_reason(&self) -> &'static str {
        "buffer_full"
    }
}

impl Drop for DiskQueue {
    fn drop(&mut self) {
        self.sync(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> DiskQueueOptions {
        DiskQueueOptions {
            max_bytes: 1 << 30,
            max_samples: usize::MAX,
            segment_bytes: 300,
            fsync: Fsync::Always,
        }
    }

    fn batch(i: u8, samples: usize) -> EncodedBatch {
        EncodedBatch {
            samples,
            body: Bytes::from(vec![i; 100]),
            oldest_ms: i as i64 * 1000,
        }
    }

    fn drain(q: &mut DiskQueue) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some((id, b)) = q.front() {
            out.push(b.body[0]);
            q.commit(id);
        }
        out
    }

    #[test]
    fn fifo_across_segments_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut q = DiskQueue::open(dir.path(), opts()).unwrap();
            for i in 0..10 {
                assert_eq!(q.push(batch(i, 5)), 0);
            }
            assert_eq!(q.samples(), 50);
            // Deliver three, then "crash" (drop without more commits).
            for _ in 0..3 {
                let (id, _) = q.front().unwrap();
                q.commit(id);
            }
        }
        let mut q = DiskQueue::open(dir.path(), opts()).unwrap();
        assert_eq!(q.samples(), 35);
        q.push(batch(10, 5));
        assert_eq!(drain(&mut q), (3..=10).collect::<Vec<u8>>());
        drop(q);
        let mut q = DiskQueue::open(dir.path(), opts()).unwrap();
        assert_eq!(q.batches(), 0, "everything delivered stays delivered");
        assert!(drain(&mut q).is_empty());
        let segs = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "seg")
            })
            .count();
        assert!(segs <= 1, "delivered segments are deleted ({segs} left)");
    }

    #[test]
    fn oldest_sample_is_the_minimum_of_what_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DiskQueue::open(dir.path(), opts()).unwrap();
        assert_eq!(q.oldest_ms(), None);
        for i in [5u8, 3, 7, 4] {
            q.push(batch(i, 1));
        }
        let mut seen = Vec::new();
        while let Some((id, _)) = q.front() {
            seen.push(q.oldest_ms());
            q.commit(id);
        }
        assert_eq!(seen, [Some(3000), Some(3000), Some(4000), Some(4000)]);
        assert_eq!(q.oldest_ms(), None);
    }

    #[test]
    fn a_second_relay_cannot_share_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let _q = DiskQueue::open(dir.path(), opts()).unwrap();
        assert!(DiskQueue::open(dir.path(), opts()).is_err());
    }

    fn last_segment(dir: &Path) -> PathBuf {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .collect();
        v.sort();
        v.pop().unwrap()
    }

    #[test]
    fn torn_tail_is_cut_counted_and_the_rest_delivered() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut q = DiskQueue::open(dir.path(), opts()).unwrap();
            for i in 0..5 {
                q.push(batch(i, 1));
            }
        }
        let last = last_segment(dir.path());
        let len = fs::metadata(&last).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&last)
            .unwrap()
            .set_len(len - 30)
            .unwrap();
        let mut q = DiskQueue::open(dir.path(), opts()).unwrap();
        assert_eq!(q.take_corruptions(), 1);
        assert_eq!(drain(&mut q), vec![0, 1, 2, 3]);
    }

    #[test]
    fn flipped_byte_loses_only_its_record() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut q = DiskQueue::open(dir.path(), opts()).unwrap();
            for i in 0..8 {
                q.push(batch(i, 1));
            }
        }
        // Segments of 300 bytes hold 3 records of 120 bytes each; corrupt the first segment's
        // second record.
        let mut v: Vec<PathBuf> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .collect();
        v.sort();
        let mut bytes = fs::read(&v[0]).unwrap();
        bytes[120 + 50] ^= 0x40;
        fs::write(&v[0], &bytes).unwrap();
        let mut q = DiskQueue::open(dir.path(), opts()).unwrap();
        assert_eq!(q.take_corruptions(), 1);
        assert_eq!(
            drain(&mut q),
            vec![0, 2, 3, 4, 5, 6, 7],
            "only the damaged record is lost"
        );
    }

    #[test]
    fn bounds_drop_oldest_and_age_cutoff() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts();
        o.max_bytes = 500;
        let mut q = DiskQueue::open(dir.path(), o).unwrap();
        let mut dropped = 0;
        for i in 0..10 {
            dropped += q.push(batch(i, 2));
        }
        assert!(q.bytes() <= 500);
        assert_eq!(dropped + q.samples(), 20);
        let front = q.front().unwrap().1.body[0];
        assert_eq!(front, 10 - q.batches() as u8, "the newest are kept");
        let n = q.drop_older_than(9000);
        assert_eq!(q.batches(), 1);
        assert!(n > 0);
        assert_eq!(q.front().unwrap().1.body[0], 9);
    }

    #[test]
    fn unwritable_directory_falls_back_to_memory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        fs::write(&file, b"x").unwrap();
        let mut q = DiskQueue::open(&file.join("sub"), opts()).unwrap();
        q.push(batch(1, 1));
        q.push(batch(2, 1));
        assert_eq!(drain(&mut q), vec![1, 2]);
    }

    #[test]
    fn arbitrary_segment_bytes_never_panic() {
        // A small xorshift generator: deterministic, no extra dependency.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..200 {
            let dir = tempfile::tempdir().unwrap();
            let len = (next() % 2000) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 3 == 0 && len > 8 {
                // Some inputs start with a plausible header.
                bytes[0..4].copy_from_slice(&((len as u32).saturating_sub(8)).to_le_bytes());
            }
            fs::write(seg_path(dir.path(), 0), &bytes).unwrap();
            if round % 5 == 0 {
                fs::write(dir.path().join("cursor"), format!("0 {}\n", next() % 3000)).unwrap();
            }
            let mut q = DiskQueue::open(dir.path(), opts()).unwrap();
            q.push(batch(7, 1));
            let got = drain(&mut q);
            assert_eq!(got.last(), Some(&7));
        }
    }
}
