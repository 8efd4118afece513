//! Live sessions: endless music written one section ahead of the playhead and streamed to an
//! audio callback, with game-style controls that land on the next beat, bar or section.
//!
//! [`SessionBuilder::start`] gives two halves (the kira way): a [`SessionAudio`] that lives on
//! the audio side and only pulls frames out of a lock-free ring (it never allocates, locks or
//! blocks), and a [`SessionHandle`] the caller keeps to send controls, read the position and
//! collect statistics. Two worker threads sit behind them:
//!
//! - the composer writes chapter after chapter (one section each: a short intro and the
//!   first section by the rule-based arranger, so sound starts at once and the models have a
//!   section's time to load, then the chosen [`ChapterComposer`], usually the DiT with its
//!   critic), renders each chapter's stems with a ring-out tail and measures
//!   the gain that brings every intensity level to the loudness target; it stays one chapter
//!   ahead of what plays;
//! - the feeder lays chapters on a timeline (each chapter's tail overlap-added into the next),
//!   mixes the layers the intensity asks for, applies the chapter's gain and the true-peak
//!   limiter (with look-ahead, over a window that reaches back far enough that neighbouring
//!   blocks agree), and keeps the ring topped up to a small lead.
//!
//! Controls go through a lock-free queue to the feeder. Each records the frame it was asked
//! for (the first boundary of its quantum at or after the earliest frame the engine can still
//! change: the playhead plus the ring's lead and one block) and the frame it actually took
//! effect. Intensity, stingers and pauses always land on the requested frame. Changes that need
//! music (next section, style, mood, end) are asked for one composing budget later (the time
//! the composer needs to write and render a chapter, measured, with headroom; see
//! [`SessionBuilder::compose_budget`]); the composer starts on the new chapter at once and the
//! feeder cuts over exactly on the requested frame. Only when the music is still not there
//! (overload) does such a change move to the next boundary, and it counts as late. All
//! positions are in frames of music from the session's start.

pub mod composer;
mod feeder;
pub mod grid;

pub use composer::{
    ArrangerComposer, Chapter, ChapterComposer, Composed, Direction, DitComposer, SessionMusic,
};
pub use grid::Grid;

use crate::Error;
use crate::music::{Mood, SectionKind, Style};
use crate::plan::{self, Request};
use crate::reasoning::TraceEvent;
use crate::render::Instruments;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Frames of mixed audio kept in the ring ahead of the playhead by default (341 ms at 48 kHz):
/// the worst case a control waits beyond its boundary's quantum, and the cushion against the
/// feeder being late.
pub const DEFAULT_LEAD_FRAMES: usize = 16_384;

/// Frames the feeder mixes and pushes at a time.
pub const BLOCK_FRAMES: usize = 1024;

/// Bars of the intro that starts every session (written by the arranger, so first sound does
/// not wait for the models).
pub const INTRO_BARS: u32 = 2;

/// Bars of every later section.
pub const SECTION_BARS: u32 = 8;

/// Bars of the resolving outro that `end` asks for.
pub const OUTRO_BARS: u32 = 2;

/// Where a control takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantum {
    Beat,
    Bar,
    Section,
}

impl std::str::FromStr for Quantum {
    type Err = Error;
    fn from_str(text: &str) -> Result<Quantum, Error> {
        match text.trim().to_ascii_lowercase().as_str() {
            "beat" => Ok(Quantum::Beat),
            "bar" => Ok(Quantum::Bar),
            "section" => Ok(Quantum::Section),
            other => Err(Error::Request(format!(
                "'{other}' is not a boundary; use beat, bar or section"
            ))),
        }
    }
}

/// A change the caller asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Control {
    /// 0 (a pad alone) ..= 1 (every stem, denser parts).
    Intensity(f32),
    Mood(Mood),
    Style(Style),
    /// Cut to the next section.
    NextSection,
    /// A one-bar hit on top of the music.
    Stinger,
    /// A resolving outro, then silence.
    End,
    Pause,
    Resume,
}

impl Control {
    /// True for the changes that need a chapter written for them (next section, style, mood,
    /// end): they are asked for one composing budget ahead and start on a bar.
    pub fn needs_music(&self) -> bool {
        matches!(
            self,
            Control::Mood(_) | Control::Style(_) | Control::NextSection | Control::End
        )
    }

    /// "intensity 0.80", "mood dark", "next section", ...
    pub fn describe(&self) -> String {
        match self {
            Control::Intensity(v) => format!("intensity {v:.2}"),
            Control::Mood(m) => format!("mood {}", m.name()),
            Control::Style(s) => format!("style {}", s.name()),
            Control::NextSection => "next section".into(),
            Control::Stinger => "stinger".into(),
            Control::End => "end".into(),
            Control::Pause => "pause".into(),
            Control::Resume => "resume".into(),
        }
    }
}

/// A control on its way to the feeder.
#[derive(Clone, Copy, Debug)]
struct Command {
    id: u64,
    control: Control,
    quantum: Quantum,
    issued: u64,
    requested: u64,
}

/// One control and where it landed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Transition {
    pub id: u64,
    pub control: String,
    pub quantum: Quantum,
    /// Playhead when the caller asked.
    pub issued_frame: u64,
    /// The boundary it was asked for.
    pub requested_frame: u64,
    /// Where it took effect; `None` while pending.
    pub actual_frame: Option<u64>,
    /// The music it needed was not ready on the requested frame (overload): it moved to a
    /// later boundary.
    pub late: bool,
}

/// What a session reports as it goes (for a live display and logs).
#[derive(Clone, Debug)]
pub enum SessionEvent {
    /// A chapter was placed on the timeline.
    Section {
        index: u64,
        kind: SectionKind,
        bars: u32,
        start_frame: u64,
        start_bar: u64,
        style: Style,
        mood: Mood,
        composer: &'static str,
        compose_ms: f64,
        render_ms: f64,
    },
    /// A decision of the reasoning loop while writing chapter `chapter`.
    Decision { chapter: u64, event: TraceEvent },
    /// A control took effect.
    Transition(Transition),
    /// Something failed; the session carries on where it can.
    Error(String),
}

/// Where the music is, for gameplay sync.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Position {
    /// Frames of music played (pauses and underruns excluded).
    pub frame: u64,
    pub beat: u64,
    pub bar: u64,
    /// Beat within the bar, from 0.
    pub beat_in_bar: u64,
}

/// A summary of a session so far.
#[derive(Clone, Debug, Serialize)]
pub struct SessionStats {
    pub sample_rate: u32,
    pub tempo_bpm: f64,
    pub first_audio_ms: Option<f64>,
    pub underruns: u64,
    pub underrun_frames: u64,
    /// Frames of music pulled.
    pub frames: u64,
    /// Frames handed to the output, silence included.
    pub output_frames: u64,
    pub lead_frames: usize,
    /// Controls that needed music and missed their requested frame (see [`Transition::late`]).
    pub late: u64,
    /// What a control that needs music adds to the lead now, ms (measured or fixed).
    pub compose_budget_ms: f64,
    pub transitions: Vec<Transition>,
}

const NONE: u64 = u64::MAX;

/// State both halves and the workers see.
struct Shared {
    grid: Grid,
    started_at: Instant,
    music_frame: AtomicU64,
    output_frames: AtomicU64,
    beat: AtomicU64,
    underruns: AtomicU64,
    underrun_frames: AtomicU64,
    /// Nanoseconds from start to the first frame of music pulled; `NONE` before.
    first_audio_ns: AtomicU64,
    /// The feeder has pushed the last frame (after an outro, or on a fatal error).
    finished: AtomicBool,
    stop: AtomicBool,
    /// Music frame to pause at; `NONE` for none.
    pause_at: AtomicU64,
    paused: AtomicBool,
    resume: AtomicBool,
    /// The next section boundary (bar) the feeder has planned.
    section_anchor_bar: AtomicU64,
    /// Frames a control that needs music is asked for beyond the lead (see
    /// [`SessionBuilder::compose_budget`]); the composer updates it unless it is fixed.
    compose_budget_frames: AtomicU64,
    compose_budget_fixed: bool,
    /// Set by [`SessionAudio::pull_wait`]: the reader waits for the engine, so the feeder waits
    /// for music too (nothing is late) and no composing budget is needed.
    offline: AtomicBool,
    /// Controls that missed their requested frame.
    late: AtomicU64,
    transitions: Mutex<Vec<Transition>>,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    fn record(&self, transition: Transition) {
        if let Ok(mut list) = self.transitions.lock() {
            match list.iter_mut().find(|t| t.id == transition.id) {
                Some(existing) => *existing = transition,
                None => list.push(transition),
            }
        }
    }

    fn fail(&self, message: String) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(message);
        }
    }
}

/// Builds a session; see the module documentation.
pub struct SessionBuilder {
    request: Request,
    sample_rate: u32,
    lead_frames: usize,
    target_lufs: f64,
    ceiling_dbtp: f64,
    intensity: f32,
    instruments: Instruments,
    composer: Option<ComposerFactory>,
    compose_budget: Option<Duration>,
}

/// Makes the session's composer on the composer thread (loading models there, while the
/// intro already plays).
pub type ComposerFactory = Box<dyn FnOnce() -> Result<Box<dyn ChapterComposer>, Error> + Send>;

impl SessionBuilder {
    /// A session for `request` (style, mood, tempo, key, meter, stems and seed; lengths are
    /// ignored: a session runs until it is ended).
    pub fn new(request: Request) -> SessionBuilder {
        SessionBuilder {
            request,
            sample_rate: 48_000,
            lead_frames: DEFAULT_LEAD_FRAMES,
            target_lufs: -14.0,
            ceiling_dbtp: -1.0,
            intensity: 0.7,
            instruments: Instruments::default(),
            composer: None,
            compose_budget: None,
        }
    }

    pub fn sample_rate(mut self, rate: u32) -> Self {
        self.sample_rate = rate;
        self
    }

    /// Frames the ring holds ahead of the playhead.
    pub fn lead_frames(mut self, frames: usize) -> Self {
        self.lead_frames = frames;
        self
    }

    pub fn loudness(mut self, target_lufs: f64, ceiling_dbtp: f64) -> Self {
        self.target_lufs = target_lufs;
        self.ceiling_dbtp = ceiling_dbtp;
        self
    }

    /// Intensity at the start, 0..=1.
    pub fn intensity(mut self, intensity: f32) -> Self {
        self.intensity = intensity;
        self
    }

    pub fn instruments(mut self, instruments: Instruments) -> Self {
        self.instruments = instruments;
        self
    }

    /// How far beyond the lead a control that needs music (next section, style, mood, end) is
    /// scheduled: the time to write and render a chapter. `None` (the default) measures it:
    /// twice the slowest of the last few chapters (a change can arrive while the composer is
    /// half-way through a chapter it then throws away) plus 250 ms. A fixed budget trades
    /// latency against the risk of a late change on a slow machine. Offline readers
    /// ([`SessionAudio::pull_wait`]) need none: the feeder waits for the music there.
    pub fn compose_budget(mut self, budget: Option<Duration>) -> Self {
        self.compose_budget = budget;
        self
    }

    /// The composer that writes every section after the intro (default: the arranger).
    pub fn composer(mut self, factory: ComposerFactory) -> Self {
        self.composer = Some(factory);
        self
    }

    /// Checks the settings, resolves the request and starts the workers.
    pub fn start(self) -> Result<(SessionAudio, SessionHandle), Error> {
        if !(8_000..=192_000).contains(&self.sample_rate) {
            return Err(Error::Request(format!(
                "a sample rate of {} Hz is not supported; use 8000 to 192000 Hz",
                self.sample_rate
            )));
        }
        if !(BLOCK_FRAMES..=1 << 20).contains(&self.lead_frames) {
            return Err(Error::Request(format!(
                "a lead of {} frames is out of range; use {BLOCK_FRAMES} to {}",
                self.lead_frames,
                1 << 20
            )));
        }
        if !self.intensity.is_finite() || !(0.0..=1.0).contains(&self.intensity) {
            return Err(Error::Request(format!(
                "intensity {} is not between 0 and 1",
                self.intensity
            )));
        }
        if !self.target_lufs.is_finite() || !(-70.0..=0.0).contains(&self.target_lufs) {
            return Err(Error::Request(format!(
                "a loudness target of {} LUFS is out of range; use -70 to 0",
                self.target_lufs
            )));
        }
        if !self.ceiling_dbtp.is_finite() || !(-20.0..=0.0).contains(&self.ceiling_dbtp) {
            return Err(Error::Request(format!(
                "a true-peak ceiling of {} dBTP is out of range; use -20 to 0",
                self.ceiling_dbtp
            )));
        }
        if let Some(budget) = self.compose_budget
            && budget > Duration::from_secs(60)
        {
            return Err(Error::Request(format!(
                "a composing budget of {:.1} s is out of range; use at most 60 s",
                budget.as_secs_f64()
            )));
        }
        let started_at = Instant::now();
        // The planner resolves what the request leaves open, from the seed.
        let resolved = plan::plan(&Request {
            seconds: None,
            bars: Some(SECTION_BARS),
            looped: false,
            ..self.request.clone()
        })?;
        let music = SessionMusic {
            tempo_bpm: resolved.tempo_bpm,
            meter: resolved.meter,
            key: resolved.key,
            stems: resolved.stems.clone(),
            seed: self.request.seed,
        };
        let direction = Direction {
            style: resolved.style,
            mood: resolved.mood,
            intensity: self.intensity,
            end: false,
            version: 0,
        };
        let grid = Grid::new(
            self.sample_rate,
            resolved.bar_seconds,
            resolved.meter.beats_per_bar(),
        );
        let shared = Arc::new(Shared {
            grid,
            started_at,
            music_frame: AtomicU64::new(0),
            output_frames: AtomicU64::new(0),
            beat: AtomicU64::new(0),
            underruns: AtomicU64::new(0),
            underrun_frames: AtomicU64::new(0),
            first_audio_ns: AtomicU64::new(NONE),
            finished: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            pause_at: AtomicU64::new(NONE),
            paused: AtomicBool::new(false),
            resume: AtomicBool::new(false),
            section_anchor_bar: AtomicU64::new(u64::from(INTRO_BARS)),
            compose_budget_frames: AtomicU64::new(
                (self
                    .compose_budget
                    .unwrap_or(DEFAULT_COMPOSE_BUDGET)
                    .as_secs_f64()
                    * f64::from(self.sample_rate))
                .round() as u64,
            ),
            compose_budget_fixed: self.compose_budget.is_some(),
            offline: AtomicBool::new(false),
            late: AtomicU64::new(0),
            transitions: Mutex::new(Vec::new()),
            last_error: Mutex::new(None),
        });
        let (producer, consumer) = rtrb::RingBuffer::<f32>::new(self.lead_frames * 2);
        let (commands_tx, commands_rx) = rtrb::RingBuffer::<Command>::new(256);
        let (chapters_tx, chapters_rx) = std::sync::mpsc::sync_channel::<feeder::Made>(1);
        let (events_tx, events_rx) = std::sync::mpsc::channel::<SessionEvent>();
        let direction = Arc::new(Mutex::new(direction));
        let audio = composer::ChapterAudio {
            sample_rate: self.sample_rate,
            target_lufs: self.target_lufs,
            limiter_ceiling_db: self.ceiling_dbtp as f32 - LIMITER_MARGIN_DB,
            tail_seconds: TAIL_SECONDS,
        };
        let composer_thread = {
            let shared = shared.clone();
            let direction = direction.clone();
            let events = events_tx.clone();
            let music = music.clone();
            let audio = audio.clone();
            let instruments = self.instruments;
            let factory = self.composer;
            std::thread::Builder::new()
                .name("refrain-composer".into())
                .spawn(move || {
                    compose_loop(
                        factory,
                        &music,
                        &direction,
                        &audio,
                        &instruments,
                        &chapters_tx,
                        &events,
                        &shared,
                    )
                })
                .map_err(|e| Error::io("starting the composer thread", e))?
        };
        let feeder_thread = {
            let shared = shared.clone();
            let direction = direction.clone();
            let layers = music.stems.len();
            let intensity = self.intensity;
            let limiter_ceiling = audio.limiter_ceiling_db;
            std::thread::Builder::new()
                .name("refrain-feeder".into())
                .spawn(move || {
                    let mut feeder = feeder::Feeder::new(
                        shared,
                        producer,
                        commands_rx,
                        chapters_rx,
                        events_tx,
                        direction,
                        layers,
                        intensity,
                        limiter_ceiling,
                    );
                    feeder.run();
                })
                .map_err(|e| Error::io("starting the feeder thread", e))?
        };
        let handle = SessionHandle {
            shared: shared.clone(),
            commands: commands_tx,
            events: events_rx,
            threads: vec![composer_thread, feeder_thread],
            next_id: 0,
            lead_frames: self.lead_frames,
            tempo_bpm: music.tempo_bpm,
            music,
        };
        Ok((SessionAudio { consumer, shared }, handle))
    }
}

/// The composing budget before any chapter has been measured.
const DEFAULT_COMPOSE_BUDGET: Duration = Duration::from_secs(2);

/// Chapters the measured composing budget looks back over.
const BUDGET_WINDOW: usize = 4;

/// Seconds of ring-out rendered after each chapter and overlap-added into the next.
const TAIL_SECONDS: f64 = 3.0;

/// Seconds of ring-out rendered after the intro (short: it delays the first sound).
const INTRO_TAIL_SECONDS: f64 = 1.0;

/// The streaming limiter aims this far under the ceiling (as the offline master does).
const LIMITER_MARGIN_DB: f32 = 0.3;

/// What became of a chapter the composer tried to hand over.
enum Handover {
    Sent,
    /// A style, mood or end change made it stale before the feeder took it: write anew.
    Stale,
    Stopped,
}

/// True when `direction` is no longer what the current one asks for.
fn is_stale(direction: &Direction, written: &Direction) -> bool {
    direction.version != written.version || (direction.end && !written.end)
}

#[allow(clippy::too_many_arguments)]
fn compose_loop(
    factory: Option<ComposerFactory>,
    music: &SessionMusic,
    direction: &Mutex<Direction>,
    audio: &composer::ChapterAudio,
    instruments: &Instruments,
    chapters: &std::sync::mpsc::SyncSender<feeder::Made>,
    events: &std::sync::mpsc::Sender<SessionEvent>,
    shared: &Shared,
) {
    let current = || direction.lock().map(|d| d.clone()).ok();
    let stale = |written: &Direction| current().is_some_and(|now| is_stale(&now, written));
    // Hands `made` over, waiting while the feeder is full; a chapter that a change makes
    // stale while it waits is dropped so that the new one is written at once.
    let send = |made: feeder::Made, written: Option<&Direction>| -> Handover {
        let mut made = made;
        loop {
            if shared.stop.load(Ordering::Relaxed) {
                return Handover::Stopped;
            }
            match chapters.try_send(made) {
                Ok(()) => return Handover::Sent,
                Err(std::sync::mpsc::TrySendError::Full(back)) => {
                    if written.is_some_and(&stale) {
                        return Handover::Stale;
                    }
                    made = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return Handover::Stopped,
            }
        }
    };
    let fail = |e: Error| {
        let message = e.to_string();
        shared.fail(message.clone());
        let _ = events.send(SessionEvent::Error(message));
    };
    // The composing budget: twice the slowest recent chapter (a change may arrive half-way
    // through one that is then thrown away) and a margin for the feeder's polling.
    let mut recent_ms = [0.0f64; BUDGET_WINDOW];
    let mut measured = 0usize;
    let mut measure = |ms: f64| {
        recent_ms[measured % BUDGET_WINDOW] = ms;
        measured += 1;
        if !shared.compose_budget_fixed {
            let worst = recent_ms.iter().copied().fold(0.0, f64::max);
            let budget_s = (2.0 * worst + 250.0) / 1000.0;
            let frames = (budget_s * f64::from(shared.grid.sample_rate)).round() as u64;
            shared
                .compose_budget_frames
                .store(frames, Ordering::Relaxed);
        }
    };
    let Some(first) = current() else { return };
    // The intro: the arranger writes it at once; only the layers sounding at the starting
    // intensity are rendered, with a short tail, so the first sound comes quickly.
    let level = composer::layers_at(first.intensity, music.stems.len());
    let intro_audio = composer::ChapterAudio {
        tail_seconds: INTRO_TAIL_SECONDS,
        ..audio.clone()
    };
    let intro = composer::make_chapter(
        &mut ArrangerComposer,
        music,
        &first,
        0,
        SectionKind::Intro,
        INTRO_BARS,
        &intro_audio,
        instruments,
        Some(level),
        &|| false,
    );
    match intro {
        Ok(Some(chapter)) => {
            if !matches!(
                send(feeder::Made::Chapter(Box::new(chapter)), None),
                Handover::Sent
            ) {
                return;
            }
        }
        Ok(None) => return,
        Err(e) => {
            fail(e);
            shared.finished.store(true, Ordering::Release);
            return;
        }
    }
    match composer::render_stinger(music, first.style, audio) {
        Ok(stinger) => {
            if !matches!(send(feeder::Made::Stinger(stinger), None), Handover::Sent) {
                return;
            }
        }
        Err(e) => fail(e),
    }
    // The first section is arranged too: the models load and write the second while the
    // intro and the first section play (the DiT's first chapter alone can outlast the intro).
    let mut factory = factory;
    let mut writer: Box<dyn ChapterComposer> = Box::new(ArrangerComposer);
    let mut index = 1u64;
    while !shared.stop.load(Ordering::Relaxed) {
        if index == 2
            && let Some(make) = factory.take()
        {
            writer = match make() {
                Ok(w) => w,
                Err(e) => {
                    fail(Error::Model(format!(
                        "{e}; the session goes on with the rule-based arranger"
                    )));
                    Box::new(ArrangerComposer)
                }
            };
        }
        let Some(now) = current() else { return };
        let (kind, bars) = if now.end {
            (SectionKind::Outro, OUTRO_BARS)
        } else {
            (composer::chapter_kind(index), SECTION_BARS)
        };
        let started = Instant::now();
        let made = composer::make_chapter(
            writer.as_mut(),
            music,
            &now,
            index,
            kind,
            bars,
            audio,
            instruments,
            None,
            // A change that arrives while the notes are written skips the render.
            &|| stale(&now) || shared.stop.load(Ordering::Relaxed),
        );
        match made {
            Ok(Some(chapter)) => {
                measure(started.elapsed().as_secs_f64() * 1000.0);
                let trace = chapter.trace.clone();
                match send(feeder::Made::Chapter(Box::new(chapter)), Some(&now)) {
                    Handover::Sent => {
                        for event in trace {
                            let _ = events.send(SessionEvent::Decision {
                                chapter: index,
                                event,
                            });
                        }
                    }
                    Handover::Stale => continue,
                    Handover::Stopped => return,
                }
            }
            Ok(None) => continue,
            Err(e) => {
                fail(e);
                // The arranger cannot fail on a plan the planner made; keep playing with it.
                writer = Box::new(ArrangerComposer);
                continue;
            }
        }
        if kind == SectionKind::Outro {
            return;
        }
        index += 1;
    }
}

/// The audio side: pulls interleaved stereo frames. Never allocates, locks or blocks.
pub struct SessionAudio {
    consumer: rtrb::Consumer<f32>,
    shared: Arc<Shared>,
}

impl SessionAudio {
    /// Fills `out` (interleaved stereo) from the ring; what the ring cannot give is silence
    /// and counts as an underrun once music has started (not while paused or after the end).
    /// Returns the frames of music written.
    pub fn pull(&mut self, out: &mut [f32]) -> usize {
        let frames = out.len() / 2;
        let got = self.read(out);
        if got < frames {
            out[got * 2..].fill(0.0);
            let shared = &self.shared;
            let started = shared.first_audio_ns.load(Ordering::Relaxed) != NONE;
            if started
                && !shared.paused.load(Ordering::Relaxed)
                && !shared.finished.load(Ordering::Acquire)
            {
                shared.underruns.fetch_add(1, Ordering::Relaxed);
                shared
                    .underrun_frames
                    .fetch_add((frames - got) as u64, Ordering::Relaxed);
            }
        }
        self.shared
            .output_frames
            .fetch_add(frames as u64, Ordering::Relaxed);
        got
    }

    /// For offline use (rendering to a file): waits until `out` is full, the session has
    /// ended or `timeout` has passed, then fills the rest with silence. Not for an audio
    /// callback: it sleeps.
    pub fn pull_wait(&mut self, out: &mut [f32], timeout: Duration) -> usize {
        let frames = out.len() / 2;
        self.shared.offline.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + timeout;
        let mut got = 0;
        loop {
            got += self.read(&mut out[got * 2..]);
            if got == frames
                || self.is_finished()
                || self.shared.paused.load(Ordering::Relaxed)
                || Instant::now() >= deadline
            {
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        out[got * 2..].fill(0.0);
        self.shared
            .output_frames
            .fetch_add(frames as u64, Ordering::Relaxed);
        got
    }

    /// True once the session has played its last frame (after `end`).
    pub fn is_finished(&self) -> bool {
        self.shared.finished.load(Ordering::Acquire) && self.consumer.is_empty()
    }

    /// Reads what the ring holds into `out`, honouring pause and resume.
    fn read(&mut self, out: &mut [f32]) -> usize {
        let shared = &self.shared;
        if shared.paused.load(Ordering::Relaxed) {
            if shared.resume.swap(false, Ordering::AcqRel) {
                shared.paused.store(false, Ordering::Relaxed);
            } else {
                return 0;
            }
        }
        let position = shared.music_frame.load(Ordering::Relaxed);
        let mut frames = (out.len() / 2).min(self.consumer.slots() / 2);
        let pause_at = shared.pause_at.load(Ordering::Acquire);
        let mut pausing = false;
        if pause_at != NONE && pause_at <= position + frames as u64 {
            frames = pause_at.saturating_sub(position) as usize;
            pausing = true;
        }
        if frames > 0
            && let Ok(chunk) = self.consumer.read_chunk(frames * 2)
        {
            let (first, second) = chunk.as_slices();
            out[..first.len()].copy_from_slice(first);
            out[first.len()..first.len() + second.len()].copy_from_slice(second);
            chunk.commit_all();
            if shared.first_audio_ns.load(Ordering::Relaxed) == NONE {
                let ns = shared
                    .started_at
                    .elapsed()
                    .as_nanos()
                    .min(u128::from(NONE - 1));
                shared.first_audio_ns.store(ns as u64, Ordering::Relaxed);
            }
        }
        let position = position + frames as u64;
        shared.music_frame.store(position, Ordering::Release);
        shared
            .beat
            .store(shared.grid.beat_at(position), Ordering::Relaxed);
        if pausing {
            shared.pause_at.store(NONE, Ordering::Release);
            shared.paused.store(true, Ordering::Release);
        }
        frames
    }
}

/// The caller's side: controls, position, statistics.
pub struct SessionHandle {
    shared: Arc<Shared>,
    commands: rtrb::Producer<Command>,
    events: std::sync::mpsc::Receiver<SessionEvent>,
    threads: Vec<JoinHandle<()>>,
    next_id: u64,
    lead_frames: usize,
    tempo_bpm: f64,
    music: SessionMusic,
}

impl SessionHandle {
    /// Asks for `control` at the next `quantum` boundary the engine can still reach; returns
    /// the requested frame. Changes that need music ([`Control::needs_music`]) are asked for
    /// one composing budget later, on a bar or section (a beat quantum means the next bar for
    /// them: sections start on bars).
    pub fn send(&mut self, control: Control, quantum: Quantum) -> Result<u64, Error> {
        if let Control::Intensity(v) = control
            && (!v.is_finite() || !(0.0..=1.0).contains(&v))
        {
            return Err(Error::Request(format!(
                "intensity {v} is not between 0 and 1"
            )));
        }
        let shared = &self.shared;
        let issued = shared.music_frame.load(Ordering::Acquire);
        let mut earliest = issued + (self.lead_frames + BLOCK_FRAMES) as u64;
        let mut snap = quantum;
        if control.needs_music() {
            earliest += self.compose_budget_frames();
            if snap == Quantum::Beat {
                snap = Quantum::Bar;
            }
        }
        let requested = match (control, snap) {
            (Control::Resume, _) => issued,
            (_, Quantum::Section) => shared.grid.section_at_or_after(
                earliest,
                shared.section_anchor_bar.load(Ordering::Acquire),
                u64::from(SECTION_BARS),
            ),
            (_, q) => shared.grid.boundary_at_or_after(q, earliest),
        };
        let id = self.next_id;
        self.next_id += 1;
        let mut transition = Transition {
            id,
            control: control.describe(),
            quantum,
            issued_frame: issued,
            requested_frame: requested,
            actual_frame: None,
            late: false,
        };
        match control {
            // The audio side itself stops at the boundary, to the sample.
            Control::Pause => {
                shared.pause_at.store(requested, Ordering::Release);
                transition.actual_frame = Some(requested);
                shared.record(transition);
            }
            Control::Resume => {
                shared.resume.store(true, Ordering::Release);
                transition.actual_frame = Some(issued);
                shared.record(transition);
            }
            _ => {
                shared.record(transition);
                self.commands
                    .push(Command {
                        id,
                        control,
                        quantum,
                        issued,
                        requested,
                    })
                    .map_err(|_| {
                        Error::Request(
                            "too many controls waiting; send fewer at a time".to_string(),
                        )
                    })?;
            }
        }
        Ok(requested)
    }

    pub fn set_intensity(&mut self, intensity: f32, quantum: Quantum) -> Result<u64, Error> {
        self.send(Control::Intensity(intensity), quantum)
    }

    /// Frames a control that needs music is asked for beyond the lead now: the measured (or
    /// fixed) composing budget, or none for an offline reader, whom the feeder waits for.
    pub fn compose_budget_frames(&self) -> u64 {
        let shared = &self.shared;
        if shared.offline.load(Ordering::Relaxed) && !shared.compose_budget_fixed {
            0
        } else {
            shared.compose_budget_frames.load(Ordering::Relaxed)
        }
    }

    /// Where the music is.
    pub fn position(&self) -> Position {
        let frame = self.shared.music_frame.load(Ordering::Acquire);
        let beat = self.shared.beat.load(Ordering::Relaxed);
        let per_bar = self.shared.grid.beats_per_bar;
        Position {
            frame,
            beat,
            bar: beat / per_bar,
            beat_in_bar: beat % per_bar,
        }
    }

    pub fn grid(&self) -> Grid {
        self.shared.grid
    }

    pub fn tempo_bpm(&self) -> f64 {
        self.tempo_bpm
    }

    /// The session's fixed tempo, meter, key and stems.
    pub fn music(&self) -> &SessionMusic {
        &self.music
    }

    pub fn underruns(&self) -> u64 {
        self.shared.underruns.load(Ordering::Relaxed)
    }

    /// Milliseconds from start to the first frame of music pulled.
    pub fn first_audio_ms(&self) -> Option<f64> {
        let ns = self.shared.first_audio_ns.load(Ordering::Relaxed);
        (ns != NONE).then(|| ns as f64 / 1e6)
    }

    pub fn transitions(&self) -> Vec<Transition> {
        self.shared
            .transitions
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default()
    }

    /// Events since the last call.
    pub fn events(&self) -> Vec<SessionEvent> {
        self.events.try_iter().collect()
    }

    /// The last error a worker met (the session carries on where it can).
    pub fn last_error(&self) -> Option<String> {
        self.shared.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// True once the feeder has pushed the last frame.
    pub fn is_finished(&self) -> bool {
        self.shared.finished.load(Ordering::Acquire)
    }

    pub fn stats(&self) -> SessionStats {
        let shared = &self.shared;
        SessionStats {
            sample_rate: shared.grid.sample_rate,
            tempo_bpm: self.tempo_bpm,
            first_audio_ms: self.first_audio_ms(),
            underruns: self.underruns(),
            underrun_frames: shared.underrun_frames.load(Ordering::Relaxed),
            frames: shared.music_frame.load(Ordering::Acquire),
            output_frames: shared.output_frames.load(Ordering::Relaxed),
            lead_frames: self.lead_frames,
            late: shared.late.load(Ordering::Relaxed),
            compose_budget_ms: self.compose_budget_frames() as f64 * 1000.0
                / f64::from(shared.grid.sample_rate),
            transitions: self.transitions(),
        }
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests;
