//! The session's composer side: writes the endless plan one section (a "chapter") at a time,
//! renders each chapter's stems with a ring-out tail, and works out the gain that brings every
//! intensity level of the chapter to the loudness target.
//!
//! A chapter is planned as a short song of one section with the session's fixed tempo, key
//! and meter and the current style and mood, so the existing planner, lead-sheet writer and
//! composers (the rule-based arranger, or the DiT writer with its reasoning loop) write it
//! unchanged. Each chapter starts from its own plan: continuity across chapters comes from
//! the shared key, tempo, style and band, not from the DiT's clean context (see docs/LIVE.md).

use crate::Error;
use crate::compose::LeadSheet;
use crate::compose::arranger::{self, choose_band};
use crate::critic::Critic;
use crate::harmony::Labelling;
use crate::music::{DrumClass, Key, Meter, Mood, Note, Section, SectionKind, Song, Stem, Style};
use crate::plan::{self, Plan, Request, stage_rng};
use crate::reasoning::{CopyGuard, ThinkSettings, Thinking, TraceEvent};
use crate::render::{self, Instruments, RenderOptions, master};
use crate::writer::{self, Models, WriterSettings};
use burn::prelude::Backend;
use rand::Rng;

/// Writes the notes of one chapter from its plan and lead sheet.
pub trait ChapterComposer: Send {
    /// Every stem of `plan.stems` over `plan.bars` bars, and the reasoning loop's decisions.
    fn compose(&mut self, plan: &Plan, sheet: &LeadSheet) -> Result<Composed, Error>;
    /// A short name for logs: "arranger", "DiT".
    fn name(&self) -> &'static str;
    /// How the chords of this composer's plans are labelled, per style
    /// ([`plan::plan_labelling`]); empty (the default) means as the corpus's.
    fn plan_labelling_by_style(&self) -> &[Labelling] {
        &[]
    }
}

/// A composed chapter's notes and how they were chosen.
pub struct Composed {
    pub song: Song,
    pub trace: Vec<TraceEvent>,
}

/// The rule-based arranger: instant, and what a session starts with while the models load.
#[derive(Default)]
pub struct ArrangerComposer;

impl ChapterComposer for ArrangerComposer {
    fn compose(&mut self, plan: &Plan, sheet: &LeadSheet) -> Result<Composed, Error> {
        let mut rng = stage_rng(plan.seed, "arrange");
        Ok(Composed {
            song: arranger::arrange(sheet, &plan.stems, &mut rng),
            trace: Vec::new(),
        })
    }

    fn name(&self) -> &'static str {
        "arranger"
    }
}

/// The DiT writer with the reasoning loop (critic and memorisation guard where given).
pub struct DitComposer<B: Backend> {
    pub models: Models<B>,
    pub settings: WriterSettings,
    pub think: ThinkSettings,
    pub critic: Option<Box<dyn Critic + Send>>,
    pub guard: Option<Box<dyn CopyGuard + Send>>,
}

impl<B: Backend> ChapterComposer for DitComposer<B>
where
    Models<B>: Send,
{
    fn compose(&mut self, plan: &Plan, sheet: &LeadSheet) -> Result<Composed, Error> {
        let mut thinking = Thinking {
            settings: self.think.clone(),
            critic: self.critic.as_deref_mut().map(|c| c as &mut dyn Critic),
            guard: self.guard.as_deref().map(|g| g as &dyn CopyGuard),
        };
        let written = writer::write_song(&self.models, plan, sheet, &self.settings, &mut thinking)?;
        Ok(Composed {
            song: written.song,
            trace: written.trace,
        })
    }

    fn name(&self) -> &'static str {
        "DiT"
    }

    fn plan_labelling_by_style(&self) -> &[Labelling] {
        &self.models.dit_config.plan_labelling_by_style
    }
}

/// What stays fixed for a whole session (the beat grid depends on it).
#[derive(Clone, Debug)]
pub struct SessionMusic {
    pub tempo_bpm: f64,
    pub meter: Meter,
    pub key: Key,
    pub stems: Vec<Stem>,
    pub seed: u64,
}

/// What the next chapter is asked to be: changes with the caller's controls.
#[derive(Clone, Debug)]
pub struct Direction {
    pub style: Style,
    pub mood: Mood,
    pub intensity: f32,
    /// Write a resolving outro next, then stop.
    pub end: bool,
    /// Bumped by every style or mood change; chapters carry the version they were written at.
    pub version: u64,
}

/// One rendered chapter, ready to be placed on the timeline.
pub struct Chapter {
    pub index: u64,
    pub kind: SectionKind,
    pub bars: u32,
    pub style: Style,
    pub mood: Mood,
    /// The `Direction::version` it was written at.
    pub version: u64,
    /// Pre-master stems in layer order ([`layer_order`]), interleaved stereo, the chapter's
    /// bars followed by its ring-out tail.
    pub stems: Vec<(Stem, Vec<f32>)>,
    /// Gain (dB) that brings the first `k` layers to the target, at index `k - 1`.
    pub gains_db: Vec<f64>,
    pub trace: Vec<TraceEvent>,
    pub composer: &'static str,
    /// Wall time spent writing and rendering it, ms.
    pub compose_ms: f64,
    pub render_ms: f64,
}

impl Chapter {
    /// Frames of audio held (bars and tail).
    pub fn frames(&self) -> usize {
        self.stems.first().map_or(0, |(_, s)| s.len() / 2)
    }
}

/// The order intensity adds stems in: a pad first, the groove next, the tune on top.
pub fn layer_order(stems: &[Stem]) -> Vec<Stem> {
    [
        Stem::Chords,
        Stem::Texture,
        Stem::Bass,
        Stem::Drums,
        Stem::Lead,
    ]
    .into_iter()
    .filter(|s| stems.contains(s))
    .collect()
}

/// How many layers (1..=`layers`) sound at `intensity` (0..=1).
pub fn layers_at(intensity: f32, layers: usize) -> usize {
    let layers = layers.max(1);
    ((intensity.clamp(0.0, 1.0) * layers as f32).ceil() as usize).clamp(1, layers)
}

/// The section kinds after the intro, repeated for as long as the session runs.
const FORM: [SectionKind; 6] = [
    SectionKind::Verse,
    SectionKind::Chorus,
    SectionKind::Verse,
    SectionKind::Chorus,
    SectionKind::Bridge,
    SectionKind::Chorus,
];

/// The kind of chapter `index` (0 is the intro).
pub fn chapter_kind(index: u64) -> SectionKind {
    if index == 0 {
        SectionKind::Intro
    } else {
        FORM[((index - 1) % FORM.len() as u64) as usize]
    }
}

/// Energy of a section kind at an intensity: the planner's section energies, scaled so low
/// intensity writes sparser parts.
pub fn chapter_energy(kind: SectionKind, intensity: f32) -> f32 {
    let base = match kind {
        SectionKind::Intro => 0.35,
        SectionKind::Verse => 0.55,
        SectionKind::Chorus => 0.8,
        SectionKind::Bridge => 0.5,
        SectionKind::Outro => 0.3,
    };
    (base * (0.6 + 0.7 * intensity.clamp(0.0, 1.0))).clamp(0.1, 1.0)
}

/// The plan and lead sheet of one chapter.
pub fn chapter_plan(
    music: &SessionMusic,
    direction: &Direction,
    index: u64,
    kind: SectionKind,
    bars: u32,
    labelling_by_style: &[Labelling],
) -> Result<(Plan, LeadSheet), Error> {
    let seed = stage_rng(music.seed, &format!("chapter {index}")).random::<u64>();
    let request = Request {
        style: Some(direction.style),
        mood: Some(direction.mood),
        bpm: Some(music.tempo_bpm),
        key: Some(music.key),
        meter: Some(music.meter),
        bars: Some(bars),
        stems: Some(music.stems.clone()),
        seed,
        ..Request::default()
    };
    let mut plan = plan::plan(&request)?;
    plan.sections = vec![Section {
        kind,
        start_bar: 0,
        bars,
        energy: chapter_energy(kind, direction.intensity),
    }];
    plan.energy_per_bar = plan::energy_curve(&plan.sections);
    let mut sheet = plan::lead_sheet(&mut plan);
    let labelling = plan::plan_labelling(labelling_by_style, plan.style);
    plan::corpus_harmony(&mut plan, &mut sheet, labelling);
    Ok((plan, sheet))
}

/// How a chapter is rendered and levelled.
#[derive(Clone, Debug)]
pub struct ChapterAudio {
    pub sample_rate: u32,
    pub target_lufs: f64,
    /// The ceiling the streaming limiter holds, dBTP (less its margin).
    pub limiter_ceiling_db: f32,
    pub tail_seconds: f64,
}

/// Most gain a chapter level may get, dB: near-silent layers are not pulled up to the target.
const MAX_GAIN_DB: f64 = 24.0;

/// Writes and renders chapter `index`. `levels` = `Some(k)` renders only the first `k` layers
/// and measures that level's gain alone (the others take it too); `None` renders every layer
/// and measures every level. `abandon` is asked between writing and rendering: when it says
/// yes (a change made the chapter stale) the render is skipped and `None` returned.
#[allow(clippy::too_many_arguments)]
pub fn make_chapter(
    composer: &mut dyn ChapterComposer,
    music: &SessionMusic,
    direction: &Direction,
    index: u64,
    kind: SectionKind,
    bars: u32,
    audio: &ChapterAudio,
    instruments: &Instruments,
    levels: Option<usize>,
    abandon: &dyn Fn() -> bool,
) -> Result<Option<Chapter>, Error> {
    let started = std::time::Instant::now();
    let (plan, sheet) = chapter_plan(
        music,
        direction,
        index,
        kind,
        bars,
        composer.plan_labelling_by_style(),
    )?;
    let mut composed = composer.compose(&plan, &sheet)?;
    if let Some(level) = levels {
        // Only the layers that sound at this level are rendered (the intro, for a fast start).
        let sounding = layer_order(&music.stems);
        let sounding = &sounding[..level.clamp(1, sounding.len().max(1)).min(sounding.len())];
        composed.song.stems.retain(|t| sounding.contains(&t.stem));
    }
    let compose_ms = started.elapsed().as_secs_f64() * 1000.0;
    if abandon() {
        return Ok(None);
    }
    let rendering = std::time::Instant::now();
    let bar_frames = plan.bar_seconds * f64::from(audio.sample_rate);
    let frames = (f64::from(bars) * bar_frames).round() as u64
        + (audio.tail_seconds * f64::from(audio.sample_rate)).round() as u64;
    let options = RenderOptions {
        sample_rate: audio.sample_rate,
        target_lufs: audio.target_lufs,
        ..RenderOptions::default()
    };
    let rendered = render::render_song_with(&composed.song, frames, &options, instruments)?;
    let mut by_stem = rendered.stems;
    let stems: Vec<(Stem, Vec<f32>)> = layer_order(&music.stems)
        .into_iter()
        .map(|stem| {
            let samples = by_stem
                .iter_mut()
                .find(|(s, _)| *s == stem)
                .map(|(_, b)| std::mem::take(&mut b.samples))
                .unwrap_or_else(|| vec![0.0; frames as usize * 2]);
            (stem, samples)
        })
        .collect();
    let gains_db = level_gains(&stems, audio, levels)?;
    Ok(Some(Chapter {
        index,
        kind,
        bars,
        style: direction.style,
        mood: direction.mood,
        version: direction.version,
        stems,
        gains_db,
        trace: composed.trace,
        composer: composer.name(),
        compose_ms,
        render_ms: rendering.elapsed().as_secs_f64() * 1000.0,
    }))
}

/// Per intensity level, the gain that puts the limited sum of its layers on the target.
fn level_gains(
    stems: &[(Stem, Vec<f32>)],
    audio: &ChapterAudio,
    only: Option<usize>,
) -> Result<Vec<f64>, Error> {
    let frames = stems.first().map_or(0, |(_, s)| s.len());
    let mut measured: Vec<Option<f64>> = vec![None; stems.len()];
    let mut sum = vec![0.0f32; frames];
    let mut scratch = vec![0.0f32; frames];
    for (level, (_, samples)) in stems.iter().enumerate() {
        for (m, s) in sum.iter_mut().zip(samples) {
            *m += s;
        }
        if only.is_some_and(|k| k != level + 1) {
            continue;
        }
        let Some(loudness) = master::loudness(&sum, audio.sample_rate)? else {
            continue;
        };
        let first = (audio.target_lufs - loudness).min(MAX_GAIN_DB);
        let gain = 10f64.powf(first / 20.0) as f32;
        for (o, s) in scratch.iter_mut().zip(&sum) {
            *o = s * gain;
        }
        master::limit(
            &mut scratch,
            audio.limiter_ceiling_db,
            audio.sample_rate as f32,
        );
        // The limiter takes a little loudness away; one measured correction gives it back.
        let after = master::loudness(&scratch, audio.sample_rate)?.unwrap_or(loudness + first);
        measured[level] = Some((first + audio.target_lufs - after).min(MAX_GAIN_DB));
    }
    let known: Vec<(usize, f64)> = measured
        .iter()
        .enumerate()
        .filter_map(|(i, g)| g.map(|g| (i, g)))
        .collect();
    Ok((0..stems.len())
        .map(|i| {
            known
                .iter()
                .min_by_key(|(k, _)| k.abs_diff(i))
                .map_or(0.0, |(_, g)| *g)
        })
        .collect())
}

/// A one-bar hit (crash, kick and clap on the downbeat) for stingers, rendered pre-master.
pub fn render_stinger(
    music: &SessionMusic,
    style: Style,
    audio: &ChapterAudio,
) -> Result<Vec<f32>, Error> {
    let mut band_rng = stage_rng(music.seed, "band");
    let band = choose_band(style, &mut band_rng);
    let mut drums = crate::music::StemTrack::new(Stem::Drums, band[0]);
    for (class, velocity) in [
        (DrumClass::Crash, 120),
        (DrumClass::Kick, 120),
        (DrumClass::Clap, 110),
    ] {
        drums.notes.push(Note {
            start: 0,
            duration: music.meter.steps_per_beat(),
            pitch: class.index(),
            velocity,
        });
    }
    drums.normalise();
    let song = Song {
        style,
        tempo_bpm: music.tempo_bpm,
        meter: music.meter,
        key: music.key,
        bars: 1,
        sections: vec![Section {
            kind: SectionKind::Chorus,
            start_bar: 0,
            bars: 1,
            energy: 1.0,
        }],
        chords: crate::music::ChordTrack {
            per_beat: Vec::new(),
        },
        stems: vec![drums],
    };
    let frames =
        ((music.meter.bar_seconds(music.tempo_bpm) + 1.0) * f64::from(audio.sample_rate)) as u64;
    let options = RenderOptions {
        sample_rate: audio.sample_rate,
        ..RenderOptions::default()
    };
    let rendered = render::render_song(&song, frames, &options)?;
    Ok(rendered
        .stems
        .into_iter()
        .next()
        .map(|(_, b)| b.samples)
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intensity_adds_layers_in_order() {
        assert_eq!(layers_at(0.0, 5), 1);
        assert_eq!(layers_at(0.2, 5), 1);
        assert_eq!(layers_at(0.21, 5), 2);
        assert_eq!(layers_at(1.0, 5), 5);
        assert_eq!(layers_at(f32::NAN, 3).clamp(1, 3), layers_at(f32::NAN, 3));
        assert_eq!(
            layer_order(&Stem::ALL),
            [
                Stem::Chords,
                Stem::Texture,
                Stem::Bass,
                Stem::Drums,
                Stem::Lead
            ]
        );
        assert_eq!(chapter_kind(0), SectionKind::Intro);
        assert_eq!(chapter_kind(1), SectionKind::Verse);
        assert_eq!(chapter_kind(7), SectionKind::Verse);
    }
}
