//! `refrain play`: an endless live session, written one section ahead of the playhead, played
//! through the sound card (with the `audio` feature) or pulled by a null sink in real time
//! (`--no-audio`), printing sections, bars, controls and the critic's decisions as they happen.
//! On a terminal, keys steer it ([`keys`]) under a one-line status.

mod keys;

use crate::thinking::ThinkArgs;
use crate::{AudioArgs, parse_key, parse_meter, parse_mood, parse_stem, parse_style};
use anyhow::{Context, Result, bail};
use clap::Args;
use keys::{Action, Console};
use refrain_engine::music::{Key, Meter, Mood, Stem, Style};
use refrain_engine::plan::Request;
use refrain_engine::render::{self, StereoBuffer};
use refrain_engine::session::{
    ChapterComposer, Control, DitComposer, Quantum, SessionAudio, SessionBuilder, SessionEvent,
    SessionHandle,
};
use refrain_engine::writer::{self, CpuBackend, Models, WriterSettings};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// Change the mood every N bars (the next in the list calm, happy, sad, ...), as a game
    /// would; it needs a new section, written for it and cut in on the boundary.
    #[arg(long)]
    mood_every_bars: Option<u64>,
    /// Cut to the next section every N bars.
    #[arg(long)]
    next_section_every_bars: Option<u64>,
    /// Milliseconds beyond the lead that a change needing new music (next section, style,
    /// mood, end) is scheduled, so it lands exactly on its boundary. Default: measured, twice
    /// the slowest recent section's writing and rendering plus 250 ms.
    #[arg(long)]
    compose_budget_ms: Option<u64>,
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
    /// Save what was heard to this WAV file when the session stops (on a terminal, the w key
    /// saves it there at any time; without --save it goes to refrain-play.wav).
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

/// What plays the session: runs until done (or stopped).
type Sink = Box<dyn FnOnce() -> Result<()> + Send>;

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
    for (every, flag) in [
        (args.intensity_every_bars, "--intensity-every-bars"),
        (args.mood_every_bars, "--mood-every-bars"),
        (args.next_section_every_bars, "--next-section-every-bars"),
    ] {
        if every == Some(0) {
            bail!("{flag} must be at least 1");
        }
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
        .compose_budget(args.compose_budget_ms.map(Duration::from_millis))
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
    let mut console = Console::open()?;
    let started = Instant::now();
    let (audio, mut handle) = builder.start()?;
    let seconds = args.seconds;
    let limit_frames = seconds.map(|s| (s * f64::from(sample_rate)).round() as u64);
    let stop = Arc::new(AtomicBool::new(false));
    // What was heard comes back from the sink through a lock-free ring (the audio callback
    // must not allocate), kept for --save and the w key.
    let recording = args.save.is_some() || console.is_terminal();
    let (heard_tx, mut heard_rx) = rtrb::RingBuffer::<f32>::new(sample_rate as usize * 2 * 4);
    let heard_tx = recording.then_some(heard_tx);
    let dropped = Arc::new(AtomicU64::new(0));
    let (sink_name, sink): (&'static str, Sink) = if args.no_audio {
        let stop = stop.clone();
        let buffer = args.buffer;
        let dropped = dropped.clone();
        (
            "null",
            Box::new(move || {
                null_sink(
                    audio,
                    sample_rate,
                    buffer,
                    limit_frames,
                    Recorder::new(heard_tx, dropped),
                    &stop,
                );
                Ok(())
            }),
        )
    } else {
        (
            "audio device",
            device_sink(
                audio,
                sample_rate,
                args.buffer,
                Recorder::new(heard_tx, dropped.clone()),
                stop.clone(),
            )?,
        )
    };
    let sink_thread = std::thread::Builder::new()
        .name("refrain-sink".into())
        .spawn(sink)
        .context("starting the sink thread")?;

    let mut live = Live::new(args.intensity);
    let mut heard = Vec::new();
    let save_path = args
        .save
        .clone()
        .unwrap_or_else(|| PathBuf::from("refrain-play.wav"));
    let levels = [0.3f32, 1.0, 0.6];
    let mut next_change = args.intensity_every_bars;
    let mut next_mood = args.mood_every_bars;
    let mut next_section = args.next_section_every_bars;
    let mut change = 0;
    let mut last_bar = u64::MAX;
    if console.is_terminal() {
        console.line(keys::HELP);
    }
    loop {
        for event in handle.events() {
            live.report(&event, &mut console, args.verbose);
        }
        if recording {
            drain(&mut heard_rx, &mut heard);
        }
        let position = handle.position();
        if position.bar != last_bar && handle.first_audio_ms().is_some() {
            last_bar = position.bar;
            if !console.is_terminal() {
                console.line(&format!(
                    "bar {:>4}  {:<8} {:>6.1} s  underruns {}",
                    position.bar + 1,
                    live.section_at(position.frame),
                    position.frame as f64 / f64::from(sample_rate),
                    handle.underruns()
                ));
            }
        }
        if let Some(every) = args.intensity_every_bars
            && let Some(at) = next_change
            && position.bar + 1 >= at
        {
            let value = levels[change % levels.len()];
            change += 1;
            handle.set_intensity(value, args.quantum)?;
            live.intensity = value;
            next_change = Some(at + every);
        }
        if let Some(every) = args.mood_every_bars
            && let Some(at) = next_mood
            && position.bar + 1 >= at
        {
            let mood = live.next_mood();
            handle.send(Control::Mood(mood), args.quantum)?;
            next_mood = Some(at + every);
        }
        if let Some(every) = args.next_section_every_bars
            && let Some(at) = next_section
            && position.bar + 1 >= at
        {
            handle.send(Control::NextSection, args.quantum)?;
            next_section = Some(at + every);
        }
        for key in console.keys() {
            match key {
                Action::Louder | Action::Softer => {
                    let step = if key == Action::Louder { 0.1 } else { -0.1 };
                    live.intensity =
                        ((live.intensity + step) * 10.0).round().clamp(0.0, 10.0) / 10.0;
                    handle.set_intensity(live.intensity, args.quantum)?;
                }
                Action::NextMood => {
                    let mood = live.next_mood();
                    handle.send(Control::Mood(mood), args.quantum)?;
                }
                Action::NextStyle => {
                    let style = live.next_style();
                    handle.send(Control::Style(style), args.quantum)?;
                }
                Action::NextSection => {
                    handle.send(Control::NextSection, args.quantum)?;
                }
                Action::PauseOrResume => {
                    live.paused = !live.paused;
                    let control = if live.paused {
                        Control::Pause
                    } else {
                        Control::Resume
                    };
                    handle.send(control, Quantum::Beat)?;
                }
                Action::Save => {
                    drain(&mut heard_rx, &mut heard);
                    save(&save_path, sample_rate, &heard, &mut console)?;
                }
                Action::Quit => stop.store(true, Ordering::Relaxed),
            }
        }
        console.status(&live.status(&handle));
        if sink_thread.is_finished() {
            break;
        }
        if limit_frames.is_some_and(|l| handle.stats().output_frames >= l) {
            stop.store(true, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    sink_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the sink thread panicked"))??;
    if recording {
        drain(&mut heard_rx, &mut heard);
    }
    for event in handle.events() {
        live.report(&event, &mut console, args.verbose);
    }
    drop(console);
    let stats = handle.stats();
    let (mut loudness_lufs, mut true_peak_dbtp) = (None, None);
    if let Some(path) = &args.save {
        let (l, p) = save(path, sample_rate, &heard, &mut Console::Plain)?;
        loudness_lufs = l;
        true_peak_dbtp = p;
    }
    let lost = dropped.load(Ordering::Relaxed);
    if lost > 0 {
        eprintln!("warning: {lost} frames heard were not recorded (the recorder fell behind)");
    }
    eprintln!(
        "played {:.1} s in {:.1} s: first audio after {} ms, {} underruns, {} controls ({} late)",
        stats.frames as f64 / f64::from(sample_rate),
        started.elapsed().as_secs_f64(),
        stats
            .first_audio_ms
            .map_or("-".into(), |ms| format!("{ms:.1}")),
        stats.underruns,
        stats.transitions.len(),
        stats.late
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
            sections: std::mem::take(&mut live.sections),
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

/// Moves what the sink recorded into `heard`.
fn drain(ring: &mut rtrb::Consumer<f32>, heard: &mut Vec<f32>) {
    if let Ok(chunk) = ring.read_chunk(ring.slots()) {
        let (first, second) = chunk.as_slices();
        heard.extend_from_slice(first);
        heard.extend_from_slice(second);
        chunk.commit_all();
    }
}

/// Writes what was heard to `path`; returns its loudness and true peak.
fn save(
    path: &std::path::Path,
    sample_rate: u32,
    heard: &[f32],
    console: &mut Console,
) -> Result<(Option<f64>, Option<f64>)> {
    let buffer = StereoBuffer {
        sample_rate,
        samples: heard.to_vec(),
    };
    let (l, p) = render::master::measure(&buffer)?;
    render::write_wav(path, &buffer)?;
    console.line(&format!(
        "saved {} ({:.1} s): {:.2} LUFS, {:.2} dBTP",
        path.display(),
        heard.len() as f64 / 2.0 / f64::from(sample_rate),
        l.unwrap_or(f64::NEG_INFINITY),
        p.unwrap_or(f64::NEG_INFINITY)
    ));
    Ok((l, p))
}

/// What the display knows of the session: sections as placed, what the keys asked for, the
/// critic's last word.
struct Live {
    sections: Vec<SectionStat>,
    /// (start frame, kind, style, mood) of the sections placed, latest last.
    timeline: Vec<(u64, String, Style, Mood)>,
    intensity: f32,
    /// The mood and style last asked for (or the first section's).
    mood: Option<Mood>,
    style: Option<Style>,
    paused: bool,
    critic: String,
}

impl Live {
    fn new(intensity: f32) -> Live {
        Live {
            sections: Vec::new(),
            timeline: Vec::new(),
            intensity,
            mood: None,
            style: None,
            paused: false,
            critic: "-".into(),
        }
    }

    /// The section playing at `frame`.
    fn section_at(&self, frame: u64) -> &str {
        self.playing(frame).map_or("intro", |s| s.1.as_str())
    }

    fn playing(&self, frame: u64) -> Option<&(u64, String, Style, Mood)> {
        self.timeline.iter().rev().find(|s| s.0 <= frame)
    }

    fn next_mood(&mut self) -> Mood {
        let now = self.mood.unwrap_or(Mood::ALL[0]);
        let at = Mood::ALL.iter().position(|m| *m == now).unwrap_or(0);
        let next = Mood::ALL[(at + 1) % Mood::ALL.len()];
        self.mood = Some(next);
        next
    }

    fn next_style(&mut self) -> Style {
        let now = self.style.unwrap_or(Style::ALL[0]);
        let at = Style::ALL.iter().position(|s| *s == now).unwrap_or(0);
        let next = Style::ALL[(at + 1) % Style::ALL.len()];
        self.style = Some(next);
        next
    }

    /// The status line: bar, section, intensity, style and mood playing, the critic's last
    /// decision.
    fn status(&self, handle: &SessionHandle) -> String {
        let position = handle.position();
        let playing = self.playing(position.frame);
        format!(
            "bar {:>4}.{}  {:<7}  intensity {:.1}  {} / {}  critic: {}  underruns {}{}",
            position.bar + 1,
            position.beat_in_bar + 1,
            playing.map_or("intro", |s| s.1.as_str()),
            self.intensity,
            playing.map_or("-", |s| s.2.name()),
            playing.map_or("-", |s| s.3.name()),
            self.critic,
            handle.underruns(),
            if self.paused { "  [paused]" } else { "" }
        )
    }

    fn report(&mut self, event: &SessionEvent, console: &mut Console, all: bool) {
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
                self.mood.get_or_insert(*mood);
                self.style.get_or_insert(*style);
                self.timeline.retain(|s| s.0 < *start_frame);
                self.timeline
                    .push((*start_frame, kind.name().to_string(), *style, *mood));
                if self.timeline.len() > 16 {
                    self.timeline.remove(0);
                }
                console.line(&format!(
                    "section {index}: {} of {bars} bars from bar {} ({style}, {mood}; {composer} \
                     {compose_ms:.0} ms, render {render_ms:.0} ms)",
                    kind.name(),
                    start_bar + 1
                ));
                self.sections.push(SectionStat {
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
                use refrain_engine::reasoning::Decision;
                let shown = all
                    || matches!(
                        event.decision,
                        Decision::Accept | Decision::Retract | Decision::Backtrack
                    );
                self.critic = format!("{} (section {chapter})", event.decision.name());
                if shown {
                    console.line(&format!(
                        "  critic, section {chapter}: {} {}",
                        event.decision.name(),
                        event.reason
                    ));
                }
            }
            SessionEvent::Transition(t) => console.line(&format!(
                "  {} at frame {} (asked for {}, {}){}",
                t.control,
                t.actual_frame.unwrap_or(0),
                t.requested_frame,
                match t.quantum {
                    Quantum::Beat => "beat",
                    Quantum::Bar => "bar",
                    Quantum::Section => "section",
                },
                if t.late { ", late" } else { "" }
            )),
            SessionEvent::Error(message) => console.line(&format!("  error: {message}")),
        }
    }
}

/// The sink's side of the recording ring: copies what was pulled, never allocating; what
/// does not fit is counted.
struct Recorder {
    ring: Option<rtrb::Producer<f32>>,
    dropped: Arc<AtomicU64>,
}

impl Recorder {
    fn new(ring: Option<rtrb::Producer<f32>>, dropped: Arc<AtomicU64>) -> Recorder {
        Recorder { ring, dropped }
    }

    fn record(&mut self, samples: &[f32]) {
        let Some(ring) = &mut self.ring else { return };
        match ring.write_chunk(samples.len()) {
            Ok(mut chunk) => {
                let (first, second) = chunk.as_mut_slices();
                let split = first.len();
                first.copy_from_slice(&samples[..split]);
                second.copy_from_slice(&samples[split..]);
                chunk.commit_all();
            }
            Err(_) => {
                self.dropped
                    .fetch_add(samples.len() as u64 / 2, Ordering::Relaxed);
            }
        }
    }
}

/// Pulls `buffer` frames at a time at the real-time rate until `limit` frames have gone out
/// (or `stop`), handing what it pulled to `recorder`.
fn null_sink(
    mut audio: SessionAudio,
    sample_rate: u32,
    buffer: usize,
    limit: Option<u64>,
    mut recorder: Recorder,
    stop: &AtomicBool,
) {
    let mut out = vec![0.0f32; buffer * 2];
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
        recorder.record(&out[..frames * 2]);
        played += frames as u64;
        pulls += 1;
    }
}

#[cfg(feature = "audio")]
fn device_sink(
    mut audio: SessionAudio,
    sample_rate: u32,
    buffer: usize,
    mut recorder: Recorder,
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
                    recorder.record(&stereo[..frames * 2]);
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
        Ok(())
    }))
}

#[cfg(not(feature = "audio"))]
fn device_sink(
    _audio: SessionAudio,
    _sample_rate: u32,
    _buffer: usize,
    _recorder: Recorder,
    _stop: Arc<AtomicBool>,
) -> Result<Sink> {
    bail!(
        "this refrain was built without sound output; rebuild with `--features audio` (needs \
         the ALSA headers, Debian package libasound2-dev) or play with --no-audio"
    )
}
