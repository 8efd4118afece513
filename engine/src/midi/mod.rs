//! MIDI import and export through `midly`: type 0 and 1, tempo and time-signature events,
//! the drum channel and General MIDI programs. Hostile input gives an error, never a panic.
//!
//! Export ([`write_midi`]) writes what a DAW expects: a conductor track, then one named track per
//! stem on its own channel with a General MIDI program (drums on channel 10). Import
//! ([`read_midi`]) quantises any type-0/1 file onto refrain's sixteenth grid and sorts its parts
//! into the five stems; files refrain wrote come back note for note.

mod export;
mod import;
#[cfg(test)]
mod tests;

use crate::Error;
use crate::music::{Key, Mode, Song};

pub use export::write_midi;

/// Ticks per quarter note in files refrain writes.
pub const TICKS_PER_QUARTER: u16 = 480;

/// Ticks per grid step (a sixteenth note) in files refrain writes.
pub const TICKS_PER_STEP: u32 = TICKS_PER_QUARTER as u32 / crate::music::STEPS_PER_QUARTER;

/// Longest song an imported file may hold, in bars.
pub const MAX_IMPORT_BARS: u32 = 4096;

/// Most notes an imported file may hold.
pub const MAX_IMPORT_NOTES: usize = 500_000;

/// Prefix of the text event that records the exact key (modes included), which a MIDI key
/// signature cannot express.
const KEY_TEXT_PREFIX: &str = "refrain key: ";

/// Reads a type-0 or type-1 file into a song on the grid, assigning tracks to stems.
pub fn read_midi(bytes: &[u8]) -> Result<Song, Error> {
    import::read_midi(bytes)
}

/// Sharps (positive) or flats (negative) of a key's signature, as a MIDI key-signature event
/// carries them. F# major is written with six sharps rather than six flats.
fn key_signature_accidentals(key: Key) -> i8 {
    let major_tonic = (key.tonic + key.mode.relative_major_shift()) % 12;
    // Position on the circle of fifths: each fifth up adds a sharp.
    let fifths = (i32::from(major_tonic) * 7).rem_euclid(12);
    if fifths <= 6 {
        fifths as i8
    } else {
        (fifths - 12) as i8
    }
}

/// The major or minor key of a MIDI key-signature event, if its accidental count is valid.
fn key_from_signature(accidentals: i8, minor: bool) -> Option<Key> {
    if !(-7..=7).contains(&accidentals) {
        return None;
    }
    let major_tonic = (i32::from(accidentals) * 7).rem_euclid(12) as u8;
    Some(if minor {
        Key::new((major_tonic + 9) % 12, Mode::Minor)
    } else {
        Key::new(major_tonic, Mode::Major)
    })
}
