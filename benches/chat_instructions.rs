//! A fixed amount of chat-core work for instruction counting, which stays repeatable on noisy
//! shared machines where wall-clock benches do not:
//!
//! ```sh
//! cargo bench --bench chat_instructions --no-run
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/deps/chat_instructions-* 20000 2>&1 | grep refs
//! ```
//! Divide the instruction count by the iterations (after subtracting a run with 0 iterations for
//! the set-up) to get instructions per private message: parse, score, encode the `emotion`
//! result and the `message` event for a second tab, retain it for resume.
//!
//! A second number sets how many tabs the user has open (default 2). With `1` nobody else is in
//! the private room, as in the load generator's `chat` scenario (one connection per user):
//! `target/release/deps/chat_instructions-* 20000 1`.

use emotibot::chat::auth::{AuthConfig, Authenticator, Claims, KeyConfig};
use emotibot::chat::{ChatConfig, ChatCore, ConnId, Delivery, Outbox};
use std::hint::black_box;
use std::time::Instant;

include!("chat/core.rs");

/// Frames go into one output buffer as the reactor's outbox puts them into a connection's output
/// (`send_with` writes in place, `send` copies), and the buffer is emptied past 64 KiB as a flush
/// would empty it.
#[derive(Default)]
struct BufferOutbox {
    output: Vec<u8>,
    bytes: u64,
}

impl BufferOutbox {
    fn flush_if_full(&mut self) {
        if self.output.len() > 64 * 1024 {
            self.bytes += self.output.len() as u64;
            self.output.clear();
        }
    }
}

impl Outbox for BufferOutbox {
    fn send(&mut self, _conn: ConnId, json: &str, _delivery: Delivery) {
        self.output.extend_from_slice(json.as_bytes());
        self.flush_if_full();
    }
    fn close(&mut self, _conn: ConnId, _code: u16, _reason: &str) {}
    fn send_with(
        &mut self,
        _conn: ConnId,
        _delivery: Delivery,
        size_hint: usize,
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        self.output.reserve(size_hint);
        write(&mut self.output);
        self.flush_if_full();
    }
}

fn main() {
    // `cargo bench` passes `--bench`; the first numeric argument is the iteration count, the
    // second the number of tabs.
    let mut numbers = std::env::args()
        .skip(1)
        .filter_map(|arg| arg.parse::<u64>().ok());
    let iterations = numbers.next().unwrap_or(100_000);
    let tabs = numbers.next().unwrap_or(2);
    let mut chat = core();
    let mut out = BufferOutbox::default();
    for conn in 0..tabs as ConnId {
        chat.open(conn, Some(claims("alice")), 0, &mut out);
    }
    let started = Instant::now();
    for _ in 0..iterations {
        chat.text(0, black_box(MESSAGE), 1, &mut out);
    }
    let elapsed = started.elapsed();
    println!(
        "{iterations} private messages with {tabs} tab(s), {:.0} ns each (wall clock), {} bytes out",
        elapsed.as_nanos() as f64 / iterations.max(1) as f64,
        black_box(out.bytes + out.output.len() as u64)
    );
}
