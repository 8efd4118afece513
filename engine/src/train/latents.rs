//! The DiT's training data: every piece's stem-bars encoded once by the trained bar
//! autoencoder into latent tokens (all five stems of every bar, silent ones included, since
//! the DiT must learn when a stem rests), with the piece's song and bar conditions beside
//! them, and the windows a batch is cut from.
//!
//! A batch is a pure function of (seed, step): window positions, which tokens are clean
//! context, which conditions are dropped for guidance, the diffusion times and the noise.

use crate::Error;
use crate::dataset::{self, Piece, Split};
use crate::model::conditions::{BarConditions, SongConditions, bar_conditions};
use crate::model::dit::{DitConfig, TOKEN_FIELDS};
use crate::model::sampler::Window;
use crate::model::{BarAutoencoder, BarAutoencoderConfig};
use crate::music::{Stem, Style};
use crate::planes::notes_to_planes;
use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// One piece as the DiT sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct LatentPiece {
    pub id: String,
    pub split: Split,
    pub style: Style,
    /// One of the project's own songs (source `own/...`), written with the planner's harmony.
    pub own_song: bool,
    pub song: SongConditions,
    pub bars: Vec<BarConditions>,
    /// `bars * stems * latent_dim`, bar-major, raw (not normalised).
    pub latents: Vec<f32>,
}

/// Every piece of a dataset, encoded.
#[derive(Clone, Debug, Default)]
pub struct LatentSet {
    pub pieces: Vec<LatentPiece>,
    pub latent_dim: usize,
    pub stems: usize,
    /// sha256 of the dataset's manifest.
    pub manifest_sha256: String,
}

/// Stem-bars encoded per forward pass.
const ENCODE_BATCH: usize = 1024;

impl LatentSet {
    /// Encodes `pieces` with the autoencoder; `progress` gets the number of pieces done.
    pub fn encode<B: Backend>(
        pieces: &[Piece],
        autoencoder: &BarAutoencoder<B>,
        config: &BarAutoencoderConfig,
        device: &B::Device,
        progress: &mut dyn FnMut(usize),
    ) -> Result<LatentSet, Error> {
        let grid = config.grid();
        let stems = Stem::ALL.len();
        let mut set = LatentSet {
            latent_dim: config.latent_dim,
            stems,
            ..LatentSet::default()
        };
        // Stem-bars waiting for a forward pass: (piece in `set`, offset in its latents).
        let mut pending_values: Vec<f32> = Vec::with_capacity(ENCODE_BATCH * grid.values());
        let mut pending_stems: Vec<i64> = Vec::with_capacity(ENCODE_BATCH);
        let mut pending_at: Vec<(usize, usize)> = Vec::with_capacity(ENCODE_BATCH);
        let flush = |set: &mut LatentSet,
                     values: &mut Vec<f32>,
                     stem_ids: &mut Vec<i64>,
                     at: &mut Vec<(usize, usize)>|
         -> Result<(), Error> {
            if at.is_empty() {
                return Ok(());
            }
            let n = at.len();
            let planes = Tensor::<B, 4>::from_data(
                TensorData::new(std::mem::take(values), [n, 3, grid.rows, grid.steps]),
                device,
            );
            let ids = Tensor::<B, 1, Int>::from_data(
                TensorData::new(std::mem::take(stem_ids), [n]),
                device,
            );
            let latents = autoencoder
                .encode(planes, ids)
                .into_data()
                .to_vec::<f32>()
                .map_err(|e| Error::Model(format!("reading latents: {e:?}")))?;
            let dim = set.latent_dim;
            for ((piece, offset), latent) in at.drain(..).zip(latents.chunks(dim)) {
                set.pieces[piece].latents[offset..offset + dim].copy_from_slice(latent);
            }
            Ok(())
        };
        for (done, piece) in pieces.iter().enumerate() {
            let index = set.pieces.len();
            set.pieces.push(LatentPiece {
                id: piece.id.clone(),
                split: piece.split,
                style: piece.style,
                own_song: piece.source.starts_with("own/"),
                song: SongConditions::new(
                    piece.style,
                    piece.mood,
                    piece.key,
                    piece.meter,
                    piece.tempo_bpm,
                ),
                bars: bar_conditions(piece.meter, piece.bars, &piece.sections, &piece.chords),
                latents: vec![0.0; piece.bars as usize * stems * config.latent_dim],
            });
            for (stem_index, stem) in Stem::ALL.into_iter().enumerate() {
                let planes = notes_to_planes(stem, piece.meter, piece.bars, &piece.notes(stem))
                    .map_err(|e| Error::Corpus(format!("piece {}: {e}", piece.id)))?;
                for (bar, plane) in planes.iter().enumerate() {
                    let start = pending_values.len();
                    pending_values.resize(start + grid.values(), 0.0);
                    grid.write_planes(plane, &mut pending_values[start..])?;
                    pending_stems.push(stem_index as i64);
                    pending_at.push((index, (bar * stems + stem_index) * config.latent_dim));
                    if pending_at.len() == ENCODE_BATCH {
                        flush(
                            &mut set,
                            &mut pending_values,
                            &mut pending_stems,
                            &mut pending_at,
                        )?;
                    }
                }
            }
            progress(done + 1);
        }
        flush(
            &mut set,
            &mut pending_values,
            &mut pending_stems,
            &mut pending_at,
        )?;
        Ok(set)
    }

    /// Reads a dataset folder and encodes it.
    pub fn read<B: Backend>(
        dir: &Path,
        autoencoder: &BarAutoencoder<B>,
        config: &BarAutoencoderConfig,
        device: &B::Device,
        progress: &mut dyn FnMut(usize),
    ) -> Result<LatentSet, Error> {
        let (manifest, manifest_bytes) = dataset::read_manifest(dir)?;
        let mut pieces = Vec::new();
        dataset::for_each_piece(dir, &manifest, |piece| {
            pieces.push(piece);
            Ok(())
        })?;
        let mut set = LatentSet::encode(&pieces, autoencoder, config, device, progress)?;
        set.manifest_sha256 = crate::generate::sha256_hex(&manifest_bytes);
        Ok(set)
    }

    /// Per-dimension mean and standard deviation over the training pieces' tokens.
    pub fn statistics(&self) -> (Vec<f32>, Vec<f32>) {
        let dim = self.latent_dim;
        let mut sum = vec![0f64; dim];
        let mut square = vec![0f64; dim];
        let mut count = 0u64;
        for piece in self.pieces.iter().filter(|p| p.split == Split::Train) {
            for token in piece.latents.chunks(dim) {
                for (i, &v) in token.iter().enumerate() {
                    sum[i] += f64::from(v);
                    square[i] += f64::from(v) * f64::from(v);
                }
                count += 1;
            }
        }
        let n = count.max(1) as f64;
        let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let std = square
            .iter()
            .zip(&sum)
            .map(|(q, s)| ((q / n - (s / n).powi(2)).max(1e-8).sqrt() as f32).max(1e-3))
            .collect();
        (mean, std)
    }

    /// Mean normalised token per stem over the training pieces: the mean-latent baseline.
    pub fn stem_means(&self, config: &DitConfig) -> Vec<f32> {
        let dim = self.latent_dim;
        let mut sum = vec![0f64; self.stems * dim];
        let mut count = 0u64;
        for piece in self.pieces.iter().filter(|p| p.split == Split::Train) {
            let mut tokens = piece.latents.clone();
            config.normalise(&mut tokens);
            for bar in tokens.chunks(self.stems * dim) {
                for (s, v) in sum.iter_mut().zip(bar) {
                    *s += f64::from(*v);
                }
                count += 1;
            }
        }
        sum.iter()
            .map(|s| (s / count.max(1) as f64) as f32)
            .collect()
    }

    /// Indices of the pieces in `split` with at least `window` bars.
    pub fn windows_of(&self, split: Split, window: usize) -> Vec<usize> {
        (0..self.pieces.len())
            .filter(|&i| self.pieces[i].split == split && self.pieces[i].bars.len() >= window)
            .collect()
    }
}

/// How the context mask and guidance dropout are drawn.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MaskingConfig {
    /// Share of windows with no context at all (a song's first segment).
    pub none: f64,
    /// Share with the first bars clean (continuation, the common case).
    pub prefix: f64,
    /// Share with the last bars clean (extension backwards).
    pub suffix: f64,
    /// Share with both ends clean (infilling, loop wrap-around); the rest get whole stems
    /// clean (re-writing one stem against the others).
    pub both_ends: f64,
    /// Probability of dropping style and mood, and (independently) the chords.
    pub drop_song: f64,
    pub drop_chords: f64,
}

impl Default for MaskingConfig {
    fn default() -> Self {
        MaskingConfig {
            none: 0.3,
            prefix: 0.35,
            suffix: 0.1,
            both_ends: 0.1,
            drop_song: 0.1,
            drop_chords: 0.1,
        }
    }
}

/// One training batch, host side.
pub struct WindowBatch {
    pub windows: usize,
    pub tokens: usize,
    /// `[windows, tokens, latent]` normalised clean latents.
    pub clean: Vec<f32>,
    /// `[windows, tokens, latent]` standard normal noise.
    pub noise: Vec<f32>,
    /// `[windows]` diffusion times.
    pub times: Vec<f32>,
    /// `[windows, tokens]` 1 where generated.
    pub generate: Vec<f32>,
    pub token_fields: Vec<[u8; TOKEN_FIELDS]>,
    pub song_fields: Vec<[u8; crate::model::conditions::SONG_FIELDS]>,
}

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// The window of `piece` starting at `start`, `bars` long, with `generate` per token.
pub fn window_of(
    set: &LatentSet,
    config: &DitConfig,
    piece: usize,
    start: usize,
    bars: usize,
    generate: Vec<bool>,
) -> (Window, Vec<f32>) {
    let p = &set.pieces[piece];
    let per_bar = set.stems * set.latent_dim;
    let mut clean = p.latents[start * per_bar..(start + bars) * per_bar].to_vec();
    config.normalise(&mut clean);
    let window = Window {
        song: p.song,
        bars: p.bars[start..start + bars].to_vec(),
        stems: set.stems,
        context: clean.clone(),
        generate,
    };
    (window, clean)
}

/// Draws which tokens of a `bars x stems` window are generated.
pub fn draw_mask(
    rng: &mut ChaCha8Rng,
    masking: &MaskingConfig,
    bars: usize,
    stems: usize,
) -> Vec<bool> {
    let mut generate = vec![true; bars * stems];
    let clean_bar = |bar: usize, generate: &mut Vec<bool>| {
        for s in 0..stems {
            generate[bar * stems + s] = false;
        }
    };
    let r: f64 = rng.random();
    if bars < 2 || r < masking.none {
        return generate;
    }
    if r < masking.none + masking.prefix {
        let c = rng.random_range(1..bars);
        (0..c).for_each(|b| clean_bar(b, &mut generate));
    } else if r < masking.none + masking.prefix + masking.suffix {
        let c = rng.random_range(1..bars);
        (bars - c..bars).for_each(|b| clean_bar(b, &mut generate));
    } else if r < masking.none + masking.prefix + masking.suffix + masking.both_ends && bars >= 3 {
        let a = rng.random_range(1..bars - 1);
        let b = rng.random_range(1..bars - a);
        (0..a).for_each(|x| clean_bar(x, &mut generate));
        (bars - b..bars).for_each(|x| clean_bar(x, &mut generate));
    } else {
        // A proper, non-empty subset of stems is clean throughout.
        let subset = rng.random_range(1..(1u32 << stems) - 1);
        for bar in 0..bars {
            for s in 0..stems {
                if subset & (1 << s) != 0 {
                    generate[bar * stems + s] = false;
                }
            }
        }
    }
    generate
}

/// The training batch for `step`: `windows` windows of `bars` bars from the training pieces
/// in `candidates` (each piece weighted by its number of windows).
#[allow(clippy::too_many_arguments)]
pub fn training_batch(
    set: &LatentSet,
    config: &DitConfig,
    masking: &MaskingConfig,
    candidates: &[usize],
    cumulative: &[u64],
    seed: u64,
    step: u64,
    windows: usize,
    bars: usize,
) -> WindowBatch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let tokens = bars * set.stems;
    let mut batch = WindowBatch {
        windows,
        tokens,
        clean: Vec::with_capacity(windows * tokens * set.latent_dim),
        noise: Vec::with_capacity(windows * tokens * set.latent_dim),
        times: Vec::with_capacity(windows),
        generate: Vec::with_capacity(windows * tokens),
        token_fields: Vec::with_capacity(windows * tokens),
        song_fields: Vec::with_capacity(windows),
    };
    for _ in 0..windows {
        let (piece, start) = draw_window(&mut rng, set, candidates, cumulative, bars);
        let generate = draw_mask(&mut rng, masking, bars, set.stems);
        let (window, clean) = window_of(set, config, piece, start, bars, generate);
        let drop_song = rng.random_bool(masking.drop_song);
        let drop_chords = rng.random_bool(masking.drop_chords);
        batch.token_fields.extend(window.token_fields(drop_chords));
        batch.song_fields.push(window.song_fields(drop_song));
        batch
            .generate
            .extend(window.generate.iter().map(|&g| if g { 1.0 } else { 0.0 }));
        batch.clean.extend(clean);
        // Logit-normal times: most training where the signal is neither all nor nothing.
        let z = normal(&mut rng);
        batch.times.push(1.0 / (1.0 + (-z).exp()));
        for _ in 0..tokens * set.latent_dim {
            batch.noise.push(normal(&mut rng));
        }
    }
    batch
}

/// One window drawn in proportion to `cumulative` (from [`cumulative_windows`] or
/// [`weighted_cumulative_windows`] over `candidates`): its piece and first bar.
pub fn draw_window(
    rng: &mut ChaCha8Rng,
    set: &LatentSet,
    candidates: &[usize],
    cumulative: &[u64],
    bars: usize,
) -> (usize, usize) {
    let pick = rng.random_range(0..*cumulative.last().unwrap_or(&1));
    let slot = cumulative.partition_point(|&c| c <= pick);
    let piece = candidates[slot];
    let before = if slot == 0 { 0 } else { cumulative[slot - 1] };
    // A weighted piece's windows are counted several times over; each count is a real window.
    let in_piece = (set.pieces[piece].bars.len() + 1 - bars) as u64;
    (piece, ((pick - before) % in_piece) as usize)
}

/// Cumulative window counts of `candidates` for [`training_batch`].
pub fn cumulative_windows(set: &LatentSet, candidates: &[usize], bars: usize) -> Vec<u64> {
    weighted_cumulative_windows(set, candidates, bars, 1)
}

/// As [`cumulative_windows`], with the windows of the project's own songs counted
/// `own_song_repeat` times (so drawn that many times as often).
pub fn weighted_cumulative_windows(
    set: &LatentSet,
    candidates: &[usize],
    bars: usize,
    own_song_repeat: u64,
) -> Vec<u64> {
    let mut total = 0u64;
    candidates
        .iter()
        .map(|&i| {
            let piece = &set.pieces[i];
            let repeat = if piece.own_song {
                own_song_repeat.max(1)
            } else {
                1
            };
            total += (piece.bars.len() + 1 - bars) as u64 * repeat;
            total
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_songs_are_drawn_more_often_and_every_drawn_window_fits_its_piece() {
        let latent_dim = 2;
        let bar = BarConditions {
            section: 0,
            bar_in_section: 0,
            bars_to_end: 0,
            energy: 0,
            song_position: 0,
            roots: [0; 4],
            qualities: [0; 4],
        };
        // Piece p's latents count up from 1000 p, so a window tells where it came from.
        let piece = |p: usize, bars: usize, own_song: bool| LatentPiece {
            id: format!("{p}"),
            split: Split::Train,
            style: Style::Lofi,
            own_song,
            song: SongConditions::new(
                Style::Lofi,
                crate::music::Mood::ALL[0],
                crate::music::Key::new(0, crate::music::Mode::ALL[0]),
                crate::music::Meter::FourFour,
                90.0,
            ),
            bars: vec![bar; bars],
            latents: (0..bars * 5 * latent_dim)
                .map(|i| (1000 * p + i) as f32)
                .collect(),
        };
        let set = LatentSet {
            pieces: vec![piece(0, 10, false), piece(1, 6, true), piece(2, 4, false)],
            latent_dim,
            stems: 5,
            manifest_sha256: String::new(),
        };
        let candidates = [0, 1, 2];
        assert_eq!(cumulative_windows(&set, &candidates, 4), vec![7, 10, 11]);
        let weighted = weighted_cumulative_windows(&set, &candidates, 4, 5);
        assert_eq!(weighted, vec![7, 22, 23]);
        // Every draw, however weighted, is a real window of its piece.
        let config = DitConfig::new().with_latent_dim(latent_dim);
        let masking = MaskingConfig::default();
        let mut own_windows = 0;
        for step in 0..40 {
            let batch = training_batch(
                &set,
                &config,
                &masking,
                &candidates,
                &weighted,
                0,
                step,
                4,
                4,
            );
            for window in batch.clean.chunks(4 * 5 * latent_dim) {
                let (owner, first) = (window[0] as usize / 1000, window[0] as usize % 1000);
                assert_eq!(first % (5 * latent_dim), 0);
                assert!(first / (5 * latent_dim) + 4 <= set.pieces[owner].bars.len());
                own_windows += usize::from(owner == 1);
            }
        }
        // 15 of 23 weighted windows belong to the own song: about 65 % of 160 draws.
        assert!((80..130).contains(&own_windows), "{own_windows}");
    }

    #[test]
    fn masks_cover_every_kind_and_always_leave_something_to_generate() {
        let masking = MaskingConfig::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut kinds = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let mask = draw_mask(&mut rng, &masking, 8, 5);
            assert_eq!(mask.len(), 40);
            assert!(mask.iter().any(|&g| g));
            let first_bar_clean = mask[..5].iter().all(|&g| !g);
            let last_bar_clean = mask[35..].iter().all(|&g| !g);
            let all = mask.iter().all(|&g| g);
            let by_stem = (0..5).any(|s| (0..8).all(|b| !mask[b * 5 + s]))
                && (0..5).any(|s| (0..8).all(|b| mask[b * 5 + s]));
            kinds.insert((all, first_bar_clean, last_bar_clean, by_stem));
        }
        assert!(kinds.contains(&(true, false, false, false)));
        assert!(kinds.contains(&(false, true, false, false)));
        assert!(kinds.contains(&(false, false, true, false)));
        assert!(kinds.contains(&(false, true, true, false)));
        assert!(kinds.contains(&(false, false, false, true)));
    }
}
