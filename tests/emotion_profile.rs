//! Fixed workloads for instruction-count and cache-miss profiling of `Scorer::score`, ignored by
//! default:
//!
//! - one per message of `benches/emotion.rs`:
//!   `valgrind --tool=callgrind target/release/deps/emotion_profile-* --ignored --test-threads 1 medium`
//!   (or `short`, `long`) and divide `Scorer::score`'s inclusive count by `CALLS`;
//! - `chat_lines`: the load generator's chat lines (`benches/load/texts.rs`), each scored in turn,
//!   `CALLS` calls in all: the scorer's cost on the texts the server sees under load;
//! - `partly_cold`: the same lines, but between two messages the workload streams through 1 MiB of
//!   memory it has not touched lately (half a 2 MiB L2, as the kernel's TCP work and other
//!   connections' state do in the server), so the lexicon lines a message needs are still cached
//!   only if they are hot; `fully_cold` streams 8 MiB, more than any L2. Run them under
//!   `valgrind --tool=callgrind --cache-sim=yes --I1=32768,8,64 --D1=49152,12,64 --LL=2097152,16,64`
//!   and divide `Scorer::score`'s inclusive D1 and LL misses by `COLD_CALLS`.

use std::hint::black_box;

use emotibot::emotion::Scorer;

include!("../benches/emotion/messages.rs");

#[path = "../benches/load/texts.rs"]
#[allow(dead_code)] // only the lines are used here, not the load bench's checks
mod texts;

const CALLS: usize = 100_000;
/// Fewer calls for the cache workloads: each is preceded by a stream, slow under valgrind.
const COLD_CALLS: usize = 1_200;
/// Memory the cold workloads stream through, a window of it between two messages: four times a
/// 2 MiB L2, so that a window's lines are never still cached from its last turn.
const OTHER_WORK_BYTES: usize = 8 << 20;
const CACHE_LINE: usize = 64;

fn score_many_times(text: &str) {
    score_in_turn_many_times(&[text]);
}

/// Scores `texts` in turn, [`CALLS`] times in all.
fn score_in_turn_many_times(texts: &[&str]) {
    let scorer = Scorer::new();
    let mut confidence = 0.0f32;
    for text in texts.iter().cycle().take(CALLS) {
        confidence += scorer.score(black_box(text)).confidence();
    }
    println!("mean confidence {}", confidence / CALLS as f32);
    assert!(confidence > 0.0);
}

/// Touches one byte of every cache line of `buffer` and writes it back, so those lines displace
/// whatever the caches held before.
fn stream_through(buffer: &mut [u8]) {
    for line in buffer.chunks_mut(CACHE_LINE) {
        line[0] = line[0].wrapping_add(1);
    }
    black_box(buffer);
}

/// Scores the chat lines in turn, streaming through the next `window` bytes of a larger buffer
/// (round robin) before each message.
fn score_chat_lines_after_other_work(window: usize) {
    let scorer = Scorer::new();
    let mut other_work = vec![0u8; OTHER_WORK_BYTES];
    let mut windows = other_work.chunks_mut(window).count();
    windows = windows.max(1);
    let mut confidence = 0.0f32;
    for (call, text) in texts::CHAT_LINES
        .iter()
        .cycle()
        .take(COLD_CALLS)
        .enumerate()
    {
        if let Some(part) = other_work.chunks_mut(window).nth(call % windows) {
            stream_through(part);
        }
        confidence += scorer.score(black_box(text)).confidence();
    }
    println!("mean confidence {}", confidence / COLD_CALLS as f32);
    assert!(confidence > 0.0);
}

#[test]
#[ignore = "a profiling workload, not a check"]
fn score_the_short_bench_message_many_times() {
    score_many_times(SHORT);
}

#[test]
#[ignore = "a profiling workload, not a check"]
fn score_the_medium_bench_message_many_times() {
    score_many_times(MEDIUM);
}

#[test]
#[ignore = "a profiling workload, not a check"]
fn score_the_long_bench_message_many_times() {
    score_many_times(LONG);
}

#[test]
#[ignore = "a profiling workload, not a check"]
fn score_the_chat_lines_many_times() {
    score_in_turn_many_times(texts::CHAT_LINES);
}

#[test]
#[ignore = "a profiling workload, not a check"]
fn score_the_load_texts_partly_cold() {
    score_chat_lines_after_other_work(1 << 20);
}

#[test]
#[ignore = "a profiling workload, not a check"]
fn score_the_load_texts_fully_cold() {
    score_chat_lines_after_other_work(OTHER_WORK_BYTES);
}
