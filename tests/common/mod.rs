//! Shared pieces of the integration tests: a server process on a free port, and a small blocking
//! WebSocket client that speaks raw frames (so tests can also send what well-behaved clients
//! never would).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `emotibot` process, killed on drop.
pub struct TestServer {
    pub child: Child,
    pub addr: SocketAddr,
    /// Kept open so the server never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl TestServer {
    /// Starts the server on an OS-chosen port with `args` and waits until it listens.
    pub fn start(args: &[&str]) -> TestServer {
        let child = Command::new(env!("CARGO_BIN_EXE_emotibot"))
            .args(["--listen", "127.0.0.1:0", "--log", "warn"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn emotibot");
        TestServer::from_child(child)
    }

    /// Wraps a spawned server whose stdout is piped; waits for its listening line.
    pub fn from_child(mut child: Child) -> TestServer {
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("read the listening line");
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        TestServer {
            child,
            addr,
            _stdout: stdout,
        }
    }

    /// The server's `/metrics` text.
    pub fn metrics(&self) -> String {
        let (_, body) = http_request(
            self.addr,
            "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        );
        String::from_utf8_lossy(&body).into_owned()
    }

    /// One sample of a metric line from `/metrics`, e.g. `emotibot_ws_closes_total{code="1002"}`.
    pub fn metric(&self, name: &str) -> u64 {
        self.metrics()
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// Waits for the process to exit; its status code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a raw request and reads the whole response (the server must close or the response
/// must carry Content-Length). Returns (head, body).
pub fn http_request(addr: SocketAddr, request: &str) -> (String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).expect("send request");
    read_http_response(&mut stream)
}

/// Reads one HTTP response (head + Content-Length body) from a stream, and nothing after it
/// (pipelined responses stay in the stream).
pub fn read_http_response(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut data = Vec::new();
    let mut byte = [0u8; 1];
    while !data.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("read response head");
        assert!(
            n > 0,
            "connection closed before a full head: {:?}",
            String::from_utf8_lossy(&data)
        );
        data.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&data).into_owned();
    let length = header(&head, "content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    let mut filled = 0;
    while filled < length {
        match stream.read(&mut body[filled..]) {
            Ok(0) | Err(_) => break, // HEAD responses announce a length but carry no body
            Ok(n) => filled += n,
        }
    }
    body.truncate(filled);
    (head, body)
}

/// A header's value from a response head (case-insensitive name).
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub fn status(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A frame as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

/// A blocking WebSocket client over a raw TCP stream.
pub struct WsClient {
    pub stream: TcpStream,
    buffer: Vec<u8>,
}

pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

impl WsClient {
    /// Connects and upgrades `path`, with extra request header lines (each ending in \r\n).
    pub fn connect(addr: SocketAddr, path: &str, extra_headers: &str) -> WsClient {
        match Self::try_connect(addr, path, extra_headers) {
            Ok(client) => client,
            Err((head, body)) => {
                panic!("upgrade refused: {head}{}", String::from_utf8_lossy(&body))
            }
        }
    }

    /// Like `connect`, but returns the response when the server does not switch protocols.
    pub fn try_connect(
        addr: SocketAddr,
        path: &str,
        extra_headers: &str,
    ) -> Result<WsClient, (String, Vec<u8>)> {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra_headers}\r\n"
        );
        stream.write_all(request.as_bytes()).expect("send upgrade");
        // Read exactly the head; frames may follow in the same segment.
        let mut data = Vec::new();
        let mut byte = [0u8; 1];
        while !data.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut byte).expect("read upgrade response");
            assert!(
                n > 0,
                "closed during upgrade: {:?}",
                String::from_utf8_lossy(&data)
            );
            data.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&data).into_owned();
        if status(&head) != 101 {
            let length = header(&head, "content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; length];
            let _ = stream.read_exact(&mut body);
            return Err((head, body));
        }
        Ok(WsClient {
            stream,
            buffer: Vec::new(),
        })
    }

    /// Writes one masked frame with explicit header bits.
    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.stream
            .write_all(&masked_frame(fin, opcode, payload))
            .expect("send frame");
    }

    pub fn send_text(&mut self, text: &str) {
        self.send_frame(true, 1, text.as_bytes());
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send raw bytes");
    }

    /// Reads the next frame; `None` when the server closed the TCP connection.
    pub fn read_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, used)) = parse_server_frame(&self.buffer) {
                self.buffer.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next text frame parsed as JSON, skipping pings.
    pub fn read_json(&mut self) -> serde_json::Value {
        loop {
            match self.read_frame() {
                Some(Frame::Text(text)) => {
                    return serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("bad JSON {text}: {e}"))
                }
                Some(Frame::Ping(_)) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Reads JSON messages until one has `"type": kind`; returns it.
    pub fn read_until_type(&mut self, kind: &str) -> serde_json::Value {
        loop {
            let value = self.read_json();
            if value["type"] == kind {
                return value;
            }
        }
    }

    /// Reads frames until the close frame; returns its code.
    pub fn read_close(&mut self) -> Option<u16> {
        loop {
            match self.read_frame() {
                Some(Frame::Close(code, _)) => return code,
                Some(_) => {}
                None => return None,
            }
        }
    }

    /// Whether the server closed the TCP connection (read returns 0) within `within`.
    pub fn sees_eof(&mut self, within: Duration) -> bool {
        self.stream.set_read_timeout(Some(within)).unwrap();
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

/// The fixed masking key of [`masked_frame`], for tests that write frame headers by hand.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A client frame, masked with [`MASK`].
pub fn masked_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = MASK;
    let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Parses one unmasked server frame from the start of `buf`.
pub fn parse_server_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    assert_eq!(buf[1] & 0x80, 0, "server frames are never masked");
    let opcode = buf[0] & 0x0f;
    let (len, header) = match buf[1] & 0x7f {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let payload = buf.get(header..header + len)?.to_vec();
    let frame = match opcode {
        1 => Frame::Text(String::from_utf8(payload).expect("server text is UTF-8")),
        2 => Frame::Binary(payload),
        8 => {
            let code = (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
            let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or(&[])).into_owned();
            Frame::Close(code, reason)
        }
        9 => Frame::Ping(payload),
        10 => Frame::Pong(payload),
        other => panic!("unexpected server opcode {other}"),
    };
    Some((frame, header + len))
}
