//! What every scenario shares: the measurement window with its `/proc` samples at both ends, the
//! figures one run produces, and the chat messages the generator sends.

use crate::server::{self, ProcSample};
use crate::texts::CHAT_LINES;
use std::time::{Duration, Instant};

/// One run's results, in the order they are printed: `(name with unit, value)`.
#[derive(Default, Clone, Debug)]
pub struct Figures(pub Vec<(&'static str, f64)>);

impl Figures {
    pub fn add(&mut self, name: &'static str, value: f64) {
        self.0.push((name, value));
    }
}

/// The stretch of a run whose work is counted: it opens after the warm-up and closes after the
/// measured duration, sampling the server's CPU time at both edges. Samples are taken from the
/// loop's turn hook, so an event is counted exactly when the CPU it caused is.
pub struct Window {
    pid: Option<u32>,
    pub opens_at: Instant,
    pub closes_at: Instant,
    opened: Option<(Instant, Option<ProcSample>)>,
    closed: Option<(Instant, Option<ProcSample>)>,
}

impl Window {
    pub fn new(pid: Option<u32>, now: Instant, warmup: Duration, duration: Duration) -> Self {
        Window {
            pid,
            opens_at: now + warmup,
            closes_at: now + warmup + duration,
            opened: None,
            closed: None,
        }
    }

    /// Takes the sample due at `now`, if any.
    pub fn tick(&mut self, now: Instant) {
        if self.opened.is_none() && now >= self.opens_at {
            self.opened = Some((now, self.pid.and_then(|pid| server::sample(pid).ok())));
        }
        if self.opened.is_some() && self.closed.is_none() && now >= self.closes_at {
            self.closed = Some((now, self.pid.and_then(|pid| server::sample(pid).ok())));
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

    /// Server CPU time (utime + stime) spent inside the window, in microseconds.
    pub fn server_cpu_us(&self) -> f64 {
        match (self.opened, self.closed) {
            (Some((_, Some(start))), Some((_, Some(end)))) => {
                end.cpu_us.saturating_sub(start.cpu_us) as f64
            }
            _ => f64::NAN,
        }
    }
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
        let mut window = Window::new(None, start, Duration::from_secs(1), Duration::from_secs(2));
        window.tick(start);
        assert!(!window.is_measuring());
        assert_eq!(window.next_edge(), Some(start + Duration::from_secs(1)));
        window.tick(start + Duration::from_secs(1));
        assert!(window.is_measuring());
        window.tick(start + Duration::from_secs(3));
        assert!(window.is_closed());
        assert!((window.seconds() - 2.0).abs() < 1e-9);
        assert!(window.server_cpu_us().is_nan());
    }
}
