//! `ws_frames`: arbitrary bytes as a client's stream into the sans-IO WebSocket connection.
//!
//! Input layout: the first byte picks the message size limit and the pattern of chunk sizes the
//! stream arrives in; the rest is the stream. Invariants checked:
//! - no panic, and nothing the connection returns depends on how the stream was split into reads
//!   (all at once and in the chosen chunks give the same messages, output, state and leftover);
//! - every byte the server writes re-parses as well-formed server frames: unmasked, FIN set,
//!   control payloads of at most 125 bytes, at most one close frame and nothing after it, a close
//!   code RFC 6455 allows on the wire, pongs echoing the pings in order;
//! - no message is larger than the limit, and none is delivered after the connection closed;
//! - the messages, final state and close code equal those of a plain reference model of RFC 6455
//!   written here (frame by frame over the whole stream, no buffering tricks);
//! - the project's frame header parser agrees with tungstenite's `FrameHeader::parse` on every
//!   frame boundary of the stream.

use std::io::Cursor;

use tungstenite::protocol::frame::FrameHeader as TungsteniteHeader;

use super::XorShift;
use crate::ws::connection::{Event, State, WsConnection, CLOSE_NO_STATUS};
use crate::ws::frame::{
    is_valid_close_code, parse_header, unmask, FrameError, FrameHeader, OpCode, MAX_CONTROL_PAYLOAD,
};

/// The limits a fuzz input can select: zero and tiny ones reach the 1009 path with short inputs,
/// 125 sits at the control-frame boundary, the last is the server's default.
const MESSAGE_LIMITS: [usize; 4] = [0, 16, 125, 64 * 1024];

pub fn ws_frames(data: &[u8]) {
    let Some((&config, stream)) = data.split_first() else {
        return;
    };
    let max_message_bytes = MESSAGE_LIMITS[usize::from(config & 0x03)];
    let chunk_pattern = config >> 2;

    let client_frames = walk_client_frames(stream);
    let whole = run_connection(max_message_bytes, &[stream]);
    let chunks = split_into_chunks(stream, chunk_pattern);
    let chunked = run_connection(max_message_bytes, &chunks);
    assert_eq!(
        whole, chunked,
        "the outcome depends on how the stream was split into reads"
    );

    let expected = reference_model(stream, max_message_bytes);
    assert_eq!(
        (&whole.messages, whole.close_code, whole.state),
        (&expected.messages, expected.close_code, expected.state),
        "the connection disagrees with the reference model of RFC 6455"
    );

    for message in &whole.messages {
        assert!(
            message.len() <= max_message_bytes,
            "a message of {} bytes passed the {max_message_bytes}-byte limit",
            message.len()
        );
    }
    check_server_output(&whole, &client_frames.pings);
}

/// A data message as an owned value, so that runs can be compared.
#[derive(Debug, PartialEq, Eq)]
enum Message {
    Text(String),
    Binary(Vec<u8>),
}

impl Message {
    fn len(&self) -> usize {
        match self {
            Message::Text(text) => text.len(),
            Message::Binary(data) => data.len(),
        }
    }
}

/// Everything observable about one run of a connection over a stream.
#[derive(Debug, PartialEq, Eq)]
struct Transcript {
    messages: Vec<Message>,
    output: Vec<u8>,
    state: State,
    close_code: Option<u16>,
    /// Bytes the caller still holds because they do not form a complete frame yet.
    leftover: Vec<u8>,
}

/// Plays the reactor: appends each chunk to the pending bytes, polls until the connection makes
/// no more progress, drops what it consumed.
fn run_connection(max_message_bytes: usize, chunks: &[&[u8]]) -> Transcript {
    let mut connection = WsConnection::new(max_message_bytes);
    let mut pending = Vec::new();
    let mut messages = Vec::new();
    let mut output = Vec::new();
    for chunk in chunks {
        pending.extend_from_slice(chunk);
        loop {
            let pending_len = pending.len();
            let poll = connection.poll(&mut pending, &mut output);
            assert!(
                poll.consumed <= pending_len,
                "consumed more than it was given"
            );
            let consumed = poll.consumed;
            let progressed = consumed > 0 || poll.event.is_some();
            if let Some(event) = poll.event {
                assert_eq!(
                    connection.state(),
                    State::Open,
                    "a message was delivered after the closing handshake started"
                );
                messages.push(match event {
                    Event::Text(text) => Message::Text(text.into_owned()),
                    Event::Binary(data) => Message::Binary(data.into_owned()),
                });
            }
            pending.drain(..consumed);
            if !progressed {
                break;
            }
        }
    }
    Transcript {
        messages,
        output,
        state: connection.state(),
        close_code: connection.close_code(),
        leftover: pending,
    }
}

/// What the reference model expects from a stream.
struct Expected {
    messages: Vec<Message>,
    close_code: Option<u16>,
    state: State,
}

/// RFC 6455 server-side receiving rules applied frame by frame to the whole stream, written for
/// clarity rather than speed: what the connection must deliver and how it must end.
///
/// Fails with 1002 on a header it cannot parse, reserved bits or opcodes, an unmasked frame, a
/// fragmented or oversized control frame, a continuation without a message or a new message
/// inside one, a malformed close; with 1009 when a message would pass the limit; with 1007 on
/// text that is not UTF-8, as soon as a fragment (or the arrived prefix of a text frame) holds a
/// sequence no later bytes can repair. After sending a close only the peer's close frame
/// matters; after the closing handshake nothing does.
fn reference_model(stream: &[u8], max_message_bytes: usize) -> Expected {
    let mut expected = Expected {
        messages: Vec::new(),
        close_code: None,
        state: State::Open,
    };
    let fail = |expected: &mut Expected, code: u16| {
        if expected.state == State::Open {
            expected.state = State::CloseSent;
            expected.close_code = Some(code);
        }
    };
    // The message being reassembled: is it text, and its bytes so far.
    let mut fragmented: Option<(bool, Vec<u8>)> = None;
    let mut offset = 0;
    while offset < stream.len() && expected.state != State::Closed {
        let rest = &stream[offset..];
        let header = match parse_header(rest) {
            Ok(Some(header)) => header,
            Ok(None) => break,
            Err(_) => {
                fail(&mut expected, 1002);
                break;
            }
        };
        let opcode = OpCode::from_u8(header.opcode);
        let frame_len = usize::try_from(header.payload_len)
            .ok()
            .and_then(|len| len.checked_add(header.header_len));
        let complete = frame_len.filter(|&len| len <= rest.len());
        if expected.state == State::CloseSent {
            if opcode == Some(OpCode::Close) {
                expected.state = State::Closed;
                break;
            }
            match complete {
                Some(len) => {
                    offset += len;
                    continue;
                }
                None => break,
            }
        }
        let violation = match opcode {
            _ if header.rsv != 0 || header.mask.is_none() => Some(1002),
            None => Some(1002),
            Some(control) if control.is_control() => {
                (!header.fin || header.payload_len > MAX_CONTROL_PAYLOAD as u64).then_some(1002)
            }
            Some(OpCode::Continuation) if fragmented.is_none() => Some(1002),
            Some(OpCode::Text | OpCode::Binary) if fragmented.is_some() => Some(1002),
            Some(_) => {
                let so_far = fragmented.as_ref().map_or(0, |(_, data)| data.len() as u64);
                (so_far + header.payload_len > max_message_bytes as u64).then_some(1009)
            }
        };
        if let Some(code) = violation {
            fail(&mut expected, code);
            fragmented = None;
            match complete {
                Some(len) => {
                    offset += len;
                    continue;
                }
                None => break,
            }
        }
        let mask = header.mask.unwrap_or_default();
        let Some(frame_len) = complete else {
            // A text frame can fail on the part that has arrived.
            if opcode == Some(OpCode::Text) {
                let mut prefix = rest[header.header_len..].to_vec();
                unmask(&mut prefix, mask, 0);
                if utf8_is_beyond_repair(&prefix) {
                    fail(&mut expected, 1007);
                }
            }
            break;
        };
        let mut payload = rest[header.header_len..frame_len].to_vec();
        unmask(&mut payload, mask, 0);
        offset += frame_len;
        match opcode {
            Some(OpCode::Ping | OpCode::Pong) | None => {}
            Some(OpCode::Close) => {
                fragmented = None;
                match payload.as_slice() {
                    [] => {
                        expected.state = State::Closed;
                        expected.close_code = Some(CLOSE_NO_STATUS);
                    }
                    [high, low, reason @ ..] => {
                        let code = u16::from_be_bytes([*high, *low]);
                        if !is_valid_close_code(code) {
                            fail(&mut expected, 1002);
                        } else if std::str::from_utf8(reason).is_err() {
                            fail(&mut expected, 1007);
                        } else {
                            expected.state = State::Closed;
                            expected.close_code = Some(code);
                        }
                    }
                    [_] => fail(&mut expected, 1002),
                }
            }
            Some(OpCode::Text | OpCode::Binary | OpCode::Continuation) => {
                let (is_text, mut data) = match (opcode, fragmented.take()) {
                    (Some(OpCode::Continuation), Some(started)) => started,
                    (_, _) => (opcode == Some(OpCode::Text), Vec::new()),
                };
                data.extend_from_slice(&payload);
                if is_text && utf8_is_beyond_repair(&data) {
                    fail(&mut expected, 1007);
                } else if !header.fin {
                    fragmented = Some((is_text, data));
                } else if !is_text {
                    expected.messages.push(Message::Binary(data));
                } else {
                    match String::from_utf8(data) {
                        Ok(text) => expected.messages.push(Message::Text(text)),
                        Err(_) => fail(&mut expected, 1007),
                    }
                }
            }
        }
    }
    expected
}

/// Whether `bytes` holds an invalid UTF-8 sequence, as opposed to merely ending inside one.
fn utf8_is_beyond_repair(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_err_and(|error| error.error_len().is_some())
}

/// Cuts `stream` into pieces whose sizes follow the pattern: pattern 0 is one byte per read (the
/// "1-byte fragments" attack), the others mix small and larger reads.
fn split_into_chunks(stream: &[u8], pattern: u8) -> Vec<&[u8]> {
    let max_chunk = match pattern {
        0 => 1,
        1..=15 => usize::from(pattern) + 1,
        _ => usize::from(pattern) * 8,
    };
    let mut sizes = XorShift::new(u64::from(pattern));
    let mut chunks = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let size = sizes.between_one_and(max_chunk).min(rest.len());
        let (chunk, tail) = rest.split_at(size);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

/// What an independent walk over the client's frames found.
struct ClientFrames {
    /// Unmasked payloads of the ping frames, in stream order.
    pings: Vec<Vec<u8>>,
}

/// Walks the stream frame by frame with the project's header parser, checking it against
/// tungstenite's at every frame start, and collects the ping payloads.
fn walk_client_frames(stream: &[u8]) -> ClientFrames {
    let mut pings = Vec::new();
    let mut offset = 0;
    while offset < stream.len() {
        let rest = &stream[offset..];
        let header = compare_with_tungstenite(rest);
        let Ok(Some(header)) = header else {
            break;
        };
        if header.header_len > 0 {
            // One byte short of the header must be "need more" for both parsers.
            let short = compare_with_tungstenite(&rest[..header.header_len - 1]);
            assert_eq!(
                short,
                Ok(None),
                "a truncated header was not reported as such"
            );
        }
        let Some(frame_len) = usize::try_from(header.payload_len)
            .ok()
            .and_then(|len| len.checked_add(header.header_len))
            .filter(|&len| len <= rest.len())
        else {
            break;
        };
        if OpCode::from_u8(header.opcode) == Some(OpCode::Ping) {
            let mut payload = rest[header.header_len..frame_len].to_vec();
            if let Some(mask) = header.mask {
                unmask(&mut payload, mask, 0);
            }
            pings.push(payload);
        }
        offset += frame_len;
    }
    ClientFrames { pings }
}

/// Parses the header at the start of `bytes` with both parsers and asserts they agree, up to the
/// two documented differences: tungstenite refuses reserved opcodes itself (this parser reports
/// them raw for the connection to close with 1002), and only this parser refuses a 64-bit length
/// with its top bit set.
fn compare_with_tungstenite(bytes: &[u8]) -> Result<Option<FrameHeader>, FrameError> {
    let ours = parse_header(bytes);
    let theirs = tungstenite_header(bytes);
    let top_length_bit_set = bytes.len() >= 3 && bytes[1] & 0x7f == 127 && bytes[2] & 0x80 != 0;
    match (&ours, &theirs) {
        (Ok(ours), Ok(theirs)) => assert_eq!(ours, theirs, "header parsers disagree"),
        (Ok(Some(header)), Err(())) => assert_eq!(
            OpCode::from_u8(header.opcode),
            None,
            "tungstenite refused a header with a defined opcode"
        ),
        (Err(FrameError::LengthMsbSet), _) => assert!(
            top_length_bit_set,
            "length refused although its top bit is clear"
        ),
        (ours, theirs) => panic!("header parsers disagree: ours {ours:?}, tungstenite {theirs:?}"),
    }
    ours
}

/// tungstenite's reading of a header, in the project's terms; `Err(())` when it refuses it.
fn tungstenite_header(bytes: &[u8]) -> Result<Option<FrameHeader>, ()> {
    let mut cursor = Cursor::new(bytes);
    match TungsteniteHeader::parse(&mut cursor) {
        Ok(None) => Ok(None),
        Err(_) => Err(()),
        Ok(Some((header, payload_len))) => Ok(Some(FrameHeader {
            fin: header.is_final,
            rsv: (u8::from(header.rsv1) << 2)
                | (u8::from(header.rsv2) << 1)
                | u8::from(header.rsv3),
            opcode: header.opcode.into(),
            mask: header.mask,
            payload_len,
            header_len: usize::try_from(cursor.position()).unwrap_or(usize::MAX),
        })),
    }
}

/// Re-parses everything the server wrote and checks it frame by frame.
fn check_server_output(transcript: &Transcript, client_pings: &[Vec<u8>]) {
    let output = &transcript.output;
    let mut offset = 0;
    let mut pongs_seen = 0;
    let mut close_seen = None;
    while offset < output.len() {
        assert!(
            close_seen.is_none(),
            "the server wrote bytes after its close frame"
        );
        let header = match parse_header(&output[offset..]) {
            Ok(Some(header)) => header,
            other => panic!("server output does not parse as a frame: {other:?}"),
        };
        assert_eq!(header.mask, None, "server frames must not be masked");
        assert_eq!(header.rsv, 0, "server frames must not set reserved bits");
        assert!(header.fin, "the connection never fragments what it sends");
        assert!(
            header.payload_len <= MAX_CONTROL_PAYLOAD as u64,
            "control frame payload over 125 bytes"
        );
        let frame_end = offset + header.header_len + header.payload_len as usize;
        assert!(frame_end <= output.len(), "server output ends mid-frame");
        let payload = &output[offset + header.header_len..frame_end];
        match OpCode::from_u8(header.opcode) {
            Some(OpCode::Pong) => {
                let ping = client_pings
                    .get(pongs_seen)
                    .unwrap_or_else(|| panic!("pong #{pongs_seen} answers no ping"));
                assert_eq!(payload, ping.as_slice(), "pong does not echo its ping");
                pongs_seen += 1;
            }
            Some(OpCode::Close) => close_seen = Some(close_code_of(payload)),
            other => panic!("the connection wrote an unexpected frame: {other:?}"),
        }
        offset = frame_end;
    }
    match (transcript.state, close_seen) {
        (State::Open, None) => assert_eq!(transcript.close_code, None),
        (State::Open, Some(_)) => panic!("a close frame was sent but the state is still open"),
        (_, None) => panic!(
            "the state is {:?} but no close frame was sent",
            transcript.state
        ),
        (_, Some(sent)) => {
            let expected = match transcript.close_code {
                Some(CLOSE_NO_STATUS) => None,
                other => other,
            };
            assert_eq!(
                sent, expected,
                "the close frame disagrees with close_code()"
            );
        }
    }
}

/// The code in a server close frame (`None` for an empty one), asserting the frame is valid.
fn close_code_of(payload: &[u8]) -> Option<u16> {
    match payload {
        [] => None,
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            assert!(is_valid_close_code(code), "invalid close code {code} sent");
            assert!(
                std::str::from_utf8(reason).is_ok(),
                "close reason is not UTF-8"
            );
            Some(code)
        }
        [_] => panic!("a one-byte close payload was sent"),
    }
}
