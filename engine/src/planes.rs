//! Per stem-bar planes, the representation the models see: onset, hold and velocity over
//! (pitch row x step). Conversion both ways is exact for notes on the grid.
//!
//! A note sets `onset` and `velocity` (velocity / 127) at its first step and `hold` at every
//! step it sounds, its first included. A note that crosses a bar line continues in the next
//! bar as `hold` without `onset`; decoding joins such continuations back into one note.

use crate::Error;
use crate::music::{Meter, Note, Stem};
use serde::{Deserialize, Serialize};

/// The three planes of one stem in one bar, each `rows x steps`, row-major.
///
/// # Shapes
/// `onset`, `hold`, `velocity`: `[rows, steps]` flattened, row = pitch - `Stem::pitch_range().0`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BarPlanes {
    pub stem: Stem,
    pub rows: u32,
    pub steps: u32,
    pub onset: Vec<f32>,
    pub hold: Vec<f32>,
    pub velocity: Vec<f32>,
}

impl BarPlanes {
    /// Empty planes for a stem in a meter.
    pub fn empty(stem: Stem, meter: Meter) -> BarPlanes {
        let rows = stem.pitch_range().1;
        let steps = meter.steps_per_bar();
        let cells = (rows * steps) as usize;
        BarPlanes {
            stem,
            rows,
            steps,
            onset: vec![0.0; cells],
            hold: vec![0.0; cells],
            velocity: vec![0.0; cells],
        }
    }

    fn cell(&self, row: u32, step: u32) -> usize {
        (row * self.steps + step) as usize
    }

    /// Number of onsets (notes starting in this bar).
    pub fn onset_count(&self) -> usize {
        self.onset.iter().filter(|&&v| v >= 0.5).count()
    }
}

/// Splits a stem's notes into one [`BarPlanes`] per bar.
///
/// Notes must lie inside `bars` bars, inside the stem's pitch range, with velocity >= 1 and
/// duration >= 1; two notes of one pitch must not overlap (the planes cannot tell them
/// apart). Anything else is an error naming the note.
pub fn notes_to_planes(
    stem: Stem,
    meter: Meter,
    bars: u32,
    notes: &[Note],
) -> Result<Vec<BarPlanes>, Error> {
    let steps_per_bar = meter.steps_per_bar();
    let total_steps = bars * steps_per_bar;
    let (low, rows) = stem.pitch_range();
    let mut planes: Vec<BarPlanes> = (0..bars).map(|_| BarPlanes::empty(stem, meter)).collect();
    for note in notes {
        let row = note.pitch - low;
        if row < 0 || row >= rows as i32 {
            return Err(Error::Representation(format!(
                "{stem} note at step {} has pitch {} outside the stem's range {}..{}",
                note.start,
                note.pitch,
                low,
                low + rows as i32
            )));
        }
        if note.duration == 0 || note.velocity == 0 || note.velocity > 127 {
            return Err(Error::Representation(format!(
                "{stem} note at step {} has duration {} and velocity {}; both must be at least 1 \
                 and velocity at most 127",
                note.start, note.duration, note.velocity
            )));
        }
        if note.end() > total_steps {
            return Err(Error::Representation(format!(
                "{stem} note at step {} ends at step {}, after the last bar ({total_steps} steps)",
                note.start,
                note.end()
            )));
        }
        let row = row as u32;
        let (bar, step) = (note.start / steps_per_bar, note.start % steps_per_bar);
        let first = planes[bar as usize].cell(row, step);
        if planes[bar as usize].hold[first] > 0.0 {
            return Err(Error::Representation(format!(
                "{stem} note at step {} overlaps another note of pitch {}",
                note.start, note.pitch
            )));
        }
        planes[bar as usize].onset[first] = 1.0;
        planes[bar as usize].velocity[first] = f32::from(note.velocity) / 127.0;
        for s in note.start..note.end() {
            let plane = &mut planes[(s / steps_per_bar) as usize];
            let cell = plane.cell(row, s % steps_per_bar);
            if s > note.start && plane.hold[cell] > 0.0 {
                return Err(Error::Representation(format!(
                    "{stem} note at step {} overlaps another note of pitch {}",
                    note.start, note.pitch
                )));
            }
            plane.hold[cell] = 1.0;
        }
    }
    Ok(planes)
}

/// Decodes consecutive bars of planes (values thresholded at 0.5) back into notes, sorted.
/// A hold with no sounding note to continue is ignored.
pub fn planes_to_notes(planes: &[BarPlanes]) -> Vec<Note> {
    let Some(first) = planes.first() else {
        return Vec::new();
    };
    let (low, _) = first.stem.pitch_range();
    let rows = first.rows;
    let steps_per_bar = first.steps;
    let mut notes = Vec::new();
    // Index into `notes` of the note still sounding on each row.
    let mut sounding: Vec<Option<usize>> = vec![None; rows as usize];
    for (bar, plane) in planes.iter().enumerate() {
        for step in 0..steps_per_bar {
            let global = bar as u32 * steps_per_bar + step;
            for row in 0..rows {
                let cell = plane.cell(row, step);
                if plane.onset[cell] >= 0.5 {
                    let velocity = (plane.velocity[cell] * 127.0).round().clamp(1.0, 127.0) as u8;
                    notes.push(Note {
                        start: global,
                        duration: 1,
                        pitch: low + row as i32,
                        velocity,
                    });
                    sounding[row as usize] = Some(notes.len() - 1);
                } else if plane.hold[cell] >= 0.5 {
                    if let Some(i) = sounding[row as usize] {
                        notes[i].duration += 1;
                    }
                } else {
                    sounding[row as usize] = None;
                }
            }
        }
    }
    notes.sort();
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stem_strategy() -> impl Strategy<Value = Stem> {
        prop::sample::select(Stem::ALL.to_vec())
    }

    fn meter_strategy() -> impl Strategy<Value = Meter> {
        prop::sample::select(Meter::ALL.to_vec())
    }

    /// Random grid notes with no two notes of one pitch overlapping.
    fn song_notes(stem: Stem, meter: Meter, bars: u32) -> impl Strategy<Value = Vec<Note>> {
        let total = bars * meter.steps_per_bar();
        let (low, rows) = stem.pitch_range();
        prop::collection::vec((0..total, 1..=total, 0..rows as i32, 1u8..=127), 0..40).prop_map(
            move |raw| {
                let mut notes: Vec<Note> = Vec::new();
                for (start, duration, row, velocity) in raw {
                    let duration = duration.min(total - start).max(1);
                    let candidate = Note {
                        start,
                        duration,
                        pitch: low + row,
                        velocity,
                    };
                    let clashes = notes.iter().any(|n| {
                        n.pitch == candidate.pitch
                            && n.start < candidate.end()
                            && candidate.start < n.end()
                    });
                    if !clashes {
                        notes.push(candidate);
                    }
                }
                notes.sort();
                notes
            },
        )
    }

    proptest! {
        #[test]
        fn notes_round_trip_through_planes_exactly(
            (stem, meter, bars, notes) in (stem_strategy(), meter_strategy(), 1u32..6)
                .prop_flat_map(|(s, m, b)| (Just(s), Just(m), Just(b), song_notes(s, m, b)))
        ) {
            let planes = notes_to_planes(stem, meter, bars, &notes).unwrap();
            prop_assert_eq!(planes.len(), bars as usize);
            prop_assert_eq!(planes_to_notes(&planes), notes);
        }

        #[test]
        fn planes_round_trip_through_notes_exactly(
            (stem, meter, bars, notes) in (stem_strategy(), meter_strategy(), 1u32..4)
                .prop_flat_map(|(s, m, b)| (Just(s), Just(m), Just(b), song_notes(s, m, b)))
        ) {
            let planes = notes_to_planes(stem, meter, bars, &notes).unwrap();
            let again = notes_to_planes(stem, meter, bars, &planes_to_notes(&planes)).unwrap();
            prop_assert_eq!(again, planes);
        }
    }

    #[test]
    fn a_note_across_the_bar_line_is_a_hold_without_onset() {
        let note = Note {
            start: 14,
            duration: 4,
            pitch: 0,
            velocity: 100,
        };
        let planes = notes_to_planes(Stem::Lead, Meter::FourFour, 2, &[note]).unwrap();
        let row = (0 - Stem::Lead.pitch_range().0) as u32;
        let second = &planes[1];
        assert_eq!(second.onset[second.cell(row, 0)], 0.0);
        assert_eq!(second.hold[second.cell(row, 1)], 1.0);
        assert_eq!(second.hold[second.cell(row, 2)], 0.0);
        assert_eq!(planes_to_notes(&planes), vec![note]);
    }

    #[test]
    fn bad_notes_are_errors_not_panics() {
        let outside = Note {
            start: 0,
            duration: 1,
            pitch: 200,
            velocity: 90,
        };
        assert!(notes_to_planes(Stem::Bass, Meter::FourFour, 1, &[outside]).is_err());
        let too_long = Note {
            start: 10,
            duration: 10,
            pitch: 0,
            velocity: 90,
        };
        assert!(notes_to_planes(Stem::Lead, Meter::FourFour, 1, &[too_long]).is_err());
        let a = Note {
            start: 0,
            duration: 4,
            pitch: 0,
            velocity: 90,
        };
        let b = Note { start: 2, ..a };
        assert!(notes_to_planes(Stem::Lead, Meter::FourFour, 1, &[a, b]).is_err());
    }
}
