//! `churn`: K slots, each repeatedly connecting (auth with `?token=`, waiting for `ready`), sending
//! one message, waiting for its answer and closing. Users come from a fixed pool, like people
//! reconnecting, so per-user state the server keeps on purpose (private-room history) stays
//! bounded and RSS can be compared with the warmed-up baseline afterwards.

use crate::driver::{Io, Loss, Workload};
use crate::measure::{chat_message, Figures, Probe, Window};
use crate::stats::Latencies;
use crate::wire;
use std::time::{Duration, Instant};

pub struct ChurnParams {
    pub concurrency: usize,
    pub users: usize,
    pub answers_are_echoes: bool,
    pub warmup: Duration,
    pub duration: Duration,
}

pub struct Churn {
    concurrency: usize,
    users: usize,
    answers_are_echoes: bool,
    in_progress: usize,
    next_user: usize,
    window: Window,
    cycle_latency: Latencies,
    cycles: u64,
    failures: u64,
    first_error: Option<String>,
}

impl Churn {
    /// A churn phase: `warmup` unmeasured, then `duration` measured. With a zero duration it is
    /// a pure warm-up whose figures are discarded.
    pub fn new(params: &ChurnParams, probe: Probe, now: Instant) -> Self {
        Churn {
            concurrency: params.concurrency.max(1),
            users: params.users.max(1),
            answers_are_echoes: params.answers_are_echoes,
            in_progress: 0,
            next_user: 0,
            window: Window::new(probe, now, params.warmup, params.duration),
            cycle_latency: Latencies::default(),
            cycles: 0,
            failures: 0,
            first_error: None,
        }
    }

    fn refill(&mut self, io: &mut Io, now: Instant) {
        while !self.window.is_closed() && self.in_progress < self.concurrency {
            let user = self.next_user % self.users;
            self.next_user += 1;
            match io.connect(user, now) {
                Ok(_) => self.in_progress += 1,
                Err(error) => {
                    self.failures += 1;
                    self.first_error
                        .get_or_insert_with(|| format!("connect: {error}"));
                    // Out of ports or descriptors: retry on a later turn rather than spin.
                    break;
                }
            }
        }
    }

    fn on_answer(&mut self, io: &mut Io, key: usize, now: Instant) {
        let Some(conn) = io.conns.get(key) else {
            return;
        };
        if self.window.is_measuring() {
            self.cycle_latency
                .record(now.duration_since(conn.opened_at));
            self.cycles += 1;
        }
        io.close(key);
        self.in_progress -= 1;
        self.refill(io, now);
    }

    pub fn first_error(&self) -> Option<&str> {
        self.first_error.as_deref()
    }

    pub fn figures(self) -> Figures {
        let mut figures = Figures::default();
        let seconds = self.window.seconds();
        figures.add("connects_per_s", self.cycles as f64 / seconds);
        figures.add("cycle_p50_ms", self.cycle_latency.quantile_us(0.5) / 1000.0);
        figures.add(
            "cycle_p99_ms",
            self.cycle_latency.quantile_us(0.99) / 1000.0,
        );
        figures.add_server_costs(&self.window, self.cycles, "connection");
        figures.add("failures", self.failures as f64);
        figures
    }
}

impl Workload for Churn {
    fn on_open(&mut self, io: &mut Io, key: usize, _now: Instant) {
        let message = chat_message('c', 1, None, self.next_user as u64);
        io.send_text(key, message.as_bytes());
    }

    fn on_text(&mut self, io: &mut Io, key: usize, text: &[u8], now: Instant) {
        if self.answers_are_echoes {
            return self.on_answer(io, key, now);
        }
        match wire::string_field(text, "type") {
            Some(b"emotion") => self.on_answer(io, key, now),
            Some(b"error") => {
                self.failures += 1;
                self.first_error
                    .get_or_insert_with(|| String::from_utf8_lossy(text).into_owned());
                io.close(key);
                self.in_progress -= 1;
                self.refill(io, now);
            }
            _ => {}
        }
    }

    fn on_lost(&mut self, io: &mut Io, _key: usize, loss: Loss, _was_open: bool, now: Instant) {
        self.failures += 1;
        self.first_error
            .get_or_insert_with(|| format!("connection ended before its answer: {loss:?}"));
        self.in_progress -= 1;
        self.refill(io, now);
    }

    fn on_turn(&mut self, io: &mut Io, now: Instant) {
        self.window.tick(now);
        self.refill(io, now);
    }

    fn next_wakeup(&self) -> Option<Instant> {
        self.window.next_edge()
    }

    fn finished(&self, _io: &Io, _now: Instant) -> bool {
        self.window.is_closed() && self.in_progress == 0
    }
}

pub fn run(
    driver: &mut crate::driver::Driver,
    probe: Probe,
    params: &ChurnParams,
    settle: Duration,
) -> std::io::Result<(Figures, Option<String>)> {
    use crate::idle::Pause;
    use crate::server::sample;
    let safety_net = params.warmup + params.duration + Duration::from_secs(30);

    // Warm-up churn: the allocator, the slab and every pool user's private room reach their
    // steady state before the baseline is taken.
    let warm_params = ChurnParams {
        warmup: Duration::ZERO,
        duration: params.warmup,
        ..*params
    };
    let mut warmup = Churn::new(&warm_params, Probe::default(), Instant::now());
    driver.run(&mut warmup, Instant::now() + safety_net)?;
    driver.run(
        &mut Pause::new(Instant::now(), settle),
        Instant::now() + safety_net,
    )?;
    let baseline = probe.pid.map(sample).transpose()?;

    let measured_params = ChurnParams {
        warmup: Duration::ZERO,
        ..*params
    };
    let mut churn = Churn::new(&measured_params, probe, Instant::now());
    driver.run(&mut churn, Instant::now() + safety_net)?;
    driver.run(
        &mut Pause::new(Instant::now(), settle),
        Instant::now() + safety_net,
    )?;
    let after = probe.pid.map(sample).transpose()?;

    let first_error = churn.first_error().map(str::to_owned);
    let mut figures = churn.figures();
    if let (Some(baseline), Some(after)) = (baseline, after) {
        let baseline_mib = baseline.rss_kib as f64 / 1024.0;
        let after_mib = after.rss_kib as f64 / 1024.0;
        let allowance_mib = (baseline_mib * 0.10).max(4.0);
        figures.add("server_rss_baseline_mib", baseline_mib);
        figures.add("server_rss_after_mib", after_mib);
        figures.add(
            "rss_back_to_baseline",
            f64::from(u8::from(after_mib <= baseline_mib + allowance_mib)),
        );
    }
    Ok((figures, first_error))
}
