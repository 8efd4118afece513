//! The stand-in composer: per-style chord-progression and melody writers, and the arranger
//! that turns a lead sheet (melody + chords + form) into a full five-stem [`Song`].
//!
//! It is also the data source the models learn from: every corpus tune and every written
//! song passes through [`arranger::arrange`].

pub mod arranger;
pub mod melody;
pub mod progression;

use crate::music::{ChordTrack, Key, Meter, Mood, Note, Section, Style};
use rand_chacha::ChaCha8Rng;

/// The random source of every composing decision; seeded from the request (determinism).
pub type SongRng = ChaCha8Rng;

/// What the arranger needs: form, harmony and tune, all key-relative.
#[derive(Clone, Debug, PartialEq)]
pub struct LeadSheet {
    pub style: Style,
    pub mood: Mood,
    pub tempo_bpm: f64,
    pub meter: Meter,
    pub key: Key,
    /// Bars of music; `sections` tile `0..bars` in order.
    pub bars: u32,
    pub sections: Vec<crate::music::Section>,
    /// One chord per felt beat, `bars * meter.beats_per_bar()` entries.
    pub chords: ChordTrack,
    /// The melody, key-relative, on the grid, inside `0..bars`; may be empty in some sections
    /// (intros, outros).
    pub melody: Vec<Note>,
    /// The sheet is played round and round: its last bar leads back into its first
    /// instead of ending the song.
    pub looped: bool,
}

impl LeadSheet {
    /// The same sheet told in `key` (see [`Song::rekeyed`](crate::music::Song::rekeyed)).
    pub fn rekeyed(&self, key: Key) -> LeadSheet {
        let shift = self.key.shift_to(key);
        let mut sheet = self.clone();
        sheet.chords = self.chords.rekeyed(self.key, key);
        for note in &mut sheet.melody {
            note.pitch += shift;
        }
        sheet.key = key;
        sheet
    }

    pub fn section_at(&self, bar: u32) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| bar >= s.start_bar && bar < s.end_bar())
    }
}
