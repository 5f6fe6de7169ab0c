//! What the scorer needs to know about a token from its key bytes alone: whether it ends in
//! "-n't" and whether it is one of the few words with a rule of their own. Shared, via `#[path]`,
//! by the build script, which stores these bits in each lexicon entry so that a known word costs
//! one table probe and no byte comparison, and by the scorer's general word path, which computes
//! them at run time for keys it looks up another way (elongated words).

/// The key ends in "n't": any such contraction negates, even one too rare for VADER's list.
pub const ENDS_IN_NT: u8 = 1 << 1;
/// The key is "never", whose negation "so"/"this" turn into emphasis.
pub const NEVER: u8 = 1 << 2;
/// The key is "so" or "this".
pub const SO_OR_THIS: u8 = 1 << 3;
/// The key is "but": the clause after it carries the message.
pub const BUT: u8 = 1 << 4;
/// The key has a byte three times in a row ("grrr"). The tokenizer collapses such runs, so no word
/// ever has this key: a fast word reader that skips the run check finds out from this bit.
pub const HAS_TRIPLE: u8 = 1 << 5;

const fn equals(key: &[u8], word: &[u8]) -> bool {
    if key.len() != word.len() {
        return false;
    }
    let mut i = 0;
    while i < key.len() {
        if key[i] != word[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The key-derived bits of `key` (lowercase word bytes).
pub const fn key_flags(key: &[u8]) -> u8 {
    let len = key.len();
    let mut flags = 0;
    if len >= 3 && key[len - 3] == b'n' && key[len - 2] == b'\'' && key[len - 1] == b't' {
        flags |= ENDS_IN_NT;
    }
    if equals(key, b"never") {
        flags |= NEVER;
    }
    if equals(key, b"so") || equals(key, b"this") {
        flags |= SO_OR_THIS;
    }
    if equals(key, b"but") {
        flags |= BUT;
    }
    let mut i = 2;
    while i < len {
        if key[i] == key[i - 1] && key[i] == key[i - 2] {
            flags |= HAS_TRIPLE;
        }
        i += 1;
    }
    flags
}
