//! Small signal-processing building blocks shared by the voices: a seeded noise source,
//! band-limited oscillators (PolyBLEP), a zero-delay-feedback state-variable filter, one-pole
//! filters, sine oscillators by phasor rotation, and an ADSR envelope.
//!
//! Everything here is plain `f32` state advanced one sample at a time, with no allocation, so
//! a voice's inner loop compiles to straight-line code.

use std::f32::consts::{PI, TAU};

/// Xorshift32 noise: cheap, deterministic and good enough for audio (its spectrum is flat and
/// its period, 2^32 - 1 samples, is over a day at 48 kHz).
#[derive(Clone, Debug)]
pub struct Noise(u32);

impl Noise {
    /// A generator seeded through SplitMix64, so nearby seeds give unrelated sequences.
    pub fn new(seed: u64) -> Noise {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let state = (z as u32) ^ ((z >> 32) as u32);
        Noise(if state == 0 { 0x1234_5678 } else { state })
    }

    /// Next value, uniform in [-1, 1).
    #[inline]
    pub fn sample(&mut self) -> f32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        (x >> 8) as f32 * (2.0 / 16_777_216.0) - 1.0
    }

    /// Next value, uniform in [0, 1).
    #[inline]
    pub fn unit(&mut self) -> f32 {
        (self.sample() + 1.0) * 0.5
    }
}

/// PolyBLEP residual: subtracting it at a waveform discontinuity replaces the ideal step by a
/// band-limited one, which removes most of the aliasing of naive saw and pulse waves for
/// two multiplies a sample. `t` is the phase in [0, 1), `dt` the phase increment.
#[inline]
pub fn poly_blep(t: f32, dt: f32) -> f32 {
    if t < dt {
        let x = t / dt;
        x + x - x * x - 1.0
    } else if t > 1.0 - dt {
        let x = (t - 1.0) / dt;
        x * x + x + x + 1.0
    } else {
        0.0
    }
}

/// Band-limited sawtooth in [-1, 1] at phase `t` (falling edge at t = 0).
#[inline]
pub fn saw(t: f32, dt: f32) -> f32 {
    2.0 * t - 1.0 - poly_blep(t, dt)
}

/// Band-limited pulse in [-1, 1] with duty cycle `width` (0.5 = square).
#[inline]
pub fn pulse(t: f32, dt: f32, width: f32) -> f32 {
    let naive = if t < width { 1.0 } else { -1.0 };
    let mut falling = t - width;
    if falling < 0.0 {
        falling += 1.0;
    }
    naive + poly_blep(t, dt) - poly_blep(falling, dt)
}

/// Naive triangle in [-1, 1]. Its harmonics fall at 12 dB per octave, so the aliasing of the
/// naive form stays far below audibility at the pitches it is used for.
#[inline]
pub fn triangle(t: f32) -> f32 {
    4.0 * (t - 0.5).abs() - 1.0
}

/// Advances a phase in [0, 1).
#[inline]
pub fn advance(phase: &mut f32, increment: f32) {
    // Increments stay below one cycle (the voices clamp them to Nyquist), so one subtraction
    // wraps; `floor` would be a libm call on baseline x86-64.
    *phase += increment;
    if *phase >= 1.0 {
        *phase -= 1.0;
    }
}

/// sin(2 pi x) for any finite `x` in turns: reduction to a quarter wave and an odd
/// 9th-order polynomial. The error stays under 4e-6 (-108 dB), and it costs a fraction of
/// libm's `sinf`, which matters for FM and swept voices that cannot use a [`Phasor`].
#[inline]
pub fn sin_turns(x: f32) -> f32 {
    let mut t = x - (x as i64) as f32;
    if t >= 0.5 {
        t -= 1.0;
    } else if t < -0.5 {
        t += 1.0;
    }
    if t > 0.25 {
        t = 0.5 - t;
    } else if t < -0.25 {
        t = -0.5 - t;
    }
    let u = t * TAU;
    let u2 = u * u;
    u * (1.0
        + u2 * (-1.0 / 6.0 + u2 * (1.0 / 120.0 + u2 * (-1.0 / 5040.0 + u2 * (1.0 / 362_880.0)))))
}

/// Sine oscillator by rotating a unit phasor: one complex multiply a sample instead of a
/// `sin` call, which matters for additive voices with many partials. The phasor is
/// renormalised every block so rounding cannot make it grow or shrink over long notes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Phasor {
    re: f32,
    im: f32,
    cos_step: f32,
    sin_step: f32,
}

impl Phasor {
    pub fn new(frequency_hz: f32, sample_rate: f32, start_phase: f32) -> Phasor {
        let w = TAU * frequency_hz / sample_rate;
        Phasor {
            re: (TAU * start_phase).cos(),
            im: (TAU * start_phase).sin(),
            cos_step: w.cos(),
            sin_step: w.sin(),
        }
    }

    /// Current sine value, then advances one sample.
    #[inline]
    pub fn sample(&mut self) -> f32 {
        let out = self.im;
        let re = self.re * self.cos_step - self.im * self.sin_step;
        self.im = self.re * self.sin_step + self.im * self.cos_step;
        self.re = re;
        out
    }

    pub fn renormalise(&mut self) {
        let norm = (self.re * self.re + self.im * self.im).sqrt();
        if norm > 0.0 {
            self.re /= norm;
            self.im /= norm;
        }
    }
}

/// Samples between control-rate updates (filter coefficients, vibrato, envelopes of
/// modulation): 32 samples is under a millisecond, far faster than any musical sweep.
pub const CONTROL_BLOCK: usize = 32;

/// Zero-delay-feedback state-variable filter (Andrew Simper's trapezoidal form). Unlike the
/// classic Chamberlin SVF it stays stable and in tune right up to Nyquist, so cutoff
/// sweeps need no clamping tricks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Svf {
    ic1: f32,
    ic2: f32,
    a1: f32,
    a2: f32,
    a3: f32,
    k: f32,
}

/// The three simultaneous outputs of [`Svf::process`].
#[derive(Clone, Copy, Debug)]
pub struct SvfOut {
    pub low: f32,
    pub band: f32,
    pub high: f32,
}

impl Svf {
    pub fn new(cutoff_hz: f32, q: f32, sample_rate: f32) -> Svf {
        let mut f = Svf::default();
        f.set(cutoff_hz, q, sample_rate);
        f
    }

    /// Sets cutoff and resonance (Q = 0.707 is maximally flat), keeping the state.
    pub fn set(&mut self, cutoff_hz: f32, q: f32, sample_rate: f32) {
        let cutoff = cutoff_hz.clamp(10.0, sample_rate * 0.49);
        let g = (PI * cutoff / sample_rate).tan();
        self.k = 1.0 / q.max(0.1);
        self.a1 = 1.0 / (1.0 + g * (g + self.k));
        self.a2 = g * self.a1;
        self.a3 = g * self.a2;
    }

    #[inline]
    pub fn process(&mut self, x: f32) -> SvfOut {
        let v3 = x - self.ic2;
        let v1 = self.a1 * self.ic1 + self.a2 * v3;
        let v2 = self.ic2 + self.a2 * self.ic1 + self.a3 * v3;
        self.ic1 = 2.0 * v1 - self.ic1;
        self.ic2 = 2.0 * v2 - self.ic2;
        SvfOut {
            low: v2,
            band: v1,
            high: x - self.k * v1 - v2,
        }
    }

    #[inline]
    pub fn low(&mut self, x: f32) -> f32 {
        self.process(x).low
    }
}

/// One-pole filter (6 dB per octave): the cheapest smoothing, for noise colouring and tone.
#[derive(Clone, Copy, Debug, Default)]
pub struct OnePole {
    coefficient: f32,
    state: f32,
}

impl OnePole {
    pub fn new(cutoff_hz: f32, sample_rate: f32) -> OnePole {
        let cutoff = cutoff_hz.clamp(1.0, sample_rate * 0.49);
        OnePole {
            coefficient: 1.0 - (-TAU * cutoff / sample_rate).exp(),
            state: 0.0,
        }
    }

    #[inline]
    pub fn low(&mut self, x: f32) -> f32 {
        self.state += self.coefficient * (x - self.state);
        self.state
    }

    #[inline]
    pub fn high(&mut self, x: f32) -> f32 {
        x - self.low(x)
    }
}

/// Zero for values too small to hear (below -300 dB). Exponential decays otherwise sink
/// into subnormal floats, which x86 processors handle up to a hundred times slower; that
/// alone once tripled the render time. (Setting the CPU's flush-to-zero flag would need
/// `unsafe`, which this crate forbids.)
#[inline]
pub fn flush_denormal(x: f32) -> f32 {
    if x.abs() < 1e-15 { 0.0 } else { x }
}

/// Per-sample multiplier that makes a level fall by 60 dB in `seconds`.
#[inline]
pub fn decay_coefficient(seconds: f32, sample_rate: f32) -> f32 {
    let samples = (seconds * sample_rate).max(1.0);
    (-6.907_755 / samples).exp()
}

/// ADSR timings. Decay and release are exponential (as in analogue envelopes, and as the ear
/// hears loudness), the attack linear so it reaches full level in exactly its time.
#[derive(Clone, Copy, Debug)]
pub struct AdsrShape {
    pub attack_s: f32,
    pub decay_s: f32,
    pub sustain: f32,
    pub release_s: f32,
}

/// A running ADSR envelope: the key is held for `gate` samples, then released.
#[derive(Clone, Copy, Debug)]
pub struct Adsr {
    level: f32,
    attack_step: f32,
    decay_coefficient: f32,
    sustain: f32,
    release_coefficient: f32,
    attacking: bool,
    remaining_gate: usize,
}

impl Adsr {
    pub fn new(shape: AdsrShape, gate: usize, sample_rate: f32) -> Adsr {
        Adsr {
            level: 0.0,
            attack_step: 1.0 / (shape.attack_s * sample_rate).max(1.0),
            decay_coefficient: decay_coefficient(shape.decay_s, sample_rate),
            sustain: shape.sustain,
            release_coefficient: decay_coefficient(shape.release_s, sample_rate),
            attacking: true,
            remaining_gate: gate,
        }
    }

    #[inline]
    pub fn sample(&mut self) -> f32 {
        if self.remaining_gate > 0 {
            self.remaining_gate -= 1;
            if self.attacking {
                self.level += self.attack_step;
                if self.level >= 1.0 {
                    self.level = 1.0;
                    self.attacking = false;
                }
            } else {
                self.level = self.sustain + (self.level - self.sustain) * self.decay_coefficient;
            }
        } else {
            self.level = flush_denormal(self.level * self.release_coefficient);
        }
        self.level
    }
}

/// Gain for a MIDI-style velocity (0..1): a square law, like most synthesisers, with a floor
/// so the softest notes stay audible (about 26 dB of range).
#[inline]
pub fn velocity_gain(velocity: f32) -> f32 {
    0.05 + 0.95 * velocity * velocity
}

/// Frequency of a MIDI pitch in equal temperament, A4 = 440 Hz.
#[inline]
pub fn midi_to_hz(pitch: f32) -> f32 {
    440.0 * ((pitch - 69.0) / 12.0).exp2()
}

/// The largest magnitude in `samples` (0 for none), in eight running maxima: a single running
/// maximum is one long chain of dependent steps that the processor cannot overlap.
pub fn peak(samples: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let mut chunks = samples.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, s) in lanes.iter_mut().zip(chunk) {
            *lane = lane.max(s.abs());
        }
    }
    let rest = chunks
        .remainder()
        .iter()
        .fold(0.0f32, |m, s| m.max(s.abs()));
    lanes.iter().fold(rest, |m, l| m.max(*l))
}
