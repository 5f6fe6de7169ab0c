//! The JSON half of a message's cost: reading the client's frame, turning scores into the wire
//! form, encoding the emotion fragment once, and the sender's `emotion` result and the room
//! `message` event built around it (the frames every chat message produces), next to the scoring
//! they follow, so the load figures' CPU per message can be split into parts.
//!
//! Instruction counts, repeatable on a busy machine, come from callgrind; each function's
//! inclusive count divided by its calls:
//!
//! ```sh
//! cargo bench --bench json_encode --no-run
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/json.cg target/release/deps/json_encode-* \
//!     --bench --profile-time 1 json_encode/emotion_result
//! callgrind_annotate --inclusive=yes /tmp/json.cg | grep write_emotion_result
//! ```

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use emotibot::chat::wire::{self, EmotionJson, MessageFields, WireEmotion};
use emotibot::emotion::Scorer;
use std::hint::black_box;

const TEXT: &str = "ugh my flight got cancelled again and nobody at the desk knows anything";
/// The chat message a client sends most, as it arrives.
const CLIENT_MESSAGE: &str = r#"{"type":"message","id":"c12345","text":"ugh my flight got cancelled again and nobody at the desk knows anything"}"#;

fn encoding(c: &mut Criterion) {
    let scorer = Scorer::new();
    let scores = scorer.score(TEXT);
    let emotion = WireEmotion::from_scores(&scores);
    let emotion_json = EmotionJson::new(&emotion);
    let mut group = c.benchmark_group("json_encode");
    group.throughput(Throughput::Elements(1));

    group.bench_function("parse_client_message", |b| {
        b.iter(|| wire::parse_client_message(black_box(CLIENT_MESSAGE)).is_ok())
    });
    group.bench_function("wire_emotion_from_scores", |b| {
        b.iter(|| WireEmotion::from_scores(black_box(&scores)))
    });
    group.bench_function("emotion_json", |b| {
        b.iter(|| EmotionJson::new(black_box(&emotion)))
    });
    // The two steps above at once, as the server takes them for a chat message.
    group.bench_function("emotion_json_from_scores", |b| {
        b.iter(|| EmotionJson::from_scores(black_box(&scores)))
    });
    // Includes encoding the emotion fragment.
    group.bench_function("emotion_result", |b| {
        b.iter(|| {
            wire::emotion_result(
                black_box(Some("c12345")),
                black_box("user:load-42"),
                black_box(Some(1234)),
                black_box(&emotion),
            )
        })
    });
    // With the emotion fragment already encoded (for the sender's result).
    group.bench_function("message_event", |b| {
        b.iter(|| {
            wire::message_event(MessageFields {
                room: black_box("lobby"),
                seq: black_box(1234),
                from: black_box("load-42"),
                name: None,
                id: black_box("c12345"),
                text: black_box(TEXT),
                emotion: black_box(&emotion_json),
                ts: black_box(1_800_000_000_000),
            })
        })
    });
    // The step before encoding, for scale: what one message costs to score.
    group.bench_function("score_then_encode_emotion_result", |b| {
        b.iter(|| {
            let emotion = WireEmotion::from_scores(&scorer.score(black_box(TEXT)));
            wire::emotion_result(Some("c12345"), "user:load-42", Some(1234), &emotion)
        })
    });
    // The same as the server does it: the fragment encoded with the units, then the result
    // written from it.
    group.bench_function("score_then_write_emotion_result", |b| {
        b.iter(|| {
            let emotion_json = EmotionJson::from_scores(&scorer.score(black_box(TEXT)));
            let mut out = Vec::new();
            wire::write_emotion_result(
                &mut out,
                Some("c12345"),
                "user:load-42",
                Some(1234),
                &emotion_json,
            );
            out
        })
    });
    group.finish();
}

criterion_group!(benches, encoding);
criterion_main!(benches);
