//! From the score to a performance: each stem's notes become [`PlayedNote`]s at exact frames,
//! humanised the way a player of the song's style would play them: swing, micro-timing, a
//! velocity curve with metric accents, and articulation (how much of its written length a
//! note is held).
//!
//! Every instrument source (built-in synths, SoundFont samples) plays the same performance,
//! so switching instruments never changes the groove. All variation is drawn from hashes of
//! the note's own seed: the same song gives the same frames.

use crate::music::{Meter, Song, Stem, StemTrack, Style};

/// One note as it is played: where it starts and how long the key is held, in frames.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlayedNote {
    /// First frame of the note.
    pub start: usize,
    /// Frames the key is held (at least one). A ringing-out note holds to the end of the buffer.
    pub gate: usize,
    /// Absolute MIDI pitch for pitched stems; the drum-class index on the drum stem.
    pub pitch: i32,
    /// Loudness in 0..=1 after the velocity curve and accents.
    pub velocity: f32,
    /// Seed of the note's own noise, so that renders are bit-identical.
    pub seed: u64,
    /// The note ends the song: it rings through the tail after the last bar and is faded to
    /// silence over it (see [`ring_out_fade`]) rather than cut at the bar line.
    pub rings_out: bool,
}

/// How a style is played. Amounts are in grid steps (sixteenths) and milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Feel {
    /// Delay of the off-beat eighth (the "and"), in steps: 0 straight, 0.67 full triplet swing.
    pub eighth_swing: f64,
    /// Delay of the off-beat sixteenths, in steps.
    pub sixteenth_swing: f64,
    /// Largest random shift of a pitched note, milliseconds either way.
    pub timing_ms: f64,
    /// Largest random shift of a drum hit, milliseconds either way.
    pub drum_timing_ms: f64,
    /// Share of a note's written length it is held, for pitched stems.
    pub articulation: f64,
    /// Largest random change of velocity, as a share.
    pub velocity_spread: f32,
}

impl Feel {
    pub fn for_style(style: Style) -> Feel {
        let base = Feel {
            eighth_swing: 0.0,
            sixteenth_swing: 0.0,
            timing_ms: 6.0,
            drum_timing_ms: 2.5,
            articulation: 0.92,
            velocity_spread: 0.06,
        };
        match style {
            Style::Jazz => Feel {
                eighth_swing: 0.55,
                timing_ms: 8.0,
                drum_timing_ms: 4.0,
                articulation: 0.85,
                ..base
            },
            Style::Lofi => Feel {
                sixteenth_swing: 0.22,
                timing_ms: 9.0,
                drum_timing_ms: 5.0,
                ..base
            },
            Style::Folk => Feel {
                timing_ms: 8.0,
                articulation: 0.88,
                ..base
            },
            Style::Rock => Feel {
                articulation: 0.9,
                ..base
            },
            // Sequenced styles: machine-tight, but not to the sample.
            Style::Synthwave => Feel {
                timing_ms: 1.5,
                drum_timing_ms: 0.5,
                velocity_spread: 0.03,
                ..base
            },
            Style::Chiptune => Feel {
                timing_ms: 0.0,
                drum_timing_ms: 0.0,
                articulation: 0.85,
                velocity_spread: 0.0,
                ..base
            },
            // Slow and sustained: legato, loose.
            Style::Ambient | Style::Cinematic => Feel {
                timing_ms: 10.0,
                drum_timing_ms: 4.0,
                articulation: 1.0,
                ..base
            },
        }
    }
}

/// A deterministic value in -1..1 from a seed and a salt (SplitMix64 finaliser).
fn signed_unit(seed: u64, salt: u64) -> f64 {
    let mut z = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

/// Seed of a note's noise, from the stem's position in the song, its start and its pitch.
pub fn note_seed(stem_index: usize, start: u32, pitch: i32) -> u64 {
    ((stem_index as u64) << 56) ^ (u64::from(start) << 20) ^ (pitch as u32 as u64)
}

/// Swing delay of a grid position, in steps. Compound meters (6/8) are not swung.
fn swing_steps(feel: &Feel, meter: Meter, step_in_bar: u32) -> f64 {
    if meter == Meter::SixEight {
        return 0.0;
    }
    match step_in_bar % 4 {
        2 => feel.eighth_swing,
        1 | 3 => feel.sixteenth_swing + feel.eighth_swing * 0.5,
        _ => 0.0,
    }
}

/// Metric accent as a velocity factor: downbeats lean in, off-sixteenths lean back.
fn accent(meter: Meter, step_in_bar: u32) -> f32 {
    let per_beat = meter.steps_per_beat();
    if step_in_bar == 0 {
        1.06
    } else if step_in_bar.is_multiple_of(per_beat) {
        1.02
    } else if step_in_bar % 2 == 1 {
        0.94
    } else {
        1.0
    }
}

/// The velocity curve: MIDI velocity to a 0..1 touch, a little steeper than linear so soft
/// notes sit back, the way a keyboard's touch response does (the voices add their own
/// loudness law on top).
pub fn velocity_curve(velocity: u8) -> f32 {
    (f32::from(velocity.min(127)) / 127.0).powf(1.15)
}

/// Plays one stem of `song` into a buffer of `frames` frames at `sample_rate`. Notes that
/// start at or after `frames`, and silent notes, are left out; the result is sorted by start.
/// In a loop nothing rings out: the last notes release as written, and their tails wrap
/// around to the loop's start.
pub fn perform(
    song: &Song,
    track: &StemTrack,
    stem_index: usize,
    frames: usize,
    sample_rate: u32,
    looped: bool,
) -> Vec<PlayedNote> {
    let feel = Feel::for_style(song.style);
    let rate = f64::from(sample_rate);
    let frames_per_step = song.step_seconds() * rate;
    let steps_per_bar = song.meter.steps_per_bar();
    // Counted in u64: a song deserialised from outside may carry any values.
    let last_step = u64::from(song.bars) * u64::from(steps_per_bar);
    let drums = track.stem == Stem::Drums;
    let timing_ms = if drums {
        feel.drum_timing_ms
    } else {
        feel.timing_ms
    };
    let to_frame = |position: f64| -> usize {
        let f = (position * frames_per_step).round();
        if f <= 0.0 {
            0
        } else if f >= frames as f64 {
            frames
        } else {
            f as usize
        }
    };
    let mut played = Vec::with_capacity(track.notes.len());
    for note in &track.notes {
        if note.velocity == 0 {
            continue;
        }
        let seed = note_seed(stem_index, note.start, note.pitch);
        let step_in_bar = note.start % steps_per_bar;
        let swing = swing_steps(&feel, song.meter, step_in_bar);
        let jitter_steps = timing_ms / 1000.0 * signed_unit(seed, 1) / song.step_seconds();
        // Nothing is pulled before the song's first frame.
        let start_position = if note.start == 0 {
            0.0
        } else {
            f64::from(note.start) + swing + jitter_steps
        };
        let start = to_frame(start_position);
        if start >= frames {
            continue;
        }
        let note_end = u64::from(note.start) + u64::from(note.duration);
        let rings_out = note_end >= last_step && !looped;
        let held_steps = if drums {
            f64::from(note.duration)
        } else {
            f64::from(note.duration) * feel.articulation
        };
        // Measured from the written length alone (not from the shifted start), so equal notes
        // get equal gates, and the renderer can reuse one rendering for all of them.
        let held = (held_steps.max(0.25) * frames_per_step).round().max(1.0) as usize;
        let gate = if rings_out {
            frames - start
        } else {
            held.min(frames - start)
        };
        let pitch = if track.stem.is_pitched() {
            song.key.to_midi(note.pitch.clamp(-128, 128)).clamp(0, 127)
        } else {
            note.pitch
        };
        let spread = feel.velocity_spread * signed_unit(seed, 2) as f32;
        let velocity = (velocity_curve(note.velocity) * accent(song.meter, step_in_bar)
            + spread * velocity_curve(note.velocity))
        .clamp(0.0, 1.0);
        played.push(PlayedNote {
            start,
            gate,
            pitch,
            velocity,
            seed,
            rings_out: rings_out && start + 1 < frames,
        });
    }
    played.sort_by_key(|n| n.start);
    played
}

/// Frame at which a ringing-out note stops being held at full level: the written end of the
/// song's last bar. Its tail fades from there to the end of the buffer.
pub fn last_bar_frame(song: &Song, frames: usize, sample_rate: u32) -> usize {
    let steps = f64::from(song.bars) * f64::from(song.meter.steps_per_bar());
    let f = (steps * song.step_seconds() * f64::from(sample_rate)).round();
    if f >= frames as f64 {
        frames
    } else {
        f as usize
    }
}

/// Raised-cosine fade over `tail`, applied in place: smooth at both ends, so a song's ring-out
/// never clicks at the bar line or at the last frame.
pub fn ring_out_fade(tail: &mut [f32]) {
    let length = tail.len() as f32;
    for (i, s) in tail.iter_mut().enumerate() {
        let x = i as f32 / length;
        *s *= 0.5 + 0.5 * (std::f32::consts::PI * x).cos();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::music::{ChordTrack, Instrument, Key, Mode, Note, Stem, StemTrack};

    fn song(style: Style, notes: Vec<Note>) -> Song {
        let mut track = StemTrack::new(Stem::Lead, Instrument::Piano);
        track.notes = notes;
        Song {
            style,
            tempo_bpm: 120.0,
            meter: Meter::FourFour,
            key: Key::new(0, Mode::Major),
            bars: 2,
            sections: Vec::new(),
            chords: ChordTrack::default(),
            stems: vec![track],
        }
    }

    fn note(start: u32, duration: u32, velocity: u8) -> Note {
        Note {
            start,
            duration,
            pitch: 0,
            velocity,
        }
    }

    #[test]
    fn jazz_swings_the_off_beat_eighth_and_rock_plays_it_straight() {
        let frames = 48_000 * 5;
        let notes = vec![note(2, 2, 100), note(6, 2, 100)];
        let jazz = song(Style::Jazz, notes.clone());
        let rock = song(Style::Rock, notes);
        let step = 48_000.0 * 0.125;
        let jazz_played = perform(&jazz, &jazz.stems[0], 0, frames, 48_000, false);
        let rock_played = perform(&rock, &rock.stems[0], 0, frames, 48_000, false);
        for (j, r) in jazz_played.iter().zip(&rock_played) {
            let jazz_delay = j.start as f64 - r.start as f64;
            // Both carry up to 8 ms (384 frames) of jitter; swing adds 0.55 of a step.
            assert!(jazz_delay > 0.55 * step - 800.0, "{jazz_delay}");
        }
    }

    #[test]
    fn the_same_song_plays_the_same_frames_and_nothing_leaves_the_buffer() {
        let notes: Vec<Note> = (0..32).map(|i| note(i, 1 + i % 3, 90)).collect();
        let s = song(Style::Lofi, notes);
        let frames = 48_000 * 4 + 100;
        let a = perform(&s, &s.stems[0], 0, frames, 48_000, false);
        let b = perform(&s, &s.stems[0], 0, frames, 48_000, false);
        assert_eq!(a, b);
        for n in &a {
            assert!(n.start < frames && n.gate >= 1 && n.start + n.gate <= frames);
            assert!((0.0..=1.0).contains(&n.velocity));
        }
        assert_eq!(a[0].start, 0, "the first note is never pulled early");
        assert!(a.windows(2).all(|w| w[0].start <= w[1].start));
    }

    #[test]
    fn the_last_note_rings_out_and_silent_notes_are_dropped() {
        let s = song(Style::Rock, vec![note(0, 4, 0), note(28, 4, 100)]);
        let frames = 48_000 * 5;
        let played = perform(&s, &s.stems[0], 0, frames, 48_000, false);
        assert_eq!(played.len(), 1);
        assert!(played[0].rings_out);
        assert_eq!(played[0].start + played[0].gate, frames);
    }

    #[test]
    fn the_velocity_curve_is_monotone_and_spans_zero_to_one() {
        assert_eq!(velocity_curve(0), 0.0);
        assert_eq!(velocity_curve(127), 1.0);
        assert!((1..=127).all(|v| velocity_curve(v) > velocity_curve(v - 1)));
    }
}
