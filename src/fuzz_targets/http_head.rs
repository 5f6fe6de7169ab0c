//! `http_head`: arbitrary bytes as what a client sends on a fresh connection, into request parsing
//! and routing, the way the reactor uses them (pipelined requests on a keep-alive connection).
//!
//! Input layout: the first byte picks the router configuration and a cut point; the rest is the
//! byte stream. Invariants checked:
//! - no panic; a partial request never needs more than the head and body limits to be buffered;
//! - any strict prefix of a complete request is reported as partial (a request split across
//!   reads is never refused);
//! - every ready response serialises to a well-formed HTTP/1.1 response (status line, no CR or LF
//!   inside a header, `Content-Length` equal to the body sent, JSON bodies that parse), and none
//!   of them is a 101;
//! - an upgrade is only granted to `GET /ws` (or `/echo` when enabled) over HTTP/1.1 with
//!   `Upgrade: websocket`, `Connection: upgrade`, version 13, a key that decodes to 16 bytes, the
//!   matching accept key and, when the request has an `Origin`, an allowed one, all checked here
//!   independently of the router.

use crate::http::request::{parse, Parsed, Request, MAX_BODY_BYTES, MAX_HEAD_BYTES};
use crate::http::response::Response;
use crate::http::router::{Route, Router, RouterConfig, StaticSource, UpgradeTarget};

/// The origin allowed when the input selects an explicit allow-list.
const LISTED_ORIGIN: &str = "https://chat.example.com";

pub fn http_head(data: &[u8]) {
    let Some((&config, stream)) = data.split_first() else {
        return;
    };
    let echo = config & 0x01 != 0;
    let allowed_origins = if config & 0x02 != 0 {
        vec![LISTED_ORIGIN.to_string()]
    } else {
        Vec::new()
    };
    let router = Router::new(RouterConfig {
        static_source: StaticSource::Embedded,
        allowed_origins: allowed_origins.clone(),
        echo,
    });
    let cut_seed = usize::from(config >> 2);

    let mut offset = 0;
    while offset < stream.len() {
        let rest = &stream[offset..];
        let (request, len) = match parse(rest) {
            Parsed::Partial => {
                assert!(
                    rest.len() <= MAX_HEAD_BYTES + MAX_BODY_BYTES,
                    "{} bytes buffered and the request is still partial",
                    rest.len()
                );
                return;
            }
            Parsed::Invalid(response) => {
                assert!(
                    (400..500).contains(&response.status),
                    "a refused request got status {}",
                    response.status
                );
                check_response(&response, false, false);
                return;
            }
            Parsed::Complete { request, len } => (request, len),
        };
        assert!(
            len > 0 && len <= rest.len(),
            "request length {len} out of range"
        );
        check_prefixes_are_partial(&rest[..len], cut_seed);
        match router.route(&request) {
            Route::Response(response) => {
                assert_ne!(response.status, 101, "a ready response switched protocols");
                check_response(&response, request.is_head(), request.keep_alive());
                if !request.keep_alive() {
                    return;
                }
            }
            Route::Upgrade(upgrade) => {
                check_upgrade_is_valid(&request, upgrade.target, &allowed_origins, echo);
                assert_eq!(
                    upgrade.accept_key,
                    tungstenite::handshake::derive_accept_key(
                        request
                            .header("sec-websocket-key")
                            .unwrap_or_default()
                            .trim_ascii()
                    ),
                    "the accept key does not match the request's key"
                );
                if let Some(token) = &upgrade.token {
                    assert!(!token.is_empty(), "an empty token was passed on");
                }
                // From here on the connection speaks WebSocket.
                return;
            }
            Route::Health | Route::Metrics | Route::Config => {
                assert!(
                    matches!(request.method, "GET" | "HEAD"),
                    "{} reached a read-only endpoint",
                    request.method
                );
            }
            Route::DevToken { body } => {
                assert_eq!(request.method, "POST");
                assert_eq!(body, request.body);
            }
        }
        offset += len;
    }
}

/// Strict prefixes of a complete request must parse as partial: the reactor parses after every
/// read, and a request that arrives in pieces must not be refused part-way.
fn check_prefixes_are_partial(request_bytes: &[u8], cut_seed: usize) {
    let len = request_bytes.len();
    let cuts = [len - 1, cut_seed % len, len / 2];
    for cut in cuts {
        assert!(
            matches!(parse(&request_bytes[..cut]), Parsed::Partial),
            "the first {cut} of {len} bytes of a valid request were not reported as partial"
        );
    }
}

/// Serialises `response` as the reactor would and checks the result with httparse.
fn check_response(response: &Response, head_only: bool, keep_alive: bool) {
    assert!(
        (100..600).contains(&response.status),
        "status {} out of range",
        response.status
    );
    for (name, value) in &response.headers {
        assert!(
            !name.contains(['\r', '\n', ':']) && !value.contains(['\r', '\n']),
            "header {name:?}: {value:?} would break the response framing"
        );
    }
    if response.content_type == "application/json" {
        assert!(
            serde_json::from_slice::<serde_json::Value>(response.body.as_bytes()).is_ok(),
            "a JSON response body does not parse"
        );
    }
    let mut wire = Vec::new();
    response.write_to(&mut wire, head_only, keep_alive);
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(&wire) {
        Ok(httparse::Status::Complete(head_len)) => head_len,
        other => panic!("the response head does not parse: {other:?}"),
    };
    assert_eq!(parsed.code, Some(response.status));
    let content_length = parsed
        .headers
        .iter()
        .find(|header| header.name.eq_ignore_ascii_case("content-length"))
        .map(|header| {
            std::str::from_utf8(header.value)
                .ok()
                .and_then(|value| value.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("bad Content-Length {:?}", header.value))
        });
    let body_sent = wire.len() - head_len;
    match content_length {
        Some(length) if !head_only => assert_eq!(length, body_sent, "Content-Length mismatch"),
        Some(length) => {
            assert_eq!(body_sent, 0, "a HEAD response carried a body");
            assert_eq!(length, response.body.as_bytes().len());
        }
        None => assert_eq!(body_sent, 0, "a body was sent without Content-Length"),
    }
}

fn has_token(request: &Request<'_>, name: &str, token: &str) -> bool {
    request
        .headers()
        .filter(|(known, _)| known.eq_ignore_ascii_case(name))
        .flat_map(|(_, value)| value.split(|&byte| byte == b','))
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// RFC 6455 4.2.1 and the origin policy, re-derived from the request without the router.
fn check_upgrade_is_valid(
    request: &Request<'_>,
    target: UpgradeTarget,
    allowed_origins: &[String],
    echo: bool,
) {
    assert_eq!(request.method, "GET", "upgrade on a non-GET request");
    assert!(request.minor_version >= 1, "upgrade over HTTP/1.0");
    match target {
        UpgradeTarget::Chat => assert_eq!(request.path, "/ws"),
        UpgradeTarget::Echo => assert!(echo && request.path == "/echo", "echo upgrade while off"),
    }
    assert!(
        has_token(request, "upgrade", "websocket"),
        "no Upgrade: websocket"
    );
    assert!(
        has_token(request, "connection", "upgrade"),
        "no Connection: upgrade"
    );
    assert_eq!(
        request
            .header("sec-websocket-version")
            .map(<[u8]>::trim_ascii),
        Some(&b"13"[..]),
        "upgrade without version 13"
    );
    let key = request
        .header("sec-websocket-key")
        .map(<[u8]>::trim_ascii)
        .unwrap_or_else(|| panic!("upgrade without Sec-WebSocket-Key"));
    assert_eq!(
        decode_base64(key).map(|bytes| bytes.len()),
        Some(16),
        "upgrade with a key that is not 16 bytes of base64: {key:?}"
    );
    let host = request.header("host");
    assert!(host.is_some(), "upgrade without Host");
    if let Some(origin) = request.header("origin") {
        assert!(
            origin_is_allowed(origin, host.unwrap_or_default(), allowed_origins),
            "upgrade from origin {:?} (host {:?}, allowed {allowed_origins:?})",
            String::from_utf8_lossy(origin),
            host.map(String::from_utf8_lossy)
        );
    }
}

/// The origin rule written out plainly: an explicit list is matched exactly (ignoring case and a
/// trailing slash in the list); otherwise the origin must be `http(s)://` plus the request's own
/// `Host`, where a default port may be written or left out on either side.
fn origin_is_allowed(origin: &[u8], host: &[u8], allowed_origins: &[String]) -> bool {
    let Ok(origin) = std::str::from_utf8(origin.trim_ascii()) else {
        return false;
    };
    let origin = origin.to_ascii_lowercase();
    if !allowed_origins.is_empty() {
        return allowed_origins
            .iter()
            .any(|allowed| allowed.trim().trim_end_matches('/').to_ascii_lowercase() == origin);
    }
    let Ok(host) = std::str::from_utf8(host.trim_ascii()) else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    let (authority, default_port) = if let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("ws://"))
    {
        (rest, ":80")
    } else if let Some(rest) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("wss://"))
    {
        (rest, ":443")
    } else {
        return false;
    };
    if authority.contains('/') {
        return false;
    }
    let without_default = |authority: &str| -> String {
        authority
            .strip_suffix(default_port)
            .unwrap_or(authority)
            .to_string()
    };
    without_default(authority) == without_default(&host)
}

/// Standard base64 with padding; `None` for anything else.
fn decode_base64(text: &[u8]) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let value = |byte: u8| -> Option<u32> {
        Some(match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut decoded = Vec::with_capacity(text.len() / 4 * 3);
    for (index, quad) in text.chunks(4).enumerate() {
        let is_last = index == text.len() / 4 - 1;
        let padding = quad.iter().rev().take_while(|&&byte| byte == b'=').count();
        if padding > 2 || (padding > 0 && !is_last) {
            return None;
        }
        let mut bits = 0u32;
        for &byte in &quad[..4 - padding] {
            bits = bits << 6 | value(byte)?;
        }
        bits <<= 6 * padding as u32;
        let bytes = bits.to_be_bytes();
        decoded.extend_from_slice(&bytes[1..4 - padding]);
    }
    Some(decoded)
}
