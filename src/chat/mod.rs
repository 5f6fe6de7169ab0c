//! The chat protocol core, sans-IO: authentication, private and shared rooms, typing indicators,
//! bot replies and resume, as one state machine driven by the reactor.
//!
//! The reactor reports connection events (`open`, `text`, `binary`, `closed`) and the passing of
//! time (`expire` at `next_deadline`); the core answers through an [`Outbox`]. Nothing here reads
//! a clock or touches a socket, so tests drive it with a simulated clock and a recording outbox.
//! `docs/PROTOCOL.md` describes the protocol as a client sees it.

pub mod auth;
mod bot;
mod history;
mod inline_vec;
mod limits;
mod room;
mod session;
pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::rc::Rc;

use slab::Slab;

use crate::emotion::Scorer;
use crate::timer_wheel::{TimerKey, TimerWheel};
use inline_vec::InlineVec;
use limits::TokenBucket;
use room::{
    parse_room_name, MessageEvent, PendingReply, Room, RoomEvent, RoomKey, RoomName, PRIVATE_PREFIX,
};
use session::{Membership, Phase, Session};
use wire::{
    ClientMessage, EmotionJson, ErrorCode, ParseError, WireEmotion, BOT_NAME, MAX_ID_CHARS,
};

/// The reactor's slab key for a connection; `closed` is always called before a key is reused.
pub type ConnId = usize;

/// Close code for policy violations: no `auth` in time (and, from the reactor, slow consumers).
pub const CLOSE_POLICY: u16 = 1008;
/// Close code telling the client its token is invalid or expired and it should fetch a new one.
pub const CLOSE_TOKEN_INVALID: u16 = 4001;
/// WebSocket close reasons are limited to 123 bytes.
const MAX_CLOSE_REASON_BYTES: usize = 123;

const TIMER_TICK_MS: u64 = 10;
const TIMER_SLOTS: usize = 4096;
/// Released rooms whose last seq is remembered so a re-created room continues its numbering.
/// Beyond this many the memory is folded into one floor that all new rooms start from.
const MAX_REMEMBERED_ROOMS: usize = 65_536;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Must reach the client (or the connection is closed as a slow consumer).
    Essential,
    /// Typing, presence, previews: may be shed under backpressure.
    Droppable,
}

/// Where the core's output goes. The reactor frames each JSON string as one WebSocket text frame
/// into the connection's output (shedding `Droppable` frames when that connection's backlog is
/// high); tests record everything.
pub trait Outbox {
    fn send(&mut self, conn: ConnId, json: &str, delivery: Delivery);
    fn close(&mut self, conn: ConnId, code: u16, reason: &str);

    /// Sends one frame whose JSON `write` appends (valid UTF-8 only, as the wire writers
    /// produce) to the buffer it is handed. The reactor hands over the connection's output, so
    /// the frames every message produces are written in place instead of into a buffer that is
    /// then copied. `size_hint`: about how long the JSON will be. The default writes into a
    /// buffer of its own and calls [`Outbox::send`].
    fn send_with(
        &mut self,
        conn: ConnId,
        delivery: Delivery,
        size_hint: usize,
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        let mut json = Vec::with_capacity(size_hint);
        write(&mut json);
        if let Ok(json) = std::str::from_utf8(&json) {
            self.send(conn, json, delivery);
        }
    }
}

#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// A typing indicator goes off this long after the last `typing` refresh.
    pub typing_timeout_ms: u64,
    /// Whether EmotiBot answers messages in private rooms.
    pub bot: bool,
    pub bot_reply_delay_ms: u64,
    /// Messages per second per connection (token bucket refill); 0 = unlimited.
    pub msg_rate: u32,
    /// Token bucket size.
    pub msg_burst: u32,
    pub max_text_chars: usize,
    /// Shared rooms per connection (the private room does not count).
    pub max_rooms_per_conn: usize,
    /// Advertised in `ready` for clients that want app-level pings.
    pub ping_interval_ms: u64,
    /// How long an unauthenticated connection may wait before sending `auth`.
    pub auth_timeout_ms: u64,
    /// Events retained per room for resume (at most 65,535).
    pub history_events: usize,
    /// Bytes of retained events per room (their text, id, sender and a 20-42 byte header
    /// each): past it the oldest are dropped even below `history_events`, so that long texts
    /// cannot make a room's history large. An event larger on its own is kept, alone.
    pub history_bytes: usize,
    /// Retained events are kept until the room has had no event for this long.
    pub history_min_age_ms: u64,
    /// Above this many connections in a room, per-user presence is not broadcast.
    pub presence_member_limit: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            typing_timeout_ms: 2000,
            bot: true,
            bot_reply_delay_ms: 700,
            msg_rate: 20,
            msg_burst: 40,
            max_text_chars: 4000,
            max_rooms_per_conn: 32,
            ping_interval_ms: 25_000,
            auth_timeout_ms: 5000,
            history_events: 100,
            history_bytes: 64 * 1024,
            history_min_age_ms: 120_000,
            presence_member_limit: 1000,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChatStats {
    /// Open WebSocket connections known to the core.
    pub sessions: usize,
    pub authenticated: usize,
    /// Rooms held in memory (with members, retained events or a pending bot reply).
    pub rooms: usize,
    pub timers: usize,
    /// Events held in history rings, over all rooms.
    pub retained_events: usize,
}

enum Timer {
    AuthDeadline {
        conn: ConnId,
        serial: u32,
    },
    TokenExpiry {
        conn: ConnId,
        serial: u32,
    },
    TypingIdle {
        conn: ConnId,
        serial: u32,
        room: RoomKey,
    },
    BotReply {
        room: RoomKey,
        generation: u32,
    },
    RoomIdle {
        room: RoomKey,
        generation: u32,
    },
}

pub struct ChatCore {
    config: ChatConfig,
    auth: auth::Authenticator,
    unix_ms_at_zero: u64,
    scorer: Scorer,
    /// Indexed by `ConnId` (the reactor's dense slab keys).
    sessions: Vec<Option<Session>>,
    session_count: usize,
    authenticated_count: usize,
    next_serial: u32,
    /// Random per process, so session ids differ across restarts.
    session_prefix: u64,
    /// Kept between authentications to build a private room's name in without allocating.
    private_name_scratch: String,
    rooms: Slab<Room>,
    room_index: HashMap<Rc<str>, RoomKey>,
    next_generation: u32,
    /// Last seq of released rooms, so a room re-created later keeps counting up.
    remembered_seqs: HashMap<Rc<str>, u64>,
    /// Where rooms without a remembered seq start; raised when remembered seqs are dropped.
    seq_floor: u64,
    timers: TimerWheel<Timer>,
    fired: Vec<Timer>,
    retained_events: usize,
    rng: u64,
    /// Reused for room events encoded once for several members, so that encoding allocates
    /// nothing.
    frame: Vec<u8>,
}

impl ChatCore {
    /// `unix_ms_at_zero`: wall-clock unix milliseconds at monotonic `now == 0`, so token
    /// `exp`/`nbf` are checked against `unix_ms_at_zero + now`.
    pub fn new(config: ChatConfig, auth: auth::Authenticator, unix_ms_at_zero: u64) -> ChatCore {
        let mut seed = [0u8; 8];
        let seed = match getrandom::fill(&mut seed) {
            Ok(()) => u64::from_le_bytes(seed),
            // Session ids only need to differ across restarts; the start time does that too.
            Err(_) => unix_ms_at_zero.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        };
        ChatCore {
            config,
            auth,
            unix_ms_at_zero,
            scorer: Scorer::new(),
            sessions: Vec::new(),
            session_count: 0,
            authenticated_count: 0,
            next_serial: 0,
            session_prefix: seed,
            private_name_scratch: String::new(),
            rooms: Slab::new(),
            room_index: HashMap::new(),
            next_generation: 0,
            remembered_seqs: HashMap::new(),
            seq_floor: 0,
            timers: TimerWheel::new(TIMER_TICK_MS, TIMER_SLOTS, 0),
            fired: Vec::new(),
            retained_events: 0,
            rng: seed | 1,
            frame: Vec::new(),
        }
    }

    pub fn config(&self) -> &ChatConfig {
        &self.config
    }

    pub fn authenticator(&self) -> &auth::Authenticator {
        &self.auth
    }

    pub fn stats(&self) -> ChatStats {
        ChatStats {
            sessions: self.session_count,
            authenticated: self.authenticated_count,
            rooms: self.rooms.len(),
            timers: self.timers.len(),
            retained_events: self.retained_events,
        }
    }

    /// Wall-clock unix seconds at monotonic `now`.
    pub fn unix_seconds(&self, now: u64) -> u64 {
        self.unix_ms_at_zero.saturating_add(now) / 1000
    }

    /// A WebSocket opened on /ws; `claims` when a valid token came with the upgrade (then
    /// `ready` is sent at once), otherwise the auth deadline starts.
    pub fn open(
        &mut self,
        conn: ConnId,
        claims: Option<auth::Claims>,
        now: u64,
        out: &mut impl Outbox,
    ) {
        if matches!(self.sessions.get(conn), Some(Some(_))) {
            // The reactor reuses a key only after `closed`; stay consistent if it did not.
            self.closed(conn, now, out);
        }
        if self.sessions.len() <= conn {
            self.sessions.resize_with(conn + 1, || None);
        }
        self.next_serial = self.next_serial.wrapping_add(1);
        let serial = self.next_serial;
        let timer = match claims {
            Some(_) => None,
            None => Some(self.timers.insert(
                now.saturating_add(self.config.auth_timeout_ms),
                Timer::AuthDeadline { conn, serial },
            )),
        };
        self.sessions[conn] = Some(Session {
            serial,
            phase: Phase::AwaitingAuth,
            timer,
            private_room: 0,
            name: None,
            bucket: TokenBucket::full(self.config.msg_burst, now),
            rooms: InlineVec::new(),
            typing_may_be_on: false,
        });
        self.session_count += 1;
        if let Some(claims) = claims {
            self.authenticate(conn, claims, out);
        }
    }

    /// One text frame from the client.
    pub fn text(&mut self, conn: ConnId, text: &str, now: u64, out: &mut impl Outbox) {
        let phase = match self.session(conn) {
            Some(session) if session.phase != Phase::Closing => session.phase,
            _ => return,
        };
        // A chat message in the compact shape (almost every frame) goes to `on_message` as the
        // borrowed fields the reader found: building, matching and dropping the general message
        // enum and its `Result` cost as much as reading the fields. The rest is
        // `parse_client_message`, split where the compact reader returns.
        let parsed = match wire::read_compact_fields(text) {
            Some(fields) if phase == Phase::Live => {
                return self.on_message(conn, fields.id, fields.text, fields.room, now, out);
            }
            Some(fields) => Ok(fields.into_message()),
            None => wire::parse_other_client_message(text),
        };
        let message = match parsed {
            Ok(message) => message,
            Err(ParseError::BadJson(detail)) => {
                let message = format!("invalid JSON: {detail}");
                return send_error(out, conn, ErrorCode::BadJson, &message, None, None);
            }
            Err(ParseError::UnknownType(kind)) => {
                let message = format!("unknown message type \"{kind}\"");
                return send_error(out, conn, ErrorCode::UnknownType, &message, None, None);
            }
            Err(ParseError::BadRequest { detail, id }) => {
                let code = ErrorCode::BadRequest;
                return send_error(out, conn, code, &detail, id.as_deref(), None);
            }
        };
        match (phase, message) {
            // Its fields are borrowed by `on_message` and dropped here, each where it is known
            // to be a `Cow` (almost always borrowed, so nothing to free).
            (Phase::Live, ClientMessage::Message { id, text, room }) => {
                self.on_message(conn, id.as_deref(), &text, room.as_deref(), now, out)
            }
            (_, ClientMessage::Ping { t }) => {
                out.send(conn, &wire::pong(t.as_ref()), Delivery::Essential)
            }
            (Phase::AwaitingAuth, ClientMessage::Auth { token }) => {
                self.first_auth(conn, &token, now, out)
            }
            (Phase::Live, ClientMessage::Auth { token }) => {
                self.refresh_auth(conn, &token, now, out)
            }
            (Phase::AwaitingAuth, other) => {
                let id = match &other {
                    ClientMessage::Message { id, .. } => id.as_deref(),
                    _ => None,
                };
                let id = id.filter(|id| wire::within_chars(id, MAX_ID_CHARS));
                let message = "authenticate first with {\"type\":\"auth\",\"token\":...}";
                send_error(out, conn, ErrorCode::NotAuthenticated, message, id, None);
            }
            (Phase::Live, ClientMessage::Typing { room, text }) => {
                self.on_typing(conn, room.as_deref(), text.as_deref(), now, out)
            }
            (Phase::Live, ClientMessage::Join { room, since }) => {
                self.on_join(conn, &room, since, out)
            }
            (Phase::Live, ClientMessage::Leave { room }) => self.on_leave(conn, &room, out),
            (Phase::Closing, _) => {}
        }
    }

    /// One binary frame from the client: the protocol has none.
    pub fn binary(&mut self, conn: ConnId, _data: &[u8], _now: u64, out: &mut impl Outbox) {
        if self
            .session(conn)
            .is_some_and(|s| s.phase != Phase::Closing)
        {
            let message = "binary frames are not supported; send JSON text frames";
            send_error(out, conn, ErrorCode::BadRequest, message, None, None);
        }
    }

    /// The connection is gone (peer close, error, timeout, server close): forget it, turn off
    /// its typing indicators, announce presence, cancel its timers. Sends nothing to `conn`.
    pub fn closed(&mut self, conn: ConnId, _now: u64, out: &mut impl Outbox) {
        let Some(session) = self.session(conn) else {
            return;
        };
        let memberships = session.rooms.clone();
        let private_room = session.private_room;
        // The private room last: the user's sub, used by the other rooms' events, lives there.
        for membership in memberships.as_slice() {
            if membership.room != private_room {
                self.drop_membership(conn, *membership, out);
            }
        }
        for membership in memberships.as_slice() {
            if membership.room == private_room {
                self.drop_membership(conn, *membership, out);
            }
        }
        let Some(session) = self.sessions.get_mut(conn).and_then(Option::take) else {
            return;
        };
        if let Some(timer) = session.timer {
            self.timers.cancel(timer);
        }
        if !session.rooms.is_empty() {
            self.authenticated_count -= 1;
        }
        self.session_count -= 1;
    }

    /// When `expire` next has work: at or before the earliest armed timer.
    pub fn next_deadline(&self) -> Option<u64> {
        self.timers.next_deadline()
    }

    /// Runs every timer due at `now`.
    pub fn expire(&mut self, now: u64, out: &mut impl Outbox) {
        let mut fired = std::mem::take(&mut self.fired);
        self.timers.expire(now, &mut fired);
        for timer in fired.drain(..) {
            self.on_timer(timer, now, out);
        }
        self.fired = fired;
    }

    fn session(&self, conn: ConnId) -> Option<&Session> {
        self.sessions.get(conn).and_then(Option::as_ref)
    }

    fn session_mut(&mut self, conn: ConnId) -> Option<&mut Session> {
        self.sessions.get_mut(conn).and_then(Option::as_mut)
    }

    fn live_session(&self, conn: ConnId) -> Option<&Session> {
        self.session(conn).filter(|s| s.phase == Phase::Live)
    }

    /// The session on `conn` if it is still the one a timer was armed for.
    fn session_for_timer(&mut self, conn: ConnId, serial: u32) -> Option<&mut Session> {
        self.session_mut(conn).filter(|s| s.serial == serial)
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: plenty for picking reply variants.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Monotonic time at which a token with this `exp` stops verifying (leeway included).
    fn expiry_deadline(&self, exp: u64) -> u64 {
        exp.saturating_add(auth::LEEWAY_S + 1)
            .saturating_mul(1000)
            .saturating_sub(self.unix_ms_at_zero)
    }

    fn close(&mut self, conn: ConnId, code: u16, reason: &str, out: &mut impl Outbox) {
        if let Some(session) = self.session_mut(conn) {
            session.phase = Phase::Closing;
            if let Some(timer) = session.timer.take() {
                self.timers.cancel(timer);
            }
        }
        out.close(
            conn,
            code,
            wire::truncate_bytes(reason, MAX_CLOSE_REASON_BYTES),
        );
    }

    // ----- authentication -----

    fn first_auth(&mut self, conn: ConnId, token: &str, now: u64, out: &mut impl Outbox) {
        match self.auth.verify(token, self.unix_seconds(now)) {
            Ok(claims) => {
                if let Some(timer) = self.session_mut(conn).and_then(|s| s.timer.take()) {
                    self.timers.cancel(timer);
                }
                self.authenticate(conn, claims, out);
            }
            Err(error) => self.close(conn, CLOSE_TOKEN_INVALID, &error.to_string(), out),
        }
    }

    fn authenticate(&mut self, conn: ConnId, claims: auth::Claims, out: &mut impl Outbox) {
        // Joined by hand into a kept buffer: `format!` cost more than the rest of building the
        // name, and the allocation was most of what remained.
        let mut private_name = std::mem::take(&mut self.private_name_scratch);
        private_name.clear();
        private_name.push_str(PRIVATE_PREFIX);
        private_name.push_str(&claims.sub);
        let room = self.room_for(&private_name, false);
        self.rooms[room].members.push(conn);
        let deadline = self.expiry_deadline(claims.exp);
        let Some(session) = self.sessions.get_mut(conn).and_then(Option::as_mut) else {
            return;
        };
        session.phase = Phase::Live;
        session.private_room = room;
        session.name = claims.name.map(Rc::from);
        session.rooms.push(Membership { room, typing: None });
        session.timer = Some(self.timers.insert(
            deadline,
            Timer::TokenExpiry {
                conn,
                serial: session.serial,
            },
        ));
        self.authenticated_count += 1;
        let ready = wire::ReadyFields {
            session: wire::SessionId {
                prefix: self.session_prefix,
                serial: session.serial,
            },
            user: &claims.sub,
            name: session.name.as_deref(),
            room: &private_name,
            seq: self.rooms[room].last_seq,
            typing_timeout_ms: self.config.typing_timeout_ms,
            ping_interval_ms: self.config.ping_interval_ms,
        };
        // Written straight into the connection's output: no buffer of its own to fill and copy.
        out.send_with(conn, Delivery::Essential, ready.size_hint(), |json| {
            wire::write_ready(json, &ready);
        });
        self.private_name_scratch = private_name;
    }

    fn refresh_auth(&mut self, conn: ConnId, token: &str, now: u64, out: &mut impl Outbox) {
        let verified = self.auth.verify(token, self.unix_seconds(now));
        let claims = match verified {
            Ok(claims) => claims,
            Err(error) => return self.close(conn, CLOSE_TOKEN_INVALID, &error.to_string(), out),
        };
        let same_user = self
            .live_session(conn)
            .is_some_and(|s| sub_of(&self.rooms, s) == claims.sub);
        if !same_user {
            let reason = "the new token is for a different user";
            return self.close(conn, CLOSE_TOKEN_INVALID, reason, out);
        }
        let deadline = self.expiry_deadline(claims.exp);
        let Some(session) = self.sessions.get_mut(conn).and_then(Option::as_mut) else {
            return;
        };
        if let Some(timer) = session.timer.take() {
            self.timers.cancel(timer);
        }
        session.name = claims.name.map(Rc::from);
        session.timer = Some(self.timers.insert(
            deadline,
            Timer::TokenExpiry {
                conn,
                serial: session.serial,
            },
        ));
        out.send(conn, &wire::authed(claims.exp), Delivery::Essential);
    }

    // ----- rooms -----

    /// The room named `name`, created (continuing a remembered seq) when not held.
    fn room_for(&mut self, name: &str, shared: bool) -> RoomKey {
        if let Some(&key) = self.room_index.get(name) {
            return key;
        }
        let name: Rc<str> = Rc::from(name);
        let last_seq = self
            .remembered_seqs
            .remove(&*name)
            .unwrap_or(self.seq_floor);
        self.next_generation = self.next_generation.wrapping_add(1);
        let room = Room::new(name.clone(), self.next_generation, last_seq, shared);
        let key = self.rooms.insert(room);
        self.room_index.insert(name, key);
        key
    }

    /// Frees a room nothing keeps alive, remembering its seq.
    fn release_if_unused(&mut self, key: RoomKey) {
        if !self.rooms.get(key).is_some_and(Room::is_unused) {
            return;
        }
        let room = self.rooms.remove(key);
        if let Some(timer) = room.idle_timer {
            self.timers.cancel(timer);
        }
        self.room_index.remove(&*room.name);
        if room.last_seq > self.seq_floor {
            if self.remembered_seqs.len() >= MAX_REMEMBERED_ROOMS {
                let highest = self.remembered_seqs.values().copied().max().unwrap_or(0);
                self.seq_floor = self.seq_floor.max(highest);
                self.remembered_seqs = HashMap::new();
            }
            self.remembered_seqs.insert(room.name, room.last_seq);
        }
    }

    /// The room a `message`/`typing` addresses (see [`member_room`]).
    fn member_room(
        &self,
        conn: ConnId,
        requested: Option<&str>,
    ) -> Result<RoomKey, (ErrorCode, &'static str)> {
        let Some(session) = self.session(conn) else {
            return Err((ErrorCode::NotAuthenticated, "not authenticated"));
        };
        member_room(&self.rooms, &self.room_index, session, requested)
    }

    /// See [`room_access`].
    fn room_access(
        &self,
        session: &Session,
        name: &str,
    ) -> Result<RoomAccess, (ErrorCode, &'static str)> {
        room_access(&self.rooms, &self.room_index, session, name)
    }

    /// The fan-out seam: delivers `json` to the room's local members except `skip`. A remote
    /// backplane would publish here too and deliver incoming events through the same loop.
    fn publish(
        &self,
        room: RoomKey,
        json: &str,
        skip: Option<ConnId>,
        delivery: Delivery,
        out: &mut impl Outbox,
    ) {
        if let Some(room) = self.rooms.get(room) {
            deliver(room, json, skip, delivery, out);
        }
    }

    /// Publishes a sequenced room event and retains it for resume (see [`fan_out`] and
    /// [`retain`]).
    fn publish_event(
        &mut self,
        key: RoomKey,
        event: &RoomEvent<'_>,
        now: u64,
        out: &mut impl Outbox,
    ) {
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        fan_out(room, || *event, None, None, &mut self.frame, out);
        let (events, bytes) = (self.config.history_events, self.config.history_bytes);
        let retention = room.history.push(event, events, bytes);
        retained(room, key, now, &self.config, &mut self.timers);
        self.retained_events = retention.applied_to(self.retained_events);
    }

    /// Adds `conn` to a shared room, announcing the user if this is their first connection.
    fn add_member(&mut self, conn: ConnId, key: RoomKey, out: &mut impl Outbox) {
        let Some(session) = self.sessions.get_mut(conn).and_then(Option::as_mut) else {
            return;
        };
        session.rooms.push(Membership {
            room: key,
            typing: None,
        });
        let user = session.private_room;
        let user_room_name = self.rooms[user].name.clone();
        let limit = self.config.presence_member_limit;
        let room = &mut self.rooms[key];
        room.members.push(conn);
        let first_connection = room.presence.as_mut().is_some_and(|counts| {
            let count = counts.entry(user).or_insert(0);
            *count += 1;
            *count == 1
        });
        if first_connection && room.members.len() <= limit {
            let sub = user_room_name.strip_prefix(PRIVATE_PREFIX).unwrap_or("");
            let json = wire::presence(&room.name, sub, true);
            self.publish(key, &json, Some(conn), Delivery::Droppable, out);
        }
    }

    /// Takes `conn` out of a room (already removed from the session's list, or the session is
    /// closing): typing off, presence, release.
    fn drop_membership(&mut self, conn: ConnId, membership: Membership, out: &mut impl Outbox) {
        let key = membership.room;
        if let Some(timer) = membership.typing {
            self.timers.cancel(timer);
            if let Some(json) = self.typing_json(conn, key, false) {
                self.publish(key, &json, Some(conn), Delivery::Droppable, out);
            }
        }
        let Some(user) = self.session(conn).map(|s| s.private_room) else {
            return;
        };
        let Some(user_room_name) = self.rooms.get(user).map(|r| r.name.clone()) else {
            return;
        };
        let limit = self.config.presence_member_limit;
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        let announce = room.members.len() <= limit;
        room.members.swap_remove_where(|&member| member == conn);
        let mut last_connection = false;
        if let Some(counts) = room.presence.as_mut() {
            if let Some(count) = counts.get_mut(&user) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&user);
                    last_connection = true;
                }
            }
        }
        if last_connection && announce {
            let sub = user_room_name.strip_prefix(PRIVATE_PREFIX).unwrap_or("");
            let json = wire::presence(&room.name, sub, false);
            self.publish(key, &json, None, Delivery::Droppable, out);
        }
        self.release_if_unused(key);
    }

    // ----- client messages -----

    #[inline(never)]
    fn on_message(
        &mut self,
        conn: ConnId,
        id: Option<&str>,
        text: &str,
        room: Option<&str>,
        now: u64,
        out: &mut impl Outbox,
    ) {
        // Settled in one test of the id: echoed when short enough, refused (after the rate
        // check) when not.
        let (echo_id, id_too_long) = match id {
            Some(id) if !wire::within_chars(id, MAX_ID_CHARS) => (None, true),
            id => (id, false),
        };
        let (rate, burst) = (self.config.msg_rate, self.config.msg_burst);
        // The session is looked up once: the room checks below borrow only the rooms.
        let Some(session) = self.sessions.get_mut(conn).and_then(Option::as_mut) else {
            return;
        };
        if !session.bucket.try_take(now, rate, burst) {
            let message = format!("more than {rate} messages per second; slow down");
            return send_error(out, conn, ErrorCode::RateLimited, &message, echo_id, None);
        }
        if id_too_long {
            let message = format!("id is longer than {MAX_ID_CHARS} characters");
            return send_error(out, conn, ErrorCode::BadRequest, &message, None, None);
        }
        if is_blank(text) {
            let message = "text is empty";
            return send_error(out, conn, ErrorCode::BadRequest, message, echo_id, None);
        }
        let max_chars = self.config.max_text_chars;
        if !wire::within_chars(text, max_chars) {
            let message = format!("text is longer than {max_chars} characters");
            return send_error(out, conn, ErrorCode::TextTooLong, &message, echo_id, None);
        }
        // Both callers pass live sessions only: no room named is the session's private room,
        // without `member_room`'s phase check.
        debug_assert!(session.phase == Phase::Live);
        let key = match room.map_or(Ok(session.private_room), |_| {
            member_room(&self.rooms, &self.room_index, session, room)
        }) {
            Ok(key) => key,
            Err((code, message)) => {
                let room = room.map(|r| wire::truncate_chars(r, 80));
                return send_error(out, conn, code, message, echo_id, room);
            }
        };
        let private_room = session.private_room;
        // Almost never typing: unless an indicator was turned on since a message last found
        // none, there is no membership to search.
        if let Some(timer) = session.take_typing(key) {
            typing_went_off(
                &mut self.timers,
                &self.rooms,
                session,
                conn,
                key,
                timer,
                out,
            );
        }
        // The session and the sender's private room stay borrowed (the session from
        // `sessions`, the rooms mutably for the target) rather than their names cloned.
        let name = session.name.as_deref();
        // In a private room the sender is the room's own user, named by the room.
        let (target, from) = if key == private_room {
            let Some(target) = self.rooms.get_mut(key) else {
                return;
            };
            (target, None)
        } else {
            let Some((target, sender_room)) = self.rooms.get2_mut(key, private_room) else {
                return;
            };
            (target, Some(sender_room.private_sub()))
        };
        // The history record's lines are cold; they can arrive while the text is scored.
        target
            .history
            .prepare_message(echo_id.map_or(0, str::len), text.len());
        target.last_seq += 1;
        let seq = target.last_seq;
        // Encoded once for the sender's result and the room event.
        let emotion_json = EmotionJson::from_scores(&self.scorer.score(text));
        let emotion = emotion_json.emotion();
        let ts = self.unix_ms_at_zero.saturating_add(now);
        // Written on the stack: no allocation, and nothing to drop at the end (nor a buffer
        // to clear when the client gave an id).
        let mut assigned = None;
        let id = match echo_id {
            Some(id) => id,
            None => server_id(seq, assigned.insert([0u8; SERVER_ID_BYTES])),
        };
        let message = MessageEvent {
            seq,
            ts,
            from,
            name,
            id,
            text,
            emotion,
        };
        // The room stays borrowed to the end: published, retained and named in the result
        // without another look-up.
        fan_out(
            target,
            || message.event(),
            Some(&emotion_json),
            Some(conn),
            &mut self.frame,
            out,
        );
        let (events, bytes) = (self.config.history_events, self.config.history_bytes);
        let retention = target.history.push_message(&message, events, bytes);
        retained(target, key, now, &self.config, &mut self.timers);
        self.retained_events = retention.applied_to(self.retained_events);
        let room_name = &target.name;
        let size_hint = wire::emotion_result_size_hint(Some(id), room_name);
        let emotion_json = &emotion_json;
        // Inlined where the outbox calls it: its captures are then the caller's registers
        // rather than a struct on the stack read back, and there is no second frame to set up.
        out.send_with(
            conn,
            Delivery::Essential,
            size_hint,
            #[inline(always)]
            move |json| {
                wire::write_emotion_result(json, Some(id), room_name, Some(seq), emotion_json)
            },
        );
        if self.config.bot && key == private_room {
            self.owe_reply(key, id, &emotion, now, out);
        }
    }

    fn on_typing(
        &mut self,
        conn: ConnId,
        room: Option<&str>,
        text: Option<&str>,
        now: u64,
        out: &mut impl Outbox,
    ) {
        let key = match self.member_room(conn, room) {
            Ok(key) => key,
            Err((code, message)) => {
                let room = room.map(|r| wire::truncate_chars(r, 80));
                return send_error(out, conn, code, message, None, room);
            }
        };
        let max_chars = self.config.max_text_chars;
        if text.is_some_and(|t| !wire::within_chars(t, max_chars)) {
            let message = format!("draft is longer than {max_chars} characters");
            return send_error(out, conn, ErrorCode::TextTooLong, &message, None, None);
        }
        self.start_typing(conn, key, now, out);
        if let Some(text) = text {
            let emotion_json = EmotionJson::from_scores(&self.scorer.score(text));
            let room_name = &self.rooms[key].name;
            let size_hint = wire::emotion_result_size_hint(None, room_name);
            out.send_with(conn, Delivery::Droppable, size_hint, |json| {
                wire::write_emotion_result(json, None, room_name, None, &emotion_json)
            });
        }
    }

    fn on_join(&mut self, conn: ConnId, name: &str, since: Option<u64>, out: &mut impl Outbox) {
        let Some(session) = self.live_session(conn) else {
            return;
        };
        let shown = wire::truncate_chars(name, 80);
        let key = match self.room_access(session, name) {
            Err((code, message)) => return send_error(out, conn, code, message, None, Some(shown)),
            Ok(RoomAccess::OwnPrivate(key) | RoomAccess::Shared(Some(key))) => key,
            Ok(RoomAccess::Shared(None)) => {
                let shared_rooms = session.rooms.len().saturating_sub(1);
                if shared_rooms >= self.config.max_rooms_per_conn {
                    let message = format!(
                        "at most {} rooms per connection; leave one first",
                        self.config.max_rooms_per_conn
                    );
                    let code = ErrorCode::TooManyRooms;
                    return send_error(out, conn, code, &message, None, Some(shown));
                }
                let key = self.room_for(name, true);
                self.add_member(conn, key, out);
                key
            }
        };
        let room = &self.rooms[key];
        out.send(
            conn,
            &wire::joined(&room.name, room.last_seq),
            Delivery::Essential,
        );
        if let Some(since) = since {
            self.replay(conn, key, since, out);
        }
    }

    /// Sends the retained events after `since`, or `history_gap` and then everything retained.
    fn replay(&self, conn: ConnId, key: RoomKey, since: u64, out: &mut impl Outbox) {
        let room = &self.rooms[key];
        let (gap, after) = room.resume_from(since);
        if gap {
            let message = if since > room.last_seq {
                format!(
                    "since {since} is ahead of this room (last seq {}): the server may have \
                     restarted; replaying what is retained",
                    room.last_seq
                )
            } else {
                let first = room.history.first_seq().unwrap_or(room.last_seq + 1);
                format!(
                    "events {} to {} are no longer retained; replaying what is",
                    since + 1,
                    first - 1
                )
            };
            send_error(
                out,
                conn,
                ErrorCode::HistoryGap,
                &message,
                None,
                Some(&room.name),
            );
        }
        for event in room.history.iter() {
            if event.seq > after {
                let size_hint = event.size_hint(&room.name);
                out.send_with(conn, Delivery::Essential, size_hint, |json| {
                    event.encode_into(&room.name, None, json)
                });
            }
        }
    }

    fn on_leave(&mut self, conn: ConnId, name: &str, out: &mut impl Outbox) {
        let Some(session) = self.live_session(conn) else {
            return;
        };
        let shown = wire::truncate_chars(name, 80);
        let key = match self.room_access(session, name) {
            Err((code, message)) => return send_error(out, conn, code, message, None, Some(shown)),
            Ok(RoomAccess::OwnPrivate(_)) => {
                let message = "the private room cannot be left";
                return send_error(out, conn, ErrorCode::BadRequest, message, None, Some(shown));
            }
            Ok(RoomAccess::Shared(Some(key))) => key,
            Ok(RoomAccess::Shared(None)) => {
                let message = "not a member of this room";
                return send_error(out, conn, ErrorCode::NotMember, message, None, Some(shown));
            }
        };
        let Some(membership) = self
            .session_mut(conn)
            .and_then(|s| s.rooms.swap_remove_where(|m| m.room == key))
        else {
            return;
        };
        self.drop_membership(conn, membership, out);
        out.send(conn, &wire::left(name), Delivery::Essential);
    }

    // ----- typing -----

    fn typing_json(&self, conn: ConnId, key: RoomKey, active: bool) -> Option<String> {
        let room = self.rooms.get(key)?;
        Some(typing_event(&self.rooms, self.session(conn)?, room, active))
    }

    /// Starts or refreshes `conn`'s indicator in the room; announces only the start.
    fn start_typing(&mut self, conn: ConnId, key: RoomKey, now: u64, out: &mut impl Outbox) {
        let deadline = now.saturating_add(self.config.typing_timeout_ms);
        let Some(session) = self.sessions.get_mut(conn).and_then(Option::as_mut) else {
            return;
        };
        let serial = session.serial;
        let Some(membership) = session.membership_to_type_in(key) else {
            return;
        };
        let already_on = match membership.typing.take() {
            Some(timer) => self.timers.cancel(timer).is_some(),
            None => false,
        };
        let timer = Timer::TypingIdle {
            conn,
            serial,
            room: key,
        };
        membership.typing = Some(self.timers.insert(deadline, timer));
        if !already_on {
            if let Some(json) = self.typing_json(conn, key, true) {
                self.publish(key, &json, Some(conn), Delivery::Droppable, out);
            }
        }
    }

    // ----- bot -----

    /// Schedules (or reschedules, for a burst) the bot's reply to the latest message.
    fn owe_reply(
        &mut self,
        key: RoomKey,
        id: &str,
        emotion: &WireEmotion,
        now: u64,
        out: &mut impl Outbox,
    ) {
        let deadline = now.saturating_add(self.config.bot_reply_delay_ms);
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        let timer = self.timers.insert(
            deadline,
            Timer::BotReply {
                room: key,
                generation: room.generation,
            },
        );
        match room.bot.as_mut() {
            Some(pending) => {
                self.timers.cancel(pending.timer);
                pending.timer = timer;
                pending.in_reply_to = id.into();
                pending.emotion = emotion.dominant;
                pending.confidence = emotion.confidence();
            }
            None => {
                room.bot = Some(Box::new(PendingReply {
                    timer,
                    in_reply_to: id.into(),
                    emotion: emotion.dominant,
                    confidence: emotion.confidence(),
                }));
                let json = wire::typing(&room.name, BOT_NAME, None, true);
                self.publish(key, &json, None, Delivery::Droppable, out);
            }
        }
    }

    fn send_reply(&mut self, key: RoomKey, generation: u32, now: u64, out: &mut impl Outbox) {
        let roll = self.next_random();
        let Some(room) = self
            .rooms
            .get_mut(key)
            .filter(|r| r.generation == generation)
        else {
            return;
        };
        let Some(pending) = room.bot.take() else {
            return;
        };
        let (template, text) = bot::compose(
            pending.emotion,
            pending.confidence,
            roll,
            room.last_template,
        );
        room.last_template = Some(template);
        room.last_seq += 1;
        let seq = room.last_seq;
        let ts = self.unix_ms_at_zero.saturating_add(now);
        let event = RoomEvent::reply(seq, ts, &pending.in_reply_to, text, pending.emotion);
        let typing_off = wire::typing(&room.name, BOT_NAME, None, false);
        self.publish_event(key, &event, now, out);
        self.publish(key, &typing_off, None, Delivery::Droppable, out);
        self.release_if_unused(key);
    }

    // ----- timers -----

    fn on_timer(&mut self, timer: Timer, now: u64, out: &mut impl Outbox) {
        match timer {
            Timer::AuthDeadline { conn, serial } => {
                let Some(session) = self.session_for_timer(conn, serial) else {
                    return;
                };
                session.timer = None;
                if session.phase == Phase::AwaitingAuth {
                    let reason = "no auth message in time";
                    self.close(conn, CLOSE_POLICY, reason, out);
                }
            }
            Timer::TokenExpiry { conn, serial } => {
                let Some(session) = self.session_for_timer(conn, serial) else {
                    return;
                };
                session.timer = None;
                if session.phase == Phase::Live {
                    self.close(conn, CLOSE_TOKEN_INVALID, "token expired", out);
                }
            }
            Timer::TypingIdle { conn, serial, room } => {
                let Some(session) = self.session_for_timer(conn, serial) else {
                    return;
                };
                let was_on = session
                    .membership_mut(room)
                    .and_then(|m| m.typing.take())
                    .is_some();
                if was_on {
                    if let Some(json) = self.typing_json(conn, room, false) {
                        self.publish(room, &json, Some(conn), Delivery::Droppable, out);
                    }
                }
            }
            Timer::BotReply { room, generation } => self.send_reply(room, generation, now, out),
            Timer::RoomIdle {
                room: key,
                generation,
            } => {
                let idle_after = self.config.history_min_age_ms;
                let Some(room) = self
                    .rooms
                    .get_mut(key)
                    .filter(|r| r.generation == generation)
                else {
                    return;
                };
                room.idle_timer = None;
                let idle_at = room.last_event_at.saturating_add(idle_after);
                if now >= idle_at {
                    self.retained_events -= room.history.release();
                    self.release_if_unused(key);
                } else {
                    let timer = Timer::RoomIdle {
                        room: key,
                        generation,
                    };
                    room.idle_timer = Some(self.timers.insert(idle_at, timer));
                }
            }
        }
    }
}

/// What a room name a session used refers to (see `ChatCore::room_access`).
enum RoomAccess {
    OwnPrivate(RoomKey),
    /// A shared room; its key when the session is a member.
    Shared(Option<RoomKey>),
}

const BAD_ROOM_MESSAGE: &str = "room names are user:<id> or match [a-z0-9_-]{1,64}";
const FORBIDDEN_MESSAGE: &str = "that is another user's private room";

/// The room a `message`/`typing` addresses (`None` = the private room), if the live `session`
/// is a member. Takes the rooms rather than the core, so that a caller can hold the session.
fn member_room(
    rooms: &Slab<Room>,
    room_index: &HashMap<Rc<str>, RoomKey>,
    session: &Session,
    requested: Option<&str>,
) -> Result<RoomKey, (ErrorCode, &'static str)> {
    if session.phase != Phase::Live {
        return Err((ErrorCode::NotAuthenticated, "not authenticated"));
    }
    let Some(name) = requested else {
        return Ok(session.private_room);
    };
    match room_access(rooms, room_index, session, name)? {
        RoomAccess::OwnPrivate(key) | RoomAccess::Shared(Some(key)) => Ok(key),
        RoomAccess::Shared(None) => Err((ErrorCode::NotMember, "join the room first")),
    }
}

/// Who may name which room, in one place for `message`, `typing`, `join` and `leave`: a
/// malformed name is `bad_room`, another user's private room is `forbidden`; otherwise the
/// session's own private room, or a shared room with its key when the session is a member.
fn room_access(
    rooms: &Slab<Room>,
    room_index: &HashMap<Rc<str>, RoomKey>,
    session: &Session,
    name: &str,
) -> Result<RoomAccess, (ErrorCode, &'static str)> {
    match parse_room_name(name) {
        None => Err((ErrorCode::BadRoom, BAD_ROOM_MESSAGE)),
        Some(RoomName::Private(_))
            if rooms
                .get(session.private_room)
                .is_some_and(|room| *room.name == *name) =>
        {
            Ok(RoomAccess::OwnPrivate(session.private_room))
        }
        Some(RoomName::Private(_)) => Err((ErrorCode::Forbidden, FORBIDDEN_MESSAGE)),
        Some(RoomName::Shared(_)) => Ok(RoomAccess::Shared(
            room_index
                .get(name)
                .copied()
                .filter(|&key| session.is_member(key)),
        )),
    }
}

/// Bytes of the longest id the server assigns: `srv-` and the 20 digits of `u64::MAX`.
const SERVER_ID_BYTES: usize = 24;

/// `srv-<seq>`, the id of a message sent without one, written into `buffer`.
fn server_id(seq: u64, buffer: &mut [u8; SERVER_ID_BYTES]) -> &str {
    use std::io::Write as _;
    let mut rest = &mut buffer[..];
    // Always fits: `SERVER_ID_BYTES` holds the longest.
    let _ = write!(rest, "srv-{seq}");
    let length = SERVER_ID_BYTES - rest.len();
    // ASCII only, so always UTF-8.
    std::str::from_utf8(buffer.get(..length).unwrap_or_default()).unwrap_or_default()
}

/// Whether `text` is empty or whitespace only, as `str::trim` sees it. A message almost always
/// starts with a visible ASCII character, which settles it without trimming.
fn is_blank(text: &str) -> bool {
    match text.as_bytes().first() {
        Some(byte) if byte.is_ascii_graphic() => false,
        _ => text.trim().is_empty(),
    }
}

/// Sends a sequenced event to the room's members except `skip`. It is encoded only when one of
/// them is there to get it now: straight into that member's output when there is one (a user's
/// second tab), otherwise once into `frame`, the same bytes going to every member.
/// `emotion_json`: a message's emotion, already encoded for its sender's result.
/// `event` builds it: it is laid out in memory only when someone else is to get it.
#[inline(always)]
fn fan_out<'a>(
    room: &Room,
    event: impl FnOnce() -> RoomEvent<'a>,
    emotion_json: Option<&EmotionJson>,
    skip: Option<ConnId>,
    frame: &mut Vec<u8>,
    out: &mut impl Outbox,
) {
    // The usual case, settled before any call: the sender alone in their private room.
    if let [only] = room.members.as_slice() {
        if Some(*only) == skip {
            return;
        }
    }
    fan_out_to_members(room, event(), emotion_json, skip, frame, out);
}

#[inline(never)]
fn fan_out_to_members(
    room: &Room,
    event: RoomEvent<'_>,
    emotion_json: Option<&EmotionJson>,
    skip: Option<ConnId>,
    frame: &mut Vec<u8>,
    out: &mut impl Outbox,
) {
    let members = room.members.as_slice();
    let mut recipients = members.iter().filter(|&&m| Some(m) != skip);
    match (recipients.next(), recipients.next()) {
        (None, _) => {}
        (Some(&only), None) => {
            let size_hint = event.size_hint(&room.name);
            out.send_with(only, Delivery::Essential, size_hint, |json| {
                event.encode_into(&room.name, emotion_json, json)
            });
        }
        (Some(_), Some(_)) => {
            frame.clear();
            event.encode_into(&room.name, emotion_json, frame);
            // The wire writers produce UTF-8 only.
            if let Ok(json) = std::str::from_utf8(frame) {
                deliver(room, json, skip, Delivery::Essential, out);
            }
        }
    }
}

/// The delivery loop behind [`ChatCore::publish`]: `json` to every local member of `room`
/// except `skip`.
fn deliver(
    room: &Room,
    json: &str,
    skip: Option<ConnId>,
    delivery: Delivery,
    out: &mut impl Outbox,
) {
    for &member in room.members.as_slice() {
        if Some(member) != skip {
            out.send(member, json, delivery);
        }
    }
}

/// Announces that `conn`'s indicator in the room went off, its `timer` having been taken
/// from the membership. Takes the core's parts, so that a caller can hold the session.
#[cold]
fn typing_went_off(
    timers: &mut TimerWheel<Timer>,
    rooms: &Slab<Room>,
    session: &Session,
    conn: ConnId,
    key: RoomKey,
    timer: TimerKey,
    out: &mut impl Outbox,
) {
    timers.cancel(timer);
    if let Some(room) = rooms.get(key) {
        let json = typing_event(rooms, session, room, false);
        deliver(room, &json, Some(conn), Delivery::Droppable, out);
    }
}

/// The `typing` event of `session`'s indicator in `room` going on or off.
fn typing_event(rooms: &Slab<Room>, session: &Session, room: &Room, active: bool) -> String {
    let sub = sub_of(rooms, session);
    wire::typing(&room.name, sub, session.name.as_deref(), active)
}

/// The user's sub for a live session: its private room's name without the prefix.
fn sub_of<'r>(rooms: &'r Slab<Room>, session: &Session) -> &'r str {
    rooms
        .get(session.private_room)
        .map_or("", Room::private_sub)
}

/// After an event was pushed to the room's history for resume: notes the time and arms the
/// room's idle timer, which releases the history once the room has been quiet for
/// `history_min_age_ms`.
#[inline(always)]
fn retained(
    room: &mut Room,
    key: RoomKey,
    now: u64,
    config: &ChatConfig,
    timers: &mut TimerWheel<Timer>,
) {
    room.last_event_at = now;
    if room.idle_timer.is_none() && !room.history.is_empty() {
        let timer = Timer::RoomIdle {
            room: key,
            generation: room.generation,
        };
        let idle_at = now.saturating_add(config.history_min_age_ms);
        room.idle_timer = Some(timers.insert(idle_at, timer));
    }
}

fn send_error(
    out: &mut impl Outbox,
    conn: ConnId,
    code: ErrorCode,
    message: &str,
    id: Option<&str>,
    room: Option<&str>,
) {
    out.send(
        conn,
        &wire::error(code, message, id, room),
        Delivery::Essential,
    );
}
