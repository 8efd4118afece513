//! Interpretable symbolic features of a song: how much of it sits in the key, how varied its
//! pitch classes are, how dense and polyphonic each stem is, how steady its grooves are.
//! The critic reports them beside its scores; evaluation compares them with real music.

use refrain_engine::model::rhythm::{groove_sum, polyphony};
use refrain_engine::music::{Song, Stem};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Per-stem figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StemFeatures {
    pub notes: usize,
    pub notes_per_bar: f64,
    /// Mean number of notes sounding at a step where at least one sounds.
    pub polyphony: f64,
    /// This stem's share of `SongFeatures::groove_consistency`: the mean bar-to-bar onset
    /// similarity of its own bars (0 where no two neighbouring bars sound).
    #[serde(default)]
    pub groove_consistency: f64,
}

/// Whole-song figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SongFeatures {
    pub pitched_notes: usize,
    /// Share of pitched notes whose pitch class is in the key's scale.
    pub in_scale_ratio: f64,
    /// Shannon entropy (bits) of the duration-weighted pitch-class histogram of pitched stems.
    pub pitch_class_entropy: f64,
    /// Mean similarity (0..1) of each bar's onset pattern to the next bar's, over all stems:
    /// 1 means every bar repeats the same rhythm.
    pub groove_consistency: f64,
    pub stems: BTreeMap<String, StemFeatures>,
}

/// Computes the features of a song.
pub fn song_features(song: &Song) -> SongFeatures {
    let bars = song.bars.max(1);
    let steps_per_bar = song.meter.steps_per_bar();
    let mut pitched = 0usize;
    let mut in_scale = 0usize;
    let mut histogram = [0f64; 12];
    let mut stems = BTreeMap::new();
    let mut groove_total = 0.0;
    let mut groove_pairs = 0usize;
    for track in &song.stems {
        for note in &track.notes {
            if track.stem.is_pitched() {
                pitched += 1;
                if song.key.contains_relative(note.pitch) {
                    in_scale += 1;
                }
                histogram[note.pitch.rem_euclid(12) as usize] += f64::from(note.duration);
            }
        }
        let polyphony = polyphony(&track.notes, song.steps());
        let (stem_sum, stem_pairs) = groove_sum(&track.notes, bars, steps_per_bar);
        groove_total += stem_sum;
        groove_pairs += stem_pairs;
        stems.insert(
            track.stem.name().to_string(),
            StemFeatures {
                notes: track.notes.len(),
                notes_per_bar: track.notes.len() as f64 / f64::from(bars),
                polyphony,
                groove_consistency: if stem_pairs == 0 {
                    0.0
                } else {
                    stem_sum / stem_pairs as f64
                },
            },
        );
    }
    let weight: f64 = histogram.iter().sum();
    let pitch_class_entropy = if weight > 0.0 {
        -histogram
            .iter()
            .filter(|&&w| w > 0.0)
            .map(|&w| {
                let p = w / weight;
                p * p.log2()
            })
            .sum::<f64>()
    } else {
        0.0
    };
    SongFeatures {
        pitched_notes: pitched,
        in_scale_ratio: if pitched == 0 {
            1.0
        } else {
            in_scale as f64 / pitched as f64
        },
        pitch_class_entropy,
        groove_consistency: if groove_pairs == 0 {
            0.0
        } else {
            groove_total / groove_pairs as f64
        },
        stems,
    }
}

/// Number of stems that play at least one note, drums included.
pub fn sounding_stems(song: &Song) -> Vec<Stem> {
    song.stems
        .iter()
        .filter(|t| !t.notes.is_empty())
        .map(|t| t.stem)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use refrain_engine::music::{ChordTrack, Instrument, Key, Meter, Mode, Note, StemTrack, Style};

    fn song_with(lead: Vec<Note>, bars: u32) -> Song {
        Song {
            style: Style::Folk,
            tempo_bpm: 120.0,
            meter: Meter::FourFour,
            key: Key::new(0, Mode::Major),
            bars,
            sections: Vec::new(),
            chords: ChordTrack::default(),
            stems: vec![StemTrack {
                stem: Stem::Lead,
                instrument: Instrument::Flute,
                notes: lead,
            }],
        }
    }

    fn note(start: u32, pitch: i32) -> Note {
        Note {
            start,
            duration: 4,
            pitch,
            velocity: 90,
        }
    }

    #[test]
    fn scale_ratio_counts_out_of_key_notes() {
        let song = song_with(vec![note(0, 0), note(4, 2), note(8, 4), note(12, 1)], 1);
        let f = song_features(&song);
        assert_eq!(f.pitched_notes, 4);
        assert!((f.in_scale_ratio - 0.75).abs() < 1e-12);
        assert!((f.pitch_class_entropy - 2.0).abs() < 1e-12);
    }

    #[test]
    fn repeated_bars_have_full_groove_consistency() {
        let notes: Vec<Note> = (0..4)
            .flat_map(|bar| [note(bar * 16, 0), note(bar * 16 + 8, 4)])
            .collect();
        let steady = song_features(&song_with(notes, 4));
        assert!((steady.groove_consistency - 1.0).abs() < 1e-12);
        assert!((steady.stems["lead"].groove_consistency - 1.0).abs() < 1e-12);
        let shifting = vec![note(0, 0), note(18, 0), note(36, 0), note(54, 0)];
        let shifting = song_features(&song_with(shifting, 4));
        assert_eq!(shifting.groove_consistency, 0.0);
        assert_eq!(shifting.stems["lead"].groove_consistency, 0.0);
    }

    #[test]
    fn an_empty_song_has_finite_features() {
        let f = song_features(&song_with(Vec::new(), 0));
        assert_eq!(f.in_scale_ratio, 1.0);
        assert_eq!(f.pitch_class_entropy, 0.0);
        assert!(sounding_stems(&song_with(Vec::new(), 1)).is_empty());
    }
}
