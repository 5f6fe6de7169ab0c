//! EmotiBot: a real-time, emotion-aware chat server.
//!
//! The crate is split so that everything except the reactor is sans-IO: plain state machines that
//! take bytes, events and a `now` (milliseconds on a monotonic clock) and return what to send.
//!
//! - [`timer_wheel`]: hashed timer wheel (O(1) insert, cancel, expiry per tick).
//! - [`ws`]: WebSocket frame codec and the per-connection WebSocket state machine.
//! - [`http`]: HTTP/1.1 request heads, routing, static files, the WebSocket upgrade.
//! - [`emotion`]: the zero-allocation lexicon emotion scorer.
//! - [`chat`]: the chat protocol: auth, rooms, typing, bot replies, resume.
//! - [`server`]: glue: builds the reactor, HTTP app endpoints and the chat core from the configuration.
//! - [`reactor`]: the single-threaded mio event loop that moves bytes between sockets and the above.

mod cache_hints;
pub mod chat;
pub mod config;
mod constant_table;
pub mod emotion;
#[doc(hidden)]
pub mod fuzz_targets;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod reactor;
pub mod server;
mod swar;
#[cfg(test)]
mod test_random;
pub mod timer_wheel;
pub mod ws;
