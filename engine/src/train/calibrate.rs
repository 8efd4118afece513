//! Onset calibration of the DiT's samples. The bar autoencoder's decoder is calibrated on the
//! latents of real bars; the DiT's samples land a little off that manifold, where the onset
//! logits come out less confident, so decoded samples carry fewer notes than real bars (the
//! lead about 60 % as many). The fix is one number per stem: the shift of the onset logits
//! that makes the sampled windows of *training* pieces decode to as many onsets as the same
//! windows' real bars. It is stored in the DiT's config (`onset_shift`, and per style
//! `onset_shift_by_style`), so it travels with the weights, and is checked on held-out
//! windows. Calibration also counts how each stem is played in each style's training pieces
//! (single lines, fixed voices, strikes in turn and ending together;
//! [`crate::model::playing`]) for the decoder.

use crate::Error;
use crate::dataset::{self, Piece, Split};
use crate::model::DitConfig;
use crate::model::autoencoder::ONSET;
use crate::model::playing::{Playing, PlayingCounts};
use crate::model::sampler::{FlowSampler, Sampler, SamplerSettings, window_noise};
use crate::music::{Meter, Stem, Style};
use crate::planes::BarPlanes;
use crate::train::latents::{LatentSet, cumulative_windows, draw_window, window_of};
use crate::writer::Models;
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::path::Path;

/// Windows sampled per sampler call.
const CHUNK: usize = 16;

/// The onset logits of every playable cell, per stem, of real windows and of the DiT's
/// samples of the same windows (same conditions, nothing given as context).
#[derive(Clone, Debug, Default)]
pub struct OnsetLogits {
    pub bars: usize,
    /// Per stem, in `Stem::ALL` order.
    pub real: Vec<Vec<f32>>,
    pub sampled: Vec<Vec<f32>>,
}

/// Which windows are sampled: `windows` windows of `bars` bars from the pieces of `split`
/// (each piece weighted by its windows), chosen and noised deterministically in `seed`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowDraw {
    pub split: Split,
    /// Only pieces of this style, where given.
    pub style: Option<Style>,
    pub windows: usize,
    pub bars: usize,
    pub seed: u64,
}

/// Samples the windows of `draw` with `sampler`; `progress` gets windows done.
pub fn sample_onset_logits<B: Backend>(
    models: &Models<B>,
    set: &LatentSet,
    draw: WindowDraw,
    sampler: SamplerSettings,
    progress: &mut dyn FnMut(usize),
) -> Result<OnsetLogits, Error> {
    let WindowDraw {
        split,
        style,
        windows,
        bars: window_bars,
        seed,
    } = draw;
    let candidates = calibration_pieces(set, split, style, window_bars);
    if candidates.is_empty() {
        let of = style.map(|s| format!(" {}", s.name())).unwrap_or_default();
        return Err(Error::Model(format!(
            "no {split:?}{of} piece has {window_bars} bars to calibrate on"
        )));
    }
    let cumulative = cumulative_windows(set, &candidates, window_bars);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let picks: Vec<(usize, usize)> = (0..windows)
        .map(|_| draw_window(&mut rng, set, &candidates, &cumulative, window_bars))
        .collect();
    let stems = set.stems;
    let flow = FlowSampler::new(sampler);
    let mut out = OnsetLogits {
        bars: 0,
        real: vec![Vec::new(); stems],
        sampled: vec![Vec::new(); stems],
    };
    for (chunk_index, chunk) in picks.chunks(CHUNK).enumerate() {
        let mut batch = Vec::with_capacity(chunk.len());
        let mut clean = Vec::new();
        let mut meters = Vec::with_capacity(chunk.len());
        for &(piece, start) in chunk {
            let generate = vec![true; window_bars * stems];
            let (window, tokens) =
                window_of(set, &models.dit_config, piece, start, window_bars, generate);
            batch.push(window);
            clean.extend(tokens);
            meters.push(Meter::ALL[usize::from(set.pieces[piece].song.meter)]);
        }
        let noise = window_noise(seed, chunk_index as u64, 0, 0, clean.len());
        let sampled = flow.sample(
            &models.dit,
            &models.dit_config,
            &batch,
            &noise,
            &models.device,
            None,
        )?;
        let per_window = window_bars * stems;
        for (tokens, into) in [(clean, &mut out.real), (sampled, &mut out.sampled)] {
            let logits = read_logits(models.decode_logits(tokens))?;
            playable_onsets(models, &logits, per_window, &meters, into);
        }
        out.bars += chunk.len() * window_bars;
        progress((chunk_index * CHUNK + chunk.len()).min(windows));
    }
    Ok(out)
}

/// The pieces of `split` (of `style`, where given) long enough for windows of `bars` bars.
pub fn calibration_pieces(
    set: &LatentSet,
    split: Split,
    style: Option<Style>,
    bars: usize,
) -> Vec<usize> {
    set.windows_of(split, bars)
        .into_iter()
        .filter(|&p| style.is_none_or(|s| set.pieces[p].style == s))
        .collect()
}

fn read_logits<B: Backend>(logits: Tensor<B, 4>) -> Result<Vec<f32>, Error> {
    logits
        .into_data()
        .to_vec::<f32>()
        .map_err(|e| Error::Model(format!("reading decoded logits: {e:?}")))
}

/// Appends the onset logits of the cells each token's stem can play in its window's meter.
fn playable_onsets<B: Backend>(
    models: &Models<B>,
    logits: &[f32],
    per_window: usize,
    meters: &[Meter],
    into: &mut [Vec<f32>],
) {
    let grid = models.autoencoder_config.grid();
    let stems = into.len();
    for (token, values) in logits.chunks(grid.values()).enumerate() {
        let stem = token % stems;
        let playable = BarPlanes::empty(Stem::ALL[stem], meters[token / per_window]);
        let onset = &values[ONSET * grid.cells()..(ONSET + 1) * grid.cells()];
        for row in 0..playable.rows as usize {
            for step in 0..playable.steps as usize {
                into[stem].push(onset[row * grid.steps + step]);
            }
        }
    }
}

/// Cells whose logit, shifted, clears `threshold` (the decoder's calibrated onset offset).
pub fn onsets_above(logits: &[f32], shift: f32, threshold: f32) -> usize {
    logits.iter().filter(|&&l| l + shift > threshold).count()
}

/// The shift that makes exactly as many of `sampled` clear `threshold` as of `real` (ties
/// aside): halfway between the two sampled logits either side of that count.
pub fn matching_shift(real: &[f32], sampled: &[f32], threshold: f32) -> f32 {
    let wanted = onsets_above(real, 0.0, threshold);
    if sampled.is_empty() {
        return 0.0;
    }
    let mut sorted = sampled.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let shift = if wanted == 0 {
        threshold - sorted[0] - 1e-3
    } else if wanted >= sorted.len() {
        threshold - sorted[sorted.len() - 1] + 1e-3
    } else {
        threshold - 0.5 * (sorted[wanted - 1] + sorted[wanted])
    };
    // A shift this large would mean the models do not belong together, not miscalibration.
    shift.clamp(-MAX_SHIFT, MAX_SHIFT)
}

/// Largest onset shift fitted, in logits.
pub const MAX_SHIFT: f32 = 4.0;

/// One stem's calibration, for the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StemCalibration {
    pub stem: String,
    pub shift: f32,
    /// Onsets per bar on the fitting (training) windows: real, sampled, sampled shifted.
    pub train_real: f64,
    pub train_sampled: f64,
    pub train_calibrated: f64,
    /// The same on held-out windows, which the fit never saw.
    pub held_out_real: f64,
    pub held_out_sampled: f64,
    pub held_out_calibrated: f64,
}

/// Fits one shift per stem on `train` and reports it on `held_out` too.
pub fn fit_onset_shift(
    train: &OnsetLogits,
    held_out: &OnsetLogits,
    threshold: f32,
) -> Vec<StemCalibration> {
    let per_bar = |logits: &[f32], shift: f32, bars: usize| {
        onsets_above(logits, shift, threshold) as f64 / bars.max(1) as f64
    };
    (0..train.real.len())
        .map(|s| {
            let shift = matching_shift(&train.real[s], &train.sampled[s], threshold);
            StemCalibration {
                stem: Stem::ALL[s].name().into(),
                shift,
                train_real: per_bar(&train.real[s], 0.0, train.bars),
                train_sampled: per_bar(&train.sampled[s], 0.0, train.bars),
                train_calibrated: per_bar(&train.sampled[s], shift, train.bars),
                held_out_real: per_bar(&held_out.real[s], 0.0, held_out.bars),
                held_out_sampled: per_bar(&held_out.sampled[s], 0.0, held_out.bars),
                held_out_calibrated: per_bar(&held_out.sampled[s], shift, held_out.bars),
            }
        })
        .collect()
}

/// How every stem is played in each style's training pieces (see [`crate::model::playing`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PlayingTally {
    /// `Style::ALL.len() * Stem::ALL.len()` counts, style-major.
    counts: Vec<PlayingCounts>,
}

impl Default for PlayingTally {
    fn default() -> Self {
        PlayingTally {
            counts: vec![PlayingCounts::default(); Style::ALL.len() * Stem::ALL.len()],
        }
    }
}

impl PlayingTally {
    /// Counts a training piece's notes (held-out pieces are skipped).
    pub fn add(&mut self, piece: &Piece) {
        if piece.split != Split::Train {
            return;
        }
        let Some(style) = Style::ALL.iter().position(|&s| s == piece.style) else {
            return;
        };
        for (s, stem) in Stem::ALL.into_iter().enumerate() {
            self.counts[style * Stem::ALL.len() + s].add(&piece.notes(stem));
        }
    }

    pub fn counts(&self, style: Style, stem: Stem) -> PlayingCounts {
        let style = Style::ALL.iter().position(|&s| s == style).unwrap_or(0);
        let stem = Stem::ALL.iter().position(|&s| s == stem).unwrap_or(0);
        self.counts[style * Stem::ALL.len() + stem]
    }

    /// Stores the judgement in `config`, which decoding then follows.
    pub fn store(&self, config: &mut DitConfig) {
        let playing: Vec<Playing> = self.counts.iter().map(|c| c.playing()).collect();
        config.set_playing(&playing);
    }
}

/// Counts the training pieces of the dataset in `dir`.
pub fn count_training_playing(dir: &Path) -> Result<PlayingTally, Error> {
    let (manifest, _) = dataset::read_manifest(dir)?;
    let mut tally = PlayingTally::default();
    dataset::for_each_piece(dir, &manifest, |piece| {
        tally.add(&piece);
        Ok(())
    })?;
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::own_song_pieces;

    #[test]
    fn the_tally_counts_training_pieces_and_stores_what_decoding_follows() {
        let mut pieces = own_song_pieces(1);
        let mut tally = PlayingTally::default();
        for piece in &pieces {
            tally.add(piece);
        }
        // The arranger's bass and lead are single lines, its chords strike together.
        for style in Style::ALL {
            let playing = |stem| tally.counts(style, stem).playing();
            assert!(playing(Stem::Bass).single_line, "{style:?}");
            assert!(playing(Stem::Lead).single_line, "{style:?}");
            assert!(!playing(Stem::Chords).single_line, "{style:?}");
            assert_eq!(playing(Stem::Bass).voices, 0, "{style:?}");
        }
        let mut config = DitConfig::new();
        assert!(
            config.playing_of(Style::Rock, 1).single_line,
            "bass by default"
        );
        assert!(!config.playing_of(Style::Rock, 4).single_line);
        tally.store(&mut config);
        config.validate().unwrap();
        for style in Style::ALL {
            for (s, stem) in Stem::ALL.into_iter().enumerate() {
                assert_eq!(
                    config.playing_of(style, s),
                    tally.counts(style, stem).playing()
                );
            }
        }
        // Held-out pieces are not counted.
        for piece in &mut pieces {
            piece.split = Split::Validation;
        }
        let mut held_out = PlayingTally::default();
        for piece in &pieces {
            held_out.add(piece);
        }
        assert_eq!(held_out, PlayingTally::default());
        config.single_line_by_style.pop();
        assert!(config.validate().is_err());
        config.single_line_by_style.clear();
        config.voices_by_style.push(3);
        assert!(config.validate().is_err());
    }

    #[test]
    fn fitted_shifts_match_sampled_density_to_real_and_decoding_applies_them() {
        let mut models = crate::writer::tests::tiny_models();
        let mut pieces = own_song_pieces(1);
        for (i, piece) in pieces.iter_mut().enumerate() {
            piece.split = if i % 2 == 0 {
                Split::Train
            } else {
                Split::Validation
            };
        }
        let set = LatentSet::encode(
            &pieces,
            &models.autoencoder,
            &models.autoencoder_config,
            &models.device,
            &mut |_| {},
        )
        .unwrap();
        let sampler = SamplerSettings {
            steps: 2,
            ..SamplerSettings::default()
        };
        let sample = |split, seed| {
            let draw = WindowDraw {
                split,
                style: None,
                windows: 20,
                bars: 4,
                seed,
            };
            sample_onset_logits(&models, &set, draw, sampler, &mut |_| {}).unwrap()
        };
        let train = sample(Split::Train, 0);
        let held_out = sample(Split::Validation, 0);
        assert_eq!(train.bars, 80);
        assert_eq!(
            sample(Split::Train, 0).sampled,
            train.sampled,
            "deterministic"
        );
        assert_ne!(sample(Split::Train, 1).sampled, train.sampled);
        let threshold = models.autoencoder_config.onset_logit_offset;
        let fit = fit_onset_shift(&train, &held_out, threshold);
        assert_eq!(fit.len(), Stem::ALL.len());
        for stem in &fit {
            assert!(
                (stem.train_calibrated - stem.train_real).abs() < 1e-9,
                "{stem:?}"
            );
        }

        // Decoding applies a stored shift to the onset plane only.
        let tokens = vec![0.3f32; 2 * Stem::ALL.len() * models.dit_config.latent_dim];
        let plain = models.decode_tokens(tokens.clone(), Style::Lofi).unwrap();
        models.dit_config.onset_shift = vec![2.0; Stem::ALL.len()];
        let shifted = models.decode_tokens(tokens.clone(), Style::Lofi).unwrap();
        let cells = models.autoencoder_config.grid().cells();
        for (token, (a, b)) in plain
            .chunks(3 * cells)
            .zip(shifted.chunks(3 * cells))
            .enumerate()
        {
            assert!(
                a[..cells].iter().zip(&b[..cells]).all(|(x, y)| y > x),
                "token {token}"
            );
            assert_eq!(
                a[cells..],
                b[cells..],
                "token {token}: hold and velocity unchanged"
            );
        }
        // A style's own shifts win over the shared ones, for that style only.
        let mut by_style = vec![2.0; Style::ALL.len() * Stem::ALL.len()];
        by_style[..Stem::ALL.len()].fill(0.0);
        models.dit_config.onset_shift_by_style = by_style;
        models.dit_config.validate().unwrap();
        let first = Style::ALL[0];
        assert_eq!(models.decode_tokens(tokens.clone(), first).unwrap(), plain);
        assert_eq!(
            models.decode_tokens(tokens, Style::ALL[1]).unwrap(),
            shifted
        );
    }

    #[test]
    fn matching_shift_equalises_the_counts() {
        let real = [3.0, 2.0, 1.5, -1.0, -2.0, 0.9];
        let sampled = [1.2, 0.8, 0.7, 0.1, -3.0, -0.5];
        let threshold = 1.0;
        let wanted = onsets_above(&real, 0.0, threshold);
        assert_eq!(wanted, 3);
        let shift = matching_shift(&real, &sampled, threshold);
        assert_eq!(onsets_above(&sampled, shift, threshold), wanted);
        assert!(
            shift > 0.0,
            "sampled logits are less confident, so the shift raises them"
        );
    }

    #[test]
    fn matching_shift_handles_none_and_all() {
        let sampled = [0.5, -0.5, 2.0];
        let none = matching_shift(&[-5.0, -6.0], &sampled, 1.0);
        assert_eq!(onsets_above(&sampled, none, 1.0), 0);
        let all = matching_shift(&[5.0, 6.0, 7.0, 8.0], &sampled, 1.0);
        assert_eq!(onsets_above(&sampled, all, 1.0), 3);
        assert_eq!(matching_shift(&[1.0], &[], 0.0), 0.0);
        assert_eq!(matching_shift(&[9.0], &[-90.0], 0.0), MAX_SHIFT);
    }
}
