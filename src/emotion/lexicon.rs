//! The compiled-in lexicon: per-token emotion weights, VADER negators and degree adverbs, looked
//! up by exact key bytes (lowercase word, emoticon, or emoji sequence without modifiers).
//!
//! The tables are generated at build time by `build/lexicon.rs` from `data/emotion/*.tsv`. Each
//! entry also carries, precomputed, everything the scorer's rules ask of a word (negator, "-n't",
//! "never", "so"/"this", "but"), so that a known word costs one probe and no byte comparison.
//!
//! In the server the tables are mostly cold when a message arrives, so the layout counts cache
//! lines: the hash table's slots are the entries themselves, key and weights in 32 bytes, two to a
//! line, so that a lookup, hit or miss, usually reads one line. The weights fit because they are
//! stored as `i16` counts of ten-thousandths (the lexicon's precision); dividing by 10,000 gives
//! back, bit for bit, the `f32` the lexicon's decimal parses to (the build checks each one).

use super::key_flags;
use super::key_hash::{key_hash, key_hash_step, key_slot, key_word};

/// One lexicon key and what it contributes, a slot of the hash table: 32 bytes aligned to 32, so
/// that a probe reads one cache line and finds the weights there too.
#[derive(Debug)]
#[repr(C, align(32))]
pub(crate) struct Entry {
    /// The key's first eight bytes as a little-endian word, zero-padded: most keys are no longer,
    /// so one integer comparison usually settles a probe without touching `KEY_BYTES`.
    key_prefix: u64,
    key_start: u32,
    /// 0 in an empty slot (no key is empty).
    key_len: u8,
    /// [`NEGATOR`], [`WIDE`] and the [`key_flags`] bits of the key.
    flags: u8,
    units: WeightUnits,
}

/// The weights added to the seven label logits, in [`super::Emotion::ALL`] order, then VADER's
/// degree-adverb scalar (2,930 boosts, -2,930 dampens the next word; 0 for other words), all as
/// counts of [`WEIGHT_UNIT`]. In a [`WIDE`] entry the seven label weights are in `WIDE_LABELS`
/// and their units here are 0.
///
/// Sixteen aligned bytes: the scorer converts all eight with a few vector instructions.
#[derive(Debug)]
#[repr(C, align(16))]
struct WeightUnits([i16; 8]);

/// [`Entry::unit_weights`] with SSE2: the sixteen bytes in one aligned load, widened to two
/// four-lane `i32` vectors (each unit in the upper half of its lane, shifted down with its sign),
/// converted exactly and divided, which gives each lane the same `f32` as a scalar division. Left
/// to itself, the compiler loaded each half on its own.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "sse2")]
#[inline]
fn unit_weights_sse2(units: &WeightUnits) -> [f32; 8] {
    use std::arch::x86_64::{
        __m128, __m128i, _mm_cvtepi32_ps, _mm_div_ps, _mm_set1_ps, _mm_srai_epi32,
        _mm_unpackhi_epi16, _mm_unpacklo_epi16,
    };
    // SAFETY: `WeightUnits` is sixteen bytes, any bit pattern is a valid `__m128i`, and the
    // two are the same size.
    let all: __m128i = unsafe { std::mem::transmute::<[i16; 8], __m128i>(units.0) };
    let low = _mm_srai_epi32::<16>(_mm_unpacklo_epi16(all, all));
    let high = _mm_srai_epi32::<16>(_mm_unpackhi_epi16(all, all));
    let unit = _mm_set1_ps(WEIGHT_UNIT);
    let weights = [
        _mm_div_ps(_mm_cvtepi32_ps(low), unit),
        _mm_div_ps(_mm_cvtepi32_ps(high), unit),
    ];
    // SAFETY: two `__m128` are eight `f32`, and any bit pattern is a valid `f32`.
    unsafe { std::mem::transmute::<[__m128; 2], [f32; 8]>(weights) }
}

/// Where the degree-adverb scalar is in [`WeightUnits`] and [`Entry::weights`].
pub(crate) const BOOSTER: usize = 7;

const _: () = assert!(std::mem::size_of::<Entry>() == 32);

/// The unit of the stored weights: the lexicon gives them to four decimals.
const WEIGHT_UNIT: f32 = 10_000.0;

/// The entry's weights do not all fit an `i16` count of units (a weight beyond ±3.2767, or a
/// negative zero) and are kept in `WIDE_LABELS`, under the key's `key_start`.
const WIDE: u8 = 1 << 7;

/// In VADER's negator list (bit 0; the [`key_flags`] bits are the others).
const NEGATOR: u8 = 1;

/// One of VADER's degree adverbs: the booster weight is not zero.
const BOOSTS: u8 = 1 << 6;

/// The flags of an entry the scorer's rules treat specially (all but [`key_flags::NEVER`], which
/// comes with [`NEGATOR`]), or whose weights are [`WIDE`].
const NOT_PLAIN: u8 = NEGATOR
    | BOOSTS
    | WIDE
    | key_flags::ENDS_IN_NT
    | key_flags::SO_OR_THIS
    | key_flags::BUT
    | key_flags::HAS_TRIPLE;

impl Entry {
    /// The slot no key occupies.
    const EMPTY: Entry = Entry {
        key_prefix: 0,
        key_start: 0,
        key_len: 0,
        flags: 0,
        units: WeightUnits([0; 8]),
    };

    /// The seven label weights, in [`super::Emotion::ALL`] order, then at [`BOOSTER`] the VADER
    /// degree-adverb scalar (+0.293 boosts, -0.293 dampens the next word; 0 otherwise).
    #[inline(always)]
    pub(crate) fn weights(&self) -> [f32; 8] {
        if self.flags & WIDE != 0 {
            return self.wide_weights();
        }
        self.unit_weights()
    }

    /// Whether the entry is a plain word for the scorer's rules: no negator, degree adverb,
    /// "-n't", "so"/"this", "but" nor run of three, and weights that are not [`WIDE`]. Most are;
    /// one test tells.
    #[inline(always)]
    pub(crate) fn is_plain(&self) -> bool {
        self.flags & NOT_PLAIN == 0
    }

    /// [`Entry::weights`] of a plain entry (see [`Entry::is_plain`]).
    #[inline(always)]
    pub(crate) fn plain_weights(&self) -> [f32; 8] {
        debug_assert!(self.flags & WIDE == 0);
        self.unit_weights()
    }

    /// The weights held as units, as `f32`: by a correctly rounded division, the nearest `f32`
    /// to each four-decimal weight, which is what parsing it gives.
    #[inline(always)]
    fn unit_weights(&self) -> [f32; 8] {
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        {
            // SAFETY: the one requirement of `unit_weights_sse2` is SSE2, which this build
            // targets.
            unsafe { unit_weights_sse2(&self.units) }
        }
        #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
        {
            self.units.0.map(|units| f32::from(units) / WEIGHT_UNIT)
        }
    }

    /// The weights of a [`WIDE`] entry, found by its key's place in `KEY_BYTES` (unique), so that
    /// the common path reads nothing of the units before converting them all.
    #[cold]
    fn wide_weights(&self) -> [f32; 8] {
        let found = WIDE_LABELS.binary_search_by_key(&self.key_start, |&(start, _)| start);
        let [a, b, c, d, e, f, g] = found.map_or([0.0; 7], |index| WIDE_LABELS[index].1);
        [a, b, c, d, e, f, g, self.booster()]
    }

    /// Whether the key is one of VADER's degree adverbs.
    #[inline]
    pub(crate) fn is_booster(&self) -> bool {
        self.flags & BOOSTS != 0
    }

    /// VADER degree-adverb scalar (+0.293 boosts, -0.293 dampens the next word); 0 otherwise.
    #[inline]
    pub(crate) fn booster(&self) -> f32 {
        f32::from(self.units.0[BOOSTER]) / WEIGHT_UNIT
    }

    #[inline]
    pub(crate) fn is_negator(&self) -> bool {
        self.flags & NEGATOR != 0
    }

    /// The [`key_flags`] bits of this entry's key, computed at build time.
    #[inline]
    pub(crate) fn key_flags(&self) -> u8 {
        self.flags & !(NEGATOR | BOOSTS | WIDE)
    }

    /// The key's bytes 8 to 15 as a little-endian word, zero past the key's end, for a key of
    /// nine to sixteen bytes (`KEY_BYTES` ends in zero padding, so the read stays inside it).
    #[inline(always)]
    fn second_word(&self) -> u64 {
        let start = self.key_start as usize + 8;
        let stored = KEY_BYTES
            .get(start..)
            .and_then(|rest| rest.first_chunk::<8>())
            .map_or(0, |bytes| u64::from_le_bytes(*bytes));
        stored & (u64::MAX >> (8 * (16 - usize::from(self.key_len)).min(7)))
    }

    fn key(&self) -> &'static [u8] {
        let start = self.key_start as usize;
        KEY_BYTES
            .get(start..start + self.key_len as usize)
            .unwrap_or(&[])
    }
}

/// The generated tables: `BIAS`, `SLOTS` (the hash table of entries), `WIDE_LABELS` and
/// `KEY_BYTES` (all keys, concatenated, hot keys first).
mod generated {
    // Learned weights that happen to print like 1/pi are not meant as constants.
    #![allow(clippy::approx_constant)]
    use super::{Entry, WeightUnits};
    include!(concat!(env!("OUT_DIR"), "/emotion_lexicon.rs"));
}
use generated::{
    BIAS, EMOTICON_LENGTHS, EXCLAIM, KEY_BYTES, QUESTION, SLOTS, SLOT_BITS, WIDE_LABELS,
};

const _: () = assert!(SLOTS.len() == 1 << SLOT_BITS);

// The entry's key-derived bits must not collide with the negator and wide bits.
const _: () = assert!(
    (key_flags::ENDS_IN_NT
        | key_flags::NEVER
        | key_flags::SO_OR_THIS
        | key_flags::BUT
        | key_flags::HAS_TRIPLE)
        & (NEGATOR | BOOSTS | WIDE)
        == 0
);

/// The entry of `!`, whose weights a run of exclamation marks adds.
pub(crate) fn exclaim() -> &'static Entry {
    &SLOTS[EXCLAIM]
}

/// The entry of `?`.
pub(crate) fn question() -> &'static Entry {
    &SLOTS[QUESTION]
}

/// Bit `n` set if some key of `n` printable ASCII bytes (2 to 8) starts with `first`: where no
/// bit is set no emoticon can start, and only the lengths set need a probe.
#[inline]
pub(crate) fn emoticon_lengths(first: u8) -> u16 {
    EMOTICON_LENGTHS[usize::from(first)]
}

/// The label intercepts learned with the lexicon: the logits of a text with no known token.
pub(crate) const fn bias() -> [f32; 7] {
    BIAS
}

/// Finds `key` (exact bytes) in the lexicon.
pub(crate) fn lookup(key: &[u8]) -> Option<&'static Entry> {
    lookup_hashed(key, key_hash(key), key_word(key, 0))
}

/// Whether two keys of equal length agree past their first eight bytes. A plain loop: these
/// tails are a few bytes long, shorter than the call into the C library's `memcmp` is worth.
#[inline]
fn same_tail(a: &[u8], b: &[u8]) -> bool {
    let mut differ = 0u8;
    for (x, y) in a.iter().zip(b).skip(8) {
        differ |= x ^ y;
    }
    differ == 0
}

/// [`lookup_words`] for a key of one to seven bytes, none of them zero, held in one zero-padded
/// little-endian word. No key holds a zero byte (the build checks), so such a word is the
/// `key_prefix` of this key and of no other, whatever its length: a probe compares that word
/// alone, and looks at the key length only to find an empty slot, which ends the search.
#[inline(always)]
pub(crate) fn lookup_short_word(word: u64) -> Option<&'static Entry> {
    let mask = SLOTS.len() - 1;
    let mut slot = key_slot(key_hash_step(0, word), SLOT_BITS);
    loop {
        let entry = &SLOTS[slot];
        if entry.key_prefix == word {
            return Some(entry);
        }
        if entry.key_len == 0 {
            return None;
        }
        slot = (slot + 1) & mask;
    }
}

/// [`lookup_words`] for a key of eight to sixteen bytes, held in two zero-padded little-endian
/// words (the second zero for eight bytes), as the scoring loop reads the longer common words:
/// no array, and no loop over the words. The first word has no zero byte, so an empty slot
/// (all zeros) never matches it and the match is tested first; past the first word, the key's
/// bytes are read from `KEY_BYTES` only for a slot whose first word and length agree.
#[inline(always)]
pub(crate) fn lookup_two_words(first: u64, second: u64, len: usize) -> Option<&'static Entry> {
    let mut hash = key_hash_step(0, first);
    if len > 8 {
        hash = key_hash_step(hash, second);
    }
    let mask = SLOTS.len() - 1;
    let mut slot = key_slot(hash, SLOT_BITS);
    loop {
        let entry = &SLOTS[slot];
        if entry.key_prefix == first
            && usize::from(entry.key_len) == len
            && (len == 8 || entry.second_word() == second)
        {
            return Some(entry);
        }
        if entry.key_len == 0 {
            return None;
        }
        slot = (slot + 1) & mask;
    }
}

/// Finds the key of `len` bytes (at most 32) held as zero-padded little-endian words, the form
/// in which the fast word reader assembles it: no byte buffer, and a miss costs one probe sequence.
#[inline]
pub(crate) fn lookup_words(words: &[u64; 4], len: usize) -> Option<&'static Entry> {
    let mut hash = key_hash_step(0, words[0]);
    for &word in words.iter().take(len.div_ceil(8)).skip(1) {
        hash = key_hash_step(hash, word);
    }
    let mask = SLOTS.len() - 1;
    let mut slot = key_slot(hash, SLOT_BITS);
    loop {
        let entry = &SLOTS[slot];
        if entry.key_len == 0 {
            return None;
        }
        if entry.key_prefix == words[0]
            && usize::from(entry.key_len) == len
            && (len <= 8 || same_tail_words(entry, words))
        {
            return Some(entry);
        }
        slot = (slot + 1) & mask;
    }
}

/// Whether the key of `entry` (longer than eight bytes, as long as `words`' key) agrees with
/// `words` past the first word. The key bytes are read eight at a time (`KEY_BYTES` ends in
/// zero padding) and masked to the key's length.
fn same_tail_words(entry: &Entry, words: &[u64; 4]) -> bool {
    let start = entry.key_start as usize;
    let len = usize::from(entry.key_len);
    (8..len).step_by(8).zip(&words[1..]).all(|(offset, &word)| {
        let mut stored = [0u8; 8];
        if let Some(bytes) = KEY_BYTES.get(start + offset..start + offset + 8) {
            stored.copy_from_slice(bytes);
        }
        let keep = u64::MAX >> (8 * (8 - (len - offset).min(8)));
        u64::from_le_bytes(stored) & keep == word
    })
}

/// Finds `key`, whose [`key_hash`] and first word ([`key_word`] at 0) the caller already has.
#[inline]
pub(crate) fn lookup_hashed(key: &[u8], hash: u64, prefix: u64) -> Option<&'static Entry> {
    let mask = SLOTS.len() - 1;
    let mut slot = key_slot(hash, SLOT_BITS);
    // The table is at most two thirds full, so an empty slot ends every probe sequence quickly.
    loop {
        let entry = &SLOTS[slot];
        if entry.key_len == 0 {
            return None;
        }
        if entry.key_prefix == prefix
            && usize::from(entry.key_len) == key.len()
            && (key.len() <= 8 || same_tail(entry.key(), key))
        {
            return Some(entry);
        }
        slot = (slot + 1) & mask;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emotion::Emotion;

    #[test]
    fn finds_words_emoticons_and_emoji() {
        assert!(lookup(b"happy").is_some());
        assert!(lookup(b":)").is_some());
        assert!(lookup("😂".as_bytes()).is_some());
    }

    #[test]
    fn misses_unknown_and_empty_keys() {
        assert!(lookup(b"qwxzyv").is_none());
        assert!(lookup(b"").is_none());
        assert!(lookup(b"HAPPY").is_none(), "keys are lowercase");
    }

    #[test]
    fn carries_vader_modifiers() {
        assert!(lookup(b"not").is_some_and(Entry::is_negator));
        assert!(lookup(b"never").is_some_and(Entry::is_negator));
        assert!(lookup(b"very").is_some_and(|e| e.booster() > 0.0));
        assert!(lookup(b"slightly").is_some_and(|e| e.booster() < 0.0));
        assert!(lookup(b"happy").is_some_and(|e| !e.is_negator() && !e.is_booster()));
        assert!(lookup(b"happy").is_some_and(Entry::is_plain));
        for key in [
            &b"not"[..],
            b"very",
            b"so",
            b"this",
            b"but",
            b"can't",
            b"never",
        ] {
            assert!(lookup(key).is_some_and(|e| !e.is_plain()), "{key:?}");
        }
        for (_, entry) in occupied() {
            assert_eq!(
                entry.is_booster(),
                entry.booster() != 0.0,
                "{:?}",
                entry.key()
            );
            if entry.is_plain() {
                let plain = entry.plain_weights().map(f32::to_bits);
                assert_eq!(plain, entry.weights().map(f32::to_bits));
            }
        }
        assert_eq!(lookup(b"very").map(Entry::booster), Some(0.293));
    }

    /// The occupied slots, with their indices.
    fn occupied() -> impl Iterator<Item = (usize, &'static Entry)> {
        SLOTS.iter().enumerate().filter(|(_, e)| e.key_len != 0)
    }

    #[test]
    fn probe_sequences_stay_short() {
        let mask = SLOTS.len() - 1;
        let (mut total, mut longest, mut hot_total, mut hot) = (0usize, 0usize, 0usize, 0usize);
        for (slot, entry) in occupied() {
            let home = key_slot(key_hash(entry.key()), SLOT_BITS);
            let probes = (slot.wrapping_sub(home) & mask) + 1;
            total += probes;
            longest = longest.max(probes);
            // `KEY_BYTES` holds the hot keys first: these are the couple of hundred hottest.
            if entry.key_start < 1024 {
                hot_total += probes;
                hot += 1;
            }
        }
        let mean = total as f64 / occupied().count() as f64;
        assert!(mean < 2.3, "mean probe length {mean}");
        assert!(longest < 80, "longest probe sequence {longest}");
        // The keys frequent in chat went in first: most sit in their home slot.
        let hot_mean = hot_total as f64 / hot as f64;
        println!("mean probe length {mean:.3} ({hot_mean:.3} for the {hot} hottest keys), longest {longest}");
        assert!(hot_mean < 1.1, "mean probe length of hot keys {hot_mean}");
    }

    #[test]
    fn weights_read_back_as_the_lexicon_gives_them() {
        let happy = lookup(b"happy").map(|e| e.weights());
        assert!(
            happy.is_some_and(|w| w[Emotion::Joy.index()] > 0.5),
            "{happy:?}"
        );
        let wide: Vec<&Entry> = occupied()
            .map(|(_, e)| e)
            .filter(|e| e.flags & WIDE != 0)
            .collect();
        assert_eq!(wide.len(), WIDE_LABELS.len());
        for entry in wide {
            let weights = entry.weights();
            assert_eq!(weights[BOOSTER], entry.booster());
            let labels = &weights[..BOOSTER];
            // Beyond an `i16` count of units, or a negative zero, which a count cannot give.
            let narrow = |w: &f32| w.abs() <= 3.2767 && !(*w == 0.0 && w.is_sign_negative());
            assert!(!labels.iter().all(narrow), "{labels:?}");
        }
        // `!` and `?` are found where the scorer takes them from.
        assert!(lookup(b"!").is_some_and(|e| std::ptr::eq(e, exclaim())));
        assert!(lookup(b"?").is_some_and(|e| std::ptr::eq(e, question())));
    }

    #[test]
    fn word_lookups_agree_with_byte_lookups() {
        let as_words = |key: &[u8]| {
            let mut words = [0u64; 4];
            for (i, word) in words.iter_mut().enumerate() {
                *word = key_word(key, 8 * i);
            }
            words
        };
        let mut long_keys = 0;
        for (_, entry) in occupied().filter(|(_, e)| e.key().len() <= 32) {
            let key = entry.key();
            let found = lookup_words(&as_words(key), key.len()).map(|e| e as *const Entry);
            assert_eq!(found, Some(entry as *const Entry), "{key:?}");
            if key.len() <= 7 {
                let found = lookup_short_word(key_word(key, 0)).map(|e| e as *const Entry);
                assert_eq!(found, Some(entry as *const Entry), "{key:?}");
            } else if key.len() > 8 {
                long_keys += 1;
            }
            if (8..=16).contains(&key.len()) {
                let words = as_words(key);
                let found = lookup_two_words(words[0], words[1], key.len());
                assert_eq!(
                    found.map(|e| e as *const Entry),
                    Some(entry as *const Entry)
                );
            }
        }
        assert!(long_keys > 1000, "only {long_keys} keys longer than a word");
        // Keys that differ from a lexicon key only past the first word, or only in length.
        for key in [
            &b"disappointed"[..],
            b"disappointing",
            b"cancelled",
            b"honestly",
        ] {
            assert!(lookup(key).is_some(), "{key:?}");
            let mut near = key.to_vec();
            if let Some(last) = near.last_mut() {
                *last = b'q';
            }
            assert!(lookup_words(&as_words(&near), near.len()).is_none());
            let two = |key: &[u8]| lookup_two_words(as_words(key)[0], as_words(key)[1], key.len());
            assert!(two(&near).is_none());
            near.push(b's');
            assert!(lookup_words(&as_words(&near), near.len()).is_none());
            assert!(two(&near).is_none());
            let shorter = &key[..key.len() - 1];
            assert!(lookup_words(&as_words(shorter), shorter.len()).is_none());
            if shorter.len() >= 8 {
                assert!(two(shorter).is_none(), "{shorter:?}");
            }
            // Their first seven bytes, which share the longer key's first word but one byte.
            let start = &key[..7];
            assert_eq!(
                lookup_short_word(key_word(start, 0)).map(|e| e as *const Entry),
                lookup(start).map(|e| e as *const Entry),
                "{start:?}"
            );
        }
        // Short keys, and words one byte shorter or longer than one.
        for key in [&b"so"[..], b"sad", b"happy", b"not", b"i'm", b"can't"] {
            assert!(lookup_short_word(key_word(key, 0)).is_some());
            for near in [&key[..key.len() - 1], &[key, b"q"].concat()] {
                let found = lookup_short_word(key_word(near, 0));
                assert_eq!(
                    found.map(|e| e as *const Entry),
                    lookup(near).map(|e| e as *const Entry),
                    "{near:?}"
                );
            }
        }
    }

    #[test]
    fn every_entry_is_found_under_its_own_key() {
        for (_, entry) in occupied() {
            let found = lookup(entry.key()).map(|e| e as *const Entry);
            assert_eq!(found, Some(entry as *const Entry));
        }
    }
}
