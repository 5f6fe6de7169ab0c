//! Bodies of the cargo-fuzz targets in `fuzz/`, kept in the library so that the fuzzer and the
//! corpus replay test (`tests/fuzz_corpus.rs`) run exactly the same code.
//!
//! Each function takes arbitrary bytes, drives one part of the server that reads untrusted input,
//! and panics when an invariant breaks: a panic is what libFuzzer reports as a finding. Bad input
//! itself must never panic the code under test, so any panic here is a bug in one or the other.

mod client_message;
mod emotion;
mod http_head;
mod jwt;
mod ws_frames;

pub use client_message::client_message;
#[cfg(test)]
pub(crate) use client_message::mutated;
pub use emotion::emotion;
pub use http_head::http_head;
pub use jwt::jwt;
pub use ws_frames::ws_frames;

/// A tiny deterministic generator: lets one input byte stand for a whole pattern of chunk sizes
/// or choices, so the fuzzer explores them without spending input bytes on each decision.
#[derive(Clone, Copy)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        // Zero is a fixed point of xorshift; mixing in a constant avoids it.
        XorShift(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `1..=max` (`max` at least 1).
    fn between_one_and(&mut self, max: usize) -> usize {
        1 + (self.next() % max.max(1) as u64) as usize
    }
}
