//! Keyboard voices: the electric piano (two-operator FM whose index decays, as a Rhodes tine
//! mellows after the strike), the piano (decaying inharmonic partials, higher ones dying
//! faster, brighter when struck harder) and the organ (drawbar additive synthesis with key
//! click and a gentle rotary-speaker tremolo).

use super::NoteEvent;
use crate::render::dsp::{
    Adsr, AdsrShape, Noise, OnePole, Phasor, advance, decay_coefficient, flush_denormal,
    midi_to_hz, sin_turns, velocity_gain,
};
use std::f32::consts::TAU;

#[derive(Clone, Copy, Debug)]
pub enum KeysVoice {
    ElectricPiano,
    Piano,
    Organ,
}

const PIANO_PARTIALS: usize = 12;
const DAMPER_S: f32 = 0.18;

/// Drawbar footages as multiples of the played pitch (16', 8', 5 1/3', 4', 2 2/3', 2', 1 3/5')
/// and a warm "jazz" registration.
const DRAWBARS: [(f32, f32); 7] = [
    (0.5, 0.55),
    (1.0, 1.0),
    (1.5, 0.45),
    (2.0, 0.55),
    (3.0, 0.25),
    (4.0, 0.3),
    (5.0, 0.12),
];

impl KeysVoice {
    pub fn length(&self, note: &NoteEvent) -> usize {
        let sr = note.sample_rate;
        match self {
            // Both decay naturally within a few seconds; the damper shortens held-off notes.
            KeysVoice::ElectricPiano | KeysVoice::Piano => {
                note.gate.min((piano_ring_s(note.pitch) * sr) as usize) + (DAMPER_S * sr) as usize
            }
            KeysVoice::Organ => note.gate + (0.06 * sr) as usize,
        }
    }

    pub fn render(&self, note: &NoteEvent, out: &mut [f32]) {
        match self {
            KeysVoice::ElectricPiano => electric_piano(note, out),
            KeysVoice::Piano => piano(note, out),
            KeysVoice::Organ => organ(note, out),
        }
    }
}

/// Time for a piano-like note to fade by 60 dB: low strings ring longer.
fn piano_ring_s(pitch: i32) -> f32 {
    (6.0 * (midi_to_hz(60.0) / midi_to_hz(pitch as f32)).sqrt()).clamp(1.5, 12.0)
}

/// Envelope shared by the struck keyboards: a natural exponential decay while held, then the
/// damper.
struct StruckEnvelope {
    level: f32,
    ring: f32,
    damper: f32,
    gate: usize,
}

impl StruckEnvelope {
    fn new(note: &NoteEvent, ring_s: f32) -> StruckEnvelope {
        StruckEnvelope {
            level: 1.0,
            ring: decay_coefficient(ring_s, note.sample_rate),
            damper: decay_coefficient(DAMPER_S, note.sample_rate),
            gate: note.gate,
        }
    }

    #[inline]
    fn sample(&mut self) -> f32 {
        let out = self.level;
        if self.gate > 0 {
            self.gate -= 1;
            self.level = flush_denormal(self.level * self.ring);
        } else {
            self.level = flush_denormal(self.level * self.damper);
        }
        out
    }
}

fn electric_piano(note: &NoteEvent, out: &mut [f32]) {
    let sr = note.sample_rate;
    let frequency = midi_to_hz(note.pitch as f32);
    let gain = velocity_gain(note.velocity) * 0.44;
    let mut envelope = StruckEnvelope::new(note, piano_ring_s(note.pitch) * 0.8);
    // Modulation index: harder strikes bark more; it decays over ~half a second.
    let mut index = 0.6 + 2.4 * note.velocity;
    let index_floor = 0.25;
    let index_decay = decay_coefficient(1.2, sr);
    // A high, fast-dying modulator gives the tine's metallic "ping".
    let mut tine = 0.5 * note.velocity;
    let tine_decay = decay_coefficient(0.06, sr);
    let step = (frequency / sr).min(0.5);
    // Above Nyquist the tine would alias; it is simply dropped there.
    let tine_step = step * 14.0;
    if tine_step >= 0.5 {
        tine = 0.0;
    }
    // The modulators run at fixed frequencies, so phasors serve; only the carrier, whose
    // phase is modulated, needs a sine evaluation.
    let mut modulator = Phasor::new(frequency, sr, 0.0);
    let mut tine_oscillator = Phasor::new(tine_step * sr, sr, 0.0);
    let mut carrier = 0.0f32;
    let attack = (0.002 * sr).max(1.0);
    for (n, sample) in out.iter_mut().enumerate() {
        // Phase modulation in turns: the index is in radians, as FM indices are quoted.
        let mut m = modulator.sample() * (index_floor + index);
        if tine != 0.0 {
            m += tine_oscillator.sample() * tine;
            tine = flush_denormal(tine * tine_decay);
        }
        let x = sin_turns(carrier + m * (1.0 / TAU));
        let click_guard = (n as f32 / attack).min(1.0);
        *sample = x * envelope.sample() * gain * click_guard;
        advance(&mut carrier, step);
        index = flush_denormal(index * index_decay);
        if n % 1024 == 1023 {
            modulator.renormalise();
            tine_oscillator.renormalise();
        }
    }
}

fn piano(note: &NoteEvent, out: &mut [f32]) {
    let sr = note.sample_rate;
    let frequency = midi_to_hz(note.pitch as f32);
    let ring_s = piano_ring_s(note.pitch);
    let mut noise = Noise::new(note.seed);
    // String stiffness stretches the partials: f_n = n f sqrt(1 + B n^2).
    let inharmonicity = 0.0004 * (frequency / 261.6).sqrt();
    // Louder strikes tilt the spectrum up (the hammer felt hardens).
    let rolloff = 1.6 - 0.7 * note.velocity;
    let mut partials = [Phasor::default(); PIANO_PARTIALS];
    let mut amplitudes = [0.0f32; PIANO_PARTIALS];
    let mut decays = [1.0f32; PIANO_PARTIALS];
    let mut count = 0;
    let mut total = 0.0;
    for n in 1..=PIANO_PARTIALS {
        let nf = n as f32;
        let f = nf * frequency * (1.0 + inharmonicity * nf * nf).sqrt();
        if f > 0.45 * sr {
            break;
        }
        partials[count] = Phasor::new(f, sr, 0.0);
        amplitudes[count] = nf.powf(-rolloff);
        total += amplitudes[count];
        // Upper partials lose energy faster, so the tone darkens as it decays.
        decays[count] = decay_coefficient(ring_s / (1.0 + 0.6 * (nf - 1.0)), sr);
        count += 1;
    }
    let gain = velocity_gain(note.velocity) * 0.95 / total.max(1.0);
    let mut envelope = StruckEnvelope::new(note, ring_s * 4.0);
    let mut hammer = OnePole::new(1200.0 + 3000.0 * note.velocity, sr);
    let hammer_decay = decay_coefficient(0.02, sr);
    let mut hammer_level = 0.3 * note.velocity;
    let attack = (0.001 * sr).max(1.0);
    for (n, sample) in out.iter_mut().enumerate() {
        let mut x = 0.0;
        for i in 0..count {
            x += partials[i].sample() * amplitudes[i];
            amplitudes[i] = flush_denormal(amplitudes[i] * decays[i]);
        }
        x = x * gain + hammer.low(noise.sample()) * hammer_level;
        hammer_level = flush_denormal(hammer_level * hammer_decay);
        *sample = x * envelope.sample() * (n as f32 / attack).min(1.0);
        if n % 1024 == 1023 {
            for p in &mut partials[..count] {
                p.renormalise();
            }
        }
    }
}

fn organ(note: &NoteEvent, out: &mut [f32]) {
    let sr = note.sample_rate;
    let frequency = midi_to_hz(note.pitch as f32);
    let mut noise = Noise::new(note.seed);
    let mut bars = [Phasor::default(); DRAWBARS.len()];
    let mut levels = [0.0f32; DRAWBARS.len()];
    let mut count = 0;
    let mut total = 0.0;
    for &(ratio, level) in &DRAWBARS {
        let f = ratio * frequency;
        if f > 0.45 * sr {
            continue;
        }
        bars[count] = Phasor::new(f, sr, 0.0);
        levels[count] = level;
        total += level;
        count += 1;
    }
    let gain = organ_velocity_gain(note.velocity) * 0.45 / total.max(1.0);
    let mut amp = Adsr::new(
        AdsrShape {
            attack_s: 0.004,
            decay_s: 0.1,
            sustain: 1.0,
            release_s: 0.06,
        },
        note.gate,
        sr,
    );
    let mut click = OnePole::new(3000.0, sr);
    let mut click_level = 0.25f32;
    let click_decay = decay_coefficient(0.008, sr);
    let tremolo = Phasor::new(6.2, sr, noise.unit());
    let mut tremolo = tremolo;
    for (n, sample) in out.iter_mut().enumerate() {
        let mut x = 0.0;
        for i in 0..count {
            x += bars[i].sample() * levels[i];
        }
        let wobble = 1.0 + 0.08 * tremolo.sample();
        x = x * gain * wobble + click.low(noise.sample()) * click_level * gain;
        click_level = flush_denormal(click_level * click_decay);
        *sample = x * amp.sample();
        if n % 1024 == 1023 {
            for p in &mut bars[..count] {
                p.renormalise();
            }
            tremolo.renormalise();
        }
    }
}

/// Organs have no velocity, but a little keeps the stem's dynamics readable.
pub(super) fn organ_velocity_gain(velocity: f32) -> f32 {
    0.6 + 0.4 * velocity
}
