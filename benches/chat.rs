//! Chat core costs per client frame, without sockets: a message in a private room open in two
//! tabs, the load generator's chat mix over 100 users, one message fanned out to a 1,000-member
//! room, and a typing refresh.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use emotibot::chat::auth::{AuthConfig, Authenticator, Claims, KeyConfig};
use emotibot::chat::{ChatConfig, ChatCore, ConnId, Delivery, Outbox};
use std::hint::black_box;

include!("chat/core.rs");

/// The load generator's chat lines (`cargo bench --bench load -- chat`).
#[allow(dead_code)]
#[path = "load/texts.rs"]
mod texts;

const ROOM_MEMBERS: usize = 1000;

/// Counts what would be framed, so the work is not optimised away. Frames written in place
/// (`send_with`) go into one reused buffer, as the reactor writes them into a connection's output.
#[derive(Default)]
struct CountingOutbox {
    frames: u64,
    bytes: u64,
    scratch: Vec<u8>,
}

impl Outbox for CountingOutbox {
    fn send(&mut self, _conn: ConnId, json: &str, _delivery: Delivery) {
        self.frames += 1;
        self.bytes += json.len() as u64;
    }
    fn close(&mut self, _conn: ConnId, _code: u16, _reason: &str) {}
    fn send_with(
        &mut self,
        _conn: ConnId,
        _delivery: Delivery,
        size_hint: usize,
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        self.scratch.clear();
        self.scratch.reserve(size_hint);
        write(&mut self.scratch);
        self.frames += 1;
        self.bytes += self.scratch.len() as u64;
    }
}

const LOBBY_MESSAGE: &str = r#"{"type":"message","id":"c1","text":"Has anyone seen the release notes? I'm a bit worried about the migration","room":"lobby"}"#;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("chat_core");
    group.throughput(Throughput::Elements(1));

    group.bench_function("private_message_two_tabs", |b| {
        let mut chat = core();
        let mut out = CountingOutbox::default();
        chat.open(0, Some(claims("alice")), 0, &mut out);
        chat.open(1, Some(claims("alice")), 0, &mut out);
        b.iter(|| chat.text(0, black_box(MESSAGE), 1, &mut out));
        black_box(out.bytes);
    });

    group.bench_function("typing_refresh_with_preview", |b| {
        let mut chat = core();
        let mut out = CountingOutbox::default();
        chat.open(0, Some(claims("alice")), 0, &mut out);
        chat.open(1, Some(claims("alice")), 0, &mut out);
        let typing = r#"{"type":"typing","text":"I can't believe the demo"}"#;
        b.iter(|| chat.text(0, black_box(typing), 1, &mut out));
        black_box(out.bytes);
    });

    // The closed-loop load's work without its sockets: 100 users, each in their private room,
    // four messages from one then four from another picked at random, the lines cycled through
    // in a random order (in a fixed one the branch predictors learn the sequence). What the
    // server spends per message beyond its `--echo` reactor, where the kernel's time is not.
    group.bench_function("load_mix_100_users", |b| {
        let mut chat = core();
        let mut out = CountingOutbox::default();
        const USERS: usize = 100;
        for conn in 0..USERS {
            chat.open(conn, Some(claims(&format!("user{conn}"))), 0, &mut out);
        }
        let messages: Vec<String> = texts::CHAT_LINES
            .iter()
            .enumerate()
            .map(|(i, line)| format!(r#"{{"type":"message","id":"c{i}","text":"{line}"}}"#))
            .collect();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut random = move |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        };
        let mut order = Vec::new();
        while order.len() < 4096 {
            let conn = random(USERS);
            for _ in 0..4 {
                order.push((conn, random(messages.len())));
            }
        }
        let mut turn = 0;
        b.iter(|| {
            let (conn, line) = order[turn % order.len()];
            turn += 1;
            chat.text(conn, black_box(&messages[line]), 1, &mut out)
        });
        black_box(out.frames);
    });

    group.throughput(Throughput::Elements(ROOM_MEMBERS as u64));
    group.bench_function("lobby_message_fanout_1000", |b| {
        let mut chat = core();
        let mut out = CountingOutbox::default();
        for conn in 0..ROOM_MEMBERS {
            chat.open(conn, Some(claims(&format!("user{conn}"))), 0, &mut out);
            chat.text(conn, r#"{"type":"join","room":"lobby"}"#, 0, &mut out);
        }
        b.iter(|| chat.text(0, black_box(LOBBY_MESSAGE), 1, &mut out));
        black_box(out.frames);
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
