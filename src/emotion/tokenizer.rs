//! Splits a message into the tokens the scorer weighs, without allocating: words (ASCII-lowercased,
//! internal apostrophes kept, letters repeated three or more times collapsed to two), `!`/`?` runs,
//! clause punctuation, emoticons and emoji clusters.
//!
//! `scripts/lexicon/derive.py` tokenises the training text the same way; keep the two in step.

use super::key_hash::{key_hash_finish, key_hash_step};
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
    /// The key as zero-padded little-endian words, when the fast word reader built them in
    /// registers (`words_ready`). Reading them back from `bytes` right after byte-wise stores
    /// would stall on store forwarding.
    words: [u64; MAX_KEY_BYTES / 8],
    words_ready: bool,
}

impl KeyBuf {
    pub(crate) fn new() -> Self {
        KeyBuf {
            bytes: [0; MAX_KEY_BYTES],
            len: 0,
            elongated_at: 0,
            words: [0; MAX_KEY_BYTES / 8],
            words_ready: false,
        }
    }

    fn clear(&mut self) {
        self.len = 0;
        self.elongated_at = 0;
        self.words_ready = false;
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

    /// Sets the key to the `len` (at most 8) bytes of `word`, little-endian, zero beyond `len`.
    #[inline(always)]
    fn set_short(&mut self, word: u64, len: usize) {
        self.bytes[..8].copy_from_slice(&word.to_le_bytes());
        self.len = len;
        self.elongated_at = 0;
        self.words[0] = word;
        self.words_ready = true;
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

    /// The lexicon entry for the key, if any, hashed eight bytes at a time with the same result
    /// as [`super::key_hash::key_hash`].
    #[inline]
    pub(crate) fn entry(&self) -> Option<&'static Entry> {
        let key = self.get()?;
        let len = key.len();
        if !self.words_ready {
            return lexicon::lookup(key);
        }
        let mut hash = len as u64;
        for &word in self.words.iter().take(len.div_ceil(8)) {
            hash = key_hash_step(hash, word);
        }
        lexicon::lookup_hashed(key, key_hash_finish(hash), self.words[0])
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
    pub(crate) fn new(text: &'a str) -> Self {
        Tokenizer {
            text,
            pos: 0,
            hashtag_continues: false,
        }
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
    // Inlined into the scorer's loop so that the token stays in registers: returned through
    // memory, its fields are stored byte by byte and reloaded wider, stalling store forwarding.
    #[inline(always)]
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

    #[inline(always)]
    fn word(&mut self, key: &mut KeyBuf) -> Token {
        let hashtag =
            self.hashtag_continues || (self.pos > 0 && self.text.as_bytes()[self.pos - 1] == b'#');
        if !hashtag {
            if let Some(token) = self.short_word(key) {
                return token;
            }
            if let Some(token) = self.plain_word(key) {
                return token;
            }
        }
        self.word_bytewise(key)
    }

    /// The most common case without a loop: a word of at most seven ASCII letters or digits,
    /// followed by something other than an apostrophe, with at least eight bytes of text left, and
    /// no letter three times in a row. All eight bytes are classified at once with SWAR
    /// arithmetic on one `u64`. Returns `None` (and consumes nothing) for any other word.
    #[inline(always)]
    fn short_word(&mut self, key: &mut KeyBuf) -> Option<Token> {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let bytes = self.text.as_bytes();
        let chunk: [u8; 8] = bytes.get(self.pos..self.pos + 8)?.try_into().ok()?;
        let v = u64::from_le_bytes(chunk);
        let low7 = v & !HIGH;
        let ascii = !v & HIGH;
        // High bit of each byte set iff the byte lies in `lo..=hi` (bytes below 0x80; the sums
        // cannot carry into the next byte).
        let in_range = |lo: u8, hi: u8| {
            let at_least_lo = low7.wrapping_add(ONES * u64::from(0x80 - lo)) & HIGH;
            let above_hi = low7.wrapping_add(ONES * u64::from(0x7f - hi)) & HIGH;
            at_least_lo & !above_hi & ascii
        };
        let upper = in_range(b'A', b'Z');
        let lower = in_range(b'a', b'z');
        let word_bytes = upper | lower | in_range(b'0', b'9');
        let len = ((!word_bytes & HIGH).trailing_zeros() / 8) as usize;
        if len >= 8 || matches!(chunk[len], b'\'' | 0xE2) {
            return None;
        }
        let keep = (1u64 << (8 * len)) - 1;
        // Upper-case letters get bit 5 set: 0x80 >> 2.
        let word = (v | (upper >> 2)) & keep;
        // Zero bytes of `word ^ (word << 8)` mark a byte equal to the one before it; two in a row
        // mark a triple. (Exact zero-byte test: no borrow between bytes.)
        let diff = word ^ (word << 8);
        let zero = !(((diff & !HIGH) + !HIGH) | diff) & HIGH & (keep << 8) & keep;
        if zero & (zero << 8) != 0 {
            return None;
        }
        let uppers = (upper & keep).count_ones();
        let any_lower = lower & keep != 0;
        key.set_short(word, len);
        self.pos += len;
        Some(Token::Word(WordShape::new(
            false,
            uppers >= 2 && !any_lower,
            false,
        )))
    }

    /// The common case, in one tight pass: a word that is no hashtag, fits the key buffer and
    /// has no letter three times in a row. Returns `None` (and consumes nothing) otherwise.
    #[inline(always)]
    fn plain_word(&mut self, key: &mut KeyBuf) -> Option<Token> {
        let bytes = self.text.as_bytes();
        let mut pos = self.pos;
        let mut len = 0usize;
        let mut uppers = 0u32;
        let mut any_lower = false;
        // The key's words are assembled in a register as the bytes go by (see `KeyBuf::words`).
        let mut words = [0u64; MAX_KEY_BYTES / 8];
        let mut word = 0u64;
        while let Some(&byte) = bytes.get(pos) {
            let lowered = if byte.is_ascii_alphanumeric() {
                let upper = byte.is_ascii_uppercase();
                uppers += u32::from(upper);
                any_lower |= byte.is_ascii_lowercase();
                pos += 1;
                byte | (u8::from(upper) << 5)
            } else if let Some(apostrophe_len) = self.inner_apostrophe_len(pos) {
                pos += apostrophe_len;
                b'\''
            } else {
                break;
            };
            *key.bytes.get_mut(len)? = lowered;
            word |= u64::from(lowered) << (8 * (len % 8));
            len += 1;
            if len.is_multiple_of(8) {
                words[len / 8 - 1] = word;
                word = 0;
            }
        }
        if let Some(last) = words.get_mut(len / 8) {
            *last = word;
        }
        // Checked once over the finished key: cheaper than tracking runs byte by byte.
        if key.bytes[..len]
            .windows(3)
            .any(|w| w[0] == w[1] && w[1] == w[2])
        {
            return None;
        }
        key.len = len;
        key.elongated_at = 0;
        key.words = words;
        key.words_ready = true;
        self.pos = pos;
        Some(Token::Word(WordShape::new(
            false,
            uppers >= 2 && !any_lower,
            false,
        )))
    }

    /// The general word reader, one byte at a time: collapses elongation as it goes (so a word
    /// of 100 KB of one letter still gets a key) and splits hashtags at case changes.
    fn word_bytewise(&mut self, key: &mut KeyBuf) -> Token {
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

    /// The longest lexicon emoticon starting here, if it stands apart from words on its left
    /// ("lol:)" and "10:30" are not emoticons) and is not glued to a word on its right.
    fn emoticon(&mut self) -> Option<&'static Entry> {
        let bytes = self.text.as_bytes();
        if self.pos > 0 && bytes[self.pos - 1].is_ascii_alphanumeric() {
            return None;
        }
        let run = bytes[self.pos..]
            .iter()
            .take(MAX_EMOTICON_BYTES)
            .take_while(|b| b.is_ascii_graphic())
            .count();
        for len in (2..=run).rev() {
            let end = self.pos + len;
            let glued = bytes.get(end).is_some_and(u8::is_ascii_alphanumeric)
                && bytes[end - 1].is_ascii_alphanumeric();
            if glued {
                continue;
            }
            if let Some(entry) = lexicon::lookup(&bytes[self.pos..end]) {
                self.pos = end;
                return Some(entry);
            }
        }
        None
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

#[cfg(test)]
mod tests {
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
        ];
        let mut compared = 0;
        for text in texts {
            let padded = format!("{text}        ");
            let (mut fast, mut slow) = (KeyBuf::new(), KeyBuf::new());
            let mut fast_reader = Tokenizer::new(&padded);
            let mut slow_reader = Tokenizer::new(&padded);
            let fast_token = fast_reader
                .short_word(&mut fast)
                .or_else(|| fast_reader.plain_word(&mut fast));
            let slow_token = slow_reader.word_bytewise(&mut slow);
            let Some(Token::Word(fast_shape)) = fast_token else {
                continue; // declined: the byte-wise reader handles it
            };
            let Token::Word(slow_shape) = slow_token else {
                panic!("{text:?}: byte-wise reader returned no word");
            };
            assert_eq!(fast.get(), slow.get(), "{text:?}");
            assert_eq!(fast_shape, slow_shape, "{text:?}");
            assert_eq!(fast_reader.pos, slow_reader.pos, "{text:?}");
            compared += 1;
            assert_eq!(
                fast.entry().map(|e| e as *const _),
                slow.get().and_then(lexicon::lookup).map(|e| e as *const _),
                "{text:?}"
            );
        }
        assert!(compared >= 15, "only {compared} words took a fast path");
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
