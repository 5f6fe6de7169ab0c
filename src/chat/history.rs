//! A room's history ring: its latest events, kept for clients that resume, as compact records
//! appended one after another in a single byte buffer.
//!
//! Every message in a busy room retains one event and, once the ring is full, drops the oldest,
//! and with many users each ring is cold by the time its room speaks again. So the layout is
//! chosen for the cache lines an append touches rather than for instructions: the new record's
//! bytes, written sequentially after the previous one (whose last line is often still warm), and
//! one line of the length table, which every append to the room reads and writes in turn. The
//! oldest record itself is never read to drop it: its length is in the table. The chat core asks
//! for the new record's lines ahead (`prepare_message`, as soon as the room is known), and once
//! written they are sent down to L3 ([`cache_hints`]): all the rooms' rings together are larger
//! than a core's L2, and are read back only when a client resumes.
//!
//! Buffer layout: `slots` little-endian `u32` record lengths (slot `i` belongs to the `i`-th
//! event after the one in `first_slot`, modulo `slots`), then the record area. Records never
//! straddle the end of the buffer: one that does not fit after the newest starts again at the
//! beginning of the area, so a reader finds each record after the previous one, or at the start
//! of the area when it would not fit there.

use super::room::{EventBody, RoomEvent};
use super::wire::WireEmotion;
use crate::cache_hints;
use crate::emotion::Emotion;

/// Bytes of one length-table slot.
const SLOT_BYTES: usize = 4;
/// The record area a ring starts with; it grows by half (or to fit) while below the byte cap.
const INITIAL_AREA_BYTES: usize = 512;

// Record header, little-endian. Both kinds start with `FLAGS`, `DOMINANT`, `ID_LEN`, `SEQ`, `TS`.
const FLAGS: usize = 0;
const DOMINANT: usize = 1;
const ID_LEN: usize = 2;
const SEQ: usize = 4;
const TS: usize = 12;
/// A reply: the header, then its `in_reply_to` (`ID_LEN` bytes), then its text (the rest).
const REPLY_HEADER: usize = 20;
/// A message: the header, seven scores in ten-thousandths, the `u32` length of `from` if stored
/// and that of `name` if any, then the id, `from`, `name` and text (the rest). In a private
/// room, where most messages go, `from` is the room's own user and there is often no name: those
/// records carry neither length.
const SCORES: usize = 20;
const MESSAGE_HEADER: usize = 34;
/// Bytes of a stored length of `from` or `name`.
const LENGTH_BYTES: usize = 4;

/// `FLAGS` bits.
const IS_REPLY: u8 = 1;
/// `from` is stored; otherwise the sender is the private room's own user, named by the room.
const HAS_FROM: u8 = 2;
const HAS_NAME: u8 = 4;

/// How an append changed the number of retained events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// 1 when the event was retained, 0 when the ring retains nothing.
    pub added: usize,
    /// Older events dropped to make room.
    pub evicted: usize,
}

impl Retention {
    /// A count of retained events after this append.
    pub fn applied_to(self, retained: usize) -> usize {
        retained + self.added - self.evicted
    }
}

/// Up to `max_events` events (fixed when the ring first allocates, at most 65,535) in at most
/// `max_bytes` of records, newest kept. An event larger than `max_bytes` on its own is still
/// kept, alone, so that the latest event can always be replayed. Holds no allocation while
/// empty. 32 bytes, as the `VecDeque` it replaced, so an idle room is no larger.
#[derive(Default)]
pub struct HistoryRing {
    /// The length table, then the record area; empty until the first event and after release.
    buffer: Box<[u8]>,
    /// Offset of the oldest record (the start of the area when empty).
    head: u32,
    /// Offset just after the newest record (the start of the area when empty).
    tail: u32,
    /// Table slot of the oldest event.
    first_slot: u16,
    events: u16,
    /// Table slots, which is also the most events the ring holds.
    slots: u16,
}

impl HistoryRing {
    pub fn len(&self) -> usize {
        usize::from(self.events)
    }

    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// Bytes held on the heap (table and record area).
    #[cfg(test)]
    pub fn allocated_bytes(&self) -> usize {
        self.buffer.len()
    }

    /// Drops every event and the buffer; returns how many events there were.
    pub fn release(&mut self) -> usize {
        let released = self.len();
        *self = HistoryRing::default();
        released
    }

    /// Seq of the oldest retained event.
    pub fn first_seq(&self) -> Option<u64> {
        self.iter().next().map(|event| event.seq)
    }

    /// The retained events, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = RoomEvent<'_>> + '_ {
        self.records().filter_map(decode)
    }

    /// Starts fetching the lines that appending a message with an `id_len`-byte id and a
    /// `text_len`-byte text from the room's own user will most likely write (after the newest
    /// record), so that they arrive while the message is being scored.
    pub fn prepare_message(&self, id_len: usize, text_len: usize) {
        let (tail, length) = (self.tail as usize, MESSAGE_HEADER + id_len + text_len);
        if let Some(next) = self.buffer.get(tail..self.buffer.len().min(tail + length)) {
            cache_hints::prefetch_for_write(next);
        }
    }

    /// Appends `event`, first dropping the oldest events beyond `max_events - 1` and as many as
    /// it takes to stay within `max_bytes` of records.
    pub fn push(
        &mut self,
        event: &RoomEvent<'_>,
        max_events: usize,
        max_bytes: usize,
    ) -> Retention {
        if max_events == 0 {
            return Retention::default();
        }
        let Some(length) = record_length(event) else {
            // Lengths beyond what a record header holds (gigabytes; frames are far smaller).
            // Dropping everything keeps resume honest: it reports the gap.
            let evicted = self.release();
            return Retention { added: 0, evicted };
        };
        if self.buffer.is_empty() {
            self.slots = u16::try_from(max_events).unwrap_or(u16::MAX);
        }
        let mut evicted = 0;
        if self.events >= self.slots {
            self.evict_oldest();
            evicted += 1;
        }
        let bound = max_bytes.max(length);
        if self.area() > bound {
            // The area grew past the cap for an event larger than it, which now has to go:
            // back within the cap (or to this event's size, when it is larger still).
            while !self.is_empty() && self.live_bytes() + length > bound {
                self.evict_oldest();
                evicted += 1;
            }
            self.rebuild(area_for(self.live_bytes() + length, max_bytes));
        }
        let at = loop {
            if let Some(at) = self.free_run(length) {
                break at;
            }
            if !self.grow(length, max_bytes) {
                if self.is_empty() {
                    // Growing an empty ring only fails for sizes `record_length` rules out.
                    return Retention { added: 0, evicted };
                }
                // At the byte cap: make room by dropping the oldest.
                self.evict_oldest();
                evicted += 1;
            }
        };
        // The slot after the newest; below `2 * slots`, so one subtraction wraps it (cheaper
        // than a division on every append).
        let slot = usize::from(self.first_slot) + self.len();
        let slot = slot.checked_sub(usize::from(self.slots)).unwrap_or(slot);
        let Some(record) = self.buffer.get_mut(at..at + length) else {
            // `free_run` only returns runs inside the buffer.
            return Retention { added: 0, evicted };
        };
        encode(event, record);
        cache_hints::demote(record);
        // Lengths and offsets fit in `u32`: `record_length` and `grow` check them.
        self.set_slot_length(slot, length as u32);
        self.tail = (at + length) as u32;
        self.events += 1;
        Retention { added: 1, evicted }
    }

    fn area_start(&self) -> usize {
        usize::from(self.slots) * SLOT_BYTES
    }

    fn slot_length(&self, slot: usize) -> usize {
        let at = slot * SLOT_BYTES;
        self.buffer
            .get(at..at + SLOT_BYTES)
            .and_then(|bytes| bytes.try_into().ok())
            .map_or(0, |bytes| u32::from_le_bytes(bytes) as usize)
    }

    fn set_slot_length(&mut self, slot: usize, length: u32) {
        let at = slot * SLOT_BYTES;
        if let Some(bytes) = self.buffer.get_mut(at..at + SLOT_BYTES) {
            bytes.copy_from_slice(&length.to_le_bytes());
        }
    }

    /// Where a record of `length` bytes goes when the previous one ends at `after`.
    fn placed_after(&self, after: usize, length: usize) -> usize {
        if after + length <= self.buffer.len() {
            after
        } else {
            self.area_start()
        }
    }

    /// Where a record of `length` bytes can go now without overwriting a retained one.
    fn free_run(&mut self, length: usize) -> Option<usize> {
        let (start, end) = (self.area_start(), self.buffer.len());
        let (head, tail) = (self.head as usize, self.tail as usize);
        if self.events == 0 {
            self.head = start as u32;
            self.tail = start as u32;
            return (start + length <= end).then_some(start);
        }
        if tail > head {
            // Records in [head, tail): free after them, then before them.
            if tail + length <= end {
                Some(tail)
            } else {
                (start + length <= head).then_some(start)
            }
        } else {
            // Wrapped: records in [head, ..) and [start, tail); free in between.
            (tail + length <= head).then_some(tail)
        }
    }

    /// Drops the oldest event: advances the head past it, reading only the table.
    fn evict_oldest(&mut self) {
        if self.events == 0 {
            return;
        }
        let slots = usize::from(self.slots);
        let oldest = usize::from(self.first_slot);
        let after = self.head as usize + self.slot_length(oldest);
        self.first_slot = if oldest + 1 < slots { oldest + 1 } else { 0 } as u16;
        self.events -= 1;
        if self.events == 0 {
            let start = self.area_start() as u32;
            self.head = start;
            self.tail = start;
        } else {
            let next_length = self.slot_length(usize::from(self.first_slot));
            self.head = self.placed_after(after, next_length) as u32;
        }
    }

    /// Bytes of the record area.
    fn area(&self) -> usize {
        self.buffer.len().saturating_sub(self.area_start())
    }

    /// Bytes of the retained records.
    fn live_bytes(&self) -> usize {
        self.records().map(<[u8]>::len).sum()
    }

    /// Moves the records to a larger area with room for `length` more bytes after them.
    /// `false` when it may not grow: at `max_bytes`, unless the ring is empty (an event alone is
    /// always kept).
    fn grow(&mut self, length: usize, max_bytes: usize) -> bool {
        let needed = self.live_bytes() + length;
        if needed > max_bytes && !self.is_empty() {
            return false;
        }
        let area = self.area();
        let target = area_for(needed, max_bytes)
            .max(area + area / 2)
            .min(max_bytes.max(needed));
        if target <= area {
            return false;
        }
        self.rebuild(target)
    }

    /// Replaces the buffer by one with an `area`-byte record area holding the same records
    /// from its start; `false` (nothing changed) when they would not fit or offsets would not
    /// fit in `u32`.
    fn rebuild(&mut self, area: usize) -> bool {
        let table = self.area_start();
        if area < self.live_bytes() || u32::try_from(table + area).is_err() {
            return false;
        }
        let mut buffer = vec![0u8; table + area].into_boxed_slice();
        if let (Some(new_table), Some(old_table)) =
            (buffer.get_mut(..table), self.buffer.get(..table))
        {
            new_table.copy_from_slice(old_table);
        }
        let mut at = table;
        for record in self.records() {
            if let Some(copy) = buffer.get_mut(at..at + record.len()) {
                copy.copy_from_slice(record);
            }
            at += record.len();
        }
        self.buffer = buffer;
        self.head = table as u32;
        self.tail = at as u32;
        true
    }

    /// Each retained record's bytes, oldest first.
    fn records(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let slots = usize::from(self.slots).max(1);
        let first = usize::from(self.first_slot);
        let mut after = self.head as usize;
        (0..self.len()).map_while(move |index| {
            let length = self.slot_length((first + index) % slots);
            let at = self.placed_after(after, length);
            after = at + length;
            self.buffer.get(at..after)
        })
    }
}

/// A record area for `needed` bytes of records: a quarter more, so that appends do not at once
/// need another, and at least [`INITIAL_AREA_BYTES`]; within `max_bytes` unless `needed` is
/// beyond it.
fn area_for(needed: usize, max_bytes: usize) -> usize {
    INITIAL_AREA_BYTES
        .max(needed + needed / 4)
        .next_multiple_of(64)
        .min(max_bytes)
        .max(needed)
}

/// Bytes of `event`'s record, when its lengths fit the header.
fn record_length(event: &RoomEvent<'_>) -> Option<usize> {
    // The lengths of strings held in memory cannot overflow `usize` summed (a few at most).
    let (id_len, length) = match &event.body {
        EventBody::Message {
            from,
            name,
            id,
            text,
            ..
        } => {
            let stored = |part: Option<&str>| part.map_or(0, |part| LENGTH_BYTES + part.len());
            let length = MESSAGE_HEADER + stored(*from) + stored(*name) + id.len() + text.len();
            (id.len(), length)
        }
        EventBody::Reply {
            in_reply_to, text, ..
        } => (
            in_reply_to.len(),
            REPLY_HEADER + in_reply_to.len() + text.len(),
        ),
    };
    // Well below `u32::MAX`, so that offsets past it still fit; the stored lengths of `from` and
    // `name` are then within `u32` too.
    (id_len <= usize::from(u16::MAX) && length <= u32::MAX as usize / 2).then_some(length)
}

/// Writes `event` into `record`, which is exactly [`record_length`] bytes. The header goes
/// straight into the record, field by field at fixed offsets, so that only the strings cost a
/// copy call.
fn encode(event: &RoomEvent<'_>, record: &mut [u8]) {
    let Some((header, mut rest)) = record.split_first_chunk_mut::<REPLY_HEADER>() else {
        return;
    };
    header[SEQ..SEQ + 8].copy_from_slice(&event.seq.to_le_bytes());
    header[TS..TS + 8].copy_from_slice(&event.ts.to_le_bytes());
    match &event.body {
        EventBody::Message {
            from,
            name,
            id,
            text,
            emotion,
        } => {
            header[FLAGS] = if from.is_some() { HAS_FROM } else { 0 }
                | if name.is_some() { HAS_NAME } else { 0 };
            header[DOMINANT] = emotion.dominant.index() as u8;
            header[ID_LEN..ID_LEN + 2].copy_from_slice(&(id.len() as u16).to_le_bytes());
            let Some((scores, after)) = rest.split_first_chunk_mut::<{ MESSAGE_HEADER - SCORES }>()
            else {
                return;
            };
            for (index, score) in emotion.scores.iter().enumerate() {
                scores[2 * index..2 * index + 2].copy_from_slice(&score.to_le_bytes());
            }
            rest = after;
            // A private room's record (neither `from` nor `name`) skips the two empty loops:
            // ten instructions a message in the chat load.
            if from.is_some() || name.is_some() {
                for part in [from, name].into_iter().flatten() {
                    put(&mut rest, &(part.len() as u32).to_le_bytes());
                }
                put(&mut rest, id.as_bytes());
                for part in [from, name].into_iter().flatten() {
                    put(&mut rest, part.as_bytes());
                }
            } else {
                put(&mut rest, id.as_bytes());
            }
            put(&mut rest, text.as_bytes());
        }
        EventBody::Reply {
            in_reply_to,
            text,
            emotion,
        } => {
            header[FLAGS] = IS_REPLY;
            header[DOMINANT] = emotion.index() as u8;
            let id_len = in_reply_to.len() as u16;
            header[ID_LEN..ID_LEN + 2].copy_from_slice(&id_len.to_le_bytes());
            put(&mut rest, in_reply_to.as_bytes());
            put(&mut rest, text.as_bytes());
        }
    }
}

/// Copies `bytes` to the front of `rest` and moves `rest` past them.
fn put(rest: &mut &mut [u8], bytes: &[u8]) {
    let taken = std::mem::take(rest);
    if let Some((field, after)) = taken.split_at_mut_checked(bytes.len()) {
        field.copy_from_slice(bytes);
        *rest = after;
    }
}

/// The event a record holds; `None` for bytes no record has (never written by [`encode`]).
fn decode(record: &[u8]) -> Option<RoomEvent<'_>> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(record.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(record.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(record.get(at..at + 8)?.try_into().ok()?));
    let flags = *record.get(FLAGS)?;
    let dominant = *Emotion::ALL.get(usize::from(*record.get(DOMINANT)?))?;
    let id_len = usize::from(u16_at(ID_LEN)?);
    let seq = u64_at(SEQ)?;
    let ts = u64_at(TS)?;
    let text_at = |at: usize, len: usize| std::str::from_utf8(record.get(at..at + len)?).ok();
    let body = if flags & IS_REPLY != 0 {
        let in_reply_to = text_at(REPLY_HEADER, id_len)?;
        let text_start = REPLY_HEADER + id_len;
        EventBody::Reply {
            in_reply_to,
            text: text_at(text_start, record.len().checked_sub(text_start)?)?,
            emotion: dominant,
        }
    } else {
        let mut scores = [0u16; 7];
        for (index, score) in scores.iter_mut().enumerate() {
            *score = u16_at(SCORES + 2 * index)?;
        }
        let mut header_len = MESSAGE_HEADER;
        let mut stored_length = |flag: u8| {
            if flags & flag == 0 {
                return Some(None);
            }
            let length = u32_at(header_len)? as usize;
            header_len += LENGTH_BYTES;
            Some(Some(length))
        };
        let from_len = stored_length(HAS_FROM)?;
        let name_len = stored_length(HAS_NAME)?;
        let id = text_at(header_len, id_len)?;
        let mut at = header_len + id_len;
        let mut stored_part = |length: Option<usize>| match length {
            None => Some(None),
            Some(length) => {
                let part = text_at(at, length)?;
                at += length;
                Some(Some(part))
            }
        };
        let from = stored_part(from_len)?;
        let name = stored_part(name_len)?;
        let text_start = at;
        EventBody::Message {
            from,
            name,
            id,
            text: text_at(text_start, record.len().checked_sub(text_start)?)?,
            emotion: WireEmotion { dominant, scores },
        }
    };
    Some(RoomEvent { seq, ts, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_random::XorShift;
    use std::collections::VecDeque;

    /// An event as the ring's user holds it, for comparing with what the ring gives back.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Owned {
        Message {
            seq: u64,
            ts: u64,
            from: Option<String>,
            name: Option<String>,
            id: String,
            text: String,
            emotion: WireEmotion,
        },
        Reply {
            seq: u64,
            ts: u64,
            in_reply_to: String,
            text: String,
            emotion: Emotion,
        },
    }

    impl Owned {
        fn event(&self) -> RoomEvent<'_> {
            match self {
                Owned::Message {
                    seq,
                    ts,
                    from,
                    name,
                    id,
                    text,
                    emotion,
                } => RoomEvent::message(
                    *seq,
                    *ts,
                    from.as_deref(),
                    name.as_deref(),
                    id,
                    text,
                    *emotion,
                ),
                Owned::Reply {
                    seq,
                    ts,
                    in_reply_to,
                    text,
                    emotion,
                } => RoomEvent::reply(*seq, *ts, in_reply_to, text, *emotion),
            }
        }
    }

    fn emotion(dominant: Emotion, seed: u16) -> WireEmotion {
        let mut scores = [seed, 1, 2, 3, 4, 5, 6];
        scores[dominant.index()] = 10_000 - seed;
        WireEmotion { dominant, scores }
    }

    fn message(seq: u64, text: &str) -> Owned {
        Owned::Message {
            seq,
            ts: 1_800_000_000_000 + seq,
            from: None,
            name: None,
            id: format!("c{seq}"),
            text: text.to_owned(),
            emotion: emotion(Emotion::Joy, 7),
        }
    }

    fn kept(ring: &HistoryRing) -> Vec<u64> {
        ring.iter().map(|event| event.seq).collect()
    }

    #[test]
    fn every_field_comes_back_as_pushed() {
        let events = [
            Owned::Message {
                seq: 1,
                ts: u64::MAX,
                from: Some("zoë".into()),
                name: Some("Zoë \"Z\" 🎉".into()),
                id: "".into(),
                text: "héllo\nthere".into(),
                emotion: emotion(Emotion::Surprise, 123),
            },
            Owned::Message {
                seq: 2,
                ts: 0,
                from: None,
                name: Some("".into()),
                id: "x".repeat(256),
                text: "".into(),
                emotion: emotion(Emotion::Anger, 0),
            },
            Owned::Reply {
                seq: u64::MAX,
                ts: 5,
                in_reply_to: "m1".into(),
                text: "Nice!".into(),
                emotion: Emotion::Neutral,
            },
        ];
        let mut ring = HistoryRing::default();
        for owned in &events {
            ring.push(&owned.event(), 100, 64 * 1024);
        }
        let back: Vec<RoomEvent<'_>> = ring.iter().collect();
        let expected: Vec<RoomEvent<'_>> = events.iter().map(Owned::event).collect();
        assert_eq!(back, expected);
        assert_eq!(ring.first_seq(), Some(1));
    }

    #[test]
    fn a_full_ring_drops_its_oldest_event_per_append_and_wraps_around() {
        let mut ring = HistoryRing::default();
        let mut area_after_filling = 0;
        let mut wraps = 0;
        for seq in 1..=1000u64 {
            // Lengths that vary, so records wrap at varying places.
            let text = "w".repeat((seq as usize * 37) % 90);
            let event = message(seq, &text);
            let retention = ring.push(&event.event(), 10, 64 * 1024);
            let expected_evicted = usize::from(seq > 10);
            assert_eq!(
                retention,
                Retention {
                    added: 1,
                    evicted: expected_evicted
                }
            );
            let newest: Vec<u64> = (seq.saturating_sub(9).max(1)..=seq).collect();
            assert_eq!(kept(&ring), newest);
            if seq == 20 {
                area_after_filling = ring.allocated_bytes();
            }
            // Placed at the start of the area: the ring wrapped around.
            let length = record_length(&event.event()).unwrap();
            wraps += usize::from(ring.tail as usize == ring.area_start() + length);
        }
        // No growth in the steady state: records are appended in the space the oldest left.
        assert_eq!(ring.allocated_bytes(), area_after_filling);
        assert!(wraps > 50, "{wraps} wraps");
        let last = ring.iter().last().unwrap();
        assert_eq!(last, message(1000, &"w".repeat(1000 * 37 % 90)).event());
    }

    #[test]
    fn long_texts_are_bounded_by_bytes_and_the_newest_is_always_kept() {
        let max_bytes = 4096;
        let mut ring = HistoryRing::default();
        let long = "é".repeat(1000); // 2,000 bytes
        for seq in 1..=5 {
            ring.push(&message(seq, &long).event(), 100, max_bytes);
            assert!(ring.allocated_bytes() <= 100 * SLOT_BYTES + max_bytes);
        }
        // One record is 2,000 bytes of text plus header and id: only one fits beside another.
        assert_eq!(kept(&ring), vec![4, 5]);
        // Short events fill the space again, up to the event limit.
        for seq in 6..=40 {
            ring.push(&message(seq, "short").event(), 100, max_bytes);
        }
        assert_eq!(kept(&ring)[0], 5);
        // An event larger than the cap is kept, alone; the ring then returns to its bound.
        let huge = "h".repeat(3 * max_bytes);
        let retention = ring.push(&message(41, &huge).event(), 100, max_bytes);
        assert_eq!(
            retention,
            Retention {
                added: 1,
                evicted: 36
            }
        );
        assert_eq!(kept(&ring), vec![41]);
        assert_eq!(ring.iter().next().unwrap(), message(41, &huge).event());
        let retention = ring.push(&message(42, "after").event(), 100, max_bytes);
        assert_eq!(
            retention,
            Retention {
                added: 1,
                evicted: 1
            }
        );
        assert_eq!(kept(&ring), vec![42]);
    }

    #[test]
    fn release_frees_the_buffer_and_a_released_ring_starts_again() {
        let mut ring = HistoryRing::default();
        assert_eq!(ring.allocated_bytes(), 0);
        for seq in 1..=3 {
            ring.push(&message(seq, "text").event(), 100, 64 * 1024);
        }
        assert!(ring.allocated_bytes() > 0);
        assert_eq!(ring.release(), 3);
        assert_eq!((ring.len(), ring.allocated_bytes()), (0, 0));
        assert_eq!(ring.first_seq(), None);
        ring.push(&message(4, "again").event(), 100, 64 * 1024);
        assert_eq!(kept(&ring), vec![4]);
    }

    #[test]
    fn a_ring_for_no_events_holds_nothing() {
        let mut ring = HistoryRing::default();
        let retention = ring.push(&message(1, "x").event(), 0, 64 * 1024);
        assert_eq!(retention, Retention::default());
        assert_eq!((ring.len(), ring.allocated_bytes()), (0, 0));
    }

    #[test]
    fn records_stay_compact() {
        // The benchmark's message: 62 bytes of text and a 2-byte id in a private room.
        let text = "I can't believe the demo worked on the first try, I'm thrilled";
        let event = message(1, text);
        let length = record_length(&event.event()).unwrap();
        println!(
            "record: {length} bytes for {} of id and text",
            2 + text.len()
        );
        assert_eq!(length, MESSAGE_HEADER + 2 + text.len());
        let named = Owned::Message {
            seq: 1,
            ts: 2,
            from: Some("bob".into()),
            name: Some("Bob".into()),
            id: "c1".into(),
            text: text.into(),
            emotion: emotion(Emotion::Joy, 7),
        };
        let length = record_length(&named.event()).unwrap();
        assert_eq!(
            length,
            MESSAGE_HEADER + 2 * LENGTH_BYTES + 2 + 3 + 3 + text.len()
        );
        let mut ring = HistoryRing::default();
        for seq in 1..=200 {
            ring.push(&message(seq, text).event(), 100, 64 * 1024);
        }
        // 100 such records, plus room to append without evicting more than one.
        println!("ring: {} bytes for 100 events", ring.allocated_bytes());
        assert!(ring.allocated_bytes() < 100 * SLOT_BYTES + 100 * length * 3 / 2);
    }

    /// Random lengths, kinds and limits against a model: the ring holds the newest events, as
    /// pushed, within both limits, and drops events for bytes only when they did not fit.
    #[test]
    fn matches_a_model_over_random_pushes() {
        let mut random = XorShift(0x5eed_1234_abcd_0001);
        for round in 0..40 {
            let max_events = 1 + random.below(30);
            let max_bytes = 200 + random.below(3000);
            let mut ring = HistoryRing::default();
            let mut model: VecDeque<Owned> = VecDeque::new();
            let mut retained = 0usize;
            for seq in 1..=400u64 {
                let longest_text = if random.below(10) == 0 { 600 } else { 60 };
                let text: String = "abcdéf🎉"
                    .chars()
                    .cycle()
                    .take(random.below(longest_text))
                    .collect();
                let owned = match random.below(4) {
                    0 => Owned::Reply {
                        seq,
                        ts: seq * 3,
                        in_reply_to: format!("r{seq}"),
                        text,
                        emotion: Emotion::ALL[random.below(7)],
                    },
                    kind => Owned::Message {
                        seq,
                        ts: seq * 3,
                        from: (kind == 1).then(|| format!("user{}", random.below(5))),
                        name: (kind == 2).then(|| "Ann".to_owned()),
                        id: format!("m{seq}"),
                        text,
                        emotion: emotion(Emotion::ALL[random.below(7)], seq as u16 % 100),
                    },
                };
                let retention = ring.push(&owned.event(), max_events, max_bytes);
                assert_eq!(retention.added, 1);
                retained = retained + retention.added - retention.evicted;
                model.push_back(owned);
                let mut last_evicted = None;
                while model.len() > retained {
                    last_evicted = model.pop_front();
                }
                let back: Vec<RoomEvent<'_>> = ring.iter().collect();
                let expected: Vec<RoomEvent<'_>> = model.iter().map(Owned::event).collect();
                assert_eq!(back, expected, "round {round}, seq {seq}");
                assert_eq!(ring.len(), retained);
                assert!(retained <= max_events);
                let length = |owned: &Owned| record_length(&owned.event()).unwrap();
                let bytes: usize = model.iter().map(length).sum();
                assert!(
                    retained == 1 || bytes <= max_bytes,
                    "round {round}, seq {seq}"
                );
                assert!(
                    ring.allocated_bytes() <= max_events * SLOT_BYTES + max_bytes.max(bytes),
                    "round {round}, seq {seq}: {} allocated, {bytes} retained, {retention:?}, max {max_events} events {max_bytes} bytes",
                    ring.allocated_bytes()
                );
                // Evicted for bytes only when the last event dropped could not have stayed:
                // with it the records would not have fitted, allowing for the space a wrap
                // leaves unused at the end (less than one record).
                let for_count = usize::from(retained + retention.evicted > max_events);
                if retention.evicted > for_count {
                    let dropped = last_evicted.as_ref().map_or(0, length);
                    let longest = model.iter().map(length).max().unwrap_or(0).max(dropped);
                    assert!(
                        bytes + dropped + longest > max_bytes,
                        "round {round}, seq {seq}: {bytes} + {dropped} bytes, longest {longest}"
                    );
                }
            }
        }
    }
}
