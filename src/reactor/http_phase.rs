//! What the reactor does with a connection's bytes before the WebSocket upgrade: parse a request,
//! answer it (static files come ready from the router; the app endpoints are rendered here), or
//! upgrade it.

use super::connection::Phase;
use super::outbox::{queue_flush, rearm, ConnectionOutbox};
use super::Reactor;
use crate::http::request::{self, Parsed};
use crate::http::response::{write_switching_protocols, Response};
use crate::http::router::{Route, Upgrade, UpgradeTarget};
use crate::ws::connection::WsConnection;
use serde::Deserialize;

/// Lifetime of tokens minted by `POST /api/dev/token`.
const DEV_TOKEN_TTL_S: u64 = 3600;

pub(super) enum Progress {
    /// A request was handled; this many bytes were used.
    Consumed(usize),
    /// The request is not complete yet.
    NeedMore,
    /// The connection takes no more requests.
    Done,
}

#[derive(Deserialize)]
struct DevTokenRequest {
    user: String,
    #[serde(default)]
    name: Option<String>,
}

fn valid_user_id(user: &str) -> bool {
    (1..=64).contains(&user.len())
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl Reactor {
    pub(super) fn process_http(&mut self, key: usize, input: &[u8], now: u64) -> Progress {
        let (request, len) = match request::parse(input) {
            Parsed::Partial => return Progress::NeedMore,
            Parsed::Invalid(response) => {
                self.respond(key, &response, false, false, now);
                return Progress::Done;
            }
            Parsed::Complete { request, len } => (request, len),
        };
        let head_only = request.method == "HEAD";
        let response = match self.router.route(&request) {
            Route::Response(response) => response,
            Route::Upgrade(upgrade) => return self.upgrade(key, upgrade, len, now),
            Route::Health => Response::json(
                200,
                serde_json::json!({
                    "status": "ok",
                    "dev_mode": self.config.dev_mode,
                    "connections": self.conns.len(),
                    "uptime_s": now / 1000,
                })
                .to_string(),
            ),
            Route::Config => Response::json(
                200,
                serde_json::json!({
                    "dev_mode": self.config.dev_mode,
                    "ws_path": "/ws",
                    "typing_timeout_ms": self.config.typing_timeout_ms,
                    "ping_interval_ms": self.config.ping_interval_ms,
                })
                .to_string(),
            ),
            Route::Metrics => Response::text(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics.render(&self.gauges(now)),
            ),
            Route::DevToken { body } => self.dev_token(body, now),
        };
        // Decided after routing: an upgrade (the common request) never needs it.
        let keep_alive = request.keep_alive() && self.shutdown_deadline.is_none();
        self.respond(key, &response, head_only, keep_alive, now);
        if keep_alive {
            Progress::Consumed(len)
        } else {
            Progress::Done
        }
    }

    fn dev_token(&self, body: &[u8], now: u64) -> Response {
        if !self.config.dev_mode {
            return Response::error(404, "not_found", "no such resource");
        }
        let request: DevTokenRequest = match serde_json::from_slice(body) {
            Ok(request) => request,
            Err(_) => {
                return Response::error(
                    400,
                    "bad_request",
                    "expected a JSON body like {\"user\":\"alice\"}",
                )
            }
        };
        if !valid_user_id(&request.user) {
            return Response::error(
                400,
                "bad_user",
                "user must be 1-64 characters of A-Z a-z 0-9 _ . -",
            );
        }
        let name = request
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty());
        if name.is_some_and(|n| n.chars().count() > 64) {
            return Response::error(400, "bad_name", "name must be at most 64 characters");
        }
        let now_s = (self.unix_ms_at_zero + now) / 1000;
        match self
            .chat
            .authenticator()
            .mint(&request.user, name, DEV_TOKEN_TTL_S, now_s)
        {
            Ok(token) => Response::json(
                200,
                serde_json::json!({
                    "token": token,
                    "user": request.user,
                    "expires_at": now_s + DEV_TOKEN_TTL_S,
                })
                .to_string(),
            ),
            Err(err) => Response::error(500, "mint_failed", &err),
        }
    }

    fn respond(
        &mut self,
        key: usize,
        response: &Response,
        head_only: bool,
        keep_alive: bool,
        now: u64,
    ) {
        self.metrics.count_http_status(response.status);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        response.write_to(&mut conn.output, head_only, keep_alive);
        if keep_alive {
            // The next request gets a fresh head deadline.
            rearm(
                &mut self.wheel,
                conn,
                key,
                now + self.config.handshake_timeout_ms,
            );
        } else {
            conn.close_after_flush = true;
        }
        queue_flush(&mut self.flush_queue, conn, key);
    }

    fn upgrade(&mut self, key: usize, upgrade: Upgrade<'_>, len: usize, now: u64) -> Progress {
        let echo = matches!(upgrade.target, UpgradeTarget::Echo);
        let claims = match (&upgrade.token, echo) {
            (Some(token), false) => {
                let now_s = (self.unix_ms_at_zero + now) / 1000;
                match self.chat.authenticator().verify(token, now_s) {
                    Ok(claims) => Some(claims),
                    Err(err) => {
                        let response = Response::error(401, "unauthorized", &err.to_string())
                            .with_header("WWW-Authenticate", "Bearer".to_string());
                        self.respond(key, &response, false, false, now);
                        return Progress::Done;
                    }
                }
            }
            _ => None,
        };
        self.metrics.count_http_status(101);
        let Some(conn) = self.conns.get_mut(key) else {
            return Progress::Done;
        };
        // A drained buffer from the pool, when one is spare, rather than a fresh allocation
        // for every upgrade (the response and the first frames after it fill ~0.5 KiB).
        self.output_pool.supply(&mut conn.output, 0);
        write_switching_protocols(&mut conn.output, &upgrade.accept_key);
        conn.phase = Phase::WebSocket {
            ws: WsConnection::new(self.config.max_message_bytes),
            echo,
            chat_open: !echo,
        };
        rearm(
            &mut self.wheel,
            conn,
            key,
            now + self.config.ping_interval_ms,
        );
        queue_flush(&mut self.flush_queue, conn, key);
        if !echo {
            let mut outbox = outbox!(self, now);
            self.chat.open(key, claims, now, &mut outbox);
        }
        Progress::Consumed(len)
    }
}

#[cfg(test)]
mod tests {
    use super::valid_user_id;

    #[test]
    fn dev_token_user_ids() {
        assert!(valid_user_id("alice"));
        assert!(valid_user_id("a.b-c_9"));
        assert!(!valid_user_id(""));
        assert!(!valid_user_id("al ice"));
        assert!(!valid_user_id("user:bob"));
        assert!(!valid_user_id(&"x".repeat(65)));
    }
}
