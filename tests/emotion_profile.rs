//! Fixed workloads for instruction-count profiling of `Scorer::score`, ignored by default, one per
//! message of `benches/emotion.rs`:
//! `valgrind --tool=callgrind target/release/deps/emotion_profile-* --ignored --test-threads 1 medium`
//! (or `short`, `long`) and divide `Scorer::score`'s inclusive count by `CALLS`.

use std::hint::black_box;

use emotibot::emotion::Scorer;

include!("../benches/emotion/messages.rs");

const CALLS: usize = 100_000;

fn score_many_times(text: &str) {
    let scorer = Scorer::new();
    let mut confidence = 0.0f32;
    for _ in 0..CALLS {
        confidence += scorer.score(black_box(text)).confidence();
    }
    println!("mean confidence {}", confidence / CALLS as f32);
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
