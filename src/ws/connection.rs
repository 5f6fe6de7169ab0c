//! The server side of one WebSocket connection as a sans-IO state machine.
//!
//! [`WsConnection::poll`] takes the bytes the client has sent so far, unmasks them in place, answers
//! control frames into `out` and hands back data messages. It keeps no read buffer: a message that
//! arrives in one frame is returned as a slice of the caller's input, and only a fragmented
//! message is copied, into a buffer that exists just while the message is incomplete.

use std::borrow::Cow;

use super::frame::{
    is_valid_close_code, parse_header, unmask, unmask_reporting_ascii, write_close,
    write_empty_close, write_pong, FrameHeader, OpCode, MAX_CONTROL_PAYLOAD,
};

// Close codes (RFC 6455 7.4.1) this module and its callers send.
pub const CLOSE_NORMAL: u16 = 1000;
/// For server shutdown.
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Reported by [`WsConnection::close_code`] when the peer's close frame carried no code; never
/// sent on the wire.
pub const CLOSE_NO_STATUS: u16 = 1005;
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
pub const CLOSE_MESSAGE_TOO_BIG: u16 = 1009;
/// Never valid on the wire (RFC 6455 7.4.2), so it can stand for "no close code yet".
const NO_CLOSE_CODE: u16 = 0;

/// A complete data message from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Text(Cow<'a, str>),
    Binary(Cow<'a, [u8]>),
}

/// The outcome of one [`WsConnection::poll`] call.
#[derive(Debug, PartialEq, Eq)]
pub struct Poll<'a> {
    /// How many bytes from the start of the input were used up; the caller drops them.
    pub consumed: usize,
    /// A complete message, if one was found.
    pub event: Option<Event<'a>>,
}

/// Where the closing handshake stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// This side sent a close frame and waits for the peer's; data frames are ignored.
    CloseSent,
    /// Close frames went both ways: flush the output, then shut the TCP connection down.
    Closed,
}

/// A fragmented message being reassembled. Boxed so an idle connection pays one pointer for it.
#[derive(Debug)]
struct FragmentedMessage {
    is_text: bool,
    data: Vec<u8>,
    /// `data[..utf8_checked_len]` is known to be valid UTF-8 (text messages only); the rest is at
    /// most an incomplete sequence that the next fragment may finish.
    utf8_checked_len: usize,
}

/// One server-side WebSocket connection after the handshake.
#[derive(Debug)]
pub struct WsConnection {
    max_message_bytes: usize,
    /// Payload bytes of the current frame still to be thrown away unread: the rest of a frame
    /// that failed the connection, or of a data frame arriving after a close was sent. Skipping
    /// them as they arrive means the caller never buffers a payload that will not be used.
    skip_remaining: u64,
    fragmented: Option<Box<FragmentedMessage>>,
    /// How many payload bytes of the incomplete text frame at the head of the input have already
    /// been unmasked and UTF-8 checked, so that a bad text fails before the frame is complete
    /// and no byte is unmasked or checked twice while it trickles in.
    text_prefix_checked: u32,
    /// The first close code sent or received; [`NO_CLOSE_CODE`] until then. A bare u16 rather
    /// than an `Option` keeps the struct within 32 bytes.
    close_code: u16,
    state: State,
    /// Set after a header that could not be parsed: frame boundaries are unknown from there on,
    /// so all further input is discarded.
    framing_lost: bool,
}

/// What handling the frame at the start of the input amounted to.
enum Step {
    /// The input holds no complete unit of work.
    NeedMore,
    /// This many bytes were handled with nothing to return.
    Handled(usize),
    /// A single-frame data message, unmasked in place at `payload_start..frame_len`.
    SingleFrame {
        frame_len: usize,
        payload_start: usize,
        is_text: bool,
        /// Every payload byte was seen to be ASCII while unmasking, so it is valid UTF-8.
        is_ascii: bool,
    },
    /// The final fragment completed a reassembled message.
    Reassembled {
        frame_len: usize,
        event: Event<'static>,
    },
}

impl WsConnection {
    /// A connection that accepts messages of up to `max_message_bytes` payload bytes.
    pub fn new(max_message_bytes: usize) -> Self {
        WsConnection {
            max_message_bytes,
            skip_remaining: 0,
            fragmented: None,
            text_prefix_checked: 0,
            close_code: NO_CLOSE_CODE,
            state: State::Open,
            framing_lost: false,
        }
    }

    /// Handles the frames at the start of `input` (unmasking in place) until it has one data
    /// message to return, or runs out of complete frames.
    ///
    /// Control frames are answered into `out`: ping -> pong with the same payload, pong ignored,
    /// close -> close reply and [`State::Closed`]. Protocol violations fail the connection: a
    /// close frame with the matching code goes to `out` and the state becomes
    /// [`State::CloseSent`].
    ///
    /// The caller drops the first `consumed` bytes, keeps the rest and calls again; when
    /// `consumed == 0` and there is no event, the input holds no complete frame and the caller
    /// waits for more bytes. The kept bytes must be passed back unchanged, with new bytes
    /// appended: the arrived part of an incomplete text frame is already unmasked in place.
    ///
    /// An incomplete frame costs O(1) per call plus O(new bytes) for a text frame, whose arrived
    /// part is unmasked and UTF-8 checked once so that bad text fails early. Payloads of frames
    /// that will not be used (after a failure or while closing) are consumed as they arrive, so
    /// the caller never holds them.
    pub fn poll<'a>(&mut self, input: &'a mut [u8], out: &mut Vec<u8>) -> Poll<'a> {
        if let Some((header_len, frame_len)) = self.single_text_frame_at_start(input) {
            return self.take_single_text_frame(input, header_len, frame_len, out);
        }
        let mut consumed = 0;
        loop {
            match self.next_frame(&mut input[consumed..], out) {
                Step::NeedMore => {
                    return Poll {
                        consumed,
                        event: None,
                    }
                }
                Step::Handled(len) => consumed += len,
                Step::Reassembled { frame_len, event } => {
                    return Poll {
                        consumed: consumed + frame_len,
                        event: Some(event),
                    }
                }
                Step::SingleFrame {
                    frame_len,
                    payload_start,
                    is_text,
                    is_ascii,
                } => {
                    let input: &'a [u8] = input;
                    let payload = &input[consumed + payload_start..consumed + frame_len];
                    consumed += frame_len;
                    let event = if is_text {
                        match unmasked_text(payload, is_ascii) {
                            Some(text) => Event::Text(Cow::Borrowed(text)),
                            None => {
                                self.fail(CLOSE_INVALID_PAYLOAD, out);
                                return Poll {
                                    consumed,
                                    event: None,
                                };
                            }
                        }
                    } else {
                        Event::Binary(Cow::Borrowed(payload))
                    };
                    return Poll {
                        consumed,
                        event: Some(event),
                    };
                }
            }
        }
    }

    /// Whether the next frame starts a message with nothing pending: open, no payload to skip,
    /// no fragmented message, no prefix of an incomplete frame already unmasked.
    fn expects_any_frame(&self) -> bool {
        self.state == State::Open
            && !self.framing_lost
            && self.skip_remaining == 0
            && self.fragmented.is_none()
            && self.text_prefix_checked == 0
    }

    /// The header and frame lengths of the frame almost every client message is, when it
    /// starts `input` with nothing pending (see [`Self::expects_any_frame`]): a complete,
    /// masked, unfragmented text frame with a 7- or 16-bit length within the message limit.
    /// Such a frame skips the general loop ([`Self::take_single_text_frame`]); `None` leaves
    /// everything else to it.
    fn single_text_frame_at_start(&self, input: &[u8]) -> Option<(usize, usize)> {
        const FIN_TEXT: u8 = 0x80 | 0x1;
        const MASKED: u8 = 0x80;
        if !self.expects_any_frame() {
            return None;
        }
        let (payload_len, header_len) = match *input {
            [FIN_TEXT, second, ..] if second & MASKED != 0 => match second & !MASKED {
                126 => {
                    let length = input.get(2..4)?;
                    (usize::from(u16::from_be_bytes([length[0], length[1]])), 8)
                }
                127 => return None,
                short => (usize::from(short), 6),
            },
            _ => return None,
        };
        let frame_len = header_len + payload_len;
        (payload_len <= self.max_message_bytes && input.len() >= frame_len)
            .then_some((header_len, frame_len))
    }

    /// Unmasks and returns the frame [`Self::single_text_frame_at_start`] found, as the general
    /// path would (the chunking tests compare the two): its text, or the connection failed with
    /// 1007 when it is not UTF-8.
    fn take_single_text_frame<'a>(
        &mut self,
        input: &'a mut [u8],
        header_len: usize,
        frame_len: usize,
        out: &mut Vec<u8>,
    ) -> Poll<'a> {
        let (header, payload) = input[..frame_len].split_at_mut(header_len);
        let mut mask = [0u8; 4];
        mask.copy_from_slice(&header[header_len - 4..]);
        let payload: &'a mut [u8] = payload;
        let is_ascii = unmask_reporting_ascii(payload, mask, 0);
        let payload: &'a [u8] = payload;
        let event = match unmasked_text(payload, is_ascii) {
            Some(text) => Some(Event::Text(Cow::Borrowed(text))),
            None => {
                self.fail(CLOSE_INVALID_PAYLOAD, out);
                None
            }
        };
        Poll {
            consumed: frame_len,
            event,
        }
    }

    /// Starts the closing handshake: writes a close frame and moves to [`State::CloseSent`].
    /// Does nothing if a close frame was already sent.
    pub fn close(&mut self, code: u16, reason: &str, out: &mut Vec<u8>) {
        if self.state == State::Open {
            write_close(out, code, reason);
            self.state = State::CloseSent;
            self.close_code = code;
            self.fragmented = None;
            self.text_prefix_checked = 0;
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The close code this connection ended with: the first one sent or received. A close frame
    /// from the peer without a code counts as 1005.
    pub fn close_code(&self) -> Option<u16> {
        (self.close_code != NO_CLOSE_CODE).then_some(self.close_code)
    }

    /// Handles the frame (or the skipped bytes) at the start of `buf`.
    fn next_frame(&mut self, buf: &mut [u8], out: &mut Vec<u8>) -> Step {
        if buf.is_empty() {
            return Step::NeedMore;
        }
        if self.state == State::Closed || self.framing_lost {
            return Step::Handled(buf.len());
        }
        if self.skip_remaining > 0 {
            let skipped =
                usize::try_from(self.skip_remaining).map_or(buf.len(), |skip| skip.min(buf.len()));
            self.skip_remaining -= skipped as u64;
            return Step::Handled(skipped);
        }
        let header = match parse_header(buf) {
            Ok(None) => return Step::NeedMore,
            Ok(Some(header)) => header,
            Err(_) => {
                self.fail(CLOSE_PROTOCOL_ERROR, out);
                self.framing_lost = true;
                return Step::Handled(buf.len());
            }
        };
        if self.state == State::CloseSent {
            return self.next_frame_while_closing(&header);
        }
        let (opcode, mask) = match self.check_header(&header) {
            Ok(valid) => valid,
            Err(code) => {
                self.fail(code, out);
                return self.skip_frame(&header);
            }
        };
        // check_header bounded the payload by max_message_bytes or 125, so it fits in usize.
        let frame_len = usize::try_from(header.payload_len)
            .map_or(usize::MAX, |len| len.saturating_add(header.header_len));
        if buf.len() < frame_len {
            // A text frame starts a text message, so its prefix can be checked on its own.
            if opcode == OpCode::Text
                && !self.check_text_prefix(&mut buf[header.header_len..], mask)
            {
                self.fail(CLOSE_INVALID_PAYLOAD, out);
                return self.skip_frame(&header);
            }
            return Step::NeedMore;
        }
        let payload = &mut buf[header.header_len..frame_len];
        let already_unmasked =
            (std::mem::take(&mut self.text_prefix_checked) as usize).min(payload.len());
        let unmasked_now = &mut payload[already_unmasked..];
        // A prefix unmasked earlier was not seen whole here; its bytes get the full check.
        let is_ascii = if opcode == OpCode::Text {
            unmask_reporting_ascii(unmasked_now, mask, already_unmasked) && already_unmasked == 0
        } else {
            unmask(unmasked_now, mask, already_unmasked);
            false
        };
        match opcode {
            OpCode::Ping => {
                write_pong(out, payload);
                Step::Handled(frame_len)
            }
            OpCode::Pong => Step::Handled(frame_len),
            OpCode::Close => {
                self.on_close_frame(payload, out);
                Step::Handled(frame_len)
            }
            OpCode::Text | OpCode::Binary if header.fin => Step::SingleFrame {
                frame_len,
                payload_start: header.header_len,
                is_text: opcode == OpCode::Text,
                is_ascii,
            },
            OpCode::Text | OpCode::Binary => {
                let mut message = Box::new(FragmentedMessage {
                    is_text: opcode == OpCode::Text,
                    data: payload.to_vec(),
                    utf8_checked_len: 0,
                });
                if message.is_text
                    && !advance_utf8_check(&message.data, &mut message.utf8_checked_len)
                {
                    self.fail(CLOSE_INVALID_PAYLOAD, out);
                } else {
                    self.fragmented = Some(message);
                }
                Step::Handled(frame_len)
            }
            OpCode::Continuation => self.on_continuation(payload, header.fin, frame_len, out),
        }
    }

    /// Checks everything that can be decided from a header alone, before any payload is
    /// buffered. Returns the opcode and mask of an acceptable frame, or the close code.
    fn check_header(&self, header: &FrameHeader) -> Result<(OpCode, [u8; 4]), u16> {
        if header.rsv != 0 {
            return Err(CLOSE_PROTOCOL_ERROR);
        }
        let opcode = OpCode::from_u8(header.opcode).ok_or(CLOSE_PROTOCOL_ERROR)?;
        // Clients must mask every frame (RFC 6455 5.1).
        let mask = header.mask.ok_or(CLOSE_PROTOCOL_ERROR)?;
        if opcode.is_control() {
            if !header.fin || header.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(CLOSE_PROTOCOL_ERROR);
            }
            return Ok((opcode, mask));
        }
        let already_received = match (&self.fragmented, opcode) {
            (None, OpCode::Continuation) | (Some(_), OpCode::Text | OpCode::Binary) => {
                return Err(CLOSE_PROTOCOL_ERROR)
            }
            (Some(message), _) => message.data.len() as u64,
            (None, _) => 0,
        };
        if already_received.saturating_add(header.payload_len) > self.max_message_bytes as u64 {
            return Err(CLOSE_MESSAGE_TOO_BIG);
        }
        Ok((opcode, mask))
    }

    /// While a close frame is outstanding only the peer's close matters; everything else is
    /// skipped without being buffered.
    fn next_frame_while_closing(&mut self, header: &FrameHeader) -> Step {
        if OpCode::from_u8(header.opcode) == Some(OpCode::Close) {
            self.state = State::Closed;
            // Nothing after the close frame is read, so the header is enough.
            return Step::Handled(header.header_len);
        }
        self.skip_frame(header)
    }

    /// Unmasks and UTF-8 checks the newly arrived part of an incomplete text frame's payload.
    /// Returns false when it already holds a sequence no further bytes can make valid.
    fn check_text_prefix(&mut self, available: &mut [u8], mask: [u8; 4]) -> bool {
        let already = self.text_prefix_checked as usize;
        // Payloads beyond u32 are left to the check on the complete frame.
        let Ok(available_len) = u32::try_from(available.len()) else {
            return true;
        };
        if available.len() <= already {
            return true;
        }
        unmask(&mut available[already..], mask, already);
        self.text_prefix_checked = available_len;
        let resume_at = utf8_resume_point(&available[..already]);
        match std::str::from_utf8(&available[resume_at..]) {
            Ok(_) => true,
            Err(error) => error.error_len().is_none(),
        }
    }

    /// Consumes the header and arranges for the payload to be discarded as it arrives.
    fn skip_frame(&mut self, header: &FrameHeader) -> Step {
        self.text_prefix_checked = 0;
        self.skip_remaining = header.payload_len;
        Step::Handled(header.header_len)
    }

    fn on_continuation(
        &mut self,
        payload: &[u8],
        fin: bool,
        frame_len: usize,
        out: &mut Vec<u8>,
    ) -> Step {
        let Some(message) = self.fragmented.as_mut() else {
            // check_header rejects a continuation without a started message.
            self.fail(CLOSE_PROTOCOL_ERROR, out);
            return Step::Handled(frame_len);
        };
        message.data.extend_from_slice(payload);
        if message.is_text && !advance_utf8_check(&message.data, &mut message.utf8_checked_len) {
            self.fail(CLOSE_INVALID_PAYLOAD, out);
            return Step::Handled(frame_len);
        }
        if !fin {
            return Step::Handled(frame_len);
        }
        let Some(message) = self.fragmented.take() else {
            return Step::Handled(frame_len);
        };
        let FragmentedMessage { is_text, data, .. } = *message;
        let event = if is_text {
            match String::from_utf8(data) {
                Ok(text) => Event::Text(Cow::Owned(text)),
                // An incomplete sequence at the very end of the message.
                Err(_) => {
                    self.fail(CLOSE_INVALID_PAYLOAD, out);
                    return Step::Handled(frame_len);
                }
            }
        } else {
            Event::Binary(Cow::Owned(data))
        };
        Step::Reassembled { frame_len, event }
    }

    /// Answers a close frame received while open (RFC 6455 5.5.1): echo its code, or reply with an
    /// empty close to an empty one; a malformed close fails the connection instead.
    fn on_close_frame(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        self.fragmented = None;
        match payload {
            [] => {
                write_empty_close(out);
                self.close_code = CLOSE_NO_STATUS;
                self.state = State::Closed;
            }
            [high, low, reason @ ..] => {
                let code = u16::from_be_bytes([*high, *low]);
                if !is_valid_close_code(code) {
                    self.fail(CLOSE_PROTOCOL_ERROR, out);
                } else if std::str::from_utf8(reason).is_err() {
                    self.fail(CLOSE_INVALID_PAYLOAD, out);
                } else {
                    write_close(out, code, "");
                    self.close_code = code;
                    self.state = State::Closed;
                }
            }
            [_] => self.fail(CLOSE_PROTOCOL_ERROR, out),
        }
    }

    /// Fails the connection (RFC 6455 7.1.7): sends a close frame with `code` unless one was
    /// already sent, and drops any partial message.
    fn fail(&mut self, code: u16, out: &mut Vec<u8>) {
        self.fragmented = None;
        self.text_prefix_checked = 0;
        if self.state == State::Open {
            write_close(out, code, close_reason(code));
            self.state = State::CloseSent;
            self.close_code = code;
        }
    }
}

fn close_reason(code: u16) -> &'static str {
    match code {
        CLOSE_PROTOCOL_ERROR => "protocol error",
        CLOSE_INVALID_PAYLOAD => "invalid UTF-8",
        CLOSE_MESSAGE_TOO_BIG => "message too big",
        _ => "",
    }
}

/// Where to resume UTF-8 checking of `checked`, bytes already found valid except for possibly an
/// incomplete sequence (at most 3 bytes, starting with a lead byte) at the end: the first
/// non-continuation byte among the last three. Continuation bytes before it finish a complete
/// character, so it is a character boundary.
fn utf8_resume_point(checked: &[u8]) -> usize {
    let is_continuation = |byte: u8| byte & 0xC0 == 0x80;
    let mut resume_at = checked.len().saturating_sub(3);
    while resume_at < checked.len() && is_continuation(checked[resume_at]) {
        resume_at += 1;
    }
    resume_at
}

/// Extends the validated prefix of `data` over newly appended bytes. Returns false as soon as
/// `data` holds a sequence that no further bytes can turn into valid UTF-8, so a bad text
/// message fails at the first bad fragment rather than at its end.
fn advance_utf8_check(data: &[u8], checked_len: &mut usize) -> bool {
    match std::str::from_utf8(&data[*checked_len..]) {
        Ok(_) => {
            *checked_len = data.len();
            true
        }
        Err(error) => {
            *checked_len += error.valid_up_to();
            // `error_len() == None` means the input merely ended inside a sequence.
            error.error_len().is_none()
        }
    }
}

/// A text frame's unmasked payload as text, or `None` when it is not UTF-8. `is_ascii`: the
/// unmasking saw every byte below 0x80 (`unmask_reporting_ascii`), so the UTF-8 pass, a third
/// of a chat frame's decoding, is skipped.
#[inline(always)]
fn unmasked_text(payload: &[u8], is_ascii: bool) -> Option<&str> {
    if is_ascii {
        debug_assert!(payload.is_ascii());
        // SAFETY: ASCII is valid UTF-8, and the caller's unmasking saw every byte of `payload`
        // below 0x80.
        Some(unsafe { std::str::from_utf8_unchecked(payload) })
    } else {
        std::str::from_utf8(payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::{write_header, write_ping};

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A client frame: masked with [`MASK`], opcode and FIN as given.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            len @ 0..=125 => frame.push(0x80 | len as u8),
            len @ 126..=65535 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&MASK);
        let start = frame.len();
        frame.extend_from_slice(payload);
        unmask(&mut frame[start..], MASK, 0);
        frame
    }

    fn close_frame_bytes(code: u16, reason: &str) -> Vec<u8> {
        let mut out = Vec::new();
        write_close(&mut out, code, reason);
        out
    }

    /// The close code in a close frame the server wrote.
    fn sent_close_code(out: &[u8]) -> Option<u16> {
        match out {
            [0x88, _, high, low, ..] => Some(u16::from_be_bytes([*high, *low])),
            _ => None,
        }
    }

    /// A message as an owned value, for comparing what different feeds produced.
    #[derive(Debug, PartialEq, Eq, Clone)]
    enum Owned {
        Text(String),
        Binary(Vec<u8>),
    }

    fn to_owned(event: Event<'_>) -> Owned {
        match event {
            Event::Text(text) => Owned::Text(text.into_owned()),
            Event::Binary(data) => Owned::Binary(data.into_owned()),
        }
    }

    /// Plays the caller: appends `chunks` one at a time, polls until no progress, drops consumed
    /// bytes. Returns the messages and everything written to `out`.
    fn feed_in_chunks(connection: &mut WsConnection, chunks: &[&[u8]]) -> (Vec<Owned>, Vec<u8>) {
        let mut pending = Vec::new();
        let mut messages = Vec::new();
        let mut out = Vec::new();
        for chunk in chunks {
            pending.extend_from_slice(chunk);
            loop {
                let poll = connection.poll(&mut pending, &mut out);
                let progressed = poll.consumed > 0 || poll.event.is_some();
                let consumed = poll.consumed;
                if let Some(event) = poll.event {
                    messages.push(to_owned(event));
                }
                pending.drain(..consumed);
                if !progressed {
                    break;
                }
            }
        }
        (messages, out)
    }

    fn feed(connection: &mut WsConnection, bytes: &[u8]) -> (Vec<Owned>, Vec<u8>) {
        feed_in_chunks(connection, &[bytes])
    }

    #[test]
    fn connection_is_small() {
        assert!(std::mem::size_of::<WsConnection>() <= 32);
    }

    #[test]
    fn single_masked_text_frame_is_borrowed_from_input() {
        // RFC 6455 5.7: a single-frame masked text message "Hello".
        let mut input = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let mut connection = WsConnection::new(1024);
        let mut out = Vec::new();
        let poll = connection.poll(&mut input, &mut out);
        assert_eq!(poll.consumed, 11);
        match poll.event {
            Some(Event::Text(Cow::Borrowed(text))) => assert_eq!(text, "Hello"),
            other => panic!("expected a borrowed text, got {other:?}"),
        }
        assert!(out.is_empty());
        assert_eq!(connection.state(), State::Open);
    }

    #[test]
    fn masked_binary_frame_is_returned() {
        let mut input = [0x82, 0x83, 1, 2, 3, 4, 1 ^ 0xaa, 2 ^ 0xbb, 3 ^ 0xcc];
        let mut connection = WsConnection::new(1024);
        let mut out = Vec::new();
        let poll = connection.poll(&mut input, &mut out);
        assert_eq!(poll.consumed, 9);
        assert_eq!(
            poll.event,
            Some(Event::Binary(Cow::Borrowed(&[0xaa, 0xbb, 0xcc][..])))
        );
    }

    #[test]
    fn empty_input_and_partial_frames_need_more() {
        let mut connection = WsConnection::new(1024);
        let mut out = Vec::new();
        let poll = connection.poll(&mut [], &mut out);
        assert_eq!((poll.consumed, poll.event), (0, None));
        let mut partial = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f];
        let poll = connection.poll(&mut partial, &mut out);
        assert_eq!((poll.consumed, poll.event), (0, None));
        assert!(out.is_empty());
    }

    #[test]
    fn two_messages_in_one_input_come_out_one_per_poll() {
        let mut input = client_frame(true, 1, b"one");
        input.extend(client_frame(true, 1, b"two"));
        let mut connection = WsConnection::new(1024);
        let mut out = Vec::new();
        let first_len = client_frame(true, 1, b"one").len();
        let poll = connection.poll(&mut input, &mut out);
        assert_eq!(poll.consumed, first_len);
        assert_eq!(poll.event, Some(Event::Text(Cow::Borrowed("one"))));
        let poll = connection.poll(&mut input[first_len..], &mut out);
        assert_eq!(poll.event, Some(Event::Text(Cow::Borrowed("two"))));
    }

    #[test]
    fn ping_gets_a_pong_with_the_same_payload() {
        // RFC 6455 5.7: a masked ping with body "Hello" (opcode 0x9).
        let input = [
            0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let mut connection = WsConnection::new(1024);
        let (messages, out) = feed(&mut connection, &input);
        assert!(messages.is_empty());
        assert_eq!(out, [0x8a, 0x05, b'H', b'e', b'l', b'l', b'o']);
    }

    #[test]
    fn pong_is_ignored() {
        let input = [
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let mut connection = WsConnection::new(1024);
        let (messages, out) = feed(&mut connection, &input);
        assert!(messages.is_empty() && out.is_empty());
        assert_eq!(connection.state(), State::Open);
    }

    #[test]
    fn text_in_three_fragments_with_a_ping_inside() {
        let mut input = client_frame(false, 1, b"Hel");
        input.extend(client_frame(false, 0, b"lo, "));
        input.extend(client_frame(true, 9, b"are you there?"));
        input.extend(client_frame(true, 0, b"world"));
        let mut connection = WsConnection::new(1024);
        let (messages, out) = feed(&mut connection, &input);
        assert_eq!(messages, [Owned::Text("Hello, world".into())]);
        let mut expected_pong = Vec::new();
        write_pong(&mut expected_pong, b"are you there?");
        assert_eq!(out, expected_pong);
        assert_eq!(connection.state(), State::Open);
    }

    #[test]
    fn fragmented_binary_is_reassembled_into_an_owned_buffer() {
        let mut input = client_frame(false, 2, &[1, 2]);
        input.extend(client_frame(true, 0, &[3]));
        let mut connection = WsConnection::new(1024);
        let mut out = Vec::new();
        let poll = connection.poll(&mut input, &mut out);
        assert_eq!(poll.event, Some(Event::Binary(Cow::Owned(vec![1, 2, 3]))));
        assert_eq!(poll.consumed, input.len());
    }

    #[test]
    fn byte_by_byte_feeding_gives_the_same_events_as_one_feed() {
        let mut stream = client_frame(true, 1, b"first");
        stream.extend(client_frame(false, 1, "κό".as_bytes()));
        stream.extend(client_frame(true, 9, b"ping"));
        stream.extend(client_frame(true, 0, "σμε".as_bytes()));
        stream.extend(client_frame(true, 2, &[0u8; 300]));
        stream.extend(client_frame(true, 10, b""));
        stream.extend(client_frame(true, 8, &[0x03, 0xe8]));

        let mut whole = WsConnection::new(1024);
        let (whole_messages, whole_out) = feed(&mut whole, &stream);

        let mut bytewise = WsConnection::new(1024);
        let chunks: Vec<&[u8]> = stream.chunks(1).collect();
        // Each single byte that does not complete a frame must leave consumed == 0.
        let mut pending = Vec::new();
        let mut out = Vec::new();
        let mut messages = Vec::new();
        for chunk in &chunks {
            pending.extend_from_slice(chunk);
            loop {
                let poll = bytewise.poll(&mut pending, &mut out);
                let consumed = poll.consumed;
                let got_event = poll.event.is_some();
                if let Some(event) = poll.event {
                    messages.push(to_owned(event));
                }
                if consumed > 0 {
                    // Only whole frames are ever consumed while open.
                    assert!(parse_header(&pending).unwrap().is_some());
                }
                pending.drain(..consumed);
                if consumed == 0 && !got_event {
                    break;
                }
            }
        }
        assert_eq!(messages, whole_messages);
        assert_eq!(
            messages,
            [
                Owned::Text("first".into()),
                Owned::Text("κόσμε".into()),
                Owned::Binary(vec![0; 300])
            ]
        );
        assert_eq!(out, whole_out);
        assert!(pending.is_empty());
        assert_eq!(bytewise.state(), State::Closed);
        assert_eq!(whole.state(), State::Closed);
    }

    #[test]
    fn close_with_code_is_echoed_and_closes() {
        // Masked close 1000 "bye".
        let input = client_frame(true, 8, &[0x03, 0xe8, b'b', b'y', b'e']);
        let mut connection = WsConnection::new(1024);
        let (messages, out) = feed(&mut connection, &input);
        assert!(messages.is_empty());
        assert_eq!(out, [0x88, 0x02, 0x03, 0xe8]);
        assert_eq!(connection.state(), State::Closed);
        assert_eq!(connection.close_code(), Some(1000));
    }

    #[test]
    fn empty_close_gets_an_empty_close() {
        let mut connection = WsConnection::new(1024);
        let (_, out) = feed(&mut connection, &[0x88, 0x80, 1, 2, 3, 4]);
        assert_eq!(out, [0x88, 0x00]);
        assert_eq!(connection.state(), State::Closed);
        assert_eq!(connection.close_code(), Some(CLOSE_NO_STATUS));
    }

    #[test]
    fn application_close_codes_are_echoed() {
        for code in [1001u16, 1003, 1011, 3000, 4999] {
            let mut connection = WsConnection::new(1024);
            let (_, out) = feed(&mut connection, &client_frame(true, 8, &code.to_be_bytes()));
            assert_eq!(sent_close_code(&out), Some(code));
            assert_eq!(connection.state(), State::Closed);
        }
    }

    #[test]
    fn input_after_the_close_handshake_is_ignored() {
        let mut input = client_frame(true, 8, &[0x03, 0xe8]);
        input.extend(client_frame(true, 1, b"late"));
        input.extend(client_frame(true, 9, b"late ping"));
        let mut connection = WsConnection::new(1024);
        let (messages, out) = feed(&mut connection, &input);
        assert!(messages.is_empty());
        assert_eq!(out, [0x88, 0x02, 0x03, 0xe8]);
    }

    /// Feeds `input` to a fresh connection and returns the close code the server sent.
    fn failure_code(input: &[u8]) -> Option<u16> {
        let mut connection = WsConnection::new(1024);
        let (messages, out) = feed(&mut connection, input);
        assert!(messages.is_empty(), "no message from a failing stream");
        if sent_close_code(&out).is_some() {
            assert_eq!(connection.state(), State::CloseSent);
            assert_eq!(connection.close_code(), sent_close_code(&out));
        }
        sent_close_code(&out)
    }

    #[test]
    fn unmasked_client_frame_fails_with_1002() {
        assert_eq!(
            failure_code(&[0x81, 0x05, b'H', b'e', b'l', b'l', b'o']),
            Some(1002)
        );
    }

    #[test]
    fn reserved_bits_fail_with_1002() {
        for first in [0xc1, 0xa1, 0x91] {
            let mut frame = client_frame(true, 1, b"x");
            frame[0] = first;
            assert_eq!(failure_code(&frame), Some(1002), "first byte {first:#x}");
        }
    }

    #[test]
    fn reserved_opcodes_fail_with_1002() {
        for opcode in [3, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
            assert_eq!(failure_code(&client_frame(true, opcode, b"")), Some(1002));
        }
    }

    #[test]
    fn fragmented_control_frame_fails_with_1002() {
        assert_eq!(failure_code(&client_frame(false, 9, b"ping")), Some(1002));
    }

    #[test]
    fn oversized_control_frame_fails_with_1002() {
        assert_eq!(
            failure_code(&client_frame(true, 9, &[0u8; 126])),
            Some(1002)
        );
    }

    #[test]
    fn continuation_without_start_fails_with_1002() {
        assert_eq!(failure_code(&client_frame(true, 0, b"orphan")), Some(1002));
    }

    #[test]
    fn new_data_frame_inside_fragmented_message_fails_with_1002() {
        let mut input = client_frame(false, 1, b"start");
        input.extend(client_frame(true, 1, b"new"));
        assert_eq!(failure_code(&input), Some(1002));
    }

    #[test]
    fn close_with_one_byte_payload_fails_with_1002() {
        assert_eq!(failure_code(&client_frame(true, 8, &[0x03])), Some(1002));
    }

    #[test]
    fn close_with_invalid_codes_fails_with_1002() {
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000] {
            let input = client_frame(true, 8, &code.to_be_bytes());
            assert_eq!(failure_code(&input), Some(1002), "code {code}");
        }
    }

    #[test]
    fn close_with_invalid_utf8_reason_fails_with_1007() {
        assert_eq!(
            failure_code(&client_frame(true, 8, &[0x03, 0xe8, 0xff])),
            Some(1007)
        );
    }

    #[test]
    fn length_with_top_bit_set_fails_with_1002_and_discards_the_rest() {
        let input = [
            0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 0x81, 0x80, 1, 2, 3, 4,
        ];
        assert_eq!(failure_code(&input), Some(1002));
    }

    #[test]
    fn invalid_utf8_single_frame_fails_with_1007() {
        assert_eq!(
            failure_code(&client_frame(true, 1, &[b'a', 0xc3, 0x28])),
            Some(1007)
        );
    }

    #[test]
    fn single_frames_are_checked_wherever_the_first_non_ascii_byte_lies() {
        // Around the word boundaries of the unmasking's ASCII check, the tail included.
        for len in 1..40 {
            for at in 0..len {
                let mut valid = vec![b'a'; len];
                valid.splice(at..at + 1, "é".bytes());
                let mut input = client_frame(true, 1, &valid);
                let poll = WsConnection::new(1 << 20).poll(&mut input, &mut Vec::new());
                let expected = String::from_utf8(valid.clone()).unwrap();
                assert_eq!(poll.event, Some(Event::Text(Cow::Owned(expected))));
                let mut invalid = vec![b'a'; len];
                invalid[at] = 0xff;
                assert_eq!(failure_code(&client_frame(true, 1, &invalid)), Some(1007));
            }
        }
    }

    #[test]
    fn utf8_split_across_fragments_is_accepted() {
        // "€" is e2 82 ac; split it over three fragments.
        let mut input = client_frame(false, 1, &[b'a', 0xe2]);
        input.extend(client_frame(false, 0, &[0x82]));
        input.extend(client_frame(true, 0, &[0xac, b'b']));
        let mut connection = WsConnection::new(1024);
        let (messages, out) = feed(&mut connection, &input);
        assert_eq!(messages, [Owned::Text("a€b".into())]);
        assert!(out.is_empty());
    }

    #[test]
    fn invalid_utf8_fails_at_the_first_bad_fragment() {
        // f4 90 is above U+10FFFF whatever follows: fail before the final fragment arrives.
        let first = client_frame(false, 1, "κόσμε".as_bytes());
        let second = client_frame(false, 0, &[0xf4, 0x90, 0x80, 0x80]);
        let mut connection = WsConnection::new(1024);
        let (_, out) = feed_in_chunks(&mut connection, &[&first]);
        assert!(out.is_empty());
        let (_, out) = feed_in_chunks(&mut connection, &[&second]);
        assert_eq!(sent_close_code(&out), Some(1007));
    }

    #[test]
    fn invalid_utf8_split_across_fragments_fails_fast() {
        let first = client_frame(false, 1, &[b'a', 0xf4]);
        let second = client_frame(false, 0, &[0x90]);
        let mut connection = WsConnection::new(1024);
        let (_, out) = feed_in_chunks(&mut connection, &[&first]);
        assert!(out.is_empty(), "f4 alone could still become valid");
        let (_, out) = feed_in_chunks(&mut connection, &[&second]);
        assert_eq!(sent_close_code(&out), Some(1007));
    }

    #[test]
    fn message_ending_inside_a_utf8_sequence_fails_with_1007() {
        let mut input = client_frame(false, 1, b"a");
        input.extend(client_frame(true, 0, &[0xe2, 0x82]));
        assert_eq!(failure_code(&input), Some(1007));
    }

    #[test]
    fn invalid_utf8_fails_inside_an_incomplete_single_frame() {
        // One text frame arriving in three chops; the second holds f4 90 (above U+10FFFF).
        let mut payload = "κόσμε".as_bytes().to_vec();
        payload.extend_from_slice(&[0xf4, 0x90, 0x80, 0x80]);
        payload.extend_from_slice(b"edited");
        let frame = client_frame(true, 1, &payload);
        let first_chop = 6 + "κόσμε".len();
        let mut connection = WsConnection::new(1024);
        let (_, out) = feed_in_chunks(&mut connection, &[&frame[..first_chop]]);
        assert!(out.is_empty(), "a valid prefix does not fail");
        let (_, out) = feed_in_chunks(&mut connection, &[&frame[..first_chop + 2]]);
        assert_eq!(sent_close_code(&out), Some(1007));
        assert_eq!(connection.state(), State::CloseSent);
    }

    #[test]
    fn text_frame_checked_in_pieces_is_unmasked_exactly_once() {
        // Every split point, including inside multi-byte characters.
        let text = "a€b😀c κόσμε";
        let frame = client_frame(true, 1, text.as_bytes());
        for split in 1..frame.len() {
            let mut connection = WsConnection::new(1024);
            let (messages, out) =
                feed_in_chunks(&mut connection, &[&frame[..split], &frame[split..]]);
            assert_eq!(messages, [Owned::Text(text.into())], "split at {split}");
            assert!(out.is_empty());
        }
    }

    #[test]
    fn resume_point_is_a_character_boundary() {
        assert_eq!(utf8_resume_point(b""), 0);
        assert_eq!(utf8_resume_point(b"abcd"), 1);
        // "é" complete at the end: the window starts on its lead byte or skips its continuation.
        assert_eq!(utf8_resume_point(&[b'a', b'b', 0xc3, 0xa9]), 1);
        assert_eq!(utf8_resume_point(&[b'a', b'b', b'c', 0xc3, 0xa9]), 2);
        assert_eq!(utf8_resume_point(&[b'a', b'b', 0xe2, 0x82, 0xac]), 2);
        assert_eq!(utf8_resume_point(&[b'a', 0xe2, 0x82, 0xac]), 1);
        // An incomplete 4-byte sequence at the end starts at its lead byte.
        assert_eq!(utf8_resume_point(&[b'a', 0xf0, 0x9f, 0x98]), 1);
        // Last three bytes all continuations of a complete 4-byte character.
        assert_eq!(utf8_resume_point(&[0xf0, 0x9f, 0x98, 0x80]), 4);
    }

    #[test]
    fn too_big_single_frame_fails_with_1009_from_the_header_alone() {
        let mut connection = WsConnection::new(100);
        let mut out = Vec::new();
        // Header of a masked 64 KiB binary frame; no payload yet.
        let mut header = [0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        let poll = connection.poll(&mut header, &mut out);
        assert_eq!(sent_close_code(&out), Some(1009));
        assert_eq!(connection.state(), State::CloseSent);
        assert_eq!(poll.event, None);
        assert_eq!(poll.consumed, 14);
    }

    #[test]
    fn too_big_fragmented_message_fails_with_1009_counting_reassembled_bytes() {
        let mut connection = WsConnection::new(100);
        let first = client_frame(false, 2, &[0u8; 60]);
        let (_, out) = feed(&mut connection, &first);
        assert!(out.is_empty());
        // 60 buffered + 41 announced > 100, decided before the payload arrives.
        let second = client_frame(true, 0, &[0u8; 41]);
        let (_, out) = feed(&mut connection, &second[..6]);
        assert_eq!(sent_close_code(&out), Some(1009));
    }

    #[test]
    fn message_of_exactly_the_limit_is_accepted() {
        let mut connection = WsConnection::new(100);
        let (messages, out) = feed(&mut connection, &client_frame(true, 2, &[7u8; 100]));
        assert_eq!(messages, [Owned::Binary(vec![7; 100])]);
        assert!(out.is_empty());
    }

    #[test]
    fn after_failing_data_is_skipped_and_a_close_finishes() {
        let mut connection = WsConnection::new(100);
        // Too big: fails at the header; its 200-byte payload then streams in and is skipped.
        let big = client_frame(true, 2, &[1u8; 200]);
        let mut stream = big.clone();
        stream.extend(client_frame(true, 1, b"ignored"));
        stream.extend(client_frame(true, 9, b"ignored ping"));
        stream.extend(client_frame(true, 8, &[0x03, 0xe8]));
        let chunks: Vec<&[u8]> = stream.chunks(7).collect();
        let (messages, out) = feed_in_chunks(&mut connection, &chunks);
        assert!(messages.is_empty());
        assert_eq!(out, close_frame_bytes(1009, "message too big"));
        assert_eq!(connection.state(), State::Closed);
        assert_eq!(connection.close_code(), Some(1009));
    }

    #[test]
    fn server_initiated_close_waits_for_the_reply() {
        let mut connection = WsConnection::new(1024);
        let mut out = Vec::new();
        connection.close(1001, "going away", &mut out);
        assert_eq!(out, close_frame_bytes(1001, "going away"));
        assert_eq!(connection.state(), State::CloseSent);
        // A second close is a no-op.
        connection.close(1000, "", &mut out);
        assert_eq!(out, close_frame_bytes(1001, "going away"));

        let mut input = client_frame(true, 1, b"in flight");
        input.extend(client_frame(true, 8, &[0x03, 0xe9]));
        let (messages, reply) = feed(&mut connection, &input);
        assert!(messages.is_empty(), "data after our close is ignored");
        assert!(reply.is_empty(), "no second close frame");
        assert_eq!(connection.state(), State::Closed);
        assert_eq!(connection.close_code(), Some(1001));
    }

    #[test]
    fn ping_sent_by_server_is_answered_by_pong_and_ignored() {
        // The reactor writes pings with frame::write_ping; the client's pong must not disturb.
        let mut ping = Vec::new();
        write_ping(&mut ping, b"hb");
        assert_eq!(ping, [0x89, 2, b'h', b'b']);
        let mut connection = WsConnection::new(1024);
        let (messages, out) = feed(&mut connection, &client_frame(true, 10, b"hb"));
        assert!(messages.is_empty() && out.is_empty());
    }

    #[test]
    fn header_only_encoder_matches_frames_from_client_helper() {
        let mut out = Vec::new();
        write_header(&mut out, true, OpCode::Text, 3);
        let frame = client_frame(true, 1, b"abc");
        assert_eq!(out[0], frame[0]);
        assert_eq!(out[1] | 0x80, frame[1]);
    }

    use crate::test_random::XorShift;

    const TEXTS: [&str; 5] = ["hello", "κόσμε", "a€b😀c", "", "I'm so happy! 😊 très bien"];

    /// A random client stream: mostly well-formed messages (some fragmented, split inside
    /// characters, with control frames in between), sometimes a violation or a close.
    fn random_client_stream(random: &mut XorShift) -> Vec<u8> {
        let mut stream = Vec::new();
        for _ in 0..random.below(10) {
            match random.below(20) {
                0..=5 => {
                    let text = TEXTS[random.below(TEXTS.len())].repeat(1 + random.below(40));
                    stream.extend(client_frame(true, 1, text.as_bytes()));
                }
                6..=8 => {
                    let text = TEXTS[random.below(TEXTS.len())].repeat(1 + random.below(10));
                    let mut bytes = text.into_bytes();
                    if random.below(4) == 0 {
                        let at = random.below(bytes.len() + 1);
                        bytes.insert(at, [0xff, 0xc0, 0xed, 0xf4][random.below(4)]);
                    }
                    let cut_a = random.below(bytes.len() + 1);
                    let cut_b = cut_a + random.below(bytes.len() - cut_a + 1);
                    stream.extend(client_frame(false, 1, &bytes[..cut_a]));
                    stream.extend(client_frame(true, 9, b"between"));
                    stream.extend(client_frame(false, 0, &bytes[cut_a..cut_b]));
                    stream.extend(client_frame(true, 0, &bytes[cut_b..]));
                }
                9..=11 => {
                    let len = [0, 5, 125, 126, 300, 1500][random.below(6)];
                    let data = random.bytes(len);
                    stream.extend(client_frame(true, 2, &data));
                }
                12..=14 => {
                    let len = random.below(126);
                    let data = random.bytes(len);
                    stream.extend(client_frame(true, [9, 10][random.below(2)], &data));
                }
                15 => {
                    let len = 1 + random.below(20);
                    let bytes = random.bytes(len);
                    stream.extend(client_frame(true, 1, &bytes));
                }
                16 => {
                    let mut frame = client_frame(true, 2, b"bad");
                    match random.below(3) {
                        0 => frame[0] |= 0x40,
                        1 => frame[0] = 0x83,
                        _ => frame = vec![0x82, 3, 1, 2, 3],
                    }
                    stream.extend(frame);
                }
                17 => stream.extend(client_frame(false, 9, b"fragmented ping")),
                18 => {
                    // 1005 may not be sent, so it is a violation; an empty close is not.
                    let payload = match [1000u16, 1001, 1005, 3000, 999, 0][random.below(6)] {
                        0 => Vec::new(),
                        code => code.to_be_bytes().to_vec(),
                    };
                    stream.extend(client_frame(true, 8, &payload));
                }
                _ => stream.extend(client_frame(true, 0, b"orphan")),
            }
        }
        stream
    }

    /// Everything observable after feeding a stream.
    fn outcome(
        connection: &mut WsConnection,
        chunks: &[&[u8]],
    ) -> (Vec<Owned>, Vec<u8>, State, Option<u16>) {
        let (messages, out) = feed_in_chunks(connection, chunks);
        (messages, out, connection.state(), connection.close_code())
    }

    #[test]
    fn random_streams_give_the_same_outcome_whatever_the_chunking() {
        let mut random = XorShift(0x2545_f491_4f6c_dd1d);
        let mut close_codes_seen = std::collections::BTreeSet::new();
        let mut messages_seen = 0;
        for round in 0..400 {
            let stream = random_client_stream(&mut random);
            let max_message_bytes = [64, 1024, 1 << 20][random.below(3)];
            let whole = outcome(&mut WsConnection::new(max_message_bytes), &[&stream]);
            close_codes_seen.extend(whole.3);
            messages_seen += whole.0.len();

            let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
            let by_byte = outcome(&mut WsConnection::new(max_message_bytes), &bytewise);
            assert_eq!(by_byte, whole, "round {round}: byte by byte");

            let mut chunks = Vec::new();
            let mut rest = &stream[..];
            while !rest.is_empty() {
                let (chunk, tail) = rest.split_at((1 + random.below(40)).min(rest.len()));
                chunks.push(chunk);
                rest = tail;
            }
            let chunked = outcome(&mut WsConnection::new(max_message_bytes), &chunks);
            assert_eq!(chunked, whole, "round {round}: random chunks");
        }
        // The generator must have reached every kind of ending, or the test proves little.
        for code in [1002, 1005, 1007, 1009] {
            assert!(
                close_codes_seen.contains(&code),
                "no stream ended with {code}: {close_codes_seen:?}"
            );
        }
        assert!(
            [1000, 1001, 3000]
                .iter()
                .any(|code| close_codes_seen.contains(code)),
            "no stream ended with an echoed close: {close_codes_seen:?}"
        );
        assert!(messages_seen > 200, "only {messages_seen} messages");
    }

    #[test]
    fn random_bytes_never_panic_and_always_make_progress() {
        let mut random = XorShift(0x0123_4567_89ab_cdef);
        for _ in 0..2000 {
            let len = random.below(200);
            let bytes = random.bytes(len);
            let mut connection = WsConnection::new(100);
            let chunks: Vec<&[u8]> = bytes.chunks(1 + random.below(16)).collect();
            let (_, out) = feed_in_chunks(&mut connection, &chunks);
            // Whatever came in, any reply is a sequence of well-formed server frames.
            let mut rest = &out[..];
            while let Ok(Some(header)) = parse_header(rest) {
                assert_eq!(header.mask, None);
                rest = &rest[header.header_len + header.payload_len as usize..];
            }
            assert!(rest.is_empty());
        }
    }
}
