//! One mio loop that drives thousands of client connections (never a thread per connection): it
//! opens sockets from a spread of 127.0.0.x source addresses, performs the upgrade, waits for
//! `ready` when the target is the chat server, decodes frames and hands text to a [`Workload`].
//! Everything a workload sends during one loop turn leaves in one `write` per connection, the same
//! courtesy the server is asked to extend.

use crate::wire::{self, UpgradeResponse};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;
use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

/// Where the generator connects and what handshake the server speaks.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddrV4,
    /// Path of the WebSocket endpoint, e.g. `/ws`.
    pub path: String,
    /// The chat server sends `ready` after auth; the echo server sends nothing until spoken to.
    pub waits_for_ready: bool,
}

/// Why a connection left the loop without the workload closing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    ConnectFailed,
    /// The upgrade was answered with this HTTP status (e.g. 401).
    Refused(u16),
    /// The server sent a close frame with this code.
    ClosedByServer(u16),
    /// EOF or a socket error without a close frame.
    Reset,
    /// The server sent bytes that are not valid HTTP or WebSocket.
    ProtocolError,
}

/// How a connection is doing; `Open` is when the workload gets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Upgrading,
    AwaitingReady,
    Open,
}

pub struct Connection {
    stream: TcpStream,
    phase: Phase,
    /// Received bytes not yet consumed: a partial HTTP head or a partial frame.
    unconsumed: Vec<u8>,
    outgoing: Vec<u8>,
    outgoing_sent: usize,
    queued_for_flush: bool,
    /// Fragments of a text message the server split over several frames.
    fragments: Vec<u8>,
    pub opened_at: Instant,
    pub user: usize,
    /// Send times (or scheduled times) of requests still waiting for their answer, oldest first.
    pub awaiting: VecDeque<Instant>,
    /// Free for the workload (e.g. the next message id of this connection).
    pub counter: u64,
}

impl Connection {
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }
}

#[derive(Default, Debug, Clone, Copy)]
pub struct LossCounts {
    pub connect_failed: u64,
    pub refused: u64,
    pub closed_by_server: u64,
    pub reset: u64,
    pub protocol_error: u64,
    pub last_close_code: Option<u16>,
    pub last_refusal_status: Option<u16>,
}

impl LossCounts {
    pub fn total(&self) -> u64 {
        self.connect_failed
            + self.refused
            + self.closed_by_server
            + self.reset
            + self.protocol_error
    }

    fn record(&mut self, loss: Loss) {
        match loss {
            Loss::ConnectFailed => self.connect_failed += 1,
            Loss::Refused(status) => {
                self.refused += 1;
                self.last_refusal_status = Some(status);
            }
            Loss::ClosedByServer(code) => {
                self.closed_by_server += 1;
                self.last_close_code = Some(code);
            }
            Loss::Reset => self.reset += 1,
            Loss::ProtocolError => self.protocol_error += 1,
        }
    }
}

/// The connections and what workloads may do with them.
pub struct Io {
    registry: Registry,
    pub conns: Slab<Connection>,
    flush_queue: Vec<usize>,
    target: Target,
    host_header: String,
    /// One token per user index; a connection of user `u` authenticates with `tokens[u]`.
    tokens: Vec<String>,
    source_addrs: Vec<Ipv4Addr>,
    next_source: usize,
    mask_seed: u64,
    pub losses: LossCounts,
}

impl Io {
    /// Starts a non-blocking connect for `user` from the next source address; the workload hears
    /// `on_open` once the upgrade (and `ready`) completed, or `on_lost`.
    pub fn connect(&mut self, user: usize, now: Instant) -> io::Result<usize> {
        let source = self.source_addrs[self.next_source % self.source_addrs.len()];
        self.next_source = self.next_source.wrapping_add(1);
        let mut stream = connect_from(source, self.target.addr)?;
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        self.registry.register(
            &mut stream,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        entry.insert(Connection {
            stream,
            phase: Phase::Connecting,
            unconsumed: Vec::new(),
            outgoing: Vec::new(),
            outgoing_sent: 0,
            queued_for_flush: false,
            fragments: Vec::new(),
            opened_at: now,
            user,
            awaiting: VecDeque::new(),
            counter: 0,
        });
        Ok(key)
    }

    /// Queues one masked text frame; it leaves with everything else queued this loop turn.
    pub fn send_text(&mut self, key: usize, payload: &[u8]) {
        let mask = self.next_mask();
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        wire::write_masked_frame(&mut conn.outgoing, wire::OPCODE_TEXT, payload, mask);
        if !conn.queued_for_flush {
            conn.queued_for_flush = true;
            self.flush_queue.push(key);
        }
    }

    /// Sends a close frame (1000) and drops the socket without waiting for the server's answer,
    /// as a browser tab being closed does.
    pub fn close(&mut self, key: usize) {
        let mask = self.next_mask();
        if let Some(conn) = self.conns.get_mut(key) {
            if conn.phase == Phase::Open {
                wire::write_masked_frame(
                    &mut conn.outgoing,
                    wire::OPCODE_CLOSE,
                    &1000u16.to_be_bytes(),
                    mask,
                );
                let _ = flush_connection(conn);
            }
        }
        self.drop_connection(key);
    }

    pub fn close_all(&mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.drop_connection(key);
        }
    }

    fn drop_connection(&mut self, key: usize) {
        if self.conns.contains(key) {
            let mut conn = self.conns.remove(key);
            let _ = self.registry.deregister(&mut conn.stream);
        }
    }

    fn next_mask(&mut self) -> [u8; 4] {
        // xorshift64: masks only need to vary, not to be unpredictable, for a load generator.
        let mut seed = self.mask_seed;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        self.mask_seed = seed;
        (seed as u32).to_le_bytes()
    }

    fn flush_queued(&mut self) {
        for &key in &self.flush_queue {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.queued_for_flush = false;
                // A failed write means the peer is gone; the read side reports it as a loss.
                let _ = flush_connection(conn);
            }
        }
        self.flush_queue.clear();
    }
}

/// Writes what is queued until done or the socket is full; the rest leaves on the next writable
/// event.
fn flush_connection(conn: &mut Connection) -> io::Result<()> {
    while conn.outgoing_sent < conn.outgoing.len() {
        match conn.stream.write(&conn.outgoing[conn.outgoing_sent..]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(written) => conn.outgoing_sent += written,
            Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    conn.outgoing.clear();
    conn.outgoing_sent = 0;
    Ok(())
}

/// A socket bound to `source` (so 19,000 connections do not exhaust one address's ~28k ephemeral
/// ports, and per-source-address limits are exercised) with a connect already in progress.
fn connect_from(source: Ipv4Addr, destination: SocketAddrV4) -> io::Result<TcpStream> {
    // SAFETY: plain socket syscalls on a descriptor this function owns until it is handed to
    // `std::net::TcpStream`, which then closes it on drop; every return value is checked.
    unsafe {
        let fd = libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let stream = std::net::TcpStream::from_raw_fd(fd);
        // Let the kernel pick the port at connect time, per destination, instead of reserving
        // one at bind time: churn would otherwise run out of ports on a single source address.
        let enable: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            std::ptr::addr_of!(enable).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let bind_addr = sockaddr_in(SocketAddrV4::new(source, 0));
        if libc::bind(
            fd,
            std::ptr::addr_of!(bind_addr).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ) < 0
        {
            return Err(io::Error::last_os_error());
        }
        let peer = sockaddr_in(destination);
        if libc::connect(
            fd,
            std::ptr::addr_of!(peer).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ) < 0
        {
            let error = io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(error);
            }
        }
        stream.set_nodelay(true)?;
        Ok(TcpStream::from_std(stream))
    }
}

fn sockaddr_in(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// The behaviour of one scenario, called from the loop.
pub trait Workload {
    /// The connection completed its upgrade and, against the chat server, received `ready`.
    fn on_open(&mut self, io: &mut Io, key: usize, now: Instant);
    /// One complete text message from the server (not `ready`).
    fn on_text(&mut self, io: &mut Io, key: usize, text: &[u8], now: Instant);
    /// The connection is gone for `loss`; the slab entry is already removed. `was_open` tells
    /// whether the workload had been given it with `on_open`.
    fn on_lost(&mut self, _io: &mut Io, _key: usize, _loss: Loss, _was_open: bool, _now: Instant) {}
    /// Called once per loop turn before waiting: start connections, send on a schedule, change
    /// phase.
    fn on_turn(&mut self, _io: &mut Io, _now: Instant) {}
    /// When the loop must wake up even if no socket does.
    fn next_wakeup(&self) -> Option<Instant> {
        None
    }
    fn finished(&self, io: &Io, now: Instant) -> bool;
}

pub struct Driver {
    poll: Poll,
    events: Events,
    read_buffer: Vec<u8>,
    wake_timer: WakeTimer,
    pub io: Io,
}

/// The token of the wake-up timer; connection tokens are slab keys, far below it.
const WAKE_TIMER: Token = Token(usize::MAX);

/// A timerfd in the poll set for wake-ups closer than epoll's millisecond timeout can express.
/// The open-loop scenario sends every 50 µs at 20k msgs/s; spinning instead would get the
/// generator descheduled for tens of milliseconds on a shared machine, which then shows up as
/// server latency.
struct WakeTimer {
    fd: std::os::fd::OwnedFd,
    armed_for: Option<Instant>,
}

impl WakeTimer {
    fn new(poll: &Poll) -> io::Result<Self> {
        use std::os::fd::{AsRawFd, OwnedFd};
        // SAFETY: timerfd_create returns a new descriptor (checked) that OwnedFd then owns.
        let fd = unsafe {
            let raw = libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            );
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            OwnedFd::from_raw_fd(raw)
        };
        // Added to mio's epoll set directly (mio's own `SourceFd` needs a feature the crate does
        // not enable); mio reports it like any source, with `WAKE_TIMER` as its token.
        let mut interest = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: WAKE_TIMER.0 as u64,
        };
        // SAFETY: both descriptors are open; `interest` outlives the call.
        if unsafe {
            libc::epoll_ctl(
                poll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut interest,
            )
        } != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(WakeTimer {
            fd,
            armed_for: None,
        })
    }

    /// Arms the timer to fire `after` from now, for the wake-up at `at`.
    fn arm(&mut self, at: Instant, after: Duration) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        if self.armed_for == Some(at) {
            return Ok(());
        }
        // A zero it_value would disarm the timer; one nanosecond fires at once.
        let after = after.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                tv_nsec: libc::c_long::from(after.subsec_nanos() as i32),
            },
        };
        // SAFETY: the descriptor is ours and open; `spec` outlives the call.
        if unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) }
            != 0
        {
            return Err(io::Error::last_os_error());
        }
        self.armed_for = Some(at);
        Ok(())
    }

    /// Consumes the expiration so the next one is a fresh edge.
    fn acknowledge(&mut self) {
        use std::os::fd::AsRawFd;
        let mut expirations = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a buffer of 8 bytes from our own descriptor.
        unsafe {
            libc::read(self.fd.as_raw_fd(), expirations.as_mut_ptr().cast(), 8);
        }
        self.armed_for = None;
    }
}

/// Bytes read per `read` call; a short read means the socket is drained (epoll(7) allows that
/// conclusion for stream sockets), which saves one `read` returning EAGAIN per event.
const READ_CHUNK: usize = 64 * 1024;

impl Driver {
    pub fn new(target: Target, tokens: Vec<String>, source_addr_count: u8) -> io::Result<Self> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let source_addrs = (1..=source_addr_count.max(1))
            .map(|last| Ipv4Addr::new(127, 0, 0, last))
            .collect();
        let host_header = target.addr.to_string();
        let wake_timer = WakeTimer::new(&poll)?;
        Ok(Driver {
            poll,
            events: Events::with_capacity(4096),
            read_buffer: Vec::with_capacity(READ_CHUNK * 2),
            wake_timer,
            io: Io {
                registry,
                conns: Slab::with_capacity(1024),
                flush_queue: Vec::new(),
                target,
                host_header,
                tokens,
                source_addrs,
                next_source: 0,
                mask_seed: 0x9E37_79B9_7F4A_7C15,
                losses: LossCounts::default(),
            },
        })
    }

    /// Runs the loop until the workload is finished or `deadline` passes (a safety net: every
    /// scenario is bounded in time even when the server stops answering).
    pub fn run(&mut self, workload: &mut dyn Workload, deadline: Instant) -> io::Result<()> {
        loop {
            let now = Instant::now();
            workload.on_turn(&mut self.io, now);
            self.io.flush_queued();
            if workload.finished(&self.io, now) || now >= deadline {
                return Ok(());
            }
            let wake_at = workload
                .next_wakeup()
                .unwrap_or(now + Duration::from_millis(50))
                .min(deadline);
            let remaining = wake_at.saturating_duration_since(now);
            let timeout = if remaining < PRECISE_WAKE_BELOW {
                self.wake_timer.arm(wake_at, remaining)?;
                // The timer wakes the loop; this is only a safety net.
                PRECISE_WAKE_BELOW
            } else {
                // epoll rounds up to whole milliseconds; at worst this wakes a little late for
                // an edge that is far away anyway.
                remaining
            };
            match self.poll.poll(&mut self.events, Some(timeout)) {
                Ok(()) => {}
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
            let now = Instant::now();
            if self.events.iter().any(|event| event.token() == WAKE_TIMER) {
                self.wake_timer.acknowledge();
            }
            let ready: Vec<(usize, bool, bool, bool)> = self
                .events
                .iter()
                .filter(|event| event.token() != WAKE_TIMER)
                .map(|event| {
                    (
                        event.token().0,
                        event.is_readable() || event.is_read_closed() || event.is_error(),
                        event.is_writable(),
                        event.is_error(),
                    )
                })
                .collect();
            for (key, readable, writable, errored) in ready {
                self.handle_event(workload, key, readable, writable, errored, now);
            }
        }
    }

    fn handle_event(
        &mut self,
        workload: &mut dyn Workload,
        key: usize,
        readable: bool,
        writable: bool,
        errored: bool,
        now: Instant,
    ) {
        let Some(conn) = self.io.conns.get_mut(key) else {
            return;
        };
        if conn.phase == Phase::Connecting {
            if errored {
                return self.lose(workload, key, Loss::ConnectFailed, now);
            }
            if !writable && !readable {
                return;
            }
            match conn.stream.take_error() {
                Ok(None) => {}
                _ => return self.lose(workload, key, Loss::ConnectFailed, now),
            }
            match conn.stream.peer_addr() {
                Ok(_) => {}
                Err(error) if error.kind() == ErrorKind::NotConnected => return,
                Err(_) => return self.lose(workload, key, Loss::ConnectFailed, now),
            }
            conn.phase = Phase::Upgrading;
            let path = format!(
                "{}?token={}",
                self.io.target.path, self.io.tokens[conn.user]
            );
            wire::write_upgrade_request(&mut conn.outgoing, &self.io.host_header, &path);
        }
        if writable && conn.outgoing_sent < conn.outgoing.len() && flush_connection(conn).is_err() {
            return self.lose(workload, key, Loss::Reset, now);
        }
        if readable {
            self.read_and_dispatch(workload, key, now);
        }
    }

    fn read_and_dispatch(&mut self, workload: &mut dyn Workload, key: usize, now: Instant) {
        let buffer = &mut self.read_buffer;
        buffer.clear();
        let Some(conn) = self.io.conns.get_mut(key) else {
            return;
        };
        buffer.extend_from_slice(&conn.unconsumed);
        conn.unconsumed.clear();
        let mut eof = false;
        loop {
            let filled = buffer.len();
            buffer.resize(filled + READ_CHUNK, 0);
            match conn.stream.read(&mut buffer[filled..]) {
                Ok(0) => {
                    buffer.truncate(filled);
                    eof = true;
                    break;
                }
                Ok(read) => {
                    buffer.truncate(filled + read);
                    if read < READ_CHUNK {
                        break;
                    }
                }
                Err(error) => {
                    buffer.truncate(filled);
                    match error.kind() {
                        ErrorKind::WouldBlock => break,
                        ErrorKind::Interrupted => continue,
                        _ => {
                            eof = true;
                            break;
                        }
                    }
                }
            }
        }
        let received = std::mem::take(&mut self.read_buffer);
        let outcome = self.dispatch(workload, key, &received, now);
        self.read_buffer = received;
        match outcome {
            Dispatch::Continue if eof => self.lose(workload, key, Loss::Reset, now),
            Dispatch::Continue | Dispatch::Gone => {}
            Dispatch::Lost(loss) => self.lose(workload, key, loss, now),
        }
    }

    /// Consumes `received` for connection `key`: the HTTP head while upgrading, frames after.
    fn dispatch(
        &mut self,
        workload: &mut dyn Workload,
        key: usize,
        received: &[u8],
        now: Instant,
    ) -> Dispatch {
        let mut position = 0;
        loop {
            let Some(conn) = self.io.conns.get_mut(key) else {
                return Dispatch::Gone;
            };
            let rest = &received[position..];
            if conn.phase == Phase::Upgrading {
                match wire::parse_upgrade_response(rest) {
                    UpgradeResponse::Partial => {
                        conn.unconsumed.extend_from_slice(rest);
                        return Dispatch::Continue;
                    }
                    UpgradeResponse::Refused { status } => {
                        return Dispatch::Lost(Loss::Refused(status))
                    }
                    UpgradeResponse::Malformed => return Dispatch::Lost(Loss::ProtocolError),
                    UpgradeResponse::Accepted { head_len } => {
                        position += head_len;
                        if self.io.target.waits_for_ready {
                            conn.phase = Phase::AwaitingReady;
                        } else {
                            conn.phase = Phase::Open;
                            workload.on_open(&mut self.io, key, now);
                        }
                        continue;
                    }
                }
            }
            let (frame, used) = match wire::decode_frame(rest) {
                Ok(Some(decoded)) => decoded,
                Ok(None) => {
                    conn.unconsumed.extend_from_slice(rest);
                    return Dispatch::Continue;
                }
                Err(_) => return Dispatch::Lost(Loss::ProtocolError),
            };
            position += used;
            match frame.opcode {
                wire::OPCODE_TEXT | wire::OPCODE_CONTINUATION => {
                    if frame.fin && conn.fragments.is_empty() {
                        self.deliver_text(workload, key, frame.payload, now);
                    } else {
                        conn.fragments.extend_from_slice(frame.payload);
                        if frame.fin {
                            let whole = std::mem::take(&mut conn.fragments);
                            self.deliver_text(workload, key, &whole, now);
                        }
                    }
                }
                wire::OPCODE_CLOSE => {
                    return Dispatch::Lost(Loss::ClosedByServer(wire::close_code(frame.payload)))
                }
                wire::OPCODE_PING => {
                    let mask = self.io.next_mask();
                    if let Some(conn) = self.io.conns.get_mut(key) {
                        wire::write_masked_frame(
                            &mut conn.outgoing,
                            wire::OPCODE_PONG,
                            frame.payload,
                            mask,
                        );
                        if !conn.queued_for_flush {
                            conn.queued_for_flush = true;
                            self.io.flush_queue.push(key);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn deliver_text(&mut self, workload: &mut dyn Workload, key: usize, text: &[u8], now: Instant) {
        let Some(conn) = self.io.conns.get_mut(key) else {
            return;
        };
        if conn.phase == Phase::AwaitingReady && wire::string_field(text, "type") == Some(b"ready")
        {
            conn.phase = Phase::Open;
            workload.on_open(&mut self.io, key, now);
        } else {
            workload.on_text(&mut self.io, key, text, now);
        }
    }

    fn lose(&mut self, workload: &mut dyn Workload, key: usize, loss: Loss, now: Instant) {
        let was_open = self.io.conns.get(key).is_some_and(Connection::is_open);
        self.io.drop_connection(key);
        self.io.losses.record(loss);
        workload.on_lost(&mut self.io, key, loss, was_open, now);
    }
}

enum Dispatch {
    Continue,
    /// The workload closed the connection while handling a message.
    Gone,
    Lost(Loss),
}

/// Wake-ups closer than this use the timerfd; farther ones the epoll timeout.
const PRECISE_WAKE_BELOW: Duration = Duration::from_millis(5);
