//! Emotion scoring. Placeholder with the final API; the lexicon scorer replaces the body.

/// The seven labels, in the fixed order used by [`Scores`] and on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
}

/// Seven probabilities summing to 1, indexed by [`Emotion::index`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scores {
    values: [f32; 7],
}

impl Scores {
    pub fn get(&self, emotion: Emotion) -> f32 {
        self.values[emotion.index()]
    }

    pub fn as_array(&self) -> &[f32; 7] {
        &self.values
    }

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

/// Scores text for emotion. Cheap to construct: all tables are static.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scorer;

impl Scorer {
    pub fn new() -> Self {
        Scorer
    }

    pub fn score(&self, _text: &str) -> Scores {
        let mut values = [0.0; 7];
        values[Emotion::Neutral.index()] = 1.0;
        Scores { values }
    }
}
pub mod cli {
    //! Placeholder until the lexicon scorer lands.
    pub enum OutputFormat {
        Json,
        Label,
    }
    pub fn analyze(
        _i: impl std::io::BufRead,
        _o: impl std::io::Write,
        _f: OutputFormat,
    ) -> std::io::Result<()> {
        Ok(())
    }
    pub fn eval(_p: &std::path::Path, _o: impl std::io::Write) -> std::io::Result<()> {
        Ok(())
    }
}
