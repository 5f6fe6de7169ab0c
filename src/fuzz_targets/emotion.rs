//! `emotion`: arbitrary bytes, read as lossy UTF-8, into the emotion scorer.
//!
//! Invariants: every score is finite and in [0, 1], the seven sum to 1 (the wire promises 1e-3),
//! the dominant label carries the highest score and is the confidence, and scoring is
//! deterministic.

use crate::emotion::{Emotion, Scorer};

/// How far the seven scores may sum from 1; the protocol promises 1e-3 on the wire.
const SUM_TOLERANCE: f32 = 1e-3;

pub fn emotion(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let scorer = Scorer::new();
    let scores = scorer.score(&text);
    let mut sum = 0.0f32;
    for (label, &value) in Emotion::ALL.iter().zip(scores.as_array()) {
        assert!(
            value.is_finite(),
            "{} is not finite: {value}",
            label.as_str()
        );
        assert!(
            (0.0..=1.0).contains(&value),
            "{} is outside [0, 1]: {value}",
            label.as_str()
        );
        assert_eq!(scores.get(*label), value, "get() disagrees with as_array()");
        sum += value;
    }
    assert!(
        (sum - 1.0).abs() <= SUM_TOLERANCE,
        "scores sum to {sum}, not 1"
    );
    let dominant = scores.dominant();
    for label in Emotion::ALL {
        assert!(
            scores.get(label) <= scores.get(dominant),
            "{} scores above the dominant {}",
            label.as_str(),
            dominant.as_str()
        );
    }
    assert_eq!(scores.confidence(), scores.get(dominant));
    assert_eq!(scorer.score(&text), scores, "scoring is not deterministic");
}
