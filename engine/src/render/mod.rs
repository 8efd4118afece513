//! Audio rendering: instruments, mixer, master and WAV export.
//!
//! Each stem's notes are first turned into a humanised performance ([`performance`]), played
//! by its instrument (a built-in synth voice per [`voices::Voice`]) into its own stereo
//! buffer, and run through its channel strip ([`mix`]: EQ, compressor, kick ducking, reverb
//! send). The stems, scaled together so none clips, sum to the mix bus; the master
//! ([`master`]) glues, normalises and true-peak limits the bus into the mix. Rendering is
//! deterministic: all noise comes from generators seeded by the stem and the note.
//!
//! A loop renders past its end and wraps the tails (releases, reverb) into its start, and
//! every strip and the master run over the loop's end before its start, so the level and
//! colour at the wrap match the rest of the loop.

pub mod dsp;
pub mod master;
pub mod mix;
pub mod performance;
pub mod soundfont;
#[cfg(test)]
mod tests;
pub mod voices;
pub mod wav;

pub use wav::{WavInfo, WavLoop, WavOptions, read_loop, write_wav, write_wav_with};

use crate::Error;
use crate::music::{DrumClass, Song, Stem, StemTrack};
use serde::{Deserialize, Serialize};
use voices::{NoteEvent, Scratch, Voice};

/// Settings for one render.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RenderOptions {
    pub sample_rate: u32,
    /// Integrated loudness the mix is normalised to, LUFS.
    pub target_lufs: f64,
    /// Ceiling for the mix's true peak, dBTP.
    pub true_peak_ceiling_dbtp: f64,
    /// Render a seamless loop: tails wrap into the start, no ring-out.
    #[serde(default)]
    pub looped: bool,
    /// Bits per sample of the WAV files: 24, or 16 (dithered).
    #[serde(default = "default_bit_depth")]
    pub bit_depth: u16,
}

fn default_bit_depth() -> u16 {
    24
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            sample_rate: 48_000,
            target_lufs: -14.0,
            true_peak_ceiling_dbtp: -1.0,
            looped: false,
            bit_depth: 24,
        }
    }
}

/// Stereo audio, interleaved left/right.
#[derive(Clone, Debug, PartialEq)]
pub struct StereoBuffer {
    pub sample_rate: u32,
    pub samples: Vec<f32>,
}

impl StereoBuffer {
    pub fn frames(&self) -> usize {
        self.samples.len() / 2
    }
}

/// A rendered song: each stem before the master (their sum is the mix bus), the mix after
/// it, and its measured levels.
#[derive(Clone, Debug)]
pub struct RenderedSong {
    pub stems: Vec<(Stem, StereoBuffer)>,
    pub mix: StereoBuffer,
    pub loudness_lufs: f64,
    pub true_peak_dbtp: f64,
    /// Gain from the mix bus to the limiter, dB.
    pub master_gain_db: f64,
}

/// Longest render accepted, in minutes: a bound on memory (about 1.4 GB of buffers at 48 kHz),
/// well past any song refrain plans.
pub const MAX_RENDER_MINUTES: u64 = 20;

/// Seconds a loop renders past its end, so release and reverb tails can wrap into its start.
const LOOP_TAIL_SECONDS: f64 = 6.0;

/// Seconds of a loop's end that every strip and the master run over before its start, so
/// their state (compressor envelopes, reverb) at the start is what it is coming round.
const LOOP_PRIMER_SECONDS: f64 = 4.0;

/// Peak level the stems and their sum are scaled to stay under, so stems export unclipped.
const STEM_HEADROOM: f32 = 0.89;

/// Which instrument plays each stem: a built-in synth, or a preset of a SoundFont bank.
#[derive(Clone, Debug, Default)]
pub struct Instruments {
    /// The bank sampled instruments play from; without one every stem plays a built-in synth.
    pub bank: Option<soundfont::SoundFontBank>,
    /// Every stem from the bank (a bank the user chose), rather than only the instruments
    /// [`soundfont::sampled_by_default`] names.
    pub all_sampled: bool,
}

impl Instruments {
    /// The bank that plays `instrument`, if a bank plays it.
    pub fn bank_for(
        &self,
        instrument: crate::music::Instrument,
    ) -> Option<&soundfont::SoundFontBank> {
        self.bank
            .as_ref()
            .filter(|_| self.all_sampled || soundfont::sampled_by_default(instrument))
    }
}

/// Renders `song` with the built-in synths only; see [`render_song_with`].
pub fn render_song(
    song: &Song,
    frames: u64,
    options: &RenderOptions,
) -> Result<RenderedSong, Error> {
    render_song_with(song, frames, options, &Instruments::default())
}

/// Renders `song` to exactly `frames` frames, each stem played as `instruments` says. Notes
/// sounding at the end of the last bar ring out into the remaining frames (or, in a loop,
/// wrap round into its start).
pub fn render_song_with(
    song: &Song,
    frames: u64,
    options: &RenderOptions,
    instruments: &Instruments,
) -> Result<RenderedSong, Error> {
    check_request(song, frames, options)?;
    let frames = frames as usize;
    let rate = options.sample_rate;
    let looped = options.looped && frames > 0;
    let (tail, primer) = if looped {
        let seconds = |s: f64| (s * f64::from(rate)) as usize;
        (
            seconds(LOOP_TAIL_SECONDS),
            seconds(LOOP_PRIMER_SECONDS).min(frames),
        )
    } else {
        (0, 0)
    };
    let kicks: Vec<usize> = song
        .stems
        .iter()
        .enumerate()
        .filter(|(_, t)| t.stem == Stem::Drums)
        .flat_map(|(i, t)| performance::perform(song, t, i, frames, rate, looped))
        .filter(|n| n.pitch == DrumClass::Kick.index())
        .flat_map(|n| {
            // In a loop, the kicks of its end duck the primer that runs before its start.
            let wrapped = (n.start + primer >= frames).then(|| n.start + primer - frames);
            wrapped.into_iter().chain([n.start + primer])
        })
        .collect::<std::collections::BTreeSet<usize>>()
        .into_iter()
        .collect();
    let beat_frames =
        (song.step_seconds() * f64::from(song.meter.steps_per_beat()) * f64::from(rate)) as f32;
    let room = mix::room(song.style);
    // Stems render independently (each from its own seeded streams), so they go side by
    // side on the cores; the bytes are the same as rendering them one after another.
    let rendered: Vec<(Vec<f32>, f32)> = std::thread::scope(|scope| {
        let workers: Vec<_> = song
            .stems
            .iter()
            .enumerate()
            .map(|(index, track)| {
                let kicks = &kicks;
                scope.spawn(move || -> Result<(Vec<f32>, f32), Error> {
                    let mut dry = match instruments.bank_for(track.instrument) {
                        Some(bank) => render_sampled_stem(
                            song,
                            track,
                            index,
                            frames + tail,
                            rate,
                            looped,
                            bank,
                        )?,
                        None => render_stem(song, track, index, frames + tail, rate, looped),
                    };
                    if looped {
                        dry = wrap_loop(dry, frames, primer);
                    }
                    let strip = mix::strip(song.style, track.stem);
                    let duck = mix::duck_gains(
                        kicks,
                        frames + primer,
                        strip.duck_db,
                        beat_frames,
                        rate as f32,
                    );
                    mix::process_stem(&mut dry, &strip, &room, &duck, rate as f32);
                    dry.drain(..primer * 2);
                    if !looped {
                        // The song ends inside its length: the ring-out after the last bar
                        // fades to silence, reverb included.
                        let held = performance::last_bar_frame(song, frames, rate);
                        fade_stereo_tail(&mut dry[held * 2..]);
                    }
                    let loudest = dsp::peak(&dry);
                    Ok((dry, loudest))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect::<Result<Vec<_>, Error>>()
    })?;
    let loudest_stem = rendered.iter().fold(0.0f32, |m, (_, p)| m.max(*p));
    let mut stems: Vec<(Stem, StereoBuffer)> = song
        .stems
        .iter()
        .zip(rendered)
        .map(|(track, (samples, _))| {
            (
                track.stem,
                StereoBuffer {
                    sample_rate: rate,
                    samples,
                },
            )
        })
        .collect();
    let mut bus = vec![0.0f32; frames * 2];
    let loudest = sum_stems(&mut bus, &mut stems, 1.0).max(loudest_stem);
    if loudest > STEM_HEADROOM {
        sum_stems(&mut bus, &mut stems, STEM_HEADROOM / loudest);
    }
    // The master sees the loop's end before its start, as it would coming round.
    let mastered = if looped {
        let mut primed = bus[(frames - primer) * 2..].to_vec();
        primed.extend_from_slice(&bus);
        let mut mastered = master::master(
            primed,
            rate,
            options.target_lufs,
            options.true_peak_ceiling_dbtp,
        )?;
        mastered.mix.drain(..primer * 2);
        mastered
    } else {
        master::master(
            bus,
            rate,
            options.target_lufs,
            options.true_peak_ceiling_dbtp,
        )?
    };
    Ok(RenderedSong {
        stems,
        mix: StereoBuffer {
            sample_rate: rate,
            samples: mastered.mix,
        },
        loudness_lufs: mastered.loudness_lufs,
        true_peak_dbtp: mastered.true_peak_dbtp,
        master_gain_db: mastered.gain_db,
    })
}

/// The ring-out fade over an interleaved stereo tail.
fn fade_stereo_tail(samples: &mut [f32]) {
    let mut gains = vec![1.0f32; samples.len() / 2];
    performance::ring_out_fade(&mut gains);
    for (frame, gain) in samples.chunks_exact_mut(2).zip(&gains) {
        frame[0] *= gain;
        frame[1] *= gain;
    }
}

/// Folds a loop's rendered tail (everything past `frames`) back onto its start, and puts the
/// loop's last `primer` frames in front of it for the strips to run over first.
fn wrap_loop(mut rendered: Vec<f32>, frames: usize, primer: usize) -> Vec<f32> {
    let tail = rendered.split_off(frames * 2);
    // A tail longer than the loop wraps more than once.
    for chunk in tail.chunks(frames * 2) {
        for (s, t) in rendered.iter_mut().zip(chunk) {
            *s += t;
        }
    }
    let mut primed = Vec::with_capacity((primer + frames) * 2);
    primed.extend_from_slice(&rendered[(frames - primer) * 2..]);
    primed.extend_from_slice(&rendered);
    primed
}

fn check_request(song: &Song, frames: u64, options: &RenderOptions) -> Result<(), Error> {
    if !(8_000..=384_000).contains(&options.sample_rate) {
        return Err(Error::Audio(format!(
            "a sample rate of {} Hz is not supported; use 8000 to 384000 Hz (48000 is usual)",
            options.sample_rate
        )));
    }
    let max_frames = MAX_RENDER_MINUTES * 60 * u64::from(options.sample_rate);
    if frames > max_frames {
        return Err(Error::Audio(format!(
            "{frames} frames is longer than the {MAX_RENDER_MINUTES} minutes a render may last"
        )));
    }
    if !(song.tempo_bpm.is_finite() && (1.0..=1000.0).contains(&song.tempo_bpm)) {
        return Err(Error::Audio(format!(
            "cannot render a tempo of {} bpm; it must lie between 1 and 1000",
            song.tempo_bpm
        )));
    }
    if options.bit_depth != 16 && options.bit_depth != 24 {
        return Err(Error::Audio(format!(
            "{} bits per sample is not supported; use 24 or 16",
            options.bit_depth
        )));
    }
    if !options.target_lufs.is_finite() || !(-70.0..=0.0).contains(&options.target_lufs) {
        return Err(Error::Audio(format!(
            "a loudness target of {} LUFS is out of range; use -70 to 0 (-14 is usual)",
            options.target_lufs
        )));
    }
    if !options.true_peak_ceiling_dbtp.is_finite()
        || !(-70.0..=6.0).contains(&options.true_peak_ceiling_dbtp)
    {
        return Err(Error::Audio(format!(
            "a true-peak ceiling of {} dBTP is out of range; use -70 to 6 (-1 is usual)",
            options.true_peak_ceiling_dbtp
        )));
    }
    Ok(())
}

/// Writes the sum of the stems into `bus`, first scaling each stem by `gain` (unless it is
/// 1), and returns the bus's peak. Runs on two threads, a half of the song each, a short
/// stretch of every stem at a time so the bus stays in cache.
fn sum_stems(bus: &mut [f32], stems: &mut [(Stem, StereoBuffer)], gain: f32) -> f32 {
    const STRETCH: usize = 1 << 14;
    let sum = |bus: &mut [f32], parts: &mut [&mut [f32]]| -> f32 {
        let mut loudest = 0.0f32;
        for (index, out) in bus.chunks_mut(STRETCH).enumerate() {
            out.fill(0.0);
            for part in parts.iter_mut() {
                let stretch = &mut part[index * STRETCH..index * STRETCH + out.len()];
                if gain != 1.0 {
                    stretch.iter_mut().for_each(|s| *s *= gain);
                }
                for (o, s) in out.iter_mut().zip(stretch.iter()) {
                    *o += s;
                }
            }
            loudest = out.iter().fold(loudest, |m, s| m.max(s.abs()));
        }
        loudest
    };
    let half = bus.len() / 2 / 2 * 2;
    let (first_parts, second_parts): (Vec<&mut [f32]>, Vec<&mut [f32]>) = stems
        .iter_mut()
        .map(|(_, stem)| stem.samples.split_at_mut(half))
        .unzip();
    let (mut first_parts, mut second_parts) = (first_parts, second_parts);
    let (first_bus, second_bus) = bus.split_at_mut(half);
    let (first, second) = on_two_threads(
        || sum(first_bus, &mut first_parts),
        || sum(second_bus, &mut second_parts),
    );
    first.max(second)
}

/// Runs `first` on a second thread and `second` on this one and returns both results; a
/// panic on either side carries on as a panic here. The render's long passes split this way
/// over the two halves of a buffer.
pub(crate) fn on_two_threads<A: Send, B>(
    first: impl FnOnce() -> A + Send,
    second: impl FnOnce() -> B,
) -> (A, B) {
    std::thread::scope(|scope| {
        let first = scope.spawn(first);
        let second = second();
        let first = first
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (first, second)
    })
}

/// Where a stem sits: pan (-1 left .. 1 right), how far its notes spread around that pan, and
/// its level before the master. The levels balance the voices' own loudness so that drums
/// and bass carry the groove, the lead sits on top and the chords and texture behind.
fn placement(stem: Stem) -> (f32, f32, f32) {
    match stem {
        Stem::Drums => (0.0, 0.0, 0.9),
        Stem::Bass => (0.0, 0.0, 0.85),
        Stem::Chords => (-0.25, 0.1, 0.55),
        Stem::Lead => (0.2, 0.0, 0.7),
        Stem::Texture => (0.0, 0.7, 0.45),
    }
}

/// Velocity steps a note's timbre is rendered at (how bright or hard it sounds). Its level
/// is not stepped: each played note is scaled from the rendered step to its own velocity's
/// gain, so dynamics stay exact while a part's repeated notes are rendered once (see
/// [`NoteCache`]). Eight steps rendered a dense song's notes three to six times less often
/// than 48 did.
const TOUCH_LEVELS: f32 = 8.0;

/// Bytes of rendered notes one stem keeps for reuse; past it, notes render every time.
const NOTE_CACHE_BYTES: usize = 96 << 20;

/// Rendered notes of one stem by (pitch, gate, touch level). A note's sound is a pure function
/// of that key (its noise is seeded from the key, not from when it plays), so taking a note
/// from the cache gives the same bytes as rendering it again: songs repeat most of their notes
/// (drum hits, bass figures, chord voicings), and rendering each once was the largest saving.
#[derive(Default)]
struct NoteCache {
    notes: std::collections::HashMap<(i32, usize, u8), Vec<f32>>,
    bytes: usize,
}

/// A played note's velocity as a touch level, 1..=`levels`.
fn touch_level(played: &performance::PlayedNote, levels: f32) -> u8 {
    (played.velocity * levels).round().clamp(1.0, levels) as u8
}

impl NoteCache {
    /// The rendering of `played` at `touch`, from `render` the first time its key is seen.
    fn get_or_render(
        &mut self,
        played: &performance::PlayedNote,
        touch: u8,
        render: impl FnOnce() -> Result<Vec<f32>, Error>,
    ) -> Result<&[f32], Error> {
        let key = (played.pitch, played.gate, touch);
        if !self.notes.contains_key(&key) {
            let rendered = render()?;
            if self.bytes > NOTE_CACHE_BYTES {
                // Full: start over rather than grow without bound.
                self.notes.clear();
                self.bytes = 0;
            }
            self.bytes += rendered.len() * 4;
            self.notes.insert(key, rendered);
        }
        Ok(&self.notes[&key])
    }
}

/// Seconds a sampled note may sound after its key is released before it is cut.
const SAMPLED_RELEASE_SECONDS: f64 = 6.0;

/// Level of sampled stems against the built-in voices: the shipped bank's presets come out
/// about 6 dB quieter than the synths at the same velocity.
const SAMPLED_LEVEL: f32 = 2.0;

/// Renders one stem from a SoundFont bank to an interleaved stereo buffer of `frames` frames.
/// Like the synth voices, each distinct (pitch, gate, touch) is played once and reused (the
/// player renders every note alone from a reset state, so a reused note is the same bytes).
fn render_sampled_stem(
    song: &Song,
    track: &StemTrack,
    stem_index: usize,
    frames: usize,
    sample_rate: u32,
    looped: bool,
    bank: &soundfont::SoundFontBank,
) -> Result<Vec<f32>, Error> {
    let mut out = vec![0.0f32; frames * 2];
    let patch = soundfont::gm_patch(track.instrument);
    let drums = track.stem == Stem::Drums;
    let last_bar = performance::last_bar_frame(song, frames, sample_rate);
    let release = (SAMPLED_RELEASE_SECONDS * f64::from(sample_rate)) as usize;
    let mut cache = NoteCache::default();
    let mut player = soundfont::SoundFontPlayer::new(bank, patch, drums, sample_rate)?;
    let mut ringing = Vec::new();
    for played in performance::perform(song, track, stem_index, frames, sample_rate, looped) {
        if played.rings_out {
            ringing.push(played);
            continue;
        }
        let touch = touch_level(&played, TOUCH_LEVELS);
        let rendered_velocity = f32::from(touch) / TOUCH_LEVELS;
        let gain =
            soundfont::velocity_gain(played.velocity) / soundfont::velocity_gain(rendered_velocity);
        let note = cache.get_or_render(&played, touch, || {
            let alone = performance::PlayedNote {
                velocity: rendered_velocity,
                ..played
            };
            let (left, right) = player.play(&alone, played.gate + release);
            Ok(left.iter().zip(right).flat_map(|(l, r)| [*l, *r]).collect())
        })?;
        let length = (note.len() / 2).min(frames - played.start);
        for (o, n) in out[played.start * 2..(played.start + length) * 2]
            .iter_mut()
            .zip(note)
        {
            *o += n * gain;
        }
    }
    soundfont::render_stem(
        bank,
        patch,
        &ringing,
        drums,
        frames,
        sample_rate,
        last_bar,
        &mut out,
    )?;
    // The stem's place in the field, over the preset's own stereo image.
    let (pan, _, level) = placement(track.stem);
    let angle = (pan.clamp(-1.0, 1.0) + 1.0) * std::f32::consts::FRAC_PI_4;
    let (left, right) = (
        angle.cos() * std::f32::consts::SQRT_2 * level * SAMPLED_LEVEL,
        angle.sin() * std::f32::consts::SQRT_2 * level * SAMPLED_LEVEL,
    );
    for frame in out.chunks_exact_mut(2) {
        frame[0] *= left;
        frame[1] *= right;
    }
    Ok(out)
}

/// Renders one stem to an interleaved stereo buffer of `frames` frames.
fn render_stem(
    song: &Song,
    track: &StemTrack,
    stem_index: usize,
    frames: usize,
    sample_rate: u32,
    looped: bool,
) -> Vec<f32> {
    let mut out = vec![0.0f32; frames * 2];
    let voice = Voice::for_instrument(track.instrument);
    let last_bar = performance::last_bar_frame(song, frames, sample_rate);
    let (pan, spread, level) = placement(track.stem);
    let mut ring_buffer: Vec<f32> = Vec::new();
    let mut scratch = Scratch::default();
    let mut cache = NoteCache::default();
    for played in performance::perform(song, track, stem_index, frames, sample_rate, looped) {
        let available = frames - played.start;
        let levels = voice.touch_levels().unwrap_or(TOUCH_LEVELS);
        let touch = touch_level(&played, levels);
        let event = NoteEvent {
            pitch: played.pitch,
            velocity: f32::from(touch) / levels,
            gate: played.gate,
            sample_rate: sample_rate as f32,
            seed: performance::note_seed(stem_index, played.gate as u32, played.pitch)
                ^ (u64::from(touch) << 40),
        };
        let note: &[f32] = if played.rings_out {
            ring_buffer.clear();
            ring_buffer.resize(available, 0.0);
            voice.render(&event, &mut ring_buffer, &mut scratch);
            let held = last_bar.saturating_sub(played.start).min(available);
            performance::ring_out_fade(&mut ring_buffer[held..]);
            &ring_buffer
        } else {
            // A synth voice cannot fail, so the error arm never runs.
            let rendered = cache
                .get_or_render(&played, touch, || {
                    let mut rendered = vec![0.0; voice.sounding_samples(&event)];
                    voice.render(&event, &mut rendered, &mut scratch);
                    Ok(rendered)
                })
                .unwrap_or_default();
            &rendered[..rendered.len().min(available)]
        };
        let length = note.len();
        if length == 0 {
            continue;
        }
        // Equal-power pan, spread per pitch class so a texture's notes fan out in the field.
        let offset = if spread > 0.0 {
            spread * ((played.pitch.rem_euclid(12) * 7 % 12) as f32 / 11.0 - 0.5)
        } else {
            0.0
        };
        let angle = ((pan + offset).clamp(-1.0, 1.0) + 1.0) * std::f32::consts::FRAC_PI_4;
        let gain =
            level * voice.velocity_gain(played.velocity) / voice.velocity_gain(event.velocity);
        let (left, right) = (angle.cos() * gain, angle.sin() * gain);
        let target = &mut out[played.start * 2..(played.start + length) * 2];
        for (frame, &s) in target.chunks_exact_mut(2).zip(note) {
            frame[0] += s * left;
            frame[1] += s * right;
        }
    }
    // A guard rather than an expectation: nothing non-finite may reach a WAV or the meter.
    for s in &mut out {
        if !s.is_finite() {
            *s = 0.0;
        }
    }
    out
}
