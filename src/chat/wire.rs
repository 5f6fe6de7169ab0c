//! The JSON wire format: client messages parsed into a typed enum, server messages serialized
//! from borrowed structs (one allocation: the output string).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::emotion::{pairwise_sum, Emotion, Scores};
use crate::swar::read_word;

/// Longest client message `id`, in characters.
pub const MAX_ID_CHARS: usize = 64;
/// `from` of everything the bot says.
pub const BOT_NAME: &str = "emotibot";

/// A client → server message. Unknown fields are ignored.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage<'a> {
    Auth {
        #[serde(borrow)]
        token: Cow<'a, str>,
    },
    Message {
        #[serde(borrow, default)]
        id: Option<Cow<'a, str>>,
        #[serde(borrow)]
        text: Cow<'a, str>,
        #[serde(borrow, default)]
        room: Option<Cow<'a, str>>,
    },
    Typing {
        #[serde(borrow, default)]
        room: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        text: Option<Cow<'a, str>>,
    },
    Join {
        #[serde(borrow)]
        room: Cow<'a, str>,
        #[serde(default)]
        since: Option<u64>,
    },
    Leave {
        #[serde(borrow)]
        room: Cow<'a, str>,
    },
    Ping {
        #[serde(default)]
        t: Option<serde_json::Number>,
    },
}

const KNOWN_TYPES: [&str; 6] = ["auth", "message", "typing", "join", "leave", "ping"];

#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON at all.
    BadJson(String),
    /// A JSON object whose `type` is not a client message type.
    UnknownType(String),
    /// Valid JSON of the wrong shape; `id` is the message's client id when it had a usable one.
    BadRequest { detail: String, id: Option<String> },
}

/// A string field, borrowed from the input unless it has escapes. serde borrows a `Cow` only
/// when it is the field's whole type, not inside an `Option`; this newtype makes it one.
#[derive(Deserialize)]
struct Field<'a>(#[serde(borrow)] Cow<'a, str>);

fn field(value: Option<Field<'_>>) -> Option<Cow<'_, str>> {
    value.map(|Field(text)| text)
}

/// Every field of every client message, read in one pass straight from the text. The tagged
/// enum above makes serde buffer the whole object (into its private `Content` tree) before it
/// knows the variant; this flat form does not, and `type` picks the fields afterwards.
#[derive(Deserialize)]
struct FlatClientMessage<'a> {
    #[serde(rename = "type", borrow)]
    kind: Field<'a>,
    #[serde(borrow, default)]
    token: Option<Field<'a>>,
    #[serde(borrow, default)]
    id: Option<Field<'a>>,
    #[serde(borrow, default)]
    text: Option<Field<'a>>,
    #[serde(borrow, default)]
    room: Option<Field<'a>>,
    #[serde(default)]
    since: Option<u64>,
    #[serde(default)]
    t: Option<serde_json::Number>,
}

impl<'a> FlatClientMessage<'a> {
    /// The message, when `type` is known and its required fields are there.
    fn into_message(self) -> Option<ClientMessage<'a>> {
        Some(match &*self.kind.0 {
            "auth" => ClientMessage::Auth {
                token: field(self.token)?,
            },
            "message" => ClientMessage::Message {
                id: field(self.id),
                text: field(self.text)?,
                room: field(self.room),
            },
            "typing" => ClientMessage::Typing {
                room: field(self.room),
                text: field(self.text),
            },
            "join" => ClientMessage::Join {
                room: field(self.room)?,
                since: self.since,
            },
            "leave" => ClientMessage::Leave {
                room: field(self.room)?,
            },
            "ping" => ClientMessage::Ping { t: self.t },
            _ => return None,
        })
    }
}

/// Parses one client text frame. The common shape (see `read_plain_message`) is read by hand;
/// other well-formed messages take serde's flat one-pass route; anything else (bad JSON, unknown
/// type, a missing field, a wrongly typed field that the message's type does not even use) goes
/// through the tagged enum, which decides and classifies it.
pub fn parse_client_message(text: &str) -> Result<ClientMessage<'_>, ParseError> {
    // The fields rather than the message: the caller builds the message straight into its
    // result, where a returned `Option<ClientMessage>` was copied over into the `Result`.
    if let Some(fields) = read_compact_fields(text) {
        return Ok(fields.into_message());
    }
    parse_other_client_message(text)
}

/// Everything [`read_compact_fields`] leaves: the general hand reader, then serde. Kept out of
/// line so that the chat message's path stays short. `parse_client_message` is this after
/// `read_compact_fields`; the chat core calls the two itself to take the chat message's fields
/// without building a [`ClientMessage`].
#[inline(never)]
pub fn parse_other_client_message(text: &str) -> Result<ClientMessage<'_>, ParseError> {
    if let Some(message) = read_plain_message(text) {
        return Ok(message);
    }
    // Only objects: serde would also read a struct from a JSON array, by position.
    if text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        if let Some(message) = read_flat(text) {
            return Ok(message);
        }
    }
    classify_client_message(text)
}

/// What serde's flat struct makes of `text`, as a message.
fn read_flat(text: &str) -> Option<ClientMessage<'_>> {
    serde_json::from_str::<FlatClientMessage<'_>>(text)
        .ok()
        .and_then(FlatClientMessage::into_message)
}

/// The exact shapes clients send a chat message in: `{"type":"message",`, then an optional
/// `"id"`, an optional `"room"`, `"text"` and, if there was no room before it, an optional
/// `"room"` (the load generator's order and the web client's), every value a plain string (see
/// [`plain_string`]), no whitespace outside the values, and nothing after the closing brace. A
/// strict subset of what [`read_plain_message`] accepts, read the same way; anything else
/// (another order too) is `None` and goes the general way. The prefix is one 18-byte comparison,
/// each key with its colon and quote one word, and the fixed order needs no repeat checks: the
/// general reader's key, colon, type and whitespace steps were a third of a chat message's
/// reading.
fn read_compact_message(text: &str) -> Option<ClientMessage<'_>> {
    read_compact_fields(text).map(CompactFields::into_message)
}

/// The fields of a chat message in the compact shape, borrowed from the frame: plain strings,
/// so no `Cow` and nothing to drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactFields<'a> {
    pub id: Option<&'a str>,
    pub text: &'a str,
    pub room: Option<&'a str>,
}

impl<'a> CompactFields<'a> {
    /// The same message as the general [`ClientMessage`].
    pub fn into_message(self) -> ClientMessage<'a> {
        ClientMessage::Message {
            id: self.id.map(Cow::Borrowed),
            text: Cow::Borrowed(self.text),
            room: self.room.map(Cow::Borrowed),
        }
    }
}

/// [`read_compact_message`]'s reading, up to the fields: a chat message in the compact shape,
/// or `None` for anything else (which [`parse_other_client_message`] reads). Inlined: the
/// straight line then runs in its caller's frame.
#[inline(always)]
pub fn read_compact_fields(text: &str) -> Option<CompactFields<'_>> {
    match read_id_and_text(text) {
        Some(fields) => Some(fields),
        None => read_compact_fields_in_any_order(text),
    }
}

/// The load generator's and most clients' order of the compact shape,
/// `{"type":"message","id":"<id>","text":"<text>"}`, read in a straight line: the prefix and
/// the id's key as three words, the id in the one block it fits in, the quote and key between
/// the two values as a word and two bytes, and the text up to the closing quote and brace that
/// end the frame checked for special bytes in one scan. Inlined with [`read_compact_fields`]
/// into the chat core; any other input (an id of 16 bytes or more, a room, another order,
/// anything this would decline) is `None` and left to [`read_compact_fields_in_any_order`],
/// which reads this shape the same way.
#[inline(always)]
fn read_id_and_text(text: &str) -> Option<CompactFields<'_>> {
    const PREFIX: [u64; 3] = [
        word_literal(br#"{"type":"#).0,
        word_literal(br#""message"#).0,
        word_literal(br#"","id":""#).0,
    ];
    const ID_AT: usize = 24;
    // The id's closing quote and the text's key: `","text":"`, a word and two bytes.
    const BETWEEN: u64 = word_literal(br#"","text""#).0;
    let bytes = text.as_bytes();
    let len = bytes.len();
    // The id's block, and the text's closing quote and the brace at the end.
    let block = bytes.get(ID_AT..ID_AT + 16)?;
    if read_word(&bytes[0..8]) != PREFIX[0]
        || read_word(&bytes[8..16]) != PREFIX[1]
        || read_word(&bytes[16..24]) != PREFIX[2]
        || !bytes.ends_with(b"\"}")
    {
        return None;
    }
    let id_end = ID_AT + first_special_in_block(block)?;
    let text_at = id_end + 10;
    // The id's closing quote, `,"text":"` after it, and the text's end: the frame's last two
    // bytes.
    let between = bytes.get(id_end..text_at)?;
    if text_at > len - 2 || read_word(between) != BETWEEN || between[8..] != *br#":""# {
        return None;
    }
    if has_special(bytes.get(text_at..len - 2)?) {
        return None;
    }
    let text_end = len - 2;
    debug_assert!([ID_AT, id_end, text_at, text_end]
        .iter()
        .all(|&at| text.is_char_boundary(at)));
    // SAFETY: `ID_AT <= id_end < text_at <= text_end < len` (checked above), and all four are
    // character boundaries: each is next to an ASCII quote just matched, and an ASCII byte is
    // never inside a character's encoding.
    Some(CompactFields {
        id: Some(unsafe { text.get_unchecked(ID_AT..id_end) }),
        text: unsafe { text.get_unchecked(text_at..text_end) },
        room: None,
    })
}

/// Whether `bytes` has a special byte (see [`is_special`]): the straight line's text check,
/// inlined there. Unlike [`find_quote_backslash_or_control`] it need not say where, so the
/// blocks' masks are merged and tested once, two blocks a step, the last block ending where
/// `bytes` ends: 15 instructions a chat message fewer than the call.
#[inline(always)]
fn has_special(bytes: &[u8]) -> bool {
    let len = bytes.len();
    if len < 16 {
        return find_quote_backslash_or_control(bytes).is_some();
    }
    let start = bytes.as_ptr();
    let mut found = 0;
    // Up to the last block, which the step after the loop takes: `at + 16 < len` within.
    let mut at = 0;
    while len - at > 32 {
        debug_assert!(at + 32 < len);
        // SAFETY: the 32 bytes from `at` are in `bytes`, checked just above.
        found |= unsafe { special_mask(start.add(at)) | special_mask(start.add(at + 16)) };
        at += 32;
    }
    if len - at > 16 {
        debug_assert!(at + 16 < len);
        // SAFETY: the 16 bytes from `at` are in `bytes`, checked just above.
        found |= unsafe { special_mask(start.add(at)) };
    }
    // SAFETY: `len >= 16` (checked first), so the last 16 bytes are in `bytes`.
    found |= unsafe { special_mask(start.add(len - 16)) };
    found != 0
}

/// The special bytes (see [`is_special`]) among the 16 bytes at `block`, as the low 16 bits of
/// a mask.
///
/// # Safety
/// `block` is valid for 16 bytes of reads.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn special_mask(block: *const u8) -> u32 {
    use std::arch::x86_64::_mm_loadu_si128;
    // SAFETY: SSE2 is part of the x86-64 baseline, and the caller vouches for the 16 bytes the
    // unaligned load reads.
    json_special_mask(unsafe { _mm_loadu_si128(block.cast()) }) as u32
}

/// The special bytes (see [`is_special`]) among the 16 bytes at `block`, as the low 16 bits of
/// a mask.
///
/// # Safety
/// `block` is valid for 16 bytes of reads.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn special_mask(block: *const u8) -> u32 {
    // SAFETY: the caller vouches for the 16 bytes.
    let block = unsafe { std::slice::from_raw_parts(block, 16) };
    block
        .iter()
        .enumerate()
        .filter(|&(_, &byte)| is_special(byte))
        .fold(0, |mask, (index, _)| mask | 1 << index)
}

/// [`read_compact_fields`] for every order of the compact shape.
#[inline(never)]
fn read_compact_fields_in_any_order(text: &str) -> Option<CompactFields<'_>> {
    const PREFIX: &[u8; 18] = br#"{"type":"message","#;
    // The shortest message of this shape.
    const SHORTEST: usize = br#"{"type":"message","text":""}"#.len();
    let bytes = text.as_bytes();
    // Every message of this shape ends with its last value's closing quote and the brace.
    if bytes.len() < SHORTEST || !bytes.starts_with(PREFIX) || !bytes.ends_with(b"\"}") {
        return None;
    }
    let mut at = PREFIX.len();
    let mut id = None;
    if let Some((value, after)) = compact_field(text, at, CompactKey::ID) {
        if bytes.get(after) != Some(&b',') {
            return None;
        }
        id = Some(value);
        at = after + 1;
    }
    let mut room = None;
    let (message_text, mut after) = match compact_field(text, at, CompactKey::TEXT) {
        Some(field) => field,
        None => {
            let (value, after) = compact_field(text, at, CompactKey::ROOM)?;
            if bytes.get(after) != Some(&b',') {
                return None;
            }
            room = Some(value);
            compact_field(text, after + 1, CompactKey::TEXT)?
        }
    };
    // Unless the text's closing quote is the one before the final brace, the room follows it.
    if after + 1 != bytes.len() {
        if room.is_some() || bytes.get(after) != Some(&b',') {
            return None;
        }
        let (value, after_room) = compact_field(text, after + 1, CompactKey::ROOM)?;
        room = Some(value);
        after = after_room;
    }
    if after + 1 != bytes.len() {
        return None;
    }
    Some(CompactFields {
        id,
        text: message_text,
        room,
    })
}

/// A key of [`read_compact_message`]: its literal with the colon and the value's opening quote,
/// as the low bytes of a word, the mask of those bytes and their number.
struct CompactKey(u64, u64, usize);

impl CompactKey {
    const ID: CompactKey = CompactKey::new(br#""id":""#);
    const ROOM: CompactKey = CompactKey::new(br#""room":""#);
    const TEXT: CompactKey = CompactKey::new(br#""text":""#);

    const fn new(literal: &[u8]) -> CompactKey {
        let (word, mask) = word_literal(literal);
        CompactKey(word, mask, literal.len())
    }
}

/// The field starting at `at` when it has `key` and a plain string value: the value and the
/// position after its closing quote. Every field is followed by at least a value's closing
/// quote and a brace, so a key's eight bytes are there in any message this reads.
fn compact_field(text: &str, at: usize, key: CompactKey) -> Option<(&str, usize)> {
    let bytes = text.as_bytes();
    let word = read_word(bytes.get(at..at + 8)?);
    if word & key.1 != key.0 {
        return None;
    }
    let start = at + key.2;
    let end = start + find_quote_backslash_or_control(bytes.get(start..)?)?;
    if bytes.get(end) != Some(&b'"') {
        return None;
    }
    // SAFETY: `start <= end < text.len()` (`end` indexes the byte just read), and both are
    // character boundaries: `start` follows the key's last byte, a quote just matched, and `end`
    // is a quote; an ASCII byte is never inside a character's encoding.
    Some((unsafe { text.get_unchecked(start..end) }, end + 1))
}

/// The client message types, as the hand reader recognises them.
#[derive(Clone, Copy)]
enum MessageType {
    Auth,
    Message,
    Typing,
    Join,
    Leave,
    Ping,
}

/// The hand reader's slot for the `type` key; the string fields have slots 0 to 3.
const TYPE_SLOT: usize = 4;

/// The shape almost every client frame has, read without serde: one flat object whose keys are
/// among `type`, `token`, `id`, `text` and `room`, each at most once, every value a string that
/// needs no unescaping (no `\` and no control characters), and a known `type` with the fields it
/// requires. Anything else, including everything serde would reject, is `None` and left to
/// serde; what this accepts, serde reads as the same message. serde's per-field machinery was a
/// fifth of a chat message's instructions; going straight to the message, without serde's flat
/// struct and its `type` string, saves a further tenth of what is left.
fn read_plain_message(text: &str) -> Option<ClientMessage<'_>> {
    let bytes = text.as_bytes();
    let mut at = skip_whitespace(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_whitespace(bytes, at + 1);
    let mut kind = None;
    // `token`, `id`, `text`, `room`.
    let mut fields: [Option<&str>; 4] = [None; 4];
    loop {
        let (slot, after_key) = known_key(bytes, at)?;
        at = skip_whitespace(bytes, after_key);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        let value_at = skip_whitespace(bytes, at + 1);
        // serde rejects a repeated field.
        let after_value = if slot == TYPE_SLOT {
            let (value, after_value) = known_type(bytes, value_at)?;
            if kind.replace(value).is_some() {
                return None;
            }
            after_value
        } else {
            let (value, after_value) = plain_string(text, value_at)?;
            if fields.get_mut(slot)?.replace(value).is_some() {
                return None;
            }
            after_value
        };
        at = skip_whitespace(bytes, after_value);
        match bytes.get(at) {
            Some(b',') => at = skip_whitespace(bytes, at + 1),
            Some(b'}') => break,
            _ => return None,
        }
    }
    // Only whitespace may follow the object.
    if skip_whitespace(bytes, at + 1) != bytes.len() {
        return None;
    }
    let [token, id, text, room] = fields.map(|field| field.map(Cow::Borrowed));
    // As `FlatClientMessage::into_message` picks the fields.
    Some(match kind? {
        MessageType::Auth => ClientMessage::Auth { token: token? },
        MessageType::Message => ClientMessage::Message {
            id,
            text: text?,
            room,
        },
        MessageType::Typing => ClientMessage::Typing { room, text },
        MessageType::Join => ClientMessage::Join {
            room: room?,
            since: None,
        },
        MessageType::Leave => ClientMessage::Leave { room: room? },
        MessageType::Ping => ClientMessage::Ping { t: None },
    })
}

/// A literal of at most eight bytes as the low bytes of a little-endian word, and the mask that
/// keeps just those bytes of another word.
const fn word_literal(literal: &[u8]) -> (u64, u64) {
    let mut word = 0;
    let mut mask = 0;
    let mut index = 0;
    while index < literal.len() && index < 8 {
        word |= (literal[index] as u64) << (8 * index);
        mask |= 0xff << (8 * index);
        index += 1;
    }
    (word, mask)
}

/// [`word_literal`] with the literal's length and what it stands for: a row of the tables of
/// [`known_key`] and [`known_type`].
const fn tagged_literal<T: Copy>(literal: &[u8], tag: T) -> (u64, u64, usize, T) {
    let (word, mask) = word_literal(literal);
    (word, mask, literal.len(), tag)
}

/// The eight bytes from `at` as a little-endian word, zeros standing in for any past the end
/// (no literal compared against it has a zero byte).
fn word_at(bytes: &[u8], at: usize) -> u64 {
    match bytes.get(at..at.saturating_add(8)) {
        Some(eight) => read_word(eight),
        None => {
            let mut word = [0u8; 8];
            for (slot, &byte) in word.iter_mut().zip(bytes.get(at..).unwrap_or_default()) {
                *slot = byte;
            }
            u64::from_le_bytes(word)
        }
    }
}

/// The field slot (`token`, `id`, `text`, `room` are 0 to 3; `type` is [`TYPE_SLOT`]) of the
/// key literal starting at `at`, and the position after it; `None` for any other key. A key
/// needing no unescaping reads as one of these exactly when its bytes, quotes included, are the
/// name's: one word compared under a mask per name, rather than scanning the literal for its
/// end first or comparing byte strings.
fn known_key(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    // Most frequent first.
    const KEYS: [(u64, u64, usize, usize); 5] = [
        tagged_literal(b"\"type\"", TYPE_SLOT),
        tagged_literal(b"\"text\"", 2),
        tagged_literal(b"\"id\"", 1),
        tagged_literal(b"\"room\"", 3),
        tagged_literal(b"\"token\"", 0),
    ];
    let word = word_at(bytes, at);
    KEYS.iter()
        .find(|&&(literal, mask, _, _)| word & mask == literal)
        .map(|&(_, _, len, slot)| (slot, at + len))
}

/// The message type whose string literal starts at `at`, and the position after it; `None`
/// for any other value. Compared like [`known_key`] (`"message"`, nine bytes, as its first
/// eight and a quote): any other `type` (escaped, unknown, not a string) is left to serde in
/// any case.
fn known_type(bytes: &[u8], at: usize) -> Option<(MessageType, usize)> {
    const MESSAGE: (u64, u64) = word_literal(b"\"message");
    const TYPES: [(u64, u64, usize, MessageType); 5] = [
        tagged_literal(b"\"typing\"", MessageType::Typing),
        tagged_literal(b"\"ping\"", MessageType::Ping),
        tagged_literal(b"\"auth\"", MessageType::Auth),
        tagged_literal(b"\"join\"", MessageType::Join),
        tagged_literal(b"\"leave\"", MessageType::Leave),
    ];
    let word = word_at(bytes, at);
    if word == MESSAGE.0 {
        return (bytes.get(at + 8) == Some(&b'"')).then_some((MessageType::Message, at + 9));
    }
    TYPES
        .iter()
        .find(|&&(literal, mask, _, _)| word & mask == literal)
        .map(|&(_, _, len, kind)| (kind, at + len))
}

/// The position of the first byte at or after `at` that is not JSON whitespace.
fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(at) {
        at += 1;
    }
    at
}

/// The string literal starting at `at` when it needs no unescaping (no `\`, and no control
/// characters, which JSON does not allow raw): its contents and the position after it.
fn plain_string(text: &str, at: usize) -> Option<(&str, usize)> {
    let bytes = text.as_bytes();
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let start = at + 1;
    let end = start + find_quote_backslash_or_control(bytes.get(start..)?)?;
    if bytes.get(end) != Some(&b'"') {
        return None;
    }
    // Both ends are next to an ASCII quote, so on character boundaries.
    Some((text.get(start..end)?, end + 1))
}

/// The index of the first `"`, `\` or control character in `bytes`: where a JSON string
/// literal's plain run ends. Sixteen bytes at a time (a message's text is most of what is
/// scanned, and a byte at a time cost ten instructions a byte), the last block overlapping the
/// one before it rather than finishing byte by byte; shorter inputs take one or two overlapping
/// words. Overlaps are safe because every earlier byte was already found plain.
fn find_quote_backslash_or_control(bytes: &[u8]) -> Option<usize> {
    let len = bytes.len();
    if len >= 16 {
        let mut at = 0;
        while at + 16 <= len {
            if let Some(index) = first_special_in_block(&bytes[at..at + 16]) {
                return Some(at + index);
            }
            at += 16;
        }
        if at == len {
            return None;
        }
        let last = len - 16;
        return first_special_in_block(&bytes[last..]).map(|index| last + index);
    }
    if len >= 8 {
        if let Some(index) = first_special_in_word(read_word(&bytes[..8])) {
            return Some(index);
        }
        let last = len - 8;
        return first_special_in_word(read_word(&bytes[last..])).map(|index| last + index);
    }
    bytes.iter().position(|&b| is_special(b))
}

/// Whether `byte` ends a plain run of a JSON string literal: a quote, a backslash or a control
/// character (which JSON does not allow raw).
fn is_special(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}

/// The index of the first special byte (see [`is_special`]) in the eight bytes of `word`.
fn first_special_in_word(word: u64) -> Option<usize> {
    let found = json_special_bytes(word);
    (found != 0).then(|| (found.trailing_zeros() / 8) as usize)
}

/// The index of the first special byte (see [`is_special`]) in a 16-byte block: one load and
/// [`json_special_mask`], a dozen instructions for what took two words of arithmetic.
#[cfg(target_arch = "x86_64")]
fn first_special_in_block(block: &[u8]) -> Option<usize> {
    use std::arch::x86_64::_mm_loadu_si128;
    assert!(block.len() >= 16);
    // SAFETY: SSE2 is part of the x86-64 baseline, and `block` holds the 16 bytes the unaligned
    // load reads (asserted just above).
    let found = json_special_mask(unsafe { _mm_loadu_si128(block.as_ptr().cast()) });
    (found != 0).then(|| found.trailing_zeros() as usize)
}

/// The index of the first special byte (see [`is_special`]) in a 16-byte block, as two words.
#[cfg(not(target_arch = "x86_64"))]
fn first_special_in_block(block: &[u8]) -> Option<usize> {
    first_special_in_word(read_word(&block[..8]))
        .or_else(|| first_special_in_word(read_word(&block[8..16])).map(|index| 8 + index))
}

/// The reference parse: the tagged enum, and on failure a second look to classify the error.
fn classify_client_message(text: &str) -> Result<ClientMessage<'_>, ParseError> {
    let error = match serde_json::from_str::<ClientMessage<'_>>(text) {
        Ok(message) => return Ok(message),
        Err(error) => error,
    };
    if error.is_syntax() || error.is_eof() {
        return Err(ParseError::BadJson(error.to_string()));
    }
    // Valid JSON of the wrong shape (rare): look again to tell an unknown type from bad fields.
    let probe: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let id = probe
        .get("id")
        .and_then(serde_json::Value::as_str)
        .filter(|id| within_chars(id, MAX_ID_CHARS))
        .map(str::to_owned);
    match probe.get("type").and_then(serde_json::Value::as_str) {
        None => Err(ParseError::BadRequest {
            detail: "expected a JSON object with a string \"type\" field".to_owned(),
            id,
        }),
        Some(kind) if !KNOWN_TYPES.contains(&kind) => {
            Err(ParseError::UnknownType(truncate_chars(kind, 64).to_owned()))
        }
        Some(_) => Err(ParseError::BadRequest {
            detail: error.to_string(),
            id,
        }),
    }
}

/// What every reading route makes of one text, for the differential tests and the
/// `client_message` fuzz target: the routes must agree wherever they overlap.
#[derive(Debug)]
pub(crate) struct ReadingRoutes<'a> {
    /// [`read_compact_message`].
    pub compact: Option<ClientMessage<'a>>,
    /// [`read_compact_fields_in_any_order`], the compact reader without its straight line for
    /// the id-then-text order.
    pub compact_any_order: Option<CompactFields<'a>>,
    /// [`read_plain_message`].
    pub plain: Option<ClientMessage<'a>>,
    /// serde's flat struct.
    pub flat: Option<ClientMessage<'a>>,
    /// [`parse_client_message`], the routes above in turn.
    pub parsed: Result<ClientMessage<'a>, ParseError>,
    /// [`classify_client_message`], the tagged enum.
    pub reference: Result<ClientMessage<'a>, ParseError>,
}

impl<'a> ReadingRoutes<'a> {
    pub(crate) fn new(text: &'a str) -> ReadingRoutes<'a> {
        ReadingRoutes {
            compact: read_compact_message(text),
            compact_any_order: read_compact_fields_in_any_order(text),
            plain: read_plain_message(text),
            flat: read_flat(text),
            parsed: parse_client_message(text),
            reference: classify_client_message(text),
        }
    }

    /// Which promise the routes break, if any: the compact reader takes a subset of the general
    /// hand reader's inputs and reads them the same; the general one takes only what serde's
    /// flat struct reads the same way; the whole parse answers as the tagged enum does, errors
    /// included.
    pub(crate) fn disagreement(&self) -> Option<&'static str> {
        let any_order = self.compact_any_order.map(CompactFields::into_message);
        if self.compact != any_order {
            return Some("the compact reader's straight line differs from its general order");
        }
        if self.compact.is_some() && self.compact != self.plain {
            return Some("the compact reader differs from the general hand reader");
        }
        if self.plain.is_some() && self.plain != self.flat {
            return Some("the hand reader differs from serde's flat struct");
        }
        if self.parsed != self.reference {
            return Some("the parse differs from the tagged enum");
        }
        None
    }
}

/// Whether `text` has at most `max` characters. A character takes at least a byte, so they are
/// counted only when `text` is longer than that in bytes.
pub fn within_chars(text: &str, max: usize) -> bool {
    text.len() <= max || text.chars().count() <= max
}

/// At most `max` characters of `text`, cut at a character boundary.
pub fn truncate_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// At most `max` bytes of `text`, cut at a character boundary (WebSocket close reasons are
/// limited to 123 bytes).
pub fn truncate_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// An emotion result as it goes on the wire: scores renormalized to sum to 1 and rounded to four
/// decimals (seven roundings of at most 5e-5 each keep the sum within 1e-3 of 1), held as
/// integer ten-thousandths so that a retained event stays small and encodes exactly as it was
/// first sent.
/// In C layout, the label then the units from byte 2, so that [`encode_with_sse2`] can
/// write the units with one store of a register whose first lane is spare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct WireEmotion {
    pub dominant: Emotion,
    /// Per label (indexed by [`Emotion::index`]), in ten-thousandths: 10,000 is 1.
    pub scores: [u16; 7],
}

/// Ten-thousandths in one: scores are sent with four decimals.
pub const SCORE_UNITS: u16 = 10_000;

/// 2^23: from it up to 2^24 the `f32` values are exactly the integers, so adding it to a number
/// in [0, 2^23) rounds that to the nearest integer (ties to even), which then is the low bits of
/// the sum's mantissa.
const INTEGER_SHIFT: f32 = 8_388_608.0;

/// `scaled` (a share times [`SCORE_UNITS`], in [0, 10,000] give or take rounding) as the nearest
/// whole number, ties to even. By the addition above rather than `f32::round` (a library call
/// on baseline x86-64) or a saturating `as` conversion, which the compiler cannot vectorize
/// with SSE2.
#[inline(always)]
fn round_units(scaled: f32) -> u16 {
    (scaled + INTEGER_SHIFT).to_bits() as u16
}

impl WireEmotion {
    /// The scores in ten-thousandths of their sum, negative and NaN scores counting as zero;
    /// all-neutral if nothing usable is left. In `f32`, eight lanes (the eighth idle), with one
    /// division for the scale: two four-lane operations a step instead of seven `f64` divisions.
    /// A product within `f32` rounding of a half may round the other way than exact arithmetic
    /// would; the units still sum to 10,000 within the seven roundings.
    pub fn from_scores(scores: &Scores) -> WireEmotion {
        let mut lanes = [0.0f32; 8];
        for (lane, &score) in lanes.iter_mut().zip(scores.as_array()) {
            // `>` is false for NaN, which thus counts as zero, as a negative score does.
            *lane = if score > 0.0 { score } else { 0.0 };
        }
        let sum = pairwise_sum(&lanes);
        // Positive and finite (NaN fails both comparisons); two comparisons are cheaper than
        // `is_finite`'s bit tests.
        if !(sum > 0.0 && sum <= f32::MAX) {
            // A scorer fault must not put NaN on the wire.
            let mut units = [0u16; 7];
            units[Emotion::Neutral.index()] = SCORE_UNITS;
            return WireEmotion {
                dominant: Emotion::Neutral,
                scores: units,
            };
        }
        let scale = f32::from(SCORE_UNITS) / sum;
        // Non-negative and at most the sum, so the scaled lanes are in [0, 10,000] give or
        // take rounding: in range for `round_units`.
        let mut scaled = [0u16; 8];
        for (units, &lane) in scaled.iter_mut().zip(&lanes) {
            *units = round_units(lane * scale);
        }
        let mut units = [0u16; 7];
        units.copy_from_slice(&scaled[..7]);
        WireEmotion {
            dominant: scores.dominant(),
            scores: units,
        }
    }

    /// One label's score as a number in [0, 1].
    pub fn score(&self, emotion: Emotion) -> f64 {
        f64::from(self.scores[emotion.index()]) / f64::from(SCORE_UNITS)
    }

    /// The dominant label's score.
    pub fn confidence(&self) -> f64 {
        self.score(self.dominant)
    }
}

/// [`EmotionJson::from_scores`] one step after the other: for scores with a NaN, none positive
/// or a sum out of range (never the scorer's), and on other platforms than x86-64.
#[cold]
#[inline(never)]
fn encode_any_scores(scores: &Scores) -> EmotionJson {
    #[cfg(test)]
    tests::ONE_STEP_AFTER_THE_OTHER.with(|count| count.set(count.get() + 1));
    EmotionJson::new(&WireEmotion::from_scores(scores))
}

/// [`EmotionJson::from_scores`] with SSE2. Scores with a NaN neutral score, or whose positive
/// ones sum to zero or more than `f32::MAX`, go to [`encode_any_scores`] (a tail call: an
/// `Option` returned instead cost the usual path the `None` set up ahead of the branch). The
/// arithmetic is [`WireEmotion::from_scores`]' lane for lane (the same sums, the same product
/// and rounding), so the units are the same bits.
///
/// The lanes are in [`ScoreTexts`]' order from the start: lane 0 idle (then the confidence's),
/// lanes 1 to 7 the scores, loaded as two overlapping four-lane reads.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn encode_with_sse2(scores: &Scores) -> EmotionJson {
    use std::arch::x86_64::{
        __m128i, _mm_add_ps, _mm_add_ss, _mm_and_ps, _mm_and_si128, _mm_castps_si128,
        _mm_castsi128_ps, _mm_cmpeq_ps, _mm_cvtss_f32, _mm_insert_epi16, _mm_load_ps, _mm_loadu_ps,
        _mm_loadu_si128, _mm_max_ps, _mm_movehl_ps, _mm_movemask_ps, _mm_mul_ps, _mm_or_ps,
        _mm_packs_epi32, _mm_set1_ps, _mm_setzero_ps, _mm_shuffle_ps, _mm_slli_si128,
    };
    let values = scores.as_array();
    let c = digit_constants();
    // SAFETY: SSE2 is part of the x86-64 baseline. The two loads read the seven scores' 28
    // bytes (labels 0 to 3, and 3 to 6), the aligned ones a constant's 16. The register taken
    // as a `WireEmotion` has its size and layout (asserted below): its first byte is a label's
    // discriminant (`Emotion` is `repr(u8)`, 0 to 6 in `Emotion::ALL` order), then
    // a byte of padding, then seven `u16`, any of which is valid.
    unsafe {
        // A zero, then labels 0 to 2: labels 0 to 3 shifted up one lane.
        let low = _mm_castsi128_ps(_mm_slli_si128::<4>(_mm_castps_si128(_mm_loadu_ps(
            values.as_ptr(),
        ))));
        // Labels 3 to 6.
        let high = _mm_loadu_ps(values.as_ptr().add(3));
        // `max(x, 0)` is `x > 0 ? x : 0`: NaN and negative scores count as zero, as in
        // `from_scores`.
        let zero = _mm_setzero_ps();
        let low = _mm_max_ps(low, zero);
        let high = _mm_max_ps(high, zero);
        // `pairwise_sum`'s sums: labels i and i + 4 (3 and the idle zero), then those of 0
        // and 2 and those of 1 and 3, then the two; in other lanes here, but the same
        // additions, and addition is commutative.
        let fours = _mm_add_ps(low, high);
        let twos = _mm_add_ps(fours, _mm_movehl_ps(fours, fours));
        let sum = _mm_cvtss_f32(_mm_add_ss(
            twos,
            _mm_shuffle_ps::<0b01_01_01_01>(twos, twos),
        ));
        // Positive and finite: the bits of those, less one, are below those of `f32::MAX`
        // (zero, negative numbers, infinity and NaN wrap or lie above). A NaN neutral score
        // makes `Scores::dominant` neutral whatever the others (nothing compares above it).
        let usable_sum = sum.to_bits().wrapping_sub(1) < f32::MAX.to_bits();
        let neutral = values[Emotion::Neutral.index()];
        if !usable_sum || neutral.is_nan() {
            return encode_any_scores(scores);
        }
        // The top score in every lane: the lanes folded in halves. The clamped scores will
        // do: the top one is positive (the sum is), so the lanes at the top are those of the
        // labels whose scores are that, which `Scores::dominant`'s scan would pick from (a
        // NaN score never wins it).
        let top = _mm_max_ps(low, high);
        let top = _mm_max_ps(top, _mm_movehl_ps(top, top));
        let top = _mm_max_ps(top, _mm_shuffle_ps::<0b01_01_01_01>(top, top));
        let top = _mm_shuffle_ps::<0>(top, top);
        // Bit i for label i at the top (the idle lane, zero, is not).
        let at_top = (_mm_movemask_ps(_mm_cmpeq_ps(low, top))
            | _mm_movemask_ps(_mm_cmpeq_ps(high, top)) << 4)
            >> 1;
        // Ties go to neutral, then to the earliest label: `Scores::dominant`.
        let earliest = if at_top & 0x40 != 0 { 0 } else { at_top & 0x3f };
        let dominant = label_at((earliest | 0x40).trailing_zeros());
        // The idle lane takes the top score: its units are the confidence's.
        let low = _mm_or_ps(
            low,
            _mm_and_ps(top, _mm_load_ps(c.first_lane.as_ptr().cast())),
        );
        let scale = _mm_set1_ps(f32::from(SCORE_UNITS) / sum);
        let shift = _mm_load_ps(c.integer_shift.as_ptr());
        let units_mask = _mm_loadu_si128(c.units_mask.as_ptr().cast::<__m128i>());
        let round = |lanes| {
            _mm_and_si128(
                _mm_castps_si128(_mm_add_ps(_mm_mul_ps(lanes, scale), shift)),
                units_mask,
            )
        };
        // At most 10,000 each (a share is at most the sum): the signed 16-bit packing keeps
        // them as they are.
        let packed = _mm_packs_epi32(round(low), round(high));
        // The labels' units are lanes 1 to 7, which is where `WireEmotion`'s C layout has
        // them; the label goes in the first lane (its low byte; the high one is padding).
        // Built in the register, the whole value is one store.
        let emotion = _mm_insert_epi16::<0>(packed, dominant as i32);
        EmotionJson {
            texts: ScoreTexts::from_lanes(packed, c),
            emotion: std::mem::transmute::<__m128i, WireEmotion>(emotion),
        }
    }
}

// The layout `encode_with_sse2` stores into.
const _: () = assert!(
    std::mem::size_of::<WireEmotion>() == 16
        && std::mem::offset_of!(WireEmotion, dominant) == 0
        && std::mem::offset_of!(WireEmotion, scores) == 2
);

/// The label of index `index` (at most 6) in [`Emotion::ALL`], by a `match` the compiler
/// makes the identity (a table look-up for `Emotion::ALL[index]`).
#[inline(always)]
fn label_at(index: u32) -> Emotion {
    match index {
        0 => Emotion::Anger,
        1 => Emotion::Disgust,
        2 => Emotion::Fear,
        3 => Emotion::Joy,
        4 => Emotion::Sadness,
        5 => Emotion::Surprise,
        _ => Emotion::Neutral,
    }
}

fn encode<T: Serialize>(value: &T) -> String {
    // Most server messages fit; growing the buffer would copy it.
    let mut out = Vec::with_capacity(256);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, ScoreFormatter);
    match value.serialize(&mut serializer) {
        // serde_json writes only valid UTF-8.
        Ok(()) => String::from_utf8(out).unwrap_or_default(),
        // These structs hold only strings, numbers and string-keyed maps, which always serialize.
        Err(_) => {
            r#"{"type":"error","code":"internal","message":"serialization failed"}"#.to_owned()
        }
    }
}

/// Compact JSON whose floats are written as fixed-point decimals when they are scores (a value
/// in [0, 1] with at most four decimals, as [`WireEmotion`] makes them): `0.0123`, `1`, `0`.
/// General float formatting was the largest single cost of an `emotion` result.
struct ScoreFormatter;

impl serde_json::ser::Formatter for ScoreFormatter {
    fn write_f64<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        value: f64,
    ) -> std::io::Result<()> {
        match fixed4(value) {
            Some((digits, len)) => writer.write_all(&digits[..len]),
            None => serde_json::ser::CompactFormatter.write_f64(writer, value),
        }
    }
}

/// `value` as at most six bytes of decimal text when it is a four-decimal number in [0, 1].
fn fixed4(value: f64) -> Option<([u8; 6], usize)> {
    if !(0.0..=1.0).contains(&value) {
        return None;
    }
    let scaled = value * 10_000.0;
    let units = scaled.round();
    if (scaled - units).abs() > 1e-6 {
        return None;
    }
    let units = units as u32;
    let mut digits = *b"0.0000";
    match units {
        0 => Some((digits, 1)),
        10_000 => Some((*b"1     ", 1)),
        _ => {
            let mut rest = units;
            for slot in digits[2..].iter_mut().rev() {
                *slot = b'0' + (rest % 10) as u8;
                rest /= 10;
            }
            let mut len = 6;
            while digits[len - 1] == b'0' {
                len -= 1;
            }
            Some((digits, len))
        }
    }
}

/// A session id: the server's random prefix, then the session's serial, sent as 24 lowercase
/// hex digits (what `format!("{:016x}{:08x}")` gives).
#[derive(Clone, Copy)]
pub struct SessionId {
    pub prefix: u64,
    pub serial: u32,
}

impl SessionId {
    /// The id's 24 hex digits, written without the formatting machinery: one per connection.
    pub fn hex(self) -> [u8; 24] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 24];
        let value = (u128::from(self.prefix) << 32) | u128::from(self.serial);
        for (position, slot) in text.iter_mut().enumerate() {
            let shift = 4 * (23 - position);
            *slot = HEX[((value >> shift) & 0xf) as usize];
        }
        text
    }
}

pub struct ReadyFields<'a> {
    pub session: SessionId,
    pub user: &'a str,
    pub name: Option<&'a str>,
    pub room: &'a str,
    pub seq: u64,
    pub typing_timeout_ms: u64,
    pub ping_interval_ms: u64,
}

impl ReadyFields<'_> {
    /// About how many bytes [`write_ready`] writes (a little more, with escapes aside).
    pub fn size_hint(&self) -> usize {
        184 + self.user.len() + self.name.map_or(0, str::len) + self.room.len()
    }
}

/// The `ready` frame appended to `out` (UTF-8), so that it can go straight into a connection's output.
pub fn write_ready(out: &mut Vec<u8>, fields: &ReadyFields<'_>) {
    // Written by hand rather than through serde: every connection gets one, and serde's
    // per-field machinery cost several times the bytes it wrote.
    out.reserve(fields.size_hint());
    out.extend_from_slice(br#"{"type":"ready","session":""#);
    // Hex digits need no escaping.
    out.extend_from_slice(&fields.session.hex());
    out.extend_from_slice(br#"","user":"#);
    push_json_str(out, fields.user);
    if let Some(name) = fields.name {
        out.extend_from_slice(br#","name":"#);
        push_json_str(out, name);
    }
    out.extend_from_slice(br#","room":"#);
    push_json_str(out, fields.room);
    out.extend_from_slice(br#","seq":"#);
    push_u64(out, fields.seq);
    out.extend_from_slice(br#","typing_timeout_ms":"#);
    push_u64(out, fields.typing_timeout_ms);
    out.extend_from_slice(br#","ping_interval_ms":"#);
    push_u64(out, fields.ping_interval_ms);
    out.push(b'}');
}

#[derive(Serialize)]
struct Authed {
    r#type: &'static str,
    exp: u64,
}

pub fn authed(exp: u64) -> String {
    encode(&Authed {
        r#type: "authed",
        exp,
    })
}

/// The sender's own result: for a sent message (`id` and `seq` set) or a draft preview (neither).
pub fn emotion_result(
    id: Option<&str>,
    room: &str,
    seq: Option<u64>,
    emotion: &WireEmotion,
) -> String {
    let mut out = Vec::new();
    write_emotion_result(&mut out, id, room, seq, &EmotionJson::new(emotion));
    // Built only from `&str` pieces and ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// The head of a sent message's result, up to the id's contents.
const RESULT_HEAD: &[u8; 24] = br#"{"type":"emotion","id":""#;
/// What follows the id's contents, up to the room's.
const RESULT_ROOM_KEY: &[u8; 10] = br#"","room":""#;
/// The head of a draft preview's result, up to the room's contents.
const PREVIEW_HEAD: &[u8; 36] = br#"{"type":"emotion","id":null,"room":""#;
/// What follows the room's contents when there is a seq, up to its digits.
const RESULT_SEQ_KEY: &[u8; 8] = br#"","seq":"#;
const RESULT_TAIL: &[u8; 17] = br#","preview":false}"#;
const PREVIEW_TAIL: &[u8; 16] = br#","preview":true}"#;
/// The scores object's closing brace and a tail: the fragment's last piece and the frame's
/// in one constant store.
const CLOSED_RESULT_TAIL: &[u8; 18] = br#"},"preview":false}"#;
const CLOSED_PREVIEW_TAIL: &[u8; 17] = br#"},"preview":true}"#;

/// The most bytes [`write_emotion_result`] touches besides the id's and the room's contents: the
/// longer head, the seq with the slack of its digit stores and its comma, the emotion fragment
/// with the slack of its stores, and the longer tail.
const RESULT_FIXED_ROOM: usize = PREVIEW_HEAD.len()
    + RESULT_SEQ_KEY.len()
    + DECIMAL_ROOM
    + 1
    + EMOTION_JSON_ROOM
    + RESULT_TAIL.len();

/// How many bytes [`write_emotion_result`] may touch: at least as many as it writes, escapes
/// aside.
pub fn emotion_result_size_hint(id: Option<&str>, room: &str) -> usize {
    RESULT_FIXED_ROOM + room.len() + id.map_or(0, str::len)
}

/// [`emotion_result`] appended to `out` (UTF-8), so a caller can write it straight into a
/// connection's output. Bytes rather than a `String`: digits go in without a UTF-8 check each.
/// Inlined into the frame writer's closure, so that the frame is written in one function.
#[inline(always)]
pub fn write_emotion_result(
    out: &mut Vec<u8>,
    id: Option<&str>,
    room: &str,
    seq: Option<u64>,
    emotion: &EmotionJson,
) {
    // Written by hand rather than through serde: this and the room event are the frames every
    // message produces. One reservation, then fixed-size stores into it (see [`Appender`]):
    // appending piece by piece checked the capacity for each and called `memcpy` for every
    // copy of a run-time length, half of the frame's cost. The id and the room are copied
    // while they are checked for bytes to escape, which they seldom have; when they do, what
    // was written is dropped and the frame written again with escapes.
    let room_needed = emotion_result_size_hint(id, room);
    let mut append = Appender::new(out, room_needed);
    // SAFETY: `room_needed` counts every byte touched below: the id's and the room's contents
    // (copied exactly), the longer of the two heads (the id case's is its head and room key,
    // 34 bytes), the seq key, at most `DECIMAL_ROOM` for the digits, the comma, the fragment's
    // `EMOTION_JSON_ROOM` and the longer tail.
    let special = unsafe {
        let special_id = match id {
            Some(id) => {
                append.put(RESULT_HEAD);
                let special = append.put_plain_bits(id.as_bytes());
                append.put(RESULT_ROOM_KEY);
                special
            }
            None => {
                append.put(PREVIEW_HEAD);
                0
            }
        };
        let special_room = append.put_plain_bits(room.as_bytes());
        match seq {
            Some(seq) => {
                append.put(RESULT_SEQ_KEY);
                // The comma after the digits is the fragment's first byte.
                append.put_decimal(seq);
            }
            None => append.put(b"\""),
        }
        match seq {
            Some(_) => emotion.put_into(&mut append, CLOSED_RESULT_TAIL),
            None => emotion.put_into(&mut append, CLOSED_PREVIEW_TAIL),
        }
        special_id | special_room
    };
    if special == 0 {
        append.finish();
    } else {
        write_escaped_emotion_result(out, id, room, seq, emotion);
    }
}

/// [`write_emotion_result`] for an id or a room with bytes to escape: piece by piece.
#[inline(never)]
fn write_escaped_emotion_result(
    out: &mut Vec<u8>,
    id: Option<&str>,
    room: &str,
    seq: Option<u64>,
    emotion: &EmotionJson,
) {
    match id {
        Some(id) => {
            out.extend_from_slice(RESULT_HEAD);
            push_json_contents(out, id);
            out.extend_from_slice(RESULT_ROOM_KEY);
        }
        None => out.extend_from_slice(PREVIEW_HEAD),
    }
    push_json_contents(out, room);
    match seq {
        Some(seq) => {
            out.extend_from_slice(RESULT_SEQ_KEY);
            push_u64(out, seq);
            out.push(b',');
        }
        None => out.extend_from_slice(br#"","#),
    }
    emotion.append_to(out);
    match seq {
        Some(_) => out.extend_from_slice(RESULT_TAIL),
        None => out.extend_from_slice(PREVIEW_TAIL),
    }
}

pub struct MessageFields<'a> {
    pub room: &'a str,
    pub seq: u64,
    pub from: &'a str,
    pub name: Option<&'a str>,
    pub id: &'a str,
    pub text: &'a str,
    pub emotion: &'a EmotionJson,
    /// Unix milliseconds when the server accepted the message.
    pub ts: u64,
}

pub fn message_event(fields: MessageFields<'_>) -> String {
    let mut out = Vec::new();
    write_message_event(&mut out, fields);
    // Built only from `&str` pieces and ASCII.
    String::from_utf8(out).unwrap_or_default()
}

impl MessageFields<'_> {
    /// About how many bytes [`write_message_event`] writes (a little more, with escapes aside).
    pub fn size_hint(&self) -> usize {
        300 + self.room.len()
            + self.from.len()
            + self.name.map_or(0, str::len)
            + self.id.len()
            + self.text.len()
    }
}

/// [`message_event`] appended to `out` (UTF-8).
pub fn write_message_event(out: &mut Vec<u8>, fields: MessageFields<'_>) {
    // String contents go between constants that carry their quotes (see
    // `write_emotion_result`).
    out.reserve(fields.size_hint());
    out.extend_from_slice(br#"{"type":"message","room":""#);
    push_json_contents(out, fields.room);
    out.extend_from_slice(br#"","seq":"#);
    push_u64(out, fields.seq);
    out.extend_from_slice(br#","from":""#);
    push_json_contents(out, fields.from);
    if let Some(name) = fields.name {
        out.extend_from_slice(br#"","name":""#);
        push_json_contents(out, name);
    }
    out.extend_from_slice(br#"","id":""#);
    push_json_contents(out, fields.id);
    out.extend_from_slice(br#"","text":""#);
    push_json_contents(out, fields.text);
    out.extend_from_slice(br#"","emotion":{"#);
    fields.emotion.append_to(out);
    out.extend_from_slice(br#"},"ts":"#);
    push_u64(out, fields.ts);
    out.push(b'}');
}

/// The longest fragment (164 bytes with its leading comma: the longest label dominant, every
/// score with four decimals)
/// and the slack of the fixed eight-byte store of its last score: the most bytes
/// [`EmotionJson::put_into`] touches.
const EMOTION_JSON_ROOM: usize = 176;

/// `"dominant":…,"confidence":…,"scores":{…}`: the part of an emotion result and of a `message`
/// event that comes from the scores. Held as the eight numbers' texts (computed once per
/// message) and the dominant label, and put together where a frame is written: building the
/// fragment in an array of its own then cost two copies of it, one into the frame and one of
/// the value itself (a `memcpy` of its 184 bytes), more than putting it together again.
#[derive(Clone, Copy)]
pub struct EmotionJson {
    texts: ScoreTexts,
    /// What the texts are of.
    emotion: WireEmotion,
}

/// The fragment's head for one dominant label, with the comma before it in an emotion result
/// (one store fewer there; [`EmotionJson::append_to`] puts the byte before it back).
macro_rules! dominant_head {
    ($label:literal) => {
        concat!(r#","dominant":""#, $label, r#"","confidence":"#).as_bytes()
    };
}

/// How many bytes of a [`DominantHead`] row are copied: the longest head (36 bytes) rounded up
/// to whole 16-byte stores.
const DOMINANT_HEAD_ROOM: usize = 48;

/// One dominant label's head, padded with zeros to [`DOMINANT_HEAD_ROOM`] bytes, and its
/// length; a row is a cache line.
#[repr(C, align(64))]
struct DominantHead {
    bytes: [u8; DOMINANT_HEAD_ROOM],
    len: u8,
}

/// The heads in `Emotion::ALL` order, looked up by the label's index: a copy of fixed size
/// from the row, where a `match` on the label jumped through a table to a copy per label.
struct DominantHeads([DominantHead; 7]);

static DOMINANT_HEADS: DominantHeads = DominantHeads([
    DominantHead::new(dominant_head!("anger")),
    DominantHead::new(dominant_head!("disgust")),
    DominantHead::new(dominant_head!("fear")),
    DominantHead::new(dominant_head!("joy")),
    DominantHead::new(dominant_head!("sadness")),
    DominantHead::new(dominant_head!("surprise")),
    DominantHead::new(dominant_head!("neutral")),
]);

impl DominantHead {
    const fn new(head: &[u8]) -> DominantHead {
        DominantHead {
            bytes: padded(head),
            len: head.len() as u8,
        }
    }
}

impl EmotionJson {
    #[inline]
    pub fn new(emotion: &WireEmotion) -> EmotionJson {
        // The eight numbers' texts at once, in the order they are written: the confidence,
        // then the seven scores.
        let mut units = [0u16; 8];
        units[0] = emotion.scores[emotion.dominant.index()];
        units[1..].copy_from_slice(&emotion.scores);
        EmotionJson {
            texts: ScoreTexts::new(&units),
            emotion: *emotion,
        }
    }

    /// `EmotionJson::new(&WireEmotion::from_scores(scores))`, the same values, in one pass: the
    /// shares stay in registers from the scores to the digits. With SSE2 the dominant label is
    /// a vector maximum and an equality mask rather than a scan, and the confidence's units are
    /// the top share's, rounded in the lane the scores leave idle, rather than looked up by
    /// label (rounding is monotonic, so the top share's units are the dominant label's). Not
    /// inlined: the result is written once, where the caller keeps it.
    #[inline(never)]
    pub fn from_scores(scores: &Scores) -> EmotionJson {
        #[cfg(target_arch = "x86_64")]
        return encode_with_sse2(scores);
        #[cfg(not(target_arch = "x86_64"))]
        encode_any_scores(scores)
    }

    /// The emotion the texts are of.
    pub fn emotion(&self) -> WireEmotion {
        self.emotion
    }

    /// The fragment appended to `out`.
    pub fn append_to(&self, out: &mut Vec<u8>) {
        // `put_into` begins with the comma an emotion result has before the fragment: it goes
        // over `out`'s last byte, put back after.
        let Some(before) = out.pop() else {
            let mut fragment = Vec::with_capacity(EMOTION_JSON_ROOM);
            fragment.push(b' ');
            self.append_to(&mut fragment);
            out.extend_from_slice(&fragment[1..]);
            return;
        };
        let at = out.len();
        let mut append = Appender::new(out, EMOTION_JSON_ROOM);
        // SAFETY: `put_into` with one closing byte touches at most `EMOTION_JSON_ROOM` bytes.
        unsafe { self.put_into(&mut append, b"}") };
        append.finish();
        debug_assert_eq!(out[at], b',');
        out[at] = before;
    }

    /// Puts the fragment into `append`, with `closing` (the scores object's closing brace and
    /// what follows it) after it, touching at most [`EMOTION_JSON_ROOM`] bytes and those of
    /// `closing` past its first.
    ///
    /// # Safety
    /// `append` has room for [`EMOTION_JSON_ROOM`] + `CLOSING` - 1 more bytes.
    #[inline(always)]
    unsafe fn put_into<const CLOSING: usize>(
        &self,
        append: &mut Appender<'_>,
        closing: &[u8; CLOSING],
    ) {
        // Every write is of a constant size, so none is a `memcpy` call. The head is one
        // fixed copy of its table row (whose bytes past the head the texts overwrite), kept up
        // to the length the row ends with: no branch on the label.
        let row = &DOMINANT_HEADS.0[self.emotion.dominant.index()];
        append.put_at(0, &row.bytes);
        append.keep(usize::from(row.len));
        // The texts and their keys at the places worked out with the texts: each a store or
        // two at a known offset, with no length to add up between them.
        let texts = &self.texts;
        append.put_word_at(0, texts.words[0]);
        // The labels in `Emotion::ALL` order, each key a constant written before its score.
        // The keys of 9 to 15 bytes as one 16-byte store (a word and a smaller store as they
        // are); the text's word stored next covers the padding.
        texts.put_keyed::<19, 19>(append, SCORE_KEYS.0, 1);
        texts.put_keyed::<11, 16>(append, &const { padded(SCORE_KEYS.1) }, 2);
        texts.put_keyed::<8, 8>(append, SCORE_KEYS.2, 3);
        texts.put_keyed::<7, 7>(append, SCORE_KEYS.3, 4);
        texts.put_keyed::<11, 16>(append, &const { padded(SCORE_KEYS.4) }, 5);
        texts.put_keyed::<12, 16>(append, &const { padded(SCORE_KEYS.5) }, 6);
        texts.put_keyed::<11, 16>(append, &const { padded(SCORE_KEYS.6) }, 7);
        let end = usize::from(texts.at[7]);
        append.put_at(end, closing);
        append.keep(end + CLOSING);
    }
}

/// The keys before the seven scores' texts, in `Emotion::ALL` order (the first opens the
/// scores object).
#[allow(clippy::type_complexity)]
const SCORE_KEYS: (
    &[u8; 19],
    &[u8; 11],
    &[u8; 8],
    &[u8; 7],
    &[u8; 11],
    &[u8; 12],
    &[u8; 11],
) = (
    br#","scores":{"anger":"#,
    br#","disgust":"#,
    br#","fear":"#,
    br#","joy":"#,
    br#","sadness":"#,
    br#","surprise":"#,
    br#","neutral":"#,
);

/// `bytes` followed by zeros up to `N` bytes.
const fn padded<const N: usize>(bytes: &[u8]) -> [u8; N] {
    assert!(bytes.len() <= N);
    let mut padded = [0u8; N];
    let mut at = 0;
    while at < bytes.len() {
        padded[at] = bytes[at];
        at += 1;
    }
    padded
}

/// Per lane of [`ScoreTexts`], the length of the key that follows its text (none after the
/// last).
const KEY_LENGTHS: [u16; 8] = [
    SCORE_KEYS.0.len() as u16,
    SCORE_KEYS.1.len() as u16,
    SCORE_KEYS.2.len() as u16,
    SCORE_KEYS.3.len() as u16,
    SCORE_KEYS.4.len() as u16,
    SCORE_KEYS.5.len() as u16,
    SCORE_KEYS.6.len() as u16,
    0,
];

/// Eight scores in ten-thousandths as their shortest decimals (`0`, `1`, `0.5`, `0.0123`), all
/// computed at once (they took about 26 instructions per number one at a time): the confidence
/// in lane 0, then the seven labels' scores, the order they are written in. Per lane a word
/// whose first bytes are the text, and where the texts go once put together with their keys
/// ([`KEY_LENGTHS`]), counted from the first text's start: `at[i]` is where lane `i + 1`'s text
/// starts, and `at[7]` where the last one ends.
#[derive(Clone, Copy)]
struct ScoreTexts {
    words: [u64; 8],
    at: [u16; 8],
}

/// `"0."` as the first two bytes of a little-endian word.
const ZERO_POINT: u16 = u16::from_le_bytes(*b"0.");
/// `"1"` (and a zero byte, which does not count).
const ONE: u16 = b'1' as u16;
/// `"00"`: added to two digit values 0 to 9, their ASCII digits.
const ASCII_ZERO_PAIR: u16 = u16::from_le_bytes(*b"00");

/// The constants of [`ScoreTexts::new`], eight lanes each, and of [`encode_with_sse2`],
/// four lanes each, together in four cache lines, read through [`digit_constants`].
#[cfg(target_arch = "x86_64")]
#[repr(C, align(64))]
struct DigitConstants {
    below_one: [u16; 8],
    hundred_reciprocal: [u16; 8],
    hundred: [u16; 8],
    ten_reciprocal: [u16; 8],
    ten: [u16; 8],
    ascii_zero_pair: [u16; 8],
    one: [u16; 8],
    zero_point_xor_one: [u16; 8],
    six: [u16; 8],
    single: [u16; 8],
    key_lengths: [u16; 8],
    /// [`INTEGER_SHIFT`] in four lanes.
    integer_shift: [f32; 4],
    /// The low half of each 32-bit lane: a rounded share's units (see [`round_units`]).
    units_mask: [u32; 4],
    /// The first lane only: where the confidence goes.
    first_lane: [u32; 4],
}

/// [`DIGIT_CONSTANTS`]' address, read by [`digit_constants`].
#[cfg(target_arch = "x86_64")]
static DIGIT_CONSTANTS_AT: &DigitConstants = &DIGIT_CONSTANTS;

/// [`DIGIT_CONSTANTS`], loaded from the table (see [`crate::constant_table`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn digit_constants() -> &'static DigitConstants {
    crate::constant_table::opaque(&DIGIT_CONSTANTS_AT)
}

#[cfg(target_arch = "x86_64")]
static DIGIT_CONSTANTS: DigitConstants = DigitConstants {
    below_one: [SCORE_UNITS - 1; 8],
    hundred_reciprocal: [5243; 8],
    hundred: [100; 8],
    ten_reciprocal: [103; 8],
    ten: [10; 8],
    ascii_zero_pair: [ASCII_ZERO_PAIR; 8],
    one: [ONE; 8],
    zero_point_xor_one: [ZERO_POINT ^ ONE; 8],
    six: [6; 8],
    single: [1; 8],
    key_lengths: KEY_LENGTHS,
    integer_shift: [INTEGER_SHIFT; 4],
    units_mask: [0xffff; 4],
    first_lane: [u32::MAX, 0, 0, 0],
};

impl ScoreTexts {
    /// With SSE2 (the x86-64 baseline): eight 16-bit lanes in one register. The divisions are
    /// multiplications: `x * 5243 >> 19` is `x / 100` below 43,699 (`pmulhuw` gives the
    /// product's high half) and `x * 103 >> 10` is `x / 10` below 179. The compiler does not
    /// keep the equivalent plain loops ([`ScoreTexts::new_portable`]) vectorized once the
    /// lanes are taken apart into words: it went back to scalar code.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn new(units: &[u16; 8]) -> ScoreTexts {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128};
        // SAFETY: SSE2 is part of the x86-64 baseline; the load reads the 16 bytes of `units`.
        let units = unsafe { _mm_loadu_si128(units.as_ptr().cast::<__m128i>()) };
        ScoreTexts::from_lanes(units, digit_constants())
    }

    /// [`ScoreTexts::new`] of the eight 16-bit lanes of a register, with the constants read
    /// through [`digit_constants`] by the caller.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn from_lanes(units: std::arch::x86_64::__m128i, c: &DigitConstants) -> ScoreTexts {
        use std::arch::x86_64::_mm_slli_si128;
        use std::arch::x86_64::{
            __m128i, _mm_add_epi16, _mm_and_si128, _mm_andnot_si128, _mm_cmpeq_epi16,
            _mm_loadu_si128, _mm_mulhi_epu16, _mm_mullo_epi16, _mm_or_si128, _mm_setzero_si128,
            _mm_slli_epi16, _mm_srli_epi16, _mm_storeu_si128, _mm_sub_epi16, _mm_subs_epu16,
            _mm_unpackhi_epi16, _mm_unpackhi_epi32, _mm_unpacklo_epi16, _mm_unpacklo_epi32,
            _mm_xor_si128,
        };
        let mut texts = ScoreTexts {
            words: [0; 8],
            at: [0; 8],
        };
        // SAFETY: SSE2 is part of the x86-64 baseline; the unaligned loads and stores read
        // and write exactly the 16 bytes of a constant, of `texts.at` and of each two of
        // `texts.words`.
        unsafe {
            let load = |lanes: &[u16; 8]| _mm_loadu_si128(lanes.as_ptr().cast::<__m128i>());
            let zero = _mm_setzero_si128();
            // All ones in the lanes of a score below 1 (units - 9,999, saturating, is zero
            // exactly there); the others (10,000, or more: written as 1 too) get digits below
            // that are wrong and not used.
            let fraction = _mm_cmpeq_epi16(_mm_subs_epu16(units, load(&c.below_one)), zero);
            let hundreds = _mm_srli_epi16::<3>(_mm_mulhi_epu16(units, load(&c.hundred_reciprocal)));
            let rest = _mm_sub_epi16(units, _mm_mullo_epi16(hundreds, load(&c.hundred)));
            let ten_reciprocal = load(&c.ten_reciprocal);
            let ten = load(&c.ten);
            let d1 = _mm_srli_epi16::<10>(_mm_mullo_epi16(hundreds, ten_reciprocal));
            let d2 = _mm_sub_epi16(hundreds, _mm_mullo_epi16(d1, ten));
            let d3 = _mm_srli_epi16::<10>(_mm_mullo_epi16(rest, ten_reciprocal));
            let d4 = _mm_sub_epi16(rest, _mm_mullo_epi16(d3, ten));
            let ascii = load(&c.ascii_zero_pair);
            let first_pair = _mm_or_si128(_mm_or_si128(d1, _mm_slli_epi16::<8>(d2)), ascii);
            let second_pair = _mm_or_si128(_mm_or_si128(d3, _mm_slli_epi16::<8>(d4)), ascii);
            let lead = _mm_xor_si128(
                load(&c.one),
                _mm_and_si128(fraction, load(&c.zero_point_xor_one)),
            );
            // Per lane the 16-bit pieces [lead, first pair, second pair, 0]: one word each.
            let lead_first = [
                _mm_unpacklo_epi16(lead, first_pair),
                _mm_unpackhi_epi16(lead, first_pair),
            ];
            let second = [
                _mm_unpacklo_epi16(second_pair, zero),
                _mm_unpackhi_epi16(second_pair, zero),
            ];
            let words = texts.words.as_mut_ptr().cast::<__m128i>();
            _mm_storeu_si128(words, _mm_unpacklo_epi32(lead_first[0], second[0]));
            _mm_storeu_si128(words.add(1), _mm_unpackhi_epi32(lead_first[0], second[0]));
            _mm_storeu_si128(words.add(2), _mm_unpacklo_epi32(lead_first[1], second[1]));
            _mm_storeu_si128(words.add(3), _mm_unpackhi_epi32(lead_first[1], second[1]));
            // Six bytes, less one (all ones) for each trailing zero decimal: `0.5` is three,
            // and zero (`0.` cut back) one.
            let is_zero = |x| _mm_cmpeq_epi16(x, zero);
            let zero_units = is_zero(units);
            let len = _mm_add_epi16(
                _mm_add_epi16(load(&c.six), is_zero(d4)),
                _mm_add_epi16(is_zero(rest), is_zero(_mm_or_si128(d2, rest))),
            );
            let len = _mm_add_epi16(len, _mm_add_epi16(zero_units, zero_units));
            let len = _mm_or_si128(
                _mm_and_si128(fraction, len),
                _mm_andnot_si128(fraction, load(&c.single)),
            );
            // Each text and the key after it, summed up to each lane: a prefix sum in three
            // shifted additions.
            let steps = _mm_add_epi16(len, load(&c.key_lengths));
            let steps = _mm_add_epi16(steps, _mm_slli_si128::<2>(steps));
            let steps = _mm_add_epi16(steps, _mm_slli_si128::<4>(steps));
            let at = _mm_add_epi16(steps, _mm_slli_si128::<8>(steps));
            _mm_storeu_si128(texts.at.as_mut_ptr().cast::<__m128i>(), at);
        }
        texts
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn new(units: &[u16; 8]) -> ScoreTexts {
        ScoreTexts::new_portable(units)
    }

    /// One lane at a time: the other platforms' version, and the reference the SSE2 one is
    /// tested against.
    #[cfg(any(test, not(target_arch = "x86_64")))]
    fn new_portable(units: &[u16; 8]) -> ScoreTexts {
        let mut texts = ScoreTexts {
            words: [0; 8],
            at: [0; 8],
        };
        let mut end = 0;
        for (lane, &units) in units.iter().enumerate() {
            end += KEY_LENGTHS[lane];
            if units >= SCORE_UNITS {
                texts.words[lane] = u64::from(ONE);
                end += 1;
                texts.at[lane] = end;
                continue;
            }
            let hundreds = units / 100;
            let rest = units % 100;
            let digits = [hundreds / 10, hundreds % 10, rest / 10, rest % 10];
            let decimals = 4 - digits.iter().rev().take_while(|&&d| d == 0).count();
            let pair = |a: u16, b: u16| u64::from((a | b << 8) | ASCII_ZERO_PAIR);
            texts.words[lane] = u64::from(ZERO_POINT)
                | pair(digits[0], digits[1]) << 16
                | pair(digits[2], digits[3]) << 32;
            // `0.` cut back to `0` for zero.
            end += if units == 0 { 1 } else { 2 + decimals as u16 };
            texts.at[lane] = end;
        }
        texts
    }

    /// Stores the constant `key` (the one of [`KEY_LENGTHS`] before lane `lane`, 1 to 7),
    /// then lane `lane`'s text, where they go counted from `append`'s end, keeping neither (see
    /// [`EmotionJson::put_into`]). All eight bytes of the word are written (one fixed-size
    /// store); the next key, written after it, overwrites those that do not count.
    ///
    /// # Safety
    /// `append` has room for the texts and keys up to this one and 8 more bytes.
    #[inline(always)]
    unsafe fn put_keyed<const KEY: usize, const STORE: usize>(
        &self,
        append: &mut Appender<'_>,
        key: &[u8; STORE],
        lane: usize,
    ) {
        let at = usize::from(self.at[lane - 1]);
        // At least `KEY`: the sum up to lane `lane - 1` includes this key's length.
        debug_assert!(at >= KEY && usize::from(KEY_LENGTHS[lane - 1]) == KEY);
        // The padding, if any, lies under the text's word.
        debug_assert!(STORE >= KEY && STORE - KEY <= 8);
        if STORE == 16 {
            // SAFETY (of the cast): `STORE` is 16 in this branch.
            let whole = &*key.as_ptr().cast::<[u8; 16]>();
            append.put_whole_at(at.wrapping_sub(KEY), whole);
        } else {
            append.put_at(at.wrapping_sub(KEY), key);
        }
        append.put_word_at(at, self.words[lane]);
    }

    /// Lane `lane`'s text.
    #[cfg(test)]
    fn text(&self, lane: usize) -> String {
        let start = match lane {
            0 => 0,
            _ => usize::from(self.at[lane - 1]),
        };
        let len = usize::from(self.at[lane] - KEY_LENGTHS[lane]) - start;
        let bytes = self.words[lane].to_le_bytes();
        String::from_utf8(bytes[..len].to_vec()).unwrap()
    }
}

/// `value` in decimal (see [`Appender::put_decimal`]).
fn push_u64(out: &mut Vec<u8>, value: u64) {
    let mut append = Appender::new(out, DECIMAL_ROOM);
    // SAFETY: `put_decimal` touches at most `DECIMAL_ROOM` bytes.
    unsafe { append.put_decimal(value) };
    append.finish();
}

/// `b'0'` in every byte: added to digit values 0 to 9, their ASCII digits.
const ASCII_ZEROS: u64 = u64::from_le_bytes([b'0'; 8]);

/// The most bytes [`Appender::put_decimal`] touches: a `u64` has at most 20 digits, and its
/// eight-byte stores end within them (the first, of up to eight digits, is followed by at least
/// eight more when the number has more than eight).
const DECIMAL_ROOM: usize = 20;

/// Appends to a `Vec<u8>`'s spare capacity through a raw pointer: one reservation for a whole
/// frame, then a fixed-size store and a length update per piece, where `extend_from_slice`
/// checked the capacity for each piece and called `memcpy` for each copy of a run-time length.
/// The pieces become part of the vector on [`Appender::finish`]; dropped without it, the
/// appender leaves the vector as it was.
///
/// The writers are `unsafe`: their callers reserve room for every byte the writers touch,
/// including the bytes past a piece that its wide stores overwrite. Debug builds check each
/// write against the reservation.
struct Appender<'a> {
    out: &'a mut Vec<u8>,
    /// The vector's buffer, reserved to `room` bytes past its length.
    base: *mut u8,
    /// The vector's length once the pieces written so far are kept.
    len: usize,
    /// Where the reservation ends.
    #[cfg(debug_assertions)]
    end: usize,
}

impl<'a> Appender<'a> {
    /// Reserves `room` bytes past `out`'s length for the pieces to come.
    #[inline(always)]
    fn new(out: &'a mut Vec<u8>, room: usize) -> Appender<'a> {
        out.reserve(room);
        let len = out.len();
        Appender {
            base: out.as_mut_ptr(),
            len,
            #[cfg(debug_assertions)]
            end: len + room,
            out,
        }
    }

    /// Where the next piece goes, `touched` bytes of which are written.
    ///
    /// # Safety
    /// The reservation covers `touched` bytes from there.
    #[inline(always)]
    unsafe fn next(&mut self, touched: usize) -> *mut u8 {
        #[cfg(debug_assertions)]
        assert!(
            self.len + touched <= self.end,
            "a write outside the reservation"
        );
        let _ = touched;
        self.base.add(self.len)
    }

    /// Appends the constant `bytes`: one or a few stores.
    ///
    /// # Safety
    /// The reservation covers `N` more bytes.
    #[inline(always)]
    unsafe fn put<const N: usize>(&mut self, bytes: &[u8; N]) {
        self.next(N).cast::<[u8; N]>().write_unaligned(*bytes);
        self.len += N;
    }

    /// Stores the constant `bytes` at `offset` past the pieces kept so far, without keeping
    /// them: pieces whose places are known up front go in any order, and [`Appender::keep`]
    /// then keeps them all.
    ///
    /// # Safety
    /// The reservation covers `offset + N` more bytes.
    #[inline(always)]
    unsafe fn put_at<const N: usize>(&mut self, offset: usize, bytes: &[u8; N]) {
        self.next(offset + N)
            .add(offset)
            .cast::<[u8; N]>()
            .write_unaligned(*bytes);
    }

    /// [`Appender::put_at`] of 16 bytes as a volatile store: one 16-byte store even where
    /// later stores overwrite some of its bytes, which the compiler would otherwise trim off,
    /// splitting what is left into a word and a smaller store.
    ///
    /// # Safety
    /// The reservation covers `offset + 16` more bytes.
    #[inline(always)]
    unsafe fn put_whole_at(&mut self, offset: usize, bytes: &[u8; 16]) {
        // `[u8; 16]` has alignment 1, so the unaligned place is aligned for it.
        std::ptr::write_volatile(
            self.next(offset + 16).add(offset).cast::<[u8; 16]>(),
            *bytes,
        );
    }

    /// Stores the eight bytes of `word` (little-endian) at `offset`, as [`Appender::put_at`].
    ///
    /// # Safety
    /// The reservation covers `offset + 8` more bytes.
    #[inline(always)]
    unsafe fn put_word_at(&mut self, offset: usize, word: u64) {
        self.put_at(offset, &word.to_le_bytes());
    }

    /// Keeps the next `len` bytes, written by [`Appender::put_at`].
    ///
    /// # Safety
    /// Those bytes were all written, and the reservation covers them.
    #[inline(always)]
    unsafe fn keep(&mut self, len: usize) {
        let _ = self.next(len);
        self.len += len;
    }

    /// Stores the eight bytes of `word` (little-endian) and keeps the first `keep` (at most 8).
    ///
    /// # Safety
    /// The reservation covers 8 more bytes.
    #[inline(always)]
    unsafe fn put_word(&mut self, word: u64, keep: usize) {
        self.next(8)
            .cast::<[u8; 8]>()
            .write_unaligned(word.to_le_bytes());
        self.len += keep;
    }

    /// Appends `text` and returns zero when none of its bytes needs escaping in a JSON string (a
    /// quote, a backslash, a control character), something else when one does, so that a
    /// writer can merge the results of several texts with one OR and test them once: a copy
    /// and the check in one pass instead of a
    /// scan then a `memcpy` call. Up to 16 bytes (ids, most room names) are two loads and two
    /// stores that overlap as needed, checked at once; longer texts go 16 bytes at a time, the
    /// last block overlapping the one before it. Exactly `text.len()` bytes are touched.
    ///
    /// # Safety
    /// The reservation covers `text.len()` more bytes.
    #[inline(always)]
    unsafe fn put_plain_bits(&mut self, text: &[u8]) -> u32 {
        let len = text.len();
        let to = self.next(len);
        let store = |at: usize, word: u64| {
            to.add(at)
                .cast::<[u8; 8]>()
                .write_unaligned(word.to_le_bytes())
        };
        // The commonest lengths first, each range one comparison (ids and room names: 4 to
        // 16 bytes).
        let special = if len.wrapping_sub(8) <= 8 {
            let first = read_word(&text[..8]);
            let last = read_word(&text[len - 8..]);
            store(0, first);
            store(len - 8, last);
            json_special_bits(first, last)
        } else if len.wrapping_sub(4) < 4 {
            let first = read_u32(&text[..4]);
            let last = read_u32(&text[len - 4..]);
            to.cast::<[u8; 4]>().write_unaligned(first.to_le_bytes());
            to.add(len - 4)
                .cast::<[u8; 4]>()
                .write_unaligned(last.to_le_bytes());
            let word = u64::from(first) | u64::from(last) << 32;
            json_special_bits(word, word)
        } else if len > 16 {
            u32::from(!copy_plain_blocks(text, to))
        } else if len > 0 {
            // One to three bytes: the first, the middle and the last cover them.
            let (first, middle, last) = (text[0], text[len / 2], text[len - 1]);
            *to = first;
            *to.add(len / 2) = middle;
            *to.add(len - 1) = last;
            let word = u64::from_le_bytes([first, middle, last, b' ', b' ', b' ', b' ', b' ']);
            json_special_bits(word, word)
        } else {
            0
        };
        self.len += len;
        special
    }

    /// [`Appender::put_plain_bits`] as whether no byte needs escaping.
    ///
    /// # Safety
    /// The reservation covers `text.len()` more bytes.
    #[inline(always)]
    #[cfg(test)]
    unsafe fn put_plain(&mut self, text: &[u8]) -> bool {
        self.put_plain_bits(text) == 0
    }

    /// Appends `value` in decimal. Numbers below 10^16 (sequence numbers, millisecond
    /// timestamps: all that is sent) are converted eight digits at a time in one word
    /// ([`eight_digits`]) and stored eight bytes at a time, cut back to the digits that count;
    /// a `message` event's 13-digit timestamp cost 350 instructions a digit at a time.
    ///
    /// # Safety
    /// The reservation covers [`DECIMAL_ROOM`] more bytes.
    #[inline(always)]
    unsafe fn put_decimal(&mut self, value: u64) {
        const TEN_TO_THE_8: u64 = 100_000_000;
        if value < 10_000 {
            // Four digits at most (a seq in most rooms): half the arithmetic of eight.
            let digits = four_digits(value as u32);
            // Leading zero digits are the low zero bytes; zero keeps its last digit.
            let leading_zeros = ((digits | 1 << 24).trailing_zeros() / 8) as usize;
            let text = (digits | u32::from_le_bytes([b'0'; 4])) >> (8 * leading_zeros);
            self.put_word(u64::from(text), 4 - leading_zeros);
        } else if value < TEN_TO_THE_8 {
            let (word, len) = leading_digits(value as u32);
            self.put_word(word, len);
        } else {
            // Out of line, and given a pointer rather than the appender: passing the appender
            // by reference made every writer that inlines this keep it on the stack.
            let written = write_long_decimal(self.next(DECIMAL_ROOM), value);
            self.len += written;
        }
    }

    /// Makes the pieces written part of the vector.
    #[inline(always)]
    fn finish(self) {
        // SAFETY: every piece's kept bytes were written, one piece after the other, from the
        // vector's length up to `self.len`, inside the reserved capacity.
        unsafe { self.out.set_len(self.len) };
    }
}

/// `value` (below 10^8) in decimal without leading zeros (`0` for zero): a word whose first
/// bytes are the digits, and how many they are.
#[inline(always)]
fn leading_digits(value: u32) -> (u64, usize) {
    let digits = eight_digits(value);
    // Leading zero digits are the word's low zero bytes; zero keeps its last digit.
    let leading_zeros = ((digits | 1 << 56).trailing_zeros() / 8) as usize;
    (
        (digits | ASCII_ZEROS) >> (8 * leading_zeros),
        8 - leading_zeros,
    )
}

/// [`Appender::put_decimal`] for a number of nine digits or more, written at `to`; returns how
/// many digits it has. Whole eight-byte words are stored, at most [`DECIMAL_ROOM`] bytes.
///
/// # Safety
/// `to` is valid for [`DECIMAL_ROOM`] bytes of writes.
#[inline(never)]
unsafe fn write_long_decimal(to: *mut u8, value: u64) -> usize {
    const TEN_TO_THE_8: u64 = 100_000_000;
    const TEN_TO_THE_16: u64 = TEN_TO_THE_8 * TEN_TO_THE_8;
    let store = |at: usize, word: u64| {
        to.add(at)
            .cast::<[u8; 8]>()
            .write_unaligned(word.to_le_bytes())
    };
    let (leading, mut at, rest) = if value < TEN_TO_THE_16 {
        let (word, len) = leading_digits((value / TEN_TO_THE_8) as u32);
        (word, len, value % TEN_TO_THE_8)
    } else {
        // Beyond 16 digits: the first four, then sixteen.
        let (word, len) = leading_digits((value / TEN_TO_THE_16) as u32);
        (word, len, value % TEN_TO_THE_16)
    };
    store(0, leading);
    let rest = if value >= TEN_TO_THE_16 {
        store(at, eight_digits((rest / TEN_TO_THE_8) as u32) | ASCII_ZEROS);
        at += 8;
        rest % TEN_TO_THE_8
    } else {
        rest
    };
    store(at, eight_digits(rest as u32) | ASCII_ZEROS);
    at + 8
}

/// The first four bytes of `bytes` (at least four) as a little-endian number.
#[inline(always)]
fn read_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(word)
}

/// Whether one of the sixteen bytes of `first` and `last` (little-endian) needs escaping in a
/// JSON string: a quote, a backslash or a control character. With SSE2, three comparisons and
/// one mask for both words.
#[cfg(all(test, target_arch = "x86_64"))]
fn json_special_in(first: u64, last: u64) -> bool {
    json_special_bits(first, last) != 0
}

/// Whether one of the sixteen bytes of `first` and `last` needs escaping, as bits: zero when
/// none does, the mask of those that do otherwise.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn json_special_bits(first: u64, last: u64) -> u32 {
    use std::arch::x86_64::_mm_set_epi64x;
    // SAFETY: SSE2 is part of the x86-64 baseline.
    let bytes = unsafe { _mm_set_epi64x(last as i64, first as i64) };
    json_special_mask(bytes) as u32
}

/// The bytes of `block` that need escaping in a JSON string, as a 16-bit mask (see
/// [`json_special_in`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn json_special_mask(block: std::arch::x86_64::__m128i) -> i32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8, _mm_xor_si128,
    };
    // SAFETY: SSE2 is part of the x86-64 baseline; these are register operations.
    unsafe {
        // Flipping bit 1 takes a quote (0x22) to 0x20 and keeps the control characters below
        // it, while every other byte stays above: one unsigned `<= 0x20` (the larger of the two
        // is 0x20 exactly then) finds both.
        let flipped = _mm_xor_si128(block, _mm_set1_epi8(0x02));
        let limit = _mm_set1_epi8(0x20);
        let quote_or_control = _mm_cmpeq_epi8(_mm_max_epu8(flipped, limit), limit);
        let backslash = _mm_cmpeq_epi8(block, _mm_set1_epi8(b'\\' as i8));
        _mm_movemask_epi8(_mm_or_si128(quote_or_control, backslash))
    }
}

/// Copies `text` (more than 16 bytes) to `to` sixteen bytes at a time, the last block
/// overlapping the one before it, and returns whether none of its bytes needs escaping.
///
/// # Safety
/// `to` is valid for `text.len()` bytes of writes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn copy_plain_blocks(text: &[u8], to: *mut u8) -> bool {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_storeu_si128};
    let len = text.len();
    let copy = |at: usize| {
        let block = &text[at..at + 16];
        // SAFETY: `block` holds the 16 bytes loaded; `to` is valid for them at `at` (below
        // `len - 15`).
        let bytes = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        _mm_storeu_si128(to.add(at).cast::<__m128i>(), bytes);
        json_special_mask(bytes)
    };
    let mut special = 0;
    let mut at = 0;
    while at + 16 < len {
        special |= copy(at);
        at += 16;
    }
    special |= copy(len - 16);
    special == 0
}

/// Whether one of the sixteen bytes of `first` and `last` needs escaping in a JSON string: a
/// quote, a backslash or a control character.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn json_special_in(first: u64, last: u64) -> bool {
    json_special_bytes(first) | json_special_bytes(last) != 0
}

/// [`json_special_in`] as bits, zero when no byte needs escaping.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn json_special_bits(first: u64, last: u64) -> u32 {
    u32::from(json_special_in(first, last))
}

/// Copies `text` (more than 16 bytes) to `to` eight bytes at a time, the last word overlapping
/// the one before it, and returns whether none of its bytes needs escaping.
///
/// # Safety
/// `to` is valid for `text.len()` bytes of writes.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
unsafe fn copy_plain_blocks(text: &[u8], to: *mut u8) -> bool {
    let len = text.len();
    let copy = |at: usize| {
        let word = read_word(&text[at..]);
        to.add(at)
            .cast::<[u8; 8]>()
            .write_unaligned(word.to_le_bytes());
        json_special_bytes(word)
    };
    let mut special = 0;
    let mut at = 0;
    while at + 8 < len {
        special |= copy(at);
        at += 8;
    }
    special |= copy(len - 8);
    special == 0
}

/// Nonzero exactly when one of the eight bytes of `word` needs escaping in a JSON string: a
/// quote, a backslash or a control character. A borrow out of a byte's subtraction starts only
/// at such a byte, so the other bytes are never flagged in a word without one, and the lowest
/// flag is exact.
#[inline(always)]
fn json_special_bytes(word: u64) -> u64 {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH_BITS: u64 = u64::from_le_bytes([0x80; 8]);
    let quote = (word ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES);
    let backslash = (word ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES);
    let control = word.wrapping_sub(ONES * 0x20);
    // A byte's high bit above was set by its own value only when that byte is 0x80 or more.
    (quote | backslash | control) & !word & HIGH_BITS
}

/// The four decimal digits of `value` (below 10^4, with leading zeros) as digit values 0 to 9,
/// one a byte, the first digit lowest: [`eight_digits`]' arithmetic on one four-digit lane.
#[inline(always)]
fn four_digits(value: u32) -> u32 {
    let hundreds = (value * 5243) >> 19;
    // The two-digit halves in 16-bit lanes.
    let pairs = hundreds | ((value - 100 * hundreds) << 16);
    let tens = ((pairs * 103) >> 10) & 0x000f_000f;
    tens_then_ones(pairs, tens)
}

/// Each 16-bit lane `10t + o` of `pairs` (below 100, `t` the lane of `tens`) as `t | o << 8`:
/// `256(10t + o) - 2559t`, one multiplication and one subtraction for the ones and the
/// combination both (no lane's result is negative, so no borrow crosses lanes).
#[inline(always)]
fn tens_then_ones<T>(pairs: T, tens: T) -> T
where
    T: std::ops::Shl<u32, Output = T> + std::ops::Sub<Output = T> + std::ops::Mul<Output = T>,
    T: From<u16>,
{
    (pairs << 8) - tens * T::from(2559)
}

/// The eight decimal digits of `value` (below 10^8, with leading zeros) as digit values 0 to 9,
/// one a byte, the first digit lowest (little-endian order, so the word's bytes are in writing
/// order). Divisions by 10,000, 100 and 10 in 32- and 16-bit lanes of one word, by multiplying:
/// `x * 5243 >> 19` is `x / 100` below 43,699 and `x * 103 >> 10` is `x / 10` below 179, and no
/// lane's product reaches the bits kept of another.
fn eight_digits(value: u32) -> u64 {
    let high = u64::from(value / 10_000);
    let low = u64::from(value % 10_000);
    // [high, low] in 32-bit lanes, each below 10,000.
    let fours = high | (low << 32);
    let hundreds = ((fours * 5243) >> 19) & 0x0000_007f_0000_007f;
    // Each lane's two-digit halves in 16-bit lanes.
    let pairs = hundreds | ((fours - 100 * hundreds) << 16);
    let tens = ((pairs * 103) >> 10) & 0x000f_000f_000f_000f;
    tens_then_ones(pairs, tens)
}

/// `text` as a JSON string literal, escaped exactly as serde_json does: `"`, `\\`, the short
/// forms `\b \f \n \r \t`, other control characters as `\u00xx`; everything else verbatim.
/// Inlined for the common case, a string with nothing to escape (ids, room names, most texts):
/// the call itself was a fifth of writing a short one.
#[inline(always)]
fn push_json_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    match find_quote_backslash_or_control(bytes) {
        None => {
            out.reserve(bytes.len() + 2);
            out.push(b'"');
            out.extend_from_slice(bytes);
            out.push(b'"');
        }
        Some(first) => push_escaped_json_str(out, bytes, first),
    }
}

/// [`push_json_str`] without the quotes: the contents of `text`'s string literal, for writers
/// whose constants carry the quotes.
#[inline(always)]
fn push_json_contents(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    match find_quote_backslash_or_control(bytes) {
        None => out.extend_from_slice(bytes),
        Some(first) => push_escaped_json_contents(out, bytes, first),
    }
}

/// [`push_json_str`] for a string whose first character to escape is at `first`.
#[inline(never)]
fn push_escaped_json_str(out: &mut Vec<u8>, bytes: &[u8], first: usize) {
    out.push(b'"');
    push_escaped_json_contents(out, bytes, first);
    out.push(b'"');
}

/// [`push_json_contents`] for a string whose first character to escape is at `first`.
#[inline(never)]
fn push_escaped_json_contents(out: &mut Vec<u8>, bytes: &[u8], first: usize) {
    let mut plain_from = 0;
    let mut next = Some(first);
    // The plain runs between characters to escape are found a word at a time and copied whole.
    while let Some(at) = next {
        let byte = bytes[at];
        let short = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            _ => "",
        };
        out.extend_from_slice(&bytes[plain_from..at]);
        plain_from = at + 1;
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        } else {
            out.extend_from_slice(short.as_bytes());
        }
        next = bytes
            .get(plain_from..)
            .and_then(find_quote_backslash_or_control)
            .map(|offset| plain_from + offset);
    }
    out.extend_from_slice(&bytes[plain_from..]);
}

#[derive(Serialize)]
struct Reply<'a> {
    r#type: &'static str,
    room: &'a str,
    seq: u64,
    from: &'static str,
    in_reply_to: &'a str,
    text: &'a str,
    emotion: &'static str,
    ts: u64,
}

pub fn reply_event(
    room: &str,
    seq: u64,
    in_reply_to: &str,
    text: &str,
    emotion: Emotion,
    ts: u64,
) -> String {
    encode(&Reply {
        r#type: "reply",
        room,
        seq,
        from: BOT_NAME,
        in_reply_to,
        text,
        emotion: emotion.as_str(),
        ts,
    })
}

#[derive(Serialize)]
struct Typing<'a> {
    r#type: &'static str,
    room: &'a str,
    from: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    active: bool,
}

pub fn typing(room: &str, from: &str, name: Option<&str>, active: bool) -> String {
    encode(&Typing {
        r#type: "typing",
        room,
        from,
        name,
        active,
    })
}

#[derive(Serialize)]
struct Presence<'a> {
    r#type: &'static str,
    room: &'a str,
    user: &'a str,
    online: bool,
}

pub fn presence(room: &str, user: &str, online: bool) -> String {
    encode(&Presence {
        r#type: "presence",
        room,
        user,
        online,
    })
}

#[derive(Serialize)]
struct Joined<'a> {
    r#type: &'static str,
    room: &'a str,
    seq: u64,
}

pub fn joined(room: &str, seq: u64) -> String {
    encode(&Joined {
        r#type: "joined",
        room,
        seq,
    })
}

#[derive(Serialize)]
struct Left<'a> {
    r#type: &'static str,
    room: &'a str,
}

pub fn left(room: &str) -> String {
    encode(&Left {
        r#type: "left",
        room,
    })
}

#[derive(Serialize)]
struct Pong<'a> {
    r#type: &'static str,
    t: Option<&'a serde_json::Number>,
}

pub fn pong(t: Option<&serde_json::Number>) -> String {
    encode(&Pong { r#type: "pong", t })
}

/// Error codes, as they appear on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    BadJson,
    UnknownType,
    BadRequest,
    NotAuthenticated,
    Forbidden,
    BadRoom,
    NotMember,
    TooManyRooms,
    RateLimited,
    TextTooLong,
    HistoryGap,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::NotAuthenticated => "not_authenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::BadRoom => "bad_room",
            ErrorCode::NotMember => "not_member",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TextTooLong => "text_too_long",
            ErrorCode::HistoryGap => "history_gap",
        }
    }
}

#[derive(Serialize)]
struct ErrorMessage<'a> {
    r#type: &'static str,
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
}

/// `id` echoes the client message id the error is about; `room` names the room for room errors.
pub fn error(code: ErrorCode, message: &str, id: Option<&str>, room: Option<&str>) -> String {
    encode(&ErrorMessage {
        r#type: "error",
        code: code.as_str(),
        message,
        id,
        room,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz_targets::mutated;
    use serde_json::{json, Value};

    fn parsed(text: &str) -> Result<ClientMessage<'_>, ParseError> {
        parse_client_message(text)
    }

    #[test]
    fn parses_every_client_message_and_ignores_unknown_fields() {
        assert_eq!(
            parsed(r#"{"type":"auth","token":"abc","extra":1}"#),
            Ok(ClientMessage::Auth {
                token: "abc".into()
            })
        );
        assert_eq!(
            parsed(r#"{"type":"message","id":"c1","text":"hi \"there\"","room":"lobby"}"#),
            Ok(ClientMessage::Message {
                id: Some("c1".into()),
                text: "hi \"there\"".into(),
                room: Some("lobby".into())
            })
        );
        assert_eq!(
            parsed(r#"{"text":"x","type":"message"}"#),
            Ok(ClientMessage::Message {
                id: None,
                text: "x".into(),
                room: None
            })
        );
        assert_eq!(
            parsed(r#"{"type":"typing"}"#),
            Ok(ClientMessage::Typing {
                room: None,
                text: None
            })
        );
        assert_eq!(
            parsed(r#"{"type":"join","room":"lobby","since":7}"#),
            Ok(ClientMessage::Join {
                room: "lobby".into(),
                since: Some(7)
            })
        );
        assert_eq!(
            parsed(r#"{"type":"leave","room":"lobby"}"#),
            Ok(ClientMessage::Leave {
                room: "lobby".into()
            })
        );
        assert!(matches!(
            parsed(r#"{"type":"ping","t":12.5}"#),
            Ok(ClientMessage::Ping { t: Some(_) })
        ));
    }

    #[test]
    fn scaled_shares_round_to_the_nearest_unit() {
        assert_eq!(round_units(0.0), 0);
        assert_eq!(round_units(10_000.0), SCORE_UNITS);
        assert_eq!(round_units(0.5), 0);
        assert_eq!(round_units(1.5), 2);
        assert_eq!(round_units(0.51), 1);
        assert_eq!(round_units(0.49), 0);
        assert_eq!(round_units(1234.5678), 1235);
        assert_eq!(round_units(10_000.4), SCORE_UNITS);
        for step in 0..=1_000_000u32 {
            let scaled = step as f32 / 100.0;
            let expected = scaled.round_ties_even() as u16;
            assert_eq!(round_units(scaled), expected, "{scaled}");
        }
    }

    fn wire(values: [f32; 7]) -> WireEmotion {
        WireEmotion::from_scores(&Scores::from_values(values))
    }

    #[test]
    fn wire_units_are_shares_of_the_sum() {
        let emotion = wire([0.1, 0.0, 0.0, 0.6, 0.0, 0.0, 0.3]);
        assert_eq!(emotion.scores, [1000, 0, 0, 6000, 0, 0, 3000]);
        assert_eq!(emotion.dominant, Emotion::Joy);
        // Not normalized: shares of what is there. Negative and NaN count as zero.
        let emotion = wire([2.0, -1.0, f32::NAN, 0.0, 0.0, 0.0, 2.0]);
        assert_eq!(emotion.scores, [5000, 0, 0, 0, 0, 0, 5000]);
        // Ties of the scores go to neutral (Scores::dominant).
        assert_eq!(emotion.dominant, Emotion::Neutral);
        let emotion = wire([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(emotion.scores, [SCORE_UNITS, 0, 0, 0, 0, 0, 0]);
        assert_eq!(emotion.dominant, Emotion::Anger);
    }

    #[test]
    fn unusable_scores_go_on_the_wire_as_neutral() {
        for values in [
            [0.0; 7],
            [-1.0; 7],
            [f32::NAN; 7],
            [0.5, f32::INFINITY, 0.0, 0.0, 0.0, 0.0, 0.0],
            [f32::MAX; 7],
        ] {
            let emotion = wire(values);
            assert_eq!(emotion.dominant, Emotion::Neutral, "{values:?}");
            assert_eq!(
                emotion.scores,
                [0, 0, 0, 0, 0, 0, SCORE_UNITS],
                "{values:?}"
            );
        }
    }

    #[test]
    fn scored_texts_go_on_the_wire_within_rounding_of_their_scores() {
        let scorer = crate::emotion::Scorer::new();
        let mut random = crate::test_random::XorShift(0x9e37_79b9_7f4a_7c15);
        let words = [
            "happy", "sad", "angry", "wow", "gross", "scared", "ok", "not", "very",
        ];
        for _ in 0..5_000 {
            let text: Vec<&str> = (0..random.below(8))
                .map(|_| words[random.below(9)])
                .collect();
            let scores = scorer.score(&text.join(" "));
            let emotion = WireEmotion::from_scores(&scores);
            assert_eq!(emotion.dominant, scores.dominant());
            let total: u32 = emotion.scores.iter().map(|&u| u32::from(u)).sum();
            assert!(total.abs_diff(10_000) <= 4, "{total}");
            for (&units, &score) in emotion.scores.iter().zip(scores.as_array()) {
                let exact = f64::from(score) * 10_000.0;
                assert!(
                    (f64::from(units) - exact).abs() <= 0.5 + 1e-2,
                    "{units} {exact}"
                );
            }
        }
    }

    thread_local! {
        /// How many times this thread's `EmotionJson::from_scores` took the two steps.
        pub(super) static ONE_STEP_AFTER_THE_OTHER: std::cell::Cell<usize> =
            const { std::cell::Cell::new(0) };
    }

    /// `EmotionJson::from_scores` against `WireEmotion::from_scores` then `EmotionJson::new`,
    /// its reference.
    fn assert_encodes_as_the_steps(scores: &Scores) {
        let json = EmotionJson::from_scores(scores);
        let expected = WireEmotion::from_scores(scores);
        assert_eq!(json.emotion(), expected, "{scores:?}");
        let (mut fragment, mut expected_fragment) = (Vec::new(), Vec::new());
        json.append_to(&mut fragment);
        EmotionJson::new(&expected).append_to(&mut expected_fragment);
        assert_eq!(fragment, expected_fragment, "{scores:?}");
    }

    #[test]
    fn encoding_at_once_gives_the_steps_results() {
        // Every assignment of these to the seven labels: ties, zeros of both signs, negative,
        // infinite and NaN scores, sums out of range.
        let specials = [0.0, -0.0, 0.25, 0.5, -1.0, f32::INFINITY, f32::NAN];
        let mut values = [0.0f32; 7];
        for mut index in 0..specials.len().pow(7) {
            for value in values.iter_mut() {
                *value = specials[index % specials.len()];
                index /= specials.len();
            }
            assert_encodes_as_the_steps(&Scores::from_values(values));
        }
        // Shares as the scorer makes them, and shares near a rounding half.
        let mut random = crate::test_random::XorShift(0x2545_f491_4f6c_dd1d);
        for _ in 0..50_000 {
            let raw: [f32; 7] = std::array::from_fn(|_| random.below(1 << 20) as f32);
            let total: f32 = raw.iter().sum();
            let shares = Scores::from_values(raw.map(|r| r / total));
            // These take the vector path (where there is one), which is what is compared.
            let fallbacks = ONE_STEP_AFTER_THE_OTHER.with(|count| count.get());
            let encoded = EmotionJson::from_scores(&shares);
            #[cfg(target_arch = "x86_64")]
            assert_eq!(
                ONE_STEP_AFTER_THE_OTHER.with(|count| count.get()),
                fallbacks
            );
            assert_eq!(encoded.emotion(), WireEmotion::from_scores(&shares));
            assert_encodes_as_the_steps(&shares);
            let halves = raw.map(|r| ((r as u32 % 20_000) as f32 + 0.5) / 20_000.0);
            assert_encodes_as_the_steps(&Scores::from_values(halves));
        }
        let scorer = crate::emotion::Scorer::new();
        for text in ["", "hello", "I am so happy", "not sad", "gross!!", "wow :)"] {
            assert_encodes_as_the_steps(&scorer.score(text));
        }
        assert_encodes_as_the_steps(&Scores::from_values([f32::MAX; 7]));
    }

    #[test]
    fn plain_strings_are_borrowed_from_the_frame() {
        let Ok(ClientMessage::Message { id, text, room }) =
            parsed(r#"{"type":"message","id":"c1","text":"hi","room":"lobby"}"#)
        else {
            panic!("not a message");
        };
        assert!(matches!(id, Some(Cow::Borrowed("c1"))));
        assert!(matches!(text, Cow::Borrowed("hi")));
        assert!(matches!(room, Some(Cow::Borrowed("lobby"))));
        // Escapes need an owned copy.
        let Ok(ClientMessage::Message { text, .. }) = parsed(r#"{"type":"message","text":"a\nb"}"#)
        else {
            panic!("not a message");
        };
        assert_eq!(text, "a\nb");
    }

    /// Inputs on which the one-pass parse and the tagged enum must agree, including the ones
    /// the one-pass parse hands over.
    const AGREEMENT_CASES: [&str; 24] = [
        r#"{"type":"message","id":"c1","text":"hi","room":"lobby"}"#,
        r#" {"text":"x","type":"message","extra":[1,{"a":null}]}"#,
        r#"{"type":"message","text":"x","since":"not for messages"}"#,
        r#"{"type":"message","text":"x","t":"not for messages","token":5}"#,
        r#"{"type":"message","text":null}"#,
        r#"{"type":"message","id":null,"text":"x","room":null}"#,
        r#"{"type":"message","id":7,"text":"x"}"#,
        r#"{"type":"message","text":"x","text":"y"}"#,
        r#"{"type":"message","type":"message","text":"x"}"#,
        r#"{"type":"typing"}"#,
        r#"{"type":"typing","room":"r","text":"dræft"}"#,
        r#"{"type":"join","room":"a","since":7}"#,
        r#"{"type":"join","room":"a","since":null}"#,
        r#"{"type":"join","room":"a","since":7.5}"#,
        r#"{"type":"join"}"#,
        r#"{"type":"leave","room":"a","since":-3}"#,
        r#"{"type":"ping","t":12.5}"#,
        r#"{"type":"ping","t":"x"}"#,
        r#"{"type":"auth","token":"abc","room":1}"#,
        r#"{"type":"dance","text":"x"}"#,
        r#"["ping"]"#,
        r#"{"type":"ping"} x"#,
        r#"{"type":"ping"}"#,
        "{\"type\":\"message\",\"text\":\"x\"",
    ];

    use read_flat as serde_flat;

    #[test]
    fn compact_reader_takes_the_clients_shape_and_reads_it_as_serde_does() {
        let accepted = [
            r#"{"type":"message","id":"b17","text":"I can't believe we actually won the finals!!"}"#,
            r#"{"type":"message","text":"x"}"#,
            r#"{"type":"message","id":"","text":""}"#,
            r#"{"type":"message","id":"f2","room":"bench-fanout","text":"ok"}"#,
            r#"{"type":"message","id":"web-1","text":"hi","room":"lobby"}"#,
            r#"{"type":"message","text":"hi","room":"lobby"}"#,
            r#"{"type":"message","room":"r","text":"a longer line of text that needs several blocks to scan through"}"#,
            "{\"type\":\"message\",\"text\":\"dræft 🎉 \u{7f}\"}",
        ];
        for case in accepted {
            let fast = read_compact_message(case);
            assert!(fast.is_some(), "{case}");
            assert_eq!(fast, read_plain_message(case), "{case}");
            assert_eq!(fast, serde_flat(case), "{case}");
        }
        // Left to the general reader: whitespace, other keys, types and value types, repeats,
        // escapes, control characters, a missing text, anything after the object, unfinished
        // input.
        let declined = [
            r#" {"type":"message","text":"x"}"#,
            r#"{"type":"message","text":"x"} "#,
            r#"{"type":"message", "text":"x"}"#,
            r#"{"type":"message","text" :"x"}"#,
            r#"{"type":"message","text": "x"}"#,
            r#"{"type":"message","text":"x" }"#,
            r#"{"text":"x","type":"message"}"#,
            // Other orders.
            r#"{"type":"message","text":"x","id":"a"}"#,
            r#"{"type":"message","room":"r","id":"a","text":"x"}"#,
            r#"{"type":"message","room":"r","text":"x","room":"s"}"#,
            r#"{"type":"message","text":"x","room":"r","room":"s"}"#,
            r#"{"type":"message","text":"x","room":"r",}"#,
            r#"{"type":"message","token":"x","text":"y"}"#,
            r#"{"type":"message","idx":"x","text":"y"}"#,
            r#"{"type":"message","tex":"x"}"#,
            r#"{"type":"message","id":7,"text":"x"}"#,
            r#"{"type":"message","id":null,"text":"x"}"#,
            r#"{"type":"message","text":"x","text":"y"}"#,
            r#"{"type":"message","id":"a","id":"b","text":"x"}"#,
            r#"{"type":"message","text":"a\"b"}"#,
            r#"{"type":"message","text":"a\u0062"}"#,
            "{\"type\":\"message\",\"text\":\"a\nb\"}",
            r#"{"type":"message","id":"b17"}"#,
            r#"{"type":"message","text":"x",}"#,
            r#"{"type":"message","text":"x"}}"#,
            r#"{"type":"message","text":"x"},"#,
            r#"{"type":"message","text":"x""#,
            r#"{"type":"message","text":"x"#,
            r#"{"type":"message","text":""#,
            r#"{"type":"message","#,
            r#"{"type":"message"}"#,
            r#"{"type":"messages","text":"x"}"#,
            r#"{"type":"typing","text":"x"}"#,
            "",
        ];
        for case in declined {
            assert!(read_compact_message(case).is_none(), "{case}");
        }
    }

    /// Mutations of the compact shape: every route must agree wherever it takes the input.
    #[test]
    fn readers_agree_on_mutated_chat_messages() {
        let bases = [
            r#"{"type":"message","id":"b17","text":"honestly I'm a bit nervous"}"#,
            r#"{"type":"message","id":"f2","room":"bench-fanout","text":"ok"}"#,
            r#"{"type":"message","text":"a line that is longer than two sixteen-byte blocks"}"#,
            r#"{"type":"message","id":"web-1","text":"so glad","room":"lobby"}"#,
        ];
        // The one field the compact shape never has, put in before some of the fuzz target's
        // edits (its splices: structural bytes, whitespace, escapes, control and non-ASCII
        // characters, whole fields; overwrites, deletions and cuts).
        let token_field = r#""token":"k","#;
        let mut random = crate::test_random::XorShift(0x6a09_e667_f3bc_c909);
        let (mut compact, mut declined) = (0, 0);
        for _ in 0..20_000 {
            let mut text = String::from(bases[random.below(bases.len())]);
            if random.below(4) == 0 {
                let mut at = random.below(text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                text.insert_str(at, token_field);
            }
            let count = 1 + random.below(3);
            let edits = random.bytes(2 * count);
            let text = mutated(&text, &edits);
            let routes = ReadingRoutes::new(&text);
            assert_eq!(routes.disagreement(), None, "{text} {routes:?}");
            if routes.compact.is_some() {
                compact += 1;
            } else {
                declined += 1;
            }
        }
        // The mutations reach both sides of the compact reader.
        assert!(compact > 1_000 && declined > 1_000, "{compact} {declined}");
    }

    /// The straight line for the id-then-text order takes the load generator's messages and
    /// reads them as the compact reader's general order does.
    #[test]
    fn compact_readers_straight_line_takes_the_id_then_text_order() {
        let taken = [
            r#"{"type":"message","id":"b17","text":"I can't believe we actually won!!"}"#,
            r#"{"type":"message","id":"","text":"an empty id, a long enough frame"}"#,
            r#"{"type":"message","id":"fifteen-chars-1","text":""}"#,
            "{\"type\":\"message\",\"id\":\"é\",\"text\":\"dræft 🎉 \u{7f}\"}",
        ];
        for case in taken {
            let fields = read_id_and_text(case);
            assert!(fields.is_some(), "{case}");
            assert_eq!(fields, read_compact_fields_in_any_order(case), "{case}");
        }
        // Shorter than the id's block, an id past it, a room, another order, a special byte.
        let left = [
            r#"{"type":"message","id":"b","text":"x"}"#,
            r#"{"type":"message","id":"sixteen-chars-12","text":"a line"}"#,
            r#"{"type":"message","id":"f2","room":"bench-fanout","text":"ok"}"#,
            r#"{"type":"message","id":"web-1","text":"so glad","room":"lobby"}"#,
            r#"{"type":"message","text":"no id at all, long enough"}"#,
            r#"{"type":"message","id":"a\"b","text":"an escaped id"}"#,
            r#"{"type":"message","id":"ab","text":"an escaped \" text"}"#,
            r#"{"type":"message","id":"ab","text" :"a space in the key"}"#,
            r#"{"type":"message","id":"ab","text":"one brace too many"}}"#,
        ];
        for case in left {
            assert_eq!(read_id_and_text(case), None, "{case}");
        }
    }

    #[test]
    fn hand_reader_takes_only_what_serde_reads_the_same_way() {
        let accepted = [
            r#"{"type":"message","id":"c1","text":"hi","room":"lobby"}"#,
            " \t\r\n{ \"text\" : \"x y\" ,\n\"type\":\"message\" } \n",
            "{\"type\":\"message\",\"text\":\"dræft 🎉 \u{7f}\"}",
            r#"{"type":"auth","token":"abc.def"}"#,
            r#"{"type":"typing","room":"r"}"#,
            r#"{"type":"typing"}"#,
            r#"{"type":"leave","room":"a"}"#,
            r#"{"type":"message","text":""}"#,
        ];
        for case in accepted {
            let fast = read_plain_message(case);
            assert!(fast.is_some(), "{case}");
            assert_eq!(fast, serde_flat(case), "{case}");
        }
        // Left to serde: escapes, control characters, other keys or value types, repeats,
        // anything after the object, unfinished input, arrays.
        let declined = [
            r#"{"type":"message","text":"a\nb"}"#,
            "{\"type\":\"message\",\"text\":\"a\tb\"}",
            r#"{"type":"message","t\u0065xt":"x"}"#,
            r#"{"type":"join","room":"a","since":7}"#,
            r#"{"type":"ping","t":1}"#,
            r#"{"type":"message","text":"x","extra":"y"}"#,
            r#"{"type":"message","texts":"x"}"#,
            r#"{"types":"message","text":"x"}"#,
            r#"{"type":"message","id":null,"text":"x"}"#,
            r#"{"type":"message","text":"x","text":"y"}"#,
            r#"{"type":"message","text":"x"} x"#,
            r#"{"type":"message","text":"x"}}"#,
            r#"{"type":"message","text":"x""#,
            r#"{"type":"message","text":"x","#,
            r#"{"type":"message","text":"x",}"#,
            r#"{"type":"message" "text":"x"}"#,
            r#"{"type":"message","text":}"#,
            r#"{"type":"message","text:"x"}"#,
            r#"{}"#,
            r#"{"#,
            r#"["message"]"#,
            "",
        ];
        for case in declined {
            assert!(read_plain_message(case).is_none(), "{case}");
        }
    }

    #[test]
    fn hand_reader_agrees_with_serde_on_generated_objects() {
        let keys = [
            "type",
            "token",
            "id",
            "text",
            "room",
            "since",
            "t",
            "x",
            "ty\\u0070e",
            // Known names' prefixes and extensions: only the exact name is the field.
            "types",
            "tex",
            "i",
            "roomy",
            "tokens",
        ];
        let values = [
            r#""message""#,
            r#""typing""#,
            r#""auth""#,
            r#""join""#,
            r#""leave""#,
            r#""ping""#,
            r#""dance""#,
            r#""messages""#,
            r#""pin""#,
            r#""""#,
            r#""a b""#,
            r#""é""#,
            r#""a\"b""#,
            "\"a\u{1}b\"",
            "7",
            "null",
            "[1]",
            "{}",
            "true",
            r#""\u00e9""#,
        ];
        let spaces = ["", " ", "\n\t ", "\r"];
        let mut random = crate::test_random::XorShift(0x9e37_79b9_7f4a_7c15);
        let mut next = |below: usize| random.below(below);
        let (mut read_by_hand, mut read_by_serde) = (0, 0);
        for _ in 0..20_000 {
            let mut text = String::from(spaces[next(4)]);
            text.push('{');
            for n in 0..next(5) {
                if n > 0 {
                    text.push_str(spaces[next(4)]);
                    text.push(',');
                }
                // Half the objects start with a known type, so that many are messages.
                let known_type = n == 0 && next(2) == 0;
                let key = if known_type { 0 } else { next(keys.len()) };
                let value = if known_type {
                    next(6)
                } else {
                    next(values.len())
                };
                text.push_str(spaces[next(4)]);
                text.push_str(&format!("\"{}\"", keys[key]));
                text.push_str(spaces[next(4)]);
                text.push(':');
                text.push_str(spaces[next(4)]);
                text.push_str(values[value]);
            }
            text.push_str(spaces[next(4)]);
            text.push_str(["}", "}", "} x", ",}", ""][next(5)]);
            let routes = ReadingRoutes::new(&text);
            assert_eq!(routes.disagreement(), None, "{text} {routes:?}");
            read_by_serde += usize::from(routes.flat.is_some());
            read_by_hand += usize::from(routes.plain.is_some());
        }
        // The generator reaches both routes, and serde reads more (escapes, numbers).
        assert!(
            read_by_hand > 200 && read_by_serde > read_by_hand,
            "{read_by_hand} {read_by_serde}"
        );
    }

    #[test]
    fn finds_the_first_quote_backslash_or_control_character() {
        let naive = |bytes: &[u8]| {
            bytes
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        };
        let alphabet = [
            b'a', b'"', b'\\', 0x00, 0x1f, 0x20, 0x21, 0x5b, 0x5d, 0x7f, 0x80, 0xe9, 0xff,
        ];
        let mut random = crate::test_random::XorShift(0x2545_f491_4f6c_dd1d);
        // Past four 16-byte blocks, so that every block and overlap is reached.
        for len in 0..72u64 {
            for _ in 0..300 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        let seed = random.next();
                        // About one byte of the alphabet per input, so that the first hit
                        // lands anywhere.
                        if seed.is_multiple_of(len / 2 + 1) {
                            alphabet[(seed >> 8) as usize % alphabet.len()]
                        } else {
                            b'a' + (seed >> 8) as u8 % 26
                        }
                    })
                    .collect();
                assert_eq!(
                    find_quote_backslash_or_control(&bytes),
                    naive(&bytes),
                    "{bytes:?}"
                );
            }
        }
    }

    #[test]
    fn text_check_finds_any_special_byte() {
        let alphabet = [b'"', b'\\', 0x00, 0x1f, 0x20, 0x21, 0x7f, 0x80, 0xff];
        let mut random = crate::test_random::XorShift(0x9e37_79b9_7f4a_7c15);
        // Past three 32-byte steps; below 16 bytes, the fallback to the slice scan.
        for len in 0..100u64 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        let seed = random.next();
                        // Most inputs have none or one special byte, anywhere.
                        if seed.is_multiple_of(2 * len + 1) {
                            alphabet[(seed >> 8) as usize % alphabet.len()]
                        } else {
                            b'a' + (seed >> 8) as u8 % 26
                        }
                    })
                    .collect();
                let naive = bytes.iter().any(|&b| is_special(b));
                assert_eq!(has_special(&bytes), naive, "{bytes:?}");
            }
        }
    }

    #[test]
    fn hand_reader_borrows_every_field() {
        let text = r#"{"type":"message","id":"c1","text":"hi","room":"lobby"}"#;
        let Some(ClientMessage::Message { id, text, room }) = read_plain_message(text) else {
            panic!("not read");
        };
        assert!(matches!(id, Some(Cow::Borrowed("c1"))));
        assert!(matches!(text, Cow::Borrowed("hi")));
        assert!(matches!(room, Some(Cow::Borrowed("lobby"))));
    }

    #[test]
    fn one_pass_parse_agrees_with_the_tagged_enum() {
        for case in AGREEMENT_CASES {
            assert_eq!(
                parse_client_message(case),
                classify_client_message(case),
                "{case}"
            );
        }
    }

    #[test]
    fn classifies_bad_input() {
        assert!(matches!(parsed("{nope"), Err(ParseError::BadJson(_))));
        assert!(matches!(parsed(""), Err(ParseError::BadJson(_))));
        assert!(matches!(
            parsed(r#"{"type":"ping"} x"#),
            Err(ParseError::BadJson(_))
        ));
        assert_eq!(
            parsed(r#"{"type":"dance"}"#),
            Err(ParseError::UnknownType("dance".into()))
        );
        assert!(matches!(
            parsed(r#"{"type":"message","id":"c9"}"#),
            Err(ParseError::BadRequest { id: Some(id), .. }) if id == "c9"
        ));
        assert!(matches!(
            parsed(r#"{"type":"join","room":"a","since":-1}"#),
            Err(ParseError::BadRequest { .. })
        ));
        assert!(matches!(
            parsed("[1,2]"),
            Err(ParseError::BadRequest { .. })
        ));
        assert!(matches!(
            parsed(r#"{"type":5}"#),
            Err(ParseError::BadRequest { .. })
        ));
    }

    #[test]
    fn scores_are_written_as_short_fixed_point_decimals() {
        let text = |v: f64| {
            let (digits, len) = fixed4(v).unwrap();
            String::from_utf8(digits[..len].to_vec()).unwrap()
        };
        assert_eq!(text(0.0), "0");
        assert_eq!(text(1.0), "1");
        assert_eq!(text(0.5), "0.5");
        assert_eq!(text(0.0123), "0.0123");
        assert_eq!(text(0.1), "0.1");
        assert_eq!(text(0.3333), "0.3333");
        assert_eq!(text(0.9999), "0.9999");
        // Not a four-decimal score: general formatting.
        assert_eq!(fixed4(0.12345), None);
        assert_eq!(fixed4(1.5), None);
        assert_eq!(fixed4(-0.25), None);
        assert_eq!(fixed4(f64::NAN), None);
        // Every four-decimal value round-trips through JSON parsing.
        for units in 0..=10_000u32 {
            let value = f64::from(units) / 10_000.0;
            let parsed: f64 = text(value).parse().unwrap();
            assert_eq!(parsed, value, "units {units}");
        }
    }

    #[test]
    fn every_score_is_written_as_its_shortest_decimal() {
        // Every value in every lane, beside other values.
        for units in 0..=SCORE_UNITS + 2 {
            let neighbours = [0, 1, 10, 100, 1000, 9999, SCORE_UNITS, units / 2];
            for lane in 0..8 {
                let mut lanes = neighbours;
                lanes[lane] = units;
                let expected = (f64::from(units.min(SCORE_UNITS)) / 10_000.0).to_string();
                let texts = ScoreTexts::new(&lanes);
                assert_eq!(texts.text(lane), expected, "units {units} in lane {lane}");
                let portable = ScoreTexts::new_portable(&lanes);
                assert_eq!(
                    portable.text(lane),
                    expected,
                    "units {units} in lane {lane}"
                );
            }
        }
        assert_eq!(ScoreTexts::new(&[u16::MAX; 8]).text(3), "1");
        assert_eq!(ScoreTexts::new_portable(&[u16::MAX; 8]).text(3), "1");
    }

    #[test]
    fn integers_are_written_in_decimal() {
        let mut values = vec![0, 1, 9, 10, 99, 100, 101, 999, 1_000, 1_800_000_000_123];
        let mut power = 1u64;
        while let Some(next) = power.checked_mul(10) {
            values.extend([power - 1, power, power + 1, next / 2]);
            power = next;
        }
        values.extend([u64::MAX - 1, u64::MAX]);
        // Every number of up to five digits: the four-digit path and the eight-digit one.
        values.extend(0..100_000);
        let mut random = crate::test_random::XorShift(0x5851_f42d_4c95_7f2d);
        // Every length, with digits anywhere.
        for digits in 1..=20 {
            for _ in 0..200 {
                let value = random.next() >> random.below(64);
                values.push(value % 10u64.saturating_pow(digits));
            }
        }
        for value in values {
            let mut out = b"x".to_vec();
            push_u64(&mut out, value);
            assert_eq!(out, format!("x{value}").into_bytes(), "{value}");
        }
    }

    #[test]
    fn the_longest_emotion_fragment_fits() {
        // Four decimals everywhere and the longest label dominant.
        let emotion = WireEmotion {
            dominant: Emotion::Surprise,
            scores: [1111, 1111, 1111, 1111, 1111, 1111, 3334],
        };
        let mut fragment = Vec::new();
        // In debug builds the appender checks every store against `EMOTION_JSON_ROOM`.
        EmotionJson::new(&emotion).append_to(&mut fragment);
        assert_eq!(fragment.len(), 163);
        let object = format!("{{{}}}", std::str::from_utf8(&fragment).unwrap());
        let parsed: Value = serde_json::from_str(&object).unwrap();
        assert_eq!(parsed["dominant"], json!("surprise"));
        assert_eq!(parsed["scores"]["neutral"], json!(0.3334));
    }

    #[test]
    fn plain_copies_flag_exactly_the_strings_with_bytes_to_escape() {
        let specials = [b'"', b'\\', 0x00, 0x08, 0x1f];
        let others = [
            b'a', b' ', b'!', b'#', b'[', b']', b'~', 0x7f, 0x80, 0xc3, 0xff,
        ];
        for len in 0..40 {
            let plain: Vec<u8> = (0..len).map(|i| others[i % others.len()]).collect();
            let mut cases = vec![(plain.clone(), true)];
            for at in 0..len {
                for special in specials {
                    let mut text = plain.clone();
                    text[at] = special;
                    cases.push((text, false));
                }
            }
            for (text, expected) in cases {
                let mut out = b"kept".to_vec();
                let mut append = Appender::new(&mut out, text.len());
                // SAFETY: the reservation is the text's length, all `put_plain` touches.
                let plain = unsafe { append.put_plain(&text) };
                append.finish();
                assert_eq!(plain, expected, "{text:02x?}");
                assert_eq!(out[..4], *b"kept");
                assert_eq!(out[4..], text, "{text:02x?}");
            }
        }
    }

    #[test]
    fn the_word_check_flags_exactly_the_words_with_bytes_to_escape() {
        // The other platforms' check, tested here too: every byte value in every position,
        // beside plain bytes and beside other special ones.
        for fill in [b'a', 0xff, b'"'] {
            for at in 0..8 {
                for byte in 0..=255u8 {
                    let mut bytes = [fill; 8];
                    bytes[at] = byte;
                    let expected = bytes.iter().any(|&b| is_special(b));
                    let word = u64::from_le_bytes(bytes);
                    assert_eq!(json_special_bytes(word) != 0, expected, "{bytes:02x?}");
                    assert_eq!(json_special_in(word, word), expected, "{bytes:02x?}");
                }
            }
        }
    }

    #[test]
    fn dropped_appenders_leave_the_vector_as_it_was() {
        let mut out = b"kept".to_vec();
        {
            let mut append = Appender::new(&mut out, 64);
            // SAFETY: 8 + 20 bytes of the 64 reserved.
            unsafe {
                append.put(b"dropped!");
                append.put_decimal(u64::MAX);
            }
        }
        assert_eq!(out, b"kept");
    }

    #[test]
    fn wire_scores_sum_to_one_and_name_all_seven_labels() {
        let emotion = WireEmotion::from_scores(&crate::emotion::Scorer::new().score("hello"));
        let json: Value =
            serde_json::from_str(&emotion_result(Some("c1"), "r", Some(3), &emotion)).unwrap();
        let scores = json["scores"].as_object().unwrap();
        assert_eq!(scores.len(), 7);
        for label in Emotion::ALL {
            assert!(scores.contains_key(label.as_str()));
        }
        let sum: f64 = scores.values().map(|v| v.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-3, "sum {sum}");
        assert_eq!(json["preview"], json!(false));
        assert_eq!(json["seq"], json!(3));
    }

    #[test]
    fn preview_has_null_id_and_no_seq() {
        let emotion = WireEmotion::from_scores(&crate::emotion::Scorer::new().score("hm"));
        let json: Value =
            serde_json::from_str(&emotion_result(None, "user:a", None, &emotion)).unwrap();
        assert_eq!(json["id"], Value::Null);
        assert!(json.get("seq").is_none());
        assert_eq!(json["preview"], json!(true));
    }

    #[test]
    fn strings_are_escaped() {
        let json: Value =
            serde_json::from_str(&typing("r", "a\"b\\c\n", Some("<Zoë>"), true)).unwrap();
        assert_eq!(json["from"], json!("a\"b\\c\n"));
        assert_eq!(json["name"], json!("<Zoë>"));
    }

    #[test]
    fn truncation_respects_character_boundaries() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("hi", 5), "hi");
        assert_eq!(truncate_bytes("héllo", 2), "h");
        assert_eq!(truncate_bytes("abc", 3), "abc");
    }

    #[test]
    fn errors_carry_optional_id_and_room() {
        let json: Value =
            serde_json::from_str(&error(ErrorCode::HistoryGap, "gone", None, Some("lobby")))
                .unwrap();
        assert_eq!(
            json,
            json!({"type":"error","code":"history_gap","message":"gone","room":"lobby"})
        );
    }

    // ----- serde reference for the hand-written frames -----

    use serde::ser::SerializeMap;
    use serde::{Serialize, Serializer};

    struct ScoreMap<'a>(&'a WireEmotion);

    impl Serialize for ScoreMap<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(Some(7))?;
            for emotion in Emotion::ALL {
                map.serialize_entry(emotion.as_str(), &self.0.score(emotion))?;
            }
            map.end()
        }
    }

    #[derive(Serialize)]
    struct EmotionObject<'a> {
        dominant: &'static str,
        confidence: f64,
        scores: ScoreMap<'a>,
    }

    fn emotion_object(emotion: &WireEmotion) -> EmotionObject<'_> {
        EmotionObject {
            dominant: emotion.dominant.as_str(),
            confidence: emotion.confidence(),
            scores: ScoreMap(emotion),
        }
    }

    #[derive(Serialize)]
    struct EmotionResult<'a> {
        r#type: &'static str,
        /// `null` for previews.
        id: Option<&'a str>,
        room: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        dominant: &'static str,
        confidence: f64,
        scores: ScoreMap<'a>,
        preview: bool,
    }

    #[derive(Serialize)]
    struct MessageEvent<'a> {
        r#type: &'static str,
        room: &'a str,
        seq: u64,
        from: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
        id: &'a str,
        text: &'a str,
        emotion: EmotionObject<'a>,
        ts: u64,
    }

    #[derive(Serialize)]
    struct Ready<'a> {
        r#type: &'static str,
        session: &'a str,
        user: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
        room: &'a str,
        seq: u64,
        typing_timeout_ms: u64,
        ping_interval_ms: u64,
    }

    fn reference_ready(fields: ReadyFields<'_>) -> String {
        encode(&Ready {
            r#type: "ready",
            session: &format!(
                "{:016x}{:08x}",
                fields.session.prefix, fields.session.serial
            ),
            user: fields.user,
            name: fields.name,
            room: fields.room,
            seq: fields.seq,
            typing_timeout_ms: fields.typing_timeout_ms,
            ping_interval_ms: fields.ping_interval_ms,
        })
    }

    #[test]
    fn session_id_is_zero_padded_lowercase_hex_of_prefix_then_serial() {
        let hex = |prefix, serial| SessionId { prefix, serial }.hex();
        assert_eq!(&hex(0, 0), b"000000000000000000000000");
        assert_eq!(&hex(0xdead_beef, 42), b"00000000deadbeef0000002a");
        assert_eq!(&hex(u64::MAX, u32::MAX), b"ffffffffffffffffffffffff");
        assert_eq!(
            &hex(0x0123_4567_89ab_cdef, 0x0fed_cba9),
            b"0123456789abcdef0fedcba9"
        );
    }

    #[test]
    fn hand_written_ready_matches_serde_byte_for_byte() {
        let awkward = "quote \" backslash \\ \u{8}\u{c}\n\r\t \u{0}\u{1f}\u{7f} é 🎉 </script>";
        for text in ["", "plain", awkward] {
            for name in [None, Some(text), Some("Ada \"the\" Countess")] {
                for (seq, typing, ping) in [(0, 0, 0), (1234, 5000, 30_000), (u64::MAX, 9, 10)] {
                    let fields = || ReadyFields {
                        session: SessionId {
                            prefix: 0xdead_beef,
                            serial: 42,
                        },
                        user: text,
                        name,
                        room: "user:a\"b\\c",
                        seq,
                        typing_timeout_ms: typing,
                        ping_interval_ms: ping,
                    };
                    let mut written = Vec::new();
                    write_ready(&mut written, &fields());
                    assert_eq!(
                        String::from_utf8(written).as_deref(),
                        Ok(reference_ready(fields()).as_str())
                    );
                }
            }
        }
    }

    fn reference_emotion_result(
        id: Option<&str>,
        room: &str,
        seq: Option<u64>,
        emotion: &WireEmotion,
    ) -> String {
        encode(&EmotionResult {
            r#type: "emotion",
            id,
            room,
            seq,
            dominant: emotion.dominant.as_str(),
            confidence: emotion.confidence(),
            scores: ScoreMap(emotion),
            preview: seq.is_none(),
        })
    }

    fn reference_message_event(fields: MessageFields<'_>, emotion: &WireEmotion) -> String {
        encode(&MessageEvent {
            r#type: "message",
            room: fields.room,
            seq: fields.seq,
            from: fields.from,
            name: fields.name,
            id: fields.id,
            text: fields.text,
            emotion: emotion_object(emotion),
            ts: fields.ts,
        })
    }

    #[test]
    fn hand_written_frames_match_serde_byte_for_byte() {
        let awkward = "quote \" backslash \\ \u{8}\u{c}\n\r\t \u{0}\u{1f}\u{7f} é 🎉 </script>";
        let texts = [
            "",
            "p",
            "plain",
            "a plain id",
            "private:0123456789abcdef",
            "é\"",
            "room with a \"quote\"",
            awkward,
        ];
        let mut emotions = vec![WireEmotion {
            dominant: Emotion::Neutral,
            scores: [0, 0, 0, 0, 0, 0, SCORE_UNITS],
        }];
        for text in ["I am thrilled", "this is awful and scary", "ok"] {
            emotions.push(WireEmotion::from_scores(
                &crate::emotion::Scorer::new().score(text),
            ));
        }
        emotions.push(WireEmotion {
            dominant: Emotion::Joy,
            scores: [1, 10, 100, 1000, 9, 90, 8790],
        });
        // Every label dominant: each has its own row of the head table.
        for dominant in Emotion::ALL {
            emotions.push(WireEmotion {
                dominant,
                scores: [1429, 1428, 1429, 1428, 1429, 1428, 1429],
            });
        }
        for emotion in &emotions {
            for text in texts {
                for (id, seq) in [
                    (Some(text), Some(0)),
                    (None, None),
                    (Some("c1"), Some(u64::MAX)),
                ] {
                    assert_eq!(
                        emotion_result(id, text, seq, emotion),
                        reference_emotion_result(id, text, seq, emotion)
                    );
                }
                let emotion_json = EmotionJson::new(emotion);
                for name in [None, Some(text)] {
                    let fields = || MessageFields {
                        room: "user:a\"b",
                        seq: 1234,
                        from: text,
                        name,
                        id: text,
                        text,
                        emotion: &emotion_json,
                        ts: 1_800_000_000_123,
                    };
                    assert_eq!(
                        message_event(fields()),
                        reference_message_event(fields(), emotion)
                    );
                }
            }
        }
    }
}
