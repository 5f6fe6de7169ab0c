//! A small, bounded memory of tokens that passed full verification, so that a client presenting
//! the very same token again (a reconnect, a reconnect storm after a network blip, a second tab)
//! skips the signature and JSON work.
//!
//! Why a hit is as good as a verification: apart from `exp` and `nbf`, everything the
//! authenticator checks (signature, algorithm, issuer, audience, claim shapes) depends only on the
//! token's bytes and the authenticator's fixed configuration, and each authenticator owns its own
//! memory. So a hit re-checks exactly the time-dependent part against the current clock (see
//! [`super::check_times`]) and the result equals what a full verification would return.
//! Only tokens that verified are stored, so an unverified token can never hit; lookups compare
//! the whole token byte for byte (after a keyed hash picks the set), never a hash alone.
//!
//! Memory is fixed: [`CAPACITY`] entries of tokens up to [`MAX_TOKEN_BYTES`] (longer tokens are
//! verified every time), in sets of [`WAYS`] evicting their least recently used entry.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Mutex;

use super::Claims;

/// Entries kept: a reconnect storm of this many users is served from memory.
pub const CAPACITY: usize = 1024;
/// Entries per set; a set is picked by the token's hash.
pub const WAYS: usize = 4;
/// Longer tokens are not kept, which bounds the memory at about
/// 0.1 MiB of slots plus `CAPACITY * (MAX_TOKEN_BYTES + MAX_SUB_BYTES + MAX_NAME_BYTES)` of
/// tokens and claims, 1.5 MiB in all; 200-byte tokens take about 0.35 MiB when the memory is full.
pub const MAX_TOKEN_BYTES: usize = 1024;

const SETS: usize = CAPACITY / WAYS;
/// How much of a token's end picks its set: an HS256 signature is 43 characters.
const HASHED_TAIL_BYTES: usize = 48;

struct Entry {
    hash: u64,
    token: Box<[u8]>,
    claims: Claims,
    /// `nbf` in unix seconds, when the token had one.
    not_before: Option<u64>,
    /// When the entry was last stored or found, for eviction.
    last_used: u64,
}

#[derive(Default)]
struct Slots {
    /// `CAPACITY` slots once anything is stored (allocated on first use), set `s` at
    /// `s * WAYS .. (s + 1) * WAYS`.
    entries: Vec<Option<Entry>>,
    /// Counts lookups and stores: a logical clock for least-recently-used eviction.
    tick: u64,
}

/// What a cached token says: its claims and `nbf`, to be re-checked against the clock.
pub struct Remembered {
    pub claims: Claims,
    pub not_before: Option<u64>,
}

/// A token short enough to keep, with its hash.
pub struct TokenKey<'t> {
    bytes: &'t [u8],
    hash: u64,
}

pub struct VerifiedTokens {
    // Keyed with random keys, so nobody can aim many tokens at one set.
    hasher: RandomState,
    // The reactor is single-threaded: the lock is never contended; it keeps the authenticator
    // shareable between threads.
    slots: Mutex<Slots>,
}

impl VerifiedTokens {
    pub fn new() -> VerifiedTokens {
        VerifiedTokens {
            hasher: RandomState::new(),
            slots: Mutex::new(Slots::default()),
        }
    }

    /// Hashes a token once for a [`VerifiedTokens::lookup`] and the
    /// [`VerifiedTokens::remember`] that follows a miss; `None` for tokens too long to keep.
    pub fn key<'t>(&self, token: &'t [u8]) -> Option<TokenKey<'t>> {
        // The set is picked by the token's end, its signature: for a token that can be stored
        // (one that verified) it is a MAC or signature nobody can choose without the key, so it
        // spreads entries as well as the whole token would, for a third of the hashing.
        let tail = &token[token.len().saturating_sub(HASHED_TAIL_BYTES)..];
        (token.len() <= MAX_TOKEN_BYTES).then(|| TokenKey {
            bytes: token,
            hash: self.hasher.hash_one(tail),
        })
    }

    /// The claims stored for exactly these token bytes, if any.
    pub fn lookup(&self, key: &TokenKey<'_>) -> Option<Remembered> {
        let (token, hash) = (key.bytes, key.hash);
        let mut slots = self.slots.lock().ok()?;
        slots.tick += 1;
        let tick = slots.tick;
        let entry = set_of(&mut slots.entries, hash)
            .iter_mut()
            .flatten()
            .find(|entry| entry.hash == hash && same_bytes(&entry.token, token))?;
        entry.last_used = tick;
        Some(Remembered {
            claims: entry.claims.clone(),
            not_before: entry.not_before,
        })
    }

    /// Stores a token that has just passed full verification, evicting the least recently used
    /// entry of its set when the set is full.
    pub fn remember(&self, key: &TokenKey<'_>, claims: &Claims, not_before: Option<u64>) {
        let (token, hash) = (key.bytes, key.hash);
        let Ok(mut slots) = self.slots.lock() else {
            return;
        };
        if slots.entries.is_empty() {
            slots.entries.resize_with(CAPACITY, || None);
        }
        slots.tick += 1;
        let tick = slots.tick;
        let set = set_of(&mut slots.entries, hash);
        // An empty slot if there is one, else the least recently used; a token already present
        // (two connections verifying it before either stored it) is replaced in place.
        let victim = set
            .iter()
            .position(|slot| {
                slot.as_ref()
                    .is_none_or(|entry| entry.hash == hash && same_bytes(&entry.token, token))
            })
            .unwrap_or_else(|| {
                set.iter()
                    .enumerate()
                    .min_by_key(|(_, slot)| slot.as_ref().map_or(0, |entry| entry.last_used))
                    .map_or(0, |(index, _)| index)
            });
        set[victim] = Some(Entry {
            hash,
            token: token.into(),
            claims: claims.clone(),
            not_before,
            last_used: tick,
        });
    }

    /// How many tokens are stored.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots
            .lock()
            .map_or(0, |slots| slots.entries.iter().flatten().count())
    }
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        VerifiedTokens::new()
    }
}

/// The `WAYS` slots a hash maps to; empty while nothing was ever stored.
fn set_of(entries: &mut [Option<Entry>], hash: u64) -> &mut [Option<Entry>] {
    if entries.is_empty() {
        return entries;
    }
    let set = (hash % SETS as u64) as usize;
    &mut entries[set * WAYS..(set + 1) * WAYS]
}

/// Byte equality whose time does not depend on where the first difference is, so that a probe's
/// timing tells nothing about how much of a stored token it got right.
fn same_bytes(stored: &[u8], probe: &[u8]) -> bool {
    stored.len() == probe.len()
        && stored
            .iter()
            .zip(probe)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str) -> Claims {
        Claims {
            sub: sub.to_owned(),
            name: Some("Display".to_owned()),
            exp: 1_800_000_600,
        }
    }

    impl VerifiedTokens {
        fn remember_bytes(&self, token: &[u8], claims: &Claims, not_before: Option<u64>) {
            if let Some(key) = self.key(token) {
                self.remember(&key, claims, not_before);
            }
        }

        fn lookup_bytes(&self, token: &[u8]) -> Option<Remembered> {
            self.key(token).and_then(|key| self.lookup(&key))
        }
    }

    #[test]
    fn only_exactly_the_same_bytes_hit() {
        let cache = VerifiedTokens::new();
        assert!(cache.lookup_bytes(b"aaa.bbb.ccc").is_none());
        cache.remember_bytes(b"aaa.bbb.ccc", &claims("alice"), Some(1_800_000_000));
        let hit = cache
            .lookup_bytes(b"aaa.bbb.ccc")
            .map(|r| (r.claims, r.not_before));
        assert_eq!(hit, Some((claims("alice"), Some(1_800_000_000))));
        for near_miss in [&b"aaa.bbb.ccd"[..], b"aaa.bbb.cc", b"aaa.bbb.ccc.", b""] {
            assert!(cache.lookup_bytes(near_miss).is_none());
        }
    }

    #[test]
    fn memory_stays_bounded_and_recent_tokens_survive() {
        let cache = VerifiedTokens::new();
        let token = |i: usize| format!("header.payload-{i}.signature").into_bytes();
        cache.remember_bytes(&token(0), &claims("kept"), None);
        for i in 1..CAPACITY * 4 {
            cache.remember_bytes(&token(i), &claims("user"), None);
            // Token 0 is used between every two stores: least-recently-used never evicts it.
            assert!(cache.lookup_bytes(&token(0)).is_some());
        }
        assert!(cache.len() <= CAPACITY);
        assert!(cache.len() > CAPACITY / 2);
        let hits = (1..CAPACITY * 4)
            .filter(|&i| cache.lookup_bytes(&token(i)).is_some())
            .count();
        assert!(hits < CAPACITY);
    }

    #[test]
    fn storing_a_token_twice_keeps_one_entry() {
        let cache = VerifiedTokens::new();
        cache.remember_bytes(b"t.o.k", &claims("alice"), None);
        cache.remember_bytes(b"t.o.k", &claims("alice"), None);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn long_tokens_are_not_kept() {
        let cache = VerifiedTokens::new();
        let long = vec![b'x'; MAX_TOKEN_BYTES + 1];
        cache.remember_bytes(&long, &claims("alice"), None);
        assert!(cache.lookup_bytes(&long).is_none());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn the_slots_take_about_a_tenth_of_a_mebibyte() {
        let slots = std::mem::size_of::<Option<Entry>>() * CAPACITY;
        assert!(slots <= 128 * 1024, "{slots} bytes of slots");
    }

    #[test]
    fn byte_comparison() {
        assert!(same_bytes(b"abc", b"abc"));
        assert!(!same_bytes(b"abc", b"abd"));
        assert!(!same_bytes(b"abc", b"ab"));
        assert!(same_bytes(b"", b""));
    }
}
