//! Audio rendering: built-in synth voices per instrument, a plain mixer, loudness
//! measurement (EBU R128) and 24-bit WAV writing.
//!
//! Each stem is rendered note by note through its instrument's [`voices::Voice`] into its own
//! stereo buffer at a fixed pan and level; the mix is their sum; the master applies one gain
//! to reach the target loudness under the true-peak ceiling, to the stems as well, so the stems
//! still add up to the mix. Rendering is deterministic: all noise comes from generators seeded
//! by the stem, the note's start and its pitch.

pub mod dsp;
pub mod master;
pub mod performance;
pub mod soundfont;
#[cfg(test)]
mod tests;
pub mod voices;
mod wav;

pub use wav::write_wav;

use crate::Error;
use crate::music::{Song, Stem, StemTrack};
use serde::{Deserialize, Serialize};
use voices::{NoteEvent, Scratch, Voice};

/// Settings for one render.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RenderOptions {
    pub sample_rate: u32,
    /// Integrated loudness the mix is normalised to, LUFS.
    pub target_lufs: f64,
    /// Ceiling for the mix's true peak, dBTP.
    pub true_peak_ceiling_dbtp: f64,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            sample_rate: 48_000,
            target_lufs: -14.0,
            true_peak_ceiling_dbtp: -1.0,
        }
    }
}

/// Stereo audio, interleaved left/right.
#[derive(Clone, Debug, PartialEq)]
pub struct StereoBuffer {
    pub sample_rate: u32,
    pub samples: Vec<f32>,
}

impl StereoBuffer {
    pub fn frames(&self) -> usize {
        self.samples.len() / 2
    }
}

/// A rendered song: each stem before the master, the mix after it, and its measured levels.
#[derive(Clone, Debug)]
pub struct RenderedSong {
    pub stems: Vec<(Stem, StereoBuffer)>,
    pub mix: StereoBuffer,
    pub loudness_lufs: f64,
    pub true_peak_dbtp: f64,
}

/// Longest render accepted, in minutes: a bound on memory (about 1.4 GB of buffers at 48 kHz),
/// well past any song refrain plans.
pub const MAX_RENDER_MINUTES: u64 = 20;

/// Renders `song` to exactly `frames` frames. Notes sounding at the end of the last bar ring
/// out into the remaining frames.
pub fn render_song(
    song: &Song,
    frames: u64,
    options: &RenderOptions,
) -> Result<RenderedSong, Error> {
    check_request(song, frames, options)?;
    let frames = frames as usize;
    // Stems render independently (each from its own seeded streams), so they go side by
    // side on the cores; the bytes are the same as rendering them one after another.
    let rendered: Vec<Vec<f32>> = std::thread::scope(|scope| {
        let workers: Vec<_> = song
            .stems
            .iter()
            .enumerate()
            .map(|(index, track)| {
                scope.spawn(move || render_stem(song, track, index, frames, options.sample_rate))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut stems: Vec<(Stem, StereoBuffer)> = song
        .stems
        .iter()
        .zip(rendered)
        .map(|(track, samples)| {
            (
                track.stem,
                StereoBuffer {
                    sample_rate: options.sample_rate,
                    samples,
                },
            )
        })
        .collect();
    let mut mix = StereoBuffer {
        sample_rate: options.sample_rate,
        samples: vec![0.0; frames * 2],
    };
    sum_into(&mut mix.samples, &stems);
    let (loudness, true_peak) = master::measure(&mix)?;
    let decision = master::choose_gain(
        loudness,
        true_peak,
        options.target_lufs,
        options.true_peak_ceiling_dbtp,
    );
    if decision.gain_db != 0.0 {
        let gain = 10f64.powf(decision.gain_db / 20.0) as f32;
        for (_, stem) in &mut stems {
            for s in &mut stem.samples {
                *s *= gain;
            }
        }
        // Summing the scaled stems (rather than scaling the mix) keeps "stems add up to the
        // mix" exact to the last bit.
        mix.samples.fill(0.0);
        sum_into(&mut mix.samples, &stems);
    }
    Ok(RenderedSong {
        stems,
        mix,
        loudness_lufs: decision.loudness_lufs,
        true_peak_dbtp: decision.true_peak_dbtp,
    })
}

fn check_request(song: &Song, frames: u64, options: &RenderOptions) -> Result<(), Error> {
    if !(8_000..=384_000).contains(&options.sample_rate) {
        return Err(Error::Audio(format!(
            "a sample rate of {} Hz is not supported; use 8000 to 384000 Hz (48000 is usual)",
            options.sample_rate
        )));
    }
    let max_frames = MAX_RENDER_MINUTES * 60 * u64::from(options.sample_rate);
    if frames > max_frames {
        return Err(Error::Audio(format!(
            "{frames} frames is longer than the {MAX_RENDER_MINUTES} minutes a render may last"
        )));
    }
    if !(song.tempo_bpm.is_finite() && (1.0..=1000.0).contains(&song.tempo_bpm)) {
        return Err(Error::Audio(format!(
            "cannot render a tempo of {} bpm; it must lie between 1 and 1000",
            song.tempo_bpm
        )));
    }
    if !options.target_lufs.is_finite() || !(-70.0..=0.0).contains(&options.target_lufs) {
        return Err(Error::Audio(format!(
            "a loudness target of {} LUFS is out of range; use -70 to 0 (-14 is usual)",
            options.target_lufs
        )));
    }
    if !options.true_peak_ceiling_dbtp.is_finite()
        || !(-70.0..=6.0).contains(&options.true_peak_ceiling_dbtp)
    {
        return Err(Error::Audio(format!(
            "a true-peak ceiling of {} dBTP is out of range; use -70 to 6 (-1 is usual)",
            options.true_peak_ceiling_dbtp
        )));
    }
    Ok(())
}

fn sum_into(mix: &mut [f32], stems: &[(Stem, StereoBuffer)]) {
    for (_, stem) in stems {
        for (m, s) in mix.iter_mut().zip(&stem.samples) {
            *m += s;
        }
    }
}

/// Where a stem sits: pan (-1 left .. 1 right), how far its notes spread around that pan, and
/// its level before the master. The levels balance the voices' own loudness so that drums
/// and bass carry the groove, the lead sits on top and the chords and texture behind.
fn placement(stem: Stem) -> (f32, f32, f32) {
    match stem {
        Stem::Drums => (0.0, 0.0, 0.9),
        Stem::Bass => (0.0, 0.0, 0.85),
        Stem::Chords => (-0.25, 0.1, 0.55),
        Stem::Lead => (0.2, 0.0, 0.7),
        Stem::Texture => (0.0, 0.7, 0.45),
    }
}

/// Renders one stem to an interleaved stereo buffer of `frames` frames.
fn render_stem(
    song: &Song,
    track: &StemTrack,
    stem_index: usize,
    frames: usize,
    sample_rate: u32,
) -> Vec<f32> {
    let mut out = vec![0.0f32; frames * 2];
    let voice = Voice::for_instrument(track.instrument);
    let last_bar = performance::last_bar_frame(song, frames, sample_rate);
    let (pan, spread, level) = placement(track.stem);
    let mut note_buffer: Vec<f32> = Vec::new();
    let mut scratch = Scratch::default();
    for played in performance::perform(song, track, stem_index, frames, sample_rate) {
        let available = frames - played.start;
        let event = NoteEvent {
            pitch: played.pitch,
            velocity: played.velocity,
            gate: played.gate,
            sample_rate: sample_rate as f32,
            seed: played.seed,
        };
        let length = if played.rings_out {
            available
        } else {
            voice.sounding_samples(&event).min(available)
        };
        if length == 0 {
            continue;
        }
        note_buffer.clear();
        note_buffer.resize(length, 0.0);
        voice.render(&event, &mut note_buffer, &mut scratch);
        if played.rings_out {
            let held = last_bar.saturating_sub(played.start).min(length);
            performance::ring_out_fade(&mut note_buffer[held..]);
        }
        // Equal-power pan, spread per pitch class so a texture's notes fan out in the field.
        let offset = if spread > 0.0 {
            spread * ((played.pitch.rem_euclid(12) * 7 % 12) as f32 / 11.0 - 0.5)
        } else {
            0.0
        };
        let angle = ((pan + offset).clamp(-1.0, 1.0) + 1.0) * std::f32::consts::FRAC_PI_4;
        let (left, right) = (angle.cos() * level, angle.sin() * level);
        let target = &mut out[played.start * 2..(played.start + length) * 2];
        for (frame, &s) in target.chunks_exact_mut(2).zip(&note_buffer) {
            frame[0] += s * left;
            frame[1] += s * right;
        }
    }
    // A guard rather than an expectation: nothing non-finite may reach a WAV or the meter.
    for s in &mut out {
        if !s.is_finite() {
            *s = 0.0;
        }
    }
    out
}
