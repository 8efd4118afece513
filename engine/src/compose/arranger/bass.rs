//! Bass: idioms per style that follow the chord changes. Whatever the figure, a new chord is
//! answered by its root on the beat it arrives (the bass defines the harmony for the ear).
//!
//! Figures are rhythm strings (see [`super::parse_rhythm`]) whose symbols are chord degrees:
//! 'R' root, '5' fifth, '8' octave above the root, '3' third, 'B' the folk "boom" (root on
//! odd bars, fifth on even bars: the alternating bass), 'A' a diatonic approach note to the
//! next chord's root.

use super::style::{Level, StylePlan};
use super::{
    BarContext, Chart, dynamics, make_monophonic, nearest, note, parse_rhythm, scale_step, velocity,
};
use crate::compose::SongRng;
use crate::music::{Chord, Meter, Note, SectionKind, Stem, Style};
use rand::seq::IndexedRandom;

/// A way of playing the bass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BassIdiom {
    /// A written figure of chord degrees.
    Figure(&'static str),
    /// Onsets on the drummer's kick (lofi, rock): bass and kick speak as one.
    KickLocked,
    /// Jazz walking quarters: root on the change, chord tones, a diatonic approach note.
    Walking,
    /// One held root per chord, tied across bars (ambient, cinematic).
    Sustained,
}

use BassIdiom::{Figure, KickLocked, Sustained, Walking};

/// The idioms a style plays in full sections, in a meter.
fn idioms(style: Style, meter: Meter) -> &'static [BassIdiom] {
    use Meter::*;
    match (style, meter) {
        (Style::Lofi, FourFour) => &[
            KickLocked,
            Figure("R-----.5-.R---.."),
            Figure("R--.......R--5-."),
        ],
        (Style::Lofi, ThreeFour) => &[KickLocked, Figure("R-----..5-..")],
        (Style::Lofi, SixEight) => &[KickLocked, Figure("R-----..R-5-")],
        (Style::Synthwave, FourFour) => &[
            Figure("R.R.R.R.R.R.R.R."),
            Figure("R.8.R.8.R.8.R.8."),
            Figure("RRRRRRRRRRRRRRRR"),
        ],
        (Style::Synthwave, ThreeFour) => &[Figure("R.8.R.8.R.8."), Figure("RRRRRRRRRRRR")],
        (Style::Synthwave, SixEight) => &[Figure("R.R.R.R.R.R."), Figure("R.8.R.R.8.R.")],
        (Style::Rock, FourFour) => &[
            Figure("R.R.R.R.R.R.R.R."),
            KickLocked,
            Figure("R-R-R-R-R-R-5-8-"),
        ],
        (Style::Rock, ThreeFour) => &[Figure("R.R.R.R.R.R."), Figure("R---R-R-5-R-")],
        (Style::Rock, SixEight) => &[Figure("R.R.R.R.R.R."), Figure("R-R-R-5-5-5-")],
        (Style::Ambient, _) => &[Sustained],
        (Style::Cinematic, FourFour) => &[Sustained, Figure("R-R-R-R-R-R-R-R-")],
        (Style::Cinematic, ThreeFour) => &[Sustained, Figure("R-R-R-R-R-R-")],
        (Style::Cinematic, SixEight) => &[Sustained, Figure("R-R-R-R-R-R-")],
        (Style::Chiptune, FourFour) => &[
            Figure("R8R8R8R8R8R8R8R8"),
            Figure("R.8.5.8.R.8.5.8."),
            Figure("R.R.8.R.R.R.8.R."),
        ],
        (Style::Chiptune, ThreeFour) => &[Figure("R8R8R8R8R8R8"), Figure("R.8.5.R.8.5.")],
        (Style::Chiptune, SixEight) => &[Figure("R.8.5.R.8.5."), Figure("R8R8R8R8R8R8")],
        (Style::Jazz, SixEight) => &[Figure("R-----5-----"), Figure("R---5-R---A-")],
        (Style::Jazz, _) => &[Walking],
        (Style::Folk, FourFour) => &[
            Figure("R---5---R---5---"),
            Figure("R-------5-------"),
            Figure("R---.5--R---.5--"),
        ],
        (Style::Folk, ThreeFour) => &[Figure("B---........"), Figure("B---....5---")],
        (Style::Folk, SixEight) => &[Figure("R-----5-----"), Figure("B---..B---..")],
    }
}

/// The bass of intros, outros and bridges: held roots, or the jazz two-feel.
fn light_idiom(style: Style, meter: Meter) -> BassIdiom {
    match (style, meter) {
        (Style::Ambient | Style::Cinematic, _) => Sustained,
        (Style::Jazz, Meter::FourFour) => Figure("R-------5-------"),
        (_, Meter::FourFour) => Figure("R-------R-------"),
        (_, Meter::ThreeFour) => Figure("R-----------"),
        (_, Meter::SixEight) => Figure("R-----R-----"),
    }
}

/// The bass idioms of one song.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BassPlan {
    pub verse: BassIdiom,
    pub chorus: BassIdiom,
}

impl BassPlan {
    pub fn choose(style: Style, meter: Meter, rng: &mut SongRng) -> BassPlan {
        let options = idioms(style, meter);
        let verse = options.choose(rng).copied().unwrap_or(Sustained);
        let chorus = options.choose(rng).copied().unwrap_or(verse);
        BassPlan { verse, chorus }
    }
}

/// The root in the bass register: between G#1 and G2 above the key's reference tonic.
fn root_pitch(chord: Chord) -> i32 {
    let p = i32::from(chord.root) - 24;
    if p > -17 { p - 12 } else { p }
}

fn interval(chord: Chord, index: usize, default: u8) -> i32 {
    i32::from(
        chord
            .quality
            .intervals()
            .get(index)
            .copied()
            .unwrap_or(default),
    )
}

/// Keeps a walking line in the bass's comfortable octave and a half.
fn keep_in_bass_register(p: i32) -> i32 {
    let mut p = p;
    while p < -29 {
        p += 12;
    }
    while p > -8 {
        p -= 12;
    }
    p
}

/// Writes the bass stem.
pub(crate) fn write_bass(chart: &Chart, plan: &StylePlan, rng: &mut SongRng) -> Vec<Note> {
    let mut notes: Vec<Note> = Vec::new();
    for ctx in &chart.form {
        let start = chart.bar_start(ctx.bar);
        let loud = dynamics(ctx.energy);
        if ctx.is_final {
            // Resolve: the final chord's root held to the very end.
            let chord = chart.final_chord();
            notes.push(note(
                start,
                chart.steps_per_bar,
                root_pitch(chord),
                velocity(90.0, loud, rng),
            ));
            continue;
        }
        let idiom = match plan.level(Stem::Bass, ctx) {
            Level::Off => continue,
            Level::Light => light_idiom(chart.style, chart.meter),
            Level::Full if ctx.kind == SectionKind::Chorus => plan.bass.chorus,
            Level::Full => plan.bass.verse,
        };
        match idiom {
            Figure(figure) => play_figure(chart, ctx, figure, &mut notes, rng),
            KickLocked => {
                let kicks = super::drums::kick_steps(chart, plan, ctx);
                play_kick_locked(chart, ctx, &kicks, &mut notes, rng);
            }
            Walking => walk(chart, ctx, &mut notes, rng),
            Sustained => sustain(chart, ctx, &mut notes, rng),
        }
        land_roots_on_changes(chart, ctx, &mut notes, loud, rng);
    }
    make_monophonic(&mut notes);
    notes
}

fn degree_pitch(chart: &Chart, ctx: &BarContext, symbol: char, step: u32) -> i32 {
    let chord = chart.chord_at(step);
    let root = root_pitch(chord);
    match symbol {
        '5' => root + interval(chord, 2, 7),
        '8' => root + 12,
        '3' => root + interval(chord, 1, 4),
        'B' if ctx.bar_in_section % 2 == 1 => {
            // The alternating bass drops to the fifth below on the "off" bar.
            root + interval(chord, 2, 7) - 12
        }
        'A' => {
            let next = chart.chord_at(
                chart
                    .next_change_after(step)
                    .min(chart.total_steps().saturating_sub(1)),
            );
            let target = nearest(i32::from(next.root), root);
            scale_step(chart.key, target, -1)
        }
        _ => root,
    }
}

fn play_figure(
    chart: &Chart,
    ctx: &BarContext,
    figure: &str,
    notes: &mut Vec<Note>,
    rng: &mut SongRng,
) {
    let start = chart.bar_start(ctx.bar);
    let loud = dynamics(ctx.energy);
    for hit in parse_rhythm(figure) {
        if hit.step >= chart.steps_per_bar {
            break;
        }
        let step = start + hit.step;
        // A held note never sustains into the next chord: it is re-struck on the change.
        let len = hit.len.min(chart.next_change_after(step) - step).max(1);
        let on_beat = hit.step % chart.steps_per_beat == 0;
        let v = velocity(92.0, if on_beat { loud } else { 0.86 * loud }, rng);
        let pitch = keep_in_range(degree_pitch(chart, ctx, hit.symbol, step));
        notes.push(note(step, len, pitch, v));
    }
}

fn keep_in_range(p: i32) -> i32 {
    Stem::Bass.fold_into_range(p)
}

fn play_kick_locked(
    chart: &Chart,
    ctx: &BarContext,
    kicks: &[u32],
    notes: &mut Vec<Note>,
    rng: &mut SongRng,
) {
    if kicks.is_empty() {
        play_figure(chart, ctx, "R-------R-------", notes, rng);
        return;
    }
    let start = chart.bar_start(ctx.bar);
    let loud = dynamics(ctx.energy);
    for (i, &k) in kicks.iter().enumerate() {
        let next = kicks.get(i + 1).copied().unwrap_or(chart.steps_per_bar);
        let step = start + k;
        // Slightly detached, so the line breathes with the kick; never longer than a beat
        // and a half (a lazy, held boom).
        let len = (next - k).saturating_sub(1).clamp(1, 6);
        let symbol = if i == 0 || chart.is_change(step) {
            'R'
        } else {
            *['R', '5', '8', 'R'].choose(rng).unwrap_or(&'R')
        };
        let pitch = keep_in_range(degree_pitch(chart, ctx, symbol, step));
        let v = velocity(94.0, if i == 0 { loud } else { 0.85 * loud }, rng);
        notes.push(note(step, len, pitch, v));
    }
}

fn walk(chart: &Chart, ctx: &BarContext, notes: &mut Vec<Note>, rng: &mut SongRng) {
    let start = chart.bar_start(ctx.bar);
    let beat = chart.steps_per_beat;
    let loud = dynamics(ctx.energy);
    let mut prev = notes
        .last()
        .map_or_else(|| root_pitch(chart.chord_at(start)), |n| n.pitch);
    for b in 0..chart.meter.beats_per_bar() {
        let step = start + b * beat;
        let chord = chart.chord_at(step);
        let next_step = step + beat;
        let next_is_change = next_step < chart.total_steps() && chart.is_change(next_step);
        let pitch = if b == 0 || chart.is_change(step) {
            nearest(i32::from(chord.root), prev)
        } else if next_is_change {
            // Lead into the next root by a diatonic step, from whichever side is closer.
            let next = chart.chord_at(next_step);
            let target = keep_in_bass_register(nearest(i32::from(next.root), prev));
            let below = scale_step(chart.key, target, -1);
            let above = scale_step(chart.key, target, 1);
            let pick = if (below - prev).abs() <= (above - prev).abs() {
                below
            } else {
                above
            };
            if pick == prev {
                if pick == below { above } else { below }
            } else {
                pick
            }
        } else {
            let mut tones: Vec<i32> = chord
                .pitch_classes()
                .iter()
                .skip(1)
                .map(|&pc| nearest(i32::from(pc), prev))
                .filter(|&p| p != prev)
                .collect();
            tones.sort_by_key(|p| (p - prev).abs());
            tones.truncate(2);
            tones.choose(rng).copied().unwrap_or(prev + 7)
        };
        let pitch = keep_in_bass_register(pitch);
        let v = velocity(88.0, if b % 2 == 0 { loud } else { 0.9 * loud }, rng);
        notes.push(note(step, beat, pitch, v));
        prev = pitch;
    }
}

fn sustain(chart: &Chart, ctx: &BarContext, notes: &mut Vec<Note>, rng: &mut SongRng) {
    let start = chart.bar_start(ctx.bar);
    let end = start + chart.steps_per_bar;
    let loud = dynamics(ctx.energy);
    for s in chart.change_steps_in_bar(ctx.bar) {
        let step = start + s;
        let len = chart.next_change_after(step).min(end) - step;
        let pitch = root_pitch(chart.chord_at(step));
        // A pedal carries over the bar line when the chord does not change.
        if let Some(last) = notes.last_mut()
            && s == 0
            && last.pitch == pitch
            && last.end() == step
        {
            last.duration += len;
            continue;
        }
        notes.push(note(step, len.max(1), pitch, velocity(84.0, loud, rng)));
    }
}

/// On every chord change inside the bar the bass plays the new root, on the beat.
fn land_roots_on_changes(
    chart: &Chart,
    ctx: &BarContext,
    notes: &mut Vec<Note>,
    loud: f32,
    rng: &mut SongRng,
) {
    let start = chart.bar_start(ctx.bar);
    for s in chart.change_steps_in_bar(ctx.bar) {
        let step = start + s;
        if !chart.is_change(step) {
            continue;
        }
        let chord = chart.chord_at(step);
        let pc = i32::from(chord.root);
        if let Some(n) = notes.iter_mut().find(|n| n.start == step) {
            if (n.pitch - pc).rem_euclid(12) != 0 {
                n.pitch = keep_in_range(nearest(pc, n.pitch));
            }
        } else if notes
            .iter()
            .any(|n| n.start > start && n.start < start + chart.steps_per_bar)
            || s == 0
        {
            // Only where the bass is playing in this bar: an added root, a beat long.
            let len = chart.steps_per_beat;
            notes.push(note(
                step,
                len,
                root_pitch(chord),
                velocity(90.0, loud, rng),
            ));
        }
    }
}
