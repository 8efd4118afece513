//! 24-bit PCM WAV output through `hound`.

use super::StereoBuffer;
use crate::Error;

/// Largest 24-bit sample value.
const I24_MAX: f32 = 8_388_607.0;

/// Writes a buffer as 24-bit PCM WAV: stereo, the buffer's sample rate, samples clamped to
/// [-1, 1] (NaN written as silence).
pub fn write_wav(path: &std::path::Path, buffer: &StereoBuffer) -> Result<(), Error> {
    let shown = path.display();
    if buffer.sample_rate == 0 {
        return Err(Error::Audio(format!(
            "cannot write {shown}: the buffer has a sample rate of zero"
        )));
    }
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: buffer.sample_rate,
        bits_per_sample: 24,
        sample_format: hound::SampleFormat::Int,
    };
    let wav_error = |e: hound::Error| match e {
        hound::Error::IoError(io) => Error::io(format!("writing {shown}"), io),
        other => Error::Audio(format!("writing {shown} failed: {other}")),
    };
    let file =
        std::fs::File::create(path).map_err(|e| Error::io(format!("creating {shown}"), e))?;
    let mut writer =
        hound::WavWriter::new(std::io::BufWriter::new(file), spec).map_err(wav_error)?;
    // An odd trailing sample would be half a frame; it is left out.
    for &s in buffer.samples.iter().take(buffer.samples.len() & !1) {
        let s = if s.is_nan() { 0.0 } else { s.clamp(-1.0, 1.0) };
        writer
            .write_sample((s * I24_MAX).round() as i32)
            .map_err(wav_error)?;
    }
    writer.finalize().map_err(wav_error)
}
