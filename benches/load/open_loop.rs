//! `open`: a fixed offered rate spread round-robin over C connections, whatever the answers do.
//! Latency is measured from each message's *scheduled* time, so a stall shows up in every message
//! it delays (no coordinated omission), unlike a closed loop, which measures its own queueing.

use crate::dialer::Dialer;
use crate::driver::{Io, Loss, Workload};
use crate::measure::{chat_message, Figures, Probe, Window};
use crate::stats::Latencies;
use crate::wire;
use std::time::{Duration, Instant};

pub struct OpenLoopParams {
    pub connections: usize,
    pub rate_per_s: f64,
    pub connect_concurrency: usize,
    pub answers_are_echoes: bool,
    pub warmup: Duration,
    pub duration: Duration,
}

pub struct OpenLoop {
    dialer: Dialer,
    rate_per_s: f64,
    answers_are_echoes: bool,
    probe: Probe,
    warmup: Duration,
    duration: Duration,
    open_keys: Vec<usize>,
    schedule_start: Option<Instant>,
    window: Option<Window>,
    scheduled: u64,
    latencies: Latencies,
    send_lag: Latencies,
    answered: u64,
    sent_in_window: u64,
    error_frames: u64,
    lost: u64,
    first_error: Option<String>,
}

impl OpenLoop {
    pub fn new(params: &OpenLoopParams, probe: Probe) -> Self {
        OpenLoop {
            dialer: Dialer::new(0..params.connections.max(1), params.connect_concurrency),
            rate_per_s: params.rate_per_s.max(1.0),
            answers_are_echoes: params.answers_are_echoes,
            probe,
            warmup: params.warmup,
            duration: params.duration,
            open_keys: Vec::with_capacity(params.connections),
            schedule_start: None,
            window: None,
            scheduled: 0,
            latencies: Latencies::default(),
            send_lag: Latencies::default(),
            answered: 0,
            sent_in_window: 0,
            error_frames: 0,
            lost: 0,
            first_error: None,
        }
    }

    fn due_time(&self, index: u64) -> Option<Instant> {
        let start = self.schedule_start?;
        Some(start + Duration::from_secs_f64(index as f64 / self.rate_per_s))
    }

    fn on_answer(&mut self, io: &mut Io, key: usize, now: Instant) {
        let Some(conn) = io.conns.get_mut(key) else {
            return;
        };
        let Some(scheduled_at) = conn.awaiting.pop_front() else {
            return;
        };
        if self.window.as_ref().is_some_and(Window::is_measuring) {
            self.latencies.record(now.duration_since(scheduled_at));
            self.answered += 1;
        }
    }

    pub fn figures(self) -> Figures {
        let mut figures = Figures::default();
        let Some(window) = &self.window else {
            figures.add("connections_open", self.open_keys.len() as f64);
            return figures;
        };
        let seconds = window.seconds();
        figures.add("offered_per_s", self.rate_per_s);
        figures.add("sent_per_s", self.sent_in_window as f64 / seconds);
        figures.add("answered_per_s", self.answered as f64 / seconds);
        figures.add("rtt_p50_us", self.latencies.quantile_us(0.5));
        figures.add("rtt_p99_us", self.latencies.quantile_us(0.99));
        figures.add("rtt_p999_us", self.latencies.quantile_us(0.999));
        figures.add("rtt_max_us", self.latencies.quantile_us(1.0));
        figures.add("send_lag_p99_us", self.send_lag.quantile_us(0.99));
        figures.add_server_costs(window, self.answered, "msg");
        figures.add("error_frames", self.error_frames as f64);
        figures.add("connections_lost", self.lost as f64);
        figures
    }

    pub fn first_error(&self) -> Option<&str> {
        self.first_error.as_deref()
    }
}

impl Workload for OpenLoop {
    fn on_open(&mut self, io: &mut Io, key: usize, now: Instant) {
        self.dialer.on_open(io, key, now);
        self.open_keys.push(key);
    }

    fn on_text(&mut self, io: &mut Io, key: usize, text: &[u8], now: Instant) {
        if self.answers_are_echoes {
            return self.on_answer(io, key, now);
        }
        match wire::string_field(text, "type") {
            Some(b"emotion") => self.on_answer(io, key, now),
            Some(b"error") => {
                self.error_frames += 1;
                self.first_error
                    .get_or_insert_with(|| String::from_utf8_lossy(text).into_owned());
                if wire::string_field(text, "id").is_some() {
                    if let Some(conn) = io.conns.get_mut(key) {
                        conn.awaiting.pop_front();
                    }
                }
            }
            _ => {}
        }
    }

    fn on_lost(&mut self, io: &mut Io, key: usize, loss: Loss, was_open: bool, _now: Instant) {
        if was_open {
            self.lost += 1;
            self.open_keys
                .retain(|&open| open != key && io.conns.contains(open));
        } else {
            self.dialer.on_failed_while_dialling();
        }
        self.first_error
            .get_or_insert_with(|| format!("a connection ended: {loss:?}"));
    }

    fn on_turn(&mut self, io: &mut Io, now: Instant) {
        self.dialer.pump(io, now);
        if self.schedule_start.is_none() && self.dialer.is_settled() && !self.open_keys.is_empty() {
            self.schedule_start = Some(now);
            self.window = Some(Window::new(self.probe, now, self.warmup, self.duration));
        }
        let Some(window) = &mut self.window else {
            return;
        };
        window.tick(now);
        if window.is_closed() {
            return;
        }
        let measuring = window.is_measuring();
        while let Some(due) = self.due_time(self.scheduled) {
            if due > now {
                break;
            }
            let key = self.open_keys[(self.scheduled % self.open_keys.len() as u64) as usize];
            if let Some(conn) = io.conns.get_mut(key) {
                conn.counter += 1;
                conn.awaiting.push_back(due);
                let message = chat_message('c', conn.counter, None, self.scheduled);
                io.send_text(key, message.as_bytes());
                if measuring {
                    self.send_lag.record(now.duration_since(due));
                    self.sent_in_window += 1;
                }
            }
            self.scheduled += 1;
        }
    }

    fn next_wakeup(&self) -> Option<Instant> {
        let next_send = self.due_time(self.scheduled);
        let next_edge = self.window.as_ref().and_then(Window::next_edge);
        match (next_send, next_edge) {
            (Some(send), Some(edge)) => Some(send.min(edge)),
            (send, edge) => send.or(edge),
        }
    }

    fn finished(&self, _io: &Io, _now: Instant) -> bool {
        self.window.as_ref().is_some_and(Window::is_closed)
            || (self.dialer.is_settled() && self.open_keys.is_empty())
    }
}
