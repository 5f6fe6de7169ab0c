//! The chat core's [`Outbox`], backed by the connections' output buffers.
//!
//! This is where backpressure policy lives: a connection whose unsent backlog passes the soft limit
//! is spared droppable frames (typing, presence, previews); one that would pass the hard limit is
//! closed with 1008 instead of growing without bound. Nothing here blocks or slows other
//! connections: output is only appended to buffers, and the reactor flushes them.

use super::connection::{Connection, Phase};
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
    pub limits: OutputLimits,
    pub now: u64,
}

/// Puts a connection on this turn's flush list once.
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

impl Outbox for ConnectionOutbox<'_> {
    fn send(&mut self, key: ConnId, json: &str, delivery: Delivery) {
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
        if backlog + json.len() + frame::MAX_HEADER_LEN > self.limits.hard {
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
        frame::write_text(&mut conn.output, json);
        self.metrics.ws_messages_out += 1;
        self.metrics.ws_bytes_out += json.len() as u64;
        queue_flush(self.flush_queue, conn, key);
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
