//! The durable queue: encoded batches in append-only segment files, a committed read position.
//!
//! Layout under the sink's directory (`state_dir/<sink>/`):
//! - `<20-digit sequence>.seg`: segments of about `segment_bytes`, written append-only, never
//!   rewritten. Each record is `[u32 LE payload length][u32 LE CRC32C of payload][payload]`,
//!   payload = `[u32 LE samples][i64 LE oldest sample ms][snappy remote-write body]`.
//! - `cursor`: `<segment> <offset>` of the first record not yet delivered, replaced atomically
//!   (write an exclusively created temporary file, rename) each time the front moves.
//!
//! Everything here is private to the relay's user (directory `0700`, files `0600`).
//! - `lock`: held (`flock`) while a relay uses the directory, so two relays never share it.
//!
//! On open, the segments after the cursor are scanned record by record; a torn or corrupt tail
//! (power cut mid-write) is cut off, counted and logged once, and the queue goes on with what was
//! good. Only small per-record index entries stay in memory; bodies are read back from disk one
//! batch at a time. Offsets come from the file itself, so a segment cut short by someone else
//! (`truncate`) costs only what was cut. If the directory cannot be written (disk full,
//! read-only), new batches are kept in memory (within the same bounds) while the disk is tried
//! again every [`DISK_RETRY`]; once it takes writes, the batches in memory are written back to a
//! new segment, in queue order. Both changes are logged once.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;

use super::Queue;
use crate::wire::remote_write::EncodedBatch;

/// How often a draining queue writes its cursor at most (see [`Queue::commit_all`]): about
/// every 100 rounds of a fast drain, rather than every round (a tenth of the drain's CPU went to
/// writing it, measured).
const CURSOR_EVERY: Duration = Duration::from_millis(100);

/// Record header: payload length and CRC32C.
const HEADER: u64 = 8;
/// Payload prefix: samples and oldest timestamp.
const META: usize = 12;
/// A record claiming to be larger than this is corrupt (batches are far smaller).
const MAX_RECORD: u32 = 64 << 20;
/// How often a queue held in memory after a disk failure tries the disk again.
pub const DISK_RETRY: Duration = Duration::from_secs(5);

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
#[derive(Clone)]
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
    /// False while the disk fails: new batches then stay in memory (always a suffix of
    /// `entries`), and the disk is tried again at `retry_at`.
    disk_ok: bool,
    retry_at: Instant,
    /// Whether what a previous run left was read (it is not if the directory could not be).
    recovered: bool,
    dirty: bool,
    last_sync: Instant,
    /// The cursor moved since it was last written (see [`CURSOR_EVERY`]).
    cursor_dirty: bool,
    cursor_written: Instant,
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
            retry_at: Instant::now(),
            recovered: false,
            dirty: false,
            last_sync: Instant::now(),
            cursor_dirty: false,
            cursor_written: Instant::now(),
            samples: 0,
            bytes: 0,
            corruptions: 0,
            reader: None,
        };
        if let Err(e) = crate::files::create_private_dir(dir) {
            q.disk_failed(&format!("cannot create {}: {e}", dir.display()));
            return Ok(q);
        }
        match crate::files::private_options()
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
        match q.recover() {
            Ok(()) => q.recovered = true,
            Err(e) => q.disk_failed(&format!("cannot read the queue in {}: {e}", dir.display())),
        }
        Ok(q)
    }

    fn disk_failed(&mut self, why: &str) {
        if self.disk_ok {
            tracing::error!(
                "{why}; keeping new batches in memory (they would not survive a restart) and trying the disk again every {}s",
                DISK_RETRY.as_secs()
            );
        }
        self.disk_ok = false;
        self.writer = None;
        self.retry_at = Instant::now() + DISK_RETRY;
    }

    /// While the disk fails, and at most every [`DISK_RETRY`]: tries to take the directory back
    /// and write the batches held in memory to it.
    fn retry_disk(&mut self) {
        if self.disk_ok || Instant::now() < self.retry_at {
            return;
        }
        self.retry_at = Instant::now() + DISK_RETRY;
        match self.reattach() {
            Ok(moved) => {
                let (batches, samples) = moved;
                tracing::info!(
                    "the queue in {} is on disk again: moved {batches} batches ({samples} samples) from memory back to it",
                    self.dir.display()
                );
            }
            Err(e) => {
                self.writer = None;
                tracing::debug!(
                    "the queue in {} still cannot use the disk: {e}",
                    self.dir.display()
                );
            }
        }
    }

    /// Takes the directory (lock, what a previous run left if it could not be read), writes
    /// every batch held in memory to a new segment, syncs and writes the cursor. Returns the
    /// batches and samples moved. On an error the queue stays in memory (batches already
    /// written stay on disk: the order is kept either way).
    fn reattach(&mut self) -> std::io::Result<(usize, usize)> {
        crate::files::create_private_dir(&self.dir)?;
        if self._lock.is_none() {
            let f = crate::files::private_options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(self.dir.join("lock"))?;
            f.try_lock().map_err(|_| {
                std::io::Error::other("the directory is in use by another pushrelay")
            })?;
            self._lock = Some(f);
        }
        if !self.recovered {
            // Nothing reached this directory yet: what a previous run left goes first.
            let held = std::mem::take(&mut self.entries);
            self.min_oldest.clear();
            (self.samples, self.bytes) = (0, 0);
            let r = self.recover();
            // The held batches keep their ids: the sender may be sending one of them.
            for e in held {
                self.push_min_oldest(e.id, e.oldest_ms);
                self.samples += e.samples;
                self.bytes += e.size;
                self.entries.push_back(e);
            }
            r?;
            self.recovered = true;
        }
        let (mut batches, mut samples) = (0, 0);
        for i in 0..self.entries.len() {
            let Loc::Memory(body) = &self.entries[i].loc else {
                continue;
            };
            let e = &self.entries[i];
            let rec = encode_record(&EncodedBatch {
                samples: e.samples,
                body: body.clone(),
                oldest_ms: e.oldest_ms,
            });
            let (seg, offset) = self.append(&rec)?;
            let e = &mut self.entries[i];
            e.loc = Loc::Disk { seg, offset };
            self.bytes = self.bytes - e.size + rec.len() as u64;
            e.size = rec.len() as u64;
            *self.live.entry(seg).or_default() += 1;
            batches += 1;
            samples += e.samples;
        }
        if let Some(w) = self.writer.as_mut() {
            w.file.sync_data()?;
        }
        self.try_write_cursor()?;
        self.disk_ok = true;
        self.dirty = false;
        Ok((batches, samples))
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
        let id = self.next_id;
        self.next_id += 1;
        self.push_min_oldest(id, oldest_ms);
        self.entries.push_back(Entry {
            id,
            loc,
            size,
            samples,
            oldest_ms,
        });
        self.samples += samples;
        self.bytes += size;
    }

    fn push_min_oldest(&mut self, id: u64, oldest_ms: i64) {
        while self.min_oldest.back().is_some_and(|&(_, t)| t >= oldest_ms) {
            self.min_oldest.pop_back();
        }
        self.min_oldest.push_back((id, oldest_ms));
    }

    /// Segment `seg` was found `len` bytes long, shorter than the queue wrote it (someone cut
    /// it): forgets the batches that were in the cut part, with one log line. Returns how many.
    fn segment_cut(&mut self, seg: u64, len: u64) -> usize {
        let before = self.entries.len();
        let mut lost_samples = 0;
        let mut gone = 0;
        self.entries.retain(|e| {
            let cut =
                matches!(e.loc, Loc::Disk { seg: s, offset } if s == seg && offset + e.size > len);
            if cut {
                lost_samples += e.samples;
                gone += e.size;
            }
            !cut
        });
        let lost = before - self.entries.len();
        if lost == 0 {
            return 0;
        }
        self.samples -= lost_samples;
        self.bytes -= gone;
        self.corruptions += 1;
        let left = self
            .live
            .get(&seg)
            .copied()
            .unwrap_or(0)
            .saturating_sub(lost);
        if left == 0 {
            self.live.remove(&seg);
        } else {
            self.live.insert(seg, left);
        }
        self.min_oldest.clear();
        let ids: Vec<(u64, i64)> = self.entries.iter().map(|e| (e.id, e.oldest_ms)).collect();
        for (id, t) in ids {
            self.push_min_oldest(id, t);
        }
        tracing::warn!(
            "queue segment {} was cut to {len} bytes by something else: the {lost} batches ({lost_samples} samples) queued in the cut part are lost; the queue goes on",
            seg_path(&self.dir, seg).display()
        );
        self.write_cursor();
        lost
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
            let file = crate::files::private_options()
                .create(true)
                .append(true)
                .open(seg_path(&self.dir, seq))?;
            self.writer = Some(Writer { seq, file, size: 0 });
        }
        let w = self.writer.as_mut().expect("writer set above");
        // The file's real end, where an O_APPEND write lands: not what this queue believes it
        // wrote, in case someone cut the file.
        let offset = w.file.seek(SeekFrom::End(0))?;
        if offset != w.size {
            let (seq, believed) = (w.seq, w.size);
            w.size = offset;
            if offset < believed {
                self.segment_cut(seq, offset);
            }
        }
        let w = self.writer.as_mut().expect("writer set above");
        if let Err(e) = w.file.write_all(rec) {
            // Leave no half record behind for the next append.
            let _ = w.file.set_len(offset);
            return Err(e);
        }
        w.size = offset + rec.len() as u64;
        Ok((w.seq, offset))
    }

    /// Removes the front entry (delivered, refused or dropped) and moves the cursor past it.
    fn pop_front(&mut self) -> Option<Entry> {
        let e = self.pop_front_quietly()?;
        self.write_cursor();
        Some(e)
    }

    /// [`DiskQueue::pop_front`] without writing the cursor: the caller writes it.
    fn pop_front_quietly(&mut self) -> Option<Entry> {
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
        Some(e)
    }

    /// Records the position of the first queued disk record (or the end of what was written).
    fn write_cursor(&mut self) {
        if !self.disk_ok {
            return;
        }
        self.cursor_dirty = false;
        self.cursor_written = Instant::now();
        if let Err(e) = self.try_write_cursor() {
            self.disk_failed(&format!(
                "cannot write the queue cursor in {}: {e}",
                self.dir.display()
            ));
        }
    }

    fn try_write_cursor(&mut self) -> std::io::Result<()> {
        let pos = self.entries.iter().find_map(|e| match e.loc {
            Loc::Disk { seg, offset } => Some((seg, offset)),
            Loc::Memory(_) => None,
        });
        let (seg, off) = match (pos, &self.writer) {
            (Some(p), _) => p,
            (None, Some(w)) => (w.seq, w.size),
            (None, None) => (self.next_seg_seq, 0),
        };
        // Through an exclusively created temporary file: a symlink planted in its place is
        // never followed.
        crate::files::replace_atomically(
            &self.dir.join("cursor"),
            format!("{seg} {off}\n").as_bytes(),
            self.opts.fsync == Fsync::Always,
        )
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
        self.retry_disk();
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
                            // A segment cut short (or deleted) loses everything past its end
                            // at once; otherwise only this record is bad. A directory that
                            // cannot be read now (replaced, unmounted) loses nothing: the
                            // batch waits.
                            let len = match fs::metadata(seg_path(&self.dir, seg)) {
                                Ok(m) => m.len(),
                                Err(e)
                                    if e.kind() == std::io::ErrorKind::NotFound
                                        && self.dir.is_dir() =>
                                {
                                    0
                                }
                                Err(e) => {
                                    tracing::debug!(
                                        "cannot read segment {seg} in {} now: {e}",
                                        self.dir.display()
                                    );
                                    self.reader = None;
                                    return None;
                                }
                            };
                            if self.segment_cut(seg, len) == 0 {
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
    }

    fn front_id(&self) -> Option<u64> {
        self.entries.front().map(|e| e.id)
    }

    fn peek(&mut self, k: usize) -> Option<(u64, EncodedBatch)> {
        if k == 0 {
            return self.front();
        }
        let e = self.entries.get(k)?;
        let (id, samples, oldest_ms) = (e.id, e.samples, e.oldest_ms);
        match e.loc.clone() {
            Loc::Memory(body) => Some((
                id,
                EncodedBatch {
                    samples,
                    body,
                    oldest_ms,
                },
            )),
            Loc::Disk { seg, offset } => {
                let rec = self.read_at(seg, offset).ok()?;
                Some((
                    id,
                    EncodedBatch {
                        samples: rec.samples,
                        body: Bytes::from(rec.body),
                        oldest_ms: rec.oldest_ms,
                    },
                ))
            }
        }
    }

    fn samples_at(&self, k: usize) -> Option<usize> {
        self.entries.get(k).map(|e| e.samples)
    }

    fn commit(&mut self, id: u64) {
        if self.entries.front().is_some_and(|e| e.id == id) {
            self.pop_front();
        }
    }

    fn commit_all(&mut self, ids: &[u64]) {
        let mut moved = false;
        for &id in ids {
            if self.entries.front().is_some_and(|e| e.id == id) {
                self.pop_front_quietly();
                moved = true;
            }
        }
        if !moved {
            return;
        }
        // A backlog drains a round every few milliseconds: its cursor is written at most every
        // `CURSOR_EVERY`, and the latest position by the next `sync` (the owner's fsync timer)
        // or at close. A crash in between sends those rounds again (at least once, never lost:
        // the cursor on disk only ever lags). With `fsync = "always"`, every time.
        self.cursor_dirty = true;
        if self.opts.fsync == Fsync::Always || self.cursor_written.elapsed() >= CURSOR_EVERY {
            self.write_cursor();
        }
    }

    fn cursor_pending(&self) -> bool {
        self.cursor_dirty && self.disk_ok
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
        if self.cursor_dirty {
            self.write_cursor();
        }
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

    fn on_disk(&self) -> Option<bool> {
        Some(self.disk_ok)
    }

    fn newest(&mut self, max: usize, f: &mut dyn FnMut(&EncodedBatch)) {
        let from = self.entries.len().saturating_sub(max);
        let locs: Vec<(usize, i64, Loc)> = self
            .entries
            .iter()
            .skip(from)
            .map(|e| (e.samples, e.oldest_ms, e.loc.clone()))
            .collect();
        for (samples, oldest_ms, loc) in locs {
            let body = match loc {
                Loc::Memory(b) => b,
                // Unreadable records are left to `front`, which counts and logs them.
                Loc::Disk { seg, offset } => match self.read_at(seg, offset) {
                    Ok(r) => Bytes::from(r.body),
                    Err(_) => continue,
                },
            };
            f(&EncodedBatch {
                samples,
                body,
                oldest_ms,
            });
        }
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

    /// With the default fsync, a drain's cursor is written at most every `CURSOR_EVERY`; until
    /// then the cursor on disk lags, so a crash sends batches again but never skips one, and
    /// the next `sync` writes the latest position.
    #[test]
    fn draining_cursor_lags_then_syncs_and_never_runs_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let opts = DiskQueueOptions {
            segment_bytes: 1 << 20,
            fsync: Fsync::Every(Duration::from_secs(1)),
            ..opts()
        };
        let mut q = DiskQueue::open(dir.path(), opts.clone()).unwrap();
        for i in 0..4 {
            q.push(batch(i, 5));
        }
        let cursor = || fs::read_to_string(dir.path().join("cursor")).unwrap_or_default();
        let written = cursor();
        let (a, _) = q.front().unwrap();
        let (b, _) = q.peek(1).unwrap();
        q.commit_all(&[a, b]);
        assert!(
            q.cursor_pending(),
            "a round within 100 ms of the last write waits"
        );
        assert_eq!(cursor(), written);
        // The disk as a crash would leave it now: both batches come back (sent again).
        let crashed = tempfile::tempdir().unwrap();
        for e in fs::read_dir(dir.path()).unwrap() {
            let e = e.unwrap();
            if e.file_name() != "lock" {
                fs::copy(e.path(), crashed.path().join(e.file_name())).unwrap();
            }
        }
        let mut again = DiskQueue::open(crashed.path(), opts.clone()).unwrap();
        assert_eq!(drain(&mut again), [0, 1, 2, 3]);
        q.sync(false);
        assert!(!q.cursor_pending());
        assert_ne!(cursor(), written, "the sync wrote the cursor");
        drop(q);
        let mut q = DiskQueue::open(dir.path(), opts).unwrap();
        assert_eq!(drain(&mut q), [2, 3]);
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

    /// The segment files, oldest first.
    fn segments(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .collect();
        v.sort();
        v
    }

    fn last_segment(dir: &Path) -> PathBuf {
        segments(dir).pop().unwrap()
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
        let v = segments(dir.path());
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
    fn bounds_drop_oldest() {
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

    /// Someone cuts the segment being written to half its size (`truncate -s 50%`): only the
    /// batches in the cut part are lost, with one log line; every batch appended afterwards is
    /// read back and delivered (it used to be recorded at a made-up offset and dropped as
    /// unreadable, for as long as the process lived).
    #[test]
    fn a_cut_live_segment_loses_only_what_was_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts();
        o.segment_bytes = 1 << 20;
        let mut q = DiskQueue::open(dir.path(), o.clone()).unwrap();
        for i in 0..6 {
            q.push(batch(i, 1));
        }
        // Two delivered; records are 120 bytes: cut in the middle of the fourth (0-based 3).
        for _ in 0..2 {
            let (id, _) = q.front().unwrap();
            q.commit(id);
        }
        let seg = last_segment(dir.path());
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(3 * 120 + 50)
            .unwrap();
        for i in 10..14 {
            q.push(batch(i, 1));
        }
        assert_eq!(q.take_corruptions(), 1, "one event");
        assert_eq!(q.samples(), 5, "batch 2 and the four new ones");
        assert_eq!(drain(&mut q), vec![2, 10, 11, 12, 13]);
        drop(q);
        // And the files agree: a restart finds nothing left, no torn record.
        let mut q = DiskQueue::open(dir.path(), o).unwrap();
        assert_eq!(q.batches(), 0);
        assert_eq!(q.take_corruptions(), 0);
    }

    /// A segment cut short while the queue reads it (not the live one) loses what was cut,
    /// in one go.
    #[test]
    fn a_cut_older_segment_is_noticed_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DiskQueue::open(dir.path(), opts()).unwrap();
        for i in 0..9 {
            q.push(batch(i, 1));
        }
        let v = segments(dir.path());
        // The first segment holds batches 0..3; keep only the first.
        OpenOptions::new()
            .write(true)
            .open(&v[0])
            .unwrap()
            .set_len(120)
            .unwrap();
        assert_eq!(drain(&mut q), vec![0, 3, 4, 5, 6, 7, 8]);
        assert_eq!(q.take_corruptions(), 1);
    }

    /// After the directory stops taking writes, new batches wait in memory; once it takes
    /// writes again they are moved back to disk, in order, and survive a restart.
    #[tokio::test(start_paused = true)]
    async fn returns_to_disk_when_it_can_and_moves_the_batches_back() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("q");
        let away = root.path().join("q.away");
        let mut q = DiskQueue::open(&dir, opts()).unwrap();
        for i in 0..3 {
            q.push(batch(i, 1));
        }
        // The directory is replaced by a file while a batch is being sent: the cursor cannot be
        // written when it is delivered.
        let (id, _) = q.front().unwrap();
        fs::rename(&dir, &away).unwrap();
        fs::write(&dir, b"not a directory").unwrap();
        q.commit(id);
        assert_eq!(q.on_disk(), Some(false));
        for i in 3..6 {
            q.push(batch(i, 1));
        }
        assert_eq!(q.on_disk(), Some(false));
        // Still broken at the next retry: still in memory.
        tokio::time::advance(DISK_RETRY).await;
        q.push(batch(6, 1));
        assert_eq!(q.on_disk(), Some(false));
        // Back.
        fs::remove_file(&dir).unwrap();
        fs::rename(&away, &dir).unwrap();
        q.push(batch(7, 1));
        assert_eq!(q.on_disk(), Some(false), "not before the retry is due");
        tokio::time::advance(DISK_RETRY).await;
        q.push(batch(8, 1));
        assert_eq!(q.on_disk(), Some(true));
        assert_eq!(q.samples(), 8);
        // A crash now loses nothing: everything is in the files.
        drop(q);
        let mut q = DiskQueue::open(&dir, opts()).unwrap();
        assert_eq!(drain(&mut q), (1..=8).collect::<Vec<u8>>());
    }

    /// `newest` reads without disturbing what `front` then reads.
    #[test]
    fn newest_then_drain() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut q = DiskQueue::open(dir.path(), opts()).unwrap();
            for i in 0..8 {
                q.push(batch(i, 1));
            }
        }
        let mut q = DiskQueue::open(dir.path(), opts()).unwrap();
        let mut n = Vec::new();
        q.newest(3, &mut |b| n.push(b.body[0]));
        assert_eq!(n, [5, 6, 7]);
        assert_eq!(drain(&mut q), (0..8).collect::<Vec<u8>>());
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
