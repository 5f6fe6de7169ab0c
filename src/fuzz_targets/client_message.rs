//! `client_message`: arbitrary bytes as text messages from a handful of connections into the chat
//! core, with a simulated clock, playing the reactor's part (open, text, binary, closed, expire).
//!
//! Input layout: a sequence of operations. Each operation byte names a kind (low 3 bits), a
//! connection (next 2 bits) and a small argument (top 3 bits); some kinds read more bytes. Kinds:
//! open (with or without a token at the upgrade), raw text, a canned protocol message (with a
//! nonzero argument, that many pairs of bytes edit it first), a JSON message carrying input bytes
//! as a string, a binary frame, the connection going away, and two sizes of clock steps.
//!
//! The core is configured with small limits (3 shared rooms, 5 retained events, presence cut off
//! above 2 members, a burst of 5) so short inputs reach every limit. Invariants checked:
//! - no panic; every output is a JSON object of a server message type, error codes and close
//!   codes are the documented ones, emotion scores are in [0, 1] and sum to 1 within 1e-3;
//! - membership is symmetric: a model of each connection's rooms, built only from what the core
//!   told that connection (`ready`, `joined`, `left`), matches who receives room events; a
//!   connection never gets an event for a room it is not in, and every other member gets each
//!   message its room publishes;
//! - nothing is sent to a connection after it was reported closed, the session counts in
//!   [`ChatStats`] match the model, retained history stays within its per-room bound, and one
//!   operation never produces more output than the rooms involved can justify;
//! - timers are cancelled with their session: once every connection is gone and the clock has
//!   run past every deadline, no session, room, timer or retained event is left;
//! - every text frame reads alike on each route of the JSON reader that takes it: the compact and
//!   general hand readers, serde's flat struct and the tagged enum (`ReadingRoutes`).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::chat::auth::{AuthConfig, Authenticator, KeyConfig};
use crate::chat::wire::ReadingRoutes;
use crate::chat::{ChatConfig, ChatCore, ConnId, Delivery, Outbox};
use crate::ws::frame::is_valid_close_code;

const CONNECTIONS: usize = 4;
/// Wall-clock unix milliseconds at simulated time zero.
const UNIX_MS_AT_ZERO: u64 = 1_800_000_000_000;
const SECRET: &[u8] = b"client-message-fuzz-secret";
const MAX_SHARED_ROOMS: usize = 3;
const HISTORY_EVENTS: usize = 5;
const HISTORY_MIN_AGE_MS: u64 = 10_000;
/// Once every session is gone only room timers may remain (bot replies, history expiry); this
/// is several times the longest of them. Token and auth timers must already be cancelled.
const QUIET_PERIOD_MS: u64 = 6 * HISTORY_MIN_AGE_MS;
/// Clock step while running out the quiet period.
const QUIET_STEP_MS: u64 = 5_000;
/// Largest single clock step, so that one input cannot jump past every timer at once.
const MAX_STEP_MS: u64 = 60_000;

const SERVER_TYPES: [&str; 12] = [
    "ready", "authed", "emotion", "message", "typing", "reply", "presence", "joined", "left",
    "error", "pong", "close",
];
const ERROR_CODES: [&str; 11] = [
    "bad_json",
    "unknown_type",
    "bad_request",
    "not_authenticated",
    "forbidden",
    "bad_room",
    "not_member",
    "too_many_rooms",
    "rate_limited",
    "text_too_long",
    "history_gap",
];
const LABELS: [&str; 7] = [
    "anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral",
];

/// Protocol messages an operation can send without spelling them out byte by byte.
const CANNED: [&str; 24] = [
    r#"{"type":"auth","token":"TOKEN_ALICE"}"#,
    r#"{"type":"auth","token":"TOKEN_BOB"}"#,
    r#"{"type":"auth","token":"TOKEN_SHORT"}"#,
    r#"{"type":"auth","token":"not.a.token"}"#,
    r#"{"type":"join","room":"lobby"}"#,
    r#"{"type":"join","room":"lobby","since":0}"#,
    r#"{"type":"join","room":"lobby","since":3}"#,
    r#"{"type":"join","room":"lobby","since":99999}"#,
    r#"{"type":"join","room":"user:alice","since":0}"#,
    r#"{"type":"join","room":"user:bob"}"#,
    r#"{"type":"join","room":"r2"}"#,
    r#"{"type":"join","room":"r3"}"#,
    r#"{"type":"join","room":"r4"}"#,
    r#"{"type":"join","room":"Bad Room"}"#,
    r#"{"type":"leave","room":"lobby"}"#,
    r#"{"type":"leave","room":"user:alice"}"#,
    r#"{"type":"message","id":"m1","text":"I am so happy today!","room":"lobby"}"#,
    r#"{"type":"message","id":"m2","text":"this is terrible and scary"}"#,
    r#"{"type":"message","text":"no id, in r2","room":"r2"}"#,
    r#"{"type":"message","id":"m4","text":"to someone else's room","room":"user:bob"}"#,
    r#"{"type":"typing","room":"lobby","text":"I hate wait"}"#,
    r#"{"type":"typing"}"#,
    r#"{"type":"ping","t":12345.5}"#,
    r#"{"type":"leave","room":"r2"}"#,
];

/// What an edit of a canned message inserts or writes over a byte: JSON's structural bytes,
/// whitespace, escapes, control and non-ASCII characters, and whole fields, so that mutated
/// messages land on both sides of every reader's limits.
const SPLICES: [&str; 16] = [
    "\"",
    "\\",
    ",",
    ":",
    "{",
    "}",
    " ",
    "\n",
    "\u{1}",
    "\u{7f}",
    "é",
    "x",
    "null",
    r#""id":"i","#,
    r#""room":"r","#,
    r#""text":"t","#,
];

/// `text` after `edits`, two bytes each: a position (scaled to the text's length) and what to do
/// there (insert a splice, write one over a byte, delete a byte or cut the text off).
pub(crate) fn mutated(text: &str, edits: &[u8]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for edit in edits.chunks_exact(2) {
        let at = usize::from(edit[0]) * (bytes.len() + 1) / 256;
        let splice = SPLICES[usize::from(edit[1] & 0x0f)].as_bytes();
        match edit[1] >> 4 {
            0..=7 => {
                bytes.splice(at..at, splice.iter().copied());
            }
            8..=11 if at < bytes.len() => {
                bytes.splice(at..=at, splice.iter().copied());
            }
            12..=14 if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => bytes.truncate(at),
        }
    }
    // Cuts and overwrites can split a character; frames reach the core as text.
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Message types an operation can wrap input bytes into, as the given field.
const WRAPPERS: [(&str, &str); 8] = [
    ("message", "text"),
    ("message", "id"),
    ("message", "room"),
    ("typing", "text"),
    ("join", "room"),
    ("leave", "room"),
    ("auth", "token"),
    ("typing", "room"),
];

#[derive(Default)]
struct Recorder {
    sends: Vec<(ConnId, String, Delivery)>,
    closes: Vec<(ConnId, u16, String)>,
}

impl Outbox for Recorder {
    fn send(&mut self, conn: ConnId, json: &str, delivery: Delivery) {
        self.sends.push((conn, json.to_owned(), delivery));
    }

    fn close(&mut self, conn: ConnId, code: u16, reason: &str) {
        self.closes.push((conn, code, reason.to_owned()));
    }
}

/// What the simulated clients know about their connections.
#[derive(Clone, Default)]
struct ConnectionModel {
    open: bool,
    /// The core asked for a close; the reactor reports `closed` at the connection's next
    /// operation or at the end.
    closing: bool,
    user: Option<String>,
    rooms: BTreeSet<String>,
}

struct Simulation {
    core: ChatCore,
    now: u64,
    connections: [ConnectionModel; CONNECTIONS],
    tokens: Tokens,
}

struct Tokens {
    alice: String,
    bob: String,
    /// Alice's, expiring a few seconds in, so the expiry timer fires within a run.
    short: String,
    /// Alice's, already expired.
    expired: String,
}

pub fn client_message(data: &[u8]) {
    let Some(mut simulation) = Simulation::new() else {
        return;
    };
    let mut input = data;
    while let Some((&op, rest)) = input.split_first() {
        input = rest;
        let kind = op & 0x07;
        let conn = usize::from((op >> 3) & 0x03);
        let arg = op >> 5;
        match kind {
            0 => simulation.open(conn, arg),
            1 | 7 => {
                let (len, rest) = input.split_first().map_or((0, input), |(&len, rest)| {
                    (usize::from(len).min(rest.len()), rest)
                });
                let (bytes, rest) = rest.split_at(len);
                input = rest;
                let text = String::from_utf8_lossy(bytes);
                if kind == 1 {
                    simulation.text(conn, &text);
                } else {
                    let (kind, field) = WRAPPERS[usize::from(arg)];
                    let wrapped = serde_json::json!({ "type": kind, field: text, "room": "lobby" });
                    simulation.text(conn, &wrapped.to_string());
                }
            }
            2 => {
                let (&choice, rest) = input.split_first().unwrap_or((&0, input));
                input = rest;
                let canned = CANNED[usize::from(choice) % CANNED.len()];
                let mut text = simulation.with_tokens(canned);
                if arg > 0 {
                    let edits = usize::from(arg) * 2;
                    let (edits, rest) = input.split_at(edits.min(input.len()));
                    input = rest;
                    text = mutated(&text, edits);
                }
                simulation.text(conn, &text);
            }
            3 => {
                let (&steps, rest) = input.split_first().unwrap_or((&0, input));
                input = rest;
                let step = if arg == 7 {
                    MAX_STEP_MS
                } else {
                    u64::from(steps) * 50
                };
                simulation.advance(step);
            }
            4 => simulation.closed(conn),
            5 => simulation.binary(conn),
            _ => simulation.advance(u64::from(arg) * 3 + 1),
        }
    }
    simulation.finish();
}

impl Simulation {
    fn new() -> Option<Simulation> {
        let auth = Authenticator::new(AuthConfig {
            key: KeyConfig::Hs256(SECRET.to_vec()),
            issuer: None,
            audience: None,
        })
        .ok()?;
        let now_s = UNIX_MS_AT_ZERO / 1000;
        let tokens = Tokens {
            alice: auth.mint("alice", Some("Alice"), 3600, now_s).ok()?,
            bob: auth.mint("bob", None, 3600, now_s).ok()?,
            short: auth.mint("alice", Some("Alice"), 5, now_s).ok()?,
            expired: auth.mint("alice", None, 5, now_s - 3600).ok()?,
        };
        let config = ChatConfig {
            max_rooms_per_conn: MAX_SHARED_ROOMS,
            history_events: HISTORY_EVENTS,
            history_min_age_ms: HISTORY_MIN_AGE_MS,
            presence_member_limit: 2,
            msg_rate: 2,
            msg_burst: 5,
            max_text_chars: 200,
            ..ChatConfig::default()
        };
        Some(Simulation {
            core: ChatCore::new(config, auth, UNIX_MS_AT_ZERO),
            now: 0,
            connections: Default::default(),
            tokens,
        })
    }

    fn with_tokens(&self, canned: &str) -> String {
        canned
            .replace("TOKEN_ALICE", &self.tokens.alice)
            .replace("TOKEN_BOB", &self.tokens.bob)
            .replace("TOKEN_SHORT", &self.tokens.short)
    }

    /// A WebSocket opens on `conn` (after the previous one there is reported closed, as the
    /// reactor reuses keys only after `closed`), with a token at the upgrade for some `arg`s.
    fn open(&mut self, conn: ConnId, arg: u8) {
        if self.connections[conn].open {
            self.closed(conn);
        }
        let token = match arg {
            4 => Some(&self.tokens.alice),
            5 => Some(&self.tokens.bob),
            6 => Some(&self.tokens.short),
            7 => Some(&self.tokens.expired),
            _ => None,
        };
        let unix_s = self.core.unix_seconds(self.now);
        // The reactor answers a bad token at the upgrade with 401 and never opens the socket.
        let claims = match token.map(|token| self.core.authenticator().verify(token, unix_s)) {
            Some(Err(_)) => return,
            Some(Ok(claims)) => Some(claims),
            None => None,
        };
        self.connections[conn] = ConnectionModel {
            open: true,
            ..ConnectionModel::default()
        };
        let mut out = Recorder::default();
        self.core.open(conn, claims, self.now, &mut out);
        self.absorb(out, None);
    }

    fn text(&mut self, conn: ConnId, text: &str) {
        let routes = ReadingRoutes::new(text);
        if let Some(broken) = routes.disagreement() {
            panic!("{broken}: {text:?} {routes:?}");
        }
        if !self.connections[conn].open {
            return;
        }
        let mut out = Recorder::default();
        self.core.text(conn, text, self.now, &mut out);
        self.absorb(out, Some(conn));
    }

    fn binary(&mut self, conn: ConnId) {
        if !self.connections[conn].open {
            return;
        }
        let mut out = Recorder::default();
        self.core.binary(conn, b"\x00\x01", self.now, &mut out);
        self.absorb(out, Some(conn));
    }

    /// The connection is gone: the reactor reports it, the model forgets it.
    fn closed(&mut self, conn: ConnId) {
        if !self.connections[conn].open {
            return;
        }
        let timers_before = self.core.stats().timers;
        let mut out = Recorder::default();
        self.core.closed(conn, self.now, &mut out);
        self.connections[conn] = ConnectionModel::default();
        assert!(
            self.core.stats().timers <= timers_before,
            "closing a connection armed a timer"
        );
        assert!(
            out.sends.iter().all(|(to, ..)| *to != conn),
            "the core sent to a connection while it was being closed"
        );
        assert!(
            out.closes.is_empty(),
            "closed() asked to close a connection"
        );
        self.absorb(out, None);
    }

    fn advance(&mut self, step: u64) {
        self.now += step;
        let mut out = Recorder::default();
        self.core.expire(self.now, &mut out);
        self.absorb(out, None);
    }

    /// Every connection goes away, the clock runs past every deadline, and nothing may remain.
    fn finish(&mut self) {
        for conn in 0..CONNECTIONS {
            self.closed(conn);
        }
        // With every session gone, only room timers may remain: at most a pending bot reply and
        // a history expiry per room. Auth, token and typing timers must have been cancelled.
        let stats = self.core.stats();
        assert!(
            stats.timers <= 2 * stats.rooms,
            "{} timers left for {} rooms after every session ended",
            stats.timers,
            stats.rooms
        );
        let quiet_until = self.now + QUIET_PERIOD_MS;
        while self.now < quiet_until {
            self.advance(QUIET_STEP_MS);
        }
        let stats = self.core.stats();
        assert_eq!(
            stats.sessions, 0,
            "sessions left after every close: {stats:?}"
        );
        assert_eq!(
            stats.authenticated, 0,
            "authenticated sessions left: {stats:?}"
        );
        assert_eq!(
            stats.timers, 0,
            "timers left after every session ended: {stats:?}"
        );
        assert_eq!(
            stats.rooms, 0,
            "rooms left after every session ended: {stats:?}"
        );
        assert_eq!(
            stats.retained_events, 0,
            "history left in released rooms: {stats:?}"
        );
        assert_eq!(self.core.next_deadline(), None, "a deadline without timers");
    }

    /// Checks one operation's output against the model and updates the model from it.
    /// `sender` is the connection whose input caused the output, if any.
    fn absorb(&mut self, out: Recorder, sender: Option<ConnId>) {
        let members_before: Vec<BTreeSet<String>> =
            self.connections.iter().map(|c| c.rooms.clone()).collect();
        let output_bound = 8 + CONNECTIONS * 4 + HISTORY_EVENTS * 2;
        assert!(
            out.sends.len() <= output_bound,
            "one operation produced {} messages",
            out.sends.len()
        );
        let mut published = Vec::new();
        let mut delivered = Vec::new();
        for (conn, json, _delivery) in &out.sends {
            let conn = *conn;
            assert!(
                conn < CONNECTIONS && self.connections[conn].open,
                "sent to connection {conn}, which is not open: {json}"
            );
            let value: Value = serde_json::from_str(json)
                .unwrap_or_else(|error| panic!("output is not JSON ({error}): {json}"));
            let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
            assert!(
                SERVER_TYPES.contains(&kind),
                "unknown server message type: {json}"
            );
            let room = value.get("room").and_then(Value::as_str).map(str::to_owned);
            let model = &mut self.connections[conn];
            match kind {
                "ready" => {
                    let user = value.get("user").and_then(Value::as_str).unwrap_or("");
                    let room = room.unwrap_or_default();
                    assert_eq!(room, format!("user:{user}"), "ready names a foreign room");
                    assert!(model.user.is_none(), "a second ready on one connection");
                    model.user = Some(user.to_owned());
                    model.rooms.insert(room);
                }
                "joined" => {
                    let room = room.unwrap_or_default();
                    model.rooms.insert(room);
                    let shared = model
                        .rooms
                        .iter()
                        .filter(|r| !r.starts_with("user:"))
                        .count();
                    assert!(shared <= MAX_SHARED_ROOMS, "{shared} shared rooms joined");
                }
                "left" => {
                    let room = room.unwrap_or_default();
                    assert!(
                        model.rooms.remove(&room),
                        "left a room it was not in: {json}"
                    );
                }
                "emotion" => {
                    check_emotion(&value, json);
                    let is_preview = value.get("preview").and_then(Value::as_bool);
                    assert_eq!(Some(conn), sender, "emotion for a message it did not send");
                    if is_preview == Some(false) {
                        let seq = value.get("seq").and_then(Value::as_u64);
                        published.push((room.clone().unwrap_or_default(), seq, conn));
                    }
                    assert_in_room(model, room.as_deref(), json);
                }
                "message" | "reply" | "typing" | "presence" => {
                    assert_in_room(model, room.as_deref(), json);
                    if kind == "message" {
                        if let Some(emotion) = value.get("emotion") {
                            check_emotion(emotion, json);
                        }
                        let seq = value.get("seq").and_then(Value::as_u64);
                        assert!(
                            seq.is_some_and(|seq| seq > 0),
                            "message without seq: {json}"
                        );
                        delivered.push((room.unwrap_or_default(), seq, conn));
                    }
                }
                "error" => {
                    let code = value.get("code").and_then(Value::as_str).unwrap_or("");
                    assert!(ERROR_CODES.contains(&code), "unknown error code: {json}");
                }
                _ => {}
            }
        }
        // Every other member of a room gets each message published there.
        for (room, seq, from) in &published {
            for (conn, rooms) in members_before.iter().enumerate() {
                if conn != *from && rooms.contains(room) && self.connections[conn].open {
                    assert!(
                        delivered.contains(&(room.clone(), *seq, conn)),
                        "connection {conn}, a member of {room}, missed message seq {seq:?}"
                    );
                }
            }
        }
        for (conn, code, reason) in &out.closes {
            assert!(
                self.connections[*conn].open,
                "asked to close connection {conn}, which is not open"
            );
            assert!(
                is_valid_close_code(*code),
                "invalid close code {code} for connection {conn}"
            );
            assert!(
                reason.len() <= 123,
                "close reason of {} bytes",
                reason.len()
            );
            self.connections[*conn].closing = true;
        }
        self.check_stats();
    }

    fn check_stats(&self) {
        let stats = self.core.stats();
        let open = self.connections.iter().filter(|c| c.open).count();
        let authenticated = self
            .connections
            .iter()
            .filter(|c| c.open && c.user.is_some())
            .count();
        assert_eq!(
            stats.sessions, open,
            "session count differs from open connections"
        );
        assert_eq!(
            stats.authenticated, authenticated,
            "authenticated count differs"
        );
        assert!(
            stats.retained_events <= stats.rooms * HISTORY_EVENTS,
            "{} events retained in {} rooms",
            stats.retained_events,
            stats.rooms
        );
        if stats.timers > 0 {
            assert!(
                self.core.next_deadline().is_some(),
                "timers but no deadline"
            );
        }
    }
}

fn assert_in_room(model: &ConnectionModel, room: Option<&str>, json: &str) {
    let room = room.unwrap_or_else(|| panic!("room event without a room: {json}"));
    assert!(
        model.rooms.contains(room),
        "event for room {room} sent to a connection not in it (its rooms: {:?}): {json}",
        model.rooms
    );
}

/// An emotion object: all seven labels in [0, 1] summing to 1, `dominant` the highest one.
fn check_emotion(value: &Value, json: &str) {
    let scores = value
        .get("scores")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("emotion without scores: {json}"));
    let mut sum = 0.0;
    let mut highest = 0.0f64;
    for label in LABELS {
        let score = scores
            .get(label)
            .and_then(Value::as_f64)
            .unwrap_or_else(|| panic!("emotion without {label}: {json}"));
        assert!((0.0..=1.0).contains(&score), "{label} = {score}: {json}");
        sum += score;
        highest = highest.max(score);
    }
    assert!((sum - 1.0).abs() <= 1e-3, "scores sum to {sum}: {json}");
    let dominant = value.get("dominant").and_then(Value::as_str).unwrap_or("");
    let dominant_score = scores.get(dominant).and_then(Value::as_f64);
    assert_eq!(
        dominant_score,
        Some(highest),
        "dominant is not the highest: {json}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Edited canned messages land on both sides of the compact reader, and every route reads
    /// each alike; whole runs of edit operations go through the target without a finding.
    #[test]
    fn edited_canned_messages_read_alike_on_every_route() {
        let mut random = crate::test_random::XorShift(0xbb67_ae85_84ca_a73b);
        let (mut compact, mut declined) = (0, 0);
        for canned in CANNED {
            for _ in 0..500 {
                let count = 1 + random.below(3);
                let edits = random.bytes(2 * count);
                let text = mutated(canned, &edits);
                let routes = ReadingRoutes::new(&text);
                assert_eq!(routes.disagreement(), None, "{text:?} {routes:?}");
                if routes.compact.is_some() {
                    compact += 1;
                } else {
                    declined += 1;
                }
            }
        }
        assert!(compact > 100 && declined > 1_000, "{compact} {declined}");
        for _ in 0..50 {
            // Alice opens connection 0, then edited canned messages: kind 2 with a nonzero
            // argument, a choice and the edits.
            let mut data = vec![4 << 5];
            for _ in 0..20 {
                let edits = 1 + random.below(7) as u8;
                data.push(2 | edits << 5);
                data.extend(random.bytes(1 + 2 * usize::from(edits)));
            }
            client_message(&data);
        }
    }
}
