//! The hash that places lexicon keys in their table. Shared, via `#[path]`, by the build script
//! that lays the table out and by the scorer that probes it, so the two can never disagree.

/// FNV-1a (32-bit) over the key's bytes: a few cycles per byte, no state, good enough spread for
/// short lowercase words and emoji sequences in a half-empty open-addressing table.
pub const fn fnv1a(key: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < key.len() {
        hash ^= key[i] as u32;
        hash = hash.wrapping_mul(0x0100_0193);
        i += 1;
    }
    hash
}
