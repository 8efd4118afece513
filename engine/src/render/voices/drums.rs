//! The synthesized drum kit, one recipe per [`DrumClass`] in the manner of analogue drum
//! machines: the kick and toms are sine sweeps (the pitch drop is the "punch"), the snare is a
//! tuned body plus band-passed noise, hats and cymbals are high-passed noise mixed with six
//! detuned square oscillators (the 808's metallic cluster), the clap is noise bursts, and the
//! percussion is a short wood-block click. Velocity sets gain and, for noise, brightness.

use super::{NoteEvent, Scratch};
use crate::music::DrumClass;
use crate::render::dsp::{
    Noise, OnePole, Svf, advance, decay_coefficient, flush_denormal, pulse, sin_turns,
    velocity_gain,
};

#[derive(Clone, Copy, Debug)]
pub struct DrumKitVoice;

/// The 808 cymbal's six square oscillators, in hertz.
const METAL_HZ: [f32; 6] = [205.3, 304.4, 369.6, 522.7, 540.0, 800.0];

/// Six band-limited squares at inharmonic ratios: a dense, clangy spectrum that high-passed
/// becomes a convincing hat or cymbal.
struct Metal {
    phases: [f32; 6],
    increments: [f32; 6],
}

impl Metal {
    /// The cluster's first `length` samples, from the cache when it holds enough of them.
    fn cached(scratch: &mut Scratch, scale: f32, sample_rate: f32, length: usize) -> &[f32] {
        let key = (scale.to_bits(), sample_rate.to_bits());
        let index = match scratch.metal.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                scratch.metal.push((key, Vec::new()));
                scratch.metal.len() - 1
            }
        };
        let buffer = &mut scratch.metal[index].1;
        if buffer.len() < length {
            let mut metal = Metal::new(scale, sample_rate);
            buffer.clear();
            buffer.extend((0..length).map(|_| metal.sample()));
        }
        &buffer[..length]
    }

    fn new(scale: f32, sample_rate: f32) -> Metal {
        Metal {
            phases: [0.0, 0.17, 0.41, 0.63, 0.29, 0.83],
            increments: METAL_HZ.map(|f| (f * scale / sample_rate).min(0.5)),
        }
    }

    #[inline]
    fn sample(&mut self) -> f32 {
        let mut x = 0.0;
        for i in 0..6 {
            x += pulse(self.phases[i], self.increments[i], 0.5);
            advance(&mut self.phases[i], self.increments[i]);
        }
        x * (1.0 / 6.0)
    }
}

impl DrumKitVoice {
    /// Seconds a hit sounds for, whatever the note's length (drums are one-shots).
    pub fn length_s(class_index: i32) -> f32 {
        match DrumClass::from_index(class_index) {
            Some(DrumClass::Kick) => 0.6,
            Some(DrumClass::Snare) => 0.4,
            Some(DrumClass::ClosedHat) => 0.12,
            Some(DrumClass::OpenHat) => 0.6,
            Some(DrumClass::Clap) => 0.4,
            Some(DrumClass::LowTom | DrumClass::MidTom | DrumClass::HighTom) => 0.6,
            Some(DrumClass::Crash) => 2.5,
            Some(DrumClass::Ride) => 1.6,
            Some(DrumClass::Perc) => 0.15,
            None => 0.0,
        }
    }

    pub fn render(note: &NoteEvent, out: &mut [f32], scratch: &mut Scratch) {
        let sr = note.sample_rate;
        let gain = velocity_gain(note.velocity);
        let mut noise = Noise::new(note.seed);
        let bright = 0.6 + 0.4 * note.velocity;
        match DrumClass::from_index(note.pitch) {
            Some(DrumClass::Kick) => {
                swept_sine(out, sr, gain, 48.0, 110.0, 0.045, 0.45, 0.35, &mut noise)
            }
            Some(DrumClass::LowTom) => {
                swept_sine(out, sr, gain * 0.8, 95.0, 50.0, 0.06, 0.5, 0.15, &mut noise)
            }
            Some(DrumClass::MidTom) => swept_sine(
                out,
                sr,
                gain * 0.8,
                130.0,
                65.0,
                0.06,
                0.45,
                0.15,
                &mut noise,
            ),
            Some(DrumClass::HighTom) => swept_sine(
                out,
                sr,
                gain * 0.8,
                175.0,
                85.0,
                0.05,
                0.4,
                0.15,
                &mut noise,
            ),
            Some(DrumClass::Snare) => snare(out, sr, gain, bright, &mut noise),
            Some(DrumClass::ClosedHat) => cymbal(
                out,
                scratch,
                sr,
                gain * 0.5,
                7000.0 * bright,
                0.08,
                0.5,
                1.0,
                &mut noise,
            ),
            Some(DrumClass::OpenHat) => cymbal(
                out,
                scratch,
                sr,
                gain * 0.45,
                7000.0 * bright,
                0.5,
                0.5,
                1.0,
                &mut noise,
            ),
            Some(DrumClass::Crash) => cymbal(
                out,
                scratch,
                sr,
                gain * 0.45,
                4500.0 * bright,
                2.3,
                0.65,
                1.6,
                &mut noise,
            ),
            Some(DrumClass::Ride) => cymbal(
                out,
                scratch,
                sr,
                gain * 0.35,
                3000.0 * bright,
                1.5,
                0.35,
                2.3,
                &mut noise,
            ),
            Some(DrumClass::Clap) => clap(out, sr, gain, &mut noise),
            Some(DrumClass::Perc) => wood_block(out, sr, gain, &mut noise),
            None => out.fill(0.0),
        }
    }
}

/// A sine whose pitch falls exponentially from `base + sweep` to `base`, with a noise click
/// on the attack.
#[allow(clippy::too_many_arguments)]
fn swept_sine(
    out: &mut [f32],
    sr: f32,
    gain: f32,
    base_hz: f32,
    sweep_hz: f32,
    sweep_s: f32,
    decay_s: f32,
    click: f32,
    noise: &mut Noise,
) {
    let sweep_decay = (-1.0 / (sweep_s * sr)).exp();
    let amp_decay = decay_coefficient(decay_s, sr);
    let click_decay = decay_coefficient(0.004, sr);
    let mut click_filter = OnePole::new(1500.0, sr);
    let (mut phase, mut sweep, mut amp, mut click_level) = (0.0f32, sweep_hz, 1.0f32, click);
    for sample in out.iter_mut() {
        let body = sin_turns(phase);
        let tick = click_filter.high(noise.sample()) * click_level;
        *sample = (body * amp + tick) * gain;
        advance(&mut phase, ((base_hz + sweep) / sr).min(0.5));
        sweep = flush_denormal(sweep * sweep_decay);
        amp = flush_denormal(amp * amp_decay);
        click_level = flush_denormal(click_level * click_decay);
    }
}

fn snare(out: &mut [f32], sr: f32, gain: f32, bright: f32, noise: &mut Noise) {
    let tone_decay = decay_coefficient(0.15, sr);
    let noise_decay = decay_coefficient(0.28, sr);
    let mut filter = Svf::new(2500.0 * bright, 0.6, sr);
    let (mut low, mut high) = (0.0f32, 0.0f32);
    let (low_step, high_step) = (185.0 / sr, 330.0 / sr);
    let (mut tone, mut rattle) = (0.6f32, 0.7f32);
    for sample in out.iter_mut() {
        let body = sin_turns(low) + 0.6 * sin_turns(high);
        let wires = filter.process(noise.sample());
        *sample = (body * tone + (wires.band + 0.5 * wires.high) * rattle) * gain * 0.6;
        advance(&mut low, low_step);
        advance(&mut high, high_step);
        tone = flush_denormal(tone * tone_decay);
        rattle = flush_denormal(rattle * noise_decay);
    }
}

/// Hats and cymbals: noise and metal, high-passed, decaying over `decay_s` (to -60 dB).
#[allow(clippy::too_many_arguments)]
fn cymbal(
    out: &mut [f32],
    scratch: &mut Scratch,
    sr: f32,
    gain: f32,
    high_pass_hz: f32,
    decay_s: f32,
    metal_mix: f32,
    metal_scale: f32,
    noise: &mut Noise,
) {
    let metal = Metal::cached(scratch, metal_scale, sr, out.len());
    let mut filter = Svf::new(high_pass_hz, 0.9, sr);
    let mut second = Svf::new(high_pass_hz * 0.8, 0.7, sr);
    let decay = decay_coefficient(decay_s, sr);
    let attack = (0.0008 * sr).max(1.0);
    let mut level = 1.0f32;
    for (n, (sample, &clang)) in out.iter_mut().zip(metal).enumerate() {
        let x = noise.sample() * (1.0 - metal_mix) + clang * metal_mix * 2.0;
        // Two cascaded high-passes (24 dB per octave) keep the low clang out.
        let y = second.process(filter.process(x).high).high;
        *sample = y * level * gain * (n as f32 / attack).min(1.0);
        level = flush_denormal(level * decay);
    }
}

/// Three quick noise bursts (several hands, not quite together) and a short reverb-like tail.
fn clap(out: &mut [f32], sr: f32, gain: f32, noise: &mut Noise) {
    let mut filter = Svf::new(1200.0, 1.4, sr);
    let burst_decay = decay_coefficient(0.012, sr);
    let tail_decay = decay_coefficient(0.25, sr);
    let spacing = (0.011 * sr) as usize;
    let mut burst = 1.0f32;
    let mut tail = 0.0f32;
    for (n, sample) in out.iter_mut().enumerate() {
        if spacing > 0 && n % spacing == 0 && n / spacing < 3 {
            burst = 1.0;
        }
        if spacing > 0 && n == 3 * spacing {
            tail = 0.6;
        }
        let x = filter.process(noise.sample()).band;
        *sample = x * (burst + tail) * gain * 1.2;
        burst = flush_denormal(burst * burst_decay);
        tail = flush_denormal(tail * tail_decay);
    }
}

fn wood_block(out: &mut [f32], sr: f32, gain: f32, noise: &mut Noise) {
    let decay = decay_coefficient(0.07, sr);
    let click_decay = decay_coefficient(0.003, sr);
    let (mut a, mut b) = (0.0f32, 0.0f32);
    let (mut level, mut click) = (1.0f32, 0.4f32);
    for sample in out.iter_mut() {
        let x = sin_turns(a) + 0.5 * sin_turns(b);
        *sample = (x * level + noise.sample() * click) * gain * 0.5;
        advance(&mut a, 820.0 / sr);
        advance(&mut b, (2140.0 / sr).min(0.5));
        level = flush_denormal(level * decay);
        click = flush_denormal(click * click_decay);
    }
}
