//! Emotion scoring: a zero-allocation lexicon scorer that labels a message with one of Ekman's six
//! emotions or neutral.
//!
//! [`Scorer::score`] walks the text once ([`tokenizer`]), looks each token up in a lexicon compiled
//! into the binary at build time ([`lexicon`], derived from GoEmotions, VADER and Unicode CLDR by
//! `scripts/lexicon/derive.py`), adds the tokens' per-label weights adjusted by negation,
//! intensifiers, emphasis and contrast ([`scorer`]), and returns a softmax over the seven labels.
//! [`cli`] holds the `analyze` and `eval` commands and [`report`] the accuracy figures they print.

pub mod cli;
mod key_flags;
mod key_hash;
mod lexicon;
pub mod report;
mod scorer;
mod softmax;
mod tokenizer;

pub use scorer::{Params, Scorer};
pub(crate) use softmax::pairwise_sum;

/// The seven labels, in the fixed order used by [`Scores`] and on the wire. One byte, the
/// discriminant the index (`chat::wire` builds a label in a vector register).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Emotion {
    Anger,
    Disgust,
    Fear,
    Joy,
    Sadness,
    Surprise,
    Neutral,
}

impl Emotion {
    pub const ALL: [Emotion; 7] = [
        Emotion::Anger,
        Emotion::Disgust,
        Emotion::Fear,
        Emotion::Joy,
        Emotion::Sadness,
        Emotion::Surprise,
        Emotion::Neutral,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Emotion::Anger => "anger",
            Emotion::Disgust => "disgust",
            Emotion::Fear => "fear",
            Emotion::Joy => "joy",
            Emotion::Sadness => "sadness",
            Emotion::Surprise => "surprise",
            Emotion::Neutral => "neutral",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// The label named `name` (as written by [`Emotion::as_str`], ASCII case ignored).
    pub fn from_name(name: &str) -> Option<Emotion> {
        Emotion::ALL
            .into_iter()
            .find(|e| e.as_str().eq_ignore_ascii_case(name))
    }
}

/// Seven probabilities summing to 1, indexed by [`Emotion::index`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scores {
    values: [f32; 7],
}

impl Scores {
    /// Scores as given, normalized or not: for tests of what consumes them.
    #[cfg(test)]
    pub(crate) fn from_values(values: [f32; 7]) -> Scores {
        Scores { values }
    }

    pub fn get(&self, emotion: Emotion) -> f32 {
        self.values[emotion.index()]
    }

    pub fn as_array(&self) -> &[f32; 7] {
        &self.values
    }

    /// The most likely label; ties go to neutral, then to the earlier label.
    pub fn dominant(&self) -> Emotion {
        let mut best = Emotion::Neutral;
        for e in Emotion::ALL {
            if self.get(e) > self.get(best) {
                best = e;
            }
        }
        best
    }

    pub fn confidence(&self) -> f32 {
        self.get(self.dominant())
    }
}
