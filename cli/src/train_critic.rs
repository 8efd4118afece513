//! `refrain train critic`: train the critic on real windows of a dataset against hard
//! negatives (corruptions of real windows and the DiT's own weak samples), calibrate it on
//! pieces it never trained on, and measure it on held-out pieces.

use anyhow::{Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use refrain_engine::writer::{self, Models};
use refrain_scorer::critic::CriticConfig;
use refrain_scorer::critic::train::{
    CriticCorpus, CriticEvaluation, CriticTrainingConfig, WeakPools, train_critic, weak_samples,
};
use std::path::PathBuf;

#[derive(Args)]
pub struct TrainCriticArgs {
    /// Dataset folder made by `refrain dataset build`.
    #[arg(long)]
    data: PathBuf,
    /// Run folder: checkpoints, loss.csv, and at the end critic.safetensors (calibrated) and
    /// critic-evaluation.json.
    #[arg(long)]
    out: PathBuf,
    /// Assets folder with the DiT and autoencoder whose early denoising estimates become weak
    /// samples (default: $REFRAIN_ASSETS, else the repository's assets/).
    #[arg(long)]
    assets: Option<PathBuf>,
    /// An earlier DiT weights file (e.g. a checkpoint exported from a shorter run) whose
    /// finished samples are weak samples too; may be given several times.
    #[arg(long)]
    weak_dit: Vec<PathBuf>,
    /// Weak samples for training (a third as many more for calibration and for testing);
    /// 0 trains on the corruptions alone and needs no models.
    #[arg(long, default_value_t = 1200)]
    weak_samples: usize,
    /// Optimiser steps.
    #[arg(long, default_value_t = 3000)]
    steps: u64,
    /// Real windows per step (as many negatives join them).
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Transformer width.
    #[arg(long, default_value_t = 96)]
    d_model: usize,
    /// Transformer blocks.
    #[arg(long, default_value_t = 3)]
    layers: usize,
    /// Attention heads (must divide --d-model).
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Peak learning rate (AdamW, warm-up then cosine decay to a tenth).
    #[arg(long, default_value_t = 1e-3)]
    learning_rate: f64,
    /// Evaluate on held-out pieces, log and checkpoint every N steps.
    #[arg(long, default_value_t = 250)]
    eval_every: u64,
    /// Held-out windows per kind (real and each negative type) for the evaluation.
    #[arg(long, default_value_t = 400)]
    eval_windows: usize,
    /// Seed: weights, windows and negatives all follow from it.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Continue from the newest checkpoint in --out.
    #[arg(long)]
    resume: bool,
    /// Share of the assets' DiT's single finished candidates the acceptance threshold turns
    /// away (measured on calibration pieces' conditions); with several candidates per
    /// segment, whole segments fail far less often. 0 keeps the threshold at the 10th
    /// percentile of real windows' scores.
    #[arg(long, default_value_t = 0.25)]
    reject_share: f64,
    /// Backend for training: ndarray (default where built), flex, or cuda (builds with the
    /// cuda feature).
    #[arg(long, value_enum, default_value_t = crate::Backend::FOR_DIT)]
    backend: crate::Backend,
}

pub fn run(args: TrainCriticArgs) -> Result<()> {
    if matches!(args.backend, crate::backend::Backend::Cuda) {
        crate::backend::check_cuda("--backend cuda")?;
    }
    if !args.resume && args.out.join("checkpoints").is_dir() {
        bail!(
            "{} already holds a critic run; pass --resume to continue it or choose another --out",
            args.out.display()
        );
    }
    let config = CriticTrainingConfig {
        model: CriticConfig::new()
            .with_d_model(args.d_model)
            .with_layers(args.layers)
            .with_heads(args.heads),
        steps: args.steps,
        batch: args.batch,
        learning_rate: args.learning_rate,
        seed: args.seed,
        evaluate_every: args.eval_every.max(1),
        evaluation_per_kind: args.eval_windows,
        ..CriticTrainingConfig::default()
    };
    config.model.validate()?;
    let corpus = CriticCorpus::read(&args.data, config.window_bars)?;
    eprintln!(
        "pieces: {} training, {} calibration, {} held out",
        corpus.train.len(),
        corpus.calibration.len(),
        corpus.held_out.len()
    );
    let weak = if args.weak_samples == 0 {
        WeakPools::default()
    } else {
        make_weak_pools(&args, &corpus, &config)?
    };
    let evaluation = crate::backend::on_training_backend!(
        args.backend,
        train_on(&corpus, &weak, &config, &args)
    )?;
    if args.reject_share > 0.0 {
        set_threshold(&args, &corpus, &config)?;
    }
    for (kind, auc, count) in &evaluation.auc_by_kind {
        eprintln!("  held-out ROC-AUC against {kind}: {auc:.4} ({count} windows)");
    }
    eprintln!(
        "calibration error (ECE) {:.4} -> {:.4} after calibration; {:.0}% of held-out real \
         windows pass; wrote {}",
        evaluation.ece_raw,
        evaluation.ece_calibrated,
        evaluation.real_pass_rate * 100.0,
        args.out.join(refrain_scorer::CRITIC_FILE).display()
    );
    Ok(())
}

/// Weak samples: early denoising estimates of the assets' DiT, and finished samples of every
/// `--weak-dit`.
fn make_weak_pools(
    args: &TrainCriticArgs,
    corpus: &CriticCorpus,
    config: &CriticTrainingConfig,
) -> Result<WeakPools> {
    let assets = args
        .assets
        .clone()
        .unwrap_or_else(writer::default_assets_dir);
    let device = Default::default();
    let mut sources: Vec<(Models<writer::CpuBackend>, Vec<usize>)> = Vec::new();
    let shipped = Models::<writer::CpuBackend>::load(&assets, &device)?;
    for path in &args.weak_dit {
        let models = Models::<writer::CpuBackend>::load_files(
            &assets.join(writer::AUTOENCODER_FILE),
            path,
            &device,
        )?;
        sources.push((
            models,
            vec![writer::WriterSettings::default().sampler.steps],
        ));
    }
    sources.insert(0, (shipped, vec![1, 2, 3]));
    let share = |total: usize| total.div_ceil(sources.len());
    let bar = ProgressBar::new((args.weak_samples * 5 / 3) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} weak samples ({per_sec}, eta {eta})")
            .expect("static template"),
    );
    let mut pools = WeakPools::default();
    let mut done = 0u64;
    for (i, (models, stops)) in sources.iter().enumerate() {
        for (pool, pieces, count, salt) in [
            (&mut pools.train, &corpus.train, args.weak_samples, 1u64),
            (
                &mut pools.calibration,
                &corpus.calibration,
                args.weak_samples / 3,
                2,
            ),
            (
                &mut pools.held_out,
                &corpus.held_out,
                args.weak_samples / 3,
                3,
            ),
        ] {
            let seed = config.seed ^ (salt << 32) ^ (i as u64) << 40;
            let made = weak_samples(
                models,
                pieces,
                config.window_bars,
                share(count),
                stops,
                seed,
                &mut |n| bar.set_position(done + n as u64),
            )?;
            done += made.len() as u64;
            pool.extend(made);
        }
    }
    bar.finish_and_clear();
    eprintln!(
        "weak samples: {} training, {} calibration, {} held out",
        pools.train.len(),
        pools.calibration.len(),
        pools.held_out.len()
    );
    Ok(pools)
}

/// Scores finished samples of the assets' DiT under calibration pieces' conditions and sets
/// the critic's threshold at the `--reject-share` quantile of their overall scores.
fn set_threshold(
    args: &TrainCriticArgs,
    corpus: &CriticCorpus,
    config: &CriticTrainingConfig,
) -> Result<()> {
    use refrain_engine::critic::Candidate;
    use refrain_scorer::LearnedCritic;
    let assets = args
        .assets
        .clone()
        .unwrap_or_else(writer::default_assets_dir);
    let device = Default::default();
    let models = Models::<writer::CpuBackend>::load(&assets, &device)?;
    let steps = writer::WriterSettings::default().sampler.steps;
    let samples = weak_samples(
        &models,
        &corpus.calibration,
        config.window_bars,
        256,
        &[steps],
        config.seed ^ 0x7e5,
        &mut |_| {},
    )?;
    let critic = LearnedCritic::<writer::CpuBackend>::load(&args.out, &device)?;
    let candidates: Vec<Candidate> = samples
        .into_iter()
        .map(|e| Candidate {
            song: e.song,
            mood: e.mood,
            written: e.written,
        })
        .collect();
    let mut scores: Vec<f32> = critic
        .probabilities(&candidates)?
        .into_iter()
        .map(|p| p[0])
        .collect();
    scores.sort_by(f32::total_cmp);
    let at = ((args.reject_share.clamp(0.0, 1.0) * scores.len() as f64) as usize)
        .min(scores.len().saturating_sub(1));
    let threshold = scores[at];
    let median = scores[scores.len() / 2];
    let path = args.out.join(refrain_scorer::CRITIC_FILE);
    let partial = args
        .out
        .join(format!("{}.partial", refrain_scorer::CRITIC_FILE));
    critic
        .model
        .save_safetensors(&critic.config.clone().with_threshold(threshold), &partial)?;
    std::fs::rename(&partial, &path)?;
    let report_path = args.out.join("critic-evaluation.json");
    let mut report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_path)?)?;
    report["threshold"] = serde_json::json!(threshold);
    report["dit_samples_scored"] = serde_json::json!(scores.len());
    report["dit_sample_median_overall"] = serde_json::json!(median);
    report["dit_sample_reject_share"] = serde_json::json!(args.reject_share);
    std::fs::write(&report_path, serde_json::to_vec_pretty(&report)?)?;
    eprintln!(
        "threshold {threshold:.3}: turns away {:.0}% of single finished DiT candidates (their \
         median scores {median:.3})",
        args.reject_share * 100.0
    );
    Ok(())
}

fn train_on<B: burn::tensor::backend::AutodiffBackend>(
    corpus: &CriticCorpus,
    weak: &WeakPools,
    config: &CriticTrainingConfig,
    args: &TrainCriticArgs,
) -> Result<CriticEvaluation> {
    let mut bar = crate::TrainingBar::new(config.steps);
    let (_, evaluation) = train_critic::<B>(
        corpus,
        weak,
        config,
        &args.out,
        &B::Device::default(),
        &mut |progress| {
            let evaluation = progress.evaluation.as_ref().map(|e| {
                let mean = e.auc_by_kind.iter().map(|k| k.1).sum::<f64>()
                    / e.auc_by_kind.len().max(1) as f64;
                let worst = e
                    .auc_by_kind
                    .iter()
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|k| format!("{} {:.3}", k.0, k.1))
                    .unwrap_or_default();
                format!(
                    "held-out loss {:.4}, mean AUC {mean:.4}, lowest {worst}",
                    e.loss
                )
            });
            bar.update(progress.step, progress.steps, progress.loss, evaluation);
        },
    )?;
    bar.finish();
    Ok(evaluation)
}
