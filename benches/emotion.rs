//! Time per message and bytes/s of `Scorer::score` on realistic chat messages of about 20, 80 and
//! 1000 bytes, with the `vader_sentiment` crate's `polarity_scores` on the same inputs as a
//! reference point in the same group.
//!
//! Two groups: `emotion` measures wall-clock time, as usual; `emotion_thread_cpu` measures the
//! thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), which stays meaningful on a machine shared with
//! other busy processes, where wall-clock time also counts the time the thread spent descheduled.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use emotibot::emotion::Scorer;

include!("emotion/messages.rs");

const MESSAGES: [(&str, &str); 3] = [("20B", SHORT), ("80B", MEDIUM), ("1000B", LONG)];

fn scoring(c: &mut Criterion) {
    let scorer = Scorer::new();
    let vader = vader_sentiment::SentimentIntensityAnalyzer::new();
    let mut group = c.benchmark_group("emotion");
    for (name, text) in MESSAGES {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::new("emotibot_score", name), text, |b, t| {
            b.iter(|| scorer.score(black_box(t)))
        });
        group.bench_with_input(
            BenchmarkId::new("vader_polarity_scores", name),
            text,
            |b, t| b.iter(|| vader.polarity_scores(black_box(t))),
        );
    }
    group.finish();
}

/// CPU time consumed by the calling thread so far.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; the call only writes to it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Runs `f` `iterations` times and returns the thread CPU time it took.
fn cpu_time_of<R>(iterations: u64, mut f: impl FnMut() -> R) -> Duration {
    let start = thread_cpu_time();
    for _ in 0..iterations {
        black_box(f());
    }
    thread_cpu_time().saturating_sub(start)
}

fn scoring_cpu_time(c: &mut Criterion) {
    let scorer = Scorer::new();
    let vader = vader_sentiment::SentimentIntensityAnalyzer::new();
    let mut group = c.benchmark_group("emotion_thread_cpu");
    for (name, text) in MESSAGES {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::new("emotibot_score", name), text, |b, t| {
            b.iter_custom(|n| cpu_time_of(n, || scorer.score(black_box(t))))
        });
        group.bench_with_input(
            BenchmarkId::new("vader_polarity_scores", name),
            text,
            |b, t| b.iter_custom(|n| cpu_time_of(n, || vader.polarity_scores(black_box(t)))),
        );
    }
    group.finish();
}

criterion_group!(benches, scoring, scoring_cpu_time);
criterion_main!(benches);
