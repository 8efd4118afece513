//! The master stage: a gentle bus compressor, the gain to the target loudness, and an
//! oversampled true-peak limiter, repeated until the integrated loudness (EBU R128, measured
//! by the `ebur128` crate) sits on the target under the true-peak ceiling.
//!
//! The limiter works offline on the whole mix: it finds every frame's true peak (4x
//! oversampled, as ITU-R BS.1770 measures it), derives the gain each frame needs, and shapes
//! that gain with a fast attack ahead of each peak (look-ahead, so nothing overshoots) and a
//! slow release after it.

use super::mix::{self, Compressor};
use super::on_two_threads;
use crate::Error;
use biquad::{Biquad, Coefficients, DirectForm2Transposed};
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
        let (first, second) =
            on_two_threads(|| measure(&[], &samples[..split]), || measure(seed, rest));
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
/// interpolated points after it. Frames where neither this sample nor the next reaches
/// `floor` only get their sample peak: interpolation cannot lift them near the level that
/// matters. Long buffers are split between two threads (each frame depends only on its
/// neighbours).
pub fn true_peaks(samples: &[f32], floor: f32) -> Vec<f32> {
    let frames = samples.len() / 2;
    let mut peaks = vec![0.0f32; frames];
    let phases = upsampling_phases();
    let fill = |from: usize, out: &mut [f32]| {
        for (i, peak) in out.iter_mut().enumerate() {
            *peak = frame_true_peak(samples, from + i, floor, &phases);
        }
    };
    if frames < PARALLEL_FRAMES {
        fill(0, &mut peaks);
    } else {
        let (first, second) = peaks.split_at_mut(frames / 2);
        on_two_threads(|| fill(0, first), || fill(frames / 2, second));
    }
    peaks
}

/// The true peak of frame `n` of an interleaved stereo buffer (see [`true_peaks`]).
#[inline]
fn frame_true_peak(
    samples: &[f32],
    n: usize,
    floor: f32,
    phases: &[[f32; 2 * HALF_TAPS]; 3],
) -> f32 {
    let frames = samples.len() / 2;
    let sample_peak = samples[2 * n].abs().max(samples[2 * n + 1].abs());
    if n + 1 < HALF_TAPS || n + HALF_TAPS >= frames {
        return sample_peak;
    }
    let next_peak = samples[2 * n + 2].abs().max(samples[2 * n + 3].abs());
    if sample_peak < floor && next_peak < floor {
        return sample_peak;
    }
    let first = n + 1 - HALF_TAPS;
    let window = &samples[first * 2..(first + 2 * HALF_TAPS) * 2];
    let mut peak = sample_peak;
    for taps in phases {
        let mut left = 0.0f32;
        let mut right = 0.0f32;
        for (tap, frame) in taps.iter().zip(window.chunks_exact(2)) {
            left += tap * frame[0];
            right += tap * frame[1];
        }
        peak = peak.max(left.abs()).max(right.abs());
    }
    peak
}

/// Buffers at least this long are measured on two threads.
const PARALLEL_FRAMES: usize = 1 << 18;

/// True peak of a buffer, dBTP (`None` for silence).
pub fn true_peak_dbtp(samples: &[f32]) -> Option<f64> {
    let sample_peak = crate::render::dsp::peak(samples);
    if sample_peak <= 0.0 {
        return None;
    }
    let phases = upsampling_phases();
    let floor = sample_peak * 0.5;
    let frames = samples.len() / 2;
    let loudest = |from: usize, to: usize| {
        (from..to).fold(0.0f32, |m, n| {
            m.max(frame_true_peak(samples, n, floor, &phases))
        })
    };
    let peak = if frames < PARALLEL_FRAMES {
        loudest(0, frames)
    } else {
        let (first, second) =
            on_two_threads(|| loudest(0, frames / 2), || loudest(frames / 2, frames));
        first.max(second)
    };
    Some(20.0 * f64::from(peak).log10())
}

/// The limiter's gain fall per millisecond ahead of a peak, and its recovery after it, dB.
const ATTACK_DB_PER_MS: f32 = 8.0;
const RELEASE_DB_PER_MS: f32 = 0.12;

/// The limiter's gain (dB, at most 0) per frame for a signal whose per-frame true peaks are
/// `peaks` scaled by `gain`: each frame under `ceiling`, reached at up to
/// [`ATTACK_DB_PER_MS`] ahead of each peak and let go at up to [`RELEASE_DB_PER_MS`] after
/// it. Returns false, with `curve` all zero, where nothing needs limiting.
fn limiter_curve(
    peaks: &[f32],
    gain: f32,
    ceiling: f32,
    sample_rate: f32,
    curve: &mut Vec<f32>,
) -> bool {
    let threshold = ceiling / gain;
    curve.clear();
    curve.extend(peaks.iter().map(|&p| {
        if p > threshold {
            20.0 * (threshold / p).log10()
        } else {
            0.0
        }
    }));
    if curve.iter().all(|g| *g == 0.0) {
        return false;
    }
    let attack = ATTACK_DB_PER_MS * 1000.0 / sample_rate;
    let release = RELEASE_DB_PER_MS * 1000.0 / sample_rate;
    // Backwards: reach each peak's gain ahead of it. Forwards: let go slowly after it.
    // Between peaks nothing is carried, and those frames are passed over without work.
    let mut carried = 0.0f32;
    for gain in curve.iter_mut().rev() {
        if carried == 0.0 && *gain == 0.0 {
            continue;
        }
        *gain = gain.min(carried);
        carried = (*gain + attack).min(0.0);
    }
    let mut carried = 0.0f32;
    for gain in curve.iter_mut() {
        if carried == 0.0 && *gain == 0.0 {
            continue;
        }
        *gain = gain.min(carried);
        carried = (*gain + release).min(0.0);
    }
    true
}

/// The gain of one frame: the static `gain` times the limiter's gain there (`curve_db`).
#[inline]
fn frame_gain(gain: f32, curve_db: f32) -> f32 {
    if curve_db < 0.0 {
        gain * 10f32.powf(curve_db / 20.0)
    } else {
        gain
    }
}

/// `out` = `input` scaled by `gain` and by the limiter's `curve` (dB per frame).
fn apply_gain(input: &[f32], gain: f32, curve: &[f32], out: &mut [f32]) {
    for ((o, i), &g) in out
        .chunks_exact_mut(2)
        .zip(input.chunks_exact(2))
        .zip(curve)
    {
        let gain = frame_gain(gain, g);
        o[0] = i[0] * gain;
        o[1] = i[1] * gain;
    }
}

/// Limits an interleaved stereo buffer so its true peak stays under `ceiling_db` (dBTP).
pub fn limit(samples: &mut [f32], ceiling_db: f32, sample_rate: f32) {
    let ceiling = 10f32.powf(ceiling_db / 20.0);
    let peaks = true_peaks(samples, ceiling * 0.5);
    let mut curve = Vec::new();
    if limiter_curve(&peaks, 1.0, ceiling, sample_rate, &mut curve) {
        for (frame, &g) in samples.chunks_exact_mut(2).zip(&curve) {
            let gain = frame_gain(1.0, g);
            frame[0] *= gain;
            frame[1] *= gain;
        }
    }
}

/// The K-weighting filter of ITU-R BS.1770 as two biquads (the head's high shelf, then the
/// high-pass), with the coefficients the `ebur128` crate derives for any sample rate.
#[allow(non_snake_case)]
fn k_weighting(sample_rate: u32) -> [Coefficients<f32>; 2] {
    let rate = f64::from(sample_rate);
    let (f0, G, Q) = (1681.974450955533, 3.999843853973347, 0.7071752369554196);
    let K = (std::f64::consts::PI * f0 / rate).tan();
    let Vh = 10f64.powf(G / 20.0);
    let Vb = Vh.powf(0.4996667741545416);
    let a0 = 1.0 + K / Q + K * K;
    let shelf = Coefficients {
        a1: (2.0 * (K * K - 1.0) / a0) as f32,
        a2: ((1.0 - K / Q + K * K) / a0) as f32,
        b0: ((Vh + Vb * K / Q + K * K) / a0) as f32,
        b1: (2.0 * (K * K - Vh) / a0) as f32,
        b2: ((Vh - Vb * K / Q + K * K) / a0) as f32,
    };
    let (f0, Q) = (38.13547087602444, 0.5003270373238773);
    let K = (std::f64::consts::PI * f0 / rate).tan();
    let a0 = 1.0 + K / Q + K * K;
    let high_pass = Coefficients {
        a1: (2.0 * (K * K - 1.0) / a0) as f32,
        a2: ((1.0 - K / Q + K * K) / a0) as f32,
        b0: 1.0,
        b1: -2.0,
        b2: 1.0,
    };
    [shelf, high_pass]
}

/// Predicts the integrated loudness of a buffer under a static gain and a limiter curve,
/// without measuring it again: K-weighting is linear and the limiter's gain moves slowly
/// against the filter, so the limited signal's K-weighted power is close to the original's
/// times the limiter's gain squared. The master searches its gain on this prediction and
/// then measures the result once with `ebur128`; what is left of the prediction's error
/// (hundredths of a LU) is taken out by a second measured pass when needed.
struct LoudnessPredictor {
    /// K-weighted power per frame, both channels summed.
    power: Vec<f32>,
    /// `power` summed over each 100 ms sub-block of the gating blocks.
    sub_blocks: Vec<f64>,
    sub_block_frames: usize,
}

impl LoudnessPredictor {
    fn new(samples: &[f32], sample_rate: u32) -> LoudnessPredictor {
        let frames = samples.len() / 2;
        let filters = k_weighting(sample_rate);
        let weigh = |from: usize, to: usize, out: &mut [f32]| {
            // Start a second early so the high-pass has settled where this part begins.
            let warm = from.saturating_sub(sample_rate as usize);
            let mut left = filters.map(DirectForm2Transposed::<f32>::new);
            let mut right = filters.map(DirectForm2Transposed::<f32>::new);
            for n in warm..to {
                let mut l = samples[2 * n];
                let mut r = samples[2 * n + 1];
                for (fl, fr) in left.iter_mut().zip(right.iter_mut()) {
                    l = fl.run(l);
                    r = fr.run(r);
                }
                if n >= from {
                    out[n - from] = l * l + r * r;
                }
            }
        };
        let mut power = vec![0.0f32; frames];
        if frames < PARALLEL_FRAMES {
            weigh(0, frames, &mut power);
        } else {
            let half = frames / 2;
            let (first, second) = power.split_at_mut(half);
            on_two_threads(|| weigh(0, half, first), || weigh(half, frames, second));
        }
        let sub_block_frames = (sample_rate / 10) as usize;
        let sub_blocks = power
            .chunks_exact(sub_block_frames)
            .map(|c| c.iter().map(|p| f64::from(*p)).sum())
            .collect();
        LoudnessPredictor {
            power,
            sub_blocks,
            sub_block_frames,
        }
    }

    /// Loudness (LUFS) after `gain_db` and the limiter's `curve`; `None` for silence.
    fn predict(&self, gain_db: f64, curve: &[f32]) -> Option<f64> {
        let mut sums = self.sub_blocks.clone();
        let limited = curve
            .chunks(self.sub_block_frames)
            .zip(self.power.chunks(self.sub_block_frames));
        for ((curve, power), sum) in limited.zip(&mut sums) {
            for (&g, &p) in curve.iter().zip(power) {
                if g < 0.0 {
                    *sum -= f64::from((1.0 - 10f32.powf(g / 10.0)) * p);
                }
            }
        }
        let scale = 10f64.powf(gain_db / 10.0) / (4 * self.sub_block_frames) as f64;
        let blocks: Vec<f64> = sums
            .windows(4)
            .map(|w| w.iter().sum::<f64>() * scale)
            .collect();
        gated_loudness(&blocks)
    }
}

/// Integrated loudness from the mean-square power of each 400 ms gating block, gated as
/// ITU-R BS.1770-4 says: blocks under -70 LUFS out, then blocks 10 LU under the rest's
/// loudness out.
fn gated_loudness(blocks: &[f64]) -> Option<f64> {
    let lufs = |power: f64| -0.691 + 10.0 * power.log10();
    let mean = |threshold: f64| {
        let (sum, count) = blocks
            .iter()
            .filter(|&&p| p > 0.0 && lufs(p) > threshold)
            .fold((0.0, 0usize), |(s, c), p| (s + p, c + 1));
        (count > 0).then(|| sum / count as f64)
    };
    let relative_gate = lufs(mean(SILENCE_DB)?) - 10.0;
    let loudness = lufs(mean(relative_gate.max(SILENCE_DB))?);
    (loudness > SILENCE_DB).then_some(loudness)
}

/// Masters the mix bus (interleaved stereo): glue compression, then gain and limiting until
/// the integrated loudness is within 0.05 LU of `target_lufs` with the true peak under
/// `ceiling_dbtp`. A silent bus comes back unchanged.
///
/// The gain is found on a [`LoudnessPredictor`] (no pass over the audio per try), then
/// applied and measured with `ebur128`; a miss is corrected by shifting the aim by what the
/// prediction got wrong, and measured again.
pub fn master(
    bus: Vec<f32>,
    sample_rate: u32,
    target_lufs: f64,
    ceiling_dbtp: f64,
) -> Result<Mastered, Error> {
    let mut glued = bus;
    mix::compress(&mut glued, &GLUE, &[], sample_rate as f32);
    let predictor = LoudnessPredictor::new(&glued, sample_rate);
    let Some(unlimited) = predictor.predict(0.0, &[]) else {
        return Ok(Mastered {
            true_peak_dbtp: true_peak_dbtp(&glued).unwrap_or(SILENCE_DB).max(SILENCE_DB),
            mix: glued,
            gain_db: 0.0,
            loudness_lufs: SILENCE_DB,
        });
    };
    let ceiling_db = ceiling_dbtp as f32 - CEILING_MARGIN_DB;
    let ceiling = 10f32.powf(ceiling_db / 20.0);
    let rate = sample_rate as f32;
    // Frames quieter than half the ceiling at the most gain the search is likely to try
    // need no interpolated peaks; should it go further, the peaks are found again.
    let mut peaks_for_gain_db = target_lufs - unlimited + 6.0;
    let mut peaks = true_peaks(&glued, ceiling * 0.5 / db_to_gain(peaks_for_gain_db));
    let mut curve = Vec::new();
    let mut mix = vec![0.0f32; glued.len()];
    let mut aim = target_lufs;
    let mut gain_db = target_lufs - unlimited;
    let mut measured;
    let mut passes = 0;
    loop {
        gain_db = solve_gain(&predictor, &peaks, gain_db, aim, ceiling, rate, &mut curve);
        if gain_db > peaks_for_gain_db {
            peaks_for_gain_db = gain_db + 6.0;
            peaks = true_peaks(&glued, ceiling * 0.5 / db_to_gain(peaks_for_gain_db));
            continue;
        }
        limiter_curve(&peaks, db_to_gain(gain_db), ceiling, rate, &mut curve);
        apply_gain(&glued, db_to_gain(gain_db), &curve, &mut mix);
        measured = loudness(&mix, sample_rate)?.unwrap_or(SILENCE_DB);
        passes += 1;
        if (measured - target_lufs).abs() <= LOUDNESS_TOLERANCE || passes == MAX_PASSES {
            break;
        }
        aim += target_lufs - measured;
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

fn db_to_gain(db: f64) -> f32 {
    10f64.powf(db / 20.0) as f32
}

/// The static gain (dB) that brings the predicted loudness after the limiter to `aim`,
/// by secant steps from `gain_db`: under heavy limiting a dB of gain buys less than a dB
/// of loudness. Leaves the limiter's curve for the last gain tried in `curve`.
fn solve_gain(
    predictor: &LoudnessPredictor,
    peaks: &[f32],
    mut gain_db: f64,
    aim: f64,
    ceiling: f32,
    sample_rate: f32,
    curve: &mut Vec<f32>,
) -> f64 {
    const PREDICTION_TOLERANCE: f64 = 0.005;
    const MAX_STEPS: usize = 12;
    let mut previous: Option<(f64, f64)> = None;
    for _ in 0..MAX_STEPS {
        limiter_curve(peaks, db_to_gain(gain_db), ceiling, sample_rate, curve);
        let Some(predicted) = predictor.predict(gain_db, curve) else {
            break;
        };
        if (predicted - aim).abs() <= PREDICTION_TOLERANCE {
            break;
        }
        let slope = match previous {
            Some((g, p)) if gain_db != g => ((predicted - p) / (gain_db - g)).clamp(0.1, 1.0),
            _ => 1.0,
        };
        previous = Some((gain_db, predicted));
        gain_db += (aim - predicted) / slope;
    }
    gain_db
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
    fn the_predictor_agrees_with_the_meter() {
        // Loud and soft passages (so the relative gate matters), with sharp peaks to limit.
        let mut x = tone(180.0, 10.0, 0.05);
        for (i, s) in x.iter_mut().enumerate() {
            *s *= 1.0 + 4.0 * ((i / 150_000) % 2) as f32;
        }
        for i in (0..x.len()).step_by(12_000) {
            x[i] = 0.6;
        }
        let predictor = LoudnessPredictor::new(&x, 48_000);
        let unlimited = predictor.predict(0.0, &[]).unwrap();
        let metered = loudness(&x, 48_000).unwrap().unwrap();
        assert!(
            (unlimited - metered).abs() < 0.01,
            "{unlimited} vs {metered}"
        );
        // Under heavy limiting the prediction stays within a few hundredths of a LU.
        let peaks = true_peaks(&x, 0.0);
        let mut curve = Vec::new();
        let (gain_db, ceiling) = (12.0, 10f32.powf(-1.3 / 20.0));
        assert!(limiter_curve(
            &peaks,
            db_to_gain(gain_db),
            ceiling,
            48_000.0,
            &mut curve
        ));
        let predicted = predictor.predict(gain_db, &curve).unwrap();
        let mut limited = vec![0.0; x.len()];
        apply_gain(&x, db_to_gain(gain_db), &curve, &mut limited);
        let metered = loudness(&limited, 48_000).unwrap().unwrap();
        assert!(
            (predicted - metered).abs() < 0.05,
            "{predicted} vs {metered}"
        );
        assert!(true_peak_dbtp(&limited).unwrap() < -1.25);
    }

    #[test]
    fn silence_stays_silent() {
        let silent = vec![0.0f32; 96_000];
        let mastered = master(silent, 48_000, -14.0, -1.0).unwrap();
        assert_eq!(mastered.loudness_lufs, SILENCE_DB);
        assert!(mastered.mix.iter().all(|s| *s == 0.0));
    }
}
