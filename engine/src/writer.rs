//! The DiT writer: turns a plan and its lead sheet (form, energy, chords) into every stem of
//! a song by sampling latent windows segment by segment, each conditioned on the plan and on
//! the bars already accepted, then decoding all latents with the bar autoencoder.
//!
//! Segments: the first window writes up to `window` bars from nothing; every later one keeps
//! the last `context` written bars clean and writes the next `window - context`. A loop's
//! last segment also sees the song's first bars as clean context after it, so the end leads
//! back into the start.

use crate::Error;
use crate::compose::LeadSheet;
use crate::compose::SongRng;
use crate::compose::arranger::choose_band;
use crate::generate::{ModelEntry, sha256_hex};
use crate::model::autoencoder::{ONSET, PLANES};
use crate::model::conditions::{BarConditions, SongConditions, bar_conditions, told_key};
use crate::model::rhythm;
use crate::model::sampler::{SamplerSettings, Window};
use crate::model::{BarAutoencoder, BarAutoencoderConfig, Denoiser, Dit, DitBatcher, DitConfig};
use crate::music::{Song, Stem, StemTrack, Style};
use crate::plan::{Plan, stage_rng};
use crate::planes::planes_to_notes;
use crate::reasoning::{self, Thinking, TraceEvent};
use burn::prelude::*;
use std::path::{Path, PathBuf};

/// The CPU backend generation runs on: flex, with its SIMD kernels and threads, measured
/// fastest for sampling on these cores (ndarray trains the DiT faster; docs/PERFORMANCE.md).
pub type CpuBackend = burn::backend::Flex;

/// File names of the shipped weights inside an assets folder.
pub const AUTOENCODER_FILE: &str = "autoencoder.safetensors";
pub const DIT_FILE: &str = "dit.safetensors";

/// The assets folder: `$REFRAIN_ASSETS` if set, else the repository's `assets/`.
pub fn default_assets_dir() -> PathBuf {
    std::env::var_os("REFRAIN_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets"))
}

/// The trained models, loaded once and shared by every song.
pub struct Models<B: Backend> {
    pub autoencoder: BarAutoencoder<B>,
    pub autoencoder_config: BarAutoencoderConfig,
    pub dit: Dit<B>,
    pub dit_config: DitConfig,
    /// The weights files with their hashes, for manifests.
    pub entries: Vec<ModelEntry>,
    pub device: B::Device,
    /// When set, every DiT evaluation goes through it, batched with other threads' (see
    /// [`Models::batch_evaluations`]).
    pub batcher: Option<DitBatcher<B>>,
    /// When set, DiT evaluations run on it instead of `dit` (the DiT on a GPU; see
    /// [`Models::offload_dit`]); a batcher takes it over.
    pub offloaded: Option<Box<dyn Denoiser<B> + Send>>,
}

impl<B: Backend> Models<B> {
    /// Loads `autoencoder.safetensors` and `dit.safetensors` from `dir`.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self, Error> {
        Self::load_files(&dir.join(AUTOENCODER_FILE), &dir.join(DIT_FILE), device)
    }

    /// Loads an autoencoder and a DiT from their files.
    pub fn load_files(ae_path: &Path, dit_path: &Path, device: &B::Device) -> Result<Self, Error> {
        for path in [ae_path, dit_path] {
            if !path.is_file() {
                return Err(Error::Model(format!(
                    "no model weights at {} (set REFRAIN_ASSETS or --assets to the folder \
                     holding {AUTOENCODER_FILE} and {DIT_FILE})",
                    path.display()
                )));
            }
        }
        let (autoencoder_config, autoencoder) = BarAutoencoder::load_file(ae_path, device)?;
        let (dit_config, dit) = Dit::load_safetensors(dit_path, device)?;
        if dit_config.latent_dim != autoencoder_config.latent_dim {
            return Err(Error::Model(format!(
                "{} writes {}-dimensional latents but {} decodes {}",
                dit_path.display(),
                dit_config.latent_dim,
                ae_path.display(),
                autoencoder_config.latent_dim
            )));
        }
        let mut entries = Vec::new();
        for (name, path) in [("bar autoencoder", ae_path), ("DiT", dit_path)] {
            let bytes = std::fs::read(path)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            entries.push(ModelEntry {
                name: name.into(),
                file: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                sha256: sha256_hex(&bytes),
            });
        }
        Ok(Models {
            autoencoder,
            autoencoder_config,
            dit,
            dit_config,
            entries,
            device: device.clone(),
            batcher: None,
            offloaded: None,
        })
    }

    /// These models with DiT evaluations batched across the threads that share them: each
    /// thread writing a song registers with `batcher.worker()`; see [`DitBatcher`].
    pub fn batch_evaluations(&mut self, linger: std::time::Duration, max_windows: usize) {
        self.batcher = Some(match self.offloaded.take() {
            Some(offloaded) => DitBatcher::new(offloaded, linger, max_windows),
            None => DitBatcher::new(self.dit.clone(), linger, max_windows),
        });
    }

    /// Runs the DiT's evaluations on `dit` from now on: an [`crate::model::OffloadedDit`]
    /// holding the same weights on a GPU. Call it before [`Models::batch_evaluations`].
    pub fn offload_dit(&mut self, dit: impl Denoiser<B> + Send + 'static) {
        self.offloaded = Some(Box::new(dit));
    }

    /// What DiT evaluations go through: the batcher when there is one, else the offloaded DiT
    /// when there is one, else the DiT.
    pub fn denoiser(&self) -> &dyn Denoiser<B> {
        match (&self.batcher, &self.offloaded) {
            (Some(batcher), _) => batcher,
            (None, Some(offloaded)) => offloaded.as_ref(),
            (None, None) => &self.dit,
        }
    }
}

impl<B: Backend> Models<B> {
    /// The autoencoder's plane logits `[tokens, 3, rows, steps]` for normalised DiT tokens
    /// (stems cycling in `Stem::ALL` order), before any calibration.
    pub fn decode_logits(&self, mut tokens: Vec<f32>) -> Tensor<B, 4> {
        let stems = Stem::ALL.len();
        let latent = self.dit_config.latent_dim;
        let count = tokens.len() / latent;
        self.dit_config.denormalise(&mut tokens);
        let stem_ids: Vec<i64> = (0..count).map(|i| (i % stems) as i64).collect();
        self.autoencoder.decode(
            Tensor::from_data(TensorData::new(tokens, [count, latent]), &self.device),
            Tensor::from_data(TensorData::new(stem_ids, [count]), &self.device),
        )
    }

    /// Decodes normalised DiT tokens (each `latent_dim` long, stems cycling in `Stem::ALL`
    /// order) to plane values for [`BarGrid::read_planes`](crate::model::BarGrid), with the
    /// DiT's onset calibration for a song of `style` applied.
    pub fn decode_tokens(&self, tokens: Vec<f32>, style: Style) -> Result<Vec<f32>, Error> {
        let stems = Stem::ALL.len();
        let count = tokens.len() / self.dit_config.latent_dim;
        let mut logits = self.decode_logits(tokens);
        let config = &self.dit_config;
        if !config.onset_shift.is_empty()
            || !config.onset_shift_by_style.is_empty()
            || !config.drum_shift_by_style.is_empty()
        {
            // Only the onset plane moves: by the stem's shift, and on the drum stem's rows by
            // each class's own on top.
            let rows = self.autoencoder_config.grid().rows;
            let drums = Stem::ALL.iter().position(|&s| s == Stem::Drums);
            let shifts: Vec<f32> = (0..count)
                .flat_map(|i| {
                    let stem = i % stems;
                    let stem_shift = config.onset_shift_of(style, stem);
                    let mut shift = vec![0.0; PLANES * rows];
                    for (row, value) in shift[ONSET * rows..(ONSET + 1) * rows]
                        .iter_mut()
                        .enumerate()
                    {
                        *value = stem_shift;
                        if Some(stem) == drums {
                            *value += config.drum_shift_of(style, row);
                        }
                    }
                    shift
                })
                .collect();
            logits = logits
                + Tensor::<B, 1>::from_data(
                    TensorData::new(shifts, [count * PLANES * rows]),
                    &self.device,
                )
                .reshape([count, PLANES, rows, 1]);
        }
        self.autoencoder
            .values_from_logits(logits)
            .into_data()
            .to_vec::<f32>()
            .map_err(|e| Error::Model(format!("reading decoded planes: {e:?}")))
    }
}

/// How songs are written.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WriterSettings {
    pub sampler: SamplerSettings,
    /// Bars per window (at most the DiT's `max_bars`).
    pub window: u32,
    /// Clean bars carried into each later window.
    pub context: u32,
}

impl Default for WriterSettings {
    fn default() -> Self {
        WriterSettings {
            sampler: SamplerSettings::default(),
            window: 8,
            context: 4,
        }
    }
}

/// One segment: the song bars its window covers, in window order (a loop's last window
/// wraps to the first bars), and which of them it writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub index: usize,
    pub window: Vec<u32>,
    /// The song bars written, a contiguous run inside `window`.
    pub writes: std::ops::Range<u32>,
}

/// Cuts `bars` into segments; see the module documentation.
pub fn segments(bars: u32, looped: bool, settings: &WriterSettings) -> Vec<Segment> {
    let window = settings.window.max(1);
    let context = settings.context.min(window - 1);
    let hop = window - context;
    let mut out = Vec::new();
    let mut next = 0;
    while next < bars {
        let first = next == 0;
        let writes_end = if first {
            window.min(bars)
        } else {
            (next + hop).min(bars)
        };
        let is_last = writes_end == bars;
        // Bars of the song's start seen after a loop's last segment.
        let wrap = if looped && is_last && !first {
            (window - (writes_end - next)).min(2).min(next)
        } else {
            0
        };
        let before = (window - (writes_end - next) - wrap).min(next);
        let mut bars_in_window: Vec<u32> = (next - before..writes_end).collect();
        bars_in_window.extend(0..wrap);
        out.push(Segment {
            index: out.len(),
            window: bars_in_window,
            writes: next..writes_end,
        });
        next = writes_end;
    }
    out
}

/// What happened to one segment.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentRecord {
    pub segment: Segment,
    /// The attempt whose candidate was kept.
    pub attempt: u32,
    /// Model evaluations spent on it, every attempt and particle counted.
    pub evaluations: usize,
    /// The critic's overall score of the kept candidate, when a critic judged it.
    pub score: Option<f32>,
}

/// A written song and how it was made.
pub struct Written {
    pub song: Song,
    pub segments: Vec<SegmentRecord>,
    /// Every decision the reasoning loop took, in order.
    pub trace: Vec<TraceEvent>,
}

/// Everything a segment is written from: the models, the plan and its lead sheet.
pub struct SongContext<'a, B: Backend> {
    pub models: &'a Models<B>,
    pub plan: &'a Plan,
    pub sheet: &'a LeadSheet,
    pub settings: &'a WriterSettings,
    pub song_conditions: SongConditions,
    pub bar_conditions: Vec<BarConditions>,
}

impl<'a, B: Backend> SongContext<'a, B> {
    pub fn new(
        models: &'a Models<B>,
        plan: &'a Plan,
        sheet: &'a LeadSheet,
        settings: &'a WriterSettings,
    ) -> Result<Self, Error> {
        if settings.window as usize > models.dit_config.max_bars {
            return Err(Error::Model(format!(
                "a window of {} bars is longer than the DiT's {}",
                settings.window, models.dit_config.max_bars
            )));
        }
        Ok(SongContext {
            models,
            plan,
            sheet,
            settings,
            song_conditions: SongConditions::new(
                plan.style,
                plan.mood,
                plan.key,
                plan.meter,
                plan.tempo_bpm,
            ),
            bar_conditions: bar_conditions(plan.meter, plan.bars, &sheet.sections, &sheet.chords),
        })
    }

    /// Normalised latent values per song bar (all stems).
    pub fn per_bar(&self) -> usize {
        Stem::ALL.len() * self.models.dit_config.latent_dim
    }

    /// The window to denoise for `segment`, with the song's `tokens` written so far as its
    /// clean context.
    pub fn window(&self, segment: &Segment, tokens: &[f32]) -> Window {
        let stems = Stem::ALL.len();
        let per_bar = self.per_bar();
        let mut context = Vec::with_capacity(segment.window.len() * per_bar);
        let mut generate = Vec::with_capacity(segment.window.len() * stems);
        for &bar in &segment.window {
            let at = bar as usize * per_bar;
            context.extend_from_slice(&tokens[at..at + per_bar]);
            generate.extend(std::iter::repeat_n(segment.writes.contains(&bar), stems));
        }
        Window {
            song: self.song_conditions,
            bars: segment
                .window
                .iter()
                .map(|&b| self.bar_conditions[b as usize])
                .collect(),
            stems,
            context,
            generate,
        }
    }

    /// Copies the bars a segment writes from its sampled `window` values into `tokens`.
    pub fn keep(&self, segment: &Segment, window: &[f32], tokens: &mut [f32]) {
        let per_bar = self.per_bar();
        for (position, &bar) in segment.window.iter().enumerate() {
            if segment.writes.contains(&bar) {
                let from = position * per_bar;
                let at = bar as usize * per_bar;
                tokens[at..at + per_bar].copy_from_slice(&window[from..from + per_bar]);
            }
        }
    }

    /// The song's conditions over `bars` (in that order, e.g. a segment's window): style,
    /// tempo, meter, key, the chords of those bars and their sections, re-based to start at
    /// bar 0; no stems yet.
    pub fn frame(&self, bars: &[u32]) -> Song {
        let plan = self.plan;
        let beats = plan.meter.beats_per_bar() as usize;
        let mut chords = Vec::with_capacity(bars.len() * beats);
        let mut sections: Vec<crate::music::Section> = Vec::new();
        let mut previous: Option<usize> = None;
        for (position, &bar) in bars.iter().enumerate() {
            let at = bar as usize * beats;
            chords.extend(
                (at..at + beats).filter_map(|b| self.sheet.chords.per_beat.get(b).copied()),
            );
            let index = self
                .sheet
                .sections
                .iter()
                .position(|s| bar >= s.start_bar && bar < s.end_bar());
            match (index, sections.last_mut()) {
                (Some(i), Some(last)) if previous == Some(i) => last.bars += 1,
                (Some(i), _) => sections.push(crate::music::Section {
                    start_bar: position as u32,
                    bars: 1,
                    ..self.sheet.sections[i]
                }),
                (None, _) => {}
            }
            previous = index;
        }
        Song {
            style: plan.style,
            tempo_bpm: plan.tempo_bpm,
            meter: plan.meter,
            key: plan.key,
            bars: bars.len() as u32,
            sections,
            chords: crate::music::ChordTrack { per_beat: chords },
            stems: Vec::new(),
        }
    }

    /// Decodes windows of `bars` (normalised latents, bar-major, all stems, one window after
    /// another) into songs over those bars, with the plan's stems only.
    pub fn decode_windows(&self, bars: &[u32], values: &[f32]) -> Result<Vec<Song>, Error> {
        let mut band_rng: SongRng = stage_rng(self.plan.seed, "band");
        let band = choose_band(self.plan.style, &mut band_rng);
        decode_windows(
            self.models,
            &self.frame(bars),
            &self.plan.stems,
            &band,
            values,
        )
    }
}

/// Decodes windows (normalised latents of `frame.bars` bars each, bar-major, all five stems,
/// one window after another) into songs with `frame`'s conditions, keeping `stems` played by
/// `band`.
pub fn decode_windows<B: Backend>(
    models: &Models<B>,
    frame: &Song,
    stems: &[Stem],
    band: &[crate::music::Instrument; 5],
    values: &[f32],
) -> Result<Vec<Song>, Error> {
    let per_window = frame.bars as usize * Stem::ALL.len() * models.dit_config.latent_dim;
    let count = values.len() / per_window.max(1);
    let decoded = models.decode_tokens(values.to_vec(), frame.style)?;
    let per_decoded = decoded.len() / count.max(1);
    (0..count)
        .map(|w| {
            let mut song = frame.clone();
            song.stems = tracks_from_values(
                models,
                stems,
                frame,
                band,
                &decoded[w * per_decoded..(w + 1) * per_decoded],
            )?;
            Ok(song)
        })
        .collect()
}

/// Writes every stem of the planned song with the models, thinking as `think` says (with
/// `critic` judging and `guard` refusing copies, where given). Deterministic in `plan.seed`.
///
/// A key in a mode the corpus barely holds is written in its [`told_key`] (the same notes in
/// a mode the models and the critic know) and given back in the requested key.
pub fn write_song<B: Backend>(
    models: &Models<B>,
    plan: &Plan,
    sheet: &LeadSheet,
    settings: &WriterSettings,
    thinking: &mut Thinking<'_>,
) -> Result<Written, Error> {
    let told = told_key(plan.key);
    if told == plan.key {
        return write_song_in_its_key(models, plan, sheet, settings, thinking);
    }
    let told_plan = Plan {
        key: told,
        ..plan.clone()
    };
    let mut written =
        write_song_in_its_key(models, &told_plan, &sheet.rekeyed(told), settings, thinking)?;
    written.song = written.song.rekeyed(plan.key);
    Ok(written)
}

fn write_song_in_its_key<B: Backend>(
    models: &Models<B>,
    plan: &Plan,
    sheet: &LeadSheet,
    settings: &WriterSettings,
    thinking: &mut Thinking<'_>,
) -> Result<Written, Error> {
    let context = SongContext::new(models, plan, sheet, settings)?;
    let written = reasoning::write_segments(&context, thinking)?;
    let song = decode_song(models, plan, sheet, written.tokens)?;
    Ok(Written {
        song,
        segments: written.records,
        trace: written.trace,
    })
}

/// Decodes the song's normalised latents (bar-major, all five stems) into notes.
pub fn decode_song<B: Backend>(
    models: &Models<B>,
    plan: &Plan,
    sheet: &LeadSheet,
    tokens: Vec<f32>,
) -> Result<Song, Error> {
    let values = models.decode_tokens(tokens, plan.style)?;
    let mut band_rng: SongRng = stage_rng(plan.seed, "band");
    let band = choose_band(plan.style, &mut band_rng);
    let mut song = Song {
        style: plan.style,
        tempo_bpm: plan.tempo_bpm,
        meter: plan.meter,
        key: plan.key,
        bars: plan.bars,
        sections: sheet.sections.clone(),
        chords: sheet.chords.clone(),
        stems: Vec::new(),
    };
    song.stems = tracks_from_values(models, &plan.stems, &song, &band, &values)?;
    Ok(song)
}

/// The `wanted` stems from decoded plane values of `frame.bars` consecutive bars (all five
/// stems each), each bar leaning towards the rhythm of the bar before by `frame.style`'s
/// lift (`DitConfig::rhythm_lift_of`), each stem played the way the style's training pieces
/// play it against `frame.chords` (single lines, fixed voices, strikes in turn and ending
/// together; `DitConfig::playing_of`).
fn tracks_from_values<B: Backend>(
    models: &Models<B>,
    wanted: &[Stem],
    frame: &Song,
    band: &[crate::music::Instrument; 5],
    values: &[f32],
) -> Result<Vec<StemTrack>, Error> {
    let (bars, meter) = (frame.bars as usize, frame.meter);
    let stems = Stem::ALL.len();
    let grid = models.autoencoder_config.grid();
    let mut tracks = Vec::new();
    for (s, stem) in Stem::ALL.into_iter().enumerate() {
        if !wanted.contains(&stem) {
            continue;
        }
        let mut planes = (0..bars)
            .map(|bar| {
                let at = (bar * stems + s) * grid.values();
                grid.read_planes(&values[at..at + grid.values()], stem, meter)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let config = &models.dit_config;
        let playing = config.playing_of(frame.style, s);
        let lift = config.rhythm_lift_of(frame.style, s);
        rhythm::lift_planes(&mut planes, playing.onset_unit(), lift);
        let mut track = StemTrack::new(stem, band[s]);
        track.notes = planes_to_notes(&planes);
        playing.apply(&mut track.notes, &planes, &frame.chords, meter);
        track.normalise();
        tracks.push(track);
    }
    Ok(tracks)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::plan::{Request, lead_sheet, plan};
    use crate::planes::notes_to_planes;
    use burn::backend::Flex;
    use rand::SeedableRng;

    /// Untrained small models: enough to check the plumbing, not the music.
    pub(crate) fn tiny_models() -> Models<Flex> {
        let device = Default::default();
        let autoencoder_config = BarAutoencoderConfig::new()
            .with_latent_dim(8)
            .with_hidden(32)
            .with_bottleneck_hidden(16);
        let dit_config = DitConfig::new()
            .with_latent_dim(8)
            .with_d_model(16)
            .with_layers(1)
            .with_heads(2);
        let dit = dit_config.init_seeded::<Flex>(&device, 1).map(
            &mut crate::model::autoencoder::SeededInit::new(
                rand_chacha::ChaCha8Rng::seed_from_u64(2),
                device,
            ),
        );
        Models {
            autoencoder: autoencoder_config.init_seeded(&device, 1),
            autoencoder_config,
            dit,
            dit_config,
            entries: Vec::new(),
            device,
            batcher: None,
            offloaded: None,
        }
    }

    #[test]
    fn a_written_song_follows_the_plan_and_the_seed_alone() {
        let models = tiny_models();
        for looped in [false, true] {
            let request = Request {
                bars: Some(19),
                looped,
                stems: Some(vec![Stem::Drums, Stem::Bass, Stem::Lead]),
                seed: 4,
                ..Request::default()
            };
            let mut planned = plan(&request).unwrap();
            let sheet = lead_sheet(&mut planned);
            let write = || {
                write_song(
                    &models,
                    &planned,
                    &sheet,
                    &WriterSettings::default(),
                    &mut Thinking::none(),
                )
                .unwrap()
            };
            let written = write();
            assert_eq!(written.song, write().song, "same plan and seed, same song");
            assert_eq!(
                written.segments.len(),
                segments(19, looped, &WriterSettings::default()).len()
            );
            let song = &written.song;
            assert_eq!(song.bars, 19);
            let stems: Vec<Stem> = song.stems.iter().map(|t| t.stem).collect();
            assert_eq!(stems, [Stem::Drums, Stem::Bass, Stem::Lead]);
            for track in &song.stems {
                // Every note fits the stem's planes (range, inside the song).
                notes_to_planes(track.stem, song.meter, song.bars, &track.notes).unwrap();
            }
            let mut other_request = request.clone();
            other_request.seed = 5;
            let mut other_plan = plan(&other_request).unwrap();
            let other_sheet = lead_sheet(&mut other_plan);
            let other = write_song(
                &models,
                &other_plan,
                &other_sheet,
                &WriterSettings::default(),
                &mut Thinking::none(),
            )
            .unwrap();
            assert_ne!(other.song, written.song);
        }
    }

    /// A rock band and an empty C major rock song of `bars` bars over `chords`, to decode into.
    fn rock_frame(
        meter: crate::music::Meter,
        bars: u32,
        chords: crate::music::ChordTrack,
    ) -> ([crate::music::Instrument; 5], Song) {
        let mut band_rng: SongRng = stage_rng(1, "band");
        let band = choose_band(Style::Rock, &mut band_rng);
        let frame = Song {
            style: Style::Rock,
            tempo_bpm: 120.0,
            meter,
            key: crate::music::Key::new(0, crate::music::Mode::Major),
            bars,
            sections: Vec::new(),
            chords,
            stems: Vec::new(),
        };
        (band, frame)
    }

    #[test]
    fn decoding_plays_each_stem_the_way_the_config_says_its_style_does() {
        use crate::model::playing::PlayingCounts;
        use crate::music::{Meter, Note};
        let mut models = tiny_models();
        let grid = models.autoencoder_config.grid();
        let (meter, bars) = (Meter::FourFour, 2);
        // Every stem decodes to a triad with one voice cut short and a note under its tail.
        let mut values = vec![0.0f32; bars * Stem::ALL.len() * grid.values()];
        for (s, stem) in Stem::ALL.into_iter().enumerate() {
            let low = stem.pitch_range().0;
            let note = |start, duration, above| Note {
                start,
                duration,
                pitch: low + above,
                velocity: 90,
            };
            let notes = [note(0, 8, 0), note(0, 8, 4), note(0, 3, 7), note(4, 2, 2)];
            let planes = notes_to_planes(stem, meter, bars as u32, &notes).unwrap();
            for (bar, planes) in planes.iter().enumerate() {
                let at = (bar * Stem::ALL.len() + s) * grid.values();
                grid.write_planes(planes, &mut values[at..at + grid.values()])
                    .unwrap();
            }
        }
        let chords = crate::music::ChordTrack {
            per_beat: vec![crate::music::Chord::new(0, crate::music::ChordQuality::Dominant7); 8],
        };
        let (band, frame) = rock_frame(meter, bars as u32, chords);
        let counts = |models: &Models<Flex>| -> Vec<PlayingCounts> {
            tracks_from_values(models, &Stem::ALL, &frame, &band, &values)
                .unwrap()
                .iter()
                .map(|track| {
                    let mut counts = PlayingCounts::default();
                    counts.add(&track.notes);
                    counts
                })
                .collect()
        };
        // By default only the bass and the lead are single lines.
        let lines: Vec<bool> = counts(&models).iter().map(|c| c.overlapping == 0).collect();
        let bass_and_lead: Vec<bool> = Stem::ALL
            .iter()
            .map(|&s| matches!(s, Stem::Bass | Stem::Lead))
            .collect();
        assert_eq!(lines, bass_and_lead);

        let entries = Style::ALL.len() * Stem::ALL.len();
        let rock = Style::ALL.iter().position(|&s| s == Style::Rock).unwrap();
        let only_rock = |flag: bool| -> Vec<bool> {
            (0..entries)
                .map(|i| (i / Stem::ALL.len() == rock) == flag)
                .collect()
        };
        models.dit_config.single_line_by_style = vec![false; entries];
        models.dit_config.strikes_end_together_by_style = only_rock(false);
        for counts in counts(&models) {
            assert_eq!(
                (counts.strikes, counts.ragged_strikes),
                (1, 1),
                "other styles' flags"
            );
            assert!(counts.overlapping > 0);
        }
        models.dit_config.strikes_end_together_by_style = only_rock(true);
        for counts in counts(&models) {
            assert_eq!((counts.strikes, counts.ragged_strikes), (1, 0));
        }
        models.dit_config.voices_by_style =
            only_rock(true).iter().map(|&r| 2 * u8::from(r)).collect();
        for counts in counts(&models) {
            assert_eq!(counts.onset_steps_by_voices[..4], [0, 0, 2, 0]);
        }
        models.dit_config.voices_by_style.clear();
        models.dit_config.single_line_by_style = only_rock(true);
        for counts in counts(&models) {
            assert_eq!((counts.notes, counts.overlapping), (2, 0));
        }
    }

    #[test]
    fn decoding_leans_each_bar_towards_the_rhythm_before_by_its_styles_lift() {
        use crate::music::Meter;
        let mut models = tiny_models();
        let grid = models.autoencoder_config.grid();
        let meter = Meter::FourFour;
        let lead = Stem::ALL.iter().position(|&s| s == Stem::Lead).unwrap();
        // The lead plays steps 0 and 4 in bar 0; bar 1 is unsure of step 4 (0.3) and fairly
        // sure of step 2 (0.6), which bar 0 did not play.
        let mut values = vec![0.0f32; 2 * Stem::ALL.len() * grid.values()];
        for (bar, onsets) in [[(0, 0.9), (4, 0.9)], [(2, 0.6), (4, 0.3)]]
            .iter()
            .enumerate()
        {
            let mut planes = crate::planes::BarPlanes::empty(Stem::Lead, meter);
            for &(step, p) in onsets {
                planes.onset[20 * 16 + step] = p;
                planes.velocity[20 * 16 + step] = 0.7;
            }
            let at = (bar * Stem::ALL.len() + lead) * grid.values();
            grid.write_planes(&planes, &mut values[at..at + grid.values()])
                .unwrap();
        }
        let (band, frame) = rock_frame(meter, 2, crate::music::ChordTrack::default());
        let starts = |models: &Models<Flex>| -> Vec<u32> {
            let tracks = tracks_from_values(models, &[Stem::Lead], &frame, &band, &values);
            tracks.unwrap()[0].notes.iter().map(|n| n.start).collect()
        };
        assert_eq!(starts(&models), [0, 4, 18], "no lift: each bar on its own");
        let entries = Style::ALL.len() * Stem::ALL.len();
        let rock = Style::ALL.iter().position(|&s| s == Style::Rock).unwrap();
        models.dit_config.rhythm_lift_by_style = vec![1.0; entries];
        models.dit_config.rhythm_lift_by_style[rock * Stem::ALL.len() + lead] = 0.0;
        assert_eq!(starts(&models), [0, 4, 18], "other styles' lifts");
        models.dit_config.rhythm_lift_by_style = vec![0.0; entries];
        models.dit_config.rhythm_lift_by_style[rock * Stem::ALL.len() + lead] = 1.0;
        models.dit_config.validate().unwrap();
        assert_eq!(starts(&models), [0, 4, 20], "bar 1 follows bar 0's steps");
    }

    #[test]
    fn a_mode_the_corpus_lacks_is_written_in_its_told_key_and_given_back() {
        use crate::music::{Key, Mode};
        let models = tiny_models();
        let request = Request {
            bars: Some(9),
            key: Some(Key::new(7, Mode::Locrian)),
            seed: 3,
            ..Request::default()
        };
        let mut planned = plan(&request).unwrap();
        let sheet = lead_sheet(&mut planned);
        let write = |plan: &Plan, sheet: &LeadSheet| {
            write_song(
                &models,
                plan,
                sheet,
                &WriterSettings::default(),
                &mut Thinking::none(),
            )
            .unwrap()
            .song
        };
        let song = write(&planned, &sheet);
        assert_eq!(song.key, planned.key);
        assert_eq!(song.chords, sheet.chords);
        let told = told_key(planned.key);
        assert_eq!(told, Key::new(5, Mode::Minor));
        let told_plan = Plan {
            key: told,
            ..planned.clone()
        };
        let in_told_key = write(&told_plan, &sheet.rekeyed(told));
        assert_eq!(in_told_key.key, told);
        assert_eq!(song, in_told_key.rekeyed(planned.key));
    }

    #[test]
    fn segments_tile_the_song_once_with_context_before_them() {
        let settings = WriterSettings::default();
        for looped in [false, true] {
            for bars in 1..40 {
                let segments = segments(bars, looped, &settings);
                let mut next = 0;
                for (i, s) in segments.iter().enumerate() {
                    assert_eq!(s.index, i);
                    assert_eq!(s.writes.start, next, "{bars} {s:?}");
                    assert!(s.writes.end > s.writes.start);
                    assert!(s.window.len() <= settings.window as usize);
                    for bar in s.writes.clone() {
                        assert!(s.window.contains(&bar));
                    }
                    // Every context bar was written before.
                    for &bar in &s.window {
                        assert!(bar < s.writes.end, "{bars} {s:?}");
                    }
                    if i > 0 {
                        assert!(s.window[0] < s.writes.start, "a later window has context");
                    }
                    next = s.writes.end;
                }
                assert_eq!(next, bars);
                let last = segments.last().unwrap();
                let wraps = last.window.last() < last.window.first();
                assert_eq!(wraps, looped && segments.len() > 1 && bars > 8, "{bars}");
            }
        }
    }
}
