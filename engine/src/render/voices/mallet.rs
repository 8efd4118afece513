//! Struck metal: sums of exponentially decaying sine partials at the instrument's own,
//! mostly inharmonic, ratios. The vibraphone's bars are tuned to 1 : 4 : 10 and its motor
//! gives the tremolo; the bell uses the hum, prime, tierce, quint and nominal of a church bell.

use super::NoteEvent;
use crate::render::dsp::{Phasor, decay_coefficient, flush_denormal, midi_to_hz, velocity_gain};

const MAX_PARTIALS: usize = 8;

#[derive(Clone, Copy, Debug)]
pub struct MalletPatch {
    /// (frequency ratio, amplitude, decay time as a fraction of `ring_s`).
    pub partials: [(f32, f32, f32); MAX_PARTIALS],
    pub partial_count: usize,
    pub ring_s: f32,
    pub damped_s: f32,
    /// How much harder strikes raise the upper partials.
    pub velocity_brightness: f32,
    pub tremolo_depth: f32,
    pub tremolo_hz: f32,
    pub level: f32,
}

impl MalletPatch {
    pub const VIBRAPHONE: MalletPatch = MalletPatch {
        partials: [
            (1.0, 1.0, 1.0),
            (3.984, 0.3, 0.25),
            (10.0, 0.08, 0.08),
            (0.0, 0.0, 0.0),
            (0.0, 0.0, 0.0),
            (0.0, 0.0, 0.0),
            (0.0, 0.0, 0.0),
            (0.0, 0.0, 0.0),
        ],
        partial_count: 3,
        ring_s: 3.5,
        damped_s: 0.25,
        velocity_brightness: 1.0,
        tremolo_depth: 0.3,
        tremolo_hz: 5.5,
        level: 0.63,
    };
    pub const BELL: MalletPatch = MalletPatch {
        partials: [
            (0.5, 0.35, 1.0),
            (1.0, 1.0, 0.8),
            (1.183, 0.55, 0.6),
            (1.506, 0.35, 0.5),
            (2.0, 0.6, 0.45),
            (2.514, 0.3, 0.35),
            (2.662, 0.25, 0.3),
            (3.011, 0.2, 0.25),
        ],
        partial_count: 8,
        ring_s: 5.0,
        damped_s: 1.0,
        velocity_brightness: 0.8,
        tremolo_depth: 0.0,
        tremolo_hz: 0.0,
        level: 0.75,
    };

    pub fn render(&self, note: &NoteEvent, out: &mut [f32]) {
        let sr = note.sample_rate;
        let frequency = midi_to_hz(note.pitch as f32);
        let mut oscillators = [Phasor::default(); MAX_PARTIALS];
        let mut amplitudes = [0.0f32; MAX_PARTIALS];
        let mut decays = [1.0f32; MAX_PARTIALS];
        let mut count = 0;
        let mut total = 0.0;
        for &(ratio, amplitude, decay) in &self.partials[..self.partial_count.min(MAX_PARTIALS)] {
            let f = ratio * frequency;
            if f <= 0.0 || f > 0.45 * sr {
                continue;
            }
            oscillators[count] = Phasor::new(f, sr, 0.0);
            let tilt = if ratio > 1.0 {
                (1.0 - self.velocity_brightness * (1.0 - note.velocity)).max(0.1)
            } else {
                1.0
            };
            amplitudes[count] = amplitude * tilt;
            total += amplitudes[count];
            decays[count] = decay_coefficient(self.ring_s * decay, sr);
            count += 1;
        }
        let gain = velocity_gain(note.velocity) * self.level / total.max(1.0);
        let damper = decay_coefficient(self.damped_s, sr);
        let mut damping = 1.0f32;
        let mut tremolo = Phasor::new(self.tremolo_hz.max(0.01), sr, 0.0);
        let attack = (0.0015 * sr).max(1.0);
        for (n, sample) in out.iter_mut().enumerate() {
            let mut x = 0.0;
            for i in 0..count {
                x += oscillators[i].sample() * amplitudes[i];
                amplitudes[i] = flush_denormal(amplitudes[i] * decays[i]);
            }
            if n >= note.gate {
                damping = flush_denormal(damping * damper);
            }
            let wobble = 1.0 - self.tremolo_depth * 0.5 * (1.0 + tremolo.sample());
            *sample = x * gain * damping * wobble * (n as f32 / attack).min(1.0);
            if n % 1024 == 1023 {
                for p in &mut oscillators[..count] {
                    p.renormalise();
                }
                tremolo.renormalise();
            }
        }
    }
}
