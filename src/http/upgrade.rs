//! The server side of the WebSocket opening handshake (RFC 6455 4.2.1) and the `Origin` policy
//! that keeps other sites' pages from opening sockets with a visitor's credentials.

use std::borrow::Cow;

use super::percent::query_value;
use super::request::Request;
use super::response::Response;

/// Which WebSocket endpoint a request upgrades to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeTarget {
    /// `/ws`: the chat protocol.
    Chat,
    /// `/echo` (only with `--echo`): every message echoed back, for conformance testing.
    Echo,
}

/// A valid upgrade request: write [`super::write_switching_protocols`] with `accept_key`, then
/// speak WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade<'a> {
    pub target: UpgradeTarget,
    pub accept_key: String,
    /// From `Authorization: Bearer X`, else from `?token=X` (percent-decoded). Browsers cannot set
    /// headers on a WebSocket, hence the query fallback.
    pub token: Option<Cow<'a, str>>,
}

/// Which browser origins may open sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPolicy {
    /// Lowercased `scheme://host[:port]` values; empty means "the request's own host".
    allowed_origins: Vec<String>,
}

impl OriginPolicy {
    pub fn new(allowed_origins: &[String]) -> OriginPolicy {
        OriginPolicy {
            allowed_origins: allowed_origins
                .iter()
                .map(|origin| origin.trim().trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    /// Whether a request with `Origin: origin` and `Host: host` may open a socket.
    pub fn allows(&self, origin: &[u8], host: Option<&[u8]>) -> bool {
        let Ok(origin) = std::str::from_utf8(origin.trim_ascii()) else {
            return false;
        };
        if !self.allowed_origins.is_empty() {
            return self
                .allowed_origins
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(origin));
        }
        let Some(host) = host.and_then(|host| std::str::from_utf8(host.trim_ascii()).ok()) else {
            return false;
        };
        // `Origin: null` (sandboxed frames, file: pages) has no "://" and is refused here.
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false;
        };
        let default_port = match scheme.to_ascii_lowercase().as_str() {
            "http" | "ws" => ":80",
            "https" | "wss" => ":443",
            _ => return false,
        };
        // Browsers omit a default port in Origin while some clients write it in Host.
        let strip_default = |authority: &str| -> String {
            let lower = authority.to_ascii_lowercase();
            match lower.strip_suffix(default_port) {
                Some(without_port) => without_port.to_string(),
                None => lower,
            }
        };
        !authority.contains('/') && strip_default(authority) == strip_default(host)
    }
}

/// Checks a `GET` request to a WebSocket endpoint and derives the accept key; the `Err` is the
/// response to send instead (400, 403 or 426).
pub fn accept_upgrade<'a>(
    request: &Request<'a>,
    target: UpgradeTarget,
    origin_policy: &OriginPolicy,
) -> Result<Upgrade<'a>, Response> {
    if !request.header_has_token("upgrade", "websocket") {
        return Err(Response::error(
            426,
            "upgrade_required",
            "this endpoint speaks WebSocket only",
        )
        .with_static_header("Upgrade", "websocket"));
    }
    if request.minor_version < 1 {
        return Err(bad_handshake("a WebSocket upgrade needs HTTP/1.1"));
    }
    if !request.header_has_token("connection", "upgrade") {
        return Err(bad_handshake(
            "the Connection header must contain \"upgrade\"",
        ));
    }
    let host = request.header("host");
    if host.is_none() {
        return Err(bad_handshake("the Host header is missing"));
    }
    if request
        .header("sec-websocket-version")
        .map(<[u8]>::trim_ascii)
        != Some(b"13")
    {
        return Err(Response::error(
            426,
            "unsupported_websocket_version",
            "only WebSocket version 13 is supported",
        )
        .with_static_header("Sec-WebSocket-Version", "13"));
    }
    let key = request
        .header("sec-websocket-key")
        .map(<[u8]>::trim_ascii)
        .filter(|key| is_base64_of_16_bytes(key));
    let Some(key) = key else {
        return Err(bad_handshake(
            "Sec-WebSocket-Key must be 16 bytes in base64",
        ));
    };
    if let Some(origin) = request.header("origin") {
        if !origin_policy.allows(origin, host) {
            return Err(Response::error(
                403,
                "origin_not_allowed",
                "pages from this origin may not open a socket here",
            ));
        }
    }
    let token = bearer_token(request)?;
    Ok(Upgrade {
        target,
        accept_key: tungstenite::handshake::derive_accept_key(key),
        token,
    })
}

fn bad_handshake(message: &str) -> Response {
    Response::error(400, "bad_websocket_handshake", message)
}

/// Sixteen bytes encode to 22 base64 characters and `==` padding.
fn is_base64_of_16_bytes(key: &[u8]) -> bool {
    let is_base64_char = |byte: &u8| byte.is_ascii_alphanumeric() || *byte == b'+' || *byte == b'/';
    key.len() == 24 && key.ends_with(b"==") && key[..22].iter().all(is_base64_char)
}

/// The token from `Authorization: Bearer X` or, failing that, `?token=X`.
fn bearer_token<'a>(request: &Request<'a>) -> Result<Option<Cow<'a, str>>, Response> {
    let bad_token = || Response::error(400, "bad_token", "the token is malformed");
    if let Some(authorization) = request.header("authorization") {
        let authorization = std::str::from_utf8(authorization).map_err(|_| bad_token())?;
        let (scheme, token) = authorization.split_once(' ').unwrap_or((authorization, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            let token = token.trim();
            return if token.is_empty() {
                Err(bad_token())
            } else {
                Ok(Some(Cow::Borrowed(token)))
            };
        }
    }
    match request.query.and_then(|query| query_value(query, "token")) {
        None => Ok(None),
        Some(None) => Err(bad_token()),
        Some(Some(token)) if token.is_empty() => Err(bad_token()),
        Some(Some(token)) => Ok(Some(token)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::{parse, Parsed};

    /// The handshake from RFC 6455 1.3, whose accept key the RFC gives.
    const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const RFC_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn handshake(extra_headers: &str, target: &str) -> String {
        format!(
            "GET {target} HTTP/1.1\r\nHost: chat.example.com:8080\r\nUpgrade: websocket\r\n\
             Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: {RFC_KEY}\r\n{extra_headers}\r\n"
        )
    }

    fn outcome(raw: &str, allowed: &[&str]) -> Result<Upgrade<'static>, u16> {
        let policy = OriginPolicy::new(&allowed.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let Parsed::Complete { request, .. } = parse(raw.as_bytes()) else {
            panic!("test request must parse: {raw}");
        };
        accept_upgrade(&request, UpgradeTarget::Chat, &policy)
            .map(|upgrade| Upgrade {
                target: upgrade.target,
                accept_key: upgrade.accept_key,
                token: upgrade.token.map(|token| Cow::Owned(token.into_owned())),
            })
            .map_err(|response| response.status)
    }

    #[test]
    fn rfc_example_is_accepted() {
        let upgrade = outcome(&handshake("", "/ws"), &[]).unwrap();
        assert_eq!(upgrade.accept_key, RFC_ACCEPT);
        assert_eq!(upgrade.target, UpgradeTarget::Chat);
        assert_eq!(upgrade.token, None);
    }

    #[test]
    fn a_plain_get_is_told_to_upgrade() {
        let policy = OriginPolicy::new(&[]);
        let Parsed::Complete { request, .. } = parse(b"GET /ws HTTP/1.1\r\nHost: h\r\n\r\n") else {
            panic!("must parse");
        };
        let response = accept_upgrade(&request, UpgradeTarget::Chat, &policy).unwrap_err();
        assert_eq!(response.status, 426);
        assert_eq!(response.header("Upgrade"), Some("websocket"));
    }

    #[test]
    fn header_violations_are_refused_with_the_rfc_status() {
        let base = handshake("", "/ws");
        let cases = [
            (
                base.replace("Upgrade: websocket", "Upgrade: h2c, WebSocket"),
                Ok(()),
            ),
            (base.replace("keep-alive, Upgrade", "keep-alive"), Err(400)),
            (base.replace("HTTP/1.1", "HTTP/1.0"), Err(400)),
            (base.replace("Version: 13", "Version: 8"), Err(426)),
            (base.replace("Sec-WebSocket-Version: 13\r\n", ""), Err(426)),
            (base.replace(RFC_KEY, "dGhlIHNhbXBsZSBub25j"), Err(400)),
            (base.replace(RFC_KEY, "dGhlIHNhbXBsZSBub25jZSE="), Err(400)),
            (base.replace(RFC_KEY, "dGhlIHNhbXBsZSBub25j*Q=="), Err(400)),
            (
                base.replace(&format!("Sec-WebSocket-Key: {RFC_KEY}\r\n"), ""),
                Err(400),
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(outcome(&raw, &[]).map(|_| ()), expected, "{raw}");
        }
    }

    #[test]
    fn wrong_version_names_the_supported_one() {
        let policy = OriginPolicy::new(&[]);
        let raw = handshake("", "/ws").replace("Version: 13", "Version: 8");
        let Parsed::Complete { request, .. } = parse(raw.as_bytes()) else {
            panic!("must parse");
        };
        let response = accept_upgrade(&request, UpgradeTarget::Chat, &policy).unwrap_err();
        assert_eq!(response.header("Sec-WebSocket-Version"), Some("13"));
    }

    #[test]
    fn origin_must_be_the_same_host_by_default() {
        let same = handshake("Origin: http://chat.example.com:8080\r\n", "/ws");
        assert!(outcome(&same, &[]).is_ok());
        let same_upper = handshake("Origin: HTTP://Chat.Example.com:8080\r\n", "/ws");
        assert!(outcome(&same_upper, &[]).is_ok());
        let other_host = handshake("Origin: http://evil.example:8080\r\n", "/ws");
        assert_eq!(outcome(&other_host, &[]).map(|_| ()), Err(403));
        let other_port = handshake("Origin: http://chat.example.com:9090\r\n", "/ws");
        assert_eq!(outcome(&other_port, &[]).map(|_| ()), Err(403));
        let null = handshake("Origin: null\r\n", "/ws");
        assert_eq!(outcome(&null, &[]).map(|_| ()), Err(403));
        let no_origin = handshake("", "/ws");
        assert!(outcome(&no_origin, &[]).is_ok());
    }

    #[test]
    fn default_ports_are_equivalent() {
        let policy = OriginPolicy::new(&[]);
        assert!(policy.allows(b"https://example.com", Some(b"example.com:443")));
        assert!(policy.allows(b"http://example.com:80", Some(b"example.com")));
        assert!(!policy.allows(b"https://example.com", Some(b"example.com:80")));
        assert!(!policy.allows(b"http://example.com/path", Some(b"example.com")));
        assert!(!policy.allows(b"http://example.com", None));
    }

    #[test]
    fn an_allow_list_replaces_the_same_host_rule() {
        let allowed = ["https://app.example.com", "http://localhost:3000/"];
        let listed = handshake("Origin: https://APP.example.com\r\n", "/ws");
        assert!(outcome(&listed, &allowed).is_ok());
        let trailing_slash_config = handshake("Origin: http://localhost:3000\r\n", "/ws");
        assert!(outcome(&trailing_slash_config, &allowed).is_ok());
        let own_host = handshake("Origin: http://chat.example.com:8080\r\n", "/ws");
        assert_eq!(outcome(&own_host, &allowed).map(|_| ()), Err(403));
    }

    #[test]
    fn token_comes_from_the_header_or_the_query() {
        let from_header = handshake("Authorization: Bearer abc.def.ghi\r\n", "/ws");
        assert_eq!(
            outcome(&from_header, &[]).unwrap().token.as_deref(),
            Some("abc.def.ghi")
        );
        let from_query = handshake("", "/ws?room=x&token=abc%2Edef.g%2Bh");
        assert_eq!(
            outcome(&from_query, &[]).unwrap().token.as_deref(),
            Some("abc.def.g+h")
        );
        let header_wins = handshake(
            "authorization: bearer from-header\r\n",
            "/ws?token=from-query",
        );
        assert_eq!(
            outcome(&header_wins, &[]).unwrap().token.as_deref(),
            Some("from-header")
        );
        let basic_is_ignored = handshake("Authorization: Basic dXNlcg==\r\n", "/ws");
        assert_eq!(outcome(&basic_is_ignored, &[]).unwrap().token, None);
        let bad_escape = handshake("", "/ws?token=%zz");
        assert_eq!(outcome(&bad_escape, &[]).map(|_| ()), Err(400));
        let empty_bearer = handshake("Authorization: Bearer \r\n", "/ws");
        assert_eq!(outcome(&empty_bearer, &[]).map(|_| ()), Err(400));
    }

    #[test]
    fn the_query_token_borrows_when_it_needs_no_decoding() {
        let policy = OriginPolicy::new(&[]);
        let raw = handshake("", "/ws?token=plain.jwt.value");
        let Parsed::Complete { request, .. } = parse(raw.as_bytes()) else {
            panic!("must parse");
        };
        let upgrade = accept_upgrade(&request, UpgradeTarget::Echo, &policy).unwrap();
        assert!(matches!(
            upgrade.token,
            Some(Cow::Borrowed("plain.jwt.value"))
        ));
        assert_eq!(upgrade.target, UpgradeTarget::Echo);
    }
}
