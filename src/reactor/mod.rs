//! The single-threaded mio event loop.
//!
//! One turn of the loop: wait for readiness (or the next timer), accept new connections, read
//! every readable socket until it would block and hand the bytes to the connection's phase
//! (HTTP, then WebSocket), fire due timers, and finally flush every connection that got output
//! this turn with one `write` each. Policy lives elsewhere: [`crate::http`] decides what a request
//! means, [`crate::ws`] what a frame means, [`crate::chat`] what a message means; this module only
//! moves bytes and time between them and the sockets.
//!
//! Memory: reads land in one buffer owned by the reactor. A connection keeps input only while it
//! holds a partial request or frame, and output only while some is unsent; both are released when
//! drained, so an idle connection costs its [`Connection`] slot and nothing else. Drained output
//! buffers go to a pool capped at 1 MiB (`output_pool`) rather than back to the allocator, so
//! connections that get output every turn do not allocate a buffer every turn.

/// The chat core's view of the connections, borrowing only the fields it needs so that
/// `self.chat` stays free to be called with it.
macro_rules! outbox {
    ($reactor:ident, $now:expr) => {
        ConnectionOutbox {
            conns: &mut $reactor.conns,
            flush_queue: &mut $reactor.flush_queue,
            wheel: &mut $reactor.wheel,
            metrics: &mut $reactor.metrics,
            output_pool: &mut $reactor.output_pool,
            limits: $reactor.config.output_limits,
            now: $now,
        }
    };
}

mod connection;
mod http_phase;
mod outbox;
mod output_pool;

use self::connection::{Connection, Phase};
use self::outbox::{queue_flush, rearm, start_close, ConnectionOutbox, OutputLimits};
use self::output_pool::OutputPool;
use crate::chat::ChatCore;
use crate::http::router::Router;
use crate::metrics::{Gauges, Metrics};
use crate::timer_wheel::TimerWheel;
use crate::ws::connection::{Event, State};
use crate::ws::frame;
use crate::{log_debug, log_info, log_warn};
use mio::net::{TcpListener, TcpStream, UnixStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::time::{Duration, Instant};

const LISTENER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// The turn's input arena: room for several full reads, and for the few hundred bytes each of
/// hundreds of busy connections send in one turn, before it has to be processed early.
const INPUT_ARENA_BYTES: usize = 4 * READ_BUFFER_BYTES;
/// Full reads one connection gets per loop turn (64 KiB). A peer that sends faster than we
/// process would otherwise keep the loop on its socket and starve everyone else; what is left
/// is read in the next turn, after the other connections had theirs.
const READS_PER_TURN: usize = 1;
/// After EMFILE and friends, accepting pauses this long instead of spinning on the error.
const ACCEPT_PAUSE_MS: u64 = 100;
/// Timer wheel geometry: 10 ms ticks, 4096 slots (a 41 s revolution).
const TICK_MS: u64 = 10;
const WHEEL_SLOTS: usize = 4096;

#[derive(Clone, Debug)]
pub struct ReactorConfig {
    pub max_connections: usize,
    pub max_message_bytes: usize,
    pub handshake_timeout_ms: u64,
    pub ping_interval_ms: u64,
    pub idle_timeout_ms: u64,
    /// 0 = unlimited.
    pub max_conns_per_ip: u32,
    pub dev_mode: bool,
    pub typing_timeout_ms: u64,
    /// How long shutdown waits for close replies.
    pub shutdown_grace_ms: u64,
    pub output_limits: OutputLimits,
}

pub struct Reactor {
    poll: Poll,
    listener: Option<TcpListener>,
    signals: Option<UnixStream>,
    conns: Slab<Connection>,
    /// This turn's reads, processed together after the turn's events (see [`TurnInput`]).
    turn_input: TurnInput,
    /// Connections that used up their read budget with data still waiting (edge-triggered
    /// readiness will not report it again), with whether the peer had closed.
    read_again: Vec<(usize, bool)>,
    wheel: TimerWheel<usize>,
    fired: Vec<usize>,
    flush_queue: Vec<usize>,
    /// Drained output buffers kept for the next connection that gets output.
    output_pool: OutputPool,
    chat: ChatCore,
    router: Router,
    metrics: Metrics,
    per_ip: HashMap<IpAddr, u32>,
    config: ReactorConfig,
    clock: Instant,
    unix_ms_at_zero: u64,
    accept_paused_until: Option<u64>,
    shutdown_deadline: Option<u64>,
    nodelay: NoDelay,
}

/// How accepted sockets get `TCP_NODELAY`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NoDelay {
    /// Set on the listening socket; the first accepted socket shows whether it is inherited.
    Unverified,
    /// Inherited from the listening socket (Linux): no `setsockopt` per connection.
    Inherited,
    /// Set on each accepted socket.
    PerConnection,
}

/// The bytes read in one loop turn, waiting to be processed together.
struct TurnInput {
    /// `INPUT_ARENA_BYTES`, allocated once; `arena[..filled]` holds the turn's reads.
    arena: Vec<u8>,
    filled: usize,
    pending: Vec<PendingInput>,
}

/// One connection's read: `arena[start..end]`.
struct PendingInput {
    key: usize,
    start: usize,
    end: usize,
}

impl TurnInput {
    fn new() -> TurnInput {
        TurnInput {
            arena: vec![0; INPUT_ARENA_BYTES],
            filled: 0,
            pending: Vec::new(),
        }
    }

    /// Room left for reads this turn.
    fn free(&self) -> usize {
        self.arena.len() - self.filled
    }
}

impl Reactor {
    /// `signals`: the read end of a pipe that becomes readable when the process should shut down.
    pub fn new(
        mut listener: TcpListener,
        signals: Option<UnixStream>,
        router: Router,
        chat: ChatCore,
        config: ReactorConfig,
        clock: Instant,
        unix_ms_at_zero: u64,
    ) -> io::Result<Reactor> {
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let mut signals = signals;
        if let Some(pipe) = signals.as_mut() {
            poll.registry()
                .register(pipe, SIGNALS, Interest::READABLE)?;
        }
        let now = clock.elapsed().as_millis() as u64;
        let nodelay = if set_nodelay_on_listener(&listener) {
            NoDelay::Unverified
        } else {
            NoDelay::PerConnection
        };
        Ok(Reactor {
            poll,
            listener: Some(listener),
            signals,
            conns: Slab::new(),
            turn_input: TurnInput::new(),
            read_again: Vec::new(),
            wheel: TimerWheel::new(TICK_MS, WHEEL_SLOTS, now),
            fired: Vec::new(),
            flush_queue: Vec::new(),
            output_pool: OutputPool::default(),
            chat,
            router,
            metrics: Metrics::default(),
            per_ip: HashMap::new(),
            config,
            clock,
            unix_ms_at_zero,
            accept_paused_until: None,
            shutdown_deadline: None,
            nodelay,
        })
    }

    fn now(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    /// Runs until shutdown completes.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout(self.now());
            if let Err(err) = self.poll.poll(&mut events, timeout) {
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
            self.metrics.loop_iterations += 1;
            let now = self.now();
            // Connections carried over from the last turn go first, with a fresh budget.
            let carried = std::mem::take(&mut self.read_again);
            for (key, peer_closed) in carried {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.read_carried = false;
                }
                self.read(key, peer_closed, now);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now),
                    SIGNALS => self.begin_shutdown(now),
                    Token(key) => {
                        if event.is_writable() {
                            self.flush(key, now);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.read(key, event.is_read_closed() || event.is_error(), now);
                        }
                    }
                }
            }
            self.process_turn_input(now);
            self.expire_timers(now);
            if self.accept_paused_until.is_some_and(|until| now >= until) {
                self.accept_paused_until = None;
                self.accept(now);
            }
            self.flush_queued(now);
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() || now >= deadline {
                    log_info!(
                        "shut down ({} connection(s) still open at exit)",
                        self.conns.len()
                    );
                    return Ok(());
                }
            }
        }
    }

    fn poll_timeout(&self, now: u64) -> Option<Duration> {
        if !self.read_again.is_empty() {
            return Some(Duration::ZERO);
        }
        let deadlines = [
            self.wheel.next_deadline(),
            self.chat.next_deadline(),
            self.accept_paused_until,
            self.shutdown_deadline,
        ];
        deadlines
            .into_iter()
            .flatten()
            .min()
            .map(|deadline| Duration::from_millis(deadline.saturating_sub(now)))
    }

    fn accept(&mut self, now: u64) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    self.metrics.accepted_total += 1;
                    self.admit(stream, peer, now);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if is_resource_exhaustion(&err) => {
                    log_warn!("accept paused for {ACCEPT_PAUSE_MS} ms: {err}");
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE_MS);
                    return;
                }
                // ECONNABORTED and the like concern one connection only.
                Err(err) => log_debug!("accept: {err}"),
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr, now: u64) {
        let ip = peer.ip();
        if self.conns.len() >= self.config.max_connections {
            self.metrics.rejected_total += 1;
            reject(
                stream,
                503,
                "server_full",
                "the server is at its connection limit",
            );
            return;
        }
        if self.config.max_conns_per_ip > 0 {
            let count = self.per_ip.entry(ip).or_default();
            if *count >= self.config.max_conns_per_ip {
                self.metrics.rejected_total += 1;
                reject(
                    stream,
                    429,
                    "too_many_connections",
                    "too many connections from your address",
                );
                return;
            }
            *count += 1;
        }
        match self.nodelay {
            NoDelay::Inherited => {}
            NoDelay::PerConnection => {
                let _ = stream.set_nodelay(true);
            }
            NoDelay::Unverified => {
                self.nodelay = if stream.nodelay().unwrap_or(false) {
                    NoDelay::Inherited
                } else {
                    let _ = stream.set_nodelay(true);
                    NoDelay::PerConnection
                };
            }
        }
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(err) = self
            .poll
            .registry()
            .register(&mut stream, Token(key), Interest::READABLE)
        {
            log_warn!("register: {err}");
            self.release_ip(ip);
            return;
        }
        let mut conn = Connection::new(stream, ip, now);
        conn.timer = Some(
            self.wheel
                .insert(now + self.config.handshake_timeout_ms, key),
        );
        entry.insert(conn);
    }

    fn release_ip(&mut self, ip: IpAddr) {
        if self.config.max_conns_per_ip > 0 {
            if let Some(count) = self.per_ip.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    self.per_ip.remove(&ip);
                }
            }
        }
    }

    /// Reads what the socket has, within the turn's budget. The bytes wait in the turn's input
    /// arena and are processed with every other connection's after the turn's events
    /// ([`Reactor::process_turn_input`]), except when the peer has closed: then they are
    /// processed at once, since whether to read on until EOF depends on what they say.
    fn read(&mut self, key: usize, peer_closed: bool, now: u64) {
        let turn = self.metrics.loop_iterations;
        match self.conns.get_mut(key) {
            // Already read this turn (a new readiness event for a connection that was carried
            // over): its budget is spent; it is read again next turn.
            Some(conn) if conn.read_turn == turn => {
                if !conn.read_carried {
                    conn.read_carried = true;
                    self.read_again.push((key, peer_closed));
                }
                return;
            }
            Some(conn) => {
                conn.read_turn = turn;
                conn.read_carried = false;
            }
            None => return,
        }
        if self.turn_input.free() < READ_BUFFER_BYTES {
            self.process_turn_input(now);
        }
        let mut arena = std::mem::take(&mut self.turn_input.arena);
        let start = self.turn_input.filled;
        let buffer = &mut arena[start..start + READ_BUFFER_BYTES];
        let mut reads = 0;
        while let Some(conn) = self.conns.get_mut(key) {
            if reads == READS_PER_TURN {
                conn.read_carried = true;
                self.read_again.push((key, peer_closed));
                break;
            }
            reads += 1;
            match conn.stream.read(buffer) {
                Ok(0) => {
                    self.remove(key, now);
                    break;
                }
                Ok(n) => {
                    conn.last_rx = now;
                    if conn.lingering {
                        continue;
                    }
                    if !peer_closed {
                        self.turn_input.pending.push(PendingInput {
                            key,
                            start,
                            end: start + n,
                        });
                        self.turn_input.filled = start + n;
                        if n == buffer.len() {
                            // More may wait: the next turn reads it.
                            conn.read_carried = true;
                            self.read_again.push((key, peer_closed));
                        }
                        break;
                    }
                    self.on_bytes(key, buffer, n, now);
                    // A short read drained the socket; edge-triggered readiness reports new data.
                    // A pending FIN does not re-arm it, so then read on until EOF, unless the
                    // closing handshake is done: then `flush` closes the socket, FIN or not.
                    let closed = || self.conns.get(key).is_some_and(closing_handshake_done);
                    if n < buffer.len() && closed() {
                        break;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.remove(key, now);
                    break;
                }
            }
        }
        self.turn_input.arena = arena;
    }

    /// Processes the bytes this turn's reads left in the input arena, connection by connection
    /// in the order they were read. Reading every ready socket first and then processing all
    /// their messages keeps the kernel's receive path and the chat path each hot in the caches
    /// for a run of connections, rather than alternating between them per connection.
    fn process_turn_input(&mut self, now: u64) {
        if self.turn_input.pending.is_empty() {
            return;
        }
        let turn = self.metrics.loop_iterations;
        let mut pending = std::mem::take(&mut self.turn_input.pending);
        let mut arena = std::mem::take(&mut self.turn_input.arena);
        for input in pending.drain(..) {
            // A connection removed after its read may have left its key to one accepted since;
            // that one has not been read this turn (a socket is read the turn after its
            // accept at the earliest), so its `read_turn` tells them apart.
            if self
                .conns
                .get(input.key)
                .is_some_and(|c| c.read_turn == turn)
            {
                let bytes = &mut arena[input.start..input.end];
                let n = bytes.len();
                self.on_bytes(input.key, bytes, n, now);
            }
        }
        self.turn_input = TurnInput {
            arena,
            filled: 0,
            pending,
        };
    }

    /// Feeds `buffer[..n]` (fresh bytes) to the connection, with any input it kept from before.
    fn on_bytes(&mut self, key: usize, buffer: &mut [u8], n: usize, now: u64) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.input.is_empty() {
            let consumed = self.process(key, &mut buffer[..n], now);
            if let Some(conn) = self.conns.get_mut(key) {
                if consumed < n {
                    conn.input.extend_from_slice(&buffer[consumed..n]);
                }
            }
        } else {
            let mut input = std::mem::take(&mut conn.input);
            input.extend_from_slice(&buffer[..n]);
            let consumed = self.process(key, &mut input, now);
            if let Some(conn) = self.conns.get_mut(key) {
                conn.keep_input(input, consumed);
            }
        }
    }

    /// Processes as much of `input` as forms complete requests or frames; returns how much.
    fn process(&mut self, key: usize, input: &mut [u8], now: u64) -> usize {
        let mut pos = 0;
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return input.len();
            };
            if conn.close_after_flush || conn.lingering {
                return input.len();
            }
            match conn.phase {
                Phase::Http => match self.process_http(key, &input[pos..], now) {
                    http_phase::Progress::Consumed(n) => {
                        pos += n;
                        // Pipelined requests from a client that never reads its responses must
                        // not grow the output without bound (each small request can cost a whole
                        // file): past the cap the connection is dropped, as on the WebSocket side.
                        let output_cap = self.config.output_limits.hard;
                        if self
                            .conns
                            .get(key)
                            .is_some_and(|c| c.backlog() > output_cap)
                        {
                            self.metrics.slow_consumers_closed += 1;
                            self.remove(key, now);
                            return input.len();
                        }
                    }
                    http_phase::Progress::NeedMore => return pos,
                    http_phase::Progress::Done => return input.len(),
                },
                Phase::WebSocket { .. } => match self.process_ws(key, &mut input[pos..], now) {
                    Some(0) => return pos,
                    Some(n) => pos += n,
                    None => return input.len(),
                },
            }
            if pos == input.len() {
                return pos;
            }
        }
    }

    /// Handles at most one data message. `Some(consumed)`, or `None` when the connection stops
    /// taking input.
    fn process_ws(&mut self, key: usize, input: &mut [u8], now: u64) -> Option<usize> {
        let conn = self.conns.get_mut(key)?;
        let Phase::WebSocket { ws, echo, .. } = &mut conn.phase else {
            return None;
        };
        let echo = *echo;
        let was_open = ws.state() == State::Open;
        let before = conn.output.len();
        // The peer is closing: the answering close frame goes into a spare buffer (handed back
        // below if nothing was written) rather than one allocated for a few bytes and freed.
        let close_next = frame::starts_with_close(input);
        if close_next {
            self.output_pool.lend_spare(&mut conn.output);
        }
        let poll = ws.poll(input, &mut conn.output);
        let state = ws.state();
        let consumed = poll.consumed;
        if close_next && conn.output.is_empty() && conn.output.capacity() > 0 {
            self.output_pool.recycle(conn.take_output());
        }
        if conn.output.len() != before {
            queue_flush(&mut self.flush_queue, conn, key);
        }
        // Pongs and echoes are written without the chat outbox's checks: a peer that sends but
        // never reads must not make its output grow without bound either.
        let output_cap = self
            .config
            .output_limits
            .hard
            .max(2 * self.config.max_message_bytes);
        if conn.backlog() > output_cap {
            self.metrics.slow_consumers_closed += 1;
            self.remove(key, now);
            return None;
        }
        if let Some(event) = poll.event {
            self.metrics.ws_messages_in += 1;
            self.on_message(key, event, echo, now);
        }
        if state == State::Open {
            return Some(consumed);
        }
        self.end_chat_session(key, now);
        let conn = self.conns.get_mut(key)?;
        if state == State::Closed {
            conn.close_after_flush = true;
            queue_flush(&mut self.flush_queue, conn, key);
            return None;
        }
        if was_open {
            // The frame layer failed the connection: the peer gets the linger time to answer.
            rearm(&mut self.wheel, conn, key, now + outbox::CLOSE_LINGER_MS);
        }
        Some(consumed)
    }

    fn on_message(&mut self, key: usize, event: Event<'_>, echo: bool, now: u64) {
        if echo {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            let payload_len = match &event {
                Event::Text(text) => text.len(),
                Event::Binary(data) => data.len(),
            };
            let needed = frame::MAX_HEADER_LEN + payload_len;
            self.output_pool.supply(&mut conn.output, needed);
            match &event {
                Event::Text(text) => {
                    self.metrics.ws_bytes_in += text.len() as u64;
                    frame::write_text(&mut conn.output, text);
                }
                Event::Binary(data) => {
                    self.metrics.ws_bytes_in += data.len() as u64;
                    frame::write_binary(&mut conn.output, data);
                }
            }
            self.metrics.ws_messages_out += 1;
            queue_flush(&mut self.flush_queue, conn, key);
            return;
        }
        let mut outbox = outbox!(self, now);
        match event {
            Event::Text(text) => {
                outbox.metrics.ws_bytes_in += text.len() as u64;
                let text: Cow<'_, str> = text;
                self.chat.text(key, &text, now, &mut outbox);
            }
            Event::Binary(data) => {
                outbox.metrics.ws_bytes_in += data.len() as u64;
                self.chat.binary(key, &data, now, &mut outbox);
            }
        }
    }

    /// Tells the chat core a session ended (once), as soon as its WebSocket stops being open.
    fn end_chat_session(&mut self, key: usize, now: u64) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Phase::WebSocket {
            echo: false,
            chat_open,
            ..
        } = &mut conn.phase
        {
            if *chat_open {
                *chat_open = false;
                let mut outbox = outbox!(self, now);
                self.chat.closed(key, now, &mut outbox);
            }
        }
    }

    /// Writes pending output once; on a short write, waits for writability.
    fn flush(&mut self, key: usize, now: u64) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.queued_for_flush = false;
        while conn.backlog() > 0 {
            match conn.stream.write(&conn.output[conn.sent..]) {
                Ok(0) => {
                    self.remove(key, now);
                    return;
                }
                Ok(n) => conn.advance_output(n),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.remove(key, now);
                    return;
                }
            }
        }
        let pending = conn.backlog() > 0;
        if !pending && conn.output.capacity() > 0 {
            // Drained: the buffer goes back to the pool, so an idle connection holds none.
            self.output_pool.recycle(conn.take_output());
        }
        if pending != conn.writable_interest {
            let interest = if pending {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(&mut conn.stream, Token(key), interest)
                .is_err()
            {
                self.remove(key, now);
                return;
            }
            conn.writable_interest = pending;
        }
        if !pending && conn.close_after_flush && !conn.lingering {
            if closing_handshake_done(conn) && !conn.read_carried {
                // RFC 6455 7.1.1: once close frames went both ways the server closes the TCP
                // connection first. The peer sends nothing after its close frame and its input
                // was read to the end, so closing now cannot reset our last bytes; it saves the
                // half-close, the read of the peer's FIN and the linger timer.
                self.remove(key, now);
                return;
            }
            // Half-close and keep reading until the peer closes, so it sees our last bytes
            // instead of a reset caused by unread input.
            conn.lingering = true;
            let _ = conn.stream.shutdown(Shutdown::Write);
            rearm(&mut self.wheel, conn, key, now + outbox::CLOSE_LINGER_MS);
        }
    }

    fn flush_queued(&mut self, now: u64) {
        let mut queue = std::mem::take(&mut self.flush_queue);
        for key in queue.drain(..) {
            match self.conns.get(key) {
                // Waiting for writability: a write now would only fail again.
                Some(conn) if conn.writable_interest => {
                    if let Some(conn) = self.conns.get_mut(key) {
                        conn.queued_for_flush = false;
                    }
                }
                Some(_) => self.flush(key, now),
                None => {}
            }
        }
        // Keep the allocation for the next turn.
        if self.flush_queue.is_empty() {
            self.flush_queue = queue;
        } else {
            self.flush_queue.append(&mut queue);
        }
    }

    fn expire_timers(&mut self, now: u64) {
        let mut fired = std::mem::take(&mut self.fired);
        self.wheel.expire(now, &mut fired);
        for key in fired.drain(..) {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.timer = None;
                self.on_connection_timer(key, now);
            }
        }
        self.fired = fired;
        let mut outbox = outbox!(self, now);
        self.chat.expire(now, &mut outbox);
    }

    fn on_connection_timer(&mut self, key: usize, now: u64) {
        let ping_interval = self.config.ping_interval_ms;
        let idle_timeout = self.config.idle_timeout_ms;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.lingering || conn.close_after_flush {
            self.remove(key, now);
            return;
        }
        let Phase::WebSocket { ws, .. } = &mut conn.phase else {
            // A request head not complete in time (slowloris), or an idle keep-alive connection.
            self.remove(key, now);
            return;
        };
        if ws.state() != State::Open {
            // Our close frame went unanswered.
            self.remove(key, now);
            return;
        }
        let silent = now.saturating_sub(conn.last_rx);
        if silent >= idle_timeout {
            log_debug!("connection {key} idle for {silent} ms: closing");
            start_close(
                &mut self.wheel,
                &mut self.flush_queue,
                conn,
                key,
                1001,
                "idle timeout",
                now,
            );
            self.end_chat_session(key, now);
            return;
        }
        let next = if silent >= ping_interval {
            frame::write_ping(&mut conn.output, b"");
            queue_flush(&mut self.flush_queue, conn, key);
            (conn.last_rx + idle_timeout).min(now + ping_interval)
        } else {
            conn.last_rx + ping_interval
        };
        rearm(&mut self.wheel, conn, key, next);
    }

    /// Drops a connection: tells the chat core, cancels its timer, closes the socket.
    fn remove(&mut self, key: usize, now: u64) {
        self.end_chat_session(key, now);
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        if let Some(timer) = conn.timer.take() {
            self.wheel.cancel(timer);
        }
        if let Phase::WebSocket { ws, .. } = &conn.phase {
            self.metrics.count_close(ws.close_code().unwrap_or(1006));
        }
        self.output_pool.recycle(conn.take_output());
        // Closing the socket (below, on drop) removes it from epoll: no `epoll_ctl` needed.
        let ip = conn.ip;
        drop(conn);
        self.release_ip(ip);
    }

    /// Stops accepting, sends 1001 to every WebSocket, and lets [`Reactor::run`] wait a bounded
    /// time for the close replies.
    fn begin_shutdown(&mut self, now: u64) {
        if let Some(pipe) = self.signals.as_mut() {
            let mut drain = [0u8; 64];
            while matches!(pipe.read(&mut drain), Ok(n) if n > 0) {}
        }
        if self.shutdown_deadline.is_some() {
            return;
        }
        log_info!("shutting down: closing {} connection(s)", self.conns.len());
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.shutdown_deadline = Some(now + self.config.shutdown_grace_ms);
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            match conn.phase {
                Phase::WebSocket { .. } => {
                    start_close(
                        &mut self.wheel,
                        &mut self.flush_queue,
                        conn,
                        key,
                        1001,
                        "server shutting down",
                        now,
                    );
                    self.end_chat_session(key, now);
                }
                Phase::Http if conn.backlog() == 0 && conn.input.is_empty() => {
                    self.remove(key, now)
                }
                Phase::Http => conn.close_after_flush = true,
            }
        }
    }

    fn gauges(&self, now: u64) -> Gauges {
        let stats = self.chat.stats();
        Gauges {
            open_connections: self.conns.len(),
            websocket_connections: self
                .conns
                .iter()
                .filter(|(_, c)| matches!(c.phase, Phase::WebSocket { .. }))
                .count(),
            timers_pending: self.wheel.len() + stats.timers,
            chat_sessions: stats.sessions,
            rooms: stats.rooms,
            uptime_seconds: now / 1000,
        }
    }
}

/// Sets `TCP_NODELAY` on the listening socket, which Linux copies to every accepted socket: one
/// `setsockopt` instead of one per connection. std offers the option on streams only, so it is set
/// through a stream handle on a duplicate of the listener's descriptor (options belong to the
/// socket, not the descriptor); the duplicate is closed right after.
fn set_nodelay_on_listener(listener: &TcpListener) -> bool {
    use std::os::fd::AsFd;
    listener
        .as_fd()
        .try_clone_to_owned()
        .map(std::net::TcpStream::from)
        .and_then(|socket| socket.set_nodelay(true))
        .is_ok()
}

fn is_resource_exhaustion(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Answers a connection we will not serve with a short JSON error, best effort, and closes it.
fn reject(mut stream: TcpStream, status: u16, code: &str, message: &str) {
    let mut out = Vec::with_capacity(256);
    crate::http::response::Response::error(status, code, message).write_to(&mut out, false, false);
    let _ = stream.write(&out);
}

/// Whether close frames went both ways on this WebSocket.
fn closing_handshake_done(conn: &Connection) -> bool {
    matches!(&conn.phase, Phase::WebSocket { ws, .. } if ws.state() == State::Closed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::auth::{AuthConfig, Authenticator, KeyConfig};
    use crate::chat::ChatConfig;
    use crate::http::router::{RouterConfig, StaticSource};
    use std::net::TcpStream as StdTcpStream;
    use std::os::unix::net::UnixStream as StdUnixStream;

    /// Runs a reactor with `/echo` on a free port; writing to the returned stream shuts it down.
    fn start_echo_reactor() -> (SocketAddr, StdUnixStream, std::thread::JoinHandle<()>) {
        let (reader, writer) = StdUnixStream::pair().unwrap();
        reader.set_nonblocking(true).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let thread = std::thread::spawn(move || {
            let auth = Authenticator::new(AuthConfig {
                key: KeyConfig::Hs256(b"reactor-test".to_vec()),
                issuer: None,
                audience: None,
            })
            .unwrap();
            let router = Router::new(RouterConfig {
                static_source: StaticSource::Embedded,
                allowed_origins: Vec::new(),
                echo: true,
            });
            let config = ReactorConfig {
                max_connections: 64,
                max_message_bytes: 64 * 1024,
                handshake_timeout_ms: 5_000,
                ping_interval_ms: 25_000,
                idle_timeout_ms: 60_000,
                max_conns_per_ip: 0,
                dev_mode: false,
                typing_timeout_ms: 2_000,
                shutdown_grace_ms: 100,
                output_limits: OutputLimits::default(),
            };
            let chat = ChatCore::new(ChatConfig::default(), auth, 0);
            let signals = Some(UnixStream::from_std(reader));
            let clock = Instant::now();
            let reactor = Reactor::new(listener, signals, router, chat, config, clock, 0).unwrap();
            reactor.run().unwrap();
        });
        (addr, writer, thread)
    }

    fn open_connections(addr: SocketAddr) -> String {
        let mut stream = StdTcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let at = response.find("\"connections\":").unwrap();
        response[at..].chars().take_while(|c| *c != ',').collect()
    }

    #[test]
    fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(set_nodelay_on_listener(&listener));
        let addr = listener.local_addr().unwrap();
        let _client = StdTcpStream::connect(addr).unwrap();
        let accepted = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(err) => panic!("accept: {err}"),
            }
        };
        assert!(accepted.nodelay().unwrap());
    }

    #[test]
    fn the_socket_closes_as_soon_as_the_closing_handshake_is_done() {
        let (addr, mut shutdown, thread) = start_echo_reactor();
        let mut client = StdTcpStream::connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client
            .write_all(
                b"GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            client.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101 "));
        // A masked close frame, code 1000 (mask 0: the payload goes as is).
        client
            .write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8])
            .unwrap();
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).unwrap();
        assert_eq!(reply, [0x88, 0x02, 0x03, 0xe8]);
        // The client still holds its socket open; the server has already let go of it (a
        // linger would keep it for the peer's FIN), so only the health check's connection is
        // left.
        assert_eq!(open_connections(addr), "\"connections\":1");
        shutdown.write_all(b"x").unwrap();
        thread.join().unwrap();
    }
}
