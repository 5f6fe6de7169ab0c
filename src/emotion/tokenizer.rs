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

    /// [`key_hash`] of the key, reading the buffer eight bytes at a time.
    #[inline]
    fn hash(&self) -> u32 {
        let len = self.len.min(MAX_KEY_BYTES);
        let mut hash = len as u64;
        for (index, chunk) in self.bytes.chunks_exact(8).enumerate() {
            let start = index * 8;
            if start >= len {
                break;
            }
            let mut word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
            let used = len - start;
            if used < 8 {
                // Bytes past the key are left over from earlier tokens; the hash pads with zeros.
                word &= (1u64 << (8 * used)) - 1;
            }
            hash = key_hash_step(hash, word);
        }
        key_hash_finish(hash)
    }

    /// The lexicon entry for the key, if any.
    #[inline]
    pub(crate) fn entry(&self) -> Option<&'static Entry> {
        self.get()
            .and_then(|key| lexicon::lookup_hashed(key, self.hash()))
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

/// How a word was written; the scorer turns these into emphasis and negation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct WordShape {
    /// A letter was repeated three or more times ("sooo").
    pub(crate) elongated: bool,
    /// At least two letters, all upper case ("HATE").
    pub(crate) all_caps: bool,
    /// Part of a `#hashtag`.
    pub(crate) hashtag: bool,
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
    pub(crate) fn next_token(&mut self, key: &mut KeyBuf) -> Option<Token> {
        let bytes = self.text.as_bytes();
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

    fn word(&mut self, key: &mut KeyBuf) -> Token {
        let hashtag =
            self.hashtag_continues || (self.pos > 0 && self.text.as_bytes()[self.pos - 1] == b'#');
        if !hashtag {
            if let Some(token) = self.plain_word(key) {
                return token;
            }
        }
        self.word_bytewise(key)
    }

    /// The common case, in one tight pass: a word that is no hashtag, fits the key buffer and
    /// has no letter three times in a row. Returns `None` (and consumes nothing) otherwise.
    fn plain_word(&mut self, key: &mut KeyBuf) -> Option<Token> {
        let bytes = self.text.as_bytes();
        let mut pos = self.pos;
        let mut len = 0usize;
        let mut uppers = 0u32;
        let mut any_lower = false;
        // Length of the run of equal bytes ending at the last one written.
        let mut repeat = 0u32;
        let mut previous = 0u8;
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
            repeat = if lowered == previous { repeat + 1 } else { 1 };
            previous = lowered;
            if repeat >= 3 {
                return None;
            }
            *key.bytes.get_mut(len)? = lowered;
            len += 1;
        }
        key.len = len;
        key.elongated_at = 0;
        self.pos = pos;
        Some(Token::Word(WordShape {
            elongated: false,
            all_caps: uppers >= 2 && !any_lower,
            hashtag: false,
        }))
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
        Token::Word(WordShape {
            elongated,
            all_caps: uppers >= 2 && !saw_lower,
            hashtag,
        })
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
                        (shape.elongated, "+elong"),
                        (shape.all_caps, "+caps"),
                        (shape.hashtag, "+tag"),
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
