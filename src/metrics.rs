//! Server counters, rendered in the Prometheus text exposition format at `/metrics`.
//!
//! Plain integers owned by the single reactor thread: no atomics, no locks.

use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Debug, Default)]
pub struct Metrics {
    pub accepted_total: u64,
    pub rejected_total: u64,
    pub http_requests_by_status: BTreeMap<u16, u64>,
    pub ws_messages_in: u64,
    pub ws_messages_out: u64,
    pub ws_bytes_in: u64,
    pub ws_bytes_out: u64,
    /// WebSocket closes by code; 1006 counts connections that ended without a close handshake.
    pub closes_by_code: BTreeMap<u16, u64>,
    pub dropped_droppable_frames: u64,
    pub slow_consumers_closed: u64,
    pub loop_iterations: u64,
}

/// Values sampled at render time rather than counted.
#[derive(Debug, Default, Clone, Copy)]
pub struct Gauges {
    pub open_connections: usize,
    pub websocket_connections: usize,
    pub timers_pending: usize,
    pub chat_sessions: usize,
    pub rooms: usize,
    pub uptime_seconds: u64,
}

impl Metrics {
    pub fn count_http_status(&mut self, status: u16) {
        *self.http_requests_by_status.entry(status).or_default() += 1;
    }

    pub fn count_close(&mut self, code: u16) {
        *self.closes_by_code.entry(code).or_default() += 1;
    }

    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP emotibot_{name} {help}");
            let _ = writeln!(out, "# TYPE emotibot_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "emotibot_{name}{labels} {value}");
            }
        };
        let plain = |value: u64| vec![(String::new(), value)];
        let gauge = |value: usize| plain(value as u64);

        metric(
            "open_connections",
            "gauge",
            "Open TCP connections.",
            &gauge(gauges.open_connections),
        );
        metric(
            "websocket_connections",
            "gauge",
            "Open WebSocket connections.",
            &gauge(gauges.websocket_connections),
        );
        metric(
            "chat_sessions",
            "gauge",
            "Chat sessions (authenticated or not).",
            &gauge(gauges.chat_sessions),
        );
        metric(
            "rooms",
            "gauge",
            "Rooms held in memory.",
            &gauge(gauges.rooms),
        );
        metric(
            "timers_pending",
            "gauge",
            "Armed timers.",
            &gauge(gauges.timers_pending),
        );
        metric(
            "uptime_seconds",
            "gauge",
            "Seconds since start.",
            &plain(gauges.uptime_seconds),
        );
        metric(
            "accepted_total",
            "counter",
            "Accepted TCP connections.",
            &plain(self.accepted_total),
        );
        metric(
            "rejected_total",
            "counter",
            "Connections refused at accept (connection or per-IP limit).",
            &plain(self.rejected_total),
        );
        let by_status: Vec<_> = self
            .http_requests_by_status
            .iter()
            .map(|(status, n)| (format!("{{status=\"{status}\"}}"), *n))
            .collect();
        metric(
            "http_requests_total",
            "counter",
            "HTTP responses by status.",
            &by_status,
        );
        metric(
            "ws_messages_total",
            "counter",
            "WebSocket data messages.",
            &[
                ("{direction=\"in\"}".to_string(), self.ws_messages_in),
                ("{direction=\"out\"}".to_string(), self.ws_messages_out),
            ],
        );
        metric(
            "ws_bytes_total",
            "counter",
            "WebSocket payload bytes.",
            &[
                ("{direction=\"in\"}".to_string(), self.ws_bytes_in),
                ("{direction=\"out\"}".to_string(), self.ws_bytes_out),
            ],
        );
        let closes: Vec<_> = self
            .closes_by_code
            .iter()
            .map(|(code, n)| (format!("{{code=\"{code}\"}}"), *n))
            .collect();
        metric(
            "ws_closes_total",
            "counter",
            "WebSocket closes by close code.",
            &closes,
        );
        metric(
            "dropped_frames_total",
            "counter",
            "Typing/presence/preview frames shed from backlogged connections.",
            &plain(self.dropped_droppable_frames),
        );
        metric(
            "slow_consumers_closed_total",
            "counter",
            "Connections closed with 1008 because their output backlog hit the limit.",
            &plain(self.slow_consumers_closed),
        );
        metric(
            "loop_iterations_total",
            "counter",
            "Event loop turns.",
            &plain(self.loop_iterations),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let mut metrics = Metrics::default();
        metrics.count_http_status(200);
        metrics.count_http_status(200);
        metrics.count_http_status(404);
        metrics.count_close(1000);
        metrics.ws_messages_in = 7;
        let text = metrics.render(&Gauges {
            open_connections: 3,
            ..Gauges::default()
        });
        assert!(
            text.contains("# TYPE emotibot_open_connections gauge\nemotibot_open_connections 3\n")
        );
        assert!(text.contains("emotibot_http_requests_total{status=\"200\"} 2\n"));
        assert!(text.contains("emotibot_http_requests_total{status=\"404\"} 1\n"));
        assert!(text.contains("emotibot_ws_closes_total{code=\"1000\"} 1\n"));
        assert!(text.contains("emotibot_ws_messages_total{direction=\"in\"} 7\n"));
        // Every sample line is `name{labels} value` or `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("emotibot_"), "{line}");
            value.parse::<u64>().unwrap();
        }
    }
}
