//! The chords stem: comping rhythms per style and meter, voiced through a
//! [`VoiceLeader`]. Rhythms are strings (see [`super::parse_rhythm`]): 'X' accented hit,
//! 'x' hit, '-' hold, '.' rest. A chord held over a change is re-struck on the new chord.
//!
//! Idioms: lofi EP 7ths/9ths in lazy syncopated stabs; synthwave held pads and eighth
//! pulses; rock power chords and strummed eighths; ambient long tied pads; cinematic
//! sustained strings that swell; chiptune stabs; jazz Charleston comping with rootless
//! voicings; folk boom-chick (3/4 oom-pah-pah, 6/8 jig strum).

use super::voicing::{VoiceLeader, VoicingKind};
use super::{Chart, dynamics, note, parse_rhythm, tie_repeats, velocity};
use crate::compose::SongRng;
use crate::music::{Instrument, Meter, Note, SectionKind, Style};
use rand::seq::IndexedRandom;

/// Verse and chorus rhythms a style comps with, in a meter.
fn rhythms(style: Style, meter: Meter) -> (&'static [&'static str], &'static [&'static str]) {
    use Meter::*;
    match (style, meter) {
        (Style::Lofi, FourFour) => (
            &["x-------..x-----", "x--..x-...x--..."],
            &["X--.x-..X--.x-x-", "X-----x-..x---x-"],
        ),
        (Style::Lofi, ThreeFour) => (&["x-------..x-"], &["X--.x-..x-x-"]),
        (Style::Lofi, SixEight) => (&["x-----..x---"], &["X-.x-.X-.x-."]),
        (Style::Synthwave, FourFour) => (
            &["x---------------", "x-------x-------"],
            &["X.x.x.x.X.x.x.x.", "X-x-x-x-X-x-x-x-"],
        ),
        (Style::Synthwave, _) => (&["x-----------"], &["X.x.x.X.x.x."]),
        (Style::Rock, FourFour) => (
            &["X---x-x-X---x-x-", "x-------x-------"],
            &["X-x-x-x-X-x-x-x-"],
        ),
        (Style::Rock, ThreeFour) => (&["X---x-x-x-x-"], &["X-x-x-X-x-x-"]),
        (Style::Rock, SixEight) => (&["X-----x-----"], &["X-x-x-X-x-x-"]),
        (Style::Ambient, FourFour) => (&["x---------------"], &["x---------------"]),
        (Style::Ambient, _) => (&["x-----------"], &["x-----------"]),
        (Style::Cinematic, FourFour) => (&["x---------------"], &["X-------x-------"]),
        (Style::Cinematic, ThreeFour) => (&["x-----------"], &["X-------x---"]),
        (Style::Cinematic, SixEight) => (&["x-----------"], &["X-----x-----"]),
        (Style::Chiptune, FourFour) => (
            &["x.x...x.x.x...x."],
            &["x..x..x.x..x..x.", "X.x.X.x.X.x.X.x."],
        ),
        (Style::Chiptune, ThreeFour) => (&["x...x.x.x..."], &["X.x.x.X.x.x."]),
        (Style::Chiptune, SixEight) => (&["x..x..x..x.."], &["X.xX.xX.xX.x"]),
        // Charleston (1 and the "and" of 2) and its anticipated cousins.
        (Style::Jazz, FourFour) => (
            &["x-....x---......", "x-......x-..x-.."],
            &["x-....x-..x-....", "x-....x-....x-.."],
        ),
        (Style::Jazz, ThreeFour) => (&["x-..x-......"], &["x-..x-..x-.."]),
        (Style::Jazz, SixEight) => (&["x-....x-...."], &["x-..x-x-...."]),
        // Boom-chick: the bass has the boom, the guitar the chick.
        (Style::Folk, FourFour) => (
            &["....x-......x-..", "X---x-x-X---x-x-"],
            &["X-x-x-x-X-x-x-x-", "X-xxx-x-X-xxx-x-"],
        ),
        (Style::Folk, ThreeFour) => (&["....x-..x-.."], &["X-..x-..x-x-"]),
        (Style::Folk, SixEight) => (&["X---x-X---x-"], &["X-x-x-X-x-x-"]),
    }
}

/// The bridge's contrast: the harmony slows to half- or whole-bar chords.
fn breakdown(meter: Meter) -> &'static str {
    match meter {
        Meter::FourFour => "x-------x-------",
        Meter::ThreeFour => "x-----------",
        Meter::SixEight => "x-----x-----",
    }
}

/// The comping choices of one song.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CompPlan {
    pub verse: &'static str,
    pub chorus: &'static str,
    pub voicing: VoicingKind,
    /// Register window and home of the voicings (key-relative).
    pub low: i32,
    pub high: i32,
    pub center: i32,
}

impl CompPlan {
    pub fn choose(
        style: Style,
        meter: Meter,
        instrument: Instrument,
        rng: &mut SongRng,
    ) -> CompPlan {
        let (verses, choruses) = rhythms(style, meter);
        let verse = verses.choose(rng).copied().unwrap_or("x");
        let chorus = choruses.choose(rng).copied().unwrap_or(verse);
        let voicing = match style {
            Style::Lofi => *[VoicingKind::Lush, VoicingKind::Seventh]
                .choose(rng)
                .unwrap_or(&VoicingKind::Lush),
            Style::Jazz => *[VoicingKind::Rootless, VoicingKind::Shell]
                .choose(rng)
                .unwrap_or(&VoicingKind::Rootless),
            Style::Rock if instrument == Instrument::OverdriveGuitar => VoicingKind::Power,
            Style::Ambient => VoicingKind::Open { ninth: true },
            Style::Cinematic => VoicingKind::Open { ninth: false },
            _ => VoicingKind::Triad,
        };
        let (low, high, center) = match (style, voicing) {
            (_, VoicingKind::Power) => (-14, 4, -6),
            (Style::Lofi, _) => (-5, 17, 5),
            (Style::Jazz, _) => (-6, 16, 4),
            (Style::Ambient, _) => (-10, 24, 6),
            (Style::Cinematic, _) => (-12, 22, 3),
            (Style::Chiptune, _) => (0, 19, 9),
            (Style::Folk, _) => (-8, 14, 3),
            _ => (-5, 19, 6),
        };
        CompPlan {
            verse,
            chorus,
            voicing,
            low,
            high,
            center,
        }
    }
}

/// One struck chord: absolute start, length, loudness weight.
struct Strike {
    step: u32,
    len: u32,
    weight: f32,
}

/// Writes the chords stem.
pub(crate) fn write_chords(
    chart: &Chart,
    plan: &super::style::StylePlan,
    rng: &mut SongRng,
) -> Vec<Note> {
    let comp = &plan.comp;
    let mut leader = VoiceLeader::new(comp.voicing, chart.key, comp.low, comp.high, comp.center);
    let spb = chart.steps_per_bar;
    let base = match chart.style {
        Style::Ambient => 66.0,
        Style::Rock => 88.0,
        Style::Chiptune => 80.0,
        _ => 76.0,
    };
    let mut notes = Vec::new();
    // Whole-bar pads tie over the bar line while the chord stays.
    let mut pads = Vec::new();
    for ctx in &chart.form {
        let start = chart.bar_start(ctx.bar);
        let loud = dynamics(ctx.energy);
        if ctx.is_final {
            // Resolve: the final chord held to the end of the song.
            for p in leader.voice(chart.final_chord()) {
                notes.push(note(start, spb, p, velocity(base, 0.9 * loud, rng)));
            }
            continue;
        }
        let rhythm = match ctx.kind {
            SectionKind::Chorus => comp.chorus,
            SectionKind::Bridge => breakdown(chart.meter),
            _ => comp.verse,
        };
        let hits = parse_rhythm(rhythm);
        let whole_bar = hits.len() == 1 && hits[0].step == 0 && hits[0].len >= spb;
        // Cinematic strings swell through the section; everything else sits on its level.
        let swell = if chart.style == Style::Cinematic || chart.style == Style::Ambient {
            0.8 + 0.3 * (ctx.bar_in_section + 1) as f32 / ctx.section_bars as f32
        } else {
            1.0
        };
        let mut strikes = Vec::new();
        for hit in hits {
            if hit.step >= spb {
                break;
            }
            let weight = match hit.symbol {
                'X' => 1.0,
                _ if hit.step % chart.steps_per_beat == 0 => 0.86,
                _ => 0.78,
            };
            // Split a held chord at every change it crosses, re-striking the new chord.
            let mut step = start + hit.step;
            let end = (step + hit.len).min(start + spb);
            while step < end {
                let until = chart.next_change_after(step).min(end);
                strikes.push(Strike {
                    step,
                    len: until - step,
                    weight: if step == start + hit.step {
                        weight
                    } else {
                        0.8
                    },
                });
                step = until;
            }
        }
        for strike in strikes {
            let voicing = leader.voice(chart.chord_at(strike.step));
            for p in voicing {
                let v = velocity(base, strike.weight * loud * swell, rng);
                let n = note(strike.step, strike.len.max(1), p, v);
                if whole_bar {
                    pads.push(n)
                } else {
                    notes.push(n)
                }
            }
        }
    }
    tie_repeats(&mut pads);
    notes.extend(pads);
    notes
}
