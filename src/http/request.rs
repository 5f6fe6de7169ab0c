//! Parsing one HTTP/1.1 request (head plus a `Content-Length` body) from the front of a buffer.
//!
//! The parsed [`Request`] borrows everything from the input: no allocation on the common path.
//! Headers live in a fixed array inside the request, so the caller supplies no storage.

use super::response::Response;

/// A head longer than this (request line + headers + blank line) is answered with 431.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// A request with more header lines than this is answered with 431.
pub const MAX_HEADERS: usize = 32;
/// A `Content-Length` above this is answered with 413. Chunked request bodies are refused with 411
/// (Length Required): every endpoint takes small bodies, so requiring a length costs clients nothing.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The outcome of [`parse`].
// `Complete` carries the fixed header array (about 1 KiB). Boxing it would put a heap allocation on
// every request; a value this size on the stack, produced once per request, is the cheaper choice.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Parsed<'a> {
    /// More bytes are needed; call again when they arrive.
    Partial,
    /// A whole request; it used the first `len` bytes of the buffer (pipelined requests follow).
    Complete { request: Request<'a>, len: usize },
    /// The bytes can never become a valid request. Write the response and close the connection:
    /// after a framing error the position of the next request is unknown.
    Invalid(Response),
}

/// One parsed request, borrowing from the buffer it was parsed from.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The request target's path, still percent-encoded, without the query.
    pub path: &'a str,
    /// The text after the first `?`, if any, still percent-encoded.
    pub query: Option<&'a str>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub body: &'a [u8],
    headers: [httparse::Header<'a>; MAX_HEADERS],
    header_count: usize,
}

impl<'a> Request<'a> {
    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// Every header in the order received, repeated names included.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        self.headers[..self.header_count]
            .iter()
            .map(|header| (header.name, header.value))
    }

    /// Whether any header called `name` holds `token` in its comma-separated list
    /// (case-insensitive), e.g. `Connection: keep-alive, Upgrade` has the token `upgrade`.
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers()
            .filter(|(known, _)| known.eq_ignore_ascii_case(name))
            .any(|(_, value)| {
                value
                    .split(|&byte| byte == b',')
                    .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
            })
    }

    /// HTTP/1.1 keeps the connection open unless the client sent `Connection: close`;
    /// HTTP/1.0 closes it unless the client sent `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        if self.minor_version >= 1 {
            !self.header_has_token("connection", "close")
        } else {
            self.header_has_token("connection", "keep-alive")
        }
    }

    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

/// Parses one request (head + Content-Length body) from the start of `buf` with httparse. `len` is
/// how many bytes it took (pipelined requests follow). Partial while incomplete, Invalid (a 400, 411,
/// 413 or 431 JSON response) when it can never become valid, including a head already longer than
/// [`MAX_HEAD_BYTES`] without its end.
pub fn parse(buf: &[u8]) -> Parsed<'_> {
    // httparse writes the headers straight into the array the Request keeps: no second copy.
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(head_len)) => head_len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => return head_too_large(),
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return invalid(
                431,
                "too_many_headers",
                &format!("a request may carry at most {MAX_HEADERS} headers"),
            )
        }
        Err(error) => return invalid(400, "bad_request", &format!("malformed request: {error}")),
    };
    if head_len > MAX_HEAD_BYTES {
        return head_too_large();
    }
    // httparse fills all three on Complete; a missing one would be a parser bug, not a panic here.
    let (Some(method), Some(target), Some(minor_version)) =
        (parsed.method, parsed.path, parsed.version)
    else {
        return invalid(400, "bad_request", "incomplete request line");
    };
    let header_count = parsed.headers.len();

    let Some((path, query)) = split_target(target) else {
        return invalid(400, "bad_target", "the request target must be a path");
    };
    let mut request = Request {
        method,
        path,
        query,
        minor_version,
        body: &[],
        headers,
        header_count,
    };
    let body_len = match body_length(&request) {
        Ok(body_len) => body_len,
        Err(response) => return Parsed::Invalid(response),
    };
    let Some(body) = buf.get(head_len..head_len + body_len) else {
        return Parsed::Partial;
    };
    request.body = body;
    Parsed::Complete {
        request,
        len: head_len + body_len,
    }
}

fn invalid(status: u16, code: &str, message: &str) -> Parsed<'static> {
    Parsed::Invalid(Response::error(status, code, message))
}

fn head_too_large() -> Parsed<'static> {
    invalid(
        431,
        "head_too_large",
        &format!("the request line and headers may take at most {MAX_HEAD_BYTES} bytes"),
    )
}

/// Splits a request target into path and query. Accepts origin-form (`/path?query`) and, as
/// RFC 9112 3.2.2 requires of servers, absolute-form (`http://host/path?query`), whose authority
/// is ignored in favour of `Host`. Anything else (`*`, authority-form) is refused.
fn split_target(target: &str) -> Option<(&str, Option<&str>)> {
    let origin_form = if target.starts_with('/') {
        target
    } else {
        let after_scheme = strip_prefix_ignore_case(target, "http://")
            .or_else(|| strip_prefix_ignore_case(target, "https://"))?;
        match after_scheme.find(['/', '?']) {
            Some(start) if after_scheme[start..].starts_with('/') => &after_scheme[start..],
            Some(start) => return Some(("/", Some(&after_scheme[start + 1..]))),
            None => "/",
        }
    };
    Some(match origin_form.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (origin_form, None),
    })
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Checks the headers that decide where this request ends and returns its body length, in one
/// pass over the headers. Refuses anything that could let two parties disagree about the framing
/// (request smuggling): repeated differing lengths, non-digits, `Transfer-Encoding`; and, per
/// RFC 9112 3.2, an HTTP/1.1 request without exactly one `Host`.
fn body_length(request: &Request<'_>) -> Result<usize, Response> {
    let mut host_count = 0usize;
    let mut transfer_encoding: Option<&[u8]> = None;
    let mut length: Option<usize> = None;
    for (name, value) in request.headers() {
        if name.eq_ignore_ascii_case("host") {
            host_count += 1;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = Some(value);
        } else if name.eq_ignore_ascii_case("content-length") {
            let this_length = parse_content_length(value)?;
            if length.is_some_and(|earlier| earlier != this_length) {
                return Err(Response::error(
                    400,
                    "bad_content_length",
                    "conflicting Content-Length headers",
                ));
            }
            length = Some(this_length);
        }
    }
    match host_count {
        0 if request.minor_version >= 1 => {
            return Err(Response::error(
                400,
                "bad_host",
                "HTTP/1.1 requests must carry a Host header",
            ))
        }
        0 | 1 => {}
        _ => {
            return Err(Response::error(
                400,
                "bad_host",
                "a request may carry only one Host header",
            ))
        }
    }
    if let Some(coding) = transfer_encoding {
        let chunked_last = coding
            .rsplit(|&byte| byte == b',')
            .next()
            .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        return Err(if chunked_last {
            Response::error(
                411,
                "length_required",
                "chunked request bodies are not accepted; send Content-Length",
            )
        } else {
            // RFC 9112 6.3: without chunked as the final coding the length cannot be known.
            Response::error(
                400,
                "bad_transfer_encoding",
                "unsupported Transfer-Encoding",
            )
        });
    }
    Ok(length.unwrap_or(0))
}

fn parse_content_length(value: &[u8]) -> Result<usize, Response> {
    let bad = || Response::error(400, "bad_content_length", "Content-Length must be digits");
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    // Any value with more digits than this is over the limit anyway; the cap also rules out
    // overflow while accumulating.
    if value.len() > 9 {
        return Err(body_too_large());
    }
    let length = value.iter().fold(0usize, |total, digit| {
        total * 10 + usize::from(digit - b'0')
    });
    if length > MAX_BODY_BYTES {
        return Err(body_too_large());
    }
    Ok(length)
}

fn body_too_large() -> Response {
    Response::error(
        413,
        "body_too_large",
        &format!("request bodies may take at most {MAX_BODY_BYTES} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> (Request<'_>, usize) {
        match parse(buf) {
            Parsed::Complete { request, len } => (request, len),
            other => panic!("expected a complete request, got {other:?}"),
        }
    }

    fn invalid_status(buf: &[u8]) -> u16 {
        match parse(buf) {
            Parsed::Invalid(response) => response.status,
            other => panic!("expected an invalid request, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_complete_get() {
        let buf = b"GET /js/app.js?v=2&x=y HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
        let (request, len) = complete(buf);
        assert_eq!(len, buf.len());
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/js/app.js");
        assert_eq!(request.query, Some("v=2&x=y"));
        assert_eq!(request.minor_version, 1);
        assert_eq!(request.header("HOST"), Some(&b"example.com"[..]));
        assert_eq!(request.header("accept"), Some(&b"*/*"[..]));
        assert_eq!(request.header("cookie"), None);
        assert!(request.body.is_empty());
    }

    #[test]
    fn partial_until_the_head_and_body_have_arrived() {
        let whole = b"POST /api/dev/token HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
        for cut in [0, 10, 30, whole.len() - 5, whole.len() - 1] {
            assert!(
                matches!(parse(&whole[..cut]), Parsed::Partial),
                "prefix of {cut} bytes"
            );
        }
        let (request, len) = complete(whole);
        assert_eq!(len, whole.len());
        assert_eq!(request.body, b"hello");
    }

    #[test]
    fn pipelined_requests_parse_one_at_a_time() {
        let buf = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhiGET /c HTTP/1.1\r\n";
        let (first, first_len) = complete(buf);
        assert_eq!(first.path, "/a");
        let rest = &buf[first_len..];
        let (second, second_len) = complete(rest);
        assert_eq!(
            (second.method, second.path, second.body),
            ("POST", "/b", &b"hi"[..])
        );
        assert!(matches!(parse(&rest[second_len..]), Parsed::Partial));
    }

    #[test]
    fn head_over_8_kib_is_431() {
        let mut buf = b"GET / HTTP/1.1\r\nHost: h\r\nX-Filler: ".to_vec();
        buf.resize(9 * 1024, b'a');
        assert_eq!(invalid_status(&buf), 431);
        // The same head, completed, is still too large.
        buf.extend_from_slice(b"\r\n\r\n");
        assert_eq!(invalid_status(&buf), 431);
    }

    #[test]
    fn head_just_under_the_limit_is_accepted() {
        let mut buf = b"GET / HTTP/1.1\r\nHost: h\r\nX-Filler: ".to_vec();
        buf.resize(MAX_HEAD_BYTES - 4, b'a');
        buf.extend_from_slice(b"\r\n\r\n");
        let (_, len) = complete(&buf);
        assert_eq!(len, MAX_HEAD_BYTES);
    }

    #[test]
    fn thirty_three_headers_is_431_and_thirty_two_is_fine() {
        let mut buf = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for index in 1..MAX_HEADERS {
            buf.extend_from_slice(format!("X-H{index}: v\r\n").as_bytes());
        }
        let mut allowed = buf.clone();
        allowed.extend_from_slice(b"\r\n");
        let (request, _) = complete(&allowed);
        assert_eq!(request.headers().count(), MAX_HEADERS);

        buf.extend_from_slice(b"X-One-Too-Many: v\r\n\r\n");
        assert_eq!(invalid_status(&buf), 431);
    }

    #[test]
    fn garbage_is_400() {
        assert_eq!(
            invalid_status(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
            400
        );
        assert_eq!(invalid_status(b"GET / HTTP/9.9\r\n\r\n"), 400);
        assert_eq!(
            invalid_status(b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n"),
            400
        );
        assert_eq!(invalid_status(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    }

    #[test]
    fn host_is_required_once_in_http_1_1() {
        assert_eq!(invalid_status(b"GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(
            invalid_status(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            400
        );
        let (request, _) = complete(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(request.minor_version, 0);
    }

    #[test]
    fn body_limits_and_framing() {
        assert_eq!(
            invalid_status(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 16385\r\n\r\n"),
            413
        );
        assert_eq!(
            invalid_status(
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n"
            ),
            413
        );
        assert_eq!(
            invalid_status(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12x\r\n\r\n"),
            400
        );
        assert_eq!(
            invalid_status(
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
            ),
            400
        );
        assert_eq!(
            invalid_status(
                b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            ),
            411
        );
        assert_eq!(
            invalid_status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"),
            400
        );
        let (request, _) = complete(
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
        );
        assert_eq!(request.body, b"ok");
    }

    #[test]
    fn a_body_at_the_limit_is_accepted() {
        let mut buf =
            b"POST /api/dev/token HTTP/1.1\r\nHost: h\r\nContent-Length: 16384\r\n\r\n".to_vec();
        let head_len = buf.len();
        buf.resize(head_len + MAX_BODY_BYTES, b'x');
        let (request, len) = complete(&buf);
        assert_eq!(request.body.len(), MAX_BODY_BYTES);
        assert_eq!(len, buf.len());
    }

    #[test]
    fn keep_alive_rules() {
        let cases: [(&[u8], bool); 6] = [
            (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, CLOSE\r\n\r\n",
                false,
            ),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
            (
                b"GET / HTTP/1.0\r\nConnection: keep-alive-ish\r\n\r\n",
                false,
            ),
        ];
        for (buf, expected) in cases {
            let (request, _) = complete(buf);
            assert_eq!(
                request.keep_alive(),
                expected,
                "{}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    /// Every strict prefix of a valid request must wait for more bytes, never be refused: the
    /// reactor may see a request split at any byte.
    #[test]
    fn every_prefix_of_a_valid_request_is_partial() {
        let whole: &[u8] = b"POST /api/dev/token?x=1 HTTP/1.1\r\nHost: localhost:8080\r\n\
            User-Agent: test/1.0\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n\
            {\"name\":\"a\"}";
        for cut in 0..whole.len() {
            assert!(
                matches!(parse(&whole[..cut]), Parsed::Partial),
                "prefix of {cut} bytes"
            );
        }
        let (request, len) = complete(whole);
        assert_eq!((len, request.body), (whole.len(), &b"{\"name\":\"a\"}"[..]));
    }

    /// Corrupting any single byte of a request yields some outcome, never a panic, and a
    /// complete request never claims more bytes than it was given.
    #[test]
    fn corrupted_requests_never_panic() {
        let original: &[u8] =
            b"GET /ws?token=a%20b HTTP/1.1\r\nHost: h:1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc";
        for position in 0..original.len() {
            for replacement in [0u8, b'\r', b'\n', b' ', b':', b'%', b'9', 0x7f, 0xff] {
                let mut corrupted = original.to_vec();
                corrupted[position] = replacement;
                if let Parsed::Complete { request, len } = parse(&corrupted) {
                    assert!(len <= corrupted.len());
                    let _ = request.keep_alive();
                }
            }
        }
    }

    #[test]
    fn absolute_form_targets_use_their_path() {
        let (request, _) =
            complete(b"GET http://example.com/ws?token=a HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!((request.path, request.query), ("/ws", Some("token=a")));
        let (request, _) =
            complete(b"GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!((request.path, request.query), ("/", None));
    }
}
