//! SoundFont (SF2) instruments: a stem's [`PlayedNote`]s played from a sampled General MIDI
//! bank instead of a built-in synth voice.
//!
//! The bank is parsed and played by `rustysynth` (MIT, pure Rust), with its reverb and chorus
//! off so a stem comes out dry, like the built-in voices. Each note is played alone through
//! one reused synthesizer that is reset before it, so every note starts on a block boundary
//! of its own: its first sample lands on `start` exactly, notes never steal each other's
//! voices, and a ringing-out note can be faded on its own the way the built-in voices are.
//! The key is released on the first synthesizer block boundary at or after `start + gate`
//! (at most [`BLOCK_FRAMES`] - 1 frames late), and the release tail is cut at the end of the
//! buffer. Playing notes one by one costs no more than a polyphonic pass: the work is per
//! voice and per sample either way.
//!
//! Which instruments the default render plays from the shipped bank
//! ([`sampled_by_default`]): the acoustic ones a synth imitates worst, namely piano, organ,
//! strings, choir, upright bass, clean guitar, flute, fiddle, horn and vibraphone. The basses
//! and leads of electronic styles, pads, bells, plucks and electric piano stay on the
//! built-in synths, which are made for them, and so do the drum kits until someone judges
//! the bank's kit clearly better by ear.
//!
//! The shipped bank is `sf_GMbank.sf2` from Debian's `csound-soundfont` package, public
//! domain (see assets/soundfonts/README.md).

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use rustysynth::{SoundFont, SoundFontError, Synthesizer, SynthesizerSettings};

use super::performance::{PlayedNote, ring_out_fade};
use crate::Error;
use crate::generate::sha256_hex;
use crate::licence::Licence;
use crate::music::{DrumClass, Instrument};

/// File name of the shipped bank inside the assets folder.
pub const SHIPPED_FILE: &str = "soundfonts/sf_GMbank.sf2";
/// SHA-256 of the shipped bank: its licence is recorded for exactly these bytes.
pub const SHIPPED_SHA256: &str = "9f39fc53bd3a1a69f13cb486838944eded358b3b6e8afbd6c1c2c33675b2034b";
/// Where the shipped bank comes from.
pub const SHIPPED_SOURCE: &str = "Debian package csound-soundfont 1:6.18.1+dfsg-1 (sf_GMbank.sf2)";

/// Frames the synthesizer renders per block. A key is released on a block boundary, so a
/// release is less than this many frames late (1.3 ms at 48 kHz). Smaller blocks cost speed:
/// 16 frames took twice as long as 64 on a dense chord stem, 8 three times; 128 and 256
/// were no faster than 64.
pub const BLOCK_FRAMES: usize = 64;

/// Below this level (about -144 dBFS, under a 24-bit WAV's last bit) a released note is over.
const SILENCE: f32 = 6.0e-8;

/// Frames rendered at a time while a released note dies away.
const TAIL_CHUNK_FRAMES: usize = 256;

/// A loaded SoundFont with where it came from and under which licence. Cheap to clone; the
/// parsed samples are shared.
#[derive(Clone, Debug)]
pub struct SoundFontBank {
    inner: Arc<Bank>,
}

#[derive(Debug)]
struct Bank {
    font: Arc<SoundFont>,
    name: String,
    sha256: String,
    licence: Licence,
    source: String,
}

/// A preset in a bank: General MIDI bank number (128 for drum kits) and program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SoundFontPatch {
    pub bank: u16,
    pub preset: u8,
}

impl SoundFontBank {
    /// Reads and parses an SF2 file. `licence` and `source` are what the caller knows about
    /// the file; they travel into manifests.
    pub fn load(path: &Path, licence: Licence, source: String) -> Result<SoundFontBank, Error> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::io(format!("reading the SoundFont {}", path.display()), e))?;
        let fallback_name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self::parse(
            &bytes,
            &path.display().to_string(),
            fallback_name,
            licence,
            source,
        )
    }

    /// The bank refrain ships in `assets_dir`, with its recorded licence. Refuses a file
    /// whose bytes differ from the shipped ones, since the licence was checked for those.
    pub fn shipped(assets_dir: &Path) -> Result<SoundFontBank, Error> {
        let path = assets_dir.join(SHIPPED_FILE);
        let bank = Self::load(&path, Licence::PublicDomain, SHIPPED_SOURCE.to_string())?;
        if bank.sha256() != SHIPPED_SHA256 {
            return Err(Error::Audio(format!(
                "{} is not the shipped SoundFont (sha256 {}, expected {SHIPPED_SHA256}); \
                 restore it, or pass your own bank with its licence",
                path.display(),
                bank.sha256()
            )));
        }
        Ok(bank)
    }

    fn parse(
        bytes: &[u8],
        shown_as: &str,
        fallback_name: String,
        licence: Licence,
        source: String,
    ) -> Result<SoundFontBank, Error> {
        check_sf2_header(bytes, shown_as)?;
        let font = SoundFont::new(&mut Cursor::new(bytes)).map_err(|e| match e {
            SoundFontError::UnsupportedSampleFormat => sf3_refusal(shown_as),
            other => Error::Audio(format!("{shown_as} is not a usable SoundFont: {other}")),
        })?;
        let name = match font.get_info().get_bank_name().trim() {
            "" => fallback_name,
            named => named.to_string(),
        };
        Ok(SoundFontBank {
            inner: Arc::new(Bank {
                font: Arc::new(font),
                name,
                sha256: sha256_hex(bytes),
                licence,
                source,
            }),
        })
    }

    /// The bank's own name (its INAM field), or the file name where it has none.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// SHA-256 of the file's bytes, lowercase hex.
    pub fn sha256(&self) -> &str {
        &self.inner.sha256
    }

    pub fn licence(&self) -> &Licence {
        &self.inner.licence
    }

    /// Where the file came from (package, URL), as given when it was loaded.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// Whether the bank holds exactly this preset.
    pub fn has_preset(&self, patch: SoundFontPatch) -> bool {
        self.presets().any(|p| p == patch)
    }

    /// The preset that plays `patch` in this bank: the patch itself if present, else the
    /// nearest preset number in the same bank (the lower one on a tie), else preset 0 of
    /// bank 0, else the bank's first preset.
    pub fn resolve(&self, patch: SoundFontPatch) -> SoundFontPatch {
        let nearest = self
            .presets()
            .filter(|p| p.bank == patch.bank)
            .min_by_key(|p| (p.preset.abs_diff(patch.preset), p.preset));
        let piano = SoundFontPatch { bank: 0, preset: 0 };
        nearest
            .or_else(|| self.has_preset(piano).then_some(piano))
            .or_else(|| self.presets().min_by_key(|p| (p.bank, p.preset)))
            .unwrap_or(patch)
    }

    fn presets(&self) -> impl Iterator<Item = SoundFontPatch> + '_ {
        self.inner.font.get_presets().iter().filter_map(|p| {
            Some(SoundFontPatch {
                bank: u16::try_from(p.get_bank_number()).ok()?,
                preset: u8::try_from(p.get_patch_number()).ok()?,
            })
        })
    }
}

fn sf3_refusal(shown_as: &str) -> Error {
    Error::Audio(format!(
        "{shown_as} is an SF3 SoundFont (compressed samples), which refrain cannot play; \
         use an SF2 bank, or convert it to SF2 (for example with Polyphone)"
    ))
}

/// Checks the RIFF header and refuses SF3 by its version before the full parse.
fn check_sf2_header(bytes: &[u8], shown_as: &str) -> Result<(), Error> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"sfbk" {
        return Err(Error::Audio(format!(
            "{shown_as} is not a SoundFont: an SF2 file starts with a RIFF 'sfbk' header"
        )));
    }
    // The INFO list comes first and its first chunk, ifil, holds the format version.
    let version_major = match (bytes.get(12..16), bytes.get(20..28), bytes.get(32..34)) {
        (Some(b"LIST"), Some(b"INFOifil"), Some(&[low, high])) => u16::from_le_bytes([low, high]),
        _ => 2,
    };
    if version_major >= 3 {
        return Err(sf3_refusal(shown_as));
    }
    Ok(())
}

/// The General MIDI preset for an instrument: its GM program in bank 0, or a drum kit in
/// bank 128 (the standard kit; the electronic kit for chip noise drums).
pub fn gm_patch(instrument: Instrument) -> SoundFontPatch {
    match instrument {
        Instrument::DrumKit => SoundFontPatch {
            bank: 128,
            preset: 0,
        },
        Instrument::ChipNoiseDrums => SoundFontPatch {
            bank: 128,
            preset: 24,
        },
        pitched => SoundFontPatch {
            bank: 0,
            preset: pitched.gm_program(),
        },
    }
}

/// Whether the default render plays `instrument` from the shipped bank rather than a
/// built-in synth: the acoustic instruments a synth imitates worst (see the module docs).
pub fn sampled_by_default(instrument: Instrument) -> bool {
    matches!(
        instrument,
        Instrument::Piano
            | Instrument::Organ
            | Instrument::Strings
            | Instrument::Choir
            | Instrument::UprightBass
            | Instrument::CleanGuitar
            | Instrument::Flute
            | Instrument::Fiddle
            | Instrument::Horn
            | Instrument::Vibraphone
    )
}

/// The gain the player gives a note of `velocity` (0..=1): the square of its MIDI velocity
/// over 127, as `rustysynth` applies it (layers a preset chooses by velocity aside).
pub fn velocity_gain(velocity: f32) -> f32 {
    let v = midi_velocity(velocity) as f32 / 127.0;
    v * v
}

/// MIDI velocity 1..=127 for a loudness in 0..=1.
fn midi_velocity(velocity: f32) -> i32 {
    let v = if velocity.is_finite() {
        velocity.clamp(0.0, 1.0)
    } else {
        0.0
    };
    1 + (v * 126.0).round() as i32
}

/// Plays notes from one preset of a bank, one at a time, through one reused synthesizer.
/// A player is made once per stem; its buffers are reused from note to note.
pub struct SoundFontPlayer {
    synth: Synthesizer,
    patch: SoundFontPatch,
    drums: bool,
    left: Vec<f32>,
    right: Vec<f32>,
}

impl SoundFontPlayer {
    /// A player of `patch` (or the nearest preset the bank has) at `sample_rate`. `drums`:
    /// notes' pitches are drum-class indices, played on their General MIDI keys.
    pub fn new(
        bank: &SoundFontBank,
        patch: SoundFontPatch,
        drums: bool,
        sample_rate: u32,
    ) -> Result<SoundFontPlayer, Error> {
        let mut settings = SynthesizerSettings::new(i32::try_from(sample_rate).unwrap_or(i32::MAX));
        settings.block_size = BLOCK_FRAMES;
        // One note at a time; a few voices cover presets that layer regions.
        settings.maximum_polyphony = 16;
        settings.enable_reverb_and_chorus = false;
        let synth = Synthesizer::new(&bank.inner.font, &settings).map_err(|e| {
            Error::Audio(format!(
                "the SoundFont player cannot run at {sample_rate} Hz ({e}); use 16000 to 192000 Hz"
            ))
        })?;
        Ok(SoundFontPlayer {
            synth,
            patch: bank.resolve(patch),
            drums,
            left: Vec::new(),
            right: Vec::new(),
        })
    }

    /// Plays `note` alone from a reset state for at most `available` frames: held for its
    /// gate, then released until it falls silent. Returns the left and right channels, as
    /// long as the note sounds (empty for a drum class the kit lacks). `note.start` and
    /// `note.rings_out` are not looked at.
    pub fn play(&mut self, note: &PlayedNote, available: usize) -> (&[f32], &[f32]) {
        let key = if self.drums {
            match DrumClass::from_index(note.pitch) {
                Some(class) => i32::from(class.gm_note()),
                None => return (&[], &[]),
            }
        } else {
            note.pitch.clamp(0, 127)
        };
        let held = note.gate.clamp(1, available.max(1));
        let synth = &mut self.synth;
        let (left, right) = (&mut self.left, &mut self.right);
        // A fresh synthesizer state: the note-on takes effect on this block boundary.
        synth.reset();
        synth.process_midi_message(0, 0xB0, 0x00, i32::from(self.patch.bank));
        synth.process_midi_message(0, 0xC0, i32::from(self.patch.preset), 0);
        synth.note_on(0, key, midi_velocity(note.velocity));
        left.clear();
        right.clear();
        left.resize(held, 0.0);
        right.resize(held, 0.0);
        synth.render(left, right);
        synth.note_off(0, key);

        let mut length = held;
        while length < available {
            let chunk = TAIL_CHUNK_FRAMES.min(available - length);
            left.resize(length + chunk, 0.0);
            right.resize(length + chunk, 0.0);
            synth.render(&mut left[length..], &mut right[length..]);
            let quiet = left[length..]
                .iter()
                .chain(&right[length..])
                .all(|s| s.abs() < SILENCE);
            length += chunk;
            if quiet {
                break;
            }
        }
        let sounding = left
            .iter()
            .zip(right.iter())
            .rposition(|(l, r)| *l != 0.0 || *r != 0.0)
            .map_or(0, |i| i + 1)
            .min(available);
        (&left[..sounding], &right[..sounding])
    }
}

/// Adds one stem played from `bank` into `out` (interleaved stereo, `frames * 2` samples).
///
/// `drums`: the notes' pitches are drum-class indices, played on their General MIDI keys.
/// Ringing-out notes are held to the end of the buffer and faded from `last_bar` (see
/// [`super::performance::last_bar_frame`]). The same input gives the same bytes.
#[allow(clippy::too_many_arguments)]
pub fn render_stem(
    bank: &SoundFontBank,
    patch: SoundFontPatch,
    notes: &[PlayedNote],
    drums: bool,
    frames: usize,
    sample_rate: u32,
    last_bar: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    if out.len() != frames * 2 {
        return Err(Error::Audio(format!(
            "a stem buffer of {} samples cannot hold {frames} stereo frames",
            out.len()
        )));
    }
    let mut player = SoundFontPlayer::new(bank, patch, drums, sample_rate)?;
    let mut fading: Vec<f32> = Vec::new();
    for note in notes {
        if note.start >= frames {
            continue;
        }
        let (left, right) = player.play(note, frames - note.start);
        let length = left.len();
        let target = &mut out[note.start * 2..(note.start + length) * 2];
        if note.rings_out {
            let fade_from = last_bar.saturating_sub(note.start).min(length);
            fading.clear();
            fading.resize(length, 1.0);
            ring_out_fade(&mut fading[fade_from..]);
            for (((frame, &l), &r), &g) in
                target.chunks_exact_mut(2).zip(left).zip(right).zip(&fading)
            {
                frame[0] += l * g;
                frame[1] += r * g;
            }
        } else {
            for ((frame, &l), &r) in target.chunks_exact_mut(2).zip(left).zip(right) {
                frame[0] += l;
                frame[1] += r;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 48_000;

    fn shipped() -> SoundFontBank {
        let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets");
        SoundFontBank::shipped(&assets).expect("the shipped bank loads")
    }

    /// Every instrument; the match makes a new one a compile error here until it is listed.
    fn all_instruments() -> Vec<Instrument> {
        use Instrument::*;
        let all = vec![
            DrumKit,
            ChipNoiseDrums,
            SubBass,
            AnalogBass,
            FingerBass,
            UprightBass,
            ChipTriangleBass,
            ElectricPiano,
            Piano,
            Organ,
            WarmPad,
            Strings,
            CleanGuitar,
            OverdriveGuitar,
            SawLead,
            SquareLead,
            ChipPulseLead,
            Flute,
            Fiddle,
            Horn,
            Vibraphone,
            Bell,
            PluckArp,
            Choir,
        ];
        for i in &all {
            match i {
                DrumKit | ChipNoiseDrums | SubBass | AnalogBass | FingerBass | UprightBass
                | ChipTriangleBass | ElectricPiano | Piano | Organ | WarmPad | Strings
                | CleanGuitar | OverdriveGuitar | SawLead | SquareLead | ChipPulseLead | Flute
                | Fiddle | Horn | Vibraphone | Bell | PluckArp | Choir => {}
            }
        }
        all
    }

    fn note(start: usize, gate: usize, pitch: i32) -> PlayedNote {
        PlayedNote {
            start,
            gate,
            pitch,
            velocity: 0.8,
            seed: 0,
            rings_out: false,
        }
    }

    fn render(patch: SoundFontPatch, notes: &[PlayedNote], drums: bool, frames: usize) -> Vec<f32> {
        let mut out = vec![0.0; frames * 2];
        render_stem(
            &shipped(),
            patch,
            notes,
            drums,
            frames,
            RATE,
            frames,
            &mut out,
        )
        .unwrap();
        out
    }

    fn piano() -> SoundFontPatch {
        gm_patch(Instrument::Piano)
    }

    fn first_sounding_frame(out: &[f32]) -> Option<usize> {
        out.chunks_exact(2).position(|f| f[0] != 0.0 || f[1] != 0.0)
    }

    #[test]
    fn the_shipped_bank_is_public_domain_and_named() {
        let bank = shipped();
        assert_eq!(bank.sha256(), SHIPPED_SHA256);
        assert_eq!(bank.licence(), &Licence::PublicDomain);
        assert_eq!(bank.name(), "GM GS Bank");
        assert!(bank.source().contains("csound-soundfont"));
    }

    #[test]
    fn every_instrument_maps_to_a_preset_the_shipped_bank_has() {
        let bank = shipped();
        for instrument in all_instruments() {
            let patch = gm_patch(instrument);
            assert!(bank.has_preset(patch), "{instrument:?} -> {patch:?}");
            assert_eq!(bank.resolve(patch), patch);
        }
    }

    #[test]
    fn a_missing_preset_falls_back_to_the_nearest_in_its_bank_then_the_piano() {
        let bank = shipped();
        // Drum bank 128 has kits 0, 8, 16, 24, 25, ...: 10 is nearest to 8.
        let kit = bank.resolve(SoundFontPatch {
            bank: 128,
            preset: 10,
        });
        assert_eq!(
            kit,
            SoundFontPatch {
                bank: 128,
                preset: 8
            }
        );
        let nowhere = bank.resolve(SoundFontPatch {
            bank: 77,
            preset: 5,
        });
        assert_eq!(nowhere, SoundFontPatch { bank: 0, preset: 0 });
    }

    #[test]
    fn a_note_starts_on_its_exact_frame_even_inside_a_block() {
        let frames = RATE as usize;
        let at_zero = render(piano(), &[note(0, 4_800, 60)], false, frames);
        let onset = first_sounding_frame(&at_zero).expect("the note sounds");
        // The sample's own lead-in (silence before the attack), well under 2 ms.
        assert!(onset < 96, "piano sounds within 2 ms: {onset}");
        for start in [1_003, 4_800 + 7, BLOCK_FRAMES * 100 + 1] {
            let moved = render(piano(), &[note(start, 4_800, 60)], false, frames);
            assert_eq!(first_sounding_frame(&moved), Some(start + onset));
            // The same note, shifted by exactly `start` frames.
            let shifted = &moved[start * 2..];
            assert_eq!(shifted, &at_zero[..shifted.len()], "start {start}");
        }
    }

    #[test]
    fn the_key_is_released_on_the_first_block_boundary_after_the_gate() {
        let frames = RATE as usize;
        let gate = 10_001;
        let released = render(piano(), &[note(0, gate, 60)], false, frames);
        let held = render(piano(), &[note(0, frames, 60)], false, frames);
        let first_difference = released
            .chunks_exact(2)
            .zip(held.chunks_exact(2))
            .position(|(a, b)| a != b)
            .expect("the release changes the sound");
        let boundary = gate.div_ceil(BLOCK_FRAMES) * BLOCK_FRAMES;
        assert!(
            (boundary..boundary + BLOCK_FRAMES).contains(&first_difference),
            "released at {first_difference}, gate ends at {gate}"
        );
    }

    #[test]
    fn a_released_note_dies_away_and_nothing_passes_the_buffer_end() {
        let frames = RATE as usize * 3;
        let gate = RATE as usize / 2;
        let out = render(piano(), &[note(0, gate, 60)], false, frames);
        let peak = |range: std::ops::Range<usize>| {
            out[range.start * 2..range.end * 2]
                .iter()
                .fold(0.0f32, |m, s| m.max(s.abs()))
        };
        let held = peak(gate - 2_400..gate);
        let released = peak(gate + 24_000..gate + 26_400);
        assert!(held > 0.0 && released < held * 0.1, "{held} -> {released}");

        // A note cut by the buffer end writes nothing past it (the buffer is the bound) and
        // a long note in a short buffer simply stops.
        let short = 1_000;
        let cut = render(piano(), &[note(900, 48_000, 60)], false, short);
        assert_eq!(cut.len(), short * 2);
        assert!(cut[..1_800].iter().all(|&s| s == 0.0));
        assert!(cut[1_800..].iter().any(|&s| s != 0.0));
    }

    #[test]
    fn a_ringing_out_note_is_faded_to_silence_by_the_last_frame() {
        let frames = RATE as usize * 2;
        let last_bar = RATE as usize;
        let mut ringing = note(0, frames, 60);
        ringing.rings_out = true;
        let mut out = vec![0.0; frames * 2];
        render_stem(
            &shipped(),
            piano(),
            &[ringing],
            false,
            frames,
            RATE,
            last_bar,
            &mut out,
        )
        .unwrap();
        let tail_peak = out[(frames - 100) * 2..]
            .iter()
            .fold(0.0f32, |m, s| m.max(s.abs()));
        assert!(tail_peak < 1e-4, "{tail_peak}");
        assert!(out[..last_bar * 2].iter().any(|&s| s.abs() > 1e-3));
    }

    #[test]
    fn rendering_is_deterministic_and_adds_to_what_is_there() {
        let frames = RATE as usize * 2;
        let notes: Vec<PlayedNote> = (0..16)
            .map(|i| note(i * 5_999, 4_000, 48 + (i as i32 * 5) % 24))
            .collect();
        let a = render(gm_patch(Instrument::Strings), &notes, false, frames);
        let b = render(gm_patch(Instrument::Strings), &notes, false, frames);
        assert_eq!(
            a.iter().map(|s| s.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|s| s.to_bits()).collect::<Vec<_>>()
        );
        let mut on_top = vec![0.25; frames * 2];
        render_stem(
            &shipped(),
            gm_patch(Instrument::Strings),
            &notes,
            false,
            frames,
            RATE,
            frames,
            &mut on_top,
        )
        .unwrap();
        assert!(
            on_top
                .iter()
                .zip(&a)
                .all(|(t, a)| (t - 0.25 - a).abs() < 1e-6)
        );
    }

    #[test]
    fn drum_classes_play_their_general_midi_keys() {
        let frames = RATE as usize / 2;
        let kit = gm_patch(Instrument::DrumKit);
        let kick = render(
            kit,
            &[note(0, 2_000, DrumClass::Kick.index())],
            true,
            frames,
        );
        let hat = render(
            kit,
            &[note(0, 2_000, DrumClass::ClosedHat.index())],
            true,
            frames,
        );
        assert!(kick.iter().any(|&s| s != 0.0) && hat.iter().any(|&s| s != 0.0));
        assert_ne!(kick, hat);
        // A pitch that is no drum class is left out rather than played as a wrong key.
        let none = render(kit, &[note(0, 2_000, 99)], true, frames);
        assert!(none.iter().all(|&s| s == 0.0));
    }

    #[test]
    fn velocity_maps_onto_the_midi_range() {
        assert_eq!(midi_velocity(0.0), 1);
        assert_eq!(midi_velocity(1.0), 127);
        assert_eq!(midi_velocity(2.0), 127);
        assert_eq!(midi_velocity(f32::NAN), 1);
    }

    #[test]
    fn garbage_sf3_and_missing_files_are_refused_with_a_sentence() {
        let dir = tempfile::tempdir().unwrap();
        let missing = SoundFontBank::load(&dir.path().join("none.sf2"), Licence::Cc0, "t".into());
        assert!(missing.unwrap_err().to_string().contains("none.sf2"));

        let garbage = dir.path().join("garbage.sf2");
        std::fs::write(&garbage, b"this is not a soundfont at all").unwrap();
        let error = SoundFontBank::load(&garbage, Licence::Cc0, "t".into()).unwrap_err();
        assert!(error.to_string().contains("not a SoundFont"), "{error}");

        // A RIFF sfbk header whose ifil says version 3.1.
        let mut sf3 = Vec::new();
        sf3.extend_from_slice(b"RIFF");
        sf3.extend_from_slice(&28u32.to_le_bytes());
        sf3.extend_from_slice(b"sfbkLIST");
        sf3.extend_from_slice(&16u32.to_le_bytes());
        sf3.extend_from_slice(b"INFOifil");
        sf3.extend_from_slice(&4u32.to_le_bytes());
        sf3.extend_from_slice(&3u16.to_le_bytes());
        sf3.extend_from_slice(&1u16.to_le_bytes());
        let path = dir.path().join("bank.sf3");
        std::fs::write(&path, &sf3).unwrap();
        let error = SoundFontBank::load(&path, Licence::Cc0, "t".into()).unwrap_err();
        assert!(error.to_string().contains("SF3"), "{error}");

        // A truncated SF2: a valid header, then nothing.
        let shipped_bytes = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../assets")
                .join(SHIPPED_FILE),
        )
        .unwrap();
        let truncated = dir.path().join("truncated.sf2");
        std::fs::write(&truncated, &shipped_bytes[..4_096]).unwrap();
        let error = SoundFontBank::load(&truncated, Licence::Cc0, "t".into()).unwrap_err();
        assert!(
            error.to_string().contains("not a usable SoundFont"),
            "{error}"
        );
    }

    #[test]
    fn the_shipped_bank_refuses_changed_bytes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("soundfonts")).unwrap();
        let original = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../assets")
                .join(SHIPPED_FILE),
        )
        .unwrap();
        let mut changed = original.clone();
        // A byte inside the sample data: the file still parses, the hash differs.
        changed[100_000] ^= 1;
        std::fs::write(dir.path().join(SHIPPED_FILE), &changed).unwrap();
        let error = SoundFontBank::shipped(dir.path()).unwrap_err();
        assert!(
            error.to_string().contains("not the shipped SoundFont"),
            "{error}"
        );
    }

    /// Dense 3-minute stems at 120 bpm: 4-note chords held every bar, a lead of eighths,
    /// drums of sixteenth hats with kick and snare. Prints the median of 5 per stem.
    /// `cargo test --release -p refrain-engine --lib soundfont::tests::speed -- --ignored --nocapture`
    #[test]
    #[ignore = "a timing, not a check; run it in release"]
    fn speed_of_a_dense_three_minute_stem() {
        let frames = RATE as usize * 180;
        let beat = RATE as usize / 2;
        let bars = frames / (beat * 4);
        let mut chords = Vec::new();
        let mut lead = Vec::new();
        let mut drums = Vec::new();
        for bar in 0..bars {
            let at = bar * beat * 4;
            for key in [57, 60, 64, 67] {
                chords.push(note(at, beat * 4 - 480, key - 12 * (bar % 2) as i32));
            }
            for eighth in 0..8 {
                lead.push(note(
                    at + eighth * beat / 2,
                    beat / 2 - 480,
                    72 + (eighth as i32 * 3) % 12,
                ));
            }
            for sixteenth in 0..16 {
                drums.push(note(
                    at + sixteenth * beat / 4,
                    beat / 4,
                    DrumClass::ClosedHat.index(),
                ));
            }
            for quarter in 0..4 {
                let class = if quarter % 2 == 0 {
                    DrumClass::Kick
                } else {
                    DrumClass::Snare
                };
                drums.push(note(at + quarter * beat, beat, class.index()));
            }
        }
        chords.sort_by_key(|n| n.start);
        drums.sort_by_key(|n| n.start);
        let bank = shipped();
        let mut out = vec![0.0; frames * 2];
        for (name, patch, notes, is_drums) in [
            (
                "chords (strings)",
                gm_patch(Instrument::Strings),
                &chords,
                false,
            ),
            (
                "chords (piano)",
                gm_patch(Instrument::Piano),
                &chords,
                false,
            ),
            ("lead (flute)", gm_patch(Instrument::Flute), &lead, false),
            (
                "drums (standard kit)",
                gm_patch(Instrument::DrumKit),
                &drums,
                true,
            ),
        ] {
            let mut times: Vec<f64> = (0..5)
                .map(|_| {
                    out.fill(0.0);
                    let t = std::time::Instant::now();
                    render_stem(
                        &bank, patch, notes, is_drums, frames, RATE, frames, &mut out,
                    )
                    .unwrap();
                    t.elapsed().as_secs_f64()
                })
                .collect();
            times.sort_by(f64::total_cmp);
            let peak = out.iter().fold(0.0f32, |m, s| m.max(s.abs()));
            let rms =
                (out.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / out.len() as f64).sqrt();
            println!(
                "{name}: {} notes, median {:.3} s, all {times:.3?}, peak {peak:.3}, rms {rms:.4}",
                notes.len(),
                times[2]
            );
        }
    }

    #[test]
    fn the_bank_is_shared_across_threads() {
        fn send_sync<T: Send + Sync + Clone>() {}
        send_sync::<SoundFontBank>();
    }
}
