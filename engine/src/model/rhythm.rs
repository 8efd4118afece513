//! Bar-to-bar rhythm coupling for decoding. Real parts repeat their rhythm from bar to bar
//! (a lead's neighbouring bars share 60-80 % of their onset steps in the training data); the
//! DiT's samples, decoded bar by bar, share about half that: each bar's onsets are sure of
//! themselves only where the model is, and the uncertain ones fall either way independently
//! of the bar before. Decoding therefore reads a stem's bars in order and gives an onset
//! where the bar before had one a fixed lift in logits, and takes as much from a step where
//! it had none (a lift alone would ratchet a song's density up bar after bar). The lift is
//! fitted per style and stem
//! by `refrain train calibrate` (with the onset shift, so density stays matched) until the
//! sampled training windows repeat their rhythm as much as the real ones, and stored in the
//! DiT's config; none is applied where the samples already repeat enough.

use crate::model::playing::OnsetUnit;
use crate::music::Note;
use crate::planes::BarPlanes;

/// Couples onset margins bar after bar. `margins` holds one stem's onset logits minus the
/// decision threshold (above zero is an onset) over consecutive bars of `rows x steps`
/// cells, bar-major then row-major. Where the bar before had an onset at a step, this bar
/// gains `lift` there; where it had none, this bar loses `lift` there. By cell
/// (`OnsetUnit::Cells`: a drum keeps its pattern), or by step (`OnsetUnit::Steps`: the
/// step's likeliest cell gains, every cell of a silent step loses; a line or a block of
/// fixed voices keeps its rhythm, the pitch stays the model's choice). Both ways, so that a
/// bar leans towards the rhythm before it without gaining or losing notes bar after bar (a
/// lift alone ratchets a long song's density up). The first bar is unchanged.
pub fn couple_bars(margins: &mut [f32], rows: usize, steps: usize, unit: OnsetUnit, lift: f32) {
    let cells = rows * steps;
    if lift == 0.0 || cells == 0 {
        return;
    }
    let mut before: Vec<bool> = Vec::new();
    for bar in margins.chunks_mut(cells) {
        if !before.is_empty() {
            match unit {
                OnsetUnit::Cells => {
                    for (margin, &on) in bar.iter_mut().zip(&before) {
                        *margin += if on { lift } else { -lift };
                    }
                }
                OnsetUnit::Steps => {
                    for (step, &on) in before.iter().enumerate() {
                        let column = (0..rows).map(|row| row * steps + step);
                        if on {
                            let likeliest = column
                                .max_by(|&a, &b| bar[a].total_cmp(&bar[b]))
                                .expect("rows > 0");
                            bar[likeliest] += lift;
                        } else {
                            for cell in column {
                                bar[cell] -= lift;
                            }
                        }
                    }
                }
            }
        }
        before = match unit {
            OnsetUnit::Cells => bar.iter().map(|&m| m > 0.0).collect(),
            OnsetUnit::Steps => onset_steps(bar, rows, steps),
        };
    }
}

/// [`couple_bars`] on decoded onset probabilities (consecutive bars of one stem; an onset
/// from 0.5 up, as `planes_to_notes` reads them). Only the coupled cells change.
pub fn lift_planes(planes: &mut [BarPlanes], unit: OnsetUnit, lift: f32) {
    let Some(first) = planes.first() else {
        return;
    };
    if lift == 0.0 {
        return;
    }
    let (rows, steps) = (first.rows as usize, first.steps as usize);
    let logit = |p: f32| {
        let p = p.clamp(1e-7, 1.0 - 1e-7);
        (p / (1.0 - p)).ln()
    };
    let before: Vec<f32> = planes
        .iter()
        .flat_map(|plane| plane.onset.iter().map(|&p| logit(p)))
        .collect();
    let mut lifted = before.clone();
    couple_bars(&mut lifted, rows, steps, unit, lift);
    let cells = rows * steps;
    for (bar, plane) in planes.iter_mut().enumerate() {
        let range = bar * cells..(bar + 1) * cells;
        for ((p, old), new) in plane
            .onset
            .iter_mut()
            .zip(&before[range.clone()])
            .zip(&lifted[range])
        {
            if new != old {
                *p = 1.0 / (1.0 + (-new).exp());
            }
        }
    }
}

/// The steps of one bar's margins (`rows x steps`) where any cell is an onset.
pub fn onset_steps(bar: &[f32], rows: usize, steps: usize) -> Vec<bool> {
    (0..steps)
        .map(|step| (0..rows).any(|row| bar[row * steps + step] > 0.0))
        .collect()
}

/// Jaccard similarity of two bars' onset steps; `None` where neither has one (the pair does
/// not count). The groove consistency of `refrain_scorer::features` is its mean, so the
/// calibration fits the lift to the measure the evaluation reports.
pub fn rhythm_similarity(a: &[bool], b: &[bool]) -> Option<f64> {
    let both = a.iter().zip(b).filter(|(x, y)| **x && **y).count();
    let either = a.iter().zip(b).filter(|(x, y)| **x || **y).count();
    (either > 0).then(|| both as f64 / either as f64)
}

/// The polyphony of one stem's notes in a song of `song_steps` steps: the mean number of
/// notes sounding at a step where at least one sounds (0 for a silent stem). It is the
/// polyphony `refrain_scorer::features` reports and song calibration compares.
pub fn polyphony(notes: &[Note], song_steps: u32) -> f64 {
    polyphony_before(notes, song_steps.max(1)).unwrap_or(0.0)
}

/// The mean number of notes sounding at a step before `limit` where at least one sounds
/// (`None`: none sounds), from the notes' spans: the sum of their lengths over the length
/// of their union. It costs the notes, not the steps, so a part of any length (an imported
/// file's notes may end near `u32::MAX`) is measured alike.
pub fn polyphony_before(notes: &[Note], limit: u32) -> Option<f64> {
    let mut spans: Vec<(u32, u32)> = notes
        .iter()
        .map(|n| (n.start, n.start.saturating_add(n.duration).min(limit)))
        .filter(|(start, end)| start < end)
        .collect();
    spans.sort_unstable();
    let sounding: u64 = spans.iter().map(|(s, e)| u64::from(e - s)).sum();
    let (mut covered, mut open) = (0u64, None);
    for (start, end) in spans {
        open = match open {
            Some((from, to)) if start <= to => Some((from, end.max(to))),
            _ => {
                if let Some((from, to)) = open {
                    covered += u64::from(to - from);
                }
                Some((start, end))
            }
        };
    }
    let (from, to) = open?;
    covered += u64::from(to - from);
    Some(sounding as f64 / covered as f64)
}

/// The bar-to-bar groove of one stem's notes in a song of `bars` bars of `steps_per_bar`
/// steps: the sum of [`rhythm_similarity`] over neighbouring bars' onset steps, and the
/// number of pairs it counts (neither bar sounding: not counted). Its mean is the groove
/// consistency `refrain_scorer::features` reports and song calibration fits.
pub fn groove_sum(notes: &[Note], bars: u32, steps_per_bar: u32) -> (f64, usize) {
    let steps = steps_per_bar.max(1);
    let mut patterns = vec![vec![false; steps as usize]; bars as usize];
    for note in notes {
        if let Some(pattern) = patterns.get_mut((note.start / steps) as usize) {
            pattern[(note.start % steps) as usize] = true;
        }
    }
    patterns
        .windows(2)
        .filter_map(|pair| rhythm_similarity(&pair[0], &pair[1]))
        .fold((0.0, 0), |(sum, pairs), similarity| {
            (sum + similarity, pairs + 1)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_leans_towards_the_rhythm_of_the_bar_before() {
        // Two rows, four steps, three bars. Bar 0 has onsets at steps 0 and 2.
        let mut margins = vec![
            1.0, -5.0, 0.5, -5.0, // bar 0, row 0
            -5.0, -5.0, -5.0, -5.0, // bar 0, row 1
            -0.5, -0.2, -5.0, -5.0, // bar 1, row 0
            -5.0, -5.0, -0.3, -5.0, // bar 1, row 1
            -4.5, -4.5, -4.5, -4.5, // bar 2, row 0
            -5.0, -5.0, -5.0, -5.0, // bar 2, row 1
        ];
        let mut by_cells = margins.clone();
        couple_bars(&mut by_cells, 2, 4, OnsetUnit::Cells, 1.0);
        assert_eq!(by_cells[..8], margins[..8], "the first bar is unchanged");
        // Cells (row 0, steps 0 and 2) gain, every other cell loses.
        assert_eq!(
            by_cells[8..16],
            [0.5, -1.2, -4.0, -6.0, -6.0, -6.0, -1.3, -6.0]
        );
        // Bar 1 now has one onset, (row 0, step 0): bar 2 follows it.
        assert_eq!(
            by_cells[16..24],
            [-3.5, -5.5, -5.5, -5.5, -6.0, -6.0, -6.0, -6.0]
        );

        couple_bars(&mut margins, 2, 4, OnsetUnit::Steps, 1.0);
        // Steps 0 and 2 gain on their likeliest cell only (row 0, then row 1); steps 1 and 3
        // lose on every cell.
        assert_eq!(
            margins[8..16],
            [0.5, -1.2, -5.0, -6.0, -5.0, -6.0, 0.7, -6.0]
        );
        assert_eq!(
            onset_steps(&margins[8..16], 2, 4),
            [true, false, true, false]
        );
        assert_eq!(
            margins[16..24],
            [-3.5, -5.5, -3.5, -5.5, -5.0, -6.0, -5.0, -6.0]
        );
    }

    #[test]
    fn coupled_planes_play_the_steps_the_bar_before_played() {
        use crate::music::{Meter, Stem};
        use crate::planes::planes_to_notes;
        let mut planes = vec![BarPlanes::empty(Stem::Lead, Meter::FourFour); 2];
        let cell = |row: usize, step: usize| row * 16 + step;
        planes[0].onset[cell(10, 0)] = 0.9;
        planes[0].onset[cell(12, 8)] = 0.8;
        planes[1].onset[cell(11, 0)] = 0.3; // the likeliest at step 0
        planes[1].onset[cell(12, 0)] = 0.2;
        planes[1].onset[cell(12, 8)] = 0.1;
        planes[1].onset[cell(12, 9)] = 0.6; // no onset there before: loses
        let plain = planes.clone();
        assert_eq!(planes_to_notes(&plain).len(), 3);
        lift_planes(&mut planes, OnsetUnit::Steps, 1.0);
        assert_eq!(planes[0], plain[0]);
        assert!(planes[1].onset[cell(11, 0)] > 0.5, "logit(0.3) + 1 > 0");
        assert!(
            planes[1].onset[cell(12, 0)] == 0.2,
            "not the likeliest: unchanged"
        );
        assert!(planes[1].onset[cell(12, 8)] < 0.5, "logit(0.1) + 1 < 0");
        assert!(planes[1].onset[cell(12, 9)] < 0.5, "logit(0.6) - 1 < 0");
        let notes = planes_to_notes(&planes);
        assert_eq!(notes.len(), 3);
        assert_eq!((notes[2].start, notes[2].pitch), (16, -12 + 11));
        assert_eq!(planes[1].hold, plain[1].hold);
    }

    #[test]
    fn no_lift_changes_nothing_and_similarity_skips_silent_pairs() {
        let margins = vec![0.3, -0.1, 0.2, 0.4];
        let mut same = margins.clone();
        couple_bars(&mut same, 1, 2, OnsetUnit::Steps, 0.0);
        assert_eq!(same, margins);
        assert_eq!(rhythm_similarity(&[false, false], &[false, false]), None);
        assert_eq!(rhythm_similarity(&[true, false], &[true, true]), Some(0.5));
    }

    #[test]
    fn groove_sums_similarities_of_neighbouring_sounding_bars() {
        let note = |start| Note {
            start,
            duration: 1,
            pitch: 0,
            velocity: 100,
        };
        // Four bars of 4 steps: {0, 2}, {0}, silent, {1}; a note past the last bar is ignored.
        let notes = [note(0), note(2), note(4), note(13), note(16)];
        let (sum, pairs) = groove_sum(&notes, 4, 4);
        // Pairs: 0-1 (1/2), 1-2 (0/1), 2-3 (0/1); nothing beyond.
        assert_eq!(pairs, 3);
        assert!((sum - 0.5).abs() < 1e-12);
        assert_eq!(groove_sum(&[], 4, 4), (0.0, 0));
        assert_eq!(groove_sum(&[note(0), note(4)], 2, 4), (1.0, 1));
    }

    #[test]
    fn polyphony_counts_notes_sounding_where_any_sounds() {
        let note = |start, duration, pitch| Note {
            start,
            duration,
            pitch,
            velocity: 90,
        };
        assert_eq!(polyphony(&[], 16), 0.0);
        // A triad over steps 0-3, one note over 8-11, silence between: 16 / 8 sounding steps.
        let notes = [
            note(0, 4, 60),
            note(0, 4, 64),
            note(0, 4, 67),
            note(8, 4, 72),
        ];
        assert_eq!(polyphony(&notes, 16), 2.0);
        // A note past the song's end counts only inside it.
        assert_eq!(polyphony(&[note(14, 8, 60), note(14, 1, 64)], 16), 1.5);
        // Notes starting past the end, or lasting no step, are not counted.
        assert_eq!(polyphony(&[note(20, 4, 60), note(3, 0, 60)], 16), 0.0);
        assert_eq!(polyphony_before(&[note(3, 0, 60)], 16), None);
        // A note ending near u32::MAX costs no more than any other.
        let far = note(u32::MAX - 10, u32::MAX, 60);
        assert_eq!(
            polyphony_before(&[far, note(0, 4, 60)], u32::MAX),
            Some(1.0)
        );
    }

    #[test]
    fn polyphony_from_spans_equals_counting_every_step() {
        let mut state = 0x2545_f491_u64;
        let mut draw = |n: u32| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % u64::from(n)) as u32
        };
        for _ in 0..200 {
            let song_steps = 1 + draw(64);
            let notes: Vec<Note> = (0..draw(12))
                .map(|_| Note {
                    start: draw(72),
                    duration: draw(20),
                    pitch: 60,
                    velocity: 90,
                })
                .collect();
            let mut sounding = vec![0u64; song_steps as usize];
            for note in &notes {
                for step in note.start..note.end().min(song_steps) {
                    sounding[step as usize] += 1;
                }
            }
            let steps = sounding.iter().filter(|&&c| c > 0).count();
            let expected = if steps == 0 {
                0.0
            } else {
                sounding.iter().sum::<u64>() as f64 / steps as f64
            };
            assert_eq!(polyphony(&notes, song_steps), expected, "{notes:?}");
        }
    }
}
