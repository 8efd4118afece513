//! How each stem is played in each style, as far as decoding needs it: whether it is a single
//! line (one note at a time) and whether the notes it strikes together end together. The
//! decoder thresholds every pitch on its own, so a decoded sample can overlap two notes of a
//! line that never overlaps, or cut one voice of a block chord short. Both facts are counted
//! on the training pieces by `refrain train calibrate` and stored in the DiT's config;
//! decoding then plays each stem the way its style's training pieces do.

use crate::compose::arranger::make_monophonic;
use crate::music::Note;

/// A stem whose training notes overlap an earlier note at most this often is a single line.
pub const SINGLE_LINE_MAX_OVERLAP: f64 = 0.01;
/// A stem whose strikes (two or more notes starting together) end raggedly at most this often
/// ends its strikes together. The training data's chords end raggedly 0.04-2.1 % of the time
/// outside ambient (11 %), its drums 4-23 %: the bound sits in that gap.
pub const STRIKES_MAX_RAGGED: f64 = 0.03;

/// What the training notes of one stem in one style show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlayingCounts {
    pub notes: u64,
    /// Notes that start while an earlier note (or one starting with them) still sounds.
    pub overlapping: u64,
    /// Groups of two or more notes with one start.
    pub strikes: u64,
    /// Strikes whose notes do not all have one duration.
    pub ragged_strikes: u64,
}

impl PlayingCounts {
    /// Adds one track's notes (any order).
    pub fn add(&mut self, notes: &[Note]) {
        let mut sorted = notes.to_vec();
        sorted.sort_by_key(|n| (n.start, n.duration));
        self.notes += sorted.len() as u64;
        let mut sounding_until = None;
        for note in &sorted {
            if sounding_until.is_some_and(|end| note.start < end) {
                self.overlapping += 1;
            }
            sounding_until =
                Some(sounding_until.map_or(note.end(), |end: u32| end.max(note.end())));
        }
        for strike in sorted.chunk_by(|a, b| a.start == b.start) {
            if strike.len() > 1 {
                self.strikes += 1;
                if strike.iter().any(|n| n.duration != strike[0].duration) {
                    self.ragged_strikes += 1;
                }
            }
        }
    }

    /// How the stem is played, judged from these counts.
    pub fn playing(&self) -> Playing {
        let share = |part: u64, whole: u64| part as f64 / whole.max(1) as f64;
        Playing {
            single_line: self.notes > 0
                && share(self.overlapping, self.notes) <= SINGLE_LINE_MAX_OVERLAP,
            strikes_end_together: self.strikes > 0
                && share(self.ragged_strikes, self.strikes) <= STRIKES_MAX_RAGGED,
        }
    }
}

/// How one stem is played in one style.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Playing {
    pub single_line: bool,
    pub strikes_end_together: bool,
}

impl Playing {
    /// Plays decoded `notes` this way: a strike's notes all take its most common duration (the
    /// longer on a tie), and a single line keeps one note per start, each ending where the
    /// next starts (the arranger's `make_monophonic`).
    pub fn apply(&self, notes: &mut Vec<Note>) {
        if self.strikes_end_together {
            end_strikes_together(notes);
        }
        if self.single_line {
            make_monophonic(notes);
        }
    }
}

fn end_strikes_together(notes: &mut [Note]) {
    notes.sort_by_key(|n| (n.start, n.duration, n.pitch));
    for strike in notes.chunk_by_mut(|a, b| a.start == b.start) {
        // Sorted by duration inside the strike: the longest run of one duration wins, the
        // later (longer) one on a tie.
        let mut best = (0, strike[0].duration);
        for run in strike.chunk_by(|a, b| a.duration == b.duration) {
            if run.len() >= best.0 {
                best = (run.len(), run[0].duration);
            }
        }
        for note in strike.iter_mut() {
            note.duration = best.1;
        }
    }
    notes.sort();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(start: u32, duration: u32, pitch: i32) -> Note {
        Note {
            start,
            duration,
            pitch,
            velocity: 90,
        }
    }

    #[test]
    fn counts_overlaps_and_ragged_strikes() {
        let mut counts = PlayingCounts::default();
        // A line, then a triad with one voice cut short, then a note under the triad's tail.
        counts.add(&[
            note(0, 2, 60),
            note(2, 2, 62),
            note(4, 4, 60),
            note(4, 4, 64),
            note(4, 2, 67),
            note(6, 1, 72),
        ]);
        assert_eq!(
            counts,
            PlayingCounts {
                notes: 6,
                overlapping: 3,
                strikes: 1,
                ragged_strikes: 1,
            }
        );
        let playing = counts.playing();
        assert!(!playing.single_line && !playing.strikes_end_together);

        let mut line = PlayingCounts::default();
        line.add(&[note(0, 2, 60), note(2, 2, 62), note(4, 4, 64)]);
        assert_eq!(
            line.playing(),
            Playing {
                single_line: true,
                strikes_end_together: false,
            }
        );
        let mut chords = PlayingCounts::default();
        chords.add(&[
            note(0, 4, 60),
            note(0, 4, 64),
            note(4, 4, 62),
            note(4, 4, 65),
        ]);
        assert_eq!(
            chords.playing(),
            Playing {
                single_line: false,
                strikes_end_together: true,
            }
        );
        assert_eq!(PlayingCounts::default().playing(), Playing::default());
    }

    #[test]
    fn strikes_take_their_most_common_duration() {
        let mut notes = vec![
            note(0, 8, 60),
            note(0, 3, 64),
            note(0, 8, 67),
            note(0, 8, 72),
            note(8, 2, 60),
            note(8, 4, 64),
            note(12, 1, 50),
        ];
        Playing {
            single_line: false,
            strikes_end_together: true,
        }
        .apply(&mut notes);
        assert_eq!(
            notes,
            vec![
                note(0, 8, 60),
                note(0, 8, 64),
                note(0, 8, 67),
                note(0, 8, 72),
                // A tie goes to the longer.
                note(8, 4, 60),
                note(8, 4, 64),
                note(12, 1, 50),
            ]
        );
    }

    #[test]
    fn a_single_line_keeps_one_note_per_start_and_cuts_overlaps() {
        let mut notes = vec![
            note(0, 4, 60),
            note(0, 2, 67),
            note(2, 4, 64),
            note(8, 2, 62),
        ];
        Playing {
            single_line: true,
            strikes_end_together: false,
        }
        .apply(&mut notes);
        assert_eq!(notes, vec![note(0, 2, 67), note(2, 4, 64), note(8, 2, 62)]);

        let mut untouched = vec![note(0, 4, 60), note(0, 2, 67), note(2, 4, 64)];
        let before = untouched.clone();
        Playing::default().apply(&mut untouched);
        assert_eq!(untouched, before);
    }
}
