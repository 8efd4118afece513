//! The arranger: lead sheet -> five stems (drums, bass, chords, lead, texture) in a style,
//! with grooves, bass idioms, voicings, section variants, fills and energy that follows form.
//!
//! It works like a producer with a chart on the stand: first a [`style::StylePlan`] fixes the
//! band (one instrument per stem) and the idioms (which groove, which bass figure, which
//! comping rhythm, which texture), then each part is written bar by bar against a [`Chart`]
//! that knows the harmony and where every bar sits in the form (section, energy, first or
//! last bar, the final bar). Finally every stem is made representable (range, grid, no
//! overlapping notes of one pitch) so the models can learn from it.
//!
//! - [`drums`]: groove tables per style and meter, section variants, fills and crashes.
//! - [`bass`]: bass idioms that follow the changes (roots on chord changes).
//! - [`voicing`]: chord voicings with voice leading.
//! - [`comping`]: the chords stem's rhythms per style.
//! - [`texture`]: arps, counter-lines, shimmer, fills in melody gaps, ear candy.
//! - [`style`]: the band and the idioms chosen for one song, and which parts play where.

mod bass;
mod comping;
mod drums;
mod style;
mod texture;
mod voicing;

pub use style::choose_band;

#[cfg(test)]
mod tests;

use super::{LeadSheet, SongRng};
use crate::music::{
    Chord, ChordQuality, Key, Meter, Note, Section, SectionKind, Song, Stem, StemTrack, Style,
};
use rand::{Rng, SeedableRng};

/// Arranges a lead sheet for the given stems (any subset of [`Stem::ALL`]).
///
/// The song gets exactly the requested stems, in [`Stem::ALL`] order. Each stem draws from its
/// own generator seeded from `rng`, so the drums of a song are the same whether or not the
/// bass was asked for.
pub fn arrange(sheet: &LeadSheet, stems: &[Stem], rng: &mut SongRng) -> Song {
    let chart = Chart::new(sheet);
    let plan = style::StylePlan::choose(&chart, rng);
    let seeds: [u64; 5] = rng.random();
    let mut tracks = Vec::new();
    for (stem, seed) in Stem::ALL.into_iter().zip(seeds) {
        if !stems.contains(&stem) {
            continue;
        }
        let mut part_rng = SongRng::seed_from_u64(seed);
        let notes = match stem {
            Stem::Drums => drums::write_drums(&chart, &plan, &mut part_rng),
            Stem::Bass => bass::write_bass(&chart, &plan, &mut part_rng),
            Stem::Chords => comping::write_chords(&chart, &plan, &mut part_rng),
            Stem::Lead => write_lead(&chart, &plan),
            Stem::Texture => texture::write_texture(&chart, &plan, &mut part_rng),
        };
        let mut track = StemTrack::new(stem, plan.instrument(stem));
        track.notes = finish_part(stem, sheet.meter, sheet.bars, notes);
        track.normalise();
        tracks.push(track);
    }
    Song {
        style: sheet.style,
        tempo_bpm: sheet.tempo_bpm,
        meter: sheet.meter,
        key: sheet.key,
        bars: sheet.bars,
        sections: sheet.sections.clone(),
        chords: sheet.chords.clone(),
        stems: tracks,
    }
}

/// Where one bar sits in the form: everything a part needs to shape that bar.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct BarContext {
    pub bar: u32,
    pub kind: SectionKind,
    pub energy: f32,
    /// Bar index inside its section and the section's length (for builds and phrasing).
    pub bar_in_section: u32,
    pub section_bars: u32,
    /// First bar of a section that follows another one: the crash lands here.
    pub starts_section: bool,
    /// Last bar before a section change: the fill goes here.
    pub ends_section: bool,
    /// The kind and energy of the section after this bar, if any.
    pub next: Option<(SectionKind, f32)>,
    /// The very last bar of the song, where everything resolves.
    pub is_final: bool,
}

/// The chart on the stand: meter, key, harmony and the form bar by bar.
pub(crate) struct Chart<'a> {
    pub sheet: &'a LeadSheet,
    pub style: Style,
    pub meter: Meter,
    pub key: Key,
    pub bars: u32,
    pub steps_per_bar: u32,
    pub steps_per_beat: u32,
    pub form: Vec<BarContext>,
}

impl<'a> Chart<'a> {
    pub fn new(sheet: &'a LeadSheet) -> Chart<'a> {
        let bars = sheet.bars;
        // A bar the sections do not cover is played like a middle-of-the-road verse.
        let fallback = Section {
            kind: SectionKind::Verse,
            start_bar: 0,
            bars: bars.max(1),
            energy: 0.5,
        };
        let section_of = |bar: u32| sheet.section_at(bar).copied().unwrap_or(fallback);
        let form = (0..bars)
            .map(|bar| {
                let section = section_of(bar);
                // A loop has no last bar: its end turns round into its start.
                let is_final = bar + 1 == bars && !sheet.looped;
                let starts_section = bar > 0 && bar == section.start_bar;
                let ends_section = !is_final && bar + 1 >= section.end_bar();
                let next = (!is_final).then(|| {
                    let s = section_of((bar + 1) % bars);
                    (s.kind, s.energy.clamp(0.0, 1.0))
                });
                BarContext {
                    bar,
                    kind: section.kind,
                    energy: section.energy.clamp(0.0, 1.0),
                    bar_in_section: bar.saturating_sub(section.start_bar),
                    section_bars: section.bars.max(1),
                    starts_section,
                    ends_section,
                    next,
                    is_final,
                }
            })
            .collect();
        Chart {
            sheet,
            style: sheet.style,
            meter: sheet.meter,
            key: sheet.key,
            bars,
            steps_per_bar: sheet.meter.steps_per_bar(),
            steps_per_beat: sheet.meter.steps_per_beat(),
            form,
        }
    }

    pub fn bar_start(&self, bar: u32) -> u32 {
        bar * self.steps_per_bar
    }

    pub fn total_steps(&self) -> u32 {
        self.bars * self.steps_per_bar
    }

    /// The tonic triad of the key (major or minor by the mode's third).
    pub fn tonic_chord(&self) -> Chord {
        let quality = if self.key.mode.is_minor_like() {
            ChordQuality::Minor
        } else {
            ChordQuality::Major
        };
        Chord::new(0, quality)
    }

    /// The chord sounding at a step; the tonic where the chart runs out.
    pub fn chord_at(&self, step: u32) -> Chord {
        self.sheet
            .chords
            .at_step(self.meter, step)
            .unwrap_or_else(|| self.tonic_chord())
    }

    /// Whether a new chord starts at this step (the song's first beat counts as a change).
    pub fn is_change(&self, step: u32) -> bool {
        if !step.is_multiple_of(self.steps_per_beat) {
            return false;
        }
        step == 0 || self.chord_at(step) != self.chord_at(step - self.steps_per_beat)
    }

    /// Steps inside `bar` where a new chord starts, plus the downbeat.
    pub fn change_steps_in_bar(&self, bar: u32) -> Vec<u32> {
        let start = self.bar_start(bar);
        (0..self.steps_per_bar)
            .step_by(self.steps_per_beat as usize)
            .filter(|&s| s == 0 || self.is_change(start + s))
            .collect()
    }

    /// The step (absolute) of the next chord change after `step`, or the end of the song.
    pub fn next_change_after(&self, step: u32) -> u32 {
        let mut s = (step / self.steps_per_beat + 1) * self.steps_per_beat;
        while s < self.total_steps() && !self.is_change(s) {
            s += self.steps_per_beat;
        }
        s.min(self.total_steps())
    }

    /// The chord the song ends on (the last bar's downbeat): held to the end by bass and chords.
    pub fn final_chord(&self) -> Chord {
        self.chord_at(self.bar_start(self.bars.saturating_sub(1)))
    }

    pub fn context(&self, bar: u32) -> Option<&BarContext> {
        self.form.get(bar as usize)
    }
}

/// Loudness multiplier of a section: quiet sections still speak, loud ones push.
pub(crate) fn dynamics(energy: f32) -> f32 {
    0.62 + 0.38 * energy.clamp(0.0, 1.0)
}

/// A velocity from a base level and a multiplier, with a little human unevenness.
pub(crate) fn velocity(base: f32, factor: f32, rng: &mut SongRng) -> u8 {
    let jitter = rng.random_range(-3.0f32..=3.0);
    (base * factor + jitter).round().clamp(1.0, 127.0) as u8
}

pub(crate) fn note(start: u32, duration: u32, pitch: i32, velocity: u8) -> Note {
    Note {
        start,
        duration: duration.max(1),
        pitch,
        velocity: velocity.clamp(1, 127),
    }
}

/// One onset of a rhythm written as text: where it starts, how long it lasts, its symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hit {
    pub step: u32,
    pub len: u32,
    pub symbol: char,
}

/// Reads a rhythm string: one character per sixteenth, '.' rest, '-' holds the previous
/// onset, anything else is an onset carrying that symbol (accent, chord degree, ...).
pub(crate) fn parse_rhythm(pattern: &str) -> Vec<Hit> {
    let mut hits: Vec<Hit> = Vec::new();
    let mut holding = false;
    for (step, c) in pattern.chars().enumerate() {
        match c {
            '.' => holding = false,
            '-' => {
                if let (true, Some(last)) = (holding, hits.last_mut()) {
                    last.len += 1;
                }
            }
            symbol => {
                hits.push(Hit {
                    step: step as u32,
                    len: 1,
                    symbol,
                });
                holding = true;
            }
        }
    }
    hits
}

/// Moves a key-relative pitch by `degrees` steps of the key's scale (a pitch outside the
/// scale first snaps down to the scale tone below it). Keeps lines diatonic.
pub(crate) fn scale_step(key: Key, pitch: i32, degrees: i32) -> i32 {
    let mut p = pitch;
    for _ in 0..12 {
        if key.contains_relative(p) {
            break;
        }
        p -= 1;
    }
    let dir = degrees.signum();
    for _ in 0..degrees.unsigned_abs() {
        p += dir;
        for _ in 0..12 {
            if key.contains_relative(p) {
                break;
            }
            p += dir;
        }
    }
    p
}

/// The pitch with pitch class `pc` nearest to `near` (ties go down).
pub(crate) fn nearest(pc: i32, near: i32) -> i32 {
    let base = near - (near - pc).rem_euclid(12);
    if near - base > 6 { base + 12 } else { base }
}

/// Cuts a line to one note at a time: each note ends where the next one starts.
pub fn make_monophonic(notes: &mut Vec<Note>) {
    notes.sort();
    notes.dedup_by(|later, earlier| later.start == earlier.start);
    for i in 1..notes.len() {
        let next_start = notes[i].start;
        let prev = &mut notes[i - 1];
        if prev.end() > next_start {
            prev.duration = (next_start - prev.start).max(1);
        }
    }
}

/// Joins notes of one pitch that touch end to start into one held note (pads, pedals).
pub(crate) fn tie_repeats(notes: &mut Vec<Note>) {
    notes.sort_by_key(|n| (n.pitch, n.start));
    let mut tied: Vec<Note> = Vec::with_capacity(notes.len());
    for n in notes.drain(..) {
        match tied.last_mut() {
            Some(last) if last.pitch == n.pitch && last.end() == n.start => {
                last.duration += n.duration;
            }
            _ => tied.push(n),
        }
    }
    tied.sort();
    *notes = tied;
}

/// The lead stem: the sheet's melody, moved by whole octaves to the style's register, folded
/// into range, and played a little louder where the section is.
fn write_lead(chart: &Chart, plan: &style::StylePlan) -> Vec<Note> {
    let melody = &chart.sheet.melody;
    if melody.is_empty() {
        return Vec::new();
    }
    let mean = melody.iter().map(|n| f64::from(n.pitch)).sum::<f64>() / melody.len() as f64;
    let shift = ((f64::from(plan.lead_center) - mean) / 12.0).round() as i32 * 12;
    melody
        .iter()
        .map(|n| {
            let energy = chart
                .context(n.start / chart.steps_per_bar)
                .map_or(0.5, |c| c.energy);
            let v = (f32::from(n.velocity.max(1)) * (0.88 + 0.2 * energy)).round();
            note(
                n.start,
                n.duration,
                Stem::Lead.fold_into_range(n.pitch + shift),
                v.clamp(1.0, 127.0) as u8,
            )
        })
        .collect()
}

/// Makes a part representable: on the grid inside the song, in the stem's range, velocity
/// 1..=127, duration >= 1, and no two notes of one pitch overlapping (the earlier is cut).
fn finish_part(stem: Stem, meter: Meter, bars: u32, notes: Vec<Note>) -> Vec<Note> {
    let total = bars * meter.steps_per_bar();
    let (low, rows) = stem.pitch_range();
    let high = low + rows as i32 - 1;
    let mut out: Vec<Note> = notes
        .into_iter()
        .filter(|n| n.start < total)
        .filter_map(|mut n| {
            n.pitch = stem.fold_into_range(n.pitch);
            if n.pitch < low || n.pitch > high {
                return None;
            }
            n.duration = n.duration.clamp(1, total - n.start);
            n.velocity = n.velocity.clamp(1, 127);
            Some(n)
        })
        .collect();
    // Same pitch, same start: keep the loudest.
    out.sort_by_key(|n| (n.pitch, n.start, std::cmp::Reverse(n.velocity)));
    out.dedup_by(|later, earlier| later.pitch == earlier.pitch && later.start == earlier.start);
    for i in 1..out.len() {
        let (a, b) = out.split_at_mut(i);
        let (prev, next) = (&mut a[i - 1], &b[0]);
        if prev.pitch == next.pitch && prev.end() > next.start {
            prev.duration = next.start - prev.start;
        }
    }
    out.sort();
    out
}
