//! The master stage: a gentle bus compressor, the gain to the target loudness, and an
//! oversampled true-peak limiter, repeated until the integrated loudness (EBU R128, measured
//! by the `ebur128` crate) sits on the target under the true-peak ceiling.
//!
//! The limiter works offline on the whole mix: it finds every frame's true peak (4x
//! oversampled, as ITU-R BS.1770 measures it), derives the gain each frame needs, and shapes
//! that gain with a fast attack ahead of each peak (look-ahead, so nothing overshoots) and a
//! slow release after it.

use super::mix::{self, Compressor};
use crate::Error;
use ebur128::{EbuR128, Mode};

/// Reported loudness and true peak of silence: finite, so manifests stay valid JSON.
pub const SILENCE_DB: f64 = -70.0;

/// The limiter aims this far under the ceiling, so the true peak stays under it after the
/// last rounding and whatever a different true-peak interpolator finds.
const CEILING_MARGIN_DB: f32 = 0.3;

/// Loudness iterations stop when the mix is this close to the target, LU.
const LOUDNESS_TOLERANCE: f64 = 0.05;

/// Most passes of gain, limiter and measurement.
const MAX_PASSES: usize = 6;

/// The bus compressor: slow and light, it glues the stems without audible pumping.
const GLUE: Compressor = Compressor {
    threshold_below_loud_db: -4.0,
    ratio: 1.5,
    attack_ms: 30.0,
    release_ms: 200.0,
};

/// A mastered mix and what was measured of it.
#[derive(Clone, Debug)]
pub struct Mastered {
    /// Interleaved stereo, post-master.
    pub mix: Vec<f32>,
    /// Static gain applied before the limiter, dB.
    pub gain_db: f64,
    pub loudness_lufs: f64,
    pub true_peak_dbtp: f64,
}

/// Integrated loudness (LUFS) of an interleaved stereo buffer, `None` for silence (below the
/// R128 absolute gate). The two halves are measured on two threads, in the way the `ebur128`
/// crate documents for exact parallel measurement (the second half is seeded with the
/// 100 ms before it and overlaps the first by 400 ms).
pub fn loudness(samples: &[f32], sample_rate: u32) -> Result<Option<f64>, Error> {
    let audio = |e: ebur128::Error| Error::Audio(format!("loudness measurement failed: {e}"));
    let tenth = (sample_rate / 10) as usize * 2;
    let frames_in_tenths = samples.len() / tenth;
    let measure = |seed: &[f32], chunk: &[f32]| -> Result<EbuR128, Error> {
        let mut meter = EbuR128::new(2, sample_rate, Mode::I).map_err(audio)?;
        meter.seed_frames_f32(seed).map_err(audio)?;
        meter.add_frames_f32(chunk).map_err(audio)?;
        Ok(meter)
    };
    let value = if frames_in_tenths < 40 {
        measure(&[], samples)?.loudness_global().map_err(audio)?
    } else {
        let split = frames_in_tenths / 2 * tenth;
        let (seed, rest) = samples[split - 4 * tenth..].split_at(tenth);
        let (first, second) = std::thread::scope(|scope| {
            let first = scope.spawn(|| measure(&[], &samples[..split]));
            let second = measure(seed, rest);
            (
                first
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                second,
            )
        });
        let (first, second) = (first?, second?);
        EbuR128::loudness_global_multiple([&first, &second].into_iter()).map_err(audio)?
    };
    Ok((value.is_finite() && value > SILENCE_DB).then_some(value))
}

/// Integrated loudness (LUFS) and true peak (dBTP) of a buffer in one pass of a single
/// `ebur128` meter, with the crate's own true-peak interpolator: the independent check that
/// tests and `refrain evaluate audio` hold the master to. `None` for the loudness of silence
/// and for a true peak of exactly zero.
pub fn measure(buffer: &super::StereoBuffer) -> Result<(Option<f64>, Option<f64>), Error> {
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

/// Taps each side of the interpolation point in the true-peak upsampler.
const HALF_TAPS: usize = 6;

/// Interpolation filters for the three in-between phases of 4x oversampling: a Hann-windowed
/// sinc over 12 neighbouring samples.
fn upsampling_phases() -> [[f32; 2 * HALF_TAPS]; 3] {
    let mut phases = [[0.0f32; 2 * HALF_TAPS]; 3];
    for (p, taps) in phases.iter_mut().enumerate() {
        let offset = (p + 1) as f64 / 4.0;
        for (j, tap) in taps.iter_mut().enumerate() {
            // Sample n + j - (HALF_TAPS - 1) contributes to the point n + offset.
            let distance = offset - (j as f64 - (HALF_TAPS as f64 - 1.0));
            let sinc = if distance.abs() < 1e-12 {
                1.0
            } else {
                (std::f64::consts::PI * distance).sin() / (std::f64::consts::PI * distance)
            };
            let window =
                0.5 + 0.5 * (std::f64::consts::PI * distance / (HALF_TAPS as f64 + 0.5)).cos();
            *tap = (sinc * window) as f32;
        }
    }
    phases
}

/// Per frame, the largest magnitude over both channels of the sample and of the three
/// interpolated points after it. Frames whose neighbourhood is quieter than `floor` only get
/// their sample peak: interpolation cannot lift them near the level that matters.
pub fn true_peaks(samples: &[f32], floor: f32) -> Vec<f32> {
    let frames = samples.len() / 2;
    let mut peaks: Vec<f32> = samples
        .chunks_exact(2)
        .map(|f| f[0].abs().max(f[1].abs()))
        .collect();
    if frames < 2 * HALF_TAPS {
        return peaks;
    }
    let phases = upsampling_phases();
    let near = |n: usize| {
        let from = n.saturating_sub(HALF_TAPS);
        let to = (n + HALF_TAPS + 1).min(frames);
        peaks[from..to].iter().fold(0.0f32, |m, p| m.max(*p))
    };
    let loud: Vec<usize> = (HALF_TAPS - 1..frames - HALF_TAPS)
        .filter(|&n| peaks[n] >= floor || peaks[n + 1] >= floor)
        .filter(|&n| near(n) >= floor)
        .collect();
    for n in loud {
        let first = n + 1 - HALF_TAPS;
        let mut peak = peaks[n];
        for taps in &phases {
            let mut left = 0.0f32;
            let mut right = 0.0f32;
            for (j, tap) in taps.iter().enumerate() {
                left += tap * samples[(first + j) * 2];
                right += tap * samples[(first + j) * 2 + 1];
            }
            peak = peak.max(left.abs()).max(right.abs());
        }
        peaks[n] = peak;
    }
    peaks
}

/// True peak of a buffer, dBTP (`None` for silence).
pub fn true_peak_dbtp(samples: &[f32]) -> Option<f64> {
    let sample_peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    if sample_peak <= 0.0 {
        return None;
    }
    let peak = true_peaks(samples, sample_peak * 0.5)
        .into_iter()
        .fold(0.0f32, f32::max);
    Some(20.0 * f64::from(peak).log10())
}

/// Limits an interleaved stereo buffer so its true peak stays under `ceiling_db` (dBTP).
/// Gain falls at up to `ATTACK_DB_PER_MS` ahead of each peak and recovers at up to
/// `RELEASE_DB_PER_MS` after it, both channels together.
pub fn limit(samples: &mut [f32], ceiling_db: f32, sample_rate: f32) {
    const ATTACK_DB_PER_MS: f32 = 8.0;
    const RELEASE_DB_PER_MS: f32 = 0.12;
    let ceiling = 10f32.powf(ceiling_db / 20.0);
    let peaks = true_peaks(samples, ceiling * 0.5);
    let mut gains_db: Vec<f32> = peaks
        .iter()
        .map(|&p| {
            if p > ceiling {
                20.0 * (ceiling / p).log10()
            } else {
                0.0
            }
        })
        .collect();
    if gains_db.iter().all(|g| *g == 0.0) {
        return;
    }
    let attack = ATTACK_DB_PER_MS * 1000.0 / sample_rate;
    let release = RELEASE_DB_PER_MS * 1000.0 / sample_rate;
    // Backwards: reach each peak's gain ahead of it. Forwards: let go slowly after it.
    for n in (0..gains_db.len().saturating_sub(1)).rev() {
        gains_db[n] = gains_db[n].min(gains_db[n + 1] + attack);
    }
    for n in 1..gains_db.len() {
        gains_db[n] = gains_db[n].min(gains_db[n - 1] + release);
    }
    for (frame, &g) in samples.chunks_exact_mut(2).zip(&gains_db) {
        if g < 0.0 {
            let gain = 10f32.powf(g / 20.0);
            frame[0] *= gain;
            frame[1] *= gain;
        }
    }
}

/// Mean power of a buffer in dB (no weighting, no gate): a cheap stand-in for loudness when
/// only a change of level matters.
fn power_db(samples: &[f32]) -> f64 {
    let sum: f64 = samples
        .chunks(4096)
        .map(|c| c.iter().map(|s| f64::from(*s) * f64::from(*s)).sum::<f64>())
        .sum();
    10.0 * (sum / samples.len().max(1) as f64).max(1e-20).log10()
}

/// `out` = `input` scaled by `gain_db`, then limited under `ceiling` (dBTP).
fn gain_and_limit(input: &[f32], gain_db: f64, ceiling: f32, sample_rate: u32, out: &mut [f32]) {
    let gain = 10f64.powf(gain_db / 20.0) as f32;
    for (o, i) in out.iter_mut().zip(input) {
        *o = i * gain;
    }
    limit(out, ceiling, sample_rate as f32);
}

/// Masters the mix bus (interleaved stereo): glue compression, then gain and limiting until
/// the integrated loudness is within 0.05 LU of `target_lufs` with the true peak under
/// `ceiling_dbtp`. A silent bus comes back unchanged.
pub fn master(
    bus: Vec<f32>,
    sample_rate: u32,
    target_lufs: f64,
    ceiling_dbtp: f64,
) -> Result<Mastered, Error> {
    let mut glued = bus;
    mix::compress(&mut glued, &GLUE, &[], sample_rate as f32);
    let Some(glued_loudness) = loudness(&glued, sample_rate)? else {
        return Ok(Mastered {
            true_peak_dbtp: true_peak_dbtp(&glued).unwrap_or(SILENCE_DB).max(SILENCE_DB),
            mix: glued,
            gain_db: 0.0,
            loudness_lufs: SILENCE_DB,
        });
    };
    let ceiling = ceiling_dbtp as f32 - CEILING_MARGIN_DB;
    let mut gain_db = target_lufs - glued_loudness;
    let mut mix = vec![0.0f32; glued.len()];
    gain_and_limit(&glued, gain_db, ceiling, sample_rate, &mut mix);
    // The limiter takes some loudness away; its loss in plain power predicts most of it, so
    // the first measured pass usually lands on the target.
    let loss = power_db(&mix) - power_db(&glued) - gain_db;
    if loss < -LOUDNESS_TOLERANCE {
        gain_db -= loss;
        gain_and_limit(&glued, gain_db, ceiling, sample_rate, &mut mix);
    }
    let mut measured;
    let mut previous: Option<(f64, f64)> = None;
    let mut passes = 0;
    loop {
        measured = loudness(&mix, sample_rate)?.unwrap_or(SILENCE_DB);
        passes += 1;
        if (measured - target_lufs).abs() <= LOUDNESS_TOLERANCE || passes == MAX_PASSES {
            break;
        }
        // Secant step: under heavy limiting a dB of gain buys less than a dB of loudness.
        let slope = match previous {
            Some((g, m)) if gain_db != g => ((measured - m) / (gain_db - g)).clamp(0.1, 1.0),
            _ => 1.0,
        };
        previous = Some((gain_db, measured));
        gain_db += (target_lufs - measured) / slope;
        gain_and_limit(&glued, gain_db, ceiling, sample_rate, &mut mix);
    }
    let mut true_peak = true_peak_dbtp(&mix).unwrap_or(SILENCE_DB);
    if true_peak > ceiling_dbtp - 0.05 {
        // The limiter's gain curve moves between samples; trim what it let past.
        let trim = ceiling_dbtp - 0.05 - true_peak;
        let factor = 10f64.powf(trim / 20.0) as f32;
        mix.iter_mut().for_each(|s| *s *= factor);
        gain_db += trim;
        measured += trim;
        true_peak += trim;
    }
    Ok(Mastered {
        mix,
        gain_db,
        loudness_lufs: measured,
        true_peak_dbtp: true_peak.max(SILENCE_DB),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, seconds: f32, amplitude: f32) -> Vec<f32> {
        (0..(48_000.0 * seconds) as usize)
            .flat_map(|i| {
                let s = amplitude * (std::f32::consts::TAU * hz * i as f32 / 48_000.0).sin();
                [s, s * 0.8]
            })
            .collect()
    }

    #[test]
    fn the_parallel_loudness_matches_one_meter() {
        let mut x = tone(220.0, 12.0, 0.3);
        for (i, s) in x.iter_mut().enumerate() {
            *s *= 1.0 + 0.5 * ((i / 40_000) % 3) as f32;
        }
        let mut meter = EbuR128::new(2, 48_000, Mode::I).unwrap();
        meter.add_frames_f32(&x).unwrap();
        let single = meter.loudness_global().unwrap();
        let split = loudness(&x, 48_000).unwrap().unwrap();
        assert!((single - split).abs() < 0.01, "{single} vs {split}");
    }

    #[test]
    fn true_peak_finds_the_peak_between_samples() {
        // A sine at a quarter of the rate, sampled 45 degrees off its crests: every sample
        // is at 0.707 of the amplitude, the true peak is the amplitude.
        let x: Vec<f32> = (0..4_800)
            .flat_map(|i| {
                let s =
                    (std::f32::consts::FRAC_PI_2 * i as f32 + std::f32::consts::FRAC_PI_4).sin();
                [s * 0.5, s * 0.5]
            })
            .collect();
        let sample_peak = x.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!((sample_peak - 0.3536).abs() < 1e-3);
        let tp = true_peak_dbtp(&x).unwrap();
        assert!((tp - 20.0 * 0.5f64.log10()).abs() < 0.3, "{tp}");
    }

    #[test]
    fn the_limiter_holds_the_ceiling_and_leaves_quiet_passages_alone() {
        let mut x = tone(440.0, 1.0, 0.1);
        x.extend(tone(440.0, 0.5, 1.5));
        x.extend(tone(440.0, 1.0, 0.1));
        let before = x.clone();
        limit(&mut x, -1.3, 48_000.0);
        assert!(true_peak_dbtp(&x).unwrap() <= -1.25);
        // Well before the loud part (beyond the attack) nothing changed.
        assert_eq!(&x[..80_000], &before[..80_000]);
    }

    #[test]
    fn mastering_reaches_the_target_under_the_ceiling() {
        let mut x = tone(110.0, 8.0, 0.05);
        // Sharp peaks, as drums make, that a plain gain would push over the ceiling.
        for i in (0..x.len()).step_by(24_000) {
            x[i] = 0.25;
        }
        let mastered = master(x, 48_000, -14.0, -1.0).unwrap();
        assert!((mastered.loudness_lufs + 14.0).abs() <= 0.05);
        let remeasured = loudness(&mastered.mix, 48_000).unwrap().unwrap();
        assert!((remeasured - mastered.loudness_lufs).abs() < 0.01);
        assert!(mastered.true_peak_dbtp <= -1.0);
        assert!(mastered.mix.iter().all(|s| s.abs() < 1.0));
    }

    #[test]
    fn silence_stays_silent() {
        let silent = vec![0.0f32; 96_000];
        let mastered = master(silent, 48_000, -14.0, -1.0).unwrap();
        assert_eq!(mastered.loudness_lufs, SILENCE_DB);
        assert!(mastered.mix.iter().all(|s| *s == 0.0));
    }
}
