//! Fixed workloads for instruction-count profiling of `Scorer::score`, ignored by default, one per
//! message of `benches/emotion.rs`:
//! `valgrind --tool=callgrind target/release/deps/emotion_profile-* --ignored --test-threads 1 medium`
//! (or `short`, `long`) and divide `Scorer::score`'s inclusive count by `CALLS`.

use std::hint::black_box;

use emotibot::emotion::Scorer;

/// The three messages of `benches/emotion.rs` (18, 77 and 997 bytes).
const SHORT: &str = "omg yes!! so happy";
const MEDIUM: &str =
    "I can't believe they cancelled the show :( honestly so disappointed, not cool";
const LONG: &str = "Okay so I finally watched the finale last night and I have THOUGHTS. \
The first half was honestly great, the pacing was tight, the soundtrack was sooo good and the \
acting from the lead was incredible. But then the last twenty minutes just fell apart for me. \
Why would they kill off the one character who actually had an arc?? It felt cheap, like the \
writers didn't know how to end it and went for shock value instead. I'm not angry exactly, more \
disappointed, because the whole season built up to something that never really happened. My \
friend loved it though 😂 and she says I'm overthinking it, which is fair, I do that. Still, I \
was kind of scared for the side characters the whole episode and the payoff just wasn't there. \
Anyway, 7/10, would still recommend the first three seasons to anyone who hasn't seen them :) \
Also, shout out to the costume team, every outfit in the wedding episode was perfect, and I'm a \
little sad it's over. Can't wait to rewatch it all with my sister next month!!";
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
