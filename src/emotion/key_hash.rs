//! The hash that places lexicon keys in their table. Shared, via `#[path]`, by the build script
//! that lays the table out and by the scorer that probes it, so the two can never disagree.
//!
//! Keys are short (at most 32 bytes), so the hash takes them eight bytes at a time, little-endian
//! and zero-padded, with one rotate-xor-multiply step per word (the FxHash step): four multiplies
//! at most instead of one per byte. No key holds a zero byte, so the padded words alone tell keys
//! of different lengths apart: a key of up to eight bytes hashes to its word times a constant.
//! The product's upper bits are the best mixed, and the table index is the topmost of them.

const SEED_MULTIPLIER: u64 = 0x517c_c1b7_2722_0a95;

/// One eight-byte word of the key folded into the running hash, which starts at 0.
#[inline]
pub const fn key_hash_step(hash: u64, word: u64) -> u64 {
    (hash.rotate_left(5) ^ word).wrapping_mul(SEED_MULTIPLIER)
}

/// The slot of `hash` in a table of `1 << slot_bits` slots (`slot_bits` from 1 to 63).
#[inline]
pub const fn key_slot(hash: u64, slot_bits: u32) -> usize {
    (hash >> (64 - slot_bits)) as usize
}

/// The eight-byte little-endian word of `key` starting at `start`, zero-padded.
pub const fn key_word(key: &[u8], start: usize) -> u64 {
    let mut word = 0u64;
    let mut j = 0;
    while j < 8 && start + j < key.len() {
        word |= (key[start + j] as u64) << (8 * j);
        j += 1;
    }
    word
}

/// Hash of `key`: each zero-padded eight-byte little-endian word, folded in from 0.
pub const fn key_hash(key: &[u8]) -> u64 {
    let mut hash = 0;
    let mut start = 0;
    while start < key.len() {
        hash = key_hash_step(hash, key_word(key, start));
        start += 8;
    }
    hash
}
