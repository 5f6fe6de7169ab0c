//! Pins the scorer's output bit for bit, so that speed work can never change a result unnoticed.
//!
//! Every line of the GoEmotions train and dev sets and the MELD dev set in `../shared/data` is
//! scored as written, ASCII-uppercased (ALL-CAPS paths) and as a `#hashtag` of its words glued
//! together (hashtag splitting); so are a set of hand-written edge cases and hostile inputs. The
//! f32 bit patterns of all the `Scores` are folded into one FNV-1a digest, which must equal the
//! digest the scorer produced when this test was written. CI always has `../shared`; elsewhere the
//! data-set part skips with a notice and only the hand-written part is checked.

use std::path::{Path, PathBuf};

use emotibot::emotion::Scorer;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Digest of the hand-written and hostile inputs.
const PINNED_HANDWRITTEN: u64 = 0x46c1_f609_996f_08b6;
/// Digest of the three data sets' lines and their variants.
const PINNED_DATA_SETS: u64 = 0xc497_d1fd_26b3_5f6b;

struct Digest {
    hash: u64,
    texts: usize,
}

impl Digest {
    fn new() -> Self {
        Digest {
            hash: FNV_OFFSET,
            texts: 0,
        }
    }

    fn add_bytes(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.hash = (self.hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
        }
    }

    fn score(&mut self, scorer: &Scorer, text: &str) {
        let scores = scorer.score(text);
        for value in scores.as_array() {
            self.add_bytes(&value.to_bits().to_le_bytes());
        }
        self.texts += 1;
    }

    /// The text as written, ASCII-uppercased, and as one `#hashtag` of its words.
    fn score_with_variants(&mut self, scorer: &Scorer, text: &str) {
        self.score(scorer, text);
        self.score(scorer, &text.to_ascii_uppercase());
        let hashtag: String = std::iter::once("#")
            .chain(text.split_whitespace())
            .collect();
        self.score(scorer, &hashtag);
    }
}

fn handwritten_inputs() -> Vec<String> {
    let mut inputs: Vec<String> = [
        "",
        " ",
        "a",
        "I",
        "x9Y ",
        "7up",
        "ok, ",
        "NOT happy",
        "Happy!",
        "aab aaab",
        "ABCDEFG abcdefgh abcdefghi",
        "WHY?",
        "don't won’t I’m ‘quote’ 'quote'",
        "ça va très bien, merci 日本語 тест",
        "zZ@ Zz[ `a`",
        "at 9:30 or 10:30",
        "mixedCASEword and",
        "tooooo long, sooo goooood, happyyy, reallyyy sad",
        "I have never been so scared, never this happy",
        "not very happy; not slightly sad. never so",
        "It was good, but the ending made me sad but fine",
        "#SoHappy #blessed #BestDayEver #ABC #aB1c",
        "what?!?!! really??? wow!!!!!!!",
        "nice :) :'( >:( :D <3 :-/ lol:) :)lol :):)",
        "ok 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 \u{200d}\u{200d} ❤️ 😡 😢\u{200d}🫠\u{200d}🫠 😂\u{200d}",
        "\u{200d}\u{200d}🏽\u{fe0f} hi",
        "\u{feff}\u{0}\t\r\n\u{7f}",
        "\u{0}\u{feff}\u{10ffff}",
        "mightn't shouldn't isn't n't",
        "ALL CAPS MESSAGE WITH HATE",
        "I HATE this so MUCH",
        "abcdefghijabcdefghijabcdefghijabcdefghij happy",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    inputs.extend([
        "a".repeat(100_000),
        "a".repeat(40) + "b".repeat(40).as_str(),
        "😂".repeat(30_000),
        "\u{200d}".repeat(30_000),
        "👩\u{200d}".repeat(20_000),
        "🏽".repeat(20_000),
        "!?".repeat(50_000),
        ":".repeat(100_000),
        "n't ".repeat(20_000),
        "not ".repeat(25_000),
        "very ".repeat(20_000) + "happy",
        "but ".repeat(25_000),
        "so very happy but not sad ".repeat(4_000),
    ]);
    inputs
}

fn shared_data(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(relative)
}

#[test]
fn handwritten_and_hostile_scores_are_unchanged() {
    let scorer = Scorer::new();
    let mut digest = Digest::new();
    for text in handwritten_inputs() {
        digest.score_with_variants(&scorer, &text);
    }
    println!("handwritten digest {:#018x}", digest.hash);
    assert_eq!(digest.hash, PINNED_HANDWRITTEN);
}

#[test]
fn data_set_scores_are_unchanged() {
    let files = ["goemotions/train.tsv", "goemotions/dev.tsv", "meld/dev.tsv"];
    let paths: Vec<PathBuf> = files.iter().map(|f| shared_data(f)).collect();
    if let Some(missing) = paths.iter().find(|p| !p.exists()) {
        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(!in_ci, "{} is missing in CI", missing.display());
        println!(
            "SKIPPED: {} not found (no ../shared on this machine)",
            missing.display()
        );
        return;
    }
    let scorer = Scorer::new();
    let mut digest = Digest::new();
    for path in &paths {
        let data = match std::fs::read_to_string(path) {
            Ok(data) => data,
            Err(e) => panic!("cannot read {}: {e}", path.display()),
        };
        for line in data.lines() {
            let text = line.split('\t').next().unwrap_or_default();
            digest.score_with_variants(&scorer, text);
        }
    }
    println!(
        "data-set digest {:#018x} over {} texts",
        digest.hash, digest.texts
    );
    assert!(digest.texts > 3 * 45_000, "too few texts read");
    assert_eq!(digest.hash, PINNED_DATA_SETS);
}
