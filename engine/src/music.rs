//! The symbolic song every stage passes along: tempo, meter, key, sections, chords per beat,
//! stems with their instruments, and notes on a sixteenth-note grid.
//!
//! Pitches inside a [`Song`] are key-relative (semitones above the key's reference tonic, see
//! [`Key::reference_tonic_midi`]), so one pattern serves all twelve keys; drum notes carry a
//! [`DrumClass`] index instead of a pitch. Absolute MIDI pitch appears only at the edges
//! (MIDI files, ABC import, rendering), through [`Key::to_midi`] and [`Key::to_relative`].

use serde::{Deserialize, Serialize};
use std::fmt;

/// Grid resolution: every meter is counted in sixteenth notes, four to a quarter note.
pub const STEPS_PER_QUARTER: u32 = 4;

/// Time signature. Tempo is always quarter notes per minute (the MIDI convention), so a bar of
/// 6/8 lasts as long as a bar of 3/4 at the same tempo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Meter {
    #[serde(rename = "4/4")]
    FourFour,
    #[serde(rename = "3/4")]
    ThreeFour,
    #[serde(rename = "6/8")]
    SixEight,
}

impl Meter {
    pub const ALL: [Meter; 3] = [Meter::FourFour, Meter::ThreeFour, Meter::SixEight];

    /// Sixteenth-note steps in one bar.
    pub fn steps_per_bar(self) -> u32 {
        match self {
            Meter::FourFour => 16,
            Meter::ThreeFour | Meter::SixEight => 12,
        }
    }

    /// Felt beats in a bar: 4, 3, and 2 (dotted quarters) for 6/8.
    pub fn beats_per_bar(self) -> u32 {
        match self {
            Meter::FourFour => 4,
            Meter::ThreeFour => 3,
            Meter::SixEight => 2,
        }
    }

    /// Steps in one felt beat.
    pub fn steps_per_beat(self) -> u32 {
        self.steps_per_bar() / self.beats_per_bar()
    }

    /// Quarter notes in one bar (what the tempo counts).
    pub fn quarters_per_bar(self) -> f64 {
        f64::from(self.steps_per_bar()) / f64::from(STEPS_PER_QUARTER)
    }

    /// Numerator and denominator as written in a score and in a MIDI time-signature event.
    pub fn signature(self) -> (u8, u8) {
        match self {
            Meter::FourFour => (4, 4),
            Meter::ThreeFour => (3, 4),
            Meter::SixEight => (6, 8),
        }
    }

    /// The meter with this signature, if refrain supports it.
    pub fn from_signature(numerator: u32, denominator: u32) -> Option<Meter> {
        match (numerator, denominator) {
            (4, 4) => Some(Meter::FourFour),
            (3, 4) => Some(Meter::ThreeFour),
            (6, 8) => Some(Meter::SixEight),
            _ => None,
        }
    }

    /// Parses "4/4", "3/4", "6/8" (also "C" for common time).
    pub fn parse(text: &str) -> Option<Meter> {
        match text.trim() {
            "C" | "c" => Some(Meter::FourFour),
            other => {
                let (n, d) = other.split_once('/')?;
                Meter::from_signature(n.trim().parse().ok()?, d.trim().parse().ok()?)
            }
        }
    }

    /// Seconds per bar at `bpm` quarter notes per minute.
    pub fn bar_seconds(self, bpm: f64) -> f64 {
        self.quarters_per_bar() * 60.0 / bpm
    }
}

impl fmt::Display for Meter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, d) = self.signature();
        write!(f, "{n}/{d}")
    }
}

/// Scale of a key. Minor is natural minor (aeolian); the church modes common in folk tunes
/// are kept as they are, since their scales differ from major and minor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Major,
    Minor,
    Dorian,
    Phrygian,
    Lydian,
    Mixolydian,
    Locrian,
}

impl Mode {
    pub const ALL: [Mode; 7] = [
        Mode::Major,
        Mode::Minor,
        Mode::Dorian,
        Mode::Phrygian,
        Mode::Lydian,
        Mode::Mixolydian,
        Mode::Locrian,
    ];

    /// Semitones above the tonic of the seven scale degrees.
    pub fn intervals(self) -> [u8; 7] {
        match self {
            Mode::Major => [0, 2, 4, 5, 7, 9, 11],
            Mode::Minor => [0, 2, 3, 5, 7, 8, 10],
            Mode::Dorian => [0, 2, 3, 5, 7, 9, 10],
            Mode::Phrygian => [0, 1, 3, 5, 7, 8, 10],
            Mode::Lydian => [0, 2, 4, 6, 7, 9, 11],
            Mode::Mixolydian => [0, 2, 4, 5, 7, 9, 10],
            Mode::Locrian => [0, 1, 3, 5, 6, 8, 10],
        }
    }

    /// Semitones from the tonic up to the relative major's tonic: the major key that shares
    /// this mode's key signature.
    pub fn relative_major_shift(self) -> u8 {
        match self {
            Mode::Major => 0,
            Mode::Minor => 3,
            Mode::Dorian => 10,
            Mode::Phrygian => 8,
            Mode::Lydian => 7,
            Mode::Mixolydian => 5,
            Mode::Locrian => 1,
        }
    }

    /// Whether the third above the tonic is minor (the mode "feels" minor).
    pub fn is_minor_like(self) -> bool {
        self.intervals()[2] == 3
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Major => "major",
            Mode::Minor => "minor",
            Mode::Dorian => "dorian",
            Mode::Phrygian => "phrygian",
            Mode::Lydian => "lydian",
            Mode::Mixolydian => "mixolydian",
            Mode::Locrian => "locrian",
        }
    }

    /// Parses full names and the usual abbreviations ("m", "min", "maj", "dor", "mix", ...).
    pub fn parse(text: &str) -> Option<Mode> {
        let t = text.trim().to_ascii_lowercase();
        Some(match t.as_str() {
            "" | "maj" | "major" | "ion" | "ionian" => Mode::Major,
            "m" | "min" | "minor" | "aeo" | "aeolian" => Mode::Minor,
            "dor" | "dorian" => Mode::Dorian,
            "phr" | "phrygian" => Mode::Phrygian,
            "lyd" | "lydian" => Mode::Lydian,
            "mix" | "mixolydian" => Mode::Mixolydian,
            "loc" | "locrian" => Mode::Locrian,
            _ => return None,
        })
    }
}

/// Names of the twelve pitch classes, spelled with sharps or flats.
const SHARP_NAMES: [&str; 12] = [
    "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B",
];
const FLAT_NAMES: [&str; 12] = [
    "C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B",
];

/// Parses a pitch-class name such as "C", "F#", "Bb", "eb" into 0..12.
pub fn parse_pitch_class(text: &str) -> Option<u8> {
    let mut chars = text.trim().chars();
    let letter = chars.next()?.to_ascii_uppercase();
    let base: i32 = match letter {
        'C' => 0,
        'D' => 2,
        'E' => 4,
        'F' => 5,
        'G' => 7,
        'A' => 9,
        'B' => 11,
        _ => return None,
    };
    let mut offset = 0i32;
    for c in chars {
        match c {
            '#' | '♯' => offset += 1,
            'b' | '♭' => offset -= 1,
            _ => return None,
        }
    }
    Some((base + offset).rem_euclid(12) as u8)
}

/// A key: tonic pitch class (0 = C) and mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Key {
    pub tonic: u8,
    pub mode: Mode,
}

impl Key {
    pub fn new(tonic: u8, mode: Mode) -> Key {
        Key {
            tonic: tonic % 12,
            mode,
        }
    }

    /// Parses "A minor", "D major", "F# dorian", "Bb", "Am", "C#m".
    pub fn parse(text: &str) -> Option<Key> {
        let t = text.trim();
        let split = t
            .char_indices()
            .skip(1)
            .find(|&(_, c)| !matches!(c, '#' | 'b' | '♯' | '♭'))
            .map_or(t.len(), |(i, _)| i);
        let (tonic, rest) = t.split_at(split);
        Some(Key::new(parse_pitch_class(tonic)?, Mode::parse(rest)?))
    }

    /// Absolute MIDI pitch of relative pitch 0: the tonic between F#3 (54) and F4 (65), so that
    /// each stem's relative range lands in a sensible register in every key.
    pub fn reference_tonic_midi(self) -> i32 {
        let pc = i32::from(self.tonic);
        if pc < 6 { 60 + pc } else { 48 + pc }
    }

    /// Key-relative pitch to absolute MIDI pitch (unclamped).
    pub fn to_midi(self, relative: i32) -> i32 {
        self.reference_tonic_midi() + relative
    }

    /// Absolute MIDI pitch to key-relative pitch.
    pub fn to_relative(self, midi: i32) -> i32 {
        midi - self.reference_tonic_midi()
    }

    /// The fewest semitones that turn a pitch relative to this key into the same pitch class
    /// relative to `other` (-6 < shift <= 6; register kept within a tritone).
    pub fn shift_to(self, other: Key) -> i32 {
        let up = (i32::from(self.tonic) - i32::from(other.tonic)).rem_euclid(12);
        if up > 6 { up - 12 } else { up }
    }

    /// Whether a key-relative pitch lies in this key's scale.
    pub fn contains_relative(self, relative: i32) -> bool {
        let pc = relative.rem_euclid(12) as u8;
        self.mode.intervals().contains(&pc)
    }

    /// Whether an absolute MIDI pitch lies in this key's scale.
    pub fn contains_midi(self, midi: i32) -> bool {
        self.contains_relative(self.to_relative(midi))
    }

    /// Uses flats for keys whose signatures have flats, sharps otherwise.
    fn prefers_flats(self) -> bool {
        // The relative major's tonic decides the key signature, and so the spelling.
        let relative_major = (self.tonic + self.mode.relative_major_shift()) % 12;
        matches!(relative_major, 5 | 10 | 3 | 8 | 1)
    }

    /// Name of a pitch class spelled for this key.
    pub fn pitch_class_name(self, pc: u8) -> &'static str {
        if self.prefers_flats() {
            FLAT_NAMES[usize::from(pc % 12)]
        } else {
            SHARP_NAMES[usize::from(pc % 12)]
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.pitch_class_name(self.tonic),
            self.mode.name()
        )
    }
}

/// The eight house styles. Each has its own progressions, grooves, bass idioms and voicings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    Lofi,
    Synthwave,
    Rock,
    Ambient,
    Cinematic,
    Chiptune,
    Jazz,
    Folk,
}

impl Style {
    pub const ALL: [Style; 8] = [
        Style::Lofi,
        Style::Synthwave,
        Style::Rock,
        Style::Ambient,
        Style::Cinematic,
        Style::Chiptune,
        Style::Jazz,
        Style::Folk,
    ];

    /// This style's place in [`Style::ALL`]: where per-style tables keep it.
    pub fn number(self) -> usize {
        Style::ALL.iter().position(|&s| s == self).unwrap_or(0)
    }

    pub fn name(self) -> &'static str {
        match self {
            Style::Lofi => "lofi",
            Style::Synthwave => "synthwave",
            Style::Rock => "rock",
            Style::Ambient => "ambient",
            Style::Cinematic => "cinematic",
            Style::Chiptune => "chiptune",
            Style::Jazz => "jazz",
            Style::Folk => "folk",
        }
    }

    /// Parses a style name or a common synonym ("lo-fi", "orchestral", "8-bit", ...).
    pub fn parse(text: &str) -> Option<Style> {
        let t = text
            .trim()
            .to_ascii_lowercase()
            .replace(['-', ' ', '_'], "");
        Some(match t.as_str() {
            "lofi" | "lofihiphop" | "chillhop" => Style::Lofi,
            "synthwave" | "retrowave" | "outrun" | "80s" => Style::Synthwave,
            "rock" | "indierock" | "poprock" => Style::Rock,
            "ambient" | "drone" => Style::Ambient,
            "cinematic" | "orchestral" | "epic" | "film" | "score" => Style::Cinematic,
            "chiptune" | "8bit" | "chip" => Style::Chiptune,
            "jazz" | "swing" | "bossa" => Style::Jazz,
            "folk" | "celtic" | "acoustic" => Style::Folk,
            _ => return None,
        })
    }
}

impl fmt::Display for Style {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Emotional colour asked for in a request; it shapes mode, tempo, density and energy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mood {
    Calm,
    Happy,
    Sad,
    Dark,
    Epic,
    Dreamy,
    Energetic,
    Tense,
    Romantic,
    Nostalgic,
}

impl Mood {
    pub const ALL: [Mood; 10] = [
        Mood::Calm,
        Mood::Happy,
        Mood::Sad,
        Mood::Dark,
        Mood::Epic,
        Mood::Dreamy,
        Mood::Energetic,
        Mood::Tense,
        Mood::Romantic,
        Mood::Nostalgic,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mood::Calm => "calm",
            Mood::Happy => "happy",
            Mood::Sad => "sad",
            Mood::Dark => "dark",
            Mood::Epic => "epic",
            Mood::Dreamy => "dreamy",
            Mood::Energetic => "energetic",
            Mood::Tense => "tense",
            Mood::Romantic => "romantic",
            Mood::Nostalgic => "nostalgic",
        }
    }

    pub fn parse(text: &str) -> Option<Mood> {
        let t = text.trim().to_ascii_lowercase();
        Mood::ALL.into_iter().find(|m| m.name() == t)
    }
}

impl fmt::Display for Mood {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The five stems of every song.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stem {
    Drums,
    Bass,
    Chords,
    Lead,
    Texture,
}

/// What a stem does in the arrangement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Rhythm,
    Foundation,
    Harmony,
    Melody,
    Colour,
}

impl Stem {
    pub const ALL: [Stem; 5] = [
        Stem::Drums,
        Stem::Bass,
        Stem::Chords,
        Stem::Lead,
        Stem::Texture,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stem::Drums => "drums",
            Stem::Bass => "bass",
            Stem::Chords => "chords",
            Stem::Lead => "lead",
            Stem::Texture => "texture",
        }
    }

    pub fn parse(text: &str) -> Option<Stem> {
        let t = text.trim().to_ascii_lowercase();
        Stem::ALL.into_iter().find(|s| s.name() == t)
    }

    pub fn role(self) -> Role {
        match self {
            Stem::Drums => Role::Rhythm,
            Stem::Bass => Role::Foundation,
            Stem::Chords => Role::Harmony,
            Stem::Lead => Role::Melody,
            Stem::Texture => Role::Colour,
        }
    }

    pub fn is_pitched(self) -> bool {
        self != Stem::Drums
    }

    /// Rows of this stem's planes: lowest key-relative pitch and row count. Drums use one row
    /// per [`DrumClass`].
    pub fn pitch_range(self) -> (i32, u32) {
        match self {
            Stem::Drums => (0, DrumClass::ALL.len() as u32),
            Stem::Bass => (-36, 48),
            Stem::Chords => (-18, 48),
            Stem::Lead => (-12, 48),
            Stem::Texture => (-12, 48),
        }
    }

    /// Moves a key-relative pitch by octaves into this stem's plane range (drums unchanged).
    pub fn fold_into_range(self, relative: i32) -> i32 {
        if !self.is_pitched() {
            return relative;
        }
        let (low, rows) = self.pitch_range();
        let high = low + rows as i32 - 1;
        let mut p = relative;
        while p < low {
            p += 12;
        }
        while p > high {
            p -= 12;
        }
        p
    }
}

impl fmt::Display for Stem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Drum voices: a note on the drum stem has `pitch` = the class index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrumClass {
    Kick,
    Snare,
    ClosedHat,
    OpenHat,
    Clap,
    LowTom,
    MidTom,
    HighTom,
    Crash,
    Ride,
    Perc,
}

impl DrumClass {
    pub const ALL: [DrumClass; 11] = [
        DrumClass::Kick,
        DrumClass::Snare,
        DrumClass::ClosedHat,
        DrumClass::OpenHat,
        DrumClass::Clap,
        DrumClass::LowTom,
        DrumClass::MidTom,
        DrumClass::HighTom,
        DrumClass::Crash,
        DrumClass::Ride,
        DrumClass::Perc,
    ];

    /// The plane row / note pitch of this class.
    pub fn index(self) -> i32 {
        DrumClass::ALL.iter().position(|&c| c == self).unwrap_or(0) as i32
    }

    pub fn from_index(index: i32) -> Option<DrumClass> {
        usize::try_from(index)
            .ok()
            .and_then(|i| DrumClass::ALL.get(i).copied())
    }

    /// General MIDI percussion key written for this class.
    pub fn gm_note(self) -> u8 {
        match self {
            DrumClass::Kick => 36,
            DrumClass::Snare => 38,
            DrumClass::ClosedHat => 42,
            DrumClass::OpenHat => 46,
            DrumClass::Clap => 39,
            DrumClass::LowTom => 45,
            DrumClass::MidTom => 47,
            DrumClass::HighTom => 50,
            DrumClass::Crash => 49,
            DrumClass::Ride => 51,
            DrumClass::Perc => 37,
        }
    }

    /// Nearest class for any General MIDI percussion key (35..=81), `None` outside that map.
    pub fn from_gm_note(note: u8) -> Option<DrumClass> {
        Some(match note {
            35 | 36 => DrumClass::Kick,
            38 | 40 => DrumClass::Snare,
            37 => DrumClass::Perc,
            39 => DrumClass::Clap,
            42 | 44 => DrumClass::ClosedHat,
            46 => DrumClass::OpenHat,
            41 | 43 | 45 => DrumClass::LowTom,
            47 | 48 => DrumClass::MidTom,
            50 => DrumClass::HighTom,
            49 | 52 | 55 | 57 => DrumClass::Crash,
            51 | 53 | 59 => DrumClass::Ride,
            54 | 56 | 58 | 60..=81 => DrumClass::Perc,
            _ => return None,
        })
    }
}

/// Sound source of a stem. Built-in synth voices, each with the General MIDI program written
/// to song.mid so a DAW picks a fitting patch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Instrument {
    DrumKit,
    ChipNoiseDrums,
    SubBass,
    AnalogBass,
    FingerBass,
    UprightBass,
    ChipTriangleBass,
    ElectricPiano,
    Piano,
    Organ,
    WarmPad,
    Strings,
    CleanGuitar,
    OverdriveGuitar,
    SawLead,
    SquareLead,
    ChipPulseLead,
    Flute,
    Fiddle,
    Horn,
    Vibraphone,
    Bell,
    PluckArp,
    Choir,
}

impl Instrument {
    pub fn name(self) -> &'static str {
        match self {
            Instrument::DrumKit => "drum kit",
            Instrument::ChipNoiseDrums => "chip noise drums",
            Instrument::SubBass => "sub bass",
            Instrument::AnalogBass => "analog bass",
            Instrument::FingerBass => "finger bass",
            Instrument::UprightBass => "upright bass",
            Instrument::ChipTriangleBass => "chip triangle bass",
            Instrument::ElectricPiano => "electric piano",
            Instrument::Piano => "piano",
            Instrument::Organ => "organ",
            Instrument::WarmPad => "warm pad",
            Instrument::Strings => "strings",
            Instrument::CleanGuitar => "clean guitar",
            Instrument::OverdriveGuitar => "overdrive guitar",
            Instrument::SawLead => "saw lead",
            Instrument::SquareLead => "square lead",
            Instrument::ChipPulseLead => "chip pulse lead",
            Instrument::Flute => "flute",
            Instrument::Fiddle => "fiddle",
            Instrument::Horn => "horn",
            Instrument::Vibraphone => "vibraphone",
            Instrument::Bell => "bell",
            Instrument::PluckArp => "pluck arp",
            Instrument::Choir => "choir",
        }
    }

    /// General MIDI program (0-based). Drum kits report 0 and play on channel 10.
    pub fn gm_program(self) -> u8 {
        match self {
            Instrument::DrumKit | Instrument::ChipNoiseDrums => 0,
            Instrument::SubBass => 38,
            Instrument::AnalogBass => 39,
            Instrument::FingerBass => 33,
            Instrument::UprightBass => 32,
            Instrument::ChipTriangleBass => 38,
            Instrument::ElectricPiano => 4,
            Instrument::Piano => 0,
            Instrument::Organ => 16,
            Instrument::WarmPad => 89,
            Instrument::Strings => 48,
            Instrument::CleanGuitar => 27,
            Instrument::OverdriveGuitar => 29,
            Instrument::SawLead => 81,
            Instrument::SquareLead => 80,
            Instrument::ChipPulseLead => 80,
            Instrument::Flute => 73,
            Instrument::Fiddle => 40,
            Instrument::Horn => 60,
            Instrument::Vibraphone => 11,
            Instrument::Bell => 14,
            Instrument::PluckArp => 84,
            Instrument::Choir => 52,
        }
    }

    /// A built-in instrument for a General MIDI program, used when importing MIDI.
    pub fn from_gm_program(program: u8, stem: Stem) -> Instrument {
        if stem == Stem::Drums {
            return Instrument::DrumKit;
        }
        match program {
            0..=3 => Instrument::Piano,
            4..=7 => Instrument::ElectricPiano,
            8..=15 => Instrument::Vibraphone,
            16..=23 => Instrument::Organ,
            24..=28 => Instrument::CleanGuitar,
            29..=31 => Instrument::OverdriveGuitar,
            32 => Instrument::UprightBass,
            33..=37 => Instrument::FingerBass,
            38..=39 => Instrument::AnalogBass,
            40..=47 => Instrument::Fiddle,
            48..=51 | 55 => Instrument::Strings,
            52..=54 => Instrument::Choir,
            56..=71 => Instrument::Horn,
            72..=79 => Instrument::Flute,
            80 => Instrument::SquareLead,
            81..=87 => Instrument::SawLead,
            88..=95 => Instrument::WarmPad,
            _ => Instrument::Bell,
        }
    }
}

/// Chord quality, as intervals above the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChordQuality {
    Major,
    Minor,
    Diminished,
    Augmented,
    Sus2,
    Sus4,
    Major7,
    Minor7,
    Dominant7,
    HalfDiminished7,
    Major6,
    Minor6,
    Add9,
    Minor9,
    Major9,
    Dominant9,
}

impl ChordQuality {
    pub const ALL: [ChordQuality; 16] = [
        ChordQuality::Major,
        ChordQuality::Minor,
        ChordQuality::Diminished,
        ChordQuality::Augmented,
        ChordQuality::Sus2,
        ChordQuality::Sus4,
        ChordQuality::Major7,
        ChordQuality::Minor7,
        ChordQuality::Dominant7,
        ChordQuality::HalfDiminished7,
        ChordQuality::Major6,
        ChordQuality::Minor6,
        ChordQuality::Add9,
        ChordQuality::Minor9,
        ChordQuality::Major9,
        ChordQuality::Dominant9,
    ];

    /// Semitones above the root, root first.
    pub fn intervals(self) -> &'static [u8] {
        match self {
            ChordQuality::Major => &[0, 4, 7],
            ChordQuality::Minor => &[0, 3, 7],
            ChordQuality::Diminished => &[0, 3, 6],
            ChordQuality::Augmented => &[0, 4, 8],
            ChordQuality::Sus2 => &[0, 2, 7],
            ChordQuality::Sus4 => &[0, 5, 7],
            ChordQuality::Major7 => &[0, 4, 7, 11],
            ChordQuality::Minor7 => &[0, 3, 7, 10],
            ChordQuality::Dominant7 => &[0, 4, 7, 10],
            ChordQuality::HalfDiminished7 => &[0, 3, 6, 10],
            ChordQuality::Major6 => &[0, 4, 7, 9],
            ChordQuality::Minor6 => &[0, 3, 7, 9],
            ChordQuality::Add9 => &[0, 4, 7, 14],
            ChordQuality::Minor9 => &[0, 3, 7, 10, 14],
            ChordQuality::Major9 => &[0, 4, 7, 11, 14],
            ChordQuality::Dominant9 => &[0, 4, 7, 10, 14],
        }
    }

    /// Suffix in a chord symbol ("", "m", "maj7", ...).
    pub fn symbol(self) -> &'static str {
        match self {
            ChordQuality::Major => "",
            ChordQuality::Minor => "m",
            ChordQuality::Diminished => "dim",
            ChordQuality::Augmented => "aug",
            ChordQuality::Sus2 => "sus2",
            ChordQuality::Sus4 => "sus4",
            ChordQuality::Major7 => "maj7",
            ChordQuality::Minor7 => "m7",
            ChordQuality::Dominant7 => "7",
            ChordQuality::HalfDiminished7 => "m7b5",
            ChordQuality::Major6 => "6",
            ChordQuality::Minor6 => "m6",
            ChordQuality::Add9 => "add9",
            ChordQuality::Minor9 => "m9",
            ChordQuality::Major9 => "maj9",
            ChordQuality::Dominant9 => "9",
        }
    }

    /// The plain triad this quality extends (for voicing and labelling).
    pub fn triad(self) -> ChordQuality {
        match self {
            ChordQuality::Major
            | ChordQuality::Major7
            | ChordQuality::Dominant7
            | ChordQuality::Major6
            | ChordQuality::Add9
            | ChordQuality::Major9
            | ChordQuality::Dominant9 => ChordQuality::Major,
            ChordQuality::Minor
            | ChordQuality::Minor7
            | ChordQuality::Minor6
            | ChordQuality::Minor9 => ChordQuality::Minor,
            ChordQuality::Diminished | ChordQuality::HalfDiminished7 => ChordQuality::Diminished,
            other => other,
        }
    }
}

/// A chord relative to the key: `root` is semitones above the tonic (0..12).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Chord {
    pub root: u8,
    pub quality: ChordQuality,
}

impl Chord {
    pub fn new(root: u8, quality: ChordQuality) -> Chord {
        Chord {
            root: root % 12,
            quality,
        }
    }

    /// Key-relative pitch classes (0..12) of the chord tones, root first.
    pub fn pitch_classes(self) -> Vec<u8> {
        self.quality
            .intervals()
            .iter()
            .map(|&i| (self.root + i) % 12)
            .collect()
    }

    /// Whether a key-relative pitch is one of the chord's tones.
    pub fn contains_relative(self, relative: i32) -> bool {
        let pc = relative.rem_euclid(12) as u8;
        self.pitch_classes().contains(&pc)
    }

    /// Chord symbol in a key, e.g. "Bbmaj7".
    pub fn symbol(self, key: Key) -> String {
        format!(
            "{}{}",
            key.pitch_class_name((key.tonic + self.root) % 12),
            self.quality.symbol()
        )
    }
}

/// One chord per felt beat over the whole song (`beats_per_bar` entries a bar).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChordTrack {
    pub per_beat: Vec<Chord>,
}

impl ChordTrack {
    /// How many times the chord changes from one beat to the next.
    pub fn changes(&self) -> usize {
        self.per_beat.windows(2).filter(|w| w[0] != w[1]).count()
    }

    /// The same chords with their key-relative roots told from key `from` in key `to`.
    pub fn rekeyed(&self, from: Key, to: Key) -> ChordTrack {
        let shift = from.shift_to(to).rem_euclid(12) as u8;
        ChordTrack {
            per_beat: self
                .per_beat
                .iter()
                .map(|c| Chord::new(c.root + shift, c.quality))
                .collect(),
        }
    }

    /// Chord sounding at a step of the song.
    pub fn at_step(&self, meter: Meter, step: u32) -> Option<Chord> {
        let beat = (step / meter.steps_per_beat()) as usize;
        self.per_beat.get(beat).copied()
    }

    /// The chords of one bar, one per beat.
    pub fn bar(&self, meter: Meter, bar: u32) -> &[Chord] {
        let per_bar = meter.beats_per_bar() as usize;
        let start = (bar as usize * per_bar).min(self.per_beat.len());
        let end = (start + per_bar).min(self.per_beat.len());
        &self.per_beat[start..end]
    }
}

/// Form parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SectionKind {
    Intro,
    Verse,
    Chorus,
    Bridge,
    Outro,
}

impl SectionKind {
    pub const ALL: [SectionKind; 5] = [
        SectionKind::Intro,
        SectionKind::Verse,
        SectionKind::Chorus,
        SectionKind::Bridge,
        SectionKind::Outro,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Intro => "intro",
            SectionKind::Verse => "verse",
            SectionKind::Chorus => "chorus",
            SectionKind::Bridge => "bridge",
            SectionKind::Outro => "outro",
        }
    }
}

/// A stretch of whole bars with one function in the form. `energy` is 0..=1 and drives
/// density, dynamics and which stems play.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Section {
    pub kind: SectionKind,
    pub start_bar: u32,
    pub bars: u32,
    pub energy: f32,
}

impl Section {
    pub fn end_bar(&self) -> u32 {
        self.start_bar + self.bars
    }
}

/// A note on the grid. `start` counts steps from the start of the song; `pitch` is
/// key-relative for pitched stems and a [`DrumClass`] index on the drum stem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Note {
    pub start: u32,
    pub duration: u32,
    pub pitch: i32,
    pub velocity: u8,
}

impl Note {
    pub fn end(&self) -> u32 {
        self.start + self.duration
    }
}

/// One stem of a song with its instrument and notes (sorted by start, then pitch).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StemTrack {
    pub stem: Stem,
    pub instrument: Instrument,
    pub notes: Vec<Note>,
}

impl StemTrack {
    pub fn new(stem: Stem, instrument: Instrument) -> StemTrack {
        StemTrack {
            stem,
            instrument,
            notes: Vec::new(),
        }
    }

    /// Sorts notes and removes exact duplicates, keeping the track canonical.
    pub fn normalise(&mut self) {
        self.notes.sort();
        self.notes
            .dedup_by(|a, b| a.start == b.start && a.pitch == b.pitch);
    }
}

/// A whole symbolic song: everything needed to write MIDI or render audio.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Song {
    pub style: Style,
    pub tempo_bpm: f64,
    pub meter: Meter,
    pub key: Key,
    /// Bars of music; sections tile `0..bars`.
    pub bars: u32,
    pub sections: Vec<Section>,
    pub chords: ChordTrack,
    pub stems: Vec<StemTrack>,
}

impl Song {
    /// The same music told in `key`: pitched notes and chords re-expressed relative to it
    /// ([`Key::shift_to`]: every pitch class kept, the register within a tritone; a note the
    /// shift takes out of its stem's range moves an octave back into it; drums untouched).
    pub fn rekeyed(mut self, key: Key) -> Song {
        let shift = self.key.shift_to(key);
        self.chords = self.chords.rekeyed(self.key, key);
        for track in &mut self.stems {
            if track.stem.is_pitched() {
                for note in &mut track.notes {
                    note.pitch = track.stem.fold_into_range(note.pitch + shift);
                }
            }
        }
        self.key = key;
        self
    }

    pub fn steps(&self) -> u32 {
        self.bars * self.meter.steps_per_bar()
    }

    pub fn stem(&self, stem: Stem) -> Option<&StemTrack> {
        self.stems.iter().find(|t| t.stem == stem)
    }

    pub fn stem_mut(&mut self, stem: Stem) -> Option<&mut StemTrack> {
        self.stems.iter_mut().find(|t| t.stem == stem)
    }

    /// Seconds per grid step.
    pub fn step_seconds(&self) -> f64 {
        60.0 / self.tempo_bpm / f64::from(STEPS_PER_QUARTER)
    }

    /// The section a bar belongs to.
    pub fn section_at(&self, bar: u32) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| bar >= s.start_bar && bar < s.end_bar())
    }

    /// Bars `bars` of the song as a song of their own, starting at bar 0: the notes that
    /// start inside (cut at the excerpt's end), the chords and the sections over them.
    pub fn excerpt(&self, bars: std::ops::Range<u32>) -> Song {
        let bars = bars.start.min(self.bars)..bars.end.min(self.bars);
        let steps = self.meter.steps_per_bar();
        let (from, to) = (bars.start * steps, bars.end * steps);
        let sections = self
            .sections
            .iter()
            .filter(|s| s.start_bar < bars.end && s.end_bar() > bars.start)
            .map(|s| {
                let start = s.start_bar.max(bars.start);
                Section {
                    start_bar: start - bars.start,
                    bars: s.end_bar().min(bars.end) - start,
                    ..*s
                }
            })
            .collect();
        let stems = self
            .stems
            .iter()
            .map(|track| StemTrack {
                notes: track
                    .notes
                    .iter()
                    .filter(|n| n.start >= from && n.start < to)
                    .map(|n| Note {
                        start: n.start - from,
                        duration: n.duration.min(to - n.start),
                        ..*n
                    })
                    .collect(),
                ..track.clone()
            })
            .collect();
        Song {
            bars: bars.len() as u32,
            sections,
            chords: ChordTrack {
                per_beat: (bars.start..bars.end)
                    .flat_map(|b| self.chords.bar(self.meter, b).iter().copied())
                    .collect(),
            },
            stems,
            ..self.clone_conditions()
        }
    }

    /// The song's style, tempo, meter and key, with no bars.
    fn clone_conditions(&self) -> Song {
        Song {
            style: self.style,
            tempo_bpm: self.tempo_bpm,
            meter: self.meter,
            key: self.key,
            bars: 0,
            sections: Vec::new(),
            chords: ChordTrack::default(),
            stems: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_keeps_the_notes_chords_and_sections_of_its_bars() {
        let chord = |root| Chord::new(root, ChordQuality::Major);
        let song = Song {
            style: Style::Lofi,
            tempo_bpm: 100.0,
            meter: Meter::ThreeFour,
            key: Key::new(0, Mode::Major),
            bars: 4,
            sections: vec![
                Section {
                    kind: SectionKind::Verse,
                    start_bar: 0,
                    bars: 2,
                    energy: 0.5,
                },
                Section {
                    kind: SectionKind::Chorus,
                    start_bar: 2,
                    bars: 2,
                    energy: 0.9,
                },
            ],
            chords: ChordTrack {
                per_beat: (0..12).map(|b| chord(b as u8)).collect(),
            },
            stems: vec![StemTrack {
                stem: Stem::Lead,
                instrument: Instrument::SubBass,
                notes: vec![
                    Note {
                        start: 11,
                        duration: 4,
                        pitch: 0,
                        velocity: 90,
                    },
                    Note {
                        start: 12,
                        duration: 30,
                        pitch: 2,
                        velocity: 90,
                    },
                    Note {
                        start: 36,
                        duration: 2,
                        pitch: 4,
                        velocity: 90,
                    },
                ],
            }],
        };
        let excerpt = song.excerpt(1..3);
        assert_eq!(excerpt.bars, 2);
        assert_eq!(
            excerpt.chords.per_beat,
            (3..9).map(|b| chord(b as u8)).collect::<Vec<_>>()
        );
        assert_eq!(
            excerpt
                .sections
                .iter()
                .map(|s| (s.kind, s.start_bar, s.bars))
                .collect::<Vec<_>>(),
            [(SectionKind::Verse, 0, 1), (SectionKind::Chorus, 1, 1)]
        );
        assert_eq!(
            excerpt.stems[0].notes,
            [Note {
                start: 0,
                duration: 24,
                pitch: 2,
                velocity: 90
            }]
        );
    }

    #[test]
    fn a_rekeyed_song_keeps_its_pitch_classes_drums_and_scale() {
        let note = |pitch| Note {
            start: 0,
            duration: 4,
            pitch,
            velocity: 90,
        };
        let g_locrian = Key::new(7, Mode::Locrian);
        let f_minor = Key::new(5, Mode::Minor);
        let song = Song {
            style: Style::Rock,
            tempo_bpm: 120.0,
            meter: Meter::FourFour,
            key: g_locrian,
            bars: 1,
            sections: Vec::new(),
            chords: ChordTrack {
                per_beat: vec![Chord::new(0, ChordQuality::Diminished); 4],
            },
            stems: vec![
                StemTrack {
                    stem: Stem::Drums,
                    instrument: Instrument::SubBass,
                    notes: vec![note(0), note(3)],
                },
                StemTrack {
                    stem: Stem::Lead,
                    instrument: Instrument::SubBass,
                    // The tonic, the flat fifth, and the flat seventh near the top of the lead's range.
                    notes: vec![note(0), note(6), note(34)],
                },
            ],
        };
        let told = song.clone().rekeyed(f_minor);
        assert_eq!(g_locrian.shift_to(f_minor), 2);
        assert_eq!(told.key, f_minor);
        assert_eq!(told.stems[0].notes, song.stems[0].notes, "drums untouched");
        let lead: Vec<i32> = told.stems[1].notes.iter().map(|n| n.pitch).collect();
        // G is F's second, Db its minor sixth; 36 leaves the range and folds to 24.
        assert_eq!(lead, [2, 8, 24]);
        assert!(lead.iter().all(|&p| f_minor.contains_relative(p)));
        assert_eq!(
            told.chords.per_beat[0],
            Chord::new(2, ChordQuality::Diminished)
        );
        let back = told.rekeyed(g_locrian);
        assert_eq!(back.chords, song.chords);
        let back_lead: Vec<i32> = back.stems[1].notes.iter().map(|n| n.pitch).collect();
        assert_eq!(back_lead, [0, 6, 22]);
    }

    #[test]
    fn keys_parse_in_the_usual_spellings() {
        assert_eq!(Key::parse("A minor"), Some(Key::new(9, Mode::Minor)));
        assert_eq!(Key::parse("D major"), Some(Key::new(2, Mode::Major)));
        assert_eq!(Key::parse("F# dorian"), Some(Key::new(6, Mode::Dorian)));
        assert_eq!(Key::parse("Bb"), Some(Key::new(10, Mode::Major)));
        assert_eq!(Key::parse("C#m"), Some(Key::new(1, Mode::Minor)));
        assert_eq!(Key::parse("H major"), None);
        assert_eq!(Key::parse(""), None);
    }

    #[test]
    fn keys_spell_with_flats_or_sharps_as_their_signature_does() {
        assert_eq!(Key::new(10, Mode::Major).to_string(), "Bb major");
        assert_eq!(Key::new(2, Mode::Minor).to_string(), "D minor");
        assert_eq!(Key::new(6, Mode::Minor).to_string(), "F# minor");
        assert_eq!(Key::new(5, Mode::Minor).to_string(), "F minor");
        assert_eq!(Key::new(1, Mode::Minor).to_string(), "C# minor");
    }

    #[test]
    fn relative_pitch_round_trips_and_keeps_the_tonic_near_middle_c() {
        for tonic in 0..12 {
            let key = Key::new(tonic, Mode::Major);
            let reference = key.reference_tonic_midi();
            assert!((54..=65).contains(&reference));
            assert_eq!(reference.rem_euclid(12) as u8, tonic);
            for midi in 0..128 {
                assert_eq!(key.to_midi(key.to_relative(midi)), midi);
            }
        }
    }

    #[test]
    fn scale_membership_follows_the_mode() {
        let d_major = Key::parse("D major").unwrap();
        assert!(d_major.contains_midi(66)); // F#
        assert!(!d_major.contains_midi(65)); // F
        let a_minor = Key::parse("A minor").unwrap();
        assert!(a_minor.contains_midi(60)); // C
        assert!(!a_minor.contains_midi(68)); // G#: harmonic minor's leading note is outside
    }

    #[test]
    fn meters_count_sixteenths() {
        assert_eq!(Meter::parse("6/8"), Some(Meter::SixEight));
        assert_eq!(Meter::parse("C"), Some(Meter::FourFour));
        assert_eq!(Meter::parse("5/4"), None);
        assert_eq!(Meter::SixEight.steps_per_beat(), 6);
        assert!((Meter::FourFour.bar_seconds(100.0) - 2.4).abs() < 1e-12);
    }

    #[test]
    fn drum_classes_map_to_general_midi_and_back() {
        for class in DrumClass::ALL {
            assert_eq!(DrumClass::from_gm_note(class.gm_note()), Some(class));
            assert_eq!(DrumClass::from_index(class.index()), Some(class));
        }
    }

    #[test]
    fn folding_keeps_pitch_class_and_lands_in_range() {
        for stem in [Stem::Bass, Stem::Chords, Stem::Lead, Stem::Texture] {
            let (low, rows) = stem.pitch_range();
            for p in -80..80 {
                let f = stem.fold_into_range(p);
                assert!(f >= low && f < low + rows as i32);
                assert_eq!(f.rem_euclid(12), p.rem_euclid(12));
            }
        }
    }
}
