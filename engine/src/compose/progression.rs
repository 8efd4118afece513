//! Per-style chord-progression writer: idiomatic progressions per section, cadences at
//! section ends, harmonic rhythm that suits the style and meter.

use super::SongRng;
use crate::music::{ChordTrack, Key, Meter, Mood, Section, Style};

/// Writes one chord per felt beat for the whole form.
pub fn write_progression(
    style: Style,
    mood: Mood,
    key: Key,
    meter: Meter,
    sections: &[Section],
    rng: &mut SongRng,
) -> ChordTrack {
    let _ = (style, mood, key, meter, sections, rng);
    todo!("progression writer")
}
