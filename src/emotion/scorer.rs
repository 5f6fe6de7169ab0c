//! The scoring pass: one walk over the text, adding each known token's seven weights (scaled by
//! negation, emphasis and contrast) to the label intercepts, then a softmax.
//!
//! The walk dispatches on a byte class table. A word starts a run of words, read one after the
//! other while single spaces or clause punctuation separate them ([`read_word_start`] and the
//! readers of longer words;
//! one lexicon probe each, the rules' word tests precomputed in the entry, and one test of those
//! for the common plain word). Blanks, `!`/`?` runs, clause punctuation and emoticons are handled
//! in the loop itself; anything else (hashtags, elongated or over-long words, emoji, other
//! non-ASCII text) goes to the general [`Tokenizer`], which reads one token there and hands
//! control back.

use super::key_flags::{self, BUT, ENDS_IN_NT, HAS_TRIPLE, NEVER, SO_OR_THIS};
use super::lexicon::{self, Entry};
use super::tokenizer::{
    read_emoticon, read_long_word, read_two_chunk_word, read_word_start, ByteClass, KeyBuf,
    PlainWord, Token, Tokenizer, WordShape, WordStart,
};
use super::{softmax, Emotion, Scores};

/// Words after a negator that it flips (VADER checks the three preceding words).
const NEGATION_SCOPE: u8 = 3;
/// Emphasis that "never so" gives the next word (VADER multiplies by 1.25 to 1.5).
const NEVER_SO_BOOST: f32 = 0.25;
/// Extra `!` or `?` beyond the first that still add emphasis (VADER caps `!` at four).
const MAX_EXTRA_PUNCT: u32 = 3;

/// The scorer's global knobs. [`Params::default`] holds the values tuned on the GoEmotions and
/// MELD dev sets (see `docs/EMOTION.md`); the lexicon itself is fixed at build time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// Added to each label's logit, in [`Emotion::ALL`] order: trades precision for recall per
    /// label so that rare labels (disgust, fear) still get predicted.
    pub label_offsets: [f32; 7],
    /// Multiplies a negated word's weights ("not happy"); VADER's N_SCALAR. The lexicon was fitted
    /// with the same value, so changing it alone is rarely useful.
    pub negation_scale: f32,
    /// Multiplies VADER's degree-adverb scalars (±0.293) before they scale the next known word.
    pub booster_gain: f32,
    /// Extra weight of an ALL-CAPS word in a message that is not all caps (VADER's C_INCR 0.733).
    pub caps_boost: f32,
    /// Extra weight of an elongated word ("sooo").
    pub elongation_boost: f32,
    /// Extra weight of a word in a hashtag.
    pub hashtag_boost: f32,
    /// Extra share of the `!` weights per additional `!` in a run.
    pub exclaim_gain: f32,
    /// Extra share of the `?` weights per additional `?` in a run.
    pub question_gain: f32,
    /// Weight kept by everything before a "but" (VADER: 0.5).
    pub contrast_before: f32,
    /// Weight of everything after a "but" (VADER: 1.5).
    pub contrast_after: f32,
    /// Multiplies emoji weights.
    pub emoji_gain: f32,
    /// Multiplies emoticon weights.
    pub emoticon_gain: f32,
}

impl Params {
    pub const TUNED: Params = Params {
        label_offsets: [0.4, -0.2, 0.1, -0.7, 0.1, 0.0, 0.0],
        negation_scale: -0.74,
        booster_gain: 1.0,
        caps_boost: 0.733,
        elongation_boost: 0.15,
        hashtag_boost: 0.3,
        exclaim_gain: 0.292,
        question_gain: 1.0,
        contrast_before: 0.75,
        contrast_after: 1.0,
        emoji_gain: 1.0,
        emoticon_gain: 1.0,
    };
}

impl Default for Params {
    fn default() -> Self {
        Params::TUNED
    }
}

/// Scores text for emotion. Cheap to construct and `Copy`: all tables are static.
#[derive(Clone, Copy, Debug)]
pub struct Scorer {
    params: Params,
    /// The lexicon's label intercepts plus `params.label_offsets`, added to every text's logits:
    /// summed once here rather than per call, which also spares each call a read of the
    /// lexicon's intercept table. Then -infinity, added to the spare lane of [`Pass::logits`]:
    /// the sum is the softmax's padding lane (see [`softmax::shares`]), with no lane to insert.
    intercepts: [f32; 8],
}

impl Default for Scorer {
    fn default() -> Self {
        Scorer::new()
    }
}

/// Each label's lexicon intercept plus its offset in `params`, and -infinity (see
/// [`Scorer::intercepts`](Scorer)).
const fn intercepts(params: &Params) -> [f32; 8] {
    let bias = lexicon::bias();
    let mut intercepts = [f32::NEG_INFINITY; 8];
    let mut i = 0;
    while i < bias.len() {
        intercepts[i] = bias[i] + params.label_offsets[i];
        i += 1;
    }
    intercepts
}

/// What has been read so far of one message. `Copy`, so that the rare calls out of the scoring
/// loop take and give it back by value: the loop then keeps it in registers, where a reference
/// would pin it to the stack, a load and a store per word.
#[derive(Clone, Copy)]
struct Pass {
    /// The seven label logits, and a spare lane that takes the booster column of the entries'
    /// weights, so that adding them is two four-lane vector operations; it is never read.
    logits: [f32; 8],
    /// Words left in the current negation scope.
    negation_left: u8,
    /// The scope was opened by "never", which "so"/"this" turn into emphasis ("never so happy").
    negated_by_never: bool,
    /// Sum of degree-adverb scalars waiting for the next known word.
    pending_boost: f32,
    /// Weight of the current clause (raised after "but").
    clause_weight: f32,
    /// Whether the message has any lowercase letter: ALL-CAPS only emphasises in mixed case.
    /// Found out at the first known ALL-CAPS word, as most messages have none.
    mixed_case: Option<bool>,
    /// No boost pending, no negation scope open and a clause weight of 1: a plain known word
    /// written plainly then adds its weights as they are, without the arithmetic of a scale
    /// that could only come out at exactly 1 (and multiplying by 1 changes no `f32`). Set again
    /// wherever a word's rules may have changed those three ([`Pass::settle`]); where one of
    /// them is only reset (clause punctuation), it may stay clear until the next word settles
    /// it, which costs that word the arithmetic and changes nothing.
    unit_scale: bool,
}

impl Pass {
    /// The state before the first token of a text.
    fn new() -> Pass {
        Pass {
            logits: [0.0; 8],
            negation_left: 0,
            negated_by_never: false,
            pending_boost: 0.0,
            clause_weight: 1.0,
            mixed_case: None,
            unit_scale: true,
        }
    }

    /// Works out [`Pass::unit_scale`] again.
    #[inline(always)]
    fn settle(&mut self) {
        self.unit_scale =
            self.negation_left == 0 && self.pending_boost == 0.0 && self.clause_weight == 1.0;
    }

    /// Adds `weights` unscaled, as [`Pass::add`] does with a scale and clause weight of 1.
    #[inline(always)]
    fn add_unscaled(&mut self, weights: &[f32; 8]) {
        debug_assert!(self.unit_scale && self.clause_weight == 1.0);
        for (logit, weight) in self.logits.iter_mut().zip(weights) {
            *logit += weight;
        }
    }

    /// Whether `text`, the message being read, has any lowercase letter.
    #[inline(always)]
    fn mixed_case(&mut self, text: &str) -> bool {
        *self.mixed_case.get_or_insert_with(|| has_lowercase(text))
    }

    #[inline(always)]
    fn add(&mut self, weights: &[f32; 8], scale: f32) {
        let scale = scale * self.clause_weight;
        for (logit, weight) in self.logits.iter_mut().zip(weights) {
            *logit += weight * scale;
        }
    }
}

/// Where the next word of a run may start after a word that ended at `end`, before the byte
/// `next` (zero at the end of the text, or where [`Scorer::words`] must not look past): after
/// a space, and after clause punctuation and the space that usually follows it, which ends the
/// negation scope and the pending boost here as the dispatch would. No emoticon can start
/// there, as one must stand apart from words. `None` for the dispatch to go on at `end`.
#[inline(always)]
fn after_word(pass: &mut Pass, bytes: &[u8], end: usize, next: u8) -> Option<usize> {
    if next == b' ' {
        return Some(end + 1);
    }
    if ByteClass::of(next) != ByteClass::ClauseBreak {
        return None;
    }
    pass.negation_left = 0;
    pass.pending_boost = 0.0;
    let after = end + 1;
    Some(if bytes.get(after) == Some(&b' ') {
        after + 1
    } else {
        after
    })
}

/// What was read (the lanes of [`Pass::logits`]) plus the intercepts: the seven label logits
/// and the softmax's padding lane, -infinity (the spare lane is finite).
#[inline(always)]
fn with_intercepts(read: [f32; 8], intercepts: &[f32; 8]) -> [f32; 8] {
    let mut lanes = read;
    for (lane, intercept) in lanes.iter_mut().zip(intercepts) {
        *lane += intercept;
    }
    lanes
}

/// The seven label logits of [`with_intercepts`]' lanes.
fn label_logits(lanes: [f32; 8]) -> [f32; 7] {
    let [a, b, c, d, e, f, g, _padding] = lanes;
    [a, b, c, d, e, f, g]
}

#[cold]
#[inline(never)]
fn has_lowercase(text: &str) -> bool {
    text.bytes().any(|b| b.is_ascii_lowercase())
}

impl Scorer {
    pub const fn new() -> Self {
        Scorer::with_params(Params::TUNED)
    }

    pub const fn with_params(params: Params) -> Self {
        Scorer {
            params,
            intercepts: intercepts(&params),
        }
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The knobs, for the rules' rare paths (emphasis, negation, contrast, punctuation,
    /// emoticons), read where they are used. Through [`std::hint::black_box`], which the
    /// compiler cannot see through: otherwise it loads them all before the scoring loop, and
    /// with no register to spare it copies each to the stack first, for every text.
    #[inline(always)]
    fn rare_params(&self) -> &Params {
        std::hint::black_box(&self.params)
    }

    /// Scores `text`. Never allocates; linear in the length of `text`.
    pub fn score(&self, text: &str) -> Scores {
        Scores::from_lanes(with_intercepts(self.read(text), &self.intercepts))
    }

    /// The label logits before the softmax.
    pub fn logits(&self, text: &str) -> [f32; 7] {
        label_logits(with_intercepts(self.read(text), &self.intercepts))
    }

    /// What the tokens of `text` add to the logits, and the spare lane (see [`Pass::logits`]).
    /// Returned whole from a function of its own so that the compiler keeps all eight lanes
    /// live through the loop, as two vector registers: knowing the spare lane unread, it split
    /// them into odd pieces that cost more instructions per word.
    #[inline(never)]
    fn read(&self, text: &str) -> [f32; 8] {
        let mut pass = Pass::new();
        let bytes = text.as_bytes();
        let mut pos = 0;
        while let Some(&byte) = bytes.get(pos) {
            match ByteClass::of(byte) {
                ByteClass::Blank => pos += 1,
                // A word right after '#' is a hashtag: the general reader's.
                ByteClass::Word if pos == 0 || bytes[pos - 1] != b'#' => {
                    pos = self.words(&mut pass, text, pos);
                }
                ByteClass::PunctRun => {
                    let (mut exclaims, mut questions) = (0u32, 0u32);
                    while let Some(&byte) = bytes.get(pos) {
                        match byte {
                            b'!' => exclaims = exclaims.saturating_add(1),
                            b'?' => questions = questions.saturating_add(1),
                            _ => break,
                        }
                        pos += 1;
                    }
                    self.punct_run(&mut pass, exclaims, questions);
                }
                class @ (ByteClass::ClauseBreak | ByteClass::Punct) => {
                    if let Some((entry, end)) = read_emoticon(bytes, pos) {
                        pass.add(&entry.weights(), self.rare_params().emoticon_gain);
                        pos = end;
                    } else {
                        pos += 1;
                        if class == ByteClass::ClauseBreak {
                            pass.negation_left = 0;
                            pass.pending_boost = 0.0;
                        }
                    }
                }
                _ => pos = self.general_token(&mut pass, text, pos),
            }
        }
        pass.logits
    }

    /// Reads and weighs the word at `pos` (a word byte, not after a `#`), and the words after it
    /// as long as single spaces or clause punctuation separate them (see [`after_word`]): a
    /// sentence is mostly that, and the next word needs no dispatch nor hashtag check. Returns
    /// where the text continues.
    #[inline(always)]
    fn words(&self, pass: &mut Pass, text: &str, mut pos: usize) -> usize {
        let bytes = text.as_bytes();
        loop {
            let word = match read_word_start(bytes, pos) {
                // After a space: the dispatch's.
                WordStart::None => return pos,
                WordStart::Short(word) => {
                    let entry = lexicon::lookup_short_word(word.key);
                    let unknown_flags = || word.unknown_key_flags();
                    if !self.read_word(pass, text, entry, unknown_flags, || word.shape()) {
                        return self.general_token(pass, text, pos);
                    }
                    // The common case, on its own path rather than through the joins below.
                    match after_word(pass, bytes, word.end, word.next) {
                        Some(next_word) => pos = next_word,
                        None => return word.end,
                    }
                    continue;
                }
                WordStart::Longer(first) => match read_two_chunk_word(bytes, pos, first) {
                    Some(word) => word,
                    None => {
                        let (read, end, next) = self.long_word(*pass, text, pos);
                        *pass = read;
                        match after_word(pass, bytes, end, next) {
                            Some(next_word) => pos = next_word,
                            None => return end,
                        }
                        continue;
                    }
                },
            };
            // A word of eight to sixteen bytes (one in ten): in the loop too, with a probe of
            // its own.
            let entry = lexicon::lookup_two_words(word.key[0], word.key[1], word.len);
            let unknown_flags = || word.unknown_key_flags();
            if !self.read_word(pass, text, entry, unknown_flags, || word.shape()) {
                return self.general_token(pass, text, pos);
            }
            match after_word(pass, bytes, word.end, word.next) {
                Some(next_word) => pos = next_word,
                None => return word.end,
            }
        }
    }

    /// The word at `pos` that neither [`read_word_start`] nor [`read_two_chunk_word`] finished
    /// (over sixteen bytes, or with an apostrophe where a chunk ends or a curly one): weighs it
    /// and returns the pass, where the text continues and the byte there (zero if the general
    /// reader took over, which [`Scorer::words`] then must not look past). Out of the loop,
    /// with the pass by value, and cold: the loop's registers are saved for this call only when
    /// it is made.
    #[cold]
    #[inline(never)]
    fn long_word(&self, mut pass: Pass, text: &str, pos: usize) -> (Pass, usize, u8) {
        let bytes = text.as_bytes();
        match read_long_word(bytes, pos).and_then(|word| self.plain_word(&mut pass, text, &word)) {
            Some(end) => (pass, end, bytes.get(end).copied().unwrap_or_default()),
            // Elongated or over-long: the general reader's.
            None => {
                let end = self.general_token_by_ref(&mut pass, text, pos);
                (pass, end, 0)
            }
        }
    }

    /// Reads and weighs the next token at or after `pos` with the general [`Tokenizer`] (and the
    /// rest of a hashtag split at case changes); returns where the text continues.
    #[inline(always)]
    fn general_token(&self, pass: &mut Pass, text: &str, pos: usize) -> usize {
        let (read, pos) = self.general_token_out_of_line(*pass, text, pos);
        *pass = read;
        pos
    }

    /// [`Scorer::general_token`], out of the scoring loop, with the pass by value. Cold: chat
    /// is mostly plain words, and the loop's registers should be saved for this call only when
    /// it is made.
    #[cold]
    #[inline(never)]
    fn general_token_out_of_line(&self, mut pass: Pass, text: &str, pos: usize) -> (Pass, usize) {
        let pos = self.general_token_by_ref(&mut pass, text, pos);
        (pass, pos)
    }

    fn general_token_by_ref(&self, pass: &mut Pass, text: &str, pos: usize) -> usize {
        let p = &self.params;
        let (key, spare) = (&mut KeyBuf::new(), &mut KeyBuf::new());
        let mut tokenizer = Tokenizer::at(text, pos);
        loop {
            let Some(token) = tokenizer.next_token(key) else {
                return text.len();
            };
            match token {
                Token::Word(shape) => {
                    let entry = if shape.elongated() {
                        elongated_entry(key, spare)
                    } else {
                        key.entry()
                    };
                    let flags = key_flags::key_flags(key.get().unwrap_or_default());
                    self.word(pass, text, entry, flags, || shape);
                }
                Token::Punct {
                    exclaims,
                    questions,
                } => self.punct_run(pass, exclaims, questions),
                Token::ClauseBreak => {
                    pass.negation_left = 0;
                    pass.pending_boost = 0.0;
                }
                Token::Emoji { first_len } => {
                    let whole = key.entry();
                    let first = || {
                        key.get()
                            .and_then(|k| k.get(..first_len))
                            .and_then(lexicon::lookup)
                    };
                    if let Some(entry) = whole.or_else(first) {
                        pass.add(&entry.weights(), p.emoji_gain);
                    }
                }
                Token::Emoticon(entry) => pass.add(&entry.weights(), p.emoticon_gain),
            }
            if !tokenizer.hashtag_continues() {
                return tokenizer.pos();
            }
        }
    }

    /// A word read by [`read_long_word`]: weighs it and returns where
    /// the text continues, or `None` if it is elongated (the general reader collapses the run).
    #[inline(always)]
    fn plain_word(&self, pass: &mut Pass, text: &str, word: &PlainWord) -> Option<usize> {
        let entry = lexicon::lookup_words(&word.words, word.len);
        let unknown_flags = || word.unknown_key_flags();
        self.read_word(pass, text, entry, unknown_flags, || word.shape)
            .then_some(word.end)
    }

    /// Weighs a word the fast readers read, given its lexicon entry (if known): a plain known
    /// word with one test, any other through [`Scorer::word`] with its key's flags
    /// (`unknown_flags` when it is not in the lexicon). `false`, with nothing weighed, when the
    /// word is elongated: the general reader collapses the run.
    #[inline(always)]
    fn read_word(
        &self,
        pass: &mut Pass,
        text: &str,
        entry: Option<&'static Entry>,
        unknown_flags: impl FnOnce() -> u8,
        shape: impl Fn() -> WordShape,
    ) -> bool {
        if let Some(entry) = entry.filter(|entry| entry.is_plain()) {
            self.plain_known_word(pass, text, entry, shape);
            return true;
        }
        let flags = entry.map_or_else(unknown_flags, Entry::key_flags);
        if flags & HAS_TRIPLE != 0 {
            return false;
        }
        self.word(pass, text, entry, flags, shape);
        true
    }

    /// [`Scorer::word`] for a known word that is [plain](Entry::is_plain), as most are: what it
    /// does with the rules' tests all answered by one.
    #[inline(always)]
    fn plain_known_word(
        &self,
        pass: &mut Pass,
        text: &str,
        entry: &Entry,
        shape: impl Fn() -> WordShape,
    ) {
        // (The shape first: the same test, but the loop's code came out seven instructions a
        // message shorter in this order, as callgrind counts them.)
        if shape() == WordShape::default() && pass.unit_scale {
            // (The pending boost is zero already.)
            pass.add_unscaled(&entry.plain_weights());
            return;
        }
        let scale = self.emphasis(pass, text, shape);
        pass.add(&entry.plain_weights(), scale);
        pass.pending_boost = 0.0;
        pass.settle();
    }

    /// A run of `exclaims` `!` and `questions` `?`.
    fn punct_run(&self, pass: &mut Pass, exclaims: u32, questions: u32) {
        let p = self.rare_params();
        pass.negation_left = 0;
        pass.pending_boost = 0.0;
        for (count, entry, gain) in [
            (exclaims, lexicon::exclaim(), p.exclaim_gain),
            (questions, lexicon::question(), p.question_gain),
        ] {
            if count == 0 {
                continue;
            }
            let extra = (count - 1).min(MAX_EXTRA_PUNCT) as f32;
            pass.add(&entry.weights(), 1.0 + gain * extra);
        }
    }

    /// How much a known word of `text` counts, written as `shape` says, where the pass stands:
    /// the pending boost, emphasis, and negation, which this word uses up a word of.
    #[inline(always)]
    fn emphasis(&self, pass: &mut Pass, text: &str, shape: impl Fn() -> WordShape) -> f32 {
        let mut scale = 1.0 + pass.pending_boost;
        if shape().all_caps() && pass.mixed_case(text) {
            scale += self.rare_params().caps_boost;
        }
        if shape().elongated() {
            scale += self.rare_params().elongation_boost;
        }
        if shape().hashtag() {
            scale += self.rare_params().hashtag_boost;
        }
        if pass.negation_left > 0 {
            pass.negation_left -= 1;
            scale *= self.rare_params().negation_scale;
        }
        scale
    }

    /// A word of `text`: its lexicon entry (if known), the [`key_flags`] of its key and how it
    /// was written, which only a known word asks.
    #[inline(always)]
    fn word(
        &self,
        pass: &mut Pass,
        text: &str,
        entry: Option<&'static Entry>,
        flags: u8,
        shape: impl Fn() -> WordShape,
    ) {
        let Some(entry) = entry else {
            pass.negation_left = pass.negation_left.saturating_sub(1);
            if flags & ENDS_IN_NT != 0 {
                pass.negation_left = NEGATION_SCOPE;
                pass.negated_by_never = false;
            }
            pass.settle();
            return;
        };
        if flags & (SO_OR_THIS | BUT) != 0 {
            if flags & SO_OR_THIS != 0 && pass.negation_left > 0 && pass.negated_by_never {
                // VADER: "never so/this <word>" intensifies rather than negates.
                pass.negation_left = 0;
                pass.pending_boost += NEVER_SO_BOOST;
            }
            if flags & BUT != 0 {
                // Contrast: the clause after "but" carries the message ("good, but sad").
                for logit in pass.logits.iter_mut() {
                    *logit *= self.rare_params().contrast_before;
                }
                pass.clause_weight = self.rare_params().contrast_after;
                pass.negation_left = 0;
            }
        }
        let scale = self.emphasis(pass, text, &shape);
        pass.add(&entry.weights(), scale);
        pass.pending_boost = if entry.is_booster() {
            let drawn_out = if shape().elongated() {
                1.0 + self.rare_params().elongation_boost
            } else {
                1.0
            };
            // (The weights' BOOSTER lane.)
            entry.booster() * self.rare_params().booster_gain * drawn_out
        } else {
            0.0
        };
        if entry.is_negator() || flags & ENDS_IN_NT != 0 {
            pass.negation_left = NEGATION_SCOPE;
            pass.negated_by_never = flags & NEVER != 0;
        }
        pass.settle();
    }
}

/// The entry for an elongated word. Degree adverbs are what chat draws out most ("sooo",
/// "reallyyy"), so a booster under the one-letter form wins; otherwise the two-letter form the
/// lexicon was trained on ("goooood" -> "good"), then the one-letter form ("happyyy" -> "happy").
fn elongated_entry(key: &KeyBuf, spare: &mut KeyBuf) -> Option<&'static lexicon::Entry> {
    key.singled(spare);
    let singled = spare.get().and_then(lexicon::lookup);
    if let Some(entry) = singled.filter(|e| e.is_booster()) {
        return Some(entry);
    }
    key.entry().or(singled)
}

impl Scores {
    /// Softmax of the seven label logits and the padding lane of [`with_intercepts`]
    /// ([`softmax::shares`]); a non-finite logit (impossible with finite weights) falls back to
    /// all-neutral so that callers always get a distribution.
    #[inline(always)]
    fn from_lanes(lanes: [f32; 8]) -> Scores {
        match softmax::shares(&lanes) {
            Some(shares) => Scores {
                values: label_logits(shares),
            },
            None => {
                let mut neutral = [0.0; 7];
                neutral[Emotion::Neutral.index()] = 1.0;
                Scores { values: neutral }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Emotion::*;

    fn score(text: &str) -> Scores {
        Scorer::new().score(text)
    }

    fn p(text: &str, emotion: Emotion) -> f32 {
        score(text).get(emotion)
    }

    fn assert_distribution(scores: &Scores) {
        let sum: f32 = scores.as_array().iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "sum {sum}");
        assert!(scores.as_array().iter().all(|v| v.is_finite() && *v >= 0.0));
    }

    #[test]
    fn text_without_evidence_is_neutral() {
        for text in [
            "",
            "   ",
            "the",
            "12345",
            "qwxzyv blorf",
            "\u{200d}\u{fe0f}",
        ] {
            let scores = score(text);
            assert_distribution(&scores);
            assert_eq!(scores.dominant(), Neutral, "{text:?}");
        }
    }

    #[test]
    fn clear_messages_get_their_emotion() {
        for (text, expected) in [
            ("I love you so much, thank you!", Joy),
            ("This is disgusting, gross", Disgust),
            ("I'm so scared and afraid", Fear),
            ("I'm so sad, I miss her", Sadness),
            ("Wow, I had no idea! Really?", Surprise),
            ("Shut up, you are a stupid idiot", Anger),
            ("I will send the file tomorrow", Neutral),
            ("Where did you put the keys", Neutral),
        ] {
            assert_eq!(score(text).dominant(), expected, "{text:?}");
        }
    }

    #[test]
    fn negation_flips_the_words_after_it() {
        assert!(p("I am happy", Joy) > p("I am not happy", Joy));
        assert!(p("it is good", Joy) > p("it isn't good", Joy));
        assert!(
            p("it is good", Joy) > p("it mightn't be good", Joy),
            "any -n't negates"
        );
        // The scope ends at clause punctuation: "happy" after the comma is not negated.
        assert!(p("no, I am happy", Joy) > p("no I am not happy", Joy));
    }

    #[test]
    fn never_so_intensifies() {
        assert!(p("I have never been so scared", Fear) > p("I have never been scared", Fear));
        assert_eq!(score("I have never been so scared").dominant(), Fear);
    }

    #[test]
    fn intensifiers_and_dampeners_scale_the_next_word() {
        assert!(p("very happy", Joy) > p("happy", Joy));
        assert!(p("slightly happy", Joy) < p("happy", Joy));
    }

    #[test]
    fn elongation_emphasises() {
        assert!(p("sooo happy", Joy) > p("so happy", Joy));
        assert!(p("happyyy", Joy) > p("happy", Joy));
        assert!(
            p("happyyy", Joy) > p("hapy", Joy),
            "elongated words are still found"
        );
    }

    #[test]
    fn all_caps_emphasises_only_in_mixed_case() {
        assert!(p("I HATE this", Anger) > p("I hate this", Anger));
        assert_eq!(score("I HATE THIS"), score("i hate this"), "case folds");
    }

    #[test]
    fn exclamations_and_questions_count() {
        assert!(p("what happened?", Surprise) > p("what happened", Surprise));
        assert!(p("what happened???", Surprise) > p("what happened?", Surprise));
        assert!(p("thanks!!!", Neutral) < p("thanks", Neutral));
    }

    #[test]
    fn emoticons_carry_emotion() {
        assert!(p("ok :)", Joy) > p("ok :(", Joy));
        assert!(p("ok :(", Sadness) > p("ok :)", Sadness));
        assert_eq!(score(":'(").dominant(), Sadness);
        assert_eq!(score(">:(").dominant(), Anger);
        assert_eq!(score("see you tomorrow :D").dominant(), Joy);
    }

    #[test]
    fn emoji_carry_emotion_with_modifiers_and_zwj() {
        for (emoji, expected) in [
            ("😂", Joy),
            ("😡", Anger),
            ("😢", Sadness),
            ("😱", Fear),
            ("🤢", Disgust),
        ] {
            assert_eq!(score(emoji).dominant(), expected, "{emoji}");
        }
        assert_eq!(score("👍🏽"), score("👍"), "skin tones do not matter");
        assert_eq!(score("❤️"), score("❤"), "variation selectors do not matter");
        assert_ne!(score("👍"), score(""));
        // An unknown ZWJ sequence falls back to its first emoji.
        assert_eq!(score("😢\u{200d}🫠\u{200d}🫠"), score("😢"));
    }

    #[test]
    fn but_weighs_the_second_clause() {
        let with_but = "the food was great but the service made me sad";
        let with_and = "the food was great and the service made me sad";
        assert!(p(with_but, Sadness) > p(with_and, Sadness));
        assert!(p(with_but, Joy) < p(with_and, Joy));
    }

    #[test]
    fn hashtags_are_read_and_emphasised() {
        assert!(p("#happy", Joy) > p("happy", Joy));
        assert_eq!(score("#SoHappy").dominant(), Joy);
    }

    #[test]
    fn contractions_and_curly_apostrophes_match() {
        assert_eq!(
            score("I don’t like it, I’m sad"),
            score("I don't like it, I'm sad")
        );
        assert!(p("I like it", Joy) > p("I don't like it", Joy));
    }

    #[test]
    fn hostile_inputs_return_distributions() {
        let inputs = [
            "a".repeat(100_000),
            "😂".repeat(30_000),
            "\u{200d}".repeat(30_000),
            "👩\u{200d}".repeat(20_000),
            "🏽".repeat(20_000),
            "!?".repeat(50_000),
            ":".repeat(100_000),
            "n't ".repeat(20_000),
            "not ".repeat(25_000),
            "very ".repeat(20_000) + "happy",
            "but ".repeat(25_000),
            "\u{0}\u{feff}\u{10ffff}".to_owned(),
        ];
        for text in &inputs {
            assert_distribution(&score(text));
        }
    }

    /// [`Scorer::logits`] with every token read by the general [`Tokenizer`]: the reference the
    /// fast paths of the scoring loop must agree with bit for bit.
    fn logits_of_general_reader(scorer: &Scorer, text: &str) -> [f32; 7] {
        let mut pass = Pass::new();
        let mut pos = 0;
        while pos < text.len() {
            pos = scorer.general_token(&mut pass, text, pos);
        }
        label_logits(with_intercepts(pass.logits, &scorer.intercepts))
    }

    #[test]
    fn fast_paths_agree_with_the_general_reader() {
        const FRAGMENTS: [&str; 48] = [
            "I",
            "can't",
            "CAN'T",
            "Can’t",
            "don’t",
            "mightn't",
            "sooo",
            "goooood",
            "HAPPYYY",
            "#SoHappy",
            "#blessed",
            ":)",
            ":-(",
            ">:(",
            ":'(",
            "10:30",
            "lol:)",
            "7/10",
            "!!",
            "?!?",
            "😂",
            "👍🏽",
            "👨\u{200d}💻",
            "ça",
            "rock'n'roll",
            "abcdefgh",
            "abcdefghi",
            "abcdefghijklmnop",
            "abcdefghijklmnopq",
            "disappointed",
            "HONESTLY",
            "not",
            "never",
            "so",
            "this",
            "but",
            "very",
            "slightly",
            "a'",
            "'quote'",
            "x9Y",
            "grrr",
            "zzz",
            "aab",
            "THOUGHTS",
            "I’M",
            "abcdefg'hij",
            "abcdefgh'ij",
        ];
        const SEPARATORS: [&str; 8] = [" ", " ", "  ", ", ", ". ", "", "#", "\t"];
        let scorer = Scorer::new();
        // A fixed, repeatable sequence of texts.
        let mut random = crate::test_random::XorShift(0x2545_f491_4f6c_dd1d);
        let mut next = |bound: usize| random.below(bound);
        let mut text = String::new();
        for _ in 0..20_000 {
            text.clear();
            for _ in 0..1 + next(12) {
                text.push_str(FRAGMENTS[next(FRAGMENTS.len())]);
                text.push_str(SEPARATORS[next(SEPARATORS.len())]);
            }
            let fast = scorer.logits(&text).map(f32::to_bits);
            let general = logits_of_general_reader(&scorer, &text).map(f32::to_bits);
            assert_eq!(fast, general, "{text:?}");
        }
    }

    #[test]
    fn params_change_the_outcome() {
        let mut params = Params::TUNED;
        params.label_offsets[Emotion::Fear.index()] += 50.0;
        let scores = Scorer::with_params(params).score("hello there");
        assert_eq!(scores.dominant(), Fear);
        assert_eq!(Scorer::new().params(), &Params::default());
    }
}
