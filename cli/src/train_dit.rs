//! `refrain train dit`: encode a dataset with the trained bar autoencoder and train the
//! diffusion transformer on the latent windows.

use crate::spinner;
use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use refrain_engine::generate::sha256_hex;
use refrain_engine::model::{BarAutoencoder, Dit, DitConfig};
use refrain_engine::train::decoded_terms::DecodedTerms;
use refrain_engine::train::dit::{
    DIT_WEIGHTS_FILE, DitStart, DitSummary, DitTrainingConfig, train_dit,
};
use refrain_engine::train::latents::LatentSet;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct TrainDitArgs {
    /// Dataset folder made by `refrain dataset build`.
    #[arg(long)]
    data: PathBuf,
    /// Trained bar autoencoder (its latents are what the DiT learns to write).
    #[arg(long, default_value = "assets/autoencoder.safetensors")]
    autoencoder: PathBuf,
    /// Run folder: checkpoints, loss.csv, the config and at the end dit.safetensors.
    #[arg(long)]
    out: PathBuf,
    /// Optimiser steps in the whole run.
    #[arg(long, default_value_t = 6000)]
    steps: u64,
    /// Windows per step.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Bars per training window.
    #[arg(long, default_value_t = 8)]
    window_bars: usize,
    /// Seed: weights, windows, masks, times and noise all follow from it.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Transformer width.
    #[arg(long, default_value_t = 192)]
    d_model: usize,
    /// Transformer blocks.
    #[arg(long, default_value_t = 6)]
    layers: usize,
    /// Attention heads (must divide --d-model).
    #[arg(long, default_value_t = 6)]
    heads: usize,
    /// Peak learning rate (AdamW, warm-up then cosine decay to a tenth).
    #[arg(long, default_value_t = 5e-4)]
    learning_rate: f64,
    /// Evaluate on held-out windows and log a loss.csv row every N steps.
    #[arg(long, default_value_t = 250)]
    eval_every: u64,
    /// Write a checkpoint every N steps.
    #[arg(long, default_value_t = 250)]
    checkpoint_every: u64,
    /// Draw windows of the project's own songs (whose harmony is the planner's) this many
    /// times as often as the arranged tunes' windows; may change on --resume.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100))]
    own_song_repeat: u64,
    /// Start from these DiT weights instead of a seeded initialisation (a fine-tune): the
    /// file's architecture and latent normalisation are kept (--d-model, --layers and
    /// --heads are ignored), its onset calibration is dropped (calibrate the result again).
    #[arg(long)]
    init_from: Option<PathBuf>,
    /// Weight of the decoded-onset term: the bar autoencoder's decoder reads the predicted
    /// clean tokens and their onsets are scored against the real bars' (weighted by 1 - t).
    /// 0 leaves it out.
    #[arg(long, default_value_t = 0.0)]
    onset_loss_weight: f32,
    /// Weight of the decoded-groove term: for each stem, each pair of neighbouring bars'
    /// decoded onset-step similarity (the groove consistency of `evaluate dit`) is compared
    /// with the real pair's (weighted by 1 - t). 0 leaves it out.
    #[arg(long, default_value_t = 0.0)]
    groove_loss_weight: f32,
    /// Fit the run to a wall-time budget instead of --steps: time a short probe on this
    /// machine, then train for as many steps as fit in what is left (printed and kept in the
    /// run's config, so `--steps N` with that N repeats the run exactly).
    #[arg(long, conflicts_with_all = ["steps", "resume", "export_checkpoint"])]
    minutes: Option<f64>,
    /// Continue from the newest checkpoint in --out.
    #[arg(long)]
    resume: bool,
    /// Write the newest checkpoint in --out as dit.safetensors and stop (no training).
    #[arg(long)]
    export_checkpoint: bool,
    /// Backend: ndarray (the faster CPU one for the DiT here, in default builds), flex, or cuda
    /// (builds with the cuda feature).
    #[arg(long, value_enum, default_value_t = crate::Backend::FOR_DIT)]
    backend: crate::Backend,
}

/// Steps of the timing probe behind `--minutes`; the first half (kernel compilation,
/// autotuning, warm caches) is not timed.
const PROBE_STEPS: u64 = 60;

pub fn run(args: TrainDitArgs) -> Result<()> {
    let started = Instant::now();
    let device = Default::default();
    if args.export_checkpoint {
        let step = refrain_engine::train::dit::export_latest_checkpoint::<burn::backend::Flex>(
            &args.out, &device,
        )?;
        eprintln!(
            "wrote {} from the checkpoint at step {step}",
            args.out.join(DIT_WEIGHTS_FILE).display()
        );
        return Ok(());
    }
    if matches!(args.backend, crate::backend::Backend::Cuda) {
        crate::backend::check_cuda("--backend cuda")?;
    }
    let (ae_config, autoencoder) =
        BarAutoencoder::<burn::backend::Flex>::load_file(&args.autoencoder, &device)?;
    let ae_bytes = std::fs::read(&args.autoencoder)
        .with_context(|| format!("reading {}", args.autoencoder.display()))?;
    let ae_sha = sha256_hex(&ae_bytes);
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("encoding {pos} pieces ({per_sec}, {elapsed})")
            .expect("static template"),
    );
    let set = LatentSet::read(&args.data, &autoencoder, &ae_config, &device, &mut |done| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    let (mean, std) = set.statistics();
    eprintln!(
        "encoded {} pieces into {}-dimensional tokens",
        set.pieces.len(),
        set.latent_dim
    );
    let (model, init_from) = match &args.init_from {
        Some(path) => {
            let (from, _) = Dit::<burn::backend::Flex>::load_safetensors(path, &device)?;
            if from.latent_dim != ae_config.latent_dim {
                bail!(
                    "{} writes {}-dimensional latents, {} reads {}",
                    path.display(),
                    from.latent_dim,
                    args.autoencoder.display(),
                    ae_config.latent_dim
                );
            }
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            // What `train calibrate` stores is refitted for the new weights.
            let mut uncalibrated = from
                .with_onset_shift(Vec::new())
                .with_onset_shift_by_style(Vec::new())
                .with_rhythm_lift_by_style(Vec::new())
                .with_drum_shift_by_style(Vec::new());
            uncalibrated.set_playing(&[]);
            let record = format!("{} (sha256 {})", path.display(), sha256_hex(&bytes));
            (uncalibrated, Some(record))
        }
        None => (
            DitConfig::new()
                .with_latent_dim(ae_config.latent_dim)
                .with_d_model(args.d_model)
                .with_layers(args.layers)
                .with_heads(args.heads)
                .with_latent_mean(mean)
                .with_latent_std(std),
            None,
        ),
    };
    let config = DitTrainingConfig::new(model)
        .with_steps(args.steps)
        .with_batch(args.batch)
        .with_window_bars(args.window_bars)
        .with_seed(args.seed)
        .with_learning_rate(args.learning_rate)
        .with_eval_every(args.eval_every)
        .with_checkpoint_every(args.checkpoint_every)
        .with_own_song_repeat(args.own_song_repeat)
        .with_onset_loss_weight(args.onset_loss_weight)
        .with_groove_loss_weight(args.groove_loss_weight)
        .with_init_from(init_from);
    let config = match args.minutes {
        Some(minutes) => {
            let steps = steps_for_budget(minutes, started, &config, &set, &ae_sha, &args)?;
            config.with_steps(steps)
        }
        None => config,
    };
    let summary = crate::backend::on_training_backend!(
        args.backend,
        train_on(&config, &set, &ae_sha, &args)
    )?;
    let figures = summary
        .last_evaluation
        .map(|e| {
            format!(
                "held-out clean MSE {:.4} against the mean-latent baseline's {:.4}",
                e.clean_mse, e.baseline_clean_mse
            )
        })
        .unwrap_or_else(|| "no evaluation yet".into());
    eprintln!(
        "trained {} parameters from step {} to {}; {figures}; wrote {}",
        summary.parameters,
        summary.resumed_from,
        summary.steps,
        args.out.join(DIT_WEIGHTS_FILE).display()
    );
    eprintln!(
        "to use it: copy it beside {} into an assets folder, then run `refrain train calibrate \
         --data {} --assets THAT_FOLDER` so its samples decode to real note density",
        args.autoencoder.display(),
        args.data.display()
    );
    Ok(())
}

/// Times a short probe run (thrown away) and returns how many steps of `config` fit in what
/// is left of `minutes` since `started`, in whole hundreds, with a tenth kept back for the
/// evaluations, checkpoints and the final save.
fn steps_for_budget(
    minutes: f64,
    started: Instant,
    config: &DitTrainingConfig,
    set: &LatentSet,
    ae_sha: &str,
    args: &TrainDitArgs,
) -> Result<u64> {
    if !(minutes.is_finite() && minutes > 0.0) {
        bail!("--minutes must be a positive number");
    }
    let probe_dir = args.out.join("probe");
    let probe = config
        .clone()
        .with_steps(PROBE_STEPS)
        .with_eval_every(PROBE_STEPS)
        .with_checkpoint_every(PROBE_STEPS);
    let timing = spinner(&format!(
        "timing {PROBE_STEPS} probe steps of {} windows",
        config.batch
    ));
    let seconds_per_step = crate::backend::on_training_backend!(
        args.backend,
        probe_on(&probe, set, ae_sha, &probe_dir, args)
    )?;
    timing.finish_and_clear();
    std::fs::remove_dir_all(&probe_dir)
        .with_context(|| format!("removing the probe run {}", probe_dir.display()))?;
    let left = minutes * 60.0 - started.elapsed().as_secs_f64();
    let steps = (left * 0.9 / seconds_per_step / 100.0).floor() as u64 * 100;
    if steps < 2 * config.warmup_steps {
        bail!(
            "--minutes {minutes}: at {seconds_per_step:.3} s per step only {steps} steps fit in \
             the {left:.0} s left; give more time"
        );
    }
    eprintln!(
        "{seconds_per_step:.4} s per step of {} windows ({:.0} windows/s); {steps} steps fit in \
         the {left:.0} s left (repeat this run with --steps {steps})",
        config.batch,
        config.batch as f64 / seconds_per_step
    );
    Ok(steps)
}

/// What `train_dit` starts from on backend `B`: the --init-from weights and the frozen
/// decoder for the decoded onset and groove terms, where asked for.
struct LoadedStart<B: burn::tensor::backend::Backend> {
    initial: Option<Dit<B>>,
    decoded: Option<DecodedTerms<B>>,
}

fn loaded_start<B: burn::tensor::backend::Backend>(
    config: &DitTrainingConfig,
    args: &TrainDitArgs,
) -> Result<LoadedStart<B>> {
    let device = B::Device::default();
    let initial = match &args.init_from {
        Some(path) => Some(Dit::<B>::load_safetensors(path, &device)?.1),
        None => None,
    };
    let decoded = if config.decoded_weights()?.is_some() {
        let (ae_config, autoencoder) = BarAutoencoder::<B>::load_file(&args.autoencoder, &device)?;
        Some(DecodedTerms::new(autoencoder, &ae_config))
    } else {
        None
    };
    Ok(LoadedStart { initial, decoded })
}

fn probe_on<B: burn::tensor::backend::AutodiffBackend>(
    config: &DitTrainingConfig,
    set: &LatentSet,
    ae_sha: &str,
    out: &std::path::Path,
    args: &TrainDitArgs,
) -> Result<f64> {
    let timed_from = config.steps / 2;
    let mut marks = (None, None);
    let LoadedStart { initial, decoded } = loaded_start::<B>(config, args)?;
    train_dit::<B>(
        config,
        set,
        ae_sha,
        out,
        false,
        DitStart {
            initial,
            decoded: decoded.as_ref(),
        },
        &B::Device::default(),
        &mut |progress| {
            if progress.step == timed_from {
                marks.0 = Some(Instant::now());
            } else if progress.step == config.steps - 1 {
                marks.1 = Some(Instant::now());
            }
            true
        },
    )?;
    match marks {
        (Some(from), Some(to)) => {
            Ok(to.duration_since(from).as_secs_f64() / (config.steps - 1 - timed_from) as f64)
        }
        _ => bail!("the timing probe stopped early"),
    }
}

fn train_on<B: burn::tensor::backend::AutodiffBackend>(
    config: &DitTrainingConfig,
    set: &LatentSet,
    ae_sha: &str,
    args: &TrainDitArgs,
) -> Result<DitSummary> {
    let mut bar = crate::TrainingBar::new(config.steps);
    let LoadedStart { initial, decoded } = loaded_start::<B>(config, args)?;
    let summary = train_dit::<B>(
        config,
        set,
        ae_sha,
        &args.out,
        args.resume,
        DitStart {
            initial,
            decoded: decoded.as_ref(),
        },
        &B::Device::default(),
        &mut |progress| {
            let evaluation = progress.evaluation.map(|e| {
                format!(
                    "held-out flow loss {:.4}, clean MSE {:.4} (mean baseline {:.4})",
                    e.flow_loss, e.clean_mse, e.baseline_clean_mse
                )
            });
            bar.update(
                progress.step,
                progress.steps,
                progress.train_loss,
                evaluation,
            );
            true
        },
    )?;
    bar.finish();
    Ok(summary)
}
