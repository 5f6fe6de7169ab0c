//! The README's two quick-start flows over real sockets: DEV MODE (token from
//! `POST /api/dev/token`, `auth` as the first frame) and a configured secret (token minted by
//! `emotibot token`, sent at the upgrade), through a message, its emotion and the bot's reply.

mod common;

use common::*;
use std::process::Command;

fn dev_token(server: &TestServer, user: &str) -> String {
    let body = format!("{{\"user\":\"{user}\",\"name\":\"{user} tester\"}}");
    let (head, body) = http_request(
        server.addr,
        &format!(
            "POST /api/dev/token HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(status(&head), 200, "{head}");
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    json["token"].as_str().unwrap().to_string()
}

#[test]
fn dev_mode_message_emotion_and_bot_reply() {
    let server = TestServer::start(&["--bot-reply-delay-ms", "100"]);
    let token = dev_token(&server, "alice");
    let mut ws = WsClient::connect(server.addr, "/ws", "");
    ws.send_text(&format!("{{\"type\":\"auth\",\"token\":\"{token}\"}}"));
    let ready = ws.read_until_type("ready");
    assert_eq!(ready["user"], "alice");
    assert_eq!(ready["room"], "user:alice");
    assert_eq!(ready["name"], "alice tester");

    ws.send_text(r#"{"type":"message","id":"c1","text":"I'm terrified of tomorrow's surgery"}"#);
    let emotion = ws.read_json();
    assert_eq!(emotion["type"], "emotion", "{emotion}");
    assert_eq!(emotion["id"], "c1");
    assert_eq!(emotion["dominant"], "fear", "{emotion}");
    let sum: f64 = emotion["scores"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-3, "scores sum to {sum}");

    let typing = ws.read_json();
    assert_eq!(typing["type"], "typing");
    assert_eq!(typing["from"], "emotibot");
    assert_eq!(typing["active"], true);
    let reply = ws.read_json();
    assert_eq!(reply["type"], "reply", "{reply}");
    assert_eq!(reply["in_reply_to"], "c1");
    assert_eq!(reply["emotion"], "fear");
    assert!(reply["text"].as_str().unwrap().len() > 10);
    let typing = ws.read_json();
    assert_eq!(typing["type"], "typing");
    assert_eq!(typing["active"], false);
}

#[test]
fn configured_secret_token_at_the_upgrade() {
    let secret = "an-operator-secret-of-enough-length";
    let output = Command::new(env!("CARGO_BIN_EXE_emotibot"))
        .args([
            "token",
            "--sub",
            "bob",
            "--ttl",
            "10m",
            "--jwt-secret",
            secret,
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap().trim().to_string();

    let server = TestServer::start(&["--jwt-secret", secret, "--bot", "off"]);
    // No dev endpoint with a configured secret.
    let (head, _) = http_request(
        server.addr,
        "POST /api/dev/token HTTP/1.1\r\nHost: t\r\nContent-Length: 16\r\nConnection: close\r\n\r\n{\"user\":\"mallo\"}",
    );
    assert_eq!(status(&head), 404);

    // A bad token at the upgrade: 401 with a JSON body, no upgrade.
    let refused = WsClient::try_connect(server.addr, "/ws?token=not.a.token", "");
    let (head, body) = refused.err().expect("a bad token must not upgrade");
    assert_eq!(status(&head), 401);
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());

    let mut ws = WsClient::connect(
        server.addr,
        "/ws",
        &format!("Authorization: Bearer {token}\r\n"),
    );
    let ready = ws.read_until_type("ready");
    assert_eq!(ready["user"], "bob");
    // A second tab of the same user sees the first tab's message.
    let mut tab = WsClient::connect(server.addr, &format!("/ws?token={token}"), "");
    tab.read_until_type("ready");
    ws.send_text(r#"{"type":"message","id":"m1","text":"What a wonderful day!"}"#);
    let own = ws.read_until_type("emotion");
    assert_eq!(own["dominant"], "joy", "{own}");
    let seen = tab.read_until_type("message");
    assert_eq!(seen["from"], "bob");
    assert_eq!(seen["text"], "What a wonderful day!");
    assert_eq!(seen["emotion"]["dominant"], "joy");
    assert_eq!(seen["seq"], own["seq"]);
}
