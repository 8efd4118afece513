//! Chiptune voices after the NES sound chip, deliberately plain: a pulse lead (25 % duty,
//! PolyBLEP so it does not alias at high notes), a triangle bass, and noise drums from a
//! 15-bit linear-feedback shift register, whose "short" mode gives the metallic tones.
//! Volume is stepped in sixteen levels, as the chip's 4-bit volume was.

use super::NoteEvent;
use crate::music::DrumClass;
use crate::render::dsp::{advance, decay_coefficient, flush_denormal, midi_to_hz, pulse, triangle};

#[derive(Clone, Copy, Debug)]
pub enum ChipVoice {
    Pulse,
    Triangle,
    NoiseDrums,
}

/// A noise-drum recipe: LFSR clock, short (metallic) mode, decay, and an optional triangle
/// pitch sweep (from, to, seconds) for kicks and toms.
struct NoiseHit {
    clock_hz: f32,
    short_mode: bool,
    noise_level: f32,
    decay_s: f32,
    sweep: Option<(f32, f32, f32)>,
}

fn noise_hit(class: Option<DrumClass>) -> Option<NoiseHit> {
    let hit = |clock_hz, short_mode, noise_level, decay_s, sweep| NoiseHit {
        clock_hz,
        short_mode,
        noise_level,
        decay_s,
        sweep,
    };
    Some(match class? {
        DrumClass::Kick => hit(2000.0, false, 0.1, 0.2, Some((180.0, 45.0, 0.05))),
        DrumClass::Snare => hit(9000.0, false, 0.8, 0.2, Some((220.0, 160.0, 0.03))),
        DrumClass::ClosedHat => hit(40_000.0, false, 0.6, 0.05, None),
        DrumClass::OpenHat => hit(40_000.0, false, 0.5, 0.3, None),
        DrumClass::Clap => hit(12_000.0, false, 0.8, 0.15, None),
        DrumClass::LowTom => hit(3000.0, false, 0.1, 0.3, Some((160.0, 80.0, 0.08))),
        DrumClass::MidTom => hit(3000.0, false, 0.1, 0.28, Some((220.0, 110.0, 0.08))),
        DrumClass::HighTom => hit(3000.0, false, 0.1, 0.25, Some((300.0, 150.0, 0.08))),
        DrumClass::Crash => hit(22_000.0, false, 0.6, 1.2, None),
        DrumClass::Ride => hit(28_000.0, true, 0.4, 0.8, None),
        DrumClass::Perc => hit(5000.0, true, 0.6, 0.06, None),
    })
}

/// The chip's 4-bit volume.
pub(super) fn stepped_volume(velocity: f32) -> f32 {
    (velocity * 15.0).round().max(1.0) / 15.0
}

impl ChipVoice {
    pub fn length(&self, note: &NoteEvent) -> usize {
        let sr = note.sample_rate;
        match self {
            ChipVoice::Pulse | ChipVoice::Triangle => note.gate + (0.01 * sr) as usize,
            ChipVoice::NoiseDrums => noise_hit(DrumClass::from_index(note.pitch))
                .map_or(0, |h| (h.decay_s * 1.1 * sr) as usize),
        }
    }

    pub fn render(&self, note: &NoteEvent, out: &mut [f32]) {
        let sr = note.sample_rate;
        match self {
            ChipVoice::Pulse | ChipVoice::Triangle => {
                let dt = (midi_to_hz(note.pitch as f32) / sr).min(0.5);
                let volume = stepped_volume(note.velocity)
                    * if matches!(self, ChipVoice::Pulse) {
                        0.16
                    } else {
                        0.27
                    };
                // A couple of milliseconds of ramp at each end: the real chip clicks, but a
                // click on every note is not wanted in a mix.
                let ramp = (0.002 * sr).max(1.0);
                let gate = note.gate as f32;
                let mut phase = 0.0f32;
                for (n, sample) in out.iter_mut().enumerate() {
                    let t = n as f32;
                    let edge = (t / ramp)
                        .min(1.0)
                        .min(((gate + ramp - t) / ramp).clamp(0.0, 1.0));
                    let x = match self {
                        ChipVoice::Pulse => pulse(phase, dt, 0.25),
                        _ => triangle(phase),
                    };
                    *sample = x * volume * edge;
                    advance(&mut phase, dt);
                }
            }
            ChipVoice::NoiseDrums => {
                let Some(hit) = noise_hit(DrumClass::from_index(note.pitch)) else {
                    out.fill(0.0);
                    return;
                };
                let volume = stepped_volume(note.velocity) * 0.8;
                let clock_step = (hit.clock_hz / sr).min(1.0);
                let decay = decay_coefficient(hit.decay_s, sr);
                let mut register: u16 = 1 | (note.seed as u16 & 0x7ffe);
                let tap = if hit.short_mode { 6 } else { 1 };
                let (mut clock, mut level, mut phase) = (0.0f32, 1.0f32, 0.0f32);
                let mut bit = 1.0f32;
                let (mut sweep, sweep_decay) = hit.sweep.map_or((0.0, 1.0), |(from, to, s)| {
                    (from - to, (-1.0 / (s * sr)).exp())
                });
                for sample in out.iter_mut() {
                    clock += clock_step;
                    if clock >= 1.0 {
                        clock -= 1.0;
                        let feedback = (register ^ (register >> tap)) & 1;
                        register = (register >> 1) | (feedback << 14);
                        bit = if register & 1 == 0 { 1.0 } else { -1.0 };
                    }
                    let mut x = bit * hit.noise_level;
                    if let Some((_, to, _)) = hit.sweep {
                        x += triangle(phase);
                        advance(&mut phase, ((to + sweep) / sr).min(0.5));
                        sweep = flush_denormal(sweep * sweep_decay);
                    }
                    *sample = x * level * volume;
                    level = flush_denormal(level * decay);
                }
            }
        }
    }
}
