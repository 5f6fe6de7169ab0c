//! Behaviour tests for the chat core: a simulated clock and a recording outbox.

use serde_json::{json, Value};

use super::auth::{AuthConfig, Authenticator, KeyConfig};
use super::*;

/// Unix milliseconds at monotonic zero.
const UNIX_AT_ZERO: u64 = 1_800_000_000_000;
const SECRET: &[u8] = b"chat-core-test-secret";

#[derive(Debug, Clone)]
struct Sent {
    conn: ConnId,
    json: Value,
    raw: String,
    delivery: Delivery,
}

#[derive(Default)]
struct Recorder {
    sent: Vec<Sent>,
    closes: Vec<(ConnId, u16, String)>,
}

impl Outbox for Recorder {
    fn send(&mut self, conn: ConnId, json: &str, delivery: Delivery) {
        let parsed =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("invalid JSON {json}: {e}"));
        self.sent.push(Sent {
            conn,
            json: parsed,
            raw: json.to_owned(),
            delivery,
        });
    }

    fn close(&mut self, conn: ConnId, code: u16, reason: &str) {
        assert!(reason.len() <= 123, "close reason too long: {reason}");
        self.closes.push((conn, code, reason.to_owned()));
    }
}

struct Harness {
    core: ChatCore,
    out: Recorder,
    now: u64,
}

fn authenticator() -> Authenticator {
    Authenticator::new(AuthConfig {
        key: KeyConfig::Hs256(SECRET.to_vec()),
        issuer: None,
        audience: None,
    })
    .unwrap()
}

impl Harness {
    fn new() -> Harness {
        Harness::with(ChatConfig::default())
    }

    fn without_bot() -> Harness {
        Harness::with(ChatConfig {
            bot: false,
            ..ChatConfig::default()
        })
    }

    fn with(config: ChatConfig) -> Harness {
        Harness {
            core: ChatCore::new(config, authenticator(), UNIX_AT_ZERO),
            out: Recorder::default(),
            now: 0,
        }
    }

    fn token(&self, sub: &str, ttl_s: u64) -> String {
        let now_s = self.core.unix_seconds(self.now);
        self.core
            .authenticator()
            .mint(sub, None, ttl_s, now_s)
            .unwrap()
    }

    /// Opens `conn` with a token from the upgrade request, as the reactor does, and returns
    /// `ready`.
    fn connect(&mut self, conn: ConnId, sub: &str) -> Value {
        let token = self.token(sub, 3600);
        let claims = self
            .core
            .authenticator()
            .verify(&token, self.core.unix_seconds(self.now))
            .unwrap();
        self.core.open(conn, Some(claims), self.now, &mut self.out);
        let sent = self.drain();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].conn, conn);
        sent[0].json.clone()
    }

    /// Opens `conn` and authenticates it with an `auth` message as `sub`, whose token gives the
    /// display name `name`; drains what that sends.
    fn connect_named(&mut self, conn: ConnId, sub: &str, name: &str) {
        let now_s = self.core.unix_seconds(self.now);
        let token = self
            .core
            .authenticator()
            .mint(sub, Some(name), 600, now_s)
            .unwrap();
        self.core.open(conn, None, self.now, &mut self.out);
        self.send(conn, json!({"type": "auth", "token": token}));
        self.drain();
    }

    /// Sends a `join` of `room` from each of `conns`.
    fn join(&mut self, conns: &[ConnId], room: &str) {
        for &conn in conns {
            self.send(conn, json!({"type": "join", "room": room}));
        }
    }

    fn send(&mut self, conn: ConnId, message: Value) {
        self.send_text(conn, &message.to_string());
    }

    fn send_text(&mut self, conn: ConnId, text: &str) {
        self.core.text(conn, text, self.now, &mut self.out);
    }

    fn close(&mut self, conn: ConnId) {
        self.core.closed(conn, self.now, &mut self.out);
    }

    /// Moves the clock, firing timers as the reactor would (at each deadline on the way).
    fn advance_to(&mut self, target: u64) {
        assert!(target >= self.now);
        while let Some(deadline) = self.core.next_deadline() {
            if deadline > target {
                break;
            }
            self.now = deadline.max(self.now);
            self.core.expire(self.now, &mut self.out);
        }
        self.now = target;
        self.core.expire(self.now, &mut self.out);
    }

    fn advance(&mut self, ms: u64) {
        self.advance_to(self.now + ms);
    }

    fn drain(&mut self) -> Vec<Sent> {
        std::mem::take(&mut self.out.sent)
    }

    fn drain_closes(&mut self) -> Vec<(ConnId, u16, String)> {
        std::mem::take(&mut self.out.closes)
    }

    /// What `conn` received since the last drain of `sent`, leaving the rest in place.
    fn received(&self, conn: ConnId) -> Vec<Value> {
        self.out
            .sent
            .iter()
            .filter(|s| s.conn == conn)
            .map(|s| s.json.clone())
            .collect()
    }
}

fn of_type<'a>(sent: &'a [Sent], conn: ConnId, kind: &str) -> Vec<&'a Value> {
    sent.iter()
        .filter(|s| s.conn == conn && s.json["type"] == kind)
        .map(|s| &s.json)
        .collect()
}

fn types(sent: &[Sent], conn: ConnId) -> Vec<String> {
    sent.iter()
        .filter(|s| s.conn == conn)
        .map(|s| s.json["type"].as_str().unwrap_or("?").to_owned())
        .collect()
}

fn error_code(value: &Value) -> &str {
    assert_eq!(value["type"], "error", "{value}");
    value["code"].as_str().unwrap()
}

// ----- auth -----

#[test]
fn token_at_upgrade_sends_ready_at_once() {
    let mut h = Harness::new();
    let ready = h.connect(1, "alice");
    assert_eq!(ready["type"], "ready");
    assert_eq!(ready["user"], "alice");
    assert_eq!(ready["room"], "user:alice");
    assert_eq!(ready["seq"], 0);
    assert_eq!(ready["typing_timeout_ms"], 2000);
    assert_eq!(ready["ping_interval_ms"], 25_000);
    assert!(ready.get("name").is_none());
    assert!(!ready["session"].as_str().unwrap().is_empty());
    assert_eq!(h.core.stats().authenticated, 1);
}

#[test]
fn display_name_travels_separately_from_the_user_id() {
    let mut h = Harness::new();
    let token = h
        .core
        .authenticator()
        .mint("u42", Some("Zoë"), 600, h.core.unix_seconds(0))
        .unwrap();
    h.core.open(1, None, 0, &mut h.out);
    h.send(1, json!({"type": "auth", "token": token}));
    let sent = h.drain();
    assert_eq!(sent[0].json["user"], "u42");
    assert_eq!(sent[0].json["name"], "Zoë");
}

#[test]
fn first_frame_auth_then_ready() {
    let mut h = Harness::new();
    h.core.open(7, None, 0, &mut h.out);
    assert!(h.drain().is_empty());
    h.send(7, json!({"type": "ping", "t": 5}));
    h.send(7, json!({"type": "message", "id": "early", "text": "hi"}));
    let sent = h.drain();
    assert_eq!(sent[0].json, json!({"type": "pong", "t": 5}));
    assert_eq!(error_code(&sent[1].json), "not_authenticated");
    assert_eq!(sent[1].json["id"], "early");
    let token = h.token("bob", 60);
    h.advance(1000);
    h.send(7, json!({"type": "auth", "token": token}));
    let sent = h.drain();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].json["type"], "ready");
    assert_eq!(sent[0].json["user"], "bob");
    // The auth deadline no longer applies.
    h.advance(10_000);
    assert!(h.drain_closes().is_empty());
}

#[test]
fn no_auth_within_the_deadline_closes_with_1008() {
    let mut h = Harness::new();
    h.core.open(3, None, 0, &mut h.out);
    h.advance_to(4990);
    assert!(h.drain_closes().is_empty());
    h.advance_to(5000);
    let closes = h.drain_closes();
    assert_eq!(closes.len(), 1);
    assert_eq!((closes[0].0, closes[0].1), (3, 1008));
    // Input after the close request is ignored; `closed` forgets the session.
    h.send(3, json!({"type": "ping", "t": 1}));
    assert!(h.drain().is_empty());
    h.close(3);
    assert_eq!(h.core.stats(), ChatStats::default());
}

#[test]
fn bad_or_expired_token_in_auth_closes_with_4001() {
    let mut h = Harness::new();
    h.core.open(1, None, 0, &mut h.out);
    h.send(1, json!({"type": "auth", "token": "garbage"}));
    assert_eq!(h.drain_closes()[0].1, 4001);

    let expired = h.token("carol", 10);
    h.advance(41_000); // past exp + 30 s leeway
    h.core.open(2, None, h.now, &mut h.out);
    h.send(2, json!({"type": "auth", "token": expired}));
    let closes = h.drain_closes();
    assert_eq!((closes[0].0, closes[0].1), (2, 4001));
    assert!(closes[0].2.contains("expired"), "{}", closes[0].2);
    assert!(of_type(&h.drain(), 2, "ready").is_empty());
}

#[test]
fn token_expiry_on_a_live_connection_closes_with_4001() {
    let mut h = Harness::new();
    let token = h.token("dave", 60);
    h.core.open(1, None, 0, &mut h.out);
    h.send(1, json!({"type": "auth", "token": token}));
    h.drain();
    // Valid through exp + leeway; closed within a timer tick after.
    h.advance_to(90_000);
    assert!(h.drain_closes().is_empty());
    h.advance_to(91_010);
    let closes = h.drain_closes();
    assert_eq!((closes[0].0, closes[0].1), (1, 4001));
}

#[test]
fn fresh_auth_before_expiry_keeps_the_connection() {
    let mut h = Harness::new();
    let token = h.token("erin", 60);
    h.core.open(1, None, 0, &mut h.out);
    h.send(1, json!({"type": "auth", "token": token}));
    h.advance_to(50_000);
    h.drain();
    let fresh = h.token("erin", 600);
    h.send(1, json!({"type": "auth", "token": fresh}));
    let sent = h.drain();
    let expected_exp = h.core.unix_seconds(50_000) + 600;
    assert_eq!(sent[0].json, json!({"type": "authed", "exp": expected_exp}));
    h.advance_to(200_000);
    assert!(h.drain_closes().is_empty());
    h.advance_to(50_000 + 631_010);
    assert_eq!(h.drain_closes()[0].1, 4001);
}

#[test]
fn refresh_with_another_users_token_closes_with_4001() {
    let mut h = Harness::new();
    h.connect(1, "frank");
    let other = h.token("grace", 600);
    h.send(1, json!({"type": "auth", "token": other}));
    assert_eq!(h.drain_closes()[0].1, 4001);
    let bad = "x.y.z";
    h.connect(2, "frank");
    h.send(2, json!({"type": "auth", "token": bad}));
    assert_eq!(h.drain_closes()[0].1, 4001);
}

// ----- private room -----

#[test]
fn private_room_fans_out_across_tabs_only() {
    let mut h = Harness::without_bot();
    h.connect(1, "alice");
    h.connect(2, "alice");
    h.connect(3, "bob");
    h.send(
        1,
        json!({"type": "message", "id": "c1", "text": "hello there"}),
    );
    let sent = h.drain();
    let emotion = of_type(&sent, 1, "emotion");
    assert_eq!(emotion.len(), 1);
    assert_eq!(emotion[0]["id"], "c1");
    assert_eq!(emotion[0]["room"], "user:alice");
    assert_eq!(emotion[0]["seq"], 1);
    assert_eq!(emotion[0]["preview"], false);
    let message = of_type(&sent, 2, "message");
    assert_eq!(message.len(), 1);
    assert_eq!(message[0]["from"], "alice");
    assert_eq!(message[0]["text"], "hello there");
    assert_eq!(message[0]["seq"], 1);
    assert_eq!(message[0]["id"], "c1");
    assert_eq!(message[0]["emotion"]["dominant"], emotion[0]["dominant"]);
    assert_eq!(message[0]["emotion"]["scores"], emotion[0]["scores"]);
    assert!(types(&sent, 1).iter().all(|t| t == "emotion"));
    assert!(
        types(&sent, 3).is_empty(),
        "bob sees nothing of alice's room"
    );
}

#[test]
fn message_without_id_gets_a_server_id() {
    let mut h = Harness::without_bot();
    h.connect(1, "alice");
    h.connect(2, "alice");
    h.send(1, json!({"type": "message", "text": "no id"}));
    let sent = h.drain();
    let assigned = of_type(&sent, 1, "emotion")[0]["id"].clone();
    assert!(assigned.as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(of_type(&sent, 2, "message")[0]["id"], assigned);
}

#[test]
fn other_users_private_rooms_are_forbidden() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.connect(2, "bob");
    h.send(1, json!({"type": "join", "room": "user:bob"}));
    h.send(
        1,
        json!({"type": "message", "id": "m", "text": "hi", "room": "user:bob"}),
    );
    h.send(1, json!({"type": "typing", "room": "user:bob"}));
    let sent = h.drain();
    let codes: Vec<&str> = sent.iter().map(|s| error_code(&s.json)).collect();
    assert_eq!(codes, vec!["forbidden"; 3]);
    assert_eq!(sent[1].json["id"], "m");
    assert!(types(&sent, 2).is_empty());
    // Joining your own private room is allowed (e.g. to resume).
    h.send(1, json!({"type": "join", "room": "user:alice"}));
    assert_eq!(
        h.drain()[0].json,
        json!({"type": "joined", "room": "user:alice", "seq": 0})
    );
}

#[test]
fn invalid_room_names_are_bad_room() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    for room in ["Lobby", "", "a b", "x".repeat(65).as_str(), "caf\u{e9}"] {
        h.send(1, json!({"type": "join", "room": room}));
    }
    h.send(1, json!({"type": "leave", "room": "No!"}));
    h.send(1, json!({"type": "message", "text": "x", "room": "a/b"}));
    let sent = h.drain();
    assert_eq!(sent.len(), 7);
    assert!(sent.iter().all(|s| error_code(&s.json) == "bad_room"));
}

// ----- shared rooms -----

#[test]
fn shared_room_join_message_leave_and_presence() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.connect(2, "bob");
    h.connect(3, "bob");
    h.send(1, json!({"type": "join", "room": "lobby"}));
    assert_eq!(
        h.drain()[0].json,
        json!({"type": "joined", "room": "lobby", "seq": 0})
    );

    h.send(2, json!({"type": "join", "room": "lobby"}));
    let sent = h.drain();
    assert_eq!(
        of_type(&sent, 1, "presence"),
        vec![&json!({"type": "presence", "room": "lobby", "user": "bob", "online": true})]
    );
    assert_eq!(of_type(&sent, 2, "joined").len(), 1);
    assert!(of_type(&sent, 2, "presence").is_empty());

    // Bob's second connection: no presence, he is already there.
    h.send(3, json!({"type": "join", "room": "lobby"}));
    let sent = h.drain();
    assert!(
        sent.iter().all(|s| s.json["type"] != "presence"),
        "{sent:?}"
    );

    h.send(
        2,
        json!({"type": "message", "id": "b1", "text": "hi all", "room": "lobby"}),
    );
    let sent = h.drain();
    assert_eq!(types(&sent, 2), vec!["emotion"]);
    assert_eq!(of_type(&sent, 1, "message")[0]["from"], "bob");
    assert_eq!(of_type(&sent, 1, "message")[0]["room"], "lobby");
    assert_eq!(
        of_type(&sent, 3, "message").len(),
        1,
        "bob's other tab sees it too"
    );
    assert!(
        sent.iter().all(|s| s.json["type"] != "typing"),
        "no bot in shared rooms"
    );
    h.advance(5000);
    assert!(h.drain().iter().all(|s| s.json["type"] != "reply"));

    // Leaving with one of two connections: still online.
    h.send(2, json!({"type": "leave", "room": "lobby"}));
    let sent = h.drain();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].json, json!({"type": "left", "room": "lobby"}));
    // Last connection gone (by disconnect): offline.
    h.close(3);
    let sent = h.drain();
    assert_eq!(
        of_type(&sent, 1, "presence"),
        vec![&json!({"type": "presence", "room": "lobby", "user": "bob", "online": false})]
    );
    assert!(sent.iter().all(|s| s.conn == 1));
    assert_eq!(sent[0].delivery, Delivery::Droppable);
}

#[test]
fn messages_need_membership_and_leave_needs_membership() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.send(
        1,
        json!({"type": "message", "id": "x", "text": "hi", "room": "lobby"}),
    );
    h.send(1, json!({"type": "leave", "room": "lobby"}));
    h.send(1, json!({"type": "typing", "room": "lobby"}));
    h.send(1, json!({"type": "leave", "room": "user:alice"}));
    let sent = h.drain();
    let codes: Vec<&str> = sent.iter().map(|s| error_code(&s.json)).collect();
    assert_eq!(
        codes,
        vec!["not_member", "not_member", "not_member", "bad_request"]
    );
    assert_eq!(sent[0].json["room"], "lobby");
}

#[test]
fn rooms_per_connection_are_capped() {
    let mut h = Harness::with(ChatConfig {
        max_rooms_per_conn: 2,
        ..ChatConfig::default()
    });
    h.connect(1, "alice");
    for room in ["a", "b", "c"] {
        h.send(1, json!({"type": "join", "room": room}));
    }
    // Re-joining a room already joined does not count twice.
    h.send(1, json!({"type": "join", "room": "a"}));
    let sent = h.drain();
    assert_eq!(types(&sent, 1), vec!["joined", "joined", "error", "joined"]);
    assert_eq!(error_code(&sent[2].json), "too_many_rooms");
    h.send(1, json!({"type": "leave", "room": "a"}));
    h.send(1, json!({"type": "join", "room": "c"}));
    assert_eq!(types(&h.drain(), 1), vec!["left", "joined"]);
}

#[test]
fn no_per_user_presence_above_the_member_limit() {
    let mut h = Harness::with(ChatConfig {
        presence_member_limit: 3,
        ..ChatConfig::default()
    });
    for conn in 1..=5 {
        h.connect(conn, &format!("user{conn}"));
    }
    for conn in 1..=5 {
        h.send(conn, json!({"type": "join", "room": "big"}));
    }
    let sent = h.drain();
    let presence_events = sent.iter().filter(|s| s.json["type"] == "presence").count();
    // Joins 2 and 3 are announced (to 1, then to 1 and 2); joins 4 and 5 are not.
    assert_eq!(presence_events, 1 + 2);
    h.close(5);
    assert!(
        h.drain().is_empty(),
        "leaving a room above the limit is silent too"
    );
    h.close(4);
    h.close(3);
    assert_eq!(
        h.drain().len(),
        2,
        "back at the limit: user3 leaving is announced"
    );
}

// ----- typing -----

fn lobby_with_alice_and_bob() -> Harness {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.connect(2, "bob");
    h.join(&[1, 2], "lobby");
    h.drain();
    h
}

#[test]
fn typing_starts_once_refreshes_and_expires() {
    let mut h = lobby_with_alice_and_bob();
    h.advance_to(1000);
    h.send(1, json!({"type": "typing", "room": "lobby"}));
    let sent = h.drain();
    assert_eq!(
        of_type(&sent, 2, "typing"),
        vec![&json!({"type": "typing", "room": "lobby", "from": "alice", "active": true})]
    );
    assert!(types(&sent, 1).is_empty());
    assert_eq!(sent[0].delivery, Delivery::Droppable);

    h.advance_to(2500);
    h.send(1, json!({"type": "typing", "room": "lobby"}));
    assert!(h.drain().is_empty(), "a refresh is not announced");

    h.advance_to(4490);
    assert!(h.drain().is_empty());
    h.advance_to(4500);
    assert_eq!(
        of_type(&h.drain(), 2, "typing"),
        vec![&json!({"type": "typing", "room": "lobby", "from": "alice", "active": false})]
    );
}

/// Connection 1 starts typing in the lobby, then sends a message there; what that message
/// sends.
fn typing_then_message_in_lobby(h: &mut Harness) -> Vec<Sent> {
    h.send(1, json!({"type": "typing", "room": "lobby"}));
    h.drain();
    h.send(
        1,
        json!({"type": "message", "id": "m1", "text": "done", "room": "lobby"}),
    );
    h.drain()
}

#[test]
fn sending_the_message_clears_typing_first() {
    let mut h = lobby_with_alice_and_bob();
    let sent = typing_then_message_in_lobby(&mut h);
    assert_eq!(types(&sent, 2), vec!["typing", "message"]);
    assert_eq!(of_type(&sent, 2, "typing")[0]["active"], false);
    h.advance(5000);
    assert!(
        h.drain().is_empty(),
        "no second typing:false when the timer would have fired"
    );
}

#[test]
fn a_named_senders_message_turns_typing_off_in_their_name() {
    let mut h = Harness::without_bot();
    h.connect_named(1, "u-ann", "Ann");
    h.connect(2, "bob");
    h.join(&[1, 2], "lobby");
    let sent = typing_then_message_in_lobby(&mut h);
    assert_eq!(types(&sent, 2), vec!["typing", "message"]);
    assert_eq!(
        of_type(&sent, 2, "typing")[0],
        &json!({"type": "typing", "room": "lobby", "from": "u-ann", "name": "Ann", "active": false})
    );
    let message = of_type(&sent, 2, "message")[0];
    assert_eq!(
        (&message["from"], &message["name"]),
        (&json!("u-ann"), &json!("Ann"))
    );
}

#[test]
fn assigned_ids_are_srv_and_the_seq() {
    let mut buffer = [0u8; SERVER_ID_BYTES];
    assert_eq!(server_id(0, &mut buffer), "srv-0");
    assert_eq!(server_id(7, &mut buffer), "srv-7");
    assert_eq!(server_id(1_234_567_890, &mut buffer), "srv-1234567890");
    assert_eq!(
        server_id(u64::MAX, &mut buffer),
        format!("srv-{}", u64::MAX)
    );
}

#[test]
fn a_message_turns_off_only_its_rooms_typing_each_time_it_is_on() {
    let mut h = Harness::without_bot();
    h.connect(1, "alice");
    h.connect(2, "bob");
    h.connect(3, "alice");
    h.join(&[1, 2], "lobby");
    h.send(1, json!({"type": "typing", "room": "lobby"}));
    h.send(1, json!({"type": "typing"}));
    h.drain();
    // The lobby's indicator goes off with the message there; the private room's stays on.
    h.send(
        1,
        json!({"type": "message", "id": "m1", "text": "one", "room": "lobby"}),
    );
    let sent = h.drain();
    assert_eq!(types(&sent, 2), vec!["typing", "message"]);
    assert!(types(&sent, 3).is_empty());
    // Then the private room's, with a message there.
    h.send(1, json!({"type": "message", "id": "m2", "text": "two"}));
    let sent = h.drain();
    assert_eq!(types(&sent, 3), vec!["typing", "message"]);
    assert_eq!(of_type(&sent, 3, "typing")[0]["active"], false);
    // None left on: messages turn nothing off, until typing starts again.
    h.send(1, json!({"type": "message", "id": "m3", "text": "three"}));
    assert_eq!(types(&h.drain(), 3), vec!["message"]);
    h.send(1, json!({"type": "typing", "room": "lobby"}));
    h.drain();
    h.send(
        1,
        json!({"type": "message", "id": "m4", "text": "four", "room": "lobby"}),
    );
    assert_eq!(types(&h.drain(), 2), vec!["typing", "message"]);
    // An indicator that expired is not turned off again by the next message.
    h.send(1, json!({"type": "typing", "room": "lobby"}));
    h.advance(5000);
    assert_eq!(of_type(&h.drain(), 2, "typing")[1]["active"], false);
    h.send(
        1,
        json!({"type": "message", "id": "m5", "text": "five", "room": "lobby"}),
    );
    assert_eq!(types(&h.drain(), 2), vec!["message"]);
}

#[test]
fn disconnect_clears_typing() {
    let mut h = lobby_with_alice_and_bob();
    h.send(1, json!({"type": "typing", "room": "lobby"}));
    h.drain();
    h.close(1);
    let sent = h.drain();
    assert_eq!(types(&sent, 2), vec!["typing", "presence"]);
    assert_eq!(of_type(&sent, 2, "typing")[0]["active"], false);
    assert!(sent.iter().all(|s| s.conn != 1));
    h.advance(5000);
    assert!(h.drain().is_empty());
}

#[test]
fn typing_with_text_previews_the_emotion_to_the_sender() {
    let mut h = lobby_with_alice_and_bob();
    h.send(
        1,
        json!({"type": "typing", "room": "lobby", "text": "I am so worried"}),
    );
    let sent = h.drain();
    let preview = of_type(&sent, 1, "emotion");
    assert_eq!(preview.len(), 1);
    assert_eq!(preview[0]["preview"], true);
    assert_eq!(preview[0]["id"], Value::Null);
    assert!(preview[0].get("seq").is_none());
    assert_eq!(preview[0]["room"], "lobby");
    assert_eq!(preview[0]["scores"].as_object().unwrap().len(), 7);
    let preview_delivery = sent.iter().find(|s| s.conn == 1).unwrap().delivery;
    assert_eq!(preview_delivery, Delivery::Droppable);
    // The draft itself never reaches the others.
    assert!(sent
        .iter()
        .all(|s| !s.raw.contains("worried") || s.conn == 1));
}

#[test]
fn typing_in_the_private_room_reaches_other_tabs() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.connect(2, "alice");
    h.send(1, json!({"type": "typing"}));
    let sent = h.drain();
    assert_eq!(of_type(&sent, 2, "typing")[0]["room"], "user:alice");
    assert!(types(&sent, 1).is_empty());
}

// ----- bot -----

#[test]
fn bot_answers_after_the_delay_with_typing_around_the_reply() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.connect(2, "alice");
    h.advance_to(1000);
    h.send(
        1,
        json!({"type": "message", "id": "c1", "text": "I failed my exam"}),
    );
    let sent = h.drain();
    assert_eq!(types(&sent, 1), vec!["emotion", "typing"]);
    assert_eq!(types(&sent, 2), vec!["message", "typing"]);
    let dominant = of_type(&sent, 1, "emotion")[0]["dominant"].clone();
    assert_eq!(
        of_type(&sent, 1, "typing")[0],
        &json!({"type": "typing", "room": "user:alice", "from": "emotibot", "active": true})
    );

    h.advance_to(1690);
    assert!(h.drain().is_empty());
    h.advance_to(1700);
    let sent = h.drain();
    for conn in [1, 2] {
        assert_eq!(types(&sent, conn), vec!["reply", "typing"]);
        let reply = of_type(&sent, conn, "reply")[0];
        assert_eq!(reply["room"], "user:alice");
        assert_eq!(reply["seq"], 2);
        assert_eq!(reply["in_reply_to"], "c1");
        assert_eq!(reply["emotion"], dominant);
        assert!(!reply["text"].as_str().unwrap().is_empty());
        assert_eq!(of_type(&sent, conn, "typing")[0]["active"], false);
        assert_eq!(of_type(&sent, conn, "typing")[0]["from"], "emotibot");
    }
}

#[test]
fn a_burst_gets_one_reply_to_the_latest_message() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.advance_to(1000);
    for (i, at) in [1000, 1200, 1400].into_iter().enumerate() {
        h.advance_to(at);
        h.send(
            1,
            json!({"type": "message", "id": format!("c{i}"), "text": "hm"}),
        );
    }
    h.advance_to(10_000);
    let sent = h.drain();
    let replies = of_type(&sent, 1, "reply");
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0]["in_reply_to"], "c2");
    assert_eq!(replies[0]["seq"], 4);
    let bot_typing: Vec<bool> = of_type(&sent, 1, "typing")
        .iter()
        .map(|t| t["active"].as_bool().unwrap())
        .collect();
    assert_eq!(bot_typing, vec![true, false]);
}

#[test]
fn consecutive_replies_differ() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    let mut texts = Vec::new();
    for i in 0..30 {
        h.send(
            1,
            json!({"type": "message", "id": format!("m{i}"), "text": "same words"}),
        );
        h.advance(1000);
        for reply in of_type(&h.drain(), 1, "reply") {
            texts.push(reply["text"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(texts.len(), 30);
    for pair in texts.windows(2) {
        assert_ne!(pair[0], pair[1]);
    }
}

#[test]
fn zero_delay_replies_at_the_next_tick_and_bot_off_never_replies() {
    let mut h = Harness::with(ChatConfig {
        bot_reply_delay_ms: 0,
        ..ChatConfig::default()
    });
    h.connect(1, "alice");
    h.send(1, json!({"type": "message", "id": "a", "text": "quick"}));
    h.advance(10);
    assert_eq!(of_type(&h.drain(), 1, "reply").len(), 1);

    let mut off = Harness::without_bot();
    off.connect(1, "alice");
    off.send(1, json!({"type": "message", "id": "a", "text": "anyone?"}));
    off.advance(5000);
    assert_eq!(types(&off.drain(), 1), vec!["emotion"]);
}

#[test]
fn pending_reply_survives_the_user_disconnecting_and_is_kept_for_resume() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.send(1, json!({"type": "message", "id": "c1", "text": "bye"}));
    h.close(1);
    h.drain();
    h.advance(1000);
    assert!(h.drain().is_empty());
    h.connect(2, "alice");
    h.send(2, json!({"type": "join", "room": "user:alice", "since": 1}));
    let sent = h.drain();
    assert_eq!(types(&sent, 2), vec!["joined", "reply"]);
    assert_eq!(of_type(&sent, 2, "reply")[0]["in_reply_to"], "c1");
}

// ----- limits and bad input -----

#[test]
fn rate_limit_applies_per_connection() {
    let mut h = Harness::with(ChatConfig {
        msg_rate: 2,
        msg_burst: 3,
        bot: false,
        ..ChatConfig::default()
    });
    h.connect(1, "alice");
    h.connect(2, "bob");
    for i in 0..4 {
        h.send(
            1,
            json!({"type": "message", "id": format!("m{i}"), "text": "spam"}),
        );
    }
    h.send(2, json!({"type": "message", "id": "b", "text": "fine"}));
    let sent = h.drain();
    assert_eq!(
        types(&sent, 1),
        vec!["emotion", "emotion", "emotion", "error"]
    );
    let limited = of_type(&sent, 1, "error")[0];
    assert_eq!(error_code(limited), "rate_limited");
    assert_eq!(limited["id"], "m3");
    assert_eq!(types(&sent, 2), vec!["emotion"]);
    h.advance(500);
    h.send(1, json!({"type": "message", "id": "m4", "text": "later"}));
    assert_eq!(types(&h.drain(), 1), vec!["emotion"]);
}

/// The id is checked once, after the rate: an over-long id on a limited connection gets the
/// rate error without it, and on a fresh one the id error without it.
#[test]
fn an_over_long_id_is_refused_after_the_rate_check_and_not_echoed() {
    let mut h = Harness::with(ChatConfig {
        msg_rate: 1,
        msg_burst: 1,
        bot: false,
        ..ChatConfig::default()
    });
    h.connect(1, "alice");
    let long_id = "i".repeat(MAX_ID_CHARS + 1);
    h.send(
        1,
        json!({"type": "message", "id": long_id, "text": "first"}),
    );
    h.send(
        1,
        json!({"type": "message", "id": long_id, "text": "second"}),
    );
    let sent = h.drain();
    let errors = of_type(&sent, 1, "error");
    assert_eq!(types(&sent, 1), vec!["error", "error"]);
    assert_eq!(error_code(errors[0]), "bad_request");
    assert_eq!(error_code(errors[1]), "rate_limited");
    assert!(errors.iter().all(|error| error.get("id").is_none()));
    let at_limit = "i".repeat(MAX_ID_CHARS);
    h.advance(1_000);
    h.send(
        1,
        json!({"type": "message", "id": at_limit, "text": "third"}),
    );
    let sent = h.drain();
    assert_eq!(types(&sent, 1), vec!["emotion"]);
    assert_eq!(of_type(&sent, 1, "emotion")[0]["id"], at_limit.as_str());
}

#[test]
fn zero_rate_means_unlimited() {
    let mut h = Harness::with(ChatConfig {
        msg_rate: 0,
        bot: false,
        ..ChatConfig::default()
    });
    h.connect(1, "alice");
    for i in 0..200 {
        h.send(
            1,
            json!({"type": "message", "id": format!("m{i}"), "text": "x"}),
        );
    }
    assert!(h.drain().iter().all(|s| s.json["type"] == "emotion"));
}

#[test]
fn text_length_is_counted_in_characters() {
    let mut h = Harness::with(ChatConfig {
        max_text_chars: 5,
        bot: false,
        ..ChatConfig::default()
    });
    h.connect(1, "alice");
    h.send(1, json!({"type": "message", "id": "ok", "text": "ééééé"}));
    h.send(
        1,
        json!({"type": "message", "id": "long", "text": "éééééé"}),
    );
    h.send(1, json!({"type": "typing", "text": "toolong"}));
    h.send(1, json!({"type": "message", "id": "empty", "text": "   "}));
    h.send(
        1,
        json!({"type": "message", "id": "x".repeat(65), "text": "hi"}),
    );
    let sent = h.drain();
    assert_eq!(sent[0].json["type"], "emotion");
    assert_eq!(error_code(&sent[1].json), "text_too_long");
    assert_eq!(sent[1].json["id"], "long");
    assert_eq!(error_code(&sent[2].json), "text_too_long");
    assert_eq!(error_code(&sent[3].json), "bad_request");
    assert_eq!(error_code(&sent[4].json), "bad_request");
    assert!(
        sent[4].json.get("id").is_none(),
        "an over-long id is not echoed"
    );
}

#[test]
fn ids_are_limited_in_characters_not_bytes() {
    let mut h = Harness::without_bot();
    h.core.open(9, None, 0, &mut h.out);
    h.connect(1, "alice");
    h.connect(2, "alice");
    // 64 characters in 64, 128 and 256 bytes are all within the limit; 65 are not.
    let within = ["a".repeat(64), "é".repeat(64), "🎉".repeat(64)];
    for id in &within {
        h.send(1, json!({"type": "message", "id": id, "text": "hi"}));
    }
    for id in ["a".repeat(65), "é".repeat(65)] {
        h.send(1, json!({"type": "message", "id": id, "text": "hi"}));
        h.send(9, json!({"type": "message", "id": id, "text": "hi"}));
    }
    h.send(
        9,
        json!({"type": "message", "id": "é".repeat(64), "text": "hi"}),
    );
    let sent = h.drain();
    let results = of_type(&sent, 1, "emotion");
    let events = of_type(&sent, 2, "message");
    assert_eq!((results.len(), events.len()), (3, 3));
    for ((result, event), id) in results.iter().zip(&events).zip(&within) {
        assert_eq!(result["id"], id.as_str());
        assert_eq!(event["id"], id.as_str());
    }
    let errors: Vec<&Value> = sent
        .iter()
        .map(|s| &s.json)
        .filter(|j| j["type"] == "error")
        .collect();
    let codes: Vec<&str> = errors.iter().map(|e| error_code(e)).collect();
    assert_eq!(
        codes,
        vec![
            "bad_request",
            "not_authenticated",
            "bad_request",
            "not_authenticated",
            "not_authenticated"
        ]
    );
    // Over-long ids are never echoed; one at the limit is, even before authentication.
    assert!(errors[..4].iter().all(|e| e.get("id").is_none()));
    assert_eq!(errors[4]["id"], "é".repeat(64));
    // The history keeps the ids as sent.
    h.send(2, json!({"type": "join", "room": "user:alice", "since": 1}));
    let replayed = of_type(&h.drain(), 2, "message")
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(replayed, within[1..].to_vec());
}

#[test]
fn texts_of_whitespace_only_are_empty_whatever_the_whitespace() {
    let mut h = Harness::without_bot();
    h.connect(1, "alice");
    for text in ["", " ", "\t\r\n ", "\u{a0}", "\u{3000}\u{2028}"] {
        h.send(1, json!({"type": "message", "id": "blank", "text": text}));
    }
    for text in [" hi", "\u{a0}hi", "\u{3000}.", "é", "\u{200b}"] {
        h.send(1, json!({"type": "message", "id": "seen", "text": text}));
    }
    let sent = h.drain();
    assert_eq!(sent.len(), 10);
    for blank in &sent[..5] {
        assert_eq!(error_code(&blank.json), "bad_request");
        assert_eq!(blank.json["id"], "blank");
    }
    for seen in &sent[5..] {
        assert_eq!(seen.json["type"], "emotion", "{:?}", seen.json);
        assert_eq!(seen.json["id"], "seen");
    }
}

#[test]
fn bad_input_gets_errors_and_the_connection_stays_usable() {
    let mut h = Harness::without_bot();
    h.connect(1, "alice");
    h.send_text(1, "{not json");
    h.send_text(1, r#"{"type":"teleport"}"#);
    h.send_text(1, r#"{"type":"join"}"#);
    h.send_text(1, r#"{"no":"type"}"#);
    h.core.binary(1, b"\x00\x01", h.now, &mut h.out);
    h.send_text(
        1,
        r#"{"type":"message","id":"ok","text":"still here","extra":[1,2]}"#,
    );
    let sent = h.drain();
    let kinds: Vec<&str> = sent[..5].iter().map(|s| error_code(&s.json)).collect();
    assert_eq!(
        kinds,
        vec![
            "bad_json",
            "unknown_type",
            "bad_request",
            "bad_request",
            "bad_request"
        ]
    );
    assert_eq!(sent[5].json["type"], "emotion");
    assert_eq!(sent[5].json["id"], "ok");
    assert!(h.drain_closes().is_empty());
}

#[test]
fn ping_echoes_t() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.send_text(1, r#"{"type":"ping","t":1732617600123}"#);
    h.send_text(1, r#"{"type":"ping","t":0.25}"#);
    let sent = h.drain();
    assert_eq!(
        sent[0].json,
        json!({"type": "pong", "t": 1_732_617_600_123u64})
    );
    assert_eq!(sent[1].json, json!({"type": "pong", "t": 0.25}));
}

// ----- resume and history -----

/// Alice sends `count` messages in her private room (bot off); returns the events as her other
/// tab received them, raw.
fn alice_history(h: &mut Harness, count: usize) -> Vec<String> {
    h.connect(1, "alice");
    h.connect(2, "alice");
    for i in 0..count {
        h.send(
            1,
            json!({"type": "message", "id": format!("m{i}"), "text": format!("n{i}")}),
        );
    }
    let sent = h.drain();
    sent.into_iter()
        .filter(|s| s.conn == 2 && s.json["type"] == "message")
        .map(|s| s.raw)
        .collect()
}

#[test]
fn resume_replays_events_after_since_exactly_as_sent() {
    let mut h = Harness::without_bot();
    let events = alice_history(&mut h, 3);
    h.close(2);
    h.connect(3, "alice");
    assert_eq!(h.received(3).len(), 0);
    h.send(3, json!({"type": "join", "room": "user:alice", "since": 1}));
    let sent = h.drain();
    assert_eq!(
        sent[0].json,
        json!({"type": "joined", "room": "user:alice", "seq": 3})
    );
    let replayed: Vec<&str> = sent[1..].iter().map(|s| s.raw.as_str()).collect();
    assert_eq!(replayed, vec![events[1].as_str(), events[2].as_str()]);
    h.send(3, json!({"type": "join", "room": "user:alice", "since": 0}));
    assert_eq!(h.drain().len(), 1 + 3);
    h.send(3, json!({"type": "join", "room": "user:alice", "since": 3}));
    assert_eq!(h.drain().len(), 1);
}

/// Raw `message` events a tab joining with `since: 0` gets after alice sent `texts` alone.
fn replayed_after_sending_alone(texts: &[Value]) -> Vec<String> {
    let mut h = Harness::without_bot();
    h.connect(1, "alice");
    for text in texts {
        h.send(1, text.clone());
        h.advance(5);
    }
    let live = h.drain();
    assert!(live.iter().all(|s| s.json["type"] == "emotion"), "{live:?}");
    h.connect(2, "alice");
    h.send(2, json!({"type": "join", "room": "user:alice", "since": 0}));
    h.drain()
        .into_iter()
        .filter(|s| s.conn == 2 && s.json["type"] == "message")
        .map(|s| s.raw)
        .collect()
}

#[test]
fn events_nobody_else_received_replay_exactly_as_they_would_have_been_sent() {
    let texts = [
        json!({"type": "message", "id": "a1", "text": "so happy \"today\" 🎉"}),
        json!({"type": "message", "text": "no id: the server assigns one"}),
        json!({"type": "message", "id": "", "text": "empty id\nnew line"}),
    ];
    let replayed = replayed_after_sending_alone(&texts);
    // The same messages at the same times with a second tab open, which gets them live.
    let mut h = Harness::without_bot();
    h.connect(1, "alice");
    h.connect(2, "alice");
    for text in &texts {
        h.send(1, text.clone());
        h.advance(5);
    }
    let live: Vec<String> = h
        .drain()
        .into_iter()
        .filter(|s| s.conn == 2 && s.json["type"] == "message")
        .map(|s| s.raw)
        .collect();
    assert_eq!(live.len(), 3);
    assert_eq!(replayed, live);
    let ids: Vec<Value> = replayed
        .iter()
        .map(|raw| serde_json::from_str::<Value>(raw).unwrap()["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("a1"), json!("srv-2"), json!("")]);
}

#[test]
fn bot_replies_replay_exactly_as_sent() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.send(
        1,
        json!({"type": "message", "id": "m1", "text": "I am so sad"}),
    );
    h.advance(1000);
    let live: Vec<String> = h
        .drain()
        .into_iter()
        .filter(|s| s.json["type"] == "reply")
        .map(|s| s.raw)
        .collect();
    assert_eq!(live.len(), 1);
    h.connect(2, "alice");
    h.send(2, json!({"type": "join", "room": "user:alice", "since": 1}));
    let replayed: Vec<String> = h
        .drain()
        .into_iter()
        .filter(|s| s.json["type"] == "reply")
        .map(|s| s.raw)
        .collect();
    assert_eq!(replayed, live);
}

#[test]
fn resume_reports_a_gap_when_events_are_gone() {
    let mut h = Harness::with(ChatConfig {
        history_events: 3,
        bot: false,
        ..ChatConfig::default()
    });
    let events = alice_history(&mut h, 6);
    h.send(2, json!({"type": "join", "room": "user:alice", "since": 1}));
    let sent = h.drain();
    assert_eq!(
        types(&sent, 2),
        vec!["joined", "error", "message", "message", "message"]
    );
    assert_eq!(error_code(&sent[1].json), "history_gap");
    assert_eq!(sent[1].json["room"], "user:alice");
    let replayed: Vec<&str> = sent[2..].iter().map(|s| s.raw.as_str()).collect();
    assert_eq!(
        replayed,
        events[3..].iter().map(String::as_str).collect::<Vec<_>>()
    );
    // Everything after `since` still retained: no gap.
    h.send(2, json!({"type": "join", "room": "user:alice", "since": 3}));
    assert_eq!(
        types(&h.drain(), 2),
        vec!["joined", "message", "message", "message"]
    );
}

#[test]
fn resume_reports_a_gap_when_since_is_ahead() {
    let mut h = Harness::without_bot();
    alice_history(&mut h, 2);
    h.send(
        2,
        json!({"type": "join", "room": "user:alice", "since": 40}),
    );
    let sent = h.drain();
    assert_eq!(
        types(&sent, 2),
        vec!["joined", "error", "message", "message"]
    );
    assert_eq!(error_code(&sent[1].json), "history_gap");
}

#[test]
fn shared_room_history_outlives_its_members_then_is_released_but_seq_continues() {
    let mut h = Harness::with(ChatConfig {
        history_events: 100,
        history_min_age_ms: 120_000,
        ..ChatConfig::default()
    });
    h.connect(1, "alice");
    h.send(1, json!({"type": "join", "room": "lobby"}));
    for i in 0..5 {
        h.send(
            1,
            json!({"type": "message", "id": format!("l{i}"), "text": "x", "room": "lobby"}),
        );
    }
    h.send(1, json!({"type": "leave", "room": "lobby"}));
    h.drain();
    assert_eq!(h.core.stats().retained_events, 5);

    // A minute later the events are still there for someone resuming.
    h.advance(60_000);
    h.connect(2, "bob");
    h.send(2, json!({"type": "join", "room": "lobby", "since": 2}));
    assert_eq!(
        types(&h.drain(), 2),
        vec!["joined", "message", "message", "message"]
    );
    h.send(2, json!({"type": "leave", "room": "lobby"}));
    h.drain();
    let rooms_with_lobby = h.core.stats().rooms;

    // Idle past the minimum age with nobody in it: released.
    h.advance(121_000);
    assert_eq!(h.core.stats().retained_events, 0);
    assert_eq!(h.core.stats().rooms, rooms_with_lobby - 1);

    // Re-created later, the seq continues; resuming from an old seq reports the gap.
    h.send(2, json!({"type": "join", "room": "lobby", "since": 3}));
    let sent = h.drain();
    assert_eq!(
        sent[0].json,
        json!({"type": "joined", "room": "lobby", "seq": 5})
    );
    assert_eq!(error_code(&sent[1].json), "history_gap");
    h.send(
        2,
        json!({"type": "message", "id": "n", "text": "again", "room": "lobby"}),
    );
    assert_eq!(of_type(&h.drain(), 2, "emotion")[0]["seq"], 6);
}

#[test]
fn history_is_bounded_per_room() {
    let mut h = Harness::with(ChatConfig {
        history_events: 10,
        msg_rate: 0,
        bot: false,
        ..ChatConfig::default()
    });
    h.connect(1, "alice");
    for i in 0..50 {
        h.send(
            1,
            json!({"type": "message", "id": format!("m{i}"), "text": "x"}),
        );
    }
    assert_eq!(h.core.stats().retained_events, 10);
}

#[test]
fn ring_of_an_occupied_room_is_released_after_idle_and_seq_is_kept() {
    let mut h = Harness::with(ChatConfig {
        bot: false,
        ..ChatConfig::default()
    });
    h.connect(1, "alice");
    h.send(1, json!({"type": "message", "id": "a", "text": "x"}));
    h.advance(30_000);
    h.send(1, json!({"type": "message", "id": "b", "text": "y"}));
    h.advance(100_000);
    assert_eq!(
        h.core.stats().retained_events,
        2,
        "second event is younger than 2 min"
    );
    h.advance(30_000);
    assert_eq!(h.core.stats().retained_events, 0);
    h.drain();
    h.send(1, json!({"type": "join", "room": "user:alice", "since": 2}));
    assert_eq!(h.drain()[0].json["seq"], 2);
}

/// Raw frames of `kind` that `conn` got.
fn raw_of_type(sent: &[Sent], conn: ConnId, kind: &str) -> Vec<String> {
    sent.iter()
        .filter(|s| s.conn == conn && s.json["type"] == kind)
        .map(|s| s.raw.clone())
        .collect()
}

#[test]
fn replays_after_the_ring_wrapped_many_times_are_exactly_as_sent() {
    let mut h = Harness::with(ChatConfig {
        bot: false,
        msg_rate: 0,
        ..ChatConfig::default()
    });
    h.connect(1, "alice");
    h.connect(2, "alice");
    for i in 0..250usize {
        // Lengths that vary, multi-byte characters, escapes: records of every size.
        let text = format!("{} \"{i}\" {}", "é".repeat(i * 7 % 60), "x".repeat(i % 13));
        h.send(
            1,
            json!({"type": "message", "id": format!("m{i}"), "text": text}),
        );
        h.advance(3);
    }
    let live = raw_of_type(&h.drain(), 2, "message");
    assert_eq!(live.len(), 250);
    assert_eq!(h.core.stats().retained_events, 100);
    h.send(
        2,
        json!({"type": "join", "room": "user:alice", "since": 180}),
    );
    let sent = h.drain();
    assert_eq!(types(&sent, 2)[..2], ["joined", "message"]);
    assert_eq!(raw_of_type(&sent, 2, "message"), live[180..]);
    // Older than what is retained: the gap, then all 100 retained events.
    h.send(
        2,
        json!({"type": "join", "room": "user:alice", "since": 149}),
    );
    let sent = h.drain();
    assert_eq!(error_code(&sent[1].json), "history_gap");
    assert_eq!(
        sent[1].json["message"],
        "events 150 to 150 are no longer retained; replaying what is"
    );
    assert_eq!(raw_of_type(&sent, 2, "message"), live[150..]);
}

#[test]
fn shared_room_events_keep_sender_and_name_for_replay() {
    let mut h = Harness::without_bot();
    h.connect_named(1, "u-ann", "Ann \"A\" É");
    h.connect(2, "bob");
    h.join(&[1, 2], "lobby");
    h.send(
        1,
        json!({"type": "message", "id": "a", "text": "hi all", "room": "lobby"}),
    );
    h.send(
        2,
        json!({"type": "message", "id": "b", "text": "hi Ann", "room": "lobby"}),
    );
    h.send(1, json!({"type": "message", "id": "c", "text": "mine"}));
    let sent = h.drain();
    let live = [
        raw_of_type(&sent, 2, "message")[0].clone(),
        raw_of_type(&sent, 1, "message")[0].clone(),
    ];
    h.connect(3, "carol");
    h.send(3, json!({"type": "join", "room": "lobby", "since": 0}));
    let replayed = raw_of_type(&h.drain(), 3, "message");
    assert_eq!(replayed, live);
    let first: Value = serde_json::from_str(&replayed[0]).unwrap();
    assert_eq!(
        (&first["from"], &first["name"]),
        (&json!("u-ann"), &json!("Ann \"A\" É"))
    );
    // Ann's private room: her own message, `from` her sub, with her name.
    h.send(1, json!({"type": "join", "room": "user:u-ann", "since": 0}));
    let own = of_type(&h.drain(), 1, "message")[0].clone();
    assert_eq!(
        (&own["from"], &own["name"], &own["id"]),
        (&json!("u-ann"), &json!("Ann \"A\" É"), &json!("c"))
    );
}

#[test]
fn long_texts_are_retained_within_the_byte_cap_and_resume_reports_the_gap() {
    let mut h = Harness::with(ChatConfig {
        bot: false,
        msg_rate: 0,
        history_bytes: 8 * 1024,
        ..ChatConfig::default()
    });
    h.connect(1, "alice");
    h.connect(2, "alice");
    let long = "ü".repeat(1500); // 3,000 bytes: two fit in 8 KiB beside a few short ones
    for i in 0..4 {
        h.send(
            1,
            json!({"type": "message", "id": format!("l{i}"), "text": long}),
        );
    }
    for i in 0..3 {
        h.send(
            1,
            json!({"type": "message", "id": format!("s{i}"), "text": "short"}),
        );
    }
    let live = raw_of_type(&h.drain(), 2, "message");
    assert_eq!(h.core.stats().retained_events, 5);
    h.send(2, json!({"type": "join", "room": "user:alice", "since": 1}));
    let sent = h.drain();
    assert_eq!(
        sent[1].json["message"],
        "events 2 to 2 are no longer retained; replaying what is"
    );
    assert_eq!(raw_of_type(&sent, 2, "message"), live[2..]);
    // Short messages take the long ones' place until the event limit would apply.
    for i in 0..20 {
        h.send(
            1,
            json!({"type": "message", "id": format!("t{i}"), "text": "tiny"}),
        );
    }
    assert_eq!(h.core.stats().retained_events, 25);
}

#[test]
fn released_ring_is_rebuilt_by_the_next_message() {
    let mut h = Harness::without_bot();
    h.connect(1, "alice");
    h.send(1, json!({"type": "message", "id": "a", "text": "before"}));
    h.advance(121_000);
    assert_eq!(h.core.stats().retained_events, 0);
    h.send(1, json!({"type": "message", "id": "b", "text": "after"}));
    assert_eq!(h.core.stats().retained_events, 1);
    h.drain();
    h.connect(2, "alice");
    h.send(2, json!({"type": "join", "room": "user:alice", "since": 0}));
    let replayed = of_type(&h.drain(), 2, "message")
        .into_iter()
        .map(|m| (m["seq"].clone(), m["text"].clone()))
        .collect::<Vec<_>>();
    assert_eq!(replayed, vec![(json!(2), json!("after"))]);
}

// ----- lifecycle -----

#[test]
fn closed_forgets_everything_and_sends_nothing_to_the_closed_connection() {
    let mut h = Harness::with(ChatConfig {
        bot: false,
        ..ChatConfig::default()
    });
    h.connect(1, "alice");
    h.connect(2, "bob");
    h.join(&[1, 2], "lobby");
    h.send(1, json!({"type": "typing", "room": "lobby"}));
    h.drain();
    h.close(1);
    h.close(2);
    assert!(h.drain().iter().all(|s| s.conn == 2));
    h.close(2);
    assert_eq!(
        h.core.stats(),
        ChatStats {
            sessions: 0,
            authenticated: 0,
            rooms: 0,
            timers: 0,
            retained_events: 0
        }
    );
    // A reused ConnId starts fresh.
    let ready = h.connect(1, "carol");
    assert_eq!(ready["user"], "carol");
}

#[test]
fn unknown_connections_are_ignored() {
    let mut h = Harness::new();
    h.send(99, json!({"type": "ping", "t": 1}));
    h.close(99);
    h.core.binary(98, b"x", 0, &mut h.out);
    assert!(h.drain().is_empty());
}

// ----- the compact chat message route -----

/// Everything sent and closed since the last call, as comparable values.
fn outputs(h: &mut Harness) -> Vec<(ConnId, String, Delivery)> {
    let mut all: Vec<_> = h
        .drain()
        .into_iter()
        .map(|s| (s.conn, s.raw, s.delivery))
        .collect();
    let closes = h.drain_closes().into_iter();
    all.extend(
        closes.map(|(conn, code, reason)| (conn, format!("{code} {reason}"), Delivery::Essential)),
    );
    all
}

/// A harness with alice live on 1 (in `lobby`, with bob there on 4), an unauthenticated
/// connection on 2 and alice on 3 being closed.
fn compact_route_harness() -> Harness {
    let mut h = Harness::with(ChatConfig {
        bot: false,
        msg_rate: 0,
        ..ChatConfig::default()
    });
    h.connect(1, "alice");
    h.connect(4, "bob");
    h.core.open(2, None, h.now, &mut h.out);
    h.connect(3, "alice");
    h.join(&[1, 4], "lobby");
    h.send(3, json!({"type": "auth", "token": "not a token"}));
    h.drain();
    assert_eq!(h.drain_closes().len(), 1);
    h
}

/// The reader's compact shape goes to `on_message` without the general message: whatever
/// the phase, the fields and the errors, the answers are those the same message gets through
/// the general route (here, by a space the compact shape does not allow).
#[test]
fn compact_chat_messages_are_answered_as_the_general_route_answers() {
    let long_id = "i".repeat(MAX_ID_CHARS + 1);
    let long_text = "x".repeat(ChatConfig::default().max_text_chars + 1);
    let messages = [
        r#"{"type":"message","id":"a1","text":"so happy today"}"#.to_owned(),
        r#"{"type":"message","text":"no id here"}"#.to_owned(),
        r#"{"type":"message","id":"","text":"an empty id"}"#.to_owned(),
        r#"{"type":"message","id":"r1","room":"lobby","text":"room first"}"#.to_owned(),
        r#"{"type":"message","id":"r2","text":"room last","room":"lobby"}"#.to_owned(),
        r#"{"type":"message","id":"p1","room":"user:alice","text":"to my tabs"}"#.to_owned(),
        r#"{"type":"message","id":"p2","room":"user:bob","text":"not mine"}"#.to_owned(),
        r#"{"type":"message","id":"n1","text":"not joined","room":"elsewhere"}"#.to_owned(),
        r#"{"type":"message","id":"b1","room":"Bad Room!","text":"bad name"}"#.to_owned(),
        r#"{"type":"message","id":"e1","text":"   "}"#.to_owned(),
        r#"{"type":"message","id":"e2","text":""}"#.to_owned(),
        format!(r#"{{"type":"message","id":"{long_id}","text":"long id"}}"#),
        format!(r#"{{"type":"message","id":"t1","text":"{long_text}"}}"#),
        "{\"type\":\"message\",\"id\":\"é\",\"text\":\"dræft 🎉\"}".to_owned(),
    ];
    let mut compact = compact_route_harness();
    let mut general = compact_route_harness();
    let mut results = 0;
    for message in &messages {
        assert!(wire::read_compact_fields(message).is_some(), "{message}");
        let spaced = message.replacen('{', "{ ", 1);
        assert!(wire::read_compact_fields(&spaced).is_none(), "{spaced}");
        for conn in [1, 2, 3, 4] {
            compact.send_text(conn, message);
            general.send_text(conn, &spaced);
            let answers = outputs(&mut compact);
            assert_eq!(answers, outputs(&mut general), "{message} on {conn}");
            // Live connections get a result or an error, the unauthenticated one an error,
            // the closing one nothing.
            assert_eq!(
                answers.is_empty(),
                conn == 3,
                "{message} on {conn}: {answers:?}"
            );
            let emotion = r#""type":"emotion""#;
            results += answers
                .iter()
                .filter(|(_, raw, _)| raw.contains(emotion))
                .count();
        }
    }
    // Seven messages each from alice and bob are accepted: those without a room, in `lobby`
    // and in their own private room.
    assert_eq!(results, 14);
}
