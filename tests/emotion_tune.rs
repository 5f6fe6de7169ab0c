//! Tunes the scorer's global knobs ([`Params`]) on the dev sets by coordinate ascent on the mean of
//! the GoEmotions-dev and MELD-dev macro-F1 (one in-domain, one out-of-domain set, so that a knob
//! only moves when it helps both on balance), and prints the best `Params` to paste into
//! `Params::TUNED`. Ignored by default: run it with
//! `cargo test --release --test emotion_tune -- --ignored --nocapture`.

use std::path::Path;

use emotibot::emotion::report::Confusion;
use emotibot::emotion::{Emotion, Params, Scorer};

fn load(relative: &str) -> Vec<(String, Emotion)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (text, label) = line.rsplit_once('\t')?;
            Some((text.to_owned(), Emotion::from_name(label.trim())?))
        })
        .collect()
}

fn macro_f1(params: Params, set: &[(String, Emotion)]) -> f64 {
    let scorer = Scorer::with_params(params);
    let mut confusion = Confusion::default();
    for (text, truth) in set {
        confusion.record(*truth, scorer.score(text).dominant());
    }
    confusion.macro_f1()
}

type Knob = (&'static str, fn(&mut Params) -> &mut f32, &'static [f32]);

#[test]
#[ignore = "slow: tunes Params on the dev sets; run by hand"]
fn tune_params_on_dev_sets() {
    let goemotions = load("goemotions/dev.tsv");
    let meld = load("meld/dev.tsv");
    if goemotions.is_empty() || meld.is_empty() {
        println!("SKIPPED: dev sets not found under ../shared/data");
        return;
    }
    let objective = |p: Params| {
        let (g, m) = (macro_f1(p, &goemotions), macro_f1(p, &meld));
        ((g + m) / 2.0, g, m)
    };
    const OFFSETS: &[f32] = &[-1.0, -0.6, -0.3, -0.1, 0.0, 0.1, 0.3, 0.6, 1.0];
    const GAINS: &[f32] = &[0.0, 0.5, 1.0, 1.5, 2.0];
    const BOOSTS: &[f32] = &[0.0, 0.15, 0.3, 0.5, 0.733, 1.0];
    let knobs: [Knob; 15] = [
        ("anger", |p| &mut p.label_offsets[0], OFFSETS),
        ("disgust", |p| &mut p.label_offsets[1], OFFSETS),
        ("fear", |p| &mut p.label_offsets[2], OFFSETS),
        ("joy", |p| &mut p.label_offsets[3], OFFSETS),
        ("sadness", |p| &mut p.label_offsets[4], OFFSETS),
        ("surprise", |p| &mut p.label_offsets[5], OFFSETS),
        (
            "negation_scale",
            |p| &mut p.negation_scale,
            &[-1.0, -0.74, -0.5, -0.25, 0.0],
        ),
        ("booster_gain", |p| &mut p.booster_gain, GAINS),
        ("caps_boost", |p| &mut p.caps_boost, BOOSTS),
        ("elongation_boost", |p| &mut p.elongation_boost, BOOSTS),
        ("hashtag_boost", |p| &mut p.hashtag_boost, BOOSTS),
        (
            "exclaim_gain",
            |p| &mut p.exclaim_gain,
            &[0.0, 0.15, 0.292, 0.5, 0.8],
        ),
        (
            "question_gain",
            |p| &mut p.question_gain,
            &[0.0, 0.18, 0.4, 0.7, 1.0],
        ),
        (
            "contrast_before",
            |p| &mut p.contrast_before,
            &[0.25, 0.5, 0.75, 1.0],
        ),
        (
            "contrast_after",
            |p| &mut p.contrast_after,
            &[1.0, 1.25, 1.5, 2.0],
        ),
    ];
    let mut best = Params::TUNED;
    let (mut best_score, g, m) = objective(best);
    println!("start: mean {best_score:.4} (GoEmotions {g:.4}, MELD {m:.4})");
    for round in 0..3 {
        let mut improved = false;
        for (name, knob, values) in &knobs {
            for &value in values.iter() {
                let mut candidate = best;
                let base = *knob(&mut candidate);
                // Label offsets move relative to where they are; the others take absolute values.
                let is_offset = name.len() <= 8 && Emotion::from_name(name).is_some();
                *knob(&mut candidate) = if is_offset { base + value } else { value };
                let (score, g, m) = objective(candidate);
                if score > best_score + 1e-6 {
                    println!("round {round}: {name} = {:.3}: mean {score:.4} (GoEmotions {g:.4}, MELD {m:.4})", *knob(&mut candidate));
                    best = candidate;
                    best_score = score;
                    improved = true;
                }
            }
        }
        if !improved {
            break;
        }
    }
    let (score, g, m) = objective(best);
    println!("best: mean {score:.4} (GoEmotions {g:.4}, MELD {m:.4})\n{best:#?}");
    assert!(score >= objective(Params::TUNED).0);
}
