//! Per-style chord-progression writer: idiomatic progressions per section, cadences at
//! section ends, harmonic rhythm that suits the style and meter.
//!
//! Progressions are written as scale degrees (roman numerals) and built on the key's mode, so
//! one vocabulary serves all seven modes: "I-V-vi-IV" in D major and "i-VI-III-VII" in E dorian
//! come from the same code. Every chord is diatonic except a rare borrowed major dominant at a
//! cinematic or jazz cadence in a minor key, where the leading note is the idiom.

use super::SongRng;
use crate::music::{
    Chord, ChordQuality, ChordTrack, Key, Meter, Mode, Mood, Section, SectionKind, Style,
};
use rand::Rng;

/// How often the harmony moves: the felt pulse of a style's changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HarmonicRhythm {
    TwoPerBar,
    OnePerBar,
    OnePerTwoBars,
}

/// The colour a chord wears over its diatonic triad. Applied generically with a diatonic
/// fallback, so a ninth that the mode does not hold quietly becomes the seventh chord.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Colour {
    Triad,
    Seventh,
    Ninth,
    Add9,
    Sus2,
    Sus4,
    Sixth,
}

/// How a section closes: on the tonic, or open on the dominant to pull into what follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cadence {
    Authentic,
    Half,
}

/// Which part of the form a progression is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Verse,
    Chorus,
    Bridge,
}

/// A progression of one section kind, fixed for the whole song so that a chorus sounds like
/// the same chorus every time it comes back.
#[derive(Clone, Debug)]
struct Progression {
    degrees: Vec<u8>,
    colours: Vec<Colour>,
}

/// The song's harmonic language: everything decided once, before the sections are laid out.
struct Harmony {
    style: Style,
    mood: Mood,
    mode: Mode,
    rhythm: HarmonicRhythm,
    /// The chord that leads home at cadences (V, or the mode's substitute: bVII, bII, IV).
    approach: u8,
    /// The chord before the approach in a two-chords-a-bar cadence (ii or IV).
    pre_approach: u8,
    approach_colour: Colour,
    tonic_colour: Colour,
    /// Whether the final cadence borrows the major dominant (harmonic minor's V).
    borrowed_final: bool,
}

// Scale degrees, zero-based: I = 0 ... vii = 6. Minor-key numerals name the same degrees.
const I: u8 = 0;
const II: u8 = 1;
const III: u8 = 2;
const IV: u8 = 3;
const V: u8 = 4;
const VI: u8 = 5;
const VII: u8 = 6;

/// Writes one chord per felt beat for the whole form.
pub fn write_progression(
    style: Style,
    mood: Mood,
    key: Key,
    meter: Meter,
    sections: &[Section],
    rng: &mut SongRng,
) -> ChordTrack {
    let total_bars: u32 = sections.iter().map(|s| s.bars).sum();
    let beats_per_bar = meter.beats_per_bar();
    let mut per_beat = Vec::with_capacity((total_bars * beats_per_bar) as usize);
    if total_bars == 0 {
        return ChordTrack { per_beat };
    }
    let harmony = plan_harmony(style, mood, key.mode, meter, rng);
    let minor = key.mode.is_minor_like();

    // One progression per part, chosen once: repeated sections reuse it.
    let verse = choose_progression(&harmony, minor, Part::Verse, rng);
    let chorus = choose_progression(&harmony, minor, Part::Chorus, rng);
    let chorus = if chorus.degrees == verse.degrees {
        // A chorus must lift away from the verse; take the next idiom in the list.
        choose_progression(&harmony, minor, Part::Chorus, rng)
    } else {
        chorus
    };
    let bridge = choose_progression(&harmony, minor, Part::Bridge, rng);
    let has_chorus = sections.iter().any(|s| s.kind == SectionKind::Chorus);

    let last_index = sections.iter().rposition(|s| s.bars > 0);
    for (index, section) in sections.iter().enumerate() {
        if section.bars == 0 {
            continue;
        }
        let next = sections[index + 1..].iter().find(|s| s.bars > 0);
        let is_last = Some(index) == last_index;
        let progression = match section.kind {
            SectionKind::Intro | SectionKind::Verse => &verse,
            SectionKind::Chorus => &chorus,
            SectionKind::Bridge => &bridge,
            SectionKind::Outro if has_chorus => &chorus,
            SectionKind::Outro => &verse,
        };
        let cadence = if is_last {
            Cadence::Authentic
        } else {
            match (section.kind, next.map(|s| s.kind)) {
                (SectionKind::Chorus, _) => Cadence::Authentic,
                (SectionKind::Intro | SectionKind::Bridge, _) => Cadence::Half,
                (_, Some(SectionKind::Chorus)) => Cadence::Half,
                _ => Cadence::Authentic,
            }
        };
        lay_out_section(
            &harmony,
            meter,
            section.bars,
            progression,
            cadence,
            is_last,
            &mut per_beat,
        );
    }
    ChordTrack { per_beat }
}

/// Roman numeral of a key-relative chord in a mode ("ii7", "bVII", "V7", "i"), for logs,
/// plans and tests. Chords on roots outside the mode are spelled with a flat.
pub fn roman_numeral(chord: Chord, mode: Mode) -> String {
    const NUMERALS: [&str; 7] = ["I", "II", "III", "IV", "V", "VI", "VII"];
    const MAJOR_DEGREES: [u8; 7] = [0, 2, 4, 5, 7, 9, 11];
    let intervals = mode.intervals();
    let degree = intervals
        .iter()
        .position(|&i| i == chord.root)
        .or_else(|| MAJOR_DEGREES.iter().position(|&i| i == chord.root))
        .or_else(|| {
            MAJOR_DEGREES
                .iter()
                .position(|&i| i == (chord.root + 1) % 12)
        })
        .unwrap_or(0);
    let accidental = if chord.root < MAJOR_DEGREES[degree] {
        "b"
    } else if chord.root > MAJOR_DEGREES[degree] {
        "#"
    } else {
        ""
    };
    let numeral = NUMERALS[degree];
    let (numeral, suffix) = match chord.quality {
        ChordQuality::Major => (numeral.to_string(), ""),
        ChordQuality::Minor => (numeral.to_lowercase(), ""),
        ChordQuality::Diminished => (numeral.to_lowercase(), "°"),
        ChordQuality::Augmented => (numeral.to_string(), "+"),
        ChordQuality::Sus2 => (numeral.to_string(), "sus2"),
        ChordQuality::Sus4 => (numeral.to_string(), "sus4"),
        ChordQuality::Major7 => (numeral.to_string(), "maj7"),
        ChordQuality::Minor7 => (numeral.to_lowercase(), "7"),
        ChordQuality::Dominant7 => (numeral.to_string(), "7"),
        ChordQuality::HalfDiminished7 => (numeral.to_lowercase(), "ø7"),
        ChordQuality::Major6 => (numeral.to_string(), "6"),
        ChordQuality::Minor6 => (numeral.to_lowercase(), "6"),
        ChordQuality::Add9 => (numeral.to_string(), "add9"),
        ChordQuality::Minor9 => (numeral.to_lowercase(), "9"),
        ChordQuality::Major9 => (numeral.to_string(), "maj9"),
        ChordQuality::Dominant9 => (numeral.to_string(), "9"),
    };
    format!("{accidental}{numeral}{suffix}")
}

/// The chords of a track with repeated beats merged, as roman numerals: "I | V | vi | IV".
pub fn describe_progression(chords: &ChordTrack, mode: Mode) -> String {
    let mut names: Vec<String> = Vec::new();
    let mut previous: Option<Chord> = None;
    for &chord in &chords.per_beat {
        if previous != Some(chord) {
            names.push(roman_numeral(chord, mode));
        }
        previous = Some(chord);
    }
    names.join(" ")
}

/// Decides the harmonic rhythm, the cadence chords and their colours for the whole song.
fn plan_harmony(style: Style, mood: Mood, mode: Mode, meter: Meter, rng: &mut SongRng) -> Harmony {
    let two_per_bar = if meter == Meter::ThreeFour {
        // A waltz bar does not split in halves; its harmony moves once a bar.
        HarmonicRhythm::OnePerBar
    } else {
        HarmonicRhythm::TwoPerBar
    };
    let rhythm = match style {
        Style::Ambient => HarmonicRhythm::OnePerTwoBars,
        Style::Jazz | Style::Chiptune => two_per_bar,
        Style::Lofi | Style::Folk => {
            if rng.random::<f32>() < 0.5 {
                two_per_bar
            } else {
                HarmonicRhythm::OnePerBar
            }
        }
        Style::Synthwave | Style::Rock | Style::Cinematic => HarmonicRhythm::OnePerBar,
    };

    let approach = approach_degree(mode, style, rng);
    let pre_approach = if approach == IV {
        VI
    } else if matches!(style, Style::Jazz | Style::Lofi) && approach == V {
        II
    } else {
        IV
    };
    let sevenths = matches!(style, Style::Jazz | Style::Lofi);
    let approach_colour = if sevenths || matches!(mood, Mood::Tense | Mood::Dark) {
        Colour::Seventh
    } else {
        Colour::Triad
    };
    let tonic_colour = match style {
        Style::Jazz => {
            if rng.random::<f32>() < 0.4 {
                Colour::Sixth
            } else {
                Colour::Seventh
            }
        }
        Style::Lofi => Colour::Ninth,
        Style::Ambient => Colour::Add9,
        _ => Colour::Triad,
    };
    // Harmonic minor's major V is the cadence of film and jazz in minor keys, but it leaves
    // the scale, so it is kept for the last cadence of the song and not every time.
    let borrowed_final = matches!(style, Style::Cinematic | Style::Jazz)
        && mode.is_minor_like()
        && mode.intervals()[4] == 7
        && triad_of(mode, V) != ChordQuality::Major
        && rng.random::<f32>() < 0.5;
    Harmony {
        style,
        mood,
        mode,
        rhythm,
        approach,
        pre_approach,
        approach_colour,
        tonic_colour,
        borrowed_final,
    }
}

/// The chord that leads home in this mode: V where it is major, otherwise the mode's own
/// cadence (bVII-i in aeolian, dorian and mixolydian, bII-i in phrygian), or plagal IV-I.
fn approach_degree(mode: Mode, style: Style, rng: &mut SongRng) -> u8 {
    if style == Style::Ambient && rng.random::<f32>() < 0.5 {
        // Ambient music prefers the soft plagal close to a dominant's pull.
        return IV;
    }
    if triad_of(mode, V) == ChordQuality::Major {
        return V;
    }
    if mode.is_minor_like() && triad_of(mode, V) == ChordQuality::Minor {
        // In minor both the minor v and bVII close naturally.
        return if rng.random::<f32>() < 0.5 { V } else { VII };
    }
    [VII, II, IV]
        .into_iter()
        .find(|&d| triad_of(mode, d) == ChordQuality::Major)
        .unwrap_or(IV)
}

/// Picks one progression for a part of the form from the style's vocabulary, with colours.
fn choose_progression(
    harmony: &Harmony,
    minor: bool,
    part: Part,
    rng: &mut SongRng,
) -> Progression {
    let options = vocabulary(harmony.style, harmony.mode, minor, part);
    // Sad and dark songs lean on the submediant and subdominant (vi, iv) openings.
    let melancholy = matches!(harmony.mood, Mood::Sad | Mood::Dark | Mood::Nostalgic);
    let leaning: Vec<&&[u8]> = options
        .iter()
        .filter(|p| p.first().is_some_and(|&d| d == VI || d == IV))
        .collect();
    let degrees: &[u8] = if melancholy && !leaning.is_empty() && rng.random::<f32>() < 0.5 {
        leaning[rng.random_range(0..leaning.len())]
    } else {
        options[rng.random_range(0..options.len())]
    };
    let colours = degrees
        .iter()
        .map(|&d| choose_colour(harmony, d, rng))
        .collect();
    Progression {
        degrees: degrees.to_vec(),
        colours,
    }
}

/// A style's chord colours, nudged by the mood.
fn choose_colour(harmony: &Harmony, degree: u8, rng: &mut SongRng) -> Colour {
    let roll = rng.random::<f32>();
    let dreamy = harmony.mood == Mood::Dreamy;
    let warm = matches!(harmony.mood, Mood::Romantic | Mood::Nostalgic);
    match harmony.style {
        Style::Jazz => {
            if roll < 0.3 {
                Colour::Ninth
            } else {
                Colour::Seventh
            }
        }
        Style::Lofi => {
            if roll < 0.45 {
                Colour::Ninth
            } else {
                Colour::Seventh
            }
        }
        Style::Ambient => match roll {
            r if r < 0.35 => Colour::Seventh,
            r if r < 0.7 => Colour::Add9,
            _ => Colour::Sus2,
        },
        _ if dreamy && roll < 0.4 => {
            if degree == I || roll < 0.2 {
                Colour::Add9
            } else {
                Colour::Sus2
            }
        }
        _ if warm && roll < 0.35 => Colour::Seventh,
        Style::Synthwave if roll < 0.25 => Colour::Add9,
        Style::Cinematic if roll < 0.15 => Colour::Sus2,
        Style::Rock if degree == V && roll < 0.2 => Colour::Sus4,
        _ => Colour::Triad,
    }
}

/// The style's progressions for a part, as scale degrees. Major-feeling and minor-feeling
/// modes have their own lists; folk keeps its modal idioms (I-bVII-IV, i-IV dorian).
fn vocabulary(style: Style, mode: Mode, minor: bool, part: Part) -> &'static [&'static [u8]] {
    use Part::{Bridge, Chorus, Verse};
    match (style, minor, part) {
        (Style::Lofi, false, Verse) => &[&[II, V, I, VI], &[I, VI, II, V], &[IV, III, II, I]],
        (Style::Lofi, false, Chorus) => &[&[IV, V, III, VI], &[VI, II, V, I], &[IV, III, VI, II]],
        (Style::Lofi, false, Bridge) => &[&[VI, III, IV, I], &[IV, IV, III, VI]],
        (Style::Lofi, true, Verse) => &[&[I, IV, VI, V], &[I, VII, VI, V], &[I, IV, I, VI]],
        (Style::Lofi, true, Chorus) => &[&[IV, V, I, VI], &[VI, V, I, IV], &[VI, VII, III, IV]],
        (Style::Lofi, true, Bridge) => &[&[III, VI, IV, V], &[VI, III, VII, IV]],

        (Style::Synthwave, false, Verse) => &[&[I, V, VI, IV], &[I, VI, IV, V], &[I, III, IV, IV]],
        (Style::Synthwave, false, Chorus) => &[&[VI, IV, I, V], &[IV, I, V, VI], &[IV, V, VI, VI]],
        (Style::Synthwave, false, Bridge) => &[&[VI, V, IV, IV], &[II, IV, VI, V]],
        (Style::Synthwave, true, Verse) => {
            &[&[I, VI, III, VII], &[I, VII, VI, VII], &[I, I, VI, VII]]
        }
        (Style::Synthwave, true, Chorus) => {
            &[&[VI, VII, I, I], &[VI, III, VII, I], &[IV, VI, VII, I]]
        }
        (Style::Synthwave, true, Bridge) => &[&[IV, VI, VII, VII], &[VI, IV, III, VII]],

        (Style::Rock, false, Verse) => &[&[I, V, VI, IV], &[I, IV, V, IV], &[I, IV, I, V]],
        (Style::Rock, false, Chorus) => &[&[IV, I, V, VI], &[VI, IV, I, V], &[I, IV, V, V]],
        (Style::Rock, false, Bridge) => &[&[VI, V, IV, IV], &[II, IV, VI, V]],
        (Style::Rock, true, Verse) => &[&[I, VII, VI, VII], &[I, VI, VII, I], &[I, IV, VII, III]],
        (Style::Rock, true, Chorus) => &[&[VI, VII, I, I], &[III, VII, I, VI], &[VI, III, VII, I]],
        (Style::Rock, true, Bridge) => &[&[IV, VI, VII, VII], &[VI, VII, IV, IV]],

        (Style::Ambient, false, Verse) => &[&[I, IV], &[I, VI, IV, I], &[I, III, IV, I]],
        (Style::Ambient, false, Chorus) => &[&[IV, I, VI, IV], &[VI, IV, I, I], &[IV, VI, I, V]],
        (Style::Ambient, false, Bridge) => &[&[II, IV], &[VI, III, IV, IV]],
        (Style::Ambient, true, Verse) => &[&[I, VI], &[I, IV, I, VI], &[I, III, VI, I]],
        (Style::Ambient, true, Chorus) => &[&[VI, III, VII, I], &[IV, VI, I, I], &[VI, IV, I, III]],
        (Style::Ambient, true, Bridge) => &[&[IV, VI], &[III, VII, VI, VI]],

        (Style::Cinematic, false, Verse) => &[&[I, V, VI, IV], &[I, III, IV, V], &[I, VI, IV, V]],
        (Style::Cinematic, false, Chorus) => &[&[VI, IV, I, V], &[IV, V, VI, I], &[IV, I, V, VI]],
        (Style::Cinematic, false, Bridge) => &[&[VI, III, IV, V], &[II, VI, IV, V]],
        (Style::Cinematic, true, Verse) => {
            &[&[I, VI, III, VII], &[I, IV, VI, V], &[I, VII, VI, IV]]
        }
        (Style::Cinematic, true, Chorus) => {
            &[&[VI, VII, I, I], &[VI, III, VII, I], &[IV, VI, VII, I]]
        }
        (Style::Cinematic, true, Bridge) => &[&[IV, V, VI, VII], &[VI, IV, III, VII]],

        (Style::Chiptune, false, Verse) => &[&[I, IV, V, I], &[I, VI, IV, V], &[I, V, IV, V]],
        (Style::Chiptune, false, Chorus) => &[&[VI, IV, V, I], &[IV, V, III, VI], &[IV, V, I, I]],
        (Style::Chiptune, false, Bridge) => &[&[II, V, III, VI], &[IV, V, IV, V]],
        (Style::Chiptune, true, Verse) => &[&[I, VII, VI, VII], &[I, IV, V, I], &[I, VI, VII, I]],
        (Style::Chiptune, true, Chorus) => {
            &[&[VI, VII, I, I], &[IV, VII, III, VI], &[VI, IV, VII, I]]
        }
        (Style::Chiptune, true, Bridge) => &[&[IV, V, VI, VII], &[III, VII, VI, VII]],

        (Style::Jazz, false, Verse) => &[&[II, V, I, I], &[I, VI, II, V], &[II, V, I, VI]],
        (Style::Jazz, false, Chorus) => &[&[III, VI, II, V], &[IV, III, II, V], &[VI, II, V, I]],
        (Style::Jazz, false, Bridge) => &[&[IV, IV, III, VI], &[II, V, III, VI]],
        (Style::Jazz, true, Verse) => &[&[II, V, I, I], &[I, VI, II, V], &[I, IV, II, V]],
        (Style::Jazz, true, Chorus) => &[&[IV, VII, III, VI], &[VI, II, V, I], &[III, VI, II, V]],
        (Style::Jazz, true, Bridge) => &[&[III, VI, IV, V], &[IV, VII, III, III]],

        (Style::Folk, false, Verse) if mode == Mode::Mixolydian => {
            &[&[I, VII, IV, I], &[I, VII, I, IV], &[I, IV, I, VII]]
        }
        (Style::Folk, false, Chorus) if mode == Mode::Mixolydian => {
            &[&[IV, I, VII, I], &[VII, IV, I, I], &[IV, VII, I, I]]
        }
        (Style::Folk, true, Verse) if mode == Mode::Dorian => {
            &[&[I, IV, I, VII], &[I, VII, I, IV], &[I, III, IV, I]]
        }
        (Style::Folk, true, Chorus) if mode == Mode::Dorian => {
            &[&[III, VII, IV, I], &[IV, I, VII, I], &[VII, IV, I, I]]
        }
        (Style::Folk, false, Verse) => &[&[I, IV, I, V], &[I, V, IV, I], &[I, I, IV, V]],
        (Style::Folk, false, Chorus) => &[&[IV, I, V, I], &[IV, V, I, VI], &[VI, IV, I, V]],
        (Style::Folk, false, Bridge) => &[&[VI, IV, V, V], &[II, V, I, IV]],
        (Style::Folk, true, Verse) => &[&[I, VII, I, V], &[I, VI, VII, I], &[I, III, VII, I]],
        (Style::Folk, true, Chorus) => &[&[III, VII, I, I], &[VI, VII, I, V], &[III, VI, VII, I]],
        (Style::Folk, true, Bridge) => &[&[III, VII, IV, IV], &[VI, III, VII, VII]],
    }
}

/// Lays a progression over a section's bars at the song's harmonic rhythm and closes it with
/// the section's cadence.
fn lay_out_section(
    harmony: &Harmony,
    meter: Meter,
    bars: u32,
    progression: &Progression,
    cadence: Cadence,
    ends_song: bool,
    out: &mut Vec<Chord>,
) {
    let beats_per_bar = meter.beats_per_bar();
    // Slot lengths in beats.
    let mut slots: Vec<u32> = Vec::new();
    match harmony.rhythm {
        HarmonicRhythm::TwoPerBar => {
            let first = beats_per_bar / 2;
            for _ in 0..bars {
                slots.push(first);
                slots.push(beats_per_bar - first);
            }
        }
        HarmonicRhythm::OnePerBar => slots.extend((0..bars).map(|_| beats_per_bar)),
        HarmonicRhythm::OnePerTwoBars => {
            let mut left = bars;
            while left > 0 {
                let span = left.min(2);
                slots.push(span * beats_per_bar);
                left -= span;
            }
        }
    }
    slots.retain(|&s| s > 0);
    let count = slots.len();
    let pattern_len = progression.degrees.len().max(1);
    let mut chords: Vec<Chord> = (0..count)
        .map(|i| {
            let p = i % pattern_len;
            let degree = structural_degree(
                harmony.mode,
                progression.degrees.get(p).copied().unwrap_or(I),
            );
            let colour = progression.colours.get(p).copied().unwrap_or(Colour::Triad);
            diatonic_chord(harmony.mode, degree, colour)
        })
        .collect();

    let approach = if ends_song && harmony.borrowed_final {
        borrowed_dominant(harmony.approach_colour)
    } else {
        diatonic_chord(harmony.mode, harmony.approach, harmony.approach_colour)
    };
    let pre = diatonic_chord(
        harmony.mode,
        harmony.pre_approach,
        if matches!(harmony.style, Style::Jazz | Style::Lofi) {
            Colour::Seventh
        } else {
            Colour::Triad
        },
    );
    let tonic = diatonic_chord(harmony.mode, I, harmony.tonic_colour);
    let two_per_bar = harmony.rhythm == HarmonicRhythm::TwoPerBar;
    // The closing chords, last slot last. With two chords a bar the cadence spans the last
    // two bars (| ii V | I |), so the goal chord owns a whole bar.
    let close: Vec<Chord> = match (cadence, two_per_bar) {
        (Cadence::Authentic, true) => vec![pre, approach, tonic, tonic],
        (Cadence::Authentic, false) => vec![approach, tonic],
        (Cadence::Half, true) => vec![pre, approach, approach],
        (Cadence::Half, false) => vec![approach],
    };
    // A section too short for the approach chord to lead anywhere just rests on its own
    // opening harmony (a two-bar ambient intro stays on the tonic), unless it ends the song.
    if cadence == Cadence::Half && count < 2 && !ends_song {
        for (chord, beats) in chords.into_iter().zip(slots) {
            out.extend((0..beats).map(|_| chord));
        }
        return;
    }
    let take = close.len().min(count);
    let skip = close.len() - take;
    let mut close = close;
    if let (Some(first), Some(before)) = (
        close.get_mut(skip),
        (count > take).then(|| chords[count - take - 1]),
    ) {
        // A cadence chord on the same root as the chord before it continues that chord
        // rather than re-striking it in another colour.
        if first.root == before.root {
            *first = before;
        }
    }
    for (slot, chord) in chords[count - take..].iter_mut().zip(&close[skip..]) {
        *slot = *chord;
    }
    if ends_song {
        // Whatever the cadence had room for, the last chord of a song is home.
        if let Some(last) = chords.last_mut() {
            *last = tonic;
        }
    }
    for (chord, beats) in chords.into_iter().zip(slots) {
        out.extend((0..beats).map(|_| chord));
    }
}

/// The degree a progression really stands on in this mode. A diminished triad cannot carry
/// a progression's weight (dorian's vi°, major's vii°), so it gives way to the chord a third
/// below, which shares two of its notes; the tonic and the minor-key ii° (a pre-dominant)
/// stay as written.
fn structural_degree(mode: Mode, degree: u8) -> u8 {
    if degree != I && degree != II && triad_of(mode, degree) == ChordQuality::Diminished {
        (degree + 5) % 7
    } else {
        degree
    }
}

/// The major dominant borrowed from harmonic minor (its third is the raised leading note).
fn borrowed_dominant(colour: Colour) -> Chord {
    let quality = if colour == Colour::Triad {
        ChordQuality::Major
    } else {
        ChordQuality::Dominant7
    };
    Chord::new(7, quality)
}

/// Semitones from a degree's root up to the degree `steps` scale steps above it.
fn above(mode: Mode, degree: u8, steps: usize) -> u8 {
    let intervals = mode.intervals();
    let d = usize::from(degree) % 7;
    let root = intervals[d];
    (intervals[(d + steps) % 7] + 12 - root) % 12
}

/// The triad the mode stacks on a degree.
fn triad_of(mode: Mode, degree: u8) -> ChordQuality {
    match (above(mode, degree, 2), above(mode, degree, 4)) {
        (4, 7) => ChordQuality::Major,
        (3, 7) => ChordQuality::Minor,
        (3, 6) => ChordQuality::Diminished,
        (4, 8) => ChordQuality::Augmented,
        _ => ChordQuality::Major,
    }
}

/// The diatonic chord on a degree in the requested colour, falling back to the nearest
/// colour the mode actually holds so that every chord tone stays in the scale.
fn diatonic_chord(mode: Mode, degree: u8, colour: Colour) -> Chord {
    use ChordQuality as Q;
    let root = mode.intervals()[usize::from(degree) % 7];
    let triad = triad_of(mode, degree);
    let seventh = above(mode, degree, 6);
    let ninth = above(mode, degree, 1);
    let fourth = above(mode, degree, 3);
    let sixth = above(mode, degree, 5);
    let fifth_perfect = above(mode, degree, 4) == 7;
    let seventh_chord = match (triad, seventh) {
        (Q::Major, 11) => Q::Major7,
        (Q::Major, 10) => Q::Dominant7,
        (Q::Minor, 10) => Q::Minor7,
        (Q::Diminished, 10) => Q::HalfDiminished7,
        _ => triad,
    };
    let quality = match colour {
        Colour::Triad => triad,
        Colour::Seventh => seventh_chord,
        Colour::Ninth if ninth == 2 => match seventh_chord {
            Q::Major7 => Q::Major9,
            Q::Dominant7 => Q::Dominant9,
            Q::Minor7 => Q::Minor9,
            other => other,
        },
        Colour::Ninth => seventh_chord,
        Colour::Add9 if ninth == 2 && triad == Q::Major => Q::Add9,
        Colour::Add9 if ninth == 2 && triad == Q::Minor && seventh == 10 => Q::Minor9,
        Colour::Add9 => seventh_chord,
        Colour::Sus2 if ninth == 2 && fifth_perfect => Q::Sus2,
        Colour::Sus4 if fourth == 5 && fifth_perfect => Q::Sus4,
        Colour::Sixth if sixth == 9 && triad == Q::Major => Q::Major6,
        Colour::Sixth if sixth == 9 && triad == Q::Minor => Q::Minor6,
        Colour::Sixth => seventh_chord,
        _ => triad,
    };
    Chord::new(root, quality)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn section(kind: SectionKind, start_bar: u32, bars: u32, energy: f32) -> Section {
        Section {
            kind,
            start_bar,
            bars,
            energy,
        }
    }

    /// intro 4, verse 8, chorus 8, verse 8, chorus 8, outro 4.
    pub(crate) fn pop_form() -> Vec<Section> {
        let plan = [
            (SectionKind::Intro, 4, 0.3),
            (SectionKind::Verse, 8, 0.5),
            (SectionKind::Chorus, 8, 0.8),
            (SectionKind::Verse, 8, 0.55),
            (SectionKind::Chorus, 8, 0.9),
            (SectionKind::Bridge, 4, 0.6),
            (SectionKind::Chorus, 8, 1.0),
            (SectionKind::Outro, 4, 0.3),
        ];
        let mut start = 0;
        plan.iter()
            .map(|&(kind, bars, energy)| {
                let s = section(kind, start, bars, energy);
                start += bars;
                s
            })
            .collect()
    }

    fn write(
        style: Style,
        mood: Mood,
        key: Key,
        meter: Meter,
        sections: &[Section],
        seed: u64,
    ) -> ChordTrack {
        let mut rng = SongRng::seed_from_u64(seed);
        write_progression(style, mood, key, meter, sections, &mut rng)
    }

    fn last_chord_of(track: &ChordTrack, meter: Meter, s: &Section) -> Chord {
        let beat = (s.end_bar() * meter.beats_per_bar()) as usize - 1;
        track.per_beat[beat]
    }

    #[test]
    fn one_chord_per_felt_beat_for_every_style_meter_and_mode() {
        let form = pop_form();
        let bars: u32 = form.iter().map(|s| s.bars).sum();
        for style in Style::ALL {
            for meter in Meter::ALL {
                for mode in Mode::ALL {
                    let track = write(style, Mood::Calm, Key::new(2, mode), meter, &form, 7);
                    assert_eq!(track.per_beat.len() as u32, bars * meter.beats_per_bar());
                    assert!(track.per_beat.iter().all(|c| c.root < 12));
                }
            }
        }
    }

    #[test]
    fn harmony_stays_in_the_mode_except_a_rare_borrowed_dominant() {
        let form = pop_form();
        for style in Style::ALL {
            for meter in Meter::ALL {
                for mode in Mode::ALL {
                    for seed in 0..4 {
                        for mood in [Mood::Dreamy, Mood::Tense, Mood::Sad, Mood::Happy] {
                            let key = Key::new(0, mode);
                            let track = write(style, mood, key, meter, &form, seed);
                            let outside = track
                                .per_beat
                                .iter()
                                .filter(|c| {
                                    c.pitch_classes()
                                        .iter()
                                        .any(|&pc| !key.contains_relative(i32::from(pc)))
                                })
                                .count();
                            // Only the final cadence may borrow: at most two bars of it.
                            assert!(
                                outside <= 2 * meter.beats_per_bar() as usize,
                                "{style} {mode:?} {meter}: {outside} beats outside the mode"
                            );
                            assert!(
                                track
                                    .per_beat
                                    .iter()
                                    .all(|c| key.contains_relative(i32::from(c.root))),
                                "every root is a scale degree"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_song_ends_on_the_tonic_and_every_section_on_a_cadence() {
        let form = pop_form();
        for style in Style::ALL {
            for meter in Meter::ALL {
                for mode in [
                    Mode::Major,
                    Mode::Minor,
                    Mode::Dorian,
                    Mode::Mixolydian,
                    Mode::Phrygian,
                ] {
                    for seed in 0..3 {
                        let track =
                            write(style, Mood::Happy, Key::new(9, mode), meter, &form, seed);
                        let last = *track.per_beat.last().unwrap();
                        assert_eq!(last.root, 0, "{style} {mode:?} {meter} ends home");
                        let final_bar = track.bar(meter, form.last().unwrap().end_bar() - 1);
                        assert!(
                            final_bar.iter().all(|c| c.root == 0),
                            "the final bar is the tonic"
                        );
                        for s in &form {
                            let end = last_chord_of(&track, meter, s);
                            // Home, or open on the chord that leads home (V, bVII, bII, IV).
                            let approaches = [7, 10, 1, 5];
                            assert!(
                                end.root == 0 || approaches.contains(&end.root),
                                "{style} {mode:?} {meter} {:?} ends on {}",
                                s.kind,
                                roman_numeral(end, mode)
                            );
                            if s.kind == SectionKind::Chorus || s.kind == SectionKind::Outro {
                                assert_eq!(end.root, 0, "{:?} closes on the tonic", s.kind);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_verse_before_a_chorus_ends_open_on_the_approach_chord() {
        let form = pop_form();
        for style in Style::ALL {
            let track = write(
                style,
                Mood::Calm,
                Key::new(0, Mode::Major),
                Meter::FourFour,
                &form,
                3,
            );
            let verse_end = last_chord_of(&track, Meter::FourFour, &form[1]);
            assert_ne!(verse_end.root, 0, "{style}: half cadence before the chorus");
        }
    }

    #[test]
    fn a_recurring_chorus_has_the_same_chords() {
        let form = pop_form();
        for style in Style::ALL {
            for meter in Meter::ALL {
                let track = write(
                    style,
                    Mood::Epic,
                    Key::new(4, Mode::Minor),
                    meter,
                    &form,
                    11,
                );
                let chords = |s: &Section| -> Vec<Chord> {
                    (s.start_bar..s.end_bar())
                        .flat_map(|b| track.bar(meter, b).to_vec())
                        .collect()
                };
                assert_eq!(chords(&form[2]), chords(&form[4]));
                assert_eq!(chords(&form[2]), chords(&form[6]));
                assert_eq!(chords(&form[1]), chords(&form[3]));
            }
        }
    }

    #[test]
    fn verse_and_chorus_usually_differ() {
        let form = pop_form();
        for style in Style::ALL {
            let differ = (0..10)
                .filter(|&seed| {
                    let track = write(
                        style,
                        Mood::Happy,
                        Key::new(0, Mode::Major),
                        Meter::FourFour,
                        &form,
                        seed,
                    );
                    let verse = track.bar(Meter::FourFour, form[1].start_bar).to_vec();
                    let chorus = track.bar(Meter::FourFour, form[2].start_bar).to_vec();
                    let verse2 = track.bar(Meter::FourFour, form[1].start_bar + 1).to_vec();
                    let chorus2 = track.bar(Meter::FourFour, form[2].start_bar + 1).to_vec();
                    verse != chorus || verse2 != chorus2
                })
                .count();
            assert!(
                differ >= 8,
                "{style}: chorus should lift away from the verse"
            );
        }
    }

    #[test]
    fn same_seed_same_chords_and_seeds_vary() {
        let form = pop_form();
        for style in Style::ALL {
            let key = Key::new(5, Mode::Major);
            let a = write(style, Mood::Dreamy, key, Meter::FourFour, &form, 42);
            let b = write(style, Mood::Dreamy, key, Meter::FourFour, &form, 42);
            assert_eq!(a, b);
            let distinct = (0..8)
                .map(|seed| write(style, Mood::Dreamy, key, Meter::FourFour, &form, seed))
                .filter(|t| *t != a)
                .count();
            assert!(distinct > 0, "{style}: seeds should change the progression");
        }
    }

    #[test]
    fn empty_and_tiny_forms_work() {
        let key = Key::new(0, Mode::Major);
        for style in Style::ALL {
            for meter in Meter::ALL {
                assert!(
                    write(style, Mood::Calm, key, meter, &[], 1)
                        .per_beat
                        .is_empty()
                );
                let tiny = [
                    section(SectionKind::Verse, 0, 1, 0.5),
                    section(SectionKind::Chorus, 1, 1, 0.8),
                    section(SectionKind::Bridge, 2, 0, 0.5),
                    section(SectionKind::Outro, 2, 1, 0.2),
                ];
                let track = write(style, Mood::Calm, key, meter, &tiny, 1);
                assert_eq!(track.per_beat.len() as u32, 3 * meter.beats_per_bar());
                assert_eq!(track.per_beat.last().unwrap().root, 0);
            }
        }
    }

    #[test]
    fn roman_numerals_read_like_a_lead_sheet() {
        let major = Mode::Major;
        assert_eq!(
            roman_numeral(diatonic_chord(major, II, Colour::Seventh), major),
            "ii7"
        );
        assert_eq!(
            roman_numeral(diatonic_chord(major, V, Colour::Seventh), major),
            "V7"
        );
        assert_eq!(
            roman_numeral(diatonic_chord(major, I, Colour::Seventh), major),
            "Imaj7"
        );
        let minor = Mode::Minor;
        assert_eq!(
            roman_numeral(diatonic_chord(minor, VII, Colour::Triad), minor),
            "bVII"
        );
        assert_eq!(
            roman_numeral(diatonic_chord(minor, II, Colour::Seventh), minor),
            "iiø7"
        );
        assert_eq!(
            roman_numeral(borrowed_dominant(Colour::Seventh), minor),
            "V7"
        );
    }

    #[test]
    #[ignore = "prints example progressions for the docs"]
    fn print_examples() {
        let form = pop_form();
        for style in Style::ALL {
            for (mode, meter) in [
                (Mode::Major, Meter::FourFour),
                (Mode::Minor, Meter::FourFour),
                (Mode::Dorian, Meter::SixEight),
            ] {
                let track = write(style, Mood::Calm, Key::new(0, mode), meter, &form, 5);
                for s in &form[..3] {
                    let part = ChordTrack {
                        per_beat: (s.start_bar..s.end_bar())
                            .flat_map(|b| track.bar(meter, b).to_vec())
                            .collect(),
                    };
                    println!(
                        "{style} {mode:?} {meter} {:?}: {}",
                        s.kind,
                        describe_progression(&part, mode)
                    );
                }
            }
        }
    }
}
