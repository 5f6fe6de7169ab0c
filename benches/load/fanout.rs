//! `fanout`: M members in one shared room; S of them post, each keeping W posts outstanding. A post
//! is done when every other member has it (and its sender has the `emotion`), which releases the
//! sender's next post. Counts deliveries (room `message` events received) and their latency from
//! the post's send time.

use crate::dialer::Dialer;
use crate::driver::{Io, Loss, Workload};
use crate::measure::{chat_message, Figures, Probe, Window};
use crate::stats::Latencies;
use crate::wire;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const ROOM: &str = "bench-fanout";

pub struct FanoutParams {
    pub members: usize,
    pub senders: usize,
    pub in_flight: usize,
    pub connect_concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

struct Post {
    sender: usize,
    sent_at: Instant,
    deliveries_missing: usize,
    acknowledged: bool,
}

pub struct Fanout {
    dialer: Dialer,
    senders: usize,
    in_flight: usize,
    probe: Probe,
    warmup: Duration,
    duration: Duration,
    member_keys: Vec<usize>,
    joined: usize,
    joined_all_at: Option<Instant>,
    setup_started: Instant,
    window: Option<Window>,
    posts: HashMap<u64, Post>,
    next_post: u64,
    latencies: Latencies,
    deliveries: u64,
    posts_completed: u64,
    other_frames: u64,
    error_frames: u64,
    lost_members: u64,
    first_error: Option<String>,
}

impl Fanout {
    pub fn new(params: &FanoutParams, probe: Probe, now: Instant) -> Self {
        Fanout {
            dialer: Dialer::new(0..params.members.max(2), params.connect_concurrency),
            senders: params.senders.clamp(1, params.members.max(2)),
            in_flight: params.in_flight.max(1),
            probe,
            warmup: params.warmup,
            duration: params.duration,
            member_keys: Vec::with_capacity(params.members),
            joined: 0,
            joined_all_at: None,
            setup_started: now,
            window: None,
            posts: HashMap::new(),
            next_post: 0,
            latencies: Latencies::default(),
            deliveries: 0,
            posts_completed: 0,
            other_frames: 0,
            error_frames: 0,
            lost_members: 0,
            first_error: None,
        }
    }

    fn post(&mut self, io: &mut Io, sender: usize, now: Instant) {
        self.next_post += 1;
        let id = self.next_post;
        let message = chat_message('p', id, Some(ROOM), id);
        io.send_text(sender, message.as_bytes());
        self.posts.insert(
            id,
            Post {
                sender,
                sent_at: now,
                deliveries_missing: self.member_keys.len() - 1,
                acknowledged: false,
            },
        );
    }

    fn complete_if_done(&mut self, io: &mut Io, id: u64, now: Instant) {
        let done = self
            .posts
            .get(&id)
            .is_some_and(|post| post.acknowledged && post.deliveries_missing == 0);
        if !done {
            return;
        }
        let Some(post) = self.posts.remove(&id) else {
            return;
        };
        if self.window.as_ref().is_some_and(Window::is_measuring) {
            self.posts_completed += 1;
        }
        if !self.window.as_ref().is_some_and(Window::is_closed) {
            self.post(io, post.sender, now);
        }
    }

    fn start_posting(&mut self, io: &mut Io, now: Instant) {
        self.joined_all_at = Some(now);
        self.window = Some(Window::new(self.probe, now, self.warmup, self.duration));
        let senders: Vec<usize> = self
            .member_keys
            .iter()
            .copied()
            .take(self.senders)
            .collect();
        for sender in senders {
            for _ in 0..self.in_flight {
                self.post(io, sender, now);
            }
        }
    }

    pub fn figures(self) -> Figures {
        let mut figures = Figures::default();
        figures.add("members_joined", self.joined as f64);
        if let Some(joined_at) = self.joined_all_at {
            figures.add(
                "setup_s",
                joined_at.duration_since(self.setup_started).as_secs_f64(),
            );
        }
        if let Some(window) = &self.window {
            let seconds = window.seconds();
            figures.add("deliveries_per_s", self.deliveries as f64 / seconds);
            figures.add("posts_per_s", self.posts_completed as f64 / seconds);
            figures.add("delivery_p50_us", self.latencies.quantile_us(0.5));
            figures.add("delivery_p99_us", self.latencies.quantile_us(0.99));
            figures.add("delivery_p999_us", self.latencies.quantile_us(0.999));
            figures.add_server_costs(window, self.deliveries, "delivery");
        }
        figures.add("error_frames", self.error_frames as f64);
        figures.add("members_lost", self.lost_members as f64);
        figures
    }

    pub fn first_error(&self) -> Option<&str> {
        self.first_error.as_deref()
    }
}

impl Workload for Fanout {
    fn on_open(&mut self, io: &mut Io, key: usize, now: Instant) {
        self.dialer.on_open(io, key, now);
        self.member_keys.push(key);
        let join = format!(r#"{{"type":"join","room":"{ROOM}"}}"#);
        io.send_text(key, join.as_bytes());
    }

    fn on_text(&mut self, io: &mut Io, _key: usize, text: &[u8], now: Instant) {
        match wire::string_field(text, "type") {
            Some(b"message") => {
                let Some(id) = wire::string_field(text, "id").and_then(wire::parse_id) else {
                    self.other_frames += 1;
                    return;
                };
                let measuring = self.window.as_ref().is_some_and(Window::is_measuring);
                if let Some(post) = self.posts.get_mut(&id) {
                    post.deliveries_missing = post.deliveries_missing.saturating_sub(1);
                    if measuring {
                        self.latencies.record(now.duration_since(post.sent_at));
                        self.deliveries += 1;
                    }
                    self.complete_if_done(io, id, now);
                }
            }
            Some(b"emotion") => {
                if let Some(id) = wire::string_field(text, "id").and_then(wire::parse_id) {
                    if let Some(post) = self.posts.get_mut(&id) {
                        post.acknowledged = true;
                    }
                    self.complete_if_done(io, id, now);
                }
            }
            Some(b"joined") => {
                self.joined += 1;
                if self.dialer.is_settled() && self.joined == self.member_keys.len() {
                    self.start_posting(io, now);
                }
            }
            Some(b"error") => {
                self.error_frames += 1;
                self.first_error
                    .get_or_insert_with(|| String::from_utf8_lossy(text).into_owned());
            }
            _ => self.other_frames += 1,
        }
    }

    fn on_lost(&mut self, _io: &mut Io, _key: usize, loss: Loss, was_open: bool, _now: Instant) {
        if was_open {
            self.lost_members += 1;
        } else {
            self.dialer.on_failed_while_dialling();
        }
        self.first_error
            .get_or_insert_with(|| format!("a member's connection ended: {loss:?}"));
    }

    fn on_turn(&mut self, io: &mut Io, now: Instant) {
        self.dialer.pump(io, now);
        if let Some(window) = &mut self.window {
            window.tick(now);
        }
    }

    fn next_wakeup(&self) -> Option<Instant> {
        self.window.as_ref().and_then(Window::next_edge)
    }

    fn finished(&self, _io: &Io, _now: Instant) -> bool {
        // A lost member would leave posts waiting forever, so the run ends with what it has.
        self.window.as_ref().is_some_and(Window::is_closed) || self.lost_members > 0
    }
}
