//! Compiles the committed emotion lexicon (`data/emotion/lexicon.tsv`, made by
//! `scripts/lexicon/derive.py`) and VADER's negators and degree adverbs
//! (`data/emotion/vader_modifiers.tsv`) into static Rust tables. Nothing is parsed at run time.
//!
//! The layout is chosen for the cache lines a lookup touches, since in the server the tables are
//! mostly cold: an open-addressing hash table (linear probing, at most two thirds full) whose
//! 16-byte slots hold each key's first word, length and rule bits, so that a probe reads one line
//! and a miss nothing else; and an array of 32-byte weight records, read only on a hit, that never
//! straddle a line. Keys frequent in chat (`src/emotion/hot_keys.txt`) come first in the weights
//! array and in `KEY_BYTES`, so their records share few lines, and are inserted into the hash table
//! first, so they sit in their home slots.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

#[path = "../src/emotion/key_flags.rs"]
#[allow(dead_code)] // the scorer uses the bit names; the build only needs `key_flags`
mod key_flags;
#[path = "../src/emotion/key_hash.rs"]
mod key_hash;

const LABELS: usize = 7;
/// In VADER's negator list; the other flag bits come from `key_flags`.
const NEGATOR: u8 = 1;
/// Longest emoticon the tokenizer tries (`MAX_EMOTICON_BYTES` in `src/emotion/tokenizer.rs`).
const MAX_EMOTICON_BYTES: usize = 8;

#[derive(Default)]
struct RawEntry {
    weights: [f32; LABELS],
    booster: f32,
    flags: u8,
}

fn data_path(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/emotion")
        .join(name)
}

fn read(name: &str) -> String {
    let path = data_path(name);
    println!("cargo:rerun-if-changed={}", path.display());
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The keys of `src/emotion/hot_keys.txt`, most frequent first.
fn hot_keys() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/emotion/hot_keys.txt");
    println!("cargo:rerun-if-changed={}", path.display());
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_weights(fields: &[&str], line: &str) -> [f32; LABELS] {
    assert_eq!(
        fields.len(),
        LABELS,
        "expected {LABELS} weights in lexicon line {line:?}"
    );
    let mut weights = [0.0; LABELS];
    for (slot, field) in weights.iter_mut().zip(fields) {
        *slot = field
            .parse()
            .unwrap_or_else(|e| panic!("bad weight {field:?} in lexicon line {line:?}: {e}"));
    }
    weights
}

pub fn generate(out_dir: &Path) {
    let mut bias = None;
    let mut entries: BTreeMap<String, RawEntry> = BTreeMap::new();
    for line in read("lexicon.tsv").lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        assert!(fields.len() > 2, "short lexicon line {line:?}");
        let weights = parse_weights(&fields[2..], line);
        if fields[0] == "bias" {
            bias = Some(weights);
        } else {
            entries.entry(fields[1].to_owned()).or_default().weights = weights;
        }
    }
    let bias = bias.expect("lexicon.tsv has a bias row");

    for line in read("vader_modifiers.tsv").lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 3, "bad modifier line {line:?}");
        let entry = entries.entry(fields[1].to_owned()).or_default();
        match fields[0] {
            "negator" => entry.flags |= NEGATOR,
            "booster" => {
                entry.booster = fields[2]
                    .parse()
                    .unwrap_or_else(|e| panic!("bad booster in {line:?}: {e}"))
            }
            other => panic!("unknown modifier kind {other:?}"),
        }
    }

    assert!(
        entries.len() < u16::MAX as usize,
        "entry index must fit in u16"
    );
    // Per first byte, bit `n` set if some key of `n` bytes (2..=8, all printable ASCII) starts
    // with it: the tokenizer tries an emoticon only where one can start, and only at those lengths.
    let mut emoticon_lengths = [0u16; 256];
    for key in entries.keys() {
        let key = key.as_bytes();
        let Some(&first) = key.first() else { continue };
        if first.is_ascii_punctuation()
            && (2..=MAX_EMOTICON_BYTES).contains(&key.len())
            && key.iter().all(u8::is_ascii_graphic)
        {
            emoticon_lengths[usize::from(first)] |= 1 << key.len();
        }
    }
    // Hot keys first, most frequent first; then the rest in key order.
    let mut order: Vec<&str> = Vec::with_capacity(entries.len());
    let mut placed = std::collections::BTreeSet::new();
    for key in hot_keys() {
        if let Some((key, _)) = entries.get_key_value(&key) {
            if placed.insert(key.as_str()) {
                order.push(key);
            }
        }
    }
    order.extend(
        entries
            .keys()
            .map(String::as_str)
            .filter(|k| !placed.contains(k)),
    );
    let index_of = |key: &str| {
        order
            .iter()
            .position(|k| *k == key)
            .unwrap_or_else(|| panic!("the lexicon has no {key:?} entry"))
    };
    let (exclaim, question) = (index_of("!"), index_of("?"));

    // At most two thirds full, so that probe sequences, and misses above all, stay short.
    let slots = (entries.len() * 3 / 2).next_power_of_two();
    let mut table: Vec<Option<String>> = vec![None; slots];
    let mut key_bytes: Vec<u8> = Vec::new();
    let mut code = String::new();
    code.push_str("// Generated by build/lexicon.rs from data/emotion/*.tsv; do not edit.\n");
    writeln!(
        code,
        "pub(in crate::emotion::lexicon) static BIAS: [f32; 7] = {bias:?};"
    )
    .unwrap();
    writeln!(
        code,
        "pub(in crate::emotion::lexicon) static WEIGHTS: [Weights; {}] = [",
        order.len()
    )
    .unwrap();
    for (index, key) in order.iter().enumerate() {
        let entry = &entries[*key];
        writeln!(
            code,
            "Weights {{ labels: {:?}, booster: {:?} }},",
            entry.weights, entry.booster
        )
        .unwrap();
        let mut slot = key_hash::key_hash(key.as_bytes()) as usize & (slots - 1);
        while table[slot].is_some() {
            slot = (slot + 1) & (slots - 1);
        }
        assert!(
            (1..=u8::MAX as usize).contains(&key.len()),
            "key length out of range: {key:?}"
        );
        table[slot] = Some(format!(
            "Entry {{ key_prefix: {:#x}, key_start: {}, weights_index: {index}, key_len: {}, flags: {} }},",
            key_hash::key_word(key.as_bytes(), 0),
            key_bytes.len(),
            key.len(),
            entry.flags | key_flags::key_flags(key.as_bytes()),
        ));
        key_bytes.extend_from_slice(key.as_bytes());
    }
    code.push_str("];\n");
    writeln!(
        code,
        "pub(in crate::emotion::lexicon) static EMOTICON_LENGTHS: [u16; 256] = {emoticon_lengths:?};"
    )
    .unwrap();
    writeln!(
        code,
        "pub(in crate::emotion::lexicon) const EXCLAIM: usize = {exclaim};\n\
         pub(in crate::emotion::lexicon) const QUESTION: usize = {question};"
    )
    .unwrap();
    // An empty slot is all zeros: a key length of 0, which no key has, ends a probe sequence.
    writeln!(
        code,
        "pub(in crate::emotion::lexicon) static SLOTS: [Entry; {slots}] = ["
    )
    .unwrap();
    for slot in &table {
        code.push_str(slot.as_deref().unwrap_or("Entry::EMPTY,"));
        code.push('\n');
    }
    code.push_str("];\n");
    // Zero padding: the scorer compares key tails eight bytes at a time, and the last key's last
    // word must not run off the end.
    key_bytes.extend_from_slice(&[0; 8]);
    std::fs::write(out_dir.join("emotion_keys.bin"), &key_bytes).expect("write emotion_keys.bin");
    writeln!(
        code,
        "pub(in crate::emotion::lexicon) static KEY_BYTES: &[u8; {}] = include_bytes!(concat!(env!(\"OUT_DIR\"), \"/emotion_keys.bin\"));",
        key_bytes.len()
    )
    .unwrap();
    std::fs::write(out_dir.join("emotion_lexicon.rs"), code).expect("write emotion_lexicon.rs");
}
