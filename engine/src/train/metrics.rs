//! Note-level reconstruction metrics: a note counts as found when a decoded note starts on
//! the same step at the same pitch (duration and velocity are reported by the losses).

use crate::music::Note;
use std::collections::BTreeSet;

/// True positives, false positives and false negatives over any number of stem-bars.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoteCounts {
    pub true_positives: u64,
    pub false_positives: u64,
    pub false_negatives: u64,
}

impl NoteCounts {
    /// Adds one stem-bar: `decoded` against `truth`, matched on (start, pitch).
    pub fn add(&mut self, decoded: &[Note], truth: &[Note]) {
        let decoded: BTreeSet<(u32, i32)> = decoded.iter().map(|n| (n.start, n.pitch)).collect();
        let truth: BTreeSet<(u32, i32)> = truth.iter().map(|n| (n.start, n.pitch)).collect();
        let found = decoded.intersection(&truth).count() as u64;
        self.true_positives += found;
        self.false_positives += decoded.len() as u64 - found;
        self.false_negatives += truth.len() as u64 - found;
    }

    pub fn precision(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }

    pub fn recall(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }

    /// Harmonic mean of precision and recall; 1.0 when there was nothing to find and
    /// nothing was decoded (silence reconstructed as silence is perfect).
    pub fn f1(&self) -> f64 {
        let denominator = 2 * self.true_positives + self.false_positives + self.false_negatives;
        ratio(2 * self.true_positives, denominator)
    }
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        1.0
    } else {
        numerator as f64 / denominator as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(start: u32, pitch: i32) -> Note {
        Note {
            start,
            duration: 2,
            pitch,
            velocity: 90,
        }
    }

    #[test]
    fn perfect_reconstruction_scores_one() {
        let notes = [note(0, 0), note(4, 7), note(8, 12)];
        let mut counts = NoteCounts::default();
        counts.add(&notes, &notes);
        assert_eq!(counts.f1(), 1.0);
        assert_eq!(counts.precision(), 1.0);
        assert_eq!(counts.recall(), 1.0);
    }

    #[test]
    fn partial_reconstruction_scores_the_harmonic_mean() {
        let truth = [note(0, 0), note(4, 7), note(8, 12), note(12, 0)];
        // Two right, one at the wrong pitch, one missing; duration differences do not count.
        let decoded = [
            Note {
                duration: 9,
                ..note(0, 0)
            },
            note(4, 7),
            note(8, 11),
        ];
        let mut counts = NoteCounts::default();
        counts.add(&decoded, &truth);
        assert_eq!(
            counts,
            NoteCounts {
                true_positives: 2,
                false_positives: 1,
                false_negatives: 2
            }
        );
        assert!((counts.precision() - 2.0 / 3.0).abs() < 1e-12);
        assert!((counts.recall() - 0.5).abs() < 1e-12);
        assert!((counts.f1() - 4.0 / 7.0).abs() < 1e-12);
    }

    #[test]
    fn empty_bars_score_one_and_notes_from_nothing_score_zero() {
        let mut silent = NoteCounts::default();
        silent.add(&[], &[]);
        assert_eq!(silent.f1(), 1.0);
        let mut invented = NoteCounts::default();
        invented.add(&[note(0, 0)], &[]);
        assert_eq!(invented.f1(), 0.0);
        let mut missed = NoteCounts::default();
        missed.add(&[], &[note(0, 0)]);
        assert_eq!(missed.f1(), 0.0);
    }
}
