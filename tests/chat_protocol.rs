//! The chat protocol over real sockets: the `emotibot` binary with several WebSocket clients.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{status, Frame, TestServer, WsClient};
use emotibot::chat::auth::{AuthConfig, Authenticator, KeyConfig};
use serde_json::{json, Value};

const SECRET: &str = "integration-test-secret";

fn server(extra: &[&str]) -> TestServer {
    let mut args = vec!["--jwt-secret", SECRET];
    args.extend_from_slice(extra);
    TestServer::start(&args)
}

fn token(sub: &str) -> String {
    let authenticator = Authenticator::new(AuthConfig {
        key: KeyConfig::Hs256(SECRET.as_bytes().to_vec()),
        issuer: None,
        audience: None,
    })
    .unwrap();
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    authenticator.mint(sub, None, 600, now_s).unwrap()
}

/// A client authenticated with `?token=` at the upgrade; `ready` already read.
fn join_as(server: &TestServer, sub: &str) -> WsClient {
    let mut ws = WsClient::connect(server.addr, &format!("/ws?token={}", token(sub)), "");
    let ready = ws.read_json();
    assert_eq!(ready["type"], "ready", "{ready}");
    assert_eq!(ready["user"], sub);
    ws
}

fn send(ws: &mut WsClient, message: Value) {
    ws.send_text(&message.to_string());
}

#[test]
fn token_at_upgrade_in_first_frame_and_rejections() {
    let server = server(&[]);

    let mut by_query = WsClient::connect(server.addr, &format!("/ws?token={}", token("q")), "");
    assert_eq!(by_query.read_json()["room"], "user:q");

    let header = format!("Authorization: Bearer {}\r\n", token("h"));
    let mut by_header = WsClient::connect(server.addr, "/ws", &header);
    assert_eq!(by_header.read_json()["user"], "h");

    let refused = WsClient::try_connect(server.addr, "/ws?token=not.a.token", "");
    let Err((head, body)) = refused else {
        panic!("a bad token must not upgrade");
    };
    assert_eq!(status(&head), 401);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(body.get("error").is_some(), "{body}");

    let mut first_frame = WsClient::connect(server.addr, "/ws", "");
    send(&mut first_frame, json!({"type": "ping", "t": 1}));
    assert_eq!(first_frame.read_json(), json!({"type": "pong", "t": 1}));
    send(
        &mut first_frame,
        json!({"type": "auth", "token": token("f")}),
    );
    assert_eq!(first_frame.read_json()["user"], "f");

    let mut bad_frame = WsClient::connect(server.addr, "/ws", "");
    send(&mut bad_frame, json!({"type": "auth", "token": "x.y.z"}));
    assert_eq!(bad_frame.read_close(), Some(4001));
}

#[test]
fn no_auth_in_time_closes_with_1008() {
    let server = server(&[]);
    let mut ws = WsClient::connect(server.addr, "/ws", "");
    let started = Instant::now();
    assert_eq!(ws.read_close(), Some(1008));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(4900), "{waited:?}");
}

#[test]
fn private_room_reaches_every_tab_and_the_bot_replies() {
    let server = server(&["--bot-reply-delay-ms", "100"]);
    let mut tab1 = join_as(&server, "alice");
    let mut tab2 = join_as(&server, "alice");
    let mut bob = join_as(&server, "bob");

    send(
        &mut tab1,
        json!({"type": "message", "id": "c1", "text": "I am so happy today"}),
    );
    let emotion = tab1.read_json();
    assert_eq!(emotion["type"], "emotion");
    assert_eq!(emotion["id"], "c1");
    assert_eq!(emotion["seq"], 1);
    let sum: f64 = emotion["scores"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-3);
    let message = tab2.read_json();
    assert_eq!(message["type"], "message");
    assert_eq!(message["text"], "I am so happy today");

    for tab in [&mut tab1, &mut tab2] {
        let typing = tab.read_json();
        assert_eq!(typing["from"], "emotibot");
        assert_eq!(typing["active"], true);
        let reply = tab.read_json();
        assert_eq!(reply["type"], "reply");
        assert_eq!(reply["in_reply_to"], "c1");
        assert_eq!(reply["seq"], 2);
        assert_eq!(reply["emotion"], emotion["dominant"]);
        let typing = tab.read_json();
        assert_eq!(typing["active"], false);
    }

    // Bob saw none of it; his own ping is the next thing he reads.
    send(&mut bob, json!({"type": "ping", "t": 9}));
    assert_eq!(bob.read_json(), json!({"type": "pong", "t": 9}));
    send(&mut bob, json!({"type": "join", "room": "user:alice"}));
    assert_eq!(bob.read_json()["code"], "forbidden");
}

#[test]
fn shared_room_presence_typing_and_messages() {
    let server = server(&[]);
    let mut alice = join_as(&server, "alice");
    let mut bob = join_as(&server, "bob");
    let mut carol = join_as(&server, "carol");

    send(&mut alice, json!({"type": "join", "room": "lobby"}));
    assert_eq!(alice.read_json()["type"], "joined");
    for (ws, name) in [(&mut bob, "bob"), (&mut carol, "carol")] {
        send(ws, json!({"type": "join", "room": "lobby"}));
        assert_eq!(ws.read_json()["type"], "joined");
        let presence = alice.read_until_type("presence");
        assert_eq!(presence["user"], name);
        assert_eq!(presence["online"], true);
    }
    assert_eq!(bob.read_until_type("presence")["user"], "carol");

    send(
        &mut bob,
        json!({"type": "typing", "room": "lobby", "text": "hm"}),
    );
    assert_eq!(bob.read_json()["preview"], true);
    for ws in [&mut alice, &mut carol] {
        let typing = ws.read_json();
        assert_eq!(
            typing,
            json!({"type": "typing", "room": "lobby", "from": "bob", "active": true})
        );
    }
    send(
        &mut bob,
        json!({"type": "message", "id": "b1", "text": "hello lobby", "room": "lobby"}),
    );
    assert_eq!(bob.read_json()["type"], "emotion");
    for ws in [&mut alice, &mut carol] {
        assert_eq!(ws.read_json()["active"], false);
        let message = ws.read_json();
        assert_eq!(message["from"], "bob");
        assert_eq!(message["seq"], 1);
    }

    drop(carol);
    let presence = alice.read_until_type("presence");
    assert_eq!(presence["user"], "carol");
    assert_eq!(presence["online"], false);

    send(&mut bob, json!({"type": "leave", "room": "lobby"}));
    assert_eq!(
        bob.read_until_type("left"),
        json!({"type": "left", "room": "lobby"})
    );
    assert_eq!(alice.read_until_type("presence")["online"], false);
}

#[test]
fn reconnecting_client_resumes_with_since() {
    let server = server(&["--bot", "off"]);
    let mut first = join_as(&server, "dana");
    let mut other_tab = join_as(&server, "dana");
    for i in 1..=3 {
        send(
            &mut first,
            json!({"type": "message", "id": format!("m{i}"), "text": format!("note {i}")}),
        );
        assert_eq!(first.read_json()["seq"], i);
    }
    let originals: Vec<Value> = (0..3).map(|_| other_tab.read_json()).collect();
    drop(first);
    drop(other_tab);

    let mut again = WsClient::connect(server.addr, &format!("/ws?token={}", token("dana")), "");
    let ready = again.read_json();
    assert_eq!(ready["seq"], 3);
    send(
        &mut again,
        json!({"type": "join", "room": "user:dana", "since": 1}),
    );
    assert_eq!(
        again.read_json(),
        json!({"type": "joined", "room": "user:dana", "seq": 3})
    );
    assert_eq!(again.read_json(), originals[1]);
    assert_eq!(again.read_json(), originals[2]);

    send(
        &mut again,
        json!({"type": "join", "room": "user:dana", "since": 99}),
    );
    assert_eq!(again.read_json()["type"], "joined");
    assert_eq!(again.read_json()["code"], "history_gap");
}

#[test]
fn slow_consumer_is_cut_off_while_others_keep_chatting() {
    const MESSAGES: usize = 1500;
    let server = server(&["--bot", "off", "--msg-rate", "0"]);
    let mut slow = join_as(&server, "slow");
    send(&mut slow, json!({"type": "join", "room": "busy"}));
    assert_eq!(slow.read_json()["type"], "joined");

    let mut reader = join_as(&server, "reader");
    send(&mut reader, json!({"type": "join", "room": "busy"}));
    assert_eq!(reader.read_json()["type"], "joined");
    let mut writer = join_as(&server, "writer");
    send(&mut writer, json!({"type": "join", "room": "busy"}));
    assert_eq!(writer.read_json()["type"], "joined");
    // The slow client never reads from here on.

    let reading = std::thread::spawn(move || {
        let mut seen = 0;
        while seen < MESSAGES {
            let value = reader.read_json();
            if value["type"] == "message" {
                seen += 1;
            }
        }
        seen
    });
    let text = "x".repeat(3500);
    let started = Instant::now();
    for batch in 0..MESSAGES / 50 {
        for i in 0..50 {
            let id = format!("w{}", batch * 50 + i);
            send(
                &mut writer,
                json!({"type": "message", "id": id, "text": text, "room": "busy"}),
            );
        }
        for _ in 0..50 {
            assert_eq!(writer.read_until_type("emotion")["room"], "busy");
        }
    }
    assert_eq!(reading.join().unwrap(), MESSAGES);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    assert!(server.metric("emotibot_slow_consumers_closed_total") >= 1);

    // What the slow client finally reads ends in a 1008 close (or the connection is gone),
    // well before all the messages.
    let mut messages = 0;
    let ending = loop {
        match slow.read_frame() {
            Some(Frame::Text(_)) => messages += 1,
            Some(Frame::Ping(_)) => {}
            other => break other,
        }
    };
    assert!(messages < MESSAGES, "{messages}");
    assert!(
        matches!(ending, Some(Frame::Close(Some(1008), _)) | None),
        "{ending:?}"
    );
}

#[test]
fn limits_and_bad_input_get_errors_on_a_connection_that_stays_usable() {
    let server = server(&[
        "--bot",
        "off",
        "--msg-rate",
        "1",
        "--msg-burst",
        "2",
        "--max-text-chars",
        "10",
    ]);
    let mut ws = join_as(&server, "erin");
    ws.send_text("{not json");
    assert_eq!(ws.read_json()["code"], "bad_json");
    ws.send_text(r#"{"type":"teleport"}"#);
    assert_eq!(ws.read_json()["code"], "unknown_type");
    ws.send_frame(true, 2, b"\x01\x02");
    assert_eq!(ws.read_json()["code"], "bad_request");
    for id in ["a", "b"] {
        send(&mut ws, json!({"type": "message", "id": id, "text": "ok"}));
        let emotion = ws.read_json();
        assert_eq!(
            (&emotion["type"], &emotion["id"]),
            (&json!("emotion"), &json!(id))
        );
    }
    send(&mut ws, json!({"type": "message", "id": "c", "text": "ok"}));
    let error = ws.read_json();
    assert_eq!(error["code"], "rate_limited");
    assert_eq!(error["id"], "c");
    std::thread::sleep(Duration::from_millis(1100));
    send(
        &mut ws,
        json!({"type": "message", "id": "long", "text": "eleven chars"}),
    );
    let error = ws.read_json();
    assert_eq!(error["code"], "text_too_long");
    assert_eq!(error["id"], "long");
}

#[test]
fn typing_indicator_expires_without_refresh() {
    let server = server(&["--typing-timeout-ms", "300"]);
    let mut alice = join_as(&server, "alice");
    let mut bob = join_as(&server, "bob");
    for ws in [&mut alice, &mut bob] {
        send(ws, json!({"type": "join", "room": "den"}));
        assert_eq!(ws.read_json()["type"], "joined");
    }
    assert_eq!(alice.read_json()["type"], "presence");
    let started = Instant::now();
    send(&mut bob, json!({"type": "typing", "room": "den"}));
    assert_eq!(alice.read_json()["active"], true);
    let off = alice.read_json();
    assert_eq!(
        off,
        json!({"type": "typing", "room": "den", "from": "bob", "active": false})
    );
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(290), "{waited:?}");
}
