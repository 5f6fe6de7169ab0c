//! Time per message and bytes/s of `Scorer::score` on realistic chat messages of about 20, 80 and
//! 1000 bytes, with the `vader_sentiment` crate's `polarity_scores` on the same inputs as a
//! reference point in the same group.
//!
//! Three groups: `emotion` measures wall-clock time, as usual; `emotion_thread_cpu` measures the
//! thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), which stays meaningful on a machine shared with
//! other busy processes, where wall-clock time also counts the time the thread spent descheduled;
//! `emotion_cold` times each call alone after streaming through 8 MiB of other memory (more than
//! an L2), as the scorer runs in the server, where between two messages the kernel's TCP work and
//! other connections' state have displaced most of the lexicon from the caches. It scores the
//! three messages and, one per call in turn, the load generator's chat lines.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use emotibot::emotion::Scorer;

include!("emotion/messages.rs");

#[path = "load/texts.rs"]
#[allow(dead_code)] // only the lines are used here, not the load bench's checks
mod texts;

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

/// Memory streamed through before each call of `emotion_cold`: four times a 2 MiB L2.
const OTHER_WORK_BYTES: usize = 8 << 20;
const CACHE_LINE: usize = 64;

/// Touches (reads and writes) one byte of every cache line of `buffer`, so that its lines
/// displace whatever the caches held before.
fn stream_through(buffer: &mut [u8]) {
    for line in buffer.chunks_mut(CACHE_LINE) {
        line[0] = line[0].wrapping_add(1);
    }
    black_box(buffer);
}

/// Wall-clock time of `iterations` calls of `f`, each timed alone after evicting the caches; the
/// eviction is not counted. The figure includes one `Instant::now` pair per call.
fn cold_time_of<R>(
    iterations: u64,
    other_work: &mut [u8],
    mut f: impl FnMut(u64) -> R,
) -> Duration {
    let mut total = Duration::ZERO;
    for call in 0..iterations {
        stream_through(other_work);
        let start = Instant::now();
        black_box(f(call));
        total += start.elapsed();
    }
    total
}

fn scoring_cold(c: &mut Criterion) {
    let scorer = Scorer::new();
    let mut other_work = vec![0u8; OTHER_WORK_BYTES];
    let mut group = c.benchmark_group("emotion_cold");
    // Each call costs a millisecond of eviction: fewer, flat samples keep the run short.
    group
        .sampling_mode(criterion::SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (name, text) in MESSAGES {
        group.bench_with_input(BenchmarkId::new("emotibot_score", name), text, |b, t| {
            b.iter_custom(|n| cold_time_of(n, &mut other_work, |_| scorer.score(black_box(t))))
        });
    }
    let lines = texts::CHAT_LINES;
    group.bench_function(BenchmarkId::new("emotibot_score", "chat_lines"), |b| {
        b.iter_custom(|n| {
            cold_time_of(n, &mut other_work, |call| {
                let text = lines[(call % lines.len() as u64) as usize];
                scorer.score(black_box(text))
            })
        })
    });
    // What the timing itself costs, with the same eviction: subtract it from the figures above.
    group.bench_function("clock_only", |b| {
        b.iter_custom(|n| cold_time_of(n, &mut other_work, |call| call))
    });
    group.finish();
}

criterion_group!(benches, scoring, scoring_cpu_time, scoring_cold);
criterion_main!(benches);
