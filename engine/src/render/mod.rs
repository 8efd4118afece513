//! Audio rendering: built-in synth voices per instrument, a plain mixer, loudness
//! measurement (EBU R128) and 24-bit WAV writing.

use crate::Error;
use crate::music::{Song, Stem};
use serde::{Deserialize, Serialize};

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

/// Renders `song` to exactly `frames` frames. Notes sounding at the end of the last bar ring
/// out into the remaining frames.
pub fn render_song(
    song: &Song,
    frames: u64,
    options: &RenderOptions,
) -> Result<RenderedSong, Error> {
    let _ = (song, frames, options);
    todo!("render")
}

/// Writes a buffer as 24-bit PCM WAV.
pub fn write_wav(path: &std::path::Path, buffer: &StereoBuffer) -> Result<(), Error> {
    let _ = (path, buffer);
    todo!("WAV writer")
}
