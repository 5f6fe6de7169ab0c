//! `chat` and `echo`: C connections each keeping W messages in flight; every answer releases the
//! next message. Against the chat server the answer is the sender's `emotion`; against `--echo`
//! it is the echoed frame. Bot traffic (`typing`, `reply`) is counted but answers nothing.

use crate::dialer::Dialer;
use crate::driver::{Io, Loss, Workload};
use crate::measure::{chat_message, Figures, Probe, Window};
use crate::stats::Latencies;
use crate::wire;
use std::time::{Duration, Instant};

pub struct ClosedLoop {
    dialer: Dialer,
    in_flight: usize,
    answers_are_echoes: bool,
    probe: Probe,
    warmup: Duration,
    duration: Duration,
    open_keys: Vec<usize>,
    window: Option<Window>,
    latencies: Latencies,
    answered: u64,
    other_frames: u64,
    error_frames: u64,
    out_of_order: u64,
    lost_while_running: u64,
    first_error: Option<String>,
    next_line: u64,
}

pub struct ClosedLoopParams {
    pub connections: usize,
    pub in_flight: usize,
    pub connect_concurrency: usize,
    pub answers_are_echoes: bool,
    pub warmup: Duration,
    pub duration: Duration,
}

impl ClosedLoop {
    pub fn new(params: &ClosedLoopParams, probe: Probe) -> Self {
        ClosedLoop {
            dialer: Dialer::new(0..params.connections, params.connect_concurrency),
            in_flight: params.in_flight.max(1),
            answers_are_echoes: params.answers_are_echoes,
            probe,
            warmup: params.warmup,
            duration: params.duration,
            open_keys: Vec::with_capacity(params.connections),
            window: None,
            latencies: Latencies::default(),
            answered: 0,
            other_frames: 0,
            error_frames: 0,
            out_of_order: 0,
            lost_while_running: 0,
            first_error: None,
            next_line: 0,
        }
    }

    fn send_next(&mut self, io: &mut Io, key: usize, now: Instant) {
        let Some(conn) = io.conns.get_mut(key) else {
            return;
        };
        conn.counter += 1;
        conn.awaiting.push_back(now);
        let message = chat_message('c', conn.counter, None, self.next_line);
        self.next_line += 1;
        io.send_text(key, message.as_bytes());
    }

    fn on_answer(&mut self, io: &mut Io, key: usize, answer_id: Option<u64>, now: Instant) {
        let Some(conn) = io.conns.get_mut(key) else {
            return;
        };
        let expected_id = (conn.counter + 1).checked_sub(conn.awaiting.len() as u64);
        let Some(sent_at) = conn.awaiting.pop_front() else {
            self.out_of_order += 1;
            return;
        };
        if answer_id.is_some() && answer_id != expected_id {
            self.out_of_order += 1;
        }
        let measuring = self.window.as_ref().is_some_and(Window::is_measuring);
        if measuring {
            self.latencies.record(now.duration_since(sent_at));
            self.answered += 1;
        }
        let stopped = self.window.as_ref().is_some_and(Window::is_closed);
        if !stopped {
            self.send_next(io, key, now);
        }
    }

    pub fn figures(self, io: &Io) -> Figures {
        let mut figures = Figures::default();
        let Some(window) = &self.window else {
            figures.add("connections_open", self.dialer.opened as f64);
            figures.add("losses", io.losses.total() as f64);
            return figures;
        };
        let seconds = window.seconds();
        figures.add("msgs_per_s", self.answered as f64 / seconds);
        figures.add("rtt_p50_us", self.latencies.quantile_us(0.5));
        figures.add("rtt_p99_us", self.latencies.quantile_us(0.99));
        figures.add("rtt_p999_us", self.latencies.quantile_us(0.999));
        figures.add_server_costs(window, self.answered, "msg");
        figures.add(
            "other_frames_per_msg",
            self.other_frames as f64 / self.answered.max(1) as f64,
        );
        figures.add("error_frames", self.error_frames as f64);
        figures.add("out_of_order", self.out_of_order as f64);
        figures.add("connections_lost", self.lost_while_running as f64);
        figures
    }

    pub fn first_error(&self) -> Option<&str> {
        self.first_error.as_deref()
    }
}

impl Workload for ClosedLoop {
    fn on_open(&mut self, io: &mut Io, key: usize, now: Instant) {
        self.dialer.on_open(io, key, now);
        self.open_keys.push(key);
        if self.dialer.is_settled() && self.window.is_none() {
            self.start_sending(io, now);
        }
    }

    fn on_text(&mut self, io: &mut Io, key: usize, text: &[u8], now: Instant) {
        if self.answers_are_echoes {
            let id = wire::string_field(text, "id").and_then(wire::parse_id);
            return self.on_answer(io, key, id, now);
        }
        match wire::string_field(text, "type") {
            Some(b"emotion") => {
                let id = wire::string_field(text, "id").and_then(wire::parse_id);
                self.on_answer(io, key, id, now);
            }
            Some(b"error") => {
                self.error_frames += 1;
                self.first_error
                    .get_or_insert_with(|| String::from_utf8_lossy(text).into_owned());
                // An error about one of our messages (e.g. rate_limited) still answers it.
                if wire::string_field(text, "id").is_some() {
                    if let Some(conn) = io.conns.get_mut(key) {
                        conn.awaiting.pop_front();
                    }
                    let stopped = self.window.as_ref().is_some_and(Window::is_closed);
                    if !stopped {
                        self.send_next(io, key, now);
                    }
                }
            }
            _ => self.other_frames += 1,
        }
    }

    fn on_lost(&mut self, io: &mut Io, _key: usize, loss: Loss, was_open: bool, now: Instant) {
        if was_open {
            self.lost_while_running += 1;
        } else {
            self.dialer.on_failed_while_dialling();
            self.first_error
                .get_or_insert_with(|| format!("connection failed while dialling: {loss:?}"));
        }
        if self.dialer.is_settled() && self.window.is_none() && !self.open_keys.is_empty() {
            self.start_sending(io, now);
        }
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
        let nobody_left =
            self.dialer.is_settled() && self.dialer.opened == self.lost_while_running as usize;
        self.window.as_ref().is_some_and(Window::is_closed) || nobody_left
    }
}

impl ClosedLoop {
    /// Dialling is over (possibly with some failures): everyone open starts sending at once, and
    /// the warm-up begins.
    fn start_sending(&mut self, io: &mut Io, now: Instant) {
        self.window = Some(Window::new(self.probe, now, self.warmup, self.duration));
        let keys: Vec<usize> = self
            .open_keys
            .iter()
            .copied()
            .filter(|&key| io.conns.contains(key))
            .collect();
        for key in keys {
            for _ in 0..self.in_flight {
                self.send_next(io, key, now);
            }
        }
    }
}
