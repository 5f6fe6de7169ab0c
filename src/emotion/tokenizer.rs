//! Splits a message into the tokens the scorer weighs, without allocating: words (ASCII-lowercased,
//! internal apostrophes kept, letters repeated three or more times collapsed to two), `!`/`?` runs,
//! clause punctuation, emoticons and emoji clusters.
//!
//! Two readers share these rules. [`read_word_start`] (with [`read_two_chunk_word`] and
//! [`read_long_word`] for longer words) is the fast one, for the common word (no hashtag, no
//! letter three times in a row, at most 32 key bytes): it reads eight bytes at a time and hands
//! back the key as the little-endian words the lexicon hash takes. [`read_emoticon`] finds
//! emoticons. [`Tokenizer`] is the general one, a byte at a time, for everything else; the scorer
//! calls it wherever the fast reader declines and wherever the text holds anything but words,
//! blanks, `!`/`?` runs, clause punctuation and emoticons (see [`ByteClass`]).
//!
//! `scripts/lexicon/derive.py` tokenises the training text the same way; keep the two in step.

use super::lexicon::{self, Entry};

/// Longest key ever looked up; longer words are unknown by construction.
pub(crate) const MAX_KEY_BYTES: usize = 32;
/// Longest emoticon tried (VADER's longest is seven bytes).
const MAX_EMOTICON_BYTES: usize = 8;

const ZERO_WIDTH_JOINER: char = '\u{200D}';

/// The bytes of the current token's lexicon key, in a fixed stack buffer.
pub(crate) struct KeyBuf {
    bytes: [u8; MAX_KEY_BYTES],
    /// Bytes pushed, counting those that did not fit (then the key is too long to look up).
    len: usize,
    /// Bit `i` set: the byte at `i` ends a run that was three or more long before collapsing.
    elongated_at: u32,
}

impl KeyBuf {
    pub(crate) fn new() -> Self {
        KeyBuf {
            bytes: [0; MAX_KEY_BYTES],
            len: 0,
            elongated_at: 0,
        }
    }

    fn clear(&mut self) {
        self.len = 0;
        self.elongated_at = 0;
    }

    #[inline]
    fn push(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
        }
        self.len += 1;
    }

    /// Appends a word byte unless it would be the third identical byte in a row ("sooo" -> "soo").
    /// Returns whether the byte was dropped.
    #[inline]
    fn push_collapsing(&mut self, byte: u8) -> bool {
        let len = self.len;
        if (2..=MAX_KEY_BYTES).contains(&len)
            && self.bytes[len - 1] == byte
            && self.bytes[len - 2] == byte
        {
            self.elongated_at |= 1 << (len - 1);
            return true;
        }
        self.push(byte);
        false
    }

    fn push_char(&mut self, c: char) {
        let mut utf8 = [0u8; 4];
        for &byte in c.encode_utf8(&mut utf8).as_bytes() {
            self.push(byte);
        }
    }

    /// The key, or `None` when the token was too long to be in the lexicon.
    #[inline]
    pub(crate) fn get(&self) -> Option<&[u8]> {
        self.bytes.get(..self.len)
    }

    /// The lexicon entry for the key, if any.
    pub(crate) fn entry(&self) -> Option<&'static Entry> {
        lexicon::lookup(self.get()?)
    }

    /// The key with each elongated run cut to one letter ("soo" -> "so", "happyy" -> "happy"),
    /// the second guess for elongated words whose two-letter form is not in the lexicon.
    pub(crate) fn singled(&self, out: &mut KeyBuf) {
        out.clear();
        let key = self.get().unwrap_or_default();
        for (i, &byte) in key.iter().enumerate() {
            if self.elongated_at & (1 << i) == 0 {
                out.push(byte);
            }
        }
    }
}

/// How a word was written; the scorer turns these into emphasis. One byte of flags: as separate
/// `bool`s the compiler moved them through the stack with mismatched stores and loads, and the
/// store-forwarding stalls cost more than the rest of the word.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct WordShape(u8);

impl WordShape {
    const ELONGATED: u8 = 1;
    const ALL_CAPS: u8 = 2;
    const HASHTAG: u8 = 4;

    #[inline(always)]
    fn new(elongated: bool, all_caps: bool, hashtag: bool) -> Self {
        WordShape(
            (u8::from(elongated) * Self::ELONGATED)
                | (u8::from(all_caps) * Self::ALL_CAPS)
                | (u8::from(hashtag) * Self::HASHTAG),
        )
    }

    /// A letter was repeated three or more times ("sooo").
    pub(crate) fn elongated(self) -> bool {
        self.0 & Self::ELONGATED != 0
    }

    /// At least two letters, all upper case ("HATE").
    pub(crate) fn all_caps(self) -> bool {
        self.0 & Self::ALL_CAPS != 0
    }

    /// Part of a `#hashtag`.
    pub(crate) fn hashtag(self) -> bool {
        self.0 & Self::HASHTAG != 0
    }
}

#[derive(Debug)]
pub(crate) enum Token {
    /// A word; its key is in the [`KeyBuf`].
    Word(WordShape),
    /// A run of `!` and `?`, with how many of each.
    Punct { exclaims: u32, questions: u32 },
    /// `.`, `,`, `;` or `:`: ends a negation scope.
    ClauseBreak,
    /// An emoji cluster; its key (modifiers dropped, ZWJ kept) is in the [`KeyBuf`].
    /// `first_len` is the length of its first component, the fallback for unknown ZWJ sequences.
    Emoji { first_len: usize },
    /// An emoticon found in the lexicon.
    Emoticon(&'static Entry),
}

pub(crate) struct Tokenizer<'a> {
    text: &'a str,
    pos: usize,
    /// A hashtag was split at a lower-to-upper case change ("#SoHappy") and continues.
    hashtag_continues: bool,
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{2018}')
}

/// Skin tones, variation selectors and the keycap mark refine an emoji without changing its
/// meaning, so keys leave them out.
fn is_emoji_modifier(c: char) -> bool {
    matches!(
        c,
        '\u{FE0E}' | '\u{FE0F}' | '\u{20E3}' | '\u{1F3FB}'..='\u{1F3FF}'
    )
}

fn is_emoji_start(c: char) -> bool {
    !c.is_ascii()
        && !c.is_alphanumeric()
        && !c.is_whitespace()
        && !is_emoji_modifier(c)
        && c != ZERO_WIDTH_JOINER
        && !is_apostrophe(c)
}

impl<'a> Tokenizer<'a> {
    #[cfg(test)]
    pub(crate) fn new(text: &'a str) -> Self {
        Self::at(text, 0)
    }

    /// A tokenizer that starts reading at byte `pos` of `text`, as one that had read up to there
    /// would, unless it stopped inside a split hashtag (see [`Tokenizer::hashtag_continues`]).
    pub(crate) fn at(text: &'a str, pos: usize) -> Self {
        Tokenizer {
            text,
            pos,
            hashtag_continues: false,
        }
    }

    /// Where the next token will be looked for.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The last word was a part of a hashtag split at a case change ("#SoHappy"), and the next
    /// part follows: only this tokenizer knows to read it as part of the hashtag.
    pub(crate) fn hashtag_continues(&self) -> bool {
        self.hashtag_continues
    }

    fn char_at(&self, pos: usize) -> Option<char> {
        self.text.get(pos..).and_then(|rest| rest.chars().next())
    }

    /// Apostrophe length at `pos` if one stands there between word bytes ("don't", "I’m").
    #[inline]
    fn inner_apostrophe_len(&self, pos: usize) -> Option<usize> {
        // 0xE2 leads the UTF-8 of the curly apostrophes (U+2018, U+2019); anything else is not one.
        let first = *self.text.as_bytes().get(pos)?;
        if first != b'\'' && first != 0xE2 {
            return None;
        }
        let c = self.char_at(pos)?;
        if !is_apostrophe(c) {
            return None;
        }
        let after = pos + c.len_utf8();
        let next = *self.text.as_bytes().get(after)?;
        next.is_ascii_alphanumeric().then_some(c.len_utf8())
    }

    /// Writes the next token's key into `key` and returns the token, or `None` at the end.
    pub(crate) fn next_token(&mut self, key: &mut KeyBuf) -> Option<Token> {
        let bytes = self.text.as_bytes();
        // A split hashtag continues only if its next part starts right here.
        if !bytes.get(self.pos).is_some_and(u8::is_ascii_alphanumeric) {
            self.hashtag_continues = false;
        }
        // Skip spaces and other ASCII that is no token with a local cursor: going through
        // `self.pos` would chain every byte through a store and a load.
        let mut pos = self.pos;
        // (ASCII that is neither a word byte nor punctuation: blanks, controls and DEL.)
        while let Some(&byte) = bytes.get(pos) {
            if byte > b' ' && byte != 0x7f {
                break;
            }
            pos += 1;
        }
        self.pos = pos;
        while let Some(&byte) = bytes.get(self.pos) {
            if byte.is_ascii_alphanumeric() {
                return Some(self.word(key));
            }
            self.hashtag_continues = false;
            match byte {
                b'!' | b'?' => return Some(self.punct_run()),
                _ if byte.is_ascii_punctuation() => {
                    if let Some(entry) = self.emoticon() {
                        return Some(Token::Emoticon(entry));
                    }
                    self.pos += 1;
                    if matches!(byte, b'.' | b',' | b';' | b':') {
                        return Some(Token::ClauseBreak);
                    }
                }
                _ if byte.is_ascii() => self.pos += 1,
                _ => {
                    let Some(c) = self.char_at(self.pos) else {
                        self.pos += 1;
                        continue;
                    };
                    if is_emoji_start(c) {
                        return Some(self.emoji(c, key));
                    }
                    self.pos += c.len_utf8();
                }
            }
        }
        None
    }

    /// The general word reader, one byte at a time: collapses elongation as it goes (so a word
    /// of 100 KB of one letter still gets a key) and splits hashtags at case changes.
    fn word(&mut self, key: &mut KeyBuf) -> Token {
        let bytes = self.text.as_bytes();
        // A local cursor: writing `self.pos` back on every byte costs a store per byte.
        let mut pos = self.pos;
        let hashtag = self.hashtag_continues || (pos > 0 && bytes[pos - 1] == b'#');
        self.hashtag_continues = false;
        key.clear();
        let mut elongated = false;
        let mut uppers = 0u32;
        let mut saw_lower = false;
        let mut previous_lower = false;
        while let Some(&byte) = bytes.get(pos) {
            // ASCII letters differ from their lower case only in bit 5.
            let lower = byte | 0x20;
            if lower.wrapping_sub(b'a') < 26 {
                let upper = byte != lower;
                if upper {
                    if hashtag && previous_lower {
                        // "#SoHappy": each capitalised part is a word of its own.
                        self.hashtag_continues = true;
                        break;
                    }
                    uppers += 1;
                }
                saw_lower |= !upper;
                previous_lower = !upper;
                elongated |= key.push_collapsing(lower);
                pos += 1;
            } else if byte.is_ascii_digit() {
                previous_lower = false;
                elongated |= key.push_collapsing(byte);
                pos += 1;
            } else if let Some(len) = self.inner_apostrophe_len(pos) {
                key.push(b'\'');
                previous_lower = false;
                pos += len;
            } else {
                break;
            }
        }
        self.pos = pos;
        Token::Word(WordShape::new(
            elongated,
            uppers >= 2 && !saw_lower,
            hashtag,
        ))
    }

    fn punct_run(&mut self) -> Token {
        let (mut exclaims, mut questions) = (0u32, 0u32);
        while let Some(&byte) = self.text.as_bytes().get(self.pos) {
            match byte {
                b'!' => exclaims = exclaims.saturating_add(1),
                b'?' => questions = questions.saturating_add(1),
                _ => break,
            }
            self.pos += 1;
        }
        Token::Punct {
            exclaims,
            questions,
        }
    }

    /// The emoticon starting here, if any (see [`read_emoticon`]).
    fn emoticon(&mut self) -> Option<&'static Entry> {
        let (entry, end) = read_emoticon(self.text.as_bytes(), self.pos)?;
        self.pos = end;
        Some(entry)
    }

    fn emoji(&mut self, first: char, key: &mut KeyBuf) -> Token {
        key.clear();
        key.push_char(first);
        let first_len = first.len_utf8();
        self.pos += first_len;
        while let Some(c) = self.char_at(self.pos) {
            if is_emoji_modifier(c) {
                self.pos += c.len_utf8();
                continue;
            }
            if c != ZERO_WIDTH_JOINER {
                break;
            }
            let next_pos = self.pos + c.len_utf8();
            match self.char_at(next_pos) {
                Some(next)
                    if is_emoji_start(next)
                        && key.len + c.len_utf8() + next.len_utf8() <= MAX_KEY_BYTES =>
                {
                    key.push_char(c);
                    key.push_char(next);
                    self.pos = next_pos + next.len_utf8();
                }
                _ => break,
            }
        }
        Token::Emoji { first_len }
    }
}

/// What a byte can start, for the scorer's dispatch loop: one table load per byte instead of a
/// chain of range tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ByteClass {
    /// Space, control or DEL: no token.
    Blank,
    /// An ASCII letter or digit: a word.
    Word,
    /// `!` or `?`: a punctuation run.
    PunctRun,
    /// `.`, `,`, `;` or `:`: a clause break, unless an emoticon starts here.
    ClauseBreak,
    /// Other ASCII punctuation: nothing, unless an emoticon starts here.
    Punct,
    /// A byte of a multi-byte UTF-8 character: an emoji, a curly apostrophe, a foreign letter...
    NonAscii,
}

static BYTE_CLASSES: [ByteClass; 256] = {
    let mut classes = [ByteClass::NonAscii; 256];
    let mut byte = 0;
    while byte < 128 {
        let b = byte as u8;
        classes[byte] = if b.is_ascii_alphanumeric() {
            ByteClass::Word
        } else if b == b'!' || b == b'?' {
            ByteClass::PunctRun
        } else if b == b'.' || b == b',' || b == b';' || b == b':' {
            ByteClass::ClauseBreak
        } else if b.is_ascii_punctuation() {
            ByteClass::Punct
        } else {
            ByteClass::Blank
        };
        byte += 1;
    }
    classes
};

impl ByteClass {
    #[inline(always)]
    pub(crate) fn of(byte: u8) -> ByteClass {
        BYTE_CLASSES[usize::from(byte)]
    }
}

/// A word read by [`read_two_chunk_word`] or [`read_long_word`].
pub(crate) struct PlainWord {
    /// The key (lowercased, apostrophes as `'`) as zero-padded little-endian words.
    pub(crate) words: [u64; MAX_KEY_BYTES / 8],
    /// Key length in bytes, 1 to [`MAX_KEY_BYTES`].
    pub(crate) len: usize,
    /// Where the text continues after the word.
    pub(crate) end: usize,
    pub(crate) shape: WordShape,
}

impl PlainWord {
    /// The [`key_flags`](super::key_flags) of a word not found in the lexicon (where they could
    /// not be read from the entry). Its [`HAS_TRIPLE`](super::key_flags::HAS_TRIPLE) bit sends
    /// the word to [`Tokenizer`], which collapses the run.
    #[cold]
    pub(crate) fn unknown_key_flags(&self) -> u8 {
        super::key_flags::key_flags(self.key_bytes().get(..self.len).unwrap_or_default())
    }

    /// The key's bytes, zero-padded.
    pub(crate) fn key_bytes(&self) -> [u8; MAX_KEY_BYTES] {
        let mut bytes = [0u8; MAX_KEY_BYTES];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(self.words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        bytes
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The eight bytes of `bytes` from `start`, little-endian, zero past the end (a zero byte ends
/// every word, so the last word of a text needs no special case).
#[inline(always)]
fn load_chunk(bytes: &[u8], start: usize) -> u64 {
    // One comparison with a bound computed once per text, and no other: as far as the compiler
    // knows `start + 8` could overflow, and a slice of the eight bytes cost two more tests.
    if start >= bytes.len().saturating_sub(7) {
        // Near the end: the text's last eight bytes, shifted down so that `start` comes first.
        // (Out of line, this path cost more than it saved: the call made the loop save
        // registers.)
        if let Some(last_eight) = bytes.len().checked_sub(8) {
            let mut word = [0u8; 8];
            if let Some(chunk) = bytes.get(last_eight..) {
                word.copy_from_slice(chunk);
            }
            // `start` is past `last_eight` here, by one to eight bytes (eight at the very end:
            // all padding). Shifted in two steps, the second by a byte, so that no shift
            // reaches 64 bits and neither needs a guard (in wrapping arithmetic: the bound
            // above makes it exact, and nothing can panic).
            let skipped_but_one = start.wrapping_sub(last_eight).wrapping_sub(1) as u32;
            debug_assert!(skipped_but_one < 8);
            return u64::from_le_bytes(word).wrapping_shr(8 * skipped_but_one) >> 8;
        }
        // A text shorter than eight bytes, last byte first (an index loop: an iterator kept
        // the text's end pointer live, and spilled, through the whole scoring loop).
        let mut word = 0u64;
        let mut i = bytes.len();
        while i > start {
            i -= 1;
            word = word << 8 | u64::from(bytes[i]);
        }
        return word;
    }
    // SAFETY: `start + 8 <= bytes.len()`, so the eight bytes read are inside `bytes`;
    // `read_unaligned` has no alignment requirement.
    let chunk = unsafe { bytes.as_ptr().add(start).cast::<[u8; 8]>().read_unaligned() };
    u64::from_le_bytes(chunk)
}

/// The length of the apostrophe at `pos` if one stands there before a word byte ("don't",
/// "I’m"): `'`, U+2018 or U+2019 (UTF-8 `E2 80 98` / `E2 80 99`).
#[inline]
fn inner_apostrophe_at(bytes: &[u8], pos: usize) -> Option<usize> {
    let len = match *bytes.get(pos)? {
        b'\'' => 1,
        0xE2 if matches!(bytes.get(pos + 1..pos + 3), Some([0x80, 0x98 | 0x99])) => 3,
        _ => return None,
    };
    bytes
        .get(pos + len)
        .is_some_and(u8::is_ascii_alphanumeric)
        .then_some(len)
}

/// High bit of each byte of `v` set iff the byte lies in `lo..=hi` (ASCII bounds; bytes of 0x80
/// and above never match). The sums cannot carry into the next byte.
#[inline(always)]
fn bytes_in_range(v: u64, lo: u8, hi: u8) -> u64 {
    let low7 = v & !HIGH;
    let at_least_lo = low7.wrapping_add(ONES * u64::from(0x80 - lo)) & HIGH;
    let above_hi = low7.wrapping_add(ONES * u64::from(0x7f - hi)) & HIGH;
    at_least_lo & !above_hi & !v
}

/// The high bits of the upper-case letters, lower-case letters and all word bytes (letters and
/// digits) among the eight bytes of `v`.
#[inline(always)]
fn classify_chunk(v: u64) -> (u64, u64, u64) {
    // Setting bit 5 folds upper-case letters onto lower-case ones and nothing else onto them.
    let letters = bytes_in_range(v | (ONES * 0x20), b'a', b'z') & !v;
    let bit5 = (v << 2) & HIGH;
    let (upper, lower) = (letters & !bit5, letters & bit5);
    (upper, lower, letters | bytes_in_range(v, b'0', b'9'))
}

/// How many of the eight bytes classified as `word_bytes` lead the chunk, and the mask of those
/// bytes.
#[inline(always)]
fn leading_word_bytes(word_bytes: u64) -> (usize, u64) {
    let others = !word_bytes & HIGH;
    // The high bit of the first other byte, moved to the bit above the leading bytes, minus one
    // (all ones when there is none).
    let keep = ((others & others.wrapping_neg()) >> 7).wrapping_sub(1);
    ((others.trailing_zeros() / 8) as usize, keep)
}

/// One chunk of a word as [`read_word_start`] reads it: straight apostrophes count as word bytes
/// when a letter or digit follows them within the chunk (an apostrophe in the last byte ends the
/// chunk, and the caller decides).
#[derive(Clone, Copy)]
pub(crate) struct WordChunk {
    /// The leading word bytes, lowercased, zero above.
    key: u64,
    /// The leading word bytes as written, zero above.
    written: u64,
    /// How many bytes lead: 0 to 8.
    taken: usize,
}

impl WordChunk {
    /// The chunk's leading word bytes with bit 5 set on each, zero above: lowercased, since
    /// setting bit 5 folds upper-case letters onto lower-case ones and leaves digits and `'`
    /// (which have it set) as they are.
    #[inline(always)]
    fn new(folded: u64, written: u64, taken: usize) -> Self {
        let keep = LEADING_BYTES[taken];
        WordChunk {
            key: folded & keep,
            written: written & keep,
            taken,
        }
    }
}

/// Bit 5 of each upper-case letter among a word's bytes, given them lowercased (`key`) and as
/// written: lowercasing set that bit on them and changed no other byte.
#[inline(always)]
fn upper_case_letters(key: u64, written: u64) -> u64 {
    key ^ written
}

/// Bit 6 of each lower-case letter among a word's bytes as written: letters are the only word
/// bytes with bit 6 set (digits and `'` have it clear), and lower-case ones have bit 5 as well.
#[inline(always)]
fn lower_case_letters(written: u64) -> u64 {
    written & (written << 1) & (ONES * 0x40)
}

/// Per count of leading bytes (0 to 8), the mask of those bytes in a little-endian word; the
/// entries past 8 (never used) let a `u32`'s trailing zero count index it unchecked.
static LEADING_BYTES: [u64; 33] = {
    let mut masks = [u64::MAX; 33];
    let mut taken = 0;
    while taken < 8 {
        masks[taken] = (1 << (8 * taken)) - 1;
        taken += 1;
    }
    masks
};

/// Reads one chunk of a word, the eight bytes of `v` (little-endian): with SSE2 (on every x86-64
/// CPU), a dozen vector instructions classify all eight bytes at once; elsewhere, SWAR
/// arithmetic on the `u64`. With `starts_word`, the chunk is a word's first: an apostrophe in
/// its first byte takes nothing (it continues words, never starts one), which the
/// classification folds in for one instruction rather than a test and branch of its own.
#[inline(always)]
fn word_chunk(v: u64, starts_word: bool) -> WordChunk {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        // SAFETY: the one requirement of `word_chunk_sse2` is SSE2, which this build targets.
        unsafe { word_chunk_sse2(v, starts_word) }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        word_chunk_swar(v, starts_word)
    }
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "sse2")]
#[inline]
fn word_chunk_sse2(v: u64, starts_word: bool) -> WordChunk {
    use std::arch::x86_64::{
        _mm_and_si128, _mm_cmpeq_epi8, _mm_cvtsi128_si64, _mm_cvtsi64_si128, _mm_movemask_epi8,
        _mm_or_si128, _mm_set1_epi8,
    };
    // The upper eight bytes are zero: no word bytes.
    let bytes = _mm_cvtsi64_si128(v as i64);
    let folded = _mm_or_si128(bytes, _mm_set1_epi8(0x20));
    // Bit `i` set: byte `i` is no letter nor digit (bits 8 to 15 always are).
    let others = _mm_and_si128(
        bytes_above_sse2(folded, b'a', b'z'),
        bytes_above_sse2(bytes, b'0', b'9'),
    );
    let others = _mm_movemask_epi8(others) as u32;
    let apostrophes = _mm_movemask_epi8(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'\'' as i8))) as u32;
    // Not a word byte: neither a letter nor a digit, nor an apostrophe before one (nor, at the
    // start of a word, an apostrophe at all).
    let not_word = others & (!apostrophes | others >> 1 | u32::from(starts_word));
    // (Bit 8 is set: at most eight lead. A table of 33 entries needs no bounds check.)
    let taken = not_word.trailing_zeros() as usize;
    WordChunk::new(_mm_cvtsi128_si64(folded) as u64, v, taken)
}

/// All ones in each byte of `bytes` that does not lie in `lo..=hi` (ASCII bounds), zero in the
/// others.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "sse2")]
#[inline]
fn bytes_above_sse2(
    bytes: std::arch::x86_64::__m128i,
    lo: u8,
    hi: u8,
) -> std::arch::x86_64::__m128i {
    use std::arch::x86_64::{_mm_add_epi8, _mm_cmpgt_epi8, _mm_set1_epi8};
    // Adding 0x80 - lo moves `lo..=hi` to the bottom of the signed range, and every other byte
    // (0x80 and above included) above it: one signed comparison tells them apart.
    let moved = _mm_add_epi8(bytes, _mm_set1_epi8(0x80u8.wrapping_sub(lo) as i8));
    _mm_cmpgt_epi8(moved, _mm_set1_epi8((0x80 + (hi - lo)) as i8))
}

/// [`word_chunk`] in SWAR arithmetic: the portable version, and the reference of the SSE2 one.
#[cfg_attr(
    all(target_arch = "x86_64", target_feature = "sse2", not(test)),
    allow(dead_code)
)]
#[inline(always)]
fn word_chunk_swar(v: u64, starts_word: bool) -> WordChunk {
    // Setting bit 5 folds upper-case letters onto lower-case ones and nothing else onto them.
    let letters = bytes_in_range(v | (ONES * 0x20), b'a', b'z');
    let alphanumeric = letters | bytes_in_range(v, b'0', b'9');
    let leading = if starts_word { 0x80 } else { 0 };
    let apostrophes = bytes_in_range(v, b'\'', b'\'') & !leading;
    let (taken, _) = leading_word_bytes(alphanumeric | (apostrophes & (alphanumeric >> 8)));
    WordChunk::new(v | (ONES * 0x20), v, taken)
}

/// [`key_flags`](super::key_flags::key_flags) of a key of at most sixteen bytes held as a
/// zero-padded little-endian number, as the fast word readers have it: a few dozen
/// straight-line instructions where the byte-slice version, a call and a loop with a bounds
/// check per byte, cost 50 to 70 (a word in four of the chat load is not in the lexicon).
/// `len` is the key's length in bytes, 1 to 16; key bytes are never zero, so the padding marks
/// where the key ends.
#[inline(always)]
fn packed_key_flags(key: u128, len: usize) -> u8 {
    use super::key_flags::{BUT, ENDS_IN_NT, HAS_TRIPLE, NEVER, SO_OR_THIS};
    const ONES: u128 = u128::MAX / 0xFF;
    const LOW7: u128 = ONES * 0x7F;
    // The high bit of each nonzero byte of `v` (exact: the sums cannot carry across bytes).
    let nonzero = |v: u128| ((v & LOW7).wrapping_add(LOW7) | v) & !LOW7;
    let word = |text: &[u8; 8]| u128::from(u64::from_le_bytes(*text));
    let mut flags = 0;
    // The last three key bytes, moved to the bottom: the padding above the key shifts in.
    if len >= 3 && key.checked_shr(8 * (len as u32 - 3)).unwrap_or(0) == word(b"n't\0\0\0\0\0") {
        flags |= ENDS_IN_NT;
    }
    // (The words with rules of their own are short: a longer key skips the comparisons.)
    if len <= 5 {
        if key == word(b"never\0\0\0") {
            flags |= NEVER;
        }
        if key == word(b"so\0\0\0\0\0\0") || key == word(b"this\0\0\0\0") {
            flags |= SO_OR_THIS;
        }
        if key == word(b"but\0\0\0\0\0") {
            flags |= BUT;
        }
    }
    // A zero byte `i` of `differs` means bytes `i`, `i + 1` and `i + 2` are equal; a triple
    // only where byte `i` is a key byte (the two after it may not be padding then, as a key
    // byte differs from padding).
    let differs = (key ^ key >> 8) | (key ^ key >> 16);
    if nonzero(key) & !nonzero(differs) != 0 {
        flags |= HAS_TRIPLE;
    }
    flags
}

/// A word that ends inside the first eight bytes it starts: the common case, kept in registers.
pub(crate) struct ShortWord {
    /// The key (lowercased, apostrophes as `'`) as a zero-padded little-endian word.
    pub(crate) key: u64,
    /// The word's bytes as written, zero-padded likewise: [`ShortWord::shape`] needs them, and
    /// only for a known word, so nothing more is worked out while reading it.
    written: u64,
    /// Key length in bytes, 1 to 7.
    pub(crate) len: usize,
    /// Where the text continues after the word.
    pub(crate) end: usize,
    /// The byte at `end`, or zero at the end of the text.
    pub(crate) next: u8,
}

impl ShortWord {
    /// The [`key_flags`](super::key_flags) of a word not found in the lexicon (see
    /// [`PlainWord::unknown_key_flags`]).
    #[cold]
    pub(crate) fn unknown_key_flags(&self) -> u8 {
        packed_key_flags(u128::from(self.key), self.len)
    }

    /// How the word was written: never elongated (the caller checks) nor a hashtag; all caps
    /// with at least two upper-case letters and no lower-case one.
    #[inline(always)]
    pub(crate) fn shape(&self) -> WordShape {
        let upper = upper_case_letters(self.key, self.written);
        let lower = lower_case_letters(self.written);
        WordShape::new(
            false,
            upper & upper.wrapping_sub(1) != 0 && lower == 0,
            false,
        )
    }
}

/// The start of a word, as [`read_word_start`] finds it.
pub(crate) enum WordStart {
    /// No word starts there.
    None,
    /// The whole word.
    Short(ShortWord),
    /// The first eight bytes of a longer word (or one an apostrophe may continue), for
    /// [`read_two_chunk_word`] or [`read_long_word`].
    Longer(WordChunk),
}

/// Reads the first eight bytes of the word that starts at `bytes[start]`, if an ASCII letter or
/// digit stands there, classified all at once (see [`word_chunk`]). Most words end there, with
/// straight apostrophes at most ("can't"): they come back whole.
///
/// Like the readers of longer words, this gives the result [`Tokenizer`] would, except that it neither
/// recognises hashtags (the caller checks the byte before) nor letters three times in a row (the
/// caller checks; see [`ShortWord::unknown_key_flags`]).
#[inline(always)]
pub(crate) fn read_word_start(bytes: &[u8], start: usize) -> WordStart {
    let v = load_chunk(bytes, start);
    let first = word_chunk(v, true);
    if first.taken == 0 {
        return WordStart::None;
    }
    // The byte after the word, from the chunk (zero past the text, as `load_chunk` pads it).
    // When all eight bytes are taken, the shift wraps to zero and this is the word's first byte.
    let next = v.wrapping_shr(8 * first.taken as u32) as u8;
    // A space, after most words, settles it with one test: the word ended in this chunk (a
    // full chunk would give its first byte, a word byte) and no apostrophe continues it.
    if next != b' ' && (first.taken == 8 || matches!(next, b'\'' | 0xE2)) {
        // An apostrophe there may continue the word.
        return WordStart::Longer(first);
    }
    WordStart::Short(ShortWord {
        key: first.key,
        written: first.written,
        len: first.taken,
        end: start + first.taken,
        next,
    })
}

/// A word of eight to sixteen bytes with straight apostrophes at most, read by
/// [`read_two_chunk_word`] without a loop, and kept in registers like a [`ShortWord`].
pub(crate) struct TwoChunkWord {
    /// The key (lowercased, apostrophes as `'`) as two zero-padded little-endian words; the
    /// second is zero for a word of eight bytes.
    pub(crate) key: [u64; 2],
    /// The word's bytes as written, zero-padded likewise (see [`ShortWord::shape`]).
    written: [u64; 2],
    /// Key length in bytes, 8 to 15.
    pub(crate) len: usize,
    /// Where the text continues after the word.
    pub(crate) end: usize,
    /// The byte at `end`, or zero at the end of the text.
    pub(crate) next: u8,
}

impl TwoChunkWord {
    /// How the word was written, as for [`ShortWord::shape`]. The second chunk's upper-case bits
    /// move down one place, so that the two chunks' bits stay apart and one test counts two.
    #[inline(always)]
    pub(crate) fn shape(&self) -> WordShape {
        let upper = upper_case_letters(self.key[0], self.written[0])
            | upper_case_letters(self.key[1], self.written[1]) >> 1;
        let lower = lower_case_letters(self.written[0]) | lower_case_letters(self.written[1]);
        WordShape::new(
            false,
            upper & upper.wrapping_sub(1) != 0 && lower == 0,
            false,
        )
    }

    /// The word as [`read_long_word`] gives it.
    #[cfg(test)]
    pub(crate) fn plain(&self) -> PlainWord {
        PlainWord {
            words: [self.key[0], self.key[1], 0, 0],
            len: self.len,
            end: self.end,
            shape: self.shape(),
        }
    }

    /// The [`key_flags`](super::key_flags) of a word not found in the lexicon (see
    /// [`PlainWord::unknown_key_flags`]).
    #[cold]
    pub(crate) fn unknown_key_flags(&self) -> u8 {
        packed_key_flags(
            u128::from(self.key[0]) | u128::from(self.key[1]) << 64,
            self.len,
        )
    }
}

/// The rest of [`read_word_start`]'s word when it was [`WordStart::Longer`], given its first
/// chunk, if the word ends within a second chunk and has straight apostrophes at most: sixteen
/// bytes without a loop. `None` otherwise: then [`read_long_word`] reads it.
#[inline(always)]
pub(crate) fn read_two_chunk_word(
    bytes: &[u8],
    start: usize,
    first: WordChunk,
) -> Option<TwoChunkWord> {
    if first.taken < 8 {
        return None;
    }
    let end = start + 8;
    let v = load_chunk(bytes, end);
    let second = word_chunk(v, false);
    // (Below eight bytes taken, the shift does not wrap: this is the byte after the word.)
    let next = v.wrapping_shr(8 * second.taken as u32) as u8;
    if second.taken == 8 || matches!(next, b'\'' | 0xE2) {
        return None;
    }
    Some(TwoChunkWord {
        key: [first.key, second.key],
        written: [first.written, second.written],
        len: 8 + second.taken,
        end: end + second.taken,
        next,
    })
}

/// Reads any word [`read_word_start`] and [`read_two_chunk_word`] did not finish (more than
/// sixteen bytes, curly apostrophes, apostrophes at a chunk's end), in a loop over chunks, with
/// the same result and the same exceptions. `None` when the key is longer than
/// [`MAX_KEY_BYTES`]: then the caller must use [`Tokenizer`].
#[cold]
#[inline(never)]
pub(crate) fn read_long_word(bytes: &[u8], start: usize) -> Option<PlainWord> {
    let mut words = [0u64; MAX_KEY_BYTES / 8];
    let mut len = 0usize;
    let mut src = start;
    let (mut any_upper, mut two_uppers, mut any_lower) = (false, false, false);
    loop {
        let v = load_chunk(bytes, src);
        let (upper, lower, word_bytes) = classify_chunk(v);
        let (taken, keep) = leading_word_bytes(word_bytes);
        if len + taken > MAX_KEY_BYTES {
            return None;
        }
        let upper = upper & keep;
        let chunk = (v | (upper >> 2)) & keep;
        two_uppers |= upper & upper.wrapping_sub(1) != 0 || (any_upper && upper != 0);
        any_upper |= upper != 0;
        any_lower |= lower & keep != 0;
        if taken > 0 {
            let shift = 8 * (len % 8) as u32;
            words[len / 8] |= chunk << shift;
            if shift != 0 {
                if let Some(next) = words.get_mut(len / 8 + 1) {
                    *next |= chunk >> (64 - shift);
                }
            }
            len += taken;
            src += taken;
        }
        if taken == 8 {
            continue;
        }
        let Some(apostrophe_len) = inner_apostrophe_at(bytes, src) else {
            break;
        };
        if len >= MAX_KEY_BYTES {
            return None;
        }
        words[len / 8] |= u64::from(b'\'') << (8 * (len % 8));
        len += 1;
        src += apostrophe_len;
    }
    if len == 0 {
        return None;
    }
    Some(PlainWord {
        words,
        len,
        end: src,
        shape: WordShape::new(false, two_uppers && !any_lower, false),
    })
}

/// The emoticon that starts at the punctuation byte `bytes[pos]`, and where the text continues
/// after it: the longest lexicon key of printable ASCII starting there, if it stands apart from
/// words on its left ("lol:)" and "10:30" are not emoticons) and is not glued to a word on its
/// right.
#[inline(always)]
pub(crate) fn read_emoticon(bytes: &[u8], pos: usize) -> Option<(&'static Entry, usize)> {
    let lengths = lexicon::emoticon_lengths(*bytes.get(pos)?);
    let after_word = pos
        .checked_sub(1)
        .and_then(|before| bytes.get(before))
        .is_some_and(u8::is_ascii_alphanumeric);
    if lengths == 0 || after_word {
        return None;
    }
    read_emoticon_at_lengths(bytes, pos, lengths)
}

#[cold]
#[inline(never)]
fn read_emoticon_at_lengths(
    bytes: &[u8],
    pos: usize,
    lengths: u16,
) -> Option<(&'static Entry, usize)> {
    let v = load_chunk(bytes, pos);
    let (run, _) = leading_word_bytes(bytes_in_range(v, b'!', b'~'));
    // Longest first, and only the lengths at which some key starts with this byte.
    for len in (2..=run.min(MAX_EMOTICON_BYTES))
        .rev()
        .filter(|len| lengths & (1 << len) != 0)
    {
        let end = pos + len;
        let glued = bytes.get(end).is_some_and(u8::is_ascii_alphanumeric)
            && bytes[end - 1].is_ascii_alphanumeric();
        if glued {
            continue;
        }
        let key = v & u64::MAX.checked_shr(64 - 8 * len as u32).unwrap_or(0);
        if let Some(entry) = lexicon::lookup_words(&[key, 0, 0, 0], len) {
            return Some((entry, end));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::key_flags;
    use super::*;

    /// Renders the tokens of `text` as strings, for compact assertions.
    fn render(text: &str) -> Vec<String> {
        let mut tokenizer = Tokenizer::new(text);
        let mut key = KeyBuf::new();
        let mut out = Vec::new();
        while let Some(token) = tokenizer.next_token(&mut key) {
            let key_text = || String::from_utf8_lossy(key.get().unwrap_or(b"<long>")).into_owned();
            out.push(match token {
                Token::Word(shape) => {
                    let mut s = key_text();
                    for (flag, mark) in [
                        (shape.elongated(), "+elong"),
                        (shape.all_caps(), "+caps"),
                        (shape.hashtag(), "+tag"),
                    ] {
                        if flag {
                            s.push_str(mark);
                        }
                    }
                    s
                }
                Token::Punct {
                    exclaims,
                    questions,
                } => format!("!{exclaims}?{questions}"),
                Token::ClauseBreak => "|".to_owned(),
                Token::Emoji { .. } => format!("emoji:{}", key_text()),
                Token::Emoticon(_) => "emoticon".to_owned(),
            });
        }
        out
    }

    #[test]
    fn packed_key_flags_agree_with_key_flags() {
        let keys: &[&[u8]] = &[
            b"a",
            b"so",
            b"this",
            b"but",
            b"never",
            b"nevers",
            b"butt",
            b"thi",
            b"s",
            b"can't",
            b"n't",
            b"nt",
            b"don't'",
            b"wouldn't",
            b"shouldn't've",
            b"isn'tt",
            b"aaa",
            b"aa",
            b"grrr",
            b"abbbc",
            b"bbba",
            b"abcddd",
            b"aabbaa",
            b"zzz'",
            b"abcdefgh",
            b"abcdefgzzz",
            b"abcdefzzzq",
            b"cancelled",
            b"yesterday's",
            b"abcdefghijklmnop",
            b"abcdefghijklmnnn",
            b"abcdefghijklmn't",
            b"aaabcdefghijklmn",
            b"1000",
            b"10000000000",
            b"x''",
            b"'''",
        ];
        for &key in keys {
            let mut padded = [0u8; 16];
            padded[..key.len()].copy_from_slice(key);
            let packed = u128::from_le_bytes(padded);
            assert_eq!(
                packed_key_flags(packed, key.len()),
                key_flags::key_flags(key),
                "{}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn words_are_lowercased_and_keep_inner_apostrophes() {
        assert_eq!(
            render("I’m NOT ok, don't 'quote'"),
            ["i'm", "not+caps", "ok", "|", "don't", "quote"]
        );
    }

    #[test]
    fn elongation_collapses_to_two_letters() {
        assert_eq!(render("sooo goooood"), ["soo+elong", "good+elong"]);
        assert_eq!(render("good"), ["good"]);
    }

    #[test]
    fn punctuation_runs_are_counted() {
        assert_eq!(render("what?!?"), ["what", "!1?2"]);
        assert_eq!(render("a. b; c: d"), ["a", "|", "b", "|", "c", "|", "d"]);
    }

    #[test]
    fn hashtags_split_on_case_changes() {
        assert_eq!(render("#SoHappy now"), ["so+tag", "happy+tag", "now"]);
        assert_eq!(render("#blessed"), ["blessed+tag"]);
    }

    #[test]
    fn emoticons_need_to_stand_apart() {
        assert_eq!(
            render("nice :) :'( >:("),
            ["nice", "emoticon", "emoticon", "emoticon"]
        );
        assert_eq!(render("at 10:30"), ["at", "10", "|", "30"]);
    }

    #[test]
    fn emoji_drop_skin_tones_and_keep_zwj_sequences() {
        assert_eq!(render("ok 👍🏽"), ["ok", "emoji:👍"]);
        assert_eq!(render("👨‍💻!"), ["emoji:👨\u{200d}💻", "!1?0"]);
        assert_eq!(render("❤️"), ["emoji:❤"]);
    }

    #[test]
    fn stray_joiners_and_modifiers_are_skipped() {
        assert_eq!(render("\u{200d}\u{200d}🏽\u{fe0f} hi"), ["hi"]);
        assert_eq!(render("😂\u{200d}"), ["emoji:😂"]);
    }

    #[test]
    fn fast_word_readers_agree_with_the_bytewise_one() {
        let texts = [
            "a ",
            "I ",
            "ok, ",
            "NOT ",
            "Happy!",
            "hello   ",
            "7up ",
            "x9Y ",
            "aab ",
            "aaab ",
            "ABCDEFG ",
            "abcdefgh ",
            "Disappointed, ",
            "CANCELLED ",
            "abcdefgggh ",
            "abcdefghhhij ",
            "abcdefgghij ",
            "abcdefghijklmnopqrstuvwxyzabcdef ",
            "abcdefghijklmnopqrstuvwxyzabcdefg ",
            "honestly’s ",
            "abcdefghi—",
            "WHY?",
            "don't ",
            "I’m ",
            "ça ",
            "zZ@",
            "Zz[",
            "`a`",
            "9:30",
            "mixedCASEword and",
            "tooooo long",
            "x",
            "abcdefgh",
            "abcdefghaab ",
            "abcdefgaab ",
            "abcdefgaabc ",
            "abcdefggabc ",
            "abcdefgg'gab ",
            "abcdefg'ggab ",
            "don't'n't",
            "I’M’S ",
            "a’",
            "rock'n'roll ",
            "abcdefghijklmnopqrstuvwxyzabcde'f ",
            "abcdefghijklmnopqrstuvwxyzabcdef'g ",
            "AbcdefghijklmnopqrstuvwxyzaBCDEF ",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456 ",
            "aB ",
            "Ab",
            "A9 ",
            "A9B",
        ];
        let mut compared = 0;
        // As written (words at the very end of the text) and followed by more text.
        for text in texts
            .iter()
            .flat_map(|t| [t.to_string(), format!("{t}        x")])
        {
            let mut bytewise_key = KeyBuf::new();
            let mut bytewise = Tokenizer::new(&text);
            let plain = match read_word_start(text.as_bytes(), 0) {
                WordStart::None => continue,
                WordStart::Short(word) => PlainWord {
                    words: [word.key, 0, 0, 0],
                    len: word.len,
                    end: word.end,
                    shape: word.shape(),
                },
                WordStart::Longer(first) => {
                    let two_chunks = read_two_chunk_word(text.as_bytes(), 0, first);
                    match two_chunks
                        .map(|word| word.plain())
                        .or_else(|| read_long_word(text.as_bytes(), 0))
                    {
                        Some(word) => word,
                        None => continue, // declined: the byte-wise reader handles it
                    }
                }
            };
            let Token::Word(bytewise_shape) = bytewise.word(&mut bytewise_key) else {
                panic!("{text:?}: byte-wise reader returned no word");
            };
            // A run of three is left for the caller to find, and the byte-wise reader to collapse.
            let has_triple = plain.unknown_key_flags() & key_flags::HAS_TRIPLE != 0;
            assert_eq!(has_triple, bytewise_shape.elongated(), "{text:?}");
            if has_triple {
                continue;
            }
            let key = plain.key_bytes();
            assert_eq!(Some(&key[..plain.len]), bytewise_key.get(), "{text:?}");
            assert!(
                key[plain.len..].iter().all(|&b| b == 0),
                "{text:?}: padding"
            );
            assert_eq!(plain.shape, bytewise_shape, "{text:?}");
            assert_eq!(plain.end, bytewise.pos, "{text:?}");
            compared += 1;
            assert_eq!(
                lexicon::lookup_words(&plain.words, plain.len).map(|e| e as *const _),
                bytewise_key.entry().map(|e| e as *const _),
                "{text:?}"
            );
        }
        assert!(compared >= 50, "only {compared} words took the fast path");
    }

    #[test]
    fn chunk_readers_agree() {
        // Bytes around every class boundary the readers test, and some of every other kind.
        const BYTES: &[u8] = b"\x00\x1f !&'(/09:@AZ[`az{\x7f\x80\x98\x99\xc3\xe2\xff";
        let mut random = crate::test_random::XorShift(0x9e37_79b9_7f4a_7c15);
        for round in 0..200_000 {
            let v = if round % 2 == 0 {
                random.next()
            } else {
                u64::from_le_bytes([0; 8].map(|_: u8| BYTES[random.below(BYTES.len())]))
            };
            for starts_word in [false, true] {
                let (reference, chunk) =
                    (word_chunk_swar(v, starts_word), word_chunk(v, starts_word));
                assert_eq!(
                    (chunk.key, chunk.written, chunk.taken),
                    (reference.key, reference.written, reference.taken),
                    "{v:#018x} {starts_word}"
                );
                // A word never starts with an apostrophe.
                if starts_word && v as u8 == b'\'' {
                    assert_eq!(chunk.taken, 0, "{v:#018x}");
                }
            }
        }
    }

    #[test]
    fn overlong_words_have_no_key() {
        let long = "a".repeat(40) + "b".repeat(40).as_str();
        assert_eq!(render(&long), ["aabb+elong"]);
        let varied: String = "abcdefghij".repeat(5);
        assert_eq!(render(&varied), ["<long>"]);
    }

    #[test]
    fn singled_cuts_only_elongated_runs() {
        for (text, expected) in [("sooo", "so"), ("happyyy", "happy"), ("gooood", "god")] {
            let mut tokenizer = Tokenizer::new(text);
            let mut key = KeyBuf::new();
            tokenizer.next_token(&mut key);
            let mut single = KeyBuf::new();
            key.singled(&mut single);
            assert_eq!(single.get(), Some(expected.as_bytes()), "{text}");
        }
    }
}
