//! Per-style melody writer: motifs, phrases with repetition and variation, chord tones on
//! strong beats, contour and range that suit the style.

use super::SongRng;
use crate::music::{ChordTrack, Key, Meter, Mood, Note, Section, Style};

/// Writes a key-relative melody over the form and chords (lead stem range).
pub fn write_melody(
    style: Style,
    mood: Mood,
    key: Key,
    meter: Meter,
    sections: &[Section],
    chords: &ChordTrack,
    rng: &mut SongRng,
) -> Vec<Note> {
    let _ = (style, mood, key, meter, sections, chords, rng);
    todo!("melody writer")
}
