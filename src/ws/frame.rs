//! RFC 6455 frame codec: a zero-copy header parser for client frames, in-place unmasking, and the
//! encoder for the (never masked) frames a server sends.
//!
//! The parser only looks at the header bytes and hands back offsets, so the payload can be
//! unmasked and read where it already lies in the reactor's read buffer.

use crate::swar::read_word;

/// The longest possible header: 2 fixed bytes, 8 bytes of extended length and a 4-byte mask.
pub const MAX_HEADER_LEN: usize = 14;

/// Control frames carry at most this many payload bytes (RFC 6455 section 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The opcodes RFC 6455 defines; the other values (3-7, 11-15) are reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    /// Maps the 4-bit opcode field to an [`OpCode`]; `None` for reserved values.
    pub fn from_u8(value: u8) -> Option<OpCode> {
        match value {
            0x0 => Some(OpCode::Continuation),
            0x1 => Some(OpCode::Text),
            0x2 => Some(OpCode::Binary),
            0x8 => Some(OpCode::Close),
            0x9 => Some(OpCode::Ping),
            0xA => Some(OpCode::Pong),
            _ => None,
        }
    }

    /// The 4-bit value of this opcode on the wire.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, ping and pong are control frames: never fragmented, at most 125 payload bytes.
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A parsed frame header. The payload starts `header_len` bytes after the start of the frame.
///
/// The fields are raw: `rsv` and `opcode` are reported as found so that the connection layer can
/// decide which close code a violation deserves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// The three reserved bits RSV1..RSV3, as the low three bits (RSV1 = 0b100).
    pub rsv: u8,
    /// The raw 4-bit opcode; see [`OpCode::from_u8`].
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
    pub header_len: usize,
}

/// Headers that cannot be parsed at all. After one of these the byte stream has no usable framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The 64-bit extended payload length has its most significant bit set (RFC 6455 5.2).
    LengthMsbSet,
}

/// Parses the frame header at the start of `buf`.
///
/// Returns `Ok(None)` when `buf` does not yet hold the whole header. Never reads past the header,
/// so the cost does not depend on how much payload follows.
pub fn parse_header(buf: &[u8]) -> Result<Option<FrameHeader>, FrameError> {
    let (first, second) = match buf {
        [first, second, ..] => (*first, *second),
        _ => return Ok(None),
    };
    let masked = second & 0x80 != 0;
    let length_byte = second & 0x7F;
    let extended_len_bytes = match length_byte {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask_start = 2 + extended_len_bytes;
    let header_len = mask_start + if masked { 4 } else { 0 };
    if buf.len() < header_len {
        return Ok(None);
    }
    let payload_len = match extended_len_bytes {
        2 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
        8 => {
            let mut be_bytes = [0u8; 8];
            be_bytes.copy_from_slice(&buf[2..10]);
            let len = u64::from_be_bytes(be_bytes);
            if len & (1 << 63) != 0 {
                return Err(FrameError::LengthMsbSet);
            }
            len
        }
        _ => u64::from(length_byte),
    };
    let mask = if masked {
        let mut key = [0u8; 4];
        key.copy_from_slice(&buf[mask_start..mask_start + 4]);
        Some(key)
    } else {
        None
    };
    Ok(Some(FrameHeader {
        fin: first & 0x80 != 0,
        rsv: (first >> 4) & 0x07,
        opcode: first & 0x0F,
        mask,
        payload_len,
        header_len,
    }))
}

/// XOR-unmasks `payload` in place. `offset` is the position of `payload[0]` within the frame's
/// payload, so a payload can be unmasked in pieces.
///
/// Works on 8-byte words (which the compiler turns into vector instructions) rather than byte by
/// byte: unmasking touches every byte a client sends.
pub fn unmask(payload: &mut [u8], mask: [u8; 4], offset: usize) {
    let shift = offset % 4;
    let aligned_mask = [
        mask[shift],
        mask[(shift + 1) % 4],
        mask[(shift + 2) % 4],
        mask[(shift + 3) % 4],
    ];
    let mask_word = u64::from_ne_bytes([
        aligned_mask[0],
        aligned_mask[1],
        aligned_mask[2],
        aligned_mask[3],
        aligned_mask[0],
        aligned_mask[1],
        aligned_mask[2],
        aligned_mask[3],
    ]);
    let mut words = payload.chunks_exact_mut(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let unmasked = u64::from_ne_bytes(bytes) ^ mask_word;
        word.copy_from_slice(&unmasked.to_ne_bytes());
    }
    // The tail starts at a multiple of 8, hence of 4, so the mask phase is unchanged.
    for (index, byte) in words.into_remainder().iter_mut().enumerate() {
        *byte ^= aligned_mask[index % 4];
    }
}

/// [`unmask`], returning whether every unmasked byte is ASCII (and so the payload valid UTF-8),
/// for text frames. Noting the high bits on the way costs one OR per word, and spares the text
/// frames a chat client sends (ASCII JSON, mostly) a second pass to validate their UTF-8; other
/// frames take [`unmask`], whose loop the compiler vectorizes further.
pub fn unmask_reporting_ascii(payload: &mut [u8], mask: [u8; 4], offset: usize) -> bool {
    const HIGH_BITS: u64 = u64::from_le_bytes([0x80; 8]);
    let shift = offset % 4;
    // Little-endian throughout: byte `i` of a word is payload byte `i` of its eight.
    let mask_word = u64::from(u32::from_le_bytes(mask)).wrapping_mul(0x1_0000_0001);
    let mask_word = mask_word.rotate_right(8 * shift as u32);
    let len = payload.len();
    if len < 8 {
        let mut high_bits = 0;
        for (index, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[(shift + index) % 4];
            high_bits |= *byte;
        }
        return high_bits < 0x80;
    }
    // The tail (`len % 8` bytes) is unmasked as part of the word ending the payload, which
    // overlaps the last whole word: read before the loop, while still masked, and written back
    // after it, so the overlapping bytes get the same values twice rather than a byte loop.
    let last_at = len - 8;
    let last_word =
        read_word(&payload[last_at..]) ^ mask_word.rotate_right(8 * (last_at % 4) as u32);
    let mut high_bits = last_word;
    let mut words = payload.chunks_exact_mut(8);
    for word in &mut words {
        let unmasked = read_word(word) ^ mask_word;
        high_bits |= unmasked;
        word.copy_from_slice(&unmasked.to_le_bytes());
    }
    payload[last_at..].copy_from_slice(&last_word.to_le_bytes());
    high_bits & HIGH_BITS == 0
}

/// Writes an unmasked frame header (servers never mask, RFC 6455 5.1).
pub fn write_header(out: &mut Vec<u8>, fin: bool, opcode: OpCode, payload_len: usize) {
    let first = if fin { 0x80 } else { 0 } | opcode.as_u8();
    if payload_len < 126 {
        // Lossless: checked just above.
        out.extend_from_slice(&[first, payload_len as u8]);
    } else if let Ok(len16) = u16::try_from(payload_len) {
        out.extend_from_slice(&[first, 126]);
        out.extend_from_slice(&len16.to_be_bytes());
    } else {
        out.extend_from_slice(&[first, 127]);
        out.extend_from_slice(&(payload_len as u64).to_be_bytes());
    }
}

fn write_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    out.reserve(MAX_HEADER_LEN + payload.len());
    write_header(out, true, opcode, payload.len());
    out.extend_from_slice(payload);
}

/// Whether `input` starts like a close frame's header. Only a hint (the bytes may be the middle
/// of a frame whose header came earlier): the reactor uses it to give the answering close frame
/// a spare output buffer instead of a new allocation.
pub fn starts_with_close(input: &[u8]) -> bool {
    input
        .first()
        .is_some_and(|&first| first & 0x0f == OpCode::Close.as_u8())
}

/// Writes a complete, unfragmented text frame.
pub fn write_text(out: &mut Vec<u8>, text: &str) {
    write_frame(out, OpCode::Text, text.as_bytes());
}

/// Appends a text frame whose payload `write` appends, and returns the payload's length.
///
/// The header's size depends on the payload's length, known only once it is written: room for
/// the header a `size_hint`-byte payload needs is left first, the header written into it
/// afterwards, and the payload moved only when the hint was on the wrong side of 126 or 65,536
/// bytes. Inlined into its caller, so that `write` is inlined here in turn: a chat result is
/// framed and written in one function instead of three, each with its own register saves and
/// argument passing.
///
/// A hint of 126 to 65,535 bytes (every chat result and most room events) takes a path of its
/// own: the four-byte header goes in as one store before the payload and its length bytes are
/// patched in after. The other hints leave their room as one fixed-size store of zeros and
/// write the header with fixed-size stores too: copies of a length known only at run time were
/// `memcpy` and `memset` calls, a third of framing a chat result.
#[inline(always)]
pub fn write_text_with(
    out: &mut Vec<u8>,
    size_hint: usize,
    write: impl FnOnce(&mut Vec<u8>),
) -> usize {
    if (126..=0xffff).contains(&size_hint) {
        return write_text_with_header_16(out, size_hint, write);
    }
    const LONGEST_HEADER: usize = 10;
    let start = out.len();
    let reserved = server_header_len(size_hint);
    out.reserve(LONGEST_HEADER + size_hint);
    if let Some(room) = out.spare_capacity_mut().get_mut(..LONGEST_HEADER) {
        room.copy_from_slice(&[std::mem::MaybeUninit::new(0); LONGEST_HEADER]);
        // SAFETY: the `reserved` bytes (at most `LONGEST_HEADER`) past the length were just
        // initialized.
        unsafe { out.set_len(start + reserved) };
    }
    write(out);
    let payload_start = start + reserved;
    let payload_len = out.len().saturating_sub(payload_start);
    let header = &mut out[start..payload_start];
    match header {
        [first, second] if payload_len < 126 => {
            *first = FIN_TEXT;
            // Below 126: checked just above.
            *second = payload_len as u8;
        }
        [_, _, _, _] if (126..=0xffff).contains(&payload_len) => {
            let len16 = (payload_len as u16).to_be_bytes();
            header.copy_from_slice(&[FIN_TEXT, 126, len16[0], len16[1]]);
        }
        _ => reframe_text(out, start, reserved, payload_len),
    }
    payload_len
}

/// The first byte of an unfragmented text frame's header.
const FIN_TEXT: u8 = 0x81;

/// The header of a text frame of 126 to 65,535 bytes, its length bytes still zero.
const TEXT_HEADER_16: [u8; 4] = [FIN_TEXT, 126, 0, 0];

/// [`write_text_with`] for a hint of 126 to 65,535 bytes.
#[inline(always)]
fn write_text_with_header_16(
    out: &mut Vec<u8>,
    size_hint: usize,
    write: impl FnOnce(&mut Vec<u8>),
) -> usize {
    const HEADER_LEN: usize = TEXT_HEADER_16.len();
    let start = out.len();
    out.reserve(HEADER_LEN + size_hint);
    // SAFETY: the capacity has room for `HEADER_LEN` bytes past the length (just reserved),
    // and they are written before the length covers them.
    unsafe {
        out.as_mut_ptr()
            .add(start)
            .cast::<[u8; HEADER_LEN]>()
            .write_unaligned(TEXT_HEADER_16);
        out.set_len(start + HEADER_LEN);
    }
    write(out);
    // `write` only appends.
    let payload_len = out.len().saturating_sub(start + HEADER_LEN);
    match (
        u16::try_from(payload_len),
        out.get_mut(start + 2..start + HEADER_LEN),
    ) {
        (Ok(len16), Some(length_bytes)) if payload_len >= 126 => {
            length_bytes.copy_from_slice(&len16.to_be_bytes());
        }
        _ => reframe_text(out, start, HEADER_LEN, payload_len),
    }
    payload_len
}

/// The length of the header of a server frame with `payload_len` bytes of payload, in the
/// shortest form RFC 6455 allows (as [`write_header`] writes it).
fn server_header_len(payload_len: usize) -> usize {
    match payload_len {
        0..126 => 2,
        126..=0xffff => 4,
        _ => 10,
    }
}

/// The end of [`write_text_with`] when the header it left room for (`reserved` bytes at
/// `start`) is not the size the `payload_len`-byte payload after it needs, or is ten bytes:
/// moves the payload as needed and writes the header.
#[cold]
#[inline(never)]
fn reframe_text(out: &mut Vec<u8>, start: usize, reserved: usize, payload_len: usize) {
    let payload_start = start + reserved;
    let header_len = server_header_len(payload_len);
    if header_len > reserved {
        out.resize(start + header_len + payload_len, 0);
        out.copy_within(
            payload_start..payload_start + payload_len,
            start + header_len,
        );
    } else if header_len < reserved {
        out.copy_within(payload_start.., start + header_len);
        out.truncate(start + header_len + payload_len);
    }
    let header = &mut out[start..start + header_len];
    header[0] = FIN_TEXT;
    match header_len {
        // Below 126.
        2 => header[1] = payload_len as u8,
        4 => {
            header[1] = 126;
            // At most 0xffff.
            header[2..].copy_from_slice(&(payload_len as u16).to_be_bytes());
        }
        _ => {
            header[1] = 127;
            header[2..].copy_from_slice(&(payload_len as u64).to_be_bytes());
        }
    }
}

/// Writes a complete, unfragmented binary frame.
pub fn write_binary(out: &mut Vec<u8>, data: &[u8]) {
    write_frame(out, OpCode::Binary, data);
}

/// Writes a ping; `data` beyond 125 bytes is cut off because control frames cannot carry more.
pub fn write_ping(out: &mut Vec<u8>, data: &[u8]) {
    write_frame(
        out,
        OpCode::Ping,
        &data[..data.len().min(MAX_CONTROL_PAYLOAD)],
    );
}

/// Writes a pong; `data` beyond 125 bytes is cut off because control frames cannot carry more.
pub fn write_pong(out: &mut Vec<u8>, data: &[u8]) {
    write_frame(
        out,
        OpCode::Pong,
        &data[..data.len().min(MAX_CONTROL_PAYLOAD)],
    );
}

/// Writes a close frame with a status code and a reason. The reason is cut to fit the 125-byte
/// control payload (2 bytes go to the code), on a char boundary so it stays valid UTF-8.
pub fn write_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let max_reason_len = MAX_CONTROL_PAYLOAD - 2;
    let mut reason_len = reason.len().min(max_reason_len);
    while !reason.is_char_boundary(reason_len) {
        reason_len -= 1;
    }
    out.reserve(4 + MAX_CONTROL_PAYLOAD);
    write_header(out, true, OpCode::Close, 2 + reason_len);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&reason.as_bytes()[..reason_len]);
}

/// Writes a close frame without a body, the reply to a close that carried no status code.
pub fn write_empty_close(out: &mut Vec<u8>) {
    write_header(out, true, OpCode::Close, 0);
}

/// Whether `code` may appear in a close frame on the wire: the codes RFC 6455 7.4.1 defines for
/// sending (1000-1003, 1007-1011), the later IANA registrations 1012-1014, and the ranges for
/// libraries and applications (3000-4999). 1004-1006 and 1015 must never be sent.
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use tungstenite::protocol::frame::FrameHeader as TungHeader;

    // RFC 6455 section 5.7 examples.
    const RFC_UNMASKED_HELLO: [u8; 7] = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    const RFC_MASKED_HELLO: [u8; 11] = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    const RFC_HEL: [u8; 5] = [0x01, 0x03, 0x48, 0x65, 0x6c];
    const RFC_LO: [u8; 4] = [0x80, 0x02, 0x6c, 0x6f];

    #[test]
    fn close_headers_are_recognised_at_the_start_of_input() {
        let mut close = Vec::new();
        write_close(&mut close, 1000, "bye");
        assert!(starts_with_close(&close));
        assert!(starts_with_close(&[0x88, 0x80, 1, 2, 3, 4]));
        assert!(!starts_with_close(&RFC_MASKED_HELLO));
        assert!(!starts_with_close(&RFC_LO));
        assert!(!starts_with_close(&[]));
    }
    const RFC_MASKED_PONG_HELLO: [u8; 11] = [
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];

    #[test]
    fn parses_rfc_unmasked_text_frame() {
        let header = parse_header(&RFC_UNMASKED_HELLO).unwrap().unwrap();
        assert_eq!(
            header,
            FrameHeader {
                fin: true,
                rsv: 0,
                opcode: 1,
                mask: None,
                payload_len: 5,
                header_len: 2
            }
        );
        assert_eq!(&RFC_UNMASKED_HELLO[header.header_len..], b"Hello");
    }

    #[test]
    fn parses_and_unmasks_rfc_masked_text_frame() {
        let mut frame = RFC_MASKED_HELLO;
        let header = parse_header(&frame).unwrap().unwrap();
        assert_eq!(header.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(header.header_len, 6);
        assert_eq!(header.payload_len, 5);
        assert_eq!(OpCode::from_u8(header.opcode), Some(OpCode::Text));
        let mask = header.mask.unwrap();
        unmask(&mut frame[header.header_len..], mask, 0);
        assert_eq!(&frame[6..], b"Hello");
    }

    #[test]
    fn parses_rfc_fragmented_text_frames() {
        let first = parse_header(&RFC_HEL).unwrap().unwrap();
        assert!(!first.fin);
        assert_eq!(OpCode::from_u8(first.opcode), Some(OpCode::Text));
        assert_eq!(first.payload_len, 3);
        let second = parse_header(&RFC_LO).unwrap().unwrap();
        assert!(second.fin);
        assert_eq!(OpCode::from_u8(second.opcode), Some(OpCode::Continuation));
        assert_eq!(second.payload_len, 2);
    }

    #[test]
    fn parses_rfc_masked_pong() {
        let header = parse_header(&RFC_MASKED_PONG_HELLO).unwrap().unwrap();
        assert_eq!(OpCode::from_u8(header.opcode), Some(OpCode::Pong));
        assert!(OpCode::Pong.is_control());
    }

    #[test]
    fn parses_rfc_16_and_64_bit_lengths() {
        // 256 bytes binary, unmasked: 0x82 0x7E 0x0100.
        let header = parse_header(&[0x82, 0x7e, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!((header.payload_len, header.header_len), (256, 4));
        // 64 KiB binary, unmasked: 0x82 0x7F 0x0000000000010000.
        let long = [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0];
        let header = parse_header(&long).unwrap().unwrap();
        assert_eq!((header.payload_len, header.header_len), (65536, 10));
        let masked_long = [0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        let header = parse_header(&masked_long).unwrap().unwrap();
        assert_eq!(header.header_len, MAX_HEADER_LEN);
        assert_eq!(header.mask, Some([1, 2, 3, 4]));
    }

    #[test]
    fn incomplete_headers_need_more_bytes() {
        let masked_long = [0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for cut in 0..masked_long.len() {
            assert_eq!(parse_header(&masked_long[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn rejects_length_with_most_significant_bit() {
        let frame = [0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4];
        assert_eq!(parse_header(&frame), Err(FrameError::LengthMsbSet));
    }

    #[test]
    fn reports_reserved_bits_and_opcodes_raw() {
        let header = parse_header(&[0xf3, 0x80, 1, 2, 3, 4]).unwrap().unwrap();
        assert_eq!(header.rsv, 0b111);
        assert_eq!(header.opcode, 3);
        assert_eq!(OpCode::from_u8(header.opcode), None);
        let header = parse_header(&[0xc1, 0x80, 1, 2, 3, 4]).unwrap().unwrap();
        assert_eq!(header.rsv, 0b100);
    }

    #[test]
    fn opcode_round_trips() {
        for value in 0u8..16 {
            if let Some(opcode) = OpCode::from_u8(value) {
                assert_eq!(opcode.as_u8(), value);
            }
        }
        assert_eq!(OpCode::from_u8(0xB), None);
    }

    fn unmask_bytewise(payload: &mut [u8], mask: [u8; 4], offset: usize) {
        for (index, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[(offset + index) % 4];
        }
    }

    #[test]
    fn word_unmask_matches_bytewise_for_all_lengths_and_offsets() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        for len in 0..40 {
            for offset in 0..8 {
                let original: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut fast = original.clone();
                let mut slow = original.clone();
                unmask(&mut fast, mask, offset);
                unmask_bytewise(&mut slow, mask, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn unmasking_reports_exactly_whether_the_payload_is_ascii() {
        let mask = [0x9c, 0x01, 0x7f, 0xe3];
        let mut random = XorShift(0x0123_4567_89ab_cdef);
        for len in 0..48 {
            for offset in 0..8 {
                for _ in 0..20 {
                    // ASCII, with now and then one non-ASCII byte anywhere, the tail included.
                    let mut plain: Vec<u8> =
                        (0..len).map(|_| next_byte(&mut random) & 0x7f).collect();
                    if len > 0 && next_byte(&mut random).is_multiple_of(2) {
                        let at = usize::from(next_byte(&mut random)) % len;
                        plain[at] |= 0x80;
                    }
                    let mut masked = plain.clone();
                    unmask_bytewise(&mut masked, mask, offset);
                    let is_ascii = unmask_reporting_ascii(&mut masked, mask, offset);
                    assert_eq!(masked, plain, "len {len} offset {offset}");
                    assert_eq!(is_ascii, plain.is_ascii(), "{plain:02x?} offset {offset}");
                }
            }
        }
    }

    #[test]
    fn unmasking_in_pieces_equals_unmasking_at_once() {
        let mut frame = RFC_MASKED_HELLO;
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let (first, rest) = frame[6..].split_at_mut(3);
        unmask(first, mask, 0);
        unmask(rest, mask, 3);
        assert_eq!(&frame[6..], b"Hello");
    }

    #[test]
    fn encodes_rfc_unmasked_text_frame() {
        let mut out = Vec::new();
        write_text(&mut out, "Hello");
        assert_eq!(out, RFC_UNMASKED_HELLO);
    }

    #[test]
    fn encodes_16_and_64_bit_lengths() {
        let mut out = Vec::new();
        write_binary(&mut out, &[0u8; 256]);
        assert_eq!(&out[..4], &[0x82, 0x7e, 0x01, 0x00]);
        assert_eq!(out.len(), 4 + 256);
        out.clear();
        write_binary(&mut out, &[0u8; 65536]);
        assert_eq!(&out[..10], &[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
        out.clear();
        write_header(&mut out, true, OpCode::Binary, 125);
        assert_eq!(out, [0x82, 125]);
        out.clear();
        write_header(&mut out, false, OpCode::Text, 126);
        assert_eq!(out, [0x01, 126, 0, 126]);
    }

    #[test]
    fn encodes_ping_and_pong() {
        let mut out = Vec::new();
        write_ping(&mut out, b"Hello");
        assert_eq!(out, [0x89, 0x05, b'H', b'e', b'l', b'l', b'o']);
        out.clear();
        write_pong(&mut out, b"Hello");
        assert_eq!(out, [0x8a, 0x05, b'H', b'e', b'l', b'l', b'o']);
        out.clear();
        write_pong(&mut out, &[7u8; 200]);
        assert_eq!(out.len(), 2 + MAX_CONTROL_PAYLOAD);
    }

    #[test]
    fn encodes_close_with_code_and_reason() {
        let mut out = Vec::new();
        write_close(&mut out, 1000, "bye");
        assert_eq!(out, [0x88, 0x05, 0x03, 0xe8, b'b', b'y', b'e']);
        out.clear();
        write_empty_close(&mut out);
        assert_eq!(out, [0x88, 0x00]);
    }

    #[test]
    fn close_reason_is_cut_on_a_char_boundary() {
        // 62 two-byte chars = 124 bytes; only 123 fit, and byte 123 is inside a char.
        let reason = "é".repeat(62);
        let mut out = Vec::new();
        write_close(&mut out, 1001, &reason);
        assert_eq!(out[1], 2 + 122);
        assert!(std::str::from_utf8(&out[4..]).is_ok());
        assert_eq!(out.len(), 2 + 2 + 122);
    }

    #[test]
    fn close_codes_follow_rfc_6455() {
        for valid in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(is_valid_close_code(valid), "{valid}");
        }
        for invalid in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!is_valid_close_code(invalid), "{invalid}");
        }
    }

    /// What tungstenite's parser says about `bytes`, in this module's terms:
    /// `Err(())` for a header it rejects (reserved opcodes).
    fn tungstenite_view(bytes: &[u8]) -> Result<Option<FrameHeader>, ()> {
        let mut cursor = Cursor::new(bytes);
        match TungHeader::parse(&mut cursor) {
            Ok(None) => Ok(None),
            Err(_) => Err(()),
            Ok(Some((header, payload_len))) => {
                let opcode: u8 = header.opcode.into();
                // tungstenite consumes exactly the header bytes.
                let header_len = cursor.position() as usize;
                Ok(Some(FrameHeader {
                    fin: header.is_final,
                    rsv: (u8::from(header.rsv1) << 2)
                        | (u8::from(header.rsv2) << 1)
                        | u8::from(header.rsv3),
                    opcode,
                    mask: header.mask,
                    payload_len,
                    header_len,
                }))
            }
        }
    }

    use crate::test_random::XorShift;

    /// The differential test's next random byte.
    fn next_byte(random: &mut XorShift) -> u8 {
        (random.next() >> 24) as u8
    }

    fn assert_agrees_with_tungstenite(bytes: &[u8]) {
        let ours = parse_header(bytes);
        let theirs = tungstenite_view(bytes);
        match (ours, theirs) {
            (Ok(ours), Ok(theirs)) => assert_eq!(ours, theirs, "bytes {bytes:02x?}"),
            // tungstenite rejects reserved opcodes itself; this parser reports them raw.
            (Ok(Some(header)), Err(())) => {
                assert_eq!(OpCode::from_u8(header.opcode), None, "bytes {bytes:02x?}")
            }
            // tungstenite does not check the length's top bit.
            (Err(FrameError::LengthMsbSet), Ok(Some(_))) => {
                assert!(bytes[1] & 0x7f == 127 && bytes[2] & 0x80 != 0)
            }
            (Err(FrameError::LengthMsbSet), Err(())) => {
                assert!(bytes[1] & 0x7f == 127 && bytes[2] & 0x80 != 0)
            }
            (ours, theirs) => panic!("bytes {bytes:02x?}: ours {ours:?}, tungstenite {theirs:?}"),
        }
    }

    #[test]
    fn agrees_with_tungstenite_on_every_first_two_bytes() {
        let tail = [
            0x00, 0x01, 0x7f, 0x80, 0xff, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70,
        ];
        for first in 0..=255u8 {
            for second in 0..=255u8 {
                let mut bytes = vec![first, second];
                bytes.extend_from_slice(&tail);
                for cut in [0, 1, 2, 3, 4, 6, 8, 10, 12, 14] {
                    assert_agrees_with_tungstenite(&bytes[..cut]);
                }
            }
        }
    }

    #[test]
    fn agrees_with_tungstenite_on_random_byte_strings() {
        let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let len = usize::from(next_byte(&mut random) % 20);
            let bytes: Vec<u8> = (0..len).map(|_| next_byte(&mut random)).collect();
            assert_agrees_with_tungstenite(&bytes);
        }
    }

    #[test]
    fn frames_written_in_place_match_the_frame_encoder() {
        // Each side of both header-size boundaries, with hints on the right and wrong side.
        let lengths = [0, 1, 125, 126, 127, 300, 65_535, 65_536, 70_000];
        for &len in &lengths {
            let payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let text = std::str::from_utf8(&payload).unwrap();
            let mut expected = b"kept".to_vec();
            write_text(&mut expected, text);
            for &hint in &lengths {
                let mut out = b"kept".to_vec();
                let written =
                    write_text_with(&mut out, hint, |out| out.extend_from_slice(&payload));
                assert_eq!(written, len, "len {len}, hint {hint}");
                assert!(out == expected, "len {len}, hint {hint}");
            }
        }
    }

    #[test]
    fn written_frames_parse_back() {
        let mut out = Vec::new();
        write_text_with(&mut out, 10, |out| out.extend_from_slice(&[b'x'; 200]));
        let header = parse_header(&out).unwrap().unwrap();
        assert_eq!(header.payload_len, 200);
        assert_eq!(header.header_len, 4);
        assert_eq!(header.opcode, OpCode::Text.as_u8());
        assert!(header.fin && header.mask.is_none());
        assert_eq!(out.len(), 204);
    }
}
