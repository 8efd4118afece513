//! `refrain train calibrate`: fits the onset shift per stem that makes the DiT's sampled bars
//! decode to as many notes as real bars, and the bar-to-bar rhythm lift that makes them
//! repeat their rhythm as much (engine::train::calibrate), on training windows, reports both
//! on held-out windows too; then corrects the shifts on whole written songs
//! (engine::train::song_density), after fitting each style's chord-change penalty for the
//! plans the models are told (engine::train::plan_harmony); and stores them all in the DiT
//! file's config.

use crate::evaluate::evaluation_request;
use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use refrain_engine::dataset::{self, Piece, Split};
use refrain_engine::harmony::Labelling;
use refrain_engine::model::playing::OnsetUnit;
use refrain_engine::model::sampler::SamplerSettings;
use refrain_engine::music::{DrumClass, Stem, Style};
use refrain_engine::train::calibrate::{
    PlayingTally, StemCalibration, WindowDraw, calibration_pieces, count_training_playing,
    fit_onset_shift, sample_onset_logits,
};
use refrain_engine::train::latents::LatentSet;
use refrain_engine::train::plan_harmony::{HarmonyFigures, PlanHarmonyFit, fit_plan_harmony};
use refrain_engine::train::song_density::{
    Centre, Figure, GrooveMark, LiftStems, SongDensityData, SongRounds, StyleSongFit, ValueSearch,
    fit_song_density,
};
use refrain_engine::writer::{CpuBackend, DIT_FILE, Models, WriterSettings};
use std::path::PathBuf;

#[derive(Args)]
pub struct CalibrateArgs {
    /// Dataset folder made by `refrain dataset build` (the one the models were trained on).
    #[arg(long)]
    data: PathBuf,
    /// Folder holding autoencoder.safetensors and dit.safetensors; dit.safetensors is
    /// rewritten in place with the fitted shifts and the playing flags (weights unchanged).
    /// Asked for every time, so that the shipped file is only rewritten on purpose: work on
    /// a copy, or name `assets` to recalibrate the shipped file.
    #[arg(long)]
    assets: PathBuf,
    /// Windows sampled from the training pieces to fit on (as many again from held-out
    /// pieces to check).
    #[arg(long, default_value_t = 512)]
    windows: usize,
    /// Windows per style, for each style's own shifts (as many again held out to check);
    /// 0 fits the shared shifts only.
    #[arg(long, default_value_t = 256)]
    style_windows: usize,
    /// Bars per window.
    #[arg(long, default_value_t = 8)]
    window_bars: usize,
    /// Bars at the start of each window given clean (real), as the writer gives each window
    /// the bars before it; only the rest is sampled, and counted.
    #[arg(long, default_value_t = 0)]
    context_bars: usize,
    /// Rounds of writing whole songs after the window fit, correcting each style's stem
    /// shifts and drum-class shifts until its songs are as dense as its training pieces
    /// (songs drift denser along the chain of windows); each style keeps its closest round;
    /// 0 skips it.
    #[arg(long, default_value_t = 4)]
    song_rounds: usize,
    /// Songs per style written in each round (a style's median moves by about 10 % between
    /// two sets of 32 songs; 64 halve that noise at twice the time).
    #[arg(long, default_value_t = 64)]
    songs_per_style: usize,
    /// Leave a shift (or lift) as it is while its style's songs lie within this many standard
    /// errors of their figure (over the round's songs) of the training pieces', taking a
    /// smaller gap for the songs' sampling noise. 0 (the default, as the shipped file was
    /// fitted) steps on any gap; 2 let drum kits' polyphony drift (docs/MODEL_CARD.md).
    #[arg(long, default_value_t = 0.0)]
    hold_within_errors: f64,
    /// In a style whose pieces play a varying number of notes at once in a pitched stem
    /// (jazz's chords, lofi's and ambient's texture), fit that stem's shift so its songs'
    /// polyphony and notes per bar lie nearest the pieces' together, each gap
    /// measured in the pieces' interquartile range, instead of matching notes per bar alone
    /// (docs/MODEL_CARD.md). The value is which centre of the pieces' polyphony to aim at:
    /// mean (as the shipped file was fitted: jazz's pieces split between triads and
    /// sevenths, and their median sits on the triads), median, or off.
    #[arg(long, value_enum, default_value_t = PolyphonyCentre::Mean)]
    match_polyphony: PolyphonyCentre,
    /// Also raise the bar-to-bar rhythm lifts in the song rounds, in a style whose songs
    /// repeat their rhythm from bar to bar less than its training pieces, until each stem's
    /// songs repeat it as much: every stem's (`--fit-lifts`, or `all`) or the pitched
    /// stems' only (`pitched`: a lifted drum kit stacks its hits). Off by default: every
    /// stem's brought 2 more cells inside the IQR on 20-60 s songs but cost 7 at the
    /// held-out pieces' lengths (docs/MODEL_CARD.md).
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "all")]
    fit_lifts: Option<LiftStemsArg>,
    /// With `--fit-lifts`: fit a style's lifts only where its first round's songs repeat
    /// their rhythm less than its training pieces' median (`median`) or, leaving a style
    /// already inside the pieces' range as it is, their lower quartile (`lower-quartile`).
    #[arg(long, value_enum, default_value_t = GrooveMarkArg::Median)]
    lift_below: GrooveMarkArg,
    /// What the songs are asked for: requests like users' (`refrain evaluate dit`'s: the
    /// style's tempo range, 20 to 60 seconds, any key and meter, with other seeds) or
    /// training pieces' own (their tempo, key, meter, mood and length).
    #[arg(long, value_enum, default_value_t = SongRequests::Users)]
    song_requests: SongRequests,
    /// Keep the stored window fit and run only the plans' harmony fit and the song rounds.
    #[arg(long)]
    songs_only: bool,
    /// Plans per style for fitting, before the song rounds, how each style's plans for the
    /// models have their chords labelled (change penalty and preference for the primary
    /// chords), so that their chords range over as many roots and change as often as the
    /// style's training pieces' (the planner's melodies wander more than the corpus's
    /// tunes); 0 labels every style's plans as the corpus was.
    #[arg(long, default_value_t = 256)]
    plans_per_style: usize,
    /// Seed of the window choice and the noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write the report here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// `train calibrate --match-polyphony`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PolyphonyCentre {
    Off,
    Median,
    Mean,
}

/// `train calibrate --fit-lifts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LiftStemsArg {
    All,
    Pitched,
}

/// `train calibrate --lift-below`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GrooveMarkArg {
    Median,
    LowerQuartile,
}

/// `train calibrate --song-requests`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SongRequests {
    Users,
    Pieces,
}

pub fn run(args: CalibrateArgs) -> Result<()> {
    if !(args.hold_within_errors.is_finite() && args.hold_within_errors >= 0.0) {
        anyhow::bail!(
            "--hold-within-errors must be a number of standard errors, 0 or more (got {})",
            args.hold_within_errors
        );
    }
    if args.windows == 0 || args.window_bars == 0 {
        anyhow::bail!("--windows and --window-bars must be at least 1");
    }
    if args.context_bars >= args.window_bars {
        anyhow::bail!(
            "--context-bars {} leaves nothing to sample in windows of {} bars",
            args.context_bars,
            args.window_bars
        );
    }
    let assets = &args.assets;
    let device = Default::default();
    let mut models = Models::<CpuBackend>::load(assets, &device)?;
    if args.window_bars > models.dit_config.max_bars {
        anyhow::bail!(
            "--window-bars {} is longer than the DiT's {} bars",
            args.window_bars,
            models.dit_config.max_bars
        );
    }
    let mut report = if args.songs_only {
        if models.dit_config.onset_shift_by_style.is_empty() {
            anyhow::bail!(
                "--songs-only needs a DiT file calibrated on windows already (run without it)"
            );
        }
        serde_json::json!({})
    } else {
        fit_windows(&args, &mut models)?
    };
    // The plans' harmony fit and the song rounds read the same training pieces.
    let training = if args.plans_per_style > 0 || args.song_rounds > 0 {
        dataset::read_split(&args.data, Split::Train)?
    } else {
        Vec::new()
    };
    models.dit_config.plan_labelling_by_style = Vec::new();
    if args.plans_per_style > 0 {
        let plan_fit = fit_plan_harmony(&training, args.plans_per_style, args.seed)?;
        print_plan_harmony(&plan_fit);
        report["plan_harmony"] = serde_json::to_value(&plan_fit)?;
        models.dit_config.plan_labelling_by_style = plan_fit.labelling_by_style;
    }
    if args.song_rounds > 0 {
        let fits = fit_songs(&args, &training, &mut models)?;
        report["songs"] = serde_json::to_value(&fits)?;
    }
    let path = assets.join(DIT_FILE);
    // Written beside, then renamed: a failure leaves the old file whole.
    let partial = assets.join(format!("{DIT_FILE}.partial"));
    models
        .dit
        .save_safetensors(&models.dit_config, &partial)
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &path).with_context(|| format!("replacing {}", path.display()))?;
    eprintln!(
        "stored the shifts and how each stem is played in {}",
        path.display()
    );
    if let Some(json) = &args.json {
        std::fs::write(json, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", json.display()))?;
    }
    Ok(())
}

/// The window fit (see the module doc): fits and stores in `models.dit_config` the shifts,
/// lifts and playing flags, prints them, and gives them back for the JSON report.
fn fit_windows(args: &CalibrateArgs, models: &mut Models<CpuBackend>) -> Result<serde_json::Value> {
    let device = models.device;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("encoding {pos} pieces ({per_sec}, {elapsed})")
            .expect("static template"),
    );
    let set = LatentSet::read(
        &args.data,
        &models.autoencoder,
        &models.autoencoder_config,
        &device,
        &mut |done| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    let sampler = SamplerSettings::default();
    let styles = if args.style_windows > 0 {
        Style::ALL.len()
    } else {
        0
    };
    let bar = ProgressBar::new(2 * (args.windows + styles * args.style_windows) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} windows sampled ({eta})")
            .expect("static template"),
    );
    let playing = count_training_playing(&args.data)?;
    let mut done = 0u64;
    let mut fit = |style: Option<Style>, windows: usize| -> Result<Vec<StemCalibration>> {
        let mut sample = |split| {
            let draw = WindowDraw {
                split,
                style,
                windows,
                bars: args.window_bars,
                context: args.context_bars,
                seed: args.seed,
            };
            let logits = sample_onset_logits(models, &set, draw, sampler, &mut |n| {
                bar.set_position(done + n as u64)
            });
            done += windows as u64;
            logits
        };
        let train = sample(Split::Train)?;
        let held_out = sample(Split::Validation)?;
        Ok(fit_onset_shift(
            &train,
            &held_out,
            &playing.units(style),
            models.autoencoder_config.onset_logit_offset,
        ))
    };
    let shared = fit(None, args.windows)?;
    // A style needs training and held-out pieces long enough; one without keeps the shared
    // shifts.
    let has_pieces = |style: Style| {
        [Split::Train, Split::Validation].iter().all(|&split| {
            !calibration_pieces(&set, split, Some(style), args.window_bars).is_empty()
        })
    };
    let mut by_style = Vec::new();
    for &style in &Style::ALL[..styles] {
        if has_pieces(style) {
            by_style.push((style, Some(fit(Some(style), args.style_windows)?)));
        } else {
            by_style.push((style, None));
        }
    }
    bar.finish_and_clear();
    print_report("all styles", &shared, args.windows, args);
    for (style, report) in &by_style {
        match report {
            Some(report) => print_report(style.name(), report, args.style_windows, args),
            None => println!(
                "{}: no training and held-out pieces of {} bars; the shared shifts are used",
                style.name(),
                args.window_bars
            ),
        }
    }

    print_playing(&playing);
    playing.store(&mut models.dit_config);
    models.dit_config.onset_shift = shared.iter().map(|s| s.shift).collect();
    let per_style = |value: fn(&StemCalibration) -> f32| -> Vec<f32> {
        by_style
            .iter()
            .flat_map(|(_, report)| report.as_deref().unwrap_or(&shared).iter().map(value))
            .collect()
    };
    models.dit_config.onset_shift_by_style = per_style(|s| s.shift);
    models.dit_config.rhythm_lift_by_style = per_style(|s| s.lift);
    // The song rounds refit the drum classes on top of the new stem shifts.
    models.dit_config.drum_shift_by_style = Vec::new();
    Ok(serde_json::json!({
        "all_styles": shared,
        "playing": Style::ALL
            .iter()
            .map(|&style| {
                let stems = Stem::ALL
                    .iter()
                    .map(|&stem| {
                        let counts = playing.counts(style, stem);
                        let judged = counts.playing();
                        (stem.name(), serde_json::json!({
                            "notes": counts.notes,
                            "overlapping": counts.overlapping,
                            "strikes": counts.strikes,
                            "ragged_strikes": counts.ragged_strikes,
                            "onset_steps_by_voices": counts.onset_steps_by_voices,
                            "single_line": judged.single_line,
                            "overlapping_earlier_strikes": counts.overlapping_earlier_strikes,
                            "pieces": counts.tracks,
                            "pieces_overlapping_earlier_strikes":
                                counts.tracks_overlapping_earlier_strikes,
                            "strikes_end_together": judged.strikes_end_together,
                            "strikes_in_turn": judged.strikes_in_turn,
                            "voices": judged.voices,
                        }))
                    })
                    .collect::<std::collections::BTreeMap<_, _>>();
                (style.name(), stems)
            })
            .collect::<std::collections::BTreeMap<_, _>>(),
        "by_style": by_style
            .iter()
            .map(|(style, report)| (style.name(), report))
            .collect::<std::collections::BTreeMap<_, _>>(),
    }))
}

fn print_report(what: &str, report: &[StemCalibration], windows: usize, args: &CalibrateArgs) {
    println!(
        "{what}: onsets (or onset steps, for single lines and fixed voices) per sampled bar, \
         {windows} windows of {} bars each side, the first {} given (sampled: 8 Euler steps)",
        args.window_bars, args.context_bars
    );
    println!(
        "{:<8} {:>6} {:>6} {:>5} | {:>6} {:>8} {:>10} | {:>8} {:>8} {:>10} | groove train: real \
         sampled calibrated; held-out",
        "stem",
        "counts",
        "shift",
        "lift",
        "train",
        "sampled",
        "calibrated",
        "held-out",
        "sampled",
        "calibrated"
    );
    for s in report {
        let unit = match s.unit {
            OnsetUnit::Cells => "onsets",
            OnsetUnit::Steps => "steps",
        };
        println!(
            "{:<8} {:>6} {:>6.3} {:>5.2} | {:>6.2} {:>8.2} {:>10.2} | {:>8.2} {:>8.2} {:>10.2} | \
             {:.3} {:.3} {:.3}; {:.3} {:.3} {:.3}",
            s.stem,
            unit,
            s.shift,
            s.lift,
            s.train_real,
            s.train_sampled,
            s.train_calibrated,
            s.held_out_real,
            s.held_out_sampled,
            s.held_out_calibrated,
            s.train_groove[0],
            s.train_groove[1],
            s.train_groove[2],
            s.held_out_groove[0],
            s.held_out_groove[1],
            s.held_out_groove[2]
        );
    }
}

/// How the training pieces of each style play each stem, with the shares that decided it.
fn print_playing(playing: &PlayingTally) {
    println!(
        "how each stem is played in the training pieces (notes overlapping an earlier one -> a \
         single line; overlapping an earlier strike, and pieces with any -> in turn; strikes \
         ending raggedly -> together; fixed voices): decoding follows it"
    );
    for style in Style::ALL {
        let cells: Vec<String> = Stem::ALL
            .iter()
            .map(|&stem| {
                let c = playing.counts(style, stem);
                let judged = c.playing();
                let share = |part: u64, whole: u64| 100.0 * part as f64 / whole.max(1) as f64;
                let mark = |on: bool, word: &str| {
                    if on {
                        format!(" {word}")
                    } else {
                        String::new()
                    }
                };
                format!(
                    "{} {:.1}%{} {:.1}% ({:.0}%){} {:.1}%{}{}",
                    stem.name(),
                    share(c.overlapping, c.notes),
                    mark(judged.single_line, "line"),
                    share(c.overlapping_earlier_strikes, c.notes),
                    share(c.tracks_overlapping_earlier_strikes, c.tracks),
                    mark(judged.strikes_in_turn, "in turn"),
                    share(c.ragged_strikes, c.strikes),
                    mark(judged.strikes_end_together, "together"),
                    mark(judged.voices > 0, &format!("{} voices", judged.voices)),
                )
            })
            .collect();
        println!("{:<10} {}", style.name(), cells.join(" | "));
    }
}

/// Prints the plans' harmony fit (engine::train::plan_harmony), one row per style.
fn print_plan_harmony(fit: &PlanHarmonyFit) {
    if fit.styles.is_empty() {
        return;
    }
    println!(
        "plans' harmony: chord-root entropy quartiles (bits) and chord changes per bar \
         (median) of the training pieces | of plans labelled as the corpus was (change \
         penalty {:.2}, prior weight {:.1}) | as fitted for the style (one-root plans)",
        Labelling::CORPUS.change_penalty,
        Labelling::CORPUS.prior_weight
    );
    let cells = |f: &HarmonyFigures| {
        format!(
            "{:.2} {:.2} {:.2}, {:.2}/bar",
            f.root_entropy[0], f.root_entropy[1], f.root_entropy[2], f.changes_per_bar
        )
    };
    for style in &fit.styles {
        println!(
            "{:<10} {} | {} | penalty {:.2}, weight {:.1}: {} ({:.0} %)",
            style.style.name(),
            cells(&style.pieces_figures),
            cells(&style.corpus_figures),
            style.labelling.change_penalty,
            style.labelling.prior_weight,
            cells(&style.chosen_figures),
            100.0 * style.chosen_figures.one_root_share
        );
    }
}

/// The song rounds (engine::train::song_density): fits and stores each style's stem and
/// drum-class shifts on whole songs, and prints what each round measured.
fn fit_songs(
    args: &CalibrateArgs,
    training: &[Piece],
    models: &mut Models<CpuBackend>,
) -> Result<Vec<StyleSongFit>> {
    if args.songs_per_style == 0 {
        anyhow::bail!("--songs-per-style must be at least 1 (or --song-rounds 0)");
    }
    let mut data = SongDensityData::of(training, args.songs_per_style, args.seed);
    if args.song_requests == SongRequests::Users {
        // Indices far past any evaluation's, so no song is also an evaluation song.
        let first = 1_000_000 + args.seed as usize * Style::ALL.len() * args.songs_per_style;
        for (&style, requests) in &mut data.requests {
            *requests = (0..args.songs_per_style)
                .map(|i| evaluation_request(first + i * Style::ALL.len() + style.number(), style))
                .collect();
        }
    }
    let songs: usize = data.requests.values().map(Vec::len).sum();
    let bar = ProgressBar::new((songs * args.song_rounds) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} songs written ({eta})")
            .expect("static template"),
    );
    let fits = fit_song_density(
        models,
        &data,
        &WriterSettings::default(),
        SongRounds {
            rounds: args.song_rounds,
            fit_lifts: args.fit_lifts.map(|stems| match stems {
                LiftStemsArg::All => LiftStems::All,
                LiftStemsArg::Pitched => LiftStems::Pitched,
            }),
            lift_below: match args.lift_below {
                GrooveMarkArg::Median => GrooveMark::Median,
                GrooveMarkArg::LowerQuartile => GrooveMark::LowerQuartile,
            },
            hold_within_errors: args.hold_within_errors,
            match_polyphony: match args.match_polyphony {
                PolyphonyCentre::Off => None,
                PolyphonyCentre::Median => Some(Centre::Median),
                PolyphonyCentre::Mean => Some(Centre::Mean),
            },
        },
        &mut |n| bar.set_position(n as u64),
    )?;
    bar.finish_and_clear();
    println!(
        "whole songs, {} per style ({:?} requests), {} rounds: notes per bar (median over \
         songs; drum classes: mean) and groove (median) of the training pieces -> each round's \
         songs, shift or lift from -> to; each style keeps its closest round",
        args.songs_per_style, args.song_requests, args.song_rounds
    );
    // Densities (with the polyphony after a slash where it is aimed at too) or grooves.
    let tried = |search: &ValueSearch| {
        search
            .tried
            .iter()
            .enumerate()
            .map(|(round, (_, measured))| match search.figure {
                Figure::Density => match search
                    .polyphony
                    .as_ref()
                    .and_then(|aim| aim.measured.get(round))
                {
                    Some(polyphony) => format!("{measured:.2}/{polyphony:.2}"),
                    None => format!("{measured:.2}"),
                },
                Figure::Groove => format!("{measured:.3}"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    for fit in &fits {
        let mut cells = Vec::new();
        for ((stem, search), (from, to)) in Stem::ALL.iter().zip(&fit.stems).zip(&fit.stem_shifts) {
            if let Some(search) = search {
                let target = match &search.polyphony {
                    Some(aim) => format!("{:.2}/{:.2}", search.target, aim.target),
                    None => format!("{:.2}", search.target),
                };
                cells.push(format!(
                    "{} {target} -> {} ({from:.2} -> {to:.2})",
                    stem.name(),
                    tried(search)
                ));
            }
        }
        println!(
            "{:<10} {} | kept round {} of gaps {}",
            fit.style.name(),
            cells.join(" | "),
            fit.kept_round.map_or("-".into(), |r| (r + 1).to_string()),
            fit.round_gaps
                .iter()
                .map(|g| format!("{g:.1}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let grooves: Vec<String> = Stem::ALL
            .iter()
            .zip(&fit.lifts)
            .zip(&fit.stem_lifts)
            .filter_map(|((stem, search), (from, to))| {
                search.as_ref().map(|search| {
                    format!(
                        "{} {:.3} -> {} (lift {from:.2} -> {to:.2})",
                        stem.name(),
                        search.target,
                        tried(search)
                    )
                })
            })
            .collect();
        let whole = |g: Option<f64>| g.map_or("-".into(), |g| format!("{g:.3}"));
        println!(
            "{:<10} groove of whole songs {} (lifts below {}) -> first round {}: {}",
            "",
            whole(fit.groove.0),
            whole(fit.lift_bar),
            whole(fit.groove.1),
            if grooves.is_empty() {
                "lifts kept".to_string()
            } else {
                grooves.join(" | ")
            }
        );
        let classes: Vec<String> = DrumClass::ALL
            .iter()
            .zip(&fit.drum_classes)
            .zip(&fit.drum_shifts)
            .map(|((class, search), shift)| {
                format!(
                    "{class:?} {:.2} -> {} ({shift:+.2})",
                    search.target,
                    tried(search)
                )
            })
            .collect();
        if !classes.is_empty() {
            println!("{:<10} drums: {}", "", classes.join(" | "));
        }
    }
    Ok(fits)
}
