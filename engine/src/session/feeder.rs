//! The feeder: lays rendered chapters on the session's timeline, schedules controls on their
//! boundaries, mixes and limits block after block, and keeps the ring topped up.
//!
//! Controls that need music (next section, style, mood, end) wait in `pending` with a target
//! frame. The choice is made at the last moment, when the next block's window would reach the
//! target: the chapter that fits (written after the change, or any chapter for a next section)
//! is placed exactly there, cutting what plays; until then the timeline is filled with what
//! was written before the change, or the section playing is played again. If nothing fits
//! at that moment (the composer is overloaded) the control moves to its quantum's next
//! boundary and counts as late; an offline reader waits instead.
//!
//! Each block is mixed inside a wider window (0.1 s before it, 50 ms after it)
//! and limited as a whole; only the block is kept. The limiter's gain at a frame depends only
//! on the peaks within its release reach before and its attack reach after, both inside the
//! window, so consecutive blocks join without a step in the gain.

use super::composer::{Chapter, layers_at};
use super::{
    BLOCK_FRAMES, Command, Control, Direction, Quantum, SECTION_BARS, SessionEvent, Shared,
    Transition,
};
use crate::music::SectionKind;
use crate::render::master;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the composer hands over.
pub(super) enum Made {
    Chapter(Box<Chapter>),
    /// Pre-master audio of the stinger hit.
    Stinger(Vec<f32>),
}

/// Seconds of audio before each block that its limiter window covers.
const PRE_SECONDS: f64 = 0.1;
/// Seconds after each block the limiter looks ahead.
const POST_SECONDS: f64 = 0.05;
/// Seconds a layer takes to fade in or out when the intensity changes (no clicks).
const RAMP_SECONDS: f64 = 0.01;
/// Seconds the old section takes to fade when a cut replaces it.
const CUT_FADE_SECONDS: f64 = 0.12;
/// Level of a stinger against the music.
const STINGER_LEVEL: f32 = 0.8;

/// Chapters received and not yet placed that the feeder holds at most while no control is
/// waiting for music (the composer stays this far ahead, plus the one in the channel).
const QUEUE_AHEAD: usize = 1;

/// Chapters held at most while draining stale ones to reach a chapter a control waits for.
const QUEUE_MAX: usize = 4;

/// A chapter on the timeline (shared, so a section can be played again as filler).
struct Placed {
    chapter: Arc<Chapter>,
    start: u64,
    /// First frame after its bars (its tail runs on to `end`).
    bars_end: u64,
    end: u64,
    /// Where a cut fades it out.
    cut: Option<u64>,
}

/// From `frame` on, `layers` layers sound.
#[derive(Clone, Copy)]
struct LevelChange {
    frame: u64,
    layers: usize,
}

struct OneShot {
    start: u64,
    gain: f32,
}

/// A control that needs a chapter not yet written.
struct Pending {
    command: Command,
    /// For style and mood: the direction version the chapter must have been written at.
    version: u64,
    /// Where it is to land: the requested frame, or a later boundary once late.
    target: u64,
    late: bool,
}

pub(super) struct Feeder {
    shared: Arc<Shared>,
    producer: rtrb::Producer<f32>,
    commands: rtrb::Consumer<Command>,
    chapters: Receiver<Made>,
    events: Sender<SessionEvent>,
    direction: Arc<Mutex<Direction>>,
    layers_total: usize,
    placed: VecDeque<Placed>,
    /// Chapters received but not yet placed, in the order written.
    queue: VecDeque<Box<Chapter>>,
    /// The composer has stopped (the channel is closed).
    composer_done: bool,
    /// Bar where the next chapter starts if nothing cuts in.
    next_bar: u64,
    pushed: u64,
    levels: Vec<LevelChange>,
    pending: Vec<Pending>,
    stinger: Vec<f32>,
    oneshots: Vec<OneShot>,
    ceiling_db: f32,
    outro_end: Option<u64>,
    window: Vec<f32>,
    gains: Vec<f32>,
    pre: u64,
    post: u64,
    ramp: u64,
    cut_fade: u64,
}

fn db_to_gain(db: f64) -> f32 {
    10f64.powf(db / 20.0) as f32
}

impl Feeder {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        shared: Arc<Shared>,
        producer: rtrb::Producer<f32>,
        commands: rtrb::Consumer<Command>,
        chapters: Receiver<Made>,
        events: Sender<SessionEvent>,
        direction: Arc<Mutex<Direction>>,
        layers_total: usize,
        intensity: f32,
        ceiling_db: f32,
    ) -> Feeder {
        let rate = f64::from(shared.grid.sample_rate);
        let frames = |seconds: f64| (seconds * rate).round() as u64;
        Feeder {
            producer,
            commands,
            chapters,
            events,
            direction,
            layers_total,
            placed: VecDeque::new(),
            queue: VecDeque::new(),
            composer_done: false,
            next_bar: 0,
            pushed: 0,
            levels: vec![LevelChange {
                frame: 0,
                layers: layers_at(intensity, layers_total),
            }],
            pending: Vec::new(),
            stinger: Vec::new(),
            oneshots: Vec::new(),
            ceiling_db,
            outro_end: None,
            window: Vec::new(),
            gains: Vec::new(),
            pre: frames(PRE_SECONDS),
            post: frames(POST_SECONDS),
            ramp: frames(RAMP_SECONDS).max(1),
            cut_fade: frames(CUT_FADE_SECONDS).max(1),
            shared,
        }
    }

    pub(super) fn run(&mut self) {
        while !self.shared.stop.load(Ordering::Acquire) {
            self.receive();
            while let Ok(command) = self.commands.pop() {
                self.schedule(command);
            }
            if self.shared.finished.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            if self.producer.slots() >= BLOCK_FRAMES * 2 && self.prepare() {
                self.push_block();
                continue;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Takes what the composer made: one chapter ahead normally, more while a control waits
    /// for a chapter that stale ones stand in front of.
    fn receive(&mut self) {
        loop {
            let waiting = self.waiting_for_music();
            let wanted =
                self.queue.len() < QUEUE_AHEAD || (self.queue.len() < QUEUE_MAX && waiting);
            if !wanted {
                // A queue full of stale chapters must not keep out the one a control waits for.
                let stale = self
                    .queue
                    .iter()
                    .position(|c| !self.pending.iter().any(|p| Self::fits(p, c)));
                match stale {
                    Some(at) if waiting && self.queue.len() >= QUEUE_MAX => {
                        self.queue.remove(at);
                        continue;
                    }
                    _ => return,
                }
            }
            match self.chapters.try_recv() {
                Ok(Made::Chapter(chapter)) => self.queue.push_back(chapter),
                Ok(Made::Stinger(audio)) => self.stinger = audio,
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.composer_done = true;
                    if self.placed.is_empty() && self.outro_end.is_none() {
                        // Nothing was ever written (the composer failed at once).
                        self.shared.finished.store(true, Ordering::Release);
                    }
                    return;
                }
            }
        }
    }

    /// True when some pending control has no chapter in the queue that fits it.
    fn waiting_for_music(&self) -> bool {
        self.pending
            .iter()
            .any(|p| !self.queue.iter().any(|c| Self::fits(p, c)))
    }

    /// Frame where the next chapter would start if nothing cut in.
    fn natural_start(&self) -> u64 {
        self.shared.grid.bar_frame(self.next_bar)
    }

    /// Makes the timeline hold the music the next block needs: lands the controls whose
    /// target the block's window reaches, and places chapters where the timeline runs out.
    /// False when it must wait for the composer.
    fn prepare(&mut self) -> bool {
        if self.outro_end.is_some() {
            return true;
        }
        let need = self.pushed + BLOCK_FRAMES as u64 + self.post;
        while let Some(target) = self.pending.iter().map(|p| p.target).min()
            && target < need
        {
            // What plays up to the cut: the music written before the change.
            while self.natural_start() < target {
                if !self.place_filler() {
                    return false;
                }
            }
            if !self.cut_at(target) {
                if self.shared.offline.load(Ordering::Relaxed) && !self.composer_done {
                    return false;
                }
                self.postpone(target, need);
            }
            if self.outro_end.is_some() {
                return true;
            }
        }
        while self.placed.is_empty() || self.natural_start() < need {
            if !self.place_filler() {
                return false;
            }
            if self.outro_end.is_some() {
                return true;
            }
        }
        true
    }

    /// Places the next chapter where the timeline runs out. While controls wait for music the
    /// chapters they need are kept back: one written before the change plays instead, or the
    /// section playing plays again. False when there is nothing to place.
    fn place_filler(&mut self) -> bool {
        let bar = self.next_bar;
        // A chapter written for a style, mood or end change never plays before it; a next
        // section may take one when another is left for it.
        let spare = |at: usize| {
            self.pending.iter().all(|p| {
                !Self::fits(p, &self.queue[at])
                    || (p.command.control == Control::NextSection
                        && self
                            .queue
                            .iter()
                            .enumerate()
                            .any(|(other, c)| other != at && Self::fits(p, c)))
            })
        };
        let pick = (0..self.queue.len()).find(|&at| spare(at));
        if let Some(at) = pick
            && let Some(chapter) = self.queue.remove(at)
        {
            self.place(Arc::from(chapter), bar);
            return true;
        }
        if self.pending.is_empty() {
            return false;
        }
        let again = self
            .placed
            .iter()
            .rev()
            .find(|p| p.chapter.kind != SectionKind::Outro)
            .map(|p| p.chapter.clone());
        match again {
            Some(chapter) => {
                self.place(chapter, bar);
                true
            }
            // Nothing has played yet and every chapter written is for the change (a control
            // that came before the first audio): start with one of them rather than wait for
            // music that the composer will never write; the change still cuts on its frame
            // to the next chapter that fits.
            None => match self.queue.pop_front() {
                Some(chapter) => {
                    self.place(Arc::from(chapter), bar);
                    true
                }
                None => false,
            },
        }
    }

    /// Lands the pending controls whose target is `target` with the queued chapter that fits
    /// most of them, placed exactly there. False when no queued chapter fits any.
    fn cut_at(&mut self, target: u64) -> bool {
        let due: Vec<usize> = (0..self.pending.len())
            .filter(|&i| self.pending[i].target == target)
            .collect();
        let score = |c: &Chapter| {
            due.iter()
                .filter(|&&i| Self::fits(&self.pending[i], c))
                .count()
        };
        let best = self
            .queue
            .iter()
            .enumerate()
            .map(|(at, c)| (score(c), at))
            .filter(|(n, _)| *n > 0)
            // The most controls satisfied; among equals the chapter written first.
            .max_by_key(|(n, at)| (*n, std::cmp::Reverse(*at)));
        let Some((_, at)) = best else {
            return false;
        };
        let Some(chapter) = self.queue.remove(at) else {
            return false;
        };
        let grid = self.shared.grid;
        let bar = grid.bar_at(target);
        let mut landed = Vec::new();
        let mut left = Vec::new();
        for p in self.pending.drain(..) {
            if p.target == target && Self::fits(&p, &chapter) {
                landed.push(p);
            } else {
                left.push(p);
            }
        }
        self.pending = left;
        let version = chapter.version;
        self.place(Arc::from(chapter), bar);
        for p in &landed {
            self.landed(&p.command, target, p.late);
        }
        // What was written before the change is no longer wanted.
        self.queue.retain(|c| c.version >= version);
        true
    }

    /// Moves the controls due at `target` that could not land to their next boundary at or
    /// after `need`, counting each as late once.
    fn postpone(&mut self, target: u64, need: u64) {
        let grid = self.shared.grid;
        let mut late = 0;
        for index in 0..self.pending.len() {
            if self.pending[index].target != target {
                continue;
            }
            let quantum = self.pending[index].command.quantum;
            let next = match quantum {
                Quantum::Section => self.boundary(Quantum::Section, need),
                _ => grid.boundary_at_or_after(Quantum::Bar, need),
            };
            let p = &mut self.pending[index];
            p.target = grid.bar_frame(grid.bar_at_or_after(next));
            if !p.late {
                p.late = true;
                late += 1;
            }
        }
        self.shared.late.fetch_add(late, Ordering::Relaxed);
    }

    fn place(&mut self, chapter: Arc<Chapter>, start_bar: u64) {
        let grid = self.shared.grid;
        let start = grid.bar_frame(start_bar);
        let bars_end = grid.bar_frame(start_bar + u64::from(chapter.bars));
        let end = start + chapter.frames() as u64;
        for earlier in &mut self.placed {
            if earlier.end > start && earlier.cut.is_none() && earlier.bars_end > start {
                earlier.cut = Some(start);
            }
        }
        self.next_bar = start_bar + u64::from(chapter.bars);
        self.shared
            .section_anchor_bar
            .store(self.next_bar, Ordering::Release);
        if chapter.kind == SectionKind::Outro {
            self.outro_end = Some(end);
        }
        let _ = self.events.send(SessionEvent::Section {
            index: chapter.index,
            kind: chapter.kind,
            bars: chapter.bars,
            start_frame: start,
            start_bar,
            style: chapter.style,
            mood: chapter.mood,
            composer: chapter.composer,
            compose_ms: chapter.compose_ms,
            render_ms: chapter.render_ms,
        });
        self.placed.push_back(Placed {
            chapter,
            start,
            bars_end,
            end,
            cut: None,
        });
    }

    /// The first boundary of `quantum` at or after `frame`.
    fn boundary(&self, quantum: Quantum, frame: u64) -> u64 {
        let grid = &self.shared.grid;
        match quantum {
            Quantum::Section => {
                let planned = self
                    .placed
                    .iter()
                    .map(|p| p.start)
                    .chain([self.natural_start()])
                    .filter(|&s| s >= frame)
                    .min();
                planned.unwrap_or_else(|| {
                    grid.section_at_or_after(frame, self.next_bar, u64::from(SECTION_BARS))
                })
            }
            q => grid.boundary_at_or_after(q, frame),
        }
    }

    fn landed(&self, command: &Command, actual: u64, late: bool) {
        let transition = Transition {
            id: command.id,
            control: command.control.describe(),
            quantum: command.quantum,
            issued_frame: command.issued,
            requested_frame: command.requested,
            actual_frame: Some(actual),
            late,
        };
        self.shared.record(transition.clone());
        let _ = self.events.send(SessionEvent::Transition(transition));
    }

    fn schedule(&mut self, command: Command) {
        let earliest = command.requested.max(self.pushed);
        match command.control {
            Control::Intensity(value) => {
                let actual = self.boundary(command.quantum, earliest);
                let layers = layers_at(value, self.layers_total);
                let at = self.levels.partition_point(|c| c.frame <= actual);
                self.levels.insert(
                    at,
                    LevelChange {
                        frame: actual,
                        layers,
                    },
                );
                if let Ok(mut direction) = self.direction.lock() {
                    direction.intensity = value;
                }
                self.landed(&command, actual, false);
            }
            Control::Stinger => {
                let actual = self.boundary(command.quantum, earliest);
                let layers = self.layers_at_frame(actual);
                let gain = self
                    .placed
                    .iter()
                    .rev()
                    .find(|p| p.start <= actual)
                    .or(self.placed.back())
                    .map_or(1.0, |p| {
                        db_to_gain(p.chapter.gains_db[layers.max(1) - 1]) * STINGER_LEVEL
                    });
                self.oneshots.push(OneShot {
                    start: actual,
                    gain,
                });
                self.landed(&command, actual, false);
            }
            Control::Mood(_) | Control::Style(_) | Control::End | Control::NextSection => {
                let mut version = 0;
                if let Ok(mut direction) = self.direction.lock() {
                    match command.control {
                        Control::Mood(mood) => {
                            direction.mood = mood;
                            direction.version += 1;
                        }
                        Control::Style(style) => {
                            direction.style = style;
                            direction.version += 1;
                        }
                        Control::End => direction.end = true,
                        _ => {}
                    }
                    version = direction.version;
                }
                let grid = self.shared.grid;
                let mut pending = Pending {
                    command,
                    version,
                    target: grid.bar_frame(grid.bar_at_or_after(command.requested)),
                    late: false,
                };
                if pending.target != command.requested || pending.target < self.pushed {
                    // Asked for a frame the feeder has already passed: the next boundary.
                    let next = self.boundary(command.quantum, earliest);
                    pending.target = grid.bar_frame(grid.bar_at_or_after(next));
                    pending.late = true;
                    self.shared.late.fetch_add(1, Ordering::Relaxed);
                }
                self.pending.push(pending);
            }
            // Handled on the audio side.
            Control::Pause | Control::Resume => {}
        }
    }

    fn layers_at_frame(&self, frame: u64) -> usize {
        let at = self.levels.partition_point(|c| c.frame <= frame);
        self.levels[at.saturating_sub(1)].layers
    }

    fn fits(pending: &Pending, chapter: &Chapter) -> bool {
        match pending.command.control {
            Control::End => chapter.kind == SectionKind::Outro,
            Control::Mood(_) | Control::Style(_) => chapter.version >= pending.version,
            _ => true,
        }
    }

    /// Mixes, limits and pushes the next block.
    fn push_block(&mut self) {
        let start = self.pushed;
        let end = start + BLOCK_FRAMES as u64;
        let from = start.saturating_sub(self.pre);
        let to = end + self.post;
        let length = (to - from) as usize;
        self.window.clear();
        self.window.resize(length * 2, 0.0);
        for index in 0..self.placed.len() {
            let p = &self.placed[index];
            let lo = from.max(p.start);
            let hi = to.min(p.end);
            if lo >= hi {
                continue;
            }
            for layer in 0..p.chapter.stems.len() {
                self.layer_gains(index, layer, lo, hi);
                if self.gains.iter().all(|g| *g == 0.0) {
                    continue;
                }
                let p = &self.placed[index];
                let samples = &p.chapter.stems[layer].1;
                let source = &samples[((lo - p.start) * 2) as usize..((hi - p.start) * 2) as usize];
                let target =
                    &mut self.window[((lo - from) * 2) as usize..((hi - from) * 2) as usize];
                for ((t, s), g) in target
                    .chunks_exact_mut(2)
                    .zip(source.chunks_exact(2))
                    .zip(&self.gains)
                {
                    t[0] += s[0] * g;
                    t[1] += s[1] * g;
                }
            }
        }
        let stinger_frames = (self.stinger.len() / 2) as u64;
        for shot in &self.oneshots {
            let lo = from.max(shot.start);
            let hi = to.min(shot.start + stinger_frames);
            if lo >= hi {
                continue;
            }
            let source =
                &self.stinger[((lo - shot.start) * 2) as usize..((hi - shot.start) * 2) as usize];
            let target = &mut self.window[((lo - from) * 2) as usize..((hi - from) * 2) as usize];
            for (t, s) in target.iter_mut().zip(source) {
                *t += s * shot.gain;
            }
        }
        master::limit(
            &mut self.window,
            self.ceiling_db,
            self.shared.grid.sample_rate as f32,
        );
        let offset = ((start - from) * 2) as usize;
        let block = &self.window[offset..offset + BLOCK_FRAMES * 2];
        if let Ok(mut chunk) = self.producer.write_chunk(BLOCK_FRAMES * 2) {
            let (first, second) = chunk.as_mut_slices();
            first.copy_from_slice(&block[..first.len()]);
            second.copy_from_slice(&block[first.len()..]);
            chunk.commit_all();
        }
        self.pushed = end;
        self.forget_before(start.saturating_sub(self.pre + self.ramp));
        if let Some(outro_end) = self.outro_end
            && self.pushed >= outro_end
        {
            self.shared.finished.store(true, Ordering::Release);
        }
    }

    /// Per frame in `lo..hi`, the gain of layer `layer` of placed chapter `index`: the level's
    /// gain when the layer sounds, ramped across level changes, faded after a cut.
    fn layer_gains(&mut self, index: usize, layer: usize, lo: u64, hi: u64) {
        let p = &self.placed[index];
        let value = |layers: usize| -> f32 {
            if layer < layers {
                db_to_gain(p.chapter.gains_db[layers - 1])
            } else {
                0.0
            }
        };
        self.gains.clear();
        let mut at = self
            .levels
            .partition_point(|c| c.frame <= lo)
            .saturating_sub(1);
        for t in lo..hi {
            while at + 1 < self.levels.len() && self.levels[at + 1].frame <= t {
                at += 1;
            }
            let change = self.levels[at];
            let mut gain = value(change.layers);
            if at > 0 && t - change.frame < self.ramp {
                let before = value(self.levels[at - 1].layers);
                let x = (t - change.frame) as f32 / self.ramp as f32;
                gain = before + (gain - before) * x;
            }
            if let Some(cut) = p.cut
                && t >= cut
            {
                gain *= 1.0 - ((t - cut) as f32 / self.cut_fade as f32).min(1.0);
            }
            self.gains.push(gain);
        }
    }

    /// Lets go of chapters, stingers and level changes that end before `frame`.
    fn forget_before(&mut self, frame: u64) {
        while self
            .placed
            .front()
            .is_some_and(|p| p.end < frame || p.cut.is_some_and(|c| c + self.cut_fade < frame))
        {
            self.placed.pop_front();
        }
        let stinger_frames = (self.stinger.len() / 2) as u64;
        self.oneshots.retain(|s| s.start + stinger_frames >= frame);
        while self.levels.len() > 1 && self.levels[1].frame + self.ramp < frame {
            self.levels.remove(0);
        }
    }
}
