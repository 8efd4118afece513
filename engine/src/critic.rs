//! What the reasoning loop asks of a critic: a judgement of candidate segments, overall and
//! per musical aspect, with reasons in words. The learned critic lives in the scorer crate;
//! the engine knows only this trait, so tests drive the loop with a mock.

use crate::Error;
use crate::music::{Mood, Song};
use serde::{Deserialize, Serialize};

/// The aspects a critic judges, in the order of [`Judgement::aspects`].
pub const ASPECTS: [&str; 5] = ["harmony", "rhythm", "melody", "continuity", "adherence"];

/// One candidate segment as the critic sees it: the whole window (clean context bars and the
/// bars just written) as a short song under the requested conditions.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// The window as a song: `bars` bars in window order, with the plan's key, meter, tempo,
    /// style, chords per beat and sections over exactly those bars.
    pub song: Song,
    pub mood: Mood,
    /// Window bars (0-based inside `song`) that the candidate wrote; the rest is context.
    pub written: std::ops::Range<u32>,
}

/// A critic's verdict on one candidate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// Calibrated probability that the segment is good music that follows its conditions.
    pub overall: f32,
    /// Calibrated probability per aspect of [`ASPECTS`].
    pub aspects: [f32; ASPECTS.len()],
    /// Why, in words: the features that moved the scores most, e.g. "lead: 3 of 11 notes
    /// outside D dorian".
    pub reasons: Vec<String>,
}

impl Judgement {
    /// The weakest aspect and its probability.
    pub fn weakest(&self) -> (&'static str, f32) {
        let (index, value) =
            self.aspects
                .iter()
                .enumerate()
                .fold(
                    (0, f32::INFINITY),
                    |best, (i, &v)| {
                        if v < best.1 { (i, v) } else { best }
                    },
                );
        (ASPECTS[index], value)
    }
}

/// Judges candidate segments. Implementations must be deterministic: the same candidates
/// give the same judgements.
pub trait Critic {
    /// One judgement per candidate, in order.
    fn judge(&mut self, candidates: &[Candidate]) -> Result<Vec<Judgement>, Error>;

    /// Names and sha256 of the weights behind the judgements, for manifests.
    fn models(&self) -> Vec<crate::generate::ModelEntry> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weakest_aspect_is_named() {
        let judgement = Judgement {
            overall: 0.4,
            aspects: [0.9, 0.8, 0.2, 0.7, 0.95],
            reasons: vec![],
        };
        assert_eq!(judgement.weakest(), ("melody", 0.2));
    }
}
