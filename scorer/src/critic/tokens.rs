//! What the critic reads: one token per stem per bar of a candidate window, each a vector of
//! interpretable features of that stem-bar's notes (where its onsets fall, what sounds, which
//! pitch classes against the key and against the bar's chords, range, leaps, loudness, and
//! where the kick and snare fall or which onsets are chord tones and how long they ring), plus
//! the DiT's own condition fields (written or context, stem, bar, section, energy, chords)
//! and the song's (style, mood, key, meter, tempo).

use refrain_engine::critic::Candidate;
use refrain_engine::model::conditions::{SONG_FIELDS, SongConditions, bar_conditions, told_key};
use refrain_engine::model::dit::TOKEN_FIELDS;
use refrain_engine::model::sampler::Window;
use refrain_engine::music::{DrumClass, Note, Song, Stem};

/// Steps a token's rhythm features cover (a 4/4 bar; 12-step bars leave the rest zero).
pub const GRID: usize = 16;
/// Summary numbers per stem-bar after the grids and histograms.
pub const SCALARS: usize = 13;
/// Offset of the two placement grids after the summary numbers. For drums they hold the
/// kick's and the snare's (or clap's) onsets: the plain onset grid cannot tell a beat played
/// on 1 and 3 from one on 2 and 4 when hats fill every step. For pitched stems they hold the
/// onsets that are chord tones of their beat and each onset's length (a sixteenth of a bar
/// per step, at most 1): where the long and the consonant notes fall, which moves when a
/// line is displaced against the bar even if its onsets land on the same steps.
pub const PLACEMENT: usize = 2 * GRID + 2 * 12 + SCALARS;
/// Features per token.
pub const FEATURES: usize = PLACEMENT + 2 * GRID;

/// Offsets of the summary numbers inside a token's features.
pub mod scalar {
    use super::{GRID, SCALARS};
    const BASE: usize = 2 * GRID + 24;
    pub const ONSETS: usize = BASE;
    pub const IN_SCALE: usize = BASE + 1;
    pub const CHORD_TONES: usize = BASE + 2;
    pub const MEAN_PITCH: usize = BASE + 3;
    pub const RANGE: usize = BASE + 4;
    pub const VELOCITY: usize = BASE + 5;
    pub const DURATION: usize = BASE + 6;
    pub const SILENT: usize = BASE + 7;
    pub const MEAN_LEAP: usize = BASE + 8;
    pub const LARGEST_LEAP: usize = BASE + 9;
    pub const STEPWISE: usize = BASE + 10;
    pub const OFFBEAT: usize = BASE + 11;
    pub const PRESENT: usize = BASE + 12;
    const _: () = assert!(PRESENT + 1 == BASE + SCALARS);
}

/// A candidate as tensors-to-be: `bars * stems` tokens of [`FEATURES`] each, with their
/// field indices (the DiT's token fields) and the song's fields.
#[derive(Clone, Debug, PartialEq)]
pub struct CriticInput {
    pub bars: usize,
    pub features: Vec<f32>,
    pub token_fields: Vec<[u8; TOKEN_FIELDS]>,
    pub song_fields: [u8; SONG_FIELDS],
}

/// The notes of `track` starting in `bar`, with starts made bar-relative.
pub fn bar_notes(notes: &[Note], steps_per_bar: u32, bar: u32) -> Vec<Note> {
    let mut out: Vec<Note> = notes
        .iter()
        .filter(|n| n.start / steps_per_bar == bar)
        .map(|n| Note {
            start: n.start - bar * steps_per_bar,
            ..*n
        })
        .collect();
    out.sort_by_key(|n| (n.start, n.pitch));
    out
}

/// Features of one stem's notes in one bar (starts bar-relative); `present` says whether the
/// stem is part of the song at all.
pub fn stem_bar_features(
    song: &Song,
    stem: Stem,
    bar: u32,
    notes: &[Note],
    present: bool,
) -> [f32; FEATURES] {
    let mut f = [0f32; FEATURES];
    f[scalar::PRESENT] = f32::from(u8::from(present));
    let steps = song.meter.steps_per_bar();
    if notes.is_empty() {
        f[scalar::SILENT] = 1.0;
        return f;
    }
    let beat = song.meter.steps_per_beat();
    for n in notes {
        let at = n.start as usize;
        if at < GRID {
            f[at] = 1.0;
        }
        for s in n.start..(n.start + n.duration).min(steps) {
            if (s as usize) < GRID {
                f[GRID + s as usize] += 0.25;
            }
        }
    }
    for v in &mut f[GRID..2 * GRID] {
        *v = v.min(1.0);
    }
    let count = notes.len() as f32;
    let pitched = stem.is_pitched();
    let (mut in_scale, mut chord_tones) = (0f32, 0f32);
    for n in notes {
        let class = n.pitch.rem_euclid(12) as usize;
        f[2 * GRID + class] += 1.0 / count;
        if pitched {
            if song.key.contains_relative(n.pitch) {
                in_scale += 1.0;
            }
            let beat_index = bar * song.meter.beats_per_bar() + n.start / beat;
            if let Some(chord) = song.chords.per_beat.get(beat_index as usize) {
                f[2 * GRID + 12 + (n.pitch - i32::from(chord.root)).rem_euclid(12) as usize] +=
                    1.0 / count;
                if chord.contains_relative(n.pitch) {
                    chord_tones += 1.0;
                    if (n.start as usize) < GRID {
                        f[PLACEMENT + n.start as usize] = 1.0;
                    }
                }
            }
            if (n.start as usize) < GRID {
                let length = &mut f[PLACEMENT + GRID + n.start as usize];
                *length = length.max((n.duration as f32 / GRID as f32).min(1.0));
            }
        } else if (n.start as usize) < GRID {
            match DrumClass::from_index(n.pitch) {
                Some(DrumClass::Kick) => f[PLACEMENT + n.start as usize] = 1.0,
                Some(DrumClass::Snare | DrumClass::Clap) => {
                    f[PLACEMENT + GRID + n.start as usize] = 1.0
                }
                _ => {}
            }
        }
    }
    let lowest = notes.iter().map(|n| n.pitch).min().unwrap_or(0);
    let highest = notes.iter().map(|n| n.pitch).max().unwrap_or(0);
    f[scalar::ONSETS] = (1.0 + count).ln() / 3.0;
    f[scalar::IN_SCALE] = if pitched { in_scale / count } else { 1.0 };
    f[scalar::CHORD_TONES] = if pitched { chord_tones / count } else { 1.0 };
    f[scalar::MEAN_PITCH] = notes.iter().map(|n| n.pitch as f32).sum::<f32>() / count / 24.0;
    f[scalar::RANGE] = (highest - lowest) as f32 / 24.0;
    f[scalar::VELOCITY] = notes.iter().map(|n| f32::from(n.velocity)).sum::<f32>() / count / 127.0;
    f[scalar::DURATION] = notes.iter().map(|n| n.duration as f32).sum::<f32>() / count / 16.0;
    f[scalar::OFFBEAT] = notes.iter().filter(|n| n.start % 2 == 1).count() as f32 / count;
    if pitched {
        // The line's motion: one pitch per onset (the highest), in time order.
        let mut line: Vec<i32> = Vec::new();
        let mut last_start = None;
        for n in notes {
            if last_start == Some(n.start) {
                if let Some(top) = line.last_mut() {
                    *top = (*top).max(n.pitch);
                }
            } else {
                line.push(n.pitch);
                last_start = Some(n.start);
            }
        }
        let leaps: Vec<f32> = line
            .windows(2)
            .map(|w| (w[1] - w[0]).abs() as f32)
            .collect();
        if !leaps.is_empty() {
            let n = leaps.len() as f32;
            f[scalar::MEAN_LEAP] = leaps.iter().sum::<f32>() / n / 12.0;
            f[scalar::LARGEST_LEAP] = leaps.iter().copied().fold(0.0, f32::max) / 12.0;
            f[scalar::STEPWISE] =
                leaps.iter().filter(|&&l| (1.0..=2.0).contains(&l)).count() as f32 / n;
        }
    }
    f
}

/// Builds the critic's input for a candidate. A song in a mode the corpus lacks is read in
/// its told key, as the writer writes it (`conditions::told_key`), so `refrain score` judges
/// a song the way generation did.
pub fn critic_input(candidate: &Candidate) -> CriticInput {
    let told = told_key(candidate.song.key);
    let rekeyed;
    let song = if told == candidate.song.key {
        &candidate.song
    } else {
        rekeyed = candidate.song.clone().rekeyed(told);
        &rekeyed
    };
    let bars = song.bars as usize;
    let steps = song.meter.steps_per_bar();
    let stems = Stem::ALL.len();
    let mut features = Vec::with_capacity(bars * stems * FEATURES);
    let per_stem: Vec<Option<Vec<Note>>> = Stem::ALL
        .iter()
        .map(|&stem| song.stem(stem).map(|t| t.notes.clone()))
        .collect();
    for bar in 0..song.bars {
        for (s, &stem) in Stem::ALL.iter().enumerate() {
            let notes = per_stem[s]
                .as_deref()
                .map(|n| bar_notes(n, steps, bar))
                .unwrap_or_default();
            features.extend(stem_bar_features(
                song,
                stem,
                bar,
                &notes,
                per_stem[s].is_some(),
            ));
        }
    }
    let window = Window {
        song: SongConditions::new(
            song.style,
            candidate.mood,
            song.key,
            song.meter,
            song.tempo_bpm,
        ),
        bars: bar_conditions(song.meter, song.bars, &song.sections, &song.chords),
        stems,
        context: Vec::new(),
        generate: (0..bars)
            .flat_map(|bar| std::iter::repeat_n(candidate.written.contains(&(bar as u32)), stems))
            .collect(),
    };
    CriticInput {
        bars,
        features,
        token_fields: window.token_fields(false),
        song_fields: window.song_fields(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use refrain_engine::music::{Key, Meter, Mode, Style};

    fn song() -> Song {
        Song {
            style: Style::Rock,
            tempo_bpm: 120.0,
            meter: Meter::FourFour,
            key: Key::new(0, Mode::Major),
            bars: 1,
            sections: Vec::new(),
            chords: Default::default(),
            stems: Vec::new(),
        }
    }

    fn hit(start: u32, class: DrumClass) -> Note {
        Note {
            start,
            duration: 1,
            pitch: class.index(),
            velocity: 100,
        }
    }

    #[test]
    fn a_song_in_a_mode_the_corpus_lacks_is_read_in_its_told_key() {
        use refrain_engine::model::conditions::told_key;
        use refrain_engine::music::{Chord, ChordQuality, ChordTrack, Instrument, StemTrack};
        let mut locrian = song();
        locrian.key = Key::new(11, Mode::Locrian);
        locrian.chords = ChordTrack {
            per_beat: vec![Chord::new(0, ChordQuality::Diminished); 4],
        };
        let mut lead = StemTrack::new(Stem::Lead, Instrument::SubBass);
        lead.notes = [0, 1, 3, 6]
            .iter()
            .enumerate()
            .map(|(i, &pitch)| Note {
                start: 4 * i as u32,
                duration: 4,
                pitch,
                velocity: 90,
            })
            .collect();
        locrian.stems.push(lead);
        let input = |song: &Song| {
            critic_input(&Candidate {
                song: song.clone(),
                mood: refrain_engine::music::Mood::ALL[0],
                written: 0..1,
            })
        };
        let told = locrian.clone().rekeyed(told_key(locrian.key));
        assert_eq!(told.key, Key::new(9, Mode::Minor));
        assert_eq!(input(&locrian), input(&told));
        // Every note of B locrian is in A minor's scale, as the critic reads it.
        let lead_token = Stem::ALL.iter().position(|&s| s == Stem::Lead).unwrap();
        assert_eq!(
            input(&told).features[lead_token * FEATURES + scalar::IN_SCALE],
            1.0
        );
    }

    #[test]
    fn a_backbeat_moved_by_a_beat_changes_the_drum_token() {
        // Hats on every eighth; kick and snare alternate on the beats. Moved by a beat the
        // onset grid is the same, the kick and snare grids are not.
        let beat = |kick_first: bool| -> Vec<Note> {
            let mut notes: Vec<Note> = (0..8).map(|i| hit(2 * i, DrumClass::ClosedHat)).collect();
            for b in 0..4u32 {
                let kick = (b % 2 == 0) == kick_first;
                notes.push(hit(
                    4 * b,
                    if kick {
                        DrumClass::Kick
                    } else {
                        DrumClass::Snare
                    },
                ));
            }
            notes.sort_by_key(|n| (n.start, n.pitch));
            notes
        };
        let song = song();
        let straight = stem_bar_features(&song, Stem::Drums, 0, &beat(true), true);
        let moved = stem_bar_features(&song, Stem::Drums, 0, &beat(false), true);
        assert_eq!(straight[..GRID], moved[..GRID]);
        assert_eq!(straight[PLACEMENT], 1.0);
        assert_eq!(moved[PLACEMENT], 0.0);
        assert_eq!(moved[PLACEMENT + GRID], 1.0);
        assert_ne!(straight[PLACEMENT..], moved[PLACEMENT..]);
    }

    #[test]
    fn a_pitched_token_marks_where_its_long_notes_fall() {
        let notes = [
            Note {
                start: 0,
                duration: 8,
                pitch: 60,
                velocity: 90,
            },
            Note {
                start: 8,
                duration: 2,
                pitch: 62,
                velocity: 90,
            },
        ];
        let f = stem_bar_features(&song(), Stem::Lead, 0, &notes, true);
        assert_eq!(f[PLACEMENT + GRID], 0.5);
        assert_eq!(f[PLACEMENT + GRID + 8], 0.125);
        assert_eq!(f[PLACEMENT + GRID + 4], 0.0);
        assert_eq!(f.len(), FEATURES);
    }
}
