//! `refrain evaluate reasoning`: does thinking pay? The same requests written twice, once
//! with the critic-guided reasoning loop and once by the equal-compute baseline (as many DiT
//! evaluations, one finished candidate kept at random), scored on measures the critic never
//! trained on: scale fit, groove consistency, and the distance of pitch and rhythm
//! statistics to held-out real music of the style. Paired differences with bootstrap
//! confidence intervals and effect sizes.

use crate::evaluate::{FeatureRow, evaluation_request, feature_row, quartiles};
use crate::thinking::ThinkArgs;
use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use refrain_engine::dataset::{self, Split};
use refrain_engine::generate;
use refrain_engine::music::Style;
use refrain_engine::plan::Request;
use refrain_engine::reasoning::{Decision, Think, TraceEvent};
use refrain_engine::writer::{self, Models, WriterSettings};
use refrain_scorer::features::song_features;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct EvaluateReasoningArgs {
    /// Dataset folder (its held-out pieces are the reference).
    #[arg(long)]
    data: PathBuf,
    /// Folder holding the DiT, the autoencoder, the critic and the guard.
    #[arg(long)]
    assets: Option<PathBuf>,
    /// Songs, spread evenly over the styles.
    #[arg(long, default_value_t = 200)]
    songs: usize,
    #[command(flatten)]
    thinking: ThinkArgs,
    /// Write the full report here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The measures of one song.
#[derive(Clone, Debug, Default, Serialize)]
struct SongMeasures {
    in_scale: f64,
    groove_consistency: f64,
    /// Mean over pitch features of |value - real median| / real IQR (see [`distance`]).
    pitch_distance: f64,
    /// Same over rhythm features (groove, notes per bar, polyphony).
    rhythm_distance: f64,
    evaluations: usize,
    seconds: f64,
}

const PITCH_FEATURES: [&str; 1] = ["pitch-class entropy"];

fn is_rhythm(feature: &str) -> bool {
    feature == "groove consistency"
        || feature.ends_with("notes/bar")
        || feature.ends_with("polyphony")
}

/// One measure compared across the two arms.
#[derive(Debug, Serialize)]
struct Comparison {
    measure: String,
    /// Whether higher is better for this measure.
    higher_is_better: bool,
    guided_mean: f64,
    baseline_mean: f64,
    /// Mean of guided - baseline over songs, with a 95 % bootstrap interval.
    difference: f64,
    difference_ci95: [f64; 2],
    /// Paired effect size: mean difference / standard deviation of the differences.
    effect_size: f64,
    /// Songs where guided is better, worse.
    guided_better: usize,
    guided_worse: usize,
}

/// A segment the loop kept below the threshold.
#[derive(Debug, Serialize)]
struct KeptBelow {
    song: usize,
    request: Request,
    trace: TraceEvent,
}

#[derive(Debug, Serialize)]
struct ReasoningReport {
    songs: usize,
    think: String,
    particles: usize,
    checkpoints: Vec<usize>,
    retries: u32,
    backtracks: u32,
    threshold: f32,
    comparisons: Vec<Comparison>,
    evaluations_guided: usize,
    evaluations_baseline: usize,
    seconds_per_song_guided_median: f64,
    seconds_per_song_baseline_median: f64,
    decisions: BTreeMap<String, usize>,
    songs_with_retractions: usize,
    songs_with_backtracks: usize,
    /// Segments kept below the threshold after every retry and backtrack.
    segments_kept_below_threshold: usize,
    /// Which they were: the song, its request and the trace line that kept each.
    kept_below_threshold: Vec<KeptBelow>,
    segments: usize,
    guard_rejections: usize,
}

fn median(values: &mut [f64]) -> f64 {
    quartiles(values)[1]
}

/// Mean |x - median| / scale of the chosen features against the style's real quartiles, the
/// scale being the IQR, but at least 0.05 + a tenth of the median: a feature whose real
/// IQR is zero (one-note bass lines have polyphony exactly 1) must not blow the sum up.
fn distance(
    row: &FeatureRow,
    real: &BTreeMap<String, [f64; 3]>,
    pick: &dyn Fn(&str) -> bool,
) -> f64 {
    let mut sum = 0.0;
    let mut count = 0;
    for (feature, &value) in row {
        if !pick(feature) {
            continue;
        }
        if let Some([q1, m, q3]) = real.get(feature) {
            sum += (value - m).abs() / (q3 - q1).max(0.05 + 0.1 * m.abs());
            count += 1;
        }
    }
    sum / f64::from(count.max(1))
}

fn compare(
    measure: &str,
    higher_is_better: bool,
    guided: &[SongMeasures],
    baseline: &[SongMeasures],
    get: fn(&SongMeasures) -> f64,
) -> Comparison {
    let differences: Vec<f64> = guided
        .iter()
        .zip(baseline)
        .map(|(g, b)| get(g) - get(b))
        .collect();
    let n = differences.len().max(1) as f64;
    let mean = differences.iter().sum::<f64>() / n;
    let sd =
        (differences.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
    let mut rng = ChaCha8Rng::seed_from_u64(0xb007);
    let mut means: Vec<f64> = (0..4000)
        .map(|_| {
            (0..differences.len())
                .map(|_| differences[rng.random_range(0..differences.len())])
                .sum::<f64>()
                / n
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let better = |d: f64| {
        if higher_is_better {
            d > 1e-12
        } else {
            d < -1e-12
        }
    };
    let worse = |d: f64| {
        if higher_is_better {
            d < -1e-12
        } else {
            d > 1e-12
        }
    };
    Comparison {
        measure: measure.into(),
        higher_is_better,
        guided_mean: guided.iter().map(get).sum::<f64>() / n,
        baseline_mean: baseline.iter().map(get).sum::<f64>() / n,
        difference: mean,
        difference_ci95: [
            means[(0.025 * 4000.0) as usize],
            means[(0.975 * 4000.0) as usize - 1],
        ],
        effect_size: if sd > 0.0 { mean / sd } else { 0.0 },
        guided_better: differences.iter().filter(|&&d| better(d)).count(),
        guided_worse: differences.iter().filter(|&&d| worse(d)).count(),
    }
}

pub fn run(args: EvaluateReasoningArgs) -> Result<()> {
    let device = Default::default();
    let assets = args
        .assets
        .clone()
        .unwrap_or_else(writer::default_assets_dir);
    let models = Models::<writer::CpuBackend>::load(&assets, &device)?;
    let settings = WriterSettings::default();
    let mut judges = args.thinking.judges(&assets)?;
    let guided_settings = args.thinking.settings(&judges);
    guided_settings.check()?;
    let (manifest, _) = dataset::read_manifest(&args.data)?;
    let mut real_rows: BTreeMap<Style, Vec<FeatureRow>> = BTreeMap::new();
    dataset::for_each_piece(&args.data, &manifest, |piece| {
        if piece.split == Split::Validation {
            real_rows
                .entry(piece.style)
                .or_default()
                .push(feature_row(&song_features(&piece.to_song())));
        }
        Ok(())
    })?;
    let real: BTreeMap<Style, BTreeMap<String, [f64; 3]>> = real_rows
        .into_iter()
        .map(|(style, rows)| {
            let mut by_feature: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for row in rows {
                for (k, v) in row {
                    by_feature.entry(k).or_default().push(v);
                }
            }
            (
                style,
                by_feature
                    .into_iter()
                    .map(|(k, mut v)| (k, quartiles(&mut v)))
                    .collect(),
            )
        })
        .collect();
    let bar = ProgressBar::new(args.songs as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} song pairs ({per_sec}, eta {eta})")
            .expect("static template"),
    );
    let (mut guided, mut baseline) = (Vec::new(), Vec::new());
    let mut decisions: BTreeMap<String, usize> = BTreeMap::new();
    let (mut with_retractions, mut with_backtracks, mut segments, mut guarded) = (0, 0, 0, 0);
    let mut below = Vec::new();
    let measure = |song: &refrain_engine::music::Song, evaluations: usize, seconds: f64| {
        let features = song_features(song);
        let row = feature_row(&features);
        let reference = &real[&song.style];
        SongMeasures {
            in_scale: features.in_scale_ratio,
            groove_consistency: features.groove_consistency,
            pitch_distance: distance(&row, reference, &|f| PITCH_FEATURES.contains(&f)),
            rhythm_distance: distance(&row, reference, &is_rhythm),
            evaluations,
            seconds,
        }
    };
    for index in 0..args.songs {
        let style = Style::ALL[index % Style::ALL.len()];
        let request = evaluation_request(index, style);
        let started = Instant::now();
        let (_, written) = generate::compose(
            &request,
            &models,
            &settings,
            &mut judges.thinking(guided_settings.clone()),
        )
        .with_context(|| format!("writing evaluation song {index} with thinking"))?;
        let seconds = started.elapsed().as_secs_f64();
        let evaluations: usize = written.segments.iter().map(|s| s.evaluations).sum();
        for event in &written.trace {
            *decisions.entry(event.decision.name().into()).or_default() += 1;
            if event.decision == Decision::Reject && event.reason.contains("copies a training") {
                guarded += 1;
            }
            if event.decision == Decision::Accept && event.reason.contains("below the threshold") {
                below.push(KeptBelow {
                    song: index,
                    request: request.clone(),
                    trace: event.clone(),
                });
            }
        }
        with_retractions += usize::from(
            written
                .trace
                .iter()
                .any(|e| e.decision == Decision::Retract),
        );
        with_backtracks += usize::from(
            written
                .trace
                .iter()
                .any(|e| e.decision == Decision::Backtrack),
        );
        segments += written.segments.len();
        guided.push(measure(&written.song, evaluations, seconds));
        // The baseline: at least as many DiT evaluations, one finished candidate at random.
        let per_candidate = written.segments.len() * settings.sampler.evaluations();
        let mut none = Think::None.settings();
        none.particles = evaluations.div_ceil(per_candidate.max(1)).clamp(1, 64);
        let started = Instant::now();
        let (_, plain) =
            generate::compose(&request, &models, &settings, &mut judges.thinking(none))
                .with_context(|| format!("writing evaluation song {index} without thinking"))?;
        let seconds = started.elapsed().as_secs_f64();
        let evaluations: usize = plain.segments.iter().map(|s| s.evaluations).sum();
        baseline.push(measure(&plain.song, evaluations, seconds));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let comparisons = vec![
        compare(
            "scale fit (share of pitched notes in the key)",
            true,
            &guided,
            &baseline,
            |m| m.in_scale,
        ),
        compare("groove consistency", true, &guided, &baseline, |m| {
            m.groove_consistency
        }),
        compare(
            "pitch-statistics distance to real music (IQRs)",
            false,
            &guided,
            &baseline,
            |m| m.pitch_distance,
        ),
        compare(
            "rhythm-statistics distance to real music (IQRs)",
            false,
            &guided,
            &baseline,
            |m| m.rhythm_distance,
        ),
    ];
    let report = ReasoningReport {
        songs: args.songs,
        think: args.thinking.think.name().into(),
        particles: guided_settings.particles,
        checkpoints: guided_settings.checkpoints.clone(),
        retries: guided_settings.retries,
        backtracks: guided_settings.backtracks,
        threshold: guided_settings.threshold,
        comparisons,
        evaluations_guided: guided.iter().map(|m| m.evaluations).sum(),
        evaluations_baseline: baseline.iter().map(|m| m.evaluations).sum(),
        seconds_per_song_guided_median: median(
            &mut guided.iter().map(|m| m.seconds).collect::<Vec<_>>(),
        ),
        seconds_per_song_baseline_median: median(
            &mut baseline.iter().map(|m| m.seconds).collect::<Vec<_>>(),
        ),
        decisions,
        songs_with_retractions: with_retractions,
        songs_with_backtracks: with_backtracks,
        segments_kept_below_threshold: below.len(),
        kept_below_threshold: below,
        segments,
        guard_rejections: guarded,
    };
    println!(
        "{} songs, --think {} ({} candidates, checkpoints {:?}, threshold {:.3}) against --think none \
         at equal compute ({} vs {} DiT evaluations)",
        report.songs,
        report.think,
        report.particles,
        report.checkpoints,
        report.threshold,
        report.evaluations_guided,
        report.evaluations_baseline
    );
    for c in &report.comparisons {
        println!(
            "  {}: guided {:.4}, baseline {:.4}; difference {:+.4} (95% CI {:+.4} .. {:+.4}), \
             effect size {:+.2}; guided better in {}, worse in {}",
            c.measure,
            c.guided_mean,
            c.baseline_mean,
            c.difference,
            c.difference_ci95[0],
            c.difference_ci95[1],
            c.effect_size,
            c.guided_better,
            c.guided_worse
        );
    }
    println!(
        "  decisions {:?}; songs with retractions {}, with backtracks {}; segments kept below \
         the threshold {} of {}; guard rejections {}",
        report.decisions,
        report.songs_with_retractions,
        report.songs_with_backtracks,
        report.segments_kept_below_threshold,
        report.segments,
        report.guard_rejections
    );
    for kept in &report.kept_below_threshold {
        println!(
            "    kept below: song {} ({}), segment {} ({}, bars {}-{}): {}",
            kept.song,
            kept.request.style.map(|s| s.name()).unwrap_or("-"),
            kept.trace.segment,
            kept.trace.section,
            kept.trace.bars[0] + 1,
            kept.trace.bars[1],
            kept.trace.reason
        );
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
