//! Rooms: naming rules, members, per-room sequence numbers and the bounded history ring.

use std::collections::HashMap;
use std::rc::Rc;

use super::history::HistoryRing;
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

/// A sequenced room event (`message` or `reply`) as borrowed fields: built from a client's
/// frame or a bot reply to be sent and retained, or read back from the history ring for a
/// replay. Most events (a user's message with one tab open) reach nobody but the ring, so they
/// are encoded only when another member must get one now or a client resumes. Encoding is
/// deterministic, so a replay carries exactly the bytes first sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomEvent<'a> {
    pub seq: u64,
    /// Unix milliseconds when the server accepted the event.
    pub ts: u64,
    pub body: EventBody<'a>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventBody<'a> {
    Message {
        /// The sender's sub; `None` in a private room, whose own user is the only sender (the
        /// sub is then the room name's, and the ring need not store it).
        from: Option<&'a str>,
        /// The sender's display name when the event was sent.
        name: Option<&'a str>,
        id: &'a str,
        text: &'a str,
        emotion: WireEmotion,
    },
    Reply {
        in_reply_to: &'a str,
        text: &'a str,
        emotion: Emotion,
    },
}

/// A `message` event's fields, flat: how the chat core holds a message it has just accepted,
/// to retain it (the history ring writes these straight into a record) and, when someone else
/// is to get it now, to send it as a [`RoomEvent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageEvent<'a> {
    pub seq: u64,
    /// Unix milliseconds when the server accepted the message.
    pub ts: u64,
    /// See [`EventBody::Message`].
    pub from: Option<&'a str>,
    pub name: Option<&'a str>,
    pub id: &'a str,
    pub text: &'a str,
    pub emotion: WireEmotion,
}

impl<'a> MessageEvent<'a> {
    pub fn event(&self) -> RoomEvent<'a> {
        RoomEvent::message(
            self.seq,
            self.ts,
            self.from,
            self.name,
            self.id,
            self.text,
            self.emotion,
        )
    }
}

impl<'a> RoomEvent<'a> {
    /// The flat fields of a `message` event ([`MessageEvent::event`] undone); `None` for a reply.
    #[inline(always)]
    pub fn as_message(&self) -> Option<MessageEvent<'a>> {
        match self.body {
            EventBody::Message {
                from,
                name,
                id,
                text,
                emotion,
            } => Some(MessageEvent {
                seq: self.seq,
                ts: self.ts,
                from,
                name,
                id,
                text,
                emotion,
            }),
            EventBody::Reply { .. } => None,
        }
    }

    pub fn message(
        seq: u64,
        ts: u64,
        from: Option<&'a str>,
        name: Option<&'a str>,
        id: &'a str,
        text: &'a str,
        emotion: WireEmotion,
    ) -> RoomEvent<'a> {
        RoomEvent {
            seq,
            ts,
            body: EventBody::Message {
                from,
                name,
                id,
                text,
                emotion,
            },
        }
    }

    pub fn reply(
        seq: u64,
        ts: u64,
        in_reply_to: &'a str,
        text: &'a str,
        emotion: Emotion,
    ) -> RoomEvent<'a> {
        RoomEvent {
            seq,
            ts,
            body: EventBody::Reply {
                in_reply_to,
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
            EventBody::Message { id, text, .. } => 320 + room.len() + id.len() + text.len(),
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
                from,
                name,
                id,
                text,
                emotion,
            } => {
                let encoded_now;
                let emotion = match emotion_json {
                    Some(json) => json,
                    None => {
                        encoded_now = EmotionJson::new(emotion);
                        &encoded_now
                    }
                };
                let room_user = || room.strip_prefix(PRIVATE_PREFIX).unwrap_or(room);
                wire::write_message_event(
                    out,
                    wire::MessageFields {
                        room,
                        seq: self.seq,
                        from: from.unwrap_or_else(room_user),
                        name: *name,
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
    pub history: HistoryRing,
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
            history: HistoryRing::default(),
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
            match self.history.first_seq() {
                Some(first) => first > since + 1,
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
            room.history.push(&event, capacity, 64 * 1024);
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
            Some("zoë"),
            Some("Zoë"),
            "c1",
            "héllo \"you\"",
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
    fn a_private_room_message_is_from_the_room_user() {
        let emotion = WireEmotion {
            dominant: Emotion::Neutral,
            scores: [0, 0, 0, 0, 0, 0, 10_000],
        };
        let own = RoomEvent::message(1, 2, None, None, "i", "t", emotion).encode("user:zoë");
        let json: serde_json::Value = serde_json::from_str(&own).unwrap();
        assert_eq!(json["from"], "zoë");
        assert_eq!(json["room"], "user:zoë");
        assert!(json.get("name").is_none());
    }

    #[test]
    fn rooms_stay_small() {
        // Hundreds of thousands of idle connections each hold a private room: the history
        // ring must cost an idle room no more than the `VecDeque` it replaced (32 bytes).
        println!("Room: {} bytes", std::mem::size_of::<Room>());
        assert!(std::mem::size_of::<HistoryRing>() <= 32);
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
        assert_eq!(released.history.release(), 3);
        assert_eq!(released.resume_from(3), (false, 3));
        assert_eq!(released.resume_from(2), (true, 0));
    }
}
