//! Timer wheel costs at the scale of a busy server: 100k armed timers.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use emotibot::timer_wheel::TimerWheel;
use std::hint::black_box;

const TIMERS: u64 = 100_000;

/// A wheel shaped like the server's (10 ms ticks, 4096 slots) holding `TIMERS` timers spread over
/// the next 60 s, like heartbeat deadlines of 100k connections.
fn loaded_wheel() -> (TimerWheel<u64>, Vec<emotibot::timer_wheel::TimerKey>) {
    let mut wheel = TimerWheel::new(10, 4096, 0);
    let keys = (0..TIMERS)
        .map(|i| wheel.insert(i * 7919 % 60_000, i))
        .collect();
    (wheel, keys)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("timer_wheel_100k");
    group.throughput(Throughput::Elements(1));

    group.bench_function("insert_then_cancel", |b| {
        let (mut wheel, _keys) = loaded_wheel();
        let mut i = 0u64;
        b.iter(|| {
            i = i.wrapping_add(1);
            let key = wheel.insert(black_box(i % 60_000), i);
            black_box(wheel.cancel(key));
        });
    });

    group.bench_function("cancel", |b| {
        b.iter_batched(
            loaded_wheel,
            |(mut wheel, keys)| {
                for key in keys.iter().take(1000) {
                    black_box(wheel.cancel(*key));
                }
                wheel
            },
            BatchSize::LargeInput,
        );
    });

    group.throughput(Throughput::Elements(TIMERS));
    group.bench_function("expire_all_over_60s", |b| {
        b.iter_batched(
            loaded_wheel,
            |(mut wheel, _keys)| {
                let mut fired = Vec::with_capacity(TIMERS as usize);
                let mut now = 0;
                while now <= 60_000 {
                    wheel.expire(now, &mut fired);
                    now += 10;
                }
                assert_eq!(fired.len() as u64, TIMERS);
                wheel
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
