//! Onset calibration of the DiT's samples. The bar autoencoder's decoder is calibrated on the
//! latents of real bars; the DiT's samples land a little off that manifold, where the onset
//! logits come out less confident, so decoded samples carry fewer notes than real bars (the
//! lead about 60 % as many). The fix is one number per stem: the shift of the onset logits
//! that makes the sampled windows of *training* pieces decode to as many onsets as the same
//! windows' real bars (onset steps, for a stem that decoding plays as a single line or with
//! fixed voices: see [`OnsetUnit`]). It is stored in the DiT's config (`onset_shift`, and per
//! style `onset_shift_by_style`), so it travels with the weights, and is checked on held-out
//! windows. Beside it, per style and stem, the bar-to-bar rhythm lift
//! ([`crate::model::rhythm`]) that makes the sampled windows repeat their rhythm from bar to
//! bar as much as the real ones (`rhythm_lift_by_style`). Calibration also counts how each
//! stem is played in each style's training pieces (single lines, fixed voices, strikes in
//! turn and ending together; [`crate::model::playing`]) for the decoder. Whole written songs
//! then correct the shifts per style ([`crate::train::song_density`]).

use crate::Error;
use crate::dataset::{self, Piece, Split};
use crate::model::DitConfig;
use crate::model::autoencoder::ONSET;
use crate::model::playing::{OnsetUnit, Playing, PlayingCounts};
use crate::model::rhythm;
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
    /// Per stem, the largest logit of each step (over the stem's playable pitches): a step
    /// clears the threshold when any of its cells does.
    pub real_steps: Vec<Vec<f32>>,
    pub sampled_steps: Vec<Vec<f32>>,
    /// Steps per bar of each window, in order (its meter's).
    pub window_steps: Vec<usize>,
}

/// How many onsets one stem's windows decode to, and how much each bar repeats the rhythm of
/// the bar before (summed over pairs of neighbouring bars, as the groove consistency of
/// `refrain_scorer::features` sums them).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DecodedRhythm {
    pub onsets: usize,
    pub similarity: f64,
    pub pairs: usize,
}

impl DecodedRhythm {
    /// Mean similarity of neighbouring bars' onset steps (0 with no pair).
    pub fn groove(&self) -> f64 {
        if self.pairs == 0 {
            0.0
        } else {
            self.similarity / self.pairs as f64
        }
    }
}

/// Largest bar-to-bar rhythm lift fitted, in logits.
pub const MAX_LIFT: f32 = 6.0;

impl OnsetLogits {
    /// Decodes stem `stem`'s real (`sampled` false) or sampled logits window by window with
    /// `shift` and the bar-to-bar `lift` ([`crate::model::rhythm::couple_bars`]), counting in
    /// `unit`.
    pub fn decoded_rhythm(
        &self,
        stem: usize,
        sampled: bool,
        unit: OnsetUnit,
        shift: f32,
        lift: f32,
        threshold: f32,
    ) -> DecodedRhythm {
        let (real, generated) = self.counted(stem, unit);
        let logits = if sampled { generated } else { real };
        // A step's logit is its likeliest cell's, and that cell is the one a step's lift
        // goes to: on step maxima the lift works cell by cell.
        let rows = match unit {
            OnsetUnit::Cells => Stem::ALL[stem].pitch_range().1 as usize,
            OnsetUnit::Steps => 1,
        };
        let bars = self.bars / self.window_steps.len().max(1);
        let mut out = DecodedRhythm::default();
        let mut at = 0;
        let mut margins = Vec::new();
        for &steps in &self.window_steps {
            let cells = rows * steps;
            let window = &logits[at..at + bars * cells];
            at += bars * cells;
            margins.clear();
            margins.extend(window.iter().map(|l| l + shift - threshold));
            rhythm::couple_bars(&mut margins, rows, steps, OnsetUnit::Cells, lift);
            out.onsets += margins.iter().filter(|&&m| m > 0.0).count();
            let patterns: Vec<Vec<bool>> = margins
                .chunks(cells)
                .map(|bar| rhythm::onset_steps(bar, rows, steps))
                .collect();
            for pair in patterns.windows(2) {
                if let Some(similarity) = rhythm::rhythm_similarity(&pair[0], &pair[1]) {
                    out.similarity += similarity;
                    out.pairs += 1;
                }
            }
        }
        out
    }

    /// Stem `stem`'s real and sampled logits, counted in `unit`.
    pub fn counted(&self, stem: usize, unit: OnsetUnit) -> (&[f32], &[f32]) {
        match unit {
            OnsetUnit::Cells => (&self.real[stem], &self.sampled[stem]),
            OnsetUnit::Steps => (&self.real_steps[stem], &self.sampled_steps[stem]),
        }
    }
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
    /// The first bars of each window are given clean, as the writer gives a window the bars
    /// before it, and only the rest is sampled and counted.
    pub context: usize,
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
        context,
        seed,
    } = draw;
    if context >= window_bars {
        return Err(Error::Model(format!(
            "{context} context bars leave nothing to sample in windows of {window_bars} bars"
        )));
    }
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
        real_steps: vec![Vec::new(); stems],
        sampled_steps: vec![Vec::new(); stems],
        window_steps: Vec::with_capacity(windows),
    };
    for (chunk_index, chunk) in picks.chunks(CHUNK).enumerate() {
        let mut batch = Vec::with_capacity(chunk.len());
        let mut clean = Vec::new();
        let mut meters = Vec::with_capacity(chunk.len());
        for &(piece, start) in chunk {
            let generate = (0..window_bars * stems)
                .map(|token| token / stems >= context)
                .collect();
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
        for (tokens, cells, steps) in [
            (clean, &mut out.real, &mut out.real_steps),
            (sampled, &mut out.sampled, &mut out.sampled_steps),
        ] {
            let logits = read_logits(models.decode_logits(tokens))?;
            playable_onsets(models, &logits, per_window, context, &meters, cells, steps);
        }
        out.bars += chunk.len() * (window_bars - context);
        out.window_steps
            .extend(meters.iter().map(|m| m.steps_per_bar() as usize));
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

/// Appends the onset logits of the cells each token's stem can play in its window's meter to
/// `cells`, and each step's largest of them to `steps`, skipping each window's first
/// `context` bars.
fn playable_onsets<B: Backend>(
    models: &Models<B>,
    logits: &[f32],
    per_window: usize,
    context: usize,
    meters: &[Meter],
    cells: &mut [Vec<f32>],
    steps: &mut [Vec<f32>],
) {
    let grid = models.autoencoder_config.grid();
    let stems = cells.len();
    for (token, values) in logits.chunks(grid.values()).enumerate() {
        if (token % per_window) / stems < context {
            continue;
        }
        let stem = token % stems;
        let playable = BarPlanes::empty(Stem::ALL[stem], meters[token / per_window]);
        let onset = &values[ONSET * grid.cells()..(ONSET + 1) * grid.cells()];
        for row in 0..playable.rows as usize {
            for step in 0..playable.steps as usize {
                cells[stem].push(onset[row * grid.steps + step]);
            }
        }
        for step in 0..playable.steps as usize {
            let loudest = (0..playable.rows as usize)
                .map(|row| onset[row * grid.steps + step])
                .fold(f32::NEG_INFINITY, f32::max);
            steps[stem].push(loudest);
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
    /// What the counts below count: onsets (cells) or onset steps.
    pub unit: OnsetUnit,
    /// Per bar on the fitting (training) windows: real, sampled, sampled shifted.
    pub train_real: f64,
    pub train_sampled: f64,
    pub train_calibrated: f64,
    /// The same on held-out windows, which the fit never saw.
    pub held_out_real: f64,
    pub held_out_sampled: f64,
    pub held_out_calibrated: f64,
    /// The bar-to-bar rhythm lift (0: the samples repeat their rhythm enough already).
    pub lift: f32,
    /// Groove (mean similarity of neighbouring bars' onset steps): real, sampled, sampled
    /// shifted and lifted; on training windows, then on held-out ones.
    pub train_groove: [f64; 3],
    pub held_out_groove: [f64; 3],
}

/// Fits one shift and one bar-to-bar rhythm lift per stem on `train`, counting each stem in
/// its unit in `units` (`Stem::ALL` order), and reports them on `held_out` too. The shift
/// makes the sampled windows decode to as many onsets as the real ones; the lift, where the
/// samples repeat their rhythm less than the real windows, is raised (the shift fitted
/// again at each try, so the density stays matched) until they repeat it as much.
pub fn fit_onset_shift(
    train: &OnsetLogits,
    held_out: &OnsetLogits,
    units: &[OnsetUnit],
    threshold: f32,
) -> Vec<StemCalibration> {
    (0..train.real.len())
        .map(|s| {
            let unit = units.get(s).copied().unwrap_or(OnsetUnit::Cells);
            let decoded = |logits: &OnsetLogits, sampled, shift, lift| {
                logits.decoded_rhythm(s, sampled, unit, shift, lift, threshold)
            };
            let real = decoded(train, false, 0.0, 0.0);
            let (real_logits, sampled_logits) = train.counted(s, unit);
            let plain_shift = matching_shift(real_logits, sampled_logits, threshold);
            // The smallest shift giving at least the real count: more shift never gives
            // fewer onsets, lifted or not.
            let matched = |lift: f32| -> (f32, DecodedRhythm) {
                if lift == 0.0 {
                    return (plain_shift, decoded(train, true, plain_shift, 0.0));
                }
                let (mut low, mut high) = (-MAX_SHIFT, MAX_SHIFT);
                for _ in 0..30 {
                    let middle = 0.5 * (low + high);
                    if decoded(train, true, middle, lift).onsets >= real.onsets {
                        high = middle;
                    } else {
                        low = middle;
                    }
                }
                (high, decoded(train, true, high, lift))
            };
            let wanted = real.groove();
            let (mut shift, mut fitted) = matched(0.0);
            let mut lift = 0.0;
            if fitted.groove() < wanted {
                let (mut low, mut high) = (0.0f32, MAX_LIFT);
                let strongest = matched(high);
                (lift, shift, fitted) = (high, strongest.0, strongest.1);
                if strongest.1.groove() > wanted {
                    for _ in 0..16 {
                        let middle = 0.5 * (low + high);
                        let (middle_shift, rhythm) = matched(middle);
                        if rhythm.groove() < wanted {
                            low = middle;
                        } else {
                            (high, lift, shift, fitted) = (middle, middle, middle_shift, rhythm);
                        }
                    }
                }
            }
            let per_bar = |rhythm: DecodedRhythm, logits: &OnsetLogits| {
                rhythm.onsets as f64 / logits.bars.max(1) as f64
            };
            let held_real = decoded(held_out, false, 0.0, 0.0);
            let held_sampled = decoded(held_out, true, 0.0, 0.0);
            let held_calibrated = decoded(held_out, true, shift, lift);
            let train_sampled = decoded(train, true, 0.0, 0.0);
            StemCalibration {
                stem: Stem::ALL[s].name().into(),
                shift,
                unit,
                train_real: per_bar(real, train),
                train_sampled: per_bar(train_sampled, train),
                train_calibrated: per_bar(fitted, train),
                held_out_real: per_bar(held_real, held_out),
                held_out_sampled: per_bar(held_sampled, held_out),
                held_out_calibrated: per_bar(held_calibrated, held_out),
                lift,
                train_groove: [real.groove(), train_sampled.groove(), fitted.groove()],
                held_out_groove: [
                    held_real.groove(),
                    held_sampled.groove(),
                    held_calibrated.groove(),
                ],
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
        let style = style.number();
        let stem = Stem::ALL.iter().position(|&s| s == stem).unwrap_or(0);
        self.counts[style * Stem::ALL.len() + stem]
    }

    /// The unit each stem's density is matched on (`Stem::ALL` order): in `style`'s windows,
    /// or in windows of every style (`None`), where a stem counts steps only if every style
    /// plays it so.
    pub fn units(&self, style: Option<Style>) -> Vec<OnsetUnit> {
        let styles = style.map_or(Style::ALL.to_vec(), |s| vec![s]);
        Stem::ALL
            .iter()
            .map(|&stem| {
                let steps = styles
                    .iter()
                    .all(|&s| self.counts(s, stem).playing().onset_unit() == OnsetUnit::Steps);
                if steps {
                    OnsetUnit::Steps
                } else {
                    OnsetUnit::Cells
                }
            })
            .collect()
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
    use crate::music::DrumClass;

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
                context: 0,
                seed,
            };
            sample_onset_logits(&models, &set, draw, sampler, &mut |_| {}).unwrap()
        };
        let train = sample(Split::Train, 0);
        let held_out = sample(Split::Validation, 0);
        assert_eq!(train.bars, 80);
        // Given context bars are neither sampled nor counted.
        let draw = WindowDraw {
            split: Split::Train,
            style: None,
            windows: 20,
            bars: 4,
            context: 3,
            seed: 0,
        };
        let continued = sample_onset_logits(&models, &set, draw, sampler, &mut |_| {}).unwrap();
        assert_eq!(continued.bars, 20);
        assert_eq!(continued.real[0].len() * 4, train.real[0].len());
        let all_given = WindowDraw { context: 4, ..draw };
        assert!(sample_onset_logits(&models, &set, all_given, sampler, &mut |_| {}).is_err());
        assert_eq!(
            sample(Split::Train, 0).sampled,
            train.sampled,
            "deterministic"
        );
        assert_ne!(sample(Split::Train, 1).sampled, train.sampled);
        let threshold = models.autoencoder_config.onset_logit_offset;
        let cells = vec![OnsetUnit::Cells; Stem::ALL.len()];
        let steps = vec![OnsetUnit::Steps; Stem::ALL.len()];
        let by_cells = fit_onset_shift(&train, &held_out, &cells, threshold);
        let by_steps = fit_onset_shift(&train, &held_out, &steps, threshold);
        assert_eq!(by_cells.len(), Stem::ALL.len());
        for (cell, step) in by_cells.iter().zip(&by_steps) {
            for stem in [cell, step] {
                // A lift is fitted with the shift found by bisection, a hair over at most.
                let slack = if stem.lift == 0.0 { 1e-9 } else { 0.05 };
                assert!(
                    (stem.train_calibrated - stem.train_real).abs() <= slack * stem.train_real,
                    "{stem:?}"
                );
            }
            assert!(
                step.train_real <= cell.train_real,
                "a step holds one cell or more"
            );
            assert_eq!(step.unit, OnsetUnit::Steps);
        }
        // A step's logit is the largest of its cells': it clears the threshold when one does.
        let lead = Stem::ALL.iter().position(|&s| s == Stem::Lead).unwrap();
        let rows = BarPlanes::empty(Stem::Lead, Meter::ALL[0]).rows as usize;
        let (cells, steps) = (&train.real[lead], &train.real_steps[lead]);
        assert_eq!(cells.len(), rows * steps.len());
        let largest = |v: &[f32]| v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(largest(cells), largest(steps));
        for threshold in [-2.0, 0.0, threshold, 2.0] {
            let (cells, steps) = (
                onsets_above(cells, 0.0, threshold),
                onsets_above(steps, 0.0, threshold),
            );
            assert!(
                steps <= cells && steps * rows >= cells,
                "{steps} steps, {cells} cells"
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
            models.decode_tokens(tokens.clone(), Style::ALL[1]).unwrap(),
            shifted
        );
        // A drum class's shift moves its own row of the drum stem only, on top.
        let mut drum_shifts = vec![0.0; Style::ALL.len() * DrumClass::ALL.len()];
        drum_shifts[DrumClass::ALL.len() + 2] = 3.0;
        models.dit_config.drum_shift_by_style = drum_shifts;
        models.dit_config.validate().unwrap();
        assert_eq!(models.decode_tokens(tokens.clone(), first).unwrap(), plain);
        let drummed = models.decode_tokens(tokens, Style::ALL[1]).unwrap();
        let drums = Stem::ALL.iter().position(|&s| s == Stem::Drums).unwrap();
        let steps = models.autoencoder_config.grid().steps;
        for (token, (a, b)) in shifted
            .chunks(3 * cells)
            .zip(drummed.chunks(3 * cells))
            .enumerate()
        {
            for (cell, (x, y)) in a.iter().zip(b).enumerate() {
                if token % Stem::ALL.len() == drums && cell / steps == 2 {
                    assert!(y > x, "token {token} cell {cell}");
                } else {
                    assert_eq!(x, y, "token {token} cell {cell}");
                }
            }
        }
        models.dit_config.drum_shift_by_style = vec![f32::NAN; DrumClass::ALL.len()];
        assert!(models.dit_config.validate().is_err());
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

    /// Windows whose real bars repeat one rhythm (with a step changed now and then) and
    /// whose samples find the same onsets only hesitantly, each bar on its own.
    fn hesitant_samples(windows: usize) -> OnsetLogits {
        use rand::Rng;
        let (bars, steps) = (8, 16);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (mut real, mut sampled) = (Vec::new(), Vec::new());
        for _ in 0..windows {
            let rhythm: Vec<bool> = (0..steps).map(|_| rng.random_bool(0.4)).collect();
            for _ in 0..bars {
                for &on in &rhythm {
                    let on = on ^ rng.random_bool(0.1);
                    real.push(if on { 3.0 } else { -3.0 });
                    let centre = if on { 0.2 } else { -1.2 };
                    sampled.push(centre + rng.random_range(-1.0..1.0f32));
                }
            }
        }
        let stems = Stem::ALL.len();
        OnsetLogits {
            bars: windows * bars,
            real: vec![real.clone(); stems],
            sampled: vec![sampled.clone(); stems],
            real_steps: vec![real; stems],
            sampled_steps: vec![sampled; stems],
            window_steps: vec![steps; windows],
        }
    }

    #[test]
    fn the_lift_makes_samples_repeat_their_rhythm_as_much_as_real_bars_at_the_same_density() {
        let (train, held_out) = (hesitant_samples(200), hesitant_samples(50));
        let units = vec![OnsetUnit::Steps; Stem::ALL.len()];
        let fit = fit_onset_shift(&train, &held_out, &units, 0.0);
        let lead = &fit[Stem::ALL.iter().position(|&s| s == Stem::Lead).unwrap()];
        let [real, sampled, calibrated] = lead.train_groove;
        assert!(sampled < real - 0.1, "{sampled} vs {real}");
        assert!(lead.lift > 0.0 && lead.lift < MAX_LIFT, "{lead:?}");
        assert!((calibrated - real).abs() < 0.01, "{calibrated} vs {real}");
        assert!(
            (lead.train_calibrated / lead.train_real - 1.0).abs() < 0.01,
            "{lead:?}"
        );
        // Without the lift the shift alone matches the density but not the rhythm.
        let plain = train.decoded_rhythm(3, true, OnsetUnit::Steps, lead.shift, 0.0, 0.0);
        assert!(plain.groove() < real - 0.05);
        // Samples that repeat enough already get no lift.
        let mut repeating = train.clone();
        repeating.sampled_steps = repeating.real_steps.clone();
        let fit = fit_onset_shift(&repeating, &held_out, &units, 0.0);
        assert!(fit.iter().all(|s| s.lift == 0.0), "{fit:?}");
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
