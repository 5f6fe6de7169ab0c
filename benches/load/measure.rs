//! What every scenario shares: the measurement window with its `/proc` samples at both ends, the
//! figures one run produces, and the chat messages the generator sends.

use crate::callgrind;
use crate::server::{self, ProcSample};
use crate::syscalls::SyscallCounter;
use crate::texts::CHAT_LINES;
use std::time::{Duration, Instant};

/// One run's results, in the order they are printed: `(name with unit, value)`.
#[derive(Default, Clone, Debug)]
pub struct Figures(pub Vec<(String, f64)>);

impl Figures {
    pub fn add(&mut self, name: impl Into<String>, value: f64) {
        self.0.push((name.into(), value));
    }

    /// The server's CPU time, wake-ups and (with `--syscalls`) syscalls inside `window`,
    /// divided by `count` units of work (`unit` names them: `msg`, `delivery`, `connection`).
    /// Syscalls per unit are what the floor is made of on this kernel; wake-ups per unit show
    /// how much batching each loop turn got.
    pub fn add_server_costs(&mut self, window: &Window, count: u64, unit: &str) {
        let Some(delta) = window.server_delta() else {
            return;
        };
        let per_unit = |total: u64| total as f64 / count as f64;
        self.add(format!("server_cpu_us_per_{unit}"), per_unit(delta.cpu_us));
        self.add(
            format!("server_user_us_per_{unit}"),
            per_unit(delta.user_us),
        );
        self.add(
            "server_cpu_percent",
            delta.cpu_us as f64 / window.seconds() / 1e4,
        );
        self.add(
            format!("server_wakeups_per_{unit}"),
            per_unit(delta.voluntary_switches),
        );
        self.add(
            "server_runqueue_wait_percent",
            delta.runqueue_wait_us as f64 / window.seconds() / 1e4,
        );
        self.add("generator_cpu_percent", window.generator_cpu_percent());
        self.add(
            "generator_runqueue_wait_percent",
            window.generator_runqueue_wait_percent(),
        );
        if let Some(instructions) = window.instructions {
            self.add(
                format!("server_instructions_per_{unit}"),
                per_unit(instructions),
            );
        }
        for (syscall, total) in window.syscall_counts() {
            if *syscall == "all" {
                self.add(format!("server_syscalls_per_{unit}"), per_unit(*total));
            } else if *total > 0 {
                self.add(format!("server_{syscall}_per_{unit}"), per_unit(*total));
            }
        }
    }
}

/// The stretch of a run whose work is counted: it opens after the warm-up and closes after the
/// measured duration, sampling the server's CPU time at both edges. Samples are taken from the
/// loop's turn hook, so an event is counted exactly when the CPU it caused is.
pub struct Window {
    probe: Probe,
    syscall_counter: Option<SyscallCounter>,
    syscall_counts: Vec<(&'static str, u64)>,
    instructions: Option<u64>,
    pub opens_at: Instant,
    pub closes_at: Instant,
    opened: Option<(Instant, Option<ProcSample>)>,
    closed: Option<(Instant, Option<ProcSample>)>,
    /// The generator's own CPU time (µs) at the edges: if it nears 100% of its core, the
    /// figures measure the generator, not the server.
    generator: (ProcSample, ProcSample),
}

/// How the generator observes the server: its pid for `/proc`, and whether to count its syscalls
/// with `perf` (`--syscalls`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Probe {
    pub pid: Option<u32>,
    pub count_syscalls: bool,
    /// The server runs under callgrind (`--callgrind`): count its instructions in the window.
    pub count_instructions: bool,
}

impl Window {
    pub fn new(probe: Probe, now: Instant, warmup: Duration, duration: Duration) -> Self {
        let syscall_counter = match (probe.pid, probe.count_syscalls) {
            (Some(pid), true) => SyscallCounter::attach(pid)
                .map_err(|error| eprintln!("load: no syscall counts: {error}"))
                .ok(),
            _ => None,
        };
        Window {
            probe,
            syscall_counter,
            syscall_counts: Vec::new(),
            instructions: None,
            opens_at: now + warmup,
            closes_at: now + warmup + duration,
            opened: None,
            closed: None,
            generator: (ProcSample::default(), ProcSample::default()),
        }
    }

    /// Takes the sample due at `now`, if any.
    pub fn tick(&mut self, now: Instant) {
        if self.opened.is_none() && now >= self.opens_at {
            let mut now = now;
            if let (Some(pid), true) = (self.probe.pid, self.probe.count_instructions) {
                if let Err(error) = callgrind::zero(pid) {
                    eprintln!("load: no instruction counts: {error}");
                }
                // Zeroing takes a fraction of a second; the window starts when it is done.
                now = Instant::now();
            }
            let sample = self.probe.pid.and_then(|pid| server::sample(pid).ok());
            if let Some(counter) = &mut self.syscall_counter {
                if let Err(error) = counter.enable() {
                    eprintln!("load: no syscall counts: {error}");
                    self.syscall_counter = None;
                }
            }
            self.generator.0 = own_sample();
            self.opened = Some((now, sample));
        }
        if self.opened.is_some() && self.closed.is_none() && now >= self.closes_at {
            if let (Some(pid), true) = (self.probe.pid, self.probe.count_instructions) {
                match callgrind::dump_instructions(pid) {
                    Ok(count) => self.instructions = Some(count),
                    Err(error) => eprintln!("load: no instruction counts: {error}"),
                }
            }
            if let Some(mut counter) = self.syscall_counter.take() {
                match counter.disable().and_then(|()| counter.finish()) {
                    Ok(counts) => self.syscall_counts = counts,
                    Err(error) => eprintln!("load: no syscall counts: {error}"),
                }
            }
            let sample = self.probe.pid.and_then(|pid| server::sample(pid).ok());
            self.generator.1 = own_sample();
            self.closed = Some((now, sample));
        }
    }

    pub fn is_measuring(&self) -> bool {
        self.opened.is_some() && self.closed.is_none()
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// The next edge the loop must wake up for.
    pub fn next_edge(&self) -> Option<Instant> {
        if self.opened.is_none() {
            Some(self.opens_at)
        } else if self.closed.is_none() {
            Some(self.closes_at)
        } else {
            None
        }
    }

    pub fn seconds(&self) -> f64 {
        match (self.opened, self.closed) {
            (Some((start, _)), Some((end, _))) => end.duration_since(start).as_secs_f64(),
            _ => f64::NAN,
        }
    }

    /// The generator's CPU use in the window, in percent of one core.
    pub fn generator_cpu_percent(&self) -> f64 {
        let (start, end) = self.generator;
        end.cpu_us.saturating_sub(start.cpu_us) as f64 / self.seconds() / 1e4
    }

    /// Share of the window the generator was runnable but kept off its core by other work.
    pub fn generator_runqueue_wait_percent(&self) -> f64 {
        let (start, end) = self.generator;
        end.runqueue_wait_us.saturating_sub(start.runqueue_wait_us) as f64 / self.seconds() / 1e4
    }

    /// Syscalls by kind inside the window (empty without `--syscalls`); `all` is the total.
    pub fn syscall_counts(&self) -> &[(&'static str, u64)] {
        &self.syscall_counts
    }

    /// What the server spent inside the window (CPU time, syscalls, wake-ups).
    pub fn server_delta(&self) -> Option<ProcSample> {
        match (self.opened, self.closed) {
            (Some((_, Some(start))), Some((_, Some(end)))) => Some(ProcSample {
                rss_kib: end.rss_kib,
                cpu_us: end.cpu_us.saturating_sub(start.cpu_us),
                user_us: end.user_us.saturating_sub(start.user_us),
                voluntary_switches: end
                    .voluntary_switches
                    .saturating_sub(start.voluntary_switches),
                runqueue_wait_us: end.runqueue_wait_us.saturating_sub(start.runqueue_wait_us),
            }),
            _ => None,
        }
    }
}

fn own_sample() -> ProcSample {
    server::sample(std::process::id()).unwrap_or_default()
}

/// `{"type":"message","id":"<prefix><n>","text":...}`, optionally to a shared room. The lines
/// hold no characters that need JSON escaping (checked in `texts`).
pub fn chat_message(id_prefix: char, id: u64, room: Option<&str>, line_index: u64) -> String {
    let text = CHAT_LINES[(line_index % CHAT_LINES.len() as u64) as usize];
    match room {
        Some(room) => format!(
            r#"{{"type":"message","id":"{id_prefix}{id}","room":"{room}","text":"{text}"}}"#
        ),
        None => format!(r#"{{"type":"message","id":"{id_prefix}{id}","text":"{text}"}}"#),
    }
}

pub mod checks {
    use super::*;

    pub fn chat_message_is_valid_json_with_generator_id() {
        let message = chat_message('c', 7, Some("lobby"), 3);
        let parsed: serde_json::Value = serde_json::from_str(&message).unwrap();
        assert_eq!(parsed["type"], "message");
        assert_eq!(parsed["id"], "c7");
        assert_eq!(parsed["room"], "lobby");
        assert_eq!(parsed["text"], CHAT_LINES[3]);
        let private: serde_json::Value =
            serde_json::from_str(&chat_message('c', 8, None, 0)).unwrap();
        assert!(private.get("room").is_none());
    }

    pub fn window_measures_only_between_its_edges() {
        let start = Instant::now();
        let mut window = Window::new(
            Probe::default(),
            start,
            Duration::from_secs(1),
            Duration::from_secs(2),
        );
        window.tick(start);
        assert!(!window.is_measuring());
        assert_eq!(window.next_edge(), Some(start + Duration::from_secs(1)));
        window.tick(start + Duration::from_secs(1));
        assert!(window.is_measuring());
        window.tick(start + Duration::from_secs(3));
        assert!(window.is_closed());
        assert!((window.seconds() - 2.0).abs() < 1e-9);
        assert!(window.server_delta().is_none());
    }
}
