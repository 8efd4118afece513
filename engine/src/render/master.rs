//! The master stage: EBU R128 integrated loudness and true peak of the mix (through the
//! `ebur128` crate), and the single gain that brings it to the target without passing the
//! true-peak ceiling.

use super::StereoBuffer;
use crate::Error;
use ebur128::{EbuR128, Mode};

/// Reported loudness and true peak of silence: finite, so manifests stay valid JSON.
pub const SILENCE_DB: f64 = -70.0;

/// Headroom kept under the true-peak ceiling for the rounding of the final gain multiply.
const CEILING_MARGIN_DB: f64 = 0.02;

/// Integrated loudness (LUFS) and true peak (dBTP) of a buffer; `None` for the loudness of
/// silence (below the R128 absolute gate) and `None` for a true peak of exactly zero.
pub fn measure(buffer: &StereoBuffer) -> Result<(Option<f64>, Option<f64>), Error> {
    let audio = |e: ebur128::Error| Error::Audio(format!("loudness measurement failed: {e}"));
    let mut meter =
        EbuR128::new(2, buffer.sample_rate, Mode::I | Mode::TRUE_PEAK).map_err(audio)?;
    meter.add_frames_f32(&buffer.samples).map_err(audio)?;
    let loudness = meter.loudness_global().map_err(audio)?;
    let peak = meter
        .true_peak(0)
        .map_err(audio)?
        .max(meter.true_peak(1).map_err(audio)?);
    let loudness = (loudness.is_finite() && loudness > SILENCE_DB).then_some(loudness);
    let peak = (peak.is_finite() && peak > 0.0).then(|| 20.0 * peak.log10());
    Ok((loudness, peak))
}

/// The master decision: gain in dB and the loudness and true peak that result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MasterGain {
    pub gain_db: f64,
    pub loudness_lufs: f64,
    pub true_peak_dbtp: f64,
}

/// Chooses the gain: the target loudness, lowered if the true peak would pass the ceiling.
/// Both measures scale exactly with a linear gain, so the result is reported without
/// measuring again.
pub fn choose_gain(
    loudness: Option<f64>,
    true_peak: Option<f64>,
    target_lufs: f64,
    ceiling_dbtp: f64,
) -> MasterGain {
    let Some(loudness) = loudness else {
        return MasterGain {
            gain_db: 0.0,
            loudness_lufs: SILENCE_DB,
            true_peak_dbtp: true_peak.unwrap_or(SILENCE_DB).max(SILENCE_DB),
        };
    };
    let mut gain_db = target_lufs - loudness;
    if let Some(peak) = true_peak
        && peak + gain_db > ceiling_dbtp - CEILING_MARGIN_DB
    {
        gain_db = ceiling_dbtp - CEILING_MARGIN_DB - peak;
    }
    MasterGain {
        gain_db,
        loudness_lufs: (loudness + gain_db).max(SILENCE_DB),
        true_peak_dbtp: true_peak
            .map_or(SILENCE_DB, |p| p + gain_db)
            .max(SILENCE_DB),
    }
}
