//! Accuracy figures for a labelled set: confusion matrix, accuracy, per-label precision, recall
//! and F1, and macro-F1 over all seven labels (the figure that matters when joy and neutral
//! dominate a set).

use std::fmt;

use super::Emotion;

/// Counts of (true label, predicted label) pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Confusion {
    counts: [[u32; 7]; 7],
}

/// Precision, recall and F1 of one label; 0 where undefined (nothing predicted or no support).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LabelStats {
    pub emotion: Emotion,
    /// Examples whose true label this is.
    pub support: u32,
    /// Examples predicted as this label.
    pub predicted: u32,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

fn ratio(numerator: u32, denominator: u32) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        f64::from(numerator) / f64::from(denominator)
    }
}

impl Confusion {
    pub fn record(&mut self, truth: Emotion, predicted: Emotion) {
        let cell = &mut self.counts[truth.index()][predicted.index()];
        *cell = cell.saturating_add(1);
    }

    pub fn count(&self, truth: Emotion, predicted: Emotion) -> u32 {
        self.counts[truth.index()][predicted.index()]
    }

    pub fn total(&self) -> u32 {
        self.counts.iter().flatten().sum()
    }

    pub fn accuracy(&self) -> f64 {
        let correct = Emotion::ALL.iter().map(|&e| self.count(e, e)).sum();
        ratio(correct, self.total())
    }

    pub fn label_stats(&self, emotion: Emotion) -> LabelStats {
        let i = emotion.index();
        let true_positives = self.counts[i][i];
        let support = self.counts[i].iter().sum();
        let predicted = self.counts.iter().map(|row| row[i]).sum();
        let precision = ratio(true_positives, predicted);
        let recall = ratio(true_positives, support);
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        LabelStats {
            emotion,
            support,
            predicted,
            precision,
            recall,
            f1,
        }
    }

    /// Unweighted mean of the seven labels' F1.
    pub fn macro_f1(&self) -> f64 {
        Emotion::ALL
            .iter()
            .map(|&e| self.label_stats(e).f1)
            .sum::<f64>()
            / Emotion::ALL.len() as f64
    }
}

/// A line of an eval file that could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MalformedLine {
    /// 1-based line number.
    pub line: usize,
    pub reason: String,
}

/// The outcome of `emotibot eval`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EvalReport {
    pub confusion: Confusion,
    pub malformed: Vec<MalformedLine>,
}

impl EvalReport {
    pub fn accuracy(&self) -> f64 {
        self.confusion.accuracy()
    }

    pub fn macro_f1(&self) -> f64 {
        self.confusion.macro_f1()
    }
}

/// Malformed lines listed in full before the report says "and N more".
const MALFORMED_SHOWN: usize = 10;

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.confusion;
        writeln!(f, "examples:  {}", c.total())?;
        writeln!(f, "accuracy:  {:.4}", c.accuracy())?;
        writeln!(f, "macro-F1:  {:.4}  (over all seven labels)", c.macro_f1())?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<9} {:>9} {:>7} {:>7} {:>8} {:>10}",
            "label", "precision", "recall", "F1", "support", "predicted"
        )?;
        for e in Emotion::ALL {
            let s = c.label_stats(e);
            writeln!(
                f,
                "{:<9} {:>9.3} {:>7.3} {:>7.3} {:>8} {:>10}",
                e.as_str(),
                s.precision,
                s.recall,
                s.f1,
                s.support,
                s.predicted
            )?;
        }
        writeln!(f)?;
        writeln!(f, "confusion matrix (rows: true label, columns: predicted)")?;
        write!(f, "{:<9}", "")?;
        for e in Emotion::ALL {
            write!(f, " {:>8}", e.as_str())?;
        }
        writeln!(f)?;
        for truth in Emotion::ALL {
            write!(f, "{:<9}", truth.as_str())?;
            for predicted in Emotion::ALL {
                write!(f, " {:>8}", c.count(truth, predicted))?;
            }
            writeln!(f)?;
        }
        if !self.malformed.is_empty() {
            writeln!(f)?;
            writeln!(f, "malformed lines skipped: {}", self.malformed.len())?;
            for m in self.malformed.iter().take(MALFORMED_SHOWN) {
                writeln!(f, "  line {}: {}", m.line, m.reason)?;
            }
            if self.malformed.len() > MALFORMED_SHOWN {
                writeln!(
                    f,
                    "  ... and {} more",
                    self.malformed.len() - MALFORMED_SHOWN
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Emotion::*;

    #[test]
    fn perfect_predictions_score_one_on_seen_labels() {
        let mut c = Confusion::default();
        for e in Emotion::ALL {
            c.record(e, e);
        }
        assert_eq!(c.accuracy(), 1.0);
        assert_eq!(c.macro_f1(), 1.0);
    }

    #[test]
    fn precision_recall_and_f1_follow_the_counts() {
        let mut c = Confusion::default();
        c.record(Joy, Joy);
        c.record(Joy, Neutral);
        c.record(Neutral, Joy);
        c.record(Neutral, Neutral);
        c.record(Neutral, Neutral);
        let joy = c.label_stats(Joy);
        assert_eq!((joy.support, joy.predicted), (2, 2));
        assert!((joy.precision - 0.5).abs() < 1e-9 && (joy.recall - 0.5).abs() < 1e-9);
        let neutral = c.label_stats(Neutral);
        assert!((neutral.precision - 2.0 / 3.0).abs() < 1e-9);
        assert!((neutral.f1 - 2.0 / 3.0).abs() < 1e-9);
        // Labels never seen nor predicted count as F1 0 in the seven-label mean.
        assert!((c.macro_f1() - (0.5 + 2.0 / 3.0) / 7.0).abs() < 1e-9);
        assert!((c.accuracy() - 0.6).abs() < 1e-9);
    }

    #[test]
    fn empty_matrix_has_zero_scores() {
        let c = Confusion::default();
        assert_eq!((c.total(), c.accuracy(), c.macro_f1()), (0, 0.0, 0.0));
    }

    #[test]
    fn display_lists_labels_matrix_and_malformed_lines() {
        let mut report = EvalReport::default();
        report.confusion.record(Anger, Disgust);
        report.malformed.push(MalformedLine {
            line: 3,
            reason: "no tab".to_owned(),
        });
        let text = report.to_string();
        assert!(text.contains("macro-F1:  0.0000"));
        assert!(text.contains("confusion matrix"));
        assert!(text.contains("line 3: no tab"));
        let anger_row = text.lines().rfind(|l| l.starts_with("anger")).unwrap_or("");
        assert_eq!(
            anger_row.split_whitespace().collect::<Vec<_>>(),
            ["anger", "0", "1", "0", "0", "0", "0", "0"]
        );
    }
}
