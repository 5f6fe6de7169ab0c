//! The tokio-tungstenite peer: the issue's reference server, built into this executable
//! (`--serve-tokio`, started by `--peer tokio` on the server's core) so that it runs under the same
//! generator, on the same machine and in the same time slot as EmotiBot.
//!
//! It is written as a competent engineer writes an idiomatic tokio-tungstenite chat server, and
//! does the work EmotiBot does with `--bot off` for what the generator sends:
//! - a **current-thread** runtime (one core, like EmotiBot's reactor) and one task per connection;
//! - the upgrade on `/ws?token=...` through `accept_hdr_async_with_config`, with a 4 KiB read
//!   buffer; the HS256 JWT is verified in the handshake callback with `jsonwebtoken` (algorithm
//!   pinned, `exp` required, 30 s leeway, like EmotiBot), a bad token gets `401`;
//! - `ready` as the first frame, the shape EmotiBot sends;
//! - each `message` is parsed with serde_json (an internally tagged enum), scored with EmotiBot's
//!   own `Scorer` (so the comparison measures the server, not the scorer) and answered with
//!   `emotion`, serialized with serde_json, scores rounded to four decimals like EmotiBot's;
//! - `join` puts the connection in a shared room; a room `message` is serialized once and handed
//!   to every other member's task through its channel (the bytes are shared, not copied), its
//!   sender gets `emotion`.
//!
//! Each reply is one `send` (a write and a flush): the idiomatic form. EmotiBot's trick of leaving
//! everything a connection got in one loop turn in one write is deliberately not copied.

use emotibot::emotion::{Emotion, Scorer, Scores};
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

/// The read buffer the issue's reference figures were measured with.
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// EmotiBot's clock-skew allowance for `exp`.
const LEEWAY_S: u64 = 30;
/// EmotiBot's longest accepted `sub`.
const MAX_SUB_BYTES: usize = 128;
/// Advertised in `ready` with EmotiBot's defaults; this server times nothing out.
const TYPING_TIMEOUT_MS: u64 = 5_000;
const PING_INTERVAL_MS: u64 = 30_000;
/// Private rooms are named after their user, as in EmotiBot.
const PRIVATE_PREFIX: &str = "user:";

/// Serves on `listen` until the process is killed.
pub fn serve(listen: SocketAddr, secret: &str) -> io::Result<()> {
    run(listen, secret, |_| {}, std::future::pending())
}

/// Binds `listen`, tells `on_bound` the bound address (port 0 picks one), and serves until
/// `stop` completes.
pub fn run(
    listen: SocketAddr,
    secret: &str,
    on_bound: impl FnOnce(SocketAddr),
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let shared = Arc::new(Shared::new(secret.as_bytes()));
    runtime.block_on(async move {
        let listener = TcpListener::bind(listen).await?;
        on_bound(listener.local_addr()?);
        tokio::select! {
            () = accept_loop(listener, shared) => Ok(()),
            () = stop => Ok(()),
        }
    })
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(stream, Arc::clone(&shared)));
            }
            // Out of descriptors and the like: the benchmark sizes its populations below the
            // limit, so give the runtime a turn and try again.
            Err(_) => tokio::task::yield_now().await,
        }
    }
}

/// What every connection task shares.
struct Shared {
    decoding_key: DecodingKey,
    validation: Validation,
    scorer: Scorer,
    rooms: Mutex<HashMap<String, Room>>,
    next_connection: AtomicU64,
}

impl Shared {
    fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_S;
        validation.set_required_spec_claims(&["exp"]);
        Shared {
            decoding_key: DecodingKey::from_secret(secret),
            validation,
            scorer: Scorer::new(),
            rooms: Mutex::new(HashMap::new()),
            next_connection: AtomicU64::new(1),
        }
    }
}

#[derive(Default)]
struct Room {
    last_seq: u64,
    members: Vec<(u64, mpsc::UnboundedSender<Utf8Bytes>)>,
}

#[derive(Deserialize)]
struct TokenClaims {
    sub: String,
}

/// Client messages the server understands; unknown fields are ignored.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage<'a> {
    Message {
        #[serde(default)]
        id: Option<Cow<'a, str>>,
        #[serde(borrow)]
        text: Cow<'a, str>,
        #[serde(default)]
        room: Option<Cow<'a, str>>,
    },
    Join {
        #[serde(borrow)]
        room: Cow<'a, str>,
    },
}

#[derive(Serialize)]
struct Ready<'a> {
    r#type: &'static str,
    session: &'a str,
    user: &'a str,
    room: &'a str,
    seq: u64,
    typing_timeout_ms: u64,
    ping_interval_ms: u64,
}

#[derive(Serialize)]
struct EmotionReply<'a> {
    r#type: &'static str,
    id: &'a str,
    room: &'a str,
    seq: u64,
    dominant: &'static str,
    confidence: f64,
    scores: WireScores,
    preview: bool,
}

#[derive(Serialize)]
struct MessageEvent<'a> {
    r#type: &'static str,
    room: &'a str,
    seq: u64,
    from: &'a str,
    id: &'a str,
    text: &'a str,
    emotion: WireEmotion,
    ts: u64,
}

#[derive(Clone, Copy, Serialize)]
struct WireEmotion {
    dominant: &'static str,
    confidence: f64,
    scores: WireScores,
}

#[derive(Clone, Copy, Serialize)]
struct WireScores {
    anger: f64,
    disgust: f64,
    fear: f64,
    joy: f64,
    sadness: f64,
    surprise: f64,
    neutral: f64,
}

#[derive(Serialize)]
struct Joined<'a> {
    r#type: &'static str,
    room: &'a str,
    seq: u64,
}

#[derive(Serialize)]
struct ErrorReply<'a> {
    r#type: &'static str,
    code: &'static str,
    message: &'a str,
}

impl WireEmotion {
    fn from_scores(scores: &Scores) -> Self {
        let rounded = |emotion| (f64::from(scores.get(emotion)) * 1e4).round() / 1e4;
        let dominant = scores.dominant();
        WireEmotion {
            dominant: dominant.as_str(),
            confidence: rounded(dominant),
            scores: WireScores {
                anger: rounded(Emotion::Anger),
                disgust: rounded(Emotion::Disgust),
                fear: rounded(Emotion::Fear),
                joy: rounded(Emotion::Joy),
                sadness: rounded(Emotion::Sadness),
                surprise: rounded(Emotion::Surprise),
                neutral: rounded(Emotion::Neutral),
            },
        }
    }
}

/// The user a request's `?token=` authenticates, or the status that refuses it.
fn authenticate(request: &Request, shared: &Shared) -> Result<String, StatusCode> {
    if request.uri().path() != "/ws" {
        return Err(StatusCode::NOT_FOUND);
    }
    let token = request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .ok_or(StatusCode::UNAUTHORIZED)?;
    let claims =
        jsonwebtoken::decode::<TokenClaims>(token, &shared.decoding_key, &shared.validation)
            .map_err(|_| StatusCode::UNAUTHORIZED)?
            .claims;
    if claims.sub.is_empty() || claims.sub.len() > MAX_SUB_BYTES {
        return Err(StatusCode::UNAUTHORIZED);
    }
    Ok(claims.sub)
}

fn refusal(status: StatusCode) -> ErrorResponse {
    let mut response = ErrorResponse::new(None);
    *response.status_mut() = status;
    response
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .unwrap_or(0)
}

fn to_text(value: &impl Serialize) -> Utf8Bytes {
    // Serializing these plain structs cannot fail.
    serde_json::to_string(value).unwrap_or_default().into()
}

fn error_text(code: &'static str, message: &str) -> Utf8Bytes {
    to_text(&ErrorReply {
        r#type: "error",
        code,
        message,
    })
}

/// One connection's state inside its task.
struct Session {
    connection: u64,
    user: String,
    private_room: String,
    private_seq: u64,
    rooms: Vec<String>,
    /// Where other tasks deliver room events for this connection.
    inbox: mpsc::UnboundedSender<Utf8Bytes>,
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let mut user = None;
    // The callback's type is tungstenite's `Callback`: its error is an HTTP response by design.
    #[allow(clippy::result_large_err)]
    let check_token = |request: &Request, response: Response| match authenticate(request, &shared) {
        Ok(sub) => {
            user = Some(sub);
            Ok(response)
        }
        Err(status) => Err(refusal(status)),
    };
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let Ok(mut socket) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, check_token, Some(config)).await
    else {
        return;
    };
    let Some(user) = user else {
        return;
    };
    let (inbox, mut deliveries) = mpsc::unbounded_channel();
    let mut session = Session {
        connection: shared.next_connection.fetch_add(1, Ordering::Relaxed),
        private_room: format!("{PRIVATE_PREFIX}{user}"),
        user,
        private_seq: 0,
        rooms: Vec::new(),
        inbox,
    };
    let ready = to_text(&Ready {
        r#type: "ready",
        session: &format!("{:016x}", session.connection),
        user: &session.user,
        room: &session.private_room,
        seq: session.private_seq,
        typing_timeout_ms: TYPING_TIMEOUT_MS,
        ping_interval_ms: PING_INTERVAL_MS,
    });
    if socket.send(Message::Text(ready)).await.is_ok() {
        converse(&mut socket, &mut session, &mut deliveries, &shared).await;
    }
    leave_rooms(&session, &shared);
}

/// Reads client messages and room deliveries until either side ends the connection.
async fn converse(
    socket: &mut WebSocketStream<TcpStream>,
    session: &mut Session,
    deliveries: &mut mpsc::UnboundedReceiver<Utf8Bytes>,
    shared: &Shared,
) {
    loop {
        tokio::select! {
            incoming = socket.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    // Pings are answered by tungstenite itself; binary frames mean nothing here.
                    Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_)
                        | Message::Frame(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                };
                let reply = handle_text(session, shared, &text);
                if socket.send(Message::Text(reply)).await.is_err() {
                    return;
                }
            }
            Some(event) = deliveries.recv() => {
                if socket.send(Message::Text(event)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The answer to one client text frame; room events go to the other members' tasks.
fn handle_text(session: &mut Session, shared: &Shared, text: &str) -> Utf8Bytes {
    let message: ClientMessage = match serde_json::from_str(text) {
        Ok(message) => message,
        Err(error) => return error_text("bad_request", &error.to_string()),
    };
    match message {
        ClientMessage::Join { room } => join(session, shared, &room),
        ClientMessage::Message { id, text, room } => {
            if text.trim().is_empty() {
                return error_text("bad_request", "text is empty");
            }
            let emotion = WireEmotion::from_scores(&shared.scorer.score(&text));
            match room.as_deref() {
                Some(room) if room != session.private_room => {
                    post_to_room(session, shared, room, id.as_deref(), &text, emotion)
                }
                _ => {
                    session.private_seq += 1;
                    let assigned;
                    let id = match id.as_deref() {
                        Some(id) => id,
                        None => {
                            assigned = format!("srv-{}", session.private_seq);
                            &assigned
                        }
                    };
                    emotion_reply(id, &session.private_room, session.private_seq, emotion)
                }
            }
        }
    }
}

fn emotion_reply(id: &str, room: &str, seq: u64, emotion: WireEmotion) -> Utf8Bytes {
    to_text(&EmotionReply {
        r#type: "emotion",
        id,
        room,
        seq,
        dominant: emotion.dominant,
        confidence: emotion.confidence,
        scores: emotion.scores,
        preview: false,
    })
}

fn join(session: &mut Session, shared: &Shared, room: &str) -> Utf8Bytes {
    if room.starts_with(PRIVATE_PREFIX) && room != session.private_room {
        return error_text("forbidden", "another user's private room");
    }
    if room == session.private_room {
        return to_text(&Joined {
            r#type: "joined",
            room,
            seq: session.private_seq,
        });
    }
    let mut rooms = shared
        .rooms
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let entry = rooms.entry(room.to_owned()).or_default();
    if !session.rooms.iter().any(|joined| joined == room) {
        entry
            .members
            .push((session.connection, session.inbox.clone()));
        session.rooms.push(room.to_owned());
    }
    to_text(&Joined {
        r#type: "joined",
        room,
        seq: entry.last_seq,
    })
}

fn post_to_room(
    session: &Session,
    shared: &Shared,
    room: &str,
    id: Option<&str>,
    text: &str,
    emotion: WireEmotion,
) -> Utf8Bytes {
    if !session.rooms.iter().any(|joined| joined == room) {
        return error_text("not_member", "join the room first");
    }
    let mut rooms = shared
        .rooms
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let Some(entry) = rooms.get_mut(room) else {
        return error_text("not_member", "join the room first");
    };
    entry.last_seq += 1;
    let seq = entry.last_seq;
    let assigned;
    let id = match id {
        Some(id) => id,
        None => {
            assigned = format!("srv-{seq}");
            &assigned
        }
    };
    // Serialized once; every member's task gets the same shared bytes.
    let event = to_text(&MessageEvent {
        r#type: "message",
        room,
        seq,
        from: &session.private_room,
        id,
        text,
        emotion,
        ts: unix_ms(),
    });
    for (member, inbox) in &entry.members {
        if *member != session.connection {
            // A member whose task has ended is removed by that task; nothing to do here.
            let _ = inbox.send(event.clone());
        }
    }
    emotion_reply(id, room, seq, emotion)
}

fn leave_rooms(session: &Session, shared: &Shared) {
    if session.rooms.is_empty() {
        return;
    }
    let mut rooms = shared
        .rooms
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    for name in &session.rooms {
        if let Some(room) = rooms.get_mut(name) {
            room.members
                .retain(|(member, _)| *member != session.connection);
        }
    }
}

pub mod checks {
    use super::*;
    use crate::wire::{self, UpgradeResponse};
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, SocketAddrV4, TcpStream as StdTcpStream};
    use std::time::Duration;

    const SECRET: &str = "tokio-peer-check-secret";

    /// A blocking WebSocket client for the checks: the generator's own wire helpers over a
    /// `std` socket.
    struct TestClient {
        stream: StdTcpStream,
        received: Vec<u8>,
    }

    impl TestClient {
        /// Connects with `token`; `Err` carries the refusal status.
        fn connect(addr: SocketAddr, token: &str) -> Result<TestClient, u16> {
            let stream = StdTcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut client = TestClient {
                stream,
                received: Vec::new(),
            };
            let mut request = Vec::new();
            let path = format!("/ws?token={token}");
            wire::write_upgrade_request(&mut request, &addr.to_string(), &path);
            client.stream.write_all(&request).unwrap();
            loop {
                match wire::parse_upgrade_response(&client.received) {
                    UpgradeResponse::Partial => client.read_more(),
                    UpgradeResponse::Accepted { head_len } => {
                        client.received.drain(..head_len);
                        return Ok(client);
                    }
                    UpgradeResponse::Refused { status } => return Err(status),
                    UpgradeResponse::Malformed => panic!("malformed upgrade response"),
                }
            }
        }

        fn read_more(&mut self) {
            let mut chunk = [0u8; 4096];
            let read = self.stream.read(&mut chunk).unwrap();
            assert!(read > 0, "the server closed the connection");
            self.received.extend_from_slice(&chunk[..read]);
        }

        fn send_text(&mut self, text: &str) {
            let mut frame = Vec::new();
            wire::write_masked_frame(&mut frame, wire::OPCODE_TEXT, text.as_bytes(), [1, 2, 3, 4]);
            self.stream.write_all(&frame).unwrap();
        }

        /// The next text frame, parsed as JSON.
        fn next_json(&mut self) -> serde_json::Value {
            loop {
                if let Some((frame, used)) = wire::decode_frame(&self.received).unwrap() {
                    assert_eq!(frame.opcode, wire::OPCODE_TEXT);
                    let value = serde_json::from_slice(frame.payload).unwrap();
                    self.received.drain(..used);
                    return value;
                }
                self.read_more();
            }
        }
    }

    /// Runs a peer on a free loopback port for the duration of `check`.
    fn with_server(check: impl FnOnce(SocketAddr)) {
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let listen = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
        let server = std::thread::spawn(move || {
            run(
                listen,
                SECRET,
                move |addr| {
                    let _ = bound_tx.send(addr);
                },
                async {
                    let _ = stop_rx.await;
                },
            )
        });
        let addr = bound_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(addr)));
        let _ = stop_tx.send(());
        server.join().unwrap().unwrap();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    fn expected_scores(text: &str) -> (String, usize) {
        let scores = Scorer::new().score(text);
        (scores.dominant().as_str().to_owned(), Emotion::ALL.len())
    }

    pub fn tokio_peer_answers_a_message_like_emotibot() {
        with_server(|addr| {
            let tokens = crate::tokens::mint_for_users(SECRET, 1).unwrap();
            let mut client = TestClient::connect(addr, &tokens[0]).unwrap();
            let ready = client.next_json();
            assert_eq!(ready["type"], "ready");
            assert_eq!(ready["user"], "load-0");
            assert_eq!(ready["room"], "user:load-0");

            let text = "I am so happy today, this is wonderful";
            client.send_text(&format!(
                r#"{{"type":"message","id":"c1","text":"{text}"}}"#
            ));
            let reply = client.next_json();
            assert_eq!(reply["type"], "emotion");
            assert_eq!(reply["id"], "c1");
            assert_eq!(reply["room"], "user:load-0");
            assert_eq!(reply["seq"], 1);
            let (dominant, labels) = expected_scores(text);
            assert_eq!(reply["dominant"], dominant.as_str());
            let scores = reply["scores"].as_object().unwrap();
            assert_eq!(scores.len(), labels);
            let total: f64 = scores.values().filter_map(|v| v.as_f64()).sum();
            assert!((total - 1.0).abs() < 1e-3, "scores sum to {total}");
            assert_eq!(reply["confidence"], scores[dominant.as_str()]);

            client.send_text("not json");
            assert_eq!(client.next_json()["type"], "error");
        });
    }

    pub fn tokio_peer_refuses_a_token_signed_with_another_secret() {
        with_server(|addr| {
            let forged = crate::tokens::mint_for_users("another-secret", 1).unwrap();
            assert_eq!(TestClient::connect(addr, &forged[0]).err(), Some(401));
            assert_eq!(TestClient::connect(addr, "not-a-jwt").err(), Some(401));
        });
    }

    pub fn tokio_peer_delivers_a_room_message_to_the_other_members() {
        with_server(|addr| {
            let tokens = crate::tokens::mint_for_users(SECRET, 2).unwrap();
            let mut members: Vec<TestClient> = tokens
                .iter()
                .map(|token| TestClient::connect(addr, token).unwrap())
                .collect();
            for member in &mut members {
                assert_eq!(member.next_json()["type"], "ready");
                member.send_text(r#"{"type":"join","room":"lobby"}"#);
                assert_eq!(member.next_json()["type"], "joined");
            }
            members[0].send_text(r#"{"type":"message","id":"p1","room":"lobby","text":"hello"}"#);
            let ack = members[0].next_json();
            assert_eq!(
                (&ack["type"], &ack["id"]),
                (&"emotion".into(), &"p1".into())
            );
            let event = members[1].next_json();
            assert_eq!(event["type"], "message");
            assert_eq!(event["id"], "p1");
            assert_eq!(event["room"], "lobby");
            assert_eq!(event["from"], "user:load-0");
            assert_eq!(event["text"], "hello");
            assert_eq!(event["seq"], ack["seq"]);
        });
    }
}
