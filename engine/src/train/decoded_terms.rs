//! The DiT's loss terms read through the frozen bar-autoencoder decoder. The flow loss
//! weighs every latent dimension alike, but what a listener hears of a token is its decoded
//! onsets, and the DiT's samples decode to less confident onsets than real bars (see
//! `calibrate`) whose rhythm repeats from bar to bar about half as much as the data's. Both
//! terms decode the DiT's predicted clean tokens (`x_t - t v`) and compare them with what the
//! real tokens decode to, on generated tokens and playable cells only, each window weighted
//! by `1 - t` (at high noise the clean window is a guess; near the end it is the sample):
//! - the onset term scores the onset logits with the autoencoder's own weighted
//!   cross-entropy against the real onsets;
//! - the groove term compares each pair of neighbouring bars of a stem: the soft Jaccard
//!   similarity of their onset steps (a step sounds with the likeliest onset among its
//!   pitches) against the real pair's, squared. It is the bar-to-bar groove consistency of
//!   `song_features`, made differentiable, and asks for as much repetition as the data has,
//!   not more.

use super::latents::WindowBatch;
use super::loss::masked_bce;
use crate::model::autoencoder::{BarGrid, ONSET};
use crate::model::dit::DitConfig;
use crate::model::{BarAutoencoder, BarAutoencoderConfig};
use crate::music::{Meter, Stem};
use burn::module::Module;
use burn::prelude::*;
use burn::tensor::activation::sigmoid;

/// How much each decoded term adds to the flow loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecodedWeights {
    pub onset: f32,
    pub groove: f32,
}

/// The frozen decoder and what scoring its output needs.
pub struct DecodedTerms<B: Backend> {
    autoencoder: BarAutoencoder<B>,
    grid: BarGrid,
    onset_logit_offset: f32,
    positive_weight: f32,
}

/// Where a logit goes to stand for a cell outside the stem's playable grid.
const UNPLAYABLE_LOGIT: f32 = -1.0e4;

impl<B: Backend> DecodedTerms<B> {
    /// Freezes `autoencoder` (no gradients reach its weights; they still flow through it).
    pub fn new(autoencoder: BarAutoencoder<B>, config: &BarAutoencoderConfig) -> Self {
        DecodedTerms {
            autoencoder: autoencoder.no_grad(),
            grid: config.grid(),
            onset_logit_offset: config.onset_logit_offset,
            positive_weight: super::loss::ReconstructionLossConfig::new().onset_positive_weight,
        }
    }

    /// The weighted sum of the terms for one batch (a term with weight 0 is not computed).
    ///
    /// # Shapes
    /// - `predicted`, `clean`: `[windows, tokens, latent]`, normalised as the DiT sees them
    /// - output: `[1]`
    pub fn loss(
        &self,
        config: &DitConfig,
        batch: &WindowBatch,
        predicted: Tensor<B, 3>,
        clean: Tensor<B, 3>,
        weights: DecodedWeights,
    ) -> Tensor<B, 1> {
        let device = predicted.device();
        let [windows, tokens, latent] = predicted.dims();
        let items = windows * tokens;
        let denormalise = |x: Tensor<B, 3>| {
            let mean = Tensor::<B, 1>::from_data(
                TensorData::new(config.latent_mean.clone(), [latent]),
                &device,
            )
            .reshape([1, 1, latent]);
            let std = Tensor::<B, 1>::from_data(
                TensorData::new(config.latent_std.clone(), [latent]),
                &device,
            )
            .reshape([1, 1, latent]);
            (x * std + mean).reshape([items, latent])
        };
        let stem_ids: Vec<i64> = (0..items).map(|i| (i % config.stems) as i64).collect();
        let stems = Tensor::<B, 1, Int>::from_data(TensorData::new(stem_ids, [items]), &device);
        let logits = self
            .autoencoder
            .decode(denormalise(predicted), stems.clone())
            .narrow(1, ONSET, 1);
        let target = self
            .autoencoder
            .decode(denormalise(clean), stems)
            .narrow(1, ONSET, 1)
            .detach()
            .greater_elem(self.onset_logit_offset)
            .float();
        let masks = self.masks(config, batch);
        let playable = Tensor::<B, 4>::from_data(
            TensorData::new(masks.playable, [items, 1, self.grid.rows, self.grid.steps]),
            &device,
        );
        let mut loss = Tensor::<B, 1>::zeros([1], &device);
        if weights.onset > 0.0 {
            let token_weights =
                Tensor::<B, 1>::from_data(TensorData::new(masks.token_weights, [items]), &device)
                    .reshape([items, 1, 1, 1]);
            let cells = Tensor::<B, 1>::from_data(TensorData::new(vec![masks.cells], [1]), &device);
            let onset = masked_bce(
                logits.clone(),
                target.clone(),
                playable.clone() * token_weights,
                cells,
                self.positive_weight,
            );
            loss = loss + onset * weights.onset;
        }
        if weights.groove > 0.0 {
            loss = loss + self.groove(config, batch, logits, target, playable) * weights.groove;
        }
        loss
    }

    /// The groove term: per stem, each neighbouring pair of bars' soft onset-step Jaccard
    /// against the real pair's, squared, weighted by `1 - t`, averaged over the pairs where
    /// the real bars sound and at least one bar is generated. A context bar enters as its
    /// real onsets, so the first generated bar is held to the context's rhythm too.
    fn groove(
        &self,
        config: &DitConfig,
        batch: &WindowBatch,
        logits: Tensor<B, 4>,
        target: Tensor<B, 4>,
        playable: Tensor<B, 4>,
    ) -> Tensor<B, 1> {
        let device = logits.device();
        let [items, _, _, steps] = logits.dims();
        let stems = config.stems;
        let bars = batch.tokens / stems;
        if bars < 2 {
            return Tensor::zeros([1], &device);
        }
        // A step's onset probability is its likeliest pitch's (what the decoder's threshold
        // turns into a note there or not).
        let outside = (playable.clone().neg() + 1.0) * UNPLAYABLE_LOGIT;
        let predicted = sigmoid(
            (logits - self.onset_logit_offset + outside)
                .max_dim(2)
                .reshape([items, steps]),
        );
        let real = (target * playable).max_dim(2).reshape([items, steps]);
        let generated =
            Tensor::<B, 1>::from_data(TensorData::new(batch.generate.clone(), [items]), &device)
                .reshape([items, 1]);
        let pattern = predicted * generated.clone() + real.clone() * (generated.neg() + 1.0);
        let shape = [batch.windows, bars, stems, steps];
        let jaccard = |p: Tensor<B, 4>| {
            let earlier = p.clone().narrow(1, 0, bars - 1);
            let later = p.narrow(1, 1, bars - 1);
            let both = earlier.clone() * later.clone();
            let inter = both.clone().sum_dim(3);
            let union = (earlier + later - both).sum_dim(3);
            (inter, union)
        };
        let (inter, union) = jaccard(pattern.reshape(shape));
        let (real_inter, real_union) = jaccard(real.reshape(shape));
        let similarity = inter / (union + 1e-6);
        let sounding = real_union.clone().greater_elem(0.0).float();
        let real_similarity = real_inter / real_union.clamp_min(1.0);
        let pair_shape = [batch.windows, bars - 1, stems, 1];
        let counted = Tensor::<B, 4>::from_data(
            TensorData::new(
                self.pairs_with_a_generated_bar(batch, stems, bars),
                pair_shape,
            ),
            &device,
        ) * sounding;
        let time_weights = Tensor::<B, 1>::from_data(
            TensorData::new(batch.times.clone(), [batch.windows]),
            &device,
        )
        .neg()
        .add_scalar(1.0)
        .reshape([batch.windows, 1, 1, 1]);
        // Counted unweighted, so the time weight scales the term rather than redistributing it.
        let count = counted.clone().sum().clamp_min(1.0);
        let weights = counted * time_weights;
        ((similarity - real_similarity).powi_scalar(2) * weights).sum() / count
    }

    /// Per neighbouring pair of bars (window, earlier bar, stem): 1 where either bar is
    /// generated, 0 elsewhere.
    fn pairs_with_a_generated_bar(
        &self,
        batch: &WindowBatch,
        stems: usize,
        bars: usize,
    ) -> Vec<f32> {
        let mut flags = Vec::with_capacity(batch.windows * (bars - 1) * stems);
        for window in 0..batch.windows {
            for bar in 0..bars - 1 {
                for stem in 0..stems {
                    let token = window * batch.tokens + bar * stems + stem;
                    let either = batch.generate[token] > 0.0 || batch.generate[token + stems] > 0.0;
                    flags.push(if either { 1.0 } else { 0.0 });
                }
            }
        }
        flags
    }

    /// Per token, its stem's playable cells in its window's meter (`playable`); its weight
    /// in the onset term, `1 - t` where it is generated and 0 elsewhere (`token_weights`);
    /// and the count of the generated tokens' playable cells unweighted (`cells`), so the
    /// time weight scales the term rather than redistributing it.
    fn masks(&self, config: &DitConfig, batch: &WindowBatch) -> Masks {
        let cells = self.grid.cells();
        let mut playable = vec![0f32; batch.windows * batch.tokens * cells];
        let mut token_weights = vec![0f32; batch.windows * batch.tokens];
        let mut count = 0f32;
        for (token, out) in playable.chunks_mut(cells).enumerate() {
            let window = token / batch.tokens;
            let meter = Meter::ALL[usize::from(batch.song_fields[window][METER_FIELD])];
            let stem = Stem::ALL[(token % batch.tokens) % config.stems];
            self.grid.write_mask(stem, meter, out);
            if batch.generate[token] != 0.0 {
                count += out.iter().sum::<f32>();
                token_weights[token] = 1.0 - batch.times[window];
            }
        }
        Masks {
            playable,
            token_weights,
            cells: count.max(1.0),
        }
    }
}

/// What `DecodedTerms::masks` returns: `playable` is `[tokens, 1, rows, steps]` flattened,
/// `token_weights` `[tokens]`.
struct Masks {
    playable: Vec<f32>,
    token_weights: Vec<f32>,
    cells: f32,
}

/// Where the meter sits among `SongConditions::fields`.
const METER_FIELD: usize = 3;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::conditions::SongConditions;
    use crate::music::{Key, Mode, Mood, Style};
    use burn::backend::{Autodiff, Flex};

    type Training = Autodiff<Flex>;

    #[test]
    fn the_meter_field_is_where_song_conditions_put_it() {
        let conditions = SongConditions::new(
            Style::Folk,
            Mood::Calm,
            Key::new(0, Mode::Major),
            Meter::SixEight,
            100.0,
        );
        assert_eq!(
            usize::from(conditions.fields()[METER_FIELD]),
            Meter::ALL
                .iter()
                .position(|&m| m == Meter::SixEight)
                .unwrap()
        );
    }

    /// A small seeded autoencoder's decoder as the terms' judge.
    fn tiny_terms() -> DecodedTerms<Training> {
        let ae_config = BarAutoencoderConfig::new()
            .with_latent_dim(8)
            .with_hidden(32)
            .with_bottleneck_hidden(16);
        DecodedTerms::new(
            ae_config.init_seeded::<Training>(&Default::default(), 3),
            &ae_config,
        )
    }

    /// Windows of rock in 4/4, one per entry of `times`, `tokens` each.
    fn rock_batch(tokens: usize, times: Vec<f32>, generate: Vec<f32>) -> WindowBatch {
        let song = SongConditions::new(
            Style::Rock,
            Mood::Calm,
            Key::new(0, Mode::Major),
            Meter::FourFour,
            120.0,
        )
        .fields();
        let windows = times.len();
        WindowBatch {
            windows,
            tokens,
            clean: Vec::new(),
            noise: Vec::new(),
            times,
            generate,
            token_fields: Vec::new(),
            song_fields: vec![song; windows],
        }
    }

    #[test]
    fn the_terms_are_small_on_the_real_tokens_larger_off_them_and_train_only_the_input() {
        for weights in [
            DecodedWeights {
                onset: 1.0,
                groove: 0.0,
            },
            DecodedWeights {
                onset: 1.0,
                groove: 1.0,
            },
        ] {
            terms_are_small_on_the_real_tokens(weights);
        }
    }

    fn terms_are_small_on_the_real_tokens(weights: DecodedWeights) {
        let device = Default::default();
        let term = tiny_terms();
        let config = DitConfig::new()
            .with_latent_dim(8)
            .with_latent_mean(vec![0.0; 8])
            .with_latent_std(vec![1.0; 8]);
        let (windows, tokens) = (2, 2 * config.stems);
        let batch = rock_batch(tokens, vec![0.2, 1.0], vec![1.0; windows * tokens]);
        let values: Vec<f32> = (0..windows * tokens * 8)
            .map(|i| ((i * 37 % 17) as f32 - 8.0) / 4.0)
            .collect();
        let clean = Tensor::<Training, 3>::from_data(
            TensorData::new(values.clone(), [windows, tokens, 8]),
            &device,
        );
        let same = term
            .loss(&config, &batch, clean.clone(), clean.clone(), weights)
            .into_scalar();
        let moved = Tensor::<Training, 3>::from_data(
            TensorData::new(
                values.iter().map(|v| -v).collect::<Vec<f32>>(),
                [windows, tokens, 8],
            ),
            &device,
        )
        .require_grad();
        let off = term.loss(&config, &batch, moved.clone(), clean.clone(), weights);
        assert!(off.clone().into_scalar() > same, "{same} with {weights:?}");
        let grads = off.backward();
        let input_grad = moved.grad(&grads).expect("gradient reaches the prediction");
        // The second window is pure noise (t = 1): weight 0, so no gradient there.
        let per_window: Vec<f32> = input_grad
            .abs()
            .sum_dim(2)
            .sum_dim(1)
            .into_data()
            .to_vec()
            .unwrap();
        assert!(
            per_window[0] > 0.0 && per_window[1] == 0.0,
            "{per_window:?}"
        );
        assert!(
            burn::optim::GradientsParams::from_grads(grads, &term.autoencoder).is_empty(),
            "the autoencoder stays frozen"
        );
    }

    /// One window of `bars` bars, each stem's onsets per bar given as steps (4/4, rows 0..2),
    /// as real targets, and as predicted logits of +-20 from `predicted_steps`.
    fn groove_of(
        real_steps: &[&[usize]],
        predicted_steps: &[&[usize]],
        generate: &[f32],
        time: f32,
    ) -> f32 {
        let device = Default::default();
        let term = tiny_terms();
        let config = DitConfig::new().with_latent_dim(8);
        let bars = real_steps.len();
        let tokens = bars * config.stems;
        let (rows, steps) = (term.grid.rows, term.grid.steps);
        let batch = rock_batch(
            tokens,
            vec![time],
            (0..tokens).map(|t| generate[t / config.stems]).collect(),
        );
        // Only the lead (stem 3) plays; the other stems' bars are silent.
        let planes = |onsets: &[&[usize]], on: f32, off: f32| {
            let mut values = vec![off; tokens * rows * steps];
            for (bar, bar_steps) in onsets.iter().enumerate() {
                let token = bar * config.stems + 3;
                for &step in bar_steps.iter() {
                    values[(token * rows + bar % 2) * steps + step] = on;
                }
            }
            Tensor::<Training, 4>::from_data(
                TensorData::new(values, [tokens, 1, rows, steps]),
                &device,
            )
        };
        let masks = term.masks(&config, &batch);
        let playable = Tensor::<Training, 4>::from_data(
            TensorData::new(masks.playable, [tokens, 1, rows, steps]),
            &device,
        );
        term.groove(
            &config,
            &batch,
            planes(predicted_steps, 20.0, -20.0),
            planes(real_steps, 1.0, 0.0),
            playable,
        )
        .into_scalar()
    }

    #[test]
    fn the_groove_term_compares_neighbouring_bars_rhythm_with_the_real_ones() {
        let steady: &[&[usize]] = &[&[0, 4, 8, 12], &[0, 4, 8, 12]];
        let shifted: &[&[usize]] = &[&[0, 4, 8, 12], &[2, 6, 10, 14]];
        // The same rhythms (even on other pitches): nothing to pay.
        assert!(groove_of(steady, steady, &[1.0, 1.0], 0.2) < 1e-4);
        // Real bars repeat (similarity 1), predicted ones share nothing (0): (1 - t) * 1.
        let miss = groove_of(steady, shifted, &[1.0, 1.0], 0.2);
        assert!((miss - 0.8).abs() < 1e-3, "{miss}");
        // Too much repetition is paid for as well: the real bars share half their onsets.
        let half: &[&[usize]] = &[&[0, 4, 8, 12], &[0, 4, 10, 14]];
        let over = groove_of(half, steady, &[1.0, 1.0], 0.0);
        let expected = (1.0f32 - 2.0 / 6.0).powi(2);
        assert!((over - expected).abs() < 1e-3, "{over} against {expected}");
        // A context bar enters as its real onsets: a generated bar that repeats the real
        // context pays nothing, whatever was predicted for the context.
        assert!(groove_of(steady, &[&[2, 6], &[0, 4, 8, 12]], &[0.0, 1.0], 0.2) < 1e-4);
        // Nothing generated, or pure noise: no term.
        assert_eq!(groove_of(steady, shifted, &[0.0, 0.0], 0.2), 0.0);
        assert_eq!(groove_of(steady, shifted, &[1.0, 1.0], 1.0), 0.0);
    }
}
