//! Compiles the committed emotion lexicon (`data/emotion/lexicon.tsv`, made by
//! `scripts/lexicon/derive.py`) and VADER's negators and degree adverbs
//! (`data/emotion/vader_modifiers.tsv`) into static Rust tables. Nothing is parsed at run time.
//!
//! The layout is chosen for the cache lines a lookup touches, since in the server the tables are
//! mostly cold: an open-addressing hash table (linear probing, at most two thirds full) whose
//! 32-byte slots are the entries themselves, key and weights, two to a line, so that a lookup
//! (hit or miss) usually reads one line. The weights fit because the lexicon gives them to four
//! decimals: each is stored as a count of ten-thousandths in an `i16`, which the scorer divides
//! by 10,000 — giving back the very `f32` that parsing the decimal gives, checked here for every
//! weight. The few entries that do not fit (a weight beyond ±3.2767, or a negative zero) keep
//! `f32` weights in a side table. Keys frequent in chat (`src/emotion/hot_keys.txt`) are inserted
//! first, so they sit in their home slots, and their bytes come first in `KEY_BYTES`.

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
/// Weights are stored as counts of this unit (`WEIGHT_UNIT` in `src/emotion/lexicon.rs`).
const WEIGHT_UNIT: f32 = 10_000.0;
/// The entry's label weights are in the side table (`WIDE` in `src/emotion/lexicon.rs`).
const WIDE: u8 = 1 << 7;
/// A VADER degree adverb (`BOOSTS` in `src/emotion/lexicon.rs`).
const BOOSTS: u8 = 1 << 6;

/// `value` as a count of [`WEIGHT_UNIT`]s that the scorer turns back into exactly `value`, if
/// there is one that fits an `i16`.
fn in_units(value: f32) -> Option<i16> {
    let units = (f64::from(value) * f64::from(WEIGHT_UNIT)).round();
    let units = i16::try_from(units as i64).ok()?;
    ((f32::from(units) / WEIGHT_UNIT).to_bits() == value.to_bits()).then_some(units)
}

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
    let mut slot_of_key = vec![0usize; order.len()];

    // At most two thirds full, so that probe sequences, and misses above all, stay short.
    let slots = (entries.len() * 3 / 2).next_power_of_two();
    let slot_bits = slots.trailing_zeros();
    let mut table: Vec<Option<String>> = vec![None; slots];
    let mut key_bytes: Vec<u8> = Vec::new();
    let mut code = String::new();
    code.push_str("// Generated by build/lexicon.rs from data/emotion/*.tsv; do not edit.\n");
    writeln!(
        code,
        "pub(in crate::emotion::lexicon) const BIAS: [f32; 7] = {bias:?};"
    )
    .unwrap();
    // (`key_start`, label weights) of the entries whose weights do not fit, by `key_start`.
    let mut wide_labels: Vec<(usize, [f32; LABELS])> = Vec::new();
    for (index, key) in order.iter().enumerate() {
        let entry = &entries[*key];
        let mut slot = key_hash::key_slot(key_hash::key_hash(key.as_bytes()), slot_bits);
        while table[slot].is_some() {
            slot = (slot + 1) & (slots - 1);
        }
        slot_of_key[index] = slot;
        assert!(
            (1..=u8::MAX as usize).contains(&key.len()),
            "key length out of range: {key:?}"
        );
        // The scorer finds keys of at most seven bytes by their zero-padded first word alone,
        // which stands for one length only if no key holds a zero byte.
        assert!(
            !key.as_bytes().contains(&0),
            "key with a zero byte: {key:?}"
        );
        let booster = in_units(entry.booster)
            .unwrap_or_else(|| panic!("booster of {key:?} is not a whole number of units"));
        let mut flags = entry.flags | key_flags::key_flags(key.as_bytes());
        if booster != 0 {
            flags |= BOOSTS;
        }
        let narrow: Option<Vec<i16>> = entry.weights.iter().map(|&w| in_units(w)).collect();
        let mut units = match narrow {
            Some(labels) => labels,
            None => {
                flags |= WIDE;
                wide_labels.push((key_bytes.len(), entry.weights));
                vec![0; LABELS]
            }
        };
        units.push(booster);
        table[slot] = Some(format!(
            "Entry {{ key_prefix: {:#x}, key_start: {}, key_len: {}, flags: {flags}, units: WeightUnits({units:?}) }},",
            key_hash::key_word(key.as_bytes(), 0),
            key_bytes.len(),
            key.len(),
        ));
        key_bytes.extend_from_slice(key.as_bytes());
    }
    writeln!(
        code,
        "pub(in crate::emotion::lexicon) static WIDE_LABELS: [(u32, [f32; 7]); {}] = {wide_labels:?};",
        wide_labels.len()
    )
    .unwrap();
    writeln!(
        code,
        "pub(in crate::emotion::lexicon) static EMOTICON_LENGTHS: [u16; 256] = {emoticon_lengths:?};"
    )
    .unwrap();
    writeln!(
        code,
        "pub(in crate::emotion::lexicon) const EXCLAIM: usize = {};\n\
         pub(in crate::emotion::lexicon) const QUESTION: usize = {};",
        slot_of_key[exclaim], slot_of_key[question]
    )
    .unwrap();
    // An empty slot is all zeros: a key length of 0, which no key has, ends a probe sequence.
    writeln!(
        code,
        "pub(in crate::emotion::lexicon) const SLOT_BITS: u32 = {slot_bits};\n\
         pub(in crate::emotion::lexicon) static SLOTS: [Entry; {slots}] = ["
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
