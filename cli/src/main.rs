//! The `refrain` command line: generate songs, render MIDI to audio, build the training
//! corpus and train the models. Errors are reported in plain words with a non-zero exit status.

// Keeps freed memory mapped for the next song instead of returning it to the kernel and
// faulting it in again (docs/AUDIO.md, "Speed").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, Result, bail};
use backend::Backend;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use refrain_engine::corpus::wheel;
use refrain_engine::dataset::{self, BuildOptions};
use refrain_engine::generate::{self, Generation};
use refrain_engine::licence::Licence;
use refrain_engine::model::BarAutoencoderConfig;
use refrain_engine::music::{Key, Meter, Mood, Song, Stem, Style};
use refrain_engine::plan::Request;
use refrain_engine::render::soundfont::SoundFontBank;
use refrain_engine::render::{Instruments, RenderOptions};
use refrain_engine::train::data::{StemBarOptions, StemBarSet};
use refrain_engine::train::loss::ReconstructionLossConfig;
use refrain_engine::train::{AutoencoderTrainingConfig, TrainSummary};
use refrain_engine::words;
use refrain_engine::writer;
use std::path::PathBuf;
use std::process::ExitCode;

mod backend;
mod batch;
mod calibrate;
mod evaluate;
mod evaluate_audio;
mod evaluate_reasoning;
mod guard;
mod inspect;
mod pianoroll;
mod play;
mod score;
mod studio;
mod thinking;
mod train_critic;
mod train_dit;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "refrain",
    version,
    about = "Generate finished, licence-clean music: a mix, a WAV per stem, MIDI and a manifest.",
    long_about = "refrain writes every stem of a song (drums, bass, chords, lead, texture), renders \
                  it to a loudness-normalised mix and one WAV per stem, and writes the MIDI, the \
                  plan it followed and a manifest of where every part came from.\n\n\
                  Start with:  refrain generate \"lofi, rainy night, 80 bpm, 90 s\" --out out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a new song into a folder: mix.wav, stems/*.wav, song.mid, plan.json,
    /// trace.jsonl, manifest.json.
    Generate(GenerateArgs),
    /// Render any MIDI file to audio with the built-in instruments.
    Render(RenderArgs),
    /// Write many songs from a request file (one JSON object per line, each with an "id"):
    /// DIR/<id>/ per request, DIR/summary.jsonl at the end. The models load once; a stopped
    /// run resumes where it left off; --shard I/N splits the file over N workers.
    ///
    /// Example line:  {"id": "ad-01", "style": "lofi", "bpm": 80, "seconds": 30, "seed": 1}
    Batch(batch::BatchArgs),
    /// Judge any MIDI file with the critic alone: overall and per-aspect probabilities
    /// (harmony, rhythm, melody, continuity, adherence), segment by segment with reasons.
    Score(score::ScoreArgs),
    /// Build or inspect the licence-clean training corpus.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Train a model from a built dataset (checkpoints, resume, a loss log).
    #[command(subcommand)]
    Train(TrainCommand),
    /// Measure the trained models (the figures in docs/MODEL_CARD.md).
    #[command(subcommand)]
    Evaluate(evaluate::EvaluateCommand),
    /// Explain a generated song: print its reasoning trace readably and draw a piano roll.
    ///
    /// Reads DIR/trace.jsonl and prints a header (the song's bars and stems, the segments, how
    /// many of each decision: accept, reject, prune, resample, retract, backtrack), then segment
    /// by segment and attempt by attempt what the reasoning loop decided: at each checkpoint
    /// step which particles were pruned and which kept, with the critic's overall score and
    /// weakest aspect; which finished candidate was accepted or rejected; and every retract and
    /// backtrack with its reason in full. Bars count from 0 and a range ends before its last
    /// number: "bars 12-16" is bars 12, 13, 14 and 15. --full prints every trace line as it is.
    ///
    /// Then reads DIR/song.mid (and DIR/plan.json for the sections) and draws a piano roll,
    /// DIR/pianoroll.png unless --png says otherwise: time runs left to right, one band per stem
    /// (drums, bass, chords, lead, texture, top to bottom), one colour per stem, louder notes
    /// brighter. Thin lines mark bars, thick ones sections, dotted ones the ends of accepted
    /// segments; segments that were retracted or backtracked are tinted red, with a red mark
    /// along the top. Without song.mid the trace is still printed and the picture skipped.
    ///
    /// Example:  refrain inspect out --png out/roll.png
    Inspect(inspect::InspectArgs),
    /// Play an endless live session: written one section ahead of the playhead (a short
    /// arranged intro first, then the DiT and its critic), with the intensity, boundaries and
    /// statistics a game engine would use.
    ///
    /// Prints each section as it is placed, the bar and section as they play, every control
    /// and where it landed, and the critic's accept, retract and backtrack decisions.
    /// Sound needs a build with `--features audio`; --no-audio pulls the audio with a null sink
    /// in real time instead, and --stats FILE.json writes first_audio_ms, underruns, frames and
    /// every transition (requested and actual frame, and whether it was late).
    ///
    /// On a terminal, keys steer it under a one-line status: up/+ and down/- intensity, m
    /// mood, s style, n next section, space pause and resume, w save what was heard, q quit.
    ///
    /// Example:  refrain play "synthwave, night drive" --no-audio --seconds 60 \
    ///             --intensity-every-bars 8 --mood-every-bars 16 --stats s.json
    Play(play::PlayArgs),
}

#[derive(Subcommand)]
enum TrainCommand {
    /// Train the bar autoencoder (stem-bar planes <-> latent vectors) and write
    /// autoencoder.safetensors, its model card autoencoder.json, loss.csv and checkpoints/
    /// into --out.
    Autoencoder(TrainAutoencoderArgs),
    /// Train the diffusion transformer on the dataset's bars encoded by a trained bar
    /// autoencoder; writes dit.safetensors, its model card dit.json, loss.csv and
    /// checkpoints/ into --out.
    Dit(train_dit::TrainDitArgs),
    /// Fit the onset threshold shift per stem (over all styles, and per style) that makes the
    /// DiT's sampled bars decode to as many notes as real bars, and the bar-to-bar rhythm
    /// lift that makes them repeat their rhythm as much (fitted on training windows, checked
    /// on held-out ones), count how each style's training pieces play each stem
    /// (single lines, fixed voices, strikes in turn and ending together), and store them in
    /// dit.safetensors for decoding to follow. Run it after `train dit`, on the same dataset.
    Calibrate(calibrate::CalibrateArgs),
    /// Train the critic: real windows of the dataset against hard negatives (off-key notes,
    /// jittered rhythm, a stem shifted by a beat, spliced bars, wrong conditions, dropped or
    /// overfull stems, copies of the context, the DiT's own weak samples); calibrate it on
    /// pieces it never saw and measure it on held-out ones. Writes critic.safetensors,
    /// critic-evaluation.json, loss.csv and checkpoints/ into --out.
    Critic(train_critic::TrainCriticArgs),
}

#[derive(Args)]
struct TrainAutoencoderArgs {
    /// Dataset folder made by `refrain dataset build`.
    #[arg(long)]
    data: PathBuf,
    /// Run folder: checkpoints, loss.csv, the config and at the end the weights.
    #[arg(long)]
    out: PathBuf,
    /// Optimiser steps in the whole run (raise it with --resume to train longer).
    #[arg(long, default_value_t = 20_000)]
    steps: u64,
    /// Stem-bars per step.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Seed: weights, batch order and evaluation sample all follow from it.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Size of each stem-bar's latent vector.
    #[arg(long, default_value_t = 48)]
    latent_dim: usize,
    /// Peak learning rate (AdamW, warm-up then cosine decay).
    #[arg(long, default_value_t = 1e-3)]
    learning_rate: f64,
    /// Evaluate on held-out bars and log a loss.csv row every N steps.
    #[arg(long, default_value_t = 500)]
    eval_every: u64,
    /// Held-out stem-bars per evaluation.
    #[arg(long, default_value_t = 4096)]
    eval_bars: usize,
    /// Write a checkpoint every N steps.
    #[arg(long, default_value_t = 500)]
    checkpoint_every: u64,
    /// Continue from the newest checkpoint in --out.
    #[arg(long)]
    resume: bool,
    /// Backend: flex (the default) or ndarray (in default builds; docs/AUTOENCODER.md compares
    /// them), or cuda (builds with the cuda feature).
    #[arg(long, value_enum, default_value_t = Backend::Flex)]
    backend: Backend,
}

#[derive(Args)]
struct GenerateArgs {
    /// What you want, in words (English or Chinese), e.g. "lofi, rainy night, 80 bpm, 90 s" or
    /// "低保真 雨夜 80拍 90秒". Flags below win over the prompt.
    prompt: Option<String>,
    /// Style: lofi, synthwave, rock, ambient, cinematic, chiptune, jazz, folk.
    #[arg(long, value_parser = parse_style)]
    style: Option<Style>,
    /// Mood: calm, happy, sad, dark, epic, dreamy, energetic, tense, romantic, nostalgic.
    #[arg(long, value_parser = parse_mood)]
    mood: Option<Mood>,
    /// Tempo in quarter notes per minute (30-300).
    #[arg(long)]
    bpm: Option<f64>,
    /// Key, e.g. "A minor", "D major", "F# dorian", "Bb".
    #[arg(long, value_parser = parse_key)]
    key: Option<Key>,
    /// Meter: 4/4, 3/4 or 6/8.
    #[arg(long, value_parser = parse_meter)]
    meter: Option<Meter>,
    /// Length in seconds; the audio has exactly seconds x sample-rate frames.
    #[arg(long, conflicts_with = "bars")]
    seconds: Option<f64>,
    /// Length in bars (plus a short ring-out unless --loop).
    #[arg(long)]
    bars: Option<u32>,
    /// Make a loop: whole bars, no intro or outro.
    #[arg(long = "loop")]
    looped: bool,
    /// Stems to write, comma-separated (default: drums,bass,chords,lead,texture).
    #[arg(long, value_delimiter = ',', value_parser = parse_stem)]
    stems: Option<Vec<Stem>>,
    /// Seed: the same request and seed give the same bytes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder (created; must not exist or be empty unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Replace the output folder if it exists.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    studio: studio::StudioArgs,
}

#[derive(Args)]
struct RenderArgs {
    /// The MIDI file (type 0 or 1).
    midi: PathBuf,
    /// Output folder for mix.wav, stems/*.wav and manifest.json.
    #[arg(long)]
    out: PathBuf,
    /// Write only mix.wav and manifest.json, no stems/ (the stems are still rendered: the
    /// mix is their sum through the master).
    #[arg(long)]
    mix_only: bool,
    /// Style the song is mixed in (EQ, compression, reverb, swing); default: the file's
    /// own label, else lofi.
    #[arg(long, value_parser = parse_style)]
    style: Option<Style>,
    /// Render a seamless loop of the file's whole bars: tails wrap into the start, and the
    /// WAVs carry the loop points (smpl chunk).
    #[arg(long = "loop")]
    looped: bool,
    #[command(flatten)]
    audio: AudioArgs,
    /// Replace the output folder if it exists.
    #[arg(long)]
    force: bool,
}

/// How the audio is written: the same flags for `generate` and `render`.
#[derive(Args)]
struct AudioArgs {
    /// Output sample rate: 48000 or 44100.
    #[arg(long, default_value_t = 48_000, value_parser = parse_sample_rate)]
    sample_rate: u32,
    /// Bits per WAV sample: 24, or 16 (dithered).
    #[arg(long, default_value_t = 24, value_parser = parse_bit_depth)]
    bit_depth: u16,
    /// Integrated loudness of the mix, LUFS (EBU R128).
    #[arg(long, default_value_t = -14.0, allow_hyphen_values = true, value_parser = parse_lufs)]
    lufs: f64,
    /// Play every stem from this SoundFont (SF2) bank instead of the default instruments
    /// (built-in synths, with piano, strings, guitar, winds and other acoustic instruments
    /// from the shipped public-domain General MIDI bank). Needs --soundfont-licence.
    #[arg(long, requires = "soundfont_licence", conflicts_with = "synth_only")]
    soundfont: Option<PathBuf>,
    /// The licence of the --soundfont bank, recorded in the manifest: public-domain, cc0,
    /// mit, bsd, apache-2.0, zlib, or cc-by:"ATTRIBUTION". Banks under other licences
    /// (GPL, non-commercial, unknown) cannot be used.
    #[arg(long, value_parser = parse_licence)]
    soundfont_licence: Option<Licence>,
    /// Play every stem on the built-in synthesisers (no samples).
    #[arg(long)]
    synth_only: bool,
}

impl AudioArgs {
    /// The instruments these flags ask for; the shipped bank comes from `assets`.
    fn instruments(&self, assets: &std::path::Path) -> Result<Instruments> {
        if self.synth_only {
            return Ok(Instruments::default());
        }
        if let Some(path) = &self.soundfont {
            let licence = self
                .soundfont_licence
                .clone()
                .context("--soundfont needs --soundfont-licence")?;
            let bank = SoundFontBank::load(path, licence, path.display().to_string())?;
            return Ok(Instruments {
                bank: Some(bank),
                all_sampled: true,
            });
        }
        Ok(Instruments {
            bank: Some(SoundFontBank::shipped(assets)?),
            all_sampled: false,
        })
    }

    fn options(&self, looped: bool) -> RenderOptions {
        RenderOptions {
            sample_rate: self.sample_rate,
            target_lufs: self.lufs,
            bit_depth: self.bit_depth,
            looped,
            ..RenderOptions::default()
        }
    }
}

#[derive(Subcommand)]
enum DatasetCommand {
    /// Fetch the licence-clean sources, arrange them into multi-stem pieces and write them
    /// with a manifest of every source, its licence and what was made of it.
    Build {
        /// Output folder (must not exist or be empty unless --force).
        #[arg(long)]
        out: PathBuf,
        /// Use this music21 wheel instead of fetching it (it is still checked by hash).
        #[arg(long)]
        wheel: Option<PathBuf>,
        /// Where the fetched wheel is kept between builds.
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Styles each public-domain tune is arranged in.
        #[arg(long, default_value_t = 2)]
        styles_per_tune: usize,
        /// Songs written from scratch per style by refrain's own writers.
        #[arg(long, default_value_t = 150)]
        own_songs_per_style: u32,
        #[arg(long)]
        force: bool,
    },
    /// Count a built dataset: pieces, bars, styles, licences, refused items.
    Stats {
        dir: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Index every piece's lead melody into the memorisation guard (melody-guard.bin), which
    /// tells when a generated lead copies the corpus.
    Guard(guard::GuardArgs),
}

pub(crate) fn parse_style(s: &str) -> Result<Style, String> {
    words::style(s).map_err(words::message)
}

pub(crate) fn parse_mood(s: &str) -> Result<Mood, String> {
    words::mood(s).map_err(words::message)
}

fn parse_key(s: &str) -> Result<Key, String> {
    words::key(s).map_err(words::message)
}

fn parse_meter(s: &str) -> Result<Meter, String> {
    words::meter(s).map_err(words::message)
}

fn parse_stem(s: &str) -> Result<Stem, String> {
    words::stem(s).map_err(words::message)
}

fn parse_sample_rate(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(rate @ (44_100 | 48_000)) => Ok(rate),
        _ => Err(format!("sample rate must be 48000 or 44100, not '{s}'")),
    }
}

fn parse_licence(s: &str) -> Result<Licence, String> {
    let lower = s.trim().to_lowercase();
    Ok(match lower.as_str() {
        "public-domain" | "pd" => Licence::PublicDomain,
        "cc0" | "cc0-1.0" => Licence::Cc0,
        "mit" => Licence::Mit,
        "bsd" => Licence::Bsd,
        "apache-2.0" | "apache" => Licence::Apache2,
        "zlib" => Licence::Zlib,
        _ => match s.trim().split_once(':') {
            Some((kind, attribution))
                if kind.eq_ignore_ascii_case("cc-by") && !attribution.trim().is_empty() =>
            {
                Licence::CcBy {
                    attribution: attribution.trim().to_string(),
                }
            }
            _ => {
                return Err(format!(
                    "'{s}' is not a licence refrain can record for instruments; use public-domain, \
                     cc0, mit, bsd, apache-2.0, zlib or cc-by:\"ATTRIBUTION\" (GPL, \
                     non-commercial and unknown licences are refused)"
                ));
            }
        },
    })
}

fn parse_bit_depth(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(bits @ (16 | 24)) => Ok(bits),
        _ => Err(format!("bit depth must be 24 or 16, not '{s}'")),
    }
}

fn parse_lufs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(lufs) if (-40.0..=-5.0).contains(&lufs) => Ok(lufs),
        _ => Err(format!(
            "loudness must be a number of LUFS from -40 to -5 (-14 is usual), not '{s}'"
        )),
    }
}

/// The message a panic carried (`panic!` with a literal or a formatted string), or "".
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

fn spinner(message: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("static template"),
    );
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

fn run_generate(args: GenerateArgs) -> Result<()> {
    generate::check_output_dir(&args.out, args.force)?;
    let request = Request {
        prompt: args.prompt.unwrap_or_default(),
        style: args.style,
        mood: args.mood,
        bpm: args.bpm,
        key: args.key,
        meter: args.meter,
        seconds: args.seconds,
        bars: args.bars,
        looped: args.looped,
        stems: args.stems,
        seed: args.seed,
    };
    let started = Instant::now();
    let studio = studio::Studio::open(args.studio)?;
    let think = studio.think();
    let mut judges = studio.judges(think.settings().use_critic)?;
    let think = studio.think_settings(think, &judges)?;
    let progress = spinner("writing and rendering");
    let generation: Generation = studio.make(&request, &mut judges, think)?;
    progress.set_message(format!("writing {}", args.out.display()));
    generation.write_to(&args.out, args.force)?;
    progress.finish_and_clear();
    let plan = &generation.plan;
    eprintln!(
        "wrote {}: {} in {}, {} bpm, {}, {} bars + {:.2} s ring-out = {:.3} s; {:.1} LUFS, {:.1} dBTP ({:.2} s)",
        args.out.display(),
        plan.style,
        plan.key_name,
        plan.tempo_bpm,
        plan.meter,
        plan.bars,
        plan.tail_seconds,
        plan.seconds,
        generation.rendered.loudness_lufs,
        generation.rendered.true_peak_dbtp,
        started.elapsed().as_secs_f64()
    );
    if !plan.prompt_unused.is_empty() {
        eprintln!("prompt words not used: {}", plan.prompt_unused.join(", "));
    }
    Ok(())
}

/// Reads a MIDI file into a song, labelled with `style` where given.
pub(crate) fn read_midi_file(path: &std::path::Path, style: Option<Style>) -> Result<Song> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut song = refrain_engine::midi::read_midi(&bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if let Some(style) = style {
        song.style = style;
    }
    Ok(song)
}

fn run_render(args: RenderArgs) -> Result<()> {
    generate::check_output_dir(&args.out, args.force)?;
    let song = read_midi_file(&args.midi, args.style)?;
    let options = args.audio.options(args.looped);
    let bars_seconds = f64::from(song.steps()) * song.step_seconds();
    // A song gets two seconds to ring out; a loop is exactly its bars.
    let seconds = if args.looped {
        bars_seconds
    } else {
        bars_seconds + 2.0
    };
    if args.looped && song.bars == 0 {
        bail!("{} holds no bars to loop", args.midi.display());
    }
    let frames = (seconds * f64::from(options.sample_rate)).round() as u64;
    let instruments = args.audio.instruments(&writer::default_assets_dir())?;
    let started = Instant::now();
    let rendered = refrain_engine::render::render_song_with(&song, frames, &options, &instruments)?;
    let render_seconds = started.elapsed().as_secs_f64();
    let staging = generate::staging_dir(&args.out)?;
    let write = || -> Result<()> {
        let title = args
            .midi
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "song".into());
        let stems = if args.mix_only {
            generate::StemFiles::Skipped
        } else {
            generate::StemFiles::Written
        };
        generate::write_audio_files(&staging, &rendered, &options, &title, stems)?;
        let manifest = serde_json::json!({
            "software": generate::SOFTWARE,
            "source_midi": args.midi.display().to_string(),
            "style": song.style,
            "looped": args.looped,
            "seconds": seconds,
            "frames": frames,
            "sample_rate": options.sample_rate,
            "bit_depth": options.bit_depth,
            "loudness_lufs": rendered.loudness_lufs,
            "true_peak_dbtp": rendered.true_peak_dbtp,
            "master_gain_db": rendered.master_gain_db,
            "licences": generate::instrument_licences(&song, &instruments),
        });
        std::fs::write(
            staging.join("manifest.json"),
            serde_json::to_vec_pretty(&manifest)?,
        )?;
        generate::move_into_place(&staging, &args.out)?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    eprintln!(
        "wrote {} ({seconds:.2} s of audio rendered in {render_seconds:.2} s; {:.1} LUFS, {:.1} dBTP)",
        args.out.display(),
        rendered.loudness_lufs,
        rendered.true_peak_dbtp
    );
    Ok(())
}

fn default_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("refrain")
}

fn run_dataset(command: DatasetCommand) -> Result<()> {
    match command {
        DatasetCommand::Build {
            out,
            wheel: wheel_path,
            cache,
            styles_per_tune,
            own_songs_per_style,
            force,
        } => {
            generate::check_output_dir(&out, force)?;
            if styles_per_tune == 0 || styles_per_tune > Style::ALL.len() {
                bail!(
                    "--styles-per-tune must be between 1 and {}",
                    Style::ALL.len()
                );
            }
            let started = Instant::now();
            let wheel_file = match wheel_path {
                Some(path) => {
                    let found = wheel::file_sha256(&path)?;
                    if found != wheel::MUSIC21_WHEEL_SHA256 {
                        bail!(
                            "{} has sha256 {found}, not the recorded {} of music21 {}; refusing \
                             to build from an unchecked file",
                            path.display(),
                            wheel::MUSIC21_WHEEL_SHA256,
                            wheel::MUSIC21_VERSION
                        );
                    }
                    path
                }
                None => {
                    let cache = cache.unwrap_or_else(default_cache);
                    let fetching = spinner(&format!(
                        "fetching music21 {} (checked by sha256) into {}",
                        wheel::MUSIC21_VERSION,
                        cache.display()
                    ));
                    let path = wheel::fetch_music21_wheel(&cache)?;
                    fetching.finish_and_clear();
                    path
                }
            };
            let reading = spinner("reading the public-domain collections");
            let report = wheel::load_corpus(&wheel_file)?;
            reading.finish_and_clear();
            for refusal in &report.refused {
                eprintln!("refused {}: {}", refusal.item, refusal.reason);
            }
            for (reason, count) in &report.skipped {
                eprintln!("skipped or approximated {count}x: {reason}");
            }
            let options = BuildOptions {
                styles_per_tune,
                own_songs_per_style,
            };
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "arranging {bar:40} {pos}/{len} pieces ({per_sec}, eta {eta})",
                )
                .expect("static template"),
            );
            let (pieces, sources) = dataset::build_pieces(&report, &options, &|done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            });
            bar.finish_and_clear();
            let hash = dataset::write_dataset(
                &out,
                force,
                &report,
                (
                    &format!("music21-{}-py3-none-any.whl", wheel::MUSIC21_VERSION),
                    wheel::MUSIC21_WHEEL_SHA256,
                ),
                &pieces,
                sources,
            )?;
            eprintln!(
                "wrote {}: {} pieces from {} tunes and {} own songs; manifest sha256 {hash} ({:.1} s)",
                out.display(),
                pieces.len(),
                report.tunes.len(),
                own_songs_per_style as usize * Style::ALL.len(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        DatasetCommand::Stats { dir, json } => {
            let stats = dataset::dataset_stats(&dir)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                println!("pieces           {}", stats.pieces);
                println!("bars             {}", stats.bars);
                println!("multi-stem bars  {}", stats.multi_stem_bars);
                println!("sources          {}", stats.sources);
                println!("refused          {}", stats.refused);
                for (style, n) in &stats.pieces_per_style {
                    println!("style {style:<11}{n}");
                }
                for (licence, n) in &stats.licences {
                    println!("licence {licence}: {n}");
                }
                for (split, n) in &stats.splits {
                    println!("split {split}: {n}");
                }
                println!("manifest sha256  {}", stats.manifest_sha256);
            }
            Ok(())
        }
        DatasetCommand::Guard(args) => guard::run(args),
    }
}

fn run_train(command: TrainCommand) -> Result<()> {
    let args = match command {
        TrainCommand::Autoencoder(args) => args,
        TrainCommand::Dit(args) => return train_dit::run(args),
        TrainCommand::Calibrate(args) => return calibrate::run(args),
        TrainCommand::Critic(args) => return train_critic::run(args),
    };
    let config = AutoencoderTrainingConfig::new(
        BarAutoencoderConfig::new().with_latent_dim(args.latent_dim),
        ReconstructionLossConfig::new(),
    )
    .with_steps(args.steps)
    .with_batch(args.batch)
    .with_seed(args.seed)
    .with_learning_rate(args.learning_rate)
    .with_eval_every(args.eval_every)
    .with_eval_bars(args.eval_bars)
    .with_checkpoint_every(args.checkpoint_every);
    if matches!(args.backend, Backend::Cuda) {
        backend::check_cuda("--backend cuda")?;
    }
    let reading = spinner(&format!("reading stem-bars from {}", args.data.display()));
    let data = StemBarSet::read(&args.data, &StemBarOptions::default())?;
    reading.finish_and_clear();
    eprintln!(
        "{} training and {} validation stem-bars from {} pieces ({} empty ones left out)",
        data.train.len(),
        data.validation.len(),
        data.pieces.len(),
        data.empty_skipped
    );
    let summary = backend::on_training_backend!(
        args.backend,
        train_on(&config, &data, &args.out, args.resume)
    )?;
    let f1 = summary
        .last_evaluation
        .map(|e| format!("{:.4}", e.notes.f1()))
        .unwrap_or_else(|| "-".into());
    eprintln!(
        "trained {} parameters from step {} to {}; validation note F1 {f1}; wrote {}",
        summary.parameters,
        summary.resumed_from,
        summary.steps,
        args.out.join(refrain_engine::train::WEIGHTS_FILE).display()
    );
    Ok(())
}

fn train_on<B: burn::tensor::backend::AutodiffBackend>(
    config: &AutoencoderTrainingConfig,
    data: &StemBarSet,
    out: &std::path::Path,
    resume: bool,
) -> Result<TrainSummary> {
    let mut bar = TrainingBar::new(config.steps);
    let summary = refrain_engine::train::train_autoencoder::<B>(
        config,
        data,
        out,
        resume,
        &B::Device::default(),
        &mut |progress| {
            let evaluation = progress
                .evaluation
                .map(|e| format!("validation loss {:.4}, note F1 {:.4}", e.loss, e.notes.f1()));
            bar.update(
                progress.step,
                progress.steps,
                progress.train_loss,
                evaluation,
            );
        },
    )?;
    bar.finish();
    Ok(summary)
}

/// The progress bar of a training run: position, loss and the latest held-out figures.
pub(crate) struct TrainingBar {
    bar: ProgressBar,
    validation: String,
}

impl TrainingBar {
    pub(crate) fn new(steps: u64) -> TrainingBar {
        let bar = ProgressBar::new(steps);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} steps ({per_sec}, eta {eta}) {msg}")
                .expect("static template"),
        );
        TrainingBar {
            bar,
            validation: String::from("validation: pending"),
        }
    }

    /// After a step; `evaluation` is the held-out summary on the steps that evaluated.
    pub(crate) fn update(&mut self, step: u64, steps: u64, loss: f64, evaluation: Option<String>) {
        if let Some(evaluation) = evaluation {
            self.validation = evaluation;
            // Without a terminal the bar is hidden; a line per evaluation keeps logs useful.
            if self.bar.is_hidden() {
                eprintln!("step {step}/{steps}: loss {loss:.4}; {}", self.validation);
            }
        }
        self.bar.set_position(step);
        self.bar
            .set_message(format!("loss {loss:.4}; {}", self.validation));
    }

    pub(crate) fn finish(self) {
        self.bar.finish_and_clear();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(args) => run_generate(args),
        Command::Score(args) => score::run(args),
        Command::Render(args) => run_render(args),
        Command::Batch(args) => batch::run(args),
        Command::Dataset(command) => run_dataset(command),
        Command::Train(command) => run_train(command),
        Command::Evaluate(command) => evaluate::run(command),
        Command::Inspect(args) => inspect::run(args),
        Command::Play(args) => play::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
