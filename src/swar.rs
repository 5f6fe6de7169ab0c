//! Little-endian word reads for the byte-parallel (SWAR) scans over frames and JSON text: with
//! the first byte lowest, the lowest flagged byte of a word is the first in the text.

/// The first eight bytes of `bytes` (at least eight) as a little-endian word.
#[inline(always)]
pub(crate) fn read_word(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}
