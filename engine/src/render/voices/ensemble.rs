//! Ensemble voices (pads, strings, choir): four detuned PolyBLEP saws, each from its own
//! random phase so they never lock, summed and low-passed, with slow envelopes. The choir adds
//! two vowel formants ("ah") on top of the low-pass.

use super::NoteEvent;
use crate::render::dsp::{
    Adsr, AdsrShape, CONTROL_BLOCK, Noise, OnePole, Svf, midi_to_hz, velocity_gain,
};

/// Saws per ensemble note. Exactly four, computed branch-free side by side, so the compiler
/// can run them as one four-lane SIMD operation: pads hold long four-note chords and were the
/// costliest voice in a render.
const LANES: usize = 4;

#[derive(Clone, Copy, Debug)]
pub struct EnsemblePatch {
    /// Total detune spread in cents between the flattest and the sharpest saw.
    pub spread_cents: f32,
    pub cutoff_hz: f32,
    pub key_track: f32,
    pub velocity_brightness: f32,
    pub amp: AdsrShape,
    pub vibrato_cents: f32,
    pub vibrato_hz: f32,
    /// Mix of the "ah" formant band-passes (0 = plain low-passed saws).
    pub formants: f32,
    pub level: f32,
}

impl EnsemblePatch {
    pub const WARM_PAD: EnsemblePatch = EnsemblePatch {
        spread_cents: 24.0,
        cutoff_hz: 700.0,
        key_track: 0.6,
        velocity_brightness: 0.8,
        amp: AdsrShape {
            attack_s: 0.5,
            decay_s: 1.5,
            sustain: 0.85,
            release_s: 1.0,
        },
        vibrato_cents: 0.0,
        vibrato_hz: 0.0,
        formants: 0.0,
        level: 0.6,
    };
    pub const STRINGS: EnsemblePatch = EnsemblePatch {
        spread_cents: 16.0,
        cutoff_hz: 1800.0,
        key_track: 1.0,
        velocity_brightness: 1.0,
        amp: AdsrShape {
            attack_s: 0.22,
            decay_s: 0.6,
            sustain: 0.9,
            release_s: 0.45,
        },
        vibrato_cents: 10.0,
        vibrato_hz: 5.5,
        formants: 0.0,
        level: 0.4,
    };
    pub const CHOIR: EnsemblePatch = EnsemblePatch {
        spread_cents: 20.0,
        cutoff_hz: 1600.0,
        key_track: 0.5,
        velocity_brightness: 0.6,
        amp: AdsrShape {
            attack_s: 0.3,
            decay_s: 0.8,
            sustain: 0.9,
            release_s: 0.6,
        },
        vibrato_cents: 14.0,
        vibrato_hz: 4.8,
        formants: 1.0,
        level: 0.26,
    };

    pub fn render(&self, note: &NoteEvent, out: &mut [f32]) {
        let sr = note.sample_rate;
        let frequency = midi_to_hz(note.pitch as f32);
        let mut noise = Noise::new(note.seed);
        let mut phases = [0.0f32; LANES];
        let mut ratios = [1.0f32; LANES];
        for (lane, (phase, ratio)) in phases.iter_mut().zip(&mut ratios).enumerate() {
            *phase = noise.unit();
            let position = lane as f32 / (LANES - 1) as f32 - 0.5;
            *ratio = (self.spread_cents * position / 1200.0).exp2();
        }
        let mut amp = Adsr::new(self.amp, note.gate, sr);
        // Equal-power sum of uncorrelated saws.
        let gain = velocity_gain(note.velocity) * self.level / (LANES as f32).sqrt();
        let cutoff = (self.cutoff_hz + self.key_track * frequency)
            * (self.velocity_brightness * (note.velocity - 0.7)).exp2();
        // Two cascaded one-poles (12 dB per octave, no resonance): all a pad needs, and their
        // short feedback chains run about twice as fast as a state-variable filter's. Each
        // sits half an octave up so the pair is about 3 dB down at `cutoff`.
        let mut first_pole = OnePole::new(cutoff * 1.55, sr);
        let mut second_pole = first_pole;
        let mut formant_a = Svf::new(730.0, 5.0, sr);
        let mut formant_b = Svf::new(1090.0, 6.0, sr);
        let vibrato_step = std::f32::consts::TAU * self.vibrato_hz * CONTROL_BLOCK as f32 / sr;
        let mut vibrato_phase = noise.unit() * std::f32::consts::TAU;
        for block in out.chunks_mut(CONTROL_BLOCK) {
            let bend = (self.vibrato_cents * vibrato_phase.sin() / 1200.0).exp2();
            vibrato_phase += vibrato_step;
            let base_dt = frequency * bend / sr;
            let increments = ratios.map(|r| (base_dt * r).min(0.5));
            let inverse = increments.map(|dt| 1.0 / dt);
            for sample in block.iter_mut() {
                // The PolyBLEP saw of dsp::saw, written with selects instead of branches.
                let mut lanes = [0.0f32; LANES];
                for lane in 0..LANES {
                    let (t, dt) = (phases[lane], increments[lane]);
                    let rising = t * inverse[lane];
                    let falling = (t - 1.0) * inverse[lane];
                    let start = if t < dt {
                        rising + rising - rising * rising - 1.0
                    } else {
                        0.0
                    };
                    let end = if t > 1.0 - dt {
                        falling * falling + falling + falling + 1.0
                    } else {
                        0.0
                    };
                    lanes[lane] = 2.0 * t - 1.0 - start - end;
                    let next = t + dt;
                    phases[lane] = if next >= 1.0 { next - 1.0 } else { next };
                }
                let x = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
                let mut y = second_pole.low(first_pole.low(x));
                if self.formants != 0.0 {
                    let vowel = formant_a.process(x).band + 0.7 * formant_b.process(x).band;
                    y = y * (1.0 - 0.5 * self.formants) + vowel * self.formants;
                }
                *sample = y * amp.sample() * gain;
            }
        }
    }
}
