//! The decoded-onset term of the DiT's loss. The flow loss weighs every latent dimension
//! alike, but what a listener hears of a token is its decoded onsets, and the DiT's samples
//! decode to less confident onsets than real bars (see `calibrate`). This term runs the
//! frozen bar autoencoder's decoder on the DiT's predicted clean tokens (`x_t - t v`) and
//! scores their onset logits with the autoencoder's own weighted cross-entropy against the
//! onsets the real tokens decode to, on generated tokens and playable cells only, weighted
//! by `1 - t` (at high noise the clean window is a guess; near the end it is the sample).

use super::latents::WindowBatch;
use super::loss::masked_bce;
use crate::model::autoencoder::{BarGrid, ONSET};
use crate::model::dit::DitConfig;
use crate::model::{BarAutoencoder, BarAutoencoderConfig};
use crate::music::{Meter, Stem};
use burn::module::Module;
use burn::prelude::*;

/// The frozen decoder and what scoring its onsets needs.
pub struct OnsetTerm<B: Backend> {
    autoencoder: BarAutoencoder<B>,
    grid: BarGrid,
    onset_logit_offset: f32,
    positive_weight: f32,
}

impl<B: Backend> OnsetTerm<B> {
    /// Freezes `autoencoder` (no gradients reach its weights; they still flow through it).
    pub fn new(autoencoder: BarAutoencoder<B>, config: &BarAutoencoderConfig) -> Self {
        OnsetTerm {
            autoencoder: autoencoder.no_grad(),
            grid: config.grid(),
            onset_logit_offset: config.onset_logit_offset,
            positive_weight: super::loss::ReconstructionLossConfig::new().onset_positive_weight,
        }
    }

    /// The term for one batch.
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
        let (mask, cells) = self.mask(config, batch);
        let mask = Tensor::<B, 4>::from_data(
            TensorData::new(mask, [items, 1, self.grid.rows, self.grid.steps]),
            &device,
        );
        let cells = Tensor::<B, 1>::from_data(TensorData::new(vec![cells], [1]), &device);
        masked_bce(logits, target, mask, cells, self.positive_weight)
    }

    /// Per token, its stem's playable cells in its window's meter, times `1 - t` where the
    /// token is generated (0 elsewhere); and the count of those cells unweighted, so the
    /// time weight scales the term rather than redistributing it.
    fn mask(&self, config: &DitConfig, batch: &WindowBatch) -> (Vec<f32>, f32) {
        let cells = self.grid.cells();
        let mut mask = vec![0f32; batch.windows * batch.tokens * cells];
        let mut count = 0f32;
        for (token, out) in mask.chunks_mut(cells).enumerate() {
            let window = token / batch.tokens;
            if batch.generate[token] == 0.0 {
                continue;
            }
            let meter = Meter::ALL[usize::from(batch.song_fields[window][METER_FIELD])];
            let stem = Stem::ALL[(token % batch.tokens) % config.stems];
            self.grid.write_mask(stem, meter, out);
            let playable: f32 = out.iter().sum();
            count += playable;
            let weight = 1.0 - batch.times[window];
            out.iter_mut().for_each(|v| *v *= weight);
        }
        (mask, count.max(1.0))
    }
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

    #[test]
    fn the_term_is_small_on_the_real_tokens_larger_off_them_and_trains_only_the_input() {
        let device = Default::default();
        let ae_config = BarAutoencoderConfig::new()
            .with_latent_dim(8)
            .with_hidden(32)
            .with_bottleneck_hidden(16);
        let term = OnsetTerm::new(ae_config.init_seeded::<Training>(&device, 3), &ae_config);
        let config = DitConfig::new()
            .with_latent_dim(8)
            .with_latent_mean(vec![0.0; 8])
            .with_latent_std(vec![1.0; 8]);
        let (windows, tokens) = (2, 2 * config.stems);
        let song = SongConditions::new(
            Style::Rock,
            Mood::Calm,
            Key::new(0, Mode::Major),
            Meter::FourFour,
            120.0,
        )
        .fields();
        let batch = WindowBatch {
            windows,
            tokens,
            clean: Vec::new(),
            noise: Vec::new(),
            times: vec![0.2, 1.0],
            generate: vec![1.0; windows * tokens],
            token_fields: Vec::new(),
            song_fields: vec![song; windows],
        };
        let values: Vec<f32> = (0..windows * tokens * 8)
            .map(|i| ((i * 37 % 17) as f32 - 8.0) / 4.0)
            .collect();
        let clean = Tensor::<Training, 3>::from_data(
            TensorData::new(values.clone(), [windows, tokens, 8]),
            &device,
        );
        let same = term
            .loss(&config, &batch, clean.clone(), clean.clone())
            .into_scalar();
        let moved = Tensor::<Training, 3>::from_data(
            TensorData::new(
                values.iter().map(|v| -v).collect::<Vec<f32>>(),
                [windows, tokens, 8],
            ),
            &device,
        )
        .require_grad();
        let off = term.loss(&config, &batch, moved.clone(), clean.clone());
        assert!(off.clone().into_scalar() > same, "{same}");
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
}
