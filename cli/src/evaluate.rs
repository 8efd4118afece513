//! `refrain evaluate`: the figures in docs/MODEL_CARD.md. For the autoencoder, note-level F1
//! on every held-out stem-bar. For the DiT, songs generated across every style, checked for
//! scale fit, tempo, meter and exact duration, their features set against the interquartile
//! range of held-out real pieces of the same style, and lead-melody diversity over seeds.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use refrain_engine::dataset::{self, Split};
use refrain_engine::generate;
use refrain_engine::midi::{read_midi, write_midi};
use refrain_engine::model::BarAutoencoder;
use refrain_engine::model::sampler::SamplerSettings;
use refrain_engine::music::{Key, Meter, Mode, Song, Stem, Style};
use refrain_engine::plan::{self, Request, tempo_range};
use refrain_engine::reasoning::Thinking;
use refrain_engine::render::RenderOptions;
use refrain_engine::train::data::{StemBar, StemBarOptions, StemBarSet};
use refrain_engine::train::evaluate as evaluate_autoencoder;
use refrain_engine::train::loss::ReconstructionLossConfig;
use refrain_engine::writer::{self, Models, WriterSettings};
use refrain_scorer::features::{SongFeatures, song_features};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Subcommand)]
pub enum EvaluateCommand {
    /// Note-level F1 (onset and pitch exact) of the bar autoencoder on every held-out
    /// stem-bar of a dataset.
    Autoencoder {
        /// Dataset folder made by `refrain dataset build`.
        #[arg(long)]
        data: PathBuf,
        /// The weights to score.
        #[arg(long, default_value = "assets/autoencoder.safetensors")]
        weights: PathBuf,
    },
    /// Generate songs across every style and compare them with held-out real pieces.
    Dit(EvaluateDitArgs),
    /// Write the same requests with the critic-guided reasoning loop and with the
    /// equal-compute baseline (--think none, as many DiT evaluations, one candidate kept at
    /// random) and compare them on measures the critic never trained on.
    Reasoning(crate::evaluate_reasoning::EvaluateReasoningArgs),
    /// Render songs and loops across every style and check them the way a distributor would:
    /// loudness, true peak, clipping, exact duration, and the seam of each loop.
    Audio(crate::evaluate_audio::EvaluateAudioArgs),
}

#[derive(Args)]
pub struct EvaluateDitArgs {
    /// Dataset folder (its held-out pieces are the reference, unless `--reference` says
    /// otherwise).
    #[arg(long)]
    data: PathBuf,
    /// Which pieces the generated songs are compared with: `held-out` (the test; default),
    /// or `training`, the pieces calibration fits to, for choosing between decoding
    /// variants without looking at the held-out pieces.
    #[arg(long, value_enum, default_value_t = Reference::HeldOut)]
    reference: Reference,
    /// Folder holding autoencoder.safetensors and dit.safetensors.
    #[arg(long)]
    assets: Option<PathBuf>,
    /// Songs to generate, spread evenly over the styles.
    #[arg(long, default_value_t = 200)]
    songs: usize,
    /// Seeds of one request for the lead-diversity check.
    #[arg(long, default_value_t = 50)]
    diversity_seeds: u64,
    #[arg(long, default_value_t = 8)]
    steps: usize,
    #[arg(long, default_value_t = 1.0)]
    guidance: f32,
    /// How long the songs are: `seconds` (default) asks for 20-60 s, as `evaluate reasoning`
    /// does; `held-out` asks each song for as many bars as a reference piece of its style,
    /// drawn from the song's index, so per-bar figures compare songs of the data's lengths
    /// (intros and outros last a bar or two whatever the length).
    #[arg(long, value_enum, default_value_t = Lengths::Seconds)]
    lengths: Lengths,
    /// Scale of the starting noise (see `generate --help`).
    #[arg(long, default_value_t = SamplerSettings::default().temperature)]
    temperature: f32,
    /// Write the full report here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(command: EvaluateCommand) -> Result<()> {
    match command {
        EvaluateCommand::Autoencoder { data, weights } => run_autoencoder(data, weights),
        EvaluateCommand::Dit(args) => run_dit(args),
        EvaluateCommand::Reasoning(args) => crate::evaluate_reasoning::run(args),
        EvaluateCommand::Audio(args) => crate::evaluate_audio::run(args),
    }
}

fn run_autoencoder(data: PathBuf, weights: PathBuf) -> Result<()> {
    let device = Default::default();
    let (config, model) = BarAutoencoder::<burn::backend::Flex>::load_file(&weights, &device)?;
    let set = StemBarSet::read(&data, &StemBarOptions::default())?;
    let bars: Vec<&StemBar> = set.validation.iter().collect();
    let started = Instant::now();
    let evaluation = evaluate_autoencoder(
        &model,
        config.grid(),
        &ReconstructionLossConfig::new(),
        &bars,
        512,
        &device,
    )?;
    let notes = evaluation.notes;
    println!(
        "{} held-out stem-bars ({} notes): note F1 {:.4}, precision {:.4}, recall {:.4} ({:.0} s)",
        bars.len(),
        notes.true_positives + notes.false_negatives,
        notes.f1(),
        notes.precision(),
        notes.recall(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub(crate) use refrain_engine::train::plan_harmony::quartiles;

pub(crate) type FeatureRow = BTreeMap<String, f64>;

/// The compared features of one song, by name.
pub(crate) fn feature_row(features: &SongFeatures) -> FeatureRow {
    let mut row = BTreeMap::new();
    row.insert("pitch-class entropy".into(), features.pitch_class_entropy);
    row.insert("groove consistency".into(), features.groove_consistency);
    for stem in Stem::ALL {
        if let Some(s) = features.stems.get(stem.name()) {
            row.insert(format!("{stem} notes/bar"), s.notes_per_bar);
            row.insert(format!("{stem} polyphony"), s.polyphony);
        }
    }
    row
}

/// Each stem's groove consistency, by name ("lead groove").
fn stem_groove_row(features: &SongFeatures) -> FeatureRow {
    features
        .stems
        .iter()
        .map(|(stem, s)| (format!("{stem} groove"), s.groove_consistency))
        .collect()
}

/// Resamplings of the generated songs behind `inside_share` and `features_inside_resampled`.
const RESAMPLES: usize = 1000;

/// The `at` percentiles (0 to 1) of `values`, each the nearest rank at or below.
fn percentiles(mut values: Vec<usize>, at: [f64; 3]) -> [usize; 3] {
    values.sort_unstable();
    at.map(|p| {
        let rank = (p * values.len().saturating_sub(1) as f64).floor() as usize;
        values.get(rank).copied().unwrap_or(0)
    })
}

/// Every feature the reference rows have: the reference's quartiles against the median of
/// the generated rows, and how often the median of the generated rows drawn again with
/// replacement ([`RESAMPLES`] times, the same songs for every feature, from a fixed seed)
/// lies inside; per resampling, how many features it had inside.
fn compare_rows(
    reference: &[&FeatureRow],
    generated: &[&FeatureRow],
) -> (Vec<FeatureComparison>, Vec<usize>) {
    let names: BTreeSet<&String> = reference.iter().flat_map(|r| r.keys()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(0xb007);
    let draws: Vec<Vec<usize>> = (0..RESAMPLES)
        .map(|_| {
            (0..generated.len())
                .map(|_| rng.random_range(0..generated.len()))
                .collect()
        })
        .collect();
    let mut inside_by_draw = vec![0; RESAMPLES];
    let comparisons = names
        .into_iter()
        .map(|name| {
            let mut real_values: Vec<f64> = reference
                .iter()
                .filter_map(|r| r.get(name))
                .copied()
                .collect();
            let values: Vec<Option<f64>> = generated.iter().map(|r| r.get(name).copied()).collect();
            let mut generated_values: Vec<f64> = values.iter().flatten().copied().collect();
            let [q1, median, q3] = quartiles(&mut real_values);
            let [_, generated_median, _] = quartiles(&mut generated_values);
            let inside = |m: f64| m >= q1 && m <= q3;
            let mut drawn = Vec::with_capacity(generated.len());
            let mut resampled_inside = 0;
            for (draw, count) in draws.iter().zip(&mut inside_by_draw) {
                drawn.clear();
                drawn.extend(draw.iter().filter_map(|&i| values[i]));
                if inside(quartiles(&mut drawn)[1]) {
                    resampled_inside += 1;
                    *count += 1;
                }
            }
            FeatureComparison {
                feature: name.clone(),
                real_q1: q1,
                real_median: median,
                real_q3: q3,
                generated_median,
                inside: inside(generated_median),
                inside_share: resampled_inside as f64 / RESAMPLES as f64,
            }
        })
        .collect();
    (comparisons, inside_by_draw)
}

#[derive(Serialize)]
struct FeatureComparison {
    feature: String,
    real_q1: f64,
    real_median: f64,
    real_q3: f64,
    generated_median: f64,
    inside: bool,
    /// Share of resamplings of the generated songs whose median lies inside: how firmly
    /// `inside` holds against which songs happened to be drawn.
    inside_share: f64,
}

#[derive(Serialize)]
struct StyleReport {
    style: String,
    real_pieces: usize,
    generated_songs: usize,
    in_scale_ratio: f64,
    features: Vec<FeatureComparison>,
    /// Groove consistency stem by stem: where the song-wide figure's gap comes from
    /// (reported, not counted in `features_inside_iqr`).
    groove_by_stem: Vec<FeatureComparison>,
}

#[derive(Serialize)]
struct DitReport {
    songs: usize,
    pitched_notes: usize,
    in_scale_ratio: f64,
    tempo_exact: usize,
    meter_exact: usize,
    duration_exact: usize,
    sampler: SamplerSettings,
    lengths: Lengths,
    reference: Reference,
    seconds_per_song_median: f64,
    styles: Vec<StyleReport>,
    /// In-scale share by the requested key's mode (modes the corpus barely holds are written
    /// in a told key: `conditions::told_key`).
    in_scale_by_mode: Vec<ModeScale>,
    features_inside_iqr: usize,
    features_compared: usize,
    /// `features_inside_iqr` over resamplings of each style's generated songs: the 5th,
    /// 50th and 95th percentile.
    features_inside_resampled: [usize; 3],
    diversity_seeds: u64,
    lead_bars_compared: usize,
    shared_lead_bars: usize,
    /// Shared bars by how many notes they hold: 1, 2, 3 or more.
    shared_lead_bars_by_notes: [usize; 3],
    seed_pairs_sharing_a_bar: usize,
}

/// How much of one mode's songs sits in the requested scale.
#[derive(Clone, Debug, Default, Serialize)]
struct ModeScale {
    mode: String,
    songs: usize,
    pitched_notes: usize,
    in_scale_ratio: f64,
}

/// `evaluate dit --lengths`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Lengths {
    HeldOut,
    Seconds,
}

/// `evaluate dit --reference`: the pieces whose interquartile ranges the songs are held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Reference {
    HeldOut,
    Training,
}

impl Reference {
    fn split(self) -> Split {
        match self {
            Reference::HeldOut => Split::Validation,
            Reference::Training => Split::Train,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Reference::HeldOut => "held-out",
            Reference::Training => "training",
        }
    }
}

/// `request` asking for `bars` bars, told in seconds (with a ring-out the planner keeps).
fn lasting_bars(mut request: Request, bars: u32) -> Request {
    if let (Some(bpm), Some(meter)) = (request.bpm, request.meter) {
        request.seconds =
            Some(f64::from(bars) * meter.bar_seconds(bpm) + plan::MIN_RING_OUT_SECONDS + 0.25);
    }
    request
}

/// One request of the evaluation: every choice explicit, drawn from the song's index.
pub(crate) fn evaluation_request(index: usize, style: Style) -> Request {
    let mut rng = ChaCha8Rng::seed_from_u64(0xe7a1 ^ index as u64);
    let (low, high) = tempo_range(style);
    let meter = match rng.random_range(0..10) {
        0 => Meter::ThreeFour,
        1 => Meter::SixEight,
        _ => Meter::FourFour,
    };
    let mode = if rng.random_bool(0.5) {
        Mode::ALL[0]
    } else {
        Mode::ALL[rng.random_range(0..Mode::ALL.len())]
    };
    Request {
        style: Some(style),
        bpm: Some(rng.random_range(low.round() as u32..=high.round() as u32) as f64),
        key: Some(Key::new(rng.random_range(0..12), mode)),
        meter: Some(meter),
        seconds: Some(f64::from(rng.random_range(20u32..=60))),
        seed: index as u64,
        ..Request::default()
    }
}

fn run_dit(args: EvaluateDitArgs) -> Result<()> {
    let device = Default::default();
    let assets = args.assets.unwrap_or_else(writer::default_assets_dir);
    let models = Models::<writer::CpuBackend>::load(&assets, &device)?;
    let settings = WriterSettings {
        sampler: SamplerSettings {
            steps: args.steps,
            guidance: args.guidance,
            temperature: args.temperature,
            ..SamplerSettings::default()
        },
        ..WriterSettings::default()
    };
    // Real reference: held-out pieces (or training pieces, for development), by style.
    let (manifest, _) = dataset::read_manifest(&args.data)?;
    let mut real: BTreeMap<Style, Vec<(FeatureRow, FeatureRow)>> = BTreeMap::new();
    let mut real_bars: BTreeMap<Style, Vec<u32>> = BTreeMap::new();
    dataset::for_each_piece(&args.data, &manifest, |piece| {
        if piece.split == args.reference.split() {
            let features = song_features(&piece.to_song());
            real.entry(piece.style)
                .or_default()
                .push((feature_row(&features), stem_groove_row(&features)));
            real_bars.entry(piece.style).or_default().push(piece.bars);
        }
        Ok(())
    })?;
    let bar = ProgressBar::new(args.songs as u64 + args.diversity_seeds);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} songs ({per_sec}, eta {eta})")
            .expect("static template"),
    );
    let options = RenderOptions::default();
    let mut generated: BTreeMap<Style, Vec<(SongFeatures, FeatureRow, FeatureRow)>> =
        BTreeMap::new();
    let (mut tempo_exact, mut meter_exact, mut duration_exact) = (0, 0, 0);
    let mut times = Vec::new();
    let mut by_mode: BTreeMap<usize, ModeScale> = BTreeMap::new();
    for index in 0..args.songs {
        let style = Style::ALL[index % Style::ALL.len()];
        let mut request = evaluation_request(index, style);
        if let (Lengths::HeldOut, Some(lengths)) = (args.lengths, real_bars.get(&style)) {
            let mut rng = ChaCha8Rng::seed_from_u64(0x1e2a ^ index as u64);
            request = lasting_bars(request, lengths[rng.random_range(0..lengths.len())]);
        }
        let started = Instant::now();
        let generation = generate::generate(
            &request,
            &models,
            &settings,
            &mut Thinking::none(),
            &options,
            &refrain_engine::render::Instruments::default(),
        )
        .with_context(|| format!("generating evaluation song {index}"))?;
        times.push(started.elapsed().as_secs_f64());
        let back = read_midi(&write_midi(&generation.song))?;
        if (back.tempo_bpm - request.bpm.unwrap_or_default()).abs() < 0.01 {
            tempo_exact += 1;
        }
        if Some(back.meter) == request.meter {
            meter_exact += 1;
        }
        let expected =
            (request.seconds.unwrap_or_default() * f64::from(options.sample_rate)).round() as usize;
        if generation.rendered.mix.frames() == expected
            && generation
                .rendered
                .stems
                .iter()
                .all(|(_, b)| b.frames() == expected)
        {
            duration_exact += 1;
        }
        let features = song_features(&generation.song);
        let mode = by_mode
            .entry(generation.plan.key.mode as usize)
            .or_insert_with(|| ModeScale {
                mode: generation.plan.key.mode.name().into(),
                ..ModeScale::default()
            });
        mode.songs += 1;
        mode.pitched_notes += features.pitched_notes;
        mode.in_scale_ratio += features.in_scale_ratio * features.pitched_notes as f64;
        let (row, grooves) = (feature_row(&features), stem_groove_row(&features));
        generated
            .entry(style)
            .or_default()
            .push((features, row, grooves));
        bar.inc(1);
    }
    // Diversity: one request, many seeds; no lead bar should repeat across seeds.
    let mut bars_by_seed: Vec<BTreeSet<Vec<(u32, i32, u32)>>> = Vec::new();
    for seed in 0..args.diversity_seeds {
        let request = Request {
            style: Some(Style::Lofi),
            bpm: Some(84.0),
            key: Some(Key::new(9, Mode::ALL[5])),
            meter: Some(Meter::FourFour),
            seconds: Some(30.0),
            seed,
            ..Request::default()
        };
        let (_, written) = generate::compose(&request, &models, &settings, &mut Thinking::none())?;
        let song = written.song;
        bars_by_seed.push(lead_bars(&song));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut shared = 0;
    let mut shared_by_notes = [0; 3];
    let mut pairs = 0;
    for i in 0..bars_by_seed.len() {
        for j in i + 1..bars_by_seed.len() {
            let mut common = 0;
            for bar in bars_by_seed[i].intersection(&bars_by_seed[j]) {
                common += 1;
                shared_by_notes[bar.len().clamp(1, 3) - 1] += 1;
            }
            shared += common;
            pairs += usize::from(common > 0);
        }
    }
    let lead_bars_compared = bars_by_seed.iter().map(BTreeSet::len).sum();

    let mut styles = Vec::new();
    let (mut inside_total, mut compared_total) = (0, 0);
    let mut resampled_totals = vec![0; RESAMPLES];
    let (mut pitched_total, mut in_scale_total) = (0usize, 0f64);
    for style in Style::ALL {
        let songs = generated.get(&style).map(Vec::as_slice).unwrap_or_default();
        let reference = real.get(&style).map(Vec::as_slice).unwrap_or_default();
        let pitched: usize = songs.iter().map(|(f, _, _)| f.pitched_notes).sum();
        let in_scale: f64 = songs
            .iter()
            .map(|(f, _, _)| f.in_scale_ratio * f.pitched_notes as f64)
            .sum();
        pitched_total += pitched;
        in_scale_total += in_scale;
        let (features, inside_by_draw) = compare_rows(
            &reference.iter().map(|(row, _)| row).collect::<Vec<_>>(),
            &songs.iter().map(|(_, row, _)| row).collect::<Vec<_>>(),
        );
        inside_total += features.iter().filter(|f| f.inside).count();
        compared_total += features.len();
        for (total, inside) in resampled_totals.iter_mut().zip(inside_by_draw) {
            *total += inside;
        }
        let (groove_by_stem, _) = compare_rows(
            &reference
                .iter()
                .map(|(_, grooves)| grooves)
                .collect::<Vec<_>>(),
            &songs
                .iter()
                .map(|(_, _, grooves)| grooves)
                .collect::<Vec<_>>(),
        );
        styles.push(StyleReport {
            style: style.name().into(),
            real_pieces: reference.len(),
            generated_songs: songs.len(),
            in_scale_ratio: if pitched == 0 {
                1.0
            } else {
                in_scale / pitched as f64
            },
            features,
            groove_by_stem,
        });
    }
    let report = DitReport {
        songs: args.songs,
        pitched_notes: pitched_total,
        in_scale_ratio: in_scale_total / pitched_total.max(1) as f64,
        tempo_exact,
        meter_exact,
        duration_exact,
        sampler: settings.sampler,
        lengths: args.lengths,
        reference: args.reference,
        seconds_per_song_median: quartiles(&mut times)[1],
        styles,
        in_scale_by_mode: by_mode
            .into_values()
            .map(|mut mode| {
                mode.in_scale_ratio /= mode.pitched_notes.max(1) as f64;
                mode
            })
            .collect(),
        features_inside_iqr: inside_total,
        features_compared: compared_total,
        features_inside_resampled: percentiles(resampled_totals, [0.05, 0.5, 0.95]),
        diversity_seeds: args.diversity_seeds,
        lead_bars_compared,
        shared_lead_bars: shared,
        shared_lead_bars_by_notes: shared_by_notes,
        seed_pairs_sharing_a_bar: pairs,
    };
    print_report(&report);
    if let Some(path) = args.json {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The lead's non-empty bars, each as its notes relative to the bar start.
fn lead_bars(song: &Song) -> BTreeSet<Vec<(u32, i32, u32)>> {
    let steps = song.meter.steps_per_bar();
    let mut bars: BTreeMap<u32, Vec<(u32, i32, u32)>> = BTreeMap::new();
    if let Some(lead) = song.stem(Stem::Lead) {
        for note in &lead.notes {
            bars.entry(note.start / steps).or_default().push((
                note.start % steps,
                note.pitch,
                note.duration,
            ));
        }
    }
    bars.into_values()
        .map(|mut notes| {
            notes.sort();
            notes
        })
        .collect()
}

fn print_report(report: &DitReport) {
    println!(
        "{} songs: {:.2} % of {} pitched notes in the key's scale; tempo exact {}/{}, meter \
         exact {}/{}, duration exact to the sample {}/{}; median {:.2} s per song",
        report.songs,
        100.0 * report.in_scale_ratio,
        report.pitched_notes,
        report.tempo_exact,
        report.songs,
        report.meter_exact,
        report.songs,
        report.duration_exact,
        report.songs,
        report.seconds_per_song_median
    );
    let by_mode: Vec<String> = report
        .in_scale_by_mode
        .iter()
        .map(|m| {
            format!(
                "{} {:.2} % ({} songs)",
                m.mode,
                100.0 * m.in_scale_ratio,
                m.songs
            )
        })
        .collect();
    println!("in scale by mode: {}", by_mode.join(", "));
    println!(
        "features inside the {} pieces' interquartile range: {}/{} (songs drawn again: {}-{}, \
         median {})",
        report.reference.name(),
        report.features_inside_iqr,
        report.features_compared,
        report.features_inside_resampled[0],
        report.features_inside_resampled[2],
        report.features_inside_resampled[1]
    );
    for style in &report.styles {
        println!(
            "\n### {} ({} {} pieces, {} generated songs, {:.2} % in scale)\n",
            style.style,
            style.real_pieces,
            report.reference.name(),
            style.generated_songs,
            100.0 * style.in_scale_ratio
        );
        println!(
            "| feature | real Q1 | real median | real Q3 | generated median | inside | \
             inside, songs drawn again |"
        );
        println!("|---|---|---|---|---|---|---|");
        for f in &style.features {
            println!(
                "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {:.0} % |",
                f.feature,
                f.real_q1,
                f.real_median,
                f.real_q3,
                f.generated_median,
                if f.inside { "yes" } else { "no" },
                100.0 * f.inside_share
            );
        }
        let by_stem: Vec<String> = style
            .groove_by_stem
            .iter()
            .map(|f| {
                format!(
                    "{} {:.2} (real {:.2}-{:.2})",
                    f.feature.trim_end_matches(" groove"),
                    f.generated_median,
                    f.real_q1,
                    f.real_q3
                )
            })
            .collect();
        println!("\ngroove by stem, not counted: {}", by_stem.join(", "));
    }
    println!(
        "\ndiversity: {} seeds of one request, {} non-empty lead bars; {} bars shared between \
         seeds ({} of one note, {} of two, {} of three or more), {} seed pairs share at \
         least one",
        report.diversity_seeds,
        report.lead_bars_compared,
        report.shared_lead_bars,
        report.shared_lead_bars_by_notes[0],
        report.shared_lead_bars_by_notes[1],
        report.shared_lead_bars_by_notes[2],
        report.seed_pairs_sharing_a_bar
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(name: &str, values: &[f64]) -> Vec<FeatureRow> {
        values
            .iter()
            .map(|&v| FeatureRow::from([(name.to_string(), v)]))
            .collect()
    }

    #[test]
    fn resampled_songs_tell_a_firm_median_from_one_at_the_edge() {
        let reference = rows("x", &[1.0, 2.0, 3.0, 4.0, 5.0]);
        let reference: Vec<&FeatureRow> = reference.iter().collect();
        // Quartiles 2 and 4: a median of 3 among values close by stays inside whichever
        // songs are drawn; one of 4, half of whose songs lie above, often falls out.
        let firm = rows("x", &[2.9, 3.0, 3.1, 2.95, 3.05]);
        let (firm, firm_draws) = compare_rows(&reference, &firm.iter().collect::<Vec<_>>());
        assert!(firm[0].inside);
        assert_eq!(firm[0].inside_share, 1.0);
        assert!(firm_draws.iter().all(|&n| n == 1));
        let edge = rows("x", &[3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 3.8]);
        let (edge, edge_draws) = compare_rows(&reference, &edge.iter().collect::<Vec<_>>());
        assert!(edge[0].inside, "median 4.0 sits on Q3");
        assert!(
            edge[0].inside_share > 0.2 && edge[0].inside_share < 0.8,
            "{}",
            edge[0].inside_share
        );
        let inside_draws = edge_draws.iter().sum::<usize>() as f64 / RESAMPLES as f64;
        assert_eq!(inside_draws, edge[0].inside_share);
        assert_eq!(percentiles(vec![3, 1, 2, 5, 4], [0.0, 0.5, 1.0]), [1, 3, 5]);
    }
}
