//! The server core over real sockets: HTTP, static files, limits, the WebSocket layer on the
//! echo endpoint, heartbeats, slowloris, the accept loop under fd exhaustion, shutdown.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn get(server: &TestServer, path: &str, extra: &str) -> (String, Vec<u8>) {
    http_request(
        server.addr,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{extra}\r\n",
            server.addr
        ),
    )
}

#[test]
fn health_config_and_metrics() {
    let server = TestServer::start(&[]);
    let (head, body) = get(&server, "/healthz", "");
    assert_eq!(status(&head), 200, "{head}");
    assert!(header(&head, "content-type")
        .unwrap()
        .starts_with("application/json"));
    let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["dev_mode"], true);

    let (head, body) = get(&server, "/api/config", "");
    assert_eq!(status(&head), 200);
    let config: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(config["ws_path"], "/ws");
    assert_eq!(config["typing_timeout_ms"], 2000);

    let metrics = server.metrics();
    assert!(
        metrics.contains("# TYPE emotibot_open_connections gauge"),
        "{metrics}"
    );
    assert!(server.metric("emotibot_http_requests_total{status=\"200\"}") >= 2);
    assert!(server.metric("emotibot_accepted_total") >= 3);
}

#[test]
fn static_files_with_etag_and_head() {
    let server = TestServer::start(&[]);
    let (head, body) = get(&server, "/", "");
    assert_eq!(status(&head), 200, "{head}");
    assert!(header(&head, "content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(header(&head, "content-security-policy").is_some());
    assert!(String::from_utf8_lossy(&body).contains("EmotiBot"));
    let etag = header(&head, "etag").expect("etag").to_string();

    let (head, body) = get(&server, "/", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(status(&head), 304, "{head}");
    assert!(body.is_empty());

    let (head, _) = get(&server, "/favicon.svg", "");
    assert_eq!(status(&head), 200);
    assert_eq!(header(&head, "content-type"), Some("image/svg+xml"));

    let (head, body) = http_request(
        server.addr,
        "HEAD /index.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&head), 200);
    assert!(
        header(&head, "content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 0
    );
    assert!(body.is_empty());
}

#[test]
fn errors_are_json_with_the_right_status() {
    let server = TestServer::start(&[]);
    let (head, body) = get(&server, "/no/such/page", "");
    assert_eq!(status(&head), 404);
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(error["error"]["message"].is_string(), "{error}");

    let (head, _) = http_request(
        server.addr,
        "DELETE /index.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&head), 405);

    let (head, _) = http_request(server.addr, "this is not http\r\n\r\n");
    assert_eq!(status(&head), 400);

    let big = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(9 * 1024)
    );
    let (head, _) = http_request(server.addr, &big);
    assert_eq!(status(&head), 431);

    let many: String = (0..40).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (head, _) = http_request(
        server.addr,
        &format!("GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n"),
    );
    assert_eq!(status(&head), 431);

    // A body over the limit is refused from its Content-Length, before it is read.
    let (head, _) = http_request(
        server.addr,
        "POST /api/dev/token HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n",
    );
    assert_eq!(status(&head), 413);

    // The dev token endpoint validates its input.
    let (head, _) = http_request(
        server.addr,
        "POST /api/dev/token HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 5\r\n\r\nnope!",
    );
    assert_eq!(status(&head), 400);
}

#[test]
fn keep_alive_serves_pipelined_requests_on_one_connection() {
    let server = TestServer::start(&[]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(
            b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /api/config HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .unwrap();
    let (first, body) = read_http_response(&mut stream);
    assert_eq!(status(&first), 200);
    assert!(String::from_utf8_lossy(&body).contains("\"status\""));
    let (second, body) = read_http_response(&mut stream);
    assert_eq!(status(&second), 200);
    assert!(String::from_utf8_lossy(&body).contains("ws_path"));
    // Still open for a third.
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (third, _) = read_http_response(&mut stream);
    assert_eq!(status(&third), 200);
}

#[test]
fn slowloris_head_is_dropped_after_the_handshake_timeout() {
    let server = TestServer::start(&["--handshake-timeout-ms", "300"]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .unwrap();
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 64];
    for _ in 0..5 {
        // Trickle bytes: they must not extend the deadline.
        std::thread::sleep(Duration::from_millis(40));
        let _ = stream.write_all(b"a");
    }
    let n = stream.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "dropped without a response");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(3), "dropped after {waited:?}");
}

#[test]
fn websocket_upgrade_checks() {
    let server = TestServer::start(&["--echo"]);
    // Cross-site page: refused.
    let refused = WsClient::try_connect(server.addr, "/echo", "Origin: http://evil.example\r\n");
    let (head, _) = refused.err().expect("cross-origin upgrade must be refused");
    assert_eq!(status(&head), 403);
    // Same host: allowed.
    WsClient::connect(
        server.addr,
        "/echo",
        &format!("Origin: http://{}\r\n", server.addr),
    );
    // Not an upgrade.
    let (head, _) = get(&server, "/ws", "");
    assert!(matches!(status(&head), 400 | 426), "{head}");
    // Wrong version.
    let (head, _) = http_request(
        server.addr,
        &format!(
            "GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 8\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(status(&head), 426);
}

#[test]
fn echo_text_binary_fragments_and_ping() {
    let server = TestServer::start(&["--echo"]);
    let mut ws = WsClient::connect(server.addr, "/echo", "");
    ws.send_text("hello");
    assert_eq!(ws.read_frame(), Some(Frame::Text("hello".into())));
    ws.send_frame(true, 2, &[0, 1, 2, 255]);
    assert_eq!(ws.read_frame(), Some(Frame::Binary(vec![0, 1, 2, 255])));
    // A text message in three fragments with a ping in the middle.
    ws.send_frame(false, 1, "frag".as_bytes());
    ws.send_frame(true, 9, b"are you there");
    ws.send_frame(false, 0, "ment".as_bytes());
    ws.send_frame(true, 0, "ed ✓".as_bytes());
    assert_eq!(
        ws.read_frame(),
        Some(Frame::Pong(b"are you there".to_vec()))
    );
    assert_eq!(ws.read_frame(), Some(Frame::Text("fragmented ✓".into())));
    // Close handshake: the server answers with the same code and closes TCP.
    ws.send_frame(true, 8, &1000u16.to_be_bytes());
    assert_eq!(ws.read_close(), Some(1000));
    assert!(ws.sees_eof(Duration::from_secs(3)));
}

fn expect_close(args: &[&str], send: impl FnOnce(&mut WsClient), code: u16) {
    let server = TestServer::start(args);
    let mut ws = WsClient::connect(server.addr, "/echo", "");
    send(&mut ws);
    assert_eq!(ws.read_close(), Some(code));
}

#[test]
fn protocol_violations_close_with_rfc_codes() {
    // Unmasked client frame.
    expect_close(
        &["--echo"],
        |ws| ws.send_raw(&[0x81, 0x02, b'h', b'i']),
        1002,
    );
    // Reserved bit set.
    expect_close(
        &["--echo"],
        |ws| {
            let mut frame = masked_frame(true, 1, b"hi");
            frame[0] |= 0x40;
            ws.send_raw(&frame);
        },
        1002,
    );
    // Reserved opcode.
    expect_close(&["--echo"], |ws| ws.send_frame(true, 3, b""), 1002);
    // Invalid UTF-8 in a text message.
    expect_close(
        &["--echo"],
        |ws| ws.send_frame(true, 1, &[0xce, 0xba, 0xff]),
        1007,
    );
    // Over the limit: decided from the header alone, before any payload arrives.
    expect_close(
        &["--echo", "--max-message-bytes", "1024"],
        |ws| ws.send_raw(&[0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0x10, 0, 0, 1, 2, 3, 4]),
        1009,
    );
}

#[test]
fn heartbeat_pings_and_idle_timeout() {
    let server = TestServer::start(&[
        "--echo",
        "--ping-interval-ms",
        "200",
        "--idle-timeout-ms",
        "700",
    ]);
    let mut ws = WsClient::connect(server.addr, "/echo", "");
    let started = Instant::now();
    match ws.read_frame() {
        Some(Frame::Ping(_)) => {}
        other => panic!("expected a ping, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(150));
    // Never answer: the server gives up after the idle timeout.
    let code = ws.read_close();
    assert!(
        started.elapsed() >= Duration::from_millis(650),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(code, Some(1001));

    // A client that answers pings stays connected past the idle timeout.
    let mut ws = WsClient::connect(server.addr, "/echo", "");
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        match ws.read_frame() {
            Some(Frame::Ping(payload)) => ws.send_frame(true, 10, &payload),
            other => panic!("expected pings, got {other:?}"),
        }
    }
    ws.send_text("still here");
    loop {
        match ws.read_frame() {
            Some(Frame::Text(text)) => {
                assert_eq!(text, "still here");
                break;
            }
            Some(Frame::Ping(payload)) => ws.send_frame(true, 10, &payload),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn connection_limit_answers_503() {
    let server = TestServer::start(&["--max-connections", "3"]);
    let held: Vec<_> = (0..3)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let (head, body) = http_request(server.addr, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status(&head), 503, "{head}");
    assert!(String::from_utf8_lossy(&body).contains("server_full"));
    drop(held);
    std::thread::sleep(Duration::from_millis(100));
    let (head, _) = get(&server, "/healthz", "");
    assert_eq!(status(&head), 200);
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn accept_loop_does_not_spin_when_out_of_file_descriptors() {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    // A server with room for ~40 descriptors but a connection limit far above it.
    let mut command = Command::new(env!("CARGO_BIN_EXE_emotibot"));
    command
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log",
            "error",
            "--max-connections",
            "10000",
        ])
        .stdout(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe and only affects the child.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 40,
                rlim_max: 40,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn().unwrap();
    let mut server = TestServer::from_child(child);
    // A burst well past the descriptor limit, held open.
    let held: Vec<_> = (0..120)
        .filter_map(|_| TcpStream::connect(server.addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_ticks(server.child.id());
    std::thread::sleep(Duration::from_millis(1000));
    let used = cpu_ticks(server.child.id()) - before;
    // A spinning loop would burn ~100 ticks (1 s) here.
    assert!(
        used < 30,
        "server used {used} ticks of CPU in 1 s while out of descriptors"
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let (head, _) = get(&server, "/healthz", "");
    assert_eq!(status(&head), 200, "serves again once descriptors are free");
    assert_eq!(server.wait_exit(Duration::from_millis(1)), None);
}

#[test]
fn shutdown_sends_1001_and_exits_zero() {
    let mut server = TestServer::start(&["--echo"]);
    let mut ws = WsClient::connect(server.addr, "/echo", "");
    ws.send_text("before");
    assert_eq!(ws.read_frame(), Some(Frame::Text("before".into())));
    server.signal(libc::SIGTERM);
    assert_eq!(ws.read_close(), Some(1001));
    ws.send_frame(true, 8, &1001u16.to_be_bytes());
    assert_eq!(server.wait_exit(Duration::from_secs(5)), Some(0));
    // The listener is gone.
    assert!(TcpStream::connect(server.addr).is_err());
}

#[test]
fn a_ping_flood_from_a_peer_that_never_reads_is_cut_off() {
    let server = TestServer::start(&["--echo"]);
    let mut ws = WsClient::connect(server.addr, "/echo", "");
    let ping = masked_frame(true, 9, &[b'p'; 125]);
    let batch: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 500)
        .collect();
    ws.stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // Pongs pile up on the server while we never read; it must drop us long before 256 MiB.
    let mut sent = 0usize;
    let cut_off = loop {
        match ws.stream.write_all(&batch) {
            Ok(()) => sent += batch.len(),
            Err(_) => break true,
        }
        if sent > 256 << 20 {
            break false;
        }
    };
    assert!(cut_off, "still connected after {sent} bytes of pings");
    assert!(server.metric("emotibot_slow_consumers_closed_total") >= 1);
    // The server is fine.
    let (head, _) = get(&server, "/healthz", "");
    assert_eq!(status(&head), 200);
}
