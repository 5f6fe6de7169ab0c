//! The floor: a minimal mio WebSocket server with fixed replies and no JWT, no JSON, no scoring,
//! run by this same executable (`--serve-floor`) on the server's core. It answers the generator's
//! traffic with the least work the protocol allows, so the gap between it and EmotiBot is the cost
//! of EmotiBot's application logic and nothing else:
//! - the upgrade gets a fixed `101` (the generator always sends the same key);
//! - a `join` gets a fixed `joined`;
//! - a `message` with a `room` is framed once and copied to every other member, and its sender
//!   gets it back retyped as `emotion` (same length: `message` and `emotion` both have 7 letters);
//! - any other `message` comes back retyped as `emotion`; anything else is echoed.
//!
//! With `--floor-scores` (the `scoring-floor` peer) it also scores every `message`'s text with
//! EmotiBot's scorer and discards the scores: the floor plus the one piece of application work
//! no emotion-aware server can skip, measured with the caches the rest of a server's work leaves
//! the scorer, which a micro-benchmark's warm loop does not show.
//!
//! Like EmotiBot it reads with one shared 64 KiB buffer, stops reading at a short read, and sends
//! everything a connection got in one loop turn with one write.

use emotibot::emotion::Scorer;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddrV4;

const LISTENER: Token = Token(usize::MAX);
const READ_CHUNK: usize = 64 * 1024;
const UPGRADE_RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
const JOINED: &[u8] = br#"{"type":"joined","room":"bench-fanout","seq":0}"#;
const MESSAGE_PREFIX: &[u8] = br#"{"type":"message""#;
const JOIN_PREFIX: &[u8] = br#"{"type":"join""#;
const TEXT_KEY: &[u8] = br#""text":""#;

struct FloorConnection {
    stream: TcpStream,
    upgraded: bool,
    member: bool,
    unconsumed: Vec<u8>,
    output: Vec<u8>,
    sent: usize,
    queued: bool,
}

/// Serves until killed; `scores`: score each message's text (`--floor-scores`).
pub fn serve(listen: SocketAddrV4, scores: bool) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(listen.into())?;
    // The accept queue EmotiBot (`--listen-backlog`) and tokio use, instead of mio's 128, which
    // drops SYNs in the idle and churn bursts and turns them into one-second retransmits.
    emotibot::server::set_listen_backlog(&listener, 1024)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut floor = Floor {
        conns: Slab::with_capacity(1024),
        members: Vec::new(),
        flush_queue: Vec::new(),
        frame: Vec::new(),
        scorer: scores.then(Scorer::new),
    };
    let mut events = Events::with_capacity(1024);
    let mut read_buffer = vec![0u8; READ_CHUNK];
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                floor.accept(&listener, &poll)?;
                continue;
            }
            let key = event.token().0;
            if event.is_writable() {
                if let Some(conn) = floor.conns.get_mut(key) {
                    if flush(conn).is_err() {
                        floor.remove(key, &poll);
                        continue;
                    }
                }
            }
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                floor.read(key, &mut read_buffer, &poll);
            }
        }
        floor.flush_queued(&poll);
    }
}

struct Floor {
    conns: Slab<FloorConnection>,
    members: Vec<usize>,
    flush_queue: Vec<usize>,
    /// Scratch for one outgoing frame, so a room message is framed once.
    frame: Vec<u8>,
    scorer: Option<Scorer>,
}

impl Floor {
    fn accept(&mut self, listener: &TcpListener, poll: &Poll) -> io::Result<()> {
        loop {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let entry = self.conns.vacant_entry();
                    poll.registry().register(
                        &mut stream,
                        Token(entry.key()),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    entry.insert(FloorConnection {
                        stream,
                        upgraded: false,
                        member: false,
                        unconsumed: Vec::new(),
                        output: Vec::new(),
                        sent: 0,
                        queued: false,
                    });
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                // Out of descriptors and the like: the listener stays readable; try next turn.
                Err(_) => return Ok(()),
            }
        }
    }

    fn read(&mut self, key: usize, buffer: &mut [u8], poll: &Poll) {
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            match conn.stream.read(buffer) {
                Ok(0) => return self.remove(key, poll),
                Ok(read) => {
                    let mut input = std::mem::take(&mut conn.unconsumed);
                    input.extend_from_slice(&buffer[..read]);
                    let keep = self.process(key, &mut input);
                    match (keep, self.conns.get_mut(key)) {
                        (Some(consumed), Some(conn)) if consumed == input.len() => {
                            // Idle connections hold no buffers.
                            conn.unconsumed = Vec::new();
                        }
                        (Some(consumed), Some(conn)) => {
                            input.drain(..consumed);
                            conn.unconsumed = input;
                        }
                        _ => return self.remove(key, poll),
                    }
                    if read < buffer.len() {
                        return;
                    }
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.remove(key, poll),
            }
        }
    }

    /// Handles what `input` holds; returns how much was consumed, or `None` to drop the
    /// connection (close frame, bad frame).
    fn process(&mut self, key: usize, input: &mut [u8]) -> Option<usize> {
        let mut position = 0;
        let conn = self.conns.get_mut(key)?;
        if !conn.upgraded {
            let Some(end) = input.windows(4).position(|window| window == b"\r\n\r\n") else {
                return Some(0);
            };
            position = end + 4;
            conn.upgraded = true;
            conn.output.extend_from_slice(UPGRADE_RESPONSE);
            self.queue(key);
        }
        loop {
            let Some((opcode, payload, used)) = decode_client_frame(&mut input[position..])? else {
                return Some(position);
            };
            let payload = position + payload.start..position + payload.end;
            position += used;
            match opcode {
                0x1 => self.on_text(key, &input[payload]),
                0x8 => return None,
                _ => {}
            }
        }
    }

    fn on_text(&mut self, key: usize, payload: &[u8]) {
        let mut frame = std::mem::take(&mut self.frame);
        frame.clear();
        if payload.starts_with(JOIN_PREFIX) {
            write_server_frame(&mut frame, 0x1, JOINED);
            if let Some(conn) = self.conns.get_mut(key) {
                if !conn.member {
                    conn.member = true;
                    self.members.push(key);
                }
            }
        } else if payload.starts_with(MESSAGE_PREFIX) {
            if let Some(scorer) = &self.scorer {
                std::hint::black_box(scorer.score(message_text(payload)));
            }
            write_server_frame(&mut frame, 0x1, payload);
            if find(payload, br#""room":"#).is_some() {
                // Framed once, copied to every other member.
                for &member in &self.members {
                    if member == key {
                        continue;
                    }
                    if let Some(conn) = self.conns.get_mut(member) {
                        conn.output.extend_from_slice(&frame);
                        if !conn.queued {
                            conn.queued = true;
                            self.flush_queue.push(member);
                        }
                    }
                }
            }
            // The sender's answer: the same bytes retyped `emotion`, where the frame's header
            // is followed by `{"type":"`.
            let type_at = frame.len() - payload.len() + br#"{"type":""#.len();
            frame[type_at..type_at + 7].copy_from_slice(b"emotion");
        } else {
            write_server_frame(&mut frame, 0x1, payload);
        }
        if let Some(conn) = self.conns.get_mut(key) {
            conn.output.extend_from_slice(&frame);
        }
        self.queue(key);
        self.frame = frame;
    }

    fn queue(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            if !conn.queued {
                conn.queued = true;
                self.flush_queue.push(key);
            }
        }
    }

    fn flush_queued(&mut self, poll: &Poll) {
        let queue = std::mem::take(&mut self.flush_queue);
        for &key in &queue {
            let failed = match self.conns.get_mut(key) {
                Some(conn) => {
                    conn.queued = false;
                    flush(conn).is_err()
                }
                None => false,
            };
            if failed {
                self.remove(key, poll);
            }
        }
        self.flush_queue = queue;
        self.flush_queue.clear();
    }

    fn remove(&mut self, key: usize, poll: &Poll) {
        if let Some(mut conn) = self.conns.try_remove(key) {
            let _ = poll.registry().deregister(&mut conn.stream);
            if conn.member {
                if let Some(index) = self.members.iter().position(|&member| member == key) {
                    self.members.swap_remove(index);
                }
            }
        }
    }
}

fn flush(conn: &mut FloorConnection) -> io::Result<()> {
    while conn.sent < conn.output.len() {
        match conn.stream.write(&conn.output[conn.sent..]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(written) => conn.sent += written,
            Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    // Idle connections hold no buffers; a busy one allocates one per loop turn.
    conn.output = Vec::new();
    conn.sent = 0;
    Ok(())
}

/// Decodes and unmasks (in place) the client frame at the start of `buf`: `Ok(None)` until it is
/// complete, else its opcode, the payload's range within `buf` and the bytes it occupied. An
/// unmasked or oversized frame is an error (`None` from the outer `Option`).
#[allow(clippy::type_complexity)]
fn decode_client_frame(buf: &mut [u8]) -> Option<Option<(u8, std::ops::Range<usize>, usize)>> {
    let [first, second, ..] = *buf else {
        return Some(None);
    };
    if second & 0x80 == 0 {
        return None;
    }
    let (length, header) = match second & 0x7F {
        126 => match buf.get(2..4) {
            Some(bytes) => (usize::from(u16::from_be_bytes([bytes[0], bytes[1]])), 4),
            None => return Some(None),
        },
        127 => return None,
        short => (usize::from(short), 2),
    };
    let payload_start = header + 4;
    let end = payload_start + length;
    if buf.len() < end {
        return Some(None);
    }
    let mask = [
        buf[header],
        buf[header + 1],
        buf[header + 2],
        buf[header + 3],
    ];
    for (index, byte) in buf[payload_start..end].iter_mut().enumerate() {
        *byte ^= mask[index & 3];
    }
    Some(Some((first & 0x0F, payload_start..end, end)))
}

/// The text of a generator `message`: its lines need no JSON escapes, so the text runs from
/// `"text":"` to the next quote. Empty when there is none.
fn message_text(payload: &[u8]) -> &str {
    let after_key = find(payload, TEXT_KEY).map_or(payload.len(), |at| at + TEXT_KEY.len());
    let rest = &payload[after_key..];
    let text = &rest[..rest.iter().position(|&b| b == b'"').unwrap_or(rest.len())];
    std::str::from_utf8(text).unwrap_or("")
}

/// Where `needle` first starts in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Appends an unmasked server frame.
fn write_server_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    if payload.len() < 126 {
        out.push(payload.len() as u8);
    } else if payload.len() <= usize::from(u16::MAX) {
        out.push(126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

pub mod checks {
    use super::*;

    pub fn client_frames_are_unmasked_in_place() {
        // RFC 6455 section 5.7: a masked "Hello", then the start of a second frame.
        let mut bytes = vec![
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58, 0x81,
        ];
        let (opcode, payload, used) = decode_client_frame(&mut bytes).unwrap().unwrap();
        assert_eq!((opcode, used), (0x1, 11));
        assert_eq!(&bytes[payload], b"Hello");
        assert_eq!(decode_client_frame(&mut bytes[11..]), Some(None));
        assert_eq!(decode_client_frame(&mut [0x81, 0x05, b'H']), None);
    }

    pub fn message_text_is_the_text_fields_value() {
        let message = br#"{"type":"message","id":"c1","text":"so happy today"}"#;
        assert_eq!(message_text(message), "so happy today");
        let in_room = br#"{"type":"message","id":"f2","room":"bench-fanout","text":"ok"}"#;
        assert_eq!(message_text(in_room), "ok");
        assert_eq!(message_text(br#"{"type":"message"}"#), "");
        assert_eq!(message_text(br#"{"type":"message","text":"cut"#), "cut");
    }

    pub fn server_frames_use_the_shortest_length() {
        let mut out = Vec::new();
        write_server_frame(&mut out, 0x1, b"hi");
        assert_eq!(out, [0x81, 0x02, b'h', b'i']);
        out.clear();
        write_server_frame(&mut out, 0x1, &[b'x'; 200]);
        assert_eq!(&out[..4], &[0x81, 126, 0, 200]);
    }
}
