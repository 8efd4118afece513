//! Subtractive synthesis: PolyBLEP saw/pulse (plus sine and breath noise) through a resonant
//! state-variable low-pass with its own envelope, then an ADSR. One algorithm covers the
//! basses, the synth leads, the wind and bowed voices and the overdriven guitar; the patches
//! differ in oscillator mix, filter motion, vibrato and drive.

use super::NoteEvent;
use crate::render::dsp::{
    Adsr, AdsrShape, CONTROL_BLOCK, Noise, OnePole, Svf, advance, flush_denormal, midi_to_hz,
    pulse, saw, sin_turns, velocity_gain,
};

#[derive(Clone, Copy, Debug)]
pub struct SubtractivePatch {
    pub saw: f32,
    pub pulse: f32,
    pub pulse_width: f32,
    pub sine: f32,
    /// A second saw detuned by this many cents (0 = none): the classic thickening.
    pub detune_cents: f32,
    /// Filtered noise, for breath (flute) and bow hiss.
    pub breath: f32,
    pub cutoff_hz: f32,
    /// Added cutoff per hertz of note frequency, so high notes are not dulled.
    pub key_track: f32,
    pub resonance_q: f32,
    /// Filter envelope depth in octaves and its decay time.
    pub filter_env_octaves: f32,
    pub filter_decay_s: f32,
    /// Octaves of cutoff that follow the amplitude envelope: brass opens as it swells.
    pub filter_follows_amp: f32,
    /// Octaves of extra cutoff between the softest and the hardest note.
    pub velocity_brightness: f32,
    pub amp: AdsrShape,
    pub vibrato_cents: f32,
    pub vibrato_hz: f32,
    pub vibrato_delay_s: f32,
    /// Pre-gain into a tanh waveshaper (0 = clean).
    pub drive: f32,
    pub level: f32,
}

impl SubtractivePatch {
    const CLEAN: SubtractivePatch = SubtractivePatch {
        saw: 0.0,
        pulse: 0.0,
        pulse_width: 0.5,
        sine: 0.0,
        detune_cents: 0.0,
        breath: 0.0,
        cutoff_hz: 1000.0,
        key_track: 1.0,
        resonance_q: 0.707,
        filter_env_octaves: 0.0,
        filter_decay_s: 0.2,
        filter_follows_amp: 0.0,
        velocity_brightness: 1.0,
        amp: AdsrShape {
            attack_s: 0.005,
            decay_s: 0.3,
            sustain: 0.8,
            release_s: 0.1,
        },
        vibrato_cents: 0.0,
        vibrato_hz: 5.0,
        vibrato_delay_s: 0.2,
        drive: 0.0,
        level: 0.5,
    };

    /// Almost pure sine with a touch of saw for definition on small speakers.
    pub const SUB_BASS: SubtractivePatch = SubtractivePatch {
        sine: 1.0,
        saw: 0.08,
        cutoff_hz: 220.0,
        key_track: 0.5,
        velocity_brightness: 0.3,
        amp: AdsrShape {
            attack_s: 0.006,
            decay_s: 0.4,
            sustain: 0.9,
            release_s: 0.08,
        },
        level: 0.36,
        ..Self::CLEAN
    };
    /// Saw plus square through a resonant filter snapped shut by a fast envelope.
    pub const ANALOG_BASS: SubtractivePatch = SubtractivePatch {
        saw: 0.7,
        pulse: 0.4,
        cutoff_hz: 180.0,
        key_track: 0.8,
        resonance_q: 1.6,
        filter_env_octaves: 3.0,
        filter_decay_s: 0.25,
        amp: AdsrShape {
            attack_s: 0.003,
            decay_s: 0.5,
            sustain: 0.7,
            release_s: 0.06,
        },
        level: 0.8,
        ..Self::CLEAN
    };
    /// A plucked-string bass: bright attack, decaying body.
    pub const FINGER_BASS: SubtractivePatch = SubtractivePatch {
        saw: 0.5,
        sine: 0.6,
        cutoff_hz: 300.0,
        key_track: 1.0,
        filter_env_octaves: 1.8,
        filter_decay_s: 0.12,
        amp: AdsrShape {
            attack_s: 0.004,
            decay_s: 1.2,
            sustain: 0.35,
            release_s: 0.08,
        },
        level: 1.0,
        ..Self::CLEAN
    };
    /// Darker and woodier than the finger bass, with a softer attack and longer release.
    pub const UPRIGHT_BASS: SubtractivePatch = SubtractivePatch {
        saw: 0.3,
        sine: 0.8,
        cutoff_hz: 260.0,
        key_track: 0.7,
        filter_env_octaves: 1.3,
        filter_decay_s: 0.08,
        amp: AdsrShape {
            attack_s: 0.01,
            decay_s: 1.0,
            sustain: 0.2,
            release_s: 0.15,
        },
        level: 0.93,
        ..Self::CLEAN
    };
    /// Two saws and a square into tanh drive, low-passed before and after the shaper.
    pub const OVERDRIVE_GUITAR: SubtractivePatch = SubtractivePatch {
        saw: 0.6,
        pulse: 0.5,
        detune_cents: 9.0,
        cutoff_hz: 1400.0,
        key_track: 1.0,
        resonance_q: 1.1,
        filter_env_octaves: 1.0,
        filter_decay_s: 0.3,
        amp: AdsrShape {
            attack_s: 0.003,
            decay_s: 1.5,
            sustain: 0.6,
            release_s: 0.12,
        },
        drive: 5.0,
        level: 0.31,
        ..Self::CLEAN
    };
    pub const SAW_LEAD: SubtractivePatch = SubtractivePatch {
        saw: 0.8,
        detune_cents: 7.0,
        cutoff_hz: 900.0,
        key_track: 2.0,
        resonance_q: 1.0,
        filter_env_octaves: 1.5,
        filter_decay_s: 0.3,
        amp: AdsrShape {
            attack_s: 0.01,
            decay_s: 0.3,
            sustain: 0.8,
            release_s: 0.15,
        },
        vibrato_cents: 12.0,
        vibrato_hz: 5.5,
        vibrato_delay_s: 0.25,
        level: 0.35,
        ..Self::CLEAN
    };
    pub const SQUARE_LEAD: SubtractivePatch = SubtractivePatch {
        pulse: 0.8,
        cutoff_hz: 1200.0,
        key_track: 2.0,
        filter_env_octaves: 1.0,
        filter_decay_s: 0.25,
        amp: AdsrShape {
            attack_s: 0.008,
            decay_s: 0.3,
            sustain: 0.85,
            release_s: 0.12,
        },
        vibrato_cents: 10.0,
        vibrato_hz: 5.0,
        vibrato_delay_s: 0.3,
        level: 0.29,
        ..Self::CLEAN
    };
    /// Mostly sine with a little odd-harmonic square and breath noise; slow-ish attack.
    pub const FLUTE: SubtractivePatch = SubtractivePatch {
        sine: 0.8,
        pulse: 0.12,
        breath: 0.12,
        cutoff_hz: 1500.0,
        key_track: 1.5,
        velocity_brightness: 0.8,
        amp: AdsrShape {
            attack_s: 0.06,
            decay_s: 0.2,
            sustain: 0.9,
            release_s: 0.12,
        },
        vibrato_cents: 18.0,
        vibrato_hz: 5.0,
        vibrato_delay_s: 0.2,
        level: 0.32,
        ..Self::CLEAN
    };
    /// A bright resonant saw with a strong, early vibrato.
    pub const FIDDLE: SubtractivePatch = SubtractivePatch {
        saw: 0.8,
        breath: 0.03,
        cutoff_hz: 1800.0,
        key_track: 1.5,
        resonance_q: 1.8,
        amp: AdsrShape {
            attack_s: 0.05,
            decay_s: 0.3,
            sustain: 0.85,
            release_s: 0.2,
        },
        vibrato_cents: 20.0,
        vibrato_hz: 5.8,
        vibrato_delay_s: 0.12,
        level: 0.47,
        ..Self::CLEAN
    };
    /// Brass: the filter opens with the amplitude swell.
    pub const HORN: SubtractivePatch = SubtractivePatch {
        saw: 0.8,
        pulse: 0.2,
        cutoff_hz: 300.0,
        key_track: 0.8,
        filter_follows_amp: 2.2,
        amp: AdsrShape {
            attack_s: 0.08,
            decay_s: 0.4,
            sustain: 0.8,
            release_s: 0.2,
        },
        vibrato_cents: 8.0,
        vibrato_hz: 5.0,
        vibrato_delay_s: 0.35,
        level: 0.7,
        ..Self::CLEAN
    };

    pub fn render(&self, note: &NoteEvent, out: &mut [f32]) {
        let sr = note.sample_rate;
        let frequency = midi_to_hz(note.pitch as f32);
        let mut noise = Noise::new(note.seed);
        let mut amp = Adsr::new(self.amp, note.gate, sr);
        let gain = velocity_gain(note.velocity) * self.level;
        let brightness = self.velocity_brightness * (note.velocity - 0.7);
        let base_cutoff = self.cutoff_hz + self.key_track * frequency;
        let mut filter = Svf::new(base_cutoff, self.resonance_q, sr);
        let mut breath_filter = Svf::new(frequency * 2.0, 1.5, sr);
        let mut post_drive = OnePole::new(5000.0, sr);
        let filter_decay = (-(CONTROL_BLOCK as f32) / (self.filter_decay_s * sr)).exp();
        let detune = (self.detune_cents / 1200.0).exp2();
        let (mut phase, mut phase2, mut sine_phase) = (0.0f32, noise.unit(), 0.0f32);
        let mut filter_env = 1.0f32;
        let mut amp_level = 0.0f32;
        let vibrato_delay = (self.vibrato_delay_s * sr) as usize;
        let vibrato_step = std::f32::consts::TAU * self.vibrato_hz * CONTROL_BLOCK as f32 / sr;
        let mut vibrato_phase = 0.0f32;
        for (block_index, block) in out.chunks_mut(CONTROL_BLOCK).enumerate() {
            let t = block_index * CONTROL_BLOCK;
            // Control rate: pitch (vibrato fading in after its delay) and cutoff.
            let mut bend = 1.0;
            if self.vibrato_cents > 0.0 && t > vibrato_delay {
                let fade = ((t - vibrato_delay) as f32 / (0.3 * sr)).min(1.0);
                bend = (self.vibrato_cents * fade * vibrato_phase.sin() / 1200.0).exp2();
                vibrato_phase += vibrato_step;
            }
            let octaves = self.filter_env_octaves * filter_env
                + self.filter_follows_amp * amp_level
                + brightness;
            filter.set(base_cutoff * octaves.exp2(), self.resonance_q, sr);
            filter_env = flush_denormal(filter_env * filter_decay);
            let dt = (frequency * bend / sr).min(0.5);
            let dt2 = (dt * detune).min(0.5);
            for sample in block.iter_mut() {
                let mut x = 0.0;
                if self.saw != 0.0 {
                    x += self.saw * saw(phase, dt);
                }
                if self.pulse != 0.0 {
                    x += self.pulse * pulse(phase, dt, self.pulse_width);
                }
                if self.detune_cents != 0.0 {
                    x += self.saw.max(self.pulse) * saw(phase2, dt2);
                    advance(&mut phase2, dt2);
                }
                if self.sine != 0.0 {
                    x += self.sine * sin_turns(sine_phase);
                    advance(&mut sine_phase, dt);
                }
                advance(&mut phase, dt);
                if self.breath != 0.0 {
                    x += self.breath * breath_filter.process(noise.sample()).band;
                }
                let mut y = filter.low(x);
                if self.drive != 0.0 {
                    // Soft clipping adds the odd harmonics of an overdriven amp; the one-pole
                    // after it plays the speaker cabinet and tames the fizz.
                    y = post_drive.low((y * self.drive).tanh());
                }
                amp_level = amp.sample();
                *sample = y * amp_level * gain;
            }
        }
    }
}
