//! A room's history ring: its latest events, kept for clients that resume, as compact records
//! appended one after another in a single byte buffer.
//!
//! Every message in a busy room retains one event and, once the ring is full, drops the oldest,
//! and with many users each ring is cold by the time its room speaks again. So the layout is
//! chosen for the cache lines an append touches: the new record's bytes, written sequentially
//! after the previous one (whose last line is often still warm), and one line of the offset
//! table, which every append to the room reads and writes in turn. The oldest record itself is
//! never read to drop it: dropping it only moves the table's first slot, and where the next
//! record starts is in the table. The chat core asks for the new record's lines ahead
//! (`prepare_message`, as soon as the room is known), and once written they are sent down to L3
//! ([`cache_hints`]): all the rooms' rings together are larger than a core's L2, and are read
//! back only when a client resumes.
//!
//! Buffer layout: `slots` little-endian `u32` record offsets (slot `i` belongs to the `i`-th
//! event after the one in `first_slot`, modulo `slots`), then the record area. Records never
//! straddle the end of the buffer: one that does not fit after the newest starts again at the
//! beginning of the area. So a record ends where the next one starts, or, the next one having
//! gone to the start of the area, at the ring's `wrap_end`; the newest ends at `tail`.

use super::room::{EventBody, MessageEvent, RoomEvent};
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
    /// The offset table, then the record area; empty until the first event and after release.
    buffer: Box<[u8]>,
    /// Offset just after the newest record (the start of the area when empty).
    tail: u32,
    /// While the retained records wrap around (the newer ones from the start of the area, the
    /// older ones after them), the end of the last record before the start of the area: no
    /// table entry says where that record ends. Not read otherwise.
    wrap_end: u32,
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
    /// Only an address is computed, unchecked: a prefetch cannot fault, and one past the end
    /// of the buffer (or of an empty ring's) only fetches a line for nothing.
    #[inline(always)]
    pub fn prepare_message(&self, id_len: usize, text_len: usize) {
        let next = self.buffer.as_ptr().wrapping_add(self.tail as usize);
        cache_hints::prefetch_range_for_write(next, MESSAGE_HEADER + id_len + text_len);
    }

    /// Appends `event`, first dropping the oldest events beyond `max_events - 1` and as many as
    /// it takes to stay within `max_bytes` of records.
    pub fn push(
        &mut self,
        event: &RoomEvent<'_>,
        max_events: usize,
        max_bytes: usize,
    ) -> Retention {
        self.push_encoded(
            (max_events, max_bytes),
            || record_length(event),
            |record| encode(event, record),
            || *event,
        )
    }

    /// [`HistoryRing::push`] for a message, as the chat core has its fields: the way most
    /// events are appended.
    ///
    /// A room that has spoken for a while has a full ring whose record area is settled: each
    /// append then drops the oldest event and writes the new record where the space allows,
    /// which is settled here, inline in the caller, with the table and three offsets (the
    /// general path weighs growing, shrinking and dropping more, and is a call). The fields
    /// stay flat: a [`RoomEvent`] (an enum) is laid out in memory only for the general path.
    #[inline(always)]
    pub fn push_message(
        &mut self,
        message: &MessageEvent<'_>,
        max_events: usize,
        max_bytes: usize,
    ) -> Retention {
        self.push_encoded(
            (max_events, max_bytes),
            || message_length(message),
            #[inline(always)]
            |record| encode_message(message, record),
            || message.event(),
        )
    }

    /// [`HistoryRing::push`] of an event that `length` measures and `encode` writes as a
    /// record: in place of the oldest event when that is all it takes (see
    /// [`HistoryRing::place_replacing_oldest`]), otherwise the general path with the event
    /// `event` builds.
    #[inline(always)]
    fn push_encoded<'a>(
        &mut self,
        (max_events, max_bytes): (usize, usize),
        length: impl FnOnce() -> Option<usize>,
        encode: impl FnOnce(&mut [u8]),
        event: impl FnOnce() -> RoomEvent<'a>,
    ) -> Retention {
        if max_events != 0 {
            if let Some(length) = length() {
                if let Some(record) = self.place_replacing_oldest(length, max_bytes) {
                    encode(record);
                    cache_hints::demote(record);
                    return Retention {
                        added: 1,
                        evicted: 1,
                    };
                }
            }
        }
        self.push_general(event(), max_events, max_bytes)
    }

    /// The `length` bytes a new record takes in place of the oldest event, when the ring is
    /// full by count, at least two events long, within `max_bytes` and the record fits without
    /// dropping another: exactly what the general path does then. The oldest event is dropped
    /// and the new one counted (the caller writes its record); `None` (nothing changed)
    /// otherwise.
    #[inline(always)]
    fn place_replacing_oldest(&mut self, length: usize, max_bytes: usize) -> Option<&mut [u8]> {
        let slots = usize::from(self.slots);
        if usize::from(self.events) != slots || slots < 2 {
            return None;
        }
        let (start, end) = (slots * SLOT_BYTES, self.buffer.len());
        // The area grew past the cap for an event larger than it, and has to shrink. (The
        // buffer holds the table and the area: `end` is past `start`, and were it not, the
        // wrapped difference would send this to the general path too.)
        if end.wrapping_sub(start) > max_bytes {
            return None;
        }
        let oldest = usize::from(self.first_slot);
        let next = self.slot_after(oldest);
        // With the oldest dropped, the records start at the next one.
        let head = self.slot_start(next);
        let tail = self.tail as usize;
        let at = if tail > head {
            if tail + length <= end {
                tail
            } else if start + length <= head {
                start
            } else {
                return None;
            }
        } else if tail + length <= head {
            tail
        } else {
            return None;
        };
        if at + length > end {
            return None;
        }
        // The oldest event's slot is the one after the newest: it takes the new record.
        self.first_slot = next as u16;
        self.note_placed(oldest, at, length);
        self.buffer.get_mut(at..at + length)
    }

    /// [`HistoryRing::push`] in every case: a ring that is not full, grows, shrinks back to
    /// the byte cap or drops more than one event.
    #[inline(never)]
    fn push_general(
        &mut self,
        event: RoomEvent<'_>,
        max_events: usize,
        max_bytes: usize,
    ) -> Retention {
        let event = &event;
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
        // The slot after the newest; below `2 * slots`, so one subtraction wraps it.
        let slot = usize::from(self.first_slot) + self.len();
        let slot = slot.checked_sub(usize::from(self.slots)).unwrap_or(slot);
        let Some(record) = self.buffer.get_mut(at..at + length) else {
            // `free_run` only returns runs inside the buffer.
            return Retention { added: 0, evicted };
        };
        encode(event, record);
        cache_hints::demote(record);
        self.note_placed(slot, at, length);
        self.events += 1;
        Retention { added: 1, evicted }
    }

    fn area_start(&self) -> usize {
        usize::from(self.slots) * SLOT_BYTES
    }

    /// The table slot after `slot`, wrapping.
    #[inline(always)]
    fn slot_after(&self, slot: usize) -> usize {
        if slot + 1 < usize::from(self.slots) {
            slot + 1
        } else {
            0
        }
    }

    /// Where the record in table slot `slot` starts.
    #[inline(always)]
    fn slot_start(&self, slot: usize) -> usize {
        let at = slot * SLOT_BYTES;
        self.buffer
            .get(at..at + SLOT_BYTES)
            .and_then(|bytes| bytes.try_into().ok())
            .map_or(0, |bytes| u32::from_le_bytes(bytes) as usize)
    }

    /// Notes the newest record, `length` bytes at `at`, in table slot `slot`. One that does not
    /// follow the previous newest went back to the start of the area: where that one ended
    /// becomes the wrap end.
    #[inline(always)]
    fn note_placed(&mut self, slot: usize, at: usize, length: usize) {
        set_slot_start(&mut self.buffer, slot, at);
        let tail = self.tail as usize;
        if at != tail {
            self.wrap_end = tail as u32;
        }
        // Offsets fit in `u32`: `rebuild` checks the buffer's size.
        self.tail = (at + length) as u32;
    }

    /// Where the oldest record starts (the start of the area when empty).
    fn head(&self) -> usize {
        if self.events == 0 {
            self.area_start()
        } else {
            self.slot_start(usize::from(self.first_slot))
        }
    }

    /// Where a record of `length` bytes can go now without overwriting a retained one.
    fn free_run(&mut self, length: usize) -> Option<usize> {
        let (start, end) = (self.area_start(), self.buffer.len());
        if self.events == 0 {
            self.tail = start as u32;
            return (start + length <= end).then_some(start);
        }
        let (head, tail) = (self.head(), self.tail as usize);
        if tail > head {
            // Records in [head, tail): free after them, then before them.
            if tail + length <= end {
                Some(tail)
            } else {
                (start + length <= head).then_some(start)
            }
        } else {
            // Wrapped: records in [head, wrap_end) and [start, tail); free in between.
            (tail + length <= head).then_some(tail)
        }
    }

    /// Drops the oldest event: only the table's first slot moves, no record is read.
    fn evict_oldest(&mut self) {
        if self.events == 0 {
            return;
        }
        self.first_slot = self.slot_after(usize::from(self.first_slot)) as u16;
        self.events -= 1;
        if self.events == 0 {
            self.tail = self.area_start() as u32;
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
    /// from its start, in the same table slots; `false` (nothing changed) when they would not
    /// fit or offsets would not fit in `u32`.
    fn rebuild(&mut self, area: usize) -> bool {
        let table = self.area_start();
        if area < self.live_bytes() || u32::try_from(table + area).is_err() {
            return false;
        }
        let mut buffer = vec![0u8; table + area].into_boxed_slice();
        let slots = usize::from(self.slots).max(1);
        let mut at = table;
        for (index, record) in self.records().enumerate() {
            let slot = (usize::from(self.first_slot) + index) % slots;
            set_slot_start(&mut buffer, slot, at);
            if let Some(copy) = buffer.get_mut(at..at + record.len()) {
                copy.copy_from_slice(record);
            }
            at += record.len();
        }
        self.buffer = buffer;
        self.tail = at as u32;
        self.wrap_end = at as u32;
        true
    }

    /// Each retained record's bytes, oldest first. A record ends where the next one starts,
    /// unless the next one went to the start of the area (then at `wrap_end`); the newest ends
    /// at `tail`.
    fn records(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let slots = usize::from(self.slots).max(1);
        let first = usize::from(self.first_slot);
        let count = self.len();
        (0..count).map_while(move |index| {
            let at = self.slot_start((first + index) % slots);
            let end = if index + 1 == count {
                self.tail as usize
            } else {
                let next = self.slot_start((first + index + 1) % slots);
                if next > at {
                    next
                } else {
                    self.wrap_end as usize
                }
            };
            self.buffer.get(at..end)
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

/// Writes into the offset table at the start of `buffer` that table slot `slot`'s record starts
/// at `at`.
#[inline(always)]
fn set_slot_start(buffer: &mut [u8], slot: usize, at: usize) {
    let at_slot = slot * SLOT_BYTES;
    if let Some(bytes) = buffer.get_mut(at_slot..at_slot + SLOT_BYTES) {
        bytes.copy_from_slice(&(at as u32).to_le_bytes());
    }
}

/// Bytes of `event`'s record, when its lengths fit the header.
#[inline(always)]
fn record_length(event: &RoomEvent<'_>) -> Option<usize> {
    match &event.body {
        EventBody::Message { .. } => event.as_message().and_then(|m| message_length(&m)),
        // The lengths of strings held in memory cannot overflow `usize` summed (a few at most).
        EventBody::Reply {
            in_reply_to, text, ..
        } => fits_header(
            in_reply_to.len(),
            REPLY_HEADER + in_reply_to.len() + text.len(),
        ),
    }
}

/// Bytes of `message`'s record, when its lengths fit the header.
#[inline(always)]
fn message_length(message: &MessageEvent<'_>) -> Option<usize> {
    // The lengths of strings held in memory cannot overflow `usize` summed (a few at most).
    let stored = |part: Option<&str>| part.map_or(0, |part| LENGTH_BYTES + part.len());
    let length = MESSAGE_HEADER
        + stored(message.from)
        + stored(message.name)
        + message.id.len()
        + message.text.len();
    fits_header(message.id.len(), length)
}

/// `length`, when a record of that many bytes with an `id_len`-byte id fits the header.
#[inline(always)]
fn fits_header(id_len: usize, length: usize) -> Option<usize> {
    // Well below `u32::MAX`, so that offsets past it still fit; the stored lengths of `from` and
    // `name` are then within `u32` too.
    (id_len <= usize::from(u16::MAX) && length <= u32::MAX as usize / 2).then_some(length)
}

/// Writes `event` into `record`, which is exactly [`record_length`] bytes.
fn encode(event: &RoomEvent<'_>, record: &mut [u8]) {
    match &event.body {
        EventBody::Message { .. } => {
            if let Some(message) = event.as_message() {
                encode_message(&message, record);
            }
        }
        EventBody::Reply {
            in_reply_to,
            text,
            emotion,
        } => {
            let Some((header, mut rest)) = record.split_first_chunk_mut::<REPLY_HEADER>() else {
                return;
            };
            let dominant = emotion.index() as u8;
            write_common_header(
                header,
                event.seq,
                event.ts,
                IS_REPLY,
                dominant,
                in_reply_to.len(),
            );
            put(&mut rest, in_reply_to.as_bytes());
            put(&mut rest, text.as_bytes());
        }
    }
}

/// Writes `message` into `record`, which is exactly [`message_length`] bytes. The header goes
/// straight into the record at fixed offsets, its first four bytes as one word and the scores
/// as one array, and short strings as two overlapping moves each: no copy calls.
#[inline(always)]
fn encode_message(message: &MessageEvent<'_>, record: &mut [u8]) {
    let MessageEvent {
        seq,
        ts,
        from,
        name,
        id,
        text,
        emotion,
    } = *message;
    let Some((header, mut rest)) = record.split_first_chunk_mut::<MESSAGE_HEADER>() else {
        return;
    };
    let flags =
        if from.is_some() { HAS_FROM } else { 0 } | if name.is_some() { HAS_NAME } else { 0 };
    let dominant = emotion.dominant.index() as u8;
    let Some((common, scores)) = header.split_first_chunk_mut::<REPLY_HEADER>() else {
        return;
    };
    write_common_header(common, seq, ts, flags, dominant, id.len());
    if let Some(scores) = scores.first_chunk_mut() {
        *scores = score_bytes(&emotion.scores);
    }
    // A private room's record (neither `from` nor `name`) skips the two empty loops.
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

/// Seven scores as fourteen little-endian bytes, copied as a whole (two loads and two
/// stores) rather than as seven `u16`s, which the compiler does not merge.
#[inline(always)]
fn score_bytes(scores: &[u16; 7]) -> [u8; MESSAGE_HEADER - SCORES] {
    // SAFETY: `[u16; 7]` and `[u8; 14]` have the same size, and any bytes are valid `u8`s.
    // `to_le` (nothing to do on little-endian targets) makes the bytes little-endian.
    let bytes: [u8; MESSAGE_HEADER - SCORES] =
        unsafe { std::mem::transmute::<[u16; 7], [u8; 14]>(scores.map(u16::to_le)) };
    debug_assert!(scores
        .iter()
        .zip(bytes.chunks_exact(2))
        .all(|(score, pair)| pair == score.to_le_bytes()));
    bytes
}

/// The header both kinds start with: `FLAGS`, `DOMINANT` and `ID_LEN` as one little-endian
/// word, then `SEQ` and `TS`. `id_len` fits in `u16` (`record_length` checks it).
#[inline(always)]
fn write_common_header(
    header: &mut [u8; REPLY_HEADER],
    seq: u64,
    ts: u64,
    flags: u8,
    dominant: u8,
    id_len: usize,
) {
    const _: () = assert!(DOMINANT == FLAGS + 1 && ID_LEN == FLAGS + 2 && SEQ == FLAGS + 4);
    let first = u32::from(flags) | u32::from(dominant) << 8 | (id_len as u32) << 16;
    header[FLAGS..SEQ].copy_from_slice(&first.to_le_bytes());
    header[SEQ..SEQ + 8].copy_from_slice(&seq.to_le_bytes());
    header[TS..TS + 8].copy_from_slice(&ts.to_le_bytes());
}

/// Copies `bytes` to the front of `rest` and moves `rest` past them.
#[inline(always)]
fn put(rest: &mut &mut [u8], bytes: &[u8]) {
    let taken = std::mem::take(rest);
    if let Some((field, after)) = taken.split_at_mut_checked(bytes.len()) {
        copy_short(field, bytes);
        *rest = after;
    }
}

/// `to.copy_from_slice(from)` (of equal lengths), inline for up to 64 bytes: two overlapping
/// moves of the widest size that fits (two words, or two pairs of 16-byte words), as `memcpy` does, without a call (which
/// also makes the caller keep its values in memory across it). Ids and most chat lines are
/// that short.
#[inline(always)]
fn copy_short(to: &mut [u8], from: &[u8]) {
    fn ends<const N: usize>(to: &mut [u8], from: &[u8]) {
        if let (Some(to_first), Some(from_first)) = (to.first_chunk_mut::<N>(), from.first_chunk())
        {
            *to_first = *from_first;
        }
        if let (Some(to_last), Some(from_last)) = (to.last_chunk_mut::<N>(), from.last_chunk()) {
            *to_last = *from_last;
        }
    }
    let length = from.len();
    if to.len() != length {
        return;
    }
    // Tested widest first, as a tree: two or three comparisons for any length.
    if length >= 16 {
        if length <= 32 {
            ends::<16>(to, from);
        } else if length <= 64 {
            ends::<32>(to, from);
        } else {
            to.copy_from_slice(from);
        }
    } else if length >= 4 {
        if length >= 8 {
            ends::<8>(to, from);
        } else {
            ends::<4>(to, from);
        }
    } else if length >= 2 {
        ends::<2>(to, from);
    } else if let (Some(to_byte), Some(from_byte)) = (to.first_mut(), from.first()) {
        *to_byte = *from_byte;
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

    /// The chat core appends messages as flat fields: the same records, retentions and
    /// evictions as the same events pushed as [`RoomEvent`]s, in every path.
    #[test]
    fn messages_pushed_as_fields_are_kept_as_events_are() {
        let mut random = XorShift(0x5eed_0000_feed_0002);
        let (mut as_events, mut as_fields) = (HistoryRing::default(), HistoryRing::default());
        for seq in 1..=600u64 {
            let longest_text = if random.below(8) == 0 { 900 } else { 90 };
            let text = "é-".repeat(random.below(longest_text) / 2);
            let from = (random.below(3) == 0).then(|| format!("user{}", random.below(4)));
            let name = (random.below(3) == 0).then_some("Bo");
            let id = format!("c{seq}");
            let message = MessageEvent {
                seq,
                ts: seq * 7,
                from: from.as_deref(),
                name,
                id: &id,
                text: &text,
                emotion: emotion(Emotion::ALL[random.below(7)], seq as u16),
            };
            let (max_events, max_bytes) = (12, 1500);
            let pushed = as_events.push(&message.event(), max_events, max_bytes);
            let appended = as_fields.push_message(&message, max_events, max_bytes);
            assert_eq!(pushed, appended, "seq {seq}");
            assert!(as_events.iter().eq(as_fields.iter()), "seq {seq}");
            assert_eq!(as_fields.iter().last(), Some(message.event()));
        }
    }

    #[test]
    fn short_copies_copy_every_byte() {
        let from: Vec<u8> = (1..=100).collect();
        for length in 0..=100 {
            let mut to = vec![0u8; length + 1];
            copy_short(&mut to[..length], &from[..length]);
            assert_eq!(&to[..length], &from[..length], "length {length}");
            assert_eq!(to[length], 0, "length {length}: wrote past the end");
        }
        // Unequal lengths copy nothing.
        let mut to = [0u8; 4];
        copy_short(&mut to, &from[..3]);
        assert_eq!(to, [0; 4]);
    }

    #[test]
    fn scores_are_stored_little_endian() {
        let scores = [0x0102, 0x0304, 0x0506, 0x0708, 0x090a, 0x0b0c, 0xfffe];
        assert_eq!(
            score_bytes(&scores),
            [2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 0xfe, 0xff]
        );
    }

    /// A full ring appends in place of its oldest event without the general path; records
    /// that went to the start of the area and the ones left before the wrap both read back
    /// whole, and a ring grown past a (smaller) byte cap takes the general path to shrink.
    #[test]
    fn a_full_ring_appends_in_place_across_wraps() {
        let mut ring = HistoryRing::default();
        let mut wraps = 0;
        for seq in 1..=300u64 {
            let text = "x".repeat((seq as usize * 13) % 70);
            let before = ring.tail;
            let retention = ring.push(&message(seq, &text).event(), 4, 4096);
            let full = seq > 4;
            assert_eq!(retention.evicted, usize::from(full), "seq {seq}");
            wraps += usize::from(full && ring.tail < before);
            let newest: Vec<u64> = (seq.saturating_sub(3).max(1)..=seq).collect();
            assert_eq!(kept(&ring), newest, "seq {seq}");
            let back: Vec<RoomEvent<'_>> = ring.iter().collect();
            let owned: Vec<Owned> = newest
                .iter()
                .map(|&seq| message(seq, &"x".repeat((seq as usize * 13) % 70)))
                .collect();
            let expected: Vec<RoomEvent<'_>> = owned.iter().map(Owned::event).collect();
            assert_eq!(back, expected, "seq {seq}");
        }
        assert!(wraps > 20, "{wraps} wraps");
        // Grown past the cap for an event larger than it, then back within it.
        let huge = "h".repeat(1000);
        ring.push(&message(301, &huge).event(), 4, 400);
        assert_eq!(kept(&ring), vec![301]);
        for seq in 302..=306 {
            ring.push(&message(seq, "after").event(), 4, 400);
        }
        assert_eq!(kept(&ring), vec![303, 304, 305, 306]);
        assert!(ring.allocated_bytes() <= 4 * SLOT_BYTES + 400);
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
