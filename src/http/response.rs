//! HTTP responses: a small value type and its serialisation onto the wire.

use std::borrow::Cow;
use std::io::Write;

/// A response body: either bytes that live for the whole program (embedded static files, fixed
/// messages), which are written without copying them into a new allocation, or bytes built for
/// this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Static(&'static [u8]),
    Owned(Vec<u8>),
}

impl Body {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Body::Static(bytes) => bytes,
            Body::Owned(bytes) => bytes,
        }
    }
}

/// A complete response, ready for [`Response::write_to`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Body,
    /// Headers beyond the ones `write_to` always emits, in the order they were added.
    pub headers: Vec<(&'static str, Cow<'static, str>)>,
}

const JSON: &str = "application/json";

impl Response {
    /// A JSON response; `body` must already be serialised JSON.
    pub fn json(status: u16, body: String) -> Response {
        Response::text(status, JSON, body)
    }

    /// The error shape every endpoint shares: `{"error":{"code":..,"message":..}}`.
    pub fn error(status: u16, code: &str, message: &str) -> Response {
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        Response::json(status, body.to_string())
    }

    pub fn text(status: u16, content_type: &'static str, body: String) -> Response {
        Response::bytes(status, content_type, body.into_bytes())
    }

    /// A response with a body built for this request, e.g. a file read from disk.
    pub fn bytes(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type,
            body: Body::Owned(body),
            headers: Vec::new(),
        }
    }

    /// A response whose body lives for the whole program, e.g. an embedded static file.
    pub fn static_bytes(status: u16, content_type: &'static str, body: &'static [u8]) -> Response {
        Response {
            status,
            content_type,
            body: Body::Static(body),
            headers: Vec::new(),
        }
    }

    pub fn with_header(self, name: &'static str, value: String) -> Response {
        self.with_header_value(name, Cow::Owned(value))
    }

    /// Like [`Response::with_header`], without allocating for a value known at compile time.
    pub fn with_static_header(self, name: &'static str, value: &'static str) -> Response {
        self.with_header_value(name, Cow::Borrowed(value))
    }

    fn with_header_value(mut self, name: &'static str, value: Cow<'static, str>) -> Response {
        self.headers.push((name, value));
        self
    }

    /// The value of an extra header added with `with_header`, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_ref())
    }

    /// 1xx, 204 and 304 responses never have a body (RFC 9110 6.4.1), so they get neither
    /// `Content-Type` nor `Content-Length`: a client must not wait for body bytes.
    fn status_forbids_body(&self) -> bool {
        self.status < 200 || self.status == 204 || self.status == 304
    }

    /// Status line, Date-free headers (Content-Type, Content-Length, Connection: keep-alive/close,
    /// X-Content-Type-Options: nosniff, any extra), then the body unless `head_only`.
    ///
    /// For `head_only` (a HEAD request) `Content-Length` is still the length of the body a GET would
    /// have received, as RFC 9110 9.3.2 asks.
    pub fn write_to(&self, out: &mut Vec<u8>, head_only: bool, keep_alive: bool) {
        // Writing into a Vec cannot fail, so the io::Result values are discarded.
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\n",
            self.status,
            reason_phrase(self.status)
        );
        let has_body = !self.status_forbids_body();
        if has_body {
            let _ = write!(
                out,
                "Content-Type: {}\r\nContent-Length: {}\r\n",
                self.content_type,
                self.body.as_bytes().len()
            );
        }
        // RFC 9110 7.8: whoever sends `Upgrade` (e.g. a 426) also lists it in `Connection`.
        let offers_upgrade = self.header("upgrade").is_some();
        out.extend_from_slice(match (offers_upgrade, keep_alive) {
            (false, true) => b"Connection: keep-alive\r\n",
            (false, false) => b"Connection: close\r\n",
            (true, true) => b"Connection: upgrade, keep-alive\r\n",
            (true, false) => b"Connection: upgrade, close\r\n",
        });
        out.extend_from_slice(b"X-Content-Type-Options: nosniff\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if has_body && !head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
    }
}

/// The reply that completes a WebSocket opening handshake (RFC 6455 4.2.2).
pub fn write_switching_protocols(out: &mut Vec<u8>, accept_key: &str) {
    const HEAD: &[u8] =
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ";
    // One allocation for the response and the first frames that follow it in the same write
    // (a chat session's `ready`), instead of growing the buffer two or three times.
    out.reserve(HEAD.len() + accept_key.len() + 4 + FIRST_FRAMES_BYTES);
    out.extend_from_slice(HEAD);
    out.extend_from_slice(accept_key.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

/// Room reserved after a 101 for the frames sent with it; a `ready` event takes about 150 bytes.
const FIRST_FRAMES_BYTES: usize = 384;

/// The reason phrase for the statuses this server sends; clients ignore it, humans reading a
/// capture do not.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(response: &Response, head_only: bool, keep_alive: bool) -> String {
        let mut out = Vec::new();
        response.write_to(&mut out, head_only, keep_alive);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_response_has_framing_and_security_headers() {
        let response = Response::json(200, r#"{"ok":true}"#.to_string());
        assert_eq!(
            written(&response, false, true),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\
             Connection: keep-alive\r\nX-Content-Type-Options: nosniff\r\n\r\n{\"ok\":true}"
        );
    }

    #[test]
    fn head_keeps_content_length_but_drops_the_body() {
        let response = Response::text(200, "text/plain; charset=utf-8", "hello".to_string());
        let get = written(&response, false, false);
        let head = written(&response, true, false);
        assert!(get.ends_with("\r\n\r\nhello"));
        assert!(head.ends_with("\r\n\r\n"));
        assert!(head.contains("Content-Length: 5\r\n"));
        assert!(head.contains("Connection: close\r\n"));
        assert_eq!(get.len(), head.len() + 5);
    }

    #[test]
    fn error_body_escapes_its_strings() {
        let response = Response::error(400, "bad_request", "quote \" and newline \n");
        let body = std::str::from_utf8(response.body.as_bytes()).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(parsed["error"]["code"], "bad_request");
        assert_eq!(parsed["error"]["message"], "quote \" and newline \n");
        assert_eq!(response.content_type, "application/json");
    }

    #[test]
    fn extra_headers_follow_in_order() {
        let response = Response::static_bytes(200, "text/plain", b"x")
            .with_static_header("Cache-Control", "no-cache")
            .with_header("ETag", "\"abc\"".to_string());
        let text = written(&response, false, true);
        let cache = text.find("Cache-Control: no-cache\r\n").unwrap();
        let etag = text.find("ETag: \"abc\"\r\n").unwrap();
        assert!(cache < etag);
        assert_eq!(response.header("etag"), Some("\"abc\""));
    }

    #[test]
    fn not_modified_has_no_body_headers() {
        let response = Response::static_bytes(304, "text/html", b"ignored")
            .with_static_header("ETag", "\"abc\"");
        let text = written(&response, false, true);
        assert!(text.starts_with("HTTP/1.1 304 Not Modified\r\n"));
        assert!(!text.contains("\r\nContent-Length:"));
        assert!(!text.contains("\r\nContent-Type:"));
        assert!(text.ends_with("ETag: \"abc\"\r\n\r\n"));
    }

    #[test]
    fn an_upgrade_offer_is_listed_in_connection() {
        let response = Response::error(426, "upgrade_required", "use WebSocket")
            .with_static_header("Upgrade", "websocket");
        let text = written(&response, false, false);
        assert!(text.contains("\r\nConnection: upgrade, close\r\n"));
        assert!(text.contains("\r\nUpgrade: websocket\r\n"));
    }

    #[test]
    fn switching_protocols_carries_the_accept_key() {
        let mut out = Vec::new();
        write_switching_protocols(&mut out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(
            out,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
    }
}
