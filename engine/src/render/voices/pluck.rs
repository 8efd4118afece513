//! Plucked strings by Karplus-Strong: a delay line one period long, excited by a burst of
//! filtered noise and fed back through a two-point average (which dulls the tone as a real
//! string does). A first-order all-pass supplies the fractional part of the period, so high
//! notes stay in tune; releasing the key damps the loop as a fretting hand would.

use super::{NoteEvent, Scratch};
use crate::render::dsp::{Noise, OnePole, flush_denormal, midi_to_hz, velocity_gain};

#[derive(Clone, Copy, Debug)]
pub struct PluckPatch {
    /// Seconds for a held note to fall by 60 dB.
    pub ring_s: f32,
    /// Seconds to fall by 60 dB once released.
    pub damped_s: f32,
    /// Low-pass of the excitation for the softest note, and its gain per unit velocity.
    pub excitation_hz: f32,
    pub excitation_velocity_hz: f32,
    /// Low-pass after the string (the guitar body, the synth's filter).
    pub tone_hz: f32,
    pub level: f32,
}

impl PluckPatch {
    pub const CLEAN_GUITAR: PluckPatch = PluckPatch {
        ring_s: 3.0,
        damped_s: 0.12,
        excitation_hz: 1800.0,
        excitation_velocity_hz: 4000.0,
        tone_hz: 4500.0,
        level: 1.5,
    };
    pub const PLUCK_ARP: PluckPatch = PluckPatch {
        ring_s: 0.9,
        damped_s: 0.1,
        excitation_hz: 3500.0,
        excitation_velocity_hz: 6000.0,
        tone_hz: 9000.0,
        level: 1.5,
    };

    pub fn render(&self, note: &NoteEvent, out: &mut [f32], scratch: &mut Scratch) {
        let sr = note.sample_rate;
        let frequency = midi_to_hz(note.pitch as f32).min(sr * 0.2);
        // Loop delay = N (line) + 0.5 (average) + d (all-pass), with d kept in [0.1, 1.1)
        // where the all-pass's delay is flat enough.
        let period = sr / frequency - 0.5;
        let length = ((period - 0.1).floor() as usize).max(2);
        let fraction = (period - length as f32).clamp(0.1, 1.1);
        let allpass = (1.0 - fraction) / (1.0 + fraction);
        let per_period = |seconds: f32| 0.001f32.powf(1.0 / (seconds * frequency).max(1.0));
        let held_loss = per_period(self.ring_s).powf(1.0 / length as f32);
        let damped_loss = per_period(self.damped_s).powf(1.0 / length as f32);

        let line = &mut scratch.delay_line;
        line.clear();
        line.resize(length, 0.0);
        let mut noise = Noise::new(note.seed);
        let mut excitation = OnePole::new(
            self.excitation_hz + self.excitation_velocity_hz * note.velocity,
            sr,
        );
        let mut mean = 0.0;
        for v in line.iter_mut() {
            *v = excitation.low(noise.sample());
            mean += *v;
        }
        // No DC in the loop: it would decay into a slow thump.
        mean /= length as f32;
        let mut peak = 0.0f32;
        for v in line.iter_mut() {
            *v -= mean;
            peak = peak.max(v.abs());
        }
        let normalise = if peak > 0.0 { 1.0 / peak } else { 0.0 };
        let gain = velocity_gain(note.velocity) * self.level * normalise * 0.5;
        let mut tone = OnePole::new(self.tone_hz, sr);
        let (mut index, mut previous, mut ap_in, mut ap_out) = (0usize, 0.0f32, 0.0f32, 0.0f32);
        for (n, sample) in out.iter_mut().enumerate() {
            let current = line[index];
            let averaged = 0.5 * (current + previous);
            previous = current;
            let delayed = allpass * averaged + ap_in - allpass * ap_out;
            ap_in = averaged;
            ap_out = delayed;
            let loss = if n < note.gate {
                held_loss
            } else {
                damped_loss
            };
            line[index] = flush_denormal(delayed * loss);
            index += 1;
            if index == length {
                index = 0;
            }
            *sample = tone.low(current) * gain;
        }
    }
}
