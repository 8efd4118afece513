//! The reasoning loop: for each segment, K particles denoise from independent noises; at
//! chosen steps a critic judges every particle's predicted clean segment, weak ones are
//! pruned and strong ones branched; the best finished particle is accepted only if it clears
//! the threshold, otherwise the segment is retracted and retried, and when retries run out
//! the previous segment is retracted too. Every decision becomes a [`TraceEvent`].

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the loop decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// A finished candidate kept for the song.
    Accept,
    /// A finished candidate below the threshold (or a guarded copy), not kept.
    Reject,
    /// A particle dropped at a checkpoint.
    Prune,
    /// A particle kept at a checkpoint (and branched when it has more than one copy).
    Resample,
    /// A segment taken back: its attempt failed, a fresh one follows.
    Retract,
    /// The previous, already accepted segment taken back because this one could not be
    /// written after it.
    Backtrack,
}

impl Decision {
    pub fn name(self) -> &'static str {
        match self {
            Decision::Accept => "accept",
            Decision::Reject => "reject",
            Decision::Prune => "prune",
            Decision::Resample => "resample",
            Decision::Retract => "retract",
            Decision::Backtrack => "backtrack",
        }
    }
}

/// One line of trace.jsonl.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceEvent {
    pub segment: usize,
    /// Section the segment's first written bar belongs to, e.g. "verse".
    pub section: String,
    /// Song bars the segment writes, `[start, end)`.
    pub bars: [u32; 2],
    pub attempt: u32,
    /// Denoising step (1-based) of a checkpoint; absent for decisions on finished candidates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub particle: Option<usize>,
    pub decision: Decision,
    /// The critic's overall probability, when it judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overall: Option<f32>,
    /// The critic's probability per aspect (`critic::ASPECTS`), when it judged.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aspects: BTreeMap<String, f32>,
    pub reason: String,
}
