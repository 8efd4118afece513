//! Drums: groove tables per style and meter, section variants (sparse intro, main verse,
//! lifted chorus, half-time bridge), fills before every section change, crashes on every new
//! section's downbeat, and the final hit.
//!
//! A groove is written as one string per drum class, a character per sixteenth: 'X' accent,
//! 'x' normal hit, 'g' ghost note, '.' rest. 4/4 bars have 16 characters, 3/4 and 6/8 bars 12
//! (6/8 counts six eighths: beats fall on steps 0 and 6).

use super::style::{Level, StylePlan};
use super::{BarContext, Chart, dynamics, note, velocity};
use crate::compose::SongRng;
use crate::music::{DrumClass, Meter, Note, SectionKind, Stem, Style};
use rand::Rng;
use rand::seq::IndexedRandom;

const K: DrumClass = DrumClass::Kick;
const S: DrumClass = DrumClass::Snare;
const H: DrumClass = DrumClass::ClosedHat;
const O: DrumClass = DrumClass::OpenHat;
const L: DrumClass = DrumClass::LowTom;
const M: DrumClass = DrumClass::MidTom;
const R: DrumClass = DrumClass::Ride;
const P: DrumClass = DrumClass::Perc;

/// One groove: a rhythm line per drum class for one bar.
pub(crate) struct Groove {
    pub lines: &'static [(DrumClass, &'static str)],
}

const fn g(lines: &'static [(DrumClass, &'static str)]) -> Groove {
    Groove { lines }
}

// Lofi: boom-bap with a lazy, late second kick, snare on 2 and 4, ghosted snares and hats.
const LOFI_44: &[Groove] = &[
    g(&[
        (K, "X......x..X....."),
        (S, "....X..g....X..g"),
        (H, "x.xgx.x.x.xgx.x."),
    ]),
    g(&[
        (K, "X.....x...X..x.."),
        (S, "....X.......X..."),
        (H, "x.x.x.x.x.x.x.x."),
    ]),
    g(&[
        (K, "X..x......X....."),
        (S, "....X..g.g..X..."),
        (H, "x...x.x.x...x.x."),
    ]),
];
const LOFI_34: &[Groove] = &[
    g(&[
        (K, "X.......x..."),
        (S, "....X......g"),
        (H, "x.x.x.x.x.x."),
    ]),
    g(&[
        (K, "X..x....x..."),
        (S, "........X..."),
        (H, "x.xgx.x.x.xg"),
    ]),
];
const LOFI_68: &[Groove] = &[
    g(&[
        (K, "X.........x."),
        (S, "......X....."),
        (H, "x.x.x.x.x.x."),
    ]),
    g(&[
        (K, "X...x......."),
        (S, "......X...g."),
        (H, "x.x.x.x.x.x."),
    ]),
];

// Synthwave: driving kick, gated snare on the backbeat, sixteenth or disco off-beat hats.
const SYNTH_44: &[Groove] = &[
    g(&[
        (K, "X...X...X...X..."),
        (S, "....X.......X..."),
        (H, "xgxgxgxgxgxgxgxg"),
    ]),
    g(&[
        (K, "X...X...X...X.x."),
        (S, "....X.......X..."),
        (H, "x...x...x...x..."),
        (O, "..x...x...x...x."),
    ]),
    g(&[
        (K, "X.....x.X......."),
        (S, "....X.......X..."),
        (H, "x.xxx.xxx.xxx.xx"),
    ]),
];
const SYNTH_34: &[Groove] = &[
    g(&[
        (K, "X.......X..."),
        (S, "....X......."),
        (H, "xgxgxgxgxgxg"),
    ]),
    g(&[
        (K, "X...X...x..."),
        (S, "........X..."),
        (H, "x.x.x.x.x.x."),
    ]),
];
const SYNTH_68: &[Groove] = &[
    g(&[
        (K, "X...x.X....."),
        (S, "......X....."),
        (H, "x.x.x.x.x.x."),
    ]),
    g(&[
        (K, "X.........x."),
        (S, "......X....."),
        (H, "xgxgxgxgxgxg"),
    ]),
];

// Rock: backbeat with straight eighth hats, kick variations around beat 3.
const ROCK_44: &[Groove] = &[
    g(&[
        (K, "X.......X.x....."),
        (S, "....X.......X..."),
        (H, "x.x.x.x.x.x.x.x."),
    ]),
    g(&[
        (K, "X.....x.X......."),
        (S, "....X.......X..."),
        (H, "X.x.X.x.X.x.X.x."),
    ]),
    g(&[
        (K, "X.x.....X.x..x.."),
        (S, "....X.......X..g"),
        (H, "x.x.x.x.x.x.x.x."),
    ]),
];
const ROCK_34: &[Groove] = &[
    g(&[
        (K, "X.......x..."),
        (S, "....X...X..."),
        (H, "x.x.x.x.x.x."),
    ]),
    g(&[
        (K, "X.x.....x..."),
        (S, "....X......."),
        (H, "x.x.x.x.x.x."),
    ]),
];
const ROCK_68: &[Groove] = &[
    g(&[
        (K, "X...x......."),
        (S, "......X....."),
        (H, "x.x.x.x.x.x."),
    ]),
    g(&[
        (K, "X.....x.x..."),
        (S, "......X....."),
        (H, "X.x.x.X.x.x."),
    ]),
];

// Ambient: no kit, just soft pulses: a low kick, a shaker-like perc, a brushed ride.
const AMBIENT_44: &[Groove] = &[
    g(&[(K, "X..............."), (P, "....x.......x...")]),
    g(&[(K, "X.......x......."), (P, "..x.....x.x.....")]),
    g(&[(R, "x.......x......."), (P, "......x.......x.")]),
];
const AMBIENT_34: &[Groove] = &[
    g(&[(K, "X..........."), (P, "....x...x...")]),
    g(&[(R, "x..........."), (P, "......x.....")]),
];
const AMBIENT_68: &[Groove] = &[
    g(&[(K, "X..........."), (P, "......x.....")]),
    g(&[(R, "x.....x....."), (P, "....x.....x.")]),
];

// Cinematic: low toms and big-drum hits, a taiko ostinato, a soft military snare.
const CINE_44: &[Groove] = &[
    g(&[
        (L, "X.....x.X......."),
        (K, "X.......X......."),
        (M, "....x.......x..."),
    ]),
    g(&[(L, "X..xX..xX..xX..x"), (K, "X.......X.......")]),
    g(&[
        (S, "g.ggx.g.g.ggx.g."),
        (K, "X.......X......."),
        (L, "X.......X......."),
    ]),
];
const CINE_34: &[Groove] = &[
    g(&[(L, "X...x...x..."), (K, "X...........")]),
    g(&[
        (S, "x.gxx.g.x.g."),
        (L, "X..........."),
        (K, "X..........."),
    ]),
];
const CINE_68: &[Groove] = &[
    g(&[(L, "X.x.x.X.x.x."), (K, "X.....X.....")]),
    g(&[(L, "X.....X....."), (M, "..x.x...x.x.")]),
];

// Chiptune: noise-channel kick/snare/hat patterns, busy and square.
const CHIP_44: &[Groove] = &[
    g(&[
        (K, "X.......X.x....."),
        (S, "....X.......X..."),
        (H, "x.x.x.x.x.x.x.x."),
    ]),
    g(&[
        (K, "X.X...X.X.X...X."),
        (S, "....X.......X.x."),
        (H, "xxxxxxxxxxxxxxxx"),
    ]),
    g(&[
        (K, "X.....X...X....."),
        (S, "....X..X....X..."),
        (H, "x.x.x.x.x.x.x.x."),
    ]),
];
const CHIP_34: &[Groove] = &[
    g(&[
        (K, "X.......X..."),
        (S, "....X......."),
        (H, "x.x.x.x.x.x."),
    ]),
    g(&[
        (K, "X.X.....X..."),
        (S, "....X...X..."),
        (H, "xxxxxxxxxxxx"),
    ]),
];
const CHIP_68: &[Groove] = &[
    g(&[
        (K, "X.....x....."),
        (S, "......X....."),
        (H, "x.x.x.x.x.x."),
    ]),
    g(&[
        (K, "X.x...X.x..."),
        (S, "......X...X."),
        (H, "xxxxxxxxxxxx"),
    ]),
];

// Jazz: the ride's "ding, ding-a ding, ding-a" (swing applied at render time), hi-hat pedal
// on 2 and 4, a feathered kick and ghosted snare comping.
const JAZZ_44: &[Groove] = &[
    g(&[
        (R, "X...x.x.X...x.x."),
        (H, "....x.......x..."),
        (K, "g...g...g...g..."),
        (S, "..........g....."),
    ]),
    g(&[
        (R, "X...x.x.X...x.x."),
        (H, "....x.......x..."),
        (K, "g.......g......."),
        (S, "......g.....g.g."),
    ]),
    g(&[
        (R, "X...X...X...X..."),
        (H, "....x.......x..."),
        (K, "g...g...g...g..."),
        (S, "..g.......g....."),
    ]),
];
const JAZZ_34: &[Groove] = &[
    g(&[
        (R, "X...x.x.x..."),
        (H, "....x...x..."),
        (K, "g..........."),
        (S, "......g....."),
    ]),
    g(&[
        (R, "X...x...x.x."),
        (H, "....x......."),
        (K, "g.......g..."),
    ]),
];
const JAZZ_68: &[Groove] = &[
    g(&[
        (R, "X.x.x.X.x.x."),
        (H, "......x....."),
        (K, "g.....g....."),
        (S, "....g.....g."),
    ]),
    g(&[
        (R, "X.....x.x..."),
        (H, "......x....."),
        (K, "g..........."),
    ]),
];

// Folk: bodhrán-like low tom with tipped off-beats (perc), a brushed backbeat variant;
// waltz "one" in 3/4 and the jig's two pulses in 6/8.
const FOLK_44: &[Groove] = &[
    g(&[(L, "X...x...X...x..."), (P, "..x...x...x...x.")]),
    g(&[(L, "X..xX...X..xX..."), (P, "..g...x...g...x.")]),
    g(&[
        (K, "X.......X......."),
        (S, "....x.......x..."),
        (P, "..x...x...x...x."),
    ]),
];
const FOLK_34: &[Groove] = &[
    g(&[(L, "X..........."), (P, "....x...x...")]),
    g(&[
        (K, "X..........."),
        (S, "....x...x..."),
        (P, "..g...g...g."),
    ]),
];
const FOLK_68: &[Groove] = &[
    g(&[(L, "X.....X....."), (P, "..x.x...x.x.")]),
    g(&[(L, "X.g.g.X.g.g.")]),
];

/// The grooves a style knows in a meter.
pub(crate) fn grooves(style: Style, meter: Meter) -> &'static [Groove] {
    use Meter::*;
    match (style, meter) {
        (Style::Lofi, FourFour) => LOFI_44,
        (Style::Lofi, ThreeFour) => LOFI_34,
        (Style::Lofi, SixEight) => LOFI_68,
        (Style::Synthwave, FourFour) => SYNTH_44,
        (Style::Synthwave, ThreeFour) => SYNTH_34,
        (Style::Synthwave, SixEight) => SYNTH_68,
        (Style::Rock, FourFour) => ROCK_44,
        (Style::Rock, ThreeFour) => ROCK_34,
        (Style::Rock, SixEight) => ROCK_68,
        (Style::Ambient, FourFour) => AMBIENT_44,
        (Style::Ambient, ThreeFour) => AMBIENT_34,
        (Style::Ambient, SixEight) => AMBIENT_68,
        (Style::Cinematic, FourFour) => CINE_44,
        (Style::Cinematic, ThreeFour) => CINE_34,
        (Style::Cinematic, SixEight) => CINE_68,
        (Style::Chiptune, FourFour) => CHIP_44,
        (Style::Chiptune, ThreeFour) => CHIP_34,
        (Style::Chiptune, SixEight) => CHIP_68,
        (Style::Jazz, FourFour) => JAZZ_44,
        (Style::Jazz, ThreeFour) => JAZZ_34,
        (Style::Jazz, SixEight) => JAZZ_68,
        (Style::Folk, FourFour) => FOLK_44,
        (Style::Folk, ThreeFour) => FOLK_34,
        (Style::Folk, SixEight) => FOLK_68,
    }
}

/// Which groove plays where: the verse groove also carries intro and outro, the chorus may
/// switch groove, and the bridge always changes groove when the style has another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GroovePlan {
    pub verse: usize,
    pub chorus: usize,
    pub bridge: usize,
}

impl GroovePlan {
    pub fn choose(style: Style, meter: Meter, rng: &mut SongRng) -> GroovePlan {
        let n = grooves(style, meter).len().max(1);
        let verse = rng.random_range(0..n);
        let chorus = if rng.random_bool(0.3) {
            rng.random_range(0..n)
        } else {
            verse
        };
        let bridge = if n > 1 {
            (verse + rng.random_range(1..n)) % n
        } else {
            verse
        };
        GroovePlan {
            verse,
            chorus,
            bridge,
        }
    }
}

/// How a section plays its groove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// Intros and outros: downbeat kick, time on the hats, no backbeat.
    Sparse,
    Main,
    /// Choruses: hats open up (or move to the ride), an extra kick, claps on the snare.
    Lifted,
    /// Bridges: the backbeat falls on beat 3 and the kick thins, the bar feels twice as long.
    HalfTime,
}

/// A drum hit inside one bar; `weight` scales the section's loudness (1 = accent).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Stroke {
    step: u32,
    class: DrumClass,
    weight: f32,
}

fn groove_strokes(groove: &Groove, steps_per_bar: u32) -> Vec<Stroke> {
    let mut strokes = Vec::new();
    for &(class, line) in groove.lines {
        for (step, c) in line.chars().enumerate().take(steps_per_bar as usize) {
            let weight = match c {
                'X' => 1.0,
                'x' => 0.78,
                'g' => 0.4,
                _ => continue,
            };
            strokes.push(Stroke {
                step: step as u32,
                class,
                weight,
            });
        }
    }
    strokes
}

fn has(strokes: &[Stroke], class: DrumClass, step: u32) -> bool {
    strokes.iter().any(|s| s.class == class && s.step == step)
}

fn is_timekeeper(class: DrumClass) -> bool {
    matches!(
        class,
        DrumClass::ClosedHat | DrumClass::OpenHat | DrumClass::Ride | DrumClass::Perc
    )
}

/// The off-beat eighth where a hat opens up: the "and" of each beat in 4/4 and 3/4, the
/// third eighth of each pulse in 6/8.
fn is_offbeat_eighth(meter: Meter, step: u32) -> bool {
    match meter {
        Meter::SixEight => step % 6 == 4,
        _ => step % 4 == 2,
    }
}

/// The pickup kick a chorus adds: the "and" of 2 in 4/4, the last eighth in 3/4 and 6/8.
fn pickup_kick_step(meter: Meter, strokes: &[Stroke]) -> u32 {
    match meter {
        Meter::FourFour if !has(strokes, K, 6) => 6,
        Meter::FourFour => 14,
        _ => 10,
    }
}

fn apply_variant(
    mut strokes: Vec<Stroke>,
    variant: Variant,
    style: Style,
    meter: Meter,
) -> Vec<Stroke> {
    let spb = meter.steps_per_bar();
    match variant {
        Variant::Main => strokes,
        Variant::Sparse => {
            let hat_grid = if meter == Meter::SixEight { 2 } else { 4 };
            strokes.retain(|s| match s.class {
                DrumClass::Kick => s.step == 0,
                DrumClass::Snare | DrumClass::Clap => false,
                c if is_timekeeper(c) => s.step % hat_grid == 0 && s.weight > 0.5,
                _ => s.weight > 0.5,
            });
            strokes
        }
        Variant::HalfTime => {
            let half = spb / 2;
            // 3/4 has no middle beat: the backbeat moves to beat 3.
            let backbeat = if meter == Meter::ThreeFour { 8 } else { half };
            strokes.retain(|s| match s.class {
                DrumClass::Snare | DrumClass::Clap => false,
                DrumClass::Kick => s.step == 0 || (s.step > backbeat && s.step % 2 == 0),
                c if is_timekeeper(c) => s.step % 2 == 0,
                _ => true,
            });
            strokes.push(Stroke {
                step: backbeat,
                class: S,
                weight: 1.0,
            });
            strokes
        }
        Variant::Lifted => {
            let snare_hits: Vec<Stroke> = strokes
                .iter()
                .filter(|s| s.class == S && s.weight > 0.5)
                .copied()
                .collect();
            match style {
                Style::Rock => {
                    // The chorus rides: hats move to the ride cymbal.
                    for s in &mut strokes {
                        if s.class == H {
                            s.class = R;
                        }
                    }
                }
                Style::Lofi | Style::Synthwave | Style::Chiptune | Style::Folk => {
                    for s in snare_hits {
                        strokes.push(Stroke {
                            class: DrumClass::Clap,
                            ..s
                        });
                    }
                    let open_all = style == Style::Synthwave;
                    let last_offbeat = (0..spb).rev().find(|&st| is_offbeat_eighth(meter, st));
                    for s in &mut strokes {
                        if s.class == H
                            && is_offbeat_eighth(meter, s.step)
                            && (open_all || Some(s.step) == last_offbeat)
                        {
                            s.class = O;
                            s.weight = s.weight.max(0.78);
                        }
                    }
                }
                Style::Jazz => {
                    for s in &mut strokes {
                        if s.class == R {
                            s.weight = (s.weight * 1.15).min(1.0);
                        }
                    }
                    if !has(&strokes, S, spb - 2) {
                        strokes.push(Stroke {
                            step: spb - 2,
                            class: S,
                            weight: 0.5,
                        });
                    }
                }
                Style::Cinematic => {
                    // Big drums double the toms' accents; a snare joins on the backbeats.
                    let accents: Vec<u32> = strokes
                        .iter()
                        .filter(|s| s.class == L && s.weight >= 1.0)
                        .map(|s| s.step)
                        .collect();
                    for step in accents {
                        if !has(&strokes, K, step) {
                            strokes.push(Stroke {
                                step,
                                class: K,
                                weight: 0.9,
                            });
                        }
                    }
                    let backbeat = spb / 2;
                    if !has(&strokes, S, backbeat) {
                        strokes.push(Stroke {
                            step: backbeat,
                            class: S,
                            weight: 0.85,
                        });
                    }
                }
                Style::Ambient => {
                    let beat = meter.steps_per_beat();
                    for step in (0..spb).step_by(beat as usize) {
                        if !has(&strokes, R, step) {
                            strokes.push(Stroke {
                                step,
                                class: R,
                                weight: 0.5,
                            });
                        }
                    }
                }
            }
            if !matches!(style, Style::Jazz | Style::Ambient) {
                let step = pickup_kick_step(meter, &strokes);
                if !has(&strokes, K, step) {
                    strokes.push(Stroke {
                        step,
                        class: K,
                        weight: 0.8,
                    });
                }
            }
            strokes
        }
    }
}

fn variant_for(style: Style, kind: SectionKind) -> Variant {
    match kind {
        SectionKind::Intro | SectionKind::Outro => Variant::Sparse,
        SectionKind::Verse => Variant::Main,
        SectionKind::Chorus => Variant::Lifted,
        SectionKind::Bridge => match style {
            Style::Lofi | Style::Jazz | Style::Ambient => Variant::Main,
            _ => Variant::HalfTime,
        },
    }
}

/// The bar's groove after its section's variant, before fills and crashes.
fn bar_strokes(chart: &Chart, plan: &StylePlan, ctx: &BarContext) -> Vec<Stroke> {
    let table = grooves(chart.style, chart.meter);
    let index = match ctx.kind {
        SectionKind::Chorus => plan.grooves.chorus,
        SectionKind::Bridge => plan.grooves.bridge,
        _ => plan.grooves.verse,
    };
    let Some(groove) = table.get(index).or(table.first()) else {
        return Vec::new();
    };
    let strokes = groove_strokes(groove, chart.steps_per_bar);
    apply_variant(
        strokes,
        variant_for(chart.style, ctx.kind),
        chart.style,
        chart.meter,
    )
}

/// Kick steps of a bar's groove (no fills): what a kick-locked bass line follows.
pub(crate) fn kick_steps(chart: &Chart, plan: &StylePlan, ctx: &BarContext) -> Vec<u32> {
    let mut steps: Vec<u32> = bar_strokes(chart, plan, ctx)
        .into_iter()
        .filter(|s| s.class == K)
        .map(|s| s.step)
        .collect();
    steps.sort_unstable();
    steps.dedup();
    steps
}

/// Fill figures, each idiomatic for some styles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fill {
    /// Sixteenths down the toms, high to low, getting louder.
    TomRun,
    /// A crescendo snare roll (synthwave's gated build, the chip noise roll).
    SnareRoll,
    /// Snare sixteenths into a tom answer.
    SnareToToms,
    /// The lofi pickup: a ghosted snare, a snare, a soft tom into the one.
    Pickup,
    /// Eighth-note snare and toms, the drummer's answer to the soloist.
    JazzFigure,
    /// A low tom roll with the accents on the eighths: bodhrán or timpani.
    LowRoll,
    /// Soft low-tom swell with a perc tick: ambient's only fill.
    Swell,
}

fn fill_options(style: Style) -> &'static [Fill] {
    match style {
        Style::Lofi => &[Fill::Pickup, Fill::SnareToToms],
        Style::Synthwave => &[Fill::SnareRoll, Fill::TomRun, Fill::SnareToToms],
        Style::Rock => &[Fill::TomRun, Fill::SnareToToms, Fill::SnareRoll],
        Style::Ambient => &[Fill::Swell],
        Style::Cinematic => &[Fill::TomRun, Fill::LowRoll],
        Style::Chiptune => &[Fill::SnareRoll, Fill::TomRun],
        Style::Jazz => &[Fill::JazzFigure],
        Style::Folk => &[Fill::LowRoll, Fill::Pickup],
    }
}

/// Strokes of a fill over `len` steps, steps relative to the fill's start.
fn fill_strokes(fill: Fill, len: u32) -> Vec<Stroke> {
    let ramp = |i: u32, from: f32| from + (1.0 - from) * i as f32 / len.max(1) as f32;
    let mut out = Vec::new();
    let mut push = |step: u32, class: DrumClass, weight: f32| {
        out.push(Stroke {
            step,
            class,
            weight,
        })
    };
    match fill {
        Fill::TomRun => {
            for i in 0..len {
                let class = [DrumClass::HighTom, M, L][(i * 3 / len.max(1)) as usize % 3];
                push(i, class, ramp(i, 0.7));
            }
        }
        Fill::SnareRoll => {
            for i in 0..len {
                push(i, S, ramp(i, 0.45));
            }
        }
        Fill::SnareToToms => {
            let half = len / 2;
            for i in 0..len {
                let class = if i < half {
                    S
                } else if i + 1 < len {
                    M
                } else {
                    L
                };
                push(i, class, ramp(i, 0.65));
            }
        }
        Fill::Pickup => {
            let start = len.saturating_sub(4);
            push(start, S, 0.4);
            push(start + 2, S, 0.8);
            push(len - 1, M, 0.6);
        }
        Fill::JazzFigure => {
            let mut i = 0;
            while i < len {
                let from_end = (len - i).div_ceil(2);
                let class = match from_end {
                    1 => L,
                    2 => M,
                    3 => DrumClass::HighTom,
                    _ => S,
                };
                push(i, class, ramp(i, 0.55));
                i += 2;
            }
            push(len - 1, K, 0.6);
        }
        Fill::LowRoll => {
            for i in 0..len {
                push(i, L, if i % 2 == 0 { ramp(i, 0.7) } else { 0.5 });
            }
            push(len - 1, P, 0.7);
        }
        Fill::Swell => {
            for i in (0..len).step_by(2) {
                push(i, L, ramp(i, 0.3) * 0.7);
            }
            push(len - 1, P, 0.5);
        }
    }
    out
}

/// How loud a style's kit sits against the band.
fn kit_level(style: Style) -> f32 {
    match style {
        Style::Rock | Style::Cinematic => 112.0,
        Style::Synthwave | Style::Chiptune => 106.0,
        Style::Lofi | Style::Folk => 96.0,
        Style::Jazz => 88.0,
        Style::Ambient => 66.0,
    }
}

/// Writes the drum stem.
pub(crate) fn write_drums(chart: &Chart, plan: &StylePlan, rng: &mut SongRng) -> Vec<Note> {
    let mut notes = Vec::new();
    let spb = chart.steps_per_bar;
    let beat = chart.steps_per_beat;
    let base = kit_level(chart.style);
    for ctx in &chart.form {
        let start = chart.bar_start(ctx.bar);
        let loud = dynamics(ctx.energy);
        if ctx.is_final {
            // The last downbeat: crash and kick together, then let it ring out.
            let v = velocity(base, 0.95 * loud, rng);
            notes.push(note(start, spb, DrumClass::Crash.index(), v));
            notes.push(note(start, 2, K.index(), v));
            continue;
        }
        let mut strokes = match plan.level(Stem::Drums, ctx) {
            Level::Off => Vec::new(),
            _ => bar_strokes(chart, plan, ctx),
        };
        // Cinematic intros and bridges build: the toms grow bar by bar.
        if chart.style == Style::Cinematic
            && matches!(ctx.kind, SectionKind::Intro | SectionKind::Bridge)
        {
            let build = 0.55 + 0.45 * (ctx.bar_in_section + 1) as f32 / ctx.section_bars as f32;
            for s in &mut strokes {
                s.weight *= build;
            }
        }
        // The end of a four-bar phrase inside a section: open the last off-beat hat.
        if ctx.bar_in_section % 4 == 3 && !ctx.ends_section {
            let last_off = (0..spb)
                .rev()
                .find(|&st| is_offbeat_eighth(chart.meter, st));
            for s in &mut strokes {
                if s.class == H && Some(s.step) == last_off {
                    s.class = O;
                }
            }
        }
        if ctx.starts_section {
            strokes.retain(|s| !(s.step == 0 && matches!(s.class, H | O | R)));
            strokes.push(Stroke {
                step: 0,
                class: DrumClass::Crash,
                weight: 1.0,
            });
            if !has(&strokes, K, 0) {
                strokes.push(Stroke {
                    step: 0,
                    class: K,
                    weight: 0.9,
                });
            }
        }
        if ctx.ends_section {
            let (next_kind, next_energy) = ctx.next.unwrap_or((ctx.kind, ctx.energy));
            let fill = fill_options(chart.style)
                .choose(rng)
                .copied()
                .unwrap_or(Fill::SnareRoll);
            // Into a chorus or a lift, the fill takes two beats; otherwise the last one.
            let big = next_kind == SectionKind::Chorus || next_energy > ctx.energy + 0.15;
            let len = if big
                && chart.meter != Meter::SixEight
                && !matches!(fill, Fill::Pickup | Fill::Swell)
            {
                (2 * beat).min(spb)
            } else {
                beat
            };
            let from = spb - len;
            strokes.retain(|s| s.step < from);
            strokes.extend(fill_strokes(fill, len).into_iter().map(|s| Stroke {
                step: s.step + from,
                ..s
            }));
        }
        for s in strokes {
            let duration = if s.class == DrumClass::Crash { beat } else { 1 };
            let v = velocity(base, s.weight * loud, rng);
            notes.push(note(start + s.step, duration, s.class.index(), v));
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_groove_line_fills_exactly_one_bar() {
        for style in Style::ALL {
            for meter in Meter::ALL {
                let table = grooves(style, meter);
                assert!(!table.is_empty());
                if meter == Meter::FourFour {
                    assert!(table.len() >= 3, "{style} needs three 4/4 grooves");
                }
                for groove in table {
                    for (class, line) in groove.lines {
                        assert_eq!(
                            line.len() as u32,
                            meter.steps_per_bar(),
                            "{style} {meter} {class:?} {line}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_fill_has_toms_or_a_roll_in_its_last_beat() {
        for style in Style::ALL {
            for &fill in fill_options(style) {
                for len in [4u32, 6, 8] {
                    let strokes = fill_strokes(fill, len);
                    let last_beat_from = len.saturating_sub(4);
                    let toms = strokes.iter().any(|s| {
                        s.step >= last_beat_from
                            && matches!(
                                s.class,
                                DrumClass::LowTom | DrumClass::MidTom | DrumClass::HighTom
                            )
                    });
                    let snares = strokes
                        .iter()
                        .filter(|s| s.step >= last_beat_from && s.class == S)
                        .count();
                    assert!(toms || snares >= 3, "{fill:?} over {len}");
                    assert!(strokes.iter().all(|s| s.step < len));
                }
            }
        }
    }
}
