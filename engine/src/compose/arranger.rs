//! The arranger: lead sheet -> five stems (drums, bass, chords, lead, texture) in a style,
//! with grooves, bass idioms, voicings, section variants, fills and energy that follows form.

use super::{LeadSheet, SongRng};
use crate::music::{Song, Stem};

/// Arranges a lead sheet for the given stems (any subset of [`Stem::ALL`]).
pub fn arrange(sheet: &LeadSheet, stems: &[Stem], rng: &mut SongRng) -> Song {
    let _ = (sheet, stems, rng);
    todo!("arranger")
}
