//! Rooms: naming rules, members, per-room sequence numbers and the bounded history ring.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use super::inline_vec::InlineVec;
use super::wire::{self, EmotionJson, WireEmotion};
use super::ConnId;
use crate::emotion::Emotion;
use crate::timer_wheel::TimerKey;

/// Private rooms are named `user:<sub>`.
pub const PRIVATE_PREFIX: &str = "user:";
/// Longest shared room name.
pub const MAX_SHARED_NAME: usize = 64;

/// Index of a room in the core's room slab. A private room's key also identifies its user while
/// they have a connection.
pub type RoomKey = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomName<'a> {
    /// `user:<sub>`, with the sub.
    Private(&'a str),
    /// A shared room name matching `[a-z0-9_-]{1,64}`.
    Shared(&'a str),
}

/// Classifies a client-supplied room name; `None` when it is neither a private room name nor a
/// valid shared one.
pub fn parse_room_name(name: &str) -> Option<RoomName<'_>> {
    if let Some(sub) = name.strip_prefix(PRIVATE_PREFIX) {
        return (!sub.is_empty()).then_some(RoomName::Private(sub));
    }
    let valid = !name.is_empty()
        && name.len() <= MAX_SHARED_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    valid.then_some(RoomName::Shared(name))
}

/// The bot reply owed to the latest message in a private room.
pub struct PendingReply {
    pub timer: TimerKey,
    pub in_reply_to: Box<str>,
    pub emotion: Emotion,
    pub confidence: f64,
}

/// A sequenced room event (`message` or `reply`), kept as data rather than as JSON: most events
/// (a user's message with one tab open) reach nobody but the ring, so they are encoded only when
/// another member must get one now or a client resumes. Encoding is deterministic, so a replay
/// carries exactly the bytes first sent.
pub struct RoomEvent {
    pub seq: u64,
    /// Unix milliseconds when the server accepted the event.
    pub ts: u64,
    pub body: EventBody,
}

pub enum EventBody {
    Message {
        /// The sender's private room name (`user:<sub>`), shared with that room.
        sender_room: Rc<str>,
        /// The sender's display name when the event was sent.
        name: Option<Rc<str>>,
        id_and_text: IdAndText,
        emotion: WireEmotion,
    },
    Reply {
        in_reply_to: Box<str>,
        text: &'static str,
        emotion: Emotion,
    },
}

/// A message's id followed by its text, in one buffer. A full history ring hands its oldest
/// event's buffer to the newest (see [`Room::evict_oldest_if_full`]), so that a message costs no
/// allocation and no free once the ring has filled. A boxed `str` with the lengths beside it
/// rather than a `String`: a ring slot stays 88 bytes.
pub struct IdAndText {
    /// The id, the text, then spaces up to the buffer's length (slack left by a longer message
    /// that used the buffer before).
    buffer: Box<str>,
    text_end: u32,
    id_len: u16,
}

/// Spaces to fill a reused buffer's slack with, a chunk at a time.
const PADDING: &str = "                                                                ";

impl IdAndText {
    /// `id` and `text` copied into `buffer`, which is reused when it is large enough and not
    /// much larger than needed (a ring slot must not hold on to a long message's buffer for a
    /// short one), and otherwise replaced by one of the exact size.
    pub fn fill(buffer: Box<str>, id: &str, text: &str) -> IdAndText {
        let needed = id.len() + text.len();
        let mut bytes = if buffer.len() < needed || buffer.len() > 2 * needed + PADDING.len() {
            String::with_capacity(needed)
        } else {
            let mut bytes = buffer.into_string();
            bytes.clear();
            bytes
        };
        bytes.push_str(id);
        bytes.push_str(text);
        // Filled to capacity, so that boxing it does not reallocate.
        while bytes.len() < bytes.capacity() {
            let gap = (bytes.capacity() - bytes.len()).min(PADDING.len());
            bytes.push_str(&PADDING[..gap]);
        }
        IdAndText {
            buffer: bytes.into_boxed_str(),
            // Ids are at most 64 characters (checked before) and frames are far below 4 GiB.
            text_end: u32::try_from(needed).unwrap_or(u32::MAX),
            id_len: u16::try_from(id.len()).unwrap_or(u16::MAX),
        }
    }

    /// The id and the text.
    pub fn split(&self) -> (&str, &str) {
        let used = self.buffer.get(..self.text_end as usize).unwrap_or("");
        used.split_at_checked(usize::from(self.id_len))
            .unwrap_or(("", used))
    }

    /// Bytes of id and text.
    fn len(&self) -> usize {
        self.text_end as usize
    }

    /// The buffer, for another message.
    fn into_buffer(self) -> Box<str> {
        self.buffer
    }
}

impl RoomEvent {
    pub fn message(
        seq: u64,
        ts: u64,
        sender_room: Rc<str>,
        name: Option<Rc<str>>,
        id_and_text: IdAndText,
        emotion: WireEmotion,
    ) -> RoomEvent {
        RoomEvent {
            seq,
            ts,
            body: EventBody::Message {
                sender_room,
                name,
                id_and_text,
                emotion,
            },
        }
    }

    pub fn reply(
        seq: u64,
        ts: u64,
        in_reply_to: &str,
        text: &'static str,
        emotion: Emotion,
    ) -> RoomEvent {
        RoomEvent {
            seq,
            ts,
            body: EventBody::Reply {
                in_reply_to: in_reply_to.into(),
                text,
                emotion,
            },
        }
    }

    /// The event's JSON as members of `room` get it.
    #[cfg(test)]
    pub fn encode(&self, room: &str) -> String {
        let mut out = Vec::new();
        self.encode_into(room, None, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// About how many bytes [`RoomEvent::encode_into`] writes.
    pub fn size_hint(&self, room: &str) -> usize {
        match &self.body {
            EventBody::Message { id_and_text, .. } => 320 + room.len() + id_and_text.len(),
            EventBody::Reply {
                in_reply_to, text, ..
            } => 160 + room.len() + in_reply_to.len() + text.len(),
        }
    }

    /// The event's JSON as members of `room` get it, appended to `out` (UTF-8). `emotion_json`:
    /// a message's emotion already encoded (when it was just scored and its sender's result
    /// needs the same bytes); otherwise it is encoded from the retained scores.
    pub fn encode_into(&self, room: &str, emotion_json: Option<&EmotionJson>, out: &mut Vec<u8>) {
        match &self.body {
            EventBody::Message {
                sender_room,
                name,
                id_and_text,
                emotion,
            } => {
                let (id, text) = id_and_text.split();
                let encoded_now;
                let emotion = match emotion_json {
                    Some(json) => json,
                    None => {
                        encoded_now = EmotionJson::new(emotion);
                        &encoded_now
                    }
                };
                wire::write_message_event(
                    out,
                    wire::MessageFields {
                        room,
                        seq: self.seq,
                        from: sender_room
                            .strip_prefix(PRIVATE_PREFIX)
                            .unwrap_or(sender_room),
                        name: name.as_deref(),
                        id,
                        text,
                        emotion,
                        ts: self.ts,
                    },
                )
            }
            EventBody::Reply {
                in_reply_to,
                text,
                emotion,
            } => out.extend_from_slice(
                wire::reply_event(room, self.seq, in_reply_to, text, *emotion, self.ts).as_bytes(),
            ),
        }
    }
}

pub struct Room {
    pub name: Rc<str>,
    /// Distinguishes this room from a later one reusing its slab key, for timers.
    pub generation: u32,
    pub members: InlineVec<ConnId, 2>,
    /// Seq of the latest event (0 before the first).
    pub last_seq: u64,
    /// Recent events, oldest first. Empty (no allocation) until the first event and again
    /// after the room has been idle long enough.
    pub history: VecDeque<RoomEvent>,
    /// `now` of the latest event.
    pub last_event_at: u64,
    /// Armed while the history ring is held, to release it once the room is idle.
    pub idle_timer: Option<TimerKey>,
    /// Shared rooms only: connections per user (keyed by the user's private room), so presence
    /// is announced for a user's first connection and last one only. Boxed so that private
    /// rooms, the vast majority, pay one pointer for it instead of an inline map.
    #[allow(clippy::box_collection)]
    pub presence: Option<Box<HashMap<RoomKey, u32>>>,
    /// Private rooms only, while the bot owes a reply.
    pub bot: Option<Box<PendingReply>>,
    pub last_template: Option<super::bot::TemplateId>,
}

impl Room {
    pub fn new(name: Rc<str>, generation: u32, last_seq: u64, shared: bool) -> Room {
        Room {
            name,
            generation,
            members: InlineVec::new(),
            last_seq,
            history: VecDeque::new(),
            last_event_at: 0,
            idle_timer: None,
            presence: shared.then(Default::default),
            bot: None,
            last_template: None,
        }
    }

    /// For a private room, its user's sub.
    pub fn private_sub(&self) -> &str {
        self.name.strip_prefix(PRIVATE_PREFIX).unwrap_or(&self.name)
    }

    /// Nothing keeps the room alive: no members, no retained events, no reply owed.
    pub fn is_unused(&self) -> bool {
        self.members.is_empty() && self.history.is_empty() && self.bot.is_none()
    }

    /// When the ring holds `capacity` events or more, removes the oldest now rather than after
    /// the next is appended, and returns its message buffer (empty when it was not a message)
    /// for the next message, with how many events were removed (0 or 1).
    pub fn evict_oldest_if_full(&mut self, capacity: usize) -> (Box<str>, usize) {
        if capacity == 0 || self.history.len() < capacity {
            return (Box::default(), 0);
        }
        match self.history.pop_front().map(|event| event.body) {
            Some(EventBody::Message { id_and_text, .. }) => (id_and_text.into_buffer(), 1),
            Some(EventBody::Reply { .. }) => (Box::default(), 1),
            None => (Box::default(), 0),
        }
    }

    /// Appends an event to the ring, dropping the oldest beyond `capacity`. Returns how the
    /// number of retained events changed (1 or 0).
    pub fn retain_event(&mut self, event: RoomEvent, capacity: usize) -> usize {
        if capacity == 0 {
            return 0;
        }
        self.history.push_back(event);
        if self.history.len() > capacity {
            self.history.pop_front();
            0
        } else {
            1
        }
    }

    /// What a client that has seen events up to `since` should get: whether some events it has
    /// not seen are gone (or `since` is from a different life of the room), and the seq after
    /// which retained events are to be replayed.
    pub fn resume_from(&self, since: u64) -> (bool, u64) {
        if since == 0 {
            return (false, 0);
        }
        let gap = if since > self.last_seq {
            true
        } else {
            match self.history.front() {
                Some(first) => first.seq > since + 1,
                None => self.last_seq > since,
            }
        };
        (gap, if gap { 0 } else { since })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names() {
        assert_eq!(
            parse_room_name("user:alice"),
            Some(RoomName::Private("alice"))
        );
        assert_eq!(parse_room_name("lobby"), Some(RoomName::Shared("lobby")));
        assert_eq!(parse_room_name("a-b_9"), Some(RoomName::Shared("a-b_9")));
        assert_eq!(
            parse_room_name(&"x".repeat(64)),
            Some(RoomName::Shared(&"x".repeat(64)))
        );
        for bad in ["", "user:", "Lobby", "a b", "ü", "a.b", "a:b"] {
            assert_eq!(parse_room_name(bad), None, "{bad:?}");
        }
        assert_eq!(parse_room_name(&"x".repeat(65)), None);
    }

    fn room_with_events(seqs: std::ops::RangeInclusive<u64>, capacity: usize) -> Room {
        let mut room = Room::new(Rc::from("r"), 1, 0, true);
        for seq in seqs {
            room.last_seq = seq;
            let event = RoomEvent::reply(seq, 0, "m", "hi", Emotion::Joy);
            room.retain_event(event, capacity);
        }
        room
    }

    #[test]
    fn history_is_bounded() {
        let room = room_with_events(1..=10, 4);
        let kept: Vec<u64> = room.history.iter().map(|e| e.seq).collect();
        assert_eq!(kept, vec![7, 8, 9, 10]);
    }

    #[test]
    fn retained_message_encodes_its_fields() {
        let mut emotion = WireEmotion {
            dominant: Emotion::Joy,
            scores: [0; 7],
        };
        emotion.scores[Emotion::Joy.index()] = 7500;
        emotion.scores[Emotion::Neutral.index()] = 2500;
        let event = RoomEvent::message(
            4,
            1_800_000_000_123,
            Rc::from("user:zoë"),
            Some(Rc::from("Zoë")),
            IdAndText::fill(Box::default(), "c1", "héllo \"you\""),
            emotion,
        );
        let json: serde_json::Value = serde_json::from_str(&event.encode("lobby")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "type": "message", "room": "lobby", "seq": 4, "from": "zoë", "name": "Zoë",
                "id": "c1", "text": "héllo \"you\"",
                "emotion": {"dominant": "joy", "confidence": 0.75, "scores": {
                    "anger": 0, "disgust": 0, "fear": 0, "joy": 0.75, "sadness": 0,
                    "surprise": 0, "neutral": 0.25}},
                "ts": 1_800_000_000_123u64
            })
        );
        let reply = RoomEvent::reply(5, 9, "c1", "Nice!", Emotion::Joy).encode("user:zoë");
        let json: serde_json::Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "reply", "room": "user:zoë", "seq": 5,
                "from": "emotibot", "in_reply_to": "c1", "text": "Nice!", "emotion": "joy",
                "ts": 9})
        );
    }

    #[test]
    fn message_buffers_are_reused_when_they_fit() {
        let first = IdAndText::fill(Box::default(), "c1", "a longer first message");
        assert_eq!(first.split(), ("c1", "a longer first message"));
        let buffer = first.into_buffer();
        let address = buffer.as_ptr();
        let second = IdAndText::fill(buffer, "c2", "shorter");
        assert_eq!(second.split(), ("c2", "shorter"));
        assert_eq!(second.len(), 9);
        assert_eq!(second.buffer.as_ptr(), address, "reused in place");
        // Too small, then far too large: a buffer of the exact size instead.
        let grown = IdAndText::fill(second.into_buffer(), "c3", &"x".repeat(40));
        assert_eq!(grown.split(), ("c3", "x".repeat(40).as_str()));
        let shrunk = IdAndText::fill(
            IdAndText::fill(Box::default(), "", &"y".repeat(500)).into_buffer(),
            "",
            "z",
        );
        assert_eq!(shrunk.split(), ("", "z"));
        assert_eq!(shrunk.buffer.len(), 1);
    }

    #[test]
    fn a_full_ring_gives_up_its_oldest_message_buffer() {
        let mut room = Room::new(Rc::from("user:a"), 1, 0, false);
        let emotion = WireEmotion {
            dominant: Emotion::Neutral,
            scores: [0, 0, 0, 0, 0, 0, 10_000],
        };
        for seq in 1..=2 {
            let (buffer, evicted) = room.evict_oldest_if_full(2);
            assert_eq!((buffer.len(), evicted), (0, 0));
            let text = IdAndText::fill(buffer, "id", "text");
            let event = RoomEvent::message(seq, 0, Rc::from("user:a"), None, text, emotion);
            assert_eq!(room.retain_event(event, 2), 1);
        }
        let (buffer, evicted) = room.evict_oldest_if_full(2);
        assert_eq!((&*buffer, evicted), ("idtext", 1));
        let kept: Vec<u64> = room.history.iter().map(|e| e.seq).collect();
        assert_eq!(kept, vec![2]);
        assert_eq!(room.evict_oldest_if_full(0).1, 0);
    }

    #[test]
    fn retained_events_stay_small() {
        // 100 events per room are retained for every user: the ring's slots are most of it.
        println!("RoomEvent: {} bytes", std::mem::size_of::<RoomEvent>());
        assert!(std::mem::size_of::<RoomEvent>() <= 88);
    }

    #[test]
    fn resume_decisions() {
        let room = room_with_events(1..=10, 4); // retains 7..=10
        assert_eq!(room.resume_from(0), (false, 0));
        assert_eq!(room.resume_from(6), (false, 6));
        assert_eq!(room.resume_from(10), (false, 10));
        assert_eq!(room.resume_from(5), (true, 0));
        assert_eq!(room.resume_from(11), (true, 0));
        let mut released = room_with_events(1..=3, 4);
        released.history.clear();
        assert_eq!(released.resume_from(3), (false, 3));
        assert_eq!(released.resume_from(2), (true, 0));
    }
}
