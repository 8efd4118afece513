//! Training (behind the `train` feature, so sampling code links none of it): the bar
//! autoencoder's loop with AdamW, periodic evaluation (loss and note F1 on held-out bars),
//! a loss log, checkpoints and exact resume.
//!
//! A run is deterministic given its config: weights start from a seeded stream, the batch at
//! any step is a function of (seed, step), and a checkpoint carries everything the loop
//! needs, so stopping and resuming gives the same weights as running straight through.

pub mod calibrate;
pub mod checkpoint;
pub mod data;
pub mod decoded_terms;
pub mod dit;
pub mod latents;
pub mod loss;
pub mod metrics;
pub mod plan_harmony;
pub mod song_density;

use crate::Error;
use crate::model::{BarAutoencoder, BarAutoencoderConfig, BarGrid};
use crate::planes::planes_to_notes;
use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use checkpoint::{AutoencoderOptimizer, LoopState};
use data::{Batch, EpochOrder, StemBar, StemBarSet, evaluation_sample};
use loss::ReconstructionLossConfig;
use metrics::NoteCounts;
use serde::Serialize;
use std::fs;
use std::io::Write;
use std::path::Path;

/// How the bar autoencoder is trained.
#[derive(Config, Debug, PartialEq)]
pub struct AutoencoderTrainingConfig {
    pub model: BarAutoencoderConfig,
    pub loss: ReconstructionLossConfig,
    /// Optimiser steps in the whole run (a resumed run may raise it).
    #[config(default = 20000)]
    pub steps: u64,
    #[config(default = 128)]
    pub batch: usize,
    #[config(default = 0)]
    pub seed: u64,
    /// Peak learning rate, reached after the warm-up and decayed on a cosine to a tenth.
    #[config(default = 1e-3)]
    pub learning_rate: f64,
    #[config(default = 200)]
    pub warmup_steps: u64,
    #[config(default = 1e-4)]
    pub weight_decay: f32,
    /// Evaluate (and log a CSV row) every this many steps.
    #[config(default = 500)]
    pub eval_every: u64,
    /// Held-out stem-bars in each evaluation (a fixed seeded sample).
    #[config(default = 4096)]
    pub eval_bars: usize,
    /// Write a checkpoint every this many steps.
    #[config(default = 500)]
    pub checkpoint_every: u64,
    /// Checkpoints kept on disk (the newest).
    #[config(default = 2)]
    pub keep_checkpoints: usize,
}

impl AutoencoderTrainingConfig {
    /// Learning rate at `step`: linear warm-up, then a cosine from the peak to a tenth of it.
    pub fn learning_rate_at(&self, step: u64) -> f64 {
        warmup_cosine(step, self.steps, self.warmup_steps, self.learning_rate)
    }

    /// Whether a saved config lets this one resume it: everything but the length must match.
    fn resumes(&self, saved: &AutoencoderTrainingConfig) -> bool {
        let mut saved = saved.clone();
        saved.steps = self.steps;
        saved == *self
    }
}

/// Learning rate at `step` of `steps`: linear warm-up to `peak`, then a cosine to a tenth.
pub fn warmup_cosine(step: u64, steps: u64, warmup: u64, peak: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = steps.saturating_sub(warmup).max(1) as f64;
    let done = ((step - warmup) as f64 / span).min(1.0);
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * done).cos());
    peak * (0.1 + 0.9 * cosine)
}

/// Loss and note metrics of the model on held-out stem-bars.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub notes: NoteCounts,
}

/// Where a run stands, reported after every step.
#[derive(Clone, Copy, Debug)]
pub struct TrainProgress {
    pub step: u64,
    pub steps: u64,
    pub train_loss: f64,
    /// Present on the steps that evaluated.
    pub evaluation: Option<Evaluation>,
}

/// What a finished run leaves behind.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSummary {
    /// Step the run started from (0, or the resumed checkpoint's).
    pub resumed_from: u64,
    pub steps: u64,
    pub parameters: usize,
    pub last_evaluation: Option<Evaluation>,
}

/// The model card written beside the weights.
#[derive(Serialize)]
struct ModelCard<'a> {
    model: &'static str,
    weights: &'static str,
    config: &'a AutoencoderTrainingConfig,
    dataset_manifest_sha256: &'a str,
    parameters: usize,
    steps: u64,
    train_stem_bars: usize,
    validation_stem_bars: usize,
    validation_loss: Option<f64>,
    validation_note_f1: Option<f64>,
    validation_note_precision: Option<f64>,
    validation_note_recall: Option<f64>,
    loss_log: &'static str,
}

/// File names inside a run's output folder.
pub const WEIGHTS_FILE: &str = "autoencoder.safetensors";
pub const CARD_FILE: &str = "autoencoder.json";
pub const LOSS_LOG_FILE: &str = "loss.csv";
pub const CONFIG_FILE: &str = "training.json";
const LOSS_LOG_HEADER: &str = "step,train_loss,validation_loss,validation_note_f1";

/// Builds the dense tensors of a batch: planes `[batch, 3, rows, steps]`, mask
/// `[batch, 1, rows, steps]`, stem ids `[batch]`.
pub fn batch_tensors<B: Backend>(
    grid: BarGrid,
    bars: &[&StemBar],
    device: &B::Device,
) -> (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 1, Int>) {
    let batch = Batch::new(grid, bars);
    let n = batch.len;
    let planes = Tensor::from_data(
        TensorData::new(batch.planes, [n, 3, grid.rows, grid.steps]),
        device,
    );
    let mask = Tensor::from_data(
        TensorData::new(batch.mask, [n, 1, grid.rows, grid.steps]),
        device,
    );
    let stems = Tensor::from_data(TensorData::new(batch.stems, [n]), device);
    (planes, mask, stems)
}

/// One optimiser step on one batch; returns the updated model and the batch's loss.
pub fn train_step<B: AutodiffBackend>(
    model: BarAutoencoder<B>,
    optimizer: &mut AutoencoderOptimizer<B>,
    loss: &ReconstructionLossConfig,
    batch: (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 1, Int>),
    learning_rate: f64,
) -> (BarAutoencoder<B>, f32) {
    let (planes, mask, stems) = batch;
    let logits = model.forward(planes.clone(), stems);
    let total = loss.loss(logits, planes, mask).total;
    let value: f32 = total.clone().into_scalar().elem();
    let grads = GradientsParams::from_grads(total.backward(), &model);
    (optimizer.step(learning_rate, model, grads), value)
}

/// The optimiser a run starts with.
pub fn optimizer<B: AutodiffBackend>(
    config: &AutoencoderTrainingConfig,
) -> AutoencoderOptimizer<B> {
    AdamWConfig::new()
        .with_weight_decay(config.weight_decay)
        .init::<B, BarAutoencoder<B>>()
}

/// Reconstructs `bars` and scores them: the mean loss and note-level counts (a note is
/// found when the decoded planes, read through `planes_to_notes` at threshold 0.5, start a
/// note on the same step at the same pitch).
pub fn evaluate<B: Backend>(
    model: &BarAutoencoder<B>,
    grid: BarGrid,
    loss: &ReconstructionLossConfig,
    bars: &[&StemBar],
    batch: usize,
    device: &B::Device,
) -> Result<Evaluation, Error> {
    let mut notes = NoteCounts::default();
    let mut loss_sum = 0.0;
    for chunk in bars.chunks(batch.max(1)) {
        let (planes, mask, stems) = batch_tensors::<B>(grid, chunk, device);
        let logits = model.forward(planes.clone(), stems);
        let chunk_loss: f32 = loss
            .loss(logits.clone(), planes, mask)
            .total
            .into_scalar()
            .elem();
        loss_sum += f64::from(chunk_loss) * chunk.len() as f64;
        let values = model
            .values_from_logits(logits)
            .into_data()
            .to_vec::<f32>()
            .map_err(|e| Error::Model(format!("reading decoded planes: {e:?}")))?;
        for (bar, item) in chunk.iter().zip(values.chunks(grid.values())) {
            let planes = grid.read_planes(item, bar.stem, bar.meter)?;
            notes.add(&planes_to_notes(&[planes]), &bar.onset_notes());
        }
    }
    Ok(Evaluation {
        loss: loss_sum / bars.len().max(1) as f64,
        notes,
    })
}

pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> Result<(), Error> {
    let json = serde_json::to_vec_pretty(value).map_err(|e| Error::Model(e.to_string()))?;
    fs::write(path, json).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Opens the loss log: a fresh one with its header, or (resuming) the old one cut back to
/// the checkpoint's step so rows after it are not logged twice.
pub(crate) fn open_log(
    path: &Path,
    header: &str,
    resumed_at: Option<u64>,
) -> Result<fs::File, Error> {
    let mut text = format!("{header}\n");
    if let Some(step) = resumed_at
        && let Ok(old) = fs::read_to_string(path)
    {
        for line in old.lines().skip(1) {
            let row_step = line.split(',').next().and_then(|s| s.parse::<u64>().ok());
            if row_step.is_some_and(|s| s <= step) {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))
}

/// Starts a run in `out` or resumes its newest checkpoint: without `resume` an existing
/// checkpoint is an error (a run is never overwritten by accident); with it the saved config
/// must `match` this one. Saves `config` as `config_file` and returns the loop's start.
#[allow(clippy::too_many_arguments)]
pub(crate) fn start_or_resume<B, M, C>(
    out: &Path,
    config: &C,
    config_file: &str,
    compatible: impl Fn(&C, &C) -> bool,
    resume: bool,
    model: M,
    optimizer: checkpoint::ModelOptimizer<M, B>,
    device: &B::Device,
) -> Result<(M, checkpoint::ModelOptimizer<M, B>, LoopState), Error>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    C: burn::config::Config,
{
    fs::create_dir_all(out).map_err(|e| Error::io(format!("creating {}", out.display()), e))?;
    let config_path = out.join(config_file);
    let fresh = LoopState {
        step: 0,
        loss_sum: 0.0,
        loss_count: 0,
    };
    let started = match (resume, checkpoint::latest(out)?) {
        (true, Some(path)) => {
            // Fields added since the run started take this run's values.
            let saved: C = fs::read_to_string(&config_path)
                .map_err(|e| e.to_string())
                .and_then(|text| crate::model::json_over(config, &text).map_err(|e| e.to_string()))
                .map_err(|e| Error::Model(format!("reading {}: {e}", config_path.display())))?;
            if !compatible(config, &saved) {
                return Err(Error::Model(format!(
                    "{} was trained with another config or dataset (only --steps may change on \
                     resume)",
                    out.display()
                )));
            }
            checkpoint::load(&path, model, optimizer, device)?
        }
        (false, Some(path)) => {
            return Err(Error::Model(format!(
                "{} already holds a run (checkpoint {}); pass --resume to continue it or choose \
                 another folder",
                out.display(),
                path.display()
            )));
        }
        (_, None) => (model, optimizer, fresh),
    };
    config
        .save(&config_path)
        .map_err(|e| Error::io(format!("writing {}", config_path.display()), e))?;
    Ok(started)
}

/// Trains the bar autoencoder on `data`, writing into `out`: `training.json` (the config),
/// `loss.csv`, `checkpoints/step-N/`, and at the end `autoencoder.safetensors` with its
/// model card `autoencoder.json`.
///
/// With `resume`, continues from the newest checkpoint in `out` (the config must match but
/// for `steps`); without it, `out` must hold no checkpoints, so a run is never overwritten by
/// accident.
pub fn train_autoencoder<B: AutodiffBackend>(
    config: &AutoencoderTrainingConfig,
    data: &StemBarSet,
    out: &Path,
    resume: bool,
    device: &B::Device,
    progress: &mut dyn FnMut(&TrainProgress),
) -> Result<TrainSummary, Error> {
    if data.train.is_empty() || data.validation.is_empty() {
        return Err(Error::Model(
            "training needs training and validation stem-bars".into(),
        ));
    }
    if config.batch == 0 || config.eval_every == 0 || config.checkpoint_every == 0 {
        return Err(Error::Model(
            "batch, eval_every and checkpoint_every must be at least 1".into(),
        ));
    }
    let grid = config.model.grid();
    if let Some(bar) = data
        .train
        .iter()
        .chain(&data.validation)
        .find(|b| !grid.fits(b.stem, b.meter))
    {
        return Err(Error::Model(format!(
            "a {} bar in {} does not fit the model's {} x {} grid",
            bar.stem, bar.meter, grid.rows, grid.steps
        )));
    }
    let (mut model, mut optimizer, mut state) = start_or_resume(
        out,
        config,
        CONFIG_FILE,
        AutoencoderTrainingConfig::resumes,
        resume,
        config.model.init_seeded::<B>(device, config.seed),
        optimizer::<B>(config),
        device,
    )?;
    let resumed_from = state.step;
    let mut log = open_log(
        &out.join(LOSS_LOG_FILE),
        LOSS_LOG_HEADER,
        resume.then_some(resumed_from),
    )?;
    let mut order = EpochOrder::new(config.seed, data.train.len());
    let eval_bars: Vec<&StemBar> = evaluation_sample(data, config.eval_bars, config.seed)
        .into_iter()
        .map(|i| &data.validation[i])
        .collect();
    let mut last_evaluation = None;
    while state.step < config.steps {
        let indices = order.batch(state.step, config.batch);
        let bars: Vec<&StemBar> = indices.iter().map(|&i| &data.train[i]).collect();
        let batch = batch_tensors::<B>(grid, &bars, device);
        let learning_rate = config.learning_rate_at(state.step);
        let loss_value;
        (model, loss_value) = train_step(model, &mut optimizer, &config.loss, batch, learning_rate);
        state.step += 1;
        state.loss_sum += f64::from(loss_value);
        state.loss_count += 1;
        let mut evaluation = None;
        if state.step.is_multiple_of(config.eval_every) || state.step == config.steps {
            let result = evaluate(
                &model.valid(),
                grid,
                &config.loss,
                &eval_bars,
                config.batch,
                device,
            )?;
            let train_loss = state.loss_sum / state.loss_count.max(1) as f64;
            writeln!(
                log,
                "{},{train_loss:.6},{:.6},{:.6}",
                state.step,
                result.loss,
                result.notes.f1()
            )
            .map_err(|e| Error::io(format!("writing {}", out.join(LOSS_LOG_FILE).display()), e))?;
            state.loss_sum = 0.0;
            state.loss_count = 0;
            evaluation = Some(result);
            last_evaluation = Some(result);
        }
        if state.step.is_multiple_of(config.checkpoint_every) || state.step == config.steps {
            checkpoint::save(out, &model, &optimizer, &state, config.keep_checkpoints)?;
        }
        progress(&TrainProgress {
            step: state.step,
            steps: config.steps,
            train_loss: f64::from(loss_value),
            evaluation,
        });
    }
    let parameters = model.num_params();
    model
        .valid()
        .save_safetensors(&config.model, &out.join(WEIGHTS_FILE))?;
    let card = ModelCard {
        model: "refrain bar autoencoder",
        weights: WEIGHTS_FILE,
        config,
        dataset_manifest_sha256: &data.manifest_sha256,
        parameters,
        steps: state.step,
        train_stem_bars: data.train.len(),
        validation_stem_bars: data.validation.len(),
        validation_loss: last_evaluation.map(|e| e.loss),
        validation_note_f1: last_evaluation.map(|e| e.notes.f1()),
        validation_note_precision: last_evaluation.map(|e| e.notes.precision()),
        validation_note_recall: last_evaluation.map(|e| e.notes.recall()),
        loss_log: LOSS_LOG_FILE,
    };
    write_json(&out.join(CARD_FILE), &card)?;
    Ok(TrainSummary {
        resumed_from,
        steps: state.step,
        parameters,
        last_evaluation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BarAutoencoder;
    use burn::backend::{Autodiff, Flex};
    use data::StemBarOptions;
    use data::tests::fixture_pieces;

    type Training = Autodiff<Flex>;

    fn tiny_model() -> BarAutoencoderConfig {
        BarAutoencoderConfig::new()
            .with_latent_dim(16)
            .with_hidden(128)
            .with_bottleneck_hidden(64)
    }

    /// `count` stem-bars with notes, from different stems, as both training and validation
    /// data: what a model that can learn at all must reproduce exactly.
    fn handful(count: usize) -> StemBarSet {
        let mut all = StemBarSet::default();
        for piece in fixture_pieces().iter().take(3) {
            all.add_piece(piece, &StemBarOptions::default()).unwrap();
        }
        let mut picked: Vec<StemBar> = Vec::new();
        for bar in all.train.iter().chain(&all.validation) {
            let stems_seen = picked.iter().filter(|b| b.stem == bar.stem).count();
            if bar.onsets.len() >= 2 && stems_seen < count.div_ceil(5) && picked.len() < count {
                picked.push(bar.clone());
            }
        }
        assert_eq!(picked.len(), count);
        StemBarSet {
            train: picked.clone(),
            validation: picked,
            pieces: all.pieces,
            empty_skipped: 0,
            manifest_sha256: String::new(),
        }
    }

    #[test]
    fn a_tiny_autoencoder_overfits_a_handful_of_bars_exactly() {
        let data = handful(10);
        let config = AutoencoderTrainingConfig::new(tiny_model(), ReconstructionLossConfig::new())
            .with_steps(300)
            .with_batch(10)
            .with_learning_rate(3e-3)
            .with_warmup_steps(20)
            .with_eval_every(300)
            .with_checkpoint_every(300);
        let dir = tempfile::tempdir().unwrap();
        let summary = train_autoencoder::<Training>(
            &config,
            &data,
            dir.path(),
            false,
            &Default::default(),
            &mut |_| {},
        )
        .unwrap();
        let evaluation = summary.last_evaluation.unwrap();
        assert!(evaluation.notes.true_positives > 20, "{evaluation:?}");
        assert_eq!(evaluation.notes.f1(), 1.0, "{evaluation:?}");
        // The shipped weights decode the same.
        let loaded = BarAutoencoder::<Flex>::load_safetensors(
            &config.model,
            &dir.path().join(WEIGHTS_FILE),
            &Default::default(),
        )
        .unwrap();
        let bars: Vec<&StemBar> = data.validation.iter().collect();
        let again = evaluate(
            &loaded,
            config.model.grid(),
            &config.loss,
            &bars,
            4,
            &Default::default(),
        )
        .unwrap();
        assert_eq!(again.notes, evaluation.notes);
        assert!(dir.path().join(CARD_FILE).is_file());
    }

    #[test]
    fn resuming_from_a_checkpoint_continues_exactly() {
        let data = handful(6);
        let config = AutoencoderTrainingConfig::new(tiny_model(), ReconstructionLossConfig::new())
            .with_steps(6)
            .with_batch(4)
            .with_warmup_steps(2)
            .with_eval_every(2)
            .with_checkpoint_every(3)
            .with_keep_checkpoints(2);
        let device = Default::default();
        let straight = tempfile::tempdir().unwrap();
        train_autoencoder::<Training>(&config, &data, straight.path(), false, &device, &mut |_| {})
            .unwrap();
        // Without --resume an existing run is refused, not overwritten.
        assert!(
            train_autoencoder::<Training>(
                &config,
                &data,
                straight.path(),
                false,
                &device,
                &mut |_| {}
            )
            .is_err()
        );
        // A run "interrupted" after step 3: its checkpoint, config and log up to then.
        let interrupted = tempfile::tempdir().unwrap();
        let name = "step-000000003";
        let from = straight.path().join("checkpoints").join(name);
        let to = interrupted.path().join("checkpoints").join(name);
        fs::create_dir_all(&to).unwrap();
        for entry in fs::read_dir(&from).unwrap() {
            let entry = entry.unwrap();
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
        for file in [CONFIG_FILE, LOSS_LOG_FILE] {
            fs::copy(straight.path().join(file), interrupted.path().join(file)).unwrap();
        }
        let summary = train_autoencoder::<Training>(
            &config,
            &data,
            interrupted.path(),
            true,
            &device,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(summary.resumed_from, 3);
        let log = |dir: &Path| fs::read_to_string(dir.join(LOSS_LOG_FILE)).unwrap();
        assert_eq!(log(interrupted.path()), log(straight.path()));
        assert_eq!(log(straight.path()).lines().count(), 4);
        let load = |dir: &Path| {
            BarAutoencoder::<Flex>::load_safetensors(
                &config.model,
                &dir.join(WEIGHTS_FILE),
                &device,
            )
            .unwrap()
        };
        let bars: Vec<&StemBar> = data.validation.iter().collect();
        let (planes, _, stems) = batch_tensors::<Flex>(config.model.grid(), &bars, &device);
        let a = load(straight.path())
            .forward(planes.clone(), stems.clone())
            .into_data();
        let b = load(interrupted.path()).forward(planes, stems).into_data();
        assert_eq!(a, b);
        // A changed config cannot resume the run.
        let other = config.clone().with_learning_rate(0.5);
        assert!(
            train_autoencoder::<Training>(
                &other,
                &data,
                interrupted.path(),
                true,
                &device,
                &mut |_| {}
            )
            .is_err()
        );
    }

    #[test]
    fn the_learning_rate_warms_up_then_decays_to_a_tenth() {
        let config = AutoencoderTrainingConfig::new(tiny_model(), ReconstructionLossConfig::new())
            .with_steps(1000)
            .with_warmup_steps(100)
            .with_learning_rate(1e-3);
        assert!((config.learning_rate_at(0) - 1e-5).abs() < 1e-12);
        assert!((config.learning_rate_at(100) - 1e-3).abs() < 1e-12);
        assert!((config.learning_rate_at(1000) - 1e-4).abs() < 1e-12);
    }
}
