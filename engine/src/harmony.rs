//! Chord labelling: infers one chord per beat (or per half bar) from a melody and its key,
//! so that public-domain tunes, which carry no harmony, can be arranged.

use crate::music::{ChordTrack, Key, Meter, Note};

/// How often the harmony may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HarmonicRhythm {
    PerBeat,
    PerHalfBar,
    PerBar,
}

/// Labels chords for a key-relative melody; the result has one chord per felt beat for
/// `bars` bars (repeated within each window of `rhythm`).
pub fn label_chords(
    key: Key,
    meter: Meter,
    bars: u32,
    melody: &[Note],
    rhythm: HarmonicRhythm,
) -> ChordTrack {
    let _ = (key, meter, bars, melody, rhythm);
    todo!("chord labeller")
}
