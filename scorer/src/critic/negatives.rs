//! Hard negatives for training the critic: real windows spoiled in one known way each, so
//! the critic learns what each aspect of good music looks like. Every corruption touches only
//! the bars the candidate writes (the context stays real), and each names the aspect it
//! spoils and the aspects it leaves unknown.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use refrain_engine::music::{Note, Song, Stem};
use serde::{Deserialize, Serialize};

/// Ways a window is spoiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NegativeKind {
    /// Pitched notes moved a semitone out of the key.
    OffKey,
    /// Onsets nudged off their steps.
    JitteredRhythm,
    /// One stem displaced by a beat against the others.
    ShiftedStem,
    /// The written bars taken from another piece.
    Spliced,
    /// The notes kept, the conditions (style, mood, tempo, chords) taken from another piece.
    WrongConditions,
    /// A playing stem silenced in the written bars.
    DroppedStem,
    /// A stem crammed with extra notes.
    OverfullStem,
    /// The written bars a copy of the context before them.
    ContextCopy,
    /// The DiT's own weak samples (early denoising steps, an earlier checkpoint).
    WeakSample,
}

impl NegativeKind {
    /// The corruptions made from real windows (the DiT's samples come from elsewhere).
    pub const SYNTHETIC: [NegativeKind; 8] = [
        NegativeKind::OffKey,
        NegativeKind::JitteredRhythm,
        NegativeKind::ShiftedStem,
        NegativeKind::Spliced,
        NegativeKind::WrongConditions,
        NegativeKind::DroppedStem,
        NegativeKind::OverfullStem,
        NegativeKind::ContextCopy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NegativeKind::OffKey => "off-key",
            NegativeKind::JitteredRhythm => "jittered-rhythm",
            NegativeKind::ShiftedStem => "shifted-stem",
            NegativeKind::Spliced => "spliced",
            NegativeKind::WrongConditions => "wrong-conditions",
            NegativeKind::DroppedStem => "dropped-stem",
            NegativeKind::OverfullStem => "overfull-stem",
            NegativeKind::ContextCopy => "context-copy",
            NegativeKind::WeakSample => "weak-sample",
        }
    }

    /// Per aspect (`critic::ASPECTS` order): `Some(label)` to train on, `None` when this
    /// corruption leaves the aspect unknown.
    pub fn aspect_labels(self) -> [Option<f32>; 5] {
        const H: usize = 0;
        const R: usize = 1;
        const M: usize = 2;
        const C: usize = 3;
        const A: usize = 4;
        let mut labels = [Some(1.0); 5];
        let mut spoil = |aspect: usize| labels[aspect] = Some(0.0);
        match self {
            NegativeKind::OffKey => spoil(H),
            NegativeKind::JitteredRhythm | NegativeKind::ShiftedStem => spoil(R),
            NegativeKind::Spliced => {
                spoil(C);
                labels[H] = None;
                labels[A] = None;
            }
            NegativeKind::WrongConditions => {
                spoil(A);
                labels[H] = None;
            }
            NegativeKind::DroppedStem | NegativeKind::OverfullStem => {
                spoil(A);
                labels[R] = None;
                labels[C] = None;
            }
            NegativeKind::ContextCopy => {
                spoil(M);
                labels[C] = None;
            }
            NegativeKind::WeakSample => labels = [None; 5],
        }
        labels
    }
}

/// A window with the bars its candidate writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    pub song: Song,
    pub mood: refrain_engine::music::Mood,
    pub written: std::ops::Range<u32>,
}

impl Example {
    fn written_steps(&self) -> std::ops::Range<u32> {
        let steps = self.song.meter.steps_per_bar();
        self.written.start * steps..self.written.end * steps
    }
}

/// `example` spoiled as `kind` says (`donor`: a window of another piece, same meter and
/// length), or `None` when this window cannot show that fault (e.g. nothing pitched to put
/// off key).
pub fn corrupt(
    kind: NegativeKind,
    example: &Example,
    donor: &Example,
    rng: &mut ChaCha8Rng,
) -> Option<Example> {
    let mut out = example.clone();
    let span = example.written_steps();
    let inside = |n: &Note| span.contains(&n.start);
    let changed = match kind {
        NegativeKind::OffKey => {
            let key = example.song.key;
            let mut moved = 0;
            for track in out.song.stems.iter_mut().filter(|t| t.stem.is_pitched()) {
                for note in track.notes.iter_mut().filter(|n| inside(n)) {
                    if rng.random_bool(0.4) {
                        let up = rng.random_bool(0.5);
                        let step = if up { 1 } else { -1 };
                        let target = [note.pitch + step, note.pitch - step]
                            .into_iter()
                            .find(|&p| !key.contains_relative(p));
                        if let Some(p) = target {
                            note.pitch = p;
                            moved += 1;
                        }
                    }
                }
            }
            moved >= 2
        }
        NegativeKind::JitteredRhythm => {
            let mut moved = 0;
            for track in &mut out.song.stems {
                if !rng.random_bool(0.6) {
                    continue;
                }
                for note in track.notes.iter_mut().filter(|n| inside(n)) {
                    if rng.random_bool(0.5) {
                        let shift: i32 = if rng.random_bool(0.5) { 1 } else { -1 };
                        let start = note.start as i32 + shift;
                        if start >= span.start as i32 && start < span.end as i32 {
                            note.start = start as u32;
                            moved += 1;
                        }
                    }
                }
            }
            moved >= 3
        }
        NegativeKind::ShiftedStem => {
            let beat = example.song.meter.steps_per_beat();
            let width = span.end - span.start;
            let mut playing: Vec<usize> = (0..out.song.stems.len())
                .filter(|&s| out.song.stems[s].notes.iter().filter(|n| inside(n)).count() >= 2)
                .collect();
            // A pattern that repeats every beat looks the same shifted by one: only a shift
            // that moves most onsets off the stem's own ones is a fault.
            let mut shifted = false;
            while !playing.is_empty() && !shifted {
                let s = playing.swap_remove(rng.random_range(0..playing.len()));
                let shift = if rng.random_bool(0.5) {
                    beat
                } else {
                    width - beat
                };
                let before: std::collections::BTreeSet<(u32, i32)> = out.song.stems[s]
                    .notes
                    .iter()
                    .filter(|n| inside(n))
                    .map(|n| (n.start, n.pitch))
                    .collect();
                let kept = before
                    .iter()
                    .filter(|&&(start, pitch)| {
                        before.contains(&(span.start + (start - span.start + shift) % width, pitch))
                    })
                    .count();
                if kept * 2 >= before.len() {
                    continue;
                }
                for note in out.song.stems[s].notes.iter_mut().filter(|n| inside(n)) {
                    note.start = span.start + (note.start - span.start + shift) % width;
                    note.duration = note.duration.min(span.end - note.start);
                }
                shifted = true;
            }
            shifted
        }
        NegativeKind::Spliced => {
            if donor.song.meter != example.song.meter || donor.song.bars != example.song.bars {
                return None;
            }
            let donor_span = donor.written_steps();
            for track in &mut out.song.stems {
                track.notes.retain(|n| !inside(n));
                if let Some(other) = donor.song.stem(track.stem) {
                    track.notes.extend(
                        other
                            .notes
                            .iter()
                            .filter(|n| donor_span.contains(&n.start))
                            .filter_map(|n| {
                                let start = n.start - donor_span.start + span.start;
                                (start < span.end).then_some(Note { start, ..*n })
                            }),
                    );
                }
            }
            true
        }
        NegativeKind::WrongConditions => {
            if donor.song.meter != example.song.meter || donor.song.bars != example.song.bars {
                return None;
            }
            out.song.style = donor.song.style;
            out.song.tempo_bpm = donor.song.tempo_bpm;
            out.song.chords = donor.song.chords.clone();
            out.song.sections = donor.song.sections.clone();
            out.mood = donor.mood;
            out.song.chords != example.song.chords || out.song.style != example.song.style
        }
        NegativeKind::DroppedStem => {
            let playing: Vec<usize> = (0..out.song.stems.len())
                .filter(|&s| out.song.stems[s].notes.iter().any(inside))
                .collect();
            if playing.len() < 2 {
                return None;
            }
            let s = playing[rng.random_range(0..playing.len())];
            out.song.stems[s].notes.retain(|n| !inside(n));
            true
        }
        NegativeKind::OverfullStem => {
            if out.song.stems.is_empty() {
                return None;
            }
            let s = rng.random_range(0..out.song.stems.len());
            let track = &mut out.song.stems[s];
            let (low, rows) = track.stem.pitch_range();
            let existing: Vec<Note> = track.notes.iter().copied().filter(inside).collect();
            let target = (existing.len() * 2).max(8) + (span.end - span.start) as usize / 4;
            let pitches: Vec<i32> = if existing.is_empty() || !track.stem.is_pitched() {
                (low..low + rows as i32).collect()
            } else {
                existing.iter().map(|n| n.pitch).collect()
            };
            let mut added = 0;
            for _ in 0..target * 3 {
                if added >= target {
                    break;
                }
                let start = rng.random_range(span.clone());
                let pitch = pitches[rng.random_range(0..pitches.len())];
                if track
                    .notes
                    .iter()
                    .any(|n| n.pitch == pitch && n.start <= start && start < n.end())
                {
                    continue;
                }
                track.notes.push(Note {
                    start,
                    duration: rng.random_range(1..=2).min(span.end - start),
                    pitch,
                    velocity: rng.random_range(60..=110),
                });
                added += 1;
            }
            added >= 4
        }
        NegativeKind::ContextCopy => {
            let length = example.written.end - example.written.start;
            if example.written.start < length {
                return None;
            }
            let steps = example.song.meter.steps_per_bar();
            let offset = length * steps;
            for track in &mut out.song.stems {
                track.notes.retain(|n| !inside(n));
                let copies: Vec<Note> = track
                    .notes
                    .iter()
                    .filter(|n| n.start + offset >= span.start && n.start + offset < span.end)
                    .map(|n| Note {
                        start: n.start + offset,
                        duration: n.duration.min(span.end - n.start - offset),
                        ..*n
                    })
                    .collect();
                track.notes.extend(copies);
            }
            // A window that already repeats itself exactly teaches nothing.
            out.song != example.song
        }
        NegativeKind::WeakSample => return None,
    };
    if !changed {
        return None;
    }
    for track in &mut out.song.stems {
        tidy(&mut track.notes, track.stem);
    }
    Some(out)
}

/// Sorts notes and drops same-pitch overlaps the corruption made.
fn tidy(notes: &mut Vec<Note>, _stem: Stem) {
    notes.sort_by_key(|n| (n.start, n.pitch));
    let mut kept: Vec<Note> = Vec::with_capacity(notes.len());
    for note in notes.drain(..) {
        if kept
            .iter()
            .rev()
            .take(16)
            .any(|k| k.pitch == note.pitch && k.start <= note.start && note.start < k.end())
        {
            continue;
        }
        kept.push(note);
    }
    *notes = kept;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use refrain_engine::music::{Instrument, Key, Meter, Mode, Mood, StemTrack, Style};

    fn example() -> Example {
        let line = |stem, pitches: &[i32]| StemTrack {
            stem,
            instrument: Instrument::SubBass,
            notes: (0..32)
                .map(|i| Note {
                    start: i * 4,
                    duration: 2,
                    pitch: pitches[i as usize % pitches.len()],
                    velocity: 90,
                })
                .collect(),
        };
        Example {
            song: Song {
                style: Style::Lofi,
                tempo_bpm: 80.0,
                meter: Meter::FourFour,
                key: Key::new(0, Mode::Major),
                bars: 8,
                sections: Vec::new(),
                chords: Default::default(),
                stems: vec![
                    line(Stem::Drums, &[0, 1]),
                    line(Stem::Bass, &[-24, -20]),
                    line(Stem::Lead, &[0, 2, 4, 5, 7, 9]),
                ],
            },
            mood: Mood::Calm,
            written: 4..8,
        }
    }

    #[test]
    fn every_corruption_changes_only_the_written_bars() {
        let real = example();
        let mut donor = example();
        donor.song.style = Style::Jazz;
        for track in &mut donor.song.stems {
            for n in &mut track.notes {
                n.start = (n.start + 2) % 128;
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for kind in NegativeKind::SYNTHETIC {
            let spoiled =
                corrupt(kind, &real, &donor, &mut rng).unwrap_or_else(|| panic!("{kind:?}"));
            assert_ne!(spoiled.song, real.song, "{kind:?}");
            if kind != NegativeKind::WrongConditions {
                for (a, b) in spoiled.song.stems.iter().zip(&real.song.stems) {
                    let context = |t: &StemTrack| -> Vec<Note> {
                        t.notes.iter().copied().filter(|n| n.start < 64).collect()
                    };
                    assert_eq!(context(a), context(b), "{kind:?} touched the context");
                }
            }
        }
        let off = corrupt(NegativeKind::OffKey, &real, &donor, &mut rng).unwrap();
        let lead = off.song.stem(Stem::Lead).unwrap();
        assert!(
            lead.notes
                .iter()
                .any(|n| !real.song.key.contains_relative(n.pitch))
        );
        // A stem that repeats every beat looks the same a beat later: no fault to show.
        let mut steady = real.clone();
        steady.song.stems.truncate(1);
        steady.song.stems[0]
            .notes
            .iter_mut()
            .for_each(|n| n.pitch = 0);
        assert!(corrupt(NegativeKind::ShiftedStem, &steady, &donor, &mut rng).is_none());
        // A first window has no context to copy.
        let mut first = real.clone();
        first.written = 0..8;
        assert!(corrupt(NegativeKind::ContextCopy, &first, &donor, &mut rng).is_none());
    }

    #[test]
    fn labels_spoil_one_aspect_and_weak_samples_only_the_whole() {
        for kind in NegativeKind::SYNTHETIC {
            let labels = kind.aspect_labels();
            assert_eq!(
                labels.iter().filter(|l| **l == Some(0.0)).count(),
                1,
                "{kind:?}"
            );
        }
        assert!(
            NegativeKind::WeakSample
                .aspect_labels()
                .iter()
                .all(Option::is_none)
        );
    }
}
