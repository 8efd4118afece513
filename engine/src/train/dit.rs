//! Training the DiT on encoded windows: rectified flow (predict `noise - clean` at a
//! logit-normal time), loss only on generated tokens, AdamW with gradient clipping, warm-up
//! and cosine decay, periodic held-out evaluation against the mean-latent baseline, a loss
//! log, checkpoints and exact resume (a batch is a function of (seed, step)).

use super::checkpoint::{self, ModelOptimizer};
use super::decoded_terms::{DecodedTerms, DecodedWeights};
use super::latents::{
    LatentSet, MaskingConfig, WindowBatch, cumulative_windows, training_batch,
    weighted_cumulative_windows,
};
use super::{open_log, start_or_resume, warmup_cosine, write_json};
use crate::Error;
use crate::dataset::Split;
use crate::model::dit::{Dit, DitConfig, DitInput, field_tensors};
use burn::grad_clipping::GradientClippingConfig;
use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// How the DiT is trained.
#[derive(Config, Debug, PartialEq)]
pub struct DitTrainingConfig {
    pub model: DitConfig,
    #[config(default = "MaskingConfig::default()")]
    pub masking: MaskingConfig,
    #[config(default = 6000)]
    pub steps: u64,
    /// Windows per step.
    #[config(default = 32)]
    pub batch: usize,
    /// Bars per training window.
    #[config(default = 8)]
    pub window_bars: usize,
    #[config(default = 0)]
    pub seed: u64,
    #[config(default = 5e-4)]
    pub learning_rate: f64,
    #[config(default = 200)]
    pub warmup_steps: u64,
    #[config(default = 0.01)]
    pub weight_decay: f32,
    /// Global gradient-norm clip.
    #[config(default = 1.0)]
    pub gradient_clip: f32,
    #[config(default = 250)]
    pub eval_every: u64,
    /// Held-out windows per evaluation (a fixed sample).
    #[config(default = 512)]
    pub eval_windows: usize,
    #[config(default = 250)]
    pub checkpoint_every: u64,
    #[config(default = 2)]
    pub keep_checkpoints: usize,
    /// Training windows of the project's own songs (whose harmony is the planner's) are
    /// drawn this many times as often as the arranged tunes' windows.
    #[config(default = 1)]
    pub own_song_repeat: u64,
    /// Weight of the decoded-onset term (`DecodedTerms`): the bar autoencoder's decoder
    /// reads the predicted clean tokens and its onset logits are scored against the real
    /// bars'. 0 leaves it out.
    #[config(default = 0.0)]
    pub onset_loss_weight: f32,
    /// Weight of the decoded-groove term (`DecodedTerms`): each pair of neighbouring bars'
    /// decoded onset-step similarity against the real pair's. 0 leaves it out.
    #[config(default = 0.0)]
    pub groove_loss_weight: f32,
    /// DiT weights the run starts from (a fine-tune) instead of a seeded initialisation;
    /// recorded with the file's sha256.
    #[config(default = "None")]
    pub init_from: Option<String>,
}

impl DitTrainingConfig {
    /// The decoded terms' weights, or None where both are 0 (the flow loss alone); a
    /// negative or non-finite weight is an error.
    pub fn decoded_weights(&self) -> Result<Option<DecodedWeights>, Error> {
        for (name, w) in [
            ("onset", self.onset_loss_weight),
            ("groove", self.groove_loss_weight),
        ] {
            if !(w.is_finite() && w >= 0.0) {
                return Err(Error::Model(format!(
                    "the {name} loss weight must be 0 or more, not {w}"
                )));
            }
        }
        Ok(
            (self.onset_loss_weight > 0.0 || self.groove_loss_weight > 0.0).then_some(
                DecodedWeights {
                    onset: self.onset_loss_weight,
                    groove: self.groove_loss_weight,
                },
            ),
        )
    }

    /// Whether a run saved with `saved` may continue under `self`: only the length and the
    /// own-song weighting may change.
    fn resumes(&self, saved: &DitTrainingConfig) -> bool {
        let mut saved = saved.clone();
        saved.steps = self.steps;
        saved.own_song_repeat = self.own_song_repeat;
        saved == *self
    }
}

/// Held-out figures: the flow loss, and the error of the predicted clean tokens against
/// the mean-latent baseline (each stem's mean training token), both in normalised units on
/// generated tokens only.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct DitEvaluation {
    pub flow_loss: f64,
    pub clean_mse: f64,
    pub baseline_clean_mse: f64,
}

/// Where a run stands, reported after every step.
#[derive(Clone, Copy, Debug)]
pub struct DitProgress {
    pub step: u64,
    pub steps: u64,
    pub train_loss: f64,
    pub evaluation: Option<DitEvaluation>,
}

/// What a finished run leaves behind.
#[derive(Clone, Debug, PartialEq)]
pub struct DitSummary {
    pub resumed_from: u64,
    pub steps: u64,
    pub parameters: usize,
    pub last_evaluation: Option<DitEvaluation>,
}

pub const DIT_WEIGHTS_FILE: &str = "dit.safetensors";
pub const DIT_CARD_FILE: &str = "dit.json";
pub const DIT_LOSS_LOG_FILE: &str = "loss.csv";
pub const DIT_CONFIG_FILE: &str = "training.json";
const DIT_LOSS_LOG_HEADER: &str =
    "step,train_loss,validation_flow_loss,validation_clean_mse,baseline_clean_mse,seconds";

#[derive(Serialize)]
struct DitCard<'a> {
    model: &'static str,
    weights: &'static str,
    config: &'a DitTrainingConfig,
    dataset_manifest_sha256: &'a str,
    autoencoder_sha256: &'a str,
    parameters: usize,
    steps: u64,
    train_pieces: usize,
    validation_pieces: usize,
    /// Wall time of the steps this process ran (a resumed run adds its own).
    wall_seconds: f64,
    last_evaluation: Option<DitEvaluation>,
    loss_log: &'static str,
}

/// The batch as tensors: model input, target velocity, generated-token mask.
fn batch_tensors<B: Backend>(
    config: &DitConfig,
    batch: &WindowBatch,
    device: &B::Device,
) -> (DitInput<B>, Tensor<B, 3>, Tensor<B, 3>) {
    let shape = [batch.windows, batch.tokens, config.latent_dim];
    let clean = Tensor::<B, 3>::from_data(TensorData::new(batch.clean.clone(), shape), device);
    let noise = Tensor::<B, 3>::from_data(TensorData::new(batch.noise.clone(), shape), device);
    let generate = Tensor::<B, 3>::from_data(
        TensorData::new(batch.generate.clone(), [batch.windows, batch.tokens, 1]),
        device,
    );
    let time = Tensor::<B, 1>::from_data(
        TensorData::new(batch.times.clone(), [batch.windows]),
        device,
    );
    let t = time.clone().reshape([batch.windows, 1, 1]);
    let noisy = clean.clone() * (t.clone().neg() + 1.0) + noise.clone() * t;
    let tokens = noisy * generate.clone() + clean.clone() * (generate.clone().neg() + 1.0);
    let (token_fields, song_fields) =
        field_tensors::<B>(config, &batch.token_fields, &batch.song_fields, device);
    (
        DitInput {
            tokens,
            token_fields,
            song_fields,
            time,
        },
        noise - clean,
        generate,
    )
}

/// Mean squared error over generated tokens.
fn masked_mse<B: Backend>(
    prediction: Tensor<B, 3>,
    target: Tensor<B, 3>,
    generate: Tensor<B, 3>,
) -> Tensor<B, 1> {
    let [_, _, latent] = prediction.dims();
    let count = generate.clone().sum().clamp_min(1.0) * latent as f32;
    ((prediction - target).powi_scalar(2) * generate).sum() / count
}

/// One optimiser step; returns the model and the batch's loss (the flow loss, plus the
/// decoded terms at their weights where `decoded` is given).
#[allow(clippy::too_many_arguments)]
pub fn train_step<B: AutodiffBackend>(
    model: Dit<B>,
    optimizer: &mut ModelOptimizer<Dit<B>, B>,
    config: &DitConfig,
    batch: &WindowBatch,
    decoded: Option<(&DecodedTerms<B>, DecodedWeights)>,
    learning_rate: f64,
    device: &B::Device,
) -> (Dit<B>, f32) {
    let (input, target, generate) = batch_tensors::<B>(config, batch, device);
    let noisy = input.tokens.clone();
    let t = input.time.clone().reshape([batch.windows, 1, 1]);
    let velocity = model.forward(input);
    let mut loss = masked_mse(velocity.clone(), target, generate);
    if let Some((terms, weights)) = decoded {
        let clean =
            Tensor::<B, 3>::from_data(TensorData::new(batch.clean.clone(), noisy.dims()), device);
        let predicted = noisy - velocity * t;
        loss = loss + terms.loss(config, batch, predicted, clean, weights);
    }
    let value: f32 = loss.clone().into_scalar().elem();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    (optimizer.step(learning_rate, model, grads), value)
}

/// The optimiser a run starts with: AdamW with weight decay and global-norm clipping.
pub fn optimizer<B: AutodiffBackend>(config: &DitTrainingConfig) -> ModelOptimizer<Dit<B>, B> {
    AdamWConfig::new()
        .with_weight_decay(config.weight_decay)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(config.gradient_clip)))
        .init::<B, Dit<B>>()
}

/// The fixed held-out sample: batches of validation windows, no guidance dropout.
pub fn evaluation_batches(
    set: &LatentSet,
    config: &DitTrainingConfig,
) -> Result<Vec<WindowBatch>, Error> {
    let candidates = set.windows_of(Split::Validation, config.window_bars);
    if candidates.is_empty() {
        return Err(Error::Model(format!(
            "no validation piece has {} bars",
            config.window_bars
        )));
    }
    let cumulative = cumulative_windows(set, &candidates, config.window_bars);
    let masking = MaskingConfig {
        drop_song: 0.0,
        drop_chords: 0.0,
        ..config.masking
    };
    let per_batch = config.batch.max(1);
    let batches = config.eval_windows.div_ceil(per_batch).max(1);
    Ok((0..batches as u64)
        .map(|i| {
            training_batch(
                set,
                &config.model,
                &masking,
                &candidates,
                &cumulative,
                config.seed ^ 0xe7a1_0000,
                i,
                per_batch,
                config.window_bars,
            )
        })
        .collect())
}

/// Scores the model on held-out batches.
pub fn evaluate<B: Backend>(
    model: &Dit<B>,
    config: &DitConfig,
    stem_means: &[f32],
    batches: &[WindowBatch],
    device: &B::Device,
) -> Result<DitEvaluation, Error> {
    let (mut flow, mut clean_error, mut baseline_error, mut count) = (0f64, 0f64, 0f64, 0f64);
    let latent = config.latent_dim;
    for batch in batches {
        let (input, target, generate) = batch_tensors::<B>(config, batch, device);
        let noisy = input.tokens.clone();
        let velocity = model.forward(input);
        let flow_loss: f32 = masked_mse(velocity.clone(), target, generate.clone())
            .into_scalar()
            .elem();
        let t = Tensor::<B, 1>::from_data(
            TensorData::new(batch.times.clone(), [batch.windows]),
            device,
        )
        .reshape([batch.windows, 1, 1]);
        let predicted = (noisy - velocity * t)
            .into_data()
            .to_vec::<f32>()
            .map_err(|e| Error::Model(format!("reading predictions: {e:?}")))?;
        let generated: f64 = batch.generate.iter().map(|&g| f64::from(g)).sum();
        flow += f64::from(flow_loss) * generated;
        let stems = stem_means.len() / latent;
        for (token, &g) in batch.generate.iter().enumerate() {
            if g == 0.0 {
                continue;
            }
            let stem = (token % batch.tokens) % stems;
            let range = token * latent..(token + 1) * latent;
            let clean = &batch.clean[range.clone()];
            let mean = &stem_means[stem * latent..(stem + 1) * latent];
            for ((c, p), m) in clean.iter().zip(&predicted[range]).zip(mean) {
                clean_error += f64::from((c - p) * (c - p));
                baseline_error += f64::from((c - m) * (c - m));
            }
        }
        count += generated;
    }
    let values = count.max(1.0) * latent as f64;
    Ok(DitEvaluation {
        flow_loss: flow / count.max(1.0),
        clean_mse: clean_error / values,
        baseline_clean_mse: baseline_error / values,
    })
}

/// How a run starts: from a seeded initialisation, or from these weights (`init_from`).
/// The decoded terms need the bar autoencoder (`decoded`) when a weight is above 0.
pub struct DitStart<'a, B: Backend> {
    pub initial: Option<Dit<B>>,
    pub decoded: Option<&'a DecodedTerms<B>>,
}

impl<B: Backend> Default for DitStart<'_, B> {
    fn default() -> Self {
        DitStart {
            initial: None,
            decoded: None,
        }
    }
}

/// Trains (or resumes) a DiT run in `out` on `set`. `progress` sees every step and may stop
/// the run by returning false (a checkpoint is written; `--resume` continues it).
#[allow(clippy::too_many_arguments)]
pub fn train_dit<B: AutodiffBackend>(
    config: &DitTrainingConfig,
    set: &LatentSet,
    autoencoder_sha256: &str,
    out: &Path,
    resume: bool,
    start: DitStart<'_, B>,
    device: &B::Device,
    progress: &mut dyn FnMut(&DitProgress) -> bool,
) -> Result<DitSummary, Error> {
    config.model.validate()?;
    let weights = config.decoded_weights()?;
    let decoded = match (weights, start.decoded) {
        (None, _) => None,
        (Some(weights), Some(terms)) => Some((terms, weights)),
        (Some(_), None) => {
            return Err(Error::Model(
                "the decoded onset and groove terms need the bar autoencoder".into(),
            ));
        }
    };
    if config.batch == 0 || config.eval_every == 0 || config.checkpoint_every == 0 {
        return Err(Error::Model(
            "batch, eval_every and checkpoint_every must be at least 1".into(),
        ));
    }
    if config.window_bars == 0 || config.window_bars > config.model.max_bars {
        return Err(Error::Model(format!(
            "window_bars must be 1 to {}",
            config.model.max_bars
        )));
    }
    let candidates = set.windows_of(Split::Train, config.window_bars);
    if candidates.is_empty() {
        return Err(Error::Model(format!(
            "no training piece has {} bars",
            config.window_bars
        )));
    }
    let cumulative =
        weighted_cumulative_windows(set, &candidates, config.window_bars, config.own_song_repeat);
    let eval_batches = evaluation_batches(set, config)?;
    let stem_means = set.stem_means(&config.model);
    let (mut model, mut optimizer, mut state) = start_or_resume(
        out,
        config,
        DIT_CONFIG_FILE,
        DitTrainingConfig::resumes,
        resume,
        start
            .initial
            .unwrap_or_else(|| config.model.init_seeded::<B>(device, config.seed)),
        optimizer::<B>(config),
        device,
    )?;
    let resumed_from = state.step;
    let mut log = open_log(
        &out.join(DIT_LOSS_LOG_FILE),
        DIT_LOSS_LOG_HEADER,
        resume.then_some(resumed_from),
    )?;
    let started = Instant::now();
    let mut last_evaluation = None;
    while state.step < config.steps {
        let batch = training_batch(
            set,
            &config.model,
            &config.masking,
            &candidates,
            &cumulative,
            config.seed,
            state.step,
            config.batch,
            config.window_bars,
        );
        let learning_rate = warmup_cosine(
            state.step,
            config.steps,
            config.warmup_steps,
            config.learning_rate,
        );
        let loss_value;
        (model, loss_value) = train_step(
            model,
            &mut optimizer,
            &config.model,
            &batch,
            decoded,
            learning_rate,
            device,
        );
        state.step += 1;
        state.loss_sum += f64::from(loss_value);
        state.loss_count += 1;
        let mut evaluation = None;
        if state.step.is_multiple_of(config.eval_every) || state.step == config.steps {
            let result = evaluate(
                &model.valid(),
                &config.model,
                &stem_means,
                &eval_batches,
                device,
            )?;
            let train_loss = state.loss_sum / state.loss_count.max(1) as f64;
            writeln!(
                log,
                "{},{train_loss:.6},{:.6},{:.6},{:.6},{:.1}",
                state.step,
                result.flow_loss,
                result.clean_mse,
                result.baseline_clean_mse,
                started.elapsed().as_secs_f64()
            )
            .map_err(|e| Error::io("writing the DiT loss log", e))?;
            state.loss_sum = 0.0;
            state.loss_count = 0;
            evaluation = Some(result);
            last_evaluation = Some(result);
        }
        if state.step.is_multiple_of(config.checkpoint_every) || state.step == config.steps {
            checkpoint::save(out, &model, &optimizer, &state, config.keep_checkpoints)?;
        }
        let go_on = progress(&DitProgress {
            step: state.step,
            steps: config.steps,
            train_loss: f64::from(loss_value),
            evaluation,
        });
        if !go_on {
            // Stopped by the caller: leave a checkpoint to resume from, no final weights.
            checkpoint::save(out, &model, &optimizer, &state, config.keep_checkpoints)?;
            return Ok(DitSummary {
                resumed_from,
                steps: state.step,
                parameters: model.num_params(),
                last_evaluation,
            });
        }
    }
    let parameters = model.num_params();
    model
        .valid()
        .save_safetensors(&config.model, &out.join(DIT_WEIGHTS_FILE))?;
    let card = DitCard {
        model: "refrain DiT",
        weights: DIT_WEIGHTS_FILE,
        config,
        dataset_manifest_sha256: &set.manifest_sha256,
        autoencoder_sha256,
        parameters,
        steps: state.step,
        train_pieces: set.windows_of(Split::Train, 1).len(),
        validation_pieces: set.windows_of(Split::Validation, 1).len(),
        wall_seconds: started.elapsed().as_secs_f64(),
        last_evaluation,
        loss_log: DIT_LOSS_LOG_FILE,
    };
    write_json(&out.join(DIT_CARD_FILE), &card)?;
    Ok(DitSummary {
        resumed_from,
        steps: state.step,
        parameters,
        last_evaluation,
    })
}

/// Writes the newest checkpoint of the run in `out` as `dit.safetensors` (to sample from a
/// run that is still going, or one stopped early); returns its step.
pub fn export_latest_checkpoint<B: Backend>(out: &Path, device: &B::Device) -> Result<u64, Error> {
    let config_path = out.join(DIT_CONFIG_FILE);
    let config = DitTrainingConfig::load(&config_path)
        .map_err(|e| Error::Model(format!("reading {}: {e}", config_path.display())))?;
    let Some(path) = checkpoint::latest(out)? else {
        return Err(Error::Model(format!(
            "{} holds no checkpoint",
            out.display()
        )));
    };
    let (model, state) =
        checkpoint::load_model(&path, config.model.init_seeded::<B>(device, 0), device)?;
    model.save_safetensors(&config.model, &out.join(DIT_WEIGHTS_FILE))?;
    Ok(state.step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::own_song_pieces;
    use crate::model::BarAutoencoderConfig;
    use burn::backend::{Autodiff, Flex};

    type Training = Autodiff<Flex>;

    fn tiny_set() -> LatentSet {
        let device = Default::default();
        let ae_config = BarAutoencoderConfig::new()
            .with_latent_dim(8)
            .with_hidden(32)
            .with_bottleneck_hidden(16);
        let autoencoder = ae_config.init_seeded::<Flex>(&device, 1);
        let mut pieces = own_song_pieces(1);
        for (i, piece) in pieces.iter_mut().enumerate() {
            piece.split = if i % 4 == 0 {
                Split::Validation
            } else {
                Split::Train
            };
        }
        LatentSet::encode(&pieces, &autoencoder, &ae_config, &device, &mut |_| {}).unwrap()
    }

    fn tiny_config(set: &LatentSet, steps: u64) -> DitTrainingConfig {
        let (mean, std) = set.statistics();
        DitTrainingConfig::new(
            DitConfig::new()
                .with_latent_dim(8)
                .with_d_model(32)
                .with_layers(2)
                .with_heads(2)
                .with_max_bars(8)
                .with_latent_mean(mean)
                .with_latent_std(std),
        )
        .with_steps(steps)
        .with_batch(8)
        .with_window_bars(4)
        .with_warmup_steps(5)
        .with_learning_rate(3e-3)
        .with_eval_every(10)
        .with_eval_windows(16)
        .with_checkpoint_every(10)
    }

    /// `train_dit` from a seeded initialisation on the test device, without the decoded terms.
    fn train_from_scratch(
        config: &DitTrainingConfig,
        set: &LatentSet,
        out: &Path,
        resume: bool,
        progress: &mut dyn FnMut(&DitProgress) -> bool,
    ) -> Result<DitSummary, Error> {
        train_dit::<Training>(
            config,
            set,
            "none",
            out,
            resume,
            DitStart::default(),
            &Default::default(),
            progress,
        )
    }

    #[test]
    fn a_tiny_dit_learns_beats_the_mean_baseline_and_resumes_exactly() {
        let set = tiny_set();
        assert!(
            set.pieces
                .iter()
                .all(|p| p.latents.iter().all(|v| v.is_finite()))
        );
        let device = Default::default();
        let dir = tempfile::tempdir().unwrap();
        let straight = dir.path().join("straight");
        let config = tiny_config(&set, 300);
        let mut first_loss = None;
        let summary = train_from_scratch(&config, &set, &straight, false, &mut |p| {
            first_loss.get_or_insert(p.train_loss);
            true
        })
        .unwrap();
        let evaluation = summary.last_evaluation.unwrap();
        assert!(
            evaluation.clean_mse < evaluation.baseline_clean_mse,
            "{evaluation:?}"
        );
        assert!(evaluation.flow_loss < first_loss.unwrap(), "{evaluation:?}");
        // Stop at 17, resume to 40: the same weights as running straight through.
        let config = config.with_steps(40);
        let straight = dir.path().join("straight-40");
        train_from_scratch(&config, &set, &straight, false, &mut |_| true).unwrap();
        let split = dir.path().join("split");
        let stopped =
            train_from_scratch(&config, &set, &split, false, &mut |p| p.step < 17).unwrap();
        assert_eq!(stopped.steps, 17);
        assert!(!split.join(DIT_WEIGHTS_FILE).exists());
        assert!(
            train_from_scratch(&config, &set, &split, false, &mut |_| true).is_err(),
            "an existing run needs --resume"
        );
        let resumed = train_from_scratch(&config, &set, &split, true, &mut |_| true).unwrap();
        assert_eq!(resumed.resumed_from, 17);
        let batch = &evaluation_batches(&set, &config).unwrap()[0];
        let outputs = |run: &Path| {
            let (loaded, dit) =
                Dit::<Flex>::load_safetensors(&run.join(DIT_WEIGHTS_FILE), &device).unwrap();
            assert_eq!(loaded, config.model);
            let (input, _, _) = batch_tensors::<Flex>(&loaded, batch, &device);
            dit.forward(input).into_data()
        };
        assert_eq!(outputs(&straight), outputs(&split));
        // Exporting the checkpoint at 40 gives the same weights as the finished run.
        std::fs::remove_file(split.join(DIT_WEIGHTS_FILE)).unwrap();
        assert_eq!(
            export_latest_checkpoint::<Flex>(&split, &device).unwrap(),
            40
        );
        assert_eq!(outputs(&straight), outputs(&split));
    }
}
