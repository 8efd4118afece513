//! Texture: the colour stem. Arpeggios (synthwave sixteenths, chiptune's fast broken chords,
//! rock's clean-guitar eighths), counter-lines (cinematic strings or horn in thirds and
//! sixths under the tune, the folk harmony line), ambient shimmer (high, sparse bell notes),
//! jazz vibraphone fills in the melody's gaps, and lofi ear candy at phrase ends. Busier in
//! high-energy sections; every pitch is a chord tone or a diatonic harmony of the tune.

use super::style::{Level, StylePlan};
use super::{BarContext, Chart, dynamics, nearest, note, scale_step, velocity};
use crate::compose::SongRng;
use crate::music::{Chord, Note, Stem, Style};
use rand::Rng;
use rand::seq::IndexedRandom;

/// The order an arpeggio walks its chord tones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ArpShape {
    Up,
    UpDown,
    /// Root, fifth-ish, third, top: the "broken chord" of chip and guitar picking.
    Broken,
}

/// What the texture stem plays in a song.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TextureIdiom {
    /// `step` is the note length in full sections (1 = sixteenths); register home `center`.
    Arp {
        shape: ArpShape,
        step: u32,
        center: i32,
    },
    /// Harmony under the tune, in thirds (and sixths where `sixths`).
    CounterLine {
        sixths: bool,
    },
    Shimmer,
    GapFills,
    EarCandy,
}

impl TextureIdiom {
    pub fn for_style(style: Style, rng: &mut SongRng) -> TextureIdiom {
        let shape = *[ArpShape::Up, ArpShape::UpDown, ArpShape::Broken]
            .choose(rng)
            .unwrap_or(&ArpShape::Up);
        match style {
            Style::Synthwave => TextureIdiom::Arp {
                shape,
                step: 1,
                center: 12,
            },
            Style::Chiptune => TextureIdiom::Arp {
                shape,
                step: 1,
                center: 14,
            },
            Style::Rock => TextureIdiom::Arp {
                shape: ArpShape::Broken,
                step: 2,
                center: 9,
            },
            Style::Cinematic => TextureIdiom::CounterLine { sixths: true },
            Style::Folk => TextureIdiom::CounterLine { sixths: false },
            Style::Ambient => TextureIdiom::Shimmer,
            Style::Jazz => TextureIdiom::GapFills,
            Style::Lofi => *[
                TextureIdiom::EarCandy,
                TextureIdiom::EarCandy,
                TextureIdiom::Shimmer,
            ]
            .choose(rng)
            .unwrap_or(&TextureIdiom::EarCandy),
        }
    }
}

/// Writes the texture stem.
pub(crate) fn write_texture(chart: &Chart, plan: &StylePlan, rng: &mut SongRng) -> Vec<Note> {
    let mut notes = Vec::new();
    let mut line_pitch = 7;
    for ctx in &chart.form {
        if ctx.is_final {
            continue;
        }
        let level = plan.level(Stem::Texture, ctx);
        if level == Level::Off {
            continue;
        }
        match plan.texture {
            TextureIdiom::Arp {
                shape,
                step,
                center,
            } => arpeggiate(chart, ctx, level, shape, step, center, &mut notes, rng),
            TextureIdiom::CounterLine { sixths } => {
                counter_line(chart, ctx, level, sixths, &mut line_pitch, &mut notes, rng)
            }
            TextureIdiom::Shimmer => shimmer(chart, ctx, level, &mut notes, rng),
            TextureIdiom::GapFills => gap_fills(chart, ctx, level, &mut notes, rng),
            TextureIdiom::EarCandy => ear_candy(chart, ctx, level, &mut notes, rng),
        }
    }
    notes
}

/// Chord tones over two octaves from the root nearest `center`, ascending.
fn arp_tones(chord: Chord, center: i32) -> Vec<i32> {
    let root = nearest(i32::from(chord.root), center - 5);
    let mut pcs: Vec<i32> = chord
        .pitch_classes()
        .iter()
        .map(|&pc| root + (i32::from(pc) - root).rem_euclid(12))
        .collect();
    pcs.sort_unstable();
    pcs.dedup();
    let mut tones = pcs.clone();
    tones.extend(pcs.iter().map(|p| p + 12));
    tones
}

#[allow(clippy::too_many_arguments)]
fn arpeggiate(
    chart: &Chart,
    ctx: &BarContext,
    level: Level,
    shape: ArpShape,
    full_step: u32,
    center: i32,
    notes: &mut Vec<Note>,
    rng: &mut SongRng,
) {
    let start = chart.bar_start(ctx.bar);
    // Light sections and low energy halve the rate: eighths instead of sixteenths.
    let rate = if level == Level::Full && ctx.energy >= 0.5 {
        full_step
    } else {
        full_step * 2
    };
    let loud = dynamics(ctx.energy);
    let mut i = 0usize;
    let mut step = 0;
    while step < chart.steps_per_bar {
        let at = start + step;
        if chart.is_change(at) {
            i = 0; // each new chord starts its pattern from the bottom
        }
        let tones = arp_tones(chart.chord_at(at), center);
        let n = tones.len().max(1);
        let index = match shape {
            ArpShape::Up => i % n,
            ArpShape::UpDown => {
                let period = (2 * n - 2).max(1);
                let k = i % period;
                if k < n { k } else { period - k }
            }
            ArpShape::Broken => [0, 2, 1, 3][i % 4].min(n - 1) + if i % 8 >= 4 { 2 } else { 0 },
        };
        let pitch = tones.get(index.min(n - 1)).copied().unwrap_or(center);
        let accent = if step % chart.steps_per_beat == 0 {
            1.0
        } else {
            0.8
        };
        notes.push(note(at, rate, pitch, velocity(70.0, accent * loud, rng)));
        i += 1;
        step += rate;
    }
}

/// Melody notes that start in a bar.
fn melody_in_bar<'a>(chart: &'a Chart, bar: u32) -> impl Iterator<Item = &'a Note> {
    let start = chart.bar_start(bar);
    let end = start + chart.steps_per_bar;
    chart
        .sheet
        .melody
        .iter()
        .filter(move |n| n.start >= start && n.start < end)
}

fn counter_line(
    chart: &Chart,
    ctx: &BarContext,
    level: Level,
    sixths: bool,
    line_pitch: &mut i32,
    notes: &mut Vec<Note>,
    rng: &mut SongRng,
) {
    let loud = dynamics(ctx.energy);
    let min_len = if level == Level::Full { 2 } else { 4 };
    let tune: Vec<Note> = melody_in_bar(chart, ctx.bar)
        .filter(|n| n.duration >= min_len)
        .copied()
        .collect();
    if tune.is_empty() {
        // No tune to harmonise (intros, outros): a slow line of chord tones, moving by step.
        let start = chart.bar_start(ctx.bar);
        let half = chart.steps_per_bar / 2;
        for s in [0, half] {
            let chord = chart.chord_at(start + s);
            let pitch = chord
                .pitch_classes()
                .iter()
                .map(|&pc| nearest(i32::from(pc), *line_pitch))
                .filter(|&p| p != *line_pitch)
                .min_by_key(|&p| (p - *line_pitch).abs())
                .unwrap_or(*line_pitch);
            let pitch = keep_mid(pitch);
            *line_pitch = pitch;
            notes.push(note(start + s, half, pitch, velocity(64.0, loud, rng)));
        }
        return;
    }
    for n in tune {
        let chord = chart.chord_at(n.start);
        let third = scale_step(chart.key, n.pitch, -2);
        let sixth = scale_step(chart.key, n.pitch, -5);
        let pitch = if chord.contains_relative(third) || !sixths {
            third
        } else if chord.contains_relative(sixth) {
            sixth
        } else {
            third
        };
        let pitch = keep_mid(pitch);
        *line_pitch = pitch;
        notes.push(note(n.start, n.duration, pitch, velocity(66.0, loud, rng)));
    }
}

/// Counter-lines sit under the tune, around the middle of the texture range.
fn keep_mid(p: i32) -> i32 {
    let mut p = p;
    while p < -3 {
        p += 12;
    }
    while p > 16 {
        p -= 12;
    }
    p
}

fn shimmer(
    chart: &Chart,
    ctx: &BarContext,
    level: Level,
    notes: &mut Vec<Note>,
    rng: &mut SongRng,
) {
    let start = chart.bar_start(ctx.bar);
    let count = match level {
        Level::Full => 2 + usize::from(ctx.energy > 0.6),
        _ => 1,
    };
    let eighths: Vec<u32> = (0..chart.steps_per_bar).step_by(2).collect();
    let mut picked: Vec<u32> = eighths.choose_multiple(rng, count).copied().collect();
    picked.sort_unstable();
    for s in picked {
        let chord = chart.chord_at(start + s);
        let pcs = chord.pitch_classes();
        let pc = pcs.choose(rng).copied().unwrap_or(chord.root);
        let pitch = nearest(i32::from(pc), rng.random_range(19..=29));
        let len = rng.random_range(4..=8u32);
        notes.push(note(
            start + s,
            len,
            pitch,
            velocity(52.0, dynamics(ctx.energy), rng),
        ));
    }
}

fn gap_fills(
    chart: &Chart,
    ctx: &BarContext,
    level: Level,
    notes: &mut Vec<Note>,
    rng: &mut SongRng,
) {
    let start = chart.bar_start(ctx.bar);
    let spb = chart.steps_per_bar;
    // Which steps of the bar the tune sounds in.
    let mut busy = vec![false; spb as usize];
    for n in chart.sheet.melody.iter() {
        for s in n.start..n.end() {
            if s >= start && s < start + spb {
                busy[(s - start) as usize] = true;
            }
        }
    }
    let min_gap = if level == Level::Full {
        chart.steps_per_beat
    } else {
        2 * chart.steps_per_beat
    };
    let mut s = 0;
    while s < spb {
        if busy[s as usize] {
            s += 1;
            continue;
        }
        let gap_end = (s..spb).find(|&t| busy[t as usize]).unwrap_or(spb);
        if gap_end - s >= min_gap.min(spb) {
            // An answering vibraphone phrase: eighths climbing the chord, then a step.
            let from = start + s + if s == 0 { 2 } else { 0 };
            let chord = chart.chord_at(from.min(start + spb - 1));
            let mut pitch = nearest(i32::from(chord.root), rng.random_range(7..=12));
            let count = ((gap_end - s) / 2).clamp(1, 4);
            for k in 0..count {
                let at = from + 2 * k;
                if at >= start + gap_end {
                    break;
                }
                notes.push(note(
                    at,
                    2,
                    pitch,
                    velocity(64.0, dynamics(ctx.energy), rng),
                ));
                pitch = if k + 2 < count {
                    scale_step(chart.key, pitch, 2)
                } else {
                    scale_step(chart.key, pitch, -1)
                };
            }
        }
        s = gap_end;
    }
}

fn ear_candy(
    chart: &Chart,
    ctx: &BarContext,
    level: Level,
    notes: &mut Vec<Note>,
    rng: &mut SongRng,
) {
    // Phrase ends only: every second bar in full sections, every fourth otherwise.
    let every = if level == Level::Full { 2 } else { 4 };
    if ctx.bar_in_section % every != every - 1 && !ctx.ends_section {
        return;
    }
    let start = chart.bar_start(ctx.bar);
    let spb = chart.steps_per_bar;
    let chord = chart.chord_at(start + spb - 1);
    let mut tones: Vec<i32> = chord
        .pitch_classes()
        .iter()
        .map(|&pc| nearest(i32::from(pc), 24))
        .collect();
    tones.sort_unstable_by(|a, b| b.cmp(a));
    let offsets = [spb - 6, spb - 4, spb - 2];
    for (k, &off) in offsets.iter().enumerate() {
        if let Some(&p) = tones.get(k) {
            notes.push(note(
                start + off,
                2,
                p,
                velocity(54.0, dynamics(ctx.energy), rng),
            ));
        }
    }
}
