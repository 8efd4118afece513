//! The mixer's channel strips. Each stem, after its instrument, goes through an EQ (biquads
//! from the `biquad` crate), a compressor, sidechain ducking keyed from the kick, and a reverb
//! send whose return is added back into the stem, so every exported stem carries its own
//! space and the stems still sum to the mix bus.
//!
//! Settings come per style and stem from [`strip`] and [`room`]. The compressor's threshold is
//! set from the stem's own loud passages (see [`loud_level_db`]), so it acts the same however
//! loud an instrument happens to be.

use crate::music::{Stem, Style};
use biquad::{Coefficients, ToHertz, Type};

/// One EQ band.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Band {
    /// 12 dB/octave high-pass (Butterworth) at a frequency.
    HighPass(f32),
    /// Low shelf at a frequency, gain in dB.
    LowShelf(f32, f32),
    /// Peaking band at a frequency, gain in dB, Q.
    Peak(f32, f32, f32),
    /// High shelf at a frequency, gain in dB.
    HighShelf(f32, f32),
}

/// A feed-forward compressor, stereo-linked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Compressor {
    /// Threshold relative to the stem's loud level ([`loud_level_db`]), dB (negative).
    pub threshold_below_loud_db: f32,
    pub ratio: f32,
    pub attack_ms: f32,
    pub release_ms: f32,
}

/// A stem's channel strip.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Strip {
    pub eq: [Option<Band>; 4],
    pub compressor: Compressor,
    /// Depth of the kick's ducking, dB (0 = none).
    pub duck_db: f32,
    /// Level sent to the reverb (0..1).
    pub reverb_send: f32,
}

/// The reverb's room for a style.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Room {
    /// Time for the tail to fall by 60 dB, seconds.
    pub decay_s: f32,
    /// Above this the tail darkens (loop damping), Hz.
    pub damping_hz: f32,
    pub predelay_ms: f32,
}

pub fn room(style: Style) -> Room {
    let (decay_s, damping_hz, predelay_ms) = match style {
        Style::Ambient => (4.5, 6_000.0, 30.0),
        Style::Cinematic => (3.4, 7_000.0, 25.0),
        Style::Synthwave => (2.4, 8_000.0, 20.0),
        Style::Lofi => (1.8, 3_500.0, 15.0),
        Style::Jazz => (1.5, 5_000.0, 12.0),
        Style::Folk => (1.6, 6_000.0, 12.0),
        Style::Rock => (1.3, 6_500.0, 10.0),
        Style::Chiptune => (0.8, 9_000.0, 5.0),
    };
    Room {
        decay_s,
        damping_hz,
        predelay_ms,
    }
}

/// How hard the kick ducks the stems that share its range (dB): a pumping bass and pad is
/// part of the dance styles' sound; acoustic styles leave it out.
fn duck_depth(style: Style, stem: Stem) -> f32 {
    let depth: f32 = match style {
        Style::Synthwave => 6.0,
        Style::Lofi => 4.0,
        Style::Rock => 2.0,
        Style::Chiptune => 1.5,
        Style::Jazz | Style::Folk | Style::Ambient | Style::Cinematic => 0.0,
    };
    match stem {
        Stem::Bass => depth,
        Stem::Chords | Stem::Texture => depth * 0.6,
        Stem::Drums | Stem::Lead => 0.0,
    }
}

/// The channel strip of a stem in a style.
pub fn strip(style: Style, stem: Stem) -> Strip {
    let wet = match style {
        Style::Ambient | Style::Cinematic => 1.5,
        Style::Rock | Style::Chiptune => 0.6,
        _ => 1.0,
    };
    let (eq, compressor, reverb_send) = match stem {
        Stem::Drums => (
            [
                Some(Band::HighPass(30.0)),
                Some(Band::LowShelf(90.0, 2.0)),
                Some(Band::Peak(420.0, -2.0, 1.2)),
                Some(Band::HighShelf(8_000.0, 1.5)),
            ],
            Compressor {
                threshold_below_loud_db: -8.0,
                ratio: 3.0,
                attack_ms: 8.0,
                release_ms: 120.0,
            },
            0.05,
        ),
        Stem::Bass => (
            [
                Some(Band::HighPass(32.0)),
                Some(Band::Peak(250.0, -1.5, 1.0)),
                Some(Band::HighShelf(3_500.0, -3.0)),
                None,
            ],
            Compressor {
                threshold_below_loud_db: -6.0,
                ratio: 4.0,
                attack_ms: 5.0,
                release_ms: 150.0,
            },
            0.0,
        ),
        Stem::Chords => (
            [
                Some(Band::HighPass(110.0)),
                Some(Band::Peak(300.0, -2.0, 1.0)),
                Some(Band::HighShelf(6_000.0, 1.0)),
                None,
            ],
            Compressor {
                threshold_below_loud_db: -6.0,
                ratio: 2.0,
                attack_ms: 20.0,
                release_ms: 250.0,
            },
            0.22,
        ),
        Stem::Lead => (
            [
                Some(Band::HighPass(140.0)),
                Some(Band::Peak(3_000.0, 1.5, 0.9)),
                None,
                None,
            ],
            Compressor {
                threshold_below_loud_db: -6.0,
                ratio: 3.0,
                attack_ms: 10.0,
                release_ms: 200.0,
            },
            0.18,
        ),
        Stem::Texture => (
            [
                Some(Band::HighPass(180.0)),
                Some(Band::HighShelf(9_000.0, 1.0)),
                None,
                None,
            ],
            Compressor {
                threshold_below_loud_db: -6.0,
                ratio: 2.0,
                attack_ms: 15.0,
                release_ms: 250.0,
            },
            0.32,
        ),
    };
    Strip {
        eq,
        compressor,
        duck_db: duck_depth(style, stem),
        reverb_send: reverb_send * wet,
    }
}

fn coefficients(band: Band, sample_rate: f32) -> Option<Coefficients<f32>> {
    let nyquist_guard = sample_rate * 0.45;
    let (kind, hz, q) = match band {
        Band::HighPass(hz) => (Type::HighPass, hz, biquad::Q_BUTTERWORTH_F32),
        Band::LowShelf(hz, db) => (Type::LowShelf(db), hz, biquad::Q_BUTTERWORTH_F32),
        Band::Peak(hz, db, q) => (Type::PeakingEQ(db), hz, q),
        Band::HighShelf(hz, db) => (Type::HighShelf(db), hz, biquad::Q_BUTTERWORTH_F32),
    };
    // A band above what the sample rate can carry is left out rather than failing the render.
    if hz >= nyquist_guard {
        return None;
    }
    Coefficients::<f32>::from_params(kind, sample_rate.hz(), hz.hz(), q).ok()
}

/// One EQ band on both channels: the `biquad` crate's coefficients, run in transposed
/// direct form II on a pair of samples at a time, so the two channels share each step.
#[derive(Clone, Copy)]
struct StereoBiquad {
    b: [f32; 3],
    a: [f32; 2],
    s1: [f32; 2],
    s2: [f32; 2],
}

impl StereoBiquad {
    fn new(c: Coefficients<f32>) -> StereoBiquad {
        StereoBiquad {
            b: [c.b0, c.b1, c.b2],
            a: [c.a1, c.a2],
            s1: [0.0; 2],
            s2: [0.0; 2],
        }
    }

    #[inline]
    fn run(&mut self, x: [f32; 2]) -> [f32; 2] {
        let mut y = [0.0f32; 2];
        for c in 0..2 {
            y[c] = self.b[0] * x[c] + self.s1[c];
            self.s1[c] = self.b[1] * x[c] - self.a[0] * y[c] + self.s2[c];
            self.s2[c] = self.b[2] * x[c] - self.a[1] * y[c];
        }
        y
    }

    /// Whether the filter has nothing left to give: silence in gives silence out.
    fn is_at_rest(&self) -> bool {
        self.s1.iter().chain(&self.s2).all(|s| s.abs() < 1e-30)
    }
}

/// Frames the EQ looks at together to skip silence.
const EQ_BLOCK: usize = 256;

/// Runs the EQ over an interleaved stereo buffer: every band on both channels in one pass
/// over the frames, which keeps the buffer in cache. Silent stretches (a part that rests)
/// are skipped once the filters have settled.
pub fn equalise(samples: &mut [f32], eq: &[Option<Band>], sample_rate: f32) {
    let mut filters: Vec<StereoBiquad> = eq
        .iter()
        .flatten()
        .filter_map(|band| coefficients(*band, sample_rate))
        .map(StereoBiquad::new)
        .collect();
    if filters.is_empty() {
        return;
    }
    for block in samples.chunks_mut(EQ_BLOCK * 2) {
        if block.iter().all(|s| *s == 0.0) && filters.iter().all(StereoBiquad::is_at_rest) {
            continue;
        }
        for frame in block.chunks_exact_mut(2) {
            let mut x = [frame[0], frame[1]];
            for filter in &mut filters {
                x = filter.run(x);
            }
            frame[0] = crate::render::dsp::flush_denormal(x[0]);
            frame[1] = crate::render::dsp::flush_denormal(x[1]);
        }
    }
}

/// Frames over which compressor and ducking gains are computed; the gain moves linearly
/// across each, which is smooth to the ear and spares a logarithm per sample.
const GAIN_BLOCK: usize = 32;

fn to_db(x: f32) -> f32 {
    20.0 * x.max(1e-9).log10()
}

/// The level of a buffer's loud passages: the 90th percentile of its 50 ms RMS levels (dBFS),
/// counting only blocks that are not silent. `None` for a silent buffer.
pub fn loud_level_db(samples: &[f32], sample_rate: f32) -> Option<f32> {
    let block = ((sample_rate * 0.05) as usize).max(1) * 2;
    let mut levels: Vec<f32> = samples
        .chunks(block)
        .map(|b| (sum_of_squares(b) / b.len() as f32).sqrt())
        .filter(|rms| *rms > 1e-5)
        .map(to_db)
        .collect();
    if levels.is_empty() {
        return None;
    }
    levels.sort_by(f32::total_cmp);
    Some(levels[(levels.len() - 1) * 9 / 10])
}

/// The sum of the squares of `samples`, in eight running sums (as [`crate::render::dsp::peak`]).
fn sum_of_squares(samples: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let mut chunks = samples.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, s) in lanes.iter_mut().zip(chunk) {
            *lane += s * s;
        }
    }
    let rest: f32 = chunks.remainder().iter().map(|s| s * s).sum();
    lanes.iter().sum::<f32>() + rest
}

/// Compresses an interleaved stereo buffer (stereo-linked peak detection) and applies the
/// kick ducking `duck` (one gain per frame block, see [`duck_gains`]) in the same pass.
pub fn compress(samples: &mut [f32], compressor: &Compressor, duck: &[f32], sample_rate: f32) {
    let Some(loud) = loud_level_db(samples, sample_rate) else {
        return;
    };
    let threshold = loud + compressor.threshold_below_loud_db;
    let slope = 1.0 - 1.0 / compressor.ratio.max(1.0);
    let blocks_per_second = sample_rate / GAIN_BLOCK as f32;
    let attack = (-1.0 / (compressor.attack_ms * 0.001 * blocks_per_second).max(1e-3)).exp();
    let release = (-1.0 / (compressor.release_ms * 0.001 * blocks_per_second).max(1e-3)).exp();
    let mut envelope_db = -120.0f32;
    let mut gain = 1.0f32;
    for (index, block) in samples.chunks_mut(GAIN_BLOCK * 2).enumerate() {
        let level = to_db(crate::render::dsp::peak(block));
        let coefficient = if level > envelope_db { attack } else { release };
        envelope_db = level + (envelope_db - level) * coefficient;
        let reduction_db = (envelope_db - threshold).max(0.0) * slope;
        let duck_gain = duck.get(index).copied().unwrap_or(1.0);
        let target = 10f32.powf(-reduction_db / 20.0) * duck_gain;
        let step = (target - gain) / (block.len() / 2) as f32;
        // Each frame's gain from the block's start, not a running sum: the frames are then
        // independent of each other and vectorise.
        for (i, frame) in block.chunks_exact_mut(2).enumerate() {
            let g = gain + step * (i + 1) as f32;
            frame[0] *= g;
            frame[1] *= g;
        }
        gain = target;
    }
}

/// Ducking gain per [`GAIN_BLOCK`] of frames: at each kick onset the gain drops by `depth_db`
/// within 5 ms and recovers exponentially over about a third of a beat.
pub fn duck_gains(
    kicks: &[usize],
    frames: usize,
    depth_db: f32,
    beat_frames: f32,
    sample_rate: f32,
) -> Vec<f32> {
    let blocks = frames.div_ceil(GAIN_BLOCK);
    if depth_db <= 0.0 || kicks.is_empty() {
        return vec![1.0; blocks];
    }
    let depth = 1.0 - 10f32.powf(-depth_db / 20.0);
    let attack_blocks = (0.005 * sample_rate / GAIN_BLOCK as f32).max(1.0);
    let recovery = (-(GAIN_BLOCK as f32) / (beat_frames / 3.0).max(1.0)).exp();
    let mut gains = vec![1.0f32; blocks];
    let mut next_kick = kicks.iter().map(|k| k / GAIN_BLOCK).peekable();
    let mut envelope = 0.0f32;
    let mut attacking = 0.0f32;
    for (block, gain) in gains.iter_mut().enumerate() {
        while next_kick.next_if(|&k| k <= block).is_some() {
            attacking = attack_blocks;
        }
        if attacking > 0.0 {
            envelope = (envelope + 1.0 / attack_blocks).min(1.0);
            attacking -= 1.0;
        } else {
            envelope *= recovery;
        }
        *gain = 1.0 - depth * envelope;
    }
    gains
}

/// A feedback-delay-network reverb: four damped delay lines mixed by a Hadamard matrix after
/// two input diffusers. It runs at half the sample rate (a reverb tail is dark, and it halves
/// the cost of the costliest part of a strip) and returns a stereo wet signal.
pub struct Reverb {
    lines: [Vec<f32>; 4],
    positions: [usize; 4],
    feedback: [f32; 4],
    damping: f32,
    filters: [f32; 4],
    diffusers: [(Vec<f32>, usize); 2],
    predelay: (Vec<f32>, usize),
}

/// Delay-line lengths at 24 kHz: mutually prime, 35 to 70 ms.
const LINE_LENGTHS: [usize; 4] = [853, 1117, 1399, 1693];
const DIFFUSER_LENGTHS: [usize; 2] = [113, 337];
const DIFFUSION: f32 = 0.6;

impl Reverb {
    /// A reverb for a room, running at `sample_rate / 2`.
    pub fn new(room: &Room, sample_rate: f32) -> Reverb {
        let rate = sample_rate * 0.5;
        let scale = rate / 24_000.0;
        let lengths = LINE_LENGTHS.map(|l| ((l as f32 * scale) as usize).max(1));
        let feedback = lengths.map(|l| 10f32.powf(-3.0 * l as f32 / (room.decay_s * rate)));
        let damping = (-std::f32::consts::TAU * room.damping_hz.min(rate * 0.45) / rate).exp();
        let predelay = ((room.predelay_ms * 0.001 * rate) as usize).max(1);
        Reverb {
            lines: lengths.map(|l| vec![0.0; l]),
            positions: [0; 4],
            feedback,
            damping,
            filters: [0.0; 4],
            diffusers: DIFFUSER_LENGTHS
                .map(|l| (vec![0.0; ((l as f32 * scale) as usize).max(1)], 0)),
            predelay: (vec![0.0; predelay], 0),
        }
    }

    /// Steps that can run as one block: no more than the shortest delay, so every value a
    /// block reads from a delay was written by an earlier block.
    fn block_steps(&self) -> usize {
        self.lines
            .iter()
            .chain(self.diffusers.iter().map(|(buffer, _)| buffer))
            .chain([&self.predelay.0])
            .map(Vec::len)
            .fold(REVERB_BLOCK, usize::min)
            .max(1)
    }

    /// Runs `input.len()` steps (at most [`Reverb::block_steps`]) at the reverb's rate: mono
    /// in, stereo out. Per sample the arithmetic is the one-step-at-a-time recurrence's; in
    /// blocks, the reads and writes of every delay are contiguous runs and only the lines'
    /// damping filters stay a sample-by-sample chain.
    fn run_block(&mut self, input: &mut [f32], left: &mut [f32], right: &mut [f32]) {
        let steps = input.len();
        let (buffer, position) = &mut self.predelay;
        for_delay_runs(buffer, position, steps, |delay, at| {
            input[at..at + delay.len()].swap_with_slice(delay)
        });
        for (buffer, position) in &mut self.diffusers {
            // Schroeder all-pass: flat in magnitude, smears the input in time.
            for_delay_runs(buffer, position, steps, |delay, at| {
                for (x, delayed) in input[at..at + delay.len()].iter_mut().zip(delay) {
                    let v = *x + DIFFUSION * *delayed;
                    let out = *delayed - DIFFUSION * v;
                    *delayed = v;
                    *x = out;
                }
            });
        }
        let mut outs = [[0.0f32; REVERB_BLOCK]; 4];
        for ((out, line), position) in outs.iter_mut().zip(&self.lines).zip(&self.positions) {
            let mut from = *position;
            for o in &mut out[..steps] {
                *o = line[from];
                from += 1;
                if from == line.len() {
                    from = 0;
                }
            }
        }
        let mut written = [[0.0f32; REVERB_BLOCK]; 4];
        let mut filters = self.filters;
        for i in 0..steps {
            let mut taps = [0.0f32; 4];
            for k in 0..4 {
                let out = outs[k][i];
                filters[k] = out + (filters[k] - out) * self.damping;
                taps[k] = filters[k];
            }
            // Hadamard 4x4 (scaled to stay lossless) keeps the lines' energy while mixing them.
            let (a, b) = (taps[0] + taps[1], taps[0] - taps[1]);
            let (c, d) = (taps[2] + taps[3], taps[2] - taps[3]);
            let mixed = [(a + c) * 0.5, (b + d) * 0.5, (a - c) * 0.5, (b - d) * 0.5];
            for k in 0..4 {
                written[k][i] =
                    crate::render::dsp::flush_denormal(mixed[k] * self.feedback[k] + input[i]);
            }
            left[i] = taps[0] + taps[2] * 0.6;
            right[i] = taps[1] + taps[3] * 0.6;
        }
        self.filters = filters;
        for ((line, position), written) in
            self.lines.iter_mut().zip(&mut self.positions).zip(&written)
        {
            for_delay_runs(line, position, steps, |delay, at| {
                delay.copy_from_slice(&written[at..at + delay.len()])
            });
        }
    }

    /// Adds the reverb of `send` times an interleaved stereo buffer to the buffer itself. It
    /// runs at half rate: each pair of frames is averaged in (read before anything is added
    /// to it), and the output is interpolated back up.
    pub fn process_in_place(&mut self, samples: &mut [f32], send: f32) {
        let mut previous = (0.0f32, 0.0f32);
        let block = self.block_steps();
        let mut input = [0.0f32; REVERB_BLOCK];
        let mut left = [0.0f32; REVERB_BLOCK];
        let mut right = [0.0f32; REVERB_BLOCK];
        for chunk in samples.chunks_mut(block * 4) {
            let steps = chunk.len().div_ceil(4);
            let mut pairs = chunk.chunks_exact(4);
            for (x, pair) in input.iter_mut().zip(&mut pairs) {
                *x = (pair[0] + pair[1] + pair[2] + pair[3]) * 0.25 * send;
            }
            if !pairs.remainder().is_empty() {
                input[steps - 1] = pairs.remainder().iter().sum::<f32>() * 0.25 * send;
            }
            self.run_block(&mut input[..steps], &mut left[..steps], &mut right[..steps]);
            for ((pair, &left), &right) in chunk.chunks_mut(4).zip(&left).zip(&right) {
                // Linear interpolation: the first frame halfway from the previous output.
                pair[0] += 0.5 * (previous.0 + left);
                pair[1] += 0.5 * (previous.1 + right);
                if pair.len() == 4 {
                    pair[2] += left;
                    pair[3] += right;
                }
                previous = (left, right);
            }
        }
    }
}

/// Steps of the reverb run as one block (see [`Reverb::block_steps`]).
const REVERB_BLOCK: usize = 64;

/// Calls `run(delay, at)` over the `steps` cells of a circular delay from `position` on, as at
/// most two contiguous runs (`at` is the run's offset in the block), and advances `position`.
fn for_delay_runs(
    buffer: &mut [f32],
    position: &mut usize,
    steps: usize,
    mut run: impl FnMut(&mut [f32], usize),
) {
    let first = steps.min(buffer.len() - *position);
    run(&mut buffer[*position..*position + first], 0);
    if first < steps {
        run(&mut buffer[..steps - first], first);
    }
    *position = (*position + steps) % buffer.len();
}

/// Runs a stem's strip over its interleaved stereo buffer: EQ, compressor with ducking, then
/// the reverb return added in.
pub fn process_stem(
    samples: &mut [f32],
    strip: &Strip,
    room: &Room,
    duck: &[f32],
    sample_rate: f32,
) {
    equalise(samples, &strip.eq, sample_rate);
    compress(samples, &strip.compressor, duck, sample_rate);
    if strip.reverb_send > 0.0 {
        Reverb::new(room, sample_rate).process_in_place(samples, strip.reverb_send);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f32, seconds: f32, amplitude: f32) -> Vec<f32> {
        let n = (48_000.0 * seconds) as usize;
        (0..n)
            .flat_map(|i| {
                let s = amplitude * (std::f32::consts::TAU * hz * i as f32 / 48_000.0).sin();
                [s, s]
            })
            .collect()
    }

    fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|s| s * s).sum::<f32>() / x.len() as f32).sqrt()
    }

    #[test]
    fn the_high_pass_removes_rumble_and_keeps_the_mids() {
        let mut low = sine(20.0, 1.0, 0.5);
        let mut mid = sine(1_000.0, 1.0, 0.5);
        let eq = [Some(Band::HighPass(120.0)), None, None, None];
        equalise(&mut low, &eq, 48_000.0);
        equalise(&mut mid, &eq, 48_000.0);
        assert!(
            rms(&low[48_000..]) < 0.05 * 0.354,
            "{}",
            rms(&low[48_000..])
        );
        assert!((rms(&mid[48_000..]) / 0.354 - 1.0).abs() < 0.02);
    }

    #[test]
    fn the_compressor_narrows_the_gap_between_loud_and_soft() {
        let mut x = sine(440.0, 1.0, 0.05);
        x.extend(sine(440.0, 1.0, 0.5));
        let before = rms(&x[96_000 + 9_600..]) / rms(&x[9_600..96_000]);
        let c = Compressor {
            threshold_below_loud_db: -12.0,
            ratio: 4.0,
            attack_ms: 5.0,
            release_ms: 100.0,
        };
        compress(&mut x, &c, &[], 48_000.0);
        let after = rms(&x[96_000 + 9_600..]) / rms(&x[9_600..96_000]);
        assert!(after < before * 0.5, "{before} -> {after}");
    }

    #[test]
    fn ducking_dips_at_each_kick_and_recovers_before_the_next() {
        let beat = 24_000.0;
        let kicks = [0usize, 24_000, 48_000];
        let gains = duck_gains(&kicks, 72_000, 6.0, beat, 48_000.0);
        let at = |frame: usize| gains[frame / GAIN_BLOCK];
        assert!(at(24_000 + 480) < 0.6, "{}", at(24_000 + 480));
        assert!(at(24_000 + 23_000) > 0.95, "{}", at(24_000 + 23_000));
        assert!(gains.iter().all(|g| (0.49..=1.0).contains(g)));
        assert!(duck_gains(&kicks, 72_000, 0.0, beat, 48_000.0) == vec![1.0; 2250]);
    }

    #[test]
    fn the_reverb_tail_decays_at_the_rooms_rate() {
        let room = Room {
            decay_s: 1.0,
            damping_hz: 8_000.0,
            predelay_ms: 10.0,
        };
        let mut impulse = vec![0.0f32; 48_000 * 3 * 2];
        impulse[0] = 1.0;
        impulse[1] = 1.0;
        let mut wet = impulse.clone();
        Reverb::new(&room, 48_000.0).process_in_place(&mut wet, 1.0);
        wet[0] -= 1.0;
        wet[1] -= 1.0;
        let window = |s: f32| rms(&wet[(s * 96_000.0) as usize..((s + 0.1) * 96_000.0) as usize]);
        let drop_db = to_db(window(0.2)) - to_db(window(1.2));
        // 60 dB per second, give or take the damping and the modes' spread.
        assert!((45.0..80.0).contains(&drop_db), "{drop_db}");
        assert!(wet.iter().all(|s| s.is_finite()));
    }
}
