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
//! A second number sets how many tabs each user has open (default 2). With `1` nobody else is in
//! the private room, as in the load generator's `chat` scenario (one connection per user):
//! `target/release/deps/chat_instructions-* 20000 1`.
//!
//! A third number sets how many users send in turn (default 1), each in their own private room,
//! as the load's users do: `target/release/deps/chat_instructions-* 20000 1 100`. Every user's
//! history ring is filled in the set-up, so the measured messages each evict the oldest event of
//! a ring that was last touched `users` messages before: the cache behaviour of a busy server.
//! For that, count misses with cachegrind on the machine's cache sizes (set-up subtracted as
//! above):
//!
//! ```sh
//! valgrind --tool=cachegrind --cache-sim=yes --D1=49152,12,64 --LL=2097152,16,64 \
//!     --cachegrind-out-file=/dev/null target/release/deps/chat_instructions-* 20000 1 100
//! ```

use emotibot::chat::auth::{AuthConfig, Authenticator, Claims, KeyConfig};
use emotibot::chat::{ChatConfig, ChatCore, ConnId, Delivery, Outbox};
use std::hint::black_box;
use std::time::Instant;

include!("chat/core.rs");

/// Frames go into their connection's output as the reactor's outbox puts them (`send_with`
/// writes in place, `send` copies), and every output is emptied after each client frame as the
/// reactor's write to the socket empties it: the outputs stay as small as a server's do, so the
/// cache misses counted are the core's own.
#[derive(Default)]
struct BufferOutbox {
    outputs: Vec<Vec<u8>>,
    /// Connections whose output holds frames, as the reactor lists those with data to write.
    pending: Vec<ConnId>,
    bytes: u64,
}

impl BufferOutbox {
    fn output(&mut self, conn: ConnId) -> &mut Vec<u8> {
        if self.outputs.len() <= conn {
            self.outputs.resize_with(conn + 1, Vec::new);
        }
        if self.outputs[conn].is_empty() {
            self.pending.push(conn);
        }
        &mut self.outputs[conn]
    }

    /// What the reactor's socket writes do after a frame has been handled.
    fn flush(&mut self) {
        for conn in self.pending.drain(..) {
            let output = &mut self.outputs[conn];
            self.bytes += output.len() as u64;
            output.clear();
        }
    }
}

impl Outbox for BufferOutbox {
    fn send(&mut self, conn: ConnId, json: &str, _delivery: Delivery) {
        self.output(conn).extend_from_slice(json.as_bytes());
    }
    fn close(&mut self, _conn: ConnId, _code: u16, _reason: &str) {}
    fn send_with(
        &mut self,
        conn: ConnId,
        _delivery: Delivery,
        size_hint: usize,
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        let output = self.output(conn);
        output.reserve(size_hint);
        write(output);
    }
}

fn main() {
    // `cargo bench` passes `--bench`; the numeric arguments are the iteration count, the tabs
    // per user and the number of users.
    let mut numbers = std::env::args()
        .skip(1)
        .filter_map(|arg| arg.parse::<u64>().ok());
    let iterations = numbers.next().unwrap_or(100_000);
    let tabs = numbers.next().unwrap_or(2).max(1) as ConnId;
    let users = numbers.next().unwrap_or(1).max(1) as ConnId;
    let mut chat = core();
    let mut out = BufferOutbox::default();
    for user in 0..users {
        let claims = claims(&format!("user{user}"));
        for tab in 0..tabs {
            chat.open(user * tabs + tab, Some(claims.clone()), 0, &mut out);
        }
    }
    // Every ring full, so that each measured message evicts as on a server that has run a while.
    let senders = (0..users).map(|user| user * tabs).cycle();
    for sender in senders.clone().take(chat.config().history_events * users) {
        chat.text(sender, MESSAGE, 1, &mut out);
        out.flush();
    }
    let started = Instant::now();
    for sender in senders.take(iterations as usize) {
        chat.text(sender, black_box(MESSAGE), 1, &mut out);
        out.flush();
    }
    let elapsed = started.elapsed();
    println!(
        "{iterations} private messages from {users} user(s) with {tabs} tab(s) each, {:.0} ns \
         each (wall clock), {} bytes out",
        elapsed.as_nanos() as f64 / iterations.max(1) as f64,
        black_box(out.bytes)
    );
}
