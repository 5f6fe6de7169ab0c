//! `idle`: N authenticated connections held open. The server's RSS growth per connection is the
//! density figure; the dial itself gives the connect+auth rate and its latency.

use crate::dialer::Dialer;
use crate::driver::{Io, Loss, Workload};
use std::time::{Duration, Instant};

/// Opens a population and then holds it for `hold` (answering pings) before reporting finished.
pub struct HoldOpen {
    pub dialer: Dialer,
    hold: Duration,
    hold_until: Option<Instant>,
    pub lost_after_open: usize,
    pub texts_received: u64,
}

impl HoldOpen {
    pub fn new(users: std::ops::Range<usize>, concurrency: usize, hold: Duration) -> Self {
        HoldOpen {
            dialer: Dialer::new(users, concurrency),
            hold,
            hold_until: None,
            lost_after_open: 0,
            texts_received: 0,
        }
    }

    pub fn still_open(&self) -> usize {
        self.dialer.opened.saturating_sub(self.lost_after_open)
    }
}

impl Workload for HoldOpen {
    fn on_open(&mut self, io: &mut Io, key: usize, now: Instant) {
        self.dialer.on_open(io, key, now);
    }

    fn on_text(&mut self, _io: &mut Io, _key: usize, _text: &[u8], _now: Instant) {
        self.texts_received += 1;
    }

    fn on_lost(&mut self, _io: &mut Io, _key: usize, _loss: Loss, was_open: bool, _now: Instant) {
        if was_open {
            self.lost_after_open += 1;
        } else {
            self.dialer.on_failed_while_dialling();
        }
    }

    fn on_turn(&mut self, io: &mut Io, now: Instant) {
        self.dialer.pump(io, now);
        if self.dialer.is_settled() && self.hold_until.is_none() {
            self.hold_until = Some(now + self.hold);
        }
    }

    fn next_wakeup(&self) -> Option<Instant> {
        self.hold_until
    }

    fn finished(&self, _io: &Io, now: Instant) -> bool {
        self.hold_until.is_some_and(|until| now >= until)
    }
}

/// Keeps the loop turning (answering pings, noticing closes) for a fixed time.
pub struct Pause {
    until: Instant,
}

impl Pause {
    pub fn new(now: Instant, length: Duration) -> Self {
        Pause {
            until: now + length,
        }
    }
}

impl Workload for Pause {
    fn on_open(&mut self, _io: &mut Io, _key: usize, _now: Instant) {}
    fn on_text(&mut self, _io: &mut Io, _key: usize, _text: &[u8], _now: Instant) {}
    fn next_wakeup(&self) -> Option<Instant> {
        Some(self.until)
    }
    fn finished(&self, _io: &Io, now: Instant) -> bool {
        now >= self.until
    }
}

pub struct IdleParams {
    pub connections: usize,
    pub connect_concurrency: usize,
    pub hold: Duration,
}

/// Connections opened and closed before the baseline, so one-time costs (lazy statics, the first
/// slab pages, allocator arenas) are not charged to the measured connections.
const WARMUP_CONNECTIONS: usize = 200;

pub fn run(
    driver: &mut crate::driver::Driver,
    pid: Option<u32>,
    params: &IdleParams,
) -> std::io::Result<crate::measure::Figures> {
    use crate::server::sample;
    let safety_net = Duration::from_secs(110);
    let mut warmup = HoldOpen::new(
        0..WARMUP_CONNECTIONS.min(params.connections),
        params.connect_concurrency,
        Duration::ZERO,
    );
    driver.run(&mut warmup, Instant::now() + safety_net)?;
    driver.io.close_all();
    driver.run(
        &mut Pause::new(Instant::now(), Duration::from_millis(500)),
        Instant::now() + safety_net,
    )?;
    let baseline = pid.map(sample).transpose()?;

    let mut population = HoldOpen::new(
        0..params.connections,
        params.connect_concurrency,
        params.hold,
    );
    driver.run(&mut population, Instant::now() + safety_net)?;
    let loaded = pid.map(sample).transpose()?;

    let mut figures = crate::measure::Figures::default();
    let open = population.still_open();
    figures.add("connections_open", open as f64);
    figures.add("connects_per_s", population.dialer.open_rate());
    figures.add(
        "connect_p50_ms",
        population.dialer.connect_latency.quantile_us(0.5) / 1000.0,
    );
    figures.add(
        "connect_p99_ms",
        population.dialer.connect_latency.quantile_us(0.99) / 1000.0,
    );
    if let (Some(baseline), Some(loaded)) = (baseline, loaded) {
        figures.add("server_rss_baseline_mib", baseline.rss_kib as f64 / 1024.0);
        figures.add("server_rss_loaded_mib", loaded.rss_kib as f64 / 1024.0);
        figures.add(
            "server_rss_kib_per_conn",
            loaded.rss_kib.saturating_sub(baseline.rss_kib) as f64 / open.max(1) as f64,
        );
        figures.add(
            "server_cpu_us_per_connect",
            loaded.cpu_us.saturating_sub(baseline.cpu_us) as f64
                / population.dialer.opened.max(1) as f64,
        );
    }
    figures.add("connect_failures", population.dialer.failed as f64);
    figures.add("lost_while_idle", population.lost_after_open as f64);
    Ok(figures)
}
