//! `refrain play`: an endless live session, written one section ahead of the playhead, played
//! through the sound card (with the `audio` feature) or pulled by a null sink in real time
//! (`--no-audio`), printing sections, bars, controls and the critic's decisions as they happen.

use crate::thinking::ThinkArgs;
use crate::{AudioArgs, parse_key, parse_meter, parse_mood, parse_stem, parse_style};
use anyhow::{Context, Result, bail};
use clap::Args;
use refrain_engine::music::{Key, Meter, Mood, Stem, Style};
use refrain_engine::plan::Request;
use refrain_engine::render::{self, StereoBuffer};
use refrain_engine::session::{
    ChapterComposer, DitComposer, Quantum, SessionAudio, SessionBuilder, SessionEvent,
};
use refrain_engine::writer::{self, CpuBackend, Models, WriterSettings};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct PlayArgs {
    /// What you want, in words, e.g. "synthwave, night drive, 110 bpm". Flags win over it.
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
    /// Key, e.g. "A minor".
    #[arg(long, value_parser = parse_key)]
    key: Option<Key>,
    /// Meter: 4/4, 3/4 or 6/8.
    #[arg(long, value_parser = parse_meter)]
    meter: Option<Meter>,
    /// Stems the session may use (intensity adds them in the order chords, texture, bass,
    /// drums, lead).
    #[arg(long, value_delimiter = ',', value_parser = parse_stem)]
    stems: Option<Vec<Stem>>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Intensity at the start, 0 (a pad alone) to 1 (every stem, denser parts).
    #[arg(long, default_value_t = 0.7)]
    intensity: f32,
    /// Change the intensity every N bars (cycling 0.3, 1.0, 0.6), as a game would.
    #[arg(long)]
    intensity_every_bars: Option<u64>,
    /// Boundary controls land on: beat, bar or section.
    #[arg(long, default_value = "bar", value_parser = parse_quantum)]
    quantum: Quantum,
    /// Stop after this many seconds of output (default: run until interrupted).
    #[arg(long)]
    seconds: Option<f64>,
    /// Play nowhere: a null sink pulls the audio in real time (for machines without a sound
    /// card, and for measuring).
    #[arg(long)]
    no_audio: bool,
    /// Frames the sink pulls per callback.
    #[arg(long, default_value_t = 256)]
    buffer: usize,
    /// Frames of mixed audio the session keeps ahead of the playhead.
    #[arg(long, default_value_t = refrain_engine::session::DEFAULT_LEAD_FRAMES)]
    lead: usize,
    /// Write statistics (first_audio_ms, underruns, frames, transitions) to this JSON file.
    #[arg(long)]
    stats: Option<PathBuf>,
    /// Save what was heard to this WAV file (null sink only).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Who writes the sections after the intro: the DiT (with the critic as --think says) or
    /// the rule-based arranger.
    #[arg(long, default_value = "dit", value_parser = ["dit", "arranger"])]
    composer: String,
    /// Folder holding the model weights; default $REFRAIN_ASSETS, else the repository's
    /// assets/.
    #[arg(long)]
    assets: Option<PathBuf>,
    /// Print every decision of the reasoning loop, not only the accepted ones.
    #[arg(long)]
    verbose: bool,
    #[command(flatten)]
    audio: AudioArgs,
    #[command(flatten)]
    thinking: ThinkArgs,
}

/// What plays the session: runs until done and returns what it heard (null sink with --save).
type Sink = Box<dyn FnOnce() -> Result<Vec<f32>> + Send>;

fn parse_quantum(s: &str) -> Result<Quantum, String> {
    s.parse().map_err(|e: refrain_engine::Error| e.to_string())
}

/// The statistics file.
#[derive(Serialize)]
struct PlayStats {
    #[serde(flatten)]
    session: refrain_engine::session::SessionStats,
    seconds: f64,
    buffer_frames: usize,
    sink: &'static str,
    composer: String,
    /// Sections placed, with who wrote them and how long writing and rendering took.
    sections: Vec<SectionStat>,
    /// Of the heard audio, when --save was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    loudness_lufs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    true_peak_dbtp: Option<f64>,
}

#[derive(Serialize)]
struct SectionStat {
    index: u64,
    kind: String,
    start_bar: u64,
    start_frame: u64,
    composer: &'static str,
    compose_ms: f64,
    render_ms: f64,
}

pub fn run(args: PlayArgs) -> Result<()> {
    if args.buffer == 0 || args.buffer > 16_384 {
        bail!("--buffer must be 1 to 16384 frames");
    }
    if let Some(seconds) = args.seconds
        && !(seconds.is_finite() && seconds > 0.0)
    {
        bail!("--seconds must be a positive number");
    }
    if args.intensity_every_bars == Some(0) {
        bail!("--intensity-every-bars must be at least 1");
    }
    let request = Request {
        prompt: args.prompt.clone().unwrap_or_default(),
        style: args.style,
        mood: args.mood,
        bpm: args.bpm,
        key: args.key,
        meter: args.meter,
        stems: args.stems.clone(),
        seed: args.seed,
        ..Request::default()
    };
    let assets = args
        .assets
        .clone()
        .unwrap_or_else(writer::default_assets_dir);
    let instruments = args.audio.instruments(&assets)?;
    let sample_rate = args.audio.sample_rate;
    let mut builder = SessionBuilder::new(request)
        .sample_rate(sample_rate)
        .lead_frames(args.lead)
        .loudness(args.audio.lufs, -1.0)
        .intensity(args.intensity)
        .instruments(instruments);
    if args.composer == "dit" {
        // Loaded on the composer thread while the intro plays.
        let think = args.thinking.clone();
        let assets = assets.clone();
        builder = builder.composer(Box::new(move || {
            let device = Default::default();
            let models = Models::<CpuBackend>::load(&assets, &device)?;
            let judges = think
                .judges(&assets)
                .map_err(|e| refrain_engine::Error::Model(format!("{e:#}")))?;
            let settings = think.settings(&judges);
            settings.check()?;
            let critic = judges
                .critic
                .map(|c| Box::new(c) as Box<dyn refrain_engine::critic::Critic + Send>);
            Ok(Box::new(DitComposer {
                models,
                settings: WriterSettings::default(),
                think: settings,
                critic,
                guard: Some(Box::new(judges.guard)),
            }) as Box<dyn ChapterComposer>)
        }));
    }
    let started = Instant::now();
    let (audio, mut handle) = builder.start()?;
    let seconds = args.seconds;
    let limit_frames = seconds.map(|s| (s * f64::from(sample_rate)).round() as u64);
    let stop = Arc::new(AtomicBool::new(false));
    let (sink_name, sink): (&'static str, Sink) = if args.no_audio {
        let stop = stop.clone();
        let buffer = args.buffer;
        let keep = args.save.is_some();
        (
            "null",
            Box::new(move || {
                Ok(null_sink(
                    audio,
                    sample_rate,
                    buffer,
                    limit_frames,
                    keep,
                    &stop,
                ))
            }),
        )
    } else {
        if args.save.is_some() {
            bail!("--save works with --no-audio only");
        }
        (
            "audio device",
            device_sink(audio, sample_rate, args.buffer, stop.clone())?,
        )
    };
    let sink_thread = std::thread::Builder::new()
        .name("refrain-sink".into())
        .spawn(sink)
        .context("starting the sink thread")?;

    let levels = [0.3f32, 1.0, 0.6];
    let mut next_change = args.intensity_every_bars;
    let mut change = 0;
    let mut sections = Vec::new();
    let mut last_bar = u64::MAX;
    let mut current = String::from("intro");
    loop {
        for event in handle.events() {
            report(&event, &mut sections, &mut current, args.verbose);
        }
        let position = handle.position();
        if position.bar != last_bar && handle.first_audio_ms().is_some() {
            last_bar = position.bar;
            eprintln!(
                "bar {:>4}  {:<8} {:>6.1} s  underruns {}",
                position.bar + 1,
                current,
                position.frame as f64 / f64::from(sample_rate),
                handle.underruns()
            );
        }
        if let Some(every) = args.intensity_every_bars
            && let Some(at) = next_change
            && position.bar + 1 >= at
        {
            let value = levels[change % levels.len()];
            change += 1;
            handle.set_intensity(value, args.quantum)?;
            next_change = Some(at + every);
        }
        if sink_thread.is_finished() {
            break;
        }
        if limit_frames.is_some_and(|l| handle.stats().output_frames >= l) {
            stop.store(true, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let heard = sink_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the sink thread panicked"))??;
    for event in handle.events() {
        report(&event, &mut sections, &mut current, args.verbose);
    }
    let stats = handle.stats();
    let (mut loudness_lufs, mut true_peak_dbtp) = (None, None);
    if let Some(path) = &args.save {
        let buffer = StereoBuffer {
            sample_rate,
            samples: heard,
        };
        let (l, p) = render::master::measure(&buffer)?;
        loudness_lufs = l;
        true_peak_dbtp = p;
        render::write_wav(path, &buffer)?;
        eprintln!(
            "saved {}: {:.2} LUFS, {:.2} dBTP",
            path.display(),
            l.unwrap_or(f64::NEG_INFINITY),
            p.unwrap_or(f64::NEG_INFINITY)
        );
    }
    eprintln!(
        "played {:.1} s in {:.1} s: first audio after {} ms, {} underruns, {} controls",
        stats.frames as f64 / f64::from(sample_rate),
        started.elapsed().as_secs_f64(),
        stats
            .first_audio_ms
            .map_or("-".into(), |ms| format!("{ms:.1}")),
        stats.underruns,
        stats.transitions.len()
    );
    if let Some(error) = handle.last_error() {
        eprintln!("warning: {error}");
    }
    if let Some(path) = &args.stats {
        let stats = PlayStats {
            seconds: stats.output_frames as f64 / f64::from(sample_rate),
            session: stats,
            buffer_frames: args.buffer,
            sink: sink_name,
            composer: args.composer.clone(),
            sections,
            loudness_lufs,
            true_peak_dbtp,
        };
        let mut json = serde_json::to_vec_pretty(&stats)?;
        json.push(b'\n');
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    drop(handle);
    Ok(())
}

fn report(event: &SessionEvent, sections: &mut Vec<SectionStat>, current: &mut String, all: bool) {
    match event {
        SessionEvent::Section {
            index,
            kind,
            bars,
            start_frame,
            start_bar,
            style,
            mood,
            composer,
            compose_ms,
            render_ms,
        } => {
            *current = kind.name().to_string();
            eprintln!(
                "section {index}: {} of {bars} bars from bar {} ({style}, {mood}; {composer} \
                 {compose_ms:.0} ms, render {render_ms:.0} ms)",
                kind.name(),
                start_bar + 1
            );
            sections.push(SectionStat {
                index: *index,
                kind: kind.name().to_string(),
                start_bar: *start_bar,
                start_frame: *start_frame,
                composer,
                compose_ms: *compose_ms,
                render_ms: *render_ms,
            });
        }
        SessionEvent::Decision { chapter, event } => {
            let shown = all
                || matches!(
                    event.decision,
                    refrain_engine::reasoning::Decision::Accept
                        | refrain_engine::reasoning::Decision::Retract
                        | refrain_engine::reasoning::Decision::Backtrack
                );
            if shown {
                eprintln!(
                    "  critic, section {chapter}: {} {}",
                    event.decision.name(),
                    event.reason
                );
            }
        }
        SessionEvent::Transition(t) => eprintln!(
            "  {} at frame {} (asked for {}, {})",
            t.control,
            t.actual_frame.unwrap_or(0),
            t.requested_frame,
            match t.quantum {
                Quantum::Beat => "beat",
                Quantum::Bar => "bar",
                Quantum::Section => "section",
            }
        ),
        SessionEvent::Error(message) => eprintln!("  error: {message}"),
    }
}

/// Pulls `buffer` frames at a time at the real-time rate until `limit` frames have gone out
/// (or `stop`); returns what it pulled when `keep`.
fn null_sink(
    mut audio: SessionAudio,
    sample_rate: u32,
    buffer: usize,
    limit: Option<u64>,
    keep: bool,
    stop: &AtomicBool,
) -> Vec<f32> {
    let mut out = vec![0.0f32; buffer * 2];
    let mut heard = Vec::with_capacity(if keep {
        limit.unwrap_or(0) as usize * 2
    } else {
        0
    });
    let period = Duration::from_secs_f64(buffer as f64 / f64::from(sample_rate));
    let started = Instant::now();
    let mut pulls: u32 = 0;
    let mut played = 0u64;
    while !stop.load(Ordering::Relaxed) && limit.is_none_or(|l| played < l) {
        if audio.is_finished() {
            break;
        }
        let due = started + period * pulls;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let frames = limit.map_or(buffer, |l| ((l - played) as usize).min(buffer));
        audio.pull(&mut out[..frames * 2]);
        if keep {
            heard.extend_from_slice(&out[..frames * 2]);
        }
        played += frames as u64;
        pulls += 1;
    }
    heard
}

#[cfg(feature = "audio")]
fn device_sink(
    mut audio: SessionAudio,
    sample_rate: u32,
    buffer: usize,
    stop: Arc<AtomicBool>,
) -> Result<Sink> {
    use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
    Ok(Box::new(move || {
        let host = cpal::default_host();
        let device = host
            .default_output_device()
            .context("no audio output device; use --no-audio")?;
        let supported = device
            .default_output_config()
            .context("reading the output device's configuration")?;
        let channels = usize::from(supported.channels());
        let config = cpal::StreamConfig {
            channels: supported.channels(),
            // The session's rate; ALSA's default device resamples where the card differs.
            sample_rate: cpal::SampleRate(sample_rate),
            buffer_size: cpal::BufferSize::Fixed(buffer as u32),
        };
        let mut stereo = vec![0.0f32; 16_384 * 2];
        let stream = device
            .build_output_stream(
                &config,
                move |data: &mut [f32], _| {
                    let frames = (data.len() / channels).min(16_384);
                    audio.pull(&mut stereo[..frames * 2]);
                    for (frame, pair) in data.chunks_mut(channels).zip(stereo.chunks_exact(2)) {
                        for (c, sample) in frame.iter_mut().enumerate() {
                            *sample = if c % 2 == 0 { pair[0] } else { pair[1] };
                        }
                    }
                },
                |e| eprintln!("audio device: {e}"),
                None,
            )
            .context("opening the audio output stream")?;
        stream.play().context("starting the audio output stream")?;
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Vec::new())
    }))
}

#[cfg(not(feature = "audio"))]
fn device_sink(
    _audio: SessionAudio,
    _sample_rate: u32,
    _buffer: usize,
    _stop: Arc<AtomicBool>,
) -> Result<Sink> {
    bail!(
        "this refrain was built without sound output; rebuild with `--features audio` (needs \
         the ALSA headers, Debian package libasound2-dev) or play with --no-audio"
    )
}
