//! Replays every committed fuzz input (seed corpora in `fuzz/corpus/<target>/` and crash
//! reproducers in `fuzz/regressions/<target>/`) through the same target functions the fuzzer
//! runs, so a plain `cargo test` guards them without libFuzzer.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use emotibot::fuzz_targets;

const FUZZ_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz");

/// The files of `fuzz/<kind>/<target>/`, sorted so failures are reported in a stable order; an
/// absent directory has none.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let directory = Path::new(FUZZ_DIR).join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&directory) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `target` over every corpus and regression input and fails with the list of inputs that
/// panicked. A target without seeds fails too: an empty corpus would make this test vacuous.
fn replay(name: &str, target: fn(&[u8])) {
    let corpus = inputs("corpus", name);
    assert!(!corpus.is_empty(), "fuzz/corpus/{name}/ has no seeds");
    let regressions = inputs("regressions", name);
    let mut failures = Vec::new();
    for path in corpus.iter().chain(&regressions) {
        let data = std::fs::read(path)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
        if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
            failures.push(path.display().to_string());
        }
    }
    println!(
        "{name}: replayed {} corpus and {} regression inputs",
        corpus.len(),
        regressions.len()
    );
    assert!(
        failures.is_empty(),
        "{name} panicked on {} input(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn ws_frames_corpus() {
    replay("ws_frames", fuzz_targets::ws_frames);
}

#[test]
fn http_head_corpus() {
    replay("http_head", fuzz_targets::http_head);
}

#[test]
fn emotion_corpus() {
    replay("emotion", fuzz_targets::emotion);
}

#[test]
fn client_message_corpus() {
    replay("client_message", fuzz_targets::client_message);
}

#[test]
fn jwt_corpus() {
    replay("jwt", fuzz_targets::jwt);
}
