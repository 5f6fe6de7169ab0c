//! A fixed workload for instruction-count profiling of `Scorer::score`, ignored by default:
//! `valgrind --tool=callgrind target/release/deps/emotion_profile-* --ignored --test-threads 1`
//! and divide `Scorer::score`'s inclusive count by `CALLS`.

use std::hint::black_box;

use emotibot::emotion::Scorer;

/// The 77-byte message of `benches/emotion.rs`.
const MEDIUM: &str =
    "I can't believe they cancelled the show :( honestly so disappointed, not cool";
const CALLS: usize = 100_000;

#[test]
#[ignore = "a profiling workload, not a check"]
fn score_the_medium_bench_message_many_times() {
    let scorer = Scorer::new();
    let mut confidence = 0.0f32;
    for _ in 0..CALLS {
        confidence += scorer.score(black_box(MEDIUM)).confidence();
    }
    println!("mean confidence {}", confidence / CALLS as f32);
    assert!(confidence > 0.0);
}
