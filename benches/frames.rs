//! WebSocket frame codec benchmarks: decoding masked client frames through `WsConnection::poll`
//! (header, unmask, UTF-8 check), raw unmask throughput, and encoding a typical chat frame.
//!
//! `decode_masked_text/chat_message` is the frame a chat client sends most (ASCII JSON). Its
//! instructions per poll, repeatable on a busy machine, come from callgrind:
//!
//! ```sh
//! cargo bench --bench frames --no-run
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/frames.cg target/release/deps/frames-* \
//!     --bench --profile-time 1 decode_masked_text/chat_message
//! callgrind_annotate --inclusive=yes /tmp/frames.cg | grep 'WsConnection::poll '
//! ```
//! and dividing the count by the calls `callgrind_annotate --tree=caller` reports.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use emotibot::ws::frame::{parse_header, unmask, write_text, write_text_with};
use emotibot::ws::WsConnection;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked, single-frame text message as a client sends it.
fn masked_text_frame(text: &str) -> Vec<u8> {
    let payload = text.as_bytes();
    let mut frame = vec![0x81];
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len @ 126..=65535 => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    let payload_start = frame.len();
    frame.extend_from_slice(payload);
    unmask(&mut frame[payload_start..], MASK, 0);
    frame
}

/// The chat message a client sends most: plain ASCII JSON.
const CHAT_MESSAGE: &str = r#"{"type":"message","id":"c1","text":"I can't believe the demo worked on the first try, I'm thrilled"}"#;

/// Chat-like text: mostly ASCII with some multi-byte characters.
fn chat_text(len: usize) -> String {
    let sample = "I'm so happy to see you again! 😊 Ça va très bien, merci. ";
    let mut text = String::with_capacity(len + sample.len());
    while text.len() < len {
        text.push_str(sample);
    }
    let mut cut = len;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_masked_text");
    for (name, text) in [
        ("chat_message", CHAT_MESSAGE.to_owned()),
        ("small_16B", chat_text(16)),
        ("medium_1KiB", chat_text(1024)),
        ("large_64KiB", chat_text(65536)),
    ] {
        let frame = masked_text_frame(&text);
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &frame, |b, frame| {
            let mut connection = WsConnection::new(1 << 20);
            let mut out = Vec::new();
            // Each iteration needs the masked bytes again because poll unmasks in place.
            b.iter_batched_ref(
                || frame.clone(),
                |input| {
                    let poll = connection.poll(input, &mut out);
                    black_box(poll.event.is_some());
                    poll.consumed
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();

    // The same 64 KiB as binary: the difference to text is the UTF-8 check.
    let mut frame = masked_text_frame(&chat_text(65536));
    frame[0] = 0x82;
    let mut group = c.benchmark_group("decode_masked_binary");
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function("large_64KiB", |b| {
        let mut connection = WsConnection::new(1 << 20);
        let mut out = Vec::new();
        b.iter_batched_ref(
            || frame.clone(),
            |input| connection.poll(input, &mut out).consumed,
            BatchSize::SmallInput,
        );
    });
    group.finish();

    let frame = masked_text_frame(&chat_text(200));
    c.bench_function("parse_header", |b| {
        b.iter(|| parse_header(black_box(&frame)))
    });
    // The cost of polling a frame whose payload has not fully arrived: header only.
    let mut partial = masked_text_frame(&chat_text(65536));
    partial.truncate(2048);
    let mut connection = WsConnection::new(1 << 20);
    let mut out = Vec::new();
    let _ = connection.poll(&mut partial, &mut out);
    c.bench_function("poll_incomplete_64KiB_frame", |b| {
        b.iter(|| connection.poll(black_box(&mut partial), &mut out).consumed)
    });
}

fn unmask_bytewise(payload: &mut [u8], mask: [u8; 4], offset: usize) {
    for (index, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[(offset + index) % 4];
    }
}

fn unmask_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("unmask_64KiB");
    let mut buffer = vec![0x5au8; 65536];
    group.throughput(Throughput::Bytes(buffer.len() as u64));
    group.bench_function("word_wise", |b| {
        b.iter(|| unmask(black_box(&mut buffer), MASK, 1))
    });
    group.bench_function("bytewise_baseline", |b| {
        b.iter(|| unmask_bytewise(black_box(&mut buffer), MASK, 1))
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let text = chat_text(200);
    let mut out = Vec::with_capacity(512);
    c.bench_function("encode_text_200B", |b| {
        b.iter(|| {
            out.clear();
            write_text(&mut out, black_box(&text));
            out.len()
        })
    });
    // How the chat core's frames are written: the payload appended in place after room for the
    // header, with a size hint as the chat writers give it (a little over the payload).
    let payload = chat_text(235);
    c.bench_function("encode_text_in_place_235B", |b| {
        b.iter(|| {
            out.clear();
            write_text_with(&mut out, black_box(270), |out| {
                out.extend_from_slice(black_box(payload.as_bytes()))
            })
        })
    });
}

criterion_group! {
    name = benches;
    // Short runs: the machine is shared with other builds.
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = decode, unmask_throughput, encode
}
criterion_main!(benches);
