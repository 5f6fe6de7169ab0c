//! Opens a population of connections with a bounded number of handshakes in flight, the way a
//! fleet of clients reconnecting would, and times each from `connect()` to being usable.

use crate::driver::Io;
use crate::stats::Latencies;
use std::time::Instant;

pub struct Dialer {
    users: std::ops::Range<usize>,
    next_user: usize,
    concurrency: usize,
    in_progress: usize,
    pub opened: usize,
    pub failed: usize,
    pub first_connect_at: Option<Instant>,
    pub last_open_at: Option<Instant>,
    pub connect_latency: Latencies,
}

impl Dialer {
    /// Will connect users `users.start..users.end`, one connection each.
    pub fn new(users: std::ops::Range<usize>, concurrency: usize) -> Self {
        Dialer {
            next_user: users.start,
            users,
            concurrency: concurrency.max(1),
            in_progress: 0,
            opened: 0,
            failed: 0,
            first_connect_at: None,
            last_open_at: None,
            connect_latency: Latencies::default(),
        }
    }

    /// Starts connects until `concurrency` are in flight or everyone has been dialled.
    pub fn pump(&mut self, io: &mut Io, now: Instant) {
        while self.in_progress < self.concurrency && self.next_user < self.users.end {
            let user = self.next_user;
            self.next_user += 1;
            self.first_connect_at.get_or_insert(now);
            match io.connect(user, now) {
                Ok(_) => self.in_progress += 1,
                Err(_) => self.failed += 1,
            }
        }
    }

    pub fn on_open(&mut self, io: &Io, key: usize, now: Instant) {
        self.in_progress = self.in_progress.saturating_sub(1);
        self.opened += 1;
        self.last_open_at = Some(now);
        if let Some(conn) = io.conns.get(key) {
            self.connect_latency
                .record(now.duration_since(conn.opened_at));
        }
    }

    /// A connection that was still dialling failed; open ones are the workload's business.
    pub fn on_failed_while_dialling(&mut self) {
        self.in_progress = self.in_progress.saturating_sub(1);
        self.failed += 1;
    }

    pub fn is_settled(&self) -> bool {
        self.next_user >= self.users.end && self.in_progress == 0
    }

    /// Connections opened per second, from the first `connect()` to the last connection usable.
    pub fn open_rate(&self) -> f64 {
        match (self.first_connect_at, self.last_open_at) {
            (Some(first), Some(last)) if last > first => {
                self.opened as f64 / last.duration_since(first).as_secs_f64()
            }
            _ => f64::NAN,
        }
    }
}
