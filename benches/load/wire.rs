//! The client side of the WebSocket wire, kept minimal so the generator spends its CPU on load, not
//! on itself: the upgrade request, masked frames out, unmasked frames in, and a scanner that pulls
//! one string field out of the server's compact JSON without building a document.

/// A fixed `Sec-WebSocket-Key`: the generator is not a browser and every connection may share it.
/// RFC 6455 section 1.3 gives the matching accept value, so the check stays a string compare.
const HANDSHAKE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const EXPECTED_ACCEPT: &[u8] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub const OPCODE_CONTINUATION: u8 = 0x0;
pub const OPCODE_TEXT: u8 = 0x1;
pub const OPCODE_BINARY: u8 = 0x2;
pub const OPCODE_CLOSE: u8 = 0x8;
pub const OPCODE_PING: u8 = 0x9;
pub const OPCODE_PONG: u8 = 0xA;

/// Appends the HTTP/1.1 upgrade request for `path_and_query` (e.g. `/ws?token=...`).
pub fn write_upgrade_request(out: &mut Vec<u8>, host: &str, path_and_query: &str) {
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(path_and_query.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
    out.extend_from_slice(HANDSHAKE_KEY.as_bytes());
    out.extend_from_slice(b"\r\nSec-WebSocket-Version: 13\r\n\r\n");
}

/// What the bytes received so far say about the upgrade.
#[derive(Debug, PartialEq, Eq)]
pub enum UpgradeResponse {
    /// The response head is not complete yet.
    Partial,
    /// `101` with the right accept value; the first `head_len` bytes were the HTTP head and what
    /// follows is already WebSocket frames.
    Accepted { head_len: usize },
    /// Any other status (e.g. `401` for a bad token).
    Refused { status: u16 },
    /// Not HTTP, or a `101` with a wrong accept value.
    Malformed,
}

pub fn parse_upgrade_response(received: &[u8]) -> UpgradeResponse {
    let mut headers = [httparse::EMPTY_HEADER; 24];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(received) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return UpgradeResponse::Partial,
        Err(_) => return UpgradeResponse::Malformed,
    };
    match response.code {
        Some(101) => {}
        Some(status) => return UpgradeResponse::Refused { status },
        None => return UpgradeResponse::Malformed,
    }
    let accept_ok = response.headers.iter().any(|header| {
        header.name.eq_ignore_ascii_case("sec-websocket-accept") && header.value == EXPECTED_ACCEPT
    });
    if accept_ok {
        UpgradeResponse::Accepted { head_len }
    } else {
        UpgradeResponse::Malformed
    }
}

/// Appends one final, masked frame (clients must mask, RFC 6455 section 5.3).
pub fn write_masked_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    for (index, byte) in out[start..].iter_mut().enumerate() {
        *byte ^= mask[index & 3];
    }
}

/// One frame from the server, borrowed from the receive buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub fin: bool,
    pub opcode: u8,
    pub payload: &'a [u8],
}

#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Servers must not mask (RFC 6455 section 5.1).
    MaskedByServer,
    /// A 64-bit length with the top bit set, or beyond what the generator accepts.
    TooLong,
}

/// The generator never expects anything near this; a larger frame means the server is broken.
const MAX_FRAME_PAYLOAD: u64 = 16 << 20;

/// Decodes the frame at the start of `buf`: `Ok(None)` until all of it has arrived, else the frame
/// and how many bytes it occupied.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let [first, second, ..] = *buf else {
        return Ok(None);
    };
    if second & 0x80 != 0 {
        return Err(FrameError::MaskedByServer);
    }
    let (payload_len, header_len) = match second & 0x7F {
        126 => match buf.get(2..4) {
            Some(bytes) => (u64::from(u16::from_be_bytes([bytes[0], bytes[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(bytes) => {
                let mut be = [0u8; 8];
                be.copy_from_slice(bytes);
                (u64::from_be_bytes(be), 10)
            }
            None => return Ok(None),
        },
        short => (u64::from(short), 2),
    };
    if payload_len > MAX_FRAME_PAYLOAD {
        return Err(FrameError::TooLong);
    }
    let total = header_len + payload_len as usize;
    let Some(payload) = buf.get(header_len..total) else {
        return Ok(None);
    };
    let frame = Frame {
        fin: first & 0x80 != 0,
        opcode: first & 0x0F,
        payload,
    };
    Ok(Some((frame, total)))
}

/// The close code of a close frame's payload (1005 "no status" when it carries none).
pub fn close_code(payload: &[u8]) -> u16 {
    match payload {
        [high, low, ..] => u16::from_be_bytes([*high, *low]),
        _ => 1005,
    }
}

/// The value of the first `"key":"value"` string field in compact JSON, without unescaping.
/// The server writes compact serde_json with `type` first, so the first hit is the top-level one
/// for the fields the generator looks at (`type`, `id`, `room`).
pub fn string_field<'a>(json: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let key = key.as_bytes();
    let mut from = 0;
    while let Some(offset) = find(&json[from..], key) {
        let key_start = from + offset;
        let key_end = key_start + key.len();
        let quoted = key_start > 0 && json[key_start - 1] == b'"';
        if quoted && json.get(key_end..key_end + 3) == Some(b"\":\"".as_slice()) {
            let value_start = key_end + 3;
            let rest = &json[value_start..];
            let mut escaped = false;
            for (index, &byte) in rest.iter().enumerate() {
                match byte {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => return Some(&rest[..index]),
                    _ => {}
                }
            }
            return None;
        }
        from = key_end;
    }
    None
}

/// Parses an unsigned decimal that the generator itself put in an `id` (after a letter prefix).
pub fn parse_id(value: &[u8]) -> Option<u64> {
    let digits = value
        .strip_prefix(b"c")
        .or_else(|| value.strip_prefix(b"p"))?;
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &byte| {
        byte.is_ascii_digit()
            .then(|| acc * 10 + u64::from(byte - b'0'))
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let last_start = haystack.len() - needle.len();
    let mut start = 0;
    while start <= last_start {
        let offset = haystack[start..=last_start]
            .iter()
            .position(|&byte| byte == first)?;
        let candidate = start + offset;
        if &haystack[candidate..candidate + needle.len()] == needle {
            return Some(candidate);
        }
        start = candidate + 1;
    }
    None
}

pub mod checks {
    use super::*;

    pub fn upgrade_request_is_a_complete_http_head() {
        let mut out = Vec::new();
        write_upgrade_request(&mut out, "127.0.0.1:9000", "/ws?token=abc");
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut request = httparse::Request::new(&mut headers);
        assert_eq!(
            request.parse(&out),
            Ok(httparse::Status::Complete(out.len()))
        );
        assert_eq!(request.path, Some("/ws?token=abc"));
    }

    pub fn accepted_upgrade_reports_where_frames_start() {
        let response =
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi";
        let head_len = response.len() - 4;
        assert_eq!(
            parse_upgrade_response(response),
            UpgradeResponse::Accepted { head_len }
        );
        assert_eq!(
            parse_upgrade_response(&response[..20]),
            UpgradeResponse::Partial
        );
    }

    pub fn refused_and_wrong_accept_are_told_apart() {
        let refused = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            parse_upgrade_response(refused),
            UpgradeResponse::Refused { status: 401 }
        );
        let wrong = b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope\r\n\r\n";
        assert_eq!(parse_upgrade_response(wrong), UpgradeResponse::Malformed);
    }

    pub fn masked_frame_round_trips_through_the_mask() {
        let mut out = Vec::new();
        write_masked_frame(&mut out, OPCODE_TEXT, b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
        // RFC 6455 section 5.7: a masked "Hello".
        assert_eq!(
            out,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
    }

    pub fn masked_frame_uses_extended_lengths() {
        let mut out = Vec::new();
        write_masked_frame(&mut out, OPCODE_TEXT, &[b'a'; 300], [0; 4]);
        assert_eq!(&out[..4], &[0x81, 0xFE, 0x01, 0x2C]);
        assert_eq!(out.len(), 4 + 4 + 300);
    }

    pub fn decodes_short_and_extended_frames_and_waits_for_partial_ones() {
        let short = [0x81, 0x02, b'h', b'i', 0xFF];
        let (frame, used) = decode_frame(&short).unwrap().unwrap();
        assert_eq!(
            (frame.opcode, frame.payload, used),
            (OPCODE_TEXT, &b"hi"[..], 4)
        );
        assert!(frame.fin);

        let mut extended = vec![0x82, 126, 0x01, 0x00];
        extended.extend_from_slice(&[7; 256]);
        let (frame, used) = decode_frame(&extended).unwrap().unwrap();
        assert_eq!(
            (frame.opcode, frame.payload.len(), used),
            (OPCODE_BINARY, 256, 260)
        );

        assert_eq!(decode_frame(&extended[..100]), Ok(None));
        assert_eq!(decode_frame(&[0x81]), Ok(None));
    }

    pub fn rejects_masked_and_absurd_frames() {
        assert_eq!(
            decode_frame(&[0x81, 0x81, 0, 0, 0, 0, b'x']),
            Err(FrameError::MaskedByServer)
        );
        assert_eq!(
            decode_frame(&[0x81, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            Err(FrameError::TooLong)
        );
    }

    pub fn close_code_defaults_to_no_status() {
        assert_eq!(close_code(&[0x03, 0xE8, b'b', b'y', b'e']), 1000);
        assert_eq!(close_code(&[]), 1005);
    }

    pub fn string_field_finds_top_level_values_and_skips_lookalikes() {
        let json = br#"{"type":"emotion","id":"c42","room":"user:a","scores":{"joy":0.5}}"#;
        assert_eq!(string_field(json, "type"), Some(&b"emotion"[..]));
        assert_eq!(string_field(json, "id"), Some(&b"c42"[..]));
        assert_eq!(string_field(json, "missing"), None);
        let tricky = br#"{"type":"message","text":"valid\"id","id":"p7"}"#;
        assert_eq!(string_field(tricky, "id"), Some(&b"p7"[..]));
        assert_eq!(string_field(br#"{"id":null}"#, "id"), None);
    }

    pub fn parse_id_accepts_only_generator_ids() {
        assert_eq!(parse_id(b"c123"), Some(123));
        assert_eq!(parse_id(b"p0"), Some(0));
        assert_eq!(parse_id(b"x1"), None);
        assert_eq!(parse_id(b"c"), None);
        assert_eq!(parse_id(b"c1a"), None);
    }
}
