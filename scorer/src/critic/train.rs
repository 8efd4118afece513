//! Training the critic (`refrain train critic`): real windows of the corpus against hard
//! negatives (the corruptions of [`super::negatives`] and the DiT's own weak samples), split
//! by piece into training, calibration and held-out pieces; then Platt calibration on the
//! calibration pieces, and ROC-AUC per negative type and calibration error on the held-out
//! ones.
//!
//! A batch is a pure function of (seed, step), so a resumed run continues exactly.

use super::model::{CriticBatch, CriticConfig, CriticModel, OUTPUTS, sigmoid};
use super::negatives::{Example, NegativeKind, corrupt};
use super::tokens::{CriticInput, critic_input};
use crate::Error;
use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use refrain_engine::critic::{ASPECTS, Candidate};
use refrain_engine::dataset::{self, Split};
use refrain_engine::generate::sha256_hex;
use refrain_engine::model::conditions::{SongConditions, bar_conditions};
use refrain_engine::model::sampler::{Denoising, FlowSampler, Window, window_noise};
use refrain_engine::music::{Instrument, Mood, Song, Stem};
use refrain_engine::train::checkpoint::{self, LoopState, ModelOptimizer};
use refrain_engine::train::warmup_cosine;
use refrain_engine::writer::{Models, WriterSettings, decode_windows};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How the critic is trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CriticTrainingConfig {
    pub model: CriticConfig,
    pub steps: u64,
    /// Real windows per batch; as many negatives join them.
    pub batch: usize,
    pub learning_rate: f64,
    pub warmup: u64,
    pub weight_decay: f32,
    pub seed: u64,
    /// Bars per window (the writer's window).
    pub window_bars: u32,
    /// Weight of the aspect outputs' loss against the overall one.
    pub aspect_weight: f32,
    pub evaluate_every: u64,
    /// Held-out examples per kind (real, and each negative type) for evaluation.
    pub evaluation_per_kind: usize,
}

impl Default for CriticTrainingConfig {
    fn default() -> Self {
        CriticTrainingConfig {
            model: CriticConfig::new(),
            steps: 3000,
            batch: 64,
            learning_rate: 1e-3,
            warmup: 100,
            weight_decay: 0.01,
            seed: 0,
            window_bars: 8,
            aspect_weight: 0.5,
            evaluate_every: 250,
            evaluation_per_kind: 400,
        }
    }
}

/// One corpus piece as the critic trains on it.
#[derive(Clone, Debug)]
pub struct PieceSong {
    pub song: Song,
    pub mood: Mood,
}

/// The corpus split by piece: training, calibration (a tenth of the training sources, never
/// trained on) and held-out (the dataset's validation split).
#[derive(Clone, Debug, Default)]
pub struct CriticCorpus {
    pub train: Vec<PieceSong>,
    pub calibration: Vec<PieceSong>,
    pub held_out: Vec<PieceSong>,
    pub manifest_sha256: String,
}

impl CriticCorpus {
    /// Reads a built dataset; pieces shorter than `bars` are left out.
    pub fn read(dir: &Path, bars: u32) -> Result<CriticCorpus, Error> {
        let (manifest, bytes) = dataset::read_manifest(dir)?;
        let mut corpus = CriticCorpus {
            manifest_sha256: sha256_hex(&bytes),
            ..CriticCorpus::default()
        };
        dataset::for_each_piece(dir, &manifest, |piece| {
            if piece.bars < bars {
                return Ok(());
            }
            let entry = PieceSong {
                song: piece.to_song(),
                mood: piece.mood,
            };
            match piece.split {
                Split::Validation => corpus.held_out.push(entry),
                Split::Train if sha256_hex(piece.source.as_bytes()).ends_with('0') => {
                    // One source in sixteen: calibration pieces.
                    corpus.calibration.push(entry)
                }
                Split::Train => corpus.train.push(entry),
            }
            Ok(())
        })?;
        // A small corpus may hash no source into calibration: lend it one training piece.
        if corpus.calibration.is_empty() && corpus.train.len() >= 2 {
            corpus.calibration.extend(corpus.train.pop());
        }
        if corpus.train.is_empty() || corpus.calibration.is_empty() || corpus.held_out.is_empty() {
            return Err(Error::Model(format!(
                "the dataset in {} has too few pieces of {bars} bars or more to train, calibrate \
                 and test a critic ({} training, {} calibration, {} held out)",
                dir.display(),
                corpus.train.len(),
                corpus.calibration.len(),
                corpus.held_out.len()
            )));
        }
        Ok(corpus)
    }
}

/// A real window of a random piece: the first window of a song, or a continuation with
/// half the window as context (as the writer makes them).
pub fn draw_real(rng: &mut ChaCha8Rng, pieces: &[PieceSong], bars: u32) -> Example {
    let piece = &pieces[rng.random_range(0..pieces.len())];
    let start = rng.random_range(0..=piece.song.bars - bars);
    let written = if rng.random_bool(0.4) {
        0..bars
    } else {
        bars / 2..bars
    };
    Example {
        song: piece.song.excerpt(start..start + bars),
        mood: piece.mood,
        written,
    }
}

/// A negative: a random kind (weak samples only when `weak` has some) made from a fresh real
/// window.
pub fn draw_negative(
    rng: &mut ChaCha8Rng,
    pieces: &[PieceSong],
    weak: &[Example],
    bars: u32,
) -> (Example, NegativeKind) {
    let kinds = NegativeKind::SYNTHETIC.len() + usize::from(!weak.is_empty());
    loop {
        let pick = rng.random_range(0..kinds);
        if pick == NegativeKind::SYNTHETIC.len() {
            return (
                weak[rng.random_range(0..weak.len())].clone(),
                NegativeKind::WeakSample,
            );
        }
        if let Some(found) = draw_kind(rng, pieces, NegativeKind::SYNTHETIC[pick], bars) {
            return (found, NegativeKind::SYNTHETIC[pick]);
        }
    }
}

/// A negative of one synthetic kind, or `None` after a few windows that cannot show it.
fn draw_kind(
    rng: &mut ChaCha8Rng,
    pieces: &[PieceSong],
    kind: NegativeKind,
    bars: u32,
) -> Option<Example> {
    for _ in 0..16 {
        let real = draw_real(rng, pieces, bars);
        let mut donor = draw_real(rng, pieces, bars);
        for _ in 0..8 {
            if donor.song.meter == real.song.meter {
                break;
            }
            donor = draw_real(rng, pieces, bars);
        }
        donor.written = real.written.clone();
        if let Some(spoiled) = corrupt(kind, &real, &donor, rng) {
            return Some(spoiled);
        }
    }
    None
}

/// Targets and weights of one example: overall, then aspects; weight 0 where unknown.
fn labels(kind: Option<NegativeKind>, aspect_weight: f32) -> ([f32; OUTPUTS], [f32; OUTPUTS]) {
    let mut target = [1.0; OUTPUTS];
    let mut weight = [aspect_weight; OUTPUTS];
    weight[0] = 1.0;
    if let Some(kind) = kind {
        target[0] = 0.0;
        for (i, label) in kind.aspect_labels().into_iter().enumerate() {
            match label {
                Some(l) => target[1 + i] = l,
                None => weight[1 + i] = 0.0,
            }
        }
    }
    (target, weight)
}

fn input(example: &Example) -> CriticInput {
    critic_input(&Candidate {
        song: example.song.clone(),
        mood: example.mood,
        written: example.written.clone(),
    })
}

/// The training batch for `step`: `batch` real windows and `batch` negatives.
pub fn training_batch(
    corpus: &CriticCorpus,
    weak: &[Example],
    config: &CriticTrainingConfig,
    step: u64,
) -> Vec<(CriticInput, Option<NegativeKind>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut out = Vec::with_capacity(2 * config.batch);
    for _ in 0..config.batch {
        out.push((
            input(&draw_real(&mut rng, &corpus.train, config.window_bars)),
            None,
        ));
        let (negative, kind) = draw_negative(&mut rng, &corpus.train, weak, config.window_bars);
        out.push((input(&negative), Some(kind)));
    }
    out
}

/// Mean weighted binary cross-entropy of logits against targets.
fn loss<B: Backend>(
    logits: Tensor<B, 2>,
    target: Tensor<B, 2>,
    weight: Tensor<B, 2>,
) -> Tensor<B, 1> {
    // max(z, 0) - z y + log(1 + exp(-|z|))
    let per = logits.clone().clamp_min(0.0) - logits.clone() * target
        + (logits.abs().neg().exp() + 1.0).log();
    (per * weight.clone()).sum() / weight.sum().clamp_min(1e-6)
}

fn targets<B: Backend>(
    examples: &[(CriticInput, Option<NegativeKind>)],
    aspect_weight: f32,
    device: &B::Device,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let (mut target, mut weight) = (Vec::new(), Vec::new());
    for (_, kind) in examples {
        let (t, w) = labels(*kind, aspect_weight);
        target.extend(t);
        weight.extend(w);
    }
    let shape = [examples.len(), OUTPUTS];
    (
        Tensor::from_data(TensorData::new(target, shape), device),
        Tensor::from_data(TensorData::new(weight, shape), device),
    )
}

/// A held-out set: `per_kind` real windows and `per_kind` of every negative kind (weak
/// samples from `weak`), drawn from `pieces` with `seed`.
pub fn evaluation_set(
    pieces: &[PieceSong],
    weak: &[Example],
    bars: u32,
    per_kind: usize,
    seed: u64,
) -> Vec<(CriticInput, Option<NegativeKind>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for _ in 0..per_kind {
        out.push((input(&draw_real(&mut rng, pieces, bars)), None));
    }
    for kind in NegativeKind::SYNTHETIC {
        for _ in 0..per_kind {
            if let Some(example) = draw_kind(&mut rng, pieces, kind, bars) {
                out.push((input(&example), Some(kind)));
            }
        }
    }
    for example in weak.iter().take(per_kind) {
        out.push((input(example), Some(NegativeKind::WeakSample)));
    }
    out
}

/// Raw logits `[OUTPUTS]` per example, in batches.
pub fn logits<B: Backend>(
    model: &CriticModel<B>,
    examples: &[(CriticInput, Option<NegativeKind>)],
    device: &B::Device,
) -> Result<Vec<[f32; OUTPUTS]>, Error> {
    let mut out = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(256) {
        let inputs: Vec<&CriticInput> = chunk.iter().map(|(i, _)| i).collect();
        let values = model
            .forward(CriticBatch::new(&inputs, device)?)
            .into_data()
            .to_vec::<f32>()
            .map_err(|e| Error::Model(format!("reading logits: {e:?}")))?;
        out.extend(
            values
                .chunks(OUTPUTS)
                .map(|c| <[f32; OUTPUTS]>::try_from(c).expect("OUTPUTS")),
        );
    }
    Ok(out)
}

/// Area under the ROC curve: the chance a positive scores above a negative (ties half).
pub fn roc_auc(positives: &[f32], negatives: &[f32]) -> f64 {
    if positives.is_empty() || negatives.is_empty() {
        return f64::NAN;
    }
    let mut all: Vec<(f32, bool)> = positives
        .iter()
        .map(|&s| (s, true))
        .chain(negatives.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Mann-Whitney U with average ranks for ties.
    let mut rank_sum = 0f64;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let rank = (i + j + 1) as f64 / 2.0;
        rank_sum += rank * all[i..j].iter().filter(|(_, p)| *p).count() as f64;
        i = j;
    }
    let (p, n) = (positives.len() as f64, negatives.len() as f64);
    (rank_sum - p * (p + 1.0) / 2.0) / (p * n)
}

/// Expected calibration error over `bins` equal-width bins.
pub fn expected_calibration_error(probabilities: &[f32], labels: &[f32], bins: usize) -> f64 {
    let mut sums = vec![(0f64, 0f64, 0usize); bins];
    for (&p, &y) in probabilities.iter().zip(labels) {
        let bin = ((p * bins as f32) as usize).min(bins - 1);
        sums[bin].0 += f64::from(p);
        sums[bin].1 += f64::from(y);
        sums[bin].2 += 1;
    }
    let total = probabilities.len().max(1) as f64;
    sums.iter()
        .filter(|s| s.2 > 0)
        .map(|&(p, y, _)| (p - y).abs() / total)
        .sum()
}

/// Platt scaling: `[scale, bias]` minimising the log loss of `sigmoid(scale z + bias)`
/// (Newton's method on the two parameters), with positives and negatives weighted to count
/// equally, so the fitted probabilities hold for a judge that sees as many good candidates
/// as bad ones whatever the mix of the fitting set.
pub fn fit_platt(logits: &[f32], labels: &[f32]) -> [f32; 2] {
    let positives = labels.iter().filter(|&&y| y > 0.5).count().max(1) as f64;
    let negatives = (labels.len() as f64 - positives).max(1.0);
    let (mut a, mut b) = (1f64, 0f64);
    for _ in 0..50 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0f64, 0f64, 1e-9, 0f64, 1e-9);
        for (&z, &y) in logits.iter().zip(labels) {
            let z = f64::from(z);
            let weight = if y > 0.5 {
                0.5 / positives
            } else {
                0.5 / negatives
            };
            let p = 1.0 / (1.0 + (-(a * z + b)).exp());
            let r = (p - f64::from(y)) * weight;
            ga += r * z;
            gb += r;
            let w = p * (1.0 - p) * weight;
            haa += w * z * z;
            hab += w * z;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-12 {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        a -= da;
        b -= db;
        if da.abs() + db.abs() < 1e-9 {
            break;
        }
    }
    [a as f32, b as f32]
}

/// How well the critic separates real windows from each kind of negative, on held-out
/// pieces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CriticEvaluation {
    pub examples: usize,
    /// Overall score's ROC-AUC, real against each negative kind.
    pub auc_by_kind: Vec<(String, f64, usize)>,
    /// Each aspect's ROC-AUC, real against the negatives that spoil that aspect.
    pub auc_by_aspect: Vec<(String, f64)>,
    /// Overall: ECE (10 bins) and Brier score on a set with as many real windows as
    /// negatives, before and after calibration.
    pub ece_raw: f64,
    pub ece_calibrated: f64,
    pub brier_calibrated: f64,
    /// Share of held-out real windows at or above the threshold.
    pub real_pass_rate: f64,
    /// Mean weighted loss (raw logits).
    pub loss: f64,
}

/// Scores a held-out set (raw logits through `config`'s calibration).
pub fn evaluate(
    config: &CriticConfig,
    set: &[(CriticInput, Option<NegativeKind>)],
    raw: &[[f32; OUTPUTS]],
    aspect_weight: f32,
) -> CriticEvaluation {
    let calibrated: Vec<Vec<f32>> = raw.iter().map(|z| config.probabilities(z)).collect();
    let overall = |kind: Option<NegativeKind>| -> Vec<f32> {
        set.iter()
            .zip(&calibrated)
            .filter(|((_, k), _)| *k == kind)
            .map(|(_, p)| p[0])
            .collect()
    };
    let real = overall(None);
    let mut auc_by_kind = Vec::new();
    let mut kinds: Vec<NegativeKind> = set.iter().filter_map(|(_, k)| *k).collect();
    kinds.sort();
    kinds.dedup();
    for kind in kinds {
        let negatives = overall(Some(kind));
        auc_by_kind.push((
            kind.name().to_string(),
            roc_auc(&real, &negatives),
            negatives.len(),
        ));
    }
    let auc_by_aspect = ASPECTS
        .iter()
        .enumerate()
        .map(|(a, name)| {
            let (mut good, mut bad) = (Vec::new(), Vec::new());
            for ((_, kind), p) in set.iter().zip(&calibrated) {
                match kind.map_or(Some(1.0), |k| k.aspect_labels()[a]) {
                    Some(l) if l > 0.5 && kind.is_none() => good.push(p[1 + a]),
                    Some(l) if l < 0.5 => bad.push(p[1 + a]),
                    _ => {}
                }
            }
            (name.to_string(), roc_auc(&good, &bad))
        })
        .collect();
    // Balance: every real window, and as many negatives taken evenly across the set.
    let negatives: Vec<usize> = (0..set.len()).filter(|&i| set[i].1.is_some()).collect();
    let stride = (negatives.len() / real.len().max(1)).max(1);
    let mut chosen: Vec<usize> = (0..set.len()).filter(|&i| set[i].1.is_none()).collect();
    chosen.extend(negatives.iter().step_by(stride).take(real.len()));
    let label = |i: usize| if set[i].1.is_none() { 1.0 } else { 0.0 };
    let truth: Vec<f32> = chosen.iter().map(|&i| label(i)).collect();
    let raw_p: Vec<f32> = chosen.iter().map(|&i| sigmoid(raw[i][0])).collect();
    let cal_p: Vec<f32> = chosen.iter().map(|&i| calibrated[i][0]).collect();
    let brier = cal_p
        .iter()
        .zip(&truth)
        .map(|(p, y)| f64::from((p - y).powi(2)))
        .sum::<f64>()
        / truth.len().max(1) as f64;
    let mut loss_sum = 0f64;
    let mut weight_sum = 0f64;
    for ((_, kind), z) in set.iter().zip(raw) {
        let (t, w) = labels(*kind, aspect_weight);
        for o in 0..OUTPUTS {
            let z = f64::from(z[o]);
            let l = z.max(0.0) - z * f64::from(t[o]) + (-z.abs()).exp().ln_1p();
            loss_sum += l * f64::from(w[o]);
            weight_sum += f64::from(w[o]);
        }
    }
    CriticEvaluation {
        examples: set.len(),
        auc_by_kind,
        auc_by_aspect,
        ece_raw: expected_calibration_error(&raw_p, &truth, 10),
        ece_calibrated: expected_calibration_error(&cal_p, &truth, 10),
        brier_calibrated: brier,
        real_pass_rate: real.iter().filter(|&&p| p >= config.threshold).count() as f64
            / real.len().max(1) as f64,
        loss: loss_sum / weight_sum.max(1e-9),
    }
}

/// Fits every output's Platt scaling on `set` and picks the acceptance threshold: the
/// overall score that `real_pass` of the real windows reach, at most one half.
pub fn calibrate(
    config: &mut CriticConfig,
    set: &[(CriticInput, Option<NegativeKind>)],
    raw: &[[f32; OUTPUTS]],
    real_pass: f32,
) {
    config.calibration = (0..OUTPUTS)
        .map(|o| {
            let (mut z, mut y) = (Vec::new(), Vec::new());
            for ((_, kind), r) in set.iter().zip(raw) {
                let (t, w) = labels(*kind, 1.0);
                if w[o] > 0.0 {
                    z.push(r[o]);
                    y.push(t[o]);
                }
            }
            fit_platt(&z, &y)
        })
        .collect();
    let mut real: Vec<f32> = set
        .iter()
        .zip(raw)
        .filter(|((_, k), _)| k.is_none())
        .map(|(_, r)| config.probabilities(r)[0])
        .collect();
    real.sort_by(f32::total_cmp);
    let at = ((1.0 - real_pass) * real.len() as f32) as usize;
    config.threshold = real.get(at).copied().unwrap_or(0.5).min(0.5);
}

/// The DiT's weak samples for the critic: first windows under real pieces' conditions,
/// read `stop_after` steps into denoising (an early, unfinished estimate) or finished when
/// `stop_after` is the sampler's step count (for an earlier checkpoint's weights).
pub fn weak_samples<B: Backend>(
    models: &Models<B>,
    pieces: &[PieceSong],
    bars: u32,
    count: usize,
    stop_after: &[usize],
    seed: u64,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<Example>, Error> {
    let settings = WriterSettings::default();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(count);
    let chunk = 16;
    let stems = Stem::ALL.len();
    let latent = models.dit_config.latent_dim;
    while out.len() < count {
        let stop = stop_after[rng.random_range(0..stop_after.len())];
        let mut frames = Vec::new();
        let mut windows = Vec::new();
        for _ in 0..chunk.min(count - out.len()) {
            let mut real = draw_real(&mut rng, pieces, bars);
            real.written = 0..bars;
            let song = &real.song;
            windows.push(Window {
                song: SongConditions::new(
                    song.style,
                    real.mood,
                    song.key,
                    song.meter,
                    song.tempo_bpm,
                ),
                bars: bar_conditions(song.meter, song.bars, &song.sections, &song.chords),
                stems,
                context: vec![0.0; bars as usize * stems * latent],
                generate: vec![true; bars as usize * stems],
            });
            frames.push(real);
        }
        let size = bars as usize * stems * latent;
        let noise: Vec<f32> = (0..windows.len())
            .flat_map(|i| window_noise(seed, (out.len() + i) as u64, 0, u64::MAX, size))
            .collect();
        let mut denoising = Denoising::start(
            FlowSampler::new(settings.sampler),
            &models.dit,
            &models.dit_config,
            &windows,
            &noise,
            &models.device,
        )?;
        while denoising.steps_taken() < stop && !denoising.finished() {
            denoising.advance();
        }
        let values = if denoising.finished() {
            denoising.current()?
        } else {
            denoising.predicted_clean()?
        };
        for (i, real) in frames.into_iter().enumerate() {
            let stems_played: Vec<Stem> = real.song.stems.iter().map(|t| t.stem).collect();
            let mut band = [Instrument::SubBass; 5];
            for t in &real.song.stems {
                band[Stem::ALL.iter().position(|&s| s == t.stem).unwrap_or(0)] = t.instrument;
            }
            let mut frame = real.song.clone();
            frame.stems.clear();
            let song = decode_windows(
                models,
                &frame,
                &stems_played,
                &band,
                &values[i * size..(i + 1) * size],
            )?
            .pop()
            .ok_or_else(|| Error::Model("decoding a weak sample gave nothing".into()))?;
            out.push(Example {
                song,
                mood: real.mood,
                written: real.written,
            });
        }
        progress(out.len());
    }
    Ok(out)
}

/// Where a training run stands after a step.
pub struct CriticProgress {
    pub step: u64,
    pub steps: u64,
    pub loss: f64,
    pub evaluation: Option<CriticEvaluation>,
}

/// Trains (or resumes) a critic run in `out`: checkpoints, `loss.csv`, and at the end
/// `critic.safetensors` (calibrated) with `critic-evaluation.json`.
#[allow(clippy::too_many_arguments)]
pub fn train_critic<B: AutodiffBackend>(
    corpus: &CriticCorpus,
    weak: &WeakPools,
    config: &CriticTrainingConfig,
    out: &Path,
    device: &B::Device,
    progress: &mut dyn FnMut(&CriticProgress),
) -> Result<(CriticConfig, CriticEvaluation), Error> {
    std::fs::create_dir_all(out)
        .map_err(|e| Error::Io(format!("creating {}", out.display()), e))?;
    let mut model = config.model.init_seeded::<B>(device, config.seed);
    let mut optimizer: ModelOptimizer<CriticModel<B>, B> = AdamWConfig::new()
        .with_weight_decay(config.weight_decay)
        .init();
    let mut state = LoopState {
        step: 0,
        loss_sum: 0.0,
        loss_count: 0,
    };
    if let Some(latest) = checkpoint::latest(out)? {
        (model, optimizer, state) = checkpoint::load(&latest, model, optimizer, device)?;
    }
    let held_out = evaluation_set(
        &corpus.held_out,
        &weak.held_out,
        config.window_bars,
        config.evaluation_per_kind,
        config.seed ^ 0x5eed,
    );
    let log_path = out.join("loss.csv");
    if state.step == 0 {
        std::fs::write(&log_path, "step,train_loss,held_out_loss,mean_auc\n")
            .map_err(|e| Error::Io(format!("writing {}", log_path.display()), e))?;
    }
    while state.step < config.steps {
        let examples = training_batch(corpus, &weak.train, config, state.step);
        let inputs: Vec<&CriticInput> = examples.iter().map(|(i, _)| i).collect();
        let (target, weight) = targets::<B>(&examples, config.aspect_weight, device);
        let predicted = model.forward(CriticBatch::new(&inputs, device)?);
        let value = loss(predicted, target, weight);
        let loss_value = f64::from(value.clone().into_scalar().elem::<f32>());
        let grads = GradientsParams::from_grads(value.backward(), &model);
        let rate = warmup_cosine(
            state.step,
            config.steps,
            config.warmup,
            config.learning_rate,
        );
        model = optimizer.step(rate, model, grads);
        state.step += 1;
        state.loss_sum += loss_value;
        state.loss_count += 1;
        let mut evaluation = None;
        if state.step.is_multiple_of(config.evaluate_every) || state.step == config.steps {
            let raw = logits(&model.valid(), &held_out, device)?;
            let found = evaluate(&config.model, &held_out, &raw, config.aspect_weight);
            let mean_auc = found.auc_by_kind.iter().map(|k| k.1).sum::<f64>()
                / found.auc_by_kind.len().max(1) as f64;
            let line = format!(
                "{},{:.5},{:.5},{:.4}\n",
                state.step,
                state.loss_sum / state.loss_count.max(1) as f64,
                found.loss,
                mean_auc
            );
            append(&log_path, &line)?;
            state.loss_sum = 0.0;
            state.loss_count = 0;
            checkpoint::save(out, &model, &optimizer, &state, 2)?;
            evaluation = Some(found);
        }
        progress(&CriticProgress {
            step: state.step,
            steps: config.steps,
            loss: loss_value,
            evaluation,
        });
    }
    let trained = model.valid();
    let calibration_set = evaluation_set(
        &corpus.calibration,
        &weak.calibration,
        config.window_bars,
        config.evaluation_per_kind,
        config.seed ^ 0xca1,
    );
    let raw = logits(&trained, &calibration_set, device)?;
    let mut calibrated = config.model.clone();
    calibrate(&mut calibrated, &calibration_set, &raw, 0.9);
    let raw = logits(&trained, &held_out, device)?;
    let evaluation = evaluate(&calibrated, &held_out, &raw, config.aspect_weight);
    let weights = out.join(super::CRITIC_FILE);
    let partial = out.join(format!("{}.partial", super::CRITIC_FILE));
    trained.save_safetensors(&calibrated, &partial)?;
    std::fs::rename(&partial, &weights)
        .map_err(|e| Error::Io(format!("moving {}", weights.display()), e))?;
    let report = serde_json::to_vec_pretty(&evaluation).map_err(|e| Error::Model(e.to_string()))?;
    std::fs::write(out.join("critic-evaluation.json"), report)
        .map_err(|e| Error::Io(format!("writing {}", out.display()), e))?;
    Ok((calibrated, evaluation))
}

/// The DiT's weak samples per split.
#[derive(Clone, Debug, Default)]
pub struct WeakPools {
    pub train: Vec<Example>,
    pub calibration: Vec<Example>,
    pub held_out: Vec<Example>,
}

fn append(path: &Path, line: &str) -> Result<(), Error> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|e| Error::Io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ordered_pairs_and_ties_half() {
        assert_eq!(roc_auc(&[0.9, 0.8], &[0.1, 0.2]), 1.0);
        assert_eq!(roc_auc(&[0.1], &[0.9]), 0.0);
        assert_eq!(roc_auc(&[0.5, 0.5], &[0.5]), 0.5);
        assert!((roc_auc(&[0.9, 0.3], &[0.5]) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn platt_scaling_recovers_a_known_calibration_and_ece_sees_the_difference() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (mut z, mut y) = (Vec::new(), Vec::new());
        for _ in 0..4000 {
            let logit: f32 = rng.random_range(-4.0..4.0);
            // True probability sigmoid(0.5 z): an over-confident logit (classes balanced).
            let p = sigmoid(0.5 * logit);
            z.push(logit);
            y.push(if rng.random::<f32>() < p { 1.0 } else { 0.0 });
        }
        let [a, b] = fit_platt(&z, &y);
        assert!((a - 0.5).abs() < 0.08 && b.abs() < 0.15, "{a} {b}");
        let raw: Vec<f32> = z.iter().map(|&v| sigmoid(v)).collect();
        let fitted: Vec<f32> = z.iter().map(|&v| sigmoid(a * v + b)).collect();
        let (before, after) = (
            expected_calibration_error(&raw, &y, 10),
            expected_calibration_error(&fitted, &y, 10),
        );
        assert!(after < 0.03 && before > 0.1, "{before} {after}");
    }
}
