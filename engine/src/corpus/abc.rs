//! A parser for the subset of ABC notation used by the folk collections: header fields,
//! notes, rests, accidentals, ties, broken rhythm, tuplets, repeats and endings.
//!
//! The output is a tune as played (repeats and endings expanded) on the sixteenth-note grid.
//! Anything the grid or refrain's meters cannot hold is either approximated (and counted) or
//! the tune is skipped with a reason; the parser never panics on hostile text.

use crate::music::{Key, Meter, Mode, Note};
use std::collections::BTreeMap;

/// Ticks in a whole note: divisible by 2^10, 3^2, 5 and 7, so that every length written in the
/// collections (down to 1/256 and inside triplets, quintuplets, septuplets) is exact.
const WHOLE: i64 = 322_560;
/// Ticks in one grid step (a sixteenth note).
const STEP: i64 = WHOLE / 16;
/// Velocity of a note that starts a bar, and of every other note.
const DOWNBEAT_VELOCITY: u8 = 108;
const VELOCITY: u8 = 96;
/// Bounds on a usable tune after expansion.
const MIN_BARS: u32 = 4;
const MAX_BARS: u32 = 256;
/// Bars as written, and passes through them while expanding repeats, beyond which the text is
/// treated as garbage rather than music.
const MAX_WRITTEN_BARS: usize = 4096;
const MAX_PLAYED_BARS: usize = 8192;

/// One tune parsed from ABC, as played.
#[derive(Clone, Debug, PartialEq)]
pub struct AbcTune {
    /// X: reference number.
    pub number: u32,
    /// First T: line.
    pub title: String,
    /// Z: transcriber, if the tune names one.
    pub transcriber: Option<String>,
    pub meter: Meter,
    /// The tune's first key; later key changes only move the accidentals.
    pub key: Key,
    /// Quarter notes per minute from Q:, if given.
    pub tempo_bpm: Option<f64>,
    /// Bars after expansion, a pickup bar included.
    pub bars: u32,
    /// Key-relative melody, monophonic, sorted by start.
    pub melody: Vec<Note>,
    /// What was approximated while reading this tune, by reason.
    pub approximations: BTreeMap<String, u64>,
}

/// Why a tune was left out; the text is the reason counted in the corpus report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TuneSkip(pub String);

impl TuneSkip {
    fn new(reason: impl Into<String>) -> TuneSkip {
        TuneSkip(reason.into())
    }
}

/// One tune's text inside a file, from its X: line to the next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TuneText<'a> {
    /// The X: number, if it reads as one.
    pub number: Option<u32>,
    pub text: &'a str,
}

/// Splits a file into its free-text header (before the first X:) and its tunes.
pub fn split_tunes(file: &str) -> (&str, Vec<TuneText<'_>>) {
    let mut starts = Vec::new();
    let mut offset = 0;
    for line in file.split_inclusive('\n') {
        if line.trim_start().starts_with("X:") {
            starts.push(offset);
        }
        offset += line.len();
    }
    let header = &file[..starts.first().copied().unwrap_or(file.len())];
    let mut tunes = Vec::with_capacity(starts.len());
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(file.len());
        let text = file[start..end].trim_end();
        let number = text
            .lines()
            .next()
            .and_then(|l| l.trim_start().strip_prefix("X:"))
            .map(strip_comment)
            .and_then(|n| n.trim().parse().ok());
        tunes.push(TuneText { number, text });
    }
    (header, tunes)
}

fn strip_comment(line: &str) -> &str {
    match line.find('%') {
        // `\%` is an escaped percent sign in text fields, not a comment.
        Some(i) if i > 0 && line.as_bytes()[i - 1] == b'\\' => line,
        Some(i) => &line[..i],
        None => line,
    }
}

/// A fraction of a whole note (or a meter), kept small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fraction {
    num: i64,
    den: i64,
}

impl Fraction {
    fn parse(text: &str) -> Option<Fraction> {
        let (n, d) = text.trim().split_once('/')?;
        let num: i64 = n.trim().parse().ok()?;
        let den: i64 = d.trim().parse().ok()?;
        ((1..=64).contains(&num) && (1..=512).contains(&den)).then_some(Fraction { num, den })
    }

    fn ticks(self) -> i64 {
        WHOLE * self.num / self.den
    }
}

/// The written meter and the grid meter it maps to.
#[derive(Clone, Copy, Debug)]
struct WrittenMeter {
    bar: Fraction,
    grid: Meter,
}

fn parse_meter(text: &str) -> Result<WrittenMeter, TuneSkip> {
    let t = text.trim();
    let bar = match t {
        "C" => Some(Fraction { num: 4, den: 4 }),
        "C|" => Some(Fraction { num: 2, den: 2 }),
        other => Fraction::parse(other),
    };
    let unsupported = || TuneSkip::new(format!("unsupported meter {t}"));
    let bar = bar.ok_or_else(unsupported)?;
    let grid = match (bar.num, bar.den) {
        (4, 4) | (2, 4) | (2, 2) => Meter::FourFour,
        (3, 4) => Meter::ThreeFour,
        (6, 8) | (3, 8) => Meter::SixEight,
        _ => return Err(unsupported()),
    };
    Ok(WrittenMeter { bar, grid })
}

/// Semitone offset for each letter C D E F G A B from a key signature.
type Signature = [i32; 7];

fn letter_index(letter: char) -> Option<usize> {
    "CDEFGAB".find(letter.to_ascii_uppercase())
}

const LETTER_SEMITONES: [i32; 7] = [0, 2, 4, 5, 7, 9, 11];

/// A parsed K: field: the key refrain records and the signature that spells the notes.
fn parse_key(text: &str) -> Result<(Key, Signature), TuneSkip> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    if lower.starts_with("hp") {
        return Err(TuneSkip::new("highland pipes key (K:HP)"));
    }
    if lower.is_empty() || lower.starts_with("none") {
        return Err(TuneSkip::new("no key signature (K:none)"));
    }
    let cannot = || TuneSkip::new("key signature cannot be mapped");
    let mut chars = t.chars().peekable();
    let letter = chars.next().ok_or_else(cannot)?;
    let index = letter_index(letter).filter(|_| letter.is_ascii_uppercase());
    let index = index.ok_or_else(cannot)?;
    let mut accidental = 0i32;
    while let Some(&c) = chars.peek() {
        match c {
            '#' => accidental += 1,
            'b' => accidental -= 1,
            _ => break,
        }
        chars.next();
    }
    let rest: String = chars.collect();
    let mut words = rest.split_whitespace().peekable();
    // The mode may follow the tonic directly ("Dmix") or after a space ("E Minor"); ABC
    // reads only its first three letters, in any case.
    let mut mode = Mode::Major;
    if let Some(word) = words.peek()
        && word.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && !word.contains('=')
    {
        let w = word.to_ascii_lowercase();
        let abbreviation: String = w.chars().take(3).collect();
        mode = match abbreviation.as_str() {
            "m" | "min" | "aeo" => Mode::Minor,
            "maj" | "ion" => Mode::Major,
            "mix" => Mode::Mixolydian,
            "dor" => Mode::Dorian,
            "phr" => Mode::Phrygian,
            "lyd" => Mode::Lydian,
            "loc" => Mode::Locrian,
            _ => return Err(cannot()),
        };
        // A word like "mixm" is neither a mode nor a mode's full name.
        let full = [
            "minor",
            "major",
            "mixolydian",
            "dorian",
            "phrygian",
            "lydian",
            "locrian",
        ];
        let known = w == "m"
            || full
                .iter()
                .any(|f| f.starts_with(w.as_str()) && w.len() >= 3)
            || ["aeolian", "ionian"]
                .iter()
                .any(|f| f.starts_with(w.as_str()) && w.len() >= 3);
        if !known {
            return Err(cannot());
        }
        words.next();
    }
    // Position on the circle of fifths: letters F C G D A E B sit at -1..=5, each sharp adds
    // seven, and each mode sits a fixed number of fifths from its relative major.
    let letter_fifths = [0, 2, 4, -1, 1, 3, 5][index];
    let mode_shift = match mode {
        Mode::Lydian => 1,
        Mode::Major => 0,
        Mode::Mixolydian => -1,
        Mode::Dorian => -2,
        Mode::Minor => -3,
        Mode::Phrygian => -4,
        Mode::Locrian => -5,
    };
    let sharps = letter_fifths + 7 * accidental + mode_shift;
    if !(-7..=7).contains(&sharps) {
        return Err(cannot());
    }
    let mut signature: Signature = [0; 7];
    const SHARP_ORDER: [usize; 7] = [3, 0, 4, 1, 5, 2, 6]; // F C G D A E B
    for k in 0..sharps.unsigned_abs() as usize {
        if sharps > 0 {
            signature[SHARP_ORDER[k]] = 1;
        } else {
            signature[SHARP_ORDER[6 - k]] = -1;
        }
    }
    // Explicit accidentals ("K:Dmix =c ^f") adjust single letters; clef and other
    // properties do not touch the pitches.
    for word in words {
        if word.contains('=') && word.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
            continue;
        }
        let (offset, letter_text) = if let Some(r) = word.strip_prefix("^^") {
            (2, r)
        } else if let Some(r) = word.strip_prefix("__") {
            (-2, r)
        } else if let Some(r) = word.strip_prefix('^') {
            (1, r)
        } else if let Some(r) = word.strip_prefix('_') {
            (-1, r)
        } else if let Some(r) = word.strip_prefix('=') {
            (0, r)
        } else {
            return Err(cannot());
        };
        let mut letters = letter_text.chars();
        let i = letters.next().and_then(letter_index).ok_or_else(cannot)?;
        if letters.next().is_some() {
            return Err(cannot());
        }
        signature[i] = offset;
    }
    let tonic = (LETTER_SEMITONES[index] + accidental).rem_euclid(12) as u8;
    Ok((Key::new(tonic, mode), signature))
}

/// Q: in quarter notes per minute: "1/4=120", "3/8=80", "C=100" (old: C is the unit length),
/// "120" (old: unit lengths per minute), possibly with quoted text.
fn parse_tempo(text: &str, unit: Fraction) -> Option<f64> {
    let mut t = text.to_string();
    while let (Some(a), Some(b)) = (t.find('"'), t.rfind('"')) {
        if a == b {
            break;
        }
        t.replace_range(a..=b, "");
    }
    let t = t.trim();
    let (beat, value) = match t.split_once('=') {
        Some((beat, value)) => {
            let beat = beat.trim();
            let beat = if beat.starts_with('C') || beat.is_empty() {
                unit
            } else {
                // Several beat units ("1/4 3/8=..") add up.
                let mut total = 0.0;
                for part in beat.split_whitespace() {
                    let f = Fraction::parse(part)?;
                    total += f.num as f64 / f.den as f64;
                }
                return finish_tempo(total, value);
            };
            (beat.num as f64 / beat.den as f64, value)
        }
        None => (unit.num as f64 / unit.den as f64, t),
    };
    finish_tempo(beat, value)
}

fn finish_tempo(beat_whole: f64, value: &str) -> Option<f64> {
    let per_minute: f64 = value.split_whitespace().next()?.parse().ok()?;
    let bpm = per_minute * beat_whole * 4.0;
    (bpm.is_finite() && (10.0..=600.0).contains(&bpm)).then_some(bpm)
}

/// A note or rest as written, with its exact length in ticks.
#[derive(Clone, Copy, Debug)]
struct Event {
    /// Absolute MIDI pitch; `None` for a rest.
    pitch: Option<i32>,
    ticks: i64,
    /// A `-` follows: joins the next note if it has the same pitch.
    tie: bool,
    /// Tuplet group the event belongs to (unique per written group).
    tuplet: Option<u32>,
}

/// A bar as written, with what its bar lines say about repeats.
#[derive(Clone, Debug, Default)]
struct WrittenBar {
    events: Vec<Event>,
    begin_repeat: bool,
    end_repeat: bool,
    /// A double or final bar line closes it: a new section starts after it.
    section_end: bool,
    /// The endings (1, 2, ...) this bar opens.
    ending: Option<Vec<u32>>,
}

impl WrittenBar {
    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.ending.is_none()
    }

    fn ticks(&self) -> i64 {
        self.events.iter().map(|e| e.ticks).sum()
    }
}

/// Reads ABC text into bars as written, resolving pitches and lengths on the way.
struct BodyReader<'a> {
    chars: Vec<char>,
    pos: usize,
    unit: Fraction,
    meter: WrittenMeter,
    meter_text: String,
    signature: Signature,
    /// Accidentals written earlier in the bar, by letter and octave.
    bar_accidentals: BTreeMap<(usize, i32), i32>,
    bars: Vec<WrittenBar>,
    /// Remaining notes of the current tuplet, its length factor and its group id.
    tuplet: Option<(u32, i64, i64, u32)>,
    next_tuplet_id: u32,
    /// Broken rhythm waiting for the next note: its length factor.
    pending_broken: Option<(i64, i64)>,
    voice: Option<String>,
    approximations: &'a mut BTreeMap<String, u64>,
}

fn count(map: &mut BTreeMap<String, u64>, reason: &str) {
    *map.entry(reason.to_string()).or_insert(0) += 1;
}

impl BodyReader<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn current(&mut self) -> &mut WrittenBar {
        if self.bars.is_empty() {
            self.bars.push(WrittenBar::default());
        }
        let last = self.bars.len() - 1;
        &mut self.bars[last]
    }

    fn read(&mut self) -> Result<(), TuneSkip> {
        while let Some(c) = self.peek() {
            if self.bars.len() > MAX_WRITTEN_BARS {
                return Err(TuneSkip::new("too many bars"));
            }
            match c {
                'A'..='G' | 'a'..='g' | '^' | '_' | '=' | 'z' | 'x' | 'Z' => self.note()?,
                '[' => match self.peek_at(1) {
                    Some('|') => self.bar_line()?,
                    Some(d) if d.is_ascii_digit() => {
                        self.pos += 1;
                        self.ending();
                    }
                    Some(l) if l.is_ascii_alphabetic() && self.peek_at(2) == Some(':') => {
                        self.inline_field()?
                    }
                    _ => self.chord()?,
                },
                '|' | ':' => self.bar_line()?,
                '{' => {
                    self.skip_past('}');
                    count(self.approximations, "grace notes dropped");
                }
                '"' => {
                    self.pos += 1;
                    self.skip_past('"');
                }
                '!' | '+' => {
                    // A decoration runs to its closing mark, within reason; a lone mark is
                    // an old-style decoration or line break.
                    let close = self.chars[self.pos + 1..]
                        .iter()
                        .take(40)
                        .position(|&x| x == c || x == '\n');
                    match close {
                        Some(n) if self.chars[self.pos + 1 + n] == c => self.pos += n + 2,
                        _ => self.pos += 1,
                    }
                }
                '(' => {
                    if self.peek_at(1).is_some_and(|d| d.is_ascii_digit()) {
                        self.tuplet_start();
                    } else {
                        self.pos += 1;
                    }
                }
                '-' => {
                    self.pos += 1;
                    if let Some(e) = self.bars.last_mut().and_then(|b| b.events.last_mut()) {
                        e.tie = true;
                    } else if let Some(e) = self.last_event_mut() {
                        e.tie = true;
                    }
                }
                '>' | '<' => self.broken_rhythm(),
                '&' => return Err(TuneSkip::new("voice overlay (&)")),
                '.' | '~' | 'H' | 'L' | 'M' | 'O' | 'P' | 'S' | 'T' | 'u' | 'v' | ')' | ' '
                | '\t' | '\n' | '\r' | '\\' | '`' | 'y' | '$' | ']' | ',' | '\'' | '*' => {
                    self.pos += 1
                }
                _ => {
                    self.pos += 1;
                    count(self.approximations, "unknown symbol ignored");
                }
            }
        }
        Ok(())
    }

    fn last_event_mut(&mut self) -> Option<&mut Event> {
        self.bars.iter_mut().rev().find_map(|b| b.events.last_mut())
    }

    fn skip_past(&mut self, close: char) {
        while let Some(c) = self.peek() {
            self.pos += 1;
            if c == close {
                return;
            }
        }
    }

    fn number(&mut self) -> Option<i64> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.pos == start {
            return None;
        }
        let digits: String = self.chars[start..self.pos].iter().collect();
        // Lengths beyond a few digits are garbage; saturate so they are refused later.
        Some(digits.parse().unwrap_or(i64::MAX).min(100_000))
    }

    /// A length suffix: "2", "/", "/2", "//", "3/2". Returns the multiplier of L:.
    fn length(&mut self) -> (i64, i64) {
        let num = self.number().unwrap_or(1);
        let mut den = 1i64;
        while self.peek() == Some('/') {
            self.pos += 1;
            den = den.saturating_mul(self.number().unwrap_or(2));
        }
        (num, den)
    }

    fn ticks(&mut self, (num, den): (i64, i64)) -> Result<i64, TuneSkip> {
        if num > 64 || den > 256 || den == 0 {
            return Err(TuneSkip::new("note length out of range"));
        }
        let exact = WHOLE * self.unit.num * num;
        let divisor = self.unit.den * den;
        if exact % divisor != 0 {
            count(self.approximations, "note length rounded");
        }
        Ok(exact / divisor)
    }

    /// Reads accidental, letter and octave marks; returns the MIDI pitch.
    fn pitch(&mut self) -> Option<i32> {
        let mut explicit: Option<i32> = None;
        loop {
            match self.peek()? {
                '^' => explicit = Some(explicit.unwrap_or(0).max(0) + 1),
                '_' => explicit = Some(explicit.unwrap_or(0).min(0) - 1),
                '=' => explicit = Some(0),
                _ => break,
            }
            self.pos += 1;
        }
        let letter = self.peek()?;
        let index = letter_index(letter).filter(|_| letter.is_ascii_alphabetic())?;
        if !matches!(letter, 'A'..='G' | 'a'..='g') {
            return None;
        }
        self.pos += 1;
        let mut octave: i32 = if letter.is_ascii_lowercase() { 1 } else { 0 };
        while let Some(mark) = self.peek() {
            match mark {
                '\'' => octave += 1,
                ',' => octave -= 1,
                _ => break,
            }
            self.pos += 1;
        }
        let octave = octave.clamp(-5, 5);
        let offset = match explicit {
            Some(e) => {
                let e = e.clamp(-2, 2);
                self.bar_accidentals.insert((index, octave), e);
                e
            }
            None => self
                .bar_accidentals
                .get(&(index, octave))
                .copied()
                .unwrap_or(self.signature[index]),
        };
        Some(60 + 12 * octave + LETTER_SEMITONES[index] + offset)
    }

    fn note(&mut self) -> Result<(), TuneSkip> {
        let c = self.peek().unwrap_or(' ');
        if c == 'Z' {
            self.pos += 1;
            let bars = self.number().unwrap_or(1);
            if bars > 256 {
                return Err(TuneSkip::new("note length out of range"));
            }
            let ticks = self.meter.bar.ticks() * bars;
            self.push(None, ticks);
            return Ok(());
        }
        let pitch = if c == 'z' || c == 'x' {
            self.pos += 1;
            None
        } else {
            match self.pitch() {
                Some(p) => Some(p),
                None => {
                    // A stray accidental with no letter after it.
                    self.pos += 1;
                    count(self.approximations, "unknown symbol ignored");
                    return Ok(());
                }
            }
        };
        let length = self.length();
        let ticks = self.ticks(length)?;
        self.push(pitch, ticks);
        Ok(())
    }

    fn chord(&mut self) -> Result<(), TuneSkip> {
        self.pos += 1; // '['
        let mut top: Option<i32> = None;
        let mut first_length: Option<(i64, i64)> = None;
        let mut notes = 0;
        while let Some(c) = self.peek() {
            match c {
                ']' => {
                    self.pos += 1;
                    break;
                }
                '^' | '_' | '=' | 'A'..='G' | 'a'..='g' => match self.pitch() {
                    Some(p) => {
                        notes += 1;
                        top = Some(top.map_or(p, |t| t.max(p)));
                        let length = self.length();
                        first_length.get_or_insert(length);
                    }
                    None => self.pos += 1,
                },
                '|' | '\n' => break,
                _ => self.pos += 1,
            }
        }
        let outer = self.length();
        let (n, d) = first_length.unwrap_or((1, 1));
        let length = (n.saturating_mul(outer.0), d.saturating_mul(outer.1));
        if notes == 0 {
            return Ok(());
        }
        if notes > 1 {
            count(self.approximations, "chord reduced to its top note");
        }
        let ticks = self.ticks(length)?;
        self.push(top, ticks);
        Ok(())
    }

    fn push(&mut self, pitch: Option<i32>, mut ticks: i64) {
        let mut tuplet = None;
        if let Some((left, q, p, id)) = self.tuplet {
            ticks = ticks * q / p;
            tuplet = Some(id);
            self.tuplet = (left > 1).then_some((left - 1, q, p, id));
        }
        if let Some((n, d)) = self.pending_broken.take() {
            ticks = ticks * n / d;
        }
        if ticks <= 0 {
            count(self.approximations, "zero-length note dropped");
            return;
        }
        self.current().events.push(Event {
            pitch,
            ticks,
            tie: false,
            tuplet,
        });
    }

    fn broken_rhythm(&mut self) {
        let symbol = self.peek().unwrap_or('>');
        let mut n = 0u32;
        while self.peek() == Some(symbol) {
            self.pos += 1;
            n += 1;
        }
        let n = n.min(3);
        // One dot takes half the other note, two dots three quarters, three seven eighths.
        let short = (1i64, 1i64 << n);
        let long = ((1i64 << (n + 1)) - 1, 1i64 << n);
        let (before, after) = if symbol == '>' {
            (long, short)
        } else {
            (short, long)
        };
        match self.last_event_mut() {
            Some(e) => {
                e.ticks = e.ticks * before.0 / before.1;
                self.pending_broken = Some(after);
            }
            None => count(self.approximations, "unknown symbol ignored"),
        }
    }

    fn tuplet_start(&mut self) {
        self.pos += 1; // '('
        let p = self.number().unwrap_or(3).clamp(1, 9);
        let mut q = None;
        let mut r = None;
        if self.peek() == Some(':') {
            self.pos += 1;
            q = self.number();
            if self.peek() == Some(':') {
                self.pos += 1;
                r = self.number();
            }
        }
        let compound = self.meter.bar.den == 8 && self.meter.bar.num % 3 == 0;
        let q = q.unwrap_or(match p {
            2 | 4 | 8 => 3,
            3 | 6 => 2,
            _ if compound => 3,
            _ => 2,
        });
        let q = q.clamp(1, 9);
        let r = r.unwrap_or(p).clamp(1, 16) as u32;
        self.next_tuplet_id += 1;
        self.tuplet = Some((r, q, p, self.next_tuplet_id));
    }

    fn ending(&mut self) {
        // Digits, commas and dashes: "1", "2", "1,2", "1-3".
        let mut numbers = Vec::new();
        while let Some(a) = self.number() {
            if self.peek() == Some('-') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
                let b = self.number().unwrap_or(a);
                for n in a..=b.min(a + 8) {
                    numbers.push(n as u32);
                }
            } else {
                numbers.push(a.min(99) as u32);
            }
            if self.peek() == Some(',') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            } else {
                break;
            }
        }
        if numbers.is_empty() {
            return;
        }
        let bar = self.current();
        if !bar.events.is_empty() {
            // An ending that starts inside a bar: begin a new written bar for it.
            self.bars.push(WrittenBar::default());
        }
        self.current().ending = Some(numbers);
    }

    fn bar_line(&mut self) -> Result<(), TuneSkip> {
        let mut text = String::new();
        while let Some(c) = self.peek() {
            let take = match c {
                '|' | ':' => true,
                ']' => text.ends_with('|'),
                '[' => self.peek_at(1) == Some('|'),
                _ => false,
            };
            if !take {
                break;
            }
            text.push(c);
            self.pos += 1;
        }
        let Some(first_bar) = text.find('|') else {
            if text.len() >= 2 {
                // "::" between two sections.
                self.close_bar(true, true, true);
            } else {
                count(self.approximations, "unknown symbol ignored");
            }
            return Ok(());
        };
        let last_bar = text.rfind('|').unwrap_or(first_bar);
        let end_repeat = first_bar > 0;
        let begin_repeat = last_bar + 1 < text.len() && text[last_bar + 1..].contains(':');
        let heavy = text.contains("||") || text.contains("|]") || text.contains("[|");
        self.close_bar(end_repeat, begin_repeat, heavy || end_repeat);
        // An ending right after the bar line: "|1", ":|2", "|[2", "| [2".
        let mut look = self.pos;
        while self.chars.get(look) == Some(&' ') {
            look += 1;
        }
        match self.chars.get(look) {
            Some(d) if d.is_ascii_digit() && look == self.pos => self.ending(),
            Some('[') if self.chars.get(look + 1).is_some_and(|d| d.is_ascii_digit()) => {
                self.pos = look + 1;
                self.ending();
            }
            _ => {}
        }
        Ok(())
    }

    fn close_bar(&mut self, end_repeat: bool, begin_repeat: bool, section_end: bool) {
        self.bar_accidentals.clear();
        let current_empty = self.bars.last().is_none_or(WrittenBar::is_empty);
        if current_empty {
            // Two bar lines in a row (or one before any music): their marks belong to the
            // bar before and the bar after.
            let n = self.bars.len();
            if n >= 2 {
                let before = &mut self.bars[n - 2];
                before.end_repeat |= end_repeat;
                before.section_end |= section_end;
            }
            self.current().begin_repeat |= begin_repeat;
            return;
        }
        let bar = self.current();
        bar.end_repeat |= end_repeat;
        bar.section_end |= section_end;
        self.bars.push(WrittenBar {
            begin_repeat,
            ..WrittenBar::default()
        });
    }

    fn inline_field(&mut self) -> Result<(), TuneSkip> {
        self.pos += 1; // '['
        let start = self.pos;
        while self.peek().is_some_and(|c| c != ']' && c != '\n') {
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        if self.peek() == Some(']') {
            self.pos += 1;
        }
        let (name, value) = text.split_at(1);
        self.field(name.chars().next().unwrap_or(' '), &value[1..])
    }

    /// A field inside the body, written on its own line or inline.
    fn field(&mut self, name: char, value: &str) -> Result<(), TuneSkip> {
        match name {
            'K' => {
                let (_, signature) = parse_key(strip_comment(value))?;
                self.signature = signature;
                self.bar_accidentals.clear();
            }
            'L' => {
                self.unit = Fraction::parse(strip_comment(value))
                    .ok_or_else(|| TuneSkip::new("unreadable unit length (L:)"))?;
            }
            'M' => {
                let text = strip_comment(value).trim();
                if text != self.meter_text {
                    let m = parse_meter(text)?;
                    if m.bar != self.meter.bar {
                        return Err(TuneSkip::new("meter change mid-tune"));
                    }
                }
            }
            'V' => {
                let id = strip_comment(value)
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string();
                match &self.voice {
                    Some(v) if *v != id => return Err(TuneSkip::new("multiple voices (V:)")),
                    _ => self.voice = Some(id),
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Header fields of a tune.
#[derive(Default)]
struct Header {
    number: Option<u32>,
    title: Option<String>,
    transcriber: Option<String>,
    meter: Option<String>,
    unit: Option<String>,
    tempo: Option<String>,
    voice: Option<String>,
    parts: bool,
}

fn field_line(line: &str) -> Option<(char, &str)> {
    let mut chars = line.chars();
    let name = chars.next()?;
    (name.is_ascii_alphabetic() && chars.next() == Some(':')).then(|| (name, &line[2..]))
}

/// Parses one tune's ABC text (from X: on). Errors are the reason the tune is skipped.
pub fn parse_tune(text: &str) -> Result<AbcTune, TuneSkip> {
    let mut header = Header::default();
    let mut lines = text.lines();
    let mut key_field = None;
    for line in lines.by_ref() {
        let line = line.trim();
        if line.starts_with('%') || line.is_empty() {
            continue;
        }
        let Some((name, value)) = field_line(line) else {
            return Err(TuneSkip::new("music before the key (K:) field"));
        };
        let value = strip_comment(value).trim();
        match name {
            'X' => header.number = value.parse().ok(),
            'T' if header.title.is_none() => header.title = Some(value.to_string()),
            'Z' if header.transcriber.is_none() && !value.trim_matches('"').is_empty() => {
                header.transcriber = Some(value.trim_matches('"').trim().to_string())
            }
            'M' => header.meter = Some(value.to_string()),
            'L' => header.unit = Some(value.to_string()),
            'Q' => header.tempo = Some(value.to_string()),
            'V' => header.voice = Some(value.to_string()),
            'P' => header.parts = true,
            'K' => {
                key_field = Some(value.to_string());
                break;
            }
            _ => {}
        }
    }
    let key_field = key_field.ok_or_else(|| TuneSkip::new("no key (K:) field"))?;
    let number = header
        .number
        .ok_or_else(|| TuneSkip::new("no reference number (X:)"))?;
    let meter_text = header.meter.clone().unwrap_or_default();
    if meter_text.is_empty() || meter_text.eq_ignore_ascii_case("none") {
        return Err(TuneSkip::new("no meter (M:)"));
    }
    let meter = parse_meter(&meter_text)?;
    let unit = match &header.unit {
        Some(u) => {
            Fraction::parse(u).ok_or_else(|| TuneSkip::new("unreadable unit length (L:)"))?
        }
        None if meter.bar.num * 4 < meter.bar.den * 3 => Fraction { num: 1, den: 16 },
        None => Fraction { num: 1, den: 8 },
    };
    let (key, signature) = parse_key(&key_field)?;
    let tempo_bpm = header.tempo.as_deref().and_then(|q| parse_tempo(q, unit));

    let mut approximations = BTreeMap::new();
    if header.parts {
        count(&mut approximations, "part order (P:) ignored");
    }
    // The body: music lines joined, field lines turned into inline fields; a blank line ends
    // the tune.
    let mut body = String::new();
    for line in lines {
        if line.trim().is_empty() {
            break;
        }
        let line = strip_comment(line.trim_start());
        if let Some((name, value)) = field_line(line) {
            if matches!(name, 'K' | 'L' | 'M' | 'V') {
                body.push('[');
                body.push(name);
                body.push(':');
                body.push_str(&value.replace(']', ""));
                body.push(']');
            }
            continue;
        }
        body.push_str(line);
        body.push('\n');
    }
    let mut reader = BodyReader {
        chars: body.chars().collect(),
        pos: 0,
        unit,
        meter,
        meter_text: meter_text.trim().to_string(),
        signature,
        bar_accidentals: BTreeMap::new(),
        bars: Vec::new(),
        tuplet: None,
        next_tuplet_id: 0,
        pending_broken: None,
        voice: header
            .voice
            .map(|v| v.split_whitespace().next().unwrap_or("").to_string()),
        approximations: &mut approximations,
    };
    reader.read()?;
    let mut written = reader.bars;
    while written.last().is_some_and(WrittenBar::is_empty) {
        written.pop();
    }
    if written.is_empty() {
        return Err(TuneSkip::new("no music"));
    }
    // A first bar shorter than the written bar is a pickup.
    let first = written[0].ticks();
    let pickup = written.len() > 1 && first > 0 && first < meter.bar.ticks();
    let played = expand_repeats(&written)?;
    let melody = place_on_grid(&played, &mut approximations)?;
    let steps_per_bar = meter.grid.steps_per_bar();
    let pickup_steps = if pickup {
        u32::try_from((first + STEP / 2) / STEP).unwrap_or(0)
    } else {
        0
    };
    let pad = (steps_per_bar - pickup_steps % steps_per_bar) % steps_per_bar;
    let total_ticks: i64 = played.iter().map(|e| e.ticks).sum();
    let total_steps = u32::try_from((total_ticks + STEP / 2) / STEP)
        .map_err(|_| TuneSkip::new("too many bars"))?
        .saturating_add(pad);
    let bars = total_steps.div_ceil(steps_per_bar);
    if bars < MIN_BARS {
        return Err(TuneSkip::new(format!("fewer than {MIN_BARS} bars")));
    }
    if bars > MAX_BARS {
        return Err(TuneSkip::new(format!("more than {MAX_BARS} bars")));
    }
    let melody = melody
        .into_iter()
        .map(|(start, duration, midi)| {
            let start = start + pad;
            Note {
                start,
                duration,
                pitch: key.to_relative(midi),
                velocity: if start % steps_per_bar == 0 {
                    DOWNBEAT_VELOCITY
                } else {
                    VELOCITY
                },
            }
        })
        .collect();
    Ok(AbcTune {
        number,
        title: header.title.unwrap_or_default(),
        transcriber: header.transcriber,
        meter: meter.grid,
        key,
        tempo_bpm,
        bars,
        melody,
        approximations,
    })
}

/// Plays the written bars in order, taking repeats and first/second endings.
fn expand_repeats(bars: &[WrittenBar]) -> Result<Vec<Event>, TuneSkip> {
    let unresolved = || TuneSkip::new("repeat structure cannot be resolved");
    let mut played = Vec::new();
    let mut played_bars = 0usize;
    let mut start = 0usize;
    let mut pass = 1u32;
    let mut pos = 0usize;
    // Whether the bars since the last ending mark belong to an ending.
    let mut in_ending = false;
    while pos < bars.len() {
        played_bars += 1;
        if played_bars > MAX_PLAYED_BARS {
            return Err(unresolved());
        }
        let bar = &bars[pos];
        if bar.begin_repeat && pos != start && !in_ending {
            start = pos;
            pass = 1;
        }
        if let Some(endings) = &bar.ending {
            in_ending = true;
            if !endings.contains(&pass) {
                // Skip to the ending for this pass, within this section.
                let next = (pos + 1..bars.len())
                    .find(|&i| bars[i].ending.as_ref().is_some_and(|e| e.contains(&pass)));
                match next {
                    Some(i)
                        if !bars[pos..i]
                            .iter()
                            .any(|b| b.begin_repeat && b.ending.is_none()) =>
                    {
                        pos = i;
                        continue;
                    }
                    _ => return Err(unresolved()),
                }
            }
        }
        played.extend_from_slice(&bar.events);
        if bar.end_repeat {
            let later_ending = (pos + 1..bars.len())
                .take_while(|&i| !bars[i].begin_repeat || bars[i].ending.is_some())
                .any(|i| {
                    bars[i]
                        .ending
                        .as_ref()
                        .is_some_and(|e| e.contains(&(pass + 1)))
                });
            if (!in_ending && pass == 1) || (in_ending && later_ending) {
                pass += 1;
                pos = start;
                in_ending = false;
                continue;
            }
            if in_ending && pass == 1 {
                return Err(unresolved());
            }
            pass = 1;
            start = pos + 1;
            in_ending = false;
        } else if bar.section_end {
            // A double bar closes a section: a later repeat goes back no further.
            pass = 1;
            start = pos + 1;
            in_ending = false;
        }
        pos += 1;
    }
    Ok(played)
}

/// Places played events on the grid: (start step, duration, MIDI pitch), monophonic.
fn place_on_grid(
    events: &[Event],
    approximations: &mut BTreeMap<String, u64>,
) -> Result<Vec<(u32, u32, i32)>, TuneSkip> {
    let round = |t: i64| (t + STEP / 2).div_euclid(STEP);
    // Exact start of each event.
    let mut starts = Vec::with_capacity(events.len());
    let mut t = 0i64;
    for e in events {
        starts.push(t);
        t = t.saturating_add(e.ticks);
    }
    if t / STEP > i64::from(MAX_BARS * 16 * 4) {
        return Err(TuneSkip::new(format!("more than {MAX_BARS} bars")));
    }
    // Grid span of each event.
    let mut spans: Vec<(i64, i64)> = Vec::with_capacity(events.len());
    let mut i = 0;
    while i < events.len() {
        match events[i].tuplet {
            Some(id) => {
                let mut j = i;
                while j < events.len() && events[j].tuplet == Some(id) {
                    j += 1;
                }
                spans.extend(share_tuplet(&events[i..j], starts[i], round));
                let exact = events[i..j]
                    .iter()
                    .zip(&starts[i..j])
                    .all(|(e, &s)| s % STEP == 0 && e.ticks % STEP == 0);
                if !exact {
                    count(approximations, "tuplet approximated on the grid");
                }
                i = j;
            }
            None => {
                let (s, e) = (starts[i], starts[i] + events[i].ticks);
                if s % STEP != 0 || e % STEP != 0 {
                    count(approximations, "off-grid note quantised");
                }
                spans.push((round(s), round(e)));
                i += 1;
            }
        }
    }
    // Notes with ties joined, then made monophonic.
    let mut notes: Vec<(i64, i64, i32)> = Vec::new();
    let mut tie_open = false;
    for (e, &(s, end)) in events.iter().zip(&spans) {
        let Some(pitch) = e.pitch else {
            tie_open = false;
            continue;
        };
        if tie_open
            && let Some(last) = notes.last_mut()
            && last.2 == pitch
        {
            last.1 = last.1.max(end);
            tie_open = e.tie;
            continue;
        }
        notes.push((s, end, pitch));
        tie_open = e.tie;
    }
    // (start, duration, pitch, collapsed): a collapsed note rounded to nothing and only
    // holds its step while no neighbour needs it.
    let mut out: Vec<(u32, u32, i32, bool)> = Vec::with_capacity(notes.len());
    for (s, end, pitch) in notes {
        let s = u32::try_from(s).map_err(|_| TuneSkip::new("note length out of range"))?;
        let end = u32::try_from(end).map_err(|_| TuneSkip::new("note length out of range"))?;
        let collapsed = end <= s;
        if let Some(&(last_start, _, _, last_collapsed)) = out.last()
            && s <= last_start
        {
            count(approximations, "off-grid note dropped");
            if !last_collapsed || collapsed {
                continue;
            }
            out.pop();
        }
        if let Some(last) = out.last_mut()
            && last.0 + last.1 > s
        {
            last.1 = s - last.0;
        }
        out.push((s, end.saturating_sub(s).max(1), pitch, collapsed));
    }
    Ok(out.into_iter().map(|(s, d, p, _)| (s, d, p)).collect())
}

/// Shares a tuplet group's grid span among its notes in proportion to their lengths; the
/// remainder goes to the earliest notes, so (3abc of eighths becomes 2+1+1 sixteenths.
fn share_tuplet(group: &[Event], start: i64, round: impl Fn(i64) -> i64) -> Vec<(i64, i64)> {
    let total: i64 = group.iter().map(|e| e.ticks).sum();
    let first = round(start);
    let steps = (round(start + total) - first).max(0);
    let mut shares: Vec<(i64, i64)> = group
        .iter()
        .map(|e| {
            let scaled = e.ticks * steps;
            (scaled / total.max(1), scaled % total.max(1))
        })
        .collect();
    let given: i64 = shares.iter().map(|s| s.0).sum();
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&a, &b| shares[b].1.cmp(&shares[a].1).then(a.cmp(&b)));
    for &k in order.iter().take((steps - given).max(0) as usize) {
        shares[k].0 += 1;
    }
    let mut t = first;
    shares
        .into_iter()
        .map(|(n, _)| {
            let span = (t, t + n);
            t += n;
            span
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tune(body: &str) -> AbcTune {
        parse_tune(body).unwrap_or_else(|e| panic!("tune should parse: {}", e.0))
    }

    fn pitches(t: &AbcTune) -> Vec<i32> {
        t.melody.iter().map(|n| t.key.to_midi(n.pitch)).collect()
    }

    fn durations(t: &AbcTune) -> Vec<u32> {
        t.melody.iter().map(|n| n.duration).collect()
    }

    #[test]
    fn a_plain_reel_reads_header_notes_and_bars() {
        let t = tune(
            "X:7\nT:The Test Reel\nT:Other title\nZ:Someone\nM:C|\nL:1/8\nQ:1/2=100\nK:G\n\
             GABc dedB|dedB dedB|c2ec B2dB|c2A2 A2BA|\n",
        );
        assert_eq!(t.number, 7);
        assert_eq!(t.title, "The Test Reel");
        assert_eq!(t.transcriber.as_deref(), Some("Someone"));
        assert_eq!(t.meter, Meter::FourFour);
        assert_eq!(t.key, Key::new(7, Mode::Major));
        assert_eq!(t.tempo_bpm, Some(200.0));
        assert_eq!(t.bars, 4);
        assert_eq!(&pitches(&t)[..4], &[67, 69, 71, 72]);
        assert_eq!(t.melody[0].velocity, DOWNBEAT_VELOCITY);
        assert_eq!(t.melody[1].velocity, VELOCITY);
        // G4 sits an octave above the reference tonic G3.
        assert_eq!(t.melody[0].pitch, 12);
    }

    #[test]
    fn key_signatures_and_accidentals_carry_to_the_end_of_the_bar() {
        // D major: F and C are sharp; =f cancels until the bar line, per octave.
        let t = tune("X:1\nM:4/4\nL:1/4\nK:D\nF =F F f|F c _B B|B4|B4|\n");
        assert_eq!(&pitches(&t)[..8], &[66, 65, 65, 78, 66, 73, 70, 70]);
        assert_eq!(pitches(&t)[8], 71);
    }

    #[test]
    fn modes_and_explicit_accidentals_map_to_signatures() {
        let (key, sig) = parse_key("Ador").unwrap();
        assert_eq!(key, Key::new(9, Mode::Dorian));
        assert_eq!(sig, [0, 0, 0, 1, 0, 0, 0]); // F#
        let (key, sig) = parse_key("E Minor").unwrap();
        assert_eq!(key, Key::new(4, Mode::Minor));
        assert_eq!(sig[3], 1);
        let (key, _) = parse_key("DMix").unwrap();
        assert_eq!(key, Key::new(2, Mode::Mixolydian));
        let (key, sig) = parse_key("Gm").unwrap();
        assert_eq!(key, Key::new(7, Mode::Minor));
        assert_eq!(sig, [0, 0, -1, 0, 0, 0, -1]);
        let (_, sig) = parse_key("Dmix =c ^g").unwrap();
        assert_eq!(sig[0], 0);
        assert_eq!(sig[4], 1);
        assert_eq!(parse_key("Bb").unwrap().0, Key::new(10, Mode::Major));
        assert!(parse_key("HP").unwrap_err().0.contains("highland"));
        assert!(parse_key("Hp").is_err());
        assert!(parse_key("none").is_err());
        assert!(parse_key("Bn").is_err());
        assert!(parse_key("Dmixm").is_err());
    }

    #[test]
    fn lengths_broken_rhythm_and_rests() {
        let t = tune("X:1\nM:4/4\nL:1/8\nK:C\nA2 B/ c// d3/2 z e>f g<a|A8|A8|A8|\n");
        // 4 + 1 + 0.5 (rounded) + 3 + rest 2 + 3 + 1 + 1 + 3 = 16 steps (c// is a 32nd).
        assert_eq!(t.melody[0].duration, 4);
        assert_eq!(t.melody[1].duration, 1);
        let e = t
            .melody
            .iter()
            .position(|n| t.key.to_midi(n.pitch) == 76)
            .unwrap();
        assert_eq!(durations(&t)[e..e + 4], [3, 1, 1, 3]);
        assert!(t.approximations.contains_key("off-grid note quantised"));
    }

    #[test]
    fn triplets_share_their_exact_span() {
        let t = tune("X:1\nM:2/4\nL:1/8\nK:C\n(3cde f2|c4|c4|c4|c4|c4|c4|c4|\n");
        assert_eq!(&durations(&t)[..4], &[2, 1, 1, 4]);
        assert_eq!(
            t.approximations.get("tuplet approximated on the grid"),
            Some(&1)
        );
    }

    #[test]
    fn repeats_and_endings_expand_as_played() {
        let t = tune("X:1\nM:4/4\nL:1/4\nK:C\n|:C D E F|1 G4:|2 A4||B4|c4|\n");
        let expected = [60, 62, 64, 65, 67, 60, 62, 64, 65, 69, 71, 72];
        assert_eq!(pitches(&t), expected);
        assert_eq!(t.bars, 6);
        // Aird's "::" between two repeated halves, with no opening repeat.
        let t = tune("X:1\nM:4/4\nL:1/4\nK:C\nC4::D4:|\n");
        assert_eq!(pitches(&t), [60, 60, 62, 62]);
    }

    #[test]
    fn pickup_ends_the_first_bar() {
        let t = tune("X:1\nM:6/8\nL:1/8\nK:G\nD|G2A B2G|A3 A2B|c2B A2G|G3 G2|]\n");
        assert_eq!(t.meter, Meter::SixEight);
        assert_eq!(t.melody[0].start, 10);
        assert_eq!(t.melody[1].start, 12);
        assert_eq!(t.melody[1].velocity, DOWNBEAT_VELOCITY);
        assert_eq!(t.bars, 5);
    }

    #[test]
    fn ties_join_same_pitches_and_slur_different_ones() {
        let t = tune("X:1\nM:4/4\nL:1/4\nK:C\nC2 C2-|C4|B-c2 c|c4|\n");
        assert_eq!(durations(&t), [8, 24, 4, 8, 4, 16]);
    }

    #[test]
    fn ornaments_chords_graces_and_annotations_are_dropped() {
        let t = tune(
            "X:1\nM:4/4\nL:1/4\nK:C\n\"G\"!trill!~G {ABc}A .[CEG] +fermata+c|\
             \"^text\"TC uD vE HF|\nw:some words\nC4|C4|\n",
        );
        assert_eq!(&pitches(&t)[..4], &[67, 69, 67, 72]);
        assert_eq!(
            t.approximations.get("chord reduced to its top note"),
            Some(&1)
        );
        assert_eq!(t.approximations.get("grace notes dropped"), Some(&1));
    }

    #[test]
    fn inline_fields_change_unit_length_and_accidentals() {
        let t = tune("X:1\nM:4/4\nL:1/8\nK:C\nF8|[L:1/4]F4|[K:G]F4|\nK:F\nB4|\n");
        assert_eq!(durations(&t), [16, 16, 16, 16]);
        assert_eq!(pitches(&t), [65, 65, 66, 70]);
        assert_eq!(t.key, Key::new(0, Mode::Major));
    }

    #[test]
    fn unsupported_material_is_skipped_with_a_reason() {
        let skip = |s: &str| parse_tune(s).unwrap_err().0;
        assert_eq!(
            skip("X:1\nM:9/8\nK:C\nC9|C9|C9|C9|\n"),
            "unsupported meter 9/8"
        );
        assert_eq!(
            skip("X:1\nM:4/4\nK:C\nC8|[M:3/4]C6|C6|C6|\n"),
            "meter change mid-tune"
        );
        assert_eq!(
            skip("X:1\nM:4/4\nK:C\nV:1\nC8|C8|\nV:2\nC8|C8|\n"),
            "multiple voices (V:)"
        );
        assert_eq!(skip("X:1\nM:4/4\nK:C\nC8|C8|\n"), "fewer than 4 bars");
        assert!(skip("X:1\nM:4/4\nK:HP\nC8|C8|C8|C8|\n").contains("highland"));
        assert_eq!(
            skip("X:1\nM:4/4\nK:C\nC8|C8|[2C8|C8|\n"),
            "repeat structure cannot be resolved"
        );
    }

    #[test]
    fn multi_bar_rests_and_meter_defaults() {
        // No L: in 2/4 (below 3/4) means sixteenths.
        let t = tune("X:1\nM:2/4\nK:C\nC8|Z4|D8|D8|\n");
        assert_eq!(t.melody[0].duration, 8);
        assert_eq!(t.melody[1].start, 40);
        assert_eq!(t.bars, 4);
    }

    #[test]
    fn split_tunes_finds_each_x_field() {
        let file = "% header\n\nX:1\nT:A\nK:C\nC|\n\nX: 2\nT:B\nK:C\nD|\n";
        let (header, tunes) = split_tunes(file);
        assert_eq!(header.trim(), "% header");
        assert_eq!(tunes.len(), 2);
        assert_eq!(tunes[1].number, Some(2));
        assert!(tunes[0].text.ends_with("C|"));
    }

    #[test]
    fn a_note_that_rounds_to_nothing_gives_way_to_its_neighbour() {
        // c>A in sixteenths: a dotted sixteenth and a 32nd; the 32nd goes, B keeps its step.
        let t = tune("X:1\nM:2/4\nL:1/16\nK:C\nc>A B2 c4|c8|c8|c8|c8|c8|c8|c8|\n");
        assert_eq!(&pitches(&t)[..3], &[72, 71, 72]);
        assert_eq!(&durations(&t)[..3], &[2, 2, 4]);
        assert_eq!(t.approximations.get("off-grid note dropped"), Some(&1));
    }

    #[test]
    fn melody_is_monophonic_and_sorted() {
        let t = tune("X:1\nM:3/4\nL:1/32\nK:Am\nA3B3c3d3e3f3g3a3 | A24|A24|A24|A24|\n");
        for pair in t.melody.windows(2) {
            assert!(pair[0].end() <= pair[1].start);
        }
        assert_eq!(t.meter, Meter::ThreeFour);
    }

    const REAL: &str = "X: 3\nT: The Little Heathy Hill\nM: C\nL: 1/8\nB: \"O'Neill's 3\"\n\
N: \"Moderate\" \"collected by F. O'Neill\"\nZ: \"Transcribed by Norbert Paap\"\nK:Gm\n\
B/2-c/2 | d2 d>-c B2 A-B | (GBAG) F2 D-F | (G>AG).F (D>CD).F | G2 G>-A B3 c |\n\
(d>ed).c B2 A>-B | (GBAG) F2 D-F | (G>AG).F (D>CD).F | G2 G>A G3 ||\n\
D | GABc d2 d=e | f2 =ed c>AF>>c | d>edc B2 AB | GFD=E F2 B-c |\n\
(d>ed).c B2 A2 | (GBAG) F2 D-F | (G>AG).F (D>CD).F | G2 G>A G3 ||\n";

    #[test]
    fn a_real_oneill_tune_parses() {
        let t = tune(REAL);
        assert_eq!(t.key, Key::new(7, Mode::Minor));
        assert_eq!(
            t.transcriber.as_deref(),
            Some("Transcribed by Norbert Paap")
        );
        assert_eq!(t.bars, 17);
        assert_eq!(t.melody[0].start, 14);
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(300))]

            #[test]
            fn random_text_never_panics(s in "\\PC{0,300}") {
                let _ = parse_tune(&s);
                let _ = split_tunes(&s);
            }

            #[test]
            fn abc_like_text_never_panics(
                s in "X:1\nM:(4/4|6/8|3/4|C)\nL:1/(8|16)\nK:(G|Am|Dmix)\n[A-Ga-g,'^_=|:\\[\\]0-9/<>(){}\"!+z -]{0,200}"
            ) {
                if let Ok(t) = parse_tune(&s) {
                    for pair in t.melody.windows(2) {
                        prop_assert!(pair[0].end() <= pair[1].start);
                    }
                }
            }

            #[test]
            fn mutated_real_abc_never_panics(
                edits in proptest::collection::vec((0usize..700, any::<char>()), 1..20)
            ) {
                let mut chars: Vec<char> = REAL.chars().collect();
                for (at, c) in edits {
                    let at = at % (chars.len() + 1);
                    if c.is_ascii_digit() && at < chars.len() {
                        chars.remove(at);
                    } else {
                        chars.insert(at, c);
                    }
                }
                let text: String = chars.into_iter().collect();
                if let Ok(t) = parse_tune(&text) {
                    prop_assert!(t.bars >= MIN_BARS && t.bars <= MAX_BARS);
                }
            }
        }
    }
}
