//! The chat core's [`Outbox`], backed by the connections' output buffers.
//!
//! This is where backpressure policy lives: a connection whose unsent backlog passes the soft limit
//! is spared droppable frames (typing, presence, previews); one that would pass the hard limit is
//! closed with 1008 instead of growing without bound. Nothing here blocks or slows other
//! connections: output is only appended to buffers, and the reactor flushes them.

use super::connection::{Connection, Phase};
use super::output_pool::OutputPool;
use crate::chat::{ConnId, Delivery, Outbox};
use crate::metrics::Metrics;
use crate::timer_wheel::TimerWheel;
use crate::ws::connection::State;
use crate::ws::frame;
use slab::Slab;

/// How long a connection we are closing gets to answer our close frame before it is dropped.
pub const CLOSE_LINGER_MS: u64 = 2_000;

#[derive(Clone, Copy, Debug)]
pub struct OutputLimits {
    /// Above this backlog, droppable frames are shed.
    pub soft: usize,
    /// A frame that would take the backlog above this closes the connection with 1008.
    pub hard: usize,
}

impl Default for OutputLimits {
    fn default() -> Self {
        OutputLimits {
            soft: 64 * 1024,
            hard: 1024 * 1024,
        }
    }
}

pub struct ConnectionOutbox<'a> {
    pub conns: &'a mut Slab<Connection>,
    pub flush_queue: &'a mut Vec<usize>,
    pub wheel: &'a mut TimerWheel<usize>,
    pub metrics: &'a mut Metrics,
    pub output_pool: &'a mut OutputPool,
    pub limits: OutputLimits,
    pub now: u64,
}

/// Puts a connection on this turn's flush list once.
#[inline]
pub fn queue_flush(flush_queue: &mut Vec<usize>, conn: &mut Connection, key: usize) {
    if !conn.queued_for_flush {
        conn.queued_for_flush = true;
        flush_queue.push(key);
    }
}

/// Replaces a connection's timer.
pub fn rearm(wheel: &mut TimerWheel<usize>, conn: &mut Connection, key: usize, deadline: u64) {
    if let Some(old) = conn.timer.take() {
        wheel.cancel(old);
    }
    conn.timer = Some(wheel.insert(deadline, key));
}

/// Starts a server-initiated close: writes the close frame and gives the peer
/// [`CLOSE_LINGER_MS`] to answer.
pub fn start_close(
    wheel: &mut TimerWheel<usize>,
    flush_queue: &mut Vec<usize>,
    conn: &mut Connection,
    key: usize,
    code: u16,
    reason: &str,
    now: u64,
) {
    let closed_now = match &mut conn.phase {
        Phase::WebSocket { ws, .. } if ws.state() == State::Open => {
            ws.close(code, reason, &mut conn.output);
            true
        }
        _ => false,
    };
    if closed_now {
        rearm(wheel, conn, key, now + CLOSE_LINGER_MS);
        queue_flush(flush_queue, conn, key);
    }
}

/// Appends a text frame whose payload (JSON) `write` appends to `output`, and returns the
/// payload's length. A connection whose output drained holds no buffer: the pool supplies one,
/// and [`frame::write_text_with`] reserves the rest.
#[inline(always)]
fn write_text_frame(
    output: &mut Vec<u8>,
    pool: &mut OutputPool,
    size_hint: usize,
    write: impl FnOnce(&mut Vec<u8>),
) -> usize {
    if output.capacity() == 0 {
        pool.supply(output, frame::MAX_HEADER_LEN + size_hint);
    }
    frame::write_text_with(output, size_hint, write)
}

impl ConnectionOutbox<'_> {
    /// Frames the JSON `write` produces into `key`'s output, unless the connection is no longer
    /// an open chat session, or the frame is droppable and the backlog above the soft limit. A
    /// frame that would take the backlog above the hard limit is taken back out and the
    /// connection closed with 1008 instead.
    fn frame_into(
        &mut self,
        key: ConnId,
        delivery: Delivery,
        size_hint: usize,
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !conn.is_open_chat() || conn.websocket().is_none_or(|ws| ws.state() != State::Open) {
            return;
        }
        let backlog = conn.backlog();
        if delivery == Delivery::Droppable && backlog >= self.limits.soft {
            self.metrics.dropped_droppable_frames += 1;
            return;
        }
        let start = conn.output.len();
        let payload_len = write_text_frame(&mut conn.output, self.output_pool, size_hint, write);
        debug_assert!(std::str::from_utf8(&conn.output[conn.output.len() - payload_len..]).is_ok());
        if backlog + payload_len + frame::MAX_HEADER_LEN > self.limits.hard {
            conn.output.truncate(start);
            self.metrics.slow_consumers_closed += 1;
            start_close(
                self.wheel,
                self.flush_queue,
                conn,
                key,
                1008,
                "output backlog limit: connection not reading",
                self.now,
            );
            return;
        }
        self.metrics.ws_messages_out += 1;
        self.metrics.ws_bytes_out += payload_len as u64;
        queue_flush(self.flush_queue, conn, key);
    }
}

impl Outbox for ConnectionOutbox<'_> {
    fn send(&mut self, key: ConnId, json: &str, delivery: Delivery) {
        self.frame_into(key, delivery, json.len(), |out| {
            out.extend_from_slice(json.as_bytes())
        });
    }

    fn send_with(
        &mut self,
        key: ConnId,
        delivery: Delivery,
        size_hint: usize,
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        self.frame_into(key, delivery, size_hint, write);
    }

    fn close(&mut self, key: ConnId, code: u16, reason: &str) {
        if let Some(conn) = self.conns.get_mut(key) {
            start_close(
                self.wheel,
                self.flush_queue,
                conn,
                key,
                code,
                reason,
                self.now,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::connection::WsConnection;

    /// An open chat connection over a real loopback socket, and the client's end.
    fn chat_connection() -> (Connection, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        let mut conn = Connection::new(mio::net::TcpStream::from_std(server), peer.ip(), 0);
        conn.phase = Phase::WebSocket {
            ws: WsConnection::new(1 << 20),
            echo: false,
            chat_open: true,
        };
        (conn, client)
    }

    /// Every hint, right or wrong, frames a payload as `frame::write_text` does, after what the
    /// output already holds, with or without a buffer to start with.
    #[test]
    fn frames_are_the_shortest_whatever_the_hint() {
        let lengths = [0, 1, 125, 126, 127, 250, 65_535, 65_536, 70_000];
        let hints = [0, 8, 125, 126, 200, 65_535, 65_536, 100_000];
        let mut pool = OutputPool::default();
        for payload_len in lengths {
            let payload = "p".repeat(payload_len);
            for size_hint in hints {
                for before in [&b""[..], b"earlier frame"] {
                    let mut expected = before.to_vec();
                    frame::write_text(&mut expected, &payload);
                    let mut output = before.to_vec();
                    let written = write_text_frame(&mut output, &mut pool, size_hint, |out| {
                        out.extend_from_slice(payload.as_bytes())
                    });
                    assert_eq!(written, payload_len, "{payload_len} {size_hint}");
                    assert!(output == expected, "{payload_len} bytes, hint {size_hint}");
                }
            }
        }
    }

    #[test]
    fn backlog_limits_shed_droppable_frames_then_close_with_1008() {
        let (conn, _client) = chat_connection();
        let mut conns = Slab::new();
        let key = conns.insert(conn);
        let mut flush_queue = Vec::new();
        let mut wheel = TimerWheel::new(10, 64, 0);
        let mut metrics = Metrics::default();
        let mut output_pool = OutputPool::default();
        let mut outbox = ConnectionOutbox {
            conns: &mut conns,
            flush_queue: &mut flush_queue,
            wheel: &mut wheel,
            metrics: &mut metrics,
            output_pool: &mut output_pool,
            limits: OutputLimits {
                soft: 300,
                hard: 1000,
            },
            now: 0,
        };
        let json = format!("\"{}\"", "x".repeat(198)); // a 200-byte payload, 204-byte frame
        outbox.send(key, &json, Delivery::Essential);
        outbox.send_with(key, Delivery::Droppable, 8, |out| {
            out.extend_from_slice(json.as_bytes())
        });
        // Backlog 408 >= soft: a droppable frame is shed, an essential one still goes.
        outbox.send(key, &json, Delivery::Droppable);
        outbox.send(key, &json, Delivery::Essential);
        assert_eq!(outbox.metrics.dropped_droppable_frames, 1);
        assert_eq!(outbox.metrics.ws_messages_out, 3);
        assert_eq!(outbox.conns[key].backlog(), 3 * 204);
        // 612 + 200 + 14 <= 1000 still fits; the next one would not and closes instead.
        outbox.send(key, &json, Delivery::Essential);
        assert_eq!(outbox.conns[key].backlog(), 4 * 204);
        outbox.send_with(key, Delivery::Essential, 200, |out| {
            out.extend_from_slice(json.as_bytes())
        });
        assert_eq!(outbox.metrics.slow_consumers_closed, 1);
        assert_eq!(outbox.metrics.ws_messages_out, 4);
        let conn = &mut outbox.conns[key];
        let close = &conn.output[4 * 204..];
        let header = frame::parse_header(close).unwrap().unwrap();
        assert_eq!(header.opcode, frame::OpCode::Close.as_u8());
        assert_eq!(close[2..4], 1008u16.to_be_bytes());
        assert!(conn.websocket().is_some_and(|ws| ws.state() != State::Open));
        assert_eq!(flush_queue, vec![key]);
    }
}
