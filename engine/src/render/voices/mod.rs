//! Built-in synth voices. Every [`Instrument`] maps to a [`Voice`]: one of a handful of
//! synthesis algorithms with a patch of parameters. A voice renders one note, mono, into a
//! slice; the stem renderer places and pans it.
//!
//! Dispatch happens once per note (a `match` on the enum), never per sample, and each
//! algorithm's inner loop is monomorphic straight-line code. Later work (SoundFont samples)
//! adds variants here.

mod chip;
mod drums;
mod ensemble;
mod keys;
mod mallet;
mod pluck;
mod subtractive;

use crate::music::Instrument;

pub use chip::ChipVoice;
pub use drums::DrumKitVoice;
pub use ensemble::EnsemblePatch;
pub use keys::KeysVoice;
pub use mallet::MalletPatch;
pub use pluck::PluckPatch;
pub use subtractive::SubtractivePatch;

/// One note as a voice sees it.
#[derive(Clone, Copy, Debug)]
pub struct NoteEvent {
    /// Absolute MIDI pitch for pitched voices; the drum-class index for drum kits.
    pub pitch: i32,
    /// Velocity in 0..=1.
    pub velocity: f32,
    /// Samples the key is held before release.
    pub gate: usize,
    pub sample_rate: f32,
    /// Seed of the note's own noise, so that renders are bit-identical.
    pub seed: u64,
}

/// Reusable per-stem working memory, so rendering allocates per stem, not per note or sample.
#[derive(Debug, Default)]
pub struct Scratch {
    /// Karplus-Strong delay line.
    pub delay_line: Vec<f32>,
    /// The drum kit's metallic oscillator cluster, rendered once per (tuning, sample rate)
    /// and shared by every hat and cymbal hit: it is the same signal each time, and six
    /// band-limited squares per sample were most of the cost of a busy hi-hat part.
    pub metal: Vec<((u32, u32), Vec<f32>)>,
}

/// A synthesis algorithm with its patch.
#[derive(Clone, Copy, Debug)]
pub enum Voice {
    Drums(DrumKitVoice),
    Subtractive(SubtractivePatch),
    Ensemble(EnsemblePatch),
    Keys(KeysVoice),
    Pluck(PluckPatch),
    Mallet(MalletPatch),
    Chip(ChipVoice),
}

impl Voice {
    pub fn for_instrument(instrument: Instrument) -> Voice {
        use Instrument as I;
        match instrument {
            I::DrumKit => Voice::Drums(DrumKitVoice),
            I::ChipNoiseDrums => Voice::Chip(ChipVoice::NoiseDrums),
            I::ChipTriangleBass => Voice::Chip(ChipVoice::Triangle),
            I::ChipPulseLead => Voice::Chip(ChipVoice::Pulse),
            I::SubBass => Voice::Subtractive(SubtractivePatch::SUB_BASS),
            I::AnalogBass => Voice::Subtractive(SubtractivePatch::ANALOG_BASS),
            I::FingerBass => Voice::Subtractive(SubtractivePatch::FINGER_BASS),
            I::UprightBass => Voice::Subtractive(SubtractivePatch::UPRIGHT_BASS),
            I::OverdriveGuitar => Voice::Subtractive(SubtractivePatch::OVERDRIVE_GUITAR),
            I::SawLead => Voice::Subtractive(SubtractivePatch::SAW_LEAD),
            I::SquareLead => Voice::Subtractive(SubtractivePatch::SQUARE_LEAD),
            I::Flute => Voice::Subtractive(SubtractivePatch::FLUTE),
            I::Fiddle => Voice::Subtractive(SubtractivePatch::FIDDLE),
            I::Horn => Voice::Subtractive(SubtractivePatch::HORN),
            I::WarmPad => Voice::Ensemble(EnsemblePatch::WARM_PAD),
            I::Strings => Voice::Ensemble(EnsemblePatch::STRINGS),
            I::Choir => Voice::Ensemble(EnsemblePatch::CHOIR),
            I::ElectricPiano => Voice::Keys(KeysVoice::ElectricPiano),
            I::Piano => Voice::Keys(KeysVoice::Piano),
            I::Organ => Voice::Keys(KeysVoice::Organ),
            I::CleanGuitar => Voice::Pluck(PluckPatch::CLEAN_GUITAR),
            I::PluckArp => Voice::Pluck(PluckPatch::PLUCK_ARP),
            I::Vibraphone => Voice::Mallet(MalletPatch::VIBRAPHONE),
            I::Bell => Voice::Mallet(MalletPatch::BELL),
        }
    }

    /// Samples the note sounds for, release tail included, given how long the key is held.
    pub fn sounding_samples(&self, note: &NoteEvent) -> usize {
        let sr = note.sample_rate;
        let seconds = |s: f32| (s * sr) as usize;
        match self {
            Voice::Drums(_) => seconds(DrumKitVoice::length_s(note.pitch)),
            Voice::Chip(v) => v.length(note),
            Voice::Subtractive(p) => note.gate + seconds(p.amp.release_s),
            Voice::Ensemble(p) => note.gate + seconds(p.amp.release_s),
            Voice::Keys(k) => k.length(note),
            Voice::Pluck(p) => note.gate.min(seconds(p.ring_s)) + seconds(p.damped_s),
            Voice::Mallet(p) => note.gate.min(seconds(p.ring_s)) + seconds(p.damped_s),
        }
    }

    /// The gain a note's velocity gives it, apart from any change of timbre.
    pub fn velocity_gain(&self, velocity: f32) -> f32 {
        match self {
            Voice::Chip(_) => chip::stepped_volume(velocity),
            Voice::Keys(KeysVoice::Organ) => keys::organ_velocity_gain(velocity),
            _ => crate::render::dsp::velocity_gain(velocity),
        }
    }

    /// Velocity steps this voice must be rendered at, where the renderer's default would
    /// change its sound: the chip's volume has sixteen steps and nothing between them.
    pub fn touch_levels(&self) -> Option<f32> {
        match self {
            Voice::Chip(_) => Some(15.0),
            _ => None,
        }
    }

    /// Renders one note into `out` (mono, added to nothing: `out` is overwritten).
    pub fn render(&self, note: &NoteEvent, out: &mut [f32], scratch: &mut Scratch) {
        match self {
            Voice::Drums(_) => DrumKitVoice::render(note, out, scratch),
            Voice::Chip(v) => v.render(note, out),
            Voice::Subtractive(p) => p.render(note, out),
            Voice::Ensemble(p) => p.render(note, out),
            Voice::Keys(k) => k.render(note, out),
            Voice::Pluck(p) => p.render(note, out, scratch),
            Voice::Mallet(p) => p.render(note, out),
        }
    }
}
