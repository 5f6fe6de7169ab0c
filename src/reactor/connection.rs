//! One TCP connection as the reactor holds it: the socket, its protocol phase, and the bytes it
//! keeps only while it must (a partial frame or request in `input`, unsent bytes in `output`).

use crate::timer_wheel::TimerKey;
use crate::ws::connection::WsConnection;
use mio::net::TcpStream;
use std::net::IpAddr;

pub enum Phase {
    /// Reading HTTP requests (keep-alive) until one upgrades.
    Http,
    /// An upgraded WebSocket: `echo` for the conformance endpoint, otherwise a chat session.
    /// `chat_open` stays true until the chat core has been told the session ended.
    WebSocket {
        ws: WsConnection,
        echo: bool,
        chat_open: bool,
    },
}

pub struct Connection {
    pub stream: TcpStream,
    pub ip: IpAddr,
    pub phase: Phase,
    /// Unprocessed input (a partial request or frame). Empty, with no allocation, when idle.
    pub input: Vec<u8>,
    /// Unsent output; `output[sent..]` is still to go. Empty, with no allocation, once drained
    /// (the reactor returns the buffer to its pool then).
    pub output: Vec<u8>,
    pub sent: usize,
    /// The connection's single timer: handshake deadline, heartbeat, or close linger.
    pub timer: Option<TimerKey>,
    /// When bytes last arrived (ms), for heartbeats and the idle timeout.
    pub last_rx: u64,
    /// Registered for writable readiness (only while output is pending after a short write).
    pub writable_interest: bool,
    /// Already in this loop turn's list of connections to flush.
    pub queued_for_flush: bool,
    /// The loop turn in which the socket was last read (each turn has a read budget).
    pub read_turn: u64,
    /// In the reactor's list of connections to read again next turn.
    pub read_carried: bool,
    /// Shut down our side once `output` drains (after an error response or a close handshake).
    pub close_after_flush: bool,
    /// Our side is shut down: input is read and discarded until the peer closes or the linger
    /// timer fires (so the peer sees our last bytes instead of a reset).
    pub lingering: bool,
}

impl Connection {
    pub fn new(stream: TcpStream, ip: IpAddr, now: u64) -> Connection {
        Connection {
            stream,
            ip,
            phase: Phase::Http,
            input: Vec::new(),
            output: Vec::new(),
            sent: 0,
            timer: None,
            last_rx: now,
            writable_interest: false,
            queued_for_flush: false,
            read_turn: u64::MAX,
            read_carried: false,
            close_after_flush: false,
            lingering: false,
        }
    }

    /// Bytes queued but not yet written.
    pub fn backlog(&self) -> usize {
        self.output.len() - self.sent
    }

    /// The WebSocket, when upgraded.
    pub fn websocket(&mut self) -> Option<&mut WsConnection> {
        match &mut self.phase {
            Phase::WebSocket { ws, .. } => Some(ws),
            Phase::Http => None,
        }
    }

    /// Whether the connection is a chat session the chat core still knows about.
    pub fn is_open_chat(&self) -> bool {
        matches!(
            self.phase,
            Phase::WebSocket {
                echo: false,
                chat_open: true,
                ..
            }
        )
    }

    /// Takes the output buffer, unsent bytes and all, leaving none allocated.
    pub fn take_output(&mut self) -> Vec<u8> {
        self.sent = 0;
        std::mem::take(&mut self.output)
    }

    /// Keeps the input that was not consumed, releasing the buffer when nothing is left.
    pub fn keep_input(&mut self, mut buffer: Vec<u8>, consumed: usize) {
        if consumed >= buffer.len() {
            self.input = Vec::new();
            return;
        }
        buffer.drain(..consumed);
        // A large message leaves a large buffer behind; do not keep it for a small remainder.
        if buffer.capacity() > 64 * 1024 && buffer.len() * 4 < buffer.capacity() {
            buffer.shrink_to_fit();
        }
        self.input = buffer;
    }

    /// Records that `n` more bytes were written; empties the buffer (keeping its allocation for
    /// [`Connection::take_output`]) once all is sent.
    pub fn advance_output(&mut self, n: usize) {
        self.sent += n;
        if self.sent >= self.output.len() {
            self.output.clear();
            self.sent = 0;
        } else if self.sent > 64 * 1024 && self.sent * 2 > self.output.len() {
            // Long backlog: drop the sent prefix so the buffer does not only grow.
            self.output.drain(..self.sent);
            self.sent = 0;
        }
    }
}
